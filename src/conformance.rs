//! Runs the ONNX backend node tests (as written by `cargo xtask conformance`) on a backend.
//!
//! Each case is a folder with `model.onnx` and `test_data_set_*/{input,output}_N.pb`.
//! Outputs are compared as the ONNX suite does: `|got - want| <= atol + rtol * |want|`
//! with rtol 1e-3 and atol 1e-7 (rtol two ULPs, 2^-6, for bfloat16), NaN equal to NaN.

use std::collections::BTreeMap;
use std::panic::AssertUnwindSafe;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crossover_core::proto::read_tensor_pb;
use crossover_core::{
    passes, with_array, Backend, CompileOptions, DType, ErrorKind, Model, Result, Tensor,
};
use crossover_cpu::CpuBackend;

pub const RTOL: f64 = 1e-3;
pub const ATOL: f64 = 1e-7;
/// The suite's relative tolerance for bfloat16 outputs: two ULPs, since one rounding step
/// already exceeds [`RTOL`].
pub const RTOL_BF16: f64 = 1.0 / 64.0;

#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Status {
    Pass,
    Fail(String),
    Unsupported(String),
}

#[derive(Clone, Debug)]
pub struct CaseResult {
    pub name: String,
    /// The op under test; expanded (function-body) cases count towards their op.
    pub op: String,
    pub status: Status,
}

/// Case folders under `root`, sorted by name.
pub fn list_cases(root: &Path) -> Result<Vec<PathBuf>> {
    let io = |source| crossover_core::Error::Io {
        path: root.to_path_buf(),
        source,
    };
    let mut cases: Vec<PathBuf> = std::fs::read_dir(root)
        .map_err(io)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.join("model.onnx").is_file())
        .collect();
    cases.sort();
    Ok(cases)
}

/// Runs one case; panics inside crossover are caught and reported as failures.
pub fn run_case(dir: &Path, backend: &dyn Backend) -> Status {
    match std::panic::catch_unwind(AssertUnwindSafe(|| try_case(dir, backend))) {
        Ok(Ok(())) => Status::Pass,
        Ok(Err(e)) if e.kind() == ErrorKind::Unsupported => Status::Unsupported(e.to_string()),
        Ok(Err(e)) => Status::Fail(e.to_string()),
        Err(p) => {
            let msg = p
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()));
            Status::Fail(format!("PANIC: {}", msg.unwrap_or_default()))
        }
    }
}

fn try_case(dir: &Path, backend: &dyn Backend) -> Result<()> {
    let model = Model::load(dir.join("model.onnx"))?;
    let mut graph = model.graph;
    passes::optimize(&mut graph, &CpuBackend::new())?;
    // GPU backends place the nodes they have no kernel for on the CPU, as a session does.
    let options = CompileOptions {
        host_fallback: Some(Arc::new(CpuBackend::new())),
        ..Default::default()
    };
    let exe = backend.compile(Arc::new(graph.clone()), &options)?;
    let mut sets: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|source| crossover_core::Error::Io {
            path: dir.to_path_buf(),
            source,
        })?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("test_data_set_"))
        })
        .collect();
    sets.sort();
    for set in sets {
        let read_all = |prefix: &str| -> Result<Vec<Tensor>> {
            let mut out = Vec::new();
            while let Some(p) =
                Some(set.join(format!("{prefix}_{}.pb", out.len()))).filter(|p| p.is_file())
            {
                out.push(read_tensor_pb(&p)?);
            }
            Ok(out)
        };
        let inputs = read_all("input")?;
        let expected = read_all("output")?;
        let got = exe.run(&inputs)?.outputs;
        if got.len() != expected.len() {
            return Err(crossover_core::invalid!(
                "{} outputs, expected {}",
                got.len(),
                expected.len()
            ));
        }
        for (i, (g, e)) in got.iter().zip(&expected).enumerate() {
            compare(g, e).map_err(|m| crossover_core::invalid!("output {i}: {m}"))?;
        }
    }
    Ok(())
}

/// Compares `got` with `want` under the suite's tolerances; `Err` says how they differ.
pub fn compare(got: &Tensor, want: &Tensor) -> std::result::Result<(), String> {
    let rtol = if want.dtype() == DType::BF16 {
        RTOL_BF16
    } else {
        RTOL
    };
    compare_with(got, want, rtol, ATOL)
}

