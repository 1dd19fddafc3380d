//! What an experiment optimizes: a metric, a direction and an optional goal.

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
}

impl Objective {
    /// An objective on `metric_name` without a goal.
    pub fn new(direction: Direction, metric_name: impl Into<String>) -> Objective {
        Objective {
            direction,
            metric_name: metric_name.into(),
            goal: None,
            additional_metric_names: Vec::new(),
        }
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
