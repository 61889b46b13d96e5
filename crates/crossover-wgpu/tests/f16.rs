//! f16 models on the device where the adapter has `SHADER_F16`, against the CPU backend.
//! Compiled without a host fallback, so every node must run on the device.

mod common;

use std::sync::Arc;

use crossover_core::builder::{Attr, ModelBuilder};
use crossover_core::{Backend, CompileOptions, DType, Dim, Tensor};

fn half(shape: &[usize], seed: u64) -> Tensor {
    let n: usize = shape.iter().product();
    let v: Vec<f32> = (0..n as u64)
        .map(|i| ((i * 2654435761 + seed) % 1000) as f32 / 500.0 - 1.0)
        .collect();
    Tensor::from_vec(shape, v)
        .and_then(|t| t.cast(DType::F16))
        .expect("sized")
}

#[test]
fn f16_nodes_run_on_the_device() {
    let Some(gpu) = common::gpu() else { return };
    if !gpu.shader_f16() {
        eprintln!(
            "SKIPPED: {} lacks SHADER_F16; f16 nodes run on the host fallback there",
            gpu.adapter()
        );
        return;
    }
    let mut b = ModelBuilder::new("f16").opset(17);
    // Odd element counts: uploads and readbacks are padded to whole words.
    let x = b.input("x", DType::F16, &[Dim::Fixed(5), Dim::Fixed(39)]);
    let w = b.weight("w", &half(&[39, 7], 3));
    let bias = b.weight("bias", &half(&[7], 5));
    let k = b.weight("k", &Tensor::scalar(half::f16::from_f32(1.5)));
    let h = b.node("MatMul", &[&x, &w], &[]);
    let h = b.node("Add", &[&h, &bias], &[]);
    let h = b.node("Relu", &[&h], &[]);
    let s = b.node("Softmax", &[&h], &[("axis", Attr::Int(-1))]);
    let y = b.node("Mul", &[&s, &k], &[]);
    let yt = b.node("Transpose", &[&y], &[]);
    let wide = b.node(
        "Cast",
        &[&y],
        &[("to", Attr::Int(DType::F32.onnx_code() as i64))],
    );
    b.output(&yt, "yt", DType::F16, &[]);
    b.output(&wide, "wide", DType::F32, &[]);
    let graph = Arc::new(b.into_model().expect("imports").graph);
    let feeds = vec![half(&[5, 39], 1)];
    let want = common::run_cpu(&graph, &feeds);
    let exe = gpu
        .compile(graph, &CompileOptions::default())
        .expect("every node has a kernel");
    for round in 0..2 {
        let got = exe.run(&feeds).expect("runs on the device").outputs;
        for (g, w) in got.iter().zip(&want) {
            assert_eq!(g.dtype(), w.dtype(), "round {round}");
            let f = |t: &Tensor| t.cast(DType::F32).expect("casts");
            let err = common::max_error(&f(g), &f(w));
            // f16 keeps about three decimal digits.
            assert!(err <= 1e-2, "max error {err} (round {round})");
        }
    }
}
