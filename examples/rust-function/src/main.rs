//! The function's executable: reads its configuration, builds the real S3
//! and SQS clients and runs [`word_count::handle`] under the library's
//! runtime loop. A misconfigured function fails at init, naming the
//! variable, instead of failing every event.

use sluice_handlers::{
    ConfigError, ProcessEnv, S3Store, SqsSender, init_logging, lambda_runtime, load_config,
    run_raw, startup_error,
};
use word_count::{Config, handle};

// One thread: a function below 1,769 MB has at most about one vCPU, and its
// I/O is concurrent on one thread.
#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), lambda_runtime::Error> {
    init_logging();
    let config = Config::from_env(&ProcessEnv).map_err(startup_error)?;
    let sdk = load_config().await;
    let store = S3Store::for_function(&sdk);
    let sender = SqsSender::for_function(&sdk);
    let queue_url = sender.queue_url(&config.output_queue).await.map_err(|e| {
        startup_error(ConfigError::Invalid {
            name: "OUTPUT_QUEUE".into(),
            value: config.output_queue.clone(),
            reason: e.to_string(),
        })
    })?;
    let (store, sender, queue_url) = (&store, &sender, queue_url.as_str());
    // The event's JSON text: each record is parsed into just what is read.
    run_raw(move |event| handle(store, sender, queue_url, event)).await
}
