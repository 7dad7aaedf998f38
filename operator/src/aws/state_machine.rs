//! Step Functions state machines: the definition (compared as parsed JSON:
//! key order, whitespace and the ARNs Sluice substituted never cause an
//! update), the role, logging, tracing and the ownership tags. The AWS id
//! is the ARN, which the plan derives.

use std::{collections::BTreeMap, time::Duration};

use aws_sdk_sfn::types::{
    CloudWatchLogsLogGroup, LogDestination, LogLevel, LoggingConfiguration, StateMachineStatus,
    StateMachineType, Tag, TracingConfiguration,
};
use serde_json::Value;

use super::operator_policy::{Action, Document, Statement};
use super::{Aws, AwsResource, Drift, Service, tag_changes, tag_drift};
use crate::{
    Error, Result,
    naming::OWNERSHIP_TAG_KEYS,
    plan::{Kind, StateMachinePlan, workflow::WorkflowLogging},
};

/// What the operator's AWS policy allows for state machines
/// ([`super::operator_policy`]). The role passed to Step Functions is
/// allowed in [`super::role::POLICY`].
pub const POLICY: &[Statement] = &[Statement::allow(
    "StateMachines",
    Document::Services,
    &[
        Action::calls(Service::StepFunctions, "CreateStateMachine"),
        Action::calls(Service::StepFunctions, "UpdateStateMachine"),
        Action::calls(Service::StepFunctions, "DeleteStateMachine"),
        Action::calls(Service::StepFunctions, "DescribeStateMachine"),
        Action::calls(Service::StepFunctions, "TagResource"),
        Action::calls(Service::StepFunctions, "UntagResource"),
        Action::calls(Service::StepFunctions, "ListTagsForResource"),
    ],
    &["arn:aws:states:*:ACCOUNT_ID:stateMachine:sluice-*"],
)];

/// What the operator's AWS policy allows for state machines' logging
/// ([`super::operator_policy`]): a machine that logs makes Step Functions
/// check, of whoever creates or updates it, CloudWatch Logs' delivery
/// actions and `logs:DescribeLogGroups`, authorized on `*` only.
pub const LOG_DELIVERY_POLICY: &[Statement] = &[
    Statement::allow(
        "FindLogGroups",
        Document::Services,
        &[Action::implied(Service::Logs, "DescribeLogGroups", LOGGING)],
        &["*"],
    ),
    Statement::allow(
        "WorkflowLogDelivery",
        Document::Services,
        &[
            Action::implied(Service::Logs, "CreateLogDelivery", LOGGING),
            Action::implied(Service::Logs, "GetLogDelivery", LOGGING),
            Action::implied(Service::Logs, "UpdateLogDelivery", LOGGING),
            Action::implied(Service::Logs, "DeleteLogDelivery", LOGGING),
            Action::implied(Service::Logs, "ListLogDeliveries", LOGGING),
            Action::implied(Service::Logs, "PutResourcePolicy", LOGGING),
            Action::implied(Service::Logs, "DescribeResourcePolicies", LOGGING),
        ],
        &["*"],
    ),
];

/// The calls that configure a state machine's logging.
const LOGGING: &[(Service, &str)] = &[
    (Service::StepFunctions, "CreateStateMachine"),
    (Service::StepFunctions, "UpdateStateMachine"),
];

/// A state machine as found.
#[derive(Clone, Debug, Default)]
pub struct ObservedStateMachine {
    /// Definition, parsed.
    pub definition: Option<Value>,
    /// Role ARN.
    pub role_arn: String,
    /// `STANDARD` or `EXPRESS`.
    pub type_: String,
    /// Logging (none when `OFF`).
    pub logging: Option<WorkflowLogging>,
    /// X-Ray tracing.
    pub tracing: bool,
    /// Tags.
    pub tags: BTreeMap<String, String>,
}

/// The state machine kind.
#[derive(Debug)]
pub struct StateMachine;

fn wait(what: String, after: Duration) -> Error {
    Error::Waiting { what, after }
}

fn logging(d: &StateMachinePlan) -> LoggingConfiguration {
    match &d.logging {
        Some(l) => LoggingConfiguration::builder()
            .level(LogLevel::from(l.level.as_str()))
            .include_execution_data(l.include_execution_data)
            .destinations(
                LogDestination::builder()
                    .cloud_watch_logs_log_group(
                        CloudWatchLogsLogGroup::builder()
                            .log_group_arn(&l.log_group_arn)
                            .build(),
                    )
                    .build(),
            )
            .build(),
        None => LoggingConfiguration::builder()
            .level(LogLevel::Off)
            .include_execution_data(false)
            .build(),
    }
}

fn tracing(d: &StateMachinePlan) -> TracingConfiguration {
    TracingConfiguration::builder().enabled(d.tracing).build()
}

fn tag_list(tags: &BTreeMap<String, String>) -> Vec<Tag> {
    tags.iter()
        .map(|(k, v)| Tag::builder().key(k).value(v).build())
        .collect()
}

