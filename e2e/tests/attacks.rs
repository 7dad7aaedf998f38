//! A tenant's attacks on other tenants, written as the attacker would, each
//! against the real API server and an emulator that evaluates IAM,
//! resource policies, accounts and ExpectedBucketOwner as AWS does
//! (e2e/moto/sluice_harness/iam.py). Each proves the attack fails and the
//! victim is untouched. (The guardrails' own tests are in policy.rs, the
//! operator's keys in leaked_keys.rs.)

use std::time::Duration;

use serde_json::json;
use sluice_e2e::{
    Namespace, Operator, Policy, apply_and_wait, arn_of, condition, delete_pipeline,
    flow::{harness, role_may, take_messages, wait_for},
    get_pipeline, id_of, install_crd, installation_id, kubectl, kubectl_ok, kubectl_stdin,
    kubectl_stdin_ok, manifest_as_json, s3, sample_manifest, sdk, sdk_as, token,
};
use sluice_operator::naming::{NameKind, PipelineId, TAG_RELEASED_BY};

const LIMIT: Duration = Duration::from_secs(60);

async fn function_env(function: &str, var: &str) -> String {
    aws_sdk_lambda::Client::new(&sdk().await)
        .get_function_configuration()
        .function_name(function)
        .send()
        .await
        .expect("function")
        .environment()
        .and_then(|e| e.variables())
        .and_then(|v| v.get(var))
        .cloned()
        .unwrap_or_else(|| panic!("{function} has no {var}"))
}

/// Wiretap and forgery on the account's default bus. A tenant allowed the
/// default bus writes a rule matching every S3 event (`source: [aws.s3]`)
/// into its queue: it hears its own bucket's events, never the victim's,
/// although the victim's events travel on that bus (they start its
/// workflow). And its function may publish only as its own pipeline: not
/// with the victim's source, not as AWS.
#[tokio::test(flavor = "multi_thread")]
async fn the_default_bus_neither_leaks_other_pipelines_events_nor_carries_forged_ones() {
    install_crd();
    let victim = Namespace::create();
    let policy = format!("bus-{}", token());
    let _policy = Policy::apply(&policy, json!({"allow": {"defaultEventBus": true}}));
    let tenant = Namespace::under_policy(&policy);
    let op = Operator::start_watching(&[&victim.0, &tenant.0]);
    let sdk = sdk().await;
    let (s3, sqs) = (s3(&sdk), aws_sdk_sqs::Client::new(&sdk));

    apply_and_wait(
        &victim.0,
        "orchestrated",
        &sample_manifest("orchestrated.yaml"),
        "Ready",
        &op,
    );
    let listener = r#"
apiVersion: sluice.dev/v1alpha1
kind: DataPipeline
metadata: {name: listener}
spec:
  buckets: [{name: mine}]
  queues: [{name: heard}]
  functions:
    - name: talker
      handler: router
      uses: [{eventBus: default, access: put, env: EVENT_BUS}]
  workflows:
    - name: noop
      triggers: [{bucket: {name: mine}}]
      definition: {StartAt: Done, States: {Done: {Type: Pass, End: true}}}
  rules:
    - name: every-s3-event
      pattern: {source: [aws.s3]}
      targets: [{queue: heard}]
"#;
    apply_and_wait(&tenant.0, "listener", listener, "Ready", &op);
    let v = get_pipeline(&victim.0, "orchestrated");
    let t = get_pipeline(&tenant.0, "listener");
    let victim_input = id_of(&v, "S3::Bucket", "input");
    let heard = id_of(&t, "SQS::Queue", "heard");
    let heard_url = sluice_e2e::flow::queue_url(&sqs, &heard).await;

    // The victim's object: its workflow starts through the default bus.
    s3.put_object()
        .bucket(&victim_input)
        .key("orders/secret-order.json")
        .body(b"{\"order_id\": \"secret\", \"items\": []}".to_vec().into())
        .send()
        .await
        .expect("victim's object");
    let sfn = aws_sdk_sfn::Client::new(&sdk);
    let machine = arn_of(&v, "StepFunctions::StateMachine", "etl");
    wait_for("the victim's workflow to start", LIMIT, || {
        let (sfn, machine) = (sfn.clone(), machine.clone());
        async move {
            let list = sfn
                .list_executions()
                .state_machine_arn(&machine)
                .send()
                .await
                .ok()?;
            (!list.executions().is_empty()).then_some(())
        }
    })
    .await;
    // The tenant's own object: its rule hears it.
    s3.put_object()
        .bucket(id_of(&t, "S3::Bucket", "mine"))
        .key("own.json")
        .body(b"{}".to_vec().into())
        .send()
        .await
        .expect("tenant's object");
    let mut messages = wait_for("the tenant's own event in its queue", LIMIT, || {
        let (sqs, url) = (sqs.clone(), heard_url.clone());
        async move {
            let got = take_messages(&sqs, &url).await;
            (!got.is_empty()).then_some(got)
        }
    })
    .await;
    // Whatever else arrives stays its own.
    messages.extend(take_messages(&sqs, &heard_url).await);
    assert!(
        messages.iter().all(|m| !m.contains(&victim_input)),
        "the victim's event reached the tenant's queue: {messages:?}"
    );
    assert!(
        messages.iter().any(|m| m.contains("own.json")),
        "{messages:?}"
    );

    // Forgery: the tenant's function (its role, as its own code would use
    // it) may put events with its own source only.
    let talker_role = arn_of(&t, "IAM::Role", "talker");
    let own = function_env(
        &id_of(&t, "Lambda::Function", "talker"),
        "SLUICE_EVENT_SOURCE",
    )
    .await;
    let victims = function_env(
        &id_of(&v, "Lambda::Function", "notify"),
        "SLUICE_EVENT_SOURCE",
    )
    .await;
    let default_bus = "arn:aws:events:us-east-1:123456789012:event-bus/default";
    assert!(role_may(
        &talker_role,
        "events:PutEvents",
        default_bus,
        &[("events:source", &own)]
    ));
    for forged in [victims.as_str(), "aws.s3", "sluice.router"] {
        assert!(
            !role_may(
                &talker_role,
                "events:PutEvents",
                default_bus,
                &[("events:source", forged)]
            ),
            "the tenant may publish as {forged}"
        );
    }

    sluice_e2e::flow::empty_buckets(&s3, &t).await;
    delete_pipeline(&tenant.0, "listener", &op);
    sluice_e2e::flow::empty_buckets(&s3, &v).await;
    delete_pipeline(&victim.0, "orchestrated", &op);
}

