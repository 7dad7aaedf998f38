//! The structural schema's part of admission, in the API server's order:
//! defaults and non-nullable nulls (`structuraldefaulting`), unknown fields
//! (pruning, refused under strict field validation), the OpenAPI value
//! validations (kube-openapi's `validate`, its messages kept), and the
//! uniqueness of `x-kubernetes-list-type` `map` and `set` lists
//! (`structurallisttype`).

use std::collections::HashMap;

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::{
    JSONSchemaProps, JSONSchemaPropsOrArray, JSONSchemaPropsOrBool,
};
use serde_json::{Map, Value};

use super::field::{FieldError, Kind, child, go_float, go_quote, index, key};

/// The schema of a list's items (one schema; tuple schemas are not
/// structural).
pub(crate) fn items(s: &JSONSchemaProps) -> Option<&JSONSchemaProps> {
    match &s.items {
        Some(JSONSchemaPropsOrArray::Schema(item)) => Some(item),
        _ => None,
    }
}

/// The schema of a map's values (`additionalProperties` with a schema).
pub(crate) fn additional(s: &JSONSchemaProps) -> Option<&JSONSchemaProps> {
    match &s.additional_properties {
        Some(JSONSchemaPropsOrBool::Schema(value)) => Some(value),
        _ => None,
    }
}

fn nullable(s: &JSONSchemaProps) -> bool {
    s.nullable == Some(true)
}

fn preserves_unknown(s: &JSONSchemaProps) -> bool {
    s.x_kubernetes_preserve_unknown_fields == Some(true)
}

/// A schema's default; `default: null` is none (the API server skips it).
fn default_of(s: &JSONSchemaProps) -> Option<&Value> {
    s.default.as_ref().map(|d| &d.0).filter(|d| !d.is_null())
}

/// `spec.x: null` where `x` is not nullable: the API server sets its
/// default, or drops it when it has none.
fn null_replacement(s: &JSONSchemaProps) -> Option<Option<Value>> {
    if nullable(s) {
        return None;
    }
    Some(default_of(s).cloned())
}

/// Applies the schema's defaults to `value` (and inside the defaults it
/// sets), and replaces or drops the nulls of non-nullable fields.
pub(crate) fn apply_defaults(s: &JSONSchemaProps, value: &mut Value) {
    match value {
        Value::Object(map) => {
            if let Some(props) = &s.properties {
                for (name, prop) in props {
                    match map.get(name) {
                        None => {
                            if let Some(default) = default_of(prop) {
                                map.insert(name.clone(), default.clone());
                            }
                        }
                        Some(Value::Null) => match null_replacement(prop) {
                            Some(Some(default)) => {
                                map.insert(name.clone(), default);
                            }
                            Some(None) => {
                                map.remove(name);
                            }
                            None => {}
                        },
                        Some(_) => {}
                    }
                }
            }
            let values = additional(s);
            let mut dropped = Vec::new();
            for (name, v) in map.iter_mut() {
                let sub = s.properties.as_ref().and_then(|p| p.get(name));
                match (sub, values) {
                    (Some(sub), _) => apply_defaults(sub, v),
                    (None, Some(values)) => {
                        if v.is_null() {
                            match null_replacement(values) {
                                Some(Some(default)) => *v = default,
                                Some(None) => dropped.push(name.clone()),
                                None => {}
                            }
                        }
                        apply_defaults(values, v);
                    }
                    (None, None) => {}
                }
            }
            for name in dropped {
                map.remove(&name);
            }
        }
        Value::Array(list) => {
            if let Some(item) = items(s) {
                for v in list.iter_mut() {
                    if v.is_null()
                        && !nullable(item)
                        && let Some(default) = default_of(item)
                    {
                        *v = default.clone();
                    }
                    apply_defaults(item, v);
                }
            }
        }
        _ => {}
    }
}

/// The fields of `value` its schema does not declare, as strict field
/// validation names them (`unknown field "spec.foo"`). The root's
/// `apiVersion`, `kind` and `metadata` are the API server's own.
pub(crate) fn unknown_fields(
    s: &JSONSchemaProps,
    value: &Value,
    path: &str,
    out: &mut Vec<String>,
) {
    match value {
        Value::Object(map) => {
            let values = additional(s);
            for (name, v) in map {
                let here = child(path, name);
                if let Some(sub) = s.properties.as_ref().and_then(|p| p.get(name)) {
                    unknown_fields(sub, v, &here, out);
                } else if let Some(values) = values {
                    unknown_fields(values, v, &here, out);
                } else if path.is_empty() && matches!(name.as_str(), "apiVersion" | "kind") {
                } else if path.is_empty() && name == "metadata" {
                    unknown_metadata(v, out);
                } else if !preserves_unknown(s) && s.additional_properties.is_none() {
                    out.push(format!("unknown field {}", go_quote(&here)));
                }
            }
        }
        Value::Array(list) => {
            if let Some(item) = items(s) {
                for (i, v) in list.iter().enumerate() {
                    unknown_fields(item, v, &index(path, i), out);
                }
            }
        }
        _ => {}
    }
}

