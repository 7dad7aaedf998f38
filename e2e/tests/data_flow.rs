//! Data flows: each sample converged by the operator processes real input
//! end to end. The emulator runs the handler binaries the functions'
//! deployed code holds, under their execution roles, and makes AWS's
//! deliveries (S3 notifications, event source mappings, rule targets,
//! schedules; see e2e/moto/sluice_harness). `make env-tests` runs the
//! harness with SLUICE_HARNESS_DELAY_FACTOR=0.02, so AWS's waits (retry
//! delays, visibility timeouts, batching windows) pass 50 times faster.

use std::time::{Duration, Instant};

use aws_sdk_sqs::types::SendMessageBatchRequestEntry;
use serde_json::{Value, json};
use sluice_e2e::flow::{
    empty_buckets, fire_schedule, invocations, keys, object_text, queue_url, take_messages,
    wait_for,
};
use sluice_e2e::{
    Namespace, Operator, apply_and_wait, arn_of, delete_pipeline, get_pipeline, id_of, install_crd,
    s3, sample_manifest, sdk,
};

const LIMIT: Duration = Duration::from_secs(60);

fn failed(entries: &[Value]) -> usize {
    entries.iter().filter(|e| !e["error"].is_null()).count()
}

#[tokio::test(flavor = "multi_thread")]
async fn event_triggered_processes_objects_and_keeps_failures() {
    install_crd();
    let ns = Namespace::create();
    let op = Operator::start(&ns.0);
    let sdk = sdk().await;
    let (s3, sqs) = (s3(&sdk), aws_sdk_sqs::Client::new(&sdk));
    let name = "event-triggered";
    apply_and_wait(
        &ns.0,
        name,
        &sample_manifest("event-triggered.yaml"),
        "Ready",
        &op,
    );
    let dp = get_pipeline(&ns.0, name);
    let input = id_of(&dp, "S3::Bucket", "input");
    let processed = id_of(&dp, "S3::Bucket", "processed");
    let function = id_of(&dp, "Lambda::Function", "processor");

    // An order in, the processed order out, with the totals.
    let order = json!({"order_id": "o-1", "items": [
        {"sku": "a", "quantity": 2, "price": 3.5},
        {"sku": "b", "quantity": 1, "price": 10}]});
    let started = Instant::now();
    s3.put_object()
        .bucket(&input)
        .key("orders/o-1.json")
        .body(order.to_string().into_bytes().into())
        .send()
        .await
        .expect("put order");
    let out = wait_for("processed/orders/o-1.json", LIMIT, || {
        object_text(&s3, &processed, "processed/orders/o-1.json")
    })
    .await;
    println!(
        "event-triggered: object in → processed object out in {:.0} ms",
        started.elapsed().as_secs_f64() * 1000.0
    );
    let out: Value = serde_json::from_str(&out).expect("JSON output");
    assert_eq!(out["order_id"], "o-1");
    assert_eq!(out["total_items"], 3);
    assert_eq!(out["total_value"], 17.0);
    assert!(out["processed_at"].is_string(), "{out}");

    // A malformed object: tried three times (the first try and two
    // retries), then its event is in the failure destination, not lost.
    let before = failed(&invocations(&function));
    s3.put_object()
        .bucket(&input)
        .key("orders/broken.json")
        .body(b"{not json".to_vec().into())
        .send()
        .await
        .expect("put malformed");
    let failures = queue_url(&sqs, &id_of(&dp, "SQS::Queue", "failures")).await;
    let record = wait_for("the failure record", LIMIT, || async {
        take_messages(&sqs, &failures).await.into_iter().next()
    })
    .await;
    let record: Value = serde_json::from_str(&record).expect("invocation record");
    assert_eq!(record["requestContext"]["condition"], "RetriesExhausted");
    assert_eq!(record["requestContext"]["approximateInvokeCount"], 3);
    assert_eq!(record["responseContext"]["functionError"], "Unhandled");
    assert_eq!(
        record["requestPayload"]["Records"][0]["s3"]["object"]["key"],
        "orders/broken.json"
    );
    assert_eq!(failed(&invocations(&function)) - before, 3);
    assert!(
        object_text(&s3, &processed, "processed/orders/broken.json")
            .await
            .is_none()
    );

    empty_buckets(&s3, &dp).await;
    delete_pipeline(&ns.0, name, &op);
}

