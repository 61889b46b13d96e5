//! Scaled dot-product attention as one kernel (`attention.wgsl`), in place of the five
//! nodes exporters write for it: `MatMul(q, kt)`, `Mul`/`Div` by a constant scalar,
//! `Add` of a mask, `Softmax` on the last axis, `MatMul(·, v)` (scale and mask optional).
//!
//! [`find`] recognises the chain when the plan is built, only where every swallowed
//! intermediate has the next node as its one reader and is not a graph output. The run
//! defers the chain's nodes to its last one (exporters often compute `v` after the
//! scores) and calls [`lower`] there; when this run's shapes or dtypes do not fit the
//! kernel, it returns `false` and the deferred nodes run one by one.

use crossover_core::op::nn::{NnOp, SoftmaxAxis};
use crossover_core::op::{ElementwiseOp as E, LinalgOp};
use crossover_core::{DType, Graph, Op, Result, ValueId};
use crossover_kernels::wgsl;

use crate::exec::Run;
use crate::lower::{all_f32, broadcast, broadcast_strides, dev, f, input, output, u};

/// Keys per query row the kernel holds in workgroup memory (`p` in attention.wgsl).
const MAX_KEYS: usize = 448;

/// One recognised chain.
#[derive(Clone, Debug)]
pub(crate) struct Attention {
    /// The chain's node indices, first to last.
    pub nodes: Vec<usize>,
    q: ValueId,
    kt: ValueId,
    v: ValueId,
    mask: Option<ValueId>,
    scale: f32,
    axis: SoftmaxAxis,
    out: ValueId,
}

impl Attention {
    /// Whether `v` is one of the chain's own intermediates.
    pub fn produces(&self, graph: &Graph, v: ValueId) -> bool {
        self.nodes
            .iter()
            .any(|&j| graph.nodes[j].outputs.contains(&Some(v)))
    }
}

/// The chains in the graph, no node in two.
pub(crate) fn find(graph: &Graph) -> Vec<Attention> {
    let mut readers = vec![Vec::new(); graph.values.len()];
    for (i, n) in graph.nodes.iter().enumerate() {
        for v in n.inputs.iter().flatten() {
            readers[v.0].push(i);
        }
    }
    let sole_reader = |v: ValueId| match readers[v.0].as_slice() {
        [j] if !graph.outputs.contains(&v) => Some(*j),
        _ => None,
    };
    let scalar = |v: ValueId| {
        let t = graph.constants.get(&v)?;
        if t.dtype() != DType::F32 || t.len() != 1 || t.shape().len() > 1 {
            return None;
        }
        t.to_f64_vec().ok().map(|x| x[0] as f32)
    };
    // The operand of a two-input node that is not `cur`.
    let other = |j: usize, cur: ValueId| -> Option<(usize, ValueId)> {
        let n = &graph.nodes[j];
        match (input(n, 0), input(n, 1), n.inputs.len()) {
            (Some(a), Some(b), 2) if a == cur => Some((1, b)),
            (Some(a), Some(b), 2) if b == cur => Some((0, a)),
            _ => None,
        }
    };
    let chain = |i: usize| -> Option<Attention> {
        let first = &graph.nodes[i];
        if !matches!(first.op, Op::Linalg(LinalgOp::MatMul)) || first.inputs.len() != 2 {
            return None;
        }
        let (q, kt, mut cur) = (input(first, 0)?, input(first, 1)?, output(first, 0)?);
        let mut nodes = vec![i];
        let mut j = sole_reader(cur)?;
        let mut scale = 1.0;
        let step = |nodes: &mut Vec<usize>, j: usize| {
            nodes.push(j);
            output(&graph.nodes[j], 0)
        };
        if let Op::Elementwise(e @ (E::Mul | E::Div)) = &graph.nodes[j].op {
            let (pos, c) = other(j, cur)?;
            let c = scalar(c)?;
            scale = match e {
                E::Mul => c,
                _ if pos == 1 => 1.0 / c,
                _ => return None,
            };
            cur = step(&mut nodes, j)?;
            j = sole_reader(cur)?;
        }
        let mut mask = None;
        if let Op::Elementwise(E::Add) = &graph.nodes[j].op {
            mask = Some(other(j, cur)?.1);
            cur = step(&mut nodes, j)?;
            j = sole_reader(cur)?;
        }
        let Op::Nn(NnOp::Softmax { axis }) = &graph.nodes[j].op else {
            return None;
        };
        let axis = *axis;
        cur = step(&mut nodes, j)?;
        j = sole_reader(cur)?;
        let last = &graph.nodes[j];
        if !matches!(last.op, Op::Linalg(LinalgOp::MatMul)) || input(last, 0) != Some(cur) {
            return None;
        }
        let v = input(last, 1)?;
        let out = step(&mut nodes, j)?;
        Some(Attention {
            nodes,
            q,
            kt,
            v,
            mask,
            scale,
            axis,
            out,
        })
    };
    let mut used = vec![false; graph.nodes.len()];
    let mut found = Vec::new();
    for a in (0..graph.nodes.len()).filter_map(chain) {
        if a.nodes.iter().all(|&j| !used[j]) {
            a.nodes.iter().for_each(|&j| used[j] = true);
            found.push(a);
        }
    }
    found
}

