//! A small fleet end to end (the benchmark's `make bench-fleet` runs the
//! same with 10, 100 and 1,000 pipelines and prints the figures): 20
//! pipelines, the samples in turn, applied at once to the real apiserver,
//! the operator binary in front of the emulator behind the AWS quota shaper
//! (`sluice_e2e::shaper`) with AWS's quotas halved, so the operator —
//! which runs at AWS's full quotas — is throttled. Checked, without timing
//! assertions:
//!
//! - throttling is flow control: the shaper throttled calls, yet no
//!   pipeline was ever Stalled and no Warning event was published;
//! - a restart mid-way finishes the fleet with no duplicate, orphaned or
//!   missing AWS resource (everything under the fleet's prefix listed from
//!   the emulator against every pipeline's inventory);
//! - steady state is quiet: over a resync period in which every pipeline
//!   was read back from AWS, no AWS write and no Kubernetes write.

use std::time::{Duration, Instant};

use sluice_e2e::{Namespace, Operator, fleet, install_crd, sdk, shaper::Shaper};

const PIPELINES: usize = 20;
const RESYNC_SECONDS: &str = "10";

#[tokio::test(flavor = "multi_thread")]
async fn a_fleet_converges_through_throttling_survives_a_restart_and_goes_quiet() {
    install_crd();
    let ns = Namespace::create();
    let moto = std::env::var("AWS_ENDPOINT_URL").expect("AWS_ENDPOINT_URL");
    // AWS at half its quotas: the operator, sized to the full ones, hits them.
    let shaper = Shaper::start(&moto, 0.5);
    let env = |prefix: Option<&str>| {
        let mut env = vec![
            ("AWS_ENDPOINT_URL", shaper.url.clone()),
            ("SLUICE_RESYNC_SECONDS", RESYNC_SECONDS.to_owned()),
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

    fleet::create(&ns.0, &fleet::manifests(PIPELINES));
    let mut restarted_at = None;
    let converged = fleet::wait_ready(
        &ns.0,
        PIPELINES,
        Duration::from_secs(600),
        &mut op,
        |ready, op| {
            if restarted_at.is_none() && ready >= PIPELINES / 4 {
                // Killed mid-way, as a node failure would: some pipelines
                // Ready, others part-way through their resources.
                op.kill();
                *op = start(&env(Some(&prefix)));
                restarted_at = Some(ready);
            }
        },
    );
    println!(
        "{PIPELINES} pipelines Ready in {:.1} s (restarted with {} Ready); Reconciling reasons seen: {:?}",
        converged.elapsed.as_secs_f64(),
        restarted_at.unwrap_or_default(),
        converged.reconciling_reasons
    );
    assert!(restarted_at.is_some(), "the operator was restarted mid-way");

    // Throttling is flow control.
    let figures = shaper.figures();
    println!(
        "shaper: {} calls, {} throttled: {:?}",
        figures.requests,
        figures.throttled(),
        figures.throttled_operations
    );
    assert!(
        figures.throttled() > 0,
        "the shaper throttled nothing, so this test did not exercise throttling"
    );
    assert!(
        converged.stalled.is_empty(),
        "pipelines Stalled on the way: {:?}",
        converged.stalled
    );
    let warnings = fleet::warnings(&ns.0);
    assert!(warnings.is_empty(), "Warning events: {warnings:?}");

    // No duplicate, orphaned or missing resource after the restart.
    let in_aws = fleet::in_aws(&sdk().await, &prefix).await;
    let inventory = fleet::inventories(&ns.0);
    assert!(
        in_aws.named.len() >= PIPELINES * 4,
        "listed {} resources under {prefix}",
        in_aws.named.len()
    );
    let problems = fleet::problems(&in_aws, &inventory);
    assert!(problems.is_empty(), "{problems:#?}");

    // Steady state: AWS at its real quotas again; over a window in which
    // every pipeline was read back from AWS, nothing was written.
    shaper.set_scale(1.0);
    let ready_reconciles = || op.counter("sluice_reconciles_total", "outcome=\"ready\"");
    let kube_writes = || op.counter("sluice_kubernetes_writes_total", "");
    // No wait for things to settle: a reconcile's writes (AWS calls,
    // events, then its status, counted before it is sent) all come before
    // the Ready that wait_ready saw, so any write from here on is steady
    // state's.
    let (aws_before, kube_before, reconciles_before) =
        (shaper.figures(), kube_writes(), ready_reconciles());
    let aws_writes_before = op.aws_writes();
    let started = Instant::now();
    op.wait_until("every pipeline resynced", Duration::from_secs(60), || {
        ready_reconciles() >= reconciles_before + PIPELINES as u64
    });
    let window = shaper.figures().since(&aws_before);
    println!(
        "steady state over {:.1} s: {} resyncs, {} AWS reads, {} AWS writes, {} Kubernetes writes",
        started.elapsed().as_secs_f64(),
        ready_reconciles() - reconciles_before,
        window.reads,
        window.writes,
        kube_writes() - kube_before
    );
    assert!(window.reads > 0, "the resyncs read AWS");
    assert_eq!(
        window.writes, 0,
        "AWS writes in steady state: {:?}",
        window.operations
    );
    assert_eq!(
        op.aws_writes(),
        aws_writes_before,
        "the operator counted AWS writes"
    );
    assert_eq!(
        kube_writes(),
        kube_before,
        "Kubernetes writes in steady state"
    );

    // Deleting the fleet removes everything it made.
    let deleted = sluice_e2e::kubectl(&[
        "delete",
        "dp",
        "--all",
        "-n",
        &ns.0,
        "--wait",
        "--timeout=300s",
    ]);
    assert!(
        deleted.status.success(),
        "delete: {}\n{}",
        String::from_utf8_lossy(&deleted.stderr),
        op.log_tail()
    );
    let left = fleet::in_aws(&sdk().await, &prefix).await;
    assert!(left.named.is_empty(), "left behind: {:?}", left.named);
    assert!(
        left.mappings.is_empty(),
        "mappings left: {:?}",
        left.mappings
    );
}
