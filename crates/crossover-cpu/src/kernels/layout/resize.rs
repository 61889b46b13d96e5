//! Resize and Upsample: nearest, (multi-)linear and cubic interpolation, computed one
//! axis at a time (the interpolation is separable) in f64.

use crossover_core::op::layout::{AspectPolicy, CoordMode, NearestMode, ResizeAttrs, ResizeMode};
use crossover_core::tensor::checked_numel;
use crossover_core::{invalid, map_array, ArcArrayD, DType, Element, Error, Result, Tensor};
use ndarray::Axis;
use rayon::prelude::*;

use super::norm_axes;
use super::standard;
use crate::kernels::broadcast::PARALLEL_MIN;
use crate::kernels::Inputs;

/// The input positions and weights one output position along an axis reads.
struct Taps {
    /// `n` taps per output position, flattened.
    index: Vec<usize>,
    weight: Vec<f64>,
    n: usize,
    /// Output positions outside the crop (tf_crop_and_resize): the extrapolation value.
    outside: Vec<bool>,
}

fn coeffs(a: &ResizeAttrs, ratio: f64, scale: f64) -> Vec<f64> {
    let aa = a.cubic_coeff_a as f64;
    match (a.mode, a.antialias) {
        (ResizeMode::Nearest, _) => {
            if ratio.fract() == 0.0 {
                return vec![0.0, 1.0];
            }
            let up = match a.nearest_mode {
                NearestMode::RoundPreferFloor => ratio > 0.5,
                NearestMode::RoundPreferCeil => ratio >= 0.5,
                NearestMode::Floor => false,
                NearestMode::Ceil => true,
            };
            if up {
                vec![0.0, 1.0]
            } else {
                vec![1.0, 0.0]
            }
        }
        (ResizeMode::Linear, false) => vec![1.0 - ratio, ratio],
        (ResizeMode::Linear, true) => {
            let s = scale.min(1.0);
            let start = (-1.0 / s).floor() as i64 + 1;
            let footprint = 2 - 2 * start;
            let c: Vec<f64> = (start..start + footprint)
                .map(|i| (1.0 - ((i as f64 - ratio) * s).abs()).clamp(0.0, 1.0))
                .collect();
            normalize(c)
        }
        (ResizeMode::Cubic, false) => {
            let (r1, q) = (ratio + 1.0, 1.0 - ratio);
            let q1 = q + 1.0;
            vec![
                ((aa * r1 - 5.0 * aa) * r1 + 8.0 * aa) * r1 - 4.0 * aa,
                ((aa + 2.0) * ratio - (aa + 3.0)) * ratio * ratio + 1.0,
                ((aa + 2.0) * q - (aa + 3.0)) * q * q + 1.0,
                ((aa * q1 - 5.0 * aa) * q1 + 8.0 * aa) * q1 - 4.0 * aa,
            ]
        }
        (ResizeMode::Cubic, true) => {
            let s = scale.min(1.0);
            let cubic = |x: f64| {
                let x = x.abs();
                let (x2, x3) = (x * x, x * x * x);
                if x <= 1.0 {
                    (aa + 2.0) * x3 - (aa + 3.0) * x2 + 1.0
                } else if x < 2.0 {
                    aa * x3 - 5.0 * aa * x2 + 8.0 * aa * x - 4.0 * aa
                } else {
                    0.0
                }
            };
            let start = (-2.0 / s).floor() as i64 + 1;
            let end = 2 - start;
            normalize(
                (start..end)
                    .map(|i| cubic(s * (i as f64 - ratio)))
                    .collect(),
            )
        }
    }
}

fn normalize(mut c: Vec<f64>) -> Vec<f64> {
    let s: f64 = c.iter().sum();
    if s != 0.0 {
        c.iter_mut().for_each(|v| *v /= s);
    }
    c
}

