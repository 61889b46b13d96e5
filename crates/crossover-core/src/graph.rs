//! The graph IR: values by index, nodes with typed ops, topologically sorted.

use std::collections::{BTreeMap, HashMap};
use std::fmt;

use crate::{invalid, DType, Op, Result, Tensor};

/// Index of a value (tensor) in [`Graph::values`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ValueId(pub usize);

/// One dimension of a declared shape.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Dim {
    Fixed(usize),
    /// A named dimension such as `batch`; all values sharing a name share its size.
    Param(String),
    Unknown,
}

impl Dim {
    pub fn fixed(&self) -> Option<usize> {
        match self {
            Dim::Fixed(d) => Some(*d),
            _ => None,
        }
    }
}

impl fmt::Display for Dim {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Dim::Fixed(d) => write!(f, "{d}"),
            Dim::Param(p) => f.write_str(p),
            Dim::Unknown => f.write_str("?"),
        }
    }
}

/// What is known about a value before running: its name, element type and shape.
#[derive(Clone, Debug, PartialEq)]
pub struct ValueInfo {
    pub name: String,
    pub dtype: Option<DType>,
    pub shape: Option<Vec<Dim>>,
}

impl ValueInfo {
    pub fn named(name: impl Into<String>) -> Self {
        ValueInfo {
            name: name.into(),
            dtype: None,
            shape: None,
        }
    }

    /// The shape when every dimension is a fixed number.
    pub fn static_shape(&self) -> Option<Vec<usize>> {
        self.shape.as_ref()?.iter().map(Dim::fixed).collect()
    }
}

#[derive(Clone, Debug)]
pub struct Node {
    pub name: String,
    pub op: Op,
    /// `None` where ONNX leaves an optional input empty.
    pub inputs: Vec<Option<ValueId>>,
    pub outputs: Vec<Option<ValueId>>,
}

impl Node {
    /// A label for errors and reports: the node's name, or its first output's.
    pub fn label<'g>(&'g self, graph: &'g Graph) -> &'g str {
        if !self.name.is_empty() {
            return &self.name;
        }
        self.outputs
            .iter()
            .flatten()
            .next()
            .map(|v| graph.values[v.0].name.as_str())
            .unwrap_or("")
    }
}

/// A graph held by a node attribute: If's branches, Loop's and Scan's body.
///
/// Names the subgraph reads but does not define resolve to values of the enclosing
/// scopes ("captures"). The owning node lists each captured outer value as an extra input
/// after the op's own inputs, so ordering, liveness and constant folding see them; each
/// [`Capture`] says which of the node's inputs binds which inner value.
#[derive(Clone, Debug)]
pub struct Subgraph {
    pub graph: Graph,
    pub captures: Vec<Capture>,
}

/// One captured outer value: inner value `inner` takes the owning node's input `input`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Capture {
    pub inner: ValueId,
    pub input: usize,
}

/// Subgraphs are shared by `Arc` and compare by identity: two ops are equal when they
/// hold the same subgraph.
impl PartialEq for Subgraph {
    fn eq(&self, other: &Self) -> bool {
        std::ptr::eq(self, other)
    }
}

#[derive(Clone, Debug, Default)]
pub struct Graph {
    pub name: String,
    /// Version of the default ONNX domain the model imports.
    pub opset: i64,
    pub values: Vec<ValueInfo>,
    /// Topologically sorted.
    pub nodes: Vec<Node>,
    pub inputs: Vec<ValueId>,
    pub outputs: Vec<ValueId>,
    /// Initializers, `Constant` nodes and folded values.
    pub constants: BTreeMap<ValueId, Tensor>,
}

impl Graph {
    pub fn value(&self, id: ValueId) -> &ValueInfo {
        &self.values[id.0]
    }

    pub fn value_id(&self, name: &str) -> Option<ValueId> {
        self.values.iter().position(|v| v.name == name).map(ValueId)
    }

    pub fn add_value(&mut self, info: ValueInfo) -> ValueId {
        self.values.push(info);
        ValueId(self.values.len() - 1)
    }

    pub fn input_infos(&self) -> impl Iterator<Item = &ValueInfo> {
        self.inputs.iter().map(|&id| self.value(id))
    }

    pub fn output_infos(&self) -> impl Iterator<Item = &ValueInfo> {
        self.outputs.iter().map(|&id| self.value(id))
    }

