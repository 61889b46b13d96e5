//! Convolution and pooling kernels.

mod causal;
mod deform;
pub(crate) mod direct;
mod geometry;
mod pool;

use crossover_core::op::conv::{ConvAttrs, PoolAttrs, Window};
use crossover_core::op::ConvOp;
use crossover_core::tensor::checked_numel;
use crossover_core::{invalid, DType, Error, Result, Tensor};
use ndarray::{ArrayD, ArrayView2, ArrayViewD, ArrayViewMut2, Axis, IxDyn};
use rayon::prelude::*;

use super::linalg::gemm::{gemm, gemm_in_task, Real};
use super::Inputs;
use geometry::{axis_list, Geometry};

pub fn eval(op: &ConvOp, x: &Inputs) -> Result<Vec<Tensor>> {
    match op {
        ConvOp::Conv(a) => Ok(vec![conv_op(x, a)?]),
        ConvOp::ConvInteger(a) => Ok(vec![conv_integer(x, a)?]),
        ConvOp::QLinearConv(a) => Ok(vec![qlinear_conv(x, a)?]),
        ConvOp::ConvTranspose {
            conv,
            output_padding,
            output_shape,
        } => Ok(vec![conv_transpose_op(
            x,
            conv,
            output_padding.as_deref(),
            output_shape.as_deref(),
        )?]),
        ConvOp::Col2Im {
            dilations,
            pads,
            strides,
        } => Ok(vec![col2im_op(x, dilations, pads, strides)?]),
        ConvOp::DeformConv { conv, offset_group } => {
            Ok(vec![deform::deform_conv_op(x, conv, *offset_group)?])
        }
        ConvOp::CausalConvWithState { silu } => causal::eval(x, *silu),
        other => pool::eval(other, x),
    }
}

/// Float inputs as f32 or f64 arrays: half types widen to f32 and the result narrows back.
fn real_dtype(op: &str, dts: &[DType]) -> Result<DType> {
    let d = dts[0];
    if dts.iter().any(|&x| x != d) {
        return Err(invalid!("{op} needs inputs of one type, got {dts:?}"));
    }
    match d {
        DType::F64 => Ok(DType::F64),
        DType::F32 | DType::F16 | DType::BF16 => Ok(DType::F32),
        other => Err(Error::Unsupported(format!("{op} on {other} tensors"))),
    }
}

fn arr<T: crossover_core::tensor::Element>(t: &Tensor, dt: DType) -> Result<ArrayD<T>> {
    Ok(t.cast(dt)?.into_arc::<T>()?.into_owned())
}

fn conv_op(x: &Inputs, a: &ConvAttrs) -> Result<Tensor> {
    let (xt, wt, bt) = (x.get(0)?, x.get(1)?, x.opt(2));
    let mut dts = vec![xt.dtype(), wt.dtype()];
    dts.extend(bt.map(Tensor::dtype));
    let dt = real_dtype("Conv", &dts)?;
    let y: Tensor = match dt {
        DType::F64 => {
            conv::<f64>(xt.view()?, wt.view()?, bt.map(|b| b.view()).transpose()?, a)?.into()
        }
        _ if xt.dtype() == DType::F32 => {
            conv::<f32>(xt.view()?, wt.view()?, bt.map(|b| b.view()).transpose()?, a)?.into()
        }
        _ => {
            let (xs, ws) = (arr::<f32>(xt, dt)?, arr::<f32>(wt, dt)?);
            let bs = bt.map(|b| arr::<f32>(b, dt)).transpose()?;
            Tensor::from(conv::<f32>(
                xs.view(),
                ws.view(),
                bs.as_ref().map(|b| b.view()),
                a,
            )?)
            .cast(xt.dtype())?
        }
    };
    Ok(y)
}

/// Column tiles of the patch matrix hold about this many elements.
const TILE: usize = 1 << 20;
/// A single image's patch tile is filled by several threads from this many elements on;
/// below, waking them costs more than the copy.
const PARALLEL_COLUMNS: usize = 1 << 16;

/// N-D grouped convolution: per image and group, im2col (in column tiles) then GEMM.
pub(crate) fn conv<T: Real>(
    x: ArrayViewD<T>,
    w: ArrayViewD<T>,
    b: Option<ArrayViewD<T>>,
    a: &ConvAttrs,
) -> Result<ArrayD<T>> {
    let epilogue = Epilogue {
        bias: b,
        relu: false,
        max_pool: None,
    };
    conv_with(x, w, None, a, &epilogue)
}

