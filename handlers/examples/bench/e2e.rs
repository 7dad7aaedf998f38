//! End to end: the Rust executable and the Python baseline, each a process
//! polling cargo-lambda's Runtime API emulator, invoked on the same events,
//! reaching moto through the latency proxy. Per scenario and
//! implementation: the median duration of its warm invocations (the invoke
//! round trip through the emulator, so a slight overestimate for both),
//! Lambda's billed duration (whole milliseconds, rounded up), the process's
//! peak RSS, the smallest memory setting that holds it (128 MB at least)
//! and what 1,000 such invocations cost in GB-seconds.

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, KeySchemaElement, KeyType, ScalarAttributeType,
};
use aws_sdk_lambda::primitives::Blob;
use aws_sdk_s3::primitives::ByteStream;
use futures::StreamExt as _;
use serde_json::Value;

use crate::emulator::{self, Emulator};
use crate::proxy::LatencyProxy;
use crate::{Error, data};

/// What `make bench` passes in.
#[derive(Debug)]
pub struct Tools {
    pub cargo_lambda: PathBuf,
    pub bootstrap: PathBuf,
    /// The Python that runs the project's moto launcher
    /// (`e2e/moto/launcher.py`, moto with the harness's patches).
    pub moto_python: PathBuf,
    pub python: PathBuf,
    pub round_trip: Duration,
}

/// Objects of the batch job's measured day.
const BATCH_OBJECTS: u64 = 5_000;
/// Measured invocations of the Python baseline on the 5,000-object day (it
/// takes minutes).
const PYTHON_BATCH_RUNS: usize = 1;

/// moto on a free local port; killed on drop.
#[derive(Debug)]
struct Moto {
    addr: SocketAddr,
    child: Child,
}

