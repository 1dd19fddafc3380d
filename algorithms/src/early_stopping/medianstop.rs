//! Median stopping (Golovin et al., "Google Vizier: A Service for Black-Box Optimization",
//! KDD 2017, §3.2.2): stop a trial whose best objective value so far is worse than the median
//! of what completed trials had reached by the same point.
//!
//! # The rule, exactly
//!
//! Settings: `min_trials_required` (default 3, an integer > 0) and `start_step` (default 4, an
//! integer >= 1); any other setting is rejected.
//!
//! 1. The completed trials are those with condition Succeeded (as in Katib: early-stopped
//!    trials have truncated curves and would bias the threshold down; failed trials have none).
//! 2. Each completed trial's *running average* is the arithmetic mean of its first
//!    `start_step` objective values in report order (all of them when it reported fewer);
//!    trials without a numeric objective value are left out.
//! 3. With fewer than `min_trials_required` such trials there is no rule. Otherwise the
//!    threshold is the **median** of the running averages (the mean of the two middle values
//!    for an even count), and the one rule is `{metric: objective, value: threshold,
//!    comparison: LESS when maximizing / GREATER when minimizing, start_step}`.
//! 4. A trial carrying the rule stops once its best value so far, compared from its
//!    `start_step`-th report on, is worse than the threshold ([`super::RuleTracker`]).
//!
//! **Difference from Katib.** Katib's `medianstop` service computes the threshold as the
//! arithmetic *mean* of the per-trial averages (its code divides the sum by the count), although
//! the algorithm and its paper use the median. Sextant uses the median, which one diverged or
//! very good trial cannot drag, so it stops the trials the paper would stop. Katib also caches
//! the averages of trials it has seen between calls; Sextant recomputes them from the request,
//! which gives the same numbers without state.

use crate::early_stopping::{
    Comparison, EarlyStoppingAlgorithm, EarlyStoppingRule, TrialObservations,
};
use crate::history::TrialCondition;
use crate::objective::Objective;
use crate::settings::{Setting, SettingsError, SettingsReader};

/// Katib's name of the algorithm.
pub const NAME: &str = "medianstop";

/// `min_trials_required` when not set.
pub const DEFAULT_MIN_TRIALS_REQUIRED: u32 = 3;

/// `start_step` when not set.
pub const DEFAULT_START_STEP: u32 = 4;

/// Median stopping with its settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MedianStop {
    /// Completed trials needed before any rule is given.
    pub min_trials_required: u32,
    /// How many leading values form a trial's running average, and the report from which a
    /// running trial is compared.
    pub start_step: u32,
}

impl Default for MedianStop {
    fn default() -> Self {
        MedianStop {
            min_trials_required: DEFAULT_MIN_TRIALS_REQUIRED,
            start_step: DEFAULT_START_STEP,
        }
    }
}

impl MedianStop {
    /// Parses Katib's settings, naming the setting and its rule on error.
    pub fn from_settings(settings: &[Setting]) -> Result<MedianStop, SettingsError> {
        let mut reader = SettingsReader::new(NAME, settings);
        let min_trials_required = reader
            .parse::<u32>(
                "min_trials_required",
                "must be greater than zero (>0)",
                |value| *value > 0,
            )?
            .unwrap_or(DEFAULT_MIN_TRIALS_REQUIRED);
        let start_step = reader
            .parse::<u32>(
                "start_step",
                "must be greater or equal than one (>=1)",
                |value| *value >= 1,
            )?
            .unwrap_or(DEFAULT_START_STEP);
        reader.finish()?;
        Ok(MedianStop {
            min_trials_required,
            start_step,
        })
    }

    /// The threshold: the median of the completed trials' running averages, or `None` with
    /// fewer than `min_trials_required` of them.
    pub fn threshold(&self, trials: &[TrialObservations]) -> Option<f64> {
        let mut averages: Vec<f64> = trials
            .iter()
            .filter(|trial| trial.condition == TrialCondition::Succeeded)
            .filter_map(|trial| {
                let leading: Vec<f64> = trial
                    .objective_values
                    .iter()
                    .copied()
                    .filter(|value| value.is_finite())
                    .take(self.start_step as usize)
                    .collect();
                (!leading.is_empty()).then(|| leading.iter().sum::<f64>() / leading.len() as f64)
            })
            .collect();
        if averages.is_empty() || averages.len() < self.min_trials_required as usize {
            return None;
        }
        averages.sort_by(f64::total_cmp);
        let middle = averages.len() / 2;
        Some(if averages.len() % 2 == 1 {
            averages[middle]
        } else {
            (averages[middle - 1] + averages[middle]) / 2.0
        })
    }
}

