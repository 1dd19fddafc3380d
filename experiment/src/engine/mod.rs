//! The experiment engine: a pure decision from what is observed (the experiment, its trials,
//! the suggestion state, the time) to what to do next. No I/O and no clock: drivers observe,
//! call [`plan`], and apply the [`Action`]s; every decision is re-derived from persisted state,
//! so a driver that crashes and restarts resumes where it was.
//!
//! Katib's counting and completion rules, with its known faults fixed on purpose:
//! - at most `parallelTrialCount` trials pending or running; new trials only while
//!   `completed + active < maxTrialCount`, where completed includes metrics-unavailable trials
//!   (Katib leaves them out of its capacity math, and so overshoots);
//! - a trial whose run succeeded without the objective metric is `MetricsUnavailable` at once
//!   (Katib requeues forever waiting for the metric);
//! - a search space that runs out ends the experiment `Succeeded` with reason
//!   `ExperimentSuggestionEndReached` once the last trials finish (unreachable in Katib);
//! - trials still active when the experiment completes are stopped, unless the experiment's
//!   [`KEEP_RUNNING_TRIALS_ANNOTATION`](crate::api::experiment::KEEP_RUNNING_TRIALS_ANNOTATION)
//!   is `"true"`;
//! - lowering `parallelTrialCount` below the active trials lets the surplus finish instead of
//!   deleting the newest trials, finished ones included (Katib issue 2725);
//! - a non-numeric objective value never becomes the optimal trial (Katib lets it win);
//! - a completed experiment restarts only for Katib's restartable case (succeeded by max
//!   trials, `resumePolicy` LongRunning or FromVolume, `maxTrialCount` raised above
//!   `status.trials`), not for Katib's accidental `maxTrialCount == nil` clause.

mod status;

#[cfg(test)]
mod pareto_tests;
#[cfg(test)]
mod tests;

use chrono::{DateTime, Utc};

pub use status::{
    OutcomeRule, compute_status, is_completed, is_restartable, objective_value, will_restart,
};

use crate::api::common::{ObjectiveSpec, Observation, ParameterAssignment};
use crate::api::experiment::{ConstraintSpec, Experiment, ExperimentStatus};
use crate::api::suggestion::TrialAssignment;
use crate::api::trial::TrialConditionType;
use crate::defaults::DEFAULT_PARALLEL_TRIAL_COUNT;

/// Everything the engine decides from.
#[derive(Clone, Debug, PartialEq)]
pub struct Observed {
    /// The experiment, defaulted and validated, with the status last written (`None` before
    /// the first plan).
    pub experiment: Experiment,
    /// Its trials, in creation order (ties for the optimal trial go to the earlier one).
    pub trials: Vec<ObservedTrial>,
    /// The suggestion side: assignments produced but not yet made trials, exhaustion, failure.
    pub suggestion: ObservedSuggestion,
    /// The current time, used for condition and status timestamps.
    pub now: DateTime<Utc>,
}

/// One trial as the driver sees it.
#[derive(Clone, Debug, PartialEq)]
pub struct ObservedTrial {
    /// The trial's name.
    pub name: String,
    /// Its parameter values.
    pub parameter_assignments: Vec<ParameterAssignment>,
    /// Its latest condition as recorded (`Created` right after creation).
    pub condition: TrialConditionType,
    /// What its run is doing, as the runner reports it.
    pub run: RunState,
    /// Per metric, its min, max and latest reported values so far.
    pub observation: Observation,
    /// Whether a [`Action::StopTrial`] was already applied, so it is not asked for again.
    pub stop_requested: bool,
}

/// The state of a trial's run (process, pipeline or Kubernetes object).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RunState {
    /// Not started yet.
    NotStarted,
    /// Going.
    Running,
    /// Ended successfully (exit status 0, success condition matched).
    Succeeded,
    /// Ended unsuccessfully.
    Failed {
        /// A short machine-readable reason (`ExitCode1`, `BackoffLimitExceeded`), may be empty.
        reason: String,
        /// A human-readable message, may be empty.
        message: String,
    },
    /// Stopped because its early-stopping rules were all met.
    EarlyStopped,
    /// Stopped on request (see [`Action::StopTrial`]).
    Killed {
        /// Why it was stopped.
        message: String,
    },
}

