//! `kubectl sluice validate`: every DataPipeline of the manifests through
//! the operator's checks ([`super::check`]); exit 1 when one is refused.

use serde::Serialize;

use super::{
    INVALID, OK, Outcome,
    args::{Args, Output},
    check::{self, Setup, Stage},
    load::{self, Manifest},
};

/// One pipeline's verdict.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Verdict {
    /// Where the manifest came from.
    pub source: String,
    /// The namespace it was checked in.
    pub namespace: String,
    /// Its name.
    pub name: String,
    /// Whether every check passed.
    pub valid: bool,
    /// The check that refused it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stage: Option<Stage>,
    /// What is wrong, one problem each, naming the field.
    pub problems: Vec<String>,
    /// The operator's warnings (valid, but worth a look).
    pub warnings: Vec<String>,
    /// How many AWS resources the plan has.
    pub resources: usize,
}

/// Checks every DataPipeline among `manifests`.
pub fn verdicts(manifests: &[Manifest], setup: &Setup, args: &Args) -> Vec<Verdict> {
    manifests
        .iter()
        .filter(|m| m.is("DataPipeline"))
        .map(|m| {
            let namespace = args
                .namespace
                .clone()
                .or_else(|| {
                    m.object["metadata"]["namespace"]
                        .as_str()
                        .map(str::to_owned)
                })
                .unwrap_or_else(|| "default".into());
            let name = args
                .name
                .clone()
                .or_else(|| m.object["metadata"]["name"].as_str().map(str::to_owned))
                .unwrap_or_default();
            let mut v = Verdict {
                source: m.source.clone(),
                namespace,
                name,
                valid: false,
                stage: None,
                problems: Vec::new(),
                warnings: Vec::new(),
                resources: 0,
            };
            match check::check(m, setup, args.namespace.as_deref(), args.name.as_deref()) {
                Ok(c) => {
                    v.valid = true;
                    v.warnings = c.warnings;
                    v.resources = c.plan.ids().len();
                }
                Err(r) => {
                    v.stage = Some(r.stage);
                    v.problems = r.problems;
                }
            }
            v
        })
        .collect()
}

/// Runs `validate`.
pub fn run(args: &Args, setup: &Setup) -> Result<Outcome, String> {
    let manifests = load::read(&args.files)?;
    let verdicts = verdicts(&manifests, setup, args);
    if verdicts.is_empty() {
        return Err(format!(
            "no DataPipeline (apiVersion sluice.dev/v1alpha1) among {} object(s) read",
            manifests.len()
        ));
    }
    let code = if verdicts.iter().all(|v| v.valid) {
        OK
    } else {
        INVALID
    };
    let stdout = match args.output.unwrap_or(Output::Text) {
        Output::Json => {
            let mut s = serde_json::to_string_pretty(&verdicts).map_err(|e| e.to_string())?;
            s.push('\n');
            s
        }
        Output::Text => text(&verdicts, setup),
        other => return Err(format!("validate prints text or json, not {other:?}")),
    };
    Ok(Outcome { stdout, code })
}

