//! The `DataPipeline` custom resource (`sluice.dev/v1alpha1`).
//!
//! The spec is a small graph of named resources. Edges (a function's
//! `triggers` and `uses`) imply IAM grants, resource policies and environment
//! variables, so nobody writes IAM by hand.
//!
//! Admission-time validation lives in the schema (OpenAPI bounds and CEL
//! rules); everything the schema cannot express is checked by
//! [`crate::reconcile::validate`] before any AWS call.

mod bucket;
mod code;
mod depth;
mod events;
mod function;
mod health;
mod policy;
mod queue;
mod schedule;
mod stream;
mod table;
mod workflow;

pub use bucket::*;
pub use code::*;
pub use depth::depth_policy;
pub use events::*;
pub use function::*;
pub use health::*;
pub use policy::*;
pub use queue::*;
pub use schedule::*;
pub use stream::*;
pub use table::*;
pub use workflow::*;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Kubernetes group of every Sluice API.
pub const GROUP: &str = "sluice.dev";

/// Most functions, buckets, triggers or grants one pipeline may hold. The
/// bounds keep CEL rule cost within the apiserver's budget and a pipeline
/// within what one reconcile can converge under AWS's control-plane quotas.
pub const MAX_ITEMS: usize = 32;

/// Longest logical name of a graph node; AWS names are derived from it.
pub const MAX_NAME_LEN: usize = 40;

