//! Resize and Upsample.

use crossover_core::op::layout::ResizeAttrs;
use crossover_core::{Error, Result, Tensor};

use crate::kernels::Inputs;

pub fn resize(_a: &ResizeAttrs, _x: &Inputs) -> Result<Tensor> {
    Err(Error::Unsupported("Resize".into()))
}
