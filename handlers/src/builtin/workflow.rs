//! Pattern 3 — orchestrated workflow steps for a Step Functions state
//! machine: `extract` → `transform` → `load` → `notify`. Each step's output
//! is the next step's input (`OutputPath: $.Payload`); the types are shared
//! here so the contract between steps is checked by the compiler.
//!
//! Failures carry `errorType` `ValidationError` (bad input: `Catch` it and
//! fail the execution) or `RetryableError` (transient: `Retry` it).

use chrono::{DateTime, Utc};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::builtin::enrich::enrich;
use crate::builtin::s3_transform::{JSON_CONTENT_TYPE, OUTPUT_PREFIX};
use crate::kit::config::{ConfigError, Env};
use crate::kit::error::HandlerError;
use crate::kit::events::{RawRecords, json_kind, parse_s3_record, required_str};
use crate::kit::publisher::{EventEntry, EventPublisher, publish_all};
use crate::kit::retry::Backoff;
use crate::kit::store::ObjectStore;
use crate::kit::time::timestamp;

/// Step Functions' limit on a state's input/output (256 KiB).
pub const MAX_STATE_PAYLOAD_BYTES: usize = 256 * 1024;

/// Output of `extract`, input of `transform`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ExtractOutput {
    /// Source bucket.
    pub bucket: String,
    /// Source key.
    pub key: String,
    /// The parsed document.
    pub data: Value,
}

/// Output of `transform`, input of `load`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TransformOutput {
    /// Source bucket.
    pub bucket: String,
    /// Source key.
    pub key: String,
    /// The enriched document.
    pub data: Value,
    /// Σ quantity, when the document has `items`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub total_items: Option<Value>,
    /// Σ quantity × price, when the document has `items`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub total_value: Option<Value>,
    /// When the transform ran.
    pub processed_at: String,
}

/// Output of `load`, input of `notify`. Carries no document, so the state
/// payload stays small.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LoadOutput {
    /// Source bucket.
    pub source_bucket: String,
    /// Source key.
    pub source_key: String,
    /// Where the result was written.
    pub output_bucket: String,
    /// Output key (`processed/<key>`).
    pub output_key: String,
    /// Σ quantity, when present.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub total_items: Option<Value>,
    /// Σ quantity × price, when present.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub total_value: Option<Value>,
    /// When the transform ran.
    pub processed_at: String,
}

/// Output of `notify`: the execution's summary.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NotifySummary {
    /// Always `SUCCEEDED` (failures never reach notify).
    pub status: String,
    /// One-line description.
    pub message: String,
    /// `s3://` URI of the input.
    pub source: String,
    /// `s3://` URI of the output.
    pub output: String,
    /// Σ quantity, when present.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub total_items: Option<Value>,
    /// Σ quantity × price, when present.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub total_value: Option<Value>,
    /// When the transform ran.
    pub processed_at: String,
    /// When notify ran.
    pub notified_at: String,
}

/// Configuration of `extract`: `BUCKET_NAME` (optional) is the bucket used
/// when the input names only a key.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ExtractConfig {
    /// Default source bucket.
    pub default_bucket: Option<String>,
}

impl ExtractConfig {
    /// Reads `BUCKET_NAME` (optional).
    pub fn from_env(env: &(impl Env + ?Sized)) -> Self {
        Self {
            default_bucket: env.optional("BUCKET_NAME"),
        }
    }
}

/// Configuration of `load`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoadConfig {
    /// `OUTPUT_BUCKET`.
    pub output_bucket: String,
}

impl LoadConfig {
    /// Reads `OUTPUT_BUCKET`.
    pub fn from_env(env: &(impl Env + ?Sized)) -> Result<Self, ConfigError> {
        Ok(Self {
            output_bucket: env.required("OUTPUT_BUCKET")?,
        })
    }
}

fn typed_input<T: DeserializeOwned>(input: Value, step: &str) -> Result<T, HandlerError> {
    serde_json::from_value(input).map_err(|e| {
        HandlerError::validation(format!(
            "{step}: input does not match the previous step's output: {e}"
        ))
    })
}

