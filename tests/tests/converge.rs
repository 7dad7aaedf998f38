//! The reconciler's AWS layer against the AWS emulator: convergence, zero
//! writes in steady state, drift correction, ownership, garbage collection
//! and deletion.

use std::collections::BTreeMap;

use serde_json::json;
use sluice_integration_tests::{Harness, fake_artifact, pattern1};
use sluice_operator::{
    Error,
    artifacts::Catalog,
    iam,
    naming::{TAG_PIPELINE, TAG_PIPELINE_UID, TAG_RELEASED_BY},
    plan::{Kind, Plan},
    reconcile::{self, Progress},
};

async fn apply(h: &Harness, plan: &Plan, progress: &mut Progress) -> Result<(), Error> {
    reconcile::apply(&h.aws, &h.id, plan, progress).await
}

fn bucket<'a>(plan: &'a Plan, logical: &str) -> &'a str {
    &plan
        .buckets
        .iter()
        .find(|b| b.logical == logical)
        .expect("bucket planned")
        .name
}

#[tokio::test]
async fn pattern1_converges_with_exact_wiring() {
    let h = Harness::new().await;
    let plan = h.plan(&pattern1());
    let mut progress = Progress::default();
    apply(&h, &plan, &mut progress).await.expect("converges");

    let created: Vec<_> = progress
        .changes
        .iter()
        .filter(|c| c.what == "Created")
        .collect();
    assert_eq!(created.len(), 6, "{:?}", progress.changes);
    assert_eq!(progress.inventory().len(), 6);

    let input = bucket(&plan, "input");
    let processed = bucket(&plan, "processed");
    let f = &plan.functions[0];
    let role = &plan.roles[0];

    // The function and its configuration.
    let lambda = aws_sdk_lambda::Client::new(&h.sdk);
    let got = lambda
        .get_function()
        .function_name(&f.name)
        .send()
        .await
        .expect("function exists");
    let c = got.configuration().expect("configuration");
    assert_eq!(c.memory_size(), Some(256));
    assert_eq!(c.timeout(), Some(60));
    // One `bootstrap` serves every handler; `Handler` names the one to run.
    assert_eq!(c.handler(), Some("s3-json-transform"));
    assert_eq!(c.runtime().map(|r| r.as_str()), Some("provided.al2023"));
    assert_eq!(c.role(), Some(f.role_arn.as_str()));
    assert_eq!(c.code_sha256(), f.code.code_sha256().as_deref());
    let env = c
        .environment()
        .and_then(|e| e.variables())
        .expect("environment");
    assert_eq!(
        env.get("OUTPUT_BUCKET").map(String::as_str),
        Some(processed)
    );
    let tags = got.tags().expect("tags");
    assert_eq!(tags.get(TAG_PIPELINE_UID), Some(&h.id.uid));

    // The role's policy grants exactly the edges and nothing else.
    let iam_client = aws_sdk_iam::Client::new(&h.sdk);
    let doc = iam_client
        .get_role_policy()
        .role_name(&role.name)
        .policy_name("sluice")
        .send()
        .await
        .expect("inline policy");
    let doc = iam::parse_policy(doc.policy_document()).expect("policy JSON");
    let expected = json!({"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow",
         "Action": ["logs:CreateLogGroup", "logs:CreateLogStream", "logs:PutLogEvents"],
         "Resource": format!("arn:aws:logs:us-east-1:{}:log-group:/aws/lambda/{}:*", h.id.account, f.name)},
        {"Effect": "Allow", "Action": "s3:GetObject", "Resource": format!("arn:aws:s3:::{input}/*"),
         "Condition": {"StringEquals": {"s3:ResourceAccount": h.id.account}}},
        {"Effect": "Allow", "Action": ["s3:AbortMultipartUpload", "s3:PutObject"],
         "Resource": format!("arn:aws:s3:::{processed}/*"),
         "Condition": {"StringEquals": {"s3:ResourceAccount": h.id.account}}}
    ]});
    assert!(iam::same_policy(&doc, &expected), "policy was {doc:#}");

    // S3 may invoke the function, only from the input bucket and account.
    let policy = lambda
        .get_policy()
        .function_name(&f.name)
        .send()
        .await
        .expect("policy");
    let policy: serde_json::Value =
        serde_json::from_str(policy.policy().expect("policy text")).expect("policy JSON");
    let statement = &policy["Statement"][0];
    assert_eq!(statement["Principal"]["Service"], "s3.amazonaws.com");
    assert!(
        policy
            .to_string()
            .contains(&format!("arn:aws:s3:::{input}")),
        "{policy}"
    );
    assert!(policy.to_string().contains(&h.id.account), "{policy}");

    // The notification points at the function.
    let s3 = aws_sdk_s3::Client::from_conf(
        aws_sdk_s3::config::Builder::from(&h.sdk)
            .force_path_style(true)
            .build(),
    );
    let n = s3
        .get_bucket_notification_configuration()
        .bucket(input)
        .send()
        .await
        .expect("notification");
    let lambdas = n.lambda_function_configurations();
    assert_eq!(lambdas.len(), 1);
    assert!(
        lambdas[0]
            .lambda_function_arn()
            .ends_with(&format!(":function:{}", f.name))
    );
    assert_eq!(
        lambdas[0]
            .events()
            .iter()
            .map(|e| e.as_str())
            .collect::<Vec<_>>(),
        ["s3:ObjectCreated:*"]
    );
    let tagging = s3
        .get_bucket_tagging()
        .bucket(processed)
        .send()
        .await
        .expect("tags");
    assert!(
        tagging
            .tag_set()
            .iter()
            .any(|t| t.key() == TAG_PIPELINE && t.value() == h.id.pipeline_ref())
    );

    reconcile::cleanup(&h.aws, &h.id, Some(&plan), false, &mut progress)
        .await
        .expect("cleanup");
}