fn taps(a: &ResizeAttrs, in_w: usize, out_w: usize, scale: f64, roi: (f64, f64)) -> Taps {
    let fin = in_w as f64;
    let out_f = scale * fin;
    let mut t = Taps {
        index: Vec::new(),
        weight: Vec::new(),
        n: 0,
        outside: vec![false; out_w],
    };
    for y in 0..out_w {
        let yf = y as f64;
        let x = match a.coord {
            CoordMode::AlignCorners => {
                if out_f == 1.0 {
                    0.0
                } else {
                    yf * (fin - 1.0) / (out_f - 1.0)
                }
            }
            CoordMode::Asymmetric => yf / scale,
            CoordMode::TfCropAndResize => {
                let x = if out_f == 1.0 {
                    (roi.1 - roi.0) * (fin - 1.0) / 2.0
                } else {
                    yf * (roi.1 - roi.0) * (fin - 1.0) / (out_f - 1.0)
                } + roi.0 * (fin - 1.0);
                t.outside[y] = x < 0.0 || x > fin - 1.0;
                x
            }
            CoordMode::PytorchHalfPixel => {
                if out_f == 1.0 {
                    -0.5
                } else {
                    (yf + 0.5) / scale - 0.5
                }
            }
            CoordMode::HalfPixel => (yf + 0.5) / scale - 0.5,
            CoordMode::HalfPixelSymmetric => {
                let adjustment = out_w as f64 / out_f;
                let offset = fin / 2.0 * (1.0 - adjustment);
                offset + (yf + 0.5) / scale - 0.5
            }
        };
        let xi = x.floor();
        let ratio = if x == xi { 1.0 } else { x - xi };
        let mut c = coeffs(a, ratio, scale);
        let n = c.len();
        t.n = n;
        let pad = n.div_ceil(2) as f64;
        let xp = x + pad;
        let p = xp.floor();
        let frac = xp - p;
        let half = (n / 2) as i64;
        let offset = if n.is_multiple_of(2) {
            if frac == 0.0 {
                -half
            } else {
                -half + 1
            }
        } else {
            let base = -(((n - 1) / 2) as i64);
            if frac <= 0.5 {
                base
            } else {
                base + 1
            }
        };
        let start = p as i64 + offset - pad as i64;
        if a.exclude_outside {
            for (k, w) in c.iter_mut().enumerate() {
                let i = start + k as i64;
                if i < 0 || i >= in_w as i64 {
                    *w = 0.0;
                }
            }
            c = normalize(c);
        }
        for (k, w) in c.into_iter().enumerate() {
            t.index
                .push((start + k as i64).clamp(0, in_w as i64 - 1) as usize);
            t.weight.push(w);
        }
    }
    t
}

/// Interpolates row-major `data` of `shape` along `axis` to `out_w` positions.
fn along_axis(
    data: &[f64],
    shape: &[usize],
    axis: usize,
    out_w: usize,
    t: &Taps,
    extra: f64,
) -> Vec<f64> {
    let in_w = shape[axis];
    let outer: usize = shape[..axis].iter().product();
    let inner: usize = shape[axis + 1..].iter().product();
    let mut out = vec![0.0; outer * out_w * inner];
    if inner == 0 || out.is_empty() {
        return out;
    }
    let row = |r: usize, dst: &mut [f64]| {
        let (o, y) = (r / out_w, r % out_w);
        if t.outside[y] {
            dst.fill(extra);
            return;
        }
        for k in 0..t.n {
            let w = t.weight[y * t.n + k];
            if w == 0.0 {
                continue;
            }
            let s = (o * in_w + t.index[y * t.n + k]) * inner;
            for (d, v) in dst.iter_mut().zip(&data[s..s + inner]) {
                *d += w * v;
            }
        }
    };
    if out.len() >= PARALLEL_MIN {
        out.par_chunks_mut(inner)
            .enumerate()
            .for_each(|(r, dst)| row(r, dst));
    } else {
        out.chunks_mut(inner)
            .enumerate()
            .for_each(|(r, dst)| row(r, dst));
    }
    out
}

fn nonempty<'a>(x: &Inputs<'a>, slot: Option<usize>) -> Option<&'a Tensor> {
    slot.and_then(|i| x.opt(i)).filter(|t| !t.is_empty())
}

/// Picks `idx` along `axis`, then writes `ext` at the positions marked `outside`.
fn select_fill<T: Element>(
    a: &ArcArrayD<T>,
    axis: usize,
    idx: &[usize],
    outside: &[bool],
    ext: &Tensor,
) -> Result<ArcArrayD<T>> {
    let mut out = a.select(Axis(axis), idx);
    if outside.iter().any(|&o| o) {
        let v = ext.arc::<T>()?.iter().next().cloned().unwrap_or_default();
        for (y, _) in outside.iter().enumerate().filter(|(_, &o)| o) {
            out.index_axis_mut(Axis(axis), y).fill(v.clone());
        }
    }
    Ok(standard(out.into_shared()))
}

