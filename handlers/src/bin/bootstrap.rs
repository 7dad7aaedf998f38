//! The one executable of every built-in handler: Lambda starts it as
//! `bootstrap` and names the handler in `_HANDLER` (see
//! `sluice_handlers::entry`).

use sluice_handlers::{entry, kit::logging};

// One thread: a function has at most about one vCPU below 1,769 MB, its
// I/O is concurrent on one thread, and each worker thread would cost stack
// and an allocator arena of resident memory.
#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), lambda_runtime::Error> {
    logging::init();
    let handler_setting = std::env::var("_HANDLER").ok();
    let argv0 = std::env::args().next();
    let handler = entry::resolve(handler_setting.as_deref(), argv0.as_deref()).map_err(|e| {
        tracing::error!(error = %e, "cannot pick a handler");
        lambda_runtime::Error::from(e)
    })?;
    entry::run(handler).await
}
