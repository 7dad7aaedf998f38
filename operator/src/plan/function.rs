//! Functions and everything their edges imply: the execution role and its
//! least-privilege policy, environment variables, invoke permissions for
//! S3 and EventBridge, event source mappings for queues and streams, and
//! the asynchronous invocation settings.

use std::collections::BTreeMap;

use serde_json::Value;

use super::{Graph, PlanContext};
use crate::{
    artifacts::Artifact,
    crd::{Access, DataPipelineSpec, FunctionSpec, StartingPosition, TracingMode},
    iam::{self, ExecutionGrants, Grants, actions},
    naming,
};

/// Name of the inline policy Sluice owns on each role.
pub const INLINE_POLICY: &str = "sluice";
/// Runtime of every built-in handler.
pub const RUNTIME: &str = "provided.al2023";
/// Prefix of every statement id Sluice owns in a resource policy; other
/// statements are left alone.
pub const STATEMENT_PREFIX: &str = "sluice-";

/// An IAM role with the inline policy `sluice`.
#[derive(Clone, Debug, PartialEq)]
pub struct RolePlan {
    /// Logical name (of the node the role serves).
    pub logical: String,
    /// IAM role name.
    pub name: String,
    /// IAM path (`/<prefix>/`, [`crate::naming::PipelineId::role_path`]).
    pub path: String,
    /// Trust policy.
    pub trust_policy: Value,
    /// The inline policy `sluice`.
    pub policy: Value,
    /// Permissions boundary from operator config.
    pub permissions_boundary: Option<String>,
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
    /// What it runs.
    pub code: CodePlan,
    /// Ephemeral storage (`/tmp`) in MiB.
    pub ephemeral_storage_mib: i32,
    /// Layer version ARNs, in order.
    pub layers: Vec<String>,
    /// Subnets and security groups, when in a VPC.
    pub vpc: Option<VpcPlan>,
    /// Memory in MiB.
    pub memory_mib: i32,
    /// Timeout in seconds.
    pub timeout_seconds: i32,
    /// Reserved concurrency.
    pub reserved_concurrency: Option<i32>,
    /// Environment variables.
    pub environment: BTreeMap<String, String>,
    /// X-Ray tracing mode.
    pub tracing: TracingMode,
    /// Ownership tags.
    pub tags: BTreeMap<String, String>,
}

/// A function's subnets and security groups, each sorted (Lambda reports
/// them in no particular order).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VpcPlan {
    /// Subnet ids.
    pub subnet_ids: Vec<String>,
    /// Security group ids.
    pub security_group_ids: Vec<String>,
}

/// Lambda's default (and smallest) ephemeral storage, MiB.
pub const EPHEMERAL_STORAGE_MIB: i32 = 512;

/// What a function runs.
#[derive(Clone, Debug, PartialEq)]
pub enum CodePlan {
    /// A built-in handler: the function's `Handler` setting, which the one
    /// `bootstrap` of the operator's artifact reads (as `_HANDLER`) to pick
    /// it.
    Builtin {
        /// Handler name.
        handler: String,
        /// The artifact.
        artifact: Artifact,
        /// Where the artifact is uploaded once for every function that
        /// runs it (content-addressed), and where Lambda copies it from.
        at: CodeLocation,
    },
    /// The team's zip in S3.
    Zip(ZipCode),
    /// The team's container image.
    Image {
        /// Image URI, pinned by digest.
        uri: String,
        /// `x86_64` or `arm64`.
        architecture: String,
    },
}

/// A team's zip, pinned.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ZipCode {
    /// Where the spec declares it (`spec.functions[N].code`), for messages.
    pub field: String,
    /// Bucket.
    pub bucket: String,
    /// Key.
    pub key: String,
    /// Object version, when pinned by version.
    pub version_id: Option<String>,
    /// The zip's SHA-256 (hex): the pin, or, for a version pin, what the
    /// version was found to hold ([`crate::aws::code::resolve`]); `None`
    /// until then.
    pub sha256: Option<String>,
    /// Runtime.
    pub runtime: String,
    /// Entry point.
    pub handler: String,
    /// `x86_64` or `arm64`.
    pub architecture: String,
}

impl CodePlan {
    /// The runtime (an image brings its own).
    pub fn runtime(&self) -> Option<&str> {
        match self {
            CodePlan::Builtin { .. } => Some(RUNTIME),
            CodePlan::Zip(z) => Some(&z.runtime),
            CodePlan::Image { .. } => None,
        }
    }