/// Fields of `ObjectMeta`.
const OBJECT_META: &[&str] = &[
    "name",
    "generateName",
    "namespace",
    "selfLink",
    "uid",
    "resourceVersion",
    "generation",
    "creationTimestamp",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
    "labels",
    "annotations",
    "ownerReferences",
    "finalizers",
    "managedFields",
];

fn unknown_metadata(meta: &Value, out: &mut Vec<String>) {
    if let Value::Object(map) = meta {
        for name in map.keys() {
            if !OBJECT_META.contains(&name.as_str()) {
                out.push(format!(
                    "unknown field {}",
                    go_quote(&child("metadata", name))
                ));
            }
        }
    }
}

/// The OpenAPI type of a JSON value, as kube-openapi names it; a float
/// with no fraction is an integer (kubectl sends `1.0` as `1`).
pub(crate) fn json_type(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(n) if n.is_i64() || n.is_u64() => "integer",
        Value::Number(n)
            if n.as_f64()
                .is_some_and(|f| f.fract() == 0.0 && f.abs() < 9.2e18) =>
        {
            "integer"
        }
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

fn number(v: &Value) -> Option<f64> {
    v.as_f64()
}

/// Two JSON values equal as the API server compares decoded values
/// (numbers by value).
fn json_equal(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x.as_f64() == y.as_f64(),
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(a, b)| json_equal(a, b))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len()
                && x.iter()
                    .all(|(k, a)| y.get(k).is_some_and(|b| json_equal(a, b)))
        }
        _ => a == b,
    }
}

/// The value validations of kube-openapi (OpenAPI v3 as Kubernetes takes
/// it), with its messages, turned into field errors as
/// `kubeOpenAPIResultToFieldErrors` turns them.
#[derive(Debug, Default)]
pub(crate) struct Validator {
    patterns: HashMap<String, Result<regex::Regex, String>>,
}

impl Validator {
    pub(crate) fn validate(
        &mut self,
        s: &JSONSchemaProps,
        value: &Value,
        path: &str,
        out: &mut Vec<FieldError>,
    ) {
        let types: Vec<&str> = if s.x_kubernetes_int_or_string == Some(true) {
            vec!["integer", "string"]
        } else {
            s.type_.iter().map(String::as_str).collect()
        };
        let actual = json_type(value);
        if value.is_null() {
            if !types.is_empty() && !nullable(s) {
                out.push(type_error(path, &types, "null"));
            }
            return;
        }
        // An integer is a number too.
        let fits = types.contains(&actual) || (actual == "integer" && types.contains(&"number"));
        // kube-openapi goes on after a wrong type, with the checks of the
        // value's own kind (a float for an integer is also below its minimum).
        if !types.is_empty() && !fits {
            out.push(type_error(path, &types, actual));
        }
        if let Some(allowed) = &s.enum_
            && !allowed.iter().any(|a| json_equal(&a.0, value))
        {
            let values: Vec<String> = allowed
                .iter()
                .map(|a| match &a.0 {
                    Value::String(s) => go_quote(s),
                    other => go_quote(&other.to_string()),
                })
                .collect();
            out.push(FieldError::new(
                path,
                Kind::NotSupported,
                Some(value.clone()),
                format!("supported values: {}", values.join(", ")),
            ));
        }
        match value {
            Value::String(text) => self.string(s, text, value, path, out),
            Value::Number(_) => numeric(s, value, path, out),
            Value::Array(list) => {
                if let Some(min) = s.min_items
                    && (list.len() as i64) < min
                {
                    out.push(invalid(
                        path,
                        Value::from(list.len()),
                        format!("{path} in body should have at least {min} items"),
                    ));
                }
                if let Some(max) = s.max_items
                    && (list.len() as i64) > max
                {
                    out.push(FieldError::new(
                        path,
                        Kind::TooMany,
                        Some(Value::from(list.len())),
                        too_many(max),
                    ));
                }
                if let Some(item) = items(s) {
                    for (i, v) in list.iter().enumerate() {
                        self.validate(item, v, &index(path, i), out);
                    }
                }
            }
            Value::Object(map) => self.object(s, map, path, out),
            _ => {}
        }
        for sub in s.all_of.iter().flatten() {
            self.validate(sub, value, path, out);
        }
    }

