//! Normalizations: Layer, RMS, Batch, Instance, Group, LRN, MeanVariance, Lp.

use crossover_core::{invalid, DType, Error, Result, Tensor};
use ndarray::{ArrayD, Axis, IxDyn};
use rayon::prelude::*;

use super::{arr, broadcast_flat, cf, flat, out, parallel, Real};
use crate::kernels::simd;
use crate::kernels::util::{norm_axes, norm_axis};
use crate::kernels::Inputs;

/// Runs `f(row_index, chunk)` over consecutive `len`-sized chunks of `data`, in parallel
/// when there is enough work.
fn for_rows<F: Real>(data: &mut [F], len: usize, f: impl Fn(usize, &mut [F]) + Sync + Send) {
    if len == 0 {
        return;
    }
    if parallel(data.len()) {
        data.par_chunks_mut(len)
            .enumerate()
            .for_each(|(i, c)| f(i, c));
    } else {
        data.chunks_mut(len).enumerate().for_each(|(i, c)| f(i, c));
    }
}

/// Mean and (population) variance of a slice, two-pass for accuracy.
fn moments<F: Real>(x: &[F]) -> (F, F) {
    let n = cf::<F>(x.len().max(1) as f64);
    let mean = x.iter().copied().sum::<F>() / n;
    let var = x.iter().map(|&v| (v - mean) * (v - mean)).sum::<F>() / n;
    (mean, var)
}

simd::widest! {
    /// One f32 row of LayerNormalization (RMSNormalization with `rms`: no mean) in place;
    /// returns its mean and 1/σ. Sums in 16 lanes, so that the loops vectorise (a single
    /// running f32 sum cannot be reordered).
    fn layer_norm_row_f32(
        row: &mut [f32],
        w: &[f32],
        b: Option<&[f32]>,
        eps: f32,
        rms: bool,
    ) -> (f32, f32) {
        const L: usize = 16;
        let n = row.len().max(1) as f32;
        let mut lanes = [0.0f32; L];
        let mut chunks = row.chunks_exact(L);
        for c in &mut chunks {
            for (s, &v) in lanes.iter_mut().zip(c) {
                *s += v;
            }
        }
        let sum = chunks.remainder().iter().sum::<f32>() + lanes.iter().sum::<f32>();
        let mean = if rms { 0.0 } else { sum / n };
        let mut lanes = [0.0f32; L];
        let mut chunks = row.chunks_exact(L);
        for c in &mut chunks {
            for (s, &v) in lanes.iter_mut().zip(c) {
                *s += (v - mean) * (v - mean);
            }
        }
        let squares = chunks
            .remainder()
            .iter()
            .map(|&v| (v - mean) * (v - mean))
            .sum::<f32>()
            + lanes.iter().sum::<f32>();
        let inv = 1.0 / (squares / n + eps).sqrt();
        match b {
            Some(b) => {
                for ((v, &w), &b) in row.iter_mut().zip(w).zip(b) {
                    *v = (*v - mean) * inv * w + b;
                }
            }
            None => {
                for (v, &w) in row.iter_mut().zip(w) {
                    *v = (*v - mean) * inv * w;
                }
            }
        }
        (mean, inv)
    }
}

/// LayerNormalization (or RMSNormalization when `rms`): statistics over `dims[axis..]`.
/// Outputs Y, and for LayerNormalization Mean and InvStdDev (f32, the stash type).
pub(crate) fn layer_norm<F: Real>(
    t: &Tensor,
    scale: &Tensor,
    bias: Option<&Tensor>,
    axis: i64,
    eps: f64,
    rms: bool,
) -> Result<Vec<Tensor>> {
    let shape = t.shape();
    let axis = norm_axis(axis, shape.len())?;
    let (rows, cols): (usize, usize) = (
        shape[..axis].iter().product(),
        shape[axis..].iter().product(),
    );
    let w = broadcast_flat::<F>(scale, &shape[axis..], "scale")?;
    let b = bias
        .map(|b| broadcast_flat::<F>(b, &shape[axis..], "bias"))
        .transpose()?;
    let a = arr::<F>(t)?;
    let mut y = flat(&a).into_owned();
    let mut stats = vec![(F::zero(), F::zero()); rows];
    let eps = cf::<F>(eps);
    if cols > 0 {
        let run = |(row, st): (&mut [F], &mut (F, F))| {
            if let (Some(r), Some(w)) = (simd::as_f32_mut(row), simd::as_f32(&w[..])) {
                let b = b.as_ref().and_then(|b| simd::as_f32(&b[..]));
                let (mean, inv) = layer_norm_row_f32(r, w, b, eps.to_f32().unwrap_or(0.0), rms);
                *st = (cf(mean as f64), cf(inv as f64));
                return;
            }
            let (mean, var) = if rms {
                let n = cf::<F>(cols as f64);
                (F::zero(), row.iter().map(|&v| v * v).sum::<F>() / n)
            } else {
                moments(row)
            };
            let inv = F::one() / (var + eps).sqrt();
            *st = (mean, inv);
            for (k, v) in row.iter_mut().enumerate() {
                let z = (*v - mean) * inv * w[k];
                *v = match &b {
                    Some(b) => z + b[k],
                    None => z,
                };
            }
        };
        if parallel(y.len()) {
            y.par_chunks_mut(cols)
                .zip(stats.par_iter_mut())
                .for_each(run);
        } else {
            y.chunks_mut(cols).zip(stats.iter_mut()).for_each(run);
        }
    }
    let mut outs = vec![out(shape, y, t.dtype())?];
    if !rms {
        let stat_shape: Vec<usize> = shape
            .iter()
            .enumerate()
            .map(|(i, &d)| if i < axis { d } else { 1 })
            .collect();
        let mean = stats.iter().map(|s| s.0).collect();
        let inv = stats.iter().map(|s| s.1).collect();
        outs.push(out(&stat_shape, mean, DType::F32)?);
        outs.push(out(&stat_shape, inv, DType::F32)?);
    }
    Ok(outs)
}

