//! crossover: an ONNX inference runtime that measures the CPU/GPU tradeoff and routes each
//! request to the device that serves it best.
//!
//! ```no_run
//! use crossover::{Session, Tensor};
//! let session = Session::builder().build_from_file("model.onnx")?;
//! let x = Tensor::from_vec(&[1, 4], vec![0.5f32; 4])?;
//! let outputs = session.run(&[("x", x)])?;
//! # Ok::<(), crossover::Error>(())
//! ```

pub mod conformance;
mod session;
pub mod zoo;

pub use crossover_core as core;
pub use crossover_core::builder::{Attr, ModelBuilder};
pub use crossover_core::{
    Backend, DType, DeviceId, DeviceInfo, DeviceKind, Dim, Error, ErrorKind, Graph, MemoryUsage,
    Model, Result, RunOutput, StageTimings, Tensor, ValueInfo,
};
pub use crossover_cpu::CpuBackend;
pub use crossover_sched as sched;
pub use crossover_sched::{
    CalibrationOptions, DeviceStats, Policy, Profile, ProfileCache, Reply, RunInfo, Selection,
    Ticket,
};
pub use session::{ProfileStore, Session, SessionBuilder};
