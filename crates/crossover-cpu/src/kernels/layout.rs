//! Data-movement kernels.

use crossover_core::op::LayoutOp;
use crossover_core::{invalid, Result, Tensor};

use super::Inputs;

pub fn eval(op: &LayoutOp, x: &Inputs) -> Result<Vec<Tensor>> {
    match op {
        LayoutOp::Identity => Ok(vec![x.get(0)?.clone()]),
        LayoutOp::Reshape { allow_zero } => {
            let t = x.get(0)?;
            let spec = x.get(1)?.to_i64_vec()?;
            Ok(vec![t.reshape(&reshape_target(
                t.shape(),
                &spec,
                *allow_zero,
            )?)?])
        }
    }
}

/// Resolves ONNX Reshape's `0` (copy) and `-1` (infer) entries.
fn reshape_target(input: &[usize], spec: &[i64], allow_zero: bool) -> Result<Vec<usize>> {
    let mut out = Vec::with_capacity(spec.len());
    let mut infer = None;
    for (i, &d) in spec.iter().enumerate() {
        out.push(match d {
            -1 if infer.is_none() => {
                infer = Some(i);
                1
            }
            0 if !allow_zero => *input
                .get(i)
                .ok_or_else(|| invalid!("Reshape: 0 at {i} has no input dimension to copy"))?,
            d if d >= 0 => d as usize,
            _ => return Err(invalid!("Reshape: invalid target {spec:?}")),
        });
    }
    let total: usize = input.iter().product();
    if let Some(i) = infer {
        let known: usize = out.iter().product();
        if known == 0 || total % known != 0 {
            return Err(invalid!(
                "Reshape: cannot infer -1 in {spec:?} for input {input:?}"
            ));
        }
        out[i] = total / known;
    }
    Ok(out)
}
