//! Harness of the end-to-end tests: a real Kubernetes cluster, real kubectl,
//! the AWS emulator and the operator, the way a user runs them.
//! `scripts/localenv.sh up --cluster` starts the environment; the tests find
//! it through the same variables a user sets (`KUBECONFIG`,
//! `AWS_ENDPOINT_URL`), so they also run against any cluster and AWS account
//! a kubeconfig and credentials point at. The operator runs as a pod of its
//! Deployment when `SLUICE_OPERATOR_IMAGE` names its image ([`cluster`]),
//! else as a process of `SLUICE_OPERATOR_BIN` (a control plane without a
//! node: `scripts/localenv.sh up`).

use std::{
    io::{Read, Write},
    net::TcpStream,
    path::{Path, PathBuf},
    process::{Child, Command, Output, Stdio},
    time::{Duration, Instant},
};

pub use sluice_integration_tests::token;

pub mod cluster;
pub mod fleet;
pub mod flow;
pub mod observability;
pub mod prometheus;
pub mod shaper;
pub mod zip;

/// Path of a tool the tests run: `$var` when set, else what
/// `scripts/tools.sh path <name>` says (installed by `make tools-observability`).
pub fn tool(var: &str, name: &str) -> String {
    if let Ok(path) = std::env::var(var) {
        return path;
    }
    let out = Command::new(repo_root().join("scripts/tools.sh"))
        .args(["path", name])
        .output()
        .expect("scripts/tools.sh runs");
    let path = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    assert!(
        out.status.success() && Path::new(&path).exists(),
        "{name} is not installed (set {var}, or run `make tools-observability`)"
    );
    path
}

fn required(var: &str, hint: &str) -> String {
    std::env::var(var).unwrap_or_else(|_| {
        panic!("{var} is not set: {hint}. Run the e2e tests with `make env-tests`.")
    })
}

/// The repository root.
pub fn repo_root() -> PathBuf {
    Path::new(
        &std::env::var("CARGO_MANIFEST_DIR")
            .unwrap_or_else(|_| env!("CARGO_MANIFEST_DIR").to_owned()),
    )
    .parent()
    .expect("repo root")
    .to_owned()
}

/// Path of the kubectl to use.
pub fn kubectl_path() -> String {
    std::env::var("SLUICE_KUBECTL").unwrap_or_else(|_| "kubectl".into())
}

/// Runs kubectl and returns its output, whatever the exit code.
pub fn kubectl(args: &[&str]) -> Output {
    required("KUBECONFIG", "the e2e tests need a cluster");
    Command::new(kubectl_path())
        .args(args)
        .output()
        .expect("kubectl runs")
}

/// Runs kubectl, panics on failure, returns stdout.
pub fn kubectl_ok(args: &[&str]) -> String {
    succeeded("kubectl", args, kubectl(args))
}

