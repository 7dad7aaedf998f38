//! Prometheus metrics of the operator. Every label set is bounded and listed
//! in the README: outcomes, error categories, AWS services and operations
//! and resource kinds are small fixed sets; only the per-pipeline gauges
//! carry `namespace` and `pipeline` (one series each per pipeline, removed
//! when the pipeline is deleted), and nothing carries an AWS resource name.

use std::{collections::BTreeMap, sync::Arc};

use prometheus::{
    Encoder, GaugeVec, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge,
    IntGaugeVec, Opts, Registry, TextEncoder,
};

/// The operator's metrics, cheap to clone.
#[derive(Clone, Debug)]
pub struct Metrics(Arc<Inner>);

#[derive(Debug)]
struct Inner {
    registry: Registry,
    reconciles: IntCounterVec,
    failures: IntCounterVec,
    duration: HistogramVec,
    aws_calls: IntCounterVec,
    aws_errors: IntCounterVec,
    aws_duration: HistogramVec,
    drift: IntCounterVec,
    kube_writes: IntCounterVec,
    time_to_ready: Histogram,
    pipelines: IntGaugeVec,
    health_polls: IntCounterVec,
    health_duration: Histogram,
    pipeline_ready: IntGaugeVec,
    pipeline_healthy: IntGaugeVec,
    dead_letters: GaugeVec,
    error_ratio: GaugeVec,
    failed_executions: GaugeVec,
    iterator_age: GaugeVec,
    leader: IntGauge,
    leader_transitions: IntCounterVec,
    fenced_writes: IntCounter,
    resync_period: GaugeVec,
    shards_held: IntGauge,
    quota_part: GaugeVec,
}

/// What one health poll measured for one pipeline, for its gauges.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct HealthGauges {
    /// Messages waiting in the pipeline's dead-letter queues, summed.
    pub dead_letter_messages: f64,
    /// The highest error ratio (errors / invocations) of its functions over
    /// the health window.
    pub function_error_ratio: f64,
    /// Failed, timed-out and aborted workflow executions over the window.
    pub failed_executions: f64,
    /// The oldest stream consumer's iterator age, in seconds.
    pub iterator_age_seconds: f64,
}

/// Outcomes of `sluice_reconciles_total` (the controller's).
pub const OUTCOMES: [&str; 8] = [
    "ready",
    "waiting",
    "stalled",
    "error",
    "suspended",
    "deleted",
    "finalizer",
    "resumed",
];

/// Categories of `sluice_reconcile_errors_total` ([`crate::Error::metric_label`]).
pub const ERROR_CATEGORIES: [&str; 13] = [
    "invalid_spec",
    "policy_violation",
    "account",
    "aws_session",
    "conflict",
    "waiting",
    "aws_throttled",
    "aws_transient",
    "aws_client",
    "kube",
    "artifact",
    "finalizer",
    "not_leader",
];

const ERROR_CLASSES: [&str; 3] = ["throttled", "transient", "client"];

/// What `sluice_kubernetes_writes_total` counts: the reconciler's status
/// patches, the health poller's, events, and finalizer patches.
pub const KUBE_WRITES: [&str; 4] = ["status", "health_status", "event", "finalizer"];

/// Transitions of `sluice_leader_transitions_total`: this replica became
/// the leader, stopped leading because it could not renew (or saw another
/// holder), or released the Lease on shutdown.
pub const LEADER_TRANSITIONS: [&str; 3] = ["acquired", "lost", "released"];

/// Condition types counted by `sluice_pipelines`.
pub const CENSUS_CONDITIONS: [&str; 4] = ["Ready", "Reconciling", "Stalled", "Healthy"];

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

const PIPELINE_LABELS: [&str; 2] = ["namespace", "pipeline"];

