//! Health you can see, end to end: a pipeline with a queue and its
//! dead-letter queue, a stream consumer, a workflow and a schedule with a
//! dead-letter queue, converged by the operator binary (health polled every
//! 2 s over a 1-minute window) while a real Prometheus scrapes it every
//! second and evaluates the alert rules.
//!
//! Dead letters put into the emulator's queues and error data points put
//! into its CloudWatch turn `Healthy` False within one poll, with a message
//! naming the queue, function, workflow and stream; draining them (or the
//! window moving past them) turns it True; the gauges, events, alerts and
//! the Argo CD health check follow. An idle pipeline's polls make only the
//! bounded reads. Every dashboard query and alert expression runs against
//! the Prometheus. `kubectl wait --for=condition=Ready` does not return on
//! a stale generation.
//!
//! With `SLUICE_DASHBOARD_DATA=<file>` the dashboards' data is saved for
//! `scripts/dashboards.py render`; with `SLUICE_CAPTURE_FIXTURES=<dir>` the
//! objects the Argo CD check saw are saved as fixtures.

use std::{
    collections::BTreeMap,
    path::Path,
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use aws_sdk_cloudwatch::{
    primitives::DateTime,
    types::{Dimension, MetricDatum},
};
use serde_json::{Value, json};
use sluice_e2e::{
    Namespace, Operator, apply_and_wait, assert_nothing_left, calls_between, condition,
    delete_pipeline, get_pipeline, id_of, install_crd, kubectl, kubectl_ok,
    observability::{self, argocd_health},
    poke_and_wait,
    prometheus::Prometheus,
    sdk, token, tool,
};

const NAME: &str = "health";
const BROKEN: &str = "broken";

fn manifest() -> String {
    r#"apiVersion: sluice.dev/v1alpha1
kind: DataPipeline
metadata:
  name: health
spec:
  queues:
    - name: orders
      deadLetter: {maxReceiveCount: 3}
    - name: run-failures
  streams:
    - name: clicks
  tables:
    - name: results
      partitionKey: {name: id, type: S}
  functions:
    - name: processor
      handler: notify
      timeoutSeconds: 10
      triggers:
        - queue: {name: orders}
    - name: anomalies
      handler: stream-anomaly
      triggers:
        - stream: {name: clicks, startingPosition: LATEST}
      uses:
        - {table: results, access: write, env: RESULTS_TABLE}
  workflows:
    - name: etl
      definition:
        StartAt: Notify
        States:
          Notify: {Type: Task, Resource: "function:processor", End: true}
  schedules:
    - name: nightly
      expression: rate(1 day)
      target: {workflow: etl}
      deadLetter: {queue: run-failures}
"#
    .to_owned()
}

fn broken_manifest() -> String {
    r#"apiVersion: sluice.dev/v1alpha1
kind: DataPipeline
metadata:
  name: broken
spec:
  functions:
    - name: f
      handler: no-such-handler
"#
    .to_owned()
}

/// Prints how long each part of the test took.
struct Phases(Instant);

impl Phases {
    fn done(&mut self, what: &str) {
        println!("phase {what}: {:.1} s", self.0.elapsed().as_secs_f64());
        self.0 = Instant::now();
    }
}

fn unix_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or_default()
}

/// The pipeline once its `Healthy` condition satisfies `check`.
fn wait_healthy(
    ns: &str,
    op: &Operator,
    what: &str,
    limit: Duration,
    check: impl Fn(&Value) -> bool,
) -> Value {
    let mut last = Value::Null;
    op.wait_until(what, limit, || {
        last = get_pipeline(ns, NAME);
        condition(&last, "Healthy").is_some_and(&check)
    });
    last
}

/// Waits until a health poll that started after now has finished: its
/// status is written when the poll count moves.
fn one_full_poll(op: &Operator) {
    let before = op.health_polls();
    op.wait_until("a full health poll", Duration::from_secs(30), || {
        op.health_polls() >= before + 2
    });
}

