//! The Helm chart (`charts/sluice`) as helm and the API server see it:
//! `helm lint --strict` and `helm template` with each values file of
//! `charts/sluice/ci/`, every rendered object accepted by a server-side dry
//! run (in a namespace enforcing Pod Security `restricted`), and the values
//! the schema or the templates must refuse refused with a message naming
//! the value. Needs `SLUICE_HELM` and a kube-apiserver (`KUBECONFIG`).

use std::collections::BTreeMap;

use serde_yaml::Value;
use sha2::Digest;
use sluice_e2e::{
    Namespace, chart_dir, helm, helm_ok, install_crd, install_third_party_crds, kubectl_ok,
    kubectl_stdin, yaml_documents,
};

/// The values files of `charts/sluice/ci/`.
fn values_files() -> Vec<std::path::PathBuf> {
    let mut files: Vec<_> = std::fs::read_dir(chart_dir().join("ci"))
        .expect("charts/sluice/ci")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    assert!(files.len() >= 4, "{files:?}");
    files
}

/// `helm template` of the chart into `namespace` with `args`.
fn render(namespace: &str, args: &[&str]) -> String {
    let chart = chart_dir();
    let mut all = vec![
        "template",
        "sluice",
        chart.to_str().expect("path"),
        "--namespace",
        namespace,
    ];
    all.extend_from_slice(args);
    helm_ok(&all)
}

#[test]
fn every_values_file_lints_strictly_and_renders_objects_the_api_server_accepts() {
    install_crd();
    // prometheus-operator's CRDs, as its Go module publishes them, so the
    // API server validates the ServiceMonitor and PrometheusRule too.
    install_third_party_crds();
    let ns = Namespace::create();
    kubectl_ok(&[
        "label",
        "namespace",
        &ns.0,
        "pod-security.kubernetes.io/enforce=restricted",
        "pod-security.kubernetes.io/warn=restricted",
    ]);
    let team = Namespace::create();
    let chart = chart_dir();
    let mut counts = BTreeMap::new();
    for file in values_files() {
        let name = file.file_name().and_then(|n| n.to_str()).expect("name");
        let values = file.to_str().expect("path");
        let lint = helm_ok(&[
            "lint",
            "--strict",
            chart.to_str().expect("path"),
            "-f",
            values,
        ]);
        assert!(lint.contains("0 chart(s) failed"), "{name}: {lint}");
        // The namespaced file's watched namespaces, made real here.
        let watched = format!("watchNamespaces={{{},{}}}", ns.0, team.0);
        let mut args = vec!["-f", values];
        if name.starts_with("namespaced") {
            args.extend(["--set", &watched]);
        }
        let rendered = render(&ns.0, &args);
        let objects = yaml_documents(&rendered);
        counts.insert(name.to_owned(), objects.len());
        let stream: String = objects
            .iter()
            .map(|o| format!("---\n{}", serde_yaml::to_string(o).expect("YAML")))
            .collect();
        let out = kubectl_stdin(
            &[
                "apply",
                "--server-side",
                "--force-conflicts",
                "--field-manager=chart-dry-run",
                "--dry-run=server",
                "-f",
                "-",
            ],
            &stream,
        );
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            out.status.success(),
            "{name}: the API server refused objects:\n{stderr}"
        );
        assert_eq!(
            String::from_utf8_lossy(&out.stdout).lines().count(),
            objects.len(),
            "{name}: one line per object accepted"
        );
        // Pod Security "restricted" (warn=restricted): no warning.
        assert!(
            !stderr.contains("PodSecurity"),
            "{name}: the operator's pod would violate restricted:\n{stderr}"
        );
    }
    println!("rendered objects per values file: {counts:?}");
}

