//! The desired AWS state of a pipeline: a pure function of the spec, the
//! pipeline's identity and the operator's configuration. No I/O here; every
//! rule of the graph (which edge implies which grant, permission, variable
//! and notification) is unit-tested below.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;

use crate::{
    artifacts::{Artifact, Catalog},
    crd::{DataPipelineSpec, TracingMode},
    iam::{self, BucketGrant, ExecutionGrants},
    naming::{self, NameKind, PipelineId},
};

/// Kinds of AWS resources, in the order they are applied. Deletion walks
/// this order backwards. Resources a grant can name (buckets) come before
/// the roles that hold the grants: a role is written only once every
/// resource its policy names has been found to be this pipeline's, so a
/// pipeline that meets another's resource under its name stalls before it
/// could be granted anything on it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Kind {
    /// S3 bucket.
    Bucket,
    /// IAM execution role with its inline policy.
    Role,
    /// Lambda function.
    Function,
    /// The Sluice statements of a function's resource policy.
    Permissions,
    /// A bucket's notification configuration.
    Notification,
}

impl Kind {
    /// Every kind, in apply order.
    pub const APPLY_ORDER: [Kind; 5] = [
        Kind::Bucket,
        Kind::Role,
        Kind::Function,
        Kind::Permissions,
        Kind::Notification,
    ];

    /// The kind's name in status and events.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Role => "IAM::Role",
            Kind::Bucket => "S3::Bucket",
            Kind::Function => "Lambda::Function",
            Kind::Permissions => "Lambda::Permission",
            Kind::Notification => "S3::BucketNotification",
        }
    }

    /// Parses [`Kind::as_str`].
    pub fn parse(s: &str) -> Option<Kind> {
        Kind::APPLY_ORDER.into_iter().find(|k| k.as_str() == s)
    }
}

/// An IAM execution role.
#[derive(Clone, Debug, PartialEq)]
pub struct RolePlan {
    /// Logical name (of the function the role serves).
    pub logical: String,
    /// IAM role name.
    pub name: String,
    /// Trust policy.
    pub trust_policy: Value,
    /// The inline policy `sluice`.
    pub policy: Value,
    /// Permissions boundary from operator config.
    pub permissions_boundary: Option<String>,
    /// Ownership tags.
    pub tags: BTreeMap<String, String>,
}

/// Name of the inline policy Sluice owns on each role.
pub const INLINE_POLICY: &str = "sluice";

/// An S3 bucket.
#[derive(Clone, Debug, PartialEq)]
pub struct BucketPlan {
    /// Logical name.
    pub logical: String,
    /// Bucket name.
    pub name: String,
    /// Region (needed for CreateBucket's location constraint).
    pub region: String,
    /// Delete objects when the bucket is deleted.
    pub empty_on_delete: bool,
    /// Ownership tags.
    pub tags: BTreeMap<String, String>,
}

/// A Lambda function.
#[derive(Clone, Debug, PartialEq)]
pub struct FunctionPlan {
    /// Logical name.
    pub logical: String,
    /// Function name.
    pub name: String,
    /// Execution role ARN.
    pub role_arn: String,
    /// Built-in handler: the function's `Handler` setting, which the one
    /// `bootstrap` of the artifact reads (as `_HANDLER`) to pick it.
    pub handler: String,
    /// Artifact to deploy.
    pub artifact: Artifact,
    /// Memory in MiB.
    pub memory_mib: i32,
    /// Timeout in seconds.
    pub timeout_seconds: i32,
    /// Environment variables.
    pub environment: BTreeMap<String, String>,
    /// X-Ray tracing mode.
    pub tracing: TracingMode,
    /// Ownership tags.
    pub tags: BTreeMap<String, String>,
}

/// Runtime of every built-in handler.
pub const RUNTIME: &str = "provided.al2023";

/// One statement of a function's resource policy that lets a service invoke it.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct InvokeStatement {
    /// Statement id (`sluice-...`).
    pub sid: String,
    /// Service principal, e.g. `s3.amazonaws.com`.
    pub principal: String,
    /// Only this source may invoke.
    pub source_arn: String,
    /// Only from this account (S3 ARNs carry no account).
    pub source_account: String,
}

/// Prefix of every statement id Sluice owns in a resource policy; other
/// statements are left alone.
pub const STATEMENT_PREFIX: &str = "sluice-";

