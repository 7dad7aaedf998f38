//! `config/gitops/`: the Argo CD Applications and the Flux objects that
//! install the chart and a team's pipelines. Every object passes a
//! server-side dry run against the CRDs Argo CD and Flux publish (fetched
//! from their Go modules), the chart's values they carry pass the chart's
//! schema and templates, the chart they point at is this repository's, and
//! the health check they install is `config/argocd/health.lua`.

use serde_yaml::Value;
use sluice_e2e::{
    chart_dir, helm_ok, install_crd, install_third_party_crds, kubectl, kubectl_stdin, repo_root,
};

/// Every object of the YAML files under `config/gitops/<tool>/`.
fn objects(tool: &str) -> Vec<(String, Value)> {
    let dir = repo_root().join("config/gitops").join(tool);
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .expect("config/gitops")
        .map(|e| e.expect("entry").path())
        .collect();
    files.sort();
    let mut out = Vec::new();
    for file in files {
        let name = file.file_name().and_then(|n| n.to_str()).expect("name");
        let raw = std::fs::read_to_string(&file).expect("file");
        out.extend(
            sluice_e2e::yaml_documents(&raw)
                .into_iter()
                .map(|value| (name.to_owned(), value)),
        );
    }
    out
}

fn find<'a>(objects: &'a [(String, Value)], kind: &str, name: &str) -> &'a Value {
    &objects
        .iter()
        .find(|(_, o)| o["kind"] == kind && o["metadata"]["name"] == name)
        .unwrap_or_else(|| panic!("{kind}/{name} missing"))
        .1
}

/// The chart rendered with `values` (as an Application or HelmRelease
/// carries them): the schema and the templates accept them.
fn renders_with(values: &Value) -> usize {
    let file = std::env::temp_dir().join(format!("gitops-values-{}.yaml", sluice_e2e::token()));
    std::fs::write(&file, serde_yaml::to_string(values).expect("YAML")).expect("values");
    let out = helm_ok(&[
        "template",
        "sluice",
        chart_dir().to_str().expect("path"),
        "--namespace",
        "sluice-system",
        "-f",
        file.to_str().expect("path"),
    ]);
    let _ = std::fs::remove_file(&file);
    out.matches("\nkind: ").count()
}

#[test]
fn gitops_objects_are_accepted_by_their_crds_and_carry_values_the_chart_accepts() {
    install_crd();
    install_third_party_crds();
    for ns in ["argocd", "flux-system"] {
        // Made once; already there on a second run.
        let _ = kubectl(&["create", "namespace", ns]);
    }
    let mut all = objects("argocd");
    all.extend(objects("flux"));
    assert!(all.len() >= 8, "{}", all.len());
    for (file, object) in &all {
        let out = kubectl_stdin(
            &[
                "apply",
                "--server-side",
                "--dry-run=server",
                "--field-manager=gitops-dry-run",
                "-f",
                "-",
            ],
            &serde_yaml::to_string(object).expect("YAML"),
        );
        assert!(
            out.status.success(),
            "{file}: {} {} refused:\n{}",
            object["kind"].as_str().unwrap_or_default(),
            object["metadata"]["name"].as_str().unwrap_or_default(),
            String::from_utf8_lossy(&out.stderr)
        );
    }

    // Argo CD: the chart of this repository, before the pipelines, applied
    // server-side, the operator's fields ignored.
    let argo = objects("argocd");
    let sluice = find(&argo, "Application", "sluice");
    assert_eq!(sluice["spec"]["source"]["path"], "charts/sluice");
    assert!(repo_root().join("charts/sluice/Chart.yaml").exists());
    assert!(renders_with(&sluice["spec"]["source"]["helm"]["valuesObject"]) > 10);
    let team = find(&argo, "Application", "team-orders-pipelines");
    let wave = |app: &Value| -> i64 {
        app["metadata"]["annotations"]["argocd.argoproj.io/sync-wave"]
            .as_str()
            .expect("sync wave")
            .parse()
            .expect("number")
    };
    assert!(
        wave(sluice) < wave(team),
        "the chart syncs before pipelines"
    );
    for app in [sluice, team] {
        let options: Vec<&str> = app["spec"]["syncPolicy"]["syncOptions"]
            .as_sequence()
            .expect("syncOptions")
            .iter()
            .filter_map(Value::as_str)
            .collect();
        assert!(options.contains(&"ServerSideApply=true"), "{options:?}");
        assert!(
            options.contains(&"RespectIgnoreDifferences=true"),
            "{options:?}"
        );
    }
    let ignored = &team["spec"]["ignoreDifferences"][0];
    assert_eq!(ignored["kind"], "DataPipeline");
    assert_eq!(
        ignored["managedFieldsManagers"][0],
        sluice_operator::controller::FIELD_MANAGER
    );
    // The health check installed is the tested one.
    let cm = find(&argo, "ConfigMap", "argocd-cm");
    let lua =
        std::fs::read_to_string(repo_root().join("config/argocd/health.lua")).expect("health.lua");
    assert_eq!(
        cm["data"]["resource.customizations.health.sluice.dev_DataPipeline"]
            .as_str()
            .expect("health check"),
        lua
    );

    // Flux: the HelmRelease's values render, and the pipelines wait for
    // the Kustomization that waits for it.
    let flux = objects("flux");
    let release = find(&flux, "HelmRelease", "sluice");
    assert_eq!(release["spec"]["chart"]["spec"]["chart"], "./charts/sluice");
    assert!(renders_with(&release["spec"]["values"]) > 10);
    let pipelines = find(&flux, "Kustomization", "team-orders-pipelines");
    assert_eq!(pipelines["spec"]["dependsOn"][0]["name"], "sluice");
    let operator = find(&flux, "Kustomization", "sluice");
    assert_eq!(operator["spec"]["wait"], true);
}

