//! Pattern 4 — stream processing: Kinesis records (base64 JSON) scored for
//! anomalies and stored in DynamoDB (`RESULTS_TABLE`, partition key `id`).
//!
//! Scoring: when a record has both `value` and `threshold`, it is an anomaly
//! if `value > 1.5 × threshold`, with `anomaly_score = value / threshold − 1`;
//! otherwise `anomaly = false`, `anomaly_score = 0`.
//!
//! Bad records are not dropped (the article's version logged and moved on):
//! their sequence numbers go into `batchItemFailures`, so Lambda retries from
//! there and, after the mapping's retry limit, sends them to its on-failure
//! destination.

use std::collections::HashMap;

use aws_lambda_events::streams::KinesisEventResponse;
use base64::Engine;
use chrono::{DateTime, Utc};
use serde_json::{Map, Number, Value};

use crate::config::{ConfigError, Env};
use crate::dynamo::{AttrValue, Item, ItemTable, MAX_ITEM_BYTES, item_size, write_all};
use crate::enrich::timestamp;
use crate::error::HandlerError;
use crate::events::{RawRecords, json_kind};
use crate::retry::Backoff;

/// Partition key of the results table.
pub const KEY_ATTRIBUTE: &str = "id";
/// Anomaly when `value > ANOMALY_FACTOR × threshold`.
pub const ANOMALY_FACTOR: f64 = 1.5;

/// Configuration of `stream-anomaly`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamConfig {
    /// `RESULTS_TABLE`.
    pub table: String,
    /// Retry policy for unprocessed items.
    pub backoff: Backoff,
}

impl StreamConfig {
    /// Reads `RESULTS_TABLE`.
    pub fn from_env(env: &(impl Env + ?Sized)) -> Result<Self, ConfigError> {
        Ok(Self {
            table: env.required("RESULTS_TABLE")?,
            backoff: Backoff::default(),
        })
    }
}

/// The anomaly verdict for one record.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Score {
    /// Whether the value exceeds 1.5 × threshold.
    pub anomaly: bool,
    /// `value / threshold − 1` for anomalies, else 0.
    pub score: f64,
}

/// Scores a record (pure).
pub fn score(data: &Map<String, Value>) -> Result<Score, String> {
    let (Some(value), Some(threshold)) = (data.get("value"), data.get("threshold")) else {
        return Ok(Score {
            anomaly: false,
            score: 0.0,
        });
    };
    let number = |v: &Value, field: &str| {
        v.as_f64()
            .ok_or_else(|| format!("`{field}` must be a number, got {}", json_kind(v)))
    };
    let value = number(value, "value")?;
    let threshold = number(threshold, "threshold")?;
    if threshold <= 0.0 {
        return Err(format!("`threshold` must be positive, got {threshold}"));
    }
    if value > ANOMALY_FACTOR * threshold {
        Ok(Score {
            anomaly: true,
            score: value / threshold - 1.0,
        })
    } else {
        Ok(Score {
            anomaly: false,
            score: 0.0,
        })
    }
}

/// A decoded Kinesis record.
#[derive(Debug, Clone, PartialEq)]
struct StreamRecord {
    sequence_number: String,
    partition_key: Option<String>,
    data: Result<Map<String, Value>, String>,
}

fn decode_record(record: &Value) -> Result<StreamRecord, HandlerError> {
    let kinesis = record.get("kinesis");
    let sequence_number = kinesis
        .and_then(|k| k.get("sequenceNumber"))
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .ok_or_else(|| HandlerError::validation("Kinesis record without sequenceNumber"))?
        .to_owned();
    let partition_key = kinesis
        .and_then(|k| k.get("partitionKey"))
        .and_then(Value::as_str)
        .map(str::to_owned);
    let data = kinesis
        .and_then(|k| k.get("data"))
        .and_then(Value::as_str)
        .ok_or_else(|| "record has no base64 `data`".to_owned())
        .and_then(|b64| {
            base64::engine::general_purpose::STANDARD
                .decode(b64)
                .map_err(|e| format!("data is not base64: {e}"))
        })
        .and_then(|bytes| {
            serde_json::from_slice::<Value>(&bytes).map_err(|e| format!("data is not JSON: {e}"))
        })
        .and_then(|value| match value {
            Value::Object(map) => Ok(map),
            other => Err(format!(
                "data must be a JSON object, got {}",
                json_kind(&other)
            )),
        });
    Ok(StreamRecord {
        sequence_number,
        partition_key,
        data,
    })
}

/// The item id: the record's `id` (string or number), else the sequence
/// number — deterministic, so a retried batch overwrites rather than
/// duplicates.
fn item_id(data: &Map<String, Value>, sequence_number: &str) -> Result<String, String> {
    match data.get("id") {
        None | Some(Value::Null) => Ok(sequence_number.to_owned()),
        Some(Value::String(s)) if !s.is_empty() => Ok(s.clone()),
        Some(Value::Number(n)) => Ok(n.to_string()),
        Some(other) => Err(format!(
            "`id` must be a non-empty string or a number, got {}",
            json_kind(other)
        )),
    }
}

