//! SQS queues: attributes, the dead-letter queues Sluice creates, redrive
//! policies and the queue policy that lets exactly the pipeline's rules
//! send.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{Value, json};

use super::{Graph, graph::dead_letter_name};
use crate::crd::DataPipelineSpec;

/// Retention of the dead-letter queues Sluice creates: SQS's maximum, so a
/// dead letter outlives the message it came from.
pub const DEAD_LETTER_RETENTION_SECONDS: i32 = 1_209_600;
/// SQS's default visibility timeout, the floor of the derived one.
pub const MIN_VISIBILITY_TIMEOUT_SECONDS: i32 = 30;
/// SQS's largest visibility timeout.
pub const MAX_VISIBILITY_TIMEOUT_SECONDS: i32 = 43_200;

/// Where a queue's dead letters go.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Redrive {
    /// ARN of the dead-letter queue.
    pub dead_letter_arn: String,
    /// Receives before a message moves there.
    pub max_receive_count: i32,
}

/// An SQS queue.
#[derive(Clone, Debug, PartialEq)]
pub struct QueuePlan {
    /// Logical name (`<queue>-dlq` for a dead-letter queue Sluice creates).
    pub logical: String,
    /// Queue name.
    pub name: String,
    /// FIFO queue.
    pub fifo: bool,
    /// FIFO content-based deduplication.
    pub content_based_deduplication: bool,
    /// Visibility timeout in seconds.
    pub visibility_timeout_seconds: i32,
    /// Retention in seconds.
    pub retention_seconds: i32,
    /// Customer-managed KMS key; `None` for SQS-managed encryption.
    pub kms_key: Option<String>,
    /// Dead-letter queue.
    pub redrive: Option<Redrive>,
    /// The queue policy: which rules may send (none: no policy).
    pub policy: Option<Value>,
    /// Ownership tags.
    pub tags: BTreeMap<String, String>,
}

/// The visibility timeout AWS advises for a queue a function consumes: six
/// times the function's timeout, so a batch being retried inside one
/// invocation is not delivered again meanwhile; SQS's default when nothing
/// consumes it.
pub fn derived_visibility_timeout(longest_consumer_timeout: Option<i32>) -> i32 {
    longest_consumer_timeout.map_or(MIN_VISIBILITY_TIMEOUT_SECONDS, |t| {
        (t.saturating_mul(6)).clamp(
            MIN_VISIBILITY_TIMEOUT_SECONDS,
            MAX_VISIBILITY_TIMEOUT_SECONDS,
        )
    })
}

/// The longest timeout among the functions that `queue` triggers.
pub fn longest_consumer_timeout(spec: &DataPipelineSpec, queue: &str) -> Option<i32> {
    spec.functions
        .iter()
        .filter(|f| {
            f.triggers
                .iter()
                .any(|t| t.queue.as_ref().is_some_and(|q| q.name == queue))
        })
        .map(|f| f.timeout_seconds)
        .max()
}

/// The queues of `spec`, each dead-letter queue before the queues whose
/// messages it receives (SQS refuses a redrive policy naming a queue that
/// does not exist yet).
pub fn plan(spec: &DataPipelineSpec, graph: &Graph<'_>) -> Vec<QueuePlan> {
    // Rules allowed to send to each queue.
    let mut senders: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
    for r in &spec.rules {
        let Some(rule) = graph.rules.get(&r.name) else {
            continue;
        };
        for t in &r.targets {
            if let Some(q) = &t.queue {
                senders
                    .entry(q.as_str())
                    .or_default()
                    .insert(rule.node.arn.as_str());
            }
        }
    }

    let mut planned: BTreeMap<String, QueuePlan> = BTreeMap::new();
    for q in &spec.queues {
        let Some(node) = graph.queues.get(&q.name) else {
            continue;
        };
        let dead_letter = q.dead_letter.as_ref().and_then(|d| {
            let target = d.queue.clone().unwrap_or_else(|| dead_letter_name(&q.name));
            let arn = graph.queues.get(&target)?.node.arn.clone();
            Some(Redrive {
                dead_letter_arn: arn,
                max_receive_count: d.max_receive_count,
            })
        });
        let policy = senders
            .get(q.name.as_str())
            .map(|rules| sender_policy(&node.node.arn, rules));
        planned.insert(
            q.name.clone(),
            QueuePlan {
                logical: q.name.clone(),
                name: node.node.name.clone(),
                fifo: q.fifo,
                content_based_deduplication: q.fifo && q.content_based_deduplication,
                visibility_timeout_seconds: q.visibility_timeout_seconds.unwrap_or_else(|| {
                    derived_visibility_timeout(longest_consumer_timeout(spec, &q.name))
                }),
                retention_seconds: q.retention_seconds,
                kms_key: node.node.kms_key.clone(),
                redrive: dead_letter,
                policy,
                tags: graph.id.tags(&q.name),
            },
        );
    }
    // The dead-letter queues Sluice creates: a rule may target one like any
    // queue (its policy lets exactly those rules send), and one of a FIFO
    // queue deduplicates as its queue does (a FIFO rule target needs it).
    for (logical, node) in &graph.queues {
        let Some(of) = &node.dead_letter_of else {
            continue;
        };
        let source = spec.queues.iter().find(|q| &q.name == of);
        planned.insert(
            logical.clone(),
            QueuePlan {
                logical: logical.clone(),
                name: node.node.name.clone(),
                fifo: node.fifo,
                content_based_deduplication: node.fifo
                    && source.is_some_and(|q| q.content_based_deduplication),
                visibility_timeout_seconds: derived_visibility_timeout(longest_consumer_timeout(
                    spec, logical,
                )),
                retention_seconds: DEAD_LETTER_RETENTION_SECONDS,
                kms_key: node.node.kms_key.clone(),
                redrive: None,
                policy: senders
                    .get(logical.as_str())
                    .map(|rules| sender_policy(&node.node.arn, rules)),
                tags: graph.id.tags(logical),
            },
        );
    }

    // Dead-letter queues first: a depth-first walk down each redrive chain.
    let by_arn: BTreeMap<String, String> = planned
        .values()
        .map(|p| (graph_arn(graph, &p.logical), p.logical.clone()))
        .collect();
    let mut order = Vec::new();
    let mut seen = BTreeSet::new();
    for logical in planned.keys() {
        let mut chain = Vec::new();
        let mut next = Some(logical.clone());
        while let Some(current) = next.take() {
            if !seen.insert(current.clone()) {
                break;
            }
            next = planned
                .get(&current)
                .and_then(|p| p.redrive.as_ref())
                .and_then(|r| by_arn.get(&r.dead_letter_arn))
                .cloned();
            chain.push(current);
        }
        order.extend(chain.into_iter().rev());
    }
    order
        .into_iter()
        .filter_map(|logical| planned.remove(&logical))
        .collect()
}

/// The queue policy that lets exactly `rules` (their ARNs) send to the
/// queue `arn`: EventBridge's deliveries are denied without it.
fn sender_policy(arn: &str, rules: &BTreeSet<&str>) -> Value {
    json!({
        "Version": "2012-10-17",
        "Statement": [{
            "Sid": "sluice-events",
            "Effect": "Allow",
            "Principal": {"Service": "events.amazonaws.com"},
            "Action": "sqs:SendMessage",
            "Resource": arn,
            "Condition": {"ArnEquals": {"aws:SourceArn": rules.iter().collect::<Vec<_>>()}}
        }]
    })
}

fn graph_arn(graph: &Graph<'_>, logical: &str) -> String {
    graph
        .queues
        .get(logical)
        .map(|q| q.node.arn.clone())
        .unwrap_or_default()
}
