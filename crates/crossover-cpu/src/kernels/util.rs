//! Helpers shared by the kernel families.

use crossover_core::{invalid, Result, Tensor};

/// A node's inputs, with accessors that turn a missing one into an error.
pub struct Inputs<'a>(pub &'a [Option<&'a Tensor>]);

impl<'a> Inputs<'a> {
    /// A required input.
    pub fn get(&self, i: usize) -> Result<&'a Tensor> {
        self.opt(i)
            .ok_or_else(|| invalid!("required input {i} is missing"))
    }

    /// An optional input: `None` when absent or left empty.
    pub fn opt(&self, i: usize) -> Option<&'a Tensor> {
        self.0.get(i).copied().flatten()
    }

    /// Number of input slots, empty ones included.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// All present inputs (variadic ops such as Sum, Concat).
    pub fn present(&self) -> Vec<&'a Tensor> {
        self.0.iter().flatten().copied().collect()
    }
}

/// Normalizes a possibly negative axis against `rank`.
pub fn norm_axis(axis: i64, rank: usize) -> Result<usize> {
    let r = rank as i64;
    let a = if axis < 0 { axis + r } else { axis };
    if a < 0 || a >= r.max(1) {
        return Err(invalid!("axis {axis} is out of range for rank {rank}"));
    }
    Ok(a as usize)
}

/// Normalizes a list of axes, rejecting duplicates.
pub fn norm_axes(axes: &[i64], rank: usize) -> Result<Vec<usize>> {
    let mut out = Vec::with_capacity(axes.len());
    for &a in axes {
        let n = norm_axis(a, rank)?;
        if out.contains(&n) {
            return Err(invalid!("axis {a} is repeated in {axes:?}"));
        }
        out.push(n);
    }
    Ok(out)
}

/// Applies `$body` to the array of a float tensor (f32, f64, f16, bf16), rewrapping the
/// result; other dtypes are an error naming the op.
#[macro_export]
macro_rules! float_map {
    ($t:expr, $op:expr, $a:ident => $body:expr) => {
        match crossover_core::TensorData::of($t) {
            crossover_core::TensorData::F32($a) => Ok(crossover_core::Tensor::from($body)),
            crossover_core::TensorData::F64($a) => Ok(crossover_core::Tensor::from($body)),
            crossover_core::TensorData::F16($a) => Ok(crossover_core::Tensor::from($body)),
            crossover_core::TensorData::BF16($a) => Ok(crossover_core::Tensor::from($body)),
            other => Err(crossover_core::Error::Unsupported(format!(
                "{} on {} tensors",
                $op,
                other.dtype()
            ))),
        }
    };
}

/// Like [`float_map!`] for every numeric dtype (not bool or string).
#[macro_export]
macro_rules! numeric_map {
    ($t:expr, $op:expr, $a:ident => $body:expr) => {
        match crossover_core::TensorData::of($t) {
            crossover_core::TensorData::F32($a) => Ok(crossover_core::Tensor::from($body)),
            crossover_core::TensorData::F64($a) => Ok(crossover_core::Tensor::from($body)),
            crossover_core::TensorData::F16($a) => Ok(crossover_core::Tensor::from($body)),
            crossover_core::TensorData::BF16($a) => Ok(crossover_core::Tensor::from($body)),
            crossover_core::TensorData::I8($a) => Ok(crossover_core::Tensor::from($body)),
            crossover_core::TensorData::I16($a) => Ok(crossover_core::Tensor::from($body)),
            crossover_core::TensorData::I32($a) => Ok(crossover_core::Tensor::from($body)),
            crossover_core::TensorData::I64($a) => Ok(crossover_core::Tensor::from($body)),
            crossover_core::TensorData::U8($a) => Ok(crossover_core::Tensor::from($body)),
            crossover_core::TensorData::U16($a) => Ok(crossover_core::Tensor::from($body)),
            crossover_core::TensorData::U32($a) => Ok(crossover_core::Tensor::from($body)),
            crossover_core::TensorData::U64($a) => Ok(crossover_core::Tensor::from($body)),
            other => Err(crossover_core::Error::Unsupported(format!(
                "{} on {} tensors",
                $op,
                other.dtype()
            ))),
        }
    };
}
