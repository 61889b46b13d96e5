//! ArgMax/ArgMin and TopK.

use std::cmp::Ordering;

use crossover_core::TensorData;
use crossover_core::{invalid, Element, Result, Tensor};
use ndarray::{ArrayD, ArrayViewD, IxDyn};
use rayon::prelude::*;

use super::layout::{canon, reduced_shape};
use super::num::{cmp_nan_last, is_nan};
use crate::kernels::broadcast::PARALLEL_MIN;
use crate::kernels::util::norm_axis;

fn arg_of<T: PartialOrd + Copy + Sync + Send + Clone>(
    a: ArrayViewD<T>,
    axis: usize,
    keep: bool,
    last: bool,
    max: bool,
) -> Result<ArrayD<i64>> {
    let shape = reduced_shape(a.shape(), &[axis], keep);
    if a.shape()[axis] == 0 {
        return Err(invalid!("cannot take the arg of an empty axis"));
    }
    let c = canon(a, &[axis]);
    let (x, r, inner) = (c.slice(), c.reduced, c.inner);
    // Is `v` a better pick than `best`? A NaN, once picked, stays.
    let better = |v: &T, best: &T| {
        if is_nan(best) {
            return false;
        }
        match v.partial_cmp(best) {
            Some(Ordering::Equal) => last,
            Some(o) => (o == Ordering::Greater) == max,
            None => true,
        }
    };
    let block = |k: usize, ys: &mut [i64]| {
        let base = k * r * inner;
        let mut best: Vec<T> = x[base..base + inner].to_vec();
        ys.fill(0);
        for j in 1..r {
            let row = &x[base + j * inner..base + (j + 1) * inner];
            for ((b, y), v) in best.iter_mut().zip(ys.iter_mut()).zip(row) {
                if better(v, b) {
                    *b = *v;
                    *y = j as i64;
                }
            }
        }
    };
    let mut out = vec![0i64; c.outer * inner];
    if !out.is_empty() {
        if x.len() >= PARALLEL_MIN {
            out.par_chunks_mut(inner)
                .enumerate()
                .for_each(|(k, ys)| block(k, ys));
        } else {
            out.chunks_mut(inner)
                .enumerate()
                .for_each(|(k, ys)| block(k, ys));
        }
    }
    Ok(ArrayD::from_shape_vec(IxDyn(&shape), out).expect("shape matches"))
}

/// ArgMax (`max`) or ArgMin: int64 indices along `axis`.
pub fn arg(t: &Tensor, axis: i64, keep: bool, last: bool, max: bool, name: &str) -> Result<Tensor> {
    let axis = norm_axis(axis, t.rank())?;
    if t.rank() == 0 {
        return Err(invalid!("{name} needs a tensor of rank 1 or more"));
    }
    Ok(Tensor::from(match &**t {
        TensorData::Bool(a) => arg_of(a.view(), axis, keep, last, max)?,
        t => numeric!(t, name, a => arg_of(a.view(), axis, keep, last, max)?),
    }))
}

fn top_k_of<T: Element + PartialOrd + Copy>(
    a: ArrayViewD<T>,
    k: usize,
    axis: usize,
    largest: bool,
) -> (ArrayD<T>, ArrayD<i64>) {
    let mut shape = a.shape().to_vec();
    shape[axis] = k;
    let c = canon(a, &[axis]);
    let (x, r, inner) = (c.slice(), c.reduced, c.inner);
    let order = |p: &(T, usize), q: &(T, usize)| {
        let o = if largest {
            cmp_nan_last(&q.0, &p.0)
        } else {
            cmp_nan_last(&p.0, &q.0)
        };
        o.then(p.1.cmp(&q.1))
    };
    let block = |o: usize, vals: &mut [T], idx: &mut [i64], buf: &mut Vec<(T, usize)>| {
        let base = o * r * inner;
        for lane in 0..inner {
            buf.clear();
            buf.extend((0..r).map(|j| (x[base + j * inner + lane], j)));
            if k < r {
                buf.select_nth_unstable_by(k, order);
            }
            let top = &mut buf[..k];
            top.sort_unstable_by(order);
            for (j, &(v, i)) in top.iter().enumerate() {
                vals[j * inner + lane] = v;
                idx[j * inner + lane] = i as i64;
            }
        }
    };
    let n = c.outer * k * inner;
    let mut vals = vec![T::default(); n];
    let mut idx = vec![0i64; n];
    if n > 0 {
        let chunk = k * inner;
        if x.len() >= PARALLEL_MIN {
            vals.par_chunks_mut(chunk)
                .zip(idx.par_chunks_mut(chunk))
                .enumerate()
                .for_each_init(Vec::new, |buf, (o, (v, i))| block(o, v, i, buf));
        } else {
            let mut buf = Vec::with_capacity(r);
            for (o, (v, i)) in vals
                .chunks_mut(chunk)
                .zip(idx.chunks_mut(chunk))
                .enumerate()
            {
                block(o, v, i, &mut buf);
            }
        }
    }
    (
        ArrayD::from_shape_vec(IxDyn(&shape), vals).expect("shape matches"),
        ArrayD::from_shape_vec(IxDyn(&shape), idx).expect("shape matches"),
    )
}

/// TopK: the `k` largest (or smallest) values along `axis` and their indices, ties
/// going to the lower index.
pub fn top_k(t: &Tensor, k: i64, axis: i64, largest: bool, name: &str) -> Result<Vec<Tensor>> {
    if t.rank() == 0 {
        return Err(invalid!("{name} needs a tensor of rank 1 or more"));
    }
    let axis = norm_axis(axis, t.rank())?;
    let n = t.shape()[axis];
    if k < 0 || k as u64 > n as u64 {
        return Err(invalid!(
            "{name}: k = {k} is out of range for an axis of {n}"
        ));
    }
    let k = k as usize;
    Ok(numeric!(t, name, a => {
        let (v, i) = top_k_of(a.view(), k, axis, largest);
        vec![Tensor::from(v), Tensor::from(i)]
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arg_picks_first_or_last_tie() {
        let t = Tensor::from_vec(&[2, 3], vec![1f32, 5., 5., 2., 0., 2.]).unwrap();
        let a = arg(&t, 1, false, false, true, "ArgMax").unwrap();
        assert_eq!(a.to_i64_vec().unwrap(), vec![1, 0]);
        let a = arg(&t, -1, true, true, true, "ArgMax").unwrap();
        assert_eq!(a.shape(), &[2, 1]);
        assert_eq!(a.to_i64_vec().unwrap(), vec![2, 2]);
        let a = arg(&t, 0, false, false, false, "ArgMin").unwrap();
        assert_eq!(a.to_i64_vec().unwrap(), vec![0, 1, 1]);
        assert!(arg(&t, 2, false, false, true, "ArgMax").is_err());
    }

    #[test]
    fn top_k_orders_and_checks_k() {
        let t = Tensor::from_vec(&[5], vec![3i32, 1, 3, 7, 0]).unwrap();
        let r = top_k(&t, 3, 0, true, "TopK").unwrap();
        assert_eq!(r[0].to_i64_vec().unwrap(), vec![7, 3, 3]);
        assert_eq!(r[1].to_i64_vec().unwrap(), vec![3, 0, 2]);
        let r = top_k(&t, 2, -1, false, "TopK").unwrap();
        assert_eq!(r[1].to_i64_vec().unwrap(), vec![4, 1]);
        assert!(top_k(&t, 6, 0, true, "TopK").is_err());
        assert!(top_k(&t, -1, 0, true, "TopK").is_err());
    }
}
