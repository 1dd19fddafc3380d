//! Early stopping: rules that say when a running trial is hopeless, computed from the finished
//! trials, and their evaluation against a running trial's reports.
//!
//! Katib's protocol splits the work: the early-stopping service computes rules
//! (`GetEarlyStoppingRules`), the controller attaches them to new trials, and whoever watches a
//! trial's metrics (Katib's metrics-collector sidecar; Sextant's local driver) stops the trial
//! once every rule is met. Both halves are here as pure functions: [`build_early_stopping`]
//! validates Katib's settings, [`EarlyStoppingAlgorithm::rules`] computes the rules and
//! [`RuleTracker`] replays Katib's enforcement over a trial's reported values.
//!
//! Asynchronous successive halving ([`successive_halving`]) judges a trial against what the
//! other trials recorded when it reaches a rung, which rules fixed at creation can only
//! approximate; a driver that sees every trial's metrics as they arrive (the local one)
//! enforces it live instead, through a [`Tracker`] over a shared
//! [`successive_halving::RungTable`].
//!
//! Algorithms: [`medianstop`] and [`successive_halving`] (`successivehalving`, `asha`).

pub mod medianstop;
pub mod successive_halving;

use crate::history::TrialCondition;
use crate::objective::{Direction, Objective};
use crate::settings::{Setting, SettingsError};

/// How a reported value is compared with a rule's value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Comparison {
    /// The value equals the rule's value.
    Equal,
    /// The value is below the rule's value.
    Less,
    /// The value is above the rule's value.
    Greater,
}

impl Comparison {
    /// The comparison under which an objective value is *worse* than a threshold: `Less` when
    /// maximizing, `Greater` when minimizing (Katib's choice for median stopping).
    pub fn worse_than(direction: Direction) -> Comparison {
        match direction {
            Direction::Maximize => Comparison::Less,
            Direction::Minimize => Comparison::Greater,
        }
    }

    /// Whether `value` satisfies the comparison against `target`.
    pub fn holds(self, value: f64, target: f64) -> bool {
        match self {
            Comparison::Equal => value == target,
            Comparison::Less => value < target,
            Comparison::Greater => value > target,
        }
    }
}

/// One early-stopping rule, as Katib's `EarlyStoppingRule` message carries it.
#[derive(Debug, Clone, PartialEq)]
pub struct EarlyStoppingRule {
    /// The metric the rule watches.
    pub metric_name: String,
    /// The threshold.
    pub value: f64,
    /// How a reported value is compared with the threshold.
    pub comparison: Comparison,
    /// The 1-based index of the first reported value that is compared; earlier values are
    /// only recorded (for the objective metric, they count towards the best value so far).
    pub start_step: u32,
}

/// A finished or running trial with its objective metric's reported values, in report order.
#[derive(Debug, Clone, PartialEq)]
pub struct TrialObservations {
    /// The trial's name.
    pub trial_name: String,
    /// Its latest condition.
    pub condition: TrialCondition,
    /// The objective metric's values as reported; non-numeric reports are left out.
    pub objective_values: Vec<f64>,
}

impl TrialObservations {
    /// A trial's observations.
    pub fn new(name: &str, condition: TrialCondition, values: &[f64]) -> TrialObservations {
        TrialObservations {
            trial_name: name.into(),
            condition,
            objective_values: values.to_vec(),
        }
    }
}

/// An early-stopping algorithm, built and validated from Katib's settings.
pub trait EarlyStoppingAlgorithm: std::fmt::Debug + Send + Sync {
    /// Katib's name of the algorithm.
    fn name(&self) -> &'static str;

    /// The rules new trials should carry, computed from the trials so far; empty when there is
    /// not yet enough evidence.
    fn rules(&self, objective: &Objective, trials: &[TrialObservations]) -> Vec<EarlyStoppingRule>;

