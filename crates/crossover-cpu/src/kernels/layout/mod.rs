//! Data-movement kernels. Reshape-like ops share the input's buffer; the others copy
//! into row-major outputs.

mod gather;
mod pad;
mod resize;
mod shape;

use crossover_core::op::LayoutOp;
use crossover_core::tensor::checked_numel;
use crossover_core::{invalid, map_array, ArcArrayD, Element, Result, Tensor};
use ndarray::{ArrayD, ArrayViewD, Axis, IxDyn, Zip};

use super::broadcast::PARALLEL_MIN;

use super::Inputs;

pub fn eval(op: &LayoutOp, x: &Inputs) -> Result<Vec<Tensor>> {
    let one = |t: Tensor| Ok(vec![t]);
    match op {
        LayoutOp::Identity => one(x.get(0)?.clone()),
        LayoutOp::Reshape { allow_zero } => {
            let t = x.get(0)?;
            let spec = x.get(1)?.to_i64_vec()?;
            one(t.reshape(&reshape_target(t.shape(), &spec, *allow_zero)?)?)
        }
        LayoutOp::Flatten { axis } => one(shape::flatten(x.get(0)?, *axis)?),
        LayoutOp::Transpose { perm } => one(shape::transpose(x.get(0)?, perm.as_deref())?),
        LayoutOp::Squeeze { axes } => {
            // An empty list means "every size-1 axis", as no list does.
            let axes = list_or_input(axes, x, 1)?.filter(|a| !a.is_empty());
            one(shape::squeeze(x.get(0)?, axes.as_deref())?)
        }
        LayoutOp::Unsqueeze { axes } => {
            let axes =
                list_or_input(axes, x, 1)?.ok_or_else(|| invalid!("Unsqueeze needs axes"))?;
            one(shape::unsqueeze(x.get(0)?, &axes)?)
        }
        LayoutOp::Concat { axis } => one(shape::concat(&x.present(), *axis)?),
        LayoutOp::Split {
            axis,
            split,
            num_outputs,
        } => {
            let split = list_or_input(split, x, 1)?;
            shape::split(x.get(0)?, *axis, split.as_deref(), *num_outputs)
        }
        LayoutOp::Slice { starts, ends, axes } => {
            let (starts, ends, axes, steps) = match (starts, ends) {
                (Some(s), Some(e)) => (s.clone(), e.clone(), axes.clone(), None),
                _ => (
                    x.get(1)?.to_i64_vec()?,
                    x.get(2)?.to_i64_vec()?,
                    x.opt(3).map(|t| t.to_i64_vec()).transpose()?,
                    x.opt(4).map(|t| t.to_i64_vec()).transpose()?,
                ),
            };
            one(shape::slice(
                x.get(0)?,
                &starts,
                &ends,
                axes.as_deref(),
                steps.as_deref(),
            )?)
        }
        LayoutOp::Gather { axis } => one(gather::gather(x.get(0)?, x.get(1)?, *axis)?),
        LayoutOp::GatherElements { axis } => {
            one(gather::gather_elements(x.get(0)?, x.get(1)?, *axis)?)
        }
        LayoutOp::GatherND { batch_dims } => {
            one(gather::gather_nd(x.get(0)?, x.get(1)?, *batch_dims)?)
        }
        LayoutOp::ScatterElements { axis, reduction } => one(gather::scatter_elements(
            x.get(0)?,
            x.get(1)?,
            x.get(2)?,
            *axis,
            *reduction,
        )?),
        LayoutOp::Scatter { axis } => one(gather::scatter_elements(
            x.get(0)?,
            x.get(1)?,
            x.get(2)?,
            *axis,
            crossover_core::op::layout::ScatterReduction::None,
        )?),
        LayoutOp::ScatterND { reduction } => one(gather::scatter_nd(
            x.get(0)?,
            x.get(1)?,
            x.get(2)?,
            *reduction,
        )?),
        LayoutOp::Expand => one(shape::expand(x.get(0)?, &x.get(1)?.to_i64_vec()?)?),
        LayoutOp::Tile => one(shape::tile(x.get(0)?, &x.get(1)?.to_i64_vec()?)?),
        LayoutOp::Pad { mode, pads, value } => {
            let t = x.get(0)?;
            let constant = match (pads, x.opt(2)) {
                (None, Some(c)) => c.clone(),
                _ if *value == 0.0 => Tensor::zeros(t.dtype(), &[])?,
                _ => Tensor::scalar(*value).cast(t.dtype())?,
            };
            let pads = match pads {
                Some(p) => p.clone(),
                None => x.get(1)?.to_i64_vec()?,
            };
            let axes = x.opt(3).map(|a| a.to_i64_vec()).transpose()?;
            one(pad::pad(t, &pads, axes.as_deref(), *mode, &constant)?)
        }
        LayoutOp::Shape { start, end } => {
            let s = x.get(0)?.shape();
            let r = s.len() as i64;
            let clamp = |v: i64| (if v < 0 { v + r } else { v }).clamp(0, r) as usize;
            let (a, b) = (clamp(*start), clamp(end.unwrap_or(r)));
            let dims: Vec<i64> = s[a..b.max(a)].iter().map(|&d| d as i64).collect();
            one(Tensor::from_vec(&[dims.len()], dims)?)
        }
        LayoutOp::Size => one(Tensor::scalar(x.get(0)?.len() as i64)),
        LayoutOp::ConstantOfShape { value } => {
            let dims = x.get(0)?.to_i64_vec()?;
            let shape = crossover_core::tensor::dims_to_shape(&dims, "ConstantOfShape")?;
            let value = match value {
                Some(v) => v.0.clone(),
                None => Tensor::scalar(0f32),
            };
            if value.len() != 1 {
                return Err(invalid!(
                    "ConstantOfShape: value must hold one element, got shape {:?}",
                    value.shape()
                ));
            }
            checked_numel(&shape, value.dtype())?;
            one(map_array!(&value, v => {
                let e = v.iter().next().cloned().unwrap_or_default();
                ArrayD::from_elem(IxDyn(&shape), e).into_shared()
            }))
        }
        LayoutOp::Range => one(shape::range(x.get(0)?, x.get(1)?, x.get(2)?)?),
        LayoutOp::OneHot { axis } => one(gather::one_hot(x.get(0)?, x.get(1)?, x.get(2)?, *axis)?),
        LayoutOp::NonZero => one(shape::nonzero(x.get(0)?)),
        LayoutOp::Compress { axis } => one(shape::compress(x.get(0)?, x.get(1)?, *axis)?),
        LayoutOp::Trilu { upper } => {
            let k = match x.opt(1) {
                Some(k) => k.to_i64_vec()?.first().copied().unwrap_or(0),
                None => 0,
            };
            one(shape::trilu(x.get(0)?, k, *upper)?)
        }
        LayoutOp::EyeLike { dtype, k } => {
            let t = x.get(0)?;
            one(shape::eye_like(t, dtype.unwrap_or(t.dtype()), *k)?)
        }
        LayoutOp::DepthToSpace { block, crd } => {
            one(shape::depth_to_space(x.get(0)?, *block, *crd)?)
        }
        LayoutOp::SpaceToDepth { block, crd } => {
            one(shape::space_to_depth(x.get(0)?, *block, *crd)?)
        }
        LayoutOp::ReverseSequence {
            batch_axis,
            time_axis,
        } => one(shape::reverse_sequence(
            x.get(0)?,
            &x.get(1)?.to_i64_vec()?,
            *batch_axis,
            *time_axis,
        )?),
        LayoutOp::CenterCropPad { axes } => one(shape::center_crop_pad(
            x.get(0)?,
            &x.get(1)?.to_i64_vec()?,
            axes.as_deref(),
        )?),
        LayoutOp::TensorScatter { axis, circular } => one(gather::tensor_scatter(
            x.get(0)?,
            x.get(1)?,
            x.opt(2),
            *axis,
            *circular,
        )?),
        LayoutOp::Resize(a) | LayoutOp::Upsample(a) => one(resize::resize(a, x)?),
    }
}