    /// The `Handler` setting (an image's entry point is its own).
    pub fn handler(&self) -> Option<&str> {
        match self {
            CodePlan::Builtin { handler, .. } => Some(handler),
            CodePlan::Zip(z) => Some(&z.handler),
            CodePlan::Image { .. } => None,
        }
    }

    /// The built-in handler, if it runs one.
    pub fn builtin(&self) -> Option<&str> {
        match self {
            CodePlan::Builtin { handler, .. } => Some(handler),
            _ => None,
        }
    }

    /// The instruction set.
    pub fn architecture(&self) -> &str {
        match self {
            CodePlan::Builtin { artifact, .. } => &artifact.architecture,
            CodePlan::Zip(z) => &z.architecture,
            CodePlan::Image { architecture, .. } => architecture,
        }
    }

    /// Lambda's `PackageType`.
    pub fn package_type(&self) -> &'static str {
        match self {
            CodePlan::Image { .. } => "Image",
            _ => "Zip",
        }
    }

    /// The `CodeSha256` Lambda reports for this code: the base64 SHA-256 of
    /// a zip, the hex digest of an image; `None` for a version pin not
    /// resolved yet.
    pub fn code_sha256(&self) -> Option<String> {
        match self {
            CodePlan::Builtin { artifact, .. } => Some(artifact.code_sha256()),
            CodePlan::Zip(z) => z.sha256.as_deref().map(crate::artifacts::hex_to_base64),
            CodePlan::Image { uri, .. } => uri.split("@sha256:").nth(1).map(str::to_owned),
        }
    }

    /// Where the code comes from, for status and messages: the built-in
    /// handler's name, `s3://bucket/key` (with `?versionId=`) or the image.
    pub fn source(&self) -> String {
        match self {
            CodePlan::Builtin { handler, .. } => format!("builtin:{handler}"),
            CodePlan::Zip(z) => match &z.version_id {
                Some(v) => format!("s3://{}/{}?versionId={v}", z.bucket, z.key),
                None => format!("s3://{}/{}", z.bucket, z.key),
            },
            CodePlan::Image { uri, .. } => uri.clone(),
        }
    }
}

/// An artifact's place in S3: the account and region's code bucket, under
/// a key naming the artifact's SHA-256, so equal code is uploaded once and
/// different code never overwrites it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CodeLocation {
    /// Bucket ([`crate::naming::PipelineId::code_bucket`]).
    pub bucket: String,
    /// Object key.
    pub key: String,
}

impl CodeLocation {
    /// The location of `artifact` in `bucket`.
    pub fn of(bucket: String, artifact: &Artifact) -> Self {
        CodeLocation {
            bucket,
            key: format!("sluice/handlers/{}.zip", artifact.sha256),
        }
    }
}

/// A function's asynchronous invocation settings.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InvokeConfigPlan {
    /// Logical name of the function.
    pub logical: String,
    /// Function name.
    pub function: String,
    /// Retries after a failed invocation.
    pub maximum_retry_attempts: i32,
    /// Oldest event tried, in seconds.
    pub maximum_event_age_seconds: i32,
    /// ARN of the queue that receives failed invocations.
    pub on_failure_arn: Option<String>,
}

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

/// What an event source mapping reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SourceKind {
    /// An SQS queue.
    Queue,
    /// A Kinesis stream.
    Stream,
}

/// A Lambda event source mapping. Its AWS identity is the pair (function,
/// source): Lambda allows one mapping per pair, so it is found again by
/// listing without relying on a UUID that a lost status write would forget.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EventSourceMappingPlan {
    /// Logical name of the function.
    pub logical: String,
    /// AWS id: `<function name>|<source ARN>`.
    pub id: String,
    /// Function name.
    pub function: String,
    /// ARN of the queue or stream.
    pub source_arn: String,
    /// Queue or stream.
    pub source: SourceKind,
    /// Records per invocation.
    pub batch_size: i32,
    /// Batching window in seconds.
    pub batching_window_seconds: i32,
    /// Queues: most concurrent invocations.
    pub max_concurrency: Option<i32>,
    /// `ReportBatchItemFailures`.
    pub report_batch_item_failures: bool,
    /// Streams: where reading starts.
    pub starting_position: Option<StartingPosition>,
    /// Streams: split failing batches.
    pub bisect_on_error: Option<bool>,
    /// Streams: retries of a failing batch.
    pub maximum_retry_attempts: Option<i32>,
    /// Streams: oldest record sent.
    pub maximum_record_age_seconds: Option<i32>,
    /// Streams: batches per shard at once.
    pub parallelization_factor: Option<i32>,
    /// Streams: failure destination.
    pub on_failure_arn: Option<String>,
}

