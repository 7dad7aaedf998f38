//! Dead-letter handler: archives DLQ messages to `ARCHIVE_BUCKET`.

use sluice_handlers::{aws, config::ProcessEnv, dlq, logging, store::S3Store};

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    logging::init();
    let config = dlq::DlqConfig::from_env(&ProcessEnv).map_err(logging::startup_error)?;
    let store = S3Store::new(aws::s3_client(&aws::load_config().await));
    let (store, config) = (&store, &config);
    logging::run(move |event| dlq::handle(store, config, event, chrono::Utc::now())).await
}