impl Metrics {
    /// Registers every metric in a fresh registry.
    #[allow(clippy::expect_used)] // metric definitions are static and valid
    pub fn new() -> Self {
        let registry = Registry::new();
        let counter = |name: &str, help: &str, labels: &[&str]| {
            let c = IntCounterVec::new(Opts::new(name, help), labels).expect("valid metric");
            registry
                .register(Box::new(c.clone()))
                .expect("unique metric");
            c
        };
        let histogram = |name: &str, help: &str, labels: &[&str], buckets: Vec<f64>| {
            let h = HistogramVec::new(HistogramOpts::new(name, help).buckets(buckets), labels)
                .expect("valid metric");
            registry
                .register(Box::new(h.clone()))
                .expect("unique metric");
            h
        };
        let plain_histogram = |name: &str, help: &str, buckets: Vec<f64>| {
            let h = Histogram::with_opts(HistogramOpts::new(name, help).buckets(buckets))
                .expect("valid metric");
            registry
                .register(Box::new(h.clone()))
                .expect("unique metric");
            h
        };
        let int_gauge = |name: &str, help: &str, labels: &[&str]| {
            let g = IntGaugeVec::new(Opts::new(name, help), labels).expect("valid metric");
            registry
                .register(Box::new(g.clone()))
                .expect("unique metric");
            g
        };
        let gauge = |name: &str, help: &str| {
            let g = GaugeVec::new(Opts::new(name, help), &PIPELINE_LABELS).expect("valid metric");
            registry
                .register(Box::new(g.clone()))
                .expect("unique metric");
            g
        };
        let reconciles = counter(
            "sluice_reconciles_total",
            "Reconciles by outcome (ready, waiting, stalled, error, suspended, deleted, finalizer)",
            &["outcome"],
        );
        let failures = counter(
            "sluice_reconcile_errors_total",
            "Failed reconciles by error category",
            &["error"],
        );
        let duration = histogram(
            "sluice_reconcile_duration_seconds",
            "Duration of one reconcile, by outcome",
            &["outcome"],
            // Up to 5 minutes: a reconcile of a large fleet waits its turn
            // at AWS's quotas for tens of seconds.
            vec![
                0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0,
            ],
        );
        let aws_calls = counter(
            "sluice_aws_requests_total",
            "AWS API calls by account, service, operation and access (read or write)",
            &["account", "service", "operation", "access"],
        );
        let aws_errors = counter(
            "sluice_aws_errors_total",
            "Failed AWS API calls by account, service, operation and class (throttled, transient, client)",
            &["account", "service", "operation", "class"],
        );
        let aws_duration = histogram(
            "sluice_aws_request_duration_seconds",
            "Latency of AWS API calls (after the client-side rate limit), by service and operation",
            &["service", "operation"],
            vec![
                0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
            ],
        );
        let drift = counter(
            "sluice_drift_corrections_total",
            "AWS resources changed out of band and set back, by resource kind",
            &["kind"],
        );
        let kube_writes = counter(
            "sluice_kubernetes_writes_total",
            "Writes to the Kubernetes API, by what was written (status, health_status, event, finalizer)",
            &["kind"],
        );
        for kind in KUBE_WRITES {
            kube_writes.with_label_values(&[kind]);
        }
        let time_to_ready = plain_histogram(
            "sluice_time_to_ready_seconds",
            "Time from a new generation of a pipeline (its creation, or the operator first \
             seeing the change) to Ready for that generation",
            vec![
                1.0, 2.0, 5.0, 10.0, 20.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0,
            ],
        );
        let pipelines = int_gauge(
            "sluice_pipelines",
            "Pipelines by condition type and status",
            &["condition", "status"],
        );
        let health_polls = counter(
            "sluice_health_polls_total",
            "Runtime health polls of pipelines, by outcome (ok, error)",
            &["outcome"],
        );
        let health_duration = plain_histogram(
            "sluice_health_poll_duration_seconds",
            "Duration of one pipeline's runtime health poll",
            vec![0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0],
        );
        let pipeline_ready = int_gauge(
            "sluice_pipeline_ready",
            "1 when the pipeline's Ready condition is True for its current generation, else 0",
            &PIPELINE_LABELS,
        );
        let pipeline_healthy = int_gauge(
            "sluice_pipeline_healthy",
            "1 when the pipeline's Healthy condition is True, 0 when False (absent when unknown)",
            &PIPELINE_LABELS,
        );
        let dead_letters = gauge(
            "sluice_pipeline_dead_letter_messages",
            "Messages waiting in the pipeline's dead-letter queues",
        );
        let error_ratio = gauge(
            "sluice_pipeline_function_error_ratio",
            "Highest errors / invocations ratio of the pipeline's functions over the health window",
        );
        let failed_executions = gauge(
            "sluice_pipeline_failed_executions",
            "Failed, timed-out and aborted workflow executions of the pipeline over the health window",
        );
        let iterator_age = gauge(
            "sluice_pipeline_iterator_age_seconds",
            "Highest iterator age of the pipeline's stream consumers over the health window",
        );
        let leader = IntGauge::new(
            "sluice_leader",
            "1 while this replica is the leader (holds the Lease and runs the controller and \
             the health poller), else 0; always 1 with SLUICE_LEADER_ELECTION=false",
        )
        .expect("valid metric");
        registry
            .register(Box::new(leader.clone()))
            .expect("unique metric");
        let leader_transitions = counter(
            "sluice_leader_transitions_total",
            "Leadership transitions of this replica (acquired, lost, released)",
            &["transition"],
        );
        for transition in LEADER_TRANSITIONS {
            leader_transitions.with_label_values(&[transition]);
        }
        let fenced_writes = IntCounter::new(
            "sluice_leader_fenced_writes_total",
            "AWS writes refused, unsent, because this replica was not the leader (its Lease \
             not renewed within the renew deadline)",
        )
        .expect("valid metric");
        registry
            .register(Box::new(fenced_writes.clone()))
            .expect("unique metric");
        let resync_period = GaugeVec::new(
            Opts::new(
                "sluice_resync_period_seconds",
                "Effective drift-detection period of an account and region: the configured one, \
                 or longer where one pass of its pipelines needs more than the resync share of a \
                 quota bucket (crate::pacing)",
            ),
            &["account", "region"],
        )
        .expect("valid metric");
        registry
            .register(Box::new(resync_period.clone()))
            .expect("unique metric");
        let shards_held = IntGauge::new(
            "sluice_shards_held",
            "Shards this replica holds (SLUICE_SHARDS > 1: it reconciles their pipelines); \
             with one shard, 1 while it leads",
        )
        .expect("valid metric");
        registry
            .register(Box::new(shards_held.clone()))
            .expect("unique metric");
        let quota_part = GaugeVec::new(
            Opts::new(
                "sluice_aws_quota_part",
                "Part of an account and region's AWS quotas this replica uses, of \
                 SLUICE_AWS_QUOTA_SHARE: with shards, its part of the account's pipelines \
                 (crate::shards::quota); the replicas' parts add up to 1",
            ),
            &["account", "region"],
        )
        .expect("valid metric");
        registry
            .register(Box::new(quota_part.clone()))
            .expect("unique metric");
        // Every known label value starts at 0, so the series exist before
        // the first event and `rate()` sees the first increment.
        for outcome in OUTCOMES {
            reconciles.with_label_values(&[outcome]);
        }
        for category in ERROR_CATEGORIES {
            failures.with_label_values(&[category]);
        }
        for kind in crate::plan::Kind::APPLY_ORDER {
            drift.with_label_values(&[kind.as_str()]);
        }
        for outcome in ["ok", "error"] {
            health_polls.with_label_values(&[outcome]);
        }
        Metrics(Arc::new(Inner {
            registry,
            reconciles,
            failures,
            duration,
            aws_calls,
            aws_errors,
            aws_duration,
            drift,
            kube_writes,
            time_to_ready,
            pipelines,
            health_polls,
            health_duration,
            pipeline_ready,
            pipeline_healthy,
            dead_letters,
            error_ratio,
            failed_executions,
            iterator_age,
            leader,
            leader_transitions,
            fenced_writes,
            resync_period,
            shards_held,
            quota_part,
        }))
    }

