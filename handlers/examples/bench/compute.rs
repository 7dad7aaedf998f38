//! Compute only: each handler's library code on the generated events,
//! against in-memory S3 and DynamoDB, beside the Python baseline doing the
//! same in-process (`python/compute.py`). Both read the same files; both
//! are timed from the event's JSON text (the managed Python runtime parses
//! each event before calling the handler, and so does the Rust runtime), so
//! the figures count parsing, the handler's work and the in-memory writes.
//!
//! Every scenario runs in a child process of its own (this program with
//! `--compute DIR` for Rust), so its peak memory is its own.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use serde_json::json;
use serde_json::value::RawValue;
use sluice_handlers::builtin::batch_aggregate::{self, BatchConfig};
use sluice_handlers::builtin::s3_transform::{self, TransformConfig};
use sluice_handlers::builtin::stream_anomaly::{self, StreamConfig};
use sluice_handlers::kit::dynamo::MemoryTable;
use sluice_handlers::kit::retry::Backoff;
use sluice_handlers::kit::store::MemoryStore;

use crate::data;
use crate::{Error, vm_hwm_kib};

/// A scenario's input, as both implementations read it from its directory.
#[derive(Debug, Serialize, Deserialize)]
struct Manifest {
    /// `stream`, `transform` or `batch`: the Python module, and which Rust
    /// handler runs.
    module: String,
    /// The Python handler's environment.
    env: serde_json::Map<String, serde_json::Value>,
    /// Objects to preload into the in-memory S3.
    objects: Vec<ObjectFile>,
    /// File of events, one JSON document per line.
    events: String,
}

#[derive(Debug, Serialize, Deserialize)]
struct ObjectFile {
    bucket: String,
    key: String,
    file: String,
}

/// What one implementation measured on one scenario.
#[derive(Debug, Serialize, Deserialize)]
pub struct Measured {
    /// Time inside the handler calls (event parsing included).
    pub seconds: f64,
    /// Handler invocations.
    pub calls: u64,
    /// Peak RSS (KiB) once the input was loaded, before the first call.
    pub input_hwm_kib: u64,
    /// Peak RSS (KiB) of the whole process.
    pub vm_hwm_kib: u64,
}

/// One compute scenario: its name, what it is, and the unit it counts.
struct Scenario {
    name: &'static str,
    description: &'static str,
    unit: &'static str,
    units: u64,
    dir: PathBuf,
}

const STREAM_BATCHES: u64 = 1_000;
const BATCH_OBJECTS: u64 = 5_000;
/// Orders per transform size: (label, bytes, objects).
const TRANSFORM_SIZES: &[(&str, usize, u64)] = &[
    ("1KB", 1_000, 1_000),
    ("100KB", 100_000, 100),
    ("10MB", 10_000_000, 3),
];

/// Writes every scenario's input under `root`.
fn generate(root: &Path) -> Result<Vec<Scenario>, Error> {
    let mut scenarios = Vec::new();

    let dir = root.join("stream-anomaly");
    std::fs::create_dir_all(&dir)?;
    let mut events = Vec::new();
    for batch in 0..STREAM_BATCHES {
        events.extend(data::kinesis_event(batch));
        events.push(b'\n');
    }
    write_manifest(
        &dir,
        "stream",
        &[("RESULTS_TABLE", "results")],
        vec![],
        &events,
    )?;
    scenarios.push(Scenario {
        name: "stream-anomaly",
        description: "1,000 Kinesis batches of 100 records",
        unit: "records",
        units: STREAM_BATCHES * data::KINESIS_BATCH,
        dir,
    });

    for &(label, bytes, count) in TRANSFORM_SIZES {
        let dir = root.join(format!("transform-{label}"));
        std::fs::create_dir_all(dir.join("objects"))?;
        let mut objects = Vec::new();
        let mut events = Vec::new();
        let mut items = 0;
        for n in 0..count {
            let body = data::order(n, bytes);
            items += data::item_count(&body);
            let key = format!("orders/{label}/{n:05}.json");
            let file = format!("objects/{n}");
            std::fs::write(dir.join(&file), &body)?;
            events.extend(data::s3_event("in", &key, body.len()));
            events.push(b'\n');
            objects.push(ObjectFile {
                bucket: "in".into(),
                key,
                file,
            });
        }
        write_manifest(
            &dir,
            "transform",
            &[("PROCESSED_BUCKET", "out")],
            objects,
            &events,
        )?;
        scenarios.push(Scenario {
            name: match label {
                "1KB" => "transform-1KB",
                "100KB" => "transform-100KB",
                _ => "transform-10MB",
            },
            description: match label {
                "1KB" => "1,000 orders of 1 KB, one S3 record per call",
                "100KB" => "100 orders of 100 KB, one S3 record per call",
                _ => "3 orders of 10 MB, one S3 record per call",
            },
            unit: "items",
            units: items,
            dir,
        });
    }

    let dir = root.join("batch-aggregate");
    std::fs::create_dir_all(dir.join("objects"))?;
    let mut objects = Vec::new();
    for n in 0..BATCH_OBJECTS {
        let file = format!("objects/{n}");
        std::fs::write(dir.join(&file), data::daily_object(n))?;
        objects.push(ObjectFile {
            bucket: "raw".into(),
            key: data::daily_key("2024/06/04", n),
            file,
        });
    }
    let mut events = data::batch_event("2024-06-04");
    events.push(b'\n');
    write_manifest(
        &dir,
        "batch",
        &[
            ("SOURCE_BUCKET", "raw"),
            ("DESTINATION_BUCKET", "summaries"),
        ],
        objects,
        &events,
    )?;
    scenarios.push(Scenario {
        name: "batch-aggregate",
        description: "5,000 objects of 20 records, one scheduled run",
        unit: "records",
        units: BATCH_OBJECTS * data::RECORDS_PER_OBJECT,
        dir,
    });
    Ok(scenarios)
}

