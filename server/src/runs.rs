//! `/api/v1/runs`: pipeline runs on this machine, with the pipeline crate's executor (the one
//! `sextant pipeline run` uses, with the `tune` step kind): create a run from a spec and
//! params, list, get with step states, a step's logs, the run's artifacts (list, download),
//! stop, and retry a failed or stopped run from the steps that did not succeed.
//!
//! Runs are recorded in the server's store as they go; a run that was running when the server
//! died is resumed at its next start (its finished steps are kept). A step instance's output
//! artifacts are kept in object storage when it succeeds (or is served from the cache), and
//! downloads read them from there; deleting a run forgets them.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::http::header::{CONTENT_DISPOSITION, CONTENT_TYPE};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::{Deserialize, Serialize};
use sextant_controller::local::TrialSlots;
use sextant_controller::local::tune_step::TuneStepKind;
use sextant_pipeline::executor::{RunRequest, STDERR_LOG, STDOUT_LOG, is_run_id, new_run_id};
use sextant_pipeline::run_store::{
    RunPhase, RunRecord, RunStore, StepPhase, StepRecord, StoredRun,
};
use sextant_pipeline::{
    CancellationToken, Executor, ExecutorConfig, Pipeline, RunEvent, SpecError, StepKindRegistry,
};
use sextant_store::{ArtifactOwner, StepArtifact, Store};
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use utoipa::{IntoParams, ToSchema};

use crate::AppState;
use crate::artifacts::ArtifactStore;
use crate::body::{ApiQuery, JsonBody};
use crate::error::ApiError;
use crate::events::{Event, RunEventView};
use crate::pagination::PageQuery;
use crate::views::ErrorBody;

/// The runs this server executes, and the executor they run on.
#[derive(Clone)]
pub(crate) struct Runs {
    executor: Executor,
    store: Store,
    artifacts: Arc<ArtifactStore>,
    dir: PathBuf,
    running: Arc<Mutex<HashMap<String, CancellationToken>>>,
    /// Uploads hold it shared, deleting a run exclusively: a run is deleted between uploads,
    /// never under one.
    keeping: Arc<tokio::sync::RwLock<()>>,
}

impl Runs {
    /// Runs recorded in `store`, their directories under `<data_dir>/runs/`; `tune` steps'
    /// trials run in `<data_dir>/runs/tune/` unless their template says otherwise.
    pub(crate) fn new(
        store: &Store,
        data_dir: &std::path::Path,
        artifacts: Arc<ArtifactStore>,
        trial_slots: TrialSlots,
    ) -> Runs {
        let dir = data_dir.join("runs");
        let mut kinds = StepKindRegistry::default();
        kinds.register(Arc::new(TuneStepKind::new(
            store.clone(),
            dir.join("tune"),
            trial_slots,
        )));
        Runs {
            executor: Executor::new(Arc::new(store.clone()), kinds, ExecutorConfig::default()),
            store: store.clone(),
            artifacts,
            dir,
            running: Arc::default(),
            keeping: Arc::default(),
        }
    }