#[tokio::test(flavor = "multi_thread")]
async fn fan_out_routes_types_dead_letters_poison_and_processes_duplicates_once() {
    install_crd();
    let ns = Namespace::create();
    let op = Operator::start(&ns.0);
    let sdk = sdk().await;
    let (s3, sqs) = (s3(&sdk), aws_sdk_sqs::Client::new(&sdk));
    let name = "fan-out";
    apply_and_wait(&ns.0, name, &sample_manifest("fan-out.yaml"), "Ready", &op);
    let dp = get_pipeline(&ns.0, name);
    let input = id_of(&dp, "S3::Bucket", "input");
    let output = id_of(&dp, "S3::Bucket", "output");
    let dead_letters = id_of(&dp, "S3::Bucket", "dead-letters");

    // One object of each type: each lands under its processor's prefix.
    let started = Instant::now();
    for (key, doc) in [
        ("customer_1.json", json!({"id": "c1"})),
        ("product_1.json", json!({"id": "p1"})),
        ("report_1.json", json!({"id": "r1"})),
    ] {
        s3.put_object()
            .bucket(&input)
            .key(key)
            .body(doc.to_string().into_bytes().into())
            .send()
            .await
            .expect("put");
    }
    for key in [
        "processed/type_a/customer_1.json",
        "processed/type_b/product_1.json",
        "processed/type_c/report_1.json",
    ] {
        wait_for(key, LIMIT, || object_text(&s3, &output, key)).await;
    }
    println!(
        "fan-out: three objects routed and processed in {:.0} ms",
        started.elapsed().as_secs_f64() * 1000.0
    );

    // A batch with a poisoned message (its object does not exist) between
    // two good ones: the good ones are processed; the poisoned one returns
    // until its third receive, then its queue's DLQ takes it and the DLQ
    // handler archives it.
    for key in ["direct/good-1.txt", "direct/good-2.txt"] {
        s3.put_object()
            .bucket(&input)
            .key(key)
            .body(json!({"id": key}).to_string().into_bytes().into())
            .send()
            .await
            .expect("put");
    }
    let type_a = queue_url(&sqs, &id_of(&dp, "SQS::Queue", "type-a")).await;
    let detail =
        |key: &str| json!({"bucket": input, "key": key, "data_type": "type_a"}).to_string();
    let entries = [
        "direct/good-1.txt",
        "direct/missing.txt",
        "direct/good-2.txt",
    ]
    .iter()
    .enumerate()
    .map(|(i, key)| {
        SendMessageBatchRequestEntry::builder()
            .id(i.to_string())
            .message_body(detail(key))
            .build()
            .expect("entry")
    })
    .collect::<Vec<_>>();
    let sent = sqs
        .send_message_batch()
        .queue_url(&type_a)
        .set_entries(Some(entries))
        .send()
        .await
        .expect("send batch");
    let poisoned = sent.successful()[1].message_id().to_owned();
    for key in [
        "processed/type_a/direct/good-1.txt",
        "processed/type_a/direct/good-2.txt",
    ] {
        wait_for(key, LIMIT, || object_text(&s3, &output, key)).await;
    }
    let dlq = id_of(&dp, "SQS::Queue", "type-a-dlq");
    let archived = format!("dead-letters/{dlq}/{poisoned}.json");
    let archive = wait_for(&archived, LIMIT, || {
        object_text(&s3, &dead_letters, &archived)
    })
    .await;
    let archive: Value = serde_json::from_str(&archive).expect("archive JSON");
    assert!(
        archive.to_string().contains("direct/missing.txt"),
        "{archive:#}"
    );
    let receives = archive
        .pointer("/attributes/ApproximateReceiveCount")
        .and_then(Value::as_str)
        .unwrap_or("?");
    println!("fan-out: poisoned message archived from {dlq} (receive count there {receives})");

    // A duplicate delivery is processed once: the second copy finds the
    // idempotency record and leaves the output as the first wrote it.
    let processor = id_of(&dp, "Lambda::Function", "processor-a");
    s3.put_object()
        .bucket(&input)
        .key("direct/dup.txt")
        .body(json!({"id": "dup"}).to_string().into_bytes().into())
        .send()
        .await
        .expect("put");
    let send = || async {
        sqs.send_message()
            .queue_url(&type_a)
            .message_body(detail("direct/dup.txt"))
            .send()
            .await
            .expect("send");
    };
    send().await;
    let key = "processed/type_a/direct/dup.txt";
    let first = wait_for(key, LIMIT, || object_text(&s3, &output, key)).await;
    let runs = invocations(&processor).len();
    send().await;
    wait_for("the duplicate's invocation", LIMIT, || async {
        let after = invocations(&processor);
        (after.len() > runs && after.last().is_some_and(|e| e["error"].is_null())).then_some(())
    })
    .await;
    let second = object_text(&s3, &output, key).await.expect("still there");
    assert_eq!(first, second, "the duplicate rewrote the output");

    empty_buckets(&s3, &dp).await;
    delete_pipeline(&ns.0, name, &op);
}

