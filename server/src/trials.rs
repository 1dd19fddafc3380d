//! Trials: an experiment's trials (filtered, sorted by objective, paged), one trial, its
//! metric series and its output log (the tail, or followed while it runs).

use std::cmp::Ordering;
use std::io::SeekFrom;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::http::header::CONTENT_TYPE;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use futures::StreamExt;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use sextant_controller::local::runner::OUTPUT_LOG;
use sextant_experiment::api::common::{ObjectiveSpec, ObjectiveType};
use sextant_store::{MetricPoint, ObservationLogFilter, StoredTrial};
use tokio::io::{AsyncReadExt, AsyncSeekExt};
use utoipa::IntoParams;

use crate::AppState;
use crate::body::{ApiQuery, JsonBody};
use crate::error::ApiError;
use crate::experiments::fetch;
use crate::pagination::{PageBounds, PageQuery};
use crate::response::SizedJson;
use crate::supervisor::trial_dir;
use crate::views::{
    ErrorBody, KeptArtifact, KeptArtifactList, ObservationLog, TrialList, TrialView,
    objective_value_of, stored_assignments,
};

/// The most of a log `tail` reads back when asked for lines, so a huge log costs little.
const MAX_TAIL_BYTES: u64 = 8 * 1024 * 1024;
/// How often a followed log is looked at for more.
const FOLLOW_INTERVAL: Duration = Duration::from_millis(200);

pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route("/experiments/{name}/trials", get(list))
        .route("/trials/{name}", get(read))
        .route(
            "/trials/{name}/observations",
            get(observations).post(report),
        )
        .route("/trials/{name}/log", get(log))
        .route("/trials/{name}/artifacts", get(artifacts))
        .route("/trials/{name}/artifacts/{artifact}", get(download))
}

/// The order of a trial list.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) enum TrialOrder {
    /// Creation order.
    #[default]
    Created,
    /// Best objective first (by the objective's direction); trials without a value last.
    Objective,
    /// Worst objective first; trials without a value last.
    ObjectiveDescending,
    /// By name.
    Name,
    /// By condition, alphabetically.
    Condition,
    /// By completion time; unfinished trials last.
    CompletionTime,
    /// By the value of the parameter named by `parameter` (numerically for numeric
    /// parameters); trials without it (an inactive conditional parameter) last.
    Parameter,
}

/// Which trials, in which order.
#[derive(Debug, Clone, Default, Deserialize, IntoParams)]
#[serde(rename_all = "camelCase")]
#[into_params(parameter_in = Query)]
pub(crate) struct TrialFilter {
    /// Only trials in this condition (`Created`, `Running`, `Succeeded`, `Failed`, `Killed`,
    /// `EarlyStopped`, `MetricsUnavailable`).
    pub condition: Option<String>,
    /// `created` (default), `objective` (best first), `objectiveDescending`, `name`,
    /// `condition`, `completionTime` or `parameter` (with `parameter`).
    pub order_by: Option<TrialOrder>,
    /// The parameter to order by, with `orderBy=parameter`.
    pub parameter: Option<String>,
    /// Reverse the order (trials without a value stay last).
    pub descending: Option<bool>,
    /// Only trials changed at or after this time (RFC 3339, a trial's `updatedAt`): what a
    /// page that already holds the list asks for to stay current.
    pub updated_since: Option<chrono::DateTime<chrono::Utc>>,
}

/// What a trial is ordered by; `Missing` sorts last whichever the direction.
#[derive(Debug, Clone, PartialEq)]
enum SortKey {
    Number(f64),
    Text(String),
    Missing,
}

impl SortKey {
    fn compare(&self, other: &SortKey, descending: bool) -> Ordering {
        let ascending = match (self, other) {
            (SortKey::Number(a), SortKey::Number(b)) => a.total_cmp(b),
            (SortKey::Text(a), SortKey::Text(b)) => a.cmp(b),
            (SortKey::Missing, SortKey::Missing) => return Ordering::Equal,
            (SortKey::Missing, _) => return Ordering::Greater,
            (_, SortKey::Missing) => return Ordering::Less,
            // One parameter's values are all numbers or all text.
            (SortKey::Number(_), SortKey::Text(_)) => Ordering::Less,
            (SortKey::Text(_), SortKey::Number(_)) => Ordering::Greater,
        };
        if descending {
            ascending.reverse()
        } else {
            ascending
        }
    }
}

