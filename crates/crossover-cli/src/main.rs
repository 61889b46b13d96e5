//! `crossover`: the operator's command line.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};
use crossover::core::npy;
use crossover::sched::sim::{simulate, Arrival, SimDevice, SimResult, TraceSpec};
use crossover::sched::{discover, parse_prices};
use crossover::zoo::ZooModel;
use crossover::{
    CalibrationOptions, DeviceId, Dim, Error, Model, Policy, Profile, Result, Session, Tensor,
};
use indicatif::{ProgressBar, ProgressStyle};

mod plan;
mod replay;
mod report;

use replay::Workload;
use report::{price_of, Report};

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
    /// List the devices on this machine: kind, name, memory, whether usable and why not.
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
        /// Devices: auto, or names such as cpu or cuda:0,cpu.
        #[arg(long, default_value = "cpu")]
        device: String,
        /// CPU worker threads (default: all cores).
        #[arg(long)]
        threads: Option<usize>,
    },
    /// Measure a model on every device: curves, crossover, breakdown, memory, cost.
    Profile {
        /// An .onnx file, or a built-in model: mlp, cnn, encoder.
        model: String,
        #[command(flatten)]
        common: Common,
        /// Write the report as JSON (the input of `crossover plan`).
        #[arg(long, value_name = "FILE")]
        json: Option<PathBuf>,
        /// Draw latency and throughput against batch size as SVG.
        #[arg(long, value_name = "FILE")]
        svg: Option<PathBuf>,
    },
    /// The main job: profile a model on every device, then replay a mixed workload under
    /// each policy and the single-device and round-robin baselines.
    Tradeoffs {
        /// An .onnx file, or a built-in model: mlp, cnn, encoder.
        #[arg(long, default_value = "encoder")]
        model: String,
        #[command(flatten)]
        common: Common,
        /// Requests per replay.
        #[arg(long, default_value_t = 150)]
        requests: usize,
        /// Replay rounds, each a fresh trace every scenario replays in turn (the order
        /// rotating), pooled: the machine's drift falls on every scenario alike.
        #[arg(long, default_value_t = 3)]
        rounds: usize,
        /// Mean arrivals per second; default: `--load` times what the best device sustains.
        #[arg(long)]
        rate: Option<f64>,
        /// Offered load without `--rate`: a share of what the best device sustains.
        #[arg(long, default_value_t = 0.6)]
        load: f64,
        /// Share of requests that are bulk batches.
        #[arg(long, default_value_t = 0.1)]
        bulk_share: f64,
        /// Samples per bulk request.
        #[arg(long, default_value_t = 8)]
        bulk: usize,
        /// Latency target of the cost policy, milliseconds.
        #[arg(long, default_value_t = 250.0)]
        slo_ms: f64,
        /// A replayed request still queued after this long fails, milliseconds.
        #[arg(long, default_value_t = 5000.0)]
        timeout_ms: f64,
    },
    /// Size a fleet of CPU and GPU instances for a trace and a p99 target, by simulating
    /// the curves of `crossover profile --json`.
    Plan {
        /// A profile written by `crossover profile MODEL --json FILE`.
        #[arg(long, value_name = "FILE")]
        profile: PathBuf,
        /// steady, bursty or diurnal.
        #[arg(long, default_value = "steady")]
        trace: String,
        /// Target p99 latency, milliseconds.
        #[arg(long, default_value_t = 100.0)]
        slo_ms: f64,
        /// Dollars per hour per device kind; default: the prices in the profile.
        #[arg(long)]
        price: Option<String>,
        /// Mean requests per second; default: 80% of what the fastest device sustains.
        #[arg(long)]
        rate: Option<f64>,
        /// Seconds of trace to simulate.
        #[arg(long, default_value_t = 30.0)]
        duration: f64,
        /// Share of requests that are bulk batches.
        #[arg(long, default_value_t = 0.1)]
        bulk_share: f64,
        /// Samples per bulk request.
        #[arg(long, default_value_t = 8)]
        bulk: usize,
        /// Most instances in a fleet.
        #[arg(long, default_value_t = 4)]
        max_instances: usize,
    },
}

