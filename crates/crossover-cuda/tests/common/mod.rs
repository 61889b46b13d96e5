//! What every CUDA test shares: the device (or a loud skip) and a CPU reference.

#![allow(dead_code)]

use std::sync::Arc;

use crossover_core::{Backend, CompileOptions, Evaluator};
use crossover_cpu::CpuBackend;
use crossover_cuda::CudaBackend;

/// `cuda:0`, or `None` after printing `SKIPPED: CUDA not available: <reason>`.
/// `CROSSOVER_REQUIRE_CUDA=1` (set by the GPU run script) turns the skip into a failure.
pub fn cuda() -> Option<CudaBackend> {
    match crossover_cuda::devices() {
        Ok(_) => Some(CudaBackend::new(0).unwrap_or_else(|e| panic!("opening cuda:0: {e}"))),
        Err(e) => {
            if std::env::var("CROSSOVER_REQUIRE_CUDA").is_ok_and(|v| v == "1") {
                panic!("CROSSOVER_REQUIRE_CUDA=1 but {e}");
            }
            eprintln!("SKIPPED: {e}");
            None
        }
    }
}

/// Compile options with the CPU as host fallback.
pub fn with_fallback() -> CompileOptions {
    CompileOptions {
        host_fallback: Some(Arc::new(CpuBackend::new()) as Arc<dyn Evaluator>),
        ..Default::default()
    }
}

/// A backend that always passes the CPU fallback, for suites that compile with defaults.
pub struct Fallback(pub CudaBackend);

impl Backend for Fallback {
    fn info(&self) -> crossover_core::DeviceInfo {
        self.0.info()
    }
    fn supports(&self, node: &crossover_core::Node) -> bool {
        self.0.supports(node)
    }
    fn compile(
        &self,
        graph: Arc<crossover_core::Graph>,
        _options: &CompileOptions,
    ) -> crossover_core::Result<Box<dyn crossover_core::Executable>> {
        self.0.compile(graph, &with_fallback())
    }
}
