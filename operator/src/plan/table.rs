//! DynamoDB tables.

use std::collections::BTreeMap;

use super::Graph;
use crate::crd::{BillingMode, Capacity, DataPipelineSpec, KeyAttribute, StreamView};

/// The TTL attribute the handlers' idempotency claims write.
pub const IDEMPOTENCY_TTL_ATTRIBUTE: &str = "expires_at";
/// The partition key the handlers' idempotency claims use (a string).
pub const IDEMPOTENCY_PARTITION_KEY: &str = "pk";

/// A DynamoDB table.
#[derive(Clone, Debug, PartialEq)]
pub struct TablePlan {
    /// Logical name.
    pub logical: String,
    /// Table name.
    pub name: String,
    /// Partition key.
    pub partition_key: KeyAttribute,
    /// Sort key.
    pub sort_key: Option<KeyAttribute>,
    /// Billing mode.
    pub billing_mode: BillingMode,
    /// Provisioned capacity.
    pub capacity: Option<Capacity>,
    /// TTL attribute.
    pub ttl_attribute: Option<String>,
    /// Stream view, when the table has a stream.
    pub stream: Option<StreamView>,
    /// Customer-managed KMS key; `None` for the key AWS owns.
    pub kms_key: Option<String>,
    /// Ownership tags.
    pub tags: BTreeMap<String, String>,
}

/// The tables of `spec`. A table a function uses for idempotency gets the
/// TTL attribute the claims write, unless the spec names it.
pub fn plan(spec: &DataPipelineSpec, graph: &Graph<'_>) -> Vec<TablePlan> {
    spec.tables
        .iter()
        .filter_map(|t| {
            let node = graph.tables.get(&t.name)?;
            let idempotency = spec
                .functions
                .iter()
                .any(|f| f.idempotency.as_ref().is_some_and(|i| i.table == t.name));
            let ttl_attribute = t
                .ttl_attribute
                .clone()
                .or_else(|| idempotency.then(|| IDEMPOTENCY_TTL_ATTRIBUTE.to_owned()));
            Some(TablePlan {
                logical: t.name.clone(),
                name: node.name.clone(),
                partition_key: t.partition_key.clone(),
                sort_key: t.sort_key.clone(),
                billing_mode: t.billing_mode,
                capacity: match t.billing_mode {
                    BillingMode::Provisioned => t.capacity,
                    BillingMode::PayPerRequest => None,
                },
                ttl_attribute,
                stream: t.stream,
                kms_key: node.kms_key.clone(),
                tags: graph.id.tags(&t.name),
            })
        })
        .collect()
}
