//! Pooling: MaxPool (with indices), AveragePool, LpPool, the global pools and MaxUnpool.

use crossover_core::op::conv::PoolAttrs;
use crossover_core::op::ConvOp;
use crossover_core::tensor::checked_numel;
use crossover_core::TensorData;
use crossover_core::{invalid, DType, Error, Result, Tensor};
use half::{bf16, f16};
use ndarray::{ArrayD, ArrayViewD, IxDyn};
use rayon::prelude::*;

use super::geometry::{axis_list, Geometry};
use super::{arr, real_dtype};
use crate::kernels::broadcast::PARALLEL_MIN;
use crate::kernels::reduce::Kind;
use crate::kernels::simd;
use crate::kernels::Inputs;

pub(super) fn eval(op: &ConvOp, x: &Inputs) -> Result<Vec<Tensor>> {
    let t = x.get(0)?;
    match op {
        ConvOp::MaxPool { pool, column_major } => max_pool(t, pool, *column_major),
        ConvOp::AveragePool {
            pool,
            count_include_pad,
        } => Ok(vec![float_pool(t, pool, Reduce::Mean(*count_include_pad))?]),
        ConvOp::LpPool { pool, p } => Ok(vec![float_pool(t, pool, Reduce::Lp(*p as f64))?]),
        ConvOp::GlobalAveragePool => Ok(vec![global_mean(t)?]),
        ConvOp::GlobalLpPool { p } => Ok(vec![global_lp(t, *p as f64)?]),
        ConvOp::GlobalMaxPool => Ok(vec![global_max(t)?]),
        ConvOp::MaxUnpool {
            kernel_shape,
            pads,
            strides,
        } => Ok(vec![max_unpool(x, kernel_shape, pads, strides)?]),
        _ => Err(Error::Unsupported(format!(
            "{} on the CPU",
            <&'static str>::from(op)
        ))),
    }
}

/// Per spatial axis and window position: the image coordinates the window reads, and
/// how many of its taps fall inside the image or its explicit padding.
struct Taps {
    valid: Vec<Vec<Vec<usize>>>,
    padded: Vec<Vec<usize>>,
}

impl Taps {
    fn new(g: &Geometry) -> Self {
        let n = g.image.len();
        let mut valid = Vec::with_capacity(n);
        let mut padded = Vec::with_capacity(n);
        for d in 0..n {
            let (mut v, mut p) = (Vec::new(), Vec::new());
            for o in 0..g.grid[d] {
                let start = (o * g.strides[d]) as isize - g.pad_begin[d];
                let mut taps = Vec::new();
                let mut count = 0;
                for k in 0..g.kernel[d] {
                    let i = start + (k * g.dilations[d]) as isize;
                    if i >= 0 && i < g.image[d] as isize {
                        taps.push(i as usize);
                    }
                    if i >= -g.pad_begin[d] && i < g.image[d] as isize + g.pad_end[d] {
                        count += 1;
                    }
                }
                v.push(taps);
                p.push(count);
            }
            valid.push(v);
            padded.push(p);
        }
        Taps { valid, padded }
    }

    /// Calls `f(out_index, window)` for every window of a plane, where `window` lists the
    /// (row-major) image offsets of its valid taps.
    fn each(&self, g: &Geometry, mut f: impl FnMut(usize, &[usize], &[usize])) {
        let n = g.image.len();
        let total = g.grid_size();
        let mut o = vec![0usize; n];
        let mut window: Vec<usize> = Vec::new();
        let mut coords: Vec<usize> = Vec::new();
        let mut j = vec![0usize; n];
        for flat in 0..total {
            window.clear();
            coords.clear();
            let lists: Vec<&[usize]> = (0..n).map(|d| self.valid[d][o[d]].as_slice()).collect();
            if lists.iter().all(|l| !l.is_empty()) {
                j.iter_mut().for_each(|v| *v = 0);
                loop {
                    let mut off = 0;
                    for d in 0..n {
                        off = off * g.image[d] + lists[d][j[d]];
                    }
                    window.push(off);
                    let mut d = n;
                    loop {
                        if d == 0 {
                            break;
                        }
                        d -= 1;
                        j[d] += 1;
                        if j[d] < lists[d].len() {
                            break;
                        }
                        j[d] = 0;
                        if d == 0 {
                            d = usize::MAX;
                            break;
                        }
                    }
                    if d == usize::MAX {
                        break;
                    }
                }
            }
            coords.extend_from_slice(&o);
            f(flat, &window, &coords);
            for d in (0..n).rev() {
                o[d] += 1;
                if o[d] < g.grid[d] {
                    break;
                }
                o[d] = 0;
            }
        }
    }
}

