//! Asynchronous successive halving (Li et al., "A System for Massively Parallel Hyperparameter
//! Tuning", MLSys 2020, Algorithm 2), the rule of Optuna's `SuccessiveHalvingPruner`: a trial
//! is stopped at a rung unless its value there is among the best `1 / reduction_factor` of the
//! values recorded at that rung so far.
//!
//! # Names
//!
//! `successivehalving` and `asha` are two names of this one algorithm: one bracket of
//! successive halving, run asynchronously (a trial is judged when it reaches a rung, against
//! the trials that reached it before, without waiting for a full rung). `asha` is the paper's
//! name, `successivehalving` Optuna's. Hyperband's several brackets (Optuna's
//! `HyperbandPruner`) are not offered as early stopping.
//!
//! # The rule, exactly
//!
//! Settings (Optuna's names; any other setting is rejected):
//! - `min_resource` (default 1, an integer from 1 to 2147483647): the paper's `r`.
//! - `reduction_factor` (default 4, Optuna's default, an integer >= 2): the paper's `eta`.
//! - `min_early_stopping_rate` (default 0, an integer >= 0): the paper's `s`.
//!
//! The first rung, `min_resource * reduction_factor^min_early_stopping_rate`, must be at most
//! 2147483647, the largest `start_step` Katib's rule message carries.
//!
//! 1. The *resource* is the 1-based index of a trial's reports of the objective metric, as
//!    `medianstop`'s `start_step` counts them (Katib's observation log has no step field);
//!    non-numeric and non-finite reports do not count.
//! 2. Rung `k` (from 0) is at report `min_resource * reduction_factor^(min_early_stopping_rate
//!    + k)`.
//! 3. A trial's value at a rung is the best objective value it reported up to and including
//!    that report: the quantity Katib's rule enforcement compares ([`super::RuleTracker`]), so
//!    that the local driver and Katib's protocol judge the same number. (Optuna records the
//!    value reported at that step.)
//! 4. When a trial reaches a rung with value `v`, the competing values are those recorded at
//!    that rung before (by every trial that reached it: running, finished or stopped) and `v`.
//!    It goes on when `v` is among the best `max(floor(n / reduction_factor), 1)` of those `n`
//!    values, ties in its favour, and is stopped otherwise; either way `v` is recorded. A trial
//!    alone at a rung goes on, as does one best so far while fewer than `reduction_factor`
//!    trials reached it (Optuna's rule, since a trial cannot be paused to wait for more).
//!
//! A rung at a trial's last report is a rung like any other: as in Optuna, a trial that ends
//! there and loses is `EarlyStopped` although it did all its work (early-stopped trials still
//! count for the optimal trial). Choose the settings so that the last report is not a rung to
//! avoid it.
//!
//! # Where it is enforced
//!
//! - **Live** (the local driver, which sees every trial's metrics as they arrive): one
//!   [`RungTable`] per experiment, shared by the trials' [`RungTracker`]s, applies step 4 at
//!   the moment each report arrives. This is the paper's algorithm.
//! - **Rules** (Katib's protocol: the gRPC `GetEarlyStoppingRules` and the Kubernetes
//!   controller): rules are computed once, when a trial is created, and its enforcement stops a
//!   trial only when *every* rule is met, so rules on several rungs would stop a trial only if
//!   it lost at all of them. [`SuccessiveHalving::rules`] therefore gives one rule, for the
//!   first rung: stop when the best value so far at that report is worse than the cutoff the
//!   trial would have to reach among the values recorded there by the trials known at
//!   creation. The differences from the live rule: values recorded at the first rung between
//!   the trial's creation and its arrival there are not counted, and the later rungs are not
//!   enforced (a trial past the first rung runs to its end).

use std::sync::{Arc, Mutex};

use crate::early_stopping::{
    Comparison, EarlyStoppingAlgorithm, EarlyStoppingRule, TrialObservations,
};
use crate::history::TrialCondition;
use crate::objective::Objective;
use crate::settings::{Setting, SettingsError, SettingsReader};

