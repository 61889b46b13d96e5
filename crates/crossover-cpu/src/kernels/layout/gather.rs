//! Indexing kernels: Gather*, Scatter*, OneHot, TensorScatter.
//!
//! Each op first turns its indices into flat offsets (independent of the element type),
//! then one generic copy moves the elements.

use crossover_core::op::layout::ScatterReduction;
use crossover_core::tensor::checked_numel;
use crossover_core::{invalid, map_array, ArcArrayD, Result, Tensor};
use half::{bf16, f16};
use ndarray::{ArrayD, IxDyn};

use super::norm_axis;

/// `i` as a position in a dimension of size `dim`, negative counting from the end.
fn norm_index(i: i64, dim: usize, op: &str) -> Result<usize> {
    let d = dim as i64;
    let j = if i < 0 { i + d } else { i };
    if j < 0 || j >= d {
        return Err(invalid!(
            "{op}: index {i} is out of range for a dimension of size {dim}"
        ));
    }
    Ok(j as usize)
}

/// Row-major strides of `shape`, in elements.
fn strides(shape: &[usize]) -> Vec<usize> {
    let mut s = vec![1; shape.len()];
    for d in (0..shape.len().saturating_sub(1)).rev() {
        s[d] = s[d + 1] * shape[d + 1];
    }
    s
}

/// Calls `f` with every multi-index of `shape`, in row-major order.
fn for_each_index(shape: &[usize], mut f: impl FnMut(&[usize]) -> Result<()>) -> Result<()> {
    let n: usize = shape.iter().product();
    let mut pos = vec![0; shape.len()];
    for _ in 0..n {
        f(&pos)?;
        for d in (0..shape.len()).rev() {
            pos[d] += 1;
            if pos[d] < shape[d] {
                break;
            }
            pos[d] = 0;
        }
    }
    Ok(())
}

/// Concatenates the `chunk`-element runs of `a` (row-major) starting at `starts`.
fn take_chunks<T: Clone>(
    a: &ArcArrayD<T>,
    starts: &[usize],
    chunk: usize,
    shape: &[usize],
) -> ArcArrayD<T> {
    let a = a.as_standard_layout();
    let data = a.as_slice().expect("standard layout");
    let mut out = Vec::with_capacity(starts.len() * chunk);
    for &s in starts {
        out.extend_from_slice(&data[s..s + chunk]);
    }
    ArrayD::from_shape_vec(IxDyn(shape), out)
        .expect("one chunk per start")
        .into_shared()
}

pub fn gather(data: &Tensor, indices: &Tensor, axis: i64) -> Result<Tensor> {
    let s = data.shape();
    let ax = norm_axis(axis, s.len())?;
    let n = s[ax];
    let idx = indices
        .to_i64_vec()?
        .into_iter()
        .map(|i| norm_index(i, n, "Gather"))
        .collect::<Result<Vec<_>>>()?;
    let outer: usize = s[..ax].iter().product();
    let inner: usize = s[ax + 1..].iter().product();
    let shape: Vec<usize> = s[..ax]
        .iter()
        .chain(indices.shape())
        .chain(&s[ax + 1..])
        .copied()
        .collect();
    checked_numel(&shape, data.dtype())?;
    let mut starts = Vec::with_capacity(outer * idx.len());
    for o in 0..outer {
        starts.extend(idx.iter().map(|&i| (o * n + i) * inner));
    }
    Ok(map_array!(data, a => take_chunks(a, &starts, inner, &shape)))
}

