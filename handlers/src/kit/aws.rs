//! AWS SDK wiring shared by the binaries.

use aws_credential_types::{Credentials, provider::SharedCredentialsProvider};
use aws_sdk_s3::error::SdkError;
use aws_sdk_s3::error::{DisplayErrorContext, ProvideErrorMetadata};
use aws_smithy_async::{rt::sleep::TokioSleep, time::SystemTimeSource};
use aws_smithy_runtime_api::client::behavior_version::BehaviorVersion;
use aws_smithy_types::retry::RetryConfig;
use aws_types::{
    SdkConfig,
    region::Region,
    service_config::{LoadServiceConfig, ServiceConfigKey},
};

use crate::{
    kit::config::{Env, ProcessEnv},
    kit::error::StoreError,
    kit::http::LambdaHttpClient,
};

/// The SDK configuration of a function, from the environment Lambda gives
/// it (see [`sdk_config`]).
pub async fn load_config() -> SdkConfig {
    sdk_config(&ProcessEnv)
}

/// The SDK configuration for an environment: the region (`AWS_REGION`,
/// else `AWS_DEFAULT_REGION`), the execution role's credentials
/// (`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`),
/// and the `AWS_ENDPOINT_URL` / `AWS_ENDPOINT_URL_<SERVICE>` overrides that
/// reach an emulator; standard retries; HTTP/1.1 over rustls on ring
/// ([`crate::kit::http`]).
///
/// Lambda hands a custom runtime its credentials in the environment, so
/// the SDK's provider chain (profiles, SSO, web identity, ECS, IMDS) and
/// its configuration loader are not built in: they were 0.3 MB of code
/// every function kept resident.
pub fn sdk_config(env: &(impl Env + ?Sized)) -> SdkConfig {
    let mut builder = SdkConfig::builder()
        .behavior_version(BehaviorVersion::latest())
        .http_client(LambdaHttpClient::default())
        .sleep_impl(TokioSleep::new())
        .time_source(SystemTimeSource::new())
        .retry_config(RetryConfig::standard())
        .service_config(EndpointOverrides::from_env(env));
    if let Some(region) = env
        .optional("AWS_REGION")
        .or_else(|| env.optional("AWS_DEFAULT_REGION"))
    {
        builder.set_region(Some(Region::new(region)));
    }
    if let (Some(key), Some(secret)) = (
        env.optional("AWS_ACCESS_KEY_ID"),
        env.optional("AWS_SECRET_ACCESS_KEY"),
    ) {
        let credentials = Credentials::new(
            key,
            secret,
            env.optional("AWS_SESSION_TOKEN"),
            None,
            "environment",
        );
        builder.set_credentials_provider(Some(SharedCredentialsProvider::new(credentials)));
    }
    if let Some(url) = env.optional("AWS_ENDPOINT_URL") {
        builder.set_endpoint_url(Some(url));
    }
    builder.build()
}

/// `AWS_ENDPOINT_URL_<SERVICE>` (e.g. `AWS_ENDPOINT_URL_S3`,
/// `AWS_ENDPOINT_URL_DYNAMODB`), read once: what the SDK asks its
/// configuration for each client's endpoint, the way the SDK's loader
/// answers.
#[derive(Debug, Default)]
struct EndpointOverrides(Vec<(String, String)>);

impl EndpointOverrides {
    const PREFIX: &str = "AWS_ENDPOINT_URL_";

    fn from_env(env: &(impl Env + ?Sized)) -> Self {
        const SERVICES: [&str; 6] = ["S3", "DYNAMODB", "SQS", "SFN", "EVENTBRIDGE", "STS"];
        EndpointOverrides(
            SERVICES
                .iter()
                .filter_map(|service| {
                    let name = format!("{}{service}", Self::PREFIX);
                    env.optional(&name).map(|url| (name, url))
                })
                .collect(),
        )
    }
}

impl LoadServiceConfig for EndpointOverrides {
    fn load_config(&self, key: ServiceConfigKey<'_>) -> Option<String> {
        // The SDK asks for `AWS_ENDPOINT_URL` of service id e.g. "DynamoDB".
        let service = key.service_id().to_ascii_uppercase().replace(' ', "_");
        let name = format!("{}_{service}", key.env());
        self.0
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, url)| url.clone())
    }
}

