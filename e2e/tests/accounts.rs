//! Pipelines in other AWS accounts: a SluicePolicy maps a namespace to a
//! role in another account of the emulator (which keeps accounts apart by
//! the signing key's account, an assumed role's being the role's), the
//! operator assumes it per pipeline, and everything lands there and only
//! there. Written as the one who would cross accounts would: a role the
//! operator does not list, a wrong external id, one namespace's deletion
//! reaching into the other's account, a session that ends mid-reconcile.

use std::time::Duration;

use serde_json::{Value, json};
use sluice_e2e::{
    Namespace, Operator, Policy, apply_and_wait, condition, delete_pipeline,
    flow::{self, object_text, wait_for},
    get_pipeline, id_of, ids, install_crd, kubectl, kubectl_stdin_ok, s3, sample_manifest, sdk,
    token,
};

const NAME: &str = "event-triggered";
const ACCOUNT_A: &str = "210987654321";
const ACCOUNT_B: &str = "310987654321";
const EXTERNAL_ID: &str = "team-a-7f3c";

/// The role the harness makes in `account` for the operator of `prefix`,
/// as a platform team would (config/iam/account-role/).
fn account_role(account: &str, prefix: &str, external_id: Option<&str>) -> String {
    let mut path = format!("iam/account-role?account={account}&prefix={prefix}");
    if let Some(id) = external_id {
        path.push_str(&format!("&externalId={id}"));
    }
    flow::harness("POST", &path)["roleArn"]
        .as_str()
        .expect("roleArn")
        .to_owned()
}

/// An operator of a fresh prefix that may assume its account roles.
fn operator_for(prefix: &str, namespaces: &[&str], more: &[(&str, &str)]) -> Operator {
    let roles = format!("arn:aws:iam::*:role/operators/{prefix}-operator");
    let mut env = vec![
        ("SLUICE_NAME_PREFIX", prefix),
        ("SLUICE_ACCOUNT_ROLES", roles.as_str()),
    ];
    env.extend_from_slice(more);
    Operator::start_with(namespaces, &env)
}

fn prefix() -> String {
    format!("ac{}", &token()[..6])
}

/// Whether a function of this name exists in the account of `sdk`.
async fn function_exists(sdk: &aws_config::SdkConfig, name: &str) -> bool {
    aws_sdk_lambda::Client::new(sdk)
        .get_function()
        .function_name(name)
        .send()
        .await
        .is_ok()
}

/// Whether a role of this name exists in the account of `sdk`.
async fn role_exists(sdk: &aws_config::SdkConfig, name: &str) -> bool {
    aws_sdk_iam::Client::new(sdk)
        .get_role()
        .role_name(name)
        .send()
        .await
        .is_ok()
}

/// Whether `bucket` is owned by `account` (S3's expected-bucket-owner
/// check, which the harness makes as AWS does).
async fn bucket_owned_by(sdk: &aws_config::SdkConfig, bucket: &str, account: &str) -> bool {
    s3(sdk)
        .head_bucket()
        .bucket(bucket)
        .expected_bucket_owner(account)
        .send()
        .await
        .is_ok()
}

/// Every function, role and bucket of pipeline `dp` exists in the account
/// of `home` (owned by `account`) and in none of `elsewhere`.
async fn lives_only_in(
    dp: &Value,
    home: &aws_config::SdkConfig,
    account: &str,
    elsewhere: &[(&aws_config::SdkConfig, &str)],
) {
    let functions = ids(dp, "Lambda::Function");
    let roles = ids(dp, "IAM::Role");
    let buckets = ids(dp, "S3::Bucket");
    assert!(
        !functions.is_empty() && !roles.is_empty() && !buckets.is_empty(),
        "{dp:#}"
    );
    for (_, f) in &functions {
        assert!(function_exists(home, f).await, "function {f} in {account}");
        for (other, acct) in elsewhere {
            assert!(
                !function_exists(other, f).await,
                "function {f} also in {acct}"
            );
        }
    }
    for (_, r) in &roles {
        assert!(role_exists(home, r).await, "role {r} in {account}");
        for (other, acct) in elsewhere {
            assert!(!role_exists(other, r).await, "role {r} also in {acct}");
        }
    }
    for (_, b) in &buckets {
        assert!(
            bucket_owned_by(home, b, account).await,
            "bucket {b} owned by {account}"
        );
        for (_, acct) in elsewhere {
            assert!(
                !bucket_owned_by(home, b, acct).await,
                "bucket {b} owned by {acct}"
            );
        }
    }
}

