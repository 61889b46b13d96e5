//! `cargo xtask bench`: the criterion benches (GEMM with the machine's FMA peak, the
//! built-in models on every hardware device) and crossover against onnxruntime on the same
//! ONNX files, inputs and thread count in one process (`python/bench/compare.py`); then a
//! Markdown report with the ratios and SVG plots under `target/bench/`.

use std::fmt::Write as _;
use std::path::Path;
use std::process::Command;

use plotters::prelude::*;
use serde::Deserialize;

use crate::python;
use crate::util::status;

pub struct Options {
    pub threads: usize,
    /// Shorter criterion measurements and comparison blocks, for a first look.
    pub quick: bool,
    /// Only comparison cases and criterion benches whose name contains this.
    pub filter: Option<String>,
}

#[derive(Deserialize)]
struct Comparison {
    threads: usize,
    seq: usize,
    onnxruntime: String,
    cases: Vec<Case>,
}

#[derive(Deserialize)]
struct Case {
    model: String,
    batch: usize,
    crossover_ms: f64,
    onnxruntime_ms: f64,
    ratio: f64,
    runs: [usize; 2],
    gflops: Option<f64>,
    onnxruntime_gflops: Option<f64>,
}

/// One criterion result: its id path under `target/criterion` and median time.
struct Measured {
    id: Vec<String>,
    median_ns: f64,
    /// Work per iteration (FLOPs for GEMM, samples for models).
    elements: Option<f64>,
}

pub fn run(root: &Path, opts: &Options) -> Result<(), String> {
    crate::test::golden(root)?;
    let out = root.join("target/bench");
    std::fs::create_dir_all(&out).map_err(|e| e.to_string())?;
    let threads = opts.threads.to_string();

    for (package, benches) in [
        ("crossover", &["gemm", "models"][..]),
        ("crossover-sched", &["overhead"][..]),
    ] {
        let mut cargo = Command::new(env!("CARGO"));
        cargo
            .current_dir(root)
            .args(["bench", "-p", package])
            .env("CROSSOVER_BENCH_THREADS", &threads);
        for b in benches {
            cargo.args(["--bench", b]);
        }
        cargo.arg("--");
        if opts.quick {
            cargo.args(["--warm-up-time", "1", "--measurement-time", "2"]);
        }
        if let Some(f) = &opts.filter {
            cargo.arg(f);
        }
        status(&mut cargo)?;
    }

    let agreement = agreement(root, &threads, opts.quick)?;

    let python = python::develop(root, true)?;
    let json = out.join("compare.json");
    let mut compare = Command::new(python);
    compare
        .arg(root.join("python/bench/compare.py"))
        .arg("--golden")
        .arg(root.join("target/golden"))
        .args(["--threads", &threads, "--out"])
        .arg(&json);
    if opts.quick {
        compare.args(["--budget-s", "1.5"]);
    }
    if let Some(f) = &opts.filter {
        compare.args(["--filter", f]);
    }
    status(&mut compare)?;
    let comparison: Comparison = serde_json::from_str(
        &std::fs::read_to_string(&json).map_err(|e| format!("{}: {e}", json.display()))?,
    )
    .map_err(|e| format!("{}: {e}", json.display()))?;

    let criterion = collect(&root.join("target/criterion"))?;
    let report = report(&comparison, &criterion, &agreement, &out)?;
    let md = out.join("report.md");
    std::fs::write(&md, &report).map_err(|e| e.to_string())?;
    println!("{report}");
    eprintln!("report: {}", md.display());
    Ok(())
}