    fn running(&self) -> std::sync::MutexGuard<'_, HashMap<String, CancellationToken>> {
        self.running
            .lock()
            .unwrap_or_else(|poison| poison.into_inner())
    }

    /// Resumes the runs a previous server left Pending or Running (not a cluster's, which the
    /// persistence agent mirrors).
    pub(crate) async fn resume_unfinished(&self, state: &AppState) -> Result<(), ApiError> {
        for run in sextant_pipeline::database_store::list_runs(&state.store)
            .await
            .map_err(|error| ApiError::Internal(error.to_string()))?
        {
            // A mirror of a cluster's run is executed by Argo in the cluster.
            if run.phase.is_active() && run.cluster_namespace.is_none() {
                tracing::info!(run = %run.run_id, "resuming a pipeline run");
                self.spawn(state, run.run_id.clone(), None).await?;
            }
        }
        Ok(())
    }

    /// Starts a new run of `pipeline` (`Some`) or resumes the stored run `run_id` (`None`),
    /// and returns once it is recorded as started (or has failed to start).
    async fn spawn(
        &self,
        state: &AppState,
        run_id: String,
        new: Option<(Pipeline, RunRequest)>,
    ) -> Result<(), ApiError> {
        let cancel = CancellationToken::new();
        {
            let mut running = self.running();
            if running.contains_key(&run_id) {
                return Err(ApiError::Conflict(format!("run {run_id:?} is running")));
            }
            running.insert(run_id.clone(), cancel.clone());
        }
        let (sender, mut receiver) = mpsc::unbounded_channel();
        let (started, mut started_receiver) = tokio::sync::oneshot::channel();
        let runs = self.clone();
        let events = state.events.clone();
        tokio::spawn({
            let run_id = run_id.clone();
            async move {
                let run_id_for_events = run_id.clone();
                let uploader = runs.clone();
                let forward = tokio::spawn(async move {
                    let mut started = Some(started);
                    let mut uploads = JoinSet::new();
                    while let Some(event) = receiver.recv().await {
                        match &event {
                            RunEvent::RunStarted { .. } => {
                                if let Some(started) = started.take() {
                                    let _ = started.send(Ok(()));
                                }
                            }
                            RunEvent::StepFinished {
                                step,
                                item_index,
                                phase: StepPhase::Succeeded | StepPhase::Cached,
                                ..
                            } => {
                                let (runs, run_id) = (uploader.clone(), run_id_for_events.clone());
                                let instance = (step.clone(), *item_index);
                                uploads.spawn(async move {
                                    runs.keep_artifacts(&run_id, Some(instance)).await;
                                });
                            }
                            _ => {}
                        }
                        events.publish(Event::Run(RunEventView::of(&run_id_for_events, &event)));
                    }
                    uploads.join_all().await;
                    started
                });
                let result = match new {
                    Some((pipeline, request)) => {
                        runs.executor
                            .run(&pipeline, request, Some(sender), cancel)
                            .await
                    }
                    None => runs.executor.resume(&run_id, Some(sender), cancel).await,
                };
                // The sender is gone with the run: the forwarder ends after the last event.
                if let Ok(Some(started)) = forward.await {
                    let _ = started.send(result.as_ref().map(|_| ()).map_err(ToString::to_string));
                }
                if let Err(error) = &result {
                    tracing::error!(run = %run_id, %error, "pipeline run failed to execute");
                }
                runs.running().remove(&run_id);
                // Whatever an upload missed (a failure, a step that ended before a crash).
                runs.keep_artifacts(&run_id, None).await;
            }
        });
        match (&mut started_receiver).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(message)) => Err(ApiError::Invalid {
                message: message.clone(),
                fields: vec![crate::FieldProblem {
                    path: "(run)".into(),
                    rule: message,
                }],
            }),
            Err(_) => Err(ApiError::Internal(format!(
                "run {run_id:?} ended before it started"
            ))),
        }
    }

    /// Keeps a run's output artifacts in object storage: every artifact of `fresh` (a step
    /// instance that just ended, whose files are new), and every other succeeded or cached
    /// instance's artifacts not kept yet. Failures are logged; the next pass retries them.
    async fn keep_artifacts(&self, run_id: &str, fresh: Option<(String, Option<usize>)>) {
        let _keeping = self.keeping.read().await;
        let (stored, kept) = match tokio::try_join!(
            async {
                RunStore::load_run(&self.store, run_id)
                    .await
                    .map_err(|error| error.to_string())
            },
            async {
                self.store
                    .list_run_artifacts(run_id)
                    .await
                    .map_err(|error| error.to_string())
            }
        ) {
            Ok((Some(stored), kept)) => (stored, kept),
            Ok((None, _)) => return,
            Err(error) => {
                tracing::warn!(run = run_id, %error, "cannot read the run's artifacts");
                return;
            }
        };
        let fresh = fresh.as_ref().map(|(step, item)| (step.as_str(), *item));
        for (record, name, path) in artifacts_to_keep(&stored.steps, &kept, fresh) {
            let owner = ArtifactOwner::Step {
                run_id,
                step_name: &record.step,
                item_index: record
                    .item_index
                    .and_then(|index| u32::try_from(index).ok()),
            };
            if let Err(error) = self.artifacts.keep(&self.store, owner, name, path).await {
                tracing::warn!(run = run_id, step = %record.step, artifact = name, %error, "cannot keep an artifact");
            }
        }
    }

    /// Keeps the artifacts of every run not running that are not kept yet: what ended while
    /// no server was watching.
    pub(crate) async fn keep_every_artifact(&self) {
        match sextant_pipeline::database_store::list_runs(&self.store).await {
            Ok(runs) => {
                for run in runs {
                    if !self.is_running(&run.run_id) {
                        self.keep_artifacts(&run.run_id, None).await;
                    }
                }
            }
            Err(error) => tracing::warn!(%error, "cannot list runs to keep their artifacts"),
        }
    }

    /// A run's directory.
    pub(crate) fn dir_of(&self, run_id: &str) -> PathBuf {
        self.dir.join(run_id)
    }

    /// Starts a new run and returns once it is recorded as started.
    pub(crate) async fn start(
        &self,
        state: &AppState,
        run_id: String,
        pipeline: Pipeline,
        request: RunRequest,
    ) -> Result<(), ApiError> {
        self.spawn(state, run_id, Some((pipeline, request))).await
    }

    fn stop(&self, run_id: &str) -> bool {
        match self.running().get(run_id) {
            Some(cancel) => {
                cancel.cancel();
                true
            }
            None => false,
        }
    }

    fn is_running(&self, run_id: &str) -> bool {
        self.running().contains_key(run_id)
    }

    /// How many of the runs executing now `belongs` picks out by id.
    pub(crate) fn count_running(&self, belongs: impl Fn(&str) -> bool) -> usize {
        self.running()
            .keys()
            .filter(|run_id| belongs(run_id))
            .count()
    }
}

pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route("/runs", post(create).get(list))
        .route("/runs/{id}", get(read).delete(delete))
        .route("/runs/{id}/stop", post(stop))
        .route("/runs/{id}/retry", post(retry))
        .route("/runs/{id}/steps/{step}/log", get(step_log))
        .route("/runs/{id}/artifacts", get(artifacts))
        .route("/runs/{id}/artifacts/{step}/{name}", get(download))
}

/// `POST /runs`: a pipeline and its parameters.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CreateRun {
    /// The Pipeline (`sextant.dev/v1beta1`), as YAML text or as an object.
    #[schema(value_type = Object)]
    pub pipeline: serde_json::Value,
    /// Parameter values overriding the pipeline's defaults.
    #[serde(default)]
    pub params: BTreeMap<String, String>,
    /// The run's id (1 to 255 letters, digits, `-` or `_`); generated when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run_id: Option<String>,
    /// Reuse cached step results (default true; steps can opt out with `cache: false`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache: Option<bool>,
}

/// A pipeline run with the latest state of each step instance.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RunView {
    /// Its id.
    pub run_id: String,
    /// The pipeline's `metadata.name`.
    pub pipeline_name: String,
    /// The resolved parameter values.
    pub params: BTreeMap<String, String>,
    /// `Pending`, `Running`, `Succeeded`, `Failed` or `Cancelled`.
    #[schema(value_type = String)]
    pub phase: RunPhase,
    /// Whether cached results may be reused.
    pub cache_enabled: bool,
    /// When it was created.
    pub created_at: chrono::DateTime<chrono::Utc>,
    /// When it (last) started.
    pub started_at: Option<chrono::DateTime<chrono::Utc>>,
    /// When it ended.
    pub finished_at: Option<chrono::DateTime<chrono::Utc>>,
    /// Why it ended as it did.
    pub message: Option<String>,
    /// Its step instances, in the order first recorded (absent in lists).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub steps: Option<Vec<StepView>>,
}

/// A step instance's state.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct StepView {
    /// The step.
    pub step: String,
    /// The `withItems` index of a fanned-out step.
    pub item_index: Option<usize>,
    /// `Pending`, `Running`, `Succeeded`, `Cached`, `Failed`, `Skipped` or `Cancelled`.
    #[schema(value_type = String)]
    pub phase: StepPhase,
    /// The attempt in progress or last made.
    pub attempt: u32,
    /// Whether its result came from the cache.
    pub cached: bool,
    /// Its output parameters.
    pub output_params: BTreeMap<String, String>,
    /// The names of its output artifacts.
    pub output_artifacts: Vec<String>,
    /// Why it failed or was skipped, or where a cached result came from.
    pub message: Option<String>,
    /// When its first attempt started.
    pub started_at: Option<chrono::DateTime<chrono::Utc>>,
    /// When it reached a final phase.
    pub finished_at: Option<chrono::DateTime<chrono::Utc>>,
}

impl RunView {
    fn of(run: RunRecord, steps: Option<Vec<StepRecord>>) -> RunView {
        RunView {
            run_id: run.run_id,
            pipeline_name: run.pipeline_name,
            params: run.params,
            phase: run.phase,
            cache_enabled: run.cache_enabled,
            created_at: run.created_at,
            started_at: run.started_at,
            finished_at: run.finished_at,
            message: run.message,
            steps: steps.map(|steps| steps.into_iter().map(StepView::of).collect()),
        }
    }
}

