//! The article's JSON transformation ([`crate::builtin::enrich`]) applied to a
//! document's JSON text, in the buffer it was read into.
//!
//! A document of 10 MB parsed into a [`Value`] takes several times its size
//! in memory and most of the handler's time, and only `items` is needed to
//! compute anything. Here serde_json checks the text without building
//! anything, `kit::json_scan` finds the top-level members and reads
//! `quantity` and `price` of each item as numbers, and the output is made by
//! moving the members' text down over the gaps between them and appending
//! the new fields: no second buffer, so a transform's peak memory is about
//! one copy of the object.
//!
//! The output is the input's members, in their order and with their values'
//! text unchanged (numbers keep every digit they had), without the
//! whitespace between members, followed by `processed_at`, the totals when
//! there are `items`, and any extra fields. A member the output sets anew is
//! left out where it was; a key given twice keeps its last value, as a
//! parsed document would.

use std::collections::HashMap;
use std::ops::Range;

use serde_json::{Map, Value};

use crate::builtin::enrich::Totals;
use crate::kit::json_scan::{self, Invalid, Scanner};
use crate::kit::numbers::Amount;

/// Bytes the new fields take besides the extra ones: `processed_at` and
/// two totals, with room to spare. Callers reading a document to enrich it
/// ask for this much room after it, so appending never moves it.
pub const HEADROOM: usize = 256;

/// Room to ask for after a document before enriching it with `extra`.
pub fn headroom(extra: &Map<String, Value>) -> usize {
    HEADROOM
        + extra
            .iter()
            .map(|(k, v)| k.len() + v.to_string().len() + 8)
            .sum::<usize>()
}

/// Enriches the JSON document in `body`, in place: see the module
/// documentation. Errors describe what is wrong with the input, with the
/// same words as [`crate::builtin::enrich::enrich_bytes`]; on error `body` is left
/// as it was.
pub fn enrich_in_place(
    body: &mut Vec<u8>,
    processed_at: &str,
    extra: &Map<String, Value>,
) -> Result<Option<Totals>, String> {
    let (members, totals) = plan(body, extra)?;

    // Move every kept member down to its place in the output. A member's
    // text never grows and the gaps only shrink, so the destination is
    // always at or before the source.
    let mut end = 1;
    body[0] = b'{';
    for (i, (key, value)) in members.iter().enumerate() {
        if i > 0 {
            body[end] = b',';
            end += 1;
        }
        debug_assert!(end <= key.start);
        body.copy_within(key.clone(), end);
        end += key.len();
        body[end] = b':';
        end += 1;
        body.copy_within(value.clone(), end);
        end += value.len();
    }
    body.truncate(end);

    let mut first = members.is_empty();
    let mut append = |body: &mut Vec<u8>, key: &str, value: &Value| -> Result<(), String> {
        if !first {
            body.push(b',');
        }
        first = false;
        serde_json::to_writer(&mut *body, key).map_err(|e| e.to_string())?;
        body.push(b':');
        serde_json::to_writer(&mut *body, value).map_err(|e| e.to_string())
    };
    append(
        body,
        "processed_at",
        &Value::String(processed_at.to_owned()),
    )?;
    if let Some(totals) = totals {
        for (field, amount) in [
            ("total_items", totals.total_items),
            ("total_value", totals.total_value),
        ] {
            let value = amount
                .to_json()
                .ok_or_else(|| format!("{field} overflows a JSON number"))?;
            append(body, field, &value)?;
        }
    }
    for (key, value) in extra {
        append(body, key, value)?;
    }
    body.push(b'}');
    Ok(totals)
}

/// Where each kept member's key and value are in `body`, and the totals.
type Plan = (Vec<(Range<usize>, Range<usize>)>, Option<Totals>);

