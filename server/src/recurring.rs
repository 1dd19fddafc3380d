//! `/api/v1/recurringruns`: a pipeline on a cron schedule, each firing recorded as a pipeline
//! run (Kubeflow Pipelines' RecurringRun; the rules of when it fires are in
//! [`sextant_pipeline::schedule`], which the cluster's RecurringRun controller follows too).
//!
//! A firing's run id is `<name>-<YYYYMMDDhhmmss>` of its scheduled time, so a firing is
//! started at most once: a scheduler that died after starting a run and before recording the
//! firing finds the run there at its next tick and only records it.

use std::collections::BTreeMap;
use std::time::Duration;

use axum::Router;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sextant_pipeline::Pipeline;
use sextant_pipeline::executor::RunRequest;
use sextant_pipeline::run_store::RunStore;
use sextant_pipeline::schedule::{self, Observed, Schedule, ScheduleError};
use utoipa::ToSchema;

use crate::AppState;
use crate::body::{ApiQuery, JsonBody};
use crate::error::ApiError;
use crate::pagination::PageQuery;
use crate::runs::parse_pipeline;
use crate::views::ErrorBody;

/// How often the scheduler looks at the recurring runs (per-second schedules fire on time
/// to within this).
const TICK: Duration = Duration::from_millis(250);
/// The longest name: a run id is the name, `-` and 14 digits, at most 255 characters.
const MAX_NAME_LENGTH: usize = 200;

/// When a recurring run fires.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CronSchedule {
    /// A cron expression: five fields (minute hour day-of-month month day-of-week) or six
    /// (seconds first), read in `timeZone`.
    pub cron: String,
    /// The IANA time zone the expression is read in (`Europe/Paris`); UTC when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time_zone: Option<String>,
    /// No firing before this time.
    #[serde(default)]
    pub start_time: Option<DateTime<Utc>>,
    /// No firing after this time.
    #[serde(default)]
    pub end_time: Option<DateTime<Utc>>,
}

/// `POST /recurringruns`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CreateRecurringRun {
    /// Its name: 1 to 200 letters, digits, `-` or `_`.
    pub name: String,
    /// The Pipeline each firing runs, as YAML text or as an object.
    #[schema(value_type = Object)]
    pub pipeline: serde_json::Value,
    /// Parameter values for every run.
    #[serde(default)]
    pub params: BTreeMap<String, String>,
    /// When it fires.
    pub schedule: CronSchedule,
    /// The most of its runs active at once, 1 to 10 (default 10, as Kubeflow Pipelines).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_concurrency: Option<u64>,
    /// When firings were missed, start only the latest (default false: each is started).
    #[serde(default)]
    pub no_catchup: bool,
    /// Whether it fires (default true).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,
}

/// A stored recurring run.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct RecurringRecord {
    name: String,
    pipeline: String,
    params: BTreeMap<String, String>,
    schedule: CronSchedule,
    max_concurrency: usize,
    no_catchup: bool,
    enabled: bool,
    created_at: DateTime<Utc>,
    last_fired: Option<DateTime<Utc>>,
}

/// A recurring run and where it stands.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RecurringRunView {
    /// Its name.
    pub name: String,
    /// The pipeline's `metadata.name`.
    pub pipeline_name: String,
    /// Parameter values for every run.
    pub params: BTreeMap<String, String>,
    /// When it fires.
    pub schedule: CronSchedule,
    /// The most of its runs active at once.
    pub max_concurrency: usize,
    /// Whether missed firings are skipped but the latest.
    pub no_catchup: bool,
    /// Whether it fires.
    pub enabled: bool,
    /// When it was created.
    pub created_at: DateTime<Utc>,
    /// The scheduled time of the last firing started.
    pub last_fired: Option<DateTime<Utc>>,
    /// The next scheduled time, if enabled and before the end time.
    pub next_firing: Option<DateTime<Utc>>,
    /// Its runs, oldest first (their ids end with the firing time).
    pub runs: Vec<String>,
    /// How many of them are pending or running.
    pub active_runs: usize,
}