impl StepView {
    fn of(step: StepRecord) -> StepView {
        StepView {
            cached: step.phase == StepPhase::Cached,
            phase: step.phase,
            attempt: step.attempt,
            output_params: step.outputs.params,
            output_artifacts: step.outputs.artifacts.into_keys().collect(),
            message: step.message,
            started_at: step.started_at,
            finished_at: step.finished_at,
            item_index: step.item_index,
            step: step.step,
        }
    }
}

/// A page of runs.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RunList {
    /// The runs of this page, oldest first, without their steps.
    pub runs: Vec<RunView>,
    /// Pass as `pageToken` for the next page; absent on the last.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_page_token: Option<String>,
}

/// One artifact of a run.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ArtifactView {
    /// The step that produced it.
    pub step: String,
    /// The `withItems` index of a fanned-out step.
    pub item_index: Option<usize>,
    /// The artifact's name.
    pub name: String,
    /// Its size in bytes: the kept file's or archive's, or, before it is kept, the file's
    /// (absent for a directory).
    pub size: Option<u64>,
    /// The SHA-256 of the kept bytes, once kept in object storage.
    pub digest: Option<String>,
    /// It is a directory, downloaded as a tar archive.
    pub archive: bool,
}

/// A run's artifacts.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ArtifactList {
    /// Every artifact of the run's succeeded and cached steps.
    pub artifacts: Vec<ArtifactView>,
}

/// Which artifacts to keep: every one of the `fresh` instance's, and the others' of succeeded
/// or cached instances that `kept` does not name yet.
fn artifacts_to_keep<'a>(
    steps: &'a [StepRecord],
    kept: &[StepArtifact],
    fresh: Option<(&str, Option<usize>)>,
) -> Vec<(&'a StepRecord, &'a str, &'a std::path::Path)> {
    steps
        .iter()
        .filter(|record| matches!(record.phase, StepPhase::Succeeded | StepPhase::Cached))
        .flat_map(|record| {
            let is_fresh = fresh == Some((record.step.as_str(), record.item_index));
            record
                .outputs
                .artifacts
                .iter()
                .filter(move |(name, _)| is_fresh || find_kept(kept, record, name).is_none())
                .map(move |(name, path)| (record, name.as_str(), path.as_path()))
        })
        .collect()
}

pub(crate) async fn load(state: &AppState, run_id: &str) -> Result<StoredRun, ApiError> {
    RunStore::load_run(&state.store, run_id)
        .await
        .map_err(|error| ApiError::Internal(error.to_string()))?
        .ok_or_else(|| ApiError::NotFound {
            kind: "run",
            name: run_id.to_string(),
        })
}

/// Loads a run this server may act on: 404 when it is not stored, 409 when it mirrors a
/// cluster's PipelineRun (Argo runs it there; its logs are its pods').
async fn load_own(state: &AppState, run_id: &str) -> Result<StoredRun, ApiError> {
    let stored = load(state, run_id).await?;
    if let Some(namespace) = &stored.run.cluster_namespace {
        return Err(ApiError::managed_by_cluster("run", run_id, namespace));
    }
    Ok(stored)
}

/// Reads a Pipeline given as YAML text or as an object, and checks `params` against it; every
/// problem is a 422 naming its field (`pipeline.spec.steps[1].command`, `params.rows`).
/// Returns the pipeline and its YAML text.
pub(crate) fn parse_pipeline(
    value: &serde_json::Value,
    params: &BTreeMap<String, String>,
) -> Result<(Pipeline, String), ApiError> {
    let text = match value {
        serde_json::Value::String(text) => text.clone(),
        serde_json::Value::Object(_) => serde_yaml::to_string(value)
            .map_err(|error| ApiError::invalid_field("pipeline", error.to_string()))?,
        _ => {
            return Err(ApiError::invalid_field(
                "pipeline",
                "is required: a Pipeline as YAML text or as an object",
            ));
        }
    };
    let pipeline = Pipeline::from_yaml(&text).map_err(|error| match error {
        SpecError::Invalid(issues) => ApiError::Invalid {
            message: format!("the pipeline is invalid: {} problem(s)", issues.0.len()),
            fields: issues
                .0
                .into_iter()
                .map(|issue| crate::FieldProblem {
                    path: format!("pipeline.{}", issue.path),
                    rule: issue.message,
                })
                .collect(),
        },
        other => ApiError::invalid_field("pipeline", other.to_string()),
    })?;
    if let Err(error) = pipeline.resolve_params(params) {
        let name = match &error {
            sextant_pipeline::spec::ParamError::Unknown(name)
            | sextant_pipeline::spec::ParamError::Missing(name) => name.clone(),
        };
        return Err(ApiError::invalid_field(
            format!("params.{name}"),
            error.to_string(),
        ));
    }
    Ok((pipeline, text))
}

