//! Spatial sampling kernels: GridSample, AffineGrid and RoiAlign. Half-precision inputs
//! run in f32 and are cast back.

use crossover_core::op::image::{PaddingMode, RoiPool, SampleMode};
use crossover_core::op::ImageOp;
use crossover_core::tensor::{checked_numel, Element};
use crossover_core::{invalid, DType, Error, Result, Tensor};
use ndarray::{ArcArray, ArrayD, IxDyn};
use rayon::prelude::*;

use super::linalg::gemm::Real;
use super::Inputs;

pub fn eval(op: &ImageOp, x: &Inputs) -> Result<Vec<Tensor>> {
    match *op {
        ImageOp::GridSample {
            mode,
            padding_mode,
            align_corners,
        } => Ok(vec![grid_sample_op(
            x.get(0)?,
            x.get(1)?,
            mode,
            padding_mode,
            align_corners,
        )?]),
        ImageOp::AffineGrid { align_corners } => {
            Ok(vec![affine_grid_op(x.get(0)?, x.get(1)?, align_corners)?])
        }
        ImageOp::RoiAlign {
            half_pixel,
            mode,
            output_height,
            output_width,
            sampling_ratio,
            spatial_scale,
        } => {
            let roi = Roi {
                half_pixel,
                mode,
                out: [output_height, output_width],
                sampling_ratio,
                spatial_scale: spatial_scale as f64,
            };
            Ok(vec![roi_align_op(x.get(0)?, x.get(1)?, x.get(2)?, &roi)?])
        }
    }
}

/// The type float inputs are computed in: f64 if any is f64, else f32.
fn compute_dtype(op: &str, ts: &[&Tensor]) -> Result<DType> {
    let mut dt = DType::F32;
    for t in ts {
        match t.dtype() {
            DType::F64 => dt = DType::F64,
            DType::F32 | DType::F16 | DType::BF16 => {}
            other => return Err(Error::Unsupported(format!("{op} on {other} tensors"))),
        }
    }
    Ok(dt)
}

/// A tensor as a standard-layout array of `T`, cast if needed.
fn std_array<T: Element>(t: &Tensor, dt: DType) -> Result<ArcArray<T, IxDyn>> {
    let a = t.cast(dt)?.into_arc::<T>()?;
    Ok(if a.is_standard_layout() {
        a
    } else {
        a.as_standard_layout().into_owned().into_shared()
    })
}

fn lit<T: Real>(v: f64) -> T {
    T::from_f64(v).unwrap_or_else(T::nan)
}

// ---------------------------------------------------------------------------------------
// GridSample

/// A tap that reads padding (zero) instead of a pixel.
const PAD: usize = usize::MAX;

/// Folds `x` into `[lo, hi]` by mirroring at the borders, as often as needed.
fn reflect<T: Real>(x: T, lo: T, hi: T) -> T {
    let range = hi - lo;
    if range.is_nan() || range <= T::zero() {
        return lo;
    }
    let two = lit::<T>(2.0);
    let fold = |d: T| {
        let n = (d / range).trunc();
        (d - n * range, n % two == T::zero())
    };
    if x < lo {
        let (r, even) = fold(lo - x);
        if even {
            lo + r
        } else {
            hi - r
        }
    } else if x > hi {
        let (r, even) = fold(x - hi);
        if even {
            hi - r
        } else {
            lo + r
        }
    } else {
        x
    }
}

/// Keys' cubic convolution weights (a = -0.75) of the four taps around a point at
/// fraction `t` past the second one.
fn cubic_weights<T: Real>(t: T) -> [T; 4] {
    let a = lit::<T>(-0.75);
    let (one, two) = (T::one(), lit::<T>(2.0));
    let (three, five, eight, four) = (lit::<T>(3.0), lit::<T>(5.0), lit::<T>(8.0), lit::<T>(4.0));
    let far = |x: T| ((a * x - five * a) * x + eight * a) * x - four * a;
    let near = |x: T| ((a + two) * x - (a + three)) * x * x + one;
    [far(t + one), near(t), near(one - t), far(two - t)]
}

