//! Shared harness of the integration tests: the operator's AWS layer driven
//! directly against the AWS API emulator (moto server) that
//! `scripts/localenv.sh` starts. Each test uses its own random pipeline
//! identity (prefix and UID), so tests run in parallel on one emulator.

use std::path::PathBuf;

use sluice_operator::{
    artifacts::{Artifact, Catalog},
    aws::Aws,
    aws::quota::QuotaConfig,
    crd::DataPipelineSpec,
    metrics::Metrics,
    naming::PipelineId,
    plan::{self, Plan, PlanContext},
};

/// The SDK configuration for the emulator. Panics with the way to get one
/// when the environment is missing, rather than silently skipping.
pub async fn sdk_config() -> aws_config::SdkConfig {
    assert!(
        std::env::var_os("AWS_ENDPOINT_URL").is_some(),
        "AWS_ENDPOINT_URL is not set: integration tests run against the AWS emulator; \
         run them with `make env-tests` (or source the env file of `scripts/localenv.sh up`)"
    );
    sluice_operator::aws::config_loader().load().await
}

/// An IAM user of the emulator holding exactly the operator's policy
/// (`config/iam/operator-policy*.json`) for names starting with
/// `prefix`, made by the harness (`POST /_sluice/iam/operator`): its key,
/// its secret and the ARN of the pipeline roles' boundary.
pub fn operator_user(prefix: &str) -> (String, String, String) {
    use std::io::{Read, Write};
    let endpoint = std::env::var("AWS_ENDPOINT_URL").expect("AWS_ENDPOINT_URL");
    let address = endpoint
        .trim_start_matches("http://")
        .trim_end_matches('/')
        .to_owned();
    let mut stream = std::net::TcpStream::connect(&address).expect("connect to the emulator");
    write!(
        stream,
        "POST /_sluice/iam/operator?prefix={prefix} HTTP/1.0\r\nHost: {address}\r\nContent-Length: 0\r\n\r\n"
    )
    .expect("request");
    let mut response = String::new();
    stream.read_to_string(&mut response).expect("response");
    let (head, body) = response.split_once("\r\n\r\n").expect("HTTP response");
    assert!(head.contains(" 200 "), "{head}\n{body}");
    let user: serde_json::Value = serde_json::from_str(body).expect("JSON");
    let field = |k: &str| user[k].as_str().expect(k).to_owned();
    (
        field("accessKeyId"),
        field("secretAccessKey"),
        field("permissionsBoundaryArn"),
    )
}

/// A short random lowercase token.
pub fn token() -> String {
    let n: u64 = rand::random();
    format!("{:x}", n)[..8].to_owned()
}

/// Everything one test needs: its own clients, metrics and identity.
#[derive(Debug)]
pub struct Harness {
    /// AWS clients (counted by `metrics`).
    pub aws: Aws,
    /// This test's own metrics, so write counts are not shared.
    pub metrics: Metrics,
    /// This test's pipeline identity.
    pub id: PipelineId,
    /// Artifacts (fake zips written by the harness).
    pub catalog: Catalog,
    /// Raw SDK config, for assertions with plain SDK clients: the
    /// administrator's, who may plant and inspect anything.
    pub sdk: aws_config::SdkConfig,
    /// The boundary every role of this identity carries.
    pub boundary: String,
}

