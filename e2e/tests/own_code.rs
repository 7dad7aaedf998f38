//! A team's own code, end to end: the own-code sample with the template
//! Rust crate (examples/rust-function, built by `scripts/own-code.sh`) and
//! the Python example (examples/python-function), uploaded to the team's
//! code bucket, applied with kubectl, converged by the operator and run by
//! the emulator's Lambda harness under enforced IAM. A new object version
//! updates the code and nothing else; code changed out of band is
//! reverted; a function reaching a bucket it has no edge to is denied.

use std::time::{Duration, Instant};

use aws_sdk_s3::primitives::ByteStream;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use sluice_e2e::flow::{harness, object_text, wait_for};
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

/// The sample with the team's bucket, the Rust zip pinned by digest and
/// the Python zip by `version`.
fn manifest(bucket: &str, rust_key: &str, rust_sha: &str, version: &str) -> String {
    let mut dp: Value =
        serde_yaml::from_str(&sample_manifest("own-code.yaml")).expect("sample YAML");
    for f in dp["spec"]["functions"].as_array_mut().expect("functions") {
        let rust = f["name"] == "word-count";
        let s3 = &mut f["code"]["s3"];
        s3["bucket"] = json!(bucket);
        if rust {
            s3["key"] = json!(rust_key);
            s3["sha256"] = json!(rust_sha);
        } else {
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
async fn own_rust_and_python_code_runs_updates_by_version_and_is_held_to_its_edges() {
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

    let applied = Instant::now();
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
    println!(
        "own code: kubectl apply → Ready {:.2} s, → first report (Rust then Python) {:.2} s",
        to_ready.as_secs_f64(),
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

    sluice_e2e::flow::empty_buckets(&s3, &get_pipeline(&ns.0, NAME)).await;
    delete_pipeline(&ns.0, NAME, &op);
    remove_bucket(&s3, &bucket).await;
    sluice_e2e::assert_nothing_left(&sdk, &op.prefix).await;
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
    // A Python zip without the module its handler names, and a Rust zip
    // whose pinned digest is not the object's.
    let python = zip::stored(&[("other.py", b"def handler(e, c):\n    return e\n")]);
    s3.put_object()
        .bucket(&bucket)
        .key("summarize/handler.zip")
        .body(ByteStream::from(python.clone()))
        .send()
        .await
        .expect("put");
    let rust = zip::stored(&[("bootstrap", b"#!/bin/sh\n")]);
    s3.put_object()
        .bucket(&bucket)
        .key("word-count/w.zip")
        .body(ByteStream::from(rust))
        .send()
        .await
        .expect("put");
    let mut dp: Value =
        serde_yaml::from_str(&sample_manifest("own-code.yaml")).expect("sample YAML");
    dp["spec"]["functions"][0]["code"]["s3"] =
        json!({"bucket": bucket, "key": "word-count/w.zip", "sha256": "0".repeat(64)});
    dp["spec"]["functions"][1]["code"]["s3"] = json!({"bucket": bucket,
        "key": "summarize/handler.zip", "sha256": hex_sha256(&python)});

    // Not listed in the namespace's policy: refused before anything is made.
    let _policy = Policy::apply(&policy_name, json!({}));
    let stalled = apply_and_wait(&ns.0, NAME, &dp.to_string(), "Stalled", &op);
    let status = get_pipeline(&ns.0, NAME)["status"].clone();
    let message = status.to_string();
    assert!(
        message.contains("spec.functions[0].code.s3.bucket") && message.contains("codeBuckets"),
        "{status:#}"
    );
    println!("unlisted bucket: Stalled {:.2} s", stalled.as_secs_f64());

    // Listed: the wrong digest and the missing module are named.
    Policy::update(&policy_name, json!({"codeBuckets": [bucket]}));
    let message = wait_for("the code problems named", Duration::from_secs(60), || {
        let ns = ns.0.clone();
        async move {
            let status = get_pipeline(&ns, NAME)["status"].to_string();
            (status.contains("code.s3.sha256") || status.contains("code.handler")).then_some(status)
        }
    })
    .await;
    assert!(
        message.contains("spec.functions[0].code.s3.sha256")
            || message.contains("spec.functions[1].code.handler"),
        "{message}"
    );
    delete_pipeline(&ns.0, NAME, &op);
    remove_bucket(&s3, &bucket).await;
    sluice_e2e::assert_nothing_left(&sdk, &op.prefix).await;
}
