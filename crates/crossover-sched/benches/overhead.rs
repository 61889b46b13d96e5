//! The scheduler's own cost per request, with no compute: two devices whose executables
//! hand their inputs straight back. `route` alone is the policy decision; `round_trip` is
//! submit → queue → worker → reply for one request at a time (thread hand-offs included);
//! `burst` submits 256 requests before waiting, the per-request cost under load.

use std::sync::Arc;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use crossover_core::builder::ModelBuilder;
use crossover_core::{
    Backend, DType, DeviceId, Dim, Executable, Graph, MemoryUsage, Result, RunOutput, Tensor,
};
use crossover_cpu::CpuBackend;
use crossover_sched::policy::{route, DeviceView};
use crossover_sched::{BatchAxis, CostCurve, DeviceSlot, Policy, QueueConfig, Sample, Scheduler};

/// Returns its inputs: a device with no compute and no transfers.
struct Echo;

impl Executable for Echo {
    fn run(&self, inputs: &[Tensor]) -> Result<RunOutput> {
        Ok(RunOutput {
            outputs: inputs.to_vec(),
            timings: Default::default(),
            peak_bytes: 0,
        })
    }

    fn memory(&self) -> MemoryUsage {
        MemoryUsage::default()
    }
}

fn identity_graph() -> Arc<Graph> {
    let mut b = ModelBuilder::new("identity");
    let x = b.input(
        "x",
        DType::F32,
        &[Dim::Param("batch".into()), Dim::Fixed(4)],
    );
    let y = b.node("Identity", &[&x], &[]);
    b.output(
        &y,
        "y",
        DType::F32,
        &[Dim::Param("batch".into()), Dim::Fixed(4)],
    );
    Arc::new(b.into_model().expect("a valid model").graph)
}

/// A device whose runs cost `fixed` seconds plus `per_sample` per sample.
fn curve(fixed: f64, per_sample: f64) -> CostCurve {
    let sample = |batch: usize| Sample {
        batch,
        upload: 0.0,
        compute: fixed + per_sample * batch as f64,
        download: 0.0,
    };
    CostCurve::new(vec![sample(1), sample(64)]).expect("a valid curve")
}

fn slot(id: &str, curve: CostCurve) -> DeviceSlot {
    let mut info = CpuBackend::new().info();
    info.id = id.parse::<DeviceId>().expect("a device id");
    DeviceSlot {
        info,
        executable: Box::new(Echo),
        curve: Some(curve),
        queue: QueueConfig {
            max_batch: 64,
            max_delay: Duration::ZERO,
            ..QueueConfig::default()
        },
    }
}

fn input() -> Vec<Tensor> {
    vec![Tensor::from_vec(&[1, 4], vec![1.0f32, 2.0, 3.0, 4.0]).expect("a [1, 4] tensor")]
}

fn overhead(c: &mut Criterion) {
    let graph = identity_graph();
    let (cpu, gpu) = (curve(20e-6, 5e-6), curve(200e-6, 0.2e-6));
    let ids: [DeviceId; 2] = ["cpu".parse().unwrap(), "wgpu:0".parse().unwrap()];
    let views = [(&ids[0], &cpu), (&ids[1], &gpu)].map(|(id, curve)| DeviceView {
        id,
        curve,
        max_batch: 64,
        backlog: 1e-4,
        queued: 2,
        available: true,
    });
    let mut group = c.benchmark_group("scheduler");
    group.throughput(Throughput::Elements(1));
    let mut seq = 0;
    group.bench_function("route", |b| {
        b.iter(|| {
            seq += 1;
            route(&Policy::Latency, &views, 1, true, seq)
        })
    });

    let scheduler = Scheduler::new(
        vec![slot("cpu", cpu.clone()), slot("wgpu:0", gpu.clone())],
        Policy::Latency,
        BatchAxis::of(&graph),
    )
    .expect("a scheduler over two echo devices");
    group.bench_function("round_trip", |b| {
        b.iter_batched(
            input,
            |x| scheduler.submit(x, None).unwrap().wait().unwrap(),
            BatchSize::SmallInput,
        )
    });

    const BURST: usize = 256;
    group.throughput(Throughput::Elements(BURST as u64));
    group.bench_function("burst", |b| {
        b.iter(|| {
            let tickets: Vec<_> = (0..BURST)
                .map(|_| scheduler.submit(input(), None).unwrap())
                .collect();
            for t in tickets {
                t.wait().unwrap();
            }
        })
    });
    group.finish();
}

criterion_group!(benches, overhead);
criterion_main!(benches);
