//! Dead-letter handler: archives DLQ messages to `ARCHIVE_BUCKET` and, with
//! `REDRIVE_TARGETS` set, sends eligible ones back to their source queue.

use crate::{builtin::dlq, kit::aws, kit::config::ProcessEnv, kit::logging, kit::queue::SqsSender};

/// Runs the handler's runtime loop (logging is already initialised).
pub(super) async fn run() -> Result<(), lambda_runtime::Error> {
    let config = dlq::DlqConfig::from_env(&ProcessEnv).map_err(logging::startup_error)?;
    let sdk = aws::load_config().await;
    let store = crate::kit::store::S3Store::for_function(&sdk);
    let sender = SqsSender::new(aws_sdk_sqs::Client::new(&sdk));
    let (store, sender, config) = (&store, &sender, &config);
    logging::run(move |event| dlq::handle(store, sender, config, event, chrono::Utc::now())).await
}
