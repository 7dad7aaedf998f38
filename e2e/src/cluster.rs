//! The operator as a pod, installed the way a user installs it: the Helm
//! chart `charts/sluice` with real `helm install` (`SLUICE_HELM`), in a
//! namespace of its own with Pod Security `restricted` enforced, in the
//! chart's namespaced mode (a Role and RoleBinding in each namespace it
//! watches). The cluster-scoped admission policies and default policy come
//! from [`crate::install_crd`], once for every test. Used when
//! `SLUICE_OPERATOR_IMAGE` names the operator's image (`make env-tests`
//! loads it into the local cluster's containerd with `scripts/image.sh
//! load`).

use std::{
    net::SocketAddr,
    path::PathBuf,
    sync::Mutex,
    time::{Duration, Instant},
};

use crate::{helm_ok, kubectl, kubectl_ok, kubectl_stdin_ok, token};

/// The Deployment's pods carry this label (charts/sluice).
const SELECTOR: &str = "app.kubernetes.io/name=sluice-operator";
/// The admin port of the chart's default values.
const ADMIN_PORT: u16 = 8080;
/// The Secret holding the operator's AWS keys, in its namespace.
const CREDENTIALS_SECRET: &str = "sluice-operator-aws";
/// The operator's ServiceAccount, as the tests' RBAC checks name it.
pub const SERVICE_ACCOUNT: &str = "sluice-operator";

/// One operator release and the namespace it runs in.
#[derive(Debug)]
pub struct PodOperator {
    namespace: String,
    /// The values file of its release.
    values: PathBuf,
    /// The admin address of the pod last seen serving, until it stops.
    admin: Mutex<Option<SocketAddr>>,
}

/// Where an operator variable the tests set goes in the chart's values;
/// the rest go to `extraEnv`.
const VALUES_OF_VARIABLES: &[(&str, &[&str])] = &[
    (
        "SLUICE_HEALTH_INTERVAL_SECONDS",
        &["health", "intervalSeconds"],
    ),
    ("SLUICE_HEALTH_WINDOW_SECONDS", &["health", "windowSeconds"]),
    ("SLUICE_RESYNC_SECONDS", &["reconcile", "resyncSeconds"]),
    (
        "SLUICE_RESYNC_READ_SHARE",
        &["reconcile", "resyncReadShare"],
    ),
    ("SLUICE_LOG", &["log", "level"]),
];

/// The chart's values for one test's operator: its image, the namespaces
/// it watches, its AWS settings and the environment `extra`.
pub fn values(
    image: &str,
    namespaces: &[&str],
    prefix: &str,
    extra: &[(&str, &str)],
) -> serde_json::Value {
    let (repository, tag) = image.rsplit_once(':').expect("image NAME:TAG");
    let env = |var: &str| std::env::var(var).unwrap_or_default();
    let mut values = serde_json::json!({
        "image": {"repository": repository, "tag": tag},
        // One pod per test's operator (two cores run them all), elected
        // on its Lease as every install is; the HA tests ask for two.
        "replicaCount": 1,
        "leaderElection": {"enabled": true},
        "serviceAccount": {"name": SERVICE_ACCOUNT},
        "watchNamespaces": namespaces,
        "namePrefix": prefix,
        "aws": {
            "region": env("AWS_REGION"),
            "endpointUrl": env("AWS_ENDPOINT_URL"),
            "permissionsBoundary": crate::permissions_boundary(prefix),
        },
        "installation": {"id": crate::installation_id(prefix)},
        "log": {"level": "info"},
        // Installed once for every test by install_crd.
        "admission": {"create": false},
        "defaultPolicy": {"create": false},
        "podDisruptionBudget": {"enabled": false},
        "extraEnv": [],
    });
    if let Ok(url) = std::env::var("AWS_ENDPOINT_URL_CLOUDWATCH") {
        values["aws"]["serviceEndpointUrls"] = serde_json::json!({"CLOUDWATCH": url});
    }
    for (name, value) in extra {
        if *name == "SLUICE_NAME_PREFIX" {
            // `prefix` is it already (namePrefix).
            assert_eq!(*value, prefix, "SLUICE_NAME_PREFIX");
            continue;
        }
        // Lists and flags the chart sets from values of their own type.
        if *name == "SLUICE_ACCOUNT_ROLES" {
            values["aws"]["accountRoles"] = value.split(',').collect::<Vec<_>>().into();
            continue;
        }
        if *name == "SLUICE_REQUIRE_ACCOUNT_ROLE" {
            values["aws"]["requireAccountRole"] = (*value == "true").into();
            continue;
        }
        if *name == "SLUICE_ROLE_LISTING" {
            values["aws"]["roleListing"] = (*value == "true").into();
            continue;
        }
        match VALUES_OF_VARIABLES.iter().find(|(var, _)| var == name) {
            Some((_, path)) => {
                let number = match value.parse::<u64>() {
                    Ok(n) => Some(serde_json::Value::from(n)),
                    Err(_) => value.parse::<f64>().ok().map(serde_json::Value::from),
                };
                values[path[0]][path[1]] = number.unwrap_or_else(|| (*value).into());
            }
            None => values["extraEnv"]
                .as_array_mut()
                .expect("extraEnv")
                .push(serde_json::json!({"name": name, "value": value})),
        }
    }
    values
}

