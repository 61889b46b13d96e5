//! Neural-network kernels: softmax family, normalizations, dropout, attention, losses.
//!
//! Arithmetic runs in f32 (f64 for f64 tensors); f16 and bf16 tensors are widened on the
//! way in and rounded once on the way out.

mod attention;
mod linear_attention;
mod loss;
mod norm;
mod rotary;
mod softmax;
pub(crate) use softmax::softmax_row_f32;

use std::borrow::Cow;
use std::fmt::Debug;
use std::iter::Sum;
use std::ops::AddAssign;

use crossover_core::op::NnOp;
use crossover_core::tensor::{ArcArrayD, Element};
use crossover_core::{invalid, DType, Error, Result, Tensor};
use ndarray::{LinalgScalar, ScalarOperand};
use num_traits::{Float, FromPrimitive};

use super::Inputs;

/// A float type arithmetic runs in.
pub(crate) trait Real:
    Float
    + Element
    + LinalgScalar
    + ScalarOperand
    + FromPrimitive
    + Sum
    + AddAssign
    + Send
    + Sync
    + Debug
{
}
impl Real for f32 {}
impl Real for f64 {}

/// `v` in the working type; f64 and f32 represent every f64 (rounded), so this never fails.
#[inline]
pub(crate) fn cf<F: Real>(v: f64) -> F {
    F::from_f64(v).unwrap_or_else(F::nan)
}

/// Runs `$f::<F>($args)` with F the working type for the float tensor `$t`.
macro_rules! by_float {
    ($t:expr, $name:expr, $f:ident($($arg:expr),* $(,)?)) => {{
        match $t.dtype() {
            DType::F64 => $f::<f64>($($arg),*),
            d if d.is_float() => $f::<f32>($($arg),*),
            d => Err(Error::Unsupported(format!("{} on {d} tensors", $name))),
        }
    }};
}

/// `t` as an array of `F`, converting when its dtype differs (shared, not copied, when not).
pub(crate) fn arr<F: Real>(t: &Tensor) -> Result<ArcArrayD<F>> {
    if t.dtype() == F::DTYPE {
        Ok(t.arc::<F>()?.clone())
    } else if t.dtype().is_float() || t.dtype().is_int() {
        t.cast(F::DTYPE)?.into_arc()
    } else {
        Err(invalid!("expected a numeric tensor, got {}", t.dtype()))
    }
}

/// The elements of `a` in row-major order, borrowed when already contiguous.
pub(crate) fn flat<T: Clone>(a: &ArcArrayD<T>) -> Cow<'_, [T]> {
    match a.as_slice() {
        Some(s) => Cow::Borrowed(s),
        None => Cow::Owned(a.iter().cloned().collect()),
    }
}

/// A tensor of `dtype` from working-type values.
pub(crate) fn out<F: Real>(shape: &[usize], data: Vec<F>, dtype: DType) -> Result<Tensor> {
    Tensor::from_vec(shape, data)?.cast(dtype)
}

/// `t`'s values broadcast to `shape`, row-major (scales and biases).
pub(crate) fn broadcast_flat<F: Real>(t: &Tensor, shape: &[usize], what: &str) -> Result<Vec<F>> {
    let a = arr::<F>(t)?;
    let v = a.broadcast(ndarray::IxDyn(shape)).ok_or_else(|| {
        Error::ShapeMismatch(format!(
            "{what} of shape {:?} does not broadcast to {shape:?}",
            a.shape()
        ))
    })?;
    Ok(v.iter().copied().collect())
}

/// Work big enough to be worth splitting across threads.
pub(crate) fn parallel(n: usize) -> bool {
    n >= super::broadcast::PARALLEL_MIN
}

