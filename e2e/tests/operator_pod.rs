//! The operator as a pod of its Deployment: Pod Security `restricted`
//! enforced on its namespace, RBAC limited to what it needs in the
//! namespaces it watches, and a deleted pod replaced by one that converges
//! a pipeline applied while no operator ran. Needs a cluster with a node
//! (`scripts/localenv.sh up --cluster`) and the operator's image
//! (`SLUICE_OPERATOR_IMAGE`); its own test binary, because it cordons the
//! only node for a moment.

use std::time::{Duration, Instant};

use sluice_e2e::{
    Namespace, Operator, apply_and_wait, assert_nothing_left, cluster::Cordon, condition,
    delete_pipeline, get_pipeline, id_of, install_crd, kubectl, kubectl_ok, kubectl_stdin,
    kubectl_stdin_ok, operator_user, s3, sample_manifest, sdk,
};

const NAME: &str = "event-triggered";

fn wait_until(what: &str, limit: Duration, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !check() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// `kubectl auth can-i VERB RESOURCE -n NS` as the operator's ServiceAccount.
fn operator_can(op_namespace: &str, verb: &str, resource: &str, namespace: &str) -> bool {
    let out = kubectl(&[
        "auth",
        "can-i",
        verb,
        resource,
        "-n",
        namespace,
        &format!("--as=system:serviceaccount:{op_namespace}:sluice-operator"),
    ]);
    String::from_utf8_lossy(&out.stdout).trim() == "yes"
}

#[tokio::test(flavor = "multi_thread")]
async fn a_deleted_operator_pod_is_replaced_and_converges_what_was_applied_meanwhile() {
    std::env::var("SLUICE_OPERATOR_IMAGE").expect(
        "SLUICE_OPERATOR_IMAGE is not set: this test runs the operator as a pod \
         (make env-tests loads the image into the local cluster)",
    );
    install_crd();
    let ns = Namespace::create();
    let other = Namespace::create();
    let op = Operator::start(&ns.0);
    let pod = op.pod().expect("the operator runs as a pod");
    let op_ns = pod.namespace().to_owned();

    // Pod Security "restricted" is enforced where the operator runs: a pod
    // that asks for nothing (so may run as root, escalate, keep
    // capabilities) is refused, and the operator's own pod was admitted.
    let careless = serde_json::json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "careless", "namespace": op_ns},
        "spec": {"containers": [{"name": "c", "image": "sluice.local/pause:3.10"}]}
    });
    let refused = kubectl_stdin(
        &["apply", "--dry-run=server", "-f", "-"],
        &careless.to_string(),
    );
    assert!(!refused.status.success(), "a careless pod was admitted");
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("violates PodSecurity \"restricted"),
        "{}",
        String::from_utf8_lossy(&refused.stderr)
    );

    // RBAC: what the operator needs in the namespace it watches, nothing
    // elsewhere, and no Secrets anywhere.
    let sa = (op_ns.as_str(), ns.0.as_str());
    assert!(operator_can(
        sa.0,
        "watch",
        "datapipelines.sluice.dev",
        sa.1
    ));
    assert!(operator_can(
        sa.0,
        "patch",
        "datapipelines.sluice.dev/status",
        sa.1
    ));
    assert!(operator_can(sa.0, "create", "events.events.k8s.io", sa.1));
    assert!(!operator_can(
        sa.0,
        "list",
        "datapipelines.sluice.dev",
        &other.0
    ));
    assert!(!operator_can(sa.0, "get", "secrets", sa.1));
    assert!(!operator_can(sa.0, "create", "pods", sa.1));
    assert!(!operator_can(
        sa.0,
        "delete",
        "datapipelines.sluice.dev",
        sa.1
    ));
    assert!(!operator_can(
        sa.0,
        "update",
        "datapipelines.sluice.dev",
        sa.1
    ));
    // Its Lease, in its own namespace only, and never deleted; the
    // guardrails' cluster-scoped objects, read only.
    assert!(operator_can(
        sa.0,
        "update",
        "leases.coordination.k8s.io",
        sa.0
    ));
    assert!(!operator_can(
        sa.0,
        "update",
        "leases.coordination.k8s.io",
        sa.1
    ));
    assert!(!operator_can(
        sa.0,
        "delete",
        "leases.coordination.k8s.io",
        sa.0
    ));
    assert!(!operator_can(sa.0, "get", "secrets", sa.0));
    assert!(operator_can(sa.0, "list", "sluicepolicies.sluice.dev", ""));
    assert!(!operator_can(
        sa.0,
        "create",
        "sluicepolicies.sluice.dev",
        ""
    ));
    assert!(operator_can(sa.0, "watch", "namespaces", ""));
    assert!(!operator_can(sa.0, "patch", "namespaces", ""));

    // Its AWS keys come from a Secret of its namespace, not from literals
    // in its spec; where the emulator enforces IAM they are its own IAM
    // user's (exactly config/iam/operator-policy.json), never the
    // administrator's the tests act as.
    let first = pod.running_pod().expect("a running operator pod");
    let container = &first["spec"]["containers"][0];
    assert_eq!(
        container["envFrom"][0]["secretRef"]["name"], "sluice-operator-aws",
        "{container:#}"
    );
    assert!(
        container["env"]
            .as_array()
            .expect("env")
            .iter()
            .all(|e| !e["name"].as_str().unwrap_or("").starts_with("AWS_SECRET")),
        "{container:#}"
    );
    if let Some((key, _)) = operator_user(&op.prefix) {
        let in_secret = kubectl_ok(&[
            "get",
            "secret",
            "-n",
            &op_ns,
            "sluice-operator-aws",
            "-o",
            "go-template={{.data.AWS_ACCESS_KEY_ID | base64decode}}",
        ]);
        assert_eq!(in_secret, key);
        assert_ne!(
            Some(in_secret),
            std::env::var("AWS_ACCESS_KEY_ID").ok(),
            "the operator pod holds the administrator's keys"
        );
    }

    // Take the operator down: cordon the node (as a drain would) and delete
    // its pod. The Deployment makes a replacement, which cannot start yet.
    let first_name = first["metadata"]["name"].as_str().expect("name").to_owned();
    let node = first["spec"]["nodeName"].as_str().expect("node").to_owned();
    let cordon = Cordon::node(&node);
    kubectl_ok(&[
        "delete",
        "pod",
        "-n",
        &op_ns,
        &first_name,
        "--wait",
        "--timeout=60s",
    ]);
    wait_until(
        "the Deployment's replacement pod, unschedulable",
        Duration::from_secs(60),
        || {
            pod.pods().iter().any(|p| {
                p["metadata"]["name"] != first_name.as_str()
                    && p["status"]["conditions"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .any(|c| c["type"] == "PodScheduled" && c["reason"] == "Unschedulable")
            })
        },
    );
    assert!(
        pod.running_pod().is_none(),
        "an operator pod still runs:\n{}",
        pod.diagnostics()
    );

    // Applied while no operator runs: nobody reconciles it.
    kubectl_stdin_ok(
        &["apply", "-n", &ns.0, "-f", "-"],
        &sample_manifest("event-triggered.yaml"),
    );
    let dp = get_pipeline(&ns.0, NAME);
    assert!(
        dp["status"].is_null(),
        "reconciled with no operator: {dp:#}"
    );
    assert!(dp["metadata"]["finalizers"].is_null(), "{dp:#}");

    // The node comes back: the replacement starts and converges it.
    drop(cordon);
    let started = Instant::now();
    pod.wait_ready(Duration::from_secs(120));
    let second = pod.running_pod().expect("the replacement pod");
    let second_name = second["metadata"]["name"]
        .as_str()
        .expect("name")
        .to_owned();
    assert_ne!(second_name, first_name);
    apply_and_wait(
        &ns.0,
        NAME,
        &sample_manifest("event-triggered.yaml"),
        "Ready",
        &op,
    );
    println!(
        "replacement ready and pipeline converged {:?} after uncordon",
        started.elapsed()
    );
    let dp = get_pipeline(&ns.0, NAME);
    assert_eq!(
        condition(&dp, "Ready").expect("Ready")["observedGeneration"],
        dp["metadata"]["generation"]
    );
    // The replacement did it: its Events carry its pod name.
    let events: serde_json::Value = serde_json::from_str(&kubectl_ok(&[
        "get",
        "events.events.k8s.io",
        "-n",
        &ns.0,
        "-o",
        "json",
    ]))
    .expect("events");
    let instances: Vec<&str> = events["items"]
        .as_array()
        .expect("items")
        .iter()
        .filter(|e| e["regarding"]["name"] == NAME)
        .filter_map(|e| e["reportingInstance"].as_str())
        .collect();
    assert!(
        !instances.is_empty() && instances.iter().all(|i| *i == second_name),
        "events reported by {instances:?}, expected {second_name}"
    );
    // And AWS has the pipeline's resources.
    let sdk = sdk().await;
    let input = id_of(&dp, "S3::Bucket", "input");
    s3(&sdk)
        .head_bucket()
        .bucket(&input)
        .send()
        .await
        .expect("the input bucket exists");
    println!("operator memory: {}", op.memory());

    delete_pipeline(&ns.0, NAME, &op);
    assert_nothing_left(&sdk, &op.prefix).await;
}
