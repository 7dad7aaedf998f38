//! Code artifacts in S3: each artifact is uploaded once per account and
//! region, to the operator's code bucket under a key naming its SHA-256
//! ([`crate::plan::CodeLocation`]), and every function is created or
//! updated from there. Lambda copies the code at that moment, so the object
//! is only read then.
//!
//! Inlining the zip in `CreateFunction` instead sent (and, while a call
//! waited for its rate limit, held in memory) the whole artifact once per
//! function: 4.4 MB each, 1.8 MiB of operator memory per pipeline in a
//! fleet, and a 50 MB ceiling on the artifact.

use std::collections::BTreeMap;

use aws_sdk_s3::{
    primitives::ByteStream,
    types::{BucketLocationConstraint, CreateBucketConfiguration},
};

use super::operator_policy::{Action, Document, Statement};
use super::{Aws, AwsError, Service, bucket};
use crate::{
    Error, Result,
    artifacts::Artifact,
    naming::{MANAGER, TAG_MANAGED_BY},
    plan::CodeLocation,
};

/// What the operator's AWS policy allows for code artifacts
/// ([`super::operator_policy`]): the code bucket is one of the buckets
/// (`<prefix>-code-<16 hex>`), and only its `sluice/handlers/` keys are
/// read and written.
pub const POLICY: &[Statement] = &[
    Statement::allow(
        "Buckets",
        Document::Core,
        &[
            Action::calls(Service::S3, "CreateBucket"),
            Action::implied(Service::S3, "TagResource", &[(Service::S3, "CreateBucket")]),
        ],
        super::bucket::BUCKETS,
    ),
    Statement::allow(
        "CodeArtifacts",
        Document::Core,
        &[
            Action::calls_as(Service::S3, "HeadObject", "GetObject"),
            // Lambda reads the object with the caller's permissions.
            Action::implied(
                Service::S3,
                "GetObject",
                &[
                    (Service::Lambda, "CreateFunction"),
                    (Service::Lambda, "UpdateFunctionCode"),
                ],
            ),
            Action::calls(Service::S3, "PutObject"),
        ],
        &["arn:aws:s3:::sluice-code-*/sluice/handlers/*"],
    ),
];

/// Metadata key holding the artifact's SHA-256 on its object.
const SHA256_METADATA: &str = "sha256";

/// Makes sure `artifact` is at `at`, uploading it if it is not: a
/// `HeadObject` the first time this process deploys the artifact in the
/// region, then nothing. Concurrent reconciles wait for one upload.
pub async fn ensure_uploaded(aws: &Aws, artifact: &Artifact, at: &CodeLocation) -> Result<()> {
    let place = format!("{}/{}", at.bucket, at.key);
    let mut uploaded = aws.code_uploaded.lock().await;
    if uploaded.contains(&place) {
        return Ok(());
    }
    let head = aws
        .call(Service::S3, "HeadObject", || {
            aws.s3
                .head_object()
                .bucket(&at.bucket)
                .key(&at.key)
                .expected_bucket_owner(&aws.account)
                .send()
        })
        .await;
    match head {
        Ok(out)
            if out
                .metadata()
                .and_then(|m| m.get(SHA256_METADATA))
                .is_some_and(|s| *s == artifact.sha256) => {}
        Ok(_) => put(aws, artifact, at).await?,
        Err(e) if e.status == Some(404) || e.is_not_found() => match put(aws, artifact, at).await {
            // The first artifact in this account and region: make the
            // bucket, then put again.
            Err(Error::Aws(e)) if e.has_code("NoSuchBucket") => {
                create_bucket(aws, &at.bucket).await?;
                put(aws, artifact, at).await?;
            }
            other => other?,
        },
        Err(e) => return Err(e.into()),
    }
    uploaded.insert(place);
    Ok(())
}

/// After a `CreateFunction` or `UpdateFunctionCode` from `at`: when Lambda
/// could not read the object (deleted or replaced out of band since this
/// process uploaded it), forgets that it is there, so the next reconcile
/// uploads it again instead of failing the same way until a restart.
pub async fn check_readable<T>(aws: &Aws, at: &CodeLocation, result: &Result<T, AwsError>) {
    if let Err(e) = result
        && lambda_could_not_read(e)
    {
        aws.code_uploaded
            .lock()
            .await
            .remove(&format!("{}/{}", at.bucket, at.key));
    }
}

/// Lambda answers `InvalidParameterValueException` naming S3 (its message:
/// "Error occurred while GetObject. S3 Error Code: NoSuchKey...") when it
/// cannot copy the code from the bucket.
fn lambda_could_not_read(e: &AwsError) -> bool {
    e.has_code("InvalidParameterValueException")
        && e.message.as_deref().is_some_and(|m| m.contains("S3"))
}

async fn put(aws: &Aws, artifact: &Artifact, at: &CodeLocation) -> Result<()> {
    // Read (and checked against the manifest) for the upload only.
    let zip = artifact.read_zip().map_err(Error::Artifact)?;
    aws.call(Service::S3, "PutObject", || {
        aws.s3
            .put_object()
            .bucket(&at.bucket)
            .key(&at.key)
            .expected_bucket_owner(&aws.account)
            .metadata(SHA256_METADATA, &artifact.sha256)
            .content_type("application/zip")
            .body(ByteStream::from(zip.clone()))
            .send()
    })
    .await?;
    Ok(())
}

async fn create_bucket(aws: &Aws, name: &str) -> Result<()> {
    let tags = BTreeMap::from([(TAG_MANAGED_BY.to_owned(), MANAGER.to_owned())]);
    let mut configuration =
        CreateBucketConfiguration::builder().set_tags(Some(bucket::tag_set(&tags)?));
    if aws.region != "us-east-1" {
        configuration =
            configuration.location_constraint(BucketLocationConstraint::from(aws.region.as_str()));
    }
    let configuration = Some(configuration.build());
    match aws
        .call(Service::S3, "CreateBucket", || {
            aws.s3
                .create_bucket()
                .bucket(name)
                .set_create_bucket_configuration(configuration.clone())
                .send()
        })
        .await
    {
        Ok(_) => {}
        Err(e) if e.has_code("BucketAlreadyOwnedByYou") => {}
        Err(e) if e.has_code("BucketAlreadyExists") => {
            return Err(Error::Artifact(format!(
                "the code bucket {name} is taken by another AWS account; choose another \
                 operator name prefix (SLUICE_NAME_PREFIX)"
            )));
        }
        Err(e) => return Err(e.into()),
    }
    bucket::put_tags(aws, name, &tags).await?;
    bucket::block_public_access(aws, name).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::aws::ErrorClass;

    fn error(code: &str, message: &str) -> AwsError {
        AwsError {
            service: Service::Lambda,
            operation: "CreateFunction",
            code: Some(code.into()),
            message: Some(message.into()),
            status: Some(400),
            class: ErrorClass::Client,
        }
    }

    #[test]
    fn only_lambdas_failure_to_read_the_object_forgets_the_upload() {
        assert!(lambda_could_not_read(&error(
            "InvalidParameterValueException",
            "Error occurred while GetObject. S3 Error Code: NoSuchKey. S3 Error Message: The specified key does not exist."
        )));
        assert!(!lambda_could_not_read(&error(
            "InvalidParameterValueException",
            "The role defined for the function cannot be assumed by Lambda."
        )));
        assert!(!lambda_could_not_read(&error(
            "ResourceConflictException",
            "S3"
        )));
    }
}
