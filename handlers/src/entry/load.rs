//! Pattern 3 `load` step: writes the result to `OUTPUT_BUCKET`.

use crate::{builtin::workflow, kit::aws, kit::config::ProcessEnv, kit::logging};

/// Runs the handler's runtime loop (logging is already initialised).
pub(super) async fn run() -> Result<(), lambda_runtime::Error> {
    let config = workflow::LoadConfig::from_env(&ProcessEnv).map_err(logging::startup_error)?;
    let store = crate::kit::store::S3Store::for_function(&aws::load_config().await);
    let (store, config) = (&store, &config);
    logging::run(move |input| workflow::load(store, config, input)).await
}
