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
//! Bucket names, which are global across every AWS account, also hash the
//! installation's secret (`SLUICE_INSTALLATION_ID`): nobody outside can
//! compute a bucket name before the operator makes it and squat it in
//! another account. A bucket an earlier version named without it keeps that
//! name (the inventory records it).
//!
//! Ownership is read from tags: the owning pipeline's UID while it owns a
//! resource; after a `Retain` deletion only the release marker: the
//! pipeline (namespace/name) that released it ([`TAG_RELEASED_BY`]), the
//! UID of the namespace it was in ([`TAG_RELEASED_FROM_NAMESPACE`]) and a
//! fingerprint of the installation ([`TAG_INSTALLATION`]). Only a pipeline
//! of that name, in that namespace (not a later one of the same name) and
//! installation, may adopt it again, unless the platform allows adoption
//! from an earlier namespace and the pipeline names it by its UID.

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

/// Release-marker tag: the UID of the namespace the releasing pipeline was
/// in, so a later namespace of the same name does not adopt by name alone.
pub const TAG_RELEASED_FROM_NAMESPACE: &str = "sluice.dev/released-from-namespace-uid";
/// Release-marker tag: a fingerprint of the installation that released
/// the resource ([`PipelineId::installation_fingerprint`]).
pub const TAG_INSTALLATION: &str = "sluice.dev/installation";
/// The annotation by which a pipeline asks to adopt what a pipeline of its
/// name released in an earlier namespace of its name, naming that
/// namespace's UID (honoured only where the SluicePolicy allows
/// `adoptionFromEarlierNamespace`).
pub const ADOPT_FROM_ANNOTATION: &str = "sluice.dev/adopt-from-namespace-uid";

/// AWS's limit on a tag value, in characters (S3, Lambda, SQS, IAM,
/// EventBridge, Scheduler, Step Functions, Kinesis, DynamoDB, Logs alike;
/// keys 128, which Sluice's keys are far below).
pub const MAX_TAG_VALUE: usize = 256;

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
    /// UID of the pipeline's namespace: which incarnation of a namespace of
    /// that name it is in.
    pub namespace_uid: String,
    /// The installation's secret (`SLUICE_INSTALLATION_ID`): salts bucket
    /// names; only its fingerprint is ever written anywhere.
    pub installation: crate::config::Secret,
    /// The earlier namespace (its UID) the pipeline may adopt released
    /// resources from: its `sluice.dev/adopt-from-namespace-uid`
    /// annotation, where the namespace's SluicePolicy allows it.
    pub adopt_from: Option<String>,
    /// Bucket names the pipeline's inventory records: a bucket an earlier
    /// version named without the installation's secret keeps its name.
    pub kept_bucket_names: std::collections::BTreeSet<String>,
}

impl PipelineId {
    /// The identity of pipeline `dp` in an account and region, for naming,
    /// keeping the bucket names its inventory records
    /// ([`crate::plan::recorded_buckets`]): the namespace's UID and what
    /// it may adopt are the controller's to add
    /// ([`PipelineId::namespace_uid`], [`PipelineId::adopt_from`]).
    pub fn of(
        dp: &crate::crd::DataPipeline,
        config: &crate::config::OperatorConfig,
        account: &str,
        region: &str,
        kept_bucket_names: std::collections::BTreeSet<String>,
    ) -> Self {
        PipelineId {
            prefix: config.name_prefix.clone(),
            account: account.to_owned(),
            region: region.to_owned(),
            namespace: dp.metadata.namespace.clone().unwrap_or_default(),
            name: dp.metadata.name.clone().unwrap_or_default(),
            uid: dp.metadata.uid.clone().unwrap_or_default(),
            namespace_uid: String::new(),
            installation: config.installation_id.clone(),
            adopt_from: None,
            kept_bucket_names,
        }
    }

    /// The AWS name of a node of the given kind. A bucket's hashes the
    /// installation's secret too.
    pub fn aws_name(&self, kind: NameKind, logical: &str) -> String {
        if kind != NameKind::Bucket {
            return self.name_with(kind, logical, "");
        }
        let unsalted = self.unsalted_bucket_name(logical);
        if self.kept_bucket_names.contains(&unsalted) {
            return unsalted;
        }
        self.name_with(kind, logical, self.installation.expose())
    }

