//! Asking a remote Katib-API Suggestion service (`sextant run --suggestion-service ADDR`):
//! Sextant's own `sextant serve`, or any server that speaks `api.v1.beta1.Suggestion`, through
//! the client of `sextant-suggestion`; this module builds the request from the experiment.
//!
//! The request is built as Katib's controller builds it: every trial except metrics-unavailable
//! ones and early-stopped ones without an observation, each metric's value chosen by its
//! strategy, and the settings the service returned last time merged into the algorithm's.

use std::collections::{BTreeMap, HashMap};

use sextant_proto::api;
use sextant_suggestion::client::{RemoteError, RemoteSuggestionClient};

use crate::api::common::ParameterAssignment;
use crate::api::experiment::{Distribution, Experiment, ParameterType};
use crate::api::trial::TrialConditionType;
use crate::engine::{ObservedTrial, objective_value};
use crate::suggest::Answer;

/// A remote Suggestion service, with the settings it handed back.
#[derive(Debug, Clone)]
pub struct RemoteSuggester {
    client: RemoteSuggestionClient,
    returned_settings: Vec<api::AlgorithmSetting>,
}

impl RemoteSuggester {
    /// A suggester asking the service at `address` (`host:port` or a URL).
    pub fn new(address: &str) -> RemoteSuggester {
        RemoteSuggester {
            client: RemoteSuggestionClient::new(address),
            returned_settings: Vec::new(),
        }
    }

    /// The settings the service handed back last, as `(name, value)` pairs.
    pub fn returned_settings(&self) -> Vec<(String, String)> {
        self.returned_settings
            .iter()
            .map(|setting| (setting.name.clone(), setting.value.clone()))
            .collect()
    }

    /// Restores settings a previous suggester was handed back.
    pub fn restore_returned_settings(&mut self, settings: &[(String, String)]) {
        self.returned_settings = settings
            .iter()
            .map(|(name, value)| api::AlgorithmSetting {
                name: name.clone(),
                value: value.clone(),
            })
            .collect();
    }

    /// Asks the service for `count` assignments; an error is a reason the experiment fails with.
    pub async fn suggest(
        &mut self,
        experiment: &Experiment,
        trials: &[ObservedTrial],
        labels: &HashMap<String, BTreeMap<String, String>>,
        count: usize,
    ) -> Result<Answer, String> {
        let request = api::GetSuggestionsRequest {
            experiment: Some(self.wire_experiment(experiment)),
            trials: wire_trials(experiment, trials, labels),
            current_request_number: i32::try_from(count).unwrap_or(i32::MAX),
            total_request_number: i32::try_from(trials.len() + count).unwrap_or(i32::MAX),
        };
        let reply = match self.client.get_suggestions(request).await {
            Ok(reply) => reply,
            // Fewer points may remain than were asked for; they are still worth trying, and the
            // service does not say how many there are, so they are taken one at a time.
            Err(RemoteError::Exhausted(_)) if count > 1 => {
                return Box::pin(self.suggest(experiment, trials, labels, 1)).await;
            }
            Err(RemoteError::Exhausted(_)) => return Ok(Answer::Exhausted),
            Err(RemoteError::NotReady(_)) => return Ok(Answer::NotReady),
            Err(error @ RemoteError::Unreachable { .. }) => {
                return Ok(Answer::Unreachable(error.to_string()));
            }
            Err(error) => return Err(error.to_string()),
        };
        if let Some(algorithm) = reply.algorithm {
            self.returned_settings = algorithm.algorithm_settings;
        }
        Ok(Answer::Assignments(
            reply
                .parameter_assignments
                .into_iter()
                .map(|suggestion| {
                    let pairs = suggestion
                        .assignments
                        .into_iter()
                        .map(|pair| ParameterAssignment {
                            name: pair.name,
                            value: pair.value,
                        })
                        .collect();
                    (pairs, suggestion.labels.into_iter().collect())
                })
                .collect(),
        ))
    }