fn check_payload_size<T: Serialize>(output: &T, step: &str) -> Result<(), HandlerError> {
    let size = serde_json::to_vec(output)
        .map_err(|e| HandlerError::validation(format!("{step}: cannot serialize output: {e}")))?
        .len();
    if size > MAX_STATE_PAYLOAD_BYTES {
        return Err(HandlerError::validation(format!(
            "{step}: output is {size} bytes, over Step Functions' {MAX_STATE_PAYLOAD_BYTES}-byte state limit"
        )));
    }
    Ok(())
}

/// Which object to extract. Accepts `{"bucket", "key"}` (bucket optional
/// with `BUCKET_NAME`), an S3 notification with one record (form-encoded
/// key), or an EventBridge "Object Created" event.
pub fn object_from_input(
    input: &Value,
    config: &ExtractConfig,
) -> Result<(String, String), HandlerError> {
    if !input.is_object() {
        return Err(HandlerError::validation(format!(
            "extract: input must be an object, got {}",
            json_kind(input)
        )));
    }
    if input.get("Records").is_some() {
        let records = RawRecords::from_event(input.clone())?.records;
        let [record] = records.as_slice() else {
            return Err(HandlerError::validation(format!(
                "extract: expected one S3 record per execution, got {}",
                records.len()
            )));
        };
        let object = parse_s3_record(record)?;
        return Ok((object.bucket, object.key));
    }
    if let Some(detail) = input.get("detail").filter(|d| d.get("object").is_some()) {
        let bucket = detail
            .pointer("/bucket/name")
            .and_then(Value::as_str)
            .filter(|b| !b.is_empty());
        let key = detail
            .pointer("/object/key")
            .and_then(Value::as_str)
            .filter(|k| !k.is_empty());
        return match (bucket, key) {
            (Some(b), Some(k)) => Ok((b.to_owned(), k.to_owned())),
            _ => Err(HandlerError::validation(
                "extract: event detail lacks bucket.name or object.key",
            )),
        };
    }
    let key = required_str(input, "key", "extract input")?.to_owned();
    let bucket = match input.get("bucket") {
        None | Some(Value::Null) => config.default_bucket.clone().ok_or_else(|| {
            HandlerError::validation("extract input: missing `bucket` and BUCKET_NAME is not set")
        })?,
        Some(_) => required_str(input, "bucket", "extract input")?.to_owned(),
    };
    Ok((bucket, key))
}

/// `extract`: reads and parses the object named by the input.
pub async fn extract<S: ObjectStore>(
    store: &S,
    config: &ExtractConfig,
    input: Value,
) -> Result<ExtractOutput, HandlerError> {
    let (bucket, key) = object_from_input(&input, config)?;
    let uri = format!("s3://{bucket}/{key}");
    let body = store.get(&bucket, &key).await.map_err(HandlerError::from)?;
    let data: Value = serde_json::from_slice(&body)
        .map_err(|e| HandlerError::validation(format!("{uri}: invalid JSON: {e}")))?;
    let output = ExtractOutput { bucket, key, data };
    check_payload_size(&output, "extract")?;
    tracing::info!(source = %uri, "extracted");
    Ok(output)
}

/// `transform`: adds `processed_at` and the totals (pure).
pub fn transform(input: Value, now: DateTime<Utc>) -> Result<TransformOutput, HandlerError> {
    let input: ExtractOutput = typed_input(input, "transform")?;
    let uri = format!("s3://{}/{}", input.bucket, input.key);
    let (data, _) =
        enrich(input.data, now).map_err(|e| HandlerError::validation(format!("{uri}: {e}")))?;
    let output = TransformOutput {
        bucket: input.bucket,
        key: input.key,
        total_items: data.get("total_items").cloned(),
        total_value: data.get("total_value").cloned(),
        processed_at: timestamp(now),
        data,
    };
    check_payload_size(&output, "transform")?;
    Ok(output)
}

