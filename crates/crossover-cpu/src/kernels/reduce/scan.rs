//! CumSum and CumProd.

use crossover_core::{Result, Tensor};
use ndarray::{ArrayD, ArrayViewD, IxDyn};
use rayon::prelude::*;

use super::layout::canon;
use super::num::{Acc, Num};
use crate::kernels::broadcast::PARALLEL_MIN;
use crate::kernels::util::norm_axis;

/// One accumulation step of a scan.
type Step<A> = fn(A, A) -> A;

fn scan<T: Num>(
    a: ArrayViewD<T>,
    axis: usize,
    exclusive: bool,
    reverse: bool,
    prod: bool,
) -> ArrayD<T> {
    let shape = a.shape().to_vec();
    let c = canon(a, &[axis]);
    let (x, r, inner) = (c.slice(), c.reduced, c.inner);
    let mut out = vec![T::default(); x.len()];
    let init = if prod { T::A::ONE } else { T::A::ZERO };
    let op: Step<T::A> = if prod { Acc::mul } else { Acc::add };
    let block = |o: usize, ys: &mut [T]| {
        let mut acc = vec![init; inner];
        for step in 0..r {
            let j = if reverse { r - 1 - step } else { step };
            let src = &x[(o * r + j) * inner..(o * r + j + 1) * inner];
            let dst = &mut ys[j * inner..(j + 1) * inner];
            for ((a, y), &v) in acc.iter_mut().zip(dst).zip(src) {
                if exclusive {
                    *y = T::from_acc(*a);
                    *a = op(*a, v.to_acc());
                } else {
                    *a = op(*a, v.to_acc());
                    *y = T::from_acc(*a);
                }
            }
        }
    };
    let chunk = r * inner;
    if chunk > 0 {
        if x.len() >= PARALLEL_MIN {
            out.par_chunks_mut(chunk)
                .enumerate()
                .for_each(|(o, ys)| block(o, ys));
        } else {
            out.chunks_mut(chunk)
                .enumerate()
                .for_each(|(o, ys)| block(o, ys));
        }
    }
    ArrayD::from_shape_vec(IxDyn(&shape), out).expect("shape matches")
}

/// CumSum (or CumProd when `prod`) along `axis`.
pub fn cumulative(
    t: &Tensor,
    axis: i64,
    exclusive: bool,
    reverse: bool,
    prod: bool,
    name: &str,
) -> Result<Tensor> {
    if t.rank() == 0 {
        return Err(crossover_core::invalid!(
            "{name} needs a tensor of rank 1 or more"
        ));
    }
    let axis = norm_axis(axis, t.rank())?;
    Ok(numeric!(t, name, a => Tensor::from(scan(a.view(), axis, exclusive, reverse, prod))))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exclusive_reverse_scan() {
        let t = Tensor::from_vec(&[4], vec![1i64, 2, 3, 4]).unwrap();
        let s = cumulative(&t, 0, true, true, false, "CumSum").unwrap();
        assert_eq!(s.to_i64_vec().unwrap(), vec![9, 7, 4, 0]);
        let p = cumulative(&t, -1, false, false, true, "CumProd").unwrap();
        assert_eq!(p.to_i64_vec().unwrap(), vec![1, 2, 6, 24]);
        assert!(cumulative(&t, 1, false, false, false, "CumSum").is_err());
    }
}
