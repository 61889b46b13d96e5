//! Host tensors: one ndarray per element type, shared by reference count so that
//! initializers, reshapes and graph values are not copied.

use std::fmt;
use std::ptr::NonNull;
use std::sync::{Arc, OnceLock};

pub use half::{bf16, f16};
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

/// The elements of a host tensor: one ndarray per element type, shared by reference count.
#[derive(Clone)]
pub enum TensorData {
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

/// Runs `$body` with `$a` bound to the array inside `$t` (a `&Tensor` or `&TensorData`),
/// whatever its element type.
#[macro_export]
macro_rules! with_array {
    ($t:expr, $a:ident => $body:expr) => {
        match $crate::tensor::TensorData::of($t) {
            $crate::tensor::TensorData::F32($a) => $body,
            $crate::tensor::TensorData::F64($a) => $body,
            $crate::tensor::TensorData::F16($a) => $body,
            $crate::tensor::TensorData::BF16($a) => $body,
            $crate::tensor::TensorData::I8($a) => $body,
            $crate::tensor::TensorData::I16($a) => $body,
            $crate::tensor::TensorData::I32($a) => $body,
            $crate::tensor::TensorData::I64($a) => $body,
            $crate::tensor::TensorData::U8($a) => $body,
            $crate::tensor::TensorData::U16($a) => $body,
            $crate::tensor::TensorData::U32($a) => $body,
            $crate::tensor::TensorData::U64($a) => $body,
            $crate::tensor::TensorData::Bool($a) => $body,
            $crate::tensor::TensorData::String($a) => $body,
        }
    };
}

/// Like [`with_array!`] but rewraps the resulting array into a tensor of the same type.
#[macro_export]
macro_rules! map_array {
    ($t:expr, $a:ident => $body:expr) => {
        match $crate::tensor::TensorData::of($t) {
            $crate::tensor::TensorData::F32($a) => {
                $crate::Tensor::from($crate::tensor::TensorData::F32($body))
            }
            $crate::tensor::TensorData::F64($a) => {
                $crate::Tensor::from($crate::tensor::TensorData::F64($body))
            }
            $crate::tensor::TensorData::F16($a) => {
                $crate::Tensor::from($crate::tensor::TensorData::F16($body))
            }
            $crate::tensor::TensorData::BF16($a) => {
                $crate::Tensor::from($crate::tensor::TensorData::BF16($body))
            }
            $crate::tensor::TensorData::I8($a) => {
                $crate::Tensor::from($crate::tensor::TensorData::I8($body))
            }
            $crate::tensor::TensorData::I16($a) => {
                $crate::Tensor::from($crate::tensor::TensorData::I16($body))
            }
            $crate::tensor::TensorData::I32($a) => {
                $crate::Tensor::from($crate::tensor::TensorData::I32($body))
            }
            $crate::tensor::TensorData::I64($a) => {
                $crate::Tensor::from($crate::tensor::TensorData::I64($body))
            }
            $crate::tensor::TensorData::U8($a) => {
                $crate::Tensor::from($crate::tensor::TensorData::U8($body))
            }
            $crate::tensor::TensorData::U16($a) => {
                $crate::Tensor::from($crate::tensor::TensorData::U16($body))
            }
            $crate::tensor::TensorData::U32($a) => {
                $crate::Tensor::from($crate::tensor::TensorData::U32($body))
            }
            $crate::tensor::TensorData::U64($a) => {
                $crate::Tensor::from($crate::tensor::TensorData::U64($body))
            }
            $crate::tensor::TensorData::Bool($a) => {
                $crate::Tensor::from($crate::tensor::TensorData::Bool($body))
            }
            $crate::tensor::TensorData::String($a) => {
                $crate::Tensor::from($crate::tensor::TensorData::String($body))
            }
        }
    };
}

/// The Rust element type of a [`DType`] variant named as an identifier: `element_type!(F32)`.
#[macro_export]
macro_rules! element_type {
    (F32) => {
        f32
    };
    (F64) => {
        f64
    };
    (F16) => {
        $crate::tensor::f16
    };
    (BF16) => {
        $crate::tensor::bf16
    };
    (I8) => {
        i8
    };
    (I16) => {
        i16
    };
    (I32) => {
        i32
    };
    (I64) => {
        i64
    };
    (U8) => {
        u8
    };
    (U16) => {
        u16
    };
    (U32) => {
        u32
    };
    (U64) => {
        u64
    };
    (Bool) => {
        bool
    };
    (String) => {
        String
    };
}

/// Calls the generic `$f::<T>(args)` for the element type of the [`DType`] `$d`.
#[macro_export]
macro_rules! by_dtype {
    ($d:expr, $f:ident ( $($a:expr),* )) => {
        match $d {
            $crate::DType::F32 => $f::<$crate::element_type!(F32)>($($a),*),
            $crate::DType::F64 => $f::<$crate::element_type!(F64)>($($a),*),
            $crate::DType::F16 => $f::<$crate::element_type!(F16)>($($a),*),
            $crate::DType::BF16 => $f::<$crate::element_type!(BF16)>($($a),*),
            $crate::DType::I8 => $f::<$crate::element_type!(I8)>($($a),*),
            $crate::DType::I16 => $f::<$crate::element_type!(I16)>($($a),*),
            $crate::DType::I32 => $f::<$crate::element_type!(I32)>($($a),*),
            $crate::DType::I64 => $f::<$crate::element_type!(I64)>($($a),*),
            $crate::DType::U8 => $f::<$crate::element_type!(U8)>($($a),*),
            $crate::DType::U16 => $f::<$crate::element_type!(U16)>($($a),*),
            $crate::DType::U32 => $f::<$crate::element_type!(U32)>($($a),*),
            $crate::DType::U64 => $f::<$crate::element_type!(U64)>($($a),*),
            $crate::DType::Bool => $f::<$crate::element_type!(Bool)>($($a),*),
            $crate::DType::String => $f::<$crate::element_type!(String)>($($a),*),
        }
    };
}

/// A Rust type that is the element of one [`DType`].
pub trait Element: Clone + Default + fmt::Debug + Send + Sync + 'static {
    const DTYPE: DType;
    fn wrap(a: ArcArrayD<Self>) -> TensorData;
    fn arc(t: &TensorData) -> Option<&ArcArrayD<Self>>;
    fn into_arc(t: TensorData) -> std::result::Result<ArcArrayD<Self>, TensorData>;
}