/// Squatting: someone makes, in another account, the bucket a victim's
/// pipeline would get, marks it as released to the victim and lets
/// everyone in. Without the installation's secret they cannot even compute
/// the name; given it, the operator still refuses the bucket (S3 answers
/// 403 to calls expecting this account as owner), stalls, grants nothing on
/// it, and leaves it as it was.
#[tokio::test(flavor = "multi_thread")]
async fn a_bucket_made_first_in_another_account_is_never_adopted_or_used() {
    install_crd();
    let victim = Namespace::create();
    let op = Operator::start(&victim.0);
    let name = "event-triggered";
    let id = PipelineId {
        prefix: op.prefix.clone(),
        account: "123456789012".into(),
        region: "us-east-1".into(),
        namespace: victim.0.clone(),
        name: name.into(),
        uid: String::new(),
        namespace_uid: String::new(),
        installation: sluice_operator::config::Secret(installation_id(&op.prefix)),
        adopt_from: None,
        kept_bucket_names: Default::default(),
    };
    let squatted = id.aws_name(NameKind::Bucket, "input");
    assert_ne!(
        squatted,
        id.unsalted_bucket_name("input"),
        "the name an outsider can compute is not the one used"
    );

    let attacker = harness("POST", "iam/account?id=210987654321");
    let attacker = s3(&sdk_as(
        attacker["accessKeyId"].as_str().expect("key"),
        attacker["secretAccessKey"].as_str().expect("secret"),
        "us-east-1",
    )
    .await);
    attacker
        .create_bucket()
        .bucket(&squatted)
        .send()
        .await
        .expect("the attacker's bucket");
    let marker = format!("{}/{name}", victim.0);
    sluice_e2e::tag_bucket(&attacker, &squatted, TAG_RELEASED_BY, &marker).await;
    let open = json!({"Version": "2012-10-17", "Statement": [{"Effect": "Allow",
        "Principal": "*", "Action": "s3:*",
        "Resource": [format!("arn:aws:s3:::{squatted}"), format!("arn:aws:s3:::{squatted}/*")]}]});
    attacker
        .put_bucket_policy()
        .bucket(&squatted)
        .policy(open.to_string())
        .send()
        .await
        .expect("an open bucket policy");

    apply_and_wait(
        &victim.0,
        name,
        &sample_manifest("event-triggered.yaml"),
        "Stalled",
        &op,
    );
    let dp = get_pipeline(&victim.0, name);
    let stalled = condition(&dp, "Stalled").expect("Stalled");
    assert_eq!(stalled["reason"], "OwnershipConflict", "{dp:#}");
    let message = stalled["message"].as_str().expect("message");
    assert!(
        message.contains(&squatted) && message.contains("another AWS account"),
        "{message}"
    );
    // Nothing was granted on it: the function's role was never written.
    let role = id.aws_name(NameKind::Role, "processor");
    assert!(
        aws_sdk_iam::Client::new(&sdk().await)
            .get_role()
            .role_name(&role)
            .send()
            .await
            .is_err(),
        "role {role} exists"
    );
    // The attacker's bucket is as they left it.
    let tags = attacker
        .get_bucket_tagging()
        .bucket(&squatted)
        .send()
        .await
        .expect("tags");
    assert_eq!(tags.tag_set().len(), 1, "{:?}", tags.tag_set());

    delete_pipeline(&victim.0, name, &op);
    attacker
        .delete_bucket_policy()
        .bucket(&squatted)
        .send()
        .await
        .expect("tidy up");
    attacker
        .delete_bucket()
        .bucket(&squatted)
        .send()
        .await
        .expect("tidy up");
}

