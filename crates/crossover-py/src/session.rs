//! `crossover._crossover.Session`: a compiled model, run from Python.
//!
//! The pure-Python `crossover.InferenceSession` wraps it with ONNX Runtime's names.

use std::path::{Path, PathBuf};

use std::collections::BTreeMap;
use std::time::Duration;

use crossover::{CalibrationOptions, Dim, Error, Model, Reply, Session, Tensor, ValueInfo};
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyInt, PyList, PyString, PyTuple};

use crate::convert::{onnx_type, to_numpy, to_tensor};
use crate::errors::{invalid, to_py};
use crate::meta::ModelMeta;
use crate::options::{parse_devices, parse_policy};

#[pyclass(frozen, name = "Session", module = "crossover._crossover")]
pub struct PySession {
    session: Session,
    output_names: Vec<String>,
    meta: ModelMeta,
}

#[pymethods]
impl PySession {
    #[new]
    #[pyo3(signature = (model, devices = None, policy = "latency", threads = None, prices = None, p99_ms = None, allow_spinning = true))]
    fn new(
        py: Python<'_>,
        model: &Bound<'_, PyAny>,
        devices: Option<&Bound<'_, PyAny>>,
        policy: &str,
        threads: Option<usize>,
        prices: Option<BTreeMap<String, f64>>,
        p99_ms: Option<f64>,
        allow_spinning: bool,
    ) -> PyResult<Self> {
        let devices = match devices {
            Some(d) => parse_devices(d)?,
            None => crossover::Selection::Auto,
        };
        let policy = parse_policy(policy, prices, p99_ms)?;
        if threads == Some(0) {
            return Err(invalid(
                "threads must be at least 1 (or None for all cores)",
            ));
        }
        let mut builder = Session::builder()
            .devices(devices)
            .policy(policy)
            .allow_spinning(allow_spinning);
        if let Some(n) = threads {
            builder = builder.threads(n);
        }
        let (session, meta) = if let Ok(b) = model.cast::<PyBytes>() {
            let bytes = b.as_bytes();
            py.detach(|| {
                let session = builder.build_from_bytes(bytes)?;
                Ok::<_, Error>((session, ModelMeta::decode(bytes).unwrap_or_default()))
            })
        } else {
            let path = fspath(model)?;
            py.detach(|| load_file(builder, &path))
        }
        .map_err(to_py)?;
        let output_names = session.outputs().iter().map(|v| v.name.clone()).collect();
        Ok(PySession {
            session,
            output_names,
            meta,
        })
    }

    /// `[(name, type, shape)]` of the model inputs, in order.
    fn inputs<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyList>> {
        value_infos(py, &self.session.inputs())
    }

    fn outputs<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyList>> {
        value_infos(py, &self.session.outputs())
    }

    /// Runs the model; `output_names` None means every output, in the model's order.
    #[pyo3(signature = (output_names, input_feed))]
    fn run<'py>(
        &self,
        py: Python<'py>,
        output_names: Option<&Bound<'py, PyAny>>,
        input_feed: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyList>> {
        let (out, pick) = self.run_inner(py, output_names, input_feed)?;
        self.select(py, out.outputs, &pick)
    }

    /// Like `run`, plus the device that ran it, the stage timings `(queue, upload,
    /// compute, download)` in seconds and the peak bytes the run used.
    #[pyo3(signature = (output_names, input_feed))]
    fn run_with_info<'py>(
        &self,
        py: Python<'py>,
        output_names: Option<&Bound<'py, PyAny>>,
        input_feed: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyTuple>> {
        let (out, pick) = self.run_inner(py, output_names, input_feed)?;
        let t = out.timings();
        let device = out.device().to_string();
        let peak = out.peak_bytes();
        let timings = (
            t.queue.as_secs_f64(),
            t.upload.as_secs_f64(),
            t.compute.as_secs_f64(),
            t.download.as_secs_f64(),
        );
        let outputs = self.select(py, out.outputs, &pick)?;
        (outputs, device, timings, peak).into_pyobject(py)
    }

