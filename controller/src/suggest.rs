//! Asking the experiment's search algorithm for assignments, in process.
//!
//! The request carries the whole history, as Katib's Suggestion API does: every trial except
//! metrics-unavailable ones and early-stopped ones without an observation. Settings an
//! algorithm hands back (Hyperband's bracket state) are merged into the next request, as
//! Katib's Suggestion resource keeps them.

use std::collections::{BTreeMap, HashMap};

use sextant_algorithms::algorithm::{BuildContext, SuggestRequest};
use sextant_algorithms::{
    Direction, Objective, Setting, SuggestError, TrialCondition, TrialRecord, build_algorithm,
};

use crate::api::common::ParameterAssignment;
use crate::api::experiment::Experiment;
use crate::api::trial::TrialConditionType;
use crate::domain;
use crate::engine::{ObservedTrial, objective_value};
use crate::remote::RemoteSuggester;

/// One suggested trial: its parameter values and labels.
pub type SuggestedTrial = (Vec<ParameterAssignment>, BTreeMap<String, String>);

/// What the algorithm answered.
#[derive(Debug, Clone, PartialEq)]
pub enum Answer {
    /// Exactly the requested number of trials.
    Assignments(Vec<SuggestedTrial>),
    /// The search space has no untried point left.
    Exhausted,
    /// Nothing can be proposed until running trials finish; ask again later.
    NotReady,
    /// The remote service cannot be reached now (with why). A one-shot run gives up; a
    /// controller asks again after a backoff, since a cluster's service comes and goes.
    Unreachable(String),
}

/// Where an experiment's assignments come from, with the state it carries between requests.
#[derive(Debug, Clone)]
pub enum Suggester {
    /// The algorithms of `sextant-algorithms`, in this process.
    InProcess {
        /// Settings the algorithm handed back last time.
        returned_settings: Vec<Setting>,
    },
    /// A Katib-API Suggestion service.
    Remote(RemoteSuggester),
}

impl Suggester {
    /// In process, or from the service at `suggestion_service` when given.
    pub fn new(suggestion_service: Option<&str>) -> Suggester {
        match suggestion_service {
            Some(address) => Suggester::Remote(RemoteSuggester::new(address)),
            None => Suggester::InProcess {
                returned_settings: Vec::new(),
            },
        }
    }

    /// The settings the algorithm handed back last, as `(name, value)` pairs: the state a
    /// driver keeps between requests (Hyperband's bracket), in Katib's protocol.
    pub fn returned_settings(&self) -> Vec<(String, String)> {
        match self {
            Suggester::InProcess { returned_settings } => returned_settings
                .iter()
                .map(|setting| (setting.name.clone(), setting.value.clone()))
                .collect(),
            Suggester::Remote(remote) => remote.returned_settings(),
        }
    }

    /// Restores the settings a previous suggester handed back (see
    /// [`Suggester::returned_settings`]), so a restarted driver carries on where it was.
    pub fn restore_returned_settings(&mut self, settings: &[(String, String)]) {
        match self {
            Suggester::InProcess { returned_settings } => {
                *returned_settings = settings
                    .iter()
                    .map(|(name, value)| Setting::new(name, value))
                    .collect();
            }
            Suggester::Remote(remote) => remote.restore_returned_settings(settings),
        }
    }

    /// Asks for `count` assignments given the trials so far and their labels (algorithms such
    /// as Hyperband find their bookkeeping there); runs the algorithm on a blocking thread. An
    /// error is a reason the experiment fails with.
    pub async fn suggest(
        &mut self,
        experiment: &Experiment,
        trials: &[ObservedTrial],
        labels: &HashMap<String, BTreeMap<String, String>>,
        count: usize,
    ) -> Result<Answer, String> {
        match self {
            Suggester::Remote(remote) => remote.suggest(experiment, trials, labels, count).await,
            Suggester::InProcess { returned_settings } => {
                suggest_in_process(returned_settings, experiment, trials, labels, count).await
            }
        }
    }
}

