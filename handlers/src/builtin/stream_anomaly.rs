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
//!
//! Cost per record: the event is parsed once, from its JSON text, into
//! typed records that borrow their strings from it; each record's data is
//! decoded into one reused buffer and parsed straight into DynamoDB
//! attribute values; the clock is read and formatted once per batch. The
//! batch's BatchWriteItem calls (25 items each) are in flight together, up
//! to the function's [`IoLimits`].

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap};

use aws_lambda_events::streams::KinesisEventResponse;
use base64::Engine;
use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde::de::{self, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Number, Value};

use crate::kit::config::{ConfigError, Env};
use crate::kit::dynamo::{
    AttrValue, Item, ItemTable, MAX_ITEM_BYTES, ParseError, item_size, write_all_concurrently,
};
use crate::kit::error::HandlerError;
use crate::kit::events::{Payload, json_kind};
use crate::kit::limits::IoLimits;
use crate::kit::retry::Backoff;
use crate::kit::time::timestamp;

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
    let number = |v: &Value| v.as_f64().ok_or_else(|| json_kind(v));
    verdict(
        data.get("value").map(number),
        data.get("threshold").map(number),
    )
}

/// [`score`] over a record already made of attribute values.
fn score_attributes(data: &BTreeMap<String, AttrValue>) -> Result<Score, String> {
    verdict(
        data.get("value").map(attr_number),
        data.get("threshold").map(attr_number),
    )
}

/// An attribute as a number, or the JSON kind it was.
fn attr_number(value: &AttrValue) -> Result<f64, &'static str> {
    match value {
        // The text came from a JSON number and parses back to it exactly.
        AttrValue::N(text) => text.parse().map_err(|_| "a number"),
        other => Err(attr_kind(other)),
    }
}

/// [`json_kind`] for the JSON an attribute value came from.
fn attr_kind(value: &AttrValue) -> &'static str {
    match value {
        AttrValue::S(_) => "a string",
        AttrValue::N(_) => "a number",
        AttrValue::Bool(_) => "a boolean",
        AttrValue::Null => "null",
        AttrValue::L(_) => "an array",
        AttrValue::M(_) => "an object",
    }
}

/// The scoring rule, given each field as absent, a number, or the kind of
/// JSON it was instead.
fn verdict(
    value: Option<Result<f64, &'static str>>,
    threshold: Option<Result<f64, &'static str>>,
) -> Result<Score, String> {
    let (Some(value), Some(threshold)) = (value, threshold) else {
        return Ok(Score {
            anomaly: false,
            score: 0.0,
        });
    };
    let value = value.map_err(|kind| format!("`value` must be a number, got {kind}"))?;
    let threshold =
        threshold.map_err(|kind| format!("`threshold` must be a number, got {kind}"))?;
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

/// A Kinesis event, split into records that borrow their strings from it.
#[derive(Debug, Default, Deserialize)]
struct KinesisEvent<'a> {
    /// Missing `Records` means no records.
    #[serde(rename = "Records", default, borrow)]
    records: Vec<KinesisRecord<'a>>,
}

/// The fields of a Kinesis record the handler reads. Parsed leniently, as
/// [`crate::kit::events`] explains: a record of the wrong shape, or a field of the
/// wrong type, reads as a missing field and fails that record only.
#[derive(Debug, Default)]
struct KinesisRecord<'a> {
    sequence_number: Option<Cow<'a, str>>,
    partition_key: Option<Cow<'a, str>>,
    data: Option<Cow<'a, str>>,
}

/// A field name: the few the handler reads, or any other.
enum Field {
    Kinesis,
    SequenceNumber,
    PartitionKey,
    Data,
    Other,
}

impl<'de> Deserialize<'de> for Field {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct FieldVisitor;
        impl Visitor<'_> for FieldVisitor {
            type Value = Field;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a field name")
            }
            fn visit_str<E>(self, name: &str) -> Result<Field, E> {
                Ok(match name {
                    "kinesis" => Field::Kinesis,
                    "sequenceNumber" => Field::SequenceNumber,
                    "partitionKey" => Field::PartitionKey,
                    "data" => Field::Data,
                    _ => Field::Other,
                })
            }
        }
        deserializer.deserialize_identifier(FieldVisitor)
    }
}