/// Flat offsets into `data` that an elementwise-indexed op (GatherElements,
/// ScatterElements) reads or writes, in the row-major order of `indices`.
fn element_offsets(
    data_shape: &[usize],
    indices: &Tensor,
    ax: usize,
    op: &str,
) -> Result<Vec<usize>> {
    let is = indices.shape();
    if is.len() != data_shape.len()
        || is
            .iter()
            .zip(data_shape)
            .enumerate()
            .any(|(d, (i, s))| d != ax && i > s)
    {
        return Err(invalid!(
            "{op}: indices of shape {is:?} do not fit data of shape {data_shape:?}"
        ));
    }
    let idx = indices.to_i64_vec()?;
    let st = strides(data_shape);
    let mut out = Vec::with_capacity(idx.len());
    let mut k = 0;
    for_each_index(is, |pos| {
        let mut off = 0;
        for (d, &p) in pos.iter().enumerate() {
            off += st[d]
                * if d == ax {
                    norm_index(idx[k], data_shape[ax], op)?
                } else {
                    p
                };
        }
        out.push(off);
        k += 1;
        Ok(())
    })?;
    Ok(out)
}

pub fn gather_elements(data: &Tensor, indices: &Tensor, axis: i64) -> Result<Tensor> {
    let ax = norm_axis(axis, data.rank())?;
    let offs = element_offsets(data.shape(), indices, ax, "GatherElements")?;
    let shape = indices.shape().to_vec();
    Ok(map_array!(data, a => take_chunks(a, &offs, 1, &shape)))
}

/// For GatherND/ScatterND: the first flat offset of every addressed slice, the slice
/// length, and the shape of the index tuples' grid.
fn nd_offsets(
    ds: &[usize],
    indices: &Tensor,
    batch_dims: usize,
    op: &str,
) -> Result<(Vec<usize>, usize, Vec<usize>)> {
    let is = indices.shape();
    let q = is.len();
    let b = batch_dims;
    if q == 0 || b >= q || b > ds.len() || ds[..b] != is[..b] {
        return Err(invalid!(
            "{op}: indices {is:?} and batch_dims {b} do not fit data {ds:?}"
        ));
    }
    let k = is[q - 1];
    if b + k > ds.len() {
        return Err(invalid!(
            "{op}: index tuples of length {k} exceed data rank {} (batch_dims {b})",
            ds.len()
        ));
    }
    let st = strides(ds);
    let chunk: usize = ds[b + k..].iter().product();
    let batch_size: usize = ds[b..].iter().product();
    let per_batch: usize = is[b..q - 1].iter().product();
    let idx = indices.to_i64_vec()?;
    let tuples: usize = is[..q - 1].iter().product();
    let mut out = Vec::with_capacity(tuples);
    for t in 0..tuples {
        let mut off = (t / per_batch.max(1)) * batch_size;
        for (j, &i) in idx[t * k..(t + 1) * k].iter().enumerate() {
            off += norm_index(i, ds[b + j], op)? * st[b + j];
        }
        out.push(off);
    }
    Ok((out, chunk, is[..q - 1].to_vec()))
}

pub fn gather_nd(data: &Tensor, indices: &Tensor, batch_dims: i64) -> Result<Tensor> {
    let b = usize::try_from(batch_dims).map_err(|_| invalid!("GatherND: negative batch_dims"))?;
    let ds = data.shape();
    let (starts, chunk, grid) = nd_offsets(ds, indices, b, "GatherND")?;
    let k = indices.shape().last().copied().unwrap_or(0);
    let shape: Vec<usize> = grid.iter().chain(&ds[b + k..]).copied().collect();
    checked_numel(&shape, data.dtype())?;
    Ok(map_array!(data, a => take_chunks(a, &starts, chunk, &shape)))
}

/// Arithmetic for scatter reductions; integers wrap instead of panicking.
trait Combine: crossover_core::Element + PartialOrd {
    fn add(a: &Self, b: &Self) -> Self;
    fn mul(a: &Self, b: &Self) -> Self;
}

