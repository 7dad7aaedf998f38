//! `kubectl sluice plan`: every AWS resource a pipeline becomes, with its
//! key settings, and every IAM statement each role gets, grouped by the
//! function (workflow, schedule) that owns it. With `--live`, what the
//! operator would change in AWS now, found by the operator's own observe
//! and diff ([`crate::reconcile::preview`]) through clients whose write
//! fence is closed, so nothing can be written.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;
use serde_json::Value;

use super::{
    CHANGES, INVALID, OK, Outcome,
    args::{Args, Output},
    check::{self, Checked, Setup},
    load,
};
use crate::{
    aws::Preview,
    plan::{CodePlan, Kind, Plan, RolePlan},
};

/// Who a resource belongs to on the page.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(tag = "kind", content = "name", rename_all = "camelCase")]
pub enum Owner {
    /// Shared by the pipeline: storage, messaging, events.
    Pipeline,
    /// A function and what serves only it.
    Function(String),
    /// A workflow and what serves only it.
    Workflow(String),
    /// A schedule and its role.
    Schedule(String),
}

/// One planned resource.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Resource {
    /// Its kind, as status and events name it.
    pub kind: &'static str,
    /// Its logical name in the spec.
    pub logical: String,
    /// Its AWS id.
    pub id: String,
    /// Its key settings, `name: value`.
    pub settings: Vec<String>,
    /// A role's IAM statements, one line each.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub statements: Vec<String>,
    /// Who it belongs to.
    pub owner: Owner,
}

