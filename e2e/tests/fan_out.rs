//! Pattern 2 end to end: the fan-out sample applied with kubectl, converged
//! by the operator binary into the AWS emulator, checked against the
//! article's stack through the AWS SDK, routed, drift-corrected, shrunk and
//! deleted.

use std::collections::{BTreeMap, BTreeSet};

use aws_sdk_sqs::types::QueueAttributeName;
use serde_json::{Value, json};
use sluice_e2e::flow::invocations;
use sluice_e2e::{
    Namespace, Operator, apply_and_wait, assert_nothing_left, calls_between, delete_pipeline,
    get_pipeline, id_of, ids, install_crd, manifest_as_json, poke_and_wait, sample_manifest, sdk,
};

const NAME: &str = "fan-out";

async fn queue_attributes(sqs: &aws_sdk_sqs::Client, name: &str) -> BTreeMap<String, String> {
    let url = sqs
        .get_queue_url()
        .queue_name(name)
        .send()
        .await
        .unwrap_or_else(|e| panic!("queue {name}: {e:?}"))
        .queue_url()
        .expect("url")
        .to_owned();
    sqs.get_queue_attributes()
        .queue_url(url)
        .attribute_names(QueueAttributeName::All)
        .send()
        .await
        .expect("attributes")
        .attributes()
        .expect("attributes")
        .iter()
        .map(|(k, v)| (k.as_str().to_owned(), v.clone()))
        .collect()
}

/// How many times something arrived on a route (the queue `type-X` and its
/// processor): messages in the queue or its dead-letter queue, waiting or in
/// flight, plus the processor's runs since `since`. The harness polls the
/// queue the way Lambda does, so a routed message can be taken, failed and
/// moved on the moment it lands; a count of waiting messages alone races.
async fn arrivals(
    sqs: &aws_sdk_sqs::Client,
    dp: &Value,
    route: char,
    since: &BTreeMap<char, usize>,
) -> usize {
    let mut total = 0;
    for queue in [format!("type-{route}"), format!("type-{route}-dlq")] {
        let attributes = queue_attributes(sqs, &id_of(dp, "SQS::Queue", &queue)).await;
        for count in [
            "ApproximateNumberOfMessages",
            "ApproximateNumberOfMessagesNotVisible",
            "ApproximateNumberOfMessagesDelayed",
        ] {
            total += attributes[count].parse::<usize>().expect("count");
        }
    }
    total + processor_runs(dp, route) - since[&route]
}

fn processor_runs(dp: &Value, route: char) -> usize {
    invocations(&id_of(
        dp,
        "Lambda::Function",
        &format!("processor-{route}"),
    ))
    .len()
}

/// `(actions, resources)` of every statement of a role's inline policy.
async fn role_grants(
    iam: &aws_sdk_iam::Client,
    role: &str,
) -> BTreeSet<(Vec<String>, Vec<String>)> {
    let doc = sluice_e2e::flow::inline_policy(iam, role).await;
    let list = |v: &Value| -> Vec<String> {
        let mut items = sluice_e2e::flow::strings(v);
        items.sort();
        items
    };
    doc["Statement"]
        .as_array()
        .expect("statements")
        .iter()
        .map(|s| {
            assert_eq!(s["Effect"], "Allow");
            (list(&s["Action"]), list(&s["Resource"]))
        })
        .collect()
}

fn grant(actions: &[&str], resources: &[String]) -> (Vec<String>, Vec<String>) {
    let mut a: Vec<String> = actions.iter().map(|x| (*x).to_owned()).collect();
    a.sort();
    let mut r = resources.to_vec();
    r.sort();
    (a, r)
}

