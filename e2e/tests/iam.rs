//! Least privilege, proven by running it: the emulator enforces IAM
//! (e2e/moto/sluice_harness/iam.py), the operator acts as a user holding
//! exactly config/iam/operator-policy.json for its name prefix, and each
//! function as its execution role. The whole e2e suite runs that way; these
//! tests show that a grant missing is a refusal, not a silent success.

use aws_sdk_s3::config::{Credentials, SharedCredentialsProvider};
use serde_json::{Value, json};
use sluice_e2e::flow::harness;
use sluice_e2e::{
    Namespace, Operator, apply_and_wait, condition, delete_pipeline, get_pipeline, id_of,
    install_crd, operator_sdk, s3, sample_manifest, sdk, token,
};
use std::time::Duration;

fn denied(principal: &str, action: &str, resource: &str) -> bool {
    match harness("GET", "denials") {
        Value::Array(entries) => entries.iter().any(|d| {
            d["principal"]
                .as_str()
                .unwrap_or_default()
                .contains(principal)
                && d["action"] == action
                && d["resource"] == resource
        }),
        other => panic!("denials: {other}"),
    }
}

fn is_access_denied<E: std::fmt::Debug>(result: &Result<impl std::fmt::Debug, E>) -> bool {
    matches!(result, Err(e) if format!("{e:?}").contains("AccessDenied"))
}

