//! Lambda functions: their settings, environment, edges and triggers.
//!
//! | AWS rule | Where | Reference |
//! |---|---|---|
//! | A function name is 1 to 64 characters of `[a-zA-Z0-9-_]` | naming (derived names are at most 64) | CreateFunction, FunctionName |
//! | Memory 128 to 10,240 MiB | CRD schema and here | CreateFunction, MemorySize |
//! | Timeout 1 to 900 s | CRD schema and here | CreateFunction, Timeout |
//! | Ephemeral storage 512 to 10,240 MiB | CRD schema | CreateFunction, EphemeralStorage |
//! | At most 5 layers, each a layer version ARN of the function's partition | CRD schema | CreateFunction, Layers |
//! | Up to 16 subnets and 5 security groups, by their ID syntax | CRD schema | VpcConfig |
//! | Environment names start with a letter, then letters, digits and `_`; none reserved by Lambda (`AWS_*`, `LAMBDA_*`, `_HANDLER`, `TZ`, ...) | here | "Defined runtime environment variables" |
//! | The environment is at most 4 KB of names and values | `validate_plan` (with the derived names) | Lambda quotas |
//! | Reserved concurrency 0 to the account's limit, leaving 100 unreserved | CRD schema (0 to 100,000), then `aws::function` against GetAccountSettings | PutFunctionConcurrency |
//! | One event source mapping per function and queue or stream | here | CreateEventSourceMapping |
//! | A FIFO queue source takes at most 10 messages a batch, and no batching window | here and `queues.rs` | CreateEventSourceMapping, BatchSize |
//! | A standard queue batch above 10 needs a batching window of at least 1 s | here | CreateEventSourceMapping, MaximumBatchingWindowInSeconds |
//! | Queue batch 1 to 10,000; window 0 to 300 s | CRD schema | CreateEventSourceMapping |
//! | Stream `maximumRecordAgeSeconds` -1 or 60 to 604,800; retries -1 to 10,000; parallelization 1 to 10 | CRD schema and here | CreateEventSourceMapping |
//! | Failure destinations (async on-failure, stream on-failure) are standard queues | here | DestinationConfig |
//! | Async retries 0 to 2; maximum event age 60 to 21,600 s | CRD schema | PutFunctionEventInvokeConfig |
//! | An S3 trigger names at least one event | here | PutBucketNotificationConfiguration |

use std::collections::BTreeSet;

use super::Declared;
use crate::{
    artifacts::Catalog,
    crd::{DataPipelineSpec, FunctionSpec},
    plan::{
        function::{edge_candidates, use_env, use_node},
        table::{IDEMPOTENCY_PARTITION_KEY, IDEMPOTENCY_TTL_ATTRIBUTE},
    },
};

/// Environment variable names Lambda reserves or Sluice sets itself.
const RESERVED_ENV_PREFIXES: [&str; 3] = ["AWS_", "LAMBDA_", "SLUICE_"];
const RESERVED_ENV_NAMES: [&str; 4] = ["_HANDLER", "_X_AMZN_TRACE_ID", "TZ", "IDEMPOTENCY_TABLE"];

/// The declared nodes a function's edges may name.
pub(super) struct Refs<'a, 'b> {
    pub(super) buckets: &'a Declared<'b>,
    pub(super) queues: &'a Declared<'b>,
    pub(super) fifo: &'a BTreeSet<&'b str>,
    pub(super) buses: &'a Declared<'b>,
    pub(super) streams: &'a Declared<'b>,
    pub(super) tables: &'a Declared<'b>,
    pub(super) workflows: &'a Declared<'b>,
}

fn reserved(var: &str) -> bool {
    RESERVED_ENV_PREFIXES.iter().any(|p| var.starts_with(p)) || RESERVED_ENV_NAMES.contains(&var)
}

fn valid_env_name(var: &str) -> bool {
    let mut chars = var.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic())
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