    /// Sets `sluice_shards_held`.
    pub fn shards_held(&self, n: usize) {
        self.0.shards_held.set(i64::try_from(n).unwrap_or(i64::MAX));
    }

    /// Sets `sluice_aws_quota_part` of every account and region counted,
    /// and drops those no longer counted.
    pub fn quota_parts(&self, parts: &std::collections::HashMap<(String, String), f64>) {
        self.0.quota_part.reset();
        for ((account, region), part) in parts {
            self.0
                .quota_part
                .with_label_values(&[account.as_str(), region.as_str()])
                .set(*part);
        }
    }

    /// Sets `sluice_resync_period_seconds` of an account and region.
    pub fn resync_period(&self, account: &str, region: &str, seconds: f64) {
        self.0
            .resync_period
            .with_label_values(&[account, region])
            .set(seconds);
    }

    /// Sets `sluice_leader`.
    pub fn set_leader(&self, leading: bool) {
        self.0.leader.set(i64::from(leading));
        // With one shard, leading is holding it (sharded replicas set the
        // count after this).
        self.0.shards_held.set(i64::from(leading));
    }

    /// Counts one leadership transition of [`LEADER_TRANSITIONS`].
    pub fn leader_transition(&self, transition: &'static str) {
        self.0
            .leader_transitions
            .with_label_values(&[transition])
            .inc();
    }