async fn suggest_in_process(
    returned_settings: &mut Vec<Setting>,
    experiment: &Experiment,
    trials: &[ObservedTrial],
    labels: &HashMap<String, BTreeMap<String, String>>,
    count: usize,
) -> Result<Answer, String> {
    {
        let spec = &experiment.spec;
        let space = domain::search_space(&spec.parameters).map_err(|errors| {
            errors
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join("; ")
        })?;
        let objective_spec = spec.objective.clone().unwrap_or_default();
        let objective = domain::objective(&objective_spec).unwrap_or_else(|| {
            Objective::new(
                Direction::Minimize,
                objective_spec.objective_metric_name.clone(),
            )
        });
        let algorithm = spec.algorithm.clone().unwrap_or_default();
        let mut settings = domain::settings(&algorithm.algorithm_settings);
        settings.extend(returned_settings.iter().cloned());
        let strategy = objective_spec.strategy_for(&objective_spec.objective_metric_name);
        let mut history = Vec::with_capacity(trials.len());
        for trial in trials {
            let value = trial
                .observation
                .metric(&objective.metric_name)
                .and_then(|metric| objective_value(metric, &strategy));
            let condition = match trial.condition {
                TrialConditionType::MetricsUnavailable => continue,
                TrialConditionType::EarlyStopped if value.is_none() => continue,
                TrialConditionType::Created => TrialCondition::Created,
                TrialConditionType::Running => TrialCondition::Running,
                TrialConditionType::Succeeded => TrialCondition::Succeeded,
                TrialConditionType::Killed => TrialCondition::Killed,
                TrialConditionType::Failed => TrialCondition::Failed,
                TrialConditionType::EarlyStopped => TrialCondition::EarlyStopped,
            };
            let assignment = space
                .parse_assignment(
                    trial
                        .parameter_assignments
                        .iter()
                        .map(|pair| (pair.name.as_str(), pair.value.as_str())),
                )
                .map_err(|error| format!("trial {:?}: {error}", trial.name))?;
            let mut record = TrialRecord::new(trial.name.clone(), assignment, condition);
            record.objective_value = value;
            record.labels = labels.get(&trial.name).cloned().unwrap_or_default();
            history.push(record);
        }
        let name = algorithm.algorithm_name.clone();
        let max_trial_count = spec
            .max_trial_count
            .and_then(|count| u32::try_from(count).ok());
        let parallel_trial_count = spec
            .parallel_trial_count
            .and_then(|count| u32::try_from(count).ok());
        let answer = tokio::task::spawn_blocking(move || {
            let built = build_algorithm(
                &name,
                &settings,
                &BuildContext {
                    space: &space,
                    objective: &objective,
                    max_trial_count,
                    parallel_trial_count,
                },
            )
            .map_err(|error| Refusal::Failed(error.to_string()))?;
            let ask = |count| {
                built.suggest(&SuggestRequest {
                    space: &space,
                    objective: &objective,
                    trials: &history,
                    count,
                    cancel: sextant_algorithms::cancel::Cancellation::never(),
                })
            };
            let suggestions = match ask(count) {
                // Take what can be proposed now; the rest is asked for once trials finish.
                Err(SuggestError::NotReady { available, .. }) if available > 0 => ask(available),
                // The last points of a finite space are still worth trying.
                Err(SuggestError::Exhausted { remaining, .. }) if remaining > 0 => {
                    ask(usize::try_from(remaining).unwrap_or(count))
                }
                other => other,
            }
            .map_err(|error| match error {
                SuggestError::Exhausted { .. } => Refusal::Exhausted,
                SuggestError::NotReady { .. } => Refusal::NotReady,
                error => Refusal::Failed(error.to_string()),
            })?;
            let trials: Vec<SuggestedTrial> = suggestions
                .suggestions
                .into_iter()
                .map(|suggestion| {
                    let pairs = space
                        .format_assignment(&suggestion.assignment)
                        .into_iter()
                        .map(|(name, value)| ParameterAssignment { name, value })
                        .collect();
                    (pairs, suggestion.labels)
                })
                .collect();
            Ok((trials, suggestions.settings))
        })
        .await
        .map_err(|error| format!("the search algorithm crashed: {error}"))?;
        match answer {
            Ok((trials, returned)) => {
                if let Some(returned) = returned {
                    *returned_settings = returned;
                }
                Ok(Answer::Assignments(trials))
            }
            Err(Refusal::Exhausted) => Ok(Answer::Exhausted),
            Err(Refusal::NotReady) => Ok(Answer::NotReady),
            Err(Refusal::Failed(reason)) => Err(reason),
        }
    }
}

/// Why the algorithm proposed nothing.
enum Refusal {
    Exhausted,
    NotReady,
    Failed(String),
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::RunState;

    fn grid_experiment() -> Experiment {
        crate::load_experiments(
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
        match suggester.suggest(&experiment, &three, &labels, 2).await {
            Ok(Answer::Assignments(trials)) => {
                assert_eq!(trials.len(), 1);
                assert_eq!(trials[0].0[0].value, "4");
            }
            other => panic!("expected the last point, got {other:?}"),
        }
        let four = [trial("1"), trial("2"), trial("3"), trial("4")];
        assert_eq!(
            suggester.suggest(&experiment, &four, &labels, 2).await,
            Ok(Answer::Exhausted)
        );
    }
}
