//! Typed ops. Each family lives in its own module with its own enum; the ONNX op type
//! string is matched once, at import, by the family's `parse`.
//!
//! Variant names are the ONNX op types, so `name()` needs no table kept in sync.

mod attrs;
pub mod control;
pub mod conv;
pub mod elementwise;
pub mod image;
pub mod layout;
pub mod linalg;
pub mod nn;
pub mod reduce;
pub mod rnn;
pub mod signal;
pub mod text;

pub use attrs::NodeCtx;
pub use control::ControlOp;
pub use conv::ConvOp;
pub use elementwise::ElementwiseOp;
pub use image::ImageOp;
pub use layout::LayoutOp;
pub use linalg::LinalgOp;
pub use nn::NnOp;
pub use reduce::ReduceOp;
pub use rnn::RnnOp;
pub use signal::SignalOp;
pub use text::TextOp;

use crate::{Error, Result};

#[derive(Clone, Debug, PartialEq)]
pub enum Op {
    Elementwise(ElementwiseOp),
    Linalg(LinalgOp),
    Conv(ConvOp),
    Nn(NnOp),
    Layout(LayoutOp),
    Reduce(ReduceOp),
    Signal(SignalOp),
    Control(ControlOp),
    Rnn(RnnOp),
    Image(ImageOp),
    Text(TextOp),
}

impl Op {
    /// The ONNX op type.
    pub fn name(&self) -> &'static str {
        match self {
            Op::Elementwise(o) => o.into(),
            Op::Linalg(o) => o.into(),
            Op::Conv(o) => o.into(),
            Op::Nn(o) => o.into(),
            Op::Layout(o) => o.into(),
            Op::Reduce(o) => o.into(),
            Op::Signal(o) => o.into(),
            Op::Control(o) => o.into(),
            Op::Rnn(o) => o.into(),
            Op::Image(o) => o.into(),
            Op::Text(o) => o.into(),
        }
    }

    /// Parses one ONNX node of the default domain into a typed op.
    pub fn parse(cx: &NodeCtx) -> Result<Op> {
        if !matches!(cx.domain(), "" | "ai.onnx") {
            return Err(Error::UnsupportedOp {
                op: format!("{}.{}", cx.domain(), cx.op_type()),
                opset: cx.opset,
            });
        }
        let parsed = ElementwiseOp::parse(cx)
            .map(|r| r.map(Op::Elementwise))
            .or_else(|| LinalgOp::parse(cx).map(|r| r.map(Op::Linalg)))
            .or_else(|| ConvOp::parse(cx).map(|r| r.map(Op::Conv)))
            .or_else(|| NnOp::parse(cx).map(|r| r.map(Op::Nn)))
            .or_else(|| LayoutOp::parse(cx).map(|r| r.map(Op::Layout)))
            .or_else(|| ReduceOp::parse(cx).map(|r| r.map(Op::Reduce)))
            .or_else(|| SignalOp::parse(cx).map(|r| r.map(Op::Signal)))
            .or_else(|| ControlOp::parse(cx).map(|r| r.map(Op::Control)))
            .or_else(|| RnnOp::parse(cx).map(|r| r.map(Op::Rnn)))
            .or_else(|| ImageOp::parse(cx).map(|r| r.map(Op::Image)))
            .or_else(|| TextOp::parse(cx).map(|r| r.map(Op::Text)));
        parsed.unwrap_or_else(|| {
            Err(Error::UnsupportedOp {
                op: cx.op_type().to_string(),
                opset: cx.opset,
            })
        })
    }
}

impl Op {
    /// Ops whose output is random: never folded into constants.
    pub fn is_nondeterministic(&self) -> bool {
        matches!(
            self.name(),
            "Bernoulli"
                | "RandomNormal"
                | "RandomNormalLike"
                | "RandomUniform"
                | "RandomUniformLike"
                | "Multinomial"
        )
    }
}
