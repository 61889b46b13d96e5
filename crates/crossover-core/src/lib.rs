//! crossover's core: tensors, the graph IR, ONNX import, graph passes and the traits every
//! backend implements. Backends depend on this crate; it depends on none of them.

pub mod backend;
pub mod builder;
pub mod dtype;
pub mod error;
pub mod graph;
pub mod import;
pub mod npy;
pub mod onnx;
pub mod op;
pub mod passes;
pub mod proto;
pub mod shapes;
pub mod tensor;

pub use backend::{
    Backend, CompileOptions, DeviceId, DeviceInfo, DeviceKind, Evaluator, Executable, MemoryUsage,
    RunOutput, StageTimings,
};
pub use dtype::DType;
pub use error::{Error, ErrorKind, Result};
pub use graph::{Dim, Graph, Node, ValueId, ValueInfo};
pub use import::Model;
pub use op::Op;
pub use tensor::{ArcArrayD, Element, Tensor, TensorData};