#[tokio::test]
async fn steady_state_makes_zero_writes() {
    let h = Harness::new().await;
    let plan = h.plan(&pattern1());
    let mut progress = Progress::default();
    apply(&h, &plan, &mut progress).await.expect("converges");

    let (reads_before, writes_before) = h.calls();
    for _ in 0..3 {
        let mut again = Progress::from_inventory(&progress.inventory());
        apply(&h, &plan, &mut again).await.expect("still converged");
        assert!(again.changes.is_empty(), "{:?}", again.changes);
    }
    let (reads_after, writes_after) = h.calls();
    assert_eq!(
        writes_after, writes_before,
        "steady state must make no AWS write calls"
    );
    let reads_per_resync = (reads_after - reads_before) / 3;
    println!("reads per resync of the Pattern 1 pipeline: {reads_per_resync}");
    assert!(
        reads_per_resync > 0 && reads_per_resync <= 12,
        "read budget: {reads_per_resync}"
    );

    reconcile::cleanup(&h.aws, &h.id, Some(&plan), false, &mut progress)
        .await
        .expect("cleanup");
}

#[tokio::test]
async fn out_of_band_changes_are_corrected_with_minimal_writes() {
    let h = Harness::new().await;
    let plan = h.plan(&pattern1());
    let mut progress = Progress::default();
    apply(&h, &plan, &mut progress).await.expect("converges");
    let f = &plan.functions[0];
    let input = bucket(&plan, "input");

    // Someone changes memory by hand and removes the bucket notification.
    let lambda = aws_sdk_lambda::Client::new(&h.sdk);
    lambda
        .update_function_configuration()
        .function_name(&f.name)
        .memory_size(1024)
        .send()
        .await
        .expect("drift");
    let s3 = aws_sdk_s3::Client::from_conf(
        aws_sdk_s3::config::Builder::from(&h.sdk)
            .force_path_style(true)
            .build(),
    );
    s3.put_bucket_notification_configuration()
        .bucket(input)
        .notification_configuration(aws_sdk_s3::types::NotificationConfiguration::builder().build())
        .send()
        .await
        .expect("drift");

    let (_, writes_before) = h.calls();
    let mut again = Progress::from_inventory(&progress.inventory());
    apply(&h, &plan, &mut again).await.expect("corrects drift");
    let (_, writes_after) = h.calls();
    assert_eq!(
        writes_after - writes_before,
        2,
        "one write per drifted resource: {:?}",
        again.changes
    );
    let kinds: Vec<_> = again.changes.iter().map(|c| c.kind).collect();
    assert_eq!(kinds, vec![Kind::Function, Kind::Notification]);
    let c = lambda
        .get_function_configuration()
        .function_name(&f.name)
        .send()
        .await
        .expect("function");
    assert_eq!(c.memory_size(), Some(256));

    reconcile::cleanup(&h.aws, &h.id, Some(&plan), false, &mut again)
        .await
        .expect("cleanup");
}