#[tokio::test(flavor = "multi_thread")]
async fn orchestrated_runs_extract_to_notify_and_catches_failures() {
    install_crd();
    let ns = Namespace::create();
    let op = Operator::start(&ns.0);
    let sdk = sdk().await;
    let (s3, sfn) = (s3(&sdk), aws_sdk_sfn::Client::new(&sdk));
    let name = "orchestrated";
    apply_and_wait(
        &ns.0,
        name,
        &sample_manifest("orchestrated.yaml"),
        "Ready",
        &op,
    );
    let dp = get_pipeline(&ns.0, name);
    let input = id_of(&dp, "S3::Bucket", "input");
    let processed = id_of(&dp, "S3::Bucket", "processed");
    let machine = arn_of(&dp, "StepFunctions::StateMachine", "etl");

    let finished = |status: &'static str, count: usize| {
        let sfn = sfn.clone();
        let machine = machine.clone();
        move || {
            let sfn = sfn.clone();
            let machine = machine.clone();
            async move {
                let list = sfn
                    .list_executions()
                    .state_machine_arn(&machine)
                    .send()
                    .await
                    .expect("executions");
                let done: Vec<String> = list
                    .executions()
                    .iter()
                    .filter(|e| e.status().as_str() == status)
                    .map(|e| e.execution_arn().to_owned())
                    .collect();
                (done.len() >= count).then_some(done)
            }
        }
    };

    // An object in the input bucket starts the workflow through
    // EventBridge; extract → transform → load → notify succeed and load's
    // output exists.
    let started = Instant::now();
    s3.put_object()
        .bucket(&input)
        .key("orders/w-1.json")
        .body(
            json!({"order_id": "w-1", "items": [{"sku": "x", "quantity": 4, "price": 2.5}]})
                .to_string()
                .into_bytes()
                .into(),
        )
        .send()
        .await
        .expect("put");
    let succeeded = wait_for("a succeeded execution", LIMIT, finished("SUCCEEDED", 1)).await;
    println!(
        "orchestrated: object in → execution succeeded in {:.0} ms",
        started.elapsed().as_secs_f64() * 1000.0
    );
    let history = sfn
        .get_execution_history()
        .execution_arn(&succeeded[0])
        .send()
        .await
        .expect("history");
    let steps: Vec<String> = history
        .events()
        .iter()
        .filter_map(|e| e.state_entered_event_details())
        .map(|d| d.name().to_owned())
        .collect();
    assert_eq!(
        steps,
        ["Extract", "Transform", "Load", "Notify"],
        "{history:#?}"
    );
    let out = object_text(&s3, &processed, "processed/orders/w-1.json")
        .await
        .expect("load's output");
    let out: Value = serde_json::from_str(&out).expect("JSON");
    assert_eq!(out["total_items"], 4);

    // A malformed object: Extract fails, is retried as the definition says
    // (MaxAttempts 3), and the Catch ends the run in ProcessingFailed.
    let extract = id_of(&dp, "Lambda::Function", "extract");
    let before = failed(&invocations(&extract));
    s3.put_object()
        .bucket(&input)
        .key("orders/broken.json")
        .body(b"{oops".to_vec().into())
        .send()
        .await
        .expect("put");
    let failed_runs = wait_for("a failed execution", LIMIT, finished("FAILED", 1)).await;
    let run = sfn
        .describe_execution()
        .execution_arn(&failed_runs[0])
        .send()
        .await
        .expect("execution");
    assert_eq!(run.error(), Some("DataPipelineError"));
    assert_eq!(failed(&invocations(&extract)) - before, 4);

    empty_buckets(&s3, &dp).await;
    delete_pipeline(&ns.0, name, &op);
}

