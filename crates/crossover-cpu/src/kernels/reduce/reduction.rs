//! Reduce* kernels.

use crossover_core::TensorData;
use crossover_core::{Result, Tensor};
use ndarray::{ArrayD, ArrayViewD, IxDyn};
use rayon::prelude::*;

use super::layout::{canon, reduced_shape};
use super::num::{Acc, Num};
use crate::kernels::broadcast::PARALLEL_MIN;
use crate::kernels::util::norm_axes;

/// Which reduction.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Sum,
    Mean,
    Max,
    Min,
    Prod,
    L1,
    L2,
    LogSum,
    LogSumExp,
    SumSquare,
}

/// Elements one task folds when a single row is split across threads.
const ROW_CHUNK: usize = 1 << 14;
/// Partial states a contiguous row is folded into.
const LANES: usize = 8;
/// Output lanes one task handles when reducing a non-innermost axis.
const LANE_BLOCK: usize = 1 << 12;

/// One reduction as a fold: state, step, merge of partial states, final value.
trait Reducer<A: Acc>: Sync {
    type S: Copy + Send + Sync;
    fn init(&self) -> Self::S;
    fn step(&self, s: Self::S, x: A) -> Self::S;
    fn merge(&self, a: Self::S, b: Self::S) -> Self::S;
    fn finish(&self, s: Self::S, n: usize) -> A;
}

/// Sum of `f(x)`, then `g(sum, n)`.
struct SumOf<F, G>(F, G);
impl<A: Acc, F: Fn(A) -> A + Sync, G: Fn(A, usize) -> A + Sync> Reducer<A> for SumOf<F, G> {
    type S = A;
    #[inline(always)]
    fn init(&self) -> A {
        A::ZERO
    }
    #[inline(always)]
    fn step(&self, s: A, x: A) -> A {
        s.add((self.0)(x))
    }
    #[inline(always)]
    fn merge(&self, a: A, b: A) -> A {
        a.add(b)
    }
    #[inline(always)]
    fn finish(&self, s: A, n: usize) -> A {
        (self.1)(s, n)
    }
}

struct ProdR;
impl<A: Acc> Reducer<A> for ProdR {
    type S = A;
    fn init(&self) -> A {
        A::ONE
    }
    #[inline(always)]
    fn step(&self, s: A, x: A) -> A {
        s.mul(x)
    }
    fn merge(&self, a: A, b: A) -> A {
        a.mul(b)
    }
    fn finish(&self, s: A, _: usize) -> A {
        s
    }
}

/// Max (or min when `.1` is false), propagating NaN; `.0` is the identity.
struct Extreme<A>(A, bool);
impl<A: Acc> Reducer<A> for Extreme<A> {
    type S = A;
    fn init(&self) -> A {
        self.0
    }
    #[inline(always)]
    fn step(&self, s: A, x: A) -> A {
        let better = if self.1 { x > s } else { x < s };
        if better || x.is_nan() {
            x
        } else {
            s
        }
    }
    fn merge(&self, a: A, b: A) -> A {
        if a.is_nan() {
            a
        } else {
            self.step(a, b)
        }
    }
    fn finish(&self, s: A, _: usize) -> A {
        s
    }
}

/// log(sum(exp(x))) computed online as (running max, sum of exp(x - max)).
struct LogSumExp;
impl<A: Acc> Reducer<A> for LogSumExp {
    type S = (A, A);
    fn init(&self) -> (A, A) {
        (A::NEG_INF, A::ZERO)
    }
    #[inline(always)]
    fn step(&self, (m, s): (A, A), x: A) -> (A, A) {
        if x > m {
            (x, s.mul(m.sub(x).exp()).add(A::ONE))
        } else if x == m {
            (m, s.add(A::ONE))
        } else {
            (m, s.add(x.sub(m).exp()))
        }
    }
    fn merge(&self, a: (A, A), b: (A, A)) -> (A, A) {
        let (hi, lo) = if b.0 > a.0 { (b, a) } else { (a, b) };
        if lo.1 == A::ZERO {
            return hi;
        }
        (hi.0, hi.1.add(lo.1.mul(lo.0.sub(hi.0).exp())))
    }
    fn finish(&self, (m, s): (A, A), _: usize) -> A {
        if s == A::ZERO {
            A::NEG_INF
        } else {
            m.add(s.ln())
        }
    }
}

