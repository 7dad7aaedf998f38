//! The API server restarts (as a control-plane upgrade restarts it): killed
//! and started again after 10 s, while the operator stays up. A pipeline
//! applied right after it is back (retried while the API server's own
//! admission is still warming up) converges within 5 s of being accepted: the operator's
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
    Namespace, Operator, apply_and_wait, delete_pipeline, get_pipeline, install_crd, kubectl_stdin,
    repo_root, sample_manifest, sdk,
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

    // Right after it is back, as a user (or Argo CD) would. The API
    // server's own admission may refuse it for a while: the guardrails'
    // ValidatingAdmissionPolicy takes SluicePolicies as parameters, and
    // until the API server has discovered that CRD again (up to about 30 s
    // seen here) it answers "failed to find resource referenced by
    // paramKind". Clients retry; so does this test. The operator's part is
    // what follows acceptance.
    let back = Instant::now();
    let manifest = sample_manifest("event-triggered.yaml");
    let accepted = loop {
        let out = kubectl_stdin(&["apply", "-n", &ns.0, "-f", "-"], &manifest);
        if out.status.success() {
            break Instant::now();
        }
        assert!(
            back.elapsed() < Duration::from_secs(90),
            "the API server refused the pipeline for 90 s: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    println!(
        "the API server accepted the pipeline {:?} after it was ready",
        accepted - back
    );
    // Applying it again changes nothing; this waits for Ready.
    apply_and_wait(&ns.0, "event-triggered", &manifest, "Ready", &op);
    let took = accepted.elapsed();
    println!(
        "pipeline applied right after the restart: Ready {took:?} after the API server accepted it"
    );
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
