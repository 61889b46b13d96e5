//! Fusions the CPU plan makes at compile time. A product by a constant f32 matrix
//! (`MatMul`, or `Gemm` with constant B and C) becomes one [`Linear`] step that also adds
//! its bias and applies the activation after it: Relu, or GELU as exporters write it,
//! `x · ½ · (1 + erf(x / √2))`. The product is written once and never re-read by separate
//! Add, Div, Erf and Mul kernels, each of which would allocate and sweep the whole tensor.
//! A `Conv` with constant weights likewise becomes one [`ConvChain`], an inference-mode
//! `BatchNormalization` after it folded into its weights and bias, then a Relu and a 2-D
//! `MaxPool` applied to each image's output while it is in cache, so the full-size
//! activation is never stored.
//!
//! Attention's `Softmax(scores · c + mask)` over the last axis becomes one
//! [`MaskedSoftmax`] pass over the scores instead of three; and the whole of multi-head
//! attention, from the heads' split of the projections to their merge, one
//! [`Attention`](attention::Attention) step that copies none of its transposes.
//!
//! A chain is fused only when every value it swallows has no other reader and is not a
//! graph output, so the fused graph computes exactly what the original did.

mod attention;

use std::collections::HashMap;

use crossover_core::op::conv::{ConvAttrs, PoolAttrs};
use crossover_core::op::nn::SoftmaxAxis;
use crossover_core::op::{ConvOp, ElementwiseOp as E, LinalgOp, NnOp};
use crossover_core::{invalid, DType, Error, Graph, Op, Result, Tensor, ValueId};
use ndarray::{Array1, Array2, ArrayD, ArrayView2, Axis, Ix2, IxDyn, Zip};
use rayon::prelude::*;

use crate::kernels::broadcast::{broadcast_shapes, view_as};
use crate::kernels::conv::{conv_with, direct, Epilogue};
use crate::kernels::elementwise::num::erf_f32;
use crate::kernels::linalg::gemm::gemm;
use crate::kernels::linalg::packed::{self, PackedWeights};
use crate::kernels::nn::softmax_row_f32;
use crate::kernels::simd;

/// What runs on the product after its bias.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Activation {
    Identity,
    Relu,
    Gelu,
}

/// `activation(x · weight + bias)` over the last axis of `x`.
pub(crate) struct Linear {
    weights: Weights,
    activation: Activation,
    /// `Gemm` takes only matrices; `MatMul` takes any rank.
    matrix_only: bool,
    /// The op the chain starts with, for errors.
    op: &'static str,
}

/// A [`Linear`]'s weight (`[K, N]`; `Gemm`'s alpha and transB folded in) and bias.
enum Weights {
    /// In our micro-kernels' layout, where this CPU has the vector ISA they need.
    Packed(PackedWeights),
    /// In rows, for the `gemm` crate.
    Rows {
        weight: Array2<f32>,
        bias: Option<Vec<f32>>,
    },
}

impl Weights {
    fn new(weight: Array2<f32>, bias: Option<Vec<f32>>) -> Weights {
        let (k, n) = weight.dim();
        let w = weight.as_slice().expect("weights are held in rows");
        match PackedWeights::new(simd::isa(), w, k, n, bias.as_deref()) {
            Some(p) => Weights::Packed(p),
            None => Weights::Rows { weight, bias },
        }
    }

    fn dim(&self) -> (usize, usize) {
        match self {
            Weights::Packed(p) => (p.k(), p.n()),
            Weights::Rows { weight, .. } => weight.dim(),
        }
    }
}

/// `max_pool(activation(conv(x, weight) + bias))`, a batch normalisation folded into
/// weight and bias; the pool, when present, is a 2-D `MaxPool` whose indices nobody reads.
pub(crate) struct ConvChain {
    attrs: ConvAttrs,
    weight: ArrayD<f32>,
    /// `weight` packed for the direct kernel, where that can apply.
    filters: Option<direct::Filters>,
    bias: Option<Array1<f32>>,
    activation: Activation,
    max_pool: Option<PoolAttrs>,
}

/// `softmax(scores · scale + mask)` along the last axis, the mask broadcast.
pub(crate) struct MaskedSoftmax {
    scale: f32,
    masked: bool,
}

/// What a fused chain runs.
pub(crate) enum Kernel {
    Linear(Linear),
    Conv(Box<ConvChain>),
    Softmax(MaskedSoftmax),
    Attention(Box<attention::Attention>),
}

impl Kernel {
    /// Runs on the chain's inputs, in the order of [`Fusion::inputs`].
    pub(crate) fn run(&self, x: &[&Tensor]) -> Result<Tensor> {
        match (self, x) {
            (Kernel::Linear(l), [x]) => l.run(x),
            (Kernel::Conv(c), [x]) => c.run(x),
            (Kernel::Softmax(s), [x, rest @ ..]) => s.run(x, rest.first().copied()),
            (Kernel::Attention(a), [q, k, v, rest @ ..]) => a.run([q, k, v], rest.first().copied()),
            _ => Err(invalid!("a fused step got {} inputs", x.len())),
        }
    }
}

