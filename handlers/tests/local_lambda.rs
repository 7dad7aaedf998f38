//! The real handler binaries (built by `make handlers`) running under
//! cargo-lambda's local Lambda Runtime API emulator, against moto, invoked
//! through aws-sdk-lambda's Invoke API.
//!
//! Built only with the `env-tests` feature and run by `make env-tests`, which
//! brings up moto and sets:
//! - `AWS_ENDPOINT_URL`: moto;
//! - `SLUICE_CARGO_LAMBDA`: the cargo-lambda binary (`scripts/tools.sh path cargo-lambda`);
//! - `SLUICE_LAMBDA_BIN_DIR`: the directory of the built handler binaries.
//!
//! Each test starts its own emulator (`cargo lambda watch --only-lambda-apis`)
//! on a free port and one handler process polling it, uses resource names
//! with a random suffix, and kills both processes when it ends.

use std::fs::File;
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use aws_sdk_dynamodb::types::{
    AttributeDefinition, AttributeValue, BillingMode, KeySchemaElement, KeyType,
    ScalarAttributeType,
};
use aws_sdk_lambda::primitives::Blob;
use aws_sdk_s3::primitives::ByteStream;
use base64::Engine as _;
use futures::StreamExt as _;
use serde_json::{Value, json};

/// The local environment, from `make env-tests`.
#[derive(Debug)]
struct LocalEnv {
    moto: String,
    cargo_lambda: PathBuf,
    bin_dir: PathBuf,
}

fn required_var(name: &str) -> String {
    std::env::var(name)
        .ok()
        .filter(|v| !v.trim().is_empty())
        .unwrap_or_else(|| {
            panic!(
                "{name} is not set. These tests run the built handler binaries under \
                 cargo-lambda against moto; run them with `make env-tests`, which sets \
                 AWS_ENDPOINT_URL, SLUICE_CARGO_LAMBDA and SLUICE_LAMBDA_BIN_DIR"
            )
        })
}

fn local_env() -> LocalEnv {
    let env = LocalEnv {
        moto: required_var("AWS_ENDPOINT_URL"),
        cargo_lambda: PathBuf::from(required_var("SLUICE_CARGO_LAMBDA")),
        bin_dir: PathBuf::from(required_var("SLUICE_LAMBDA_BIN_DIR")),
    };
    assert!(
        env.cargo_lambda.is_file(),
        "SLUICE_CARGO_LAMBDA={} does not exist: run `make env-tests` (it installs cargo-lambda)",
        env.cargo_lambda.display()
    );
    assert!(
        env.bin_dir.is_dir(),
        "SLUICE_LAMBDA_BIN_DIR={} does not exist: run `make env-tests` (it runs `make handlers`)",
        env.bin_dir.display()
    );
    env
}

fn suffix() -> String {
    format!("{:08x}", rand::random::<u32>())
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port()
}

