//! `make bench`: throughput and peak memory of the handlers' library code on
//! generated in-memory input, and the cold start of the real binaries under
//! cargo-lambda's Runtime API emulator. A program that prints figures, not a
//! test; build it optimised (`--profile lambda`) for meaningful numbers.
//!
//! Each scenario runs in a child process (this program with `--scenario NAME`)
//! so its peak memory (VmHWM from /proc/self/status) is its own. The cold
//! start needs `SLUICE_CARGO_LAMBDA` and `SLUICE_LAMBDA_BIN_DIR` (set by
//! `make bench`) and is skipped without them.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine as _;
use serde_json::{Value, json};
use sluice_handlers::batch_aggregate::{self, BatchConfig};
use sluice_handlers::dynamo::MemoryTable;
use sluice_handlers::retry::Backoff;
use sluice_handlers::s3_transform::{self, TransformConfig};
use sluice_handlers::store::MemoryStore;
use sluice_handlers::stream_anomaly::{self, StreamConfig};

#[path = "../tests/local_lambda/emulator.rs"]
mod emulator;
use emulator::Emulator;

type Error = Box<dyn std::error::Error + Send + Sync>;

/// What one scenario measured.
#[derive(Debug)]
struct Measured {
    /// Units processed (records, items) and their name.
    units: u64,
    unit: &'static str,
    /// Time spent in the handler calls only (input generation excluded).
    seconds: f64,
    /// Handler invocations.
    calls: u64,
    /// Peak RSS (KiB) once the input was generated, before the first call.
    input_hwm_kib: u64,
}

const SCENARIOS: &[(&str, &str)] = &[
    (
        "baseline",
        "process with the async runtime and nothing else",
    ),
    (
        "stream-anomaly",
        "100,000 Kinesis records, batches of 100, in-memory table",
    ),
    (
        "s3-json-transform",
        "20 orders of 10,000 items, one S3 record per call",
    ),
    (
        "batch-aggregate",
        "5,000 objects of 20 records, one scheduled run",
    ),
];

fn main() -> Result<(), Error> {
    let args: Vec<String> = std::env::args().collect();
    if let [_, flag, name] = args.as_slice()
        && flag == "--scenario"
    {
        return run_scenario(name);
    }
    println!("sluice-handlers benchmark (each scenario in its own process)");
    println!();
    println!(
        "{:<18} {:>8} {:>6} {:>9} {:>17} {:>10} {:>10}  input",
        "scenario", "units", "calls", "seconds", "rate", "input MiB", "peak MiB"
    );
    let exe = std::env::current_exe()?;
    for (name, description) in SCENARIOS {
        let output = Command::new(&exe).args(["--scenario", name]).output()?;
        if !output.status.success() {
            return Err(format!(
                "scenario {name} failed: {}",
                String::from_utf8_lossy(&output.stderr)
            )
            .into());
        }
        let line: Value = serde_json::from_slice(&output.stdout)?;
        let units = line["units"].as_u64().unwrap_or(0);
        let seconds = line["seconds"].as_f64().unwrap_or(0.0);
        let rate = if seconds > 0.0 {
            format!(
                "{:.0} {}/s",
                units as f64 / seconds,
                line["unit"].as_str().unwrap_or("")
            )
        } else {
            "-".to_owned()
        };
        let mib = |field: &str| line[field].as_f64().unwrap_or(0.0) / 1024.0;
        println!(
            "{:<18} {:>8} {:>6} {:>9.3} {:>17} {:>10.1} {:>10.1}  {description}",
            name,
            units,
            line["calls"].as_u64().unwrap_or(0),
            seconds,
            rate,
            mib("input_hwm_kib"),
            mib("vm_hwm_kib"),
        );
    }
    println!(
        "(seconds: time inside the handler calls only; input MiB: peak RSS once the input was \
         generated; peak MiB: VmHWM of the scenario's process, input included)"
    );
    println!();
    cold_start()
}

/// Peak resident set size of this process, in KiB.
fn vm_hwm_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            status.lines().find_map(|line| {
                line.strip_prefix("VmHWM:")
                    .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
            })
        })
        .unwrap_or(0)
}

fn run_scenario(name: &str) -> Result<(), Error> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let measured = runtime.block_on(async {
        match name {
            "baseline" => Ok(Measured {
                units: 0,
                unit: "",
                seconds: 0.0,
                calls: 0,
                input_hwm_kib: vm_hwm_kib(),
            }),
            "stream-anomaly" => stream_anomaly_scenario().await,
            "s3-json-transform" => s3_transform_scenario().await,
            "batch-aggregate" => batch_aggregate_scenario().await,
            other => Err(format!("unknown scenario {other}").into()),
        }
    })?;
    println!(
        "{}",
        json!({
            "units": measured.units,
            "unit": measured.unit,
            "seconds": measured.seconds,
            "calls": measured.calls,
            "input_hwm_kib": measured.input_hwm_kib,
            "vm_hwm_kib": vm_hwm_kib(),
        })
    );
    Ok(())
}

