//! S3 buckets of a pipeline.
//!
//! | AWS rule (CreateBucket, PutBucketNotificationConfiguration) | Where | Reference |
//! |---|---|---|
//! | A bucket name is 3 to 63 characters of lowercase letters, digits, `-` and `.`, begins and ends with a letter or digit, is not an IP address, has no `xn--` prefix or `-s3alias` suffix | naming (derived names use `[a-z0-9-]`, at most 63) | "Bucket naming rules" |
//! | Bucket names are global: one another account owns is refused | naming (the installation's secret in the hash) and ownership tags | CreateBucket, BucketAlreadyExists |
//! | Notification filters: one prefix and one suffix rule each, at most 1,024 characters | CRD schema | PutBucketNotificationConfiguration |
//! | Notification configurations of one bucket do not overlap (events that meet, prefixes or suffixes that do not tell them apart) | `reconcile::validate::buckets` | PutBucketNotificationConfiguration |

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