#[tokio::test]
async fn a_code_change_is_deployed_by_its_digest() {
    let mut h = Harness::new().await;
    let plan = h.plan(&pattern1());
    let mut progress = Progress::default();
    apply(&h, &plan, &mut progress).await.expect("converges");

    h.catalog = Catalog::from_artifacts(vec![fake_artifact("s3-json-transform", b"v2")]);
    let plan2 = h.plan(&pattern1());
    let mut again = Progress::from_inventory(&progress.inventory());
    apply(&h, &plan2, &mut again)
        .await
        .expect("deploys new code");
    assert_eq!(again.changes.len(), 1, "{:?}", again.changes);
    assert_eq!(again.changes[0].what, "Updated code");
    let lambda = aws_sdk_lambda::Client::new(&h.sdk);
    let c = lambda
        .get_function_configuration()
        .function_name(&plan2.functions[0].name)
        .send()
        .await
        .expect("function");
    assert_eq!(
        c.code_sha256(),
        plan2.functions[0].code.code_sha256().as_deref()
    );
    assert_ne!(
        plan.functions[0].code.code_sha256(),
        plan2.functions[0].code.code_sha256()
    );

    reconcile::cleanup(&h.aws, &h.id, Some(&plan2), false, &mut again)
        .await
        .expect("cleanup");
}

#[tokio::test]
async fn resources_of_another_pipeline_are_never_touched() {
    let h = Harness::new().await;
    let plan = h.plan(&pattern1());
    let role = &plan.roles[0];
    let iam_client = aws_sdk_iam::Client::new(&h.sdk);
    let foreign = BTreeMap::from([
        (TAG_PIPELINE_UID.to_string(), "someone-else".to_string()),
        (TAG_PIPELINE.to_string(), "other/pipeline".to_string()),
    ]);
    iam_client
        .create_role()
        .role_name(&role.name)
        .assume_role_policy_document(iam::lambda_trust_policy(&h.id.account).to_string())
        .set_tags(Some(
            foreign
                .iter()
                .map(|(k, v)| {
                    aws_sdk_iam::types::Tag::builder()
                        .key(k)
                        .value(v)
                        .build()
                        .expect("tag")
                })
                .collect(),
        ))
        .send()
        .await
        .expect("foreign role");

    let mut progress = Progress::default();
    let err = apply(&h, &plan, &mut progress).await.expect_err("conflict");
    assert!(matches!(err, Error::Conflict(_)), "{err:?}");
    assert!(err.to_string().contains("other/pipeline"), "{err}");

    // Deleting our pipeline leaves their role alone.
    reconcile::cleanup(&h.aws, &h.id, Some(&plan), false, &mut progress)
        .await
        .expect("cleanup");
    let still = iam_client
        .get_role()
        .role_name(&role.name)
        .send()
        .await
        .expect("role kept");
    let tags: BTreeMap<_, _> = still
        .role()
        .expect("role")
        .tags()
        .iter()
        .map(|t| (t.key().to_owned(), t.value().to_owned()))
        .collect();
    assert_eq!(
        tags.get(TAG_PIPELINE_UID).map(String::as_str),
        Some("someone-else")
    );
    iam_client
        .delete_role()
        .role_name(&role.name)
        .send()
        .await
        .expect("tidy up");
}