impl EventSourceMappingPlan {
    /// The AWS id of the mapping from `source_arn` to `function`.
    pub fn id_of(function: &str, source_arn: &str) -> String {
        format!("{function}|{source_arn}")
    }
}

/// Everything planned from the functions.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct FunctionsPlan {
    /// Execution roles.
    pub roles: Vec<RolePlan>,
    /// Functions (those whose handler the catalog has).
    pub functions: Vec<FunctionPlan>,
    /// Asynchronous invocation settings.
    pub invoke_configs: Vec<InvokeConfigPlan>,
    /// Invoke permissions.
    pub permissions: Vec<PermissionsPlan>,
    /// Event source mappings.
    pub event_source_mappings: Vec<EventSourceMappingPlan>,
}

/// The default environment variable of a `uses` edge: `BUCKET_OUTPUT`,
/// `QUEUE_TYPE_A_URL`, `EVENT_BUS_MAIN`, `TABLE_RESULTS`, `STREAM_EVENTS`,
/// `WORKFLOW_ETL_ARN`.
pub fn default_use_env(u: &crate::crd::UseSpec) -> Option<String> {
    let (kind, name) = use_node(u)?;
    let (prefix, suffix) = match kind {
        "bucket" => ("BUCKET", ""),
        "queue" => ("QUEUE", "_URL"),
        "eventBus" => ("EVENT_BUS", ""),
        "table" => ("TABLE", ""),
        "stream" => ("STREAM", ""),
        _ => ("WORKFLOW", "_ARN"),
    };
    Some(format!("{}{suffix}", naming::default_env_var(prefix, name)))
}

/// The environment variable a `uses` edge sets.
pub fn use_env(u: &crate::crd::UseSpec) -> Option<String> {
    u.env.clone().or_else(|| default_use_env(u))
}

/// Plans every function of `spec` and what its edges imply.
pub fn plan(spec: &DataPipelineSpec, graph: &Graph<'_>, cx: PlanContext<'_>) -> FunctionsPlan {
    let mut out = FunctionsPlan::default();
    for (i, f) in spec.functions.iter().enumerate() {
        let (Some(function), Some(role)) = (graph.functions.get(&f.name), graph.roles.get(&f.name))
        else {
            continue;
        };
        let required = f
            .builtin()
            .and_then(|h| cx.catalog.get(h))
            .map(|a| &a.required_env);
        let edges = plan_edges(spec, graph, f, required);
        out.roles.push(RolePlan {
            logical: f.name.clone(),
            name: role.name.clone(),
            path: graph.id.role_path(),
            trust_policy: iam::lambda_trust_policy(&graph.id.account),
            policy: iam::execution_policy(&ExecutionGrants {
                partition: graph.partition.to_owned(),
                region: graph.id.region.clone(),
                account: graph.id.account.clone(),
                function_name: function.name.clone(),
                grants: edges.grants,
                xray: f.tracing == TracingMode::Active,
                vpc: vpc_plan(f).map(|v| iam::NetworkAccess {
                    subnet_ids: v.subnet_ids,
                    security_group_ids: v.security_group_ids,
                }),
            }),
            permissions_boundary: cx.permissions_boundary.map(str::to_owned),
            tags: graph.id.tags(&f.name),
        });
        if let Some(code) = code_plan(f, i, graph, cx) {
            out.functions.push(FunctionPlan {
                logical: f.name.clone(),
                name: function.name.clone(),
                role_arn: role.arn.clone(),
                code,
                ephemeral_storage_mib: f.ephemeral_storage_mib.unwrap_or(EPHEMERAL_STORAGE_MIB),
                layers: f.layers.clone(),
                vpc: vpc_plan(f),
                memory_mib: f.memory_mib,
                timeout_seconds: f.timeout_seconds,
                reserved_concurrency: f.reserved_concurrency,
                environment: edges.environment,
                tracing: f.tracing,
                tags: graph.id.tags(&f.name),
            });
        }
        if let Some(a) = &f.async_invocation {
            out.invoke_configs.push(InvokeConfigPlan {
                logical: f.name.clone(),
                function: function.name.clone(),
                maximum_retry_attempts: a.maximum_retry_attempts,
                maximum_event_age_seconds: a.maximum_event_age_seconds,
                on_failure_arn: a
                    .on_failure
                    .as_ref()
                    .and_then(|d| graph.queues.get(&d.queue))
                    .map(|q| q.node.arn.clone()),
            });
        }
        if !edges.statements.is_empty() {
            out.permissions.push(PermissionsPlan {
                logical: f.name.clone(),
                function: function.name.clone(),
                statements: edges.statements.into_values().collect(),
            });
        }
        out.event_source_mappings.extend(edges.mappings);
    }
    out
}

