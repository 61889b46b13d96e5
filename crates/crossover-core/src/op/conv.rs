//! Convolution and pooling: Conv, ConvTranspose, their integer/quantized forms, MaxPool,
//! AveragePool, LpPool, Global*Pool, MaxUnpool, Col2Im.

use super::NodeCtx;
use crate::{invalid, invalid_model, Result};

/// How a convolution or pooling window pads its input.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum AutoPad {
    /// Explicit `pads`.
    #[default]
    NotSet,
    /// Output size `ceil(in / stride)`; an odd padding goes at the end.
    SameUpper,
    /// Output size `ceil(in / stride)`; an odd padding goes at the start.
    SameLower,
    /// No padding.
    Valid,
}

impl AutoPad {
    fn parse(cx: &NodeCtx) -> Result<Self> {
        Ok(match cx.string_or("auto_pad", "NOTSET")?.as_str() {
            "NOTSET" | "" => Self::NotSet,
            "SAME_UPPER" => Self::SameUpper,
            "SAME_LOWER" => Self::SameLower,
            "VALID" => Self::Valid,
            other => return Err(invalid_model!("unknown auto_pad {other:?}")),
        })
    }
}

/// The window attributes convolutions share. Absent lists take their defaults (ones,
/// zeros, the kernel's shape from `W`) in the kernel, once the rank is known.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Window {
    pub auto_pad: AutoPad,
    pub kernel_shape: Option<Vec<i64>>,
    pub dilations: Option<Vec<i64>>,
    pub pads: Option<Vec<i64>>,
    pub strides: Option<Vec<i64>>,
}

impl Window {
    fn parse(cx: &NodeCtx) -> Result<Self> {
        Ok(Self {
            auto_pad: AutoPad::parse(cx)?,
            kernel_shape: cx.ints("kernel_shape")?,
            dilations: cx.ints("dilations")?,
            pads: cx.ints("pads")?,
            strides: cx.ints("strides")?,
        })
    }
}

/// A window resolved against an image: positions per spatial axis and the padding
/// that gives them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ResolvedWindow {
    /// Number of window positions per axis.
    pub grid: Vec<usize>,
    pub strides: Vec<usize>,
    pub dilations: Vec<usize>,
    /// Padding before each axis (negative: the window starts inside the image).
    pub pad_begin: Vec<isize>,
    /// Padding after each axis.
    pub pad_end: Vec<isize>,
}

impl Window {
    /// The window a convolution or pooling with these attributes slides over the spatial
    /// axes `image` with a kernel of spatial shape `kernel`.
    pub fn resolve(
        &self,
        image: &[usize],
        kernel: &[usize],
        ceil_mode: bool,
    ) -> Result<ResolvedWindow> {
        let n = image.len();
        if kernel.len() != n {
            return Err(invalid!(
                "kernel of {} axes for an image of {n} spatial axes",
                kernel.len()
            ));
        }
        if let Some(ks) = &self.kernel_shape {
            if ks.len() != n || ks.iter().zip(kernel).any(|(&a, &b)| a != b as i64) {
                return Err(invalid!(
                    "kernel_shape {ks:?} does not match the kernel {kernel:?}"
                ));
            }
        }
        let strides = axis_list(self.strides.as_deref(), n, 1, "strides", 1)?;
        let dilations = axis_list(self.dilations.as_deref(), n, 1, "dilations", 1)?;
        let pads = axis_list(self.pads.as_deref(), 2 * n, 0, "pads", 0)?;
        let mut g = ResolvedWindow {
            grid: vec![0; n],
            strides,
            dilations,
            pad_begin: vec![0; n],
            pad_end: vec![0; n],
        };
        for d in 0..n {
            let (i, s) = (image[d] as isize, g.strides[d] as isize);
            let span = ((kernel[d] as isize) - 1) * g.dilations[d] as isize + 1;
            if kernel[d] == 0 {
                return Err(invalid!("kernel {kernel:?} has an empty axis"));
            }
            let (out, pb, pe) = match self.auto_pad {
                AutoPad::NotSet => {
                    let (pb, pe) = (pads[d] as isize, pads[n + d] as isize);
                    let room = i + pb + pe - span;
                    if room < 0 {
                        return Err(invalid!(
                            "window of span {span} does not fit axis {d} of size {i} with pads ({pb}, {pe})"
                        ));
                    }
                    let mut out = if ceil_mode {
                        (room + s - 1) / s + 1
                    } else {
                        room / s + 1
                    };
                    // The last window must start inside the image or its leading pad.
                    if ceil_mode && (out - 1) * s >= i + pb {
                        out -= 1;
                    }
                    (out, pb, pe)
                }
                AutoPad::Valid => {
                    if i < span {
                        return Err(invalid!(
                            "window of span {span} does not fit axis {d} of size {i}"
                        ));
                    }
                    ((i - span) / s + 1, 0, 0)
                }
                AutoPad::SameUpper | AutoPad::SameLower => {
                    let out = (i + s - 1) / s;
                    let total = ((out - 1) * s + span - i).max(0);
                    let small = total / 2;
                    if self.auto_pad == AutoPad::SameUpper {
                        (out, small, total - small)
                    } else {
                        (out, total - small, small)
                    }
                }
            };
            g.grid[d] = out.max(0) as usize;
            g.pad_begin[d] = pb;
            g.pad_end[d] = pe;
        }
        Ok(g)
    }
}

