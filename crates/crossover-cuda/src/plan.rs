//! Which nodes of a graph run on the GPU and which on the host. Static: it looks at ops
//! and dtypes only, so it is tested without a GPU and `crossover info` prints it anywhere.
//! A device node whose shapes at run time fall outside its kernel (a softmax over an inner
//! axis, a rank above 6) also runs on the host, for that run.

use std::collections::HashMap;
use std::fmt;

use crossover_kernels::cuda::Activation;

use crossover_core::op::{
    nn::SoftmaxAxis, ConvOp, ElementwiseOp as E, LayoutOp as L, LinalgOp, NnOp, ReduceOp,
};
use crossover_core::{DType, Graph, Node, Op, ValueId};

/// Where one node runs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Placement {
    Device,
    Host(HostReason),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum HostReason {
    /// No CUDA kernel implements this op (or these attributes).
    NoKernel,
    /// The op has a kernel, but not for this element type.
    DType(DType),
    /// An input or output's element type is unknown before running.
    UnknownDType,
    /// Shape arithmetic (Shape, and what is computed from shapes and constants only): a
    /// few integers, cheaper on the host than a launch, and no copy is needed.
    ShapeComputation,
}

impl fmt::Display for HostReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HostReason::NoKernel => f.write_str("no CUDA kernel for this op"),
            HostReason::DType(d) => write!(f, "no CUDA kernel for {d}"),
            HostReason::UnknownDType => f.write_str("element type unknown before running"),
            HostReason::ShapeComputation => f.write_str("shape computation, kept on the host"),
        }
    }
}

/// One node's placement, for reports.
#[derive(Clone, Debug)]
pub struct NodePlacement {
    pub index: usize,
    pub label: String,
    pub op: &'static str,
    pub placement: Placement,
}

/// The placement of every node, in graph order.
pub fn partition(graph: &Graph) -> Vec<Placement> {
    let mut host_values = vec![false; graph.values.len()];
    for v in graph.constants.keys() {
        host_values[v.0] = true;
    }
    let mut out = Vec::with_capacity(graph.nodes.len());
    for node in &graph.nodes {
        let shape_only = matches!(node.op, Op::Layout(L::Shape { .. } | L::Size))
            || (node.inputs.iter().flatten().next().is_some()
                && node.inputs.iter().flatten().all(|v| host_values[v.0]));
        let p = if shape_only {
            Placement::Host(HostReason::ShapeComputation)
        } else {
            match device_kernel(graph, node) {
                Ok(()) => Placement::Device,
                Err(r) => Placement::Host(r),
            }
        };
        if p == Placement::Host(HostReason::ShapeComputation) {
            for v in node.outputs.iter().flatten() {
                host_values[v.0] = true;
            }
        }
        out.push(p);
    }
    out
}

/// Every node with its placement, for `crossover info`.
pub fn report(graph: &Graph) -> Vec<NodePlacement> {
    partition(graph)
        .into_iter()
        .enumerate()
        .map(|(i, placement)| {
            let n = &graph.nodes[i];
            NodePlacement {
                index: i,
                label: n.label(graph).to_string(),
                op: n.op.name(),
                placement,
            }
        })
        .collect()
}

fn dtype_of(graph: &Graph, v: ValueId) -> Option<DType> {
    graph
        .constants
        .get(&v)
        .map(|t| t.dtype())
        .or(graph.value(v).dtype)
}

fn input_dtype(graph: &Graph, node: &Node, i: usize) -> Result<Option<DType>, HostReason> {
    match node.inputs.get(i).copied().flatten() {
        None => Ok(None),
        Some(v) => dtype_of(graph, v).map(Some).ok_or(HostReason::UnknownDType),
    }
}

/// Requires input `i` (when present) to have one of `ok`.
fn need(graph: &Graph, node: &Node, i: usize, ok: &[DType]) -> Result<(), HostReason> {
    match input_dtype(graph, node, i)? {
        Some(d) if !ok.contains(&d) => Err(HostReason::DType(d)),
        _ => Ok(()),
    }
}

const F32: &[DType] = &[DType::F32];
/// Element types the byte-moving kernels carry.
const MOVABLE: &[DType] = &[
    DType::F32,
    DType::F64,
    DType::F16,
    DType::BF16,
    DType::I8,
    DType::I16,
    DType::I32,
    DType::I64,
    DType::U8,
    DType::U16,
    DType::U32,
    DType::U64,
    DType::Bool,
];