/// The invoke permissions of one function.
#[derive(Clone, Debug, PartialEq)]
pub struct PermissionsPlan {
    /// Logical name of the function.
    pub logical: String,
    /// Function name.
    pub function: String,
    /// Statements, sorted by sid.
    pub statements: Vec<InvokeStatement>,
}

/// One Lambda destination of a bucket notification.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct LambdaNotification {
    /// Configuration id.
    pub id: String,
    /// Function ARN.
    pub function_arn: String,
    /// Event names, sorted.
    pub events: Vec<String>,
    /// Key prefix filter.
    pub prefix: Option<String>,
    /// Key suffix filter.
    pub suffix: Option<String>,
}

/// A bucket's notification configuration (Sluice owns the whole of it: the
/// bucket is the pipeline's).
#[derive(Clone, Debug, PartialEq)]
pub struct NotificationPlan {
    /// Logical name of the bucket.
    pub logical: String,
    /// Bucket name.
    pub bucket: String,
    /// Lambda destinations, sorted by id.
    pub lambdas: Vec<LambdaNotification>,
}

/// Everything a pipeline needs in AWS.
#[derive(Clone, Debug, PartialEq, Default)]
pub struct Plan {
    /// Roles, one per function.
    pub roles: Vec<RolePlan>,
    /// Buckets.
    pub buckets: Vec<BucketPlan>,
    /// Functions.
    pub functions: Vec<FunctionPlan>,
    /// Invoke permissions of functions that have triggers.
    pub permissions: Vec<PermissionsPlan>,
    /// Notifications of buckets that trigger functions.
    pub notifications: Vec<NotificationPlan>,
}

impl Plan {
    /// `(kind, AWS id)` of every planned resource.
    pub fn ids(&self) -> BTreeSet<(Kind, String)> {
        let mut ids = BTreeSet::new();
        ids.extend(self.roles.iter().map(|r| (Kind::Role, r.name.clone())));
        ids.extend(self.buckets.iter().map(|b| (Kind::Bucket, b.name.clone())));
        ids.extend(
            self.functions
                .iter()
                .map(|f| (Kind::Function, f.name.clone())),
        );
        ids.extend(
            self.permissions
                .iter()
                .map(|p| (Kind::Permissions, p.function.clone())),
        );
        ids.extend(
            self.notifications
                .iter()
                .map(|n| (Kind::Notification, n.bucket.clone())),
        );
        ids
    }
}

/// Inputs of planning besides the spec.
#[derive(Clone, Copy, Debug)]
pub struct PlanContext<'a> {
    /// The pipeline's identity (names and tags derive from it).
    pub id: &'a PipelineId,
    /// Built-in handler artifacts.
    pub catalog: &'a Catalog,
    /// Permissions boundary for every role.
    pub permissions_boundary: Option<&'a str>,
}