fn text(verdicts: &[Verdict], setup: &Setup) -> String {
    let mut out = String::new();
    for v in verdicts {
        let who = format!("DataPipeline {}/{}", v.namespace, v.name);
        if v.valid {
            out.push_str(&format!(
                "ok       {}: {who}: valid; plans {} AWS resources\n",
                v.source, v.resources
            ));
        } else {
            let stage = v.stage.map_or("refused", Stage::describe);
            out.push_str(&format!("invalid  {}: {who}: {stage}:\n", v.source));
            for p in &v.problems {
                out.push_str(&format!("  - {p}\n"));
            }
        }
        for w in &v.warnings {
            out.push_str(&format!("  warning: {w}\n"));
        }
    }
    let bad = verdicts.iter().filter(|v| !v.valid).count();
    out.push_str(&format!(
        "{} of {} pipeline(s) valid{}\n",
        verdicts.len() - bad,
        verdicts.len(),
        if setup.policies.is_empty() {
            " (no --policy: the namespace's SluicePolicies were not checked)"
        } else {
            ""
        }
    ));
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::{args, run};

    fn samples_dir() -> String {
        format!("{}/../config/samples", env!("CARGO_MANIFEST_DIR"))
    }

    fn argv(s: &str) -> Vec<String> {
        s.split_whitespace().map(str::to_owned).collect()
    }

    fn no_env(_: &str) -> Option<String> {
        None
    }

    #[test]
    fn every_sample_is_valid() {
        let a =
            args::parse(&argv(&format!("validate -f {} -o json", samples_dir()))).expect("args");
        let out = run(&a, &no_env).expect("runs");
        let verdicts: Vec<serde_json::Value> = serde_json::from_str(&out.stdout).expect("json");
        assert_eq!(out.code, OK, "{}", out.stdout);
        assert_eq!(verdicts.len(), 6, "{}", out.stdout);
        assert!(verdicts.iter().all(|v| v["resources"].as_u64() > Some(3)));
    }

    #[test]
    fn a_refused_pipeline_names_its_field_and_exits_1() {
        let dir = std::env::temp_dir().join(format!("sluice-cli-validate-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let file = dir.join("bad.yaml");
        std::fs::write(
            &file,
            "apiVersion: sluice.dev/v1alpha1\nkind: DataPipeline\nmetadata: {name: bad}\n\
             spec:\n  functions: [{name: f, handler: no-such-handler}]\n",
        )
        .expect("write");
        let a = args::parse(&argv(&format!("validate -f {}", file.display()))).expect("args");
        let out = run(&a, &no_env).expect("runs");
        assert_eq!(out.code, INVALID, "{}", out.stdout);
        assert!(out.stdout.contains("spec.functions[0]"), "{}", out.stdout);
        assert!(out.stdout.contains("no-such-handler"), "{}", out.stdout);
        assert!(
            out.stdout.contains("0 of 1 pipeline(s) valid"),
            "{}",
            out.stdout
        );
        std::fs::remove_dir_all(&dir).ok();
    }

    /// One table, both paths: every case `e2e/cases/admission.yaml` says
    /// the API server refuses (the e2e test applies each to a real one) is
    /// refused by `validate` at the same stage, naming the same fields;
    /// every case it admits passes admission here too.
    #[test]
    fn validate_refuses_the_admission_table_at_the_api_servers_stage() {
        let table: serde_json::Value =
            serde_yaml::from_str(include_str!("../../../e2e/cases/admission.yaml"))
                .expect("the table parses");
        let dir = std::env::temp_dir().join(format!("sluice-cli-table-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let policy = format!(
            "{}/../charts/sluice/files/default-policy.yaml",
            env!("CARGO_MANIFEST_DIR")
        );
        let verdict = |i: usize, spec: &str| -> (u8, serde_json::Value) {
            let spec: serde_json::Value = serde_yaml::from_str(spec).expect("spec is YAML");
            let manifest = serde_json::json!({
                "apiVersion": "sluice.dev/v1alpha1",
                "kind": "DataPipeline",
                "metadata": {"name": "bad"},
                "spec": spec,
            });
            let file = dir.join(format!("case-{i}.json"));
            std::fs::write(&file, manifest.to_string()).expect("write");
            let a = args::parse(&argv(&format!(
                "validate -f {} --policy {policy} -o json",
                file.display()
            )))
            .expect("args");
            let out = run(&a, &no_env).expect("runs");
            let mut v: Vec<serde_json::Value> = serde_json::from_str(&out.stdout).expect("json");
            (out.code, v.remove(0))
        };
        let mut failures = Vec::new();
        let refused = table["refused"].as_array().expect("refused cases");
        for (i, case) in refused.iter().enumerate() {
            let what = case["what"].as_str().unwrap_or_default();
            let (code, v) = verdict(i, case["spec"].as_str().expect("spec"));
            let want = match case["stage"].as_str() {
                Some("crd") => &["admission"][..],
                Some("policy") => &["policy"][..],
                // The depth policy's limit is the validation's too.
                _ => &["admission", "validation"][..],
            };
            let stage = v["stage"].as_str().unwrap_or("none");
            if code != INVALID || !want.contains(&stage) {
                failures.push(format!(
                    "{what}: exit {code}, stage {stage}, want {want:?}: {v}"
                ));
                continue;
            }
            let mut problems = v["problems"].to_string();
            if stage == "policy" {
                // The admission policy names a list's field without its
                // index (`spec.functions[].uses[]`); the operator with it.
                problems = unindexed(&problems);
            }
            for needle in case["expect"].as_array().into_iter().flatten() {
                let needle = needle.as_str().unwrap_or_default();
                if !problems.contains(&needle.replace('"', "\\\"")) {
                    failures.push(format!("{what}: {needle:?} not in {problems}"));
                }
            }
        }
        let accepted = table["accepted"].as_array().expect("accepted cases");
        for (i, case) in accepted.iter().enumerate() {
            let (_, v) = verdict(1000 + i, case["spec"].as_str().expect("spec"));
            if v["stage"] == "admission" || v["stage"] == "parse" {
                failures.push(format!("{}: refused at admission: {v}", case["what"]));
            }
        }
        std::fs::remove_dir_all(&dir).ok();
        assert!(refused.len() >= 40 && !accepted.is_empty());
        assert!(failures.is_empty(), "{}", failures.join("\n"));
    }

    /// `a[0].b[12]` as `a[].b[]`.
    fn unindexed(s: &str) -> String {
        let mut out = String::with_capacity(s.len());
        let mut chars = s.chars().peekable();
        while let Some(c) = chars.next() {
            out.push(c);
            if c == '[' {
                let mut digits = String::new();
                while let Some(d) = chars.peek().filter(|d| d.is_ascii_digit()) {
                    digits.push(*d);
                    chars.next();
                }
                if chars.peek() != Some(&']') {
                    out.push_str(&digits);
                }
            }
        }
        out
    }
}