/// `load`: writes the document to `OUTPUT_BUCKET` under `processed/<key>`.
pub async fn load<S: ObjectStore>(
    store: &S,
    config: &LoadConfig,
    input: Value,
) -> Result<LoadOutput, HandlerError> {
    let input: TransformOutput = typed_input(input, "load")?;
    let output_key = format!("{OUTPUT_PREFIX}{}", input.key);
    let body = serde_json::to_vec(&input.data)
        .map_err(|e| HandlerError::validation(format!("load: cannot serialize document: {e}")))?;
    store
        .put(&config.output_bucket, &output_key, body, JSON_CONTENT_TYPE)
        .await
        .map_err(HandlerError::from)?;
    tracing::info!(output_key = %output_key, "loaded");
    Ok(LoadOutput {
        source_bucket: input.bucket,
        source_key: input.key,
        output_bucket: config.output_bucket.clone(),
        output_key,
        total_items: input.total_items,
        total_value: input.total_value,
        processed_at: input.processed_at,
    })
}

/// `source` of the events `notify` publishes.
pub const NOTIFY_EVENT_SOURCE: &str = "sluice.workflow";
/// `detail-type` of the events `notify` publishes.
pub const NOTIFY_DETAIL_TYPE: &str = "pipeline-run-succeeded";

/// Configuration of `notify`: `NOTIFY_EVENT_BUS` (optional) is the bus the
/// run summary is published to, where rules can fan it out (SNS, chat,
/// another pipeline). Unset, the summary is only logged and returned.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NotifyConfig {
    /// Bus name or ARN.
    pub event_bus: Option<String>,
    /// `SLUICE_EVENT_SOURCE` (the pipeline's own source), else
    /// [`NOTIFY_EVENT_SOURCE`].
    pub source: String,
    /// Retry policy for a failed PutEvents entry.
    pub backoff: Backoff,
}

impl NotifyConfig {
    /// Reads `NOTIFY_EVENT_BUS` (optional) and `SLUICE_EVENT_SOURCE`.
    pub fn from_env(env: &(impl Env + ?Sized)) -> Self {
        Self {
            event_bus: env.optional("NOTIFY_EVENT_BUS"),
            source: env
                .optional(crate::builtin::router::SOURCE_VAR)
                .unwrap_or_else(|| NOTIFY_EVENT_SOURCE.to_owned()),
            backoff: Backoff::default(),
        }
    }
}

