//! Pattern 5 batch job: aggregates yesterday's objects into a daily summary.

use sluice_handlers::{aws, batch_aggregate, config::ProcessEnv, logging, store::S3Store};

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    logging::init();
    let config =
        batch_aggregate::BatchConfig::from_env(&ProcessEnv).map_err(logging::startup_error)?;
    let store = S3Store::new(aws::s3_client(&aws::load_config().await));
    let (store, config) = (&store, &config);
    logging::run(move |event| batch_aggregate::handle(store, config, event, chrono::Utc::now()))
        .await
}