/// Skips whatever a visitor was given that it does not want.
macro_rules! lenient_visitor {
    ($value:ty, $empty:expr) => {
        fn visit_bool<E>(self, _: bool) -> Result<$value, E> {
            Ok($empty)
        }
        fn visit_i64<E>(self, _: i64) -> Result<$value, E> {
            Ok($empty)
        }
        fn visit_u64<E>(self, _: u64) -> Result<$value, E> {
            Ok($empty)
        }
        fn visit_f64<E>(self, _: f64) -> Result<$value, E> {
            Ok($empty)
        }
        fn visit_unit<E>(self) -> Result<$value, E> {
            Ok($empty)
        }
        fn visit_none<E>(self) -> Result<$value, E> {
            Ok($empty)
        }
        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<$value, A::Error> {
            while seq.next_element::<IgnoredAny>()?.is_some() {}
            Ok($empty)
        }
    };
}

impl<'de: 'a, 'a> Deserialize<'de> for KinesisRecord<'a> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        /// The record: only its `kinesis` object matters.
        struct RecordVisitor;
        impl<'de> Visitor<'de> for RecordVisitor {
            type Value = KinesisRecord<'de>;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a Kinesis record")
            }
            lenient_visitor!(KinesisRecord<'de>, KinesisRecord::default());
            fn visit_str<E>(self, _: &str) -> Result<Self::Value, E> {
                Ok(KinesisRecord::default())
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut record = KinesisRecord::default();
                while let Some(field) = map.next_key::<Field>()? {
                    match field {
                        // A repeated field keeps its last value, as `Value` does.
                        Field::Kinesis => record = map.next_value_seed(KinesisVisitor)?,
                        _ => {
                            map.next_value::<IgnoredAny>()?;
                        }
                    }
                }
                Ok(record)
            }
        }

        /// The record's `kinesis` object.
        struct KinesisVisitor;
        impl<'de> de::DeserializeSeed<'de> for KinesisVisitor {
            type Value = KinesisRecord<'de>;
            fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
                d.deserialize_any(self)
            }
        }
        impl<'de> Visitor<'de> for KinesisVisitor {
            type Value = KinesisRecord<'de>;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a Kinesis record's `kinesis` object")
            }
            lenient_visitor!(KinesisRecord<'de>, KinesisRecord::default());
            fn visit_str<E>(self, _: &str) -> Result<Self::Value, E> {
                Ok(KinesisRecord::default())
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut record = KinesisRecord::default();
                while let Some(field) = map.next_key::<Field>()? {
                    let slot = match field {
                        Field::SequenceNumber => &mut record.sequence_number,
                        Field::PartitionKey => &mut record.partition_key,
                        Field::Data => &mut record.data,
                        Field::Kinesis | Field::Other => {
                            map.next_value::<IgnoredAny>()?;
                            continue;
                        }
                    };
                    *slot = map.next_value::<LenientStr<'de>>()?.0;
                }
                Ok(record)
            }
        }

        let record = deserializer.deserialize_any(RecordVisitor)?;
        Ok(record)
    }
}

/// A string, borrowed where the input allows; anything else reads as `None`.
struct LenientStr<'a>(Option<Cow<'a, str>>);

impl<'de: 'a, 'a> Deserialize<'de> for LenientStr<'a> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct StrVisitor;
        impl<'de> Visitor<'de> for StrVisitor {
            type Value = LenientStr<'de>;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("any JSON value")
            }
            lenient_visitor!(LenientStr<'de>, LenientStr(None));
            fn visit_borrowed_str<E>(self, s: &'de str) -> Result<Self::Value, E> {
                Ok(LenientStr(Some(Cow::Borrowed(s))))
            }
            fn visit_str<E>(self, s: &str) -> Result<Self::Value, E> {
                Ok(LenientStr(Some(Cow::Owned(s.to_owned()))))
            }
            fn visit_string<E>(self, s: String) -> Result<Self::Value, E> {
                Ok(LenientStr(Some(Cow::Owned(s))))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
                Ok(LenientStr(None))
            }
        }
        deserializer.deserialize_any(StrVisitor)
    }
}