    /// Whether the rules read the objective values of trials in `condition`, so that callers
    /// fetch only the observation logs that count: the succeeded ones, unless the algorithm
    /// says otherwise.
    fn reads(&self, condition: TrialCondition) -> bool {
        condition == TrialCondition::Succeeded
    }

    /// The algorithm as asynchronous successive halving, which a driver that sees every
    /// trial's metrics enforces live rather than through rules.
    fn as_successive_halving(&self) -> Option<&successive_halving::SuccessiveHalving> {
        None
    }
}

/// The names of every early-stopping algorithm.
pub fn known_early_stopping_algorithms() -> Vec<&'static str> {
    vec![
        medianstop::NAME,
        successive_halving::NAME,
        successive_halving::ASHA_NAME,
    ]
}

/// Builds the early-stopping algorithm `name` with `settings`.
pub fn build_early_stopping(
    name: &str,
    settings: &[Setting],
) -> Result<Box<dyn EarlyStoppingAlgorithm>, SettingsError> {
    match name {
        medianstop::NAME => Ok(Box::new(medianstop::MedianStop::from_settings(settings)?)),
        successive_halving::NAME => Ok(Box::new(
            successive_halving::SuccessiveHalving::from_settings(
                successive_halving::NAME,
                settings,
            )?,
        )),
        successive_halving::ASHA_NAME => Ok(Box::new(
            successive_halving::SuccessiveHalving::from_settings(
                successive_halving::ASHA_NAME,
                settings,
            )?,
        )),
        _ => Err(SettingsError::UnknownAlgorithm {
            name: name.into(),
            known: known_early_stopping_algorithms()
                .into_iter()
                .map(String::from)
                .collect(),
        }),
    }
}

/// Katib's enforcement of a trial's rules (its metrics collector's `RuleSet`), fed one reported
/// value at a time: a rule is met once a compared value satisfies it and stays met; the trial
/// is to be stopped when every rule is met.
///
/// For each rule, reports of its metric are counted from 1; the reports before number
/// `start_step` are not compared. For the objective metric the compared value is the best
/// reported so far (the highest when maximizing, the lowest when minimizing), earlier reports
/// included; for any other metric it is the reported value itself.
#[derive(Debug, Clone)]
pub struct RuleTracker {
    rules: Vec<TrackedRule>,
    objective: Objective,
}

#[derive(Debug, Clone)]
struct TrackedRule {
    rule: EarlyStoppingRule,
    reports: u64,
    best: Option<f64>,
    met: bool,
}

impl RuleTracker {
    /// A tracker of `rules` for a trial optimizing `objective`.
    pub fn new(rules: Vec<EarlyStoppingRule>, objective: &Objective) -> RuleTracker {
        RuleTracker {
            rules: rules
                .into_iter()
                .map(|rule| TrackedRule {
                    rule,
                    reports: 0,
                    best: None,
                    met: false,
                })
                .collect(),
            objective: objective.clone(),
        }
    }

    /// Records one reported value of `metric_name`; returns whether the trial should now stop.
    /// Non-finite values are ignored, as Katib's collector cannot parse them either.
    pub fn report(&mut self, metric_name: &str, value: f64) -> bool {
        if !value.is_finite() {
            return self.should_stop();
        }
        for tracked in &mut self.rules {
            if tracked.met || tracked.rule.metric_name != metric_name {
                continue;
            }
            tracked.reports += 1;
            let compared = if metric_name == self.objective.metric_name {
                let best = match tracked.best {
                    Some(best) if !self.objective.is_better(value, best) => best,
                    _ => value,
                };
                tracked.best = Some(best);
                best
            } else {
                value
            };
            if tracked.reports >= u64::from(tracked.rule.start_step)
                && tracked.rule.comparison.holds(compared, tracked.rule.value)
            {
                tracked.met = true;
            }
        }
        self.should_stop()
    }

    /// Whether every rule is met (never for an empty rule set).
    pub fn should_stop(&self) -> bool {
        !self.rules.is_empty() && self.rules.iter().all(|tracked| tracked.met)
    }
}

