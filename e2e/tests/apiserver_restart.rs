//! The API server restarts (as a control-plane upgrade restarts it): killed
//! and started again after 10 s, while the operator stays up. A pipeline
//! applied right after it is back converges within 5 s: the operator's
//! watches retry within 2 s, not kube's 30 s backoff, and its leader, cut
//! off past the renew deadline, takes its own Lease back at once. Its own
//! test binary: nothing else may run while the API server is down. Needs
//! the local environment's directory (`SLUICE_ENV_DIR`) and the operator's
//! image.

use std::{
    process::Command,
    time::{Duration, Instant},
};

use sluice_e2e::{
    Namespace, Operator, apply_and_wait, delete_pipeline, get_pipeline, install_crd, repo_root,
    sample_manifest, sdk,
};

#[tokio::test(flavor = "multi_thread")]
async fn a_pipeline_applied_right_after_an_api_server_restart_converges_within_5_s() {
    let dir = std::env::var("SLUICE_ENV_DIR")
        .expect("SLUICE_ENV_DIR: the local environment (scripts/localenv.sh up) to restart");
    install_crd();
    let ns = Namespace::create();
    let op = Operator::start(&ns.0);
    let pod = op.pod().expect("the operator runs as a pod");
    let leader = pod.lease_holder().expect("a leader");

    let down = Instant::now();
    let restarted = Command::new(repo_root().join("scripts/localenv.sh"))
        .args(["restart-apiserver", &dir, "10"])
        .status()
        .expect("localenv.sh runs");
    assert!(restarted.success(), "the API server did not come back");
    println!("API server down and back in {:?}", down.elapsed());

    // Right after it is back, as a user (or Argo CD) would.
    let took = apply_and_wait(
        &ns.0,
        "event-triggered",
        &sample_manifest("event-triggered.yaml"),
        "Ready",
        &op,
    );
    println!("pipeline applied right after the restart: Ready in {took:?}");
    assert!(
        took < Duration::from_secs(5),
        "Ready after {took:?}:\n{}",
        op.log_tail()
    );
    // The same pod leads (it took its Lease back) and was not restarted.
    assert_eq!(pod.lease_holder().as_deref(), Some(leader.as_str()));
    let running = pod.running_pod().expect("the operator pod");
    assert_eq!(
        running["status"]["containerStatuses"][0]["restartCount"], 0,
        "{running:#}"
    );

    let dp = get_pipeline(&ns.0, "event-triggered");
    let sdk = sdk().await;
    sluice_e2e::flow::empty_buckets(&sluice_e2e::s3(&sdk), &dp).await;
    delete_pipeline(&ns.0, "event-triggered", &op);
    sluice_e2e::assert_nothing_left(&sdk, &op.prefix).await;
}