/// The simulator against real replays: `crossover tradeoffs` on the built-in MLP over the
/// CPU and every hardware GPU (software adapters are for correctness), whose output sets
/// each replay's single-request p50 beside the simulator's. Returns that table and the
/// policy summary; the whole output goes to `target/bench/tradeoffs.txt`.
fn agreement(root: &Path, threads: &str, quick: bool) -> Result<String, String> {
    let mut devices = vec!["cpu".to_string()];
    devices.extend(
        crossover::sched::discover()
            .found
            .iter()
            .filter(|f| !f.software && f.info.id.kind != crossover::DeviceKind::Cpu)
            .map(|f| f.info.id.to_string()),
    );
    let cache = root.join("target/bench/profiles");
    let mut cargo = Command::new(env!("CARGO"));
    cargo
        .current_dir(root)
        .args(["run", "--quiet", "--release", "-p", "crossover-cli", "--"])
        .args([
            "tradeoffs",
            "--model",
            "mlp",
            "--devices",
            &devices.join(","),
        ])
        .args(["--threads", threads, "--max-batch", "16", "--load", "0.4"])
        // Per round; three rounds (the default), pooled.
        .args(["--requests", if quick { "70" } else { "200" }])
        .env("CROSSOVER_CACHE_DIR", &cache);
    eprintln!("running {cargo:?}");
    let out = cargo.output().map_err(|e| format!("cargo run: {e}"))?;
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    if !out.status.success() {
        return Err(format!(
            "crossover tradeoffs failed:\n{text}{}",
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    std::fs::write(root.join("target/bench/tradeoffs.txt"), &text).map_err(|e| e.to_string())?;
    let table: Vec<&str> = text
        .lines()
        .skip_while(|l| !l.starts_with("simulator vs replay"))
        .take_while(|l| !l.trim().is_empty())
        .chain(text.lines().filter(|l| l.starts_with("latency policy:")))
        .collect();
    if table.is_empty() {
        return Err(format!(
            "no agreement table in the tradeoffs output:\n{text}"
        ));
    }
    Ok(table.join("\n"))
}

/// Every `new/estimates.json` under `dir`, with the throughput its `benchmark.json` names.
fn collect(dir: &Path) -> Result<Vec<Measured>, String> {
    let mut found = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() && p.file_name().is_some_and(|n| n != "base" && n != "report") {
                stack.push(p);
            } else if p.ends_with("new/estimates.json") {
                found.push(measured(dir, &p)?);
            }
        }
    }
    found.sort_by(|a, b| a.id.cmp(&b.id));
    Ok(found)
}

fn measured(root: &Path, estimates: &Path) -> Result<Measured, String> {
    let read = |p: &Path| -> Result<serde_json::Value, String> {
        let text = std::fs::read_to_string(p).map_err(|e| format!("{}: {e}", p.display()))?;
        serde_json::from_str(&text).map_err(|e| format!("{}: {e}", p.display()))
    };
    let est = read(estimates)?;
    let median_ns = est["median"]["point_estimate"]
        .as_f64()
        .ok_or_else(|| format!("{}: no median", estimates.display()))?;
    let dir = estimates.parent().expect("new/estimates.json has a parent");
    let bench = read(&dir.join("benchmark.json"))?;
    let elements = bench["throughput"]["Elements"].as_f64();
    let id = dir
        .parent()
        .and_then(|d| d.strip_prefix(root).ok())
        .map(|rel| {
            rel.components()
                .map(|c| c.as_os_str().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    Ok(Measured {
        id,
        median_ns,
        elements,
    })
}

fn cpu_name() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|n| n.trim().to_string())
        })
        .unwrap_or_else(|| std::env::consts::ARCH.to_string())
}

