//! The operator as a pod, installed the way a user installs it: the
//! ServiceAccount, ClusterRole and Deployment of `config/deploy/operator`
//! (a kustomize overlay sets the image, the namespace and the environment),
//! in a namespace of its own with Pod Security `restricted` enforced, and the
//! ClusterRole bound only in the namespaces it watches. Used when
//! `SLUICE_OPERATOR_IMAGE` names the operator's image (`make env-tests` loads
//! it into the local cluster's containerd with `scripts/image.sh load`).

use std::{
    net::SocketAddr,
    path::{Component, Path, PathBuf},
    sync::Mutex,
    time::{Duration, Instant},
};

use crate::{kubectl, kubectl_ok, kubectl_stdin_ok, repo_root, token};

/// The Deployment's pods carry this label (config/deploy/operator).
const SELECTOR: &str = "app.kubernetes.io/name=sluice-operator";
/// The admin port of config/deploy/operator/deployment.yaml.
const ADMIN_PORT: u16 = 8080;
/// The Secret holding the operator's AWS keys, in its namespace.
const CREDENTIALS_SECRET: &str = "sluice-operator-aws";

/// One operator Deployment and the namespace it runs in.
#[derive(Debug)]
pub struct PodOperator {
    namespace: String,
    overlay: PathBuf,
    /// The admin address of the pod last seen serving, until it stops.
    admin: Mutex<Option<SocketAddr>>,
}

/// `path` relative to the directory `from` (both absolute): kustomize
/// refuses absolute paths to a base.
fn relative(path: &Path, from: &Path) -> PathBuf {
    let depth = from
        .components()
        .filter(|c| matches!(c, Component::Normal(_)))
        .count();
    let mut rel: PathBuf = std::iter::repeat_n("..", depth).collect();
    rel.push(path.strip_prefix("/").expect("absolute path"));
    rel
}