/// Reduces `x`, viewed as `[outer, reduced, inner]`, to `[outer, inner]`.
fn reduce3<T: Num, R: Reducer<T::A>>(
    x: &[T],
    outer: usize,
    r: usize,
    inner: usize,
    red: &R,
) -> Vec<T> {
    let mut out = vec![T::default(); outer * inner];
    if out.is_empty() {
        return out;
    }
    // Independent partial states break the serial dependency so the loop vectorizes.
    let fold = |s: &[T]| {
        let mut acc = [red.init(); LANES];
        let mut chunks = s.chunks_exact(LANES);
        for c in &mut chunks {
            for (a, &v) in acc.iter_mut().zip(c) {
                *a = red.step(*a, v.to_acc());
            }
        }
        let tail = chunks
            .remainder()
            .iter()
            .fold(red.init(), |a, &v| red.step(a, v.to_acc()));
        acc.into_iter().fold(tail, |a, b| red.merge(a, b))
    };
    let big = x.len() >= PARALLEL_MIN;
    if inner == 1 {
        let row = |k: usize| T::from_acc(red.finish(fold(&x[k * r..(k + 1) * r]), r));
        if !big {
            out.iter_mut().enumerate().for_each(|(k, y)| *y = row(k));
        } else if outer >= 2 * rayon::current_num_threads() {
            out.par_iter_mut()
                .enumerate()
                .for_each(|(k, y)| *y = row(k));
        } else {
            for (k, y) in out.iter_mut().enumerate() {
                let s = x[k * r..(k + 1) * r]
                    .par_chunks(ROW_CHUNK)
                    .map(fold)
                    .reduce(|| red.init(), |a, b| red.merge(a, b));
                *y = T::from_acc(red.finish(s, r));
            }
        }
        return out;
    }
    // Accumulate whole rows of `inner` lanes at a time: contiguous, vectorizable.
    let lanes = |k: usize, c0: usize, ys: &mut [T]| {
        let w = ys.len();
        let mut acc = vec![red.init(); w];
        for j in 0..r {
            let base = (k * r + j) * inner + c0;
            for (a, &v) in acc.iter_mut().zip(&x[base..base + w]) {
                *a = red.step(*a, v.to_acc());
            }
        }
        for (y, a) in ys.iter_mut().zip(acc) {
            *y = T::from_acc(red.finish(a, r));
        }
    };
    if big {
        out.par_chunks_mut(inner).enumerate().for_each(|(k, ys)| {
            ys.par_chunks_mut(LANE_BLOCK)
                .enumerate()
                .for_each(|(b, yb)| lanes(k, b * LANE_BLOCK, yb))
        });
    } else {
        for (k, ys) in out.chunks_mut(inner).enumerate() {
            lanes(k, 0, ys);
        }
    }
    out
}

fn run<T: Num>(a: ArrayViewD<T>, kind: Kind, axes: &[usize], keep: bool) -> ArrayD<T> {
    let shape = reduced_shape(a.shape(), axes, keep);
    let c = canon(a, axes);
    let (x, o, r, i) = (c.slice(), c.outer, c.reduced, c.inner);
    let v = match kind {
        Kind::Sum => reduce3(x, o, r, i, &SumOf(|v| v, |s, _| s)),
        Kind::Mean => reduce3(x, o, r, i, &SumOf(|v| v, |s: T::A, n| s.div_n(n))),
        Kind::Max => reduce3(x, o, r, i, &Extreme(T::LOWEST, true)),
        Kind::Min => reduce3(x, o, r, i, &Extreme(T::HIGHEST, false)),
        Kind::Prod => reduce3(x, o, r, i, &ProdR),
        Kind::L1 => reduce3(x, o, r, i, &SumOf(|v: T::A| v.abs(), |s, _| s)),
        Kind::L2 => reduce3(
            x,
            o,
            r,
            i,
            &SumOf(|v: T::A| v.mul(v), |s: T::A, _| s.sqrt()),
        ),
        Kind::LogSum => reduce3(x, o, r, i, &SumOf(|v| v, |s: T::A, _| s.ln())),
        Kind::LogSumExp => reduce3(x, o, r, i, &LogSumExp),
        Kind::SumSquare => reduce3(x, o, r, i, &SumOf(|v: T::A| v.mul(v), |s, _| s)),
    };
    ArrayD::from_shape_vec(IxDyn(&shape), v).expect("reduced shape matches output length")
}

