//! Pattern 3 `transform` step: adds `processed_at` and the totals.

use crate::{builtin::workflow, kit::logging};

/// Runs the handler's runtime loop (logging is already initialised).
pub(super) async fn run() -> Result<(), lambda_runtime::Error> {
    logging::run(|input| async move { workflow::transform(input, chrono::Utc::now()) }).await
}
