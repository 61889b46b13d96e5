//! Ops that move or reshape data without arithmetic: Reshape, Transpose, Concat, Slice,
//! Gather, Pad, Resize and the like.

use super::NodeCtx;
use crate::{invalid, invalid_model, with_array, DType, Result, Tensor};

/// How a scatter combines an update with the value already there.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ScatterReduction {
    None,
    Add,
    Mul,
    Max,
    Min,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PadMode {
    Constant,
    Reflect,
    Edge,
    Wrap,
}

/// A tensor-valued attribute (ConstantOfShape's `value`), compared by content.
#[derive(Clone, Debug)]
pub struct TensorAttr(pub Tensor);

impl PartialEq for TensorAttr {
    fn eq(&self, other: &Self) -> bool {
        self.0.dtype() == other.0.dtype()
            && self.0.shape() == other.0.shape()
            && format!(
                "{:?}",
                with_array!(&self.0, a => a.iter().map(|v| format!("{v:?}")).collect::<Vec<_>>())
            ) == format!(
                "{:?}",
                with_array!(&other.0, a => a.iter().map(|v| format!("{v:?}")).collect::<Vec<_>>())
            )
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ResizeMode {
    Nearest,
    Linear,
    Cubic,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NearestMode {
    RoundPreferFloor,
    RoundPreferCeil,
    Floor,
    Ceil,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CoordMode {
    HalfPixel,
    HalfPixelSymmetric,
    PytorchHalfPixel,
    AlignCorners,
    Asymmetric,
    TfCropAndResize,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AspectPolicy {
    Stretch,
    NotLarger,
    NotSmaller,
}

/// Resize (and Upsample) settings, resolved for the opset.
#[derive(Clone, Debug, PartialEq)]
pub struct ResizeAttrs {
    pub mode: ResizeMode,
    pub nearest_mode: NearestMode,
    pub coord: CoordMode,
    pub cubic_coeff_a: f32,
    pub exclude_outside: bool,
    pub extrapolation_value: f32,
    pub antialias: bool,
    pub axes: Option<Vec<i64>>,
    pub aspect: AspectPolicy,
    /// Input slots of roi, scales and sizes (`None` where the opset has no such input).
    pub roi_input: Option<usize>,
    pub scales_input: Option<usize>,
    pub sizes_input: Option<usize>,
    /// Upsample-7's `scales` attribute.
    pub scales: Option<Vec<f32>>,
}

#[derive(Clone, Debug, PartialEq, strum::IntoStaticStr)]
pub enum LayoutOp {
    Identity,
    Reshape {
        allow_zero: bool,
    },
    Flatten {
        axis: i64,
    },
    Transpose {
        perm: Option<Vec<i64>>,
    },
    /// `axes` from the attribute (before opset 13); otherwise from input 1.
    Squeeze {
        axes: Option<Vec<i64>>,
    },
    Unsqueeze {
        axes: Option<Vec<i64>>,
    },
    Concat {
        axis: i64,
    },
    Split {
        axis: i64,
        /// From the attribute (before opset 13); otherwise from input 1.
        split: Option<Vec<i64>>,
        num_outputs: usize,
    },
    /// Attributes before opset 10; inputs after.
    Slice {
        starts: Option<Vec<i64>>,
        ends: Option<Vec<i64>>,
        axes: Option<Vec<i64>>,
    },
    Gather {
        axis: i64,
    },
    GatherElements {
        axis: i64,
    },
    GatherND {
        batch_dims: i64,
    },
    ScatterElements {
        axis: i64,
        reduction: ScatterReduction,
    },
    ScatterND {
        reduction: ScatterReduction,
    },
    Scatter {
        axis: i64,
    },
    Expand,
    Tile,
    /// `pads` and `value` from attributes before opset 11; inputs after.
    Pad {
        mode: PadMode,
        pads: Option<Vec<i64>>,
        value: f32,
    },
    Shape {
        start: i64,
        end: Option<i64>,
    },
    Size,
    ConstantOfShape {
        value: Option<TensorAttr>,
    },
    Range,
    OneHot {
        axis: i64,
    },
    NonZero,
    Compress {
        axis: Option<i64>,
    },
    Trilu {
        upper: bool,
    },
    EyeLike {
        dtype: Option<DType>,
        k: i64,
    },
    DepthToSpace {
        block: usize,
        crd: bool,
    },
    SpaceToDepth {
        block: usize,
        crd: bool,
    },
    ReverseSequence {
        batch_axis: i64,
        time_axis: i64,
    },
    CenterCropPad {
        axes: Option<Vec<i64>>,
    },
    TensorScatter {
        axis: i64,
        circular: bool,
    },
    Resize(Box<ResizeAttrs>),
    Upsample(Box<ResizeAttrs>),
}

fn reduction(cx: &NodeCtx) -> Result<ScatterReduction> {
    Ok(match cx.string_or("reduction", "none")?.as_str() {
        "none" => ScatterReduction::None,
        "add" => ScatterReduction::Add,
        "mul" => ScatterReduction::Mul,
        "max" => ScatterReduction::Max,
        "min" => ScatterReduction::Min,
        r => return Err(invalid_model!("{}: unknown reduction {r:?}", cx.op_type())),
    })
}

fn block(cx: &NodeCtx) -> Result<usize> {
    let b = cx.required("blocksize", cx.int("blocksize"))?;
    if b <= 0 {
        return Err(invalid_model!(
            "{}: blocksize must be positive",
            cx.op_type()
        ));
    }
    Ok(b as usize)
}

fn is_crd(cx: &NodeCtx) -> Result<bool> {
    match cx.string_or("mode", "DCR")?.as_str() {
        "DCR" => Ok(false),
        "CRD" => Ok(true),
        m => Err(invalid_model!("{}: unknown mode {m:?}", cx.op_type())),
    }
}

fn resize_attrs(cx: &NodeCtx, upsample: bool) -> Result<ResizeAttrs> {
    let mode = match cx.string_or("mode", "nearest")?.as_str() {
        "nearest" => ResizeMode::Nearest,
        "linear" | "bilinear" | "trilinear" => ResizeMode::Linear,
        "cubic" => ResizeMode::Cubic,
        m => return Err(invalid_model!("{}: unknown mode {m:?}", cx.op_type())),
    };
    // Upsample and Resize-10 index with `floor(x_out / scale)`.
    let old = upsample || cx.opset < 11;
    let nearest_mode = if old {
        NearestMode::Floor
    } else {
        match cx.string_or("nearest_mode", "round_prefer_floor")?.as_str() {
            "round_prefer_floor" => NearestMode::RoundPreferFloor,
            "round_prefer_ceil" => NearestMode::RoundPreferCeil,
            "floor" => NearestMode::Floor,
            "ceil" => NearestMode::Ceil,
            m => return Err(invalid_model!("Resize: unknown nearest_mode {m:?}")),
        }
    };
    let coord = if old {
        CoordMode::Asymmetric
    } else {
        match cx
            .string_or("coordinate_transformation_mode", "half_pixel")?
            .as_str()
        {
            "half_pixel" => CoordMode::HalfPixel,
            "half_pixel_symmetric" => CoordMode::HalfPixelSymmetric,
            "pytorch_half_pixel" => CoordMode::PytorchHalfPixel,
            "align_corners" => CoordMode::AlignCorners,
            "asymmetric" => CoordMode::Asymmetric,
            "tf_crop_and_resize" => CoordMode::TfCropAndResize,
            m => {
                return Err(invalid_model!(
                    "Resize: unknown coordinate_transformation_mode {m:?}"
                ))
            }
        }
    };
    let aspect = match cx
        .string_or("keep_aspect_ratio_policy", "stretch")?
        .as_str()
    {
        "stretch" => AspectPolicy::Stretch,
        "not_larger" => AspectPolicy::NotLarger,
        "not_smaller" => AspectPolicy::NotSmaller,
        m => {
            return Err(invalid_model!(
                "Resize: unknown keep_aspect_ratio_policy {m:?}"
            ))
        }
    };
    let (roi_input, scales_input, sizes_input, scales) = if upsample {
        if cx.opset < 9 {
            (None, None, None, cx.floats("scales")?)
        } else {
            (None, Some(1), None, None)
        }
    } else if cx.opset < 11 {
        (None, Some(1), None, None)
    } else {
        (Some(1), Some(2), Some(3), None)
    };
    Ok(ResizeAttrs {
        mode,
        nearest_mode,
        coord,
        cubic_coeff_a: cx.float_or("cubic_coeff_a", -0.75)?,
        exclude_outside: cx.int_or("exclude_outside", 0)? != 0,
        extrapolation_value: cx.float_or("extrapolation_value", 0.0)?,
        antialias: cx.int_or("antialias", 0)? != 0,
        axes: cx.ints("axes")?,
        aspect,
        roi_input,
        scales_input,
        sizes_input,
        scales,
    })
}

const OPS: &[&str] = &[
    "Identity",
    "Reshape",
    "Flatten",
    "Transpose",
    "Squeeze",
    "Unsqueeze",
    "Concat",
    "Split",
    "Slice",
    "Gather",
    "GatherElements",
    "GatherND",
    "ScatterElements",
    "ScatterND",
    "Scatter",
    "Expand",
    "Tile",
    "Pad",
    "Shape",
    "Size",
    "ConstantOfShape",
    "Range",
    "OneHot",
    "NonZero",
    "Compress",
    "Trilu",
    "EyeLike",
    "DepthToSpace",
    "SpaceToDepth",
    "ReverseSequence",
    "CenterCropPad",
    "TensorScatter",
    "Resize",
    "Upsample",
];

impl LayoutOp {
    pub(crate) fn parse(cx: &NodeCtx) -> Option<Result<Self>> {
        if !OPS.contains(&cx.op_type()) {
            return None;
        }
        Some((|| -> Result<Self> {
            Ok(match cx.op_type() {
                "Identity" => Self::Identity,
                "Reshape" => Self::Reshape {
                    allow_zero: cx.int_or("allowzero", 0)? != 0,
                },
                "Flatten" => Self::Flatten {
                    axis: cx.int_or("axis", 1)?,
                },
                "Transpose" => Self::Transpose {
                    perm: cx.ints("perm")?,
                },
                "Squeeze" => Self::Squeeze {
                    axes: if cx.opset < 13 {
                        cx.ints("axes")?
                    } else {
                        None
                    },
                },
                "Unsqueeze" => Self::Unsqueeze {
                    axes: if cx.opset < 13 {
                        cx.ints("axes")?
                    } else {
                        None
                    },
                },
                "Concat" => Self::Concat {
                    axis: cx.required("axis", cx.int("axis"))?,
                },
                "Split" => {
                    let num_outputs = match cx.int("num_outputs")? {
                        Some(n) if n > 0 => n as usize,
                        Some(_) => {
                            return Err(invalid_model!("Split: num_outputs must be positive"))
                        }
                        None => cx.num_outputs(),
                    };
                    Self::Split {
                        axis: cx.int_or("axis", 0)?,
                        split: if cx.opset < 13 {
                            cx.ints("split")?
                        } else {
                            None
                        },
                        num_outputs,
                    }
                }
                "Slice" => {
                    if cx.opset < 10 {
                        Self::Slice {
                            starts: Some(cx.required("starts", cx.ints("starts"))?),
                            ends: Some(cx.required("ends", cx.ints("ends"))?),
                            axes: cx.ints("axes")?,
                        }
                    } else {
                        Self::Slice {
                            starts: None,
                            ends: None,
                            axes: None,
                        }
                    }
                }
                "Gather" => Self::Gather {
                    axis: cx.int_or("axis", 0)?,
                },
                "GatherElements" => Self::GatherElements {
                    axis: cx.int_or("axis", 0)?,
                },
                "GatherND" => Self::GatherND {
                    batch_dims: cx.int_or("batch_dims", 0)?,
                },
                "ScatterElements" => Self::ScatterElements {
                    axis: cx.int_or("axis", 0)?,
                    reduction: reduction(cx)?,
                },
                "ScatterND" => Self::ScatterND {
                    reduction: reduction(cx)?,
                },
                "Scatter" => Self::Scatter {
                    axis: cx.int_or("axis", 0)?,
                },
                "Expand" => Self::Expand,
                "Tile" => Self::Tile,
                "Pad" => {
                    let mode = match cx.string_or("mode", "constant")?.as_str() {
                        "constant" => PadMode::Constant,
                        "reflect" => PadMode::Reflect,
                        "edge" => PadMode::Edge,
                        "wrap" => PadMode::Wrap,
                        m => return Err(invalid_model!("Pad: unknown mode {m:?}")),
                    };
                    let pads = if cx.opset < 11 {
                        Some(match cx.ints("pads")? {
                            Some(p) => p,
                            None => cx.required("pads", cx.ints("paddings"))?,
                        })
                    } else {
                        None
                    };
                    Self::Pad {
                        mode,
                        pads,
                        value: cx.float_or("value", 0.0)?,
                    }
                }
                "Shape" => Self::Shape {
                    start: cx.int_or("start", 0)?,
                    end: cx.int("end")?,
                },
                "Size" => Self::Size,
                "ConstantOfShape" => Self::ConstantOfShape {
                    value: cx.tensor("value")?.map(TensorAttr),
                },
                "Range" => Self::Range,
                "OneHot" => Self::OneHot {
                    axis: cx.int_or("axis", -1)?,
                },
                "NonZero" => Self::NonZero,
                "Compress" => Self::Compress {
                    axis: cx.int("axis")?,
                },
                "Trilu" => Self::Trilu {
                    upper: cx.int_or("upper", 1)? != 0,
                },
                "EyeLike" => Self::EyeLike {
                    dtype: cx.dtype("dtype")?,
                    k: cx.int_or("k", 0)?,
                },
                "DepthToSpace" => Self::DepthToSpace {
                    block: block(cx)?,
                    crd: is_crd(cx)?,
                },
                "SpaceToDepth" => Self::SpaceToDepth {
                    block: block(cx)?,
                    crd: is_crd(cx)?,
                },
                "ReverseSequence" => Self::ReverseSequence {
                    batch_axis: cx.int_or("batch_axis", 1)?,
                    time_axis: cx.int_or("time_axis", 0)?,
                },
                "CenterCropPad" => Self::CenterCropPad {
                    axes: cx.ints("axes")?,
                },
                "TensorScatter" => Self::TensorScatter {
                    axis: cx.int_or("axis", -2)?,
                    circular: match cx.string_or("mode", "linear")?.as_str() {
                        "linear" => false,
                        "circular" => true,
                        m => return Err(invalid_model!("TensorScatter: unknown mode {m:?}")),
                    },
                },
                "Resize" => Self::Resize(Box::new(resize_attrs(cx, false)?)),
                "Upsample" => Self::Upsample(Box::new(resize_attrs(cx, true)?)),
                other => return Err(invalid_model!("{other} is not a layout op")),
            })
        })())
    }
}

/// The elements a Slice takes along an axis of size `dim`: the half-open range `lo..hi`,
/// walked from `lo` with a positive `step`, or back from `hi - 1` with a negative one.
pub fn slice_range(dim: i64, start: i64, end: i64, step: i64) -> (i64, i64) {
    let fix = |v: i64| if v < 0 { v.saturating_add(dim) } else { v };
    let (start, end) = (fix(start), fix(end));
    if step > 0 {
        let s = start.clamp(0, dim);
        (s, end.clamp(0, dim).max(s))
    } else {
        // Visits start, start+step, … while > end: the range (end, start] backwards.
        let s = start.clamp(-1, dim - 1);
        let e = end.clamp(-1, dim - 1);
        (e + 1, (s + 1).max(e + 1))
    }
}

/// How many elements `slice_range` with `step` yields.
pub fn slice_len(lo: i64, hi: i64, step: i64) -> usize {
    let n = (hi - lo).max(0) as u64;
    n.div_ceil(step.unsigned_abs()) as usize
}

/// The sizes Split cuts an axis of size `dim` into: the explicit `split`, or
/// `num_outputs` equal chunks with the last one smaller when `dim` does not divide.
pub fn split_sizes(dim: usize, split: Option<&[i64]>, num_outputs: usize) -> Result<Vec<usize>> {
    match split {
        Some(s) => {
            let sizes = crate::tensor::dims_to_shape(s, "Split")?;
            if sizes.iter().sum::<usize>() != dim {
                return Err(invalid!(
                    "Split: sizes {sizes:?} do not add up to dimension {dim}"
                ));
            }
            Ok(sizes)
        }
        None => {
            if num_outputs == 0 {
                return Err(invalid!("Split needs at least one output"));
            }
            let chunk = dim.div_ceil(num_outputs);
            Ok((0..num_outputs)
                .map(|i| chunk.min(dim.saturating_sub(i * chunk)))
                .collect())
        }
    }
}
