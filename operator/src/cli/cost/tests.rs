//! The estimator against the samples: golden outputs, a hand calculation
//! of Pattern 1, the decision rules on both sides of their thresholds, and
//! refused volumes.
//!
//! Goldens: `docs/cost/<sample>.txt` is the text estimate of
//! `config/samples/<sample>.yaml` at `config/samples/volumes/<sample>.yaml`.
//! After an intended change, regenerate them with `make cost-goldens`
//! (`SLUICE_BLESS=1 cargo test -p sluice-operator --lib cli::cost::tests::goldens`)
//! and review the diff.

use super::*;
use crate::cli::SAMPLES;
use crate::cli::{check, load};

fn repo(path: &str) -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join(path)
}

fn no_env(_: &str) -> Option<String> {
    None
}

fn checked_yaml(manifest: &str) -> check::Checked {
    let setup = check::Setup::new(no_env, None, None).expect("setup");
    let m = load::parse("test.yaml", manifest).expect("parses");
    check::check(&m[0], &setup, None, None).expect("valid pipeline")
}

fn checked_sample(sample: &str) -> check::Checked {
    let text =
        std::fs::read_to_string(repo(&format!("config/samples/{sample}.yaml"))).expect("sample");
    checked_yaml(&text)
}

fn volumes_of(sample: &str) -> Value {
    let text = std::fs::read_to_string(repo(&format!("config/samples/volumes/{sample}.yaml")))
        .expect("volumes file");
    serde_yaml::from_str(&text).expect("yaml")
}

fn report(
    checked: &check::Checked,
    volumes: Option<&Value>,
    label: Option<&str>,
) -> Result<Report, String> {
    let prices = Prices::builtin().expect("prices");
    estimate(
        checked,
        &prices,
        volumes,
        &Sources {
            prices: prices::BUILTIN_PATH,
            volumes: label,
        },
    )
}

fn sample_report(sample: &str) -> Report {
    let v = volumes_of(sample);
    let label = format!("config/samples/volumes/{sample}.yaml");
    report(&checked_sample(sample), Some(&v), Some(&label)).expect("estimate")
}

#[test]
fn goldens() {
    let bless = std::env::var("SLUICE_BLESS").is_ok_and(|v| v == "1");
    let mut stale = Vec::new();
    for sample in SAMPLES {
        let got = text(&sample_report(sample));
        let path = repo(&format!("docs/cost/{sample}.txt"));
        if bless {
            std::fs::create_dir_all(path.parent().expect("dir")).expect("mkdir");
            std::fs::write(&path, &got).expect("write golden");
            continue;
        }
        let want = std::fs::read_to_string(&path).unwrap_or_default();
        if got != want {
            stale.push(format!("{}:\n{got}", path.display()));
        }
    }
    assert!(
        stale.is_empty(),
        "estimates differ from their goldens (regenerate with `make cost-goldens` and review the diff):\n{}",
        stale.join("\n")
    );
}

#[test]
fn json_has_the_same_numbers_as_text() {
    let r = sample_report("fan-out");
    let j: Value = serde_json::to_value(&r).expect("json");
    assert_eq!(j["total"].as_f64(), Some(r.total));
    let t = text(&r);
    assert!(t.contains(&number(r.total, 2)), "{t}");
    let sum: f64 = r.lines.iter().map(|l| l.usd).sum();
    assert_eq!(round_cents(sum), r.total);
}

