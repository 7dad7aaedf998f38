//! Lenient event parsing.
//!
//! `aws_lambda_events`' S3 and Kinesis types make fields we never read
//! (`eventTime`, `userIdentity`, `approximateArrivalTimestamp`, ...) required
//! and decode base64 during deserialization, so one odd record fails the whole
//! event before the handler sees it. Here an event is split into records
//! first and each record is parsed on its own, so a poisoned record becomes
//! that record's validation error while its neighbours are processed.

use std::ops::Range;

use percent_encoding::percent_decode_str;
use serde::Deserialize;
use serde_json::Value;
use serde_json::value::RawValue;

use crate::kit::error::HandlerError;
use crate::kit::json_scan::{self, Invalid, Scanner};

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

/// An event payload a handler parses into its own types, borrowing strings
/// from it where it can: the JSON text Lambda delivered (what the
/// executable passes, so a batch is parsed once, straight into typed
/// records), or a [`Value`] (unit tests, and callers that have one).
pub trait Payload {
    /// Parses the payload as `T`.
    fn parse<'de, T: Deserialize<'de>>(&'de self) -> Result<T, serde_json::Error>;

    /// The payload's JSON text, when it is text.
    fn text(&self) -> Option<&str>;
}

impl Payload for Value {
    fn parse<'de, T: Deserialize<'de>>(&'de self) -> Result<T, serde_json::Error> {
        T::deserialize(self)
    }

    fn text(&self) -> Option<&str> {
        None
    }
}

impl Payload for RawValue {
    fn parse<'de, T: Deserialize<'de>>(&'de self) -> Result<T, serde_json::Error> {
        serde_json::from_str(self.get())
    }

    fn text(&self) -> Option<&str> {
        Some(self.get())
    }
}

impl Payload for str {
    fn parse<'de, T: Deserialize<'de>>(&'de self) -> Result<T, serde_json::Error> {
        serde_json::from_str(self)
    }

    fn text(&self) -> Option<&str> {
        Some(self)
    }
}

impl Payload for [u8] {
    fn parse<'de, T: Deserialize<'de>>(&'de self) -> Result<T, serde_json::Error> {
        serde_json::from_slice(self)
    }

    fn text(&self) -> Option<&str> {
        std::str::from_utf8(self).ok()
    }
}

impl<P: Payload + ?Sized> Payload for Box<P> {
    fn parse<'de, T: Deserialize<'de>>(&'de self) -> Result<T, serde_json::Error> {
        (**self).parse()
    }

    fn text(&self) -> Option<&str> {
        (**self).text()
    }
}

impl<P: Payload + ?Sized> Payload for &P {
    fn parse<'de, T: Deserialize<'de>>(&'de self) -> Result<T, serde_json::Error> {
        (**self).parse()
    }

