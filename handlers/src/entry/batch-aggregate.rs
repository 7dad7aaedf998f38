//! Pattern 5 batch job: aggregates yesterday's objects into a daily summary.

use crate::kit::limits::IoLimits;
use crate::{builtin::batch_aggregate, kit::aws, kit::config::ProcessEnv, kit::logging};

/// Runs the handler's runtime loop (logging is already initialised).
pub(super) async fn run() -> Result<(), lambda_runtime::Error> {
    let config =
        batch_aggregate::BatchConfig::from_env(&ProcessEnv).map_err(logging::startup_error)?;
    let limits = IoLimits::from_env(&ProcessEnv).map_err(logging::startup_error)?;
    let store = crate::kit::store::S3Store::for_function(&aws::load_config().await);
    let (store, config) = (&store, &config);
    logging::run(move |event| {
        batch_aggregate::handle_with(store, config, limits, event, chrono::Utc::now())
    })
    .await
}