/// How a driver that watches a trial's reports one at a time enforces its early stopping:
/// Katib's rules fixed at creation, or a live successive-halving rung table shared with the
/// experiment's other trials.
#[derive(Debug, Clone)]
pub enum Tracker {
    /// The trial's rules, as Katib's collector enforces them.
    Rules(RuleTracker),
    /// The trial's view of its experiment's rung table.
    Rungs(successive_halving::RungTracker),
}

impl Tracker {
    /// Records one reported value of `metric_name`; returns whether the trial should now stop.
    pub fn report(&mut self, metric_name: &str, value: f64) -> bool {
        match self {
            Tracker::Rules(rules) => rules.report(metric_name, value),
            Tracker::Rungs(rungs) => rungs.report(metric_name, value),
        }
    }
}

/// Whether a trial that reported `reports` (metric name and value, in order) should have been
/// stopped by `rules`: [`RuleTracker`] over the whole sequence.
pub fn should_stop<'a>(
    rules: &[EarlyStoppingRule],
    objective: &Objective,
    reports: impl IntoIterator<Item = (&'a str, f64)>,
) -> bool {
    let mut tracker = RuleTracker::new(rules.to_vec(), objective);
    reports
        .into_iter()
        .any(|(metric_name, value)| tracker.report(metric_name, value))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(value: f64, comparison: Comparison, start_step: u32) -> EarlyStoppingRule {
        EarlyStoppingRule {
            metric_name: "accuracy".into(),
            value,
            comparison,
            start_step,
        }
    }

    #[test]
    fn objective_rules_compare_the_best_value_from_start_step_on() {
        let objective = Objective::new(Direction::Maximize, "accuracy");
        let rules = [rule(0.5, Comparison::Less, 3)];
        // Reports 1 and 2 are below the threshold but not compared; report 3 is compared
        // with the best so far (0.4 < 0.5), so the trial stops there.
        let mut tracker = RuleTracker::new(rules.to_vec(), &objective);
        assert!(!tracker.report("accuracy", 0.1));
        assert!(!tracker.report("accuracy", 0.4));
        assert!(tracker.report("accuracy", 0.2));
        // A trial that once reached 0.6 is never stopped, though later values fall.
        assert!(!should_stop(
            &rules,
            &objective,
            [
                ("accuracy", 0.6),
                ("accuracy", 0.1),
                ("accuracy", 0.1),
                ("accuracy", 0.1)
            ]
        ));
        // Other metrics and non-finite values do not count as reports.
        assert!(!should_stop(
            &rules,
            &objective,
            [
                ("loss", 0.1),
                ("accuracy", f64::NAN),
                ("accuracy", 0.1),
                ("accuracy", 0.1)
            ]
        ));
    }

    #[test]
    fn minimizing_uses_the_lowest_value_and_every_rule_must_be_met() {
        let objective = Objective::new(Direction::Minimize, "loss");
        let rules = vec![
            EarlyStoppingRule {
                metric_name: "loss".into(),
                value: 1.0,
                comparison: Comparison::Greater,
                start_step: 1,
            },
            EarlyStoppingRule {
                metric_name: "epoch".into(),
                value: 2.0,
                comparison: Comparison::Equal,
                start_step: 1,
            },
        ];
        assert!(!should_stop(
            &rules,
            &objective,
            [("loss", 3.0), ("loss", 2.0)]
        ));
        assert!(should_stop(
            &rules,
            &objective,
            [("loss", 3.0), ("epoch", 1.0), ("epoch", 2.0)]
        ));
        assert!(!should_stop(
            &rules,
            &objective,
            [("loss", 0.5), ("loss", 3.0), ("epoch", 2.0)]
        ));
        assert!(!should_stop(&[], &objective, [("loss", 3.0)]));
    }

    #[test]
    fn unknown_algorithms_are_named() {
        let error = build_early_stopping("meanstop", &[]).expect_err("unknown");
        assert!(error.to_string().contains("medianstop"));
    }
}