    /// `{device: (weights, workspace, peak)}` in bytes.
    fn memory<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let d = PyDict::new(py);
        for (id, m) in self.session.memory() {
            d.set_item(id.to_string(), (m.weights, m.workspace, m.peak))?;
        }
        Ok(d)
    }

    /// Per-device counters: a list of dicts (requests, samples, runs, errors, faults,
    /// busy_s, queued_s, p50_s, p95_s, p99_s, mean_batch, healthy).
    fn stats<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyList>> {
        let list = PyList::empty(py);
        for s in self.session.stats() {
            let d = PyDict::new(py);
            d.set_item("device", s.device.to_string())?;
            d.set_item("requests", s.requests)?;
            d.set_item("samples", s.samples)?;
            d.set_item("runs", s.runs)?;
            d.set_item("errors", s.errors)?;
            d.set_item("faults", s.faults)?;
            d.set_item("busy_s", s.busy.as_secs_f64())?;
            d.set_item("queued_s", s.queued.as_secs_f64())?;
            d.set_item("p50_s", s.latency.p50.as_secs_f64())?;
            d.set_item("p95_s", s.latency.p95.as_secs_f64())?;
            d.set_item("p99_s", s.latency.p99.as_secs_f64())?;
            d.set_item("mean_batch", s.mean_batch())?;
            d.set_item("healthy", s.healthy)?;
            list.append(d)?;
        }
        Ok(list)
    }

    /// Measures every device at batch sizes 1, 2, 4, … up to `max_batch`: one dict per
    /// (device, batch) with latency, throughput and the stage split, in seconds.
    #[pyo3(signature = (max_batch = 32, time_budget_s = 30.0))]
    fn profile<'py>(
        &self,
        py: Python<'py>,
        max_batch: usize,
        time_budget_s: f64,
    ) -> PyResult<Bound<'py, PyList>> {
        if max_batch == 0 || !(time_budget_s >= 0.0 && time_budget_s.is_finite()) {
            return Err(invalid(
                "max_batch must be at least 1 and time_budget_s zero or more",
            ));
        }
        let options = CalibrationOptions {
            max_batch,
            time_budget: Some(Duration::from_secs_f64(time_budget_s)),
        };
        let profiles = py
            .detach(|| self.session.profile(&options, &mut |_| {}))
            .map_err(to_py)?;
        let list = PyList::empty(py);
        for p in profiles {
            for s in &p.samples {
                let d = PyDict::new(py);
                d.set_item("device", p.device.to_string())?;
                d.set_item("batch", s.batch)?;
                d.set_item("latency_s", s.total())?;
                d.set_item("throughput", s.batch as f64 / s.total().max(1e-12))?;
                d.set_item("upload_s", s.upload)?;
                d.set_item("compute_s", s.compute)?;
                d.set_item("download_s", s.download)?;
                d.set_item("weights_bytes", p.weights_bytes)?;
                d.set_item("activation_bytes_per_sample", p.activation_bytes_per_sample)?;
                list.append(d)?;
            }
        }
        Ok(list)
    }

    /// The devices the session runs on, after selection.
    #[getter]
    fn devices(&self) -> Vec<String> {
        self.session
            .devices()
            .iter()
            .map(|d| d.id.to_string())
            .collect()
    }

    #[getter]
    fn policy(&self) -> String {
        self.session.policy().to_string()
    }

    /// Hex SHA-256 of the model bytes.
    #[getter]
    fn model_hash(&self) -> &str {
        &self.session.model().hash
    }

    /// The ONNX Runtime `ModelMetadata` fields, as a dict.
    fn modelmeta<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let m = &self.meta;
        let d = PyDict::new(py);
        d.set_item("producer_name", &m.producer_name)?;
        d.set_item("graph_name", &m.graph_name)?;
        d.set_item("domain", &m.domain)?;
        d.set_item("description", &m.description)?;
        d.set_item("graph_description", &m.graph_description)?;
        d.set_item("version", m.version)?;
        d.set_item("custom_metadata_map", m.custom_metadata_map.clone())?;
        Ok(d)
    }
}

impl PySession {
    pub fn session(&self) -> &Session {
        &self.session
    }

    /// Converts the inputs, runs without the GIL, and says which outputs were asked for.
    fn run_inner(
        &self,
        py: Python<'_>,
        output_names: Option<&Bound<'_, PyAny>>,
        input_feed: &Bound<'_, PyAny>,
    ) -> PyResult<(Reply, Option<Vec<usize>>)> {
        let pick = match output_names {
            Some(names) if !names.is_none() => Some(self.output_indices(names)?),
            _ => None,
        };
        let feed = input_feed.cast::<PyDict>().map_err(|_| {
            invalid(format!(
                "input_feed must be a dict of input name to numpy array, got {}",
                input_feed
                    .get_type()
                    .name()
                    .map(|n| n.to_string())
                    .unwrap_or_default()
            ))
        })?;
        let mut names: Vec<String> = Vec::with_capacity(feed.len());
        let mut tensors: Vec<Tensor> = Vec::with_capacity(feed.len());
        for (k, v) in feed.iter() {
            let name: String = k
                .extract()
                .map_err(|_| invalid("input_feed keys must be input names (str)"))?;
            tensors.push(to_tensor(&name, &v)?);
            names.push(name);
        }
        let inputs: Vec<(&str, Tensor)> = names.iter().map(String::as_str).zip(tensors).collect();
        let out = py
            .detach(|| self.session.run_with_info(&inputs))
            .map_err(to_py)?;
        Ok((out, pick))
    }

