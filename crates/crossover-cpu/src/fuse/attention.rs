//! Scaled dot-product attention as exporters write it, from the heads' split to their
//! merge: `Reshape` + `Transpose` of the query, key and value projections, the scores
//! product, [`MaskedSoftmax`](super::MaskedSoftmax)'s scale, mask and softmax, the
//! product by the values, and the `Transpose` + `Reshape` that merges the heads. Run as
//! one step, each (batch, head) reads its columns of the `[batch, seq, hidden]`
//! projections where they lie: it gathers its query rows (scaled), packs its keys
//! (transposed) and values into the panels of our GEMM tiles, and writes its context
//! into its columns of the merged output. None of the four transposes becomes a tensor,
//! and one head's scores stay in cache from their product through the softmax to the
//! values' product.

use crossover_core::op::{LayoutOp, LinalgOp};
use crossover_core::{invalid, DType, Error, Graph, Op, Result, Tensor, ValueId};
use ndarray::{ArrayView4, Ix4};
use rayon::prelude::*;

use super::{constant, f32_view, output, softmax_chain, Fusion, Kernel, MaskedSoftmax, Readers};
use crate::kernels::broadcast::{broadcast_shapes, view_as};
use crate::kernels::layout::reshape_target;
use crate::kernels::linalg::packed::{self, Out, PackedWeights};
use crate::kernels::nn::softmax_row_f32;
use crate::kernels::simd::{self, Isa};

/// A constant `Reshape` target: the heads' split of a projection, or their merge.
#[derive(Clone, Debug)]
struct Reshape {
    spec: Vec<i64>,
    allow_zero: bool,
}

impl Reshape {
    fn apply(&self, shape: &[usize], what: &str) -> Result<Vec<usize>> {
        reshape_target(shape, &self.spec, self.allow_zero)
            .map_err(|e| invalid!("Attention: the {what}: {e}"))
    }
}

/// `softmax(split(q)ᵀ · split(k) · scale + mask) · split(v)`, merged back to one axis of
/// heads × size.
pub(crate) struct Attention {
    isa: Isa,
    scale: f32,
    masked: bool,
    /// The query's, key's and value's `[batch, seq, heads, size]` splits.
    split: [Reshape; 3],
    /// Of the context, `[batch, seq, heads, size]` in memory.
    merge: Reshape,
}

/// The query, key or value as `[batch, seq, heads, size]`, read in place.
struct Heads<'a> {
    data: &'a [f32],
    dims: [usize; 4],
}

impl Heads<'_> {
    /// Offset of the first row of head `h` in batch `b` (each broadcast where there is
    /// one).
    fn first(&self, b: usize, h: usize) -> usize {
        let [batches, seq, heads, size] = self.dims;
        let b = if batches == 1 { 0 } else { b };
        let h = if heads == 1 { 0 } else { h };
        (b * seq * heads + h) * size
    }

    /// Values from one row of a head to its next: all heads' sizes.
    fn row_stride(&self) -> usize {
        self.dims[2] * self.dims[3]
    }
}

/// The one size of a batch or heads axis that `sizes` broadcast to, each equal to it or 1.
fn broadcast_axis(sizes: [usize; 3], what: &str, shapes: [&[usize]; 3]) -> Result<usize> {
    let n = sizes.into_iter().max().unwrap_or(1);
    if sizes.iter().any(|&s| s != n && s != 1) {
        return Err(Error::ShapeMismatch(format!(
            "Attention: the {what} of query {:?}, key {:?} and value {:?} do not broadcast",
            shapes[0], shapes[1], shapes[2]
        )));
    }
    Ok(n)
}

