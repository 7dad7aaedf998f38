//! Patterns 1, 2 (router), 4 and 5 under the emulator.

use std::time::Duration;

use aws_sdk_s3::primitives::ByteStream;
use futures::StreamExt as _;
use serde_json::{Value, json};

use crate::harness::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_json_transform_writes_processed_object_with_totals() {
    let env = local_env();
    let sdk = sdk(&env).await;
    let s3 = s3(&sdk);
    let (input, output) = (
        format!("sluice-it-in-{}", suffix()),
        format!("sluice-it-out-{}", suffix()),
    );
    create_bucket(&s3, &input).await;
    create_bucket(&s3, &output).await;
    let key = "orders/2024/order 1.json";
    put_json(
        &s3,
        &input,
        key,
        &json!({
            "order_id": "o-1",
            "items": [{"sku": "a", "quantity": 2, "price": 10.5}, {"sku": "b", "quantity": 3, "price": 19.99}]
        }),
    )
    .await;

    let mut function =
        LocalFunction::start(&env, "s3-json-transform", &[("OUTPUT_BUCKET", &output)]);
    let response = function
        .invoke(&sdk, &json!({"Records": [s3_record(&input, key)]}))
        .await;

    let output_key = format!("processed/{key}");
    assert_eq!(
        response["processed"][0]["output_key"],
        json!(output_key),
        "{response}"
    );
    assert_eq!(
        response["processed"][0]["total_items"],
        json!(5),
        "{response}"
    );
    assert_eq!(
        response["processed"][0]["total_value"],
        json!(80.97),
        "{response}"
    );
    let (written, content_type) = get_json(&s3, &output, &output_key).await;
    assert_eq!(content_type.as_deref(), Some("application/json"));
    assert_eq!(written["order_id"], "o-1");
    assert_eq!(written["items"].as_array().map(Vec::len), Some(2));
    assert_eq!(written["total_items"], json!(5), "{written}");
    assert_eq!(written["total_value"], json!(80.97), "{written}");
    let processed_at = written["processed_at"].as_str().expect("processed_at");
    assert!(
        chrono::DateTime::parse_from_rfc3339(processed_at).is_ok() && processed_at.ends_with('Z'),
        "{processed_at}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn router_publishes_to_an_eventbridge_rule_that_targets_sqs() {
    let env = local_env();
    let sdk = sdk(&env).await;
    let s3 = s3(&sdk);
    let sqs = aws_sdk_sqs::Client::new(&sdk);
    let id = suffix();
    let bucket = format!("sluice-it-router-{id}");
    create_bucket(&s3, &bucket).await;
    let pattern = json!({
        "source": ["sluice.router"],
        "detail-type": ["data-event"],
        "detail": {"data_type": ["type_a"]}
    });
    let (bus, queue_url) = bus_to_queue(&sdk, &id, &pattern).await;
    put_json(
        &s3,
        &bucket,
        "incoming/customer_42.json",
        &json!({"name": "Ada"}),
    )
    .await;
    put_json(
        &s3,
        &bucket,
        "incoming/product_7.json",
        &json!({"sku": "p-7"}),
    )
    .await;

    let mut function = LocalFunction::start(&env, "router", &[("EVENT_BUS", &bus)]);
    let response = function
        .invoke(
            &sdk,
            &json!({"Records": [
                s3_record(&bucket, "incoming/customer_42.json"),
                s3_record(&bucket, "incoming/product_7.json"),
            ]}),
        )
        .await;
    let routed: Vec<&str> = response["routed"]
        .as_array()
        .expect("routed")
        .iter()
        .filter_map(|r| r["data_type"].as_str())
        .collect();
    assert_eq!(routed, ["type_a", "type_b"], "{response}");

    // Only the type_a event matches the rule; keep receiving a little
    // after it arrives to see that nothing else does.
    let bodies: Vec<Value> = receive_messages(
        &sqs,
        &queue_url,
        1,
        Duration::from_secs(3),
        Duration::from_secs(10),
    )
    .await
    .iter()
    .map(|m| serde_json::from_str(m.body().unwrap_or_default()).expect("event JSON"))
    .collect();
    assert_eq!(bodies.len(), 1, "{bodies:?}");
    let event = &bodies[0];
    assert_eq!(event["source"], "sluice.router");
    assert_eq!(event["detail-type"], "data-event");
    assert_eq!(event["detail"]["bucket"], json!(bucket));
    assert_eq!(event["detail"]["key"], "incoming/customer_42.json");
    assert_eq!(event["detail"]["data_type"], "type_a");
    assert_eq!(event["detail"]["sequencer"], "0A1B2C");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stream_anomaly_writes_scored_items_to_dynamodb() {
    let env = local_env();
    let sdk = sdk(&env).await;
    let table = format!("sluice-it-results-{}", suffix());
    let dynamo = create_results_table(&sdk, &table).await;

    let mut function = LocalFunction::start(&env, "stream-anomaly", &[("RESULTS_TABLE", &table)]);
    let records: Vec<Value> = (0..30)
        .map(|i| {
            let value = if i % 3 == 0 { 200 } else { 50 };
            let data = json!({"id": format!("sensor-{i}"), "value": value, "threshold": 100, "timestamp": "2024-06-05T10:00:00Z"});
            kinesis_record(&format!("4959{i:04}"), data.to_string().as_bytes())
        })
        .collect();
    let response = function.invoke(&sdk, &json!({"Records": records})).await;
    assert_eq!(response["batchItemFailures"], json!([]), "{response}");

    let anomalous = get_item(&dynamo, &table, "sensor-0")
        .await
        .expect("sensor-0 written");
    assert_eq!(anomalous["anomaly"].as_bool(), Ok(&true));
    assert!((number(&anomalous["anomaly_score"]) - 1.0).abs() < 1e-9);
    assert_eq!(
        anomalous["sequence_number"].as_s().map(String::as_str),
        Ok("49590000")
    );
    assert_eq!(
        anomalous["partition_key"].as_s().map(String::as_str),
        Ok("pk")
    );
    let normal = get_item(&dynamo, &table, "sensor-1")
        .await
        .expect("sensor-1 written");
    assert_eq!(normal["anomaly"].as_bool(), Ok(&false));
    assert_eq!(number(&normal["anomaly_score"]), 0.0);
    let count = dynamo
        .scan()
        .table_name(&table)
        .send()
        .await
        .expect("scan")
        .count;
    assert_eq!(
        count, 30,
        "more than one BatchWriteItem call (25 items each)"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn poisoned_kinesis_records_are_reported_as_batch_item_failures() {
    let env = local_env();
    let sdk = sdk(&env).await;
    let table = format!("sluice-it-poison-{}", suffix());
    let dynamo = create_results_table(&sdk, &table).await;

    let mut function = LocalFunction::start(&env, "stream-anomaly", &[("RESULTS_TABLE", &table)]);
    let mut not_base64 = kinesis_record("103", b"");
    not_base64["kinesis"]["data"] = json!("%%% not base64 %%%");
    let event = json!({"Records": [
        kinesis_record("101", br#"{"id": "good-1", "value": 10, "threshold": 100}"#),
        kinesis_record("102", b"not json at all"),
        not_base64,
        kinesis_record("104", br#"{"id": "bad-threshold", "value": 10, "threshold": 0}"#),
        kinesis_record("105", br#"[1, 2, 3]"#),
        kinesis_record("106", br#"{"id": "good-2", "value": 500, "threshold": 100}"#),
    ]});
    let response = function.invoke(&sdk, &event).await;
    let mut failed: Vec<&str> = response["batchItemFailures"]
        .as_array()
        .expect("batchItemFailures")
        .iter()
        .filter_map(|f| f["itemIdentifier"].as_str())
        .collect();
    failed.sort_unstable();
    assert_eq!(failed, ["102", "103", "104", "105"], "{response}");

    // The good records around the poisoned ones are written all the same.
    assert!(get_item(&dynamo, &table, "good-1").await.is_some());
    let good = get_item(&dynamo, &table, "good-2")
        .await
        .expect("good-2 written");
    assert_eq!(good["anomaly"].as_bool(), Ok(&true));
    assert!(get_item(&dynamo, &table, "bad-threshold").await.is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batch_aggregate_summarises_more_than_a_thousand_objects() {
    const OBJECTS: usize = 1_050;
    let env = local_env();
    let sdk = sdk(&env).await;
    let s3 = s3(&sdk);
    let id = suffix();
    let (source, destination) = (format!("sluice-it-raw-{id}"), format!("sluice-it-sum-{id}"));
    create_bucket(&s3, &source).await;
    create_bucket(&s3, &destination).await;
    let s3_ref = &s3;
    let source_ref = source.as_str();
    futures::stream::iter(0..OBJECTS)
        .for_each_concurrent(16, |i| async move {
            let body = json!({"records": [
                {"category": "a", "value": 1},
                {"category": "b", "value": 2},
            ]});
            put_json(
                s3_ref,
                source_ref,
                &format!("2024/06/04/part-{i:05}.json"),
                &body,
            )
            .await;
        })
        .await;
    // Another day, and one invalid object.
    put_json(
        &s3,
        &source,
        "2024/06/05/part-00000.json",
        &json!({"records": [{"category": "a", "value": 1000}]}),
    )
    .await;
    s3.put_object()
        .bucket(&source)
        .key("2024/06/04/zz-broken.json")
        .body(ByteStream::from_static(b"{not json"))
        .send()
        .await
        .expect("put broken object");

    let mut function = LocalFunction::start(
        &env,
        "batch-aggregate",
        &[
            ("SOURCE_BUCKET", &source),
            ("DESTINATION_BUCKET", &destination),
        ],
    );
    let summary = function.invoke(&sdk, &json!({"date": "2024-06-04"})).await;

    assert_eq!(summary["date"], "2024-06-04", "{summary}");
    assert_eq!(summary["objects_processed"], json!(OBJECTS), "{summary}");
    assert_eq!(summary["total_records"], json!(2 * OBJECTS));
    assert_eq!(
        summary["aggregated_values"],
        json!({"a": OBJECTS, "b": 2 * OBJECTS})
    );
    assert_eq!(summary["total_value"], json!(3 * OBJECTS));
    assert_eq!(
        summary["invalid_objects"][0]["key"], "2024/06/04/zz-broken.json",
        "{summary}"
    );
    assert_eq!(summary["invalid_objects"].as_array().map(Vec::len), Some(1));
    assert_eq!(
        summary["source"],
        json!(format!("s3://{source}/2024/06/04/"))
    );
    let (written, _) = get_json(&s3, &destination, "summaries/2024-06-04.json").await;
    assert_eq!(written, summary);
}
