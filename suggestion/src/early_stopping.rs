//! The `api.v1.beta1.EarlyStopping` service over the pure early-stopping algorithms of
//! `sextant-algorithms` (`medianstop`, `successivehalving` / `asha`).
//!
//! `GetEarlyStoppingRules` carries the trials but not their metrics: as in Katib, the service
//! reads the objective metric's observation log of every trial the algorithm reads (the
//! succeeded ones for `medianstop`; every one, running ones included, for successive halving,
//! whose rule is the first rung's cutoff among every trial that reached it) from the DBManager
//! at the request's `db_manager_address`, through an [`ObservationSource`]
//! ([`DbManagerObservations`] calls it over gRPC), and answers with the algorithm's rules.
//! `ValidateEarlyStoppingSettings` succeeds exactly when the algorithm can be built from its
//! settings. `SetTrialStatus` marks a trial early-stopped through a [`TrialStatusSink`] given at
//! construction: the store implements it for `sextant serve`, and [`InMemoryTrialStatuses`]
//! keeps the names for a caller that applies them itself (the local driver).

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};

use sextant_algorithms::early_stopping::{
    Comparison, EarlyStoppingAlgorithm, TrialObservations, build_early_stopping, medianstop,
};
use sextant_algorithms::{Direction, Objective, Setting, SettingsError, TrialCondition};
use sextant_proto::api;
use sextant_proto::api::db_manager_client::DbManagerClient;
use sextant_proto::api::early_stopping_server::{EarlyStopping, EarlyStoppingServer};
use tonic::{Request, Response, Status};

/// Why an early-stopping request could not be answered.
#[derive(Debug, thiserror::Error)]
pub enum EarlyStoppingError {
    /// A required field is missing or has an impossible value.
    #[error("{field}: {rule}")]
    InvalidRequest {
        /// The field path in the request, e.g. `db_manager_address`.
        field: String,
        /// The rule it breaks.
        rule: String,
    },
    /// The early-stopping algorithm or its settings are invalid.
    #[error("early_stopping: {0}")]
    InvalidSettings(#[from] SettingsError),
    /// The observation logs could not be read.
    #[error("reading observation logs: {0}")]
    Observations(#[from] ObservationError),
    /// The trial status could not be recorded.
    #[error("setting the status of trial {trial_name:?}: {source}")]
    TrialStatus {
        /// The trial.
        trial_name: String,
        /// What went wrong.
        #[source]
        source: TrialStatusError,
    },
}

/// Why a [`TrialStatusSink`] could not record a trial's status.
#[derive(Debug, thiserror::Error)]
pub enum TrialStatusError {
    /// The sink knows no trial of that name.
    #[error("no trial of that name is known")]
    UnknownTrial,
    /// Where the statuses are kept failed.
    #[error(transparent)]
    Backend(Box<dyn std::error::Error + Send + Sync>),
}

impl From<EarlyStoppingError> for Status {
    fn from(error: EarlyStoppingError) -> Status {
        let message = error.to_string();
        match error {
            EarlyStoppingError::InvalidRequest { .. } | EarlyStoppingError::InvalidSettings(_) => {
                Status::invalid_argument(message)
            }
            EarlyStoppingError::Observations(_) => Status::unavailable(message),
            EarlyStoppingError::TrialStatus {
                source: TrialStatusError::UnknownTrial,
                ..
            } => Status::not_found(message),
            EarlyStoppingError::TrialStatus { .. } => Status::internal(message),
        }
    }
}

/// A failure to read a trial's observation log.
#[derive(Debug, thiserror::Error)]
pub enum ObservationError {
    /// The DBManager could not be reached.
    #[error("cannot connect to the DBManager at {address}: {message}")]
    Connect {
        /// The address tried.
        address: String,
        /// The transport's error.
        message: String,
    },
    /// The DBManager answered with an error.
    #[error("GetObservationLog for trial {trial_name:?} at {address} failed: {status}")]
    Call {
        /// The address called.
        address: String,
        /// The trial asked about.
        trial_name: String,
        /// The status it answered.
        status: Status,
    },
}

/// Where the service reads the values a trial reported.
#[tonic::async_trait]
pub trait ObservationSource: Send + Sync + 'static {
    /// The numeric values of `metric_name` each trial of `trial_names` reported, in the order
    /// the log holds them (one list per trial, in the same order); values that are not numbers
    /// (Katib's `unavailable`) are left out.
    async fn metric_values(
        &self,
        db_manager_address: &str,
        metric_name: &str,
        trial_names: &[String],
    ) -> Result<Vec<Vec<f64>>, ObservationError>;
}

/// Where `SetTrialStatus` records that a trial was stopped early.
#[tonic::async_trait]
pub trait TrialStatusSink: Send + Sync + 'static {
    /// Marks `trial_name` as early-stopped; a trial marked twice stays marked.
    async fn mark_early_stopped(&self, trial_name: &str) -> Result<(), TrialStatusError>;
}

