//! The article's trigger function (Pattern 3): each object an S3 event
//! names starts one execution of the workflow in `STATE_MACHINE_ARN`, with
//! `{bucket, key}` as input. Sluice can start a workflow from a bucket
//! without any function; this handler exists for pipelines that want the
//! trigger Lambda the article writes (to filter or enrich before starting).
//!
//! Each execution is named after the object and S3's sequencer, so a
//! redelivered notification starts nothing new: Step Functions answers a
//! start with a running execution's name and input by returning it, and
//! one with a finished execution's name by `ExecutionAlreadyExists`, which
//! here counts as started.

use std::future::Future;
use std::sync::Mutex;

use serde::Serialize;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::{
    kit::aws::classify_sdk_error,
    kit::config::{ConfigError, Env},
    kit::error::{HandlerError, StoreError},
    kit::events::{RawRecords, S3ObjectRef, parse_s3_record},
};

/// Configuration from the environment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StartConfig {
    /// ARN of the workflow to start.
    pub state_machine_arn: String,
}

impl StartConfig {
    /// Reads `STATE_MACHINE_ARN` (set by `uses: {workflow, access: start}`).
    pub fn from_env(env: &(impl Env + ?Sized)) -> Result<Self, ConfigError> {
        Ok(Self {
            state_machine_arn: env.required("STATE_MACHINE_ARN")?,
        })
    }
}

/// What starting one execution did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Started {
    /// A new (or the same running) execution.
    Execution(String),
    /// An execution of this name already ran.
    AlreadyRan,
}

/// Starts workflow executions.
pub trait WorkflowStarter: Send + Sync {
    /// One StartExecution.
    fn start(
        &self,
        state_machine_arn: &str,
        name: &str,
        input: &Value,
    ) -> impl Future<Output = Result<Started, StoreError>> + Send;
}

/// [`WorkflowStarter`] over AWS Step Functions.
#[derive(Debug, Clone)]
pub struct StepFunctionsStarter {
    client: aws_sdk_sfn::Client,
}

impl StepFunctionsStarter {
    /// Wraps a Step Functions client.
    pub fn new(client: aws_sdk_sfn::Client) -> Self {
        Self { client }
    }
}

impl WorkflowStarter for StepFunctionsStarter {
    async fn start(
        &self,
        state_machine_arn: &str,
        name: &str,
        input: &Value,
    ) -> Result<Started, StoreError> {
        match self
            .client
            .start_execution()
            .state_machine_arn(state_machine_arn)
            .name(name)
            .input(input.to_string())
            .send()
            .await
        {
            Ok(out) => Ok(Started::Execution(out.execution_arn().to_owned())),
            Err(e)
                if aws_sdk_sfn::error::ProvideErrorMetadata::code(&e)
                    == Some("ExecutionAlreadyExists") =>
            {
                Ok(Started::AlreadyRan)
            }
            Err(e) => Err(classify_sdk_error(&e, "StartExecution")),
        }
    }
}

/// In-memory [`WorkflowStarter`] for tests.
#[derive(Debug, Default)]
pub struct MemoryStarter {
    started: Mutex<Vec<(String, Value)>>,
    fail_next: Mutex<Option<StoreError>>,
}

impl MemoryStarter {
    /// Makes the next start fail with `error`.
    pub fn fail_next(&self, error: StoreError) {
        if let Ok(mut f) = self.fail_next.lock() {
            *f = Some(error);
        }
    }

    /// `(name, input)` of every execution started.
    pub fn started(&self) -> Vec<(String, Value)> {
        self.started.lock().map(|s| s.clone()).unwrap_or_default()
    }
}

impl WorkflowStarter for MemoryStarter {
    async fn start(&self, arn: &str, name: &str, input: &Value) -> Result<Started, StoreError> {
        if let Some(e) = self.fail_next.lock().ok().and_then(|mut f| f.take()) {
            return Err(e);
        }
        let mut started = self
            .started
            .lock()
            .map_err(|_| StoreError::Transient("lock".into()))?;
        if let Some((_, earlier)) = started.iter().find(|(n, _)| n == name) {
            return if earlier == input {
                Ok(Started::Execution(format!("{arn}:{name}")))
            } else {
                Ok(Started::AlreadyRan)
            };
        }
        started.push((name.to_owned(), input.clone()));
        Ok(Started::Execution(format!("{arn}:{name}")))
    }
}

