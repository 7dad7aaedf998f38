//! EventBridge Scheduler schedules and the roles the scheduler assumes to
//! run exactly their target (and send failed runs to their dead-letter
//! queue).

use std::collections::BTreeMap;

use super::{Graph, RolePlan};
use crate::{
    crd::DataPipelineSpec,
    iam::{self, Grants, actions},
};

/// The group every schedule is in.
pub const SCHEDULE_GROUP: &str = "default";

/// A schedule.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SchedulePlan {
    /// Logical name.
    pub logical: String,
    /// Schedule name.
    pub name: String,
    /// cron, rate or at expression.
    pub expression: String,
    /// IANA time zone.
    pub timezone: String,
    /// Flexible window in minutes; `None` for runs on time.
    pub flexible_window_minutes: Option<i32>,
    /// Start date (RFC 3339).
    pub start_date: Option<String>,
    /// End date (RFC 3339).
    pub end_date: Option<String>,
    /// ARN of the function, state machine or queue run.
    pub target_arn: String,
    /// Role the scheduler assumes.
    pub role_arn: String,
    /// The target's input, as JSON text: the manifest's, else
    /// [`DEFAULT_INPUT`].
    pub input: String,
    /// `(retries, maximum event age in seconds)`.
    pub retry: Option<(i32, i32)>,
    /// Dead-letter queue ARN.
    pub dead_letter_arn: Option<String>,
    /// ENABLED or DISABLED.
    pub enabled: bool,
    /// Ownership, kept in the description (schedules take no tags).
    pub tags: BTreeMap<String, String>,
}

/// What a target receives when the manifest gives no input: the run's
/// context, which EventBridge Scheduler fills in. `time` is the scheduled
/// time (the field an EventBridge scheduled event carries too), so a handler
/// such as batch-aggregate works out "yesterday" from it, never from the
/// clock, and a retried run computes the same day.
pub const DEFAULT_INPUT: &str = r#"{"time":"<aws.scheduler.scheduled-time>","schedule":"<aws.scheduler.schedule-arn>","execution":"<aws.scheduler.execution-id>","attempt":"<aws.scheduler.attempt-number>"}"#;

/// Plans the schedules of `spec` and their roles.
pub fn plan(
    spec: &DataPipelineSpec,
    graph: &Graph<'_>,
    boundary: Option<&str>,
) -> (Vec<SchedulePlan>, Vec<RolePlan>) {
    let id = graph.id;
    let mut schedules = Vec::new();
    let mut roles = Vec::new();
    for s in &spec.schedules {
        let (Some(node), Some(role)) = (
            graph.schedules.get(&s.name),
            graph.schedule_roles.get(&s.name),
        ) else {
            continue;
        };
        let mut grants = Grants::default();
        let target_arn = if let Some(f) = &s.target.function {
            graph.functions.get(f).map(|n| {
                grants.allow(n.arn.clone(), actions::LAMBDA_INVOKE);
                n.arn.clone()
            })
        } else if let Some(w) = &s.target.workflow {
            graph.workflows.get(w).map(|n| {
                grants.allow(n.arn.clone(), actions::STATES_START);
                n.arn.clone()
            })
        } else if let Some(q) = &s.target.queue {
            graph.queues.get(q).map(|n| {
                grants.allow(n.node.arn.clone(), actions::SQS_SEND);
                if let Some(key) = &n.node.kms_key {
                    grants.allow(key.clone(), actions::KMS_ENCRYPT);
                }
                n.node.arn.clone()
            })
        } else {
            None
        };
        let Some(target_arn) = target_arn else {
            continue;
        };
        let dead_letter_arn = s
            .dead_letter
            .as_ref()
            .and_then(|d| graph.queues.get(&d.queue))
            .map(|q| {
                grants.allow(q.node.arn.clone(), actions::SQS_SEND);
                if let Some(key) = &q.node.kms_key {
                    grants.allow(key.clone(), actions::KMS_ENCRYPT);
                }
                q.node.arn.clone()
            });
        roles.push(RolePlan {
            logical: role.logical.clone(),
            name: role.name.clone(),
            path: id.role_path(),
            trust_policy: iam::service_trust_policy("scheduler.amazonaws.com", &id.account),
            policy: iam::service_policy(&grants),
            permissions_boundary: boundary.map(str::to_owned),
            tags: id.tags(&role.logical),
        });
        schedules.push(SchedulePlan {
            logical: s.name.clone(),
            name: node.name.clone(),
            expression: s.expression.trim().to_owned(),
            timezone: s.timezone.clone(),
            flexible_window_minutes: s.flexible_window_minutes,
            start_date: s.start_date.clone(),
            end_date: s.end_date.clone(),
            target_arn,
            role_arn: role.arn.clone(),
            input: s
                .input
                .as_ref()
                .map_or_else(|| DEFAULT_INPUT.to_owned(), |v| v.to_string()),
            retry: s
                .retry
                .map(|r| (r.maximum_retry_attempts, r.maximum_event_age_seconds)),
            dead_letter_arn,
            enabled: s.enabled,
            tags: id.tags(&s.name),
        });
    }
    (schedules, roles)
}
