//! The `DataPipeline` custom resource (`sluice.dev/v1alpha1`).
//!
//! The spec is a small graph of named resources. Edges (a function's
//! `triggers` and `uses`) imply IAM grants, resource policies and environment
//! variables, so nobody writes IAM by hand.
//!
//! Admission-time validation lives in the schema (OpenAPI bounds and CEL
//! rules); everything the schema cannot express is checked by
//! [`crate::reconcile::validate`] before any AWS call.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

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
        "rule": "!has(self.functions) || self.functions.all(f, !has(f.triggers) || f.triggers.all(t, !has(t.bucket) || (has(self.buckets) && self.buckets.exists(b, b.name == t.bucket.name))))",
        "message": "every functions[].triggers[].bucket.name must name a bucket declared in spec.buckets"
    },
    {
        "rule": "!has(self.functions) || self.functions.all(f, !has(f.uses) || f.uses.all(u, !has(u.bucket) || (has(self.buckets) && self.buckets.exists(b, b.name == u.bucket))))",
        "message": "every functions[].uses[].bucket must name a bucket declared in spec.buckets"
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

    /// Stop converging AWS resources (deletion still cleans up).
    #[serde(default)]
    pub suspend: bool,

    /// S3 buckets owned by the pipeline.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 32))]
    #[schemars(extend("x-kubernetes-validations" = [
        {"rule": "self.all(x, self.exists_one(y, y.name == x.name))", "message": "bucket names must be unique"}
    ]))]
    pub buckets: Vec<BucketSpec>,

    /// Lambda functions and the edges that wire them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 32))]
    #[schemars(extend("x-kubernetes-validations" = [
        {"rule": "self.all(x, self.exists_one(y, y.name == x.name))", "message": "function names must be unique"}
    ]))]
    pub functions: Vec<FunctionSpec>,
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

/// An S3 bucket.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct BucketSpec {
    /// Logical name, unique within the pipeline (lowercase letters, digits and '-').
    #[schemars(
        length(min = 1, max = 40),
        regex(pattern = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
    )]
    pub name: String,

    /// Delete the bucket's objects when the bucket is deleted. Without it a
    /// non-empty bucket blocks deletion (reported in status and events)
    /// rather than losing data.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub empty_on_delete: bool,
}

/// A Lambda function.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct FunctionSpec {
    /// Logical name, unique within the pipeline (lowercase letters, digits and '-').
    #[schemars(
        length(min = 1, max = 40),
        regex(pattern = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
    )]
    pub name: String,

    /// Built-in handler from the `sluice-handlers` crate, e.g. `s3-json-transform`.
    #[schemars(
        length(min = 1, max = 64),
        regex(pattern = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
    )]
    pub handler: String,

    /// Memory in MiB (Lambda allows 128 to 10240).
    #[serde(rename = "memoryMiB", default = "default_memory")]
    #[schemars(range(min = 128, max = 10240))]
    pub memory_mib: i32,

    /// Timeout in seconds (Lambda allows 1 to 900).
    #[serde(default = "default_timeout")]
    #[schemars(range(min = 1))]
    #[schemars(extend("x-kubernetes-validations" = [
        {"rule": "self <= 900", "message": "must be at most 900 seconds (Lambda's limit); work that runs longer belongs in a workflow (Step Functions), not a single function"}
    ]))]
    pub timeout_seconds: i32,

    /// X-Ray tracing mode.
    #[serde(default)]
    pub tracing: TracingMode,

    /// Extra environment variables. Names Sluice sets from `uses` and names
    /// Lambda reserves (`AWS_*`, `LAMBDA_*`, `_HANDLER`, ...) are rejected.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    #[schemars(extend("maxProperties" = 50))]
    pub environment: BTreeMap<String, String>,

    /// What invokes the function.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 32))]
    pub triggers: Vec<TriggerSpec>,

    /// Pipeline resources the function reads or writes. Each grants exactly
    /// that access and passes the real resource name in an environment variable.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 32))]
    pub uses: Vec<UseSpec>,
}

fn default_memory() -> i32 {
    128
}

fn default_timeout() -> i32 {
    30
}

/// X-Ray tracing mode of a function.
#[derive(Deserialize, Serialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
pub enum TracingMode {
    /// Only traces requests that arrive with a sampled trace header.
    #[default]
    PassThrough,
    /// Samples and traces incoming requests (grants the X-Ray write actions).
    Active,
}

impl TracingMode {
    /// The value Lambda's API uses.
    pub fn as_aws(self) -> &'static str {
        match self {
            TracingMode::PassThrough => "PassThrough",
            TracingMode::Active => "Active",
        }
    }
}

/// One source of invocations; exactly one field is set.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [
    {"rule": "has(self.bucket)", "message": "a trigger must set exactly one source: bucket"}
]))]
pub struct TriggerSpec {
    /// Objects events of a pipeline bucket invoke the function.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bucket: Option<BucketTrigger>,
}

/// S3 event notification from a pipeline bucket.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct BucketTrigger {
    /// Logical name of a bucket in `spec.buckets`.
    #[schemars(length(min = 1, max = 40))]
    pub name: String,

    /// S3 event types that invoke the function.
    #[serde(default = "default_events")]
    #[schemars(length(min = 1, max = 16))]
    pub events: Vec<S3Event>,

    /// Only keys starting with this prefix.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 1024))]
    pub prefix: Option<String>,

    /// Only keys ending with this suffix.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 1024))]
    pub suffix: Option<String>,
}

