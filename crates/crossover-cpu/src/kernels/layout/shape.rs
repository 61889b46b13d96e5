//! Reshaping, slicing, joining and filling kernels.

use crossover_core::op::layout::{slice_range, split_sizes};
use crossover_core::tensor::{checked_numel, dims_to_shape};
use crossover_core::{invalid, map_array, with_array, ArcArrayD, DType, Element, Result, Tensor};
use ndarray::{ArrayD, Axis, IxDyn, Slice};

use super::{norm_axes, norm_axis};
use super::{standard, to_standard};
use crate::kernels::broadcast::broadcast_shapes;

/// Normalizes an axis in `[-rank, rank]` (Flatten, Unsqueeze-style bounds).
fn norm_axis_incl(axis: i64, rank: usize, op: &str) -> Result<usize> {
    let r = rank as i64;
    let a = if axis < 0 { axis + r } else { axis };
    if !(0..=r).contains(&a) {
        return Err(invalid!(
            "{op}: axis {axis} is out of range for rank {rank}"
        ));
    }
    Ok(a as usize)
}

pub fn flatten(t: &Tensor, axis: i64) -> Result<Tensor> {
    let s = t.shape();
    let a = norm_axis_incl(axis, s.len(), "Flatten")?;
    let outer: usize = s[..a].iter().product();
    let inner: usize = s[a..].iter().product();
    t.reshape(&[outer, inner])
}

pub fn transpose(t: &Tensor, perm: Option<&[i64]>) -> Result<Tensor> {
    let r = t.rank();
    let perm: Vec<usize> = match perm {
        None => (0..r).rev().collect(),
        Some(p) => {
            if p.len() != r {
                return Err(invalid!("Transpose: perm {p:?} does not fit rank {r}"));
            }
            norm_axes(p, r)?
        }
    };
    if perm.iter().enumerate().all(|(i, &p)| i == p) {
        return Ok(t.clone());
    }
    Ok(map_array!(t, a => standard(a.clone().permuted_axes(IxDyn(&perm)))))
}

pub fn squeeze(t: &Tensor, axes: Option<&[i64]>) -> Result<Tensor> {
    let s = t.shape();
    let out: Vec<usize> = match axes {
        None => s.iter().copied().filter(|&d| d != 1).collect(),
        Some(axes) => {
            let axes = norm_axes(axes, s.len())?;
            for &a in &axes {
                if s[a] != 1 {
                    return Err(invalid!(
                        "Squeeze: axis {a} of shape {s:?} has size {}, not 1",
                        s[a]
                    ));
                }
            }
            s.iter()
                .enumerate()
                .filter(|(i, _)| !axes.contains(i))
                .map(|(_, &d)| d)
                .collect()
        }
    };
    t.reshape(&out)
}

pub fn unsqueeze(t: &Tensor, axes: &[i64]) -> Result<Tensor> {
    let s = t.shape();
    let rank = s.len() + axes.len();
    let axes = norm_axes(axes, rank)?;
    let mut rest = s.iter();
    let out: Vec<usize> = (0..rank)
        .map(|i| {
            if axes.contains(&i) {
                1
            } else {
                rest.next().copied().unwrap_or(1)
            }
        })
        .collect();
    t.reshape(&out)
}

pub fn concat(ts: &[&Tensor], axis: i64) -> Result<Tensor> {
    let first = *ts.first().ok_or_else(|| invalid!("Concat needs inputs"))?;
    let ax = norm_axis(axis, first.rank())?;
    for t in ts {
        if t.rank() != first.rank()
            || t.shape()
                .iter()
                .zip(first.shape())
                .enumerate()
                .any(|(i, (a, b))| i != ax && a != b)
        {
            return Err(invalid!(
                "Concat: shapes {:?} and {:?} differ off axis {ax}",
                first.shape(),
                t.shape()
            ));
        }
    }
    if ts.len() == 1 {
        return Ok(first.clone());
    }
    fn cat<T: Element>(a: &ArcArrayD<T>, ts: &[&Tensor], ax: usize) -> Result<ArcArrayD<T>> {
        let _ = a;
        let views = ts
            .iter()
            .map(|t| t.view::<T>())
            .collect::<Result<Vec<_>>>()?;
        ndarray::concatenate(Axis(ax), &views)
            .map(|a| a.into_shared())
            .map_err(|e| invalid!("Concat: {e}"))
    }
    Ok(map_array!(first, a => cat(a, ts, ax)?))
}

/// Shares `a`'s buffer for `[start, end)` of `axis`; copies only if the result would not
/// be row-major.
fn slice_axis<T: Element>(a: &ArcArrayD<T>, axis: usize, s: Slice) -> ArcArrayD<T> {
    let mut v = a.clone();
    v.slice_axis_inplace(Axis(axis), s);
    standard(v)
}

