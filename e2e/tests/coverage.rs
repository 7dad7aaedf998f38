//! What the e2e run as a whole proves about the operator's Kubernetes
//! rights: every RBAC rule the chart grants it was used by some operator
//! pod, and none of their requests was refused. Read from the API server's
//! audit log of ServiceAccounts (`scripts/localenv.sh` writes
//! `$SLUICE_ENV_DIR/audit.log`), so these tests are `#[ignore]`d in the e2e
//! step and run after it (`make env-tests`: `--ignored`), when every other
//! test has run.

use std::collections::BTreeSet;

use serde_json::Value;
use sluice_e2e::{chart_dir, helm_ok};

/// The operators' requests in the audit log: those of the e2e releases'
/// ServiceAccounts (`system:serviceaccount:sluice-op-*:sluice-operator`),
/// not impersonated (`kubectl auth can-i --as` is the administrator's).
fn operator_requests() -> Vec<Value> {
    let dir = std::env::var("SLUICE_ENV_DIR").expect("SLUICE_ENV_DIR: the local environment");
    let raw = std::fs::read_to_string(format!("{dir}/audit.log")).expect("audit.log");
    raw.lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|e| {
            let user = e["user"]["username"].as_str().unwrap_or_default();
            user.starts_with("system:serviceaccount:sluice-op-")
                && user.ends_with(":sluice-operator")
                && e["impersonatedUser"].is_null()
                && e["stage"] == "ResponseComplete"
        })
        .collect()
}

/// `(apiGroup, resource[/subresource], verb)` of one request.
fn request_key(e: &Value) -> (String, String, String) {
    let o = &e["objectRef"];
    let resource = match o["subresource"].as_str() {
        Some(sub) => format!("{}/{sub}", o["resource"].as_str().unwrap_or_default()),
        None => o["resource"].as_str().unwrap_or_default().to_owned(),
    };
    (
        o["apiGroup"].as_str().unwrap_or_default().to_owned(),
        resource,
        e["verb"].as_str().unwrap_or_default().to_owned(),
    )
}

/// Every `(apiGroup, resource, verb)` the chart grants the operator in the
/// e2e tests' mode (namespaced, leader election on).
fn granted() -> BTreeSet<(String, String, String)> {
    let rendered = helm_ok(&[
        "template",
        "sluice",
        chart_dir().to_str().expect("path"),
        "-f",
        chart_dir()
            .join("ci/namespaced-values.yaml")
            .to_str()
            .expect("path"),
    ]);
    let mut out = BTreeSet::new();
    for object in sluice_e2e::yaml_documents(&rendered) {
        if !matches!(object["kind"].as_str(), Some("Role" | "ClusterRole")) {
            continue;
        }
        for rule in object["rules"].as_sequence().into_iter().flatten() {
            let list = |k: &str| -> Vec<String> {
                rule[k]
                    .as_sequence()
                    .into_iter()
                    .flatten()
                    .filter_map(|v| v.as_str().map(str::to_owned))
                    .collect()
            };
            for group in list("apiGroups") {
                for resource in list("resources") {
                    for verb in list("verbs") {
                        out.insert((group.clone(), resource.clone(), verb));
                    }
                }
            }
        }
    }
    out
}

#[test]
#[ignore = "reads the whole e2e run's audit log: run after the other e2e tests"]
fn every_rbac_rule_the_chart_grants_was_used_and_nothing_was_refused() {
    let requests = operator_requests();
    assert!(
        requests.len() > 100,
        "only {} operator requests in the audit log",
        requests.len()
    );
    let used: BTreeSet<_> = requests
        .iter()
        .filter(|e| {
            e["responseStatus"]["code"]
                .as_u64()
                .is_some_and(|c| c < 400)
        })
        .map(request_key)
        .collect();
    let granted = granted();
    let unused: Vec<_> = granted.iter().filter(|g| !used.contains(*g)).collect();
    println!(
        "{} operator requests; {} rules granted; used: {used:?}",
        requests.len(),
        granted.len()
    );
    assert!(
        unused.is_empty(),
        "granted but never used in the e2e run (remove them from the chart): {unused:?}"
    );
    // A 403 on a granted right is the chart's own ordering (a pod starting
    // before its RoleBinding, or outliving it on uninstall); anything
    // outside the grants is the operator asking for what it may not.
    let refused: Vec<_> = requests
        .iter()
        .filter(|e| e["responseStatus"]["code"] == 403)
        .map(request_key)
        .collect();
    let outside: BTreeSet<_> = refused.iter().filter(|k| !granted.contains(*k)).collect();
    println!(
        "{} requests refused while the release's RBAC was being made or removed",
        refused.len() - refused.iter().filter(|k| !granted.contains(*k)).count()
    );
    assert!(
        outside.is_empty(),
        "the operator asked for what the chart does not grant: {outside:?}"
    );
}

