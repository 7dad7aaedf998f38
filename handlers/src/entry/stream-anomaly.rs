//! Pattern 4 stream processor: Kinesis batch → anomaly-scored items in
//! `RESULTS_TABLE`, with a partial batch response.

use crate::kit::limits::IoLimits;
use crate::{
    builtin::stream_anomaly, kit::aws, kit::config::ProcessEnv, kit::dynamo::DynamoTable,
    kit::logging,
};

/// Runs the handler's runtime loop (logging is already initialised).
pub(super) async fn run() -> Result<(), lambda_runtime::Error> {
    let config =
        stream_anomaly::StreamConfig::from_env(&ProcessEnv).map_err(logging::startup_error)?;
    let limits = IoLimits::from_env(&ProcessEnv).map_err(logging::startup_error)?;
    let table = DynamoTable::new(aws_sdk_dynamodb::Client::new(&aws::load_config().await));
    let (table, config) = (&table, &config);
    // The batch's JSON text, parsed once into typed records; one clock
    // read per batch.
    logging::run_raw(move |event| {
        stream_anomaly::handle_with(table, config, limits, event, chrono::Utc::now())
    })
    .await
}