/// Reads observation logs from a Katib-compatible DBManager over gRPC.
#[derive(Debug, Clone, Default)]
pub struct DbManagerObservations;

#[tonic::async_trait]
impl ObservationSource for DbManagerObservations {
    async fn metric_values(
        &self,
        db_manager_address: &str,
        metric_name: &str,
        trial_names: &[String],
    ) -> Result<Vec<Vec<f64>>, ObservationError> {
        let mut client = DbManagerClient::connect(crate::client::endpoint_uri(db_manager_address))
            .await
            .map_err(|error| ObservationError::Connect {
                address: db_manager_address.into(),
                message: error.to_string(),
            })?
            .max_decoding_message_size(sextant_proto::MAX_MESSAGE_BYTES);
        let mut values = Vec::with_capacity(trial_names.len());
        for trial_name in trial_names {
            let reply = client
                .get_observation_log(api::GetObservationLogRequest {
                    trial_name: trial_name.clone(),
                    metric_name: metric_name.into(),
                    start_time: String::new(),
                    end_time: String::new(),
                })
                .await
                .map_err(|status| ObservationError::Call {
                    address: db_manager_address.into(),
                    trial_name: trial_name.clone(),
                    status,
                })?
                .into_inner();
            let logs = reply
                .observation_log
                .map(|log| log.metric_logs)
                .unwrap_or_default();
            values.push(
                logs.iter()
                    .filter_map(|log| log.metric.as_ref())
                    .filter(|metric| metric.name == metric_name)
                    .filter_map(|metric| metric.value.trim().parse::<f64>().ok())
                    .filter(|value| value.is_finite())
                    .collect(),
            );
        }
        Ok(values)
    }
}

/// Keeps the names of early-stopped trials in memory, for a caller that applies them itself.
#[derive(Debug, Default)]
pub struct InMemoryTrialStatuses {
    early_stopped: Mutex<BTreeSet<String>>,
}

impl InMemoryTrialStatuses {
    /// The trials marked so far, in name order.
    pub fn early_stopped(&self) -> Vec<String> {
        self.lock().iter().cloned().collect()
    }