/// A chain of nodes run as one kernel: it reads `inputs` and writes `output`.
pub(crate) struct Fusion {
    pub(crate) kernel: Kernel,
    pub(crate) inputs: Vec<ValueId>,
    pub(crate) output: ValueId,
    /// The nodes the chain replaces, the product first.
    pub(crate) nodes: Vec<usize>,
}

impl Fusion {
    #[cfg(test)]
    fn activation(&self) -> Activation {
        match &self.kernel {
            Kernel::Linear(l) => l.activation,
            Kernel::Conv(c) => c.activation,
            Kernel::Softmax(_) | Kernel::Attention(_) => Activation::Identity,
        }
    }
}

/// Readers of each value: the nodes that take it as an input, in graph order; and the
/// node that makes it.
struct Readers<'g> {
    graph: &'g Graph,
    of: HashMap<ValueId, Vec<usize>>,
    made_by: HashMap<ValueId, usize>,
}

impl<'g> Readers<'g> {
    fn new(graph: &'g Graph) -> Self {
        let mut of: HashMap<ValueId, Vec<usize>> = HashMap::new();
        let mut made_by = HashMap::new();
        for (i, node) in graph.nodes.iter().enumerate() {
            made_by.extend(node.outputs.iter().flatten().map(|&v| (v, i)));
            for v in node.inputs.iter().flatten() {
                let readers = of.entry(*v).or_default();
                if readers.last() != Some(&i) {
                    readers.push(i);
                }
            }
        }
        Readers { graph, of, made_by }
    }

    /// The node whose output `v` is.
    fn producer(&self, v: ValueId) -> Option<usize> {
        self.made_by.get(&v).copied()
    }

    /// The nodes reading `v`, if a fused chain may swallow it (not a graph output).
    fn private(&self, v: ValueId) -> Option<&[usize]> {
        if self.graph.outputs.contains(&v) {
            return None;
        }
        self.of.get(&v).map(Vec::as_slice)
    }

    /// Whether nothing reads `v`: no node and not the graph's outputs.
    fn unread(&self, v: ValueId) -> bool {
        !self.graph.outputs.contains(&v) && !self.of.contains_key(&v)
    }

    /// The one node reading `v`, if it is the only reader and `v` may be swallowed.
    fn sole(&self, v: ValueId) -> Option<usize> {
        match self.private(v)? {
            [only] => Some(*only),
            _ => None,
        }
    }
}

/// Every fusible chain in `graph`, none overlapping.
pub(crate) fn find(graph: &Graph) -> Vec<Fusion> {
    let readers = Readers::new(graph);
    let mut taken = vec![false; graph.nodes.len()];
    let mut found = Vec::new();
    for i in 0..graph.nodes.len() {
        if taken[i] {
            continue;
        }
        let chain = linear_chain(graph, &readers, i)
            .or_else(|| conv_chain(graph, &readers, i))
            .or_else(|| attention::chain(graph, &readers, i))
            .or_else(|| softmax_chain(graph, &readers, i));
        if let Some(f) = chain {
            if f.nodes.iter().all(|&n| !taken[n]) {
                for &n in &f.nodes {
                    taken[n] = true;
                }
                found.push(f);
            }
        }
    }
    found
}

fn constant(graph: &Graph, v: Option<ValueId>) -> Option<&Tensor> {
    graph.constants.get(&v?)
}

/// A constant f32 scalar (any shape of one element) close to `want`.
fn is_scalar(graph: &Graph, v: Option<ValueId>, want: f32) -> bool {
    match constant(graph, v) {
        Some(t) if t.dtype() == DType::F32 && t.len() == 1 => t
            .view::<f32>()
            .ok()
            .and_then(|a| a.iter().next().copied())
            .is_some_and(|x| (x - want).abs() <= 1e-4 * want.abs().max(1.0)),
        _ => false,
    }
}

/// The input of a binary node other than `v`, when `v` is one of its two inputs.
fn other_input(graph: &Graph, node: usize, v: ValueId) -> Option<Option<ValueId>> {
    match graph.nodes[node].inputs.as_slice() {
        [a, b] if *a == Some(v) => Some(*b),
        [a, b] if *b == Some(v) => Some(*a),
        _ => None,
    }
}

fn op_is(graph: &Graph, node: usize, want: E) -> bool {
    matches!(&graph.nodes[node].op, Op::Elementwise(e) if *e == want)
}

fn output(graph: &Graph, node: usize) -> Option<ValueId> {
    match graph.nodes[node].outputs.as_slice() {
        [Some(v)] => Some(*v),
        _ => None,
    }
}