/// Per-axis sampling of GridSample: turns a normalized coordinate into taps.
struct Axis<T> {
    len: usize,
    stride: usize,
    lo: T,
    hi: T,
}

struct Sampler<T> {
    mode: SampleMode,
    padding: PaddingMode,
    align_corners: bool,
    axes: Vec<Axis<T>>,
}

impl<T: Real> Sampler<T> {
    fn taps_per_axis(&self) -> usize {
        match self.mode {
            SampleMode::Nearest => 1,
            SampleMode::Linear => 2,
            SampleMode::Cubic => 4,
        }
    }

    /// The offset (times the axis stride) of integer position `i`, or [`PAD`].
    fn resolve(&self, ax: &Axis<T>, i: i64) -> usize {
        let last = ax.len as i64 - 1;
        let i = match self.padding {
            PaddingMode::Zeros if i < 0 || i > last => return PAD,
            PaddingMode::Zeros => i,
            PaddingMode::Border => i.clamp(0, last),
            PaddingMode::Reflection => {
                let r = reflect(lit::<T>(i as f64), ax.lo, ax.hi);
                to_index(r).clamp(0, last)
            }
        };
        i as usize * ax.stride
    }

    /// Writes the taps of normalized coordinate `g` on axis `ax` into `out`.
    fn taps(&self, ax: &Axis<T>, g: T, out: &mut [(usize, T)]) {
        let one = T::one();
        let half = lit::<T>(0.5);
        let len = lit::<T>(ax.len as f64);
        let mut x = if self.align_corners {
            (g + one) * half * (len - one)
        } else {
            ((g + one) * len - one) * half
        };
        if self.mode == SampleMode::Nearest {
            x = round_half_even(x);
        }
        if x < ax.lo || x > ax.hi {
            match self.padding {
                PaddingMode::Border => x = x.max(T::zero()).min(len - one),
                PaddingMode::Reflection => x = reflect(x, ax.lo, ax.hi),
                PaddingMode::Zeros => {}
            }
        }
        match self.mode {
            SampleMode::Nearest => out[0] = (self.resolve(ax, to_index(x)), one),
            SampleMode::Linear => {
                let x0 = x.floor();
                let f = x - x0;
                let i = to_index(x0);
                out[0] = (self.resolve(ax, i), one - f);
                out[1] = (self.resolve(ax, i.saturating_add(1)), f);
            }
            SampleMode::Cubic => {
                let x0 = x.floor();
                let w = cubic_weights(x - x0);
                let i = to_index(x0);
                for (j, (o, &wj)) in out.iter_mut().zip(&w).enumerate() {
                    *o = (self.resolve(ax, i.saturating_add(j as i64 - 1)), wj);
                }
            }
        }
    }
}

/// Rounds half to even, as `nearest` mode does.
fn round_half_even<T: Real>(x: T) -> T {
    let r = x.round();
    if (r - x).abs() == lit::<T>(0.5) {
        (x * lit::<T>(0.5)).round() * lit::<T>(2.0)
    } else {
        r
    }
}

/// A coordinate as an integer (towards zero); NaN and far-away values land outside any
/// image.
fn to_index<T: Real>(x: T) -> i64 {
    let lim = lit::<T>(1e15);
    x.max(-lim).min(lim).to_i64().unwrap_or(i64::MIN / 2)
}

/// The interpolated value at the tensor product of per-axis taps (`k` per axis), offsets
/// relative to `x`.
fn gather<T: Real>(x: &[T], taps: &[(usize, T)], k: usize) -> T {
    let (head, rest) = taps.split_at(k);
    let mut acc = T::zero();
    for &(off, w) in head {
        if off == PAD {
            continue;
        }
        let v = if rest.is_empty() {
            x[off]
        } else {
            gather(&x[off..], rest, k)
        };
        acc += w * v;
    }
    acc
}

