//! `cargo xtask conformance`: the ONNX node test suite on a device, with per-op counts.

use std::path::Path;

use crossover::conformance::{run_suite, tally, Status};
use crossover::core::{Backend, DeviceId, DeviceKind};
use crossover::CpuBackend;

/// The backend named by `--device`: `cpu` or `wgpu:N` (software adapters included, so
/// llvmpipe counts as a device here).
fn backend(device: &DeviceId) -> Result<Box<dyn Backend>, String> {
    match device.kind {
        DeviceKind::Cpu => Ok(Box::new(CpuBackend::new())),
        DeviceKind::Wgpu => {
            crossover_wgpu::WgpuBackend::new(device.index, crossover_wgpu::AdapterSelection::Auto)
                .map(|b| {
                    println!("device {device}: {}", b.adapter());
                    Box::new(b) as Box<dyn Backend>
                })
                .map_err(|e| e.to_string())
        }
        DeviceKind::Cuda => Err(format!(
            "{device}: the CUDA backend is not part of xtask conformance yet"
        )),
    }
}

pub fn run(
    root: &Path,
    device: &str,
    filter: Option<&str>,
    verbose: bool,
    write_expected: bool,
) -> Result<(), String> {
    if write_expected && filter.is_some() {
        return Err("--write-expected needs the whole suite (no --filter)".into());
    }
    let device: DeviceId = device
        .parse()
        .map_err(|e: crossover::core::Error| e.to_string())?;
    let backend = backend(&device)?;
    let cases = crate::python::ensure_node_tests(root)?;
    let results = run_suite(&cases, backend.as_ref(), filter).map_err(|e| e.to_string())?;
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
    println!("total: {pass} passed, {fail} failed, {} unsupported of {total} cases ({pct:.1}% pass) on {device}", total - pass - fail);

    let report = serde_json::json!({
        "device": device.to_string(),
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
    let stem = device.to_string().replace(':', "-");
    let path = out.join(if filter.is_some() {
        format!("{stem}-filtered.json")
    } else {
        format!("{stem}.json")
    });
    std::fs::write(&path, serde_json::to_string_pretty(&report).unwrap())
        .map_err(|e| e.to_string())?;
    println!("report: {}", path.display());
    if write_expected {
        let list = crate::expected::write(root, device.kind, &results)?;
        println!("wrote {list}");
    }
    Ok(())
}
