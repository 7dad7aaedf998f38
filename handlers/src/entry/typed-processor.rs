//! Pattern 2 typed processor: SQS batch of routed events → `OUTPUT_BUCKET`
//! under `processed/<data_type>/<key>`, with a partial batch response.
//! Idempotent when `IDEMPOTENCY_TABLE` is set.

use crate::{
    builtin::typed_processor,
    kit::aws,
    kit::config::ProcessEnv,
    kit::idempotency::{self, DynamoIdempotency, IdempotencyConfig},
    kit::logging,
};

/// Runs the handler's runtime loop (logging is already initialised).
pub(super) async fn run() -> Result<(), lambda_runtime::Error> {
    let config = typed_processor::TypedProcessorConfig::from_env(&ProcessEnv)
        .map_err(logging::startup_error)?;
    let idempotency_config =
        IdempotencyConfig::from_env(&ProcessEnv).map_err(logging::startup_error)?;
    let sdk = aws::load_config().await;
    let store = crate::kit::store::S3Store::for_function(&sdk);
    let idempotency =
        idempotency_config.map(|c| DynamoIdempotency::new(aws_sdk_dynamodb::Client::new(&sdk), c));
    let (store, idempotency, config) = (&store, idempotency.as_ref(), &config);
    logging::run_with_invocation(move |event, invocation| async move {
        let now = chrono::Utc::now();
        let lease_until = idempotency::lease_until(now, invocation.deadline);
        typed_processor::handle(store, idempotency, config, event, now, lease_until).await
    })
    .await
}
