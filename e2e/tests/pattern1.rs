//! Pattern 1 end to end: the sample applied with kubectl to a real
//! kube-apiserver, converged by the operator binary into the AWS emulator,
//! updated, and deleted (with `Delete` and with `Retain`); invalid manifests
//! rejected by the real apiserver.

use std::time::Duration;

use base64::Engine;
use serde_json::{Value, json};
use sluice_e2e::{
    Namespace, Operator, apply_and_wait, condition, delete_pipeline, get_pipeline, id_of, ids,
    install_crd, kubectl_ok, s3, sample_manifest, sdk,
};

const NAME: &str = "event-triggered";

fn sample() -> String {
    sample_manifest("event-triggered.yaml")
}

fn apply_and_wait_ready(ns: &str, manifest: &str, op: &Operator) -> Duration {
    apply_and_wait(ns, NAME, manifest, "Ready", op)
}

fn delete_and_wait(ns: &str, op: &Operator) {
    delete_pipeline(ns, NAME, op);
}

fn manifest_code_sha256() -> String {
    let dir = std::env::var("SLUICE_HANDLERS_DIR").expect("SLUICE_HANDLERS_DIR");
    let manifest: Value = serde_json::from_str(
        &std::fs::read_to_string(format!("{dir}/manifest.json")).expect("manifest"),
    )
    .expect("manifest JSON");
    assert!(
        manifest["handlers"]
            .as_array()
            .expect("handlers")
            .iter()
            .any(|h| h == "s3-json-transform"),
        "s3-json-transform packaged: {manifest}"
    );
    let hex = manifest["sha256"].as_str().expect("sha256").to_owned();
    let bytes: Vec<u8> = (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).expect("hex"))
        .collect();
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

