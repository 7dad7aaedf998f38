//! What the plugin reads from the cluster (kubeconfig's current context,
//! as kubectl does): a DataPipeline by name, its namespace's UID, its
//! events. Only reads; the commands that need none of it never connect.

use k8s_openapi::api::core::v1::{Event, Namespace};
use kube::{
    Api, Client,
    api::{ListParams, ObjectMeta},
};

use crate::{
    crd::{DataPipeline, SluicePolicy},
    policy::Effective,
};

/// Runs `future` on a runtime of its own (the plugin is synchronous
/// elsewhere).
pub fn block_on<T>(future: impl Future<Output = Result<T, String>>) -> Result<T, String> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the async runtime: {e}"))?
        .block_on(future)
}

/// A client for the kubeconfig's current context, and the namespace to
/// use: `namespace` where given, else the context's (as `kubectl -n`).
pub async fn connect(namespace: Option<&str>) -> Result<(Client, String), String> {
    let config = kube::Config::infer()
        .await
        .map_err(|e| format!("no cluster to read from (kubeconfig): {e}"))?;
    let namespace = namespace.map_or_else(|| config.default_namespace.clone(), str::to_owned);
    let client =
        Client::try_from(config).map_err(|e| format!("cannot connect to the cluster: {e}"))?;
    Ok((client, namespace))
}

/// The DataPipeline `name` in `namespace`, if there is one.
pub async fn pipeline_opt(
    client: &Client,
    namespace: &str,
    name: &str,
) -> Result<Option<DataPipeline>, String> {
    Api::<DataPipeline>::namespaced(client.clone(), namespace)
        .get_opt(name)
        .await
        .map_err(|e| format!("reading DataPipeline {namespace}/{name}: {e}"))
}

/// The DataPipeline `name` in `namespace`.
pub async fn pipeline(
    client: &Client,
    namespace: &str,
    name: &str,
) -> Result<DataPipeline, String> {
    pipeline_opt(client, namespace, name)
        .await?
        .ok_or_else(|| format!("DataPipeline {namespace}/{name} not found"))
}

/// The UID of `namespace`, empty when it cannot be read.
pub async fn namespace_uid(client: &Client, namespace: &str) -> String {
    Api::<Namespace>::all(client.clone())
        .get_opt(namespace)
        .await
        .ok()
        .flatten()
        .and_then(|n| n.metadata.uid)
        .unwrap_or_default()
}

/// The cluster's SluicePolicies that select `namespace`, combined as the
/// operator combines them (with the namespace's labels).
pub async fn effective_policy(client: &Client, namespace: &str) -> Result<Effective, String> {
    let labels = Api::<Namespace>::all(client.clone())
        .get(namespace)
        .await
        .map_err(|e| format!("reading namespace {namespace}: {e}"))?
        .metadata
        .labels
        .unwrap_or_default();
    let policies = Api::<SluicePolicy>::all(client.clone())
        .list(&ListParams::default())
        .await
        .map_err(|e| format!("listing SluicePolicies: {e}"))?
        .items;
    Ok(Effective::for_namespace(
        policies
            .iter()
            .map(|p| (p.metadata.name.as_deref().unwrap_or_default(), &p.spec)),
        &labels,
    ))
}

/// The events about the object with `uid`, oldest first.
pub async fn events(client: &Client, namespace: &str, uid: &str) -> Result<Vec<Event>, String> {
    let list = Api::<Event>::namespaced(client.clone(), namespace)
        .list(&ListParams::default().fields(&format!("involvedObject.uid={uid}")))
        .await
        .map_err(|e| format!("reading the events of {namespace}: {e}"))?;
    let mut events = list.items;
    events.sort_by_key(event_time);
    Ok(events)
}

/// When an event last happened, in RFC 3339 (empty when it has no time).
pub fn event_time(e: &Event) -> String {
    e.last_timestamp
        .as_ref()
        .map(|t| t.0.to_string())
        .or_else(|| e.event_time.as_ref().map(|t| t.0.to_string()))
        .or_else(|| e.first_timestamp.as_ref().map(|t| t.0.to_string()))
        .or_else(|| {
            e.metadata
                .creation_timestamp
                .as_ref()
                .map(|t| t.0.to_string())
        })
        .unwrap_or_default()
}

/// `dp` as a manifest would hold it: its spec and the metadata a person
/// writes (no status, no server fields).
pub fn as_manifest(dp: &DataPipeline) -> serde_json::Value {
    let metadata = ObjectMeta {
        name: dp.metadata.name.clone(),
        namespace: dp.metadata.namespace.clone(),
        uid: dp.metadata.uid.clone(),
        labels: dp.metadata.labels.clone(),
        annotations: dp.metadata.annotations.clone().map(|mut a| {
            a.remove("kubectl.kubernetes.io/last-applied-configuration");
            a
        }),
        ..ObjectMeta::default()
    };
    serde_json::json!({
        "apiVersion": "sluice.dev/v1alpha1",
        "kind": "DataPipeline",
        "metadata": metadata,
        "spec": dp.spec,
    })
}
