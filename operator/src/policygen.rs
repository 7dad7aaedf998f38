//! The operator's own AWS policy, generated from the code: every module's
//! declarations ([`crate::aws::operator_policy`], each beside the calls it
//! names) in the order of the policies' statements, merged by `Sid` and
//! rendered as the two files of `config/iam/`. The `policygen` binary
//! prints them and `make policy` writes them; the tests below hold the
//! declarations to the calls in both directions and the committed files to
//! [`render`].

use std::collections::BTreeMap;

use serde::Serialize;

use crate::aws::{
    Service,
    operator_policy::{Action, Condition, Document, Effect, Reason, Statement, Values},
};

/// The account id, learned on connecting (`crate::aws::Aws::connect`).
pub const IDENTITY: &[Statement] = &[Statement::allow(
    "Identity",
    Document::Core,
    // Needs no permission on AWS; named so that the policy says so.
    &[Action::calls(Service::Sts, "GetCallerIdentity")],
    &["*"],
)];

/// Outside the allowed regions, nothing but IAM and STS (which are global).
pub const REGIONS: &[Statement] = &[Statement::deny(
    "OnlyTheAllowedRegions",
    Document::Core,
    &[
        Action::guard(Service::Iam, "*"),
        Action::guard(Service::Sts, "*"),
    ],
    &["*"],
)
.every_action_but()
.when(&[Condition::any(
    "StringNotEquals",
    "aws:RequestedRegion",
    &["ALLOWED_REGION"],
)])];

/// Every module's declarations, in the order of the policies' statements.
pub const DECLARED: &[&[Statement]] = &[
    IDENTITY,
    crate::aws::session::POLICY,
    crate::aws::role::POLICY,
    REGIONS,
    crate::aws::bucket::POLICY,
    crate::aws::notification::POLICY,
    crate::aws::code::POLICY,
    crate::aws::code::TEAM_POLICY,
    crate::health::cloudwatch::POLICY,
    crate::aws::function::POLICY,
    crate::aws::function::IMAGE_POLICY,
    crate::aws::function::NETWORK_AND_LAYERS_POLICY,
    crate::aws::permissions::POLICY,
    crate::aws::invoke_config::POLICY,
    crate::aws::event_source_mapping::POLICY,
    crate::aws::queue::POLICY,
    crate::health::dead_letters::POLICY,
    crate::aws::event_bus::POLICY,
    crate::aws::rule::POLICY,
    crate::aws::stream::POLICY,
    crate::aws::table::POLICY,
    crate::aws::state_machine::POLICY,
    crate::aws::schedule::POLICY,
    crate::aws::log_group::POLICY,
    crate::aws::state_machine::LOG_DELIVERY_POLICY,
];

/// One statement as it is written: the declarations of its `Sid` merged.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Merged {
    /// The first declaration (everything but the actions).
    pub statement: Statement,
    /// The IAM actions of every declaration, each once, in declaration
    /// order.
    pub actions: Vec<String>,
}

/// The statements of `document`, each `Sid` once.
///
/// # Panics
/// When two declarations of one `Sid` differ in anything but their actions
/// (the tests render every document, so this never ships).
pub fn statements(document: Document) -> Vec<Merged> {
    let mut merged: Vec<Merged> = Vec::new();
    for statement in DECLARED.iter().flat_map(|s| s.iter()) {
        let index = match merged.iter().position(|m| m.statement.sid == statement.sid) {
            Some(index) => {
                let first = Statement {
                    actions: &[],
                    ..merged[index].statement
                };
                let this = Statement {
                    actions: &[],
                    ..*statement
                };
                assert!(
                    first == this,
                    "statement {} is declared twice with different documents, effects, resources \
                     or conditions: {first:?} and {this:?}",
                    statement.sid
                );
                index
            }
            None => {
                merged.push(Merged {
                    statement: *statement,
                    actions: Vec::new(),
                });
                merged.len() - 1
            }
        };
        for action in statement.actions {
            let iam = action.iam();
            if !merged[index].actions.contains(&iam) {
                merged[index].actions.push(iam);
            }
        }
    }
    merged.retain(|m| m.statement.document == document);
    merged
}

