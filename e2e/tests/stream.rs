//! Pattern 4 end to end: the stream sample converged into the emulator and
//! checked against the article's stack (Kinesis → stream-anomaly → DynamoDB)
//! through the AWS SDK, drift-corrected and deleted.

use std::collections::BTreeMap;

use aws_sdk_kinesis::types::{EncryptionType, StreamMode};
use sluice_e2e::{
    Namespace, Operator, apply_and_wait, assert_nothing_left, calls_between, delete_pipeline,
    get_pipeline, id_of, install_crd, poke_and_wait, sample_manifest, sdk,
};

const NAME: &str = "stream";

#[tokio::test(flavor = "multi_thread")]
async fn stream_sample_converges_corrects_drift_and_deletes() {
    install_crd();
    let ns = Namespace::create();
    let op = Operator::start(&ns.0);
    let sdk = sdk().await;
    let kinesis = aws_sdk_kinesis::Client::new(&sdk);
    let dynamodb = aws_sdk_dynamodb::Client::new(&sdk);
    let lambda = aws_sdk_lambda::Client::new(&sdk);
    let iam = aws_sdk_iam::Client::new(&sdk);

    let before = op.aws_calls();
    let to_ready = apply_and_wait(&ns.0, NAME, &sample_manifest("stream.yaml"), "Ready", &op);
    println!(
        "stream: kubectl apply → Ready in {:.2} s",
        to_ready.as_secs_f64()
    );
    println!(
        "stream: AWS calls of one convergence: {:#?}",
        calls_between(&before, &op.aws_calls())
    );
    let dp = get_pipeline(&ns.0, NAME);
    assert_eq!(
        dp["status"]["inventory"]
            .as_array()
            .expect("inventory")
            .len(),
        6,
        "{:#}",
        dp["status"]["inventory"]
    );

    // The stream: one provisioned shard, a day's retention, encrypted with
    // the AWS managed key.
    let stream = id_of(&dp, "Kinesis::Stream", "events");
    let summary = kinesis
        .describe_stream_summary()
        .stream_name(&stream)
        .send()
        .await
        .expect("stream")
        .stream_description_summary
        .expect("summary");
    assert_eq!(
        summary.stream_mode_details().map(|m| m.stream_mode()),
        Some(&StreamMode::Provisioned)
    );
    assert_eq!(summary.open_shard_count(), 1);
    assert_eq!(summary.retention_period_hours(), 24);
    assert_eq!(summary.encryption_type(), Some(&EncryptionType::Kms));
    assert_eq!(summary.key_id(), Some("alias/aws/kinesis"));
    let stream_arn = summary.stream_arn().to_owned();

    // The table: key `id` (string), a stream of new images.
    let table = id_of(&dp, "DynamoDB::Table", "results");
    let described = dynamodb
        .describe_table()
        .table_name(&table)
        .send()
        .await
        .expect("table")
        .table
        .expect("table");
    let key = &described.key_schema()[0];
    assert_eq!(key.attribute_name(), "id");
    assert_eq!(described.key_schema().len(), 1);
    let spec = described.stream_specification().expect("stream spec");
    assert!(spec.stream_enabled());
    assert_eq!(
        spec.stream_view_type().map(|v| v.as_str()),
        Some("NEW_IMAGE")
    );

    // The mapping: the article's batch of 100 within 60 s from LATEST, and
    // the best practices: bisect on error, 3 retries, failures to a queue.
    let function = id_of(&dp, "Lambda::Function", "processor");
    let failed = id_of(&dp, "SQS::Queue", "failed-records");
    let mappings = lambda
        .list_event_source_mappings()
        .function_name(&function)
        .send()
        .await
        .expect("mappings");
    assert_eq!(mappings.event_source_mappings().len(), 1);
    let m = &mappings.event_source_mappings()[0];
    assert_eq!(m.event_source_arn(), Some(stream_arn.as_str()));
    assert_eq!(m.batch_size(), Some(100));
    assert_eq!(m.maximum_batching_window_in_seconds(), Some(60));
    assert_eq!(m.starting_position().map(|p| p.as_str()), Some("LATEST"));
    assert_eq!(m.bisect_batch_on_function_error(), Some(true));
    assert_eq!(m.maximum_retry_attempts(), Some(3));
    assert_eq!(
        m.function_response_types(),
        [aws_sdk_lambda::types::FunctionResponseType::ReportBatchItemFailures]
    );
    let destination = m
        .destination_config()
        .and_then(|d| d.on_failure())
        .and_then(|f| f.destination())
        .expect("on-failure destination");
    assert!(
        destination.ends_with(&format!(":{failed}")),
        "{destination}"
    );
    let inventory_arn = dp["status"]["inventory"]
        .as_array()
        .expect("inventory")
        .iter()
        .find(|e| e["kind"] == "Lambda::EventSourceMapping")
        .and_then(|e| e["arn"].as_str())
        .expect("the mapping's ARN is in the inventory")
        .to_owned();
    assert!(
        inventory_arn.ends_with(m.uuid().expect("uuid")),
        "{inventory_arn}"
    );

    // The role: logs, the stream's read actions, the table's writes, the
    // failure queue's send, nothing else.
    let doc = iam
        .get_role_policy()
        .role_name(id_of(&dp, "IAM::Role", "processor"))
        .policy_name("sluice")
        .send()
        .await
        .expect("policy");
    let doc = sluice_operator::iam::parse_policy(doc.policy_document()).expect("JSON");
    let mut grants: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for s in doc["Statement"].as_array().expect("statements") {
        for r in s["Resource"].as_array().expect("resources") {
            let mut actions: Vec<String> = s["Action"]
                .as_array()
                .expect("actions")
                .iter()
                .map(|a| a.as_str().expect("action").to_owned())
                .collect();
            grants
                .entry(r.as_str().expect("resource").to_owned())
                .or_default()
                .append(&mut actions);
        }
    }
    let account = stream_arn.split(':').nth(4).expect("account").to_owned();
    let expected: BTreeMap<String, Vec<String>> = [
        (
            format!("arn:aws:logs:us-east-1:{account}:log-group:/aws/lambda/{function}:*"),
            vec![
                "logs:CreateLogGroup",
                "logs:CreateLogStream",
                "logs:PutLogEvents",
            ],
        ),
        (
            stream_arn.clone(),
            vec![
                "kinesis:DescribeStream",
                "kinesis:DescribeStreamSummary",
                "kinesis:GetRecords",
                "kinesis:GetShardIterator",
                "kinesis:ListShards",
                "kinesis:SubscribeToShard",
            ],
        ),
        (
            format!("arn:aws:dynamodb:us-east-1:{account}:table/{table}"),
            vec![
                "dynamodb:BatchWriteItem",
                "dynamodb:DeleteItem",
                "dynamodb:DescribeTable",
                "dynamodb:PutItem",
                "dynamodb:UpdateItem",
            ],
        ),
        (
            format!("arn:aws:sqs:us-east-1:{account}:{failed}"),
            vec!["sqs:SendMessage"],
        ),
    ]
    .into_iter()
    .map(|(r, a)| (r, a.into_iter().map(str::to_owned).collect()))
    .collect();
    let grants: BTreeMap<String, Vec<String>> = grants
        .into_iter()
        .map(|(r, mut a)| {
            a.sort();
            (r, a)
        })
        .collect();
    assert_eq!(grants, expected);

    // Steady state: a resync makes no write.
    let before = op.aws_calls();
    poke_and_wait(&ns.0, NAME, &op);
    let resync = calls_between(&before, &op.aws_calls());
    println!("stream: AWS calls of one steady-state resync: {resync:#?}");
    assert!(
        resync.keys().all(|k| k.ends_with("(read)")),
        "steady state wrote: {resync:?}"
    );

    // A batch size changed by hand is corrected with one write.
    // Counted from before the drift: whichever reconcile sees it, the
    // corrections are the only writes.
    let before = op.aws_calls();
    let uuid = m.uuid().expect("uuid").to_owned();
    lambda
        .update_event_source_mapping()
        .uuid(&uuid)
        .batch_size(7)
        .send()
        .await
        .expect("drift");
    poke_and_wait(&ns.0, NAME, &op);
    op.wait_until(
        "the batch size corrected",
        std::time::Duration::from_secs(30),
        || {
            let writes = calls_between(&before, &op.aws_calls());
            writes.contains_key("lambda:UpdateEventSourceMapping (write)")
        },
    );
    let writes: Vec<(String, u64)> = calls_between(&before, &op.aws_calls())
        .into_iter()
        .filter(|(k, _)| k.ends_with("(write)"))
        .collect();
    assert_eq!(
        writes,
        [("lambda:UpdateEventSourceMapping (write)".to_owned(), 1)]
    );
    let batch = lambda
        .get_event_source_mapping()
        .uuid(&uuid)
        .send()
        .await
        .expect("mapping")
        .batch_size();
    assert_eq!(batch, Some(100));

    delete_pipeline(&ns.0, NAME, &op);
    assert_nothing_left(&sdk, &op.prefix).await;
    println!("operator memory: {}", op.memory());
}
