//! The harness: local environment, one emulated function, moto helpers.

use crate::emulator::Emulator;
use std::fs::File;
use std::path::PathBuf;
use std::process::Child;
use std::time::{Duration, Instant};

use aws_sdk_dynamodb::types::{
    AttributeDefinition, AttributeValue, BillingMode, KeySchemaElement, KeyType,
    ScalarAttributeType,
};
use aws_sdk_lambda::primitives::Blob;
use aws_sdk_s3::primitives::ByteStream;
use base64::Engine as _;
use serde_json::{Value, json};

/// The local environment, from `make env-tests`.
#[derive(Debug)]
pub(crate) struct LocalEnv {
    pub(crate) moto: String,
    pub(crate) cargo_lambda: PathBuf,
    pub(crate) bin_dir: PathBuf,
}

pub(crate) fn required_var(name: &str) -> String {
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

pub(crate) fn local_env() -> LocalEnv {
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

pub(crate) fn suffix() -> String {
    format!("{:08x}", rand::random::<u32>())
}

/// One handler (the `bootstrap` executable naming it) behind its own cargo-lambda emulator. Both processes
/// are killed on drop; on a failing test their logs are printed.
#[derive(Debug)]
pub(crate) struct LocalFunction {
    function: String,
    handler: Child,
    logs: PathBuf,
    /// Declared last: dropped (killed) after the handler and the log dump.
    emulator: Emulator,
}

impl LocalFunction {
    pub(crate) fn start(env: &LocalEnv, handler_name: &str, vars: &[(&str, &str)]) -> Self {
        let executable = env.bin_dir.join("bootstrap");
        assert!(
            executable.is_file(),
            "{} is missing: run `make handlers` (or `make env-tests`)",
            executable.display()
        );
        let logs =
            std::env::temp_dir().join(format!("sluice-local-lambda-{handler_name}-{}", suffix()));
        std::fs::create_dir_all(&logs).expect("log directory");
        let log = |name: &str| File::create(logs.join(name)).expect("log file");

        let emulator = Emulator::start(
            &env.cargo_lambda,
            log("cargo-lambda.log").into(),
            log("cargo-lambda.log").into(),
        )
        .unwrap_or_else(|e| panic!("{e}"));
        let handler = emulator
            .handler_command(&executable, handler_name, &env.moto)
            .envs(vars.iter().copied())
            .stdout(log("handler.log"))
            .stderr(log("handler.log"))
            .spawn()
            .expect("start handler binary");
        Self {
            function: handler_name.to_owned(),
            handler,
            logs,
            emulator,
        }
    }

    /// Invokes the function synchronously and returns its JSON response;
    /// fails the test if the function reported an error.
    pub(crate) async fn invoke(&mut self, sdk: &aws_config::SdkConfig, payload: &Value) -> Value {
        let (error, body) = self.invoke_raw(sdk, payload).await;
        assert_eq!(error, None, "{} failed: {body}", self.function);
        body
    }

    /// Invokes the function synchronously: Lambda's `FunctionError` (set
    /// when the handler returned an error) and the JSON payload.
    pub(crate) async fn invoke_raw(
        &mut self,
        sdk: &aws_config::SdkConfig,
        payload: &Value,
    ) -> (Option<String>, Value) {
        let output = self
            .emulator
            .client(sdk)
            .invoke()
            .function_name(crate::emulator::FUNCTION)
            .payload(Blob::new(serde_json::to_vec(payload).expect("payload")))
            .send()
            .await;
        if let Ok(Some(status)) = self.handler.try_wait() {
            panic!("{} exited during the invocation: {status}", self.function);
        }
        // Real Lambda answers a function error with 200 and the
        // `X-Amz-Function-Error` header; cargo-lambda's emulator answers 500
        // with the same error payload. Both become (Some(..), payload).
        let output = match output {
            Ok(output) => output,
            Err(aws_sdk_lambda::error::SdkError::ServiceError(e))
                if e.raw().status().as_u16() == 500 =>
            {
                let body = e.raw().body().bytes().unwrap_or_default();
                let payload: Value = serde_json::from_slice(body).unwrap_or_else(|_| {
                    panic!(
                        "{} failed with a non-JSON body {:?}",
                        self.function,
                        String::from_utf8_lossy(body)
                    )
                });
                return (Some("Unhandled".to_owned()), payload);
            }
            Err(e) => panic!(
                "invoking {}: {}",
                self.function,
                aws_sdk_lambda::error::DisplayErrorContext(e)
            ),
        };
        let body = output.payload().expect("response payload").as_ref();
        let body = serde_json::from_slice(body).unwrap_or_else(|e| {
            panic!(
                "{} returned non-JSON {:?}: {e}",
                self.function,
                String::from_utf8_lossy(body)
            )
        });
        (output.function_error().map(str::to_owned), body)
    }
}

impl Drop for LocalFunction {
    fn drop(&mut self) {
        let _ = self.handler.kill();
        let _ = self.handler.wait();
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

/// SDK configuration for the test's own clients: moto, the environment's
/// credentials.
pub(crate) async fn sdk(env: &LocalEnv) -> aws_config::SdkConfig {
    let (key, secret) = crate::emulator::credentials();
    aws_config::defaults(aws_config::BehaviorVersion::latest())
        .http_client(sluice_handlers::kit::http::LambdaHttpClient::default())
        .endpoint_url(&env.moto)
        .region(aws_config::Region::new("us-east-1"))
        .credentials_provider(aws_sdk_s3::config::Credentials::new(
            key, secret, None, None, "test",
        ))
        .load()
        .await
}

pub(crate) fn s3(sdk: &aws_config::SdkConfig) -> aws_sdk_s3::Client {
    aws_sdk_s3::Client::from_conf(
        aws_sdk_s3::config::Builder::from(sdk)
            .force_path_style(true)
            .build(),
    )
}

pub(crate) async fn create_bucket(s3: &aws_sdk_s3::Client, name: &str) {
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

pub(crate) async fn put_json(s3: &aws_sdk_s3::Client, bucket: &str, key: &str, body: &Value) {
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

pub(crate) async fn get_json(
    s3: &aws_sdk_s3::Client,
    bucket: &str,
    key: &str,
) -> (Value, Option<String>) {
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
pub(crate) fn s3_record(bucket: &str, key: &str) -> Value {
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

pub(crate) fn kinesis_record(sequence: &str, data: &[u8]) -> Value {
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

/// A results table keyed by `id`, as stream-anomaly expects.
pub(crate) async fn create_results_table(
    sdk: &aws_config::SdkConfig,
    name: &str,
) -> aws_sdk_dynamodb::Client {
    create_table(sdk, name, "id").await
}

/// An on-demand table with the string partition key `key`.
pub(crate) async fn create_table(
    sdk: &aws_config::SdkConfig,
    name: &str,
    key: &str,
) -> aws_sdk_dynamodb::Client {
    let dynamo = aws_sdk_dynamodb::Client::new(sdk);
    dynamo
        .create_table()
        .table_name(name)
        .attribute_definitions(
            AttributeDefinition::builder()
                .attribute_name(key)
                .attribute_type(ScalarAttributeType::S)
                .build()
                .expect("attribute"),
        )
        .key_schema(
            KeySchemaElement::builder()
                .attribute_name(key)
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

pub(crate) async fn get_item(
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

pub(crate) fn number(value: &AttributeValue) -> f64 {
    value
        .as_n()
        .expect("number attribute")
        .parse()
        .expect("numeric")
}

/// Creates a standard queue; returns its URL and ARN.
pub(crate) async fn create_queue(sqs: &aws_sdk_sqs::Client, name: &str) -> (String, String) {
    let url = sqs
        .create_queue()
        .queue_name(name)
        .send()
        .await
        .expect("create queue")
        .queue_url
        .expect("queue url");
    let arn = sqs
        .get_queue_attributes()
        .queue_url(&url)
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
    (url, arn)
}

/// A new event bus with one rule (`pattern`) targeting a new queue;
/// returns the bus name and the queue URL.
pub(crate) async fn bus_to_queue(
    sdk: &aws_config::SdkConfig,
    id: &str,
    pattern: &Value,
) -> (String, String) {
    let events = aws_sdk_eventbridge::Client::new(sdk);
    let sqs = aws_sdk_sqs::Client::new(sdk);
    let bus = format!("sluice-it-bus-{id}");
    events
        .create_event_bus()
        .name(&bus)
        .send()
        .await
        .expect("create bus");
    let (queue_url, queue_arn) = create_queue(&sqs, &format!("sluice-it-target-{id}")).await;
    let rule = format!("sluice-it-rule-{id}");
    let rule_arn = events
        .put_rule()
        .name(&rule)
        .event_bus_name(&bus)
        .event_pattern(pattern.to_string())
        .send()
        .await
        .expect("put rule")
        .rule_arn()
        .expect("rule ARN")
        .to_owned();
    // As on AWS, EventBridge delivers to a queue only when the queue's
    // policy lets it, for this rule.
    let policy = serde_json::json!({"Version": "2012-10-17", "Statement": [{
        "Effect": "Allow",
        "Principal": {"Service": "events.amazonaws.com"},
        "Action": "sqs:SendMessage",
        "Resource": queue_arn,
        "Condition": {"ArnEquals": {"aws:SourceArn": rule_arn}}}]});
    sqs.set_queue_attributes()
        .queue_url(&queue_url)
        .attributes(
            aws_sdk_sqs::types::QueueAttributeName::Policy,
            policy.to_string(),
        )
        .send()
        .await
        .expect("queue policy");
    events
        .put_targets()
        .rule(&rule)
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
    (bus, queue_url)
}

/// Receives from `queue_url` until `expected` messages arrived, then for a
/// further `settle` to catch any extra one (or until `limit` passes).
pub(crate) async fn receive_messages(
    sqs: &aws_sdk_sqs::Client,
    queue_url: &str,
    expected: usize,
    settle: Duration,
    limit: Duration,
) -> Vec<aws_sdk_sqs::types::Message> {
    let mut messages = Vec::new();
    let deadline = Instant::now() + limit;
    let mut settled_at: Option<Instant> = None;
    while Instant::now() < deadline && settled_at.is_none_or(|t| Instant::now() < t) {
        let received = sqs
            .receive_message()
            .queue_url(queue_url)
            .max_number_of_messages(10)
            .message_attribute_names("All")
            .message_system_attribute_names(aws_sdk_sqs::types::MessageSystemAttributeName::All)
            .wait_time_seconds(1)
            .send()
            .await
            .expect("receive");
        messages.extend(received.messages.unwrap_or_default());
        if messages.len() >= expected && settled_at.is_none() {
            settled_at = Some(Instant::now() + settle);
        }
    }
    messages
}
