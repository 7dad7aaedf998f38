//! AWS refusing a value (a permanent client error, here SQS's
//! `InvalidAttributeValue` answered once by the harness to CreateQueue)
//! stalls the pipeline with reason `AWSRejected` and AWS's message, naming
//! the resource; the same spec is not sent again (the refusal was one-shot,
//! so a retry would succeed); a spec change tries again and converges.

use std::time::Duration;

use sluice_e2e::{
    Namespace, Operator, condition, delete_pipeline, flow::harness, flow::url_encode, get_pipeline,
    install_crd, kubectl, kubectl_stdin_ok,
};

const MESSAGE: &str = "Invalid value for the parameter MessageRetentionPeriod.";

fn manifest(retention: u32) -> String {
    format!(
        "apiVersion: sluice.dev/v1alpha1\nkind: DataPipeline\nmetadata:\n  name: refused\nspec:\n  \
         queues: [{{name: work, retentionSeconds: {retention}}}]\n"
    )
}

fn wait_for(ns: &str, condition: &str, op: &Operator) {
    let out = kubectl(&[
        "wait",
        "-n",
        ns,
        &format!("--for=condition={condition}"),
        "dp/refused",
        "--timeout=120s",
    ]);
    assert!(
        out.status.success(),
        "not {condition}: {:#}\n{}",
        get_pipeline(ns, "refused")["status"],
        op.log_tail()
    );
}

#[test]
fn a_value_aws_refuses_stalls_the_pipeline_until_the_spec_changes() {
    install_crd();
    let ns = Namespace::create();
    let op = Operator::start(&ns.0);
    harness(
        "POST",
        &format!(
            "refuse?target=AmazonSQS.CreateQueue&match={}&code=InvalidAttributeValue&message={}",
            url_encode(&ns.0),
            url_encode(MESSAGE)
        ),
    );
    kubectl_stdin_ok(&["apply", "-n", &ns.0, "-f", "-"], &manifest(345_600));
    wait_for(&ns.0, "Stalled", &op);
    let dp = get_pipeline(&ns.0, "refused");
    let stalled = condition(&dp, "Stalled").expect("Stalled");
    assert_eq!(stalled["reason"], "AWSRejected", "{stalled:#}");
    let message = stalled["message"].as_str().expect("message");
    assert!(
        message.contains("SQS::Queue work")
            && message.contains("InvalidAttributeValue")
            && message.contains(MESSAGE),
        "{message}"
    );

    // Not sent again: past the 15 s an error is retried after, the
    // one-shot refusal would have let a retry through.
    std::thread::sleep(Duration::from_secs(20));
    let dp = get_pipeline(&ns.0, "refused");
    assert_eq!(
        condition(&dp, "Stalled").map(|c| c["reason"].clone()),
        Some("AWSRejected".into()),
        "{:#}",
        dp["status"]
    );
    assert_ne!(
        condition(&dp, "Ready").map(|c| &c["status"]),
        Some(&"True".into())
    );

    // Nor by the next operator (a restart, a new leader): the refused
    // plan's digest is in status. It reconciles the pipeline, finds the
    // plan AWS refused, and writes nothing to AWS.
    assert!(
        dp["status"]["rejectedPlan"]
            .as_str()
            .is_some_and(|d| !d.is_empty()),
        "{:#}",
        dp["status"]
    );
    let prefix = op.prefix.clone();
    drop(op);
    let op = Operator::start_with(&[&ns.0], &[("SLUICE_NAME_PREFIX", prefix.as_str())]);
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while op.counter("sluice_reconciles_total", "outcome=\"stalled\"") == 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "the new operator never reconciled the pipeline:\n{}",
            op.log_tail()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_eq!(op.aws_writes(), 0, "{:?}", op.aws_calls());
    let dp = get_pipeline(&ns.0, "refused");
    assert_eq!(
        condition(&dp, "Stalled").map(|c| c["reason"].clone()),
        Some("AWSRejected".into()),
        "{:#}",
        dp["status"]
    );

    // A spec change tries again.
    kubectl_stdin_ok(&["apply", "-n", &ns.0, "-f", "-"], &manifest(86_400));
    wait_for(&ns.0, "Ready", &op);
    delete_pipeline(&ns.0, "refused", &op);
}