/// What a convolution does to each image's output while it is still in cache: add the
/// per-channel bias, clamp at zero, then take the maxima of 2-D windows (a `MaxPool`
/// fused after it, whose grid the output then has).
pub(crate) struct Epilogue<'a, T> {
    pub bias: Option<ArrayViewD<'a, T>>,
    pub relu: bool,
    pub max_pool: Option<&'a PoolAttrs>,
}

/// [`conv`] followed by `e`, in one pass per image and group; `packed` holds `w`'s
/// filters when they were packed ahead for the direct kernel.
pub(crate) fn conv_with<T: Real>(
    x: ArrayViewD<T>,
    w: ArrayViewD<T>,
    packed: Option<&direct::Filters>,
    a: &ConvAttrs,
    e: &Epilogue<T>,
) -> Result<ArrayD<T>> {
    let (xs, ws) = (x.shape(), w.shape());
    if xs.len() < 3 || ws.len() != xs.len() {
        return Err(invalid!(
            "Conv needs X of rank >= 3 and W of the same rank, got {xs:?} and {ws:?}"
        ));
    }
    let g = a.group as usize;
    let (n, c, m) = (xs[0], xs[1], ws[0]);
    if c % g != 0 || m % g != 0 || ws[1] * g != c {
        return Err(invalid!("Conv: X {xs:?}, W {ws:?} and group {g} disagree"));
    }
    if let Some(b) = &e.bias {
        if b.shape() != [m] {
            return Err(invalid!(
                "Conv bias of shape {:?} for {m} output channels",
                b.shape()
            ));
        }
    }
    let geo = Geometry::forward(&a.window, &xs[2..], &ws[2..], false)?;
    let pool = e
        .max_pool
        .map(|pa| {
            let k = axis_list(
                pa.window.kernel_shape.as_deref(),
                geo.grid.len(),
                1,
                "kernel_shape",
                1,
            )?;
            if geo.grid.len() != 2 {
                return Err(invalid!(
                    "a MaxPool fused after a Conv needs 2 spatial axes, got {}",
                    geo.grid.len()
                ));
            }
            Geometry::forward(&pa.window, &geo.grid, &k, pa.ceil_mode)
        })
        .transpose()?;
    let (cg, mg) = (c / g, m / g);
    let k = cg * geo.kernel_size();
    let p = geo.grid_size();
    let out_grid = pool.as_ref().map_or(&geo.grid, |pg| &pg.grid);
    let op: usize = out_grid.iter().product();
    let mut shape = vec![n, m];
    shape.extend(out_grid);
    checked_numel(&shape, DType::F32)?;
    let mut y = ArrayD::<T>::zeros(IxDyn(&shape));
    let x = x.as_standard_layout();
    let w = w.as_standard_layout();
    let xd = x.as_slice().expect("standard layout");
    let wd = w.as_slice().expect("standard layout");
    if direct::applies::<T>(&geo, mg, k) {
        let y_all = y.as_slice_mut().expect("fresh array");
        direct::conv(
            &geo,
            pool.as_ref(),
            (xd, wd, packed),
            (n, g, cg, mg),
            e,
            y_all,
        )?;
        return Ok(y);
    }
    let img = geo.image_size();
    let tasks = n * g;
    let gl = *geo.grid.last().expect("spatial axis");
    let lines = p.checked_div(gl).unwrap_or(0);
    let per_tile = (TILE / (k * gl).max(1)).clamp(1, lines.max(1));
    // One image's product runs on its own thread when the images run in parallel.
    let product = if tasks > 1 { gemm_in_task } else { gemm };
    // The convolution of task `t` (image, group) into `out`, `mg × p`.
    let convolve = |t: usize, out: &mut [T]| -> Result<()> {
        let (ni, gi) = (t / g, t % g);
        let xg = &xd[(ni * c + gi * cg) * img..(ni * c + (gi + 1) * cg) * img];
        let wg = ArrayView2::from_shape((mg, k), &wd[gi * mg * k..(gi + 1) * mg * k])
            .expect("sizes checked");
        let mut out = ArrayViewMut2::from_shape((mg, p), out).expect("sizes checked");
        if geo.is_pointwise() {
            let col = ArrayView2::from_shape((cg, p), xg).expect("sizes checked");
            return product(T::one(), wg, col, T::zero(), out.view_mut());
        }
        let mut col = vec![T::zero(); k * per_tile * gl];
        let mut l0 = 0;
        while l0 < lines {
            let l1 = (l0 + per_tile).min(lines);
            let len = (l1 - l0) * gl;
            geo.im2col(
                xg,
                cg,
                l0..l1,
                &mut col,
                tasks == 1 && k * len >= PARALLEL_COLUMNS,
            );
            let cv = ArrayView2::from_shape((k, len), &col[..k * len]).expect("sizes checked");
            product(
                T::one(),
                wg,
                cv,
                T::zero(),
                out.slice_mut(ndarray::s![.., l0 * gl..l1 * gl]),
            )?;
            l0 = l1;
        }
        Ok(())
    };
    // Bias and Relu on the plane of output channel `r` of group `gi`.
    let finish = |gi: usize, r: usize, plane: &mut [T]| {
        let bv = e.bias.as_ref().map(|b| b[[gi * mg + r]]);
        // Selects rather than `max`, so that the loops vectorise.
        let relu = |v: T| if v > T::zero() { v } else { T::zero() };
        match (bv, e.relu) {
            (Some(bv), true) => plane.iter_mut().for_each(|v| *v = relu(*v + bv)),
            (Some(bv), false) => plane.iter_mut().for_each(|v| *v += bv),
            (None, true) => plane.iter_mut().for_each(|v| *v = relu(*v)),
            (None, false) => {}
        }
    };
    let plane_max = pool.as_ref().map(pool::PlaneMax::new);
    let run = |(t, out): (usize, &mut [T])| -> Result<()> {
        let gi = t % g;
        match &plane_max {
            None => {
                convolve(t, out)?;
                for (r, plane) in out.chunks_mut(p.max(1)).enumerate() {
                    finish(gi, r, plane);
                }
            }
            Some(pm) => {
                let mut full = vec![T::zero(); mg * p];
                let mut down = Vec::new();
                convolve(t, &mut full)?;
                for (r, (plane, dst)) in full
                    .chunks_mut(p.max(1))
                    .zip(out.chunks_mut(op.max(1)))
                    .enumerate()
                {
                    finish(gi, r, plane);
                    pm.apply(plane, dst, &mut down);
                }
            }
        }
        Ok(())
    };
    for_each_chunk(
        y.as_slice_mut().expect("fresh array"),
        mg * op,
        tasks > 1,
        run,
    )?;
    Ok(y)
}

