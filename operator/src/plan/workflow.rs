//! Step Functions workflows: the state machine with its definition's
//! function names replaced by ARNs, its role (invoke exactly the functions
//! its tasks name), the role EventBridge uses to start it, the rules that
//! start it when objects arrive in a bucket, and its log group.

use std::collections::BTreeMap;

use serde_json::{Value, json};

use super::{Graph, RolePlan, RulePlan, TargetPlan, graph::DEFAULT_BUS};
use crate::{
    asl,
    crd::{DataPipelineSpec, LoggingLevel, WorkflowType},
    iam::{self, Grants, actions},
    naming::NameKind,
};

/// Days Sluice keeps a workflow's execution logs.
pub const LOG_RETENTION_DAYS: i32 = 30;

/// Where a workflow's executions are logged.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WorkflowLogging {
    /// `ALL`, `ERROR` or `FATAL`.
    pub level: String,
    /// Log inputs and outputs.
    pub include_execution_data: bool,
    /// The log group's ARN, as Step Functions wants it (`...:*`).
    pub log_group_arn: String,
}

/// A Step Functions state machine.
#[derive(Clone, Debug, PartialEq)]
pub struct StateMachinePlan {
    /// Logical name.
    pub logical: String,
    /// State machine name.
    pub name: String,
    /// ARN.
    pub arn: String,
    /// The role it runs as.
    pub role_arn: String,
    /// `STANDARD` or `EXPRESS`.
    pub type_: WorkflowType,
    /// The definition, function names replaced by ARNs.
    pub definition: Value,
    /// Logging, when on.
    pub logging: Option<WorkflowLogging>,
    /// X-Ray tracing.
    pub tracing: bool,
    /// Ownership tags.
    pub tags: BTreeMap<String, String>,
}

/// A CloudWatch Logs log group.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LogGroupPlan {
    /// Logical name of the node it logs for.
    pub logical: String,
    /// Log group name.
    pub name: String,
    /// Retention in days.
    pub retention_days: i32,
    /// Ownership tags.
    pub tags: BTreeMap<String, String>,
}

/// Everything planned from the workflows.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct WorkflowsPlan {
    /// State machines.
    pub state_machines: Vec<StateMachinePlan>,
    /// Their roles and the roles that start them.
    pub roles: Vec<RolePlan>,
    /// Log groups of workflows that log.
    pub log_groups: Vec<LogGroupPlan>,
}

/// The log group name Step Functions' vended logs use for a state machine.
pub fn log_group_name(state_machine: &str) -> String {
    format!("/aws/vendedlogs/states/{state_machine}")
}

/// Plans the workflows of `spec`.
pub fn plan(spec: &DataPipelineSpec, graph: &Graph<'_>, boundary: Option<&str>) -> WorkflowsPlan {
    let id = graph.id;
    let mut out = WorkflowsPlan::default();
    let arns: BTreeMap<String, String> = graph
        .functions
        .iter()
        .map(|(logical, n)| (logical.clone(), n.arn.clone()))
        .collect();
    for w in &spec.workflows {
        let (Some(machine), Some(role)) = (
            graph.workflows.get(&w.name),
            graph.workflow_roles.get(&w.name),
        ) else {
            continue;
        };
        let mut grants = Grants::default();
        for f in asl::referenced_functions(&w.definition) {
            if let Some(arn) = arns.get(&f) {
                grants.allow(arn.clone(), actions::LAMBDA_INVOKE);
            }
        }
        let logging = (w.logging != LoggingLevel::None).then(|| {
            let name = log_group_name(&machine.name);
            out.log_groups.push(LogGroupPlan {
                logical: w.name.clone(),
                name: name.clone(),
                retention_days: LOG_RETENTION_DAYS,
                tags: id.tags(&w.name),
            });
            WorkflowLogging {
                level: w.logging.as_aws().to_owned(),
                include_execution_data: w.include_execution_data,
                log_group_arn: format!(
                    "arn:{}:logs:{}:{}:log-group:{name}:*",
                    graph.partition, id.region, id.account
                ),
            }
        });
        out.roles.push(RolePlan {
            logical: role.logical.clone(),
            name: role.name.clone(),
            path: id.role_path(),
            trust_policy: iam::service_trust_policy("states.amazonaws.com", &id.account),
            policy: iam::workflow_policy(&grants, logging.is_some(), w.tracing),
            permissions_boundary: boundary.map(str::to_owned),
            tags: id.tags(&role.logical),
        });
        if let Some(start) = graph.start_roles.get(&w.name) {
            let mut grants = Grants::default();
            grants.allow(machine.arn.clone(), actions::STATES_START);
            out.roles.push(RolePlan {
                logical: start.logical.clone(),
                name: start.name.clone(),
                path: id.role_path(),
                trust_policy: iam::service_trust_policy("events.amazonaws.com", &id.account),
                policy: iam::service_policy(&grants),
                permissions_boundary: boundary.map(str::to_owned),
                tags: id.tags(&start.logical),
            });
        }
        out.state_machines.push(StateMachinePlan {
            logical: w.name.clone(),
            name: machine.name.clone(),
            arn: machine.arn.clone(),
            role_arn: role.arn.clone(),
            type_: w.type_,
            definition: asl::substitute(&w.definition, &arns),
            logging,
            tracing: w.tracing,
            tags: id.tags(&w.name),
        });
    }
    out
}

/// One rule on the account's default bus per (workflow, bucket trigger):
/// objects created in the bucket, S3's EventBridge events, start the
/// workflow with the event as input.
pub fn plan_bucket_rules(spec: &DataPipelineSpec, graph: &Graph<'_>) -> Vec<RulePlan> {
    let id = graph.id;
    let mut out = Vec::new();
    for w in &spec.workflows {
        let (Some(machine), Some(start)) =
            (graph.workflows.get(&w.name), graph.start_roles.get(&w.name))
        else {
            continue;
        };
        for t in &w.triggers {
            let Some(b) = &t.bucket else { continue };
            let Some(bucket) = graph.buckets.get(&b.name) else {
                continue;
            };
            let logical = format!("{}-from-{}", w.name, b.name);
            let name = id.aws_name(
                NameKind::Rule,
                &format!("workflow:{}:bucket:{}", w.name, b.name),
            );
            let mut key = Vec::new();
            if let Some(prefix) = b.prefix.as_ref().filter(|p| !p.is_empty()) {
                key.push(json!({"prefix": prefix}));
            }
            if let Some(suffix) = b.suffix.as_ref().filter(|s| !s.is_empty()) {
                key.push(json!({"suffix": suffix}));
            }
            let mut detail = json!({"bucket": {"name": [bucket.name]}});
            if !key.is_empty() {
                detail["object"] = json!({"key": key});
            }
            out.push(RulePlan {
                logical: logical.clone(),
                id: RulePlan::id_of(DEFAULT_BUS, &name),
                arn: format!(
                    "arn:{}:events:{}:{}:rule/{name}",
                    graph.partition, id.region, id.account
                ),
                name,
                bus: DEFAULT_BUS.to_owned(),
                pattern: json!({
                    "source": ["aws.s3"],
                    "detail-type": ["Object Created"],
                    "detail": detail,
                }),
                enabled: true,
                targets: vec![TargetPlan {
                    id: format!("workflow-{}", w.name),
                    arn: machine.arn.clone(),
                    message_group_id: None,
                    input_transformer: None,
                    role_arn: Some(start.arn.clone()),
                }],
                tags: id.tags(&logical),
            });
        }
    }
    out
}
