//! Reductions, arg/top-k selection, scans, Unique and NonMaxSuppression.
//!
//! Most kernels view their input as `[outer, reduced, inner]` (see [`layout`]) so that the
//! hot loops run over contiguous slices.

use crossover_core::op::ReduceOp;
use crossover_core::{invalid, Result, Tensor};

use super::Inputs;

/// Runs `$body` with `$a` bound to the array of a numeric tensor (not bool or string).
macro_rules! numeric {
    ($t:expr, $op:expr, $a:ident => $body:expr) => {
        match crossover_core::TensorData::of($t) {
            crossover_core::TensorData::F32($a) => $body,
            crossover_core::TensorData::F64($a) => $body,
            crossover_core::TensorData::F16($a) => $body,
            crossover_core::TensorData::BF16($a) => $body,
            crossover_core::TensorData::I8($a) => $body,
            crossover_core::TensorData::I16($a) => $body,
            crossover_core::TensorData::I32($a) => $body,
            crossover_core::TensorData::I64($a) => $body,
            crossover_core::TensorData::U8($a) => $body,
            crossover_core::TensorData::U16($a) => $body,
            crossover_core::TensorData::U32($a) => $body,
            crossover_core::TensorData::U64($a) => $body,
            other => {
                return Err(crossover_core::Error::Unsupported(format!(
                    "{} on {} tensors",
                    $op,
                    other.dtype()
                )))
            }
        }
    };
}

mod layout;
mod nms;
mod num;
mod reduction;
mod scan;
mod select;
mod unique;

/// A Reduce* op's arithmetic for other ops built on it (global pooling).
pub(crate) use reduction::reduce as over_axes;
pub use reduction::Kind;

pub fn eval(op: &ReduceOp, x: &Inputs) -> Result<Vec<Tensor>> {
    let name: &'static str = op.into();
    use ReduceOp as R;
    let out = match op {
        R::ArgMax {
            axis,
            keep_dims,
            select_last_index,
        } => vec![select::arg(
            x.get(0)?,
            *axis,
            *keep_dims,
            *select_last_index,
            true,
            name,
        )?],
        R::ArgMin {
            axis,
            keep_dims,
            select_last_index,
        } => vec![select::arg(
            x.get(0)?,
            *axis,
            *keep_dims,
            *select_last_index,
            false,
            name,
        )?],
        R::TopK {
            axis,
            k,
            largest,
            sorted: _,
        } => {
            let k = match k {
                Some(k) => *k,
                None => x.get(1)?.scalar_f64()? as i64,
            };
            select::top_k(x.get(0)?, k, *axis, *largest, name)?
        }
        R::CumSum { exclusive, reverse } | R::CumProd { exclusive, reverse } => {
            let axis = x.get(1)?.to_i64_vec()?;
            let [axis] = axis[..] else {
                return Err(crossover_core::invalid!(
                    "{name} needs one axis, got {axis:?}"
                ));
            };
            let prod = matches!(op, R::CumProd { .. });
            vec![scan::cumulative(
                x.get(0)?,
                axis,
                *exclusive,
                *reverse,
                prod,
                name,
            )?]
        }
        R::Unique { axis, sorted } => unique::unique(x.get(0)?, *axis, *sorted)?,
        R::NonMaxSuppression { center_point_box } => vec![nms::non_max_suppression(
            x.get(0)?,
            x.get(1)?,
            x.opt(2),
            x.opt(3),
            x.opt(4),
            *center_point_box,
        )?],
        other => vec![reduce(other, x, name)?],
    };
    Ok(out)
}

/// The `Reduce*` ops.
fn reduce(op: &ReduceOp, x: &Inputs, name: &'static str) -> Result<Tensor> {
    use ReduceOp as R;
    let red = op
        .reduction()
        .ok_or_else(|| invalid!("{name} is not a Reduce* op"))?;
    let kind = match op {
        R::ReduceSum { .. } => Kind::Sum,
        R::ReduceMean { .. } => Kind::Mean,
        R::ReduceMax { .. } => Kind::Max,
        R::ReduceMin { .. } => Kind::Min,
        R::ReduceProd { .. } => Kind::Prod,
        R::ReduceL1 { .. } => Kind::L1,
        R::ReduceL2 { .. } => Kind::L2,
        R::ReduceLogSum { .. } => Kind::LogSum,
        R::ReduceLogSumExp { .. } => Kind::LogSumExp,
        _ => Kind::SumSquare,
    };
    let axes = match (red.axes, x.opt(1)) {
        (Some(a), _) => a.to_vec(),
        (None, Some(a)) => a.to_i64_vec()?,
        (None, None) => Vec::new(),
    };
    reduction::reduce(
        x.get(0)?,
        kind,
        &axes,
        red.keep_dims,
        red.noop_with_empty_axes,
        name,
    )
}