pub fn eval(op: &NnOp, x: &Inputs) -> Result<Vec<Tensor>> {
    let name: &'static str = op.into();
    match op {
        NnOp::Softmax { axis } | NnOp::LogSoftmax { axis } | NnOp::Hardmax { axis } => {
            let t = x.get(0)?;
            let kind = match op {
                NnOp::Softmax { .. } => softmax::Kind::Softmax,
                NnOp::LogSoftmax { .. } => softmax::Kind::LogSoftmax,
                _ => softmax::Kind::Hardmax,
            };
            Ok(vec![by_float!(t, name, softmax_eval(t, *axis, kind))?])
        }
        NnOp::LayerNormalization { axis, epsilon } => {
            let t = x.get(0)?;
            by_float!(
                t,
                name,
                layer_norm(t, x.get(1)?, x.opt(2), *axis, *epsilon as f64, false)
            )
        }
        NnOp::RMSNormalization { axis, epsilon } => {
            let t = x.get(0)?;
            by_float!(
                t,
                name,
                layer_norm(t, x.get(1)?, None, *axis, *epsilon as f64, true)
            )
        }
        NnOp::BatchNormalization {
            epsilon,
            momentum,
            training,
        } => {
            let t = x.get(0)?;
            by_float!(
                t,
                name,
                batch_norm(t, x, *epsilon as f64, *momentum as f64, *training)
            )
        }
        NnOp::InstanceNormalization { epsilon } => {
            let t = x.get(0)?;
            let (s, b) = (x.get(1)?, x.get(2)?);
            Ok(vec![by_float!(
                t,
                name,
                group_norm(t, s, b, None, *epsilon as f64)
            )?])
        }
        NnOp::GroupNormalization {
            epsilon,
            num_groups,
        } => {
            let t = x.get(0)?;
            let (s, b) = (x.get(1)?, x.get(2)?);
            Ok(vec![by_float!(
                t,
                name,
                group_norm(t, s, b, Some(*num_groups), *epsilon as f64)
            )?])
        }
        NnOp::LRN {
            alpha,
            beta,
            bias,
            size,
        } => {
            let t = x.get(0)?;
            let p = norm::LrnParams {
                alpha: *alpha as f64,
                beta: *beta as f64,
                bias: *bias as f64,
                size: *size as usize,
            };
            Ok(vec![by_float!(t, name, lrn(t, &p))?])
        }
        NnOp::MeanVarianceNormalization { axes } => {
            let t = x.get(0)?;
            Ok(vec![by_float!(t, name, mvn(t, axes))?])
        }
        NnOp::LpNormalization { axis, p } => {
            let t = x.get(0)?;
            Ok(vec![by_float!(t, name, lp_norm(t, *axis, *p))?])
        }
        NnOp::Dropout {
            ratio,
            training_attr,
            seed: _,
        } => dropout(x, *ratio, *training_attr),
        NnOp::Attention(attrs) => {
            let q = x.get(0)?;
            by_float!(q, name, attention_eval(x, attrs))
        }
        NnOp::LinearAttention {
            q_num_heads,
            kv_num_heads,
            scale,
            gated,
            delta,
        } => {
            let q = x.get(0)?;
            let p = linear_attention::Params {
                q_heads: *q_num_heads,
                kv_heads: *kv_num_heads,
                scale: *scale,
                gated: *gated,
                delta: *delta,
            };
            by_float!(q, name, linear_eval(x, &p))
        }
        NnOp::RotaryEmbedding {
            interleaved,
            rotary_embedding_dim,
            num_heads,
        } => {
            let t = x.get(0)?;
            let p = rotary::Params {
                interleaved: *interleaved,
                dim: *rotary_embedding_dim,
                num_heads: *num_heads,
            };
            Ok(vec![by_float!(t, name, rotary_eval(x, &p))?])
        }
        NnOp::SoftmaxCrossEntropyLoss {
            reduction,
            ignore_index,
        } => {
            let t = x.get(0)?;
            by_float!(t, name, sce_eval(x, *reduction, *ignore_index, true))
        }
        NnOp::NegativeLogLikelihoodLoss {
            reduction,
            ignore_index,
        } => {
            let t = x.get(0)?;
            by_float!(t, name, sce_eval(x, *reduction, *ignore_index, false))
        }
    }
}

use attention::eval as attention_eval;
use linear_attention::eval as linear_eval;
use loss::eval as sce_eval;
use norm::{batch_norm, group_norm, layer_norm, lp_norm, lrn, mvn};
use rotary::eval as rotary_eval;
use softmax::eval as softmax_eval;

/// Dropout at inference (or with ratio 0) is the identity with an all-true mask; random
/// masks are not reproducible against a reference and are refused.
fn dropout(x: &Inputs, ratio_attr: Option<f32>, training_attr: bool) -> Result<Vec<Tensor>> {
    let t = x.get(0)?;
    let ratio = match (ratio_attr, x.opt(1)) {
        (Some(r), _) => r as f64,
        (None, Some(r)) => r.scalar_f64()?,
        (None, None) => 0.5,
    };
    if !(0.0..1.0).contains(&ratio) {
        return Err(invalid!("Dropout: ratio must be in [0, 1), got {ratio}"));
    }
    let training = match x.opt(2) {
        Some(m) => m.scalar_f64()? != 0.0,
        None => training_attr,
    };
    if training && ratio > 0.0 {
        return Err(Error::Unsupported(
            "Dropout in training mode with a nonzero ratio".into(),
        ));
    }
    let mask = Tensor::from(ndarray::ArrayD::from_elem(ndarray::IxDyn(t.shape()), true));
    Ok(vec![t.clone(), mask])
}

#[cfg(test)]
mod tests;
