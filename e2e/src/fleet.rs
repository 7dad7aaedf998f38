//! A fleet of pipelines, as the fleet test and the fleet benchmark drive
//! it: N pipelines made from the samples in turn, created at once with the
//! real kubectl, watched until every one is Ready (noting any that was ever
//! Stalled), and the AWS resources they own listed from the emulator to
//! prove that nothing is duplicated, orphaned or missing.

use std::{
    collections::{BTreeMap, BTreeSet},
    time::{Duration, Instant},
};

use crate::{Operator, kubectl, kubectl_ok, kubectl_stdin_ok, manifest_as_json, sample_manifest};

/// The samples a fleet is made of, in turn.
pub const SAMPLES: [&str; 5] = [
    "event-triggered.yaml",
    "fan-out.yaml",
    "orchestrated.yaml",
    "periodic-batch.yaml",
    "stream.yaml",
];

/// `n` pipeline manifests (JSON), the samples in turn, named
/// `p0000-event-triggered`, `p0001-fan-out`...
pub fn manifests(n: usize) -> Vec<serde_json::Value> {
    let samples: Vec<serde_json::Value> = SAMPLES
        .iter()
        .map(|s| manifest_as_json(&sample_manifest(s)))
        .collect();
    (0..n)
        .map(|i| {
            let mut doc = samples[i % samples.len()].clone();
            let base = SAMPLES[i % SAMPLES.len()].trim_end_matches(".yaml");
            doc["metadata"] = serde_json::json!({ "name": format!("p{i:04}-{base}") });
            doc
        })
        .collect()
}

/// Empties the emulator (`/moto-api/reset`) between benchmark runs.
pub fn reset_moto(moto: &str) {
    let out = std::process::Command::new("curl")
        .args(["-sf", "-X", "POST", &format!("{moto}/moto-api/reset")])
        .output()
        .expect("curl");
    assert!(out.status.success(), "moto reset failed");
}

/// Creates every manifest in `ns` with one kubectl call.
pub fn create(ns: &str, manifests: &[serde_json::Value]) {
    let list = serde_json::json!({"apiVersion": "v1", "kind": "List", "items": manifests});
    kubectl_stdin_ok(&["create", "-n", ns, "-f", "-"], &list.to_string());
}

/// One pipeline as a poll saw it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Seen {
    /// Name.
    pub name: String,
    /// Ready is True for the current generation.
    pub ready: bool,
    /// Stalled is True.
    pub stalled: bool,
    /// The Reconciling condition's reason, if True.
    pub reconciling: Option<String>,
}

/// Every pipeline of `ns`, read in one call.
pub fn poll(ns: &str) -> Vec<Seen> {
    let template = concat!(
        r#"{range .items[*]}{.metadata.name}{"\t"}{.metadata.generation}{"\t"}"#,
        r#"{.status.conditions[?(@.type=="Ready")].status}{"\t"}"#,
        r#"{.status.conditions[?(@.type=="Ready")].observedGeneration}{"\t"}"#,
        r#"{.status.conditions[?(@.type=="Stalled")].status}{"\t"}"#,
        r#"{.status.conditions[?(@.type=="Reconciling")].reason}{"\n"}{end}"#
    );
    let out = kubectl(&["get", "dp", "-n", ns, "-o", &format!("jsonpath={template}")]);
    if !out.status.success() {
        return Vec::new();
    }
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|line| {
            let f: Vec<&str> = line.split('\t').collect();
            (f.len() == 6).then(|| Seen {
                name: f[0].to_owned(),
                ready: f[2] == "True" && f[1] == f[3],
                stalled: f[4] == "True",
                reconciling: (!f[5].is_empty()).then(|| f[5].to_owned()),
            })
        })
        .collect()
}

/// What watching a fleet converge saw.
#[derive(Clone, Debug, Default)]
pub struct Convergence {
    /// Pipelines ever seen Stalled.
    pub stalled: BTreeSet<String>,
    /// Reasons of Reconciling seen, with how many polls saw each.
    pub reconciling_reasons: BTreeMap<String, u64>,
    /// Time until every pipeline was Ready.
    pub elapsed: Duration,
}