fn pool_geometry(t: &Tensor, pool: &PoolAttrs) -> Result<Geometry> {
    if t.rank() < 3 {
        return Err(invalid!("pooling needs rank >= 3, got {:?}", t.shape()));
    }
    let n = t.rank() - 2;
    let k = axis_list(pool.window.kernel_shape.as_deref(), n, 1, "kernel_shape", 1)?;
    Geometry::forward(&pool.window, &t.shape()[2..], &k, pool.ceil_mode)
}

#[derive(Clone, Copy)]
enum Reduce {
    /// Mean; the flag counts padding taps in the divisor.
    Mean(bool),
    /// p-norm.
    Lp(f64),
}

/// Runs `f(in_plane, out_plane, plane_index)` over the (N·C) planes, in parallel when large.
fn planes<A: Sync, B: Send>(
    x: &[A],
    y: &mut [B],
    ip: usize,
    op: usize,
    f: impl Fn(&[A], &mut [B], usize) + Sync,
) {
    if ip == 0 || op == 0 {
        return;
    }
    if y.len() * ip / op.max(1) >= PARALLEL_MIN {
        y.par_chunks_mut(op)
            .zip(x.par_chunks(ip))
            .enumerate()
            .for_each(|(i, (yo, xi))| f(xi, yo, i));
    } else {
        y.chunks_mut(op)
            .zip(x.chunks(ip))
            .enumerate()
            .for_each(|(i, (yo, xi))| f(xi, yo, i));
    }
}

/// The valid taps `lo..hi` of a window at position `o` along one axis: those landing
/// inside an image axis of length `len`.
fn tap_range(g: &Geometry, d: usize, o: usize) -> std::ops::Range<usize> {
    let start = (o * g.strides[d]) as isize - g.pad_begin[d];
    let dil = g.dilations[d] as isize;
    let len = g.image[d] as isize;
    let lo = if start >= 0 {
        0
    } else {
        (-start + dil - 1) / dil
    };
    let hi = if start >= len {
        0
    } else {
        ((len - start + dil - 1) / dil).min(g.kernel[d] as isize)
    };
    lo as usize..(hi.max(lo)) as usize
}

/// The maximum of every window of one 2-D plane `x`: calls `emit(out_index, max,
/// in-plane offset of the max)`; padding never wins, and a window with no valid tap
/// emits nothing. Ties keep the first tap in row-major order.
fn max_plane_2d<T: PartialOrd + Copy>(
    x: &[T],
    g: &Geometry,
    mut emit: impl FnMut(usize, T, usize),
) {
    let (iw, (oh, ow)) = (g.image[1], (g.grid[0], g.grid[1]));
    let cols: Vec<_> = (0..ow).map(|c| tap_range(g, 1, c)).collect();
    for r in 0..oh {
        let rows = tap_range(g, 0, r);
        let r0 = (r * g.strides[0]) as isize - g.pad_begin[0];
        for (c, kc) in cols.iter().enumerate() {
            if rows.is_empty() || kc.is_empty() {
                continue;
            }
            let c0 = (c * g.strides[1]) as isize - g.pad_begin[1];
            let at = |kr: usize, kc: usize| {
                let y = (r0 + (kr * g.dilations[0]) as isize) as usize;
                y * iw + (c0 + (kc * g.dilations[1]) as isize) as usize
            };
            let mut best = at(rows.start, kc.start);
            let mut max = x[best];
            for kr in rows.clone() {
                for k in kc.clone() {
                    let i = at(kr, k);
                    // The running max stays in a register: comparing through the index
                    // would put a load on every step's critical path.
                    if x[i] > max {
                        (best, max) = (i, x[i]);
                    }
                }
            }
            emit(r * ow + c, max, best);
        }
    }
}

