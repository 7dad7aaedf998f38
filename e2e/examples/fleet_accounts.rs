//! The multi-account fleet benchmark (`make bench-fleet-accounts`, part of
//! `make bench-fleet`): three accounts, each with N pipelines in four
//! namespaces that a SluicePolicy maps to a role in that account, converged
//! through the AWS quota shaper (buckets per account, as AWS meters them)
//! by one replica, then by three replicas sharing twelve shards. It prints
//! the time to all Ready beside the per-account quota-limited bound, the
//! reads of one resync per account, each account's effective resync period
//! (`sluice_resync_period_seconds`), the RSS of each replica, and checks
//! every account for duplicated, orphaned or missing resources.
//!
//! usage: fleet_accounts [N per account] [replica counts, e.g. 1,3]
//! (in an environment of `scripts/localenv.sh up` started with
//! `SLUICE_MOTO_LAUNCHER=e2e/moto/fleet_launcher.py`)

use std::{
    collections::{BTreeMap, BTreeSet},
    fmt::Write as _,
    time::{Duration, Instant},
};

use sluice_e2e::{Namespace, Operator, Policy, fleet, flow, install_crd, shaper::Shaper, token};

const ACCOUNTS: [&str; 3] = ["210000000001", "210000000002", "210000000003"];
const NAMESPACES_PER_ACCOUNT: usize = 4;
const SHARDS: &str = "12";
const RESYNC_SECONDS: u64 = 60;

#[derive(Debug, Default)]
struct Row {
    replicas: usize,
    per_account: usize,
    ready: Duration,
    bound: f64,
    bound_bucket: String,
    calls: u64,
    throttled: u64,
    resync_seconds: f64,
    resync: BTreeMap<String, (u64, u64)>,
    periods: BTreeMap<String, f64>,
    rss_mib: Vec<f64>,
    problems: Vec<String>,
}

fn ready_in(namespaces: &[Namespace]) -> usize {
    namespaces
        .iter()
        .map(|ns| fleet::poll(&ns.0).iter().filter(|p| p.ready).count())
        .sum()
}