/// Parses `body` (without changing it) and decides what the output keeps.
fn plan(body: &[u8], extra: &Map<String, Value>) -> Result<Plan, String> {
    let text = std::str::from_utf8(body).map_err(|e| format!("invalid JSON: {e}"))?;
    let mut scanner = Scanner::new(text);
    let kind = scanner.kind();
    // One pass: the members' spans, and `items` read on the way (each time
    // it appears: the last one counts, as in a parsed document).
    let mut members: Vec<(Range<usize>, Range<usize>)> = Vec::new();
    let mut items: Option<Result<Totals, String>> = None;
    let walked = if scanner.peek() == Some(b'{') {
        scanner.object(|scanner, key| {
            let start = scanner.at();
            if json_scan::key_is(&text[key.clone()], "items") {
                items = Some(totals(scanner, text)?);
            } else {
                scanner.skip_value()?;
            }
            members.push((key, start..scanner.at()));
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
    let totals = items.transpose()?;

    let keys: Vec<_> = members
        .iter()
        .map(|(key, _)| json_scan::decode_string(&text[key.clone()]))
        .collect();
    let last: HashMap<&str, usize> = keys
        .iter()
        .enumerate()
        .map(|(i, key)| (key.as_ref(), i))
        .collect();
    let replaced = |key: &str| {
        key == "processed_at"
            || (totals.is_some() && (key == "total_items" || key == "total_value"))
            || extra.contains_key(key)
    };
    let kept = members
        .iter()
        .zip(&keys)
        .enumerate()
        .filter(|(i, (_, key))| last.get(key.as_ref()) == Some(i) && !replaced(key))
        .map(|(_, (member, _))| member.clone())
        .collect();
    Ok((kept, totals))
}

/// Reads the `items` value: Σ quantity and Σ quantity × price, with
/// [`crate::builtin::enrich::compute_totals`]'s rules and messages (the first
/// problem found, reported once the whole text is known to be JSON).
fn totals(scanner: &mut Scanner<'_>, text: &str) -> Result<Result<Totals, String>, Invalid> {
    if scanner.peek() != Some(b'[') {
        let problem = format!("`items` must be an array, got {}", scanner.kind());
        scanner.skip_value()?;
        return Ok(Err(problem));
    }
    let mut totals = Totals {
        total_items: Amount::Int(0),
        total_value: Amount::Int(0),
    };
    let mut problem: Option<String> = None;
    let mut index = 0usize;
    scanner.array(|scanner| {
        if problem.is_some() {
            return scanner.skip_value().map(|_| ());
        }
        if scanner.peek() != Some(b'{') {
            problem = Some(format!(
                "items[{index}] must be an object, got {}",
                scanner.kind()
            ));
            return scanner.skip_value().map(|_| ());
        }
        let (mut quantity, mut price) = (None, None);
        scanner.object(|scanner, key| {
            let value = scanner.skip_value()?;
            // A repeated field keeps its last value, as `Value` does.
            let key = &text[key];
            if json_scan::key_is(key, "quantity") {
                quantity = Some(value);
            } else if json_scan::key_is(key, "price") {
                price = Some(value);
            }
            Ok(())
        })?;
        let field = |span: Option<Range<usize>>, name: &str| -> Result<Amount, String> {
            let span = span.ok_or_else(|| format!("items[{index}] has no `{name}`"))?;
            match json_scan::kind(text.as_bytes(), span.start) {
                // Out of f64's range: serde_json refuses the whole text.
                "a number" => {
                    json_scan::amount(&text[span]).ok_or_else(|| json_scan::invalid_json(text))
                }
                kind => Err(format!(
                    "items[{index}].{name} must be a number, got {kind}"
                )),
            }
        };
        match field(quantity, "quantity").and_then(|q| Ok((q, field(price, "price")?))) {
            Ok((quantity, price)) => {
                totals.total_items = totals.total_items + quantity;
                totals.total_value = totals.total_value + quantity * price;
            }
            Err(message) => problem = Some(message),
        }
        index += 1;
        Ok(())
    })?;
    Ok(problem.map_or(Ok(totals), Err))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::builtin::enrich::enrich;
    use chrono::TimeZone;
    use serde_json::json;

    const AT: &str = "2024-06-05T12:30:00.000Z";

    fn run(text: &str, extra: &Map<String, Value>) -> Result<(Value, Option<Totals>), String> {
        let mut body = text.as_bytes().to_vec();
        let totals = enrich_in_place(&mut body, AT, extra)?;
        let value = serde_json::from_slice(&body).map_err(|e| {
            format!(
                "output is not JSON: {e}: {}",
                String::from_utf8_lossy(&body)
            )
        })?;
        Ok((value, totals))
    }

    /// The same as the `Value` transformation, for every input here.
    fn same_as_value(text: &str) {
        let now = chrono::Utc
            .with_ymd_and_hms(2024, 6, 5, 12, 30, 0)
            .single()
            .expect("valid");
        let expected = serde_json::from_str::<Value>(text)
            .map_err(|e| format!("invalid JSON: {e}"))
            .and_then(|doc| enrich(doc, now));
        let got = run(text, &Map::new());
        match (expected, got) {
            (Ok((doc, totals)), Ok((out, out_totals))) => {
                assert_eq!(out, doc, "{text}");
                assert_eq!(out_totals, totals, "{text}");
            }
            (Err(expected), Err(got)) => {
                let cut = |m: &str| m.split(" at line").next().unwrap_or_default().to_owned();
                assert_eq!(cut(&got), cut(&expected), "{text}");
            }
            (expected, got) => panic!("{text}: expected {expected:?}, got {got:?}"),
        }
    }

    #[test]
    fn agrees_with_the_value_transformation() {
        for text in [
            r#"{"order": 7, "items": [{"sku": "a", "quantity": 2, "price": 10.5}, {"sku": "b", "quantity": 1, "price": 4}]}"#,
            r#"{"a": 1}"#,
            r#"{}"#,
            r#"  { "items" : [ ] }  "#,
            r#"{"items": [{"quantity": 3, "price": 19.99}], "total_items": "old", "processed_at": 1}"#,
            r#"{"total_items": 1, "no_items": true}"#,
            r#"{"a": 1, "a": {"b": [1, 2, {"c": "\"}"}]}, "a\"b": "x\\", "\u00e9": 2}"#,
            r#"{"items": [{"quantity": 1, "price": 1}, {"quantity": "2", "price": 1}]}"#,
            r#"{"items": {"quantity": 1}}"#,
            r#"{"items": [5]}"#,
            r#"{"items": [{"price": 1}]}"#,
            r#"{"items": [{"quantity": 1}]}"#,
            r#"{"items": [{"quantity": 1, "price": null}]}"#,
            r#"{"items": null}"#,
            r#"{"items": [{"quantity": 9223372036854775807, "price": 2}]}"#,
            r#"{"items": [{"quantity": 18446744073709551615, "price": 1}]}"#,
            r#"{"items": [{"quantity": 1, "quantity": 2, "price": 0.1}, {"quantity": 1, "price": 0.2}]}"#,
            r#"[1, 2]"#,
            r#""text""#,
            "{not json",
            r#"{"a": 1} trailing"#,
            r#"{"a": 1,}"#,
        ] {
            same_as_value(text);
        }
    }

    #[test]
    fn keeps_member_order_and_value_text() {
        let mut body =
            br#"{ "z": 1.50, "items": [{"quantity": 2, "price": 1.25}],  "a": [1, 2] }"#.to_vec();
        enrich_in_place(&mut body, AT, &Map::new()).expect("ok");
        assert_eq!(
            String::from_utf8(body).expect("utf-8"),
            r#"{"z":1.50,"items":[{"quantity": 2, "price": 1.25}],"a":[1, 2],"processed_at":"2024-06-05T12:30:00.000Z","total_items":2,"total_value":2.5}"#
        );
    }

    #[test]
    fn extra_fields_replace_members_of_the_same_name() {
        let extra = json!({"data_type": "type_a"})
            .as_object()
            .expect("map")
            .clone();
        let (out, totals) = run(r#"{"data_type": "old", "b": 2}"#, &extra).expect("ok");
        assert_eq!(
            out,
            json!({"b": 2, "processed_at": AT, "data_type": "type_a"})
        );
        assert!(totals.is_none());
    }

    #[test]
    fn invalid_utf8_is_invalid_json_and_the_body_is_untouched() {
        let mut body = b"{\"a\": \"\xff\"}".to_vec();
        let before = body.clone();
        let err = enrich_in_place(&mut body, AT, &Map::new()).expect_err("invalid");
        assert!(err.starts_with("invalid JSON"), "{err}");
        assert_eq!(body, before);
    }

    #[test]
    fn headroom_covers_what_is_appended() {
        let extra = json!({"data_type": "type_a"})
            .as_object()
            .expect("map")
            .clone();
        let mut body = br#"{"items": [{"quantity": 1, "price": 0.1}]}"#.to_vec();
        let room = headroom(&extra);
        body.reserve_exact(room);
        let capacity = body.capacity();
        enrich_in_place(&mut body, AT, &extra).expect("ok");
        assert_eq!(body.capacity(), capacity, "appending moved the buffer");
    }
}
