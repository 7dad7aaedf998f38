//! Step Functions: a workflow's longest successful path through its
//! definition (state transitions and the functions its Task states run,
//! per execution), Standard transitions or Express requests and
//! GB-seconds, and the Standard-versus-Express rule.

use std::collections::BTreeMap;

use serde_json::Value;

use super::{Advice, Cx, Line, round_cents};
use crate::{crd::WorkflowType, plan::StateMachinePlan};

/// Express workflows run at most five minutes.
pub const EXPRESS_LIMIT_SECONDS: f64 = 300.0;

/// One execution's path.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Path {
    /// State transitions (every state entered; Map and Parallel count
    /// their inner states too).
    pub transitions: f64,
    /// Invocations of each function (logical name).
    pub tasks: BTreeMap<String, f64>,
    /// The top-level states on the path.
    pub states: Vec<String>,
}

/// The longest successful path of `definition` (`Next`, `Default` and
/// `Choices`, not `Catch`), Map states counting `items` iterations (by
/// state name; 1 when not stated).
pub fn path(definition: &Value, items: &BTreeMap<String, f64>) -> Path {
    walk(definition, items, 0)
}

fn walk(machine: &Value, items: &BTreeMap<String, f64>, depth: usize) -> Path {
    let Some(states) = machine.get("States").and_then(Value::as_object) else {
        return Path::default();
    };
    let Some(start) = machine.get("StartAt").and_then(Value::as_str) else {
        return Path::default();
    };
    let mut memo: BTreeMap<String, Path> = BTreeMap::new();
    from(start, states, items, depth, &mut memo, 0)
}

fn from(
    name: &str,
    states: &serde_json::Map<String, Value>,
    items: &BTreeMap<String, f64>,
    depth: usize,
    memo: &mut BTreeMap<String, Path>,
    steps: usize,
) -> Path {
    if let Some(p) = memo.get(name) {
        return p.clone();
    }
    // Validation refuses loops; this bounds a definition it did not see.
    let Some(state) = states.get(name).filter(|_| steps < 1000 && depth < 32) else {
        return Path::default();
    };
    let mut here = Path {
        transitions: 1.0,
        tasks: BTreeMap::new(),
        states: vec![name.to_owned()],
    };
    if let Some(f) = task_function(state) {
        here.tasks.insert(f.to_owned(), 1.0);
    }
    match state.get("Type").and_then(Value::as_str) {
        Some("Parallel") => {
            for b in state
                .get("Branches")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                merge(&mut here, &walk(b, items, depth + 1), 1.0);
            }
        }
        Some("Map") => {
            let n = items.get(name).copied().unwrap_or(1.0);
            if let Some(inner) = state.get("ItemProcessor").or_else(|| state.get("Iterator")) {
                merge(&mut here, &walk(inner, items, depth + 1), n);
            }
        }
        _ => {}
    }
    let mut next: Vec<&str> = Vec::new();
    if let Some(n) = state.get("Next").and_then(Value::as_str) {
        next.push(n);
    }
    for c in state
        .get("Choices")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        if let Some(n) = c.get("Next").and_then(Value::as_str) {
            next.push(n);
        }
    }
    if let Some(n) = state.get("Default").and_then(Value::as_str) {
        next.push(n);
    }
    let mut best: Option<Path> = None;
    for n in next {
        let p = from(n, states, items, depth, memo, steps + 1);
        if best.as_ref().is_none_or(|b| p.transitions > b.transitions) {
            best = Some(p);
        }
    }
    if let Some(b) = best {
        here.transitions += b.transitions;
        for (f, k) in b.tasks {
            *here.tasks.entry(f).or_default() += k;
        }
        here.states.extend(b.states);
    }
    memo.insert(name.to_owned(), here.clone());
    here
}

fn merge(into: &mut Path, inner: &Path, times: f64) {
    into.transitions += times * inner.transitions;
    for (f, k) in &inner.tasks {
        *into.tasks.entry(f.clone()).or_default() += times * k;
    }
}

/// The function a Task state runs, in either of the forms Sluice accepts.
fn task_function(state: &Value) -> Option<&str> {
    let resource = state.get("Resource")?.as_str()?;
    if let Some(f) = resource.strip_prefix(crate::asl::FUNCTION_PREFIX) {
        return Some(f);
    }
    if resource.contains(":states:::lambda:invoke") {
        return state.get("Parameters")?.get("FunctionName")?.as_str();
    }
    None
}

/// One execution's duration: the average durations of the functions its
/// path runs, in seconds.
pub fn execution_seconds(cx: &Cx<'_>, workflow: &str) -> f64 {
    cx.flow.workflow_paths.get(workflow).map_or(0.0, |p| {
        p.tasks
            .iter()
            .map(|(f, n)| {
                n * cx
                    .volumes
                    .functions
                    .get(f)
                    .map_or(0.0, |v| v.average_duration_ms.value)
                    / 1000.0
            })
            .sum()
    })
}

/// What one Express execution is billed for: (GB, seconds), memory in 64
/// MB chunks and duration in 100 ms.
fn express_billing(cx: &Cx<'_>, workflow: &str) -> (f64, f64) {
    let mb = cx
        .volumes
        .workflows
        .get(workflow)
        .map_or(64.0, |w| w.express_memory_mb.value);
    let gb = (mb / 64.0).ceil().max(1.0) * 64.0 / 1024.0;
    let seconds = (execution_seconds(cx, workflow) * 10.0).ceil() / 10.0;
    (gb, seconds)
}