    /// Number of nodes per op, sorted by name.
    pub fn op_histogram(&self) -> BTreeMap<&'static str, usize> {
        let mut h = BTreeMap::new();
        for n in &self.nodes {
            *h.entry(n.op.name()).or_insert(0) += 1;
        }
        h
    }

    /// Number of elements and bytes held in constants (weights).
    pub fn parameter_stats(&self) -> (usize, usize) {
        self.constants
            .values()
            .fold((0, 0), |(n, b), t| (n + t.len(), b + t.nbytes()))
    }

    /// Checks caller-supplied inputs against the declared inputs: count, dtype, rank and
    /// fixed dimensions, and that named dimensions agree across inputs.
    pub fn check_inputs(&self, inputs: &[Tensor]) -> Result<()> {
        if inputs.len() != self.inputs.len() {
            let names: Vec<_> = self.input_infos().map(|v| v.name.as_str()).collect();
            return Err(invalid!(
                "the model takes {} inputs {names:?}, got {}",
                names.len(),
                inputs.len()
            ));
        }
        let mut params: HashMap<&str, (usize, &str)> = HashMap::new();
        for (info, t) in self.input_infos().zip(inputs) {
            if let Some(dt) = info.dtype {
                if dt != t.dtype() {
                    return Err(invalid!(
                        "input {:?} expects {dt}, got {}",
                        info.name,
                        t.dtype()
                    ));
                }
            }
            let Some(shape) = &info.shape else { continue };
            if shape.len() != t.rank() {
                return Err(invalid!(
                    "input {:?} expects rank {} (shape [{}]), got shape {:?}",
                    info.name,
                    shape.len(),
                    render_dims(shape),
                    t.shape()
                ));
            }
            for (i, (d, &n)) in shape.iter().zip(t.shape()).enumerate() {
                match d {
                    Dim::Fixed(f) if *f != n => {
                        return Err(invalid!(
                        "input {:?} expects shape [{}], got {:?} (dimension {i} is {n}, not {f})",
                        info.name,
                        render_dims(shape),
                        t.shape()
                    ))
                    }
                    Dim::Param(p) => {
                        if let Some(&(seen, other)) = params.get(p.as_str()) {
                            if seen != n {
                                return Err(invalid!(
                                    "dimension {p:?} is {seen} in input {other:?} but {n} in input {:?}",
                                    info.name
                                ));
                            }
                        } else {
                            params.insert(p, (n, &info.name));
                        }
                    }
                    _ => {}
                }
            }
        }
        Ok(())
    }

    /// Orders `nodes` so every node follows its producers; errors on a cycle.
    pub fn toposort(&mut self) -> Result<()> {
        let mut producer: HashMap<ValueId, usize> = HashMap::new();
        for (i, n) in self.nodes.iter().enumerate() {
            for o in n.outputs.iter().flatten() {
                producer.insert(*o, i);
            }
        }
        let mut indegree = vec![0usize; self.nodes.len()];
        let mut users: Vec<Vec<usize>> = vec![Vec::new(); self.nodes.len()];
        for (i, n) in self.nodes.iter().enumerate() {
            for v in n.inputs.iter().flatten() {
                if let Some(&p) = producer.get(v) {
                    indegree[i] += 1;
                    users[p].push(i);
                }
            }
        }
        let mut ready: Vec<usize> = (0..self.nodes.len())
            .filter(|&i| indegree[i] == 0)
            .rev()
            .collect();
        let mut order = Vec::with_capacity(self.nodes.len());
        while let Some(i) = ready.pop() {
            order.push(i);
            for &u in users[i].iter().rev() {
                indegree[u] -= 1;
                if indegree[u] == 0 {
                    ready.push(u);
                }
            }
        }
        if order.len() != self.nodes.len() {
            let stuck: Vec<_> = (0..self.nodes.len())
                .filter(|&i| indegree[i] > 0)
                .map(|i| self.nodes[i].label(self).to_string())
                .take(5)
                .collect();
            return Err(crate::invalid_model!(
                "the graph has a cycle through nodes {stuck:?}"
            ));
        }
        let mut slots: Vec<Option<Node>> = std::mem::take(&mut self.nodes)
            .into_iter()
            .map(Some)
            .collect();
        self.nodes = order
            .into_iter()
            .map(|i| slots[i].take().expect("each node once"))
            .collect();
        Ok(())
    }
}

pub fn render_dims(dims: &[Dim]) -> String {
    dims.iter()
        .map(|d| d.to_string())
        .collect::<Vec<_>>()
        .join(", ")
}