/// Start a pipeline run.
#[utoipa::path(
    post,
    operation_id = "createRun",
    path = "/api/v1/runs",
    request_body(content = CreateRun, content_type = "application/json"),
    responses(
        (status = 201, description = "recorded and started", body = RunView),
        (status = 409, description = "a run of that id exists", body = ErrorBody),
        (status = 413, description = "the body is too large", body = ErrorBody),
        (status = 415, description = "not JSON", body = ErrorBody),
        (status = 422, description = "an invalid pipeline, parameter or run id; every problem by field path, nothing recorded", body = ErrorBody),
    ),
    tag = "runs"
)]
pub(crate) async fn create(
    State(state): State<AppState>,
    JsonBody(request): JsonBody<CreateRun>,
) -> Result<Response, ApiError> {
    let (pipeline, _) = parse_pipeline(&request.pipeline, &request.params)?;
    let run_id = request.run_id.unwrap_or_else(|| new_run_id(&pipeline.name));
    if !is_run_id(&run_id) {
        return Err(ApiError::invalid_field(
            "runId",
            "must be 1 to 255 letters, digits, `-` or `_`",
        ));
    }
    if RunStore::load_run(&state.store, &run_id)
        .await
        .map_err(|error| ApiError::Internal(error.to_string()))?
        .is_some()
    {
        return Err(ApiError::Conflict(format!("run {run_id:?} exists already")));
    }
    let request = RunRequest {
        run_id: run_id.clone(),
        run_dir: state.runs.dir_of(&run_id),
        params: request.params,
        cache: request.cache.unwrap_or(true),
        trial: None,
    };
    state
        .runs
        .start(&state, run_id.clone(), pipeline, request)
        .await?;
    let stored = load(&state, &run_id).await?;
    Ok((
        StatusCode::CREATED,
        axum::Json(RunView::of(stored.run, Some(stored.steps))),
    )
        .into_response())
}

/// Which runs to list.
#[derive(Debug, Clone, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct RunFilter {
    /// Only runs in this phase.
    pub phase: Option<String>,
    /// Only runs of this pipeline.
    pub pipeline: Option<String>,
}

/// List pipeline runs, oldest first.
#[utoipa::path(
    get,
    operation_id = "listRuns",
    path = "/api/v1/runs",
    params(RunFilter, PageQuery),
    responses(
        (status = 200, description = "a page of runs", body = RunList),
        (status = 422, description = "a bad page size or token, or another query parameter that does not fit", body = ErrorBody),
    ),
    tag = "runs"
)]
pub(crate) async fn list(
    State(state): State<AppState>,
    ApiQuery(filter): ApiQuery<RunFilter>,
    ApiQuery(page): ApiQuery<PageQuery>,
) -> Result<axum::Json<RunList>, ApiError> {
    let runs: Vec<RunView> = sextant_pipeline::database_store::list_runs(&state.store)
        .await
        .map_err(|error| ApiError::Internal(error.to_string()))?
        .into_iter()
        .filter(|run| {
            filter
                .phase
                .as_ref()
                .is_none_or(|phase| run.phase.to_string() == *phase)
        })
        .filter(|run| {
            filter
                .pipeline
                .as_ref()
                .is_none_or(|name| run.pipeline_name == *name)
        })
        .map(|run| RunView::of(run, None))
        .collect();
    let (runs, next_page_token) = page.page(runs)?;
    Ok(axum::Json(RunList {
        runs,
        next_page_token,
    }))
}

