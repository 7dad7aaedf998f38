//! A rule may target the dead-letter queue Sluice creates for a queue
//! (`<queue>-dlq`): it gets the same queue policy as any queue a rule
//! targets, so EventBridge's deliveries are allowed (the harness enforces
//! queue policies, as AWS does) and the event arrives.

use std::time::{Duration, Instant};

use sluice_e2e::{
    Namespace, Operator, apply_and_wait, delete_pipeline, get_pipeline, id_of, install_crd, sdk,
};

const MANIFEST: &str = r#"apiVersion: sluice.dev/v1alpha1
kind: DataPipeline
metadata:
  name: dlq-target
spec:
  eventBuses: [{name: bus}]
  queues:
    - name: work
      deadLetter: {maxReceiveCount: 3}
  rules:
    - name: to-dlq
      eventBus: bus
      pattern: {detail-type: [dlq-test]}
      targets: [{queue: work-dlq}]
"#;

#[tokio::test(flavor = "multi_thread")]
async fn a_rule_targeting_a_generated_dead_letter_queue_delivers() {
    install_crd();
    let ns = Namespace::create();
    let op = Operator::start(&ns.0);
    apply_and_wait(&ns.0, "dlq-target", MANIFEST, "Ready", &op);
    let dp = get_pipeline(&ns.0, "dlq-target");
    let bus = id_of(&dp, "Events::EventBus", "bus");
    let dlq = id_of(&dp, "SQS::Queue", "work-dlq");

    let sdk = sdk().await;
    let (events, sqs) = (
        aws_sdk_eventbridge::Client::new(&sdk),
        aws_sdk_sqs::Client::new(&sdk),
    );
    let url = sqs
        .get_queue_url()
        .queue_name(&dlq)
        .send()
        .await
        .expect("queue url")
        .queue_url()
        .expect("url")
        .to_owned();
    let policy = sqs
        .get_queue_attributes()
        .queue_url(&url)
        .attribute_names(aws_sdk_sqs::types::QueueAttributeName::Policy)
        .send()
        .await
        .expect("attributes");
    assert!(
        policy
            .attributes()
            .is_some_and(|a| a.contains_key(&aws_sdk_sqs::types::QueueAttributeName::Policy)),
        "the generated dead-letter queue a rule targets has no queue policy"
    );

    // The rule matches the pipeline's own events: their source is in the
    // pattern Sluice wrote.
    let rules = events
        .list_rules()
        .event_bus_name(&bus)
        .send()
        .await
        .expect("rules");
    let pattern: serde_json::Value =
        serde_json::from_str(rules.rules()[0].event_pattern().expect("pattern"))
            .expect("pattern JSON");
    let source = pattern["source"][0].as_str().expect("source").to_owned();
    let put = events
        .put_events()
        .entries(
            aws_sdk_eventbridge::types::PutEventsRequestEntry::builder()
                .event_bus_name(&bus)
                .source(source)
                .detail_type("dlq-test")
                .detail(r#"{"n": 1}"#)
                .build(),
        )
        .send()
        .await
        .expect("put events");
    assert_eq!(put.failed_entry_count(), 0);

    let started = Instant::now();
    let mut received = 0;
    while received == 0 && started.elapsed() < Duration::from_secs(30) {
        received = sqs
            .receive_message()
            .queue_url(&url)
            .wait_time_seconds(1)
            .send()
            .await
            .expect("receive")
            .messages()
            .len();
    }
    assert_eq!(received, 1, "the event never reached {dlq}");
    delete_pipeline(&ns.0, "dlq-target", &op);
}