/// Builds the DynamoDB item for one record (pure).
pub fn build_item(
    mut data: Map<String, Value>,
    sequence_number: &str,
    partition_key: Option<&str>,
    now: DateTime<Utc>,
) -> Result<Item, String> {
    let id = item_id(&data, sequence_number)?;
    let verdict = score(&data)?;
    let score_json = Number::from_f64((verdict.score * 1e9).round() / 1e9)
        .map(Value::Number)
        .ok_or_else(|| "anomaly score is not finite".to_owned())?;
    let processed_at = timestamp(now);
    data.insert("anomaly".into(), Value::Bool(verdict.anomaly));
    data.insert("anomaly_score".into(), score_json.clone());
    data.insert("processed_at".into(), Value::String(processed_at.clone()));

    let mut item = Item::new();
    item.insert(KEY_ATTRIBUTE.into(), AttrValue::S(id));
    item.insert("anomaly".into(), AttrValue::Bool(verdict.anomaly));
    item.insert("anomaly_score".into(), AttrValue::from_json(&score_json)?);
    item.insert("processed_at".into(), AttrValue::S(processed_at));
    item.insert("sequence_number".into(), AttrValue::s(sequence_number));
    if let Some(pk) = partition_key {
        item.insert("partition_key".into(), AttrValue::s(pk));
    }
    if let Some(ts) = data.get("timestamp") {
        item.insert("timestamp".into(), AttrValue::from_json(ts)?);
    }
    item.insert("data".into(), AttrValue::from_json(&Value::Object(data))?);
    let size = item_size(&item);
    if size > MAX_ITEM_BYTES {
        return Err(format!(
            "item is about {size} bytes, over DynamoDB's 400 KB limit"
        ));
    }
    Ok(item)
}

