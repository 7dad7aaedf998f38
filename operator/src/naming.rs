//! Deterministic AWS names and ownership tags.
//!
//! Every name is a pure function of the operator's name prefix, the AWS
//! account and region, the pipeline's namespace and name, the resource kind
//! and the node's logical name. A short hash of all of these ends every name,
//! so two pipelines never collide even when the readable part is truncated to
//! fit AWS's length limits or when `a-b/c` and `a/b-c` would read the same.

use std::collections::BTreeMap;

use sha2::{Digest, Sha256};

/// Tag naming the operator that manages a resource.
pub const TAG_MANAGED_BY: &str = "sluice.dev/managed-by";
/// Tag naming the owning pipeline as `namespace/name`.
pub const TAG_PIPELINE: &str = "sluice.dev/pipeline";
/// Tag holding the owning pipeline's UID: the ownership check reads it.
pub const TAG_PIPELINE_UID: &str = "sluice.dev/pipeline-uid";
/// Tag holding the node's logical name in the spec.
pub const TAG_LOGICAL_NAME: &str = "sluice.dev/logical-name";
/// Value of [`TAG_MANAGED_BY`].
pub const MANAGER: &str = "sluice-operator";

/// Every tag key Sluice writes; releasing a resource removes exactly these.
pub const OWNERSHIP_TAG_KEYS: [&str; 4] = [
    TAG_MANAGED_BY,
    TAG_PIPELINE,
    TAG_PIPELINE_UID,
    TAG_LOGICAL_NAME,
];

/// AWS's limits on the names Sluice derives.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NameKind {
    /// S3 bucket: 3–63 characters, lowercase letters, digits, '-'.
    Bucket,
    /// Lambda function: up to 64 characters.
    Function,
    /// IAM role: up to 64 characters.
    Role,
}

impl NameKind {
    fn max_len(self) -> usize {
        match self {
            NameKind::Bucket => 63,
            NameKind::Function | NameKind::Role => 64,
        }
    }

    fn tag(self) -> &'static str {
        match self {
            NameKind::Bucket => "bucket",
            NameKind::Function => "function",
            NameKind::Role => "role",
        }
    }
}

/// Identity of one pipeline, the input of every name and tag.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PipelineId {
    /// Operator-wide prefix (operator config `namePrefix`).
    pub prefix: String,
    /// AWS account the resources live in.
    pub account: String,
    /// AWS region the resources live in.
    pub region: String,
    /// Kubernetes namespace of the pipeline.
    pub namespace: String,
    /// Kubernetes name of the pipeline.
    pub name: String,
    /// Kubernetes UID of the pipeline.
    pub uid: String,
}

impl PipelineId {
    /// The AWS name of a node of the given kind.
    pub fn aws_name(&self, kind: NameKind, logical: &str) -> String {
        let mut hasher = Sha256::new();
        for part in [
            self.prefix.as_str(),
            self.account.as_str(),
            self.region.as_str(),
            self.namespace.as_str(),
            self.name.as_str(),
            kind.tag(),
            logical,
        ] {
            hasher.update(part.as_bytes());
            hasher.update([0]);
        }
        let hash = hex::encode(&hasher.finalize()[..4]);
        let readable = sanitize(&format!(
            "{}-{}-{}-{}",
            self.prefix, self.namespace, self.name, logical
        ));
        let room = kind.max_len() - hash.len() - 1;
        let readable = readable[..readable.len().min(room)].trim_end_matches('-');
        format!("{readable}-{hash}")
    }

    /// `namespace/name`, the value of [`TAG_PIPELINE`].
    pub fn pipeline_ref(&self) -> String {
        format!("{}/{}", self.namespace, self.name)
    }

    /// The ownership tags of a node.
    pub fn tags(&self, logical: &str) -> BTreeMap<String, String> {
        BTreeMap::from([
            (TAG_MANAGED_BY.to_owned(), MANAGER.to_owned()),
            (TAG_PIPELINE.to_owned(), self.pipeline_ref()),
            (TAG_PIPELINE_UID.to_owned(), self.uid.clone()),
            (TAG_LOGICAL_NAME.to_owned(), logical.to_owned()),
        ])
    }