/// Whether every window of 2-D pooling `g` is a whole 2×2 square at stride 2 from the
/// top-left corner: no padding, and in ceil mode no window hanging past the edge.
pub(super) fn corner_squares(g: &Geometry) -> bool {
    g.grid.len() == 2
        && (0..2).all(|d| {
            (g.kernel[d], g.strides[d], g.dilations[d], g.pad_begin[d]) == (2, 2, 1, 0)
                && 2 * g.grid[d] <= g.image[d]
        })
}

/// The window maxima of 2-D planes (values only), planned once for a geometry: first
/// the maxima down each column over a window's rows, which vectorises, then across each
/// window's columns. A window with no valid tap is left as it was.
pub(super) struct PlaneMax<'a> {
    g: &'a Geometry,
    /// Valid taps of each output row's and column's window.
    rows: Vec<std::ops::Range<usize>>,
    cols: Vec<std::ops::Range<usize>>,
    /// Output columns whose window is the whole pair `2c - pad, 2c - pad + 1` (2-wide
    /// windows of stride 2), taken two lanes at a time.
    pairs: std::ops::Range<usize>,
    /// Every window is a [`corner_squares`] one, which [`max_of_squares`] takes in one
    /// pass (f32 only).
    squares: bool,
}

impl<'a> PlaneMax<'a> {
    pub(super) fn new(g: &'a Geometry) -> Self {
        let rows = (0..g.grid[0]).map(|r| tap_range(g, 0, r)).collect();
        let cols: Vec<_> = (0..g.grid[1]).map(|c| tap_range(g, 1, c)).collect();
        let paired = g.kernel[1] == 2 && g.strides[1] == 2 && g.dilations[1] == 1;
        let full = |c: &usize| cols[*c] == (0..2) && (*c * 2) as isize >= g.pad_begin[1];
        let pairs = match (0..cols.len()).find(full) {
            Some(first) if paired => {
                first..(first..cols.len()).take_while(full).last().unwrap_or(first) + 1
            }
            _ => 0..0,
        };
        PlaneMax {
            g,
            rows,
            cols,
            pairs,
            squares: corner_squares(g),
        }
    }

    /// The maxima of plane `x` into `y`; `down` is scratch a row long.
    pub(super) fn apply<T: PartialOrd + Copy + 'static>(
        &self,
        x: &[T],
        y: &mut [T],
        down: &mut Vec<T>,
    ) {
        let g = self.g;
        let (iw, ow) = (g.image[1], g.grid[1]);
        if self.squares && ow > 0 {
            if let (Some(x), Some(y)) = (simd::as_f32(x), simd::as_f32_mut(y)) {
                return max_of_squares(x, iw, y, ow);
            }
        }
        let Some(first) = x.get(..iw).filter(|_| iw > 0) else {
            return;
        };
        down.clear();
        down.extend_from_slice(first);
        let image_row = |kr: usize, r: usize| {
            let y = (r * g.strides[0]) as isize - g.pad_begin[0] + (kr * g.dilations[0]) as isize;
            &x[y as usize * iw..(y as usize + 1) * iw]
        };
        let pb = g.pad_begin[1];
        for ((r, rows), out) in self.rows.iter().enumerate().zip(y.chunks_mut(ow.max(1))) {
            if rows.is_empty() {
                continue;
            }
            down.copy_from_slice(image_row(rows.start, r));
            for kr in rows.start + 1..rows.end {
                for (m, &v) in down.iter_mut().zip(image_row(kr, r)) {
                    // A select, not a conditional store, so that the loop vectorises.
                    *m = if v > *m { v } else { *m };
                }
            }
            let pairs = &self.pairs;
            if !pairs.is_empty() {
                let from = (2 * pairs.start) as isize - pb;
                let src = &down[from as usize..][..2 * pairs.len()];
                for (o, p) in out[pairs.clone()].iter_mut().zip(src.chunks_exact(2)) {
                    *o = if p[1] > p[0] { p[1] } else { p[0] };
                }
            }
            for c in (0..pairs.start).chain(pairs.end..ow) {
                let kc = &self.cols[c];
                if kc.is_empty() {
                    continue;
                }
                let c0 = (c * g.strides[1]) as isize - pb;
                let at = |k: usize| (c0 + (k * g.dilations[1]) as isize) as usize;
                let mut max = down[at(kc.start)];
                for k in kc.start + 1..kc.end {
                    if down[at(k)] > max {
                        max = down[at(k)];
                    }
                }
                out[c] = max;
            }
        }
    }
}

