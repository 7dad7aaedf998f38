//! Shards: three operator replicas share the pipelines of six namespaces
//! in six shards (`SLUICE_SHARDS`), each shard held by one replica through
//! its own Lease. Written as the failure it guards against: one replica
//! is killed with SIGKILL in the middle of the convergence; every pipeline
//! converges anyway, its shards go to the survivors, no pipeline's AWS
//! resources are changed by two replicas at once (each change is an Event
//! naming the replica that made it), and nothing is duplicated or
//! orphaned. Runs the replicas as processes on this host, so it needs no
//! image.

use std::{
    collections::{BTreeMap, BTreeSet},
    time::{Duration, Instant, SystemTime},
};

use serde_json::Value;
use sluice_e2e::{
    Namespace, Operator, assert_nothing_left, delete_pipeline, fleet, get_pipeline, install_crd,
    kubectl_ok, kubectl_stdin_ok, sample_manifest, sdk, token,
};

const SHARDS: usize = 6;
const NAMESPACES: usize = 6;
const PER_NAMESPACE: usize = 2;

fn replica(prefix: &str, namespaces: &[&str], lease_ns: &str, name: &str) -> Operator {
    Operator::start_process_with(
        namespaces,
        &[
            ("SLUICE_NAME_PREFIX", prefix),
            ("SLUICE_LEADER_ELECTION", "true"),
            ("SLUICE_LEASE_NAMESPACE", lease_ns),
            ("SLUICE_LEASE_NAME", "sluice-shards"),
            ("POD_NAME", name),
            ("SLUICE_SHARDS", "6"),
            ("SLUICE_HEALTH_INTERVAL_SECONDS", "0"),
        ],
    )
}

fn held(op: &Operator) -> u64 {
    op.series("sluice_shards_held").map_or(0, |v| v as u64)
}

