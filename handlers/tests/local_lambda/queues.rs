//! SQS-fed handlers: typed-processor with its DynamoDB idempotency claims,
//! dlq-handler archiving and redriving.

use std::collections::HashMap;
use std::time::Duration;

use aws_sdk_dynamodb::types::AttributeValue;
use serde_json::{Value, json};
use sluice_handlers::builtin::router::RouteDetail;
use sluice_handlers::kit::idempotency::{
    COMPLETED, IN_PROGRESS, LEASE_ATTRIBUTE, STATUS_ATTRIBUTE, TTL_ATTRIBUTE, idempotency_key,
    scoped_key,
};

use crate::harness::*;

/// One record of an SQS event.
fn sqs_record(id: &str, body: &str, queue: &str, message_attributes: Value) -> Value {
    json!({
        "messageId": id, "receiptHandle": format!("rh-{id}"), "body": body,
        "attributes": {"ApproximateReceiveCount": "1", "SentTimestamp": "1717581600000"},
        "messageAttributes": message_attributes, "md5OfBody": "m", "eventSource": "aws:sqs",
        "eventSourceARN": format!("arn:aws:sqs:us-east-1:123456789012:{queue}"),
        "awsRegion": "us-east-1"
    })
}

/// The body the router's rule delivers: an EventBridge event.
fn routed(bucket: &str, key: &str, event_id: &str) -> String {
    json!({
        "version": "0", "id": event_id, "detail-type": "data-event", "source": "sluice.router",
        "account": "123456789012", "time": "2024-06-05T07:59:00Z", "region": "us-east-1",
        "resources": [], "detail": {"bucket": bucket, "key": key, "data_type": "type_a"}
    })
    .to_string()
}

/// The claim key typed-processor uses for an object: the function name as
/// scope, the hash of the route detail.
fn claim_key(bucket: &str, key: &str) -> String {
    let detail = RouteDetail {
        bucket: bucket.to_owned(),
        key: key.to_owned(),
        data_type: "type_a".to_owned(),
        sequencer: None,
    };
    let payload = serde_json::to_vec(&detail).expect("detail JSON");
    scoped_key("typed-processor", &idempotency_key(&payload))
}

async fn claim(
    dynamo: &aws_sdk_dynamodb::Client,
    table: &str,
    key: &str,
) -> Option<HashMap<String, AttributeValue>> {
    dynamo
        .get_item()
        .table_name(table)
        .key("pk", AttributeValue::S(key.to_owned()))
        .consistent_read(true)
        .send()
        .await
        .expect("get item")
        .item
}

fn failures(response: &Value) -> Vec<String> {
    response["batchItemFailures"]
        .as_array()
        .unwrap_or_else(|| panic!("no batchItemFailures in {response}"))
        .iter()
        .filter_map(|f| f["itemIdentifier"].as_str().map(str::to_owned))
        .collect()
}