impl Attention {
    pub(crate) fn run(&self, x: [&Tensor; 3], mask: Option<&Tensor>) -> Result<Tensor> {
        let names = ["query", "key", "value"];
        let views = [0, 1, 2].map(|i| f32_view(x[i], "Attention", names[i]));
        let views = views.into_iter().collect::<Result<Vec<_>>>()?;
        let dense: Vec<_> = views.iter().map(|v| v.as_standard_layout()).collect();
        let mut heads = Vec::with_capacity(3);
        for (i, d) in dense.iter().enumerate() {
            let split = self.split[i].apply(d.shape(), names[i])?;
            let dims: [usize; 4] = split.as_slice().try_into().map_err(|_| {
                invalid!(
                    "Attention: the {} splits into {split:?}, not [batch, seq, heads, size]",
                    names[i]
                )
            })?;
            heads.push(Heads {
                data: d.as_slice().expect("standard layout"),
                dims,
            });
        }
        let [q, k, v] = [&heads[0], &heads[1], &heads[2]];
        let shapes = [q.dims, k.dims, v.dims];
        let shapes = [&shapes[0][..], &shapes[1][..], &shapes[2][..]];
        let batch = broadcast_axis([q.dims[0], k.dims[0], v.dims[0]], "batches", shapes)?;
        let n_heads = broadcast_axis([q.dims[2], k.dims[2], v.dims[2]], "heads", shapes)?;
        let (seq, size, keys, v_size) = (q.dims[1], q.dims[3], k.dims[1], v.dims[3]);
        if k.dims[3] != size || v.dims[1] != keys {
            return Err(Error::ShapeMismatch(format!(
                "Attention: query {:?}, key {:?} and value {:?} (split into [batch, seq, \
                 heads, size]) do not chain",
                shapes[0], shapes[1], shapes[2]
            )));
        }
        let scores_shape = [batch, n_heads, seq, keys];
        let mask = match (self.masked, mask) {
            (true, Some(m)) => {
                let m = f32_view(m, "Attention", "mask")?;
                let fits = broadcast_shapes(&scores_shape, m.shape())
                    .is_ok_and(|s| s[..] == scores_shape[..]);
                if !fits {
                    return Err(Error::ShapeMismatch(format!(
                        "Attention: the mask {:?} does not broadcast to the scores {scores_shape:?}",
                        m.shape()
                    )));
                }
                Some(m)
            }
            (false, None) => None,
            _ => return Err(invalid!("Attention: the mask is missing")),
        };
        let mask = match &mask {
            Some(m) => Some(
                view_as(m, &scores_shape)?
                    .into_dimensionality::<Ix4>()
                    .expect("four axes"),
            ),
            None => None,
        };

        let ldc = n_heads * v_size;
        let merged = self
            .merge
            .apply(&[batch, seq, n_heads, v_size], "merged context")?;
        if keys == 0 {
            // No key to attend to: the products over zero keys are zero.
            return Tensor::from_vec(&merged, vec![0.0; batch * seq * ldc]);
        }
        let mut out = packed::output(batch * seq * ldc);
        let ctx = Out(out.as_mut_ptr().cast());
        (0..batch * n_heads).into_par_iter().for_each(|t| {
            let (b, h) = (t / n_heads, t % n_heads);
            // SAFETY: (b, h)'s context is `seq` rows of `v_size` columns from its offset,
            // `ldc` apart: inside the output, and no other task's.
            unsafe {
                self.head(
                    [q, k, v],
                    mask.as_ref(),
                    (b, h),
                    ctx.get().add(b * seq * ldc + h * v_size),
                    ldc,
                )
            };
        });
        // SAFETY: the heads' column ranges tile every row of every batch.
        let out = unsafe { packed::assume_init(out) };
        Tensor::from_vec(&merged, out)
    }