/// The suggestion side of an experiment.
#[derive(Clone, Debug, PartialEq, Default)]
pub struct ObservedSuggestion {
    /// Assignments the algorithm produced that are not trials yet, oldest first.
    pub unused_assignments: Vec<TrialAssignment>,
    /// The algorithm answered that its search space is exhausted: no new assignment will come.
    pub exhausted: bool,
    /// The algorithm failed (settings rejected, service unreachable for good), with why.
    pub failure: Option<String>,
}

/// What to do next, and the status the experiment has once it is done.
#[derive(Clone, Debug, PartialEq)]
pub struct Plan {
    /// The actions, in the order to apply them.
    pub actions: Vec<Action>,
    /// The experiment's status after this step (also carried by
    /// [`Action::SetExperimentStatus`] when it changed).
    pub status: ExperimentStatus,
    /// The experiment is completed and none of its trials is active: the driver may stop.
    pub finished: bool,
}

/// One decision for the driver to carry out.
#[derive(Clone, Debug, PartialEq)]
pub enum Action {
    /// Record a new condition on a trial (and its completion time when terminal).
    SetTrialCondition {
        /// The trial.
        trial_name: String,
        /// The new condition, set `True`.
        condition: TrialConditionType,
        /// Katib's reason (`TrialSucceeded`, `MetricsUnavailable`, ...).
        reason: String,
        /// Katib's message.
        message: String,
    },
    /// Stop a trial's run; the runner then reports [`RunState::Killed`].
    StopTrial {
        /// The trial.
        trial_name: String,
        /// Why, for the trial's condition message.
        reason: String,
    },
    /// Create a trial from an assignment (condition `Created`) and start its run.
    CreateTrial(TrialAssignment),
    /// Ask the algorithm for this many more assignments; they come back as
    /// [`ObservedSuggestion::unused_assignments`] (or as exhaustion or failure).
    RequestSuggestions {
        /// How many.
        count: usize,
    },
    /// Write the experiment's new status.
    SetExperimentStatus(Box<ExperimentStatus>),
}

/// A trial's condition after applying what its run reports, with the transition when one
/// happens.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct EffectiveTrial<'a> {
    pub(crate) trial: &'a ObservedTrial,
    pub(crate) condition: TrialConditionType,
    pub(crate) transition: Option<(String, String)>,
}

/// Decides the next actions.
pub fn plan(observed: &Observed) -> Plan {
    let effective = effective_trials(observed);
    let previous = observed.experiment.status.clone();
    let status = status::compute(observed, &effective);
    let mut actions = Vec::new();

    for trial in &effective {
        if let Some((reason, message)) = &trial.transition {
            actions.push(Action::SetTrialCondition {
                trial_name: trial.trial.name.clone(),
                condition: trial.condition,
                reason: reason.clone(),
                message: message.clone(),
            });
        }
    }

    let active: Vec<&EffectiveTrial<'_>> = effective
        .iter()
        .filter(|trial| !trial.condition.is_terminal())
        .collect();
    let completed = is_completed(&status);
    if completed {
        if !observed.experiment.keeps_running_trials() {
            let reason = completion_reason(&status);
            for trial in active.iter().filter(|trial| !trial.trial.stop_requested) {
                actions.push(Action::StopTrial {
                    trial_name: trial.trial.name.clone(),
                    reason: reason.clone(),
                });
            }
        }
    } else {
        let spec = &observed.experiment.spec;
        let parallel = i64::from(
            spec.parallel_trial_count
                .unwrap_or(DEFAULT_PARALLEL_TRIAL_COUNT),
        );
        let completed_count = effective.len() as i64 - active.len() as i64;
        let required = match spec.max_trial_count {
            Some(max) => (i64::from(max) - completed_count).min(parallel),
            None => parallel,
        };
        let add = usize::try_from(required - active.len() as i64).unwrap_or(0);
        let unused = &observed.suggestion.unused_assignments;
        let create = add.min(unused.len());
        actions.extend(unused[..create].iter().cloned().map(Action::CreateTrial));
        let missing = add - create;
        if missing > 0 && !observed.suggestion.exhausted && observed.suggestion.failure.is_none() {
            actions.push(Action::RequestSuggestions { count: missing });
        }
    }

    if previous.as_ref() != Some(&status) {
        actions.push(Action::SetExperimentStatus(Box::new(status.clone())));
    }
    Plan {
        actions,
        finished: completed && active.is_empty(),
        status,
    }
}