/// The execution name of an object: a digest of bucket, key and sequencer
/// (Step Functions allows 80 characters of `[A-Za-z0-9_-]`).
pub fn execution_name(object: &S3ObjectRef) -> String {
    let mut hasher = Sha256::new();
    for part in [
        object.bucket.as_str(),
        object.key.as_str(),
        object.sequencer.as_deref().unwrap_or(""),
    ] {
        hasher.update(part.as_bytes());
        hasher.update([0]);
    }
    format!("s3-{}", &hex::encode(hasher.finalize())[..48])
}

/// One started execution, in the response.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StartedExecution {
    /// `s3://bucket/key`.
    pub object: String,
    /// Execution name.
    pub name: String,
    /// Execution ARN, or `None` when an execution of this name already ran.
    pub execution_arn: Option<String>,
}

/// The handler's response.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StartResponse {
    /// Executions, in record order.
    pub started: Vec<StartedExecution>,
}

/// Starts one execution per object of an S3 event. A malformed record is a
/// validation error (Lambda's async retries cannot help); a start that
/// fails transiently fails the invocation, so Lambda retries it and the
/// names make the retry start nothing twice.
pub async fn handle<S: WorkflowStarter>(
    starter: &S,
    config: &StartConfig,
    event: Value,
) -> Result<StartResponse, HandlerError> {
    let records = RawRecords::from_event(event)?;
    let mut started = Vec::with_capacity(records.records.len());
    for record in &records.records {
        let object = parse_s3_record(record)?;
        let name = execution_name(&object);
        let input = json!({"bucket": object.bucket, "key": object.key});
        let outcome = starter
            .start(&config.state_machine_arn, &name, &input)
            .await
            .map_err(|e| match e {
                StoreError::Rejected(m) => HandlerError::validation(m),
                other => HandlerError::retryable(other.to_string()),
            })?;
        started.push(StartedExecution {
            object: object.uri(),
            name,
            execution_arn: match outcome {
                Started::Execution(arn) => Some(arn),
                Started::AlreadyRan => None,
            },
        });
    }
    Ok(StartResponse { started })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> StartConfig {
        StartConfig {
            state_machine_arn: "arn:aws:states:us-east-1:1:stateMachine:etl".into(),
        }
    }

    fn event(keys: &[(&str, &str)]) -> Value {
        json!({"Records": keys.iter().map(|(key, seq)| json!({
            "s3": {"bucket": {"name": "in"}, "object": {"key": key, "sequencer": seq}}
        })).collect::<Vec<_>>()})
    }

    #[tokio::test]
    async fn each_object_starts_one_execution_with_bucket_and_key() {
        let starter = MemoryStarter::default();
        let out = handle(
            &starter,
            &config(),
            event(&[("a.json", "01"), ("b+c.json", "02")]),
        )
        .await
        .expect("started");
        assert_eq!(out.started.len(), 2);
        let inputs: Vec<Value> = starter.started().into_iter().map(|(_, i)| i).collect();
        assert_eq!(
            inputs,
            [
                json!({"bucket": "in", "key": "a.json"}),
                json!({"bucket": "in", "key": "b c.json"})
            ]
        );
        assert!(out.started.iter().all(|s| s.name.len() <= 80));
    }

    #[tokio::test]
    async fn a_redelivered_notification_starts_nothing_new() {
        let starter = MemoryStarter::default();
        handle(&starter, &config(), event(&[("a.json", "01")]))
            .await
            .expect("first");
        handle(&starter, &config(), event(&[("a.json", "01")]))
            .await
            .expect("again");
        assert_eq!(starter.started().len(), 1);
        // A new write of the same key is a new object.
        handle(&starter, &config(), event(&[("a.json", "02")]))
            .await
            .expect("rewrite");
        assert_eq!(starter.started().len(), 2);
    }

    #[tokio::test]
    async fn a_throttled_start_is_retryable_and_a_bad_record_is_not() {
        let starter = MemoryStarter::default();
        starter.fail_next(StoreError::Transient("ThrottlingException".into()));
        let err = handle(&starter, &config(), event(&[("a.json", "01")]))
            .await
            .expect_err("throttled");
        assert_eq!(err.error_type(), "RetryableError");
        let err = handle(&starter, &config(), json!({"Records": [{"s3": {}}]}))
            .await
            .expect_err("malformed");
        assert_eq!(err.error_type(), "ValidationError");
    }

    #[test]
    fn the_configuration_names_the_missing_variable() {
        let env = std::collections::HashMap::<String, String>::new();
        assert_eq!(
            StartConfig::from_env(&env),
            Err(ConfigError::Missing("STATE_MACHINE_ARN".into()))
        );
    }
}
