//! The operator's checks of a pipeline, in the operator's order and with
//! the operator's code: what the API server refuses at admission (the
//! CRD's schema and rules), what the reconciler refuses before planning
//! ([`crate::reconcile::validate`]), what it refuses of the plan
//! ([`crate::reconcile::validate::validate_plan`]) and what the
//! namespace's SluicePolicies refuse ([`crate::policy::check`]). A pipeline
//! that passes is planned exactly as the operator would plan it.

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::CustomResourceExt;
use serde_json::Value;

use crate::{
    artifacts::Catalog,
    config::OperatorConfig,
    crd::{DataPipeline, SluicePolicy},
    naming::PipelineId,
    plan::{self, Plan, PlanContext},
    policy::{self, Effective, Neighbours},
    reconcile,
};

use super::load::Manifest;

/// The account names and ARNs are planned in when none is given.
pub const EXAMPLE_ACCOUNT: &str = "123456789012";

/// Stands in for the installation's secret when `SLUICE_INSTALLATION_ID`
/// is not set: bucket names derive from it, so they are then not the names
/// the installation would use ([`Setup::knows_bucket_names`]).
const UNKNOWN_INSTALLATION: &str = "kubectl-sluice-offline-installation";

/// Everything besides the manifest that the checks and the plan depend on.
#[derive(Clone, Debug)]
pub struct Setup {
    /// The operator's configuration, from the environment where set.
    pub config: OperatorConfig,
    /// The AWS account.
    pub account: String,
    /// The built-in handlers.
    pub catalog: Catalog,
    /// The SluicePolicies given with `--policy`, by name.
    pub policies: Vec<(String, crate::crd::SluicePolicySpec)>,
    /// The namespace's labels, for the policies' selectors.
    pub namespace_labels: BTreeMap<String, String>,
    /// Whether `SLUICE_INSTALLATION_ID` was set.
    pub knows_bucket_names: bool,
    /// Whether the catalog is the built handlers' (`SLUICE_HANDLERS_DIR`),
    /// so the digest of the built-in code is known.
    pub handlers_known: bool,
    /// The DataPipeline CRD the operator generates, which the API server
    /// admits with.
    pub crd: CustomResourceDefinition,
    /// What the cluster says of the pipeline (`plan --live`), where it
    /// exists: the identity its AWS resources are tagged with.
    pub observed: Option<Observed>,
}

/// The cluster's record of a pipeline that exists: what a manifest in a
/// pull request does not carry, but its AWS resources' names and tags do.
#[derive(Clone, Debug, Default)]
pub struct Observed {
    /// The DataPipeline's UID (the `sluice.dev/pipeline-uid` tag).
    pub uid: String,
    /// Its namespace's UID.
    pub namespace_uid: String,
    /// The bucket names its inventory records.
    pub kept_bucket_names: BTreeSet<String>,
}

impl Setup {
    /// The setup from the environment (`lookup`) and flags: the
    /// operator's own variables where set, else defaults that make every
    /// check meaningful offline.
    pub fn new(
        lookup: impl Fn(&str) -> Option<String>,
        region: Option<String>,
        account: Option<String>,
    ) -> Result<Self, String> {
        let account = account.unwrap_or_else(|| EXAMPLE_ACCOUNT.to_owned());
        let knows_bucket_names = lookup("SLUICE_INSTALLATION_ID").is_some_and(|v| !v.is_empty());
        let aws_region = region
            .clone()
            .or_else(|| lookup("AWS_REGION"))
            .or_else(|| Some("us-east-1".into()));
        let boundary = format!("arn:aws:iam::{account}:policy/sluice/sluice-pipeline-boundary");
        let config = OperatorConfig::from_lookup(
            |k| match k {
                "SLUICE_DEFAULT_REGION" if region.is_some() => region.clone(),
                "SLUICE_PERMISSIONS_BOUNDARY" => lookup(k).or_else(|| Some(boundary.clone())),
                "SLUICE_INSTALLATION_ID" => lookup(k).or_else(|| Some(UNKNOWN_INSTALLATION.into())),
                _ => lookup(k),
            },
            aws_region,
        )
        .map_err(|e| e.to_string())?;
        let handlers_known = lookup("SLUICE_HANDLERS_DIR").is_some();
        let catalog = if handlers_known {
            Catalog::load(&config.handlers_dir)?
        } else {
            Catalog::declared()
        };
        Ok(Setup {
            config,
            account,
            catalog,
            policies: Vec::new(),
            namespace_labels: BTreeMap::new(),
            knows_bucket_names,
            handlers_known,
            crd: DataPipeline::crd(),
            observed: None,
        })
    }

