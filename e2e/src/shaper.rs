//! An AWS quota shaper: an HTTP proxy in front of the emulator that meters
//! every call the way AWS meters its control planes — token buckets per
//! account (the signing key's, as the emulator decides it: a user's or an
//! assumed role's session), per service and, where AWS splits them, per
//! operation group — and answers a call over its bucket's quota the way
//! that service answers it: Lambda and Scheduler `429 TooManyRequestsException`
//! / `ThrottlingException`, S3 `503 SlowDown`, IAM and STS `400 Throttling`,
//! Kinesis `400 LimitExceededException`, the other JSON services `400
//! ThrottlingException`. The emulator itself throttles nothing, so without
//! this a client that ignores AWS's quotas looks fast here and fails there.
//!
//! It is the stand-in for AWS, so its table is written from AWS's
//! documentation on its own, not taken from the operator's
//! (`sluice_operator::aws::quota`): the benchmark and the fleet test then
//! show whether the operator's idea of the quotas matches AWS's.

use std::{
    collections::{BTreeMap, HashMap},
    convert::Infallible,
    net::SocketAddr,
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use http_body_util::{BodyExt, Full};
use hyper::{
    Request, Response, StatusCode,
    body::{Bytes, Incoming},
    server::conn::http1,
    service::service_fn,
};
use hyper_util::{
    client::legacy::{Client, connect::HttpConnector},
    rt::{TokioExecutor, TokioIo},
};

/// One bucket: `rate` tokens per second, holding at most `burst`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Bucket {
    /// Refill per second.
    pub rate: f64,
    /// Size.
    pub burst: f64,
}

const fn bucket(rate: f64, burst: f64) -> Bucket {
    Bucket { rate, burst }
}

/// AWS's published quota for a call, and the key of the bucket it is
/// charged to; `None` for calls AWS does not meter as control plane
/// (invocations, data plane).
///
/// - Lambda: `GetFunction` 100/s, `GetPolicy` 15/s, the rest of the
///   control plane 15/s in all (docs: Lambda quotas, "API requests").
/// - Step Functions: token buckets per API (docs: Step Functions service
///   quotas, "API action throttling"): Create/DeleteStateMachine 100
///   refilled at 1/s, UpdateStateMachine 200 at 1/s, DescribeStateMachine
///   200 at 20/s, tagging 100–200 at 1/s.
/// - Kinesis: per API (docs: Kinesis Data Streams quotas): CreateStream,
///   DeleteStream, tagging 5/s, DescribeStreamSummary 20/s,
///   DescribeStream 10/s, UpdateShardCount 2/s.
/// - CloudWatch Logs: per API (CreateLogGroup 5/s, DescribeLogGroups 10/s,
///   PutRetentionPolicy 5/s…).
/// - EventBridge: 50/s for the control plane. Scheduler: 1,000/s per API
///   (us-east-1). DynamoDB: 2,500/s control plane.
/// - S3: 3,500 writes / 5,500 reads per second (per prefix; one bucket here).
/// - IAM and SQS publish none: 20/s and 100/s stand in, as in the operator.
pub fn aws_quota(service: &str, operation: &str, read: bool) -> Option<(String, Bucket)> {
    let own = |q: Bucket| Some((format!("{service}:{operation}"), q));
    let shared = |key: &str, q: Bucket| Some((key.to_owned(), q));
    match service {
        "lambda" => match operation {
            "Invoke" => None,
            "GetFunction" => own(bucket(100.0, 100.0)),
            "GetPolicy" => own(bucket(15.0, 15.0)),
            _ => shared("lambda", bucket(15.0, 15.0)),
        },
        "states" => match operation {
            "CreateStateMachine" | "DeleteStateMachine" | "ListTagsForResource" => {
                own(bucket(1.0, 100.0))
            }
            "UpdateStateMachine" | "TagResource" | "UntagResource" => own(bucket(1.0, 200.0)),
            "DescribeStateMachine" => own(bucket(20.0, 200.0)),
            _ => None,
        },
        "kinesis" => match operation {
            "DescribeStreamSummary" => own(bucket(20.0, 20.0)),
            "DescribeStream" => own(bucket(10.0, 10.0)),
            "UpdateShardCount" => own(bucket(2.0, 2.0)),
            "CreateStream"
            | "DeleteStream"
            | "ListTagsForStream"
            | "AddTagsToStream"
            | "RemoveTagsFromStream" => own(bucket(5.0, 5.0)),
            "PutRecord" | "PutRecords" | "GetRecords" | "GetShardIterator" | "ListShards" => None,
            _ => shared("kinesis", bucket(5.0, 5.0)),
        },
        "logs" => match operation {
            "CreateLogGroup" | "PutRetentionPolicy" | "TagResource" | "UntagResource" => {
                own(bucket(5.0, 5.0))
            }
            "DeleteLogGroup" | "DescribeLogGroups" | "ListTagsForResource" => {
                own(bucket(10.0, 10.0))
            }
            _ => None,
        },
        "events" => match operation {
            "PutEvents" => None,
            _ => shared("events", bucket(50.0, 50.0)),
        },
        "scheduler" => own(bucket(1000.0, 1000.0)),
        "dynamodb" => match operation {
            "CreateTable" | "DeleteTable" | "UpdateTable" | "DescribeTable"
            | "DescribeTimeToLive" | "UpdateTimeToLive" | "ListTagsOfResource" | "TagResource"
            | "UntagResource" => shared("dynamodb", bucket(2500.0, 2500.0)),
            _ => None,
        },
        "s3" if read => shared("s3:read", bucket(5500.0, 5500.0)),
        "s3" => shared("s3:write", bucket(3500.0, 3500.0)),
        "iam" => shared("iam", bucket(20.0, 20.0)),
        "sqs" => match operation {
            "SendMessage"
            | "SendMessageBatch"
            | "ReceiveMessage"
            | "DeleteMessage"
            | "DeleteMessageBatch"
            | "ChangeMessageVisibility" => None,
            _ => shared("sqs", bucket(100.0, 100.0)),
        },
        "sts" => shared("sts", bucket(600.0, 600.0)),
        _ => None,
    }
}

