//! The Rust side of the binding-overhead measurement (`cargo xtask overhead`): the same
//! session run from a Rust loop, in the same process, so the two timings differ only by
//! what the binding adds.

use std::time::Instant;

use crossover::Tensor;
use pyo3::prelude::*;
use pyo3::types::PyDict;

use crate::convert::to_tensor;
use crate::errors::{invalid, to_py};
use crate::session::PySession;

/// Seconds per `Session::run` call, `n` calls, as a Rust embedder makes them.
#[pyfunction]
pub fn _time_rust_runs(
    py: Python<'_>,
    session: &Bound<'_, PySession>,
    input_feed: &Bound<'_, PyDict>,
    n: usize,
) -> PyResult<Vec<f64>> {
    let mut names = Vec::new();
    let mut tensors = Vec::new();
    for (k, v) in input_feed.iter() {
        let name: String = k
            .extract()
            .map_err(|_| invalid("input names must be str"))?;
        tensors.push(to_tensor(&name, &v)?);
        names.push(name);
    }
    let inputs: Vec<(&str, Tensor)> = names.iter().map(String::as_str).zip(tensors).collect();
    let s = session.get().session();
    py.detach(|| {
        (0..n)
            .map(|_| {
                let t = Instant::now();
                let out = s.run(&inputs)?;
                let dt = t.elapsed().as_secs_f64();
                drop(out);
                Ok(dt)
            })
            .collect::<crossover::Result<Vec<f64>>>()
    })
    .map_err(to_py)
}
