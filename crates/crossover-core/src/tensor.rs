//! Host tensors: one ndarray per element type, shared by reference count so that
//! initializers, reshapes and graph values are not copied.

use std::fmt;

use half::{bf16, f16};
use ndarray::{ArcArray, ArrayD, ArrayViewD, IxDyn};
use num_traits::AsPrimitive;

use crate::{DType, Error, Result};

pub type ArcArrayD<T> = ArcArray<T, IxDyn>;

/// Largest tensor crossover agrees to allocate; shapes past it are refused with an error
/// before any memory is touched. Override with `CROSSOVER_MAX_TENSOR_BYTES`.
pub fn max_tensor_bytes() -> u64 {
    static LIMIT: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
    *LIMIT.get_or_init(|| {
        std::env::var("CROSSOVER_MAX_TENSOR_BYTES")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(16 << 30)
    })
}

/// Element count of `shape`, or an error when it overflows or exceeds
/// [`max_tensor_bytes`] for `dtype`.
pub fn checked_numel(shape: &[usize], dtype: DType) -> Result<usize> {
    let mut n: u64 = 1;
    for &d in shape {
        n = n
            .checked_mul(d as u64)
            .ok_or_else(|| too_large(shape, dtype))?;
    }
    let bytes = n
        .checked_mul(dtype.size() as u64)
        .ok_or_else(|| too_large(shape, dtype))?;
    if bytes > max_tensor_bytes() {
        return Err(too_large(shape, dtype));
    }
    Ok(n as usize)
}

fn too_large(shape: &[usize], dtype: DType) -> Error {
    Error::TooLarge {
        shape: shape.to_vec(),
        dtype,
        limit: max_tensor_bytes(),
    }
}

/// Checks that ONNX dimensions (signed) are valid sizes.
pub fn dims_to_shape(dims: &[i64], what: &str) -> Result<Vec<usize>> {
    dims.iter()
        .map(|&d| {
            usize::try_from(d).map_err(|_| {
                Error::InvalidArgument(format!("{what}: negative dimension {d} in {dims:?}"))
            })
        })
        .collect()
}

/// A dense host tensor.
#[derive(Clone)]
pub enum Tensor {
    F32(ArcArrayD<f32>),
    F64(ArcArrayD<f64>),
    F16(ArcArrayD<f16>),
    BF16(ArcArrayD<bf16>),
    I8(ArcArrayD<i8>),
    I16(ArcArrayD<i16>),
    I32(ArcArrayD<i32>),
    I64(ArcArrayD<i64>),
    U8(ArcArrayD<u8>),
    U16(ArcArrayD<u16>),
    U32(ArcArrayD<u32>),
    U64(ArcArrayD<u64>),
    Bool(ArcArrayD<bool>),
    String(ArcArrayD<String>),
}

/// Runs `$body` with `$a` bound to the array inside `$t`, whatever its element type.
#[macro_export]
macro_rules! with_array {
    ($t:expr, $a:ident => $body:expr) => {
        match $t {
            $crate::Tensor::F32($a) => $body,
            $crate::Tensor::F64($a) => $body,
            $crate::Tensor::F16($a) => $body,
            $crate::Tensor::BF16($a) => $body,
            $crate::Tensor::I8($a) => $body,
            $crate::Tensor::I16($a) => $body,
            $crate::Tensor::I32($a) => $body,
            $crate::Tensor::I64($a) => $body,
            $crate::Tensor::U8($a) => $body,
            $crate::Tensor::U16($a) => $body,
            $crate::Tensor::U32($a) => $body,
            $crate::Tensor::U64($a) => $body,
            $crate::Tensor::Bool($a) => $body,
            $crate::Tensor::String($a) => $body,
        }
    };
}

