//! `kubectl sluice plan --live` against the emulator, run as a reviewer
//! whose IAM policy is config/iam/reviewer-policy.json (the operator's
//! reads, no write): no change after convergence, exactly the drifted
//! setting after an out-of-band change, creations for a new function, and
//! not one request IAM refused.

use sluice_e2e::{
    Namespace, Operator, apply_and_wait, flow::harness, get_pipeline, id_of, install_crd,
    installation_id, kubectl_sluice, permissions_boundary, sample_manifest,
};

const NAME: &str = "event-triggered";

/// Runs `plan --live` on `manifest` as the operator of `op` would name
/// things; returns (exit code, standard output).
fn plan_live(ns: &str, op: &Operator, manifest: &str) -> (i32, String) {
    let file = std::env::temp_dir().join(format!("sluice-plan-live-{ns}.yaml"));
    std::fs::write(&file, manifest).expect("manifest written");
    let reviewer = harness("POST", &format!("iam/reviewer?prefix={}", op.prefix));
    let key = reviewer["accessKeyId"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let secret = reviewer["secretAccessKey"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let installation = installation_id(&op.prefix);
    let boundary = permissions_boundary(&op.prefix);
    let mut env = vec![
        ("SLUICE_NAME_PREFIX", op.prefix.as_str()),
        ("SLUICE_INSTALLATION_ID", installation.as_str()),
        ("SLUICE_PERMISSIONS_BOUNDARY", boundary.as_str()),
    ];
    if std::env::var("SLUICE_HARNESS_IAM").as_deref() == Ok("enforce") {
        env.push(("AWS_ACCESS_KEY_ID", key.as_str()));
        env.push(("AWS_SECRET_ACCESS_KEY", secret.as_str()));
    }
    let out = kubectl_sluice(
        &[
            "plan",
            "--live",
            "-f",
            file.to_str().expect("utf-8 path"),
            "-n",
            ns,
        ],
        &env,
    );
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr);
    (out.status.code().unwrap_or(-1), format!("{stdout}{stderr}"))
}

/// The changed lines of a plan (`+`, `~`, `-`, `!`).
fn changed(out: &str) -> Vec<String> {
    out.lines()
        .filter(|l| {
            let t = l.trim_start();
            ["+ ", "~ ", "- ", "! "].iter().any(|p| t.starts_with(p))
        })
        .map(str::to_owned)
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn plan_live_shows_nothing_after_convergence_then_exactly_the_drift_and_the_new_function() {
    install_crd();
    let ns = Namespace::create();
    let op = Operator::start(&ns.0);
    let manifest = sample_manifest("event-triggered.yaml");
    apply_and_wait(&ns.0, NAME, &manifest, "Ready", &op);

    // Converged: nothing would change, so exit 0.
    let (code, out) = plan_live(&ns.0, &op, &manifest);
    assert_eq!(code, 0, "{out}");
    assert!(changed(&out).is_empty(), "{out}");
    assert!(out.contains("0 to create, 0 to update"), "{out}");

    // Someone changes the function's memory behind Sluice's back: exactly
    // that setting, on that function, with exit 2.
    let dp = get_pipeline(&ns.0, NAME);
    let function = id_of(&dp, "Lambda::Function", "processor");
    let lambda = aws_sdk_lambda::Client::new(&sluice_e2e::sdk().await);
    lambda
        .update_function_configuration()
        .function_name(&function)
        .memory_size(1024)
        .send()
        .await
        .expect("out-of-band change");
    let (code, out) = plan_live(&ns.0, &op, &manifest);
    assert_eq!(code, 2, "{out}");
    let lines = changed(&out);
    assert_eq!(lines.len(), 1, "{out}");
    assert!(
        lines[0].contains("update") && lines[0].contains(&function),
        "{out}"
    );
    assert!(out.contains("memoryMiB: 1024 → 256"), "{out}");

    // A function added to the manifest (not applied): its creations.
    let with_new = manifest.replace(
        "  functions:\n",
        "  functions:\n    - name: auditor\n      handler: transform\n",
    );
    assert_ne!(with_new, manifest);
    let (code, out) = plan_live(&ns.0, &op, &with_new);
    assert_eq!(code, 2, "{out}");
    assert!(
        out.lines().any(|l| l.contains("+ create")
            && l.contains("Lambda::Function")
            && l.contains("(auditor)")),
        "{out}"
    );
    assert!(
        out.lines()
            .any(|l| l.contains("+ create") && l.contains("IAM::Role") && l.contains("(auditor)")),
        "{out}"
    );
    // The function and its role, nothing of the existing pipeline.
    let created = changed(&out)
        .iter()
        .filter(|l| l.contains("+ create"))
        .count();
    assert_eq!(created, 2, "{out}");

    // The reviewer's policy held every read plan --live made.
    if std::env::var("SLUICE_HARNESS_IAM").as_deref() == Ok("enforce") {
        let denials = harness("GET", "denials");
        let mine: Vec<&serde_json::Value> = denials
            .as_array()
            .into_iter()
            .flatten()
            .filter(|d| {
                d["principal"]
                    .as_str()
                    .is_some_and(|p| p.contains(&format!("reviewer-{}", op.prefix)))
            })
            .collect();
        assert!(mine.is_empty(), "IAM refused the reviewer: {mine:#?}");
    }
}