/// A serverless data pipeline on AWS.
// Each `printcolumn(...)` repeats `type_`, which clippy mistakes for a
// duplicated attribute.
#[allow(clippy::duplicated_attributes)]
#[derive(CustomResource, Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
#[kube(
    group = "sluice.dev",
    version = "v1alpha1",
    kind = "DataPipeline",
    plural = "datapipelines",
    namespaced,
    shortname = "dp",
    category = "sluice",
    status = "DataPipelineStatus",
    printcolumn(
        name = "Ready",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"Ready\")].status"
    ),
    printcolumn(
        name = "Healthy",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"Healthy\")].status"
    ),
    printcolumn(
        name = "Status",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"Ready\")].message"
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [
    {
        "rule": "self.functions.all(f, f.triggers.all(t, !has(t.bucket) || self.buckets.exists(b, b.name == t.bucket.name)))",
        "message": "every functions[].triggers[].bucket.name must name a bucket declared in spec.buckets"
    },
    {
        "rule": "self.functions.all(f, f.triggers.all(t, !has(t.queue) || self.queues.exists(q, q.name == t.queue.name || (has(q.deadLetter) && !has(q.deadLetter.queue) && q.name + '-dlq' == t.queue.name))))",
        "message": "every functions[].triggers[].queue.name must name a queue declared in spec.queues (or the dead-letter queue <queue>-dlq Sluice creates)"
    },
    {
        "rule": "self.functions.all(f, f.triggers.all(t, !has(t.stream) || self.streams.exists(x, x.name == t.stream.name)))",
        "message": "every functions[].triggers[].stream.name must name a stream declared in spec.streams"
    },
    {
        "rule": "self.functions.all(f, f.triggers.all(t, !has(t.stream) || !has(t.stream.onFailure) || self.queues.exists(q, q.name == t.stream.onFailure.queue || (has(q.deadLetter) && !has(q.deadLetter.queue) && q.name + '-dlq' == t.stream.onFailure.queue))))",
        "message": "every functions[].triggers[].stream.onFailure.queue must name a queue declared in spec.queues"
    },
    {
        "rule": "self.functions.all(f, f.uses.all(u, !has(u.bucket) || self.buckets.exists(b, b.name == u.bucket)))",
        "message": "every functions[].uses[].bucket must name a bucket declared in spec.buckets"
    },
    {
        "rule": "self.functions.all(f, f.uses.all(u, !has(u.queue) || self.queues.exists(q, q.name == u.queue || (has(q.deadLetter) && !has(q.deadLetter.queue) && q.name + '-dlq' == u.queue))))",
        "message": "every functions[].uses[].queue must name a queue declared in spec.queues"
    },
    {
        "rule": "self.functions.all(f, f.uses.all(u, !has(u.eventBus) || u.eventBus == 'default' || self.eventBuses.exists(b, b.name == u.eventBus)))",
        "message": "every functions[].uses[].eventBus must name a bus declared in spec.eventBuses, or default"
    },
    {
        "rule": "self.functions.all(f, f.uses.all(u, !has(u.table) || self.tables.exists(t, t.name == u.table)))",
        "message": "every functions[].uses[].table must name a table declared in spec.tables"
    },
    {
        "rule": "self.functions.all(f, f.uses.all(u, !has(u.stream) || self.streams.exists(x, x.name == u.stream)))",
        "message": "every functions[].uses[].stream must name a stream declared in spec.streams"
    },
    {
        "rule": "self.functions.all(f, !has(f.asyncInvocation) || !has(f.asyncInvocation.onFailure) || self.queues.exists(q, q.name == f.asyncInvocation.onFailure.queue || (has(q.deadLetter) && !has(q.deadLetter.queue) && q.name + '-dlq' == f.asyncInvocation.onFailure.queue)))",
        "message": "every functions[].asyncInvocation.onFailure.queue must name a queue declared in spec.queues"
    },
    {
        "rule": "self.functions.all(f, !has(f.idempotency) || self.tables.exists(t, t.name == f.idempotency.table))",
        "message": "every functions[].idempotency.table must name a table declared in spec.tables"
    },
    {
        "rule": "self.rules.all(r, !has(r.eventBus) || self.eventBuses.exists(b, b.name == r.eventBus))",
        "message": "every rules[].eventBus must name a bus declared in spec.eventBuses (leave it out for the account's default bus)"
    },
    {
        "rule": "self.rules.all(r, r.targets.all(t, !has(t.queue) || self.queues.exists(q, q.name == t.queue || (has(q.deadLetter) && !has(q.deadLetter.queue) && q.name + '-dlq' == t.queue))))",
        "message": "every rules[].targets[].queue must name a queue declared in spec.queues"
    },
    {
        "rule": "self.rules.all(r, r.targets.all(t, !has(t.function) || self.functions.exists(f, f.name == t.function)))",
        "message": "every rules[].targets[].function must name a function declared in spec.functions"
    },
    {
        "rule": "self.queues.all(q, !has(q.deadLetter) || !has(q.deadLetter.queue) || self.queues.exists(d, d.name == q.deadLetter.queue))",
        "message": "every queues[].deadLetter.queue must name a queue declared in spec.queues"
    },
    {
        "rule": "self.rules.all(r, r.targets.all(t, !has(t.workflow) || self.workflows.exists(w, w.name == t.workflow)))",
        "message": "every rules[].targets[].workflow must name a workflow declared in spec.workflows"
    },
    {
        "rule": "self.functions.all(f, f.uses.all(u, !has(u.workflow) || self.workflows.exists(w, w.name == u.workflow)))",
        "message": "every functions[].uses[].workflow must name a workflow declared in spec.workflows"
    },
    {
        "rule": "self.workflows.all(w, w.triggers.all(t, !has(t.bucket) || self.buckets.exists(b, b.name == t.bucket.name)))",
        "message": "every workflows[].triggers[].bucket.name must name a bucket declared in spec.buckets"
    },
    {
        "rule": "self.schedules.all(s, !has(s.target.function) || self.functions.exists(f, f.name == s.target.function))",
        "message": "every schedules[].target.function must name a function declared in spec.functions"
    },
    {
        "rule": "self.schedules.all(s, !has(s.target.workflow) || self.workflows.exists(w, w.name == s.target.workflow))",
        "message": "every schedules[].target.workflow must name a workflow declared in spec.workflows"
    },
    {
        "rule": "self.schedules.all(s, !has(s.target.queue) || self.queues.exists(q, q.name == s.target.queue || (has(q.deadLetter) && !has(q.deadLetter.queue) && q.name + '-dlq' == s.target.queue)))",
        "message": "every schedules[].target.queue must name a queue declared in spec.queues"
    },
    {
        "rule": "self.schedules.all(s, !has(s.deadLetter) || self.queues.exists(q, q.name == s.deadLetter.queue || (has(q.deadLetter) && !has(q.deadLetter.queue) && q.name + '-dlq' == s.deadLetter.queue)))",
        "message": "every schedules[].deadLetter.queue must name a queue declared in spec.queues"
    },
    {
        "rule": "self.queues.all(q, !has(q.deadLetter) || !has(q.deadLetter.queue) || self.queues.all(d, d.name != q.deadLetter.queue || d.fifo == q.fifo))",
        "message": "a queue's deadLetter.queue must be of the same type: a FIFO queue's dead-letter queue is FIFO, a standard queue's is standard"
    }
]))]
pub struct DataPipelineSpec {
    /// AWS region of every resource of this pipeline. Defaults to the
    /// operator's region; must be one the operator is allowed to manage.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^[a-z]{2}(-[a-z]+)+-[0-9]$"))]
    pub region: Option<String>,