fn grid_sample_op(
    x: &Tensor,
    grid: &Tensor,
    mode: SampleMode,
    padding: PaddingMode,
    align_corners: bool,
) -> Result<Tensor> {
    let dt = compute_dtype("GridSample", &[x, grid])?;
    let y = if dt == DType::F64 {
        Tensor::from(grid_sample::<f64>(
            &std_array(x, dt)?,
            &std_array(grid, dt)?,
            mode,
            padding,
            align_corners,
        )?)
    } else {
        Tensor::from(grid_sample::<f32>(
            &std_array(x, dt)?,
            &std_array(grid, dt)?,
            mode,
            padding,
            align_corners,
        )?)
    };
    y.cast(x.dtype())
}

fn grid_sample<T: Real + Element>(
    x: &ArcArray<T, IxDyn>,
    grid: &ArcArray<T, IxDyn>,
    mode: SampleMode,
    padding: PaddingMode,
    align_corners: bool,
) -> Result<ArrayD<T>> {
    let (xs, gs) = (x.shape(), grid.shape());
    let r = xs.len().saturating_sub(2);
    if xs.len() < 3 || gs.len() != xs.len() || gs[0] != xs[0] || gs[r + 1] != r {
        return Err(invalid!(
            "GridSample needs X of shape (N, C, D1..Dr) and grid of shape (N, H1..Hr, r), got {xs:?} and {gs:?}"
        ));
    }
    let (n, c) = (xs[0], xs[1]);
    let mut shape = vec![n, c];
    shape.extend(&gs[1..=r]);
    if xs[2..].contains(&0) && shape.iter().all(|&d| d > 0) {
        return Err(invalid!(
            "GridSample cannot sample an empty image of shape {xs:?}"
        ));
    }
    checked_numel(&shape, T::DTYPE)?;
    let mut y = ArrayD::<T>::zeros(IxDyn(&shape));
    let p: usize = gs[1..=r].iter().product();
    let img: usize = xs[2..].iter().product();
    if y.is_empty() {
        return Ok(y);
    }
    let half = lit::<T>(0.5);
    let mut stride = img;
    let axes = xs[2..]
        .iter()
        .map(|&len| {
            stride /= len.max(1);
            let l = lit::<T>(len as f64);
            let (lo, hi) = if align_corners {
                (T::zero(), l - T::one())
            } else {
                (-half, l - half)
            };
            Axis {
                len,
                stride,
                lo,
                hi,
            }
        })
        .collect::<Vec<_>>();
    let s = Sampler {
        mode,
        padding,
        align_corners,
        axes,
    };
    let k = s.taps_per_axis();
    let per_point = r * k;
    checked_numel(&[p, per_point, 2], DType::F64)?;
    // Taps of every output point of one image, shared by its channels.
    let mut table = vec![(PAD, T::zero()); p * per_point];
    let xd = x.as_slice().expect("standard layout");
    let gd = grid.as_slice().expect("standard layout");
    let yd = y.as_slice_mut().expect("fresh array");
    for ni in 0..n {
        let g = &gd[ni * p * r..(ni + 1) * p * r];
        table
            .par_chunks_mut(per_point)
            .zip(g.par_chunks(r))
            .for_each(|(t, coords)| {
                // The grid lists coordinates innermost axis first.
                for (d, ax) in s.axes.iter().enumerate() {
                    s.taps(ax, coords[r - 1 - d], &mut t[d * k..(d + 1) * k]);
                }
            });
        let table = &table;
        yd[ni * c * p..(ni + 1) * c * p]
            .par_chunks_mut(p)
            .enumerate()
            .for_each(|(ci, out)| {
                let plane = &xd[(ni * c + ci) * img..(ni * c + ci + 1) * img];
                for (o, t) in out.iter_mut().zip(table.chunks(per_point)) {
                    *o = gather(plane, t, k);
                }
            });
    }
    Ok(y)
}

// ---------------------------------------------------------------------------------------
// AffineGrid

