//! Reduction kernels.

use crossover_core::op::ReduceOp;
use crossover_core::{Result, Tensor};
use ndarray::Axis;

use super::util::norm_axes;
use super::Inputs;

pub fn eval(op: &ReduceOp, x: &Inputs) -> Result<Vec<Tensor>> {
    match op {
        ReduceOp::ReduceSum {
            axes,
            keep_dims,
            noop_with_empty_axes,
        } => {
            let t = x.get(0)?;
            let axes = match (axes, x.opt(1)) {
                (Some(a), _) => a.clone(),
                (None, Some(a)) => a.to_i64_vec()?,
                (None, None) => Vec::new(),
            };
            if axes.is_empty() && *noop_with_empty_axes {
                return Ok(vec![t.clone()]);
            }
            let mut axes = if axes.is_empty() {
                (0..t.rank()).collect()
            } else {
                norm_axes(&axes, t.rank())?
            };
            axes.sort_unstable();
            let mut a = t.view::<f32>()?.to_owned();
            for &ax in axes.iter().rev() {
                a = a.sum_axis(Axis(ax));
                if *keep_dims {
                    a.insert_axis_inplace(Axis(ax));
                }
            }
            Ok(vec![Tensor::from(a)])
        }
    }
}