#[test]
fn what_the_chart_renders_follows_its_values() {
    // Cluster mode: a ClusterRole bound cluster-wide, no Role elsewhere.
    let default = yaml_documents(&render(
        "sluice-system",
        &["-f", &values_path("default-values.yaml")],
    ));
    let kinds = |objects: &[Value]| -> Vec<String> {
        objects
            .iter()
            .map(|o| {
                format!(
                    "{}/{}",
                    o["kind"].as_str().unwrap_or_default(),
                    o["metadata"]["name"].as_str().unwrap_or_default()
                )
            })
            .collect()
    };
    let default_kinds = kinds(&default);
    for expected in [
        "ClusterRole/sluice-operator",
        "ClusterRoleBinding/sluice-operator",
        "ClusterRole/sluice-operator-guardrails",
        "Role/sluice-operator-leader-election",
        "Deployment/sluice-operator",
        "PodDisruptionBudget/sluice-operator",
        "SluicePolicy/default",
        "ValidatingAdmissionPolicy/sluice-pipeline-guardrails",
        "ValidatingAdmissionPolicy/sluice-status-writer",
        "ValidatingAdmissionPolicyBinding/sluice-operator-status-writer",
        "ValidatingAdmissionPolicy/sluice-free-form-depth",
        "ValidatingAdmissionPolicyBinding/sluice-free-form-depth",
    ] {
        assert!(
            default_kinds.iter().any(|k| k == expected),
            "{expected} missing from {default_kinds:?}"
        );
    }
    let deployment = default
        .iter()
        .find(|o| o["kind"] == "Deployment")
        .expect("Deployment");
    assert_eq!(deployment["spec"]["replicas"], 2);
    assert_eq!(deployment["spec"]["strategy"]["type"], "RollingUpdate");
    let env: BTreeMap<String, String> =
        deployment["spec"]["template"]["spec"]["containers"][0]["env"]
            .as_sequence()
            .expect("env")
            .iter()
            .filter_map(|e| {
                Some((
                    e["name"].as_str()?.to_owned(),
                    e["value"].as_str()?.to_owned(),
                ))
            })
            .collect();
    assert_eq!(env["SLUICE_LEADER_ELECTION"], "true");
    assert_eq!(env["SLUICE_LEASE_NAME"], "sluice-operator");
    assert!(!env.contains_key("SLUICE_WATCH_NAMESPACES"), "{env:?}");

    // The installation id's checksum annotation is a string whatever its
    // hex digits spell: this id's first sixteen are `136409788e866626`,
    // which YAML reads as a float unless quoted, and the API server then
    // refuses the Deployment (about one id in a thousand does this).
    let id = "installation-id-02247";
    let checksum = &hex::encode(sha2::Sha256::digest(id))[..16];
    assert!(
        checksum.parse::<f64>().is_ok(),
        "{checksum} must look numeric"
    );
    let with_id = yaml_documents(&render(
        "sluice-system",
        &[
            "-f",
            &values_path("default-values.yaml"),
            "--set",
            &format!("installation.id={id}"),
        ],
    ));
    let annotations = &with_id
        .iter()
        .find(|o| o["kind"] == "Deployment")
        .expect("Deployment")["spec"]["template"]["metadata"]["annotations"];
    assert_eq!(
        annotations["checksum/installation"].as_str(),
        Some(checksum),
        "{annotations:?}"
    );

    // Namespaced mode: a Role and RoleBinding per watched namespace, no
    // cluster-wide binding of the pipelines' rights, the status writer
    // bound in those namespaces only, no cluster-scoped shared objects.
    let namespaced = yaml_documents(&render(
        "sluice-teams",
        &["-f", &values_path("namespaced-values.yaml")],
    ));
    let namespaced_kinds = kinds(&namespaced);
    for watched in ["team-a", "team-b"] {
        assert_eq!(
            namespaced
                .iter()
                .filter(|o| o["metadata"]["namespace"] == watched)
                .count(),
            2,
            "{watched}: {namespaced_kinds:?}"
        );
    }
    assert!(
        !namespaced_kinds
            .iter()
            .any(|k| k == "ClusterRoleBinding/sluice-operator"
                || k.starts_with("ValidatingAdmissionPolicy/")
                || k.starts_with("SluicePolicy/")),
        "{namespaced_kinds:?}"
    );
    let binding = namespaced
        .iter()
        .find(|o| o["kind"] == "ValidatingAdmissionPolicyBinding")
        .expect("status-writer binding");
    assert_eq!(
        binding["spec"]["matchResources"]["namespaceSelector"]["matchExpressions"][0]["values"],
        serde_yaml::to_value(["team-a", "team-b"]).expect("YAML")
    );

    // The observability file: the PrometheusRule is the promtool-tested
    // file's rules, the dashboards ConfigMap holds exactly the dashboards,
    // the CRDs are templated and kept on uninstall.
    let observed = yaml_documents(&render(
        "sluice-system",
        &["-f", &values_path("observability-values.yaml")],
    ));
    let rule = observed
        .iter()
        .find(|o| o["kind"] == "PrometheusRule")
        .expect("PrometheusRule");
    let file: Value = serde_yaml::from_str(
        &std::fs::read_to_string(chart_dir().join("files/prometheus/sluice-rules.yaml"))
            .expect("rules"),
    )
    .expect("rules YAML");
    assert_eq!(rule["spec"], file["spec"]);
    assert_eq!(
        rule["metadata"]["labels"]["release"],
        "kube-prometheus-stack"
    );
    let dashboards = observed
        .iter()
        .find(|o| o["kind"] == "ConfigMap")
        .expect("dashboards ConfigMap");
    assert_eq!(dashboards["metadata"]["labels"]["grafana_dashboard"], "1");
    let data = dashboards["data"].as_mapping().expect("data");
    let dir = chart_dir().join("files/dashboards");
    let files: Vec<_> = std::fs::read_dir(&dir)
        .expect("dashboards")
        .map(|e| e.expect("entry").path())
        .collect();
    assert_eq!(data.len(), files.len());
    for path in files {
        let name = path.file_name().and_then(|n| n.to_str()).expect("name");
        let embedded: serde_json::Value =
            serde_json::from_str(data[name].as_str().expect("entry")).expect("JSON");
        let on_disk: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&path).expect("file")).expect("JSON");
        assert!(embedded == on_disk, "{name} differs in the ConfigMap");
    }
    let crds: Vec<_> = observed
        .iter()
        .filter(|o| o["kind"] == "CustomResourceDefinition")
        .collect();
    assert_eq!(crds.len(), 2);
    for crd in crds {
        assert_eq!(
            crd["metadata"]["annotations"]["helm.sh/resource-policy"],
            "keep"
        );
    }
    assert!(observed.iter().any(|o| o["kind"] == "NetworkPolicy"));
}