macro_rules! combine_float {
    ($($t:ty),*) => {$(impl Combine for $t {
        fn add(a: &Self, b: &Self) -> Self { *a + *b }
        fn mul(a: &Self, b: &Self) -> Self { *a * *b }
    })*};
}
macro_rules! combine_int {
    ($($t:ty),*) => {$(impl Combine for $t {
        fn add(a: &Self, b: &Self) -> Self { a.wrapping_add(*b) }
        fn mul(a: &Self, b: &Self) -> Self { a.wrapping_mul(*b) }
    })*};
}
combine_float!(f32, f64, f16, bf16);
combine_int!(i8, i16, i32, i64, u8, u16, u32, u64);

fn assign<T: Clone>(d: &mut T, v: &T) {
    d.clone_from(v);
}

/// Writes `updates` (row-major) into a copy of `data` at flat offsets `targets`.
fn scatter_apply<T: Clone>(
    data: &ArcArrayD<T>,
    updates: &ArcArrayD<T>,
    targets: &[usize],
    f: impl Fn(&mut T, &T),
) -> ArcArrayD<T> {
    let mut o = data.as_standard_layout().into_owned();
    let u = updates.as_standard_layout();
    let os = o.as_slice_mut().expect("standard layout");
    for (&t, v) in targets.iter().zip(u.as_slice().expect("standard layout")) {
        f(&mut os[t], v);
    }
    o.into_shared()
}

fn reduce<T: Combine>(
    red: ScatterReduction,
    data: &ArcArrayD<T>,
    updates: &Tensor,
    targets: &[usize],
) -> Result<ArcArrayD<T>> {
    let u = updates.arc::<T>()?;
    Ok(match red {
        ScatterReduction::None => scatter_apply(data, u, targets, |d, v| *d = v.clone()),
        ScatterReduction::Add => scatter_apply(data, u, targets, |d, v| *d = T::add(d, v)),
        ScatterReduction::Mul => scatter_apply(data, u, targets, |d, v| *d = T::mul(d, v)),
        ScatterReduction::Max => scatter_apply(data, u, targets, |d, v| {
            if *v > *d {
                *d = v.clone()
            }
        }),
        ScatterReduction::Min => scatter_apply(data, u, targets, |d, v| {
            if *v < *d {
                *d = v.clone()
            }
        }),
    })
}

fn scatter(
    data: &Tensor,
    updates: &Tensor,
    targets: &[usize],
    red: ScatterReduction,
    op: &str,
) -> Result<Tensor> {
    if updates.dtype() != data.dtype() {
        return Err(invalid!(
            "{op}: updates are {} but data is {}",
            updates.dtype(),
            data.dtype()
        ));
    }
    if updates.len() != targets.len() {
        return Err(invalid!(
            "{op}: {} updates for {} target positions",
            updates.len(),
            targets.len()
        ));
    }
    if red == ScatterReduction::None {
        return Ok(map_array!(data, a => {
            let u = updates.arc()?;
            scatter_apply(a, u, targets, assign)
        }));
    }
    crate::numeric_map!(data, op, a => reduce(red, a, updates, targets)?)
}

pub fn scatter_elements(
    data: &Tensor,
    indices: &Tensor,
    updates: &Tensor,
    axis: i64,
    red: ScatterReduction,
) -> Result<Tensor> {
    let ax = norm_axis(axis, data.rank())?;
    if updates.shape() != indices.shape() {
        return Err(invalid!(
            "ScatterElements: updates {:?} and indices {:?} differ in shape",
            updates.shape(),
            indices.shape()
        ));
    }
    let targets = element_offsets(data.shape(), indices, ax, "ScatterElements")?;
    scatter(data, updates, &targets, red, "ScatterElements")
}

pub fn scatter_nd(
    data: &Tensor,
    indices: &Tensor,
    updates: &Tensor,
    red: ScatterReduction,
) -> Result<Tensor> {
    let ds = data.shape();
    let (starts, chunk, grid) = nd_offsets(ds, indices, 0, "ScatterND")?;
    let k = indices.shape().last().copied().unwrap_or(0);
    let want: Vec<usize> = grid.iter().chain(&ds[k..]).copied().collect();
    if updates.shape() != want.as_slice() {
        return Err(invalid!(
            "ScatterND: updates have shape {:?}, expected {want:?}",
            updates.shape()
        ));
    }
    let targets: Vec<usize> = starts.iter().flat_map(|&s| s..s + chunk).collect();
    scatter(data, updates, &targets, red, "ScatterND")
}