simd::widest! {
    /// The 2×2 maxima of plane `x` (rows `iw` long) at stride 2 into `y`'s rows of `ow`,
    /// compared in [`PlaneMax::apply`]'s order (down the rows, then across the pair):
    /// its row-by-row loops spent more on bookkeeping than on the maxima, in SSE2.
    fn max_of_squares(x: &[f32], iw: usize, y: &mut [f32], ow: usize) {
        let max = |a: f32, b: f32| if b > a { b } else { a };
        for (r, out) in y.chunks_exact_mut(ow).enumerate() {
            let top = &x[2 * r * iw..][..2 * ow];
            let bottom = &x[(2 * r + 1) * iw..][..2 * ow];
            for (c, o) in out.iter_mut().enumerate() {
                *o = max(max(top[2 * c], bottom[2 * c]), max(top[2 * c + 1], bottom[2 * c + 1]));
            }
        }
    }
}

fn out_shape(t: &Tensor, g: &Geometry) -> Result<Vec<usize>> {
    let mut s = t.shape()[..2].to_vec();
    s.extend(&g.grid);
    checked_numel(&s, t.dtype())?;
    Ok(s)
}

fn float_pool(t: &Tensor, pool: &PoolAttrs, r: Reduce) -> Result<Tensor> {
    let g = pool_geometry(t, pool)?;
    let shape = out_shape(t, &g)?;
    let taps = Taps::new(&g);
    let dt = real_dtype("pooling", &[t.dtype()])?;
    fn run<T: num_traits::Float + Send + Sync + crossover_core::tensor::Element>(
        x: ArrayViewD<T>,
        shape: &[usize],
        g: &Geometry,
        taps: &Taps,
        r: Reduce,
    ) -> ArrayD<T> {
        let x = x.as_standard_layout();
        let mut y = ArrayD::<T>::zeros(IxDyn(shape));
        let (ip, op) = (g.image_size(), g.grid_size());
        planes(
            x.as_slice().expect("standard layout"),
            y.as_slice_mut().expect("fresh"),
            ip,
            op,
            |xi, yo, _| {
                taps.each(g, |i, w, o| {
                    yo[i] = match r {
                        Reduce::Mean(include_pad) => {
                            let s = w.iter().fold(T::zero(), |s, &k| s + xi[k]);
                            let count = if include_pad {
                                o.iter()
                                    .enumerate()
                                    .map(|(d, &od)| taps.padded[d][od])
                                    .product()
                            } else {
                                w.len()
                            };
                            s / T::from(count).expect("small count")
                        }
                        Reduce::Lp(p) => {
                            let p = T::from(p).expect("p fits");
                            let s = w.iter().fold(T::zero(), |s, &k| s + xi[k].abs().powf(p));
                            s.powf(T::one() / p)
                        }
                    };
                });
            },
        );
        y
    }
    let y = if dt == DType::F64 {
        Tensor::from(run::<f64>(t.view()?, &shape, &g, &taps, r))
    } else {
        let a = arr::<f32>(t, DType::F32)?;
        Tensor::from(run::<f32>(a.view(), &shape, &g, &taps, r))
    };
    y.cast(t.dtype())
}