/// The events of the namespace with `reason`, as JSON items.
fn events(ns: &str, reason: &str) -> Vec<Value> {
    let out = kubectl_ok(&[
        "get",
        "events",
        "-n",
        ns,
        "--field-selector",
        &format!("reason={reason}"),
        "-o",
        "json",
    ]);
    let doc: Value = serde_json::from_str(&out).expect("events JSON");
    doc["items"].as_array().cloned().unwrap_or_default()
}

/// Runs the Argo CD health check on the live object; saves it as a fixture
/// when asked to.
fn argocd(ns: &str, name: &str, fixture: &str) -> (String, String) {
    let object = get_pipeline(ns, name);
    let dir = std::env::temp_dir().join(format!("sluice-argocd-{}", token()));
    std::fs::create_dir_all(&dir).expect("dir");
    let file = dir.join(format!("{fixture}.json"));
    std::fs::write(&file, serde_json::to_string_pretty(&object).expect("JSON")).expect("write");
    let result = argocd_health(&[file.as_path()]).remove(0);
    if let Ok(capture) = std::env::var("SLUICE_CAPTURE_FIXTURES") {
        std::fs::create_dir_all(&capture).expect("capture dir");
        std::fs::copy(
            &file,
            Path::new(&capture).join(format!("captured-{fixture}.json")),
        )
        .expect("capture");
    }
    let _ = std::fs::remove_dir_all(&dir);
    result
}

async fn queue_url(sqs: &aws_sdk_sqs::Client, name: &str) -> String {
    sqs.get_queue_url()
        .queue_name(name)
        .send()
        .await
        .expect("queue url")
        .queue_url()
        .expect("url")
        .to_owned()
}

fn datum(metric: &str, dimension: &str, value_of: &str, value: f64, at: SystemTime) -> MetricDatum {
    MetricDatum::builder()
        .metric_name(metric)
        .dimensions(Dimension::builder().name(dimension).value(value_of).build())
        .value(value)
        .timestamp(DateTime::from(at))
        .build()
}

