//! The platform's guardrails as the controller sees them: watch caches of
//! the SluicePolicies and of the namespaces (whose labels select them), what
//! the policies combine to for a namespace ([`crate::policy`]), the
//! namespace's pipelines its limits count, and reconciles asked for when a
//! policy or a namespace's labels change, or a deletion frees room under a
//! namespace's limits.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex, PoisonError},
};

use futures::{Stream, StreamExt, channel::mpsc};
use k8s_openapi::api::core::v1::Namespace;
use kube::{
    Api, Client, ResourceExt,
    api::ListParams,
    runtime::{
        WatchStreamExt,
        reflector::{self, ObjectRef, Store},
        watcher,
    },
};

use crate::{
    Result,
    crd::{DataPipeline, SluicePolicy},
    policy::{self, Effective, Neighbours},
    reconcile::status,
};

/// Where to ask for a reconcile of a pipeline: one sender per controller,
/// with the namespace it watches (`None`: all).
pub type Triggers = Vec<(
    Option<String>,
    mpsc::UnboundedSender<ObjectRef<DataPipeline>>,
)>;

/// Starts watching SluicePolicies and namespaces: their caches (ready once
/// listed) and a stream that yields on every change that can alter a
/// namespace's policy (a policy touched, a namespace's labels changed).
/// Each is listed once first, so a missing CRD or RBAC rule stops the
/// operator with the API's answer.
pub async fn watch(
    client: &Client,
) -> Result<(
    Store<SluicePolicy>,
    Store<Namespace>,
    impl Stream<Item = ()> + Send + 'static,
)> {
    let policies_api = Api::<SluicePolicy>::all(client.clone());
    let namespaces_api = Api::<Namespace>::all(client.clone());
    policies_api.list(&ListParams::default().limit(1)).await?;
    namespaces_api.list(&ListParams::default().limit(1)).await?;
    let (policies, policy_writer) = reflector::store::<SluicePolicy>();
    let (namespaces, namespace_writer) = reflector::store::<Namespace>();
    // A short backoff, as the pipelines' watches: see `crate::watch::backoff`.
    let policy_changes = watcher(policies_api, Default::default())
        .backoff(crate::watch::backoff())
        .reflect(policy_writer)
        .touched_objects()
        .map(|_| ());
    let namespace_changes = watcher(namespaces_api, Default::default())
        .backoff(crate::watch::backoff())
        // Only labels and the UID are read.
        .modify(|ns| {
            ns.metadata.managed_fields = None;
            ns.metadata.annotations = None;
        })
        .reflect(namespace_writer)
        .applied_objects()
        .predicate_filter(
            |ns: &Namespace| {
                use std::hash::{Hash, Hasher};
                let mut h = std::collections::hash_map::DefaultHasher::new();
                ns.labels().hash(&mut h);
                Some(h.finish())
            },
            Default::default(),
        )
        .map(|_| ());
    Ok((
        policies,
        namespaces,
        futures::stream::select(policy_changes, namespace_changes),
    ))
}

/// The guardrails' caches and what each pipeline was checked against.
pub struct Guardrails {
    pipelines: Vec<Store<DataPipeline>>,
    policies: Store<SluicePolicy>,
    namespaces: Store<Namespace>,
    triggers: Triggers,
    /// A digest of the policy each pipeline was last checked against (by
    /// UID): a change that alters it reconciles the pipeline again.
    checked: Mutex<HashMap<String, u64>>,
}

impl std::fmt::Debug for Guardrails {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Guardrails").finish_non_exhaustive()
    }
}

impl Guardrails {
    /// The guardrails over the controllers' pipeline caches.
    pub fn new(
        pipelines: Vec<Store<DataPipeline>>,
        policies: Store<SluicePolicy>,
        namespaces: Store<Namespace>,
        triggers: Triggers,
    ) -> Self {
        Guardrails {
            pipelines,
            policies,
            namespaces,
            triggers,
            checked: Mutex::new(HashMap::new()),
        }
    }

    /// The UID of `namespace` (empty while the cache does not hold it).
    pub fn namespace_uid(&self, namespace: &str) -> String {
        self.namespaces
            .get(&ObjectRef::new(namespace))
            .and_then(|ns| ns.metadata.uid.clone())
            .unwrap_or_default()
    }

