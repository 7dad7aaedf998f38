//! Pattern 3 `extract` step: reads the S3 object named in the input.

use sluice_handlers::{aws, config::ProcessEnv, logging, store::S3Store, workflow};

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    logging::init();
    let config = workflow::ExtractConfig::from_env(&ProcessEnv);
    let store = S3Store::new(aws::s3_client(&aws::load_config().await));
    let (store, config) = (&store, &config);
    logging::run(move |input| workflow::extract(store, config, input)).await
}
