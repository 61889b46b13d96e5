//! Whole models on CUDA: the built-in MLP, CNN and encoder against the CPU backend, the
//! golden models against onnxruntime, and the ONNX node conformance suite (pass count
//! reported, with the CPU as fallback for nodes without a kernel).

mod common;

use std::path::PathBuf;
use std::sync::Arc;

use crossover::conformance::{compare_with, list_cases, run_case, Status};
use crossover::core::{npy, passes, Backend, CompileOptions, Executable, Tensor};
use crossover::zoo::ZooModel;
use crossover_cpu::CpuBackend;

fn optimized(model: crossover::core::Model) -> Arc<crossover::core::Graph> {
    let mut g = model.graph;
    passes::optimize(&mut g, &CpuBackend::new()).expect("optimize");
    Arc::new(g)
}

fn generated(name: &str) -> Option<PathBuf> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../target")
        .join(name);
    if dir.is_dir() {
        Some(dir)
    } else {
        eprintln!(
            "SKIPPED: {} is missing; run `cargo xtask test --prepare-only`",
            dir.display()
        );
        None
    }
}

#[test]
fn zoo_models_match_the_cpu() {
    let Some(cuda) = common::cuda() else { return };
    for z in ZooModel::ALL {
        let graph = optimized(z.model().unwrap());
        let cpu = CpuBackend::new()
            .compile(graph.clone(), &CompileOptions::default())
            .unwrap();
        let exe = cuda
            .compile_cuda(graph.clone(), &common::with_fallback())
            .unwrap();
        let host: Vec<_> = exe
            .host_nodes()
            .into_iter()
            .map(|(i, r)| {
                format!(
                    "{} ({}): {r}",
                    graph.nodes[i].label(&graph),
                    graph.nodes[i].op.name()
                )
            })
            .collect();
        eprintln!(
            "{z}: {} of {} nodes on the host: {host:?}",
            host.len(),
            graph.nodes.len()
        );
        for (batch, seq) in [(1, 8), (3, 16), (8, 128)] {
            let inputs: Vec<Tensor> = z
                .sample_inputs(batch, seq)
                .into_iter()
                .map(|(_, t)| t)
                .collect();
            let want = cpu.run(&inputs).unwrap().outputs;
            // Three runs: plain, captured into a CUDA graph, replayed.
            for round in 0..3 {
                let out = exe
                    .run(&inputs)
                    .unwrap_or_else(|e| panic!("{z} batch {batch}: {e}"));
                for (g, w) in out.outputs.iter().zip(&want) {
                    if let Err(m) = compare_with(g, w, 1e-3, 1e-4) {
                        panic!("{z} batch {batch} run {round}: {m}");
                    }
                }
                let t = out.timings;
                eprintln!(
                    "{z} batch {batch} run {round}: upload {:?} compute {:?} download {:?}",
                    t.upload, t.compute, t.download
                );
            }
        }
    }
}

#[test]
fn golden_models_match_onnxruntime() {
    let Some(cuda) = common::cuda() else { return };
    let Some(root) = generated("golden") else {
        return;
    };
    for name in [
        "mlp",
        "cnn",
        "bert_block",
        "zoo_mlp",
        "zoo_cnn",
        "zoo_encoder",
    ] {
        let dir = root.join(name);
        let model = crossover::core::Model::load(dir.join("model.onnx")).unwrap();
        let graph = optimized(model);
        let exe = cuda
            .compile_cuda(graph.clone(), &common::with_fallback())
            .unwrap();
        let inputs: Vec<Tensor> = graph
            .input_infos()
            .map(|v| npy::read(&dir.join(format!("input_{}.npy", v.name))).unwrap())
            .collect();
        let out = exe.run(&inputs).unwrap_or_else(|e| panic!("{name}: {e}"));
        for (info, got) in graph.output_infos().zip(&out.outputs) {
            let want = npy::read(&dir.join(format!("output_{}.npy", info.name))).unwrap();
            if let Err(m) = compare_with(got, &want, 1e-3, 1e-4) {
                panic!("{name} output {:?}: {m}", info.name);
            }
        }
    }
}

#[test]
fn onnx_node_conformance_on_cuda() {
    let Some(cuda) = common::cuda() else { return };
    let Some(root) = generated("onnx-node-tests") else {
        return;
    };
    let backend = common::Fallback(cuda);
    let (mut pass, mut fail, mut unsupported) = (0, Vec::new(), 0);
    let cases = list_cases(&root).unwrap();
    for dir in &cases {
        match run_case(dir, &backend) {
            Status::Pass => pass += 1,
            Status::Unsupported(_) => unsupported += 1,
            Status::Fail(m) => fail.push(format!(
                "{}: {m}",
                dir.file_name().unwrap().to_string_lossy()
            )),
        }
    }
    eprintln!(
        "CUDA conformance: {pass} of {} pass, {} fail, {unsupported} unsupported",
        cases.len(),
        fail.len()
    );
    for f in &fail {
        eprintln!("  FAIL {f}");
    }
    // The CPU fallback covers every op, so CUDA must pass whatever the CPU passes; the
    // CPU's own expected failures are allowed here too.
    let expected = std::fs::read_to_string(
        PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("../../tests/conformance/cpu-expected-failures.txt"),
    )
    .unwrap_or_default();
    let allowed: Vec<&str> = expected
        .lines()
        .filter(|l| !l.trim_start().starts_with('#'))
        .filter_map(|l| l.split_whitespace().next())
        .collect();
    let unexpected: Vec<_> = fail
        .iter()
        .filter(|f| !allowed.iter().any(|a| f.starts_with(&format!("{a}:"))))
        .collect();
    assert!(
        unexpected.is_empty(),
        "{} cases fail on CUDA but not on the CPU: {unexpected:#?}",
        unexpected.len()
    );
}
