//! Sluice: a Kubernetes operator that converges `DataPipeline` resources into
//! serverless data pipelines on AWS.
//!
//! The arrows point one way: [`controller`] (kube wiring, finalizer, error
//! policy; [`guardrails`], the platform's policies as its caches see them;
//! [`fair`], the namespaces' turns at slots and quotas) → [`reconcile`] (validate → plan → apply → status) → [`aws`] (one
//! module per AWS resource kind behind one trait) and [`iam`]. Beside
//! `reconcile`, [`health`] reads runtime figures from AWS on its own
//! interval and writes the `Healthy` condition; [`events`] holds the event
//! reasons both publish. The ground floor is pure and used by everything:
//! [`crd`], [`naming`], [`plan`], [`policy`], [`config`], [`artifacts`],
//! [`metrics`].

pub mod artifacts;
pub mod asl;
pub mod aws;
pub mod config;
pub mod controller;
pub mod crd;
pub mod error;
pub mod events;
pub mod fair;
pub mod guardrails;
pub mod health;
pub mod iam;
pub mod leader;
pub mod memory;
pub mod metrics;
pub mod naming;
pub mod plan;
pub mod policy;
pub mod reconcile;
pub mod schedule_expression;
pub mod server;

pub use error::{Error, Result};