async fn run(n: usize, replicas: usize, moto: &str) -> Row {
    fleet::reset_moto(moto);
    let prefix = format!("fa{}", &token()[..6]);
    let mut row = Row {
        replicas,
        per_account: n,
        ..Row::default()
    };
    // Per account: its role, a policy mapping four namespaces to it.
    let mut policies = Vec::new();
    let mut namespaces: Vec<(String, Vec<Namespace>)> = Vec::new();
    for account in ACCOUNTS {
        let role = flow::harness(
            "POST",
            &format!("iam/account-role?account={account}&prefix={prefix}"),
        )["roleArn"]
            .as_str()
            .expect("roleArn")
            .to_owned();
        let name = format!("{prefix}-{account}");
        policies.push(Policy::apply(
            &name,
            serde_json::json!({
                "account": {"roleArn": role},
                "limits": {"pipelinesPerNamespace": n + 10}
            }),
        ));
        let spaces = (0..NAMESPACES_PER_ACCOUNT)
            .map(|_| Namespace::under_policy(&name))
            .collect();
        namespaces.push((account.to_owned(), spaces));
    }
    let all: Vec<&str> = namespaces
        .iter()
        .flat_map(|(_, spaces)| spaces.iter().map(|ns| ns.0.as_str()))
        .collect();
    let lease_ns = Namespace::create();
    let shaper = Shaper::start(moto, 1.0);
    let roles = format!("arn:aws:iam::*:role/operators/{prefix}-operator");
    let resync = RESYNC_SECONDS.to_string();
    // FLEET_ROLE_LISTING=1: resyncs take roles from one listing per account
    // (SLUICE_ROLE_LISTING; the emulator does not enforce IAM here).
    let role_listing = if std::env::var("FLEET_ROLE_LISTING").as_deref() == Ok("1") {
        "true"
    } else {
        "false"
    };
    let ops: Vec<Operator> = (0..replicas)
        .map(|i| {
            let identity = format!("replica-{i}");
            let mut env: Vec<(&str, &str)> = vec![
                ("AWS_ENDPOINT_URL", shaper.url.as_str()),
                ("SLUICE_NAME_PREFIX", prefix.as_str()),
                ("SLUICE_ACCOUNT_ROLES", roles.as_str()),
                ("SLUICE_RESYNC_SECONDS", resync.as_str()),
                ("SLUICE_HEALTH_INTERVAL_SECONDS", "0"),
                ("SLUICE_AWS_QUOTA_SHARE", "1"),
                ("SLUICE_ROLE_LISTING", role_listing),
            ];
            if replicas > 1 {
                env.extend([
                    ("SLUICE_LEADER_ELECTION", "true"),
                    ("SLUICE_LEASE_NAMESPACE", lease_ns.0.as_str()),
                    ("SLUICE_LEASE_NAME", "fleet-accounts"),
                    ("POD_NAME", identity.as_str()),
                    ("SLUICE_SHARDS", SHARDS),
                ]);
            }
            Operator::start_process_with(&all, &env)
        })
        .collect();
    let manifests = fleet::manifests(n);
    let per_ns = n.div_ceil(NAMESPACES_PER_ACCOUNT);
    eprintln!(
        "accounts {replicas} replica(s): creating {} pipelines in {} namespaces",
        n * ACCOUNTS.len(),
        all.len()
    );
    let created = Instant::now();
    for (_, spaces) in &namespaces {
        for (ns, chunk) in spaces.iter().zip(manifests.chunks(per_ns)) {
            fleet::create(&ns.0, chunk);
        }
    }
    let every: Vec<Namespace> = namespaces
        .iter()
        .flat_map(|(_, s)| s.iter().map(|ns| Namespace(ns.0.clone())))
        .collect();
    let total = n * ACCOUNTS.len();
    let mut peak = vec![0u64; replicas];
    let mut last = Instant::now();
    loop {
        for (i, op) in ops.iter().enumerate() {
            peak[i] = peak[i].max(op.peak_rss_kib());
        }
        let ready = ready_in(&every);
        if ready == total {
            break;
        }
        if last.elapsed() > Duration::from_secs(30) {
            eprintln!(
                "{ready} of {total} Ready after {:.0} s",
                created.elapsed().as_secs_f64()
            );
            last = Instant::now();
        }
        assert!(
            created.elapsed() < Duration::from_secs(3600),
            "not converged in an hour"
        );
        std::thread::sleep(Duration::from_millis(500));
    }
    row.ready = created.elapsed();
    let figures = shaper.figures();
    (row.bound, row.bound_bucket) = figures.lower_bound(1.0);
    row.calls = figures.reads + figures.writes;
    row.throttled = figures.throttled();

    // One resync of every pipeline, by account: reads and writes.
    let ready_reconciles = || -> u64 {
        ops.iter()
            .map(|op| op.counter("sluice_reconciles_total", "outcome=\"ready\""))
            .sum()
    };
    let (before, reconciles) = (shaper.figures(), ready_reconciles());
    let started = Instant::now();
    // The effective period may be much longer than configured (the read
    // budget; at 1,000 pipelines an account's IAM reads alone take 900 s),
    // and the one exported now counts the passes that created pipelines,
    // which read less: three of those, or an hour.
    let longest = ops
        .iter()
        .flat_map(|op| {
            ACCOUNTS.iter().filter_map(|account| {
                op.series(&format!(
                    "sluice_resync_period_seconds{{account=\"{account}\",region=\"us-east-1\"}}"
                ))
            })
        })
        .fold(0.0, f64::max);
    let limit = Duration::from_secs_f64((longest * 3.0).max(3600.0));
    while ready_reconciles() < reconciles + total as u64 {
        assert!(started.elapsed() < limit, "no full resync in {limit:?}");
        std::thread::sleep(Duration::from_millis(500));
    }
    row.resync_seconds = started.elapsed().as_secs_f64();
    row.resync = shaper.figures().since(&before).accounts;
    for account in ACCOUNTS {
        let series =
            format!("sluice_resync_period_seconds{{account=\"{account}\",region=\"us-east-1\"}}");
        let period = ops
            .iter()
            .filter_map(|op| op.series(&series))
            .fold(0.0, f64::max);
        row.periods.insert(account.to_owned(), period);
    }
    for (i, op) in ops.iter().enumerate() {
        peak[i] = peak[i].max(op.peak_rss_kib());
    }
    row.rss_mib = peak.iter().map(|k| *k as f64 / 1024.0).collect();

    // Every account holds exactly what its pipelines' inventories list.
    for (account, spaces) in &namespaces {
        let sdk = flow::account_admin(account).await;
        let in_aws = fleet::in_aws(&sdk, &prefix).await;
        let inventories: BTreeSet<(String, String)> = spaces
            .iter()
            .flat_map(|ns| fleet::inventories(&ns.0))
            .collect();
        // The account role the harness made (as a platform team would) is
        // under the prefix too, and no pipeline's.
        let role = format!("IAM::Role {prefix}-operator ");
        row.problems.extend(
            fleet::problems(&in_aws, &inventories)
                .into_iter()
                .filter(|p| !p.contains(&role))
                .map(|p| format!("{account}: {p}")),
        );
    }
    drop(ops);
    drop(policies);
    row
}