fn values_path(file: &str) -> String {
    chart_dir()
        .join("ci")
        .join(file)
        .to_string_lossy()
        .into_owned()
}

#[test]
fn values_the_chart_cannot_run_with_are_refused_naming_the_value() {
    let base = values_path("default-values.yaml");
    let chart = chart_dir();
    let refused = |set: &[&str], expected: &str| {
        let mut args = vec![
            "template",
            "sluice",
            chart.to_str().expect("path"),
            "-f",
            &base,
        ];
        for s in set {
            args.extend(["--set", s]);
        }
        let out = helm(&args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{set:?} was accepted");
        assert!(
            stderr.contains(expected),
            "{set:?}: expected {expected:?} in:\n{stderr}"
        );
    };
    // The schema: unknown keys (a typo) and wrong types or formats, each
    // refusal naming the value by its path (helm 3 writes "- PATH: why").
    refused(
        &["replicas=2"],
        "- (root): Additional property replicas is not allowed",
    );
    refused(
        &["leaderElection.enable=true"],
        "- leaderElection: Additional property enable is not allowed",
    );
    refused(
        &["replicaCount=two"],
        "- replicaCount: Invalid type. Expected: integer",
    );
    refused(
        &["namePrefix=Team_A"],
        "- namePrefix: Does not match pattern",
    );
    refused(
        &["watchNamespaces[0]=Team_A"],
        "- watchNamespaces.0: Does not match pattern",
    );
    refused(
        &["image.digest=latest"],
        "- image.digest: Does not match pattern",
    );
    refused(
        &["aws.permissionsBoundary=AdministratorAccess"],
        "- aws.permissionsBoundary: Does not match pattern",
    );
    refused(
        &["aws.region=Ireland"],
        "- aws.region: Does not match pattern",
    );
    refused(
        &["aws.quotaShare=2"],
        "- aws.quotaShare: Must be less than or equal to 1",
    );
    refused(
        &["reconcile.resyncReadShare=0"],
        "- reconcile.resyncReadShare: Must be greater than 0",
    );
    refused(
        &["aws.accountRoles[0]=arn:aws:iam::123456789012:user/admin"],
        "- aws.accountRoles.0: Does not match pattern",
    );
    refused(
        &["aws.accountSessionSeconds=600"],
        "- aws.accountSessionSeconds: Must be greater than or equal to 900",
    );
    refused(&["installation.id=short"], "- installation.id: ");
    refused(
        &["health.windowSeconds=90"],
        "- health.windowSeconds: Must be a multiple of 60",
    );
    refused(
        &["log.format=xml"],
        "- log.format: log.format must be one of the following",
    );
    // The templates: what needs two values at once, and what is required.
    refused(
        &["leaderElection.enabled=false"],
        "need leaderElection.enabled: true",
    );
    refused(
        &["leaderElection.renewDeadlineSeconds=14"],
        "renewDeadlineSeconds (14) must be less than leaseDurationSeconds (15) by at least 2 s",
    );
    refused(
        &["leaderElection.retryPeriodSeconds=6"],
        "retryPeriodSeconds (6) must be at most half of renewDeadlineSeconds (10)",
    );
    refused(
        &["leaderElection.shards=0"],
        "- leaderElection.shards: Must be greater than or equal to 1",
    );
    refused(
        &[
            "leaderElection.enabled=false",
            "replicaCount=1",
            "leaderElection.shards=3",
        ],
        "3 shards need leaderElection.enabled: true",
    );
    refused(
        &["aws.requireAccountRole=true"],
        "aws.requireAccountRole: true needs aws.accountRoles",
    );
    refused(
        &["aws.permissionsBoundary="],
        "aws.permissionsBoundary is required",
    );
    // And the smallest valid change is accepted (the refusals above are
    // about the value, not the file).
    helm_ok(&[
        "template",
        "sluice",
        chart.to_str().expect("path"),
        "-f",
        &base,
        "--set",
        "replicaCount=1",
        "--set",
        "leaderElection.enabled=false",
    ]);
}

#[test]
fn every_values_file_gives_the_operator_a_configuration_it_accepts() {
    for file in values_files() {
        let name = file.file_name().and_then(|n| n.to_str()).expect("name");
        let rendered = yaml_documents(&render(
            "sluice-system",
            &["-f", file.to_str().expect("path")],
        ));
        let deployment = rendered
            .iter()
            .find(|o| o["kind"] == "Deployment")
            .expect("Deployment");
        // The environment as the kubelet gives it: literal values, the
        // pod's own fields, and a stand-in for the Secret's installation id.
        let env: BTreeMap<String, String> = deployment["spec"]["template"]["spec"]["containers"][0]
            ["env"]
            .as_sequence()
            .expect("env")
            .iter()
            .map(|e| {
                let key = e["name"].as_str().expect("name").to_owned();
                let value = match &e["value"] {
                    Value::String(v) => v.clone(),
                    _ if e["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.name" => {
                        "sluice-operator-5d8f-x1".into()
                    }
                    _ if e["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.namespace" => {
                        "sluice-system".into()
                    }
                    _ if e["valueFrom"]["secretKeyRef"]["key"] == "id" => {
                        "0123456789abcdef0123456789abcdef".into()
                    }
                    other => panic!("{name}: {key} = {other:?}"),
                };
                (key, value)
            })
            .collect();
        let config = sluice_operator::config::OperatorConfig::from_lookup(
            |k| env.get(k).cloned(),
            Some("us-east-1".into()),
        )
        .unwrap_or_else(|e| panic!("{name}: the operator refuses {e}"));
        let election = sluice_operator::config::LeaderElection::from_lookup(
            |k| env.get(k).cloned(),
            None,
            || "host".into(),
        )
        .unwrap_or_else(|e| panic!("{name}: the operator refuses {e}"));
        // What the values said is what the operator runs with.
        let values: Value =
            serde_yaml::from_str(&std::fs::read_to_string(&file).expect("values")).expect("YAML");
        if let Some(prefix) = values["namePrefix"].as_str() {
            assert_eq!(config.name_prefix, prefix, "{name}");
        }
        if let Some(watched) = values["watchNamespaces"].as_sequence() {
            assert_eq!(config.watch_namespaces.len(), watched.len(), "{name}");
        }
        let election = election.expect("leader election on");
        assert_eq!(election.lease_namespace, "sluice-system", "{name}");
        assert_eq!(election.identity, "sluice-operator-5d8f-x1", "{name}");
        assert_eq!(election.lease_name, "sluice-operator", "{name}");
    }
}
