//! `sextant server`: the long-running service that keeps experiments and studies, runs them,
//! and answers over an HTTP API (JSON, Katib's field names), with a Server-Sent Events stream
//! of what changes.
//!
//! This crate owns the HTTP API: its routes and their request and response types, the
//! OpenAPI document generated from them, bearer-token authentication, and the supervision of
//! the experiments the server runs (one local driver of `sextant-controller` per experiment,
//! resumed from the store after a restart). It does not own the experiment's rules (those are
//! `sextant-experiment`'s: parsing, defaulting, validation, the engine), the store's schema
//! (`sextant-store`) or how trials run (`sextant-controller`'s local driver); it calls them.
//! It depends on no Kubernetes crate, and nothing depends on it but the binary, which puts
//! the gRPC services on the same port.
//!
//! axum serves the routes and utoipa writes the OpenAPI 3.1 document from the handlers'
//! annotations; Katib's own types are described by the JSON Schema schemars derives for them
//! (the one the CRDs use), merged into the document's components ([`openapi`]).
//!
//! # Layout
//! - [`auth`]: the bind policy (loopback, or a token) and the bearer-token check.
//! - `error`: every error a request can meet, as a status and a JSON body.
//! - `body`: reading request bodies (YAML or JSON, content types, unknown fields).
//! - `supervisor`: running, stopping and resuming experiments.
//! - `artifacts`: pipeline artifacts and trials' output logs in object storage.
//! - `events`: the event hub and its SSE stream.
//! - `experiments`, `trials`, `studies`, `runs` (pipeline runs), `recurring` (recurring runs
//!   and their scheduler): the resources' handlers.
//! - `importance` (parameter importance by fANOVA) and `pipeline_graph` (a run's DAG, a
//!   trial's runs): what the web UI draws beside the resources.
//! - `ui`: the embedded web UI at `/`.
//! - [`openapi`]: the document.
//! - [`client`]: a client of the API, for the command line.
//! - `views`: the JSON the API answers with.

mod artifacts;
pub mod auth;
mod body;
pub mod client;
mod error;
mod events;
mod experiments;
mod importance;
pub mod openapi;
mod pagination;
mod pipeline_graph;
mod recurring;
mod response;
mod runs;
mod studies;
mod supervisor;
mod trials;
mod ui;
mod views;

use std::path::PathBuf;
use std::sync::Arc;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use sextant_controller::local::TrialSlots;
use sextant_store::Store;

pub use artifacts::{ArtifactError, DEFAULT_DIR as DEFAULT_ARTIFACTS_DIR};
pub use auth::{BindError, Token, check_bind};
pub use error::ApiError;
pub use events::Event;
pub use recurring::{CreateRecurringRun, CronSchedule, RecurringRunView};
pub use runs::{CreateRun, RunView, StepView};
pub use views::{ErrorBody, ExperimentList, FieldProblem, TrialList, TrialView};

/// The largest request body by default: an experiment spec with an inline template is a few
/// kilobytes, a large one a few hundred.
pub const DEFAULT_MAX_BODY_BYTES: usize = 4 * 1024 * 1024;

/// How the server runs what it is given.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Where experiments' working directories go: `<data_dir>/experiments/<name>/`, with the
    /// trials' scratch directories (and their `output.log`) under `trials/`.
    pub data_dir: PathBuf,
    /// The most trials running at once, over every experiment and `tune` step of the server,
    /// whatever their `parallelTrialCount`.
    pub max_parallel_trials: usize,
    /// The bearer token every request must carry, when set.
    pub token: Option<Token>,
    /// The largest request body accepted; larger ones are refused with 413.
    pub max_body_bytes: usize,
    /// The URL trials reach this server at, given to each as `SEXTANT_URL` (where the Python
    /// client's `report_metrics` posts), when known.
    pub url: Option<String>,
    /// Where artifacts are kept: `file:///ABSOLUTE/DIR` or `s3://BUCKET[/PREFIX]`; by
    /// default the directory [`DEFAULT_ARTIFACTS_DIR`] in `data_dir`.
    pub artifacts: Option<String>,
}