fn standard_usd(cx: &Cx<'_>, m: &StateMachinePlan) -> f64 {
    let p = &cx.prices.services.stepfunctions.prices;
    transitions(cx, &m.logical) * p.standard_transitions.each()
}

fn express_usd(cx: &Cx<'_>, m: &StateMachinePlan) -> f64 {
    let p = &cx.prices.services.stepfunctions.prices;
    let executions = executions(cx, &m.logical);
    let (gb, s) = express_billing(cx, &m.logical);
    executions * p.express_requests.each() + executions * gb * s * p.express_duration.each()
}

fn executions(cx: &Cx<'_>, w: &str) -> f64 {
    cx.flow.workflow_executions.get(w).copied().unwrap_or(0.0)
}

fn transitions(cx: &Cx<'_>, w: &str) -> f64 {
    executions(cx, w) * cx.flow.workflow_paths.get(w).map_or(0.0, |p| p.transitions)
}

/// The state machines' lines.
pub fn lines(cx: &Cx<'_>) -> Vec<Line> {
    let p = &cx.prices.services.stepfunctions.prices;
    let mut out = Vec::new();
    for m in &cx.plan.state_machines {
        let kind = "StepFunctions::StateMachine";
        match m.type_ {
            WorkflowType::Standard => out.push(Line::new(
                "Step Functions",
                kind,
                &m.name,
                "state transitions (Standard)",
                transitions(cx, &m.logical),
                &p.standard_transitions,
            )),
            WorkflowType::Express => {
                let executions = executions(cx, &m.logical);
                let (gb, s) = express_billing(cx, &m.logical);
                out.push(Line::new(
                    "Step Functions",
                    kind,
                    &m.name,
                    "requests (Express)",
                    executions,
                    &p.express_requests,
                ));
                out.push(Line::new(
                    "Step Functions",
                    kind,
                    &m.name,
                    "GB-seconds (Express)",
                    executions * gb * s,
                    &p.express_duration,
                ));
            }
        }
    }
    out
}

/// Standard that would be cheaper as Express (within its five minutes and
/// its integration patterns), and Express that would be cheaper as
/// Standard.
pub fn advice(cx: &Cx<'_>) -> Vec<Advice> {
    let mut out = Vec::new();
    for m in &cx.plan.state_machines {
        let (standard, express) = (standard_usd(cx, m), express_usd(cx, m));
        let seconds = execution_seconds(cx, &m.logical);
        let fits_express = seconds <= EXPRESS_LIMIT_SECONDS
            && cx
                .spec
                .workflows
                .iter()
                .find(|w| w.name == m.logical)
                .is_some_and(|w| crate::asl::express_problems("", &w.definition).is_empty());
        match m.type_ {
            WorkflowType::Standard
                if fits_express && round_cents(express) < round_cents(standard) =>
            {
                out.push(Advice {
                    rule: "standard-to-express",
                    resource: format!("workflow {}", m.logical),
                    message: format!(
                        "runs {:.1} s an execution, within Express's 5 minutes: as Express it would cost ${:.2} a month instead of ${:.2} as Standard. Express runs at-least-once (its tasks must be idempotent) and keeps no execution history beyond its logs; the type cannot change in place (declare a new workflow)",
                        seconds, round_cents(express), round_cents(standard)
                    ),
                    current: round_cents(standard),
                    alternative: round_cents(express),
                    unit: "USD a month",
                });
            }
            WorkflowType::Express if round_cents(standard) < round_cents(express) => {
                out.push(Advice {
                    rule: "express-to-standard",
                    resource: format!("workflow {}", m.logical),
                    message: format!(
                        "as Standard it would cost ${:.2} a month instead of ${:.2} as Express (long executions with few transitions are cheaper by the transition than by the GB-second)",
                        round_cents(standard), round_cents(express)
                    ),
                    current: round_cents(express),
                    alternative: round_cents(standard),
                    unit: "USD a month",
                });
            }
            _ => {}
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_path_follows_next_choices_parallel_and_map() {
        let def: Value = serde_json::json!({
            "StartAt": "A",
            "States": {
                "A": {"Type": "Task", "Resource": "function:a", "Next": "C",
                      "Catch": [{"ErrorEquals": ["States.ALL"], "Next": "F"}]},
                "C": {"Type": "Choice", "Choices": [{"Variable": "$.x", "IsPresent": true, "Next": "Short"}], "Default": "P"},
                "Short": {"Type": "Succeed"},
                "P": {"Type": "Parallel", "Next": "M", "Branches": [
                    {"StartAt": "B1", "States": {"B1": {"Type": "Task", "Resource": "function:b", "End": true}}},
                    {"StartAt": "B2", "States": {"B2": {"Type": "Pass", "End": true}}}
                ]},
                "M": {"Type": "Map", "End": true, "ItemProcessor": {"StartAt": "I", "States": {
                    "I": {"Type": "Task", "Resource": "arn:aws:states:::lambda:invoke", "Parameters": {"FunctionName": "c"}, "End": true}}}},
                "F": {"Type": "Fail"}
            }
        });
        let items = BTreeMap::from([("M".to_owned(), 10.0)]);
        let p = path(&def, &items);
        // A, C, P (+ B1 + B2), M (+ 10 x I) = 1 + 1 + 3 + 11.
        assert_eq!(p.transitions, 16.0);
        assert_eq!(p.tasks.get("a"), Some(&1.0));
        assert_eq!(p.tasks.get("b"), Some(&1.0));
        assert_eq!(p.tasks.get("c"), Some(&10.0));
        assert_eq!(p.states, ["A", "C", "P", "M"]);
    }
}
