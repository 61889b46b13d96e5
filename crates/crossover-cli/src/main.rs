//! `crossover`: the operator's command line.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::{Parser, Subcommand};
use crossover::core::npy;
use crossover::zoo::ZooModel;
use crossover::{Backend, CpuBackend, DeviceId, Dim, Error, Model, Result, Session, Tensor};
use crossover_sched::{crossover as crossover_point, CostCurve, Sample};

#[derive(Parser)]
#[command(
    name = "crossover",
    version,
    about = "Run ONNX models on the device that serves them best"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// List the devices crossover can use: kind, name, memory, compute units.
    Devices,
    /// Describe a model: inputs, outputs, opset, op histogram, parameters.
    Info {
        /// An .onnx file, or a built-in model: mlp, cnn, encoder.
        model: String,
        /// Also show where each node would run on this device (cuda:N: GPU or host
        /// fallback, and why).
        #[arg(long)]
        device: Option<String>,
    },
    /// Run a model on .npy inputs and write each output to DIR/<output name>.npy.
    Run {
        /// An .onnx file, or a built-in model: mlp, cnn, encoder.
        model: String,
        /// An input as NAME=FILE.npy; repeat for each input.
        #[arg(long = "input", short, value_name = "NAME=FILE.npy")]
        inputs: Vec<String>,
        /// Folder for the outputs (created if missing).
        #[arg(long, value_name = "DIR")]
        out: PathBuf,
        /// Device to run on: cpu, cuda:N or wgpu:N.
        #[arg(long, default_value = "cpu")]
        device: String,
        /// CPU worker threads (default: all cores).
        #[arg(long)]
        threads: Option<usize>,
    },
    /// Measure latency and throughput at several batch sizes on every device present.
    Tradeoffs {
        /// An .onnx file, or a built-in model: mlp, cnn, encoder.
        #[arg(long, default_value = "encoder")]
        model: String,
        /// Batch sizes to measure.
        #[arg(long, value_delimiter = ',', default_value = "1,2,4,8,16")]
        batch: Vec<usize>,
        /// Sequence length for models with a `sequence` dimension.
        #[arg(long, default_value_t = 128)]
        seq: usize,
        /// Timed runs per batch size (after one warm-up run).
        #[arg(long, default_value_t = 5)]
        runs: usize,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Devices => devices(),
        Command::Info { model, device } => info(&model, device.as_deref()),
        Command::Run {
            model,
            inputs,
            out,
            device,
            threads,
        } => run(&model, &inputs, &out, &device, threads),
        Command::Tradeoffs {
            model,
            batch,
            seq,
            runs,
        } => tradeoffs(&model, &batch, seq, runs),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

/// A model from a path, or a built-in one by name.
fn load_model(spec: &str) -> Result<Model> {
    let path = Path::new(spec);
    if path.exists() {
        return Model::load(path);
    }
    match spec.parse::<ZooModel>() {
        Ok(z) => z.model(),
        Err(_) => Model::load(path),
    }
}

fn gib(bytes: u64) -> String {
    format!("{:.1} GiB", bytes as f64 / (1u64 << 30) as f64)
}

fn devices() -> Result<()> {
    let cpu = CpuBackend::new().info();
    println!(
        "{:<8} {:<6} {:<44} {:>12} {:>12} {:>6}  status",
        "device", "kind", "name", "memory", "free", "units"
    );
    println!(
        "{:<8} {:<6} {:<44} {:>12} {:>12} {:>6}  usable",
        cpu.id.to_string(),
        cpu.id.kind.to_string(),
        cpu.name,
        gib(cpu.memory_total),
        gib(cpu.memory_free),
        cpu.compute_units
    );
    Ok(())
}

fn info(spec: &str, device: Option<&str>) -> Result<()> {
    let model = load_model(spec)?;
    let device: Option<DeviceId> = device.map(str::parse).transpose()?;
    let g = &model.graph;
    let dims = |d: &Option<Vec<Dim>>| match d {
        Some(d) => format!("[{}]", crossover::core::graph::render_dims(d)),
        None => "[?]".into(),
    };
    let ty = |t: Option<crossover::DType>| t.map(|t| t.to_string()).unwrap_or_else(|| "?".into());
    println!(
        "model:    {}",
        model
            .path
            .as_ref()
            .map(|p| p.display().to_string())
            .unwrap_or_else(|| spec.to_string())
    );
    println!(
        "producer: {}",
        if model.producer.is_empty() {
            "?"
        } else {
            &model.producer
        }
    );
    println!("opset:    {} (IR version {})", g.opset, model.ir_version);
    println!("inputs:");
    for v in g.input_infos() {
        println!("  {:<24} {:<8} {}", v.name, ty(v.dtype), dims(&v.shape));
    }
    println!("outputs:");
    for v in g.output_infos() {
        println!("  {:<24} {:<8} {}", v.name, ty(v.dtype), dims(&v.shape));
    }
    let (params, bytes) = g.parameter_stats();
    println!(
        "parameters: {params} ({:.1} MiB)",
        bytes as f64 / (1 << 20) as f64
    );
    println!("nodes: {}", g.nodes.len());
    let mut hist: Vec<_> = g.op_histogram().into_iter().collect();
    hist.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
    for (op, n) in hist {
        println!("  {op:<28} {n}");
    }
    match device {
        Some(id) if id.kind == crossover::DeviceKind::Cuda => cuda_placement(&model, &id)?,
        Some(id) => println!("placement on {id}: every node runs there"),
        None => {}
    }
    Ok(())
}

/// Where each node runs on a CUDA device. The placement depends only on the graph, so it
/// is printed even where CUDA is not available (after saying so).
fn cuda_placement(model: &Model, id: &DeviceId) -> Result<()> {
    match crossover_cuda::devices() {
        Err(e) => println!("{e}"),
        Ok(d) if id.index >= d.len() => println!(
            "CUDA not available: {id} does not exist ({} device(s) visible)",
            d.len()
        ),
        Ok(d) => println!("device: {id} {}", d[id.index].name),
    }
    let mut graph = model.graph.clone();
    crossover::core::passes::optimize(&mut graph, &CpuBackend::new())?;
    let report = crossover_cuda::plan::report(&graph);
    let host: Vec<_> = report
        .iter()
        .filter(|n| n.placement != crossover_cuda::Placement::Device)
        .collect();
    println!(
        "placement on {id}: {} of {} nodes on the GPU, {} on the host",
        report.len() - host.len(),
        report.len(),
        host.len()
    );
    for n in host {
        if let crossover_cuda::Placement::Host(reason) = &n.placement {
            println!("  host: {:<28} {:<20} {reason}", n.label, n.op);
        }
    }
    Ok(())
}

fn run(
    spec: &str,
    inputs: &[String],
    out: &Path,
    device: &str,
    threads: Option<usize>,
) -> Result<()> {
    let device: DeviceId = device.parse()?;
    let mut builder = Session::builder().device(device);
    if let Some(t) = threads {
        builder = builder.threads(t);
    }
    let session = builder.build(load_model(spec)?)?;
    let mut feed = Vec::new();
    for spec in inputs {
        let (name, file) = spec.split_once('=').ok_or_else(|| {
            crossover::core::invalid!("--input {spec:?} must look like NAME=FILE.npy")
        })?;
        feed.push((name.to_string(), npy::read(Path::new(file))?));
    }
    let feed: Vec<(&str, Tensor)> = feed.iter().map(|(n, t)| (n.as_str(), t.clone())).collect();
    let result = session.run_with_info(&feed)?;
    std::fs::create_dir_all(out).map_err(|source| Error::Io {
        path: out.to_path_buf(),
        source,
    })?;
    for (info, t) in session.outputs().iter().zip(&result.outputs) {
        // Output names may contain path separators; keep files inside DIR.
        let file = out.join(format!("{}.npy", info.name.replace(['/', '\\'], "_")));
        npy::write(&file, t)?;
        println!(
            "{:<24} {:<8} {:?} -> {}",
            info.name,
            t.dtype().to_string(),
            t.shape(),
            file.display()
        );
    }
    println!(
        "ran on {} in {:.3} ms",
        session.device(),
        result.timings.total().as_secs_f64() * 1e3
    );
    Ok(())
}

fn tradeoffs(spec: &str, batches: &[usize], seq: usize, runs: usize) -> Result<()> {
    let zoo = spec.parse::<ZooModel>().ok();
    let model = load_model(spec)?;
    let devices = vec![CpuBackend::new().info()];
    println!(
        "model {spec}: {} nodes, sequence length {seq} where it applies",
        model.graph.nodes.len()
    );
    println!(
        "{:<8} {:>6} {:>14} {:>16}",
        "device", "batch", "p50 latency", "throughput"
    );
    let max_batch = batches.iter().copied().max().unwrap_or(1);
    let mut curves = Vec::new();
    for dev in devices {
        let session = Session::builder()
            .device(dev.id.clone())
            .build(model.clone())?;
        let mut samples = Vec::with_capacity(batches.len());
        for &batch in batches {
            let inputs = match zoo {
                Some(z) => z.sample_inputs(batch, seq),
                None => synthetic_inputs(&session, batch, seq)?,
            };
            let feed: Vec<(&str, Tensor)> = inputs
                .iter()
                .map(|(n, t)| (n.as_str(), t.clone()))
                .collect();
            session.run(&feed)?;
            let mut walls = Vec::with_capacity(runs.max(1));
            let mut stages = Vec::with_capacity(runs.max(1));
            for _ in 0..runs.max(1) {
                let t = Instant::now();
                let out = session.run_with_info(&feed)?;
                walls.push(t.elapsed());
                stages.push(out.timings);
            }
            let median = |mut v: Vec<f64>| {
                v.sort_by(f64::total_cmp);
                v[v.len() / 2]
            };
            let stage = |f: fn(&crossover::StageTimings) -> Duration| {
                median(stages.iter().map(|s| f(s).as_secs_f64()).collect())
            };
            samples.push(Sample {
                batch,
                upload: stage(|s| s.upload),
                compute: stage(|s| s.compute),
                download: stage(|s| s.download),
            });
            let p50 = median(walls.iter().map(Duration::as_secs_f64).collect());
            println!(
                "{:<8} {:>6} {:>11.3} ms {:>11.1} /s",
                dev.id.to_string(),
                batch,
                p50 * 1e3,
                batch as f64 / p50
            );
        }
        curves.push((dev.id, CostCurve::new(samples)?));
    }
    println!();
    for (id, curve) in &curves {
        println!(
            "{id}: {:.3} ms fixed per run; batch 1: {}",
            curve.overhead() * 1e3,
            curve.breakdown(1)
        );
    }
    if let Some(((cpu, cpu_curve), gpus)) = curves.split_first() {
        for (id, curve) in gpus {
            println!(
                "{id} beats {cpu}: {} (batch 1: {})",
                crossover_point(cpu_curve, curve, max_batch),
                curve.breakdown(1)
            );
        }
    }
    Ok(())
}

/// Zero inputs for a model file: named dimensions become `batch` first, then `seq`.
fn synthetic_inputs(session: &Session, batch: usize, seq: usize) -> Result<Vec<(String, Tensor)>> {
    session
        .inputs()
        .iter()
        .map(|v| {
            let dtype = v.dtype.unwrap_or(crossover::DType::F32);
            let shape: Vec<usize> = v
                .shape
                .as_deref()
                .unwrap_or(&[])
                .iter()
                .enumerate()
                .map(|(i, d)| d.fixed().unwrap_or(if i == 0 { batch } else { seq }))
                .collect();
            Ok((v.name.clone(), Tensor::zeros(dtype, &shape)?))
        })
        .collect()
}
