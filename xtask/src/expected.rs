//! `cargo xtask conformance --write-expected`: rewrites the list of node test cases the CPU
//! is expected not to pass, each with the reason it does not.

use std::path::Path;

use crossover::conformance::{CaseResult, Status};
use crossover::core::DeviceKind;

/// The expected-failure list of a kind of device: one per backend, since each runs a
/// different set of kernels.
pub fn list(kind: DeviceKind) -> String {
    format!("tests/conformance/{kind}-expected-failures.txt")
}

/// Rewrites the list for `kind`; returns its path.
pub fn write(root: &Path, kind: DeviceKind, results: &[CaseResult]) -> Result<String, String> {
    let (name, flag) = match kind {
        DeviceKind::Cpu => ("CPU".to_string(), String::new()),
        k => (k.to_string(), format!(" --device {k}:0")),
    };
    let mut text = format!(
        "# ONNX node test cases the {name} backend does not pass, with the reason.\n\
         # Checked by tests/conformance.rs; regenerate with `cargo xtask conformance{flag} --write-expected`.\n",
    );
    for r in results {
        let reason = match &r.status {
            Status::Pass => continue,
            Status::Fail(m) => format!("fails: {m}"),
            Status::Unsupported(m) => m.clone(),
        };
        let reason: String = reason.chars().take(140).collect();
        text.push_str(&format!("{:<60} # {}\n", r.name, reason.replace('\n', " ")));
    }
    let path = list(kind);
    std::fs::write(root.join(&path), text).map_err(|e| format!("{path}: {e}"))?;
    Ok(path)
}