fn affine_grid_op(theta: &Tensor, size: &Tensor, align_corners: bool) -> Result<Tensor> {
    let ts = theta.shape();
    let size = size.to_i64_vec()?;
    let r = size.len().saturating_sub(2);
    if !(r == 2 || r == 3) || ts != [size[0].max(0) as usize, r, r + 1] || size[0] < 0 {
        return Err(invalid!(
            "AffineGrid needs theta of shape (N, r, r+1) and size (N, C, D1..Dr) with r 2 or 3, got {ts:?} and {size:?}"
        ));
    }
    let dims = size[2..]
        .iter()
        .map(|&d| usize::try_from(d).map_err(|_| invalid!("AffineGrid size {size:?}")))
        .collect::<Result<Vec<_>>>()?;
    let mut shape = vec![ts[0]];
    shape.extend(&dims);
    shape.push(r);
    checked_numel(&shape, theta.dtype())?;
    // An empty grid must still have a shape the allocator can describe.
    checked_numel(
        &shape.iter().map(|&d| d.max(1)).collect::<Vec<_>>(),
        theta.dtype(),
    )?;
    match theta.dtype() {
        DType::F64 | DType::F32 | DType::F16 | DType::BF16 => {}
        other => return Err(Error::Unsupported(format!("AffineGrid on {other} tensors"))),
    }
    let th = theta.to_f64_vec()?;
    let y = if theta.dtype() == DType::F64 {
        Tensor::from(affine_grid::<f64>(&th, &shape, align_corners))
    } else {
        Tensor::from(affine_grid::<f32>(&th, &shape, align_corners))
    };
    y.cast(theta.dtype())
}

/// The normalized coordinate of pixel `i` of `len` along one axis.
fn base_coord(i: usize, len: usize, align_corners: bool) -> f64 {
    if align_corners {
        if len > 1 {
            -1.0 + 2.0 * i as f64 / (len - 1) as f64
        } else {
            -1.0
        }
    } else {
        -1.0 + (2 * i + 1) as f64 / len as f64
    }
}

/// `shape` is (N, D1..Dr, r); `theta` holds N row-major r×(r+1) matrices.
fn affine_grid<T: Real + Element>(
    theta: &[f64],
    shape: &[usize],
    align_corners: bool,
) -> ArrayD<T> {
    let r = shape.len() - 2;
    let dims = &shape[1..=r];
    let p: usize = dims.iter().product();
    let w = dims[r - 1];
    let mut y = ArrayD::<T>::zeros(IxDyn(shape));
    let yd = y.as_slice_mut().expect("fresh array");
    if yd.is_empty() {
        return y;
    }
    let m = r * (r + 1);
    // One task per line along the innermost axis.
    yd.par_chunks_mut(w * r)
        .enumerate()
        .for_each(|(line, out)| {
            let ni = line * w / p;
            let th = &theta[ni * m..(ni + 1) * m];
            // Homogeneous point, innermost axis first: (x, y[, z], 1).
            let mut pt = [0.0f64; 4];
            pt[r] = 1.0;
            let mut rem = line % (p / w);
            for d in (0..r - 1).rev() {
                pt[r - 1 - d] = base_coord(rem % dims[d], dims[d], align_corners);
                rem /= dims[d];
            }
            for (wi, o) in out.chunks_mut(r).enumerate() {
                pt[0] = base_coord(wi, w, align_corners);
                for (j, v) in o.iter_mut().enumerate() {
                    let row = &th[j * (r + 1)..(j + 1) * (r + 1)];
                    let s: f64 = row.iter().zip(&pt).map(|(a, b)| a * b).sum();
                    *v = lit::<T>(s);
                }
            }
        });
    y
}

// ---------------------------------------------------------------------------------------
// RoiAlign

struct Roi {
    half_pixel: bool,
    mode: RoiPool,
    /// Output height and width.
    out: [usize; 2],
    sampling_ratio: usize,
    spatial_scale: f64,
}

