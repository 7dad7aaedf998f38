//! EventBridge rules: the pattern grammar, targets and input transformers.
//!
//! | AWS rule (PutRule / PutTargets) | Where | Reference |
//! |---|---|---|
//! | A pattern is a non-empty JSON object | here | EventBridge User Guide, "Event patterns" |
//! | Every leaf is a non-empty array; arrays hold strings, numbers, booleans, null or matchers, never arrays | here | "Event patterns", "Matching event values" |
//! | Matchers: `prefix`, `suffix` (a string, or `{equals-ignore-case: string}`), `equals-ignore-case`, `wildcard` (no `**`, `\` escapes only `*` and `\`), `anything-but` (a string, a number, a list of strings or of numbers, or `{prefix\|suffix: string}`, `{equals-ignore-case\|wildcard: string or list of strings}`), `numeric` (`[op, n]` or `[>/>=, n, </<=, m]` with n < m, within ±5.0e9), `exists` (boolean), `cidr` (an IPv4 or IPv6 block); one key per matcher; unknown keys refused | here | "Content filtering in Amazon EventBridge event patterns", "Comparison operators for use in event patterns" |
//! | `$or`: a list of at least two non-empty sub-patterns | here | "Comparison operators" (`$or`) |
//! | A pattern is at most 4,096 characters (2,048 by default; the quota can be raised to 4,096) | here and on the plan | "Amazon EventBridge quotas" (Event pattern size) |
//! | A pattern nests at most [`MAX_FREE_FORM_DEPTH`] levels | admission (CRD schema) and here | Sluice's own limit: a deeper object breaks reading the list (serde's limit of 128) |
//! | 1 to 5 targets per rule, ids unique | schema and here | PutTargets |
//! | A FIFO queue target needs a message group id, and content-based deduplication on the queue (a generated `<queue>-dlq` takes its queue's) | here | PutTargets, SqsParameters |
//! | A queue target (a generated `<queue>-dlq` too) gets a queue policy letting exactly its rules send | plan (`plan::queue`) | "Permissions for Amazon SQS" (EventBridge User Guide) |
//! | `InputPathsMap`: at most 100 entries; keys `[A-Za-z0-9_-]+` (so never `AWS.`); values JSON paths in dot notation, at most 256 characters | schema (count, key charset, `$`, length) and here | InputTransformer (API reference) |
//! | `InputTemplate`: 1 to 8,192 characters; every `<placeholder>` defined in `InputPathsMap` or one of `aws.events.*` | schema and here | InputTransformer, "Transforming target input" |

use std::collections::BTreeSet;

use serde_json::{Map, Value};

use super::Declared;
#[cfg(test)]
use crate::crd::MAX_FREE_FORM_DEPTH;
use crate::{
    crd::{DataPipelineSpec, InputTransformer},
    plan::graph::dead_letter_name,
};

/// EventBridge's limit on an event pattern, in characters (the quota's
/// highest value; 2,048 by default).
pub const MAX_EVENT_PATTERN_CHARS: usize = 4096;
/// The range EventBridge's numeric matching works in.
const NUMERIC_LIMIT: f64 = 5.0e9;
/// The matchers EventBridge documents, for "known: ..." hints.
const MATCHERS: &str =
    "prefix, suffix, equals-ignore-case, wildcard, anything-but, numeric, exists, cidr";
/// The variables EventBridge defines in every input template.
const RESERVED_PLACEHOLDERS: [&str; 5] = [
    "aws.events.rule-arn",
    "aws.events.rule-name",
    "aws.events.event.ingestion-time",
    "aws.events.event",
    "aws.events.event.json",
];

