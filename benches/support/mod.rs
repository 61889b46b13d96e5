//! What the bench files share: the thread count, random inputs, and the FMA peak probe.

use crossover::core::Tensor;
use crossover_cpu::kernels::simd::Isa;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// `CROSSOVER_BENCH_THREADS`, else every core: `cargo xtask bench` sets it so both
/// runtimes it compares use the same count.
pub fn threads() -> usize {
    std::env::var("CROSSOVER_BENCH_THREADS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
}

#[allow(dead_code)] // models.rs feeds the zoo's own sample inputs.
pub fn random(shape: &[usize], seed: u64) -> Tensor {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let n = shape.iter().product();
    let data: Vec<f32> = (0..n).map(|_| rng.gen_range(-1.0..1.0)).collect();
    Tensor::from_vec(shape, data).expect("shape and data agree")
}

/// Iterations of the FMA loop per thread per run: about 20 ms of work at 100 GFLOP/s.
#[allow(dead_code)]
const FMA_ITERS: u64 = 10_000_000;
/// Independent accumulators: enough to cover FMA latency times the FMA units.
#[allow(dead_code)]
const FMA_CHAINS: usize = 12;

/// FLOPs one thread does per [`fma_peak`] run: 2 per lane per fused multiply-add. The
/// peak is quoted for the widest FMA the CPU has, whatever width the GEMM kernels use.
#[allow(dead_code)]
pub fn fma_flops_per_thread(isa: Isa) -> u64 {
    FMA_ITERS * FMA_CHAINS as u64 * isa.lanes() as u64 * 2
}

/// Every thread runs independent FMA chains at once: the most FLOP/s the cores can
/// retire, which GEMM efficiency is quoted against.
#[allow(dead_code)]
pub fn fma_peak(isa: Isa, threads: usize) {
    #[cfg(target_arch = "x86_64")]
    std::thread::scope(|s| {
        for _ in 0..threads {
            // SAFETY: `isa()` found the instructions each function enables.
            s.spawn(move || match isa {
                Isa::Avx512 => std::hint::black_box(unsafe { fma_chains_512(FMA_ITERS) }),
                Isa::Avx2 => std::hint::black_box(unsafe { fma_chains_256(FMA_ITERS) }),
            });
        }
    });
    #[cfg(not(target_arch = "x86_64"))]
    let _ = (isa, threads);
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
#[allow(dead_code)]
unsafe fn fma_chains_256(iters: u64) -> f32 {
    use std::arch::x86_64::*;
    let mut acc = [_mm256_set1_ps(0.0); FMA_CHAINS];
    let a = _mm256_set1_ps(0.999_999);
    let b = _mm256_set1_ps(1e-7);
    for _ in 0..iters {
        for r in acc.iter_mut() {
            *r = _mm256_fmadd_ps(*r, a, b);
        }
    }
    let mut sum = 0.0;
    for r in acc {
        let mut lanes = [0f32; 8];
        // SAFETY: the store writes 8 lanes into an 8-lane array.
        unsafe { _mm256_storeu_ps(lanes.as_mut_ptr(), r) };
        sum += lanes.iter().sum::<f32>();
    }
    sum
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
#[allow(dead_code)]
unsafe fn fma_chains_512(iters: u64) -> f32 {
    use std::arch::x86_64::*;
    let mut acc = [_mm512_set1_ps(0.0); FMA_CHAINS];
    let a = _mm512_set1_ps(0.999_999);
    let b = _mm512_set1_ps(1e-7);
    for _ in 0..iters {
        for r in acc.iter_mut() {
            *r = _mm512_fmadd_ps(*r, a, b);
        }
    }
    acc.iter().map(|&r| _mm512_reduce_add_ps(r)).sum()
}