pub fn split(
    t: &Tensor,
    axis: i64,
    split: Option<&[i64]>,
    num_outputs: usize,
) -> Result<Vec<Tensor>> {
    let ax = norm_axis(axis, t.rank())?;
    let dim = t.shape()[ax];
    let sizes = split_sizes(dim, split, num_outputs)?;
    let mut start = 0;
    Ok(sizes
        .iter()
        .map(|&n| {
            let s = Slice::from(start as isize..(start + n) as isize);
            start += n;
            map_array!(t, a => slice_axis(a, ax, s))
        })
        .collect())
}

pub fn slice(
    t: &Tensor,
    starts: &[i64],
    ends: &[i64],
    axes: Option<&[i64]>,
    steps: Option<&[i64]>,
) -> Result<Tensor> {
    let r = t.rank();
    if starts.len() != ends.len() {
        return Err(invalid!(
            "Slice: {} starts but {} ends",
            starts.len(),
            ends.len()
        ));
    }
    let axes = match axes {
        Some(a) => norm_axes(a, r)?,
        None => (0..starts.len()).collect(),
    };
    if axes.len() != starts.len() || steps.is_some_and(|s| s.len() != starts.len()) {
        return Err(invalid!(
            "Slice: starts, ends, axes and steps differ in length"
        ));
    }
    let mut out = t.clone();
    for (i, &ax) in axes.iter().enumerate() {
        let dim = t.shape().get(ax).copied().unwrap_or(0) as i64;
        let step = steps.map_or(1, |s| s[i]);
        if step == 0 {
            return Err(invalid!("Slice: step 0 on axis {ax}"));
        }
        let (lo, hi) = slice_range(dim, starts[i], ends[i], step);
        let s = Slice::new(lo as isize, Some(hi as isize), step as isize);
        out = map_array!(&out, a => {
            let mut v = a.clone();
            v.slice_axis_inplace(Axis(ax), s);
            v
        });
    }
    Ok(map_array!(&out, a => standard(a.clone())))
}

pub fn expand(t: &Tensor, dims: &[i64]) -> Result<Tensor> {
    let want = dims_to_shape(dims, "Expand")?;
    let shape = broadcast_shapes(t.shape(), &want)?;
    checked_numel(&shape, t.dtype())?;
    if shape == t.shape() {
        return Ok(t.clone());
    }
    Ok(map_array!(t, a => {
        let v = a.broadcast(IxDyn(&shape)).ok_or_else(|| invalid!("Expand: {:?} does not broadcast to {shape:?}", a.shape()))?;
        to_standard(v).into_shared()
    }))
}

pub fn tile(t: &Tensor, repeats: &[i64]) -> Result<Tensor> {
    let s = t.shape().to_vec();
    if repeats.len() != s.len() {
        return Err(invalid!(
            "Tile: {} repeats for rank {}",
            repeats.len(),
            s.len()
        ));
    }
    let reps = dims_to_shape(repeats, "Tile")?;
    let out = s
        .iter()
        .zip(&reps)
        .map(|(d, r)| d.checked_mul(*r))
        .collect::<Option<Vec<usize>>>()
        .ok_or_else(|| invalid!("Tile: {s:?} repeated {repeats:?} overflows"))?;
    checked_numel(&out, t.dtype())?;
    // View the input as [1, d0, 1, d1, …], broadcast to [r0, d0, r1, d1, …]: its row-major
    // copy is the tiled output.
    let inter: Vec<usize> = s.iter().flat_map(|&d| [1, d]).collect();
    let wide: Vec<usize> = s.iter().zip(&reps).flat_map(|(&d, &r)| [r, d]).collect();
    Ok(map_array!(t, a => {
        let a = standard(a.clone()).into_shape_with_order(IxDyn(&inter)).map_err(|e| invalid!("Tile: {e}"))?;
        let v = a.broadcast(IxDyn(&wide)).ok_or_else(|| invalid!("Tile: cannot broadcast"))?;
        to_standard(v).into_shape_with_order(IxDyn(&out)).map_err(|e| invalid!("Tile: {e}"))?.into_shared()
    }))
}