/// This replica's parts of the accounts' quotas (`sluice_aws_quota_part`),
/// summed over accounts and regions (every pipeline here is in the
/// operator's own account and one region).
fn quota_part(op: &Operator) -> f64 {
    let (_, body) = op.get("/metrics").expect("metrics");
    body.lines()
        .filter(|l| l.starts_with("sluice_aws_quota_part{"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// Waits until the `live` replicas' parts of the account's quotas add up
/// to all of it (a replica whose shards hold no pipeline has none).
fn parts_add_up(live: &[&Operator]) -> Vec<f64> {
    wait_until(
        "the replicas' parts of the quotas adding up to 1",
        Duration::from_secs(30),
        || {
            let parts: Vec<f64> = live.iter().map(|op| quota_part(op)).collect();
            (parts.iter().sum::<f64>() - 1.0).abs() < 1e-6
        },
    );
    live.iter().map(|op| quota_part(op)).collect()
}

fn wait_until(what: &str, limit: Duration, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !check() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// The changes to AWS resources each replica published about pipeline
/// `ns/name`: replica → times (seconds since the epoch).
fn changes_by_replica(ns: &str, name: &str) -> BTreeMap<String, Vec<f64>> {
    let events: Value = serde_json::from_str(&kubectl_ok(&[
        "get",
        "events.events.k8s.io",
        "-n",
        ns,
        "-o",
        "json",
    ]))
    .expect("events");
    let mut out: BTreeMap<String, Vec<f64>> = BTreeMap::new();
    for e in events["items"].as_array().into_iter().flatten() {
        let changed = matches!(
            e["reason"].as_str(),
            Some("Created" | "Updated" | "Adopted" | "Deleted" | "DriftCorrected")
        );
        if !changed || e["regarding"]["name"] != name {
            continue;
        }
        let instance = e["reportingInstance"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        let when = e["eventTime"]
            .as_str()
            .or(e["series"]["lastObservedTime"].as_str())
            .and_then(|t| t.parse::<k8s_openapi::jiff::Timestamp>().ok())
            .map_or(0.0, |t| t.as_millisecond() as f64 / 1000.0);
        out.entry(instance).or_default().push(when);
    }
    out
}

/// Waits until pipeline `ns/name` meets kubectl's `--for` condition `what`.
fn wait_for(ns: &str, name: &str, what: &str, timeout: &str) {
    let wait = sluice_e2e::kubectl(&[
        "wait",
        "-n",
        ns,
        &format!("--for={what}"),
        &format!("dp/{name}"),
        &format!("--timeout={timeout}"),
    ]);
    assert!(
        wait.status.success(),
        "{ns}/{name} not {what}: {:#}",
        get_pipeline(ns, name)["status"]
    );
}

fn now_seconds() -> f64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .expect("clock")
        .as_secs_f64()
}

/// The replicas that changed a pipeline did so one after the other: their
/// spans of changes do not overlap.
fn one_writer_at_a_time(ns: &str, name: &str, by: &BTreeMap<String, Vec<f64>>) {
    let mut spans: Vec<(f64, f64, &String)> = by
        .iter()
        .map(|(r, t)| {
            let first = t.iter().copied().fold(f64::INFINITY, f64::min);
            let last = t.iter().copied().fold(0.0, f64::max);
            (first, last, r)
        })
        .collect();
    spans.sort_by(|a, b| a.0.total_cmp(&b.0));
    for pair in spans.windows(2) {
        assert!(
            pair[0].1 <= pair[1].0,
            "{ns}/{name}: {} changed it until {}, {} from {}: two replicas at once",
            pair[0].2,
            pair[0].1,
            pair[1].2,
            pair[1].0
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_replica_killed_mid_convergence_hands_its_shards_over_and_no_pipeline_has_two_writers() {
    install_crd();
    let namespaces: Vec<Namespace> = (0..NAMESPACES).map(|_| Namespace::create()).collect();
    let names: Vec<&str> = namespaces.iter().map(|n| n.0.as_str()).collect();
    let lease_ns = Namespace::create();
    let prefix = format!("sh{}", &token()[..6]);
    let mut replicas: Vec<(String, Operator)> = (0..3)
        .map(|i| {
            let name = format!("replica-{i}");
            let op = replica(&prefix, &names, &lease_ns.0, &name);
            (name, op)
        })
        .collect();

    // Every shard held, each replica holding some.
    wait_until(
        "the six shards held by three replicas",
        Duration::from_secs(60),
        || {
            let counts: Vec<u64> = replicas.iter().map(|(_, op)| held(op)).collect();
            counts.iter().sum::<u64>() == SHARDS as u64 && counts.iter().all(|c| *c > 0)
        },
    );
    let before: Vec<u64> = replicas.iter().map(|(_, op)| held(op)).collect();
    println!("shards held before: {before:?}");

    // Two pipelines in each namespace at once: the fan-out sample (34
    // resources) and the event-triggered one.
    let samples = [
        ("fan-out", sample_manifest("fan-out.yaml")),
        ("event-triggered", sample_manifest("event-triggered.yaml")),
    ];
    let mut pipelines = Vec::new();
    for ns in &names {
        for (k, (sample, manifest)) in samples.iter().enumerate().take(PER_NAMESPACE) {
            let name = format!("p{k}");
            kubectl_stdin_ok(
                &["apply", "-n", ns, "-f", "-"],
                &manifest.replacen(&format!("name: {sample}"), &format!("name: {name}"), 1),
            );
            pipelines.push((ns.to_string(), name));
        }
    }

    // SIGKILL the replica holding the most shards once it has written.
    let (victim, _) = before
        .iter()
        .enumerate()
        .max_by_key(|(_, c)| **c)
        .expect("a replica");
    let victim_name = replicas[victim].0.clone();
    wait_until(
        "the victim's first AWS write",
        Duration::from_secs(60),
        || replicas[victim].1.aws_writes() > 0,
    );
    let killed_at = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .expect("clock")
        .as_secs_f64();
    let killed = Instant::now();
    replicas[victim].1.kill();
    // Mid-convergence: some of its pipelines were not Ready yet.
    let unfinished = pipelines
        .iter()
        .filter(|(ns, name)| {
            let dp = get_pipeline(ns, name);
            sluice_e2e::condition(&dp, "Ready").is_none_or(|c| c["status"] != "True")
        })
        .count();
    assert!(unfinished > 0, "every pipeline was Ready before the kill");
    println!(
        "{unfinished} of {} pipelines not Ready at the SIGKILL",
        pipelines.len()
    );

    // The survivors take the dead replica's shards once its member Lease
    // and its shard Leases expired (15 s after its last renewal), and
    // every pipeline converges.
    let survivors: Vec<&Operator> = replicas
        .iter()
        .enumerate()
        .filter(|(i, _)| *i != victim)
        .map(|(_, (_, op))| op)
        .collect();
    wait_until(
        "the survivors holding every shard",
        Duration::from_secs(60),
        || survivors.iter().map(|op| held(op)).sum::<u64>() == SHARDS as u64,
    );
    let handed_over = killed.elapsed();
    println!(
        "shards held after: {:?}, {handed_over:?} after the SIGKILL (lease 15 s, retry 2 s)",
        survivors.iter().map(|op| held(op)).collect::<Vec<_>>(),
    );
    assert!(
        handed_over < Duration::from_secs(15 + 2 * 2 + 3),
        "hand-over took {handed_over:?}: more than the lease duration, two retry periods and \
         the hand-back grace"
    );
    for (ns, name) in &pipelines {
        wait_for(ns, name, "condition=Ready", "180s");
    }
    println!(
        "all {} Ready {:?} after the SIGKILL",
        pipelines.len(),
        killed.elapsed()
    );
    // The survivors use the account's quotas between them, each its part
    // of the pipelines (not a fixed third each, of which the dead one's
    // would go unused).
    println!(
        "quota parts of the survivors: {:?}",
        parts_add_up(&survivors)
    );

    // No pipeline changed by two replicas at once: a pipeline changed by
    // the killed replica and by a survivor was changed by the survivor
    // only after the kill; every other pipeline by one replica.
    let mut two_writers = 0;
    for (ns, name) in &pipelines {
        // None when the killed replica made every resource but died
        // before publishing (its successor found them made and its own).
        let by = changes_by_replica(ns, name);
        let replicas_of: BTreeSet<&String> = by.keys().collect();
        if replicas_of.len() > 1 {
            two_writers += 1;
            assert_eq!(replicas_of.len(), 2, "{ns}/{name}: {by:?}");
            assert!(by.contains_key(&victim_name), "{ns}/{name}: {by:?}");
            let survivor_first = by
                .iter()
                .filter(|(r, _)| **r != victim_name)
                .flat_map(|(_, t)| t.iter().copied())
                .fold(f64::INFINITY, f64::min);
            let victim_last = by[&victim_name].iter().copied().fold(0.0, f64::max);
            one_writer_at_a_time(ns, name, &by);
            assert!(
                victim_last <= killed_at + 0.5 && survivor_first >= victim_last,
                "{ns}/{name}: the killed replica's last change at {victim_last}, a survivor's \
                 first at {survivor_first}, killed at {killed_at}"
            );
        }
    }
    println!("pipelines finished by a survivor after the kill: {two_writers}");

    // A new replica joins: it takes its share of the shards from the
    // survivors, which hand them back. Every pipeline is changed (memory)
    // as it joins; each change is made by one replica at a time.
    let joined_at = now_seconds();
    let joining = Instant::now();
    replicas.push((
        "replica-3".to_owned(),
        replica(&prefix, &names, &lease_ns.0, "replica-3"),
    ));
    for (ns, name) in &pipelines {
        kubectl_ok(&[
            "patch",
            "dp",
            name,
            "-n",
            ns,
            "--type=json",
            "-p",
            r#"[{"op": "replace", "path": "/spec/functions/0/memoryMiB", "value": 320}]"#,
        ]);
    }
    let live = |replicas: &[(String, Operator)]| -> Vec<u64> {
        replicas
            .iter()
            .enumerate()
            .filter(|(i, _)| *i != victim)
            .map(|(_, (_, op))| held(op))
            .collect()
    };
    wait_until(
        "the new replica holding its share",
        Duration::from_secs(60),
        || {
            let counts = live(&replicas);
            counts.iter().sum::<u64>() == SHARDS as u64 && counts.last().is_some_and(|c| *c > 0)
        },
    );
    println!(
        "shards held with a fourth replica: {:?}, {:?} after it started",
        live(&replicas),
        joining.elapsed()
    );
    for (ns, name) in &pipelines {
        wait_for(ns, name, "jsonpath={.status.observedGeneration}=2", "120s");
        wait_for(ns, name, "condition=Ready", "120s");
    }
    let four: Vec<&Operator> = replicas
        .iter()
        .enumerate()
        .filter(|(i, _)| *i != victim)
        .map(|(_, (_, op))| op)
        .collect();
    println!(
        "quota parts with a fourth replica: {:?}",
        parts_add_up(&four)
    );
    let mut moved = 0;
    for (ns, name) in &pipelines {
        let since: BTreeMap<String, Vec<f64>> = changes_by_replica(ns, name)
            .into_iter()
            .map(|(r, t)| {
                (
                    r,
                    t.into_iter()
                        .filter(|t| *t >= joined_at)
                        .collect::<Vec<_>>(),
                )
            })
            .filter(|(_, t)| !t.is_empty())
            .collect();
        assert!(
            !since.is_empty(),
            "{ns}/{name}: its memory change was not made"
        );
        if since.len() > 1 {
            moved += 1;
        }
        one_writer_at_a_time(ns, name, &since);
    }
    println!("pipelines whose change spanned a hand-back: {moved}");

    // No duplicate, orphaned or missing resource.
    let sdk = sdk().await;
    let in_aws = fleet::in_aws(&sdk, &prefix).await;
    let inventories: BTreeSet<(String, String)> =
        names.iter().flat_map(|ns| fleet::inventories(ns)).collect();
    let problems = fleet::problems(&in_aws, &inventories);
    assert!(problems.is_empty(), "{problems:#?}");

    let survivor = replicas
        .iter()
        .enumerate()
        .find(|(i, _)| *i != victim)
        .map(|(_, (_, op))| op)
        .expect("a survivor");
    for (ns, name) in &pipelines {
        delete_pipeline(ns, name, survivor);
    }
    assert_nothing_left(&sdk, &prefix).await;
}
