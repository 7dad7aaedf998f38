//! Amazon States Language, as a workflow's definition is written in a
//! pipeline: validated before any AWS call, with every problem naming the
//! state and the field, and its function references resolved.
//!
//! A Task state runs a pipeline function, named by its logical name in one
//! of two forms:
//! - `Resource: function:<name>` (the function's result is the state's
//!   result, as in the article), or
//! - `Resource: arn:aws:states:::lambda:invoke` with
//!   `Parameters: {FunctionName: <name>, ...}` (the optimised integration,
//!   whose result is wrapped in `Payload`).
//!
//! Sluice substitutes the real ARN in both, and the workflow's role may
//! invoke exactly the functions named, nothing else; so a dynamic
//! `FunctionName.$` or another service integration is refused. Retry,
//! Catch, Choice rules and every other field are passed through untouched.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use serde_json::Value;

/// Prefix of a Task resource naming a pipeline function directly.
pub const FUNCTION_PREFIX: &str = "function:";
/// The Lambda invoke integration of Step Functions.
pub const LAMBDA_INVOKE: &str = "arn:aws:states:::lambda:invoke";
/// AWS's limit on a definition, in characters of JSON.
pub const MAX_DEFINITION_CHARS: usize = 1_048_576;
/// AWS's limit on a state's name.
pub const MAX_STATE_NAME: usize = 80;

const TYPES: [&str; 8] = [
    "Task", "Pass", "Choice", "Wait", "Succeed", "Fail", "Parallel", "Map",
];

/// Every problem of `definition`, each naming the field (under `at`, e.g.
/// `spec.workflows[0].definition`), checked against the pipeline's
/// `functions`.
pub fn validate(at: &str, definition: &Value, functions: &BTreeSet<&str>) -> Vec<String> {
    let mut problems = Vec::new();
    machine(at, definition, functions, &mut problems);
    unique_names(at, definition, &mut problems);
    let size = definition.to_string().len();
    if size > MAX_DEFINITION_CHARS {
        problems.push(format!(
            "{at}: {size} characters as JSON; Step Functions allows {MAX_DEFINITION_CHARS}"
        ));
    }
    problems
}

/// The logical names of the functions the definition's Task states run.
pub fn referenced_functions(definition: &Value) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    visit_tasks(definition, &mut |task| {
        if let Some(name) = task_function(task) {
            out.insert(name.to_owned());
        }
    });
    out
}

/// The definition with every function reference replaced by its ARN from
/// `arns` (logical name → ARN); everything else is kept as written.
pub fn substitute(definition: &Value, arns: &BTreeMap<String, String>) -> Value {
    let mut out = definition.clone();
    visit_tasks_mut(&mut out, &mut |task| {
        let Some(name) = task_function(task).map(str::to_owned) else {
            return;
        };
        let Some(arn) = arns.get(&name) else { return };
        if task
            .get("Resource")
            .and_then(Value::as_str)
            .is_some_and(|r| r.starts_with(FUNCTION_PREFIX))
        {
            task["Resource"] = Value::String(arn.clone());
        } else if let Some(parameters) = task.get_mut("Parameters") {
            parameters["FunctionName"] = Value::String(arn.clone());
        }
    });
    out
}

/// The function a Task state names, in either form.
fn task_function(task: &Value) -> Option<&str> {
    let resource = task.get("Resource")?.as_str()?;
    if let Some(name) = resource.strip_prefix(FUNCTION_PREFIX) {
        return Some(name);
    }
    if is_lambda_invoke(resource) {
        return task.get("Parameters")?.get("FunctionName")?.as_str();
    }
    None
}

fn is_lambda_invoke(resource: &str) -> bool {
    // Any partition: arn:aws:..., arn:aws-cn:..., arn:aws-us-gov:...
    resource.starts_with("arn:aws")
        && resource
            .split_once(":states:::lambda:invoke")
            .is_some_and(|(_, rest)| rest.is_empty() || rest == ".waitForTaskToken")
}