impl Harness {
    /// A harness with a fresh identity in `us-east-1`, calling AWS as the
    /// operator does: as an IAM user holding exactly the operator's policy
    /// for the identity's prefix, so every call the AWS layer makes here is
    /// one that policy must allow (the emulator enforces IAM).
    pub async fn new() -> Self {
        let sdk = sdk_config().await;
        let metrics = Metrics::new();
        // The client-side limits have unit tests of their own; here they
        // would only stretch every test to AWS's pace.
        let fast = QuotaConfig::scaled(20.0);
        let t = token();
        let prefix = format!("it{}", &t[..4]);
        let (key, secret, boundary) = operator_user(&prefix);
        let operator = {
            use aws_sdk_s3::config::{Credentials, SharedCredentialsProvider};
            sdk.clone()
                .into_builder()
                .credentials_provider(SharedCredentialsProvider::new(Credentials::new(
                    key, secret, None, None, "operator",
                )))
                .build()
        };
        let aws = Aws::connect(&operator, "us-east-1", fast, metrics.clone())
            .await
            .expect("connect to the emulator");
        let id = PipelineId {
            prefix,
            account: aws.account.clone(),
            region: "us-east-1".into(),
            namespace: "it".into(),
            name: format!("p-{t}"),
            uid: format!("uid-{t}"),
            namespace_uid: format!("ns-uid-{t}"),
            installation: sluice_operator::config::Secret(format!("it-installation-{t}")),
            adopt_from: None,
            kept_bucket_names: Default::default(),
        };
        let catalog = every_handler(b"v1");
        Harness {
            aws,
            metrics,
            id,
            catalog,
            sdk,
            boundary,
        }
    }

    /// Plans a spec for this harness's identity.
    pub fn plan(&self, spec: &DataPipelineSpec) -> Plan {
        plan::plan(
            spec,
            PlanContext {
                id: &self.id,
                catalog: &self.catalog,
                permissions_boundary: Some(&self.boundary),
            },
        )
    }

    /// `(reads, writes)` made so far.
    pub fn calls(&self) -> (u64, u64) {
        self.metrics.aws_totals()
    }
}

/// Writes a stand-in zip for a handler and returns its artifact. The
/// emulator stores code without running it, so any bytes do.
pub fn fake_artifact(name: &str, content: &[u8]) -> Artifact {
    let dir: PathBuf = std::env::temp_dir().join(format!("sluice-it-{}", token()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let zip = format!("{name}.zip");
    std::fs::write(dir.join(&zip), content).expect("write zip");
    Artifact {
        name: name.into(),
        zip,
        sha256: sluice_operator::artifacts::sha256_hex(content),
        size: content.len() as u64,
        dir,
        architecture: "x86_64".into(),
        required_env: Default::default(),
    }
}

/// Stand-in artifacts for every built-in handler (one zip serves them all,
/// as in the real manifest), with the requirements the handlers declare.
pub fn every_handler(content: &[u8]) -> Catalog {
    let requirements: serde_json::Value =
        serde_json::from_str(include_str!("../../handlers/requirements.json"))
            .expect("handlers/requirements.json");
    let zip = fake_artifact("sluice-handlers", content);
    Catalog::from_artifacts(
        requirements
            .as_object()
            .expect("object")
            .iter()
            .map(|(name, r)| Artifact {
                name: name.clone(),
                required_env: r["requiredEnv"]
                    .as_object()
                    .expect("requiredEnv")
                    .iter()
                    .map(|(k, v)| (k.clone(), v.as_str().expect("edge").to_owned()))
                    .collect(),
                ..zip.clone()
            })
            .collect(),
    )
}

/// A sample of `config/samples/`, as a spec.
pub fn sample(file: &str) -> DataPipelineSpec {
    let path = format!(
        "{}/../config/samples/{file}",
        std::env::var("CARGO_MANIFEST_DIR")
            .unwrap_or_else(|_| env!("CARGO_MANIFEST_DIR").to_owned())
    );
    let raw = std::fs::read_to_string(&path).expect("sample");
    let doc: sluice_operator::crd::DataPipeline =
        serde_yaml::from_str(&raw).expect("sample parses");
    doc.spec
}

/// The Pattern 1 spec used across tests.
pub fn pattern1() -> DataPipelineSpec {
    serde_yaml::from_str(
        r#"
buckets: [{name: input}, {name: processed}]
functions:
  - name: processor
    handler: s3-json-transform
    memoryMiB: 256
    timeoutSeconds: 60
    triggers: [{bucket: {name: input, events: ["s3:ObjectCreated:*"], suffix: .json}}]
    uses: [{bucket: processed, access: write, env: OUTPUT_BUCKET}]
"#,
    )
    .expect("valid spec")
}