/// One bilinear sample: four pixel offsets and their weights.
#[derive(Clone, Copy, Default)]
struct Sample {
    pos: [usize; 4],
    w: [f64; 4],
}

fn roi_align_op(x: &Tensor, rois: &Tensor, batch: &Tensor, a: &Roi) -> Result<Tensor> {
    let (xs, rs, bs) = (x.shape(), rois.shape(), batch.shape());
    if xs.len() != 4 || rs.len() != 2 || rs[1] != 4 || bs != [rs[0]] {
        return Err(invalid!(
            "RoiAlign needs X (N, C, H, W), rois (R, 4) and batch_indices (R), got {xs:?}, {rs:?} and {bs:?}"
        ));
    }
    if !matches!(batch.dtype(), DType::I64 | DType::I32) {
        return Err(invalid!("RoiAlign batch_indices must be integers"));
    }
    let bi = batch
        .to_i64_vec()?
        .into_iter()
        .map(|b| {
            usize::try_from(b)
                .ok()
                .filter(|&b| b < xs[0])
                .ok_or_else(|| {
                    invalid!("RoiAlign batch index {b} out of range for {} images", xs[0])
                })
        })
        .collect::<Result<Vec<_>>>()?;
    let dt = compute_dtype("RoiAlign", &[x, rois])?;
    let boxes = rois.to_f64_vec()?;
    let y = if dt == DType::F64 {
        Tensor::from(roi_align::<f64>(&std_array(x, dt)?, &boxes, &bi, a)?)
    } else {
        Tensor::from(roi_align::<f32>(&std_array(x, dt)?, &boxes, &bi, a)?)
    };
    y.cast(x.dtype())
}

/// The bilinear samples of one ROI, bin by bin, and the sample grid per bin.
fn roi_samples(
    roi: &[f64],
    hw: [usize; 2],
    a: &Roi,
    out: &mut Vec<Sample>,
) -> Result<(usize, usize)> {
    let off = if a.half_pixel { 0.5 } else { 0.0 };
    let s = |v: f64| v * a.spatial_scale - off;
    let (x0, y0, x1, y1) = (s(roi[0]), s(roi[1]), s(roi[2]), s(roi[3]));
    let (mut rw, mut rh) = (x1 - x0, y1 - y0);
    if !a.half_pixel {
        // Malformed ROIs become 1×1.
        rw = rw.max(1.0);
        rh = rh.max(1.0);
    }
    let [oh, ow] = a.out;
    let (bh, bw) = (rh / oh as f64, rw / ow as f64);
    let grid = |b: f64| {
        if a.sampling_ratio > 0 {
            a.sampling_ratio
        } else {
            // Negative, NaN or huge sizes saturate.
            b.ceil().max(0.0).min(usize::MAX as f64) as usize
        }
    };
    let (gh, gw) = (grid(bh), grid(bw));
    checked_numel(&[oh, ow, gh, gw, 8], DType::F64)?;
    let [h, w] = hw;
    let (hf, wf) = (h as f64, w as f64);
    out.clear();
    out.reserve(oh * ow * gh * gw);
    for ph in 0..oh {
        for pw in 0..ow {
            for iy in 0..gh {
                let yy = y0 + ph as f64 * bh + (iy as f64 + 0.5) * bh / gh as f64;
                for ix in 0..gw {
                    let xx = x0 + pw as f64 * bw + (ix as f64 + 0.5) * bw / gw as f64;
                    if !(yy >= -1.0 && yy <= hf && xx >= -1.0 && xx <= wf) || h == 0 || w == 0 {
                        out.push(Sample::default());
                        continue;
                    }
                    let lin = |v: f64, n: usize| {
                        let v = v.max(0.0);
                        let lo = v as usize;
                        if lo >= n - 1 {
                            (n - 1, n - 1, 0.0)
                        } else {
                            (lo, lo + 1, v - lo as f64)
                        }
                    };
                    let (ylo, yhi, ly) = lin(yy, h);
                    let (xlo, xhi, lx) = lin(xx, w);
                    let (hy, hx) = (1.0 - ly, 1.0 - lx);
                    out.push(Sample {
                        pos: [ylo * w + xlo, ylo * w + xhi, yhi * w + xlo, yhi * w + xhi],
                        w: [hy * hx, hy * lx, ly * hx, ly * lx],
                    });
                }
            }
        }
    }
    Ok((gh, gw))
}

