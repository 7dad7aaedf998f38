//! `kubectl sluice`, the review step before a pipeline merges and the view
//! after: the operator's own checks and planner, run offline
//! ([`check`]), plus what a reviewer asks of a plan. Built from this crate
//! so it can never disagree with the operator it reviews for.
//!
//! [`args`] parses the command line, [`load`] reads manifests, [`check`]
//! runs the operator's checks and plans; one module per command renders.

pub mod args;
pub mod check;
pub mod cluster;
pub mod cost;
pub mod graph;
pub mod load;
pub mod plan;
pub mod status;
pub mod validate;

/// The samples of `config/samples/`, whose plans, costs and pictures are
/// goldens under `docs/`.
#[cfg(test)]
pub(crate) const SAMPLES: [&str; 6] = [
    "event-triggered",
    "fan-out",
    "orchestrated",
    "stream",
    "periodic-batch",
    "own-code",
];

use std::{collections::BTreeMap, process::ExitCode};

use args::{Args, Command};

/// Exit code: every pipeline valid, no changes.
pub const OK: u8 = 0;
/// Exit code: invalid input, or an error.
pub const INVALID: u8 = 1;
/// Exit code: `plan --live` found changes.
pub const CHANGES: u8 = 2;

/// What a command printed and how it ends.
#[derive(Debug, PartialEq)]
pub struct Outcome {
    /// Standard output.
    pub stdout: String,
    /// Exit code ([`OK`], [`INVALID`], [`CHANGES`]).
    pub code: u8,
}

/// Runs `kubectl sluice` with `argv` (without the program's name).
pub fn main(argv: &[String]) -> ExitCode {
    let result = args::parse(argv).and_then(|a| run(&a, &|k| std::env::var(k).ok()));
    match result {
        Ok(outcome) => {
            print!("{}", outcome.stdout);
            ExitCode::from(outcome.code)
        }
        Err(e) => {
            eprintln!("kubectl sluice: {e}");
            ExitCode::from(INVALID)
        }
    }
}

/// Runs parsed arguments, reading the environment through `env`.
pub fn run(args: &Args, env: &dyn Fn(&str) -> Option<String>) -> Result<Outcome, String> {
    match args.command {
        Command::Help => Ok(Outcome {
            stdout: args::USAGE.to_owned(),
            code: OK,
        }),
        Command::Version => Ok(Outcome {
            stdout: format!("kubectl-sluice {}\n", env!("CARGO_PKG_VERSION")),
            code: OK,
        }),
        Command::Validate => validate::run(args, &setup(args, env)?),
        Command::Plan => plan::run(args, &setup(args, env)?, env),
        Command::Cost => cost::run(args, &setup(args, env)?),
        Command::Graph => graph::run(args, &setup(args, env)?, env),
        Command::Status => status::run(args),
    }
}

/// The setup every offline command shares: the environment, the flags and
/// the `--policy` files.
pub fn setup(args: &Args, env: &dyn Fn(&str) -> Option<String>) -> Result<check::Setup, String> {
    let mut setup = check::Setup::new(
        |k| env(k).filter(|v| !v.trim().is_empty()),
        args.region.clone(),
        args.account.clone(),
    )?;
    if !args.policies.is_empty() {
        let policies = load::read(&args.policies)?;
        if setup.add_policies(&policies)? == 0 {
            return Err(format!(
                "--policy: no SluicePolicy object in {}",
                args.policies
                    .iter()
                    .map(|p| p.display().to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        }
    }
    setup.namespace_labels = args
        .namespace_labels
        .iter()
        .cloned()
        .collect::<BTreeMap<_, _>>();
    Ok(setup)
}