#[tokio::test]
async fn removed_nodes_are_garbage_collected() {
    let h = Harness::new().await;
    let mut spec = pattern1();
    let mut second = spec.functions[0].clone();
    second.name = "auditor".into();
    second.triggers.clear();
    spec.functions.push(second);
    let plan = h.plan(&spec);
    let mut progress = Progress::default();
    apply(&h, &plan, &mut progress).await.expect("converges");
    let auditor = plan
        .functions
        .iter()
        .find(|f| f.logical == "auditor")
        .expect("planned")
        .name
        .clone();

    spec.functions.pop();
    let smaller = h.plan(&spec);
    let mut again = Progress::from_inventory(&progress.inventory());
    apply(&h, &smaller, &mut again).await.expect("converges");
    let deleted: Vec<_> = again
        .changes
        .iter()
        .filter(|c| c.what == "Deleted")
        .map(|c| c.kind)
        .collect();
    assert_eq!(
        deleted,
        vec![Kind::Function, Kind::Role],
        "{:?}",
        again.changes
    );
    assert_eq!(again.inventory().len(), 6);
    let lambda = aws_sdk_lambda::Client::new(&h.sdk);
    assert!(
        lambda
            .get_function()
            .function_name(&auditor)
            .send()
            .await
            .is_err(),
        "auditor deleted"
    );

    reconcile::cleanup(&h.aws, &h.id, Some(&smaller), false, &mut again)
        .await
        .expect("cleanup");
}

#[tokio::test]
async fn delete_removes_everything_and_retain_only_releases() {
    let h = Harness::new().await;
    let plan = h.plan(&pattern1());
    let mut progress = Progress::default();
    apply(&h, &plan, &mut progress).await.expect("converges");
    let inventory = progress.inventory();

    // Retain: everything stays, without Sluice's tags.
    reconcile::cleanup(&h.aws, &h.id, Some(&plan), true, &mut progress)
        .await
        .expect("release");
    assert!(progress.inventory().is_empty());
    let lambda = aws_sdk_lambda::Client::new(&h.sdk);
    let f = lambda
        .get_function()
        .function_name(&plan.functions[0].name)
        .send()
        .await
        .expect("kept");
    // Only the release marker is left, naming the pipeline (not its UID),
    // its namespace's UID and the installation.
    let tags = f.tags().cloned().unwrap_or_default();
    assert_eq!(
        tags,
        h.id.release_marker()
            .into_iter()
            .collect::<std::collections::HashMap<_, _>>(),
        "{tags:?}"
    );
    assert_eq!(tags[TAG_RELEASED_BY], h.id.pipeline_ref());

    // The released resources are adopted again by the same pipeline (the
    // same namespace and name, even under a new UID)...
    let h = Harness {
        id: sluice_operator::naming::PipelineId {
            uid: format!("{}-recreated", h.id.uid),
            ..h.id.clone()
        },
        ..h
    };
    let plan = h.plan(&pattern1());
    let mut adopted = Progress::default();
    apply(&h, &plan, &mut adopted).await.expect("adopts");
    assert!(
        adopted.changes.iter().any(|c| c.what == "Adopted"),
        "{:?}",
        adopted.changes
    );

    let f = lambda
        .get_function()
        .function_name(&plan.functions[0].name)
        .send()
        .await
        .expect("adopted");
    let tags = f.tags().cloned().unwrap_or_default();
    assert_eq!(tags.get(TAG_PIPELINE_UID), Some(&h.id.uid), "{tags:?}");
    assert!(!tags.contains_key(TAG_RELEASED_BY), "{tags:?}");

    // ...and Delete removes every one of them.
    reconcile::cleanup(&h.aws, &h.id, Some(&plan), false, &mut adopted)
        .await
        .expect("delete");
    let iam_client = aws_sdk_iam::Client::new(&h.sdk);
    let s3 = aws_sdk_s3::Client::from_conf(
        aws_sdk_s3::config::Builder::from(&h.sdk)
            .force_path_style(true)
            .build(),
    );
    for entry in inventory {
        let gone = match Kind::parse(&entry.kind).expect("kind") {
            Kind::Role => iam_client
                .get_role()
                .role_name(&entry.id)
                .send()
                .await
                .is_err(),
            Kind::Bucket => s3.head_bucket().bucket(&entry.id).send().await.is_err(),
            Kind::Function => lambda
                .get_function()
                .function_name(&entry.id)
                .send()
                .await
                .is_err(),
            Kind::Permissions | Kind::Notification => true,
            other => panic!("Pattern 1 has no {other:?}"),
        };
        assert!(gone, "{} {} still exists", entry.kind, entry.id);
    }
}

