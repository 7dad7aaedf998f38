//! Environment configuration.
//!
//! The operator injects the real resource names as environment variables.
//! A missing (or empty) required variable is a [`ConfigError`] naming it; the
//! binaries read their configuration before starting the runtime, so a
//! misconfigured function fails at init instead of on every event.

use std::time::Duration;

/// A configuration problem, detected at startup.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// A required environment variable is unset or empty.
    #[error("required environment variable {0} is not set")]
    Missing(String),
    /// A variable is set but cannot be parsed.
    #[error("environment variable {name} has invalid value {value:?}: {reason}")]
    Invalid {
        /// Variable name.
        name: String,
        /// The value found.
        value: String,
        /// Why it was rejected.
        reason: String,
    },
}

/// Where configuration values come from: the process environment in the
/// binaries, a map in tests.
pub trait Env {
    /// The value of `name`, if set.
    fn var(&self, name: &str) -> Option<String>;

    /// A required, non-empty variable.
    fn required(&self, name: &str) -> Result<String, ConfigError> {
        self.optional(name)
            .ok_or_else(|| ConfigError::Missing(name.to_owned()))
    }

    /// An optional variable; empty counts as unset.
    fn optional(&self, name: &str) -> Option<String> {
        self.var(name)
            .map(|v| v.trim().to_owned())
            .filter(|v| !v.is_empty())
    }

    /// An optional whole number of seconds.
    fn seconds(&self, name: &str, default: Duration) -> Result<Duration, ConfigError> {
        match self.optional(name) {
            None => Ok(default),
            Some(value) => {
                value
                    .parse::<u64>()
                    .map(Duration::from_secs)
                    .map_err(|e| ConfigError::Invalid {
                        name: name.to_owned(),
                        value,
                        reason: e.to_string(),
                    })
            }
        }
    }
}

/// The process environment.
#[derive(Debug, Clone, Copy, Default)]
pub struct ProcessEnv;

impl Env for ProcessEnv {
    fn var(&self, name: &str) -> Option<String> {
        std::env::var(name).ok()
    }
}

impl<S: std::hash::BuildHasher> Env for std::collections::HashMap<String, String, S> {
    fn var(&self, name: &str) -> Option<String> {
        self.get(name).cloned()
    }
}

impl Env for [(&str, &str)] {
    fn var(&self, name: &str) -> Option<String> {
        self.iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| (*v).to_owned())
    }
}

impl<const N: usize> Env for [(&str, &str); N] {
    fn var(&self, name: &str) -> Option<String> {
        self.as_slice().var(name)
    }
}

/// Reads a required variable from the process environment.
pub fn required(name: &str) -> Result<String, ConfigError> {
    ProcessEnv.required(name)
}

/// Reads an optional variable from the process environment.
pub fn optional(name: &str) -> Option<String> {
    ProcessEnv.optional(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_variable_is_named() {
        let env = [("OTHER", "x")];
        let err = env.required("OUTPUT_BUCKET").expect_err("must fail");
        assert_eq!(err, ConfigError::Missing("OUTPUT_BUCKET".into()));
        assert!(err.to_string().contains("OUTPUT_BUCKET"));
    }

    #[test]
    fn empty_counts_as_missing_and_values_are_trimmed() {
        let env = [("A", "  "), ("B", " bucket ")];
        assert!(env.required("A").is_err());
        assert_eq!(env.required("B").expect("set"), "bucket");
    }

    #[test]
    fn seconds_parse_and_default() {
        let env = [("TTL", "60"), ("BAD", "soon")];
        assert_eq!(
            env.seconds("TTL", Duration::ZERO).expect("ok"),
            Duration::from_secs(60)
        );
        assert_eq!(
            env.seconds("UNSET", Duration::from_secs(5)).expect("ok"),
            Duration::from_secs(5)
        );
        let err = env.seconds("BAD", Duration::ZERO).expect_err("invalid");
        assert!(err.to_string().contains("BAD"));
    }
}