/// A page of recurring runs.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RecurringRunList {
    /// The recurring runs of this page, by name.
    pub recurring_runs: Vec<RecurringRunView>,
    /// Pass as `pageToken` for the next page; absent on the last.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_page_token: Option<String>,
}

fn run_id(name: &str, firing: DateTime<Utc>) -> String {
    format!("{name}-{}", firing.format("%Y%m%d%H%M%S"))
}

/// Whether `run_id` is a firing of `name`.
fn is_firing_of(run_id: &str, name: &str) -> bool {
    run_id
        .strip_prefix(name)
        .and_then(|rest| rest.strip_prefix('-'))
        .is_some_and(|stamp| stamp.len() == 14 && stamp.bytes().all(|byte| byte.is_ascii_digit()))
}

fn decode(text: &str) -> Result<RecurringRecord, ApiError> {
    serde_json::from_str(text).map_err(|error| {
        ApiError::Internal(format!("a stored recurring run is unreadable: {error}"))
    })
}

async fn save(state: &AppState, record: &RecurringRecord) -> Result<(), ApiError> {
    let text =
        serde_json::to_string(record).map_err(|error| ApiError::Internal(error.to_string()))?;
    state.store.put_recurring_run(&record.name, &text).await?;
    Ok(())
}

async fn fetch(state: &AppState, name: &str) -> Result<RecurringRecord, ApiError> {
    let text = state
        .store
        .get_recurring_run(name)
        .await?
        .ok_or_else(|| ApiError::NotFound {
            kind: "recurring run",
            name: name.to_string(),
        })?;
    decode(&text)
}

impl CronSchedule {
    fn parse(&self) -> Result<Schedule, ScheduleError> {
        Schedule::parse(
            &self.cron,
            self.time_zone.as_deref(),
            self.start_time,
            self.end_time,
        )
    }
}

/// A refused schedule or concurrency, as the 422 naming its field.
fn invalid(error: ScheduleError) -> ApiError {
    ApiError::invalid_field(error.field(), error.to_string())
}

fn schedule_of(record: &RecurringRecord) -> Result<Schedule, ApiError> {
    record.schedule.parse().map_err(|error| {
        ApiError::Internal(format!("stored schedule of {:?}: {error}", record.name))
    })
}

/// The ids of every stored pipeline run, oldest first (a recurring run's are those
/// [`is_firing_of`] it).
async fn run_ids(state: &AppState) -> Result<Vec<String>, ApiError> {
    Ok(sextant_pipeline::database_store::list_runs(&state.store)
        .await
        .map_err(|error| ApiError::Internal(error.to_string()))?
        .into_iter()
        .map(|run| run.run_id)
        .collect())
}

/// The view of `record`, its runs among `run_ids`; its active runs are those this server
/// executes now, as the scheduler counts them.
fn view(state: &AppState, record: RecurringRecord, run_ids: &[String]) -> RecurringRunView {
    let next_firing = if record.enabled {
        record.schedule.parse().ok().and_then(|schedule| {
            schedule.next_after(
                record
                    .last_fired
                    .unwrap_or(record.created_at)
                    .max(Utc::now()),
            )
        })
    } else {
        None
    };
    RecurringRunView {
        pipeline_name: Pipeline::from_yaml(&record.pipeline)
            .map(|pipeline| pipeline.name)
            .unwrap_or_default(),
        active_runs: state
            .runs
            .count_running(|id| is_firing_of(id, &record.name)),
        runs: run_ids
            .iter()
            .filter(|id| is_firing_of(id, &record.name))
            .cloned()
            .collect(),
        next_firing,
        name: record.name,
        params: record.params,
        schedule: record.schedule,
        max_concurrency: record.max_concurrency,
        no_catchup: record.no_catchup,
        enabled: record.enabled,
        created_at: record.created_at,
        last_fired: record.last_fired,
    }
}

pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route("/recurringruns", post(create).get(list))
        .route("/recurringruns/{name}", get(read).delete(delete))
        .route("/recurringruns/{name}/enable", post(enable))
        .route("/recurringruns/{name}/disable", post(disable))
}