pub fn resize(a: &ResizeAttrs, x: &Inputs) -> Result<Tensor> {
    let t = x.get(0)?;
    let dtype = t.dtype();
    let in_shape = t.shape().to_vec();
    let r = in_shape.len();
    let axes = match &a.axes {
        Some(ax) => norm_axes(ax, r)?,
        None => (0..r).collect(),
    };
    let naxes = axes.len();
    let mut roi: Vec<(f64, f64)> = vec![(0.0, 1.0); r];
    if a.coord == CoordMode::TfCropAndResize {
        if let Some(ro) = nonempty(x, a.roi_input) {
            let v = ro.to_f64_vec()?;
            if v.len() != 2 * naxes {
                return Err(invalid!(
                    "Resize: roi has {} values for {naxes} axes",
                    v.len()
                ));
            }
            for (i, &ax) in axes.iter().enumerate() {
                roi[ax] = (v[i], v[naxes + i]);
            }
        }
    }
    let mut scales = vec![1.0f64; r];
    let mut out_shape = in_shape.clone();
    if let Some(sz) = nonempty(x, a.sizes_input) {
        let sz = sz.to_i64_vec()?;
        if sz.len() != naxes || sz.iter().any(|&s| s < 0) {
            return Err(invalid!("Resize: sizes {sz:?} do not fit {naxes} axes"));
        }
        for (i, &ax) in axes.iter().enumerate() {
            scales[ax] = sz[i] as f64 / in_shape[ax] as f64;
            out_shape[ax] = sz[i] as usize;
        }
        if a.aspect != AspectPolicy::Stretch {
            let it = axes.iter().map(|&ax| scales[ax]);
            let s = if a.aspect == AspectPolicy::NotLarger {
                it.fold(f64::INFINITY, f64::min)
            } else {
                it.fold(f64::NEG_INFINITY, f64::max)
            };
            for &ax in &axes {
                scales[ax] = s;
                out_shape[ax] = (s * in_shape[ax] as f64 + 0.5) as usize;
            }
        }
    } else {
        let sc: Vec<f64> = match (&a.scales, nonempty(x, a.scales_input)) {
            (Some(s), _) => s.iter().map(|&v| v as f64).collect(),
            (None, Some(s)) => s.to_f64_vec()?,
            (None, None) => return Err(invalid!("Resize needs scales or sizes")),
        };
        if sc.len() != naxes || sc.iter().any(|&s| s.is_nan() || s <= 0.0 || !s.is_finite()) {
            return Err(invalid!("Resize: scales {sc:?} do not fit {naxes} axes"));
        }
        for (i, &ax) in axes.iter().enumerate() {
            scales[ax] = sc[i];
            out_shape[ax] = (sc[i] * in_shape[ax] as f64) as usize;
        }
    }
    if checked_numel(&out_shape, DType::F64)? == 0 {
        return Tensor::zeros(dtype, &out_shape);
    }
    let changed = |ax: usize, w: usize| {
        !((scales[ax] - 1.0).abs() < 1e-9 && out_shape[ax] == w && roi[ax] == (0.0, 1.0))
    };
    if axes
        .iter()
        .any(|&ax| in_shape[ax] == 0 && out_shape[ax] > 0)
    {
        return Err(invalid!("Resize: cannot interpolate an empty axis"));
    }
    if a.mode == ResizeMode::Nearest {
        // Nearest neighbours copy elements: no arithmetic, any element type.
        let mut cur = t.clone();
        for &ax in &axes {
            if !changed(ax, in_shape[ax]) {
                continue;
            }
            let tp = taps(a, in_shape[ax], out_shape[ax], scales[ax], roi[ax]);
            let idx: Vec<usize> = (0..out_shape[ax])
                .map(|y| {
                    let w = &tp.weight[y * tp.n..(y + 1) * tp.n];
                    let k = (0..tp.n).fold(0, |b, k| if w[k] > w[b] { k } else { b });
                    tp.index[y * tp.n + k]
                })
                .collect();
            let ext = Tensor::scalar(a.extrapolation_value).cast(dtype)?;
            cur = map_array!(&cur, arr => select_fill(arr, ax, &idx, &tp.outside, &ext)?);
        }
        return Ok(cur);
    }
    if matches!(dtype, DType::Bool | DType::String) {
        return Err(Error::Unsupported(format!("Resize on {dtype} tensors")));
    }
    let src = t.cast(DType::F64)?;
    let mut data: Vec<f64> = src.arc::<f64>()?.iter().copied().collect();
    let mut shape = in_shape.clone();
    for &ax in &axes {
        if !changed(ax, shape[ax]) {
            continue;
        }
        let tp = taps(a, shape[ax], out_shape[ax], scales[ax], roi[ax]);
        data = along_axis(
            &data,
            &shape,
            ax,
            out_shape[ax],
            &tp,
            a.extrapolation_value as f64,
        );
        shape[ax] = out_shape[ax];
    }
    let out = Tensor::from_vec(&shape, data)?;
    if dtype.is_int() {
        // Integers round to nearest and saturate, as numpy's rint + clip.
        let rounded = out.arc::<f64>()?.mapv(|v| v.round_ties_even());
        return Tensor::from(rounded.into_owned()).cast(dtype);
    }
    out.cast(dtype)
}