    fn text(&self) -> Option<&str> {
        (**self).text()
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

/// The objects an S3 event names, one result per record: the record's
/// object, or why the record is malformed. An event that is not an object
/// with a `Records` array (when present) is an error.
///
/// From the event's JSON text, one pass of `kit::json_scan` reads each
/// record's `s3.bucket.name`, `s3.object.key` and `s3.object.sequencer` and
/// skips everything else; from a [`Value`], [`parse_s3_record`] reads each.
pub fn s3_objects<P: Payload + ?Sized>(
    event: &P,
) -> Result<Vec<Result<S3ObjectRef, HandlerError>>, HandlerError> {
    match event.text() {
        Some(text) => s3_objects_in_text(text),
        None => Ok(event
            .parse::<RawRecords>()
            .map_err(|e| {
                HandlerError::validation(format!("event has no valid Records array: {e}"))
            })?
            .records
            .iter()
            .map(parse_s3_record)
            .collect()),
    }
}

fn s3_objects_in_text(text: &str) -> Result<Vec<Result<S3ObjectRef, HandlerError>>, HandlerError> {
    let invalid =
        |why: String| HandlerError::validation(format!("event has no valid Records array: {why}"));
    let mut scanner = Scanner::new(text);
    if scanner.peek() != Some(b'{') {
        let kind = scanner.kind();
        return Err(invalid(format!("the event is {kind}, not an object")));
    }
    // Missing `Records` (e.g. S3's `s3:TestEvent`) means no records.
    let mut records: Result<Vec<_>, String> = Ok(Vec::new());
    scanner
        .object(|scanner, key| {
            if !json_scan::key_is(&text[key], "Records") {
                return scanner.skip_value().map(|_| ());
            }
            if scanner.peek() != Some(b'[') {
                records = Err(format!("`Records` is {}, not an array", scanner.kind()));
                return scanner.skip_value().map(|_| ());
            }
            let mut list = Vec::new();
            scanner.array(|scanner| {
                list.push(s3_record(scanner, text)?);
                Ok(())
            })?;
            records = Ok(list);
            Ok(())
        })
        .and_then(|()| scanner.finish())
        .map_err(|Invalid| invalid(json_scan::invalid_json(text)))?;
    records.map_err(invalid)
}

/// What one S3 record says about its object, as spans of the text.
#[derive(Default)]
struct S3Fields {
    s3: bool,
    bucket: bool,
    object: bool,
    name: Option<Range<usize>>,
    key: Option<Range<usize>>,
    sequencer: Option<Range<usize>>,
    /// The first part of the record of the wrong JSON type.
    wrong: Option<String>,
}

impl S3Fields {
    /// Reads the object at the scanner as `what`, handing its members to
    /// `member`; anything else is noted as wrong and skipped.
    fn nested(
        &mut self,
        scanner: &mut Scanner<'_>,
        what: &str,
        mut member: impl FnMut(&mut Self, &mut Scanner<'_>, Range<usize>) -> Result<(), Invalid>,
    ) -> Result<(), Invalid> {
        if scanner.peek() != Some(b'{') {
            if self.wrong.is_none() {
                self.wrong = Some(format!(
                    "`{what}` must be an object, got {}",
                    scanner.kind()
                ));
            }
            return scanner.skip_value().map(|_| ());
        }
        scanner.object(|scanner, key| member(self, scanner, key))
    }

    /// Reads a string (or, if `nullable`, null) field.
    fn string(
        &mut self,
        scanner: &mut Scanner<'_>,
        what: &str,
        nullable: bool,
    ) -> Result<Option<Range<usize>>, Invalid> {
        let kind = scanner.kind();
        let span = scanner.skip_value()?;
        match kind {
            "a string" => Ok(Some(span)),
            "null" if nullable => Ok(None),
            kind => {
                if self.wrong.is_none() {
                    self.wrong = Some(format!("`{what}` must be a string, got {kind}"));
                }
                Ok(None)
            }
        }
    }
}

/// One record of an S3 event: its object, or why it is malformed.
fn s3_record(
    scanner: &mut Scanner<'_>,
    text: &str,
) -> Result<Result<S3ObjectRef, HandlerError>, Invalid> {
    let mut fields = S3Fields::default();
    fields.nested(scanner, "record", |fields, scanner, key| {
        if !json_scan::key_is(&text[key], "s3") {
            return scanner.skip_value().map(|_| ());
        }
        fields.s3 = true;
        fields.nested(scanner, "s3", |fields, scanner, key| {
            let key = &text[key];
            if json_scan::key_is(key, "bucket") {
                fields.bucket = true;
                fields.nested(scanner, "s3.bucket", |fields, scanner, key| {
                    if json_scan::key_is(&text[key], "name") {
                        fields.name = fields.string(scanner, "s3.bucket.name", false)?;
                        Ok(())
                    } else {
                        scanner.skip_value().map(|_| ())
                    }
                })
            } else if json_scan::key_is(key, "object") {
                fields.object = true;
                fields.nested(scanner, "s3.object", |fields, scanner, key| {
                    let key = &text[key];
                    if json_scan::key_is(key, "key") {
                        fields.key = fields.string(scanner, "s3.object.key", false)?;
                        Ok(())
                    } else if json_scan::key_is(key, "sequencer") {
                        fields.sequencer = fields.string(scanner, "s3.object.sequencer", true)?;
                        Ok(())
                    } else {
                        scanner.skip_value().map(|_| ())
                    }
                })
            } else {
                scanner.skip_value().map(|_| ())
            }
        })
    })?;
    let missing = [
        (fields.s3, "s3"),
        (fields.bucket, "bucket"),
        (fields.object, "object"),
        (fields.name.is_some() || fields.wrong.is_some(), "name"),
        (fields.key.is_some() || fields.wrong.is_some(), "key"),
    ]
    .into_iter()
    .find(|(present, _)| !present)
    .map(|(_, field)| format!("missing field `{field}`"));
    if let Some(why) = fields.wrong.or(missing) {
        return Ok(Err(HandlerError::validation(format!(
            "malformed S3 event record: {why}"
        ))));
    }
    let string = |span: Option<Range<usize>>| {
        span.map(|span| json_scan::decode_string(&text[span]).into_owned())
    };
    Ok(object_ref(
        string(fields.name).unwrap_or_default(),
        &string(fields.key).unwrap_or_default(),
        string(fields.sequencer),
    ))
}

/// Parses one S3 event record.
pub fn parse_s3_record(record: &Value) -> Result<S3ObjectRef, HandlerError> {
    let parsed = S3Record::deserialize(record)
        .map_err(|e| HandlerError::validation(format!("malformed S3 event record: {e}")))?;
    object_ref(
        parsed.s3.bucket.name,
        &parsed.s3.object.key,
        parsed.s3.object.sequencer,
    )
}

fn object_ref(
    bucket: String,
    raw_key: &str,
    sequencer: Option<String>,
) -> Result<S3ObjectRef, HandlerError> {
    let key = decode_s3_key(raw_key)?;
    if bucket.is_empty() || key.is_empty() {
        return Err(HandlerError::validation(
            "malformed S3 event record: empty bucket name or object key",
        ));
    }
    Ok(S3ObjectRef {
        bucket,
        key,
        sequencer,
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
