//! S3 buckets: created private (all public access blocked), tagged, and on
//! deletion emptied only when the spec says `emptyOnDelete`; otherwise a
//! non-empty bucket blocks deletion instead of losing data. Every call but
//! CreateBucket names this account as the bucket's owner
//! (`ExpectedBucketOwner`): a bucket of the same name in another account
//! (bucket names are global) is refused by S3 itself, whatever its own
//! policy allows, and so never adopted or written.

use std::collections::BTreeMap;

use aws_sdk_s3::types::{
    BucketLocationConstraint, CreateBucketConfiguration, Delete, ObjectIdentifier,
    PublicAccessBlockConfiguration, Tag, Tagging,
};

use super::operator_policy::{Action, Document, Statement};
use super::{Aws, AwsResource, Drift, Service, tag_drift};
use crate::{
    Error, Result,
    naming::{OWNERSHIP_TAG_KEYS, PipelineId},
    plan::{BucketPlan, Kind},
};

/// Every bucket Sluice makes (a pipeline's, and the operator's code
/// bucket), and their objects.
pub const BUCKETS: &[&str] = &["arn:aws:s3:::sluice-*", "arn:aws:s3:::sluice-*/*"];

/// What the operator's AWS policy allows for buckets
/// ([`super::operator_policy`]).
pub const POLICY: &[Statement] = &[Statement::allow(
    "Buckets",
    Document::Core,
    &[
        Action::calls(Service::S3, "CreateBucket"),
        Action::calls(Service::S3, "DeleteBucket"),
        Action::calls_as(Service::S3, "HeadBucket", "ListBucket"),
        Action::calls_as(Service::S3, "ListObjectVersions", "ListBucketVersions"),
        Action::calls(Service::S3, "GetBucketTagging"),
        Action::calls(Service::S3, "PutBucketTagging"),
        // Tags given to CreateBucket.
        Action::implied(Service::S3, "TagResource", &[(Service::S3, "CreateBucket")]),
        Action::calls_as(
            Service::S3,
            "GetPublicAccessBlock",
            "GetBucketPublicAccessBlock",
        ),
        Action::calls_as(
            Service::S3,
            "PutPublicAccessBlock",
            "PutBucketPublicAccessBlock",
        ),
        Action::calls_as(Service::S3, "DeleteObjects", "DeleteObject"),
        // DeleteObjects naming versions (emptying a bucket deletes them all).
        Action::implied(
            Service::S3,
            "DeleteObjectVersion",
            &[(Service::S3, "DeleteObjects")],
        ),
    ],
    BUCKETS,
)];

/// A bucket as found.
#[derive(Clone, Debug)]
pub struct ObservedBucket {
    /// Tags.
    pub tags: BTreeMap<String, String>,
    /// Every public-access block is on.
    pub private: bool,
}

/// The S3 bucket kind.
#[derive(Debug)]
pub struct Bucket;

pub(crate) fn tag_set(tags: &BTreeMap<String, String>) -> Result<Vec<Tag>> {
    tags.iter()
        .map(|(k, v)| Tag::builder().key(k).value(v).build())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| Error::InvalidSpec(format!("bucket tag: {e}")))
}

pub(crate) async fn put_tags(
    aws: &Aws,
    bucket: &str,
    tags: &BTreeMap<String, String>,
) -> Result<()> {
    let tagging = Tagging::builder()
        .set_tag_set(Some(tag_set(tags)?))
        .build()
        .map_err(|e| Error::InvalidSpec(format!("bucket tagging: {e}")))?;
    aws.call(Service::S3, "PutBucketTagging", || {
        aws.s3
            .put_bucket_tagging()
            .bucket(bucket)
            .expected_bucket_owner(&aws.account)
            .tagging(tagging.clone())
            .send()
    })
    .await?;
    Ok(())
}

pub(crate) async fn block_public_access(aws: &Aws, bucket: &str) -> Result<()> {
    aws.call(Service::S3, "PutPublicAccessBlock", || {
        aws.s3
            .put_public_access_block()
            .bucket(bucket)
            .expected_bucket_owner(&aws.account)
            .public_access_block_configuration(
                PublicAccessBlockConfiguration::builder()
                    .block_public_acls(true)
                    .ignore_public_acls(true)
                    .block_public_policy(true)
                    .restrict_public_buckets(true)
                    .build(),
            )
            .send()
    })
    .await?;
    Ok(())
}