#[tokio::test(flavor = "multi_thread")]
async fn pattern1_sample_converges_updates_and_deletes() {
    install_crd();
    let ns = Namespace::create();
    let op = Operator::start(&ns.0);
    let sdk = sdk().await;

    let to_ready = apply_and_wait_ready(&ns.0, &sample(), &op);
    println!("kubectl apply → Ready: {:.2} s", to_ready.as_secs_f64());

    let dp = get_pipeline(&ns.0, NAME);
    assert_eq!(
        dp["status"]["observedGeneration"],
        dp["metadata"]["generation"]
    );
    let ready = condition(&dp, "Ready").expect("Ready present");
    assert_eq!(ready["status"], "True");
    assert_eq!(ready["observedGeneration"], dp["metadata"]["generation"]);
    assert!(
        condition(&dp, "Stalled").is_none() && condition(&dp, "Reconciling").is_none(),
        "{dp:#}"
    );
    let inventory = dp["status"]["inventory"].as_array().expect("inventory");
    assert_eq!(inventory.len(), 8, "{inventory:#?}");
    assert!(
        inventory.iter().all(|e| e["state"] == "Ready"),
        "{inventory:#?}"
    );

    let input = id_of(&dp, "S3::Bucket", "input");
    let processed = id_of(&dp, "S3::Bucket", "processed");
    let function = id_of(&dp, "Lambda::Function", "processor");
    let role = id_of(&dp, "IAM::Role", "processor");

    // The function, its configuration and its code.
    let lambda = aws_sdk_lambda::Client::new(&sdk);
    let got = lambda
        .get_function()
        .function_name(&function)
        .send()
        .await
        .expect("function");
    let c = got.configuration().expect("configuration");
    assert_eq!(c.memory_size(), Some(256));
    assert_eq!(c.timeout(), Some(60));
    assert_eq!(c.runtime().map(|r| r.as_str()), Some("provided.al2023"));
    // One `bootstrap` serves every handler; `Handler` names the one to run.
    assert_eq!(c.handler(), Some("s3-json-transform"));
    assert_eq!(
        c.tracing_config()
            .and_then(|t| t.mode())
            .map(|m| m.as_str()),
        Some("Active")
    );
    // Every role lives under the installation's path, /<prefix>/.
    assert!(
        c.role()
            .expect("role")
            .ends_with(&format!(":role/{}/{role}", op.prefix)),
        "{:?}",
        c.role()
    );
    let env = c
        .environment()
        .and_then(|e| e.variables())
        .expect("environment");
    assert_eq!(env.get("OUTPUT_BUCKET"), Some(&processed));
    let code = manifest_code_sha256();
    assert_eq!(
        c.code_sha256(),
        Some(code.as_str()),
        "deployed the packaged handler"
    );
    assert_eq!(dp["status"]["functions"][0]["codeSha256"], code.as_str());

    // The role's exact policy.
    let iam = aws_sdk_iam::Client::new(&sdk);
    let doc = iam
        .get_role_policy()
        .role_name(&role)
        .policy_name("sluice")
        .send()
        .await
        .expect("policy");
    let doc = sluice_operator::iam::parse_policy(doc.policy_document()).expect("policy JSON");
    let account = c
        .function_arn()
        .expect("arn")
        .split(':')
        .nth(4)
        .expect("account")
        .to_owned();
    let mut actions: Vec<(String, String)> = Vec::new();
    for s in doc["Statement"].as_array().expect("statements") {
        assert_eq!(s["Effect"], "Allow");
        let list = |v: &Value| match v {
            Value::Array(a) => a
                .iter()
                .map(|x| x.as_str().expect("str").to_owned())
                .collect::<Vec<_>>(),
            other => vec![other.as_str().expect("str").to_owned()],
        };
        for a in list(&s["Action"]) {
            for r in list(&s["Resource"]) {
                actions.push((a.clone(), r));
            }
        }
    }
    actions.sort();
    let log_group = format!("arn:aws:logs:us-east-1:{account}:log-group:/aws/lambda/{function}:*");
    let mut expected = vec![
        ("logs:CreateLogGroup".to_owned(), log_group.clone()),
        ("logs:CreateLogStream".to_owned(), log_group.clone()),
        ("logs:PutLogEvents".to_owned(), log_group),
        ("s3:GetObject".to_owned(), format!("arn:aws:s3:::{input}/*")),
        (
            "s3:AbortMultipartUpload".to_owned(),
            format!("arn:aws:s3:::{processed}/*"),
        ),
        (
            "s3:PutObject".to_owned(),
            format!("arn:aws:s3:::{processed}/*"),
        ),
        (
            "sqs:SendMessage".to_owned(),
            format!(
                "arn:aws:sqs:us-east-1:{account}:{}",
                id_of(&dp, "SQS::Queue", "failures")
            ),
        ),
        ("xray:PutTelemetryRecords".to_owned(), "*".to_owned()),
        ("xray:PutTraceSegments".to_owned(), "*".to_owned()),
    ];
    expected.sort();
    assert_eq!(
        actions, expected,
        "least privilege: exactly the graph's edges"
    );

    // S3 may invoke the function, from the input bucket of this account only.
    let policy = lambda
        .get_policy()
        .function_name(&function)
        .send()
        .await
        .expect("resource policy");
    let policy: Value = serde_json::from_str(policy.policy().expect("policy")).expect("JSON");
    let statement = &policy["Statement"][0];
    assert_eq!(statement["Principal"]["Service"], "s3.amazonaws.com");
    assert_eq!(statement["Action"], "lambda:InvokeFunction");
    let text = statement["Condition"].to_string();
    assert!(
        text.contains(&format!("arn:aws:s3:::{input}")) && text.contains(&account),
        "{text}"
    );

    // The input bucket notifies the function on object creation.
    let s3 = s3(&sdk);
    let n = s3
        .get_bucket_notification_configuration()
        .bucket(&input)
        .send()
        .await
        .expect("notification");
    let l = n.lambda_function_configurations();
    assert_eq!(l.len(), 1);
    assert_eq!(l[0].lambda_function_arn(), c.function_arn().expect("arn"));
    assert_eq!(
        l[0].events().iter().map(|e| e.as_str()).collect::<Vec<_>>(),
        ["s3:ObjectCreated:*"]
    );

    // Events say what happened.
    let events = kubectl_ok(&["get", "events", "-n", &ns.0, "-o", "json"]);
    for entry in inventory {
        let kind = entry["kind"].as_str().expect("kind");
        let note = format!("{kind} {}: Created", entry["id"].as_str().expect("id"));
        assert!(events.contains(&note), "no event {note:?} in {events}");
    }

    // Steady state: a reconcile with nothing to do makes no AWS write.
    let writes = op.aws_writes();
    let reconciles = op.reconciles();
    kubectl_ok(&[
        "annotate",
        "-n",
        &ns.0,
        &format!("dp/{NAME}"),
        "e2e/poke=1",
        "--overwrite",
    ]);
    op.wait_until(
        "a reconcile after the annotation",
        Duration::from_secs(30),
        || op.reconciles() > reconciles,
    );
    assert_eq!(
        op.aws_writes(),
        writes,
        "steady state must not write to AWS"
    );

    // Changing memory updates the function and observedGeneration follows.
    kubectl_ok(&[
        "patch",
        "-n",
        &ns.0,
        &format!("dp/{NAME}"),
        "--type=json",
        "-p",
        r#"[{"op":"replace","path":"/spec/functions/0/memoryMiB","value":512}]"#,
    ]);
    let generation = get_pipeline(&ns.0, NAME)["metadata"]["generation"]
        .as_i64()
        .expect("generation");
    assert_eq!(generation, 2);
    op.wait_until(
        "observedGeneration 2 and Ready",
        Duration::from_secs(60),
        || {
            let dp = get_pipeline(&ns.0, NAME);
            dp["status"]["observedGeneration"] == json!(generation)
                && condition(&dp, "Ready").is_some_and(|c| {
                    c["status"] == "True" && c["observedGeneration"] == json!(generation)
                })
        },
    );
    let c = lambda
        .get_function_configuration()
        .function_name(&function)
        .send()
        .await
        .expect("function");
    assert_eq!(c.memory_size(), Some(512));

    // Delete: the finalizer removes every AWS resource first.
    delete_and_wait(&ns.0, &op);
    assert!(
        lambda
            .get_function()
            .function_name(&function)
            .send()
            .await
            .is_err(),
        "function deleted"
    );
    assert!(
        iam.get_role().role_name(&role).send().await.is_err(),
        "role deleted"
    );
    for bucket in [&input, &processed] {
        assert!(
            s3.head_bucket().bucket(bucket).send().await.is_err(),
            "bucket {bucket} deleted"
        );
    }
    println!("operator memory: {}", op.memory());
}