/// `config/gitops/review/`: the pull-request job runs review.sh, which
/// validates every pipeline with the plugin, fails on a refused one naming
/// its field, and reports the plan and the cost of the valid ones.
#[test]
fn the_review_job_reports_plan_and_cost_and_fails_on_a_refused_pipeline() {
    let review = repo_root().join("config/gitops/review");
    let job: Value = serde_yaml::from_str(
        &std::fs::read_to_string(review.join("github-actions.yaml")).expect("job"),
    )
    .expect("the job is YAML");
    let steps = job["jobs"]["review"]["steps"].as_sequence().expect("steps");
    let runs: String = steps
        .iter()
        .filter_map(|s| s["run"].as_str())
        .collect::<Vec<_>>()
        .join("\n");
    assert!(runs.contains(".sluice/review.sh"), "{runs}");
    assert!(runs.contains("--bin kubectl-sluice"), "{runs}");
    assert!(runs.contains("gh pr comment"), "{runs}");

    // A pull request with one valid pipeline (and its volumes) and one
    // that the operator would stall.
    let dir = std::env::temp_dir().join(format!("sluice-review-{}", std::process::id()));
    std::fs::create_dir_all(dir.join("volumes")).expect("dir");
    let samples = repo_root().join("config/samples");
    std::fs::copy(samples.join("fan-out.yaml"), dir.join("fan-out.yaml")).expect("copy");
    std::fs::copy(
        samples.join("volumes/fan-out.yaml"),
        dir.join("volumes/fan-out.yaml"),
    )
    .expect("copy");
    std::fs::write(
        dir.join("broken.yaml"),
        "apiVersion: sluice.dev/v1alpha1\nkind: DataPipeline\nmetadata: {name: broken}\n\
         spec:\n  functions: [{name: f, handler: no-such-handler}]\n",
    )
    .expect("write");
    let report = dir.join("review.md");
    let out = std::process::Command::new("bash")
        .arg(review.join("review.sh"))
        .arg(&report)
        .arg(&dir)
        .env("KUBECTL_SLUICE", sluice_e2e::kubectl_sluice_path())
        .env(
            "SLUICE_POLICY",
            repo_root().join("charts/sluice/files/default-policy.yaml"),
        )
        .env("SLUICE_NAMESPACE", "team-a")
        .output()
        .expect("review.sh runs");
    let md = std::fs::read_to_string(&report).expect("report");
    std::fs::remove_dir_all(&dir).ok();
    assert_eq!(out.status.code(), Some(1), "{md}");
    let (broken, valid) = md.split_once("fan-out.yaml`").expect("both files reported");
    assert!(broken.contains("**Refused**"), "{md}");
    assert!(
        broken.contains("spec.functions[0]") && broken.contains("no-such-handler"),
        "{md}"
    );
    assert!(valid.contains("Valid."), "{md}");
    assert!(
        valid.contains("DataPipeline team-a/fan-out: 34 AWS resources"),
        "{md}"
    );
    assert!(valid.contains("volumes/fan-out.yaml"), "{md}");
    assert!(valid.contains("TOTAL"), "{md}");
}