/// A team leaves: its pipeline is deleted with Retain (the data stays) and
/// its namespace deleted. Someone creates a namespace of the same name and
/// the same pipeline, to read the departed team's data: it is refused
/// (the release names the namespace's UID), no role is granted anything on
/// the bucket. The platform can let a team back in explicitly: a policy
/// allowing adoption from an earlier namespace and the pipeline naming
/// that namespace's UID.
#[tokio::test(flavor = "multi_thread")]
async fn a_namespace_made_again_under_a_departed_teams_name_does_not_adopt_its_data() {
    install_crd();
    let name = format!("e2e-{}", token());
    kubectl_ok(&["create", "namespace", &name]);
    let first_uid = kubectl_ok(&["get", "namespace", &name, "-o", "jsonpath={.metadata.uid}"]);
    let op = Operator::start(&name);
    let sdk = sdk().await;
    let s3 = s3(&sdk);
    let pipeline = "event-triggered";
    let retained = sample_manifest("event-triggered.yaml")
        .replace("deletionPolicy: Delete", "deletionPolicy: Retain");
    apply_and_wait(&name, pipeline, &retained, "Ready", &op);
    let dp = get_pipeline(&name, pipeline);
    let input = id_of(&dp, "S3::Bucket", "input");
    let role = id_of(&dp, "IAM::Role", "processor");
    s3.put_object()
        .bucket(&input)
        .key("payroll.csv")
        .body(b"alice,100".to_vec().into())
        .send()
        .await
        .expect("the team's data");
    delete_pipeline(&name, pipeline, &op);
    // The Retain left the role too; the departed team's platform removes
    // it (the bucket is what holds data).
    let iam = aws_sdk_iam::Client::new(&sdk);
    let _ = iam
        .delete_role_policy()
        .role_name(&role)
        .policy_name("sluice")
        .send()
        .await;
    let _ = iam.delete_role().role_name(&role).send().await;
    kubectl_ok(&["delete", "namespace", &name, "--wait", "--timeout=120s"]);

    // The newcomer.
    kubectl_ok(&["create", "namespace", &name]);
    op.rebind(&name);
    apply_and_wait(&name, pipeline, &retained, "Stalled", &op);
    let dp = get_pipeline(&name, pipeline);
    let stalled = condition(&dp, "Stalled").expect("Stalled");
    assert_eq!(stalled["reason"], "OwnershipConflict", "{dp:#}");
    let message = stalled["message"].as_str().expect("message");
    assert!(
        message.contains(&input)
            && message.contains("earlier namespace")
            && message.contains(&first_uid),
        "{message}"
    );
    assert!(
        iam.get_role().role_name(&role).send().await.is_err(),
        "a role was made for the newcomer"
    );

    // The platform lets the team back in: a policy allowing it, and the
    // pipeline naming the earlier namespace.
    let back = format!("back-{}", token());
    let _policy = Policy::apply(
        &back,
        json!({"allow": {"adoptionFromEarlierNamespace": true}}),
    );
    kubectl_ok(&[
        "label",
        "namespace",
        &name,
        &format!("sluice.dev/policy={back}"),
    ]);
    let mut annotated = manifest_as_json(&retained);
    annotated["metadata"]["annotations"] =
        json!({"sluice.dev/adopt-from-namespace-uid": first_uid});
    kubectl_stdin_ok(&["apply", "-n", &name, "-f", "-"], &annotated.to_string());
    op.wait_until("the pipeline to adopt its bucket", LIMIT, || {
        condition(&get_pipeline(&name, pipeline), "Ready").is_some_and(|c| c["status"] == "True")
    });
    assert_eq!(
        id_of(&get_pipeline(&name, pipeline), "S3::Bucket", "input"),
        input
    );
    assert_eq!(
        sluice_e2e::flow::object_text(&s3, &input, "payroll.csv")
            .await
            .as_deref(),
        Some("alice,100")
    );

    sluice_e2e::flow::empty_buckets(&s3, &get_pipeline(&name, pipeline)).await;
    let deleted = retained.replace("deletionPolicy: Retain", "deletionPolicy: Delete");
    let mut deleted = manifest_as_json(&deleted);
    deleted["metadata"]["annotations"] = json!({"sluice.dev/adopt-from-namespace-uid": first_uid});
    kubectl_stdin_ok(&["apply", "-n", &name, "-f", "-"], &deleted.to_string());
    delete_pipeline(&name, pipeline, &op);
    let _ = kubectl(&["delete", "namespace", &name, "--wait=false"]);
}

