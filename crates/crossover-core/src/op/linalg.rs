//! Matrix products: MatMul, Gemm, Einsum, and their integer/quantized forms.

use super::NodeCtx;
use crate::{invalid_model, Result};

#[derive(Clone, Debug, PartialEq, strum::IntoStaticStr)]
pub enum LinalgOp {
    MatMul,
    Gemm {
        alpha: f32,
        beta: f32,
        trans_a: bool,
        trans_b: bool,
    },
    Einsum {
        equation: String,
    },
    MatMulInteger,
    QLinearMatMul,
    Det,
}

impl LinalgOp {
    pub(crate) fn parse(cx: &NodeCtx) -> Option<Result<Self>> {
        Some(match cx.op_type() {
            "MatMul" => Ok(Self::MatMul),
            "Gemm" => (|| {
                Ok(Self::Gemm {
                    alpha: cx.float_or("alpha", 1.0)?,
                    beta: cx.float_or("beta", 1.0)?,
                    trans_a: cx.int_or("transA", 0)? != 0,
                    trans_b: cx.int_or("transB", 0)? != 0,
                })
            })(),
            "Einsum" => (|| {
                let equation = cx.required("equation", cx.string("equation"))?;
                if equation.trim().is_empty() {
                    return Err(invalid_model!("Einsum equation is empty"));
                }
                Ok(Self::Einsum { equation })
            })(),
            "MatMulInteger" => Ok(Self::MatMulInteger),
            "QLinearMatMul" => Ok(Self::QLinearMatMul),
            "Det" => Ok(Self::Det),
            _ => return None,
        })
    }
}