/// Like [`util::norm_axis`](crate::kernels::util::norm_axis), but a scalar has no axis.
pub(crate) fn norm_axis(axis: i64, rank: usize) -> Result<usize> {
    if rank == 0 {
        return Err(invalid!("axis {axis} given for a scalar"));
    }
    crate::kernels::util::norm_axis(axis, rank)
}

/// Like [`util::norm_axes`](crate::kernels::util::norm_axes), but a scalar has no axis.
pub(crate) fn norm_axes(axes: &[i64], rank: usize) -> Result<Vec<usize>> {
    if rank == 0 && !axes.is_empty() {
        return Err(invalid!("axes {axes:?} given for a scalar"));
    }
    crate::kernels::util::norm_axes(axes, rank)
}

/// A list given as attribute (older opsets) or as an optional input.
fn list_or_input(attr: &Option<Vec<i64>>, x: &Inputs, i: usize) -> Result<Option<Vec<i64>>> {
    match attr {
        Some(a) => Ok(Some(a.clone())),
        None => x.opt(i).map(|t| t.to_i64_vec()).transpose(),
    }
}

/// A row-major array: the same buffer when it already is one.
pub(crate) fn standard<T: Element>(a: ArcArrayD<T>) -> ArcArrayD<T> {
    if a.is_standard_layout() {
        a
    } else {
        to_standard(a.view()).into_shared()
    }
}