/// Polls `ns` about every 500 ms until all `n` pipelines are Ready, calling
/// `each` with the number Ready after every poll (the benchmark restarts
/// the operator from there). Panics after `limit`, with the operator log.
pub fn wait_ready(
    ns: &str,
    n: usize,
    limit: Duration,
    op: &mut Operator,
    mut each: impl FnMut(usize, &mut Operator),
) -> Convergence {
    let started = Instant::now();
    let mut seen = Convergence::default();
    loop {
        let pipelines = poll(ns);
        let ready = pipelines.iter().filter(|p| p.ready).count();
        for p in &pipelines {
            if p.stalled {
                seen.stalled.insert(p.name.clone());
            }
            if let Some(reason) = &p.reconciling {
                *seen.reconciling_reasons.entry(reason.clone()).or_default() += 1;
            }
        }
        if ready == n {
            seen.elapsed = started.elapsed();
            return seen;
        }
        assert!(
            started.elapsed() < limit,
            "{ready} of {n} Ready after {limit:?}; operator log:\n{}",
            op.log_tail()
        );
        each(ready, op);
        std::thread::sleep(Duration::from_millis(500));
    }
}

/// Warning events in `ns`: `(reason, message)`.
pub fn warnings(ns: &str) -> Vec<(String, String)> {
    let raw = kubectl_ok(&[
        "get",
        "events",
        "-n",
        ns,
        "--field-selector",
        "type=Warning",
        "-o",
        "json",
    ]);
    let doc: serde_json::Value = serde_json::from_str(&raw).expect("events JSON");
    doc["items"]
        .as_array()
        .map(|items| {
            items
                .iter()
                .map(|e| {
                    let text = |k: &str| e[k].as_str().unwrap_or_default().to_owned();
                    (text("reason"), text("message") + &text("note"))
                })
                .collect()
        })
        .unwrap_or_default()
}

/// `(kind, id)` of every inventory entry of every pipeline in `ns`.
pub fn inventories(ns: &str) -> BTreeSet<(String, String)> {
    let raw = kubectl_ok(&["get", "dp", "-n", ns, "-o", "json"]);
    let doc: serde_json::Value = serde_json::from_str(&raw).expect("pipelines JSON");
    let mut out = BTreeSet::new();
    for dp in doc["items"].as_array().into_iter().flatten() {
        for e in dp["status"]["inventory"].as_array().into_iter().flatten() {
            out.insert((
                e["kind"].as_str().unwrap_or_default().to_owned(),
                e["id"].as_str().unwrap_or_default().to_owned(),
            ));
        }
    }
    out
}

/// What the emulator holds under a name prefix, listed with the SDK: the
/// named resources of each kind, and the event source mappings by
/// (function, source) with how many there are of each.
#[derive(Clone, Debug, Default)]
pub struct InAws {
    /// `(kind, name)` as the inventory names kinds.
    pub named: BTreeSet<(String, String)>,
    /// Event source mappings per (function, source ARN).
    pub mappings: BTreeMap<(String, String), usize>,
}

