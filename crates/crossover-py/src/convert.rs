//! numpy arrays to crossover tensors and back.
//!
//! Input: a crossover [`Tensor`] owns its buffer (an `ArcArray`), so each input array is
//! copied once, as one `memcpy` when it is C-contiguous with a native dtype (a strided or
//! Fortran-ordered array is gathered into C order by that same single copy). No dtype is
//! converted: an array whose dtype differs from the model's input is an error, as in ONNX
//! Runtime. Output: each result is handed to numpy without a copy (numpy keeps the Rust
//! buffer alive), except strings, which become an object array of `str`.

use crossover::core::ArcArrayD;
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
        ($($t:ty => $v:ident),*) => {$(
            if let Ok(a) = arr.cast::<PyArrayDyn<$t>>() {
                return Ok(Tensor::$v(copy_array(name, a)?));
            }
        )*};
    }
    try_types!(
        f32 => F32, i64 => I64, f64 => F64, i32 => I32, f16 => F16, bool => Bool,
        i8 => I8, i16 => I16, u8 => U8, u16 => U16, u32 => U32, u64 => U64
    );
    let descr = arr.dtype();
    // Asking numpy for `bfloat16` fails unless ml_dtypes registered it, which an array of
    // that dtype proves; look at the name first.
    if descr.typeobj().name()? == "bfloat16" {
        if let Ok(a) = arr.cast::<PyArrayDyn<bf16>>() {
            return Ok(Tensor::BF16(copy_array(name, a)?));
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

fn copy_array<T: NpElement + crossover::core::Element + Copy>(
    name: &str,
    a: &Bound<'_, PyArrayDyn<T>>,
) -> PyResult<ArcArrayD<T>> {
    let ro = a
        .try_readonly()
        .map_err(|e| invalid(format!("input {name:?}: {e}")))?;
    let view = ro.as_array();
    let owned: ArrayD<T> = match view.as_slice() {
        // The common case: one memcpy.
        Some(s) => ArrayD::from_shape_vec(view.raw_dim(), s.to_vec())
            .map_err(|e| invalid(format!("input {name:?}: {e}")))?,
        None => view.as_standard_layout().into_owned(),
    };
    Ok(owned.into_shared())
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
    Ok(Tensor::String(a.into_shared()))
}

/// The numpy array for one output, without a copy when crossover holds the only reference.
pub fn to_numpy(py: Python<'_>, t: Tensor) -> PyResult<Bound<'_, PyAny>> {
    macro_rules! owned {
        ($a:expr) => {
            PyArray::from_owned_array(py, $a.into_owned()).into_any()
        };
    }
    Ok(match t {
        Tensor::F32(a) => owned!(a),
        Tensor::F64(a) => owned!(a),
        Tensor::F16(a) => owned!(a),
        Tensor::BF16(a) => {
            import_ml_dtypes(py)?;
            owned!(a)
        }
        Tensor::I8(a) => owned!(a),
        Tensor::I16(a) => owned!(a),
        Tensor::I32(a) => owned!(a),
        Tensor::I64(a) => owned!(a),
        Tensor::U8(a) => owned!(a),
        Tensor::U16(a) => owned!(a),
        Tensor::U32(a) => owned!(a),
        Tensor::U64(a) => owned!(a),
        Tensor::Bool(a) => owned!(a),
        Tensor::String(a) => {
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
