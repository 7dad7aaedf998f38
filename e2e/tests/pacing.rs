//! Drift detection paced to the account's read budget, end to end: an
//! operator whose IAM quota is 1 call per second (`SLUICE_AWS_QUOTAS`)
//! and whose resyncs may use half of it cannot read three pipelines' roles
//! back every 10 s; it says so (`sluice_resync_period_seconds` of the
//! account, longer than configured) and comes back at that period rather
//! than at the configured one.

use std::time::{Duration, Instant};

use sluice_e2e::{Namespace, Operator, apply_and_wait, install_crd, sample_manifest, sdk};

#[tokio::test(flavor = "multi_thread")]
async fn an_account_whose_reads_do_not_fit_gets_a_longer_period_and_says_so() {
    install_crd();
    let ns = Namespace::create();
    let op = Operator::start_with(
        &[&ns.0],
        &[
            ("SLUICE_RESYNC_SECONDS", "10"),
            ("SLUICE_RESYNC_READ_SHARE", "0.5"),
            ("SLUICE_AWS_QUOTAS", "iam=1/2"),
            ("SLUICE_HEALTH_INTERVAL_SECONDS", "0"),
        ],
    );
    let account = aws_sdk_sts::Client::new(&sdk().await)
        .get_caller_identity()
        .send()
        .await
        .expect("account")
        .account()
        .expect("account")
        .to_owned();
    let sample = sample_manifest("event-triggered.yaml");
    let names = ["p1", "p2", "p3"];
    for name in names {
        let manifest = sample.replacen("name: event-triggered", &format!("name: {name}"), 1);
        assert!(manifest.contains(&format!("name: {name}")));
        apply_and_wait(&ns.0, name, &manifest, "Ready", &op);
    }
    // The passes that created the pipelines read little of IAM (each role
    // was absent); their resyncs read each role back (GetRole,
    // ListRolePolicies, GetRolePolicy): about 9 IAM reads a pass for the
    // three, which at half of 1/s take about 18 s, not the configured 10.
    let ready = || op.counter("sluice_reconciles_total", "outcome=\"ready\"");
    let limit = Duration::from_secs(120);
    let first_round = ready() + names.len() as u64;
    op.wait_until("a resync of every pipeline", limit, || {
        ready() >= first_round
    });
    let series =
        format!("sluice_resync_period_seconds{{account=\"{account}\",region=\"us-east-1\"}}");
    let period = op
        .series(&series)
        .expect("the account's period is exported");
    assert!(period > 10.0, "period {period} s: {}", op.log_tail());
    let iam_reads: u64 = op
        .aws_calls()
        .iter()
        .filter(|(k, _)| k.starts_with("iam:") && k.ends_with("(read)"))
        .map(|(_, n)| n)
        .sum();
    assert!(
        period <= iam_reads as f64 / 0.5 + 1.0,
        "a pass reads no more than every IAM read so far ({iam_reads}): {period} s"
    );

    // Resyncs keep their phase: once each pipeline has been read back at
    // the new period, its next comes one period later. The last of one
    // round to the last of the next is about the effective period, not
    // the configured 10 s.
    let second_round = ready() + names.len() as u64;
    op.wait_until("a second resync of every pipeline", limit, || {
        ready() >= second_round
    });
    let round = Instant::now();
    let third_round = ready() + names.len() as u64;
    op.wait_until("a third resync of every pipeline", limit, || {
        ready() >= third_round
    });
    let second = round.elapsed().as_secs_f64();
    assert!(
        second >= (period - 3.0).max(13.0),
        "a round of resyncs took {second:.1} s under an effective period of {period:.1} s"
    );
    println!(
        "pacing: effective period {period:.1} s (configured 10 s), {iam_reads} IAM reads so far, \
         a round of resyncs {second:.1} s"
    );
    assert!(
        op.log_tail().contains("resync period stretched"),
        "the stretch is logged: {}",
        op.log_tail()
    );
}
