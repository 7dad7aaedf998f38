//! Deterministic AWS names and ownership tags.
//!
//! Every name is a pure function of the operator's name prefix, the AWS
//! account and region, the pipeline's namespace and name, the resource kind
//! and the node's logical name. Sixteen hex characters (64 bits) of a
//! SHA-256 of all of these end every name, so two pipelines never share a
//! name even when the readable part is cut to fit AWS's length limits or
//! when `a-b/c` and `a/b-c` would read the same. Finding a second
//! (namespace, pipeline) pair whose name matches another's takes about
//! 2^64 hash evaluations, not the minutes a 32-bit hash took.
//!
//! Ownership is read from tags: the owning pipeline's UID while it owns a
//! resource; after a `Retain` deletion only [`TAG_RELEASED_BY`], naming the
//! pipeline (namespace/name) that released it. Only that pipeline may adopt
//! it again.

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
/// Tag left on a resource released by a `Retain` deletion: the releasing
/// pipeline as `namespace/name` (not its UID, which a recreated pipeline
/// does not keep). Only a pipeline of that namespace and name adopts it.
pub const TAG_RELEASED_BY: &str = "sluice.dev/released-by";

/// Hex characters of the digest at the end of every name (64 bits).
pub const HASH_HEX_LEN: usize = 16;

/// Every tag key Sluice writes; releasing a resource removes exactly these.
pub const OWNERSHIP_TAG_KEYS: [&str; 4] = [
    TAG_MANAGED_BY,
    TAG_PIPELINE,
    TAG_PIPELINE_UID,
    TAG_LOGICAL_NAME,
];

/// AWS's limits on the names Sluice derives, one per kind of name.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NameKind {
    /// S3 bucket: 3–63 characters, lowercase letters, digits, '-'.
    Bucket,
    /// Lambda function: up to 64 characters.
    Function,
    /// IAM role: up to 64 characters.
    Role,
    /// SQS standard queue: up to 80 characters.
    Queue,
    /// SQS FIFO queue: up to 80 characters including the `.fifo` suffix.
    FifoQueue,
    /// EventBridge event bus: up to 256 characters.
    EventBus,
    /// EventBridge rule: up to 64 characters.
    Rule,
    /// Kinesis data stream: up to 128 characters.
    Stream,
    /// DynamoDB table: up to 255 characters.
    Table,
    /// Step Functions state machine: up to 80 characters.
    StateMachine,
    /// EventBridge Scheduler schedule: up to 64 characters.
    Schedule,
}

impl NameKind {
    /// Every kind of name.
    pub const ALL: [NameKind; 11] = [
        NameKind::Bucket,
        NameKind::Function,
        NameKind::Role,
        NameKind::Queue,
        NameKind::FifoQueue,
        NameKind::EventBus,
        NameKind::Rule,
        NameKind::Stream,
        NameKind::Table,
        NameKind::StateMachine,
        NameKind::Schedule,
    ];

    /// AWS's longest name of this kind, suffix included.
    pub fn max_len(self) -> usize {
        match self {
            NameKind::Bucket => 63,
            NameKind::Function | NameKind::Role | NameKind::Rule | NameKind::Schedule => 64,
            NameKind::Queue | NameKind::FifoQueue | NameKind::StateMachine => 80,
            NameKind::Stream => 128,
            NameKind::Table => 255,
            NameKind::EventBus => 256,
        }
    }