#[tokio::test(flavor = "multi_thread")]
async fn retain_keeps_every_resource_with_only_the_release_marker() {
    install_crd();
    let ns = Namespace::create();
    let op = Operator::start(&ns.0);
    let sdk = sdk().await;

    let manifest = sample().replace("deletionPolicy: Delete", "deletionPolicy: Retain");
    assert!(manifest.contains("deletionPolicy: Retain"));
    apply_and_wait_ready(&ns.0, &manifest, &op);
    let dp = get_pipeline(&ns.0, NAME);
    let function = id_of(&dp, "Lambda::Function", "processor");
    let role = id_of(&dp, "IAM::Role", "processor");
    let buckets: Vec<String> = ids(&dp, "S3::Bucket")
        .into_iter()
        .map(|(_, id)| id)
        .collect();

    delete_and_wait(&ns.0, &op);

    let lambda = aws_sdk_lambda::Client::new(&sdk);
    let f = lambda
        .get_function()
        .function_name(&function)
        .send()
        .await
        .expect("function retained");
    // Sluice's tags are gone but for the marker naming the releasing
    // pipeline, its namespace (by UID) and the installation: only a
    // pipeline of this namespace and name, in this very namespace, adopts
    // them.
    let namespace_uid = kubectl_ok(&["get", "namespace", &ns.0, "-o", "jsonpath={.metadata.uid}"]);
    let marker: std::collections::BTreeMap<String, String> = [
        (
            "sluice.dev/released-by".to_owned(),
            format!("{}/{NAME}", ns.0),
        ),
        (
            "sluice.dev/released-from-namespace-uid".to_owned(),
            namespace_uid,
        ),
        (
            "sluice.dev/installation".to_owned(),
            sluice_e2e::installation_fingerprint(&op.prefix),
        ),
    ]
    .into();
    let sluice_only = |tags: Vec<(String, String)>| -> std::collections::BTreeMap<String, String> {
        tags.into_iter()
            .filter(|(k, _)| k.starts_with("sluice.dev/"))
            .collect()
    };
    let function_tags = f.tags().cloned().unwrap_or_default();
    assert_eq!(
        sluice_only(function_tags.into_iter().collect()),
        marker,
        "function"
    );
    let iam = aws_sdk_iam::Client::new(&sdk);
    let tags = iam
        .list_role_tags()
        .role_name(&role)
        .send()
        .await
        .expect("role retained");
    let role_tags = tags
        .tags()
        .iter()
        .map(|t| (t.key().to_owned(), t.value().to_owned()))
        .collect();
    assert_eq!(sluice_only(role_tags), marker, "role");
    let s3 = s3(&sdk);
    for bucket in &buckets {
        s3.head_bucket()
            .bucket(bucket)
            .send()
            .await
            .expect("bucket retained");
        let tags = s3
            .get_bucket_tagging()
            .bucket(bucket)
            .send()
            .await
            .expect("bucket tags")
            .tag_set()
            .iter()
            .map(|t| (t.key().to_owned(), t.value().to_owned()))
            .collect();
        assert_eq!(sluice_only(tags), marker, "bucket {bucket}");
    }

    // Tidy up the emulator by hand, as a user of Retain would.
    lambda
        .delete_function()
        .function_name(&function)
        .send()
        .await
        .expect("delete function");
    iam.delete_role_policy()
        .role_name(&role)
        .policy_name("sluice")
        .send()
        .await
        .expect("delete policy");
    iam.delete_role()
        .role_name(&role)
        .send()
        .await
        .expect("delete role");
    for bucket in &buckets {
        s3.delete_bucket()
            .bucket(bucket)
            .send()
            .await
            .expect("delete bucket");
    }
}
