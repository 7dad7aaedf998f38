//! The `x-kubernetes-validations` rules, evaluated as the API server's CEL
//! validator does on a create: at every node of the schema where the
//! object has a (non-null) value, `self` bound to that value typed by its
//! schema; transition rules (those reading `oldSelf`) are skipped, there is
//! no old object. A rule that is false is reported with its `message` (or
//! its `messageExpression`'s value, or `failed rule: <rule>`) at the node,
//! or at its `fieldPath`, as the `reason` says; a rule that fails to
//! evaluate is reported as the API server reports it, never passed.

use std::collections::HashMap;
use std::sync::Arc;

use cel::objects::{Key, Map as CelMap};
use cel::{Context, Env, ExecutionError, Program, Value as Cel};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::{
    JSONSchemaProps, ValidationRule,
};
use serde_json::Value;

use super::field::{FieldError, Kind, child, index, key};
use super::schema::{additional, items, json_type};

/// Compiles and runs the rules, each source compiled once.
pub(crate) struct Rules {
    env: Arc<Env>,
    programs: HashMap<String, Result<Arc<Program>, String>>,
}

impl std::fmt::Debug for Rules {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Rules")
            .field("compiled", &self.programs.len())
            .finish()
    }
}

impl Default for Rules {
    fn default() -> Self {
        Self {
            env: Arc::new(Env::stdlib()),
            programs: HashMap::new(),
        }
    }
}

impl Rules {
    fn program(&mut self, source: &str) -> Result<Arc<Program>, String> {
        let env = &self.env;
        self.programs
            .entry(source.to_owned())
            .or_insert_with(|| {
                env.compile(source)
                    .map(Arc::new)
                    .map_err(|e| e.to_string().replace('\n', " "))
            })
            .clone()
    }

    /// Evaluates every rule of `s` and of the schemas under it on `value`.
    pub(crate) fn validate(
        &mut self,
        s: &JSONSchemaProps,
        value: &Value,
        path: &str,
        out: &mut Vec<FieldError>,
    ) {
        if value.is_null() {
            return;
        }
        for rule in s.x_kubernetes_validations.iter().flatten() {
            self.rule(s, rule, value, path, out);
        }
        match value {
            Value::Object(map) => {
                let values = additional(s);
                for (name, v) in map {
                    if let Some(sub) = s.properties.as_ref().and_then(|p| p.get(name)) {
                        self.validate(sub, v, &child(path, name), out);
                    } else if let Some(values) = values {
                        self.validate(values, v, &key(path, name), out);
                    }
                }
            }
            Value::Array(list) => {
                if let Some(item) = items(s) {
                    for (i, v) in list.iter().enumerate() {
                        self.validate(item, v, &index(path, i), out);
                    }
                }
            }
            _ => {}
        }
    }

    fn rule(
        &mut self,
        s: &JSONSchemaProps,
        rule: &ValidationRule,
        value: &Value,
        path: &str,
        out: &mut Vec<FieldError>,
    ) {
        let shown = Some(Value::String(s.type_.clone().unwrap_or_default()));
        let program = match self.program(&rule.rule) {
            Ok(p) => p,
            Err(e) => {
                out.push(FieldError::new(
                    path,
                    Kind::Invalid,
                    shown,
                    format!("compilation failed: {e}: {}", rule_string(rule)),
                ));
                return;
            }
        };
        // A transition rule: on a create there is no old object to compare.
        if program.references().has_variable("oldSelf") {
            return;
        }
        let this = to_cel(Some(s), value);
        let mut context = Context::with_env(self.env.clone());
        context.add_variable_from_value("self", this);
        match program.execute(&context) {
            Ok(Cel::Bool(true)) => {}
            Ok(Cel::Bool(false)) => {
                let at = match rule.field_path.as_deref() {
                    Some(fp) if !fp.is_empty() => child(path, fp.trim_start_matches('.')),
                    _ => path.to_owned(),
                };
                let message = rule
                    .message_expression
                    .as_deref()
                    .and_then(|m| self.message(m, &context))
                    .unwrap_or_else(|| message_or_default(rule));
                out.push(for_reason(&at, shown, message, rule.reason.as_deref()));
            }
            Ok(other) => out.push(FieldError::new(
                path,
                Kind::Invalid,
                shown,
                format!(
                    "rule returned {} where a bool was expected, evaluating rule: {}",
                    other.type_of(),
                    rule_string(rule)
                ),
            )),
            Err(ExecutionError::NoSuchOverload(_)) => out.push(FieldError::new(
                path,
                Kind::Invalid,
                shown,
                format!(
                    "'no such overload': call arguments did not match a supported operator, function or macro signature for rule: {}",
                    rule_string(rule)
                ),
            )),
            Err(e) => out.push(FieldError::new(
                path,
                Kind::Invalid,
                shown,
                format!("{} evaluating rule: {}", cel_go_error(&e), rule_string(rule)),
            )),
        }
    }

