//! `SluicePolicy` (`sluice.dev/v1alpha1`, cluster-scoped): what the
//! platform team allows the pipelines of the namespaces it selects. Tenants
//! cannot write it (it is cluster-scoped; the shipped RBAC lets them read
//! it). Every field has a default, the values of a policy that is safe for
//! strangers and still runs every sample: a policy states every limit, and
//! one that leaves a field out gets the default, never "no limit". Several
//! policies selecting one namespace combine to the most restrictive
//! ([`crate::policy`]); a namespace no policy selects gets the defaults.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Guardrails for the pipelines of the selected namespaces.
#[derive(CustomResource, Deserialize, Serialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[kube(
    group = "sluice.dev",
    version = "v1alpha1",
    kind = "SluicePolicy",
    plural = "sluicepolicies",
    shortname = "sp",
    category = "sluice",
    printcolumn(
        name = "Pipelines",
        type_ = "integer",
        description = "most pipelines per namespace",
        json_path = ".spec.limits.pipelinesPerNamespace"
    ),
    printcolumn(
        name = "Default-Bus",
        type_ = "boolean",
        json_path = ".spec.allow.defaultEventBus"
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
pub struct SluicePolicySpec {
    /// The namespaces this policy applies to, by their labels (`matchLabels`
    /// and `matchExpressions` with `In`, `NotIn`, `Exists`,
    /// `DoesNotExist`). Left out or empty, it selects every namespace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace_selector: Option<LabelSelector>,

    /// Regions pipelines may use, within the operator's allowed regions.
    /// Empty: every region the operator may manage.
    #[serde(default)]
    #[schemars(length(max = 32))]
    pub regions: Vec<String>,

    /// Customer-managed KMS keys (ARNs) pipelines may encrypt with; a key
    /// named here is granted to the functions that read or write what it
    /// encrypts. Empty: none (AWS-managed encryption only).
    #[serde(default)]
    #[schemars(length(max = 64))]
    pub kms_keys: Vec<String>,

    /// S3 buckets (names) pipelines may take their functions' own code
    /// from (`functions[].code.s3.bucket`). Empty: none (built-in handlers
    /// and images only, as far as `imageRepositories` allows images).
    #[serde(default)]
    #[schemars(length(max = 64))]
    pub code_buckets: Vec<String>,

    /// Amazon ECR repositories (`<account>.dkr.ecr.<region>.amazonaws.com/<name>`)
    /// pipelines may run container images from (`functions[].code.image`).
    /// Empty: none.
    #[serde(default)]
    #[schemars(length(max = 64))]
    pub image_repositories: Vec<String>,

    /// Lambda layers pipelines may use, by ARN without the version
    /// (`arn:aws:lambda:<region>:<account>:layer:<name>`: every version).
    /// Empty: none.
    #[serde(default)]
    #[schemars(length(max = 64))]
    pub layers: Vec<String>,

    /// VPC subnets (`subnet-…`) pipelines' functions may put network
    /// interfaces in. Empty: none (functions stay out of VPCs).
    #[serde(default)]
    #[schemars(length(max = 64))]
    pub subnets: Vec<String>,

    /// Security groups (`sg-…`) pipelines' functions may use in a VPC.
    /// Empty: none.
    #[serde(default)]
    #[schemars(length(max = 64))]
    pub security_groups: Vec<String>,

    /// The AWS account the selected namespaces' pipelines live in: a role
    /// there the operator assumes for every AWS call of their pipelines
    /// (one session per pipeline, named and tagged after it). Left out: the
    /// operator's own identity and account, unless the operator requires a
    /// role for every namespace. Policies selecting one namespace that name
    /// different roles refuse its pipelines until they agree.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account: Option<AccountRole>,

    /// Features that are off unless allowed.
    #[serde(default)]
    pub allow: PolicyAllow,

    /// Maximums.
    #[serde(default)]
    pub limits: PolicyLimits,
}

/// A role in the account a namespace's pipelines live in, which the
/// operator assumes with STS. Its trust policy lets the operator's
/// principal `sts:AssumeRole` and `sts:TagSession` (with this external id),
/// its permissions are the operator's policy for that account
/// (`config/iam/account-role/`), and the operator lists it (Helm value
/// `aws.accountRoles`): a role the operator does not list is refused.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, Eq, Hash, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AccountRole {
    /// `arn:<partition>:iam::<12-digit account>:role/<path><name>`.
    #[schemars(
        length(max = 2048),
        regex(
            pattern = r"^arn:aws(-cn|-us-gov)?:iam::[0-9]{12}:role/([\w+=,.@-]+/)*[\w+=,.@-]{1,64}$"
        )
    )]
    pub role_arn: String,

    /// The external id the role's trust policy requires (`sts:ExternalId`),
    /// 2 to 1,224 characters of letters, digits and `+=,.@:/-_`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 2, max = 1224), regex(pattern = r"^[\w+=,.@:/-]+$"))]
    pub external_id: Option<String>,
}

impl AccountRole {
    /// The 12-digit account id of the role's ARN.
    pub fn account(&self) -> &str {
        self.role_arn.split(':').nth(4).unwrap_or_default()
    }
}