/// Pattern 1 by hand, from the price table and
/// config/samples/volumes/event-triggered.yaml:
/// input: 10,000 objects a day of 4 KB, 20 GB stored; processed: 20 GB
/// stored; processor: 256 MB, x86_64 (the built-in handlers' artifact),
/// 150 ms, 1 KB logged per invocation.
#[test]
fn pattern_1_by_hand() {
    let r = sample_report("event-triggered");
    let days = 730.0 / 24.0; // a month of 730 hours
    let objects = 10_000.0 * days; // 304,166.67 objects a month
    let invocations = objects; // S3 invokes once per object
    let gb_seconds = invocations * 0.150 * (256.0 / 1024.0); // 11,406.25
    let log_gb = invocations * 1.0 / (1024.0 * 1024.0); // 1 KB each
    let cents = |v: f64| (v * 100.0).round() / 100.0;
    let hand: Vec<(&str, &str, f64)> = vec![
        // S3 input: producers PUT every object; processor GETs each.
        (
            "input",
            "PUT requests (objects written)",
            cents(objects * 0.005 / 1000.0),
        ), // 1.52
        (
            "input",
            "GET requests (objects read)",
            cents(objects * 0.0004 / 1000.0),
        ), // 0.12
        ("input", "GB-months stored", cents(20.0 * 0.023)), // 0.46
        // S3 processed: processor PUTs one object per input object.
        (
            "processed",
            "PUT requests (objects written)",
            cents(objects * 0.005 / 1000.0),
        ), // 1.52
        ("processed", "GET requests (objects read)", 0.0),
        ("processed", "GB-months stored", cents(20.0 * 0.023)), // 0.46
        // Lambda processor.
        (
            "processor",
            "requests",
            cents(invocations * 0.20 / 1_000_000.0),
        ), // 0.06
        (
            "processor",
            "GB-seconds (256 MB, x86_64)",
            cents(gb_seconds * 0.0000166667),
        ), // 0.19
        // SQS failures: no failures assumed, no consumer.
        ("failures", "SendMessage requests", 0.0),
        // CloudWatch Logs of processor.
        ("/aws/lambda/", "GB ingested (Lambda)", cents(log_gb * 0.50)), // 0.15
        (
            "/aws/lambda/",
            "GB-months stored (this month's)",
            cents(log_gb * 0.03),
        ), // 0.01
    ];
    assert_eq!(r.lines.len(), hand.len(), "{:#?}", r.lines);
    for (name, counted, usd) in &hand {
        let line = r
            .lines
            .iter()
            .find(|l| l.name.contains(name) && l.counted == *counted)
            .unwrap_or_else(|| panic!("no line {name} {counted}: {:#?}", r.lines));
        assert_eq!(line.usd, *usd, "{name} {counted}: {line:#?}");
    }
    let total: f64 = hand.iter().map(|(_, _, u)| u).sum();
    assert_eq!(r.total, cents(total));
    assert_eq!(r.total, 4.49);
}

#[test]
fn every_sample_has_volumes_and_defaults_work_too() {
    for sample in SAMPLES {
        let r = report(&checked_sample(sample), None, None).expect(sample);
        assert!(r.total > 0.0, "{sample}");
        assert!(
            r.assumptions.iter().any(|a| a.contains("(default)")),
            "{sample}"
        );
        let stated = sample_report(sample);
        assert!(
            stated
                .assumptions
                .iter()
                .all(|a| !a.contains("GB stored (default)")),
            "{sample}: {:?}",
            stated.assumptions
        );
    }
}

#[test]
fn missing_and_invalid_fields_are_named() {
    let c = checked_sample("event-triggered");
    let err = |yaml: &str| {
        let v: Value = serde_yaml::from_str(yaml).expect("yaml");
        report(&c, Some(&v), Some("v.yaml")).expect_err(yaml)
    };
    let full = "buckets: {input: {objectsPerDay: 1, storedGB: 1}, processed: {storedGB: 1}}\nfunctions: {processor: {averageDurationMs: 100}}\n";
    let v: Value = serde_yaml::from_str(full).expect("yaml");
    report(&c, Some(&v), Some("v.yaml")).expect("complete");
    let e = err(
        "buckets: {input: {objectsPerDay: 1, storedGB: 1}, processed: {storedGB: 1}}\nfunctions: {processor: {}}\n",
    );
    assert!(
        e.contains("volumes.functions.processor.averageDurationMs: missing"),
        "{e}"
    );
    let e = err(
        "buckets: {input: {storedGB: 1}, processed: {storedGB: 1}}\nfunctions: {processor: {averageDurationMs: 100}}\n",
    );
    assert!(
        e.contains("volumes.buckets.input.objectsPerDay: missing"),
        "{e}"
    );
    let e = err(&full.replace("averageDurationMs: 100", "averageDurationMs: -5"));
    assert!(
        e.contains("volumes.functions.processor.averageDurationMs: -5"),
        "{e}"
    );
    let e = err(&full.replace("averageDurationMs: 100", "averageDurationMs: fast"));
    assert!(
        e.contains("volumes.functions.processor.averageDurationMs: \"fast\""),
        "{e}"
    );
    let e = err(&full.replace("averageDurationMs", "avgDurationMs"));
    assert!(
        e.contains("volumes.functions.processor.avgDurationMs: unknown field"),
        "{e}"
    );
    let e = err(&format!("{full}queues: {{nope: {{messagesPerDay: 1}}}}\n"));
    assert!(
        e.contains("volumes.queues.nope: the pipeline has no such queue"),
        "{e}"
    );
    let e = err(&format!("{full}buckts: {{}}\n"));
    assert!(e.contains("volumes.buckts: unknown section"), "{e}");
}

