//! The operator binary: wires configuration, AWS, Kubernetes, the admin
//! server and the controller together. All logic lives in the library.

use std::{process::ExitCode, sync::Arc};

use sluice_operator::{
    artifacts::Catalog,
    config::OperatorConfig,
    controller::{self, Context},
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

    let ctx = Arc::new(Context::new(client, config, catalog, sdk, metrics));
    let result = controller::run(ctx, readiness)
        .await
        .map_err(|e| e.to_string());
    admin.abort();
    trim.abort();
    info!("stopped");
    result
}