/// An 8-bit tensor minus its zero point as f64; products and sums of these stay exact in
/// f64, so the integer convolutions run through the float path. `per_channel` lets a
/// 1-D zero point apply along axis 0 (W's output channels).
fn centered(t: &Tensor, zp: Option<&Tensor>) -> Result<ArrayD<f64>> {
    if !matches!(t.dtype(), DType::U8 | DType::I8) {
        return Err(Error::Unsupported(format!(
            "quantized convolution on {} tensors",
            t.dtype()
        )));
    }
    let mut v = arr::<f64>(t, DType::F64)?;
    if let Some(z) = zp {
        let z = z.to_f64_vec()?;
        match z.len() {
            1 => v.mapv_inplace(|a| a - z[0]),
            k if v.ndim() > 0 && k == v.shape()[0] => {
                for (mut sub, &zv) in v.axis_iter_mut(Axis(0)).zip(&z) {
                    sub.mapv_inplace(|a| a - zv);
                }
            }
            k => {
                return Err(invalid!(
                    "zero point of {k} values for shape {:?}",
                    t.shape()
                ))
            }
        }
    }
    Ok(v)
}

fn conv_integer(x: &Inputs, a: &ConvAttrs) -> Result<Tensor> {
    let xs = centered(x.get(0)?, x.opt(2))?;
    let ws = centered(x.get(1)?, x.opt(3))?;
    if x.opt(2).is_some_and(|z| z.len() != 1) {
        return Err(Error::Unsupported(
            "ConvInteger with a per-channel x_zero_point".into(),
        ));
    }
    let y = conv::<f64>(xs.view(), ws.view(), None, a)?;
    Ok(y.mapv(|v| v as i32).into())
}

