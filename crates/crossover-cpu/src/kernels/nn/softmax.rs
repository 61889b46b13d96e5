//! Softmax, LogSoftmax and Hardmax along one axis (or a coerced 2-D row before opset 13).

use crossover_core::op::nn::SoftmaxAxis;
use crossover_core::{Result, Tensor};
use rayon::prelude::*;

use super::{arr, flat, out, parallel, Real};
use crate::kernels::elementwise::num::exp_f32;
use crate::kernels::util::norm_axis;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    Softmax,
    LogSoftmax,
    Hardmax,
}

/// `(outer, n, inner)`: the input seen as `outer` blocks of `n` lanes positions, each lane
/// strided by `inner`.
fn split(shape: &[usize], axis: SoftmaxAxis) -> Result<(usize, usize, usize)> {
    let rank = shape.len();
    Ok(match axis {
        SoftmaxAxis::Single(a) => {
            let a = norm_axis(a, rank)?;
            if rank == 0 {
                (1, 1, 1)
            } else {
                (
                    shape[..a].iter().product(),
                    shape[a],
                    shape[a + 1..].iter().product(),
                )
            }
        }
        SoftmaxAxis::Coerce2d(a) => {
            // Old opsets accept axis == rank (an empty second dimension product of 1).
            let r = rank as i64;
            let a = if a < 0 { a + r } else { a };
            if a < 0 || a > r {
                return Err(crossover_core::invalid!(
                    "axis {a} is out of range for rank {rank}"
                ));
            }
            let a = a as usize;
            (shape[..a].iter().product(), shape[a..].iter().product(), 1)
        }
    })
}

pub(crate) fn eval<F: Real>(t: &Tensor, axis: SoftmaxAxis, kind: Kind) -> Result<Tensor> {
    let a = arr::<F>(t)?;
    let (_, n, inner) = split(t.shape(), axis)?;
    let mut data = flat(&a).into_owned();
    let block = n * inner;
    if block > 0 {
        let run = |chunk: &mut [F]| {
            for j in 0..inner {
                lane(chunk, j, inner, n, kind);
            }
        };
        if parallel(data.len()) {
            data.par_chunks_mut(block).for_each(run);
        } else {
            data.chunks_mut(block).for_each(run);
        }
    }
    out(t.shape(), data, t.dtype())
}

/// One lane: elements `start, start + stride, …` (`n` of them) of `buf`.
#[inline]
fn lane<F: Real>(buf: &mut [F], start: usize, stride: usize, n: usize, kind: Kind) {
    let idx = |k: usize| start + k * stride;
    match kind {
        Kind::Hardmax => {
            let mut best = 0;
            for k in 1..n {
                if buf[idx(k)] > buf[idx(best)] {
                    best = k;
                }
            }
            for k in 0..n {
                buf[idx(k)] = if k == best { F::one() } else { F::zero() };
            }
        }
        Kind::Softmax | Kind::LogSoftmax => {
            let mut m = F::neg_infinity();
            for k in 0..n {
                m = m.max(buf[idx(k)]);
            }
            let mut s = F::zero();
            for k in 0..n {
                let e = (buf[idx(k)] - m).exp();
                if kind == Kind::Softmax {
                    buf[idx(k)] = e;
                }
                s += e;
            }
            if kind == Kind::Softmax {
                let r = F::one() / s;
                for k in 0..n {
                    buf[idx(k)] = buf[idx(k)] * r;
                }
            } else {
                let ls = m + s.ln();
                for k in 0..n {
                    buf[idx(k)] = buf[idx(k)] - ls;
                }
            }
        }
    }
}

/// `lanes` folded by `f` in halves, 16 → 8 → 4 → 2 → 1: four dependent steps where a
/// running value takes sixteen (on rows of 128, as long as the row's exponentials).
#[inline(always)]
fn halve(mut lanes: [f32; 16], f: impl Fn(f32, f32) -> f32) -> f32 {
    let mut width = lanes.len();
    while width > 1 {
        width /= 2;
        for i in 0..width {
            lanes[i] = f(lanes[i], lanes[i + width]);
        }
    }
    lanes[0]
}

crate::kernels::simd::widest! {
    /// Softmax of one contiguous f32 row in place, in loops the compiler vectorises (at
    /// the CPU's widest ISA): lane-wise partial maxima and sums instead of one running
    /// value each, and a branch-free `exp`.
    pub(crate) fn softmax_row_f32(row: &mut [f32]) {
        const L: usize = 16;
        let above = |a: f32, b: f32| if b > a { b } else { a };
        let mut lanes = [f32::NEG_INFINITY; L];
        let mut chunks = row.chunks_exact(L);
        for c in &mut chunks {
            for (m, &v) in lanes.iter_mut().zip(c) {
                *m = above(*m, v);
            }
        }
        let max = chunks
            .remainder()
            .iter()
            .fold(halve(lanes, above), |a, &b| above(a, b));
        let mut sums = [0.0f32; L];
        let mut chunks = row.chunks_exact_mut(L);
        for c in &mut chunks {
            for (s, v) in sums.iter_mut().zip(c) {
                *v = exp_f32(*v - max);
                *s += *v;
            }
        }
        let mut sum = halve(sums, |a, b| a + b);
        for v in chunks.into_remainder() {
            *v = exp_f32(*v - max);
            sum += *v;
        }
        let inv = 1.0 / sum;
        row.iter_mut().for_each(|v| *v *= inv);
    }
}

#[cfg(test)]
mod tests {
    use super::softmax_row_f32;

    #[test]
    fn vectorised_row_softmax_matches_f64() {
        for n in [1usize, 5, 16, 37, 128] {
            let x: Vec<f32> = (0..n)
                .map(|i| ((i * 37 % 23) as f32 - 11.0) * 0.7)
                .collect();
            let max = x.iter().fold(f64::NEG_INFINITY, |a, &b| a.max(b as f64));
            let sum: f64 = x.iter().map(|&v| (v as f64 - max).exp()).sum();
            let mut y = x.clone();
            softmax_row_f32(&mut y);
            for (&v, &got) in x.iter().zip(&y) {
                let want = (v as f64 - max).exp() / sum;
                assert!((got as f64 - want).abs() <= 1e-6, "n {n}: {got} vs {want}");
            }
        }
    }
}
