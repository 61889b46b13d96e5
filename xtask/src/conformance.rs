//! `cargo xtask conformance`: the ONNX node test suite on a device, with per-op counts.

use std::path::Path;

use crossover::conformance::{run_suite, tally, Status};
use crossover::CpuBackend;

pub fn run(
    root: &Path,
    filter: Option<&str>,
    verbose: bool,
    write_expected: bool,
) -> Result<(), String> {
    if write_expected && filter.is_some() {
        return Err("--write-expected needs the whole suite (no --filter)".into());
    }
    let cases = crate::python::ensure_node_tests(root)?;
    let backend = CpuBackend::new();
    let results = run_suite(&cases, &backend, filter).map_err(|e| e.to_string())?;
    let counts = tally(&results);
    println!("{:<32} {:>5} {:>5} {:>5}", "op", "pass", "fail", "unsup");
    for (op, [p, f, u]) in &counts {
        println!("{op:<32} {p:>5} {f:>5} {u:>5}");
    }
    if verbose {
        for r in &results {
            match &r.status {
                Status::Pass => {}
                Status::Fail(m) => println!("FAIL  {}: {m}", r.name),
                Status::Unsupported(m) => println!("UNSUP {}: {m}", r.name),
            }
        }
    }
    let total = results.len();
    let pass = results.iter().filter(|r| r.status == Status::Pass).count();
    let fail = results
        .iter()
        .filter(|r| matches!(r.status, Status::Fail(_)))
        .count();
    let pct = if total == 0 {
        0.0
    } else {
        100.0 * pass as f64 / total as f64
    };
    println!("total: {pass} passed, {fail} failed, {} unsupported of {total} cases ({pct:.1}% pass) on cpu", total - pass - fail);

    let report = serde_json::json!({
        "device": "cpu",
        "total": total,
        "passed": pass,
        "failed": fail,
        "unsupported": total - pass - fail,
        "per_op": counts.iter().map(|(op, [p, f, u])| (op.clone(), serde_json::json!({"pass": p, "fail": f, "unsupported": u}))).collect::<serde_json::Map<_, _>>(),
        "cases": results.iter().map(|r| serde_json::json!({
            "name": r.name,
            "op": r.op,
            "status": match &r.status { Status::Pass => "pass", Status::Fail(_) => "fail", Status::Unsupported(_) => "unsupported" },
            "message": match &r.status { Status::Pass => "", Status::Fail(m) | Status::Unsupported(m) => m },
        })).collect::<Vec<_>>(),
    });
    let out = root.join("target/conformance");
    std::fs::create_dir_all(&out).map_err(|e| e.to_string())?;
    let path = out.join(if filter.is_some() {
        "cpu-filtered.json"
    } else {
        "cpu.json"
    });
    std::fs::write(&path, serde_json::to_string_pretty(&report).unwrap())
        .map_err(|e| e.to_string())?;
    println!("report: {}", path.display());
    if write_expected {
        crate::expected::write(root, &results)?;
        println!("wrote {}", crate::expected::LIST);
    }
    Ok(())
}
