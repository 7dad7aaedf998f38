//! Pattern 3: the four Step Functions steps chained through their typed
//! payloads, and the error types a state machine's Retry/Catch match.

use std::time::Duration;

use serde_json::json;

use crate::harness::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn workflow_steps_chain_and_notify_publishes_the_summary() {
    let env = local_env();
    let sdk = sdk(&env).await;
    let s3 = s3(&sdk);
    let sqs = aws_sdk_sqs::Client::new(&sdk);
    let id = suffix();
    let (input, output) = (
        format!("sluice-it-wf-in-{id}"),
        format!("sluice-it-wf-out-{id}"),
    );
    create_bucket(&s3, &input).await;
    create_bucket(&s3, &output).await;
    put_json(
        &s3,
        &input,
        "orders/o-1.json",
        &json!({"order_id": "o-1", "items": [{"quantity": 3, "price": 19.99}, {"quantity": 1, "price": 5}]}),
    )
    .await;
    let pattern = json!({"source": ["sluice.workflow"], "detail-type": ["pipeline-run-succeeded"]});
    let (bus, queue_url) = bus_to_queue(&sdk, &id, &pattern).await;

    let mut extract = LocalFunction::start(&env, "extract", &[("BUCKET_NAME", &input)]);
    let mut transform = LocalFunction::start(&env, "transform", &[]);
    let mut load = LocalFunction::start(&env, "load", &[("OUTPUT_BUCKET", &output)]);
    let mut notify = LocalFunction::start(&env, "notify", &[("NOTIFY_EVENT_BUS", &bus)]);

    // Each step's output is the next one's input, as with
    // `OutputPath: $.Payload`.
    let extracted = extract
        .invoke(&sdk, &json!({"key": "orders/o-1.json"}))
        .await;
    assert_eq!(extracted["bucket"], json!(input), "{extracted}");
    assert_eq!(extracted["data"]["order_id"], "o-1");
    let transformed = transform.invoke(&sdk, &extracted).await;
    assert_eq!(transformed["total_items"], json!(4), "{transformed}");
    assert_eq!(transformed["total_value"], json!(64.97), "{transformed}");
    let loaded = load.invoke(&sdk, &transformed).await;
    assert_eq!(
        loaded["output_key"], "processed/orders/o-1.json",
        "{loaded}"
    );
    let (written, _) = get_json(&s3, &output, "processed/orders/o-1.json").await;
    assert_eq!(written["total_value"], json!(64.97), "{written}");
    assert_eq!(written["processed_at"], transformed["processed_at"]);
    let summary = notify.invoke(&sdk, &loaded).await;
    assert_eq!(summary["status"], "SUCCEEDED", "{summary}");
    assert_eq!(
        summary["output"],
        json!(format!("s3://{output}/processed/orders/o-1.json"))
    );

    // The summary reached the bus, and through its rule the queue.
    let messages = receive_messages(
        &sqs,
        &queue_url,
        1,
        Duration::from_secs(1),
        Duration::from_secs(10),
    )
    .await;
    assert_eq!(messages.len(), 1, "{messages:?}");
    let event: serde_json::Value =
        serde_json::from_str(messages[0].body().unwrap_or_default()).expect("event JSON");
    assert_eq!(event["source"], "sluice.workflow");
    assert_eq!(event["detail-type"], "pipeline-run-succeeded");
    assert_eq!(event["detail"], summary);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn workflow_failures_carry_the_error_types_retry_and_catch_match() {
    let env = local_env();
    let sdk = sdk(&env).await;
    let s3 = s3(&sdk);
    let id = suffix();
    let input = format!("sluice-it-wf-err-{id}");
    create_bucket(&s3, &input).await;
    put_json(
        &s3,
        &input,
        "bad.json",
        &json!({"items": [{"quantity": "two", "price": 1}]}),
    )
    .await;

    let mut extract = LocalFunction::start(&env, "extract", &[("BUCKET_NAME", &input)]);
    let mut transform = LocalFunction::start(&env, "transform", &[]);
    // An output bucket that does not exist: a dependency failure.
    let missing = format!("sluice-it-wf-missing-{id}");
    let mut load = LocalFunction::start(&env, "load", &[("OUTPUT_BUCKET", &missing)]);

    let expect_error = |result: (Option<String>, serde_json::Value), error_type: &str| {
        let (function_error, body) = result;
        assert!(
            function_error.is_some(),
            "expected a function error: {body}"
        );
        assert_eq!(body["errorType"], error_type, "{body}");
        body["errorMessage"].as_str().unwrap_or_default().to_owned()
    };

    // Bad input: Catch on ValidationError.
    let message = expect_error(
        extract
            .invoke_raw(&sdk, &json!({"key": "absent.json"}))
            .await,
        "ValidationError",
    );
    assert!(message.contains("absent.json"), "{message}");
    let message = expect_error(
        transform.invoke_raw(&sdk, &json!({"bucket": input})).await,
        "ValidationError",
    );
    assert!(message.contains("transform"), "{message}");
    let extracted = extract.invoke(&sdk, &json!({"key": "bad.json"})).await;
    let message = expect_error(
        transform.invoke_raw(&sdk, &extracted).await,
        "ValidationError",
    );
    assert!(message.contains("quantity"), "{message}");

    // A failing dependency: Retry on RetryableError.
    let good = json!({
        "bucket": input, "key": "ok.json", "data": {"x": 1},
        "processed_at": "2024-06-05T09:00:00.000Z"
    });
    let message = expect_error(load.invoke_raw(&sdk, &good).await, "RetryableError");
    assert!(message.contains(&missing), "{message}");
}

/// The article's trigger function: an S3 event starts one execution per
/// object in moto's Step Functions, named so a redelivery starts nothing new.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn start_workflow_starts_one_execution_per_object() {
    let env = local_env();
    let sdk = sdk(&env).await;
    let sfn = aws_sdk_sfn::Client::new(&sdk);
    // moto does not check the role.
    let role = format!(
        "arn:aws:iam::123456789012:role/sluice-it-states-{}",
        suffix()
    );
    let machine = sfn
        .create_state_machine()
        .name(format!("sluice-it-start-{}", suffix()))
        .definition(
            json!({"StartAt": "Done", "States": {"Done": {"Type": "Pass", "End": true}}})
                .to_string(),
        )
        .role_arn(role)
        .send()
        .await
        .expect("state machine")
        .state_machine_arn()
        .to_owned();
    let mut start =
        LocalFunction::start(&env, "start-workflow", &[("STATE_MACHINE_ARN", &machine)]);
    let event = json!({"Records": [
        {"s3": {"bucket": {"name": "in"}, "object": {"key": "orders/a.json", "sequencer": "01"}}},
        {"s3": {"bucket": {"name": "in"}, "object": {"key": "orders/b.json", "sequencer": "02"}}}
    ]});
    let out = start.invoke(&sdk, &event).await;
    assert_eq!(out["started"].as_array().map(Vec::len), Some(2), "{out}");
    // Delivered again: nothing new starts.
    start.invoke(&sdk, &event).await;
    let executions = sfn
        .list_executions()
        .state_machine_arn(&machine)
        .send()
        .await
        .expect("executions");
    assert_eq!(executions.executions().len(), 2);
    let first = sfn
        .describe_execution()
        .execution_arn(out["started"][0]["execution_arn"].as_str().expect("arn"))
        .send()
        .await
        .expect("execution");
    let input: serde_json::Value =
        serde_json::from_str(first.input().expect("input")).expect("JSON");
    assert_eq!(input, json!({"bucket": "in", "key": "orders/a.json"}));
}