/// `notify`: builds the run summary, publishes it when a bus is configured
/// (event source the pipeline's own, detail-type `pipeline-run-succeeded`,
/// detail = the summary), logs and returns it. A summary EventBridge still
/// rejects after the retries is a `RetryableError`, so the state machine's
/// `Retry` covers it.
pub async fn notify<P: EventPublisher>(
    publisher: &P,
    config: &NotifyConfig,
    input: Value,
    now: DateTime<Utc>,
) -> Result<NotifySummary, HandlerError> {
    let input: LoadOutput = typed_input(input, "notify")?;
    let source = format!("s3://{}/{}", input.source_bucket, input.source_key);
    let output = format!("s3://{}/{}", input.output_bucket, input.output_key);
    let summary = NotifySummary {
        status: "SUCCEEDED".into(),
        message: format!("processed {source} into {output}"),
        source,
        output,
        total_items: input.total_items,
        total_value: input.total_value,
        processed_at: input.processed_at,
        notified_at: timestamp(now),
    };
    if let Some(bus) = &config.event_bus {
        let detail = serde_json::to_string(&summary).map_err(|e| {
            HandlerError::validation(format!("notify: cannot serialize summary: {e}"))
        })?;
        let entry = EventEntry {
            bus: bus.clone(),
            source: config.source.clone(),
            detail_type: NOTIFY_DETAIL_TYPE.into(),
            detail,
        };
        if let Some(Some(error)) = publish_all(publisher, &[entry], config.backoff).await.pop() {
            return Err(HandlerError::retryable(format!(
                "notify: publishing to {bus}: {error}"
            )));
        }
    }
    tracing::info!(message = %summary.message, "pipeline run complete");
    Ok(summary)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kit::error::StoreError;
    use crate::kit::publisher::MemoryPublisher;
    use crate::kit::store::MemoryStore;
    use chrono::TimeZone;
    use lambda_runtime::Diagnostic;
    use serde_json::json;

    fn now() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2024, 6, 5, 9, 0, 0)
            .single()
            .expect("valid")
    }

    fn to_value<T: Serialize>(v: &T) -> Value {
        serde_json::to_value(v).expect("serializable")
    }

    #[tokio::test]
    async fn full_chain_through_json_payloads() {
        let store = MemoryStore::new();
        store.insert(
            "in",
            "orders/o1.json",
            r#"{"items":[{"quantity":4,"price":2.5}]}"#,
        );
        let extracted = extract(
            &store,
            &ExtractConfig::default(),
            json!({"bucket": "in", "key": "orders/o1.json"}),
        )
        .await
        .expect("extract");
        let transformed = transform(to_value(&extracted), now()).expect("transform");
        assert_eq!(transformed.total_items, Some(json!(4)));
        assert_eq!(transformed.total_value, Some(json!(10.0)));
        let config = LoadConfig {
            output_bucket: "out".into(),
        };
        let loaded = load(&store, &config, to_value(&transformed))
            .await
            .expect("load");
        assert_eq!(loaded.output_key, "processed/orders/o1.json");
        let written = store
            .json("out", "processed/orders/o1.json")
            .expect("written");
        assert_eq!(written["total_value"], json!(10.0));
        assert_eq!(written["processed_at"], "2024-06-05T09:00:00.000Z");
        let publisher = MemoryPublisher::new();
        let summary = notify(
            &publisher,
            &NotifyConfig::default(),
            to_value(&loaded),
            now(),
        )
        .await
        .expect("notify");
        assert!(publisher.calls().is_empty(), "no bus, no event");
        assert_eq!(summary.status, "SUCCEEDED");
        assert_eq!(summary.source, "s3://in/orders/o1.json");
        assert_eq!(summary.output, "s3://out/processed/orders/o1.json");
        assert_eq!(summary.total_items, Some(json!(4)));
    }

    #[test]
    fn input_shapes_for_extract() {
        let cfg = ExtractConfig {
            default_bucket: Some("dflt".into()),
        };
        assert_eq!(
            object_from_input(&json!({"key": "k"}), &cfg).expect("ok"),
            ("dflt".into(), "k".into())
        );
        let s3 =
            json!({"Records": [{"s3": {"bucket": {"name": "b"}, "object": {"key": "a+b.json"}}}]});
        assert_eq!(
            object_from_input(&s3, &cfg).expect("ok"),
            ("b".into(), "a b.json".into())
        );
        let eb = json!({"detail-type": "Object Created", "detail": {"bucket": {"name": "b"}, "object": {"key": "x.json"}}});
        assert_eq!(
            object_from_input(&eb, &cfg).expect("ok"),
            ("b".into(), "x.json".into())
        );
        assert!(object_from_input(&json!({"key": "k"}), &ExtractConfig::default()).is_err());
        assert!(object_from_input(&json!({"bucket": "b"}), &cfg).is_err());
        assert!(object_from_input(&json!({"Records": []}), &cfg).is_err());
        assert!(object_from_input(&json!("k"), &cfg).is_err());
    }

    #[tokio::test]
    async fn errors_carry_distinct_lambda_error_types() {
        let store = MemoryStore::new();
        store.insert("in", "bad.json", "{");
        let err = extract(
            &store,
            &ExtractConfig::default(),
            json!({"bucket": "in", "key": "bad.json"}),
        )
        .await
        .expect_err("invalid JSON");
        let diagnostic: Diagnostic = err.into();
        assert_eq!(diagnostic.error_type, "ValidationError");
        assert!(diagnostic.error_message.contains("s3://in/bad.json"));

        store.fail_on("ok.json", StoreError::Transient("throttled".into()));
        let err = extract(
            &store,
            &ExtractConfig::default(),
            json!({"bucket": "in", "key": "ok.json"}),
        )
        .await
        .expect_err("transient");
        let diagnostic: Diagnostic = err.into();
        assert_eq!(diagnostic.error_type, "RetryableError");
    }

    #[test]
    fn transform_rejects_malformed_items_and_wrong_input() {
        let bad =
            json!({"bucket": "b", "key": "k", "data": {"items": [{"quantity": "x", "price": 1}]}});
        let err = transform(bad, now()).expect_err("bad items");
        assert_eq!(err.error_type(), "ValidationError");
        assert!(err.message().contains("items[0].quantity"));
        let err = transform(json!({"unexpected": true}), now()).expect_err("wrong shape");
        assert!(err.message().starts_with("transform: input does not match"));
    }

    #[tokio::test]
    async fn oversized_extract_is_a_validation_error() {
        let store = MemoryStore::new();
        let big = format!("{{\"blob\":\"{}\"}}", "x".repeat(MAX_STATE_PAYLOAD_BYTES));
        store.insert("in", "big.json", big);
        let err = extract(
            &store,
            &ExtractConfig::default(),
            json!({"bucket": "in", "key": "big.json"}),
        )
        .await
        .expect_err("too big");
        assert!(!err.is_retryable());
        assert!(err.message().contains("state limit"));
    }

    #[tokio::test]
    async fn load_failure_is_retryable() {
        let store = MemoryStore::new();
        store.fail_on("processed/k", StoreError::Transient("503".into()));
        let input = json!({"bucket": "b", "key": "k", "data": {}, "processed_at": "t"});
        let err = load(
            &store,
            &LoadConfig {
                output_bucket: "out".into(),
            },
            input,
        )
        .await
        .expect_err("fails");
        assert!(err.is_retryable());
    }

    fn loaded() -> Value {
        json!({
            "source_bucket": "in", "source_key": "o1.json", "output_bucket": "out",
            "output_key": "processed/o1.json", "total_items": 4, "total_value": 10.0,
            "processed_at": "2024-06-05T09:00:00.000Z"
        })
    }

    #[tokio::test]
    async fn notify_publishes_the_summary_to_the_bus() {
        let publisher = MemoryPublisher::new();
        publisher.fail_entry("o1.json", 1);
        let config = NotifyConfig {
            event_bus: Some("runs".into()),
            source: "sluice.team-a.orders.0123456789abcdef".into(),
            backoff: crate::kit::retry::Backoff::immediate(3),
        };
        let summary = notify(&publisher, &config, loaded(), now())
            .await
            .expect("notify");
        assert_eq!(
            publisher.calls().len(),
            2,
            "the failed entry was resent once"
        );
        let published = publisher.published();
        assert_eq!(published.len(), 1);
        assert_eq!(published[0].bus, "runs");
        assert_eq!(published[0].source, "sluice.team-a.orders.0123456789abcdef");
        assert_eq!(published[0].detail_type, NOTIFY_DETAIL_TYPE);
        let detail: NotifySummary =
            serde_json::from_str(&published[0].detail).expect("detail is the summary");
        assert_eq!(detail, summary);
        assert_eq!(detail.notified_at, "2024-06-05T09:00:00.000Z");
    }

    #[tokio::test]
    async fn notify_that_cannot_publish_is_retryable_and_bad_input_is_not() {
        let publisher = MemoryPublisher::new();
        publisher.fail_entry("o1.json", 99);
        let config = NotifyConfig {
            event_bus: Some("runs".into()),
            source: NOTIFY_EVENT_SOURCE.into(),
            backoff: crate::kit::retry::Backoff::immediate(2),
        };
        let error = notify(&publisher, &config, loaded(), now())
            .await
            .expect_err("bus keeps failing");
        assert_eq!(error.error_type(), "RetryableError");
        assert!(error.message().contains("runs"), "{error}");
        let error = notify(&publisher, &config, json!({"bucket": "in"}), now())
            .await
            .expect_err("wrong input");
        assert_eq!(error.error_type(), "ValidationError");
    }
}
