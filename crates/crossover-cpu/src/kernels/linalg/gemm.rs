//! Matrix products: f32/f64 through the `gemm` crate (packed, cache-blocked, SIMD, threaded
//! on the executable's rayon pool), other numeric types through a blocked loop; and numpy's
//! batched `matmul` on top of either.

use crossover_core::{invalid, Result};
use ndarray::{ArrayD, ArrayView2, ArrayViewD, ArrayViewMut2, Axis, Ix2, IxDyn};
use num_traits::{WrappingAdd, WrappingMul, Zero};
use rayon::prelude::*;

use crate::kernels::broadcast::{broadcast_shapes, view_as};

/// A float type the `gemm` crate multiplies.
pub(crate) trait Real:
    num_traits::Float
    + std::ops::AddAssign
    + num_traits::FromPrimitive
    + Send
    + Sync
    + Default
    + std::fmt::Debug
    + 'static
{
}
impl Real for f32 {}
impl Real for f64 {}

fn check_dims(a: (usize, usize), b: (usize, usize), c: (usize, usize)) -> Result<()> {
    if a.1 != b.0 || c != (a.0, b.1) {
        return Err(invalid!(
            "matrix product of {}x{} and {}x{} into {}x{}",
            a.0,
            a.1,
            b.0,
            b.1,
            c.0,
            c.1
        ));
    }
    Ok(())
}

/// `C ← alpha·A·B + beta·C`, reading A and B through their strides (transposed and
/// broadcast views cost nothing). With `beta == 0`, C is not read.
pub(crate) fn gemm<T: Real>(
    alpha: T,
    a: ArrayView2<T>,
    b: ArrayView2<T>,
    beta: T,
    mut c: ArrayViewMut2<T>,
) -> Result<()> {
    check_dims(a.dim(), b.dim(), c.dim())?;
    let (m, k) = a.dim();
    let n = b.ncols();
    if m == 0 || n == 0 {
        return Ok(());
    }
    if k == 0 {
        c.map_inplace(|v| {
            *v = if beta == T::zero() {
                T::zero()
            } else {
                *v * beta
            }
        });
        return Ok(());
    }
    let threads = rayon::current_num_threads();
    if m <= FEW_ROWS && k * n >= BAND_OPERAND && n >= threads * BAND_MIN && threads > 1 {
        return gemm_bands(alpha, a, b, beta, c, threads);
    }
    // The current rayon pool (the executable's, sized by `threads`): products too small
    // to split stay on one thread, and no second pool competes.
    gemm_with(alpha, a, b, beta, c, gemm::Parallelism::Rayon(0));
    Ok(())
}

/// [`gemm`] for a product that is itself one of many parallel tasks (an image of a
/// batch): on the calling thread, since splitting it again only adds hand-offs.
pub(crate) fn gemm_in_task<T: Real>(
    alpha: T,
    a: ArrayView2<T>,
    b: ArrayView2<T>,
    beta: T,
    c: ArrayViewMut2<T>,
) -> Result<()> {
    check_dims(a.dim(), b.dim(), c.dim())?;
    if a.nrows() == 0 || b.ncols() == 0 || a.ncols() == 0 {
        return gemm(alpha, a, b, beta, c);
    }
    gemm_with(alpha, a, b, beta, c, gemm::Parallelism::None);
    Ok(())
}

/// Products with at most this many rows (batch-1-ish requests through a layer) are split
/// by columns into one band per thread instead.
pub(super) const FEW_ROWS: usize = 16;
/// The narrowest band of columns worth a thread of its own.
const BAND_MIN: usize = 128;
/// Elements of B below which it stays in one core's cache anyway, so a split only adds
/// a hand-off (256 KiB of f32).
pub(super) const BAND_OPERAND: usize = 1 << 16;

/// `gemm` for a few rows of A, as one fixed band of B's and C's columns per pool thread.
/// Such a product streams B (the weights) once, so it is bound by memory, not FMAs; with
/// the bands pinned to threads, each core reads only its band, run after run, and finds
/// it in its own cache.
fn gemm_bands<T: Real>(
    alpha: T,
    a: ArrayView2<T>,
    b: ArrayView2<T>,
    beta: T,
    c: ArrayViewMut2<T>,
    bands: usize,
) -> Result<()> {
    let n = c.ncols();
    let width = n.div_ceil(bands).next_multiple_of(16);
    let mut parts = Vec::with_capacity(bands);
    let mut rest = c;
    let mut j0 = 0;
    while j0 < n {
        let w = width.min(n - j0);
        let (band, tail) = rest.split_at(Axis(1), w);
        parts.push((j0, std::sync::Mutex::new(Some(band))));
        rest = tail;
        j0 += w;
    }
    rayon::broadcast(|ctx| {
        let Some((j0, band)) = parts.get(ctx.index()) else {
            return;
        };
        let band = band.lock().map(|mut b| b.take()).ok().flatten();
        if let Some(band) = band {
            let w = band.ncols();
            let b = b.slice(ndarray::s![.., *j0..*j0 + w]);
            gemm_with(alpha, a, b, beta, band, gemm::Parallelism::None);
        }
    });
    Ok(())
}