/// Every resource of a plan, in apply order within each owner.
pub fn resources(plan: &Plan) -> Vec<Resource> {
    let mut owners: BTreeMap<String, Owner> = BTreeMap::new();
    for f in &plan.functions {
        owners.insert(f.role_arn.clone(), Owner::Function(f.logical.clone()));
    }
    for s in &plan.state_machines {
        owners.insert(s.role_arn.clone(), Owner::Workflow(s.logical.clone()));
    }
    for s in &plan.schedules {
        owners.insert(s.role_arn.clone(), Owner::Schedule(s.logical.clone()));
    }
    let function_of = |name: &str| {
        plan.functions
            .iter()
            .find(|f| f.name == name || name.ends_with(&format!(":function:{}", f.name)))
            .map_or(Owner::Pipeline, |f| Owner::Function(f.logical.clone()))
    };
    let mut out = Vec::new();
    let mut push = |kind: Kind, logical: &str, id: &str, settings: Vec<String>, owner: Owner| {
        out.push(Resource {
            kind: kind.as_str(),
            logical: logical.to_owned(),
            id: id.to_owned(),
            settings,
            statements: Vec::new(),
            owner,
        });
    };
    for b in &plan.buckets {
        push(
            Kind::Bucket,
            &b.logical,
            &b.name,
            vec![
                format!("region: {}", b.region),
                format!("emptied on delete: {}", b.empty_on_delete),
            ],
            Owner::Pipeline,
        );
    }
    for q in &plan.queues {
        let mut s = vec![
            format!("type: {}", if q.fifo { "FIFO" } else { "standard" }),
            format!("visibility timeout: {} s", q.visibility_timeout_seconds),
            format!("retention: {} s", q.retention_seconds),
            format!(
                "encryption: {}",
                q.kms_key.as_deref().unwrap_or("SQS-managed (SSE-SQS)")
            ),
        ];
        if q.content_based_deduplication {
            s.push("content-based deduplication".into());
        }
        if let Some(r) = &q.redrive {
            s.push(format!(
                "dead letters: {} after {} receives",
                r.dead_letter_arn, r.max_receive_count
            ));
        }
        if let Some(p) = &q.policy {
            s.push(format!("queue policy: {}", compact(p)));
        }
        push(Kind::Queue, &q.logical, &q.name, s, Owner::Pipeline);
    }
    for x in &plan.streams {
        let mut s = vec![format!("mode: {}", x.mode.as_aws())];
        if let Some(n) = x.shards {
            s.push(format!("shards: {n}"));
        }
        s.push(format!("retention: {} h", x.retention_hours));
        s.push(format!("encryption: KMS {}", x.kms_key));
        push(Kind::Stream, &x.logical, &x.name, s, Owner::Pipeline);
    }
    for t in &plan.tables {
        let mut s = vec![format!(
            "key: {} ({:?})",
            t.partition_key.name, t.partition_key.type_
        )];
        if let Some(k) = &t.sort_key {
            s.push(format!("sort key: {} ({:?})", k.name, k.type_));
        }
        s.push(format!("billing: {}", t.billing_mode.as_aws()));
        if let Some(c) = &t.capacity {
            s.push(format!("capacity: {} read, {} write", c.read, c.write));
        }
        if let Some(a) = &t.ttl_attribute {
            s.push(format!("TTL attribute: {a}"));
        }
        if let Some(v) = &t.stream {
            s.push(format!("stream: {}", v.as_aws()));
        }
        if let Some(k) = &t.kms_key {
            s.push(format!("encryption: KMS {k}"));
        }
        push(Kind::Table, &t.logical, &t.name, s, Owner::Pipeline);
    }
    for b in &plan.event_buses {
        push(Kind::EventBus, &b.logical, &b.name, vec![], Owner::Pipeline);
    }
    for g in &plan.log_groups {
        let owner = plan
            .state_machines
            .iter()
            .find(|m| {
                m.logging
                    .as_ref()
                    .is_some_and(|l| l.log_group_arn.contains(&format!(":log-group:{}", g.name)))
            })
            .map_or(Owner::Pipeline, |m| Owner::Workflow(m.logical.clone()));
        push(
            Kind::LogGroup,
            &g.logical,
            &g.name,
            vec![format!("retention: {} days", g.retention_days)],
            owner,
        );
    }
    for r in &plan.roles {
        let owner = owners
            .iter()
            .find(|(arn, _)| arn.ends_with(&format!("/{}", r.name)))
            .map_or(Owner::Pipeline, |(_, o)| o.clone());
        let mut s = vec![format!("path: {}", r.path)];
        if let Some(b) = &r.permissions_boundary {
            s.push(format!("permissions boundary: {b}"));
        }
        s.push(format!("assumed by: {}", principals(&r.trust_policy)));
        out.push(Resource {
            kind: Kind::Role.as_str(),
            logical: r.logical.clone(),
            id: r.name.clone(),
            settings: s,
            statements: statements(r),
            owner,
        });
    }
    let mut push = |kind: Kind, logical: &str, id: &str, settings: Vec<String>, owner: Owner| {
        out.push(Resource {
            kind: kind.as_str(),
            logical: logical.to_owned(),
            id: id.to_owned(),
            settings,
            statements: Vec::new(),
            owner,
        });
    };
    for f in &plan.functions {
        let code = match &f.code {
            CodePlan::Builtin {
                handler, artifact, ..
            } => format!("built-in handler {handler} ({})", artifact.architecture),
            CodePlan::Zip(z) => format!(
                "zip s3://{}/{}{} ({}, {}, {})",
                z.bucket,
                z.key,
                z.version_id
                    .as_ref()
                    .map_or(String::new(), |v| format!("?versionId={v}")),
                z.runtime,
                z.handler,
                z.architecture
            ),
            CodePlan::Image { uri, architecture } => format!("image {uri} ({architecture})"),
        };
        let mut s = vec![
            format!("code: {code}"),
            format!("memory: {} MiB", f.memory_mib),
            format!("timeout: {} s", f.timeout_seconds),
            format!("ephemeral storage: {} MiB", f.ephemeral_storage_mib),
            format!("tracing: {}", f.tracing.as_aws()),
        ];
        if let Some(c) = f.reserved_concurrency {
            s.push(format!("reserved concurrency: {c}"));
        }
        if !f.layers.is_empty() {
            s.push(format!("layers: {}", f.layers.join(", ")));
        }
        if let Some(v) = &f.vpc {
            s.push(format!(
                "VPC: subnets {}, security groups {}",
                v.subnet_ids.join(", "),
                v.security_group_ids.join(", ")
            ));
        }
        // Values may hold secrets a team set: names only.
        if !f.environment.is_empty() {
            s.push(format!(
                "environment: {}",
                f.environment.keys().cloned().collect::<Vec<_>>().join(", ")
            ));
        }
        push(
            Kind::Function,
            &f.logical,
            &f.name,
            s,
            Owner::Function(f.logical.clone()),
        );
    }
    for c in &plan.invoke_configs {
        let mut s = vec![
            format!("retries: {}", c.maximum_retry_attempts),
            format!("maximum event age: {} s", c.maximum_event_age_seconds),
        ];
        if let Some(a) = &c.on_failure_arn {
            s.push(format!("on failure: {a}"));
        }
        push(
            Kind::InvokeConfig,
            &c.logical,
            &c.function,
            s,
            function_of(&c.function),
        );
    }
    for p in &plan.permissions {
        let s = p
            .statements
            .iter()
            .map(|st| {
                format!(
                    "invoke: [{}] Allow lambda:InvokeFunction to {} from {} (account {})",
                    st.sid, st.principal, st.source_arn, st.source_account
                )
            })
            .collect();
        push(
            Kind::Permissions,
            &p.logical,
            &p.function,
            s,
            function_of(&p.function),
        );
    }
    for m in &plan.state_machines {
        let mut s = vec![format!("type: {}", m.type_.as_aws())];
        if let Some(states) = m.definition["States"].as_object() {
            s.push(format!(
                "states: {}",
                states.keys().cloned().collect::<Vec<_>>().join(", ")
            ));
        }
        if let Some(l) = &m.logging {
            s.push(format!(
                "logging: {} (execution data: {}) to {}",
                l.level, l.include_execution_data, l.log_group_arn
            ));
        }
        s.push(format!("tracing: {}", m.tracing));
        push(
            Kind::StateMachine,
            &m.logical,
            &m.arn,
            s,
            Owner::Workflow(m.logical.clone()),
        );
    }
    for r in &plan.rules {
        let mut s = vec![
            format!("bus: {}", r.bus),
            format!("pattern: {}", compact(&r.pattern)),
            format!("enabled: {}", r.enabled),
        ];
        for t in &r.targets {
            let mut line = format!("target {}: {}", t.id, t.arn);
            if t.input_transformer.is_some() {
                line.push_str(" (input transformed)");
            }
            if let Some(g) = &t.message_group_id {
                line.push_str(&format!(" (message group {g})"));
            }
            if let Some(role) = &t.role_arn {
                line.push_str(&format!(" as {role}"));
            }
            s.push(line);
        }
        push(Kind::Rule, &r.logical, &r.id, s, Owner::Pipeline);
    }
    for x in &plan.schedules {
        let mut s = vec![
            format!("expression: {} ({})", x.expression, x.timezone),
            format!("target: {}", x.target_arn),
            format!("enabled: {}", x.enabled),
        ];
        if let Some(w) = x.flexible_window_minutes {
            s.push(format!("flexible window: {w} min"));
        }
        if let Some(d) = &x.start_date {
            s.push(format!("from: {d}"));
        }
        if let Some(d) = &x.end_date {
            s.push(format!("until: {d}"));
        }
        if let Some((attempts, age)) = x.retry {
            s.push(format!("retries: {attempts}, maximum event age {age} s"));
        }
        if let Some(d) = &x.dead_letter_arn {
            s.push(format!("dead letters: {d}"));
        }
        push(
            Kind::Schedule,
            &x.logical,
            &x.name,
            s,
            Owner::Schedule(x.logical.clone()),
        );
    }
    for m in &plan.event_source_mappings {
        let mut s = vec![
            format!("source: {}", m.source_arn),
            format!("batch size: {}", m.batch_size),
            format!("batching window: {} s", m.batching_window_seconds),
        ];
        if let Some(c) = m.max_concurrency {
            s.push(format!("maximum concurrency: {c}"));
        }
        if m.report_batch_item_failures {
            s.push("reports batch item failures".into());
        }
        if let Some(p) = m.starting_position {
            s.push(format!("starting position: {}", p.as_aws()));
        }
        if let Some(b) = m.bisect_on_error {
            s.push(format!("bisect on error: {b}"));
        }
        if let Some(r) = m.maximum_retry_attempts {
            s.push(format!("retries: {r}"));
        }
        if let Some(a) = m.maximum_record_age_seconds {
            s.push(format!("maximum record age: {a} s"));
        }
        if let Some(p) = m.parallelization_factor {
            s.push(format!("parallelization factor: {p}"));
        }
        if let Some(f) = &m.on_failure_arn {
            s.push(format!("on failure: {f}"));
        }
        push(
            Kind::EventSourceMapping,
            &m.logical,
            &m.id,
            s,
            function_of(&m.function),
        );
    }
    for n in &plan.notifications {
        let mut s: Vec<String> = n
            .lambdas
            .iter()
            .map(|l| {
                let mut line = format!("{} → {}", l.events.join(", "), l.function_arn);
                if let Some(p) = &l.prefix {
                    line.push_str(&format!(" (prefix {p})"));
                }
                if let Some(x) = &l.suffix {
                    line.push_str(&format!(" (suffix {x})"));
                }
                line
            })
            .collect();
        if n.eventbridge {
            s.push("every event to EventBridge".into());
        }
        push(
            Kind::Notification,
            &n.logical,
            &n.bucket,
            s,
            Owner::Pipeline,
        );
    }
    out
}

