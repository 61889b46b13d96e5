//! Golden tests: crossover's outputs against onnxruntime's on the same ONNX files
//! (`target/golden`, written by `cargo xtask test` from xtask/python/gen_golden.py).

mod common;

use std::path::Path;

use crossover::conformance::compare_with;
use crossover::core::npy;
use crossover::{DeviceId, Session, Tensor};

/// Relative tolerance against onnxruntime; the absolute floor covers values near zero.
const RTOL: f64 = 1e-4;
const ATOL: f64 = 1e-5;

fn check(dir: &Path) {
    let session = Session::builder()
        .device(DeviceId::CPU)
        .build_from_file(dir.join("model.onnx"))
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
    let inputs: Vec<(String, Tensor)> = session
        .inputs()
        .iter()
        .map(|v| {
            (
                v.name.clone(),
                npy::read(&dir.join(format!("input_{}.npy", v.name))).unwrap(),
            )
        })
        .collect();
    let feed: Vec<(&str, Tensor)> = inputs
        .iter()
        .map(|(n, t)| (n.as_str(), t.clone()))
        .collect();
    let outputs = session
        .run(&feed)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
    for (info, got) in session.outputs().iter().zip(&outputs) {
        let want = npy::read(&dir.join(format!("output_{}.npy", info.name))).unwrap();
        if let Err(m) = compare_with(got, &want, RTOL, ATOL) {
            panic!("{} output {:?}: {m}", dir.display(), info.name);
        }
    }
}

macro_rules! golden {
    ($($name:ident),*) => {$(
        #[test]
        fn $name() {
            if let Some(root) = common::generated_dir("golden") {
                check(&root.join(stringify!($name)));
            }
        }
    )*};
}

golden!(mlp, cnn, bert_block, zoo_mlp, zoo_cnn, zoo_encoder);
