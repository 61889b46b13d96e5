//! The adapter the tests run on: the first one wgpu reaches (llvmpipe on a machine with
//! no GPU). With `CI=true` a missing adapter fails; otherwise tests skip loudly.

use std::sync::{Arc, OnceLock};

use crossover_core::{Backend, CompileOptions, Graph, Tensor};
use crossover_cpu::CpuBackend;
use crossover_wgpu::{AdapterSelection, WgpuBackend};

pub fn gpu() -> Option<&'static WgpuBackend> {
    static GPU: OnceLock<Option<WgpuBackend>> = OnceLock::new();
    GPU.get_or_init(|| match WgpuBackend::new(0, AdapterSelection::Auto) {
        Ok(b) => {
            eprintln!(
                "wgpu tests run on {}; compute stage timed with {}",
                b.adapter(),
                b.compute_clock()
            );
            Some(b)
        }
        Err(e) => {
            if std::env::var("CI").is_ok_and(|v| v == "true") {
                panic!("CI=true but no wgpu adapter: {e}. Install mesa-vulkan-drivers.");
            }
            eprintln!("SKIPPED: no wgpu adapter ({e}); install mesa-vulkan-drivers for llvmpipe");
            None
        }
    })
    .as_ref()
}

pub fn run_cpu(graph: &Arc<Graph>, inputs: &[Tensor]) -> Vec<Tensor> {
    CpuBackend::new()
        .compile(graph.clone(), &CompileOptions::default())
        .expect("cpu compiles")
        .run(inputs)
        .expect("cpu runs")
        .outputs
}

/// Largest |a - b| relative to max(1, |b|); NaN where one side is NaN and the other not.
pub fn max_error(a: &Tensor, b: &Tensor) -> f32 {
    assert_eq!(a.shape(), b.shape(), "shapes differ");
    let a = a.view::<f32>().expect("f32");
    let b = b.view::<f32>().expect("f32");
    a.iter()
        .zip(b.iter())
        .map(|(&x, &y)| {
            if x.is_nan() && y.is_nan() || x == y {
                0.0
            } else {
                (x - y).abs() / y.abs().max(1.0)
            }
        })
        .fold(0.0f32, |m, e| {
            if e.is_nan() || m.is_nan() {
                f32::NAN
            } else {
                m.max(e)
            }
        })
}
