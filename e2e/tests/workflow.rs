//! Patterns 3 and 5 end to end: the orchestrated and periodic-batch samples
//! converged into the emulator, checked through the AWS SDK (definitions,
//! roles, the bucket → EventBridge → workflow wiring, the schedule), run in
//! moto's Step Functions interpreter where it can run, drift-corrected and
//! deleted.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use sluice_e2e::{
    Namespace, Operator, apply_and_wait, assert_nothing_left, calls_between, delete_pipeline,
    get_pipeline, id_of, install_crd, poke_and_wait, s3, sample_manifest, sdk,
};
use sluice_operator::asl::same_json;

/// `resource → sorted actions` of a role's inline policy.
async fn grants(iam: &aws_sdk_iam::Client, role: &str) -> BTreeMap<String, Vec<String>> {
    let doc = sluice_e2e::flow::inline_policy(iam, role).await;
    let strings = sluice_e2e::flow::strings;
    let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for s in doc["Statement"].as_array().expect("statements") {
        for r in strings(&s["Resource"]) {
            out.entry(r).or_default().extend(strings(&s["Action"]));
        }
    }
    for a in out.values_mut() {
        a.sort();
    }
    out
}

async fn trusted_service(iam: &aws_sdk_iam::Client, role: &str) -> String {
    let r = iam.get_role().role_name(role).send().await.expect("role");
    let doc = sluice_operator::iam::parse_policy(
        r.role()
            .expect("role")
            .assume_role_policy_document()
            .expect("trust"),
    )
    .expect("JSON");
    doc["Statement"][0]["Principal"]["Service"]
        .as_str()
        .expect("service")
        .to_owned()
}