/// What a failed create or update means: the role is new and Step
/// Functions cannot assume it yet, or a deleted machine of this name is
/// still going; both are waited for. A definition AWS refuses stalls.
fn write_error(e: super::AwsError, d: &StateMachinePlan) -> Error {
    let message = e.message.clone().unwrap_or_default();
    if (e.has_code("AccessDeniedException") || e.has_code("InvalidArn"))
        && message.contains("assume")
    {
        wait(
            format!(
                "Step Functions to be able to assume the new role {}",
                d.role_arn
            ),
            Duration::from_secs(5),
        )
    } else if e.has_code("StateMachineDeleting") || e.has_code("StateMachineAlreadyExists") {
        wait(
            format!("the earlier state machine {} to finish deleting", d.name),
            Duration::from_secs(5),
        )
    } else if e.has_code("InvalidDefinition") {
        Error::InvalidSpec(format!(
            "workflow {}: Step Functions refused the definition: {message}",
            d.logical
        ))
    } else {
        e.into()
    }
}

impl AwsResource for StateMachine {
    type Desired = StateMachinePlan;
    type Observed = ObservedStateMachine;
    const KIND: Kind = Kind::StateMachine;

    fn id(desired: &StateMachinePlan) -> &str {
        &desired.arn
    }

    fn logical(desired: &StateMachinePlan) -> &str {
        &desired.logical
    }

    fn arn(_aws: &Aws, desired: &StateMachinePlan) -> Option<String> {
        Some(desired.arn.clone())
    }

    async fn observe(aws: &Aws, id: &str) -> Result<Option<ObservedStateMachine>> {
        let out = match aws
            .call(Service::StepFunctions, "DescribeStateMachine", || {
                aws.sfn
                    .describe_state_machine()
                    .state_machine_arn(id)
                    .send()
            })
            .await
        {
            Ok(out) => out,
            Err(e) if e.is_not_found() => return Ok(None),
            Err(e) => return Err(e.into()),
        };
        // A machine being deleted is gone for our purposes: creating it
        // again waits for the deletion to finish.
        if out.status() == Some(&StateMachineStatus::Deleting) {
            return Ok(None);
        }
        let tags = match aws
            .call(Service::StepFunctions, "ListTagsForResource", || {
                aws.sfn.list_tags_for_resource().resource_arn(id).send()
            })
            .await
        {
            Ok(t) => t
                .tags()
                .iter()
                .filter_map(|t| Some((t.key()?.to_owned(), t.value()?.to_owned())))
                .collect(),
            Err(e) if e.is_not_found() => return Ok(None),
            Err(e) => return Err(e.into()),
        };
        let logging = out.logging_configuration().and_then(|l| {
            let level = l.level()?.as_str().to_owned();
            if level == "OFF" {
                return None;
            }
            let group = l
                .destinations()
                .first()
                .and_then(|d| d.cloud_watch_logs_log_group())
                .and_then(|g| g.log_group_arn())
                .unwrap_or_default()
                .to_owned();
            Some(WorkflowLogging {
                level,
                include_execution_data: l.include_execution_data(),
                log_group_arn: group,
            })
        });
        Ok(Some(ObservedStateMachine {
            definition: serde_json::from_str(out.definition()).ok(),
            role_arn: out.role_arn().to_owned(),
            type_: out.r#type().as_str().to_owned(),
            logging,
            tracing: out.tracing_configuration().is_some_and(|t| t.enabled()),
            tags,
        }))
    }

    fn tags(observed: &ObservedStateMachine) -> Option<&BTreeMap<String, String>> {
        Some(&observed.tags)
    }

    fn diff(d: &StateMachinePlan, o: &ObservedStateMachine) -> Vec<Drift> {
        let mut drift = Vec::new();
        if !o
            .definition
            .as_ref()
            .is_some_and(|have| crate::asl::same_json(have, &d.definition))
        {
            drift.push(Drift::new(
                "definition",
                "(the spec's definition)",
                "(another definition)",
            ));
        }
        if o.role_arn != d.role_arn {
            drift.push(Drift::new("role", &d.role_arn, &o.role_arn));
        }
        if o.type_ != d.type_.as_aws() {
            drift.push(Drift::new("type", d.type_.as_aws(), &o.type_));
        }
        if o.logging != d.logging {
            drift.push(Drift::new("logging", &d.logging, &o.logging));
        }
        if o.tracing != d.tracing {
            drift.push(Drift::new("tracing", d.tracing, o.tracing));
        }
        drift.extend(tag_drift(&d.tags, &o.tags));
        drift
    }

    async fn create(aws: &Aws, d: &StateMachinePlan) -> Result<Option<String>> {
        aws.call(Service::StepFunctions, "CreateStateMachine", || {
            aws.sfn
                .create_state_machine()
                .name(&d.name)
                .definition(d.definition.to_string())
                .role_arn(&d.role_arn)
                .r#type(StateMachineType::from(d.type_.as_aws()))
                .logging_configuration(logging(d))
                .tracing_configuration(tracing(d))
                .set_tags(Some(tag_list(&d.tags)))
                .send()
        })
        .await
        .map_err(|e| write_error(e, d))?;
        Ok(None)
    }