/// The product at `head` with its bias and activation, if `head` is a product by a
/// constant f32 matrix.
fn linear_chain(graph: &Graph, readers: &Readers, head: usize) -> Option<Fusion> {
    let node = &graph.nodes[head];
    let (weight, mut bias, matrix_only, op) = match &node.op {
        Op::Linalg(LinalgOp::MatMul) => {
            let w = constant(graph, node.inputs.get(1).copied().flatten())?;
            let w = w.view::<f32>().ok()?.into_dimensionality::<Ix2>().ok()?;
            (w.as_standard_layout().into_owned(), None, false, "MatMul")
        }
        Op::Linalg(LinalgOp::Gemm {
            alpha,
            beta,
            trans_a: false,
            trans_b,
        }) => {
            let w = constant(graph, node.inputs.get(1).copied().flatten())?;
            let w = w.view::<f32>().ok()?.into_dimensionality::<Ix2>().ok()?;
            let w = if *trans_b { w.t() } else { w };
            // `mapv` keeps a transposed view's column-major order; the kernels want rows.
            let weight = w.as_standard_layout().mapv(|x| x * alpha);
            let n = weight.ncols();
            let bias = match node.inputs.get(2).copied().flatten() {
                None => None,
                Some(c) => Some(row_vector(graph.constants.get(&c)?, n)?)
                    .map(|c| c.iter().map(|x| x * beta).collect()),
            };
            (weight, bias, true, "Gemm")
        }
        _ => return None,
    };
    let mut nodes = vec![head];
    let mut out = output(graph, head)?;
    let n = weight.ncols();

    // MatMul's bias: Add(y, b) or Add(b, y) with a constant b of N elements.
    if bias.is_none() {
        if let Some(add) = readers.sole(out) {
            if op_is(graph, add, E::Add) {
                let b = other_input(graph, add, out).and_then(|b| constant(graph, b));
                if let Some(b) = b.and_then(|b| row_vector(b, n)) {
                    bias = Some(b);
                    nodes.push(add);
                    out = output(graph, add)?;
                }
            }
        }
    }

    let mut activation = Activation::Identity;
    if let Some((covered, last)) = gelu_chain(graph, readers, out) {
        activation = Activation::Gelu;
        nodes.extend(covered);
        out = last;
    } else if let Some(relu) = readers.sole(out) {
        if op_is(graph, relu, E::Relu) {
            activation = Activation::Relu;
            nodes.push(relu);
            out = output(graph, relu)?;
        }
    }
    Some(Fusion {
        kernel: Kernel::Linear(Linear {
            weights: Weights::new(weight, bias),
            activation,
            matrix_only,
            op,
        }),
        inputs: vec![node.inputs.first().copied().flatten()?],
        output: out,
        nodes,
    })
}

/// A `Conv` by constant f32 weights at `head`, with the inference-mode batch
/// normalisation and the Relu that follow it.
fn conv_chain(graph: &Graph, readers: &Readers, head: usize) -> Option<Fusion> {
    let node = &graph.nodes[head];
    let Op::Conv(ConvOp::Conv(attrs)) = &node.op else {
        return None;
    };
    let weight = constant(graph, node.inputs.get(1).copied().flatten())?;
    let mut weight = weight.view::<f32>().ok()?.to_owned();
    let m = *weight.shape().first()?;
    let mut bias = match node.inputs.get(2).copied().flatten() {
        None => None,
        Some(b) => Some(Array1::from(row_vector(graph.constants.get(&b)?, m)?)),
    };
    let mut nodes = vec![head];
    let mut out = output(graph, head)?;
    if let Some(bn) = readers.sole(out) {
        let bn_node = &graph.nodes[bn];
        if let Op::Nn(NnOp::BatchNormalization {
            epsilon,
            training: false,
            ..
        }) = &bn_node.op
        {
            let param = |i: usize| {
                let v = bn_node.inputs.get(i).copied().flatten()?;
                (v != out).then_some(())?;
                row_vector(graph.constants.get(&v)?, m).map(Array1::from)
            };
            if let (Some(gamma), Some(beta), Some(mean), Some(var), [_, _, _, _, _]) = (
                param(1),
                param(2),
                param(3),
                param(4),
                bn_node.inputs.as_slice(),
            ) {
                if bn_node.inputs[0] == Some(out) && bn_node.outputs.len() == 1 {
                    let scale = &gamma / &var.mapv(|v| (v + epsilon).sqrt());
                    for (mut w, s) in weight.axis_iter_mut(Axis(0)).zip(&scale) {
                        w.mapv_inplace(|v| v * s);
                    }
                    let b = bias.take().unwrap_or_else(|| Array1::zeros(m));
                    bias = Some((b - &mean) * &scale + &beta);
                    nodes.push(bn);
                    out = output(graph, bn)?;
                }
            }
        }
    }
    let mut activation = Activation::Identity;
    if let Some(relu) = readers.sole(out) {
        if op_is(graph, relu, E::Relu) {
            activation = Activation::Relu;
            nodes.push(relu);
            out = output(graph, relu)?;
        }
    }
    let mut max_pool = None;
    if let Some(pool) = readers.sole(out) {
        let pool_node = &graph.nodes[pool];
        if let Op::Conv(ConvOp::MaxPool {
            pool: pa,
            column_major: _,
        }) = &pool_node.op
        {
            let indices_unread = pool_node
                .outputs
                .get(1)
                .copied()
                .flatten()
                .is_none_or(|i| readers.unread(i));
            let planar = pa
                .window
                .kernel_shape
                .as_ref()
                .is_some_and(|k| k.len() == 2);
            if planar && indices_unread && pool_node.inputs.first() == Some(&Some(out)) {
                max_pool = Some(pa.clone());
                nodes.push(pool);
                out = pool_node.outputs.first().copied().flatten()?;
            }
        }
    }
    if nodes.len() == 1 {
        // Nothing to fold: the plain kernel is the same work.
        return None;
    }
    Some(Fusion {
        kernel: Kernel::Conv(Box::new(ConvChain {
            attrs: attrs.clone(),
            filters: weight
                .as_slice()
                .and_then(|w| direct::Filters::new(w, weight.shape(), attrs.group as usize)),
            weight,
            bias,
            activation,
            max_pool,
        })),
        inputs: vec![node.inputs.first().copied().flatten()?],
        output: out,
        nodes,
    })
}

