//! Code in S3: the built-in handlers' artifact, and the teams' own zips.
//!
//! Each built-in artifact is uploaded once per account and
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

use sha2::{Digest, Sha256};

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
    package,
    plan::{CodeLocation, CodePlan, Plan, ZipCode},
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

/// The buckets the platform lists for teams' code: `"CODE_BUCKET"`, which
/// whoever installs the policy replaces with each bucket of the
/// SluicePolicies' `codeBuckets` (and the harness with its test bucket).
/// The operator reads the zip to check it, and Lambda copies it with the
/// operator's permissions.
pub const TEAM_CODE: &[&str] = &["arn:aws:s3:::CODE_BUCKET/*"];

/// What the operator's AWS policy allows for teams' code
/// ([`super::operator_policy`]).
pub const TEAM_POLICY: &[Statement] = &[Statement::allow(
    "TeamCode",
    Document::Core,
    &[
        Action::calls_as(Service::S3, "HeadObject", "GetObject"),
        Action::calls(Service::S3, "GetObject"),
        // With a versionId, S3 checks GetObjectVersion instead (and Lambda
        // reads the version with the caller's permissions).
        Action::implied(
            Service::S3,
            "GetObjectVersion",
            &[
                (Service::S3, "GetObject"),
                (Service::Lambda, "CreateFunction"),
                (Service::Lambda, "UpdateFunctionCode"),
            ],
        ),
    ],
    TEAM_CODE,
)];

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

/// Resolves the digest of every zip pinned by object version: the
/// version's SHA-256, read once per process (a version never changes), so
/// drift is detected against the code the version holds.
pub async fn resolve(aws: &Aws, mut plan: Plan) -> Result<Plan> {
    for f in &mut plan.functions {
        if let CodePlan::Zip(z) = &mut f.code
            && z.sha256.is_none()
        {
            z.sha256 = Some(digest(aws, z).await?);
        }
    }
    Ok(plan)
}

/// The SHA-256 (hex) of a version-pinned zip, cached per process.
async fn digest(aws: &Aws, z: &ZipCode) -> Result<String> {
    Ok(version_digest(aws, z).await?.0)
}

/// The SHA-256 (hex) and size of a version-pinned zip, read once per
/// process (a version never changes).
async fn version_digest(aws: &Aws, z: &ZipCode) -> Result<(String, u64)> {
    let place = object(z);
    if let Some(known) = aws.code_digests.lock().await.get(&place) {
        return Ok(known.clone());
    }
    let found = read_digest(aws, z).await?;
    aws.code_digests.lock().await.insert(place, found.clone());
    Ok(found)
}

fn object(z: &ZipCode) -> String {
    format!(
        "s3://{}/{}?versionId={}",
        z.bucket,
        z.key,
        z.version_id.as_deref().unwrap_or("")
    )
}

/// What a missing or unreadable object means for the pipeline: the spec
/// names code that is not there (or not readable by the operator), so it
/// is `Stalled` on that field until the spec changes or the object
/// appears (the slow resync looks again).
fn unreadable(z: &ZipCode, e: AwsError) -> Error {
    if e.status == Some(404)
        || e.is_not_found()
        || e.has_code("NoSuchKey")
        || e.has_code("NoSuchVersion")
        || e.has_code("NoSuchBucket")
    {
        Error::InvalidSpec(format!(
            "{}.s3: no object s3://{}/{}{} (upload it first, or correct the pin)",
            z.field,
            z.bucket,
            z.key,
            z.version_id
                .as_deref()
                .map(|v| format!(" version {v}"))
                .unwrap_or_default()
        ))
    } else if e.status == Some(403) || e.has_code("AccessDenied") {
        Error::InvalidSpec(format!(
            "{}.s3: the operator may not read s3://{}/{}: the bucket must be one the operator's \
             IAM policy lists in its TeamCode statement (and the namespace's SluicePolicy in \
             codeBuckets)",
            z.field, z.bucket, z.key
        ))
    } else {
        e.into()
    }
}

/// The pinned object's body: all of it, or bytes `range` (HTTP `bytes=`
/// syntax).
async fn get(aws: &Aws, z: &ZipCode, range: Option<String>) -> Result<ByteStream> {
    let out = aws
        .call(Service::S3, "GetObject", || {
            aws.s3
                .get_object()
                .bucket(&z.bucket)
                .key(&z.key)
                .set_version_id(z.version_id.clone())
                .set_range(range.clone())
                .send()
        })
        .await
        .map_err(|e| unreadable(z, e))?;
    Ok(out.body)
}

