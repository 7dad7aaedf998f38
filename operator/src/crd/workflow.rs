//! Step Functions workflows of a pipeline.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// A Step Functions state machine.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct WorkflowSpec {
    /// Logical name, unique within the pipeline (lowercase letters, digits and '-').
    #[schemars(
        length(min = 1, max = 40),
        regex(pattern = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
    )]
    pub name: String,

    /// `Standard` (up to a year, exactly once) or `Express` (up to five
    /// minutes, at least once, cheaper per step); fixed once created.
    #[serde(default, rename = "type")]
    #[schemars(extend("x-kubernetes-validations" = [
        {"rule": "self == oldSelf", "message": "a workflow's type cannot change: Step Functions fixes it at creation; declare a new workflow"}
    ]))]
    pub type_: WorkflowType,

    /// The definition in Amazon States Language, written as YAML. A Task
    /// runs a pipeline function named by its logical name:
    /// `Resource: function:<name>`, or `Resource:
    /// arn:aws:states:::lambda:invoke` with `Parameters: {FunctionName:
    /// <name>}`; Sluice substitutes the ARN.
    #[schemars(schema_with = "crate::crd::free_form_object")]
    #[serde(deserialize_with = "crate::crd::free_form")]
    pub definition: Value,

    /// Execution history to CloudWatch Logs: `None` (default), `Error`,
    /// `Fatal` or `All`, into a log group Sluice creates.
    #[serde(default)]
    pub logging: LoggingLevel,

    /// Send execution data (inputs and outputs) with the logs.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub include_execution_data: bool,

    /// X-Ray tracing of executions.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub tracing: bool,

    /// What starts executions, besides rules and schedules that target it.
    #[serde(default)]
    #[schemars(length(max = 8))]
    pub triggers: Vec<WorkflowTrigger>,
}

/// Type of a workflow.
#[derive(Deserialize, Serialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
pub enum WorkflowType {
    /// Long-running, exactly-once executions.
    #[default]
    Standard,
    /// Short, high-volume, at-least-once executions.
    Express,
}

impl WorkflowType {
    /// The value Step Functions' API uses.
    pub fn as_aws(self) -> &'static str {
        match self {
            WorkflowType::Standard => "STANDARD",
            WorkflowType::Express => "EXPRESS",
        }
    }
}

/// Logging level of a workflow. (Step Functions says `OFF`; YAML 1.1
/// reads an unquoted `OFF` as a boolean, so the spec says `None`.)
#[derive(Deserialize, Serialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
pub enum LoggingLevel {
    /// No logs.
    #[default]
    None,
    /// Only errors.
    Error,
    /// Only fatal errors.
    Fatal,
    /// Every event.
    All,
}

impl LoggingLevel {
    /// The value Step Functions' API uses.
    pub fn as_aws(self) -> &'static str {
        match self {
            LoggingLevel::None => "OFF",
            LoggingLevel::Error => "ERROR",
            LoggingLevel::Fatal => "FATAL",
            LoggingLevel::All => "ALL",
        }
    }
}

/// Something that starts a workflow's executions.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [
    {"rule": "has(self.bucket)", "message": "a workflow trigger names its source: bucket"}
]))]
pub struct WorkflowTrigger {
    /// Objects created in a pipeline bucket start an execution, with no
    /// glue function: S3 sends its events to EventBridge and a rule on the
    /// account's default bus starts the workflow (its role may start
    /// exactly this workflow).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bucket: Option<WorkflowBucketTrigger>,
}

/// Objects created in a bucket start a workflow.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct WorkflowBucketTrigger {
    /// Logical name of a bucket in `spec.buckets`.
    #[schemars(length(min = 1, max = 40))]
    pub name: String,

    /// Only keys starting with this prefix.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 1024))]
    pub prefix: Option<String>,

    /// Only keys ending with this suffix.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 1024))]
    pub suffix: Option<String>,
}