async fn stream_anomaly_scenario() -> Result<Measured, Error> {
    const RECORDS: u64 = 100_000;
    const BATCH: u64 = 100;
    let config = StreamConfig {
        table: "results".into(),
        backoff: Backoff::default(),
    };
    let input_hwm_kib = vm_hwm_kib();
    let mut elapsed = Duration::ZERO;
    let mut failures = 0usize;
    for batch in 0..RECORDS / BATCH {
        let records: Vec<Value> = (0..BATCH)
            .map(|i| {
                let n = batch * BATCH + i;
                let data = json!({
                    "id": format!("sensor-{n}"),
                    "value": (n % 300) as f64 + 0.5,
                    "threshold": 100,
                    "timestamp": "2024-06-05T10:00:00Z",
                    "site": "eu-west-1a",
                });
                json!({
                    "eventSource": "aws:kinesis",
                    "eventID": format!("shardId-000000000000:{n}"),
                    "awsRegion": "us-east-1",
                    "kinesis": {
                        "partitionKey": format!("pk-{}", n % 16),
                        "sequenceNumber": format!("4959{n:016}"),
                        "data": base64::engine::general_purpose::STANDARD.encode(data.to_string()),
                    }
                })
            })
            .collect();
        let event = json!({ "Records": records });
        // A fresh table per batch, as each invocation writes to a remote one.
        let table = MemoryTable::new(stream_anomaly::KEY_ATTRIBUTE);
        let start = Instant::now();
        let response = stream_anomaly::handle(&table, &config, event, chrono::Utc::now()).await?;
        elapsed += start.elapsed();
        failures += response.batch_item_failures.len();
    }
    if failures > 0 {
        return Err(format!("{failures} unexpected batch item failures").into());
    }
    Ok(Measured {
        units: RECORDS,
        unit: "records",
        seconds: elapsed.as_secs_f64(),
        calls: RECORDS / BATCH,
        input_hwm_kib,
    })
}

fn s3_record(bucket: &str, key: &str) -> Value {
    json!({
        "eventSource": "aws:s3",
        "eventName": "ObjectCreated:Put",
        "s3": {"bucket": {"name": bucket}, "object": {"key": key, "size": 1}}
    })
}

async fn s3_transform_scenario() -> Result<Measured, Error> {
    const ORDERS: u64 = 20;
    const ITEMS: u64 = 10_000;
    let store = MemoryStore::new();
    for order in 0..ORDERS {
        let items: Vec<Value> = (0..ITEMS)
            .map(|i| {
                json!({
                    "sku": format!("sku-{i:06}"),
                    "name": "A product with a reasonably long descriptive name",
                    "quantity": i % 7 + 1,
                    "price": (i % 1000) as f64 / 100.0 + 0.99,
                })
            })
            .collect();
        let body = json!({"order_id": format!("o-{order}"), "customer": "c-1", "items": items});
        store.insert(
            "in",
            &format!("orders/{order}.json"),
            serde_json::to_vec(&body)?,
        );
    }
    let config = TransformConfig {
        output_bucket: "out".into(),
    };
    let input_hwm_kib = vm_hwm_kib();
    let mut elapsed = Duration::ZERO;
    for order in 0..ORDERS {
        let event = json!({ "Records": [s3_record("in", &format!("orders/{order}.json"))] });
        let start = Instant::now();
        let report = s3_transform::handle(&store, &config, event, chrono::Utc::now()).await?;
        elapsed += start.elapsed();
        if report.processed.len() != 1 {
            return Err(format!("order {order} not processed").into());
        }
    }
    Ok(Measured {
        units: ORDERS * ITEMS,
        unit: "items",
        seconds: elapsed.as_secs_f64(),
        calls: ORDERS,
        input_hwm_kib,
    })
}

async fn batch_aggregate_scenario() -> Result<Measured, Error> {
    const OBJECTS: u64 = 5_000;
    const RECORDS: u64 = 20;
    let store = MemoryStore::with_page_size(1000);
    for object in 0..OBJECTS {
        let records: Vec<Value> = (0..RECORDS)
            .map(|i| {
                json!({
                    "category": format!("category-{}", (object + i) % 12),
                    "value": if i % 2 == 0 { json!(i) } else { json!(i as f64 * 0.25) },
                })
            })
            .collect();
        let body = json!({ "records": records });
        store.insert(
            "raw",
            &format!("2024/06/04/part-{object:05}.json"),
            serde_json::to_vec(&body)?,
        );
    }
    let config = BatchConfig {
        source_bucket: "raw".into(),
        destination_bucket: "summaries".into(),
    };
    let input_hwm_kib = vm_hwm_kib();
    let start = Instant::now();
    let summary = batch_aggregate::handle(
        &store,
        &config,
        json!({"date": "2024-06-04"}),
        chrono::Utc::now(),
    )
    .await?;
    let elapsed = start.elapsed();
    if summary.objects_processed != OBJECTS || summary.total_records != OBJECTS * RECORDS {
        return Err(format!("unexpected summary: {summary:?}").into());
    }
    Ok(Measured {
        units: OBJECTS * RECORDS,
        unit: "records",
        seconds: elapsed.as_secs_f64(),
        calls: 1,
        input_hwm_kib,
    })
}