pub(super) fn validate_rules(
    spec: &DataPipelineSpec,
    buses: &Declared<'_>,
    queues: &Declared<'_>,
    fifo: &BTreeSet<&str>,
    functions: &Declared<'_>,
    workflows: &Declared<'_>,
    problems: &mut Vec<String>,
) {
    for (i, r) in spec.rules.iter().enumerate() {
        let at = format!("spec.rules[{i}]");
        if let Some(b) = &r.event_bus
            && !buses.has(b)
        {
            problems.push(format!(
                "{at}.eventBus: {b:?} is not declared in spec.eventBuses ({}); leave it out \
                 for the account's default bus",
                buses.hint()
            ));
        }
        validate_pattern(&format!("{at}.pattern"), &r.pattern, problems);
        // The keys Sluice writes into a pattern to keep the rule to this
        // pipeline's own events (plan::events::confine).
        let written: &[(&str, &str)] = if r.event_bus.is_some() {
            &[(
                "source",
                "a rule on the pipeline's own bus matches only the pipeline's own events, whose \
                 source Sluice sets (every event its functions publish carries it); remove source",
            )]
        } else {
            &[
                (
                    "$or",
                    "Sluice confines a rule on the account's default bus to events of this \
                     pipeline's own buckets and workflows or its own source, written as $or; \
                     match alternatives with a list of values instead",
                ),
                (
                    "resources",
                    "Sluice confines a rule on the account's default bus to this pipeline's own \
                     buckets and workflows by their ARNs; remove resources",
                ),
            ]
        };
        for (key, why) in written {
            if r.pattern.get(key).is_some() {
                problems.push(format!("{at}.pattern.{key}: {why}"));
            }
        }
        if r.event_bus.is_none() && spec.buckets.is_empty() && spec.workflows.is_empty() {
            problems.push(format!(
                "{at}.eventBus: a rule on the account's default bus matches only events of this \
                 pipeline's own buckets and workflows or its own source, and it has neither \
                 buckets nor workflows; declare a bus in spec.eventBuses and name it here"
            ));
        }
        if r.targets.is_empty() || r.targets.len() > 5 {
            problems.push(format!(
                "{at}.targets: {} targets; a rule has 1 to 5 (EventBridge's limit)",
                r.targets.len()
            ));
        }
        let mut ids = BTreeSet::new();
        for (j, t) in r.targets.iter().enumerate() {
            let at = format!("{at}.targets[{j}]");
            match (&t.queue, &t.function, &t.workflow) {
                (None, None, Some(w)) => {
                    if !workflows.has(w) {
                        problems.push(format!(
                            "{at}.workflow: {w:?} is not declared in spec.workflows ({})",
                            workflows.hint()
                        ));
                    }
                    if t.message_group_id.is_some() {
                        problems.push(format!(
                            "{at}.messageGroupId: only FIFO queue targets take one"
                        ));
                    }
                }
                (Some(q), None, None) => {
                    if !queues.has(q) {
                        problems.push(format!(
                            "{at}.queue: {q:?} is not declared in spec.queues ({})",
                            queues.hint()
                        ));
                    }
                    // SqsParameters: "If you specify an SQS FIFO queue as a
                    // target, the queue must have content-based
                    // deduplication enabled." A generated dead-letter queue
                    // deduplicates as its queue does.
                    if fifo.contains(q.as_str())
                        && let Some((k, source)) = spec
                            .queues
                            .iter()
                            .enumerate()
                            .find(|(_, s)| s.name == *q || dead_letter_name(&s.name) == *q)
                        && !source.content_based_deduplication
                    {
                        problems.push(format!(
                            "{at}.queue: {q:?} is a FIFO queue without content-based \
                             deduplication, and EventBridge sends to a FIFO queue only with it; \
                             set spec.queues[{k}].contentBasedDeduplication: true"
                        ));
                    }
                    if fifo.contains(q.as_str()) && t.message_group_id.is_none() {
                        problems.push(format!(
                            "{at}.messageGroupId: {q:?} is a FIFO queue; EventBridge needs a \
                             message group id to send to it"
                        ));
                    }
                    if !fifo.contains(q.as_str()) && t.message_group_id.is_some() {
                        problems.push(format!(
                            "{at}.messageGroupId: only FIFO queue targets take one; {q:?} is standard"
                        ));
                    }
                }
                (None, Some(f), None) => {
                    if !functions.has(f) {
                        problems.push(format!(
                            "{at}.function: {f:?} is not declared in spec.functions ({})",
                            functions.hint()
                        ));
                    }
                    if t.message_group_id.is_some() {
                        problems.push(format!(
                            "{at}.messageGroupId: only FIFO queue targets take one"
                        ));
                    }
                }
                _ => problems.push(format!(
                    "{at}: name exactly one of queue, function or workflow"
                )),
            }
            let id = t
                .queue
                .as_deref()
                .or(t.function.as_deref())
                .or(t.workflow.as_deref())
                .unwrap_or("");
            if !ids.insert(id) {
                problems.push(format!("{at}: {id:?} is a target of this rule twice"));
            }
            if let Some(x) = &t.input_transformer {
                validate_input_transformer(&format!("{at}.inputTransformer"), x, problems);
            }
        }
    }
}

