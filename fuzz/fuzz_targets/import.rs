//! Arbitrary bytes through the ONNX importer, then constant folding (which runs the CPU
//! kernels on whatever attributes and constants the bytes describe). Any panic is a bug:
//! bad input must come back as an error.
#![no_main]

use crossover::core::passes;
use crossover::{CpuBackend, Model};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    static INIT: std::sync::Once = std::sync::Once::new();
    // Keep folded tensors small so the fuzzer's memory limit is not what it finds.
    INIT.call_once(|| std::env::set_var("CROSSOVER_MAX_TENSOR_BYTES", "16777216"));
    if let Ok(model) = Model::from_bytes(data) {
        let mut graph = model.graph;
        let _ = passes::optimize(&mut graph, &CpuBackend::new());
    }
});