fn compact(v: &Value) -> String {
    serde_json::to_string(v).unwrap_or_default()
}

fn as_list(v: &Value) -> Vec<String> {
    match v {
        Value::String(s) => vec![s.clone()],
        Value::Array(a) => a
            .iter()
            .map(|x| x.as_str().map_or_else(|| compact(x), str::to_owned))
            .collect(),
        Value::Null => vec![],
        other => vec![compact(other)],
    }
}

fn principals(trust: &Value) -> String {
    let mut out = BTreeSet::new();
    for st in trust["Statement"].as_array().into_iter().flatten() {
        if let Some(p) = st["Principal"].as_object() {
            for v in p.values() {
                out.extend(as_list(v));
            }
        }
    }
    out.into_iter().collect::<Vec<_>>().join(", ")
}

/// A role's inline policy, one line per statement.
fn statements(role: &RolePlan) -> Vec<String> {
    role.policy["Statement"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|st| {
            let mut line = format!(
                "{} {} on {}",
                st["Effect"].as_str().unwrap_or("Allow"),
                as_list(&st["Action"]).join(", "),
                as_list(&st["Resource"]).join(", ")
            );
            if let Some(sid) = st["Sid"].as_str() {
                line = format!("[{sid}] {line}");
            }
            if !st["Condition"].is_null() {
                line.push_str(&format!(" when {}", compact(&st["Condition"])));
            }
            line
        })
        .collect()
}

