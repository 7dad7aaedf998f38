//! S3 buckets and their notification configurations.

use std::collections::BTreeMap;

use super::{Graph, STATEMENT_PREFIX};
use crate::crd::DataPipelineSpec;

/// An S3 bucket.
#[derive(Clone, Debug, PartialEq)]
pub struct BucketPlan {
    /// Logical name.
    pub logical: String,
    /// Bucket name.
    pub name: String,
    /// Region (needed for CreateBucket's location constraint).
    pub region: String,
    /// Delete objects when the bucket is deleted.
    pub empty_on_delete: bool,
    /// Ownership tags.
    pub tags: BTreeMap<String, String>,
}

/// One Lambda destination of a bucket notification.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct LambdaNotification {
    /// Configuration id.
    pub id: String,
    /// Function ARN.
    pub function_arn: String,
    /// Event names, sorted.
    pub events: Vec<String>,
    /// Key prefix filter.
    pub prefix: Option<String>,
    /// Key suffix filter.
    pub suffix: Option<String>,
}

/// A bucket's notification configuration (Sluice owns the whole of it: the
/// bucket is the pipeline's).
#[derive(Clone, Debug, PartialEq)]
pub struct NotificationPlan {
    /// Logical name of the bucket.
    pub logical: String,
    /// Bucket name.
    pub bucket: String,
    /// Lambda destinations, sorted by id.
    pub lambdas: Vec<LambdaNotification>,
    /// Send every event of the bucket to EventBridge's default bus (for
    /// workflows started by objects created in it).
    pub eventbridge: bool,
}

/// The buckets of `spec`.
pub fn plan(spec: &DataPipelineSpec, graph: &Graph<'_>) -> Vec<BucketPlan> {
    spec.buckets
        .iter()
        .filter_map(|b| {
            let node = graph.buckets.get(&b.name)?;
            Some(BucketPlan {
                logical: b.name.clone(),
                name: node.name.clone(),
                region: graph.id.region.clone(),
                empty_on_delete: b.empty_on_delete,
                tags: graph.id.tags(&b.name),
            })
        })
        .collect()
}

/// One notification configuration per bucket that triggers a function.
pub fn plan_notifications(spec: &DataPipelineSpec, graph: &Graph<'_>) -> Vec<NotificationPlan> {
    let mut by_bucket: BTreeMap<&str, Vec<LambdaNotification>> = BTreeMap::new();
    for f in &spec.functions {
        let Some(function) = graph.functions.get(&f.name) else {
            continue;
        };
        for (index, t) in f.triggers.iter().enumerate() {
            let Some(b) = &t.bucket else { continue };
            let mut events: Vec<String> = b.events.iter().map(|e| e.as_aws().to_owned()).collect();
            events.sort();
            events.dedup();
            by_bucket
                .entry(b.name.as_str())
                .or_default()
                .push(LambdaNotification {
                    id: format!("{STATEMENT_PREFIX}{}-{index}", f.name),
                    function_arn: function.arn.clone(),
                    events,
                    prefix: b.prefix.clone().filter(|p| !p.is_empty()),
                    suffix: b.suffix.clone().filter(|s| !s.is_empty()),
                });
        }
    }
    // Buckets that start workflows send their events to EventBridge.
    for w in &spec.workflows {
        for t in &w.triggers {
            if let Some(b) = &t.bucket {
                by_bucket.entry(b.name.as_str()).or_default();
            }
        }
    }
    let to_eventbridge = |bucket: &str| {
        spec.workflows.iter().any(|w| {
            w.triggers
                .iter()
                .any(|t| t.bucket.as_ref().is_some_and(|b| b.name == bucket))
        })
    };
    by_bucket
        .into_iter()
        .filter_map(|(bucket, mut lambdas)| {
            let node = graph.buckets.get(bucket)?;
            lambdas.sort();
            Some(NotificationPlan {
                logical: bucket.to_owned(),
                bucket: node.name.clone(),
                lambdas,
                eventbridge: to_eventbridge(bucket),
            })
        })
        .collect()
}
