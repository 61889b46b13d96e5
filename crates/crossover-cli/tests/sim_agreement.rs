//! The simulator next to real replays. `crossover tradeoffs` replays rounds of Poisson
//! traces of singles and bulk batches through the live scheduler under every policy and
//! runs the same traces through the simulator on the same curves, queues and measured host
//! costs, then prints both p50s side by side.
//!
//! How close they are is a measurement, reported by `cargo xtask bench` (the
//! "Simulator against replays" section of its report), not asserted here: on a shared
//! machine a replay's latency moves with whatever else runs. These tests pin down what
//! does not move: a row for every scenario, with finite times, a speed per device and
//! verdicts from the table's own vocabulary.

use std::process::Command;

use crossover::DeviceKind;

/// One row of the agreement table.
#[derive(Debug)]
struct Row {
    scenario: String,
    replay_ms: f64,
    forecast_ms: f64,
    forecast: String,
    speeds: Vec<f64>,
    check_ms: f64,
    check: String,
    line: String,
}

/// Runs `tradeoffs` on the zoo MLP on `devices` and reads its agreement table.
fn agreement(devices: &str) -> (Vec<Row>, String) {
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
            "8",
            "--budget-s",
            "5",
            "--requests",
            "120",
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
    let ms = |f: &str| f.parse::<f64>().unwrap_or(f64::NAN);
    let rows = text
        .lines()
        .skip_while(|l| !l.starts_with("simulator vs replay"))
        .skip(4)
        .take_while(|l| !l.trim().is_empty() && !l.starts_with("the devices"))
        .map(|l| {
            // scenario, replay p50 ms, forecast ms, ratio, verdict, speeds, check ms,
            // ratio, verdict, batch rep/sim, errors rep/sim
            let f: Vec<&str> = l.split_whitespace().collect();
            assert_eq!(f.len(), 14, "malformed agreement row: {l}");
            Row {
                scenario: f[0].to_string(),
                replay_ms: ms(f[1]),
                forecast_ms: ms(f[3]),
                forecast: f[6].to_string(),
                speeds: f[7]
                    .split(',')
                    .map(|s| s.rsplit('=').next().map_or(f64::NAN, ms))
                    .collect(),
                check_ms: ms(f[8]),
                check: f[11].to_string(),
                line: l.to_string(),
            }
        })
        .collect();
    (rows, text)
}

fn check(devices: &str, scenarios: &[&str]) {
    let (rows, text) = agreement(devices);
    println!("{text}");
    let n_devices = devices.split(',').count();
    for s in scenarios {
        let row = rows
            .iter()
            .find(|r| r.scenario == *s)
            .unwrap_or_else(|| panic!("no agreement row for {s}:\n{text}"));
        for (what, v) in [
            ("replay p50", row.replay_ms),
            ("forecast", row.forecast_ms),
            ("check", row.check_ms),
        ] {
            assert!(
                v.is_finite() && v > 0.0,
                "{what} is not a time: {}",
                row.line
            );
        }
        assert_eq!(row.speeds.len(), n_devices, "{}", row.line);
        assert!(
            row.speeds.iter().all(|f| f.is_finite() && *f > 0.0),
            "{}",
            row.line
        );
        for verdict in [&row.forecast, &row.check] {
            assert!(
                ["yes", "NO", "unstable", "few"].contains(&verdict.as_str()),
                "unknown verdict {verdict:?}: {}",
                row.line
            );
        }
    }
    assert!(
        text.contains("latency policy: single p99"),
        "no policy summary:\n{text}"
    );
}

#[test]
fn the_simulator_is_set_beside_replays_on_the_cpu() {
    check("cpu", &["latency", "throughput", "cost<250ms", "cpu-only"]);
}

#[test]
fn the_simulator_is_set_beside_replays_on_the_cpu_and_wgpu() {
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
    // Round-robin is replayed too, but not read: it overloads llvmpipe by design, and its
    // singles may all time out.
    check(
        &format!("cpu,{gpu}"),
        &["latency", "throughput", "cost<250ms", "cpu-only", &only],
    );
}
