//! Matrix products: MatMul, Gemm, Einsum, and their integer/quantized forms.

use super::NodeCtx;
use crate::Result;

#[derive(Clone, Debug, PartialEq, strum::IntoStaticStr)]
pub enum LinalgOp {
    MatMul,
}

impl LinalgOp {
    pub(crate) fn parse(cx: &NodeCtx) -> Option<Result<Self>> {
        Some(Ok(match cx.op_type() {
            "MatMul" => Self::MatMul,
            _ => return None,
        }))
    }
}