/// A call as the shaper understood it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Call {
    /// Signing name of the service (`lambda`, `iam`, `s3`...).
    pub service: String,
    /// Operation, as well as it can be told from the request.
    pub operation: String,
    /// Whether it only reads.
    pub read: bool,
}

fn is_read_name(op: &str) -> bool {
    ["Get", "Head", "List", "Describe"]
        .iter()
        .any(|p| op.starts_with(p))
}

/// Names the call from the request: the service from the SigV4 credential
/// scope, the operation from `X-Amz-Target` (JSON protocols), `Action=`
/// (query protocols), or the method and path (REST: Lambda, S3, Scheduler).
pub fn classify(method: &str, path: &str, headers: &hyper::HeaderMap, body: &[u8]) -> Call {
    let service = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|a| a.split("Credential=").nth(1))
        .and_then(|c| c.split('/').nth(3))
        .unwrap_or("unknown")
        .to_owned();
    let (path, query) = path.split_once('?').unwrap_or((path, ""));
    let named = |operation: String| {
        let read = is_read_name(&operation);
        (operation, read)
    };
    let (operation, read) =
        if let Some(target) = headers.get("x-amz-target").and_then(|v| v.to_str().ok()) {
            named(target.rsplit('.').next().unwrap_or(target).to_owned())
        } else if let Some(action) = std::str::from_utf8(body)
            .ok()
            .filter(|_| {
                headers
                    .get("content-type")
                    .and_then(|v| v.to_str().ok())
                    .is_some_and(|c| c.starts_with("application/x-www-form-urlencoded"))
            })
            .and_then(|b| b.split('&').find_map(|kv| kv.strip_prefix("Action=")))
        {
            named(action.to_owned())
        } else {
            let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
            match service.as_str() {
                "lambda" => named(lambda_operation(method, &segments)),
                "scheduler" => named(
                    match (method, segments.first().copied()) {
                        ("GET", Some("schedules")) if segments.len() > 1 => "GetSchedule",
                        ("GET", _) => "List",
                        ("POST", Some("schedules")) => "CreateSchedule",
                        ("PUT", Some("schedules")) => "UpdateSchedule",
                        ("DELETE", Some("schedules")) => "DeleteSchedule",
                        ("POST", Some("tags")) => "TagResource",
                        ("DELETE", Some("tags")) => "UntagResource",
                        _ => "Other",
                    }
                    .to_owned(),
                ),
                _ => {
                    // S3 and anything else: the method and the subresource.
                    let sub = query.split('&').next().unwrap_or("");
                    let sub = sub.split('=').next().unwrap_or("");
                    let op = format!("{method} {}", if sub.is_empty() { "-" } else { sub });
                    let read = matches!(method, "GET" | "HEAD");
                    (op, read)
                }
            }
        };
    Call {
        service,
        operation,
        read,
    }
}

