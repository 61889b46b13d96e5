//! Reductions and scans: Reduce*, ArgMax/ArgMin, TopK, CumSum.

use super::NodeCtx;
use crate::Result;

#[derive(Clone, Debug, PartialEq, strum::IntoStaticStr)]
pub enum ReduceOp {
    ReduceSum {
        axes: Option<Vec<i64>>,
        keep_dims: bool,
        noop_with_empty_axes: bool,
    },
}

impl ReduceOp {
    pub(crate) fn parse(cx: &NodeCtx) -> Option<Result<Self>> {
        Some(match cx.op_type() {
            "ReduceSum" => (|| {
                Ok(Self::ReduceSum {
                    axes: cx.ints("axes")?,
                    keep_dims: cx.int_or("keepdims", 1)? != 0,
                    noop_with_empty_axes: cx.int_or("noop_with_empty_axes", 0)? != 0,
                })
            })(),
            _ => return None,
        })
    }
}
