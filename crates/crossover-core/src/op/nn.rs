//! Neural-network ops: normalization, softmax, dropout, attention, losses.

use super::NodeCtx;
use crate::Result;

#[derive(Clone, Debug, PartialEq, strum::IntoStaticStr)]
pub enum NnOp {
    Softmax { axis: i64 },
}

impl NnOp {
    pub(crate) fn parse(cx: &NodeCtx) -> Option<Result<Self>> {
        Some(match cx.op_type() {
            "Softmax" => (|| {
                Ok(Self::Softmax {
                    axis: cx.int_or("axis", if cx.opset >= 13 { -1 } else { 1 })?,
                })
            })(),
            _ => return None,
        })
    }
}
