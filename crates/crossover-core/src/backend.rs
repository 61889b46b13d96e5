//! What every device implements.
//!
//! ## Design
//! A [`Backend`] is one device; [`Backend::compile`] turns a graph into an [`Executable`]
//! that owns everything the device needs (uploaded weights, kernels, buffers), so that
//! [`Executable::run`] does only per-request work. Inputs are validated once, by the
//! caller, against [`Graph::check_inputs`]; backends may assume counts and dtypes match.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use crate::{Graph, Node, Result, Tensor};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum DeviceKind {
    Cpu,
    Cuda,
    Wgpu,
}

impl fmt::Display for DeviceKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            DeviceKind::Cpu => "cpu",
            DeviceKind::Cuda => "cuda",
            DeviceKind::Wgpu => "wgpu",
        })
    }
}

/// A device name as used everywhere: `cpu`, `cuda:N`, `wgpu:N`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct DeviceId {
    pub kind: DeviceKind,
    pub index: usize,
}

impl DeviceId {
    pub const CPU: DeviceId = DeviceId {
        kind: DeviceKind::Cpu,
        index: 0,
    };
}

impl fmt::Display for DeviceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.kind {
            DeviceKind::Cpu => f.write_str("cpu"),
            k => write!(f, "{k}:{}", self.index),
        }
    }
}

impl std::str::FromStr for DeviceId {
    type Err = crate::Error;

    fn from_str(s: &str) -> Result<DeviceId> {
        let bad = || crate::invalid!("unknown device {s:?}: use cpu, cuda:N or wgpu:N");
        let (kind, index) = match s.split_once(':') {
            None => (s, "0"),
            Some((k, i)) => (k, i),
        };
        let kind = match kind {
            "cpu" => DeviceKind::Cpu,
            "cuda" => DeviceKind::Cuda,
            "wgpu" => DeviceKind::Wgpu,
            _ => return Err(bad()),
        };
        let index = index.parse().map_err(|_| bad())?;
        if kind == DeviceKind::Cpu && index != 0 {
            return Err(bad());
        }
        Ok(DeviceId { kind, index })
    }
}

/// Written as its name (`"cuda:0"`) in profiles and reports.
impl serde::Serialize for DeviceId {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for DeviceId {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[derive(Clone, Debug)]
pub struct DeviceInfo {
    pub id: DeviceId,
    /// Human-readable name: the CPU model, the GPU's marketing name.
    pub name: String,
    pub memory_total: u64,
    pub memory_free: u64,
    /// Parallel workers (cores for the CPU, SMs or compute units for a GPU).
    pub compute_units: usize,
}

#[derive(Clone)]
pub struct CompileOptions {
    /// Threads a run uses on backends that use host threads, the calling thread among
    /// them (as ONNX Runtime's `intra_op_num_threads`); `None` = all cores.
    pub threads: Option<usize>,
    /// Whether host worker threads spin between close runs instead of sleeping, as ONNX
    /// Runtime's `session.intra_op.allow_spinning` (on by default): it saves a wake-up
    /// per run and costs cycles that other work on the same cores could use.
    pub allow_spinning: bool,
    /// Runs the nodes a GPU backend cannot run itself, on host tensors, inside the same
    /// plan (as ONNX Runtime's CPU fallback). `None`: such nodes fail to compile.
    pub host_fallback: Option<Arc<dyn Evaluator>>,
}

impl Default for CompileOptions {
    fn default() -> Self {
        CompileOptions {
            threads: None,
            allow_spinning: true,
            host_fallback: None,
        }
    }
}

impl fmt::Debug for CompileOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CompileOptions")
            .field("threads", &self.threads)
            .field("allow_spinning", &self.allow_spinning)
            .field("host_fallback", &self.host_fallback.is_some())
            .finish()
    }
}

/// Where the time of one run went.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct StageTimings {
    /// Waiting in a device queue before the run started.
    pub queue: Duration,
    /// Host to device copies (zero on the CPU).
    pub upload: Duration,
    pub compute: Duration,
    /// Device to host copies (zero on the CPU).
    pub download: Duration,
}

impl StageTimings {
    pub fn total(&self) -> Duration {
        self.queue + self.upload + self.compute + self.download
    }
}

/// Bytes a compiled model holds or used on its device.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MemoryUsage {
    pub weights: u64,
    pub workspace: u64,
    pub peak: u64,
}

#[derive(Clone, Debug)]
pub struct RunOutput {
    /// In the order of [`Graph::outputs`].
    pub outputs: Vec<Tensor>,
    pub timings: StageTimings,
    /// Peak bytes of intermediate values during this run.
    pub peak_bytes: u64,
}

pub trait Backend: Send + Sync {
    fn info(&self) -> DeviceInfo;
    /// Whether this device can run `node` itself (others fall back to the CPU).
    fn supports(&self, node: &Node) -> bool;
    fn compile(&self, graph: Arc<Graph>, options: &CompileOptions) -> Result<Box<dyn Executable>>;
}

/// A model compiled for one device. Safe to run from several threads at once.
pub trait Executable: Send + Sync {
    /// Runs on inputs in the order of [`Graph::inputs`].
    fn run(&self, inputs: &[Tensor]) -> Result<RunOutput>;
    fn memory(&self) -> MemoryUsage;
}

/// Evaluates one node on host tensors; used by constant folding and by GPU backends for
/// the nodes they place on the host.
pub trait Evaluator: Send + Sync {
    fn eval(&self, node: &Node, inputs: &[Option<&Tensor>]) -> Result<Vec<Tensor>>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn device_names_round_trip() {
        for s in ["cpu", "cuda:0", "wgpu:3"] {
            assert_eq!(s.parse::<DeviceId>().unwrap().to_string(), s);
        }
        assert!("gpu".parse::<DeviceId>().is_err());
        assert!("cuda:x".parse::<DeviceId>().is_err());
        assert!("cpu:1".parse::<DeviceId>().is_err());
    }
}