/// How deep `value` nests: 0 for a scalar, 1 for an object or array of
/// scalars.
pub fn depth(value: &Value) -> usize {
    // Iterative, so a hostile depth cannot overflow the stack.
    let mut deepest = 0;
    let mut stack = vec![(value, 0usize)];
    while let Some((v, d)) = stack.pop() {
        match v {
            Value::Object(m) => {
                deepest = deepest.max(d + 1);
                stack.extend(m.values().map(|c| (c, d + 1)));
            }
            Value::Array(a) => {
                deepest = deepest.max(d + 1);
                stack.extend(a.iter().map(|c| (c, d + 1)));
            }
            _ => {}
        }
    }
    deepest
}

/// EventBridge's grammar for a pattern (see the table above).
pub(super) fn validate_pattern(at: &str, pattern: &Value, problems: &mut Vec<String>) {
    let Value::Object(map) = pattern else {
        problems.push(format!("{at}: must be an object (the event pattern)"));
        return;
    };
    if !super::check_depth(at, pattern, problems) {
        return;
    }
    fields(at, map, problems);
    let size = pattern.to_string().chars().count();
    if size > MAX_EVENT_PATTERN_CHARS {
        problems.push(format!(
            "{at}: {size} characters as JSON; EventBridge allows {MAX_EVENT_PATTERN_CHARS}"
        ));
    }
}

/// An object of the pattern: each key a field of the event (or `$or`).
fn fields(at: &str, map: &Map<String, Value>, problems: &mut Vec<String>) {
    if map.is_empty() {
        problems.push(format!(
            "{at}: an empty object matches nothing; give a field"
        ));
    }
    for (k, v) in map {
        let at = format!("{at}.{k}");
        match v {
            _ if k == "$or" => match v {
                Value::Array(alts) if alts.len() >= 2 => {
                    for (j, alt) in alts.iter().enumerate() {
                        match alt {
                            Value::Object(m) => fields(&format!("{at}[{j}]"), m, problems),
                            other => problems.push(format!(
                                "{at}[{j}]: {other} is not a pattern; each alternative of $or \
                                 is an object like {{\"source\": [\"a\"]}}"
                            )),
                        }
                    }
                }
                _ => problems.push(format!(
                    "{at}: $or takes a list of at least two patterns, e.g. \
                     [{{\"a\": [1]}}, {{\"b\": [2]}}]"
                )),
            },
            Value::Object(m) => fields(&at, m, problems),
            Value::Array(items) if items.is_empty() => problems.push(format!(
                "{at}: an empty list matches nothing; list at least one value"
            )),
            Value::Array(items) => {
                for (j, item) in items.iter().enumerate() {
                    let at = format!("{at}[{j}]");
                    match item {
                        Value::Array(_) => problems.push(format!(
                            "{at}: a list inside a list; EventBridge takes values and matchers \
                             in one flat list"
                        )),
                        Value::Object(m) => matcher(&at, m, problems),
                        _ => {}
                    }
                }
            }
            other => problems.push(format!(
                "{at}: {other} must be a list of values (e.g. [{other}]) or an object; \
                 EventBridge patterns match by lists"
            )),
        }
    }
}

fn is_string(v: &Value) -> bool {
    v.is_string()
}

/// A non-empty list whose items all pass `ok`.
fn list_of(v: &Value, ok: fn(&Value) -> bool) -> bool {
    matches!(v, Value::Array(a) if !a.is_empty() && a.iter().all(ok))
}

