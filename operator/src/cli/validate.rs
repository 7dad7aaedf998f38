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
}