    /// Whether the tags found on a resource let this pipeline manage it.
    pub fn ownership(&self, tags: &BTreeMap<String, String>) -> Ownership {
        match tags.get(TAG_PIPELINE_UID) {
            Some(uid) if *uid == self.uid => Ownership::Owned,
            Some(_) => Ownership::Foreign {
                owner: tags
                    .get(TAG_PIPELINE)
                    .cloned()
                    .unwrap_or_else(|| "an unknown pipeline".to_owned()),
            },
            None => Ownership::Untagged,
        }
    }
}

/// Who a found AWS resource belongs to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Ownership {
    /// Tagged with this pipeline's UID.
    Owned,
    /// Tagged for another pipeline: never modified or deleted.
    Foreign {
        /// `namespace/name` from the resource's tags.
        owner: String,
    },
    /// No Sluice tags: a resource with our deterministic name that was
    /// released (`Retain`) or whose tagging did not finish; it is adopted.
    Untagged,
}

/// Lowercases and keeps only characters every derived name allows.
fn sanitize(raw: &str) -> String {
    let mut out = String::with_capacity(raw.len());
    for c in raw.chars() {
        let c = c.to_ascii_lowercase();
        if c.is_ascii_lowercase() || c.is_ascii_digit() {
            out.push(c);
        } else if !out.ends_with('-') {
            out.push('-');
        }
    }
    out.trim_matches('-').to_owned()
}

/// The default environment variable for a resource a function uses:
/// `BUCKET_MY_DATA` for bucket `my-data`.
pub fn default_env_var(kind: &str, logical: &str) -> String {
    format!(
        "{}_{}",
        kind,
        logical.to_ascii_uppercase().replace('-', "_")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(namespace: &str, name: &str) -> PipelineId {
        PipelineId {
            prefix: "sluice".into(),
            account: "123456789012".into(),
            region: "us-east-1".into(),
            namespace: namespace.into(),
            name: name.into(),
            uid: "uid-1".into(),
        }
    }

    #[test]
    fn names_are_deterministic_and_readable() {
        let a = id("team-a", "orders").aws_name(NameKind::Bucket, "input");
        let b = id("team-a", "orders").aws_name(NameKind::Bucket, "input");
        assert_eq!(a, b);
        assert!(a.starts_with("sluice-team-a-orders-input-"), "{a}");
    }

    #[test]
    fn names_that_read_alike_still_differ() {
        let a = id("a-b", "c").aws_name(NameKind::Function, "f");
        let b = id("a", "b-c").aws_name(NameKind::Function, "f");
        assert_ne!(a, b);
        let role = id("a", "b").aws_name(NameKind::Role, "f");
        let function = id("a", "b").aws_name(NameKind::Function, "f");
        assert_ne!(role, function);
    }

    #[test]
    fn long_names_fit_aws_limits() {
        let long = "x".repeat(63);
        let pid = id(&long, &long);
        for kind in [NameKind::Bucket, NameKind::Function, NameKind::Role] {
            let name = pid.aws_name(kind, &"y".repeat(40));
            assert!(
                name.len() <= kind.max_len(),
                "{kind:?}: {} chars",
                name.len()
            );
            assert!(!name.contains("--"), "{name}");
        }
    }

    #[test]
    fn bucket_names_are_valid_s3_names() {
        let name = id("Team.A", "my.pipeline").aws_name(NameKind::Bucket, "in");
        assert!(name.len() >= 3);
        assert!(
            name.chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        );
        assert!(!name.starts_with('-') && !name.ends_with('-'));
    }

    #[test]
    fn ownership_follows_the_uid_tag() {
        let pid = id("ns", "p");
        assert_eq!(pid.ownership(&pid.tags("x")), Ownership::Owned);
        let mut other = pid.tags("x");
        other.insert(TAG_PIPELINE_UID.into(), "uid-2".into());
        other.insert(TAG_PIPELINE.into(), "ns/q".into());
        assert_eq!(
            pid.ownership(&other),
            Ownership::Foreign {
                owner: "ns/q".into()
            }
        );
        assert_eq!(pid.ownership(&BTreeMap::new()), Ownership::Untagged);
    }

    #[test]
    fn env_var_defaults() {
        assert_eq!(default_env_var("BUCKET", "my-data"), "BUCKET_MY_DATA");
    }
}
