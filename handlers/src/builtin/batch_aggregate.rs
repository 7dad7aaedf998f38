//! Pattern 5 — periodic batch: a scheduled run aggregates the previous
//! day's objects (`SOURCE_BUCKET`, prefix `YYYY/MM/DD/`) into one summary at
//! `DESTINATION_BUCKET/summaries/YYYY-MM-DD.json`.
//!
//! "Yesterday" is derived from the event's `time` (the scheduled time of an
//! EventBridge scheduled rule, or `<aws.scheduler.scheduled-time>` passed by
//! EventBridge Scheduler), never from the clock, so a rerun or a late
//! retry of the same event produces the same summary. An explicit
//! `{"date": "YYYY-MM-DD"}` input (re)processes that day.

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap};
use std::ops::Range;

use chrono::{DateTime, Days, NaiveDate, Utc};
use futures::StreamExt;
use serde::Serialize;
use serde_json::{Map, Value};
use tokio::sync::Semaphore;

use crate::builtin::s3_transform::JSON_CONTENT_TYPE;
use crate::kit::config::{ConfigError, Env};
use crate::kit::error::{HandlerError, StoreError};
use crate::kit::events::json_kind;
use crate::kit::json_scan::{self, Invalid, Scanner};
use crate::kit::limits::IoLimits;
use crate::kit::numbers::Amount;
use crate::kit::store::{ObjectStore, send_listing};
use crate::kit::time::timestamp;

/// Configuration of `batch-aggregate`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BatchConfig {
    /// `SOURCE_BUCKET`.
    pub source_bucket: String,
    /// `DESTINATION_BUCKET`.
    pub destination_bucket: String,
}

impl BatchConfig {
    /// Reads `SOURCE_BUCKET` and `DESTINATION_BUCKET`.
    pub fn from_env(env: &(impl Env + ?Sized)) -> Result<Self, ConfigError> {
        Ok(Self {
            source_bucket: env.required("SOURCE_BUCKET")?,
            destination_bucket: env.required("DESTINATION_BUCKET")?,
        })
    }
}

/// The day a scheduled event asks for: `date` if given, else the day before
/// `time` (UTC).
pub fn target_date(event: &Value) -> Result<NaiveDate, HandlerError> {
    if let Some(date) = event.get("date").filter(|d| !d.is_null()) {
        let text = date.as_str().ok_or_else(|| {
            HandlerError::validation(format!("`date` must be a string, got {}", json_kind(date)))
        })?;
        return NaiveDate::parse_from_str(text, "%Y-%m-%d").map_err(|e| {
            HandlerError::validation(format!("`date` {text:?} is not YYYY-MM-DD: {e}"))
        });
    }
    let time = event.get("time").and_then(Value::as_str).ok_or_else(|| {
        HandlerError::validation(
            "event has no `time` (RFC 3339) or `date` (YYYY-MM-DD) to derive the day from",
        )
    })?;
    let time = DateTime::parse_from_rfc3339(time)
        .map_err(|e| HandlerError::validation(format!("`time` {time:?} is not RFC 3339: {e}")))?
        .with_timezone(&Utc);
    time.date_naive()
        .checked_sub_days(Days::new(1))
        .ok_or_else(|| HandlerError::validation("`time` is out of range"))
}

/// An object left out of the aggregate, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct InvalidObject {
    /// Object key.
    pub key: String,
    /// What is wrong with it.
    pub reason: String,
}

/// The summary written for a day (and returned).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DailySummary {
    /// `YYYY-MM-DD`.
    pub date: String,
    /// Records across all valid objects.
    pub total_records: u64,
    /// Σ value per category.
    pub aggregated_values: Map<String, Value>,
    /// Σ of all values.
    pub total_value: Value,
    /// When the summary was computed.
    pub processed_at: String,
    /// Where the inputs were read.
    pub source: String,
    /// Objects aggregated.
    pub objects_processed: u64,
    /// Objects skipped because their content is invalid.
    pub invalid_objects: Vec<InvalidObject>,
    /// Where the summary was written.
    pub output_key: String,
}