/// Plans the desired AWS state. The spec must have passed
/// [`crate::reconcile::validate`]; references it checked are looked up here
/// without further errors.
pub fn plan(spec: &DataPipelineSpec, cx: PlanContext<'_>) -> Plan {
    let id = cx.id;
    let partition = iam::partition(&id.region);
    let bucket_names: BTreeMap<&str, String> = spec
        .buckets
        .iter()
        .map(|b| (b.name.as_str(), id.aws_name(NameKind::Bucket, &b.name)))
        .collect();
    let bucket_arn = |aws_name: &str| format!("arn:{partition}:s3:::{aws_name}");

    let mut out = Plan {
        buckets: spec
            .buckets
            .iter()
            .map(|b| BucketPlan {
                logical: b.name.clone(),
                name: bucket_names[b.name.as_str()].clone(),
                region: id.region.clone(),
                empty_on_delete: b.empty_on_delete,
                tags: id.tags(&b.name),
            })
            .collect(),
        ..Plan::default()
    };

    let mut notifications: BTreeMap<&str, Vec<LambdaNotification>> = BTreeMap::new();

    for f in &spec.functions {
        let function_name = id.aws_name(NameKind::Function, &f.name);
        let role_name = id.aws_name(NameKind::Role, &f.name);
        let function_arn = format!(
            "arn:{partition}:lambda:{}:{}:function:{function_name}",
            id.region, id.account
        );

        let mut grants: BTreeMap<String, BucketGrant> = BTreeMap::new();
        let mut environment = f.environment.clone();
        environment.insert("SLUICE_PIPELINE".into(), id.pipeline_ref());
        environment.insert("SLUICE_FUNCTION".into(), f.name.clone());
        for u in &f.uses {
            if let Some(bucket) = &u.bucket {
                let Some(aws_name) = bucket_names.get(bucket.as_str()) else {
                    continue;
                };
                let grant = BucketGrant {
                    get_objects: u.access.reads(),
                    list: u.access.reads(),
                    put_objects: u.access.writes(),
                };
                let entry = grants.entry(aws_name.clone()).or_default();
                *entry = entry.union(grant);
                let var = u
                    .env
                    .clone()
                    .unwrap_or_else(|| naming::default_env_var("BUCKET", bucket));
                environment.insert(var, aws_name.clone());
            }
        }

        let mut statements: BTreeMap<String, InvokeStatement> = BTreeMap::new();
        for (index, t) in f.triggers.iter().enumerate() {
            if let Some(b) = &t.bucket {
                let Some(aws_name) = bucket_names.get(b.name.as_str()) else {
                    continue;
                };
                let entry = grants.entry(aws_name.clone()).or_default();
                *entry = entry.union(BucketGrant {
                    get_objects: true,
                    ..Default::default()
                });
                let sid = format!("{STATEMENT_PREFIX}s3-{}", b.name);
                statements.insert(
                    sid.clone(),
                    InvokeStatement {
                        sid,
                        principal: "s3.amazonaws.com".into(),
                        source_arn: bucket_arn(aws_name),
                        source_account: id.account.clone(),
                    },
                );
                let mut events: Vec<String> =
                    b.events.iter().map(|e| e.as_aws().to_owned()).collect();
                events.sort();
                events.dedup();
                notifications
                    .entry(b.name.as_str())
                    .or_default()
                    .push(LambdaNotification {
                        id: format!("{STATEMENT_PREFIX}{}-{index}", f.name),
                        function_arn: function_arn.clone(),
                        events,
                        prefix: b.prefix.clone().filter(|p| !p.is_empty()),
                        suffix: b.suffix.clone().filter(|s| !s.is_empty()),
                    });
            }
        }

        let policy = iam::execution_policy(&ExecutionGrants {
            partition: partition.to_owned(),
            region: id.region.clone(),
            account: id.account.clone(),
            function_name: function_name.clone(),
            buckets: grants,
            xray: f.tracing == TracingMode::Active,
        });
        out.roles.push(RolePlan {
            logical: f.name.clone(),
            name: role_name.clone(),
            trust_policy: iam::lambda_trust_policy(&id.account),
            policy,
            permissions_boundary: cx.permissions_boundary.map(str::to_owned),
            tags: id.tags(&f.name),
        });
        if let Some(artifact) = cx.catalog.get(&f.handler) {
            out.functions.push(FunctionPlan {
                logical: f.name.clone(),
                name: function_name.clone(),
                role_arn: format!("arn:{partition}:iam::{}:role/{role_name}", id.account),
                handler: f.handler.clone(),
                artifact: artifact.clone(),
                memory_mib: f.memory_mib,
                timeout_seconds: f.timeout_seconds,
                environment,
                tracing: f.tracing,
                tags: id.tags(&f.name),
            });
        }
        if !statements.is_empty() {
            out.permissions.push(PermissionsPlan {
                logical: f.name.clone(),
                function: function_name,
                statements: statements.into_values().collect(),
            });
        }
    }

    for (bucket, mut lambdas) in notifications {
        lambdas.sort();
        out.notifications.push(NotificationPlan {
            logical: bucket.to_owned(),
            bucket: bucket_names[bucket].clone(),
            lambdas,
        });
    }
    out
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::crd::DataPipelineSpec;

    pub(crate) fn catalog() -> Catalog {
        Catalog::from_artifacts(vec![Artifact {
            name: "s3-json-transform".into(),
            zip: "s3-json-transform.zip".into(),
            sha256: "00".repeat(32),
            size: 1,
            dir: "/nonexistent".into(),
            architecture: "x86_64".into(),
        }])
    }

    pub(crate) fn pid() -> PipelineId {
        PipelineId {
            prefix: "sluice".into(),
            account: "123456789012".into(),
            region: "us-east-1".into(),
            namespace: "data".into(),
            name: "orders".into(),
            uid: "uid-1".into(),
        }
    }

    pub(crate) fn pattern1() -> DataPipelineSpec {
        serde_yaml::from_str(
            r#"
buckets: [{name: input}, {name: output}]
functions:
  - name: processor
    handler: s3-json-transform
    memoryMiB: 256
    triggers: [{bucket: {name: input, events: ["s3:ObjectCreated:*"], suffix: .json}}]
    uses: [{bucket: output, access: write, env: OUTPUT_BUCKET}]
"#,
        )
        .expect("valid spec")
    }

    fn plan_of(spec: &DataPipelineSpec) -> Plan {
        let catalog = catalog();
        let id = pid();
        plan(
            spec,
            PlanContext {
                id: &id,
                catalog: &catalog,
                permissions_boundary: None,
            },
        )
    }

    #[test]
    fn pattern1_plans_every_resource_once() {
        let p = plan_of(&pattern1());
        assert_eq!(p.roles.len(), 1);
        assert_eq!(p.buckets.len(), 2);
        assert_eq!(p.functions.len(), 1);
        assert_eq!(p.permissions.len(), 1);
        assert_eq!(p.notifications.len(), 1);
        assert_eq!(p.ids().len(), 6);
    }

    #[test]
    fn trigger_implies_permission_notification_and_read_grant() {
        let p = plan_of(&pattern1());
        let input = &p
            .buckets
            .iter()
            .find(|b| b.logical == "input")
            .expect("input")
            .name;
        let f = &p.functions[0];
        let perm = &p.permissions[0];
        assert_eq!(perm.function, f.name);
        assert_eq!(perm.statements[0].principal, "s3.amazonaws.com");
        assert_eq!(
            perm.statements[0].source_arn,
            format!("arn:aws:s3:::{input}")
        );
        assert_eq!(perm.statements[0].source_account, "123456789012");
        let n = &p.notifications[0];
        assert_eq!(&n.bucket, input);
        assert!(
            n.lambdas[0]
                .function_arn
                .ends_with(&format!(":function:{}", f.name))
        );
        assert_eq!(n.lambdas[0].suffix.as_deref(), Some(".json"));
        let policy = p.roles[0].policy.to_string();
        assert!(policy.contains(&format!("arn:aws:s3:::{input}/*")));
    }

    #[test]
    fn uses_implies_grant_and_environment() {
        let p = plan_of(&pattern1());
        let output = &p
            .buckets
            .iter()
            .find(|b| b.logical == "output")
            .expect("output")
            .name;
        let f = &p.functions[0];
        assert_eq!(f.environment.get("OUTPUT_BUCKET"), Some(output));
        assert_eq!(
            f.environment.get("SLUICE_PIPELINE").map(String::as_str),
            Some("data/orders")
        );
        let policy = &p.roles[0].policy;
        let put = policy["Statement"]
            .as_array()
            .expect("statements")
            .iter()
            .find(|s| {
                s["Action"]
                    .as_array()
                    .expect("actions")
                    .iter()
                    .any(|a| a == "s3:PutObject")
            })
            .expect("put grant");
        assert_eq!(put["Resource"][0], format!("arn:aws:s3:::{output}/*"));
        // Write access does not imply read.
        assert!(
            !policy
                .to_string()
                .contains(&format!("arn:aws:s3:::{output}\""))
        );
    }

    #[test]
    fn function_config_follows_spec() {
        let p = plan_of(&pattern1());
        let f = &p.functions[0];
        assert_eq!(f.memory_mib, 256);
        assert_eq!(f.timeout_seconds, 30);
        assert!(f.role_arn.ends_with(&format!(":role/{}", p.roles[0].name)));
        assert_eq!(
            f.tags.get(naming::TAG_PIPELINE_UID).map(String::as_str),
            Some("uid-1")
        );
    }

    #[test]
    fn planning_is_deterministic() {
        assert_eq!(plan_of(&pattern1()), plan_of(&pattern1()));
    }

    #[test]
    fn a_function_without_triggers_gets_no_permissions() {
        let mut spec = pattern1();
        spec.functions[0].triggers.clear();
        let p = plan_of(&spec);
        assert!(p.permissions.is_empty());
        assert!(p.notifications.is_empty());
    }
}
