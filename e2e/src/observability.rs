//! What the observability tests check, read from the files users install:
//! the Grafana dashboards (`config/grafana/`), the alert rules
//! (`config/prometheus/`) and the Argo CD health check (`config/argocd/`).

use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::repo_root;

/// One query of a dashboard panel.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PanelQuery {
    /// Dashboard file stem, e.g. `sluice-operator`.
    pub dashboard: String,
    /// Panel id.
    pub panel: u64,
    /// Panel title.
    pub title: String,
    /// Target refId.
    pub ref_id: String,
    /// PromQL with Grafana's variables.
    pub expr: String,
}

impl PanelQuery {
    /// Key of this query's data for `scripts/dashboards.py render`.
    pub fn key(&self) -> String {
        format!("{}/{}/{}", self.dashboard, self.panel, self.ref_id)
    }
}

/// The dashboards' JSON files.
pub fn dashboard_files() -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(repo_root().join("config/grafana"))
        .expect("config/grafana")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    files.sort();
    files
}

/// Every query of every panel of every dashboard.
pub fn dashboard_queries() -> Vec<PanelQuery> {
    let mut out = Vec::new();
    for file in dashboard_files() {
        let board: Value =
            serde_json::from_str(&std::fs::read_to_string(&file).expect("dashboard"))
                .expect("dashboard JSON");
        let stem = file
            .file_stem()
            .and_then(|s| s.to_str())
            .expect("name")
            .to_owned();
        for panel in board["panels"].as_array().expect("panels") {
            for target in panel["targets"].as_array().expect("targets") {
                out.push(PanelQuery {
                    dashboard: stem.clone(),
                    panel: panel["id"].as_u64().expect("panel id"),
                    title: panel["title"].as_str().expect("title").to_owned(),
                    ref_id: target["refId"].as_str().expect("refId").to_owned(),
                    expr: target["expr"].as_str().expect("expr").to_owned(),
                });
            }
        }
    }
    out
}

/// Grafana's variables replaced by values, longest names first (`$__range`
/// before `$__rate_interval` would not matter, `$pipeline` before `$p`
/// would).
pub fn substitute(expr: &str, vars: &[(&str, &str)]) -> String {
    let mut vars = vars.to_vec();
    vars.sort_by_key(|(k, _)| std::cmp::Reverse(k.len()));
    let mut out = expr.to_owned();
    for (k, v) in vars {
        out = out
            .replace(&format!("${{{k}}}"), v)
            .replace(&format!("${k}"), v);
    }
    out
}

/// The PrometheusRule of the alerts.
pub fn rule_file() -> PathBuf {
    repo_root().join("config/prometheus/sluice-rules.yaml")
}

/// `spec` of the PrometheusRule: a Prometheus rule file.
pub fn rule_groups() -> serde_yaml::Value {
    let doc: serde_yaml::Value =
        serde_yaml::from_str(&std::fs::read_to_string(rule_file()).expect("rules"))
            .expect("rules YAML");
    assert_eq!(doc["kind"].as_str(), Some("PrometheusRule"));
    doc["spec"].clone()
}

/// Writes the rule groups as a rule file `rules.yaml` in `dir`.
pub fn write_rule_file(dir: &Path) -> PathBuf {
    let path = dir.join("rules.yaml");
    std::fs::write(
        &path,
        serde_yaml::to_string(&rule_groups()).expect("rules YAML"),
    )
    .expect("write rules");
    path
}

/// `(alert name, expression)` of every alert.
pub fn alerts() -> Vec<(String, String)> {
    let groups = rule_groups();
    let mut out = Vec::new();
    for group in groups["groups"].as_sequence().expect("groups") {
        for rule in group["rules"].as_sequence().expect("rules") {
            if let (Some(alert), Some(expr)) = (rule["alert"].as_str(), rule["expr"].as_str()) {
                out.push((alert.to_owned(), expr.trim().to_owned()));
            }
        }
    }
    out
}

