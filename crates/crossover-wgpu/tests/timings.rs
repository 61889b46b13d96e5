//! A run's stage timings on whichever clock this adapter offers (GPU timestamps where it
//! has `TIMESTAMP_QUERY`, host clocks otherwise) add up to no more than the run's wall
//! time, with and without a host-fallback node in the middle.

mod common;

use std::sync::Arc;
use std::time::Instant;

use crossover_core::builder::ModelBuilder;
use crossover_core::{Backend, CompileOptions, DType, Dim, Tensor};
use crossover_cpu::CpuBackend;

#[test]
fn stage_timings_fit_in_the_wall_time() {
    let Some(gpu) = common::gpu() else { return };
    eprintln!("compute stage measured with {}", gpu.compute_clock());
    let n = 96;
    let mut b = ModelBuilder::new("timed");
    let x = b.input("x", DType::F32, &[Dim::Fixed(n), Dim::Fixed(n)]);
    let w = b.weight(
        "w",
        &Tensor::from_vec(&[n, n], vec![0.01f32; n * n]).expect("sized"),
    );
    let h = b.node("MatMul", &[&x, &w], &[]);
    // No kernel: the host runs it between two GPU stretches.
    let h = b.node("Hardmax", &[&h], &[]);
    let y = b.node("MatMul", &[&h, &w], &[]);
    b.output(&y, "y", DType::F32, &[]);
    let graph = Arc::new(b.into_model().expect("imports").graph);
    let options = CompileOptions {
        host_fallback: Some(Arc::new(CpuBackend::new())),
        ..Default::default()
    };
    let exe = gpu.compile(graph.clone(), &options).expect("compiles");
    let feeds = vec![Tensor::from_vec(&[n, n], vec![1.0f32; n * n]).expect("sized")];
    let want = common::run_cpu(&graph, &feeds);
    for round in 0..3 {
        let t0 = Instant::now();
        let out = exe.run(&feeds).expect("runs");
        let wall = t0.elapsed();
        let t = out.timings;
        eprintln!("round {round}: {t:?} within {wall:?}");
        assert!(common::max_error(&out.outputs[0], &want[0]) <= 1e-4);
        assert!(
            t.upload + t.compute + t.download <= wall,
            "round {round}: stages {t:?} exceed the wall time {wall:?}"
        );
    }
}
