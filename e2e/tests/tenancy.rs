//! Tenant safety end to end: a resource released by one team's pipeline is
//! adopted only by that pipeline, never by another namespace's pipeline
//! that meets it under its own name; and an operator limited to some
//! namespaces never acts for a pipeline elsewhere.

use serde_json::Value;
use sluice_e2e::{
    Namespace, Operator, apply_and_wait, condition, delete_pipeline, get_pipeline, id_of,
    install_crd, kubectl, kubectl_stdin_ok, s3, sample_manifest, sdk,
};
use sluice_operator::{
    aws::Aws,
    aws::quota::QuotaConfig,
    metrics::Metrics,
    naming::{NameKind, PipelineId, TAG_PIPELINE_UID, TAG_RELEASED_BY},
};

const NAME: &str = "event-triggered";

fn retained_sample() -> String {
    let manifest = sample_manifest("event-triggered.yaml")
        .replace("deletionPolicy: Delete", "deletionPolicy: Retain");
    assert!(manifest.contains("deletionPolicy: Retain"));
    manifest
}

/// The AWS name the operator `op` gives node `logical` of kind `kind` of
/// pipeline `ns/NAME`: the test plants a resource there.
async fn name_for(op: &Operator, ns: &str, kind: NameKind, logical: &str) -> String {
    let aws = Aws::connect(
        &sdk().await,
        "us-east-1",
        QuotaConfig::default(),
        Metrics::new(),
    )
    .await
    .expect("emulator");
    PipelineId {
        prefix: op.prefix.clone(),
        account: aws.account,
        region: "us-east-1".into(),
        namespace: ns.into(),
        name: NAME.into(),
        uid: String::new(),
        namespace_uid: String::new(),
        installation: sluice_operator::config::Secret(sluice_e2e::installation_id(&op.prefix)),
        adopt_from: None,
        kept_bucket_names: Default::default(),
    }
    .aws_name(kind, logical)
}

async fn bucket_tags(s3: &aws_sdk_s3::Client, bucket: &str) -> Vec<(String, String)> {
    s3.get_bucket_tagging()
        .bucket(bucket)
        .send()
        .await
        .map(|t| {
            t.tag_set()
                .iter()
                .map(|t| (t.key().to_owned(), t.value().to_owned()))
                .collect()
        })
        .unwrap_or_default()
}

async fn put(s3: &aws_sdk_s3::Client, bucket: &str, key: &str, body: &str) {
    s3.put_object()
        .bucket(bucket)
        .key(key)
        .body(body.as_bytes().to_vec().into())
        .send()
        .await
        .expect("put object");
}

async fn get(s3: &aws_sdk_s3::Client, bucket: &str, key: &str) -> String {
    let out = s3
        .get_object()
        .bucket(bucket)
        .key(key)
        .send()
        .await
        .unwrap_or_else(|e| panic!("{bucket}/{key}: {e:?}"));
    String::from_utf8(out.body.collect().await.expect("body").to_vec()).expect("utf-8")
}