/// One matcher object, e.g. `{"prefix": "a"}`.
fn matcher(at: &str, m: &Map<String, Value>, problems: &mut Vec<String>) {
    let mut keys = m.iter();
    let (Some((k, v)), None) = (keys.next(), keys.next()) else {
        problems.push(format!(
            "{at}: a matcher has exactly one key ({MATCHERS}); write several matchers as \
             several list items"
        ));
        return;
    };
    let at = format!("{at}.{k}");
    let problem = match k.as_str() {
        "prefix" | "suffix" => match v {
            Value::String(_) => None,
            Value::Object(o)
                if o.len() == 1 && o.get("equals-ignore-case").is_some_and(is_string) =>
            {
                None
            }
            _ => Some(format!(
                "{v} must be a string, or {{\"equals-ignore-case\": <string>}}"
            )),
        },
        "equals-ignore-case" => (!v.is_string()).then(|| format!("{v} must be a string")),
        "wildcard" => match v {
            Value::String(s) => wildcard(s),
            _ => Some(format!("{v} must be a string, e.g. \"dir/*.png\"")),
        },
        "exists" => (!v.is_boolean()).then(|| format!("{v} must be true or false")),
        "cidr" => match v {
            Value::String(s) => cidr(s),
            _ => Some(format!("{v} must be a CIDR block, e.g. \"10.0.0.0/24\"")),
        },
        "numeric" => numeric(v),
        "anything-but" => anything_but(v),
        _ => Some(format!("unknown matcher; EventBridge knows {MATCHERS}")),
    };
    if let Some(p) = problem {
        problems.push(format!("{at}: {p}"));
    }
}

fn anything_but(v: &Value) -> Option<String> {
    match v {
        Value::String(_) | Value::Number(_) => None,
        Value::Array(_) if list_of(v, is_string) || list_of(v, Value::is_number) => None,
        Value::Object(o) if o.len() == 1 => {
            let (k, inner) = o.iter().next()?;
            match k.as_str() {
                "prefix" | "suffix" if inner.is_string() => None,
                "equals-ignore-case" if inner.is_string() || list_of(inner, is_string) => None,
                "wildcard" => match inner {
                    Value::String(s) => wildcard(s),
                    Value::Array(a) if list_of(inner, is_string) => {
                        a.iter().filter_map(|s| wildcard(s.as_str()?)).next()
                    }
                    _ => Some(format!(
                        "wildcard: {inner} must be a string or a list of strings"
                    )),
                },
                "prefix" | "suffix" | "equals-ignore-case" => Some(format!(
                    "{k}: {inner} must be a string{}",
                    if k == "equals-ignore-case" {
                        " or a list of strings"
                    } else {
                        ""
                    }
                )),
                _ => Some(format!(
                    "{k} is not a matcher anything-but takes; it takes prefix, suffix, \
                     equals-ignore-case or wildcard"
                )),
            }
        }
        _ => Some(format!(
            "{v} must be a string, a number, a non-empty list of strings or of numbers, or one \
             of {{prefix|suffix: <string>}}, {{equals-ignore-case|wildcard: <string or list>}}"
        )),
    }
}

/// EventBridge's wildcard: `*` matches anything; two in a row are refused,
/// and `\` escapes only `*` and `\`.
fn wildcard(s: &str) -> Option<String> {
    let mut chars = s.chars().peekable();
    let mut previous_star = false;
    while let Some(c) = chars.next() {
        match c {
            '*' if previous_star => {
                return Some(format!(
                    "{s:?} has consecutive '*'; EventBridge refuses them, one '*' matches any run"
                ));
            }
            '*' => previous_star = true,
            '\\' => {
                if !matches!(chars.next(), Some('*' | '\\')) {
                    return Some(format!(
                        "{s:?}: '\\' escapes only '*' or '\\'; write \\\\ for a backslash"
                    ));
                }
                previous_star = false;
            }
            _ => previous_star = false,
        }
    }
    None
}

fn cidr(s: &str) -> Option<String> {
    let bad = || {
        Some(format!(
            "{s:?} is not a CIDR block; e.g. \"10.0.0.0/24\" or \"2001:db8::/32\""
        ))
    };
    let Some((ip, bits)) = s.split_once('/') else {
        return bad();
    };
    let Ok(bits) = bits.parse::<u8>() else {
        return bad();
    };
    match ip.parse::<std::net::IpAddr>() {
        Ok(std::net::IpAddr::V4(_)) if bits <= 32 => None,
        Ok(std::net::IpAddr::V6(_)) if bits <= 128 => None,
        _ => bad(),
    }
}