/// Optuna's name of the algorithm.
pub const NAME: &str = "successivehalving";

/// The paper's name of the same algorithm.
pub const ASHA_NAME: &str = "asha";

/// `min_resource` when not set.
pub const DEFAULT_MIN_RESOURCE: u32 = 1;

/// `reduction_factor` when not set (Optuna's default).
pub const DEFAULT_REDUCTION_FACTOR: u32 = 4;

/// `min_early_stopping_rate` when not set.
pub const DEFAULT_MIN_EARLY_STOPPING_RATE: u32 = 0;

/// The largest first rung: Katib's `EarlyStoppingRule.start_step` is an `int32`.
const MAX_FIRST_RUNG: u64 = i32::MAX as u64;

/// Asynchronous successive halving with its settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SuccessiveHalving {
    /// The name it was built under ([`NAME`] or [`ASHA_NAME`]).
    name: &'static str,
    /// The paper's `r`: the resource unit of the rungs.
    pub min_resource: u32,
    /// The paper's `eta`: a rung keeps the best `1 / reduction_factor` of its trials.
    pub reduction_factor: u32,
    /// The paper's `s`: the first rung is `reduction_factor^min_early_stopping_rate` units.
    pub min_early_stopping_rate: u32,
}

impl SuccessiveHalving {
    /// Parses Optuna's settings for the algorithm named `name`, naming the setting and its rule
    /// on error.
    pub fn from_settings(
        name: &'static str,
        settings: &[Setting],
    ) -> Result<SuccessiveHalving, SettingsError> {
        let mut reader = SettingsReader::new(name, settings);
        let min_resource = reader
            .parse::<u32>(
                "min_resource",
                "must be an integer from 1 to 2147483647",
                |value| *value >= 1 && u64::from(*value) <= MAX_FIRST_RUNG,
            )?
            .unwrap_or(DEFAULT_MIN_RESOURCE);
        let reduction_factor = reader
            .parse::<u32>("reduction_factor", "must be an integer >= 2", |value| {
                *value >= 2
            })?
            .unwrap_or(DEFAULT_REDUCTION_FACTOR);
        let min_early_stopping_rate_text = reader.raw("min_early_stopping_rate");
        let min_early_stopping_rate = reader
            .parse::<u32>("min_early_stopping_rate", "must be an integer >= 0", |_| {
                true
            })?
            .unwrap_or(DEFAULT_MIN_EARLY_STOPPING_RATE);
        reader.finish()?;
        let algorithm = SuccessiveHalving {
            name,
            min_resource,
            reduction_factor,
            min_early_stopping_rate,
        };
        if algorithm.rung_step(0).is_none() {
            // `min_resource` alone is in range, so the rate (given, as its default 0 keeps the
            // first rung at `min_resource`) is what pushes the first rung out.
            return Err(SettingsError::InvalidValue {
                setting: "min_early_stopping_rate".into(),
                value: min_early_stopping_rate_text
                    .map_or_else(|| min_early_stopping_rate.to_string(), str::to_string),
                rule: format!(
                    "makes the first rung, min_resource * reduction_factor^min_early_stopping_rate \
                     = {min_resource} * {reduction_factor}^{min_early_stopping_rate}, exceed \
                     {MAX_FIRST_RUNG} reports"
                ),
            });
        }
        Ok(algorithm)
    }

    /// The report (1-based) at which rung `rung` is, or `None` past the first rung beyond
    /// [`i32::MAX`], which no trial reaches.
    pub fn rung_step(&self, rung: u32) -> Option<u64> {
        let exponent = self.min_early_stopping_rate.checked_add(rung)?;
        let step = u64::from(self.reduction_factor)
            .checked_pow(exponent)?
            .checked_mul(u64::from(self.min_resource))?;
        (step <= MAX_FIRST_RUNG).then_some(step)
    }

