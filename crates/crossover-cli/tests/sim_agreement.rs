//! The simulator against real replays. `crossover tradeoffs` replays one Poisson trace of
//! singles and bulk batches through the live scheduler under every policy, then runs the
//! same trace through the simulator on the same curves, queues and measured host costs;
//! each replay's p50 must agree with the simulation's within 20%. This checks the model,
//! not the machine's speed: both sides come from the same measurements.
//!
//! On the CPU alone, and on the CPU with the wgpu adapter when there is one (always under
//! `CI=true`, where a missing adapter fails the test).

use std::process::Command;
use std::sync::Mutex;

use crossover::DeviceKind;

/// One row of the agreement table: scenario, ratio simulated/replayed p50, the verdict.
#[derive(Debug)]
struct Row {
    scenario: String,
    ratio: f64,
    agrees: bool,
    line: String,
}

/// One replay at a time: two at once would share the cores that each one measures.
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

/// Runs `tradeoffs` on the zoo MLP on `devices` and reads its agreement table.
fn agreement(devices: &str) -> (Vec<Row>, String) {
    let _turn = ONE_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner());
    let cache = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_crossover"))
        .env("CROSSOVER_CACHE_DIR", cache.path())
        .args([
            "tradeoffs",
            "--model",
            "mlp",
            "--devices",
            devices,
            "--max-batch",
            "16",
            "--budget-s",
            "10",
            // Enough singles that the median is stable; the rate is the default 60% of
            // what the best device sustains, a moderate load.
            "--requests",
            "600",
        ])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let rows = text
        .lines()
        .skip_while(|l| !l.starts_with("simulator vs replay"))
        .skip(2)
        .take_while(|l| !l.trim().is_empty())
        .map(|l| {
            // scenario, replay p50, "ms", simulated p50, "ms", ratio, verdict, ...
            let f: Vec<&str> = l.split_whitespace().collect();
            Row {
                scenario: f[0].to_string(),
                ratio: f[5].parse().unwrap_or(f64::NAN),
                agrees: f[6] == "yes",
                line: l.to_string(),
            }
        })
        .collect();
    (rows, text)
}

fn check(devices: &str, scenarios: &[&str]) {
    let (rows, text) = agreement(devices);
    println!("{text}");
    for s in scenarios {
        let row = rows
            .iter()
            .find(|r| r.scenario == *s)
            .unwrap_or_else(|| panic!("no agreement row for {s}:\n{text}"));
        assert!(
            row.agrees && (row.ratio - 1.0).abs() <= 0.2,
            "the simulated p50 of {s} is {:.2}x the replay's:\n{}\n\n{text}",
            row.ratio,
            row.line
        );
    }
}

#[test]
fn the_simulator_agrees_with_replays_on_the_cpu() {
    check("cpu", &["latency", "throughput", "cost<250ms", "cpu-only"]);
}

#[test]
fn the_simulator_agrees_with_replays_on_the_cpu_and_wgpu() {
    let found = crossover::sched::discover();
    let Some(gpu) = found
        .found
        .iter()
        .find(|f| f.info.id.kind == DeviceKind::Wgpu)
    else {
        let why: Vec<_> = found.missing.iter().map(|m| m.reason.clone()).collect();
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "CI=true but no wgpu adapter: {why:?}"
        );
        eprintln!("SKIPPED: no wgpu adapter ({why:?}); install mesa-vulkan-drivers");
        return;
    };
    let gpu = gpu.info.id.to_string();
    let only = format!("{gpu}-only");
    check(
        &format!("cpu,{gpu}"),
        &[
            "latency",
            "throughput",
            "cost<250ms",
            "cpu-only",
            &only,
            "round-robin",
        ],
    );
}