fn numeric(v: &Value) -> Option<String> {
    const HOW: &str = "write [\"<op>\", n] or [\">\" or \">=\", low, \"<\" or \"<=\", high], \
                       op one of =, <, <=, >, >=";
    let Value::Array(a) = v else {
        return Some(format!("{v} is not a list; {HOW}"));
    };
    let pair =
        |i: usize| -> Option<(&str, f64)> { Some((a.get(i)?.as_str()?, a.get(i + 1)?.as_f64()?)) };
    let ops = ["=", "<", "<=", ">", ">="];
    let bounds: Vec<(&str, f64)> = match a.len() {
        2 => pair(0).into_iter().collect(),
        4 => pair(0).into_iter().chain(pair(2)).collect(),
        _ => Vec::new(),
    };
    if bounds.len() * 2 != a.len() || bounds.iter().any(|(op, _)| !ops.contains(op)) {
        return Some(format!("{v}: {HOW}"));
    }
    if let Some((_, n)) = bounds.iter().find(|(_, n)| n.abs() > NUMERIC_LIMIT) {
        return Some(format!(
            "{n} is outside -5.0e9 to 5.0e9, the range EventBridge's numeric matching works in"
        ));
    }
    if let [(lo_op, lo), (hi_op, hi)] = bounds[..] {
        if !matches!(lo_op, ">" | ">=") || !matches!(hi_op, "<" | "<=") {
            return Some(format!(
                "{v}: a range gives the lower bound (> or >=) first, then the upper (< or <=)"
            ));
        }
        if lo >= hi {
            return Some(format!(
                "{v}: the lower bound {lo} is not below the upper {hi}"
            ));
        }
    }
    None
}

/// EventBridge's rules for an input transformer (see the table above).
fn validate_input_transformer(at: &str, x: &InputTransformer, problems: &mut Vec<String>) {
    if x.input_paths.len() > 100 {
        problems.push(format!(
            "{at}.inputPaths: {} variables; EventBridge allows 100",
            x.input_paths.len()
        ));
    }
    for (name, path) in &x.input_paths {
        let at = format!("{at}.inputPaths.{name}");
        if name.is_empty()
            || !name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        {
            problems.push(format!(
                "{at}: EventBridge takes variable names of letters, digits, '_' and '-' only \
                 (names starting with aws. are its own)"
            ));
        }
        if let Some(p) = json_path(path) {
            problems.push(format!("{at}: {path:?} {p}"));
        }
    }
    for name in placeholders(&x.input_template) {
        if !x.input_paths.contains_key(name) && !RESERVED_PLACEHOLDERS.contains(&name) {
            problems.push(format!(
                "{at}.inputTemplate: <{name}> is not defined; add {name} to inputPaths, or use \
                 one of EventBridge's own: {}",
                RESERVED_PLACEHOLDERS.join(", ")
            ));
        }
    }
}