impl ConvChain {
    fn run(&self, x: &Tensor) -> Result<Tensor> {
        let xv = x
            .view::<f32>()
            .map_err(|_| invalid!("Conv: the input is {}, the weight is float32", x.dtype()))?;
        let epilogue = Epilogue {
            bias: self.bias.as_ref().map(|b| b.view().into_dyn()),
            relu: self.activation == Activation::Relu,
            max_pool: self.max_pool.as_ref(),
        };
        Ok(conv_with(
            xv,
            self.weight.view(),
            self.filters.as_ref(),
            &self.attrs,
            &epilogue,
        )?
        .into())
    }
}

/// `Mul(scores, c)` (or `Div(scores, 1/c)`) at `head`, then `Add(·, mask)` and a
/// `Softmax` over the last axis, each the sole reader of the one before.
fn softmax_chain(graph: &Graph, readers: &Readers, head: usize) -> Option<Fusion> {
    let node = &graph.nodes[head];
    let scores = node.inputs.first().copied().flatten()?;
    let c = constant(graph, node.inputs.get(1).copied().flatten())?;
    if node.inputs.len() != 2 || c.dtype() != DType::F32 || c.len() != 1 {
        return None;
    }
    let c = c.view::<f32>().ok()?.iter().next().copied()?;
    let scale = match &node.op {
        Op::Elementwise(E::Mul) => c,
        Op::Elementwise(E::Div) => 1.0 / c,
        _ => return None,
    };
    let mut nodes = vec![head];
    let mut out = output(graph, head)?;
    let mut inputs = vec![scores];
    let add = readers.sole(out)?;
    if op_is(graph, add, E::Add) {
        let mask = other_input(graph, add, out)??;
        if mask == out {
            return None;
        }
        inputs.push(mask);
        nodes.push(add);
        out = output(graph, add)?;
    }
    let softmax = readers.sole(out)?;
    let rank = graph.value(out).shape.as_ref().map(Vec::len);
    let last = |a: i64| a == -1 || rank.is_some_and(|r| a >= 0 && a as usize + 1 == r);
    match &graph.nodes[softmax].op {
        Op::Nn(NnOp::Softmax {
            axis: SoftmaxAxis::Single(a) | SoftmaxAxis::Coerce2d(a),
        }) if last(*a) => {}
        _ => return None,
    }
    nodes.push(softmax);
    Some(Fusion {
        kernel: Kernel::Softmax(MaskedSoftmax {
            scale,
            masked: inputs.len() == 2,
        }),
        inputs,
        output: output(graph, softmax)?,
        nodes,
    })
}

fn f32_view<'t>(t: &'t Tensor, op: &str, what: &str) -> Result<ndarray::ArrayViewD<'t, f32>> {
    t.view::<f32>()
        .map_err(|_| invalid!("{op}: the {what} is {}, expected float32", t.dtype()))
}

impl MaskedSoftmax {
    fn run(&self, scores: &Tensor, mask: Option<&Tensor>) -> Result<Tensor> {
        let s = f32_view(scores, "Softmax", "scores")?;
        let m = match (self.masked, mask) {
            (true, Some(m)) => Some(f32_view(m, "Softmax", "mask")?),
            (false, None) => None,
            _ => return Err(invalid!("Softmax: the mask is missing")),
        };
        let shape = match &m {
            Some(m) => broadcast_shapes(s.shape(), m.shape())?,
            None => s.shape().to_vec(),
        };
        if shape.is_empty() {
            return Err(invalid!("Softmax needs a tensor of rank >= 1"));
        }
        let last = Axis(shape.len() - 1);
        let s = view_as(&s, &shape)?;
        let mut y = ArrayD::<f32>::zeros(IxDyn(&shape));
        let scale = self.scale;
        let lanes = y.len() / shape[shape.len() - 1].max(1);
        let row = |mut o: ndarray::ArrayViewMut1<f32>,
                   s: ndarray::ArrayView1<f32>,
                   m: Option<ndarray::ArrayView1<f32>>| {
            // Contiguous rows take the vector loop; a mask constant along the row does not.
            match (
                o.as_slice_mut(),
                s.as_slice(),
                m.as_ref().map(|m| m.as_slice()),
            ) {
                (Some(o), Some(s), None) => logits_row(o, s, None, scale),
                (Some(o), Some(s), Some(Some(m))) => logits_row(o, s, Some(m), scale),
                _ => match &m {
                    Some(m) => Zip::from(&mut o)
                        .and(&s)
                        .and(m)
                        .for_each(|o, &s, &m| *o = s * scale + m),
                    None => Zip::from(&mut o).and(&s).for_each(|o, &s| *o = s * scale),
                },
            }
            match o.as_slice_mut() {
                Some(o) => softmax_row_f32(o),
                None => {
                    let mut v = o.to_vec();
                    softmax_row_f32(&mut v);
                    o.assign(&ndarray::ArrayView1::from(&v));
                }
            }
        };
        let parallel = lanes > 1 && y.len() >= 1 << 14;
        match &m {
            Some(m) => {
                let m = view_as(m, &shape)?;
                let z = Zip::from(y.lanes_mut(last))
                    .and(s.lanes(last))
                    .and(m.lanes(last));
                if parallel {
                    z.par_for_each(|o, s, m| row(o, s, Some(m)));
                } else {
                    z.for_each(|o, s, m| row(o, s, Some(m)));
                }
            }
            None => {
                let z = Zip::from(y.lanes_mut(last)).and(s.lanes(last));
                if parallel {
                    z.par_for_each(|o, s| row(o, s, None));
                } else {
                    z.for_each(|o, s| row(o, s, None));
                }
            }
        }
        Ok(y.into())
    }
}

