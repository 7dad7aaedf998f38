//! Pattern 2 router: S3 event → `data-event` on the `EVENT_BUS` bus.

use crate::{
    builtin::router, kit::aws, kit::config::ProcessEnv, kit::logging,
    kit::publisher::EventBridgePublisher,
};

/// Runs the handler's runtime loop (logging is already initialised).
pub(super) async fn run() -> Result<(), lambda_runtime::Error> {
    let config = router::RouterConfig::from_env(&ProcessEnv).map_err(logging::startup_error)?;
    let sdk = aws::load_config().await;
    let store = crate::kit::store::S3Store::for_function(&sdk);
    let publisher = EventBridgePublisher::new(aws_sdk_eventbridge::Client::new(&sdk));
    let (store, publisher, config) = (&store, &publisher, &config);
    logging::run(move |event| router::handle(store, publisher, config, event)).await
}