/// Writes made between two readings.
fn writes(before: &BTreeMap<String, u64>, op: &Operator) -> BTreeMap<String, u64> {
    calls_between(before, &op.aws_calls())
        .into_iter()
        .filter(|(k, _)| k.ends_with("(write)"))
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn orchestrated_sample_converges_runs_in_moto_corrects_drift_and_deletes() {
    install_crd();
    let ns = Namespace::create();
    let op = Operator::start(&ns.0);
    let sdk = sdk().await;
    let sfn = aws_sdk_sfn::Client::new(&sdk);
    let iam = aws_sdk_iam::Client::new(&sdk);
    let events = aws_sdk_eventbridge::Client::new(&sdk);
    let name = "orchestrated";

    let before = op.aws_calls();
    let to_ready = apply_and_wait(
        &ns.0,
        name,
        &sample_manifest("orchestrated.yaml"),
        "Ready",
        &op,
    );
    println!(
        "orchestrated: kubectl apply → Ready in {:.2} s",
        to_ready.as_secs_f64()
    );
    println!(
        "orchestrated: AWS calls of one convergence: {:#?}",
        calls_between(&before, &op.aws_calls())
    );
    let dp = get_pipeline(&ns.0, name);
    let machine = id_of(&dp, "StepFunctions::StateMachine", "etl");
    let function = |l: &str| id_of(&dp, "Lambda::Function", l);
    let account = machine.split(':').nth(4).expect("account").to_owned();
    let function_arn = |l: &str| {
        format!(
            "arn:aws:lambda:us-east-1:{account}:function:{}",
            function(l)
        )
    };

    // The stored definition: the real ARNs, the article's Retry and Catch.
    let described = sfn
        .describe_state_machine()
        .state_machine_arn(&machine)
        .send()
        .await
        .expect("state machine");
    let definition: Value = serde_json::from_str(described.definition()).expect("JSON");
    let retry = json!([{"ErrorEquals": ["States.TaskFailed", "States.Timeout"],
        "IntervalSeconds": 1, "MaxAttempts": 3, "BackoffRate": 2.0}]);
    let catch = json!([{"ErrorEquals": ["States.ALL"], "Next": "ProcessingFailed"}]);
    for (state, f, next) in [
        ("Extract", "extract", Some("Transform")),
        ("Transform", "transform", Some("Load")),
        ("Load", "load", Some("Notify")),
        ("Notify", "notify", None),
    ] {
        let s = &definition["States"][state];
        assert_eq!(s["Resource"], function_arn(f), "{state}");
        if let Some(next) = next {
            assert_eq!(s["Next"], next, "{state}");
            assert!(same_json(&s["Retry"], &retry), "{state}: {}", s["Retry"]);
            assert_eq!(s["Catch"], catch, "{state}");
        }
    }
    assert_eq!(
        definition["States"]["ProcessingFailed"],
        json!({"Type": "Fail", "Cause": "Data Processing Failed", "Error": "DataPipelineError"})
    );
    assert_eq!(described.r#type().as_str(), "STANDARD");

    // The roles, exactly: the workflow invokes its four functions only; the
    // rule's role starts this workflow only.
    let workflow_role = id_of(&dp, "IAM::Role", "workflow:etl");
    assert!(described.role_arn().ends_with(&format!("/{workflow_role}")));
    assert_eq!(
        trusted_service(&iam, &workflow_role).await,
        "states.amazonaws.com"
    );
    let want: BTreeMap<String, Vec<String>> = ["extract", "transform", "load", "notify"]
        .iter()
        .map(|f| (function_arn(f), vec!["lambda:InvokeFunction".to_owned()]))
        .collect();
    assert_eq!(grants(&iam, &workflow_role).await, want);
    let start_role = id_of(&dp, "IAM::Role", "start:etl");
    assert_eq!(
        trusted_service(&iam, &start_role).await,
        "events.amazonaws.com"
    );
    assert_eq!(
        grants(&iam, &start_role).await,
        BTreeMap::from([(machine.clone(), vec!["states:StartExecution".to_owned()])])
    );

    // Objects in `input` reach the workflow through EventBridge.
    let input = id_of(&dp, "S3::Bucket", "input");
    let notification = s3(&sdk)
        .get_bucket_notification_configuration()
        .bucket(&input)
        .send()
        .await
        .expect("notification");
    assert!(notification.event_bridge_configuration().is_some());
    let rule = id_of(&dp, "Events::Rule", "etl-from-input");
    let (bus, rule_name) = rule.split_once('/').expect("bus/rule");
    assert_eq!(bus, "default");
    let pattern: Value = serde_json::from_str(
        events
            .describe_rule()
            .name(rule_name)
            .send()
            .await
            .expect("rule")
            .event_pattern()
            .expect("pattern"),
    )
    .expect("JSON");
    assert_eq!(pattern["detail"]["bucket"]["name"], json!([input]));
    let targets = events
        .list_targets_by_rule()
        .rule(rule_name)
        .send()
        .await
        .expect("targets");
    let target = &targets.targets()[0];
    assert_eq!(target.arn(), machine);
    assert!(
        target
            .role_arn()
            .expect("role")
            .ends_with(&format!("/{start_role}"))
    );

    // Steady state: a resync writes nothing.
    let before = op.aws_calls();
    poke_and_wait(&ns.0, name, &op);
    let resync = calls_between(&before, &op.aws_calls());
    println!("orchestrated: AWS calls of one steady-state resync: {resync:#?}");
    assert!(resync.keys().all(|k| k.ends_with("(read)")), "{resync:?}");

    // A definition changed by hand is put back with one write.
    let before = op.aws_calls();
    let mut changed = definition.clone();
    changed["States"]["Load"]["Retry"][0]["MaxAttempts"] = json!(10);
    sfn.update_state_machine()
        .state_machine_arn(&machine)
        .definition(changed.to_string())
        .send()
        .await
        .expect("drift");
    poke_and_wait(&ns.0, name, &op);
    op.wait_until("the definition put back", Duration::from_secs(30), || {
        writes(&before, &op).contains_key("states:UpdateStateMachine (write)")
    });
    let stored: Value = serde_json::from_str(
        sfn.describe_state_machine()
            .state_machine_arn(&machine)
            .send()
            .await
            .expect("state machine")
            .definition(),
    )
    .expect("JSON");
    assert!(same_json(&stored["States"]["Load"]["Retry"], &retry));
    assert_eq!(
        writes(&before, &op),
        BTreeMap::from([("states:UpdateStateMachine (write)".to_owned(), 1)])
    );

    // moto's interpreter runs it, and the harness runs each Lambda task's
    // real handler: Extract fails on an object that does not exist, is
    // retried as the definition says, and the Catch sends the execution to
    // ProcessingFailed. (scripts/localenv.sh switches the interpreter on at
    // start-up; data_flow.rs runs the succeeding path.)
    let execution = sfn
        .start_execution()
        .state_machine_arn(&machine)
        .input(json!({"bucket": input, "key": "orders/1.json"}).to_string())
        .send()
        .await
        .expect("start")
        .execution_arn()
        .to_owned();
    let deadline = Instant::now() + Duration::from_secs(90);
    let done = loop {
        let d = sfn
            .describe_execution()
            .execution_arn(&execution)
            .send()
            .await
            .expect("execution");
        if d.status().as_str() != "RUNNING" {
            break d;
        }
        assert!(Instant::now() < deadline, "execution still running");
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    assert_eq!(done.status().as_str(), "FAILED");
    assert_eq!(done.error(), Some("DataPipelineError"));
    assert_eq!(done.cause(), Some("Data Processing Failed"));
    let history = sfn
        .get_execution_history()
        .execution_arn(&execution)
        .send()
        .await
        .expect("history");
    let kinds: Vec<&str> = history
        .events()
        .iter()
        .map(|e| e.r#type().as_str())
        .collect();
    println!("orchestrated: moto execution events: {kinds:?}");
    // Extract: the first try and MaxAttempts 3 retries, then the Catch.
    let tries = kinds
        .iter()
        .filter(|k| **k == "LambdaFunctionFailed")
        .count();
    assert_eq!(tries, 4, "{kinds:?}");
    let caught = kinds
        .iter()
        .position(|k| *k == "FailStateEntered")
        .expect("caught");
    assert_eq!(
        kinds[..caught]
            .iter()
            .filter(|k| **k == "TaskStateEntered")
            .count(),
        1,
        "no step after Extract ran: {kinds:?}"
    );

    delete_pipeline(&ns.0, name, &op);
    assert_nothing_left(&sdk, &op.prefix).await;
    let machines = sfn.list_state_machines().send().await.expect("machines");
    assert!(
        machines
            .state_machines()
            .iter()
            .all(|m| !m.name().starts_with(&op.prefix)),
        "state machines left"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn periodic_batch_sample_converges_corrects_drift_and_deletes() {
    install_crd();
    let ns = Namespace::create();
    let op = Operator::start(&ns.0);
    let sdk = sdk().await;
    let scheduler = aws_sdk_scheduler::Client::new(&sdk);
    let iam = aws_sdk_iam::Client::new(&sdk);
    let name = "periodic-batch";

    let before = op.aws_calls();
    let to_ready = apply_and_wait(
        &ns.0,
        name,
        &sample_manifest("periodic-batch.yaml"),
        "Ready",
        &op,
    );
    println!(
        "periodic-batch: kubectl apply → Ready in {:.2} s",
        to_ready.as_secs_f64()
    );
    println!(
        "periodic-batch: AWS calls of one convergence: {:#?}",
        calls_between(&before, &op.aws_calls())
    );
    let dp = get_pipeline(&ns.0, name);
    let schedule = id_of(&dp, "Scheduler::Schedule", "daily");
    let function = id_of(&dp, "Lambda::Function", "batch");
    let dlq = id_of(&dp, "SQS::Queue", "batch-failures");
    let role = id_of(&dp, "IAM::Role", "schedule:daily");

    let s = scheduler
        .get_schedule()
        .name(&schedule)
        .send()
        .await
        .expect("schedule");
    assert_eq!(s.schedule_expression(), Some("cron(0 1 * * ? *)"));
    assert_eq!(s.schedule_expression_timezone(), Some("UTC"));
    let target = s.target().expect("target");
    assert!(
        target.arn().ends_with(&format!(":function:{function}")),
        "{}",
        target.arn()
    );
    assert!(target.role_arn().ends_with(&format!("/{role}")));
    let retry = target.retry_policy().expect("retry");
    assert_eq!(retry.maximum_retry_attempts(), Some(3));
    assert_eq!(retry.maximum_event_age_in_seconds(), Some(3600));
    assert!(
        target
            .dead_letter_config()
            .and_then(|d| d.arn())
            .is_some_and(|a| a.ends_with(&format!(":{dlq}")))
    );
    assert!(
        s.description()
            .unwrap_or_default()
            .contains("sluice.dev/pipeline-uid="),
        "ownership in the description"
    );
    assert_eq!(
        trusted_service(&iam, &role).await,
        "scheduler.amazonaws.com"
    );
    let granted = grants(&iam, &role).await;
    let actions: BTreeSet<&str> = granted.values().flatten().map(String::as_str).collect();
    assert_eq!(
        actions,
        BTreeSet::from(["lambda:InvokeFunction", "sqs:SendMessage"])
    );
    assert_eq!(granted.len(), 2, "{granted:?}");

    // Steady state: no write.
    let before = op.aws_calls();
    poke_and_wait(&ns.0, name, &op);
    let resync = calls_between(&before, &op.aws_calls());
    println!("periodic-batch: AWS calls of one steady-state resync: {resync:#?}");
    assert!(resync.keys().all(|k| k.ends_with("(read)")), "{resync:?}");

    // An expression changed by hand is put back with one write.
    let before = op.aws_calls();
    scheduler
        .update_schedule()
        .name(&schedule)
        .schedule_expression("rate(5 minutes)")
        .flexible_time_window(s.flexible_time_window().expect("window").clone())
        .target(target.clone())
        .set_description(s.description().map(str::to_owned))
        .send()
        .await
        .expect("drift");
    poke_and_wait(&ns.0, name, &op);
    op.wait_until("the expression put back", Duration::from_secs(30), || {
        writes(&before, &op).contains_key("scheduler:UpdateSchedule (write)")
    });
    let again = scheduler
        .get_schedule()
        .name(&schedule)
        .send()
        .await
        .expect("schedule");
    assert_eq!(again.schedule_expression(), Some("cron(0 1 * * ? *)"));
    assert_eq!(
        writes(&before, &op),
        BTreeMap::from([("scheduler:UpdateSchedule (write)".to_owned(), 1)])
    );

    delete_pipeline(&ns.0, name, &op);
    assert_nothing_left(&sdk, &op.prefix).await;
    assert!(
        scheduler
            .get_schedule()
            .name(&schedule)
            .send()
            .await
            .is_err(),
        "schedule deleted"
    );
}