#[tokio::test(flavor = "multi_thread")]
async fn stream_scores_records_and_isolates_a_bad_one() {
    install_crd();
    let ns = Namespace::create();
    let op = Operator::start(&ns.0);
    let sdk = sdk().await;
    let kinesis = aws_sdk_kinesis::Client::new(&sdk);
    let dynamodb = aws_sdk_dynamodb::Client::new(&sdk);
    let sqs = aws_sdk_sqs::Client::new(&sdk);
    let name = "stream";
    apply_and_wait(&ns.0, name, &sample_manifest("stream.yaml"), "Ready", &op);
    let dp = get_pipeline(&ns.0, name);
    let stream = id_of(&dp, "Kinesis::Stream", "events");
    let table = id_of(&dp, "DynamoDB::Table", "results");

    // Five records, the third not JSON: the four good ones are scored with
    // the article's rule (anomaly when value > 1.5 × threshold); the bad one
    // is split off, retried, and described in the on-failure queue.
    let records = [
        json!({"id": "r1", "value": 10, "threshold": 5}).to_string(),
        json!({"id": "r2", "value": 6, "threshold": 5}).to_string(),
        "not json".to_owned(),
        json!({"id": "r4", "value": 100, "threshold": 10}).to_string(),
        json!({"id": "r5", "value": 1, "threshold": 10}).to_string(),
    ];
    let started = Instant::now();
    let mut bad_sequence = String::new();
    for (i, data) in records.iter().enumerate() {
        let put = kinesis
            .put_record()
            .stream_name(&stream)
            .partition_key("k")
            .data(aws_sdk_kinesis::primitives::Blob::new(data.as_bytes()))
            .send()
            .await
            .expect("put record");
        if i == 2 {
            bad_sequence = put.sequence_number().to_owned();
        }
    }
    let items = wait_for("four scored records", LIMIT, || async {
        let scan = dynamodb.scan().table_name(&table).send().await.ok()?;
        (scan.items().len() >= 4).then(|| scan.items().to_vec())
    })
    .await;
    println!(
        "stream: five records → four results in {:.0} ms",
        started.elapsed().as_secs_f64() * 1000.0
    );
    let anomaly = |id: &str| {
        items
            .iter()
            .find(|i| i.get("id").and_then(|v| v.as_s().ok()).map(String::as_str) == Some(id))
            .and_then(|i| i.get("anomaly"))
            .and_then(|v| v.as_bool().ok())
            .copied()
            .unwrap_or_else(|| panic!("{id} not scored: {items:#?}"))
    };
    assert!(anomaly("r1"));
    assert!(!anomaly("r2"));
    assert!(anomaly("r4"));
    assert!(!anomaly("r5"));
    assert_eq!(items.len(), 4, "{items:#?}");

    let failures = queue_url(&sqs, &id_of(&dp, "SQS::Queue", "failed-records")).await;
    let description = wait_for("the failure description", LIMIT, || async {
        take_messages(&sqs, &failures).await.into_iter().next()
    })
    .await;
    let description: Value = serde_json::from_str(&description).expect("JSON");
    let batch = &description["KinesisBatchInfo"];
    assert_eq!(batch["batchSize"], 1, "{description:#}");
    assert_eq!(batch["startSequenceNumber"], bad_sequence.as_str());
    assert_eq!(
        description["requestContext"]["condition"],
        "RetryAttemptsExhausted"
    );

    delete_pipeline(&ns.0, name, &op);
}

#[tokio::test(flavor = "multi_thread")]
async fn periodic_batch_aggregates_yesterday_when_the_schedule_fires() {
    install_crd();
    let ns = Namespace::create();
    let op = Operator::start(&ns.0);
    let sdk = sdk().await;
    let s3 = s3(&sdk);
    let name = "periodic-batch";
    apply_and_wait(
        &ns.0,
        name,
        &sample_manifest("periodic-batch.yaml"),
        "Ready",
        &op,
    );
    let dp = get_pipeline(&ns.0, name);
    let source = id_of(&dp, "S3::Bucket", "source");
    let destination = id_of(&dp, "S3::Bucket", "destination");
    let schedule = id_of(&dp, "Scheduler::Schedule", "daily");

    // Two objects of 2024-06-01 and one of the day after, which the run
    // scheduled for 2024-06-02 01:00 must leave out.
    for (key, records) in [
        (
            "2024/06/01/a.json",
            json!([{"category": "x", "value": 1.5}, {"category": "y", "value": 2}]),
        ),
        ("2024/06/01/b.json", json!([{"category": "x", "value": 3}])),
        (
            "2024/06/02/c.json",
            json!([{"category": "x", "value": 100}]),
        ),
    ] {
        s3.put_object()
            .bucket(&source)
            .key(key)
            .body(json!({"records": records}).to_string().into_bytes().into())
            .send()
            .await
            .expect("put");
    }
    let report = fire_schedule(&schedule, "2024-06-02T01:00:00Z");
    assert_eq!(report["delivered"], true, "{report}");
    let summary = wait_for("the summary", LIMIT, || {
        object_text(&s3, &destination, "summaries/2024-06-01.json")
    })
    .await;
    let summary: Value = serde_json::from_str(&summary).expect("JSON");
    assert_eq!(summary["date"], "2024-06-01");
    assert_eq!(summary["objects_processed"], 2, "{summary:#}");
    assert_eq!(summary["total_records"], 3);
    assert_eq!(summary["aggregated_values"]["x"], 4.5);
    assert_eq!(summary["aggregated_values"]["y"], 2);
    assert_eq!(keys(&s3, &destination, "summaries/").await.len(), 1);

    empty_buckets(&s3, &dp).await;
    delete_pipeline(&ns.0, name, &op);
}