fn vpc_plan(f: &FunctionSpec) -> Option<VpcPlan> {
    let vpc = f.vpc.as_ref()?;
    let sorted = |ids: &[String]| {
        let mut ids = ids.to_vec();
        ids.sort();
        ids.dedup();
        ids
    };
    Some(VpcPlan {
        subnet_ids: sorted(&vpc.subnet_ids),
        security_group_ids: sorted(&vpc.security_group_ids),
    })
}

/// What function `f` (the `i`th) runs; `None` for a built-in handler the
/// catalog lacks (validation refuses it).
fn code_plan(
    f: &FunctionSpec,
    i: usize,
    graph: &Graph<'_>,
    cx: PlanContext<'_>,
) -> Option<CodePlan> {
    if let Some(handler) = f.builtin() {
        let artifact = cx.catalog.get(handler)?;
        return Some(CodePlan::Builtin {
            handler: handler.to_owned(),
            artifact: artifact.clone(),
            at: CodeLocation::of(graph.id.code_bucket(), artifact),
        });
    }
    let code = f.code.as_ref()?;
    let architecture = code.architecture.unwrap_or_default().as_aws().to_owned();
    if let Some(image) = &code.image {
        return Some(CodePlan::Image {
            uri: image.uri.clone(),
            architecture,
        });
    }
    let s3 = code.s3.as_ref()?;
    Some(CodePlan::Zip(ZipCode {
        field: format!("spec.functions[{i}].code"),
        bucket: s3.bucket.clone(),
        key: s3.key.clone(),
        version_id: s3.version_id.clone(),
        sha256: s3.sha256.clone(),
        runtime: code.runtime?.as_aws().to_owned(),
        handler: code.handler.clone()?,
        architecture,
    }))
}

/// For each variable a built-in handler requires (`required`: variable →
/// the edge that would set it, as `handlers/requirements.json` words it)
/// and no edge names with `env:` (nor `environment`), the indices of the
/// function's `uses` edges that could give it: of the kind and access the
/// requirement names, without an `env:` of their own. Exactly one, and it
/// gives it; several, and the spec must say which.
pub fn edge_candidates(
    f: &FunctionSpec,
    required: &BTreeMap<String, String>,
) -> BTreeMap<String, Vec<usize>> {
    let mut out = BTreeMap::new();
    for (var, hint) in required {
        if f.environment.contains_key(var) || f.uses.iter().any(|u| u.env.as_ref() == Some(var)) {
            continue;
        }
        let Some((kind, access)) = crate::artifacts::edge_need(hint) else {
            continue;
        };
        let candidates: Vec<usize> = f
            .uses
            .iter()
            .enumerate()
            .filter(|(_, u)| u.env.is_none() && use_node(u).is_some_and(|(k, _)| k == kind))
            .filter(|(_, u)| match access.as_str() {
                "read" => u.access.reads(),
                "write" => u.access.writes(),
                other => u.access.as_str() == other,
            })
            .map(|(i, _)| i)
            .collect();
        out.insert(var.clone(), candidates);
    }
    out
}

/// The node a `uses` edge names: its kind, as the spec spells the field,
/// and its logical name.
pub fn use_node(u: &crate::crd::UseSpec) -> Option<(&'static str, &str)> {
    [
        ("bucket", &u.bucket),
        ("queue", &u.queue),
        ("eventBus", &u.event_bus),
        ("table", &u.table),
        ("stream", &u.stream),
        ("workflow", &u.workflow),
    ]
    .into_iter()
    .find_map(|(kind, name)| name.as_deref().map(|name| (kind, name)))
}