/// The `gemm` crate on checked, non-empty operands.
fn gemm_with<T: Real>(
    alpha: T,
    a: ArrayView2<T>,
    b: ArrayView2<T>,
    beta: T,
    mut c: ArrayViewMut2<T>,
    parallelism: gemm::Parallelism,
) {
    if one_row(alpha, a, b, beta, c.view_mut()) {
        return;
    }
    let (m, k) = a.dim();
    let n = b.ncols();
    let (sa, sb) = (a.strides(), b.strides());
    let (rsc, csc) = (c.strides()[0], c.strides()[1]);
    // SAFETY: the views guarantee the pointers and strides are valid for their shapes,
    // which match m, k, n; C is a unique mutable view and ndarray never hands out a
    // mutable view whose elements alias. `gemm` computes dst = alpha·dst + beta·lhs·rhs,
    // so our (alpha, beta) swap places, and dst is not read when our beta is zero.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            c.as_mut_ptr(),
            csc,
            rsc,
            beta != T::zero(),
            a.as_ptr(),
            sa[1],
            sa[0],
            b.as_ptr(),
            sb[1],
            sb[0],
            beta,
            alpha,
            false,
            false,
            false,
            parallelism,
        )
    }
}

/// One f32 row times B, in our vector kernels: the gemm crate's path for a single row
/// updates the whole output in memory once per element of the row (batch 1 ran slower
/// than batch 2 through the MLP). With B's columns contiguous (weights, transposed) each
/// output is a dot product; with its rows contiguous (weights held in rows, as fused
/// layers keep them) the outputs stay in registers while every row of B streams past
/// once. Returns whether it applied.
fn one_row<T: Real>(
    alpha: T,
    a: ArrayView2<T>,
    b: ArrayView2<T>,
    beta: T,
    mut c: ArrayViewMut2<T>,
) -> bool {
    use crate::kernels::simd::{self, as_f32};
    let row = a.row(0);
    let (Some(isa), Some(x), 1) = (simd::isa(), row.as_slice().and_then(as_f32), a.nrows()) else {
        return false;
    };
    let (sb, n) = (b.strides(), b.ncols());
    let product: Vec<f32> = if sb[0] == 1 {
        b.columns()
            .into_iter()
            .map(|col| {
                simd::dot(
                    isa,
                    x,
                    as_f32(col.to_slice().expect("unit stride")).expect("f32"),
                )
            })
            .collect()
    } else if sb[1] == 1 && sb[0] >= n as isize {
        let mut out = vec![0.0; n];
        // SAFETY: B is a view of `x.len()` rows `sb[0]` apart, each `n` contiguous floats.
        unsafe { simd::row_times_rows(isa, x, b.as_ptr().cast(), sb[0] as usize, &mut out) };
        out
    } else {
        return false;
    };
    for (out, d) in c.row_mut(0).into_iter().zip(product) {
        let d = T::from_f32(d).expect("T is f32 like A");
        *out = if beta == T::zero() {
            alpha * d
        } else {
            alpha * d + beta * *out
        };
    }
    true
}

/// An element the integer product accumulates in, with two's-complement wrap-around
/// as ONNX runtimes do.
pub(crate) trait IntElem: Copy + Zero + WrappingAdd + WrappingMul + Send + Sync {}
impl<T: Copy + Zero + WrappingAdd + WrappingMul + Send + Sync> IntElem for T {}

