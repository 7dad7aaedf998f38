//! The Argo CD health check (config/argocd/health.lua) under the Lua Argo
//! CD embeds (gopher-lua, run by e2e/tools/argocd-health as Argo CD runs a
//! check from argocd-cm), against every fixture of health_test.json: each
//! status Argo CD shows, from objects written by hand and objects captured
//! from e2e runs.

use std::path::Path;

use sluice_e2e::observability;

#[test]
fn every_fixture_gets_the_status_and_message_it_expects() {
    let cases = observability::argocd_cases();
    let files: Vec<&Path> = cases.iter().map(|(f, _, _)| f.as_path()).collect();
    let results = observability::argocd_health(&files);
    assert_eq!(results.len(), cases.len());
    let mut statuses = std::collections::BTreeSet::new();
    for ((file, status, message), (got_status, got_message)) in cases.iter().zip(&results) {
        assert_eq!(
            (got_status, got_message),
            (status, message),
            "{}",
            file.display()
        );
        statuses.insert(status.as_str());
    }
    assert_eq!(
        statuses.into_iter().collect::<Vec<_>>(),
        ["Degraded", "Healthy", "Progressing", "Suspended"],
        "every status the check can give has a fixture"
    );
    assert!(
        files.iter().any(|f| f
            .file_name()
            .is_some_and(|n| n.to_string_lossy().starts_with("captured-"))),
        "fixtures captured from an e2e run are among them"
    );
}
