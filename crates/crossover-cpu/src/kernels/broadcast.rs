//! Numpy broadcasting.

use crossover_core::{Error, Result};
use ndarray::{ArrayD, ArrayViewD, IxDyn, Zip};
use rayon::prelude::*;

/// Elements above which an elementwise map is split across threads.
pub const PARALLEL_MIN: usize = 1 << 15;

/// The broadcast shape of two shapes, or an error naming both.
pub fn broadcast_shapes(a: &[usize], b: &[usize]) -> Result<Vec<usize>> {
    let rank = a.len().max(b.len());
    let mut out = vec![0; rank];
    for i in 0..rank {
        let da = if i + a.len() >= rank {
            a[i + a.len() - rank]
        } else {
            1
        };
        let db = if i + b.len() >= rank {
            b[i + b.len() - rank]
        } else {
            1
        };
        out[i] = match (da, db) {
            (x, y) if x == y => x,
            (1, y) => y,
            (x, 1) => x,
            _ => {
                return Err(Error::ShapeMismatch(format!(
                    "shapes {a:?} and {b:?} do not broadcast"
                )))
            }
        };
    }
    Ok(out)
}

/// The broadcast shape of many shapes.
pub fn broadcast_all(shapes: &[&[usize]]) -> Result<Vec<usize>> {
    shapes
        .iter()
        .try_fold(Vec::new(), |acc, s| broadcast_shapes(&acc, s))
}

/// A view of `a` broadcast to `shape`.
pub fn view_as<'s, T>(a: &'s ArrayViewD<'_, T>, shape: &[usize]) -> Result<ArrayViewD<'s, T>> {
    a.broadcast(IxDyn(shape)).ok_or_else(|| {
        Error::ShapeMismatch(format!(
            "shape {:?} does not broadcast to {shape:?}",
            a.shape()
        ))
    })
}

/// `f(a, b)` elementwise with broadcasting; parallel for large outputs.
pub fn binary<A, B, O, F>(a: ArrayViewD<A>, b: ArrayViewD<B>, f: F) -> Result<ArrayD<O>>
where
    A: Clone + Sync,
    B: Clone + Sync,
    O: Send,
    F: Fn(&A, &B) -> O + Sync + Send,
{
    // Same shape, both contiguous: a flat zip over the slices.
    if a.shape() == b.shape() {
        if let (Some(x), Some(y)) = (a.as_slice(), b.as_slice()) {
            let v: Vec<O> = if x.len() >= PARALLEL_MIN {
                x.par_iter()
                    .zip(y.par_iter())
                    .map(|(p, q)| f(p, q))
                    .collect()
            } else {
                x.iter().zip(y).map(|(p, q)| f(p, q)).collect()
            };
            return Ok(ArrayD::from_shape_vec(IxDyn(a.shape()), v)
                .expect("length equals the element count"));
        }
    }
    // One side a single element: a flat map over the other side's slice.
    if b.len() == 1 && b.ndim() <= a.ndim() {
        if let (Some(x), Some(q)) = (a.as_slice(), b.iter().next()) {
            return Ok(flat(a.shape(), x, |p| f(p, q)));
        }
    }
    if a.len() == 1 && a.ndim() <= b.ndim() {
        if let (Some(y), Some(p)) = (b.as_slice(), a.iter().next()) {
            return Ok(flat(b.shape(), y, |q| f(p, q)));
        }
    }
    let shape = broadcast_shapes(a.shape(), b.shape())?;
    let av = view_as(&a, &shape)?;
    let bv = view_as(&b, &shape)?;
    let z = Zip::from(&av).and(&bv);
    Ok(if shape.iter().product::<usize>() >= PARALLEL_MIN {
        z.par_map_collect(&f)
    } else {
        z.map_collect(f)
    })
}

/// `f` over a contiguous slice, parallel when long, shaped as `shape`.
fn flat<A: Sync, O: Send>(
    shape: &[usize],
    x: &[A],
    f: impl Fn(&A) -> O + Sync + Send,
) -> ArrayD<O> {
    let v: Vec<O> = if x.len() >= PARALLEL_MIN {
        x.par_iter().map(f).collect()
    } else {
        x.iter().map(f).collect()
    };
    ArrayD::from_shape_vec(IxDyn(shape), v).expect("length equals the element count")
}

/// `f(a)` elementwise; parallel for large inputs.
pub fn unary<A, O, F>(a: ArrayViewD<A>, f: F) -> ArrayD<O>
where
    A: Clone + Sync,
    O: Send,
    F: Fn(&A) -> O + Sync + Send,
{
    if let Some(x) = a.as_slice() {
        return flat(a.shape(), x, f);
    }
    let z = Zip::from(&a);
    if a.len() >= PARALLEL_MIN {
        z.par_map_collect(&f)
    } else {
        z.map_collect(f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn broadcasts_like_numpy() {
        assert_eq!(
            broadcast_shapes(&[2, 1, 3], &[4, 1]).unwrap(),
            vec![2, 4, 3]
        );
        assert_eq!(broadcast_shapes(&[], &[5]).unwrap(), vec![5]);
        assert_eq!(broadcast_shapes(&[0, 1], &[1, 3]).unwrap(), vec![0, 3]);
        assert!(broadcast_shapes(&[2, 3], &[3, 2]).is_err());
    }
}
