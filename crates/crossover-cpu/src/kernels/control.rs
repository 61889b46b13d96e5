//! Control-flow kernels: each runs its subgraphs with the CPU executor.

use crossover_core::graph::Subgraph;
use crossover_core::op::ControlOp;
use crossover_core::{
    by_dtype, invalid, DType, Element, Error, Result, Tensor, TensorData, ValueId,
};
use ndarray::{ArrayViewD, Axis};

use super::util::norm_axis;
use super::Inputs;
use crate::executor::{run_graph, Plan};

pub fn eval(op: &ControlOp, x: &Inputs) -> Result<Vec<Tensor>> {
    match op {
        ControlOp::If {
            then_branch,
            else_branch,
        } => {
            let branch = if truth(x.get(0)?, "If's condition")? {
                then_branch
            } else {
                else_branch
            };
            let plan = Plan::new(&branch.graph)?;
            run_graph(&plan, &branch.graph, &[], &bind(branch, x)?)
        }
        ControlOp::Loop { body } => eval_loop(body, x),
        ControlOp::Scan {
            body,
            num_scan_inputs,
            scan_input_axes,
            scan_input_reverse,
            scan_output_axes,
            scan_output_reverse,
        } => eval_scan(
            body,
            x,
            *num_scan_inputs,
            scan_input_axes,
            scan_input_reverse,
            scan_output_axes,
            scan_output_reverse,
        ),
    }
}

/// The subgraph's captures, taken from the node's trailing inputs.
fn bind(sub: &Subgraph, x: &Inputs) -> Result<Vec<(ValueId, Tensor)>> {
    sub.captures
        .iter()
        .map(|c| {
            let t = x
                .opt(c.input)
                .ok_or_else(|| invalid!("captured value (input {}) is missing", c.input))?;
            Ok((c.inner, t.clone()))
        })
        .collect()
}

/// A boolean condition held in a one-element tensor.
fn truth(t: &Tensor, what: &str) -> Result<bool> {
    if t.len() != 1 {
        return Err(invalid!(
            "{what} must hold one element, got shape {:?}",
            t.shape()
        ));
    }
    Ok(match &**t {
        TensorData::Bool(a) => a.iter().next().copied().unwrap_or(false),
        _ => t.to_f64_vec()?.first().is_some_and(|&v| v != 0.0),
    })
}

fn eval_loop(body: &Subgraph, x: &Inputs) -> Result<Vec<Tensor>> {
    let g = &body.graph;
    let n_carried = g.inputs.len().saturating_sub(2);
    let n_scan = g
        .outputs
        .len()
        .checked_sub(1 + n_carried)
        .ok_or_else(|| invalid!("Loop's body returns fewer values than it carries"))?;
    let max_trips = match x.opt(0) {
        Some(m) => {
            let v = m.to_i64_vec()?;
            match v.as_slice() {
                [m] => Some(*m),
                _ => return Err(invalid!("Loop's M must be a scalar, got {:?}", m.shape())),
            }
        }
        None => None,
    };
    let mut cond = match x.opt(1) {
        Some(c) => truth(c, "Loop's condition")?,
        None => true,
    };
    let mut carried: Vec<Tensor> = (0..n_carried)
        .map(|i| x.get(2 + i).cloned())
        .collect::<Result<_>>()?;
    let bound = bind(body, x)?;
    let plan = Plan::new(g)?;
    let mut scans: Vec<Vec<Tensor>> = vec![Vec::new(); n_scan];
    let mut i: i64 = 0;
    let mut args = Vec::with_capacity(g.inputs.len());
    while cond && max_trips.is_none_or(|m| i < m) {
        args.clear();
        args.push(Tensor::scalar(i));
        args.push(Tensor::scalar(cond));
        args.append(&mut carried);
        let mut outs = run_graph(&plan, g, &args, &bound)?.into_iter();
        cond = truth(
            &outs
                .next()
                .ok_or_else(|| invalid!("Loop's body returned nothing"))?,
            "Loop's body condition",
        )?;
        carried.extend(outs.by_ref().take(n_carried));
        for (s, t) in scans.iter_mut().zip(outs) {
            s.push(t);
        }
        i += 1;
    }
    let mut result = carried;
    for (k, parts) in scans.into_iter().enumerate() {
        result.push(if parts.is_empty() {
            empty_scan_output(body, 1 + n_carried + k)?
        } else {
            stack(&parts, 0, false)?
        });
    }
    Ok(result)
}

/// A scan output of a loop that never ran: zero rows of the declared element shape.
fn empty_scan_output(body: &Subgraph, output: usize) -> Result<Tensor> {
    let info = body.graph.value(body.graph.outputs[output]);
    let mut shape = vec![0];
    shape.extend(info.static_shape().unwrap_or_default());
    Tensor::zeros(info.dtype.unwrap_or(DType::F32), &shape)
}