/// A per-axis list attribute, defaulted and checked to hold `n` values of at least `min`.
pub fn axis_list(
    v: Option<&[i64]>,
    n: usize,
    default: usize,
    name: &str,
    min: i64,
) -> Result<Vec<usize>> {
    match v {
        None => Ok(vec![default; n]),
        Some(v) if v.len() != n => Err(invalid!(
            "{name} has {} values for {n} spatial axes",
            v.len()
        )),
        Some(v) => v
            .iter()
            .map(|&x| {
                if x < min {
                    Err(invalid!("{name} value {x} is below {min}"))
                } else {
                    usize::try_from(x).map_err(|_| invalid!("{name} value {x} is invalid"))
                }
            })
            .collect(),
    }
}

/// Convolution attributes: the window and the group count.
#[derive(Clone, Debug, PartialEq)]
pub struct ConvAttrs {
    pub window: Window,
    pub group: i64,
}

impl ConvAttrs {
    fn parse(cx: &NodeCtx) -> Result<Self> {
        let group = cx.int_or("group", 1)?;
        if group < 1 {
            return Err(invalid_model!("group must be positive, got {group}"));
        }
        Ok(Self {
            window: Window::parse(cx)?,
            group,
        })
    }
}

/// Pooling attributes: the window (whose `kernel_shape` is required) and `ceil_mode`.
#[derive(Clone, Debug, PartialEq)]
pub struct PoolAttrs {
    pub window: Window,
    pub ceil_mode: bool,
}

impl PoolAttrs {
    fn parse(cx: &NodeCtx) -> Result<Self> {
        let window = Window::parse(cx)?;
        if window.kernel_shape.is_none() {
            return Err(invalid_model!(
                "{} needs attribute \"kernel_shape\"",
                cx.op_type()
            ));
        }
        Ok(Self {
            window,
            ceil_mode: cx.int_or("ceil_mode", 0)? != 0,
        })
    }
}