/// A built-in handler's inputs come from the edges that grant them: a
/// variable set by hand, pointing `batch-aggregate` at another team's
/// bucket, stalls the pipeline before anything is made.
#[tokio::test(flavor = "multi_thread")]
async fn a_handler_cannot_be_pointed_at_another_teams_bucket_by_a_variable() {
    install_crd();
    let ns = Namespace::create();
    let op = Operator::start(&ns.0);
    let mut manifest = manifest_as_json(&sample_manifest("periodic-batch.yaml"));
    manifest["spec"]["functions"][0]["environment"] =
        json!({"SOURCE_BUCKET": "sluice-other-team-orders-0123456789abcdef"});
    let name = manifest["metadata"]["name"]
        .as_str()
        .expect("name")
        .to_owned();
    apply_and_wait(&ns.0, &name, &manifest.to_string(), "Stalled", &op);
    let dp = get_pipeline(&ns.0, &name);
    let stalled = condition(&dp, "Stalled").expect("Stalled");
    assert_eq!(stalled["reason"], "InvalidSpec");
    let message = stalled["message"].as_str().expect("message");
    assert!(
        message.contains("spec.functions[0].environment.SOURCE_BUCKET")
            && message.contains("from an edge"),
        "{message}"
    );
    assert!(
        dp["status"]["inventory"]
            .as_array()
            .is_none_or(Vec::is_empty),
        "{dp:#}"
    );
    delete_pipeline(&ns.0, &name, &op);
}

