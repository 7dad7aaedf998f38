//! EventBridge rules: the event pattern (compared as parsed JSON, never as
//! text), the state, the targets (queues and functions) and the ownership
//! tags. A rule's AWS id is `<bus>/<name>`: names are unique per bus.

use std::collections::BTreeMap;

use aws_sdk_eventbridge::types::{InputTransformer, RuleState, SqsParameters, Target};
use serde_json::Value;

use super::operator_policy::{Action, Document, Statement};
use super::{
    Aws, AwsResource, Drift, Service,
    event_bus::{converge_tags, read_tags, release_tags, tag_list},
    tag_drift,
};
use crate::{
    Error, Result,
    plan::{Kind, RulePlan, TargetPlan},
};

/// What the operator's AWS policy allows for rules
/// ([`super::operator_policy`]), on the default bus and on the pipeline's
/// own buses; their tags through the helpers of [`super::event_bus`]. A
/// target's role passed to EventBridge is allowed in
/// [`super::role::POLICY`].
pub const POLICY: &[Statement] = &[Statement::allow(
    "Rules",
    Document::Services,
    &[
        Action::calls(Service::Events, "PutRule"),
        Action::calls(Service::Events, "DeleteRule"),
        Action::calls(Service::Events, "DescribeRule"),
        Action::calls(Service::Events, "PutTargets"),
        Action::calls(Service::Events, "RemoveTargets"),
        Action::calls(Service::Events, "ListTargetsByRule"),
        Action::calls(Service::Events, "TagResource"),
        Action::calls(Service::Events, "UntagResource"),
        Action::calls(Service::Events, "ListTagsForResource"),
    ],
    &[
        "arn:aws:events:*:ACCOUNT_ID:rule/sluice-*",
        "arn:aws:events:*:ACCOUNT_ID:rule/sluice-*/sluice-*",
    ],
)];

/// A rule as found.
#[derive(Clone, Debug, Default)]
pub struct ObservedRule {
    /// Rule ARN.
    pub arn: String,
    /// Event pattern, parsed.
    pub pattern: Option<Value>,
    /// Enabled.
    pub enabled: bool,
    /// Targets, sorted by id.
    pub targets: Vec<TargetPlan>,
    /// Tags.
    pub tags: BTreeMap<String, String>,
}

/// The EventBridge rule kind.
#[derive(Debug)]
pub struct Rule;

/// Splits a rule id into (bus, name).
fn split(id: &str) -> (&str, &str) {
    id.split_once('/').unwrap_or(("default", id))
}