#[test]
fn another_region_is_refused() {
    // An operator whose region is eu-west-1 plans the pipeline there.
    let setup = check::Setup::new(no_env, Some("eu-west-1".into()), None).expect("setup");
    let m = load::parse(
        "x.yaml",
        "apiVersion: sluice.dev/v1alpha1\nkind: DataPipeline\nmetadata: {name: x}\nspec:\n  buckets: [{name: b}]\n",
    )
    .expect("parses");
    let c = check::check(&m[0], &setup, None, None).expect("valid in eu-west-1");
    let e = report(&c, None, None).expect_err("eu-west-1");
    assert!(
        e.contains("eu-west-1") && e.contains("us-east-1") && e.contains("--prices"),
        "{e}"
    );
}

/// A pipeline of one function with the given YAML lines, and volumes.
fn one(spec: &str, volumes: &str) -> Report {
    let c = checked_yaml(&format!(
        "apiVersion: sluice.dev/v1alpha1\nkind: DataPipeline\nmetadata: {{name: t}}\nspec:\n{spec}"
    ));
    let v: Value = serde_yaml::from_str(volumes).expect("yaml");
    report(&c, Some(&v), Some("v.yaml")).expect("estimate")
}

fn fired(r: &Report, rule: &str) -> Option<Advice> {
    r.advice.iter().find(|a| a.rule == rule).cloned()
}

const SCHEDULED: &str = "  functions:\n    - {name: f, handler: notify, memoryMiB: 1024, timeoutSeconds: TIMEOUT}\n  schedules:\n    - {name: s, expression: rate(1 hour), target: {function: f}}\n";

#[test]
fn duration_rules_fire_near_the_timeout_and_near_900_seconds() {
    let r = |timeout: u32, ms: u32| {
        one(
            &SCHEDULED.replace("TIMEOUT", &timeout.to_string()),
            &format!("functions: {{f: {{averageDurationMs: {ms}}}}}"),
        )
    };
    // 80 % of a 60 s timeout is 48 s.
    let a = fired(&r(60, 48_000), "near-timeout").expect("fires at 48 s of 60 s");
    assert_eq!((a.current, a.alternative), (48.0, 60.0));
    assert!(fired(&r(60, 47_000), "near-timeout").is_none());
    // 80 % of 900 s is 720 s.
    let a = fired(&r(900, 720_000), "near-lambda-limit").expect("fires at 720 s");
    assert_eq!((a.current, a.alternative), (720.0, 900.0));
    assert!(a.message.contains("workflow"), "{}", a.message);
    assert!(fired(&r(900, 700_000), "near-lambda-limit").is_none());
    assert!(fired(&r(900, 700_000), "near-timeout").is_none());
}

const QUEUED: &str = "  queues: [{name: q}]\n  functions:\n    - name: f\n      handler: typed-processor\n      triggers: [{queue: {name: q, batchSize: BATCH}}]\n      uses: [{bucket: b, access: write, env: OUTPUT_BUCKET}]\n  buckets: [{name: b}]\n";

#[test]
fn batching_rule_fires_for_batch_size_1_at_high_volume_only() {
    let r = |batch: u32, per_day: u32| {
        one(
            &QUEUED.replace("BATCH", &batch.to_string()),
            &format!(
                "queues: {{q: {{messagesPerDay: {per_day}}}}}\nbuckets: {{b: {{storedGB: 1}}}}\nfunctions: {{f: {{averageDurationMs: 50}}}}"
            ),
        )
    };
    // 1,000,000 a month is 32,877 a day.
    let a = fired(&r(1, 40_000), "sqs-batching").expect("batch 1 at 1.2M a month");
    assert!(a.alternative < a.current, "{a:?}");
    assert!(
        fired(&r(1, 30_000), "sqs-batching").is_none(),
        "below 1M a month"
    );
    assert!(
        fired(&r(10, 40_000), "sqs-batching").is_none(),
        "already batching"
    );
}

