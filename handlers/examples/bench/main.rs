//! `make bench`: the Rust handlers beside a Python re-implementation of the
//! article's handlers (`python/`), on the same generated events, in one run.
//! A program that prints figures, not a test; `make bench` builds it with the
//! `lambda` profile and passes the tools it needs.
//!
//! Three parts, each skipped (with a note) when what it needs is missing:
//! 1. compute only ([`compute`]): each handler's library code against
//!    in-memory S3 and DynamoDB, Rust and Python, each scenario in its own
//!    process so its peak memory is its own;
//! 2. end to end ([`e2e`]): the real `bootstrap` and the Python baseline
//!    under cargo-lambda's Runtime API emulator, against moto behind a proxy
//!    that adds a fixed round trip per call; duration, billed duration, peak
//!    RSS and GB-seconds per implementation, and their ratios;
//! 3. cold start: the time to ready of the executable under the emulator.
//!
//! Environment (set by `make bench`): `SLUICE_CARGO_LAMBDA`,
//! `SLUICE_LAMBDA_BIN_DIR` (the built executable), `SLUICE_MOTO_PYTHON`,
//! `SLUICE_BENCH_PYTHON` (the baseline's interpreter, with boto3). Optional:
//! `SLUICE_BENCH_ROUND_TRIP_MS` (default 8), `SLUICE_BENCH_ONLY` (a comma
//! list of `compute`, `e2e`, `cold`).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

mod compute;
mod data;
mod e2e;
#[path = "../../tests/local_lambda/emulator.rs"]
mod emulator;
mod proxy;

use emulator::Emulator;

type Error = Box<dyn std::error::Error + Send + Sync>;

/// Round trip the proxy adds to every call unless `SLUICE_BENCH_ROUND_TRIP_MS`
/// says otherwise: a function and a service in the same region.
const DEFAULT_ROUND_TRIP_MS: u64 = 8;

fn main() -> Result<(), Error> {
    let args: Vec<String> = std::env::args().collect();
    if let [_, flag, dir] = args.as_slice()
        && flag == "--compute"
    {
        return compute::run_child(Path::new(dir));
    }
    if let [_, flag, upstream, round_trip_ms] = args.as_slice()
        && flag == "--proxy"
    {
        // The latency proxy on its own, for poking at by hand.
        let proxy = proxy::LatencyProxy::start(
            upstream.parse()?,
            Duration::from_millis(round_trip_ms.parse()?),
        )?;
        println!("{}", proxy.url());
        loop {
            std::thread::park();
        }
    }
    let only = std::env::var("SLUICE_BENCH_ONLY").unwrap_or_default();
    let part = |name: &str| only.is_empty() || only.split(',').any(|p| p.trim() == name);
    let path_var = |name: &str| {
        std::env::var_os(name)
            .map(PathBuf::from)
            .filter(|p| p.exists())
    };
    let python = path_var("SLUICE_BENCH_PYTHON");

    println!("sluice-handlers benchmark: Rust beside the article's Python, same events, one run");
    println!();
    if part("compute") {
        if python.is_none() {
            println!("(Python baseline skipped: set SLUICE_BENCH_PYTHON, as `make bench` does)");
        }
        compute::run(python.as_deref())?;
        println!();
    }
    if part("e2e") {
        match (
            path_var("SLUICE_CARGO_LAMBDA"),
            path_var("SLUICE_LAMBDA_BIN_DIR"),
            path_var("SLUICE_MOTO_PYTHON"),
            python.clone(),
        ) {
            (Some(cargo_lambda), Some(bin_dir), Some(moto_python), Some(python)) => {
                let round_trip_ms = match std::env::var("SLUICE_BENCH_ROUND_TRIP_MS") {
                    Ok(text) => text.trim().parse().map_err(|e| {
                        format!(
                            "SLUICE_BENCH_ROUND_TRIP_MS={text:?} is not whole milliseconds: {e}"
                        )
                    })?,
                    Err(_) => DEFAULT_ROUND_TRIP_MS,
                };
                e2e::run(&e2e::Tools {
                    cargo_lambda,
                    bootstrap: bin_dir.join("bootstrap"),
                    moto_python,
                    python,
                    round_trip: Duration::from_millis(round_trip_ms),
                })?;
            }
            _ => println!(
                "end to end: skipped (set SLUICE_CARGO_LAMBDA, SLUICE_LAMBDA_BIN_DIR, \
                 SLUICE_MOTO_PYTHON and SLUICE_BENCH_PYTHON, as `make bench` does)"
            ),
        }
        println!();
    }
    if part("cold") {
        cold_start(python.as_deref())?;
    }
    Ok(())
}

/// The Python baseline's sources.
fn python_dir() -> PathBuf {
    Path::new(&manifest_dir()).join("examples/bench/python")
}

/// The handlers crate's directory, read at run time (a target directory
/// shared between checkouts can hold a build made in another one).
fn manifest_dir() -> String {
    std::env::var("CARGO_MANIFEST_DIR").unwrap_or_else(|_| env!("CARGO_MANIFEST_DIR").to_owned())
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

fn cold_start(python: Option<&Path>) -> Result<(), Error> {
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
        let sdk = aws_config::defaults(aws_config::BehaviorVersion::latest())
            .http_client(sluice_handlers::kit::http::LambdaHttpClient::default())
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
    let executable = bin_dir.join("bootstrap");
    let size = format!("{}", std::fs::metadata(&executable)?.len() / 1024);
    // The Python baseline's Pattern 1 handler, for comparison: its first
    // event has no records, so it makes no AWS call either.
    let python_row = python.map(|python| {
        (
            "python transform",
            python,
            &[
                ("PROCESSED_BUCKET", "out"),
                ("_HANDLER", "transform.handler"),
            ][..],
            r#"{"Records": []}"#,
        )
    });
    let rows = COLD_STARTS
        .iter()
        .map(|&(binary, vars, event)| (binary, executable.as_path(), vars, event))
        .chain(python_row);
    for (label, program, vars, event) in rows {
        let is_python = Some(program) == python;
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
                let mut command = emulator.handler_command(program, label, "http://127.0.0.1:9");
                if is_python {
                    command
                        .arg(python_dir().join("runtime.py"))
                        .env("AWS_DEFAULT_REGION", "us-east-1")
                        .env("PYTHONDONTWRITEBYTECODE", "1");
                }
                let _handler = Killed(
                    command
                        .env("RUST_LOG", "error")
                        .envs(vars.iter().copied())
                        .stdout(Stdio::null())
                        .stderr(Stdio::null())
                        .spawn()?,
                );
                let response = invoke().await?;
                let first = start.elapsed();
                if response.function_error().is_some() {
                    return Err(format!("{label} failed its first event").into());
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
            label,
            if is_python { "-" } else { size.as_str() },
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
