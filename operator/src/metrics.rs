//! Prometheus metrics of the operator itself. Labels are small fixed sets
//! (never pipeline names) so the series count stays bounded.

use std::sync::Arc;

use prometheus::{Encoder, Histogram, HistogramOpts, IntCounterVec, Opts, Registry, TextEncoder};

use crate::aws::ErrorClass;

/// The operator's metrics, cheap to clone.
#[derive(Clone, Debug)]
pub struct Metrics(Arc<Inner>);

#[derive(Debug)]
struct Inner {
    registry: Registry,
    reconciles: IntCounterVec,
    failures: IntCounterVec,
    duration: Histogram,
    aws_calls: IntCounterVec,
    aws_errors: IntCounterVec,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// Registers every metric in a fresh registry.
    #[allow(clippy::expect_used)] // metric definitions are static and valid
    pub fn new() -> Self {
        let registry = Registry::new();
        let reconciles = IntCounterVec::new(
            Opts::new("sluice_reconciles_total", "Reconciles by outcome"),
            &["outcome"],
        )
        .expect("valid metric");
        let failures = IntCounterVec::new(
            Opts::new(
                "sluice_reconcile_errors_total",
                "Failed reconciles by error category",
            ),
            &["error"],
        )
        .expect("valid metric");
        let duration = Histogram::with_opts(
            HistogramOpts::new(
                "sluice_reconcile_duration_seconds",
                "Duration of one reconcile",
            )
            .buckets(vec![0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0]),
        )
        .expect("valid metric");
        let aws_calls = IntCounterVec::new(
            Opts::new(
                "sluice_aws_requests_total",
                "AWS API calls by service, operation and access",
            ),
            &["service", "operation", "access"],
        )
        .expect("valid metric");
        let aws_errors = IntCounterVec::new(
            Opts::new(
                "sluice_aws_errors_total",
                "Failed AWS API calls by service, operation and class",
            ),
            &["service", "operation", "class"],
        )
        .expect("valid metric");
        for m in [&reconciles, &failures, &aws_calls, &aws_errors] {
            registry
                .register(Box::new(m.clone()))
                .expect("unique metric");
        }
        registry
            .register(Box::new(duration.clone()))
            .expect("unique metric");
        Metrics(Arc::new(Inner {
            registry,
            reconciles,
            failures,
            duration,
            aws_calls,
            aws_errors,
        }))
    }

    /// Counts one AWS call.
    pub fn aws_call(&self, service: &str, operation: &str, read: bool) {
        let access = if read { "read" } else { "write" };
        self.0
            .aws_calls
            .with_label_values(&[service, operation, access])
            .inc();
    }

    /// Counts one failed AWS call.
    pub fn aws_error(&self, service: &str, operation: &str, class: ErrorClass) {
        let class = match class {
            ErrorClass::Throttled => "throttled",
            ErrorClass::Transient => "transient",
            ErrorClass::Client => "client",
        };
        self.0
            .aws_errors
            .with_label_values(&[service, operation, class])
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
        self.0.duration.observe(seconds);
    }

    /// Records a failed reconcile.
    pub fn failed(&self, error: &str) {
        self.0.failures.with_label_values(&[error]).inc();
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
        m.aws_call("lambda", "GetFunction", true);
        m.aws_call("lambda", "GetFunction", true);
        m.aws_call("lambda", "UpdateFunctionConfiguration", false);
        assert_eq!(m.aws_totals(), (2, 1));
        let text = m.render();
        assert!(text.contains(r#"sluice_aws_requests_total{access="write",operation="UpdateFunctionConfiguration",service="lambda"} 1"#), "{text}");
    }
}
