//! `cargo xtask test`: everything CI runs, from a fresh clone.

use std::path::Path;
use std::process::Command;

use crossover::zoo::ZooModel;

use crate::python;
use crate::util::status;

/// Prepares the generated test data (node tests, golden data) without running tests.
pub fn prepare(root: &Path) -> Result<(), String> {
    python::ensure_node_tests(root)?;
    golden(root)
}

pub fn run(root: &Path) -> Result<(), String> {
    prepare(root)?;
    // Committed PTX is fresh and assembles for sm_80 and sm_90 (ptxas from a wheel).
    crate::kernels::run(root, true)?;
    crate::vulkan::ensure()?;
    // The extension module is built by maturin for the Python suite; building it here too
    // would compile pyo3 twice under different settings.
    let rust = status(Command::new(env!("CARGO")).current_dir(root).args([
        "test",
        "--workspace",
        "--exclude",
        "crossover-py",
        "--no-fail-fast",
    ]));
    let python = python::pytest(root);
    match (rust, python) {
        (Ok(()), Ok(())) => Ok(()),
        (r, p) => Err([r.err(), p.err()]
            .into_iter()
            .flatten()
            .collect::<Vec<_>>()
            .join("; ")),
    }
}

/// Writes `target/golden`: crossover's built-in models exported to ONNX plus the models of
/// `gen_golden.py`, with onnxruntime's outputs for each.
pub(crate) fn golden(root: &Path) -> Result<(), String> {
    let python = python::ensure_venv(root)?;
    let out = root.join("target/golden");
    for z in ZooModel::ALL {
        let dir = out.join(format!("zoo_{}", z.name()));
        std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
        std::fs::write(dir.join("model.onnx"), z.onnx_bytes()).map_err(|e| e.to_string())?;
    }
    status(
        Command::new(python)
            .arg(root.join("xtask/python/gen_golden.py"))
            .arg(&out),
    )
}