/// Decodes a record's base64 `data` (into `buffer`, reused across records)
/// and parses it into attribute values.
fn decode_data(
    data: Option<&str>,
    buffer: &mut Vec<u8>,
) -> Result<BTreeMap<String, AttrValue>, String> {
    let data = data.ok_or_else(|| "record has no base64 `data`".to_owned())?;
    buffer.clear();
    base64::engine::general_purpose::STANDARD
        .decode_vec(data, buffer)
        .map_err(|e| format!("data is not base64: {e}"))?;
    match AttrValue::parse_json(buffer) {
        Ok(AttrValue::M(map)) => Ok(map),
        Ok(other) => Err(format!(
            "data must be a JSON object, got {}",
            attr_kind(&other)
        )),
        Err(ParseError::Syntax(e)) => Err(format!("data is not JSON: {e}")),
        Err(ParseError::Refused(e)) => Err(e),
    }
}

/// The item id: the record's `id` (string or number), else the sequence
/// number — deterministic, so a retried batch overwrites rather than
/// duplicates.
fn item_id(data: &BTreeMap<String, AttrValue>, sequence_number: &str) -> Result<String, String> {
    match data.get("id") {
        None | Some(AttrValue::Null) => Ok(sequence_number.to_owned()),
        Some(AttrValue::S(s)) if !s.is_empty() => Ok(s.clone()),
        Some(AttrValue::N(n)) => Ok(n.clone()),
        Some(other) => Err(format!(
            "`id` must be a non-empty string or a number, got {}",
            attr_kind(other)
        )),
    }
}

/// Builds the DynamoDB item for one record (pure).
pub fn build_item(
    data: Map<String, Value>,
    sequence_number: &str,
    partition_key: Option<&str>,
    now: DateTime<Utc>,
) -> Result<Item, String> {
    let AttrValue::M(data) = AttrValue::from_json(&Value::Object(data))? else {
        return Err("data must be a JSON object".into());
    };
    // The size of the record's text is unknown here: always measure.
    build_scored_item(
        data,
        sequence_number,
        partition_key,
        &timestamp(now),
        usize::MAX,
    )
}

/// An item built from `n` bytes of record (its data's JSON text, sequence
/// number and partition key) takes at most about `SIZE_FACTOR × n +
/// SIZE_MARGIN` bytes by [`item_size`]'s measure: a value is never larger
/// than its JSON text except a number, whose DynamoDB text is at most 8
/// times its JSON text (`1e5` → `100000.0`), and the data's fields are
/// stored twice at most (`timestamp`, `id`). Below that, the item cannot be
/// over the limit and is not measured.
const SIZE_FACTOR: usize = 24;
const SIZE_MARGIN: usize = 4096;

/// [`build_item`] over a record already made of attribute values, with the
/// batch's `processed_at`; `source_len` is the length of the record's data
/// (JSON text), sequence number and partition key.
fn build_scored_item(
    mut data: BTreeMap<String, AttrValue>,
    sequence_number: &str,
    partition_key: Option<&str>,
    processed_at: &str,
    source_len: usize,
) -> Result<Item, String> {
    let id = item_id(&data, sequence_number)?;
    let verdict = score_attributes(&data)?;
    let score = Number::from_f64((verdict.score * 1e9).round() / 1e9)
        .ok_or_else(|| "anomaly score is not finite".to_owned())?;
    let score = AttrValue::from_json(&Value::Number(score))?;
    data.insert("anomaly".into(), AttrValue::Bool(verdict.anomaly));
    data.insert("anomaly_score".into(), score.clone());
    data.insert("processed_at".into(), AttrValue::s(processed_at));

    let timestamp = data.get("timestamp").cloned();
    let mut item = Item::new();
    // In reverse key order: each insert compares with one key and goes first.
    if let Some(ts) = timestamp {
        item.insert("timestamp".into(), ts);
    }
    item.insert("sequence_number".into(), AttrValue::s(sequence_number));
    item.insert("processed_at".into(), AttrValue::s(processed_at));
    if let Some(pk) = partition_key {
        item.insert("partition_key".into(), AttrValue::s(pk));
    }
    item.insert(KEY_ATTRIBUTE.into(), AttrValue::S(id));
    item.insert("data".into(), AttrValue::M(data));
    item.insert("anomaly_score".into(), score);
    item.insert("anomaly".into(), AttrValue::Bool(verdict.anomaly));
    if source_len.saturating_mul(SIZE_FACTOR) + SIZE_MARGIN > MAX_ITEM_BYTES {
        let size = item_size(&item);
        if size > MAX_ITEM_BYTES {
            return Err(format!(
                "item is about {size} bytes, over DynamoDB's 400 KB limit"
            ));
        }
    }
    Ok(item)
}