    /// One head's context into `seq` rows of `c`, `ldc` apart.
    ///
    /// # Safety
    /// `c` must be writable as that, by this call alone.
    unsafe fn head(
        &self,
        [q, k, v]: [&Heads; 3],
        mask: Option<&ArrayView4<f32>>,
        (b, h): (usize, usize),
        c: *mut f32,
        ldc: usize,
    ) {
        let (seq, size, keys, v_size) = (q.dims[1], q.dims[3], k.dims[1], v.dims[3]);
        // The query's rows gathered and scaled (the tiles read rows of `size` in a
        // row): the scores come out of the product scaled.
        let (q0, qs) = (q.first(b, h), q.row_stride());
        let mut queries = Vec::with_capacity(seq * size);
        for i in 0..seq {
            let row = &q.data[q0 + i * qs..][..size];
            queries.extend(row.iter().map(|&x| x * self.scale));
        }
        let (k0, ks) = (k.first(b, h), k.row_stride());
        let kt = PackedWeights::from_columns(self.isa, size, keys, |j| &k.data[k0 + j * ks..]);
        let mut scores = packed::output(seq * keys);
        // SAFETY: `scores` is seq × keys.
        unsafe { kt.apply_into(&queries, seq, scores.as_mut_ptr().cast(), keys) };
        // SAFETY: the product wrote every score.
        let mut scores = unsafe { packed::assume_init(scores) };
        let mask = mask.map(|m| m.slice(ndarray::s![b, h, .., ..]));
        for (i, row) in scores.chunks_exact_mut(keys).enumerate() {
            if let Some(m) = &mask {
                let m = m.row(i);
                match m.as_slice() {
                    Some(m) => add_row(row, m),
                    None => row.iter_mut().zip(m).for_each(|(s, m)| *s += m),
                }
            }
            softmax_row_f32(row);
        }
        let (v0, vs) = (v.first(b, h), v.row_stride());
        let vp =
            PackedWeights::from_rows(self.isa, keys, v_size, |j| &v.data[v0 + j * vs..][..v_size]);
        // SAFETY: `scores` holds seq rows of `keys`; the caller vouches for `c`.
        unsafe { vp.apply_into(&scores, seq, c, ldc) };
    }
}

simd::widest! {
    /// `o += m`: a row of scores gets its mask.
    fn add_row(o: &mut [f32], m: &[f32]) {
        o.iter_mut().zip(m).for_each(|(o, &m)| *o += m);
    }
}

/// `Reshape(x, spec)` then `Transpose(perm)`, each read only by the next node and the
/// transpose by `reader`: returns `x`, the split and the two nodes.
fn split_heads(
    graph: &Graph,
    readers: &Readers,
    t: ValueId,
    reader: usize,
    perm: [i64; 4],
) -> Option<(ValueId, Reshape, [usize; 2])> {
    if readers.sole(t)? != reader {
        return None;
    }
    let transpose = readers.producer(t)?;
    match &graph.nodes[transpose].op {
        Op::Layout(LayoutOp::Transpose { perm: Some(p) }) if p[..] == perm[..] => {}
        _ => return None,
    }
    let r = graph.nodes[transpose].inputs.first().copied().flatten()?;
    let (reshape, x, split) = reshape_of(graph, readers, r, transpose)?;
    Some((x, split, [reshape, transpose]))
}

/// The `Reshape` by a constant target that makes `r`, read only by `reader`: its node,
/// input and target.
fn reshape_of(
    graph: &Graph,
    readers: &Readers,
    r: ValueId,
    reader: usize,
) -> Option<(usize, ValueId, Reshape)> {
    if readers.sole(r)? != reader {
        return None;
    }
    let node = readers.producer(r)?;
    let x = graph.nodes[node].inputs.first().copied().flatten()?;
    Some((node, x, reshape_target_of(graph, node)?))
}

/// Node `node`'s target, if it is a `Reshape` by a constant.
fn reshape_target_of(graph: &Graph, node: usize) -> Option<Reshape> {
    let Op::Layout(LayoutOp::Reshape { allow_zero }) = &graph.nodes[node].op else {
        return None;
    };
    let spec = constant(graph, graph.nodes[node].inputs.get(1).copied().flatten())?;
    Some(Reshape {
        spec: spec.view::<i64>().ok()?.iter().copied().collect(),
        allow_zero: *allow_zero,
    })
}

/// Whether `v` is float32, or of a type not inferred (a graph that skipped the passes;
/// the step then checks at run time).
fn may_be_f32(graph: &Graph, v: ValueId) -> bool {
    matches!(graph.value(v).dtype, None | Some(DType::F32))
}