impl EarlyStoppingAlgorithm for MedianStop {
    fn name(&self) -> &'static str {
        NAME
    }

    fn rules(&self, objective: &Objective, trials: &[TrialObservations]) -> Vec<EarlyStoppingRule> {
        self.threshold(trials)
            .map(|value| EarlyStoppingRule {
                metric_name: objective.metric_name.clone(),
                value,
                comparison: Comparison::worse_than(objective.direction),
                start_step: self.start_step,
            })
            .into_iter()
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::early_stopping::should_stop;
    use crate::objective::Direction;

    fn trial(name: &str, condition: TrialCondition, values: &[f64]) -> TrialObservations {
        TrialObservations::new(name, condition, values)
    }

    #[test]
    fn settings_default_and_reject_with_katibs_rules() {
        assert_eq!(MedianStop::from_settings(&[]), Ok(MedianStop::default()));
        let parsed = MedianStop::from_settings(&[
            Setting::new("min_trials_required", "5"),
            Setting::new("start_step", "1"),
        ])
        .expect("valid");
        assert_eq!(parsed.min_trials_required, 5);
        assert_eq!(parsed.start_step, 1);
        let error = MedianStop::from_settings(&[Setting::new("min_trials_required", "0")])
            .expect_err("zero");
        assert_eq!(
            error.to_string(),
            r#"setting min_trials_required: value "0" must be greater than zero (>0)"#
        );
        let error =
            MedianStop::from_settings(&[Setting::new("start_step", "0")]).expect_err("zero");
        assert!(error.to_string().contains("start_step"));
        assert!(error.to_string().contains(">=1"));
        let error =
            MedianStop::from_settings(&[Setting::new("start_step", "two")]).expect_err("text");
        assert!(error.to_string().contains("start_step"));
        let error = MedianStop::from_settings(&[Setting::new("min_trial_required", "2")])
            .expect_err("typo");
        assert!(
            error
                .to_string()
                .contains("unknown setting \"min_trial_required\"")
        );
    }

    #[test]
    fn the_threshold_is_the_median_of_leading_averages_of_succeeded_trials() {
        let algorithm = MedianStop {
            min_trials_required: 3,
            start_step: 2,
        };
        let objective = Objective::new(Direction::Maximize, "accuracy");
        let mut trials = vec![
            trial("a", TrialCondition::Succeeded, &[0.2, 0.4, 0.9]),
            trial("b", TrialCondition::Succeeded, &[0.5, 0.7]),
            trial("c", TrialCondition::EarlyStopped, &[0.0, 0.0]),
            trial("d", TrialCondition::Running, &[0.9, 0.9]),
            trial("e", TrialCondition::Succeeded, &[]),
        ];
        assert!(algorithm.rules(&objective, &trials).is_empty());
        // A diverged trial: the mean of averages (Katib) would be dragged to about -33; the
        // median stays at the middle trial.
        trials.push(trial(
            "f",
            TrialCondition::Succeeded,
            &[-100.0, f64::NAN, -100.0],
        ));
        let rules = algorithm.rules(&objective, &trials);
        assert_eq!(rules.len(), 1);
        assert_eq!(rules[0].metric_name, "accuracy");
        assert!((rules[0].value - 0.3).abs() < 1e-12, "{rules:?}");
        assert_eq!(rules[0].comparison, Comparison::Less);
        assert_eq!(rules[0].start_step, 2);
        trials.push(trial("g", TrialCondition::Succeeded, &[1.0]));
        let rules = algorithm.rules(&objective, &trials);
        assert!((rules[0].value - 0.45).abs() < 1e-12);

        let minimizing = Objective::new(Direction::Minimize, "accuracy");
        assert_eq!(
            algorithm.rules(&minimizing, &trials)[0].comparison,
            Comparison::Greater
        );
        assert!(should_stop(
            &rules,
            &objective,
            [("accuracy", 0.1), ("accuracy", 0.2)]
        ));
        assert!(!should_stop(
            &rules,
            &objective,
            [("accuracy", 0.5), ("accuracy", 0.2)]
        ));
    }
}