#[tokio::test(flavor = "multi_thread")]
async fn health_metrics_alerts_and_dashboards_follow_a_pipeline() {
    let mut phases = Phases(Instant::now());
    install_crd();
    let ns = Namespace::create();
    let prefix = format!("e2e{}", &token()[..5]);
    let env = [
        ("SLUICE_HEALTH_INTERVAL_SECONDS", "2"),
        ("SLUICE_HEALTH_WINDOW_SECONDS", "60"),
        // No resync during the test: the only reconciles are the ones it causes.
        ("SLUICE_RESYNC_SECONDS", "3600"),
        ("SLUICE_NAME_PREFIX", prefix.as_str()),
    ];
    let op = Operator::start_with(&[&ns.0], &env);
    let rules_dir = std::env::temp_dir().join(format!("sluice-rules-{}", token()));
    std::fs::create_dir_all(&rules_dir).expect("rules dir");
    let rules = observability::write_rule_file(&rules_dir);
    let prom = Prometheus::start(&[op.admin_target()], Some(&rules));
    // Scraped once before anything happens, so every counter's first
    // increase shows.
    prom.wait_for(
        "the first scrape",
        r#"up{job="sluice-operator"} == 1"#,
        Duration::from_secs(20),
        |s| !s.is_empty(),
    );
    let started = unix_now();
    phases.done("operator and prometheus up");
    let sdk = sdk().await;
    let sqs = aws_sdk_sqs::Client::new(&sdk);
    let cloudwatch = aws_sdk_cloudwatch::Client::new(&sdk);
    let lambda = aws_sdk_lambda::Client::new(&sdk);
    let gauge = |name: &str| format!(r#"{name}{{namespace="{}",pipeline="{NAME}"}}"#, ns.0);

    // Converged, then healthy on the first poll, every target listed.
    let t = Instant::now();
    apply_and_wait(&ns.0, NAME, &manifest(), "Ready", &op);
    println!(
        "health pipeline Ready in {:.1} s",
        t.elapsed().as_secs_f64()
    );
    // The first poll may come before every resource is in the inventory:
    // wait for one that lists them all.
    let mut dp = Value::Null;
    op.wait_until(
        "Healthy=True with every target",
        Duration::from_secs(30),
        || {
            dp = get_pipeline(&ns.0, NAME);
            condition(&dp, "Healthy").is_some_and(|c| c["status"] == "True")
                && dp["status"]["health"]["functions"]
                    .as_array()
                    .is_some_and(|f| f.len() == 2)
        },
    );
    let health = &dp["status"]["health"];
    assert_eq!(health["window"], "1m", "{health:#}");
    let names = |list: &str, field: &str| -> Vec<String> {
        health[list]
            .as_array()
            .map(|a| {
                a.iter()
                    .map(|x| x[field].as_str().unwrap_or("").to_owned())
                    .collect()
            })
            .unwrap_or_default()
    };
    assert_eq!(
        names("functions", "name"),
        ["processor", "anomalies"],
        "{health:#}"
    );
    let mut dlqs = names("deadLetterQueues", "name");
    dlqs.sort();
    assert_eq!(dlqs, ["orders-dlq", "run-failures"], "{health:#}");
    assert_eq!(names("workflows", "name"), ["etl"]);
    assert_eq!(names("streamConsumers", "stream"), ["clicks"]);
    assert_eq!(argocd(&ns.0, NAME, "healthy").0, "Healthy");
    phases.done("converged and healthy");

    // An idle converged pipeline: per poll one GetMetricData (13 metrics)
    // and one GetQueueAttributes per dead-letter queue, nothing else, no
    // write, no reconcile.
    one_full_poll(&op);
    let (p0, c0, r0) = (op.health_polls(), op.aws_calls(), op.reconciles());
    op.wait_until("three more polls", Duration::from_secs(30), || {
        op.health_polls() >= p0 + 3
    });
    let (p1, c1, r1) = (op.health_polls(), op.aws_calls(), op.reconciles());
    let polls = p1 - p0;
    let calls = calls_between(&c0, &c1);
    println!("health: {polls} idle polls made {calls:?}");
    assert_eq!(r1, r0, "idle health polls caused a reconcile");
    assert_eq!(
        calls,
        BTreeMap::from([
            ("cloudwatch:GetMetricData (read)".to_owned(), polls),
            ("sqs:GetQueueAttributes (read)".to_owned(), 2 * polls),
        ]),
        "per poll: 1 GetMetricData + 1 GetQueueAttributes per dead-letter queue"
    );
    phases.done("idle polls counted");

    // Dead letters: 3 in the queue's DLQ, 2 failed schedule runs.
    let reconciles = op.reconciles();
    let dp = get_pipeline(&ns.0, NAME);
    let orders_dlq = id_of(&dp, "SQS::Queue", "orders-dlq");
    let run_failures = id_of(&dp, "SQS::Queue", "run-failures");
    for (queue, n) in [(&orders_dlq, 3), (&run_failures, 2)] {
        let url = queue_url(&sqs, queue).await;
        for i in 0..n {
            sqs.send_message()
                .queue_url(&url)
                .message_body(json!({"order": i}).to_string())
                .send()
                .await
                .expect("send");
        }
    }
    one_full_poll(&op);
    let dp = get_pipeline(&ns.0, NAME);
    let healthy = condition(&dp, "Healthy").expect("Healthy");
    let message = healthy["message"].as_str().expect("message");
    assert_eq!(
        healthy["status"], "False",
        "not seen within one poll: {healthy:#}"
    );
    assert_eq!(healthy["reason"], "DeadLetters");
    assert!(
        message.starts_with(&format!(
            "3 messages in DLQ orders-dlq ({orders_dlq}) from queue orders"
        )),
        "{message}"
    );
    assert!(
        message.contains(&format!(
            "2 failed runs in DLQ run-failures ({run_failures}) from schedule nightly"
        )),
        "{message}"
    );
    assert!(message.contains("aws sqs receive-message"), "{message}");
    assert_eq!(
        op.series(&gauge("sluice_pipeline_dead_letter_messages")),
        Some(5.0)
    );
    assert_eq!(op.series(&gauge("sluice_pipeline_healthy")), Some(0.0));
    let unhealthy = events(&ns.0, "Unhealthy");
    assert_eq!(unhealthy.len(), 1, "{unhealthy:#?}");
    assert!(
        unhealthy[0]["message"]
            .as_str()
            .is_some_and(|m| m.contains(&orders_dlq))
    );
    assert_eq!(argocd(&ns.0, NAME, "unhealthy").0, "Degraded");
    prom.wait_for(
        "the DLQ gauge scraped",
        &gauge("sluice_pipeline_dead_letter_messages"),
        Duration::from_secs(15),
        |s| s.first().is_some_and(|x| x["value"][1] == "5"),
    );
    for alert in ["SluiceDeadLetters", "SluicePipelineUnhealthy"] {
        let expr = observability::alerts()
            .into_iter()
            .find(|(a, _)| a == alert)
            .expect("alert")
            .1;
        let series = prom.query(&expr).expect("alert expression");
        assert!(
            series.iter().any(|s| s["metric"]["pipeline"] == NAME),
            "{alert}: {expr} = {series:?}"
        );
        prom.wait_for(
            &format!("{alert} pending"),
            &format!(r#"ALERTS{{alertname="{alert}", alertstate="pending", pipeline="{NAME}"}}"#),
            Duration::from_secs(15),
            |s| !s.is_empty(),
        );
    }

    phases.done("dead letters seen");
    // Drained: healthy again on the next poll.
    for queue in [&orders_dlq, &run_failures] {
        let url = queue_url(&sqs, queue).await;
        sqs.purge_queue()
            .queue_url(&url)
            .send()
            .await
            .expect("purge");
    }
    one_full_poll(&op);
    let dp = get_pipeline(&ns.0, NAME);
    assert_eq!(
        condition(&dp, "Healthy").expect("Healthy")["status"],
        "True",
        "not recovered within one poll: {:#}",
        dp["status"]
    );
    assert_eq!(
        op.series(&gauge("sluice_pipeline_dead_letter_messages")),
        Some(0.0)
    );
    let recovered = events(&ns.0, "Recovered");
    assert_eq!(recovered.len(), 1);
    assert_eq!(
        op.reconciles(),
        reconciles,
        "the health poller's status writes caused a reconcile"
    );
    assert!(
        recovered[0]["message"]
            .as_str()
            .is_some_and(|m| m.starts_with("healthy again after DeadLetters")),
        "{recovered:#?}"
    );

    // CloudWatch: function errors, a failed execution and a stream consumer
    // 15 minutes behind, 40 s ago, so they leave the 1-minute window 20 s
    // from now.
    let processor = id_of(&dp, "Lambda::Function", "processor");
    let anomalies = id_of(&dp, "Lambda::Function", "anomalies");
    let etl = id_of(&dp, "StepFunctions::StateMachine", "etl");
    let at = SystemTime::now() - Duration::from_secs(40);
    for (namespace, data) in [
        (
            "AWS/Lambda",
            vec![
                datum("Invocations", "FunctionName", &processor, 10.0, at),
                datum("Errors", "FunctionName", &processor, 3.0, at),
                datum("IteratorAge", "FunctionName", &anomalies, 900_000.0, at),
            ],
        ),
        (
            "AWS/States",
            vec![datum("ExecutionsFailed", "StateMachineArn", &etl, 2.0, at)],
        ),
    ] {
        cloudwatch
            .put_metric_data()
            .namespace(namespace)
            .set_metric_data(Some(data))
            .send()
            .await
            .expect("put metric data");
    }
    one_full_poll(&op);
    let dp = get_pipeline(&ns.0, NAME);
    let healthy = condition(&dp, "Healthy").expect("Healthy");
    let message = healthy["message"].as_str().expect("message");
    assert_eq!(
        healthy["status"], "False",
        "not seen within one poll: {healthy:#}"
    );
    assert_eq!(healthy["reason"], "ExecutionsFailed", "{message}");
    for part in [
        format!("executions of workflow etl ({etl}) in the last 1m: 2 failed"),
        format!("3 of 10 invocations of function processor ({processor}) failed"),
        format!("function anomalies ({anomalies}) fell over 15m behind stream clicks"),
    ] {
        assert!(message.contains(&part), "{part:?} not in {message}");
    }
    assert_eq!(
        op.series(&gauge("sluice_pipeline_function_error_ratio")),
        Some(0.3)
    );
    assert_eq!(
        op.series(&gauge("sluice_pipeline_failed_executions")),
        Some(2.0)
    );
    assert_eq!(
        op.series(&gauge("sluice_pipeline_iterator_age_seconds")),
        Some(900.0)
    );
    let unhealthy = events(&ns.0, "Unhealthy");
    assert!(
        unhealthy
            .iter()
            .any(|e| e["message"].as_str().is_some_and(|m| m.contains(&etl))),
        "{unhealthy:#?}"
    );
    prom.wait_for(
        "the error ratio scraped",
        &format!(
            "max_over_time({}[1m])",
            gauge("sluice_pipeline_function_error_ratio")
        ),
        Duration::from_secs(15),
        |s| s.first().is_some_and(|x| x["value"][1] == "0.3"),
    );
    // The window moves past them: healthy again, with the figures at zero.
    let dp = wait_healthy(
        &ns.0,
        &op,
        "recovery as the data ages out",
        Duration::from_secs(60),
        |c| c["status"] == "True",
    );
    assert_eq!(dp["status"]["health"]["workflows"][0]["failed"], 0);
    assert_eq!(events(&ns.0, "Recovered").len(), 2);
    phases.done("CloudWatch figures seen and aged out");

    // Events of spec changes and drift name fields, never values.
    kubectl_ok(&[
        "patch",
        "-n",
        &ns.0,
        &format!("dp/{NAME}"),
        "--type=json",
        "-p",
        r#"[{"op":"add","path":"/spec/functions/0/environment","value":{"API_TOKEN":"spec-secret-value"}}]"#,
    ]);
    op.wait_until("generation 2 Ready", Duration::from_secs(60), || {
        let dp = get_pipeline(&ns.0, NAME);
        dp["status"]["observedGeneration"] == 2
            && condition(&dp, "Ready")
                .is_some_and(|c| c["status"] == "True" && c["observedGeneration"] == 2)
    });
    let updated = events(&ns.0, "Updated");
    assert!(
        updated.iter().any(|e| e["message"]
            .as_str()
            .is_some_and(|m| m.contains(&processor) && m.contains("environment"))),
        "{updated:#?}"
    );
    lambda
        .update_function_configuration()
        .function_name(&processor)
        .environment(
            aws_sdk_lambda::types::Environment::builder()
                .variables("API_TOKEN", "out-of-band-secret")
                .build(),
        )
        .send()
        .await
        .expect("drift");
    poke_and_wait(&ns.0, NAME, &op);
    op.wait_until("a DriftCorrected event", Duration::from_secs(30), || {
        !events(&ns.0, "DriftCorrected").is_empty()
    });
    let drift = events(&ns.0, "DriftCorrected");
    assert!(
        drift[0]["message"].as_str().is_some_and(|m| m
            == format!("Lambda::Function {processor}: environment changed outside Sluice; set back to the spec")),
        "{drift:#?}"
    );
    assert!(
        op.series(r#"sluice_drift_corrections_total{kind="Lambda::Function"}"#)
            .is_some_and(|n| n >= 1.0)
    );
    let all_events = kubectl_ok(&["get", "events", "-n", &ns.0, "-o", "json"]);
    for secret in ["spec-secret-value", "out-of-band-secret"] {
        assert!(!all_events.contains(secret), "an event carries {secret}");
    }

    phases.done("update and drift events");
    // A stalled pipeline: one InvalidSpec event however often it is seen.
    apply_and_wait(&ns.0, BROKEN, &broken_manifest(), "Stalled", &op);
    assert_eq!(argocd(&ns.0, BROKEN, "stalled").0, "Degraded");
    poke_and_wait(&ns.0, BROKEN, &op);
    let invalid = events(&ns.0, "InvalidSpec");
    assert_eq!(invalid.len(), 1, "{invalid:#?}");
    assert!(
        invalid[0]["series"].is_null(),
        "published again: {invalid:#?}"
    );
    prom.wait_for(
        "the broken pipeline's readiness scraped",
        &format!(r#"sluice_pipeline_ready{{pipeline="{BROKEN}"}}"#),
        Duration::from_secs(15),
        |s| s.first().is_some_and(|x| x["value"][1] == "0"),
    );
    let not_ready = observability::alerts()
        .into_iter()
        .find(|(a, _)| a == "SluicePipelineNotReady")
        .expect("alert")
        .1;
    assert!(
        prom.query(&not_ready)
            .expect("not-ready expression")
            .iter()
            .any(|s| s["metric"]["pipeline"] == BROKEN)
    );

    phases.done("stalled pipeline");
    // Every dashboard query returns series from this Prometheus, and every
    // alert expression parses and reads only metrics the operator exports.
    let range = format!("{}s", (unix_now() - started).ceil() as u64 + 1);
    let vars = [
        ("namespace", ns.0.as_str()),
        ("pipeline", NAME),
        ("job", "sluice-operator"),
        ("__rate_interval", "15s"),
        ("__range", range.as_str()),
    ];
    let mut failures = Vec::new();
    let queries = observability::dashboard_queries();
    for q in &queries {
        let expr = observability::substitute(&q.expr, &vars);
        match prom.query(&expr) {
            Ok(series) if !series.is_empty() => {}
            Ok(_) => failures.push(format!(
                "{} / {}: no series for {expr}",
                q.dashboard, q.title
            )),
            Err(e) => failures.push(format!("{} / {}: {e} in {expr}", q.dashboard, q.title)),
        }
    }
    let alerts = observability::alerts();
    for (alert, expr) in &alerts {
        if let Err(e) = prom.query(expr) {
            failures.push(format!("{alert}: {e}"));
        }
        for metric in observability::metric_names(expr) {
            let exported = prom
                .query(&format!("count({{__name__=\"{metric}\"}})"))
                .unwrap_or_default();
            if exported.is_empty() {
                failures.push(format!("{alert}: no series of {metric}"));
            }
        }
    }
    assert!(failures.is_empty(), "{failures:#?}");
    println!(
        "observability: {} dashboard queries and {} alert expressions evaluated",
        queries.len(),
        alerts.len()
    );

    // The exposition follows Prometheus's naming conventions.
    let (_, metrics) = op.get("/metrics").expect("metrics");
    println!(
        "observability: the operator exposes {} series",
        metrics
            .lines()
            .filter(|l| !l.starts_with('#') && !l.is_empty())
            .count()
    );
    let lint = promtool_check_metrics(&metrics);
    assert!(lint.is_empty(), "promtool check metrics: {lint}");

    if let Ok(path) = std::env::var("SLUICE_DASHBOARD_DATA") {
        let end = unix_now();
        let mut panels = serde_json::Map::new();
        for q in &queries {
            let expr = observability::substitute(&q.expr, &vars);
            let series = prom
                .query_range(&expr, started, end, 2.0)
                .unwrap_or_default();
            panels.insert(q.key(), Value::Array(series));
        }
        let doc = json!({
            "variables_note": format!("namespace={} pipeline={NAME}, e2e run of {:.0} s", ns.0, end - started),
            "panels": panels,
        });
        std::fs::write(&path, serde_json::to_string(&doc).expect("JSON")).expect("dashboard data");
        println!("dashboard data written to {path}");
    }

    phases.done("dashboards and alerts evaluated");
    // The operator stops: Prometheus says so.
    let admin = op.admin_target();
    drop(op);
    let down = alerts
        .iter()
        .find(|(a, _)| a == "SluiceOperatorDown")
        .expect("alert")
        .1
        .clone();
    prom.wait_for(
        "the operator seen down",
        &down,
        Duration::from_secs(20),
        |s| !s.is_empty(),
    );
    println!("operator on {admin} stopped; {down} returned a series");

    // A new generation while the operator is away: Ready is still True, for
    // generation 2, and `kubectl wait` does not take it for generation 3.
    kubectl_ok(&[
        "patch",
        "-n",
        &ns.0,
        &format!("dp/{NAME}"),
        "--type=json",
        "-p",
        r#"[{"op":"replace","path":"/spec/functions/1/memoryMiB","value":256}]"#,
    ]);
    let dp = get_pipeline(&ns.0, NAME);
    assert_eq!(dp["metadata"]["generation"], 3);
    assert_eq!(condition(&dp, "Ready").expect("Ready")["status"], "True");
    let stale = kubectl(&[
        "wait",
        "-n",
        &ns.0,
        "--for=condition=Ready",
        &format!("dp/{NAME}"),
        "--timeout=5s",
    ]);
    assert!(
        !stale.status.success(),
        "kubectl wait returned on generation 2's Ready: {}",
        String::from_utf8_lossy(&stale.stdout)
    );
    assert!(
        String::from_utf8_lossy(&stale.stderr).contains("timed out"),
        "kubectl wait failed otherwise: {}",
        String::from_utf8_lossy(&stale.stderr)
    );
    assert_eq!(
        argocd(&ns.0, NAME, "stale-generation"),
        (
            "Progressing".to_owned(),
            "Sluice has not yet reconciled generation 3".to_owned()
        )
    );

    phases.done("operator down, stale generation");
    // Back: it converges generation 3 and `kubectl wait` returns.
    let op = Operator::start_with(&[&ns.0], &env);
    let wait = kubectl(&[
        "wait",
        "-n",
        &ns.0,
        "--for=condition=Ready",
        &format!("dp/{NAME}"),
        "--timeout=120s",
    ]);
    assert!(wait.status.success(), "{}", op.log_tail());
    let dp = get_pipeline(&ns.0, NAME);
    assert_eq!(dp["status"]["observedGeneration"], 3);

    phases.done("operator back, generation 3 Ready");
    // Suspended: health says so once and polling stops.
    kubectl_ok(&[
        "patch",
        "-n",
        &ns.0,
        &format!("dp/{NAME}"),
        "--type=merge",
        "-p",
        r#"{"spec":{"suspend":true}}"#,
    ]);
    wait_healthy(
        &ns.0,
        &op,
        "Healthy Unknown (Suspended)",
        Duration::from_secs(30),
        |c| c["status"] == "Unknown" && c["reason"] == "Suspended",
    );
    assert_eq!(argocd(&ns.0, NAME, "suspended").0, "Suspended");
    let polls = op.health_polls();
    // Nothing to wait for: polling has stopped, so time passes with no poll.
    std::thread::sleep(Duration::from_secs(5));
    assert_eq!(op.health_polls(), polls, "a suspended pipeline was polled");
    assert_eq!(op.series(&gauge("sluice_pipeline_healthy")), None);
    assert_eq!(
        op.series(&gauge("sluice_pipeline_ready")),
        None,
        "suspended: no readiness series"
    );

    // Deleted: every series of the pipeline goes.
    delete_pipeline(&ns.0, NAME, &op);
    delete_pipeline(&ns.0, BROKEN, &op);
    op.wait_until(
        "the pipelines' series removed",
        Duration::from_secs(10),
        || {
            let (_, body) = op.get("/metrics").expect("metrics");
            !body.contains(&format!(r#"namespace="{}""#, ns.0))
        },
    );
    assert_nothing_left(&sdk, &op.prefix).await;
    let _ = std::fs::remove_dir_all(&rules_dir);
    phases.done("suspended and deleted");
}

/// `promtool check metrics` on an exposition: its complaints, empty when
/// there are none.
fn promtool_check_metrics(exposition: &str) -> String {
    use std::io::Write;
    let mut child = std::process::Command::new(tool("SLUICE_PROMTOOL", "promtool"))
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("promtool runs");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(exposition.as_bytes())
        .expect("write");
    let out = child.wait_with_output().expect("promtool");
    if out.status.success() {
        String::new()
    } else {
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    }
}