/// Handles a Kinesis batch; returns the sequence numbers of failed records.
pub async fn handle<T: ItemTable>(
    table: &T,
    config: &StreamConfig,
    event: Value,
    now: DateTime<Utc>,
) -> Result<KinesisEventResponse, HandlerError> {
    let records = RawRecords::from_event(event)?.records;
    let mut failed: Vec<String> = Vec::new();
    // id → (item, sequence numbers it stands for). A batch may carry the same
    // id twice; BatchWriteItem rejects duplicate keys, and the later record
    // is the newer state, so it wins.
    let mut by_id: HashMap<String, (Item, Vec<String>)> = HashMap::new();
    let mut order: Vec<String> = Vec::new();
    for raw in &records {
        let record = decode_record(raw)?;
        let built = record.data.and_then(|data| {
            build_item(
                data,
                &record.sequence_number,
                record.partition_key.as_deref(),
                now,
            )
        });
        match built {
            Ok(item) => {
                let id = item
                    .get(KEY_ATTRIBUTE)
                    .and_then(AttrValue::as_s)
                    .unwrap_or_default()
                    .to_owned();
                match by_id.get_mut(&id) {
                    Some((existing, sequences)) => {
                        *existing = item;
                        sequences.push(record.sequence_number);
                    }
                    None => {
                        order.push(id.clone());
                        by_id.insert(id, (item, vec![record.sequence_number]));
                    }
                }
            }
            Err(reason) => {
                tracing::error!(sequence_number = %record.sequence_number, %reason, "bad record");
                failed.push(record.sequence_number);
            }
        }
    }

    let mut items = Vec::with_capacity(order.len());
    let mut sequences = Vec::with_capacity(order.len());
    for id in &order {
        if let Some((item, seqs)) = by_id.remove(id) {
            items.push(item);
            sequences.push(seqs);
        }
    }
    let errors = write_all(table, &config.table, &items, KEY_ATTRIBUTE, config.backoff).await;
    let mut written = 0usize;
    for (error, seqs) in errors.into_iter().zip(sequences) {
        match error {
            None => written += 1,
            Some(error) => {
                tracing::error!(error = %error, "write failed");
                failed.extend(seqs);
            }
        }
    }
    tracing::info!(
        records = records.len(),
        written,
        failed = failed.len(),
        "batch done"
    );
    let mut response = KinesisEventResponse::default();
    response.set_failures(failed);
    Ok(response)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dynamo::MemoryTable;
    use chrono::TimeZone;
    use serde_json::json;

    fn now() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2024, 6, 5, 10, 0, 0)
            .single()
            .expect("valid")
    }

    fn config() -> StreamConfig {
        StreamConfig {
            table: "results".into(),
            backoff: Backoff::immediate(3),
        }
    }

    fn record(seq: &str, payload: &str) -> Value {
        json!({
            "eventSource": "aws:kinesis", "eventID": format!("shardId-000000000000:{seq}"),
            "eventName": "aws:kinesis:record", "eventVersion": "1.0", "awsRegion": "us-east-1",
            "invokeIdentityArn": "arn:aws:iam::123456789012:role/r",
            "eventSourceARN": "arn:aws:kinesis:us-east-1:123456789012:stream/s",
            "kinesis": {
                "kinesisSchemaVersion": "1.0", "partitionKey": "pk", "sequenceNumber": seq,
                "approximateArrivalTimestamp": 1717581600.0,
                "data": base64::engine::general_purpose::STANDARD.encode(payload)
            }
        })
    }

    fn failures(r: &KinesisEventResponse) -> Vec<String> {
        r.batch_item_failures
            .iter()
            .filter_map(|f| f.item_identifier.clone())
            .collect()
    }

    fn map(v: Value) -> Map<String, Value> {
        v.as_object().expect("object").clone()
    }

    #[test]
    fn scoring_rules() {
        assert_eq!(
            score(&map(json!({"value": 200, "threshold": 100}))),
            Ok(Score {
                anomaly: true,
                score: 1.0
            })
        );
        assert_eq!(
            score(&map(json!({"value": 150, "threshold": 100}))),
            Ok(Score {
                anomaly: false,
                score: 0.0
            })
        );
        assert_eq!(
            score(&map(json!({"value": 151}))),
            Ok(Score {
                anomaly: false,
                score: 0.0
            })
        );
        assert!(score(&map(json!({"value": "1", "threshold": 1}))).is_err());
        assert!(score(&map(json!({"value": 1, "threshold": 0}))).is_err());
    }

    #[tokio::test]
    async fn stores_scored_items_keyed_by_id_or_sequence() {
        let table = MemoryTable::new("id");
        let ev = json!({"Records": [
            record("49500", r#"{"id":"sensor-1","value":300,"threshold":100,"timestamp":"2024-06-05T09:59:00Z"}"#),
            record("49501", r#"{"value":10,"threshold":100}"#),
        ]});
        let response = handle(&table, &config(), ev, now()).await.expect("ok");
        assert!(failures(&response).is_empty());
        let item = table.get("results", "sensor-1").expect("stored by id");
        assert_eq!(item["anomaly"], AttrValue::Bool(true));
        assert_eq!(item["anomaly_score"], AttrValue::N("2.0".into()));
        assert_eq!(
            item["processed_at"],
            AttrValue::s("2024-06-05T10:00:00.000Z")
        );
        assert_eq!(item["timestamp"], AttrValue::s("2024-06-05T09:59:00Z"));
        let second = table
            .get("results", "49501")
            .expect("keyed by sequence number");
        assert_eq!(second["anomaly"], AttrValue::Bool(false));
    }

    #[tokio::test]
    async fn bad_records_are_reported_not_dropped() {
        let table = MemoryTable::new("id");
        let mut not_b64 = record("3", "{}");
        not_b64["kinesis"]["data"] = json!("%%%");
        let ev = json!({"Records": [
            record("1", r#"{"id":"a","value":1,"threshold":1}"#),
            record("2", "not json"),
            not_b64,
            record("4", r#"{"value":5,"threshold":-1}"#),
            record("5", "[1,2]"),
            record("6", &format!(r#"{{"blob":"{}"}}"#, "x".repeat(MAX_ITEM_BYTES))),
        ]});
        let response = handle(&table, &config(), ev, now()).await.expect("ok");
        assert_eq!(failures(&response), vec!["2", "3", "4", "5", "6"]);
        assert!(table.get("results", "a").is_some());
    }

    #[tokio::test]
    async fn duplicate_ids_in_a_batch_keep_the_latest() {
        let table = MemoryTable::new("id");
        let ev = json!({"Records": [
            record("1", r#"{"id":"a","value":1}"#),
            record("2", r#"{"id":"a","value":2}"#),
        ]});
        let response = handle(&table, &config(), ev, now()).await.expect("ok");
        assert!(failures(&response).is_empty());
        assert_eq!(table.calls(), vec![1]);
        let item = table.get("results", "a").expect("stored");
        assert_eq!(item["sequence_number"], AttrValue::s("2"));
    }

    #[tokio::test]
    async fn unprocessed_items_retry_then_fail_by_sequence_number() {
        let table = MemoryTable::new("id");
        table.leave_unprocessed("b", 100);
        table.leave_unprocessed("c", 1);
        let mut records = vec![record("1", r#"{"id":"b"}"#), record("2", r#"{"id":"c"}"#)];
        for i in 10..40 {
            records.push(record(&i.to_string(), "{}"));
        }
        let response = handle(&table, &config(), json!({"Records": records}), now())
            .await
            .expect("ok");
        assert_eq!(failures(&response), vec!["1"]);
        assert!(table.get("results", "c").is_some());
        assert_eq!(table.len("results"), 31);
        assert!(table.calls().iter().all(|&n| n <= 25));
    }

    #[tokio::test]
    async fn empty_batch_and_missing_sequence_number() {
        let table = MemoryTable::new("id");
        let response = handle(&table, &config(), json!({"Records": []}), now())
            .await
            .expect("ok");
        assert!(failures(&response).is_empty());
        assert!(table.calls().is_empty());
        let err = handle(
            &table,
            &config(),
            json!({"Records": [{"kinesis": {"data": "e30="}}]}),
            now(),
        )
        .await
        .expect_err("cannot report without a sequence number");
        assert!(!err.is_retryable());
    }
}
