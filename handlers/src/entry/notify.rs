//! Pattern 3 `notify` step: returns the run's summary and, with
//! `NOTIFY_EVENT_BUS` set, publishes it to that EventBridge bus.

use crate::{
    builtin::workflow, kit::aws, kit::config::ProcessEnv, kit::logging,
    kit::publisher::EventBridgePublisher,
};

/// Runs the handler's runtime loop (logging is already initialised).
pub(super) async fn run() -> Result<(), lambda_runtime::Error> {
    let config = workflow::NotifyConfig::from_env(&ProcessEnv);
    let publisher =
        EventBridgePublisher::new(aws_sdk_eventbridge::Client::new(&aws::load_config().await));
    let (publisher, config) = (&publisher, &config);
    logging::run(move |input| workflow::notify(publisher, config, input, chrono::Utc::now())).await
}
