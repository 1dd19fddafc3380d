//! `sextant serve`: one gRPC server for Katib's Suggestion, EarlyStopping and DBManager APIs and
//! the health protocol.
//!
//! The server takes an already-bound listener and a shutdown future, so tests bind
//! `127.0.0.1:0` and the binary binds the configured address; on shutdown it stops accepting
//! and lets in-flight requests finish.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context;
use clap::Args;
use sextant_proto::service_names;
use sextant_store::{Store, TrialConditionUpdate};
use sextant_suggestion::early_stopping::DbManagerObservations;
use sextant_suggestion::{EarlyStoppingService, SuggestionService, TrialStatusSink};
use tokio::net::TcpListener;
use tokio_stream::wrappers::TcpListenerStream;

use crate::health::HealthService;

/// Options of `sextant serve`.
#[derive(Debug, Clone, Args)]
pub struct ServeArgs {
    /// Address to listen on; loopback unless told otherwise.
    #[arg(long, env = "SEXTANT_LISTEN", default_value = "127.0.0.1:6789")]
    pub listen: SocketAddr,
    /// Where observation logs live: `sqlite://PATH`, `postgres://...` or `mysql://...`.
    #[arg(long, env = "SEXTANT_DB", default_value = crate::DEFAULT_DB_URL)]
    pub db: String,
}

/// Binds the configured address and serves until `shutdown` resolves.
pub async fn run(args: ServeArgs, shutdown: impl Future<Output = ()> + Send) -> anyhow::Result<()> {
    let store = Store::connect(&args.db).await?;
    let listener = TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("cannot listen on {}", args.listen))?;
    let served = serve(listener, store.clone(), shutdown).await;
    store.close().await;
    served
}

/// Serves on an already-bound listener until `shutdown` resolves.
pub async fn serve(
    listener: TcpListener,
    store: Store,
    shutdown: impl Future<Output = ()> + Send,
) -> anyhow::Result<()> {
    let address = listener
        .local_addr()
        .context("listener has no local address")?;
    let health = HealthService::new([
        service_names::SUGGESTION,
        service_names::KATIB_PROBE_SUGGESTION,
        service_names::DB_MANAGER,
        service_names::EARLY_STOPPING,
    ]);
    let early_stopping = EarlyStoppingService::new(
        Arc::new(DbManagerObservations),
        Arc::new(StoreTrialStatuses(store.clone())),
    );
    tracing::info!(%address, "sextant serve listening");
    // The line tools and tests wait for; it carries the bound port when asked for port 0.
    println!("listening on {address}");
    tonic::transport::Server::builder()
        .initial_stream_window_size(sextant_proto::STREAM_WINDOW_BYTES)
        .initial_connection_window_size(sextant_proto::CONNECTION_WINDOW_BYTES)
        .add_service(health.into_server())
        .add_service(SuggestionService.into_server())
        .add_service(early_stopping.into_server())
        .add_service(
            sextant_store::db_manager_service(store)
                .max_decoding_message_size(sextant_proto::MAX_MESSAGE_BYTES),
        )
        .serve_with_incoming_shutdown(TcpListenerStream::new(listener), shutdown)
        .await
        .context("gRPC server failed")?;
    tracing::info!("sextant serve stopped");
    Ok(())
}

/// `SetTrialStatus` on trials this server's store holds: the trial becomes EarlyStopped, as
/// Katib's medianstop service marks the Trial resource.
#[derive(Debug, Clone)]
struct StoreTrialStatuses(Store);

#[tonic::async_trait]
impl TrialStatusSink for StoreTrialStatuses {
    async fn mark_early_stopped(&self, trial_name: &str) -> Result<(), String> {
        let update = TrialConditionUpdate {
            condition_type: "EarlyStopped".into(),
            reason: "TrialEarlyStopped".into(),
            message: "Trial is early stopped".into(),
            start_time: None,
            completion_time: Some(chrono::Utc::now()),
        };
        self.0
            .update_trial_condition(trial_name, &update)
            .await
            .map(|_| ())
            .map_err(|error| error.to_string())
    }
}