#[tokio::test]
async fn a_non_empty_bucket_blocks_deletion_unless_empty_on_delete() {
    let h = Harness::new().await;
    let plan = h.plan(&pattern1());
    let mut progress = Progress::default();
    apply(&h, &plan, &mut progress).await.expect("converges");
    let processed = bucket(&plan, "processed").to_owned();
    let s3 = aws_sdk_s3::Client::from_conf(
        aws_sdk_s3::config::Builder::from(&h.sdk)
            .force_path_style(true)
            .build(),
    );
    s3.put_object()
        .bucket(&processed)
        .key("processed/a.json")
        .body(b"{}".to_vec().into())
        .send()
        .await
        .expect("put");

    let err = reconcile::cleanup(&h.aws, &h.id, Some(&plan), false, &mut progress)
        .await
        .expect_err("data is not deleted silently");
    assert!(err.to_string().contains("not empty"), "{err}");
    assert!(
        progress.inventory().iter().any(|e| e.id == processed),
        "the bucket stays in the inventory"
    );

    let mut spec = pattern1();
    spec.buckets[1].empty_on_delete = true;
    let plan = h.plan(&spec);
    reconcile::cleanup(&h.aws, &h.id, Some(&plan), false, &mut progress)
        .await
        .expect("emptied and deleted");
    assert!(s3.head_bucket().bucket(&processed).send().await.is_err());
}

fn s3_client(h: &Harness) -> aws_sdk_s3::Client {
    aws_sdk_s3::Client::from_conf(
        aws_sdk_s3::config::Builder::from(&h.sdk)
            .force_path_style(true)
            .build(),
    )
}

/// Creates a bucket by hand under `name` with `tags` and one object.
async fn plant_bucket(s3: &aws_sdk_s3::Client, name: &str, tags: &[(&str, &str)]) {
    s3.create_bucket()
        .bucket(name)
        .send()
        .await
        .expect("bucket");
    if !tags.is_empty() {
        let set = tags
            .iter()
            .map(|(k, v)| {
                aws_sdk_s3::types::Tag::builder()
                    .key(*k)
                    .value(*v)
                    .build()
                    .expect("tag")
            })
            .collect();
        s3.put_bucket_tagging()
            .bucket(name)
            .tagging(
                aws_sdk_s3::types::Tagging::builder()
                    .set_tag_set(Some(set))
                    .build()
                    .expect("tagging"),
            )
            .send()
            .await
            .expect("tags");
    }
    s3.put_object()
        .bucket(name)
        .key("data.json")
        .body(b"{}".to_vec().into())
        .send()
        .await
        .expect("object");
}