    /// The rung at report `step`, if one is there.
    pub fn rung_at(&self, step: u64) -> Option<u32> {
        (0..)
            .map_while(|rung| Some((rung, self.rung_step(rung)?)))
            .take_while(|(_, rung_step)| *rung_step <= step)
            .find(|(_, rung_step)| *rung_step == step)
            .map(|(rung, _)| rung)
    }

    /// The value a trial that reported `values` (the objective's, in order) recorded at `rung`:
    /// its best value up to that report, or `None` if it did not get there.
    pub fn rung_value(&self, objective: &Objective, values: &[f64], rung: u32) -> Option<f64> {
        let step = usize::try_from(self.rung_step(rung)?).ok()?;
        let reached: Vec<f64> = values
            .iter()
            .copied()
            .filter(|value| value.is_finite())
            .take(step)
            .collect();
        (reached.len() == step)
            .then(|| best_of(objective, &reached))
            .flatten()
    }

    /// The value a trial arriving at a rung must reach (or beat) to go on, given the values
    /// `others` recorded there before it; `None` when it goes on whatever its value (no other
    /// trial is there yet).
    pub fn cutoff(&self, objective: &Objective, others: &[f64]) -> Option<f64> {
        if others.is_empty() {
            return None;
        }
        let mut ranked = others.to_vec();
        ranked.sort_by(|a, b| objective.loss(*a).total_cmp(&objective.loss(*b)));
        // The arriving trial goes on when it is among the best `slots` of the others and
        // itself; that is, when it is no worse than the `slots`-th best of the others alone.
        let competing = others.len() + 1;
        let slots = (competing / self.reduction_factor as usize).max(1);
        Some(ranked[slots - 1])
    }

    /// Whether a trial arriving at a rung with `value` goes on, given the values `others`
    /// recorded there before it.
    pub fn promoted(&self, objective: &Objective, value: f64, others: &[f64]) -> bool {
        self.cutoff(objective, others)
            .is_none_or(|cutoff| !objective.is_better(cutoff, value))
    }
}

impl EarlyStoppingAlgorithm for SuccessiveHalving {
    fn name(&self) -> &'static str {
        self.name
    }

    /// Every trial that reached the first rung counts, whatever its condition: the competing
    /// values of a rung are all the values recorded there. A trial only created has reported
    /// nothing.
    fn reads(&self, condition: TrialCondition) -> bool {
        condition != TrialCondition::Created
    }

    fn rules(&self, objective: &Objective, trials: &[TrialObservations]) -> Vec<EarlyStoppingRule> {
        let Some(first_rung) = self.rung_step(0) else {
            return Vec::new();
        };
        let recorded: Vec<f64> = trials
            .iter()
            .filter_map(|trial| self.rung_value(objective, &trial.objective_values, 0))
            .collect();
        self.cutoff(objective, &recorded)
            .map(|value| EarlyStoppingRule {
                metric_name: objective.metric_name.clone(),
                value,
                comparison: Comparison::worse_than(objective.direction),
                // Proven by `rung_step`: the first rung is at most `i32::MAX`.
                start_step: u32::try_from(first_rung).unwrap_or(u32::MAX),
            })
            .into_iter()
            .collect()
    }

    fn as_successive_halving(&self) -> Option<&SuccessiveHalving> {
        Some(self)
    }
}

/// The values recorded at each rung of one experiment, shared by its running trials: the live
/// state of the algorithm.
#[derive(Debug, Clone)]
pub struct RungTable {
    algorithm: SuccessiveHalving,
    objective: Objective,
    /// The values recorded at rung `k`, in arrival order.
    rungs: Vec<Vec<f64>>,
}

impl RungTable {
    /// An empty table.
    pub fn new(algorithm: SuccessiveHalving, objective: Objective) -> RungTable {
        RungTable {
            algorithm,
            objective,
            rungs: Vec::new(),
        }
    }

