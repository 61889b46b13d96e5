//! The simulator against real replays. `crossover tradeoffs` replays one Poisson trace of
//! singles and bulk batches through the live scheduler under every policy and runs the
//! same trace through the simulator on the same curves, queues and measured host costs
//! (the scheduler's per-request overhead, contention between devices). Each replay's p50
//! must agree with the simulation's within 20%: the check's always (the calibrated curves
//! scaled by the speed each device ran at in the replay, so that another process slowing
//! the machine down is not blamed on the model), the forecast's too when every device ran
//! at its calibrated speed. A p50 the table marks `unstable` (in the gap between two
//! devices' latency modes) or `few` (most requests timed out) is not judged. This checks the model, not how fast the machine
//! is: both sides come from the same measurements.
//!
//! On the CPU alone, and on the CPU with the wgpu adapter when there is one (always under
//! `CI=true`, where a missing adapter fails the test).

use std::process::Command;
use std::sync::Mutex;

use crossover::DeviceKind;

/// One row of the agreement table.
#[derive(Debug)]
struct Row {
    scenario: String,
    /// The forecast's verdict: yes, NO or unstable.
    forecast: String,
    /// Each device's speed in the replay relative to its calibration.
    speeds: Vec<f64>,
    /// The check's ratio simulated/replayed p50 and verdict.
    ratio: f64,
    check: String,
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
            // Enough singles for a stable median, at a moderate load: queues form, yet a
            // burst of work from another process does not snowball.
            "--requests",
            "600",
            "--load",
            "0.4",
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
        .skip(4)
        .take_while(|l| !l.trim().is_empty() && !l.starts_with("the devices"))
        .map(|l| {
            // scenario, replay p50 ms, forecast ms, ratio, verdict, speeds, check ms,
            // ratio, verdict, ...
            let f: Vec<&str> = l.split_whitespace().collect();
            Row {
                scenario: f[0].to_string(),
                forecast: f[6].to_string(),
                speeds: f[7]
                    .split(',')
                    .map(|s| {
                        s.rsplit('=')
                            .next()
                            .and_then(|v| v.parse().ok())
                            .unwrap_or(f64::NAN)
                    })
                    .collect(),
                ratio: f[10].parse().unwrap_or(f64::NAN),
                check: f[11].to_string(),
                line: l.to_string(),
            }
        })
        .collect();
    (rows, text)
}

/// What disagrees in one attempt, if anything.
fn disagreements(rows: &[Row], scenarios: &[&str], text: &str) -> Vec<String> {
    let mut bad = Vec::new();
    for s in scenarios {
        let Some(row) = rows.iter().find(|r| r.scenario == *s) else {
            panic!("no agreement row for {s}:\n{text}");
        };
        // A p50 in the gap between two devices' modes moves with a few requests, and one
        // of a handful of requests (the rest timed out) says little; the table marks
        // both, and such a row proves nothing either way.
        if row.check == "unstable" || row.check == "few" {
            continue;
        }
        if row.check != "yes" || (row.ratio - 1.0).abs() > 0.2 {
            bad.push(format!("check {:.2}x: {}", row.ratio, row.line));
        }
        // The forecast alone is held to the replay when every device ran at its
        // calibrated speed (another process did not slow the machine down meanwhile).
        let steady = row.speeds.iter().all(|f| (f - 1.0).abs() <= 0.05);
        if steady && row.forecast == "NO" {
            bad.push(format!("forecast: {}", row.line));
        }
    }
    bad
}

/// Up to three attempts: another process on this shared machine can slow a whole replay
/// down unevenly; a wrong model disagrees every time.
fn check(devices: &str, scenarios: &[&str]) {
    let mut failures = Vec::new();
    for attempt in 1..=3 {
        let (rows, text) = agreement(devices);
        println!("attempt {attempt}:\n{text}");
        let bad = disagreements(&rows, scenarios, &text);
        if bad.is_empty() {
            return;
        }
        failures.push(format!("attempt {attempt}:\n{}", bad.join("\n")));
    }
    panic!(
        "the simulator disagrees with the replays on {devices}:\n{}",
        failures.join("\n")
    );
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
    // Not round-robin: it overloads llvmpipe by design, so the CPU's half runs the whole
    // replay beside a software GPU busy on every core, a slowdown that one measured
    // contention factor describes only roughly (docs/scheduler.md says so).
    check(
        &format!("cpu,{gpu}"),
        &["latency", "throughput", "cost<250ms", "cpu-only", &only],
    );
}