/// An S3 client. With a custom endpoint (an emulator, or an S3-compatible
/// store) or `SLUICE_S3_FORCE_PATH_STYLE=true`, path-style addressing is
/// used: virtual-hosted names like `bucket.127.0.0.1` do not resolve.
pub fn s3_client(config: &SdkConfig) -> aws_sdk_s3::Client {
    let custom_endpoint = config.endpoint_url().is_some()
        || crate::kit::config::optional("AWS_ENDPOINT_URL_S3").is_some();
    let forced = crate::kit::config::optional("SLUICE_S3_FORCE_PATH_STYLE")
        .is_some_and(|v| v.eq_ignore_ascii_case("true") || v == "1");
    let s3_config = aws_sdk_s3::config::Builder::from(config)
        .force_path_style(custom_endpoint || forced)
        .build();
    aws_sdk_s3::Client::from_conf(s3_config)
}

/// Error codes meaning "this does not exist".
const NOT_FOUND_CODES: &[&str] = &[
    "NoSuchKey",
    "NotFound",
    "ResourceNotFoundException",
    "QueueDoesNotExist",
    "AWS.SimpleQueueService.NonExistentQueue",
];

/// Error codes meaning "this request is invalid and will stay invalid".
const REJECTED_CODES: &[&str] = &[
    "ValidationException",
    "InvalidArgument",
    "EntityTooLarge",
    "KeyTooLongError",
    "InvalidRequest",
    "InvalidParameterValue",
    "InvalidMessageContents",
    "InvalidAttributeName",
    "InvalidAttributeValue",
];

/// Sorts an SDK error into a [`StoreError`] by its service error code:
/// missing objects and invalid requests are permanent, everything else
/// (throttling, 5xx, timeouts, credentials, access denied while a policy
/// propagates) is transient.
pub fn classify_sdk_error<E, R>(error: &SdkError<E, R>, what: &str) -> StoreError
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug,
{
    // Service errors: the code and message are enough. Others (timeouts,
    // connection failures) need the source chain.
    let detail = match (error.code(), error.message()) {
        (Some(code), Some(message)) => format!("{code}: {message}"),
        (Some(code), None) => code.to_owned(),
        _ => DisplayErrorContext(error).to_string(),
    };
    let message = format!("{what}: {detail}");
    match error.code() {
        Some(code) if NOT_FOUND_CODES.contains(&code) => StoreError::NotFound(message),
        Some(code) if REJECTED_CODES.contains(&code) => StoreError::Rejected(message),
        _ => StoreError::Transient(message),
    }
}

#[cfg(test)]
mod tests {
    use aws_credential_types::provider::ProvideCredentials;

    use super::*;

    fn key<'a>(service_id: &'a str) -> ServiceConfigKey<'a> {
        ServiceConfigKey::builder()
            .service_id(service_id)
            .profile("endpoint_url")
            .env("AWS_ENDPOINT_URL")
            .build()
            .expect("a complete key")
    }

    #[test]
    fn a_service_endpoint_is_found_by_the_sdk_s_service_id() {
        let env = [
            ("AWS_ENDPOINT_URL_DYNAMODB", "http://127.0.0.1:4566"),
            ("AWS_ENDPOINT_URL_S3", "http://127.0.0.1:9000"),
        ];
        let overrides = EndpointOverrides::from_env(&env);
        assert_eq!(
            overrides.load_config(key("DynamoDB")).as_deref(),
            Some("http://127.0.0.1:4566")
        );
        assert_eq!(
            overrides.load_config(key("S3")).as_deref(),
            Some("http://127.0.0.1:9000")
        );
        assert_eq!(overrides.load_config(key("SQS")), None);
    }

    #[tokio::test]
    async fn region_credentials_and_endpoint_come_from_the_environment() {
        let env = [
            ("AWS_REGION", "eu-west-1"),
            ("AWS_DEFAULT_REGION", "us-east-1"),
            ("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE"),
            ("AWS_SECRET_ACCESS_KEY", "secret"),
            ("AWS_SESSION_TOKEN", "token"),
            ("AWS_ENDPOINT_URL", "http://127.0.0.1:5000"),
        ];
        let config = sdk_config(&env);
        assert_eq!(config.region().map(|r| r.as_ref()), Some("eu-west-1"));
        assert_eq!(config.endpoint_url(), Some("http://127.0.0.1:5000"));
        let credentials = config
            .credentials_provider()
            .expect("credentials")
            .provide_credentials()
            .await
            .expect("resolved");
        assert_eq!(credentials.access_key_id(), "AKIDEXAMPLE");
        assert_eq!(credentials.session_token(), Some("token"));
        assert!(config.http_client().is_some());
        assert!(config.retry_config().is_some());
    }

    #[test]
    fn without_credentials_or_region_none_is_invented() {
        let config = sdk_config(&[("AWS_DEFAULT_REGION", "us-east-2")]);
        assert_eq!(config.region().map(|r| r.as_ref()), Some("us-east-2"));
        assert!(config.credentials_provider().is_none());
        assert_eq!(config.endpoint_url(), None);
    }
}