/// Options shared by the commands that calibrate.
#[derive(clap::Args)]
struct Common {
    /// Devices: auto, or names such as cpu,wgpu:0.
    #[arg(long, default_value = "auto")]
    devices: String,
    /// Largest batch size to calibrate.
    #[arg(long, default_value_t = 32)]
    max_batch: usize,
    /// Time budget per device for calibration, seconds.
    #[arg(long, default_value_t = 30.0)]
    budget_s: f64,
    /// Length of the `sequence` dimension, for models that have one.
    #[arg(long, default_value_t = 128)]
    seq: usize,
    /// Dollars per hour per device (a kind applies to all its devices), for cost figures.
    #[arg(long, default_value = "cpu=0.10,wgpu=1.00,cuda=2.50")]
    price: String,
    /// CPU worker threads (default: all cores).
    #[arg(long)]
    threads: Option<usize>,
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
        Command::Profile {
            model,
            common,
            json,
            svg,
        } => profile(&model, &common, json.as_deref(), svg.as_deref()),
        Command::Tradeoffs {
            model,
            common,
            requests,
            rounds,
            rate,
            load,
            bulk_share,
            bulk,
            slo_ms,
            timeout_ms,
        } => tradeoffs(
            &model,
            &common,
            Mix {
                requests,
                rounds,
                rate,
                bulk_share,
                bulk,
                slo_ms,
            },
            Duration::from_secs_f64(timeout_ms.max(0.0) / 1e3),
            load,
        ),
        Command::Plan {
            profile,
            trace,
            slo_ms,
            price,
            rate,
            duration,
            bulk_share,
            bulk,
            max_instances,
        } => plan(
            &profile,
            &trace,
            slo_ms,
            price.as_deref(),
            rate,
            Mix {
                requests: 0,
                rounds: 0,
                rate: None,
                bulk_share,
                bulk,
                slo_ms,
            },
            duration,
            max_instances,
        ),
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
    let found = discover();
    let hardware_gpu = found
        .found
        .iter()
        .any(|f| f.info.id.kind != crossover::DeviceKind::Cpu && !f.software);
    println!(
        "{:<8} {:<6} {:<44} {:>10} {:>10} {:>6}  status",
        "device", "kind", "name", "memory", "free", "units"
    );
    for f in &found.found {
        let i = &f.info;
        println!(
            "{:<8} {:<6} {:<44} {:>10} {:>10} {:>6}  {}",
            i.id.to_string(),
            i.id.kind.to_string(),
            i.name,
            gib(i.memory_total),
            gib(i.memory_free),
            i.compute_units,
            match (f.software, hardware_gpu) {
                (false, _) => "usable",
                (true, false) => "usable (software: auto uses it since no hardware GPU exists)",
                (true, true) => "usable when named (software: auto prefers the hardware GPU)",
            }
        );
    }
    for m in &found.missing {
        println!(
            "{:<8} {:<6} {:<44} {:>10} {:>10} {:>6}  unavailable: {}",
            "-",
            m.kind.to_string(),
            "-",
            "-",
            "-",
            "-",
            m.reason
        );
    }
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
    crossover::core::passes::optimize(&mut graph, &crossover::CpuBackend::new())?;
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
    let mut builder = Session::builder().devices(device.parse()?);
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
        result.device(),
        result.timings().total().as_secs_f64() * 1e3
    );
    Ok(())
}

