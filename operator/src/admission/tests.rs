//! The admission table of `e2e/cases/admission.yaml`, which the e2e test
//! also applies to a real kube-apiserver, checked offline against the CRD
//! the operator generates.

use kube::CustomResourceExt;
use serde::Deserialize;
use serde_json::{Value, json};

use super::admit;
use crate::crd::DataPipeline;

const CASES: &str = include_str!("../../../e2e/cases/admission.yaml");

#[derive(Debug, Deserialize)]
struct Cases {
    refused: Vec<Refused>,
    accepted: Vec<Accepted>,
}

#[derive(Debug, Deserialize)]
struct Refused {
    what: String,
    stage: String,
    spec: String,
    expect: Vec<String>,
}

#[derive(Debug, Deserialize)]
struct Accepted {
    what: String,
    spec: String,
}

fn cases() -> Cases {
    serde_yaml::from_str(CASES).expect("e2e/cases/admission.yaml parses")
}

/// The manifest the e2e test applies for `spec`.
fn manifest(spec: &str) -> Value {
    let spec: Value = serde_yaml::from_str(spec).expect("the spec is YAML");
    json!({
        "apiVersion": "sluice.dev/v1alpha1",
        "kind": "DataPipeline",
        "metadata": {"name": "bad"},
        "spec": spec,
    })
}

