//! Neural-network kernels.

use crossover_core::op::NnOp;
use crossover_core::{Result, Tensor};
use ndarray::Axis;

use super::util::norm_axis;
use super::Inputs;

pub fn eval(op: &NnOp, x: &Inputs) -> Result<Vec<Tensor>> {
    match op {
        NnOp::Softmax { axis } => {
            let t = x.get(0)?;
            let ax = norm_axis(*axis, t.rank())?;
            let mut a = t.view::<f32>()?.to_owned();
            for mut lane in a.lanes_mut(Axis(ax)) {
                let m = lane.fold(f32::NEG_INFINITY, |m, &v| m.max(v));
                lane.mapv_inplace(|v| (v - m).exp());
                let s = lane.sum();
                lane.mapv_inplace(|v| v / s);
            }
            Ok(vec![Tensor::from(a)])
        }
    }
}
