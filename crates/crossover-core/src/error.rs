//! One error type for the core; backends wrap theirs in [`Error::Device`].

use std::path::PathBuf;

use crate::DType;

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot read {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("malformed ONNX model: {0}")]
    Decode(String),
    #[error("invalid model: {0}")]
    InvalidModel(String),
    #[error("unsupported op {op} (opset {opset})")]
    UnsupportedOp { op: String, opset: i64 },
    #[error("unsupported data type {0}")]
    UnsupportedDType(String),
    #[error("unsupported: {0}")]
    Unsupported(String),
    #[error("expected {expected}, got {got}")]
    DTypeMismatch { expected: DType, got: DType },
    #[error("shape mismatch: {0}")]
    ShapeMismatch(String),
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    #[error("tensor of shape {shape:?} ({dtype}) would exceed the {limit}-byte limit (CROSSOVER_MAX_TENSOR_BYTES)")]
    TooLarge {
        shape: Vec<usize>,
        dtype: DType,
        limit: u64,
    },
    #[error("node {node:?} ({op}): {source}")]
    Node {
        node: String,
        op: String,
        source: Box<Error>,
    },
    #[error("device {device}: {message}")]
    Device { device: String, message: String },
    #[error("overloaded: {0}")]
    Overloaded(String),
    #[error("deadline exceeded: {0}")]
    DeadlineExceeded(String),
}

/// The broad class of an error, for callers that map errors onto their own types
/// (Python exception classes, CLI exit codes).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorKind {
    /// The caller's inputs are wrong: names, dtypes, shapes, values.
    InvalidArgument,
    /// The model file is unreadable, malformed or inconsistent.
    InvalidModel,
    /// Valid ONNX that crossover does not implement.
    Unsupported,
    /// A device failed.
    Device,
    /// Every queue that could take the request is full; retry later.
    Overloaded,
    /// The request's deadline passed before it could run.
    DeadlineExceeded,
}

/// Lets one failure answer every request of a batch. An I/O error keeps its kind and
/// message (`std::io::Error` itself is not `Clone`).
impl Clone for Error {
    fn clone(&self) -> Self {
        match self {
            Error::Io { path, source } => Error::Io {
                path: path.clone(),
                source: std::io::Error::new(source.kind(), source.to_string()),
            },
            Error::Decode(m) => Error::Decode(m.clone()),
            Error::InvalidModel(m) => Error::InvalidModel(m.clone()),
            Error::UnsupportedOp { op, opset } => Error::UnsupportedOp {
                op: op.clone(),
                opset: *opset,
            },
            Error::UnsupportedDType(m) => Error::UnsupportedDType(m.clone()),
            Error::Unsupported(m) => Error::Unsupported(m.clone()),
            Error::DTypeMismatch { expected, got } => Error::DTypeMismatch {
                expected: *expected,
                got: *got,
            },
            Error::ShapeMismatch(m) => Error::ShapeMismatch(m.clone()),
            Error::InvalidArgument(m) => Error::InvalidArgument(m.clone()),
            Error::TooLarge {
                shape,
                dtype,
                limit,
            } => Error::TooLarge {
                shape: shape.clone(),
                dtype: *dtype,
                limit: *limit,
            },
            Error::Node { node, op, source } => Error::Node {
                node: node.clone(),
                op: op.clone(),
                source: source.clone(),
            },
            Error::Device { device, message } => Error::Device {
                device: device.clone(),
                message: message.clone(),
            },
            Error::Overloaded(m) => Error::Overloaded(m.clone()),
            Error::DeadlineExceeded(m) => Error::DeadlineExceeded(m.clone()),
        }
    }
}

impl Error {
    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::Io { .. } | Error::Decode(_) | Error::InvalidModel(_) => ErrorKind::InvalidModel,
            Error::UnsupportedOp { .. } | Error::UnsupportedDType(_) | Error::Unsupported(_) => {
                ErrorKind::Unsupported
            }
            Error::DTypeMismatch { .. }
            | Error::ShapeMismatch(_)
            | Error::InvalidArgument(_)
            | Error::TooLarge { .. } => ErrorKind::InvalidArgument,
            Error::Node { source, .. } => source.kind(),
            Error::Device { .. } => ErrorKind::Device,
            Error::Overloaded(_) => ErrorKind::Overloaded,
            Error::DeadlineExceeded(_) => ErrorKind::DeadlineExceeded,
        }
    }

    /// Adds the node and op an error happened in, once.
    pub fn in_node(self, node: &str, op: &str) -> Error {
        match self {
            e @ Error::Node { .. } => e,
            e => Error::Node {
                node: node.to_string(),
                op: op.to_string(),
                source: Box::new(e),
            },
        }
    }
}

/// Shorthand for an [`Error::InvalidArgument`] with a formatted message.
#[macro_export]
macro_rules! invalid {
    ($($arg:tt)*) => { $crate::Error::InvalidArgument(format!($($arg)*)) };
}

/// Shorthand for an [`Error::InvalidModel`] with a formatted message.
#[macro_export]
macro_rules! invalid_model {
    ($($arg:tt)*) => { $crate::Error::InvalidModel(format!($($arg)*)) };
}