impl PodOperator {
    /// Installs the operator watching `namespaces` with AWS name prefix
    /// `prefix`, image `image` and the extra environment `extra` with
    /// `helm install`, and waits until a pod of it is ready.
    pub fn start(image: &str, namespaces: &[&str], prefix: &str, extra: &[(&str, &str)]) -> Self {
        Self::start_release(values(image, namespaces, prefix, extra), prefix)
    }

    /// Installs a release of the chart with `values` (see [`values`]).
    pub fn start_release(mut values: serde_json::Value, prefix: &str) -> Self {
        let namespace = format!("sluice-op-{}", token());
        let ns = serde_json::json!({
            "apiVersion": "v1", "kind": "Namespace",
            "metadata": {"name": namespace, "labels": {
                "pod-security.kubernetes.io/enforce": "restricted",
                "pod-security.kubernetes.io/enforce-version": "latest"}}
        });
        kubectl_stdin_ok(&["apply", "-f", "-"], &ns.to_string());
        // The AWS keys, in a Secret the pod's environment refers to: where
        // the emulator enforces IAM, those of the operator's own IAM user
        // (never the administrator's the tests act as); else the
        // environment's, if any.
        let keys = crate::operator_user(prefix).or_else(|| {
            Some((
                std::env::var("AWS_ACCESS_KEY_ID").ok()?,
                std::env::var("AWS_SECRET_ACCESS_KEY").ok()?,
            ))
        });
        if let Some((key, secret)) = keys {
            let credentials = serde_json::json!({
                "apiVersion": "v1", "kind": "Secret",
                "metadata": {"name": CREDENTIALS_SECRET, "namespace": namespace},
                "stringData": {"AWS_ACCESS_KEY_ID": key, "AWS_SECRET_ACCESS_KEY": secret}
            });
            kubectl_stdin_ok(&["apply", "-f", "-"], &credentials.to_string());
            values["aws"]["credentialsSecret"] = CREDENTIALS_SECRET.into();
        }
        let file = std::env::temp_dir().join(format!("{namespace}-values.json"));
        // JSON is YAML: helm reads both.
        std::fs::write(&file, values.to_string()).expect("values file");
        helm_ok(&[
            "install",
            &namespace,
            &crate::chart_dir().to_string_lossy(),
            "--namespace",
            &namespace,
            "--values",
            &file.to_string_lossy(),
            // Until the Deployment's pods are Ready.
            "--wait",
            "--timeout",
            "180s",
        ]);
        let op = PodOperator {
            namespace,
            values: file,
            admin: Mutex::new(None),
        };
        op.wait_ready(Duration::from_secs(120));
        op
    }

    /// The operator's namespace.
    pub fn namespace(&self) -> &str {
        &self.namespace
    }

    /// The release's Role and RoleBinding in `watched` again (a namespace
    /// deleted and made again lost them): `helm upgrade` with the same
    /// values makes what is missing.
    pub fn bind(&self, watched: &str) {
        let _ = watched;
        self.upgrade(|_| {});
    }

    /// The release's name (the operator's namespace).
    pub fn release(&self) -> &str {
        &self.namespace
    }

    /// The name of the Deployment, the Lease and the release's other
    /// objects (the chart's `<release>-operator`).
    pub fn fullname(&self) -> String {
        format!("{}-operator", self.namespace)
    }

    /// The pod named by the replicas' Lease, if any.
    pub fn lease_holder(&self) -> Option<String> {
        let out = kubectl(&[
            "get",
            "lease",
            "-n",
            &self.namespace,
            &self.fullname(),
            "-o",
            "jsonpath={.spec.holderIdentity}",
        ]);
        let holder = String::from_utf8_lossy(&out.stdout).trim().to_owned();
        (out.status.success() && !holder.is_empty()).then_some(holder)
    }

    /// The admin address of the running pod `name`, if it has an IP.
    pub fn admin_of(&self, name: &str) -> Option<SocketAddr> {
        let pod = self
            .pods()
            .into_iter()
            .find(|p| p["metadata"]["name"] == name)?;
        let ip = pod["status"]["podIP"].as_str()?.parse().ok()?;
        Some(SocketAddr::new(ip, ADMIN_PORT))
    }