fn from_aws(t: &Target) -> TargetPlan {
    TargetPlan {
        id: t.id().to_owned(),
        arn: t.arn().to_owned(),
        role_arn: t.role_arn().map(str::to_owned),
        message_group_id: t
            .sqs_parameters()
            .and_then(|p| p.message_group_id())
            .map(str::to_owned),
        input_transformer: t.input_transformer().map(|x| {
            (
                x.input_paths_map()
                    .map(|m| m.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
                    .unwrap_or_default(),
                x.input_template().to_owned(),
            )
        }),
    }
}

fn to_aws(t: &TargetPlan) -> Result<Target> {
    let transformer = t
        .input_transformer
        .as_ref()
        .map(|(paths, template)| {
            InputTransformer::builder()
                .set_input_paths_map(
                    (!paths.is_empty()).then(|| paths.clone().into_iter().collect()),
                )
                .input_template(template)
                .build()
        })
        .transpose()
        .map_err(|e| Error::InvalidSpec(format!("rule target {}: {e}", t.id)))?;
    Target::builder()
        .id(&t.id)
        .arn(&t.arn)
        .set_role_arn(t.role_arn.clone())
        .set_sqs_parameters(
            t.message_group_id
                .as_ref()
                .map(|g| SqsParameters::builder().message_group_id(g).build()),
        )
        .set_input_transformer(transformer)
        .build()
        .map_err(|e| Error::InvalidSpec(format!("rule target {}: {e}", t.id)))
}

fn state(enabled: bool) -> RuleState {
    if enabled {
        RuleState::Enabled
    } else {
        RuleState::Disabled
    }
}

async fn put_rule(aws: &Aws, d: &RulePlan, creating: bool) -> Result<()> {
    // Tags are only taken on creation; later changes go through TagResource.
    let tags = if creating {
        Some(tag_list(&d.tags)?)
    } else {
        None
    };
    aws.call(Service::Events, "PutRule", || {
        aws.events
            .put_rule()
            .name(&d.name)
            .event_bus_name(&d.bus)
            .event_pattern(d.pattern.to_string())
            .state(state(d.enabled))
            .description(format!("Sluice rule {} (managed; do not edit)", d.logical))
            .set_tags(tags.clone())
            .send()
    })
    .await?;
    Ok(())
}

async fn put_targets(aws: &Aws, d: &RulePlan, targets: &[&TargetPlan]) -> Result<()> {
    if targets.is_empty() {
        return Ok(());
    }
    let targets = targets
        .iter()
        .map(|t| to_aws(t))
        .collect::<Result<Vec<_>>>()?;
    let out = aws
        .call(Service::Events, "PutTargets", || {
            aws.events
                .put_targets()
                .rule(&d.name)
                .event_bus_name(&d.bus)
                .set_targets(Some(targets.clone()))
                .send()
        })
        .await?;
    if out.failed_entry_count() > 0 {
        let reasons: Vec<String> = out
            .failed_entries()
            .iter()
            .map(|f| {
                format!(
                    "{}: {}",
                    f.target_id().unwrap_or("?"),
                    f.error_message().unwrap_or("failed")
                )
            })
            .collect();
        return Err(Error::Waiting {
            what: format!("targets of rule {}: {}", d.name, reasons.join("; ")),
            after: std::time::Duration::from_secs(5),
        });
    }
    Ok(())
}

async fn remove_targets(aws: &Aws, bus: &str, name: &str, ids: Vec<String>) -> Result<()> {
    if ids.is_empty() {
        return Ok(());
    }
    match aws
        .call(Service::Events, "RemoveTargets", || {
            aws.events
                .remove_targets()
                .rule(name)
                .event_bus_name(bus)
                .set_ids(Some(ids.clone()))
                .send()
        })
        .await
    {
        Ok(_) => Ok(()),
        Err(e) if e.is_not_found() => Ok(()),
        Err(e) => Err(e.into()),
    }
}

impl AwsResource for Rule {
    type Desired = RulePlan;
    type Observed = ObservedRule;
    const KIND: Kind = Kind::Rule;

    fn id(desired: &RulePlan) -> &str {
        &desired.id
    }

    fn logical(desired: &RulePlan) -> &str {
        &desired.logical
    }

    fn arn(_aws: &Aws, desired: &RulePlan) -> Option<String> {
        Some(desired.arn.clone())
    }

    async fn observe(aws: &Aws, id: &str) -> Result<Option<ObservedRule>> {
        let (bus, name) = split(id);
        let rule = match aws
            .call(Service::Events, "DescribeRule", || {
                aws.events
                    .describe_rule()
                    .name(name)
                    .event_bus_name(bus)
                    .send()
            })
            .await
        {
            Ok(out) => out,
            Err(e) if e.is_not_found() => return Ok(None),
            Err(e) => return Err(e.into()),
        };
        let arn = rule.arn().unwrap_or_default().to_owned();
        let targets = match aws
            .call(Service::Events, "ListTargetsByRule", || {
                aws.events
                    .list_targets_by_rule()
                    .rule(name)
                    .event_bus_name(bus)
                    .send()
            })
            .await
        {
            Ok(out) => {
                let mut targets: Vec<TargetPlan> = out.targets().iter().map(from_aws).collect();
                targets.sort();
                targets
            }
            Err(e) if e.is_not_found() => return Ok(None),
            Err(e) => return Err(e.into()),
        };
        let Some(tags) = read_tags(aws, &arn).await? else {
            return Ok(None);
        };
        Ok(Some(ObservedRule {
            pattern: rule
                .event_pattern()
                .and_then(|p| serde_json::from_str(p).ok()),
            enabled: rule.state() == Some(&RuleState::Enabled),
            arn,
            targets,
            tags,
        }))
    }

    fn tags(observed: &ObservedRule) -> Option<&BTreeMap<String, String>> {
        Some(&observed.tags)
    }

    fn diff(d: &RulePlan, o: &ObservedRule) -> Vec<Drift> {
        let mut drift = Vec::new();
        if !o
            .pattern
            .as_ref()
            .is_some_and(|have| crate::asl::same_json(have, &d.pattern))
        {
            drift.push(Drift::new("pattern", d.pattern.to_string(), &o.pattern));
        }
        if o.enabled != d.enabled {
            drift.push(Drift::new("enabled", d.enabled, o.enabled));
        }
        if o.targets != d.targets {
            let ids = |t: &[TargetPlan]| t.iter().map(|t| t.id.clone()).collect::<Vec<_>>();
            drift.push(Drift::new("targets", ids(&d.targets), ids(&o.targets)));
        }
        drift.extend(tag_drift(&d.tags, &o.tags));
        drift
    }

    async fn create(aws: &Aws, d: &RulePlan) -> Result<Option<String>> {
        put_rule(aws, d, true).await?;
        put_targets(aws, d, &d.targets.iter().collect::<Vec<_>>()).await?;
        Ok(None)
    }

    async fn update(aws: &Aws, d: &RulePlan, o: &ObservedRule, drift: &[Drift]) -> Result<()> {
        let fields: Vec<&str> = drift.iter().map(|x| x.field).collect();
        if fields.contains(&"pattern") || fields.contains(&"enabled") {
            put_rule(aws, d, false).await?;
        }
        if fields.contains(&"targets") {
            let stale: Vec<String> = o
                .targets
                .iter()
                .filter(|t| !d.targets.iter().any(|w| w.id == t.id))
                .map(|t| t.id.clone())
                .collect();
            remove_targets(aws, &d.bus, &d.name, stale).await?;
            let changed: Vec<&TargetPlan> = d
                .targets
                .iter()
                .filter(|t| !o.targets.contains(t))
                .collect();
            put_targets(aws, d, &changed).await?;
        }
        if fields.contains(&"tags") {
            converge_tags(aws, &o.arn, &d.tags, &o.tags).await?;
        }
        Ok(())
    }

    async fn delete(aws: &Aws, id: &str, o: &ObservedRule) -> Result<()> {
        let (bus, name) = split(id);
        remove_targets(
            aws,
            bus,
            name,
            o.targets.iter().map(|t| t.id.clone()).collect(),
        )
        .await?;
        match aws
            .call(Service::Events, "DeleteRule", || {
                aws.events
                    .delete_rule()
                    .name(name)
                    .event_bus_name(bus)
                    .send()
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
        _id: &str,
        o: &ObservedRule,
        marker: &BTreeMap<String, String>,
    ) -> Result<()> {
        release_tags(aws, &o.arn, marker).await
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn desired() -> RulePlan {
        RulePlan {
            logical: "type-a".into(),
            id: "bus/rule".into(),
            name: "rule".into(),
            bus: "bus".into(),
            arn: "arn:aws:events:us-east-1:1:rule/bus/rule".into(),
            pattern: json!({"detail-type": ["data-event"], "detail": {"data_type": ["type_a"]}}),
            enabled: true,
            targets: vec![TargetPlan {
                id: "queue-type-a".into(),
                arn: "arn:aws:sqs:us-east-1:1:q".into(),
                message_group_id: None,
                input_transformer: None,
                role_arn: None,
            }],
            tags: BTreeMap::new(),
        }
    }

    #[test]
    fn a_pattern_with_other_key_order_and_spacing_is_the_same() {
        let d = desired();
        let text = r#"{ "detail": {"data_type": ["type_a"]},   "detail-type": ["data-event"] }"#;
        let o = ObservedRule {
            arn: d.arn.clone(),
            pattern: serde_json::from_str(text).ok(),
            enabled: true,
            targets: d.targets.clone(),
            tags: BTreeMap::new(),
        };
        assert_eq!(Rule::diff(&d, &o), vec![]);
    }

    #[test]
    fn pattern_and_target_changes_are_seen() {
        let d = desired();
        let o = ObservedRule {
            arn: d.arn.clone(),
            pattern: Some(json!({"detail-type": ["data-event"]})),
            enabled: true,
            targets: vec![],
            tags: BTreeMap::new(),
        };
        let fields: Vec<_> = Rule::diff(&d, &o).iter().map(|d| d.field).collect();
        assert_eq!(fields, ["pattern", "targets"]);
    }

    #[test]
    fn ids_split_into_bus_and_name() {
        assert_eq!(split("bus/rule"), ("bus", "rule"));
        assert_eq!(split("default/r"), ("default", "r"));
    }
}