/// A loop in a definition, if it has one: the states of a cycle of `Next`,
/// `Default`, `Choices[].Next` and `Catch[].Next` edges in the top machine
/// or a nested one, as `A → B → A`. (Retry is bounded by MaxAttempts and a
/// Map by its items; a cycle of states is bounded by nothing.)
pub fn find_loop(definition: &Value) -> Option<String> {
    let states = definition.get("States").and_then(Value::as_object)?;
    let targets = |state: &Value| -> Vec<String> {
        let mut out = Vec::new();
        let mut add = |v: Option<&Value>| {
            if let Some(n) = v.and_then(Value::as_str) {
                out.push(n.to_owned());
            }
        };
        add(state.get("Next"));
        add(state.get("Default"));
        for list in ["Choices", "Catch"] {
            for c in state
                .get(list)
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                add(c.get("Next"));
            }
        }
        out
    };
    // Depth-first, colouring states on the current path.
    fn visit(
        name: &str,
        states: &serde_json::Map<String, Value>,
        targets: &dyn Fn(&Value) -> Vec<String>,
        path: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) -> Option<String> {
        if let Some(at) = path.iter().position(|p| p == name) {
            let mut cycle = path[at..].to_vec();
            cycle.push(name.to_owned());
            return Some(cycle.join(" → "));
        }
        if done.contains(name) {
            return None;
        }
        let state = states.get(name)?;
        path.push(name.to_owned());
        for next in targets(state) {
            if let Some(found) = visit(&next, states, targets, path, done) {
                return Some(found);
            }
        }
        path.pop();
        done.insert(name.to_owned());
        None
    }
    let mut done = BTreeSet::new();
    for name in states.keys() {
        if let Some(found) = visit(name, states, &targets, &mut Vec::new(), &mut done) {
            return Some(found);
        }
    }
    states
        .values()
        .flat_map(children)
        .find_map(|(_, inner)| find_loop(inner))
}

/// The nested state machines of a Parallel or Map state.
fn children(state: &Value) -> Vec<(String, &Value)> {
    let mut out = Vec::new();
    if let Some(branches) = state.get("Branches").and_then(Value::as_array) {
        for (i, b) in branches.iter().enumerate() {
            out.push((format!("Branches[{i}]"), b));
        }
    }
    for key in ["Iterator", "ItemProcessor"] {
        if let Some(inner) = state.get(key) {
            out.push((key.to_owned(), inner));
        }
    }
    out
}

fn visit_tasks(machine: &Value, f: &mut impl FnMut(&Value)) {
    let Some(states) = machine.get("States").and_then(Value::as_object) else {
        return;
    };
    for state in states.values() {
        if state.get("Type").and_then(Value::as_str) == Some("Task") {
            f(state);
        }
        for (_, inner) in children(state) {
            visit_tasks(inner, f);
        }
    }
}

fn visit_tasks_mut(machine: &mut Value, f: &mut impl FnMut(&mut Value)) {
    let Some(states) = machine.get_mut("States").and_then(Value::as_object_mut) else {
        return;
    };
    for state in states.values_mut() {
        if state.get("Type").and_then(Value::as_str) == Some("Task") {
            f(state);
        }
        if let Some(branches) = state.get_mut("Branches").and_then(Value::as_array_mut) {
            for b in branches {
                visit_tasks_mut(b, f);
            }
        }
        for key in ["Iterator", "ItemProcessor"] {
            if let Some(inner) = state.get_mut(key) {
                visit_tasks_mut(inner, f);
            }
        }
    }
}

