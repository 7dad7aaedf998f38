//! Pattern 3 `notify` step: logs and returns the run's summary.

use sluice_handlers::{logging, workflow};

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    logging::init();
    logging::run(|input| async move { workflow::notify(input, chrono::Utc::now()) }).await
}