fn qlinear_conv(x: &Inputs, a: &ConvAttrs) -> Result<Tensor> {
    let xt = x.get(0)?;
    if x.get(2)?.len() != 1 {
        return Err(invalid!("QLinearConv x_zero_point must be a scalar"));
    }
    let xs = centered(xt, x.opt(2))?;
    let ws = centered(x.get(3)?, x.opt(5))?;
    let bias = x
        .opt(8)
        .map(|b| Ok::<_, Error>(ndarray::Array1::from(b.to_f64_vec()?).into_dyn()))
        .transpose()?;
    let y = conv::<f64>(xs.view(), ws.view(), bias.as_ref().map(|b| b.view()), a)?;
    let sx = x.get(1)?.to_f64_vec()?;
    let sw = x.get(4)?.to_f64_vec()?;
    let sy = x.get(6)?.to_f64_vec()?;
    let (sx, sy) = match (sx.as_slice(), sy.as_slice()) {
        ([a], [b]) => (*a as f32, *b as f32),
        _ => return Err(invalid!("QLinearConv x_scale and y_scale must be scalars")),
    };
    let m = y.shape().get(1).copied().unwrap_or(0);
    if sw.len() != 1 && sw.len() != m {
        return Err(invalid!(
            "QLinearConv w_scale has {} values for {m} channels",
            sw.len()
        ));
    }
    let out = x.opt(7).map_or(xt.dtype(), Tensor::dtype);
    let zp = x.opt(7).map(|z| z.scalar_f64()).transpose()?.unwrap_or(0.0);
    let (lo, hi) = match out {
        DType::U8 => (0.0, 255.0),
        DType::I8 => (-128.0, 127.0),
        other => {
            return Err(Error::Unsupported(format!(
                "QLinearConv output of type {other}"
            )))
        }
    };
    let mut y = y;
    for (mi, mut plane) in y.axis_iter_mut(Axis(1)).enumerate() {
        let f = (sx * sw[if sw.len() == 1 { 0 } else { mi }] as f32 / sy) as f64;
        plane.mapv_inplace(|v| ((v * f).round_ties_even() + zp).clamp(lo, hi));
    }
    Tensor::from(y).cast(out)
}

fn conv_transpose_op(
    x: &Inputs,
    a: &ConvAttrs,
    output_padding: Option<&[i64]>,
    output_shape: Option<&[i64]>,
) -> Result<Tensor> {
    let (xt, wt, bt) = (x.get(0)?, x.get(1)?, x.opt(2));
    let mut dts = vec![xt.dtype(), wt.dtype()];
    dts.extend(bt.map(Tensor::dtype));
    let dt = real_dtype("ConvTranspose", &dts)?;
    macro_rules! go {
        ($t:ty) => {{
            let (xs, ws) = (arr::<$t>(xt, dt)?, arr::<$t>(wt, dt)?);
            let bs = bt.map(|b| arr::<$t>(b, dt)).transpose()?;
            Tensor::from(conv_transpose::<$t>(
                xs.view(),
                ws.view(),
                bs.as_ref().map(|b| b.view()),
                a,
                output_padding,
                output_shape,
            )?)
        }};
    }
    let y = if dt == DType::F64 { go!(f64) } else { go!(f32) };
    y.cast(xt.dtype())
}

/// The window of a transposed convolution: it slides over the output image, one
/// position per input pixel.
fn transpose_geometry(
    w: &Window,
    input: &[usize],
    kernel: &[usize],
    output_padding: Option<&[i64]>,
    output_shape: Option<&[i64]>,
) -> Result<(Geometry, Vec<usize>)> {
    use crossover_core::op::conv::AutoPad;
    let n = input.len();
    if kernel.len() != n {
        return Err(invalid!(
            "ConvTranspose kernel {kernel:?} for {n} spatial axes"
        ));
    }
    let strides = axis_list(w.strides.as_deref(), n, 1, "strides", 1)?;
    let dilations = axis_list(w.dilations.as_deref(), n, 1, "dilations", 1)?;
    let pads = axis_list(w.pads.as_deref(), 2 * n, 0, "pads", 0)?;
    let opad = axis_list(output_padding, n, 0, "output_padding", 0)?;
    // ONNX allows output_shape with or without the batch and channel axes.
    let oshape = output_shape
        .map(|s| {
            let s = if s.len() == n + 2 { &s[2..] } else { s };
            axis_list(Some(s), n, 0, "output_shape", 0)
        })
        .transpose()?;
    let mut pb = vec![0isize; n];
    let mut pe = vec![0isize; n];
    let mut out = vec![0usize; n];
    for d in 0..n {
        let span = ((kernel[d] as isize) - 1) * dilations[d] as isize + 1;
        let full = strides[d] as isize * (input[d] as isize - 1) + opad[d] as isize + span;
        let target = match (&oshape, w.auto_pad) {
            (Some(s), _) => Some(s[d] as isize),
            (None, AutoPad::SameUpper | AutoPad::SameLower) => {
                Some((input[d] * strides[d]) as isize)
            }
            _ => None,
        };
        match target {
            Some(t) => {
                let total = full - t;
                let half = total.div_euclid(2);
                if w.auto_pad == AutoPad::SameUpper {
                    (pb[d], pe[d]) = (half, total - half);
                } else {
                    (pb[d], pe[d]) = (total - half, half);
                }
                out[d] = t.max(0) as usize;
            }
            None => {
                (pb[d], pe[d]) = (pads[d] as isize, pads[n + d] as isize);
                let o = full - pb[d] - pe[d];
                if o < 0 {
                    return Err(invalid!("ConvTranspose output axis {d} would be negative"));
                }
                out[d] = o as usize;
            }
        }
    }
    Ok((
        Geometry {
            image: out.clone(),
            grid: input.to_vec(),
            kernel: kernel.to_vec(),
            strides,
            dilations,
            pad_begin: pb,
            pad_end: pe,
        },
        out,
    ))
}

