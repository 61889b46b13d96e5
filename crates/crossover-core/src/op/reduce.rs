//! Reductions and scans: Reduce*, ArgMax/ArgMin, TopK, CumSum/CumProd, Unique and
//! NonMaxSuppression.

use super::NodeCtx;
use crate::Result;

#[derive(Clone, Debug, PartialEq, strum::IntoStaticStr)]
pub enum ReduceOp {
    ReduceSum {
        axes: Option<Vec<i64>>,
        keep_dims: bool,
        noop_with_empty_axes: bool,
    },
    ReduceMean {
        axes: Option<Vec<i64>>,
        keep_dims: bool,
        noop_with_empty_axes: bool,
    },
    ReduceMax {
        axes: Option<Vec<i64>>,
        keep_dims: bool,
        noop_with_empty_axes: bool,
    },
    ReduceMin {
        axes: Option<Vec<i64>>,
        keep_dims: bool,
        noop_with_empty_axes: bool,
    },
    ReduceProd {
        axes: Option<Vec<i64>>,
        keep_dims: bool,
        noop_with_empty_axes: bool,
    },
    ReduceL1 {
        axes: Option<Vec<i64>>,
        keep_dims: bool,
        noop_with_empty_axes: bool,
    },
    ReduceL2 {
        axes: Option<Vec<i64>>,
        keep_dims: bool,
        noop_with_empty_axes: bool,
    },
    ReduceLogSum {
        axes: Option<Vec<i64>>,
        keep_dims: bool,
        noop_with_empty_axes: bool,
    },
    ReduceLogSumExp {
        axes: Option<Vec<i64>>,
        keep_dims: bool,
        noop_with_empty_axes: bool,
    },
    ReduceSumSquare {
        axes: Option<Vec<i64>>,
        keep_dims: bool,
        noop_with_empty_axes: bool,
    },
    ArgMax {
        axis: i64,
        keep_dims: bool,
        select_last_index: bool,
    },
    ArgMin {
        axis: i64,
        keep_dims: bool,
        select_last_index: bool,
    },
    /// `k` is the attribute of opset 1; later opsets take it as input 1.
    TopK {
        axis: i64,
        k: Option<i64>,
        largest: bool,
        sorted: bool,
    },
    CumSum {
        exclusive: bool,
        reverse: bool,
    },
    CumProd {
        exclusive: bool,
        reverse: bool,
    },
    Unique {
        axis: Option<i64>,
        sorted: bool,
    },
    NonMaxSuppression {
        center_point_box: bool,
    },
}

/// The attributes every `Reduce*` op shares.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Reduction<'a> {
    /// From the attribute (before opset 18 for most); otherwise from input 1.
    pub axes: Option<&'a [i64]>,
    pub keep_dims: bool,
    pub noop_with_empty_axes: bool,
}

