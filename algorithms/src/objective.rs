//! What an experiment optimizes: one or several metrics, each with a direction, an optional goal
//! (single objective only) and optional outcome constraints.
//!
//! Katib's single objective is the first entry, [`Objective::direction`] and
//! [`Objective::metric_name`]; the objectives after it sit in
//! [`Objective::secondary_objectives`], so an experiment with one objective is exactly what it
//! was. Every objective is turned into a loss (lower is better) for the algorithms, and every
//! constraint into a non-negative violation (zero when met), as Deb's constraint domination
//! and the constrained samplers use them.

use crate::history::TrialRecord;

/// Whether lower or higher metric values are better.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Direction {
    /// Lower is better.
    Minimize,
    /// Higher is better.
    Maximize,
}

/// The objective of an experiment.
#[derive(Debug, Clone, PartialEq)]
pub struct Objective {
    /// Minimize or maximize.
    pub direction: Direction,
    /// The metric the direction applies to.
    pub metric_name: String,
    /// Stop when a trial reaches this value, if set.
    pub goal: Option<f64>,
    /// Other metrics collected but not optimized.
    pub additional_metric_names: Vec<String>,
    /// The objectives after the first, for a multi-objective experiment; empty for Katib's
    /// single objective.
    pub secondary_objectives: Vec<ObjectiveMetric>,
    /// Outcome constraints every trial should meet; a trial that breaks one is infeasible and
    /// never optimal.
    pub constraints: Vec<Constraint>,
}

/// One objective of a multi-objective experiment.
#[derive(Debug, Clone, PartialEq)]
pub struct ObjectiveMetric {
    /// The metric the direction applies to.
    pub metric_name: String,
    /// Minimize or maximize.
    pub direction: Direction,
}

impl ObjectiveMetric {
    /// An objective on `metric_name`.
    pub fn new(direction: Direction, metric_name: impl Into<String>) -> ObjectiveMetric {
        ObjectiveMetric {
            metric_name: metric_name.into(),
            direction,
        }
    }

    /// The metric value as a loss (lower is better).
    pub fn loss(&self, value: f64) -> f64 {
        match self.direction {
            Direction::Minimize => value,
            Direction::Maximize => -value,
        }
    }
}

/// An outcome constraint: a metric must stay within a bound.
#[derive(Debug, Clone, PartialEq)]
pub struct Constraint {
    /// The metric constrained.
    pub metric_name: String,
    /// The bound it must keep.
    pub bound: Bound,
}

/// Which side of a value a constrained metric must stay on; the bound itself is allowed.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Bound {
    /// The metric must be at most this.
    Max(f64),
    /// The metric must be at least this.
    Min(f64),
}

impl Constraint {
    /// The constraints of a metric kept at most `max` and at least `min`, either or both: one
    /// per bound given.
    pub fn within(metric_name: &str, max: Option<f64>, min: Option<f64>) -> Vec<Constraint> {
        let bounds = max.map(Bound::Max).into_iter().chain(min.map(Bound::Min));
        bounds
            .map(|bound| Constraint {
                metric_name: metric_name.to_owned(),
                bound,
            })
            .collect()
    }

    /// How far `value` is beyond the bound: zero when met, positive when broken, infinite when
    /// the value is not a number (a NaN never meets a constraint).
    pub fn violation(&self, value: f64) -> f64 {
        self.excess(value).max(0.0)
    }

    /// The signed distance of `value` beyond the bound: positive when broken, zero or negative
    /// when met (how far inside), infinite when the value is not a number. What a model of the
    /// constraint learns, since the violation alone is flat over the whole feasible region.
    pub fn excess(&self, value: f64) -> f64 {
        let excess = match self.bound {
            Bound::Max(max) => value - max,
            Bound::Min(min) => min - value,
        };
        if excess.is_nan() {
            f64::INFINITY
        } else {
            excess
        }
    }
}

/// What one finished trial scored: a loss per objective and the total constraint violation.
#[derive(Debug, Clone, PartialEq)]
pub struct Outcome {
    /// One loss per objective, in [`Objective::objective_metrics`] order; lower is better.
    pub losses: Vec<f64>,
    /// The sum of the constraints' violations; zero exactly when the trial is feasible.
    pub violation: f64,
}

impl Outcome {
    /// Whether every constraint is met.
    pub fn is_feasible(&self) -> bool {
        self.violation == 0.0
    }
}

impl Objective {
    /// An objective on `metric_name` without a goal.
    pub fn new(direction: Direction, metric_name: impl Into<String>) -> Objective {
        Objective {
            direction,
            metric_name: metric_name.into(),
            goal: None,
            additional_metric_names: Vec::new(),
            secondary_objectives: Vec::new(),
            constraints: Vec::new(),
        }
    }

    /// The objectives `primary`, then `secondary` in order, without a goal or constraints.
    pub fn several(primary: ObjectiveMetric, secondary: Vec<ObjectiveMetric>) -> Objective {
        let mut objective = Objective::new(primary.direction, primary.metric_name);
        objective.secondary_objectives = secondary;
        objective
    }

