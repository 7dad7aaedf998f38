//! Lenient event parsing.
//!
//! `aws_lambda_events`' S3 and Kinesis types make fields we never read
//! (`eventTime`, `userIdentity`, `approximateArrivalTimestamp`, ...) required
//! and decode base64 during deserialization, so one odd record fails the whole
//! event before the handler sees it. Here an event is split into records
//! first and each record is parsed on its own, so a poisoned record becomes
//! that record's validation error while its neighbours are processed.

use percent_encoding::percent_decode_str;
use serde::Deserialize;
use serde_json::Value;

use crate::error::HandlerError;

/// The `Records` array of an S3 / SQS / Kinesis event, unparsed.
#[derive(Debug, Default, Deserialize)]
pub struct RawRecords {
    /// Missing `Records` (e.g. S3's `s3:TestEvent`) means no records.
    #[serde(rename = "Records", default)]
    pub records: Vec<Value>,
}

impl RawRecords {
    /// Splits an event payload into records.
    pub fn from_event(event: Value) -> Result<Self, HandlerError> {
        serde_json::from_value(event)
            .map_err(|e| HandlerError::validation(format!("event has no valid Records array: {e}")))
    }
}

/// The object an S3 event record refers to, with its key URL-decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct S3ObjectRef {
    /// Bucket name.
    pub bucket: String,
    /// Object key, decoded (`+` → space, `%XX` → byte).
    pub key: String,
    /// S3's per-key ordering token: distinguishes two writes of the same key.
    pub sequencer: Option<String>,
}

impl S3ObjectRef {
    /// `s3://bucket/key`, for messages.
    pub fn uri(&self) -> String {
        format!("s3://{}/{}", self.bucket, self.key)
    }
}

#[derive(Deserialize)]
struct S3Record {
    s3: S3Entity,
}

#[derive(Deserialize)]
struct S3Entity {
    bucket: S3Bucket,
    object: S3Object,
}

#[derive(Deserialize)]
struct S3Bucket {
    name: String,
}

#[derive(Deserialize)]
struct S3Object {
    key: String,
    #[serde(default)]
    sequencer: Option<String>,
}

/// Parses one S3 event record.
pub fn parse_s3_record(record: &Value) -> Result<S3ObjectRef, HandlerError> {
    let parsed = S3Record::deserialize(record)
        .map_err(|e| HandlerError::validation(format!("malformed S3 event record: {e}")))?;
    let key = decode_s3_key(&parsed.s3.object.key)?;
    if parsed.s3.bucket.name.is_empty() || key.is_empty() {
        return Err(HandlerError::validation(
            "malformed S3 event record: empty bucket name or object key",
        ));
    }
    Ok(S3ObjectRef {
        bucket: parsed.s3.bucket.name,
        key,
        sequencer: parsed.s3.object.sequencer,
    })
}

/// Decodes an object key as S3 puts it in event notifications: form-encoded,
/// so `+` is a space and `%2B` a plus sign.
pub fn decode_s3_key(raw: &str) -> Result<String, HandlerError> {
    let spaced = raw.replace('+', " ");
    percent_decode_str(&spaced)
        .decode_utf8()
        .map(|k| k.into_owned())
        .map_err(|e| HandlerError::validation(format!("object key {raw:?} is not UTF-8: {e}")))
}

/// Returns `value[field]` as a non-empty string, or a validation error.
pub fn required_str<'a>(
    value: &'a Value,
    field: &str,
    what: &str,
) -> Result<&'a str, HandlerError> {
    match value.get(field) {
        Some(Value::String(s)) if !s.is_empty() => Ok(s),
        Some(Value::String(_)) => Err(HandlerError::validation(format!(
            "{what}: `{field}` is empty"
        ))),
        Some(other) => Err(HandlerError::validation(format!(
            "{what}: `{field}` must be a string, got {}",
            json_kind(other)
        ))),
        None => Err(HandlerError::validation(format!(
            "{what}: missing `{field}`"
        ))),
    }
}

/// A short name for a JSON value's type, for error messages.
pub fn json_kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    pub(crate) fn s3_record(bucket: &str, key: &str) -> Value {
        json!({
            "eventVersion": "2.1",
            "eventSource": "aws:s3",
            "eventName": "ObjectCreated:Put",
            "s3": {"bucket": {"name": bucket}, "object": {"key": key, "size": 10, "sequencer": "0A1B"}}
        })
    }

    #[test]
    fn keys_are_form_decoded() {
        assert_eq!(
            decode_s3_key("a+b%2Bc%20d.json").expect("ok"),
            "a b+c d.json"
        );
        assert_eq!(
            decode_s3_key("dir/%C3%A9t%C3%A9.json").expect("ok"),
            "dir/été.json"
        );
        assert!(decode_s3_key("%FF%FE").is_err());
    }

    #[test]
    fn record_parses_with_decoded_key() {
        let r = parse_s3_record(&s3_record("in", "orders/my+file.json")).expect("ok");
        assert_eq!(r.bucket, "in");
        assert_eq!(r.key, "orders/my file.json");
        assert_eq!(r.sequencer.as_deref(), Some("0A1B"));
        assert_eq!(r.uri(), "s3://in/orders/my file.json");
    }

    #[test]
    fn malformed_record_is_validation_error() {
        let err = parse_s3_record(&json!({"s3": {"bucket": {"name": "b"}}})).expect_err("bad");
        assert!(!err.is_retryable());
        assert!(err.message().contains("object"), "{err}");
    }

    #[test]
    fn missing_records_means_empty_and_non_object_is_error() {
        let ev = RawRecords::from_event(json!({"Event": "s3:TestEvent"})).expect("ok");
        assert!(ev.records.is_empty());
        assert!(RawRecords::from_event(json!([1, 2])).is_err());
        assert!(RawRecords::from_event(json!({"Records": "nope"})).is_err());
    }

    #[test]
    fn required_str_explains() {
        let v = json!({"a": "x", "b": 3, "c": ""});
        assert_eq!(required_str(&v, "a", "doc").expect("ok"), "x");
        assert!(
            required_str(&v, "b", "doc")
                .expect_err("num")
                .message()
                .contains("a number")
        );
        assert!(
            required_str(&v, "c", "doc")
                .expect_err("empty")
                .message()
                .contains("empty")
        );
        assert!(
            required_str(&v, "d", "doc")
                .expect_err("missing")
                .message()
                .contains("missing `d`")
        );
    }
}
