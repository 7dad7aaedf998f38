//! Lambda functions and their edges: triggers (what invokes them) and
//! uses (what they may read or write).

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::CodeSpec;

/// A Lambda function.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [
    {"rule": "has(self.handler) != has(self.code)", "message": "a function sets exactly one of handler (a built-in handler's name; the same as code.builtin) or code (builtin, s3 or image)"}
]))]
pub struct FunctionSpec {
    /// Logical name, unique within the pipeline (lowercase letters, digits and '-').
    #[schemars(
        length(min = 1, max = 40),
        regex(pattern = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
    )]
    pub name: String,

    /// Built-in handler from the `sluice-handlers` crate, e.g.
    /// `s3-json-transform`: short for `code: {builtin: ...}`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(
        length(min = 1, max = 64),
        regex(pattern = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
    )]
    pub handler: Option<String>,

    /// What the function runs: a built-in handler, the team's zip in S3 or
    /// the team's container image.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code: Option<CodeSpec>,

    /// Memory in MiB (Lambda allows 128 to 10240).
    #[serde(rename = "memoryMiB", default = "default_memory")]
    #[schemars(range(min = 128, max = 10240))]
    pub memory_mib: i32,

    /// Timeout in seconds (Lambda allows 1 to 900).
    #[serde(default = "default_timeout")]
    #[schemars(range(min = 1))]
    #[schemars(extend("x-kubernetes-validations" = [
        {"rule": "self <= 900", "message": "must be at most 900 seconds (Lambda's limit); work that runs longer belongs in a workflow (Step Functions), not a single function"}
    ]))]
    pub timeout_seconds: i32,

    /// Ephemeral storage (`/tmp`) in MiB (Lambda allows 512 to 10240;
    /// default 512).
    #[serde(
        rename = "ephemeralStorageMiB",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    #[schemars(range(min = 512, max = 10240))]
    pub ephemeral_storage_mib: Option<i32>,

    /// X-Ray tracing mode.
    #[serde(default)]
    pub tracing: TracingMode,

    /// Extra environment variables. Names Sluice sets from `uses` and names
    /// Lambda reserves (`AWS_*`, `LAMBDA_*`, `_HANDLER`, ...) are rejected.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    #[schemars(extend("maxProperties" = 50))]
    pub environment: BTreeMap<String, String>,

    /// What invokes the function.
    #[serde(default)]
    #[schemars(length(max = 32))]
    pub triggers: Vec<TriggerSpec>,

    /// Pipeline resources the function reads or writes. Each grants exactly
    /// that access and passes the real resource name in an environment variable.
    #[serde(default)]
    #[schemars(length(max = 32))]
    pub uses: Vec<UseSpec>,

    /// Asynchronous invocations (S3 notifications, EventBridge rule
    /// targets): how often Lambda retries a failed one and where a failed
    /// one goes, so no event vanishes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub async_invocation: Option<AsyncInvocationSpec>,

    /// Best practice 1 in one line: a DynamoDB table of the pipeline that
    /// records processed events, so a duplicate delivery is processed once.
    /// Sets `IDEMPOTENCY_TABLE` and grants exactly the conditional reads and
    /// writes the handlers' idempotency claims make.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idempotency: Option<IdempotencySpec>,

    /// Reserved concurrency (Lambda allows 0 to the account's limit): caps
    /// how many instances run at once, and reserves them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 100000))]
    pub reserved_concurrency: Option<i32>,
}

/// Retries and the failure destination of asynchronous invocations.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AsyncInvocationSpec {
    /// Retries after a failed invocation (Lambda allows 0 to 2; default 2).
    #[serde(default = "default_async_retries")]
    #[schemars(range(min = 0, max = 2))]
    pub maximum_retry_attempts: i32,

    /// Oldest event Lambda still tries, in seconds (60 to 21600; default 21600).
    #[serde(default = "default_event_age")]
    #[schemars(range(min = 60, max = 21600))]
    pub maximum_event_age_seconds: i32,

    /// Queue of the pipeline that receives invocations that failed every
    /// attempt (with the event and the error).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_failure: Option<QueueDestination>,
}

fn default_async_retries() -> i32 {
    2
}

fn default_event_age() -> i32 {
    21600
}

/// A queue of the pipeline as a destination of failed records or events.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct QueueDestination {
    /// Logical name of a queue in `spec.queues` (a standard queue: Lambda
    /// cannot send failures to a FIFO queue).
    #[schemars(length(min = 1, max = 40))]
    pub queue: String,
}