#[tokio::test(flavor = "multi_thread")]
async fn a_released_bucket_is_adopted_only_by_the_pipeline_that_released_it() {
    install_crd();
    let (a, b) = (Namespace::create(), Namespace::create());
    let op = Operator::start_watching(&[&a.0, &b.0]);
    let s3 = s3(&sdk().await);

    // Team A's pipeline keeps data in its input bucket, then is deleted
    // with Retain: the bucket stays, marked as released by a/<NAME>.
    apply_and_wait(&a.0, NAME, &retained_sample(), "Ready", &op);
    let dp = get_pipeline(&a.0, NAME);
    let a_input = id_of(&dp, "S3::Bucket", "input");
    put(&s3, &a_input, "orders/1.txt", "team A's data").await;
    delete_pipeline(&a.0, NAME, &op);
    let marker = format!("{}/{NAME}", a.0);
    assert!(
        bucket_tags(&s3, &a_input)
            .await
            .contains(&(TAG_RELEASED_BY.to_owned(), marker.clone())),
        "released with the marker"
    );

    // Team B's pipeline meets, under its own bucket name, a bucket carrying
    // A's marker (a 64-bit name collision, made by hand here).
    let b_input = name_for(&op, &b.0, NameKind::Bucket, "input").await;
    s3.create_bucket()
        .bucket(&b_input)
        .send()
        .await
        .expect("planted bucket");
    sluice_e2e::tag_bucket(&s3, &b_input, TAG_RELEASED_BY, &marker).await;
    put(&s3, &b_input, "orders/2.txt", "also team A's").await;

    apply_and_wait(&b.0, NAME, &retained_sample(), "Stalled", &op);
    let dp_b = get_pipeline(&b.0, NAME);
    let stalled = condition(&dp_b, "Stalled").expect("Stalled");
    assert_eq!(stalled["reason"], "OwnershipConflict", "{dp_b:#}");
    let message = stalled["message"].as_str().expect("message");
    assert!(
        message.contains(&b_input) && message.contains(&marker),
        "names the bucket and the marker found: {message}"
    );
    assert_eq!(condition(&dp_b, "Ready").expect("Ready")["status"], "False");
    let events = kubectl(&[
        "get",
        "events",
        "-n",
        &b.0,
        "--field-selector",
        "reason=OwnershipConflict",
        "-o",
        "json",
    ]);
    let events: Value = serde_json::from_slice(&events.stdout).expect("events JSON");
    assert!(
        !events["items"].as_array().expect("items").is_empty(),
        "an OwnershipConflict event"
    );
    // B's role was never written, so nothing grants it the bucket.
    let b_role = name_for(&op, &b.0, NameKind::Role, "processor").await;
    let iam = aws_sdk_iam::Client::new(&sdk().await);
    assert!(
        iam.get_role().role_name(&b_role).send().await.is_err(),
        "team B's role {b_role} exists"
    );
    assert_eq!(
        bucket_tags(&s3, &b_input).await,
        vec![(TAG_RELEASED_BY.to_owned(), marker.clone())],
        "the planted bucket is untouched"
    );

    // Deleting B leaves the bucket and its data.
    delete_pipeline(&b.0, NAME, &op);
    assert_eq!(get(&s3, &b_input, "orders/2.txt").await, "also team A's");

    // Team A recreates its pipeline (a new UID): it adopts its bucket, data
    // intact.
    apply_and_wait(&a.0, NAME, &retained_sample(), "Ready", &op);
    let dp = get_pipeline(&a.0, NAME);
    assert_eq!(id_of(&dp, "S3::Bucket", "input"), a_input);
    let uid = dp["metadata"]["uid"].as_str().expect("uid").to_owned();
    let tags = bucket_tags(&s3, &a_input).await;
    assert!(
        tags.contains(&(TAG_PIPELINE_UID.to_owned(), uid)),
        "adopted: {tags:?}"
    );
    assert!(
        !tags.iter().any(|(k, _)| k == TAG_RELEASED_BY),
        "marker cleared: {tags:?}"
    );
    assert_eq!(get(&s3, &a_input, "orders/1.txt").await, "team A's data");

    // Tidy up: A leaves with Delete and empties its buckets; the planted
    // bucket goes by hand.
    let delete_policy = sample_manifest("event-triggered.yaml").replace(
        "    - name: input\n",
        "    - name: input\n      emptyOnDelete: true\n",
    );
    assert!(delete_policy.contains("emptyOnDelete"));
    apply_and_wait(&a.0, NAME, &delete_policy, "Ready", &op);
    delete_pipeline(&a.0, NAME, &op);
    assert!(
        s3.head_bucket().bucket(&a_input).send().await.is_err(),
        "deleted"
    );
    s3.delete_object()
        .bucket(&b_input)
        .key("orders/2.txt")
        .send()
        .await
        .expect("tidy up");
    s3.delete_bucket()
        .bucket(&b_input)
        .send()
        .await
        .expect("tidy up");
}

#[tokio::test(flavor = "multi_thread")]
async fn pipelines_outside_the_watched_namespaces_are_never_touched() {
    install_crd();
    let (watched, other) = (Namespace::create(), Namespace::create());
    let op = Operator::start_watching(&[&watched.0]);

    // The unwatched pipeline is applied first: a watching operator would
    // have reached it before the watched one is Ready.
    kubectl_stdin_ok(
        &["apply", "-n", &other.0, "-f", "-"],
        &sample_manifest("event-triggered.yaml"),
    );
    apply_and_wait(
        &watched.0,
        NAME,
        &sample_manifest("event-triggered.yaml"),
        "Ready",
        &op,
    );

    let untouched = get_pipeline(&other.0, NAME);
    assert!(untouched["status"].is_null(), "{untouched:#}");
    assert!(
        untouched["metadata"]["finalizers"].is_null(),
        "{untouched:#}"
    );
    let s3 = s3(&sdk().await);
    let bucket = name_for(&op, &other.0, NameKind::Bucket, "input").await;
    assert!(s3.head_bucket().bucket(&bucket).send().await.is_err());
    assert!(
        !op.log_tail().contains(&other.0),
        "the operator logged the unwatched namespace"
    );

    delete_pipeline(&watched.0, NAME, &op);
    delete_pipeline(&other.0, NAME, &op);
}
