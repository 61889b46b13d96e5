//! Matrix-product kernels.

use crossover_core::op::LinalgOp;
use crossover_core::{Error, Result, Tensor};
use ndarray::Ix2;

use super::Inputs;

pub fn eval(op: &LinalgOp, x: &Inputs) -> Result<Vec<Tensor>> {
    match op {
        LinalgOp::MatMul => {
            let (a, b) = (x.get(0)?.view::<f32>()?, x.get(1)?.view::<f32>()?);
            let (a, b) = match (
                a.into_dimensionality::<Ix2>(),
                b.into_dimensionality::<Ix2>(),
            ) {
                (Ok(a), Ok(b)) if a.ncols() == b.nrows() => (a, b),
                _ => return Err(Error::Unsupported("MatMul beyond 2-D f32".into())),
            };
            Ok(vec![Tensor::from(a.dot(&b).into_dyn())])
        }
    }
}