/// The idempotency table of a function.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct IdempotencySpec {
    /// Logical name of a table in `spec.tables` whose partition key is a
    /// string attribute named `pk` (the handlers' key attribute); its TTL
    /// attribute should be `expires_at`.
    #[schemars(length(min = 1, max = 40))]
    pub table: String,
}

fn default_memory() -> i32 {
    128
}

fn default_timeout() -> i32 {
    30
}

/// X-Ray tracing mode of a function.
#[derive(Deserialize, Serialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
pub enum TracingMode {
    /// Only traces requests that arrive with a sampled trace header.
    #[default]
    PassThrough,
    /// Samples and traces incoming requests (grants the X-Ray write actions).
    Active,
}

impl TracingMode {
    /// The value Lambda's API uses.
    pub fn as_aws(self) -> &'static str {
        match self {
            TracingMode::PassThrough => "PassThrough",
            TracingMode::Active => "Active",
        }
    }
}

/// One source of invocations; exactly one field is set.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [
    {"rule": "[has(self.bucket), has(self.queue), has(self.stream)].filter(x, x).size() == 1", "message": "a trigger must set exactly one source: bucket, queue or stream"}
]))]
pub struct TriggerSpec {
    /// Objects events of a pipeline bucket invoke the function.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bucket: Option<BucketTrigger>,

    /// Messages of a pipeline queue invoke the function in batches (an
    /// event source mapping).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub queue: Option<QueueTrigger>,

    /// Records of a pipeline stream invoke the function in batches (an
    /// event source mapping).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stream: Option<StreamTrigger>,
}

/// An SQS event source mapping.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [
    {"rule": "self.batchSize <= 10 || self.batchingWindowSeconds > 0", "message": "batchSize above 10 needs batchingWindowSeconds of at least 1 (SQS's rule)"}
]))]
pub struct QueueTrigger {
    /// Logical name of a queue in `spec.queues`.
    #[schemars(length(min = 1, max = 40))]
    pub name: String,

    /// Most messages per invocation (1 to 10,000; at most 10 without a
    /// batching window, and at most 10 for a FIFO queue). Default 10.
    #[serde(default = "default_queue_batch")]
    #[schemars(range(min = 1, max = 10000))]
    pub batch_size: i32,

    /// Longest wait, in seconds, to fill a batch (0 to 300).
    #[serde(default)]
    #[schemars(range(min = 0, max = 300))]
    pub batching_window_seconds: i32,

    /// Most concurrent invocations this queue drives (2 to 1,000).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 2, max = 1000))]
    pub max_concurrency: Option<i32>,

    /// Let the function report which messages of a batch failed, so only
    /// those return to the queue (the built-in handlers do). Default true.
    #[serde(default = "default_true")]
    pub report_batch_item_failures: bool,
}

fn default_queue_batch() -> i32 {
    10
}

fn default_true() -> bool {
    true
}

/// A Kinesis event source mapping.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct StreamTrigger {
    /// Logical name of a stream in `spec.streams`.
    #[schemars(length(min = 1, max = 40))]
    pub name: String,

    /// Most records per invocation (1 to 10,000; default 100).
    #[serde(default = "default_stream_batch")]
    #[schemars(range(min = 1, max = 10000))]
    pub batch_size: i32,

    /// Longest wait, in seconds, to fill a batch (0 to 300).
    #[serde(default)]
    #[schemars(range(min = 0, max = 300))]
    pub batching_window_seconds: i32,

    /// Where reading starts when the mapping is created.
    #[serde(default)]
    pub starting_position: StartingPosition,

    /// Split a failing batch in two and retry each half, to isolate a bad
    /// record.
    #[serde(default)]
    pub bisect_on_error: bool,

    /// Retries of a failing batch (-1 for until the record expires, or 0 to
    /// 10,000; default -1 as Lambda's).
    #[serde(default = "default_minus_one")]
    #[schemars(range(min = -1, max = 10000))]
    pub maximum_retry_attempts: i32,

    /// Oldest record sent to the function, in seconds (-1 for no limit, or
    /// 60 to 604,800; default -1).
    #[serde(default = "default_minus_one")]
    #[schemars(range(min = -1, max = 604800))]
    #[schemars(extend("x-kubernetes-validations" = [
        {"rule": "self == -1 || self >= 60", "message": "must be -1 (no limit) or 60 to 604800 seconds"}
    ]))]
    pub maximum_record_age_seconds: i32,

    /// Batches processed at once per shard (1 to 10; default 1).
    #[serde(default = "default_one")]
    #[schemars(range(min = 1, max = 10))]
    pub parallelization_factor: i32,

    /// Let the function report the first failed record, so the retry
    /// starts there (the built-in handlers do). Default true.
    #[serde(default = "default_true")]
    pub report_batch_item_failures: bool,

    /// Queue of the pipeline that receives a description of records that
    /// failed every attempt (or expired), so a bad record never blocks the
    /// shard and is never lost.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_failure: Option<QueueDestination>,
}

