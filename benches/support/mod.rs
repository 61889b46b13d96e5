//! What the bench files share: the thread count, random inputs, and the FMA peak probe.

use crossover::core::Tensor;
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
const FMA_CHAINS: u64 = 12;

/// FLOPs one thread does per `fma_peak_run`, where the machine has AVX2 and FMA.
#[allow(dead_code)]
pub fn fma_peak_flops() -> Option<u64> {
    #[cfg(target_arch = "x86_64")]
    if is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma") {
        // 8 lanes, 2 FLOPs per fused multiply-add.
        return Some(FMA_ITERS * FMA_CHAINS * 8 * 2);
    }
    None
}

/// Every thread runs independent 256-bit FMA chains at once: the most FLOP/s the cores
/// can retire, which GEMM efficiency is quoted against.
#[allow(dead_code)]
pub fn fma_peak_run(threads: usize) {
    #[cfg(target_arch = "x86_64")]
    std::thread::scope(|s| {
        for _ in 0..threads {
            // SAFETY: callers check `fma_peak_flops()` (AVX2 and FMA present) first.
            s.spawn(|| std::hint::black_box(unsafe { fma_chains(FMA_ITERS) }));
        }
    });
    #[cfg(not(target_arch = "x86_64"))]
    let _ = threads;
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
#[allow(dead_code)]
#[allow(unused_unsafe)]
unsafe fn fma_chains(iters: u64) -> f32 {
    use std::arch::x86_64::*;
    // SAFETY: AVX2 and FMA are enabled for this function; the store writes 8 lanes into
    // an 8-lane array.
    unsafe {
        let mut acc = [_mm256_set1_ps(0.0); FMA_CHAINS as usize];
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
            _mm256_storeu_ps(lanes.as_mut_ptr(), r);
            sum += lanes.iter().sum::<f32>();
        }
        sum
    }
}
