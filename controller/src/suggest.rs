//! Asking the experiment's search algorithm for assignments, in process or from a Katib-API
//! Suggestion service (`--suggestion-service ADDR`), through the one policy of
//! [`sextant_suggestion::policy`].
//!
//! This module builds the request as Katib's controller builds it: the experiment with its
//! algorithm settings (the policy overrides them with the ones the algorithm handed back), and
//! every trial except metrics-unavailable ones and early-stopped ones without an observation,
//! each metric's value chosen by its strategy, each trial with its labels (algorithms such as
//! Hyperband find their bookkeeping there).

use std::collections::{BTreeMap, HashMap};

use sextant_proto::api;
pub use sextant_suggestion::policy::{Outcome, Suggester};

use sextant_experiment::api::common::{ObjectiveType, ParameterAssignment};
use sextant_experiment::api::experiment::{Distribution, Experiment, ParameterType};
use sextant_experiment::api::suggestion::TrialAssignment;
use sextant_experiment::api::trial::TrialConditionType;
use sextant_experiment::engine::{ObservedTrial, objective_value};
use sextant_experiment::warm_start;

/// One suggested trial.
#[derive(Debug, Clone, PartialEq)]
pub struct SuggestedTrial {
    /// Its parameter values.
    pub parameter_assignments: Vec<ParameterAssignment>,
    /// The labels the algorithm gave it (Hyperband's bracket and rung, the suggestion's
    /// source).
    pub labels: BTreeMap<String, String>,
}

/// Asks for `count` assignments as the experiment's warm start has it
/// ([`sextant_experiment::warm_start`]): its enqueued points that no trial (`labels` holds
/// every trial's) and no `pending` assignment has taken come first, alone, so that the
/// algorithm, asked once they are trials, sees them as pending; then the algorithm, with the
/// earlier experiments' trials (`warm_history`) ahead of this experiment's in its history,
/// labels left out (they are the other experiments' bookkeeping). An experiment without a warm
/// start is asked for with its own trials alone.
pub async fn suggest_with_warm_start(
    suggester: &mut Suggester,
    experiment: &Experiment,
    warm_history: &[ObservedTrial],
    trials: &[ObservedTrial],
    labels: &HashMap<String, BTreeMap<String, String>>,
    pending: &[TrialAssignment],
    count: usize,
) -> Outcome {
    let taken = labels
        .values()
        .chain(pending.iter().map(|assignment| &assignment.labels));
    let enqueued = warm_start::next_enqueued(&experiment.spec, taken, count);
    if !enqueued.is_empty() {
        return Outcome::Assignments(api::GetSuggestionsReply {
            parameter_assignments: enqueued
                .into_iter()
                .map(|point| api::get_suggestions_reply::ParameterAssignments {
                    assignments: point
                        .parameter_assignments
                        .into_iter()
                        .map(|pair| api::ParameterAssignment {
                            name: pair.name,
                            value: pair.value,
                        })
                        .collect(),
                    trial_name: String::new(),
                    labels: point.labels.into_iter().collect(),
                })
                .collect(),
            algorithm: None,
            early_stopping_rules: Vec::new(),
        });
    }
    if warm_history.is_empty() {
        return suggest(suggester, experiment, trials, labels, count).await;
    }
    let history: Vec<ObservedTrial> = warm_history.iter().chain(trials).cloned().collect();
    suggest(suggester, experiment, &history, labels, count).await
}

/// Asks `suggester` for `count` assignments given the trials so far and their labels.
async fn suggest(
    suggester: &mut Suggester,
    experiment: &Experiment,
    trials: &[ObservedTrial],
    labels: &HashMap<String, BTreeMap<String, String>>,
    count: usize,
) -> Outcome {
    let request = api::GetSuggestionsRequest {
        experiment: Some(wire_experiment(experiment)),
        trials: wire_trials(experiment, trials, labels),
        current_request_number: i32::try_from(count).unwrap_or(i32::MAX),
        total_request_number: i32::try_from(trials.len() + count).unwrap_or(i32::MAX),
    };
    suggester.suggest(request).await
}

/// The trials of a reply, as the API writes them.
pub fn suggested_trials(reply: api::GetSuggestionsReply) -> Vec<SuggestedTrial> {
    reply
        .parameter_assignments
        .into_iter()
        .map(|suggestion| SuggestedTrial {
            parameter_assignments: suggestion
                .assignments
                .into_iter()
                .map(|pair| ParameterAssignment {
                    name: pair.name,
                    value: pair.value,
                })
                .collect(),
            labels: suggestion.labels.into_iter().collect(),
        })
        .collect()
}