    /// A table holding what `trials` recorded at every rung they reached, e.g. the finished
    /// trials of a resumed experiment.
    pub fn from_trials(
        algorithm: SuccessiveHalving,
        objective: Objective,
        trials: &[TrialObservations],
    ) -> RungTable {
        let mut table = RungTable::new(algorithm, objective);
        for trial in trials {
            for rung in 0.. {
                let Some(value) =
                    table
                        .algorithm
                        .rung_value(&table.objective, &trial.objective_values, rung)
                else {
                    break;
                };
                table.reach(rung, value);
            }
        }
        table
    }

    /// A trial reaches `rung` with `value`: records it and says whether the trial goes on.
    pub fn reach(&mut self, rung: u32, value: f64) -> bool {
        let index = rung as usize;
        if self.rungs.len() <= index {
            self.rungs.resize_with(index + 1, Vec::new);
        }
        let promoted = self
            .algorithm
            .promoted(&self.objective, value, &self.rungs[index]);
        self.rungs[index].push(value);
        promoted
    }

    /// The values recorded at `rung` so far.
    pub fn values(&self, rung: u32) -> &[f64] {
        self.rungs.get(rung as usize).map_or(&[], Vec::as_slice)
    }
}

/// One trial's view of a shared [`RungTable`]: fed the trial's reports one at a time, it
/// records the trial's value at each rung it reaches and says when the trial lost.
#[derive(Debug, Clone)]
pub struct RungTracker {
    table: Arc<Mutex<RungTable>>,
    algorithm: SuccessiveHalving,
    objective: Objective,
    reports: u64,
    best: Option<f64>,
    stopped: bool,
}

impl RungTracker {
    /// A tracker for a trial that has reported nothing yet.
    pub fn new(table: Arc<Mutex<RungTable>>) -> RungTracker {
        let (algorithm, objective) = {
            let table = lock(&table);
            (table.algorithm.clone(), table.objective.clone())
        };
        RungTracker {
            table,
            algorithm,
            objective,
            reports: 0,
            best: None,
            stopped: false,
        }
    }

    /// Records one reported value of `metric_name`; returns whether the trial should now stop.
    /// Other metrics and non-finite values do not count as reports; a stopped trial records
    /// nothing more, though its process may report a little more before it ends.
    pub fn report(&mut self, metric_name: &str, value: f64) -> bool {
        if self.stopped || metric_name != self.objective.metric_name || !value.is_finite() {
            return self.stopped;
        }
        self.reports += 1;
        let best = match self.best {
            Some(best) if !self.objective.is_better(value, best) => best,
            _ => value,
        };
        self.best = Some(best);
        if let Some(rung) = self.algorithm.rung_at(self.reports) {
            self.stopped = !lock(&self.table).reach(rung, best);
        }
        self.stopped
    }
}

