//! The built-in handlers' entry points, one file each, behind one
//! executable.
//!
//! Lambda's `provided.al2023` runtime starts the `bootstrap` file of a
//! function's zip and passes the function's `Handler` setting in `_HANDLER`.
//! Sluice ships one `bootstrap` for every built-in handler and sets
//! `Handler` to the handler's name (`s3-json-transform`, `router`, ...), so
//! one size-optimised link serves every function instead of one per
//! handler. Each file here reads its configuration, builds its AWS clients
//! and runs its library function under [`crate::kit::logging::run`]; the file
//! name is the handler's name.

#[path = "batch-aggregate.rs"]
mod batch_aggregate;
#[path = "dlq-handler.rs"]
mod dlq_handler;
mod extract;
mod load;
mod notify;
mod router;
#[path = "s3-json-transform.rs"]
mod s3_json_transform;
#[path = "start-workflow.rs"]
mod start_workflow;
#[path = "stream-anomaly.rs"]
mod stream_anomaly;
mod transform;
#[path = "typed-processor.rs"]
mod typed_processor;

/// Every built-in handler, by the name a pipeline's `handler:` field and a
/// function's `Handler` setting use. One file of this module each.
pub const HANDLERS: &[&str] = &[
    "batch-aggregate",
    "dlq-handler",
    "extract",
    "load",
    "notify",
    "router",
    "s3-json-transform",
    "start-workflow",
    "stream-anomaly",
    "transform",
    "typed-processor",
];

/// Picks the handler to run: `_HANDLER` (set by Lambda from the function's
/// `Handler`), else the name the executable was started under (a symlink
/// named after a handler, for running one by hand). Anything else is an
/// error that lists the valid names.
pub fn resolve(handler_setting: Option<&str>, argv0: Option<&str>) -> Result<&'static str, String> {
    let known = |name: &str| HANDLERS.iter().copied().find(|h| *h == name);
    if let Some(setting) = handler_setting.map(str::trim).filter(|s| !s.is_empty()) {
        return known(setting).ok_or_else(|| {
            format!(
                "_HANDLER (the function's Handler setting) is {setting:?}, not a built-in handler; \
                 set it to one of: {}",
                HANDLERS.join(", ")
            )
        });
    }
    let invoked_as = argv0
        .map(std::path::Path::new)
        .and_then(|p| p.file_name())
        .and_then(|n| n.to_str());
    invoked_as.and_then(known).ok_or_else(|| {
        format!(
            "no handler named: set _HANDLER (the function's Handler setting) to one of: {}",
            HANDLERS.join(", ")
        )
    })
}

/// Runs the named handler's runtime loop until Lambda stops the process.
pub async fn run(handler: &str) -> Result<(), lambda_runtime::Error> {
    match handler {
        "batch-aggregate" => batch_aggregate::run().await,
        "dlq-handler" => dlq_handler::run().await,
        "extract" => extract::run().await,
        "load" => load::run().await,
        "notify" => notify::run().await,
        "router" => router::run().await,
        "s3-json-transform" => s3_json_transform::run().await,
        "start-workflow" => start_workflow::run().await,
        "stream-anomaly" => stream_anomaly::run().await,
        "transform" => transform::run().await,
        "typed-processor" => typed_processor::run().await,
        other => Err(format!(
            "{other:?} is not a built-in handler; one of: {}",
            HANDLERS.join(", ")
        )
        .into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn handlers_list_matches_the_entry_files() {
        // Read at run time: a target directory shared between checkouts
        // can hold a test binary compiled in another one.
        let dir = format!(
            "{}/src/entry",
            std::env::var("CARGO_MANIFEST_DIR")
                .unwrap_or_else(|_| env!("CARGO_MANIFEST_DIR").to_owned())
        );
        let mut found: Vec<String> = std::fs::read_dir(&dir)
            .expect("src/entry exists")
            .filter_map(|entry| {
                let name = entry.ok()?.file_name().into_string().ok()?;
                name.strip_suffix(".rs")
                    .filter(|n| *n != "mod")
                    .map(str::to_owned)
            })
            .collect();
        found.sort();
        assert_eq!(found, HANDLERS);
    }

    #[test]
    fn the_handler_setting_picks_the_handler() {
        assert_eq!(
            resolve(Some("router"), Some("/var/task/bootstrap")),
            Ok("router")
        );
        assert_eq!(resolve(Some(" notify "), None), Ok("notify"));
    }

    #[test]
    fn a_symlink_named_after_a_handler_runs_it() {
        assert_eq!(
            resolve(None, Some("/tmp/bin/stream-anomaly")),
            Ok("stream-anomaly")
        );
        assert_eq!(resolve(Some(""), Some("extract")), Ok("extract"));
    }

    #[test]
    fn unknown_names_are_refused_with_the_choices() {
        let err = resolve(Some("bootstrap.handler"), Some("bootstrap")).expect_err("unknown");
        assert!(
            err.contains("_HANDLER") && err.contains("s3-json-transform"),
            "{err}"
        );
        let err = resolve(None, Some("/var/task/bootstrap")).expect_err("no name");
        assert!(err.contains("typed-processor"), "{err}");
    }

    #[tokio::test]
    async fn running_an_unknown_handler_fails_instead_of_hanging() {
        let err = run("nope").await.expect_err("unknown");
        assert!(err.to_string().contains("dlq-handler"), "{err}");
    }
}