/// A session on the chosen devices, calibrated (or loaded from the profile cache) with
/// one sample of the model's inputs, with a progress bar.
fn calibrated_session(
    model: &Model,
    sample: &[(String, Tensor)],
    common: &Common,
    policy: Policy,
) -> Result<Session> {
    let bar = ProgressBar::new(0).with_style(
        ProgressStyle::with_template("calibrating {msg:<8} [{bar:30}] {pos}/{len} batch sizes")
            .expect("a valid template")
            .progress_chars("=> "),
    );
    let progress = bar.clone();
    let mut builder = Session::builder()
        .devices(common.devices.parse()?)
        .policy(policy)
        .sample_inputs(sample.to_vec())
        .calibration(calibration(common))
        .on_calibration(move |step| {
            progress.set_length(step.planned as u64);
            progress.set_position(step.done as u64);
            progress.set_message(step.device.to_string());
        });
    if let Some(t) = common.threads {
        builder = builder.threads(t);
    }
    let session = builder.build(model.clone());
    bar.finish_and_clear();
    session
}

/// Measures every device of `session` now, with a progress bar.
fn measure(session: &Session, common: &Common) -> Result<Vec<Profile>> {
    let bar = ProgressBar::new(0).with_style(
        ProgressStyle::with_template("measuring {msg:<8} [{bar:30}] {pos}/{len} batch sizes")
            .expect("a valid template")
            .progress_chars("=> "),
    );
    let profiles = session.profile(&calibration(common), &mut |s| {
        bar.set_length(s.planned as u64);
        bar.set_position(s.done as u64);
        bar.set_message(s.device.to_string());
    });
    bar.finish_and_clear();
    profiles
}

fn calibration(common: &Common) -> CalibrationOptions {
    CalibrationOptions {
        max_batch: common.max_batch.max(1),
        time_budget: Some(Duration::from_secs_f64(common.budget_s.max(0.0))),
    }
}

/// One sample (batch 1) of inputs: the built-in model's own, or zeros shaped from the
/// declared inputs with named dimensions set to `seq`.
fn sample_inputs(spec: &str, model: &Model, seq: usize) -> Result<Vec<(String, Tensor)>> {
    if let Ok(z) = spec.parse::<ZooModel>() {
        return Ok(z.sample_inputs(1, seq));
    }
    model
        .graph
        .input_infos()
        .map(|v| {
            let dtype = v.dtype.unwrap_or(crossover::DType::F32);
            let shape: Vec<usize> = v
                .shape
                .as_deref()
                .unwrap_or(&[])
                .iter()
                .enumerate()
                .map(|(i, d)| d.fixed().unwrap_or(if i == 0 { 1 } else { seq }))
                .collect();
            Ok((v.name.clone(), Tensor::zeros(dtype, &shape)?))
        })
        .collect()
}

fn profile(spec: &str, common: &Common, json: Option<&Path>, svg: Option<&Path>) -> Result<()> {
    let model = load_model(spec)?;
    let sample = sample_inputs(spec, &model, common.seq)?;
    let session = calibrated_session(&model, &sample, common, Policy::Latency)?;
    let profiles = measure(&session, common)?;
    let report = Report::new(spec.to_string(), profiles, parse_prices(&common.price)?)?;
    report.print()?;
    for (id, m) in session.memory() {
        println!(
            "{id}: {:.1} MiB of weights held, {:.1} MiB workspace",
            m.weights as f64 / (1 << 20) as f64,
            m.workspace as f64 / (1 << 20) as f64
        );
    }
    if let Some(path) = json {
        report.write_json(path)?;
        println!("wrote {}", path.display());
    }
    if let Some(path) = svg {
        report.write_svg(path)?;
        println!("wrote {}", path.display());
    }
    Ok(())
}

struct Mix {
    requests: usize,
    rounds: usize,
    rate: Option<f64>,
    bulk_share: f64,
    bulk: usize,
    slo_ms: f64,
}

