//! Field errors worded as `k8s.io/apimachinery/pkg/util/validation/field`
//! words them (`field.Error.Error()`), so that a fragment of an API server
//! message also matches the offline one.

use std::fmt;

use serde_json::Value;

/// The kinds of `field.Error` the admission reports, with their wording.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Required,
    Duplicate,
    Invalid,
    /// `field.TypeInvalid`: worded as `Invalid value`, but it blocks the CEL
    /// rules where an ordinary `Invalid` does not.
    TypeInvalid,
    NotSupported,
    Forbidden,
    TooLong,
    TooMany,
}

impl Kind {
    fn words(self) -> &'static str {
        match self {
            Kind::Required => "Required value",
            Kind::Duplicate => "Duplicate value",
            Kind::Invalid | Kind::TypeInvalid => "Invalid value",
            Kind::NotSupported => "Unsupported value",
            Kind::Forbidden => "Forbidden",
            Kind::TooLong => "Too long",
            Kind::TooMany => "Too many",
        }
    }

    /// Errors after which the API server does not evaluate the CEL rules
    /// at all (`hasBlockingErr` of the custom resource strategy).
    pub(crate) fn blocks_rules(self) -> bool {
        matches!(
            self,
            Kind::NotSupported | Kind::Required | Kind::TooLong | Kind::TooMany | Kind::TypeInvalid
        )
    }
}

/// One error of a field: its path (`spec.functions[0].memoryMiB`), kind,
/// the value shown (as Go's `%v`/`%q`/`%#v` show it) and the detail.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct FieldError {
    pub(crate) path: String,
    pub(crate) kind: Kind,
    pub(crate) value: Option<Value>,
    pub(crate) detail: String,
}

impl FieldError {
    pub(crate) fn new(path: &str, kind: Kind, value: Option<Value>, detail: String) -> Self {
        Self {
            path: path.to_owned(),
            kind,
            value,
            detail,
        }
    }
}

impl fmt::Display for FieldError {
    /// `field.Error.Error()`: `<path>: <type>[: <value>][: <detail>]`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.path, self.kind.words())?;
        match self.kind {
            Kind::Required | Kind::Forbidden | Kind::TooLong => {}
            _ => match &self.value {
                None => {}
                Some(Value::String(s)) => write!(f, ": {}", go_quote(s))?,
                Some(Value::Null) => write!(f, ": null")?,
                Some(Value::Bool(b)) => write!(f, ": {b}")?,
                Some(Value::Number(n)) => write!(f, ": {}", go_number(n))?,
                Some(v) => write!(f, ": {}", go_json(v))?,
            },
        }
        if !self.detail.is_empty() {
            write!(f, ": {}", self.detail)?;
        }
        Ok(())
    }
}

/// A child of a path: `spec` + `buckets` is `spec.buckets`.
pub(crate) fn child(path: &str, name: &str) -> String {
    if path.is_empty() {
        name.to_owned()
    } else {
        format!("{path}.{name}")
    }
}

/// An element of a list: `spec.buckets[1]`.
pub(crate) fn index(path: &str, i: usize) -> String {
    format!("{path}[{i}]")
}

/// A value of a map, as `field.Path.Key` writes it: `spec.env[KEY]`.
pub(crate) fn key(path: &str, k: &str) -> String {
    format!("{path}[{k}]")
}

/// Go's `%q` of a string (JSON's escaping is the same for what manifests
/// hold).
pub(crate) fn go_quote(s: &str) -> String {
    Value::String(s.to_owned()).to_string()
}

/// Go's `%v` of a JSON number: integers as they are, floats in the
/// shortest form, with an exponent only below 1e-4 or from 1e21 on.
pub(crate) fn go_number(n: &serde_json::Number) -> String {
    if let Some(i) = n.as_i64() {
        return i.to_string();
    }
    if let Some(u) = n.as_u64() {
        return u.to_string();
    }
    go_float(n.as_f64().unwrap_or(f64::NAN))
}

/// Go's `%v` of a float64.
pub(crate) fn go_float(x: f64) -> String {
    let a = x.abs();
    if a != 0.0 && !(1e-4..1e21).contains(&a) {
        // Rust writes 1e21 where Go writes 1e+21.
        let s = format!("{x:e}");
        match s.split_once('e') {
            Some((m, e)) if !e.starts_with('-') => format!("{m}e+{e:0>2}"),
            Some((m, e)) => format!("{m}e-{:0>2}", &e[1..]),
            None => s,
        }
    } else {
        format!("{x}")
    }
}

/// A list or map value as the API server (1.34) shows it: its JSON, keys
/// sorted as Go's `encoding/json` sorts them.
pub(crate) fn go_json(v: &Value) -> String {
    match v {
        Value::Array(items) => format!(
            "[{}]",
            items.iter().map(go_json).collect::<Vec<_>>().join(",")
        ),
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            let body = keys
                .iter()
                .map(|k| format!("{}:{}", go_quote(k), go_json(&map[k.as_str()])))
                .collect::<Vec<_>>()
                .join(",");
            format!("{{{body}}}")
        }
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn errors_are_worded_as_the_api_servers() {
        let e = FieldError::new(
            "spec.functions[0].memoryMiB",
            Kind::Invalid,
            Some(json!(64)),
            "spec.functions[0].memoryMiB in body should be greater than or equal to 128".into(),
        );
        assert_eq!(
            e.to_string(),
            "spec.functions[0].memoryMiB: Invalid value: 64: spec.functions[0].memoryMiB in body should be greater than or equal to 128"
        );
        let e = FieldError::new(
            "spec.queues[1]",
            Kind::Duplicate,
            Some(json!({"name": "a"})),
            String::new(),
        );
        assert_eq!(
            e.to_string(),
            r#"spec.queues[1]: Duplicate value: {"name":"a"}"#
        );
        let e = FieldError::new(
            "spec.x",
            Kind::TooLong,
            Some(json!("abc")),
            "may not be more than 2 bytes".into(),
        );
        assert_eq!(
            e.to_string(),
            "spec.x: Too long: may not be more than 2 bytes"
        );
        let e = FieldError::new("spec.y", Kind::Required, None, String::new());
        assert_eq!(e.to_string(), "spec.y: Required value");
        let e = FieldError::new(
            "spec.z",
            Kind::NotSupported,
            Some(json!("x")),
            r#"supported values: "a", "b""#.into(),
        );
        assert_eq!(
            e.to_string(),
            r#"spec.z: Unsupported value: "x": supported values: "a", "b""#
        );
    }

    #[test]
    fn floats_print_as_go_prints_them() {
        assert_eq!(go_float(64.0), "64");
        assert_eq!(go_float(0.5), "0.5");
        assert_eq!(go_float(1e21), "1e+21");
        assert_eq!(go_float(1e-5), "1e-05");
    }
}
