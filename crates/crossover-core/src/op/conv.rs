//! Convolution and pooling: Conv, ConvTranspose, MaxPool, AveragePool, Global*Pool.

use super::NodeCtx;
use crate::Result;

#[derive(Clone, Debug, PartialEq, strum::IntoStaticStr)]
pub enum ConvOp {
    GlobalAveragePool,
}

impl ConvOp {
    pub(crate) fn parse(cx: &NodeCtx) -> Option<Result<Self>> {
        Some(Ok(match cx.op_type() {
            "GlobalAveragePool" => Self::GlobalAveragePool,
            _ => return None,
        }))
    }
}