pub fn range(start: &Tensor, limit: &Tensor, delta: &Tensor) -> Result<Tensor> {
    let dtype = start.dtype();
    if limit.dtype() != dtype || delta.dtype() != dtype {
        return Err(invalid!("Range: inputs must share one type"));
    }
    if dtype.is_int() {
        let one = |t: &Tensor| -> Result<i64> {
            let v = t.to_i64_vec()?;
            match v.as_slice() {
                [x] => Ok(*x),
                _ => Err(invalid!("Range: inputs must be scalars")),
            }
        };
        let (s, l, d) = (one(start)?, one(limit)?, one(delta)?);
        if d == 0 {
            return Err(invalid!("Range: delta is 0"));
        }
        let span = l as i128 - s as i128;
        let n = ((span + d as i128 - d.signum() as i128) / d as i128).max(0) as usize;
        checked_numel(&[n], dtype)?;
        let v: Vec<i64> = (0..n as i64).map(|i| s + i * d).collect();
        return Tensor::from_vec(&[n], v)?.cast(dtype);
    }
    let (s, l, d) = (
        start.scalar_f64()?,
        limit.scalar_f64()?,
        delta.scalar_f64()?,
    );
    if d == 0.0 || !d.is_finite() || !s.is_finite() || !l.is_finite() {
        return Err(invalid!(
            "Range: start {s}, limit {l}, delta {d} give no finite range"
        ));
    }
    let n = ((l - s) / d).ceil().max(0.0) as usize;
    checked_numel(&[n], dtype)?;
    // Accumulate in the output type, as the reference does.
    match dtype {
        DType::F32 => {
            let (s, d) = (s as f32, d as f32);
            Tensor::from_vec(&[n], (0..n).map(|i| s + i as f32 * d).collect())
        }
        _ => Tensor::from_vec(&[n], (0..n).map(|i| s + i as f64 * d).collect())?.cast(dtype),
    }
}

pub fn nonzero(t: &Tensor) -> Tensor {
    fn nz<T: PartialEq + Default>(a: &ArcArrayD<T>) -> Tensor {
        let zero = T::default();
        let r = a.ndim();
        let mut coords: Vec<Vec<i64>> = vec![Vec::new(); r];
        for (idx, v) in a.indexed_iter() {
            if *v != zero {
                for (k, c) in coords.iter_mut().enumerate() {
                    c.push(idx[k] as i64);
                }
            }
        }
        let n = if r == 0 {
            usize::from(a.iter().any(|v| *v != zero))
        } else {
            coords[0].len()
        };
        let flat: Vec<i64> = coords.into_iter().flatten().collect();
        Tensor::from_vec(&[r, n], flat).expect("r rows of n coordinates")
    }
    with_array!(t, a => nz(a))
}

pub fn compress(t: &Tensor, cond: &Tensor, axis: Option<i64>) -> Result<Tensor> {
    let c = cond.to_i64_vec()?;
    let (src, ax) = match axis {
        Some(a) => (t.clone(), norm_axis(a, t.rank())?),
        None => (t.reshape(&[t.len()])?, 0),
    };
    let dim = src.shape()[ax];
    let keep: Vec<usize> = c
        .iter()
        .enumerate()
        .filter(|(_, &v)| v != 0)
        .map(|(i, _)| i)
        .collect();
    if let Some(&i) = keep.iter().find(|&&i| i >= dim) {
        return Err(invalid!(
            "Compress: condition selects index {i} past size {dim}"
        ));
    }
    Ok(map_array!(&src, a => a.select(Axis(ax), &keep).into_shared()))
}

pub fn trilu(t: &Tensor, k: i64, upper: bool) -> Result<Tensor> {
    let s = t.shape();
    if s.len() < 2 {
        return Err(invalid!("Trilu needs rank >= 2, got {s:?}"));
    }
    let (n, m) = (s[s.len() - 2], s[s.len() - 1]);
    Ok(map_array!(t, a => {
        let mut o = a.as_standard_layout().into_owned();
        let flat = o.as_slice_mut().expect("standard layout");
        for (row, line) in flat.chunks_mut(m.max(1)).enumerate() {
            let i = (row % n.max(1)) as i64;
            for (j, v) in line.iter_mut().enumerate() {
                let d = j as i64 - i;
                if (upper && d < k) || (!upper && d > k) {
                    *v = Default::default();
                }
            }
        }
        o.into_shared()
    }))
}

pub fn eye_like(t: &Tensor, dtype: DType, k: i64) -> Result<Tensor> {
    let s = t.shape();
    let [n, m] = *s else {
        return Err(invalid!("EyeLike needs a 2-D input, got {s:?}"));
    };
    checked_numel(s, dtype)?;
    let mut v = vec![0u8; n * m];
    for i in 0..n as i64 {
        let j = i + k;
        if (0..m as i64).contains(&j) {
            v[i as usize * m + j as usize] = 1;
        }
    }
    Tensor::from_vec(s, v)?.cast(dtype)
}

/// Reshape to `split`, permute by `perm`, reshape to `out` (row-major).
fn shuffle(t: &Tensor, split: &[usize], perm: &[usize], out: &[usize]) -> Result<Tensor> {
    let r = t.reshape(split)?;
    Ok(map_array!(&r, a => {
        let p = a.clone().permuted_axes(IxDyn(perm));
        to_standard(p.view()).into_shape_with_order(IxDyn(out)).expect("same element count").into_shared()
    }))
}