/// The attention at `head`, the scores' `MatMul`, from the heads' split to their merge.
pub(super) fn chain(graph: &Graph, readers: &Readers, head: usize) -> Option<Fusion> {
    let isa = simd::isa()?;
    let is_matmul = |n: usize| matches!(graph.nodes[n].op, Op::Linalg(LinalgOp::MatMul));
    if !is_matmul(head) {
        return None;
    }
    let [Some(qt), Some(kt)] = graph.nodes[head].inputs[..] else {
        return None;
    };
    let (q, q_split, q_nodes) = split_heads(graph, readers, qt, head, [0, 2, 1, 3])?;
    let (k, k_split, k_nodes) = split_heads(graph, readers, kt, head, [0, 2, 3, 1])?;
    let scores = output(graph, head)?;

    // Scale, mask and softmax over the keys, as MaskedSoftmax fuses them.
    let softmax = softmax_chain(graph, readers, readers.sole(scores)?)?;
    let Kernel::Softmax(MaskedSoftmax { scale, masked }) = softmax.kernel else {
        return None;
    };
    if softmax.inputs.first() != Some(&scores) {
        return None;
    }
    let mask = softmax.inputs.get(1).copied();
    let probs = softmax.output;

    let context = readers.sole(probs)?;
    if !is_matmul(context) {
        return None;
    }
    let [Some(p), Some(vt)] = graph.nodes[context].inputs[..] else {
        return None;
    };
    if p != probs {
        return None;
    }
    let (v, v_split, v_nodes) = split_heads(graph, readers, vt, context, [0, 2, 1, 3])?;

    let ctx = output(graph, context)?;
    let merge_t = readers.sole(ctx)?;
    match &graph.nodes[merge_t].op {
        Op::Layout(LayoutOp::Transpose { perm: Some(p) }) if p[..] == [0, 2, 1, 3] => {}
        _ => return None,
    }
    let merged = output(graph, merge_t)?;
    let merge_r = readers.sole(merged)?;
    if graph.nodes[merge_r].inputs.first() != Some(&Some(merged)) {
        return None;
    }
    let merge = reshape_target_of(graph, merge_r)?;
    let out = output(graph, merge_r)?;
    if ![q, k, v].iter().all(|&x| may_be_f32(graph, x)) {
        return None;
    }

    let mut nodes = vec![head];
    nodes.extend(q_nodes.into_iter().chain(k_nodes));
    nodes.extend(softmax.nodes);
    nodes.push(context);
    nodes.extend(v_nodes);
    nodes.extend([merge_t, merge_r]);
    let mut inputs = vec![q, k, v];
    inputs.extend(mask);
    Some(Fusion {
        kernel: Kernel::Attention(Box::new(Attention {
            isa,
            scale,
            masked,
            split: [q_split, k_split, v_split],
            merge,
        })),
        inputs,
        output: out,
        nodes,
    })
}

#[cfg(test)]
mod tests {
    use crossover_core::builder::{Attr, ModelBuilder};
    use crossover_core::{DType, Dim, Graph, Tensor};

    use super::super::tests::{assert_close, reference, t};
    use super::super::{find, Kernel};
    use crate::executor::Plan;

    fn ints(v: &[i64]) -> Tensor {
        Tensor::from_vec(&[v.len()], v.to_vec()).unwrap()
    }

    /// Multi-head attention as the zoo's encoder and exporters write it: the query from
    /// `x [2, 5, 8]`, key and value from `kv [2, kv_seq, 8]`, two heads of 4 (the value's
    /// of `v_size`), a `[2, 1, 1, kv_seq]` mask; `probs_out` also makes the
    /// probabilities a graph output.
    fn attention_graph(kv_seq: usize, v_size: usize, probs_out: bool) -> Graph {
        let mut b = ModelBuilder::new("attention");
        let f = |d: &[usize]| d.iter().map(|&d| Dim::Fixed(d)).collect::<Vec<_>>();
        let x = b.input("x", DType::F32, &f(&[2, 5, 8]));
        let kv = b.input("kv", DType::F32, &f(&[2, kv_seq, 8]));
        let mask = b.input("mask", DType::F32, &f(&[2, 1, 1, kv_seq]));
        let proj = |b: &mut ModelBuilder, name: &str, x: &str, n: usize, seed: u32| {
            let w = b.weight(name, &t(&[8, n], seed));
            b.node("MatMul", &[x, &w], &[])
        };
        let q = proj(&mut b, "wq", &x, 8, 1);
        let k = proj(&mut b, "wk", &kv, 8, 2);
        let v = proj(&mut b, "wv", &kv, 2 * v_size, 3);
        let split = b.weight("split", &ints(&[0, 0, 2, 4]));
        let split_v = b.weight("split_v", &ints(&[0, -1, 2, v_size as i64]));
        let heads = |b: &mut ModelBuilder, x: &str, split: &str, perm: &[i64]| {
            let r = b.node("Reshape", &[x, split], &[]);
            b.node("Transpose", &[&r], &[("perm", Attr::Ints(perm.to_vec()))])
        };
        let q = heads(&mut b, &q, &split, &[0, 2, 1, 3]);
        let k = heads(&mut b, &k, &split, &[0, 2, 3, 1]);
        let v = heads(&mut b, &v, &split_v, &[0, 2, 1, 3]);
        let scores = b.node("MatMul", &[&q, &k], &[]);
        let c = b.weight("scale", &Tensor::scalar(0.5f32));
        let scores = b.node("Mul", &[&scores, &c], &[]);
        let scores = b.node("Add", &[&scores, &mask], &[]);
        let probs = b.node("Softmax", &[&scores], &[("axis", Attr::Int(-1))]);
        let ctx = b.node("MatMul", &[&probs, &v], &[]);
        let ctx = b.node(
            "Transpose",
            &[&ctx],
            &[("perm", Attr::Ints(vec![0, 2, 1, 3]))],
        );
        let merge = b.weight("merge", &ints(&[0, 0, 2 * v_size as i64]));
        let y = b.node("Reshape", &[&ctx, &merge], &[]);
        b.output(&y, "y", DType::F32, &f(&[2, 5, 2 * v_size]));
        if probs_out {
            b.output(&probs, "probs", DType::F32, &f(&[2, 2, 5, kv_seq]));
        }
        b.into_model().unwrap().graph
    }