fn max_pool(t: &Tensor, pool: &PoolAttrs, column_major: bool) -> Result<Vec<Tensor>> {
    let g = pool_geometry(t, pool)?;
    let shape = out_shape(t, &g)?;
    let taps = Taps::new(&g);
    let n = g.image.len();
    // Index strides within a plane, row- or column-major.
    let mut st = vec![1usize; n];
    if column_major {
        for d in 1..n {
            st[d] = st[d - 1] * g.image[d - 1];
        }
    } else {
        for d in (0..n.saturating_sub(1)).rev() {
            st[d] = st[d + 1] * g.image[d + 1];
        }
    }
    fn run<T: PartialOrd + Copy + Send + Sync + Default + crossover_core::tensor::Element>(
        x: ArrayViewD<T>,
        shape: &[usize],
        g: &Geometry,
        taps: &Taps,
        st: &[usize],
    ) -> (ArrayD<T>, ArrayD<i64>) {
        let x = x.as_standard_layout();
        let mut y = ArrayD::<T>::default(IxDyn(shape));
        let mut idx = ArrayD::<i64>::from_elem(IxDyn(shape), -1);
        let (ip, op) = (g.image_size(), g.grid_size());
        let xs = x.as_slice().expect("standard layout");
        let mut pairs: Vec<(T, i64)> = vec![(T::default(), -1); y.len()];
        // Re-expresses a row-major offset in the requested storage order.
        let stored = |b: usize| {
            let mut rem = b;
            let mut at = 0;
            for d in (0..g.image.len()).rev() {
                at += (rem % g.image[d]) * st[d];
                rem /= g.image[d];
            }
            at
        };
        if g.image.len() == 2 {
            // Images (the common case): one pass over each window's valid taps in place.
            planes(xs, &mut pairs, ip, op, |xi, yo, plane| {
                max_plane_2d(xi, g, |i, v, k| {
                    yo[i] = (v, (plane * ip + stored(k)) as i64)
                });
            });
        } else {
            planes(xs, &mut pairs, ip, op, |xi, yo, plane| {
                taps.each(g, |i, w, _| {
                    let mut best: Option<usize> = None;
                    for &k in w {
                        if best.is_none_or(|b| xi[k] > xi[b]) {
                            best = Some(k);
                        }
                    }
                    if let Some(b) = best {
                        yo[i] = (xi[b], (plane * ip + stored(b)) as i64);
                    }
                });
            });
        }
        for ((yv, iv), (v, j)) in y.iter_mut().zip(idx.iter_mut()).zip(pairs) {
            *yv = v;
            *iv = j;
        }
        (y, idx)
    }
    macro_rules! go {
        ($ty:ty) => {{
            let (y, i) = run::<$ty>(t.view()?, &shape, &g, &taps, &st);
            vec![Tensor::from(y), Tensor::from(i)]
        }};
    }
    Ok(match t.dtype() {
        DType::F32 => go!(f32),
        DType::F64 => go!(f64),
        DType::F16 => go!(f16),
        DType::BF16 => go!(bf16),
        DType::I8 => go!(i8),
        DType::U8 => go!(u8),
        DType::I16 => go!(i16),
        DType::U16 => go!(u16),
        DType::I32 => go!(i32),
        DType::I64 => go!(i64),
        other => return Err(Error::Unsupported(format!("MaxPool on {other} tensors"))),
    })
}

/// Global pools: one value per plane, spatial axes kept as ones.
fn global_shape(t: &Tensor) -> Result<(Vec<usize>, usize)> {
    if t.rank() < 3 {
        return Err(invalid!(
            "global pooling needs rank >= 3, got {:?}",
            t.shape()
        ));
    }
    let mut s = t.shape()[..2].to_vec();
    s.extend(std::iter::repeat_n(1, t.rank() - 2));
    Ok((s, t.shape()[2..].iter().product()))
}

/// The mean of each plane: ReduceMean over the spatial axes, whose partial sums
/// vectorize (a serial fold over the CNN's 32 planes of 64 took a microsecond).
fn global_mean(t: &Tensor) -> Result<Tensor> {
    global_shape(t)?;
    real_dtype("GlobalAveragePool", &[t.dtype()])?;
    let axes: Vec<i64> = (2..t.rank() as i64).collect();
    crate::kernels::reduce::over_axes(t, Kind::Mean, &axes, true, false, "GlobalAveragePool")
}

fn global_lp(t: &Tensor, p: f64) -> Result<Tensor> {
    let (shape, ip) = global_shape(t)?;
    let dt = real_dtype("global pooling", &[t.dtype()])?;
    fn run<T: num_traits::Float + Send + Sync + crossover_core::tensor::Element>(
        x: ArrayViewD<T>,
        shape: &[usize],
        ip: usize,
        p: T,
    ) -> ArrayD<T> {
        let x = x.as_standard_layout();
        let mut y = ArrayD::<T>::zeros(IxDyn(shape));
        planes(
            x.as_slice().expect("standard layout"),
            y.as_slice_mut().expect("fresh"),
            ip,
            1,
            |xi, yo, _| {
                yo[0] = xi
                    .iter()
                    .fold(T::zero(), |s, &v| s + v.abs().powf(p))
                    .powf(T::one() / p);
            },
        );
        y
    }
    let y = if dt == DType::F64 {
        Tensor::from(run::<f64>(t.view()?, &shape, ip, p))
    } else {
        let a = arr::<f32>(t, DType::F32)?;
        Tensor::from(run::<f32>(a.view(), &shape, ip, p as f32))
    };
    y.cast(t.dtype())
}