/// Records of one object: (category, value) pairs. Rejects the object if
/// any record is malformed, so a half-read object never skews the totals.
pub fn object_records(body: &[u8]) -> Result<Vec<(String, Amount)>, String> {
    parse_records(body).map(|records| {
        records
            .into_iter()
            .map(|(category, value)| (category.into_owned(), value))
            .collect()
    })
}

/// [`object_records`] with categories borrowed from `body` (no allocation
/// per record), in one pass of [`json_scan`] that checks the text, reads
/// the records' `category` and `value` and skips everything else.
fn parse_records(body: &[u8]) -> Result<Vec<(Cow<'_, str>, Amount)>, String> {
    let text = std::str::from_utf8(body).map_err(|e| format!("invalid JSON: {e}"))?;
    let mut scanner = Scanner::new(text);
    let kind = scanner.kind();
    // No `records` (or null) means no records; a repeated key keeps its
    // last value, as in a parsed document.
    let mut records = Ok(Vec::new());
    let walked = if scanner.peek() == Some(b'{') {
        scanner.object(|scanner, key| {
            if json_scan::key_is(&text[key], "records") {
                records = records_at(scanner, text)?;
            } else {
                scanner.skip_value()?;
            }
            Ok(())
        })
    } else {
        scanner.skip_value().map(|_| ())
    };
    walked
        .and_then(|()| scanner.finish())
        .map_err(|Invalid| json_scan::invalid_json(text))?;
    if kind != "an object" {
        return Err(format!("document must be a JSON object, got {kind}"));
    }
    records
}

/// Reads the `records` value: its records, or the first problem with them.
#[allow(clippy::type_complexity)]
fn records_at<'a>(
    scanner: &mut Scanner<'a>,
    text: &'a str,
) -> Result<Result<Vec<(Cow<'a, str>, Amount)>, String>, Invalid> {
    match scanner.peek() {
        Some(b'n') => {
            scanner.skip_value()?;
            return Ok(Ok(Vec::new()));
        }
        Some(b'[') => {}
        _ => {
            let problem = format!("`records` must be an array, got {}", scanner.kind());
            scanner.skip_value()?;
            return Ok(Err(problem));
        }
    }
    let mut records = Vec::new();
    let mut problem: Option<String> = None;
    let mut index = 0usize;
    scanner.array(|scanner| {
        if problem.is_some() {
            return scanner.skip_value().map(|_| ());
        }
        if scanner.peek() != Some(b'{') {
            problem = Some(format!(
                "records[{index}] must be an object, got {}",
                scanner.kind()
            ));
            return scanner.skip_value().map(|_| ());
        }
        let (mut category, mut value) = (None, None);
        scanner.object(|scanner, key| {
            let span = scanner.skip_value()?;
            // A repeated field keeps its last value, as `Value` does.
            let key = &text[key];
            if json_scan::key_is(key, "category") {
                category = Some(span);
            } else if json_scan::key_is(key, "value") {
                value = Some(span);
            }
            Ok(())
        })?;
        match record(text, index, category, value) {
            Ok(record) => records.push(record),
            Err(message) => problem = Some(message),
        }
        index += 1;
        Ok(())
    })?;
    Ok(problem.map_or(Ok(records), Err))
}

/// One record from the spans of its `category` and `value`.
fn record(
    text: &str,
    index: usize,
    category: Option<Range<usize>>,
    value: Option<Range<usize>>,
) -> Result<(Cow<'_, str>, Amount), String> {
    let bytes = text.as_bytes();
    let category = match category {
        None => Cow::Borrowed("unknown"),
        Some(span) => match json_scan::kind(bytes, span.start) {
            "null" => Cow::Borrowed("unknown"),
            "a string" => json_scan::decode_string(&text[span]),
            kind => {
                return Err(format!(
                    "records[{index}].category must be a string, got {kind}"
                ));
            }
        },
    };
    let value = match value {
        None => Amount::Int(0),
        Some(span) => match json_scan::kind(bytes, span.start) {
            "null" => Amount::Int(0),
            // Out of f64's range: serde_json refuses the whole text.
            "a number" => {
                json_scan::amount(&text[span]).ok_or_else(|| json_scan::invalid_json(text))?
            }
            kind => {
                return Err(format!(
                    "records[{index}].value must be a number, got {kind}"
                ));
            }
        },
    };
    Ok((category, value))
}

