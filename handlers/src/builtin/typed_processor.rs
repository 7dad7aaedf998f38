//! Pattern 2 — typed processors (A/B/C): SQS messages carrying the router's
//! EventBridge events; each names an object to enrich and write to
//! `OUTPUT_BUCKET` under `processed/<data_type>/<key>`. Failures are reported
//! per message (partial batch response). With `IDEMPOTENCY_TABLE` set,
//! already-processed events are skipped.

use aws_lambda_events::sqs::{SqsBatchResponse, SqsMessage};
use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::{Map, Value};

use crate::builtin::router::{RouteDetail, valid_data_type};
use crate::builtin::s3_transform::{OUTPUT_PREFIX, transform_object};
use crate::kit::config::{ConfigError, Env};
use crate::kit::error::HandlerError;
use crate::kit::events::S3ObjectRef;
use crate::kit::idempotency::{IdempotencyStore, Once, idempotency_key, once};
use crate::kit::sqs::{message_id, process_batch};
use crate::kit::store::ObjectStore;

/// Configuration of `typed-processor`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TypedProcessorConfig {
    /// `OUTPUT_BUCKET`.
    pub output_bucket: String,
}

impl TypedProcessorConfig {
    /// Reads `OUTPUT_BUCKET`.
    pub fn from_env(env: &(impl Env + ?Sized)) -> Result<Self, ConfigError> {
        Ok(Self {
            output_bucket: env.required("OUTPUT_BUCKET")?,
        })
    }
}

/// Extracts the route detail from a message body: an EventBridge event
/// (`{"detail-type": ..., "detail": {...}}`) or, when a queue is fed
/// directly, the detail itself.
pub fn parse_detail(body: &str) -> Result<RouteDetail, HandlerError> {
    let value: Value = serde_json::from_str(body)
        .map_err(|e| HandlerError::validation(format!("body is not JSON: {e}")))?;
    let detail = match value.get("detail") {
        Some(detail @ Value::Object(_)) => detail,
        _ => &value,
    };
    let detail = RouteDetail::deserialize(detail).map_err(|e| {
        HandlerError::validation(format!("event detail needs bucket, key and data_type: {e}"))
    })?;
    if detail.bucket.is_empty() || detail.key.is_empty() {
        return Err(HandlerError::validation(
            "event detail has an empty bucket or key",
        ));
    }
    if !valid_data_type(&detail.data_type) {
        return Err(HandlerError::validation(format!(
            "invalid data_type {:?}",
            detail.data_type
        )));
    }
    Ok(detail)
}

/// What happened to one message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MessageOutcome {
    /// Written to the given key.
    Processed(String),
    /// Already processed (idempotency claim exists).
    Duplicate,
}

async fn process_message<S: ObjectStore, I: IdempotencyStore>(
    store: &S,
    idempotency: Option<&I>,
    config: &TypedProcessorConfig,
    message: &SqsMessage,
    now: DateTime<Utc>,
    lease_until: DateTime<Utc>,
) -> Result<MessageOutcome, HandlerError> {
    let body = message
        .body
        .as_deref()
        .ok_or_else(|| HandlerError::validation("message has no body"))?;
    let detail = parse_detail(body)?;
    // The key hashes the detail, not the raw body: the EventBridge envelope
    // (id, time) differs each time the router re-publishes the same event.
    let payload = serde_json::to_vec(&detail)
        .map_err(|e| HandlerError::validation(format!("cannot serialize detail: {e}")))?;
    let key = idempotency_key(&payload);
    let outcome = once(idempotency, &key, now, lease_until, || async {
        let source = S3ObjectRef {
            bucket: detail.bucket.clone(),
            key: detail.key.clone(),
            sequencer: detail.sequencer.clone(),
        };
        let output_key = format!("{OUTPUT_PREFIX}{}/{}", detail.data_type, detail.key);
        let extra = Map::from_iter([(
            "data_type".to_owned(),
            Value::String(detail.data_type.clone()),
        )]);
        transform_object(
            store,
            &source,
            &config.output_bucket,
            &output_key,
            now,
            extra,
        )
        .await
    })
    .await?;
    Ok(match outcome {
        Once::Processed(done) => MessageOutcome::Processed(done.output_key),
        Once::Duplicate => MessageOutcome::Duplicate,
    })
}

