//! `crossover._crossover`, the extension module under the `crossover` Python package.
//!
//! One module per concern: `session` (the compiled model), `convert` (numpy <-> tensors),
//! `options` (devices and policy), `errors` (exception classes), `meta` (model metadata).
//! The ONNX Runtime-compatible API is pure Python, in `python/crossover/`.

mod bench;
mod convert;
mod errors;
mod meta;
mod options;
mod session;

use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList};

/// Every device on this machine, usable or not: a list of dicts with `device`, `kind`,
/// `name`, `memory_total`, `memory_free`, `usable` and `reason`.
#[pyfunction]
fn devices(py: Python<'_>) -> PyResult<Bound<'_, PyList>> {
    let found = crossover::sched::discover();
    let list = PyList::empty(py);
    for f in &found.found {
        let d = PyDict::new(py);
        d.set_item("device", f.info.id.to_string())?;
        d.set_item("kind", f.info.id.kind.to_string())?;
        d.set_item("name", &f.info.name)?;
        d.set_item("memory_total", f.info.memory_total)?;
        d.set_item("memory_free", f.info.memory_free)?;
        d.set_item("usable", true)?;
        d.set_item(
            "reason",
            f.software
                .then_some("a software GPU: used when named, or when no other GPU exists"),
        )?;
        list.append(d)?;
    }
    for m in &found.missing {
        let d = PyDict::new(py);
        d.set_item("device", py.None())?;
        d.set_item("kind", m.kind.to_string())?;
        d.set_item("name", py.None())?;
        d.set_item("memory_total", 0)?;
        d.set_item("memory_free", 0)?;
        d.set_item("usable", false)?;
        d.set_item("reason", &m.reason)?;
        list.append(d)?;
    }
    Ok(list)
}

#[pymodule]
fn _crossover(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    m.add_class::<session::PySession>()?;
    m.add_function(wrap_pyfunction!(devices, m)?)?;
    m.add_function(wrap_pyfunction!(bench::_time_rust_runs, m)?)?;
    errors::register(m)?;
    Ok(())
}