fn conv_transpose<T: Real>(
    x: ArrayViewD<T>,
    w: ArrayViewD<T>,
    b: Option<ArrayViewD<T>>,
    a: &ConvAttrs,
    output_padding: Option<&[i64]>,
    output_shape: Option<&[i64]>,
) -> Result<ArrayD<T>> {
    let (xs, ws) = (x.shape(), w.shape());
    if xs.len() < 3 || ws.len() != xs.len() {
        return Err(invalid!(
            "ConvTranspose needs X of rank >= 3 and W of the same rank, got {xs:?} and {ws:?}"
        ));
    }
    let g = a.group as usize;
    let (n, c) = (xs[0], xs[1]);
    if ws[0] != c || c % g != 0 {
        return Err(invalid!(
            "ConvTranspose: X {xs:?}, W {ws:?} and group {g} disagree"
        ));
    }
    let (cg, mg) = (c / g, ws[1]);
    let m = mg * g;
    if let Some(b) = &b {
        if b.shape() != [m] {
            return Err(invalid!(
                "ConvTranspose bias of shape {:?} for {m} output channels",
                b.shape()
            ));
        }
    }
    let (geo, out) =
        transpose_geometry(&a.window, &xs[2..], &ws[2..], output_padding, output_shape)?;
    let mut shape = vec![n, m];
    shape.extend(&out);
    checked_numel(&shape, DType::F32)?;
    let mut y = ArrayD::<T>::zeros(IxDyn(&shape));
    let x = x.as_standard_layout();
    let w = w.as_standard_layout();
    let xd = x.as_slice().expect("standard layout");
    let wd = w.as_slice().expect("standard layout");
    let pin = geo.grid_size();
    let pout = geo.image_size();
    let kk = mg * geo.kernel_size();
    checked_numel(&[kk, pin], DType::F32)?;
    let tasks = n * g;
    let run = |(t, yo): (usize, &mut [T])| -> Result<()> {
        let (ni, gi) = (t / g, t % g);
        let xg = ArrayView2::from_shape(
            (cg, pin),
            &xd[(ni * c + gi * cg) * pin..(ni * c + (gi + 1) * cg) * pin],
        )
        .expect("sizes checked");
        let wg = ArrayView2::from_shape((cg, kk), &wd[gi * cg * kk..(gi + 1) * cg * kk])
            .expect("sizes checked");
        let mut col = ndarray::Array2::<T>::zeros((kk, pin));
        gemm(T::one(), wg.t(), xg, T::zero(), col.view_mut())?;
        geo.col2im(col.as_slice().expect("fresh array"), yo, tasks == 1);
        if let Some(b) = &b {
            for (r, plane) in yo.chunks_mut(pout).enumerate() {
                let bv = b[[gi * mg + r]];
                plane.iter_mut().for_each(|v| *v += bv);
            }
        }
        Ok(())
    };
    for_each_chunk(
        y.as_slice_mut().expect("fresh array"),
        mg * pout,
        tasks > 1,
        run,
    )?;
    Ok(y)
}