#[tokio::test(flavor = "multi_thread")]
async fn fan_out_sample_converges_routes_corrects_drift_shrinks_and_deletes() {
    install_crd();
    let ns = Namespace::create();
    let op = Operator::start(&ns.0);
    let sdk = sdk().await;
    let sqs = aws_sdk_sqs::Client::new(&sdk);
    let events = aws_sdk_eventbridge::Client::new(&sdk);
    let lambda = aws_sdk_lambda::Client::new(&sdk);
    let iam = aws_sdk_iam::Client::new(&sdk);
    let dynamodb = aws_sdk_dynamodb::Client::new(&sdk);

    let before = op.aws_calls();
    let to_ready = apply_and_wait(&ns.0, NAME, &sample_manifest("fan-out.yaml"), "Ready", &op);
    println!(
        "fan-out: kubectl apply → Ready in {:.2} s",
        to_ready.as_secs_f64()
    );
    println!(
        "fan-out: AWS calls of one convergence: {:#?}",
        calls_between(&before, &op.aws_calls())
    );
    let dp = get_pipeline(&ns.0, NAME);
    assert_eq!(
        dp["status"]["inventory"]
            .as_array()
            .expect("inventory")
            .len(),
        34,
        "{:#}",
        dp["status"]["inventory"]
    );
    let account = sluice_operator::aws::Aws::connect(
        &sdk,
        "us-east-1",
        Default::default(),
        sluice_operator::metrics::Metrics::new(),
    )
    .await
    .expect("account")
    .account;
    let arn =
        |service: &str, resource: &str| format!("arn:aws:{service}:us-east-1:{account}:{resource}");

    // Queues: each with its dead-letter queue after 3 receives, 6 × the
    // processor's 30 s visibility, SQS-managed encryption, and a policy
    // letting exactly its rule send.
    for t in ["a", "b", "c"] {
        let queue = id_of(&dp, "SQS::Queue", &format!("type-{t}"));
        let dlq = id_of(&dp, "SQS::Queue", &format!("type-{t}-dlq"));
        let rule = id_of(&dp, "Events::Rule", &format!("type-{t}"));
        let a = queue_attributes(&sqs, &queue).await;
        assert_eq!(a["VisibilityTimeout"], "180");
        assert_eq!(a["SqsManagedSseEnabled"], "true");
        let redrive: Value = serde_json::from_str(&a["RedrivePolicy"]).expect("redrive JSON");
        assert_eq!(redrive["deadLetterTargetArn"], arn("sqs", &dlq));
        assert_eq!(
            redrive["maxReceiveCount"].to_string().trim_matches('"'),
            "3"
        );
        let policy = sluice_operator::iam::parse_policy(&a["Policy"]).expect("policy");
        let want = json!({"Version": "2012-10-17", "Statement": [{
            "Effect": "Allow",
            "Principal": {"Service": "events.amazonaws.com"},
            "Action": "sqs:SendMessage",
            "Resource": arn("sqs", &queue),
            "Condition": {"ArnEquals": {"aws:SourceArn": arn("events", &format!("rule/{rule}"))}}
        }]});
        assert!(
            sluice_operator::iam::same_policy(&policy, &want),
            "{policy:#}"
        );
        let d = queue_attributes(&sqs, &dlq).await;
        assert_eq!(
            d["MessageRetentionPeriod"], "1209600",
            "dead letters kept 14 days"
        );
        assert!(!d.contains_key("RedrivePolicy"));

        // The rule: the article's pattern, on the pipeline's bus, one target.
        let (bus, name) = rule.split_once('/').expect("bus/rule");
        let described = events
            .describe_rule()
            .name(name)
            .event_bus_name(bus)
            .send()
            .await
            .expect("rule");
        let pattern: Value =
            serde_json::from_str(described.event_pattern().expect("pattern")).expect("JSON");
        // ...matching the pipeline's own events only.
        let source = pattern["source"][0]
            .as_str()
            .expect("the pipeline's source")
            .to_owned();
        assert!(
            source.starts_with(&format!("{}.{}.{NAME}.", op.prefix, ns.0)),
            "{source}"
        );
        assert_eq!(
            pattern,
            json!({"detail-type": ["data-event"], "detail": {"data_type": [format!("type_{t}")]},
                   "source": [source]})
        );
        let targets = events
            .list_targets_by_rule()
            .rule(name)
            .event_bus_name(bus)
            .send()
            .await
            .expect("targets");
        let arns: Vec<&str> = targets.targets().iter().map(|x| x.arn()).collect();
        assert_eq!(arns, [arn("sqs", &queue)]);

        // The mapping: batch 10, partial batch responses.
        let function = id_of(&dp, "Lambda::Function", &format!("processor-{t}"));
        let mappings = lambda
            .list_event_source_mappings()
            .function_name(&function)
            .send()
            .await
            .expect("mappings");
        let m = &mappings.event_source_mappings()[0];
        assert_eq!(mappings.event_source_mappings().len(), 1);
        assert_eq!(m.event_source_arn(), Some(arn("sqs", &queue).as_str()));
        assert_eq!(m.batch_size(), Some(10));
        assert_eq!(
            m.function_response_types(),
            [aws_sdk_lambda::types::FunctionResponseType::ReportBatchItemFailures]
        );
    }

    // Every role's policy, exactly.
    let bucket = |logical: &str| id_of(&dp, "S3::Bucket", logical);
    let logs = |function: &str| {
        grant(
            &[
                "logs:CreateLogGroup",
                "logs:CreateLogStream",
                "logs:PutLogEvents",
            ],
            &[arn("logs", &format!("log-group:/aws/lambda/{function}:*"))],
        )
    };
    let table = id_of(&dp, "DynamoDB::Table", "processed");
    let processor = id_of(&dp, "Lambda::Function", "processor-a");
    let want: BTreeSet<_> = [
        logs(&processor),
        grant(
            &["s3:GetObject"],
            &[format!("arn:aws:s3:::{}/*", bucket("input"))],
        ),
        grant(
            &["s3:ListBucket"],
            &[format!("arn:aws:s3:::{}", bucket("input"))],
        ),
        grant(
            &["s3:AbortMultipartUpload", "s3:PutObject"],
            &[format!("arn:aws:s3:::{}/*", bucket("output"))],
        ),
        grant(
            &[
                "sqs:ChangeMessageVisibility",
                "sqs:DeleteMessage",
                "sqs:GetQueueAttributes",
                "sqs:ReceiveMessage",
            ],
            &[arn("sqs", &id_of(&dp, "SQS::Queue", "type-a"))],
        ),
        grant(
            &[
                "dynamodb:DeleteItem",
                "dynamodb:GetItem",
                "dynamodb:PutItem",
                "dynamodb:UpdateItem",
            ],
            &[arn("dynamodb", &format!("table/{table}"))],
        ),
    ]
    .into_iter()
    .collect();
    assert_eq!(
        role_grants(&iam, &id_of(&dp, "IAM::Role", "processor-a")).await,
        want
    );
    let router = id_of(&dp, "Lambda::Function", "router");
    let failures = arn("sqs", &id_of(&dp, "SQS::Queue", "router-failures"));
    let bus = id_of(&dp, "Events::EventBus", "main");
    let want: BTreeSet<_> = [
        logs(&router),
        grant(
            &["s3:GetObject"],
            &[format!("arn:aws:s3:::{}/*", bucket("input"))],
        ),
        grant(
            &["events:PutEvents"],
            &[arn("events", &format!("event-bus/{bus}"))],
        ),
        grant(&["sqs:SendMessage"], std::slice::from_ref(&failures)),
    ]
    .into_iter()
    .collect();
    assert_eq!(
        role_grants(&iam, &id_of(&dp, "IAM::Role", "router")).await,
        want
    );
    let dlq_arns: Vec<String> = ["a", "b", "c"]
        .iter()
        .map(|t| arn("sqs", &id_of(&dp, "SQS::Queue", &format!("type-{t}-dlq"))))
        .collect();
    let handler = id_of(&dp, "Lambda::Function", "dead-letters");
    let want: BTreeSet<_> = [
        logs(&handler),
        grant(
            &["s3:AbortMultipartUpload", "s3:PutObject"],
            &[format!("arn:aws:s3:::{}/*", bucket("dead-letters"))],
        ),
        grant(
            &[
                "sqs:ChangeMessageVisibility",
                "sqs:DeleteMessage",
                "sqs:GetQueueAttributes",
                "sqs:ReceiveMessage",
            ],
            &dlq_arns,
        ),
    ]
    .into_iter()
    .collect();
    assert_eq!(
        role_grants(&iam, &id_of(&dp, "IAM::Role", "dead-letters")).await,
        want
    );

    // The router: its variables, its failure destination.
    let config = lambda
        .get_function_configuration()
        .function_name(&router)
        .send()
        .await
        .expect("router");
    let env = config
        .environment()
        .and_then(|e| e.variables())
        .expect("env");
    assert_eq!(env.get("EVENT_BUS"), Some(&bus));
    // Its events carry the pipeline's own source, the only one its role may
    // put them with; its S3 grants hold for this account's buckets only.
    let own_source = env
        .get("SLUICE_EVENT_SOURCE")
        .expect("the pipeline's event source")
        .clone();
    assert!(
        own_source.starts_with(&format!("{}.{}.{NAME}.", op.prefix, ns.0)),
        "{own_source}"
    );
    let policy = sluice_operator::iam::parse_policy(
        iam.get_role_policy()
            .role_name(id_of(&dp, "IAM::Role", "router"))
            .policy_name("sluice")
            .send()
            .await
            .expect("policy")
            .policy_document(),
    )
    .expect("JSON");
    let statements = policy["Statement"].as_array().expect("statements");
    let conditioned = |action: &str| {
        statements
            .iter()
            .find(|s| s["Action"].to_string().contains(action))
            .map(|s| s["Condition"].clone())
            .unwrap_or_default()
    };
    assert_eq!(
        conditioned("events:PutEvents")["StringEquals"]["events:source"],
        own_source.as_str()
    );
    assert_eq!(
        conditioned("s3:GetObject")["StringEquals"]["s3:ResourceAccount"],
        "123456789012"
    );
    let invoke = lambda
        .get_function_event_invoke_config()
        .function_name(&router)
        .send()
        .await
        .expect("invoke config");
    assert_eq!(invoke.maximum_retry_attempts(), Some(2));
    assert_eq!(
        invoke
            .destination_config()
            .and_then(|d| d.on_failure())
            .and_then(|f| f.destination()),
        Some(failures.as_str())
    );
    let processor_env = lambda
        .get_function_configuration()
        .function_name(&processor)
        .send()
        .await
        .expect("processor");
    let processor_env = processor_env
        .environment()
        .and_then(|e| e.variables())
        .expect("env");
    assert_eq!(processor_env.get("IDEMPOTENCY_TABLE"), Some(&table));
    assert_eq!(processor_env.get("OUTPUT_BUCKET"), Some(&bucket("output")));
    let ttl = dynamodb
        .describe_time_to_live()
        .table_name(&table)
        .send()
        .await
        .expect("ttl");
    assert_eq!(
        ttl.time_to_live_description()
            .and_then(|t| t.attribute_name()),
        Some("expires_at")
    );

    // Routing, where the emulator routes: an event shaped like the router's,
    // with another source (the one routers had before sources were the
    // pipeline's), reaches no queue: the rules match the pipeline's own.
    let put_event = |source: String| {
        let events = events.clone();
        let bus = bus.clone();
        async move {
            events
                .put_events()
                .entries(
                    aws_sdk_eventbridge::types::PutEventsRequestEntry::builder()
                        .event_bus_name(&bus)
                        .source(source)
                        .detail_type("data-event")
                        .detail(
                            json!({"bucket": "b", "key": "product_1.json", "data_type": "type_b"})
                                .to_string(),
                        )
                        .build(),
                )
                .send()
                .await
                .expect("put events")
                .failed_entry_count()
        }
    };
    let runs: BTreeMap<char, usize> = ['a', 'b', 'c']
        .into_iter()
        .map(|route| (route, processor_runs(&dp, route)))
        .collect();
    assert_eq!(put_event("sluice.router".to_owned()).await, 0);
    assert_eq!(
        arrivals(&sqs, &dp, 'b', &runs).await,
        0,
        "an event of another source was routed"
    );
    // With the pipeline's source it reaches type-b's queue and no other.
    assert_eq!(put_event(own_source.clone()).await, 0);
    assert!(arrivals(&sqs, &dp, 'b', &runs).await >= 1, "not routed");
    assert_eq!(arrivals(&sqs, &dp, 'a', &runs).await, 0);
    assert_eq!(arrivals(&sqs, &dp, 'c', &runs).await, 0);

    // Steady state: a resync makes no write.
    let before = op.aws_calls();
    poke_and_wait(&ns.0, NAME, &op);
    let resync = calls_between(&before, &op.aws_calls());
    println!("fan-out: AWS calls of one steady-state resync: {resync:#?}");
    assert!(
        resync.keys().all(|k| k.ends_with("(read)")),
        "steady state wrote: {resync:?}"
    );

    // Drift in a redrive policy, a rule pattern and a mapping's batch size
    // is corrected with one write each.
    // Counted from before the drift: whichever reconcile sees it, the
    // corrections are the only writes.
    let before = op.aws_calls();
    let type_a = id_of(&dp, "SQS::Queue", "type-a");
    let url = sqs
        .get_queue_url()
        .queue_name(&type_a)
        .send()
        .await
        .expect("url")
        .queue_url()
        .expect("url")
        .to_owned();
    sqs.set_queue_attributes()
        .queue_url(&url)
        .attributes(
            QueueAttributeName::RedrivePolicy,
            json!({"deadLetterTargetArn": arn("sqs", &id_of(&dp, "SQS::Queue", "type-a-dlq")), "maxReceiveCount": 10})
                .to_string(),
        )
        .send()
        .await
        .expect("drift");
    let rule = id_of(&dp, "Events::Rule", "type-c");
    let (rule_bus, rule_name) = rule.split_once('/').expect("bus/rule");
    events
        .put_rule()
        .name(rule_name)
        .event_bus_name(rule_bus)
        .event_pattern(json!({"detail-type": ["something-else"]}).to_string())
        .send()
        .await
        .expect("drift");
    let mapping = lambda
        .list_event_source_mappings()
        .function_name(id_of(&dp, "Lambda::Function", "processor-b"))
        .send()
        .await
        .expect("mappings");
    let uuid = mapping.event_source_mappings()[0]
        .uuid()
        .expect("uuid")
        .to_owned();
    lambda
        .update_event_source_mapping()
        .uuid(&uuid)
        .batch_size(5)
        .send()
        .await
        .expect("drift");
    poke_and_wait(&ns.0, NAME, &op);
    // Wait for the corrected state itself, not for a count of reconciles.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let batch = lambda
            .get_event_source_mapping()
            .uuid(&uuid)
            .send()
            .await
            .expect("mapping")
            .batch_size();
        let pattern: Option<Value> = events
            .describe_rule()
            .name(rule_name)
            .event_bus_name(rule_bus)
            .send()
            .await
            .expect("rule")
            .event_pattern()
            .and_then(|p| serde_json::from_str(p).ok());
        let redrive: Value =
            serde_json::from_str(&queue_attributes(&sqs, &type_a).await["RedrivePolicy"])
                .expect("JSON");
        let corrected = batch == Some(10)
            && pattern.is_some_and(|p| p["detail"]["data_type"] == json!(["type_c"]))
            && redrive["maxReceiveCount"].to_string().trim_matches('"') == "3";
        if corrected {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "drift not corrected (batch {batch:?}, redrive {redrive}):\n{}",
            op.log_tail()
        );
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    let corrected: BTreeMap<String, u64> = calls_between(&before, &op.aws_calls())
        .into_iter()
        .filter(|(k, _)| k.ends_with("(write)"))
        .collect();
    assert_eq!(
        corrected,
        BTreeMap::from([
            ("lambda:UpdateEventSourceMapping (write)".to_owned(), 1),
            ("events:PutRule (write)".to_owned(), 1),
            ("sqs:SetQueueAttributes (write)".to_owned(), 1),
        ])
    );

    // Removing processor-c (its queue, rule and the dead-letter trigger)
    // deletes its queue and DLQ, rule, mapping, function and role.
    let gone: Vec<(String, String)> = ids(&dp, "SQS::Queue")
        .into_iter()
        .filter(|(n, _)| n.starts_with("type-c"))
        .chain(
            ids(&dp, "Events::Rule")
                .into_iter()
                .filter(|(n, _)| n == "type-c"),
        )
        .chain(
            ids(&dp, "Lambda::Function")
                .into_iter()
                .filter(|(n, _)| n == "processor-c"),
        )
        .chain(
            ids(&dp, "IAM::Role")
                .into_iter()
                .filter(|(n, _)| n == "processor-c"),
        )
        .collect();
    assert_eq!(gone.len(), 5);
    let smaller = remove_type_c(&sample_manifest("fan-out.yaml"));
    apply_and_wait(&ns.0, NAME, &smaller, "Ready", &op);
    let dp = get_pipeline(&ns.0, NAME);
    let inventory = dp["status"]["inventory"].to_string();
    for (_, id) in &gone {
        assert!(
            !inventory.contains(id.as_str()),
            "{id} still in the inventory"
        );
    }
    for q in gone.iter().filter(|(n, _)| n.starts_with("type-c")) {
        assert!(
            sqs.get_queue_url().queue_name(&q.1).send().await.is_err(),
            "queue {} deleted",
            q.1
        );
    }
    assert!(
        events
            .describe_rule()
            .name(rule_name)
            .event_bus_name(rule_bus)
            .send()
            .await
            .is_err(),
        "rule deleted"
    );
    let processor_c = &gone.iter().find(|(n, _)| n == "processor-c").expect("c").1;
    assert!(
        lambda
            .get_function()
            .function_name(processor_c)
            .send()
            .await
            .is_err()
    );
    let mappings = lambda
        .list_event_source_mappings()
        .event_source_arn(arn("sqs", &gone[0].1))
        .send()
        .await
        .expect("list");
    assert!(mappings.event_source_mappings().is_empty());

    delete_pipeline(&ns.0, NAME, &op);
    assert_nothing_left(&sdk, &op.prefix).await;
    println!("operator memory: {}", op.memory());
}

/// The fan-out sample without processor-c: its queue, rule and the
/// dead-letter handler's trigger on its DLQ.
fn remove_type_c(manifest: &str) -> String {
    let mut doc = manifest_as_json(manifest);
    let spec = &mut doc["spec"];
    let keep = |list: &mut Value, f: &dyn Fn(&Value) -> bool| {
        let items = list.as_array_mut().expect("list");
        items.retain(|x| f(x));
    };
    keep(&mut spec["queues"], &|q| q["name"] != "type-c");
    keep(&mut spec["rules"], &|r| r["name"] != "type-c");
    keep(&mut spec["functions"], &|f| f["name"] != "processor-c");
    for f in spec["functions"].as_array_mut().expect("functions") {
        if f["name"] == "dead-letters" {
            keep(&mut f["triggers"], &|t| t["queue"]["name"] != "type-c-dlq");
        }
    }
    doc.to_string()
}
