//! ONNX bytes -> [`Graph`]: decoding, name resolution, typed ops, topological order.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use prost::Message;
use sha2::{Digest, Sha256};

use crate::graph::{Dim, Graph, Node, ValueId, ValueInfo};
use crate::onnx::{type_proto, GraphProto, ModelProto, NodeProto, ValueInfoProto};
use crate::op::{NodeCtx, Op};
use crate::proto::TensorSource;
use crate::{invalid_model, DType, Error, Result, Tensor};

/// A model: its graph plus where it came from.
#[derive(Clone, Debug)]
pub struct Model {
    pub graph: Graph,
    /// Hex SHA-256 of the model bytes; keys caches such as device profiles.
    pub hash: String,
    pub producer: String,
    pub ir_version: i64,
    pub path: Option<PathBuf>,
}

impl Model {
    /// Loads a `.onnx` file; external data is read from its folder.
    pub fn load(path: impl AsRef<Path>) -> Result<Model> {
        let path = path.as_ref();
        let bytes = std::fs::read(path).map_err(|source| Error::Io {
            path: path.to_path_buf(),
            source,
        })?;
        let dir = path.parent().map(|d| {
            if d.as_os_str().is_empty() {
                Path::new(".")
            } else {
                d
            }
        });
        let mut m = Model::from_bytes_in(&bytes, dir).map_err(|e| match e {
            Error::Decode(m) => Error::Decode(format!("{}: {m}", path.display())),
            e => e,
        })?;
        m.path = Some(path.to_path_buf());
        Ok(m)
    }

    /// Imports serialized ONNX. Models with external data need [`Model::from_bytes_in`].
    pub fn from_bytes(bytes: &[u8]) -> Result<Model> {
        Model::from_bytes_in(bytes, None)
    }