    /// Counts one AWS write refused because this replica is not the leader.
    pub fn fenced_write(&self) {
        self.0.fenced_writes.inc();
    }

    /// Drops what only the leader measures (the census and the per-pipeline
    /// gauges), so a replica that stopped leading does not go on exporting
    /// its last figures beside the new leader's.
    pub fn standby(&self) {
        self.0.pipelines.reset();
        self.0.pipeline_ready.reset();
        self.0.pipeline_healthy.reset();
        for gauge in [
            &self.0.dead_letters,
            &self.0.error_ratio,
            &self.0.failed_executions,
            &self.0.iterator_age,
        ] {
            gauge.reset();
        }
    }

    /// Counts one AWS call (and starts its error series at 0).
    pub fn aws_call(&self, account: &str, service: &str, operation: &str, read: bool) {
        let access = if read { "read" } else { "write" };
        self.0
            .aws_calls
            .with_label_values(&[account, service, operation, access])
            .inc();
        for class in ERROR_CLASSES {
            self.0
                .aws_errors
                .with_label_values(&[account, service, operation, class]);
        }
    }

    /// Records how long one AWS call took.
    pub fn aws_latency(&self, service: &str, operation: &str, seconds: f64) {
        self.0
            .aws_duration
            .with_label_values(&[service, operation])
            .observe(seconds);
    }

    /// Counts one failed AWS call; `class` is its error class's label
    /// (`throttled`, `transient`, `client`).
    pub fn aws_error(&self, account: &str, service: &str, operation: &str, class: &str) {
        self.0
            .aws_errors
            .with_label_values(&[account, service, operation, class])
            .inc();
    }

    /// Total AWS calls so far, `(reads, writes)`.
    pub fn aws_totals(&self) -> (u64, u64) {
        let mut reads = 0;
        let mut writes = 0;
        for family in self.0.registry.gather() {
            if family.name() != "sluice_aws_requests_total" {
                continue;
            }
            for m in family.get_metric() {
                let is_read = m
                    .get_label()
                    .iter()
                    .any(|l| l.name() == "access" && l.value() == "read");
                let v = m.get_counter().get_value() as u64;
                if is_read { reads += v } else { writes += v }
            }
        }
        (reads, writes)
    }

    /// Records a finished reconcile.
    pub fn reconciled(&self, outcome: &str, seconds: f64) {
        self.0.reconciles.with_label_values(&[outcome]).inc();
        self.0
            .duration
            .with_label_values(&[outcome])
            .observe(seconds);
    }

    /// Records a failed reconcile.
    pub fn failed(&self, error: &str) {
        self.0.failures.with_label_values(&[error]).inc();
    }

    /// Counts one drift correction of a resource kind.
    pub fn kube_write(&self, kind: &'static str) {
        self.0.kube_writes.with_label_values(&[kind]).inc();
    }

    /// Counts one drift correction.
    pub fn drift_corrected(&self, kind: &str) {
        self.0.drift.with_label_values(&[kind]).inc();
    }

    /// Records the time a generation took to become Ready.
    pub fn time_to_ready(&self, seconds: f64) {
        self.0.time_to_ready.observe(seconds);
    }

