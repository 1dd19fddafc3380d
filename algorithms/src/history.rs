//! The trials an algorithm learns from: their assignments, how they ended and what they
//! reported.

use std::collections::BTreeMap;

use crate::objective::{Objective, Outcome};
use crate::space::Assignment;

/// Katib's trial conditions, as the Suggestion API reports the latest one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TrialCondition {
    /// Created, not yet running.
    Created,
    /// Running.
    Running,
    /// Finished and reported its objective.
    Succeeded,
    /// Stopped from outside.
    Killed,
    /// Failed.
    Failed,
    /// Finished without reporting the objective metric.
    MetricsUnavailable,
    /// Stopped by an early-stopping rule; its metrics so far are kept.
    EarlyStopped,
    /// Anything else.
    Unknown,
}

impl TrialCondition {
    /// Whether the trial is still to be evaluated (its point is taken but has no result yet).
    pub fn is_pending(self) -> bool {
        matches!(self, TrialCondition::Created | TrialCondition::Running)
    }

    /// Whether the trial has a usable result.
    pub fn has_result(self) -> bool {
        matches!(
            self,
            TrialCondition::Succeeded | TrialCondition::EarlyStopped
        )
    }
}

/// One trial of the history.
#[derive(Debug, Clone, PartialEq)]
pub struct TrialRecord {
    /// The trial's name.
    pub name: String,
    /// The values it was given.
    pub assignment: Assignment,
    /// Its latest condition.
    pub condition: TrialCondition,
    /// The objective metric's value, when it reported a number.
    pub objective_value: Option<f64>,
    /// Every reported metric as name and value string.
    pub metrics: Vec<(String, String)>,
    /// Labels set on the trial (Hyperband and PBT keep bookkeeping there).
    pub labels: BTreeMap<String, String>,
    /// Start time as RFC3339, when known.
    pub start_time: Option<String>,
}

impl TrialRecord {
    /// A trial with just an assignment and condition, for algorithms and tests.
    pub fn new(name: impl Into<String>, assignment: Assignment, condition: TrialCondition) -> Self {
        TrialRecord {
            name: name.into(),
            assignment,
            condition,
            objective_value: None,
            metrics: Vec::new(),
            labels: BTreeMap::new(),
            start_time: None,
        }
    }

    /// The value of the reported metric `name`, when it is a number; the primary objective's
    /// metric is `objective_value`, which the caller computed by the metric's strategy.
    pub fn metric(&self, name: &str) -> Option<f64> {
        self.metrics
            .iter()
            .rev()
            .find(|(metric, _)| metric == name)
            .and_then(|(_, value)| value.trim().parse::<f64>().ok())
    }

    /// The loss (lower is better) of a finished trial with a finite objective value.
    pub fn loss(&self, objective: &Objective) -> Option<f64> {
        match self.objective_value {
            Some(value) if self.condition.has_result() && value.is_finite() => {
                Some(objective.loss(value))
            }
            _ => None,
        }
    }
}

/// The finished trials with a finite loss, as `(assignment, loss)` pairs in history order.
pub fn observed_losses<'a>(
    trials: &'a [TrialRecord],
    objective: &Objective,
) -> Vec<(&'a Assignment, f64)> {
    trials
        .iter()
        .filter_map(|trial| trial.loss(objective).map(|loss| (&trial.assignment, loss)))
        .collect()
}

/// The finished trials with a complete outcome (every objective and constrained metric), as
/// `(trial index, outcome)` pairs in history order; what the multi-objective algorithms learn
/// from.
pub fn observed_outcomes(trials: &[TrialRecord], objective: &Objective) -> Vec<(usize, Outcome)> {
    trials
        .iter()
        .enumerate()
        .filter_map(|(index, trial)| objective.outcome(trial).map(|outcome| (index, outcome)))
        .collect()
}