/// The running service: its state, the experiments and pipeline runs it drives, and its
/// routes.
#[derive(Clone)]
pub struct Server {
    state: AppState,
}

/// What every handler reaches.
#[derive(Clone)]
pub(crate) struct AppState {
    pub(crate) store: Store,
    pub(crate) config: Arc<ServerConfig>,
    pub(crate) supervisor: supervisor::Supervisor,
    pub(crate) events: events::EventHub,
    pub(crate) studies: studies::Studies,
    pub(crate) runs: runs::Runs,
    pub(crate) artifacts: Arc<artifacts::ArtifactStore>,
    /// One scheduler round or recurring-run change at a time.
    pub(crate) recurring: Arc<tokio::sync::Mutex<()>>,
    /// Cancelled when the server shuts down: endless responses (events, followed logs) end.
    pub(crate) closing: tokio_util::sync::CancellationToken,
}

impl Server {
    /// Opens the server on `store` and resumes every experiment it had started and not
    /// finished or been told to stop (after a crash, a SIGKILL or a restart).
    pub async fn start(store: Store, config: ServerConfig) -> Result<Server, ApiError> {
        let config = Arc::new(config);
        let artifacts = Arc::new(match &config.artifacts {
            Some(url) => artifacts::ArtifactStore::open(url, config.data_dir.join("staging"))?,
            None => artifacts::ArtifactStore::open_dir(
                &config.data_dir.join(DEFAULT_ARTIFACTS_DIR),
                config.data_dir.join("staging"),
            )?,
        });
        let events = events::EventHub::new();
        // `--max-parallel-trials` caps the trials of every experiment and tune step together.
        let trial_slots = TrialSlots::new(config.max_parallel_trials);
        let supervisor = supervisor::Supervisor::new(
            store.clone(),
            config.clone(),
            events.clone(),
            artifacts.clone(),
            trial_slots.clone(),
        );
        let runs = runs::Runs::new(&store, &config.data_dir, artifacts.clone(), trial_slots);
        let state = AppState {
            runs,
            artifacts,
            recurring: Arc::default(),
            store: store.clone(),
            config,
            supervisor,
            events,
            studies: studies::Studies::default(),
            closing: tokio_util::sync::CancellationToken::new(),
        };
        state.supervisor.resume_unfinished().await?;
        state.runs.resume_unfinished(&state).await?;
        // What ended while no server was watching (a crash between a trial's end and its
        // upload) is kept now, beside new work.
        tokio::spawn({
            let state = state.clone();
            async move {
                state.supervisor.keep_every_log().await;
                state.runs.keep_every_artifact().await;
            }
        });
        tokio::spawn(recurring::scheduler(state.clone()));
        Ok(Server { state })
    }

    /// The HTTP routes, under `/api/v1`, behind the token check when a token is set; the web
    /// UI's files and pages beside them, open to all (they hold no data).
    pub fn router(&self) -> Router {
        let api = Router::new()
            .merge(experiments::routes())
            .merge(trials::routes())
            .merge(studies::routes())
            .merge(runs::routes())
            .merge(recurring::routes())
            .merge(importance::routes())
            .merge(pipeline_graph::routes())
            .merge(events::routes())
            .merge(openapi::routes());
        let api = match &self.state.config.token {
            Some(token) => api.layer(axum::middleware::from_fn_with_state(
                token.clone(),
                auth::require_token,
            )),
            None => api,
        };
        Router::new()
            .nest("/api/v1", api)
            .merge(ui::routes())
            .layer(DefaultBodyLimit::max(self.state.config.max_body_bytes))
            .with_state(self.state.clone())
    }

    /// Ends the responses that would otherwise never end (the event stream, followed logs),
    /// so a graceful shutdown can finish.
    pub fn close_streams(&self) {
        self.state.closing.cancel();
    }

    /// Stops every experiment's driver (their trials' process groups end with them); what
    /// they had not finished resumes at the next start.
    pub async fn shutdown(&self) {
        self.state.supervisor.shutdown().await;
    }
}