impl AwsResource for Bucket {
    type Desired = BucketPlan;
    type Observed = ObservedBucket;
    const KIND: Kind = Kind::Bucket;

    fn id(desired: &BucketPlan) -> &str {
        &desired.name
    }

    fn logical(desired: &BucketPlan) -> &str {
        &desired.logical
    }

    fn arn(aws: &Aws, desired: &BucketPlan) -> Option<String> {
        Some(format!("arn:{}:s3:::{}", aws.partition(), desired.name))
    }

    async fn observe(aws: &Aws, id: &str) -> Result<Option<ObservedBucket>> {
        match aws
            .call(Service::S3, "HeadBucket", || {
                aws.s3
                    .head_bucket()
                    .bucket(id)
                    .expected_bucket_owner(&aws.account)
                    .send()
            })
            .await
        {
            Ok(_) => {}
            Err(e) if e.status == Some(404) || e.is_not_found() => return Ok(None),
            Err(e) if e.status == Some(403) => {
                return Err(Error::Conflict(format!(
                    "S3 bucket {id} is owned by another AWS account, or refuses this one (S3 \
                     answered 403 to a request expecting this account as its owner); bucket \
                     names are global and Sluice never adopts, reads or writes a bucket of \
                     another account: rename the bucket in the spec, or delete the other \
                     bucket if it is yours"
                )));
            }
            Err(e) => return Err(e.into()),
        }
        let tags = match aws
            .call(Service::S3, "GetBucketTagging", || {
                aws.s3
                    .get_bucket_tagging()
                    .bucket(id)
                    .expected_bucket_owner(&aws.account)
                    .send()
            })
            .await
        {
            Ok(out) => out
                .tag_set()
                .iter()
                .map(|t| (t.key().to_owned(), t.value().to_owned()))
                .collect(),
            Err(e) if e.is_not_found() => BTreeMap::new(),
            Err(e) => return Err(e.into()),
        };
        let private = match aws
            .call(Service::S3, "GetPublicAccessBlock", || {
                aws.s3
                    .get_public_access_block()
                    .bucket(id)
                    .expected_bucket_owner(&aws.account)
                    .send()
            })
            .await
        {
            Ok(out) => out.public_access_block_configuration().is_some_and(|c| {
                c.block_public_acls() == Some(true)
                    && c.ignore_public_acls() == Some(true)
                    && c.block_public_policy() == Some(true)
                    && c.restrict_public_buckets() == Some(true)
            }),
            Err(e) if e.is_not_found() => false,
            Err(e) => return Err(e.into()),
        };
        Ok(Some(ObservedBucket { tags, private }))
    }

    fn tags(observed: &ObservedBucket) -> Option<&BTreeMap<String, String>> {
        Some(&observed.tags)
    }

    fn diff(desired: &BucketPlan, observed: &ObservedBucket) -> Vec<Drift> {
        let mut drift = Vec::new();
        if !observed.private {
            drift.push(Drift::new(
                "publicAccessBlock",
                "all blocked",
                "not all blocked",
            ));
        }
        drift.extend(tag_drift(&desired.tags, &observed.tags));
        drift
    }

    async fn create(aws: &Aws, d: &BucketPlan) -> Result<Option<String>> {
        // Tags in CreateBucket make the bucket ours from its first moment
        // in AWS; the PutBucketTagging below covers stores that ignore them
        // (moto, older S3-compatible ones) and costs one write per create.
        let mut configuration =
            CreateBucketConfiguration::builder().set_tags(Some(tag_set(&d.tags)?));
        if d.region != "us-east-1" {
            configuration = configuration
                .location_constraint(BucketLocationConstraint::from(d.region.as_str()));
        }
        let configuration = Some(configuration.build());
        match aws
            .call(Service::S3, "CreateBucket", || {
                aws.s3
                    .create_bucket()
                    .bucket(&d.name)
                    .set_create_bucket_configuration(configuration.clone())
                    .send()
            })
            .await
        {
            Ok(_) => {}
            // Created by an earlier reconcile that did not get to record it.
            Err(e) if e.has_code("BucketAlreadyOwnedByYou") => {}
            Err(e) if e.has_code("BucketAlreadyExists") => {
                return Err(Error::Conflict(format!(
                    "S3 bucket name {} is taken by another AWS account; choose another operator name prefix",
                    d.name
                )));
            }
            Err(e) => return Err(e.into()),
        }
        put_tags(aws, &d.name, &d.tags).await?;
        block_public_access(aws, &d.name).await?;
        Ok(None)
    }