    fn string(
        &mut self,
        s: &JSONSchemaProps,
        text: &str,
        value: &Value,
        path: &str,
        out: &mut Vec<FieldError>,
    ) {
        // kube-openapi counts characters (runes), not bytes, and reports
        // only the first of maxLength, minLength and pattern that fails.
        let chars = text.chars().count() as i64;
        if let Some(max) = s.max_length
            && chars > max
        {
            let unit = if max == 1 { "byte" } else { "bytes" };
            out.push(FieldError::new(
                path,
                Kind::TooLong,
                Some(value.clone()),
                format!("may not be more than {max} {unit}"),
            ));
            return;
        }
        if let Some(min) = s.min_length
            && chars < min
        {
            out.push(invalid(
                path,
                value.clone(),
                format!("{path} in body should be at least {min} chars long"),
            ));
            return;
        }
        if let Some(pattern) = &s.pattern {
            let compiled = self
                .patterns
                .entry(pattern.clone())
                .or_insert_with(|| regex::Regex::new(pattern).map_err(|e| e.to_string()));
            match compiled {
                Ok(re) if re.is_match(text) => {}
                Ok(_) => out.push(invalid(
                    path,
                    value.clone(),
                    format!("{path} in body should match '{pattern}'"),
                )),
                Err(e) => out.push(invalid(
                    path,
                    value.clone(),
                    format!("the pattern '{pattern}' does not compile: {e}"),
                )),
            }
        }
    }

    fn object(
        &mut self,
        s: &JSONSchemaProps,
        map: &Map<String, Value>,
        path: &str,
        out: &mut Vec<FieldError>,
    ) {
        for name in s.required.iter().flatten() {
            if !map.contains_key(name) {
                out.push(FieldError::new(
                    &child(path, name),
                    Kind::Required,
                    None,
                    String::new(),
                ));
            }
        }
        let count = map.len() as i64;
        if let Some(min) = s.min_properties
            && count < min
        {
            out.push(invalid(
                path,
                Value::from(count),
                format!("{path} in body should have at least {min} properties"),
            ));
        }
        if let Some(max) = s.max_properties
            && count > max
        {
            out.push(FieldError::new(
                path,
                Kind::TooMany,
                Some(Value::from(count)),
                too_many(max),
            ));
        }
        let values = additional(s);
        for (name, v) in map {
            if let Some(sub) = s.properties.as_ref().and_then(|p| p.get(name)) {
                self.validate(sub, v, &child(path, name), out);
            } else if let Some(values) = values {
                self.validate(values, v, &child(path, name), out);
            }
        }
    }
}

fn numeric(s: &JSONSchemaProps, value: &Value, path: &str, out: &mut Vec<FieldError>) {
    let Some(x) = number(value) else { return };
    if let Some(m) = s.multiple_of
        && m != 0.0
        && (x / m).fract() != 0.0
    {
        out.push(invalid(
            path,
            value.clone(),
            format!("{path} in body should be a multiple of {}", go_float(m)),
        ));
    }
    if let Some(max) = s.maximum {
        let exclusive = s.exclusive_maximum == Some(true);
        if x > max || (exclusive && x == max) {
            let words = if exclusive {
                "less than"
            } else {
                "less than or equal to"
            };
            out.push(invalid(
                path,
                value.clone(),
                format!("{path} in body should be {words} {}", go_float(max)),
            ));
        }
    }
    if let Some(min) = s.minimum {
        let exclusive = s.exclusive_minimum == Some(true);
        if x < min || (exclusive && x == min) {
            let words = if exclusive {
                "greater than"
            } else {
                "greater than or equal to"
            };
            out.push(invalid(
                path,
                value.clone(),
                format!("{path} in body should be {words} {}", go_float(min)),
            ));
        }
    }
}

fn invalid(path: &str, value: Value, detail: String) -> FieldError {
    FieldError::new(path, Kind::Invalid, Some(value), detail)
}

fn type_error(path: &str, types: &[&str], actual: &str) -> FieldError {
    FieldError::new(
        path,
        Kind::TypeInvalid,
        Some(Value::String(actual.to_owned())),
        format!(
            "{path} in body must be of type {}: {}",
            types.join(","),
            go_quote(actual)
        ),
    )
}

/// `field.TooMany`'s detail.
fn too_many(max: i64) -> String {
    let unit = if max == 1 { "item" } else { "items" };
    format!("must have at most {max} {unit}")
}

