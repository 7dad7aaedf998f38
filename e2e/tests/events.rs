//! The operator's event recorder against the real API server: repeats of
//! one type, reason and action about one object within the window are one
//! Event whose series counts them (a merge patch of `series` the API server
//! accepts); another reason or action is another Event.

use k8s_openapi::api::core::v1::ObjectReference;
use serde_json::Value;
use sluice_e2e::{Namespace, kubectl_ok};
use sluice_operator::events::{EventType, Recorder};

#[tokio::test]
async fn repeats_fold_into_one_event_series() {
    let ns = Namespace::create();
    kubectl_ok(&["-n", &ns.0, "create", "configmap", "subject"]);
    let uid = kubectl_ok(&[
        "-n",
        &ns.0,
        "get",
        "configmap",
        "subject",
        "-o",
        "jsonpath={.metadata.uid}",
    ]);
    let regarding = ObjectReference {
        api_version: Some("v1".into()),
        kind: Some("ConfigMap".into()),
        name: Some("subject".into()),
        namespace: Some(ns.0.clone()),
        uid: Some(uid.trim().to_owned()),
        ..Default::default()
    };
    let client = kube::Client::try_default().await.expect("a kubeconfig");
    let recorder = Recorder::new(client, "sluice-e2e", None);
    for _ in 0..3 {
        recorder
            .publish(
                EventType::Warning,
                "InvalidSpec",
                "Reconcile",
                "spec.functions[0].memoryMiB: 64 is below 128",
                &regarding,
            )
            .await
            .expect("published");
    }
    recorder
        .publish(
            EventType::Normal,
            "Created",
            "SQS::Queue q",
            "SQS::Queue q: Created",
            &regarding,
        )
        .await
        .expect("published");

    let events: Value = serde_json::from_str(&kubectl_ok(&[
        "-n",
        &ns.0,
        "get",
        "events.events.k8s.io",
        "-o",
        "json",
    ]))
    .expect("JSON");
    let items = events["items"].as_array().expect("a list");
    assert_eq!(items.len(), 2, "{items:#?}");
    let by_reason = |reason: &str| {
        items
            .iter()
            .find(|e| e["reason"] == reason)
            .unwrap_or_else(|| panic!("no {reason} event in {items:#?}"))
    };
    let stalled = by_reason("InvalidSpec");
    assert_eq!(stalled["series"]["count"], 3, "{stalled:#}");
    assert!(stalled["series"]["lastObservedTime"].is_string());
    assert_eq!(stalled["type"], "Warning");
    assert_eq!(stalled["reportingController"], "sluice-e2e");
    assert_eq!(stalled["regarding"]["uid"], uid.trim());
    let created = by_reason("Created");
    assert!(created["series"].is_null(), "{created:#}");
    assert_eq!(created["action"], "SQS::Queue q");
}
