//! The article's JSON transformation, as a pure function: stamp
//! `processed_at` and, when the document has `items`, compute
//! `total_items = Σ quantity` and `total_value = Σ quantity × price`.

use chrono::{DateTime, Utc};
use serde_json::{Map, Value};

use crate::kit::events::json_kind;
use crate::kit::numbers::Amount;
use crate::kit::time::timestamp;

/// Totals over a document's `items`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Totals {
    /// Σ quantity.
    pub total_items: Amount,
    /// Σ quantity × price.
    pub total_value: Amount,
}

/// Parses and enriches a document. Errors are messages describing what is
/// wrong with the input (the caller adds which object it was).
pub fn enrich_bytes(body: &[u8], now: DateTime<Utc>) -> Result<(Value, Option<Totals>), String> {
    let doc: Value = serde_json::from_slice(body).map_err(|e| format!("invalid JSON: {e}"))?;
    enrich(doc, now)
}

/// Adds `processed_at` and, when `items` is present, the totals.
pub fn enrich(doc: Value, now: DateTime<Utc>) -> Result<(Value, Option<Totals>), String> {
    let Value::Object(mut doc) = doc else {
        return Err(format!(
            "document must be a JSON object, got {}",
            json_kind(&doc)
        ));
    };
    let totals = match doc.get("items") {
        Some(items) => Some(compute_totals(items)?),
        None => None,
    };
    doc.insert("processed_at".into(), Value::String(timestamp(now)));
    if let Some(totals) = totals {
        insert_amount(&mut doc, "total_items", totals.total_items)?;
        insert_amount(&mut doc, "total_value", totals.total_value)?;
    }
    Ok((Value::Object(doc), totals))
}

fn insert_amount(doc: &mut Map<String, Value>, field: &str, amount: Amount) -> Result<(), String> {
    let value = amount
        .to_json()
        .ok_or_else(|| format!("{field} overflows a JSON number"))?;
    doc.insert(field.into(), value);
    Ok(())
}

/// Sums `quantity` and `quantity × price` over an `items` array. Every item
/// must be an object with numeric `quantity` and `price`.
pub fn compute_totals(items: &Value) -> Result<Totals, String> {
    let Value::Array(items) = items else {
        return Err(format!(
            "`items` must be an array, got {}",
            json_kind(items)
        ));
    };
    let mut totals = Totals {
        total_items: Amount::Int(0),
        total_value: Amount::Int(0),
    };
    for (i, item) in items.iter().enumerate() {
        if !item.is_object() {
            return Err(format!(
                "items[{i}] must be an object, got {}",
                json_kind(item)
            ));
        }
        let quantity = numeric_field(item, "quantity", i)?;
        let price = numeric_field(item, "price", i)?;
        totals.total_items = totals.total_items + quantity;
        totals.total_value = totals.total_value + quantity * price;
    }
    Ok(totals)
}

fn numeric_field(item: &Value, field: &str, index: usize) -> Result<Amount, String> {
    match item.get(field) {
        None => Err(format!("items[{index}] has no `{field}`")),
        Some(v) => Amount::from_value(v).ok_or_else(|| {
            format!(
                "items[{index}].{field} must be a number, got {}",
                json_kind(v)
            )
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use serde_json::json;

    fn now() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2024, 6, 5, 12, 30, 0)
            .single()
            .expect("valid")
    }

    #[test]
    fn adds_totals_and_timestamp() {
        let doc = json!({"order": 7, "items": [
            {"sku": "a", "quantity": 2, "price": 10.5},
            {"sku": "b", "quantity": 1, "price": 4}
        ]});
        let (out, totals) = enrich(doc, now()).expect("ok");
        assert_eq!(out["processed_at"], "2024-06-05T12:30:00.000Z");
        assert_eq!(out["total_items"], json!(3));
        assert_eq!(out["total_value"], json!(25.0));
        assert_eq!(out["order"], 7);
        assert_eq!(totals.expect("totals").total_items, Amount::Int(3));
    }

    #[test]
    fn without_items_only_timestamp() {
        let (out, totals) = enrich(json!({"a": 1}), now()).expect("ok");
        assert!(totals.is_none());
        assert!(out.get("total_items").is_none());
        assert_eq!(out.as_object().expect("object").len(), 2);
    }

    #[test]
    fn empty_items_total_zero() {
        let (out, _) = enrich(json!({"items": []}), now()).expect("ok");
        assert_eq!(out["total_items"], json!(0));
        assert_eq!(out["total_value"], json!(0));
    }

    #[test]
    fn malformed_items_are_described() {
        let cases = [
            (
                json!({"items": {"quantity": 1}}),
                "`items` must be an array",
            ),
            (json!({"items": [5]}), "items[0] must be an object"),
            (
                json!({"items": [{"price": 1}]}),
                "items[0] has no `quantity`",
            ),
            (
                json!({"items": [{"quantity": 1, "price": 1}, {"quantity": "2", "price": 1}]}),
                "items[1].quantity must be a number, got a string",
            ),
            (json!({"items": null}), "`items` must be an array, got null"),
            (json!([1, 2]), "document must be a JSON object"),
        ];
        for (doc, expected) in cases {
            let err = enrich(doc.clone(), now()).expect_err("must fail");
            assert!(err.contains(expected), "{doc}: {err}");
        }
    }

    #[test]
    fn invalid_json_is_an_error() {
        let err = enrich_bytes(b"{not json", now()).expect_err("bad");
        assert!(err.starts_with("invalid JSON"), "{err}");
    }
}