/// Features a policy turns on (all off by default, but provisioned streams).
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PolicyAllow {
    /// Rules on, and events put to, the account's default event bus (each
    /// rule is still confined to events of its own pipeline's resources).
    #[serde(default)]
    pub default_event_bus: bool,

    /// Kinesis streams in `Provisioned` mode (billed per shard-hour, used
    /// or not), up to `limits.shardsPerStream`.
    #[serde(default = "yes")]
    pub provisioned_streams: bool,

    /// DynamoDB tables with `Provisioned` capacity (billed per hour, used
    /// or not), up to `limits.capacityUnits`.
    #[serde(default)]
    pub provisioned_tables: bool,

    /// `reservedConcurrency` on functions: it takes from the account's
    /// concurrency every function shares, up to
    /// `limits.reservedConcurrencyPerNamespace`.
    #[serde(default)]
    pub reserved_concurrency: bool,

    /// Workflow definitions whose states loop (a Choice or Next leading
    /// back), which can run and invoke functions without end.
    #[serde(default)]
    pub workflow_loops: bool,

    /// A pipeline annotated `sluice.dev/adopt-from-namespace-uid` may adopt
    /// resources released (`deletionPolicy: Retain`) by a pipeline of the
    /// same name in an earlier namespace of the same name, whose UID the
    /// annotation names.
    #[serde(default)]
    pub adoption_from_earlier_namespace: bool,
}

fn yes() -> bool {
    true
}

impl Default for PolicyAllow {
    fn default() -> Self {
        PolicyAllow {
            default_event_bus: false,
            provisioned_streams: true,
            provisioned_tables: false,
            reserved_concurrency: false,
            workflow_loops: false,
            adoption_from_earlier_namespace: false,
        }
    }
}

/// Maximums of a policy. Each default is a value a data team rarely needs
/// more of and that keeps one namespace from taking a large share of an
/// account's quotas or bill (the README's "Multi-tenant operation" gives
/// the reason for each).
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PolicyLimits {
    /// Pipelines in one namespace (the oldest are served first).
    #[serde(default = "default_pipelines_per_namespace")]
    #[schemars(range(min = 0, max = 10000))]
    pub pipelines_per_namespace: i32,

    /// Functions in one pipeline.
    #[serde(default = "default_functions_per_pipeline")]
    #[schemars(range(min = 0, max = 32))]
    pub functions_per_pipeline: i32,

    /// IAM roles one pipeline makes: one per function, per workflow, per
    /// workflow events start and per schedule (AWS allows 1,000 per
    /// account).
    #[serde(default = "default_roles_per_pipeline")]
    #[schemars(range(min = 0, max = 200))]
    pub roles_per_pipeline: i32,

    /// A function's memory, MiB.
    #[serde(default = "default_memory_mib", rename = "memoryMiB")]
    #[schemars(range(min = 128, max = 10240))]
    pub memory_mib: i32,

    /// A function's timeout, seconds.
    #[serde(default = "default_timeout_seconds")]
    #[schemars(range(min = 1, max = 900))]
    pub timeout_seconds: i32,

    /// Reserved concurrency of all functions of one namespace together,
    /// when `allow.reservedConcurrency`.
    #[serde(default = "default_reserved_concurrency")]
    #[schemars(range(min = 0, max = 100000))]
    pub reserved_concurrency_per_namespace: i32,

    /// Kinesis streams in one pipeline.
    #[serde(default = "default_streams_per_pipeline")]
    #[schemars(range(min = 0, max = 16))]
    pub streams_per_pipeline: i32,

    /// Shards of a provisioned stream.
    #[serde(default = "default_shards_per_stream")]
    #[schemars(range(min = 1, max = 500))]
    pub shards_per_stream: i32,

    /// Read and (separately) write capacity units of a provisioned table.
    #[serde(default = "default_capacity_units")]
    #[schemars(range(min = 1, max = 40000))]
    pub capacity_units: i32,

    /// How long a stream keeps records, hours (beyond 24 is billed extra).
    #[serde(default = "default_stream_retention_hours")]
    #[schemars(range(min = 24, max = 8760))]
    pub stream_retention_hours: i32,

    /// How long a queue keeps messages, seconds.
    #[serde(default = "default_queue_retention_seconds")]
    #[schemars(range(min = 60, max = 1209600))]
    pub queue_retention_seconds: i32,

    /// The shortest time between two runs of a schedule, minutes.
    #[serde(default = "default_schedule_interval_minutes")]
    #[schemars(range(min = 1, max = 1440))]
    pub schedule_interval_minutes: i32,
}

fn default_pipelines_per_namespace() -> i32 {
    25
}
fn default_functions_per_pipeline() -> i32 {
    10
}
fn default_roles_per_pipeline() -> i32 {
    16
}
fn default_memory_mib() -> i32 {
    2048
}
fn default_timeout_seconds() -> i32 {
    900
}
fn default_reserved_concurrency() -> i32 {
    50
}
fn default_streams_per_pipeline() -> i32 {
    2
}
fn default_shards_per_stream() -> i32 {
    2
}
fn default_capacity_units() -> i32 {
    25
}
fn default_stream_retention_hours() -> i32 {
    24
}
fn default_queue_retention_seconds() -> i32 {
    1_209_600
}
fn default_schedule_interval_minutes() -> i32 {
    5
}

impl Default for PolicyLimits {
    fn default() -> Self {
        PolicyLimits {
            pipelines_per_namespace: default_pipelines_per_namespace(),
            functions_per_pipeline: default_functions_per_pipeline(),
            roles_per_pipeline: default_roles_per_pipeline(),
            memory_mib: default_memory_mib(),
            timeout_seconds: default_timeout_seconds(),
            reserved_concurrency_per_namespace: default_reserved_concurrency(),
            streams_per_pipeline: default_streams_per_pipeline(),
            shards_per_stream: default_shards_per_stream(),
            capacity_units: default_capacity_units(),
            stream_retention_hours: default_stream_retention_hours(),
            queue_retention_seconds: default_queue_retention_seconds(),
            schedule_interval_minutes: default_schedule_interval_minutes(),
        }
    }
}
