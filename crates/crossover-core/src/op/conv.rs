//! Convolution and pooling: Conv, ConvTranspose, their integer/quantized forms, MaxPool,
//! AveragePool, LpPool, Global*Pool, MaxUnpool, Col2Im.

use super::NodeCtx;
use crate::{invalid_model, Result};

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