// ---------------------------------------------------------------------------
// Cold start of the real binaries under cargo-lambda.

/// A handler, its environment and its first event.
type ColdStart = (
    &'static str,
    &'static [(&'static str, &'static str)],
    &'static str,
);

/// Handlers measured, with their environment and a first event that needs no
/// AWS call (so only the process start and the runtime's first poll count).
const COLD_STARTS: &[ColdStart] = &[
    (
        "transform",
        &[],
        r#"{"bucket": "b", "key": "k.json", "data": {"items": []}}"#,
    ),
    (
        "s3-json-transform",
        &[("OUTPUT_BUCKET", "out")],
        r#"{"Records": []}"#,
    ),
    (
        "stream-anomaly",
        &[("RESULTS_TABLE", "results")],
        r#"{"Records": []}"#,
    ),
];
const COLD_RUNS: u32 = 5;

/// Kills the child on drop.
#[derive(Debug)]
struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn cold_start() -> Result<(), Error> {
    let (Some(cargo_lambda), Some(bin_dir)) = (
        std::env::var_os("SLUICE_CARGO_LAMBDA").map(PathBuf::from),
        std::env::var_os("SLUICE_LAMBDA_BIN_DIR").map(PathBuf::from),
    ) else {
        println!(
            "cold start: skipped (set SLUICE_CARGO_LAMBDA and SLUICE_LAMBDA_BIN_DIR, as `make bench` does)"
        );
        return Ok(());
    };
    if !cargo_lambda.is_file() {
        println!(
            "cold start: skipped ({} missing: run `scripts/tools.sh install`)",
            cargo_lambda.display()
        );
        return Ok(());
    }
    let emulator = Emulator::start(&cargo_lambda, Stdio::null(), Stdio::null())?;

    // A bare process start, measured in the same run, is the yardstick: the
    // machine may be busy, so ratios are more telling than milliseconds.
    let spawn_ms = median(
        (0..COLD_RUNS)
            .map(|_| -> Result<f64, Error> {
                let start = Instant::now();
                Command::new("true").status()?;
                Ok(start.elapsed().as_secs_f64() * 1000.0)
            })
            .collect::<Result<Vec<_>, _>>()?,
    );
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let client = runtime.block_on(async {
        let sdk = sluice_handlers::aws::config_loader()
            .region(aws_config::Region::new("us-east-1"))
            .credentials_provider(aws_sdk_lambda::config::Credentials::new(
                "testing", "testing", None, None, "bench",
            ))
            .load()
            .await;
        emulator.client(&sdk)
    });

    println!(
        "cold start under cargo-lambda {} (median of {COLD_RUNS}; `true` takes {spawn_ms:.1} ms to spawn and exit here)",
        cargo_lambda.display()
    );
    println!(
        "{:<18} {:>10} {:>14} {:>16} {:>12} {:>10}",
        "handler", "size KiB", "first resp ms", "warm invoke ms", "ready ms", "ready/true"
    );
    for (binary, vars, event) in COLD_STARTS {
        let executable = bin_dir.join("bootstrap");
        let size = std::fs::metadata(&executable)?.len();
        let mut firsts = Vec::new();
        let mut warms = Vec::new();
        for _ in 0..COLD_RUNS {
            let (first, warm) = runtime.block_on(async {
                let invoke = || {
                    client
                        .invoke()
                        .function_name(emulator::FUNCTION)
                        .payload(aws_sdk_lambda::primitives::Blob::new(event.as_bytes()))
                        .send()
                };
                let start = Instant::now();
                // No AWS endpoint answers on port 9: the measured events
                // make no AWS calls.
                let _handler = Killed(
                    emulator
                        .handler_command(&executable, binary, "http://127.0.0.1:9")
                        .env("RUST_LOG", "error")
                        .envs(vars.iter().copied())
                        .stdout(Stdio::null())
                        .stderr(Stdio::null())
                        .spawn()?,
                );
                let response = invoke().await?;
                let first = start.elapsed();
                if response.function_error().is_some() {
                    return Err(format!("{binary} failed its first event").into());
                }
                let start = Instant::now();
                invoke().await?;
                Ok::<_, Error>((first, start.elapsed()))
            })?;
            firsts.push(first.as_secs_f64() * 1000.0);
            warms.push(warm.as_secs_f64() * 1000.0);
        }
        let (first, warm) = (median(firsts), median(warms));
        // The first response is process start + init + one invoke round trip.
        let ready = (first - warm).max(0.0);
        println!(
            "{:<18} {:>10} {:>14.1} {:>16.1} {:>12.1} {:>10.1}",
            binary,
            size / 1024,
            first,
            warm,
            ready,
            ready / spawn_ms.max(0.001),
        );
    }
    Ok(())
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values.get(values.len() / 2).copied().unwrap_or(0.0)
}