pub(super) fn validate_function(
    spec: &DataPipelineSpec,
    i: usize,
    f: &FunctionSpec,
    catalog: &Catalog,
    refs: &Refs<'_, '_>,
    problems: &mut Vec<String>,
) {
    let at = format!("spec.functions[{i}]");
    let field = if f.handler.is_some() {
        format!("{at}.handler")
    } else {
        format!("{at}.code.builtin")
    };
    match f.builtin().map(|h| (h, catalog.get(h))) {
        // The team's own code: what it reads comes from its edges too, but
        // its variables are its own.
        None => {}
        Some((handler, None)) => problems.push(format!(
            "{field}: {handler:?} is not a built-in handler; available: {}",
            catalog.names().join(", ")
        )),
        // What a built-in handler reads and writes comes from the edges
        // that grant it, never from a value written by hand, which could
        // name a resource outside the pipeline.
        Some((handler, Some(artifact))) => {
            for (var, edge) in &artifact.required_env {
                if f.environment.contains_key(var) {
                    problems.push(format!(
                        "{at}.environment.{var}: handler {handler} takes {var} from an edge of \
                         the function, not from environment; remove it and add {edge}"
                    ));
                }
            }
            // Only a real ambiguity asks which edge gives a variable.
            for (var, candidates) in edge_candidates(f, &artifact.required_env) {
                if candidates.len() > 1 {
                    let listed: Vec<String> = candidates
                        .iter()
                        .map(|&k| {
                            let (kind, name) = use_node(&f.uses[k]).unwrap_or(("?", "?"));
                            format!("uses[{k}] ({kind} {name})")
                        })
                        .collect();
                    problems.push(format!(
                        "{at}.uses: handler {handler} needs {var}, and {} edges could give it: {}; \
                         add env: {var} to the one that should",
                        candidates.len(),
                        listed.join(", ")
                    ));
                }
            }
        }
    }
    if !(128..=10240).contains(&f.memory_mib) {
        problems.push(format!(
            "{at}.memoryMiB: {} is outside Lambda's 128 to 10240 MiB",
            f.memory_mib
        ));
    }
    if !(1..=900).contains(&f.timeout_seconds) {
        problems.push(format!(
            "{at}.timeoutSeconds: {} is outside 1 to 900 seconds; work that runs longer belongs \
             in a workflow, e.g. {}",
            f.timeout_seconds,
            crate::asl::fragment_for(&f.name)
        ));
    }
    for key in f.environment.keys() {
        if reserved(key) {
            problems.push(format!(
                "{at}.environment.{key}: reserved by Lambda or Sluice (AWS_*, LAMBDA_*, SLUICE_*, \
                 _HANDLER, TZ, IDEMPOTENCY_TABLE); choose another name"
            ));
        } else if !valid_env_name(key) {
            problems.push(format!(
                "{at}.environment.{key}: not a name Lambda accepts; use letters, digits and '_', \
                 starting with a letter"
            ));
        }
    }

    let mut env_from_uses = BTreeSet::new();
    for (j, u) in f.uses.iter().enumerate() {
        let at = format!("{at}.uses[{j}]");
        let (field, name, declared, kind) = if let Some(b) = &u.bucket {
            ("bucket", b, refs.buckets, "spec.buckets")
        } else if let Some(q) = &u.queue {
            ("queue", q, refs.queues, "spec.queues")
        } else if let Some(b) = &u.event_bus {
            ("eventBus", b, refs.buses, "spec.eventBuses")
        } else if let Some(t) = &u.table {
            ("table", t, refs.tables, "spec.tables")
        } else if let Some(s) = &u.stream {
            ("stream", s, refs.streams, "spec.streams")
        } else if let Some(w) = &u.workflow {
            ("workflow", w, refs.workflows, "spec.workflows")
        } else {
            problems.push(format!(
                "{at}: name the resource used, e.g. bucket: <name>, queue, eventBus, table or stream"
            ));
            continue;
        };
        let default_bus = field == "eventBus" && name == crate::plan::graph::DEFAULT_BUS;
        if !declared.has(name) && !default_bus {
            problems.push(format!(
                "{at}.{field}: {name:?} is not declared in {kind} ({})",
                declared.hint()
            ));
        }
        if let Some(var) = use_env(u) {
            if f.environment.contains_key(&var) || !env_from_uses.insert(var.clone()) {
                problems.push(format!(
                    "{at}.env: {var} is set twice; give each use its own variable"
                ));
            }
            if reserved(&var) {
                problems.push(format!(
                    "{at}.env: {var} is reserved (AWS_*, LAMBDA_*, SLUICE_*, IDEMPOTENCY_TABLE)"
                ));
            }
        }
    }

    let mut sources = BTreeSet::new();
    for (j, t) in f.triggers.iter().enumerate() {
        let at = format!("{at}.triggers[{j}]");
        match (&t.bucket, &t.queue, &t.stream) {
            (Some(b), None, None) => {
                if !refs.buckets.has(&b.name) {
                    problems.push(format!(
                        "{at}.bucket.name: {:?} is not declared in spec.buckets ({})",
                        b.name,
                        refs.buckets.hint()
                    ));
                }
                if b.events.is_empty() {
                    problems.push(format!(
                        "{at}.bucket.events: name at least one S3 event, e.g. s3:ObjectCreated:*"
                    ));
                }
            }
            (None, Some(q), None) => {
                if !refs.queues.has(&q.name) {
                    problems.push(format!(
                        "{at}.queue.name: {:?} is not declared in spec.queues ({})",
                        q.name,
                        refs.queues.hint()
                    ));
                }
                if !sources.insert(("queue", q.name.as_str())) {
                    problems.push(format!(
                        "{at}.queue.name: {:?} triggers this function twice; Lambda allows one \
                         mapping per function and source",
                        q.name
                    ));
                }
                if refs.fifo.contains(q.name.as_str()) && q.batch_size > 10 {
                    problems.push(format!(
                        "{at}.queue.batchSize: {} is above 10, the most Lambda takes from a FIFO queue",
                        q.batch_size
                    ));
                }
                if q.batch_size > 10 && q.batching_window_seconds == 0 {
                    problems.push(format!(
                        "{at}.queue.batchSize: {} needs batchingWindowSeconds of at least 1 \
                         (without a window SQS sends at most 10)",
                        q.batch_size
                    ));
                }
            }
            (None, None, Some(s)) => {
                if !refs.streams.has(&s.name) {
                    problems.push(format!(
                        "{at}.stream.name: {:?} is not declared in spec.streams ({})",
                        s.name,
                        refs.streams.hint()
                    ));
                }
                if !sources.insert(("stream", s.name.as_str())) {
                    problems.push(format!(
                        "{at}.stream.name: {:?} triggers this function twice; Lambda allows one \
                         mapping per function and source",
                        s.name
                    ));
                }
                if s.maximum_record_age_seconds != -1
                    && !(60..=604_800).contains(&s.maximum_record_age_seconds)
                {
                    problems.push(format!(
                        "{at}.stream.maximumRecordAgeSeconds: {} must be -1 (no limit) or 60 to 604800",
                        s.maximum_record_age_seconds
                    ));
                }
                if let Some(d) = &s.on_failure {
                    check_destination(
                        &format!("{at}.stream.onFailure.queue"),
                        &d.queue,
                        refs,
                        problems,
                    );
                }
            }
            _ => problems.push(format!(
                "{at}: set exactly one trigger source: bucket, queue or stream"
            )),
        }
    }

    if let Some(a) = &f.async_invocation
        && let Some(d) = &a.on_failure
    {
        check_destination(
            &format!("{at}.asyncInvocation.onFailure.queue"),
            &d.queue,
            refs,
            problems,
        );
    }

    if let Some(i) = &f.idempotency {
        match spec.tables.iter().find(|t| t.name == i.table) {
            None => problems.push(format!(
                "{at}.idempotency.table: {:?} is not declared in spec.tables ({})",
                i.table,
                refs.tables.hint()
            )),
            Some(t) => {
                let pk = &t.partition_key;
                if pk.name != IDEMPOTENCY_PARTITION_KEY
                    || pk.type_ != crate::crd::KeyType::S
                    || t.sort_key.is_some()
                {
                    problems.push(format!(
                        "{at}.idempotency.table: table {:?} must have partition key \
                         {{name: {IDEMPOTENCY_PARTITION_KEY}, type: S}} and no sort key, the key \
                         the idempotency claims write",
                        t.name
                    ));
                }
                if t.ttl_attribute
                    .as_deref()
                    .is_some_and(|a| a != IDEMPOTENCY_TTL_ATTRIBUTE)
                {
                    problems.push(format!(
                        "{at}.idempotency.table: table {:?} expires items by {:?}, but the claims \
                         write {IDEMPOTENCY_TTL_ATTRIBUTE}; leave ttlAttribute out (Sluice sets it) \
                         or set it to {IDEMPOTENCY_TTL_ATTRIBUTE}",
                        t.name,
                        t.ttl_attribute.as_deref().unwrap_or_default()
                    ));
                }
            }
        }
    }
}

/// A queue that receives failures from Lambda: declared and standard
/// (Lambda's destinations and on-failure targets are standard queues).
pub(super) fn check_destination(
    at: &str,
    queue: &str,
    refs: &Refs<'_, '_>,
    problems: &mut Vec<String>,
) {
    if !refs.queues.has(queue) {
        problems.push(format!(
            "{at}: {queue:?} is not declared in spec.queues ({})",
            refs.queues.hint()
        ));
    } else if refs.fifo.contains(queue) {
        problems.push(format!(
            "{at}: {queue:?} is a FIFO queue; Lambda sends failures to standard queues only"
        ));
    }
}