impl PodOperator {
    /// Installs the operator watching `namespaces` with AWS name prefix
    /// `prefix`, image `image` and the extra environment `extra`, and waits
    /// until a pod of it is ready.
    pub fn start(image: &str, namespaces: &[&str], prefix: &str, extra: &[(&str, &str)]) -> Self {
        let namespace = format!("sluice-op-{}", token());
        let overlay = std::env::temp_dir().join(&namespace);
        std::fs::create_dir_all(&overlay).expect("overlay directory");
        let base = relative(&repo_root().join("config/deploy/operator"), &overlay);
        let (name, tag) = image.rsplit_once(':').expect("image NAME:TAG");
        let mut env: Vec<(String, String)> = vec![
            ("SLUICE_WATCH_NAMESPACES".into(), namespaces.join(",")),
            ("SLUICE_NAME_PREFIX".into(), prefix.into()),
            ("SLUICE_LOG".into(), "info".into()),
            (
                "SLUICE_PERMISSIONS_BOUNDARY".into(),
                crate::permissions_boundary(prefix),
            ),
        ];
        for var in [
            "AWS_ENDPOINT_URL",
            "AWS_ENDPOINT_URL_CLOUDWATCH",
            "AWS_REGION",
        ] {
            if let Ok(value) = std::env::var(var) {
                env.push((var.into(), value));
            }
        }
        for (name, value) in extra {
            env.retain(|(n, _)| n != name);
            env.push(((*name).into(), (*value).into()));
        }
        let mut patch: Vec<serde_json::Value> = env
            .iter()
            .map(|(name, value)| {
                serde_json::json!({"op": "add", "path": "/spec/template/spec/containers/0/env/-",
                                   "value": {"name": name, "value": value}})
            })
            .collect();
        let mut resources = vec![
            base.to_string_lossy().into_owned(),
            "namespace.json".into(),
            "installation.json".into(),
        ];
        // The installation's secret, in the Secret the Deployment reads it
        // from.
        let installation = serde_json::json!({
            "apiVersion": "v1", "kind": "Secret",
            "metadata": {"name": "sluice-installation"},
            "stringData": {"id": crate::installation_id(prefix)}
        });
        std::fs::write(overlay.join("installation.json"), installation.to_string())
            .expect("installation secret");
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
                "metadata": {"name": CREDENTIALS_SECRET},
                "stringData": {"AWS_ACCESS_KEY_ID": key, "AWS_SECRET_ACCESS_KEY": secret}
            });
            std::fs::write(overlay.join("credentials.json"), credentials.to_string())
                .expect("credentials");
            resources.push("credentials.json".into());
            patch.push(serde_json::json!({
                "op": "add", "path": "/spec/template/spec/containers/0/envFrom",
                "value": [{"secretRef": {"name": CREDENTIALS_SECRET}}]}));
        }
        let kustomization = serde_json::json!({
            "apiVersion": "kustomize.config.k8s.io/v1beta1",
            "kind": "Kustomization",
            "namespace": namespace,
            "resources": resources,
            "images": [{"name": "sluice-operator", "newName": name, "newTag": tag}],
            "patches": [{"target": {"kind": "Deployment", "name": "sluice-operator"},
                         "patch": serde_json::to_string(&patch).expect("patch")}],
        });
        // JSON is YAML: kustomize reads both.
        std::fs::write(
            overlay.join("kustomization.yaml"),
            kustomization.to_string(),
        )
        .expect("kustomization");
        let ns = serde_json::json!({
            "apiVersion": "v1", "kind": "Namespace",
            "metadata": {"name": namespace, "labels": {
                "pod-security.kubernetes.io/enforce": "restricted",
                "pod-security.kubernetes.io/enforce-version": "latest"}}
        });
        std::fs::write(overlay.join("namespace.json"), ns.to_string()).expect("namespace");
        // Server-side apply: tests starting at once all apply the shared
        // ClusterRole without racing to create it.
        kubectl_ok(&[
            "apply",
            "--server-side",
            "--force-conflicts",
            "-k",
            overlay.to_str().expect("path"),
        ]);
        for watched in namespaces {
            bind(&namespace, watched);
        }
        // Policies and namespaces are cluster-scoped: read them everywhere.
        let guardrails = serde_json::json!({
            "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
            "metadata": {"name": format!("sluice-operator-guardrails-{namespace}")},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole",
                        "name": "sluice-operator-guardrails"},
            "subjects": [{"kind": "ServiceAccount", "name": "sluice-operator",
                          "namespace": namespace}]
        });
        kubectl_stdin_ok(&["apply", "-f", "-"], &guardrails.to_string());
        // Only this operator writes the status of its namespaces'
        // pipelines (config/deploy/admission/status-writer.yaml).
        let status_writer = serde_json::json!({
            "apiVersion": "admissionregistration.k8s.io/v1",
            "kind": "ValidatingAdmissionPolicyBinding",
            "metadata": {"name": format!("sluice-status-writer-{namespace}")},
            "spec": {
                "policyName": "sluice-status-writer",
                "validationActions": ["Deny"],
                "paramRef": {"name": "sluice-operator", "namespace": namespace,
                             "parameterNotFoundAction": "Deny"},
                "matchResources": {"namespaceSelector": {"matchExpressions": [
                    {"key": "kubernetes.io/metadata.name", "operator": "In", "values": namespaces}
                ]}}
            }
        });
        kubectl_stdin_ok(&["apply", "-f", "-"], &status_writer.to_string());
        let op = PodOperator {
            namespace,
            overlay,
            admin: Mutex::new(None),
        };
        op.wait_ready(Duration::from_secs(120));
        op
    }

    /// The operator's namespace.
    pub fn namespace(&self) -> &str {
        &self.namespace
    }

    /// Binds the operator's ClusterRole in `watched` again (a namespace
    /// deleted and made again lost its RoleBinding).
    pub fn bind(&self, watched: &str) {
        bind(&self.namespace, watched);
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

/// Binds the ClusterRole of the operator of namespace `operator` in
/// `watched`.
fn bind(operator: &str, watched: &str) {
    let binding = serde_json::json!({
        "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
        "metadata": {"name": format!("sluice-operator-{operator}"), "namespace": watched},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole",
                    "name": "sluice-operator"},
        "subjects": [{"kind": "ServiceAccount", "name": "sluice-operator",
                      "namespace": operator}]
    });
    kubectl_stdin_ok(&["apply", "-f", "-"], &binding.to_string());
}

impl Drop for PodOperator {
    fn drop(&mut self) {
        // The RoleBindings go with the watched namespaces.
        let _ = kubectl(&["delete", "namespace", &self.namespace, "--wait=false"]);
        let _ = kubectl(&[
            "delete",
            "clusterrolebinding",
            &format!("sluice-operator-guardrails-{}", self.namespace),
            "--wait=false",
        ]);
        let _ = kubectl(&[
            "delete",
            "validatingadmissionpolicybinding",
            &format!("sluice-status-writer-{}", self.namespace),
            "--wait=false",
        ]);
        let _ = std::fs::remove_dir_all(&self.overlay);
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_base_path_is_made_relative_to_the_overlay() {
        assert_eq!(
            relative(Path::new("/work/repo/config/deploy"), Path::new("/tmp/op")),
            PathBuf::from("../../work/repo/config/deploy")
        );
    }
}
