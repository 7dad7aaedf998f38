//! Helpers of the data-flow tests: the harness's own endpoints beside the
//! emulator (`e2e/moto/sluice_harness/control.py`) and waits on what comes
//! out of a pipeline.

use std::future::Future;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use serde_json::Value;

/// `METHOD /_sluice/<path>` on the emulator's harness; the JSON answer.
pub fn harness(method: &str, path: &str) -> Value {
    let endpoint = std::env::var("AWS_ENDPOINT_URL").expect("AWS_ENDPOINT_URL");
    let address = endpoint
        .trim_start_matches("http://")
        .trim_end_matches('/')
        .to_owned();
    let mut stream = TcpStream::connect(&address).expect("connect to the emulator");
    stream
        .set_read_timeout(Some(Duration::from_secs(120)))
        .expect("timeout");
    write!(
        stream,
        "{method} /_sluice/{path} HTTP/1.0\r\nHost: {address}\r\nContent-Length: 0\r\n\r\n"
    )
    .expect("request");
    let mut response = String::new();
    stream.read_to_string(&mut response).expect("response");
    let (head, body) = response.split_once("\r\n\r\n").expect("HTTP response");
    assert!(
        head.starts_with("HTTP/1.0 200") || head.starts_with("HTTP/1.1 200"),
        "{method} {path}: {head}\n{body}"
    );
    serde_json::from_str(body).expect("JSON")
}

/// `s` percent-encoded for a query string.
pub fn url_encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// Whether the emulator's IAM would let `role` do `action` on `resource`
/// with the condition keys `context`, as IAM's SimulatePrincipalPolicy
/// answers (its policies, its boundary, the resource's policy).
pub fn role_may(role: &str, action: &str, resource: &str, context: &[(&str, &str)]) -> bool {
    let mut path = format!(
        "iam/simulate?role={}&action={action}&resource={}",
        url_encode(role),
        url_encode(resource)
    );
    for (k, v) in context {
        path.push_str(&format!("&context.{k}={}", url_encode(v)));
    }
    harness("GET", &path)["allowed"]
        .as_bool()
        .expect("a verdict")
}

/// The invocations of one function the harness ran, oldest first.
pub fn invocations(function: &str) -> Vec<Value> {
    match harness("GET", &format!("invocations?function={function}")) {
        Value::Array(entries) => entries,
        other => panic!("invocations: {other}"),
    }
}

/// Fires a schedule of the default group now, as EventBridge Scheduler
/// fires its run scheduled at `time` (ISO 8601); the harness's report of
/// the delivery.
pub fn fire_schedule(name: &str, time: &str) -> Value {
    harness("POST", &format!("schedules/fire?name={name}&time={time}"))
}

/// Polls `check` until it returns `Some`, at most `limit`.
pub async fn wait_for<T, F, Fut>(what: &str, limit: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + limit;
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(
            Instant::now() < deadline,
            "{what}: not within {} s",
            limit.as_secs()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The text of an object, or `None` while it does not exist.
pub async fn object_text(s3: &aws_sdk_s3::Client, bucket: &str, key: &str) -> Option<String> {
    let object = s3.get_object().bucket(bucket).key(key).send().await.ok()?;
    let bytes = object.body.collect().await.ok()?.into_bytes();
    Some(String::from_utf8(bytes.to_vec()).expect("UTF-8 object"))
}

/// Keys under `prefix` in a bucket.
pub async fn keys(s3: &aws_sdk_s3::Client, bucket: &str, prefix: &str) -> Vec<String> {
    s3.list_objects_v2()
        .bucket(bucket)
        .prefix(prefix)
        .send()
        .await
        .expect("list objects")
        .contents()
        .iter()
        .filter_map(|o| o.key().map(str::to_owned))
        .collect()
}

/// The URL of a queue by name.
pub async fn queue_url(sqs: &aws_sdk_sqs::Client, name: &str) -> String {
    sqs.get_queue_url()
        .queue_name(name)
        .send()
        .await
        .expect("queue url")
        .queue_url()
        .expect("url")
        .to_owned()
}

/// Receives (and deletes) the messages a queue holds now; their bodies.
pub async fn take_messages(sqs: &aws_sdk_sqs::Client, url: &str) -> Vec<String> {
    let mut bodies = Vec::new();
    loop {
        let got = sqs
            .receive_message()
            .queue_url(url)
            .max_number_of_messages(10)
            .send()
            .await
            .expect("receive");
        if got.messages().is_empty() {
            return bodies;
        }
        for m in got.messages() {
            bodies.push(m.body().unwrap_or_default().to_owned());
            sqs.delete_message()
                .queue_url(url)
                .receipt_handle(m.receipt_handle().expect("handle"))
                .send()
                .await
                .expect("delete");
        }
    }
}

/// Deletes every object of the pipeline's buckets, as a data team does
/// before deleting a pipeline whose buckets do not set `emptyOnDelete`
/// (the operator refuses to delete a bucket that holds data).
pub async fn empty_buckets(s3: &aws_sdk_s3::Client, dp: &Value) {
    for (_, bucket) in crate::ids(dp, "S3::Bucket") {
        for key in keys(s3, &bucket, "").await {
            s3.delete_object()
                .bucket(&bucket)
                .key(&key)
                .send()
                .await
                .expect("delete object");
        }
    }
}

/// The SDK configuration of an administrator of `account` (made once by
/// the harness), in us-east-1.
pub async fn account_admin(account: &str) -> aws_config::SdkConfig {
    let keys = harness("POST", &format!("iam/account?id={account}"));
    let field = |k: &str| keys[k].as_str().expect(k).to_owned();
    crate::sdk_as(
        &field("accessKeyId"),
        &field("secretAccessKey"),
        "us-east-1",
    )
    .await
}

/// The inline policy `sluice` the operator put on `role`, parsed.
pub async fn inline_policy(iam: &aws_sdk_iam::Client, role: &str) -> Value {
    let out = iam
        .get_role_policy()
        .role_name(role)
        .policy_name("sluice")
        .send()
        .await
        .expect("the role's policy");
    sluice_operator::iam::parse_policy(out.policy_document()).expect("a JSON policy")
}

/// A policy element that is one string or a list of them (`Action`,
/// `Resource`), as a list.
pub fn strings(v: &Value) -> Vec<String> {
    match v {
        Value::Array(a) => a
            .iter()
            .map(|x| x.as_str().expect("string").to_owned())
            .collect(),
        Value::String(s) => vec![s.clone()],
        other => panic!("not a string or a list of them: {other}"),
    }
}

/// The actions the emulator's IAM allowed so far to the principals
/// whose ARN contains `principal`.
pub fn allowed_to(principal: &str) -> Vec<String> {
    harness(
        "GET",
        &format!("iam/allowed?principal={}", url_encode(principal)),
    )
    .as_array()
    .map(|a| {
        a.iter()
            .filter_map(|x| x.as_str().map(str::to_owned))
            .collect()
    })
    .unwrap_or_default()
}
