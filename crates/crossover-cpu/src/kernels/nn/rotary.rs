//! RotaryEmbedding: rotates (a prefix of) each head's features by position-dependent angles.

use crossover_core::{invalid, Error, Result, Tensor};
use ndarray::{ArrayD, ArrayViewMut4, Axis, Ix4, IxDyn};
use rayon::prelude::*;

use super::{arr, Real};
use crate::kernels::Inputs;

pub(crate) struct Params {
    pub interleaved: bool,
    /// 0: the whole head.
    pub dim: usize,
    pub num_heads: Option<usize>,
}

pub(crate) fn eval<F: Real>(x: &Inputs, p: &Params) -> Result<Tensor> {
    let t = x.get(0)?;
    let mut y: ArrayD<F> = arr::<F>(t)?.as_standard_layout().into_owned();
    let shape = t.shape().to_vec();
    // A `[batch, seq, heads, head_size]` view of the output.
    let mut v: ArrayViewMut4<F> = match shape.len() {
        4 => y
            .view_mut()
            .into_dimensionality::<Ix4>()
            .map_err(|e| invalid!("RotaryEmbedding: {e}"))?
            .permuted_axes([0, 2, 1, 3]),
        3 => {
            let h = p
                .num_heads
                .ok_or_else(|| invalid!("RotaryEmbedding: 3-D input needs num_heads"))?;
            if shape[2] % h != 0 {
                return Err(invalid!(
                    "RotaryEmbedding: hidden size {} is not a multiple of {h} heads",
                    shape[2]
                ));
            }
            y.view_mut()
                .into_shape_with_order(IxDyn(&[shape[0], shape[1], h, shape[2] / h]))
                .map_err(|e| invalid!("RotaryEmbedding: {e}"))?
                .into_dimensionality::<Ix4>()
                .map_err(|e| invalid!("RotaryEmbedding: {e}"))?
        }
        _ => {
            return Err(invalid!(
                "RotaryEmbedding needs a 3-D or 4-D input, got {shape:?}"
            ))
        }
    };
    let (batch, seq, _, head) = v.dim();
    let rot = if p.dim == 0 { head } else { p.dim };
    if rot > head || rot % 2 != 0 {
        return Err(invalid!(
            "RotaryEmbedding: rotary dim {rot} must be even and at most the head size {head}"
        ));
    }
    let half = rot / 2;
    let (cos, sin) = (arr::<F>(x.get(1)?)?, arr::<F>(x.get(2)?)?);
    if cos.shape() != sin.shape() || cos.shape().last() != Some(&half) {
        return Err(Error::ShapeMismatch(format!(
            "RotaryEmbedding: caches {:?} and {:?} must match, last dimension {half}",
            cos.shape(),
            sin.shape()
        )));
    }
    let (cos, sin) = (cos.as_standard_layout(), sin.as_standard_layout());
    let (cos, sin) = (
        cos.as_slice().unwrap_or_default(),
        sin.as_slice().unwrap_or_default(),
    );
    // Row of the caches for (b, s).
    let rows: Vec<usize> = match x.opt(3) {
        Some(pos) => {
            if pos.shape() != [batch, seq] {
                return Err(Error::ShapeMismatch(format!(
                    "RotaryEmbedding: position_ids {:?}, expected [{batch}, {seq}]",
                    pos.shape()
                )));
            }
            let max = cos.len() / half.max(1);
            pos.to_i64_vec()?
                .into_iter()
                .map(|i| {
                    usize::try_from(i)
                        .ok()
                        .filter(|&i| i < max)
                        .ok_or_else(|| invalid!("RotaryEmbedding: position {i} is out of range"))
                })
                .collect::<Result<_>>()?
        }
        None => {
            if cos.len() != batch * seq * half {
                return Err(Error::ShapeMismatch(format!(
                    "RotaryEmbedding: caches without position_ids must be [{batch}, {seq}, {half}]"
                )));
            }
            (0..batch * seq).collect()
        }
    };
    let il = p.interleaved;
    v.axis_iter_mut(Axis(0))
        .into_par_iter()
        .enumerate()
        .for_each(|(b, mut vb)| {
            for (s, mut vs) in vb.outer_iter_mut().enumerate() {
                let r = rows[b * seq + s] * half;
                let (c, sn) = (&cos[r..r + half], &sin[r..r + half]);
                for mut h in vs.outer_iter_mut() {
                    for k in 0..half {
                        let (i1, i2) = if il {
                            (2 * k, 2 * k + 1)
                        } else {
                            (k, k + half)
                        };
                        let (x1, x2) = (h[i1], h[i2]);
                        h[i1] = c[k] * x1 - sn[k] * x2;
                        h[i2] = sn[k] * x1 + c[k] * x2;
                    }
                }
            }
        });
    Tensor::from(y).cast(t.dtype())
}