impl Moto {
    /// The emulator every other test and the demo use: moto through the
    /// project's launcher, IAM not enforced (the benchmark measures the
    /// handlers, not the policy evaluator), schedules not fired.
    fn start(python: &Path) -> Result<Self, Error> {
        let port = TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        let launcher = Path::new(&crate::manifest_dir()).join("../e2e/moto/launcher.py");
        let state = std::env::temp_dir().join(format!("sluice-bench-moto-{port}"));
        let child = Command::new(python)
            .arg(&launcher)
            .args(["--no-clock", "-H", "127.0.0.1", "-p", &port.to_string()])
            .env("SLUICE_HARNESS_DIR", &state)
            .env("SLUICE_HARNESS_IAM", "off")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("starting {}: {e}", launcher.display()))?;
        let mut moto = Self {
            addr: SocketAddr::from(([127, 0, 0, 1], port)),
            child,
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        while TcpStream::connect(moto.addr).is_err() {
            if let Ok(Some(status)) = moto.child.try_wait() {
                return Err(format!("moto exited before listening: {status}").into());
            }
            if Instant::now() > deadline {
                return Err("moto did not listen within 60 s".into());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(moto)
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Kills the child on drop.
#[derive(Debug)]
struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Which implementation a process runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Implementation {
    Rust,
    Python,
}

/// How one implementation runs a scenario.
struct Side {
    /// `_HANDLER`: the Rust handler's name, or the Python `module.function`.
    handler: &'static str,
    env: Vec<(String, String)>,
    /// Whether a response means the work was done.
    check: fn(&Value) -> bool,
    /// Measured events (the warm-up is extra).
    runs: usize,
}

struct Scenario {
    name: &'static str,
    description: String,
    warmup: Vec<u8>,
    events: Vec<Vec<u8>>,
    rust: Side,
    python: Side,
    floor: Floor,
}

/// The AWS calls the Rust handler cannot avoid, made by the benchmark itself
/// through the proxy with nothing else to do: how fast the scenario could
/// possibly be against this emulator at this round trip.
enum Floor {
    /// The batch's items written with BatchWriteItem, 25 per call, calls
    /// concurrent.
    Kinesis,
    /// GetObject of the input, then PutObject of as many bytes.
    Transform { key: String },
    /// Every page of the listing, a GetObject per object (concurrently, as
    /// many at a time as the handler), one PutObject.
    Aggregate { concurrency: usize },
}

/// What one implementation measured on one scenario.
#[derive(Debug)]
struct Figures {
    median_ms: f64,
    runs: usize,
    peak_kib: u64,
}

impl Figures {
    fn billed_ms(&self) -> u64 {
        self.median_ms.ceil().max(1.0) as u64
    }

    /// The smallest Lambda memory setting (MB) that holds the peak.
    fn memory_mb(&self) -> u64 {
        self.peak_kib.div_ceil(1024).max(128)
    }

    fn gb_seconds_per_1000(&self) -> f64 {
        self.memory_mb() as f64 / 1024.0 * self.billed_ms() as f64 / 1000.0 * 1000.0
    }
}

fn vars(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

fn python_ok(response: &Value) -> bool {
    response["statusCode"] == 200
}

fn rust_stream_ok(response: &Value) -> bool {
    response["batchItemFailures"]
        .as_array()
        .is_some_and(Vec::is_empty)
}

fn rust_transform_ok(response: &Value) -> bool {
    response["processed"].as_array().map(Vec::len) == Some(1)
}

fn rust_batch_ok(response: &Value) -> bool {
    response["objects_processed"] == BATCH_OBJECTS
}

/// Brings everything up, fills moto, runs every scenario and prints the table.
pub fn run(tools: &Tools) -> Result<(), Error> {
    let moto = Moto::start(&tools.moto_python)?;
    let proxy = LatencyProxy::start(moto.addr, tools.round_trip)?;
    let emulator = Emulator::start(&tools.cargo_lambda, Stdio::null(), Stdio::null())?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let sdk = runtime.block_on(
        aws_config::defaults(aws_config::BehaviorVersion::latest())
            .http_client(sluice_handlers::kit::http::LambdaHttpClient::default())
            .endpoint_url(format!("http://{}", moto.addr))
            .region(aws_config::Region::new("us-east-1"))
            .credentials_provider(aws_sdk_s3::config::Credentials::new(
                "testing", "testing", None, None, "bench",
            ))
            .load(),
    );
    let setup_start = Instant::now();
    let scenarios = runtime.block_on(setup(&sdk))?;
    let lambda = emulator.client(&sdk);

    println!(
        "end to end: moto behind a {} ms round trip per call, both implementations under \
         cargo-lambda's emulator (moto filled in {:.0} s)",
        tools.round_trip.as_millis(),
        setup_start.elapsed().as_secs_f64()
    );
    println!(
        "{:<16} {:<8} {:>5} {:>12} {:>10} {:>9} {:>10} {:>12}  input",
        "scenario",
        "impl",
        "runs",
        "duration ms",
        "billed ms",
        "peak MiB",
        "memory MB",
        "GB-s per 1k"
    );
    let chosen = std::env::var("SLUICE_BENCH_SCENARIOS").unwrap_or_default();
    for scenario in scenarios
        .iter()
        .filter(|s| chosen.is_empty() || chosen.split(',').any(|c| c.trim() == s.name))
    {
        let mut figures = Vec::new();
        for implementation in [Implementation::Rust, Implementation::Python] {
            let measured = runtime.block_on(measure(
                tools,
                &emulator,
                &lambda,
                &proxy,
                scenario,
                implementation,
            ))?;
            println!(
                "{:<16} {:<8} {:>5} {:>12.1} {:>10} {:>9.1} {:>10} {:>12.4}  {}",
                scenario.name,
                match implementation {
                    Implementation::Rust => "rust",
                    Implementation::Python => "python",
                },
                measured.runs,
                measured.median_ms,
                measured.billed_ms(),
                measured.peak_kib as f64 / 1024.0,
                measured.memory_mb(),
                measured.gb_seconds_per_1000(),
                scenario.description,
            );
            figures.push(measured);
        }
        let floor = runtime.block_on(floor(&sdk, &proxy, scenario))?;
        println!(
            "{:<16} {:<8} {:>5} {:>12.1} {:>10}",
            scenario.name,
            "floor",
            scenario.events.len(),
            floor,
            floor.ceil() as u64,
        );
        if let [rust, python] = figures.as_slice() {
            let times = |python: f64, rust: f64| format!("1/{:.1}", python / rust.max(1e-9));
            println!(
                "{:<16} {:<8} {:>5} {:>12} {:>10} {:>9} {:>10} {:>12}",
                "",
                "rust÷py",
                "",
                times(python.median_ms, rust.median_ms),
                times(python.billed_ms() as f64, rust.billed_ms() as f64),
                times(python.peak_kib as f64, rust.peak_kib as f64),
                times(python.memory_mb() as f64, rust.memory_mb() as f64),
                times(python.gb_seconds_per_1000(), rust.gb_seconds_per_1000()),
            );
        }
    }
    println!(
        "(duration: median invoke round trip of the warm invocations; billed: Lambda's whole \
         milliseconds; memory: the smallest setting holding the peak, at least 128 MB; GB-s: \
         memory × billed duration × 1,000 invocations; floor: the AWS calls the Rust handler \
         makes, made through the proxy by a client doing nothing else)"
    );
    drop(moto);
    Ok(())
}

/// Runs one implementation's process on a scenario: a warm-up invocation,
/// then the measured ones.
async fn measure(
    tools: &Tools,
    emulator: &Emulator,
    lambda: &aws_sdk_lambda::Client,
    proxy: &LatencyProxy,
    scenario: &Scenario,
    implementation: Implementation,
) -> Result<Figures, Error> {
    let side = match implementation {
        Implementation::Rust => &scenario.rust,
        Implementation::Python => &scenario.python,
    };
    let mut command = match implementation {
        Implementation::Rust => {
            emulator.handler_command(&tools.bootstrap, side.handler, &proxy.url())
        }
        Implementation::Python => {
            let mut command = emulator.handler_command(&tools.python, side.handler, &proxy.url());
            command
                .arg(crate::python_dir().join("runtime.py"))
                .env("AWS_DEFAULT_REGION", "us-east-1")
                .env("AWS_CONFIG_FILE", crate::python_dir().join("aws-config"))
                .env("PYTHONDONTWRITEBYTECODE", "1");
            command
        }
    };
    // SLUICE_BENCH_LOGS=DIR keeps each process's output there.
    let log = |stream: &str| -> Result<Stdio, Error> {
        Ok(match std::env::var_os("SLUICE_BENCH_LOGS") {
            Some(dir) => std::fs::File::create(
                Path::new(&dir).join(format!("{}-{implementation:?}.{stream}", scenario.name)),
            )?
            .into(),
            None => Stdio::null(),
        })
    };
    let process = Killed(
        command
            .envs(side.env.iter().map(|(k, v)| (k, v)))
            .env("RUST_LOG", "info")
            .stdout(log("out")?)
            .stderr(log("err")?)
            .spawn()?,
    );
    let pid = process.0.id();
    let invoke = |payload: &[u8], checked: bool| {
        let request = lambda
            .invoke()
            .function_name(emulator::FUNCTION)
            .payload(Blob::new(payload));
        async move {
            let start = Instant::now();
            let output = request.send().await.map_err(|e| {
                format!(
                    "invoking {}: {}",
                    scenario.name,
                    aws_sdk_lambda::error::DisplayErrorContext(e)
                )
            })?;
            let elapsed = start.elapsed();
            let body: Value = output
                .payload()
                .map(|p| serde_json::from_slice(p.as_ref()))
                .transpose()?
                .unwrap_or(Value::Null);
            if output.function_error().is_some() || (checked && !(side.check)(&body)) {
                return Err::<_, Error>(
                    format!("{} ({implementation:?}) failed: {body}", scenario.name).into(),
                );
            }
            Ok(elapsed)
        }
    };
    invoke(&scenario.warmup, false).await?;
    let mut durations = Vec::new();
    for event in scenario.events.iter().take(side.runs) {
        durations.push(invoke(event, true).await?.as_secs_f64() * 1000.0);
    }
    let peak_kib = peak_kib(pid);
    drop(process);
    Ok(Figures {
        median_ms: crate::median(durations.clone()),
        runs: durations.len(),
        peak_kib,
    })
}

/// Median milliseconds of the scenario's floor (see [`Floor`]).
async fn floor(
    moto: &aws_config::SdkConfig,
    proxy: &LatencyProxy,
    scenario: &Scenario,
) -> Result<f64, Error> {
    let sdk = moto.to_builder().endpoint_url(proxy.url()).build();
    let s3 = aws_sdk_s3::Client::from_conf(
        aws_sdk_s3::config::Builder::from(&sdk)
            .force_path_style(true)
            .build(),
    );
    let dynamo = aws_sdk_dynamodb::Client::new(&sdk);
    let mut durations = Vec::new();
    for event in &scenario.events {
        let start = Instant::now();
        match &scenario.floor {
            Floor::Kinesis => {
                let items = data::kinesis_items(event)?;
                let calls = items.chunks(25).map(|chunk| {
                    dynamo
                        .batch_write_item()
                        .request_items("floor", chunk.to_vec())
                        .send()
                });
                for result in futures::future::join_all(calls).await {
                    result?;
                }
            }
            Floor::Transform { key } => {
                let body = s3
                    .get_object()
                    .bucket("orders")
                    .key(key)
                    .send()
                    .await?
                    .body
                    .collect()
                    .await?
                    .into_bytes();
                s3.put_object()
                    .bucket("floor")
                    .key(key)
                    .body(ByteStream::from(body))
                    .customize()
                    .disable_payload_signing()
                    .send()
                    .await?;
            }
            Floor::Aggregate { concurrency } => {
                let mut keys = Vec::new();
                let mut pages = s3
                    .list_objects_v2()
                    .bucket("raw")
                    .prefix("2024/06/04/")
                    .into_paginator()
                    .send();
                while let Some(page) = pages.next().await {
                    keys.extend(
                        page?
                            .contents()
                            .iter()
                            .filter_map(|o| o.key().map(str::to_owned)),
                    );
                }
                let s3 = &s3;
                let reads: Vec<Result<(), Error>> = futures::stream::iter(keys)
                    .map(|key| async move {
                        s3.get_object()
                            .bucket("raw")
                            .key(key)
                            .send()
                            .await?
                            .body
                            .collect()
                            .await?;
                        Ok(())
                    })
                    .buffer_unordered(*concurrency)
                    .collect()
                    .await;
                for read in reads {
                    read?;
                }
                s3.put_object()
                    .bucket("floor")
                    .key("summary.json")
                    .body(ByteStream::from_static(b"{}"))
                    .send()
                    .await?;
            }
        }
        durations.push(start.elapsed().as_secs_f64() * 1000.0);
    }
    Ok(crate::median(durations))
}

/// VmHWM of a running process.
fn peak_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|status| {
            status.lines().find_map(|line| {
                line.strip_prefix("VmHWM:")
                    .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
            })
        })
        .unwrap_or(0)
}

/// Creates the tables and buckets and uploads the objects (directly to moto,
/// without the proxy); returns the scenarios.
async fn setup(sdk: &aws_config::SdkConfig) -> Result<Vec<Scenario>, Error> {
    let s3 = aws_sdk_s3::Client::from_conf(
        aws_sdk_s3::config::Builder::from(sdk)
            .force_path_style(true)
            .build(),
    );
    let dynamo = aws_sdk_dynamodb::Client::new(sdk);
    for table in ["results-rust", "results-python", "floor"] {
        dynamo
            .create_table()
            .table_name(table)
            .attribute_definitions(
                AttributeDefinition::builder()
                    .attribute_name("id")
                    .attribute_type(ScalarAttributeType::S)
                    .build()?,
            )
            .key_schema(
                KeySchemaElement::builder()
                    .attribute_name("id")
                    .key_type(KeyType::Hash)
                    .build()?,
            )
            .billing_mode(BillingMode::PayPerRequest)
            .send()
            .await?;
    }
    for bucket in [
        "orders",
        "out-rust",
        "out-python",
        "raw",
        "sum-rust",
        "sum-python",
        "floor",
    ] {
        s3.create_bucket().bucket(bucket).send().await?;
    }

    let mut scenarios = Vec::new();
    const KINESIS_RUNS: usize = 10;
    scenarios.push(Scenario {
        name: "kinesis-100",
        description: "Kinesis batches of 100 records into DynamoDB".into(),
        warmup: data::kinesis_event(0),
        events: (1..=KINESIS_RUNS as u64).map(data::kinesis_event).collect(),
        rust: Side {
            handler: "stream-anomaly",
            env: vars(&[("RESULTS_TABLE", "results-rust")]),
            check: rust_stream_ok,
            runs: KINESIS_RUNS,
        },
        python: Side {
            handler: "stream.handler",
            env: vars(&[("RESULTS_TABLE", "results-python")]),
            check: python_ok,
            runs: KINESIS_RUNS,
        },
        floor: Floor::Kinesis,
    });

    for (name, bytes, runs, description) in [
        ("transform-1KB", 1_000, 10, "one order of 1 KB"),
        ("transform-100KB", 100_000, 10, "one order of 100 KB"),
        ("transform-10MB", 10_000_000, 3, "one order of 10 MB"),
    ] {
        let body = data::order(0, bytes);
        let key = format!("orders/{name}.json");
        let size = body.len();
        let items = data::item_count(&body);
        s3.put_object()
            .bucket("orders")
            .key(&key)
            .body(ByteStream::from(body))
            .send()
            .await?;
        let event = data::s3_event("orders", &key, size);
        let floor = Floor::Transform { key: key.clone() };
        scenarios.push(Scenario {
            name,
            description: format!("{description} ({size} bytes, {items} items)"),
            warmup: event.clone(),
            events: vec![event; runs],
            rust: Side {
                handler: "s3-json-transform",
                env: vars(&[("OUTPUT_BUCKET", "out-rust")]),
                check: rust_transform_ok,
                runs,
            },
            python: Side {
                handler: "transform.handler",
                env: vars(&[("PROCESSED_BUCKET", "out-python")]),
                check: python_ok,
                runs,
            },
            floor,
        });
    }

    // The measured day, and a one-object day for the warm-up.
    let s3_ref = &s3;
    let uploads = (0..BATCH_OBJECTS)
        .map(|n| (data::daily_key("2024/06/04", n), data::daily_object(n)))
        .chain(std::iter::once((
            data::daily_key("2024/06/03", 0),
            data::daily_object(0),
        )));
    let failures: Vec<Error> = futures::stream::iter(uploads)
        .map(|(key, body)| async move {
            s3_ref
                .put_object()
                .bucket("raw")
                .key(key)
                .body(ByteStream::from(body))
                .send()
                .await
                .map(|_| ())
                .map_err(Error::from)
        })
        .buffer_unordered(16)
        .filter_map(|r| async move { r.err() })
        .collect()
        .await;
    if let Some(error) = failures.into_iter().next() {
        return Err(error);
    }
    let rust_runs = 3;
    scenarios.push(Scenario {
        name: "aggregate-5000",
        description: format!(
            "one scheduled run over {BATCH_OBJECTS} objects of {} records",
            data::RECORDS_PER_OBJECT
        ),
        warmup: data::batch_event("2024-06-03"),
        events: vec![data::batch_event("2024-06-04"); rust_runs],
        rust: Side {
            handler: "batch-aggregate",
            env: vars(&[("SOURCE_BUCKET", "raw"), ("DESTINATION_BUCKET", "sum-rust")]),
            check: rust_batch_ok,
            runs: rust_runs,
        },
        python: Side {
            handler: "batch.handler",
            env: vars(&[
                ("SOURCE_BUCKET", "raw"),
                ("DESTINATION_BUCKET", "sum-python"),
            ]),
            check: python_ok,
            runs: PYTHON_BATCH_RUNS,
        },
        floor: Floor::Aggregate {
            concurrency: sluice_handlers::kit::limits::IoLimits::default().requests,
        },
    });
    Ok(scenarios)
}