    /// What happens to the AWS resources when the pipeline is deleted:
    /// `Delete` removes them, `Retain` keeps them and removes Sluice's
    /// ownership tags.
    #[serde(default)]
    pub deletion_policy: DeletionPolicy,

    /// Stop converging AWS resources and polling their health (deletion
    /// still cleans up).
    #[serde(default)]
    pub suspend: bool,

    /// Thresholds of the `Healthy` condition (defaults when left out).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub health: Option<HealthSpec>,

    /// S3 buckets owned by the pipeline.
    #[serde(default)]
    #[schemars(length(max = 32))]
    #[schemars(extend("x-kubernetes-validations" = [
        {"rule": "self.all(x, self.exists_one(y, y.name == x.name))", "message": "bucket names must be unique"}
    ]))]
    pub buckets: Vec<BucketSpec>,

    /// SQS queues (and their dead-letter queues).
    #[serde(default)]
    #[schemars(length(max = 32))]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["name"]))]
    pub queues: Vec<QueueSpec>,

    /// EventBridge buses.
    #[serde(default)]
    #[schemars(length(max = 8))]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["name"]))]
    pub event_buses: Vec<EventBusSpec>,

    /// EventBridge rules routing events to queues and functions.
    #[serde(default)]
    #[schemars(length(max = 32))]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["name"]))]
    pub rules: Vec<RuleSpec>,

    /// Kinesis data streams.
    #[serde(default)]
    #[schemars(length(max = 16))]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["name"]))]
    pub streams: Vec<StreamSpec>,

    /// DynamoDB tables.
    #[serde(default)]
    #[schemars(length(max = 16))]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["name"]))]
    pub tables: Vec<TableSpec>,

    /// Step Functions workflows whose tasks run the pipeline's functions.
    #[serde(default)]
    #[schemars(length(max = 16))]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["name"]))]
    pub workflows: Vec<WorkflowSpec>,

    /// EventBridge Scheduler schedules running a function, a workflow or
    /// sending to a queue.
    #[serde(default)]
    #[schemars(length(max = 16))]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["name"]))]
    pub schedules: Vec<ScheduleSpec>,

    /// Lambda functions and the edges that wire them.
    #[serde(default)]
    #[schemars(length(max = 32))]
    #[schemars(extend("x-kubernetes-validations" = [
        {"rule": "self.all(x, self.exists_one(y, y.name == x.name))", "message": "function names must be unique"}
    ]))]
    pub functions: Vec<FunctionSpec>,
}

impl DataPipelineSpec {
    /// The pipeline's region: `spec.region`, else the operator's default.
    pub fn region_or(&self, default: &str) -> String {
        self.region.clone().unwrap_or_else(|| default.to_owned())
    }
}

/// The schema of a free-form JSON object (an event pattern, an ASL
/// definition): `type: object`, fields kept as written.
/// How deep a free-form object of the spec (event pattern, workflow
/// definition, schedule input) may nest. The API server stores anything;
/// a reader with a recursion limit (serde_json's is 128, counted from the
/// watch event's root) fails to read the whole list when one object is too
/// deep, so the limit is enforced at admission, well below that.
pub const MAX_FREE_FORM_DEPTH: usize = 32;

/// The marker a free-form object too deep to parse is read as (see
/// [`free_form`]); validation refuses it naming the field.
pub const TOO_DEEP: &str = "$sluice:nested-too-deep";

/// serde_json's name for its raw-value newtype (feature `raw_value`).
const RAW_VALUE_TOKEN: &str = "$serde_json::private::RawValue";

