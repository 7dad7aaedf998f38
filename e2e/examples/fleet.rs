//! The fleet benchmark (`make bench-fleet`): for N = 10, 100 and 1,000
//! pipelines (the samples in turn), created at once on the real
//! kube-apiserver and converged by the operator binary into the emulator
//! behind the AWS quota shaper at AWS's published quotas
//! (`sluice_e2e::shaper`), it prints the time to all Ready beside the
//! quota-limited lower bound for the same calls, calls per pipeline by
//! operation, throttled calls, reconcile latency, Kubernetes writes, one
//! steady-state resync's reads and writes, the operator's memory, and how
//! many requests per second the emulator itself serves here. For the
//! largest N the operator is killed half-way and started again, and the
//! fleet's AWS resources are then checked for duplicates, orphans and
//! gaps.
//!
//! usage: fleet [N...]   (in an environment of `scripts/localenv.sh up`
//! started with `SLUICE_MOTO_LAUNCHER=e2e/moto/fleet_launcher.py`)

use std::{
    collections::BTreeMap,
    fmt::Write as _,
    time::{Duration, Instant},
};

use sluice_e2e::{
    Namespace, Operator, fleet, install_crd, sdk,
    shaper::{Figures, Shaper},
};

#[derive(Debug, Default)]
struct Row {
    n: usize,
    ready: Duration,
    bound: f64,
    bound_bucket: String,
    calls: Figures,
    reconcile_p50: f64,
    reconcile_p99: f64,
    kube_writes: u64,
    resync_seconds: f64,
    resync_reads: u64,
    resync_writes: u64,
    resync_kube_writes: u64,
    peak_rss_mib: f64,
    settled_rss_mib: f64,
    moto_probe_rps: f64,
    moto_latency_ms: f64,
    restarted_at: Option<usize>,
    problems: Vec<String>,
    stalled: usize,
    warnings: Vec<(String, String)>,
}

fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

/// Requests per second moto answers on its own: 8 clients calling STS
/// `GetCallerIdentity` and IAM `GetRole` (absent) for 5 seconds, straight
/// to the emulator.
async fn moto_rps(sdk: &aws_config::SdkConfig) -> f64 {
    let started = Instant::now();
    let limit = Duration::from_secs(5);
    let tasks: Vec<_> = (0..8)
        .map(|i| {
            let sts = aws_sdk_sts::Client::new(sdk);
            let iam = aws_sdk_iam::Client::new(sdk);
            tokio::spawn(async move {
                let mut n = 0u64;
                while started.elapsed() < limit {
                    if i % 2 == 0 {
                        let _ = sts.get_caller_identity().send().await;
                    } else {
                        let _ = iam.get_role().role_name("absent").send().await;
                    }
                    n += 1;
                }
                n
            })
        })
        .collect();
    let mut total = 0;
    for t in tasks {
        total += t.await.unwrap_or(0);
    }
    total as f64 / started.elapsed().as_secs_f64()
}