/// A constant of `n` f32 elements laid along the last axis (`[n]`, `[1, n]`, …).
fn row_vector(t: &Tensor, n: usize) -> Option<Vec<f32>> {
    let v = t.view::<f32>().ok()?;
    (v.len() == n && v.shape().last() == Some(&n)).then(|| v.iter().copied().collect())
}

/// The exporters' erf GELU on `u`: `Div(u, √2)` (or `Mul(u, 1/√2)`) → `Erf` → `Add 1`,
/// multiplied by `u` and by ½ in either order. Returns the nodes and the result.
fn gelu_chain(graph: &Graph, readers: &Readers, u: ValueId) -> Option<(Vec<usize>, ValueId)> {
    let [r0, r1] = readers.private(u)? else {
        return None;
    };
    let scaled = |node: usize| {
        let c = other_input(graph, node, u)?;
        let first = graph.nodes[node].inputs.first().copied().flatten() == Some(u);
        let ok = (op_is(graph, node, E::Div)
            && first
            && is_scalar(graph, c, std::f32::consts::SQRT_2))
            || (op_is(graph, node, E::Mul) && is_scalar(graph, c, std::f32::consts::FRAC_1_SQRT_2));
        ok.then_some(node)
    };
    let (div, other) = match (scaled(*r0), scaled(*r1)) {
        (Some(d), None) => (d, *r1),
        (None, Some(d)) => (d, *r0),
        _ => return None,
    };
    let erf = readers.sole(output(graph, div)?)?;
    if !op_is(graph, erf, E::Erf) {
        return None;
    }
    let plus = readers.sole(output(graph, erf)?)?;
    let erf_out = output(graph, erf)?;
    if !op_is(graph, plus, E::Add) || !is_scalar(graph, other_input(graph, plus, erf_out)?, 1.0) {
        return None;
    }
    let one_plus = output(graph, plus)?;
    if !op_is(graph, other, E::Mul) {
        return None;
    }
    let other_in = other_input(graph, other, u)?;
    let other_out = output(graph, other)?;
    let last = readers.sole(other_out)?;
    if !op_is(graph, last, E::Mul) {
        return None;
    }
    let last_in = other_input(graph, last, other_out)?;
    // u · (1 + erf) then · ½, or u · ½ then · (1 + erf).
    let ok = (other_in == Some(one_plus)
        && readers.sole(one_plus) == Some(other)
        && is_scalar(graph, last_in, 0.5))
        || (is_scalar(graph, other_in, 0.5)
            && last_in == Some(one_plus)
            && readers.sole(one_plus) == Some(last));
    if !ok {
        return None;
    }
    Some((vec![div, erf, plus, other, last], output(graph, last)?))
}

impl Linear {
    pub(crate) fn run(&self, x: &Tensor) -> Result<Tensor> {
        let x = x.view::<f32>().map_err(|_| {
            invalid!(
                "{}: the input is {}, the weight is float32",
                self.op,
                x.dtype()
            )
        })?;
        let (k, n) = self.weights.dim();
        let shape = x.shape();
        if (self.matrix_only && shape.len() != 2) || shape.is_empty() || shape[shape.len() - 1] != k
        {
            return Err(Error::ShapeMismatch(format!(
                "{}: input {shape:?} does not chain with weight {k}x{n}",
                self.op
            )));
        }
        let x = x.as_standard_layout();
        let x = x.as_slice().expect("standard layout");
        let m = x.len() / k.max(1);
        let mut out_shape = shape[..shape.len() - 1].to_vec();
        out_shape.push(n);
        let relu = self.activation == Activation::Relu;
        let y = match &self.weights {
            Weights::Packed(p) => {
                let mut y = packed::output(m * n);
                p.apply(x, m, relu, &mut y);
                // SAFETY: `apply` writes every element.
                unsafe { packed::assume_init(y) }
            }
            Weights::Rows { weight, bias } => {
                let mut y = match bias {
                    Some(b) => b.repeat(m),
                    None => vec![0.0; m * n],
                };
                let a =
                    ArrayView2::from_shape((m, k), x).map_err(|e| invalid!("{}: {e}", self.op))?;
                let c = ndarray::ArrayViewMut2::from_shape((m, n), &mut y)
                    .map_err(|e| invalid!("{}: {e}", self.op))?;
                let beta = if bias.is_some() { 1.0 } else { 0.0 };
                gemm(1.0, a, weight.view(), beta, c)?;
                if relu {
                    each(&mut y, |c| c.iter_mut().for_each(|v| *v = v.max(0.0)));
                }
                y
            }
        };
        let mut y = y;
        if self.activation == Activation::Gelu {
            each(&mut y, gelu_in_place);
        }
        Tensor::from_vec(&out_shape, y)
    }
}

