//! The ONNX backend node tests on the CPU backend, against an explicit list of the cases
//! expected not to pass (`tests/conformance/cpu-expected-failures.txt`, one name per
//! line, `#` comments). A newly failing case or a newly passing listed case fails the test,
//! so the list is always the truth.

mod common;

use std::collections::BTreeSet;

use crossover::conformance::{run_suite, Status};
use crossover::CpuBackend;

#[test]
fn node_tests_on_cpu() {
    let Some(root) = common::generated_dir("onnx-node-tests") else {
        return;
    };
    let listed: BTreeSet<String> = include_str!("conformance/cpu-expected-failures.txt")
        .lines()
        .map(|l| l.split('#').next().unwrap_or("").trim())
        .filter(|l| !l.is_empty())
        .map(str::to_string)
        .collect();
    let results = run_suite(&root, &CpuBackend::new(), None).expect("node tests are readable");
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
        "cpu conformance: {passed} of {} node test cases pass",
        results.len()
    );
    assert!(
        newly_failing.is_empty() && newly_passing.is_empty(),
        "cases failing but not listed:\n  {}\nlisted cases that now pass (remove them from the list):\n  {}",
        newly_failing.join("\n  "),
        newly_passing.join("\n  ")
    );
}