/// Compares `got` with `want`: `|got - want| <= atol + rtol * |want|`, NaN equal to NaN,
/// dtypes and shapes equal, non-float values exactly equal.
pub fn compare_with(
    got: &Tensor,
    want: &Tensor,
    rtol: f64,
    atol: f64,
) -> std::result::Result<(), String> {
    if got.dtype() != want.dtype() {
        return Err(format!(
            "dtype {} but expected {}",
            got.dtype(),
            want.dtype()
        ));
    }
    if got.shape() != want.shape() {
        return Err(format!(
            "shape {:?} but expected {:?}",
            got.shape(),
            want.shape()
        ));
    }
    if !got.dtype().is_float() {
        let render =
            |t: &Tensor| with_array!(t, a => format!("{:?}", a.iter().collect::<Vec<_>>()));
        return if render(got) == render(want) {
            Ok(())
        } else {
            Err(format!("values differ: got {got:?}, expected {want:?}"))
        };
    }
    let (g, w) = (
        got.to_f64_vec().map_err(|e| e.to_string())?,
        want.to_f64_vec().map_err(|e| e.to_string())?,
    );
    let mut worst: Option<(usize, f64, f64)> = None;
    let mut bad = 0;
    for (i, (&a, &b)) in g.iter().zip(&w).enumerate() {
        let ok = (a.is_nan() && b.is_nan()) || a == b || (a - b).abs() <= atol + rtol * b.abs();
        if !ok {
            bad += 1;
            worst.get_or_insert((i, a, b));
        }
    }
    match worst {
        None => Ok(()),
        Some((i, a, b)) => Err(format!(
            "{bad} of {} values differ; first at flat index {i}: got {a}, expected {b}",
            g.len()
        )),
    }
}

/// The op a case tests: the single node's op type, or for an expanded case, that of the
/// case it expands.
fn case_op(dir: &Path, ops_by_case: &BTreeMap<String, String>) -> String {
    let name = dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    if let Some(base) = name.find("_expanded").map(|i| &name[..i]) {
        if let Some(op) = ops_by_case.get(base) {
            return op.clone();
        }
    }
    ops_by_case
        .get(&name)
        .cloned()
        .unwrap_or_else(|| "?".into())
}

/// Reads the op type of every single-node case (without importing it).
fn single_node_ops(cases: &[PathBuf]) -> BTreeMap<String, String> {
    use prost::Message;
    let mut m = BTreeMap::new();
    for dir in cases {
        let Ok(bytes) = std::fs::read(dir.join("model.onnx")) else {
            continue;
        };
        let Ok(p) = crossover_core::onnx::ModelProto::decode(bytes.as_slice()) else {
            continue;
        };
        let nodes = p.graph.map(|g| g.node).unwrap_or_default();
        if let [n] = nodes.as_slice() {
            let name = dir
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            m.insert(name, n.op_type.clone().unwrap_or_default());
        }
    }
    m
}

/// Runs every case under `root` whose name contains `filter`.
pub fn run_suite(
    root: &Path,
    backend: &dyn Backend,
    filter: Option<&str>,
) -> Result<Vec<CaseResult>> {
    let cases = list_cases(root)?;
    let ops = single_node_ops(&cases);
    let mut results = Vec::new();
    for dir in cases {
        let name = dir
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        if filter.is_some_and(|f| !name.contains(f)) {
            continue;
        }
        let op = case_op(&dir, &ops);
        let status = run_case(&dir, backend);
        results.push(CaseResult { name, op, status });
    }
    Ok(results)
}

/// Per-op (pass, fail, unsupported) counts.
pub fn tally(results: &[CaseResult]) -> BTreeMap<String, [usize; 3]> {
    let mut m: BTreeMap<String, [usize; 3]> = BTreeMap::new();
    for r in results {
        let e = m.entry(r.op.clone()).or_default();
        match r.status {
            Status::Pass => e[0] += 1,
            Status::Fail(_) => e[1] += 1,
            Status::Unsupported(_) => e[2] += 1,
        }
    }
    m
}

#[cfg(test)]
mod tests {
    use super::*;
    use half::bf16;

    fn bf(v: &[f32]) -> Tensor {
        Tensor::from_vec(&[v.len()], v.iter().map(|&x| bf16::from_f32(x)).collect()).unwrap()
    }

    #[test]
    fn bfloat16_gets_two_ulps_and_float32_does_not() {
        let half_ulp_up = bf16::from_bits(bf16::from_f32(0.5).to_bits() + 1).to_f32();
        assert!(compare(&bf(&[half_ulp_up, 1.0]), &bf(&[0.5, 1.0])).is_ok());
        assert!(compare(&bf(&[0.55, 1.0]), &bf(&[0.5, 1.0])).is_err());
        let f = Tensor::from_vec(&[1], vec![0.5f32]).unwrap();
        let f_off = Tensor::from_vec(&[1], vec![0.5f32 + 0.5 / 256.0]).unwrap();
        assert!(compare(&f_off, &f).is_err());
    }
}
