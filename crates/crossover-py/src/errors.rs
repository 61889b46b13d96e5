//! crossover errors as Python exceptions: one class per [`ErrorKind`] under
//! `crossover.Error`, so callers can catch the kind they care about.

use crossover::{Error, ErrorKind};
use pyo3::create_exception;
use pyo3::exceptions::PyException;
use pyo3::prelude::*;

create_exception!(
    crossover,
    CrossoverError,
    PyException,
    "Base class of every error crossover raises."
);
create_exception!(
    crossover,
    InvalidArgument,
    CrossoverError,
    "The caller's inputs are wrong: names, dtypes, shapes, values, options."
);
create_exception!(
    crossover,
    InvalidModel,
    CrossoverError,
    "The model file is missing, unreadable, malformed or inconsistent."
);
create_exception!(
    crossover,
    Unsupported,
    CrossoverError,
    "Valid ONNX, or a valid option, that crossover does not implement."
);
create_exception!(crossover, DeviceError, CrossoverError, "A device failed.");
create_exception!(
    crossover,
    Overloaded,
    CrossoverError,
    "Every device queue that could take the request is full; retry later."
);
create_exception!(
    crossover,
    DeadlineExceeded,
    CrossoverError,
    "The request waited in a queue past its deadline."
);

/// The Python exception for a crossover error, carrying its full message.
pub fn to_py(e: Error) -> PyErr {
    let msg = e.to_string();
    match e.kind() {
        ErrorKind::InvalidArgument => InvalidArgument::new_err(msg),
        ErrorKind::InvalidModel => InvalidModel::new_err(msg),
        ErrorKind::Unsupported => Unsupported::new_err(msg),
        ErrorKind::Device => DeviceError::new_err(msg),
        ErrorKind::Overloaded => Overloaded::new_err(msg),
        ErrorKind::DeadlineExceeded => DeadlineExceeded::new_err(msg),
    }
}

pub fn invalid(msg: impl Into<String>) -> PyErr {
    InvalidArgument::new_err(msg.into())
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    let py = m.py();
    m.add("Error", py.get_type::<CrossoverError>())?;
    m.add("InvalidArgument", py.get_type::<InvalidArgument>())?;
    m.add("InvalidModel", py.get_type::<InvalidModel>())?;
    m.add("Unsupported", py.get_type::<Unsupported>())?;
    m.add("DeviceError", py.get_type::<DeviceError>())?;
    m.add("Overloaded", py.get_type::<Overloaded>())?;
    m.add("DeadlineExceeded", py.get_type::<DeadlineExceeded>())?;
    Ok(())
}
