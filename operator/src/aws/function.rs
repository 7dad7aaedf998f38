//! Lambda functions: a built-in handler on `provided.al2023`, the team's
//! zip from S3, or the team's container image ([`CodePlan`]).
//!
//! Code changes are detected by comparing the code's SHA-256 (a zip's, or
//! an image's digest) with the `CodeSha256` Lambda reports, never by the
//! code's location. Lambda allows
//! one update at a time, so an update only starts when the function is
//! `Active` and its last update `Successful`; otherwise the reconcile waits
//! and comes back, and code and configuration are never updated in one go.

use std::{collections::BTreeMap, time::Duration};

use aws_sdk_lambda::types::{
    Architecture, Environment, EphemeralStorage, FunctionCode, LastUpdateStatus, PackageType,
    Runtime, State, TracingConfig, TracingMode as AwsTracingMode, VpcConfig,
};

use super::operator_policy::{Action, Document, Statement};
use super::{Aws, AwsResource, Drift, Service, tag_changes, tag_drift};
use crate::{
    Error, Result,
    crd::TracingMode,
    naming::OWNERSHIP_TAG_KEYS,
    plan::{CodePlan, EPHEMERAL_STORAGE_MIB, FunctionPlan, Kind},
};

/// Every function Sluice makes.
pub const FUNCTIONS: &[&str] = &["arn:aws:lambda:*:ACCOUNT_ID:function:sluice-*"];

/// What the operator's AWS policy allows for functions
/// ([`super::operator_policy`]). The execution role passed to Lambda is
/// allowed in [`super::role::POLICY`]; the code object Lambda reads, in
/// [`super::code::POLICY`].
pub const POLICY: &[Statement] = &[
    Statement::allow(
        "Functions",
        Document::Services,
        &[
            Action::calls(Service::Lambda, "GetFunction"),
            Action::calls(Service::Lambda, "CreateFunction"),
            Action::calls(Service::Lambda, "DeleteFunction"),
            Action::calls(Service::Lambda, "UpdateFunctionCode"),
            Action::calls(Service::Lambda, "UpdateFunctionConfiguration"),
            Action::calls(Service::Lambda, "TagResource"),
            Action::calls(Service::Lambda, "UntagResource"),
            // GetFunction returns the tags only to a caller allowed ListTags.
            Action::implied(
                Service::Lambda,
                "ListTags",
                &[(Service::Lambda, "GetFunction")],
            ),
            Action::calls(Service::Lambda, "PutFunctionConcurrency"),
            Action::calls(Service::Lambda, "DeleteFunctionConcurrency"),
        ],
        FUNCTIONS,
    ),
    // The account's concurrency limit and what is unreserved, read before
    // reserving concurrency: GetAccountSettings takes no resource.
    Statement::allow(
        "AccountSettings",
        Document::Services,
        &[Action::calls(Service::Lambda, "GetAccountSettings")],
        &["*"],
    ),
];

/// The repositories the platform lists for teams' images:
/// `"IMAGE_REPOSITORY"`, which whoever installs the policy replaces with
/// each repository of the SluicePolicies' `imageRepositories` (as
/// `<name>`, in the account and region that hold it).
pub const IMAGE_REPOSITORIES: &[&str] = &["arn:aws:ecr:*:*:repository/IMAGE_REPOSITORY"];

/// The calls that hand Lambda a function's code (it reads an image or a
/// zip with the caller's permissions).
const DEPLOYING_CODE: &[(Service, &str)] = &[
    (Service::Lambda, "CreateFunction"),
    (Service::Lambda, "UpdateFunctionCode"),
];

/// The calls that set a function's configuration (its VPC, its layers),
/// which Lambda checks with the caller's permissions.
const CONFIGURING: &[(Service, &str)] = &[
    (Service::Lambda, "CreateFunction"),
    (Service::Lambda, "UpdateFunctionConfiguration"),
];

/// What the operator's AWS policy allows for teams' images: Lambda reads
/// the image with the permissions of whoever creates or updates the
/// function.
pub const IMAGE_POLICY: &[Statement] = &[Statement::allow(
    "TeamImages",
    Document::Services,
    &[
        Action::implied(Service::Ecr, "BatchGetImage", DEPLOYING_CODE),
        Action::implied(Service::Ecr, "GetDownloadUrlForLayer", DEPLOYING_CODE),
    ],
    IMAGE_REPOSITORIES,
)];