pub fn depth_to_space(t: &Tensor, b: usize, crd: bool) -> Result<Tensor> {
    let [n, c, h, w] = *t.shape() else {
        return Err(invalid!(
            "DepthToSpace needs a 4-D input, got {:?}",
            t.shape()
        ));
    };
    let bb = b
        .checked_mul(b)
        .ok_or_else(|| invalid!("DepthToSpace: block {b} is too large"))?;
    if c % bb != 0 {
        return Err(invalid!(
            "DepthToSpace: {c} channels do not divide by {b}x{b}"
        ));
    }
    let c2 = c / bb;
    let out = [n, c2, h * b, w * b];
    if crd {
        shuffle(t, &[n, c2, b, b, h, w], &[0, 1, 4, 2, 5, 3], &out)
    } else {
        shuffle(t, &[n, b, b, c2, h, w], &[0, 3, 4, 1, 5, 2], &out)
    }
}

pub fn space_to_depth(t: &Tensor, b: usize, crd: bool) -> Result<Tensor> {
    let [n, c, h, w] = *t.shape() else {
        return Err(invalid!(
            "SpaceToDepth needs a 4-D input, got {:?}",
            t.shape()
        ));
    };
    if h % b != 0 || w % b != 0 {
        return Err(invalid!(
            "SpaceToDepth: {h}x{w} does not divide by block {b}"
        ));
    }
    let split = [n, c, h / b, b, w / b, b];
    let out = [n, c * b * b, h / b, w / b];
    if crd {
        shuffle(t, &split, &[0, 1, 3, 5, 2, 4], &out)
    } else {
        shuffle(t, &split, &[0, 3, 5, 1, 2, 4], &out)
    }
}

pub fn reverse_sequence(
    t: &Tensor,
    lens: &[i64],
    batch_axis: i64,
    time_axis: i64,
) -> Result<Tensor> {
    let r = t.rank();
    let (ba, ta) = (norm_axis(batch_axis, r)?, norm_axis(time_axis, r)?);
    if r < 2 || ba == ta || ba > 1 || ta > 1 {
        return Err(invalid!(
            "ReverseSequence: batch_axis and time_axis must be 0 and 1"
        ));
    }
    let (nb, nt) = (t.shape()[ba], t.shape()[ta]);
    if lens.len() != nb {
        return Err(invalid!(
            "ReverseSequence: {} lengths for batch {nb}",
            lens.len()
        ));
    }
    if let Some(l) = lens.iter().find(|&&l| l < 0 || l as usize > nt) {
        return Err(invalid!("ReverseSequence: length {l} outside 0..={nt}"));
    }
    Ok(map_array!(t, a => {
        let mut o = a.to_owned();
        for (b, &len) in lens.iter().enumerate() {
            let src = a.index_axis(Axis(ba), b);
            let mut dst = o.index_axis_mut(Axis(ba), b);
            // After removing the batch axis, the time axis is axis 0.
            for i in 0..len as usize {
                dst.index_axis_mut(Axis(0), i).assign(&src.index_axis(Axis(0), len as usize - 1 - i));
            }
        }
        o.into_shared()
    }))
}

pub fn center_crop_pad(t: &Tensor, target: &[i64], axes: Option<&[i64]>) -> Result<Tensor> {
    let r = t.rank();
    let axes = match axes {
        Some(a) => norm_axes(a, r)?,
        None => (0..r).collect(),
    };
    if axes.len() != target.len() {
        return Err(invalid!(
            "CenterCropPad: {} sizes for {} axes",
            target.len(),
            axes.len()
        ));
    }
    let target = dims_to_shape(target, "CenterCropPad")?;
    let mut out_shape = t.shape().to_vec();
    // Per axis: (source offset, destination offset, length copied).
    let mut spans: Vec<(usize, usize, usize)> = t.shape().iter().map(|&d| (0, 0, d)).collect();
    for (&ax, &want) in axes.iter().zip(&target) {
        let dim = t.shape()[ax];
        out_shape[ax] = want;
        spans[ax] = if want <= dim {
            ((dim - want) / 2, 0, want)
        } else {
            (0, (want - dim) / 2, dim)
        };
    }
    checked_numel(&out_shape, t.dtype())?;
    Ok(map_array!(t, a => {
        let mut o = ArrayD::default(IxDyn(&out_shape));
        let mut src = a.view();
        let mut dst = o.view_mut();
        for (ax, &(s, d, n)) in spans.iter().enumerate() {
            src.slice_axis_inplace(Axis(ax), Slice::from(s..s + n));
            dst.slice_axis_inplace(Axis(ax), Slice::from(d..d + n));
        }
        dst.assign(&src);
        o.into_shared()
    }))
}