fn completion_reason(status: &ExperimentStatus) -> String {
    status
        .conditions
        .iter()
        .rev()
        .find(|condition| {
            matches!(
                condition.condition_type,
                crate::api::experiment::ExperimentConditionType::Succeeded
                    | crate::api::experiment::ExperimentConditionType::Failed
            )
        })
        .map(|condition| format!("experiment completed: {}", condition.reason))
        .unwrap_or_else(|| "experiment completed".to_owned())
}

pub(crate) fn effective_trials(observed: &Observed) -> Vec<EffectiveTrial<'_>> {
    let spec = &observed.experiment.spec;
    let required = required_metrics(spec.objective.as_ref(), &spec.constraints);
    observed
        .trials
        .iter()
        .map(|trial| match next_condition(trial, &required) {
            Some((condition, reason, message)) => EffectiveTrial {
                trial,
                condition,
                transition: Some((reason, message)),
            },
            None => EffectiveTrial {
                trial,
                condition: trial.condition,
                transition: None,
            },
        })
        .collect()
}

/// The metrics a trial that succeeded must have reported, else it is `MetricsUnavailable`:
/// every objective and every constrained metric.
pub fn required_metrics<'a>(
    objective: Option<&'a ObjectiveSpec>,
    constraints: &'a [ConstraintSpec],
) -> Vec<&'a str> {
    let mut required: Vec<&str> = objective
        .map(|objective| {
            objective
                .objective_metrics()
                .into_iter()
                .map(|(name, _)| name)
                .collect()
        })
        .unwrap_or_default();
    for constraint in constraints {
        if !required.contains(&constraint.metric_name.as_str()) {
            required.push(&constraint.metric_name);
        }
    }
    required
}

/// The condition a trial moves to given its run, with Katib's reason and message; `None` when
/// it stays where it is. A run that succeeded without a value for each of `required_metrics`
/// (see [`required_metrics`]) makes the trial `MetricsUnavailable`.
pub fn next_condition(
    trial: &ObservedTrial,
    required_metrics: &[&str],
) -> Option<(TrialConditionType, String, String)> {
    if trial.condition.is_terminal() {
        return None;
    }
    let owned = |condition, reason: &str, message: &str| {
        Some((condition, reason.to_owned(), message.to_owned()))
    };
    match &trial.run {
        RunState::NotStarted => None,
        RunState::Running if trial.condition == TrialConditionType::Created => owned(
            TrialConditionType::Running,
            "TrialRunning",
            "Trial is running",
        ),
        RunState::Running => None,
        RunState::Succeeded
            if required_metrics
                .iter()
                .all(|metric| trial.observation.is_available_for(metric)) =>
        {
            owned(
                TrialConditionType::Succeeded,
                "TrialSucceeded",
                "Trial has succeeded",
            )
        }
        RunState::Succeeded => owned(
            TrialConditionType::MetricsUnavailable,
            "MetricsUnavailable",
            "Metrics are not available",
        ),
        RunState::Failed { reason, message } => {
            let mut full_reason = "TrialFailed".to_owned();
            if !reason.is_empty() {
                full_reason.push_str(&format!(". Job reason: {reason}"));
            }
            let mut full_message = "Trial has failed".to_owned();
            if !message.is_empty() {
                full_message.push_str(&format!(". Job message: {message}"));
            }
            Some((TrialConditionType::Failed, full_reason, full_message))
        }
        RunState::EarlyStopped => owned(
            TrialConditionType::EarlyStopped,
            "TrialEarlyStopped",
            "Trial is early stopped",
        ),
        RunState::Killed { message } => owned(
            TrialConditionType::Killed,
            "TrialKilled",
            &format!("Trial was stopped: {message}"),
        ),
    }
}