/// Get a run with its step states.
#[utoipa::path(
    get,
    operation_id = "getRun",
    path = "/api/v1/runs/{id}",
    params(("id" = String, Path, description = "the run")),
    responses(
        (status = 200, description = "the run", body = RunView),
        (status = 404, description = "no such run", body = ErrorBody),
    ),
    tag = "runs"
)]
pub(crate) async fn read(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<axum::Json<RunView>, ApiError> {
    let stored = load(&state, &id).await?;
    Ok(axum::Json(RunView::of(stored.run, Some(stored.steps))))
}

/// Stop a running run: its steps' process groups are ended and it is `Cancelled` (retry
/// resumes it).
#[utoipa::path(
    post,
    operation_id = "stopRun",
    path = "/api/v1/runs/{id}/stop",
    params(("id" = String, Path, description = "the run")),
    responses(
        (status = 202, description = "stopping"),
        (status = 404, description = "no such run", body = ErrorBody),
        (status = 409, description = "the run is not running, or is a cluster's", body = ErrorBody),
    ),
    tag = "runs"
)]
pub(crate) async fn stop(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    load_own(&state, &id).await?;
    if state.runs.stop(&id) {
        Ok(StatusCode::ACCEPTED)
    } else {
        Err(ApiError::Conflict(format!("run {id:?} is not running")))
    }
}

/// Retry a failed or stopped run: the steps that succeeded (or came from the cache) are
/// kept, the rest run again.
#[utoipa::path(
    post,
    operation_id = "retryRun",
    path = "/api/v1/runs/{id}/retry",
    params(("id" = String, Path, description = "the run")),
    responses(
        (status = 200, description = "running again", body = RunView),
        (status = 404, description = "no such run", body = ErrorBody),
        (status = 409, description = "the run is running, succeeded, or a cluster's", body = ErrorBody),
    ),
    tag = "runs"
)]
pub(crate) async fn retry(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<axum::Json<RunView>, ApiError> {
    let stored = load_own(&state, &id).await?;
    if state.runs.is_running(&id)
        || !matches!(stored.run.phase, RunPhase::Failed | RunPhase::Cancelled)
    {
        return Err(ApiError::Conflict(format!(
            "run {id:?} is {}; only a failed or stopped run is retried",
            stored.run.phase
        )));
    }
    state.runs.spawn(&state, id.clone(), None).await?;
    let stored = load(&state, &id).await?;
    Ok(axum::Json(RunView::of(stored.run, Some(stored.steps))))
}

/// Which log of which instance.
#[derive(Debug, Clone, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct StepLogQuery {
    /// The `withItems` index of a fanned-out step.
    pub item: Option<usize>,
    /// `stdout` (default) or `stderr`.
    pub stream: Option<LogStream>,
}

/// A step's output stream.
#[derive(Debug, Clone, Copy, Default, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub(crate) enum LogStream {
    /// Its standard output.
    #[default]
    Stdout,
    /// Its standard error.
    Stderr,
}

/// The run's record of `step` (and `item`), which must exist.
fn step_record<'a>(
    stored: &'a StoredRun,
    step: &str,
    item: Option<usize>,
) -> Result<&'a StepRecord, ApiError> {
    stored
        .steps
        .iter()
        .find(|record| record.step == step && record.item_index == item)
        .ok_or_else(|| ApiError::NotFound {
            kind: "step instance",
            name: sextant_pipeline::executor::instance_name(step, item),
        })
}

/// A step's standard output or error.
#[utoipa::path(
    get,
    operation_id = "getStepLog",
    path = "/api/v1/runs/{id}/steps/{step}/log",
    params(("id" = String, Path, description = "the run"), ("step" = String, Path, description = "the step"), StepLogQuery),
    responses(
        (status = 200, description = "the log, as text", content_type = "text/plain", body = String),
        (status = 404, description = "no such run, step or log", body = ErrorBody),
        (status = 409, description = "a cluster's run: its logs are its pods'", body = ErrorBody),
        (status = 422, description = "a query parameter that does not fit", body = ErrorBody),
    ),
    tag = "runs"
)]
pub(crate) async fn step_log(
    State(state): State<AppState>,
    Path((id, step)): Path<(String, String)>,
    ApiQuery(query): ApiQuery<StepLogQuery>,
) -> Result<Response, ApiError> {
    let stored = load_own(&state, &id).await?;
    // The step must be recorded before its name becomes a path.
    let record = step_record(&stored, &step, query.item)?;
    let file = match query.stream.unwrap_or_default() {
        LogStream::Stdout => STDOUT_LOG,
        LogStream::Stderr => STDERR_LOG,
    };
    let path = stored
        .run
        .run_dir
        .join(sextant_pipeline::executor::instance_name(
            &record.step,
            record.item_index,
        ))
        .join(file);
    let text = tokio::fs::read(&path)
        .await
        .map_err(|error| ApiError::file(error, &path, "log of step", &step))?;
    Ok(([(CONTENT_TYPE, "text/plain; charset=utf-8")], text).into_response())
}