/// Like [`with_array!`] but rewraps the resulting array into a tensor of the same type.
#[macro_export]
macro_rules! map_array {
    ($t:expr, $a:ident => $body:expr) => {
        match $t {
            $crate::Tensor::F32($a) => $crate::Tensor::F32($body),
            $crate::Tensor::F64($a) => $crate::Tensor::F64($body),
            $crate::Tensor::F16($a) => $crate::Tensor::F16($body),
            $crate::Tensor::BF16($a) => $crate::Tensor::BF16($body),
            $crate::Tensor::I8($a) => $crate::Tensor::I8($body),
            $crate::Tensor::I16($a) => $crate::Tensor::I16($body),
            $crate::Tensor::I32($a) => $crate::Tensor::I32($body),
            $crate::Tensor::I64($a) => $crate::Tensor::I64($body),
            $crate::Tensor::U8($a) => $crate::Tensor::U8($body),
            $crate::Tensor::U16($a) => $crate::Tensor::U16($body),
            $crate::Tensor::U32($a) => $crate::Tensor::U32($body),
            $crate::Tensor::U64($a) => $crate::Tensor::U64($body),
            $crate::Tensor::Bool($a) => $crate::Tensor::Bool($body),
            $crate::Tensor::String($a) => $crate::Tensor::String($body),
        }
    };
}

/// A Rust type that is the element of one [`DType`].
pub trait Element: Clone + Default + fmt::Debug + Send + Sync + 'static {
    const DTYPE: DType;
    fn wrap(a: ArcArrayD<Self>) -> Tensor;
    fn arc(t: &Tensor) -> Option<&ArcArrayD<Self>>;
    fn into_arc(t: Tensor) -> std::result::Result<ArcArrayD<Self>, Tensor>;
}

macro_rules! element {
    ($($t:ty => $d:ident),* $(,)?) => {$(
        impl Element for $t {
            const DTYPE: DType = DType::$d;
            fn wrap(a: ArcArrayD<Self>) -> Tensor { Tensor::$d(a) }
            fn arc(t: &Tensor) -> Option<&ArcArrayD<Self>> {
                match t { Tensor::$d(a) => Some(a), _ => None }
            }
            fn into_arc(t: Tensor) -> std::result::Result<ArcArrayD<Self>, Tensor> {
                match t { Tensor::$d(a) => Ok(a), other => Err(other) }
            }
        }
    )*};
}

element!(
    f32 => F32, f64 => F64, f16 => F16, bf16 => BF16,
    i8 => I8, i16 => I16, i32 => I32, i64 => I64,
    u8 => U8, u16 => U16, u32 => U32, u64 => U64,
    bool => Bool, String => String,
);

impl<T: Element> From<ArrayD<T>> for Tensor {
    fn from(a: ArrayD<T>) -> Tensor {
        T::wrap(a.into_shared())
    }
}

impl<T: Element> From<ArcArrayD<T>> for Tensor {
    fn from(a: ArcArrayD<T>) -> Tensor {
        T::wrap(a)
    }
}

impl Tensor {
    pub fn dtype(&self) -> DType {
        match self {
            Tensor::F32(_) => DType::F32,
            Tensor::F64(_) => DType::F64,
            Tensor::F16(_) => DType::F16,
            Tensor::BF16(_) => DType::BF16,
            Tensor::I8(_) => DType::I8,
            Tensor::I16(_) => DType::I16,
            Tensor::I32(_) => DType::I32,
            Tensor::I64(_) => DType::I64,
            Tensor::U8(_) => DType::U8,
            Tensor::U16(_) => DType::U16,
            Tensor::U32(_) => DType::U32,
            Tensor::U64(_) => DType::U64,
            Tensor::Bool(_) => DType::Bool,
            Tensor::String(_) => DType::String,
        }
    }

    pub fn shape(&self) -> &[usize] {
        with_array!(self, a => a.shape())
    }

    pub fn rank(&self) -> usize {
        self.shape().len()
    }

