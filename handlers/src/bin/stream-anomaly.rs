//! Pattern 4 stream processor: Kinesis batch → anomaly-scored items in
//! `RESULTS_TABLE`, with a partial batch response.

use sluice_handlers::{aws, config::ProcessEnv, dynamo::DynamoTable, logging, stream_anomaly};

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    logging::init();
    let config =
        stream_anomaly::StreamConfig::from_env(&ProcessEnv).map_err(logging::startup_error)?;
    let table = DynamoTable::new(aws_sdk_dynamodb::Client::new(&aws::load_config().await));
    let (table, config) = (&table, &config);
    logging::run(move |event| stream_anomaly::handle(table, config, event, chrono::Utc::now()))
        .await
}