/// Create a recurring run.
#[utoipa::path(
    post,
    operation_id = "createRecurringRun",
    path = "/api/v1/recurringruns",
    request_body(content = CreateRecurringRun, content_type = "application/json"),
    responses(
        (status = 201, description = "stored; it fires from now on", body = RecurringRunView),
        (status = 409, description = "a recurring run of that name exists", body = ErrorBody),
        (status = 422, description = "an invalid name, pipeline, parameter, cron expression, time range or concurrency; nothing stored", body = ErrorBody),
    ),
    tag = "recurring runs"
)]
pub(crate) async fn create(
    State(state): State<AppState>,
    JsonBody(request): JsonBody<CreateRecurringRun>,
) -> Result<Response, ApiError> {
    let name_ok = !request.name.is_empty()
        && request.name.len() <= MAX_NAME_LENGTH
        && request
            .name
            .bytes()
            .all(|byte| byte.is_ascii_alphanumeric() || byte == b'-' || byte == b'_');
    if !name_ok {
        return Err(ApiError::invalid_field(
            "name",
            format!("must be 1 to {MAX_NAME_LENGTH} letters, digits, `-` or `_`"),
        ));
    }
    let (_, text) = parse_pipeline(&request.pipeline, &request.params)?;
    request.schedule.parse().map_err(invalid)?;
    let max_concurrency = schedule::max_concurrency(request.max_concurrency).map_err(invalid)?;
    if state
        .store
        .get_recurring_run(&request.name)
        .await?
        .is_some()
    {
        return Err(ApiError::Conflict(format!(
            "recurring run {:?} exists already",
            request.name
        )));
    }
    let record = RecurringRecord {
        name: request.name,
        pipeline: text,
        params: request.params,
        schedule: request.schedule,
        max_concurrency,
        no_catchup: request.no_catchup,
        enabled: request.enabled.unwrap_or(true),
        created_at: Utc::now(),
        last_fired: None,
    };
    save(&state, &record).await?;
    Ok((StatusCode::CREATED, axum::Json(view(&state, record, &[]))).into_response())
}

/// List recurring runs.
#[utoipa::path(
    get,
    operation_id = "listRecurringRuns",
    path = "/api/v1/recurringruns",
    params(PageQuery),
    responses(
        (status = 200, description = "a page of recurring runs", body = RecurringRunList),
        (status = 422, description = "a bad page size or token", body = ErrorBody),
    ),
    tag = "recurring runs"
)]
pub(crate) async fn list(
    State(state): State<AppState>,
    ApiQuery(page): ApiQuery<PageQuery>,
) -> Result<axum::Json<RecurringRunList>, ApiError> {
    let runs = run_ids(&state).await?;
    let mut views = Vec::new();
    for (_, text) in state.store.list_recurring_runs().await? {
        views.push(view(&state, decode(&text)?, &runs));
    }
    let (recurring_runs, next_page_token) = page.page(views)?;
    Ok(axum::Json(RecurringRunList {
        recurring_runs,
        next_page_token,
    }))
}

