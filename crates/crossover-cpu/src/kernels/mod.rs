//! CPU kernels, one module per op family (mirroring `crossover_core::op`).
//!
//! Every kernel takes its inputs as `&[Option<&Tensor>]` (absent optional inputs are
//! `None`) and returns its outputs; it never panics on bad input.

pub mod broadcast;
mod control;
pub(crate) mod conv;
pub(crate) mod elementwise;
mod image;
pub(crate) mod layout;
pub(crate) mod linalg;
pub(crate) mod nn;
mod reduce;
mod rnn;
mod signal;
pub mod simd;
mod text;
pub mod util;

use crossover_core::{Op, Result, Tensor};

pub use util::Inputs;

/// Whether the CPU has a kernel for `op`. Every op that imports has one.
pub fn supports(op: &Op) -> bool {
    let _ = op;
    true
}

/// Runs one op on host tensors.
pub fn eval(op: &Op, inputs: &[Option<&Tensor>]) -> Result<Vec<Tensor>> {
    let inputs = Inputs(inputs);
    match op {
        Op::Elementwise(o) => elementwise::eval(o, &inputs),
        Op::Linalg(o) => linalg::eval(o, &inputs),
        Op::Conv(o) => conv::eval(o, &inputs),
        Op::Nn(o) => nn::eval(o, &inputs),
        Op::Layout(o) => layout::eval(o, &inputs),
        Op::Reduce(o) => reduce::eval(o, &inputs),
        Op::Signal(o) => signal::eval(o, &inputs),
        Op::Control(o) => control::eval(o, &inputs),
        Op::Rnn(o) => rnn::eval(o, &inputs),
        Op::Image(o) => image::eval(o, &inputs),
        Op::Text(o) => text::eval(o, &inputs),
    }
}