/// What the operator's AWS policy allows for functions in a VPC and with
/// layers: Lambda checks, with the caller's permissions, that the subnets,
/// security groups and VPC exist (EC2's Describe actions take no
/// resource), and reads each layer version (`LAYER_ARN`, which whoever
/// installs the policy replaces with each layer the SluicePolicies list).
pub const NETWORK_AND_LAYERS_POLICY: &[Statement] = &[
    Statement::allow(
        "FunctionNetworks",
        Document::Services,
        &[
            Action::implied(Service::Ec2, "DescribeSecurityGroups", CONFIGURING),
            Action::implied(Service::Ec2, "DescribeSubnets", CONFIGURING),
            Action::implied(Service::Ec2, "DescribeVpcs", CONFIGURING),
        ],
        &["*"],
    ),
    Statement::allow(
        "TeamLayers",
        Document::Services,
        &[Action::implied(
            Service::Lambda,
            "GetLayerVersion",
            CONFIGURING,
        )],
        &["LAYER_ARN:*"],
    ),
];

/// A function as found.
#[derive(Clone, Debug, Default)]
pub struct ObservedFunction {
    /// Function ARN (unqualified).
    pub arn: String,
    /// `Pending`, `Active`, `Inactive`, `Failed`.
    pub state: Option<String>,
    /// `InProgress`, `Successful`, `Failed`.
    pub last_update_status: Option<String>,
    /// Base64 SHA-256 of the deployed zip; an image's digest.
    pub code_sha256: Option<String>,
    /// `Zip` or `Image`.
    pub package_type: Option<String>,
    /// The image a function of package type `Image` runs.
    pub image_uri: Option<String>,
    /// Ephemeral storage in MiB.
    pub ephemeral_storage_mib: Option<i32>,
    /// Layer version ARNs.
    pub layers: Vec<String>,
    /// Subnets and security groups (sorted), when in a VPC.
    pub vpc: Option<crate::plan::VpcPlan>,
    /// Execution role ARN.
    pub role: Option<String>,
    /// Runtime.
    pub runtime: Option<String>,
    /// Handler entry.
    pub handler: Option<String>,
    /// Memory in MiB.
    pub memory_mib: Option<i32>,
    /// Timeout in seconds.
    pub timeout_seconds: Option<i32>,
    /// Environment variables.
    pub environment: BTreeMap<String, String>,
    /// Tracing mode.
    pub tracing: Option<String>,
    /// Instruction set architectures.
    pub architectures: Vec<String>,
    /// Reserved concurrency.
    pub reserved_concurrency: Option<i32>,
    /// Tags.
    pub tags: BTreeMap<String, String>,
}

/// The Lambda function kind.
#[derive(Debug)]
pub struct Function;

/// Where Lambda takes the function's code from: the built-in artifact in
/// the code bucket (uploaded first if this process has not seen it there
/// yet), the team's zip (checked first, [`super::code::verify`]), or the
/// image.
async fn code(aws: &Aws, d: &FunctionPlan) -> Result<FunctionCode> {
    Ok(match &d.code {
        CodePlan::Builtin { artifact, at, .. } => {
            super::code::ensure_uploaded(aws, artifact, at).await?;
            FunctionCode::builder()
                .s3_bucket(&at.bucket)
                .s3_key(&at.key)
                .build()
        }
        CodePlan::Zip(z) => {
            super::code::verify(aws, z).await?;
            FunctionCode::builder()
                .s3_bucket(&z.bucket)
                .s3_key(&z.key)
                .set_s3_object_version(z.version_id.clone())
                .build()
        }
        CodePlan::Image { uri, .. } => FunctionCode::builder().image_uri(uri).build(),
    })
}

/// Lambda takes an image from ECR and layers of the function's own region
/// only: said before AWS says it, naming the field.
fn check_region(aws: &Aws, d: &FunctionPlan) -> Result<()> {
    if let CodePlan::Image { uri, .. } = &d.code {
        let region = uri
            .split(".dkr.ecr.")
            .nth(1)
            .and_then(|r| r.split('.').next());
        if region != Some(aws.region.as_str()) {
            return Err(Error::InvalidSpec(format!(
                "function {}: code.image.uri is in region {}, and Lambda runs images of the \
                 function's own region ({}) only: push the image to ECR there",
                d.logical,
                region.unwrap_or("?"),
                aws.region
            )));
        }
    }
    for (k, layer) in d.layers.iter().enumerate() {
        let region = layer.split(':').nth(3);
        if region != Some(aws.region.as_str()) {
            return Err(Error::InvalidSpec(format!(
                "function {}: layers[{k}] is in region {}, and Lambda adds layers of the \
                 function's own region ({}) only",
                d.logical,
                region.unwrap_or("?"),
                aws.region
            )));
        }
    }
    Ok(())
}

/// After a create or code update from S3: forgets an upload Lambda could
/// not read ([`super::code::check_readable`]).
async fn check_readable<T>(aws: &Aws, d: &FunctionPlan, result: &Result<T, super::AwsError>) {
    if let CodePlan::Builtin { at, .. } = &d.code {
        super::code::check_readable(aws, at, result).await;
    }
}