/// Dispatches the chain as one kernel; `Ok(false)`, with no side effects, when this run's
/// values do not fit it.
pub(crate) fn lower(r: &mut Run, a: &Attention) -> Result<bool> {
    if !all_f32(r, &[Some(a.q), Some(a.kt), Some(a.v), a.mask]) {
        return Ok(false);
    }
    let (Some(qs), Some(ks), Some(vs)) = (r.shape(a.q), r.shape(a.kt), r.shape(a.v)) else {
        return Ok(false);
    };
    let rank = qs.len();
    if !(3..=4).contains(&rank) || ks.len() != rank || vs.len() != rank {
        return Ok(false);
    }
    let batch = &qs[..rank - 2];
    if ks[..rank - 2] != *batch || vs[..rank - 2] != *batch {
        return Ok(false);
    }
    let (sq, d, sk, dv) = (qs[rank - 2], qs[rank - 1], ks[rank - 1], vs[rank - 1]);
    if ks[rank - 2] != d || vs[rank - 2] != sk || sk == 0 || sk > MAX_KEYS {
        return Ok(false);
    }
    let (SoftmaxAxis::Single(axis) | SoftmaxAxis::Coerce2d(axis)) = a.axis;
    if axis != -1 && axis != rank as i64 - 1 {
        return Ok(false);
    }
    let mut scores = batch.to_vec();
    scores.extend([sq, sk]);
    // [b0, b1, sq, sk]: the batch is b0 * b1 rows of sq queries.
    let mut full = [1usize; 4];
    full[4 - rank..].copy_from_slice(&scores);
    let mut mask_strides = [0usize; 4];
    if let Some(m) = a.mask {
        let Some(ms) = r.shape(m) else {
            return Ok(false);
        };
        if ms.len() > 4 || broadcast(&ms, &scores).ok().as_ref() != Some(&scores) {
            return Ok(false);
        }
        mask_strides.copy_from_slice(&broadcast_strides(&ms, &full));
    }
    let q = dev(r, a.q)?;
    let kt = dev(r, a.kt)?;
    let v = dev(r, a.v)?;
    let mask = match a.mask {
        Some(m) => dev(r, m)?.buf,
        None => r.m.gpu.dummy.clone(),
    };
    let mut out_shape = batch.to_vec();
    out_shape.extend([sq, dv]);
    let y = r.output(out_shape, "attention")?;
    // One workgroup per 4 query rows of a batch.
    let groups = batch.iter().product::<usize>() * sq.div_ceil(4);
    if groups > 0 && dv > 0 {
        let grid = r.m.gpu.grid_rows(groups, "attention")?;
        let mut w = vec![
            u(groups)?,
            u(sq)?,
            u(sk)?,
            u(d)?,
            u(dv)?,
            f(a.scale),
            a.mask.is_some() as u32,
            u(full[1])?,
        ];
        for s in mask_strides {
            w.push(u(s)?);
        }
        r.dispatch(
            &wgsl::ATTENTION,
            &w,
            &[&q.buf, &kt.buf, &v.buf, &mask],
            &y.buf,
            grid,
        )?;
    }
    r.set_dev(a.out, y);
    Ok(true)
}
