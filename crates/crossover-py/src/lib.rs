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

#[pymodule]
fn _crossover(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    m.add_class::<session::PySession>()?;
    m.add_function(wrap_pyfunction!(bench::_time_rust_runs, m)?)?;
    errors::register(m)?;
    Ok(())
}