/// Checks one state machine (the top one or a nested one).
fn machine(at: &str, m: &Value, functions: &BTreeSet<&str>, problems: &mut Vec<String>) {
    let Some(object) = m.as_object() else {
        problems.push(format!("{at}: must be an object with StartAt and States"));
        return;
    };
    let Some(states) = object.get("States").and_then(Value::as_object) else {
        problems.push(format!("{at}.States: missing; list the states by name"));
        return;
    };
    if states.is_empty() {
        problems.push(format!(
            "{at}.States: empty; a workflow needs at least one state"
        ));
        return;
    }
    let start = match object.get("StartAt").and_then(Value::as_str) {
        Some(s) if states.contains_key(s) => Some(s),
        Some(s) => {
            problems.push(format!(
                "{at}.StartAt: {s:?} is not a state (states: {})",
                names(states)
            ));
            None
        }
        None => {
            problems.push(format!("{at}.StartAt: missing; name the first state"));
            None
        }
    };

    let mut edges: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for (name, state) in states {
        let at = format!("{at}.States.{name}");
        let length = name.chars().count();
        if length > MAX_STATE_NAME {
            problems.push(format!(
                "{at}: the name has {length} characters; a state name has at most \
                 {MAX_STATE_NAME} (characters, not bytes)"
            ));
        }
        let targets = edges.entry(name.as_str()).or_default();
        let mut next = |field: &str, value: Option<&Value>, problems: &mut Vec<String>| match value
            .and_then(Value::as_str)
        {
            Some(n) if states.contains_key(n) => {
                if let Some((key, _)) = states.get_key_value(n) {
                    targets.push(key.as_str());
                }
            }
            Some(n) => problems.push(format!(
                "{at}.{field}: {n:?} is not a state (states: {})",
                names(states)
            )),
            None => problems.push(format!("{at}.{field}: must name a state")),
        };
        let Some(kind) = state.get("Type").and_then(Value::as_str) else {
            problems.push(format!("{at}.Type: missing; one of {}", TYPES.join(", ")));
            continue;
        };
        if !TYPES.contains(&kind) {
            problems.push(format!(
                "{at}.Type: {kind:?} is not a state type; one of {}",
                TYPES.join(", ")
            ));
            continue;
        }
        let has_next = state.get("Next").is_some();
        let ends = state.get("End").and_then(Value::as_bool) == Some(true);
        match kind {
            "Succeed" | "Fail" => {
                if has_next || state.get("End").is_some() {
                    problems.push(format!(
                        "{at}: a {kind} state ends the workflow; remove Next and End"
                    ));
                }
            }
            "Choice" => {
                if has_next || state.get("End").is_some() {
                    problems.push(format!(
                        "{at}: a Choice state goes on by its Choices and Default; remove Next and End"
                    ));
                }
                match state.get("Choices").and_then(Value::as_array) {
                    Some(choices) if !choices.is_empty() => {
                        for (i, c) in choices.iter().enumerate() {
                            next(&format!("Choices[{i}].Next"), c.get("Next"), problems);
                        }
                    }
                    _ => problems.push(format!(
                        "{at}.Choices: a Choice state needs at least one choice"
                    )),
                }
                if state.get("Default").is_some() {
                    next("Default", state.get("Default"), problems);
                }
            }
            _ => match (has_next, ends) {
                (true, true) => {
                    problems.push(format!("{at}: has both Next and End: true; keep one"))
                }
                (false, false) => problems.push(format!(
                    "{at}: has no end: give it Next (a state) or End: true"
                )),
                (true, false) => next("Next", state.get("Next"), problems),
                (false, true) => {}
            },
        }
        if let Some(catchers) = state.get("Catch") {
            match catchers.as_array() {
                Some(list) => {
                    for (i, c) in list.iter().enumerate() {
                        if c.get("ErrorEquals")
                            .and_then(Value::as_array)
                            .is_none_or(Vec::is_empty)
                        {
                            problems.push(format!(
                                "{at}.Catch[{i}].ErrorEquals: list the errors caught, e.g. [States.ALL]"
                            ));
                        }
                        next(&format!("Catch[{i}].Next"), c.get("Next"), problems);
                    }
                    states_all(&format!("{at}.Catch"), list, problems);
                }
                None => problems.push(format!("{at}.Catch: must be a list")),
            }
        }
        if let Some(retriers) = state.get("Retry") {
            match retriers.as_array() {
                Some(list) => {
                    for (i, r) in list.iter().enumerate() {
                        if r.get("ErrorEquals")
                            .and_then(Value::as_array)
                            .is_none_or(Vec::is_empty)
                        {
                            problems.push(format!(
                                "{at}.Retry[{i}].ErrorEquals: list the errors retried, e.g. [States.TaskFailed]"
                            ));
                        }
                    }
                    states_all(&format!("{at}.Retry"), list, problems);
                }
                None => problems.push(format!("{at}.Retry: must be a list")),
            }
        }
        if kind == "Task" {
            task(&at, state, functions, problems);
            heartbeat(&at, state, problems);
        }
        if kind == "Parallel"
            && state
                .get("Branches")
                .and_then(Value::as_array)
                .is_none_or(Vec::is_empty)
        {
            problems.push(format!(
                "{at}.Branches: a Parallel state needs at least one branch"
            ));
        }
        if kind == "Map" && state.get("Iterator").is_none() && state.get("ItemProcessor").is_none()
        {
            problems.push(format!(
                "{at}.ItemProcessor: a Map state needs the state machine it runs per item"
            ));
        }
        for (field, inner) in children(state) {
            machine(&format!("{at}.{field}"), inner, functions, problems);
        }
    }

    // Every state must be reachable from StartAt.
    if let Some(start) = start {
        let mut seen = BTreeSet::from([start]);
        let mut queue = VecDeque::from([start]);
        while let Some(current) = queue.pop_front() {
            for n in edges.get(current).into_iter().flatten() {
                if seen.insert(n) {
                    queue.push_back(n);
                }
            }
        }
        for name in states.keys() {
            if !seen.contains(name.as_str()) {
                problems.push(format!(
                    "{at}.States.{name}: unreachable from StartAt {start:?}; no Next, Default, \
                     Choices or Catch leads to it"
                ));
            }
        }
    }
}

