//! Exact-where-possible arithmetic over JSON numbers.
//!
//! Integer inputs stay integers (so `total_items` of whole quantities is a
//! whole number, as in the original Python); any fractional input makes the
//! result a float, rounded to 9 decimal places so `0.1 + 0.2` is written as
//! `0.3` rather than binary floating-point noise.

use serde_json::{Number, Value};

/// A JSON number being summed.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Amount {
    /// A whole number.
    Int(i64),
    /// A number with a fractional part (or too large for `i64`).
    Float(f64),
}

impl Default for Amount {
    fn default() -> Self {
        Amount::Int(0)
    }
}

impl Amount {
    /// From a JSON number.
    pub fn from_number(n: &Number) -> Self {
        match n.as_i64() {
            Some(i) => Amount::Int(i),
            None => Amount::Float(n.as_f64().unwrap_or(f64::NAN)),
        }
    }

    /// From a JSON value, if it is a number.
    pub fn from_value(v: &Value) -> Option<Self> {
        v.as_number().map(Amount::from_number)
    }

    /// As a float.
    pub fn as_f64(self) -> f64 {
        match self {
            Amount::Int(i) => i as f64,
            Amount::Float(f) => f,
        }
    }

    /// As JSON; `None` if the result is not finite (overflowed).
    pub fn to_json(self) -> Option<Value> {
        match self {
            Amount::Int(i) => Some(Value::from(i)),
            Amount::Float(f) => Number::from_f64(round9(f)).map(Value::Number),
        }
    }
}

impl std::ops::Add for Amount {
    type Output = Amount;

    /// Sum; integer overflow falls back to float.
    fn add(self, other: Amount) -> Amount {
        match (self, other) {
            (Amount::Int(a), Amount::Int(b)) => a
                .checked_add(b)
                .map_or(Amount::Float(a as f64 + b as f64), Amount::Int),
            (a, b) => Amount::Float(a.as_f64() + b.as_f64()),
        }
    }
}

impl std::ops::Mul for Amount {
    type Output = Amount;

    /// Product; integer overflow falls back to float.
    fn mul(self, other: Amount) -> Amount {
        match (self, other) {
            (Amount::Int(a), Amount::Int(b)) => a
                .checked_mul(b)
                .map_or(Amount::Float(a as f64 * b as f64), Amount::Int),
            (a, b) => Amount::Float(a.as_f64() * b.as_f64()),
        }
    }
}

fn round9(f: f64) -> f64 {
    if f.is_finite() && f.abs() < 1e12 {
        (f * 1e9).round() / 1e9
    } else {
        f
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn amt(v: Value) -> Amount {
        Amount::from_value(&v).expect("number")
    }

    #[test]
    fn integers_stay_integers() {
        let sum = (amt(json!(2)) + amt(json!(3))) * amt(json!(4));
        assert_eq!(sum, Amount::Int(20));
        assert_eq!(sum.to_json(), Some(json!(20)));
    }

    #[test]
    fn floats_are_rounded_to_decimal() {
        let sum = amt(json!(0.1)) + amt(json!(0.2));
        assert_eq!(sum.to_json(), Some(json!(0.3)));
        let value = amt(json!(3)) * amt(json!(19.99));
        assert_eq!(value.to_json(), Some(json!(59.97)));
    }

    #[test]
    fn overflow_falls_back_to_float_and_infinity_is_none() {
        let big = Amount::Int(i64::MAX) + Amount::Int(1);
        assert!(matches!(big, Amount::Float(_)));
        assert!(
            (Amount::Float(f64::MAX) * Amount::Int(10))
                .to_json()
                .is_none()
        );
    }
}
