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

/// `kubectl sluice` with the cluster's pipeline `name` in `ns`.
fn run_plugin(args: &[&str]) -> (i32, String, String) {
    let dot = std::env::var("SLUICE_DOT").unwrap_or_else(|_| "dot".into());
    let out = kubectl_sluice(args, &[("SLUICE_DOT", dot.as_str())]);
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn status_and_graph_read_the_pipeline_from_the_cluster() {
    install_crd();
    let ns = Namespace::create();
    let op = Operator::start(&ns.0);
    let manifest = sample_manifest("event-triggered.yaml");
    apply_and_wait(&ns.0, NAME, &manifest, "Ready", &op);
    let dp = get_pipeline(&ns.0, NAME);

    // status: the conditions, the events the operator recorded, and every
    // inventory entry with its console page.
    let (code, out, err) = run_plugin(&["status", NAME, "-n", &ns.0]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        out.lines()
            .any(|l| l.trim_start().starts_with("Ready") && l.contains("True")),
        "{out}"
    );
    let inventory = dp["status"]["inventory"].as_array().expect("inventory");
    // ...in the account status records (the operator's own: no role).
    let account = dp["status"]["account"]["id"]
        .as_str()
        .expect("status.account");
    assert!(
        out.contains(&format!(
            "AWS resources ({}, account {account}):",
            inventory.len()
        )),
        "{out}"
    );
    for entry in inventory {
        let id = entry["id"].as_str().expect("id");
        assert!(out.contains(id), "{id} missing:\n{out}");
    }
    let function = id_of(&dp, "Lambda::Function", "processor");
    assert!(
        out.contains(&format!(
            "https://us-east-1.console.aws.amazon.com/lambda/home?region=us-east-1#/functions/{function}"
        )),
        "{out}"
    );
    let events = kubectl_events(&ns.0);
    assert!(!events.is_empty(), "the operator recorded no event");
    let shown = events.iter().filter(|r| out.contains(r.as_str())).count();
    assert!(shown > 0, "no event reason of {events:?} in:\n{out}");

    let (code, json, err) = run_plugin(&["status", NAME, "-n", &ns.0, "-o", "json"]);
    assert_eq!(code, 0, "{err}");
    let report: serde_json::Value = serde_json::from_str(&json).expect("status JSON");
    assert_eq!(
        report["inventory"].as_array().map(Vec::len),
        Some(inventory.len())
    );

    // graph NAME draws what the cluster holds: the same picture as the
    // manifest it was applied from.
    let file = std::env::temp_dir().join(format!("sluice-graph-{}.yaml", ns.0));
    std::fs::write(&file, &manifest).expect("manifest written");
    let path = file.to_str().expect("utf-8 path");
    let (code, from_cluster, err) = run_plugin(&["graph", NAME, "-n", &ns.0]);
    assert_eq!(code, 0, "{err}");
    let (_, from_file, _) = run_plugin(&["graph", "-f", path, "-n", &ns.0]);
    assert_eq!(from_cluster, from_file);
    assert!(from_cluster.contains("processor"), "{from_cluster}");

    // -o svg through Graphviz's dot: a real SVG with every node's label.
    let (code, svg, err) = run_plugin(&["graph", NAME, "-n", &ns.0, "-o", "svg"]);
    assert_eq!(code, 0, "{err}");
    assert!(
        svg.contains("<svg") && svg.trim_end().ends_with("</svg>"),
        "{svg}"
    );
    assert!(
        svg.contains("processor") && svg.contains("<g id=\"node"),
        "{svg}"
    );
    std::fs::remove_file(&file).ok();

    // A pipeline that is not there is named in the error.
    let (code, _, err) = run_plugin(&["status", "no-such-pipeline", "-n", &ns.0]);
    assert_ne!(code, 0);
    assert!(
        err.contains("no-such-pipeline") && err.contains("not found"),
        "{err}"
    );
}

/// The reasons of the events in `ns`.
fn kubectl_events(ns: &str) -> Vec<String> {
    let raw = sluice_e2e::kubectl_ok(&["get", "events", "-n", ns, "-o", "json"]);
    let v: serde_json::Value = serde_json::from_str(&raw).expect("events JSON");
    v["items"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|e| e["reason"].as_str().map(str::to_owned))
        .collect()
}