#[allow(clippy::too_many_arguments)]
fn eval_scan(
    body: &Subgraph,
    x: &Inputs,
    m: usize,
    in_axes: &[i64],
    in_reverse: &[bool],
    out_axes: &[i64],
    out_reverse: &[bool],
) -> Result<Vec<Tensor>> {
    let g = &body.graph;
    let n_state = g.inputs.len() - m;
    let n_scan_out = g.outputs.len() - n_state;
    let mut state: Vec<Tensor> = (0..n_state)
        .map(|i| x.get(i).cloned())
        .collect::<Result<_>>()?;
    let mut scan_in = Vec::with_capacity(m);
    let mut len = None;
    for (j, &axis) in in_axes.iter().enumerate().take(m) {
        let t = x.get(n_state + j)?;
        let axis = norm_axis(axis, t.rank())?;
        let n = t.shape()[axis];
        if *len.get_or_insert(n) != n {
            return Err(invalid!(
                "Scan's inputs disagree on the sequence length ({} and {n})",
                len.unwrap_or(0)
            ));
        }
        scan_in.push((t, axis));
    }
    let len = len.unwrap_or(0);
    let bound = bind(body, x)?;
    let plan = Plan::new(g)?;
    let mut scans: Vec<Vec<Tensor>> = vec![Vec::with_capacity(len); n_scan_out];
    let mut args = Vec::with_capacity(g.inputs.len());
    for t in 0..len {
        args.clear();
        args.append(&mut state);
        for (j, (input, axis)) in scan_in.iter().enumerate() {
            let at = if in_reverse[j] { len - 1 - t } else { t };
            args.push(by_dtype!(input.dtype(), index_axis(input, *axis, at))?);
        }
        let mut outs = run_graph(&plan, g, &args, &bound)?.into_iter();
        state.extend(outs.by_ref().take(n_state));
        for (s, o) in scans.iter_mut().zip(outs) {
            s.push(o);
        }
    }
    let mut result = state;
    for (k, parts) in scans.into_iter().enumerate() {
        if parts.is_empty() {
            result.push(empty_scan_output(body, n_state + k)?);
            continue;
        }
        let axis = norm_axis(out_axes[k], parts[0].rank() + 1)?;
        result.push(stack(&parts, axis, out_reverse[k])?);
    }
    Ok(result)
}

fn index_axis<T: Element>(t: &Tensor, axis: usize, i: usize) -> Result<Tensor> {
    Ok(Tensor::from(
        t.view::<T>()?.index_axis(Axis(axis), i).to_owned(),
    ))
}

/// Joins equally shaped tensors along a new axis, optionally in reverse order.
fn stack(parts: &[Tensor], axis: usize, reverse: bool) -> Result<Tensor> {
    let first = parts.first().ok_or_else(|| invalid!("nothing to stack"))?;
    for p in parts {
        if p.dtype() != first.dtype() || p.shape() != first.shape() {
            return Err(Error::ShapeMismatch(format!(
                "iterations produced scan outputs of different types or shapes: {} {:?} and {} {:?}",
                first.dtype(),
                first.shape(),
                p.dtype(),
                p.shape()
            )));
        }
    }
    by_dtype!(first.dtype(), stack_t(parts, axis, reverse))
}