/// Orders `records` (in creation order) as `filter` asks, stably: ties keep creation order.
fn order_trials(
    records: Vec<StoredTrial>,
    filter: &TrialFilter,
    experiment: &sextant_experiment::api::experiment::Experiment,
) -> Result<Vec<StoredTrial>, ApiError> {
    let order = filter.order_by.unwrap_or_default();
    let descending = filter.descending.unwrap_or(false);
    if filter.parameter.is_some() && order != TrialOrder::Parameter {
        return Err(ApiError::invalid_field(
            "parameter",
            "is only for orderBy=parameter",
        ));
    }
    let objective = experiment.spec.objective.as_ref();
    match order {
        TrialOrder::Created => {
            let mut records = records;
            if descending {
                records.reverse();
            }
            Ok(records)
        }
        TrialOrder::Objective | TrialOrder::ObjectiveDescending => {
            let maximize = objective.and_then(|objective| objective.objective_type.as_ref())
                == Some(&ObjectiveType::Maximize);
            // Ascending values are best first when minimizing.
            let best_first = (order == TrialOrder::Objective) != descending;
            sort_by_key(records, best_first == maximize, |record| {
                Ok(
                    objective_value_of(record, objective)?
                        .map_or(SortKey::Missing, SortKey::Number),
                )
            })
        }
        TrialOrder::Name => sort_by_key(records, descending, |record| {
            Ok(SortKey::Text(record.name.clone()))
        }),
        TrialOrder::Condition => sort_by_key(records, descending, |record| {
            Ok(SortKey::Text(record.condition_type.clone()))
        }),
        // Microseconds since 1970 are exact in an f64 for the next 250 years.
        TrialOrder::CompletionTime => sort_by_key(records, descending, |record| {
            Ok(record.completion_time.map_or(SortKey::Missing, |time| {
                SortKey::Number(time.timestamp_micros() as f64)
            }))
        }),
        TrialOrder::Parameter => {
            let Some(wanted) = filter.parameter.as_deref() else {
                return Err(ApiError::invalid_field(
                    "parameter",
                    "is required with orderBy=parameter",
                ));
            };
            let Some(spec) = experiment
                .spec
                .parameters
                .iter()
                .find(|parameter| parameter.name == wanted)
            else {
                return Err(ApiError::invalid_field(
                    "parameter",
                    format!(
                        "{} is not a parameter of this experiment",
                        sextant_echo::echo_quoted(wanted)
                    ),
                ));
            };
            let numeric = !matches!(
                spec.parameter_type,
                Some(sextant_experiment::api::experiment::ParameterType::Categorical)
            );
            sort_by_key(records, descending, |record| {
                let value = stored_assignments(record)?
                    .into_iter()
                    .find(|assignment| assignment.name == wanted)
                    .map(|assignment| assignment.value);
                Ok(match value {
                    None => SortKey::Missing,
                    Some(text) if numeric => text
                        .parse::<f64>()
                        .map_or(SortKey::Text(text), SortKey::Number),
                    Some(text) => SortKey::Text(text),
                })
            })
        }
    }
}

fn sort_by_key(
    records: Vec<StoredTrial>,
    descending: bool,
    key: impl Fn(&StoredTrial) -> Result<SortKey, ApiError>,
) -> Result<Vec<StoredTrial>, ApiError> {
    let mut keyed = records
        .into_iter()
        .map(|record| Ok((key(&record)?, record)))
        .collect::<Result<Vec<_>, ApiError>>()?;
    keyed.sort_by(|(a, _), (b, _)| a.compare(b, descending));
    Ok(keyed.into_iter().map(|(_, record)| record).collect())
}

