//! Runtime health: the thresholds a pipeline sets (`spec.health`) and the
//! coarse figures the operator reports (`status.health`). The figures cover
//! a window (`status.health.window`, the operator's
//! `SLUICE_HEALTH_WINDOW_SECONDS`) and are rounded so that status changes
//! when the pipeline does, not on every poll.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Thresholds of the `Healthy` condition. A figure above its threshold over
/// the health window makes the pipeline unhealthy.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct HealthSpec {
    /// Dead letters tolerated: messages waiting in a dead-letter queue
    /// (a queue's `deadLetter`, an `onFailure` destination or a schedule's
    /// `deadLetter` queue), or received from one by its handler within the
    /// window. Default 0: any dead letter is worth a look.
    #[serde(default)]
    #[schemars(range(min = 0, max = 1000000))]
    pub max_dead_letters: i64,

    /// Highest tolerated percentage of a function's invocations that end in
    /// an error, over the window (0 to 100, default 5).
    #[serde(default = "default_error_percent")]
    #[schemars(range(min = 0, max = 100))]
    pub max_function_error_percent: i32,

    /// Highest tolerated percentage of a function's invocation attempts that
    /// are throttled, over the window (0 to 100, default 10).
    #[serde(default = "default_throttle_percent")]
    #[schemars(range(min = 0, max = 100))]
    pub max_function_throttle_percent: i32,

    /// Failed, timed-out or aborted workflow executions tolerated within the
    /// window (default 0).
    #[serde(default)]
    #[schemars(range(min = 0, max = 1000000))]
    pub max_failed_executions: i64,

    /// Highest tolerated iterator age of a stream consumer, in seconds: how
    /// far behind the newest record it reads (default 300).
    #[serde(default = "default_iterator_age")]
    #[schemars(range(min = 1, max = 604800))]
    pub max_iterator_age_seconds: i64,
}

fn default_error_percent() -> i32 {
    5
}

fn default_throttle_percent() -> i32 {
    10
}

fn default_iterator_age() -> i64 {
    300
}

impl Default for HealthSpec {
    fn default() -> Self {
        HealthSpec {
            max_dead_letters: 0,
            max_function_error_percent: default_error_percent(),
            max_function_throttle_percent: default_throttle_percent(),
            max_failed_executions: 0,
            max_iterator_age_seconds: default_iterator_age(),
        }
    }
}

/// The figures of the last health poll, rounded (see [`coarse`]).
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct HealthStatus {
    /// The window the figures cover, ending at the last poll, e.g. `15m`.
    pub window: String,

    /// Dead-letter queues: where failed messages, events and runs land.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub dead_letter_queues: Vec<DeadLetterQueueHealth>,

    /// Functions.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub functions: Vec<FunctionHealth>,

    /// Step Functions workflows.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub workflows: Vec<WorkflowHealth>,

    /// Functions reading a Kinesis stream.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub stream_consumers: Vec<StreamConsumerHealth>,
}

/// One dead-letter queue.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct DeadLetterQueueHealth {
    /// Logical name of the queue.
    pub name: String,
    /// What sends failures there, e.g. `queue orders`, `schedule nightly`.
    pub source: String,
    /// Messages in the queue now (waiting, in flight and delayed).
    pub messages: i64,
    /// Messages its consumer (e.g. a dlq-handler) received within the window.
    pub received: i64,
    /// Age of its oldest message in seconds, rounded down to a step of
    /// 1m, 5m, 15m, 30m, 1h, 2h, 6h, 12h, 1d, 2d, 4d, 7d.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub oldest_message_age_seconds: Option<i64>,
}

/// One function.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct FunctionHealth {
    /// Logical name of the function.
    pub name: String,
    /// Invocations within the window.
    pub invocations: i64,
    /// Invocations that ended in an error.
    pub errors: i64,
    /// Invocation attempts refused by Lambda's concurrency limits.
    pub throttles: i64,
    /// `errors` as a whole percentage of `invocations`.
    pub error_percent: i32,
}

/// One workflow.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct WorkflowHealth {
    /// Logical name of the workflow.
    pub name: String,
    /// Executions that failed within the window.
    pub failed: i64,
    /// Executions that timed out.
    pub timed_out: i64,
    /// Executions that were aborted.
    pub aborted: i64,
}

/// One function reading a stream.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct StreamConsumerHealth {
    /// Logical name of the function.
    pub function: String,
    /// Logical name of the stream.
    pub stream: String,
    /// The highest iterator age within the window, in seconds, rounded down
    /// like `oldestMessageAgeSeconds`.
    pub iterator_age_seconds: i64,
}

/// A count rounded to two significant digits (`1234` → `1200`), so that a
/// figure that keeps moving a little does not rewrite status on every poll.
/// Counts below 100 are exact.
pub fn coarse(n: f64) -> i64 {
    if !n.is_finite() || n <= 0.0 {
        return 0;
    }
    let n = n.round() as i64;
    if n < 100 {
        return n;
    }
    let digits = (n as f64).log10().floor() as u32;
    let step = 10i64.pow(digits - 1);
    n / step * step
}

/// The steps an age is rounded down to, in seconds.
pub const AGE_STEPS: [i64; 12] = [
    60, 300, 900, 1800, 3600, 7200, 21600, 43200, 86400, 172800, 345600, 604800,
];

/// An age in seconds rounded down to one of [`AGE_STEPS`] (0 below a
/// minute).
pub fn coarse_age(seconds: f64) -> i64 {
    if !seconds.is_finite() {
        return 0;
    }
    AGE_STEPS
        .iter()
        .rev()
        .find(|step| seconds >= **step as f64)
        .copied()
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_keep_two_significant_digits() {
        assert_eq!(coarse(0.0), 0);
        assert_eq!(coarse(3.0), 3);
        assert_eq!(coarse(99.4), 99);
        assert_eq!(coarse(137.0), 130);
        assert_eq!(coarse(1234.0), 1200);
        assert_eq!(coarse(f64::NAN), 0);
    }

    #[test]
    fn ages_round_down_to_a_step() {
        assert_eq!(coarse_age(59.0), 0);
        assert_eq!(coarse_age(61.0), 60);
        assert_eq!(coarse_age(299.0), 60);
        assert_eq!(coarse_age(4000.0), 3600);
        assert_eq!(coarse_age(10.0 * 86400.0), 604800);
    }

    #[test]
    fn thresholds_default_when_left_out() {
        let h: HealthSpec = serde_json::from_str("{}").expect("valid");
        assert_eq!(h, HealthSpec::default());
        assert_eq!(h.max_function_error_percent, 5);
        assert_eq!(h.max_iterator_age_seconds, 300);
    }
}