fn global_max(t: &Tensor) -> Result<Tensor> {
    let (shape, ip) = global_shape(t)?;
    fn run<T: PartialOrd + Copy + Send + Sync + Default + crossover_core::tensor::Element>(
        x: ArrayViewD<T>,
        shape: &[usize],
        ip: usize,
    ) -> ArrayD<T> {
        let x = x.as_standard_layout();
        let mut y = ArrayD::<T>::default(IxDyn(shape));
        planes(
            x.as_slice().expect("standard layout"),
            y.as_slice_mut().expect("fresh"),
            ip,
            1,
            |xi, yo, _| {
                yo[0] = xi
                    .iter()
                    .skip(1)
                    .fold(xi[0], |m, &v| if v > m { v } else { m });
            },
        );
        y
    }
    Ok(match t.dtype() {
        DType::F32 => run::<f32>(t.view()?, &shape, ip).into(),
        DType::F64 => run::<f64>(t.view()?, &shape, ip).into(),
        DType::F16 => run::<f16>(t.view()?, &shape, ip).into(),
        DType::BF16 => run::<bf16>(t.view()?, &shape, ip).into(),
        other => {
            return Err(Error::Unsupported(format!(
                "GlobalMaxPool on {other} tensors"
            )))
        }
    })
}

fn max_unpool(
    x: &Inputs,
    kernel: &[i64],
    pads: &Option<Vec<i64>>,
    strides: &Option<Vec<i64>>,
) -> Result<Tensor> {
    let (t, ind) = (x.get(0)?, x.get(1)?);
    if t.rank() < 3 || ind.shape() != t.shape() {
        return Err(invalid!(
            "MaxUnpool needs X of rank >= 3 and indices of its shape, got {:?} and {:?}",
            t.shape(),
            ind.shape()
        ));
    }
    let n = t.rank() - 2;
    let k = axis_list(Some(kernel), n, 1, "kernel_shape", 1)?;
    let s = axis_list(strides.as_deref(), n, 1, "strides", 1)?;
    let p = axis_list(pads.as_deref(), 2 * n, 0, "pads", 0)?;
    let mut shape = t.shape()[..2].to_vec();
    for d in 0..n {
        let v = ((t.shape()[d + 2] as isize - 1) * s[d] as isize + k[d] as isize)
            - (p[d] + p[n + d]) as isize;
        if v < 0 {
            return Err(invalid!("MaxUnpool output axis {d} would be negative"));
        }
        shape.push(v as usize);
    }
    // Indices address the inferred shape; an explicit output_shape pads it with zeros.
    let target = match x.opt(2) {
        Some(os) => {
            let os = os.to_i64_vec()?;
            if os.len() != shape.len() {
                return Err(invalid!("MaxUnpool output_shape {os:?} has the wrong rank"));
            }
            axis_list(Some(&os), os.len(), 0, "output_shape", 0)?
        }
        None => shape.clone(),
    };
    checked_numel(&target, t.dtype())?;
    let total = checked_numel(&shape, t.dtype())?;
    let idx = ind.to_i64_vec()?;
    fn run<T: crossover_core::tensor::Element + Copy + num_traits::Zero>(
        x: ArrayViewD<T>,
        idx: &[i64],
        shape: &[usize],
        target: &[usize],
        total: usize,
    ) -> Result<ArrayD<T>> {
        let mut y = ArrayD::<T>::zeros(IxDyn(shape));
        let dst = y.as_slice_mut().expect("fresh");
        for (v, &i) in x.iter().zip(idx) {
            let at = usize::try_from(i)
                .ok()
                .filter(|&i| i < total)
                .ok_or_else(|| invalid!("MaxUnpool index {i} is out of range for {shape:?}"))?;
            dst[at] = *v;
        }
        if shape == target {
            return Ok(y);
        }
        let mut out = ArrayD::<T>::zeros(IxDyn(target));
        let common = |a: &mut ndarray::ArrayViewMut<T, IxDyn>| {
            a.slice_each_axis_inplace(|ax| {
                ndarray::Slice::from(0..shape[ax.axis.index()].min(target[ax.axis.index()]))
            })
        };
        let mut dst = out.view_mut();
        common(&mut dst);
        let mut src = y.view_mut();
        common(&mut src);
        dst.assign(&src);
        Ok(out)
    }
    let out = match &**t {
        TensorData::F32(a) => run(a.view(), &idx, &shape, &target, total)?.into(),
        TensorData::F64(a) => run(a.view(), &idx, &shape, &target, total)?.into(),
        TensorData::F16(a) => run(a.view(), &idx, &shape, &target, total)?.into(),
        TensorData::BF16(a) => run(a.view(), &idx, &shape, &target, total)?.into(),
        other => {
            return Err(Error::Unsupported(format!(
                "MaxUnpool on {} tensors",
                other.dtype()
            )))
        }
    };
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crossover_core::op::conv::{AutoPad, Window};

    fn pool(kernel: Vec<i64>, pads: Option<Vec<i64>>) -> PoolAttrs {
        PoolAttrs {
            window: Window {
                auto_pad: AutoPad::NotSet,
                kernel_shape: Some(kernel),
                pads,
                ..Default::default()
            },
            ceil_mode: false,
        }
    }

    #[test]
    fn max_pool_indices_and_average_padding() {
        let t = Tensor::from_vec(&[1, 1, 2, 2], vec![1.0f32, 4.0, 3.0, 2.0]).unwrap();
        let out = max_pool(&t, &pool(vec![2, 2], None), true).unwrap();
        assert_eq!(out[0].to_f64_vec().unwrap(), vec![4.0]);
        // Column-major: (h=0, w=1) is 0 + 1*2.
        assert_eq!(out[1].to_i64_vec().unwrap(), vec![2]);
        let p = pool(vec![2, 2], Some(vec![1, 1, 0, 0]));
        let excl = float_pool(&t, &p, Reduce::Mean(false)).unwrap();
        let incl = float_pool(&t, &p, Reduce::Mean(true)).unwrap();
        assert_eq!(excl.to_f64_vec().unwrap()[0], 1.0);
        assert_eq!(incl.to_f64_vec().unwrap()[0], 0.25);
        assert!(max_pool(&Tensor::from_vec(&[4], vec![0.0f32; 4]).unwrap(), &p, false).is_err());
        assert!(float_pool(&t, &pool(vec![3, 3], None), Reduce::Mean(false)).is_err());
    }

    #[test]
    fn squares_at_stride_two_match_the_general_plane_maxima() {
        let (h, w) = (13, 18);
        let x: Vec<f32> = (0..h * w)
            .map(|i| ((i * 7919) % 101) as f32 - 50.0)
            .collect();
        let t = Tensor::from_vec(&[1, 1, h, w], x.clone()).unwrap();
        let mut square = pool(vec![2, 2], None);
        square.window.strides = Some(vec![2, 2]);
        let mut padded = square.clone();
        padded.window.pads = Some(vec![1, 0, 0, 0]);
        for (attrs, squares) in [(square, true), (padded, false)] {
            let g = pool_geometry(&t, &attrs).unwrap();
            let pm = PlaneMax::new(&g);
            assert_eq!(pm.squares, squares, "{:?}", attrs.window.pads);
            let mut fast = vec![0.0f32; g.grid_size()];
            pm.apply(&x, &mut fast, &mut Vec::new());
            // f64 takes the general path.
            let x64: Vec<f64> = x.iter().map(|&v| v as f64).collect();
            let mut general = vec![0.0f64; g.grid_size()];
            pm.apply(&x64, &mut general, &mut Vec::new());
            let fast: Vec<f64> = fast.iter().map(|&v| v as f64).collect();
            assert_eq!(fast, general, "{:?}", attrs.window.pads);
        }
    }

    #[test]
    fn max_unpool_rejects_bad_indices() {
        let x = Tensor::from_vec(&[1, 1, 1, 1], vec![5.0f32]).unwrap();
        let i = Tensor::from_vec(&[1, 1, 1, 1], vec![9i64]).unwrap();
        let args = [Some(&x), Some(&i)];
        assert!(max_unpool(&Inputs(&args), &[2, 2], &None, &None).is_err());
    }
}
