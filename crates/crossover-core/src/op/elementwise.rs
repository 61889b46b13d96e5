//! Elementwise ops: unary math and activations, binary arithmetic with numpy
//! broadcasting, comparisons, logic, `Where`, `Clip`, `Cast`.

use super::NodeCtx;
use crate::Result;

#[derive(Clone, Debug, PartialEq, strum::IntoStaticStr)]
pub enum ElementwiseOp {
    Relu,
    Add,
    Mul,
}

impl ElementwiseOp {
    pub(crate) fn parse(cx: &NodeCtx) -> Option<Result<Self>> {
        Some(Ok(match cx.op_type() {
            "Relu" => Self::Relu,
            "Add" => Self::Add,
            "Mul" => Self::Mul,
            _ => return None,
        }))
    }
}