#[derive(Clone, Debug, PartialEq, strum::IntoStaticStr)]
pub enum ConvOp {
    Conv(ConvAttrs),
    ConvInteger(ConvAttrs),
    QLinearConv(ConvAttrs),
    ConvTranspose {
        conv: ConvAttrs,
        output_padding: Option<Vec<i64>>,
        output_shape: Option<Vec<i64>>,
    },
    MaxPool {
        pool: PoolAttrs,
        /// Indices count column-major within each image.
        column_major: bool,
    },
    AveragePool {
        pool: PoolAttrs,
        count_include_pad: bool,
    },
    LpPool {
        pool: PoolAttrs,
        p: i64,
    },
    GlobalAveragePool,
    GlobalMaxPool,
    GlobalLpPool {
        p: i64,
    },
    MaxUnpool {
        kernel_shape: Vec<i64>,
        pads: Option<Vec<i64>>,
        strides: Option<Vec<i64>>,
    },
    Col2Im {
        dilations: Option<Vec<i64>>,
        pads: Option<Vec<i64>>,
        strides: Option<Vec<i64>>,
    },
    /// Input channels split into `offset_group` groups, each with its own offsets and mask.
    DeformConv {
        conv: ConvAttrs,
        offset_group: i64,
    },
    /// Depthwise causal 1-D convolution that carries its last `k - 1` input positions.
    CausalConvWithState {
        /// Fused SiLU (`activation` "silu" or "swish") on the output.
        silu: bool,
    },
}

impl ConvOp {
    pub(crate) fn parse(cx: &NodeCtx) -> Option<Result<Self>> {
        Some(match cx.op_type() {
            "Conv" => ConvAttrs::parse(cx).map(Self::Conv),
            "ConvInteger" => ConvAttrs::parse(cx).map(Self::ConvInteger),
            "QLinearConv" => ConvAttrs::parse(cx).map(Self::QLinearConv),
            "ConvTranspose" => (|| {
                Ok(Self::ConvTranspose {
                    conv: ConvAttrs::parse(cx)?,
                    output_padding: cx.ints("output_padding")?,
                    output_shape: cx.ints("output_shape")?,
                })
            })(),
            "MaxPool" => (|| {
                Ok(Self::MaxPool {
                    pool: PoolAttrs::parse(cx)?,
                    column_major: cx.int_or("storage_order", 0)? != 0,
                })
            })(),
            "AveragePool" => (|| {
                Ok(Self::AveragePool {
                    pool: PoolAttrs::parse(cx)?,
                    count_include_pad: cx.int_or("count_include_pad", 0)? != 0,
                })
            })(),
            "LpPool" => (|| {
                Ok(Self::LpPool {
                    pool: PoolAttrs::parse(cx)?,
                    p: cx.int_or("p", 2)?,
                })
            })(),
            "GlobalAveragePool" => Ok(Self::GlobalAveragePool),
            "GlobalMaxPool" => Ok(Self::GlobalMaxPool),
            "GlobalLpPool" => (|| {
                Ok(Self::GlobalLpPool {
                    p: cx.int_or("p", 2)?,
                })
            })(),
            "MaxUnpool" => (|| {
                Ok(Self::MaxUnpool {
                    kernel_shape: cx.required("kernel_shape", cx.ints("kernel_shape"))?,
                    pads: cx.ints("pads")?,
                    strides: cx.ints("strides")?,
                })
            })(),
            "Col2Im" => (|| {
                Ok(Self::Col2Im {
                    dilations: cx.ints("dilations")?,
                    pads: cx.ints("pads")?,
                    strides: cx.ints("strides")?,
                })
            })(),
            "DeformConv" => (|| {
                let offset_group = cx.int_or("offset_group", 1)?;
                if offset_group < 1 {
                    return Err(invalid_model!(
                        "offset_group must be positive, got {offset_group}"
                    ));
                }
                Ok(Self::DeformConv {
                    conv: ConvAttrs::parse(cx)?,
                    offset_group,
                })
            })(),
            "CausalConvWithState" => (|| {
                let silu = match cx.string_or("activation", "none")?.as_str() {
                    "none" => false,
                    "silu" | "swish" => true,
                    other => {
                        return Err(invalid_model!(
                            "unknown CausalConvWithState activation {other:?}"
                        ))
                    }
                };
                Ok(Self::CausalConvWithState { silu })
            })(),
            _ => return None,
        })
    }
}
