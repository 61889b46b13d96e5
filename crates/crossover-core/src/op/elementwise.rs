//! Elementwise ops: unary math and activations, binary arithmetic with numpy
//! broadcasting, comparisons, logic, variadic reductions, `Where`, `Clip`, `Cast`,
//! quantization.

use super::NodeCtx;
use crate::{invalid_model, DType, Result};

#[derive(Clone, Debug, PartialEq, strum::IntoStaticStr)]
pub enum ElementwiseOp {
    // Unary math.
    Abs,
    Neg,
    Sqrt,
    Exp,
    Log,
    Erf,
    Sin,
    Cos,
    Tan,
    Asin,
    Acos,
    Atan,
    Sinh,
    Cosh,
    Asinh,
    Acosh,
    Atanh,
    Ceil,
    Floor,
    /// Half to even.
    Round,
    Sign,
    Reciprocal,
    IsNaN,
    IsInf {
        detect_positive: bool,
        detect_negative: bool,
    },
    Not,
    BitwiseNot,
    // Activations.
    Tanh,
    Sigmoid,
    Relu,
    LeakyRelu {
        alpha: f32,
    },
    Elu {
        alpha: f32,
    },
    Selu {
        alpha: f32,
        gamma: f32,
    },
    Celu {
        alpha: f32,
    },
    Gelu {
        /// `approximate = "tanh"`.
        tanh: bool,
    },
    HardSigmoid {
        alpha: f32,
        beta: f32,
    },
    HardSwish,
    Softplus,
    Softsign,
    Mish,
    Shrink {
        bias: f32,
        lambd: f32,
    },
    ThresholdedRelu {
        alpha: f32,
    },
    Swish {
        alpha: f32,
    },
    // Binary, broadcasting.
    Add,
    Sub,
    Mul,
    Div,
    Pow,
    Mod {
        fmod: bool,
    },
    Equal,
    Less,
    Greater,
    LessOrEqual,
    GreaterOrEqual,
    And,
    Or,
    Xor,
    BitShift {
        left: bool,
    },
    BitwiseAnd,
    BitwiseOr,
    BitwiseXor,
    PRelu,
    // Variadic, broadcasting.
    Sum,
    Mean,
    Min,
    Max,
    Where,
    /// Bounds are attributes before opset 11, optional inputs 1 and 2 after.
    Clip {
        min: Option<f32>,
        max: Option<f32>,
    },
    Cast {
        to: DType,
        saturate: bool,
    },
    CastLike {
        saturate: bool,
    },
    BitCast {
        to: DType,
    },
    QuantizeLinear {
        axis: i64,
        saturate: bool,
        block_size: i64,
        /// Target type when no zero point says it; u8 by default.
        output_dtype: Option<DType>,
    },
    DequantizeLinear {
        axis: i64,
        block_size: i64,
        /// Output type; the scale's type by default.
        output_dtype: Option<DType>,
    },
    DynamicQuantizeLinear,
    SwiGLU {
        alpha: f32,
    },
}

/// An optional dtype attribute where 0 means "unset".
fn opt_dtype(cx: &NodeCtx, name: &str) -> Result<Option<DType>> {
    match cx.int(name)? {
        None | Some(0) => Ok(None),
        Some(c) => DType::from_onnx_code(c as i32).map(Some),
    }
}

impl ElementwiseOp {
    pub(crate) fn parse(cx: &NodeCtx) -> Option<Result<Self>> {
        use ElementwiseOp as E;
        let simple = match cx.op_type() {
            "Abs" => E::Abs,
            "Neg" => E::Neg,
            "Sqrt" => E::Sqrt,
            "Exp" => E::Exp,
            "Log" => E::Log,
            "Erf" => E::Erf,
            "Sin" => E::Sin,
            "Cos" => E::Cos,
            "Tan" => E::Tan,
            "Asin" => E::Asin,
            "Acos" => E::Acos,
            "Atan" => E::Atan,
            "Sinh" => E::Sinh,
            "Cosh" => E::Cosh,
            "Asinh" => E::Asinh,
            "Acosh" => E::Acosh,
            "Atanh" => E::Atanh,
            "Ceil" => E::Ceil,
            "Floor" => E::Floor,
            "Round" => E::Round,
            "Sign" => E::Sign,
            "Reciprocal" => E::Reciprocal,
            "IsNaN" => E::IsNaN,
            "Not" => E::Not,
            "BitwiseNot" => E::BitwiseNot,
            "Tanh" => E::Tanh,
            "Sigmoid" => E::Sigmoid,
            "Relu" => E::Relu,
            "HardSwish" => E::HardSwish,
            "Softplus" => E::Softplus,
            "Softsign" => E::Softsign,
            "Mish" => E::Mish,
            "Add" => E::Add,
            "Sub" => E::Sub,
            "Mul" => E::Mul,
            "Div" => E::Div,
            "Pow" => E::Pow,
            "Equal" => E::Equal,
            "Less" => E::Less,
            "Greater" => E::Greater,
            "LessOrEqual" => E::LessOrEqual,
            "GreaterOrEqual" => E::GreaterOrEqual,
            "And" => E::And,
            "Or" => E::Or,
            "Xor" => E::Xor,
            "BitwiseAnd" => E::BitwiseAnd,
            "BitwiseOr" => E::BitwiseOr,
            "BitwiseXor" => E::BitwiseXor,
            "PRelu" => E::PRelu,
            "Sum" => E::Sum,
            "Mean" => E::Mean,
            "Min" => E::Min,
            "Max" => E::Max,
            "Where" => E::Where,
            "DynamicQuantizeLinear" => E::DynamicQuantizeLinear,
            _ => return Self::parse_with_attrs(cx),
        };
        Some(Ok(simple))
    }

