//! Pattern 3 `transform` step: adds `processed_at` and the totals.

use sluice_handlers::{logging, workflow};

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    logging::init();
    logging::run(|input| async move { workflow::transform(input, chrono::Utc::now()) }).await
}
