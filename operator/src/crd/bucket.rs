//! S3 buckets of a pipeline.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

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