/// List an experiment's trials.
#[utoipa::path(
    operation_id = "listTrials",
    get,
    path = "/api/v1/experiments/{name}/trials",
    params(("name" = String, Path, description = "the experiment"), TrialFilter, PageQuery),
    responses(
        (status = 200, description = "a page of trials", body = TrialList),
        (status = 404, description = "no such experiment", body = ErrorBody),
        (status = 422, description = "a bad page size or token, or another query parameter that does not fit", body = ErrorBody),
    ),
    tag = "trials"
)]
pub(crate) async fn list(
    State(state): State<AppState>,
    Path(name): Path<String>,
    ApiQuery(filter): ApiQuery<TrialFilter>,
    ApiQuery(page): ApiQuery<PageQuery>,
) -> Result<SizedJson<WrittenTrialList>, ApiError> {
    let (experiment, _) = fetch(&state, &name).await?;
    let bounds = page.bounds()?;
    let (page, total, next_page_token) = if store_reads_page(&filter, bounds) {
        let newest_first = filter.descending.unwrap_or(false);
        let (records, total) = state
            .store
            .page_trials(
                &name,
                filter.condition.as_deref(),
                newest_first,
                bounds.start,
                bounds.size,
            )
            .await?;
        let next = bounds.next_token(records.len(), total);
        (records, total, next)
    } else {
        let mut records: Vec<StoredTrial> = state.store.list_trials(&name).await?;
        if let Some(wanted) = &filter.condition {
            records.retain(|record| record.condition_type == *wanted);
        }
        if let Some(since) = filter.updated_since {
            records.retain(|record| record.updated_at >= since);
        }
        let records = order_trials(records, &filter, &experiment)?;
        let total = records.len();
        // Only the page's trials are turned into views.
        let (page, next) = bounds.cut(records);
        (page, total, next)
    };
    let trials = written_views(page, experiment.spec.objective.as_ref())?;
    let capacity = trials
        .iter()
        .map(|trial| trial.get().len() + 1)
        .sum::<usize>()
        + 64;
    Ok(SizedJson {
        value: WrittenTrialList {
            trials,
            total,
            next_page_token,
        },
        capacity,
    })
}

/// The largest page the store reads by itself, row by row; a larger one is cut from the whole
/// list, which SQLite builds as one JSON array (see [`sextant_store::Store::list_trials`]):
/// 10,000 trials read row by row took 111 ms over HTTP against 44 ms through the array. The
/// bound is well below that, not a measured crossover.
const STORE_PAGE_MAX: usize = 1_000;

/// Whether the store can read just the asked-for page: trials in creation order, filtered by
/// condition at most, and a page small enough. Any other order or filter needs every trial
/// (the objective's value, for one, is read from each trial's observation here).
fn store_reads_page(filter: &TrialFilter, bounds: PageBounds) -> bool {
    filter.order_by.unwrap_or_default() == TrialOrder::Created
        && filter.parameter.is_none()
        && filter.updated_since.is_none()
        && bounds.size <= STORE_PAGE_MAX
}

/// A page of trials as it is sent: [`TrialList`] with each trial's view already written as
/// JSON (by [`written_views`]), so writing the page only copies them.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct WrittenTrialList {
    trials: Vec<Box<RawValue>>,
    total: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    next_page_token: Option<String>,
}

/// How many trials a page holds before its views are built and written on two threads.
const PARALLEL_VIEWS_FROM: usize = 1_000;

/// Each record's [`TrialView`], written as JSON. A large page is done in two halves on two
/// threads, since each trial's view is independent of the rest: it took listing 10,000 trials
/// over HTTP from about 44 ms to about 33 ms. (The 1,000 at which it starts is a bound, not a
/// measured crossover.)
fn written_views(
    records: Vec<StoredTrial>,
    objective: Option<&ObjectiveSpec>,
) -> Result<Vec<Box<RawValue>>, ApiError> {
    let write = |records: Vec<StoredTrial>| {
        records
            .into_iter()
            .map(|record| {
                let view = TrialView::of(record, objective)?;
                serde_json::value::to_raw_value(&view).map_err(|error| {
                    ApiError::Internal(format!(
                        "the view of trial {:?} cannot be written: {error}",
                        view.name
                    ))
                })
            })
            .collect::<Result<Vec<_>, ApiError>>()
    };
    if records.len() < PARALLEL_VIEWS_FROM {
        return write(records);
    }
    let mut first = records;
    let second = first.split_off(first.len() / 2);
    std::thread::scope(|scope| {
        let other = scope.spawn(|| write(second));
        let mut written = write(first)?;
        let rest = other.join().map_err(|_| {
            ApiError::Internal("writing the second half of the trial views panicked".into())
        })??;
        written.extend(rest);
        Ok(written)
    })
}

/// The stored trial, or 404.
pub(crate) async fn stored_trial(state: &AppState, name: &str) -> Result<StoredTrial, ApiError> {
    state
        .store
        .get_trial(name)
        .await?
        .ok_or_else(|| ApiError::NotFound {
            kind: "trial",
            name: name.to_string(),
        })
}