/// List a run's artifacts.
#[utoipa::path(
    get,
    operation_id = "listArtifacts",
    path = "/api/v1/runs/{id}/artifacts",
    params(("id" = String, Path, description = "the run")),
    responses(
        (status = 200, description = "its artifacts", body = ArtifactList),
        (status = 404, description = "no such run", body = ErrorBody),
    ),
    tag = "runs"
)]
pub(crate) async fn artifacts(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<axum::Json<ArtifactList>, ApiError> {
    let stored = load(&state, &id).await?;
    let kept = state.store.list_run_artifacts(&id).await?;
    let mut artifacts = Vec::new();
    for record in &stored.steps {
        for (name, path) in &record.outputs.artifacts {
            let view = match find_kept(&kept, record, name) {
                Some(artifact) => ArtifactView {
                    step: record.step.clone(),
                    item_index: record.item_index,
                    name: name.clone(),
                    size: Some(artifact.size),
                    digest: Some(artifact.digest.clone()),
                    archive: artifact.archive,
                },
                None => {
                    let metadata = tokio::fs::metadata(path).await.ok();
                    ArtifactView {
                        step: record.step.clone(),
                        item_index: record.item_index,
                        name: name.clone(),
                        size: metadata
                            .as_ref()
                            .filter(|metadata| metadata.is_file())
                            .map(|metadata| metadata.len()),
                        digest: None,
                        archive: metadata.is_some_and(|metadata| metadata.is_dir()),
                    }
                }
            };
            artifacts.push(view);
        }
    }
    Ok(axum::Json(ArtifactList { artifacts }))
}

/// The kept artifact `name` of a step instance.
fn find_kept<'a>(
    kept: &'a [StepArtifact],
    record: &StepRecord,
    name: &str,
) -> Option<&'a sextant_store::StoredArtifact> {
    kept.iter()
        .find(|artifact| {
            artifact.step_name == record.step
                && artifact.item_index.map(|index| index as usize) == record.item_index
                && artifact.artifact.name == name
        })
        .map(|artifact| &artifact.artifact)
}

/// Which instance's artifact.
#[derive(Debug, Clone, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct ArtifactQuery {
    /// The `withItems` index of a fanned-out step.
    pub item: Option<usize>,
}

/// Download an artifact (a file).
#[utoipa::path(
    get,
    operation_id = "downloadArtifact",
    path = "/api/v1/runs/{id}/artifacts/{step}/{name}",
    params(
        ("id" = String, Path, description = "the run"),
        ("step" = String, Path, description = "the step"),
        ("name" = String, Path, description = "the artifact"),
        ArtifactQuery,
    ),
    responses(
        (status = 200, description = "its bytes", content_type = "application/octet-stream", body = Vec<u8>),
        (status = 404, description = "no such run, step or artifact", body = ErrorBody),
        (status = 409, description = "the artifact is a directory", body = ErrorBody),
        (status = 422, description = "a query parameter that does not fit", body = ErrorBody),
    ),
    tag = "runs"
)]
pub(crate) async fn download(
    State(state): State<AppState>,
    Path((id, step, name)): Path<(String, String, String)>,
    ApiQuery(query): ApiQuery<ArtifactQuery>,
) -> Result<Response, ApiError> {
    let stored = load(&state, &id).await?;
    let record = step_record(&stored, &step, query.item)?;
    // Only a path the executor recorded is read: the URL's names select it, never form it.
    let path = record
        .outputs
        .artifacts
        .get(&name)
        .ok_or_else(|| ApiError::NotFound {
            kind: "artifact",
            name: name.clone(),
        })?;
    let kept = state.store.list_run_artifacts(&id).await?;
    let (body, archive) = match find_kept(&kept, record, &name) {
        Some(artifact) => (
            state.artifacts.read(&artifact.digest).await?,
            artifact.archive,
        ),
        None => {
            if tokio::fs::metadata(path)
                .await
                .is_ok_and(|metadata| metadata.is_dir())
            {
                return Err(ApiError::Conflict(format!(
                    "artifact {name:?} is a directory not archived yet; download it once its step's archive is kept"
                )));
            }
            let bytes = tokio::fs::read(path)
                .await
                .map_err(|error| ApiError::file(error, path, "artifact file", &name))?;
            (Body::from(bytes), false)
        }
    };
    let file_name = name.replace(
        |c: char| !c.is_ascii_alphanumeric() && c != '-' && c != '_' && c != '.',
        "_",
    );
    let (content_type, disposition) = if archive {
        (
            "application/x-tar",
            format!("attachment; filename=\"{file_name}.tar\""),
        )
    } else {
        (
            "application/octet-stream",
            format!("attachment; filename=\"{file_name}\""),
        )
    };
    Ok((
        [
            (CONTENT_TYPE, content_type.to_string()),
            (CONTENT_DISPOSITION, disposition),
        ],
        body,
    )
        .into_response())
}

