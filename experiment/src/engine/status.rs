//! The experiment status as a pure function of what is observed: trial counters and lists,
//! the optimal trial (and with several objectives the Pareto front), and the conditions with
//! Katib's reasons, evaluated in Katib's order (goal, failed count, max trials, then Sextant's
//! suggestion end, else running).

use chrono::{DateTime, Utc};

use sextant_algorithms::pareto::pareto_front;
use sextant_algorithms::{Constraint, Direction, ObjectiveMetric, Outcome};

use crate::api::common::{
    Metric, MetricStrategyType, ObjectiveSpec, ObjectiveType, Observation, UNAVAILABLE_METRIC_VALUE,
};
use crate::api::experiment::{
    ExperimentConditionType, ExperimentSpec, ExperimentStatus, OptimalTrial, ResumePolicy,
};
use crate::api::trial::TrialConditionType;
use crate::api::{ConditionStatus, has_true_condition, set_condition};
use crate::domain;
use crate::engine::{EffectiveTrial, Observed, effective_trials};

/// Reason of the `Created` condition.
pub const REASON_CREATED: &str = "ExperimentCreated";
/// Reason of the `Running` condition.
pub const REASON_RUNNING: &str = "ExperimentRunning";
/// Reason of the `Restarting` condition.
pub const REASON_RESTARTING: &str = "ExperimentRestarting";
/// Reason of `Succeeded` when a trial reached the goal.
pub const REASON_GOAL_REACHED: &str = "ExperimentGoalReached";
/// Reason of `Succeeded` when `maxTrialCount` trials completed.
pub const REASON_MAX_TRIALS_REACHED: &str = "ExperimentMaxTrialsReached";
/// Reason of `Succeeded` when the search space ran out.
pub const REASON_SUGGESTION_END_REACHED: &str = "ExperimentSuggestionEndReached";
/// Reason of `Failed`.
pub const REASON_FAILED: &str = "ExperimentFailed";

/// The status the experiment has given what is observed (Katib's `UpdateExperimentStatus`).
/// `lastReconcileTime` is `now` when anything else changed, else kept.
pub fn compute_status(observed: &Observed) -> ExperimentStatus {
    compute(observed, &effective_trials(observed))
}

/// Katib's `IsCompleted`: `Succeeded` or `Failed` is true.
pub fn is_completed(status: &ExperimentStatus) -> bool {
    has_true_condition(&status.conditions, &ExperimentConditionType::Succeeded)
        || has_true_condition(&status.conditions, &ExperimentConditionType::Failed)
}

/// Katib's `IsCompletedExperimentRestartable`: succeeded by reaching max trials, with
/// `resumePolicy` LongRunning or FromVolume.
pub fn is_restartable(spec: &ExperimentSpec, status: &ExperimentStatus) -> bool {
    let by_max_trials = status.conditions.iter().any(|condition| {
        condition.condition_type == ExperimentConditionType::Succeeded
            && condition.status == ConditionStatus::True
            && condition.reason == REASON_MAX_TRIALS_REACHED
    });
    by_max_trials
        && matches!(
            spec.resume_policy,
            Some(ResumePolicy::LongRunning | ResumePolicy::FromVolume)
        )
}

/// Whether a completed experiment restarts on the next plan: restartable, and `maxTrialCount`
/// raised above the trials it has.
pub fn will_restart(spec: &ExperimentSpec, status: &ExperimentStatus) -> bool {
    is_completed(status)
        && is_restartable(spec, status)
        && spec.max_trial_count.is_some_and(|max| max > status.trials)
}

/// The value that stands for a trial's metric under a strategy, as Katib reads it: `min` and
/// `max` fall back to `latest` when unavailable; `None` when unavailable or not a finite number.
pub fn objective_value(metric: &Metric, strategy: &MetricStrategyType) -> Option<f64> {
    let text = match strategy {
        MetricStrategyType::Min if metric.min != UNAVAILABLE_METRIC_VALUE => &metric.min,
        MetricStrategyType::Max if metric.max != UNAVAILABLE_METRIC_VALUE => &metric.max,
        _ => &metric.latest,
    };
    text.trim()
        .parse::<f64>()
        .ok()
        .filter(|value| value.is_finite())
}