fn tradeoffs(spec: &str, common: &Common, mix: Mix, timeout: Duration, load: f64) -> Result<()> {
    if mix.rounds == 0 {
        return Err(crossover::core::invalid!("--rounds must be at least 1"));
    }
    let model = load_model(spec)?;
    let sample = sample_inputs(spec, &model, common.seq)?;
    let prices = parse_prices(&common.price)?;
    println!(
        "model {spec}: {} nodes; calibrating every device (cached after the first time)",
        model.graph.nodes.len()
    );
    let probe = calibrated_session(&model, &sample, common, Policy::Latency)?;
    let profiles = match probe.profiles() {
        [] => measure(&probe, common)?,
        cached => cached.to_vec(),
    };
    let devices: Vec<DeviceId> = probe.devices().into_iter().map(|d| d.id).collect();
    let report = Report::new(spec.to_string(), profiles.clone(), prices.clone())?;
    report.print()?;
    let host = replay::measure_host(&probe, &devices)?;
    drop(probe);
    println!();
    replay::print_host(&host);

    // Offered load: a share of what the best single device sustains on this mix.
    let curves: Vec<_> = profiles.iter().map(|p| p.curve()).collect::<Result<_>>()?;
    let capacity = curves
        .iter()
        .map(|c| plan::capacity(c, mix.bulk_share, mix.bulk))
        .fold(0.0, f64::max);
    let rate = mix.rate.unwrap_or(load * capacity);
    if !(rate.is_finite() && rate > 0.0) {
        return Err(crossover::core::invalid!(
            "the arrival rate must be a positive number, got {rate}"
        ));
    }
    // Each round is a fresh trace that every scenario replays in turn, starting one
    // scenario later each round: a drift in the machine's speed falls on all alike.
    let rounds = mix.rounds;
    let traces: Vec<Vec<(Duration, usize)>> = (0..rounds)
        .map(|r| {
            Workload {
                requests: mix.requests,
                rate,
                bulk_share: mix.bulk_share,
                bulk: mix.bulk,
                seed: 7 + r as u64,
            }
            .trace()
        })
        .collect::<Result<_>>()?;
    println!();
    println!(
        "replaying {rounds} rounds of {} requests ({:.0}% bulk of {} samples, the rest single) at {rate:.1}/s, Poisson arrivals",
        mix.requests,
        mix.bulk_share * 100.0,
        mix.bulk
    );
    let single: Vec<Tensor> = sample.iter().map(|(_, t)| t.clone()).collect();
    let inputs = |n: usize| -> Result<Vec<Tensor>> {
        let copies: Vec<&[Tensor]> = (0..n).map(|_| single.as_slice()).collect();
        crossover::sched::batch::join(&copies)
    };
    let mut scenarios: Vec<(String, Policy)> = vec![
        ("latency".into(), Policy::Latency),
        ("throughput".into(), Policy::Throughput),
        (
            format!("cost<{:.0}ms", mix.slo_ms),
            Policy::Cost {
                prices: devices
                    .iter()
                    .map(|d| {
                        Ok((
                            d.clone(),
                            price_of(&prices, d)
                                .ok_or_else(|| crossover::core::invalid!("no --price for {d}"))?,
                        ))
                    })
                    .collect::<Result<_>>()?,
                p99_target: Duration::from_secs_f64(mix.slo_ms / 1e3),
            },
        ),
    ];
    for d in &devices {
        scenarios.push((format!("{d}-only"), Policy::Pinned(d.clone())));
    }
    if devices.len() > 1 {
        scenarios.push(("round-robin".into(), Policy::RoundRobin));
    }
    let sessions: Vec<Session> = scenarios
        .iter()
        .map(|(_, policy)| calibrated_session(&model, &sample, common, policy.clone()))
        .collect::<Result<_>>()?;
    let mut replayed: Vec<replay::Replayed> = vec![Default::default(); scenarios.len()];
    for (r, trace) in traces.iter().enumerate() {
        for k in 0..scenarios.len() {
            let s = (k + r) % scenarios.len();
            let got = replay::replay(&sessions[s], trace, &inputs, timeout)?;
            replayed[s].absorb(got);
        }
    }
    let round_arrivals: Vec<Vec<Arrival>> = traces
        .iter()
        .map(|trace| {
            trace
                .iter()
                .map(|(at, n)| Arrival {
                    at: at.as_secs_f64(),
                    samples: *n,
                })
                .collect()
        })
        .collect();
    // Every round's trace through the simulator, on the same curves and queues, pooled
    // as the replays are.
    let simulate_rounds = |fleet: &[SimDevice], policy: &Policy, batchable: bool| {
        let deadline = Some(timeout.as_secs_f64());
        let mut pooled = SimResult::default();
        for arrivals in &round_arrivals {
            pooled.absorb(simulate(fleet, policy, arrivals, batchable, deadline));
        }
        pooled
    };
    let mut outcomes = Vec::new();
    let mut simulated = Vec::new();
    for (((name, policy), session), replayed) in scenarios.iter().zip(&sessions).zip(replayed) {
        outcomes.push(replayed.outcome(name, session, &prices));
        let fleet = session
            .devices()
            .iter()
            .map(|d| {
                let p = profiles
                    .iter()
                    .find(|p| p.device == d.id)
                    .ok_or_else(|| crossover::core::invalid!("no profile for {}", d.id))?;
                Ok(SimDevice {
                    id: d.id.clone(),
                    curve: p.curve()?,
                    queue: session.queue_config(&d.id).cloned().unwrap_or_default(),
                    price: price_of(&prices, &d.id).unwrap_or(0.0),
                    overhead: host.overhead.get(&d.id).copied().unwrap_or_default(),
                    contention: host.contention.get(&d.id).cloned().unwrap_or_default(),
                    run_scale: 1.0,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        let batchable = *session.batch_axis() == crossover::sched::BatchAxis::Leading;
        let forecast = simulate_rounds(&fleet, policy, batchable);
        // Again at the speed each device ran at in the replays, relative to calibration,
        // beyond the slowdowns the simulator models itself.
        let stats = session.stats();
        let speed: Vec<(DeviceId, f64)> = fleet
            .iter()
            .enumerate()
            .map(|(i, d)| {
                let s = stats.iter().find(|s| s.device == d.id);
                let (busy, calibrated) = s.map_or((0.0, 0.0), |s| {
                    (s.busy.as_secs_f64(), s.calibrated_busy.as_secs_f64())
                });
                let modelled = forecast.busy[i] / forecast.calibrated_busy[i].max(1e-12);
                let f = if calibrated > 0.0 && forecast.calibrated_busy[i] > 0.0 {
                    busy / calibrated / modelled
                } else if busy > 0.0 && forecast.busy[i] > 0.0 {
                    // No calibrated curve in the session (one device): the same trace's
                    // device time.
                    busy / forecast.busy[i]
                } else {
                    1.0
                };
                (d.id.clone(), f)
            })
            .collect();
        let scaled: Vec<SimDevice> = fleet
            .iter()
            .zip(&speed)
            .map(|(d, (_, f))| SimDevice {
                run_scale: *f,
                ..d.clone()
            })
            .collect();
        let check = simulate_rounds(&scaled, policy, batchable);
        simulated.push((forecast, speed, check));
    }
    drop(sessions);
    println!();
    replay::print(&outcomes);
    println!();
    let rows: Vec<replay::Agreement> = outcomes
        .iter()
        .zip(simulated)
        .map(|(replay, (forecast, speed, check))| replay::Agreement {
            replay,
            forecast,
            speed,
            check,
        })
        .collect();
    replay::print_agreement(&rows);
    let latency = &outcomes[0];
    let baselines: Vec<&replay::Outcome> = outcomes
        .iter()
        .filter(|o| o.scenario.ends_with("-only") || o.scenario == "round-robin")
        .collect();
    if let (Some(best_p99), Some(best_tp)) = (
        baselines
            .iter()
            .min_by(|a, b| a.singles.p99_ms.total_cmp(&b.singles.p99_ms)),
        baselines
            .iter()
            .max_by(|a, b| a.throughput.total_cmp(&b.throughput)),
    ) {
        // "No worse" is judged against chance: a baseline routing singles as the policy
        // does differs from it by noise alone.
        let tail =
            match replay::p99_difference(&latency.single_latencies, &best_p99.single_latencies) {
                Some((d, lo, hi)) => format!(
                    " ({d:+.2} ms, 95% interval {lo:+.2} to {hi:+.2} ms: {})",
                    if lo > 0.0 {
                        "worse"
                    } else if hi < 0.0 {
                        "better"
                    } else {
                        "the same within the replays' noise"
                    }
                ),
                None => String::new(),
            };
        println!();
        println!(
            "latency policy: single p99 {:.2} ms vs {:.2} ms for the best baseline ({}){tail}; throughput {:.1}/s = {:.2}x the best baseline ({})",
            latency.singles.p99_ms,
            best_p99.singles.p99_ms,
            best_p99.scenario,
            latency.throughput,
            latency.throughput / best_tp.throughput.max(1e-12),
            best_tp.scenario
        );
    }
    Ok(())
}

#[allow(clippy::too_many_arguments)]
fn plan(
    path: &Path,
    trace: &str,
    slo_ms: f64,
    price: Option<&str>,
    rate: Option<f64>,
    mix: Mix,
    duration: f64,
    max_instances: usize,
) -> Result<()> {
    let report = Report::read_json(path)?;
    let prices = match price {
        Some(p) => parse_prices(p)?,
        None => report.prices.clone(),
    };
    let types = plan::instance_types(report.profiles, &prices)?;
    if types.is_empty() {
        return Err(crossover::core::invalid!(
            "{} holds no device profiles",
            path.display()
        ));
    }
    let capacity = types
        .iter()
        .map(|t| {
            Ok(plan::capacity(
                &t.profile.curve()?,
                mix.bulk_share,
                mix.bulk,
            ))
        })
        .collect::<Result<Vec<f64>>>()?
        .into_iter()
        .fold(0.0, f64::max);
    let rate = rate.unwrap_or(0.8 * capacity);
    let spec = |rate: f64| TraceSpec {
        pattern: trace.parse().expect("checked below"),
        rate,
        duration,
        bulk_share: mix.bulk_share,
        bulk: mix.bulk,
        seed: 11,
    };
    trace.parse::<crossover::sched::sim::Pattern>()?;
    let slo = slo_ms / 1e3;
    let policy = Policy::Latency;
    let fleets = plan::Fleet::all(types.len(), max_instances.max(1));
    println!(
        "{} of {trace} traffic at {rate:.1} requests/s ({:.0}% bulk of {}), p99 target {slo_ms} ms, {} fleets of up to {max_instances} instances",
        format_args!("{duration} s"),
        mix.bulk_share * 100.0,
        mix.bulk,
        fleets.len()
    );
    let outcomes = fleets
        .iter()
        .map(|f| plan::evaluate(f, &types, &spec(rate), slo, &policy))
        .collect::<Result<Vec<_>>>()?;
    plan::print(&outcomes, &types, slo_ms);
    println!();
    println!(
        "{:>12}  {:<28} {:>8} {:>10}",
        "requests/s", "cheapest fleet meeting p99", "$/hour", "p99 ms"
    );
    let mut gpu_from = None;
    for factor in [0.25, 0.5, 1.0, 2.0, 4.0, 8.0] {
        let r = rate * factor;
        let at = fleets
            .iter()
            .map(|f| plan::evaluate(f, &types, &spec(r), slo, &policy))
            .collect::<Result<Vec<_>>>()?;
        match plan::cheapest(at.iter()) {
            Some(o) => {
                if o.fleet.has_gpu(&types) && gpu_from.is_none() {
                    gpu_from = Some(r);
                }
                println!(
                    "{r:>12.1}  {:<28} {:>8.2} {:>10.2}",
                    o.fleet.describe(&types),
                    o.per_hour,
                    o.p99 * 1e3
                );
            }
            None => println!("{r:>12.1}  none within {max_instances} instances"),
        }
    }
    match gpu_from {
        Some(r) => {
            println!("a GPU instance is part of the cheapest fleet from about {r:.1} requests/s")
        }
        None => println!("no GPU instance pays off at these loads"),
    }
    Ok(())
}
