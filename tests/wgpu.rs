//! The built-in models and the golden models on the wgpu backend (llvmpipe where there is
//! no GPU) against the CPU backend, through the `Backend` trait. With `CI=true` a missing
//! adapter fails; otherwise the tests skip with a loud `SKIPPED:` line.

mod common;

use std::path::Path;
use std::sync::{Arc, OnceLock};

use crossover::core::{npy, passes, Backend, CompileOptions, DType, Graph, Model};
use crossover::zoo::ZooModel;
use crossover::{CpuBackend, Tensor};
use crossover_wgpu::{AdapterSelection, WgpuBackend};

const TOL: f32 = 1e-4;

fn gpu() -> Option<&'static WgpuBackend> {
    static GPU: OnceLock<Option<WgpuBackend>> = OnceLock::new();
    GPU.get_or_init(|| match WgpuBackend::new(0, AdapterSelection::Auto) {
        Ok(b) => {
            eprintln!("wgpu golden tests run on {}", b.adapter());
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

fn optimized(model: Model) -> Arc<Graph> {
    let mut graph = model.graph;
    passes::optimize(&mut graph, &CpuBackend::new()).expect("optimizes");
    Arc::new(graph)
}

/// Largest |got - want| / max(1, |want|) over all outputs.
fn max_error(got: &[Tensor], want: &[Tensor]) -> f32 {
    let mut worst = 0.0f32;
    for (g, w) in got.iter().zip(want) {
        assert_eq!(g.shape(), w.shape());
        let (g, w) = (g.view::<f32>().unwrap(), w.view::<f32>().unwrap());
        for (&a, &b) in g.iter().zip(w.iter()) {
            let e = (a - b).abs() / b.abs().max(1.0);
            assert!(!e.is_nan(), "NaN: got {a}, want {b}");
            worst = worst.max(e);
        }
    }
    worst
}

fn compare(gpu: &WgpuBackend, graph: &Arc<Graph>, inputs: &[Tensor], what: &str) -> f32 {
    let cpu = CpuBackend::new()
        .compile(graph.clone(), &CompileOptions::default())
        .unwrap()
        .run(inputs)
        .unwrap()
        .outputs;
    let options = CompileOptions {
        host_fallback: Some(Arc::new(CpuBackend::new())),
        ..Default::default()
    };
    let exe = gpu.compile(graph.clone(), &options).unwrap();
    let got = exe.run(inputs).unwrap_or_else(|e| panic!("{what}: {e}"));
    let err = max_error(&got.outputs, &cpu);
    println!(
        "{what}: max error vs cpu {err:.2e}, timings {:?}",
        got.timings
    );
    assert!(err <= TOL, "{what}: max error {err} > {TOL}");
    err
}

fn zoo(model: ZooModel) {
    let Some(gpu) = gpu() else { return };
    let graph = optimized(model.model().unwrap());
    // Every node that computes f32 has a kernel: the model runs on the GPU, and only
    // integer bookkeeping (shapes, token ids) stays on the host.
    for node in &graph.nodes {
        let f32_out = node
            .outputs
            .iter()
            .flatten()
            .any(|v| graph.value(*v).dtype == Some(DType::F32));
        assert!(
            !f32_out || gpu.supports(node),
            "{model}: {} ({}) has no wgpu kernel",
            node.label(&graph),
            node.op.name()
        );
    }
    // Several batch sizes: one plan per input shape.
    for batch in [1, 3, 2] {
        let inputs: Vec<Tensor> = model
            .sample_inputs(batch, 16)
            .into_iter()
            .map(|(_, t)| t)
            .collect();
        compare(gpu, &graph, &inputs, &format!("zoo {model} batch {batch}"));
    }
}

#[test]
fn zoo_mlp_on_wgpu() {
    zoo(ZooModel::Mlp);
}

#[test]
fn zoo_cnn_on_wgpu() {
    zoo(ZooModel::Cnn);
}

#[test]
fn zoo_encoder_on_wgpu() {
    zoo(ZooModel::Encoder);
}

/// The golden models of `gen_golden.py` on wgpu against the CPU backend.
fn golden(dir: &Path) {
    let Some(gpu) = gpu() else { return };
    let graph = optimized(Model::load(dir.join("model.onnx")).unwrap());
    let inputs: Vec<Tensor> = graph
        .input_infos()
        .map(|v| npy::read(&dir.join(format!("input_{}.npy", v.name))).unwrap())
        .collect();
    compare(gpu, &graph, &inputs, &dir.display().to_string());
}

#[test]
fn golden_models_on_wgpu() {
    let Some(root) = common::generated_dir("golden") else {
        return;
    };
    for name in ["mlp", "cnn", "bert_block"] {
        golden(&root.join(name));
    }
}
