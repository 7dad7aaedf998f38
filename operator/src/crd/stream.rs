//! Kinesis data streams of a pipeline.
//!
//! | AWS rule (CreateStream, IncreaseStreamRetentionPeriod, UpdateShardCount) | Where | Reference |
//! |---|---|---|
//! | A stream name is 1 to 128 characters of `[a-zA-Z0-9_.-]` | naming (derived names are at most 128) | CreateStream, StreamName |
//! | Shards only in provisioned mode, 1 to 500 (the default account quota of the largest regions) | CRD schema and rule | CreateStream, ShardCount |
//! | Retention 24 to 8,760 hours | CRD schema | IncreaseStreamRetentionPeriod |
//! | A KMS key ARN of the stream's partition, region and an account | CRD schema and `reconcile::validate::kms` | StartStreamEncryption, KeyId |
//!
//! Not enforced: UpdateShardCount's limits on one change (at most double or
//! half the shards, ten changes a day), which depend on the stream's
//! history; AWS's refusal stalls the pipeline (`AWSRejected`).

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::queue::KmsEncryption;

/// A Kinesis data stream.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [
    {"rule": "self.mode == 'OnDemand' ? !has(self.shards) : has(self.shards)", "message": "shards is set exactly when mode is Provisioned"}
]))]
pub struct StreamSpec {
    /// Logical name, unique within the pipeline (lowercase letters, digits and '-').
    #[schemars(
        length(min = 1, max = 40),
        regex(pattern = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
    )]
    pub name: String,

    /// Capacity mode: `OnDemand` scales by itself; `Provisioned` has `shards`.
    #[serde(default)]
    pub mode: StreamMode,

    /// Shards of a provisioned stream (1 to 500).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 500))]
    pub shards: Option<i32>,

    /// How long records are kept, in hours (24 to 8,760; default 24).
    #[serde(default = "default_retention_hours")]
    #[schemars(range(min = 24, max = 8760))]
    pub retention_hours: i32,

    /// Server-side encryption with this KMS key; without it, with the AWS
    /// managed key `alias/aws/kinesis`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub encryption: Option<KmsEncryption>,
}

fn default_retention_hours() -> i32 {
    24
}

/// Capacity mode of a stream.
#[derive(Deserialize, Serialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
pub enum StreamMode {
    /// Kinesis scales the stream.
    #[default]
    OnDemand,
    /// A fixed number of shards.
    Provisioned,
}

impl StreamMode {
    /// The value Kinesis's API uses.
    pub fn as_aws(self) -> &'static str {
        match self {
            StreamMode::OnDemand => "ON_DEMAND",
            StreamMode::Provisioned => "PROVISIONED",
        }
    }
}
