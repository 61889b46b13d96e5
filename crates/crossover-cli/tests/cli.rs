//! The `crossover` binary end to end.

use std::path::PathBuf;
use std::process::Command;

use crossover::conformance::compare_with;
use crossover::core::npy;

fn crossover() -> Command {
    Command::new(env!("CARGO_BIN_EXE_crossover"))
}

fn golden(case: &str) -> Option<PathBuf> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../target/golden")
        .join(case);
    if dir.is_dir() {
        return Some(dir);
    }
    assert!(
        std::env::var("CI").as_deref() != Ok("true"),
        "{} is missing: CI must run `cargo xtask test`",
        dir.display()
    );
    eprintln!(
        "SKIPPED: {} is missing; run `cargo xtask test --prepare-only`",
        dir.display()
    );
    None
}

#[test]
fn run_on_the_encoder_matches_onnxruntime() {
    let Some(dir) = golden("zoo_encoder") else {
        return;
    };
    let out = tempfile::tempdir().unwrap();
    let status = crossover()
        .arg("run")
        .arg(dir.join("model.onnx"))
        .arg("--input")
        .arg(format!(
            "input_ids={}",
            dir.join("input_input_ids.npy").display()
        ))
        .arg("--input")
        .arg(format!(
            "attention_mask={}",
            dir.join("input_attention_mask.npy").display()
        ))
        .arg("--out")
        .arg(out.path())
        .args(["--device", "cpu"])
        .status()
        .unwrap();
    assert!(status.success());
    let got = npy::read(&out.path().join("last_hidden_state.npy")).unwrap();
    let want = npy::read(&dir.join("output_last_hidden_state.npy")).unwrap();
    compare_with(&got, &want, 1e-4, 1e-5).unwrap();
}

#[test]
fn info_describes_a_built_in_model() {
    let out = crossover().args(["info", "encoder"]).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    for want in [
        "input_ids",
        "int64",
        "[batch, sequence]",
        "last_hidden_state",
        "LayerNormalization",
        "opset:    17",
    ] {
        assert!(text.contains(want), "missing {want:?} in:\n{text}");
    }
}

#[test]
fn devices_lists_the_cpu() {
    let out = crossover().arg("devices").output().unwrap();
    assert!(out.status.success());
    assert!(String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .any(|l| l.starts_with("cpu ")));
}

/// A fresh profile cache per test, so each one calibrates.
fn cached(cmd: &mut Command) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    cmd.env("CROSSOVER_CACHE_DIR", dir.path());
    dir
}

