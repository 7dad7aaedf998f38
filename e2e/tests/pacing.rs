//! Drift detection paced to the account's read budget, end to end: an
//! operator whose IAM quota is 1 call per second (`SLUICE_AWS_QUOTAS`)
//! and whose resyncs may use half of it cannot read three pipelines' roles
//! back every 10 s; it says so (`sluice_resync_period_seconds` of the
//! account, longer than configured) and comes back at that period rather
//! than at the configured one. With role listing on, resyncs read the
//! account's roles in one listing and read a role only when it changed.

use std::time::{Duration, Instant};

use sluice_e2e::{
    Namespace, Operator, apply_and_wait, flow, get_pipeline, ids, install_crd, sample_manifest,
    sdk, token,
};

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

/// An operator of `prefix` with role listing on and resyncs every 10 s,
/// and the event-triggered sample Ready in `ns`.
fn listing_operator_with_a_pipeline(ns: &Namespace, prefix: &str) -> Operator {
    let op = Operator::start_with(
        &[&ns.0],
        &[
            ("SLUICE_NAME_PREFIX", prefix),
            ("SLUICE_ROLE_LISTING", "true"),
            ("SLUICE_RESYNC_SECONDS", "10"),
            ("SLUICE_HEALTH_INTERVAL_SECONDS", "0"),
        ],
    );
    apply_and_wait(
        &ns.0,
        "event-triggered",
        &sample_manifest("event-triggered.yaml"),
        "Ready",
        &op,
    );
    op
}

/// IAM reads of one operation so far.
fn iam_reads(op: &Operator, operation: &str) -> u64 {
    op.aws_calls()
        .iter()
        .filter(|(k, _)| k.starts_with(&format!("iam:{operation} ")) && k.ends_with("(read)"))
        .map(|(_, n)| n)
        .sum()
}

#[tokio::test(flavor = "multi_thread")]
async fn with_role_listing_resyncs_read_no_role_until_one_changes_outside() {
    install_crd();
    let ns = Namespace::create();
    let prefix = format!("rl{}", &token()[..6]);
    // The operator's identity holds the optional listing policy too
    // (under IAM enforcement it is refused without it).
    flow::harness(
        "POST",
        &format!("iam/operator?prefix={prefix}&roleListing=1"),
    );
    let op = listing_operator_with_a_pipeline(&ns, &prefix);
    let dp = get_pipeline(&ns.0, "event-triggered");
    let roles = ids(&dp, "IAM::Role");
    assert!(!roles.is_empty(), "{dp:#}");

    // The first resync reads each role in full (nothing verified yet);
    // from the second on, a listing of the account answers for them.
    let ready = || op.counter("sluice_reconciles_total", "outcome=\"ready\"");
    let limit = Duration::from_secs(60);
    for round in ["first", "second"] {
        let next = ready() + 1;
        op.wait_until(&format!("the {round} resync"), limit, || ready() >= next);
    }
    let (get_role, listings) = (
        iam_reads(&op, "GetRole"),
        iam_reads(&op, "GetAccountAuthorizationDetails"),
    );
    let next = ready() + 3;
    op.wait_until("three more resyncs", limit, || ready() >= next);
    let listed = iam_reads(&op, "GetAccountAuthorizationDetails") - listings;
    assert_eq!(
        iam_reads(&op, "GetRole"),
        get_role,
        "a resync read a role the listing showed unchanged: {}",
        op.log_tail()
    );
    assert!(
        listed >= 1,
        "no listing in three resyncs: {:?}",
        op.aws_calls()
    );

    // Someone widens a role's inline policy outside Sluice: the next
    // listing shows the change, the role is read and set back.
    let iam = aws_sdk_iam::Client::new(&sdk().await);
    let (_, role) = &roles[0];
    let before = flow::inline_policy(&iam, role).await;
    let wide = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"s3:*","Resource":"*"}]}"#;
    iam.put_role_policy()
        .role_name(role)
        .policy_name("sluice")
        .policy_document(wide)
        .send()
        .await
        .expect("changed outside");
    let changed = Instant::now();
    let corrections = || op.counter("sluice_drift_corrections_total", "kind=\"IAM::Role\"");
    op.wait_until("the role set back", Duration::from_secs(60), || {
        corrections() >= 1
    });
    let now = flow::inline_policy(&iam, role).await;
    assert_eq!(now, before, "the outside change is undone");
    println!(
        "role listing: {listed} listing(s) and 0 GetRole in three resyncs; an outside change \
         to {role} set back {:.1} s later",
        changed.elapsed().as_secs_f64()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_refused_role_listing_falls_back_to_reading_each_role() {
    assert_eq!(
        std::env::var("SLUICE_HARNESS_IAM").as_deref(),
        Ok("enforce"),
        "this test needs the emulator to enforce IAM (scripts/localenv.sh does)"
    );
    install_crd();
    let ns = Namespace::create();
    // Listing on, but the operator's identity lacks
    // config/iam/role-listing-policy.json: IAM refuses the listing.
    let prefix = format!("rn{}", &token()[..6]);
    let op = listing_operator_with_a_pipeline(&ns, &prefix);
    let ready = || op.counter("sluice_reconciles_total", "outcome=\"ready\"");
    let next = ready() + 1;
    op.wait_until("the first resync", Duration::from_secs(60), || {
        ready() >= next
    });
    let get_role = iam_reads(&op, "GetRole");
    let next = ready() + 3;
    op.wait_until("three more resyncs", Duration::from_secs(60), || {
        ready() >= next
    });
    // Each resync read the roles itself, and the refused listing was not
    // asked for again (it is, an hour later).
    assert!(
        iam_reads(&op, "GetRole") >= get_role + 3,
        "resyncs did not read the roles: {:?}",
        op.aws_calls()
    );
    assert_eq!(
        iam_reads(&op, "GetAccountAuthorizationDetails"),
        1,
        "{:?}",
        op.aws_calls()
    );
    let refused = match flow::harness("GET", "denials") {
        serde_json::Value::Array(entries) => entries
            .iter()
            .filter(|d| {
                d["principal"]
                    .as_str()
                    .unwrap_or_default()
                    .contains(&format!("operator-{prefix}"))
                    && d["action"] == "iam:GetAccountAuthorizationDetails"
            })
            .count(),
        other => panic!("denials: {other}"),
    };
    assert_eq!(refused, 1, "IAM refused the listing once");
    assert!(
        op.log_tail().contains("cannot list the account's roles"),
        "{}",
        op.log_tail()
    );
    let dp = get_pipeline(&ns.0, "event-triggered");
    assert_eq!(
        sluice_e2e::condition(&dp, "Ready").map(|c| c["status"].clone()),
        Some(serde_json::json!("True")),
        "{dp:#}"
    );
}