/// `(n, c, spatial)` for a tensor laid out `[N, C, ...]`.
fn ncs(shape: &[usize], op: &str) -> Result<(usize, usize, usize)> {
    if shape.len() < 2 {
        return Err(invalid!("{op} needs rank >= 2, got shape {shape:?}"));
    }
    Ok((shape[0], shape[1], shape[2..].iter().product()))
}

/// A per-channel parameter vector of length `c`.
fn per_channel<F: Real>(t: &Tensor, c: usize, what: &str) -> Result<Vec<F>> {
    let a = arr::<F>(t)?;
    if a.len() != c {
        return Err(Error::ShapeMismatch(format!(
            "{what} has {} elements, expected {c}",
            a.len()
        )));
    }
    Ok(a.iter().copied().collect())
}

/// InstanceNormalization (`groups` None: one group per channel) and GroupNormalization.
/// Scale and bias are per channel, or per group (GroupNormalization before opset 21).
pub(crate) fn group_norm<F: Real>(
    t: &Tensor,
    scale: &Tensor,
    bias: &Tensor,
    groups: Option<i64>,
    eps: f64,
) -> Result<Tensor> {
    let (_, c, s) = ncs(t.shape(), "normalization")?;
    let g = match groups {
        None => c,
        Some(g) if g > 0 && c % g as usize == 0 => g as usize,
        Some(g) => return Err(invalid!("num_groups {g} does not divide the {c} channels")),
    };
    let per_group = c / g.max(1);
    let (w, b) = if scale.len() == c || g == c {
        (
            per_channel::<F>(scale, c, "scale")?,
            per_channel::<F>(bias, c, "bias")?,
        )
    } else {
        let w = per_channel::<F>(scale, g, "scale")?;
        let b = per_channel::<F>(bias, g, "bias")?;
        (
            (0..c).map(|ch| w[ch / per_group]).collect(),
            (0..c).map(|ch| b[ch / per_group]).collect(),
        )
    };
    let a = arr::<F>(t)?;
    let mut y = flat(&a).into_owned();
    let eps = cf::<F>(eps);
    let len = per_group * s;
    for_rows(&mut y, len, |i, chunk| {
        let (mean, var) = moments(chunk);
        let inv = F::one() / (var + eps).sqrt();
        let first_ch = (i % g) * per_group;
        for (k, v) in chunk.iter_mut().enumerate() {
            let ch = first_ch + k / s.max(1);
            *v = (*v - mean) * inv * w[ch] + b[ch];
        }
    });
    out(t.shape(), y, t.dtype())
}