macro_rules! element {
    ($($t:ty => $d:ident),* $(,)?) => {$(
        impl Element for $t {
            const DTYPE: DType = DType::$d;
            fn wrap(a: ArcArrayD<Self>) -> TensorData { TensorData::$d(a) }
            fn arc(t: &TensorData) -> Option<&ArcArrayD<Self>> {
                match t { TensorData::$d(a) => Some(a), _ => None }
            }
            fn into_arc(t: TensorData) -> std::result::Result<ArcArrayD<Self>, TensorData> {
                match t { TensorData::$d(a) => Ok(a), other => Err(other) }
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

impl TensorData {
    /// The data of a tensor, or the data itself: what [`with_array!`] matches on.
    pub fn of(t: &(impl AsRef<TensorData> + ?Sized)) -> &TensorData {
        t.as_ref()
    }

    pub fn dtype(&self) -> DType {
        match self {
            TensorData::F32(_) => DType::F32,
            TensorData::F64(_) => DType::F64,
            TensorData::F16(_) => DType::F16,
            TensorData::BF16(_) => DType::BF16,
            TensorData::I8(_) => DType::I8,
            TensorData::I16(_) => DType::I16,
            TensorData::I32(_) => DType::I32,
            TensorData::I64(_) => DType::I64,
            TensorData::U8(_) => DType::U8,
            TensorData::U16(_) => DType::U16,
            TensorData::U32(_) => DType::U32,
            TensorData::U64(_) => DType::U64,
            TensorData::Bool(_) => DType::Bool,
            TensorData::String(_) => DType::String,
        }
    }
}

impl AsRef<TensorData> for TensorData {
    fn as_ref(&self) -> &TensorData {
        self
    }
}

/// A dense host tensor: elements crossover owns ([`TensorData`]), or a read-only view of
/// a buffer someone else owns — a numpy array handed to `run` — read in place.
///
/// Kernels that read through [`Tensor::view`] read a borrowed buffer without copying it;
/// everything else reaches the elements through `Deref<Target = TensorData>`, which copies a
/// borrowed buffer once, on first use, and keeps the copy. Writing (`DerefMut`) first turns
/// a borrowed tensor into an owned one, so the lender's buffer is never written.
#[derive(Clone)]
pub struct Tensor(Repr);

#[derive(Clone)]
enum Repr {
    Owned(TensorData),
    Borrowed(Arc<Borrowed>),
}

/// A C-contiguous buffer of `dtype` elements that `keep_alive` keeps valid and unchanged.
struct Borrowed {
    dtype: DType,
    shape: Vec<usize>,
    ptr: NonNull<u8>,
    /// Held, never read: dropping it is what releases the buffer.
    _keep_alive: Box<dyn Send + Sync>,
    copy: fn(&Borrowed) -> TensorData,
    owned: OnceLock<TensorData>,
}

// SAFETY: the buffer is only read, and `Tensor::borrowed`'s contract keeps it valid and
// unchanged for as long as `keep_alive` lives; `keep_alive` itself is Send + Sync.
unsafe impl Send for Borrowed {}
unsafe impl Sync for Borrowed {}

impl Borrowed {
    fn view<T: Element>(&self) -> ArrayViewD<'_, T> {
        debug_assert_eq!(T::DTYPE, self.dtype);
        // SAFETY: `Tensor::borrowed` checked the dtype, alignment and element count, and
        // its caller keeps the buffer valid and unchanged while `self` (and so
        // `keep_alive`) lives, which outlives the returned borrow.
        unsafe { ArrayViewD::from_shape_ptr(IxDyn(&self.shape), self.ptr.as_ptr() as *const T) }
    }

    fn data(&self) -> &TensorData {
        self.owned.get_or_init(|| (self.copy)(self))
    }
}

impl std::ops::Deref for Tensor {
    type Target = TensorData;

    fn deref(&self) -> &TensorData {
        match &self.0 {
            Repr::Owned(d) => d,
            Repr::Borrowed(b) => b.data(),
        }
    }
}

impl std::ops::DerefMut for Tensor {
    fn deref_mut(&mut self) -> &mut TensorData {
        if let Repr::Borrowed(b) = &self.0 {
            self.0 = Repr::Owned(b.data().clone());
        }
        match &mut self.0 {
            Repr::Owned(d) => d,
            Repr::Borrowed(_) => unreachable!("made owned above"),
        }
    }
}

impl AsRef<TensorData> for Tensor {
    fn as_ref(&self) -> &TensorData {
        self
    }
}

impl From<TensorData> for Tensor {
    fn from(d: TensorData) -> Tensor {
        Tensor(Repr::Owned(d))
    }
}

impl<T: Element> From<ArrayD<T>> for Tensor {
    fn from(a: ArrayD<T>) -> Tensor {
        T::wrap(a.into_shared()).into()
    }
}

impl<T: Element> From<ArcArrayD<T>> for Tensor {
    fn from(a: ArcArrayD<T>) -> Tensor {
        T::wrap(a).into()
    }
}

impl Tensor {
    /// A tensor that reads `len` elements at `ptr`, in row-major order, in place.
    ///
    /// # Safety
    ///
    /// The `shape.iter().product()` elements at `ptr` must stay valid, initialised and
    /// unmodified for as long as `keep_alive` lives (a handle on the buffer's owner, such
    /// as a reference to a numpy array).
    pub unsafe fn borrowed<T: Element + Copy>(
        shape: &[usize],
        ptr: NonNull<T>,
        keep_alive: Box<dyn Send + Sync>,
    ) -> Result<Tensor> {
        checked_numel(shape, T::DTYPE)?;
        if ptr.as_ptr().align_offset(std::mem::align_of::<T>()) != 0 {
            return Err(Error::InvalidArgument(format!(
                "a borrowed {} buffer at {ptr:p} is not aligned to {} bytes",
                T::DTYPE,
                std::mem::align_of::<T>()
            )));
        }
        fn copy<T: Element>(b: &Borrowed) -> TensorData {
            T::wrap(b.view::<T>().to_shared())
        }
        Ok(Tensor(Repr::Borrowed(Arc::new(Borrowed {
            dtype: T::DTYPE,
            shape: shape.to_vec(),
            ptr: ptr.cast(),
            _keep_alive: keep_alive,
            copy: copy::<T>,
            owned: OnceLock::new(),
        }))))
    }

    /// Whether this tensor reads a lender's buffer in place, not yet copied.
    pub fn is_borrowed(&self) -> bool {
        matches!(&self.0, Repr::Borrowed(b) if b.owned.get().is_none())
    }

    /// The elements, copied out of a borrowed buffer if need be.
    pub fn into_data(self) -> TensorData {
        match self.0 {
            Repr::Owned(d) => d,
            Repr::Borrowed(b) => b.data().clone(),
        }
    }

    pub fn dtype(&self) -> DType {
        match &self.0 {
            Repr::Owned(d) => d.dtype(),
            Repr::Borrowed(b) => b.dtype,
        }
    }

    pub fn shape(&self) -> &[usize] {
        match &self.0 {
            Repr::Owned(d) => with_array!(d, a => a.shape()),
            Repr::Borrowed(b) => &b.shape,
        }
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

    /// The shared array (a borrowed buffer's copy), or a dtype error naming both types.
    pub fn arc<T: Element>(&self) -> Result<&ArcArrayD<T>> {
        T::arc(self).ok_or_else(|| Error::DTypeMismatch {
            expected: T::DTYPE,
            got: self.dtype(),
        })
    }

    /// The elements in place, a borrowed buffer's included; a dtype error otherwise.
    pub fn view<T: Element>(&self) -> Result<ArrayViewD<'_, T>> {
        match &self.0 {
            Repr::Borrowed(b) if b.dtype == T::DTYPE => Ok(b.view()),
            Repr::Borrowed(b) => Err(Error::DTypeMismatch {
                expected: T::DTYPE,
                got: b.dtype,
            }),
            Repr::Owned(_) => Ok(self.arc::<T>()?.view()),
        }
    }

    pub fn into_arc<T: Element>(self) -> Result<ArcArrayD<T>> {
        T::into_arc(self.into_data()).map_err(|t| Error::DTypeMismatch {
            expected: T::DTYPE,
            got: t.dtype(),
        })
    }

    /// Values of an integer tensor as i64 (shape, axes and index inputs).
    pub fn to_i64_vec(&self) -> Result<Vec<i64>> {
        // Through views: index inputs the caller lent are read in place.
        macro_rules! widen {
            ($t:ty) => {
                self.view::<$t>()?.iter().map(|&v| v as i64).collect()
            };
        }
        Ok(match self.dtype() {
            DType::I64 => widen!(i64),
            DType::I32 => widen!(i32),
            DType::I16 => widen!(i16),
            DType::I8 => widen!(i8),
            DType::U8 => widen!(u8),
            DType::U16 => widen!(u16),
            DType::U32 => widen!(u32),
            DType::U64 => widen!(u64),
            DType::Bool => widen!(bool),
            other => {
                return Err(Error::InvalidArgument(format!(
                    "expected an integer tensor, got {other}"
                )))
            }
        })
    }

    /// Values of a numeric tensor as f64 (scalar attributes given as inputs).
    pub fn to_f64_vec(&self) -> Result<Vec<f64>> {
        match self.cast(DType::F64)?.into_data() {
            TensorData::F64(a) => Ok(a.iter().copied().collect()),
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
            return Ok(TensorData::String(
                with_array!(self, a => a.map(format_element).into_shared()),
            )
            .into());
        }
        // Below, elements are read through views, so a buffer the caller lent is not copied
        // before its cast.
        if self.dtype() == DType::String {
            let a = self.view::<String>()?;
            let parsed: Vec<f64> = a.iter().map(|s| parse_number(s)).collect::<Result<_>>()?;
            return Tensor::from_vec(a.shape(), parsed)?.cast(to);
        }
        if to == DType::Bool {
            return match self.cast(DType::F64)?.into_data() {
                TensorData::F64(a) => Ok(a.map(|&v| v != 0.0).into()),
                _ => unreachable!("cast to f64 yields f64"),
            };
        }
        if self.dtype() == DType::Bool {
            return Tensor::from(self.view::<bool>()?.map(|&b| b as u8)).cast(to);
        }
        macro_rules! cast_from {
            ($a:expr) => {
                match to {
                    DType::F32 => {
                        TensorData::F32($a.map(|&v| AsPrimitive::<f32>::as_(v)).into_shared())
                    }
                    DType::F64 => {
                        TensorData::F64($a.map(|&v| AsPrimitive::<f64>::as_(v)).into_shared())
                    }
                    DType::F16 => {
                        TensorData::F16($a.map(|&v| AsPrimitive::<f16>::as_(v)).into_shared())
                    }
                    DType::BF16 => {
                        TensorData::BF16($a.map(|&v| AsPrimitive::<bf16>::as_(v)).into_shared())
                    }
                    DType::I8 => {
                        TensorData::I8($a.map(|&v| AsPrimitive::<i8>::as_(v)).into_shared())
                    }
                    DType::I16 => {
                        TensorData::I16($a.map(|&v| AsPrimitive::<i16>::as_(v)).into_shared())
                    }
                    DType::I32 => {
                        TensorData::I32($a.map(|&v| AsPrimitive::<i32>::as_(v)).into_shared())
                    }
                    DType::I64 => {
                        TensorData::I64($a.map(|&v| AsPrimitive::<i64>::as_(v)).into_shared())
                    }
                    DType::U8 => {
                        TensorData::U8($a.map(|&v| AsPrimitive::<u8>::as_(v)).into_shared())
                    }
                    DType::U16 => {
                        TensorData::U16($a.map(|&v| AsPrimitive::<u16>::as_(v)).into_shared())
                    }
                    DType::U32 => {
                        TensorData::U32($a.map(|&v| AsPrimitive::<u32>::as_(v)).into_shared())
                    }
                    DType::U64 => {
                        TensorData::U64($a.map(|&v| AsPrimitive::<u64>::as_(v)).into_shared())
                    }
                    DType::Bool | DType::String => unreachable!("handled above"),
                }
            };
        }
        macro_rules! from {
            ($t:ty) => {{
                let a = self.view::<$t>()?;
                cast_from!(a)
            }};
        }
        Ok(Tensor::from(match self.dtype() {
            DType::F32 => from!(f32),
            DType::F64 => from!(f64),
            // half has no direct f16 <-> bf16 conversion; go through f32.
            DType::F16 if to == DType::BF16 => TensorData::BF16(
                self.view::<f16>()?
                    .map(|v| bf16::from_f32(v.to_f32()))
                    .into_shared(),
            ),
            DType::BF16 if to == DType::F16 => TensorData::F16(
                self.view::<bf16>()?
                    .map(|v| f16::from_f32(v.to_f32()))
                    .into_shared(),
            ),
            DType::F16 => from!(f16),
            DType::BF16 => from!(bf16),
            DType::I8 => from!(i8),
            DType::I16 => from!(i16),
            DType::I32 => from!(i32),
            DType::I64 => from!(i64),
            DType::U8 => from!(u8),
            DType::U16 => from!(u16),
            DType::U32 => from!(u32),
            DType::U64 => from!(u64),
            DType::Bool | DType::String => unreachable!("handled above"),
        }))
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

    /// A buffer crossover does not own, and whether its owner has been released.
    fn lent(values: Vec<f32>) -> (Arc<Vec<f32>>, Arc<std::sync::atomic::AtomicBool>, Tensor) {
        struct Owner {
            _buf: Arc<Vec<f32>>,
            released: Arc<std::sync::atomic::AtomicBool>,
        }
        impl Drop for Owner {
            fn drop(&mut self) {
                self.released
                    .store(true, std::sync::atomic::Ordering::SeqCst);
            }
        }
        let buf = Arc::new(values);
        let released = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let ptr = NonNull::new(buf.as_ptr() as *mut f32).unwrap();
        let owner = Owner {
            _buf: buf.clone(),
            released: released.clone(),
        };
        // SAFETY: `owner` holds the Vec, which nothing writes.
        let t = unsafe { Tensor::borrowed(&[2, 3], ptr, Box::new(owner)) }.unwrap();
        (buf, released, t)
    }

    #[test]
    fn a_borrowed_buffer_is_read_in_place_until_owned_access_copies_it_once() {
        let (buf, released, t) = lent(vec![0.0, 1.0, 2.0, 3.0, 4.0, 5.0]);
        assert!(t.is_borrowed());
        assert_eq!((t.dtype(), t.shape()), (DType::F32, &[2usize, 3][..]));
        let v = t.view::<f32>().unwrap();
        assert_eq!(v.as_ptr(), buf.as_ptr(), "view reads the lender's buffer");
        assert_eq!(v[[1, 2]], 5.0);
        assert!(t.view::<i64>().is_err());
        assert!(t.is_borrowed(), "a view does not copy");

        let clone = t.clone();
        let owned = t.arc::<f32>().unwrap();
        assert_ne!(owned.as_ptr(), buf.as_ptr());
        assert_eq!(owned.iter().copied().collect::<Vec<_>>(), *buf);
        assert!(!clone.is_borrowed(), "clones share the one copy");
        assert_eq!(clone.arc::<f32>().unwrap().as_ptr(), owned.as_ptr());

        let mut written = clone.clone();
        if let TensorData::F32(a) = &mut *written {
            a[[0, 0]] = 42.0;
        }
        assert_eq!(buf[0], 0.0, "writing never reaches the lender's buffer");
        assert_eq!(written.view::<f32>().unwrap()[[0, 0]], 42.0);
        assert_eq!(t.view::<f32>().unwrap()[[0, 0]], 0.0);

        drop((t, clone, written));
        assert!(released.load(std::sync::atomic::Ordering::SeqCst));
    }

    #[test]
    fn a_borrowed_buffer_must_be_aligned_and_sized() {
        let buf = vec![0u8; 64];
        let ptr = NonNull::new(buf.as_ptr().wrapping_add(1) as *mut f32).unwrap();
        // SAFETY: refused before anything reads it.
        let err = unsafe { Tensor::borrowed(&[4], ptr, Box::new(())) }.unwrap_err();
        assert!(err.to_string().contains("not aligned"), "{err}");
        let ptr = NonNull::new(buf.as_ptr() as *mut f32).unwrap();
        let err = unsafe { Tensor::borrowed(&[1 << 40, 1 << 40], ptr, Box::new(())) };
        assert!(matches!(err, Err(Error::TooLarge { .. })));
    }

    #[test]
    fn reshape_checks_element_count() {
        let t = Tensor::from_vec(&[2, 3], vec![0i64; 6]).unwrap();
        assert_eq!(t.reshape(&[3, 2]).unwrap().shape(), &[3, 2]);
        assert!(t.reshape(&[4]).is_err());
    }
}
