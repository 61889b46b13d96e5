//! SoftmaxCrossEntropyLoss and NegativeLogLikelihoodLoss.

use crossover_core::op::nn::LossReduction;
use crossover_core::{invalid, Error, Result, Tensor};

use super::{arr, cf, flat, out, Real};
use crate::kernels::Inputs;

/// Scores `[N, C, d1…]`, labels `[N, d1…]`, optional class weights `[C]`. With `softmax`
/// the scores are logits (SoftmaxCrossEntropyLoss, which may also output the log
/// probabilities); otherwise they are log probabilities already.
pub(crate) fn eval<F: Real>(
    x: &Inputs,
    reduction: LossReduction,
    ignore_index: Option<i64>,
    softmax: bool,
) -> Result<Vec<Tensor>> {
    let (st, lt) = (x.get(0)?, x.get(1)?);
    let shape = st.shape();
    if shape.len() < 2 {
        return Err(invalid!("loss scores need rank >= 2, got {shape:?}"));
    }
    let (n, c) = (shape[0], shape[1]);
    let d: usize = shape[2..].iter().product();
    let mut label_shape = vec![n];
    label_shape.extend_from_slice(&shape[2..]);
    if lt.shape() != label_shape.as_slice() {
        return Err(Error::ShapeMismatch(format!(
            "labels {:?} do not match scores {shape:?}",
            lt.shape()
        )));
    }
    if !lt.dtype().is_int() {
        return Err(invalid!("labels must be integers, got {}", lt.dtype()));
    }
    let labels = lt.to_i64_vec()?;
    let weights = x
        .opt(2)
        .map(|w| -> Result<Vec<F>> {
            let w = arr::<F>(w)?;
            if w.len() != c {
                return Err(Error::ShapeMismatch(format!(
                    "weights have {} entries for {c} classes",
                    w.len()
                )));
            }
            Ok(w.iter().copied().collect())
        })
        .transpose()?;
    let a = arr::<F>(st)?;
    let mut lp = flat(&a).into_owned();
    if softmax {
        // log-softmax over the class axis, for each (n, d).
        for img in lp.chunks_mut((c * d).max(1)) {
            for k in 0..d {
                let idx = |ch: usize| ch * d + k;
                let m = (0..c).fold(F::neg_infinity(), |m, ch| m.max(img[idx(ch)]));
                let s: F = (0..c).map(|ch| (img[idx(ch)] - m).exp()).sum();
                let ls = m + s.ln();
                for ch in 0..c {
                    img[idx(ch)] = img[idx(ch)] - ls;
                }
            }
        }
    }
    let mut loss = vec![F::zero(); n * d];
    let mut wsum = F::zero();
    for i in 0..n {
        for k in 0..d {
            let t = labels[i * d + k];
            if Some(t) == ignore_index {
                continue;
            }
            let cls = usize::try_from(t)
                .ok()
                .filter(|&t| t < c)
                .ok_or_else(|| invalid!("label {t} is out of range for {c} classes"))?;
            let w = weights.as_ref().map_or(F::one(), |w| w[cls]);
            loss[i * d + k] = -lp[(i * c + cls) * d + k] * w;
            wsum += w;
        }
    }
    let dtype = st.dtype();
    let first = match reduction {
        LossReduction::None => out(&label_shape, loss, dtype)?,
        LossReduction::Sum => out(&[], vec![loss.iter().copied().sum::<F>()], dtype)?,
        LossReduction::Mean => {
            let total: F = loss.iter().copied().sum();
            let mean = if wsum == F::zero() {
                cf::<F>(0.0) * total / wsum
            } else {
                total / wsum
            };
            out(&[], vec![mean], dtype)?
        }
    };
    let mut outs = vec![first];
    if softmax {
        outs.push(out(shape, lp, dtype)?);
    }
    Ok(outs)
}