/// Get a recurring run with its last and next firings and its runs.
#[utoipa::path(
    get,
    operation_id = "getRecurringRun",
    path = "/api/v1/recurringruns/{name}",
    params(("name" = String, Path, description = "the recurring run")),
    responses(
        (status = 200, description = "the recurring run", body = RecurringRunView),
        (status = 404, description = "no such recurring run", body = ErrorBody),
    ),
    tag = "recurring runs"
)]
pub(crate) async fn read(
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> Result<axum::Json<RecurringRunView>, ApiError> {
    let record = fetch(&state, &name).await?;
    Ok(axum::Json(view(&state, record, &run_ids(&state).await?)))
}

async fn set_enabled(
    state: &AppState,
    name: &str,
    enabled: bool,
) -> Result<RecurringRunView, ApiError> {
    let _one_writer = state.recurring.lock().await;
    let mut record = fetch(state, name).await?;
    if enabled && !record.enabled {
        // Firings missed while disabled are not caught up: it fires from now on.
        record.last_fired = Some(Utc::now().max(record.last_fired.unwrap_or(record.created_at)));
    }
    record.enabled = enabled;
    save(state, &record).await?;
    Ok(view(state, record, &run_ids(state).await?))
}

/// Enable a recurring run: it fires from now on (firings missed while disabled are skipped).
#[utoipa::path(
    post,
    operation_id = "enableRecurringRun",
    path = "/api/v1/recurringruns/{name}/enable",
    params(("name" = String, Path, description = "the recurring run")),
    responses(
        (status = 200, description = "enabled", body = RecurringRunView),
        (status = 404, description = "no such recurring run", body = ErrorBody),
    ),
    tag = "recurring runs"
)]
pub(crate) async fn enable(
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> Result<axum::Json<RecurringRunView>, ApiError> {
    Ok(axum::Json(set_enabled(&state, &name, true).await?))
}

/// Disable a recurring run: it fires no more until enabled; its runs go on.
#[utoipa::path(
    post,
    operation_id = "disableRecurringRun",
    path = "/api/v1/recurringruns/{name}/disable",
    params(("name" = String, Path, description = "the recurring run")),
    responses(
        (status = 200, description = "disabled", body = RecurringRunView),
        (status = 404, description = "no such recurring run", body = ErrorBody),
    ),
    tag = "recurring runs"
)]
pub(crate) async fn disable(
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> Result<axum::Json<RecurringRunView>, ApiError> {
    Ok(axum::Json(set_enabled(&state, &name, false).await?))
}

/// Delete a recurring run; the runs it started stay.
#[utoipa::path(
    delete,
    operation_id = "deleteRecurringRun",
    path = "/api/v1/recurringruns/{name}",
    params(("name" = String, Path, description = "the recurring run")),
    responses(
        (status = 204, description = "deleted"),
        (status = 404, description = "no such recurring run", body = ErrorBody),
    ),
    tag = "recurring runs"
)]
pub(crate) async fn delete(
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> Result<StatusCode, ApiError> {
    let _one_writer = state.recurring.lock().await;
    if state.store.delete_recurring_run(&name).await? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::NotFound {
            kind: "recurring run",
            name,
        })
    }
}

/// Fires the recurring runs on their schedules until the server closes.
pub(crate) async fn scheduler(state: AppState) {
    let mut ticks = tokio::time::interval(TICK);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = ticks.tick() => {}
            () = state.closing.cancelled() => return,
        }
        if let Err(error) = tick(&state).await {
            tracing::error!(%error, "the recurring-run scheduler failed a round");
        }
    }
}

/// One round: every enabled recurring run's due firings are started and recorded.
async fn tick(state: &AppState) -> Result<(), ApiError> {
    let _one_writer = state.recurring.lock().await;
    let stored = state.store.list_recurring_runs().await?;
    if stored.is_empty() {
        return Ok(());
    }
    for (_, text) in stored {
        let mut record = decode(&text)?;
        let schedule = schedule_of(&record)?;
        // The runs this server executes are in memory (a restart resumes the unfinished ones
        // before the scheduler starts), so a round reads no run records.
        let active = state
            .runs
            .count_running(|id| is_firing_of(id, &record.name));
        let due = schedule.due(&Observed {
            now: Utc::now(),
            created: record.created_at,
            last_fired: record.last_fired,
            active,
            max_concurrency: record.max_concurrency,
            no_catchup: record.no_catchup,
            enabled: record.enabled,
        });
        for firing in due {
            let id = run_id(&record.name, firing);
            let exists = RunStore::load_run(&state.store, &id)
                .await
                .map_err(|error| ApiError::Internal(error.to_string()))?
                .is_some();
            if !exists {
                let (pipeline, _) = parse_pipeline(
                    &serde_json::Value::String(record.pipeline.clone()),
                    &record.params,
                )?;
                let request = RunRequest {
                    run_id: id.clone(),
                    run_dir: state.runs.dir_of(&id),
                    params: record.params.clone(),
                    cache: true,
                    trial: None,
                };
                tracing::info!(recurring_run = %record.name, run = %id, "firing");
                state
                    .runs
                    .start(state, id.clone(), pipeline, request)
                    .await?;
            }
            record.last_fired = Some(firing);
            save(state, &record).await?;
        }
    }
    Ok(())
}