pub(crate) fn compute(observed: &Observed, trials: &[EffectiveTrial<'_>]) -> ExperimentStatus {
    let now = observed.now;
    let spec = &observed.experiment.spec;
    let previous = observed.experiment.status.clone();
    let mut status = previous.clone().unwrap_or_default();
    status.start_time.get_or_insert(now);
    set_condition(
        &mut status.conditions,
        ExperimentConditionType::Created,
        ConditionStatus::True,
        REASON_CREATED,
        "Experiment is created",
        now,
    );

    let mut was_completed = is_completed(&status);
    if will_restart(spec, &status) {
        status.conditions.retain(|condition| {
            !matches!(
                condition.condition_type,
                ExperimentConditionType::Succeeded | ExperimentConditionType::Failed
            )
        });
        set_condition(
            &mut status.conditions,
            ExperimentConditionType::Restarting,
            ConditionStatus::True,
            REASON_RESTARTING,
            "Experiment is restarted",
            now,
        );
        status.completion_time = None;
        was_completed = false;
    }

    count_trials(&mut status, trials);
    let goal_reached = update_optimal_trial(&mut status, spec, trials);

    if !was_completed {
        let failed = status.trials_failed + status.trial_metrics_unavailable;
        let completed = status.trials_succeeded
            + status.trials_failed
            + status.trials_killed
            + status.trials_early_stopped
            + status.trial_metrics_unavailable;
        let active = status.trials_pending + status.trials_running;
        let suggestion = &observed.suggestion;
        let outcome: Option<(ExperimentConditionType, &str, String)> = if goal_reached {
            Some((
                ExperimentConditionType::Succeeded,
                REASON_GOAL_REACHED,
                "Experiment has succeeded because Objective goal has reached".into(),
            ))
        } else if let Some(failure) = &suggestion.failure {
            Some((
                ExperimentConditionType::Failed,
                REASON_FAILED,
                format!("Suggestion has failed: {failure}"),
            ))
        } else if spec
            .max_failed_trial_count
            .is_some_and(|max_failed| failed > 0 && failed >= max_failed)
        {
            Some((
                ExperimentConditionType::Failed,
                REASON_FAILED,
                "Experiment has failed because max failed count has reached".into(),
            ))
        } else if spec.max_trial_count.is_some_and(|max| completed >= max) {
            Some((
                ExperimentConditionType::Succeeded,
                REASON_MAX_TRIALS_REACHED,
                "Experiment has succeeded because max trial count has reached".into(),
            ))
        } else if suggestion.exhausted && suggestion.unused_assignments.is_empty() && active == 0 {
            Some((
                ExperimentConditionType::Succeeded,
                REASON_SUGGESTION_END_REACHED,
                "Experiment has succeeded because the search space is exhausted".into(),
            ))
        } else {
            None
        };
        match outcome {
            Some((condition_type, reason, message)) => {
                complete(&mut status, condition_type, reason, &message, now)
            }
            None => {
                set_condition(
                    &mut status.conditions,
                    ExperimentConditionType::Running,
                    ConditionStatus::True,
                    REASON_RUNNING,
                    "Experiment is running",
                    now,
                );
            }
        }
    }

    if let Some(previous) = &previous {
        let mut unchanged = status.clone();
        unchanged.last_reconcile_time = previous.last_reconcile_time;
        if &unchanged == previous {
            return unchanged;
        }
    }
    status.last_reconcile_time = Some(now);
    status
}

fn complete(
    status: &mut ExperimentStatus,
    condition_type: ExperimentConditionType,
    reason: &str,
    message: &str,
    now: DateTime<Utc>,
) {
    // Running and Restarting turn False keeping their reason, as Katib's do.
    for ended in [
        ExperimentConditionType::Running,
        ExperimentConditionType::Restarting,
    ] {
        if let Some(condition) = status
            .conditions
            .iter()
            .find(|condition| condition.condition_type == ended)
            .cloned()
        {
            set_condition(
                &mut status.conditions,
                ended,
                ConditionStatus::False,
                &condition.reason,
                &condition.message,
                now,
            );
        }
    }
    set_condition(
        &mut status.conditions,
        condition_type,
        ConditionStatus::True,
        reason,
        message,
        now,
    );
    status.completion_time = Some(now);
}

/// Counters and name lists; each trial counted once by its condition.
fn count_trials(status: &mut ExperimentStatus, trials: &[EffectiveTrial<'_>]) {
    status.running_trial_list.clear();
    status.pending_trial_list.clear();
    status.failed_trial_list.clear();
    status.succeeded_trial_list.clear();
    status.killed_trial_list.clear();
    status.early_stopped_trial_list.clear();
    status.metrics_unavailable_trial_list.clear();
    for trial in trials {
        let name = trial.trial.name.clone();
        match trial.condition {
            TrialConditionType::Created => status.pending_trial_list.push(name),
            TrialConditionType::Running => status.running_trial_list.push(name),
            TrialConditionType::Succeeded => status.succeeded_trial_list.push(name),
            TrialConditionType::Killed => status.killed_trial_list.push(name),
            TrialConditionType::Failed => status.failed_trial_list.push(name),
            TrialConditionType::MetricsUnavailable => {
                status.metrics_unavailable_trial_list.push(name)
            }
            TrialConditionType::EarlyStopped => status.early_stopped_trial_list.push(name),
        }
    }
    let count = |list: &Vec<String>| i32::try_from(list.len()).unwrap_or(i32::MAX);
    status.trials = i32::try_from(trials.len()).unwrap_or(i32::MAX);
    status.trials_pending = count(&status.pending_trial_list);
    status.trials_running = count(&status.running_trial_list);
    status.trials_succeeded = count(&status.succeeded_trial_list);
    status.trials_killed = count(&status.killed_trial_list);
    status.trials_failed = count(&status.failed_trial_list);
    status.trial_metrics_unavailable = count(&status.metrics_unavailable_trial_list);
    status.trials_early_stopped = count(&status.early_stopped_trial_list);
}

/// How a trial's observation becomes its outcome as the algorithms rank it: a loss per
/// objective (the first objective first) and the total violation of the outcome constraints,
/// zero when it meets them all. Built once from the spec, applied to each trial.
pub struct OutcomeRule<'s> {
    objective: &'s ObjectiveSpec,
    objectives: Vec<ObjectiveMetric>,
    constraints: Vec<Constraint>,
}

impl<'s> OutcomeRule<'s> {
    /// The rule of `spec`; `None` without an objective.
    pub fn new(spec: &'s ExperimentSpec) -> Option<OutcomeRule<'s>> {
        let objective = spec.objective.as_ref()?;
        let objectives = objective
            .objective_metrics()
            .into_iter()
            .map(|(name, objective_type)| {
                let direction = match objective_type {
                    Some(ObjectiveType::Maximize) => Direction::Maximize,
                    _ => Direction::Minimize,
                };
                ObjectiveMetric::new(direction, name)
            })
            .collect();
        Some(OutcomeRule {
            objective,
            objectives,
            constraints: domain::constraints(&spec.constraints),
        })
    }

    /// The outcome of a trial that reported `observation`; `None` without a value for every
    /// objective. A constrained metric the trial did not report breaks its constraint. Values
    /// are read under each metric's strategy.
    pub fn outcome(&self, observation: &Observation) -> Option<Outcome> {
        let value = |name: &str| {
            observation
                .metric(name)
                .and_then(|metric| objective_value(metric, &self.objective.strategy_for(name)))
        };
        let losses = self
            .objectives
            .iter()
            .map(|metric| Some(metric.loss(value(&metric.metric_name)?)))
            .collect::<Option<Vec<f64>>>()?;
        let violation = self
            .constraints
            .iter()
            .map(|constraint| {
                value(&constraint.metric_name).map_or(f64::INFINITY, |v| constraint.violation(v))
            })
            .sum();
        Some(Outcome { losses, violation })
    }
}

/// A succeeded or early-stopped trial with a value for every objective, and its outcome.
struct Scored<'t> {
    trial: &'t EffectiveTrial<'t>,
    outcome: Outcome,
}

fn scored<'t>(rule: &OutcomeRule<'_>, trials: &'t [EffectiveTrial<'t>]) -> Vec<Scored<'t>> {
    trials
        .iter()
        .filter(|trial| {
            matches!(
                trial.condition,
                TrialConditionType::Succeeded | TrialConditionType::EarlyStopped
            )
        })
        .filter_map(|trial| {
            Some(Scored {
                trial,
                outcome: rule.outcome(&trial.trial.observation)?,
            })
        })
        .collect()
}

