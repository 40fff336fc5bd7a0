//! `dure`: start-up only. Parse and validate the configuration, set up logs, bind, serve
//! until SIGTERM or Ctrl-C, shut down in order.

use std::process::ExitCode;

use clap::Parser;
use dure_gateway::config::StorageBackend;
use dure_gateway::{Cli, Server};
use tracing::{error, info};

fn main() -> ExitCode {
    let config = match Cli::parse().resolve() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("dure: invalid configuration: {e}");
            return ExitCode::from(2);
        }
    };
    dure_gateway::logging::init(config.log_format, &config.log_filter);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            error!("dure cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(config)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // Once, in the log's own format (logs go to stderr): not a log line and a second
            // copy of it.
            error!("dure cannot start: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn run(config: dure_gateway::Config) -> Result<(), dure_gateway::ServerError> {
    let data_dir = match config.storage {
        StorageBackend::Fs => {
            Some(std::path::absolute(&config.data_dir).unwrap_or_else(|_| config.data_dir.clone()))
        }
        StorageBackend::Memory | StorageBackend::S3(_) => None,
    };
    let issuer = config.oidc.as_ref().map(|o| o.issuer.clone());
    let public_url = config.public_url.clone();
    let server = Server::bind(config).await?;
    let addr = server.local_addr();
    match issuer {
        None => info!(
            version = env!("CARGO_PKG_VERSION"),
            "dure starting in local mode: no identity provider, one local user, loopback only"
        ),
        Some(issuer) => info!(
            version = env!("CARGO_PKG_VERSION"),
            %issuer, %public_url,
            "dure starting: people sign in with the identity provider"
        ),
    }
    match data_dir {
        Some(dir) => {
            info!(store = %server.store_description(), data_dir = %dir.display(), "documents are stored here");
        }
        None => info!(store = %server.store_description(), "documents are stored here"),
    }
    info!("listening on http://{addr} — Yjs clients connect to ws://{addr}/ws/doc/{{doc_id}}");
    if let Some(metrics) = server.metrics_addr() {
        info!("metrics on http://{metrics}/metrics (not on the main listener)");
    }
    server.run(shutdown_signal()).await
}

async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = term.recv() => info!("SIGTERM received"),
                    _ = tokio::signal::ctrl_c() => info!("interrupt received"),
                }
            }
            Err(e) => {
                error!("cannot listen for SIGTERM ({e}); only Ctrl-C stops dure");
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