    fn wire_experiment(&self, experiment: &Experiment) -> api::Experiment {
        let spec = &experiment.spec;
        let parameters = spec
            .parameters
            .iter()
            .map(|parameter| api::ParameterSpec {
                name: parameter.name.clone(),
                parameter_type: match parameter.parameter_type {
                    Some(ParameterType::Double) => api::ParameterType::Double,
                    Some(ParameterType::Int) => api::ParameterType::Int,
                    Some(ParameterType::Discrete) => api::ParameterType::Discrete,
                    Some(ParameterType::Categorical) => api::ParameterType::Categorical,
                    _ => api::ParameterType::UnknownType,
                } as i32,
                feasible_space: Some(api::FeasibleSpace {
                    max: parameter.feasible_space.max.clone(),
                    min: parameter.feasible_space.min.clone(),
                    list: parameter.feasible_space.list.clone(),
                    step: parameter.feasible_space.step.clone(),
                    distribution: match parameter.feasible_space.distribution {
                        Some(Distribution::Uniform) => api::Distribution::Uniform,
                        Some(Distribution::LogUniform) => api::Distribution::LogUniform,
                        Some(Distribution::Normal) => api::Distribution::Normal,
                        Some(Distribution::LogNormal) => api::Distribution::LogNormal,
                        _ => api::Distribution::Unspecified,
                    } as i32,
                }),
            })
            .collect();
        let algorithm = spec.algorithm.clone().unwrap_or_default();
        let mut settings: Vec<api::AlgorithmSetting> = algorithm
            .algorithm_settings
            .iter()
            .map(|setting| api::AlgorithmSetting {
                name: setting.name.clone(),
                value: setting.value.clone(),
            })
            .collect();
        // Returned settings override the spec's, as Katib's Suggestion status does.
        for returned in &self.returned_settings {
            settings.retain(|setting| setting.name != returned.name);
            settings.push(returned.clone());
        }
        api::Experiment {
            name: experiment.metadata.name.clone(),
            spec: Some(api::ExperimentSpec {
                parameter_specs: Some(api::experiment_spec::ParameterSpecs { parameters }),
                objective: Some(wire_objective(experiment)),
                algorithm: Some(api::AlgorithmSpec {
                    algorithm_name: algorithm.algorithm_name,
                    algorithm_settings: settings,
                }),
                early_stopping: None,
                parallel_trial_count: spec.parallel_trial_count.unwrap_or_default(),
                max_trial_count: spec.max_trial_count.unwrap_or_default(),
                nas_config: None,
            }),
        }
    }
}

fn wire_objective(experiment: &Experiment) -> api::ObjectiveSpec {
    let objective = experiment.spec.objective.clone().unwrap_or_default();
    let maximize = matches!(
        objective.objective_type,
        Some(crate::api::common::ObjectiveType::Maximize)
    );
    api::ObjectiveSpec {
        r#type: if maximize {
            api::ObjectiveType::Maximize
        } else {
            api::ObjectiveType::Minimize
        } as i32,
        goal: objective.goal.unwrap_or_default(),
        objective_metric_name: objective.objective_metric_name.clone(),
        additional_metric_names: objective.additional_metric_names.clone(),
    }
}

fn wire_trials(
    experiment: &Experiment,
    trials: &[ObservedTrial],
    labels: &HashMap<String, BTreeMap<String, String>>,
) -> Vec<api::Trial> {
    let objective = experiment.spec.objective.clone().unwrap_or_default();
    let objective_spec = wire_objective(experiment);
    trials
        .iter()
        .filter_map(|trial| {
            let metrics: Vec<api::Metric> = trial
                .observation
                .metrics
                .iter()
                .filter_map(|metric| {
                    let strategy = objective.strategy_for(&metric.name);
                    objective_value(metric, &strategy).map(|value| api::Metric {
                        name: metric.name.clone(),
                        value: value.to_string(),
                    })
                })
                .collect();
            let condition = match trial.condition {
                TrialConditionType::MetricsUnavailable => return None,
                TrialConditionType::EarlyStopped if metrics.is_empty() => return None,
                TrialConditionType::Created => api::trial_status::TrialConditionType::Created,
                TrialConditionType::Running => api::trial_status::TrialConditionType::Running,
                TrialConditionType::Succeeded => api::trial_status::TrialConditionType::Succeeded,
                TrialConditionType::Killed => api::trial_status::TrialConditionType::Killed,
                TrialConditionType::Failed => api::trial_status::TrialConditionType::Failed,
                TrialConditionType::EarlyStopped => {
                    api::trial_status::TrialConditionType::Earlystopped
                }
            };
            Some(api::Trial {
                name: trial.name.clone(),
                spec: Some(api::TrialSpec {
                    objective: Some(objective_spec.clone()),
                    parameter_assignments: Some(api::trial_spec::ParameterAssignments {
                        assignments: trial
                            .parameter_assignments
                            .iter()
                            .map(|pair| api::ParameterAssignment {
                                name: pair.name.clone(),
                                value: pair.value.clone(),
                            })
                            .collect(),
                    }),
                    labels: labels
                        .get(&trial.name)
                        .cloned()
                        .unwrap_or_default()
                        .into_iter()
                        .collect(),
                }),
                status: Some(api::TrialStatus {
                    condition: condition as i32,
                    observation: Some(api::Observation { metrics }),
                    ..Default::default()
                }),
            })
        })
        .collect()
}