/// A tool's stdout, or a panic naming the command, its stdout and stderr.
fn succeeded(tool: &str, args: &[&str], out: Output) -> String {
    assert!(
        out.status.success(),
        "{tool} {} failed:\n{}{}",
        args.join(" "),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The objects of a multi-document YAML stream (`---` lines between them;
/// empty documents left out), as `helm template` and manifest files hold
/// them.
pub fn yaml_documents(text: &str) -> Vec<serde_yaml::Value> {
    let mut docs = vec![String::new()];
    for line in text.lines() {
        if line == "---" {
            docs.push(String::new());
        } else {
            let doc = docs.last_mut().expect("a document");
            doc.push_str(line);
            doc.push('\n');
        }
    }
    docs.iter()
        .map(|d| serde_yaml::from_str::<serde_yaml::Value>(d).expect("YAML"))
        .filter(|v| !v.is_null())
        .collect()
}

/// Runs kubectl with `stdin` as input (for `apply -f -`).
pub fn kubectl_stdin(args: &[&str], stdin: &str) -> Output {
    let mut child = Command::new(kubectl_path())
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("kubectl runs");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(stdin.as_bytes())
        .expect("write stdin");
    child.wait_with_output().expect("kubectl finishes")
}

/// [`kubectl_stdin`] that panics on failure, returns stdout.
pub fn kubectl_stdin_ok(args: &[&str], stdin: &str) -> String {
    succeeded("kubectl", args, kubectl_stdin(args, stdin))
}

/// The Helm chart, `charts/sluice`.
pub fn chart_dir() -> PathBuf {
    repo_root().join("charts/sluice")
}

/// Runs helm (`SLUICE_HELM`, installed by `scripts/tools.sh install-helm`)
/// against the cluster of `KUBECONFIG`.
pub fn helm(args: &[&str]) -> Output {
    let bin = required(
        "SLUICE_HELM",
        "path of helm (scripts/tools.sh install-helm; scripts/tools.sh path helm)",
    );
    Command::new(bin).args(args).output().expect("helm runs")
}

/// [`helm`] that panics on failure, returns stdout.
pub fn helm_ok(args: &[&str]) -> String {
    succeeded("helm", args, helm(args))
}

/// Installs (or updates) the CRDs from the chart's `crds/`, waits until
/// they are served, and installs what a platform installs with them, as
/// the chart renders them: the admission policies and the default
/// SluicePolicy (which selects every namespace without a
/// `sluice.dev/policy` label, so every test namespace but those that label
/// themselves). Each test's operator is a release that leaves those out.
pub fn install_crd() {
    let crds = chart_dir().join("crds");
    kubectl_ok(&[
        "apply",
        "--server-side",
        "--force-conflicts",
        "-f",
        crds.to_str().expect("path"),
    ]);
    for crd in ["datapipelines.sluice.dev", "sluicepolicies.sluice.dev"] {
        kubectl_ok(&[
            "wait",
            "--for=condition=Established",
            &format!("crd/{crd}"),
            "--timeout=60s",
        ]);
    }
    let shared = helm_ok(&[
        "template",
        "sluice",
        &chart_dir().to_string_lossy(),
        "--namespace",
        "sluice-system",
        "--set",
        "aws.permissionsBoundary=arn:aws:iam::123456789012:policy/unused",
        "--show-only",
        "templates/admission/pipeline-guardrails.yaml",
        "--show-only",
        "templates/admission/status-writer.yaml",
        "--show-only",
        "templates/admission/free-form-depth.yaml",
        "--show-only",
        "templates/default-policy.yaml",
    ]);
    kubectl_stdin_ok(
        &["apply", "--server-side", "--force-conflicts", "-f", "-"],
        &shared,
    );
}

/// Installs the CRDs of prometheus-operator, Argo CD and Flux that
/// `scripts/tools.sh install-third-party-crds` fetched from their Go modules
/// (`SLUICE_THIRD_PARTY_CRDS`), and waits until they are served: objects
/// rendered for those projects then pass a server-side dry run only if
/// their schemas accept them.
pub fn install_third_party_crds() {
    let dir = required(
        "SLUICE_THIRD_PARTY_CRDS",
        "directory of third-party CRDs (scripts/tools.sh path third-party-crds)",
    );
    kubectl_ok(&["apply", "--server-side", "--force-conflicts", "-f", &dir]);
    kubectl_ok(&[
        "wait",
        "--for=condition=Established",
        "--timeout=60s",
        "-f",
        &dir,
    ]);
}

/// A namespace of one test, deleted when dropped.
#[derive(Debug)]
pub struct Namespace(pub String);

impl Namespace {
    /// Creates `e2e-<random>`.
    pub fn create() -> Self {
        let name = format!("e2e-{}", token());
        kubectl_ok(&["create", "namespace", &name]);
        Namespace(name)
    }
}

impl Namespace {
    /// Creates `e2e-<random>` labelled `sluice.dev/policy=<policy>`: the
    /// shipped default policy does not select it; a policy of the test's
    /// own ([`Policy`]) does.
    pub fn under_policy(policy: &str) -> Self {
        let ns = Self::create();
        kubectl_ok(&[
            "label",
            "namespace",
            &ns.0,
            &format!("sluice.dev/policy={policy}"),
        ]);
        ns
    }
}

/// A SluicePolicy of one test, selecting the namespaces labelled
/// `sluice.dev/policy=<its name>`; deleted when dropped.
#[derive(Debug)]
pub struct Policy(pub String);

impl Policy {
    /// Creates (or replaces) policy `name` with `spec` (JSON of its
    /// `spec`, without the selector, which it sets).
    pub fn apply(name: &str, spec: serde_json::Value) -> Self {
        Self::update(name, spec);
        Policy(name.to_owned())
    }

    /// Replaces the spec of policy `name` (made by [`Policy::apply`]).
    pub fn update(name: &str, spec: serde_json::Value) {
        let mut spec = spec;
        spec["namespaceSelector"] = serde_json::json!({"matchLabels": {"sluice.dev/policy": name}});
        let policy = serde_json::json!({
            "apiVersion": "sluice.dev/v1alpha1", "kind": "SluicePolicy",
            "metadata": {"name": name}, "spec": spec
        });
        kubectl_stdin_ok(
            &["apply", "--server-side", "--force-conflicts", "-f", "-"],
            &policy.to_string(),
        );
    }
}

impl Drop for Policy {
    fn drop(&mut self) {
        let _ = kubectl(&["delete", "sluicepolicy", &self.0, "--wait=false"]);
    }
}

impl Drop for Namespace {
    fn drop(&mut self) {
        let _ = kubectl(&["delete", "namespace", &self.0, "--wait=false"]);
    }
}

/// A free TCP port on 127.0.0.1.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

/// GET `path` on an HTTP/1.0 server (no chunking): `(status, body)`.
pub fn http_get(addr: std::net::SocketAddr, path: &str) -> Option<(u16, String)> {
    http_get_within(addr, path, Duration::from_secs(5))
}

/// [`http_get`] waiting up to `read_timeout` for the answer.
pub fn http_get_within(
    addr: std::net::SocketAddr,
    path: &str,
    read_timeout: Duration,
) -> Option<(u16, String)> {
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(2)).ok()?;
    stream.set_read_timeout(Some(read_timeout)).ok()?;
    write!(stream, "GET {path} HTTP/1.0\r\nHost: localhost\r\n\r\n").ok()?;
    let mut response = Vec::new();
    stream.read_to_end(&mut response).ok()?;
    let response = String::from_utf8_lossy(&response);
    let status = response.split_whitespace().nth(1)?.parse().ok()?;
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    Some((status, body))
}

/// How the operator runs.
#[derive(Debug)]
enum Runner {
    /// The binary as a child process, its admin server on a loopback port.
    Process {
        child: Child,
        admin_port: u16,
        log: PathBuf,
    },
    /// A Deployment in the cluster.
    Pod(cluster::PodOperator),
}

/// The name prefix `env` gives (`SLUICE_NAME_PREFIX`: a restarted operator
/// must name resources as before), else a fresh one.
fn name_prefix(env: &[(&str, &str)]) -> String {
    env.iter()
        .find(|(k, _)| *k == "SLUICE_NAME_PREFIX")
        .map(|(_, v)| (*v).to_owned())
        .unwrap_or_else(|| format!("e2e{}", &token()[..5]))
}

/// The operator watching the namespaces it was started for: a pod of its
/// Deployment, or a process.
#[derive(Debug)]
pub struct Operator {
    runner: Runner,
    /// Its AWS name prefix.
    pub prefix: String,
}

/// Where the emulator enforces IAM (`SLUICE_HARNESS_IAM=enforce`), the
/// keys of an IAM user holding exactly the documented operator policy for
/// names starting with `prefix`: what an operator acts as, as on AWS. The
/// harness makes one user per prefix, so a restarted operator gets the
/// same keys.
pub fn operator_user(prefix: &str) -> Option<(String, String)> {
    operator_identity(prefix).map(|o| (o.access_key_id, o.secret_access_key))
}

/// What the operator of a name prefix acts as where the emulator enforces
/// IAM: the keys of its IAM user and the ARN of the permissions boundary
/// (config/iam/pipeline-boundary.json, created by the harness as a managed
/// policy) its roles must carry.
#[derive(Clone, Debug)]
pub struct OperatorIdentity {
    /// Access key id of the operator's IAM user.
    pub access_key_id: String,
    /// Its secret.
    pub secret_access_key: String,
    /// The boundary every role it creates carries.
    pub permissions_boundary: String,
}

/// [`OperatorIdentity`] of the operator of `prefix`, where the emulator
/// enforces IAM (`SLUICE_HARNESS_IAM=enforce`).
pub fn operator_identity(prefix: &str) -> Option<OperatorIdentity> {
    if std::env::var("SLUICE_HARNESS_IAM").as_deref() != Ok("enforce") {
        return None;
    }
    let user = flow::harness("POST", &format!("iam/operator?prefix={prefix}"));
    let field = |name: &str| user[name].as_str().expect(name).to_owned();
    Some(OperatorIdentity {
        access_key_id: field("accessKeyId"),
        secret_access_key: field("secretAccessKey"),
        permissions_boundary: field("permissionsBoundaryArn"),
    })
}

/// The installation secret (`SLUICE_INSTALLATION_ID`) the operator of
/// `prefix` is given: derived from the prefix, so a restarted operator
/// names buckets as before, and a test can compute the names an attacker
/// could not.
pub fn installation_id(prefix: &str) -> String {
    format!("e2e-installation-{prefix}-0123456789")
}

/// The fingerprint of that installation, which release markers carry.
pub fn installation_fingerprint(prefix: &str) -> String {
    sluice_operator::naming::PipelineId {
        prefix: prefix.to_owned(),
        account: String::new(),
        region: String::new(),
        namespace: String::new(),
        name: String::new(),
        uid: String::new(),
        namespace_uid: String::new(),
        installation: sluice_operator::config::Secret(installation_id(prefix)),
        adopt_from: None,
        kept_bucket_names: Default::default(),
    }
    .installation_fingerprint()
}

/// The permissions boundary the operator of `prefix` is configured with:
/// `SLUICE_PERMISSIONS_BOUNDARY` where set (a real account), else the one
/// the emulator's harness makes for the prefix (it exists whether or not
/// IAM is enforced: the emulator, as AWS, refuses a role whose boundary
/// names no policy).
pub fn permissions_boundary(prefix: &str) -> String {
    std::env::var("SLUICE_PERMISSIONS_BOUNDARY").unwrap_or_else(|_| {
        flow::harness("POST", &format!("iam/operator?prefix={prefix}"))["permissionsBoundaryArn"]
            .as_str()
            .expect("the harness's boundary")
            .to_owned()
    })
}

impl Operator {
    /// Starts the operator for `namespace` and waits until it is ready.
    pub fn start(namespace: &str) -> Self {
        Self::start_watching(&[namespace])
    }

    /// Starts the operator watching only `namespaces` (its namespace
    /// allow-list) and waits until it is ready: as a pod when
    /// `SLUICE_OPERATOR_IMAGE` is set, else as a process.
    pub fn start_watching(namespaces: &[&str]) -> Self {
        Self::start_with(namespaces, &[])
    }

    /// Like [`Operator::start_watching`], with more environment variables
    /// (e.g. a short `SLUICE_HEALTH_INTERVAL_SECONDS`).
    pub fn start_with(namespaces: &[&str], env: &[(&str, &str)]) -> Self {
        required("AWS_ENDPOINT_URL", "the e2e tests need an AWS endpoint");
        // A restarted operator must name resources as before: the caller
        // passes the first one's prefix.
        let prefix = name_prefix(env);
        if let Ok(image) = std::env::var("SLUICE_OPERATOR_IMAGE") {
            let pod = cluster::PodOperator::start(&image, namespaces, &prefix, env);
            return Operator {
                runner: Runner::Pod(pod),
                prefix,
            };
        }
        Self::start_process(namespaces, prefix, env)
    }

    /// A release of the chart with `values` ([`cluster::values`], changed
    /// by the caller: e.g. two replicas), as pods.
    pub fn start_release(values: serde_json::Value, prefix: &str) -> Self {
        Operator {
            runner: Runner::Pod(cluster::PodOperator::start_release(values, prefix)),
            prefix: prefix.to_owned(),
        }
    }

    /// Like [`Operator::start_with`], always as a process on this host,
    /// even on the cluster: for tests that put something of their own on a
    /// loopback port between the operator and AWS (the fleet test's quota
    /// shaper), kill it outright, or read its memory from `/proc`.
    pub fn start_process_with(namespaces: &[&str], env: &[(&str, &str)]) -> Self {
        required("AWS_ENDPOINT_URL", "the e2e tests need an AWS endpoint");
        let prefix = name_prefix(env);
        Self::start_process(namespaces, prefix, env)
    }

    fn start_process(namespaces: &[&str], prefix: String, env: &[(&str, &str)]) -> Self {
        let bin = required(
            "SLUICE_OPERATOR_BIN",
            "path of the built sluice-operator binary",
        );
        let handlers = required(
            "SLUICE_HANDLERS_DIR",
            "directory of the packaged handlers (make handlers)",
        );
        let admin_port = free_port();
        let log =
            std::env::temp_dir().join(format!("sluice-operator-{}.log", namespaces.join("-")));
        // Appended to: a restarted operator's log follows the first's.
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .expect("log file");
        let mut command = Command::new(bin);
        if let Some((key, secret)) = operator_user(&prefix) {
            command
                .env("AWS_ACCESS_KEY_ID", key)
                .env("AWS_SECRET_ACCESS_KEY", secret)
                .env_remove("AWS_SESSION_TOKEN");
        }
        command.env("SLUICE_PERMISSIONS_BOUNDARY", permissions_boundary(&prefix));
        command.env("SLUICE_INSTALLATION_ID", installation_id(&prefix));
        // One process: no Lease to elect it.
        command.env("SLUICE_LEADER_ELECTION", "false");
        command.envs(env.iter().copied());
        let child = command
            .env("SLUICE_HANDLERS_DIR", handlers)
            .env("SLUICE_WATCH_NAMESPACES", namespaces.join(","))
            .env("SLUICE_NAME_PREFIX", &prefix)
            .env("SLUICE_ADMIN_ADDR", format!("127.0.0.1:{admin_port}"))
            .env("SLUICE_LOG", "info")
            .stdout(file.try_clone().expect("log file"))
            .stderr(file)
            .spawn()
            .expect("operator starts");
        let mut op = Operator {
            runner: Runner::Process {
                child,
                admin_port,
                log,
            },
            prefix,
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        while op.get("/readyz").is_none_or(|(status, _)| status != 200) {
            if let Runner::Process { child, .. } = &mut op.runner
                && let Ok(Some(status)) = child.try_wait()
            {
                panic!(
                    "the operator exited ({status}) before it was ready:\n{}",
                    op.log_tail()
                );
            }
            assert!(
                Instant::now() < deadline,
                "the operator was not ready within 60 s:\n{}",
                op.log_tail()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        op
    }

    /// Lets the operator watch `namespace` again after it was deleted and
    /// made again (a pod's RoleBinding went with it).
    pub fn rebind(&self, namespace: &str) {
        if let Runner::Pod(pod) = &self.runner {
            pod.bind(namespace);
        }
    }

    /// The operator's Deployment, when it runs as a pod.
    pub fn pod(&self) -> Option<&cluster::PodOperator> {
        match &self.runner {
            Runner::Pod(pod) => Some(pod),
            Runner::Process { .. } => None,
        }
    }

    /// The admin server's address (`host:port`), e.g. for Prometheus to
    /// scrape: a loopback port, or the pod's IP.
    pub fn admin_target(&self) -> String {
        match &self.runner {
            Runner::Process { admin_port, .. } => format!("127.0.0.1:{admin_port}"),
            Runner::Pod(pod) => pod
                .admin_addr()
                .map(|a| a.to_string())
                .unwrap_or_else(|| panic!("no running operator pod:\n{}", pod.diagnostics())),
        }
    }

    /// GET on the admin server: `(status, body)`.
    pub fn get(&self, path: &str) -> Option<(u16, String)> {
        match &self.runner {
            Runner::Process { admin_port, .. } => {
                http_get(([127, 0, 0, 1], *admin_port).into(), path)
            }
            Runner::Pod(pod) => {
                let response = http_get(pod.admin_addr()?, path);
                if response.is_none() {
                    // The pod was replaced: ask for the new one next time.
                    pod.forget_addr();
                }
                response
            }
        }
    }

    /// Sum of a counter over the series whose labels contain `filter`.
    pub fn counter(&self, name: &str, filter: &str) -> u64 {
        let (_, body) = self.get("/metrics").expect("metrics");
        body.lines()
            .filter(|l| l.starts_with(name) && l.contains(filter))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum::<f64>() as u64
    }

    /// AWS calls so far by `service:operation` and access (`read` or
    /// `write`), from the operator's metrics.
    pub fn aws_calls(&self) -> std::collections::BTreeMap<String, u64> {
        let (_, body) = self.get("/metrics").expect("metrics");
        let label = |line: &str, name: &str| -> String {
            line.split(&format!("{name}=\""))
                .nth(1)
                .and_then(|r| r.split('"').next())
                .unwrap_or("")
                .to_owned()
        };
        // Summed over accounts.
        let mut calls = std::collections::BTreeMap::new();
        for (key, count) in body
            .lines()
            .filter(|l| l.starts_with("sluice_aws_requests_total{"))
            .filter_map(|l| {
                let count = l.rsplit(' ').next()?.parse::<f64>().ok()? as u64;
                let key = format!(
                    "{}:{} ({})",
                    label(l, "service"),
                    label(l, "operation"),
                    label(l, "access")
                );
                Some((key, count))
            })
        {
            *calls.entry(key).or_insert(0) += count;
        }
        calls
    }

    /// The value of one series of the operator's metrics, by its exact
    /// name and labels as exposed (`name{a="x",b="y"}`); `None` when absent.
    pub fn series(&self, series: &str) -> Option<f64> {
        let (_, body) = self.get("/metrics").expect("metrics");
        body.lines()
            .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
    }

    /// Health polls so far.
    pub fn health_polls(&self) -> u64 {
        self.counter("sluice_health_polls_total", "")
    }

    /// AWS write calls so far.
    pub fn aws_writes(&self) -> u64 {
        self.counter("sluice_aws_requests_total", "access=\"write\"")
    }

    /// Reconciles so far.
    pub fn reconciles(&self) -> u64 {
        self.counter("sluice_reconciles_total", "")
    }

    /// The operator's memory: a process's peak resident set (VmHWM); a
    /// pod's working set and RSS as the kubelet reports them.
    pub fn memory(&self) -> String {
        match &self.runner {
            Runner::Process { child, .. } => {
                let status = std::fs::read_to_string(format!("/proc/{}/status", child.id()))
                    .unwrap_or_default();
                let peak = status
                    .lines()
                    .find(|l| l.starts_with("VmHWM:"))
                    .and_then(|l| l.split_whitespace().nth(1))
                    .unwrap_or("?");
                format!("peak RSS {peak} KiB")
            }
            Runner::Pod(pod) => match pod.memory_kib() {
                Some((working_set, rss)) => {
                    format!("working set {working_set} KiB, RSS {rss} KiB (kubelet)")
                }
                None => "unknown (no running pod)".into(),
            },
        }
    }

    /// Kills the operator process at once (SIGKILL), as a node failure or
    /// an OOM kill would. An operator run as a pod is replaced by deleting
    /// its pod instead (see `tests/operator_pod.rs`).
    pub fn kill(&mut self) {
        match &mut self.runner {
            Runner::Process { child, .. } => {
                let _ = child.kill();
                let _ = child.wait();
            }
            Runner::Pod(_) => panic!("kill() is for an operator run as a process"),
        }
    }

    /// A figure in KiB of the operator process's `/proc/<pid>/status`
    /// (`VmRSS:`, `VmHWM:`); 0 for a pod or when unreadable.
    fn status_kib(&self, field: &str) -> u64 {
        let Runner::Process { child, .. } = &self.runner else {
            return 0;
        };
        std::fs::read_to_string(format!("/proc/{}/status", child.id()))
            .unwrap_or_default()
            .lines()
            .find(|l| l.starts_with(field))
            .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
            .unwrap_or(0)
    }

    /// Resident memory now (VmRSS) in KiB, of an operator run as a process.
    pub fn rss_kib(&self) -> u64 {
        self.status_kib("VmRSS:")
    }

    /// Peak resident memory (VmHWM) in KiB, of an operator run as a process.
    pub fn peak_rss_kib(&self) -> u64 {
        self.status_kib("VmHWM:")
    }

    /// Polls `check` until it holds; panics with the operator log tail otherwise.
    pub fn wait_until(&self, what: &str, limit: Duration, mut check: impl FnMut() -> bool) {
        let deadline = Instant::now() + limit;
        while !check() {
            if Instant::now() > deadline {
                panic!(
                    "timed out waiting for {what}; operator log:\n{}",
                    self.log_tail()
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// The last lines of the operator's log.
    pub fn log_tail(&self) -> String {
        match &self.runner {
            Runner::Process { log, .. } => {
                let log = std::fs::read_to_string(log).unwrap_or_default();
                let lines: Vec<&str> = log.lines().collect();
                lines[lines.len().saturating_sub(40)..].join("\n")
            }
            Runner::Pod(pod) => pod.log_tail(),
        }
    }
}

impl Drop for Operator {
    fn drop(&mut self) {
        if let Runner::Process { child, .. } = &mut self.runner {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// The built `kubectl-sluice`: `SLUICE_KUBECTL_SLUICE` where set, else the
/// binary beside the operator's (`make build` builds both).
pub fn kubectl_sluice_path() -> PathBuf {
    if let Ok(path) = std::env::var("SLUICE_KUBECTL_SLUICE") {
        return PathBuf::from(path);
    }
    let operator = required(
        "SLUICE_OPERATOR_BIN",
        "path of the built sluice-operator binary (kubectl-sluice is beside it)",
    );
    PathBuf::from(operator).with_file_name("kubectl-sluice")
}

/// Runs `kubectl-sluice` with `args` and more environment variables.
pub fn kubectl_sluice(args: &[&str], env: &[(&str, &str)]) -> Output {
    Command::new(kubectl_sluice_path())
        .args(args)
        .envs(env.iter().copied())
        .output()
        .expect("kubectl-sluice runs")
}

/// The pipeline as JSON (`kubectl get -o json`).
pub fn get_pipeline(namespace: &str, name: &str) -> serde_json::Value {
    let raw = kubectl_ok(&["get", "dp", name, "-n", namespace, "-o", "json"]);
    serde_json::from_str(&raw).expect("pipeline JSON")
}

/// A sample manifest from `config/samples/`.
pub fn sample_manifest(file: &str) -> String {
    std::fs::read_to_string(repo_root().join("config/samples").join(file)).expect("sample")
}

/// Applies `manifest` in `ns` and waits until pipeline `name` has condition
/// `condition_type` True; returns the time that took. Panics with the
/// pipeline's status and the operator's log otherwise.
pub fn apply_and_wait(
    ns: &str,
    name: &str,
    manifest: &str,
    condition_type: &str,
    op: &Operator,
) -> Duration {
    let started = Instant::now();
    kubectl_stdin_ok(&["apply", "-n", ns, "-f", "-"], manifest);
    let wait = kubectl(&[
        "wait",
        "-n",
        ns,
        &format!("--for=condition={condition_type}"),
        &format!("dp/{name}"),
        "--timeout=120s",
    ]);
    assert!(
        wait.status.success(),
        "not {condition_type}: {}\nstatus: {:#}\noperator log:\n{}",
        String::from_utf8_lossy(&wait.stderr),
        get_pipeline(ns, name)["status"],
        op.log_tail()
    );
    started.elapsed()
}

/// Deletes pipeline `name` and waits until it is gone (its finalizer done).
pub fn delete_pipeline(ns: &str, name: &str, op: &Operator) {
    let out = kubectl(&[
        "delete",
        "-n",
        ns,
        &format!("dp/{name}"),
        "--wait",
        "--timeout=120s",
    ]);
    assert!(
        out.status.success(),
        "delete: {}\n{}",
        String::from_utf8_lossy(&out.stderr),
        op.log_tail()
    );
}

/// `logical name → AWS id` of the inventory entries of one kind.
pub fn ids(dp: &serde_json::Value, kind: &str) -> Vec<(String, String)> {
    dp["status"]["inventory"]
        .as_array()
        .expect("inventory")
        .iter()
        .filter(|e| e["kind"] == kind)
        .map(|e| {
            (
                e["name"].as_str().expect("name").to_owned(),
                e["id"].as_str().expect("id").to_owned(),
            )
        })
        .collect()
}

/// The AWS id of one inventory entry.
pub fn id_of(dp: &serde_json::Value, kind: &str, logical: &str) -> String {
    ids(dp, kind)
        .into_iter()
        .find(|(n, _)| n == logical)
        .map(|(_, id)| id)
        .unwrap_or_else(|| panic!("{kind} {logical} not in the inventory: {dp:#}"))
}

/// The ARN of one inventory entry.
pub fn arn_of(dp: &serde_json::Value, kind: &str, logical: &str) -> String {
    dp["status"]["inventory"]
        .as_array()
        .expect("inventory")
        .iter()
        .find(|e| e["kind"] == kind && e["name"] == logical)
        .and_then(|e| e["arn"].as_str())
        .unwrap_or_else(|| panic!("{kind} {logical} has no ARN: {dp:#}"))
        .to_owned()
}

/// One status condition of a pipeline, if present.
pub fn condition<'a>(dp: &'a serde_json::Value, type_: &str) -> Option<&'a serde_json::Value> {
    dp["status"]["conditions"]
        .as_array()?
        .iter()
        .find(|c| c["type"] == type_)
}

/// The SDK configuration of an AWS principal the harness hands out (keys),
/// in `region`.
pub async fn sdk_as(key: &str, secret: &str, region: &str) -> aws_config::SdkConfig {
    use aws_config::Region;
    use aws_sdk_s3::config::{Credentials, SharedCredentialsProvider};
    sdk()
        .await
        .into_builder()
        .credentials_provider(SharedCredentialsProvider::new(Credentials::new(
            key, secret, None, None, "harness",
        )))
        .region(Region::new(region.to_owned()))
        .build()
}

/// The SDK configuration of the operator user of `prefix` (IAM enforced).
pub async fn operator_sdk(prefix: &str) -> aws_config::SdkConfig {
    let o = operator_identity(prefix).expect("the emulator enforces IAM");
    sdk_as(&o.access_key_id, &o.secret_access_key, "us-east-1").await
}

/// SDK config for assertions against AWS.
pub async fn sdk() -> aws_config::SdkConfig {
    sluice_integration_tests::sdk_config().await
}

/// An S3 client that works with the emulator (path-style).
pub fn s3(sdk: &aws_config::SdkConfig) -> aws_sdk_s3::Client {
    aws_sdk_s3::Client::from_conf(
        aws_sdk_s3::config::Builder::from(sdk)
            .force_path_style(true)
            .build(),
    )
}

/// Sets a bucket's tags to the one tag `key=value` (an attacker's forged
/// release marker, say).
pub async fn tag_bucket(s3: &aws_sdk_s3::Client, bucket: &str, key: &str, value: &str) {
    let tag = aws_sdk_s3::types::Tag::builder()
        .key(key)
        .value(value)
        .build()
        .expect("tag");
    let tagging = aws_sdk_s3::types::Tagging::builder()
        .tag_set(tag)
        .build()
        .expect("tagging");
    s3.put_bucket_tagging()
        .bucket(bucket)
        .tagging(tagging)
        .send()
        .await
        .expect("tags");
}

/// The difference between two [`Operator::aws_calls`] readings, without
/// the operations that did not change.
pub fn calls_between(
    before: &std::collections::BTreeMap<String, u64>,
    after: &std::collections::BTreeMap<String, u64>,
) -> std::collections::BTreeMap<String, u64> {
    after
        .iter()
        .filter_map(|(k, v)| {
            let d = v - before.get(k).copied().unwrap_or(0);
            (d > 0).then(|| (k.clone(), d))
        })
        .collect()
}

/// Touches an annotation so the operator reconciles `name` now, and waits
/// until it has (its reconcile counter moved), without a spec change.
pub fn poke_and_wait(ns: &str, name: &str, op: &Operator) {
    let before = op.reconciles();
    kubectl_ok(&[
        "annotate",
        "-n",
        ns,
        &format!("dp/{name}"),
        &format!("sluice.dev/poke={}", token()),
        "--overwrite",
    ]);
    op.wait_until(
        "a reconcile after the poke",
        Duration::from_secs(30),
        || op.reconciles() > before,
    );
}

/// A YAML manifest as JSON, converted by kubectl (which applies either),
/// so a test can edit it structurally.
pub fn manifest_as_json(manifest: &str) -> serde_json::Value {
    let json = kubectl_stdin_ok(
        &["create", "--dry-run=client", "-o", "json", "-f", "-"],
        manifest,
    );
    let mut doc: serde_json::Value = serde_json::from_str(&json).expect("JSON");
    // kubectl fills in its current namespace; the tests apply with -n.
    if let Some(metadata) = doc["metadata"].as_object_mut() {
        metadata.remove("namespace");
    }
    doc
}

/// Whether `name` is the operator's code bucket (`<prefix>-code-<16 hex>`):
/// the account's and region's, shared by every pipeline and kept when they
/// are all deleted (`sluice_operator::aws::code`).
pub fn is_code_bucket(prefix: &str, name: &str) -> bool {
    name.strip_prefix(prefix)
        .and_then(|rest| rest.strip_prefix("-code-"))
        .is_some_and(|hash| hash.len() == 16 && hash.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// Nothing with the operator's name prefix is left in the emulator but its
/// code bucket.
pub async fn assert_nothing_left(sdk: &aws_config::SdkConfig, prefix: &str) {
    let sqs = aws_sdk_sqs::Client::new(sdk);
    let queues = sqs
        .list_queues()
        .queue_name_prefix(prefix)
        .send()
        .await
        .expect("queues");
    assert!(queues.queue_urls().is_empty(), "{:?}", queues.queue_urls());
    let events = aws_sdk_eventbridge::Client::new(sdk);
    let buses = events
        .list_event_buses()
        .name_prefix(prefix)
        .send()
        .await
        .expect("buses");
    assert!(buses.event_buses().is_empty(), "{:?}", buses.event_buses());
    let rules = events
        .list_rules()
        .name_prefix(prefix)
        .send()
        .await
        .expect("rules");
    assert!(rules.rules().is_empty(), "{:?}", rules.rules());
    let lambda = aws_sdk_lambda::Client::new(sdk);
    let functions = lambda.list_functions().send().await.expect("functions");
    assert!(
        functions
            .functions()
            .iter()
            .all(|f| !f.function_name().unwrap_or_default().starts_with(prefix)),
        "functions left"
    );
    let mappings = lambda
        .list_event_source_mappings()
        .send()
        .await
        .expect("mappings");
    assert!(
        mappings
            .event_source_mappings()
            .iter()
            .all(|m| !m.function_arn().unwrap_or_default().contains(prefix)),
        "mappings left"
    );
    let dynamodb = aws_sdk_dynamodb::Client::new(sdk);
    let tables = dynamodb.list_tables().send().await.expect("tables");
    assert!(
        tables.table_names().iter().all(|t| !t.starts_with(prefix)),
        "{:?}",
        tables.table_names()
    );
    let iam = aws_sdk_iam::Client::new(sdk);
    let roles = iam.list_roles().send().await.expect("roles");
    assert!(
        roles
            .roles()
            .iter()
            .all(|r| !r.role_name().starts_with(prefix)),
        "roles left"
    );
    let s3 = s3(sdk);
    let buckets = s3.list_buckets().send().await.expect("buckets");
    assert!(
        buckets
            .buckets()
            .iter()
            .filter_map(|b| b.name())
            .all(|b| !b.starts_with(prefix) || is_code_bucket(prefix, b)),
        "buckets left"
    );
    let kinesis = aws_sdk_kinesis::Client::new(sdk);
    let streams = kinesis.list_streams().send().await.expect("streams");
    assert!(
        streams
            .stream_names()
            .iter()
            .all(|s| !s.starts_with(prefix)),
        "{:?}",
        streams.stream_names()
    );
}
