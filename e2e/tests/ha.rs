//! Two operator replicas from `helm install --wait`, one leading on the
//! release's Lease: only the leader writes to AWS; deleting its pod hands
//! over within the lease duration (at once: it releases the Lease on
//! SIGTERM) and a pipeline applied meanwhile converges; killing it with
//! SIGKILL in the middle of a convergence leaves no duplicate and no orphan;
//! `helm upgrade` rolls the pods with zero AWS writes; `helm uninstall`
//! leaves the CRDs, the pipelines and their AWS resources. Needs the
//! one-node cluster and the operator's image (`SLUICE_OPERATOR_IMAGE`).

use std::{
    collections::BTreeSet,
    net::SocketAddr,
    time::{Duration, Instant},
};

use sluice_e2e::{
    Namespace, Operator, apply_and_wait, assert_nothing_left, cluster, condition, delete_pipeline,
    fleet, get_pipeline, http_get, install_crd, kubectl, kubectl_ok, kubectl_stdin_ok,
    sample_manifest, sdk, token,
};

/// The chart's default lease duration.
const LEASE: Duration = Duration::from_secs(15);
/// The chart's default retry period: how often the leader renews.
const RETRY: Duration = Duration::from_secs(2);

fn image() -> String {
    std::env::var("SLUICE_OPERATOR_IMAGE").expect(
        "SLUICE_OPERATOR_IMAGE is not set: these tests run the operator as pods \
         (make env-tests loads the image into the local cluster)",
    )
}