fn task(at: &str, state: &Value, functions: &BTreeSet<&str>, problems: &mut Vec<String>) {
    let declared = || functions.iter().copied().collect::<Vec<_>>().join(", ");
    let Some(resource) = state.get("Resource").and_then(Value::as_str) else {
        problems.push(format!(
            "{at}.Resource: missing; name a pipeline function, e.g. function:extract"
        ));
        return;
    };
    if let Some(name) = resource.strip_prefix(FUNCTION_PREFIX) {
        if !functions.contains(name) {
            problems.push(format!(
                "{at}.Resource: function {name:?} is not declared in spec.functions (declared: {})",
                declared()
            ));
        }
        return;
    }
    if is_lambda_invoke(resource) {
        let parameters = state.get("Parameters");
        if parameters.and_then(|p| p.get("FunctionName.$")).is_some() {
            problems.push(format!(
                "{at}.Parameters.FunctionName.$: a function chosen at run time cannot be granted \
                 ahead; name a pipeline function in FunctionName"
            ));
            return;
        }
        match parameters
            .and_then(|p| p.get("FunctionName"))
            .and_then(Value::as_str)
        {
            Some(name) if functions.contains(name) => {}
            Some(name) => problems.push(format!(
                "{at}.Parameters.FunctionName: {name:?} is not declared in spec.functions (declared: {})",
                declared()
            )),
            None => problems.push(format!(
                "{at}.Parameters.FunctionName: name the pipeline function the task invokes"
            )),
        }
        return;
    }
    problems.push(format!(
        "{at}.Resource: {resource:?} is not a pipeline function; use function:<name> or \
         {LAMBDA_INVOKE} with Parameters.FunctionName: <name> (other integrations cannot be \
         granted least privilege from the graph)"
    ));
}

/// `States.ALL` matches every error: in a retrier's or catcher's
/// `ErrorEquals` it must be alone, and that retrier or catcher the last.
fn states_all(at: &str, list: &[Value], problems: &mut Vec<String>) {
    for (i, entry) in list.iter().enumerate() {
        let Some(errors) = entry.get("ErrorEquals").and_then(Value::as_array) else {
            continue;
        };
        if !errors.iter().any(|e| e == "States.ALL") {
            continue;
        }
        if errors.len() > 1 {
            problems.push(format!(
                "{at}[{i}].ErrorEquals: States.ALL matches every error and must appear alone; \
                 list the other errors in an earlier entry"
            ));
        }
        if i + 1 != list.len() {
            problems.push(format!(
                "{at}[{i}].ErrorEquals: States.ALL must be in the last entry ({} follow it); \
                 move it last",
                list.len() - i - 1
            ));
        }
    }
}

/// A Task's `HeartbeatSeconds` must be below its `TimeoutSeconds`.
fn heartbeat(at: &str, state: &Value, problems: &mut Vec<String>) {
    let (Some(beat), Some(timeout)) = (
        state.get("HeartbeatSeconds").and_then(Value::as_f64),
        state.get("TimeoutSeconds").and_then(Value::as_f64),
    ) else {
        return;
    };
    if beat >= timeout {
        problems.push(format!(
            "{at}.HeartbeatSeconds: {beat} is not below TimeoutSeconds {timeout}; a heartbeat \
             must come before the task times out"
        ));
    }
}

/// Every state of the machine with the path of its machine, nested ones
/// (Parallel branches, Map iterators) included.
fn all_states<'a>(at: &str, m: &'a Value, out: &mut Vec<(String, &'a str)>) {
    let Some(states) = m.get("States").and_then(Value::as_object) else {
        return;
    };
    for (name, state) in states {
        let here = format!("{at}.States.{name}");
        out.push((here.clone(), name.as_str()));
        for (field, inner) in children(state) {
            all_states(&format!("{here}.{field}"), inner, out);
        }
    }
}