/// The `<name>` placeholders of a template (names as EventBridge spells
/// them: letters, digits, '_', '-' and, for its own, '.').
fn placeholders(template: &str) -> BTreeSet<&str> {
    let mut found = BTreeSet::new();
    let mut rest = template;
    while let Some(open) = rest.find('<') {
        rest = &rest[open + 1..];
        let end = rest
            .find(|c: char| !(c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.')))
            .unwrap_or(rest.len());
        if end > 0 && rest[end..].starts_with('>') {
            found.insert(&rest[..end]);
        }
    }
    found
}

/// A JSON path as EventBridge's InputPathsMap takes it: `$`, then
/// `.field` segments (an array index `[n]` after a field), at most 256
/// characters. None when valid, else what is wrong.
fn json_path(path: &str) -> Option<String> {
    const HOW: &str = "write it in dot notation, like $.detail.key (EventBridge refuses bracket \
                       notation such as $['detail'])";
    if path.chars().count() > 256 {
        return Some("is over 256 characters, EventBridge's limit".into());
    }
    let Some(rest) = path.strip_prefix('$') else {
        return Some(format!("is not a JSON path; {HOW}"));
    };
    if rest.is_empty() {
        return None;
    }
    let Some(rest) = rest.strip_prefix('.') else {
        return Some(format!("is not in dot notation; {HOW}"));
    };
    for segment in rest.split('.') {
        let (field, index) = match segment.split_once('[') {
            Some((f, i)) => (f, Some(i)),
            None => (segment, None),
        };
        let field_ok = !field.is_empty()
            && !field.chars().any(|c| {
                matches!(
                    c,
                    '[' | ']' | '\'' | '"' | '*' | '$' | '@' | '?' | '(' | ')'
                )
            });
        let index_ok = index.is_none_or(|i| {
            i.strip_suffix(']')
                .is_some_and(|n| !n.is_empty() && n.chars().all(|c| c.is_ascii_digit()))
        });
        if !field_ok || !index_ok {
            return Some(format!("has segment {segment:?}; {HOW}"));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn pattern_problems(p: Value) -> String {
        let mut problems = Vec::new();
        validate_pattern("spec.rules[0].pattern", &p, &mut problems);
        problems.join("; ")
    }

    #[test]
    fn every_documented_matcher_is_accepted() {
        let p = json!({
            "source": ["a", 1, true, null],
            "detail": {
                "a": [{"prefix": "us-"}, {"prefix": {"equals-ignore-case": "eU"}}],
                "b": [{"suffix": ".png"}, {"suffix": {"equals-ignore-case": ".PNG"}}],
                "c": [{"anything-but": "x"}, {"anything-but": 3}, {"anything-but": ["x", "y"]},
                      {"anything-but": [1, 2]}, {"anything-but": {"prefix": "p"}},
                      {"anything-but": {"suffix": "s"}},
                      {"anything-but": {"equals-ignore-case": ["a", "B"]}},
                      {"anything-but": {"wildcard": "*/lib/*"}}],
                "d": [{"numeric": [">", 0, "<=", 5]}, {"numeric": ["=", 3.5]}],
                "e": [{"exists": false}],
                "f": [{"cidr": "10.0.0.0/24"}, {"cidr": "2001:db8::/32"}],
                "g": [{"equals-ignore-case": "Name"}],
                "h": [{"wildcard": "dir/*.png"}, {"wildcard": "a\\*b"}],
                "$or": [{"x": [1]}, {"y": {"z": [2]}}]
            }
        });
        assert_eq!(pattern_problems(p), "");
    }

    #[test]
    fn the_grammar_is_enforced_naming_the_field() {
        let cases = [
            (
                json!({"a": [["x"]]}),
                "spec.rules[0].pattern.a[0]: a list inside a list",
            ),
            (
                json!({"a": "x"}),
                "spec.rules[0].pattern.a: \"x\" must be a list",
            ),
            (json!({"a": []}), "spec.rules[0].pattern.a: an empty list"),
            (json!({"a": {}}), "spec.rules[0].pattern.a: an empty object"),
            (
                json!({"a": [{"contains": "x"}]}),
                "pattern.a[0].contains: unknown matcher",
            ),
            (
                json!({"a": [{"prefix": "x", "suffix": "y"}]}),
                "a[0]: a matcher has exactly one key",
            ),
            (
                json!({"a": [{"prefix": 1}]}),
                "a[0].prefix: 1 must be a string",
            ),
            (json!({"a": [{"prefix": {"wildcard": "x"}}]}), "a[0].prefix"),
            (
                json!({"a": [{"exists": "yes"}]}),
                "a[0].exists: \"yes\" must be true or false",
            ),
            (
                json!({"a": [{"cidr": "10.0.0.0/33"}]}),
                "a[0].cidr: \"10.0.0.0/33\" is not a CIDR",
            ),
            (json!({"a": [{"cidr": "10.0.0.0"}]}), "is not a CIDR"),
            (
                json!({"a": [{"numeric": [">", 5, "<", 1]}]}),
                "a[0].numeric: [\">\",5,\"<\",1]: the lower bound",
            ),
            (
                json!({"a": [{"numeric": ["<", 1, ">", 0]}]}),
                "gives the lower bound",
            ),
            (json!({"a": [{"numeric": ["!=", 1]}]}), "op one of"),
            (
                json!({"a": [{"numeric": [">", 6e9]}]}),
                "outside -5.0e9 to 5.0e9",
            ),
            (json!({"a": [{"numeric": [">"]}]}), "a[0].numeric"),
            (
                json!({"a": [{"anything-but": ["x", 1]}]}),
                "a[0].anything-but",
            ),
            (json!({"a": [{"anything-but": []}]}), "a[0].anything-but"),
            (
                json!({"a": [{"anything-but": {"numeric": [">", 1]}}]}),
                "numeric is not a matcher anything-but takes",
            ),
            (
                json!({"a": [{"anything-but": {"prefix": ["x"]}}]}),
                "prefix: [\"x\"] must be a string",
            ),
            (
                json!({"a": [{"anything-but": {"wildcard": ["a**"]}}]}),
                "consecutive '*'",
            ),
            (
                json!({"a": [{"wildcard": "a**b"}]}),
                "a[0].wildcard: \"a**b\" has consecutive",
            ),
            (json!({"a": [{"wildcard": "a\\b"}]}), "escapes only"),
            (
                json!({"a": [{"equals-ignore-case": 1}]}),
                "a[0].equals-ignore-case: 1 must be a string",
            ),
            (
                json!({"$or": [{"a": [1]}]}),
                "pattern.$or: $or takes a list of at least two",
            ),
            (
                json!({"$or": [{"a": [1]}, "b"]}),
                "pattern.$or[1]: \"b\" is not a pattern",
            ),
            (
                json!({"$or": [{"a": [1]}, {"b": "x"}]}),
                "pattern.$or[1].b: \"x\" must be a list",
            ),
            (json!(["a"]), "pattern: must be an object"),
        ];
        for (p, want) in cases {
            let got = pattern_problems(p.clone());
            assert!(got.contains(want), "{p}: want {want:?}, got {got:?}");
        }
    }

    #[test]
    fn size_counts_characters_and_depth_is_bounded() {
        let long = "é".repeat(MAX_EVENT_PATTERN_CHARS - 20);
        // Twice as many bytes as characters: within the limit.
        assert_eq!(pattern_problems(json!({"a": [long]})), "");
        let longer = "é".repeat(MAX_EVENT_PATTERN_CHARS);
        assert!(pattern_problems(json!({"a": [longer]})).contains("characters as JSON"));

        let mut deep = json!({"leaf": ["x"]});
        for _ in 0..MAX_FREE_FORM_DEPTH {
            deep = json!({ "n": deep });
        }
        let got = pattern_problems(deep);
        assert!(
            got.contains(&format!(
                "nests {} levels; Sluice accepts at most {MAX_FREE_FORM_DEPTH}",
                MAX_FREE_FORM_DEPTH + 2
            )),
            "{got}"
        );
        // One too deep to parse at all was read as the marker.
        let got = pattern_problems(json!({ crate::crd::TOO_DEEP: true }));
        assert!(
            got.contains("spec.rules[0].pattern: nests more than 127 levels"),
            "{got}"
        );
        assert_eq!(depth(&json!({"a": [1]})), 2);
        assert_eq!(depth(&json!(1)), 0);
    }

    fn transformer_problems(paths: &[(&str, &str)], template: &str) -> String {
        let x = InputTransformer {
            input_paths: paths
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            input_template: template.into(),
        };
        let mut problems = Vec::new();
        validate_input_transformer(
            "spec.rules[0].targets[0].inputTransformer",
            &x,
            &mut problems,
        );
        problems.join("; ")
    }

    #[test]
    fn input_transformers_follow_eventbridge() {
        assert_eq!(
            transformer_problems(
                &[
                    ("key", "$.detail.key"),
                    ("first", "$.detail.items[0]"),
                    ("all", "$")
                ],
                r#"{"k": <key>, "f": <first>, "rule": "<aws.events.rule-name>", "e": <aws.events.event.json>, "lt": "a < b"}"#,
            ),
            ""
        );
        let cases = [
            (
                &[("a.b", "$.x")][..],
                "<a.b>",
                "inputPaths.a.b: EventBridge takes variable names",
            ),
            (
                &[("k", "$['detail']")][..],
                "<k>",
                "inputPaths.k: \"$['detail']\" is not in dot notation",
            ),
            (
                &[("k", "$.detail['x']")][..],
                "<k>",
                "has segment \"detail['x']\"",
            ),
            (&[("k", "$..x")][..], "<k>", "has segment \"\""),
            (&[("k", "detail.x")][..], "<k>", "is not a JSON path"),
            (
                &[("k", "$.x")][..],
                "<k> <other>",
                "inputTemplate: <other> is not defined",
            ),
            (
                &[("k", "$.x")][..],
                "<aws.events.nope>",
                "<aws.events.nope> is not defined",
            ),
        ];
        for (paths, template, want) in cases {
            let got = transformer_problems(paths, template);
            assert!(
                got.contains(want),
                "{paths:?} {template}: want {want:?}, got {got:?}"
            );
        }
        let many: Vec<(String, String)> = (0..101)
            .map(|i| (format!("v{i}"), "$.x".to_string()))
            .collect();
        let refs: Vec<(&str, &str)> = many.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        assert!(transformer_problems(&refs, "x").contains("101 variables; EventBridge allows 100"));
    }
}
