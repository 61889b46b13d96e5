//! The ONNX backend node tests on the CPU backend and on wgpu, each against an explicit
//! list of the cases expected not to pass (`tests/conformance/<device>-expected-failures.txt`,
//! one name per line, `#` comments). A newly failing case or a newly passing listed case fails the test,
//! so the list is always the truth.

mod common;

use std::collections::BTreeSet;

use crossover::conformance::{run_suite, Status};
use crossover::core::Backend;
use crossover::CpuBackend;

/// The names a list file holds: one per line, `#` comments.
fn listed(text: &str) -> BTreeSet<String> {
    text.lines()
        .map(|l| l.split('#').next().unwrap_or("").trim())
        .filter(|l| !l.is_empty())
        .map(str::to_string)
        .collect()
}

/// Runs the suite on `backend` and fails on any difference from the list.
fn check_against_list(root: &std::path::Path, backend: &dyn Backend, device: &str, list: &str) {
    let listed = listed(list);
    let results = run_suite(root, backend, None).expect("node tests are readable");
    let mut newly_failing = Vec::new();
    let mut newly_passing = Vec::new();
    for r in &results {
        match (&r.status, listed.contains(&r.name)) {
            (Status::Pass, true) => newly_passing.push(r.name.clone()),
            (Status::Fail(m) | Status::Unsupported(m), false) => {
                newly_failing.push(format!("{}: {m}", r.name))
            }
            _ => {}
        }
    }
    let passed = results.iter().filter(|r| r.status == Status::Pass).count();
    println!(
        "{device} conformance: {passed} of {} node test cases pass",
        results.len()
    );
    assert!(
        newly_failing.is_empty() && newly_passing.is_empty(),
        "cases failing but not listed:\n  {}\nlisted cases that now pass (remove them from the list):\n  {}",
        newly_failing.join("\n  "),
        newly_passing.join("\n  ")
    );
}

#[test]
fn node_tests_on_cpu() {
    let Some(root) = common::generated_dir("onnx-node-tests") else {
        return;
    };
    check_against_list(
        &root,
        &CpuBackend::new(),
        "cpu",
        include_str!("conformance/cpu-expected-failures.txt"),
    );
}

/// The same suite on wgpu:0 (llvmpipe where there is no GPU), nodes without a kernel on
/// the CPU fallback. With `CI=true` a missing adapter fails; otherwise it skips loudly.
#[test]
fn node_tests_on_wgpu() {
    let Some(root) = common::generated_dir("onnx-node-tests") else {
        return;
    };
    let gpu = match crossover_wgpu::WgpuBackend::new(0, crossover_wgpu::AdapterSelection::Auto) {
        Ok(g) => g,
        Err(e) => {
            if std::env::var("CI").is_ok_and(|v| v == "true") {
                panic!("CI=true but no wgpu adapter: {e}. Install mesa-vulkan-drivers.");
            }
            eprintln!("SKIPPED: no wgpu adapter ({e}); install mesa-vulkan-drivers for llvmpipe");
            return;
        }
    };
    println!("wgpu:0 is {}", gpu.adapter());
    check_against_list(
        &root,
        &gpu,
        "wgpu:0",
        include_str!("conformance/wgpu-expected-failures.txt"),
    );
}