/// The trial's view, with its objective value read by its experiment's objective.
async fn fetch_trial(state: &AppState, name: &str) -> Result<TrialView, ApiError> {
    let record = stored_trial(state, name).await?;
    let (experiment, _) = fetch(state, &record.experiment_name).await?;
    TrialView::of(record, experiment.spec.objective.as_ref())
}

/// Get a trial.
#[utoipa::path(
    operation_id = "getTrial",
    get,
    path = "/api/v1/trials/{name}",
    params(("name" = String, Path, description = "the trial")),
    responses(
        (status = 200, description = "the trial", body = TrialView),
        (status = 404, description = "no such trial", body = ErrorBody),
    ),
    tag = "trials"
)]
pub(crate) async fn read(
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> Result<axum::Json<TrialView>, ApiError> {
    Ok(axum::Json(fetch_trial(&state, &name).await?))
}

/// Which metric.
#[derive(Debug, Clone, Default, Deserialize, IntoParams)]
#[serde(rename_all = "camelCase")]
#[into_params(parameter_in = Query)]
pub(crate) struct MetricQuery {
    /// Only this metric's values.
    pub metric_name: Option<String>,
}

/// A trial's metric series (Katib's observation log).
#[utoipa::path(
    operation_id = "getObservationLog",
    get,
    path = "/api/v1/trials/{name}/observations",
    params(("name" = String, Path, description = "the trial"), MetricQuery),
    responses(
        (status = 200, description = "every reported value, oldest first", body = ObservationLog),
        (status = 404, description = "no such trial", body = ErrorBody),
        (status = 422, description = "a query parameter that does not fit", body = ErrorBody),
    ),
    tag = "trials"
)]
pub(crate) async fn observations(
    State(state): State<AppState>,
    Path(name): Path<String>,
    ApiQuery(query): ApiQuery<MetricQuery>,
) -> Result<axum::Json<ObservationLog>, ApiError> {
    stored_trial(&state, &name).await?;
    let mut filter = ObservationLogFilter::trial(name);
    filter.metric_name = query.metric_name;
    let points = state.store.get_observation_log(&filter).await?;
    Ok(axum::Json(ObservationLog {
        metric_logs: points.into_iter().map(Into::into).collect(),
    }))
}

/// Report metric values of a trial (Katib's `ReportObservationLog`, over HTTP): what the Python
/// client's `report_metrics` sends. The values are stored as they are (a number, or
/// `unavailable`); the response comes once they are committed.
#[utoipa::path(
    operation_id = "reportObservationLog",
    post,
    path = "/api/v1/trials/{name}/observations",
    params(("name" = String, Path, description = "the trial")),
    request_body(content = ObservationLog, content_type = "application/json"),
    responses(
        (status = 204, description = "stored"),
        (status = 404, description = "no such trial", body = ErrorBody),
        (status = 422, description = "a value the store refuses", body = ErrorBody),
    ),
    tag = "trials"
)]
pub(crate) async fn report(
    State(state): State<AppState>,
    Path(name): Path<String>,
    JsonBody(log): JsonBody<ObservationLog>,
) -> Result<StatusCode, ApiError> {
    stored_trial(&state, &name).await?;
    let points: Vec<MetricPoint> = log
        .metric_logs
        .into_iter()
        .map(|entry| MetricPoint {
            trial_name: name.clone(),
            metric_name: entry.metric.name,
            value: entry.metric.value,
            timestamp: entry.time_stamp,
        })
        .collect();
    state
        .store
        .report_observation_log(&name, &points)
        .await
        .map_err(|error| match error {
            sextant_store::Error::InvalidInput { field, reason } => {
                ApiError::invalid_field(format!("metricLogs.{field}"), reason)
            }
            other => other.into(),
        })?;
    Ok(StatusCode::NO_CONTENT)
}

/// How much of the log.
#[derive(Debug, Clone, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct LogQuery {
    /// Only the last this many lines.
    pub tail: Option<usize>,
    /// Keep the response open and send what the trial prints until it finishes.
    pub follow: Option<bool>,
}