fn optimal(trial: &EffectiveTrial<'_>) -> OptimalTrial {
    OptimalTrial {
        best_trial_name: trial.trial.name.clone(),
        parameter_assignments: trial.trial.parameter_assignments.clone(),
        observation: trial.trial.observation.clone(),
    }
}

/// Sets `currentOptimalTrial` (the feasible trial best on the first objective) and, with
/// several objectives, `paretoOptimalTrials`, from the succeeded and early-stopped trials; an
/// infeasible trial is never either. Returns whether the best value reaches the goal.
fn update_optimal_trial(
    status: &mut ExperimentStatus,
    spec: &ExperimentSpec,
    trials: &[EffectiveTrial<'_>],
) -> bool {
    let (Some(objective), Some(rule)) = (&spec.objective, OutcomeRule::new(spec)) else {
        return false;
    };
    let scored = scored(&rule, trials);
    let mut best: Option<&Scored<'_>> = None;
    for candidate in scored.iter().filter(|s| s.outcome.is_feasible()) {
        if best.is_none_or(|incumbent| candidate.outcome.losses[0] < incumbent.outcome.losses[0]) {
            best = Some(candidate);
        }
    }
    status.pareto_optimal_trials = if objective.is_multi_objective() {
        let outcomes: Vec<Outcome> = scored.iter().map(|s| s.outcome.clone()).collect();
        pareto_front(&outcomes)
            .into_iter()
            .map(|index| optimal(scored[index].trial))
            .collect()
    } else {
        Vec::new()
    };
    let Some(best) = best else {
        return false;
    };
    status.current_optimal_trial = optimal(best.trial);
    let maximize = objective.objective_type == Some(ObjectiveType::Maximize);
    // Back from the loss to the value as reported.
    let value = if maximize {
        -best.outcome.losses[0]
    } else {
        best.outcome.losses[0]
    };
    objective.goal.is_some_and(|goal| {
        if maximize {
            value >= goal
        } else {
            value <= goal
        }
    })
}
