//! Reading a node's attributes with the checks and defaults ONNX specifies.

use std::cell::RefCell;
use std::sync::Arc;

use crate::graph::{Capture, Subgraph};
use crate::onnx::{attribute_proto::AttributeType, AttributeProto, NodeProto};
use crate::proto::TensorSource;
use crate::{invalid_model, DType, Error, Result, Tensor};

/// A node being imported: its proto, the opset in force and where its tensors live.
pub struct NodeCtx<'a> {
    pub proto: &'a NodeProto,
    /// Version of the default domain the model imports.
    pub opset: i64,
    pub(crate) source: &'a TensorSource,
    /// Outer names read by the subgraphs imported so far, in the order they become the
    /// node's extra inputs.
    pub(crate) captures: RefCell<Vec<String>>,
}

impl<'a> NodeCtx<'a> {
    pub fn op_type(&self) -> &str {
        self.proto.op_type.as_deref().unwrap_or("")
    }

    pub fn domain(&self) -> &str {
        self.proto.domain.as_deref().unwrap_or("")
    }

    /// Number of inputs as written, empty optional ones included.
    pub fn num_inputs(&self) -> usize {
        self.proto.input.len()
    }

    /// Whether input `i` is given (present and not the empty name).
    pub fn has_input(&self, i: usize) -> bool {
        self.proto.input.get(i).is_some_and(|s| !s.is_empty())
    }

    pub fn num_outputs(&self) -> usize {
        self.proto.output.len()
    }

    fn attr(&self, name: &str) -> Option<&'a AttributeProto> {
        self.proto
            .attribute
            .iter()
            .find(|a| a.name.as_deref() == Some(name))
    }

    fn wrong(&self, name: &str, want: &str) -> Error {
        invalid_model!("attribute {name:?} of {} must be {want}", self.op_type())
    }

    fn typed(
        &self,
        name: &str,
        ty: AttributeType,
        want: &str,
    ) -> Result<Option<&'a AttributeProto>> {
        match self.attr(name) {
            None => Ok(None),
            Some(a) => {
                // Old exporters leave `type` unset; trust the field that is filled in.
                if a.r#type.is_some() && a.r#type() != ty && a.r#type() != AttributeType::Undefined
                {
                    return Err(self.wrong(name, want));
                }
                Ok(Some(a))
            }
        }
    }

    pub fn int(&self, name: &str) -> Result<Option<i64>> {
        Ok(self
            .typed(name, AttributeType::Int, "an int")?
            .map(|a| a.i.unwrap_or(0)))
    }

    pub fn int_or(&self, name: &str, default: i64) -> Result<i64> {
        Ok(self.int(name)?.unwrap_or(default))
    }

    pub fn float(&self, name: &str) -> Result<Option<f32>> {
        Ok(self
            .typed(name, AttributeType::Float, "a float")?
            .map(|a| a.f.unwrap_or(0.0)))
    }

    pub fn float_or(&self, name: &str, default: f32) -> Result<f32> {
        Ok(self.float(name)?.unwrap_or(default))
    }

    pub fn string(&self, name: &str) -> Result<Option<String>> {
        self.typed(name, AttributeType::String, "a string")?
            .map(|a| {
                String::from_utf8(a.s.clone().unwrap_or_default())
                    .map_err(|_| self.wrong(name, "UTF-8 text"))
            })
            .transpose()
    }

    pub fn string_or(&self, name: &str, default: &str) -> Result<String> {
        Ok(self.string(name)?.unwrap_or_else(|| default.to_string()))
    }

    pub fn ints(&self, name: &str) -> Result<Option<Vec<i64>>> {
        Ok(self
            .typed(name, AttributeType::Ints, "a list of ints")?
            .map(|a| a.ints.clone()))
    }

    pub fn floats(&self, name: &str) -> Result<Option<Vec<f32>>> {
        Ok(self
            .typed(name, AttributeType::Floats, "a list of floats")?
            .map(|a| a.floats.clone()))
    }

    pub fn strings(&self, name: &str) -> Result<Option<Vec<String>>> {
        self.typed(name, AttributeType::Strings, "a list of strings")?
            .map(|a| {
                a.strings
                    .iter()
                    .map(|s| {
                        String::from_utf8(s.clone()).map_err(|_| self.wrong(name, "UTF-8 text"))
                    })
                    .collect()
            })
            .transpose()
    }

    pub fn tensor(&self, name: &str) -> Result<Option<Tensor>> {
        match self.typed(name, AttributeType::Tensor, "a tensor")? {
            None => Ok(None),
            Some(a) => {
                let t = a.t.as_ref().ok_or_else(|| self.wrong(name, "a tensor"))?;
                Ok(Some(self.source.tensor(t)?))
            }
        }
    }

    /// A graph attribute (If's branches, Loop's and Scan's body), imported with the
    /// model's opset. Outer values it reads are appended to the node's inputs after its
    /// own, once each even when several subgraphs read them.
    pub fn subgraph(&self, name: &str) -> Result<Option<Arc<Subgraph>>> {
        let Some(a) = self.typed(name, AttributeType::Graph, "a graph")? else {
            return Ok(None);
        };
        let gp = a.g.as_ref().ok_or_else(|| self.wrong(name, "a graph"))?;
        let (graph, names) = crate::import::import_subgraph(gp, self.opset, self.source)?;
        let mut known = self.captures.borrow_mut();
        let captures = names
            .into_iter()
            .map(|(outer, inner)| {
                let pos = match known.iter().position(|n| *n == outer) {
                    Some(p) => p,
                    None => {
                        known.push(outer);
                        known.len() - 1
                    }
                };
                Capture {
                    inner,
                    input: self.num_inputs() + pos,
                }
            })
            .collect();
        Ok(Some(Arc::new(Subgraph { graph, captures })))
    }

    /// An attribute holding an ONNX data type code (Cast's `to`, EyeLike's `dtype`…).
    pub fn dtype(&self, name: &str) -> Result<Option<DType>> {
        self.int(name)?
            .map(|c| DType::from_onnx_code(c as i32))
            .transpose()
    }

    /// A required attribute, or an error naming it.
    pub fn required<T>(&self, name: &str, v: Result<Option<T>>) -> Result<T> {
        v?.ok_or_else(|| invalid_model!("{} needs attribute {name:?}", self.op_type()))
    }

    /// Errors unless the node has between `min` and `max` inputs.
    pub fn expect_inputs(&self, min: usize, max: usize) -> Result<()> {
        let n = self.num_inputs();
        if n < min || n > max {
            let range = if min == max {
                format!("{min}")
            } else {
                format!("{min} to {max}")
            };
            return Err(invalid_model!(
                "{} takes {range} inputs, got {n}",
                self.op_type()
            ));
        }
        Ok(())
    }
}
