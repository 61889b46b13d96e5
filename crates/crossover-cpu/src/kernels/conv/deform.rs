//! Deformable convolution: every kernel tap reads the image at its regular position plus
//! a per-output-point offset, interpolated (multi)linearly with zeros outside the image
//! and scaled by an optional mask; the patch matrix then goes through the GEMM of Conv.

use crossover_core::op::conv::ConvAttrs;
use crossover_core::tensor::checked_numel;
use crossover_core::{invalid, DType, Result, Tensor};
use ndarray::{ArrayD, ArrayView2, ArrayViewD, ArrayViewMut2, IxDyn};
use rayon::prelude::*;

use super::geometry::Geometry;
use super::real_dtype;
use crate::kernels::linalg::gemm::{gemm, Real};
use crate::kernels::Inputs;

pub(super) fn deform_conv_op(x: &Inputs, a: &ConvAttrs, offset_group: i64) -> Result<Tensor> {
    let (xt, wt, ot) = (x.get(0)?, x.get(1)?, x.get(2)?);
    let (bt, mt) = (x.opt(3), x.opt(4));
    let mut dts = vec![xt.dtype(), wt.dtype(), ot.dtype()];
    dts.extend(bt.map(Tensor::dtype));
    dts.extend(mt.map(Tensor::dtype));
    let dt = real_dtype("DeformConv", &dts)?;
    let og = usize::try_from(offset_group)
        .map_err(|_| invalid!("offset_group {offset_group} is invalid"))?;
    macro_rules! go {
        ($t:ty) => {{
            // Casting to the same type shares the buffer.
            let (xc, wc, oc) = (xt.cast(dt)?, wt.cast(dt)?, ot.cast(dt)?);
            let bc = bt.map(|b| b.cast(dt)).transpose()?;
            let mc = mt.map(|m| m.cast(dt)).transpose()?;
            Tensor::from(deform_conv::<$t>(
                xc.view()?,
                wc.view()?,
                oc.view()?,
                bc.as_ref().map(|b| b.view()).transpose()?,
                mc.as_ref().map(|m| m.view()).transpose()?,
                a,
                og,
            )?)
        }};
    }
    let y = if dt == DType::F64 { go!(f64) } else { go!(f32) };
    y.cast(xt.dtype())
}

/// `x` (N, C, D1..Dr), `w` (M, C/group, K1..Kr), `offset` (N, og·K·r, O1..Or) with the
/// displacement of tap k along axis d at channel `k·r + d` of its offset group, `mask`
/// (N, og·K, O1..Or).
fn deform_conv<T: Real>(
    x: ArrayViewD<T>,
    w: ArrayViewD<T>,
    offset: ArrayViewD<T>,
    b: Option<ArrayViewD<T>>,
    mask: Option<ArrayViewD<T>>,
    a: &ConvAttrs,
    og: usize,
) -> Result<ArrayD<T>> {
    let (xs, ws) = (x.shape(), w.shape());
    if xs.len() < 3 || ws.len() != xs.len() {
        return Err(invalid!(
            "DeformConv needs X of rank >= 3 and W of the same rank, got {xs:?} and {ws:?}"
        ));
    }
    let g = a.group as usize;
    let (n, c, m) = (xs[0], xs[1], ws[0]);
    if m % g != 0 || ws[1] * g != c || og == 0 || c % og != 0 {
        return Err(invalid!(
            "DeformConv: X {xs:?}, W {ws:?}, group {g} and offset_group {og} disagree"
        ));
    }
    let geo = Geometry::forward(&a.window, &xs[2..], &ws[2..], false)?;
    let r = xs.len() - 2;
    let kk = geo.kernel_size();
    let p = geo.grid_size();
    let mut want = vec![n, og * kk * r];
    want.extend(&geo.grid);
    if offset.shape() != want.as_slice() {
        return Err(invalid!(
            "DeformConv offset of shape {:?}, expected {want:?}",
            offset.shape()
        ));
    }
    want[1] = og * kk;
    if let Some(mk) = &mask {
        if mk.shape() != want.as_slice() {
            return Err(invalid!(
                "DeformConv mask of shape {:?}, expected {want:?}",
                mk.shape()
            ));
        }
    }
    if let Some(b) = &b {
        if b.shape() != [m] {
            return Err(invalid!(
                "DeformConv bias of shape {:?} for {m} output channels",
                b.shape()
            ));
        }
    }
    let mut shape = vec![n, m];
    shape.extend(&geo.grid);
    checked_numel(&shape, DType::F32)?;
    checked_numel(&[c, kk, p], DType::F32)?;
    let mut y = ArrayD::<T>::zeros(IxDyn(&shape));
    if y.is_empty() {
        return Ok(y);
    }
    let x = x.as_standard_layout();
    let w = w.as_standard_layout();
    let offset = offset.as_standard_layout();
    let mask = mask.as_ref().map(|mk| mk.as_standard_layout());
    let xd = x.as_slice().expect("standard layout");
    let wd = w.as_slice().expect("standard layout");
    let od = offset.as_slice().expect("standard layout");
    let md = mask
        .as_ref()
        .map(|mk| mk.as_slice().expect("standard layout"));
    let (cg, mg, cpo) = (c / g, m / g, c / og);
    let ck = cg * kk;
    let img = geo.image_size();
    let mut col = vec![T::zero(); c * kk * p];
    let yd = y.as_slice_mut().expect("fresh array");
    for ni in 0..n {
        // One patch row per (channel, kernel tap).
        col.par_chunks_mut(p).enumerate().for_each(|(row, out)| {
            let (ci, ki) = (row / kk, row % kk);
            let tap = (ni * og + ci / cpo) * kk + ki;
            let plane = &xd[(ni * c + ci) * img..(ni * c + ci + 1) * img];
            let offs = &od[tap * r * p..(tap + 1) * r * p];
            let scale = md.map(|md| &md[tap * p..(tap + 1) * p]);
            sample_row(&geo, ki, plane, offs, out);
            if let Some(s) = scale {
                out.iter_mut().zip(s).for_each(|(v, &s)| *v = *v * s);
            }
        });
        for gi in 0..g {
            let wg = ArrayView2::from_shape((mg, ck), &wd[gi * mg * ck..(gi + 1) * mg * ck])
                .expect("sizes checked");
            let cv = ArrayView2::from_shape((ck, p), &col[gi * ck * p..(gi + 1) * ck * p])
                .expect("sizes checked");
            let base = (ni * m + gi * mg) * p;
            let mut out = ArrayViewMut2::from_shape((mg, p), &mut yd[base..base + mg * p])
                .expect("sizes checked");
            gemm(T::one(), wg, cv, T::zero(), out.view_mut())?;
            if let Some(b) = &b {
                for (j, mut row) in out.rows_mut().into_iter().enumerate() {
                    let bv = b[[gi * mg + j]];
                    row.mapv_inplace(|v| v + bv);
                }
            }
        }
    }
    Ok(y)
}