/// A resource under this pipeline's name that Sluice did not create for it
/// (no tags, or released by another pipeline) stalls the pipeline before
/// any role could be granted on it, and survives the pipeline's deletion.
#[tokio::test]
async fn unmarked_or_otherwise_released_resources_are_never_adopted() {
    for (case, tags) in [
        ("unmarked", vec![]),
        (
            "released by another",
            vec![(TAG_RELEASED_BY, "other-ns/other")],
        ),
    ] {
        let h = Harness::new().await;
        let iam_client = aws_sdk_iam::Client::new(&h.sdk);
        let plan = h.plan(&pattern1());
        let input = bucket(&plan, "input");
        let s3 = s3_client(&h);
        plant_bucket(&s3, input, &tags).await;

        let mut progress = Progress::default();
        let err = apply(&h, &plan, &mut progress).await.expect_err("conflict");
        assert!(matches!(err, Error::Conflict(_)), "{case}: {err:?}");
        let message = err.to_string();
        assert!(message.contains(input), "{case}: {message}");
        if let Some((_, by)) = tags.first() {
            assert!(message.contains(by), "{case}: {message}");
        }
        // Buckets come before roles: no role holds a grant on it.
        let role = iam_client
            .get_role()
            .role_name(&plan.roles[0].name)
            .send()
            .await;
        assert!(role.is_err(), "{case}: role created before the conflict");

        // Deleting the pipeline leaves the bucket and its data alone.
        reconcile::cleanup(&h.aws, &h.id, Some(&plan), false, &mut progress)
            .await
            .expect("cleanup");
        s3.head_object()
            .bucket(input)
            .key("data.json")
            .send()
            .await
            .unwrap_or_else(|e| panic!("{case}: data kept: {e:?}"));
        let kept: Vec<(String, String)> = s3
            .get_bucket_tagging()
            .bucket(input)
            .send()
            .await
            .map(|t| {
                t.tag_set()
                    .iter()
                    .map(|t| (t.key().to_owned(), t.value().to_owned()))
                    .collect()
            })
            .unwrap_or_default();
        let planted: Vec<(String, String)> = tags
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        assert_eq!(kept, planted, "{case}: tags untouched");
        s3.delete_object()
            .bucket(input)
            .key("data.json")
            .send()
            .await
            .expect("tidy up");
        s3.delete_bucket()
            .bucket(input)
            .send()
            .await
            .expect("tidy up");
    }
}

/// A resource this pipeline's inventory lists is its own even when someone
/// removed its tags: they are put back, as any other drift.
#[tokio::test]
async fn a_recorded_resource_whose_tags_were_removed_is_retagged() {
    let h = Harness::new().await;
    let plan = h.plan(&pattern1());
    let mut progress = Progress::default();
    apply(&h, &plan, &mut progress).await.expect("converges");
    let input = bucket(&plan, "input");
    let s3 = s3_client(&h);
    s3.delete_bucket_tagging()
        .bucket(input)
        .send()
        .await
        .expect("untag by hand");

    let mut again = Progress::from_inventory(&progress.inventory());
    apply(&h, &plan, &mut again).await.expect("still ours");
    assert_eq!(again.changes.len(), 1, "{:?}", again.changes);
    assert_eq!(again.changes[0].what, "Updated tags");
    let tags = s3
        .get_bucket_tagging()
        .bucket(input)
        .send()
        .await
        .expect("tags");
    assert!(
        tags.tag_set()
            .iter()
            .any(|t| t.key() == TAG_PIPELINE_UID && t.value() == h.id.uid),
        "{:?}",
        tags.tag_set()
    );

    reconcile::cleanup(&h.aws, &h.id, Some(&plan), false, &mut again)
        .await
        .expect("cleanup");
}

