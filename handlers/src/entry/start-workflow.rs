//! Pattern 3 trigger: objects in an S3 event start `STATE_MACHINE_ARN`.

use crate::{
    builtin::start_workflow::{self, StepFunctionsStarter},
    kit::aws,
    kit::config::ProcessEnv,
    kit::logging,
};

/// Runs the handler's runtime loop (logging is already initialised).
pub(super) async fn run() -> Result<(), lambda_runtime::Error> {
    let config =
        start_workflow::StartConfig::from_env(&ProcessEnv).map_err(logging::startup_error)?;
    let starter = StepFunctionsStarter::new(aws_sdk_sfn::Client::new(&aws::load_config().await));
    let (starter, config) = (&starter, &config);
    logging::run(move |event| start_workflow::handle(starter, config, event)).await
}