    /// Whether more than one metric is optimized.
    pub fn is_multi_objective(&self) -> bool {
        !self.secondary_objectives.is_empty()
    }

    /// How many metrics are optimized.
    pub fn objective_count(&self) -> usize {
        1 + self.secondary_objectives.len()
    }

    /// Every objective, the primary one first.
    pub fn objective_metrics(&self) -> Vec<ObjectiveMetric> {
        let mut metrics = Vec::with_capacity(self.objective_count());
        metrics.push(ObjectiveMetric::new(
            self.direction,
            self.metric_name.clone(),
        ));
        metrics.extend(self.secondary_objectives.iter().cloned());
        metrics
    }

    /// The outcome of a finished trial: `None` while it has no usable result, or when any
    /// objective or constrained metric is missing or not finite (an objective) or missing (a
    /// constraint). The primary objective is the trial's `objective_value`; the others and
    /// the constrained metrics are read from its reported metrics.
    pub fn outcome(&self, trial: &TrialRecord) -> Option<Outcome> {
        let primary = trial.loss(self)?;
        let mut losses = Vec::with_capacity(self.objective_count());
        losses.push(primary);
        for metric in &self.secondary_objectives {
            let value = trial
                .metric(&metric.metric_name)
                .filter(|v| v.is_finite())?;
            losses.push(metric.loss(value));
        }
        let mut violation = 0.0;
        for constraint in &self.constraints {
            violation += constraint.violation(trial.metric(&constraint.metric_name)?);
        }
        Some(Outcome { losses, violation })
    }

    /// Converts a metric value to a loss that every algorithm minimizes.
    pub fn loss(&self, value: f64) -> f64 {
        match self.direction {
            Direction::Minimize => value,
            Direction::Maximize => -value,
        }
    }

    /// Whether `candidate` is strictly better than `incumbent`.
    pub fn is_better(&self, candidate: f64, incumbent: f64) -> bool {
        self.loss(candidate) < self.loss(incumbent)
    }

    /// Whether `value` reaches the goal (Katib: `>=` goal when maximizing, `<=` when minimizing).
    pub fn reaches_goal(&self, value: f64) -> bool {
        match (self.goal, self.direction) {
            (Some(goal), Direction::Minimize) => value <= goal,
            (Some(goal), Direction::Maximize) => value >= goal,
            (None, _) => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::history::TrialCondition;
    use crate::space::Assignment;

    fn trial(objective_value: Option<f64>, metrics: &[(&str, &str)]) -> TrialRecord {
        let mut trial = TrialRecord::new(
            "t",
            Assignment { values: Vec::new() },
            TrialCondition::Succeeded,
        );
        trial.objective_value = objective_value;
        trial.metrics = metrics
            .iter()
            .map(|(name, value)| (name.to_string(), value.to_string()))
            .collect();
        trial
    }

    #[test]
    fn outcomes_turn_every_objective_into_a_loss_and_sum_violations() {
        let mut objective = Objective::several(
            ObjectiveMetric::new(Direction::Minimize, "loss"),
            vec![ObjectiveMetric::new(Direction::Maximize, "accuracy")],
        );
        objective.constraints = vec![
            Constraint {
                metric_name: "latency".into(),
                bound: Bound::Max(10.0),
            },
            Constraint {
                metric_name: "accuracy".into(),
                bound: Bound::Min(0.5),
            },
        ];
        assert!(objective.is_multi_objective());
        assert_eq!(objective.objective_count(), 2);

        let met = trial(Some(0.3), &[("accuracy", "0.9"), ("latency", "10")]);
        assert_eq!(
            objective.outcome(&met),
            Some(Outcome {
                losses: vec![0.3, -0.9],
                violation: 0.0
            })
        );
        let broken = trial(Some(0.3), &[("accuracy", "0.25"), ("latency", "12")]);
        let outcome = objective.outcome(&broken).expect("complete");
        assert!(!outcome.is_feasible());
        assert!((outcome.violation - 2.25).abs() < 1e-12);

        // A missing secondary objective or constrained metric leaves no usable outcome.
        assert_eq!(
            objective.outcome(&trial(Some(0.3), &[("latency", "1")])),
            None
        );
        assert_eq!(
            objective.outcome(&trial(Some(0.3), &[("accuracy", "0.9")])),
            None
        );
        assert_eq!(
            objective.outcome(&trial(None, &[("accuracy", "0.9")])),
            None
        );
        // A NaN never meets a constraint.
        let nan = trial(Some(0.3), &[("accuracy", "0.9"), ("latency", "NaN")]);
        assert_eq!(
            objective.outcome(&nan).map(|outcome| outcome.violation),
            Some(f64::INFINITY)
        );
    }

    #[test]
    fn a_single_objective_is_one_entry() {
        let objective = Objective::new(Direction::Maximize, "accuracy");
        assert!(!objective.is_multi_objective());
        assert_eq!(
            objective.objective_metrics(),
            vec![ObjectiveMetric::new(Direction::Maximize, "accuracy")]
        );
        let outcome = objective.outcome(&trial(Some(0.8), &[])).expect("complete");
        assert_eq!(outcome.losses, vec![-0.8]);
        assert!(outcome.is_feasible());
    }
}
