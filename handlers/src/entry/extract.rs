//! Pattern 3 `extract` step: reads the S3 object named in the input.

use crate::{builtin::workflow, kit::aws, kit::config::ProcessEnv, kit::logging};

/// Runs the handler's runtime loop (logging is already initialised).
pub(super) async fn run() -> Result<(), lambda_runtime::Error> {
    let config = workflow::ExtractConfig::from_env(&ProcessEnv);
    let store = crate::kit::store::S3Store::for_function(&aws::load_config().await);
    let (store, config) = (&store, &config);
    logging::run(move |input| workflow::extract(store, config, input)).await
}
