//! EventBridge buses and rules with their targets.

use std::collections::BTreeMap;

use serde_json::{Value, json};

use super::Graph;
use crate::crd::DataPipelineSpec;

/// An EventBridge bus of the pipeline.
#[derive(Clone, Debug, PartialEq)]
pub struct EventBusPlan {
    /// Logical name.
    pub logical: String,
    /// Bus name.
    pub name: String,
    /// Ownership tags.
    pub tags: BTreeMap<String, String>,
}

/// One target of a rule.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct TargetPlan {
    /// Target id, unique within the rule (`queue-<name>`, `function-<name>`).
    pub id: String,
    /// ARN of the queue or function.
    pub arn: String,
    /// FIFO queue targets: the message group.
    pub message_group_id: Option<String>,
    /// Input transformer: paths (JSON object of variable → path) and template.
    pub input_transformer: Option<(BTreeMap<String, String>, String)>,
    /// Role EventBridge assumes to deliver (workflow targets).
    pub role_arn: Option<String>,
}

/// An EventBridge rule.
#[derive(Clone, Debug, PartialEq)]
pub struct RulePlan {
    /// Logical name.
    pub logical: String,
    /// AWS id: `<bus>/<rule>` (the rule name is only unique per bus).
    pub id: String,
    /// Rule name.
    pub name: String,
    /// Bus name (`default` for the account's bus).
    pub bus: String,
    /// Rule ARN.
    pub arn: String,
    /// Event pattern.
    pub pattern: Value,
    /// `ENABLED` or `DISABLED`.
    pub enabled: bool,
    /// Targets, sorted by id.
    pub targets: Vec<TargetPlan>,
    /// Ownership tags.
    pub tags: BTreeMap<String, String>,
}

impl RulePlan {
    /// The AWS id of a rule on `bus`.
    pub fn id_of(bus: &str, name: &str) -> String {
        format!("{bus}/{name}")
    }
}

/// The buses of `spec`.
pub fn plan_buses(spec: &DataPipelineSpec, graph: &Graph<'_>) -> Vec<EventBusPlan> {
    spec.event_buses
        .iter()
        .filter_map(|b| {
            let node = graph.buses.get(&b.name)?;
            Some(EventBusPlan {
                logical: b.name.clone(),
                name: node.name.clone(),
                tags: graph.id.tags(&b.name),
            })
        })
        .collect()
}

/// A tenant's rule pattern as Sluice writes it: kept to the pipeline's own
/// events. On the pipeline's own bus, `source` is the pipeline's (its
/// functions may publish only with it, [`crate::iam::with_source`]); on the
/// account's default bus, which carries every team's events, `$or` admits
/// only events published with that source or about the pipeline's own
/// buckets and workflows (their ARNs, and the prefix of their executions'),
/// whatever else the pattern says. Validation refuses patterns that set
/// these keys themselves.
pub fn confine(pattern: &Value, on_default_bus: bool, graph: &Graph<'_>) -> Value {
    let mut confined = pattern.clone();
    let Some(fields) = confined.as_object_mut() else {
        return confined;
    };
    let source = json!([graph.id.event_source()]);
    if !on_default_bus {
        fields.insert("source".into(), source);
        return confined;
    }
    let mut resources: Vec<Value> = graph.buckets.values().map(|b| json!(b.arn)).collect();
    for w in graph.workflows.values() {
        resources.push(json!(w.arn));
        // arn:…:stateMachine:NAME → arn:…:execution:NAME:<id>
        let execution = w.arn.replacen(":stateMachine:", ":execution:", 1);
        resources.push(json!({"prefix": format!("{execution}:")}));
    }
    fields.insert(
        "$or".into(),
        json!([{"source": source}, {"resources": resources}]),
    );
    confined
}

/// The rules of `spec` with their targets.
pub fn plan_rules(spec: &DataPipelineSpec, graph: &Graph<'_>) -> Vec<RulePlan> {
    spec.rules
        .iter()
        .filter_map(|r| {
            let rule = graph.rules.get(&r.name)?;
            let mut targets: Vec<TargetPlan> = r
                .targets
                .iter()
                .filter_map(|t| {
                    let (id, arn, role_arn) = match (&t.queue, &t.function, &t.workflow) {
                        (Some(q), _, _) => (
                            format!("queue-{q}"),
                            graph.queues.get(q)?.node.arn.clone(),
                            None,
                        ),
                        (None, Some(f), _) => (
                            format!("function-{f}"),
                            graph.functions.get(f)?.arn.clone(),
                            None,
                        ),
                        (None, None, Some(w)) => (
                            format!("workflow-{w}"),
                            graph.workflows.get(w)?.arn.clone(),
                            graph.start_roles.get(w).map(|r| r.arn.clone()),
                        ),
                        (None, None, None) => return None,
                    };
                    Some(TargetPlan {
                        id,
                        arn,
                        role_arn,
                        message_group_id: t.message_group_id.clone(),
                        input_transformer: t
                            .input_transformer
                            .as_ref()
                            .map(|x| (x.input_paths.clone(), x.input_template.clone())),
                    })
                })
                .collect();
            targets.sort();
            Some(RulePlan {
                logical: r.name.clone(),
                id: RulePlan::id_of(&rule.bus, &rule.node.name),
                name: rule.node.name.clone(),
                bus: rule.bus.clone(),
                arn: rule.node.arn.clone(),
                pattern: confine(&r.pattern, r.event_bus.is_none(), graph),
                enabled: r.enabled,
                targets,
                tags: graph.id.tags(&r.name),
            })
        })
        .chain(super::workflow::plan_bucket_rules(spec, graph))
        .collect()
}
