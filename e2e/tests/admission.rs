//! Invalid manifests are refused by the real kube-apiserver at admission,
//! with a message naming the field (OpenAPI bounds and CEL rules of the
//! committed CRD, and the chart's admission policies); valid edge cases
//! are accepted. The cases are the table of `e2e/cases/admission.yaml`,
//! which the operator's offline admission (`sluice_operator::admission`)
//! checks too.

use serde::Deserialize;
use sluice_e2e::{Namespace, Policy, install_crd, kubectl_stdin, repo_root, token};

/// The manifest of `spec`, the YAML text of a spec (keys unindented).
fn manifest(spec: &str) -> String {
    let spec: String = spec.lines().map(|l| format!("  {l}\n")).collect();
    format!(
        "apiVersion: sluice.dev/v1alpha1\nkind: DataPipeline\nmetadata:\n  name: bad\nspec:\n{spec}"
    )
}

fn apply(ns: &str, spec: &str, dry_run: bool) -> (bool, String) {
    let mut args = vec!["apply", "-n", ns, "-f", "-"];
    if dry_run {
        args.push("--dry-run=server");
    }
    let out = kubectl_stdin(&args, &manifest(spec));
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The admission table, shared with the operator's offline admission
/// (`sluice_operator::admission`): what must be refused, by which stage,
/// with which fragments in the message, and what must be accepted.
#[derive(Debug, Deserialize)]
struct Cases {
    refused: Vec<Refused>,
    accepted: Vec<Accepted>,
}

#[derive(Debug, Deserialize)]
struct Refused {
    what: String,
    /// `crd`, `policy` or `depth`: all three are installed here.
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
    let path = repo_root().join("e2e/cases/admission.yaml");
    let text = std::fs::read_to_string(&path).expect("e2e/cases/admission.yaml");
    serde_yaml::from_str(&text).expect("e2e/cases/admission.yaml parses")
}

#[test]
fn invalid_manifests_are_rejected_naming_the_field() {
    install_crd();
    let ns = Namespace::create();
    let cases = cases();
    assert!(!cases.refused.is_empty());
    for Refused {
        what,
        stage,
        spec,
        expect,
    } in &cases.refused
    {
        assert!(
            matches!(stage.as_str(), "crd" | "policy" | "depth"),
            "{what}: unknown stage {stage:?}"
        );
        let (accepted, stderr) = apply(&ns.0, spec, true);
        assert!(!accepted, "{what}: accepted but must be rejected");
        for needle in expect {
            assert!(
                stderr.contains(needle.as_str()),
                "{what}: message does not name {needle:?}: {stderr}"
            );
        }
    }
}

#[test]
fn edge_cases_that_are_valid_are_accepted() {
    install_crd();
    let ns = Namespace::create();
    let cases = cases();
    assert!(!cases.accepted.is_empty());
    for Accepted { what, spec } in &cases.accepted {
        let (accepted, stderr) = apply(&ns.0, spec, true);
        assert!(accepted, "{what}: refused: {stderr}");
    }
    // Where the platform opens the default bus, a put on it is accepted.
    let open = format!("open-bus-{}", token());
    let _policy = Policy::apply(
        &open,
        serde_json::json!({"allow": {"defaultEventBus": true}}),
    );
    let ns = Namespace::under_policy(&open);
    let (accepted, stderr) = apply(
        &ns.0,
        "functions: [{name: f, handler: router, uses: [{eventBus: default, access: put, env: EVENT_BUS}]}]",
        true,
    );
    assert!(accepted, "a put on the default bus where allowed: {stderr}");
}

#[test]
fn a_tables_keys_cannot_change_once_created() {
    install_crd();
    let ns = Namespace::create();
    let (accepted, stderr) = apply(
        &ns.0,
        "tables: [{name: t, partitionKey: {name: id, type: S}}]",
        false,
    );
    assert!(accepted, "{stderr}");
    let (accepted, stderr) = apply(
        &ns.0,
        "tables: [{name: t, partitionKey: {name: pk, type: S}}]",
        false,
    );
    assert!(!accepted, "a changed partition key was accepted");
    assert!(
        stderr.contains("spec.tables[0]") && stderr.contains("partitionKey cannot change"),
        "{stderr}"
    );
    // Another table may be added beside it.
    let (accepted, stderr) = apply(
        &ns.0,
        "tables: [{name: t, partitionKey: {name: id, type: S}}, {name: u, partitionKey: {name: pk, type: S}}]",
        false,
    );
    assert!(accepted, "{stderr}");
}

#[test]
fn a_workflows_type_cannot_change_once_created() {
    install_crd();
    let ns = Namespace::create();
    let definition = "definition: {StartAt: A, States: {A: {Type: Pass, End: true}}}";
    let (accepted, stderr) = apply(
        &ns.0,
        &format!("workflows: [{{name: w, type: Standard, {definition}}}]"),
        false,
    );
    assert!(accepted, "{stderr}");
    let (accepted, stderr) = apply(
        &ns.0,
        &format!("workflows: [{{name: w, type: Express, {definition}}}]"),
        false,
    );
    assert!(!accepted, "a changed type was accepted");
    assert!(
        stderr.contains("spec.workflows[0].type") && stderr.contains("type cannot change"),
        "{stderr}"
    );
}