/// Duplicates in `x-kubernetes-list-type: set` lists (whole elements) and
/// `map` lists (the key fields), each reported once at its second
/// occurrence, walking the whole object as `structurallisttype` does.
pub(crate) fn list_types(
    s: &JSONSchemaProps,
    value: &Value,
    path: &str,
    out: &mut Vec<FieldError>,
) {
    match value {
        Value::Object(map) => {
            let values = additional(s);
            for (name, v) in map {
                if let Some(sub) = s.properties.as_ref().and_then(|p| p.get(name)) {
                    list_types(sub, v, &child(path, name), out);
                } else if let Some(values) = values {
                    list_types(values, v, &key(path, name), out);
                }
            }
        }
        Value::Array(list) => {
            match s.x_kubernetes_list_type.as_deref() {
                Some("set") => {
                    for i in second_occurrences(list.iter().map(Some).collect()) {
                        out.push(FieldError::new(
                            &index(path, i),
                            Kind::Duplicate,
                            Some(list[i].clone()),
                            String::new(),
                        ));
                    }
                }
                Some("map") => list_map(s, list, path, out),
                _ => {}
            }
            if let Some(item) = items(s) {
                for (i, v) in list.iter().enumerate() {
                    list_types(item, v, &index(path, i), out);
                }
            }
        }
        _ => {}
    }
}

fn list_map(s: &JSONSchemaProps, list: &[Value], path: &str, out: &mut Vec<FieldError>) {
    for (i, x) in list.iter().enumerate() {
        if !x.is_null() && !x.is_object() {
            out.push(invalid(
                &index(path, i),
                x.clone(),
                "must be an object for an array of list-type map".into(),
            ));
            return;
        }
    }
    let key_fields: Vec<&String> = s.x_kubernetes_list_map_keys.iter().flatten().collect();
    let keys: Vec<Value> = list
        .iter()
        .map(|x| {
            let mut key = Map::new();
            if let Value::Object(x) = x {
                for k in &key_fields {
                    if let Some(v) = x.get(k.as_str()) {
                        key.insert((*k).clone(), v.clone());
                    }
                }
            }
            Value::Object(key)
        })
        .collect();
    for i in second_occurrences(keys.iter().map(Some).collect()) {
        out.push(FieldError::new(
            &index(path, i),
            Kind::Duplicate,
            Some(keys[i].clone()),
            String::new(),
        ));
    }
}

