//! `sextant serve`: one gRPC server for Katib's Suggestion, EarlyStopping and DBManager APIs and
//! the health protocol.
//!
//! The server takes an already-bound listener and a shutdown future, so tests bind
//! `127.0.0.1:0` and the binary binds the configured address; on shutdown it stops accepting,
//! ends suggestions still computing with `UNAVAILABLE` (they may take minutes, and the client
//! retries elsewhere) and lets the other in-flight requests finish.
//!
//! What one request can cost is bounded by the options below: suggestions computing at once and
//! for how long, and the size and number of `DBManager` reports read at once.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::Args;
use sextant_proto::service_names;
use sextant_store::{Backend, ReportLimits, Store, TrialConditionUpdate};
use sextant_suggestion::early_stopping::DbManagerObservations;
use sextant_suggestion::service::SuggestionLimits;
use sextant_suggestion::{
    EarlyStoppingService, SuggestionService, TrialStatusError, TrialStatusSink,
};
use tokio::net::TcpListener;
use tokio_stream::wrappers::TcpListenerStream;
use tokio_util::sync::CancellationToken;

use crate::health::HealthService;

/// Options of `sextant serve`.
#[derive(Debug, Clone, Args)]
pub struct ServeArgs {
    /// Address to listen on; loopback unless told otherwise.
    #[arg(long, env = "SEXTANT_LISTEN", default_value = "127.0.0.1:6789")]
    pub listen: SocketAddr,
    /// Where observation logs live: `sqlite://PATH`, `postgres://...` or `mysql://...`.
    #[arg(long, env = "SEXTANT_DB", default_value = sextant_store::DEFAULT_DATABASE_URL)]
    pub db: String,
    /// GetSuggestions requests computing at once; more are refused with RESOURCE_EXHAUSTED.
    /// Default: the number of cores.
    #[arg(long, env = "SEXTANT_MAX_CONCURRENT_SUGGESTIONS", value_parser = clap::value_parser!(u32).range(1..))]
    pub max_concurrent_suggestions: Option<u32>,
    /// The longest one GetSuggestions may compute, in seconds, whatever its client's deadline;
    /// then it ends with DEADLINE_EXCEEDED.
    #[arg(long, env = "SEXTANT_SUGGESTION_TIMEOUT", default_value_t = 300, value_parser = clap::value_parser!(u64).range(1..))]
    pub suggestion_timeout: u64,
    /// The largest DBManager request, in bytes; larger ones are refused with OUT_OF_RANGE
    /// before they are read.
    #[arg(long, env = "SEXTANT_MAX_REPORT_BYTES", default_value_t = sextant_store::service::DEFAULT_MAX_REPORT_BYTES, value_parser = parse_report_bytes)]
    pub max_report_bytes: usize,
    /// DBManager requests read and stored at once; further ones wait unread. Default: 1 with
    /// SQLite, which takes one writer at a time anyway, 4 with a database server.
    #[arg(long, env = "SEXTANT_MAX_CONCURRENT_REPORTS", value_parser = parse_concurrent_reports)]
    pub max_concurrent_reports: Option<usize>,
}

impl ServeArgs {
    fn suggestion_limits(&self) -> SuggestionLimits {
        let defaults = SuggestionLimits::default();
        SuggestionLimits {
            concurrent_requests: self
                .max_concurrent_suggestions
                .map_or(defaults.concurrent_requests, |count| count as usize),
            request_timeout: Duration::from_secs(self.suggestion_timeout),
        }
    }

    fn report_limits(&self, backend: Backend) -> ReportLimits {
        // SQLite has one writer; concurrent report transactions there only wait on its lock,
        // and on a loaded machine time out on it.
        let default = match backend {
            Backend::Sqlite => 1,
            _ => sextant_store::service::DEFAULT_CONCURRENT_REPORTS,
        };
        ReportLimits {
            max_message_bytes: self.max_report_bytes,
            concurrent_requests: self.max_concurrent_reports.unwrap_or(default),
        }
    }
}

/// `--max-report-bytes`: at least 1 KiB (a report with one point) and at most the 64 MiB every
/// Sextant server and client accepts.
fn parse_report_bytes(text: &str) -> Result<usize, String> {
    let bytes: usize = text
        .parse()
        .map_err(|_| format!("{text:?} is not a number of bytes"))?;
    if !(1024..=sextant_proto::MAX_MESSAGE_BYTES).contains(&bytes) {
        return Err(format!(
            "{bytes} is not in 1024..={}",
            sextant_proto::MAX_MESSAGE_BYTES
        ));
    }
    Ok(bytes)
}

/// `--max-concurrent-reports`: at least one.
fn parse_concurrent_reports(text: &str) -> Result<usize, String> {
    match text.parse::<usize>() {
        Ok(count) if count >= 1 => Ok(count),
        _ => Err(format!("{text:?} is not a whole number >= 1")),
    }
}

/// Binds the configured address and serves until `shutdown` resolves.
pub async fn run(args: ServeArgs, shutdown: impl Future<Output = ()> + Send) -> anyhow::Result<()> {
    let store = Store::connect(&args.db).await?;
    let listener = TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("cannot listen on {}", args.listen))?;
    let limits = Limits {
        suggestions: args.suggestion_limits(),
        reports: args.report_limits(store.backend()),
    };
    let served = serve(listener, store.clone(), limits, shutdown).await;
    store.close().await;
    served
}

/// What the server spends on requests at most.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Of the Suggestion service.
    pub suggestions: SuggestionLimits,
    /// Of the DBManager service.
    pub reports: ReportLimits,
}

/// Katib's gRPC services and the health protocol over `store`, as routes (`sextant server`
/// puts them beside its HTTP API), and the token that ends suggestions still computing.
pub fn grpc_routes(store: Store, limits: Limits) -> (tonic::service::Routes, CancellationToken) {
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
    let suggestion = SuggestionService::new(limits.suggestions);
    let end_suggestions = suggestion.shutdown_token();
    let routes = tonic::service::Routes::new(health.into_server())
        .add_service(suggestion.into_server())
        .add_service(early_stopping.into_server())
        .add_service(sextant_store::bounded_db_manager_service(
            store,
            limits.reports,
        ));
    (routes, end_suggestions)
}

/// Serves on an already-bound listener until `shutdown` resolves.
pub async fn serve(
    listener: TcpListener,
    store: Store,
    limits: Limits,
    shutdown: impl Future<Output = ()> + Send,
) -> anyhow::Result<()> {
    let address = listener
        .local_addr()
        .context("listener has no local address")?;
    let (routes, end_suggestions) = grpc_routes(store, limits);
    let shutdown = async move {
        shutdown.await;
        end_suggestions.cancel();
    };
    tracing::info!(%address, "sextant serve listening");
    // The line tools and tests wait for; it carries the bound port when asked for port 0.
    println!("listening on {address}");
    tonic::transport::Server::builder()
        .initial_stream_window_size(sextant_proto::STREAM_WINDOW_BYTES)
        .initial_connection_window_size(sextant_proto::CONNECTION_WINDOW_BYTES)
        .add_routes(routes)
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
    async fn mark_early_stopped(&self, trial_name: &str) -> Result<(), TrialStatusError> {
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
            .map_err(|error| match error {
                sextant_store::Error::TrialNotFound { .. } => TrialStatusError::UnknownTrial,
                other => TrialStatusError::Backend(Box::new(other)),
            })
    }
}