#[test]
fn arm64_rule_fires_for_own_x86_code_only() {
    let spec = |arch: &str| {
        format!(
            "  functions:\n    - name: f\n      code: {{s3: {{bucket: team-code, key: f.zip, sha256: 0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef}}, runtime: python3.12, handler: h.h, architecture: {arch}}}\n      memoryMiB: 1024\n  schedules:\n    - {{name: s, expression: rate(1 minute), target: {{function: f}}}}\n"
        )
    };
    let v = "functions: {f: {averageDurationMs: 1000}}";
    let a = fired(&one(&spec("x86_64"), v), "arm64").expect("x86_64 own code");
    assert!((a.alternative / a.current - 0.8).abs() < 0.01, "{a:?}");
    assert!(fired(&one(&spec("arm64"), v), "arm64").is_none());
    // Built-in handlers run the operator's artifact: not the team's to rebuild.
    let builtin = one(
        &SCHEDULED.replace("TIMEOUT", "900"),
        "functions: {f: {averageDurationMs: 1000}}",
    );
    assert!(fired(&builtin, "arm64").is_none());
}

const WORKFLOW: &str = "  functions:\n    - {name: f, handler: transform}\n  workflows:\n    - name: w\n      type: TYPE\n      definition:\n        StartAt: A\n        States:\n          A: {Type: Task, Resource: 'function:f', Next: B}\n          B: {Type: Pass, Next: C}\n          C: {Type: Pass, End: true}\n";

#[test]
fn workflow_type_rules_compare_standard_and_express() {
    let r = |ty: &str, ms: u32| {
        one(
            &WORKFLOW.replace("TYPE", ty),
            &format!(
                "workflows: {{w: {{executionsPerDay: 100000}}}}\nfunctions: {{f: {{averageDurationMs: {ms}}}}}"
            ),
        )
    };
    // 3 transitions cost $0.000075 an execution as Standard; 1 s of 64 MB
    // Express costs $0.000001 + 0.0625 * 1 * $0.00001667 = $0.00000204.
    let a = fired(&r("Standard", 1_000), "standard-to-express").expect("short Standard");
    assert!(a.alternative < a.current, "{a:?}");
    // 200 s: Express costs 0.0625 * 200 * 0.00001667 = $0.000209 > $0.000075.
    assert!(fired(&r("Standard", 200_000), "standard-to-express").is_none());
    let a = fired(&r("Express", 200_000), "express-to-standard").expect("long Express");
    assert!(a.alternative < a.current, "{a:?}");
    assert!(fired(&r("Express", 1_000), "express-to-standard").is_none());
    // Beyond Express's 5 minutes the rule stays quiet even if cheaper.
    let long = r("Standard", 400_000);
    assert!(fired(&long, "standard-to-express").is_none());
}

const STREAMED: &str = "  streams: [{name: s, mode: MODE}]\n  functions:\n    - name: f\n      handler: stream-anomaly\n      triggers: [{stream: {name: s}}]\n      uses: [{table: t, access: write, env: RESULTS_TABLE}]\n  tables: [{name: t, partitionKey: {name: id, type: S}}]\n";

#[test]
fn kinesis_rules_compare_the_modes() {
    let r = |mode: &str, rps: u32| {
        one(
            &STREAMED.replace("MODE", mode),
            &format!(
                "streams: {{s: {{recordsPerSecond: {rps}, averageRecordKB: 1}}}}\ntables: {{t: {{storedGB: 1}}}}\nfunctions: {{f: {{averageDurationMs: 10}}}}"
            ),
        )
    };
    // 10 shards at $0.015 an hour cost $109.50; on demand $29.20 + data.
    let a = fired(&r("Provisioned, shards: 10", 10), "kinesis-on-demand").expect("10 idle shards");
    assert!(a.alternative < a.current);
    assert!(fired(&r("Provisioned, shards: 1", 10), "kinesis-on-demand").is_none());
    let a = fired(&r("OnDemand", 10), "kinesis-provisioned").expect("steady small on-demand");
    assert!(a.alternative < a.current);
    // At 900 records/s of 1 KB on demand, 2.2 TB a month in and out cost
    // more than... still one shard: on demand stays dearer; at 0 records
    // a month the shard-hour ($10.95) is still cheaper than $29.20.
    let a = fired(&r("Provisioned, shards: 1", 2_000), "kinesis-capacity")
        .expect("2,000 records/s on 1 shard");
    assert_eq!((a.current, a.alternative), (1.0, 2.0));
}