/// `Ok` when a CUDA kernel runs this node for its dtypes.
fn device_kernel(graph: &Graph, node: &Node) -> Result<(), HostReason> {
    let all = |ok: &[DType]| -> Result<(), HostReason> {
        (0..node.inputs.len()).try_for_each(|i| need(graph, node, i, ok))
    };
    match &node.op {
        Op::Elementwise(e) => match e {
            E::Relu
            | E::Gelu { .. }
            | E::Erf
            | E::Exp
            | E::Log
            | E::Tanh
            | E::Sigmoid
            | E::Sqrt
            | E::Neg
            | E::Abs
            | E::Reciprocal
            | E::LeakyRelu { .. }
            | E::Floor
            | E::Ceil
            | E::Add
            | E::Sub
            | E::Mul
            | E::Div
            | E::Pow => all(F32),
            E::Swish { alpha } if *alpha == 1.0 => all(F32),
            E::Min | E::Max if node.inputs.len() == 2 => all(F32),
            // Bounds come from the attributes or from host scalars.
            E::Clip { .. } => need(graph, node, 0, F32),
            E::Cast { to, .. } => {
                let from = input_dtype(graph, node, 0)?.ok_or(HostReason::UnknownDType)?;
                if cast_kernel(from, *to).is_some() {
                    Ok(())
                } else {
                    Err(HostReason::DType(from))
                }
            }
            _ => Err(HostReason::NoKernel),
        },
        Op::Linalg(LinalgOp::MatMul) => {
            let a = input_dtype(graph, node, 0)?.ok_or(HostReason::UnknownDType)?;
            need(graph, node, 1, &[a])?;
            match a {
                DType::F32 | DType::F16 | DType::BF16 => Ok(()),
                d => Err(HostReason::DType(d)),
            }
        }
        Op::Linalg(LinalgOp::Gemm { .. }) => all(F32),
        Op::Nn(n) => match n {
            NnOp::Softmax { .. } | NnOp::LogSoftmax { .. } => all(F32),
            NnOp::LayerNormalization { .. } if node.outputs.iter().skip(1).all(Option::is_none) => {
                all(F32)
            }
            NnOp::BatchNormalization {
                training: false, ..
            } if node.outputs.iter().skip(1).all(Option::is_none) => all(F32),
            NnOp::Attention(a)
                if !a.is_causal
                    && a.softcap == 0.0
                    && !a.want_qk
                    && a.left_window < 0
                    && a.right_window < 0
                    && a.softmax_precision.is_none()
                    && node.inputs.len() <= 4
                    && node.outputs.iter().skip(1).all(Option::is_none) =>
            {
                all(F32)
            }
            _ => Err(HostReason::NoKernel),
        },
        Op::Conv(c) => match c {
            ConvOp::Conv(_) | ConvOp::GlobalAveragePool | ConvOp::GlobalMaxPool => all(F32),
            ConvOp::MaxPool { .. } if node.outputs.iter().skip(1).all(Option::is_none) => all(F32),
            ConvOp::AveragePool { .. } => all(F32),
            _ => Err(HostReason::NoKernel),
        },
        Op::Reduce(r) => match r {
            ReduceOp::ReduceSum { .. }
            | ReduceOp::ReduceMean { .. }
            | ReduceOp::ReduceMax { .. }
            | ReduceOp::ReduceMin { .. }
            | ReduceOp::ReduceProd { .. }
            | ReduceOp::ReduceSumSquare { .. } => need(graph, node, 0, F32),
            _ => Err(HostReason::NoKernel),
        },
        Op::Layout(l) => match l {
            L::Identity
            | L::Reshape { .. }
            | L::Flatten { .. }
            | L::Squeeze { .. }
            | L::Unsqueeze { .. }
            | L::Transpose { .. }
            | L::Slice { .. } => need(graph, node, 0, MOVABLE),
            L::Concat { .. } => all(MOVABLE),
            L::Gather { .. } => {
                need(graph, node, 0, MOVABLE)?;
                need(graph, node, 1, &[DType::I64])
            }
            _ => Err(HostReason::NoKernel),
        },
        _ => Err(HostReason::NoKernel),
    }
}