fn report(
    c: &Comparison,
    criterion: &[Measured],
    agreement: &str,
    out: &Path,
) -> Result<String, String> {
    let mut md = String::new();
    let w = |md: &mut String, s: String| {
        md.push_str(&s);
        md.push('\n');
    };
    w(&mut md, "# crossover CPU benchmark".into());
    w(&mut md, String::new());
    w(
        &mut md,
        format!(
            "{} · {} threads on both sides · onnxruntime {} (CPU provider, all graph \
             optimisations) · sequence {} · medians of interleaved blocks",
            cpu_name(),
            c.threads,
            c.onnxruntime,
            c.seq
        ),
    );
    w(&mut md, String::new());
    w(&mut md, "## crossover against onnxruntime".into());
    w(&mut md, String::new());
    w(
        &mut md,
        "| case | crossover ms | onnxruntime ms | ratio | runs (ours/ort) |".into(),
    );
    w(&mut md, "|---|---:|---:|---:|---:|".into());
    for k in &c.cases {
        let name = case_name(k);
        w(
            &mut md,
            format!(
                "| {name} | {:.3} | {:.3} | **{:.2}** | {}/{} |",
                k.crossover_ms, k.onnxruntime_ms, k.ratio, k.runs[0], k.runs[1]
            ),
        );
    }
    w(&mut md, String::new());
    w(
        &mut md,
        "Ratio = crossover / onnxruntime latency: below 1.00 crossover is faster.".into(),
    );

    let fma = criterion
        .iter()
        .find(|m| m.id.first().is_some_and(|g| g == "fma_peak"));
    let peak = fma.and_then(|m| Some(m.elements? / m.median_ns));
    // The probe's id: `<width>-bit_x<threads>`.
    let width = fma
        .and_then(|m| m.id.last())
        .and_then(|id| id.split('_').next())
        .unwrap_or("?")
        .to_string();
    let gemm: Vec<&Measured> = criterion
        .iter()
        .filter(|m| m.id.first().is_some_and(|g| g == "gemm"))
        .collect();
    if !gemm.is_empty() {
        w(&mut md, String::new());
        w(&mut md, "## GEMM (f32, CPU backend)".into());
        w(&mut md, String::new());
        match peak {
            Some(p) => w(
                &mut md,
                format!(
                    "FMA peak measured on {} threads (independent {width} FMA chains, the \
                     widest this CPU has, on every core): **{p:.1} GFLOP/s**.",
                    c.threads
                ),
            ),
            None => w(&mut md, "FMA peak: not measured on this CPU.".into()),
        }
        w(&mut md, String::new());
        w(&mut md, "| m×k×n | ms | GFLOP/s | % of FMA peak |".into());
        w(&mut md, "|---|---:|---:|---:|".into());
        for m in &gemm {
            let gf = m.elements.map(|e| e / m.median_ns);
            w(
                &mut md,
                format!(
                    "| {} | {:.3} | {} | {} |",
                    m.id.last().cloned().unwrap_or_default(),
                    m.median_ns / 1e6,
                    gf.map_or("-".into(), |g| format!("{g:.1}")),
                    match (gf, peak) {
                        (Some(g), Some(p)) => format!("{:.0}%", 100.0 * g / p),
                        _ => "-".into(),
                    }
                ),
            );
        }
    }

    let models: Vec<&Measured> = criterion
        .iter()
        .filter(|m| m.id.first().is_some_and(|g| g.starts_with("model_")))
        .collect();
    if !models.is_empty() {
        w(&mut md, String::new());
        w(
            &mut md,
            "## Built-in models per device (a single-device Session)".into(),
        );
        w(&mut md, String::new());
        w(
            &mut md,
            "| model | device | batch | ms | samples/s |".into(),
        );
        w(&mut md, "|---|---|---:|---:|---:|".into());
        for m in &models {
            let [group, device, batch] = m.id.as_slice() else {
                continue;
            };
            w(
                &mut md,
                format!(
                    "| {} | {device} | {batch} | {:.3} | {} |",
                    group.trim_start_matches("model_"),
                    m.median_ns / 1e6,
                    m.elements
                        .map_or("-".into(), |e| format!("{:.0}", e / (m.median_ns / 1e9)))
                ),
            );
        }
    }

    let sched: Vec<&Measured> = criterion
        .iter()
        .filter(|m| m.id.first().is_some_and(|g| g == "scheduler"))
        .collect();
    if !sched.is_empty() {
        w(&mut md, String::new());
        w(
            &mut md,
            "## Scheduler overhead per request (no compute: echo devices)".into(),
        );
        w(&mut md, String::new());
        w(&mut md, "| bench | µs per request |".into());
        w(&mut md, "|---|---:|".into());
        for m in &sched {
            let per = m.median_ns / m.elements.unwrap_or(1.0) / 1e3;
            w(
                &mut md,
                format!(
                    "| {} | {per:.2} |",
                    m.id.last().cloned().unwrap_or_default()
                ),
            );
        }
    }

    w(&mut md, String::new());
    w(&mut md, "## Simulator against replays".into());
    w(&mut md, String::new());
    w(
        &mut md,
        "`crossover tradeoffs --model mlp` (whole output in `target/bench/tradeoffs.txt`): \
         each replay's single-request p50 beside the simulator's on the same trace; \
         the goal is agreement within 20%."
            .into(),
    );
    w(&mut md, String::new());
    w(&mut md, format!("```\n{agreement}\n```"));

    let ratios = out.join("ratios.svg");
    plot_ratios(c, &ratios)?;
    w(&mut md, String::new());
    let mut plots = format!("Plots: `{}`", ratios.display());
    if !gemm.is_empty() {
        let g = out.join("gemm.svg");
        plot_gemm(&gemm, peak, &g)?;
        let _ = write!(plots, ", `{}`", g.display());
    }
    w(&mut md, plots);
    Ok(md)
}