fn default_events() -> Vec<S3Event> {
    vec![S3Event::ObjectCreatedAll]
}

/// The S3 event types a bucket notification may name.
#[derive(
    Deserialize, Serialize, Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, JsonSchema,
)]
pub enum S3Event {
    #[serde(rename = "s3:ObjectCreated:*")]
    ObjectCreatedAll,
    #[serde(rename = "s3:ObjectCreated:Put")]
    ObjectCreatedPut,
    #[serde(rename = "s3:ObjectCreated:Post")]
    ObjectCreatedPost,
    #[serde(rename = "s3:ObjectCreated:Copy")]
    ObjectCreatedCopy,
    #[serde(rename = "s3:ObjectCreated:CompleteMultipartUpload")]
    ObjectCreatedCompleteMultipartUpload,
    #[serde(rename = "s3:ObjectRemoved:*")]
    ObjectRemovedAll,
    #[serde(rename = "s3:ObjectRemoved:Delete")]
    ObjectRemovedDelete,
    #[serde(rename = "s3:ObjectRemoved:DeleteMarkerCreated")]
    ObjectRemovedDeleteMarkerCreated,
    #[serde(rename = "s3:ObjectRestore:*")]
    ObjectRestoreAll,
    #[serde(rename = "s3:ObjectRestore:Post")]
    ObjectRestorePost,
    #[serde(rename = "s3:ObjectRestore:Completed")]
    ObjectRestoreCompleted,
    #[serde(rename = "s3:ObjectTagging:*")]
    ObjectTaggingAll,
    #[serde(rename = "s3:ObjectTagging:Put")]
    ObjectTaggingPut,
    #[serde(rename = "s3:ObjectTagging:Delete")]
    ObjectTaggingDelete,
}

impl S3Event {
    /// The event name as S3 spells it.
    pub fn as_aws(self) -> &'static str {
        match self {
            S3Event::ObjectCreatedAll => "s3:ObjectCreated:*",
            S3Event::ObjectCreatedPut => "s3:ObjectCreated:Put",
            S3Event::ObjectCreatedPost => "s3:ObjectCreated:Post",
            S3Event::ObjectCreatedCopy => "s3:ObjectCreated:Copy",
            S3Event::ObjectCreatedCompleteMultipartUpload => {
                "s3:ObjectCreated:CompleteMultipartUpload"
            }
            S3Event::ObjectRemovedAll => "s3:ObjectRemoved:*",
            S3Event::ObjectRemovedDelete => "s3:ObjectRemoved:Delete",
            S3Event::ObjectRemovedDeleteMarkerCreated => "s3:ObjectRemoved:DeleteMarkerCreated",
            S3Event::ObjectRestoreAll => "s3:ObjectRestore:*",
            S3Event::ObjectRestorePost => "s3:ObjectRestore:Post",
            S3Event::ObjectRestoreCompleted => "s3:ObjectRestore:Completed",
            S3Event::ObjectTaggingAll => "s3:ObjectTagging:*",
            S3Event::ObjectTaggingPut => "s3:ObjectTagging:Put",
            S3Event::ObjectTaggingDelete => "s3:ObjectTagging:Delete",
        }
    }
}

/// A grant on a pipeline resource; exactly one target field is set.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [
    {"rule": "has(self.bucket)", "message": "a use must name exactly one resource: bucket"}
]))]
pub struct UseSpec {
    /// Logical name of a bucket in `spec.buckets`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 40))]
    pub bucket: Option<String>,

    /// What the function may do with the resource.
    pub access: Access,

    /// Environment variable that receives the resource's real name.
    /// Defaults to `BUCKET_<NAME>` (upper-case, '-' as '_').
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(
        length(min = 1, max = 128),
        regex(pattern = r"^[A-Za-z][A-Za-z0-9_]*$")
    )]
    pub env: Option<String>,
}

/// Access a function is granted on a resource it uses.
#[derive(Deserialize, Serialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum Access {
    /// Get and list objects.
    Read,
    /// Put objects.
    Write,
    /// Both.
    ReadWrite,
}

impl Access {
    /// Whether the grant includes reading.
    pub fn reads(self) -> bool {
        matches!(self, Access::Read | Access::ReadWrite)
    }

    /// Whether the grant includes writing.
    pub fn writes(self) -> bool {
        matches!(self, Access::Write | Access::ReadWrite)
    }
}

/// Observed state, following the Kubernetes API conventions and kstatus.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct DataPipelineStatus {
    /// The `metadata.generation` this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,

    /// `Ready` is always present; `Reconciling` and `Stalled` only while True.
    #[serde(default)]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["type"]))]
    pub conditions: Vec<Condition>,

    /// Every AWS resource the pipeline owns.
    #[serde(default)]
    pub inventory: Vec<InventoryEntry>,

    /// Code deployed to each function.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub functions: Vec<FunctionStatus>,
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
    /// Built-in handler deployed.
    pub handler: String,
    /// Base64 SHA-256 of the deployed zip, as Lambda reports `CodeSha256`.
    pub code_sha256: String,
}

#[cfg(test)]
mod tests {
    use kube::CustomResourceExt;

    use super::*;

    #[test]
    fn the_committed_crd_matches_the_types() {
        let committed = include_str!("../../crds/datapipelines.sluice.dev.yaml");
        let generated = serde_yaml::to_string(&DataPipeline::crd()).expect("CRD serialises");
        assert!(
            committed == generated,
            "crds/ is stale: run `make crds` and commit the result"
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