fn wait_until<T>(what: &str, limit: Duration, mut check: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(value) = check() {
            return value;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Two replicas of the chart watching `namespace`, elected on a Lease.
fn two_replicas(namespace: &str, prefix: &str) -> Operator {
    let mut values = cluster::values(&image(), &[namespace], prefix, &[]);
    values["replicaCount"] = 2.into();
    values["podDisruptionBudget"]["enabled"] = true.into();
    let operator = Operator::start_release(values, prefix);
    let op = operator.pod().expect("pods");
    let running = wait_until("two running replicas", Duration::from_secs(120), || {
        let pods: Vec<_> = op
            .pods()
            .into_iter()
            .filter(|p| {
                p["status"]["phase"] == "Running" && p["metadata"]["deletionTimestamp"].is_null()
            })
            .collect();
        (pods.len() == 2).then_some(pods)
    });
    // Admitted where Pod Security "restricted" is enforced.
    for pod in &running {
        let ctx = &pod["spec"]["containers"][0]["securityContext"];
        assert_eq!(ctx["allowPrivilegeEscalation"], false, "{pod:#}");
        assert_eq!(pod["spec"]["securityContext"]["runAsNonRoot"], true);
    }
    operator
}

/// A metric's sum over the series containing `filter`, from one pod.
fn metric(addr: SocketAddr, name: &str, filter: &str) -> f64 {
    let (_, body) = http_get(addr, "/metrics").expect("metrics");
    body.lines()
        .filter(|l| {
            l.strip_prefix(name)
                .is_some_and(|rest| rest.starts_with(['{', ' ']))
                && l.contains(filter)
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        // An empty f64 sum is -0.
        .sum::<f64>()
        + 0.0
}

fn writes(addr: SocketAddr) -> f64 {
    metric(addr, "sluice_aws_requests_total", "access=\"write\"")
}

/// The running pods' names and admin addresses.
fn replicas(op: &cluster::PodOperator) -> Vec<(String, SocketAddr)> {
    op.pods()
        .into_iter()
        .filter(|p| p["metadata"]["deletionTimestamp"].is_null())
        .filter_map(|p| {
            let name = p["metadata"]["name"].as_str()?.to_owned();
            let addr = op.admin_of(&name)?;
            http_get(addr, "/livez")?;
            Some((name, addr))
        })
        .collect()
}

/// The pid of the operator process of pod `name` on this host (the
/// one-node cluster's containers are this machine's processes).
fn pid_of_pod(name: &str) -> Option<u32> {
    let needle = format!("POD_NAME={name}\0");
    std::fs::read_dir("/proc").ok()?.find_map(|entry| {
        let entry = entry.ok()?;
        let pid: u32 = entry.file_name().to_str()?.parse().ok()?;
        let environ = std::fs::read(entry.path().join("environ")).ok()?;
        let cmdline = std::fs::read(entry.path().join("cmdline")).ok()?;
        (String::from_utf8_lossy(&cmdline).contains("sluice-operator")
            && String::from_utf8_lossy(&environ).contains(&needle))
        .then_some(pid)
    })
}

/// The sample as pipeline `name`.
fn sample_named(file: &str, name: &str) -> String {
    let mut doc = sluice_e2e::manifest_as_json(&sample_manifest(file));
    doc["metadata"]["name"] = name.into();
    doc.to_string()
}

#[tokio::test(flavor = "multi_thread")]
async fn one_replica_writes_and_a_deleted_leader_hands_over_at_once() {
    install_crd();
    let ns = Namespace::create();
    let prefix = format!("ha{}", &token()[..6]);
    let operator = two_replicas(&ns.0, &prefix);
    let op = operator.pod().expect("pods");
    let pods = replicas(op);
    assert_eq!(pods.len(), 2, "{}", op.diagnostics());
    let leader = wait_until("a leader", Duration::from_secs(30), || op.lease_holder());
    assert!(pods.iter().any(|(n, _)| *n == leader), "{leader} {pods:?}");

    // The sample converges and data flows through it.
    let took = apply_and_wait(
        &ns.0,
        "event-triggered",
        &sample_manifest("event-triggered.yaml"),
        "Ready",
        &operator,
    );
    println!("sample Ready after {took:?} under two replicas");
    let dp = get_pipeline(&ns.0, "event-triggered");
    let sdk = sdk().await;
    let s3 = sluice_e2e::s3(&sdk);
    let input = sluice_e2e::id_of(&dp, "S3::Bucket", "input");
    let processed = sluice_e2e::id_of(&dp, "S3::Bucket", "processed");
    s3.put_object()
        .bucket(&input)
        .key("incoming/order-1.json")
        .body(
            std::fs::read(sluice_e2e::repo_root().join("config/samples/data/order.json"))
                .expect("order")
                .into(),
        )
        .send()
        .await
        .expect("put");
    sluice_e2e::flow::wait_for("the processed order", Duration::from_secs(60), || {
        let s3 = s3.clone();
        let processed = processed.clone();
        async move {
            sluice_e2e::flow::object_text(&s3, &processed, "processed/incoming/order-1.json").await
        }
    })
    .await;

    // Exactly one replica wrote to AWS, and says it leads.
    for (name, addr) in &pods {
        let leading = *name == leader;
        assert_eq!(
            metric(*addr, "sluice_leader", "") as i64,
            i64::from(leading),
            "{name}"
        );
        if leading {
            assert!(writes(*addr) > 0.0, "the leader {name} wrote nothing");
        } else {
            assert_eq!(writes(*addr), 0.0, "the standby {name} wrote to AWS");
            assert_eq!(
                metric(*addr, "sluice_aws_requests_total", ""),
                0.0,
                "the standby {name} called AWS"
            );
        }
    }
    println!(
        "writes per replica: {:?}",
        pods.iter()
            .map(|(n, a)| (n.clone(), writes(*a)))
            .collect::<Vec<_>>()
    );

    // Delete the leader's pod: it releases the Lease on SIGTERM and the
    // standby takes over well within a lease duration; a pipeline applied
    // right then converges under the new leader.
    let started = Instant::now();
    kubectl_ok(&["delete", "pod", "-n", op.release(), &leader, "--wait=false"]);
    kubectl_stdin_ok(
        &["apply", "-n", &ns.0, "-f", "-"],
        &sample_named("event-triggered.yaml", "second"),
    );
    let new_leader = wait_until("a new leader", LEASE * 2, || {
        op.lease_holder().filter(|h| *h != leader)
    });
    let handover = started.elapsed();
    println!("hand-over after deleting the leader's pod: {handover:?} (lease {LEASE:?})");
    assert!(handover < LEASE, "{handover:?}");
    // The standby, or the Deployment's replacement pod if it was quicker.
    assert_ne!(new_leader, leader);
    wait_ready(&ns.0, "second", op);
    println!(
        "pipeline applied at the hand-over Ready after {:?}",
        started.elapsed()
    );
    // The hand-over is an Event about the Lease.
    let events = kubectl_ok(&[
        "get",
        "events.events.k8s.io",
        "-n",
        op.release(),
        "-o",
        "jsonpath={range .items[*]}{.reason} {.note}{\"\\n\"}{end}",
    ]);
    assert!(
        events
            .lines()
            .any(|l| l.starts_with("LeaderElected") && l.contains(&new_leader)),
        "{events}"
    );

    for name in ["event-triggered", "second"] {
        sluice_e2e::flow::empty_buckets(&s3, &get_pipeline(&ns.0, name)).await;
        delete_pipeline(&ns.0, name, &operator);
    }
    assert_nothing_left(&sdk, &prefix).await;
}

/// Sends `signal` to the process `pid`.
fn signal(pid: u32, signal: &str) {
    assert!(
        std::process::Command::new("kill")
            .args([signal, &pid.to_string()])
            .status()
            .expect("kill")
            .success()
    );
}

/// Applies `file`'s sample and returns its name once the leader at `addr`
/// has made its first AWS write for it.
fn apply_and_await_first_write(ns: &str, file: &str, addr: SocketAddr) -> String {
    let before = writes(addr);
    kubectl_stdin_ok(&["apply", "-n", ns, "-f", "-"], &sample_manifest(file));
    wait_until("the leader's first write", Duration::from_secs(60), || {
        (writes(addr) > before).then_some(())
    });
    sluice_e2e::manifest_as_json(&sample_manifest(file))["metadata"]["name"]
        .as_str()
        .expect("name")
        .to_owned()
}

fn assert_not_ready(ns: &str, name: &str) {
    let dp = get_pipeline(ns, name);
    assert!(
        condition(&dp, "Ready").is_none_or(|c| c["status"] != "True"),
        "{name} converged before the leader was stopped: {dp:#}"
    );
}

fn wait_ready(ns: &str, name: &str, op: &cluster::PodOperator) {
    let wait = kubectl(&[
        "wait",
        "-n",
        ns,
        "--for=condition=Ready",
        &format!("dp/{name}"),
        "--timeout=120s",
    ]);
    assert!(
        wait.status.success(),
        "{}\nthe pipeline's status: {:#}\n{}",
        String::from_utf8_lossy(&wait.stderr),
        get_pipeline(ns, name)["status"],
        op.diagnostics()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_leader_killed_or_frozen_mid_convergence_leaves_no_duplicate_and_no_orphan() {
    install_crd();
    let ns = Namespace::create();
    let prefix = format!("hk{}", &token()[..6]);
    let operator = two_replicas(&ns.0, &prefix);
    let op = operator.pod().expect("pods");
    let leader = wait_until("a leader", Duration::from_secs(30), || op.lease_holder());
    let leader_addr = op.admin_of(&leader).expect("the leader's address");

    // SIGKILL in the middle of a convergence: no release, no graceful
    // stop. The kubelet starts the container again in the same pod (same
    // identity), which finds the Lease still its own and leads on.
    let first = apply_and_await_first_write(&ns.0, "orchestrated.yaml", leader_addr);
    let pid = pid_of_pod(&leader).expect("the leader's process");
    let killed = Instant::now();
    signal(pid, "-KILL");
    assert_not_ready(&ns.0, &first);
    let resumed = wait_until("a leading replica again", LEASE * 3, || {
        replicas(op).into_iter().find(|(name, addr)| {
            http_get(*addr, "/metrics").is_some()
                && metric(*addr, "sluice_leader", "") == 1.0
                && pid_of_pod(name).is_some_and(|p| p != pid)
        })
    });
    println!(
        "leading again {:?} after SIGKILL of the leader (by {}, lease {LEASE:?})",
        killed.elapsed(),
        resumed.0
    );
    wait_ready(&ns.0, &first, op);
    println!("{first} Ready {:?} after the SIGKILL", killed.elapsed());

    // SIGSTOP in the middle of the next one: a leader frozen (a hung
    // node, a long pause) stops renewing; the other replica takes over
    // after the lease duration and converges it.
    let (frozen, frozen_addr) = resumed;
    let standby = replicas(op)
        .into_iter()
        .find(|(n, _)| *n != frozen)
        .expect("the other replica");
    let second = apply_and_await_first_write(&ns.0, "fan-out.yaml", frozen_addr);
    let pid = pid_of_pod(&frozen).expect("the leader's process");
    let stopped = Instant::now();
    signal(pid, "-STOP");
    assert_not_ready(&ns.0, &second);
    wait_until("the standby leading", LEASE * 3, || {
        (op.lease_holder().as_deref() == Some(standby.0.as_str())).then_some(())
    });
    println!(
        "hand-over from a frozen leader: {:?} (lease {LEASE:?})",
        stopped.elapsed()
    );
    // The standby waited out the lease: it counts the lease duration from
    // when it saw the last renewal, which came at most one retry period
    // before the freeze (it renews every RETRY), so no sooner than
    // LEASE - RETRY after it.
    assert!(
        stopped.elapsed() >= LEASE - RETRY,
        "{:?}",
        stopped.elapsed()
    );
    wait_ready(&ns.0, &second, op);
    // Thawed, the old leader finds its fence closed: it writes nothing
    // more and stands by.
    let frozen_writes = {
        signal(pid, "-CONT");
        let w = wait_until(
            "the thawed replica's metrics",
            Duration::from_secs(10),
            || http_get(frozen_addr, "/metrics").map(|_| writes(frozen_addr)),
        );
        wait_until(
            "the thawed replica standing by",
            Duration::from_secs(30),
            || (metric(frozen_addr, "sluice_leader", "") == 0.0).then_some(()),
        );
        std::thread::sleep(Duration::from_secs(3));
        (w, writes(frozen_addr))
    };
    assert_eq!(frozen_writes.0, frozen_writes.1, "the thawed leader wrote");
    println!(
        "fenced writes of the thawed leader: {}",
        metric(frozen_addr, "sluice_leader_fenced_writes_total", "")
    );

    // No duplicate, orphaned or missing resource: everything under the
    // prefix, listed from the emulator, against the inventories.
    let dps = [get_pipeline(&ns.0, &first), get_pipeline(&ns.0, &second)];
    let sdk = sdk().await;
    let in_aws = fleet::in_aws(&sdk, &prefix).await;
    let problems = fleet::problems(&in_aws, &fleet::inventories(&ns.0));
    assert!(problems.is_empty(), "{problems:#?}");
    let s3 = sluice_e2e::s3(&sdk);
    for dp in &dps {
        sluice_e2e::flow::empty_buckets(&s3, dp).await;
        delete_pipeline(
            &ns.0,
            dp["metadata"]["name"].as_str().expect("name"),
            &operator,
        );
    }
    assert_nothing_left(&sdk, &prefix).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn helm_upgrade_rolls_with_zero_aws_writes_and_uninstall_keeps_pipelines() {
    install_crd();
    let ns = Namespace::create();
    let prefix = format!("hu{}", &token()[..6]);
    let operator = two_replicas(&ns.0, &prefix);
    let op = operator.pod().expect("pods");
    apply_and_wait(
        &ns.0,
        "event-triggered",
        &sample_manifest("event-triggered.yaml"),
        "Ready",
        &operator,
    );
    let before: BTreeSet<String> = replicas(op).into_iter().map(|(n, _)| n).collect();

    // Changed values: every pod is replaced; the new leader reads the
    // converged pipeline and writes nothing.
    op.upgrade(|values| {
        values["log"]["level"] = "info,sluice_operator=debug".into();
        values["reconcile"]["resyncSeconds"] = 120.into();
    });
    let after = wait_until("two new replicas", Duration::from_secs(120), || {
        let now: BTreeSet<String> = replicas(op).into_iter().map(|(n, _)| n).collect();
        (now.len() == 2 && now.is_disjoint(&before)).then_some(now)
    });
    let leader = wait_until("a leader among the new pods", LEASE * 2, || {
        op.lease_holder().filter(|h| after.contains(h))
    });
    let addr = op.admin_of(&leader).expect("the new leader's address");
    // It reconciled the pipeline (all of it read) ...
    wait_until(
        "the new leader's reconcile",
        Duration::from_secs(60),
        || (metric(addr, "sluice_reconciles_total", "") >= 1.0).then_some(()),
    );
    // ... with zero writes, on every new replica.
    let per_replica: Vec<(String, f64)> = after
        .iter()
        .map(|n| {
            (
                n.clone(),
                writes(op.admin_of(n).expect("a new replica's address")),
            )
        })
        .collect();
    println!("AWS writes during helm upgrade, per new replica: {per_replica:?}");
    assert!(
        per_replica.iter().all(|(_, w)| *w == 0.0),
        "{per_replica:?}"
    );
    let dp = get_pipeline(&ns.0, "event-triggered");
    assert_eq!(
        condition(&dp, "Ready").expect("Ready")["status"],
        "True",
        "{dp:#}"
    );

    // Uninstall: the operator goes; the CRDs, the pipeline and its AWS
    // resources stay (nothing deletes them without an operator).
    sluice_e2e::helm_ok(&[
        "uninstall",
        op.release(),
        "--namespace",
        op.release(),
        "--wait",
    ]);
    wait_until("the operator's pods gone", Duration::from_secs(60), || {
        op.pods().is_empty().then_some(())
    });
    kubectl_ok(&[
        "get",
        "crd",
        "datapipelines.sluice.dev",
        "sluicepolicies.sluice.dev",
    ]);
    let dp = get_pipeline(&ns.0, "event-triggered");
    assert_eq!(dp["metadata"]["finalizers"][0], "sluice.dev/cleanup");
    let sdk = sdk().await;
    let s3 = sluice_e2e::s3(&sdk);
    let input = sluice_e2e::id_of(&dp, "S3::Bucket", "input");
    s3.head_bucket()
        .bucket(&input)
        .send()
        .await
        .expect("the bucket stays after uninstall");

    // Installed again, the operator deletes what the pipeline owns.
    drop(operator);
    let op = sluice_e2e::Operator::start_with(&[&ns.0], &[("SLUICE_NAME_PREFIX", &prefix)]);
    sluice_e2e::flow::empty_buckets(&s3, &dp).await;
    delete_pipeline(&ns.0, "event-triggered", &op);
    assert_nothing_left(&sdk, &prefix).await;
}
