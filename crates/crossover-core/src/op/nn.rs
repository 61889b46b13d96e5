//! Neural-network ops: normalization, softmax, dropout, attention, losses.

use super::NodeCtx;
use crate::{invalid_model, DType, Result};

/// How Softmax, LogSoftmax and Hardmax read `axis`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SoftmaxAxis {
    /// Before opset 13: the input is coerced to 2-D `[prod(dims[..axis]), prod(dims[axis..])]`
    /// and the op runs along the second dimension.
    Coerce2d(i64),
    /// From opset 13: the op runs along this one axis.
    Single(i64),
}

/// How a loss reduces its per-element values.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LossReduction {
    None,
    Sum,
    Mean,
}

/// Attributes of the opset-23+ `Attention` op.
#[derive(Clone, Debug, PartialEq)]
pub struct AttentionAttrs {
    pub is_causal: bool,
    /// Required for 3-D inputs (heads are packed in the hidden dimension).
    pub q_num_heads: Option<usize>,
    pub kv_num_heads: Option<usize>,
    /// 0 and 1: scores (after softcap) before the mask; 2: with the mask; 3: after softmax.
    pub qk_matmul_output_mode: i64,
    /// Defaults to `1/sqrt(head_size)`.
    pub scale: Option<f32>,
    /// Applied as `softcap * tanh(x / softcap)` when positive.
    pub softcap: f32,
    /// Dtype the softmax runs in, if given.
    pub softmax_precision: Option<DType>,
    /// Sliding window bounds; -1 leaves a side unbounded.
    pub left_window: i64,
    pub right_window: i64,
    /// Whether the node asks for `qk_matmul_output` (output 3).
    pub want_qk: bool,
}

#[derive(Clone, Debug, PartialEq, strum::IntoStaticStr)]
pub enum NnOp {
    Softmax {
        axis: SoftmaxAxis,
    },
    LogSoftmax {
        axis: SoftmaxAxis,
    },
    Hardmax {
        axis: SoftmaxAxis,
    },
    LayerNormalization {
        axis: i64,
        epsilon: f32,
    },
    RMSNormalization {
        axis: i64,
        epsilon: f32,
    },
    BatchNormalization {
        epsilon: f32,
        momentum: f32,
        /// Normalize with batch statistics and output the updated running ones.
        training: bool,
    },
    InstanceNormalization {
        epsilon: f32,
    },
    GroupNormalization {
        epsilon: f32,
        num_groups: i64,
    },
    #[allow(clippy::upper_case_acronyms)]
    LRN {
        alpha: f32,
        beta: f32,
        bias: f32,
        size: i64,
    },
    MeanVarianceNormalization {
        axes: Vec<i64>,
    },
    LpNormalization {
        axis: i64,
        p: i64,
    },
    Dropout {
        /// The attribute of opsets before 12; later ones take it as input 1.
        ratio: Option<f32>,
        /// Opsets before 7 (`is_test = 0`): training unless told otherwise.
        training_attr: bool,
        seed: Option<i64>,
    },
    Attention(Box<AttentionAttrs>),
    LinearAttention {
        q_num_heads: usize,
        kv_num_heads: usize,
        /// 0 or absent: `1/sqrt(head_size)`.
        scale: Option<f32>,
        /// Decay the state by `exp(decay)` each step (`gated`, `gated_delta`).
        gated: bool,
        /// Delta-rule correction with `beta` (`delta`, `gated_delta`).
        delta: bool,
    },
    RotaryEmbedding {
        interleaved: bool,
        rotary_embedding_dim: usize,
        num_heads: Option<usize>,
    },
    SoftmaxCrossEntropyLoss {
        reduction: LossReduction,
        ignore_index: Option<i64>,
    },
    NegativeLogLikelihoodLoss {
        reduction: LossReduction,
        ignore_index: Option<i64>,
    },
}