    /// Whether `trial_name` has been marked.
    pub fn is_early_stopped(&self, trial_name: &str) -> bool {
        self.lock().contains(trial_name)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeSet<String>> {
        // A panic while holding this lock cannot leave the set half-updated (one insert), so a
        // poisoned lock still guards a consistent set.
        self.early_stopped
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

#[tonic::async_trait]
impl TrialStatusSink for InMemoryTrialStatuses {
    async fn mark_early_stopped(&self, trial_name: &str) -> Result<(), TrialStatusError> {
        self.lock().insert(trial_name.to_string());
        Ok(())
    }
}

/// The EarlyStopping service.
#[derive(Clone)]
pub struct EarlyStoppingService {
    observations: Arc<dyn ObservationSource>,
    statuses: Arc<dyn TrialStatusSink>,
}

impl std::fmt::Debug for EarlyStoppingService {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("EarlyStoppingService")
            .finish_non_exhaustive()
    }
}

impl EarlyStoppingService {
    /// A service that reads logs from `observations` and records stops in `statuses`.
    pub fn new(
        observations: Arc<dyn ObservationSource>,
        statuses: Arc<dyn TrialStatusSink>,
    ) -> EarlyStoppingService {
        EarlyStoppingService {
            observations,
            statuses,
        }
    }

    /// The service wrapped in its tonic server.
    pub fn into_server(self) -> EarlyStoppingServer<EarlyStoppingService> {
        EarlyStoppingServer::new(self).max_decoding_message_size(sextant_proto::MAX_MESSAGE_BYTES)
    }

    /// Answers a GetEarlyStoppingRules request.
    ///
    /// As Katib's service does, a request whose experiment has no spec, no `early_stopping` or
    /// no objective metric is answered with `medianstop`'s defaults: without an objective
    /// metric there is nothing to compare, so no rule.
    pub async fn rules(
        &self,
        request: &api::GetEarlyStoppingRulesRequest,
    ) -> Result<api::GetEarlyStoppingRulesReply, EarlyStoppingError> {
        let default_spec = api::ExperimentSpec::default();
        let spec = request
            .experiment
            .as_ref()
            .and_then(|experiment| experiment.spec.as_ref())
            .unwrap_or(&default_spec);
        let algorithm = match spec.early_stopping.as_ref() {
            Some(early_stopping) => build(Some(early_stopping))?,
            // Katib's early-stopping service is medianstop.
            None => build_early_stopping(medianstop::NAME, &[])?,
        };
        let Some(objective) = parse_objective(spec.objective.as_ref())? else {
            return Ok(api::GetEarlyStoppingRulesReply::default());
        };
        let (read, conditions): (Vec<String>, Vec<TrialCondition>) = request
            .trials
            .iter()
            .map(|trial| (trial.name.clone(), condition(trial)))
            .filter(|(_, condition)| algorithm.reads(*condition))
            .unzip();
        let mut values = Vec::new();
        if !read.is_empty() {
            if request.db_manager_address.trim().is_empty() {
                return Err(EarlyStoppingError::InvalidRequest {
                    field: "db_manager_address".into(),
                    rule: format!(
                        "must be set to read the observation logs of the trials {} compares",
                        algorithm.name()
                    ),
                });
            }
            values = self
                .observations
                .metric_values(
                    request.db_manager_address.trim(),
                    &objective.metric_name,
                    &read,
                )
                .await?;
        }
        let trials: Vec<TrialObservations> = read
            .into_iter()
            .zip(conditions)
            .zip(values.into_iter().chain(std::iter::repeat(Vec::new())))
            .map(
                |((trial_name, condition), objective_values)| TrialObservations {
                    trial_name,
                    condition,
                    objective_values,
                },
            )
            .collect();
        let early_stopping_rules = algorithm
            .rules(&objective, &trials)
            .into_iter()
            .map(|rule| api::EarlyStoppingRule {
                name: rule.metric_name,
                value: rule.value.to_string(),
                comparison: match rule.comparison {
                    Comparison::Equal => api::ComparisonType::Equal,
                    Comparison::Less => api::ComparisonType::Less,
                    Comparison::Greater => api::ComparisonType::Greater,
                } as i32,
                start_step: i32::try_from(rule.start_step).unwrap_or(i32::MAX),
            })
            .collect();
        Ok(api::GetEarlyStoppingRulesReply {
            early_stopping_rules,
        })
    }

    /// Checks that the early-stopping algorithm can be built with its settings.
    pub fn validate(
        request: &api::ValidateEarlyStoppingSettingsRequest,
    ) -> Result<(), EarlyStoppingError> {
        build(request.early_stopping.as_ref()).map(|_| ())
    }
}

fn build(
    spec: Option<&api::EarlyStoppingSpec>,
) -> Result<Box<dyn EarlyStoppingAlgorithm>, EarlyStoppingError> {
    let spec = spec.ok_or_else(|| EarlyStoppingError::InvalidRequest {
        field: "early_stopping".into(),
        rule: "must be set".into(),
    })?;
    let settings: Vec<Setting> = spec
        .algorithm_settings
        .iter()
        .map(|setting| Setting::new(setting.name.clone(), setting.value.clone()))
        .collect();
    Ok(build_early_stopping(&spec.algorithm_name, &settings)?)
}

/// The objective the rules compare, or `None` when the request names no objective metric.
fn parse_objective(
    spec: Option<&api::ObjectiveSpec>,
) -> Result<Option<Objective>, EarlyStoppingError> {
    let Some(spec) = spec.filter(|spec| !spec.objective_metric_name.is_empty()) else {
        return Ok(None);
    };
    let direction = match api::ObjectiveType::try_from(spec.r#type) {
        Ok(api::ObjectiveType::Maximize) => Direction::Maximize,
        Ok(api::ObjectiveType::Minimize) => Direction::Minimize,
        _ => {
            // The rule's comparison depends on the direction; guessing would stop good trials.
            return Err(EarlyStoppingError::InvalidRequest {
                field: "experiment.spec.objective.type".into(),
                rule: "must be MINIMIZE or MAXIMIZE".into(),
            });
        }
    };
    Ok(Some(Objective::new(
        direction,
        spec.objective_metric_name.clone(),
    )))
}

fn condition(trial: &api::Trial) -> TrialCondition {
    use api::trial_status::TrialConditionType as Wire;
    let wire = trial
        .status
        .as_ref()
        .map(|status| Wire::try_from(status.condition).unwrap_or(Wire::Unknown))
        .unwrap_or(Wire::Created);
    match wire {
        Wire::Created => TrialCondition::Created,
        Wire::Running => TrialCondition::Running,
        Wire::Succeeded => TrialCondition::Succeeded,
        Wire::Killed => TrialCondition::Killed,
        Wire::Failed => TrialCondition::Failed,
        Wire::Metricsunavailable => TrialCondition::MetricsUnavailable,
        Wire::Earlystopped => TrialCondition::EarlyStopped,
        Wire::Unknown => TrialCondition::Unknown,
    }
}

#[tonic::async_trait]
impl EarlyStopping for EarlyStoppingService {
    async fn get_early_stopping_rules(
        &self,
        request: Request<api::GetEarlyStoppingRulesRequest>,
    ) -> Result<Response<api::GetEarlyStoppingRulesReply>, Status> {
        let reply = self
            .rules(request.get_ref())
            .await
            .inspect_err(|error| tracing::info!(%error, "GetEarlyStoppingRules rejected"))?;
        Ok(Response::new(reply))
    }

    async fn set_trial_status(
        &self,
        request: Request<api::SetTrialStatusRequest>,
    ) -> Result<Response<api::SetTrialStatusReply>, Status> {
        let trial_name = request.into_inner().trial_name;
        if trial_name.is_empty() {
            return Err(EarlyStoppingError::InvalidRequest {
                field: "trial_name".into(),
                rule: "must be set".into(),
            }
            .into());
        }
        self.statuses
            .mark_early_stopped(&trial_name)
            .await
            .map_err(|source| EarlyStoppingError::TrialStatus {
                trial_name: trial_name.clone(),
                source,
            })?;
        Ok(Response::new(api::SetTrialStatusReply {}))
    }

    async fn validate_early_stopping_settings(
        &self,
        request: Request<api::ValidateEarlyStoppingSettingsRequest>,
    ) -> Result<Response<api::ValidateEarlyStoppingSettingsReply>, Status> {
        EarlyStoppingService::validate(request.get_ref())?;
        Ok(Response::new(api::ValidateEarlyStoppingSettingsReply {}))
    }
}
