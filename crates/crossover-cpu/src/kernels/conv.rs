//! Convolution and pooling kernels.

use crossover_core::op::ConvOp;
use crossover_core::{invalid, Result, Tensor};
use ndarray::Axis;

use super::Inputs;

pub fn eval(op: &ConvOp, x: &Inputs) -> Result<Vec<Tensor>> {
    match op {
        ConvOp::GlobalAveragePool => {
            let t = x.get(0)?;
            if t.rank() < 3 {
                return Err(invalid!(
                    "GlobalAveragePool needs rank >= 3, got {:?}",
                    t.shape()
                ));
            }
            let mut a = t.view::<f32>()?.to_owned();
            for ax in (2..t.rank()).rev() {
                a = a.mean_axis(Axis(ax)).expect("non-empty axis");
                a.insert_axis_inplace(Axis(ax));
            }
            Ok(vec![Tensor::from(a)])
        }
    }
}