fn col2im_op(
    x: &Inputs,
    dilations: &Option<Vec<i64>>,
    pads: &Option<Vec<i64>>,
    strides: &Option<Vec<i64>>,
) -> Result<Tensor> {
    let t = x.get(0)?;
    let image = x.get(1)?.to_i64_vec()?;
    let block = x.get(2)?.to_i64_vec()?;
    let nd = image.len();
    let image = axis_list(Some(&image), nd, 0, "image_shape", 1)?;
    let block = axis_list(Some(&block), nd, 0, "block_shape", 1)?;
    if nd == 0 || t.rank() != 3 {
        return Err(invalid!(
            "Col2Im needs a rank-3 input and a non-empty image shape"
        ));
    }
    let w = Window {
        dilations: dilations.clone(),
        pads: pads.clone(),
        strides: strides.clone(),
        ..Default::default()
    };
    let geo = Geometry::forward(&w, &image, &block, false)?;
    let (n, ck, l) = (t.shape()[0], t.shape()[1], t.shape()[2]);
    let ks = geo.kernel_size();
    if ck % ks != 0 || l != geo.grid_size() {
        return Err(invalid!(
            "Col2Im input {:?} does not match {} blocks of size {ks}",
            t.shape(),
            geo.grid_size()
        ));
    }
    let c = ck / ks;
    let mut shape = vec![n, c];
    shape.extend(&image);
    checked_numel(&shape, t.dtype())?;
    let dt = real_dtype("Col2Im", &[t.dtype()])?;
    macro_rules! go {
        ($t:ty) => {{
            let a = arr::<$t>(t, dt)?;
            let a = a.as_standard_layout();
            let src = a.as_slice().expect("standard layout");
            let mut y = ArrayD::<$t>::zeros(IxDyn(&shape));
            let plane = c * geo.image_size();
            if plane > 0 {
                for (i, yo) in y
                    .as_slice_mut()
                    .expect("fresh")
                    .chunks_mut(plane)
                    .enumerate()
                {
                    geo.col2im(&src[i * ck * l..(i + 1) * ck * l], yo, true);
                }
            }
            Tensor::from(y)
        }};
    }
    let y = if dt == DType::F64 { go!(f64) } else { go!(f32) };
    y.cast(t.dtype())
}

/// Runs `f` on each `chunk`-long piece of `out` (one image × group of a convolution's
/// output), across threads when `parallel`.
fn for_each_chunk<T, F>(out: &mut [T], chunk: usize, parallel: bool, f: F) -> Result<()>
where
    T: Send,
    F: Fn((usize, &mut [T])) -> Result<()> + Send + Sync,
{
    if chunk == 0 {
        return Ok(());
    }
    if parallel {
        out.par_chunks_mut(chunk).enumerate().try_for_each(f)
    } else {
        out.chunks_mut(chunk).enumerate().try_for_each(f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crossover_core::op::conv::AutoPad;

    fn attrs(pads: Option<Vec<i64>>, group: i64) -> ConvAttrs {
        ConvAttrs {
            window: Window {
                auto_pad: AutoPad::NotSet,
                pads,
                ..Default::default()
            },
            group,
        }
    }

    #[test]
    fn conv_matches_direct_sum_and_checks_shapes() {
        let x = ArrayD::from_shape_fn(IxDyn(&[1, 2, 4, 5]), |i| {
            (i[1] * 20 + i[2] * 5 + i[3]) as f64
        });
        let w = ArrayD::from_shape_fn(IxDyn(&[3, 2, 3, 2]), |i| {
            (i[0] + 2 * i[1] + i[2] * i[3]) as f64 - 2.0
        });
        let y = conv::<f64>(x.view(), w.view(), None, &attrs(Some(vec![1, 0, 1, 1]), 1)).unwrap();
        assert_eq!(y.shape(), &[1, 3, 4, 5]);
        let at = |c: usize, h: isize, wi: isize| {
            if !(0..4).contains(&h) || !(0..5).contains(&wi) {
                0.0
            } else {
                x[[0, c, h as usize, wi as usize]]
            }
        };
        for m in 0..3 {
            for oh in 0..4 {
                for ow in 0..5 {
                    let mut s = 0.0;
                    for c in 0..2 {
                        for kh in 0..3 {
                            for kw in 0..2 {
                                s += w[[m, c, kh, kw]]
                                    * at(
                                        c,
                                        oh as isize + kh as isize - 1,
                                        ow as isize + kw as isize,
                                    );
                            }
                        }
                    }
                    assert_eq!(y[[0, m, oh, ow]], s);
                }
            }
        }
        assert!(conv::<f64>(x.view(), w.view(), None, &attrs(None, 2)).is_err());
        let w1 = w.slice(ndarray::s![.., ..1, .., ..]).into_dyn();
        assert!(conv::<f64>(x.view(), w1, None, &attrs(None, 1)).is_err());
        let big = ArrayD::<f64>::zeros(IxDyn(&[1, 2, 5, 5]));
        assert!(conv::<f64>(x.view(), big.view(), None, &attrs(None, 1)).is_err());
    }
}
