//! `cargo xtask conformance --write-expected`: rewrites the list of node test cases the CPU
//! is expected not to pass, each with the reason it does not.

use std::path::Path;

use crossover::conformance::{CaseResult, Status};

pub const LIST: &str = "tests/conformance/cpu-expected-failures.txt";

pub fn write(root: &Path, results: &[CaseResult]) -> Result<(), String> {
    let mut text = String::from(
        "# ONNX node test cases the CPU backend does not pass, with the reason.\n\
         # Checked by tests/conformance.rs; regenerate with `cargo xtask conformance --write-expected`.\n",
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
    std::fs::write(root.join(LIST), text).map_err(|e| format!("{LIST}: {e}"))
}