    async fn update(aws: &Aws, d: &BucketPlan, o: &ObservedBucket, drift: &[Drift]) -> Result<()> {
        for item in drift {
            match item.field {
                "publicAccessBlock" => block_public_access(aws, &d.name).await?,
                "tags" => {
                    // PutBucketTagging replaces the whole set: keep foreign tags.
                    let mut all: BTreeMap<String, String> = o
                        .tags
                        .iter()
                        .filter(|(k, _)| !k.starts_with("sluice.dev/"))
                        .map(|(k, v)| (k.clone(), v.clone()))
                        .collect();
                    all.extend(d.tags.clone());
                    put_tags(aws, &d.name, &all).await?;
                }
                _ => {}
            }
        }
        Ok(())
    }

    async fn delete(aws: &Aws, id: &str, _o: &ObservedBucket) -> Result<()> {
        // The caller decides whether emptying is allowed (see `empty`).
        match aws
            .call(Service::S3, "DeleteBucket", || {
                aws.s3
                    .delete_bucket()
                    .bucket(id)
                    .expected_bucket_owner(&aws.account)
                    .send()
            })
            .await
        {
            Ok(_) => Ok(()),
            Err(e) if e.is_not_found() => Ok(()),
            Err(e) if e.has_code("BucketNotEmpty") => Err(Error::Waiting {
                what: format!(
                    "S3 bucket {id} is not empty; empty it, or set emptyOnDelete: true on the bucket, \
                     or use deletionPolicy: Retain"
                ),
                after: std::time::Duration::from_secs(60),
            }),
            Err(e) => Err(e.into()),
        }
    }

    async fn release(
        aws: &Aws,
        id: &str,
        o: &ObservedBucket,
        marker: &BTreeMap<String, String>,
    ) -> Result<()> {
        // One PutBucketTagging replaces the set: foreign tags and the marker.
        let mut remaining: BTreeMap<String, String> = o
            .tags
            .iter()
            .filter(|(k, _)| !OWNERSHIP_TAG_KEYS.contains(&k.as_str()))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        remaining.extend(marker.clone());
        put_tags(aws, id, &remaining).await
    }
}

/// Empties a bucket before deletion (`emptyOnDelete`), only if it is this
/// pipeline's to delete (the rule [`super::remove`] follows).
pub async fn empty_if_owned(
    aws: &Aws,
    pipeline: &PipelineId,
    id: &str,
    recorded: bool,
) -> Result<u64> {
    match Bucket::observe(aws, id).await {
        Ok(Some(o)) if super::removable(pipeline, &o.tags, recorded).is_ok() => {
            empty(aws, id).await
        }
        Ok(_) | Err(Error::Conflict(_)) => Ok(0),
        Err(e) => Err(e),
    }
}

/// Deletes every object and object version of a bucket, in pages of 1,000.
pub async fn empty(aws: &Aws, bucket: &str) -> Result<u64> {
    let mut deleted = 0u64;
    loop {
        let page = aws
            .call(Service::S3, "ListObjectVersions", || {
                aws.s3
                    .list_object_versions()
                    .bucket(bucket)
                    .expected_bucket_owner(&aws.account)
                    .max_keys(1000)
                    .send()
            })
            .await?;
        let mut ids = Vec::new();
        for v in page.versions() {
            if let Some(key) = v.key() {
                ids.push((key.to_owned(), v.version_id().map(str::to_owned)));
            }
        }
        for m in page.delete_markers() {
            if let Some(key) = m.key() {
                ids.push((key.to_owned(), m.version_id().map(str::to_owned)));
            }
        }
        if ids.is_empty() {
            return Ok(deleted);
        }
        let objects = ids
            .iter()
            .map(|(key, version)| {
                ObjectIdentifier::builder()
                    .key(key)
                    .set_version_id(version.clone())
                    .build()
            })
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| Error::InvalidSpec(format!("object id: {e}")))?;
        let delete = Delete::builder()
            .set_objects(Some(objects))
            .quiet(true)
            .build()
            .map_err(|e| Error::InvalidSpec(format!("delete request: {e}")))?;
        aws.call(Service::S3, "DeleteObjects", || {
            aws.s3
                .delete_objects()
                .bucket(bucket)
                .expected_bucket_owner(&aws.account)
                .delete(delete.clone())
                .send()
        })
        .await?;
        deleted += ids.len() as u64;
    }
}