    /// Imports serialized ONNX whose external data lives in `dir`.
    pub fn from_bytes_in(bytes: &[u8], dir: Option<&Path>) -> Result<Model> {
        let proto = ModelProto::decode(bytes).map_err(|e| Error::Decode(e.to_string()))?;
        let source = TensorSource {
            dir: dir.map(Path::to_path_buf),
        };
        let gp = proto
            .graph
            .as_ref()
            .ok_or_else(|| invalid_model!("the model has no graph"))?;
        // Name an op of another domain (ai.onnx.ml, training…) before requiring the
        // default domain, which such models need not import.
        if let Some(n) = gp
            .node
            .iter()
            .find(|n| !matches!(n.domain.as_deref(), None | Some("") | Some("ai.onnx")))
        {
            let domain = n.domain.clone().unwrap_or_default();
            let op_type = n.op_type.clone().unwrap_or_default();
            let version = proto
                .opset_import
                .iter()
                .find(|o| o.domain.as_deref() == Some(domain.as_str()))
                .and_then(|o| o.version)
                .unwrap_or(0);
            return Err(Error::UnsupportedOp {
                op: format!("{domain}.{op_type}"),
                opset: version,
            }
            .in_node(&node_label(n), &op_type));
        }
        let opset = default_opset(&proto)?;
        if !proto.functions.is_empty() {
            let names: Vec<_> = proto
                .functions
                .iter()
                .filter_map(|f| f.name.clone())
                .collect();
            let used = gp.node.iter().any(|n| {
                names
                    .iter()
                    .any(|f| n.op_type.as_deref() == Some(f.as_str()))
            });
            if used {
                return Err(Error::Unsupported(format!(
                    "model-local functions {names:?}"
                )));
            }
        }
        let (graph, _) = import_graph(gp, opset, &source, false)?;
        Ok(Model {
            graph,
            hash: hex(&Sha256::digest(bytes)),
            producer: proto.producer_name.clone().unwrap_or_default(),
            ir_version: proto.ir_version.unwrap_or(0),
            path: None,
        })
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The newest default-domain opset whose semantics crossover implements: that of the
/// `onnx` package the conformance suite pins.
pub const MAX_OPSET: i64 = 28;

fn default_opset(proto: &ModelProto) -> Result<i64> {
    let v = proto
        .opset_import
        .iter()
        .find(|o| matches!(o.domain.as_deref(), None | Some("") | Some("ai.onnx")))
        .and_then(|o| o.version)
        .ok_or_else(|| invalid_model!("the model imports no version of the default ONNX domain"))?;
    if v < 1 {
        return Err(invalid_model!("opset version {v} is not valid"));
    }
    if v > MAX_OPSET {
        return Err(invalid_model!(
            "opset {v} is newer than the newest crossover implements ({MAX_OPSET})"
        ));
    }
    Ok(v)
}

/// Imports a graph attribute. Names it reads without defining become values of its own
/// (returned with their names) that the caller binds to values of the enclosing scope.
pub(crate) fn import_subgraph(
    gp: &GraphProto,
    opset: i64,
    source: &TensorSource,
) -> Result<(Graph, Vec<(String, ValueId)>)> {
    import_graph(gp, opset, source, true)
}

/// Imports `gp`; with `nested`, undefined names are captured from the enclosing scope
/// instead of being errors, and graph inputs may leave their type out.
fn import_graph(
    gp: &GraphProto,
    opset: i64,
    source: &TensorSource,
    nested: bool,
) -> Result<(Graph, Vec<(String, ValueId)>)> {
    let mut g = Graph {
        name: gp.name.clone().unwrap_or_default(),
        opset,
        ..Default::default()
    };
    let mut ids: HashMap<String, ValueId> = HashMap::new();
    let mut declared: HashMap<&str, &ValueInfoProto> = HashMap::new();
    for vi in gp.input.iter().chain(&gp.output).chain(&gp.value_info) {
        if let Some(n) = vi.name.as_deref() {
            declared.entry(n).or_insert(vi);
        }
    }
    let define = |g: &mut Graph,
                  ids: &mut HashMap<String, ValueId>,
                  name: &str,
                  what: &str|
     -> Result<ValueId> {
        if name.is_empty() {
            return Err(invalid_model!("{what} has an empty name"));
        }
        if ids.contains_key(name) {
            return Err(invalid_model!("tensor {name:?} is defined twice"));
        }
        let info = match declared.get(name) {
            Some(vi) => value_info(vi)?,
            None => ValueInfo::named(name),
        };
        let id = g.add_value(info);
        ids.insert(name.to_string(), id);
        Ok(id)
    };
    let mut captures: Vec<(String, ValueId)> = Vec::new();
    // Runs once every name the graph defines is known, so a miss is an outer value.
    let mut resolve = |g: &mut Graph, ids: &mut HashMap<String, ValueId>, name: &str| {
        if let Some(&id) = ids.get(name) {
            return Some(id);
        }
        if !nested {
            return None;
        }
        let id = g.add_value(ValueInfo::named(name));
        ids.insert(name.to_string(), id);
        captures.push((name.to_string(), id));
        Some(id)
    };

    for t in &gp.initializer {
        let name = t.name.clone().unwrap_or_default();
        let id = define(&mut g, &mut ids, &name, "an initializer")?;
        let tensor = source.tensor(t)?;
        let info = &mut g.values[id.0];
        info.dtype = Some(tensor.dtype());
        info.shape = Some(tensor.shape().iter().map(|&d| Dim::Fixed(d)).collect());
        g.constants.insert(id, tensor);
    }
    if !gp.sparse_initializer.is_empty() {
        return Err(Error::Unsupported("sparse initializers".into()));
    }
    for vi in &gp.input {
        let name = vi.name.clone().unwrap_or_default();
        // Before IR 4, initializers were also listed as inputs; they stay constants.
        if ids.contains_key(&name) && g.constants.contains_key(&ids[&name]) {
            continue;
        }
        let id = define(&mut g, &mut ids, &name, "a graph input")?;
        if g.values[id.0].dtype.is_none() && !nested {
            return Err(invalid_model!("graph input {name:?} has no tensor type"));
        }
        g.inputs.push(id);
    }

    // Outputs are defined before inputs are resolved so nodes may come in any order.
    let mut pending: Vec<(&NodeProto, Vec<Option<ValueId>>)> = Vec::new();
    for np in &gp.node {
        let mut outs = Vec::with_capacity(np.output.len());
        for o in &np.output {
            outs.push(if o.is_empty() {
                None
            } else {
                Some(define(&mut g, &mut ids, o, "a node output")?)
            });
        }
        pending.push((np, outs));
    }

    for (np, outputs) in pending {
        let label = node_label(np);
        let op_type = np.op_type.clone().unwrap_or_default();
        let ctx = |e: Error| e.in_node(&label, &op_type);
        let mut inputs = Vec::with_capacity(np.input.len());
        for i in &np.input {
            if i.is_empty() {
                inputs.push(None);
                continue;
            }
            let id = resolve(&mut g, &mut ids, i)
                .ok_or_else(|| ctx(invalid_model!("input {i:?} is not defined in the graph")))?;
            inputs.push(Some(id));
        }
        let cx = NodeCtx {
            proto: np,
            opset,
            source,
            captures: Default::default(),
        };
        if op_type == "Constant"
            && matches!(np.domain.as_deref(), None | Some("") | Some("ai.onnx"))
        {
            let value = constant_value(&cx).map_err(ctx)?;
            let Some(Some(out)) = outputs.first().copied() else {
                return Err(ctx(invalid_model!("Constant has no output")));
            };
            let info = &mut g.values[out.0];
            info.dtype = Some(value.dtype());
            info.shape = Some(value.shape().iter().map(|&d| Dim::Fixed(d)).collect());
            g.constants.insert(out, value);
            continue;
        }
        let op = Op::parse(&cx).map_err(ctx)?;
        // Outer values the node's subgraphs read follow the op's own inputs.
        for name in cx.captures.into_inner() {
            let id = resolve(&mut g, &mut ids, &name).ok_or_else(|| {
                ctx(invalid_model!(
                    "a subgraph reads {name:?}, which is not defined in any enclosing graph"
                ))
            })?;
            inputs.push(Some(id));
        }
        g.nodes.push(Node {
            name: np.name.clone().unwrap_or_default(),
            op,
            inputs,
            outputs,
        });
    }

    for vi in &gp.output {
        let name = vi.name.clone().unwrap_or_default();
        let id = resolve(&mut g, &mut ids, &name)
            .ok_or_else(|| invalid_model!("graph output {name:?} is never produced"))?;
        g.outputs.push(id);
    }
    g.toposort()?;
    Ok((g, captures))
}

fn node_label(np: &NodeProto) -> String {
    match np.name.as_deref() {
        Some(n) if !n.is_empty() => n.to_string(),
        _ => np.output.first().cloned().unwrap_or_default(),
    }
}

fn constant_value(cx: &NodeCtx) -> Result<Tensor> {
    if let Some(t) = cx.tensor("value")? {
        return Ok(t);
    }
    if let Some(v) = cx.float("value_float")? {
        return Ok(Tensor::scalar(v));
    }
    if let Some(v) = cx.floats("value_floats")? {
        return Tensor::from_vec(&[v.len()], v);
    }
    if let Some(v) = cx.int("value_int")? {
        return Ok(Tensor::scalar(v));
    }
    if let Some(v) = cx.ints("value_ints")? {
        return Tensor::from_vec(&[v.len()], v);
    }
    if let Some(v) = cx.string("value_string")? {
        return Ok(Tensor::scalar(v));
    }
    if let Some(v) = cx.strings("value_strings")? {
        return Tensor::from_vec(&[v.len()], v);
    }
    if cx
        .proto
        .attribute
        .iter()
        .any(|a| a.name.as_deref() == Some("sparse_value"))
    {
        return Err(Error::Unsupported("sparse Constant values".into()));
    }
    Err(invalid_model!("Constant has no value attribute"))
}

fn value_info(vi: &ValueInfoProto) -> Result<ValueInfo> {
    let name = vi.name.clone().unwrap_or_default();
    let mut info = ValueInfo::named(&name);
    let Some(ty) = vi.r#type.as_ref().and_then(|t| t.value.as_ref()) else {
        return Ok(info);
    };
    let type_proto::Value::TensorType(tt) = ty else {
        return Err(Error::Unsupported(format!(
            "value {name:?} is not a tensor (sequence, map and optional values)"
        )));
    };
    if let Some(code) = tt.elem_type.filter(|&c| c != 0) {
        info.dtype = Some(DType::from_onnx_code(code).map_err(|e| match e {
            Error::UnsupportedDType(d) => Error::UnsupportedDType(format!("{d} (value {name:?})")),
            e => e,
        })?);
    }
    if let Some(shape) = &tt.shape {
        let mut dims = Vec::with_capacity(shape.dim.len());
        for d in &shape.dim {
            use crate::onnx::tensor_shape_proto::dimension::Value;
            dims.push(match &d.value {
                Some(Value::DimValue(v)) if *v >= 0 => Dim::Fixed(*v as usize),
                Some(Value::DimValue(v)) => {
                    return Err(invalid_model!("value {name:?} has negative dimension {v}"))
                }
                Some(Value::DimParam(p)) if !p.is_empty() => Dim::Param(p.clone()),
                _ => Dim::Unknown,
            });
        }
        info.shape = Some(dims);
    }
    Ok(info)
}
