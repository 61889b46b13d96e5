//! The ONNX `Attention` op (opset 23+): scaled dot-product attention over 3-D (heads
//! packed in the hidden dimension) or 4-D `[batch, heads, seq, head_size]` inputs, with
//! grouped KV heads, boolean or additive masks, causal and sliding-window masking, a KV
//! cache, softcap, and the optional QK output. Batch × heads run in parallel.

use crossover_core::op::nn::AttentionAttrs;
use crossover_core::tensor::{checked_numel, ArcArrayD};
use crossover_core::TensorData;
use crossover_core::{invalid, Error, Result, Tensor};
use ndarray::linalg::general_mat_mul;
use ndarray::{
    concatenate, s, Array2, Array4, ArrayD, ArrayView4, ArrayViewMut2, Axis, CowArray, Ix4, IxDyn,
};
use rayon::prelude::*;

use super::{arr, cf, Real};
use crate::kernels::Inputs;

/// A `[batch, seq, heads * size]` or `[batch, heads, seq, size]` input as a 4-D
/// `[batch, heads, seq, size]` view.
fn heads_view<'a, F: Real>(
    a: &'a CowArray<'_, F, IxDyn>,
    heads: Option<usize>,
    what: &str,
) -> Result<ArrayView4<'a, F>> {
    let v = a.view();
    if v.ndim() == 4 {
        return v
            .into_dimensionality::<Ix4>()
            .map_err(|e| invalid!("Attention: {what}: {e}"));
    }
    let h = heads.ok_or_else(|| invalid!("Attention: 3-D {what} needs its num_heads attribute"))?;
    let sh = v.shape();
    let (b, s, hidden) = (sh[0], sh[1], sh[2]);
    if hidden % h != 0 {
        return Err(invalid!(
            "Attention: {what} hidden size {hidden} is not a multiple of {h} heads"
        ));
    }
    let v = v
        .into_shape_with_order(IxDyn(&[b, s, h, hidden / h]))
        .map_err(|e| invalid!("Attention: {what}: {e}"))?
        .into_dimensionality::<Ix4>()
        .map_err(|e| invalid!("Attention: {what}: {e}"))?;
    Ok(v.permuted_axes([0, 2, 1, 3]))
}

/// `past` (if any) followed by `new` along the sequence axis.
fn with_past<'a, F: Real>(
    past: Option<&'a ArcArrayD<F>>,
    new: ArrayView4<'a, F>,
    what: &str,
) -> Result<Array4<F>> {
    match past {
        None => Ok(new.to_owned()),
        Some(p) => {
            let p = p
                .view()
                .into_dimensionality::<Ix4>()
                .map_err(|_| invalid!("Attention: past_{what} must be 4-D, got {:?}", p.shape()))?;
            let (ps, ns) = (p.shape(), new.shape());
            if ps[0] != ns[0] || ps[1] != ns[1] || ps[3] != ns[3] {
                return Err(Error::ShapeMismatch(format!(
                    "Attention: past_{what} {ps:?} does not extend {what} {ns:?}"
                )));
            }
            concatenate(Axis(2), &[p, new]).map_err(|e| invalid!("Attention: {e}"))
        }
    }
}

/// The additive form of `attn_mask` (bool: 0 where attended, -inf elsewhere), its last
/// axis padded with -inf up to `total` keys.
fn additive_mask<F: Real>(m: &Tensor, total: usize) -> Result<ArrayD<F>> {
    let a: ArrayD<F> = match &**m {
        TensorData::Bool(b) => b.map(|&v| if v { F::zero() } else { F::neg_infinity() }),
        _ => arr::<F>(m)?.to_owned(),
    };
    if a.ndim() > 4 {
        return Err(invalid!(
            "Attention: attn_mask has rank {}, at most 4 is allowed",
            a.ndim()
        ));
    }
    let Some(&last) = a.shape().last() else {
        return Ok(a);
    };
    if last > total {
        return Err(Error::ShapeMismatch(format!(
            "Attention: attn_mask covers {last} keys but there are {total}"
        )));
    }
    if last == total {
        return Ok(a);
    }
    let mut shape = a.shape().to_vec();
    *shape.last_mut().expect("rank checked above") = total;
    let mut p = ArrayD::from_elem(IxDyn(&shape), F::neg_infinity());
    p.slice_each_axis_mut(|ax| {
        if ax.axis.index() + 1 == shape.len() {
            ndarray::Slice::from(0..last)
        } else {
            ndarray::Slice::from(..)
        }
    })
    .assign(&a);
    Ok(p)
}

/// Which keys a query row may see, beyond the explicit mask.
struct Structure<'a> {
    causal: bool,
    left: i64,
    right: i64,
    /// Past length (internal cache), or 0.
    offset: i64,
    /// Valid keys per batch (external cache).
    nonpad: Option<&'a [i64]>,
    q_len: i64,
}

