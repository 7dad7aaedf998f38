//! EventBridge buses and rules of a pipeline.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// An EventBridge event bus.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct EventBusSpec {
    /// Logical name, unique within the pipeline (lowercase letters, digits
    /// and '-'; not `default`, the name of the account's bus).
    #[schemars(
        length(min = 1, max = 40),
        regex(pattern = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
    )]
    #[schemars(extend("x-kubernetes-validations" = [
        {"rule": "self != 'default'", "message": "default names the account's bus; give the pipeline's bus another name"}
    ]))]
    pub name: String,
}

/// An EventBridge rule: events matching `pattern` go to every target.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RuleSpec {
    /// Logical name, unique within the pipeline (lowercase letters, digits and '-').
    #[schemars(
        length(min = 1, max = 40),
        regex(pattern = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
    )]
    pub name: String,

    /// Logical name of a bus in `spec.eventBuses`; without it, the
    /// account's default bus.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 40))]
    pub event_bus: Option<String>,

    /// The event pattern, written as YAML (a JSON object), e.g.
    /// `{detail-type: [data-event], detail: {data_type: [type_a]}}`.
    #[schemars(schema_with = "crate::crd::free_form_object")]
    #[serde(deserialize_with = "crate::crd::free_form")]
    pub pattern: Value,

    /// Where matching events go (1 to 5 targets, EventBridge's limit).
    #[schemars(length(min = 1, max = 5))]
    pub targets: Vec<RuleTarget>,

    /// `false` keeps the rule but stops it matching.
    #[serde(default = "default_enabled")]
    pub enabled: bool,
}

fn default_enabled() -> bool {
    true
}

/// One target of a rule; exactly one of `queue`, `function` and
/// `workflow` is set.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [
    {"rule": "[has(self.queue), has(self.function), has(self.workflow)].filter(x, x).size() == 1", "message": "a target names exactly one of queue, function or workflow"}
]))]
pub struct RuleTarget {
    /// Logical name of a queue in `spec.queues` (the queue's policy lets
    /// this rule, and only it, send).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 40))]
    pub queue: Option<String>,

    /// Logical name of a function in `spec.functions` (its resource policy
    /// lets this rule, and only it, invoke).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 40))]
    pub function: Option<String>,

    /// Logical name of a workflow in `spec.workflows` (started with the
    /// event as input, by a role that may start exactly that workflow).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 40))]
    pub workflow: Option<String>,

    /// For a FIFO queue target: the message group of every event sent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 128))]
    pub message_group_id: Option<String>,

    /// Reshape the event before delivery.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input_transformer: Option<InputTransformer>,
}

/// EventBridge's input transformer.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct InputTransformer {
    /// Variables taken from the event by JSON path, e.g. `key: $.detail.key`
    /// (at most 100).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    #[schemars(extend("maxProperties" = 100, "additionalProperties" = {"type": "string", "maxLength": 256}))]
    #[schemars(extend("x-kubernetes-validations" = [
        {"rule": "self.all(k, k.matches('^[A-Za-z0-9_-]+$'))", "message": "inputPaths names are letters, digits, '_' and '-' (EventBridge's InputPathsMap keys)"},
        {"rule": "self.all(k, self[k].startsWith('$'))", "message": "inputPaths values are JSON paths in dot notation, like $.detail.key"}
    ]))]
    pub input_paths: BTreeMap<String, String>,

    /// The delivered input, with `<variable>` placeholders.
    #[schemars(length(min = 1, max = 8192))]
    pub input_template: String,
}
