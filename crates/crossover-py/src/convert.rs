//! numpy arrays to crossover tensors and back.
//!
//! Input: a C-contiguous, aligned array of a native numeric dtype is not copied: the
//! [`Tensor`] borrows numpy's buffer and holds a reference to the array until the run is
//! done (as ONNX Runtime's CPU provider reads it in place). Any other layout is gathered
//! into C order by one copy, numpy's, which is then borrowed alike. No dtype is converted: an array whose dtype differs from the
//! model's input is an error, as in ONNX Runtime. Output: each result is handed to numpy
//! without a copy (numpy keeps the Rust buffer alive), except strings, which become an
//! object array of `str`.

use std::ptr::NonNull;

use crossover::core::{Element, TensorData};
use crossover::{DType, Tensor};
use half::{bf16, f16};
use ndarray::{ArrayD, IxDyn};
use numpy::{
    Element as NpElement, PyArray, PyArrayDescrMethods, PyArrayDyn, PyArrayMethods, PyUntypedArray,
    PyUntypedArrayMethods,
};
use pyo3::prelude::*;
use pyo3::types::PyString;

use crate::errors::{invalid, Unsupported};

/// The tensor for one named input.
pub fn to_tensor(name: &str, obj: &Bound<'_, PyAny>) -> PyResult<Tensor> {
    let Ok(arr) = obj.cast::<PyUntypedArray>() else {
        return Err(invalid(format!(
            "input {name:?} must be a numpy.ndarray, got {}",
            obj.get_type().name()?
        )));
    };
    macro_rules! try_types {
        ($($t:ty),*) => {$(
            if let Ok(a) = arr.cast::<PyArrayDyn<$t>>() {
                return array_tensor(name, a);
            }
        )*};
    }
    try_types!(f32, i64, f64, i32, f16, bool, i8, i16, u8, u16, u32, u64);
    let descr = arr.dtype();
    // Asking numpy for `bfloat16` fails unless ml_dtypes registered it, which an array of
    // that dtype proves; look at the name first.
    if descr.typeobj().name()? == "bfloat16" {
        if let Ok(a) = arr.cast::<PyArrayDyn<bf16>>() {
            return array_tensor(name, a);
        }
    }
    match descr.kind() {
        b'U' | b'O' => string_tensor(name, arr),
        _ => Err(invalid(format!(
            "input {name:?} has numpy dtype {} (byte order {:?}), which crossover does not take: \
             use a native-endian float, int, uint, bool, bfloat16 (ml_dtypes) or str array",
            descr.str()?,
            descr.byteorder() as char
        ))),
    }
}

/// The array, read in place: an aligned C-contiguous one as it is, any other through the
/// aligned C-ordered copy numpy makes of it.
fn array_tensor<T: NpElement + Element + Copy>(
    name: &str,
    a: &Bound<'_, PyArrayDyn<T>>,
) -> PyResult<Tensor> {
    // Refuses an array some Rust code holds mutably, as numpy's own borrow checks do.
    drop(
        a.try_readonly()
            .map_err(|e| invalid(format!("input {name:?}: {e}")))?,
    );
    let a = if a.is_c_contiguous() && a.is_aligned() {
        a.clone()
    } else {
        a.py()
            .import("numpy")?
            .call_method1("require", (a, a.py().None(), ["C", "A"]))?
            .cast_into::<PyArrayDyn<T>>()?
    };
    let shape = a.shape().to_vec();
    let Some(ptr) = NonNull::new(a.data()).filter(|_| !a.is_empty()) else {
        return Ok(ArrayD::<T>::default(IxDyn(&shape)).into());
    };
    // SAFETY: the reference in `keep_alive` keeps the array, and so its buffer, alive, and
    // numpy refuses to resize an array others reference; numpy vouched for the alignment
    // and the C order above. Like ONNX Runtime, a run reads the buffer while the caller
    // could write it from another thread: that race is the caller's (docs/python.md).
    let keep_alive: Box<dyn Send + Sync> = Box::new(a.unbind());
    unsafe { Tensor::borrowed(&shape, ptr, keep_alive) }
        .map_err(|e| invalid(format!("input {name:?}: {e}")))
}

fn string_tensor(name: &str, arr: &Bound<'_, PyUntypedArray>) -> PyResult<Tensor> {
    let shape = arr.shape().to_vec();
    let flat = arr.call_method0("ravel")?.call_method0("tolist")?;
    let mut values = Vec::with_capacity(shape.iter().product());
    for item in flat.try_iter()? {
        let item = item?;
        let s = if let Ok(s) = item.cast::<PyString>() {
            s.to_string()
        } else if let Ok(b) = item.extract::<Vec<u8>>() {
            String::from_utf8(b)
                .map_err(|_| invalid(format!("input {name:?}: a bytes element is not UTF-8")))?
        } else {
            return Err(invalid(format!(
                "input {name:?}: an object array must hold str elements, found {}",
                item.get_type().name()?
            )));
        };
        values.push(s);
    }
    let a = ArrayD::from_shape_vec(IxDyn(&shape), values)
        .map_err(|e| invalid(format!("input {name:?}: {e}")))?;
    Ok(a.into())
}

/// The numpy array for one output, without a copy when crossover holds the only reference.
pub fn to_numpy(py: Python<'_>, t: Tensor) -> PyResult<Bound<'_, PyAny>> {
    macro_rules! owned {
        ($a:expr) => {
            PyArray::from_owned_array(py, $a.into_owned()).into_any()
        };
    }
    Ok(match t.into_data() {
        TensorData::F32(a) => owned!(a),
        TensorData::F64(a) => owned!(a),
        TensorData::F16(a) => owned!(a),
        TensorData::BF16(a) => {
            import_ml_dtypes(py)?;
            owned!(a)
        }
        TensorData::I8(a) => owned!(a),
        TensorData::I16(a) => owned!(a),
        TensorData::I32(a) => owned!(a),
        TensorData::I64(a) => owned!(a),
        TensorData::U8(a) => owned!(a),
        TensorData::U16(a) => owned!(a),
        TensorData::U32(a) => owned!(a),
        TensorData::U64(a) => owned!(a),
        TensorData::Bool(a) => owned!(a),
        TensorData::String(a) => {
            let objs = a.map(|s| PyString::new(py, s).unbind());
            PyArray::from_owned_object_array(py, objs).into_any()
        }
    })
}

/// numpy has no bfloat16 of its own; ml_dtypes registers one.
fn import_ml_dtypes(py: Python<'_>) -> PyResult<()> {
    py.import("ml_dtypes").map(|_| ()).map_err(|_| {
        Unsupported::new_err(
            "a bfloat16 output needs the ml_dtypes package (pip install ml_dtypes)".to_string(),
        )
    })
}

/// `tensor(float)`, the type string ONNX Runtime's `NodeArg.type` uses.
pub fn onnx_type(dtype: Option<DType>) -> Option<String> {
    dtype.map(|d| format!("tensor({})", d.onnx_name()))
}