/// The actions the emulator allowed the session of pipeline `ns/NAME`
/// under the operator's account role.
fn session_actions(prefix: &str, ns: &str) -> Vec<String> {
    flow::allowed_to(&format!("assumed-role/{prefix}-operator/{ns}.{NAME}"))
}

/// Two namespaces, each mapped by a SluicePolicy of its own to an account
/// role (A's with an external id, B's without), and an operator of a fresh
/// prefix that watches both and may assume both.
struct TwoAccounts {
    op: Operator,
    na: Namespace,
    nb: Namespace,
    _policies: (Policy, Policy),
    prefix: String,
    role_a: String,
    role_b: String,
    pa: String,
}

fn two_accounts() -> TwoAccounts {
    install_crd();
    let prefix = prefix();
    let role_a = account_role(ACCOUNT_A, &prefix, Some(EXTERNAL_ID));
    let role_b = account_role(ACCOUNT_B, &prefix, None);
    let (pa, pb) = (format!("{prefix}-a"), format!("{prefix}-b"));
    let policies = (
        Policy::apply(
            &pa,
            json!({"account": {"roleArn": role_a, "externalId": EXTERNAL_ID}}),
        ),
        Policy::apply(&pb, json!({"account": {"roleArn": role_b}})),
    );
    let (na, nb) = (Namespace::under_policy(&pa), Namespace::under_policy(&pb));
    let op = operator_for(&prefix, &[&na.0, &nb.0], &[]);
    TwoAccounts {
        op,
        na,
        nb,
        _policies: policies,
        prefix,
        role_a,
        role_b,
        pa,
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn each_namespace_lands_in_its_own_account_and_never_in_the_other() {
    let two = two_accounts();
    let TwoAccounts {
        op,
        na,
        nb,
        prefix,
        role_a,
        role_b,
        ..
    } = &two;
    let sample = sample_manifest("event-triggered.yaml");
    apply_and_wait(&na.0, NAME, &sample, "Ready", op);
    apply_and_wait(&nb.0, NAME, &sample, "Ready", op);

    let (dpa, dpb) = (get_pipeline(&na.0, NAME), get_pipeline(&nb.0, NAME));
    assert_eq!(dpa["status"]["account"]["id"], ACCOUNT_A, "{dpa:#}");
    assert_eq!(dpa["status"]["account"]["roleArn"], role_a.as_str());
    assert_eq!(dpb["status"]["account"]["id"], ACCOUNT_B, "{dpb:#}");
    assert_eq!(dpb["status"]["account"]["roleArn"], role_b.as_str());

    let (a, b, home) = (
        flow::account_admin(ACCOUNT_A).await,
        flow::account_admin(ACCOUNT_B).await,
        sdk().await,
    );
    let own = aws_sdk_sts::Client::new(&home)
        .get_caller_identity()
        .send()
        .await
        .expect("the operator's own account")
        .account()
        .expect("account")
        .to_owned();
    lives_only_in(&dpa, &a, ACCOUNT_A, &[(&b, ACCOUNT_B), (&home, &own)]).await;
    lives_only_in(&dpb, &b, ACCOUNT_B, &[(&a, ACCOUNT_A), (&home, &own)]).await;

    // Each account is paced on its own budget: one pipeline's reads fit,
    // so each keeps the configured period.
    for account in [ACCOUNT_A, ACCOUNT_B] {
        let series =
            format!("sluice_resync_period_seconds{{account=\"{account}\",region=\"us-east-1\"}}");
        assert_eq!(op.series(&series), Some(300.0), "{series}");
    }

    // Each pipeline acted in a session of its own, named after it.
    for ns in [&na.0, &nb.0] {
        let actions = session_actions(prefix, ns);
        assert!(
            actions.iter().any(|a| a == "lambda:CreateFunction"),
            "the session {ns}.{NAME} made the function: {actions:?}"
        );
    }

    // Data flows in account A, under A's roles: an order in, processed out.
    let s3a = s3(&a);
    let (input, processed) = (
        id_of(&dpa, "S3::Bucket", "input"),
        id_of(&dpa, "S3::Bucket", "processed"),
    );
    let order = json!({"order_id": "o-a", "items": [{"sku": "a", "quantity": 2, "price": 3.5}]});
    s3a.put_object()
        .bucket(&input)
        .key("orders/o-a.json")
        .body(order.to_string().into_bytes().into())
        .send()
        .await
        .expect("put order in account A");
    let out = wait_for("processed/orders/o-a.json", Duration::from_secs(60), || {
        object_text(&s3a, &processed, "processed/orders/o-a.json")
    })
    .await;
    let out: Value = serde_json::from_str(&out).expect("JSON");
    assert_eq!(out["total_items"], 2, "{out}");

    // Deleting B's pipeline removes it from B and touches nothing in A.
    delete_pipeline(&nb.0, NAME, op);
    for (_, f) in ids(&dpb, "Lambda::Function") {
        assert!(!function_exists(&b, &f).await, "{f} deleted from B");
    }
    for (_, r) in ids(&dpb, "IAM::Role") {
        assert!(!role_exists(&b, &r).await, "{r} deleted from B");
    }
    lives_only_in(&dpa, &a, ACCOUNT_A, &[(&b, ACCOUNT_B), (&home, &own)]).await;

    // A's, deleted too: gone from A (its processed object with it).
    flow::empty_buckets(&s3a, &dpa).await;
    delete_pipeline(&na.0, NAME, op);
    for (_, f) in ids(&dpa, "Lambda::Function") {
        assert!(!function_exists(&a, &f).await, "{f} deleted from A");
    }
}

/// Waits until pipeline `ns/NAME` has condition `type_` True whose message
/// contains `text`, and returns the pipeline.
fn wait_condition(ns: &str, type_: &str, text: &str, op: &Operator) -> Value {
    let deadline = std::time::Instant::now() + Duration::from_secs(90);
    loop {
        let dp = get_pipeline(ns, NAME);
        if let Some(c) = condition(&dp, type_)
            && c["status"] == "True"
            && c["message"].as_str().is_some_and(|m| m.contains(text))
        {
            return dp;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no {type_} saying {text:?}: {:#}\n{}",
            dp["status"],
            op.log_tail()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_role_the_operator_does_not_list_or_cannot_assume_makes_nothing() {
    install_crd();
    let prefix = prefix();
    let listed = account_role(ACCOUNT_A, &prefix, Some(EXTERNAL_ID));
    let policy = format!("{prefix}-x");
    // A role of the same account the operator's configuration does not
    // list: refused before any AWS call.
    let unlisted = format!("arn:aws:iam::{ACCOUNT_A}:role/operators/admin");
    let _policy = Policy::apply(
        &policy,
        json!({"account": {"roleArn": unlisted, "externalId": EXTERNAL_ID}}),
    );
    let ns = Namespace::under_policy(&policy);
    let op = operator_for(&prefix, &[&ns.0], &[]);
    kubectl_stdin_ok(
        &["apply", "-n", &ns.0, "-f", "-"],
        &sample_manifest("event-triggered.yaml"),
    );
    let dp = wait_condition(&ns.0, "Stalled", "spec.account.roleArn", &op);
    let stalled = condition(&dp, "Stalled").expect("Stalled");
    assert_eq!(stalled["reason"], "AccountRefused", "{dp:#}");
    let message = stalled["message"].as_str().expect("message");
    assert!(message.contains(&unlisted), "{message}");
    assert!(
        message.contains(&format!("SluicePolicy {policy:?}")),
        "{message}"
    );
    assert!(message.contains("aws.accountRoles"), "{message}");
    assert_eq!(dp["status"]["inventory"], json!([]), "{dp:#}");
    let calls = op.aws_calls();
    assert!(
        !calls.keys().any(|k| k.starts_with("sts:AssumeRole")),
        "no role assumed: {calls:?}"
    );
    assert_eq!(op.aws_writes(), 0, "nothing written: {calls:?}");

    // The listed role with a wrong external id: AWS refuses the session,
    // and the status says which role, for which pipeline, and why.
    Policy::update(
        &policy,
        json!({"account": {"roleArn": listed, "externalId": "not-the-id"}}),
    );
    let dp = wait_condition(&ns.0, "Reconciling", "could not assume", &op);
    let ready = condition(&dp, "Ready").expect("Ready");
    assert_eq!(ready["status"], "False", "{dp:#}");
    let message = ready["message"].as_str().expect("message");
    assert!(message.contains(&listed), "{message}");
    assert!(message.contains(&format!("{}/{NAME}", ns.0)), "{message}");
    assert!(message.contains("external id"), "{message}");
    assert_eq!(op.aws_writes(), 0, "still nothing written");

    // The right one: the pipeline converges in account A.
    Policy::update(
        &policy,
        json!({"account": {"roleArn": listed, "externalId": EXTERNAL_ID}}),
    );
    let wait = kubectl(&[
        "wait",
        "-n",
        &ns.0,
        "--for=condition=Ready",
        &format!("dp/{NAME}"),
        "--timeout=120s",
    ]);
    assert!(wait.status.success(), "{}", op.log_tail());
    let dp = get_pipeline(&ns.0, NAME);
    assert_eq!(dp["status"]["account"]["id"], ACCOUNT_A, "{dp:#}");
    delete_pipeline(&ns.0, NAME, &op);
}

/// Sessions assumed from the emulator end after a few seconds while it
/// lives (the emulator's setting is global: put back when dropped, even on
/// a failed assertion).
struct ShortSessions;

impl ShortSessions {
    fn of(seconds: u32) -> Self {
        flow::harness("POST", &format!("sts/lifetime?seconds={seconds}"));
        ShortSessions
    }
}

impl Drop for ShortSessions {
    fn drop(&mut self) {
        flow::harness("POST", "sts/lifetime?seconds=0");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn sessions_that_end_mid_reconcile_cost_no_failed_write() {
    install_crd();
    let prefix = prefix();
    let role = account_role(ACCOUNT_B, &prefix, None);
    let policy = format!("{prefix}-s");
    let _policy = Policy::apply(&policy, json!({"account": {"roleArn": role}}));
    let ns = Namespace::under_policy(&policy);
    // Every session of this test's role ends 3 s after it is made: the
    // operator renews each after 2.25 s, many times while the 34
    // resources of the fan-out sample converge.
    let _lifetime = ShortSessions::of(3);
    let op = operator_for(&prefix, &[&ns.0], &[("SLUICE_RESYNC_SECONDS", "10")]);
    let name = "fan-out";
    apply_and_wait(&ns.0, name, &sample_manifest("fan-out.yaml"), "Ready", &op);
    let assumed = |op: &Operator| {
        op.aws_calls()
            .iter()
            .filter(|(k, _)| k.starts_with("sts:AssumeRole"))
            .map(|(_, n)| n)
            .sum::<u64>()
    };
    let at_ready = assumed(&op);
    let writes = op.aws_writes();
    // Steady state over two resyncs: sessions renewed, nothing written.
    op.wait_until("two more sessions", Duration::from_secs(60), || {
        assumed(&op) >= at_ready + 2
    });
    assert_eq!(op.aws_writes(), writes, "a renewal is no write");

    let expired: Vec<Value> = flow::harness("GET", "sts/expired")
        .as_array()
        .cloned()
        .unwrap_or_default()
        .into_iter()
        .filter(|e| {
            e["principal"]
                .as_str()
                .is_some_and(|p| p.contains(&format!("assumed-role/{prefix}-operator/")))
        })
        .collect();
    assert!(
        expired.is_empty(),
        "requests sent with an ended session: {expired:#?}"
    );
    assert!(
        at_ready >= 2,
        "the converge outlived a session and renewed it ({at_ready} sessions)"
    );
    let dp = get_pipeline(&ns.0, name);
    assert!(
        dp["status"]["inventory"]
            .as_array()
            .is_some_and(|i| i.len() > 20),
        "{dp:#}"
    );
    flow::empty_buckets(&s3(&flow::account_admin(ACCOUNT_B).await), &dp).await;
    delete_pipeline(&ns.0, name, &op);
}

/// `kubectl sluice plan --live` of the sample in `ns`, as the reviewer
/// user of `prefix` in the operator's own account (what a pull request's
/// job holds), with `extra` flags; (exit code, output).
fn plan_live(prefix: &str, ns: &str, manifest: &str, extra: &[&str]) -> (i32, String) {
    let file = std::env::temp_dir().join(format!("sluice-plan-account-{ns}.yaml"));
    std::fs::write(&file, manifest).expect("manifest written");
    let reviewer = flow::harness("POST", &format!("iam/reviewer?prefix={prefix}"));
    let key = |k: &str| reviewer[k].as_str().expect(k).to_owned();
    let (id, secret) = (key("accessKeyId"), key("secretAccessKey"));
    let installation = sluice_e2e::installation_id(prefix);
    let boundary = sluice_e2e::permissions_boundary(prefix);
    let mut args = vec![
        "plan",
        "--live",
        "-f",
        file.to_str().expect("path"),
        "-n",
        ns,
    ];
    args.extend_from_slice(extra);
    let out = sluice_e2e::kubectl_sluice(
        &args,
        &[
            ("SLUICE_NAME_PREFIX", prefix),
            ("SLUICE_INSTALLATION_ID", installation.as_str()),
            ("SLUICE_PERMISSIONS_BOUNDARY", boundary.as_str()),
            ("AWS_ACCESS_KEY_ID", id.as_str()),
            ("AWS_SECRET_ACCESS_KEY", secret.as_str()),
        ],
    );
    (
        out.status.code().unwrap_or(-1),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn plan_live_reads_a_mapped_namespace_in_its_account_as_a_reviewer_role_there() {
    let two = two_accounts();
    let TwoAccounts {
        op,
        na,
        nb,
        prefix,
        role_b,
        pa,
        ..
    } = &two;
    let sample = sample_manifest("event-triggered.yaml");
    apply_and_wait(&nb.0, NAME, &sample, "Ready", op);
    // Account B has the reviewer role; account A has none.
    let reviewer_b = flow::harness(
        "POST",
        &format!("iam/reviewer?prefix={prefix}&account={ACCOUNT_B}"),
    )["roleArn"]
        .as_str()
        .expect("the reviewer role of B")
        .to_owned();
    assert!(
        reviewer_b.ends_with(&format!(":role/operators/{prefix}-reviewer")),
        "{reviewer_b}"
    );

    // Converged in B: read there, nothing to change. Read in the
    // reviewer's own account it would have been all creations.
    let (code, out) = plan_live(prefix, &nb.0, &sample, &[]);
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains(&format!("read in account {ACCOUNT_B}"))
            && out.contains(&reviewer_b)
            && out.contains("status.account"),
        "{out}"
    );
    assert!(out.contains("0 to create, 0 to update"), "{out}");

    // Changed in B behind Sluice's back: exactly that, from B.
    let dp = get_pipeline(&nb.0, NAME);
    let function = id_of(&dp, "Lambda::Function", "processor");
    let b = flow::account_admin(ACCOUNT_B).await;
    aws_sdk_lambda::Client::new(&b)
        .update_function_configuration()
        .function_name(&function)
        .memory_size(1024)
        .send()
        .await
        .expect("out-of-band change in B");
    let (code, out) = plan_live(prefix, &nb.0, &sample, &[]);
    assert_eq!(code, 2, "{out}");
    assert!(out.contains("memoryMiB: 1024 → 256"), "{out}");

    // The reviewer's session read and wrote nothing; the user itself only
    // assumed the role (and asked who it is).
    let session = flow::allowed_to(&format!("assumed-role/{prefix}-reviewer/"));
    assert!(
        session.iter().any(|a| a == "lambda:GetFunction"),
        "{session:?}"
    );
    for action in &session {
        let name = action.split_once(':').map_or("", |(_, n)| n);
        assert!(
            ["Get", "List", "Describe"]
                .iter()
                .any(|p| name.starts_with(p)),
            "the reviewer's session may only read: {action}"
        );
    }
    let user = flow::allowed_to(&format!("user/reviewer-{prefix}"));
    assert!(
        user.iter()
            .all(|a| a == "sts:AssumeRole" || a == "sts:GetCallerIdentity"),
        "{user:?}"
    );

    // As an attacker would: the operator's own role of B, which may write,
    // or a role of another account, is refused before any AWS call.
    let assumed_before = flow::allowed_to(&format!("user/reviewer-{prefix}"));
    let (code, out) = plan_live(prefix, &nb.0, &sample, &["--reviewer-role", role_b]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("operator's own role"), "{out}");
    let elsewhere = format!("arn:aws:iam::{ACCOUNT_A}:role/operators/{prefix}-reviewer");
    let (code, out) = plan_live(prefix, &nb.0, &sample, &["--reviewer-role", &elsewhere]);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains(&format!("a role of account {ACCOUNT_A}"))
            && out.contains(&format!("in account {ACCOUNT_B}")),
        "{out}"
    );
    assert_eq!(
        flow::allowed_to(&format!("user/reviewer-{prefix}")),
        assumed_before
    );
    let denied_operator_role = flow::harness("GET", "denials")
        .as_array()
        .into_iter()
        .flatten()
        .any(|d| {
            d["principal"]
                .as_str()
                .is_some_and(|p| p.contains(&format!("reviewer-{prefix}")))
                && d["resource"].as_str() == Some(role_b.as_str())
        });
    assert!(!denied_operator_role, "the operator's role was never tried");

    // A pipeline not yet applied in A's namespace: the cluster's
    // SluicePolicy says A, which has no reviewer role. The plan refuses
    // rather than read the reviewer's own account.
    let (code, out) = plan_live(prefix, &na.0, &sample, &[]);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains(&format!("in account {ACCOUNT_A}"))
            && out.contains(&format!("SluicePolicy \"{pa}\""))
            && out.contains(&format!(
                "arn:aws:iam::{ACCOUNT_A}:role/operators/{prefix}-reviewer"
            ))
            && out.contains("config/iam/reviewer-policy.json"),
        "{out}"
    );
}