    pub fn len(&self) -> usize {
        self.shape().iter().product()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn nbytes(&self) -> usize {
        self.len() * self.dtype().size()
    }

    /// A tensor from a flat row-major vector; errors when the length does not match.
    pub fn from_vec<T: Element>(shape: &[usize], data: Vec<T>) -> Result<Tensor> {
        let n = data.len();
        let a = ArrayD::from_shape_vec(IxDyn(shape), data).map_err(|_| {
            Error::InvalidArgument(format!("{n} elements do not fill shape {shape:?}"))
        })?;
        Ok(a.into())
    }

    pub fn scalar<T: Element>(v: T) -> Tensor {
        ArrayD::from_elem(IxDyn(&[]), v).into()
    }

    /// Zeros (false, empty strings) of `dtype`, refusing absurd shapes first.
    pub fn zeros(dtype: DType, shape: &[usize]) -> Result<Tensor> {
        checked_numel(shape, dtype)?;
        fn z<T: Element>(shape: &[usize]) -> Tensor {
            ArrayD::<T>::default(IxDyn(shape)).into()
        }
        Ok(match dtype {
            DType::F32 => z::<f32>(shape),
            DType::F64 => z::<f64>(shape),
            DType::F16 => z::<f16>(shape),
            DType::BF16 => z::<bf16>(shape),
            DType::I8 => z::<i8>(shape),
            DType::I16 => z::<i16>(shape),
            DType::I32 => z::<i32>(shape),
            DType::I64 => z::<i64>(shape),
            DType::U8 => z::<u8>(shape),
            DType::U16 => z::<u16>(shape),
            DType::U32 => z::<u32>(shape),
            DType::U64 => z::<u64>(shape),
            DType::Bool => z::<bool>(shape),
            DType::String => z::<String>(shape),
        })
    }

    /// The shared array, or a dtype error naming both types.
    pub fn arc<T: Element>(&self) -> Result<&ArcArrayD<T>> {
        T::arc(self).ok_or_else(|| Error::DTypeMismatch {
            expected: T::DTYPE,
            got: self.dtype(),
        })
    }

    pub fn view<T: Element>(&self) -> Result<ArrayViewD<'_, T>> {
        Ok(self.arc::<T>()?.view())
    }

    pub fn into_arc<T: Element>(self) -> Result<ArcArrayD<T>> {
        T::into_arc(self).map_err(|t| Error::DTypeMismatch {
            expected: T::DTYPE,
            got: t.dtype(),
        })
    }

    /// Values of an integer tensor as i64 (shape, axes and index inputs).
    pub fn to_i64_vec(&self) -> Result<Vec<i64>> {
        Ok(match self {
            Tensor::I64(a) => a.iter().copied().collect(),
            Tensor::I32(a) => a.iter().map(|&v| v as i64).collect(),
            Tensor::I16(a) => a.iter().map(|&v| v as i64).collect(),
            Tensor::I8(a) => a.iter().map(|&v| v as i64).collect(),
            Tensor::U8(a) => a.iter().map(|&v| v as i64).collect(),
            Tensor::U16(a) => a.iter().map(|&v| v as i64).collect(),
            Tensor::U32(a) => a.iter().map(|&v| v as i64).collect(),
            Tensor::U64(a) => a.iter().map(|&v| v as i64).collect(),
            Tensor::Bool(a) => a.iter().map(|&v| v as i64).collect(),
            other => {
                return Err(Error::InvalidArgument(format!(
                    "expected an integer tensor, got {}",
                    other.dtype()
                )))
            }
        })
    }

    /// Values of a numeric tensor as f64 (scalar attributes given as inputs).
    pub fn to_f64_vec(&self) -> Result<Vec<f64>> {
        match self.cast(DType::F64)? {
            Tensor::F64(a) => Ok(a.iter().copied().collect()),
            _ => unreachable!("cast to f64 yields f64"),
        }
    }

