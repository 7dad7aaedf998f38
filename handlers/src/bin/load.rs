//! Pattern 3 `load` step: writes the result to `OUTPUT_BUCKET`.

use sluice_handlers::{aws, config::ProcessEnv, logging, store::S3Store, workflow};

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    logging::init();
    let config = workflow::LoadConfig::from_env(&ProcessEnv).map_err(logging::startup_error)?;
    let store = S3Store::new(aws::s3_client(&aws::load_config().await));
    let (store, config) = (&store, &config);
    logging::run(move |input| workflow::load(store, config, input)).await
}