#[test]
fn the_crd_stage_of_the_admission_table_is_refused_offline_naming_the_field() {
    let crd = DataPipeline::crd();
    let cases = cases();
    let mut failures = Vec::new();
    let mut checked = 0;
    for case in cases.refused.iter().filter(|c| c.stage == "crd") {
        checked += 1;
        match admit(&crd, &manifest(&case.spec)) {
            Ok(_) => failures.push(format!("{}: admitted but must be refused", case.what)),
            Err(errors) => {
                let message = errors.join("\n");
                for needle in &case.expect {
                    if !message.contains(needle.as_str()) {
                        failures.push(format!(
                            "{}: message does not name {needle:?}:\n{message}",
                            case.what
                        ));
                    }
                }
            }
        }
    }
    assert!(checked >= 40, "only {checked} crd cases in the table");
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

#[test]
fn the_accepted_cases_of_the_admission_table_are_admitted_offline() {
    let crd = DataPipeline::crd();
    let cases = cases();
    assert!(!cases.accepted.is_empty());
    for case in &cases.accepted {
        if let Err(errors) = admit(&crd, &manifest(&case.spec)) {
            panic!("{}: refused:\n{}", case.what, errors.join("\n"));
        }
    }
}

#[test]
fn every_case_names_a_known_stage_and_something_to_expect() {
    for case in cases().refused {
        assert!(
            matches!(case.stage.as_str(), "crd" | "policy" | "depth"),
            "{}: stage {:?}",
            case.what,
            case.stage
        );
        assert!(!case.expect.is_empty(), "{}: expects nothing", case.what);
    }
}

#[test]
fn defaults_are_applied_before_the_rules_and_returned() {
    let crd = DataPipeline::crd();
    let admitted = admit(&crd, &manifest("functions: [{name: f, handler: router}]"))
        .expect("a minimal pipeline is admitted");
    let spec = &admitted["spec"];
    assert_eq!(spec["deletionPolicy"], "Delete");
    assert_eq!(spec["buckets"], json!([]));
    assert_eq!(spec["functions"][0]["timeoutSeconds"], 30);
    assert_eq!(spec["functions"][0]["triggers"], json!([]));
}

#[test]
fn unknown_fields_are_refused_as_strict_field_validation_refuses_them() {
    let crd = DataPipeline::crd();
    let errors = admit(
        &crd,
        &manifest("functions: [{name: f, handler: router, memory: 128}]\nbogus: 1"),
    )
    .expect_err("unknown fields are refused");
    assert_eq!(
        errors,
        vec![
            r#"unknown field "spec.bogus""#.to_owned(),
            r#"unknown field "spec.functions[0].memory""#.to_owned(),
        ]
    );
}

#[test]
fn a_schema_error_that_blocks_the_rules_says_they_were_not_checked() {
    let crd = DataPipeline::crd();
    // A type error, and a duplicate bucket the CEL rule would name.
    let errors = admit(
        &crd,
        &manifest("functions: [{name: f, handler: router, memoryMiB: lots}]\nbuckets: [{name: a}, {name: a}]"),
    )
    .expect_err("refused");
    let message = errors.join("\n");
    assert!(
        message.contains(r#"spec.functions[0].memoryMiB: Invalid value: "string": spec.functions[0].memoryMiB in body must be of type integer: "string""#),
        "{message}"
    );
    assert!(
        message.contains("some validation rules were not checked"),
        "{message}"
    );
    assert!(
        !message.contains("bucket names must be unique"),
        "{message}"
    );
}

#[test]
fn the_wrong_kind_or_version_is_refused() {
    let crd = DataPipeline::crd();
    let mut object = manifest("{}");
    object["apiVersion"] = json!("sluice.dev/v9");
    assert!(admit(&crd, &object).is_err());
    let mut object = manifest("{}");
    object["kind"] = json!("SluicePolicy");
    assert!(admit(&crd, &object).is_err());
    let mut object = manifest("{}");
    object["metadata"] = json!({});
    let errors = admit(&crd, &object).expect_err("no name");
    assert_eq!(
        errors[0],
        "metadata.name: Required value: name or generateName is required"
    );
}

/// What kube-apiserver 1.34 answered `kubectl apply --dry-run=server` for
/// these specs (each line of its message, without kubectl's `* `), against
/// the committed CRD: the offline admission must say the same, line for
/// line.
#[test]
fn the_wording_is_the_api_servers_line_for_line() {
    const BLOCKED: &str = "<nil>: Invalid value: null: some validation rules were not checked because the object was invalid; correct the existing errors to complete validation";
    let crd = DataPipeline::crd();
    for (spec, expected) in [
        ("bogus: 1", vec![r#"unknown field "spec.bogus""#]),
        (
            "functions: [{name: '', handler: router}]",
            vec![
                r#"spec.functions[0].name: Invalid value: "": spec.functions[0].name in body should be at least 1 chars long"#,
            ],
        ),
        (
            "functions: [{name: f, handler: router, memoryMiB: lots}]",
            vec![
                r#"spec.functions[0].memoryMiB: Invalid value: "string": spec.functions[0].memoryMiB in body must be of type integer: "string""#,
                BLOCKED,
            ],
        ),
        (
            "buckets: [{name: a}, {name: a}]",
            vec![r#"spec.buckets: Invalid value: "array": bucket names must be unique"#],
        ),
        (
            "functions: [{name: abcdefghijabcdefghijabcdefghijabcdefghijx, handler: router}]",
            vec![
                "spec.functions[0].name: Too long: may not be more than 40 bytes",
                BLOCKED,
            ],
        ),
        (
            "deletionPolicy: Foo",
            vec![
                r#"spec.deletionPolicy: Unsupported value: "Foo": supported values: "Delete", "Retain""#,
                BLOCKED,
            ],
        ),
        (
            "functions: [{handler: router}]",
            vec!["spec.functions[0].name: Required value", BLOCKED],
        ),
        (
            "functions: [{name: f, handler: router, timeoutSeconds: 1000, memoryMiB: 64}]",
            vec![
                "spec.functions[0].memoryMiB: Invalid value: 64: spec.functions[0].memoryMiB in body should be greater than or equal to 128",
                r#"spec.functions[0].timeoutSeconds: Invalid value: "integer": must be at most 900 seconds (Lambda's limit); work that runs longer belongs in a workflow (Step Functions), not a single function"#,
            ],
        ),
        (
            "functions: [{name: f, handler: router}, {name: f, handler: router}]",
            vec![r#"spec.functions: Invalid value: "array": function names must be unique"#],
        ),
        (
            "queues: [{name: a}, {name: a}, {name: a}]",
            vec![r#"spec.queues[1]: Duplicate value: {"name":"a"}"#],
        ),
        (
            "functions: [{name: f, handler: router, memoryMiB: 1.5}]",
            vec![
                r#"spec.functions[0].memoryMiB: Invalid value: "number": spec.functions[0].memoryMiB in body must be of type integer: "number""#,
                "spec.functions[0].memoryMiB: Invalid value: 1.5: spec.functions[0].memoryMiB in body should be greater than or equal to 128",
                BLOCKED,
            ],
        ),
        (
            "functions: [{name: f, handler: router, layers: [null]}]",
            vec![
                r#"spec.functions[0].layers[0]: Invalid value: "null": spec.functions[0].layers[0] in body must be of type string: "null""#,
                BLOCKED,
            ],
        ),
        (
            r#"functions: [{name: "é", handler: router}]"#,
            vec![
                r#"spec.functions[0].name: Invalid value: "é": spec.functions[0].name in body should match '^[a-z0-9]([-a-z0-9]*[a-z0-9])?$'"#,
            ],
        ),
    ] {
        let mut got = admit(&crd, &manifest(spec)).expect_err(spec);
        let mut expected: Vec<String> = expected.into_iter().map(str::to_owned).collect();
        got.sort();
        expected.sort();
        assert_eq!(got, expected, "{spec}");
    }
    // Nulls of fields that are not nullable are defaulted or dropped, and
    // an environment of 51 variables is too many.
    for spec in [
        "functions: null",
        "functions: [{name: f, handler: router, memoryMiB: null}]",
        // A nullable field set to null is absent to the rules' has().
        "functions: [{name: f, handler: batch-aggregate}]\nschedules: [{name: s, expression: 'rate(1 day)', target: {function: f, queue: null}}]",
        "functions: [{name: f, handler: router, code: null}]",
        "functions: [{name: f, handler: router, memoryMiB: 128.0}]",
        "functions: [{name: f, handler: router, environment: {A: null}}]",
    ] {
        assert!(admit(&crd, &manifest(spec)).is_ok(), "{spec}");
    }
    let environment: Vec<String> = (0..51).map(|i| format!("V{i}: x")).collect();
    let spec = format!(
        "functions: [{{name: f, handler: router, environment: {{{}}}}}]",
        environment.join(", ")
    );
    assert_eq!(
        admit(&crd, &manifest(&spec)).expect_err("51 variables"),
        vec![
            "spec.functions[0].environment: Too many: 51: must have at most 50 items",
            BLOCKED
        ]
    );
}