/// BatchNormalization. Inference uses the running statistics; training uses the batch's
/// and also outputs the updated running mean and variance (then the batch's own).
pub(crate) fn batch_norm<F: Real>(
    t: &Tensor,
    x: &Inputs,
    eps: f64,
    momentum: f64,
    training: bool,
) -> Result<Vec<Tensor>> {
    let (n, c, s) = if t.rank() == 1 {
        (1, t.shape()[0], 1)
    } else {
        ncs(t.shape(), "BatchNormalization")?
    };
    let w = per_channel::<F>(x.get(1)?, c, "scale")?;
    let b = per_channel::<F>(x.get(2)?, c, "bias")?;
    let rm_t = x.get(3)?;
    let rv_t = x.get(4)?;
    let rm = per_channel::<F>(rm_t, c, "mean")?;
    let rv = per_channel::<F>(rv_t, c, "var")?;
    let a = arr::<F>(t)?;
    let mut y = flat(&a).into_owned();
    let (mean, var) = if training {
        let cnt = cf::<F>((n * s).max(1) as f64);
        let mut mean = vec![F::zero(); c];
        let mut var = vec![F::zero(); c];
        for ch in 0..c {
            let plane = |i: usize| &y[(i * c + ch) * s..(i * c + ch + 1) * s];
            let m = (0..n)
                .map(|i| plane(i).iter().copied().sum::<F>())
                .sum::<F>()
                / cnt;
            let v = (0..n)
                .map(|i| plane(i).iter().map(|&v| (v - m) * (v - m)).sum::<F>())
                .sum::<F>()
                / cnt;
            mean[ch] = m;
            var[ch] = v;
        }
        (mean, var)
    } else {
        (rm.clone(), rv.clone())
    };
    let eps_f = cf::<F>(eps);
    let coef: Vec<(F, F)> = (0..c)
        .map(|ch| {
            let k = w[ch] / (var[ch] + eps_f).sqrt();
            (k, b[ch] - mean[ch] * k)
        })
        .collect();
    for_rows(&mut y, s, |i, plane| {
        let (k, o) = coef[i % c.max(1)];
        plane.iter_mut().for_each(|v| *v = *v * k + o);
    });
    let mut outs = vec![out(t.shape(), y, t.dtype())?];
    if training {
        let m = cf::<F>(momentum);
        let one_m = F::one() - m;
        let run_mean = rm
            .iter()
            .zip(&mean)
            .map(|(&r, &b)| r * m + b * one_m)
            .collect();
        let run_var = rv
            .iter()
            .zip(&var)
            .map(|(&r, &b)| r * m + b * one_m)
            .collect();
        outs.push(out(&[c], run_mean, rm_t.dtype())?);
        outs.push(out(&[c], run_var, rv_t.dtype())?);
        outs.push(out(&[c], mean, rm_t.dtype())?);
        outs.push(out(&[c], var, rv_t.dtype())?);
    }
    Ok(outs)
}

pub(crate) struct LrnParams {
    pub alpha: f64,
    pub beta: f64,
    pub bias: f64,
    pub size: usize,
}

/// LRN across channels: `x / (bias + alpha/size * sum of squares in the window)^beta`.
pub(crate) fn lrn<F: Real>(t: &Tensor, p: &LrnParams) -> Result<Tensor> {
    let (_, c, s) = ncs(t.shape(), "LRN")?;
    let a = arr::<F>(t)?;
    let src = flat(&a);
    let mut y = src.to_vec();
    let (before, after) = ((p.size - 1) / 2, p.size / 2);
    let (alpha, beta, bias) = (
        cf::<F>(p.alpha / p.size as f64),
        cf::<F>(p.beta),
        cf::<F>(p.bias),
    );
    for_rows(&mut y, c * s, |i, img| {
        let base = i * c * s;
        for ch in 0..c {
            let lo = ch.saturating_sub(before);
            let hi = (ch + after).min(c - 1);
            for k in 0..s {
                let sq: F = (lo..=hi)
                    .map(|cc| {
                        let v = src[base + cc * s + k];
                        v * v
                    })
                    .sum();
                img[ch * s + k] = img[ch * s + k] / (bias + alpha * sq).powf(beta);
            }
        }
    });
    out(t.shape(), y, t.dtype())
}

/// MeanVarianceNormalization: `(x - mean) / (std + 1e-9)` over `axes`.
pub(crate) fn mvn<F: Real>(t: &Tensor, axes: &[i64]) -> Result<Tensor> {
    let mut axes = norm_axes(axes, t.rank())?;
    axes.sort_unstable();
    let a = arr::<F>(t)?;
    let reduce = |v: ArrayD<F>| -> ArrayD<F> {
        let mut m = v;
        for &ax in axes.iter().rev() {
            m = m
                .mean_axis(Axis(ax))
                .unwrap_or_else(|| ArrayD::zeros(IxDyn(&[])));
            m.insert_axis_inplace(Axis(ax));
        }
        m
    };
    if t.is_empty() {
        return Ok(t.clone());
    }
    let x = a.to_owned();
    let mean = reduce(x.clone());
    let mean_sq = reduce(x.mapv(|v| v * v));
    let std = (&mean_sq - &mean.mapv(|m| m * m)).mapv(|v| v.max(F::zero()).sqrt() + cf(1e-9));
    let y = (&x - &mean) / &std;
    Tensor::from(y).cast(t.dtype())
}

/// LpNormalization along `axis` (p is 1 or 2); zero-norm lanes give zeros.
pub(crate) fn lp_norm<F: Real>(t: &Tensor, axis: i64, p: i64) -> Result<Tensor> {
    let axis = norm_axis(axis, t.rank())?;
    let mut a = arr::<F>(t)?.to_owned();
    for mut lane in a.lanes_mut(Axis(axis)) {
        let norm = if p == 1 {
            lane.iter().map(|v| v.abs()).sum::<F>()
        } else {
            lane.iter().map(|&v| v * v).sum::<F>().sqrt()
        };
        if norm == F::zero() {
            lane.fill(F::zero());
        } else {
            lane.mapv_inplace(|v| v / norm);
        }
    }
    Tensor::from(a).cast(t.dtype())
}