#[tokio::test(flavor = "multi_thread")]
async fn an_operator_acts_only_on_names_with_its_prefix() {
    assert_eq!(
        std::env::var("SLUICE_HARNESS_IAM").as_deref(),
        Ok("enforce"),
        "these tests need the emulator to enforce IAM (scripts/localenv.sh does)"
    );
    let (mine, theirs) = (format!("iama{}", token()), format!("iamb{}", token()));
    let admin = s3(&sdk().await);
    for bucket in [format!("{mine}-data"), format!("{theirs}-data")] {
        admin
            .create_bucket()
            .bucket(&bucket)
            .send()
            .await
            .expect("admin creates");
    }
    let operator = s3(&operator_sdk(&mine).await);

    let own = operator
        .get_bucket_tagging()
        .bucket(format!("{mine}-data"))
        .send()
        .await;
    assert!(!is_access_denied(&own), "{own:?}");
    let other = operator
        .get_bucket_tagging()
        .bucket(format!("{theirs}-data"))
        .send()
        .await;
    assert!(is_access_denied(&other), "{other:?}");
    let delete = operator
        .delete_bucket()
        .bucket(format!("{theirs}-data"))
        .send()
        .await;
    assert!(is_access_denied(&delete), "{delete:?}");
    assert!(denied(
        &format!("user/operator-{mine}"),
        "s3:DeleteBucket",
        &format!("arn:aws:s3:::{theirs}-data")
    ));

    // Handing a role to Lambda needs iam:PassRole on that role: another
    // prefix's role is refused before the function exists.
    let lambda = aws_sdk_lambda::Client::new(&operator_sdk(&mine).await);
    let role = format!("arn:aws:iam::123456789012:role/{theirs}-role");
    let create = lambda
        .create_function()
        .function_name(format!("{mine}-fn"))
        .role(&role)
        .runtime(aws_sdk_lambda::types::Runtime::Providedal2023)
        .handler("x")
        .code(
            aws_sdk_lambda::types::FunctionCode::builder()
                .zip_file(aws_sdk_lambda::primitives::Blob::new(b"PK".to_vec()))
                .build(),
        )
        .send()
        .await;
    assert!(is_access_denied(&create), "{create:?}");
    assert!(denied(
        &format!("user/operator-{mine}"),
        "iam:PassRole",
        &role
    ));

    for bucket in [format!("{mine}-data"), format!("{theirs}-data")] {
        admin
            .delete_bucket()
            .bucket(&bucket)
            .send()
            .await
            .expect("cleanup");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_function_reaches_only_what_its_pipeline_grants() {
    install_crd();
    let ns = Namespace::create();
    let op = Operator::start(&ns.0);
    let sdk = sdk().await;
    let name = "event-triggered";
    apply_and_wait(
        &ns.0,
        name,
        &sample_manifest("event-triggered.yaml"),
        "Ready",
        &op,
    );
    let dp = get_pipeline(&ns.0, name);
    let processed = id_of(&dp, "S3::Bucket", "processed");
    let function = id_of(&dp, "Lambda::Function", "processor");
    let role = id_of(&dp, "IAM::Role", "processor");

    // The processor may write `processed` but not read it: an event naming
    // an object there makes it fail, and IAM says why.
    s3(&sdk)
        .put_object()
        .bucket(&processed)
        .key("probe.json")
        .body(b"{}".to_vec().into())
        .send()
        .await
        .expect("admin writes");
    let event = json!({"Records": [{
        "eventSource": "aws:s3", "eventName": "ObjectCreated:Put", "awsRegion": "us-east-1",
        "s3": {"bucket": {"name": processed, "arn": format!("arn:aws:s3:::{processed}")},
               "object": {"key": "probe.json", "size": 2}}}]});
    let out = aws_sdk_lambda::Client::new(&sdk)
        .invoke()
        .function_name(&function)
        .payload(aws_sdk_lambda::primitives::Blob::new(event.to_string()))
        .send()
        .await
        .expect("invoke");
    assert_eq!(out.function_error(), Some("Unhandled"));
    assert!(denied(
        &format!("assumed-role/{role}/"),
        "s3:GetObject",
        &format!("arn:aws:s3:::{processed}/probe.json")
    ));

    s3(&sdk)
        .delete_object()
        .bucket(&processed)
        .key("probe.json")
        .send()
        .await
        .expect("cleanup");
    delete_pipeline(&ns.0, name, &op);
}

/// Health that cannot be read says so: with CloudWatch's GetMetricData
/// denied to the operator, `Healthy` turns Unknown (`HealthUnavailable`,
/// naming the call), never True on figures it could not read; granted
/// again, the next poll reads them and it is True.
#[tokio::test(flavor = "multi_thread")]
async fn health_is_unavailable_while_the_operator_may_not_read_metrics() {
    install_crd();
    let ns = Namespace::create();
    let prefix = format!("e2e{}", &token()[..5]);
    let op = Operator::start_with(
        &[&ns.0],
        &[
            ("SLUICE_HEALTH_INTERVAL_SECONDS", "2"),
            ("SLUICE_NAME_PREFIX", prefix.as_str()),
        ],
    );
    let name = "event-triggered";
    apply_and_wait(
        &ns.0,
        name,
        &sample_manifest("event-triggered.yaml"),
        "Ready",
        &op,
    );
    let healthy = |status: &str, reason: &str| {
        let dp = get_pipeline(&ns.0, name);
        condition(&dp, "Healthy").is_some_and(|c| c["status"] == status && c["reason"] == reason)
    };
    op.wait_until("Healthy=True", Duration::from_secs(30), || {
        healthy("True", "WithinThresholds")
    });

    let iam = aws_sdk_iam::Client::new(&sdk().await);
    let user = format!("operator-{prefix}");
    let deny = json!({"Version": "2012-10-17", "Statement": [{
        "Effect": "Deny", "Action": "cloudwatch:GetMetricData", "Resource": "*"}]});
    iam.put_user_policy()
        .user_name(&user)
        .policy_name("deny-metrics")
        .policy_document(deny.to_string())
        .send()
        .await
        .expect("admin denies GetMetricData");
    op.wait_until(
        "Healthy=Unknown (HealthUnavailable)",
        Duration::from_secs(30),
        || healthy("Unknown", "HealthUnavailable"),
    );
    let dp = get_pipeline(&ns.0, name);
    let message = condition(&dp, "Healthy").expect("Healthy")["message"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert!(message.contains("GetMetricData"), "{message}");
    assert!(denied(
        &format!("user/{user}"),
        "cloudwatch:GetMetricData",
        "*"
    ));

    iam.delete_user_policy()
        .user_name(&user)
        .policy_name("deny-metrics")
        .send()
        .await
        .expect("admin grants again");
    op.wait_until("Healthy=True again", Duration::from_secs(30), || {
        healthy("True", "WithinThresholds")
    });
    delete_pipeline(&ns.0, name, &op);
}

/// CloudWatch reaches moto through a gateway that re-signs each call
/// (e2e/moto/cbor_gateway.py): it checks the caller's signature first, so
/// knowing an identity's key id without its secret gets nothing, here as in
/// AWS.
#[tokio::test(flavor = "multi_thread")]
async fn cloudwatch_refuses_a_key_id_signed_with_the_wrong_secret() {
    let admin = sdk().await;
    let key = std::env::var("AWS_ACCESS_KEY_ID").expect("the environment's key id");
    let forged = admin
        .clone()
        .into_builder()
        .credentials_provider(SharedCredentialsProvider::new(Credentials::new(
            key.as_str(),
            "not-the-secret",
            None,
            None,
            "forged",
        )))
        .build();
    let refused = aws_sdk_cloudwatch::Client::new(&forged)
        .list_metrics()
        .send()
        .await;
    assert!(
        matches!(&refused, Err(e) if format!("{e:?}").contains("InvalidSignatureException")),
        "{refused:?}"
    );
    let allowed = aws_sdk_cloudwatch::Client::new(&admin)
        .list_metrics()
        .send()
        .await;
    assert!(allowed.is_ok(), "{allowed:?}");
}