/// A trial's output (its standard output and error, as the collector kept them).
#[utoipa::path(
    operation_id = "getTrialLog",
    get,
    path = "/api/v1/trials/{name}/log",
    params(("name" = String, Path, description = "the trial"), LogQuery),
    responses(
        (status = 200, description = "the output, as text", content_type = "text/plain", body = String),
        (status = 404, description = "no such trial, or it kept no output here", body = ErrorBody),
        (status = 422, description = "a query parameter that does not fit", body = ErrorBody),
    ),
    tag = "trials"
)]
pub(crate) async fn log(
    State(state): State<AppState>,
    Path(name): Path<String>,
    ApiQuery(query): ApiQuery<LogQuery>,
) -> Result<Response, ApiError> {
    let trial = stored_trial(&state, &name).await?;
    let path = trial_dir(&state.config, &trial.experiment_name, &trial.name).join(OUTPUT_LOG);
    let headers = [(CONTENT_TYPE, "text/plain; charset=utf-8")];
    let mut file = match tokio::fs::File::open(&path).await {
        Ok(file) => file,
        // Gone from this machine (another server on the same store and storage, or a data
        // directory cleaned up): the kept copy, which is whole as the trial has ended.
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
            let kept = state.store.list_trial_artifacts(&name).await?;
            let Some(log) = kept.iter().find(|artifact| artifact.name == OUTPUT_LOG) else {
                return Err(ApiError::file(error, &path, "output log of trial", &name));
            };
            let text = state.artifacts.read_bytes(&log.digest).await?;
            let start = query.tail.map_or(0, |lines| tail_start(&text, lines));
            return Ok((headers, text.slice(start..)).into_response());
        }
        Err(error) => return Err(ApiError::file(error, &path, "output log of trial", &name)),
    };
    let start = match query.tail {
        Some(lines) => tail_offset(&mut file, lines).await,
        None => Ok(0),
    }
    .map_err(|error| ApiError::Internal(format!("cannot read {}: {error}", path.display())))?;
    file.seek(SeekFrom::Start(start))
        .await
        .map_err(|error| ApiError::Internal(format!("cannot read {}: {error}", path.display())))?;
    if !query.follow.unwrap_or(false) {
        let mut text = Vec::new();
        file.read_to_end(&mut text).await.map_err(|error| {
            ApiError::Internal(format!("cannot read {}: {error}", path.display()))
        })?;
        return Ok((headers, text).into_response());
    }
    let closing = state.closing.clone();
    let stream = futures::stream::unfold(
        (file, state, name, false),
        |(mut file, state, name, last_round)| async move {
            loop {
                let mut chunk = vec![0; 64 * 1024];
                match file.read(&mut chunk).await {
                    Ok(0) if last_round => return None,
                    Ok(0) => {
                        // The trial's end is read before the file's last bytes, so nothing it
                        // printed before ending is missed.
                        let finished = match state.store.get_trial(&name).await {
                            Ok(Some(trial)) => {
                                !matches!(trial.condition_type.as_str(), "Created" | "Running")
                            }
                            _ => true,
                        };
                        if finished {
                            return Some((Ok(Vec::new()), (file, state, name, true)));
                        }
                        tokio::time::sleep(FOLLOW_INTERVAL).await;
                    }
                    Ok(read) => {
                        chunk.truncate(read);
                        return Some((
                            Ok::<_, std::io::Error>(chunk),
                            (file, state, name, last_round),
                        ));
                    }
                    Err(error) => return Some((Err(error), (file, state, name, true))),
                }
            }
        },
    );
    let stream = stream.take_until(closing.cancelled_owned());
    Ok((headers, Body::from_stream(stream)).into_response())
}