    fn parse_with_attrs(cx: &NodeCtx) -> Option<Result<Self>> {
        use ElementwiseOp as E;
        let f = |name: &str, default: f32| cx.float_or(name, default);
        let parsed = match cx.op_type() {
            "IsInf" => (|| {
                Ok(E::IsInf {
                    detect_positive: cx.int_or("detect_positive", 1)? != 0,
                    detect_negative: cx.int_or("detect_negative", 1)? != 0,
                })
            })(),
            "LeakyRelu" => f("alpha", 0.01).map(|alpha| E::LeakyRelu { alpha }),
            "Elu" => f("alpha", 1.0).map(|alpha| E::Elu { alpha }),
            "Celu" => f("alpha", 1.0).map(|alpha| E::Celu { alpha }),
            "ThresholdedRelu" => f("alpha", 1.0).map(|alpha| E::ThresholdedRelu { alpha }),
            "Swish" => f("alpha", 1.0).map(|alpha| E::Swish { alpha }),
            "SwiGLU" => f("alpha", 1.0).map(|alpha| E::SwiGLU { alpha }),
            "Selu" => (|| {
                Ok(E::Selu {
                    alpha: f("alpha", 1.673_263_2)?,
                    gamma: f("gamma", 1.050_701)?,
                })
            })(),
            "HardSigmoid" => (|| {
                Ok(E::HardSigmoid {
                    alpha: f("alpha", 0.2)?,
                    beta: f("beta", 0.5)?,
                })
            })(),
            "Shrink" => (|| {
                Ok(E::Shrink {
                    bias: f("bias", 0.0)?,
                    lambd: f("lambd", 0.5)?,
                })
            })(),
            "Gelu" => (|| match cx.string_or("approximate", "none")?.as_str() {
                "none" => Ok(E::Gelu { tanh: false }),
                "tanh" => Ok(E::Gelu { tanh: true }),
                other => Err(invalid_model!(
                    "Gelu approximate {other:?} is not none|tanh"
                )),
            })(),
            "Mod" => cx.int_or("fmod", 0).map(|v| E::Mod { fmod: v != 0 }),
            "BitShift" => (|| match cx.string("direction")?.as_deref() {
                Some("LEFT") => Ok(E::BitShift { left: true }),
                Some("RIGHT") => Ok(E::BitShift { left: false }),
                other => Err(invalid_model!(
                    "BitShift direction must be LEFT or RIGHT, got {other:?}"
                )),
            })(),
            // Before opset 11 the bounds are attributes; after, inputs 1 and 2.
            "Clip" => (|| {
                Ok(E::Clip {
                    min: cx.float("min")?,
                    max: cx.float("max")?,
                })
            })(),
            "Cast" => (|| {
                Ok(E::Cast {
                    to: cx.required("to", cx.dtype("to"))?,
                    saturate: cx.int_or("saturate", 1)? != 0,
                })
            })(),
            "CastLike" => cx
                .int_or("saturate", 1)
                .map(|s| E::CastLike { saturate: s != 0 }),
            "BitCast" => cx
                .required("to", cx.dtype("to"))
                .map(|to| E::BitCast { to }),
            "QuantizeLinear" => (|| {
                Ok(E::QuantizeLinear {
                    axis: cx.int_or("axis", 1)?,
                    saturate: cx.int_or("saturate", 1)? != 0,
                    block_size: cx.int_or("block_size", 0)?,
                    output_dtype: opt_dtype(cx, "output_dtype")?,
                })
            })(),
            "DequantizeLinear" => (|| {
                Ok(E::DequantizeLinear {
                    axis: cx.int_or("axis", 1)?,
                    block_size: cx.int_or("block_size", 0)?,
                    output_dtype: opt_dtype(cx, "output_dtype")?,
                })
            })(),
            _ => return None,
        };
        Some(parsed)
    }
}
