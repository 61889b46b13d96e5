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

#[test]
fn tradeoffs_measures_each_batch_and_fits_a_curve() {
    let out = crossover()
        .args([
            "tradeoffs",
            "--model",
            "mlp",
            "--batch",
            "1,4",
            "--runs",
            "2",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    for batch in ["1", "4"] {
        assert!(
            text.lines()
                .any(|l| l.split_whitespace().take(2).eq(["cpu", batch])),
            "{text}"
        );
    }
    let fit = text
        .lines()
        .find(|l| l.starts_with("cpu: "))
        .expect("no curve line");
    assert!(
        fit.contains("ms fixed per run") && fit.contains("% compute"),
        "{fit}"
    );
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