/// GEMM-shaped nodes whose only reader is an activation the kernel's epilogue applies:
/// node index → (activation node index, activation). Both must run on the device and the
/// intermediate must not be a graph output.
pub fn epilogue_fusions(
    graph: &Graph,
    placements: &[Placement],
) -> HashMap<usize, (usize, Activation)> {
    let mut readers: HashMap<ValueId, Vec<usize>> = HashMap::new();
    for (j, n) in graph.nodes.iter().enumerate() {
        for v in n.inputs.iter().flatten() {
            readers.entry(*v).or_default().push(j);
        }
    }
    let mut out = HashMap::new();
    for (i, n) in graph.nodes.iter().enumerate() {
        let gemm_like = matches!(
            n.op,
            Op::Linalg(LinalgOp::MatMul | LinalgOp::Gemm { .. }) | Op::Conv(ConvOp::Conv(_))
        );
        if !gemm_like || placements[i] != Placement::Device {
            continue;
        }
        let [Some(v)] = n.outputs[..] else { continue };
        if graph.outputs.contains(&v) {
            continue;
        }
        let Some([j]) = readers.get(&v).map(Vec::as_slice) else {
            continue;
        };
        let act = match graph.nodes[*j].op {
            Op::Elementwise(E::Relu) => Activation::Relu,
            Op::Elementwise(E::Gelu { tanh: false }) => Activation::GeluErf,
            Op::Elementwise(E::Gelu { tanh: true }) => Activation::GeluTanh,
            _ => continue,
        };
        if placements[*j] == Placement::Device && graph.nodes[*j].inputs.len() == 1 {
            out.insert(i, (*j, act));
        }
    }
    out
}

/// Whether the op (ignoring dtypes) has a CUDA kernel, for [`crossover_core::Backend::supports`].
pub fn supports_op(node: &Node) -> bool {
    let mut g = Graph::default();
    let mut n = node.clone();
    // A one-node graph whose values are all f32 (or i64 for Gather indices): op support only.
    let mut ids = Vec::new();
    for slot in n.inputs.iter_mut().chain(n.outputs.iter_mut()).flatten() {
        let id = g.add_value(crossover_core::ValueInfo {
            name: format!("v{}", ids.len()),
            dtype: Some(DType::F32),
            shape: None,
        });
        ids.push(id);
        *slot = id;
    }
    if let Op::Layout(L::Gather { .. }) = n.op {
        if let Some(Some(v)) = n.inputs.get(1) {
            g.values[v.0].dtype = Some(DType::I64);
        }
    }
    device_kernel(&g, &n).is_ok()
}

/// Inputs that a device node reads on the host as parameters (shapes, axes, bounds), not
/// as data: they are never uploaded.
pub fn is_host_param(node: &Node, input: usize) -> bool {
    match &node.op {
        Op::Layout(L::Reshape { .. } | L::Squeeze { .. } | L::Unsqueeze { .. }) => input == 1,
        Op::Layout(L::Slice { .. }) => input >= 1,
        Op::Reduce(_) => input == 1,
        Op::Elementwise(E::Clip { .. }) => input >= 1,
        _ => false,
    }
}

/// The `elementwise` cast kernel for a dtype pair.
pub fn cast_kernel(from: DType, to: DType) -> Option<&'static str> {
    Some(match (from, to) {
        (DType::I64, DType::F32) => "cast_i64_f32",
        (DType::I32, DType::F32) => "cast_i32_f32",
        (DType::U8 | DType::Bool, DType::F32) => "cast_u8_f32",
        (DType::F32, DType::F16) => "cast_f32_f16",
        (DType::F16, DType::F32) => "cast_f16_f32",
        (DType::F32, DType::BF16) => "cast_f32_bf16",
        (DType::BF16, DType::F32) => "cast_bf16_f32",
        (a, b) if a == b && a != DType::String => "",
        _ => return None,
    })
}