    /// `helm upgrade` of the release with its values changed by `change`,
    /// waiting until the Deployment rolled.
    pub fn upgrade(&self, change: impl FnOnce(&mut serde_json::Value)) {
        let mut values: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&self.values).expect("values file"))
                .expect("values JSON");
        change(&mut values);
        std::fs::write(&self.values, values.to_string()).expect("values file");
        helm_ok(&[
            "upgrade",
            &self.namespace,
            &crate::chart_dir().to_string_lossy(),
            "--namespace",
            &self.namespace,
            "--values",
            &self.values.to_string_lossy(),
            "--wait",
            "--timeout",
            "180s",
        ]);
    }

    /// The operator's pods (the Deployment's), as JSON.
    pub fn pods(&self) -> Vec<serde_json::Value> {
        let raw = kubectl_ok(&[
            "get",
            "pods",
            "-n",
            &self.namespace,
            "-l",
            SELECTOR,
            "-o",
            "json",
        ]);
        let list: serde_json::Value = serde_json::from_str(&raw).expect("pod list");
        list["items"].as_array().cloned().unwrap_or_default()
    }

    /// The name of the pod that is running and not being deleted, if any.
    pub fn running_pod(&self) -> Option<serde_json::Value> {
        self.pods().into_iter().find(|p| {
            p["metadata"]["deletionTimestamp"].is_null()
                && p["status"]["phase"] == "Running"
                && p["status"]["podIP"].is_string()
        })
    }

    /// The admin server's address: the running pod's IP (the host routes
    /// to the node's pod network).
    pub fn admin_addr(&self) -> Option<SocketAddr> {
        let mut admin = self.admin.lock().expect("lock");
        if admin.is_none() {
            let pod = self.running_pod()?;
            let ip = pod["status"]["podIP"].as_str()?.parse().ok()?;
            *admin = Some(SocketAddr::new(ip, ADMIN_PORT));
        }
        *admin
    }

    /// Forgets the pod address, after it stopped answering.
    pub fn forget_addr(&self) {
        *self.admin.lock().expect("lock") = None;
    }

    /// Waits until a pod of the Deployment answers 200 on /readyz.
    pub fn wait_ready(&self, limit: Duration) {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(addr) = self.admin_addr() {
                if crate::http_get(addr, "/readyz").is_some_and(|(status, _)| status == 200) {
                    return;
                }
                self.forget_addr();
            }
            assert!(
                Instant::now() < deadline,
                "the operator pod was not ready within {limit:?}:\n{}",
                self.diagnostics()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// The last lines of the operator container's log.
    pub fn log_tail(&self) -> String {
        let out = kubectl(&[
            "logs",
            "-n",
            &self.namespace,
            "-l",
            SELECTOR,
            "--tail=40",
            "--prefix",
        ]);
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Pods, events and logs of the operator's namespace, for a failure.
    pub fn diagnostics(&self) -> String {
        let pods = kubectl(&["get", "pods", "-n", &self.namespace, "-o", "wide"]);
        let events = kubectl(&["get", "events", "-n", &self.namespace]);
        format!(
            "{}\n{}{}\n{}",
            String::from_utf8_lossy(&pods.stdout),
            String::from_utf8_lossy(&events.stdout),
            String::from_utf8_lossy(&events.stderr),
            self.log_tail()
        )
    }

    /// The operator container's memory as the kubelet reports it (its
    /// summary API, through the API server): working set and RSS, in KiB.
    pub fn memory_kib(&self) -> Option<(u64, u64)> {
        let pod = self.running_pod()?;
        let node = pod["spec"]["nodeName"].as_str()?;
        let name = pod["metadata"]["name"].as_str()?;
        let raw = kubectl_ok(&[
            "get",
            "--raw",
            &format!("/api/v1/nodes/{node}/proxy/stats/summary"),
        ]);
        let summary: serde_json::Value = serde_json::from_str(&raw).ok()?;
        let pod = summary["pods"]
            .as_array()?
            .iter()
            .find(|p| p["podRef"]["name"] == name)?;
        let memory = &pod["containers"][0]["memory"];
        Some((
            memory["workingSetBytes"].as_u64()? / 1024,
            memory["rssBytes"].as_u64()? / 1024,
        ))
    }
}

impl Drop for PodOperator {
    fn drop(&mut self) {
        // The release's cluster-scoped objects and its Roles in the watched
        // namespaces, then its namespace.
        let _ = crate::helm(&["uninstall", &self.namespace, "--namespace", &self.namespace]);
        let _ = kubectl(&["delete", "namespace", &self.namespace, "--wait=false"]);
        let _ = std::fs::remove_file(&self.values);
    }
}

/// Cordons a node until dropped: pods already there keep running, new ones
/// stay Pending.
#[derive(Debug)]
pub struct Cordon(pub String);

impl Cordon {
    /// Cordons `node`.
    pub fn node(node: &str) -> Self {
        kubectl_ok(&["cordon", node]);
        Cordon(node.to_owned())
    }
}

impl Drop for Cordon {
    fn drop(&mut self) {
        let _ = kubectl(&["uncordon", &self.0]);
    }
}