/// Lists everything under `prefix` in the emulator.
pub async fn in_aws(sdk: &aws_config::SdkConfig, prefix: &str) -> InAws {
    let mut out = InAws::default();
    let add = |out: &mut InAws, kind: &str, name: &str| {
        if name.starts_with(prefix) {
            out.named.insert((kind.to_owned(), name.to_owned()));
        }
    };
    let lambda = aws_sdk_lambda::Client::new(sdk);
    let mut functions = lambda.list_functions().into_paginator().send();
    let mut mapping_functions = Vec::new();
    while let Some(page) = functions.next().await {
        for f in page.expect("functions").functions() {
            let name = f.function_name().unwrap_or_default();
            add(&mut out, "Lambda::Function", name);
            mapping_functions.push(name.to_owned());
        }
    }
    let iam = aws_sdk_iam::Client::new(sdk);
    let mut roles = iam.list_roles().into_paginator().send();
    while let Some(page) = roles.next().await {
        for r in page.expect("roles").roles() {
            add(&mut out, "IAM::Role", r.role_name());
        }
    }
    let s3 = crate::s3(sdk);
    for b in s3.list_buckets().send().await.expect("buckets").buckets() {
        let name = b.name().unwrap_or_default();
        // The code bucket is the account's, not a pipeline's.
        if !crate::is_code_bucket(prefix, name) {
            add(&mut out, "S3::Bucket", name);
        }
    }
    let sqs = aws_sdk_sqs::Client::new(sdk);
    let mut queues = sqs
        .list_queues()
        .queue_name_prefix(prefix)
        .max_results(1000)
        .into_paginator()
        .send();
    while let Some(page) = queues.next().await {
        for url in page.expect("queues").queue_urls() {
            add(
                &mut out,
                "SQS::Queue",
                url.rsplit('/').next().unwrap_or_default(),
            );
        }
    }
    let kinesis = aws_sdk_kinesis::Client::new(sdk);
    for s in kinesis
        .list_streams()
        .limit(10_000)
        .send()
        .await
        .expect("streams")
        .stream_names()
    {
        add(&mut out, "Kinesis::Stream", s);
    }
    let dynamodb = aws_sdk_dynamodb::Client::new(sdk);
    let mut tables = dynamodb.list_tables().into_paginator().send();
    while let Some(page) = tables.next().await {
        for t in page.expect("tables").table_names() {
            add(&mut out, "DynamoDB::Table", t);
        }
    }
    let sfn = aws_sdk_sfn::Client::new(sdk);
    let mut machines = sfn.list_state_machines().into_paginator().send();
    while let Some(page) = machines.next().await {
        for m in page.expect("state machines").state_machines() {
            if m.name().starts_with(prefix) {
                out.named.insert((
                    "StepFunctions::StateMachine".to_owned(),
                    m.state_machine_arn().to_owned(),
                ));
            }
        }
    }
    let events = aws_sdk_eventbridge::Client::new(sdk);
    // ListEventBuses has no paginator: at most 100 a page, then NextToken.
    let mut next = None;
    loop {
        let page = events
            .list_event_buses()
            .name_prefix(prefix)
            .limit(100)
            .set_next_token(next)
            .send()
            .await
            .expect("buses");
        for b in page.event_buses() {
            add(&mut out, "Events::EventBus", b.name().unwrap_or_default());
        }
        next = page.next_token().map(str::to_owned);
        if next.is_none() {
            break;
        }
    }
    let scheduler = aws_sdk_scheduler::Client::new(sdk);
    let mut schedules = scheduler
        .list_schedules()
        .name_prefix(prefix)
        .into_paginator()
        .send();
    while let Some(page) = schedules.next().await {
        for s in page.expect("schedules").schedules() {
            add(
                &mut out,
                "Scheduler::Schedule",
                s.name().unwrap_or_default(),
            );
        }
    }
    for function in mapping_functions {
        if !function.starts_with(prefix) {
            continue;
        }
        let mut pages = lambda
            .list_event_source_mappings()
            .function_name(&function)
            .into_paginator()
            .send();
        while let Some(page) = pages.next().await {
            for m in page.expect("mappings").event_source_mappings() {
                *out.mappings
                    .entry((
                        function.clone(),
                        m.event_source_arn().unwrap_or_default().to_owned(),
                    ))
                    .or_default() += 1;
            }
        }
    }
    out
}