/// Whether a softmax with this axis attribute can run over rows of the last axes.
pub fn softmax_rows(axis: SoftmaxAxis, shape: &[usize]) -> Option<(usize, usize)> {
    let rank = shape.len() as i64;
    let (start, single) = match axis {
        SoftmaxAxis::Coerce2d(a) => (a, false),
        SoftmaxAxis::Single(a) => (a, true),
    };
    let a = if start < 0 { start + rank } else { start };
    if a < 0 || a > rank || (single && a != rank - 1) || (rank == 0) {
        return None;
    }
    let a = a as usize;
    Some((shape[..a].iter().product(), shape[a..].iter().product()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crossover_core::{Dim, ValueInfo};

    fn graph(nodes: Vec<(Op, Vec<usize>, Vec<usize>)>, dtypes: &[Option<DType>]) -> Graph {
        let mut g = Graph::default();
        for (i, d) in dtypes.iter().enumerate() {
            g.add_value(ValueInfo {
                name: format!("v{i}"),
                dtype: *d,
                shape: Some(vec![Dim::Param("batch".into()), Dim::Fixed(4)]),
            });
        }
        g.inputs = vec![ValueId(0)];
        for (op, ins, outs) in nodes {
            g.nodes.push(Node {
                name: String::new(),
                op,
                inputs: ins.into_iter().map(|v| Some(ValueId(v))).collect(),
                outputs: outs.into_iter().map(|v| Some(ValueId(v))).collect(),
            });
        }
        g
    }

    #[test]
    fn kernels_run_on_the_device_and_the_rest_falls_back() {
        let f = Some(DType::F32);
        let g = graph(
            vec![
                (Op::Elementwise(E::Relu), vec![0], vec![1]),
                (Op::Elementwise(E::Sin), vec![1], vec![2]),
                (Op::Linalg(LinalgOp::MatMul), vec![2, 2], vec![3]),
                (Op::Elementwise(E::Add), vec![3, 4], vec![5]),
            ],
            &[f, f, f, f, Some(DType::I32), Some(DType::I32)],
        );
        let p = partition(&g);
        assert_eq!(p[0], Placement::Device);
        assert_eq!(p[1], Placement::Host(HostReason::NoKernel));
        assert_eq!(p[2], Placement::Device);
        assert_eq!(p[3], Placement::Host(HostReason::DType(DType::I32)));
        let r = report(&g);
        assert_eq!(r[1].op, "Sin");
        assert_eq!(r[1].label, "v2");
    }

    #[test]
    fn shape_arithmetic_stays_on_the_host() {
        let i = Some(DType::I64);
        let f = Some(DType::F32);
        let mut g = graph(
            vec![
                (
                    Op::Layout(L::Shape {
                        start: 0,
                        end: None,
                    }),
                    vec![0],
                    vec![1],
                ),
                (Op::Layout(L::Gather { axis: 0 }), vec![1, 2], vec![3]),
                (
                    Op::Layout(L::Reshape { allow_zero: false }),
                    vec![0, 3],
                    vec![4],
                ),
            ],
            &[f, i, i, i, f],
        );
        g.constants.insert(
            ValueId(2),
            crossover_core::Tensor::from_vec(&[1], vec![0i64]).unwrap(),
        );
        let p = partition(&g);
        assert_eq!(p[0], Placement::Host(HostReason::ShapeComputation));
        assert_eq!(p[1], Placement::Host(HostReason::ShapeComputation));
        assert_eq!(p[2], Placement::Device);
    }

    #[test]
    fn unknown_dtypes_and_unsupported_casts_fall_back() {
        let g = graph(
            vec![
                (Op::Elementwise(E::Relu), vec![0], vec![1]),
                (
                    Op::Elementwise(E::Cast {
                        to: DType::I64,
                        saturate: true,
                    }),
                    vec![1],
                    vec![2],
                ),
            ],
            &[None, Some(DType::F32), Some(DType::I64)],
        );
        let p = partition(&g);
        assert_eq!(p[0], Placement::Host(HostReason::UnknownDType));
        assert_eq!(p[1], Placement::Host(HostReason::DType(DType::F32)));
    }

    #[test]
    fn activations_fuse_into_a_single_reader_gemm() {
        let f = Some(DType::F32);
        let gemm = || {
            Op::Linalg(LinalgOp::Gemm {
                alpha: 1.0,
                beta: 1.0,
                trans_a: false,
                trans_b: false,
            })
        };
        let g = graph(
            vec![
                (gemm(), vec![0, 0], vec![1]),
                (Op::Elementwise(E::Relu), vec![1], vec![2]),
                (Op::Linalg(LinalgOp::MatMul), vec![2, 2], vec![3]),
                (Op::Elementwise(E::Relu), vec![3], vec![4]),
                (Op::Elementwise(E::Add), vec![3, 4], vec![5]),
            ],
            &[f, f, f, f, f, f],
        );
        let p = partition(&g);
        let fused = epilogue_fusions(&g, &p);
        assert_eq!(fused.get(&0), Some(&(1, Activation::Relu)));
        // The MatMul's output has a second reader: no fusion.
        assert!(!fused.contains_key(&2));
    }

    #[test]
    fn softmax_rows_only_over_trailing_axes() {
        assert_eq!(
            softmax_rows(SoftmaxAxis::Single(-1), &[2, 3, 5]),
            Some((6, 5))
        );
        assert_eq!(
            softmax_rows(SoftmaxAxis::Single(2), &[2, 3, 5]),
            Some((6, 5))
        );
        assert_eq!(softmax_rows(SoftmaxAxis::Single(1), &[2, 3, 5]), None);
        assert_eq!(
            softmax_rows(SoftmaxAxis::Coerce2d(1), &[2, 3, 5]),
            Some((2, 15))
        );
        assert_eq!(softmax_rows(SoftmaxAxis::Single(0), &[]), None);
    }
}
