//! The alert rules as Prometheus reads them: `promtool check rules` on the
//! PrometheusRule's spec and `promtool test rules` on the unit tests of
//! every alert (config/prometheus/tests/).

use std::process::Command;

use sluice_e2e::{observability, repo_root, token, tool};

fn promtool(args: &[&str]) -> String {
    let out = Command::new(tool("SLUICE_PROMTOOL", "promtool"))
        .args(args)
        .output()
        .expect("promtool runs");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "promtool {}:\n{text}", args.join(" "));
    text
}

#[test]
fn the_rules_load_and_every_alert_fires_when_it_should_and_only_then() {
    let dir = std::env::temp_dir().join(format!("sluice-rules-{}", token()));
    std::fs::create_dir_all(&dir).expect("dir");
    let rules = observability::write_rule_file(&dir);
    let checked = promtool(&["check", "rules", rules.to_str().expect("path")]);
    assert!(checked.contains("SUCCESS: 6 rules found"), "{checked}");

    let tests_dir = repo_root().join("config/prometheus/tests");
    let mut tested = Vec::new();
    for entry in std::fs::read_dir(&tests_dir).expect("tests") {
        let path = entry.expect("entry").path();
        let copy = dir.join(path.file_name().expect("name"));
        std::fs::copy(&path, &copy).expect("copy");
        let text = std::fs::read_to_string(&path).expect("test file");
        for (alert, _) in observability::alerts() {
            if text.contains(&format!("alertname: {alert}")) && !tested.contains(&alert) {
                tested.push(alert);
            }
        }
        let out = promtool(&["test", "rules", copy.to_str().expect("path")]);
        assert!(out.contains("SUCCESS"), "{out}");
    }
    let mut untested: Vec<String> = observability::alerts()
        .into_iter()
        .map(|(a, _)| a)
        .filter(|a| !tested.contains(a))
        .collect();
    untested.sort();
    assert!(
        untested.is_empty(),
        "alerts without a promtool test: {untested:?}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
