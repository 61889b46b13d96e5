//! The local Python virtualenv (`.venv`) with the packages in `xtask/python/requirements.txt`.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::util::status;

/// Path to the venv's python, creating the venv and installing the pinned packages if
/// they are missing or the requirements changed.
pub fn ensure_venv(root: &Path) -> Result<PathBuf, String> {
    let venv = root.join(".venv");
    let python = venv.join("bin/python");
    let reqs = root.join("xtask/python/requirements.txt");
    let wanted = std::fs::read_to_string(&reqs).map_err(|e| format!("{}: {e}", reqs.display()))?;
    let stamp = venv.join(".crossover-requirements");
    if python.is_file() && std::fs::read_to_string(&stamp).ok().as_deref() == Some(wanted.as_str())
    {
        return Ok(python);
    }
    if !python.is_file() {
        let host = std::env::var("PYTHON").unwrap_or_else(|_| "python3".into());
        status(Command::new(&host).args(["-m", "venv"]).arg(&venv))?;
    }
    status(
        Command::new(&python)
            .args([
                "-m",
                "pip",
                "install",
                "--quiet",
                "--disable-pip-version-check",
                "-r",
            ])
            .arg(&reqs),
    )?;
    std::fs::write(&stamp, wanted).map_err(|e| e.to_string())?;
    Ok(python)
}

/// Installs the packages of an extra requirements file (`xtask/python/NAME`) into the venv,
/// once per content of that file; returns the venv's python. For tools only some tasks need,
/// such as the CUDA wheels.
pub fn ensure_extra(root: &Path, name: &str) -> Result<PathBuf, String> {
    let python = ensure_venv(root)?;
    let reqs = root.join("xtask/python").join(name);
    let wanted = std::fs::read_to_string(&reqs).map_err(|e| format!("{}: {e}", reqs.display()))?;
    let stamp = root.join(".venv").join(format!(".crossover-{name}"));
    if std::fs::read_to_string(&stamp).ok().as_deref() == Some(wanted.as_str()) {
        return Ok(python);
    }
    status(
        Command::new(&python)
            .args([
                "-m",
                "pip",
                "install",
                "--quiet",
                "--disable-pip-version-check",
                "-r",
            ])
            .arg(&reqs),
    )?;
    std::fs::write(&stamp, wanted).map_err(|e| e.to_string())?;
    Ok(python)
}

/// Writes the ONNX node test cases to `target/onnx-node-tests` once per onnx version.
pub fn ensure_node_tests(root: &Path) -> Result<PathBuf, String> {
    let python = ensure_venv(root)?;
    let out = root.join("target/onnx-node-tests");
    let reqs = std::fs::read_to_string(root.join("xtask/python/requirements.txt"))
        .map_err(|e| e.to_string())?;
    let stamp = root.join("target/onnx-node-tests.stamp");
    if out.is_dir() && std::fs::read_to_string(&stamp).ok().as_deref() == Some(reqs.as_str()) {
        return Ok(out);
    }
    status(
        Command::new(&python)
            .arg(root.join("xtask/python/gen_node_tests.py"))
            .arg(&out),
    )?;
    std::fs::write(&stamp, reqs).map_err(|e| e.to_string())?;
    Ok(out)
}

/// Builds the extension module and installs the `crossover` package (editable) into
/// `.venv` with `maturin develop`. The dev profile reuses what `cargo test` compiled;
/// `release` is for measurements.
pub fn develop(root: &Path, release: bool) -> Result<PathBuf, String> {
    let python = ensure_venv(root)?;
    let venv = root.join(".venv");
    let mut cmd = Command::new(venv.join("bin/maturin"));
    cmd.current_dir(root.join("python"))
        .args(["develop", "--quiet"])
        .env("VIRTUAL_ENV", &venv)
        .env("PATH", venv_path(&venv));
    if release {
        cmd.arg("--release");
    }
    status(&mut cmd)?;
    Ok(python)
}

/// Runs the Python test suite (`python/tests`, the ONNX backend node tests included).
pub fn pytest(root: &Path) -> Result<(), String> {
    let python = develop(root, false)?;
    status(Command::new(python).current_dir(root.join("python")).args([
        "-m",
        "pytest",
        "-q",
        "-p",
        "no:cacheprovider",
        "tests",
    ]))
}

/// Builds the release abi3 wheel into `target/wheels`.
pub fn wheel(root: &Path) -> Result<(), String> {
    ensure_venv(root)?;
    let venv = root.join(".venv");
    status(
        Command::new(venv.join("bin/maturin"))
            .current_dir(root.join("python"))
            .args(["build", "--release", "--out"])
            .arg(root.join("target/wheels"))
            .env("VIRTUAL_ENV", &venv)
            .env("PATH", venv_path(&venv)),
    )
}

/// Measures the Python binding's per-call overhead against the same session called from
/// Rust, in one process (`python/bench/overhead.py`).
pub fn overhead(root: &Path, release: bool) -> Result<(), String> {
    let python = develop(root, release)?;
    status(Command::new(python).arg(root.join("python/bench/overhead.py")))
}

fn venv_path(venv: &Path) -> std::ffi::OsString {
    let mut paths = vec![venv.join("bin")];
    if let Some(p) = std::env::var_os("PATH") {
        paths.extend(std::env::split_paths(&p));
    }
    std::env::join_paths(paths).unwrap_or_default()
}