    /// Sets `sluice_pipelines` to a fresh count of `(condition, status)`;
    /// every condition of [`CENSUS_CONDITIONS`] is present with every
    /// status, so a count that drops to zero reads 0 rather than vanishing.
    pub fn census(&self, counts: &BTreeMap<(String, String), i64>) {
        for condition in CENSUS_CONDITIONS {
            for status in ["True", "False", "Unknown"] {
                let n = counts
                    .get(&(condition.to_owned(), status.to_owned()))
                    .copied()
                    .unwrap_or(0);
                self.0
                    .pipelines
                    .with_label_values(&[condition, status])
                    .set(n);
            }
        }
    }

    /// Records one health poll.
    pub fn health_polled(&self, ok: bool, seconds: f64) {
        let outcome = if ok { "ok" } else { "error" };
        self.0.health_polls.with_label_values(&[outcome]).inc();
        self.0.health_duration.observe(seconds);
    }

    /// Health polls so far, of either outcome.
    pub fn health_polls(&self) -> u64 {
        ["ok", "error"]
            .iter()
            .map(|o| self.0.health_polls.with_label_values(&[*o]).get())
            .sum()
    }

    /// Sets whether a pipeline is Ready.
    pub fn pipeline_ready(&self, namespace: &str, pipeline: &str, ready: bool) {
        self.0
            .pipeline_ready
            .with_label_values(&[namespace, pipeline])
            .set(i64::from(ready));
    }

    /// Removes a pipeline's readiness series (it is suspended: not Ready on
    /// purpose).
    pub fn forget_pipeline_ready(&self, namespace: &str, pipeline: &str) {
        let _ = self
            .0
            .pipeline_ready
            .remove_label_values(&[namespace, pipeline]);
    }

    /// Sets a pipeline's health gauges; `healthy` is `None` while unknown.
    pub fn pipeline_health(
        &self,
        namespace: &str,
        pipeline: &str,
        healthy: Option<bool>,
        gauges: Option<&HealthGauges>,
    ) {
        let labels = [namespace, pipeline];
        match healthy {
            Some(h) => self
                .0
                .pipeline_healthy
                .with_label_values(&labels)
                .set(i64::from(h)),
            None => {
                let _ = self.0.pipeline_healthy.remove_label_values(&labels);
            }
        }
        let gauges_of = [
            &self.0.dead_letters,
            &self.0.error_ratio,
            &self.0.failed_executions,
            &self.0.iterator_age,
        ];
        match gauges {
            Some(g) => {
                let values = [
                    g.dead_letter_messages,
                    g.function_error_ratio,
                    g.failed_executions,
                    g.iterator_age_seconds,
                ];
                for (gauge, value) in gauges_of.iter().zip(values) {
                    gauge.with_label_values(&labels).set(value);
                }
            }
            None => {
                for gauge in gauges_of {
                    let _ = gauge.remove_label_values(&labels);
                }
            }
        }
    }

    /// Removes every series of a pipeline (it was deleted).
    pub fn forget_pipeline(&self, namespace: &str, pipeline: &str) {
        self.forget_pipeline_ready(namespace, pipeline);
        self.pipeline_health(namespace, pipeline, None, None);
    }