fn write_manifest(
    dir: &Path,
    module: &str,
    env: &[(&str, &str)],
    objects: Vec<ObjectFile>,
    events: &[u8],
) -> Result<(), Error> {
    std::fs::write(dir.join("events.jsonl"), events)?;
    let mut vars = serde_json::Map::new();
    vars.insert("AWS_DEFAULT_REGION".into(), json!("us-east-1"));
    vars.insert("AWS_ACCESS_KEY_ID".into(), json!("testing"));
    vars.insert("AWS_SECRET_ACCESS_KEY".into(), json!("testing"));
    for (name, value) in env {
        vars.insert((*name).into(), json!(value));
    }
    let manifest = Manifest {
        module: module.into(),
        env: vars,
        objects,
        events: "events.jsonl".into(),
    };
    std::fs::write(
        dir.join("scenario.json"),
        serde_json::to_vec_pretty(&manifest)?,
    )?;
    Ok(())
}

/// Generates the input, runs both implementations on every scenario and
/// prints the table.
pub fn run(python: Option<&Path>) -> Result<(), Error> {
    // SLUICE_BENCH_INPUT=DIR keeps the generated input there, for running
    // one scenario under a profiler: `bench --compute DIR/stream-anomaly`.
    let kept = std::env::var_os("SLUICE_BENCH_INPUT").map(PathBuf::from);
    let root = kept.clone().unwrap_or_else(|| {
        std::env::temp_dir().join(format!("sluice-bench-{}", std::process::id()))
    });
    let scenarios = generate(&root)?;
    let result = print_table(&scenarios, python);
    if kept.is_none() {
        let _ = std::fs::remove_dir_all(&root);
    }
    result
}

fn print_table(scenarios: &[Scenario], python: Option<&Path>) -> Result<(), Error> {
    println!("compute only: in-memory S3 and DynamoDB, each scenario in its own process");
    println!(
        "{:<16} {:>8} {:>15} {:>15} {:>8} {:>10} {:>12}  input",
        "scenario", "units", "Rust /s", "Python /s", "speed-up", "Rust MiB", "Python MiB"
    );
    let exe = std::env::current_exe()?;
    for scenario in scenarios {
        let rust = child_json(Command::new(&exe).arg("--compute").arg(&scenario.dir))?;
        let python = match python {
            Some(python) => Some(child_json(
                Command::new(python)
                    .arg(crate::python_dir().join("compute.py"))
                    .arg(&scenario.dir),
            )?),
            None => None,
        };
        let rate = |m: &Measured| scenario.units as f64 / m.seconds.max(1e-9);
        let mib = |m: &Measured| m.vm_hwm_kib as f64 / 1024.0;
        println!(
            "{:<16} {:>8} {:>15} {:>15} {:>8} {:>10.1} {:>12}  {} ({})",
            scenario.name,
            scenario.units,
            format!("{:.0}", rate(&rust)),
            python
                .as_ref()
                .map_or("-".into(), |p| format!("{:.0}", rate(p))),
            python
                .as_ref()
                .map_or("-".into(), |p| format!("{:.1}x", p.seconds / rust.seconds)),
            mib(&rust),
            python
                .as_ref()
                .map_or("-".into(), |p| format!("{:.1}", mib(p))),
            scenario.description,
            scenario.unit,
        );
    }
    println!(
        "(/s: units per second inside the handler calls, event parsing included; MiB: peak RSS of \
         the scenario's process, its input included)"
    );
    Ok(())
}