fn lambda_operation(method: &str, s: &[&str]) -> String {
    let op = match (method, s) {
        ("GET", [_, "functions", _]) => "GetFunction",
        ("GET", [_, "functions", _, "policy"]) => "GetPolicy",
        ("POST", [_, "functions", _, "invocations"]) => "Invoke",
        ("POST", [_, "functions"]) => "CreateFunction",
        ("DELETE", [_, "functions", _]) => "DeleteFunction",
        ("PUT", [_, "functions", _, "configuration"]) => "UpdateFunctionConfiguration",
        ("GET", [_, "functions", _, "configuration"]) => "GetFunctionConfiguration",
        ("PUT", [_, "functions", _, "code"]) => "UpdateFunctionCode",
        ("POST", [_, "functions", _, "policy"]) => "AddPermission",
        ("DELETE", [_, "functions", _, "policy", _]) => "RemovePermission",
        ("GET", [_, "functions", _, "event-invoke-config"]) => "GetFunctionEventInvokeConfig",
        ("PUT", [_, "functions", _, "event-invoke-config"]) => "PutFunctionEventInvokeConfig",
        ("DELETE", [_, "functions", _, "event-invoke-config"]) => "DeleteFunctionEventInvokeConfig",
        ("PUT", [_, "functions", _, "concurrency"]) => "PutFunctionConcurrency",
        ("DELETE", [_, "functions", _, "concurrency"]) => "DeleteFunctionConcurrency",
        ("GET", [_, "event-source-mappings"]) => "ListEventSourceMappings",
        ("POST", [_, "event-source-mappings"]) => "CreateEventSourceMapping",
        ("GET", [_, "event-source-mappings", _]) => "GetEventSourceMapping",
        ("PUT", [_, "event-source-mappings", _]) => "UpdateEventSourceMapping",
        ("DELETE", [_, "event-source-mappings", _]) => "DeleteEventSourceMapping",
        ("GET", [_, "tags", ..]) => "ListTags",
        ("POST", [_, "tags", ..]) => "TagResource",
        ("DELETE", [_, "tags", ..]) => "UntagResource",
        _ => return format!("{method} {}", s.get(1).copied().unwrap_or("-")),
    };
    op.to_owned()
}