    /// What AWS requires a name of this kind to end with.
    pub fn suffix(self) -> &'static str {
        match self {
            NameKind::FifoQueue => ".fifo",
            _ => "",
        }
    }

    fn tag(self) -> &'static str {
        match self {
            NameKind::Bucket => "bucket",
            NameKind::Function => "function",
            NameKind::Role => "role",
            // A FIFO queue and a standard one of the same logical name are
            // different queues but never coexist in one pipeline.
            NameKind::Queue | NameKind::FifoQueue => "queue",
            NameKind::EventBus => "event-bus",
            NameKind::Rule => "rule",
            NameKind::Stream => "stream",
            NameKind::Table => "table",
            NameKind::StateMachine => "state-machine",
            NameKind::Schedule => "schedule",
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
    /// The identity of pipeline `dp` in an account and region.
    pub fn of(dp: &crate::crd::DataPipeline, prefix: &str, account: &str, region: &str) -> Self {
        PipelineId {
            prefix: prefix.to_owned(),
            account: account.to_owned(),
            region: region.to_owned(),
            namespace: dp.metadata.namespace.clone().unwrap_or_default(),
            name: dp.metadata.name.clone().unwrap_or_default(),
            uid: dp.metadata.uid.clone().unwrap_or_default(),
        }
    }

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
        let hash = hex::encode(&hasher.finalize()[..HASH_HEX_LEN / 2]);
        let readable = sanitize(&format!(
            "{}-{}-{}-{}",
            self.prefix, self.namespace, self.name, logical
        ));
        let room = kind.max_len() - hash.len() - 1 - kind.suffix().len();
        let readable = readable[..readable.len().min(room)].trim_end_matches('-');
        format!("{readable}-{hash}{}", kind.suffix())
    }

    /// The bucket holding the operator's code artifacts in this account and
    /// region, shared by every pipeline: `<prefix>-code-<16 hex>`, the hash
    /// of (prefix, account, region), so two installations (prefixes) or
    /// accounts never share one.
    pub fn code_bucket(&self) -> String {
        let mut hasher = Sha256::new();
        for part in [&self.prefix, &self.account, &self.region] {
            hasher.update(part.as_bytes());
            hasher.update([0]);
        }
        hasher.update(b"code");
        let hash = hex::encode(&hasher.finalize()[..HASH_HEX_LEN / 2]);
        format!("{}-code-{hash}", self.prefix)
    }

    /// The IAM path of every role this installation creates, `/<prefix>/`:
    /// the operator's AWS policy creates, changes and passes roles under
    /// this path only, each with the permissions boundary.
    pub fn role_path(&self) -> String {
        format!("/{}/", self.prefix)
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

    /// The tags a `Retain` deletion leaves: only the release marker.
    pub fn release_marker(&self) -> BTreeMap<String, String> {
        BTreeMap::from([(TAG_RELEASED_BY.to_owned(), self.pipeline_ref())])
    }

    /// Whose a found resource is, from its tags.
    pub fn ownership(&self, tags: &BTreeMap<String, String>) -> Ownership {
        match tags.get(TAG_PIPELINE_UID) {
            Some(uid) if *uid == self.uid => Ownership::Owned,
            Some(_) => Ownership::Foreign {
                owner: tags
                    .get(TAG_PIPELINE)
                    .cloned()
                    .unwrap_or_else(|| "an unknown pipeline".to_owned()),
            },
            None => match tags.get(TAG_RELEASED_BY) {
                Some(by) if *by == self.pipeline_ref() => Ownership::ReleasedToUs,
                Some(by) => Ownership::ReleasedByOther { by: by.clone() },
                None => Ownership::Unmarked,
            },
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
    /// Released (`Retain`) by a pipeline of this namespace and name: adopted.
    ReleasedToUs,
    /// Released by another pipeline: only that one may adopt it.
    ReleasedByOther {
        /// `namespace/name` from the release marker.
        by: String,
    },
    /// Neither ownership tags nor a release marker: Sluice did not create it
    /// for this pipeline (or lost track of it), so it is not adopted by
    /// name. A resource this pipeline's own inventory records is the one
    /// exception (its tags were lost, e.g. removed by hand).
    Unmarked,
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
        for kind in NameKind::ALL {
            let name = pid.aws_name(kind, &"y".repeat(40));
            assert!(
                name.len() <= kind.max_len(),
                "{kind:?}: {} chars",
                name.len()
            );
            assert!(name.ends_with(kind.suffix()), "{name}");
            assert!(!name.contains("--"), "{name}");
        }
    }

    /// The README promises 16 hex characters (64 bits) in every name.
    #[test]
    fn every_name_ends_in_sixteen_hex_characters() {
        let pid = id(&"n".repeat(63), &"p".repeat(253));
        for kind in NameKind::ALL {
            for logical in ["a", &"l".repeat(40)] {
                let name = pid.aws_name(kind, logical);
                let stem = name.strip_suffix(kind.suffix()).expect("suffix");
                let (_, hash) = stem.rsplit_once('-').expect("hash part");
                assert_eq!(hash.len(), HASH_HEX_LEN, "{kind:?}: {name}");
                assert!(hash.chars().all(|c| c.is_ascii_hexdigit()), "{name}");
            }
        }
    }

    /// Two teams whose namespace and pipeline names share the part that
    /// survives the cut still get different names: the hash separates them.
    #[test]
    fn long_pairs_sharing_the_readable_prefix_differ() {
        let shared = "team-x-".to_owned() + &"analytics".repeat(6);
        let a = id(&format!("{shared}-a"), &"orders".repeat(8));
        let b = id(&format!("{shared}-b"), &"orders".repeat(8));
        for kind in NameKind::ALL {
            let (name_a, name_b) = (a.aws_name(kind, "input"), b.aws_name(kind, "input"));
            let readable = |n: &str| n.rsplit_once('-').expect("hash").0.to_owned();
            if kind.max_len() <= 80 {
                assert_eq!(readable(&name_a), readable(&name_b), "{kind:?}: cut alike");
            }
            assert_ne!(name_a, name_b, "{kind:?}");
        }
    }

    #[test]
    fn fifo_queue_names_end_in_fifo() {
        let name = id("ns", "p").aws_name(NameKind::FifoQueue, "orders");
        assert!(name.ends_with(".fifo") && name.len() <= 80, "{name}");
        assert_ne!(name, id("ns", "p").aws_name(NameKind::Queue, "orders"));
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
        assert_eq!(pid.ownership(&BTreeMap::new()), Ownership::Unmarked);
    }

    #[test]
    fn only_the_releasing_pipeline_may_adopt() {
        let a = id("a", "orders");
        let marker = a.release_marker();
        assert_eq!(
            marker.get(TAG_RELEASED_BY).map(String::as_str),
            Some("a/orders")
        );
        // The same namespace and name, recreated with a new UID, adopts.
        let recreated = PipelineId {
            uid: "uid-new".into(),
            ..a.clone()
        };
        assert_eq!(recreated.ownership(&marker), Ownership::ReleasedToUs);
        // Anyone else does not, whatever the name they hash to.
        assert_eq!(
            id("b", "orders").ownership(&marker),
            Ownership::ReleasedByOther {
                by: "a/orders".into()
            }
        );
        // A marker never outranks an owner's UID tag.
        let other = PipelineId {
            uid: "uid-c".into(),
            ..id("c", "x")
        };
        let mut both = other.tags("l");
        both.extend(marker);
        assert!(matches!(a.ownership(&both), Ownership::Foreign { .. }));
    }

    #[test]
    fn env_var_defaults() {
        assert_eq!(default_env_var("BUCKET", "my-data"), "BUCKET_MY_DATA");
    }
}
