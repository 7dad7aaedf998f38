//! Pattern 1 — event-triggered processing: every object named by an S3
//! event is read, enriched ([`crate::builtin::enrich`]) and written to
//! `OUTPUT_BUCKET` under `processed/<key>`.
//!
//! The object is read into one buffer sized from its length, enriched in
//! that buffer as text ([`crate::builtin::enrich_text`]: parsed once, only `items`
//! read into numbers, no `Value` tree) and written from it, so a 10 MB
//! object costs about 10 MB of memory and one pass of parsing.

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::{Map, Value};

use crate::builtin::enrich_text::{enrich_in_place, headroom};
use crate::kit::config::{ConfigError, Env};
use crate::kit::error::HandlerError;
use crate::kit::events::{Payload, S3ObjectRef, s3_objects};
use crate::kit::store::ObjectStore;
use crate::kit::time::timestamp;

/// Prefix of every output key.
pub const OUTPUT_PREFIX: &str = "processed/";
/// Content type of every JSON object the handlers write.
pub const JSON_CONTENT_TYPE: &str = "application/json";

/// Configuration of `s3-json-transform`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TransformConfig {
    /// `OUTPUT_BUCKET`: where results go.
    pub output_bucket: String,
}

impl TransformConfig {
    /// Reads `OUTPUT_BUCKET`.
    pub fn from_env(env: &(impl Env + ?Sized)) -> Result<Self, ConfigError> {
        Ok(Self {
            output_bucket: env.required("OUTPUT_BUCKET")?,
        })
    }
}

/// One object written.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ProcessedObject {
    /// `s3://bucket/key` of the input.
    pub source: String,
    /// Output bucket.
    pub output_bucket: String,
    /// Output key.
    pub output_key: String,
    /// Σ quantity, when the document had `items`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub total_items: Option<Value>,
    /// Σ quantity × price, when the document had `items`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub total_value: Option<Value>,
}

/// What an invocation did (the function's response).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct TransformReport {
    /// Objects written.
    pub processed: Vec<ProcessedObject>,
    /// Inputs ignored, with the reason.
    pub skipped: Vec<String>,
}

/// Reads `source`, enriches it, adds `extra_fields` and writes it to
/// `output_bucket`/`output_key` as JSON. Errors name the source object.
pub async fn transform_object<S: ObjectStore>(
    store: &S,
    source: &S3ObjectRef,
    output_bucket: &str,
    output_key: &str,
    now: DateTime<Utc>,
    extra_fields: Map<String, Value>,
) -> Result<ProcessedObject, HandlerError> {
    let uri = source.uri();
    let mut body = store
        .get_with_headroom(&source.bucket, &source.key, headroom(&extra_fields))
        .await
        .map_err(HandlerError::from)?;
    let totals = enrich_in_place(&mut body, &timestamp(now), &extra_fields)
        .map_err(|e| HandlerError::validation(format!("{uri}: {e}")))?;
    store
        .put(output_bucket, output_key, body, JSON_CONTENT_TYPE)
        .await
        .map_err(|e| HandlerError::from(e).context(&uri))?;
    Ok(ProcessedObject {
        source: uri,
        output_bucket: output_bucket.to_owned(),
        output_key: output_key.to_owned(),
        total_items: totals.and_then(|t| t.total_items.to_json()),
        total_value: totals.and_then(|t| t.total_value.to_json()),
    })
}

