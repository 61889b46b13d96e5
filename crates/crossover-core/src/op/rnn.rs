//! Recurrent layers: RNN, GRU, LSTM.

use super::NodeCtx;
use crate::{invalid_model, Error, Result};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Direction {
    Forward,
    Reverse,
    Bidirectional,
}

impl Direction {
    pub fn count(self) -> usize {
        if self == Direction::Bidirectional {
            2
        } else {
            1
        }
    }
}

/// A gate activation with its `activation_alpha`/`activation_beta` resolved.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Activation {
    Relu,
    Tanh,
    Sigmoid,
    Affine { alpha: f32, beta: f32 },
    LeakyRelu { alpha: f32 },
    ThresholdedRelu { alpha: f32 },
    ScaledTanh { alpha: f32, beta: f32 },
    HardSigmoid { alpha: f32, beta: f32 },
    Elu { alpha: f32 },
    Softsign,
    Softplus,
}

impl Activation {
    pub fn apply(self, x: f32) -> f32 {
        match self {
            Activation::Relu => x.max(0.0),
            Activation::Tanh => x.tanh(),
            Activation::Sigmoid => 1.0 / (1.0 + (-x).exp()),
            Activation::Affine { alpha, beta } => alpha * x + beta,
            Activation::LeakyRelu { alpha } => {
                if x >= 0.0 {
                    x
                } else {
                    alpha * x
                }
            }
            Activation::ThresholdedRelu { alpha } => {
                if x > alpha {
                    x
                } else {
                    0.0
                }
            }
            Activation::ScaledTanh { alpha, beta } => alpha * (beta * x).tanh(),
            Activation::HardSigmoid { alpha, beta } => (alpha * x + beta).clamp(0.0, 1.0),
            Activation::Elu { alpha } => {
                if x >= 0.0 {
                    x
                } else {
                    alpha * (x.exp() - 1.0)
                }
            }
            Activation::Softsign => x / (1.0 + x.abs()),
            Activation::Softplus => {
                if x > 20.0 {
                    x
                } else {
                    x.exp().ln_1p()
                }
            }
        }
    }
}

/// Attributes shared by the three layers.
#[derive(Clone, Debug, PartialEq)]
pub struct RnnAttrs {
    pub direction: Direction,
    pub hidden_size: Option<usize>,
    /// Per direction, the layer's activations in ONNX order (f, g, h).
    pub activations: Vec<Vec<Activation>>,
    pub clip: Option<f32>,
    /// 1: inputs and outputs are batch-major.
    pub batch_major: bool,
}

/// Variant names are the ONNX op types.
#[allow(clippy::upper_case_acronyms)]
#[derive(Clone, Debug, PartialEq, strum::IntoStaticStr)]
pub enum RnnOp {
    RNN(RnnAttrs),
    GRU {
        attrs: RnnAttrs,
        linear_before_reset: bool,
    },
    LSTM {
        attrs: RnnAttrs,
        input_forget: bool,
    },
}

impl RnnOp {
    pub(crate) fn parse(cx: &NodeCtx) -> Option<Result<Self>> {
        Some(match cx.op_type() {
            "RNN" => parse_attrs(cx, &["Tanh"]).map(Self::RNN),
            "GRU" => (|| {
                Ok(Self::GRU {
                    attrs: parse_attrs(cx, &["Sigmoid", "Tanh"])?,
                    linear_before_reset: cx.int_or("linear_before_reset", 0)? != 0,
                })
            })(),
            "LSTM" => (|| {
                Ok(Self::LSTM {
                    attrs: parse_attrs(cx, &["Sigmoid", "Tanh", "Tanh"])?,
                    input_forget: cx.int_or("input_forget", 0)? != 0,
                })
            })(),
            _ => return None,
        })
    }
}

fn parse_attrs(cx: &NodeCtx, defaults: &[&str]) -> Result<RnnAttrs> {
    cx.expect_inputs(3, if defaults.len() == 3 { 8 } else { 6 })?;
    let direction = match cx.string_or("direction", "forward")?.as_str() {
        "forward" => Direction::Forward,
        "reverse" => Direction::Reverse,
        "bidirectional" => Direction::Bidirectional,
        d => return Err(invalid_model!("unknown direction {d:?}")),
    };
    let per_dir = defaults.len();
    let names: Vec<String> = match cx.strings("activations")? {
        Some(v) => v,
        None => (0..direction.count())
            .flat_map(|_| defaults.iter().map(|s| s.to_string()))
            .collect(),
    };
    // A single direction's list serves both directions when only it is given.
    let names = if names.len() == per_dir && direction.count() == 2 {
        names.iter().chain(&names).cloned().collect()
    } else {
        names
    };
    if names.len() != per_dir * direction.count() {
        return Err(invalid_model!(
            "{} needs {} activations, got {}",
            cx.op_type(),
            per_dir * direction.count(),
            names.len()
        ));
    }
    let alphas = cx.floats("activation_alpha")?.unwrap_or_default();
    let betas = cx.floats("activation_beta")?.unwrap_or_default();
    let mut acts = Vec::with_capacity(names.len());
    for (i, n) in names.iter().enumerate() {
        let a = |d: f32| alphas.get(i).copied().unwrap_or(d);
        let b = |d: f32| betas.get(i).copied().unwrap_or(d);
        acts.push(match n.to_ascii_lowercase().as_str() {
            "relu" => Activation::Relu,
            "tanh" => Activation::Tanh,
            "sigmoid" => Activation::Sigmoid,
            "affine" => Activation::Affine {
                alpha: a(1.0),
                beta: b(0.0),
            },
            "leakyrelu" => Activation::LeakyRelu { alpha: a(0.01) },
            "thresholdedrelu" => Activation::ThresholdedRelu { alpha: a(1.0) },
            "scaledtanh" => Activation::ScaledTanh {
                alpha: a(1.0),
                beta: b(1.0),
            },
            "hardsigmoid" => Activation::HardSigmoid {
                alpha: a(0.2),
                beta: b(0.5),
            },
            "elu" => Activation::Elu { alpha: a(1.0) },
            "softsign" => Activation::Softsign,
            "softplus" => Activation::Softplus,
            _ => return Err(Error::Unsupported(format!("activation {n:?}"))),
        });
    }
    let hidden_size = cx
        .int("hidden_size")?
        .map(|h| usize::try_from(h).map_err(|_| invalid_model!("hidden_size {h} is negative")))
        .transpose()?;
    Ok(RnnAttrs {
        direction,
        hidden_size,
        activations: acts.chunks(per_dir).map(<[_]>::to_vec).collect(),
        clip: cx.float("clip")?,
        batch_major: cx.int_or("layout", 0)? != 0,
    })
}