/// The indices where a value is seen for the second time.
fn second_occurrences(values: Vec<Option<&Value>>) -> Vec<usize> {
    let mut seen: Vec<(&Value, usize)> = Vec::new();
    let mut out = Vec::new();
    for (i, v) in values.into_iter().enumerate() {
        let Some(v) = v else { continue };
        match seen.iter_mut().find(|(s, _)| json_equal(s, v)) {
            Some((_, times)) => {
                *times += 1;
                if *times == 2 {
                    out.push(i);
                }
            }
            None => seen.push((v, 1)),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn schema(v: Value) -> JSONSchemaProps {
        serde_json::from_value(v).expect("schema")
    }

    fn errors(s: &JSONSchemaProps, v: &Value) -> Vec<String> {
        let mut out = Vec::new();
        Validator::default().validate(s, v, "spec", &mut out);
        list_types(s, v, "spec", &mut out);
        out.iter().map(ToString::to_string).collect()
    }

    #[test]
    fn defaults_fill_absent_fields_and_nulls_and_recurse() {
        let s = schema(json!({"type": "object", "properties": {
            "a": {"type": "integer", "default": 3},
            "b": {"type": "object", "default": {}, "properties": {"c": {"type": "string", "default": "x"}}},
            "n": {"type": "string"},
            "m": {"type": "string", "nullable": true},
            "l": {"type": "array", "items": {"type": "object", "properties": {"d": {"type": "boolean", "default": false}}}}
        }}));
        let mut v = json!({"a": null, "n": null, "m": null, "l": [{}]});
        apply_defaults(&s, &mut v);
        assert_eq!(
            v,
            json!({"a": 3, "b": {"c": "x"}, "m": null, "l": [{"d": false}]})
        );
    }

    #[test]
    fn unknown_fields_are_named_unless_preserved() {
        let s = schema(json!({"type": "object", "properties": {
            "spec": {"type": "object", "properties": {
                "free": {"type": "object", "x-kubernetes-preserve-unknown-fields": true},
                "env": {"type": "object", "additionalProperties": {"type": "string"}},
                "list": {"type": "array", "items": {"type": "object", "properties": {"a": {"type": "string"}}}}
            }}
        }}));
        let v = json!({"apiVersion": "x/v1", "kind": "K", "metadata": {"name": "n", "bogus": 1},
            "spec": {"foo": 1, "free": {"any": {"deep": 1}}, "env": {"K": "v"}, "list": [{"a": "x", "b": 2}]}});
        let mut out = Vec::new();
        unknown_fields(&s, &v, "", &mut out);
        out.sort();
        assert_eq!(
            out,
            vec![
                r#"unknown field "metadata.bogus""#,
                r#"unknown field "spec.foo""#,
                r#"unknown field "spec.list[0].b""#,
            ]
        );
    }

    #[test]
    fn value_validations_speak_kube_openapi() {
        let s = schema(
            json!({"type": "object", "required": ["name"], "properties": {
                "name": {"type": "string", "minLength": 1, "maxLength": 3, "pattern": "^[a-z]+$"},
                "mode": {"type": "string", "enum": ["a", "b"]},
                "mem": {"type": "integer", "minimum": 128, "maximum": 1024},
                "ratio": {"type": "number", "minimum": 0, "exclusiveMinimum": true},
                "targets": {"type": "array", "minItems": 1, "maxItems": 2, "items": {"type": "string"}},
                "env": {"type": "object", "maxProperties": 1, "minProperties": 1, "additionalProperties": {"type": "string"}},
                "port": {"x-kubernetes-int-or-string": true},
                "pattern": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}
            }}),
        );
        let e = errors(
            &s,
            &json!({"name": "ABCDé", "mode": "x", "mem": 64, "ratio": 0, "targets": [],
                "env": {}, "port": true, "pattern": ["a"]}),
        );
        let want = [
            // Only the first string check that fails is reported.
            "spec.name: Too long: may not be more than 3 bytes",
            "spec.mode: Unsupported value: \"x\": supported values: \"a\", \"b\"",
            "spec.mem: Invalid value: 64: spec.mem in body should be greater than or equal to 128",
            "spec.ratio: Invalid value: 0: spec.ratio in body should be greater than 0",
            "spec.targets: Invalid value: 0: spec.targets in body should have at least 1 items",
            "spec.env: Invalid value: 0: spec.env in body should have at least 1 properties",
            "spec.port: Invalid value: \"boolean\": spec.port in body must be of type integer,string: \"boolean\"",
            "spec.pattern: Invalid value: \"array\": spec.pattern in body must be of type object: \"array\"",
        ];
        for w in want {
            assert!(e.contains(&w.to_owned()), "missing {w:?} in {e:#?}");
        }
        assert_eq!(e.len(), want.len(), "{e:#?}");
        let e = errors(
            &s,
            &json!({"targets": ["a", "b", "c"], "env": {"A": "1", "B": "2"}, "mem": 2048, "port": 80, "name": "é"}),
        );
        for w in [
            "spec.targets: Too many: 3: must have at most 2 items",
            "spec.env: Too many: 2: must have at most 1 item",
            "spec.mem: Invalid value: 2048: spec.mem in body should be less than or equal to 1024",
        ] {
            assert!(e.contains(&w.to_owned()), "missing {w:?} in {e:#?}");
        }
        // "é" is one character: no maxLength error, only the pattern.
        assert_eq!(e.len(), 4, "{e:#?}");
        assert!(errors(&s, &json!({})).contains(&"spec.name: Required value".to_owned()));
        // A string for int-or-string, and an integral float for an integer.
        assert!(errors(&s, &json!({"name": "ab", "port": "http", "mem": 256.0})).is_empty());
    }

    #[test]
    fn lists_of_type_map_and_set_refuse_duplicates() {
        let s = schema(json!({"type": "object", "properties": {
            "queues": {"type": "array", "x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["name"],
                "items": {"type": "object", "properties": {"name": {"type": "string"}}}},
            "tags": {"type": "array", "x-kubernetes-list-type": "set", "items": {"type": "string"}}
        }}));
        let e = errors(
            &s,
            &json!({"queues": [{"name": "a"}, {"name": "b"}, {"name": "a"}, {"name": "a"}], "tags": ["x", "x"]}),
        );
        assert_eq!(
            e,
            vec![
                r#"spec.queues[2]: Duplicate value: {"name":"a"}"#,
                r#"spec.tags[1]: Duplicate value: "x""#,
            ]
        );
    }

    #[test]
    fn nulls_are_refused_unless_nullable() {
        let s = schema(json!({"type": "array", "items": {"type": "string"}}));
        assert_eq!(
            errors(&s, &json!([null])),
            vec![
                r#"spec[0]: Invalid value: "null": spec[0] in body must be of type string: "null""#
            ]
        );
        let s = schema(json!({"type": "array", "items": {"type": "string", "nullable": true}}));
        assert!(errors(&s, &json!([null])).is_empty());
    }
}