fn owner_title(o: &Owner) -> String {
    match o {
        Owner::Pipeline => "Shared by the pipeline".into(),
        Owner::Function(n) => format!("Function {n}"),
        Owner::Workflow(n) => format!("Workflow {n}"),
        Owner::Schedule(n) => format!("Schedule {n}"),
    }
}

/// The plan for people.
pub fn text(checked: &Checked, setup: &Setup) -> String {
    let id = &checked.id;
    let list = resources(&checked.plan);
    let mut out = format!(
        "DataPipeline {}/{}: {} AWS resources in account {}, region {}\n",
        id.namespace,
        id.name,
        list.len(),
        id.account,
        id.region
    );
    if !setup.knows_bucket_names && !checked.plan.buckets.is_empty() {
        out.push_str(
            "note: bucket names end in a hash of the installation's secret; set \
             SLUICE_INSTALLATION_ID to see the installation's names\n",
        );
    }
    let mut owners: Vec<&Owner> = list.iter().map(|r| &r.owner).collect();
    owners.sort();
    owners.dedup();
    for owner in owners {
        out.push_str(&format!("\n{}\n", owner_title(owner)));
        for r in list.iter().filter(|r| &r.owner == owner) {
            out.push_str(&format!("  {:<27} {} ({})\n", r.kind, r.id, r.logical));
            for s in &r.settings {
                out.push_str(&format!("      {s}\n"));
            }
            for s in &r.statements {
                out.push_str(&format!("      grants: {s}\n"));
            }
        }
    }
    for w in &checked.warnings {
        out.push_str(&format!("\nwarning: {w}\n"));
    }
    out
}

/// `plan -o json`.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct PlanJson<'a> {
    namespace: &'a str,
    name: &'a str,
    account: &'a str,
    region: &'a str,
    resources: Vec<Resource>,
    warnings: &'a [String],
    #[serde(skip_serializing_if = "Option::is_none")]
    changes: Option<Vec<ChangeJson>>,
}