/// Reads the whole object once, hashing it as it streams (never held).
async fn read_digest(aws: &Aws, z: &ZipCode) -> Result<(String, u64)> {
    let mut body = get(aws, z, None).await?;
    let mut hasher = Sha256::new();
    let mut size = 0u64;
    while let Some(chunk) = body
        .try_next()
        .await
        .map_err(|e| Error::InvalidSpec(format!("{}.s3: reading the object: {e}", z.field)))?
    {
        size += chunk.len() as u64;
        hasher.update(&chunk);
    }
    Ok((hex::encode(hasher.finalize()), size))
}

/// Bytes `range` (HTTP `bytes=` syntax) of the pinned object.
async fn read_range(aws: &Aws, z: &ZipCode, range: String) -> Result<Vec<u8>> {
    let bytes = get(aws, z, Some(range))
        .await?
        .collect()
        .await
        .map_err(|e| Error::InvalidSpec(format!("{}.s3: reading the object: {e}", z.field)))?;
    Ok(bytes.to_vec())
}

/// Before the zip is deployed: what Lambda would refuse, or run wrongly,
/// refused first, naming the field. The object must have the pinned
/// SHA-256; unzipped it must fit Lambda's 250 MB; the runtime's entry
/// point must be in it; a `bootstrap` must be built for the function's
/// architecture. Checked once per process per pinned object.
pub async fn verify(aws: &Aws, z: &ZipCode) -> Result<()> {
    let place = format!("{}#{}", object(z), z.sha256.as_deref().unwrap_or(""));
    if aws.code_verified.lock().await.contains(&place) {
        return Ok(());
    }
    // A version was hashed when it was resolved; only a key can change.
    let (sha256, size) = if z.version_id.is_some() {
        version_digest(aws, z).await?
    } else {
        read_digest(aws, z).await?
    };
    if let Some(pinned) = &z.sha256
        && *pinned != sha256
    {
        return Err(Error::InvalidSpec(format!(
            "{}.s3.sha256: the object s3://{}/{} has SHA-256 {sha256}, not the pinned {pinned}: \
             it was replaced, or the pin is wrong",
            z.field, z.bucket, z.key
        )));
    }
    let invalid = |what: String| Error::InvalidSpec(format!("{}.s3: {what}", z.field));
    let tail_start = size.saturating_sub(package::TAIL);
    let tail = read_range(aws, z, format!("bytes={tail_start}-")).await?;
    let (at, len) = package::central_directory(&tail, size).map_err(&invalid)?;
    let directory = if at >= tail_start {
        tail[(at - tail_start) as usize..(at - tail_start + len) as usize].to_vec()
    } else {
        read_range(aws, z, format!("bytes={at}-{}", at + len - 1)).await?
    };
    let entries = package::entries(&directory).map_err(&invalid)?;
    let problem =
        |p: package::Problem| Error::InvalidSpec(format!("{}.{}: {}", z.field, p.field, p.message));
    let bootstrap = package::check_contents(&entries, &z.runtime, &z.handler).map_err(problem)?;
    if let Some(bootstrap) = bootstrap {
        let header = read_range(
            aws,
            z,
            format!("bytes={}-{}", bootstrap.offset, bootstrap.offset + 29),
        )
        .await?;
        let start = package::data_offset(bootstrap, &header).map_err(&invalid)?;
        let data = read_range(
            aws,
            z,
            format!(
                "bytes={start}-{}",
                start + bootstrap.compressed.clamp(1, 4096) - 1
            ),
        )
        .await?;
        let head = package::first_bytes(bootstrap, &data, 64).map_err(&invalid)?;
        package::check_machine(&head, &z.architecture).map_err(problem)?;
    }
    aws.code_verified.lock().await.insert(place);
    Ok(())
}

/// After a create or code update of a team's zip, `deployed` the
/// `CodeSha256` Lambda answered: the object changed between the check and
/// Lambda's copy when it differs, so the check is forgotten and the
/// pipeline says so.
pub async fn check_deployed(aws: &Aws, z: &ZipCode, deployed: Option<&str>) -> Result<()> {
    let Some(want) = z.sha256.as_deref().map(crate::artifacts::hex_to_base64) else {
        return Ok(());
    };
    if deployed.is_some_and(|d| d != want) {
        aws.code_verified.lock().await.clear();
        return Err(Error::InvalidSpec(format!(
            "{}.s3: Lambda deployed code with SHA-256 {} from s3://{}/{}, not the pinned one: \
             the object was replaced while it was deployed",
            z.field,
            deployed.unwrap_or_default(),
            z.bucket,
            z.key
        )));
    }
    Ok(())
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