async fn run(n: usize, restart: bool, moto: &str, sdk: &aws_config::SdkConfig) -> Row {
    fleet::reset_moto(moto);
    let mut row = Row {
        n,
        ..Row::default()
    };
    row.moto_probe_rps = moto_rps(sdk).await;
    // The fleet's namespace is a platform's large tenant: a SluicePolicy of
    // its own lets it hold the whole fleet (the default allows 25).
    let policy_name = format!("fleet-{}", sluice_e2e::token());
    let _policy = sluice_e2e::Policy::apply(
        &policy_name,
        serde_json::json!({"limits": {"pipelinesPerNamespace": n + 10}}),
    );
    let ns = Namespace::under_policy(&policy_name);
    let shaper = Shaper::start(moto, 1.0);
    // Long enough for one resync of the fleet to fit AWS's read quotas.
    let resync = if n >= 500 { 300 } else { 60 };
    let env = |prefix: Option<&str>| {
        let mut env = vec![
            ("AWS_ENDPOINT_URL", shaper.url.clone()),
            ("SLUICE_RESYNC_SECONDS", resync.to_string()),
            ("SLUICE_HEALTH_INTERVAL_SECONDS", "0".to_owned()),
        ];
        if let Some(p) = prefix {
            env.push(("SLUICE_NAME_PREFIX", p.to_owned()));
        }
        env
    };
    let start = |env: &[(&str, String)]| {
        let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
        Operator::start_process_with(&[&ns.0], &env)
    };
    let mut op = start(&env(None));
    let prefix = op.prefix.clone();
    let manifests = fleet::manifests(n);
    eprintln!("fleet {n}: creating in {} (prefix {prefix})", ns.0);
    let created = Instant::now();
    fleet::create(&ns.0, &manifests);
    let mut peak_kib = 0u64;
    let mut kube_writes_before_kill = 0u64;
    let mut reconciles_before_kill: Vec<(f64, f64)> = Vec::new();
    let mut last_report = Instant::now();
    let converged = fleet::wait_ready(&ns.0, n, Duration::from_secs(7200), &mut op, |ready, op| {
        peak_kib = peak_kib.max(op.peak_rss_kib());
        if last_report.elapsed() > Duration::from_secs(30) {
            eprintln!(
                "fleet {n}: {ready} Ready after {:.0} s, RSS {:.1} MiB",
                created.elapsed().as_secs_f64(),
                mib(op.rss_kib())
            );
            last_report = Instant::now();
        }
        if restart && row.restarted_at.is_none() && ready >= n / 2 {
            eprintln!("fleet {n}: killing the operator with {ready} Ready");
            kube_writes_before_kill = op.counter("sluice_kubernetes_writes_total", "");
            reconciles_before_kill =
                fleet::histogram(op, "sluice_reconcile_duration_seconds", &["resumed"]);
            op.kill();
            *op = start(&env(Some(&prefix)));
            row.restarted_at = Some(ready);
        }
    });
    row.ready = created.elapsed();
    peak_kib = peak_kib.max(op.peak_rss_kib());
    row.peak_rss_mib = mib(peak_kib);
    row.stalled = converged.stalled.len();
    row.warnings = fleet::warnings(&ns.0);
    row.calls = shaper.figures();
    (row.bound, row.bound_bucket) = row.calls.lower_bound(1.0);
    let mut hist = fleet::histogram(&op, "sluice_reconcile_duration_seconds", &["resumed"]);
    for (i, (_, c)) in hist.iter_mut().enumerate() {
        *c += reconciles_before_kill.get(i).map_or(0.0, |b| b.1);
    }
    row.reconcile_p50 = fleet::quantile(&hist, 0.5);
    row.reconcile_p99 = fleet::quantile(&hist, 0.99);
    row.kube_writes = kube_writes_before_kill + op.counter("sluice_kubernetes_writes_total", "");
    eprintln!(
        "fleet {n}: all Ready in {:.1} s; checking the AWS resources",
        row.ready.as_secs_f64()
    );
    let in_aws = fleet::in_aws(sdk, &prefix).await;
    row.problems = fleet::problems(&in_aws, &fleet::inventories(&ns.0));

    // One steady-state resync: until every pipeline was read back once.
    let ready_reconciles = || op.counter("sluice_reconciles_total", "outcome=\"ready\"");
    let kube = || op.counter("sluice_kubernetes_writes_total", "");
    let (before, kube_before, reconciles) = (shaper.figures(), kube(), ready_reconciles());
    let started = Instant::now();
    eprintln!("fleet {n}: waiting for one resync of every pipeline (period {resync} s)");
    op.wait_until(
        "one resync of every pipeline",
        Duration::from_secs(resync * 4),
        || ready_reconciles() >= reconciles + n as u64,
    );
    let window = shaper.figures().since(&before);
    row.resync_seconds = started.elapsed().as_secs_f64();
    row.resync_reads = window.reads;
    row.resync_writes = window.writes;
    row.resync_kube_writes = kube() - kube_before;
    row.settled_rss_mib = mib(op.rss_kib());
    row.moto_latency_ms =
        1000.0 * row.calls.upstream_seconds / (row.calls.reads + row.calls.writes).max(1) as f64;
    drop(op);
    row
}

