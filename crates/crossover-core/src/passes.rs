//! Graph passes run once after import, before any backend compiles the graph.

use std::collections::HashSet;

use crate::backend::Evaluator;
use crate::graph::{render_dims, Dim, Graph, Node, ValueId};
use crate::shapes::{self, Fact};
use crate::{Result, Tensor};

/// Constants larger than this stay unfolded: folding `Expand` of a scalar into a large
/// tensor would trade a cheap node for memory held for the model's lifetime.
const MAX_FOLDED_BYTES: usize = 16 << 20;

/// Runs the standard pipeline: constant folding with shape inference, then dead-node
/// removal.
pub fn optimize(graph: &mut Graph, eval: &dyn Evaluator) -> Result<()> {
    fold_and_infer(graph, eval)?;
    remove_dead_nodes(graph);
    Ok(())
}

/// Walks the nodes in order: evaluates every node whose inputs are all constants and
/// stores its outputs as constants; infers the dtype and shape of every other node's
/// outputs, folding those the shapes alone determine (`Shape` of a static tensor).
pub fn fold_and_infer(graph: &mut Graph, eval: &dyn Evaluator) -> Result<()> {
    let mut kept = Vec::with_capacity(graph.nodes.len());
    for node in std::mem::take(&mut graph.nodes) {
        let foldable = !node.op.is_nondeterministic()
            && node
                .inputs
                .iter()
                .flatten()
                .all(|v| graph.constants.contains_key(v));
        let outputs = if foldable {
            let inputs: Vec<Option<&Tensor>> = node
                .inputs
                .iter()
                .map(|v| v.map(|v| &graph.constants[&v]))
                .collect();
            let outputs = eval
                .eval(&node, &inputs)
                .map_err(|e| e.in_node(node.label(graph), node.op.name()))?;
            (outputs.iter().all(|t| t.nbytes() <= MAX_FOLDED_BYTES)).then_some(outputs)
        } else {
            None
        };
        let outputs = match outputs {
            Some(o) => o,
            None => match infer_node(graph, &node)? {
                Some(o) => o,
                None => {
                    kept.push(node);
                    continue;
                }
            },
        };
        for (slot, t) in node.outputs.iter().zip(outputs) {
            if let Some(id) = slot {
                let info = &mut graph.values[id.0];
                info.dtype = Some(t.dtype());
                info.shape = Some(t.shape().iter().map(|&d| Dim::Fixed(d)).collect());
                graph.constants.insert(*id, t);
            }
        }
    }
    graph.nodes = kept;
    Ok(())
}

/// Records what shape inference knows about `node`'s outputs; returns their values when
/// inference determined all of them.
fn infer_node(graph: &mut Graph, node: &Node) -> Result<Option<Vec<Tensor>>> {
    let facts: Vec<Fact> = node
        .inputs
        .iter()
        .map(|v| match v {
            Some(v) => Fact {
                dtype: graph.values[v.0].dtype,
                shape: graph.values[v.0].shape.as_deref(),
                value: graph.constants.get(v),
                present: true,
            },
            None => Fact::default(),
        })
        .collect();
    let inferred =
        shapes::infer(node, &facts).map_err(|e| e.in_node(node.label(graph), node.op.name()))?;
    let mut values = Vec::with_capacity(inferred.len());
    for (slot, out) in node.outputs.iter().zip(inferred) {
        let Some(id) = slot else {
            values.push(None);
            continue;
        };
        let info = &mut graph.values[id.0];
        if out.dtype.is_some() {
            info.dtype = out.dtype;
        }
        info.shape = merge_shapes(&info.name, info.shape.take(), out.shape);
        values.push(out.value);
    }
    Ok(values.into_iter().collect())
}

/// The declared shape refined by the inferred one: inferred fixed sizes win (a stale
/// declaration is reported, as onnxruntime does, not trusted), declared names fill the
/// dimensions inference could not pin down.
fn merge_shapes(
    name: &str,
    declared: Option<Vec<Dim>>,
    inferred: Option<Vec<Dim>>,
) -> Option<Vec<Dim>> {
    let (declared, inferred) = match (declared, inferred) {
        (d, None) => return d,
        (None, i) => return i,
        (Some(d), Some(i)) => (d, i),
    };
    if declared.len() != inferred.len() {
        tracing::warn!(value = name, declared = %render_dims(&declared), inferred = %render_dims(&inferred), "declared rank differs from the inferred one");
        return Some(inferred);
    }
    Some(
        declared
            .into_iter()
            .zip(inferred)
            .map(|(d, i)| match (d, i) {
                (Dim::Fixed(a), Dim::Fixed(b)) if a != b => {
                    tracing::warn!(
                        value = name,
                        declared = a,
                        inferred = b,
                        "declared dimension differs from the inferred one"
                    );
                    Dim::Fixed(b)
                }
                (d, Dim::Unknown) => d,
                (Dim::Param(d), Dim::Param(_)) => Dim::Param(d),
                (_, i) => i,
            })
            .collect(),
    )
}

/// Drops nodes whose outputs nobody reads, and constants nobody uses.
pub fn remove_dead_nodes(graph: &mut Graph) {
    let mut live: HashSet<ValueId> = graph.outputs.iter().copied().collect();
    let mut keep = vec![false; graph.nodes.len()];
    for (i, node) in graph.nodes.iter().enumerate().rev() {
        if node.outputs.iter().flatten().any(|o| live.contains(o)) {
            keep[i] = true;
            live.extend(node.inputs.iter().flatten().copied());
        }
    }
    let mut it = keep.into_iter();
    graph.nodes.retain(|_| it.next().unwrap_or(false));
    graph.constants.retain(|id, _| live.contains(id));
}