/// Reads a free-form object (`deserialize_with`). serde_json refuses input
/// nested deeper than 128 levels counted from the document's root, so one
/// deep object in a list or watch event would fail reading every pipeline
/// the operator watches. From serde_json, the object is taken as raw text
/// (skipped without a depth limit) and parsed on its own; what is still too
/// deep becomes `{TOO_DEEP: true}`, which validation refuses. Other formats
/// (YAML in tests) read it as a plain value.
pub(crate) fn free_form<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Value, D::Error> {
    struct FreeForm;
    impl<'de> serde::de::Visitor<'de> for FreeForm {
        type Value = Value;

        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("a JSON value")
        }

        fn visit_newtype_struct<D: serde::Deserializer<'de>>(
            self,
            d: D,
        ) -> Result<Value, D::Error> {
            Value::deserialize(d)
        }

        fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
            let mut object = serde_json::Map::new();
            while let Some(key) = map.next_key::<String>()? {
                if key == RAW_VALUE_TOKEN {
                    let raw: String = map.next_value()?;
                    return Ok(serde_json::from_str(&raw)
                        .unwrap_or_else(|_| serde_json::json!({ TOO_DEEP: true })));
                }
                object.insert(key, map.next_value()?);
            }
            Ok(Value::Object(object))
        }
    }
    d.deserialize_newtype_struct(RAW_VALUE_TOKEN, FreeForm)
}

/// [`free_form`] for an optional field (`null` reads as absent).
pub(crate) fn free_form_opt<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> Result<Option<Value>, D::Error> {
    free_form(d).map(|v| (!v.is_null()).then_some(v))
}

/// Whether `value` is the marker of an object too deep to parse.
pub fn is_too_deep(value: &Value) -> bool {
    value.get(TOO_DEEP).is_some()
}

pub(crate) fn free_form_object(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    schemars::json_schema!({
        "type": "object",
        "x-kubernetes-preserve-unknown-fields": true
    })
}

/// What deletion of the pipeline does to its AWS resources.
#[derive(Deserialize, Serialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
pub enum DeletionPolicy {
    /// Delete every AWS resource the pipeline owns.
    #[default]
    Delete,
    /// Keep the AWS resources and remove Sluice's ownership tags.
    Retain,
}

/// Observed state, following the Kubernetes API conventions and kstatus.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct DataPipelineStatus {
    /// The `metadata.generation` this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,

    /// `Ready` is always present; `Reconciling` and `Stalled` only while
    /// True; `Healthy` once runtime health has been polled.
    #[serde(default)]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["type"]))]
    pub conditions: Vec<Condition>,

    /// The AWS account the pipeline's resources are in, and the role they
    /// were made as (none: the operator's own identity).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account: Option<AccountStatus>,

    /// Every AWS resource the pipeline owns.
    #[serde(default)]
    pub inventory: Vec<InventoryEntry>,

    /// Code deployed to each function.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub functions: Vec<FunctionStatus>,

    /// What the spec allows but probably does not mean, e.g. a workflow
    /// step no workflow runs. Not an error; shown so a person sees it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,

    /// Runtime health over a recent window (coarse figures; the `Healthy`
    /// condition says what is wrong). Written by the health poller.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub health: Option<HealthStatus>,

    /// The digest of the plan AWS refused a value of (`Stalled`,
    /// `AWSRejected`): the same plan is not sent again, by this replica or
    /// the next leader, until the spec (or what it plans to) changes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rejected_plan: Option<String>,
}

/// Where a pipeline's AWS resources are.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AccountStatus {
    /// The 12-digit account id.
    pub id: String,
    /// The account role (SluicePolicy `spec.account.roleArn`) the
    /// operator made them as; left out for its own identity.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role_arn: Option<String>,
}

/// One AWS resource owned by the pipeline.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, Eq, PartialOrd, Ord, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct InventoryEntry {
    /// Resource kind, e.g. `Lambda::Function`.
    pub kind: String,
    /// Logical name in the spec (for derived resources, the node they belong to).
    pub name: String,
    /// The AWS identifier (name) used to find the resource again.
    pub id: String,
    /// ARN, where the resource has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub arn: Option<String>,
    /// `Ready`, or what the operator is waiting for.
    pub state: String,
}

/// The code deployed to one function.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct FunctionStatus {
    /// Logical function name.
    pub name: String,
    /// Built-in handler deployed (absent for the team's own code).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub handler: Option<String>,
    /// Where the team's own code comes from: `s3://bucket/key` (with
    /// `?versionId=`) or the image URI (absent for a built-in handler).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    /// What Lambda reports as `CodeSha256`: the base64 SHA-256 of the
    /// deployed zip, an image's digest.
    pub code_sha256: String,
}