    /// The single value of a one-element tensor, as f64.
    pub fn scalar_f64(&self) -> Result<f64> {
        let v = self.to_f64_vec()?;
        match v.as_slice() {
            [x] => Ok(*x),
            _ => Err(Error::InvalidArgument(format!(
                "expected one value, got shape {:?}",
                self.shape()
            ))),
        }
    }

    /// Reshape; free when the data is contiguous, a copy otherwise.
    pub fn reshape(&self, shape: &[usize]) -> Result<Tensor> {
        let n: usize = shape.iter().product();
        if n != self.len() {
            return Err(Error::ShapeMismatch(format!(
                "cannot reshape {:?} ({} elements) to {:?} ({n} elements)",
                self.shape(),
                self.len(),
                shape
            )));
        }
        Ok(map_array!(self, a => {
            let a = if a.is_standard_layout() { a.clone() } else { a.as_standard_layout().into_owned().into_shared() };
            a.into_shape_with_order(IxDyn(shape)).expect("element count checked above")
        }))
    }

    /// A row-major, contiguous copy if this one is not (views from transposes).
    pub fn to_standard_layout(&self) -> Tensor {
        map_array!(self, a => if a.is_standard_layout() { a.clone() } else { a.as_standard_layout().into_owned().into_shared() })
    }

    /// ONNX `Cast` semantics: floats to ints truncate, out-of-range saturates as Rust's `as`,
    /// numbers to bool are `!= 0`, strings parse as numbers.
    pub fn cast(&self, to: DType) -> Result<Tensor> {
        if self.dtype() == to {
            return Ok(self.clone());
        }
        if to == DType::String {
            return Ok(Tensor::String(
                with_array!(self, a => a.map(format_element).into_shared()),
            ));
        }
        if let Tensor::String(a) = self {
            let parsed: Vec<f64> = a.iter().map(|s| parse_number(s)).collect::<Result<_>>()?;
            return Tensor::from_vec(a.shape(), parsed)?.cast(to);
        }
        if to == DType::Bool {
            return Ok(Tensor::Bool(match self {
                Tensor::Bool(a) => a.clone(),
                other => match other.cast(DType::F64)? {
                    Tensor::F64(a) => a.map(|&v| v != 0.0).into_shared(),
                    _ => unreachable!(),
                },
            }));
        }
        if let Tensor::Bool(a) = self {
            return Tensor::U8(a.map(|&b| b as u8).into_shared()).cast(to);
        }
        macro_rules! cast_from {
            ($a:expr) => {
                match to {
                    DType::F32 => {
                        Tensor::F32($a.map(|&v| AsPrimitive::<f32>::as_(v)).into_shared())
                    }
                    DType::F64 => {
                        Tensor::F64($a.map(|&v| AsPrimitive::<f64>::as_(v)).into_shared())
                    }
                    DType::F16 => {
                        Tensor::F16($a.map(|&v| AsPrimitive::<f16>::as_(v)).into_shared())
                    }
                    DType::BF16 => {
                        Tensor::BF16($a.map(|&v| AsPrimitive::<bf16>::as_(v)).into_shared())
                    }
                    DType::I8 => Tensor::I8($a.map(|&v| AsPrimitive::<i8>::as_(v)).into_shared()),
                    DType::I16 => {
                        Tensor::I16($a.map(|&v| AsPrimitive::<i16>::as_(v)).into_shared())
                    }
                    DType::I32 => {
                        Tensor::I32($a.map(|&v| AsPrimitive::<i32>::as_(v)).into_shared())
                    }
                    DType::I64 => {
                        Tensor::I64($a.map(|&v| AsPrimitive::<i64>::as_(v)).into_shared())
                    }
                    DType::U8 => Tensor::U8($a.map(|&v| AsPrimitive::<u8>::as_(v)).into_shared()),
                    DType::U16 => {
                        Tensor::U16($a.map(|&v| AsPrimitive::<u16>::as_(v)).into_shared())
                    }
                    DType::U32 => {
                        Tensor::U32($a.map(|&v| AsPrimitive::<u32>::as_(v)).into_shared())
                    }
                    DType::U64 => {
                        Tensor::U64($a.map(|&v| AsPrimitive::<u64>::as_(v)).into_shared())
                    }
                    DType::Bool | DType::String => unreachable!("handled above"),
                }
            };
        }
        Ok(match self {
            Tensor::F32(a) => cast_from!(a),
            Tensor::F64(a) => cast_from!(a),
            // half has no direct f16 <-> bf16 conversion; go through f32.
            Tensor::F16(a) => match to {
                DType::BF16 => Tensor::BF16(a.map(|v| bf16::from_f32(v.to_f32())).into_shared()),
                _ => cast_from!(a),
            },
            Tensor::BF16(a) => match to {
                DType::F16 => Tensor::F16(a.map(|v| f16::from_f32(v.to_f32())).into_shared()),
                _ => cast_from!(a),
            },
            Tensor::I8(a) => cast_from!(a),
            Tensor::I16(a) => cast_from!(a),
            Tensor::I32(a) => cast_from!(a),
            Tensor::I64(a) => cast_from!(a),
            Tensor::U8(a) => cast_from!(a),
            Tensor::U16(a) => cast_from!(a),
            Tensor::U32(a) => cast_from!(a),
            Tensor::U64(a) => cast_from!(a),
            Tensor::Bool(_) | Tensor::String(_) => unreachable!("handled above"),
        })
    }
}

