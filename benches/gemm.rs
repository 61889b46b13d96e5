//! f32 GEMM on the CPU backend, as one-node `MatMul` models with a constant right operand
//! (how weights reach a GEMM in a model), at 1024³ and at the shapes of the built-in
//! encoder; and the machine's measured FMA peak, which `cargo xtask bench` divides GEMM
//! GFLOP/s by. Threads: `CROSSOVER_BENCH_THREADS`, else every core.

use std::sync::Arc;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use crossover::core::{Backend, CompileOptions, DType, Dim};
use crossover::{CpuBackend, ModelBuilder};

mod support;

/// (m, k, n): the acceptance shape, then the encoder's projections at seq 128 for batch 1
/// and 32, and its per-head attention products.
const SHAPES: &[(usize, usize, usize)] = &[
    (1024, 1024, 1024),
    (128, 384, 384),
    (128, 384, 1536),
    (128, 1536, 384),
    (4096, 384, 384),
    (4096, 384, 1536),
    (1, 784, 512),
    (64, 784, 512),
];

fn gemm(c: &mut Criterion) {
    let threads = support::threads();
    let mut group = c.benchmark_group("gemm");
    group.sample_size(20);
    for &(m, k, n) in SHAPES {
        let mut b = ModelBuilder::new("gemm");
        let x = b.input("x", DType::F32, &[Dim::Fixed(m), Dim::Fixed(k)]);
        let w = b.weight("w", &support::random(&[k, n], 1));
        let y = b.node("MatMul", &[&x, &w], &[]);
        b.output(&y, "y", DType::F32, &[Dim::Fixed(m), Dim::Fixed(n)]);
        let model = b.into_model().expect("a valid MatMul model");
        let exec = CpuBackend::new()
            .compile(
                Arc::new(model.graph),
                &CompileOptions {
                    threads: Some(threads),
                    ..Default::default()
                },
            )
            .expect("the CPU compiles MatMul");
        let input = [support::random(&[m, k], 2)];
        group.throughput(Throughput::Elements((2 * m * k * n) as u64));
        group.bench_function(
            BenchmarkId::from_parameter(format!("{m}x{k}x{n}")),
            |bench| bench.iter(|| exec.run(&input).expect("MatMul runs")),
        );
    }
    group.finish();

    let mut group = c.benchmark_group("fma_peak");
    group.sample_size(20);
    if let Some(isa) = crossover_cpu::kernels::simd::isa() {
        group.throughput(Throughput::Elements(
            support::fma_flops_per_thread(isa) * threads as u64,
        ));
        // `cargo xtask bench` quotes the width and thread count from the id.
        let id = format!("{}-bit_x{threads}", isa.lanes() * 32);
        group.bench_function(BenchmarkId::from_parameter(id), |bench| {
            bench.iter(|| support::fma_peak(isa, threads))
        });
    } else {
        eprintln!("SKIPPED: fma_peak needs x86-64 with AVX2 and FMA, or AVX-512");
    }
    group.finish();
}

criterion_group!(benches, gemm);
criterion_main!(benches);