/// The actions the operator policy (`config/iam/operator-policy*.json`,
/// generated from the code by policygen) allows.
fn policy_actions() -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    // With the optional role-listing document, which the listing tests'
    // operators hold.
    for file in [
        "operator-policy.json",
        "operator-policy-services.json",
        "role-listing-policy.json",
    ] {
        let path = sluice_e2e::repo_root().join("config/iam").join(file);
        let doc: Value =
            serde_json::from_str(&std::fs::read_to_string(&path).expect("policy")).expect("JSON");
        for statement in doc["Statement"].as_array().expect("statements") {
            if statement["Effect"] != "Allow" {
                continue;
            }
            match &statement["Action"] {
                Value::String(a) => {
                    out.insert(a.clone());
                }
                Value::Array(actions) => {
                    out.extend(actions.iter().filter_map(|a| a.as_str().map(str::to_owned)));
                }
                _ => {}
            }
        }
    }
    out
}

#[test]
#[ignore = "reads what the emulator's IAM allowed in the whole e2e run: run after the other e2e tests"]
fn every_action_the_operator_policy_allows_was_needed_by_some_test() {
    let allowed: BTreeSet<String> = serde_json::from_value(sluice_e2e::flow::harness(
        "GET",
        "iam/allowed?principal=:user/operator-",
    ))
    .expect("actions");
    assert!(
        !allowed.is_empty(),
        "the emulator allowed the operators nothing: is IAM enforced?"
    );
    let declared = policy_actions();
    let unused: BTreeSet<&String> = declared.difference(&allowed).collect();
    println!(
        "{} actions allowed by the operator policy; {} used in the run",
        declared.len(),
        declared.intersection(&allowed).count()
    );
    let unchecked: BTreeSet<&String> = NOT_EVALUATED_BY_THE_EMULATOR
        .iter()
        .map(|(action, _)| {
            declared
                .get(*action)
                .unwrap_or_else(|| panic!("{action} is not in the policy any more: drop it here"))
        })
        .collect();
    let needed_by_none: Vec<_> = unused.difference(&unchecked).collect();
    assert!(
        needed_by_none.is_empty(),
        "allowed by config/iam/operator-policy*.json but needed by no test: {needed_by_none:?}"
    );
    let now_checked: Vec<_> = unchecked.iter().filter(|a| allowed.contains(**a)).collect();
    assert!(
        now_checked.is_empty(),
        "the emulator evaluates these now: remove them from NOT_EVALUATED_BY_THE_EMULATOR: {now_checked:?}"
    );
    // And the operators were never allowed what the policy does not name.
    let beyond: Vec<_> = allowed.iter().filter(|a| !declared.contains(*a)).collect();
    assert!(beyond.is_empty(), "{beyond:?}");
}

/// Actions of the operator policy that AWS checks and the emulator never
/// evaluates, so no test here can show them needed (or missing); each is
/// declared in the code with the call that needs it
/// (`operator/src/aws/operator_policy.rs`).
const NOT_EVALUATED_BY_THE_EMULATOR: &[(&str, &str)] = &[
    (
        "sts:GetCallerIdentity",
        "allowed to every caller, on AWS as in the emulator",
    ),
    (
        "lambda:ListTags",
        "AWS checks it within GetFunction, whose answer carries tags only with it",
    ),
    ("s3:TagResource", "AWS checks it for CreateBucket with tags"),
    (
        "s3:DeleteObjectVersion",
        "AWS checks it for DeleteObjects naming versions; the emulator checks s3:DeleteObject",
    ),
    (
        "ecr:BatchGetImage",
        "Lambda reads a team's image with it; the emulator runs no images",
    ),
    (
        "ecr:GetDownloadUrlForLayer",
        "Lambda reads a team's image with it; the emulator runs no images",
    ),
    (
        "ec2:DescribeSecurityGroups",
        "Lambda checks a function's security groups with it; the emulator checks none",
    ),
    (
        "ec2:DescribeSubnets",
        "Lambda checks a function's subnets with it; the emulator checks none",
    ),
    (
        "ec2:DescribeVpcs",
        "Lambda checks a function's VPC with it; the emulator checks none",
    ),
    (
        "lambda:GetLayerVersion",
        "Lambda reads a function's layers with it; the emulator never asks IAM",
    ),
    (
        "s3:GetBucketPublicAccessBlock",
        "the emulator never asks IAM about a bucket's public access block",
    ),
    (
        "s3:PutBucketPublicAccessBlock",
        "the emulator never asks IAM about a bucket's public access block",
    ),
];