#[test]
fn tradeoffs_profiles_then_replays_every_policy_and_baseline() {
    let mut cmd = crossover();
    let _cache = cached(&mut cmd);
    let out = cmd
        .args([
            "tradeoffs",
            "--model",
            "mlp",
            "--max-batch",
            "4",
            "--requests",
            "30",
            "--bulk",
            "4",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    for batch in ["1", "2", "4"] {
        assert!(
            text.lines()
                .any(|l| l.split_whitespace().take(2).eq(["cpu", batch])),
            "no calibration row for batch {batch}:\n{text}"
        );
    }
    assert!(
        text.contains("% compute") && text.contains("ms fixed per run"),
        "{text}"
    );
    for scenario in ["latency ", "throughput ", "cost<", "cpu-only "] {
        let row = text
            .lines()
            .find(|l| l.starts_with(scenario))
            .unwrap_or_else(|| panic!("no replay row for {scenario:?}:\n{text}"));
        // Every request of the replay answered: the errors column (after the scenario,
        // four "N ms" latencies, samples/s, $/1M and the mean batch) is zero.
        let errors: usize = row
            .split_whitespace()
            .nth(12)
            .unwrap()
            .parse()
            .unwrap_or(usize::MAX);
        assert_eq!(errors, 0, "{row}");
    }
    let summary = text
        .lines()
        .find(|l| l.starts_with("latency policy: single p99"))
        .unwrap_or_else(|| panic!("no latency-policy summary:\n{text}"));
    assert!(
        summary.contains("95% interval")
            && ["worse", "better", "the same within"]
                .iter()
                .any(|v| summary.contains(v)),
        "{summary}"
    );
    assert!(text.contains("replaying 3 rounds of 30 requests"), "{text}");
}

#[test]
fn profile_writes_json_and_an_svg_plot() {
    let dir = tempfile::tempdir().unwrap();
    let (json, svg) = (dir.path().join("p.json"), dir.path().join("p.svg"));
    let mut cmd = crossover();
    let _cache = cached(&mut cmd);
    let out = cmd
        .args(["profile", "mlp", "--max-batch", "4", "--json"])
        .arg(&json)
        .arg("--svg")
        .arg(&svg)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(
        text.contains("per 1M inferences") && text.contains("activations per sample"),
        "{text}"
    );
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    let cpu = report["profiles"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["device"] == "cpu")
        .expect("a cpu profile");
    assert_eq!(cpu["samples"].as_array().unwrap().len(), 3, "{cpu}");
    assert!(cpu["weights_bytes"].as_u64().unwrap() > 0);
    let plot = std::fs::read_to_string(&svg).unwrap();
    assert!(
        plot.starts_with("<svg") && plot.contains("batch size"),
        "{}",
        &plot[..200.min(plot.len())]
    );
}

#[test]
fn plan_sizes_a_fleet_from_a_profile() {
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("p.json");
    let mut cmd = crossover();
    let _cache = cached(&mut cmd);
    let out = cmd
        .args(["profile", "mlp", "--max-batch", "4", "--json"])
        .arg(&json)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = crossover()
        .args([
            "plan",
            "--trace",
            "diurnal",
            "--slo-ms",
            "1000",
            "--duration",
            "5",
            "--profile",
        ])
        .arg(&json)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    // How many CPUs the trace needs follows from the measured curve (a loaded machine
    // calibrates slower); that some CPU fleet meets a 1 s p99 does not.
    assert!(
        text.lines()
            .any(|l| l.starts_with("CPU only") && l.contains("x cpu")),
        "{text}"
    );
    assert!(text.contains("cheapest fleet meeting p99"), "{text}");
    let out = crossover()
        .args(["plan", "--trace", "weekly", "--profile"])
        .arg(&json)
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown trace"));
    let out = crossover()
        .args(["plan", "--profile", "/no/such.json"])
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&out.stderr).contains("/no/such.json"));
}

#[test]
fn errors_are_reported_not_panicked() {
    let out = crossover()
        .args(["run", "/no/such.onnx", "--out", "/tmp/x"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(
        err.starts_with("error: ") && err.contains("/no/such.onnx"),
        "{err}"
    );
    let out = crossover()
        .args(["run", "mlp", "--input", "x", "--out", "/tmp/x"])
        .output()
        .unwrap();
    assert!(String::from_utf8(out.stderr)
        .unwrap()
        .contains("NAME=FILE.npy"));
    let out = crossover()
        .args(["run", "mlp", "--device", "gpu", "--out", "/tmp/x"])
        .output()
        .unwrap();
    assert!(String::from_utf8(out.stderr)
        .unwrap()
        .contains("unknown device \"gpu\""));
}

#[test]
fn info_shows_the_cuda_placement_with_or_without_a_gpu() {
    let out = crossover()
        .args(["info", "--device", "cuda:0", "encoder"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("CUDA not available: ") || text.contains("device: cuda:0"),
        "{text}"
    );
    assert!(text.contains("placement on cuda:0: "), "{text}");
    assert!(text.contains("host: ") && text.contains("Shape"), "{text}");
    let hidden = crossover()
        .args(["info", "--device", "cuda:0", "mlp"])
        .env("CUDA_VISIBLE_DEVICES", "")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&hidden.stdout);
    assert!(
        text.contains("CUDA not available: CUDA_VISIBLE_DEVICES is set and empty"),
        "{text}"
    );
}
