//! AWS SDK wiring shared by the binaries.

use aws_sdk_s3::error::SdkError;
use aws_sdk_s3::error::{DisplayErrorContext, ProvideErrorMetadata};

use crate::error::StoreError;

/// Loads the default SDK configuration (region, credentials, and the
/// `AWS_ENDPOINT_URL` / `AWS_ENDPOINT_URL_<SERVICE>` overrides tests use to
/// reach an emulator).
pub async fn load_config() -> aws_config::SdkConfig {
    config_loader().load().await
}

/// The loader behind [`load_config`], for callers that override something
/// (tests pin the region). It carries the one HTTPS client the SDK crates
/// use (hyper 1, rustls on ring): they are built without a TLS feature of
/// their own, which keeps aws-lc-rs and a second HTTP stack out of the
/// binary.
pub fn config_loader() -> aws_config::ConfigLoader {
    use aws_smithy_http_client::{
        Builder,
        tls::{Provider, rustls_provider::CryptoMode},
    };
    let https = Builder::new()
        .tls_provider(Provider::Rustls(CryptoMode::Ring))
        .build_https();
    aws_config::defaults(aws_config::BehaviorVersion::latest()).http_client(https)
}

/// An S3 client. With a custom endpoint (an emulator, or an S3-compatible
/// store) or `SLUICE_S3_FORCE_PATH_STYLE=true`, path-style addressing is
/// used: virtual-hosted names like `bucket.127.0.0.1` do not resolve.
pub fn s3_client(config: &aws_config::SdkConfig) -> aws_sdk_s3::Client {
    let custom_endpoint =
        config.endpoint_url().is_some() || crate::config::optional("AWS_ENDPOINT_URL_S3").is_some();
    let forced = crate::config::optional("SLUICE_S3_FORCE_PATH_STYLE")
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