#[cfg(test)]
mod tests {
    use kube::CustomResourceExt;

    use super::*;

    fn nested(levels: usize) -> String {
        format!(
            "{}[\"x\"]{}",
            "{\"n\":".repeat(levels - 1),
            "}".repeat(levels - 1)
        )
    }

    /// A watch event holding a pipeline whose pattern nests `levels` deep.
    fn event(levels: usize) -> String {
        format!(
            r#"{{"type":"ADDED","object":{{"apiVersion":"sluice.dev/v1alpha1","kind":"DataPipeline",
            "metadata":{{"name":"p","namespace":"n"}},"spec":{{"eventBuses":[{{"name":"b"}}],
            "rules":[{{"name":"r","eventBus":"b","pattern":{},"targets":[{{"queue":"q"}}]}}],
            "schedules":[{{"name":"s","expression":"rate(1 hour)","target":{{"queue":"q"}},"input":{}}}],
            "workflows":[{{"name":"w","definition":{}}}]}}}}}}"#,
            nested(levels),
            nested(levels),
            nested(levels)
        )
    }

    #[test]
    fn a_free_form_object_too_deep_for_serde_never_fails_reading_the_pipeline() {
        // Without free_form, 200 levels fail the whole event (serde_json's
        // recursion limit), and with it every pipeline of the watch.
        assert!(serde_json::from_str::<serde_json::Value>(&event(200)).is_err());
        let e: kube::core::WatchEvent<DataPipeline> =
            serde_json::from_str(&event(200)).expect("a deep pattern still reads");
        let kube::core::WatchEvent::Added(dp) = e else {
            panic!("added")
        };
        assert!(is_too_deep(&dp.spec.rules[0].pattern));
        assert!(is_too_deep(&dp.spec.workflows[0].definition));
        assert!(is_too_deep(
            dp.spec.schedules[0].input.as_ref().expect("input")
        ));
        // A deep but parseable one reads as itself.
        let e: kube::core::WatchEvent<DataPipeline> =
            serde_json::from_str(&event(60)).expect("reads");
        let kube::core::WatchEvent::Added(dp) = e else {
            panic!("added")
        };
        assert_eq!(
            dp.spec.rules[0].pattern.to_string(),
            serde_json::from_str::<serde_json::Value>(&nested(60))
                .expect("json")
                .to_string()
        );
        // From a Value and from YAML too.
        let v = serde_json::to_value(&dp).expect("serialises");
        let back: DataPipeline = serde_json::from_value(v).expect("from a value");
        assert_eq!(back.spec, dp.spec);
        let yaml: DataPipelineSpec = serde_yaml::from_str(
            "schedules: [{name: s, expression: rate(1 hour), target: {queue: q}, input: {a: [1]}}]",
        )
        .expect("yaml");
        assert_eq!(yaml.schedules[0].input, Some(serde_json::json!({"a": [1]})));
    }

    #[test]
    fn the_committed_crd_matches_the_types() {
        let committed = include_str!("../../../charts/sluice/crds/datapipelines.sluice.dev.yaml");
        let generated = serde_yaml::to_string(&DataPipeline::crd()).expect("CRD serialises");
        assert!(
            committed == generated,
            "charts/sluice/crds/ is stale: run `make crds` and commit the result"
        );
    }

    #[test]
    fn the_schema_keeps_conditions_mergeable_by_type() {
        let crd = serde_json::to_value(DataPipeline::crd()).expect("CRD as JSON");
        let conditions = &crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["status"]
            ["properties"]["conditions"];
        assert_eq!(conditions["x-kubernetes-list-type"], "map");
        assert_eq!(conditions["x-kubernetes-list-map-keys"][0], "type");
    }

    #[test]
    fn defaults_fill_in_what_the_sample_leaves_out() {
        let spec: DataPipelineSpec =
            serde_yaml::from_str("functions: [{name: f, handler: h}]").expect("valid");
        assert_eq!(spec.deletion_policy, DeletionPolicy::Delete);
        assert_eq!(spec.functions[0].memory_mib, 128);
        assert_eq!(spec.functions[0].timeout_seconds, 30);
        assert_eq!(spec.functions[0].tracing, TracingMode::PassThrough);
    }
}