/// Handles an S3 event: processes every record, then fails (naming each bad
/// object) if any record failed. Good records are written even when a
/// neighbour fails; a retry rewrites them with identical content apart from
/// `processed_at`.
///
/// `event` is the payload as Lambda delivered it (JSON text) or a [`Value`];
/// each record is parsed from its own text into just the fields read.
pub async fn handle<S: ObjectStore, P: Payload>(
    store: &S,
    config: &TransformConfig,
    event: P,
    now: DateTime<Utc>,
) -> Result<TransformReport, HandlerError> {
    let records = s3_objects(&event)?;
    let total = records.len();
    let mut report = TransformReport::default();
    let mut errors = Vec::new();
    for record in records {
        let source = match record {
            Ok(source) => source,
            Err(e) => {
                errors.push(e);
                continue;
            }
        };
        // Writing our own output back into a bucket that triggers us would
        // loop forever (processed/processed/...).
        if source.bucket == config.output_bucket && source.key.starts_with(OUTPUT_PREFIX) {
            tracing::warn!(source = %source.uri(), "skipping our own output");
            report
                .skipped
                .push(format!("{}: output of this function", source.uri()));
            continue;
        }
        let output_key = format!("{OUTPUT_PREFIX}{}", source.key);
        match transform_object(
            store,
            &source,
            &config.output_bucket,
            &output_key,
            now,
            Map::new(),
        )
        .await
        {
            Ok(done) => {
                tracing::info!(source = %done.source, output_key = %done.output_key, "processed object");
                report.processed.push(done);
            }
            Err(e) => {
                tracing::error!(error_type = e.error_type(), error = %e, "record failed");
                errors.push(e);
            }
        }
    }
    match HandlerError::combine(errors, total) {
        Some(error) => Err(error),
        None => Ok(report),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kit::error::StoreError;
    use crate::kit::store::MemoryStore;
    use chrono::TimeZone;
    use serde_json::json;

    fn now() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2024, 6, 5, 1, 0, 0)
            .single()
            .expect("valid")
    }

    fn config() -> TransformConfig {
        TransformConfig {
            output_bucket: "out".into(),
        }
    }

    fn record(bucket: &str, key: &str) -> Value {
        json!({
            "eventVersion": "2.1", "eventSource": "aws:s3", "awsRegion": "us-east-1",
            "eventTime": "2024-06-05T00:59:59.000Z", "eventName": "ObjectCreated:Put",
            "userIdentity": {"principalId": "AWS:X"}, "requestParameters": {"sourceIPAddress": "1.2.3.4"},
            "responseElements": {},
            "s3": {"s3SchemaVersion": "1.0", "configurationId": "c",
                   "bucket": {"name": bucket, "arn": format!("arn:aws:s3:::{bucket}")},
                   "object": {"key": key, "size": 1, "eTag": "e", "sequencer": "01"}}
        })
    }

    fn event(records: Vec<Value>) -> Value {
        json!({ "Records": records })
    }

    #[test]
    fn config_names_missing_variable() {
        let err = TransformConfig::from_env(&[("X", "y")]).expect_err("missing");
        assert!(err.to_string().contains("OUTPUT_BUCKET"));
        assert_eq!(
            TransformConfig::from_env(&[("OUTPUT_BUCKET", "o")])
                .expect("ok")
                .output_bucket,
            "o"
        );
    }

    #[tokio::test]
    async fn processes_every_record() {
        let store = MemoryStore::new();
        store.insert(
            "in",
            "a.json",
            r#"{"items":[{"quantity":2,"price":1.25},{"quantity":3,"price":2}]}"#,
        );
        store.insert("in", "dir/b c.json", r#"{"name":"no items"}"#);
        let ev = event(vec![record("in", "a.json"), record("in", "dir/b+c.json")]);
        let report = handle(&store, &config(), ev, now()).await.expect("ok");
        assert_eq!(report.processed.len(), 2);

        let a = store.object("out", "processed/a.json").expect("written");
        assert_eq!(a.content_type.as_deref(), Some("application/json"));
        let a: Value = serde_json::from_slice(&a.body).expect("json");
        assert_eq!(a["total_items"], json!(5));
        assert_eq!(a["total_value"], json!(8.5));
        assert_eq!(a["processed_at"], "2024-06-05T01:00:00.000Z");

        let b = store
            .json("out", "processed/dir/b c.json")
            .expect("decoded key written");
        assert_eq!(b["name"], "no items");
        assert!(b.get("total_items").is_none());
    }

    #[tokio::test]
    async fn empty_event_is_a_no_op() {
        let store = MemoryStore::new();
        let report = handle(&store, &config(), event(vec![]), now())
            .await
            .expect("ok");
        assert!(report.processed.is_empty());
        assert_eq!(store.put_calls(), 0);
    }

    #[tokio::test]
    async fn invalid_json_is_a_validation_error_naming_the_key_and_others_still_run() {
        let store = MemoryStore::new();
        store.insert("in", "good.json", r#"{"a":1}"#);
        store.insert("in", "bad.json", "{oops");
        let ev = event(vec![record("in", "bad.json"), record("in", "good.json")]);
        let err = handle(&store, &config(), ev, now())
            .await
            .expect_err("must fail");
        assert_eq!(err.error_type(), "ValidationError");
        assert!(
            err.message().contains("s3://in/bad.json: invalid JSON"),
            "{err}"
        );
        assert!(err.message().contains("1 of 2"), "{err}");
        assert!(store.object("out", "processed/good.json").is_some());
        assert!(store.object("out", "processed/bad.json").is_none());
    }

    #[tokio::test]
    async fn malformed_items_name_the_key() {
        let store = MemoryStore::new();
        store.insert("in", "x.json", r#"{"items":[{"quantity":1}]}"#);
        let err = handle(
            &store,
            &config(),
            event(vec![record("in", "x.json")]),
            now(),
        )
        .await
        .expect_err("must fail");
        assert!(!err.is_retryable());
        assert!(
            err.message()
                .contains("s3://in/x.json: items[0] has no `price`"),
            "{err}"
        );
    }

    #[tokio::test]
    async fn transient_failures_are_retryable() {
        let store = MemoryStore::new();
        store.insert("in", "a.json", "{}");
        store.insert("in", "b.json", "nope");
        store.fail_on("processed/a.json", StoreError::Transient("SlowDown".into()));
        let ev = event(vec![record("in", "a.json"), record("in", "b.json")]);
        let err = handle(&store, &config(), ev, now())
            .await
            .expect_err("must fail");
        assert_eq!(err.error_type(), "RetryableError");
        assert!(err.message().contains("SlowDown"));
    }

    #[tokio::test]
    async fn missing_object_and_malformed_record_are_validation_errors() {
        let store = MemoryStore::new();
        let ev = event(vec![record("in", "gone.json"), json!({"s3": {}})]);
        let err = handle(&store, &config(), ev, now())
            .await
            .expect_err("must fail");
        assert!(!err.is_retryable());
        assert!(err.message().contains("2 of 2"), "{err}");
        assert!(err.message().contains("gone.json"), "{err}");
    }

    #[tokio::test]
    async fn own_output_is_not_reprocessed() {
        let store = MemoryStore::new();
        store.insert("out", "processed/a.json", "{}");
        let report = handle(
            &store,
            &config(),
            event(vec![record("out", "processed/a.json")]),
            now(),
        )
        .await
        .expect("ok");
        assert_eq!(report.skipped.len(), 1);
        assert_eq!(store.put_calls(), 0);
        assert!(store.object("out", "processed/processed/a.json").is_none());
    }
}
