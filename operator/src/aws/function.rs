//! Lambda functions running a built-in handler on `provided.al2023`.
//!
//! Code changes are detected by comparing the artifact's SHA-256 with the
//! `CodeSha256` Lambda reports, never by the code's location. Lambda allows
//! one update at a time, so an update only starts when the function is
//! `Active` and its last update `Successful`; otherwise the reconcile waits
//! and comes back, and code and configuration are never updated in one go.

use std::{collections::BTreeMap, time::Duration};

use aws_sdk_lambda::types::{
    Architecture, Environment, FunctionCode, LastUpdateStatus, Runtime, State, TracingConfig,
    TracingMode as AwsTracingMode,
};

use super::operator_policy::{Action, Document, Statement};
use super::{Aws, AwsResource, Drift, Service, tag_changes, tag_drift};
use crate::{
    Error, Result,
    crd::TracingMode,
    naming::OWNERSHIP_TAG_KEYS,
    plan::{FunctionPlan, Kind, RUNTIME},
};

/// Every function Sluice makes.
pub const FUNCTIONS: &[&str] = &["arn:aws:lambda:*:ACCOUNT_ID:function:sluice-*"];

/// What the operator's AWS policy allows for functions
/// ([`super::operator_policy`]). The execution role passed to Lambda is
/// allowed in [`super::role::POLICY`]; the code object Lambda reads, in
/// [`super::code::POLICY`].
pub const POLICY: &[Statement] = &[Statement::allow(
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
)];

/// A function as found.
#[derive(Clone, Debug, Default)]
pub struct ObservedFunction {
    /// Function ARN (unqualified).
    pub arn: String,
    /// `Pending`, `Active`, `Inactive`, `Failed`.
    pub state: Option<String>,
    /// `InProgress`, `Successful`, `Failed`.
    pub last_update_status: Option<String>,
    /// Base64 SHA-256 of the deployed code.
    pub code_sha256: Option<String>,
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

/// The function's code in S3, uploaded first if this process has not seen
/// it there yet ([`super::code`]).
async fn code(aws: &Aws, d: &FunctionPlan) -> Result<FunctionCode> {
    super::code::ensure_uploaded(aws, &d.artifact, &d.code).await?;
    Ok(FunctionCode::builder()
        .s3_bucket(&d.code.bucket)
        .s3_key(&d.code.key)
        .build())
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
        let code = d.artifact.code_sha256();
        if o.code_sha256.as_deref() != Some(code.as_str()) {
            drift.push(Drift::new("code", &code, &o.code_sha256));
        }
        // Lambda reports x86_64 when no architecture was given.
        let architecture = o.architectures.first().map_or("x86_64", String::as_str);
        if architecture != d.artifact.architecture {
            drift.push(Drift::new(
                "architecture",
                &d.artifact.architecture,
                architecture,
            ));
        }
        if o.role.as_deref() != Some(d.role_arn.as_str()) {
            drift.push(Drift::new("role", &d.role_arn, &o.role));
        }
        if o.runtime.as_deref() != Some(RUNTIME) {
            drift.push(Drift::new("runtime", RUNTIME, &o.runtime));
        }
        // One `bootstrap` serves every built-in handler; `Handler` (which
        // Lambda passes as `_HANDLER`) names the one this function runs.
        if o.handler.as_deref() != Some(d.handler.as_str()) {
            drift.push(Drift::new("handler", &d.handler, &o.handler));
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
        let code = code(aws, d).await?;
        let result = aws
            .call(Service::Lambda, "CreateFunction", || {
                aws.lambda
                    .create_function()
                    .function_name(&d.name)
                    .runtime(Runtime::from(RUNTIME))
                    .handler(&d.handler)
                    .role(&d.role_arn)
                    .code(code.clone())
                    .architectures(Architecture::from(d.artifact.architecture.as_str()))
                    .memory_size(d.memory_mib)
                    .timeout(d.timeout_seconds)
                    .environment(environment(d))
                    .tracing_config(tracing_config(d.tracing))
                    .description(format!(
                        "Sluice function {} running built-in handler {} (managed; do not edit)",
                        d.logical, d.handler
                    ))
                    .set_tags(Some(d.tags.clone().into_iter().collect()))
                    .send()
            })
            .await;
        super::code::check_readable(aws, &d.code, &result).await;
        result.map_err(|e| create_error(e, d))?;
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
        let needs_code = fields.contains(&"code") || fields.contains(&"architecture");
        if !needs_code && !needs_config {
            return Ok(());
        }
        ready_for_update(o)?;
        let conflict = |e: super::AwsError| -> Error {
            if e.has_code("ResourceConflictException") {
                wait(format!("an update of function {} is in progress", d.name))
            } else {
                e.into()
            }
        };
        if fields.contains(&"code") {
            super::code::ensure_uploaded(aws, &d.artifact, &d.code).await?;
            let result = aws
                .call(Service::Lambda, "UpdateFunctionCode", || {
                    aws.lambda
                        .update_function_code()
                        .function_name(&d.name)
                        .s3_bucket(&d.code.bucket)
                        .s3_key(&d.code.key)
                        .send()
                })
                .await;
            super::code::check_readable(aws, &d.code, &result).await;
            result.map_err(conflict)?;
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
                .runtime(Runtime::from(RUNTIME))
                .handler(&d.handler)
                .memory_size(d.memory_mib)
                .timeout(d.timeout_seconds)
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

    fn desired() -> FunctionPlan {
        FunctionPlan {
            logical: "p".into(),
            name: "fn".into(),
            role_arn: "arn:aws:iam::1:role/r".into(),
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
            code: crate::plan::CodeLocation {
                bucket: "b".into(),
                key: "k".into(),
            },
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
            code_sha256: Some(d.artifact.code_sha256()),
            role: Some(d.role_arn.clone()),
            runtime: Some(RUNTIME.into()),
            handler: Some(d.handler.clone()),
            memory_mib: Some(d.memory_mib),
            timeout_seconds: Some(d.timeout_seconds),
            environment: d.environment.clone(),
            // Never configured: Lambda reports nothing or PassThrough.
            tracing: None,
            architectures: vec!["x86_64".into()],
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
        d.artifact.architecture = "arm64".into();
        let fields: Vec<_> = Function::diff(&d, &o)
            .into_iter()
            .map(|d| d.field)
            .collect();
        assert_eq!(fields, vec!["architecture"]);
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