/// Handles a Kinesis batch; returns the sequence numbers of failed records.
/// `event` is the payload as Lambda delivered it (JSON text) or a [`Value`].
pub async fn handle<T: ItemTable, P: Payload>(
    table: &T,
    config: &StreamConfig,
    event: P,
    now: DateTime<Utc>,
) -> Result<KinesisEventResponse, HandlerError> {
    handle_with(table, config, IoLimits::default(), event, now).await
}

/// [`handle`] with the function's I/O limits.
pub async fn handle_with<T: ItemTable, P: Payload>(
    table: &T,
    config: &StreamConfig,
    limits: IoLimits,
    event: P,
    now: DateTime<Utc>,
) -> Result<KinesisEventResponse, HandlerError> {
    let records = event
        .parse::<KinesisEvent<'_>>()
        .map_err(|e| HandlerError::validation(format!("event has no valid Records array: {e}")))?
        .records;
    let processed_at = timestamp(now);
    let mut buffer = Vec::new();
    let mut failed: Vec<String> = Vec::new();
    // A batch may carry the same id twice; BatchWriteItem rejects duplicate
    // keys, and the later record is the newer state, so it wins. Each item
    // keeps the sequence numbers it stands for.
    let mut slots: Vec<(Item, Vec<&str>)> = Vec::with_capacity(records.len());
    let mut by_id: HashMap<String, usize> = HashMap::with_capacity(records.len());
    for record in &records {
        let sequence_number = record
            .sequence_number
            .as_deref()
            .filter(|s| !s.is_empty())
            .ok_or_else(|| HandlerError::validation("Kinesis record without sequenceNumber"))?;
        let partition_key = record.partition_key.as_deref();
        let built = decode_data(record.data.as_deref(), &mut buffer).and_then(|data| {
            let source_len =
                buffer.len() + sequence_number.len() + partition_key.map_or(0, str::len);
            build_scored_item(
                data,
                sequence_number,
                partition_key,
                &processed_at,
                source_len,
            )
        });
        match built {
            Ok(item) => {
                let id = item
                    .get(KEY_ATTRIBUTE)
                    .and_then(AttrValue::as_s)
                    .unwrap_or_default();
                match by_id.get(id) {
                    Some(&slot) => {
                        let (existing, sequences) = &mut slots[slot];
                        *existing = item;
                        sequences.push(sequence_number);
                    }
                    None => {
                        by_id.insert(id.to_owned(), slots.len());
                        slots.push((item, vec![sequence_number]));
                    }
                }
            }
            Err(reason) => {
                tracing::error!(%sequence_number, %reason, "bad record");
                failed.push(sequence_number.to_owned());
            }
        }
    }

    let (items, sequences): (Vec<Item>, Vec<Vec<&str>>) = slots.into_iter().unzip();
    let errors = write_all_concurrently(
        table,
        &config.table,
        items,
        KEY_ATTRIBUTE,
        config.backoff,
        limits.requests,
    )
    .await;
    let mut written = 0usize;
    for (error, seqs) in errors.into_iter().zip(sequences) {
        match error {
            None => written += 1,
            Some(error) => {
                tracing::error!(error = %error, "write failed");
                failed.extend(seqs.into_iter().map(str::to_owned));
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
    use crate::kit::dynamo::MemoryTable;
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