    /// A `messageExpression`'s message, or none when it fails, is not a
    /// string or is blank (the API server then uses the static message).
    fn message(&mut self, source: &str, context: &Context<'_, '_>) -> Option<String> {
        let program = self.program(source).ok()?;
        match program.execute(context) {
            Ok(Cel::String(s)) if !s.trim().is_empty() && !s.contains('\n') => {
                Some(s.as_str().to_owned())
            }
            _ => None,
        }
    }
}

/// `ruleErrorString`: the message, else the rule.
fn rule_string(rule: &ValidationRule) -> String {
    match rule.message.as_deref().map(str::trim) {
        Some(m) if !m.is_empty() => m.to_owned(),
        _ => rule.rule.trim().to_owned(),
    }
}

/// `ruleMessageOrDefault`.
fn message_or_default(rule: &ValidationRule) -> String {
    match rule.message.as_deref().map(str::trim) {
        Some(m) if !m.is_empty() => m.to_owned(),
        _ => format!("failed rule: {}", rule.rule.trim()),
    }
}

/// `fieldErrorForReason`.
fn for_reason(
    path: &str,
    shown: Option<Value>,
    detail: String,
    reason: Option<&str>,
) -> FieldError {
    match reason {
        Some("FieldValueForbidden") => FieldError::new(path, Kind::Forbidden, None, detail),
        Some("FieldValueRequired") => FieldError::new(path, Kind::Required, None, detail),
        Some("FieldValueDuplicate") => FieldError::new(path, Kind::Duplicate, shown, String::new()),
        _ => FieldError::new(path, Kind::Invalid, shown, detail),
    }
}

/// The runtime errors as cel-go words the common ones.
fn cel_go_error(e: &ExecutionError) -> String {
    match e {
        ExecutionError::NoSuchKey(k) => format!("no such key: {k}"),
        ExecutionError::DivisionByZero(_) => "division by zero".to_owned(),
        ExecutionError::RemainderByZero(_) => "modulus by zero".to_owned(),
        ExecutionError::IndexOutOfBounds(i) => format!("index out of bounds: {i:?}"),
        ExecutionError::Overflow(..) => "integer overflow".to_owned(),
        other => other.to_string(),
    }
}

/// A property's name as CEL rules access it: Kubernetes escapes `__`,
/// `.`, `-` and `/` (`detail-type` is `detail__dash__type`). Keywords
/// (`function`, `namespace`...) are selected as they are, as the Kubernetes
/// 1.34 API server takes `self.function`.
fn escape(name: &str) -> String {
    name.replace("__", "__underscores__")
        .replace('.', "__dot__")
        .replace('-', "__dash__")
        .replace('/', "__slash__")
}