/// GELU with erf, as `Gelu` (approximate "none") defines it.
#[inline(always)]
fn gelu(x: f32) -> f32 {
    0.5 * x * (1.0 + erf_f32(x * std::f32::consts::FRAC_1_SQRT_2))
}

simd::widest! {
    /// `o = s · scale + m` (the mask `m` optional): a masked softmax's row of logits.
    fn logits_row(o: &mut [f32], s: &[f32], m: Option<&[f32]>, scale: f32) {
        match m {
            Some(m) => {
                for ((o, &s), &m) in o.iter_mut().zip(s).zip(m) {
                    *o = s * scale + m;
                }
            }
            None => o.iter_mut().zip(s).for_each(|(o, &s)| *o = s * scale),
        }
    }
}

simd::widest! {
    /// GELU on every element, vectorised at the CPU's widest ISA.
    fn gelu_in_place(y: &mut [f32]) {
        y.iter_mut().for_each(|v| *v = gelu(*v));
    }
}

/// `f` on every element, in parallel chunks for large outputs.
fn each(y: &mut [f32], f: impl Fn(&mut [f32]) + Sync) {
    const CHUNK: usize = 1 << 14;
    let apply = |c: &mut [f32]| f(c);
    if y.len() > CHUNK {
        y.par_chunks_mut(CHUNK).for_each(apply);
    } else {
        apply(y);
    }
}

#[cfg(test)]
mod tests {
    use crossover_core::builder::{Attr, ModelBuilder};
    use crossover_core::{DType, Dim, Graph, Tensor, TensorData};

    use super::*;
    use crate::executor::Plan;
    use crate::kernels;

    pub(super) fn t(shape: &[usize], seed: u32) -> Tensor {
        let n: usize = shape.iter().product();
        let v = (0..n)
            .map(|i| {
                (((i as u32).wrapping_mul(2_654_435_761).wrapping_add(seed) >> 8) % 2001) as f32
                    / 500.0
                    - 2.0
            })
            .collect();
        Tensor::from_vec(shape, v).unwrap()
    }

    fn scalar(b: &mut ModelBuilder, name: &str, v: f32) -> String {
        b.weight(name, &Tensor::scalar(v))
    }

    /// `x [2, 3, 5] · W [5, 4] + b`, then GELU as exporters write it; `extra` also makes
    /// the product a graph output.
    fn gelu_graph(extra: bool) -> Graph {
        let mut b = ModelBuilder::new("linear_gelu");
        let dims = [Dim::Fixed(2), Dim::Fixed(3)];
        let x = b.input(
            "x",
            DType::F32,
            &[dims[0].clone(), dims[1].clone(), Dim::Fixed(5)],
        );
        let w = b.weight("w", &t(&[5, 4], 1));
        let bias = b.weight("b", &t(&[4], 2));
        let mm = b.node("MatMul", &[&x, &w], &[]);
        let u = b.node("Add", &[&bias, &mm], &[]);
        let sqrt2 = scalar(&mut b, "sqrt2", std::f32::consts::SQRT_2);
        let one = scalar(&mut b, "one", 1.0);
        let half = scalar(&mut b, "half", 0.5);
        let d = b.node("Div", &[&u, &sqrt2], &[]);
        let e = b.node("Erf", &[&d], &[]);
        let e1 = b.node("Add", &[&e, &one], &[]);
        let g = b.node("Mul", &[&u, &e1], &[]);
        let y = b.node("Mul", &[&g, &half], &[]);
        let out = [dims[0].clone(), dims[1].clone(), Dim::Fixed(4)];
        b.output(&y, "y", DType::F32, &out);
        if extra {
            b.output(&mm, "product", DType::F32, &out);
        }
        b.into_model().unwrap().graph
    }

    /// Every node on its own, as the plan ran before fusion.
    pub(super) fn reference(g: &Graph, inputs: &[Tensor]) -> Vec<Tensor> {
        let mut values: HashMap<ValueId, Tensor> = g.constants.clone().into_iter().collect();
        values.extend(g.inputs.iter().copied().zip(inputs.iter().cloned()));
        for node in &g.nodes {
            let args: Vec<Option<&Tensor>> = node
                .inputs
                .iter()
                .map(|v| v.and_then(|v| values.get(&v)))
                .collect();
            let outs = kernels::eval(&node.op, &args).unwrap();
            for (id, t) in node.outputs.iter().zip(outs) {
                values.insert(id.unwrap(), t);
            }
        }
        g.outputs.iter().map(|o| values[o].clone()).collect()
    }

