//! Elementwise kernels.

use crossover_core::op::ElementwiseOp;
use crossover_core::{Error, Result, Tensor};

use super::broadcast::{binary, unary};
use super::Inputs;

/// Applies `|$x, $y| $e` to two tensors of the same numeric dtype, with broadcasting.
macro_rules! binary_numeric {
    ($a:expr, $b:expr, $op:expr, |$x:ident, $y:ident| $e:expr) => {
        match ($a, $b) {
            (Tensor::F32(a), Tensor::F32(b)) => {
                Tensor::from(binary(a.view(), b.view(), |&$x, &$y| $e)?)
            }
            (Tensor::F64(a), Tensor::F64(b)) => {
                Tensor::from(binary(a.view(), b.view(), |&$x, &$y| $e)?)
            }
            (Tensor::F16(a), Tensor::F16(b)) => {
                Tensor::from(binary(a.view(), b.view(), |&$x, &$y| $e)?)
            }
            (Tensor::BF16(a), Tensor::BF16(b)) => {
                Tensor::from(binary(a.view(), b.view(), |&$x, &$y| $e)?)
            }
            (Tensor::I8(a), Tensor::I8(b)) => {
                Tensor::from(binary(a.view(), b.view(), |&$x, &$y| $e)?)
            }
            (Tensor::I16(a), Tensor::I16(b)) => {
                Tensor::from(binary(a.view(), b.view(), |&$x, &$y| $e)?)
            }
            (Tensor::I32(a), Tensor::I32(b)) => {
                Tensor::from(binary(a.view(), b.view(), |&$x, &$y| $e)?)
            }
            (Tensor::I64(a), Tensor::I64(b)) => {
                Tensor::from(binary(a.view(), b.view(), |&$x, &$y| $e)?)
            }
            (Tensor::U8(a), Tensor::U8(b)) => {
                Tensor::from(binary(a.view(), b.view(), |&$x, &$y| $e)?)
            }
            (Tensor::U16(a), Tensor::U16(b)) => {
                Tensor::from(binary(a.view(), b.view(), |&$x, &$y| $e)?)
            }
            (Tensor::U32(a), Tensor::U32(b)) => {
                Tensor::from(binary(a.view(), b.view(), |&$x, &$y| $e)?)
            }
            (Tensor::U64(a), Tensor::U64(b)) => {
                Tensor::from(binary(a.view(), b.view(), |&$x, &$y| $e)?)
            }
            (a, b) if a.dtype() != b.dtype() => {
                return Err(Error::InvalidArgument(format!(
                    "{} needs inputs of one type, got {} and {}",
                    $op,
                    a.dtype(),
                    b.dtype()
                )))
            }
            (a, _) => {
                return Err(Error::Unsupported(format!(
                    "{} on {} tensors",
                    $op,
                    a.dtype()
                )))
            }
        }
    };
}

pub fn eval(op: &ElementwiseOp, x: &Inputs) -> Result<Vec<Tensor>> {
    let name: &'static str = op.into();
    let out = match op {
        ElementwiseOp::Relu => {
            crate::float_map!(x.get(0)?, name, a => unary(a.view(), |&v| if v > num_traits::zero() { v } else { num_traits::zero() }))?
        }
        ElementwiseOp::Add => binary_numeric!(x.get(0)?, x.get(1)?, name, |p, q| p + q),
        ElementwiseOp::Mul => binary_numeric!(x.get(0)?, x.get(1)?, name, |p, q| p * q),
    };
    Ok(vec![out])
}