/// A string, or a list of them where there are several.
#[derive(Serialize)]
#[serde(untagged)]
enum OneOrMany {
    One(String),
    Many(Vec<String>),
}

impl OneOrMany {
    fn of(mut values: Vec<String>) -> OneOrMany {
        if values.len() == 1 {
            OneOrMany::One(values.remove(0))
        } else {
            OneOrMany::Many(values)
        }
    }
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct JsonStatement {
    sid: &'static str,
    effect: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    action: Option<OneOrMany>,
    #[serde(skip_serializing_if = "Option::is_none")]
    not_action: Option<OneOrMany>,
    resource: OneOrMany,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    condition: BTreeMap<&'static str, BTreeMap<&'static str, OneOrMany>>,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct JsonPolicy {
    version: &'static str,
    statement: Vec<JsonStatement>,
}

/// The reviewer's policy (`config/iam/reviewer-policy.json`): every read
/// the operator declares, on the same resources and under the same
/// conditions, and its Deny statements; no write. What `kubectl sluice plan
/// --live` needs, since it observes with the operator's code: a reviewer or
/// a CI job gets these and can change nothing; and it may assume the
/// reviewer roles of other accounts (`AssumeReviewerRoles`), which hold
/// this policy there.
pub fn reviewer_statements() -> Vec<Merged> {
    let mut out = Vec::new();
    for document in Document::ALL {
        for mut m in statements(document) {
            if m.statement.effect == Effect::Allow {
                // Every declaration of this Sid, for why each action is there.
                let mut reads: Vec<String> = Vec::new();
                for action in DECLARED
                    .iter()
                    .flat_map(|s| s.iter())
                    .filter(|s| s.sid == m.statement.sid)
                    .flat_map(|s| s.actions)
                {
                    // AssumeRole counts as a read (it changes nothing),
                    // but account roles trust the operator alone: a
                    // reviewer is not given what it cannot use.
                    let read = matches!(action.reason,
                        Reason::Call(op) if crate::aws::is_read(op) && op != "AssumeRole");
                    if read && !reads.contains(&action.iam()) {
                        reads.push(action.iam());
                    }
                }
                if reads.is_empty() {
                    continue;
                }
                m.actions = reads;
            }
            out.push(m);
        }
    }
    // Reading a namespace's own account as a reviewer role there.
    for statement in crate::aws::session::REVIEWER_POLICY {
        out.push(Merged {
            statement: *statement,
            actions: statement.actions.iter().map(Action::iam).collect(),
        });
    }
    out
}

/// The policy `document` as its file holds it: JSON, two-space indented,
/// with a final newline.
pub fn render(document: Document) -> String {
    render_statements(statements(document))
}

/// The reviewer's policy as its file holds it ([`reviewer_statements`]).
pub fn render_reviewer() -> String {
    render_statements(reviewer_statements())
}

fn render_statements(merged: Vec<Merged>) -> String {
    let statement = merged
        .into_iter()
        .map(|m| {
            let s = m.statement;
            let actions = Some(OneOrMany::of(m.actions));
            let (action, not_action) = if s.not_action {
                (None, actions)
            } else {
                (actions, None)
            };
            let mut condition: BTreeMap<_, BTreeMap<_, _>> = BTreeMap::new();
            for c in s.conditions {
                let values = match c.values {
                    Values::One(v) => OneOrMany::One(v.to_owned()),
                    Values::Any(vs) => {
                        OneOrMany::Many(vs.iter().map(|v| (*v).to_owned()).collect())
                    }
                };
                let previous = condition
                    .entry(c.operator)
                    .or_default()
                    .insert(c.key, values);
                assert!(
                    previous.is_none(),
                    "statement {}: {} {} twice",
                    s.sid,
                    c.operator,
                    c.key
                );
            }
            JsonStatement {
                sid: s.sid,
                effect: match s.effect {
                    Effect::Allow => "Allow",
                    Effect::Deny => "Deny",
                },
                action,
                not_action,
                resource: OneOrMany::of(s.resources.iter().map(|r| (*r).to_owned()).collect()),
                condition,
            }
        })
        .collect();
    let policy = JsonPolicy {
        version: "2012-10-17",
        statement,
    };
    let mut text = serde_json::to_string_pretty(&policy).expect("a policy serialises");
    text.push('\n');
    text
}

#[cfg(test)]
mod tests {
    use std::collections::{BTreeMap, BTreeSet};

    use crate::aws::operator_policy::Reason;

    use serde_json::Value;

    use super::*;

    /// The calls `Aws::call(Service::X, "Operation", …)` in one source
    /// file, outside its unit tests (which call fakes, not AWS), however
    /// rustfmt breaks the lines; `Err` with the count of calls whose
    /// service or operation is not a literal.
    fn calls_in(text: &str) -> Result<Vec<Call>, usize> {
        let call = regex::Regex::new(r#"\.call\(\s*Service::(\w+)\s*,\s*"(\w+)""#).expect("regex");
        let any_call = regex::Regex::new(r"\.call\(").expect("regex");
        let tests = regex::Regex::new(r"#\[cfg\(test\)\]\s*(pub(\(crate\))?\s+)?mod tests\b")
            .expect("regex");
        let code = tests.find(text).map_or(text, |m| &text[..m.start()]);
        let found: Vec<Call> = call
            .captures_iter(code)
            .map(|c| (c[1].to_owned(), c[2].to_owned()))
            .collect();
        match any_call.find_iter(code).count() - found.len() {
            0 => Ok(found),
            other => Err(other),
        }
    }

    /// The calls in the operator's sources → the files that make them.
    fn calls_in_the_sources() -> BTreeMap<Call, BTreeSet<String>> {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
        let mut found: BTreeMap<Call, BTreeSet<String>> = BTreeMap::new();
        let mut dirs = vec![root.clone()];
        let mut files = 0;
        while let Some(dir) = dirs.pop() {
            for entry in std::fs::read_dir(&dir).expect("a source directory") {
                let path = entry.expect("a directory entry").path();
                if path.is_dir() {
                    dirs.push(path);
                    continue;
                }
                if path.extension().is_none_or(|e| e != "rs") {
                    continue;
                }
                files += 1;
                let text = std::fs::read_to_string(&path).expect("a source file");
                let name = path
                    .strip_prefix(&root)
                    .expect("under src/")
                    .display()
                    .to_string();
                let calls = calls_in(&text).unwrap_or_else(|n| {
                    panic!(
                        "{name}: {n} Aws::call(s) without a literal service and operation; \
                         every call names both (`.call(Service::X, \"Operation\", …)`) so that \
                         the operator's policy can be checked against the calls"
                    )
                });
                for c in calls {
                    found.entry(c).or_default().insert(name.clone());
                }
            }
        }
        assert!(files > 50, "found only {files} source files under {root:?}");
        found
    }

    #[test]
    fn the_reviewers_policy_allows_reads_only_and_fits_a_managed_policy() {
        let text = render_reviewer();
        // IAM's limit on a managed policy, whitespace not counted.
        let chars = text.chars().filter(|c| !c.is_whitespace()).count();
        assert!(chars <= 6_144, "{chars} characters");
        let doc: Value = serde_json::from_str(&text).expect("JSON");
        let mut allowed = Vec::new();
        for st in doc["Statement"].as_array().expect("statements") {
            if st["Effect"] != "Allow" {
                continue;
            }
            // Its one action that is not a read: assuming a reviewer role
            // (which holds this policy) in a namespace's own account.
            if st["Sid"] == "AssumeReviewerRoles" {
                assert_eq!(st["Action"], "sts:AssumeRole", "{st}");
                assert_eq!(
                    st["Resource"], "arn:aws:iam::*:role/operators/sluice-reviewer",
                    "{st}"
                );
                continue;
            }
            let actions = match &st["Action"] {
                Value::String(a) => vec![a.clone()],
                Value::Array(a) => a
                    .iter()
                    .filter_map(|x| x.as_str().map(str::to_owned))
                    .collect(),
                other => panic!("an Allow without Action: {other}"),
            };
            allowed.extend(actions);
        }
        for action in &allowed {
            let name = action.split_once(':').map_or("", |(_, n)| n);
            assert!(
                ["Get", "List", "Describe"]
                    .iter()
                    .any(|p| name.starts_with(p)),
                "{action} is not a read"
            );
        }
        // What plan --live observes with, among them.
        for needed in [
            "sts:GetCallerIdentity",
            "lambda:GetFunction",
            "iam:GetRole",
            "sqs:GetQueueAttributes",
            "events:DescribeRule",
        ] {
            assert!(allowed.iter().any(|a| a == needed), "{needed} missing");
        }
    }

    #[test]
    fn calls_are_found_however_rustfmt_breaks_them() {
        let text = r#"
            let a = aws.call(Service::Sqs, "CreateQueue", || x()).await;
            let b = aws
                .call(Service::StepFunctions, "DescribeStateMachine", || {
                    y()
                })
                .await;
            let c = aws
                .call(
                    Service::DynamoDb,
                    "UpdateTable",
                    || z(),
                )
                .await;
            #[cfg(test)]
            mod tests {
                fn t() { aws.call(Service::Lambda, "CreateFunction", send); }
            }
        "#;
        let call = |s: &str, o: &str| (s.to_owned(), o.to_owned());
        assert_eq!(
            calls_in(text),
            Ok(vec![
                call("Sqs", "CreateQueue"),
                call("StepFunctions", "DescribeStateMachine"),
                call("DynamoDb", "UpdateTable"),
            ])
        );
        assert_eq!(
            calls_in(r#"aws.call(service, OPERATION, f); aws.call(Service::S3, "HeadBucket", f);"#),
            Err(1)
        );
    }

    /// (service variant, operation): `("StepFunctions", "CreateStateMachine")`.
    type Call = (String, String);

    fn key(service: Service, operation: &str) -> Call {
        (format!("{service:?}"), operation.to_owned())
    }

    /// The declared calls (`Reason::Call`) and those that imply an action
    /// (`Reason::ImpliedBy`).
    fn declared() -> (BTreeSet<Call>, BTreeSet<Call>) {
        let mut calls = BTreeSet::new();
        let mut implying = BTreeSet::new();
        for statement in DECLARED.iter().flat_map(|s| s.iter()) {
            for action in statement.actions {
                match action.reason {
                    Reason::Call(operation) => {
                        calls.insert(key(action.service, operation));
                    }
                    Reason::ImpliedBy(by) => {
                        implying.extend(by.iter().map(|(s, o)| key(*s, o)));
                    }
                    Reason::Guard => {}
                }
            }
        }
        (calls, implying)
    }

    #[test]
    fn every_call_is_declared_and_every_declared_call_is_made() {
        let made = calls_in_the_sources();
        assert!(made.len() > 90, "found only {} calls", made.len());
        let (calls, implying) = declared();
        let undeclared: Vec<String> = made
            .iter()
            .filter(|(k, _)| !calls.contains(*k))
            .map(|((s, o), files)| format!("Service::{s} {o} ({files:?})"))
            .collect();
        let never_made: Vec<String> = calls
            .iter()
            .chain(&implying)
            .filter(|k| !made.contains_key(*k))
            .map(|(s, o)| format!("Service::{s} {o}"))
            .collect();
        assert!(
            undeclared.is_empty() && never_made.is_empty(),
            "called but not in the operator's policy: {undeclared:?} (declare the IAM action \
             each needs, Action::calls or Action::calls_as, in the POLICY of the module that \
             calls it); declared in the operator's policy but never called: {never_made:?} \
             (remove the declaration: an unused grant is only a risk); then run make policy"
        );
    }

    #[test]
    fn allows_are_for_calls_and_denies_are_guards() {
        for statement in DECLARED.iter().flat_map(|s| s.iter()) {
            for action in statement.actions {
                let guard = action.reason == Reason::Guard;
                assert_eq!(
                    guard,
                    statement.effect == Effect::Deny,
                    "{}: {} ({:?})",
                    statement.sid,
                    action.iam(),
                    action.reason
                );
            }
            assert!(!statement.actions.is_empty(), "{}", statement.sid);
            assert!(!statement.resources.is_empty(), "{}", statement.sid);
        }
    }

    #[test]
    fn the_committed_policies_are_the_generators_output() {
        for (document, committed) in [
            (
                Document::Core,
                include_str!("../../config/iam/operator-policy.json"),
            ),
            (
                Document::Services,
                include_str!("../../config/iam/operator-policy-services.json"),
            ),
            (
                Document::RoleListing,
                include_str!("../../config/iam/role-listing-policy.json"),
            ),
        ] {
            assert!(
                committed == render(document),
                "config/iam is stale ({}): run make policy and commit",
                document.file()
            );
        }
    }

    #[test]
    fn each_statement_is_in_one_document_once() {
        let mut sids = BTreeSet::new();
        for document in Document::EVERY {
            let policy: Value = serde_json::from_str(&render(document)).expect("JSON");
            for s in policy["Statement"].as_array().expect("statements") {
                let sid = s["Sid"].as_str().expect("a Sid").to_owned();
                assert!(sids.insert(sid.clone()), "{sid} twice");
            }
        }
    }

    fn statement(sid: &str) -> Value {
        Document::ALL
            .into_iter()
            .flat_map(|d| {
                let policy: Value = serde_json::from_str(&render(d)).expect("JSON");
                policy["Statement"].as_array().expect("statements").clone()
            })
            .find(|s| s["Sid"] == sid)
            .unwrap_or_else(|| panic!("no statement {sid}"))
    }

    /// What keeps leaked keys inside the boundary (README, "An operator
    /// policy that stays safe if its keys leak").
    #[test]
    fn the_guards_are_kept() {
        let boundary = "arn:aws:iam::ACCOUNT_ID:policy/sluice/sluice-pipeline-boundary";
        let create = statement("CreateAndChangeRolesOnlyWithTheBoundary");
        assert_eq!(
            create["Condition"]["StringEquals"]["iam:PermissionsBoundary"],
            boundary
        );
        assert_eq!(
            create["Resource"],
            "arn:aws:iam::ACCOUNT_ID:role/sluice/sluice-*"
        );
        let pass = statement("PassRolesToTheirServicesOnly");
        assert_eq!(pass["Action"], "iam:PassRole");
        assert_eq!(
            pass["Condition"]["StringEquals"]["iam:PassedToService"]
                .as_array()
                .expect("services")
                .len(),
            4
        );
        let elsewhere = statement("NeverCreateRolesElsewhere");
        assert_eq!(elsewhere["Effect"], "Deny");
        assert_eq!(
            elsewhere["Condition"]["StringNotEquals"]["iam:PermissionsBoundary"],
            boundary
        );
        assert_eq!(statement("NeverRemoveTheBoundary")["Effect"], "Deny");
        assert_eq!(statement("NeverChangeTheBoundaryPolicy")["Effect"], "Deny");
        // The harness (and an installer) replaces "ALLOWED_REGION" with one
        // string per region: it must be an element of a list.
        let regions = statement("OnlyTheAllowedRegions");
        assert_eq!(
            regions["Condition"]["StringNotEquals"]["aws:RequestedRegion"],
            serde_json::json!(["ALLOWED_REGION"])
        );
        assert_eq!(regions["NotAction"], serde_json::json!(["iam:*", "sts:*"]));
        // No IAM action is allowed on every resource by the operator's
        // policy proper; the optional listing's one read is.
        let listing: Value = serde_json::from_str(&render(Document::RoleListing)).expect("JSON");
        assert_eq!(
            listing["Statement"],
            serde_json::json!([{
                "Sid": "ListRolesForDriftDetection",
                "Effect": "Allow",
                "Action": "iam:GetAccountAuthorizationDetails",
                "Resource": "*"
            }])
        );
        for document in Document::ALL {
            let policy: Value = serde_json::from_str(&render(document)).expect("JSON");
            for s in policy["Statement"].as_array().expect("statements") {
                let actions = s["Action"].to_string();
                if s["Effect"] == "Allow" && actions.contains("\"iam:") {
                    assert!(!s["Resource"].to_string().contains("\"*\""), "{s}");
                }
            }
        }
    }

    #[test]
    fn documents_by_name() {
        for document in Document::ALL {
            assert_eq!(Document::from_name(document.name()), Some(document));
        }
        assert_eq!(Document::from_name("other"), None);
    }
}
