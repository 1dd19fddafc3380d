//! The JSON the API reads and answers with, beside Katib's own Experiment (whose schema comes
//! from schemars, see [`crate::openapi`]). Field names are camelCase, as Katib's.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sextant_experiment::Experiment;
use sextant_experiment::api::common::{Metric, ObjectiveSpec, Observation};
use sextant_experiment::engine::objective_value;
use sextant_store::time::{serialize_fixed_width, serialize_fixed_width_option};
use sextant_store::{MetricPoint, StoredTrial};
use utoipa::ToSchema;

use crate::error::ApiError;
use crate::openapi::KatibExperiment;

/// The body of every error.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ErrorBody {
    /// What went wrong.
    pub error: ErrorDetail,
}

/// What went wrong, and where.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ErrorDetail {
    /// A machine-readable code: `Invalid`, `NotFound`, `Conflict`, `BadRequest`,
    /// `UnsupportedMediaType`, `PayloadTooLarge`, `Unauthorized`, `Unavailable`, `Internal`.
    pub code: String,
    /// For people.
    pub message: String,
    /// With `Invalid`: each problem by field path.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub fields: Vec<FieldProblem>,
}

/// One problem of a spec or request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct FieldProblem {
    /// The field path, e.g. `spec.parameters[0].feasibleSpace`.
    pub path: String,
    /// The rule it breaks.
    pub rule: String,
}

/// A page of experiments.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ExperimentList {
    /// Katib Experiments with their status, oldest first.
    #[schema(value_type = Vec<KatibExperiment>)]
    pub experiments: Vec<Experiment>,
    /// Pass as `pageToken` for the next page; absent on the last.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_page_token: Option<String>,
}

/// A parameter's value in a trial.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Assignment {
    /// The parameter.
    pub name: String,
    /// Its value, as Katib writes it (a string).
    pub value: String,
}

/// One metric of a trial's observation: Katib's min, max and latest, as strings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct MetricSummary {
    /// The metric.
    pub name: String,
    /// Its smallest value.
    pub min: String,
    /// Its largest value.
    pub max: String,
    /// Its last value.
    pub latest: String,
}

/// A trial.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct TrialView {
    /// Its name.
    pub name: String,
    /// Its experiment (or study).
    pub experiment_name: String,
    /// Its parameter values.
    pub parameter_assignments: Vec<Assignment>,
    /// Its labels.
    pub labels: BTreeMap<String, String>,
    /// Katib's latest condition: `Created`, `Running`, `Succeeded`, `Failed`, `Killed`,
    /// `EarlyStopped`, `MetricsUnavailable`.
    pub condition: String,
    /// Why.
    pub reason: String,
    /// Said for people.
    pub message: String,
    /// The metrics observed, once the trial has finished.
    pub observation: Vec<MetricSummary>,
    /// The objective metric's value by its strategy, once known.
    pub objective_value: Option<f64>,
    /// When it was created.
    #[serde(serialize_with = "serialize_fixed_width")]
    pub created_at: DateTime<Utc>,
    /// When it started running.
    #[serde(serialize_with = "serialize_fixed_width_option")]
    pub start_time: Option<DateTime<Utc>>,
    /// When it finished.
    #[serde(serialize_with = "serialize_fixed_width_option")]
    pub completion_time: Option<DateTime<Utc>>,
    /// When it last changed (its condition or observation).
    #[serde(serialize_with = "serialize_fixed_width")]
    pub updated_at: DateTime<Utc>,
}

impl TrialView {
    /// The view of a stored trial; the objective value is read with `objective`'s strategy.
    pub(crate) fn of(
        record: StoredTrial,
        objective: Option<&ObjectiveSpec>,
    ) -> Result<TrialView, ApiError> {
        let corrupt = |what: &str, error: serde_json::Error| {
            ApiError::Internal(format!(
                "stored {what} of trial {:?} is unreadable: {error}",
                record.name
            ))
        };
        let parameter_assignments = stored_assignments(&record)?;
        let labels = serde_json::from_str(&record.labels).map_err(|e| corrupt("labels", e))?;
        let observation = stored_observation(&record)?;
        let objective_value = objective.and_then(|objective| value_of(&observation, objective));
        Ok(TrialView {
            parameter_assignments,
            labels,
            condition: record.condition_type,
            reason: record.reason,
            message: record.message,
            observation: observation
                .metrics
                .into_iter()
                .map(MetricSummary::from)
                .collect(),
            objective_value,
            created_at: record.created_at,
            start_time: record.start_time,
            completion_time: record.completion_time,
            updated_at: record.updated_at,
            experiment_name: record.experiment_name,
            name: record.name,
        })
    }
}