    pub(super) fn assert_close(a: &Tensor, b: &Tensor, tol: f32) {
        assert_eq!(a.shape(), b.shape());
        let (a, b) = (a.view::<f32>().unwrap(), b.view::<f32>().unwrap());
        for (x, y) in a.iter().zip(b.iter()) {
            assert!((x - y).abs() <= tol, "{x} vs {y}");
        }
    }

    #[test]
    fn matmul_bias_gelu_runs_as_one_step() {
        let g = gelu_graph(false);
        let found = find(&g);
        assert_eq!(found.len(), 1);
        assert_eq!(
            found[0].nodes.len(),
            7,
            "MatMul, Add and the five GELU nodes"
        );
        assert_eq!(found[0].activation(), Activation::Gelu);
        let x = [t(&[2, 3, 5], 3)];
        let plan = Plan::new(&g).unwrap();
        let (got, _) = plan.execute(&g, &x, &[]).unwrap();
        assert_close(&got[0], &reference(&g, &x)[0], 1e-5);
    }

    #[test]
    fn a_product_read_elsewhere_is_not_swallowed() {
        let g = gelu_graph(true);
        for f in find(&g) {
            assert_eq!(
                f.nodes,
                vec![f.nodes[0]],
                "only the product itself may fuse"
            );
        }
        let x = [t(&[2, 3, 5], 4)];
        let (got, _) = Plan::new(&g).unwrap().execute(&g, &x, &[]).unwrap();
        let want = reference(&g, &x);
        assert_close(&got[0], &want[0], 1e-5);
        assert_close(&got[1], &want[1], 1e-5);
    }