fn print(rows: &[Row]) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "\n| N | all Ready | quota lower bound (bucket) | ratio | AWS calls / pipeline | throttled | reconcile p50 / p99 | Kubernetes writes / pipeline | one resync: reads / writes (K8s writes) | operator RSS peak / settled | moto alone |"
    );
    let _ = writeln!(out, "|---|---|---|---|---|---|---|---|---|---|---|");
    for r in rows {
        let _ = writeln!(
            out,
            "| {} | {:.1} s{} | {:.1} s ({}) | {:.2} | {:.1} | {} | ≤ {} s / ≤ {} s | {:.1} | {} / {} ({}) in {:.0} s | {:.1} / {:.1} MiB | {:.0} req/s, {:.1} ms per call in the run |",
            r.n,
            r.ready.as_secs_f64(),
            r.restarted_at
                .map(|k| format!(" (restarted at {k} Ready)"))
                .unwrap_or_default(),
            r.bound,
            r.bound_bucket,
            r.ready.as_secs_f64() / r.bound.max(0.001),
            (r.calls.reads + r.calls.writes) as f64 / r.n as f64,
            r.calls.throttled(),
            r.reconcile_p50,
            r.reconcile_p99,
            r.kube_writes as f64 / r.n as f64,
            r.resync_reads,
            r.resync_writes,
            r.resync_kube_writes,
            r.resync_seconds,
            r.peak_rss_mib,
            r.settled_rss_mib,
            r.moto_probe_rps,
            r.moto_latency_ms,
        );
    }
    let mut ops: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (i, r) in rows.iter().enumerate() {
        for (op, count) in &r.calls.operations {
            let cells = ops
                .entry(op.clone())
                .or_insert_with(|| vec!["".into(); rows.len()]);
            cells[i] = format!("{:.2}", *count as f64 / r.n as f64);
        }
    }
    let _ = writeln!(
        out,
        "\nAWS calls per pipeline by operation (let through by the shaper):\n"
    );
    let _ = writeln!(
        out,
        "| operation | {} |",
        rows.iter()
            .map(|r| format!("N = {}", r.n))
            .collect::<Vec<_>>()
            .join(" | ")
    );
    let _ = writeln!(out, "|---|{}", "---|".repeat(rows.len()));
    for (op, cells) in ops {
        let _ = writeln!(out, "| {op} | {} |", cells.join(" | "));
    }
    let _ = writeln!(out, "\nBy quota bucket (calls let through / throttled):\n");
    for r in rows {
        let buckets: Vec<String> = r
            .calls
            .buckets
            .iter()
            .map(|(k, b)| format!("{k} {}/{}", b.passed, b.throttled))
            .collect();
        let _ = writeln!(out, "- N = {}: {}", r.n, buckets.join(", "));
    }
    for r in rows {
        let _ = writeln!(
            out,
            "- N = {}: {} Stalled, {} Warning events {:?}, {} problems with the AWS resources{}",
            r.n,
            r.stalled,
            r.warnings.len(),
            r.warnings.iter().take(5).collect::<Vec<_>>(),
            r.problems.len(),
            if r.problems.is_empty() {
                String::new()
            } else {
                format!(": {:?}", &r.problems[..r.problems.len().min(10)])
            }
        );
    }
    out
}

#[tokio::main]
async fn main() {
    let sizes: Vec<usize> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    let sizes = if sizes.is_empty() {
        vec![10, 100, 1000]
    } else {
        sizes
    };
    let moto = std::env::var("AWS_ENDPOINT_URL").expect("AWS_ENDPOINT_URL (scripts/localenv.sh)");
    install_crd();
    let sdk = sdk().await;
    let largest = sizes.iter().copied().max().unwrap_or(0);
    let mut rows = Vec::new();
    for n in sizes {
        let row = run(n, n == largest && n >= 20, &moto, &sdk).await;
        eprintln!("{}", print(std::slice::from_ref(&row)));
        rows.push(row);
    }
    println!(
        "operator: {}; moto: the fleet launcher (no deliveries), IAM enforcement {} (the benchmark measures the \
         operator and AWS's quotas, not the emulator's policy evaluator; make test runs \
         with IAM enforced)",
        std::env::var("SLUICE_OPERATOR_BIN").unwrap_or_default(),
        match std::env::var("SLUICE_HARNESS_IAM").as_deref() {
            Ok("enforce") => "on",
            _ => "off",
        }
    );
    println!("{}", print(&rows));
    if rows
        .iter()
        .any(|r| !r.problems.is_empty() || r.resync_writes > 0 || r.stalled > 0)
    {
        eprintln!("fleet: a property failed (see above)");
        std::process::exit(1);
    }
}
