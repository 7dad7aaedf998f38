//! A team's own code under the emulator's Lambda harness, without the
//! operator: functions created through the Lambda API with a zip made here
//! and an execution role the emulator's IAM enforces. Python (python3.12)
//! runs through AWS's awslambdaric, Node (nodejs22.x) through AWS's
//! aws-lambda-ric, each with the function's environment and its role's
//! credentials (`e2e/moto/README.md`, "Runtimes"); a container image is
//! converged with its digest but not run. The cold and warm start of each
//! runtime beside the built-in handlers' `provided.al2023` are printed.

use std::time::{Duration, Instant};

use aws_sdk_lambda::primitives::Blob;
use aws_sdk_lambda::types::{Environment, FunctionCode, PackageType, Runtime};
use serde_json::{Value, json};
use sluice_e2e::flow::{invocations, keys, object_text, take_messages, wait_for};
use sluice_e2e::{repo_root, s3, sdk, token, zip};

/// A role for this test's functions, allowed to put objects into one
/// bucket (`allowed`) and to write its logs; `other` is a bucket it may
/// not write.
struct Setup {
    lambda: aws_sdk_lambda::Client,
    s3: aws_sdk_s3::Client,
    prefix: String,
    role_name: String,
    role_arn: String,
    allowed: String,
    other: String,
}

impl Setup {
    async fn new(what: &str) -> Self {
        let sdk = sdk().await;
        let prefix = format!("rt-{what}-{}", token());
        let s3 = s3(&sdk);
        let (allowed, other) = (format!("{prefix}-allowed"), format!("{prefix}-other"));
        for bucket in [&allowed, &other] {
            s3.create_bucket()
                .bucket(bucket)
                .send()
                .await
                .expect("bucket");
        }
        let iam = aws_sdk_iam::Client::new(&sdk);
        let role_name = format!("{prefix}-role");
        let trust = json!({"Version": "2012-10-17", "Statement": [{"Effect": "Allow",
            "Principal": {"Service": "lambda.amazonaws.com"}, "Action": "sts:AssumeRole"}]});
        let role = iam
            .create_role()
            .role_name(&role_name)
            .assume_role_policy_document(trust.to_string())
            .send()
            .await
            .expect("role");
        let policy = json!({"Version": "2012-10-17", "Statement": [
            {"Effect": "Allow", "Action": "s3:PutObject",
             "Resource": format!("arn:aws:s3:::{allowed}/*")},
            {"Effect": "Allow",
             "Action": ["sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:GetQueueAttributes",
                        "sqs:ChangeMessageVisibility"],
             "Resource": format!("arn:aws:sqs:*:*:{prefix}-*")},
            {"Effect": "Allow",
             "Action": ["logs:CreateLogGroup", "logs:CreateLogStream", "logs:PutLogEvents"],
             "Resource": "*"}]});
        iam.put_role_policy()
            .role_name(&role_name)
            .policy_name("own-code")
            .policy_document(policy.to_string())
            .send()
            .await
            .expect("role policy");
        Self {
            lambda: aws_sdk_lambda::Client::new(&sdk),
            s3,
            role_arn: role.role().expect("role").arn().to_owned(),
            prefix,
            role_name,
            allowed,
            other,
        }
    }

    /// Creates the zip function `name` of `runtime` and `handler`, with
    /// `variables`; its full name.
    async fn function(
        &self,
        name: &str,
        runtime: &str,
        handler: &str,
        code: Vec<u8>,
        variables: &[(&str, &str)],
    ) -> String {
        self.function_with_timeout(name, runtime, handler, code, variables, 30)
            .await
    }

    async fn function_with_timeout(
        &self,
        name: &str,
        runtime: &str,
        handler: &str,
        code: Vec<u8>,
        variables: &[(&str, &str)],
        timeout: i32,
    ) -> String {
        let name = format!("{}-{name}", self.prefix);
        let mut environment = Environment::builder();
        for (k, v) in variables {
            environment = environment.variables(*k, *v);
        }
        self.lambda
            .create_function()
            .function_name(&name)
            .runtime(Runtime::from(runtime))
            .handler(handler)
            .role(&self.role_arn)
            .timeout(timeout)
            .memory_size(256)
            .environment(environment.build())
            .code(FunctionCode::builder().zip_file(Blob::new(code)).build())
            .send()
            .await
            .unwrap_or_else(|e| panic!("CreateFunction {name}: {e:?}"));
        name
    }

