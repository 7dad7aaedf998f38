//! Pattern 1 processor: S3 event → enriched JSON in `OUTPUT_BUCKET`.

use crate::{builtin::s3_transform, kit::aws, kit::config::ProcessEnv, kit::logging};

/// Runs the handler's runtime loop (logging is already initialised).
pub(super) async fn run() -> Result<(), lambda_runtime::Error> {
    let config =
        s3_transform::TransformConfig::from_env(&ProcessEnv).map_err(logging::startup_error)?;
    let store = crate::kit::store::S3Store::for_function(&aws::load_config().await);
    let (store, config) = (&store, &config);
    // The event's JSON text: each record is parsed into just what is read.
    logging::run_raw(move |event| s3_transform::handle(store, config, event, chrono::Utc::now()))
        .await
}
