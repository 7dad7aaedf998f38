//! The operator binary: wires configuration, AWS, Kubernetes, the admin
//! server, leader election and the controller together. All logic lives in
//! the library.

use std::{process::ExitCode, sync::Arc};

use sluice_operator::{
    artifacts::Catalog,
    config::{LeaderElection, OperatorConfig},
    controller::{self, Context},
    leader::{self, Elector, Fence, KubeLease},
    metrics::Metrics,
    server::{self, Readiness},
};
use tracing::{error, info};

fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("SLUICE_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,kube=warn,aws=warn"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter);
    if std::env::var("SLUICE_LOG_FORMAT").is_ok_and(|f| f == "json") {
        builder.json().init();
    } else {
        builder.init();
    }
}

fn main() -> ExitCode {
    // Before the runtime's threads exist.
    sluice_operator::memory::configure();
    init_tracing();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            error!("cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            error!("{e}");
            ExitCode::FAILURE
        }
    }
}

async fn run() -> Result<(), String> {
    // kube uses the process-wide rustls provider; ring is the only one built
    // in, and saying so keeps it that way should a dependency add another.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let sdk = sluice_operator::aws::config_loader().load().await;
    let config = OperatorConfig::from_env(sdk.region().map(|r| r.to_string()))
        .map_err(|e| format!("invalid configuration: {e}"))?;
    let election = LeaderElection::from_env().map_err(|e| format!("invalid configuration: {e}"))?;
    if config.shards > 1 && election.is_none() {
        return Err(format!(
            "invalid configuration: SLUICE_SHARDS={} needs leader election (each shard is held \
             through a Lease): set SLUICE_LEADER_ELECTION=true, or SLUICE_SHARDS=1",
            config.shards
        ));
    }
    let catalog = Catalog::load(&config.handlers_dir)?;
    info!(handlers = ?catalog.names(), region = %config.default_region, "starting sluice-operator");

    let client = kube::Client::try_default()
        .await
        .map_err(|e| format!("cannot reach Kubernetes (kubeconfig or in-cluster config): {e}"))?;
    let metrics = Metrics::new();
    let readiness = Readiness::default();
    let listener = server::bind(config.admin_addr).await.map_err(|e| {
        format!(
            "cannot listen on {} (SLUICE_ADMIN_ADDR): {e}",
            config.admin_addr
        )
    })?;
    info!(addr = %config.admin_addr, "admin server: /metrics /livez /readyz");
    let admin = tokio::spawn(server::serve(listener, metrics.clone(), readiness.clone()));
    let trim = tokio::spawn(sluice_operator::memory::release_periodically());

    let result = match election {
        None => {
            // One process, which always leads: the controller handles
            // SIGTERM/SIGINT itself, as it always did.
            info!("leader election is off (SLUICE_LEADER_ELECTION=false)");
            metrics.set_leader(true);
            let fence = Fence::always_open();
            let ctx = Arc::new(Context::new(client, config, catalog, sdk, metrics, fence));
            controller::run(ctx, readiness)
                .await
                .map_err(|e| e.to_string())
        }
        Some(election) if config.shards > 1 => {
            shard(election, client, config, catalog, sdk, metrics, readiness).await
        }
        Some(election) => elect(election, client, config, catalog, sdk, metrics, readiness).await,
    };
    admin.abort();
    trim.abort();
    info!("stopped");
    result
}

/// Runs as one of several replicas: Ready once the controller could run
/// (CRDs and RBAC), then a standby until this replica holds the Lease,
/// the controller only while it leads ([`leader`]).
async fn elect(
    election: LeaderElection,
    client: kube::Client,
    config: OperatorConfig,
    catalog: Catalog,
    sdk: aws_config::SdkConfig,
    metrics: Metrics,
    readiness: Readiness,
) -> Result<(), String> {
    // Ours from now on, in both states: a standby exits, a leader stops
    // its controller and releases the Lease first.
    let mut signals = leader::shutdown_signals()
        .map_err(|e| format!("cannot listen for SIGTERM and SIGINT: {e}"))?;
    let fence = Fence::closed();
    let ctx = Context::new(
        client.clone(),
        config,
        catalog,
        sdk,
        metrics.clone(),
        fence.clone(),
    );
    tokio::select! {
        checked = controller::preflight(&ctx) => checked.map_err(|e| e.to_string())?,
        Some(()) = futures::StreamExt::next(&mut signals) => {
            info!("stopping before the first look at the Lease");
            return Ok(());
        }
    }
    readiness.set_ready();
    info!(
        identity = %election.identity,
        lease = %election.lease_name,
        namespace = %election.lease_namespace,
        "leader election: standing by until this replica holds the Lease"
    );
    let store = KubeLease::new(client, &election, ctx.recorder.clone(), metrics.clone());
    Elector::new(store, election, fence, metrics)
        .run(signals, |stop| {
            controller::run_until(Arc::new(ctx.fresh()), readiness.clone(), stop)
        })
        .await
        .map_err(|e| e.to_string())
}

/// Runs as one of several replicas sharing the fleet in shards
/// ([`sluice_operator::shards`]): Ready once the controller could run, the
/// controller always (it reconciles the pipelines of the shards held), and
/// the member Lease and one elector per shard beside it. On SIGTERM or
/// SIGINT: the controller stops taking reconciles, every shard is handed
/// back (fence closed first), the member Lease goes.
async fn shard(
    election: LeaderElection,
    client: kube::Client,
    config: OperatorConfig,
    catalog: Catalog,
    sdk: aws_config::SdkConfig,
    metrics: Metrics,
    readiness: Readiness,
) -> Result<(), String> {
    use futures::{FutureExt, StreamExt};
    let mut signals = leader::shutdown_signals()
        .map_err(|e| format!("cannot listen for SIGTERM and SIGINT: {e}"))?;
    let count = config.shards;
    let ctx = Arc::new(Context::sharded(
        client.clone(),
        config,
        catalog,
        sdk,
        metrics.clone(),
        count,
    ));
    tokio::select! {
        checked = controller::preflight(&ctx) => checked.map_err(|e| e.to_string())?,
        Some(()) = signals.next() => {
            info!("stopping before the first look at the Leases");
            return Ok(());
        }
    }
    info!(
        identity = %election.identity,
        shards = count,
        namespace = %election.lease_namespace,
        "sharding: holding the shards rendezvous hashing gives this replica"
    );
    let (shutdown_tx, shutdown) = tokio::sync::watch::channel(false);
    let stop: controller::Stop = {
        let mut shutdown = shutdown.clone();
        async move {
            let _ = shutdown.wait_for(|s| *s).await;
        }
        .boxed()
        .shared()
    };
    let shards =
        sluice_operator::shards::run::run(ctx.clone(), client, election, metrics, shutdown.clone());
    let controller = controller::run_until(ctx, readiness, stop);
    let signalled = async move {
        if signals.next().await.is_some() {
            info!("stopping: handing the shards back");
            let _ = shutdown_tx.send(true);
        }
        // A second signal: stop at once.
        signals.next().await;
    };
    tokio::select! {
        (result, ()) = futures::future::join(controller, shards) => result.map_err(|e| e.to_string()),
        () = signalled => Ok(()),
    }
}