/// What one function's edges imply.
struct Edges {
    grants: Grants,
    environment: BTreeMap<String, String>,
    statements: BTreeMap<String, InvokeStatement>,
    mappings: Vec<EventSourceMappingPlan>,
}

fn plan_edges(
    spec: &DataPipelineSpec,
    graph: &Graph<'_>,
    f: &FunctionSpec,
    required: Option<&BTreeMap<String, String>>,
) -> Edges {
    let id = graph.id;
    let function_name = graph
        .functions
        .get(&f.name)
        .map(|n| n.name.clone())
        .unwrap_or_default();
    let mut grants = Grants::default();
    let mut environment = f.environment.clone();
    environment.insert("SLUICE_PIPELINE".into(), id.pipeline_ref());
    environment.insert("SLUICE_FUNCTION".into(), f.name.clone());
    // What the handlers hold every call to: events carry the pipeline's
    // own source; buckets must be this account's.
    environment.insert("SLUICE_EVENT_SOURCE".into(), id.event_source());
    environment.insert("SLUICE_BUCKET_OWNER".into(), id.account.clone());
    let own_account = iam::in_account(&id.account);
    let own_source = iam::with_source(&id.event_source());
    let mut statements = BTreeMap::new();
    let mut mappings = Vec::new();

    // A customer-managed key: readers decrypt, writers also encrypt.
    let kms = |grants: &mut Grants, key: &Option<String>, write: bool| {
        if let Some(key) = key {
            let actions = if write {
                actions::KMS_ENCRYPT
            } else {
                actions::KMS_DECRYPT
            };
            grants.allow(key.clone(), actions);
        }
    };
    let send_to = |grants: &mut Grants, queue: &str| -> Option<String> {
        let q = graph.queues.get(queue)?;
        grants.allow(q.node.arn.clone(), actions::SQS_SEND);
        kms(grants, &q.node.kms_key, true);
        Some(q.node.arn.clone())
    };

    let mut values = Vec::with_capacity(f.uses.len());
    for u in &f.uses {
        let var = use_env(u);
        let value = if let Some(b) = &u.bucket {
            graph.buckets.get(b).map(|node| {
                let objects = format!("{}/*", node.arn);
                if u.access.reads() {
                    grants.allow_if(&objects, actions::S3_GET_OBJECTS, Some(&own_account));
                    grants.allow_if(node.arn.clone(), actions::S3_LIST, Some(&own_account));
                }
                if u.access.writes() {
                    grants.allow_if(&objects, actions::S3_PUT_OBJECTS, Some(&own_account));
                }
                node.name.clone()
            })
        } else if let Some(q) = &u.queue {
            send_to(&mut grants, q).and(graph.queues.get(q).map(|q| q.url.clone()))
        } else if let Some(b) = &u.event_bus {
            graph.buses.get(b).map(|node| {
                grants.allow_if(node.arn.clone(), actions::EVENTS_PUT, Some(&own_source));
                node.name.clone()
            })
        } else if let Some(t) = &u.table {
            graph.tables.get(t).map(|node| {
                if u.access.reads() {
                    grants.allow(node.arn.clone(), actions::DYNAMODB_READ);
                    grants.allow(format!("{}/index/*", node.arn), actions::DYNAMODB_READ);
                }
                if u.access.writes() {
                    grants.allow(node.arn.clone(), actions::DYNAMODB_WRITE);
                }
                kms(&mut grants, &node.kms_key, u.access.writes());
                node.name.clone()
            })
        } else if let Some(s) = &u.stream {
            graph.streams.get(s).map(|node| {
                let put = u.access == Access::Put;
                let stream_actions = if put {
                    actions::KINESIS_PUT
                } else {
                    actions::KINESIS_READ
                };
                grants.allow(node.arn.clone(), stream_actions);
                kms(&mut grants, &node.kms_key, put);
                node.name.clone()
            })
        } else if let Some(w) = &u.workflow {
            graph.workflows.get(w).map(|node| {
                grants.allow(node.arn.clone(), actions::STATES_START);
                node.arn.clone()
            })
        } else {
            None
        };
        if let (Some(var), Some(value)) = (var, value.clone()) {
            environment.insert(var, value);
        }
        values.push(value);
    }
    // A variable the built-in handler requires, from the one edge that
    // can give it (several: validation asks which).
    if let Some(required) = required {
        for (var, candidates) in edge_candidates(f, required) {
            if let [only] = candidates[..]
                && let Some(Some(value)) = values.get(only)
            {
                environment.insert(var, value.clone());
            }
        }
    }

    if let Some(i) = &f.idempotency
        && let Some(node) = graph.tables.get(&i.table)
    {
        grants.allow(node.arn.clone(), actions::DYNAMODB_IDEMPOTENCY);
        kms(&mut grants, &node.kms_key, true);
        environment.insert("IDEMPOTENCY_TABLE".into(), node.name.clone());
    }

    if let Some(a) = &f.async_invocation
        && let Some(d) = &a.on_failure
    {
        // Lambda sends to destinations with the function's own role.
        send_to(&mut grants, &d.queue);
    }

    for t in &f.triggers {
        if let Some(b) = &t.bucket
            && let Some(node) = graph.buckets.get(&b.name)
        {
            grants.allow_if(
                format!("{}/*", node.arn),
                actions::S3_GET_OBJECTS,
                Some(&own_account),
            );
            let sid = format!("{STATEMENT_PREFIX}s3-{}", b.name);
            statements.insert(
                sid.clone(),
                InvokeStatement {
                    sid,
                    principal: "s3.amazonaws.com".into(),
                    source_arn: node.arn.clone(),
                    source_account: id.account.clone(),
                },
            );
        }
        if let Some(q) = &t.queue
            && let Some(node) = graph.queues.get(&q.name)
        {
            grants.allow(node.node.arn.clone(), actions::SQS_CONSUME);
            kms(&mut grants, &node.node.kms_key, false);
            mappings.push(EventSourceMappingPlan {
                logical: f.name.clone(),
                id: EventSourceMappingPlan::id_of(&function_name, &node.node.arn),
                function: function_name.clone(),
                source_arn: node.node.arn.clone(),
                source: SourceKind::Queue,
                batch_size: q.batch_size,
                batching_window_seconds: q.batching_window_seconds,
                max_concurrency: q.max_concurrency,
                report_batch_item_failures: q.report_batch_item_failures,
                starting_position: None,
                bisect_on_error: None,
                maximum_retry_attempts: None,
                maximum_record_age_seconds: None,
                parallelization_factor: None,
                on_failure_arn: None,
            });
        }
        if let Some(s) = &t.stream
            && let Some(node) = graph.streams.get(&s.name)
        {
            grants.allow(node.arn.clone(), actions::KINESIS_CONSUME);
            kms(&mut grants, &node.kms_key, false);
            let on_failure_arn = s
                .on_failure
                .as_ref()
                .and_then(|d| send_to(&mut grants, &d.queue));
            mappings.push(EventSourceMappingPlan {
                logical: f.name.clone(),
                id: EventSourceMappingPlan::id_of(&function_name, &node.arn),
                function: function_name.clone(),
                source_arn: node.arn.clone(),
                source: SourceKind::Stream,
                batch_size: s.batch_size,
                batching_window_seconds: s.batching_window_seconds,
                max_concurrency: None,
                report_batch_item_failures: s.report_batch_item_failures,
                starting_position: Some(s.starting_position),
                bisect_on_error: Some(s.bisect_on_error),
                maximum_retry_attempts: Some(s.maximum_retry_attempts),
                maximum_record_age_seconds: Some(s.maximum_record_age_seconds),
                parallelization_factor: Some(s.parallelization_factor),
                on_failure_arn,
            });
        }
    }

    // Rules that target this function may invoke it.
    for r in &spec.rules {
        if !r
            .targets
            .iter()
            .any(|t| t.function.as_ref() == Some(&f.name))
        {
            continue;
        }
        if let Some(rule) = graph.rules.get(&r.name) {
            let sid = format!("{STATEMENT_PREFIX}events-{}", r.name);
            statements.insert(
                sid.clone(),
                InvokeStatement {
                    sid,
                    principal: "events.amazonaws.com".into(),
                    source_arn: rule.node.arn.clone(),
                    source_account: id.account.clone(),
                },
            );
        }
    }

    Edges {
        grants,
        environment,
        statements,
        mappings,
    }
}
