//! Semantic validation of a spec: everything the CRD schema cannot check or
//! that depends on the operator's configuration. Pure; every error names the
//! field and says what would be valid.

use std::collections::BTreeSet;

use crate::{artifacts::Catalog, config::OperatorConfig, crd::DataPipelineSpec};

/// Environment variable names Lambda reserves or Sluice sets itself.
const RESERVED_ENV_PREFIXES: [&str; 3] = ["AWS_", "LAMBDA_", "SLUICE_"];
const RESERVED_ENV_NAMES: [&str; 3] = ["_HANDLER", "_X_AMZN_TRACE_ID", "TZ"];

/// Checks a spec before planning. Returns every problem, one per line.
pub fn validate(
    spec: &DataPipelineSpec,
    config: &OperatorConfig,
    catalog: &Catalog,
) -> Result<(), String> {
    let mut problems = Vec::new();

    let region = spec.region.as_deref().unwrap_or(&config.default_region);
    if !config.allowed_regions.iter().any(|r| r == region) {
        problems.push(format!(
            "spec.region: {region:?} is not a region this operator may manage; allowed: {}",
            config.allowed_regions.join(", ")
        ));
    }

    let mut buckets = BTreeSet::new();
    for (i, b) in spec.buckets.iter().enumerate() {
        if !buckets.insert(b.name.as_str()) {
            problems.push(format!(
                "spec.buckets[{i}].name: {:?} is declared twice; names must be unique",
                b.name
            ));
        }
    }

    let mut functions = BTreeSet::new();
    for (i, f) in spec.functions.iter().enumerate() {
        let at = format!("spec.functions[{i}]");
        if !functions.insert(f.name.as_str()) {
            problems.push(format!(
                "{at}.name: {:?} is declared twice; names must be unique",
                f.name
            ));
        }
        if catalog.get(&f.handler).is_none() {
            problems.push(format!(
                "{at}.handler: {:?} is not a built-in handler; available: {}",
                f.handler,
                catalog.names().join(", ")
            ));
        }
        if !(128..=10240).contains(&f.memory_mib) {
            problems.push(format!(
                "{at}.memoryMiB: {} is outside Lambda's 128 to 10240 MiB",
                f.memory_mib
            ));
        }
        if !(1..=900).contains(&f.timeout_seconds) {
            problems.push(format!(
                "{at}.timeoutSeconds: {} is outside 1 to 900 seconds; work that runs longer belongs in a workflow",
                f.timeout_seconds
            ));
        }
        for key in f.environment.keys() {
            if RESERVED_ENV_PREFIXES.iter().any(|p| key.starts_with(p))
                || RESERVED_ENV_NAMES.contains(&key.as_str())
            {
                problems.push(format!(
                    "{at}.environment.{key}: reserved by Lambda or Sluice (AWS_*, LAMBDA_*, SLUICE_*, _HANDLER, TZ); choose another name"
                ));
            }
        }
        let mut env_from_uses = BTreeSet::new();
        for (j, u) in f.uses.iter().enumerate() {
            let at = format!("{at}.uses[{j}]");
            match &u.bucket {
                Some(b) if !buckets.contains(b.as_str()) => problems.push(format!(
                    "{at}.bucket: {b:?} is not declared in spec.buckets (declared: {})",
                    buckets.iter().copied().collect::<Vec<_>>().join(", ")
                )),
                Some(b) => {
                    let var = u
                        .env
                        .clone()
                        .unwrap_or_else(|| crate::naming::default_env_var("BUCKET", b));
                    if f.environment.contains_key(&var) || !env_from_uses.insert(var.clone()) {
                        problems.push(format!(
                            "{at}.env: {var} is set twice; give each use its own variable"
                        ));
                    }
                    if RESERVED_ENV_PREFIXES.iter().any(|p| var.starts_with(p)) {
                        problems.push(format!(
                            "{at}.env: {var} is reserved (AWS_*, LAMBDA_*, SLUICE_*)"
                        ));
                    }
                }
                None => problems.push(format!("{at}: name the resource used, e.g. bucket: <name>")),
            }
        }
        for (j, t) in f.triggers.iter().enumerate() {
            let at = format!("{at}.triggers[{j}]");
            match &t.bucket {
                Some(b) if !buckets.contains(b.name.as_str()) => problems.push(format!(
                    "{at}.bucket.name: {:?} is not declared in spec.buckets (declared: {})",
                    b.name,
                    buckets.iter().copied().collect::<Vec<_>>().join(", ")
                )),
                Some(b) if b.events.is_empty() => problems.push(format!(
                    "{at}.bucket.events: name at least one S3 event, e.g. s3:ObjectCreated:*"
                )),
                Some(_) => {}
                None => problems.push(format!(
                    "{at}: set a trigger source, e.g. bucket: {{name: <bucket>}}"
                )),
            }
        }
    }

    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems.join("; "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::tests::{catalog, pattern1};

    fn config() -> OperatorConfig {
        OperatorConfig::from_lookup(|_| None, Some("us-east-1".into())).expect("config")
    }

    #[test]
    fn the_pattern1_sample_is_valid() {
        assert_eq!(validate(&pattern1(), &config(), &catalog()), Ok(()));
    }

    #[test]
    fn unknown_handler_names_the_field_and_the_choices() {
        let mut spec = pattern1();
        spec.functions[0].handler = "nope".into();
        let err = validate(&spec, &config(), &catalog()).expect_err("invalid");
        assert!(err.contains("spec.functions[0].handler"), "{err}");
        assert!(err.contains("s3-json-transform"), "{err}");
    }

    #[test]
    fn regions_outside_the_allow_list_are_refused() {
        let mut spec = pattern1();
        spec.region = Some("eu-west-1".into());
        let err = validate(&spec, &config(), &catalog()).expect_err("invalid");
        assert!(
            err.contains("spec.region") && err.contains("us-east-1"),
            "{err}"
        );
    }

    #[test]
    fn dangling_references_and_reserved_names_are_refused() {
        let mut spec = pattern1();
        spec.functions[0].uses[0].bucket = Some("missing".into());
        spec.functions[0]
            .environment
            .insert("AWS_REGION".into(), "x".into());
        let err = validate(&spec, &config(), &catalog()).expect_err("invalid");
        assert!(err.contains("spec.functions[0].uses[0].bucket"), "{err}");
        assert!(
            err.contains("spec.functions[0].environment.AWS_REGION"),
            "{err}"
        );
    }

    #[test]
    fn duplicate_names_are_refused() {
        let mut spec = pattern1();
        spec.buckets.push(spec.buckets[0].clone());
        let err = validate(&spec, &config(), &catalog()).expect_err("invalid");
        assert!(err.contains("spec.buckets[2].name"), "{err}");
    }
}