fn child_json(command: &mut Command) -> Result<Measured, Error> {
    let output = command.output()?;
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        let shown: String = stderr.chars().take(2000).collect();
        return Err(format!("{command:?} failed: {shown}").into());
    }
    let last = output
        .stdout
        .split(|b| *b == b'\n')
        .rfind(|line| !line.is_empty())
        .unwrap_or_default();
    Ok(serde_json::from_slice(last)?)
}

/// The child process: runs the Rust handler of the scenario in `dir` and
/// prints one JSON line.
pub fn run_child(dir: &Path) -> Result<(), Error> {
    let manifest: Manifest = serde_json::from_slice(&std::fs::read(dir.join("scenario.json"))?)?;
    let store = MemoryStore::new();
    for object in &manifest.objects {
        store.insert(
            &object.bucket,
            &object.key,
            std::fs::read(dir.join(&object.file))?,
        );
    }
    let text = std::fs::read(dir.join(&manifest.events))?;
    let events: Vec<&[u8]> = text
        .split(|b| *b == b'\n')
        .filter(|line| !line.is_empty())
        .collect();
    let input_hwm_kib = vm_hwm_kib();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let elapsed = runtime.block_on(async {
        match manifest.module.as_str() {
            "stream" => stream(&events).await,
            "transform" => transform(&store, &events).await,
            "batch" => batch(&store, &events).await,
            other => Err(format!("unknown module {other}").into()),
        }
    })?;
    println!(
        "{}",
        serde_json::to_string(&Measured {
            seconds: elapsed.as_secs_f64(),
            calls: events.len() as u64,
            input_hwm_kib,
            vm_hwm_kib: vm_hwm_kib(),
        })?
    );
    Ok(())
}

async fn stream(events: &[&[u8]]) -> Result<Duration, Error> {
    let config = StreamConfig {
        table: "results".into(),
        backoff: Backoff::default(),
    };
    let mut elapsed = Duration::ZERO;
    for event in events {
        // A fresh table per batch, as each invocation writes to a remote one.
        let table = MemoryTable::new(stream_anomaly::KEY_ATTRIBUTE);
        let start = Instant::now();
        // What the executable does: the runtime checks the payload is JSON
        // and hands its text over; the handler parses that once.
        let payload: Box<RawValue> = serde_json::from_slice(event)?;
        let response = stream_anomaly::handle(&table, &config, payload, chrono::Utc::now()).await?;
        elapsed += start.elapsed();
        if !response.batch_item_failures.is_empty() {
            return Err("unexpected batch item failures".into());
        }
    }
    Ok(elapsed)
}

async fn transform(store: &MemoryStore, events: &[&[u8]]) -> Result<Duration, Error> {
    let config = TransformConfig {
        output_bucket: "out".into(),
    };
    let mut elapsed = Duration::ZERO;
    for event in events {
        let start = Instant::now();
        let payload: Box<RawValue> = serde_json::from_slice(event)?;
        let report = s3_transform::handle(store, &config, payload, chrono::Utc::now()).await?;
        elapsed += start.elapsed();
        if report.processed.len() != 1 {
            return Err("object not processed".into());
        }
    }
    Ok(elapsed)
}

async fn batch(store: &MemoryStore, events: &[&[u8]]) -> Result<Duration, Error> {
    let config = BatchConfig {
        source_bucket: "raw".into(),
        destination_bucket: "summaries".into(),
    };
    let mut elapsed = Duration::ZERO;
    for event in events {
        let start = Instant::now();
        let summary = batch_aggregate::handle(
            store,
            &config,
            serde_json::from_slice(event)?,
            chrono::Utc::now(),
        )
        .await?;
        elapsed += start.elapsed();
        if summary.objects_processed != BATCH_OBJECTS {
            return Err(format!(
                "{} objects aggregated, {} invalid (first: {:?})",
                summary.objects_processed,
                summary.invalid_objects.len(),
                summary.invalid_objects.first()
            )
            .into());
        }
    }
    Ok(elapsed)
}