impl Structure<'_> {
    /// Whether query `i` of batch `b` may attend key `j`.
    #[inline]
    fn allows(&self, b: usize, i: usize, j: usize) -> bool {
        let (i, j) = (i as i64, j as i64);
        let offset = match self.nonpad {
            Some(n) => n[b] - self.q_len,
            None => self.offset,
        };
        let pos = i + offset;
        if self.causal && j > pos {
            return false;
        }
        if self.left >= 0 && pos - j > self.left {
            return false;
        }
        if self.right >= 0 && j - pos > self.right {
            return false;
        }
        if let Some(n) = self.nonpad {
            if j >= n[b] {
                return false;
            }
        }
        true
    }
}

pub(crate) fn eval<F: Real>(x: &Inputs, at: &AttentionAttrs) -> Result<Vec<Tensor>> {
    let (qt, kt, vt) = (x.get(0)?, x.get(1)?, x.get(2)?);
    let dtype = qt.dtype();
    let rank = qt.rank();
    if !(rank == 3 || rank == 4) || kt.rank() != rank || vt.rank() != rank {
        return Err(invalid!(
            "Attention needs Q, K, V all 3-D or all 4-D, got {:?}, {:?}, {:?}",
            qt.shape(),
            kt.shape(),
            vt.shape()
        ));
    }
    let (qa, ka, va) = (arr::<F>(qt)?, arr::<F>(kt)?, arr::<F>(vt)?);
    let (qc, kc, vc) = (
        qa.as_standard_layout(),
        ka.as_standard_layout(),
        va.as_standard_layout(),
    );
    let q = heads_view(&qc, at.q_num_heads, "Q")?;
    let k = heads_view(&kc, at.kv_num_heads, "K")?;
    let v = heads_view(&vc, at.kv_num_heads, "V")?;
    let (batch, hq, sq, d) = q.dim();
    let (kb, hkv, skv, kd) = k.dim();
    let (vb, vh, vs, dv) = v.dim();
    if kb != batch || vb != batch || vh != hkv || vs != skv || kd != d {
        return Err(Error::ShapeMismatch(format!(
            "Attention: Q {:?}, K {:?}, V {:?} do not agree",
            q.shape(),
            k.shape(),
            v.shape()
        )));
    }
    if hkv == 0 || hq % hkv != 0 {
        return Err(invalid!(
            "Attention: {hq} query heads are not a multiple of {hkv} KV heads"
        ));
    }
    let group = hq / hkv;

    let (past_k, past_v) = (x.opt(4), x.opt(5));
    if past_k.is_some() != past_v.is_some() {
        return Err(invalid!("Attention: past_key and past_value go together"));
    }
    let nonpad = x.opt(6).map(|t| t.to_i64_vec()).transpose()?;
    if let Some(n) = &nonpad {
        if past_k.is_some() {
            return Err(invalid!(
                "Attention: nonpad_kv_seqlen cannot be combined with a past cache"
            ));
        }
        if n.len() != batch {
            return Err(invalid!(
                "Attention: nonpad_kv_seqlen has {} entries for batch {batch}",
                n.len()
            ));
        }
    }
    let past_k = past_k.map(arr::<F>).transpose()?;
    let past_v = past_v.map(arr::<F>).transpose()?;
    let past_len = past_k
        .as_ref()
        .map_or(0, |p| p.shape().get(2).copied().unwrap_or(0));
    let present_k = with_past(past_k.as_ref(), k, "key")?;
    let present_v = with_past(past_v.as_ref(), v, "value")?;
    let total = present_k.shape()[2];
    if present_v.shape()[2] != total {
        return Err(Error::ShapeMismatch(format!(
            "Attention: {total} keys but {} values",
            present_v.shape()[2]
        )));
    }

    let mask = x.opt(3).map(|m| additive_mask::<F>(m, total)).transpose()?;
    let full = [batch, hq, sq, total];
    let mask4 = match &mask {
        None => None,
        Some(m) => Some(
            m.broadcast(IxDyn(&full))
                .ok_or_else(|| {
                    Error::ShapeMismatch(format!(
                        "Attention: attn_mask {:?} does not broadcast to {full:?}",
                        m.shape()
                    ))
                })?
                .into_dimensionality::<Ix4>()
                .map_err(|e| invalid!("Attention: {e}"))?,
        ),
    };
    let structure = Structure {
        causal: at.is_causal,
        left: at.left_window,
        right: at.right_window,
        offset: past_len as i64,
        nonpad: nonpad.as_deref(),
        q_len: sq as i64,
    };
    let structured =
        at.is_causal || at.left_window >= 0 || at.right_window >= 0 || nonpad.is_some();

    let scale = at
        .scale
        .map_or_else(|| 1.0 / (d as f64).sqrt(), |s| s as f64);
    let scale = cf::<F>(scale);
    let softcap = cf::<F>(at.softcap as f64);
    let mode = at.qk_matmul_output_mode;

    checked_numel(&[batch, hq, sq, dv], dtype)?;
    if at.want_qk {
        checked_numel(&full, dtype)?;
    }
    // 3-D outputs are `[batch, seq, heads * dv]`: write through a permuted view.
    let mut y = if rank == 3 {
        Array4::<F>::zeros((batch, sq, hq, dv))
    } else {
        Array4::<F>::zeros((batch, hq, sq, dv))
    };
    let mut qk = if at.want_qk {
        Array4::<F>::zeros((batch, hq, sq, total))
    } else {
        Array4::<F>::zeros((batch, hq, 0, 0))
    };
    {
        let mut y_heads = if rank == 3 {
            y.view_mut().permuted_axes([0, 2, 1, 3])
        } else {
            y.view_mut()
        };
        let head = |b: usize, h: usize, mut yh: ArrayViewMut2<F>, mut qkh: ArrayViewMut2<F>| {
            let kvh = h / group;
            let qm = q.slice(s![b, h, .., ..]);
            let km = present_k.slice(s![b, kvh, .., ..]);
            let vm = present_v.slice(s![b, kvh, .., ..]);
            let mut sc = Array2::<F>::zeros((sq, total));
            general_mat_mul(scale, &qm, &km.t(), F::zero(), &mut sc);
            for (i, mut row) in sc.outer_iter_mut().enumerate() {
                let mask_row = mask4.as_ref().map(|m| m.slice(s![b, h, i, ..]));
                let mut bias_max = F::neg_infinity();
                for (j, s) in row.iter_mut().enumerate() {
                    if softcap > F::zero() {
                        *s = softcap * (*s / softcap).tanh();
                    }
                    if at.want_qk && mode <= 1 {
                        qkh[[i, j]] = *s;
                    }
                    let mut bias = mask_row.as_ref().map_or(F::zero(), |m| m[j]);
                    if structured && !structure.allows(b, i, j) {
                        bias += F::neg_infinity();
                    }
                    bias_max = if bias.is_nan() || bias_max.is_nan() {
                        F::nan()
                    } else {
                        bias_max.max(bias)
                    };
                    *s += bias;
                    if at.want_qk && mode == 2 {
                        qkh[[i, j]] = *s;
                    }
                }
                if bias_max == F::neg_infinity() {
                    row.fill(F::zero());
                } else {
                    softmax_row(
                        row.as_slice_mut()
                            .expect("rows of a fresh array are contiguous"),
                    );
                }
                if at.want_qk && mode == 3 {
                    qkh.row_mut(i).assign(&row);
                }
            }
            general_mat_mul(F::one(), &sc, &vm, F::zero(), &mut yh);
        };
        let head = &head;
        y_heads
            .axis_iter_mut(Axis(0))
            .into_par_iter()
            .zip(qk.axis_iter_mut(Axis(0)).into_par_iter())
            .enumerate()
            .for_each(|(b, (mut yb, mut qkb))| {
                yb.axis_iter_mut(Axis(0))
                    .into_par_iter()
                    .zip(qkb.axis_iter_mut(Axis(0)).into_par_iter())
                    .enumerate()
                    .for_each(|(h, (yh, qkh))| head(b, h, yh, qkh));
            });
    }

    let y_shape: Vec<usize> = if rank == 3 {
        vec![batch, sq, hq * dv]
    } else {
        vec![batch, hq, sq, dv]
    };
    let y = y
        .into_shape_with_order(IxDyn(&y_shape))
        .map_err(|e| invalid!("Attention: {e}"))?;
    let mut outs = vec![
        Tensor::from(y).cast(dtype)?,
        Tensor::from(present_k.into_dyn()).cast(dtype)?,
        Tensor::from(present_v.into_dyn()).cast(dtype)?,
    ];
    if at.want_qk {
        outs.push(Tensor::from(qk.into_dyn()).cast(dtype)?);
    }
    Ok(outs)
}

/// Softmax of one row in place; a NaN anywhere spreads to the row as in the reference,
/// and a row of -inf scores gives zeros.
fn softmax_row<F: Real>(row: &mut [F]) {
    let mut m = F::neg_infinity();
    for &v in row.iter() {
        if v.is_nan() {
            m = v;
            break;
        }
        m = m.max(v);
    }
    if m == F::neg_infinity() {
        m = F::zero();
    }
    let mut sum = F::zero();
    for v in row.iter_mut() {
        *v = (*v - m).exp();
        sum += *v;
    }
    if sum == F::zero() {
        sum = F::one();
    }
    let r = F::one() / sum;
    for v in row.iter_mut() {
        *v = *v * r;
    }
}
