//! The CPU backend: every op on ndarray, parallel with rayon. It is also the reference
//! that every other backend is tested against, and the evaluator for constant folding.

mod executor;
mod fuse;
pub mod kernels;
mod workers;

use std::sync::Arc;

use crossover_core::{
    Backend, CompileOptions, DeviceId, DeviceInfo, Evaluator, Executable, Graph, Node, Result,
    Tensor,
};

pub use executor::CpuExecutable;

#[derive(Clone, Debug, Default)]
pub struct CpuBackend;

impl CpuBackend {
    pub fn new() -> Self {
        CpuBackend
    }
}

impl Backend for CpuBackend {
    fn info(&self) -> DeviceInfo {
        let (total, free) = host_memory();
        DeviceInfo {
            id: DeviceId::CPU,
            name: cpu_model_name(),
            memory_total: total,
            memory_free: free,
            compute_units: std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(1),
        }
    }

    fn supports(&self, node: &Node) -> bool {
        kernels::supports(&node.op)
    }

    fn compile(&self, graph: Arc<Graph>, options: &CompileOptions) -> Result<Box<dyn Executable>> {
        Ok(Box::new(CpuExecutable::new(graph, options)?))
    }
}

impl Evaluator for CpuBackend {
    fn eval(&self, node: &Node, inputs: &[Option<&Tensor>]) -> Result<Vec<Tensor>> {
        kernels::eval(&node.op, inputs)
    }
}

/// The CPU's marketing name, from /proc/cpuinfo where there is one.
fn cpu_model_name() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name") || l.starts_with("Model"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, v)| v.trim().to_string())
        })
        .unwrap_or_else(|| std::env::consts::ARCH.to_string())
}

/// (total, available) bytes of host memory, from /proc/meminfo where there is one.
fn host_memory() -> (u64, u64) {
    let Ok(s) = std::fs::read_to_string("/proc/meminfo") else {
        return (0, 0);
    };
    let field = |name: &str| {
        s.lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse::<u64>().ok())
            .map(|kib| kib * 1024)
            .unwrap_or(0)
    };
    (field("MemTotal:"), field("MemAvailable:"))
}