    /// The text exposition of every metric.
    pub fn render(&self) -> String {
        let mut buf = Vec::new();
        let encoder = TextEncoder::new();
        if encoder.encode(&self.0.registry.gather(), &mut buf).is_err() {
            return String::new();
        }
        String::from_utf8(buf).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_reads_and_writes_apart() {
        let m = Metrics::new();
        m.aws_call("111122223333", "lambda", "GetFunction", true);
        m.aws_call("444455556666", "lambda", "GetFunction", true);
        m.aws_call(
            "111122223333",
            "lambda",
            "UpdateFunctionConfiguration",
            false,
        );
        assert_eq!(m.aws_totals(), (2, 1));
        let text = m.render();
        assert!(text.contains(r#"sluice_aws_requests_total{access="write",account="111122223333",operation="UpdateFunctionConfiguration",service="lambda"} 1"#), "{text}");
        assert!(text.contains(r#"sluice_aws_requests_total{access="read",account="444455556666",operation="GetFunction",service="lambda"} 1"#), "{text}");
    }

    #[test]
    fn reconcile_duration_and_aws_latency_carry_their_labels() {
        let m = Metrics::new();
        m.reconciled("stalled", 0.2);
        m.aws_latency("sqs", "GetQueueAttributes", 0.02);
        let text = m.render();
        assert!(
            text.contains(r#"sluice_reconcile_duration_seconds_count{outcome="stalled"} 1"#),
            "{text}"
        );
        assert!(
            text.contains(r#"sluice_reconciles_total{outcome="stalled"} 1"#),
            "{text}"
        );
        assert!(
            text.contains(r#"sluice_aws_request_duration_seconds_bucket{operation="GetQueueAttributes",service="sqs",le="0.025"} 1"#),
            "{text}"
        );
    }

    #[test]
    fn error_series_exist_at_zero_before_the_first_error() {
        let m = Metrics::new();
        m.aws_call("111122223333", "sqs", "GetQueueAttributes", true);
        let text = m.render();
        assert!(
            text.contains(r#"sluice_aws_errors_total{account="111122223333",class="throttled",operation="GetQueueAttributes",service="sqs"} 0"#),
            "{text}"
        );
        assert!(text.contains(r#"sluice_reconcile_errors_total{error="aws_throttled"} 0"#));
        assert!(text.contains(r#"sluice_drift_corrections_total{kind="Lambda::Function"} 0"#));
        assert!(text.contains(r#"sluice_reconciles_total{outcome="error"} 0"#));
    }

    #[test]
    fn the_census_reports_zero_for_statuses_no_pipeline_has() {
        let m = Metrics::new();
        let counts = BTreeMap::from([(("Ready".to_owned(), "True".to_owned()), 3)]);
        m.census(&counts);
        let text = m.render();
        assert!(
            text.contains(r#"sluice_pipelines{condition="Ready",status="True"} 3"#),
            "{text}"
        );
        assert!(
            text.contains(r#"sluice_pipelines{condition="Healthy",status="False"} 0"#),
            "{text}"
        );
        m.census(&BTreeMap::new());
        assert!(
            m.render()
                .contains(r#"sluice_pipelines{condition="Ready",status="True"} 0"#)
        );
    }

    #[test]
    fn leadership_is_exported_and_a_standby_drops_the_leaders_figures() {
        let m = Metrics::new();
        let text = m.render();
        assert!(text.contains("sluice_leader 0"), "{text}");
        assert!(
            text.contains(r#"sluice_leader_transitions_total{transition="lost"} 0"#),
            "{text}"
        );
        assert!(
            text.contains("sluice_leader_fenced_writes_total 0"),
            "{text}"
        );
        m.set_leader(true);
        m.leader_transition("acquired");
        m.fenced_write();
        m.pipeline_ready("ns", "p", true);
        m.census(&BTreeMap::new());
        let text = m.render();
        assert!(text.contains("sluice_leader 1"), "{text}");
        assert!(
            text.contains(r#"sluice_leader_transitions_total{transition="acquired"} 1"#),
            "{text}"
        );
        assert!(
            text.contains("sluice_leader_fenced_writes_total 1"),
            "{text}"
        );
        m.standby();
        let text = m.render();
        assert!(!text.contains(r#"pipeline="p""#), "{text}");
        assert!(!text.contains("sluice_pipelines{"), "{text}");
    }

    #[test]
    fn a_deleted_pipeline_leaves_no_series() {
        let m = Metrics::new();
        m.pipeline_ready("ns", "p", true);
        m.pipeline_health(
            "ns",
            "p",
            Some(false),
            Some(&HealthGauges {
                dead_letter_messages: 3.0,
                ..Default::default()
            }),
        );
        let text = m.render();
        assert!(
            text.contains(r#"sluice_pipeline_dead_letter_messages{namespace="ns",pipeline="p"} 3"#),
            "{text}"
        );
        assert!(
            text.contains(r#"sluice_pipeline_healthy{namespace="ns",pipeline="p"} 0"#),
            "{text}"
        );
        m.forget_pipeline("ns", "p");
        let text = m.render();
        assert!(!text.contains(r#"pipeline="p""#), "{text}");
    }
}
