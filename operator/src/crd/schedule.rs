//! EventBridge Scheduler schedules of a pipeline.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::function::QueueDestination;

/// A schedule: at each time its expression gives, the target runs.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ScheduleSpec {
    /// Logical name, unique within the pipeline (lowercase letters, digits and '-').
    #[schemars(
        length(min = 1, max = 40),
        regex(pattern = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
    )]
    pub name: String,

    /// `cron(minutes hours day-of-month month day-of-week year)` (one of
    /// the two days is `?`), `rate(<n> minute|minutes|hour|hours|day|days)`
    /// or `at(yyyy-mm-ddThh:mm:ss)`, e.g. `cron(0 1 * * ? *)` for 01:00
    /// daily.
    #[schemars(schema_with = "crate::schedule_expression::expression_schema")]
    pub expression: String,

    /// IANA time zone the expression is read in (default UTC).
    #[serde(default = "default_timezone")]
    #[schemars(schema_with = "crate::schedule_expression::timezone_schema")]
    pub timezone: String,

    /// Let the scheduler start up to this many minutes late to spread load
    /// (1 to 1,440); without it, runs start on time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 1440))]
    pub flexible_window_minutes: Option<i32>,

    /// No run before this time (RFC 3339, e.g. `2027-01-01T00:00:00Z`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(
        pattern = r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$"
    ))]
    pub start_date: Option<String>,

    /// No run after this time (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(
        pattern = r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$"
    ))]
    pub end_date: Option<String>,

    /// What runs.
    pub target: ScheduleTarget,

    /// JSON the target receives (default: the scheduler's own context).
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "crate::crd::free_form_opt"
    )]
    #[schemars(schema_with = "crate::crd::free_form_object")]
    pub input: Option<Value>,

    /// Retries of a run the target refused or could not take.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry: Option<ScheduleRetry>,

    /// Queue of the pipeline that receives runs that failed every retry.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dead_letter: Option<QueueDestination>,

    /// `false` keeps the schedule without running it.
    #[serde(default = "default_enabled")]
    pub enabled: bool,
}

fn default_timezone() -> String {
    "UTC".into()
}

fn default_enabled() -> bool {
    true
}

/// The target of a schedule; exactly one field is set.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [
    {"rule": "[has(self.function), has(self.workflow), has(self.queue)].filter(x, x).size() == 1", "message": "a schedule targets exactly one of function, workflow or queue"}
]))]
pub struct ScheduleTarget {
    /// A function of the pipeline, invoked asynchronously.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 40))]
    pub function: Option<String>,

    /// A workflow of the pipeline, started.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 40))]
    pub workflow: Option<String>,

    /// A standard queue of the pipeline, sent the input.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 40))]
    pub queue: Option<String>,
}

/// Retries of a schedule's runs.
#[derive(Deserialize, Serialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ScheduleRetry {
    /// Retries (0 to 185; default 185, the scheduler's).
    #[serde(default = "default_retries")]
    #[schemars(range(min = 0, max = 185))]
    pub maximum_retry_attempts: i32,

    /// Oldest run still retried, in seconds (60 to 86,400; default 86,400).
    #[serde(default = "default_event_age")]
    #[schemars(range(min = 60, max = 86400))]
    pub maximum_event_age_seconds: i32,
}

fn default_retries() -> i32 {
    185
}

fn default_event_age() -> i32 {
    86_400
}