/// State names are unique across the whole state machine, nested machines
/// included (Step Functions refuses a name used twice).
fn unique_names(at: &str, definition: &Value, problems: &mut Vec<String>) {
    let mut states = Vec::new();
    all_states(at, definition, &mut states);
    // The outer use is the first; the nested one is named as the duplicate.
    states.sort_by_key(|(path, _)| path.matches(".States.").count());
    let mut first: BTreeMap<&str, &str> = BTreeMap::new();
    for (path, name) in &states {
        match first.get(name) {
            Some(earlier) => problems.push(format!(
                "{path}: the state name {name:?} is also used at {earlier}; state names are \
                 unique across the whole workflow, Parallel branches and Map iterators included"
            )),
            None => {
                first.insert(name, path);
            }
        }
    }
}

/// Express workflows run the request-response pattern only: a Task
/// resource ending `.sync` (or `.sync:2`) or `.waitForTaskToken` is
/// refused by Step Functions for them.
pub fn express_problems(at: &str, definition: &Value) -> Vec<String> {
    let mut problems = Vec::new();
    let mut tasks = Vec::new();
    collect_tasks(at, definition, &mut tasks);
    for (path, resource) in tasks {
        let pattern = if resource.ends_with(".waitForTaskToken") {
            ".waitForTaskToken"
        } else if resource.ends_with(".sync") || resource.contains(".sync:") {
            ".sync"
        } else {
            continue;
        };
        problems.push(format!(
            "{path}.Resource: {resource:?} uses the {pattern} integration pattern, which Express \
             workflows do not support; use a Standard workflow or the request-response \
             resource"
        ));
    }
    problems
}

fn collect_tasks<'a>(at: &str, m: &'a Value, out: &mut Vec<(String, &'a str)>) {
    let Some(states) = m.get("States").and_then(Value::as_object) else {
        return;
    };
    for (name, state) in states {
        let here = format!("{at}.States.{name}");
        if let Some(r) = state.get("Resource").and_then(Value::as_str) {
            out.push((here.clone(), r));
        }
        for (field, inner) in children(state) {
            collect_tasks(&format!("{here}.{field}"), inner, out);
        }
    }
}

fn names(states: &serde_json::Map<String, Value>) -> String {
    states.keys().cloned().collect::<Vec<_>>().join(", ")
}

/// `value` with every whole number written the same way (`2.0` as `2`):
/// JSON does not tell them apart, but a `Value` does, and a definition or
/// a pattern read back from Kubernetes or AWS may come either way.
pub fn normalize_numbers(value: &Value) -> Value {
    match value {
        Value::Number(n) => match n.as_f64() {
            Some(f) if n.is_f64() && f.fract() == 0.0 && f.abs() < 9.0e15 => {
                Value::Number(serde_json::Number::from(f as i64))
            }
            _ => value.clone(),
        },
        Value::Array(items) => Value::Array(items.iter().map(normalize_numbers).collect()),
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(k, v)| (k.clone(), normalize_numbers(v)))
                .collect(),
        ),
        other => other.clone(),
    }
}

/// Whether two JSON documents mean the same (key order and number
/// spelling aside).
pub fn same_json(a: &Value, b: &Value) -> bool {
    normalize_numbers(a) == normalize_numbers(b)
}