    #[test]
    fn gemm_with_transposed_weight_and_relu() {
        let mut b = ModelBuilder::new("gemm_relu");
        let x = b.input("x", DType::F32, &[Dim::Param("n".into()), Dim::Fixed(6)]);
        let w = b.weight("w", &t(&[3, 6], 5));
        let c = b.weight("c", &t(&[1, 3], 6));
        let attrs = [
            ("transB", Attr::Int(1)),
            ("alpha", Attr::Float(0.5)),
            ("beta", Attr::Float(2.0)),
        ];
        let y = b.node("Gemm", &[&x, &w, &c], &attrs);
        let y = b.node("Relu", &[&y], &[]);
        b.output(
            &y,
            "y",
            DType::F32,
            &[Dim::Param("n".into()), Dim::Fixed(3)],
        );
        let g = b.into_model().unwrap().graph;
        let found = find(&g);
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].activation(), Activation::Relu);
        // Held in rows (or packed from them): a column-major weight sends every
        // product through the gemm crate's packing.
        let Kernel::Linear(l) = &found[0].kernel else {
            panic!("a Gemm chain is a Linear step");
        };
        if let Weights::Rows { weight, .. } = &l.weights {
            assert!(weight.is_standard_layout());
        }
        let plan = Plan::new(&g).unwrap();
        for rows in [1, 7] {
            let x = [t(&[rows, 6], 7)];
            let (got, _) = plan.execute(&g, &x, &[]).unwrap();
            assert_close(&got[0], &reference(&g, &x)[0], 1e-5);
        }
        let err = plan
            .execute(&g, &[t(&[2, 5], 8)], &[])
            .unwrap_err()
            .to_string();
        assert!(err.contains("Gemm"), "{err}");
    }

    #[test]
    fn conv_batchnorm_relu_fold_into_one_step() {
        let mut b = ModelBuilder::new("conv_bn_relu");
        let x = b.input(
            "x",
            DType::F32,
            &[
                Dim::Param("n".into()),
                Dim::Fixed(3),
                Dim::Fixed(6),
                Dim::Fixed(5),
            ],
        );
        let w = b.weight("w", &t(&[4, 3, 3, 3], 10));
        let bias = b.weight("b", &t(&[4], 11));
        let y = b.node(
            "Conv",
            &[&x, &w, &bias],
            &[("pads", Attr::Ints(vec![1, 1, 1, 1]))],
        );
        let gamma = b.weight("gamma", &t(&[4], 12));
        let beta = b.weight("beta", &t(&[4], 13));
        let mean = b.weight("mean", &t(&[4], 14));
        let var = b.weight(
            "var",
            &Tensor::from_vec(&[4], vec![0.5f32, 1.0, 2.0, 4.0]).unwrap(),
        );
        let y = b.node(
            "BatchNormalization",
            &[&y, &gamma, &beta, &mean, &var],
            &[("epsilon", Attr::Float(1e-5))],
        );
        let y = b.node("Relu", &[&y], &[]);
        b.output(
            &y,
            "y",
            DType::F32,
            &[
                Dim::Param("n".into()),
                Dim::Fixed(4),
                Dim::Fixed(6),
                Dim::Fixed(5),
            ],
        );
        let g = b.into_model().unwrap().graph;
        let found = find(&g);
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].nodes.len(), 3);
        assert_eq!(found[0].activation(), Activation::Relu);
        let x = [t(&[2, 3, 6, 5], 15)];
        let (got, _) = Plan::new(&g).unwrap().execute(&g, &x, &[]).unwrap();
        assert_close(&got[0], &reference(&g, &x)[0], 1e-4);
    }

    /// Grouped `Conv → Relu → MaxPool` (3×3 windows, stride 2, padded, ceil mode, on odd
    /// sizes); `indices` also makes the pool's second output a graph output.
    fn conv_pool_graph(indices: bool) -> Graph {
        let mut b = ModelBuilder::new("conv_relu_pool");
        let n = Dim::Param("n".into());
        let x = b.input(
            "x",
            DType::F32,
            &[n.clone(), Dim::Fixed(4), Dim::Fixed(7), Dim::Fixed(9)],
        );
        let w = b.weight("w", &t(&[6, 2, 3, 2], 20));
        let bias = b.weight("b", &t(&[6], 21));
        let y = b.node(
            "Conv",
            &[&x, &w, &bias],
            &[
                ("pads", Attr::Ints(vec![1, 0, 1, 1])),
                ("group", Attr::Int(2)),
            ],
        );
        let y = b.node("Relu", &[&y], &[]);
        let outs = b.node_n(
            "MaxPool",
            &[&y],
            &[
                ("kernel_shape", Attr::Ints(vec![3, 3])),
                ("strides", Attr::Ints(vec![2, 2])),
                ("pads", Attr::Ints(vec![1, 1, 0, 1])),
                ("ceil_mode", Attr::Int(1)),
            ],
            if indices { 2 } else { 1 },
        );
        let dims = [n, Dim::Fixed(6), Dim::Fixed(4), Dim::Fixed(5)];
        b.output(&outs[0], "y", DType::F32, &dims);
        if indices {
            b.output(&outs[1], "indices", DType::I64, &dims);
        }
        b.into_model().unwrap().graph
    }

    #[test]
    fn a_max_pool_after_a_conv_runs_in_its_epilogue() {
        let g = conv_pool_graph(false);
        let found = find(&g);
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].nodes.len(), 3);
        for n in [1, 3] {
            let x = [t(&[n, 4, 7, 9], 22)];
            let want = reference(&g, &x);
            assert_eq!(want[0].shape(), [n, 6, 4, 5]);
            let (got, _) = Plan::new(&g).unwrap().execute(&g, &x, &[]).unwrap();
            assert_close(&got[0], &want[0], 1e-5);
        }
        // Indices someone reads need the pool's own kernel.
        let g = conv_pool_graph(true);
        let found = find(&g);
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].nodes.len(), 2);
        let x = [t(&[2, 4, 7, 9], 23)];
        let (got, _) = Plan::new(&g).unwrap().execute(&g, &x, &[]).unwrap();
        let want = reference(&g, &x);
        assert_close(&got[0], &want[0], 1e-5);
        assert_eq!(got[1].to_i64_vec().unwrap(), want[1].to_i64_vec().unwrap());
    }

    #[test]
    fn scaled_masked_softmax_is_one_pass() {
        // A mask along the rows (contiguous in each), and one constant along them.
        for last in [5, 1] {
            scaled_masked_softmax(last);
        }
    }

    fn scaled_masked_softmax(last: usize) {
        let mut b = ModelBuilder::new("attention_scores");
        let dims = [2, 3, 4, 5].map(Dim::Fixed);
        let x = b.input("scores", DType::F32, &dims);
        let mask = b.input(
            "mask",
            DType::F32,
            &[
                Dim::Fixed(2),
                Dim::Fixed(1),
                Dim::Fixed(1),
                Dim::Fixed(last),
            ],
        );
        let c = scalar(&mut b, "scale", 0.25);
        let y = b.node("Mul", &[&x, &c], &[]);
        // The mask computed between the chain's nodes, as exporters order it.
        let mask = b.node("Identity", &[&mask], &[]);
        let y = b.node("Add", &[&y, &mask], &[]);
        let y = b.node("Softmax", &[&y], &[("axis", Attr::Int(-1))]);
        b.output(&y, "probs", DType::F32, &dims);
        let g = b.into_model().unwrap().graph;
        let found = find(&g);
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].nodes.len(), 3);
        let mut m = t(&[2, 1, 1, last], 21);
        if let TensorData::F32(a) = &mut *m {
            a[[1, 0, 0, last - 1]] = -1e4;
        }
        let x = [t(&[2, 3, 4, 5], 20), m];
        let (got, _) = Plan::new(&g).unwrap().execute(&g, &x, &[]).unwrap();
        assert_close(&got[0], &reference(&g, &x)[0], 1e-6);
        let err = Plan::new(&g)
            .unwrap()
            .execute(&g, &[x[0].clone(), t(&[3, 1, 1, last], 22)], &[])
            .unwrap_err()
            .to_string();
        assert!(err.contains("broadcast"), "{err}");
    }

    #[test]
    fn a_wrong_inner_dimension_names_the_op() {
        let g = gelu_graph(false);
        let plan = Plan::new(&g).unwrap();
        let err = plan
            .execute(&g, &[t(&[2, 3, 6], 9)], &[])
            .unwrap_err()
            .to_string();
        assert!(err.contains("MatMul") && err.contains("5x4"), "{err}");
    }
}