/// A row-major copy of any view (permuted, broadcast, sliced); parallel when large.
/// It copies a last-axis lane at a time: zipped element by element, an `IxDyn` walk
/// cost more than the copy (attention's head transposes took 5% of the encoder).
pub(crate) fn to_standard<T: Element>(v: ArrayViewD<T>) -> ArrayD<T> {
    if v.len() < PARALLEL_MIN || v.ndim() == 0 {
        return v.as_standard_layout().into_owned();
    }
    let last = Axis(v.ndim() - 1);
    let mut out = ArrayD::<T>::default(v.raw_dim());
    Zip::from(out.lanes_mut(last))
        .and(v.lanes(last))
        .par_for_each(|mut o, i| o.assign(&i));
    out
}

/// Resolves ONNX Reshape's `0` (copy) and `-1` (infer) entries.
pub(crate) fn reshape_target(
    input: &[usize],
    spec: &[i64],
    allow_zero: bool,
) -> Result<Vec<usize>> {
    let mut out = Vec::with_capacity(spec.len());
    let mut infer = None;
    for (i, &d) in spec.iter().enumerate() {
        out.push(match d {
            -1 if infer.is_none() => {
                infer = Some(i);
                1
            }
            0 if !allow_zero => *input
                .get(i)
                .ok_or_else(|| invalid!("Reshape: 0 at {i} has no input dimension to copy"))?,
            d if d >= 0 => d as usize,
            _ => return Err(invalid!("Reshape: invalid target {spec:?}")),
        });
    }
    let total: usize = input.iter().product();
    if let Some(i) = infer {
        let known: usize = out.iter().product();
        if known == 0 || !total.is_multiple_of(known) {
            return Err(invalid!(
                "Reshape: cannot infer -1 in {spec:?} for input {input:?}"
            ));
        }
        out[i] = total / known;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crossover_core::op::layout::ScatterReduction;

    fn t(shape: &[usize], v: Vec<f32>) -> Tensor {
        Tensor::from_vec(shape, v).unwrap()
    }

    #[test]
    fn large_views_copy_to_row_major_in_order() {
        let a = ArrayD::from_shape_fn(IxDyn(&[4, 64, 12, 32]), |i| {
            (((i[0] * 64 + i[1]) * 12 + i[2]) * 32 + i[3]) as f32
        });
        let reversed = a.slice_each_axis(|ax| match ax.axis.index() {
            1 => ndarray::Slice::new(0, None, -1),
            _ => ndarray::Slice::from(..),
        });
        let broadcast = a.index_axis(Axis(0), 1).insert_axis(Axis(0));
        let broadcast = broadcast.broadcast(IxDyn(&[3, 64, 12, 32])).unwrap();
        let views = [
            // Heads to the front with rows kept whole, and the last axis moved away.
            a.view().permuted_axes(IxDyn(&[0, 2, 1, 3])),
            a.view().permuted_axes(IxDyn(&[0, 2, 3, 1])),
            reversed,
            broadcast,
        ];
        for (i, v) in views.into_iter().enumerate() {
            assert!(v.len() >= PARALLEL_MIN, "view {i} takes the parallel path");
            let got = to_standard(v.view());
            assert!(got.is_standard_layout(), "view {i}");
            assert_eq!(got, v.as_standard_layout(), "view {i}");
        }
    }

    fn vals(t: &Tensor) -> Vec<f64> {
        t.to_f64_vec().unwrap()
    }

    #[test]
    fn gather_rejects_out_of_range_index() {
        let data = t(&[3], vec![1., 2., 3.]);
        let idx = Tensor::from_vec(&[2], vec![-1i64, 3]).unwrap();
        let err = gather::gather(&data, &idx, 0).unwrap_err().to_string();
        assert!(err.contains('3'), "{err}");
        let idx = Tensor::from_vec(&[1], vec![-1i64]).unwrap();
        assert_eq!(vals(&gather::gather(&data, &idx, 0).unwrap()), vec![3.]);
    }

    #[test]
    fn slice_negative_step_and_clamping() {
        let data = t(&[5], vec![0., 1., 2., 3., 4.]);
        let s = shape::slice(&data, &[i64::MAX], &[i64::MIN], None, Some(&[-2])).unwrap();
        assert_eq!(vals(&s), vec![4., 2., 0.]);
        assert!(shape::slice(&data, &[0], &[1], None, Some(&[0])).is_err());
    }

    #[test]
    fn split_uneven_and_bad_sizes() {
        let data = t(&[5], vec![0., 1., 2., 3., 4.]);
        let parts = shape::split(&data, 0, None, 2).unwrap();
        assert_eq!(vals(&parts[1]), vec![3., 4.]);
        assert!(shape::split(&data, 0, Some(&[2, 2]), 2).is_err());
    }

    #[test]
    fn scatter_elements_reduces_and_checks_indices() {
        let data = t(&[3], vec![1., 1., 1.]);
        let idx = Tensor::from_vec(&[2], vec![1i64, 1]).unwrap();
        let upd = t(&[2], vec![2., 3.]);
        let out = gather::scatter_elements(&data, &idx, &upd, 0, ScatterReduction::Add).unwrap();
        assert_eq!(vals(&out), vec![1., 6., 1.]);
        let idx = Tensor::from_vec(&[2], vec![1i64, 5]).unwrap();
        assert!(gather::scatter_elements(&data, &idx, &upd, 0, ScatterReduction::None).is_err());
    }

    #[test]
    fn expand_refuses_absurd_shapes() {
        let data = t(&[1], vec![1.]);
        assert!(shape::expand(&data, &[1 << 30, 1 << 30, 1 << 30]).is_err());
        assert!(shape::expand(&data, &[-2]).is_err());
    }

    #[test]
    fn transpose_checks_perm() {
        let data = t(&[2, 3], vec![0.; 6]);
        assert!(shape::transpose(&data, Some(&[0, 0])).is_err());
        assert_eq!(shape::transpose(&data, None).unwrap().shape(), &[3, 2]);
    }

    #[test]
    fn pad_modes_and_cropping() {
        use crossover_core::op::layout::PadMode;
        let data = t(&[3], vec![1., 2., 3.]);
        let zero = Tensor::scalar(0f32);
        let p = |m, pads: &[i64]| vals(&pad::pad(&data, pads, None, m, &zero).unwrap());
        assert_eq!(
            p(PadMode::Reflect, &[2, 2]),
            vec![3., 2., 1., 2., 3., 2., 1.]
        );
        assert_eq!(p(PadMode::Edge, &[1, 1]), vec![1., 1., 2., 3., 3.]);
        assert_eq!(p(PadMode::Wrap, &[1, 1]), vec![3., 1., 2., 3., 1.]);
        assert_eq!(p(PadMode::Constant, &[-1, 1]), vec![2., 3., 0.]);
        assert!(pad::pad(&data, &[-2, -2], None, PadMode::Constant, &zero).is_err());
        assert!(pad::pad(&data, &[1], None, PadMode::Constant, &zero).is_err());
    }

    #[test]
    fn scalars_have_no_axes() {
        let s = Tensor::scalar(1f32);
        let idx = Tensor::scalar(0i64);
        assert!(gather::gather(&s, &idx, 0).is_err());
        assert!(shape::squeeze(&s, Some(&[0])).is_err());
        assert!(shape::split(&s, 0, None, 1).is_err());
        assert_eq!(shape::unsqueeze(&s, &[0]).unwrap().shape(), &[1]);
    }

    #[test]
    fn depth_space_round_trip() {
        let data = t(&[1, 8, 1, 1], (0..8).map(|v| v as f32).collect());
        for crd in [false, true] {
            let d = shape::depth_to_space(&data, 2, crd).unwrap();
            assert_eq!(d.shape(), &[1, 2, 2, 2]);
            let back = shape::space_to_depth(&d, 2, crd).unwrap();
            assert_eq!(vals(&back), vals(&data));
        }
        assert!(shape::depth_to_space(&data, 3, false).is_err());
    }

    #[test]
    fn tile_and_range() {
        let data = t(&[2], vec![1., 2.]);
        let r = Tensor::from_vec(&[1], vec![3i64]).unwrap();
        assert_eq!(
            vals(&shape::tile(&data, &r.to_i64_vec().unwrap()).unwrap()),
            vec![1., 2., 1., 2., 1., 2.]
        );
        let (s, l, d) = (
            Tensor::scalar(10i32),
            Tensor::scalar(4i32),
            Tensor::scalar(-3i32),
        );
        assert_eq!(
            shape::range(&s, &l, &d).unwrap().to_i64_vec().unwrap(),
            vec![10, 7]
        );
        assert!(shape::range(&s, &l, &Tensor::scalar(0i32)).is_err());
    }

    #[test]
    fn resize_linear_and_bad_scales() {
        use crossover_core::op::layout::*;
        let attrs = ResizeAttrs {
            mode: ResizeMode::Linear,
            nearest_mode: NearestMode::RoundPreferFloor,
            coord: CoordMode::AlignCorners,
            cubic_coeff_a: -0.75,
            exclude_outside: false,
            extrapolation_value: 0.0,
            antialias: false,
            axes: None,
            aspect: AspectPolicy::Stretch,
            roi_input: Some(1),
            scales_input: Some(2),
            sizes_input: Some(3),
            scales: None,
        };
        let data = t(&[1, 2], vec![0., 3.]);
        let sizes = Tensor::from_vec(&[2], vec![1i64, 4]).unwrap();
        let ins = [Some(&data), None, None, Some(&sizes)];
        let out = resize::resize(&attrs, &Inputs(&ins)).unwrap();
        assert_eq!(vals(&out), vec![0., 1., 2., 3.]);
        let nearest = ResizeAttrs {
            mode: ResizeMode::Nearest,
            coord: CoordMode::Asymmetric,
            ..attrs.clone()
        };
        let flags = Tensor::from_vec(&[1, 2], vec![true, false]).unwrap();
        let ins = [Some(&flags), None, None, Some(&sizes)];
        let out = resize::resize(&nearest, &Inputs(&ins)).unwrap();
        let got: Vec<bool> = out.view::<bool>().unwrap().iter().copied().collect();
        assert_eq!(got, vec![true, true, false, false]);
        let scales = Tensor::from_vec(&[2], vec![1f32, -2.]).unwrap();
        let ins = [Some(&data), None, Some(&scales), None];
        assert!(resize::resize(&attrs, &Inputs(&ins)).is_err());
    }

    #[test]
    fn large_transpose_and_expand_are_row_major() {
        let n = 300;
        let data = t(&[n, n], (0..n * n).map(|v| v as f32).collect());
        let tr = shape::transpose(&data, None).unwrap();
        let a = tr.view::<f32>().unwrap();
        assert!(a.is_standard_layout());
        assert_eq!(a[[7, 5]], (5 * n + 7) as f32);
        let col = t(&[n, 1], (0..n).map(|v| v as f32).collect());
        let e = shape::expand(&col, &[n as i64, n as i64]).unwrap();
        let e = e.view::<f32>().unwrap();
        assert!(e.is_standard_layout());
        assert_eq!(e[[9, 200]], 9.0);
    }
}
