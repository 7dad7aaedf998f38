//! Sluice: a Kubernetes operator that converges `DataPipeline` resources into
//! serverless data pipelines on AWS.
//!
//! The arrows point one way: [`leader`] (one replica of several leads, on a
//! Lease) runs the [`controller`] (kube wiring, finalizer, error
//! policy; [`guardrails`], the platform's policies as its caches see them;
//! [`fair`], the namespaces' turns at slots and quotas) → [`reconcile`] (validate → plan → apply → status) → [`aws`] (one
//! module per AWS resource kind behind one trait) and [`iam`]. Beside
//! `reconcile`, [`health`] reads runtime figures from AWS on its own
//! interval and writes the `Healthy` condition; [`events`] holds the event
//! reasons both publish. The ground floor is pure and used by everything:
//! [`crd`], [`naming`], [`plan`], [`policy`], [`config`], [`artifacts`],
//! [`metrics`], [`fence`] (the leader's write fence, checked by [`aws`]),
//! [`watch`] (how watches retry). [`policygen`] assembles the operator's
//! AWS policy from every [`aws`] module's declarations.

pub mod accounts;
pub mod admission;
pub mod artifacts;
pub mod asl;
pub mod aws;
pub mod cli;
pub mod config;
pub mod controller;
pub mod crd;
pub mod error;
pub mod events;
pub mod fair;
pub mod fence;
pub mod guardrails;
pub mod health;
pub mod iam;
pub mod leader;
pub mod memory;
pub mod metrics;
pub mod naming;
pub mod pacing;
pub mod package;
pub mod plan;
pub mod policy;
pub mod policygen;
pub mod reconcile;
pub mod schedule_expression;
pub mod server;
pub mod shards;
pub mod watch;

pub use error::{Error, Result};