/// The answer AWS gives a call over its quota.
fn throttled(call: &Call) -> Response<Full<Bytes>> {
    let (status, content_type, code, body) = match call.service.as_str() {
        "lambda" => (
            StatusCode::TOO_MANY_REQUESTS,
            "application/json",
            "TooManyRequestsException",
            r#"{"Type":"User","message":"Rate exceeded","Reason":"CallerRateLimitExceeded"}"#
                .to_owned(),
        ),
        "scheduler" => (
            StatusCode::TOO_MANY_REQUESTS,
            "application/json",
            "ThrottlingException",
            r#"{"Message":"Rate exceeded"}"#.to_owned(),
        ),
        "s3" => (
            StatusCode::SERVICE_UNAVAILABLE,
            "application/xml",
            "SlowDown",
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Error><Code>SlowDown</Code>\
             <Message>Please reduce your request rate.</Message><RequestId>shaper</RequestId></Error>"
                .to_owned(),
        ),
        "iam" | "sts" => (
            StatusCode::BAD_REQUEST,
            "text/xml",
            "Throttling",
            "<ErrorResponse><Error><Type>Sender</Type><Code>Throttling</Code>\
             <Message>Rate exceeded</Message></Error><RequestId>shaper</RequestId></ErrorResponse>"
                .to_owned(),
        ),
        service => {
            let code = match service {
                "kinesis" => "LimitExceededException",
                "sqs" => "RequestThrottled",
                _ => "ThrottlingException",
            };
            (
                StatusCode::BAD_REQUEST,
                "application/x-amz-json-1.1",
                code,
                format!(r#"{{"__type":"{code}","message":"Rate exceeded"}}"#),
            )
        }
    };
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    for (name, value) in [
        ("content-type", content_type),
        ("x-amzn-errortype", code),
        ("x-amzn-requestid", "shaper"),
    ] {
        if let Ok(value) = value.parse() {
            headers.insert(name, value);
        }
    }
    response
}

#[derive(Debug)]
struct TokenBucket {
    quota: Bucket,
    tokens: f64,
    at: Instant,
}

impl TokenBucket {
    fn take(&mut self, now: Instant, scale: f64) -> bool {
        let rate = self.quota.rate * scale;
        let burst = (self.quota.burst * scale).max(1.0);
        self.tokens = (self.tokens + now.duration_since(self.at).as_secs_f64() * rate).min(burst);
        self.at = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

/// What went through one bucket.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct BucketFigures {
    /// AWS's quota for the bucket (unscaled).
    pub quota: Option<Bucket>,
    /// Calls let through.
    pub passed: u64,
    /// Calls answered with a throttling error.
    pub throttled: u64,
}

/// Everything the shaper counted.
#[derive(Clone, Debug, Default)]
pub struct Figures {
    /// By bucket key.
    pub buckets: BTreeMap<String, BucketFigures>,
    /// Calls let through by `service:operation`.
    pub operations: BTreeMap<String, u64>,
    /// Throttled calls by `service:operation`.
    pub throttled_operations: BTreeMap<String, u64>,
    /// Every call, passed or not.
    pub requests: u64,
    /// Calls let through that read.
    pub reads: u64,
    /// Calls let through that write.
    pub writes: u64,
    /// The busiest second's calls.
    pub peak_per_second: u64,
    /// Time the emulator spent answering the calls let through, summed.
    pub upstream_seconds: f64,
    /// Calls let through by account: (reads, writes).
    pub accounts: BTreeMap<String, (u64, u64)>,
}

impl Figures {
    /// Calls throttled in all.
    pub fn throttled(&self) -> u64 {
        self.buckets.values().map(|b| b.throttled).sum()
    }

    /// The least time AWS's quotas allow for the calls let through: for
    /// each bucket, the calls beyond its burst at its rate; the slowest
    /// bucket bounds the whole. Returns `(seconds, bucket)`.
    pub fn lower_bound(&self, scale: f64) -> (f64, String) {
        self.buckets
            .iter()
            .filter_map(|(key, b)| {
                let q = b.quota?;
                let beyond = (b.passed as f64 - q.burst * scale).max(0.0);
                Some((beyond / (q.rate * scale), key.clone()))
            })
            .fold((0.0, String::from("-")), |best, x| {
                if x.0 > best.0 { x } else { best }
            })
    }

    /// The difference `self - earlier`, counter by counter.
    pub fn since(&self, earlier: &Figures) -> Figures {
        let sub = |a: &BTreeMap<String, u64>, b: &BTreeMap<String, u64>| {
            a.iter()
                .filter_map(|(k, v)| {
                    let d = v - b.get(k).copied().unwrap_or(0);
                    (d > 0).then(|| (k.clone(), d))
                })
                .collect()
        };
        Figures {
            buckets: self
                .buckets
                .iter()
                .map(|(k, b)| {
                    let e = earlier.buckets.get(k).cloned().unwrap_or_default();
                    (
                        k.clone(),
                        BucketFigures {
                            quota: b.quota,
                            passed: b.passed - e.passed,
                            throttled: b.throttled - e.throttled,
                        },
                    )
                })
                .collect(),
            operations: sub(&self.operations, &earlier.operations),
            throttled_operations: sub(&self.throttled_operations, &earlier.throttled_operations),
            requests: self.requests - earlier.requests,
            reads: self.reads - earlier.reads,
            writes: self.writes - earlier.writes,
            peak_per_second: self.peak_per_second,
            upstream_seconds: self.upstream_seconds - earlier.upstream_seconds,
            accounts: self
                .accounts
                .iter()
                .map(|(k, (r, w))| {
                    let (er, ew) = earlier.accounts.get(k).copied().unwrap_or_default();
                    (k.clone(), (r - er, w - ew))
                })
                .collect(),
        }
    }
}

#[derive(Debug)]
struct State {
    upstream: String,
    /// Quotas are multiplied by this (an `f64`'s bits): 1 is AWS; a test
    /// may make AWS stingier to see throttling handled.
    scale: AtomicU64,
    buckets: Mutex<HashMap<String, TokenBucket>>,
    /// The account of each access key seen, as the emulator decides it.
    accounts: Mutex<HashMap<String, String>>,
    figures: Mutex<Figures>,
    second: Mutex<(u64, u64)>,
    started: Instant,
    client: Client<HttpConnector, Full<Bytes>>,
}

/// A running shaper. Stops when dropped.
#[derive(Debug)]
pub struct Shaper {
    /// Its endpoint: point `AWS_ENDPOINT_URL` here.
    pub url: String,
    state: Arc<State>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Shaper {
    /// Starts a shaper in front of `upstream` (the emulator's URL) on a free
    /// port of 127.0.0.1, with AWS's quotas times `scale`, on a thread of
    /// its own (so synchronous tests can use it too).
    pub fn start(upstream: &str, scale: f64) -> Shaper {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        listener.set_nonblocking(true).expect("nonblocking");
        let addr: SocketAddr = listener.local_addr().expect("address");
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        let state = Arc::new(State {
            upstream: upstream.trim_end_matches('/').to_owned(),
            scale: AtomicU64::new(scale.to_bits()),
            buckets: Mutex::new(HashMap::new()),
            accounts: Mutex::new(HashMap::new()),
            figures: Mutex::new(Figures::default()),
            second: Mutex::new((0, 0)),
            started: Instant::now(),
            client: Client::builder(TokioExecutor::new())
                .pool_idle_timeout(Duration::from_secs(30))
                .build(connector),
        });
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let serving = state.clone();
        let thread = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .expect("runtime");
            runtime.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(listener).expect("listener");
                let accept = async {
                    loop {
                        let Ok((stream, _)) = listener.accept().await else {
                            continue;
                        };
                        let _ = stream.set_nodelay(true);
                        let state = serving.clone();
                        tokio::spawn(async move {
                            let service = service_fn(move |req| serve(state.clone(), req));
                            let _ = http1::Builder::new()
                                .serve_connection(TokioIo::new(stream), service)
                                .await;
                        });
                    }
                };
                tokio::select! {
                    _ = accept => {}
                    _ = stopped => {}
                }
            });
        });
        Shaper {
            url: format!("http://{addr}"),
            state,
            stop: Some(stop),
            thread: Some(thread),
        }
    }

    /// What it counted so far.
    pub fn figures(&self) -> Figures {
        self.state
            .figures
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// The factor applied to AWS's quotas.
    pub fn scale(&self) -> f64 {
        f64::from_bits(self.state.scale.load(Ordering::Relaxed))
    }

    /// Changes the factor applied to AWS's quotas from now on.
    pub fn set_scale(&self, scale: f64) {
        self.state.scale.store(scale.to_bits(), Ordering::Relaxed);
    }
}

