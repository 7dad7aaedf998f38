//! Kinesis data streams.

use std::collections::BTreeMap;

use super::Graph;
use crate::crd::{DataPipelineSpec, StreamMode};

/// The AWS managed key streams are encrypted with unless the spec names one.
pub const AWS_MANAGED_KINESIS_KEY: &str = "alias/aws/kinesis";

/// A Kinesis data stream.
#[derive(Clone, Debug, PartialEq)]
pub struct StreamPlan {
    /// Logical name.
    pub logical: String,
    /// Stream name.
    pub name: String,
    /// Capacity mode.
    pub mode: StreamMode,
    /// Shards of a provisioned stream.
    pub shards: Option<i32>,
    /// Retention in hours.
    pub retention_hours: i32,
    /// KMS key id of server-side encryption (always on).
    pub kms_key: String,
    /// Ownership tags.
    pub tags: BTreeMap<String, String>,
}

/// The streams of `spec`.
pub fn plan(spec: &DataPipelineSpec, graph: &Graph<'_>) -> Vec<StreamPlan> {
    spec.streams
        .iter()
        .filter_map(|s| {
            let node = graph.streams.get(&s.name)?;
            Some(StreamPlan {
                logical: s.name.clone(),
                name: node.name.clone(),
                mode: s.mode,
                shards: match s.mode {
                    StreamMode::Provisioned => Some(s.shards.unwrap_or(1)),
                    StreamMode::OnDemand => None,
                },
                retention_hours: s.retention_hours,
                kms_key: node
                    .kms_key
                    .clone()
                    .unwrap_or_else(|| AWS_MANAGED_KINESIS_KEY.to_owned()),
                tags: graph.id.tags(&s.name),
            })
        })
        .collect()
}