/// A trial's kept artifacts (its output log, once it has ended).
#[utoipa::path(
    operation_id = "listTrialArtifacts",
    get,
    path = "/api/v1/trials/{name}/artifacts",
    params(("name" = String, Path, description = "the trial")),
    responses(
        (status = 200, description = "its kept artifacts", body = KeptArtifactList),
        (status = 404, description = "no such trial", body = ErrorBody),
    ),
    tag = "trials"
)]
pub(crate) async fn artifacts(
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> Result<axum::Json<KeptArtifactList>, ApiError> {
    stored_trial(&state, &name).await?;
    let artifacts = state.store.list_trial_artifacts(&name).await?;
    Ok(axum::Json(KeptArtifactList {
        artifacts: artifacts.into_iter().map(KeptArtifact::from).collect(),
    }))
}

/// Download a trial's kept artifact.
#[utoipa::path(
    operation_id = "downloadTrialArtifact",
    get,
    path = "/api/v1/trials/{name}/artifacts/{artifact}",
    params(
        ("name" = String, Path, description = "the trial"),
        ("artifact" = String, Path, description = "the artifact (`output.log`)"),
    ),
    responses(
        (status = 200, description = "its bytes", content_type = "application/octet-stream", body = Vec<u8>),
        (status = 404, description = "no such trial, or no such artifact kept", body = ErrorBody),
    ),
    tag = "trials"
)]
pub(crate) async fn download(
    State(state): State<AppState>,
    Path((name, artifact)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    stored_trial(&state, &name).await?;
    let kept = state.store.list_trial_artifacts(&name).await?;
    let found = kept
        .iter()
        .find(|kept| kept.name == artifact)
        .ok_or_else(|| ApiError::NotFound {
            kind: "artifact",
            name: artifact.clone(),
        })?;
    let body = state.artifacts.read(&found.digest).await?;
    Ok(([(CONTENT_TYPE, "application/octet-stream")], body).into_response())
}

/// Where the last `lines` lines of `file` start (at most [`MAX_TAIL_BYTES`] back).
async fn tail_offset(file: &mut tokio::fs::File, lines: usize) -> std::io::Result<u64> {
    let length = file.metadata().await?.len();
    let from = length.saturating_sub(MAX_TAIL_BYTES);
    file.seek(SeekFrom::Start(from)).await?;
    let mut text = Vec::new();
    file.read_to_end(&mut text).await?;
    Ok(from + tail_start(&text, lines) as u64)
}

/// Where the last `lines` lines of `text` start (0 when it has fewer).
fn tail_start(text: &[u8], lines: usize) -> usize {
    if lines == 0 {
        return text.len();
    }
    // A final newline ends the last line; it does not start another.
    let body = text.strip_suffix(b"\n").unwrap_or(text);
    body.iter()
        .enumerate()
        .rev()
        .filter(|(_, byte)| **byte == b'\n')
        .nth(lines - 1)
        .map_or(0, |(index, _)| index + 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stored(index: usize) -> StoredTrial {
        let time = chrono::DateTime::from_timestamp(1_700_000_000 + index as i64, 123_000).unwrap();
        StoredTrial {
            name: format!("t-{index:05}"),
            experiment_name: "e".into(),
            spec: "{}".into(),
            assignments: format!(r#"[{{"name":"x","value":"{index}"}}]"#),
            labels: r#"{"k":"<v>"}"#.into(),
            condition_type: "Succeeded".into(),
            reason: "TrialSucceeded".into(),
            message: String::new(),
            observation: (!index.is_multiple_of(3)).then(|| {
                format!(r#"{{"metrics":[{{"name":"loss","min":"{index}","max":"{index}","latest":"{index}"}}]}}"#)
            }),
            created_at: time,
            start_time: None,
            completion_time: index.is_multiple_of(2).then_some(time),
            updated_at: time,
        }
    }

    /// The page as sent is the documented [`TrialList`], in order, on one thread or two.
    #[test]
    fn a_written_page_reads_back_as_the_trial_list() {
        let objective: ObjectiveSpec = serde_json::from_value(serde_json::json!({
            "type": "minimize", "objectiveMetricName": "loss"
        }))
        .unwrap();
        for count in [0, 3, PARALLEL_VIEWS_FROM + 1] {
            let records: Vec<StoredTrial> = (0..count).map(stored).collect();
            let views = records
                .iter()
                .cloned()
                .map(|record| TrialView::of(record, Some(&objective)).unwrap())
                .collect::<Vec<_>>();
            let written = WrittenTrialList {
                trials: written_views(records, Some(&objective)).unwrap(),
                total: count + 5,
                next_page_token: Some("7".into()),
            };
            let sent: TrialList =
                serde_json::from_str(&serde_json::to_string(&written).unwrap()).unwrap();
            assert_eq!(sent.trials, views, "{count} trials");
            assert_eq!(sent.total, count + 5);
            assert_eq!(sent.next_page_token.as_deref(), Some("7"));
        }
    }

    #[test]
    fn the_tail_starts_after_the_newline_before_the_last_lines() {
        let text = b"one\ntwo\nthree\n";
        assert_eq!(&text[tail_start(text, 1)..], b"three\n");
        assert_eq!(&text[tail_start(text, 2)..], b"two\nthree\n");
        assert_eq!(&text[tail_start(text, 3)..], text);
        assert_eq!(&text[tail_start(text, 9)..], text);
        assert_eq!(&text[tail_start(text, 0)..], b"");
        // An unfinished last line counts as a line.
        let text = b"one\ntwo";
        assert_eq!(&text[tail_start(text, 1)..], b"two");
        assert_eq!(tail_start(b"", 3), 0);
    }
}