    /// Invokes `name` synchronously: its function error (None on success)
    /// and the payload it answered.
    async fn invoke(&self, name: &str, event: &Value) -> (Option<String>, Value) {
        let out = self
            .lambda
            .invoke()
            .function_name(name)
            .payload(Blob::new(event.to_string()))
            .send()
            .await
            .unwrap_or_else(|e| panic!("Invoke {name}: {e:?}"));
        let payload = out
            .payload()
            .map(|b| b.as_ref().to_vec())
            .unwrap_or_default();
        let value = serde_json::from_slice(&payload)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&payload).into_owned()));
        (out.function_error().map(str::to_owned), value)
    }
}

fn fixture(path: &str) -> Vec<u8> {
    std::fs::read(repo_root().join(path)).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// The Python and the Node fixture (e2e/fixtures/) answer the same way:
/// the event, GREETING, the caller's ARN, the status of a put they were
/// asked for; `{"fail": ...}` raises a FixtureError; `{"sleep": s}`
/// outlives a timeout of 1 s.
async fn runs_with_its_environment_and_role(runtime: &str, handler: &str, file: &str, path: &str) {
    let setup = Setup::new(&runtime[..4]).await;
    let greeting = format!("hello from {runtime}");
    let code = zip::stored(&[(file, &fixture(path))]);
    let name = setup
        .function(
            "fn",
            runtime,
            handler,
            code.clone(),
            &[("GREETING", &greeting)],
        )
        .await;

    // Its variable reached the code, and its AWS calls act as its role:
    // a put the role allows succeeds...
    let key = "out/allowed.txt";
    let (error, answer) = setup
        .invoke(
            &name,
            &json!({"put": {"bucket": setup.allowed, "key": key}}),
        )
        .await;
    assert_eq!(error, None, "{answer}");
    assert_eq!(answer["greeting"], greeting.as_str(), "{answer}");
    assert_eq!(answer["functionName"], name.as_str(), "{answer}");
    assert_eq!(answer["echo"]["put"]["key"], key, "{answer}");
    let caller = answer["callerArn"].as_str().expect("caller ARN");
    assert!(
        caller.contains(&format!(":assumed-role/{}/", setup.role_name)),
        "{runtime} code acts as {caller}, not its execution role"
    );
    assert_eq!(answer["put"], 200, "{answer}");
    assert!(object_text(&setup.s3, &setup.allowed, key).await.is_some());
    // ...one it does not allow is refused (by the emulator's IAM).
    let (error, answer) = setup
        .invoke(
            &name,
            &json!({"put": {"bucket": setup.other, "key": "out/denied.txt"}}),
        )
        .await;
    assert_eq!(error, None, "{answer}");
    assert_eq!(answer["put"], 403, "{answer}");
    assert!(
        object_text(&setup.s3, &setup.other, "out/denied.txt")
            .await
            .is_none()
    );

    // A handler that raises: Lambda's function error, the error's type.
    let (error, answer) = setup.invoke(&name, &json!({"fail": "boom"})).await;
    assert_eq!(error.as_deref(), Some("Unhandled"), "{answer}");
    assert_eq!(answer["errorType"], "FixtureError", "{answer}");
    assert_eq!(answer["errorMessage"], "boom", "{answer}");

    // The function's timeout holds for this runtime's process too.
    let slow = setup
        .function_with_timeout("slow", runtime, handler, code, &[], 1)
        .await;
    let started = Instant::now();
    let (error, answer) = setup.invoke(&slow, &json!({"sleep": 20})).await;
    assert_eq!(error.as_deref(), Some("Unhandled"), "{answer}");
    assert_eq!(answer["errorType"], "Sandbox.Timedout", "{answer}");
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_python_function_runs_with_its_environment_and_role() {
    runs_with_its_environment_and_role(
        "python3.12",
        "main.handler",
        "main.py",
        "e2e/fixtures/python-function/main.py",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_node_function_runs_with_its_environment_and_role() {
    runs_with_its_environment_and_role(
        "nodejs22.x",
        "index.handler",
        "index.mjs",
        "e2e/fixtures/node-function/index.mjs",
    )
    .await;
}

fn sqs_record(message_id: &str, body: &str) -> Value {
    json!({"messageId": message_id, "receiptHandle": format!("rh-{message_id}"), "body": body,
           "attributes": {"ApproximateReceiveCount": "1"}, "messageAttributes": {},
           "md5OfBody": "", "eventSource": "aws:sqs",
           "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:counted",
           "awsRegion": "us-east-1"})
}

/// examples/python-function: one good and one bad record in a batch: one
/// report, and the bad one in the partial batch response.
#[tokio::test(flavor = "multi_thread")]
async fn the_python_example_reports_good_records_and_returns_the_bad_ones() {
    let setup = Setup::new("pyex").await;
    let name = setup
        .function(
            "report",
            "python3.12",
            "handler.handler",
            zip::stored(&[(
                "handler.py",
                &fixture("examples/python-function/handler.py"),
            )]),
            &[("OUTPUT_BUCKET", &setup.allowed)],
        )
        .await;
    let good = json!({"bucket": "incoming", "key": "docs/a.txt", "words": 12, "lines": 3});
    let batch = json!({"Records": [
        sqs_record("good-1", &good.to_string()),
        sqs_record("bad-1", "{not json"),
    ]});
    let (error, answer) = setup.invoke(&name, &batch).await;
    assert_eq!(error, None, "{answer}");
    assert_eq!(
        answer,
        json!({"batchItemFailures": [{"itemIdentifier": "bad-1"}]})
    );
    assert_eq!(
        keys(&setup.s3, &setup.allowed, "reports/").await,
        vec!["reports/docs/a.txt.json".to_owned()]
    );
    let report: Value = serde_json::from_str(
        &object_text(&setup.s3, &setup.allowed, "reports/docs/a.txt.json")
            .await
            .expect("report"),
    )
    .expect("JSON report");
    for field in ["bucket", "key", "words", "lines"] {
        assert_eq!(report[field], good[field], "{report}");
    }
    assert!(
        report["processedAt"]
            .as_str()
            .is_some_and(|t| t.starts_with("20") && t.ends_with('Z')),
        "{report}"
    );
}

/// examples/python-function behind a real queue, as the own-code sample
/// runs it: an event source mapping with ReportBatchItemFailures polled by
/// the harness as the function's role. The good record's report is
/// written once; the bad record alone comes back and, after
/// maxReceiveCount receives, lands in the dead-letter queue.
#[tokio::test(flavor = "multi_thread")]
async fn the_python_example_behind_a_queue_retries_only_the_bad_record() {
    let setup = Setup::new("pyq").await;
    let sqs = aws_sdk_sqs::Client::new(&sdk().await);
    let dead = sqs
        .create_queue()
        .queue_name(format!("{}-dead", setup.prefix))
        .send()
        .await
        .expect("dead-letter queue");
    let dead_url = dead.queue_url().expect("url").to_owned();
    let dead_arn = format!("arn:aws:sqs:us-east-1:123456789012:{}-dead", setup.prefix);
    let source = format!("{}-counted", setup.prefix);
    let url = sqs
        .create_queue()
        .queue_name(&source)
        .attributes(
            aws_sdk_sqs::types::QueueAttributeName::VisibilityTimeout,
            "2",
        )
        .attributes(
            aws_sdk_sqs::types::QueueAttributeName::RedrivePolicy,
            json!({"deadLetterTargetArn": dead_arn, "maxReceiveCount": 2}).to_string(),
        )
        .send()
        .await
        .expect("queue")
        .queue_url()
        .expect("url")
        .to_owned();
    let name = setup
        .function(
            "report",
            "python3.12",
            "handler.handler",
            zip::stored(&[(
                "handler.py",
                &fixture("examples/python-function/handler.py"),
            )]),
            &[("OUTPUT_BUCKET", &setup.allowed)],
        )
        .await;
    let good = json!({"bucket": "incoming", "key": "b.txt", "words": 5, "lines": 1});
    sqs.send_message_batch()
        .queue_url(&url)
        .entries(
            aws_sdk_sqs::types::SendMessageBatchRequestEntry::builder()
                .id("good")
                .message_body(good.to_string())
                .build()
                .expect("entry"),
        )
        .entries(
            aws_sdk_sqs::types::SendMessageBatchRequestEntry::builder()
                .id("bad")
                .message_body("{\"bucket\": 1}")
                .build()
                .expect("entry"),
        )
        .send()
        .await
        .expect("send");
    setup
        .lambda
        .create_event_source_mapping()
        .function_name(&name)
        .event_source_arn(format!("arn:aws:sqs:us-east-1:123456789012:{source}"))
        .batch_size(10)
        .maximum_batching_window_in_seconds(1)
        .function_response_types(
            aws_sdk_lambda::types::FunctionResponseType::ReportBatchItemFailures,
        )
        .send()
        .await
        .expect("event source mapping");

    let dead_bodies = wait_for(
        "the bad record in the dead-letter queue",
        Duration::from_secs(90),
        || {
            let (sqs, dead_url) = (sqs.clone(), dead_url.clone());
            async move {
                let bodies = take_messages(&sqs, &dead_url).await;
                (!bodies.is_empty()).then_some(bodies)
            }
        },
    )
    .await;
    assert_eq!(dead_bodies, vec!["{\"bucket\": 1}".to_owned()]);
    assert_eq!(
        keys(&setup.s3, &setup.allowed, "reports/").await,
        vec!["reports/b.txt.json".to_owned()]
    );
    // The good record was not handed back: once the source queue is
    // drained, the dead-letter queue got nothing more (a batch failed as a
    // whole would have sent the good record there too).
    wait_for("the source queue drained", Duration::from_secs(60), || {
        let (sqs, url) = (sqs.clone(), url.clone());
        async move {
            let attributes = sqs
                .get_queue_attributes()
                .queue_url(&url)
                .attribute_names(aws_sdk_sqs::types::QueueAttributeName::All)
                .send()
                .await
                .expect("attributes");
            let count = |name| {
                attributes
                    .attributes()
                    .and_then(|a| a.get(&name))
                    .map_or(0, |v| v.parse::<u64>().expect("a count"))
            };
            (count(aws_sdk_sqs::types::QueueAttributeName::ApproximateNumberOfMessages)
                + count(
                    aws_sdk_sqs::types::QueueAttributeName::ApproximateNumberOfMessagesNotVisible,
                )
                == 0)
                .then_some(())
        }
    })
    .await;
    assert!(take_messages(&sqs, &dead_url).await.is_empty());
    let runs = invocations(&name);
    assert!(runs.len() >= 2, "the bad record was retried: {runs:?}");
    assert!(runs.iter().all(|r| r["error"].is_null()), "{runs:?}");
    setup
        .lambda
        .delete_event_source_mapping()
        .uuid(
            setup
                .lambda
                .list_event_source_mappings()
                .function_name(&name)
                .send()
                .await
                .expect("mappings")
                .event_source_mappings()[0]
                .uuid()
                .expect("uuid"),
        )
        .send()
        .await
        .expect("mapping deleted");
}

/// An image function: converged with its digest as AWS reports it, never
/// run here; the invocation says so at once. So does a runtime the harness
/// does not run.
#[tokio::test(flavor = "multi_thread")]
async fn an_image_function_reports_its_digest_and_is_not_run_locally() {
    let setup = Setup::new("img").await;
    // Two made-up digests: 64 hex digits each.
    let (first, second) = (token().repeat(8), token().repeat(8));
    let repository = "123456789012.dkr.ecr.us-east-1.amazonaws.com/team/fn";
    let name = format!("{}-image", setup.prefix);
    setup
        .lambda
        .create_function()
        .function_name(&name)
        .package_type(PackageType::Image)
        .role(&setup.role_arn)
        .code(
            FunctionCode::builder()
                .image_uri(format!("{repository}@sha256:{first}"))
                .build(),
        )
        .send()
        .await
        .expect("CreateFunction of an image");
    let check = |expected: String| {
        let lambda = setup.lambda.clone();
        let name = name.clone();
        async move {
            let got = lambda
                .get_function()
                .function_name(&name)
                .send()
                .await
                .expect("GetFunction");
            let configuration = got.configuration().expect("configuration");
            assert_eq!(configuration.code_sha256(), Some(expected.as_str()));
            assert_eq!(configuration.package_type(), Some(&PackageType::Image));
            assert_eq!(
                got.code().and_then(|c| c.resolved_image_uri()),
                Some(format!("{repository}@sha256:{expected}").as_str())
            );
        }
    };
    check(first.clone()).await;
    let updated = setup
        .lambda
        .update_function_code()
        .function_name(&name)
        .image_uri(format!("{repository}@sha256:{second}"))
        .send()
        .await
        .expect("UpdateFunctionCode");
    assert_eq!(updated.code_sha256(), Some(second.as_str()));
    check(second).await;

    let started = Instant::now();
    let (error, answer) = setup.invoke(&name, &json!({})).await;
    assert_eq!(error.as_deref(), Some("Unhandled"), "{answer}");
    assert_eq!(answer["errorType"], "InvalidRuntimeException", "{answer}");
    assert!(
        answer["errorMessage"]
            .as_str()
            .is_some_and(|m| m.contains("images are converged but not run locally")),
        "{answer}"
    );

    let ruby = setup
        .function(
            "ruby",
            "ruby3.3",
            "main.handler",
            zip::stored(&[("main.rb", b"def handler(event:, context:) = 1")]),
            &[],
        )
        .await;
    let (error, answer) = setup.invoke(&ruby, &json!({})).await;
    assert_eq!(error.as_deref(), Some("Unhandled"), "{answer}");
    assert_eq!(answer["errorType"], "InvalidRuntimeException", "{answer}");
    assert!(
        answer["errorMessage"]
            .as_str()
            .is_some_and(|m| m.contains("cannot run runtime 'ruby3.3'")),
        "{answer}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "refusals took {:?}",
        started.elapsed()
    );
}

/// The zip of the built-in handlers (`make handlers`).
fn handlers_zip() -> Vec<u8> {
    let dir = std::env::var("SLUICE_HANDLERS_DIR").unwrap_or_else(|_| {
        let out = std::process::Command::new(repo_root().join("scripts/handlers.sh"))
            .arg("dir")
            .output()
            .expect("scripts/handlers.sh dir");
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    });
    let path = std::path::Path::new(&dir).join("sluice-handlers.zip");
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e} (run `make handlers`)", path.display()))
}

/// First (cold) and warm invocations of each runtime, as the harness
/// timed them (from the invocation's arrival to its answer; a cold one
/// includes starting the process and the runtime's init). Printed, not
/// asserted: they depend on the machine.
#[tokio::test(flavor = "multi_thread")]
async fn cold_and_warm_starts_per_runtime() {
    const WARM: usize = 5;
    let setup = Setup::new("cold").await;
    let transform = json!({"bucket": "b", "key": "k",
                           "data": {"items": [{"quantity": 2, "price": 1.5}]}});
    let ping = json!({"ping": true});
    let cases = [
        (
            "provided.al2023",
            "transform",
            handlers_zip(),
            transform,
            "built-in transform",
        ),
        (
            "python3.12",
            "main.handler",
            zip::stored(&[("main.py", &fixture("e2e/fixtures/python-function/main.py"))]),
            ping.clone(),
            "fixture, no AWS call",
        ),
        (
            "nodejs22.x",
            "index.handler",
            zip::stored(&[(
                "index.mjs",
                &fixture("e2e/fixtures/node-function/index.mjs"),
            )]),
            ping,
            "fixture, no AWS call",
        ),
    ];
    let mut lines = Vec::new();
    for (runtime, handler, code, event, what) in cases {
        let name = setup
            .function(&runtime.replace('.', "-"), runtime, handler, code, &[])
            .await;
        let mut round_trips = Vec::new();
        for _ in 0..=WARM {
            let started = Instant::now();
            let (error, answer) = setup.invoke(&name, &event).await;
            round_trips.push(started.elapsed().as_secs_f64() * 1000.0);
            assert_eq!(error, None, "{runtime}: {answer}");
        }
        let runs = invocations(&name);
        assert_eq!(runs.len(), WARM + 1, "{runs:?}");
        let cold: Vec<bool> = runs.iter().map(|r| r["coldStart"] == true).collect();
        assert_eq!(
            cold,
            [vec![true], vec![false; WARM]].concat(),
            "{runtime}: only the first invocation starts an environment"
        );
        let duration = |r: &Value| r["durationMs"].as_f64().expect("durationMs");
        let mut warm: Vec<f64> = runs[1..].iter().map(duration).collect();
        warm.sort_by(f64::total_cmp);
        let mut warm_trips = round_trips[1..].to_vec();
        warm_trips.sort_by(f64::total_cmp);
        lines.push(format!(
            "{runtime:<16} cold {:>7.1} ms  warm median {:>6.1} ms  (Invoke round trip: cold {:>7.1} ms, warm median {:>6.1} ms; {what}; peak {} MiB)",
            duration(&runs[0]),
            warm[WARM / 2],
            round_trips[0],
            warm_trips[WARM / 2],
            runs[0]["maxMemoryMiB"],
        ));
    }
    println!("cold and warm starts under the harness:");
    for line in lines {
        println!("  {line}");
    }
}