/// One line of `plan --live`.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct ChangeJson {
    /// `create`, `update`, `adopt`, `delete`, `conflict` or `unchanged`.
    pub action: &'static str,
    /// The resource's kind.
    pub kind: &'static str,
    /// Its AWS id.
    pub id: String,
    /// Its logical name.
    pub logical: String,
    /// What differs, `field: have → want`, or why it conflicts.
    pub details: Vec<String>,
}

fn single(args: &Args, setup: &Setup) -> Result<Checked, String> {
    let manifest = check::one_pipeline(load::read(&args.files)?, "plan")?;
    check::check_or_explain(&manifest, setup, args)
}

/// Runs `plan`.
pub fn run(
    args: &Args,
    setup: &Setup,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Outcome, String> {
    if args.live {
        return live::run(args, setup, env);
    }
    let checked = single(args, setup)?;
    let stdout = match args.output.unwrap_or(Output::Text) {
        Output::Text => text(&checked, setup),
        Output::Json => json(&checked, None)?,
        other => return Err(format!("plan prints text or json, not {other:?}")),
    };
    Ok(Outcome { stdout, code: OK })
}

fn json(checked: &Checked, changes: Option<Vec<ChangeJson>>) -> Result<String, String> {
    let doc = PlanJson {
        namespace: &checked.id.namespace,
        name: &checked.id.name,
        account: &checked.id.account,
        region: &checked.id.region,
        resources: resources(&checked.plan),
        warnings: &checked.warnings,
        changes,
    };
    let mut s = serde_json::to_string_pretty(&doc).map_err(|e| e.to_string())?;
    s.push('\n');
    Ok(s)
}

/// What `plan --live` found, for people.
pub fn changes_text(checked: &Checked, changes: &[ChangeJson], notes: &[String]) -> String {
    let id = &checked.id;
    let mut out = format!(
        "DataPipeline {}/{} against account {}, region {}:\n",
        id.namespace, id.name, id.account, id.region
    );
    let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
    for c in changes {
        *counts.entry(c.action).or_default() += 1;
        if c.action == "unchanged" {
            continue;
        }
        let sign = match c.action {
            "create" => "+",
            "delete" => "-",
            "conflict" => "!",
            _ => "~",
        };
        out.push_str(&format!(
            "  {sign} {:<9} {:<27} {} ({})\n",
            c.action, c.kind, c.id, c.logical
        ));
        for d in &c.details {
            out.push_str(&format!("        {d}\n"));
        }
    }
    let n = |a: &str| counts.get(a).copied().unwrap_or(0);
    out.push_str(&format!(
        "{} to create, {} to update, {} to adopt, {} to delete, {} in conflict, {} unchanged\n",
        n("create"),
        n("update"),
        n("adopt"),
        n("delete"),
        n("conflict"),
        n("unchanged")
    ));
    for note in notes {
        out.push_str(&format!("note: {note}\n"));
    }
    out
}

/// The exit code of `plan --live`.
pub fn live_code(changes: &[ChangeJson]) -> u8 {
    if changes.iter().any(|c| c.action == "conflict") {
        INVALID
    } else if changes.iter().any(|c| c.action != "unchanged") {
        CHANGES
    } else {
        OK
    }
}

/// One previewed resource as a line of the diff.
pub fn change_of(p: &crate::reconcile::Previewed) -> ChangeJson {
    let drift = |d: &[crate::aws::Drift]| {
        d.iter()
            .map(|d| format!("{}: {} → {}", d.field, d.have, d.want))
            .collect()
    };
    let (action, details) = match &p.preview {
        Preview::Unchanged => ("unchanged", vec![]),
        Preview::Create => ("create", vec![]),
        Preview::Update(d) => ("update", drift(d)),
        Preview::Adopt(d) => ("adopt", drift(d)),
        Preview::Conflict(why) => ("conflict", vec![why.clone()]),
    };
    ChangeJson {
        action,
        kind: p.kind.as_str(),
        id: p.id.clone(),
        logical: p.logical.clone(),
        details,
    }
}

mod account;
mod live;

#[cfg(test)]
mod tests;