fn format_element<T: fmt::Debug>(v: &T) -> String {
    let s = format!("{v:?}");
    // Debug of a String quotes it; numbers print as numpy's str() would.
    s.trim_matches('"').to_string()
}

fn parse_number(s: &str) -> Result<f64> {
    let t = s.trim();
    match t.to_ascii_lowercase().as_str() {
        "nan" | "+nan" | "-nan" => return Ok(f64::NAN),
        "inf" | "+inf" | "infinity" | "+infinity" => return Ok(f64::INFINITY),
        "-inf" | "-infinity" => return Ok(f64::NEG_INFINITY),
        _ => {}
    }
    t.parse::<f64>()
        .map_err(|_| Error::InvalidArgument(format!("cannot cast string {s:?} to a number")))
}

impl fmt::Debug for Tensor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Tensor<{}>{:?}", self.dtype(), self.shape())?;
        if self.len() <= 16 {
            with_array!(self, a => write!(f, " {:?}", a.iter().collect::<Vec<_>>()))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cast_follows_onnx_rules() {
        let t = Tensor::from_vec(&[3], vec![1.7f32, -2.5, 0.0]).unwrap();
        assert_eq!(
            t.cast(DType::I32).unwrap().to_i64_vec().unwrap(),
            vec![1, -2, 0]
        );
        let b = t.cast(DType::Bool).unwrap();
        assert_eq!(
            b.view::<bool>()
                .unwrap()
                .iter()
                .copied()
                .collect::<Vec<_>>(),
            vec![true, true, false]
        );
        let s = Tensor::from_vec(&[2], vec!["1.5".to_string(), "-inf".to_string()]).unwrap();
        let f = s.cast(DType::F32).unwrap();
        assert_eq!(f.view::<f32>().unwrap()[[1]], f32::NEG_INFINITY);
    }

    #[test]
    fn absurd_shapes_are_refused_before_allocating() {
        let err = Tensor::zeros(DType::F32, &[1 << 20, 1 << 20, 1 << 20]).unwrap_err();
        assert!(matches!(err, Error::TooLarge { .. }), "{err}");
    }

    #[test]
    fn reshape_checks_element_count() {
        let t = Tensor::from_vec(&[2, 3], vec![0i64; 6]).unwrap();
        assert_eq!(t.reshape(&[3, 2]).unwrap().shape(), &[3, 2]);
        assert!(t.reshape(&[4]).is_err());
    }
}