/// The metric names a PromQL expression reads: Sluice's (`sluice_…`) and
/// Prometheus's own `up`.
pub fn metric_names(expr: &str) -> Vec<String> {
    let mut names = Vec::new();
    let mut word = String::new();
    for c in expr.chars().chain(std::iter::once(' ')) {
        if c.is_ascii_alphanumeric() || c == '_' || c == ':' {
            word.push(c);
            continue;
        }
        // A label name (followed by `=`, `!=`, `=~`) or a function is not a
        // metric: only `sluice_` names and `up` followed by a selector are.
        if (word.starts_with("sluice_") || (word == "up" && c == '{')) && !names.contains(&word) {
            names.push(word.clone());
        }
        word.clear();
    }
    names
}

/// `(inputPath, status, message)` of every case of the Argo CD health
/// check's `health_test.json`.
pub fn argocd_cases() -> Vec<(PathBuf, String, String)> {
    let dir = repo_root().join("config/argocd");
    let doc: Value = serde_json::from_str(
        &std::fs::read_to_string(dir.join("health_test.json")).expect("health_test.json"),
    )
    .expect("JSON");
    doc["tests"]
        .as_array()
        .expect("tests")
        .iter()
        .map(|t| {
            (
                dir.join(t["inputPath"].as_str().expect("inputPath")),
                t["healthStatus"]["status"]
                    .as_str()
                    .expect("status")
                    .to_owned(),
                t["healthStatus"]["message"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned(),
            )
        })
        .collect()
}

/// Runs the Argo CD health check on objects (JSON files) with
/// `argocd-health`: `(status, message)` of each.
pub fn argocd_health(files: &[&Path]) -> Vec<(String, String)> {
    let bin = crate::tool("SLUICE_ARGOCD_HEALTH", "argocd-health");
    let out = std::process::Command::new(bin)
        .arg(repo_root().join("config/argocd/health.lua"))
        .args(files)
        .output()
        .expect("argocd-health runs");
    assert!(
        out.status.success(),
        "argocd-health failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| {
            let r: Value = serde_json::from_str(l).expect("result JSON");
            (
                r["status"].as_str().expect("status").to_owned(),
                r["message"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_dashboard_panel_has_a_query_and_the_pipeline_board_its_variables() {
        let queries = dashboard_queries();
        assert!(queries.len() >= 15, "{}", queries.len());
        for q in queries.iter().filter(|q| q.dashboard == "sluice-pipeline") {
            assert!(
                q.expr
                    .contains(r#"namespace="$namespace", pipeline="$pipeline""#),
                "{}: {}",
                q.title,
                q.expr
            );
        }
    }

    #[test]
    fn metric_names_are_told_from_labels_and_functions() {
        assert_eq!(
            metric_names(
                r#"sum by (service) (rate(sluice_aws_errors_total{class="throttled"}[5m])) / sum(rate(sluice_aws_requests_total[5m]))"#
            ),
            ["sluice_aws_errors_total", "sluice_aws_requests_total"]
        );
        assert_eq!(
            metric_names(r#"absent(up{job="sluice-operator"} == 1)"#),
            ["up"]
        );
        assert_eq!(
            substitute(
                "rate(x{pipeline=\"$pipeline\"}[$__rate_interval]) ${prefix}",
                &[
                    ("pipeline", "p"),
                    ("__rate_interval", "30s"),
                    ("prefix", "s")
                ]
            ),
            "rate(x{pipeline=\"p\"}[30s]) s"
        );
    }

    #[test]
    fn every_alert_has_a_runbook_section() {
        let runbooks = std::fs::read_to_string(repo_root().join("docs/runbooks.md"))
            .expect("docs/runbooks.md");
        let alerts = alerts();
        assert_eq!(alerts.len(), 6);
        for (alert, _) in alerts {
            assert!(
                runbooks.contains(&format!("## {alert}")),
                "docs/runbooks.md has no section ## {alert}"
            );
        }
    }
}