/// Delete a run that is not running, with its step logs and files and its kept artifacts.
#[utoipa::path(
    delete,
    operation_id = "deleteRun",
    path = "/api/v1/runs/{id}",
    params(("id" = String, Path, description = "the run")),
    responses(
        (status = 204, description = "deleted"),
        (status = 404, description = "no such run", body = ErrorBody),
        (status = 409, description = "the run is running (stop it first), or a cluster's", body = ErrorBody),
    ),
    tag = "runs"
)]
pub(crate) async fn delete(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let _keeping = state.runs.keeping.write().await;
    // By its recorded phase: a run that has ended may still be forwarding its last events,
    // and what it uploads after this finds the run gone and stops.
    let stored = load_own(&state, &id).await?;
    if stored.run.phase.is_active() {
        return Err(ApiError::Conflict(format!(
            "run {id:?} is running; stop it first"
        )));
    }
    // The names go before the record, so a crash in between leaves a run without artifacts
    // rather than objects no name refers to.
    state.artifacts.forget_run(&state.store, &id).await?;
    state.store.delete_pipeline_run(&id).await?;
    let dir = state.runs.dir_of(&id);
    match tokio::fs::remove_dir_all(&dir).await {
        Ok(()) => {}
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {}
        Err(error) => {
            return Err(ApiError::Internal(format!(
                "cannot remove {}: {error}",
                dir.display()
            )));
        }
    }
    Ok(StatusCode::NO_CONTENT)
}

#[cfg(test)]
mod tests {
    use super::*;
    use sextant_store::StoredArtifact;

    fn record(
        step: &str,
        item_index: Option<usize>,
        phase: StepPhase,
        names: &[&str],
    ) -> StepRecord {
        StepRecord {
            step: step.into(),
            item_index,
            phase,
            attempt: 1,
            cache_key: None,
            outputs: sextant_pipeline::StepOutputs {
                params: BTreeMap::new(),
                artifacts: names
                    .iter()
                    .map(|name| {
                        (
                            name.to_string(),
                            PathBuf::from(format!("/runs/r/{step}/{name}")),
                        )
                    })
                    .collect(),
            },
            message: None,
            started_at: None,
            finished_at: None,
        }
    }

    fn kept(step: &str, item_index: Option<u32>, name: &str) -> StepArtifact {
        StepArtifact {
            step_name: step.into(),
            item_index,
            artifact: StoredArtifact {
                name: name.into(),
                digest: "0".repeat(64),
                size: 1,
                archive: false,
            },
        }
    }

    fn planned(plan: Vec<(&StepRecord, &str, &std::path::Path)>) -> Vec<String> {
        plan.into_iter()
            .map(|(record, name, _)| format!("{}[{:?}]/{name}", record.step, record.item_index))
            .collect()
    }

    #[test]
    fn what_succeeded_and_is_not_kept_is_kept_and_a_fresh_instance_is_kept_again() {
        let steps = [
            record("a", None, StepPhase::Succeeded, &["model", "report"]),
            record("fan", Some(0), StepPhase::Cached, &["part"]),
            record("fan", Some(1), StepPhase::Succeeded, &["part"]),
            record("failed", None, StepPhase::Failed, &["x"]),
            record("running", None, StepPhase::Running, &["y"]),
        ];
        let already = [kept("a", None, "model"), kept("fan", Some(1), "part")];
        assert_eq!(
            planned(artifacts_to_keep(&steps, &already, None)),
            ["a[None]/report", "fan[Some(0)]/part"]
        );
        // The instance that just ended is uploaded whole: its files are new.
        assert_eq!(
            planned(artifacts_to_keep(&steps, &already, Some(("fan", Some(1))))),
            ["a[None]/report", "fan[Some(0)]/part", "fan[Some(1)]/part"]
        );
        let all = [
            kept("a", None, "model"),
            kept("a", None, "report"),
            kept("fan", Some(0), "part"),
            kept("fan", Some(1), "part"),
        ];
        assert!(artifacts_to_keep(&steps, &all, None).is_empty());
    }
}