/// ONNX Reduce* over `axes` (empty: all axes, or none with `noop_with_empty_axes`).
pub fn reduce(
    t: &Tensor,
    kind: Kind,
    axes: &[i64],
    keep: bool,
    noop_with_empty_axes: bool,
    name: &str,
) -> Result<Tensor> {
    let axes = if axes.is_empty() {
        if noop_with_empty_axes {
            // Nothing is reduced, but the per-element transform (square, abs, log…) applies.
            if matches!(
                kind,
                Kind::Sum | Kind::Mean | Kind::Max | Kind::Min | Kind::Prod
            ) {
                return Ok(t.clone());
            }
            Vec::new()
        } else {
            (0..t.rank()).collect()
        }
    } else {
        norm_axes(axes, t.rank())?
    };
    if let TensorData::Bool(a) = &**t {
        if !matches!(kind, Kind::Max | Kind::Min) {
            return Err(crossover_core::Error::Unsupported(format!(
                "{name} on bool tensors"
            )));
        }
        let u = a.map(|&b| b as u8);
        let r = run(u.view(), kind, &axes, keep);
        return Ok(Tensor::from(r.mapv(|v| v != 0)));
    }
    Ok(numeric!(t, name, a => Tensor::from(run(a.view(), kind, &axes, keep))))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn f32s(t: &Tensor) -> Vec<f32> {
        t.view::<f32>().unwrap().iter().copied().collect()
    }

    #[test]
    fn reduces_middle_and_split_axes() {
        let t = Tensor::from_vec(&[2, 3, 2], (0..12).map(|v| v as f32).collect()).unwrap();
        let s = reduce(&t, Kind::Sum, &[1], false, false, "ReduceSum").unwrap();
        assert_eq!(s.shape(), &[2, 2]);
        assert_eq!(f32s(&s), vec![6., 9., 24., 27.]);
        let m = reduce(&t, Kind::Max, &[0, 2], true, false, "ReduceMax").unwrap();
        assert_eq!(m.shape(), &[1, 3, 1]);
        assert_eq!(f32s(&m), vec![7., 9., 11.]);
        let l = reduce(&t, Kind::LogSumExp, &[], false, false, "ReduceLogSumExp").unwrap();
        let want = (0..12).map(|v| (v as f32).exp()).sum::<f32>().ln();
        assert!((f32s(&l)[0] - want).abs() < 1e-4);
    }

    #[test]
    fn empty_sets_give_identities() {
        let t = Tensor::from_vec(&[2, 0, 4], Vec::<f32>::new()).unwrap();
        let min = reduce(&t, Kind::Min, &[1], true, false, "ReduceMin").unwrap();
        assert_eq!(min.shape(), &[2, 1, 4]);
        assert!(f32s(&min).iter().all(|v| *v == f32::INFINITY));
        let p = reduce(&t, Kind::Prod, &[1], false, false, "ReduceProd").unwrap();
        assert!(f32s(&p).iter().all(|v| *v == 1.0));
        let i = Tensor::from_vec(&[0], Vec::<i32>::new()).unwrap();
        let m = reduce(&i, Kind::Mean, &[0], false, false, "ReduceMean").unwrap();
        assert_eq!(m.to_i64_vec().unwrap(), vec![0]);
    }

    #[test]
    fn bad_axes_are_errors() {
        let t = Tensor::from_vec(&[2], vec![1f32, 2.]).unwrap();
        assert!(reduce(&t, Kind::Sum, &[3], true, false, "ReduceSum").is_err());
        assert!(reduce(&t, Kind::Sum, &[0, -1], true, false, "ReduceSum").is_err());
        let s = Tensor::from_vec(&[1], vec!["a".to_string()]).unwrap();
        assert!(reduce(&s, Kind::Sum, &[], true, false, "ReduceSum").is_err());
    }
}