/// What is wrong with a converged fleet's AWS resources: resources under
/// its prefix that no pipeline's inventory lists (orphans), inventory
/// entries of the listed kinds missing from AWS, and event source mappings
/// made twice. Empty when all is well.
pub fn problems(aws: &InAws, inventory: &BTreeSet<(String, String)>) -> Vec<String> {
    let kinds: BTreeSet<&str> = aws.named.iter().map(|(k, _)| k.as_str()).collect();
    let mut out = Vec::new();
    for (kind, id) in &aws.named {
        if !inventory.contains(&(kind.clone(), id.clone())) {
            out.push(format!("orphan: {kind} {id} is in no pipeline's inventory"));
        }
    }
    for (kind, id) in inventory {
        if kinds.contains(kind.as_str()) && !aws.named.contains(&(kind.clone(), id.clone())) {
            out.push(format!(
                "missing: {kind} {id} is inventoried but not in AWS"
            ));
        }
    }
    for ((function, source), n) in &aws.mappings {
        if *n > 1 {
            out.push(format!(
                "duplicate: {n} event source mappings from {source} to {function}"
            ));
        }
    }
    let mapped = inventory
        .iter()
        .filter(|(k, _)| k == "Lambda::EventSourceMapping")
        .count();
    let found: usize = aws.mappings.values().sum();
    if mapped != found {
        out.push(format!(
            "event source mappings: {found} in AWS, {mapped} inventoried"
        ));
    }
    out
}

/// The operator's histogram `name` as `(upper bound, cumulative count)`
/// summed over its label sets, skipping series whose labels contain any of
/// `skip`.
pub fn histogram(op: &Operator, name: &str, skip: &[&str]) -> Vec<(f64, f64)> {
    let (_, body) = op.get("/metrics").expect("metrics");
    let mut buckets: BTreeMap<u64, (f64, f64)> = BTreeMap::new();
    for line in body.lines() {
        let Some(rest) = line.strip_prefix(&format!("{name}_bucket{{")) else {
            continue;
        };
        if skip.iter().any(|s| rest.contains(s)) {
            continue;
        }
        let Some(le) = rest.split("le=\"").nth(1).and_then(|r| r.split('"').next()) else {
            continue;
        };
        let bound = if le == "+Inf" {
            f64::INFINITY
        } else {
            le.parse().unwrap_or(f64::INFINITY)
        };
        let count: f64 = line
            .rsplit(' ')
            .next()
            .and_then(|v| v.parse().ok())
            .unwrap_or(0.0);
        let e = buckets.entry(bound.to_bits()).or_insert((bound, 0.0));
        e.1 += count;
    }
    let mut out: Vec<(f64, f64)> = buckets.into_values().collect();
    out.sort_by(|a, b| a.0.total_cmp(&b.0));
    out
}

/// The upper bound of the bucket holding quantile `q` of a cumulative
/// histogram: "at most this".
pub fn quantile(histogram: &[(f64, f64)], q: f64) -> f64 {
    let total = histogram.last().map_or(0.0, |b| b.1);
    histogram
        .iter()
        .find(|(_, c)| *c >= q * total)
        .map_or(f64::NAN, |b| b.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn problems_name_orphans_missing_and_duplicates() {
        let mut aws = InAws::default();
        aws.named.insert(("Lambda::Function".into(), "p-a".into()));
        aws.named
            .insert(("Lambda::Function".into(), "p-orphan".into()));
        aws.mappings.insert(("p-a".into(), "arn:q".into()), 2);
        let inventory: BTreeSet<(String, String)> = [
            ("Lambda::Function".to_owned(), "p-a".to_owned()),
            ("Lambda::Function".to_owned(), "p-gone".to_owned()),
            ("Lambda::EventSourceMapping".to_owned(), "uuid".to_owned()),
        ]
        .into();
        let found = problems(&aws, &inventory);
        assert!(
            found
                .iter()
                .any(|p| p.contains("orphan: Lambda::Function p-orphan"))
        );
        assert!(
            found
                .iter()
                .any(|p| p.contains("missing: Lambda::Function p-gone"))
        );
        assert!(found.iter().any(|p| p.contains("duplicate: 2")));
        assert!(found.iter().any(|p| p.contains("2 in AWS, 1 inventoried")));
        assert_eq!(found.len(), 4, "{found:?}");
    }

    #[test]
    fn quantiles_are_the_bucket_bounds() {
        let h = [
            (0.1, 50.0),
            (0.5, 98.0),
            (1.0, 100.0),
            (f64::INFINITY, 100.0),
        ];
        assert_eq!(quantile(&h, 0.5), 0.1);
        assert_eq!(quantile(&h, 0.99), 1.0);
    }
}
