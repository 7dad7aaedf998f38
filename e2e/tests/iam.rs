//! Least privilege, proven by running it: the emulator enforces IAM
//! (e2e/moto/sluice_harness/iam.py), the operator acts as a user holding
//! exactly config/iam/operator-policy.json for its name prefix, and each
//! function as its execution role. The whole e2e suite runs that way; these
//! tests show that a grant missing is a refusal, not a silent success.

use aws_sdk_s3::config::{Credentials, SharedCredentialsProvider};
use serde_json::{Value, json};
use sluice_e2e::flow::harness;
use sluice_e2e::{
    Namespace, Operator, apply_and_wait, delete_pipeline, get_pipeline, id_of, install_crd, s3,
    sample_manifest, sdk, token,
};

/// The SDK configuration of the operator user for `prefix`.
async fn operator_sdk(prefix: &str) -> aws_config::SdkConfig {
    let user = harness("POST", &format!("iam/operator?prefix={prefix}"));
    let creds = Credentials::new(
        user["accessKeyId"].as_str().expect("key"),
        user["secretAccessKey"].as_str().expect("secret"),
        None,
        None,
        "harness",
    );
    sdk()
        .await
        .into_builder()
        .credentials_provider(SharedCredentialsProvider::new(creds))
        .build()
}

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