/// A stored trial's parameter assignments.
pub(crate) fn stored_assignments(record: &StoredTrial) -> Result<Vec<Assignment>, ApiError> {
    serde_json::from_str(&record.assignments).map_err(|error| {
        ApiError::Internal(format!(
            "stored assignments of trial {:?} are unreadable: {error}",
            record.name
        ))
    })
}

/// A stored trial's observation (empty before it has one).
fn stored_observation(record: &StoredTrial) -> Result<Observation, ApiError> {
    match &record.observation {
        Some(text) => serde_json::from_str(text).map_err(|error| {
            ApiError::Internal(format!(
                "stored observation of trial {:?} is unreadable: {error}",
                record.name
            ))
        }),
        None => Ok(Observation::default()),
    }
}

fn value_of(observation: &Observation, objective: &ObjectiveSpec) -> Option<f64> {
    let metric = observation.metric(&objective.objective_metric_name)?;
    objective_value(
        metric,
        &objective.strategy_for(&objective.objective_metric_name),
    )
}

/// A stored trial's objective value by `objective`'s strategy, once known.
pub(crate) fn objective_value_of(
    record: &StoredTrial,
    objective: Option<&ObjectiveSpec>,
) -> Result<Option<f64>, ApiError> {
    match objective {
        Some(objective) => Ok(value_of(&stored_observation(record)?, objective)),
        None => Ok(None),
    }
}

impl From<Metric> for MetricSummary {
    fn from(metric: Metric) -> MetricSummary {
        MetricSummary {
            name: metric.name,
            min: metric.min,
            max: metric.max,
            latest: metric.latest,
        }
    }
}

/// A page of trials.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct TrialList {
    /// The trials of this page.
    pub trials: Vec<TrialView>,
    /// How many trials match, over all pages.
    pub total: usize,
    /// Pass as `pageToken` for the next page; absent on the last.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_page_token: Option<String>,
}

/// A trial's metric series, as Katib's `GetObservationLog` answers it (and
/// `ReportObservationLog` takes it).
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ObservationLog {
    /// Every reported value, oldest first.
    pub metric_logs: Vec<MetricLog>,
}

/// One reported value.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct MetricLog {
    /// When it was reported (RFC 3339).
    pub time_stamp: DateTime<Utc>,
    /// The metric and its value.
    pub metric: MetricValue,
}

/// A metric's name and one value, as reported (a number, or `unavailable`).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MetricValue {
    /// The metric.
    pub name: String,
    /// The value as reported.
    pub value: String,
}

impl From<MetricPoint> for MetricLog {
    fn from(point: MetricPoint) -> MetricLog {
        MetricLog {
            time_stamp: point.timestamp,
            metric: MetricValue {
                name: point.metric_name,
                value: point.value,
            },
        }
    }
}

/// `POST .../resume`: continue a stopped experiment, optionally with a new budget.
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ResumeRequest {
    /// The new `spec.maxTrialCount`, at least the trials so far.
    #[serde(default)]
    pub max_trial_count: Option<i32>,
}

/// How a told trial ended.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, ToSchema)]
pub enum TellState {
    /// It ran to the end; its values count.
    #[default]
    Succeeded,
    /// It failed; its values (if any) are kept but it informs no model.
    Failed,
}

/// `POST /studies/{name}/tell`: a trial's result.
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TellRequest {
    /// The trial `ask` gave.
    pub trial: String,
    /// The metrics' final values by name; a succeeded trial needs every objective metric.
    #[serde(default)]
    pub values: BTreeMap<String, f64>,
    /// How the trial ended.
    #[serde(default)]
    pub state: TellState,
    /// Said for people, with a failure.
    #[serde(default)]
    pub message: Option<String>,
}

/// An artifact kept in object storage.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct KeptArtifact {
    /// Its name.
    pub name: String,
    /// The SHA-256 of its bytes, lowercase hex.
    pub digest: String,
    /// Its size in bytes.
    pub size: u64,
    /// It was a directory, kept as a tar archive.
    pub archive: bool,
}

impl From<sextant_store::StoredArtifact> for KeptArtifact {
    fn from(artifact: sextant_store::StoredArtifact) -> KeptArtifact {
        KeptArtifact {
            name: artifact.name,
            digest: artifact.digest,
            size: artifact.size,
            archive: artifact.archive,
        }
    }
}

/// Kept artifacts.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct KeptArtifactList {
    /// Each, by name.
    pub artifacts: Vec<KeptArtifact>,
}
