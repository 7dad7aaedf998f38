use super::*;
use crate::cli::SAMPLES;
use crate::cli::{args, run};

fn root() -> String {
    format!("{}/..", env!("CARGO_MANIFEST_DIR"))
}

fn argv(s: &str) -> Vec<String> {
    s.split_whitespace().map(str::to_owned).collect()
}

fn no_env(_: &str) -> Option<String> {
    None
}

/// `docs/plans/<sample>.txt` is what `plan` prints for each sample: a
/// change of meaning in the planner or the rendering fails here. After an
/// intended change, `SLUICE_BLESS=1 cargo test -p sluice-operator --lib
/// cli::plan` rewrites them; review the diff.
#[test]
fn every_samples_plan_matches_its_golden() {
    let bless = std::env::var_os("SLUICE_BLESS").is_some();
    let mut stale = Vec::new();
    for sample in SAMPLES {
        let a = args::parse(&argv(&format!(
            "plan -f {}/config/samples/{sample}.yaml",
            root()
        )))
        .expect("args");
        let out = run(&a, &no_env).expect("plans");
        assert_eq!(out.code, OK);
        let path = format!("{}/docs/plans/{sample}.txt", root());
        if bless {
            std::fs::create_dir_all(format!("{}/docs/plans", root())).expect("dir");
            std::fs::write(&path, &out.stdout).expect("write golden");
        } else if std::fs::read_to_string(&path).ok().as_deref() != Some(out.stdout.as_str()) {
            stale.push(path);
        }
    }
    assert!(
        stale.is_empty(),
        "plan output differs from {stale:?}: rerun with SLUICE_BLESS=1 and review the diff"
    );
}

#[test]
fn every_role_lists_its_statements_under_its_owner() {
    let a = args::parse(&argv(&format!(
        "plan -f {}/config/samples/fan-out.yaml -o json",
        root()
    )))
    .expect("args");
    let out = run(&a, &no_env).expect("plans");
    let doc: Value = serde_json::from_str(&out.stdout).expect("json");
    let resources = doc["resources"].as_array().expect("resources");
    let roles: Vec<&Value> = resources
        .iter()
        .filter(|r| r["kind"] == "IAM::Role")
        .collect();
    assert!(!roles.is_empty());
    for role in roles {
        assert!(
            role["statements"].as_array().is_some_and(|s| !s.is_empty()),
            "{role}"
        );
        assert_ne!(role["owner"]["kind"], "pipeline", "{role}");
    }
    // The router's role may put events on the pipeline's bus, and that is
    // shown on the page.
    assert!(out.stdout.contains("events:PutEvents"), "{}", out.stdout);
}

#[test]
fn bucket_names_say_when_the_installations_secret_is_unknown() {
    let file = format!("{}/config/samples/event-triggered.yaml", root());
    let a = args::parse(&argv(&format!("plan -f {file}"))).expect("args");
    let unknown = run(&a, &no_env).expect("plans").stdout;
    assert!(unknown.contains("SLUICE_INSTALLATION_ID"), "{unknown}");
    let with_secret =
        |k: &str| (k == "SLUICE_INSTALLATION_ID").then(|| "0123456789abcdef0123".to_owned());
    let known = run(&a, &with_secret).expect("plans").stdout;
    assert!(!known.contains("SLUICE_INSTALLATION_ID"), "{known}");
    assert_ne!(known, unknown, "bucket names derive from the secret");
}

#[test]
fn names_follow_the_namespace_and_name_given() {
    let file = format!("{}/config/samples/event-triggered.yaml", root());
    let a = args::parse(&argv(&format!(
        "plan -f {file} -n team-a --name orders -o json"
    )))
    .expect("args");
    let doc: Value = serde_json::from_str(&run(&a, &no_env).expect("plans").stdout).expect("json");
    assert_eq!(doc["namespace"], "team-a");
    assert_eq!(doc["name"], "orders");
    let functions: Vec<&str> = doc["resources"]
        .as_array()
        .expect("resources")
        .iter()
        .filter(|r| r["kind"] == "Lambda::Function")
        .filter_map(|r| r["id"].as_str())
        .collect();
    assert!(!functions.is_empty());
    assert!(
        functions.iter().all(|f| f.contains("team-a-orders")),
        "{functions:?}"
    );
}

#[test]
fn an_invalid_pipeline_is_not_planned() {
    let dir = std::env::temp_dir().join(format!("sluice-cli-plan-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let file = dir.join("bad.yaml");
    std::fs::write(
        &file,
        "apiVersion: sluice.dev/v1alpha1\nkind: DataPipeline\nmetadata: {name: bad}\n\
         spec:\n  functions: [{name: f, handler: router}]\n",
    )
    .expect("write");
    let a = args::parse(&argv(&format!("plan -f {}", file.display()))).expect("args");
    let e = run(&a, &no_env).expect_err("refused");
    assert!(e.contains("EVENT_BUS"), "{e}");
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn the_live_exit_code_says_whether_anything_would_change() {
    let c = |action| ChangeJson {
        action,
        kind: "SQS::Queue",
        id: "q".into(),
        logical: "q".into(),
        details: vec![],
    };
    assert_eq!(live_code(&[c("unchanged")]), OK);
    assert_eq!(live_code(&[c("unchanged"), c("update")]), CHANGES);
    assert_eq!(live_code(&[c("create")]), CHANGES);
    assert_eq!(live_code(&[c("delete")]), CHANGES);
    assert_eq!(live_code(&[c("create"), c("conflict")]), INVALID);
}
