//! Fair shares between namespaces: one namespace applies 100 pipelines at
//! once, another a single one a moment later, the operator in front of the
//! emulator behind the AWS quota shaper at AWS's quotas. The single one
//! takes its turn at every reconcile slot and quota bucket with the
//! hundred, instead of queueing behind them. Times are printed; what is
//! asserted is the order: it is Ready while most of the hundred are not.

use std::time::{Duration, Instant};

use serde_json::json;
use sluice_e2e::{
    Namespace, Operator, Policy, fleet, install_crd, kubectl, kubectl_stdin_ok, manifest_as_json,
    sample_manifest, shaper::Shaper, token,
};

const BIG: usize = 100;

fn ready(ns: &str) -> usize {
    fleet::poll(ns).iter().filter(|p| p.ready).count()
}

#[tokio::test(flavor = "multi_thread")]
async fn one_namespaces_pipeline_is_not_queued_behind_anothers_hundred() {
    install_crd();
    let policy = format!("big-{}", token());
    let _policy = Policy::apply(
        &policy,
        json!({"limits": {"pipelinesPerNamespace": BIG + 10}}),
    );
    let big = Namespace::under_policy(&policy);
    let small = Namespace::create();
    let moto = std::env::var("AWS_ENDPOINT_URL").expect("AWS_ENDPOINT_URL");
    let shaper = Shaper::start(&moto, 1.0);
    let mut op = Operator::start_process_with(
        &[&big.0, &small.0],
        &[
            ("AWS_ENDPOINT_URL", shaper.url.as_str()),
            ("SLUICE_HEALTH_INTERVAL_SECONDS", "0"),
        ],
    );
    let sample = manifest_as_json(&sample_manifest("event-triggered.yaml"));
    let hundred: Vec<serde_json::Value> = (0..BIG)
        .map(|i| {
            let mut m = sample.clone();
            m["metadata"] = json!({"name": format!("p{i:03}")});
            m
        })
        .collect();
    let created = Instant::now();
    fleet::create(&big.0, &hundred);
    // The hundred are under way (their first reconciles hold the slots and
    // queue at the quota buckets) when the other namespace applies one.
    op.wait_until(
        "the hundred to be under way",
        Duration::from_secs(120),
        || {
            fleet::poll(&big.0)
                .iter()
                .any(|p| p.reconciling.is_some() || p.ready)
        },
    );
    let applied = Instant::now();
    kubectl_stdin_ok(&["apply", "-n", &small.0, "-f", "-"], &sample.to_string());
    let mut big_ready_then = 0;
    op.wait_until(
        "the single pipeline to be Ready",
        Duration::from_secs(300),
        || {
            let done = ready(&small.0) == 1;
            if done {
                big_ready_then = ready(&big.0);
            }
            done
        },
    );
    let single = applied.elapsed();
    fleet::wait_ready(&big.0, BIG, Duration::from_secs(600), &mut op, |_, _| {});
    let hundred_ready = created.elapsed();
    let figures = shaper.figures();
    println!(
        "fairness: the single pipeline Ready {:.1} s after it was applied, with {big_ready_then} \
         of the {BIG} Ready; all {BIG} Ready {:.1} s after they were created (the single one \
         was applied {:.1} s after them); shaper: {} calls, {} throttled",
        single.as_secs_f64(),
        hundred_ready.as_secs_f64(),
        (applied - created).as_secs_f64(),
        figures.requests,
        figures.throttled()
    );
    assert!(
        big_ready_then < BIG * 3 / 4,
        "the single pipeline waited behind the hundred: {big_ready_then} of {BIG} were Ready first"
    );

    for ns in [&big.0, &small.0] {
        let out = kubectl(&[
            "delete",
            "dp",
            "--all",
            "-n",
            ns,
            "--wait",
            "--timeout=300s",
        ]);
        assert!(
            out.status.success(),
            "delete: {}\n{}",
            String::from_utf8_lossy(&out.stderr),
            op.log_tail()
        );
    }
}