/// A workflow fragment that runs `function` as a Task with retries: shown
/// to whoever asks a single function for more than Lambda's 900 seconds.
pub fn fragment_for(function: &str) -> String {
    format!(
        "workflows: [{{name: {function}-flow, definition: {{StartAt: Run, States: {{Run: {{Type: Task, \
         Resource: \"function:{function}\", TimeoutSeconds: 900, Retry: [{{ErrorEquals: \
         [States.TaskFailed, States.Timeout], MaxAttempts: 3, IntervalSeconds: 1, BackoffRate: 2.0}}], \
         End: true}}}}}}}}]; split the work so each step finishes within 900 s (a Map state runs a \
         step per item)"
    )
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn a_loop_of_states_is_found_and_retries_are_not_loops() {
        assert_eq!(
            find_loop(&article()),
            None,
            "Retry and Catch to a Fail state"
        );
        let polling = json!({
            "StartAt": "Check",
            "States": {
                "Check": {"Type": "Task", "Resource": "function:check", "Next": "Done?"},
                "Done?": {"Type": "Choice",
                          "Choices": [{"Variable": "$.done", "BooleanEquals": true, "Next": "End"}],
                          "Default": "Wait"},
                "Wait": {"Type": "Wait", "Seconds": 60, "Next": "Check"},
                "End": {"Type": "Succeed"}
            }
        });
        let found = find_loop(&polling).expect("a loop");
        assert!(found.contains("Check") && found.contains("Wait"), "{found}");
        let nested = json!({
            "StartAt": "Fan",
            "States": {"Fan": {"Type": "Parallel", "End": true, "Branches": [polling]}}
        });
        assert!(find_loop(&nested).is_some(), "inside a branch");
    }

    /// The article's extract → transform → load → notify with Retry, Catch
    /// and Fail.
    pub(crate) fn article() -> Value {
        let step = |next: &str| {
            json!({
                "Type": "Task",
                "Resource": format!("function:{}", next.to_lowercase()),
                "Retry": [{"ErrorEquals": ["States.TaskFailed", "States.Timeout"], "IntervalSeconds": 1, "MaxAttempts": 3, "BackoffRate": 2.0}],
                "Catch": [{"ErrorEquals": ["States.ALL"], "Next": "ProcessingFailed"}],
            })
        };
        let mut extract = step("Extract");
        extract["Next"] = json!("Transform");
        let mut transform = step("Transform");
        transform["Next"] = json!("Load");
        let mut load = step("Load");
        load["Next"] = json!("Notify");
        json!({
            "Comment": "Data processing pipeline",
            "StartAt": "Extract",
            "States": {
                "Extract": extract,
                "Transform": transform,
                "Load": load,
                "Notify": {"Type": "Task", "Resource": "arn:aws:states:::lambda:invoke",
                           "Parameters": {"FunctionName": "notify", "Payload.$": "$"}, "End": true},
                "ProcessingFailed": {"Type": "Fail", "Cause": "Data Processing Failed", "Error": "DataPipelineError"}
            }
        })
    }

    fn functions() -> BTreeSet<&'static str> {
        BTreeSet::from(["extract", "transform", "load", "notify"])
    }

    #[test]
    fn the_articles_workflow_is_valid() {
        assert_eq!(
            validate("d", &article(), &functions()),
            Vec::<String>::new()
        );
    }

    #[test]
    fn references_are_found_and_replaced_by_arns_in_both_forms() {
        let d = article();
        assert_eq!(
            referenced_functions(&d).into_iter().collect::<Vec<_>>(),
            ["extract", "load", "notify", "transform"]
        );
        let arns: BTreeMap<String, String> = functions()
            .iter()
            .map(|f| {
                (
                    (*f).to_owned(),
                    format!("arn:aws:lambda:us-east-1:1:function:{f}-x"),
                )
            })
            .collect();
        let out = substitute(&d, &arns);
        assert_eq!(
            out["States"]["Extract"]["Resource"],
            "arn:aws:lambda:us-east-1:1:function:extract-x"
        );
        assert_eq!(
            out["States"]["Notify"]["Parameters"]["FunctionName"],
            "arn:aws:lambda:us-east-1:1:function:notify-x"
        );
        assert_eq!(out["States"]["Notify"]["Resource"], LAMBDA_INVOKE);
        // Retry, Catch and Fail pass through untouched.
        assert_eq!(out["States"]["Load"]["Retry"], d["States"]["Load"]["Retry"]);
        assert_eq!(out["States"]["Load"]["Catch"], d["States"]["Load"]["Catch"]);
        assert_eq!(
            out["States"]["ProcessingFailed"],
            d["States"]["ProcessingFailed"]
        );
    }

    fn problems_of(d: &Value) -> String {
        validate("spec.workflows[0].definition", d, &functions()).join("; ")
    }

    #[test]
    fn start_at_must_name_a_state() {
        let mut d = article();
        d["StartAt"] = json!("Begin");
        let p = problems_of(&d);
        assert!(
            p.contains("spec.workflows[0].definition.StartAt: \"Begin\" is not a state"),
            "{p}"
        );
    }

    #[test]
    fn every_next_default_and_catch_target_must_exist() {
        let mut d = article();
        d["States"]["Extract"]["Next"] = json!("Nowhere");
        d["States"]["Load"]["Catch"][0]["Next"] = json!("Gone");
        d["States"]["Check"] = json!({"Type": "Choice", "Choices": [{"Variable": "$.x", "IsPresent": true, "Next": "Missing"}], "Default": "Absent"});
        let p = problems_of(&d);
        assert!(
            p.contains("States.Extract.Next: \"Nowhere\" is not a state"),
            "{p}"
        );
        assert!(
            p.contains("States.Load.Catch[0].Next: \"Gone\" is not a state"),
            "{p}"
        );
        assert!(
            p.contains("States.Check.Choices[0].Next: \"Missing\""),
            "{p}"
        );
        assert!(p.contains("States.Check.Default: \"Absent\""), "{p}");
    }

    #[test]
    fn task_resources_must_resolve_to_pipeline_functions() {
        let mut d = article();
        d["States"]["Extract"]["Resource"] = json!("function:unknown");
        d["States"]["Notify"]["Parameters"]["FunctionName"] = json!("other");
        d["States"]["Load"]["Resource"] = json!("arn:aws:states:::sqs:sendMessage");
        let p = problems_of(&d);
        assert!(
            p.contains("States.Extract.Resource: function \"unknown\" is not declared"),
            "{p}"
        );
        assert!(
            p.contains("States.Notify.Parameters.FunctionName: \"other\""),
            "{p}"
        );
        assert!(p.contains("States.Load.Resource: \"arn:aws:states:::sqs:sendMessage\" is not a pipeline function"), "{p}");
        let mut d = article();
        d["States"]["Notify"]["Parameters"] = json!({"FunctionName.$": "$.fn"});
        assert!(problems_of(&d).contains("FunctionName.$"));
    }

    #[test]
    fn unreachable_states_and_states_without_an_end_are_refused() {
        let mut d = article();
        d["States"]["Orphan"] = json!({"Type": "Pass", "End": true});
        d["States"]["Notify"]
            .as_object_mut()
            .expect("object")
            .remove("End");
        let p = problems_of(&d);
        assert!(
            p.contains("States.Orphan: unreachable from StartAt \"Extract\""),
            "{p}"
        );
        assert!(
            p.contains("States.Notify: has no end: give it Next (a state) or End: true"),
            "{p}"
        );
    }

    #[test]
    fn nested_machines_are_checked_and_substituted() {
        let d = json!({"StartAt": "Fan", "States": {"Fan": {
        "Type": "Parallel", "End": true,
        "Branches": [
            {"StartAt": "A", "States": {"A": {"Type": "Task", "Resource": "function:extract", "End": true}}},
            {"StartAt": "B", "States": {"B": {"Type": "Task", "Resource": "function:nope", "End": true}}}
        ]}}});
        let p = problems_of(&d);
        assert!(
            p.contains("States.Fan.Branches[1].States.B.Resource: function \"nope\""),
            "{p}"
        );
        assert_eq!(
            referenced_functions(&d).into_iter().collect::<Vec<_>>(),
            ["extract", "nope"]
        );
        let out = substitute(
            &d,
            &BTreeMap::from([("extract".to_owned(), "arn:x".to_owned())]),
        );
        assert_eq!(
            out["States"]["Fan"]["Branches"][0]["States"]["A"]["Resource"],
            "arn:x"
        );
    }

    #[test]
    fn states_all_is_alone_and_last() {
        let d = json!({"StartAt": "A", "States": {"A": {
            "Type": "Task", "Resource": "function:extract", "End": true,
            "Retry": [{"ErrorEquals": ["States.ALL", "States.Timeout"]}, {"ErrorEquals": ["X"]}],
            "Catch": [{"ErrorEquals": ["States.ALL"], "Next": "A"}, {"ErrorEquals": ["Y"], "Next": "A"}]
        }}});
        let p = problems_of(&d);
        assert!(p.contains("spec.workflows[0].definition.States.A.Retry[0].ErrorEquals: States.ALL matches every error and must appear alone"), "{p}");
        assert!(p.contains("spec.workflows[0].definition.States.A.Retry[0].ErrorEquals: States.ALL must be in the last entry (1 follow it)"), "{p}");
        assert!(p.contains("spec.workflows[0].definition.States.A.Catch[0].ErrorEquals: States.ALL must be in the last entry"), "{p}");
        let fine = json!({"StartAt": "A", "States": {"A": {
            "Type": "Task", "Resource": "function:extract", "End": true,
            "Retry": [{"ErrorEquals": ["X"]}, {"ErrorEquals": ["States.ALL"]}]
        }}});
        assert_eq!(problems_of(&fine), "");
    }

    #[test]
    fn state_names_are_unique_across_nested_machines_and_counted_in_characters() {
        let d = json!({"StartAt": "P", "States": {
            "P": {"Type": "Parallel", "Next": "M", "Branches": [
                {"StartAt": "A", "States": {"A": {"Type": "Pass", "End": true}}},
                {"StartAt": "A", "States": {"A": {"Type": "Pass", "End": true}}}
            ]},
            "M": {"Type": "Map", "End": true, "ItemProcessor":
                {"StartAt": "P", "States": {"P": {"Type": "Pass", "End": true}}}}
        }});
        let p = problems_of(&d);
        assert!(p.contains("spec.workflows[0].definition.States.P.Branches[1].States.A: the state name \"A\" is also used at spec.workflows[0].definition.States.P.Branches[0].States.A"), "{p}");
        assert!(p.contains("spec.workflows[0].definition.States.M.ItemProcessor.States.P: the state name \"P\" is also used at spec.workflows[0].definition.States.P"), "{p}");
        // 80 characters of two bytes each: 160 bytes, still valid.
        let name = "é".repeat(80);
        let ok = json!({"StartAt": name, "States": {name.clone(): {"Type": "Pass", "End": true}}});
        assert_eq!(problems_of(&ok), "");
        let long = "é".repeat(81);
        let bad = json!({"StartAt": long, "States": {long.clone(): {"Type": "Pass", "End": true}}});
        assert!(problems_of(&bad).contains("the name has 81 characters"));
    }

    #[test]
    fn a_heartbeat_comes_before_the_timeout() {
        let d = json!({"StartAt": "A", "States": {"A": {
            "Type": "Task", "Resource": "function:extract", "End": true,
            "HeartbeatSeconds": 60, "TimeoutSeconds": 60
        }}});
        assert!(problems_of(&d).contains("spec.workflows[0].definition.States.A.HeartbeatSeconds: 60 is not below TimeoutSeconds 60"));
        let ok = json!({"StartAt": "A", "States": {"A": {
            "Type": "Task", "Resource": "function:extract", "End": true,
            "HeartbeatSeconds": 30, "TimeoutSeconds": 60
        }}});
        assert_eq!(problems_of(&ok), "");
    }

    #[test]
    fn express_workflows_use_request_response_only() {
        let d = json!({"StartAt": "P", "States": {"P": {"Type": "Parallel", "End": true, "Branches": [
            {"StartAt": "W", "States": {"W": {"Type": "Task", "End": true,
                "Resource": "arn:aws:states:::lambda:invoke.waitForTaskToken",
                "Parameters": {"FunctionName": "extract"}}}},
            {"StartAt": "S", "States": {"S": {"Type": "Task", "End": true,
                "Resource": "arn:aws:states:::states:startExecution.sync:2"}}},
            {"StartAt": "R", "States": {"R": {"Type": "Task", "End": true,
                "Resource": "function:extract"}}}
        ]}}});
        let p = express_problems("spec.workflows[0].definition", &d).join("; ");
        assert!(p.contains("spec.workflows[0].definition.States.P.Branches[0].States.W.Resource: \"arn:aws:states:::lambda:invoke.waitForTaskToken\" uses the .waitForTaskToken integration pattern"), "{p}");
        assert!(
            p.contains("spec.workflows[0].definition.States.P.Branches[1].States.S.Resource"),
            "{p}"
        );
        assert!(!p.contains("States.R"), "{p}");
    }

    #[test]
    fn unknown_types_and_malformed_machines_name_the_field() {
        let p =
            problems_of(&json!({"StartAt": "A", "States": {"A": {"Type": "Sleep", "End": true}}}));
        assert!(
            p.contains("States.A.Type: \"Sleep\" is not a state type"),
            "{p}"
        );
        let p = problems_of(&json!({"States": {}}));
        assert!(p.contains("definition.States: empty"), "{p}");
        let p = problems_of(
            &json!({"StartAt": "A", "States": {"A": {"Type": "Succeed", "Next": "A"}}}),
        );
        assert!(p.contains("a Succeed state ends the workflow"), "{p}");
    }

    #[test]
    fn whole_numbers_compare_alike() {
        assert!(same_json(
            &json!({"BackoffRate": 2.0, "X": [1.5, {"y": 3.0}]}),
            &json!({"BackoffRate": 2, "X": [1.5, {"y": 3}]})
        ));
        assert!(!same_json(
            &json!({"BackoffRate": 2.5}),
            &json!({"BackoffRate": 2})
        ));
    }

    #[test]
    fn the_long_work_fragment_is_a_valid_workflow_shape() {
        let text = fragment_for("batch");
        assert!(
            text.contains("Resource: \"function:batch\"") && text.contains("Retry"),
            "{text}"
        );
    }
}