impl ReduceOp {
    /// The shared attributes, for the `Reduce*` ops.
    pub fn reduction(&self) -> Option<Reduction<'_>> {
        use ReduceOp as R;
        match self {
            R::ReduceSum {
                axes,
                keep_dims,
                noop_with_empty_axes,
            }
            | R::ReduceMean {
                axes,
                keep_dims,
                noop_with_empty_axes,
            }
            | R::ReduceMax {
                axes,
                keep_dims,
                noop_with_empty_axes,
            }
            | R::ReduceMin {
                axes,
                keep_dims,
                noop_with_empty_axes,
            }
            | R::ReduceProd {
                axes,
                keep_dims,
                noop_with_empty_axes,
            }
            | R::ReduceL1 {
                axes,
                keep_dims,
                noop_with_empty_axes,
            }
            | R::ReduceL2 {
                axes,
                keep_dims,
                noop_with_empty_axes,
            }
            | R::ReduceLogSum {
                axes,
                keep_dims,
                noop_with_empty_axes,
            }
            | R::ReduceLogSumExp {
                axes,
                keep_dims,
                noop_with_empty_axes,
            }
            | R::ReduceSumSquare {
                axes,
                keep_dims,
                noop_with_empty_axes,
            } => Some(Reduction {
                axes: axes.as_deref(),
                keep_dims: *keep_dims,
                noop_with_empty_axes: *noop_with_empty_axes,
            }),
            _ => None,
        }
    }

    pub(crate) fn parse(cx: &NodeCtx) -> Option<Result<Self>> {
        let op = cx.op_type();
        Some(match op {
            "ReduceSum" | "ReduceMean" | "ReduceMax" | "ReduceMin" | "ReduceProd" | "ReduceL1"
            | "ReduceL2" | "ReduceLogSum" | "ReduceLogSumExp" | "ReduceSumSquare" => (|| {
                let axes = cx.ints("axes")?;
                let keep_dims = cx.int_or("keepdims", 1)? != 0;
                let noop_with_empty_axes = cx.int_or("noop_with_empty_axes", 0)? != 0;
                Ok(match op {
                    "ReduceSum" => Self::ReduceSum {
                        axes,
                        keep_dims,
                        noop_with_empty_axes,
                    },
                    "ReduceMean" => Self::ReduceMean {
                        axes,
                        keep_dims,
                        noop_with_empty_axes,
                    },
                    "ReduceMax" => Self::ReduceMax {
                        axes,
                        keep_dims,
                        noop_with_empty_axes,
                    },
                    "ReduceMin" => Self::ReduceMin {
                        axes,
                        keep_dims,
                        noop_with_empty_axes,
                    },
                    "ReduceProd" => Self::ReduceProd {
                        axes,
                        keep_dims,
                        noop_with_empty_axes,
                    },
                    "ReduceL1" => Self::ReduceL1 {
                        axes,
                        keep_dims,
                        noop_with_empty_axes,
                    },
                    "ReduceL2" => Self::ReduceL2 {
                        axes,
                        keep_dims,
                        noop_with_empty_axes,
                    },
                    "ReduceLogSum" => Self::ReduceLogSum {
                        axes,
                        keep_dims,
                        noop_with_empty_axes,
                    },
                    "ReduceLogSumExp" => Self::ReduceLogSumExp {
                        axes,
                        keep_dims,
                        noop_with_empty_axes,
                    },
                    _ => Self::ReduceSumSquare {
                        axes,
                        keep_dims,
                        noop_with_empty_axes,
                    },
                })
            })(
            ),
            "ArgMax" | "ArgMin" => (|| {
                let axis = cx.int_or("axis", 0)?;
                let keep_dims = cx.int_or("keepdims", 1)? != 0;
                let select_last_index = cx.int_or("select_last_index", 0)? != 0;
                Ok(if op == "ArgMax" {
                    Self::ArgMax {
                        axis,
                        keep_dims,
                        select_last_index,
                    }
                } else {
                    Self::ArgMin {
                        axis,
                        keep_dims,
                        select_last_index,
                    }
                })
            })(),
            "TopK" => (|| {
                Ok(Self::TopK {
                    axis: cx.int_or("axis", -1)?,
                    k: if cx.opset < 10 {
                        Some(cx.required("k", cx.int("k"))?)
                    } else {
                        None
                    },
                    largest: cx.int_or("largest", 1)? != 0,
                    sorted: cx.int_or("sorted", 1)? != 0,
                })
            })(),
            "CumSum" | "CumProd" => (|| {
                let exclusive = cx.int_or("exclusive", 0)? != 0;
                let reverse = cx.int_or("reverse", 0)? != 0;
                Ok(if op == "CumSum" {
                    Self::CumSum { exclusive, reverse }
                } else {
                    Self::CumProd { exclusive, reverse }
                })
            })(),
            "Unique" => (|| {
                Ok(Self::Unique {
                    axis: cx.int("axis")?,
                    sorted: cx.int_or("sorted", 1)? != 0,
                })
            })(),
            "NonMaxSuppression" => (|| {
                Ok(Self::NonMaxSuppression {
                    center_point_box: cx.int_or("center_point_box", 0)? != 0,
                })
            })(),
            _ => return None,
        })
    }
}