    /// Adds the SluicePolicy objects among `manifests`.
    pub fn add_policies(&mut self, manifests: &[Manifest]) -> Result<usize, String> {
        let mut n = 0;
        for m in manifests.iter().filter(|m| m.is("SluicePolicy")) {
            let p: SluicePolicy = serde_json::from_value(m.object.clone())
                .map_err(|e| format!("{}: not a SluicePolicy: {e}", m.source))?;
            let name = p.metadata.name.clone().unwrap_or_default();
            self.policies.push((name, p.spec));
            n += 1;
        }
        Ok(n)
    }

    /// The policies that select `namespace`, combined as the operator
    /// combines them; `None` when no `--policy` was given.
    pub fn effective(&self, namespace: &str) -> Option<Effective> {
        if self.policies.is_empty() {
            return None;
        }
        let mut labels = self.namespace_labels.clone();
        labels
            .entry("kubernetes.io/metadata.name".into())
            .or_insert_with(|| namespace.to_owned());
        Some(Effective::for_namespace(
            self.policies.iter().map(|(n, p)| (n.as_str(), p)),
            &labels,
        ))
    }
}

/// Which check refused a pipeline.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub enum Stage {
    /// The manifest is not a DataPipeline the API server could read.
    Parse,
    /// The API server's admission: the CRD's schema and rules.
    Admission,
    /// The reconciler's validation: the operator stalls it `InvalidSpec`.
    Validation,
    /// The reconciler's checks of the plan (`InvalidSpec` too).
    Plan,
    /// The namespace's SluicePolicies (`PolicyViolation`; their static part
    /// at admission).
    Policy,
}

impl Stage {
    /// How the operator would report it.
    pub fn describe(self) -> &'static str {
        match self {
            Stage::Parse => "not a DataPipeline",
            Stage::Admission => "refused by the API server at admission",
            Stage::Validation | Stage::Plan => "stalled by the operator (InvalidSpec)",
            Stage::Policy => "refused by the namespace's SluicePolicy (PolicyViolation)",
        }
    }
}

/// A pipeline that passed every check, planned.
#[derive(Debug)]
pub struct Checked {
    /// The pipeline, with the namespace and name it was checked under.
    pub pipeline: DataPipeline,
    /// Its identity in AWS.
    pub id: PipelineId,
    /// What it becomes in AWS.
    pub plan: Plan,
    /// The operator's warnings (`status.warnings`).
    pub warnings: Vec<String>,
}

/// A pipeline some check refused.
#[derive(Clone, Debug, PartialEq)]
pub struct Refusal {
    /// The check.
    pub stage: Stage,
    /// Every problem, naming the field.
    pub problems: Vec<String>,
}

fn refuse(stage: Stage, problems: Vec<String>) -> Refusal {
    Refusal { stage, problems }
}