fn wait_for_port(port: u16, limit: Duration, child: &mut Child, what: &str) {
    let deadline = Instant::now() + limit;
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        if let Ok(Some(status)) = child.try_wait() {
            panic!("{what} exited before listening on port {port}: {status}");
        }
        assert!(
            Instant::now() < deadline,
            "{what} did not listen on port {port} within {limit:?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// One handler binary behind its own cargo-lambda emulator. Both processes
/// are killed on drop; on a failing test their logs are printed.
#[derive(Debug)]
struct LocalFunction {
    function: String,
    port: u16,
    watch: Child,
    handler: Child,
    logs: PathBuf,
}

impl LocalFunction {
    fn start(env: &LocalEnv, binary: &str, vars: &[(&str, &str)]) -> Self {
        let executable = env.bin_dir.join(binary);
        assert!(
            executable.is_file(),
            "{} is missing: run `make handlers` (or `make env-tests`)",
            executable.display()
        );
        let logs = std::env::temp_dir().join(format!("sluice-local-lambda-{binary}-{}", suffix()));
        std::fs::create_dir_all(&logs).expect("log directory");
        let log = |name: &str| File::create(logs.join(name)).expect("log file");

        let port = free_port();
        // cargo-lambda reads the package's binary targets to accept the
        // function name, so it runs in the handlers package.
        let mut watch = Command::new(&env.cargo_lambda)
            .args(["lambda", "watch", "--only-lambda-apis", "--ignore-changes"])
            .args(["-A", "127.0.0.1", "-P", &port.to_string()])
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .stdin(Stdio::null())
            .stdout(log("cargo-lambda.log"))
            .stderr(log("cargo-lambda.log"))
            .spawn()
            .expect("start cargo-lambda");
        wait_for_port(
            port,
            Duration::from_secs(60),
            &mut watch,
            "cargo lambda watch",
        );

        let handler = Command::new(&executable)
            .env(
                "AWS_LAMBDA_RUNTIME_API",
                format!("http://127.0.0.1:{port}/.rt/{binary}"),
            )
            .env("AWS_LAMBDA_FUNCTION_NAME", binary)
            .env("AWS_LAMBDA_FUNCTION_VERSION", "1")
            .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "128")
            .env("AWS_ENDPOINT_URL", &env.moto)
            .env("AWS_REGION", "us-east-1")
            .env("AWS_ACCESS_KEY_ID", "testing")
            .env("AWS_SECRET_ACCESS_KEY", "testing")
            .envs(vars.iter().copied())
            .stdin(Stdio::null())
            .stdout(log("handler.log"))
            .stderr(log("handler.log"))
            .spawn()
            .expect("start handler binary");
        Self {
            function: binary.to_owned(),
            port,
            watch,
            handler,
            logs,
        }
    }

    /// Invokes the function synchronously and returns its JSON response.
    async fn invoke(&mut self, sdk: &aws_config::SdkConfig, payload: &Value) -> Value {
        let client = aws_sdk_lambda::Client::from_conf(
            aws_sdk_lambda::config::Builder::from(sdk)
                .endpoint_url(format!("http://127.0.0.1:{}", self.port))
                .retry_config(aws_sdk_lambda::config::retry::RetryConfig::disabled())
                .build(),
        );
        let output = client
            .invoke()
            .function_name(&self.function)
            .payload(Blob::new(serde_json::to_vec(payload).expect("payload")))
            .send()
            .await;
        if let Ok(Some(status)) = self.handler.try_wait() {
            panic!("{} exited during the invocation: {status}", self.function);
        }
        let output = output.unwrap_or_else(|e| {
            panic!(
                "invoking {}: {}",
                self.function,
                aws_sdk_lambda::error::DisplayErrorContext(e)
            )
        });
        assert_eq!(output.function_error(), None, "{} failed", self.function);
        let body = output.payload().expect("response payload").as_ref();
        serde_json::from_slice(body).unwrap_or_else(|e| {
            panic!(
                "{} returned non-JSON {:?}: {e}",
                self.function,
                String::from_utf8_lossy(body)
            )
        })
    }
}

impl Drop for LocalFunction {
    fn drop(&mut self) {
        for child in [&mut self.handler, &mut self.watch] {
            let _ = child.kill();
            let _ = child.wait();
        }
        if std::thread::panicking() {
            for name in ["handler.log", "cargo-lambda.log"] {
                let text = std::fs::read_to_string(self.logs.join(name)).unwrap_or_default();
                let tail: Vec<&str> = text.lines().rev().take(40).collect();
                eprintln!("--- {} {name} (last lines) ---", self.function);
                for line in tail.iter().rev() {
                    eprintln!("{line}");
                }
            }
        }
        let _ = std::fs::remove_dir_all(&self.logs);
    }
}

/// SDK configuration for the test's own clients: moto, fixed credentials.
async fn sdk(env: &LocalEnv) -> aws_config::SdkConfig {
    aws_config::defaults(aws_config::BehaviorVersion::latest())
        .endpoint_url(&env.moto)
        .region(aws_config::Region::new("us-east-1"))
        .credentials_provider(aws_sdk_s3::config::Credentials::new(
            "testing", "testing", None, None, "test",
        ))
        .load()
        .await
}

fn s3(sdk: &aws_config::SdkConfig) -> aws_sdk_s3::Client {
    aws_sdk_s3::Client::from_conf(
        aws_sdk_s3::config::Builder::from(sdk)
            .force_path_style(true)
            .build(),
    )
}

async fn create_bucket(s3: &aws_sdk_s3::Client, name: &str) {
    s3.create_bucket()
        .bucket(name)
        .send()
        .await
        .unwrap_or_else(|e| {
            panic!(
                "create bucket {name}: {}",
                aws_sdk_s3::error::DisplayErrorContext(e)
            )
        });
}

async fn put_json(s3: &aws_sdk_s3::Client, bucket: &str, key: &str, body: &Value) {
    s3.put_object()
        .bucket(bucket)
        .key(key)
        .body(ByteStream::from(serde_json::to_vec(body).expect("json")))
        .send()
        .await
        .unwrap_or_else(|e| {
            panic!(
                "put s3://{bucket}/{key}: {}",
                aws_sdk_s3::error::DisplayErrorContext(e)
            )
        });
}

async fn get_json(s3: &aws_sdk_s3::Client, bucket: &str, key: &str) -> (Value, Option<String>) {
    let object = s3
        .get_object()
        .bucket(bucket)
        .key(key)
        .send()
        .await
        .unwrap_or_else(|e| {
            panic!(
                "get s3://{bucket}/{key}: {}",
                aws_sdk_s3::error::DisplayErrorContext(e)
            )
        });
    let content_type = object.content_type().map(str::to_owned);
    let bytes = object.body.collect().await.expect("body").into_bytes();
    (
        serde_json::from_slice(&bytes).expect("JSON object"),
        content_type,
    )
}

/// An S3 `ObjectCreated:Put` notification record; `key` is URL-encoded as S3
/// does (space as `+`).
fn s3_record(bucket: &str, key: &str) -> Value {
    json!({
        "eventVersion": "2.1", "eventSource": "aws:s3", "awsRegion": "us-east-1",
        "eventTime": "2024-06-05T00:59:59.000Z", "eventName": "ObjectCreated:Put",
        "userIdentity": {"principalId": "AWS:X"}, "requestParameters": {"sourceIPAddress": "127.0.0.1"},
        "responseElements": {},
        "s3": {"s3SchemaVersion": "1.0", "configurationId": "local",
               "bucket": {"name": bucket, "arn": format!("arn:aws:s3:::{bucket}")},
               "object": {"key": key.replace(' ', "+"), "size": 1, "eTag": "e", "sequencer": "0A1B2C"}}
    })
}

fn kinesis_record(sequence: &str, data: &[u8]) -> Value {
    json!({
        "eventSource": "aws:kinesis", "eventID": format!("shardId-000000000000:{sequence}"),
        "eventName": "aws:kinesis:record", "eventVersion": "1.0", "awsRegion": "us-east-1",
        "invokeIdentityArn": "arn:aws:iam::123456789012:role/local",
        "eventSourceARN": "arn:aws:kinesis:us-east-1:123456789012:stream/local",
        "kinesis": {
            "kinesisSchemaVersion": "1.0", "partitionKey": "pk", "sequenceNumber": sequence,
            "approximateArrivalTimestamp": 1717581600.0,
            "data": base64::engine::general_purpose::STANDARD.encode(data)
        }
    })
}

async fn create_results_table(sdk: &aws_config::SdkConfig, name: &str) -> aws_sdk_dynamodb::Client {
    let dynamo = aws_sdk_dynamodb::Client::new(sdk);
    dynamo
        .create_table()
        .table_name(name)
        .attribute_definitions(
            AttributeDefinition::builder()
                .attribute_name("id")
                .attribute_type(ScalarAttributeType::S)
                .build()
                .expect("attribute"),
        )
        .key_schema(
            KeySchemaElement::builder()
                .attribute_name("id")
                .key_type(KeyType::Hash)
                .build()
                .expect("key"),
        )
        .billing_mode(BillingMode::PayPerRequest)
        .send()
        .await
        .expect("create table");
    dynamo
}

async fn get_item(
    dynamo: &aws_sdk_dynamodb::Client,
    table: &str,
    id: &str,
) -> Option<std::collections::HashMap<String, AttributeValue>> {
    dynamo
        .get_item()
        .table_name(table)
        .key("id", AttributeValue::S(id.to_owned()))
        .consistent_read(true)
        .send()
        .await
        .expect("get item")
        .item
}

fn number(value: &AttributeValue) -> f64 {
    value
        .as_n()
        .expect("number attribute")
        .parse()
        .expect("numeric")
}

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
    let events = aws_sdk_eventbridge::Client::new(&sdk);
    let sqs = aws_sdk_sqs::Client::new(&sdk);
    let id = suffix();
    let (bucket, bus, queue) = (
        format!("sluice-it-router-{id}"),
        format!("sluice-it-bus-{id}"),
        format!("sluice-it-type-a-{id}"),
    );
    create_bucket(&s3, &bucket).await;
    events
        .create_event_bus()
        .name(&bus)
        .send()
        .await
        .expect("create bus");
    let queue_url = sqs
        .create_queue()
        .queue_name(&queue)
        .send()
        .await
        .expect("create queue")
        .queue_url
        .expect("queue url");
    let queue_arn = sqs
        .get_queue_attributes()
        .queue_url(&queue_url)
        .attribute_names(aws_sdk_sqs::types::QueueAttributeName::QueueArn)
        .send()
        .await
        .expect("queue attributes")
        .attributes
        .and_then(|a| {
            a.get(&aws_sdk_sqs::types::QueueAttributeName::QueueArn)
                .cloned()
        })
        .expect("queue arn");
    let pattern = json!({
        "source": ["sluice.router"],
        "detail-type": ["data-event"],
        "detail": {"data_type": ["type_a"]}
    });
    events
        .put_rule()
        .name(format!("type-a-{id}"))
        .event_bus_name(&bus)
        .event_pattern(pattern.to_string())
        .send()
        .await
        .expect("put rule");
    events
        .put_targets()
        .rule(format!("type-a-{id}"))
        .event_bus_name(&bus)
        .targets(
            aws_sdk_eventbridge::types::Target::builder()
                .id("queue")
                .arn(&queue_arn)
                .build()
                .expect("target"),
        )
        .send()
        .await
        .expect("put targets");
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

    // Only the type_a event matches the rule; collect for a few seconds to
    // see that nothing else arrives.
    let mut bodies = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(6);
    while Instant::now() < deadline {
        let received = sqs
            .receive_message()
            .queue_url(&queue_url)
            .max_number_of_messages(10)
            .wait_time_seconds(1)
            .send()
            .await
            .expect("receive");
        for message in received.messages.unwrap_or_default() {
            bodies.push(
                serde_json::from_str::<Value>(message.body().unwrap_or_default())
                    .expect("event JSON"),
            );
        }
        if !bodies.is_empty() && Instant::now() + Duration::from_secs(4) > deadline {
            break;
        }
    }
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
