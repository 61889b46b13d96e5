//! Spatial sampling: GridSample, AffineGrid and RoiAlign.

use super::NodeCtx;
use crate::{invalid_model, Result};

/// How GridSample interpolates between pixels.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SampleMode {
    Nearest,
    /// `bilinear` before opset 20.
    Linear,
    /// `bicubic` before opset 20.
    Cubic,
}

/// What GridSample reads outside the image.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PaddingMode {
    Zeros,
    Border,
    Reflection,
}

/// How RoiAlign pools the samples of one bin.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RoiPool {
    Avg,
    Max,
}

#[derive(Clone, Debug, PartialEq, strum::IntoStaticStr)]
pub enum ImageOp {
    GridSample {
        mode: SampleMode,
        padding_mode: PaddingMode,
        align_corners: bool,
    },
    AffineGrid {
        align_corners: bool,
    },
    RoiAlign {
        /// `half_pixel` shifts ROI corners by half a pixel; opset 10 did not.
        half_pixel: bool,
        mode: RoiPool,
        output_height: usize,
        output_width: usize,
        /// Samples per bin and axis; 0 picks `ceil(roi size / bins)`.
        sampling_ratio: usize,
        spatial_scale: f32,
    },
}

impl ImageOp {
    pub(crate) fn parse(cx: &NodeCtx) -> Option<Result<Self>> {
        Some(match cx.op_type() {
            "GridSample" => (|| {
                let default = if cx.opset < 20 { "bilinear" } else { "linear" };
                let mode = match cx.string_or("mode", default)?.as_str() {
                    "nearest" => SampleMode::Nearest,
                    "linear" | "bilinear" => SampleMode::Linear,
                    "cubic" | "bicubic" => SampleMode::Cubic,
                    other => return Err(invalid_model!("unknown GridSample mode {other:?}")),
                };
                let padding_mode = match cx.string_or("padding_mode", "zeros")?.as_str() {
                    "zeros" => PaddingMode::Zeros,
                    "border" => PaddingMode::Border,
                    "reflection" => PaddingMode::Reflection,
                    other => return Err(invalid_model!("unknown padding_mode {other:?}")),
                };
                Ok(Self::GridSample {
                    mode,
                    padding_mode,
                    align_corners: cx.int_or("align_corners", 0)? != 0,
                })
            })(),
            "AffineGrid" => (|| {
                Ok(Self::AffineGrid {
                    align_corners: cx.int_or("align_corners", 0)? != 0,
                })
            })(),
            "RoiAlign" => (|| {
                let default = if cx.opset < 16 {
                    "output_half_pixel"
                } else {
                    "half_pixel"
                };
                let half_pixel = match cx
                    .string_or("coordinate_transformation_mode", default)?
                    .as_str()
                {
                    "half_pixel" => true,
                    "output_half_pixel" => false,
                    other => {
                        return Err(invalid_model!(
                            "unknown coordinate_transformation_mode {other:?}"
                        ))
                    }
                };
                let mode = match cx.string_or("mode", "avg")?.as_str() {
                    "avg" => RoiPool::Avg,
                    "max" => RoiPool::Max,
                    other => return Err(invalid_model!("unknown RoiAlign mode {other:?}")),
                };
                let size = |name: &str, default: i64, min: i64| -> Result<usize> {
                    let v = cx.int_or(name, default)?;
                    if v < min {
                        return Err(invalid_model!("RoiAlign {name} must be at least {min}"));
                    }
                    usize::try_from(v).map_err(|_| invalid_model!("RoiAlign {name} {v}"))
                };
                Ok(Self::RoiAlign {
                    half_pixel,
                    mode,
                    output_height: size("output_height", 1, 1)?,
                    output_width: size("output_width", 1, 1)?,
                    sampling_ratio: size("sampling_ratio", 0, 0)?,
                    spatial_scale: cx.float_or("spatial_scale", 1.0)?,
                })
            })(),
            _ => return None,
        })
    }
}
