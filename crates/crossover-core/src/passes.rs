//! Graph passes run once after import, before any backend compiles the graph.

use std::collections::HashSet;

use crate::backend::Evaluator;
use crate::graph::{Dim, Graph, ValueId};
use crate::{Result, Tensor};

/// Constants larger than this stay unfolded: folding `Expand` of a scalar into a large
/// tensor would trade a cheap node for memory held for the model's lifetime.
const MAX_FOLDED_BYTES: usize = 16 << 20;

/// Runs the standard pipeline: constant folding, then dead-node removal.
pub fn optimize(graph: &mut Graph, eval: &dyn Evaluator) -> Result<()> {
    fold_constants(graph, eval)?;
    remove_dead_nodes(graph);
    Ok(())
}

/// Evaluates every node whose inputs are all constants and stores its outputs as
/// constants; records the shape and dtype of every value it produces.
pub fn fold_constants(graph: &mut Graph, eval: &dyn Evaluator) -> Result<()> {
    let mut kept = Vec::with_capacity(graph.nodes.len());
    for node in std::mem::take(&mut graph.nodes) {
        let foldable = !node.op.is_nondeterministic()
            && node
                .inputs
                .iter()
                .flatten()
                .all(|v| graph.constants.contains_key(v));
        if !foldable {
            kept.push(node);
            continue;
        }
        let inputs: Vec<Option<&Tensor>> = node
            .inputs
            .iter()
            .map(|v| v.map(|v| &graph.constants[&v]))
            .collect();
        let outputs = eval
            .eval(&node, &inputs)
            .map_err(|e| e.in_node(node.label(graph), node.op.name()))?;
        if outputs.iter().any(|t| t.nbytes() > MAX_FOLDED_BYTES) {
            kept.push(node);
            continue;
        }
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
