//! What each handler needs from its environment, as data the operator
//! reads: `handlers/requirements.json` is copied into the handlers'
//! manifest, and the operator stalls a function whose edges do not provide
//! a required variable, naming the edge that would (instead of the function
//! failing at init in AWS). The tests below hold the file to what each
//! handler's configuration really reads.

use std::collections::BTreeMap;

use serde::Deserialize;

use crate::kit::config::{ConfigError, Env};

/// The requirements file, as built into the crate.
pub const REQUIREMENTS_JSON: &str = include_str!("../../requirements.json");

/// One handler's requirements.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Requirements {
    /// Variable → the pipeline edge that provides it.
    pub required_env: BTreeMap<String, String>,
}

/// Every handler's requirements, by handler name.
pub fn all() -> Result<BTreeMap<String, Requirements>, serde_json::Error> {
    serde_json::from_str(REQUIREMENTS_JSON)
}

/// Reads `handler`'s configuration from `env` the way its entry point does
/// at init, so a test can hold the requirements file to the code.
pub fn load_config(handler: &str, env: &(impl Env + ?Sized)) -> Result<(), ConfigError> {
    use crate::{
        builtin::batch_aggregate, builtin::dlq, builtin::router, builtin::s3_transform,
        builtin::start_workflow, builtin::stream_anomaly, builtin::typed_processor,
        builtin::workflow, kit::idempotency,
    };
    match handler {
        "batch-aggregate" => batch_aggregate::BatchConfig::from_env(env).map(drop),
        "dlq-handler" => dlq::DlqConfig::from_env(env).map(drop),
        "extract" => {
            workflow::ExtractConfig::from_env(env);
            Ok(())
        }
        "load" => workflow::LoadConfig::from_env(env).map(drop),
        "notify" => {
            workflow::NotifyConfig::from_env(env);
            Ok(())
        }
        "router" => router::RouterConfig::from_env(env).map(drop),
        "s3-json-transform" => s3_transform::TransformConfig::from_env(env).map(drop),
        "start-workflow" => start_workflow::StartConfig::from_env(env).map(drop),
        "stream-anomaly" => stream_anomaly::StreamConfig::from_env(env).map(drop),
        "transform" => Ok(()),
        "typed-processor" => {
            typed_processor::TypedProcessorConfig::from_env(env)?;
            idempotency::IdempotencyConfig::from_env(env).map(drop)
        }
        other => Err(ConfigError::Invalid {
            name: "_HANDLER".into(),
            value: other.into(),
            reason: "not a built-in handler".into(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn env_with(vars: &[&str]) -> HashMap<String, String> {
        vars.iter()
            .map(|v| ((*v).to_owned(), format!("value-of-{v}")))
            .collect()
    }

    #[test]
    fn every_handler_has_requirements() {
        let all = all().expect("requirements.json parses");
        let names: Vec<&str> = all.keys().map(String::as_str).collect();
        assert_eq!(names, crate::HANDLERS);
    }

    /// With its required variables a handler's configuration loads; without
    /// any one of them it fails naming that variable. So the file lists
    /// exactly what the code requires.
    #[test]
    fn the_file_lists_exactly_what_each_handler_requires() {
        for (handler, requirements) in all().expect("parses") {
            let required: Vec<&str> = requirements
                .required_env
                .keys()
                .map(String::as_str)
                .collect();
            assert_eq!(
                load_config(&handler, &env_with(&required)),
                Ok(()),
                "{handler} with {required:?}"
            );
            for missing in &required {
                let rest: Vec<&str> = required.iter().copied().filter(|v| v != missing).collect();
                assert_eq!(
                    load_config(&handler, &env_with(&rest)),
                    Err(ConfigError::Missing((*missing).to_owned())),
                    "{handler} without {missing}"
                );
            }
            for (var, edge) in &requirements.required_env {
                assert!(
                    edge.contains(var),
                    "{handler}: the edge for {var} sets it: {edge}"
                );
            }
        }
    }
}