/// The VPC configuration to send: none to a function never in a VPC,
/// empty lists to take one out.
fn vpc_config(d: &FunctionPlan) -> VpcConfig {
    let (subnets, groups) = d
        .vpc
        .as_ref()
        .map(|v| (v.subnet_ids.clone(), v.security_group_ids.clone()))
        .unwrap_or_default();
    VpcConfig::builder()
        .set_subnet_ids(Some(subnets))
        .set_security_group_ids(Some(groups))
        .build()
}

fn ephemeral_storage(d: &FunctionPlan) -> EphemeralStorage {
    EphemeralStorage::builder()
        .size(d.ephemeral_storage_mib)
        .build()
        .expect("size is set")
}

fn description(d: &FunctionPlan) -> String {
    match &d.code {
        CodePlan::Builtin { handler, .. } => format!(
            "Sluice function {} running built-in handler {handler} (managed; do not edit)",
            d.logical
        ),
        other => format!(
            "Sluice function {} running {} (managed; do not edit)",
            d.logical,
            other.source()
        ),
    }
}

/// How many of an account's concurrent executions Lambda keeps
/// unreserved: PutFunctionConcurrency refuses a reservation that would
/// leave fewer.
pub const MIN_UNRESERVED_CONCURRENCY: i32 = 100;

/// Whether reserving `want` for function `logical` (which reserves
/// `current` now) leaves Lambda's minimum unreserved, given the account's
/// `limit` and what is `unreserved` now; else what would fit, naming the
/// field.
pub fn concurrency_fits(
    logical: &str,
    want: i32,
    current: i32,
    limit: i32,
    unreserved: i32,
    region: &str,
) -> std::result::Result<(), String> {
    let left = unreserved + current - want;
    if want <= current || left >= MIN_UNRESERVED_CONCURRENCY {
        return Ok(());
    }
    let most = (unreserved + current - MIN_UNRESERVED_CONCURRENCY).max(0);
    Err(format!(
        "spec.functions[name={logical}].reservedConcurrency: {want} would leave {left} of the \
         account's {limit} concurrent executions in {region} unreserved, and Lambda keeps at \
         least {MIN_UNRESERVED_CONCURRENCY} unreserved: at most {most} fits now (lower it, \
         release other functions' reservations, or raise the account's concurrency quota)"
    ))
}

/// Refuses, before Lambda does, a reservation the account cannot give:
/// reads the account's limit and what is unreserved (GetAccountSettings)
/// when `d` reserves more than the `current` reservation. `Stalled`, like
/// any invalid spec, and looked at again on the slow resync, by when
/// other functions may have released theirs.
async fn check_concurrency(aws: &Aws, d: &FunctionPlan, current: i32) -> Result<()> {
    let Some(want) = d.reserved_concurrency.filter(|w| *w > current) else {
        return Ok(());
    };
    let settings = aws
        .call(Service::Lambda, "GetAccountSettings", || {
            aws.lambda.get_account_settings().send()
        })
        .await?;
    let Some(limit) = settings.account_limit() else {
        return Ok(());
    };
    let (Some(unreserved), total) = (
        limit.unreserved_concurrent_executions(),
        limit.concurrent_executions(),
    ) else {
        return Ok(());
    };
    concurrency_fits(&d.logical, want, current, total, unreserved, &aws.region)
        .map_err(Error::InvalidSpec)
}

/// Sets the reserved concurrency a new function asks for (a new function
/// has none).
async fn set_concurrency(aws: &Aws, d: &FunctionPlan) -> Result<()> {
    if let Some(n) = d.reserved_concurrency {
        aws.call(Service::Lambda, "PutFunctionConcurrency", || {
            aws.lambda
                .put_function_concurrency()
                .function_name(&d.name)
                .reserved_concurrent_executions(n)
                .send()
        })
        .await?;
    }
    Ok(())
}

fn wait(what: String) -> Error {
    Error::Waiting {
        what,
        after: Duration::from_secs(2),
    }
}

/// Whether Lambda accepts an update of this function now.
fn ready_for_update(o: &ObservedFunction) -> Result<()> {
    match o.state.as_deref() {
        Some("Pending") => return Err(wait(format!("function {} is Pending", o.arn))),
        Some("Failed") | Some("Inactive") | Some("Active") | None => {}
        Some(_) => {}
    }
    if o.last_update_status.as_deref() == Some("InProgress") {
        return Err(wait(format!(
            "an update of function {} is in progress",
            o.arn
        )));
    }
    Ok(())
}

fn tracing_config(mode: TracingMode) -> TracingConfig {
    TracingConfig::builder()
        .mode(AwsTracingMode::from(mode.as_aws()))
        .build()
}

fn environment(d: &FunctionPlan) -> Environment {
    Environment::builder()
        .set_variables(Some(d.environment.clone().into_iter().collect()))
        .build()
}