#[test]
fn dynamodb_rules_compare_the_modes() {
    let spec = |table: &str| {
        format!(
            "  queues: [{{name: q}}]\n  tables: [{table}]\n  functions:\n    - name: f\n      handler: typed-processor\n      triggers: [{{queue: {{name: q}}}}]\n      uses: [{{bucket: b, access: write, env: OUTPUT_BUCKET}}]\n      idempotency: {{table: t}}\n  buckets: [{{name: b}}]\n"
        )
    };
    let on_demand = "{name: t, partitionKey: {name: pk, type: S}}";
    let provisioned = "{name: t, partitionKey: {name: pk, type: S}, billingMode: Provisioned, capacity: {read: 5, write: 5}}";
    let v = |per_day: u32| {
        format!(
            "queues: {{q: {{messagesPerDay: {per_day}}}}}\ntables: {{t: {{storedGB: 1}}}}\nbuckets: {{b: {{storedGB: 1}}}}\nfunctions: {{f: {{averageDurationMs: 50}}}}"
        )
    };
    // 5 WCU + 5 RCU provisioned: 730 * (5 * 0.00065 + 5 * 0.00013) = $2.85.
    // 1,000 messages a day: 60,833 writes a month on demand = $0.04.
    let a =
        fired(&one(&spec(provisioned), &v(1_000)), "dynamodb-on-demand").expect("idle provisioned");
    assert!(a.alternative < a.current);
    // 200,000 a day: 2.3 writes a second (within 5 WCU): 12.2M writes a
    // month = $7.60 on demand > $2.85.
    assert!(fired(&one(&spec(provisioned), &v(200_000)), "dynamodb-on-demand").is_none());
    let a = fired(&one(&spec(on_demand), &v(200_000)), "dynamodb-provisioned")
        .expect("steady on demand");
    assert!(a.alternative < a.current);
    assert!(fired(&one(&spec(on_demand), &v(1_000)), "dynamodb-provisioned").is_none());
}

#[test]
fn a_pipeline_that_feeds_itself_is_refused() {
    let c = checked_yaml(
        "apiVersion: sluice.dev/v1alpha1\nkind: DataPipeline\nmetadata: {name: loop}\nspec:\n  buckets: [{name: b}]\n  functions:\n    - name: f\n      handler: s3-json-transform\n      triggers: [{bucket: {name: b}}]\n      uses: [{bucket: b, access: write, env: OUTPUT_BUCKET}]\n",
    );
    match report(&c, None, None) {
        Err(e) => assert!(e.contains("feeds itself") && e.contains("bucket b"), "{e}"),
        Ok(_) => panic!("a cycle has no finite volume"),
    }
}

#[test]
fn the_cli_prices_a_sample_and_refuses_another_region() {
    let argv = |s: &str| s.split_whitespace().map(str::to_owned).collect::<Vec<_>>();
    let a = crate::cli::args::parse(&argv(&format!(
        "cost -f {} --assume-volume {} -o json",
        repo("config/samples/fan-out.yaml").display(),
        repo("config/samples/volumes/fan-out.yaml").display()
    )))
    .expect("args");
    let out = crate::cli::run(&a, &no_env).expect("runs");
    let j: Value = serde_json::from_str(&out.stdout).expect("json");
    assert_eq!(j["total"].as_f64(), Some(sample_report("fan-out").total));
    let a = crate::cli::args::parse(&argv(&format!(
        "cost -f {} --region eu-west-1",
        repo("config/samples/fan-out.yaml").display()
    )))
    .expect("args");
    let e = crate::cli::run(&a, &no_env).expect_err("eu-west-1");
    assert!(
        e.contains("--region eu-west-1") && e.contains("us-east-1"),
        "{e}"
    );
}

#[test]
fn the_readme_shows_the_fan_out_table_as_estimated() {
    let readme = std::fs::read_to_string(repo("README.md")).expect("README");
    let golden = text(&sample_report("fan-out"));
    let table = golden
        .split("\nAssumptions")
        .next()
        .and_then(|t| t.split_once("\n\n"))
        .map(|(_, t)| t.trim_end())
        .expect("a table");
    assert!(
        readme.contains("### Price it") && readme.contains(table),
        "README's \"Price it\" must show docs/cost/fan-out.txt's table as estimated now; copy it from there"
    );
}