fn amount_json(amount: Amount) -> Result<Value, HandlerError> {
    amount
        .to_json()
        .ok_or_else(|| HandlerError::validation("aggregate overflows a JSON number"))
}

/// Size assumed for an object whose listing gave none.
const UNKNOWN_SIZE: u64 = 1024 * 1024;

/// Aggregates the day named by `event` and writes the summary.
pub async fn handle<S: ObjectStore>(
    store: &S,
    config: &BatchConfig,
    event: Value,
    now: DateTime<Utc>,
) -> Result<DailySummary, HandlerError> {
    handle_with(store, config, IoLimits::default(), event, now).await
}

/// [`handle`] with the function's I/O limits.
///
/// The listing runs ahead of the reads (the next page is asked for as soon
/// as one arrives) and objects are read as their keys come in, up to
/// `limits.requests` at a time and within `limits.bytes` of bodies held.
/// Bodies are aggregated in key order as they arrive, so float sums are
/// reproducible and only the bodies in flight are in memory.
pub async fn handle_with<S: ObjectStore>(
    store: &S,
    config: &BatchConfig,
    limits: IoLimits,
    event: Value,
    now: DateTime<Utc>,
) -> Result<DailySummary, HandlerError> {
    let date = target_date(&event)?;
    let prefix = date.format("%Y/%m/%d/").to_string();
    let source = format!("s3://{}/{prefix}", config.source_bucket);
    tracing::info!(%source, "aggregating");

    // Hashed while aggregating, sorted once at the end.
    let mut per_category: HashMap<String, Amount> = HashMap::new();
    let mut total = Amount::Int(0);
    let mut total_records = 0u64;
    let mut objects_processed = 0u64;
    let mut invalid_objects = Vec::new();

    let (pages, listed) = tokio::sync::mpsc::channel(1);
    let listing = send_listing(store, &config.source_bucket, &prefix, pages);
    // The budget in KiB, so that even 10 GB fits a semaphore's permits.
    let budget =
        Semaphore::new(usize::try_from(limits.bytes.div_ceil(1024)).unwrap_or(usize::MAX >> 4));
    let budget = &budget;
    let reads = futures::stream::unfold(listed, |mut listed| async move {
        listed
            .recv()
            .await
            .map(|page| (futures::stream::iter(page), listed))
    })
    .flatten()
    .filter(|(key, _)| std::future::ready(!key.ends_with('/')))
    // Budget taken in key order, before the read starts: the oldest read
    // always holds its share, so the reads never wait on each other.
    .then(|(key, size)| async move {
        let kib = limits.share(size.unwrap_or(UNKNOWN_SIZE)).div_ceil(1024);
        let share = budget
            .acquire_many(u32::try_from(kib).unwrap_or(u32::MAX))
            .await
            .ok();
        (key, share)
    })
    .map(|(key, share)| async move {
        let body = store.get(&config.source_bucket, &key).await;
        (key, body, share)
    })
    .buffered(limits.requests);
    let aggregate = async {
        let mut reads = std::pin::pin!(reads);
        while let Some((key, body, share)) = reads.next().await {
            let parsed = match &body {
                Ok(body) => parse_records(body),
                // Deleted between list and get: nothing to aggregate.
                Err(StoreError::NotFound(reason)) => Err(reason.clone()),
                Err(error) => return Err(HandlerError::from(error.clone())),
            };
            match parsed {
                Ok(records) => {
                    objects_processed += 1;
                    total_records += records.len() as u64;
                    for (category, value) in records {
                        match per_category.get_mut(category.as_ref()) {
                            Some(slot) => *slot = *slot + value,
                            None => {
                                per_category
                                    .insert(category.into_owned(), Amount::default() + value);
                            }
                        }
                        total = total + value;
                    }
                }
                Err(reason) => {
                    tracing::error!(%key, %reason, "invalid object skipped");
                    invalid_objects.push(InvalidObject { key, reason });
                }
            }
            drop(share);
        }
        Ok(())
    };
    futures::try_join!(
        async { listing.await.map_err(HandlerError::from) },
        aggregate
    )?;

    let mut aggregated_values = Map::new();
    for (category, amount) in per_category.into_iter().collect::<BTreeMap<_, _>>() {
        aggregated_values.insert(category, amount_json(amount)?);
    }
    let date_text = date.format("%Y-%m-%d").to_string();
    let output_key = format!("summaries/{date_text}.json");
    let summary = DailySummary {
        date: date_text,
        total_records,
        aggregated_values,
        total_value: amount_json(total)?,
        processed_at: timestamp(now),
        source,
        objects_processed,
        invalid_objects,
        output_key: output_key.clone(),
    };
    let body = serde_json::to_vec(&summary)
        .map_err(|e| HandlerError::validation(format!("cannot serialize summary: {e}")))?;
    store
        .put(
            &config.destination_bucket,
            &output_key,
            body,
            JSON_CONTENT_TYPE,
        )
        .await
        .map_err(HandlerError::from)?;
    tracing::info!(
        output_key = %output_key,
        objects_processed,
        total_records,
        "summary written"
    );
    Ok(summary)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kit::store::MemoryStore;
    use chrono::TimeZone;
    use serde_json::json;

    fn config() -> BatchConfig {
        BatchConfig {
            source_bucket: "src".into(),
            destination_bucket: "dst".into(),
        }
    }

    fn clock() -> DateTime<Utc> {
        // Deliberately unrelated to the event time.
        Utc.with_ymd_and_hms(2030, 1, 1, 0, 0, 0)
            .single()
            .expect("valid")
    }

    fn scheduled(time: &str) -> Value {
        json!({
            "version": "0", "id": "e", "detail-type": "Scheduled Event", "source": "aws.events",
            "account": "123456789012", "time": time, "region": "us-east-1",
            "resources": ["arn:aws:events:us-east-1:123456789012:rule/daily"], "detail": {}
        })
    }

    #[test]
    fn yesterday_comes_from_the_event() {
        let d = target_date(&scheduled("2024-03-01T01:00:00Z")).expect("ok");
        assert_eq!(d.to_string(), "2024-02-29");
        let d = target_date(&json!({"time": "2024-01-01T00:30:00+02:00"})).expect("ok");
        assert_eq!(d.to_string(), "2023-12-30", "converted to UTC first");
        let d = target_date(&json!({"date": "2024-05-05", "time": "2024-06-01T00:00:00Z"}))
            .expect("ok");
        assert_eq!(d.to_string(), "2024-05-05");
        assert!(target_date(&json!({})).is_err());
        assert!(target_date(&json!({"time": "yesterday"})).is_err());
        assert!(target_date(&json!({"date": "2024-13-01"})).is_err());
    }

    #[tokio::test]
    async fn aggregates_by_category_across_pages() {
        let store = MemoryStore::with_page_size(1000);
        for i in 0..2500 {
            store.insert(
                "src",
                &format!("2024/06/04/part-{i:05}.json"),
                json!({"records": [{"category": "a", "value": 1}, {"category": "b", "value": 0.5}]})
                    .to_string(),
            );
        }
        store.insert(
            "src",
            "2024/06/05/today.json",
            r#"{"records":[{"category":"a","value":99}]}"#,
        );
        store.insert(
            "src",
            "2024/06/03/older.json",
            r#"{"records":[{"category":"a","value":99}]}"#,
        );
        let summary = handle(
            &store,
            &config(),
            scheduled("2024-06-05T01:00:00Z"),
            clock(),
        )
        .await
        .expect("ok");
        assert_eq!(store.list_calls(), 3, "2,500 keys at 1,000 per page");
        assert_eq!(summary.objects_processed, 2500);
        assert_eq!(summary.total_records, 5000);
        assert_eq!(summary.aggregated_values["a"], json!(2500));
        assert_eq!(summary.aggregated_values["b"], json!(1250.0));
        assert_eq!(summary.total_value, json!(3750.0));
        let written = store
            .json("dst", "summaries/2024-06-04.json")
            .expect("written");
        assert_eq!(written["date"], "2024-06-04");
        assert_eq!(written["total_records"], json!(5000));
        assert_eq!(written["processed_at"], "2030-01-01T00:00:00.000Z");
    }

    #[tokio::test]
    async fn rerun_gives_the_same_answer() {
        let store = MemoryStore::new();
        store.insert(
            "src",
            "2024/06/04/x.json",
            r#"{"records":[{"category":"a","value":0.1},{"category":"a","value":0.2}]}"#,
        );
        let ev = scheduled("2024-06-05T01:00:00Z");
        let first = handle(&store, &config(), ev.clone(), clock())
            .await
            .expect("ok");
        let later = clock() + chrono::Duration::days(3);
        let second = handle(&store, &config(), ev, later).await.expect("ok");
        assert_eq!(first.date, second.date);
        assert_eq!(first.aggregated_values, second.aggregated_values);
        assert_eq!(first.aggregated_values["a"], json!(0.3));
    }

    #[tokio::test]
    async fn invalid_objects_are_listed_not_counted() {
        let store = MemoryStore::new();
        store.insert(
            "src",
            "2024/06/04/good.json",
            r#"{"records":[{"value":2},{"category":"c","value":3}]}"#,
        );
        store.insert("src", "2024/06/04/bad.json", "{");
        store.insert(
            "src",
            "2024/06/04/half.json",
            r#"{"records":[{"value":1},{"value":"x"}]}"#,
        );
        store.insert("src", "2024/06/04/norecords.json", r#"{"other":1}"#);
        store.insert("src", "2024/06/04/", "");
        let summary = handle(&store, &config(), json!({"date": "2024-06-04"}), clock())
            .await
            .expect("ok");
        assert_eq!(summary.objects_processed, 2);
        assert_eq!(summary.total_records, 2);
        assert_eq!(
            summary.aggregated_values,
            json!({"unknown": 2, "c": 3})
                .as_object()
                .expect("map")
                .clone()
        );
        let bad: Vec<&str> = summary
            .invalid_objects
            .iter()
            .map(|o| o.key.as_str())
            .collect();
        assert_eq!(bad, vec!["2024/06/04/bad.json", "2024/06/04/half.json"]);
        assert!(
            summary.invalid_objects[1]
                .reason
                .contains("records[1].value")
        );
    }

    #[tokio::test]
    async fn empty_day_writes_a_zero_summary() {
        let store = MemoryStore::new();
        let summary = handle(&store, &config(), json!({"date": "2024-06-04"}), clock())
            .await
            .expect("ok");
        assert_eq!(summary.total_records, 0);
        assert_eq!(summary.total_value, json!(0));
        assert!(store.object("dst", "summaries/2024-06-04.json").is_some());
    }

    #[tokio::test]
    async fn transient_read_failure_fails_the_run() {
        let store = MemoryStore::new();
        store.insert("src", "2024/06/04/a.json", "{}");
        store.fail_on("2024/06/04/a.json", StoreError::Transient("503".into()));
        let err = handle(&store, &config(), json!({"date": "2024-06-04"}), clock())
            .await
            .expect_err("fails");
        assert!(err.is_retryable());
        assert!(store.object("dst", "summaries/2024-06-04.json").is_none());
    }
}