/// Fills `out` (one value per output point) with the image sampled at kernel tap `ki`,
/// displaced by `offs` (r planes of one value per output point).
fn sample_row<T: Real>(geo: &Geometry, ki: usize, plane: &[T], offs: &[T], out: &mut [T]) {
    let r = geo.image.len();
    let p = out.len();
    // Regular position of the tap at output point 0, per axis.
    let mut start = vec![0isize; r];
    let mut rem = ki;
    for d in (0..r).rev() {
        let k = rem % geo.kernel[d];
        rem /= geo.kernel[d];
        start[d] = (k * geo.dilations[d]) as isize - geo.pad_begin[d];
    }
    let lim = T::from_f64(1e15).unwrap_or_else(T::max_value);
    let mut o = vec![0usize; r];
    let mut lo = vec![0i64; r];
    let mut fr = vec![T::zero(); r];
    for (pi, v) in out.iter_mut().enumerate() {
        for d in 0..r {
            let base = start[d] + (o[d] * geo.strides[d]) as isize;
            let pos = T::from_isize(base).unwrap_or_else(T::zero) + offs[d * p + pi];
            let f = pos.floor();
            // NaN and far-away positions land outside the image.
            lo[d] = f.max(-lim).min(lim).to_i64().unwrap_or(i64::MIN / 2);
            fr[d] = pos - f;
        }
        let mut acc = T::zero();
        'corner: for corner in 0..1usize << r {
            let mut wgt = T::one();
            let mut idx = 0usize;
            for d in 0..r {
                let up = (corner >> (r - 1 - d)) & 1 == 1;
                let i = lo[d] + up as i64;
                let len = geo.image[d];
                if i < 0 || i >= len as i64 {
                    continue 'corner;
                }
                wgt = wgt * if up { fr[d] } else { T::one() - fr[d] };
                idx = idx * len + i as usize;
            }
            acc += wgt * plane[idx];
        }
        *v = acc;
        // Next output point, row-major.
        for d in (0..r).rev() {
            o[d] += 1;
            if o[d] < geo.grid[d] {
                break;
            }
            o[d] = 0;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crossover_core::op::conv::Window;

    fn attrs(pads: Vec<i64>) -> ConvAttrs {
        ConvAttrs {
            window: Window {
                pads: Some(pads),
                ..Default::default()
            },
            group: 1,
        }
    }

    #[test]
    fn zero_offsets_match_conv_and_shapes_are_checked() {
        let x = ArrayD::from_shape_fn(IxDyn(&[1, 2, 4, 3]), |i| {
            (i[1] * 12 + i[2] * 3 + i[3]) as f64
        });
        let w = ArrayD::from_shape_fn(IxDyn(&[2, 2, 2, 2]), |i| {
            (i[0] + 2 * i[1] + i[2] * i[3]) as f64 - 1.5
        });
        let a = attrs(vec![1, 0, 0, 1]);
        let want = super::super::conv::<f64>(x.view(), w.view(), None, &a).unwrap();
        let off = ArrayD::<f64>::zeros(IxDyn(&[1, 8, 4, 3]));
        let got = deform_conv::<f64>(x.view(), w.view(), off.view(), None, None, &a, 1).unwrap();
        assert_eq!(got, want);
        // Shifting every tap by one row down reads the next row (zeros past the end).
        let mut down = off.clone();
        for k in 0..4 {
            down.slice_mut(ndarray::s![0, 2 * k, .., ..]).fill(1.0);
        }
        let shifted =
            deform_conv::<f64>(x.view(), w.view(), down.view(), None, None, &a, 1).unwrap();
        let a2 = attrs(vec![0, 0, 1, 1]);
        let want2 = super::super::conv::<f64>(x.view(), w.view(), None, &a2).unwrap();
        assert_eq!(shifted, want2);
        let bad = ArrayD::<f64>::zeros(IxDyn(&[1, 6, 4, 3]));
        assert!(deform_conv::<f64>(x.view(), w.view(), bad.view(), None, None, &a, 1).is_err());
        assert!(deform_conv::<f64>(x.view(), w.view(), off.view(), None, None, &a, 3).is_err());
        let bad_mask = ArrayD::<f64>::zeros(IxDyn(&[1, 4, 4, 4]));
        let r = deform_conv::<f64>(
            x.view(),
            w.view(),
            off.view(),
            None,
            Some(bad_mask.view()),
            &a,
            1,
        );
        assert!(r.is_err());
    }
}