    /// What the SluicePolicies selecting `namespace` combine to.
    pub fn effective(&self, namespace: &str) -> Effective {
        let labels = self
            .namespaces
            .get(&ObjectRef::new(namespace))
            .and_then(|ns| ns.metadata.labels.clone())
            .unwrap_or_default();
        let policies = self.policies.state();
        Effective::for_namespace(
            policies
                .iter()
                .map(|p| (p.metadata.name.as_deref().unwrap_or(""), &p.spec)),
            &labels,
        )
    }

    /// Every pipeline the watch caches hold.
    pub fn all(&self) -> impl Iterator<Item = Arc<DataPipeline>> + '_ {
        self.pipelines.iter().flat_map(Store::state)
    }

    /// The pipelines of `namespace` its limits count: oldest first (then
    /// by name), those being deleted left out.
    pub fn neighbours(&self, namespace: &str) -> Neighbours {
        let mut pipelines: Vec<Arc<DataPipeline>> = self
            .all()
            .filter(|p| {
                p.metadata.namespace.as_deref() == Some(namespace)
                    && p.metadata.deletion_timestamp.is_none()
            })
            .collect();
        pipelines.sort_by(|a, b| {
            let created = |p: &DataPipeline| p.metadata.creation_timestamp.as_ref().map(|t| t.0);
            created(a)
                .cmp(&created(b))
                .then_with(|| a.name_any().cmp(&b.name_any()))
        });
        Neighbours {
            pipelines: pipelines
                .iter()
                .map(|p| {
                    (
                        p.uid().unwrap_or_default(),
                        policy::reserved_concurrency(&p.spec),
                    )
                })
                .collect(),
        }
    }

    fn checked(&self) -> std::sync::MutexGuard<'_, HashMap<String, u64>> {
        self.checked.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Records the policy a pipeline was checked against.
    pub fn checked_against(&self, dp: &DataPipeline, effective: &Effective) {
        self.checked()
            .insert(dp.uid().unwrap_or_default(), digest(effective));
    }

    /// A pipeline is gone: its place under its namespace's limits is free,
    /// so the pipelines they stalled look again.
    pub fn deleted(&self, dp: &DataPipeline) {
        self.checked().remove(&dp.uid().unwrap_or_default());
        let namespace = dp.namespace().unwrap_or_default();
        let stalled: Vec<ObjectRef<DataPipeline>> = self
            .all()
            .filter(|p| p.metadata.namespace.as_deref() == Some(namespace.as_str()))
            .filter(|p| {
                p.status.as_ref().is_some_and(|s| {
                    s.conditions.iter().any(|c| {
                        c.type_ == status::STALLED && c.reason == crate::error::POLICY_VIOLATION
                    })
                })
            })
            .map(|p| ObjectRef::from_obj(p.as_ref()))
            .collect();
        self.retrigger(&stalled);
    }

    /// Asks for a reconcile of every pipeline whose policy is no longer the
    /// one it was checked against, and of `also`.
    pub fn retrigger(&self, also: &[ObjectRef<DataPipeline>]) {
        let stale: Vec<ObjectRef<DataPipeline>> = {
            let checked = self.checked();
            let mut now_by_namespace: HashMap<String, u64> = HashMap::new();
            self.all()
                .filter(|p| {
                    let ns = p.namespace().unwrap_or_default();
                    let now = *now_by_namespace
                        .entry(ns.clone())
                        .or_insert_with(|| digest(&self.effective(&ns)));
                    checked
                        .get(&p.uid().unwrap_or_default())
                        .is_some_and(|seen| *seen != now)
                })
                .map(|p| ObjectRef::from_obj(p.as_ref()))
                .collect()
        };
        for obj in stale.iter().chain(also) {
            for (namespace, sender) in &self.triggers {
                if namespace.is_none() || namespace.as_deref() == obj.namespace.as_deref() {
                    let _ = sender.unbounded_send(obj.clone());
                }
            }
        }
    }
}

/// A digest of an effective policy, to tell when a pipeline's changed.
fn digest(effective: &Effective) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    format!("{effective:?}").hash(&mut h);
    h.finish()
}
