//! SQS queues of a pipeline, with their dead-letter queues.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// An SQS queue.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [
    {"rule": "!has(self.contentBasedDeduplication) || !self.contentBasedDeduplication || self.fifo", "message": "contentBasedDeduplication needs fifo: true"}
]))]
pub struct QueueSpec {
    /// Logical name, unique within the pipeline (lowercase letters, digits and '-').
    #[schemars(
        length(min = 1, max = 40),
        regex(pattern = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
    )]
    pub name: String,

    /// A FIFO queue: exactly-once, ordered per message group.
    #[serde(default)]
    pub fifo: bool,

    /// FIFO only: deduplicate by the body's SHA-256 when the sender gives
    /// no deduplication id.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub content_based_deduplication: bool,

    /// How long, in seconds, a received message stays hidden (0 to 43,200).
    /// Default: 6 × the longest timeout of the functions it triggers (at
    /// least 30), as AWS advises; never below a consumer's timeout.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 43200))]
    pub visibility_timeout_seconds: Option<i32>,

    /// How long, in seconds, a message is kept (60 to 1,209,600; default
    /// 345,600, four days).
    #[serde(default = "default_retention")]
    #[schemars(range(min = 60, max = 1209600))]
    pub retention_seconds: i32,

    /// Messages received this many times without being deleted move to a
    /// dead-letter queue, which Sluice creates (named `<name>-dlq`, kept 14
    /// days) unless `queue` names another queue of the pipeline.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dead_letter: Option<DeadLetterSpec>,

    /// Server-side encryption: SQS-managed keys unless a KMS key is named.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub encryption: Option<KmsEncryption>,
}

fn default_retention() -> i32 {
    345_600
}

/// The dead-letter queue of a queue.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct DeadLetterSpec {
    /// Receives before a message moves to the dead-letter queue (1 to 1,000).
    #[schemars(range(min = 1, max = 1000))]
    pub max_receive_count: i32,

    /// Another queue of the pipeline to use as the dead-letter queue (of the
    /// same type, FIFO or standard) instead of one Sluice creates.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 40))]
    pub queue: Option<String>,
}

/// Encryption with a customer-managed KMS key.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct KmsEncryption {
    /// ARN of the KMS key (`arn:aws:kms:<region>:<account>:key/<id>`).
    /// Functions that read or write the resource are granted `kms:Decrypt`
    /// or `kms:GenerateDataKey` on exactly this key.
    #[schemars(
        length(min = 20, max = 2048),
        regex(pattern = r"^arn:aws[a-z-]*:kms:[a-z0-9-]+:[0-9]{12}:key/[A-Za-z0-9-]+$")
    )]
    pub kms_key_arn: String,
}