fn print(rows: &[Row]) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "\n| replicas | pipelines | all Ready | per-account quota bound (bucket) | ratio | AWS calls | throttled | one resync: reads / writes per account | effective resync period per account (configured {RESYNC_SECONDS} s) | RSS peak per replica |"
    );
    let _ = writeln!(out, "|---|---|---|---|---|---|---|---|---|---|");
    for r in rows {
        let resync: Vec<String> = r
            .resync
            .iter()
            .filter(|(a, _)| ACCOUNTS.contains(&a.as_str()))
            .map(|(a, (reads, writes))| format!("{a}: {reads} / {writes}"))
            .collect();
        let periods: Vec<String> = r
            .periods
            .iter()
            .map(|(a, p)| format!("{a}: {p:.0} s"))
            .collect();
        let _ = writeln!(
            out,
            "| {} | {} × {} | {:.1} s | {:.1} s ({}) | {:.2} | {} | {} | {} (in {:.0} s) | {} | {} |",
            r.replicas,
            ACCOUNTS.len(),
            r.per_account,
            r.ready.as_secs_f64(),
            r.bound,
            r.bound_bucket,
            r.ready.as_secs_f64() / r.bound.max(0.001),
            r.calls,
            r.throttled,
            resync.join(", "),
            r.resync_seconds,
            periods.join(", "),
            r.rss_mib
                .iter()
                .map(|m| format!("{m:.1} MiB"))
                .collect::<Vec<_>>()
                .join(", "),
        );
    }
    for r in rows {
        let _ = writeln!(
            out,
            "- {} replica(s): {} problems with the AWS resources{}",
            r.replicas,
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
    let mut args = std::env::args().skip(1);
    let n: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(1000);
    let replicas: Vec<usize> = args
        .next()
        .map(|a| a.split(',').filter_map(|x| x.parse().ok()).collect())
        .unwrap_or_else(|| vec![1, 3]);
    let moto = std::env::var("AWS_ENDPOINT_URL").expect("AWS_ENDPOINT_URL (scripts/localenv.sh)");
    install_crd();
    let mut rows = Vec::new();
    for r in replicas {
        let row = run(n, r, &moto).await;
        eprintln!("{}", print(std::slice::from_ref(&row)));
        rows.push(row);
    }
    println!(
        "role listing: {}",
        if std::env::var("FLEET_ROLE_LISTING").as_deref() == Ok("1") {
            "on (FLEET_ROLE_LISTING=1)"
        } else {
            "off"
        }
    );
    println!(
        "operator: {}; moto: the fleet launcher (no deliveries, IAM not enforced); quotas per \
         account (the shaper meters each signing key's account); sharded, each replica uses \
         its part of each account's pipelines of them (operator/src/shards/quota.rs)",
        std::env::var("SLUICE_OPERATOR_BIN").unwrap_or_default()
    );
    println!("{}", print(&rows));
    if rows.iter().any(|r| {
        !r.problems.is_empty()
            || r.resync
                .iter()
                .any(|(a, (_, w))| ACCOUNTS.contains(&a.as_str()) && *w > 0)
    }) {
        eprintln!("fleet_accounts: a property failed (see above)");
        std::process::exit(1);
    }
}