/// `C ← A·B` for integers: k and n are blocked so a panel of B stays in cache while the
/// rows of C it feeds accumulate in place (the inner loop runs over contiguous rows).
pub(crate) fn gemm_int<T: IntElem>(
    a: ArrayView2<T>,
    b: ArrayView2<T>,
    mut c: ArrayViewMut2<T>,
) -> Result<()> {
    check_dims(a.dim(), b.dim(), c.dim())?;
    const KB: usize = 128;
    const NB: usize = 512;
    let b = b.as_standard_layout();
    let (m, k) = a.dim();
    let n = b.ncols();
    c.fill(T::zero());
    let mut row = vec![T::zero(); n.min(NB)];
    for j0 in (0..n).step_by(NB) {
        let j1 = (j0 + NB).min(n);
        for k0 in (0..k).step_by(KB) {
            let k1 = (k0 + KB).min(k);
            for i in 0..m {
                let acc = &mut row[..j1 - j0];
                for (dst, src) in acc.iter_mut().zip(c.row(i).slice(ndarray::s![j0..j1])) {
                    *dst = *src;
                }
                for p in k0..k1 {
                    let av = a[[i, p]];
                    let brow = b.row(p);
                    let brow = brow
                        .as_slice()
                        .expect("standard layout rows are contiguous");
                    for (d, &bv) in acc.iter_mut().zip(&brow[j0..j1]) {
                        *d = d.wrapping_add(&av.wrapping_mul(&bv));
                    }
                }
                for (dst, src) in c
                    .row_mut(i)
                    .slice_mut(ndarray::s![j0..j1])
                    .iter_mut()
                    .zip(acc.iter())
                {
                    *dst = *src;
                }
            }
        }
    }
    Ok(())
}

/// Products smaller than this (m·k·n) go one per rayon task across a batch; larger ones
/// are split by the `gemm` crate itself.
const SMALL_PRODUCT: usize = 1 << 21;
/// Batches whose total work is below this run on one thread.
const PARALLEL_WORK: usize = 1 << 16;

/// numpy `matmul`: 1-D operands are promoted (and the added axis dropped), leading axes
/// broadcast. `mm(a, b, c)` writes one `a·b` into `c`.
pub(crate) fn matmul<T, F>(a: ArrayViewD<T>, b: ArrayViewD<T>, mm: F) -> Result<ArrayD<T>>
where
    T: Clone + Zero + Send + Sync,
    F: Fn(ArrayView2<T>, ArrayView2<T>, ArrayViewMut2<T>) -> Result<()> + Sync,
{
    if a.ndim() == 0 || b.ndim() == 0 {
        return Err(invalid!(
            "MatMul needs operands of rank >= 1, got {:?} and {:?}",
            a.shape(),
            b.shape()
        ));
    }
    let (a_vec, b_vec) = (a.ndim() == 1, b.ndim() == 1);
    let a = if a_vec { a.insert_axis(Axis(0)) } else { a };
    let b = if b_vec { b.insert_axis(Axis(1)) } else { b };
    let (ra, rb) = (a.ndim(), b.ndim());
    let (m, k) = (a.shape()[ra - 2], a.shape()[ra - 1]);
    let (k2, n) = (b.shape()[rb - 2], b.shape()[rb - 1]);
    if k != k2 {
        return Err(invalid!(
            "MatMul: shapes {:?} and {:?} do not chain",
            a.shape(),
            b.shape()
        ));
    }
    let batch = broadcast_shapes(&a.shape()[..ra - 2], &b.shape()[..rb - 2])?;
    let nbatch: usize = batch.iter().product();
    let full = |r, c| -> Vec<usize> { batch.iter().copied().chain([r, c]).collect() };
    let out_full = full(m, n);
    crossover_core::tensor::checked_numel(&out_full, crossover_core::DType::F64)?;
    let av = view_as(&a, &full(m, k))?;
    let bv = view_as(&b, &full(k, n))?;
    let mut out = ndarray::Array3::<T>::zeros((nbatch, m, n));
    let work = m * n * k.max(1);
    if nbatch > 1 && work < SMALL_PRODUCT && work * nbatch >= PARALLEL_WORK {
        out.axis_iter_mut(Axis(0))
            .into_par_iter()
            .enumerate()
            .try_for_each(|(i, c)| mm(pick(&av, &batch, i), pick(&bv, &batch, i), c))?;
    } else {
        for (i, c) in out.axis_iter_mut(Axis(0)).enumerate() {
            mm(pick(&av, &batch, i), pick(&bv, &batch, i), c)?;
        }
    }
    let mut shape = batch.clone();
    if !a_vec {
        shape.push(m);
    }
    if !b_vec {
        shape.push(n);
    }
    Ok(out
        .into_shape_with_order(IxDyn(&shape))
        .expect("same element count"))
}