fn default_stream_batch() -> i32 {
    100
}

fn default_minus_one() -> i32 {
    -1
}

fn default_one() -> i32 {
    1
}

/// Where a new stream mapping starts reading.
#[derive(Deserialize, Serialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
pub enum StartingPosition {
    /// Only records added after the mapping exists.
    #[default]
    #[serde(rename = "LATEST")]
    Latest,
    /// The oldest record still in the stream.
    #[serde(rename = "TRIM_HORIZON")]
    TrimHorizon,
}

impl StartingPosition {
    /// The value Lambda's API uses.
    pub fn as_aws(self) -> &'static str {
        match self {
            StartingPosition::Latest => "LATEST",
            StartingPosition::TrimHorizon => "TRIM_HORIZON",
        }
    }
}

/// S3 event notification from a pipeline bucket.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct BucketTrigger {
    /// Logical name of a bucket in `spec.buckets`.
    #[schemars(length(min = 1, max = 40))]
    pub name: String,

    /// S3 event types that invoke the function.
    #[serde(default = "default_events")]
    #[schemars(length(min = 1, max = 16))]
    pub events: Vec<S3Event>,

    /// Only keys starting with this prefix.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 1024))]
    pub prefix: Option<String>,

    /// Only keys ending with this suffix.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 1024))]
    pub suffix: Option<String>,
}

fn default_events() -> Vec<S3Event> {
    vec![S3Event::ObjectCreatedAll]
}

/// The S3 event types a bucket notification may name.
#[derive(
    Deserialize, Serialize, Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, JsonSchema,
)]
pub enum S3Event {
    #[serde(rename = "s3:ObjectCreated:*")]
    ObjectCreatedAll,
    #[serde(rename = "s3:ObjectCreated:Put")]
    ObjectCreatedPut,
    #[serde(rename = "s3:ObjectCreated:Post")]
    ObjectCreatedPost,
    #[serde(rename = "s3:ObjectCreated:Copy")]
    ObjectCreatedCopy,
    #[serde(rename = "s3:ObjectCreated:CompleteMultipartUpload")]
    ObjectCreatedCompleteMultipartUpload,
    #[serde(rename = "s3:ObjectRemoved:*")]
    ObjectRemovedAll,
    #[serde(rename = "s3:ObjectRemoved:Delete")]
    ObjectRemovedDelete,
    #[serde(rename = "s3:ObjectRemoved:DeleteMarkerCreated")]
    ObjectRemovedDeleteMarkerCreated,
    #[serde(rename = "s3:ObjectRestore:*")]
    ObjectRestoreAll,
    #[serde(rename = "s3:ObjectRestore:Post")]
    ObjectRestorePost,
    #[serde(rename = "s3:ObjectRestore:Completed")]
    ObjectRestoreCompleted,
    #[serde(rename = "s3:ObjectTagging:*")]
    ObjectTaggingAll,
    #[serde(rename = "s3:ObjectTagging:Put")]
    ObjectTaggingPut,
    #[serde(rename = "s3:ObjectTagging:Delete")]
    ObjectTaggingDelete,
}