fn roi_align<T: Real + Element>(
    x: &ArcArray<T, IxDyn>,
    boxes: &[f64],
    batch: &[usize],
    a: &Roi,
) -> Result<ArrayD<T>> {
    let xs = x.shape();
    let (c, h, w) = (xs[1], xs[2], xs[3]);
    let [oh, ow] = a.out;
    let shape = [batch.len(), c, oh, ow];
    checked_numel(&shape, T::DTYPE)?;
    let mut y = ArrayD::<T>::zeros(IxDyn(&shape));
    let plane = oh * ow;
    if y.is_empty() {
        return Ok(y);
    }
    let xd = x.as_slice().expect("standard layout");
    let yd = y.as_slice_mut().expect("fresh array");
    yd.par_chunks_mut(c * plane)
        .zip(boxes.par_chunks(4).zip(batch.par_iter()))
        .try_for_each(|(out, (roi, &b))| -> Result<()> {
            let mut samples = Vec::new();
            let (gh, gw) = roi_samples(roi, [h, w], a, &mut samples)?;
            let per_bin = gh * gw;
            let count = lit::<T>(per_bin.max(1) as f64);
            let samples = &samples;
            out.par_chunks_mut(plane).enumerate().for_each(|(ci, out)| {
                let img = &xd[(b * c + ci) * h * w..(b * c + ci + 1) * h * w];
                let weighted = |s: &Sample| {
                    let mut v = [T::zero(); 4];
                    for (vj, (&p, &wj)) in v.iter_mut().zip(s.pos.iter().zip(&s.w)) {
                        // Samples outside the image have no pixels behind them.
                        *vj = if img.is_empty() {
                            T::zero()
                        } else {
                            lit::<T>(wj) * img[p]
                        };
                    }
                    v
                };
                for (o, bin) in out.iter_mut().zip(samples.chunks(per_bin.max(1))) {
                    if per_bin == 0 {
                        break;
                    }
                    *o = match a.mode {
                        RoiPool::Avg => {
                            let mut acc = T::zero();
                            for s in bin {
                                for v in weighted(s) {
                                    acc += v;
                                }
                            }
                            acc / count
                        }
                        RoiPool::Max => bin
                            .iter()
                            .map(|s| weighted(s).into_iter().fold(T::neg_infinity(), T::max))
                            .fold(T::neg_infinity(), T::max),
                    };
                }
            });
            Ok(())
        })?;
    Ok(y)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(shape: &[usize], v: Vec<f32>) -> Tensor {
        Tensor::from_vec(shape, v).unwrap()
    }

    #[test]
    fn grid_sample_rejects_mismatched_shapes() {
        let x = t(&[1, 1, 2, 2], vec![1.0, 2.0, 3.0, 4.0]);
        let bad_last = t(&[1, 1, 1, 3], vec![0.0; 3]);
        let bad_batch = t(&[2, 1, 1, 2], vec![0.0; 4]);
        let bad_rank = t(&[1, 1, 2], vec![0.0; 2]);
        for g in [&bad_last, &bad_batch, &bad_rank] {
            let r = grid_sample_op(&x, g, SampleMode::Linear, PaddingMode::Zeros, false);
            assert!(r.is_err());
        }
    }

    #[test]
    fn grid_sample_corners_and_padding() {
        let x = t(&[1, 1, 2, 2], vec![1.0, 2.0, 3.0, 4.0]);
        // (x, y) pairs: top-left corner, centre, far outside.
        let g = t(&[1, 1, 3, 2], vec![-1.0, -1.0, 0.0, 0.0, 5.0, 5.0]);
        let y = grid_sample_op(&x, &g, SampleMode::Linear, PaddingMode::Zeros, true).unwrap();
        assert_eq!(y.to_f64_vec().unwrap(), vec![1.0, 2.5, 0.0]);
        // The centre lies half-way between pixels: nearest rounds half to even.
        let y = grid_sample_op(&x, &g, SampleMode::Nearest, PaddingMode::Border, true).unwrap();
        assert_eq!(y.to_f64_vec().unwrap(), vec![1.0, 1.0, 4.0]);
        let nan = t(&[1, 1, 1, 2], vec![f32::NAN, f32::INFINITY]);
        for p in [
            PaddingMode::Zeros,
            PaddingMode::Border,
            PaddingMode::Reflection,
        ] {
            for m in [SampleMode::Nearest, SampleMode::Linear, SampleMode::Cubic] {
                assert!(grid_sample_op(&x, &nan, m, p, false).is_ok());
            }
        }
    }

    #[test]
    fn reflect_folds_both_ways() {
        assert_eq!(reflect(-1.0f64, 0.0, 3.0), 1.0);
        assert_eq!(reflect(4.0f64, 0.0, 3.0), 2.0);
        assert_eq!(reflect(7.0f64, 0.0, 3.0), 1.0);
        assert_eq!(reflect(5.0f64, 0.0, 0.0), 0.0);
    }

    #[test]
    fn affine_grid_identity_and_errors() {
        let theta = t(&[1, 2, 3], vec![1.0, 0.0, 0.0, 0.0, 1.0, 0.0]);
        let size = Tensor::from_vec(&[4], vec![1i64, 1, 2, 2]).unwrap();
        let y = affine_grid_op(&theta, &size, true).unwrap();
        assert_eq!(y.shape(), &[1, 2, 2, 2]);
        let v = y.to_f64_vec().unwrap();
        assert_eq!(v, vec![-1.0, -1.0, 1.0, -1.0, -1.0, 1.0, 1.0, 1.0]);
        let wrong_n = Tensor::from_vec(&[4], vec![2i64, 1, 2, 2]).unwrap();
        assert!(affine_grid_op(&theta, &wrong_n, true).is_err());
        let neg = Tensor::from_vec(&[4], vec![1i64, 1, -2, 2]).unwrap();
        assert!(affine_grid_op(&theta, &neg, true).is_err());
        let short = Tensor::from_vec(&[1], vec![1i64]).unwrap();
        assert!(affine_grid_op(&theta, &short, true).is_err());
    }

    fn roi() -> Roi {
        Roi {
            half_pixel: false,
            mode: RoiPool::Avg,
            out: [2, 2],
            sampling_ratio: 0,
            spatial_scale: 1.0,
        }
    }

    #[test]
    fn roi_align_checks_batch_indices_and_shapes() {
        let x = t(&[1, 1, 4, 4], (0..16).map(|v| v as f32).collect());
        let rois = t(&[1, 4], vec![0.0, 0.0, 3.0, 3.0]);
        let good = Tensor::from_vec(&[1], vec![0i64]).unwrap();
        assert_eq!(
            roi_align_op(&x, &rois, &good, &roi()).unwrap().shape(),
            &[1, 1, 2, 2]
        );
        for b in [1i64, -1] {
            let bad = Tensor::from_vec(&[1], vec![b]).unwrap();
            assert!(roi_align_op(&x, &rois, &bad, &roi()).is_err());
        }
        let two = Tensor::from_vec(&[2], vec![0i64, 0]).unwrap();
        assert!(roi_align_op(&x, &rois, &two, &roi()).is_err());
        let flat = t(&[4], vec![0.0, 0.0, 3.0, 3.0]);
        assert!(roi_align_op(&x, &flat, &good, &roi()).is_err());
        let huge = t(&[1, 4], vec![0.0, 0.0, 1e30, 1e30]);
        assert!(roi_align_op(&x, &huge, &good, &roi()).is_err());
    }
}