    async fn update(
        aws: &Aws,
        d: &StateMachinePlan,
        o: &ObservedStateMachine,
        drift: &[Drift],
    ) -> Result<()> {
        let fields: Vec<&str> = drift.iter().map(|x| x.field).collect();
        if fields.contains(&"type") {
            return Err(Error::InvalidSpec(format!(
                "state machine {} is {} but workflow {} asks for {}; Step Functions fixes the \
                 type at creation: declare a workflow of another name",
                d.name,
                o.type_,
                d.logical,
                d.type_.as_aws()
            )));
        }
        if fields
            .iter()
            .any(|f| matches!(*f, "definition" | "role" | "logging" | "tracing"))
        {
            aws.call(Service::StepFunctions, "UpdateStateMachine", || {
                aws.sfn
                    .update_state_machine()
                    .state_machine_arn(&d.arn)
                    .definition(d.definition.to_string())
                    .role_arn(&d.role_arn)
                    .logging_configuration(logging(d))
                    .tracing_configuration(tracing(d))
                    .send()
            })
            .await
            .map_err(|e| write_error(e, d))?;
        }
        if fields.contains(&"tags") {
            let (set, remove) = tag_changes(&d.tags, &o.tags);
            if !set.is_empty() {
                aws.call(Service::StepFunctions, "TagResource", || {
                    aws.sfn
                        .tag_resource()
                        .resource_arn(&d.arn)
                        .set_tags(Some(tag_list(&set)))
                        .send()
                })
                .await?;
            }
            if !remove.is_empty() {
                aws.call(Service::StepFunctions, "UntagResource", || {
                    aws.sfn
                        .untag_resource()
                        .resource_arn(&d.arn)
                        .set_tag_keys(Some(remove.clone()))
                        .send()
                })
                .await?;
            }
        }
        Ok(())
    }

    async fn delete(aws: &Aws, id: &str, _o: &ObservedStateMachine) -> Result<()> {
        match aws
            .call(Service::StepFunctions, "DeleteStateMachine", || {
                aws.sfn.delete_state_machine().state_machine_arn(id).send()
            })
            .await
        {
            Ok(_) => Ok(()),
            Err(e) if e.is_not_found() => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    async fn release(
        aws: &Aws,
        id: &str,
        _o: &ObservedStateMachine,
        marker: &BTreeMap<String, String>,
    ) -> Result<()> {
        aws.call(Service::StepFunctions, "TagResource", || {
            aws.sfn
                .tag_resource()
                .resource_arn(id)
                .set_tags(Some(tag_list(marker)))
                .send()
        })
        .await?;
        aws.call(Service::StepFunctions, "UntagResource", || {
            aws.sfn
                .untag_resource()
                .resource_arn(id)
                .set_tag_keys(Some(
                    OWNERSHIP_TAG_KEYS.iter().map(|k| (*k).to_owned()).collect(),
                ))
                .send()
        })
        .await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::crd::WorkflowType;

    fn desired() -> StateMachinePlan {
        StateMachinePlan {
            logical: "etl".into(),
            name: "sm".into(),
            arn: "arn:aws:states:us-east-1:1:stateMachine:sm".into(),
            role_arn: "arn:aws:iam::1:role/r".into(),
            type_: WorkflowType::Standard,
            definition: json!({"StartAt": "A", "States": {"A": {"Type": "Pass", "End": true}}}),
            logging: None,
            tracing: false,
            tags: BTreeMap::new(),
        }
    }

    #[test]
    fn a_definition_stored_with_other_spacing_and_order_is_the_same() {
        let d = desired();
        let stored = r#"{"States":{"A":{"End":true,"Type":"Pass"}},  "StartAt":"A"}"#;
        let o = ObservedStateMachine {
            definition: serde_json::from_str(stored).ok(),
            role_arn: d.role_arn.clone(),
            type_: "STANDARD".into(),
            logging: None,
            tracing: false,
            tags: BTreeMap::new(),
        };
        assert_eq!(StateMachine::diff(&d, &o), vec![]);
        let changed = ObservedStateMachine {
            definition: Some(json!({"StartAt": "A", "States": {"A": {"Type": "Succeed"}}})),
            tracing: true,
            ..o
        };
        let fields: Vec<_> = StateMachine::diff(&d, &changed)
            .iter()
            .map(|x| x.field)
            .collect();
        assert_eq!(fields, ["definition", "tracing"]);
    }

    #[test]
    fn a_role_step_functions_cannot_assume_yet_is_waited_for() {
        let e = super::super::AwsError {
            service: Service::StepFunctions,
            operation: "CreateStateMachine",
            code: Some("AccessDeniedException".into()),
            message: Some("Neither the global service principal states.amazonaws.com, nor the regional one is authorized to assume the provided role.".into()),
            status: Some(400),
            class: super::super::ErrorClass::Client,
        };
        assert!(matches!(write_error(e, &desired()), Error::Waiting { .. }));
    }
}