    fn inputs(kv_seq: usize) -> Vec<Tensor> {
        let mut mask = t(&[2, 1, 1, kv_seq], 7);
        if let crossover_core::TensorData::F32(m) = &mut *mask {
            m[[1, 0, 0, kv_seq - 1]] = -1e4;
        }
        vec![t(&[2, 5, 8], 5), t(&[2, kv_seq, 8], 6), mask]
    }

    fn attention_steps(g: &Graph) -> Vec<usize> {
        find(g)
            .iter()
            .filter(|f| matches!(f.kernel, Kernel::Attention(_)))
            .map(|f| f.nodes.len())
            .collect()
    }

    #[test]
    fn attention_from_split_to_merge_is_one_step() {
        if crate::kernels::simd::isa().is_none() {
            eprintln!("SKIPPED: fused attention needs AVX2 or AVX-512");
            return;
        }
        // Self-attention; cross-attention over 7 keys; a value head of 3, not 4.
        for (kv_seq, v_size) in [(5, 4), (7, 4), (7, 3)] {
            let g = attention_graph(kv_seq, v_size, false);
            assert_eq!(
                attention_steps(&g),
                vec![13],
                "3 splits of 2 nodes, scores, scale, mask, softmax, context, merge of 2"
            );
            let x = inputs(kv_seq);
            let (got, _) = Plan::new(&g).unwrap().execute(&g, &x, &[]).unwrap();
            assert_close(&got[0], &reference(&g, &x)[0], 1e-5);
        }
    }

    #[test]
    fn probabilities_read_elsewhere_keep_attention_apart() {
        let g = attention_graph(5, 4, true);
        assert!(attention_steps(&g).is_empty());
        let x = inputs(5);
        let (got, _) = Plan::new(&g).unwrap().execute(&g, &x, &[]).unwrap();
        let want = reference(&g, &x);
        assert_close(&got[0], &want[0], 1e-5);
        assert_close(&got[1], &want[1], 1e-6);
    }

    #[test]
    fn a_mask_that_does_not_fit_names_the_mask() {
        let g = attention_graph(5, 4, false);
        let plan = Plan::new(&g).unwrap();
        let mut x = inputs(5);
        x[2] = t(&[3, 1, 1, 5], 8);
        let err = plan.execute(&g, &x, &[]).unwrap_err().to_string();
        assert!(err.contains("mask") && err.contains("broadcast"), "{err}");
        // A key of another batch size than the query's.
        let x = vec![t(&[2, 5, 8], 5), t(&[3, 5, 8], 6), t(&[2, 1, 1, 5], 7)];
        let err = plan.execute(&g, &x, &[]).unwrap_err().to_string();
        assert!(
            err.contains("Attention") || err.contains("broadcast"),
            "{err}"
        );
    }
}