/// A role an earlier version made at path `/` (no path then) is deleted and
/// made again under the installation's path, and its function follows it
/// to the new ARN: the operator's policy may create and pass roles only
/// under the path.
#[tokio::test]
async fn a_role_of_an_earlier_version_moves_under_the_path() {
    let h = Harness::new().await;
    let plan = h.plan(&pattern1());
    let role = &plan.roles[0];
    let iam = aws_sdk_iam::Client::new(&h.sdk);
    let tags: Vec<aws_sdk_iam::types::Tag> = role
        .tags
        .iter()
        .map(|(k, v)| {
            aws_sdk_iam::types::Tag::builder()
                .key(k)
                .value(v)
                .build()
                .expect("tag")
        })
        .collect();
    let legacy = iam
        .create_role()
        .role_name(&role.name)
        .assume_role_policy_document(role.trust_policy.to_string())
        .set_tags(Some(tags))
        .send()
        .await
        .expect("a role of an earlier version");
    assert_eq!(legacy.role().expect("role").path(), "/");

    let mut progress = Progress::default();
    let mut converged = false;
    for _ in 0..20 {
        match apply(&h, &plan, &mut progress).await {
            Ok(()) => {
                converged = true;
                break;
            }
            Err(Error::Waiting { after, .. }) => {
                tokio::time::sleep(after.min(std::time::Duration::from_secs(1))).await
            }
            Err(e) => panic!("{e}"),
        }
    }
    assert!(converged, "{:?}", progress.changes);
    let moved = iam
        .get_role()
        .role_name(&role.name)
        .send()
        .await
        .expect("the role");
    let moved = moved.role().expect("role");
    assert_eq!(moved.path(), role.path);
    assert!(
        progress
            .changes
            .iter()
            .any(|c| c.kind == Kind::Role && c.what.contains("path")),
        "{:?}",
        progress.changes
    );
    let function = aws_sdk_lambda::Client::new(&h.sdk)
        .get_function_configuration()
        .function_name(&plan.functions[0].name)
        .send()
        .await
        .expect("function");
    assert_eq!(function.role(), Some(moved.arn()));

    reconcile::cleanup(&h.aws, &h.id, Some(&plan), false, &mut progress)
        .await
        .expect("cleanup");
}

/// Applies until nothing is left to wait for (at most 10 passes).
async fn converge(h: &Harness, plan: &Plan, progress: &mut Progress) {
    for _ in 0..10 {
        match apply(h, plan, progress).await {
            Ok(()) => return,
            Err(Error::Waiting { .. }) => {
                tokio::time::sleep(std::time::Duration::from_millis(200)).await;
            }
            Err(e) => panic!("converge: {e}"),
        }
    }
    panic!("still waiting after 10 passes");
}

/// A workflow whose Tasks invoke no pipeline function: its role is granted
/// nothing, so it has no inline policy (IAM refuses one without
/// statements, though the emulator takes it), and a stale one is deleted.
#[tokio::test]
async fn a_workflow_granted_nothing_converges_with_a_role_without_inline_policy() {
    let h = Harness::new().await;
    let mut spec = sluice_integration_tests::sample("orchestrated.yaml");
    spec.workflows[0].definition =
        json!({"StartAt": "A", "States": {"A": {"Type": "Pass", "End": true}}});
    spec.workflows[0].logging = sluice_operator::crd::LoggingLevel::None;
    spec.workflows[0].tracing = false;
    let plan = h.plan(&spec);
    let role = plan
        .roles
        .iter()
        .find(|r| r.trust_policy.to_string().contains("states.amazonaws.com"))
        .expect("the workflow's role")
        .name
        .clone();
    let mut progress = Progress::default();
    converge(&h, &plan, &mut progress).await;
    let iam_client = aws_sdk_iam::Client::new(&h.sdk);
    let inline = |iam_client: aws_sdk_iam::Client, role: String| async move {
        iam_client
            .list_role_policies()
            .role_name(role)
            .send()
            .await
            .expect("inline policies")
            .policy_names()
            .to_vec()
    };
    assert!(inline(iam_client.clone(), role.clone()).await.is_empty());

    // One left by an earlier version (a Deny of everything) is deleted.
    iam_client
        .put_role_policy()
        .role_name(&role)
        .policy_name(sluice_operator::plan::INLINE_POLICY)
        .policy_document(
            json!({"Version": "2012-10-17", "Statement": [
                {"Effect": "Deny", "Action": "*", "Resource": "*"}]})
            .to_string(),
        )
        .send()
        .await
        .expect("stale policy");
    converge(&h, &plan, &mut progress).await;
    assert!(inline(iam_client.clone(), role.clone()).await.is_empty());

    reconcile::cleanup(&h.aws, &h.id, Some(&plan), false, &mut progress)
        .await
        .expect("cleanup");
}