/// What a failed CreateFunction means: a new role takes seconds (rarely a
/// minute) to become assumable by Lambda, and a concurrent create of the
/// same name is still in flight; both are waited for, not failed.
fn create_error(e: super::AwsError, d: &FunctionPlan) -> Error {
    if e.has_code("InvalidParameterValueException")
        && e.message
            .as_deref()
            .is_some_and(|m| m.contains("cannot be assumed"))
    {
        wait(format!(
            "IAM role {} is not yet assumable by Lambda",
            d.role_arn
        ))
    } else if e.has_code("ResourceConflictException") {
        wait(format!("function {} is being created", d.name))
    } else {
        e.into()
    }
}

impl AwsResource for Function {
    type Desired = FunctionPlan;
    type Observed = ObservedFunction;
    const KIND: Kind = Kind::Function;

    fn id(desired: &FunctionPlan) -> &str {
        &desired.name
    }

    fn logical(desired: &FunctionPlan) -> &str {
        &desired.logical
    }

    fn arn(aws: &Aws, desired: &FunctionPlan) -> Option<String> {
        Some(aws.arn("lambda", &format!("function:{}", desired.name)))
    }

    async fn observe(aws: &Aws, id: &str) -> Result<Option<ObservedFunction>> {
        // GetFunction has its own 100 req/s quota, unlike the shared 15 req/s
        // of the other management APIs, and returns tags in the same call.
        let out = match aws
            .call(Service::Lambda, "GetFunction", || {
                aws.lambda.get_function().function_name(id).send()
            })
            .await
        {
            Ok(out) => out,
            Err(e) if e.is_not_found() => return Ok(None),
            Err(e) => return Err(e.into()),
        };
        let Some(c) = out.configuration() else {
            return Ok(None);
        };
        Ok(Some(ObservedFunction {
            arn: c.function_arn().unwrap_or_default().to_owned(),
            state: c.state().map(|s: &State| s.as_str().to_owned()),
            last_update_status: c
                .last_update_status()
                .map(|s: &LastUpdateStatus| s.as_str().to_owned()),
            code_sha256: c.code_sha256().map(str::to_owned),
            package_type: c.package_type().map(|p| p.as_str().to_owned()),
            image_uri: out.code().and_then(|c| c.image_uri()).map(str::to_owned),
            ephemeral_storage_mib: c.ephemeral_storage().map(|e| e.size()),
            layers: c
                .layers()
                .iter()
                .filter_map(|l| l.arn().map(str::to_owned))
                .collect(),
            vpc: c.vpc_config().and_then(|v| {
                let mut subnet_ids = v.subnet_ids().to_vec();
                let mut security_group_ids = v.security_group_ids().to_vec();
                subnet_ids.sort();
                security_group_ids.sort();
                (!subnet_ids.is_empty() || !security_group_ids.is_empty()).then_some(
                    crate::plan::VpcPlan {
                        subnet_ids,
                        security_group_ids,
                    },
                )
            }),
            role: c.role().map(str::to_owned),
            runtime: c.runtime().map(|r| r.as_str().to_owned()),
            handler: c.handler().map(str::to_owned),
            memory_mib: c.memory_size(),
            timeout_seconds: c.timeout(),
            environment: c
                .environment()
                .and_then(|e| e.variables())
                .map(|v| v.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
                .unwrap_or_default(),
            tracing: c
                .tracing_config()
                .and_then(|t| t.mode())
                .map(|m| m.as_str().to_owned()),
            architectures: c
                .architectures()
                .iter()
                .map(|a| a.as_str().to_owned())
                .collect(),
            reserved_concurrency: out
                .concurrency()
                .and_then(|c| c.reserved_concurrent_executions()),
            tags: out
                .tags()
                .map(|t| t.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
                .unwrap_or_default(),
        }))
    }

    fn tags(observed: &ObservedFunction) -> Option<&BTreeMap<String, String>> {
        Some(&observed.tags)
    }

    fn diff(d: &FunctionPlan, o: &ObservedFunction) -> Vec<Drift> {
        let mut drift = Vec::new();
        // Lambda reports Zip when the function was made from a zip.
        let package_type = o.package_type.as_deref().unwrap_or("Zip");
        if package_type != d.code.package_type() {
            drift.push(Drift::new(
                "packageType",
                d.code.package_type(),
                package_type,
            ));
        }
        // A version pin not yet resolved has no digest to compare: code
        // is only deployed once it is ([`super::code::resolve`]).
        if let Some(code) = d.code.code_sha256()
            && o.code_sha256.as_deref() != Some(code.as_str())
        {
            drift.push(Drift::new("code", &code, &o.code_sha256));
        }
        if let CodePlan::Image { uri, .. } = &d.code
            && o.image_uri.as_deref() != Some(uri.as_str())
        {
            drift.push(Drift::new("code", uri, &o.image_uri));
        }
        drift.dedup_by(|a, b| a.field == b.field);
        // Lambda reports x86_64 when no architecture was given.
        let architecture = o.architectures.first().map_or("x86_64", String::as_str);
        if architecture != d.code.architecture() {
            drift.push(Drift::new(
                "architecture",
                d.code.architecture(),
                architecture,
            ));
        }
        if o.role.as_deref() != Some(d.role_arn.as_str()) {
            drift.push(Drift::new("role", &d.role_arn, &o.role));
        }
        if o.runtime.as_deref() != d.code.runtime() {
            drift.push(Drift::new("runtime", d.code.runtime(), &o.runtime));
        }
        // One `bootstrap` serves every built-in handler; `Handler` (which
        // Lambda passes as `_HANDLER`) names the one this function runs.
        if o.handler.as_deref() != d.code.handler() {
            drift.push(Drift::new("handler", d.code.handler(), &o.handler));
        }
        if o.layers != d.layers {
            drift.push(Drift::new("layers", &d.layers, &o.layers));
        }
        if o.vpc != d.vpc {
            drift.push(Drift::new("vpc", &d.vpc, &o.vpc));
        }
        let storage = o.ephemeral_storage_mib.unwrap_or(EPHEMERAL_STORAGE_MIB);
        if storage != d.ephemeral_storage_mib {
            drift.push(Drift::new(
                "ephemeralStorageMiB",
                d.ephemeral_storage_mib,
                storage,
            ));
        }
        if o.memory_mib != Some(d.memory_mib) {
            drift.push(Drift::new("memoryMiB", d.memory_mib, o.memory_mib));
        }
        if o.timeout_seconds != Some(d.timeout_seconds) {
            drift.push(Drift::new(
                "timeoutSeconds",
                d.timeout_seconds,
                o.timeout_seconds,
            ));
        }
        if o.environment != d.environment {
            drift.push(Drift::redacted("environment"));
        }
        // Lambda reports PassThrough when tracing was never configured.
        let tracing = o.tracing.as_deref().unwrap_or("PassThrough");
        if tracing != d.tracing.as_aws() {
            drift.push(Drift::new("tracing", d.tracing.as_aws(), tracing));
        }
        if o.reserved_concurrency != d.reserved_concurrency {
            drift.push(Drift::new(
                "reservedConcurrency",
                d.reserved_concurrency,
                o.reserved_concurrency,
            ));
        }
        drift.extend(tag_drift(&d.tags, &o.tags));
        drift
    }

    async fn create(aws: &Aws, d: &FunctionPlan) -> Result<Option<String>> {
        check_region(aws, d)?;
        // Before the function exists: a function Lambda would create but
        // not reserve for would run unbounded.
        check_concurrency(aws, d, 0).await?;
        let code = code(aws, d).await?;
        let result = aws
            .call(Service::Lambda, "CreateFunction", || {
                aws.lambda
                    .create_function()
                    .function_name(&d.name)
                    .package_type(PackageType::from(d.code.package_type()))
                    .set_runtime(d.code.runtime().map(Runtime::from))
                    .set_handler(d.code.handler().map(str::to_owned))
                    .role(&d.role_arn)
                    .code(code.clone())
                    .architectures(Architecture::from(d.code.architecture()))
                    .memory_size(d.memory_mib)
                    .timeout(d.timeout_seconds)
                    .ephemeral_storage(ephemeral_storage(d))
                    .set_layers((!d.layers.is_empty()).then(|| d.layers.clone()))
                    .set_vpc_config(d.vpc.is_some().then(|| vpc_config(d)))
                    .environment(environment(d))
                    .tracing_config(tracing_config(d.tracing))
                    .description(description(d))
                    .set_tags(Some(d.tags.clone().into_iter().collect()))
                    .send()
            })
            .await;
        check_readable(aws, d, &result).await;
        let out = result.map_err(|e| create_error(e, d))?;
        if let CodePlan::Zip(z) = &d.code {
            super::code::check_deployed(aws, z, out.code_sha256()).await?;
        }
        set_concurrency(aws, d).await?;
        Ok(None)
    }

    async fn update(
        aws: &Aws,
        d: &FunctionPlan,
        o: &ObservedFunction,
        drift: &[Drift],
    ) -> Result<()> {
        let fields: Vec<&str> = drift.iter().map(|d| d.field).collect();
        let needs_config = fields.iter().any(|f| {
            matches!(
                *f,
                "role"
                    | "runtime"
                    | "handler"
                    | "ephemeralStorageMiB"
                    | "layers"
                    | "vpc"
                    | "memoryMiB"
                    | "timeoutSeconds"
                    | "environment"
                    | "tracing"
            )
        });
        if fields.contains(&"tags") {
            let (set, remove) = tag_changes(&d.tags, &o.tags);
            if !set.is_empty() {
                aws.call(Service::Lambda, "TagResource", || {
                    aws.lambda
                        .tag_resource()
                        .resource(&o.arn)
                        .set_tags(Some(set.clone().into_iter().collect()))
                        .send()
                })
                .await?;
            }
            if !remove.is_empty() {
                aws.call(Service::Lambda, "UntagResource", || {
                    aws.lambda
                        .untag_resource()
                        .resource(&o.arn)
                        .set_tag_keys(Some(remove.clone()))
                        .send()
                })
                .await?;
            }
        }
        if fields.contains(&"reservedConcurrency") {
            if d.reserved_concurrency.is_some() {
                check_concurrency(aws, d, o.reserved_concurrency.unwrap_or(0)).await?;
                set_concurrency(aws, d).await?;
            } else {
                aws.call(Service::Lambda, "DeleteFunctionConcurrency", || {
                    aws.lambda
                        .delete_function_concurrency()
                        .function_name(&d.name)
                        .send()
                })
                .await?;
            }
        }
        if fields.contains(&"packageType") {
            return Err(Error::InvalidSpec(format!(
                "function {} runs a {} package, and Lambda cannot change a function between a zip \
                 and an image: rename the function (functions[].name) to replace it",
                d.logical,
                o.package_type.as_deref().unwrap_or("Zip")
            )));
        }
        let needs_code = fields.contains(&"code") || fields.contains(&"architecture");
        if !needs_code && !needs_config {
            return Ok(());
        }
        ready_for_update(o)?;
        check_region(aws, d)?;
        let conflict = |e: super::AwsError| -> Error {
            if e.has_code("ResourceConflictException") {
                wait(format!("an update of function {} is in progress", d.name))
            } else {
                e.into()
            }
        };
        if needs_code {
            let code = code(aws, d).await?;
            let result = aws
                .call(Service::Lambda, "UpdateFunctionCode", || {
                    aws.lambda
                        .update_function_code()
                        .function_name(&d.name)
                        .set_s3_bucket(code.s3_bucket().map(str::to_owned))
                        .set_s3_key(code.s3_key().map(str::to_owned))
                        .set_s3_object_version(code.s3_object_version().map(str::to_owned))
                        .set_image_uri(code.image_uri().map(str::to_owned))
                        .architectures(Architecture::from(d.code.architecture()))
                        .send()
                })
                .await;
            check_readable(aws, d, &result).await;
            let out = result.map_err(conflict)?;
            if let CodePlan::Zip(z) = &d.code {
                super::code::check_deployed(aws, z, out.code_sha256()).await?;
            }
            if needs_config {
                // The configuration follows once the code update finished.
                return Err(wait(format!(
                    "code update of function {} to finish",
                    d.name
                )));
            }
            return Ok(());
        }
        aws.call(Service::Lambda, "UpdateFunctionConfiguration", || {
            aws.lambda
                .update_function_configuration()
                .function_name(&d.name)
                .role(&d.role_arn)
                .set_runtime(d.code.runtime().map(Runtime::from))
                .set_handler(d.code.handler().map(str::to_owned))
                .memory_size(d.memory_mib)
                .timeout(d.timeout_seconds)
                .ephemeral_storage(ephemeral_storage(d))
                .set_layers(Some(d.layers.clone()))
                .vpc_config(vpc_config(d))
                .environment(environment(d))
                .tracing_config(tracing_config(d.tracing))
                .send()
        })
        .await
        .map_err(conflict)?;
        Ok(())
    }

    async fn delete(aws: &Aws, id: &str, _o: &ObservedFunction) -> Result<()> {
        match aws
            .call(Service::Lambda, "DeleteFunction", || {
                aws.lambda.delete_function().function_name(id).send()
            })
            .await
        {
            Ok(_) => Ok(()),
            Err(e) if e.is_not_found() => Ok(()),
            Err(e) if e.has_code("ResourceConflictException") => {
                Err(wait(format!("function {id} is being updated")))
            }
            Err(e) => Err(e.into()),
        }
    }

    async fn release(
        aws: &Aws,
        _id: &str,
        o: &ObservedFunction,
        marker: &BTreeMap<String, String>,
    ) -> Result<()> {
        aws.call(Service::Lambda, "TagResource", || {
            aws.lambda
                .tag_resource()
                .resource(&o.arn)
                .set_tags(Some(marker.clone().into_iter().collect()))
                .send()
        })
        .await?;
        aws.call(Service::Lambda, "UntagResource", || {
            aws.lambda
                .untag_resource()
                .resource(&o.arn)
                .set_tag_keys(Some(
                    OWNERSHIP_TAG_KEYS.iter().map(|k| (*k).to_owned()).collect(),
                ))
                .send()
        })
        .await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::artifacts::Artifact;

    #[test]
    fn a_reservation_must_leave_lambdas_minimum_unreserved() {
        // An account of 1,000 with 950 unreserved: 850 is the most.
        assert!(concurrency_fits("f", 850, 0, 1000, 950, "eu-west-1").is_ok());
        let e = concurrency_fits("f", 851, 0, 1000, 950, "eu-west-1").expect_err("too much");
        assert!(
            e.starts_with("spec.functions[name=f].reservedConcurrency: 851 would leave 99"),
            "{e}"
        );
        assert!(e.contains("at most 850 fits"), "{e}");
        assert!(
            e.contains("account's 1000 concurrent executions in eu-west-1"),
            "{e}"
        );
        // The function's own reservation counts as freed.
        assert!(concurrency_fits("f", 900, 50, 1000, 950, "r").is_ok());
        assert!(concurrency_fits("f", 901, 50, 1000, 950, "r").is_err());
        // Lowering a reservation always fits, even in a full account.
        assert!(concurrency_fits("f", 10, 20, 1000, 0, "r").is_ok());
        // A full account: nothing fits, and it says 0.
        let e = concurrency_fits("f", 5, 0, 1000, 100, "r").expect_err("full");
        assert!(e.contains("at most 0 fits"), "{e}");
    }

    fn desired() -> FunctionPlan {
        FunctionPlan {
            logical: "p".into(),
            name: "fn".into(),
            role_arn: "arn:aws:iam::1:role/r".into(),
            code: CodePlan::Builtin {
                handler: "s3-json-transform".into(),
                artifact: Artifact {
                    name: "s3-json-transform".into(),
                    zip: "z".into(),
                    sha256: "00".repeat(32),
                    size: 1,
                    dir: Default::default(),
                    architecture: "x86_64".into(),
                    required_env: Default::default(),
                },
                at: crate::plan::CodeLocation {
                    bucket: "b".into(),
                    key: "k".into(),
                },
            },
            ephemeral_storage_mib: EPHEMERAL_STORAGE_MIB,
            layers: Vec::new(),
            vpc: None,
            memory_mib: 256,
            timeout_seconds: 30,
            environment: BTreeMap::from([("A".into(), "secret-value".into())]),
            tracing: TracingMode::PassThrough,
            reserved_concurrency: None,
            tags: BTreeMap::from([("sluice.dev/pipeline-uid".into(), "u".into())]),
        }
    }

    fn observed(d: &FunctionPlan) -> ObservedFunction {
        ObservedFunction {
            arn: "arn".into(),
            state: Some("Active".into()),
            last_update_status: Some("Successful".into()),
            code_sha256: d.code.code_sha256(),
            package_type: Some("Zip".into()),
            image_uri: None,
            ephemeral_storage_mib: None,
            layers: d.layers.clone(),
            vpc: d.vpc.clone(),
            role: Some(d.role_arn.clone()),
            runtime: d.code.runtime().map(str::to_owned),
            handler: d.code.handler().map(str::to_owned),
            memory_mib: Some(d.memory_mib),
            timeout_seconds: Some(d.timeout_seconds),
            environment: d.environment.clone(),
            // Never configured: Lambda reports nothing or PassThrough.
            tracing: None,
            architectures: vec![d.code.architecture().to_owned()],
            reserved_concurrency: None,
            tags: d.tags.clone(),
        }
    }

    #[test]
    fn a_converged_function_has_no_drift() {
        let d = desired();
        assert_eq!(Function::diff(&d, &observed(&d)), vec![]);
    }

    #[test]
    fn memory_and_code_changes_are_seen() {
        let d = desired();
        let mut o = observed(&d);
        o.memory_mib = Some(128);
        o.code_sha256 = Some("other".into());
        let fields: Vec<_> = Function::diff(&d, &o)
            .into_iter()
            .map(|d| d.field)
            .collect();
        assert_eq!(fields, vec!["code", "memoryMiB"]);
    }

    #[test]
    fn an_architecture_change_is_seen() {
        let mut d = desired();
        let o = observed(&d);
        if let CodePlan::Builtin { artifact, .. } = &mut d.code {
            artifact.architecture = "arm64".into();
        }
        let fields: Vec<_> = Function::diff(&d, &o)
            .into_iter()
            .map(|d| d.field)
            .collect();
        assert_eq!(fields, vec!["architecture"]);
    }

    fn zip(version: Option<&str>, sha256: Option<String>) -> CodePlan {
        CodePlan::Zip(crate::plan::ZipCode {
            field: "spec.functions[0].code".into(),
            bucket: "team-code".into(),
            key: "app.zip".into(),
            version_id: version.map(str::to_owned),
            sha256,
            runtime: "python3.12".into(),
            handler: "handler.handler".into(),
            architecture: "arm64".into(),
        })
    }

    #[test]
    fn a_teams_zip_is_compared_by_its_digest_runtime_and_handler() {
        let mut d = desired();
        d.code = zip(Some("v1"), Some("ab".repeat(32)));
        let o = observed(&d);
        assert_eq!(
            o.code_sha256,
            Some(crate::artifacts::hex_to_base64(&"ab".repeat(32)))
        );
        assert_eq!(Function::diff(&d, &o), vec![]);
        // Changed out of band: another zip, another handler.
        let mut changed = o.clone();
        changed.code_sha256 = Some("other".into());
        changed.handler = Some("other.handler".into());
        let fields: Vec<_> = Function::diff(&d, &changed)
            .into_iter()
            .map(|d| d.field)
            .collect();
        assert_eq!(fields, vec!["code", "handler"]);
        // A version pin not yet resolved compares no code (nothing deploys
        // before it is resolved) but still everything else.
        d.code = zip(Some("v1"), None);
        assert_eq!(Function::diff(&d, &changed).len(), 1);
    }

    #[test]
    fn an_image_is_compared_by_its_uri_and_digest_and_never_turned_into_a_zip() {
        let mut d = desired();
        let digest = "c".repeat(64);
        d.code = CodePlan::Image {
            uri: format!("123456789012.dkr.ecr.us-east-1.amazonaws.com/app@sha256:{digest}"),
            architecture: "x86_64".into(),
        };
        let mut o = observed(&d);
        o.package_type = Some("Image".into());
        o.image_uri = Some(format!(
            "123456789012.dkr.ecr.us-east-1.amazonaws.com/app@sha256:{digest}"
        ));
        assert_eq!(o.code_sha256.as_deref(), Some(digest.as_str()));
        assert_eq!(Function::diff(&d, &o), vec![]);
        o.image_uri = Some("123456789012.dkr.ecr.us-east-1.amazonaws.com/app@sha256:dd".into());
        let fields: Vec<_> = Function::diff(&d, &o)
            .into_iter()
            .map(|d| d.field)
            .collect();
        assert_eq!(fields, vec!["code"]);
        o.package_type = Some("Zip".into());
        let fields: Vec<_> = Function::diff(&d, &o)
            .into_iter()
            .map(|d| d.field)
            .collect();
        assert_eq!(fields[0], "packageType");
    }

    #[test]
    fn layers_and_a_vpc_are_configuration_drift() {
        let mut d = desired();
        d.layers = vec!["arn:aws:lambda:us-east-1:1:layer:deps:3".into()];
        d.vpc = Some(crate::plan::VpcPlan {
            subnet_ids: vec!["subnet-01234567".into()],
            security_group_ids: vec!["sg-01234567".into()],
        });
        let mut o = observed(&d);
        assert_eq!(Function::diff(&d, &o), vec![]);
        o.layers.clear();
        o.vpc = None;
        let fields: Vec<_> = Function::diff(&d, &o)
            .into_iter()
            .map(|d| d.field)
            .collect();
        assert_eq!(fields, vec!["layers", "vpc"]);
    }

    #[test]
    fn environment_drift_never_shows_values() {
        let d = desired();
        let mut o = observed(&d);
        o.environment.insert("A".into(), "other-secret".into());
        let drift = Function::diff(&d, &o);
        assert_eq!(drift.len(), 1);
        let shown = drift[0].to_string();
        assert!(!shown.contains("secret"), "{shown}");
    }

    #[test]
    fn a_role_not_yet_assumable_is_waited_for() {
        let e = |code: &str, message: &str| super::super::AwsError {
            service: super::super::Service::Lambda,
            operation: "CreateFunction",
            code: Some(code.into()),
            message: Some(message.into()),
            status: Some(400),
            class: super::super::ErrorClass::Client,
        };
        let d = desired();
        let not_assumable = e(
            "InvalidParameterValueException",
            "The role defined for the function cannot be assumed by Lambda.",
        );
        assert!(matches!(
            create_error(not_assumable, &d),
            Error::Waiting { .. }
        ));
        let bad_memory = e(
            "InvalidParameterValueException",
            "MemorySize value failed to satisfy constraint",
        );
        assert!(matches!(create_error(bad_memory, &d), Error::Aws(_)));
    }

    #[test]
    fn updates_wait_for_pending_and_in_progress() {
        let d = desired();
        let mut o = observed(&d);
        o.state = Some("Pending".into());
        assert!(matches!(ready_for_update(&o), Err(Error::Waiting { .. })));
        o.state = Some("Active".into());
        o.last_update_status = Some("InProgress".into());
        assert!(matches!(ready_for_update(&o), Err(Error::Waiting { .. })));
        o.last_update_status = Some("Successful".into());
        assert!(ready_for_update(&o).is_ok());
    }
}