/// Status is the operator's record of what a pipeline owns, and it deletes
/// what it lists. A tenant whom RBAC lets write `datapipelines/status`
/// still cannot: the admission policy refuses everyone but the operator's
/// ServiceAccount, while the operator's own writes go on.
#[tokio::test(flavor = "multi_thread")]
async fn only_the_operator_writes_a_pipelines_status() {
    install_crd();
    let ns = Namespace::create();
    let op = Operator::start(&ns.0);
    if op.pod().is_none() {
        eprintln!("the status writer is bound to the operator's pod; skipped as a process");
        return;
    }
    apply_and_wait(
        &ns.0,
        "event-triggered",
        &sample_manifest("event-triggered.yaml"),
        "Ready",
        &op,
    );
    let mallory = format!("mallory-{}", token());
    let rbac = json!({"apiVersion": "v1", "kind": "List", "items": [
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
         "metadata": {"name": "status-writer", "namespace": ns.0},
         "rules": [{"apiGroups": ["sluice.dev"], "resources": ["datapipelines", "datapipelines/status"],
                    "verbs": ["get", "list", "patch", "update"]}]},
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
         "metadata": {"name": "status-writer", "namespace": ns.0},
         "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "status-writer"},
         "subjects": [{"kind": "User", "name": mallory}]}
    ]});
    kubectl_stdin_ok(&["apply", "-f", "-"], &rbac.to_string());
    assert_eq!(
        kubectl_ok(&[
            "auth",
            "can-i",
            "patch",
            "datapipelines/status",
            "-n",
            &ns.0,
            "--as",
            &mallory
        ])
        .trim(),
        "yes",
        "RBAC allows it: only admission stands in the way"
    );
    // An inventory aiming a deletion at another team's bucket.
    let forged = json!({"status": {"inventory": [{"kind": "S3::Bucket", "name": "input",
        "id": "sluice-other-team-payroll-0123456789abcdef", "state": "Ready"}]}});
    let patch = forged.to_string();
    let attempt = |dry_run: bool| {
        let mut args = vec![
            "patch",
            "dp",
            "event-triggered",
            "-n",
            ns.0.as_str(),
            "--subresource=status",
            "--type=merge",
            "--as",
            mallory.as_str(),
            "-p",
            patch.as_str(),
        ];
        if dry_run {
            args.push("--dry-run=server");
        }
        kubectl(&args)
    };
    // The operator's binding is live once a dry run is refused.
    op.wait_until("the status admission policy", LIMIT, || {
        !attempt(true).status.success()
    });
    let out = attempt(false);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "the forged status was written");
    assert!(
        stderr.contains("written by the Sluice operator") && stderr.contains(&mallory),
        "{stderr}"
    );
    let dp = get_pipeline(&ns.0, "event-triggered");
    assert!(
        !dp["status"].to_string().contains("other-team-payroll"),
        "{dp:#}"
    );
    // The operator still writes it: a spec change converges.
    let changed =
        sample_manifest("event-triggered.yaml").replace("memoryMiB: 256", "memoryMiB: 320");
    assert!(changed.contains("memoryMiB: 320"));
    apply_and_wait(&ns.0, "event-triggered", &changed, "Ready", &op);
    let dp = get_pipeline(&ns.0, "event-triggered");
    assert_eq!(
        condition(&dp, "Ready").expect("Ready")["observedGeneration"],
        dp["metadata"]["generation"]
    );
    delete_pipeline(&ns.0, "event-triggered", &op);
}

/// A key the namespace's policy does not list is never granted: the
/// pipeline naming the platform's key is refused before any role exists.
#[tokio::test(flavor = "multi_thread")]
async fn a_tenant_is_never_granted_a_key_its_policy_does_not_list() {
    install_crd();
    let ns = Namespace::create();
    let mut manifest = manifest_as_json(&sample_manifest("stream.yaml"));
    manifest["spec"]["streams"][0]["encryption"] =
        json!({"kmsKeyArn": "arn:aws:kms:us-east-1:123456789012:key/platform-audit-key"});
    let out = kubectl_stdin(&["apply", "-n", &ns.0, "-f", "-"], &manifest.to_string());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "admitted");
    assert!(
        stderr.contains("platform-audit-key is not a key")
            && stderr.contains("SluicePolicy \"default\""),
        "{stderr}"
    );
}