impl S3Event {
    /// The event name as S3 spells it.
    pub fn as_aws(self) -> &'static str {
        match self {
            S3Event::ObjectCreatedAll => "s3:ObjectCreated:*",
            S3Event::ObjectCreatedPut => "s3:ObjectCreated:Put",
            S3Event::ObjectCreatedPost => "s3:ObjectCreated:Post",
            S3Event::ObjectCreatedCopy => "s3:ObjectCreated:Copy",
            S3Event::ObjectCreatedCompleteMultipartUpload => {
                "s3:ObjectCreated:CompleteMultipartUpload"
            }
            S3Event::ObjectRemovedAll => "s3:ObjectRemoved:*",
            S3Event::ObjectRemovedDelete => "s3:ObjectRemoved:Delete",
            S3Event::ObjectRemovedDeleteMarkerCreated => "s3:ObjectRemoved:DeleteMarkerCreated",
            S3Event::ObjectRestoreAll => "s3:ObjectRestore:*",
            S3Event::ObjectRestorePost => "s3:ObjectRestore:Post",
            S3Event::ObjectRestoreCompleted => "s3:ObjectRestore:Completed",
            S3Event::ObjectTaggingAll => "s3:ObjectTagging:*",
            S3Event::ObjectTaggingPut => "s3:ObjectTagging:Put",
            S3Event::ObjectTaggingDelete => "s3:ObjectTagging:Delete",
        }
    }
}

/// A grant on a pipeline resource; exactly one target field is set.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [
    {"rule": "[has(self.bucket), has(self.queue), has(self.eventBus), has(self.table), has(self.stream), has(self.workflow)].filter(x, x).size() == 1", "message": "a use must name exactly one resource: bucket, queue, eventBus, table, stream or workflow"},
    {"rule": "!has(self.bucket) || self.access in ['read', 'write', 'readWrite']", "message": "access to a bucket is read, write or readWrite"},
    {"rule": "!has(self.queue) || self.access == 'send'", "message": "access to a queue is send"},
    {"rule": "!has(self.eventBus) || self.access == 'put'", "message": "access to an event bus is put"},
    {"rule": "!has(self.table) || self.access in ['read', 'write', 'readWrite']", "message": "access to a table is read, write or readWrite"},
    {"rule": "!has(self.stream) || self.access in ['read', 'put']", "message": "access to a stream is read or put"},
    {"rule": "!has(self.workflow) || self.access == 'start'", "message": "access to a workflow is start"}
]))]
pub struct UseSpec {
    /// Logical name of a bucket in `spec.buckets`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 40))]
    pub bucket: Option<String>,

    /// Logical name of a queue in `spec.queues`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 40))]
    pub queue: Option<String>,

    /// Logical name of an event bus in `spec.eventBuses`, or `default` for
    /// the account's default bus.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 40))]
    pub event_bus: Option<String>,

    /// Logical name of a table in `spec.tables`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 40))]
    pub table: Option<String>,

    /// Logical name of a stream in `spec.streams`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 40))]
    pub stream: Option<String>,

    /// Logical name of a workflow in `spec.workflows`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 40))]
    pub workflow: Option<String>,

    /// What the function may do with the resource.
    pub access: Access,

    /// Environment variable that receives the resource's real name (a
    /// queue's URL, a workflow's ARN). Defaults to `<KIND>_<NAME>`
    /// (upper-case, '-' as '_'), e.g. `BUCKET_OUTPUT`, `QUEUE_TYPE_A_URL`,
    /// `EVENT_BUS_MAIN`, `WORKFLOW_ETL_ARN`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(
        length(min = 1, max = 128),
        regex(pattern = r"^[A-Za-z][A-Za-z0-9_]*$")
    )]
    pub env: Option<String>,
}

/// Access a function is granted on a resource it uses.
#[derive(Deserialize, Serialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum Access {
    /// Read: objects of a bucket, items of a table, records of a stream.
    Read,
    /// Write objects of a bucket or items of a table.
    Write,
    /// Both.
    ReadWrite,
    /// Send messages to a queue.
    Send,
    /// Put events on a bus, or records on a stream.
    Put,
    /// Start a workflow's executions.
    Start,
}

impl Access {
    /// Whether the grant includes reading.
    pub fn reads(self) -> bool {
        matches!(self, Access::Read | Access::ReadWrite)
    }

    /// Whether the grant includes writing.
    pub fn writes(self) -> bool {
        matches!(self, Access::Write | Access::ReadWrite)
    }

    /// As the spec spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            Access::Read => "read",
            Access::Write => "write",
            Access::ReadWrite => "readWrite",
            Access::Send => "send",
            Access::Put => "put",
            Access::Start => "start",
        }
    }
}

impl FunctionSpec {
    /// The built-in handler the function runs (`handler`, or
    /// `code.builtin`), if it runs one.
    pub fn builtin(&self) -> Option<&str> {
        self.handler
            .as_deref()
            .or_else(|| self.code.as_ref().and_then(|c| c.builtin.as_deref()))
    }
}