async fn exists(s3: &aws_sdk_s3::Client, bucket: &str, key: &str) -> bool {
    s3.head_object()
        .bucket(bucket)
        .key(key)
        .send()
        .await
        .is_ok()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn typed_processor_processes_each_event_once_through_dynamodb_claims() {
    let env = local_env();
    let sdk = sdk(&env).await;
    let s3 = s3(&sdk);
    let id = suffix();
    let (input, output, table) = (
        format!("sluice-it-tp-in-{id}"),
        format!("sluice-it-tp-out-{id}"),
        format!("sluice-it-idem-{id}"),
    );
    create_bucket(&s3, &input).await;
    create_bucket(&s3, &output).await;
    let dynamo = create_table(&sdk, &table, "pk").await;
    put_json(
        &s3,
        &input,
        "a.json",
        &json!({"items": [{"quantity": 2, "price": 5}]}),
    )
    .await;
    put_json(&s3, &input, "b.json", &json!({"note": "no items"})).await;
    let queue = "type-a";

    let mut function = LocalFunction::start(
        &env,
        "typed-processor",
        &[("OUTPUT_BUCKET", &output), ("IDEMPOTENCY_TABLE", &table)],
    );
    // a.json twice (the router re-published it: new envelope, same
    // detail), b.json, and an object that does not exist yet.
    let response = function
        .invoke(
            &sdk,
            &json!({"Records": [
                sqs_record("m1", &routed(&input, "a.json", "e1"), queue, json!({})),
                sqs_record("m2", &routed(&input, "a.json", "e2"), queue, json!({})),
                sqs_record("m3", &routed(&input, "b.json", "e3"), queue, json!({})),
                sqs_record("m4", &routed(&input, "late.json", "e4"), queue, json!({})),
            ]}),
        )
        .await;
    assert_eq!(failures(&response), ["m4"], "{response}");
    let (written, _) = get_json(&s3, &output, "processed/type_a/a.json").await;
    assert_eq!(written["total_value"], json!(10), "{written}");
    assert_eq!(written["data_type"], "type_a");
    assert!(exists(&s3, &output, "processed/type_a/b.json").await);

    let done = claim(&dynamo, &table, &claim_key(&input, "a.json"))
        .await
        .expect("a.json claimed");
    assert_eq!(
        done[STATUS_ATTRIBUTE].as_s().map(String::as_str),
        Ok(COMPLETED)
    );
    assert!(!done.contains_key(LEASE_ATTRIBUTE), "{done:?}");
    let expires: i64 = done[TTL_ATTRIBUTE]
        .as_n()
        .expect("ttl")
        .parse()
        .expect("number");
    let in_a_day = chrono::Utc::now().timestamp() + 86_400;
    assert!((in_a_day - expires).abs() < 300, "expires_at {expires}");
    assert!(
        claim(&dynamo, &table, &claim_key(&input, "late.json"))
            .await
            .is_none(),
        "the failed record's claim is released"
    );

    // A later redelivery of a.json is skipped: with its output deleted, it
    // is the claim that decides, and nothing is written again.
    s3.delete_object()
        .bucket(&output)
        .key("processed/type_a/a.json")
        .send()
        .await
        .expect("delete output");
    let response = function
        .invoke(
            &sdk,
            &json!({"Records": [sqs_record("m5", &routed(&input, "a.json", "e5"), queue, json!({}))]}),
        )
        .await;
    assert_eq!(failures(&response), Vec::<String>::new(), "{response}");
    assert!(!exists(&s3, &output, "processed/type_a/a.json").await);

    // The missing object arrives; the retry of m4 is processed.
    put_json(&s3, &input, "late.json", &json!({})).await;
    let retry = json!({"Records": [sqs_record("m4", &routed(&input, "late.json", "e4"), queue, json!({}))]});
    let response = function.invoke(&sdk, &retry).await;
    assert_eq!(failures(&response), Vec::<String>::new(), "{response}");
    assert!(exists(&s3, &output, "processed/type_a/late.json").await);

    // Another invocation is processing c.json right now: the delivery is
    // reported failed (retried later), not skipped and not processed.
    put_json(&s3, &input, "c.json", &json!({})).await;
    let now = chrono::Utc::now().timestamp();
    let held = |lease: i64| {
        dynamo
            .put_item()
            .table_name(&table)
            .item("pk", AttributeValue::S(claim_key(&input, "c.json")))
            .item(STATUS_ATTRIBUTE, AttributeValue::S(IN_PROGRESS.into()))
            .item(LEASE_ATTRIBUTE, AttributeValue::N(lease.to_string()))
            .item(TTL_ATTRIBUTE, AttributeValue::N((now + 86_400).to_string()))
            .send()
    };
    held(now + 600).await.expect("put claim");
    let concurrent =
        json!({"Records": [sqs_record("m6", &routed(&input, "c.json", "e6"), queue, json!({}))]});
    let response = function.invoke(&sdk, &concurrent).await;
    assert_eq!(failures(&response), ["m6"], "{response}");
    assert!(!exists(&s3, &output, "processed/type_a/c.json").await);

    // That invocation died; once its lease is over the retry takes over.
    held(now - 1).await.expect("put claim");
    let response = function.invoke(&sdk, &concurrent).await;
    assert_eq!(failures(&response), Vec::<String>::new(), "{response}");
    assert!(exists(&s3, &output, "processed/type_a/c.json").await);
    let done = claim(&dynamo, &table, &claim_key(&input, "c.json"))
        .await
        .expect("c.json claimed");
    assert_eq!(
        done[STATUS_ATTRIBUTE].as_s().map(String::as_str),
        Ok(COMPLETED)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dlq_handler_archives_every_message_and_redrives_the_retryable_one() {
    let env = local_env();
    let sdk = sdk(&env).await;
    let s3 = s3(&sdk);
    let sqs = aws_sdk_sqs::Client::new(&sdk);
    let id = suffix();
    let archive = format!("sluice-it-archive-{id}");
    create_bucket(&s3, &archive).await;
    let (source_url, _) = create_queue(&sqs, &format!("sluice-it-src-{id}")).await;
    let dlq = format!("sluice-it-dlq-{id}");
    let fifo_url = sqs
        .create_queue()
        .queue_name(format!("sluice-it-src-{id}.fifo"))
        .attributes(aws_sdk_sqs::types::QueueAttributeName::FifoQueue, "true")
        .send()
        .await
        .expect("create FIFO queue")
        .queue_url
        .expect("queue url");
    let fifo_dlq = format!("sluice-it-dlq-{id}.fifo");

    let targets = format!("{dlq}={source_url},{fifo_dlq}={fifo_url}");
    let mut function = LocalFunction::start(
        &env,
        "dlq-handler",
        &[
            ("ARCHIVE_BUCKET", &archive),
            ("REDRIVE_TARGETS", &targets),
            // Short, but through SendMessage's DelaySeconds all the same.
            ("REDRIVE_DELAY_SECONDS", "1"),
        ],
    );
    let text = |value: &str| json!({"stringValue": value, "dataType": "String"});
    let response = function
        .invoke(
            &sdk,
            &json!({"Records": [
                sqs_record("m1", r#"{"order": 1}"#, &dlq, json!({"tenant": text("acme")})),
                sqs_record("m2", r#"{"order": 2}"#, &dlq, json!({
                    "ErrorCode": text("ValidationError"),
                    "ErrorMessage": text("items[0].price must be a number"),
                })),
                sqs_record("m3", r#"{"order": 3}"#, &dlq, json!({
                    "sluice-redrive-count": {"stringValue": "2", "dataType": "Number"},
                })),
            ]}),
        )
        .await;
    assert_eq!(failures(&response), Vec::<String>::new(), "{response}");

    let archived = |message: &str| {
        let s3 = &s3;
        let key = format!("dead-letters/{dlq}/{message}.json");
        let archive = archive.clone();
        async move { get_json(s3, &archive, &key).await.0 }
    };
    let first = archived("m1").await;
    assert_eq!(first["body_json"], json!({"order": 1}));
    assert_eq!(first["message_attributes"]["tenant"]["stringValue"], "acme");
    assert_eq!(
        first["redrive"],
        json!({"action": "sent", "target": source_url, "attempt": 1})
    );
    let second = archived("m2").await;
    assert_eq!(
        second["failure_reason"],
        "ValidationError: items[0].price must be a number"
    );
    assert_eq!(second["redrive"]["action"], "skipped");
    assert!(
        second["redrive"]["reason"]
            .as_str()
            .is_some_and(|r| r.contains("validation error")),
        "{second}"
    );
    let third = archived("m3").await;
    assert!(
        third["redrive"]["reason"]
            .as_str()
            .is_some_and(|r| r.contains("REDRIVE_MAX=2")),
        "{third}"
    );

    // Exactly one message went back, with its attributes and the counter.
    let messages = receive_messages(
        &sqs,
        &source_url,
        1,
        Duration::from_secs(2),
        Duration::from_secs(10),
    )
    .await;
    assert_eq!(messages.len(), 1, "{messages:?}");
    let message = &messages[0];
    assert_eq!(message.body(), Some(r#"{"order": 1}"#));
    let attributes = message.message_attributes().expect("attributes");
    assert_eq!(
        attributes["tenant"].string_value(),
        Some("acme"),
        "{attributes:?}"
    );
    let counter = &attributes["sluice-redrive-count"];
    assert_eq!(counter.data_type(), "Number");
    assert_eq!(counter.string_value(), Some("1"));

    // From a FIFO DLQ: back into its group, deduplicated per attempt.
    let mut from_fifo = sqs_record("f1", r#"{"order": 4}"#, &fifo_dlq, json!({}));
    from_fifo["attributes"]["MessageGroupId"] = json!("customer-7");
    let response = function
        .invoke(&sdk, &json!({"Records": [from_fifo]}))
        .await;
    assert_eq!(failures(&response), Vec::<String>::new(), "{response}");
    let received = receive_messages(
        &sqs,
        &fifo_url,
        1,
        Duration::from_secs(1),
        Duration::from_secs(10),
    )
    .await;
    assert_eq!(received.len(), 1, "{received:?}");
    assert_eq!(received[0].body(), Some(r#"{"order": 4}"#));
    let group = received[0]
        .attributes()
        .and_then(|a| a.get(&aws_sdk_sqs::types::MessageSystemAttributeName::MessageGroupId));
    assert_eq!(group.map(String::as_str), Some("customer-7"));
}