fn case_name(k: &Case) -> String {
    match (k.gflops, k.onnxruntime_gflops) {
        (Some(a), Some(b)) => format!("{} ({a:.0} vs {b:.0} GFLOP/s)", k.model),
        _ => format!("{} batch {}", k.model, k.batch),
    }
}

fn plot_ratios(c: &Comparison, path: &Path) -> Result<(), String> {
    let bars: Vec<(String, f64)> = c.cases.iter().map(|k| (case_label(k), k.ratio)).collect();
    bar_chart(
        path,
        "crossover / onnxruntime latency (below 1: crossover faster)",
        "ratio",
        &bars,
        Some(1.0),
        |v| if v <= 1.0 { GREEN } else { RED },
    )
}

fn case_label(k: &Case) -> String {
    if k.gflops.is_some() {
        k.model.trim_start_matches("matmul ").to_string()
    } else {
        format!("{} b{}", k.model, k.batch)
    }
}

fn plot_gemm(gemm: &[&Measured], peak: Option<f64>, path: &Path) -> Result<(), String> {
    let bars: Vec<(String, f64)> = gemm
        .iter()
        .filter_map(|m| Some((m.id.last()?.clone(), m.elements? / m.median_ns)))
        .collect();
    bar_chart(
        path,
        "f32 GEMM GFLOP/s (line: measured FMA peak)",
        "GFLOP/s",
        &bars,
        peak,
        |_| BLUE,
    )
}

/// One labelled bar per value, with an optional horizontal reference line.
fn bar_chart(
    path: &Path,
    title: &str,
    y_desc: &str,
    bars: &[(String, f64)],
    line: Option<f64>,
    color: impl Fn(f64) -> RGBColor,
) -> Result<(), String> {
    let n = bars.len().max(1);
    let top = bars.iter().map(|b| b.1).chain(line).fold(1.0, f64::max) * 1.15;
    let root = SVGBackend::new(path, (900, 420)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| e.to_string())?;
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 18))
        .margin(12)
        .x_label_area_size(60)
        .y_label_area_size(50)
        .build_cartesian_2d(0f64..n as f64, 0f64..top)
        .map_err(|e| e.to_string())?;
    chart
        .configure_mesh()
        .disable_x_mesh()
        .x_labels(n)
        .x_label_formatter(&|x| {
            bars.get(x.floor() as usize)
                .map(|b| b.0.clone())
                .unwrap_or_default()
        })
        .y_desc(y_desc)
        .draw()
        .map_err(|e| e.to_string())?;
    chart
        .draw_series(bars.iter().enumerate().map(|(i, b)| {
            Rectangle::new(
                [(i as f64 + 0.15, 0.0), (i as f64 + 0.85, b.1)],
                color(b.1).mix(0.7).filled(),
            )
        }))
        .map_err(|e| e.to_string())?;
    if let Some(y) = line {
        chart
            .draw_series(LineSeries::new([(0.0, y), (n as f64, y)], BLACK))
            .map_err(|e| e.to_string())?;
    }
    root.present().map_err(|e| e.to_string())
}