impl Drop for Shaper {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

async fn serve(
    state: Arc<State>,
    req: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let (parts, body) = req.into_parts();
    let body = body
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    let path = parts
        .uri
        .path_and_query()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_else(|| "/".into());
    let call = classify(parts.method.as_str(), &path, &parts.headers, &body);
    let name = format!("{}:{}", call.service, call.operation);
    let account = account_of(&state, &parts.headers).await;
    // Each account has its own buckets, as on AWS.
    let quota = aws_quota(&call.service, &call.operation, call.read)
        .map(|(key, q)| (format!("{account}/{key}"), q));
    let now = Instant::now();
    let scale = f64::from_bits(state.scale.load(Ordering::Relaxed));
    let allowed = match &quota {
        None => true,
        Some((key, q)) => {
            let mut buckets = state
                .buckets
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            let bucket = buckets.entry(key.clone()).or_insert(TokenBucket {
                quota: *q,
                tokens: (q.burst * scale).max(1.0),
                at: now,
            });
            bucket.take(now, scale)
        }
    };
    {
        let mut second = state
            .second
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let this = now.duration_since(state.started).as_secs();
        if second.0 != this {
            *second = (this, 0);
        }
        second.1 += 1;
        let mut f = state
            .figures
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        f.requests += 1;
        f.peak_per_second = f.peak_per_second.max(second.1);
        if let Some((key, q)) = &quota {
            let b = f.buckets.entry(key.clone()).or_default();
            b.quota = Some(*q);
            if allowed {
                b.passed += 1;
            } else {
                b.throttled += 1;
            }
        }
        if allowed {
            if call.read {
                f.reads += 1;
                f.accounts.entry(account.clone()).or_default().0 += 1;
            } else {
                f.writes += 1;
                f.accounts.entry(account.clone()).or_default().1 += 1;
            }
            *f.operations.entry(name.clone()).or_default() += 1;
        } else {
            *f.throttled_operations.entry(name).or_default() += 1;
        }
    }
    if !allowed {
        return Ok(throttled(&call));
    }
    let started = Instant::now();
    let mut upstream = Request::builder()
        .method(parts.method)
        .uri(format!("{}{}", state.upstream, path));
    for (name, value) in &parts.headers {
        upstream = upstream.header(name, value);
    }
    let response = match upstream.body(Full::new(body)) {
        Ok(request) => state.client.request(request).await,
        Err(e) => return Ok(bad_gateway(&e.to_string())),
    };
    let response = match response {
        Ok(r) => r,
        Err(e) => return Ok(bad_gateway(&e.to_string())),
    };
    let (parts, body) = response.into_parts();
    let body = body
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    state
        .figures
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .upstream_seconds += started.elapsed().as_secs_f64();
    Ok(Response::from_parts(parts, Full::new(body)))
}

/// The access key id of a request signed in its `Authorization` header
/// (`AWS4-HMAC-SHA256 Credential=AKID/date/region/service/aws4_request, …`).
pub fn access_key(headers: &hyper::HeaderMap) -> Option<String> {
    let auth = headers.get("authorization")?.to_str().ok()?;
    let credential = auth.split("Credential=").nth(1)?;
    Some(credential.split('/').next()?.to_owned())
}

/// The account a request acts in: its access key's, asked of the
/// emulator's harness once per key (`GET /_sluice/iam/key-account`); `-`
/// when unsigned or unknown.
async fn account_of(state: &State, headers: &hyper::HeaderMap) -> String {
    let Some(key) = access_key(headers) else {
        return "-".into();
    };
    if let Some(account) = state
        .accounts
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .get(&key)
    {
        return account.clone();
    }
    let url = format!("{}/_sluice/iam/key-account?id={key}", state.upstream);
    let asked = async {
        let request = Request::get(url).body(Full::new(Bytes::new())).ok()?;
        let response = state.client.request(request).await.ok()?;
        let body = response.into_body().collect().await.ok()?.to_bytes();
        let v: serde_json::Value = serde_json::from_slice(&body).ok()?;
        v["account"].as_str().map(str::to_owned)
    };
    let account = asked.await.unwrap_or_else(|| "-".into());
    state
        .accounts
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .insert(key, account.clone());
    account
}

fn bad_gateway(why: &str) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(why.to_owned())));
    *response.status_mut() = StatusCode::BAD_GATEWAY;
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> hyper::HeaderMap {
        let mut h = hyper::HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, v.parse().expect("header"));
        }
        h
    }

    const LAMBDA: &str = "AWS4-HMAC-SHA256 Credential=AKID/20260101/us-east-1/lambda/aws4_request, SignedHeaders=host, Signature=x";

    #[test]
    fn lambda_calls_fall_into_aws_three_buckets() {
        let h = headers(&[("authorization", LAMBDA)]);
        let get = classify("GET", "/2015-03-31/functions/f", &h, b"");
        assert_eq!(get.operation, "GetFunction");
        assert_eq!(
            aws_quota("lambda", "GetFunction", true).expect("q").0,
            "lambda:GetFunction"
        );
        let policy = classify("GET", "/2015-03-31/functions/f/policy", &h, b"");
        assert_eq!(
            aws_quota("lambda", &policy.operation, true).expect("q").0,
            "lambda:GetPolicy"
        );
        let create = classify("POST", "/2015-03-31/functions", &h, b"{}");
        assert_eq!(create.operation, "CreateFunction");
        assert_eq!(
            aws_quota("lambda", &create.operation, false).expect("q").0,
            "lambda"
        );
        let invoke = classify("POST", "/2015-03-31/functions/f/invocations", &h, b"{}");
        assert!(aws_quota("lambda", &invoke.operation, false).is_none());
    }

    #[test]
    fn query_and_json_protocols_name_their_operation() {
        let iam = headers(&[
            (
                "authorization",
                "AWS4-HMAC-SHA256 Credential=AKID/20260101/us-east-1/iam/aws4_request",
            ),
            (
                "content-type",
                "application/x-www-form-urlencoded; charset=utf-8",
            ),
        ]);
        let call = classify("POST", "/", &iam, b"Action=CreateRole&Version=2010-05-08");
        assert_eq!(
            (call.service.as_str(), call.operation.as_str()),
            ("iam", "CreateRole")
        );
        let sqs = headers(&[
            (
                "authorization",
                "AWS4-HMAC-SHA256 Credential=AKID/20260101/us-east-1/sqs/aws4_request",
            ),
            ("x-amz-target", "AmazonSQS.GetQueueAttributes"),
        ]);
        let call = classify("POST", "/", &sqs, b"{}");
        assert_eq!(call.operation, "GetQueueAttributes");
        assert!(call.read);
    }

    #[test]
    fn over_quota_answers_are_aws_own() {
        let call = |service: &str| Call {
            service: service.into(),
            operation: "X".into(),
            read: false,
        };
        assert_eq!(throttled(&call("lambda")).status(), 429);
        assert_eq!(throttled(&call("s3")).status(), 503);
        assert_eq!(throttled(&call("iam")).status(), 400);
        assert_eq!(
            throttled(&call("kinesis")).headers()["x-amzn-errortype"],
            "LimitExceededException"
        );
    }

    #[test]
    fn the_signing_key_names_the_account_to_meter() {
        let h = headers(&[(
            "authorization",
            "AWS4-HMAC-SHA256 Credential=ASIAEXAMPLE123/20261207/us-east-1/iam/aws4_request, \
             SignedHeaders=host;x-amz-date, Signature=abc",
        )]);
        assert_eq!(access_key(&h).as_deref(), Some("ASIAEXAMPLE123"));
        assert_eq!(access_key(&headers(&[])), None);
    }

    #[test]
    fn the_lower_bound_is_the_slowest_bucket_beyond_its_burst() {
        let mut f = Figures::default();
        f.buckets.insert(
            "lambda".into(),
            BucketFigures {
                quota: Some(bucket(15.0, 15.0)),
                passed: 315,
                throttled: 0,
            },
        );
        f.buckets.insert(
            "lambda:GetFunction".into(),
            BucketFigures {
                quota: Some(bucket(100.0, 100.0)),
                passed: 1100,
                throttled: 0,
            },
        );
        let (seconds, key) = f.lower_bound(1.0);
        assert_eq!(key, "lambda");
        assert!((seconds - 20.0).abs() < 1e-9, "{seconds}");
    }
}
