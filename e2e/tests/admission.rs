//! Invalid manifests are refused by the real kube-apiserver at admission,
//! with a message naming the field (OpenAPI bounds and CEL rules of the
//! committed CRD); valid edge cases are accepted.

use sluice_e2e::{Namespace, Policy, install_crd, kubectl_stdin, token};

fn manifest(spec: &str) -> String {
    format!(
        "apiVersion: sluice.dev/v1alpha1\nkind: DataPipeline\nmetadata:\n  name: bad\nspec:\n  {spec}\n"
    )
}

fn apply(ns: &str, spec: &str, dry_run: bool) -> (bool, String) {
    let mut args = vec!["apply", "-n", ns, "-f", "-"];
    if dry_run {
        args.push("--dry-run=server");
    }
    let out = kubectl_stdin(&args, &manifest(spec));
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

const REFUSED: &[(&str, &str, &[&str])] = &[
    (
        "a put on the account's default bus, which the default policy closes",
        "functions: [{name: f, handler: router, uses: [{eventBus: default, access: put, env: EVENT_BUS}]}]",
        &[
            "spec.functions[].uses[].eventBus",
            "SluicePolicy \"default\"",
            "allow.defaultEventBus: false",
        ],
    ),
    (
        "memory below Lambda's minimum",
        "functions: [{name: f, handler: s3-json-transform, memoryMiB: 64}]",
        &[
            "spec.functions[0].memoryMiB",
            "greater than or equal to 128",
        ],
    ),
    (
        "timeout over 900 s",
        "functions: [{name: f, handler: s3-json-transform, timeoutSeconds: 1000}]",
        &["spec.functions[0].timeoutSeconds", "workflow"],
    ),
    (
        "duplicate bucket names",
        "buckets: [{name: a}, {name: a}]",
        &["spec.buckets", "bucket names must be unique"],
    ),
    (
        "duplicate queue names",
        "queues: [{name: a}, {name: a}]",
        &["spec.queues[1]", "Duplicate value"],
    ),
    (
        "empty function name",
        "functions: [{name: '', handler: s3-json-transform}]",
        &["spec.functions[0].name"],
    ),
    (
        "unknown S3 event",
        "buckets: [{name: a}]\n  functions: [{name: f, handler: s3-json-transform, triggers: [{bucket: {name: a, events: ['s3:ObjectCreated:Bogus']}}]}]",
        &[
            "spec.functions[0].triggers[0].bucket.events[0]",
            "s3:ObjectCreated:*",
        ],
    ),
    (
        "trigger on an undeclared bucket",
        "buckets: [{name: a}]\n  functions: [{name: f, handler: s3-json-transform, triggers: [{bucket: {name: b}}]}]",
        &["must name a bucket declared in spec.buckets"],
    ),
    (
        "trigger on an undeclared queue",
        "queues: [{name: q}]\n  functions: [{name: f, handler: typed-processor, triggers: [{queue: {name: nope}}]}]",
        &["triggers[].queue.name must name a queue declared in spec.queues"],
    ),
    (
        "a use of an undeclared table",
        "functions: [{name: f, handler: stream-anomaly, uses: [{table: results, access: write}]}]",
        &["uses[].table must name a table declared in spec.tables"],
    ),
    (
        "an input transformer variable name EventBridge refuses",
        "eventBuses: [{name: b}]\n  queues: [{name: q}]\n  rules: [{name: r, eventBus: b, pattern: {source: [x]}, targets: [{queue: q, inputTransformer: {inputPaths: {a.b: $.detail}, inputTemplate: '<a.b>'}}]}]",
        &[
            "spec.rules[0].targets[0].inputTransformer.inputPaths",
            "letters, digits, '_' and '-'",
        ],
    ),
    (
        "an input transformer path that is not a JSON path",
        "eventBuses: [{name: b}]\n  queues: [{name: q}]\n  rules: [{name: r, eventBus: b, pattern: {source: [x]}, targets: [{queue: q, inputTransformer: {inputPaths: {k: detail.key}, inputTemplate: '<k>'}}]}]",
        &[
            "spec.rules[0].targets[0].inputTransformer.inputPaths",
            "JSON paths in dot notation",
        ],
    ),
    (
        "a rule target naming an undeclared function",
        "rules: [{name: r, pattern: {source: [x]}, targets: [{function: nope}]}]",
        &["rules[].targets[].function must name a function declared in spec.functions"],
    ),
    (
        "an SQS batch above 10 without a batching window",
        "queues: [{name: q}]\n  functions: [{name: f, handler: typed-processor, triggers: [{queue: {name: q, batchSize: 50}}]}]",
        &[
            "spec.functions[0].triggers[0].queue",
            "batchSize above 10 needs batchingWindowSeconds",
        ],
    ),
    (
        "an SQS batch above 10,000",
        "queues: [{name: q}]\n  functions: [{name: f, handler: typed-processor, triggers: [{queue: {name: q, batchSize: 20000, batchingWindowSeconds: 5}}]}]",
        &[
            "spec.functions[0].triggers[0].queue.batchSize",
            "less than or equal to 10000",
        ],
    ),
    (
        "a Kinesis batch above 10,000",
        "streams: [{name: s}]\n  functions: [{name: f, handler: stream-anomaly, triggers: [{stream: {name: s, batchSize: 20000}}]}]",
        &[
            "spec.functions[0].triggers[0].stream.batchSize",
            "less than or equal to 10000",
        ],
    ),
    (
        "a record age between 0 and 60 s",
        "streams: [{name: s}]\n  functions: [{name: f, handler: stream-anomaly, triggers: [{stream: {name: s, maximumRecordAgeSeconds: 30}}]}]",
        &[
            "spec.functions[0].triggers[0].stream.maximumRecordAgeSeconds",
            "must be -1 (no limit) or 60 to 604800",
        ],
    ),
    (
        "retries above 10,000",
        "streams: [{name: s}]\n  functions: [{name: f, handler: stream-anomaly, triggers: [{stream: {name: s, maximumRetryAttempts: 20000}}]}]",
        &[
            "spec.functions[0].triggers[0].stream.maximumRetryAttempts",
            "less than or equal to 10000",
        ],
    ),
    (
        "a FIFO queue with a standard dead-letter queue",
        "queues: [{name: q, fifo: true, deadLetter: {maxReceiveCount: 3, queue: d}}, {name: d}]",
        &["a FIFO queue's dead-letter queue is FIFO"],
    ),
    (
        "an event pattern that is not an object",
        "queues: [{name: q}]\n  rules: [{name: r, pattern: [data-event], targets: [{queue: q}]}]",
        &["spec.rules[0].pattern", "must be of type object"],
    ),
    (
        "a rule without targets",
        "rules: [{name: r, pattern: {source: [x]}, targets: []}]",
        &["spec.rules[0].targets", "at least 1 items"],
    ),
    (
        "a trigger with two sources",
        "buckets: [{name: a}]\n  queues: [{name: q}]\n  functions: [{name: f, handler: typed-processor, triggers: [{bucket: {name: a}, queue: {name: q}}]}]",
        &["spec.functions[0].triggers[0]", "exactly one source"],
    ),
    (
        "a queue used with a bucket's access",
        "queues: [{name: q}]\n  functions: [{name: f, handler: typed-processor, uses: [{queue: q, access: read}]}]",
        &["spec.functions[0].uses[0]", "access to a queue is send"],
    ),
    (
        "a cron expression with an hour of 25",
        "functions: [{name: f, handler: batch-aggregate}]\n  schedules: [{name: s, expression: 'cron(0 25 * * ? *)', target: {function: f}}]",
        &[
            "spec.schedules[0].expression",
            "a cron expression has six fields",
        ],
    ),
    (
        "a cron expression with both day fields set",
        "functions: [{name: f, handler: batch-aggregate}]\n  schedules: [{name: s, expression: 'cron(0 1 * * * *)', target: {function: f}}]",
        &[
            "spec.schedules[0].expression",
            "one of the two day fields is ?",
        ],
    ),
    (
        "rate(0 minutes)",
        "functions: [{name: f, handler: batch-aggregate}]\n  schedules: [{name: s, expression: 'rate(0 minutes)', target: {function: f}}]",
        &[
            "spec.schedules[0].expression",
            "a rate is a whole number above 0",
        ],
    ),
    (
        "an unknown time zone",
        "functions: [{name: f, handler: batch-aggregate}]\n  schedules: [{name: s, expression: 'rate(1 day)', timezone: Mars/Olympus_Mons, target: {function: f}}]",
        &["spec.schedules[0].timezone", "must be an IANA time zone"],
    ),
    (
        "a schedule with two targets",
        "functions: [{name: f, handler: batch-aggregate}]\n  queues: [{name: q}]\n  schedules: [{name: s, expression: 'rate(1 day)', target: {function: f, queue: q}}]",
        &[
            "spec.schedules[0].target",
            "exactly one of function, workflow or queue",
        ],
    ),
    (
        "a schedule of an undeclared workflow",
        "schedules: [{name: s, expression: 'rate(1 day)', target: {workflow: nope}}]",
        &["schedules[].target.workflow must name a workflow declared in spec.workflows"],
    ),
    (
        "a workflow definition that is not an object",
        "workflows: [{name: w, definition: [StartAt]}]",
        &["spec.workflows[0].definition", "must be of type object"],
    ),
    (
        "shards on an on-demand stream",
        "streams: [{name: s, shards: 2}]",
        &[
            "spec.streams[0]",
            "shards is set exactly when mode is Provisioned",
        ],
    ),
    (
        "an image named by a tag, which can move",
        "functions: [{name: f, code: {image: {uri: '123456789012.dkr.ecr.us-east-1.amazonaws.com/app:latest'}}}]",
        &[
            "spec.functions[0].code.image.uri",
            "pin the image by digest",
        ],
    ),
    (
        "an image outside Amazon ECR",
        "functions: [{name: f, code: {image: {uri: 'docker.io/library/app@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef'}}}]",
        &["spec.functions[0].code.image.uri", "Amazon ECR image URI"],
    ),
    (
        "an S3 key without a version or digest",
        "functions: [{name: f, code: {s3: {bucket: team-code, key: app.zip}, runtime: python3.12, handler: app.handler}}]",
        &["spec.functions[0].code.s3", "pin the object"],
    ),
    (
        "a digest that is not 64 hex digits",
        "functions: [{name: f, code: {s3: {bucket: team-code, key: app.zip, sha256: abc}, runtime: python3.12, handler: app.handler}}]",
        &["spec.functions[0].code.s3.sha256"],
    ),
    (
        "a zip without a runtime",
        "functions: [{name: f, code: {s3: {bucket: team-code, key: app.zip, versionId: v1}, handler: app.handler}}]",
        &["spec.functions[0].code", "runtime is required with code.s3"],
    ),
    (
        "a Python runtime with a handler that is not module.function",
        "functions: [{name: f, code: {s3: {bucket: team-code, key: app.zip, versionId: v1}, runtime: python3.12, handler: bootstrap}}]",
        &[
            "spec.functions[0].code",
            "a Python handler is module.function",
        ],
    ),
    (
        "a Node runtime with a handler that is not file.function",
        "functions: [{name: f, code: {s3: {bucket: team-code, key: app.zip, versionId: v1}, runtime: nodejs22.x, handler: index}}]",
        &["spec.functions[0].code", "a Node handler is file.function"],
    ),
    (
        "a runtime Sluice does not take",
        "functions: [{name: f, code: {s3: {bucket: team-code, key: app.zip, versionId: v1}, runtime: python2.7, handler: app.handler}}]",
        &["spec.functions[0].code.runtime", "python3.12"],
    ),
    (
        "both a handler and code",
        "functions: [{name: f, handler: router, code: {builtin: router}}]",
        &["spec.functions[0]", "exactly one of handler"],
    ),
    (
        "an architecture for a built-in handler",
        "functions: [{name: f, code: {builtin: router, architecture: arm64}}]",
        &[
            "spec.functions[0].code",
            "architecture is not allowed with code.builtin",
        ],
    ),
    (
        "a subnet id that is not one",
        "functions: [{name: f, handler: router, vpc: {subnetIds: [my-subnet], securityGroupIds: [sg-01234567]}}]",
        &["spec.functions[0].vpc.subnetIds[0]"],
    ),
    (
        "a VPC without security groups",
        "functions: [{name: f, handler: router, vpc: {subnetIds: [subnet-01234567], securityGroupIds: []}}]",
        &["spec.functions[0].vpc.securityGroupIds"],
    ),
    (
        "a layer named without its version",
        "functions: [{name: f, handler: router, layers: ['arn:aws:lambda:us-east-1:123456789012:layer:deps']}]",
        &["spec.functions[0].layers[0]"],
    ),
    (
        "layers on an image",
        "functions: [{name: f, code: {image: {uri: '123456789012.dkr.ecr.us-east-1.amazonaws.com/app@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef'}}, layers: ['arn:aws:lambda:us-east-1:123456789012:layer:deps:1']}]",
        &[
            "spec.functions[0]",
            "layers are not allowed with code.image",
        ],
    ),
    (
        "ephemeral storage below Lambda's 512 MiB",
        "functions: [{name: f, handler: router, ephemeralStorageMiB: 256}]",
        &["spec.functions[0].ephemeralStorageMiB", "512"],
    ),
];

#[test]
fn invalid_manifests_are_rejected_naming_the_field() {
    install_crd();
    let ns = Namespace::create();
    for (what, spec, expected) in REFUSED {
        let (accepted, stderr) = apply(&ns.0, spec, true);
        assert!(!accepted, "{what}: accepted but must be rejected");
        for needle in *expected {
            assert!(
                stderr.contains(needle),
                "{what}: message does not name {needle:?}: {stderr}"
            );
        }
    }
}

#[test]
fn edge_cases_that_are_valid_are_accepted() {
    install_crd();
    let ns = Namespace::create();
    for (what, spec) in [
        (
            "a trigger on the dead-letter queue Sluice creates",
            "buckets: [{name: archive}]\n  queues: [{name: q, deadLetter: {maxReceiveCount: 3}}]\n  functions: [{name: f, handler: dlq-handler, triggers: [{queue: {name: q-dlq}}], uses: [{bucket: archive, access: write, env: ARCHIVE_BUCKET}]}]",
        ),
        (
            "a batch above 10 with a batching window",
            "queues: [{name: q}]\n  functions: [{name: f, handler: typed-processor, triggers: [{queue: {name: q, batchSize: 500, batchingWindowSeconds: 5}}]}]",
        ),
        (
            "a team's zip pinned by version, and one pinned by digest",
            "functions: [{name: f, code: {s3: {bucket: team-code, key: app.zip, versionId: v1}, runtime: python3.12, handler: pkg/app.handler}}, {name: g, code: {s3: {bucket: team-code, key: app.zip, sha256: 0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef}, runtime: nodejs22.x, handler: index.handler, architecture: arm64}, ephemeralStorageMiB: 2048}]",
        ),
        (
            "a function in a VPC with a layer",
            "functions: [{name: f, handler: router, layers: ['arn:aws:lambda:eu-west-1:123456789012:layer:deps:3'], vpc: {subnetIds: [subnet-01234567, subnet-0123456789abcdef0], securityGroupIds: [sg-01234567]}}]",
        ),
        (
            "an image pinned by digest, and a built-in handler as code",
            "functions: [{name: f, code: {image: {uri: '123456789012.dkr.ecr.eu-west-1.amazonaws.com/team/app@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef'}}}, {name: g, code: {builtin: router}}]",
        ),
        (
            "a schedule in a time zone, with a flexible window",
            "functions: [{name: f, handler: batch-aggregate}]\n  schedules: [{name: s, expression: 'cron(0/15 8-17 ? * MON-FRI *)', timezone: Europe/Paris, flexibleWindowMinutes: 5, target: {function: f}}]",
        ),
    ] {
        let (accepted, stderr) = apply(&ns.0, spec, true);
        assert!(accepted, "{what}: refused: {stderr}");
    }
    // Where the platform opens the default bus, a put on it is accepted.
    let open = format!("open-bus-{}", token());
    let _policy = Policy::apply(
        &open,
        serde_json::json!({"allow": {"defaultEventBus": true}}),
    );
    let ns = Namespace::under_policy(&open);
    let (accepted, stderr) = apply(
        &ns.0,
        "functions: [{name: f, handler: router, uses: [{eventBus: default, access: put, env: EVENT_BUS}]}]",
        true,
    );
    assert!(accepted, "a put on the default bus where allowed: {stderr}");
}

#[test]
fn a_tables_keys_cannot_change_once_created() {
    install_crd();
    let ns = Namespace::create();
    let (accepted, stderr) = apply(
        &ns.0,
        "tables: [{name: t, partitionKey: {name: id, type: S}}]",
        false,
    );
    assert!(accepted, "{stderr}");
    let (accepted, stderr) = apply(
        &ns.0,
        "tables: [{name: t, partitionKey: {name: pk, type: S}}]",
        false,
    );
    assert!(!accepted, "a changed partition key was accepted");
    assert!(
        stderr.contains("spec.tables[0]") && stderr.contains("partitionKey cannot change"),
        "{stderr}"
    );
    // Another table may be added beside it.
    let (accepted, stderr) = apply(
        &ns.0,
        "tables: [{name: t, partitionKey: {name: id, type: S}}, {name: u, partitionKey: {name: pk, type: S}}]",
        false,
    );
    assert!(accepted, "{stderr}");
}

#[test]
fn a_workflows_type_cannot_change_once_created() {
    install_crd();
    let ns = Namespace::create();
    let definition = "definition: {StartAt: A, States: {A: {Type: Pass, End: true}}}";
    let (accepted, stderr) = apply(
        &ns.0,
        &format!("workflows: [{{name: w, type: Standard, {definition}}}]"),
        false,
    );
    assert!(accepted, "{stderr}");
    let (accepted, stderr) = apply(
        &ns.0,
        &format!("workflows: [{{name: w, type: Express, {definition}}}]"),
        false,
    );
    assert!(!accepted, "a changed type was accepted");
    assert!(
        stderr.contains("spec.workflows[0].type") && stderr.contains("type cannot change"),
        "{stderr}"
    );
}
