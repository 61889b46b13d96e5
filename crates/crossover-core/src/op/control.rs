//! Control flow: If, Loop and Scan, whose bodies are subgraphs.

use std::sync::Arc;

use super::NodeCtx;
use crate::graph::Subgraph;
use crate::{invalid_model, Error, Result};

#[derive(Clone, Debug, PartialEq, strum::IntoStaticStr)]
pub enum ControlOp {
    If {
        then_branch: Arc<Subgraph>,
        else_branch: Arc<Subgraph>,
    },
    /// Inputs: M, cond, the loop-carried values, then captures.
    Loop { body: Arc<Subgraph> },
    /// Opset 9+ Scan. Inputs: the state values, the scan inputs, then captures.
    Scan {
        body: Arc<Subgraph>,
        num_scan_inputs: usize,
        scan_input_axes: Vec<i64>,
        /// `true` where a scan input is read back to front.
        scan_input_reverse: Vec<bool>,
        scan_output_axes: Vec<i64>,
        scan_output_reverse: Vec<bool>,
    },
}

impl ControlOp {
    pub(crate) fn parse(cx: &NodeCtx) -> Option<Result<Self>> {
        Some(match cx.op_type() {
            "If" => (|| {
                cx.expect_inputs(1, 1)?;
                Ok(Self::If {
                    then_branch: cx.required("then_branch", cx.subgraph("then_branch"))?,
                    else_branch: cx.required("else_branch", cx.subgraph("else_branch"))?,
                })
            })(),
            "Loop" => (|| {
                let body = cx.required("body", cx.subgraph("body"))?;
                if body.graph.inputs.len() != cx.num_inputs() || cx.num_inputs() < 2 {
                    return Err(invalid_model!(
                        "Loop has {} inputs but its body takes {}",
                        cx.num_inputs(),
                        body.graph.inputs.len()
                    ));
                }
                Ok(Self::Loop { body })
            })(),
            "Scan" => (|| {
                if cx.opset < 9 {
                    return Err(Error::Unsupported("Scan before opset 9".into()));
                }
                let body = cx.required("body", cx.subgraph("body"))?;
                let m = cx.required("num_scan_inputs", cx.int("num_scan_inputs"))?;
                let n_in = body.graph.inputs.len();
                if m < 1 || m as usize > n_in || n_in != cx.num_inputs() {
                    return Err(invalid_model!(
                        "Scan has {} inputs, {m} scan inputs, and a body taking {n_in}",
                        cx.num_inputs()
                    ));
                }
                let m = m as usize;
                let n_state = n_in - m;
                let k = body
                    .graph
                    .outputs
                    .len()
                    .checked_sub(n_state)
                    .ok_or_else(|| {
                        invalid_model!("Scan's body has fewer outputs than state values")
                    })?;
                let list = |name: &str, len: usize| -> Result<Vec<i64>> {
                    let v = cx.ints(name)?.unwrap_or_else(|| vec![0; len]);
                    if v.len() != len {
                        return Err(invalid_model!("Scan's {name} needs {len} entries"));
                    }
                    Ok(v)
                };
                let flags = |v: Vec<i64>| v.into_iter().map(|d| d != 0).collect();
                Ok(Self::Scan {
                    body,
                    num_scan_inputs: m,
                    scan_input_axes: list("scan_input_axes", m)?,
                    scan_input_reverse: flags(list("scan_input_directions", m)?),
                    scan_output_axes: list("scan_output_axes", k)?,
                    scan_output_reverse: flags(list("scan_output_directions", k)?),
                })
            })(),
            _ => return None,
        })
    }
}
