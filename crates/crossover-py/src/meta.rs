//! The model metadata ONNX Runtime's `get_modelmeta()` reports.
//!
//! Decoded from the model bytes with messages that declare only the metadata fields:
//! prost skips the rest (weights included) without copying them.

use std::collections::HashMap;

use prost::Message;

#[derive(Clone, PartialEq, Message)]
struct ModelHeader {
    #[prost(string, optional, tag = "2")]
    producer_name: Option<String>,
    #[prost(string, optional, tag = "4")]
    domain: Option<String>,
    #[prost(int64, optional, tag = "5")]
    model_version: Option<i64>,
    #[prost(string, optional, tag = "6")]
    doc_string: Option<String>,
    #[prost(message, optional, tag = "7")]
    graph: Option<GraphHeader>,
    #[prost(message, repeated, tag = "14")]
    metadata_props: Vec<Entry>,
}

#[derive(Clone, PartialEq, Message)]
struct GraphHeader {
    #[prost(string, optional, tag = "2")]
    name: Option<String>,
    #[prost(string, optional, tag = "10")]
    doc_string: Option<String>,
}

#[derive(Clone, PartialEq, Message)]
struct Entry {
    #[prost(string, optional, tag = "1")]
    key: Option<String>,
    #[prost(string, optional, tag = "2")]
    value: Option<String>,
}

/// Field names and meanings as in `onnxruntime.ModelMetadata`.
#[derive(Clone, Debug, Default)]
pub struct ModelMeta {
    pub producer_name: String,
    pub graph_name: String,
    pub domain: String,
    pub description: String,
    pub graph_description: String,
    pub version: i64,
    pub custom_metadata_map: HashMap<String, String>,
}

impl ModelMeta {
    /// The bytes were already decoded as a whole model, so this cannot fail on them.
    pub fn decode(bytes: &[u8]) -> Option<ModelMeta> {
        let h = ModelHeader::decode(bytes).ok()?;
        let g = h.graph.unwrap_or_default();
        Some(ModelMeta {
            producer_name: h.producer_name.unwrap_or_default(),
            graph_name: g.name.unwrap_or_default(),
            domain: h.domain.unwrap_or_default(),
            description: h.doc_string.unwrap_or_default(),
            graph_description: g.doc_string.unwrap_or_default(),
            version: h.model_version.unwrap_or_default(),
            custom_metadata_map: h
                .metadata_props
                .into_iter()
                .map(|e| (e.key.unwrap_or_default(), e.value.unwrap_or_default()))
                .collect(),
        })
    }
}