fn wire_experiment(experiment: &Experiment) -> api::Experiment {
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
            condition: parameter
                .condition
                .as_ref()
                .map(|condition| api::ParameterCondition {
                    parameter: condition.parameter.clone(),
                    values: condition.values.clone(),
                }),
        })
        .collect();
    let algorithm = spec.algorithm.clone().unwrap_or_default();
    api::Experiment {
        name: experiment.metadata.name.clone(),
        spec: Some(api::ExperimentSpec {
            parameter_specs: Some(api::experiment_spec::ParameterSpecs { parameters }),
            objective: Some(wire_objective(experiment)),
            algorithm: Some(api::AlgorithmSpec {
                algorithm_name: algorithm.algorithm_name,
                algorithm_settings: algorithm
                    .algorithm_settings
                    .iter()
                    .map(|setting| api::AlgorithmSetting {
                        name: setting.name.clone(),
                        value: setting.value.clone(),
                    })
                    .collect(),
            }),
            early_stopping: None,
            parallel_trial_count: spec.parallel_trial_count.unwrap_or_default(),
            max_trial_count: spec.max_trial_count.unwrap_or_default(),
            nas_config: None,
        }),
    }
}

fn wire_objective(experiment: &Experiment) -> api::ObjectiveSpec {
    let objective = experiment.spec.objective.clone().unwrap_or_default();
    let wire_type = |objective_type: Option<&ObjectiveType>| {
        if objective_type == Some(&ObjectiveType::Maximize) {
            api::ObjectiveType::Maximize as i32
        } else {
            api::ObjectiveType::Minimize as i32
        }
    };
    api::ObjectiveSpec {
        r#type: wire_type(objective.objective_type.as_ref()),
        goal: objective.goal.unwrap_or_default(),
        objective_metric_name: objective.objective_metric_name.clone(),
        additional_metric_names: objective.additional_metric_names.clone(),
        objectives: objective
            .objectives
            .iter()
            .map(|entry| api::ObjectiveMetric {
                metric_name: entry.metric_name.clone(),
                r#type: wire_type(entry.objective_type.as_ref()),
            })
            .collect(),
        constraints: experiment
            .spec
            .constraints
            .iter()
            .map(|constraint| api::OutcomeConstraint {
                metric_name: constraint.metric_name.clone(),
                max: constraint.max,
                min: constraint.min,
            })
            .collect(),
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
            // Katib's rule: an early-stopped trial without an observation tells nothing.
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

#[cfg(test)]
mod tests {
    use super::*;
    use sextant_experiment::engine::RunState;

    fn grid_experiment() -> Experiment {
        sextant_experiment::load_experiments(
            r#"apiVersion: kubeflow.org/v1beta1
kind: Experiment
metadata: {name: grid}
spec:
  objective: {type: minimize, objectiveMetricName: loss}
  algorithm: {algorithmName: grid}
  parameters:
    - {name: x, parameterType: int, feasibleSpace: {min: "1", max: "4"}}
  trialTemplate:
    trialParameters: [{name: x, reference: x}]
    trialSpec:
      apiVersion: sextant.dev/v1beta1
      kind: Process
      spec: {command: [echo, "${trialParameters.x}"]}
"#,
        )
        .expect("valid")
        .remove(0)
    }

    fn trial(value: &str) -> ObservedTrial {
        ObservedTrial {
            name: format!("grid-{value}"),
            parameter_assignments: vec![ParameterAssignment {
                name: "x".into(),
                value: value.into(),
            }],
            condition: TrialConditionType::Running,
            run: RunState::Running,
            observation: Default::default(),
            stop_requested: false,
        }
    }

    #[tokio::test]
    async fn the_last_points_of_a_finite_space_are_proposed_before_it_counts_as_exhausted() {
        let experiment = grid_experiment();
        let mut suggester = Suggester::new(None);
        let labels = HashMap::new();
        let three = [trial("1"), trial("2"), trial("3")];
        match suggest(&mut suggester, &experiment, &three, &labels, 2).await {
            Outcome::Assignments(reply) => {
                let trials = suggested_trials(reply);
                assert_eq!(trials.len(), 1);
                assert_eq!(trials[0].parameter_assignments[0].value, "4");
            }
            other => panic!("expected the last point, got {other:?}"),
        }
        let four = [trial("1"), trial("2"), trial("3"), trial("4")];
        assert!(matches!(
            suggest(&mut suggester, &experiment, &four, &labels, 2).await,
            Outcome::Exhausted { .. }
        ));
    }
}
