//! A small builder for ONNX models, used by the built-in zoo and by tests.
//!
//! It writes a real `ModelProto`, so a built model can be saved and run by any ONNX
//! runtime, and is imported through the same path as a file.

use prost::Message;

use crate::graph::Dim;
use crate::onnx::{
    attribute_proto::AttributeType, tensor_shape_proto, type_proto, AttributeProto, GraphProto,
    ModelProto, NodeProto, OperatorSetIdProto, TensorShapeProto, TypeProto, ValueInfoProto,
};
use crate::proto::tensor_to_proto;
use crate::{DType, Model, Result, Tensor};

/// Opset the builder declares unless told otherwise.
pub const DEFAULT_OPSET: i64 = 17;

/// A node attribute.
#[derive(Clone, Debug)]
pub enum Attr {
    Int(i64),
    Float(f32),
    Ints(Vec<i64>),
    Floats(Vec<f32>),
    String(String),
    Tensor(Tensor),
}

#[derive(Clone, Debug)]
pub struct ModelBuilder {
    graph: GraphProto,
    opset: i64,
    next_id: usize,
}

impl ModelBuilder {
    pub fn new(name: &str) -> Self {
        ModelBuilder {
            graph: GraphProto {
                name: Some(name.to_string()),
                ..Default::default()
            },
            opset: DEFAULT_OPSET,
            next_id: 0,
        }
    }

    pub fn opset(mut self, opset: i64) -> Self {
        self.opset = opset;
        self
    }

    /// Declares a graph input; returns its name.
    pub fn input(&mut self, name: &str, dtype: DType, dims: &[Dim]) -> String {
        self.graph.input.push(value_info(name, dtype, dims));
        name.to_string()
    }

    /// Adds a weight; returns its name.
    pub fn weight(&mut self, name: &str, value: &Tensor) -> String {
        self.graph.initializer.push(tensor_to_proto(name, value));
        name.to_string()
    }

    /// Adds a node with one output; returns the output's name.
    pub fn node(&mut self, op_type: &str, inputs: &[&str], attrs: &[(&str, Attr)]) -> String {
        self.node_n(op_type, inputs, attrs, 1).remove(0)
    }

    /// Adds a node with `outputs` outputs; returns their names.
    pub fn node_n(
        &mut self,
        op_type: &str,
        inputs: &[&str],
        attrs: &[(&str, Attr)],
        outputs: usize,
    ) -> Vec<String> {
        self.next_id += 1;
        let name = format!("{}_{}", op_type.to_lowercase(), self.next_id);
        let outs: Vec<String> = (0..outputs).map(|i| format!("{name}_out{i}")).collect();
        self.graph.node.push(NodeProto {
            name: Some(name),
            op_type: Some(op_type.to_string()),
            input: inputs.iter().map(|s| s.to_string()).collect(),
            output: outs.clone(),
            attribute: attrs.iter().map(|(n, a)| attribute(n, a)).collect(),
            ..Default::default()
        });
        outs
    }

    /// Marks `value` as a graph output called `name` (an Identity renames it if needed).
    pub fn output(&mut self, value: &str, name: &str, dtype: DType, dims: &[Dim]) {
        if value != name {
            self.graph.node.push(NodeProto {
                name: Some(format!("output_{name}")),
                op_type: Some("Identity".into()),
                input: vec![value.to_string()],
                output: vec![name.to_string()],
                ..Default::default()
            });
        }
        self.graph.output.push(value_info(name, dtype, dims));
    }

    pub fn build(self) -> ModelProto {
        ModelProto {
            ir_version: Some(8),
            producer_name: Some("crossover".into()),
            producer_version: Some(env!("CARGO_PKG_VERSION").into()),
            opset_import: vec![OperatorSetIdProto {
                domain: Some(String::new()),
                version: Some(self.opset),
            }],
            graph: Some(self.graph),
            ..Default::default()
        }
    }

    pub fn to_bytes(self) -> Vec<u8> {
        self.build().encode_to_vec()
    }

    /// Imports the built model, as loading its bytes from a file would.
    pub fn into_model(self) -> Result<Model> {
        Model::from_bytes(&self.to_bytes())
    }
}

fn value_info(name: &str, dtype: DType, dims: &[Dim]) -> ValueInfoProto {
    use tensor_shape_proto::{dimension::Value, Dimension};
    let dim = dims
        .iter()
        .map(|d| Dimension {
            value: match d {
                Dim::Fixed(n) => Some(Value::DimValue(*n as i64)),
                Dim::Param(p) => Some(Value::DimParam(p.clone())),
                Dim::Unknown => None,
            },
            ..Default::default()
        })
        .collect();
    ValueInfoProto {
        name: Some(name.to_string()),
        r#type: Some(TypeProto {
            value: Some(type_proto::Value::TensorType(type_proto::Tensor {
                elem_type: Some(dtype.onnx_code()),
                shape: Some(TensorShapeProto { dim }),
            })),
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn attribute(name: &str, a: &Attr) -> AttributeProto {
    let mut p = AttributeProto {
        name: Some(name.to_string()),
        ..Default::default()
    };
    match a {
        Attr::Int(v) => {
            p.i = Some(*v);
            p.set_type(AttributeType::Int);
        }
        Attr::Float(v) => {
            p.f = Some(*v);
            p.set_type(AttributeType::Float);
        }
        Attr::Ints(v) => {
            p.ints = v.clone();
            p.set_type(AttributeType::Ints);
        }
        Attr::Floats(v) => {
            p.floats = v.clone();
            p.set_type(AttributeType::Floats);
        }
        Attr::String(v) => {
            p.s = Some(v.as_bytes().to_vec());
            p.set_type(AttributeType::String);
        }
        Attr::Tensor(t) => {
            p.t = Some(tensor_to_proto(name, t));
            p.set_type(AttributeType::Tensor);
        }
    }
    p
}