/// Runs every check on one DataPipeline manifest and plans it. The
/// namespace is `namespace`, else the manifest's, else `default`; the name
/// `name`, else the manifest's.
pub fn check(
    manifest: &Manifest,
    setup: &Setup,
    namespace: Option<&str>,
    name: Option<&str>,
) -> Result<Checked, Refusal> {
    let mut object = manifest.object.clone();
    let metadata = object.as_object_mut().map(|o| {
        o.entry("metadata")
            .or_insert_with(|| Value::Object(Default::default()))
    });
    if let Some(Value::Object(metadata)) = metadata {
        if let Some(ns) = namespace {
            metadata.insert("namespace".into(), ns.into());
        }
        metadata
            .entry("namespace")
            .or_insert_with(|| "default".into());
        if let Some(n) = name {
            metadata.insert("name".into(), n.into());
        }
    }
    // The API server's admission first: what `kubectl apply` is refused
    // never reaches the operator, and what it admits is stored with the
    // schema's defaults.
    let object = crate::admission::admit(&setup.crd, &object)
        .map_err(|errors| refuse(Stage::Admission, errors))?;
    if object["metadata"]["name"]
        .as_str()
        .is_none_or(str::is_empty)
    {
        return Err(refuse(
            Stage::Parse,
            vec!["metadata.name: Required value: name or generateName is required".into()],
        ));
    }
    let mut pipeline: DataPipeline =
        serde_json::from_value(object).map_err(|e| refuse(Stage::Parse, vec![format!("{e}")]))?;
    if let Some(observed) = &setup.observed {
        pipeline.metadata.uid = Some(observed.uid.clone());
    }
    let spec = &pipeline.spec;
    reconcile::validate(spec, &setup.config, &setup.catalog)
        .map_err(|p| refuse(Stage::Validation, lines(&p)))?;
    let region = spec
        .region
        .clone()
        .unwrap_or_else(|| setup.config.default_region.clone());
    let kept = setup
        .observed
        .as_ref()
        .map(|o| o.kept_bucket_names.clone())
        .unwrap_or_default();
    let mut id = PipelineId::of(&pipeline, &setup.config, &setup.account, &region, kept);
    if let Some(observed) = &setup.observed {
        id.namespace_uid = observed.namespace_uid.clone();
    }
    if id.uid.is_empty() {
        id.uid = format!("{}/{}", id.namespace, id.name);
    }
    // The same managed policy in the account planned in, as the operator
    // derives it there.
    let boundary = setup.config.boundary_in(&setup.account);
    let plan = plan::plan(
        spec,
        PlanContext {
            id: &id,
            catalog: &setup.catalog,
            permissions_boundary: Some(&boundary),
        },
    );
    reconcile::validate::validate_plan(&plan).map_err(|p| refuse(Stage::Plan, lines(&p)))?;
    if let Some(effective) = setup.effective(&id.namespace) {
        let neighbours = Neighbours {
            pipelines: vec![(id.uid.clone(), policy::reserved_concurrency(spec))],
        };
        let problems = policy::check(spec, &plan, &region, &id.uid, &neighbours, &effective);
        if !problems.is_empty() {
            return Err(refuse(Stage::Policy, problems));
        }
    }
    let warnings = reconcile::validate::warnings(spec);
    Ok(Checked {
        pipeline,
        id,
        plan,
        warnings,
    })
}

/// The operator's problems are one per line.
fn lines(problems: &str) -> Vec<String> {
    problems
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(str::to_owned)
        .collect()
}

/// The one DataPipeline among `manifests`, for `command` (`plan`, `cost`,
/// `graph`), which each take one.
pub fn one_pipeline(manifests: Vec<Manifest>, command: &str) -> Result<Manifest, String> {
    let read = manifests.len();
    let mut pipelines: Vec<Manifest> = manifests
        .into_iter()
        .filter(|m| m.is("DataPipeline"))
        .collect();
    match pipelines.len() {
        0 => Err(format!(
            "no DataPipeline (apiVersion sluice.dev/v1alpha1) among {read} object(s) read"
        )),
        1 => Ok(pipelines.remove(0)),
        n => Err(format!(
            "{command} takes one DataPipeline; {n} were read ({}): pass -f with one pipeline's file",
            pipelines
                .iter()
                .map(|m| m.source.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        )),
    }
}

/// [`check`] under the command's `-n`/`--name`, a refusal worded as the
/// commands print it: the source, the stage, one problem a line.
pub fn check_or_explain(
    manifest: &Manifest,
    setup: &Setup,
    args: &super::args::Args,
) -> Result<Checked, String> {
    check(
        manifest,
        setup,
        args.namespace.as_deref(),
        args.name.as_deref(),
    )
    .map_err(|r| {
        format!(
            "{}: {}:\n  - {}",
            manifest.source,
            r.stage.describe(),
            r.problems.join("\n  - ")
        )
    })
}
