//! The platform's guardrails, end to end: a SluicePolicy selecting a
//! namespace by its labels is enforced by the real API server at admission
//! (the ValidatingAdmissionPolicy of charts/sluice/templates/admission/) for what a
//! spec alone decides, and by the operator for the rest (`PolicyViolation`);
//! tightening a policy stalls a running pipeline without deleting anything,
//! and loosening it (or freeing room in the namespace) lets it converge.

use serde_json::{Value, json};
use sluice_e2e::{
    Namespace, Operator, Policy, apply_and_wait, condition, delete_pipeline, get_pipeline, id_of,
    install_crd, kubectl_stdin, manifest_as_json, s3, sample_manifest, sdk, token,
};
use sluice_operator::{
    crd::{DataPipeline, SluicePolicySpec},
    policy::{Effective, Neighbours, check},
};

const NAME: &str = "event-triggered";

/// What the operator's own check says of `manifest` under `policy`.
fn operator_refuses(manifest: &Value, name: &str, policy: &Value) -> Vec<String> {
    let dp: DataPipeline = serde_json::from_value(manifest.clone()).expect("pipeline");
    let spec: SluicePolicySpec = serde_json::from_value(policy.clone()).expect("policy");
    let effective = Effective::combine(&[(name, &spec)]);
    let catalog = sluice_integration_tests::every_handler(b"v1");
    let id = sluice_operator::naming::PipelineId {
        prefix: "e2e".into(),
        account: "123456789012".into(),
        region: "us-east-1".into(),
        namespace: "ns".into(),
        name: NAME.into(),
        uid: "uid".into(),
        namespace_uid: "ns-uid".into(),
        installation: sluice_operator::config::Secret("e2e-installation-secret".into()),
        adopt_from: None,
        kept_bucket_names: Default::default(),
    };
    let plan = sluice_operator::plan::plan(
        &dp.spec,
        sluice_operator::plan::PlanContext {
            id: &id,
            catalog: &catalog,
            permissions_boundary: None,
        },
    );
    let region = dp.spec.region.clone().unwrap_or_else(|| "us-east-1".into());
    check(
        &dp.spec,
        &plan,
        &region,
        "uid",
        &Neighbours::default(),
        &effective,
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn the_api_server_refuses_what_a_namespaces_policy_forbids_naming_field_and_policy() {
    install_crd();
    let name = format!("strict-{}", token());
    let limits = json!({
        "regions": ["us-east-1"],
        "limits": {"memoryMiB": 256, "functionsPerPipeline": 3, "scheduleIntervalMinutes": 10}
    });
    let _policy = Policy::apply(&name, limits.clone());
    let ns = Namespace::under_policy(&name);
    let sample = manifest_as_json(&sample_manifest("event-triggered.yaml"));

    let mut cases: Vec<(&str, Value, &str)> = Vec::new();
    let mut big = sample.clone();
    big["spec"]["functions"][0]["memoryMiB"] = json!(1024);
    cases.push(("memory", big, "processor asks for 1024 MiB"));
    let mut elsewhere = sample.clone();
    elsewhere["spec"]["region"] = json!("eu-west-1");
    cases.push((
        "region",
        elsewhere,
        "spec.region: eu-west-1 is not a region",
    ));
    let mut default_bus = sample.clone();
    default_bus["spec"]["rules"] = json!([
        {"name": "all", "pattern": {"source": [{"prefix": ""}]}, "targets": [{"queue": "failures"}]}
    ]);
    cases.push(("default bus", default_bus, "default event bus"));
    let mut keyed = sample.clone();
    keyed["spec"]["queues"][0]["encryption"] =
        json!({"kmsKeyArn": "arn:aws:kms:us-east-1:123456789012:key/platform-secrets"});
    cases.push(("KMS key", keyed, "key/platform-secrets is not a key"));
    let mut often = manifest_as_json(&sample_manifest("periodic-batch.yaml"));
    often["spec"]["schedules"][0]["expression"] = json!("rate(1 minute)");
    often["spec"]["functions"][0]["memoryMiB"] = json!(256);
    cases.push(("schedule", often, "limits.scheduleIntervalMinutes: 10"));
    let fan_out = manifest_as_json(&sample_manifest("fan-out.yaml"));
    cases.push((
        "functions",
        fan_out,
        "5 functions is more than SluicePolicy",
    ));

    for (what, manifest, needle) in cases {
        let out = kubectl_stdin(&["apply", "-n", &ns.0, "-f", "-"], &manifest.to_string());
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{what}: admitted");
        assert!(
            stderr.contains(needle) && stderr.contains(&format!("SluicePolicy \"{name}\"")),
            "{what}: the refusal names the field, the value and the policy: {stderr}"
        );
        // The operator, asked the same, refuses it too: admission and
        // reconcile never disagree.
        assert!(
            !operator_refuses(&manifest, &name, &limits).is_empty(),
            "{what}: the operator's check passes what admission refused"
        );
    }

    // Within the policy: admitted. And the same pipeline in a namespace the
    // policy does not select is judged by the shipped default instead.
    let mut fits = sample.clone();
    fits["spec"]["functions"][0]["memoryMiB"] = json!(256);
    let out = kubectl_stdin(&["apply", "-n", &ns.0, "-f", "-"], &fits.to_string());
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let other = Namespace::create();
    let mut big = sample.clone();
    big["spec"]["functions"][0]["memoryMiB"] = json!(1024);
    let out = kubectl_stdin(&["apply", "-n", &other.0, "-f", "-"], &big.to_string());
    assert!(
        out.status.success(),
        "the default policy allows 2048 MiB: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn tightening_a_policy_stalls_a_pipeline_and_deletes_nothing_loosening_it_converges_it() {
    install_crd();
    let name = format!("tight-{}", token());
    let generous = json!({"limits": {"pipelinesPerNamespace": 1}});
    let _policy = Policy::apply(&name, generous.clone());
    let ns = Namespace::under_policy(&name);
    let op = Operator::start(&ns.0);
    let manifest = sample_manifest("event-triggered.yaml");
    apply_and_wait(&ns.0, NAME, &manifest, "Ready", &op);
    let dp = get_pipeline(&ns.0, NAME);
    let input = id_of(&dp, "S3::Bucket", "input");

    // The platform lowers memory below what the pipeline runs with: the
    // pipeline stalls, naming the field, the value, the limit and policy.
    Policy::update(
        &name,
        json!({"limits": {"pipelinesPerNamespace": 1, "memoryMiB": 128}}),
    );
    op.wait_until(
        "the pipeline to stall on the tightened policy",
        std::time::Duration::from_secs(60),
        || {
            condition(&get_pipeline(&ns.0, NAME), "Stalled")
                .is_some_and(|c| c["reason"] == "PolicyViolation")
        },
    );
    let dp = get_pipeline(&ns.0, NAME);
    let stalled = condition(&dp, "Stalled").expect("Stalled");
    let message = stalled["message"].as_str().expect("message");
    for needle in [
        "spec.functions[0].memoryMiB: 256 MiB",
        &format!("SluicePolicy \"{name}\""),
        "limits.memoryMiB: 128",
    ] {
        assert!(message.contains(needle), "{needle} in {message}");
    }
    assert_eq!(condition(&dp, "Ready").expect("Ready")["status"], "False");
    // Nothing was deleted: the inventory and the bucket are still there.
    assert_eq!(id_of(&dp, "S3::Bucket", "input"), input);
    s3(&sdk().await)
        .head_bucket()
        .bucket(&input)
        .send()
        .await
        .expect("the bucket is still there");

    // Loosened again: it converges without a spec change.
    Policy::update(&name, generous.clone());
    op.wait_until(
        "the pipeline to be Ready again",
        std::time::Duration::from_secs(60),
        || condition(&get_pipeline(&ns.0, NAME), "Ready").is_some_and(|c| c["status"] == "True"),
    );

    // One pipeline per namespace: a second one stalls and creates nothing,
    // until the first is deleted.
    let second = manifest.replace("name: event-triggered", "name: second");
    assert!(second.contains("name: second"));
    apply_and_wait(&ns.0, "second", &second, "Stalled", &op);
    let dp2 = get_pipeline(&ns.0, "second");
    let message = condition(&dp2, "Stalled").expect("Stalled")["message"]
        .as_str()
        .expect("message")
        .to_owned();
    assert!(
        message.contains("metadata.namespace: 2 pipelines")
            && message.contains("limits.pipelinesPerNamespace: 1"),
        "{message}"
    );
    assert!(
        dp2["status"]["inventory"]
            .as_array()
            .is_none_or(Vec::is_empty),
        "the stalled pipeline created something: {dp2:#}"
    );
    delete_pipeline(&ns.0, NAME, &op);
    op.wait_until(
        "the second pipeline to converge once the first is gone",
        std::time::Duration::from_secs(90),
        || {
            condition(&get_pipeline(&ns.0, "second"), "Ready")
                .is_some_and(|c| c["status"] == "True")
        },
    );
    delete_pipeline(&ns.0, "second", &op);
}
