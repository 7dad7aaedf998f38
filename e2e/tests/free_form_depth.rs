//! A free-form object (event pattern, workflow definition, schedule input)
//! nested deeper than Sluice accepts is refused at admission by the chart's
//! ValidatingAdmissionPolicy, naming the field; the limit itself is
//! accepted; and an operator beside such an attempt keeps reconciling.

use serde_json::{Value, json};
use sluice_e2e::{
    Namespace, Operator, apply_and_wait, delete_pipeline, install_crd, kubectl_stdin,
    sample_manifest,
};
use sluice_operator::crd::MAX_FREE_FORM_DEPTH;

/// A value nesting `levels` levels (objects around a list of one string).
fn nested(levels: usize) -> Value {
    let mut v = json!(["x"]);
    for _ in 1..levels {
        v = json!({ "n": v });
    }
    v
}

fn pipeline(spec: Value) -> String {
    json!({
        "apiVersion": "sluice.dev/v1alpha1",
        "kind": "DataPipeline",
        "metadata": {"name": "deep"},
        "spec": spec,
    })
    .to_string()
}

fn rule_with(pattern: Value) -> Value {
    json!({
        "eventBuses": [{"name": "b"}],
        "queues": [{"name": "q"}],
        "rules": [{"name": "r", "eventBus": "b", "pattern": pattern, "targets": [{"queue": "q"}]}],
    })
}

fn apply(ns: &str, manifest: &str, dry_run: bool) -> (bool, String) {
    let mut args = vec!["apply", "-n", ns, "-f", "-"];
    if dry_run {
        args.push("--dry-run=server");
    }
    let out = kubectl_stdin(&args, manifest);
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn free_form_objects_deeper_than_the_limit_are_refused_at_admission() {
    install_crd();
    let ns = Namespace::create();
    let too_deep = MAX_FREE_FORM_DEPTH + 1;
    let cases = [
        ("spec.rules[].pattern", rule_with(nested(too_deep))),
        ("spec.rules[].pattern", rule_with(nested(200))),
        (
            "spec.workflows[].definition",
            json!({"workflows": [{"name": "w", "definition": {
                "StartAt": "P", "States": {"P": {"Type": "Pass", "End": true, "Parameters": nested(too_deep)}}
            }}]}),
        ),
        (
            "spec.schedules[].input",
            json!({
                "queues": [{"name": "q"}],
                "schedules": [{"name": "s", "expression": "rate(1 hour)", "target": {"queue": "q"}, "input": nested(too_deep)}],
            }),
        ),
    ];
    for (field, spec) in cases {
        let (ok, err) = apply(&ns.0, &pipeline(spec), true);
        assert!(!ok, "{field}: admitted");
        assert!(
            err.contains(field)
                && err.contains(&format!("nests more than {MAX_FREE_FORM_DEPTH} levels")),
            "{field}: {err}"
        );
    }
    // The limit itself is accepted.
    let (ok, err) = apply(
        &ns.0,
        &pipeline(rule_with(nested(MAX_FREE_FORM_DEPTH))),
        true,
    );
    assert!(ok, "{err}");
    // A definition too large for the policy's CEL cost limit (~50,000
    // nodes, ~390 KB) is admitted, not refused: the operator checks it.
    let states: serde_json::Map<String, Value> = (0..1200)
        .map(|i| {
            let mut state = json!({
                "Type": "Pass",
                "Parameters": (0..8)
                    .map(|j| (format!("k{j}"), json!({"a": [1, 2, {"b": "c"}]})))
                    .collect::<serde_json::Map<_, _>>(),
            });
            if i + 1 < 1200 {
                state["Next"] = json!(format!("S{}", i + 1));
            } else {
                state["End"] = json!(true);
            }
            (format!("S{i}"), state)
        })
        .collect();
    let big =
        json!({"workflows": [{"name": "w", "definition": {"StartAt": "S0", "States": states}}]});
    let out = kubectl_stdin(
        &["create", "-n", &ns.0, "--dry-run=server", "-f", "-"],
        &pipeline(big),
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn a_refused_deep_pattern_leaves_the_operator_reconciling_other_pipelines() {
    install_crd();
    let (tenant, other) = (Namespace::create(), Namespace::create());
    let op = Operator::start_watching(&[&tenant.0, &other.0]);
    // The 200-level pattern that once broke the operator's watch.
    let (ok, err) = apply(&tenant.0, &pipeline(rule_with(nested(200))), false);
    assert!(!ok && err.contains("spec.rules[].pattern"), "{err}");
    let took = apply_and_wait(
        &other.0,
        "event-triggered",
        &sample_manifest("event-triggered.yaml"),
        "Ready",
        &op,
    );
    assert!(
        !op.log_tail().contains("watch stream failed"),
        "{}",
        op.log_tail()
    );
    eprintln!("the other namespace's pipeline was Ready after {took:?}");
    delete_pipeline(&other.0, "event-triggered", &op);
}