/// Handles an SQS batch; returns the ids of failed messages.
///
/// `lease_until` bounds the idempotency claims (the invocation's deadline):
/// a claim left behind by a crash frees itself then.
///
/// Invalid messages are reported as failures too (not dropped): after the
/// queue's `maxReceiveCount` they move to the DLQ, where `dlq-handler`
/// archives them. From a FIFO queue, a failure also fails the rest of the
/// batch unprocessed ([`process_batch`]).
pub async fn handle<S: ObjectStore, I: IdempotencyStore>(
    store: &S,
    idempotency: Option<&I>,
    config: &TypedProcessorConfig,
    event: Value,
    now: DateTime<Utc>,
    lease_until: DateTime<Utc>,
) -> Result<SqsBatchResponse, HandlerError> {
    process_batch(event, |message| async move {
        let id = message_id(&message);
        match process_message(store, idempotency, config, &message, now, lease_until).await {
            Ok(MessageOutcome::Processed(key)) => {
                tracing::info!(message_id = id, output_key = %key, "processed");
                true
            }
            Ok(MessageOutcome::Duplicate) => {
                tracing::info!(message_id = id, "duplicate skipped");
                true
            }
            Err(error) => {
                tracing::error!(
                    message_id = id,
                    error_type = error.error_type(),
                    error = %error,
                    "message failed"
                );
                false
            }
        }
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kit::error::StoreError;
    use crate::kit::idempotency::MemoryIdempotency;
    use crate::kit::store::MemoryStore;
    use chrono::TimeZone;
    use serde_json::json;
    use std::time::Duration;

    fn now() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2024, 6, 5, 8, 0, 0)
            .single()
            .expect("valid")
    }

    /// The invocation's deadline.
    fn later() -> DateTime<Utc> {
        now() + chrono::Duration::seconds(30)
    }

    fn config() -> TypedProcessorConfig {
        TypedProcessorConfig {
            output_bucket: "out".into(),
        }
    }

    fn eventbridge_body(key: &str, data_type: &str, id: &str) -> String {
        json!({
            "version": "0", "id": id, "detail-type": "data-event", "source": "sluice.router",
            "account": "123456789012", "time": "2024-06-05T07:59:00Z", "region": "us-east-1",
            "resources": [], "detail": {"bucket": "in", "key": key, "data_type": data_type}
        })
        .to_string()
    }

    fn message(id: &str, body: &str) -> Value {
        json!({
            "messageId": id, "receiptHandle": "r", "body": body,
            "attributes": {"ApproximateReceiveCount": "1"}, "messageAttributes": {},
            "md5OfBody": "x", "eventSource": "aws:sqs",
            "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:type-a", "awsRegion": "us-east-1"
        })
    }

    fn failures(response: &SqsBatchResponse) -> Vec<String> {
        response
            .batch_item_failures
            .iter()
            .map(|f| f.item_identifier.clone())
            .collect()
    }

    const NO_IDEMPOTENCY: Option<&MemoryIdempotency> = None;

    #[test]
    fn detail_from_envelope_or_bare() {
        let d = parse_detail(&eventbridge_body("a.json", "type_a", "e1")).expect("ok");
        assert_eq!(
            (d.bucket.as_str(), d.key.as_str(), d.data_type.as_str()),
            ("in", "a.json", "type_a")
        );
        let bare = parse_detail(r#"{"bucket":"b","key":"k","data_type":"type_c"}"#).expect("ok");
        assert_eq!(bare.data_type, "type_c");
        assert!(parse_detail(r#"{"detail":{"bucket":"b","key":"k"}}"#).is_err());
        assert!(parse_detail(r#"{"bucket":"b","key":"k","data_type":"a/b"}"#).is_err());
        assert!(parse_detail("nope").is_err());
    }

    #[tokio::test]
    async fn writes_under_data_type_prefix() {
        let store = MemoryStore::new();
        store.insert("in", "c/1.json", r#"{"items":[{"quantity":2,"price":3}]}"#);
        let ev = json!({"Records": [message("m1", &eventbridge_body("c/1.json", "type_a", "e1"))]});
        let response = handle(&store, NO_IDEMPOTENCY, &config(), ev, now(), later())
            .await
            .expect("ok");
        assert!(failures(&response).is_empty());
        let out = store
            .json("out", "processed/type_a/c/1.json")
            .expect("written");
        assert_eq!(out["total_value"], json!(6));
        assert_eq!(out["data_type"], "type_a");
        assert_eq!(out["processed_at"], "2024-06-05T08:00:00.000Z");
    }

    #[tokio::test]
    async fn poisoned_messages_are_reported_individually() {
        let store = MemoryStore::new();
        store.insert("in", "good.json", "{}");
        store.insert("in", "bad.json", "{");
        store.insert("in", "slow.json", "{}");
        store.fail_on(
            "processed/type_c/slow.json",
            StoreError::Transient("503".into()),
        );
        let ev = json!({"Records": [
            message("m1", &eventbridge_body("good.json", "type_c", "e1")),
            message("m2", &eventbridge_body("bad.json", "type_c", "e2")),
            message("m3", "not json"),
            message("m4", &eventbridge_body("missing.json", "type_c", "e4")),
            message("m5", &eventbridge_body("slow.json", "type_c", "e5")),
        ]});
        let response = handle(&store, NO_IDEMPOTENCY, &config(), ev, now(), later())
            .await
            .expect("ok");
        assert_eq!(failures(&response), vec!["m2", "m3", "m4", "m5"]);
        assert!(store.object("out", "processed/type_c/good.json").is_some());
    }

    #[tokio::test]
    async fn empty_batch_has_no_failures() {
        let response = handle(
            &MemoryStore::new(),
            NO_IDEMPOTENCY,
            &config(),
            json!({"Records": []}),
            now(),
            later(),
        )
        .await
        .expect("ok");
        assert!(failures(&response).is_empty());
    }

    #[tokio::test]
    async fn duplicates_are_skipped_even_when_republished() {
        let store = MemoryStore::new();
        store.insert("in", "a.json", "{}");
        let idem = MemoryIdempotency::new(Duration::from_secs(3600));
        // Same detail, different EventBridge envelopes (a router retry),
        // plus an exact SQS redelivery.
        let ev = json!({"Records": [
            message("m1", &eventbridge_body("a.json", "type_a", "e1")),
            message("m2", &eventbridge_body("a.json", "type_a", "e2")),
            message("m1", &eventbridge_body("a.json", "type_a", "e1")),
        ]});
        let response = handle(&store, Some(&idem), &config(), ev, now(), later())
            .await
            .expect("ok");
        assert!(failures(&response).is_empty());
        assert_eq!(store.put_calls(), 1);
    }

    #[tokio::test]
    async fn a_message_another_invocation_is_processing_is_retried() {
        use crate::kit::idempotency::{Claim, IdempotencyStore as _};
        let store = MemoryStore::new();
        store.insert("in", "a.json", "{}");
        let idem = MemoryIdempotency::new(Duration::from_secs(3600));
        let body = eventbridge_body("a.json", "type_a", "e1");
        let detail = serde_json::to_vec(&parse_detail(&body).expect("detail")).expect("json");
        // A concurrent delivery of the same event holds the claim.
        let claim = idem
            .claim(&idempotency_key(&detail), "other", now(), later())
            .await
            .expect("claim");
        assert_eq!(claim, Claim::New);
        let ev = json!({"Records": [message("m1", &body)]});
        let response = handle(&store, Some(&idem), &config(), ev, now(), later())
            .await
            .expect("ok");
        assert_eq!(failures(&response), vec!["m1"], "retried, not skipped");
        assert_eq!(store.put_calls(), 0);
    }

    #[tokio::test]
    async fn failed_processing_releases_the_claim() {
        let store = MemoryStore::new();
        let idem = MemoryIdempotency::new(Duration::from_secs(3600));
        let body = eventbridge_body("late.json", "type_b", "e1");
        let ev = json!({"Records": [message("m1", &body)]});
        let response = handle(&store, Some(&idem), &config(), ev.clone(), now(), later())
            .await
            .expect("ok");
        assert_eq!(failures(&response), vec!["m1"]);
        // The object arrives; the redelivered message must be processed.
        store.insert("in", "late.json", "{}");
        let response = handle(&store, Some(&idem), &config(), ev, now(), later())
            .await
            .expect("ok");
        assert!(failures(&response).is_empty());
        assert!(store.object("out", "processed/type_b/late.json").is_some());
    }
}