fn softmax_axis(cx: &NodeCtx) -> Result<SoftmaxAxis> {
    Ok(if cx.opset >= 13 {
        SoftmaxAxis::Single(cx.int_or("axis", -1)?)
    } else {
        SoftmaxAxis::Coerce2d(cx.int_or("axis", 1)?)
    })
}

fn reduction(cx: &NodeCtx) -> Result<LossReduction> {
    Ok(match cx.string_or("reduction", "mean")?.as_str() {
        "none" => LossReduction::None,
        "sum" => LossReduction::Sum,
        "mean" => LossReduction::Mean,
        other => {
            return Err(invalid_model!(
                "{}: unknown reduction {other:?}",
                cx.op_type()
            ))
        }
    })
}

fn heads(cx: &NodeCtx, name: &str) -> Result<Option<usize>> {
    cx.int(name)?
        .map(|h| {
            usize::try_from(h)
                .ok()
                .filter(|&h| h > 0)
                .ok_or_else(|| invalid_model!("{}: {name} must be positive, got {h}", cx.op_type()))
        })
        .transpose()
}

fn stash_type_f32(cx: &NodeCtx) -> Result<()> {
    // Statistics are always computed in f32 or wider; only the default is valid ONNX.
    match cx.int_or("stash_type", 1)? {
        1 => Ok(()),
        other => Err(crate::Error::Unsupported(format!(
            "{} with stash_type {other}",
            cx.op_type()
        ))),
    }
}