fn stack_t<T: Element>(parts: &[Tensor], axis: usize, reverse: bool) -> Result<Tensor> {
    let mut views: Vec<ArrayViewD<T>> =
        parts.iter().map(|p| p.view::<T>()).collect::<Result<_>>()?;
    if reverse {
        views.reverse();
    }
    ndarray::stack(Axis(axis), &views)
        .map(Tensor::from)
        .map_err(|e| Error::ShapeMismatch(e.to_string()))
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use crossover_core::onnx::attribute_proto::AttributeType;
    use crossover_core::onnx::{
        type_proto, AttributeProto, GraphProto, ModelProto, NodeProto, OperatorSetIdProto,
        TypeProto, ValueInfoProto,
    };
    use crossover_core::proto::tensor_to_proto;
    use crossover_core::{passes, Backend, CompileOptions, Model, Tensor};
    use prost::Message;

    use crate::CpuBackend;

    fn vi(name: &str, elem: i32) -> ValueInfoProto {
        ValueInfoProto {
            name: Some(name.into()),
            r#type: Some(TypeProto {
                value: Some(type_proto::Value::TensorType(type_proto::Tensor {
                    elem_type: Some(elem),
                    shape: None,
                })),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    fn node(op: &str, ins: &[&str], outs: &[&str], graphs: Vec<(&str, GraphProto)>) -> NodeProto {
        NodeProto {
            op_type: Some(op.into()),
            input: ins.iter().map(|s| s.to_string()).collect(),
            output: outs.iter().map(|s| s.to_string()).collect(),
            attribute: graphs
                .into_iter()
                .map(|(n, g)| AttributeProto {
                    name: Some(n.into()),
                    r#type: Some(AttributeType::Graph as i32),
                    g: Some(g),
                    ..Default::default()
                })
                .collect(),
            ..Default::default()
        }
    }

    fn graph(nodes: Vec<NodeProto>, ins: Vec<ValueInfoProto>, outs: &[&str]) -> GraphProto {
        GraphProto {
            node: nodes,
            input: ins,
            output: outs.iter().map(|o| vi(o, 0)).collect(),
            ..Default::default()
        }
    }

    /// acc <- if cond { acc + w } else { acc * w }, M times; `w` is captured two scopes
    /// out (by the If branch inside the Loop body), `acc` one scope out.
    fn model(constant_inputs: bool) -> Model {
        let then_b = graph(
            vec![node("Add", &["acc", "w"], &["t"], vec![])],
            vec![],
            &["t"],
        );
        let else_b = graph(
            vec![node("Mul", &["acc", "w"], &["e"], vec![])],
            vec![],
            &["e"],
        );
        let body = graph(
            vec![
                node("Identity", &["c"], &["c_out"], vec![]),
                node(
                    "If",
                    &["c"],
                    &["next"],
                    vec![("then_branch", then_b), ("else_branch", else_b)],
                ),
            ],
            vec![vi("i", 7), vi("c", 9), vi("acc", 1)],
            &["c_out", "next", "next"],
        );
        let w = Tensor::from_vec(&[2], vec![1.0f32, 2.0]).unwrap();
        let mut init = vec![tensor_to_proto("w", &w)];
        let mut inputs = vec![];
        if constant_inputs {
            init.push(tensor_to_proto("m", &Tensor::scalar(3i64)));
            init.push(tensor_to_proto(
                "x",
                &Tensor::from_vec(&[2], vec![0.0f32, 1.0]).unwrap(),
            ));
        } else {
            inputs = vec![vi("m", 7), vi("x", 1)];
        }
        let mut g = graph(
            vec![node(
                "Loop",
                &["m", "", "x"],
                &["y", "ys"],
                vec![("body", body)],
            )],
            inputs,
            &["y", "ys"],
        );
        g.initializer = init;
        let m = ModelProto {
            ir_version: Some(8),
            opset_import: vec![OperatorSetIdProto {
                domain: Some(String::new()),
                version: Some(17),
            }],
            graph: Some(g),
            ..Default::default()
        };
        Model::from_bytes(&m.encode_to_vec()).unwrap()
    }

    fn floats(t: &Tensor) -> Vec<f32> {
        t.view::<f32>().unwrap().iter().copied().collect()
    }

    #[test]
    fn loop_runs_if_with_nested_captures() {
        let model = model(false);
        // The Loop lists `w`, captured by its body for the If inside, as an extra input.
        assert_eq!(model.graph.nodes[0].inputs.len(), 4);
        let exe = CpuBackend
            .compile(Arc::new(model.graph), &CompileOptions::default())
            .unwrap();
        let x = Tensor::from_vec(&[2], vec![0.0f32, 1.0]).unwrap();
        let out = exe.run(&[Tensor::scalar(3i64), x]).unwrap().outputs;
        assert_eq!(floats(&out[0]), vec![3.0, 7.0]);
        assert_eq!(out[1].shape(), &[3, 2]);
        assert_eq!(floats(&out[1]), vec![1.0, 3.0, 2.0, 5.0, 3.0, 7.0]);
    }

    #[test]
    fn loop_on_constants_is_folded() {
        let mut g = model(true).graph;
        passes::optimize(&mut g, &CpuBackend).unwrap();
        assert!(g.nodes.is_empty());
        assert_eq!(floats(&g.constants[&g.outputs[0]]), vec![3.0, 7.0]);
    }

    #[test]
    fn zero_trips_give_empty_scan_outputs() {
        let exe = CpuBackend
            .compile(Arc::new(model(false).graph), &CompileOptions::default())
            .unwrap();
        let x = Tensor::from_vec(&[2], vec![0.0f32, 1.0]).unwrap();
        let out = exe.run(&[Tensor::scalar(0i64), x]).unwrap().outputs;
        assert_eq!(floats(&out[0]), vec![0.0, 1.0]);
        assert_eq!(out[1].shape()[0], 0);
    }

    #[test]
    fn bad_condition_is_an_error() {
        assert!(super::truth(&Tensor::from_vec(&[2], vec![true, false]).unwrap(), "c").is_err());
    }
}
