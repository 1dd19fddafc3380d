//! `sextant server`: the HTTP API of `sextant-server` and Katib's gRPC services on one port.
//!
//! Requests are routed by path: gRPC's are `/api.v1.beta1.<Service>/<Method>` and
//! `/grpc.health.v1.Health/...`, the HTTP API's are under `/api/v1/`. HTTP/1.1 and HTTP/2
//! (prior knowledge, as gRPC clients speak it) are both accepted. `sextant serve` stays the
//! gRPC-only server, with HTTP/2 flow-control windows sized for large DBManager reports.

use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context;
use clap::Args;
use sextant_server::{Server, ServerConfig, Token, check_bind};
use sextant_store::Store;
use tokio::net::TcpListener;

use crate::serve::{Limits, grpc_routes};

/// Options of `sextant server`.
#[derive(Debug, Clone, Args)]
pub struct ServerArgs {
    /// Address to listen on; loopback unless told otherwise (then --token-file is required).
    #[arg(long, env = "SEXTANT_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,
    /// The store: `sqlite://PATH`, `postgres://...` or `mysql://...`.
    #[arg(long, env = "SEXTANT_DB", default_value = sextant_store::DEFAULT_DATABASE_URL)]
    pub db: String,
    /// Where experiments' working directories and trials' output go.
    #[arg(long, env = "SEXTANT_DATA_DIR", default_value = "sextant-data")]
    pub data_dir: PathBuf,
    /// The most trials running at once, over every experiment and pipeline `tune` step,
    /// whatever their parallelTrialCount. Default: four per core, at least 8.
    #[arg(long, env = "SEXTANT_MAX_PARALLEL_TRIALS", value_parser = clap::value_parser!(u32).range(1..))]
    pub max_parallel_trials: Option<u32>,
    /// A file holding the bearer token every request must carry (`Authorization: Bearer ...`).
    #[arg(long, env = "SEXTANT_TOKEN_FILE")]
    pub token_file: Option<PathBuf>,
    /// Listen on a non-loopback address without a token.
    #[arg(long)]
    pub insecure: bool,
    /// Where pipeline artifacts and trials' output logs are kept: `file:///ABSOLUTE/DIR` or
    /// `s3://BUCKET[/PREFIX]` (with the usual AWS_* environment variables). Default: the
    /// directory `artifacts` in --data-dir.
    #[arg(long, env = "SEXTANT_ARTIFACTS")]
    pub artifacts: Option<String>,
    /// The largest request body, in bytes.
    #[arg(long, env = "SEXTANT_MAX_BODY_BYTES", default_value_t = sextant_server::DEFAULT_MAX_BODY_BYTES)]
    pub max_body_bytes: usize,
}

/// Checks the bind policy, opens the store, resumes unfinished experiments and serves until
/// `shutdown` resolves.
pub async fn run(
    args: ServerArgs,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let token = match &args.token_file {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("cannot read --token-file {}", path.display()))?;
            Some(Token::parse(&text)?)
        }
        None => None,
    };
    check_bind(args.listen, token.as_ref(), args.insecure)?;
    if token.is_none() && !args.listen.ip().is_loopback() {
        tracing::warn!(address = %args.listen, "listening beyond loopback without a token (--insecure)");
    }
    let store = Store::connect(&args.db).await?;
    let listener = TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("cannot listen on {}", args.listen))?;
    let address = listener
        .local_addr()
        .context("listener has no local address")?;
    let config = ServerConfig {
        data_dir: args.data_dir.clone(),
        max_parallel_trials: args
            .max_parallel_trials
            .map_or_else(sextant_controller::local::default_max_parallel, |cap| {
                cap as usize
            }),
        token,
        max_body_bytes: args.max_body_bytes,
        artifacts: args.artifacts.clone(),
        // Trials run on this machine: they reach an unspecified address on loopback.
        url: Some(if address.ip().is_unspecified() {
            format!("http://127.0.0.1:{}", address.port())
        } else {
            format!("http://{address}")
        }),
    };
    let server = Server::start(store.clone(), config).await?;
    let limits = Limits {
        suggestions: Default::default(),
        reports: sextant_store::ReportLimits {
            max_message_bytes: sextant_store::service::DEFAULT_MAX_REPORT_BYTES,
            concurrent_requests: match store.backend() {
                sextant_store::Backend::Sqlite => 1,
                _ => sextant_store::service::DEFAULT_CONCURRENT_REPORTS,
            },
        },
    };
    let (grpc, end_suggestions) = grpc_routes(store.clone(), limits);
    let router = grpc.into_axum_router().merge(server.router());
    let address = listener
        .local_addr()
        .context("listener has no local address")?;
    tracing::info!(%address, "sextant server listening");
    // The line tools and tests wait for; it carries the bound port when asked for port 0.
    println!("listening on {address}");
    axum::serve(listener, router)
        .with_graceful_shutdown({
            let server = server.clone();
            async move {
                shutdown.await;
                end_suggestions.cancel();
                // Event streams and followed logs never end by themselves.
                server.close_streams();
            }
        })
        .await
        .context("the server failed")?;
    server.shutdown().await;
    store.close().await;
    tracing::info!("sextant server stopped");
    Ok(())
}
