//! A team's own code, end to end: the own-code sample with the template
//! Rust crate (examples/rust-function, built by `scripts/own-code.sh`) and
//! the Python example (examples/python-function), uploaded to the team's
//! code bucket, applied with kubectl, converged by the operator and run by
//! the emulator's Lambda harness under enforced IAM, with a Node function
//! (the runtimes fixture) on the reports beside them. A new object version
//! updates the code and nothing else; code changed out of band is
//! reverted; a function reaching a bucket it has no edge to is denied.

use std::time::{Duration, Instant};

use aws_sdk_s3::primitives::ByteStream;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use sluice_e2e::flow::{harness, invocations, object_text, wait_for};
use sluice_e2e::{
    Namespace, Operator, Policy, apply_and_wait, calls_between, delete_pipeline, get_pipeline,
    id_of, install_crd, kubectl_stdin_ok, poke_and_wait, repo_root, s3, sample_manifest, sdk,
    token, zip,
};

const NAME: &str = "own-code";

/// The template crate's zip: the one `make test` built
/// (`SLUICE_OWN_CODE_ZIP`), else built (or found in the cache) by the
/// project's script.
fn rust_zip() -> Vec<u8> {
    if let Ok(path) = std::env::var("SLUICE_OWN_CODE_ZIP") {
        return std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    }
    let out = std::process::Command::new(repo_root().join("scripts/own-code.sh"))
        .args(["build", "examples/rust-function"])
        .current_dir(repo_root())
        .output()
        .expect("scripts/own-code.sh");
    assert!(
        out.status.success(),
        "own-code.sh build: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let path = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// The Python example, zipped as its README says (handler.py at the root),
/// with `extra` appended to its source (a new version of the code).
fn python_zip(extra: &str) -> Vec<u8> {
    let source = std::fs::read_to_string(repo_root().join("examples/python-function/handler.py"))
        .expect("handler.py");
    zip::stored(&[("handler.py", format!("{source}{extra}").as_bytes())])
}

fn hex_sha256(data: &[u8]) -> String {
    hex::encode(Sha256::digest(data))
}

/// Puts `body` at `key`; the version id S3 gave it.
async fn upload(s3: &aws_sdk_s3::Client, bucket: &str, key: &str, body: Vec<u8>) -> String {
    s3.put_object()
        .bucket(bucket)
        .key(key)
        .body(ByteStream::from(body))
        .send()
        .await
        .expect("upload")
        .version_id()
        .expect("a versioned bucket gives a version id")
        .to_owned()
}

/// A Node function (the runtimes test's fixture: it answers the event),
/// zipped.
fn node_zip() -> Vec<u8> {
    let source =
        std::fs::read(repo_root().join("e2e/fixtures/node-function/index.mjs")).expect("index.mjs");
    zip::stored(&[("index.mjs", &source)])
}

/// The sample with the team's bucket, the Rust zip pinned by digest and
/// the Python zip by `version`; and a third function in Node, `notify`,
/// which each new report invokes (so every runtime runs in one pipeline).
fn manifest(bucket: &str, rust_key: &str, rust_sha: &str, version: &str) -> String {
    let mut dp: Value =
        serde_yaml::from_str(&sample_manifest("own-code.yaml")).expect("sample YAML");
    dp["spec"]["functions"]
        .as_array_mut()
        .expect("functions")
        .push(json!({
            "name": "notify",
            "code": {"s3": {"bucket": bucket, "key": "notify/index.zip",
                            "sha256": hex_sha256(&node_zip())},
                     "runtime": "nodejs22.x", "handler": "index.handler"},
            "triggers": [{"bucket": {"name": "reports", "events": ["s3:ObjectCreated:*"]}}]
        }));
    for f in dp["spec"]["functions"].as_array_mut().expect("functions") {
        let rust = f["name"] == "word-count";
        let s3 = &mut f["code"]["s3"];
        s3["bucket"] = json!(bucket);
        if rust {
            s3["key"] = json!(rust_key);
            s3["sha256"] = json!(rust_sha);
        } else if s3["key"] != "notify/index.zip" {
            s3["key"] = json!("summarize/handler.zip");
            s3.as_object_mut().expect("s3").remove("sha256");
            s3["versionId"] = json!(version);
        }
    }
    dp.to_string()
}

/// Deletes the team's code bucket, every version of every object first.
async fn remove_bucket(s3: &aws_sdk_s3::Client, bucket: &str) {
    let versions = s3
        .list_object_versions()
        .bucket(bucket)
        .send()
        .await
        .expect("versions");
    for v in versions.versions() {
        s3.delete_object()
            .bucket(bucket)
            .key(v.key().expect("key"))
            .set_version_id(v.version_id().map(str::to_owned))
            .send()
            .await
            .expect("delete version");
    }
    s3.delete_bucket()
        .bucket(bucket)
        .send()
        .await
        .expect("delete bucket");
}

fn writes(calls: &std::collections::BTreeMap<String, u64>) -> Vec<(&String, &u64)> {
    calls
        .iter()
        .filter(|(k, _)| k.ends_with("(write)"))
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn own_rust_python_and_node_code_runs_updates_by_version_and_is_held_to_its_edges() {
    install_crd();
    let policy_name = format!("own-code-{}", token());
    let ns = Namespace::under_policy(&policy_name);
    let op = Operator::start(&ns.0);
    // What the harness's rendering of the operator policy lets the
    // operator read (CODE_BUCKET), and what the platform lists.
    let bucket = format!("{}-team-code", op.prefix);
    let _policy = Policy::apply(&policy_name, json!({"codeBuckets": [bucket]}));
    let sdk = sdk().await;
    let s3 = s3(&sdk);
    let lambda = aws_sdk_lambda::Client::new(&sdk);
    s3.create_bucket()
        .bucket(&bucket)
        .send()
        .await
        .expect("bucket");
    s3.put_bucket_versioning()
        .bucket(&bucket)
        .versioning_configuration(
            aws_sdk_s3::types::VersioningConfiguration::builder()
                .status(aws_sdk_s3::types::BucketVersioningStatus::Enabled)
                .build(),
        )
        .send()
        .await
        .expect("versioning");

    let rust = rust_zip();
    let rust_sha = hex_sha256(&rust);
    let rust_key = format!("word-count/word-count-{rust_sha}.zip");
    upload(&s3, &bucket, &rust_key, rust).await;
    let v1 = upload(&s3, &bucket, "summarize/handler.zip", python_zip("")).await;
    upload(&s3, &bucket, "notify/index.zip", node_zip()).await;

    let applied = Instant::now();
    let applied_at = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs_f64();
    let to_ready = apply_and_wait(
        &ns.0,
        NAME,
        &manifest(&bucket, &rust_key, &rust_sha, &v1),
        "Ready",
        &op,
    );
    let dp = get_pipeline(&ns.0, NAME);
    let incoming = id_of(&dp, "S3::Bucket", "incoming");
    let reports = id_of(&dp, "S3::Bucket", "reports");
    let text = "the quick brown fox\njumps over\nthe lazy dog\n";
    s3.put_object()
        .bucket(&incoming)
        .key("fox.txt")
        .body(ByteStream::from_static(text.as_bytes()))
        .send()
        .await
        .expect("put");
    let report = wait_for(
        "the Python function's report",
        Duration::from_secs(60),
        || object_text(&s3, &reports, "reports/fox.txt.json"),
    )
    .await;
    let to_first = applied.elapsed();
    let report: Value = serde_json::from_str(&report).expect("report JSON");
    assert_eq!(report["words"], 9, "{report}");
    assert_eq!(report["lines"], 3, "{report}");
    assert_eq!(report["key"], "fox.txt", "{report}");
    // When each runtime first finished processing, from the harness's
    // record of the invocations (epoch seconds).
    let first_done = |logical: &str| {
        let function = id_of(&dp, "Lambda::Function", logical);
        invocations(&function)
            .iter()
            .filter(|i| i["error"].is_null())
            .filter_map(|i| i["at"].as_f64())
            .fold(f64::INFINITY, f64::min)
            - applied_at
    };
    println!(
        "own code: kubectl apply → Ready {:.2} s; → first object processed by the Rust function \
         (provided.al2023) {:.2} s, by the Python function (python3.12) {:.2} s, by the Node \
         function (nodejs22.x) {:.2} s; report readable {:.2} s",
        to_ready.as_secs_f64(),
        first_done("word-count"),
        first_done("summarize"),
        wait_for(
            "the Node function's first run",
            Duration::from_secs(60),
            || {
                let done = first_done("notify");
                async move { done.is_finite().then_some(done) }
            }
        )
        .await,
        to_first.as_secs_f64()
    );
    let status_sources: Vec<String> = dp["status"]["functions"]
        .as_array()
        .expect("functions")
        .iter()
        .map(|f| f["source"].as_str().unwrap_or_default().to_owned())
        .collect();
    assert!(
        status_sources.contains(&format!(
            "s3://{bucket}/summarize/handler.zip?versionId={v1}"
        )),
        "{status_sources:?}"
    );

    // Held to its edges: word-count may read `incoming` only. Invoked with
    // an event naming `reports`, its read is denied by IAM.
    let word_count = id_of(&dp, "Lambda::Function", "word-count");
    let word_count_role = id_of(&dp, "IAM::Role", "word-count");
    let event = json!({"Records": [{"eventSource": "aws:s3", "eventName": "ObjectCreated:Put",
        "s3": {"bucket": {"name": reports}, "object": {"key": "reports/fox.txt.json"}}}]});
    let out = lambda
        .invoke()
        .function_name(&word_count)
        .payload(aws_sdk_lambda::primitives::Blob::new(event.to_string()))
        .send()
        .await
        .expect("invoke");
    let denied = match harness("GET", "denials") {
        Value::Array(d) => d.iter().any(|d| {
            d["principal"]
                .as_str()
                .unwrap_or_default()
                .contains(&format!("assumed-role/{word_count_role}/"))
                && d["action"] == "s3:GetObject"
                && d["resource"]
                    .as_str()
                    .unwrap_or_default()
                    .contains(&reports)
        }),
        other => panic!("denials: {other}"),
    };
    assert!(
        denied,
        "word-count ({word_count_role}) read a bucket it has no edge to (function error: {:?}); \
         denials: {:#}",
        out.function_error(),
        harness("GET", "denials")
    );

    // A new version of the Python code: one UpdateFunctionCode, no other write.
    let summarize = id_of(&dp, "Lambda::Function", "summarize");
    let v2 = upload(
        &s3,
        &bucket,
        "summarize/handler.zip",
        python_zip("\n# version 2\n"),
    )
    .await;
    let v2_sha = hex_sha256(&python_zip("\n# version 2\n"));
    let before = op.aws_calls();
    kubectl_stdin_ok(
        &["apply", "-n", &ns.0, "-f", "-"],
        &manifest(&bucket, &rust_key, &rust_sha, &v2),
    );
    let deployed = |lambda: aws_sdk_lambda::Client, name: String| async move {
        lambda
            .get_function_configuration()
            .function_name(name)
            .send()
            .await
            .expect("function")
            .code_sha256()
            .map(str::to_owned)
    };
    let want = {
        use base64::Engine;
        base64::engine::general_purpose::STANDARD.encode(hex::decode(&v2_sha).expect("hex"))
    };
    wait_for("the new version deployed", Duration::from_secs(60), || {
        let (lambda, summarize, want) = (lambda.clone(), summarize.clone(), want.clone());
        async move { (deployed(lambda, summarize).await.as_deref() == Some(&want)).then_some(()) }
    })
    .await;
    poke_and_wait(&ns.0, NAME, &op);
    let update = calls_between(&before, &op.aws_calls());
    assert_eq!(
        writes(&update),
        vec![(&"lambda:UpdateFunctionCode (write)".to_owned(), &1)],
        "a new version must change the code and nothing else: {update:#?}"
    );

    // Out of band, back to version 1: reverted at the next resync.
    lambda
        .update_function_code()
        .function_name(&summarize)
        .s3_bucket(&bucket)
        .s3_key("summarize/handler.zip")
        .s3_object_version(&v1)
        .send()
        .await
        .expect("out-of-band update");
    assert_ne!(
        deployed(lambda.clone(), summarize.clone()).await.as_deref(),
        Some(want.as_str())
    );
    poke_and_wait(&ns.0, NAME, &op);
    wait_for("the drift reverted", Duration::from_secs(60), || {
        let (lambda, summarize, want) = (lambda.clone(), summarize.clone(), want.clone());
        async move { (deployed(lambda, summarize).await.as_deref() == Some(&want)).then_some(()) }
    })
    .await;

    // A layer and a VPC, where the policy lists them: the function's
    // configuration, and its role may make network interfaces in exactly
    // those subnets. (The emulator checks neither ids nor layer contents.)
    let layer = lambda
        .publish_layer_version()
        .layer_name(format!("{}-team-layer", op.prefix))
        .content(
            aws_sdk_lambda::types::LayerVersionContentInput::builder()
                .zip_file(aws_sdk_lambda::primitives::Blob::new(zip::stored(&[(
                    "python/teamlib.py",
                    b"NAME = 'team'\n",
                )])))
                .build(),
        )
        .send()
        .await
        .expect("layer")
        .layer_version_arn()
        .expect("layer ARN")
        .to_owned();
    let (subnet, group) = ("subnet-0123456789abcdef0", "sg-0123456789abcdef0");
    Policy::update(
        &policy_name,
        json!({"codeBuckets": [bucket], "layers": [layer.rsplit_once(':').expect("versioned").0],
               "subnets": [subnet], "securityGroups": [group]}),
    );
    let mut dp_vpc: Value =
        serde_json::from_str(&manifest(&bucket, &rust_key, &rust_sha, &v2)).expect("JSON");
    dp_vpc["spec"]["functions"][1]["layers"] = json!([layer]);
    dp_vpc["spec"]["functions"][1]["vpc"] =
        json!({"subnetIds": [subnet], "securityGroupIds": [group]});
    kubectl_stdin_ok(&["apply", "-n", &ns.0, "-f", "-"], &dp_vpc.to_string());
    let config = wait_for("the layer and the VPC", Duration::from_secs(60), || {
        let (lambda, summarize) = (lambda.clone(), summarize.clone());
        async move {
            let c = lambda
                .get_function_configuration()
                .function_name(summarize)
                .send()
                .await
                .ok()?;
            (!c.layers().is_empty()).then_some(c)
        }
    })
    .await;
    assert_eq!(config.layers()[0].arn(), Some(layer.as_str()));
    let vpc = config.vpc_config().expect("VPC");
    assert_eq!(vpc.subnet_ids(), [subnet]);
    assert_eq!(vpc.security_group_ids(), [group]);
    let iam = aws_sdk_iam::Client::new(&sdk);
    let policy = iam
        .get_role_policy()
        .role_name(id_of(&dp, "IAM::Role", "summarize"))
        .policy_name("sluice")
        .send()
        .await
        .expect("role policy");
    let policy = percent_encoding::percent_decode_str(policy.policy_document())
        .decode_utf8()
        .expect("UTF-8")
        .into_owned();
    assert!(
        policy.contains("NetworkInterfacesInItsSubnets")
            && policy.contains(&format!("subnet/{subnet}"))
            && policy.contains(&format!("security-group/{group}")),
        "{policy}"
    );

    sluice_e2e::flow::empty_buckets(&s3, &get_pipeline(&ns.0, NAME)).await;
    delete_pipeline(&ns.0, NAME, &op);
    remove_bucket(&s3, &bucket).await;
    let (layer_name, layer_version) = layer
        .rsplit_once(':')
        .map(|(l, v)| (l.rsplit(':').next().expect("name").to_owned(), v))
        .expect("versioned");
    lambda
        .delete_layer_version()
        .layer_name(layer_name)
        .version_number(layer_version.parse().expect("version"))
        .send()
        .await
        .expect("delete layer");
    sluice_e2e::assert_nothing_left(&sdk, &op.prefix).await;
}

/// Waits until the pipeline's status names every one of `needles`; the
/// status then.
async fn status_naming(ns: &str, needles: &[&str]) -> String {
    let needles: Vec<String> = needles.iter().map(|n| (*n).to_owned()).collect();
    wait_for(
        &format!("the status naming {needles:?}"),
        Duration::from_secs(60),
        || {
            let (ns, needles) = (ns.to_owned(), needles.clone());
            async move {
                let status = get_pipeline(&ns, NAME)["status"].to_string();
                needles
                    .iter()
                    .all(|n| status.contains(n.as_str()))
                    .then_some(status)
            }
        },
    )
    .await
}

#[tokio::test(flavor = "multi_thread")]
async fn code_the_policy_does_not_list_or_that_is_not_what_it_claims_is_stalled() {
    install_crd();
    let policy_name = format!("own-code-bad-{}", token());
    let ns = Namespace::under_policy(&policy_name);
    let op = Operator::start(&ns.0);
    let bucket = format!("{}-team-code", op.prefix);
    let sdk = sdk().await;
    let s3 = s3(&sdk);
    s3.create_bucket()
        .bucket(&bucket)
        .send()
        .await
        .expect("bucket");
    // The real Rust zip (an x86-64 bootstrap), and a Python zip without
    // the module its handler names.
    let rust = rust_zip();
    let rust_sha = hex_sha256(&rust);
    let python = zip::stored(&[("other.py", b"def handler(e, c):\n    return e\n")]);
    for (key, body) in [
        ("word-count/w.zip", rust),
        ("summarize/handler.zip", python.clone()),
    ] {
        s3.put_object()
            .bucket(&bucket)
            .key(key)
            .body(ByteStream::from(body))
            .send()
            .await
            .expect("put");
    }
    let spec = |architecture: &str, rust_pin: &str| {
        let mut dp: Value =
            serde_yaml::from_str(&sample_manifest("own-code.yaml")).expect("sample YAML");
        dp["spec"]["functions"][0]["code"]["s3"] =
            json!({"bucket": bucket, "key": "word-count/w.zip", "sha256": rust_pin});
        dp["spec"]["functions"][0]["code"]["architecture"] = json!(architecture);
        dp["spec"]["functions"][1]["code"]["s3"] = json!({"bucket": bucket,
            "key": "summarize/handler.zip", "sha256": hex_sha256(&python)});
        dp.to_string()
    };
    let apply = |manifest: String| kubectl_stdin_ok(&["apply", "-n", &ns.0, "-f", "-"], &manifest);

    // Not listed in the namespace's policy: refused before anything is made.
    let _policy = Policy::apply(&policy_name, json!({}));
    let stalled = apply_and_wait(&ns.0, NAME, &spec("arm64", &rust_sha), "Stalled", &op);
    status_naming(&ns.0, &["spec.functions[0].code.s3.bucket", "codeBuckets"]).await;
    println!("unlisted bucket: Stalled {:.2} s", stalled.as_secs_f64());

    // Listed: a bootstrap built for x86-64 declared arm64 (its ELF header).
    Policy::update(&policy_name, json!({"codeBuckets": [bucket]}));
    status_naming(
        &ns.0,
        &["spec.functions[0].code.architecture", "built for x86_64"],
    )
    .await;
    // The right architecture: the Python zip lacks handler.py.
    apply(spec("x86_64", &rust_sha));
    status_naming(&ns.0, &["spec.functions[1].code.handler", "handler.py"]).await;
    // A pin that is not the object's digest.
    apply(spec("x86_64", &"0".repeat(64)));
    status_naming(&ns.0, &["spec.functions[0].code.s3.sha256", &rust_sha]).await;

    delete_pipeline(&ns.0, NAME, &op);
    remove_bucket(&s3, &bucket).await;
    sluice_e2e::assert_nothing_left(&sdk, &op.prefix).await;
}
