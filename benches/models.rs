//! The built-in models at batch 1, 8 and 32 (sequence 128 for the encoder) on every
//! hardware device present, through a single-device `Session`: what a user's call costs.
//! Software adapters (llvmpipe) are left out: they are for correctness, not speed.

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use crossover::zoo::ZooModel;
use crossover::{DeviceId, Session};

mod support;

const BATCHES: &[usize] = &[1, 8, 32];
const SEQ: usize = 128;

fn models(c: &mut Criterion) {
    let threads = support::threads();
    let found = crossover::sched::discover();
    let devices: Vec<DeviceId> = found
        .found
        .iter()
        .filter(|f| !f.software)
        .map(|f| f.info.id.clone())
        .collect();
    for f in found.found.iter().filter(|f| f.software) {
        eprintln!("SKIPPED: {} is a software adapter", f.info.id);
    }
    for z in [ZooModel::Encoder, ZooModel::Mlp, ZooModel::Cnn] {
        let mut group = c.benchmark_group(format!("model_{}", z.name()));
        group.sample_size(10);
        for device in &devices {
            let session = Session::builder()
                .device(device.clone())
                .threads(threads)
                .build(z.model().expect("built-in models import"))
                .expect("a built-in model compiles on every device");
            for &batch in BATCHES {
                let owned = z.sample_inputs(batch, SEQ);
                let inputs: Vec<(&str, _)> =
                    owned.iter().map(|(n, t)| (n.as_str(), t.clone())).collect();
                group.throughput(Throughput::Elements(batch as u64));
                group.bench_function(BenchmarkId::new(device.to_string(), batch), |bench| {
                    bench.iter(|| session.run(&inputs).expect("the model runs"))
                });
            }
        }
        group.finish();
    }
}

criterion_group!(benches, models);
criterion_main!(benches);