/// A JSON value as a CEL value of its schema's type: `integer` is `int`,
/// `number` is `double` (even when integral), objects with properties are
/// objects whose fields are the present properties, maps and free-form
/// values are maps.
pub(crate) fn to_cel(s: Option<&JSONSchemaProps>, value: &Value) -> Cel {
    match value {
        Value::Null => Cel::Null,
        Value::Bool(b) => Cel::Bool(*b),
        Value::String(text) => Cel::String(Arc::new(text.clone())),
        Value::Number(n) => {
            let declared = s.and_then(|s| s.type_.as_deref());
            match (declared, n.as_i64()) {
                (Some("number"), _) => Cel::Float(n.as_f64().unwrap_or(f64::NAN)),
                (_, Some(i)) => Cel::Int(i),
                _ if json_type(value) == "integer" && declared != Some("number") => {
                    n.as_f64().map_or(Cel::Null, |f| Cel::Int(f as i64))
                }
                _ => match n.as_u64() {
                    Some(u) => Cel::UInt(u),
                    None => Cel::Float(n.as_f64().unwrap_or(f64::NAN)),
                },
            }
        }
        Value::Array(list) => {
            let item = s.and_then(items);
            Cel::List(Arc::new(list.iter().map(|v| to_cel(item, v)).collect()))
        }
        Value::Object(map) => {
            let props = s.and_then(|s| s.properties.as_ref());
            let values = s.and_then(additional);
            let mut out: HashMap<Key, Cel> = HashMap::new();
            // A field set to null is absent to the rules, as the API
            // server's `has()` sees it.
            for (name, v) in map.iter().filter(|(_, v)| !v.is_null()) {
                match props.and_then(|p| p.get(name)) {
                    Some(sub) => {
                        out.insert(Key::from(escape(name)), to_cel(Some(sub), v));
                    }
                    None if props.is_some() && values.is_none() => {}
                    None => {
                        out.insert(Key::from(name.clone()), to_cel(values, v));
                    }
                }
            }
            Cel::Map(CelMap { map: Arc::new(out) })
        }
    }
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
        Rules::default().validate(s, v, "spec", &mut out);
        out.iter().map(ToString::to_string).collect()
    }

    fn one_rule(rule: Value, v: Value) -> Vec<String> {
        let s = schema(json!({"type": "object", "properties": {
            "name": {"type": "string"}, "n": {"type": "integer"}, "r": {"type": "number"},
            "l": {"type": "array", "items": {"type": "object", "properties": {"name": {"type": "string"}}}},
            "free": {"type": "object", "x-kubernetes-preserve-unknown-fields": true},
            "env": {"type": "object", "additionalProperties": {"type": "string"}},
            "detail-type": {"type": "string"}
        }, "x-kubernetes-validations": [rule]}));
        errors(&s, &v)
    }

    #[test]
    fn kubernetes_cel_idioms_evaluate() {
        for rule in [
            "has(self.name) && !has(self.n)",
            "size(self.l) == 2 && self.l.size() == 2",
            "self.l.all(x, self.l.exists_one(y, y.name == x.name))",
            "[has(self.name), has(self.n), has(self.l)].filter(x, x).size() == 2",
            "self.name.matches('^[a-z]+$') && self.name.startsWith('ab') && self.name.endsWith('c') && self.name.contains('b')",
            "self.name in ['abc', 'x'] && self.name + '-dlq' == 'abc-dlq'",
            "(self.name == 'abc' ? 1 : 2) == 1",
            "self.l.map(x, x.name) == ['a', 'b'] && self.l.exists(x, x.name == 'b')",
            "type(self.free) == map && self.free.deep.x == 1 && self.env.all(k, self.env[k].startsWith('$'))",
            "self.detail__dash__type == 'd'",
            "self.r == 2.0",
        ] {
            let e = one_rule(
                json!({"rule": rule}),
                json!({"name": "abc", "l": [{"name": "a"}, {"name": "b"}], "free": {"deep": {"x": 1}},
                    "env": {"K": "$.x"}, "detail-type": "d", "r": 2}),
            );
            assert!(e.is_empty(), "{rule}: {e:?}");
        }
    }

    #[test]
    fn a_false_rule_is_reported_with_its_message_path_and_reason() {
        assert_eq!(
            one_rule(
                json!({"rule": "self.n <= 900", "message": "use a workflow"}),
                json!({"n": 1000})
            ),
            vec![r#"spec: Invalid value: "object": use a workflow"#]
        );
        assert_eq!(
            one_rule(json!({"rule": "self.n <= 900"}), json!({"n": 1000})),
            vec![r#"spec: Invalid value: "object": failed rule: self.n <= 900"#]
        );
        assert_eq!(
            one_rule(
                json!({"rule": "self.n <= 900", "message": "m", "fieldPath": ".n", "reason": "FieldValueForbidden"}),
                json!({"n": 1000})
            ),
            vec!["spec.n: Forbidden: m"]
        );
        assert_eq!(
            one_rule(
                json!({"rule": "self.n <= 900", "messageExpression": "'n is ' + string(self.n)", "message": "static"}),
                json!({"n": 1000})
            ),
            vec![r#"spec: Invalid value: "object": n is 1000"#]
        );
        // A messageExpression that fails falls back to the message.
        assert_eq!(
            one_rule(
                json!({"rule": "self.n <= 900", "messageExpression": "self.nope", "message": "static"}),
                json!({"n": 1000})
            ),
            vec![r#"spec: Invalid value: "object": static"#]
        );
    }

    #[test]
    fn a_rule_that_fails_to_evaluate_is_an_error_not_a_pass() {
        assert_eq!(
            one_rule(
                json!({"rule": "self.name == 'x'", "message": "m"}),
                json!({"n": 1})
            ),
            vec![r#"spec: Invalid value: "object": no such key: name evaluating rule: m"#]
        );
        let e = one_rule(json!({"rule": "self.name > 1"}), json!({"name": "a"}));
        assert_eq!(e.len(), 1);
        assert!(
            e[0] == "spec: Invalid value: \"object\": 'no such overload': call arguments did not \
                     match a supported operator, function or macro signature for rule: self.name > 1",
            "{e:?}"
        );
        let e = one_rule(json!({"rule": "self.name =="}), json!({"name": "a"}));
        assert!(e.len() == 1 && e[0].contains("compilation failed"), "{e:?}");
    }

    #[test]
    fn rules_run_at_every_present_node_and_transition_rules_are_skipped() {
        let s = schema(json!({"type": "object", "properties": {
            "l": {"type": "array", "items": {"type": "object",
                "properties": {"n": {"type": "integer"}, "o": {"type": "object", "properties": {"m": {"type": "integer"}},
                    "x-kubernetes-validations": [{"rule": "self.m > 0", "message": "m is positive"}]}},
                "x-kubernetes-validations": [{"rule": "self.n < 10", "message": "n below 10"},
                    {"rule": "self.n == oldSelf.n", "message": "immutable"}]}}
        }}));
        assert_eq!(
            errors(
                &s,
                &json!({"l": [{"n": 1, "o": {"m": 0}}, {"n": 11}, {"n": 2, "o": null}]})
            ),
            vec![
                r#"spec.l[0].o: Invalid value: "object": m is positive"#,
                r#"spec.l[1]: Invalid value: "object": n below 10"#,
            ]
        );
    }
}