impl NnOp {
    pub(crate) fn parse(cx: &NodeCtx) -> Option<Result<Self>> {
        Some(match cx.op_type() {
            "Softmax" => softmax_axis(cx).map(|axis| Self::Softmax { axis }),
            "LogSoftmax" => softmax_axis(cx).map(|axis| Self::LogSoftmax { axis }),
            "Hardmax" => softmax_axis(cx).map(|axis| Self::Hardmax { axis }),
            "LayerNormalization" => (|| {
                stash_type_f32(cx)?;
                Ok(Self::LayerNormalization {
                    axis: cx.int_or("axis", -1)?,
                    epsilon: cx.float_or("epsilon", 1e-5)?,
                })
            })(),
            "RMSNormalization" => (|| {
                stash_type_f32(cx)?;
                Ok(Self::RMSNormalization {
                    axis: cx.int_or("axis", -1)?,
                    epsilon: cx.float_or("epsilon", 1e-5)?,
                })
            })(),
            "BatchNormalization" => (|| {
                let training = if cx.opset >= 14 {
                    cx.int_or("training_mode", 0)? != 0
                } else if cx.opset < 7 {
                    cx.int_or("is_test", 0)? == 0 && cx.num_outputs() > 1
                } else {
                    cx.num_outputs() > 1
                };
                Ok(Self::BatchNormalization {
                    epsilon: cx.float_or("epsilon", 1e-5)?,
                    momentum: cx.float_or("momentum", 0.9)?,
                    training,
                })
            })(),
            "InstanceNormalization" => (|| {
                Ok(Self::InstanceNormalization {
                    epsilon: cx.float_or("epsilon", 1e-5)?,
                })
            })(),
            "GroupNormalization" => (|| {
                stash_type_f32(cx)?;
                Ok(Self::GroupNormalization {
                    epsilon: cx.float_or("epsilon", 1e-5)?,
                    num_groups: cx.required("num_groups", cx.int("num_groups"))?,
                })
            })(),
            "LRN" => (|| {
                let size = cx.required("size", cx.int("size"))?;
                if size <= 0 {
                    return Err(invalid_model!("LRN: size must be positive, got {size}"));
                }
                Ok(Self::LRN {
                    alpha: cx.float_or("alpha", 1e-4)?,
                    beta: cx.float_or("beta", 0.75)?,
                    bias: cx.float_or("bias", 1.0)?,
                    size,
                })
            })(),
            "MeanVarianceNormalization" => (|| {
                Ok(Self::MeanVarianceNormalization {
                    axes: cx.ints("axes")?.unwrap_or_else(|| vec![0, 2, 3]),
                })
            })(),
            "LpNormalization" => (|| {
                let p = cx.int_or("p", 2)?;
                if p != 1 && p != 2 {
                    return Err(invalid_model!("LpNormalization: p must be 1 or 2, got {p}"));
                }
                Ok(Self::LpNormalization {
                    axis: cx.int_or("axis", -1)?,
                    p,
                })
            })(),
            "Dropout" => (|| {
                Ok(Self::Dropout {
                    ratio: if cx.opset < 12 {
                        Some(cx.float_or("ratio", 0.5)?)
                    } else {
                        None
                    },
                    training_attr: cx.opset < 7 && cx.int_or("is_test", 0)? == 0,
                    seed: cx.int("seed")?,
                })
            })(),
            "Attention" => (|| {
                let mode = cx.int_or("qk_matmul_output_mode", 0)?;
                if !(0..=3).contains(&mode) {
                    return Err(invalid_model!(
                        "Attention: qk_matmul_output_mode must be 0 to 3, got {mode}"
                    ));
                }
                let window = |name| -> Result<i64> {
                    let w = cx.int_or(name, -1)?;
                    if w < -1 {
                        return Err(invalid_model!("Attention: {name} must be >= -1, got {w}"));
                    }
                    Ok(w)
                };
                Ok(Self::Attention(Box::new(AttentionAttrs {
                    is_causal: cx.int_or("is_causal", 0)? != 0,
                    q_num_heads: heads(cx, "q_num_heads")?,
                    kv_num_heads: heads(cx, "kv_num_heads")?,
                    qk_matmul_output_mode: mode,
                    scale: cx.float("scale")?,
                    softcap: cx.float_or("softcap", 0.0)?,
                    softmax_precision: cx.dtype("softmax_precision")?,
                    left_window: window("left_window_size")?,
                    right_window: window("right_window_size")?,
                    want_qk: cx.proto.output.get(3).is_some_and(|name| !name.is_empty()),
                })))
            })(),
            "LinearAttention" => (|| {
                let (gated, delta) = match cx.string_or("update_rule", "gated_delta")?.as_str() {
                    "linear" => (false, false),
                    "gated" => (true, false),
                    "delta" => (false, true),
                    "gated_delta" => (true, true),
                    other => {
                        return Err(invalid_model!(
                            "LinearAttention: unknown update_rule {other:?}"
                        ))
                    }
                };
                let q = cx.required("q_num_heads", heads(cx, "q_num_heads"))?;
                let kv = cx.required("kv_num_heads", heads(cx, "kv_num_heads"))?;
                if q % kv != 0 {
                    return Err(invalid_model!(
                        "LinearAttention: q_num_heads {q} is not a multiple of kv_num_heads {kv}"
                    ));
                }
                Ok(Self::LinearAttention {
                    q_num_heads: q,
                    kv_num_heads: kv,
                    scale: cx.float("scale")?.filter(|&s| s != 0.0),
                    gated,
                    delta,
                })
            })(),
            "RotaryEmbedding" => (|| {
                let dim = cx.int_or("rotary_embedding_dim", 0)?;
                Ok(Self::RotaryEmbedding {
                    interleaved: cx.int_or("interleaved", 0)? != 0,
                    rotary_embedding_dim: usize::try_from(dim).map_err(|_| {
                        invalid_model!("RotaryEmbedding: negative rotary_embedding_dim {dim}")
                    })?,
                    num_heads: heads(cx, "num_heads")?,
                })
            })(),
            "SoftmaxCrossEntropyLoss" => (|| {
                Ok(Self::SoftmaxCrossEntropyLoss {
                    reduction: reduction(cx)?,
                    ignore_index: cx.int("ignore_index")?,
                })
            })(),
            "NegativeLogLikelihoodLoss" => (|| {
                Ok(Self::NegativeLogLikelihoodLoss {
                    reduction: reduction(cx)?,
                    ignore_index: cx.int("ignore_index")?,
                })
            })(),
            _ => return None,
        })
    }
}