    fn output_indices(&self, names: &Bound<'_, PyAny>) -> PyResult<Vec<usize>> {
        if names.is_instance_of::<PyString>() {
            return Err(invalid(
                "output_names must be a list of names (or None), not a single str",
            ));
        }
        let mut out = Vec::new();
        for n in names.try_iter()? {
            let n: String = n?
                .extract()
                .map_err(|_| invalid("output_names must hold str names"))?;
            let i = self
                .output_names
                .iter()
                .position(|o| *o == n)
                .ok_or_else(|| {
                    invalid(format!(
                        "the model has no output {n:?}; its outputs are {:?}",
                        self.output_names
                    ))
                })?;
            out.push(i);
        }
        Ok(out)
    }

    fn select<'py>(
        &self,
        py: Python<'py>,
        outputs: Vec<Tensor>,
        pick: &Option<Vec<usize>>,
    ) -> PyResult<Bound<'py, PyList>> {
        let list = PyList::empty(py);
        match pick {
            None => {
                for t in outputs {
                    list.append(to_numpy(py, t)?)?;
                }
            }
            Some(idx) => {
                // Move each output out once so numpy can take its buffer without a copy.
                let mut slots: Vec<Option<Tensor>> = outputs.into_iter().map(Some).collect();
                for (k, &i) in idx.iter().enumerate() {
                    let t = if idx[k + 1..].contains(&i) {
                        slots[i].clone()
                    } else {
                        slots[i].take()
                    };
                    let t =
                        t.ok_or_else(|| invalid(format!("output {i} is missing from the run")))?;
                    list.append(to_numpy(py, t)?)?;
                }
            }
        }
        Ok(list)
    }
}

/// `os.fspath(obj)` as a path, for str and `pathlib.Path` arguments.
fn fspath(obj: &Bound<'_, PyAny>) -> PyResult<PathBuf> {
    let os = obj.py().import("os")?;
    let p = os.call_method1("fspath", (obj,)).map_err(|_| {
        invalid(format!(
            "the model must be a path (str or os.PathLike) or the model's bytes, got {}",
            obj.get_type()
                .name()
                .map(|n| n.to_string())
                .unwrap_or_default()
        ))
    })?;
    let s: String = p
        .extract()
        .map_err(|_| invalid("the model path must be a str path, not bytes"))?;
    Ok(PathBuf::from(s))
}

/// Reads the file once for both the model and its metadata.
fn load_file(
    builder: crossover::SessionBuilder,
    path: &Path,
) -> crossover::Result<(Session, ModelMeta)> {
    let bytes = std::fs::read(path).map_err(|source| Error::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let mut model = Model::from_bytes_in(&bytes, Some(dir)).map_err(|e| match e {
        Error::Decode(m) => Error::Decode(format!("{}: {m}", path.display())),
        e => e,
    })?;
    model.path = Some(path.to_path_buf());
    let meta = ModelMeta::decode(&bytes).unwrap_or_default();
    drop(bytes);
    Ok((builder.build(model)?, meta))
}

fn value_infos<'py>(py: Python<'py>, infos: &[&ValueInfo]) -> PyResult<Bound<'py, PyList>> {
    let list = PyList::empty(py);
    for v in infos {
        // ONNX Runtime's convention: an int, the name of a symbolic dimension, or None.
        let shape: Option<Vec<Bound<'py, PyAny>>> = v.shape.as_ref().map(|dims| {
            dims.iter()
                .map(|d| match d {
                    Dim::Fixed(n) => PyInt::new(py, *n).into_any(),
                    Dim::Param(p) => PyString::new(py, p).into_any(),
                    Dim::Unknown => py.None().into_bound(py),
                })
                .collect()
        });
        list.append((v.name.as_str(), onnx_type(v.dtype), shape))?;
    }
    Ok(list)
}