/// Locks the shared table.
fn lock(table: &Mutex<RungTable>) -> std::sync::MutexGuard<'_, RungTable> {
    // `reach` is the only writer and cannot panic between its resize and its push, so a
    // poisoned lock still guards a consistent table.
    table
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// The best of `values` for `objective`.
fn best_of(objective: &Objective, values: &[f64]) -> Option<f64> {
    values.iter().copied().reduce(|best, value| {
        if objective.is_better(value, best) {
            value
        } else {
            best
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::early_stopping::{build_early_stopping, should_stop};
    use crate::objective::Direction;

    fn build(settings: &[(&str, &str)]) -> Result<SuccessiveHalving, SettingsError> {
        let settings: Vec<Setting> = settings
            .iter()
            .map(|(name, value)| Setting::new(*name, *value))
            .collect();
        SuccessiveHalving::from_settings(ASHA_NAME, &settings)
    }

    fn trial(name: &str, condition: TrialCondition, values: &[f64]) -> TrialObservations {
        TrialObservations::new(name, condition, values)
    }

    #[test]
    fn settings_default_to_optunas_and_reject_out_of_range_values() {
        let defaults = build(&[]).expect("defaults");
        assert_eq!(
            (
                defaults.min_resource,
                defaults.reduction_factor,
                defaults.min_early_stopping_rate
            ),
            (1, 4, 0)
        );
        let parsed = build(&[
            ("min_resource", "2"),
            ("reduction_factor", "3"),
            ("min_early_stopping_rate", "1"),
        ])
        .expect("valid");
        assert_eq!(parsed.rung_step(0), Some(6));
        assert_eq!(parsed.rung_step(2), Some(54));
        for (setting, value, rule) in [
            ("min_resource", "0", "from 1 to 2147483647"),
            ("min_resource", "1.5", "from 1 to"),
            ("min_resource", "2147483648", "from 1 to"),
            ("reduction_factor", "1", ">= 2"),
            ("reduction_factor", "-3", ">= 2"),
            ("min_early_stopping_rate", "-1", ">= 0"),
            ("min_early_stopping_rate", "40", "exceed 2147483647"),
        ] {
            let error = build(&[(setting, value)]).expect_err(setting).to_string();
            assert!(
                error.starts_with(&format!("setting {setting}: value \"{value}\"")),
                "{error}"
            );
            assert!(error.contains(rule), "{error}");
        }
        let error = build(&[("bootstrap_count", "2")]).expect_err("unknown");
        assert!(
            error
                .to_string()
                .contains("unknown setting \"bootstrap_count\" for algorithm asha"),
            "{error}"
        );
        for name in [NAME, ASHA_NAME] {
            assert_eq!(
                build_early_stopping(name, &[]).expect("registered").name(),
                name
            );
        }
    }

    #[test]
    fn rungs_are_geometric_from_the_first() {
        let algorithm = build(&[("min_resource", "2"), ("reduction_factor", "3")]).expect("ok");
        let rungs: Vec<(u64, u32)> = (1..=60)
            .filter_map(|step| Some((step, algorithm.rung_at(step)?)))
            .collect();
        assert_eq!(rungs, [(2, 0), (6, 1), (18, 2), (54, 3)]);
        let objective = Objective::new(Direction::Minimize, "loss");
        let values = [5.0, f64::NAN, 3.0, 4.0, 1.0, 2.0, 0.5];
        assert_eq!(algorithm.rung_value(&objective, &values, 0), Some(3.0));
        assert_eq!(algorithm.rung_value(&objective, &values, 1), Some(0.5));
        assert_eq!(algorithm.rung_value(&objective, &values, 2), None);
    }

    #[test]
    fn a_rung_keeps_the_best_fraction_of_the_trials_that_reached_it_before() {
        let algorithm = build(&[("reduction_factor", "3")]).expect("ok");
        let objective = Objective::new(Direction::Maximize, "accuracy");
        let mut table = RungTable::new(algorithm, objective);
        // Alone, then best so far: goes on; fewer than three and not the best: stops.
        assert!(table.reach(0, 0.5));
        assert!(!table.reach(0, 0.4));
        assert!(table.reach(0, 0.6));
        // Four values with this one: one slot (the best), so 0.55 loses to 0.6 and a tie
        // with the best goes on.
        assert!(!table.reach(0, 0.55));
        assert!(table.reach(0, 0.6));
        // Six values with this one: two slots; the second best so far is 0.6.
        assert!(table.reach(0, 0.6));
        assert!(!table.reach(0, 0.59));
        assert_eq!(table.values(0), [0.5, 0.4, 0.6, 0.55, 0.6, 0.6, 0.59]);
        assert_eq!(table.values(1), [] as [f64; 0]);
    }

    #[test]
    fn trackers_judge_each_trial_when_it_reaches_a_rung() {
        let algorithm = build(&[("min_resource", "2"), ("reduction_factor", "2")]).expect("ok");
        let objective = Objective::new(Direction::Minimize, "loss");
        let table = Arc::new(Mutex::new(RungTable::new(algorithm, objective)));
        // Both trials start before either reports: the second is judged against a value the
        // first recorded after the second started, which a rule fixed at its creation could
        // not have seen.
        let mut first = RungTracker::new(table.clone());
        let mut second = RungTracker::new(table.clone());
        // The first reaches rung 0 (report 2) alone with its best value 1.0.
        assert!(!first.report("loss", 3.0));
        assert!(!first.report("accuracy", 9.0));
        assert!(!first.report("loss", f64::NAN));
        assert!(!first.report("loss", 1.0));
        // The second's best at report 2 is 2.0, worse than 1.0 with two competing values
        // (one slot): it stops, and records nothing after.
        assert!(!second.report("loss", 2.0));
        assert!(second.report("loss", 2.5));
        assert!(second.report("loss", 0.1));
        // The first goes on to rung 1 (report 4), alone there.
        assert!(!first.report("loss", 0.9));
        assert!(!first.report("loss", 0.8));
        let table = lock(&table);
        assert_eq!(table.values(0), [1.0, 2.0]);
        assert_eq!(table.values(1), [0.8]);
    }

    #[test]
    fn a_table_rebuilt_from_finished_trials_holds_their_rung_values() {
        let algorithm = build(&[("reduction_factor", "2")]).expect("ok");
        let objective = Objective::new(Direction::Maximize, "accuracy");
        let table = RungTable::from_trials(
            algorithm,
            objective,
            &[
                trial("a", TrialCondition::Succeeded, &[0.1, 0.3, 0.2, 0.4]),
                trial("b", TrialCondition::EarlyStopped, &[0.2]),
                trial("c", TrialCondition::Failed, &[]),
            ],
        );
        assert_eq!(table.values(0), [0.1, 0.2]);
        assert_eq!(table.values(1), [0.3]);
        assert_eq!(table.values(2), [0.4]);
        assert_eq!(table.values(3), [] as [f64; 0]);
    }

    #[test]
    fn the_rule_is_the_first_rungs_cutoff_among_every_trial_that_reached_it() {
        let algorithm = build(&[("min_resource", "2"), ("reduction_factor", "2")]).expect("ok");
        let objective = Objective::new(Direction::Maximize, "accuracy");
        let mut trials = vec![
            trial("a", TrialCondition::Running, &[0.1]),
            trial("b", TrialCondition::Created, &[]),
        ];
        // Nobody reached the first rung (report 2): no rule.
        assert!(algorithm.rules(&objective, &trials).is_empty());
        trials.push(trial("c", TrialCondition::EarlyStopped, &[0.3, 0.2]));
        trials.push(trial("d", TrialCondition::Running, &[0.1, 0.7, 0.9]));
        trials.push(trial("e", TrialCondition::Succeeded, &[0.5, 0.4, 0.8, 0.9]));
        // Values at the first rung: 0.3, 0.7, 0.5. With the new trial, four values and two
        // slots: it must reach the second best, 0.5.
        let rules = algorithm.rules(&objective, &trials);
        assert_eq!(
            rules,
            [EarlyStoppingRule {
                metric_name: "accuracy".into(),
                value: 0.5,
                comparison: Comparison::Less,
                start_step: 2,
            }]
        );
        // The rule agrees with the live decision at the first rung for any value.
        let others = [0.3, 0.7, 0.5];
        for value in [0.2, 0.49, 0.5, 0.6, 0.8] {
            assert_eq!(
                !should_stop(&rules, &objective, [("accuracy", 0.0), ("accuracy", value)]),
                algorithm.promoted(&objective, value, &others),
                "{value}"
            );
        }
        let minimizing = Objective::new(Direction::Minimize, "accuracy");
        let rules = algorithm.rules(&minimizing, &trials);
        assert_eq!(rules[0].comparison, Comparison::Greater);
        // Best (lowest) values at the first rung: 0.2, 0.1, 0.4; the second lowest is 0.2.
        assert_eq!(rules[0].value, 0.2);
    }
}
