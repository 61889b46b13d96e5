//! Ops that move or reshape data without arithmetic: Reshape, Transpose, Concat, Slice,
//! Gather, Pad, Resize and the like.

use super::NodeCtx;
use crate::Result;

#[derive(Clone, Debug, PartialEq, strum::IntoStaticStr)]
pub enum LayoutOp {
    Identity,
    Reshape { allow_zero: bool },
}

impl LayoutOp {
    pub(crate) fn parse(cx: &NodeCtx) -> Option<Result<Self>> {
        Some(match cx.op_type() {
            "Identity" => Ok(Self::Identity),
            "Reshape" => (|| {
                Ok(Self::Reshape {
                    allow_zero: cx.int_or("allowzero", 0)? != 0,
                })
            })(),
            _ => return None,
        })
    }
}