    /// The name an earlier version gave a bucket, without the installation's
    /// secret: kept by a bucket the pipeline's inventory records under it.
    pub fn unsalted_bucket_name(&self, logical: &str) -> String {
        self.name_with(NameKind::Bucket, logical, "")
    }

    /// A SHA-256 over the pipeline's place (prefix, account, region,
    /// namespace, name) and `more`, each part ended by a NUL so `a-b`+`c`
    /// and `a`+`b-c` differ.
    fn digest(&self, more: &[&str]) -> Sha256 {
        let mut hasher = Sha256::new();
        for part in [
            self.prefix.as_str(),
            self.account.as_str(),
            self.region.as_str(),
            self.namespace.as_str(),
            self.name.as_str(),
        ]
        .iter()
        .chain(more)
        {
            hasher.update(part.as_bytes());
            hasher.update([0]);
        }
        hasher
    }

    fn name_with(&self, kind: NameKind, logical: &str, salt: &str) -> String {
        let mut hasher = self.digest(&[kind.tag(), logical]);
        if !salt.is_empty() {
            hasher.update(b"installation");
            hasher.update(salt.as_bytes());
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
    /// of (prefix, account, region) and the installation's secret, so two
    /// installations or accounts never share one and nobody outside can
    /// make it first.
    pub fn code_bucket(&self) -> String {
        let mut hasher = Sha256::new();
        for part in [&self.prefix, &self.account, &self.region] {
            hasher.update(part.as_bytes());
            hasher.update([0]);
        }
        hasher.update(b"code");
        hasher.update(self.installation.expose().as_bytes());
        let hash = hex::encode(&hasher.finalize()[..HASH_HEX_LEN / 2]);
        format!("{}-code-{hash}", self.prefix)
    }

    /// The `source` of every event the pipeline's functions publish:
    /// `<prefix>.<namespace>.<pipeline>.<16 hex>` (the readable part cut to
    /// fit EventBridge's 256 characters; the hash as in [`Self::aws_name`]).
    /// Each function's grant to put events holds it as the
    /// `events:source` condition, and the rules of the pipeline's buses
    /// match only it, so no other pipeline can publish as this one.
    pub fn event_source(&self) -> String {
        let hasher = self.digest(&["event-source"]);
        let hash = hex::encode(&hasher.finalize()[..HASH_HEX_LEN / 2]);
        let readable = format!(
            "{}.{}.{}",
            sanitize(&self.prefix),
            sanitize(&self.namespace),
            sanitize(&self.name)
        );
        let room = 256 - hash.len() - 1;
        let readable = &readable[..readable.len().min(room)];
        format!("{readable}.{hash}")
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

    /// `namespace/name` as a tag value ([`TAG_PIPELINE`],
    /// [`TAG_RELEASED_BY`]): all of it when it fits AWS's
    /// [`MAX_TAG_VALUE`] characters; else its first characters, `~` and 16
    /// hex of its SHA-256. The longest legal names (63 + 1 + 253) would not
    /// fit; cut this way, each still has a value of its own, the same on
    /// every reconcile, which the ownership checks compare.
    pub fn pipeline_tag(&self) -> String {
        let full = self.pipeline_ref();
        if full.chars().count() <= MAX_TAG_VALUE {
            return full;
        }
        let hash = hex::encode(&Sha256::digest(full.as_bytes())[..HASH_HEX_LEN / 2]);
        let keep: String = full.chars().take(MAX_TAG_VALUE - 1 - hash.len()).collect();
        format!("{keep}~{hash}")
    }

    /// The ownership tags of a node.
    pub fn tags(&self, logical: &str) -> BTreeMap<String, String> {
        BTreeMap::from([
            (TAG_MANAGED_BY.to_owned(), MANAGER.to_owned()),
            (TAG_PIPELINE.to_owned(), self.pipeline_tag()),
            (TAG_PIPELINE_UID.to_owned(), self.uid.clone()),
            (TAG_LOGICAL_NAME.to_owned(), logical.to_owned()),
        ])
    }

    /// A fingerprint of the installation, the value of [`TAG_INSTALLATION`]:
    /// 16 hex characters of a SHA-256 of its secret, which they do not
    /// reveal.
    pub fn installation_fingerprint(&self) -> String {
        let mut hasher = Sha256::new();
        hasher.update(b"sluice installation fingerprint\0");
        hasher.update(self.installation.expose().as_bytes());
        hex::encode(&hasher.finalize()[..HASH_HEX_LEN / 2])
    }

    /// The tags a `Retain` deletion leaves: only the release marker.
    pub fn release_marker(&self) -> BTreeMap<String, String> {
        BTreeMap::from([
            (TAG_RELEASED_BY.to_owned(), self.pipeline_tag()),
            (
                TAG_RELEASED_FROM_NAMESPACE.to_owned(),
                self.namespace_uid.clone(),
            ),
            (TAG_INSTALLATION.to_owned(), self.installation_fingerprint()),
        ])
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
                Some(by) if *by == self.pipeline_tag() => self.released_by_our_name(tags),
                Some(by) => Ownership::ReleasedByOther { by: by.clone() },
                None => Ownership::Unmarked,
            },
        }
    }

    /// A resource released by a pipeline of this namespace and name: ours
    /// if it was released in this very namespace (its UID) by this
    /// installation, or from the earlier namespace this pipeline may adopt
    /// from. A marker of an earlier version (no namespace UID) is adopted
    /// only with the annotation, whatever UID it names.
    fn released_by_our_name(&self, tags: &BTreeMap<String, String>) -> Ownership {
        let by = self.pipeline_tag();
        if tags
            .get(TAG_INSTALLATION)
            .is_some_and(|i| *i != self.installation_fingerprint())
        {
            return Ownership::ReleasedByOther {
                by: format!("{by} of another Sluice installation"),
            };
        }
        match tags.get(TAG_RELEASED_FROM_NAMESPACE) {
            Some(uid) if *uid == self.namespace_uid && !uid.is_empty() => Ownership::ReleasedToUs,
            Some(uid) if self.adopt_from.as_ref() == Some(uid) => Ownership::ReleasedToUs,
            None if self.adopt_from.is_some() => Ownership::ReleasedToUs,
            found => Ownership::ReleasedFromEarlierNamespace {
                by,
                namespace_uid: found.cloned(),
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
    /// Released by a pipeline of this namespace and name, but in an
    /// earlier namespace of that name (another UID): adopted only where
    /// the platform allows it and the pipeline names that namespace.
    ReleasedFromEarlierNamespace {
        /// `namespace/name` from the release marker.
        by: String,
        /// That namespace's UID, if the marker has one.
        namespace_uid: Option<String>,
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
            namespace_uid: "ns-uid-1".into(),
            installation: crate::config::Secret("installation-secret-1".into()),
            adopt_from: None,
            kept_bucket_names: Default::default(),
        }
    }

    #[test]
    fn bucket_names_hash_the_installations_secret_and_other_names_do_not() {
        let a = id("team-a", "orders");
        let b = PipelineId {
            installation: crate::config::Secret("installation-secret-2".into()),
            ..a.clone()
        };
        assert_ne!(
            a.aws_name(NameKind::Bucket, "input"),
            b.aws_name(NameKind::Bucket, "input"),
            "a bucket name cannot be computed without the secret"
        );
        assert_eq!(
            a.aws_name(NameKind::Function, "f"),
            b.aws_name(NameKind::Function, "f"),
            "names that are not global across accounts are unchanged"
        );
        // The name an earlier version gave is the unsalted one, the same
        // for every installation.
        assert_eq!(
            a.unsalted_bucket_name("input"),
            b.unsalted_bucket_name("input")
        );
        assert_ne!(
            a.unsalted_bucket_name("input"),
            a.aws_name(NameKind::Bucket, "input")
        );
        // A bucket an earlier version made keeps its name (its inventory
        // records it); a name the pipeline could not have had is ignored.
        let kept = PipelineId {
            kept_bucket_names: [a.unsalted_bucket_name("input"), "victims-bucket".into()].into(),
            ..a.clone()
        };
        assert_eq!(
            kept.aws_name(NameKind::Bucket, "input"),
            a.unsalted_bucket_name("input")
        );
        assert_eq!(
            kept.aws_name(NameKind::Bucket, "output"),
            a.aws_name(NameKind::Bucket, "output")
        );
        // The fingerprint names the installation without giving its secret.
        let fingerprint = a.installation_fingerprint();
        assert_eq!(fingerprint.len(), 16);
        assert!(!fingerprint.contains("secret"));
        assert_ne!(fingerprint, b.installation_fingerprint());
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
    fn tags_fit_aws_for_the_longest_legal_names_and_cut_names_still_own() {
        let long = id(&"n".repeat(63), &"p".repeat(253));
        for (key, value) in long
            .tags(&"l".repeat(40))
            .into_iter()
            .chain(long.release_marker())
        {
            assert!(key.len() <= 128, "{key}");
            assert!(
                value.chars().count() <= MAX_TAG_VALUE,
                "{key}: {}",
                value.len()
            );
        }
        let tag = long.pipeline_tag();
        assert_eq!(tag.len(), MAX_TAG_VALUE);
        assert!(tag.starts_with(&format!("{}/", "n".repeat(63))), "{tag}");
        // Another name sharing the part kept gets another value.
        let sibling = id(&"n".repeat(63), &format!("{}q", "p".repeat(252)));
        assert_ne!(sibling.pipeline_tag(), tag);
        // A name that fits is written whole, as before.
        assert_eq!(id("ns", "p").pipeline_tag(), "ns/p");
        // Ownership and adoption compare the cut value.
        let released = long.release_marker();
        assert_eq!(long.ownership(&released), Ownership::ReleasedToUs);
        assert!(matches!(
            sibling.ownership(&released),
            Ownership::ReleasedByOther { .. }
        ));
        assert_eq!(long.ownership(&long.tags("x")), Ownership::Owned);
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
        assert_eq!(
            marker.get(TAG_RELEASED_FROM_NAMESPACE).map(String::as_str),
            Some("ns-uid-1")
        );
        // The same namespace and name, recreated with a new UID, adopts.
        let recreated = PipelineId {
            uid: "uid-new".into(),
            ..a.clone()
        };
        assert_eq!(recreated.ownership(&marker), Ownership::ReleasedToUs);
        // A namespace of the same name made again (another UID) does not...
        let later = PipelineId {
            uid: "uid-new".into(),
            namespace_uid: "ns-uid-2".into(),
            ..a.clone()
        };
        assert_eq!(
            later.ownership(&marker),
            Ownership::ReleasedFromEarlierNamespace {
                by: "a/orders".into(),
                namespace_uid: Some("ns-uid-1".into())
            }
        );
        // ...unless it names that namespace (the policy allowing it)...
        let adopting = PipelineId {
            adopt_from: Some("ns-uid-1".into()),
            ..later.clone()
        };
        assert_eq!(adopting.ownership(&marker), Ownership::ReleasedToUs);
        let wrong = PipelineId {
            adopt_from: Some("ns-uid-9".into()),
            ..later.clone()
        };
        assert!(matches!(
            wrong.ownership(&marker),
            Ownership::ReleasedFromEarlierNamespace { .. }
        ));
        // ...and a marker of an earlier version, which names no namespace,
        // is adopted only with the annotation.
        let legacy = BTreeMap::from([(TAG_RELEASED_BY.to_owned(), "a/orders".to_owned())]);
        assert!(matches!(
            recreated.ownership(&legacy),
            Ownership::ReleasedFromEarlierNamespace {
                namespace_uid: None,
                ..
            }
        ));
        assert_eq!(adopting.ownership(&legacy), Ownership::ReleasedToUs);
        // Another installation's release is not ours, whatever the name.
        let elsewhere = PipelineId {
            installation: crate::config::Secret("installation-secret-2".into()),
            ..recreated.clone()
        };
        assert!(matches!(
            elsewhere.ownership(&marker),
            Ownership::ReleasedByOther { .. }
        ));
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
    fn event_sources_are_per_pipeline_readable_and_within_limits() {
        let a = id("team-a", "orders").event_source();
        assert!(a.starts_with("sluice.team-a.orders."), "{a}");
        assert_ne!(a, id("team-b", "orders").event_source());
        assert_ne!(id("a-b", "c").event_source(), id("a", "b-c").event_source());
        assert_eq!(a, id("team-a", "orders").event_source(), "stable");
        let long = id(&"n".repeat(63), &"p".repeat(253)).event_source();
        assert!(long.len() <= 256, "{}", long.len());
        assert!(!long.starts_with("aws."), "AWS reserves aws.* sources");
    }

    #[test]
    fn env_var_defaults() {
        assert_eq!(default_env_var("BUCKET", "my-data"), "BUCKET_MY_DATA");
    }
}