/// Matrix `i` (row-major over `batch`) of a view of shape `batch ++ [r, c]`.
fn pick<'b, T>(v: &'b ArrayViewD<'_, T>, batch: &[usize], mut i: usize) -> ArrayView2<'b, T> {
    let mut v = v.view();
    for ax in (0..batch.len()).rev() {
        let d = batch[ax];
        v.collapse_axis(Axis(ax), i % d);
        i /= d;
    }
    for _ in 0..batch.len() {
        v = v.index_axis_move(Axis(0), 0);
    }
    v.into_dimensionality::<Ix2>().expect("two axes remain")
}

/// `matmul` for f32/f64 through the `gemm` crate.
pub(crate) fn matmul_real<T: Real>(a: ArrayViewD<T>, b: ArrayViewD<T>) -> Result<ArrayD<T>> {
    matmul(a, b, |a, b, c| gemm(T::one(), a, b, T::zero(), c))
}

/// `matmul` for integers, wrapping on overflow.
pub(crate) fn matmul_int<T: IntElem>(a: ArrayViewD<T>, b: ArrayViewD<T>) -> Result<ArrayD<T>> {
    matmul(a, b, gemm_int)
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::{array, Array2};

    #[test]
    fn matmul_broadcasts_and_promotes_vectors() {
        let a =
            ndarray::Array::from_shape_fn((2, 1, 2, 3), |(i, _, j, k)| (i * 6 + j * 3 + k) as f32)
                .into_dyn();
        let b = array![1.0f32, 0.0, 2.0].into_dyn();
        let y = matmul_real(a.view(), b.view()).unwrap();
        assert_eq!(y.shape(), &[2, 1, 2]);
        assert_eq!(
            y.iter().copied().collect::<Vec<_>>(),
            vec![4.0, 13.0, 22.0, 31.0]
        );
        let bad = ndarray::Array::<f32, _>::zeros(IxDyn(&[4, 2]));
        assert!(matmul_real(a.view(), bad.view()).is_err());
    }

    /// Products of a few rows (batch-1-ish requests; split into column bands from 2×784×512
    /// and 3×300×1000, uneven) against a plain f64 sum, with alpha,
    /// beta and a transposed A.
    #[test]
    fn few_row_products_match_a_plain_sum() {
        for &(m, k, n) in &[
            (1, 7, 5),
            (1, 37, 33),
            (1, 784, 512),
            (2, 784, 512),
            (3, 300, 1000),
            (5, 3, 257),
            (16, 33, 600),
            (17, 9, 300),
        ] {
            let a = Array2::from_shape_fn((k, m), |(i, j)| ((i * 7 + j * 3) % 13) as f32 - 6.0);
            let a = a.t();
            let value = |i: usize, j: usize| ((i * 5 + j) % 11) as f32 * 0.25 - 1.0;
            let b = Array2::from_shape_fn((k, n), |(i, j)| value(i, j));
            // The same B with contiguous columns, as a layer's weights (transB) give it.
            let bt = Array2::from_shape_fn((n, k), |(j, i)| value(i, j));
            let c0 = Array2::from_shape_fn((m, n), |(i, j)| (i + j) as f32 * 0.5);
            let cases = [(1.0f32, 0.0f32), (0.5, 1.0), (2.0, -1.5)]
                .into_iter()
                .flat_map(|ab| [(ab, b.view()), (ab, bt.t())]);
            for ((alpha, beta), b) in cases {
                let mut c = c0.clone();
                gemm(alpha, a, b, beta, c.view_mut()).unwrap();
                for i in 0..m {
                    for j in 0..n {
                        let dot: f64 = (0..k).map(|p| a[[i, p]] as f64 * b[[p, j]] as f64).sum();
                        let want = alpha as f64 * dot + beta as f64 * c0[[i, j]] as f64;
                        let got = c[[i, j]] as f64;
                        assert!(
                            (got - want).abs() <= 1e-4 * want.abs().max(1.0),
                            "{m}x{k}x{n} alpha {alpha} beta {beta} at ({i}, {j}): {got} vs {want}"
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn integer_product_matches_float() {
        let a = ndarray::Array::from_shape_fn((3, 700), |(i, j)| ((i * 7 + j) % 11) as i32 - 5);
        let b = ndarray::Array::from_shape_fn((700, 600), |(i, j)| ((i + 3 * j) % 13) as i32 - 6);
        let mut c = Array2::<i32>::zeros((3, 600));
        gemm_int(a.view(), b.view(), c.view_mut()).unwrap();
        let af = a.mapv(|v| v as f64);
        let bf = b.mapv(|v| v as f64);
        let cf = af.dot(&bf);
        assert!(c.iter().zip(cf.iter()).all(|(&x, &y)| x as f64 == y));
    }
}