pub fn tensor_scatter(
    cache: &Tensor,
    update: &Tensor,
    write_indices: Option<&Tensor>,
    axis: i64,
    circular: bool,
) -> Result<Tensor> {
    let cs = cache.shape();
    let us = update.shape();
    let ax = norm_axis(axis, cs.len())?;
    if ax == 0
        || us.len() != cs.len()
        || us
            .iter()
            .zip(cs)
            .enumerate()
            .any(|(d, (u, c))| if d == ax { u > c } else { u != c })
    {
        return Err(invalid!(
            "TensorScatter: update {us:?} does not fit cache {cs:?} on axis {ax}"
        ));
    }
    let wi = match write_indices {
        Some(w) => w.to_i64_vec()?,
        None => vec![0; cs[0]],
    };
    if wi.len() != cs[0] {
        return Err(invalid!(
            "TensorScatter: {} write indices for batch {}",
            wi.len(),
            cs[0]
        ));
    }
    let st = strides(cs);
    let max = cs[ax] as i64;
    let mut targets = Vec::with_capacity(update.len());
    for_each_index(us, |pos| {
        let mut t = wi[pos[0]].saturating_add(pos[ax] as i64);
        if circular && max > 0 {
            t = t.rem_euclid(max);
        }
        if t < 0 || t >= max {
            return Err(invalid!(
                "TensorScatter: write position {t} is outside the cache's {max}"
            ));
        }
        let mut off = 0;
        for (d, &p) in pos.iter().enumerate() {
            off += st[d] * if d == ax { t as usize } else { p };
        }
        targets.push(off);
        Ok(())
    })?;
    scatter(
        cache,
        update,
        &targets,
        ScatterReduction::None,
        "TensorScatter",
    )
}

pub fn one_hot(indices: &Tensor, depth: &Tensor, values: &Tensor, axis: i64) -> Result<Tensor> {
    let d = depth.scalar_f64()?;
    if d.is_nan() || d < 1.0 || !d.is_finite() {
        return Err(invalid!("OneHot: depth {d} must be positive"));
    }
    let depth = d as usize;
    if values.len() != 2 {
        return Err(invalid!("OneHot: values must hold [off, on]"));
    }
    let is = indices.shape();
    let r = is.len() as i64 + 1;
    let a = if axis < 0 { axis + r } else { axis };
    if a < 0 || a >= r {
        return Err(invalid!("OneHot: axis {axis} is out of range for rank {r}"));
    }
    let a = a as usize;
    let mut shape = is.to_vec();
    shape.insert(a, depth);
    checked_numel(&shape, values.dtype())?;
    let inner: usize = is[a..].iter().product();
    let idx: Vec<f64> = indices.to_f64_vec()?;
    let mut ons = Vec::new();
    for (f, &v) in idx.iter().enumerate() {
        let c = v.trunc() as i64;
        let c = if c < 0 { c + depth as i64 } else { c };
        if (0..depth as i64).contains(&c) {
            let (o, k) = (f / inner.max(1), f % inner.max(1));
            ons.push(o * depth * inner + c as usize * inner + k);
        }
    }
    Ok(map_array!(values, v => one_hot_fill(v, &shape, &ons)))
}

fn one_hot_fill<T: Clone>(values: &ArcArrayD<T>, shape: &[usize], ons: &[usize]) -> ArcArrayD<T> {
    let flat: Vec<T> = values.iter().cloned().collect();
    let mut out = ArrayD::from_elem(IxDyn(shape), flat[0].clone());
    let os = out.as_slice_mut().expect("standard layout");
    for &p in ons {
        os[p] = flat[1].clone();
    }
    out.into_shared()
}
