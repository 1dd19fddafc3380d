//! A synthetic learning-curve benchmark (feature `test-functions`) for asynchronous successive
//! halving: how many epochs the early stopping saves, and what it costs in the best final
//! value, against running every trial to the end.
//!
//! A configuration `(x0, x1, x2)`, drawn uniformly from `[0, 1]^3`, trains to the accuracy
//! `final * (1 - exp(-epoch / tau)) + noise` after `epoch` epochs, with
//! `final = 0.9 - 0.4 (x0 - 0.3)^2 - 0.2 (x1 - 0.6)^2` and a time constant `tau` between 1 and
//! 7 epochs, so that curves cross and stopping on early values has something to get wrong.
//! [`Speed`] says what sets `tau`: a hyperparameter of its own (`x2`, as a batch size sets
//! how fast a model learns but not how well), or `x1`, so that the best configurations learn
//! at about two thirds of the slowest speed, the case that early stopping gets wrong most. The
//! noise is Gaussian with deviation [`Benchmark::noise`], drawn once per configuration and
//! epoch, so both runs see the same observations (common random numbers).
//!
//! Both runs train the same configurations on the same workers: the full run trains every one
//! for every epoch; the early-stopped run takes them in the same order, `workers` at a time,
//! one epoch per worker per tick, and reports each epoch's accuracy to a
//! [`RungTracker`] over one shared [`RungTable`] (the local driver's live enforcement, not a
//! copy of it), ending a trial the moment it loses at a rung. The score of a run is the best
//! final (last-epoch) accuracy among its trials that trained every epoch.

use std::sync::{Arc, Mutex};

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::early_stopping::successive_halving::{
    ASHA_NAME, RungTable, RungTracker, SuccessiveHalving,
};
use crate::objective::{Direction, Objective};
use crate::pbt_benchmark::standard_normal;
use crate::settings::{Setting, SettingsError};

/// The size of one benchmark run.
#[derive(Debug, Clone, Copy)]
pub struct Benchmark {
    /// Configurations, each one trial.
    pub trials: usize,
    /// Epochs of a trial that runs to the end.
    pub epochs: u32,
    /// Trials trained at once.
    pub workers: usize,
    /// The deviation of each observation's noise.
    pub noise: f64,
    /// What sets how fast a configuration learns.
    pub speed: Speed,
}

/// What sets a configuration's time constant `tau`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Speed {
    /// `tau = 1 + 6 x2`: a hyperparameter that does not change the final accuracy.
    Independent,
    /// `tau = 1 + 6 x1`: the best configurations (`x1 = 0.6`) learn at `tau` 4.6 while the
    /// fastest (`x1 = 0`) reach a lower final accuracy.
    TiedToQuality,
}

/// The benchmark the README quotes: 81 configurations of up to 27 epochs on 8 workers, noise
/// 0.01, speed a hyperparameter of its own.
pub const BENCHMARK: Benchmark = Benchmark {
    trials: 81,
    epochs: 27,
    workers: 8,
    noise: 0.01,
    speed: Speed::Independent,
};

/// What one run spent and found.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Outcome {
    /// Epochs trained, over every trial.
    pub epochs: u64,
    /// The best final accuracy among the trials that trained every epoch.
    pub best_final: f64,
    /// Trials that trained every epoch.
    pub completed: usize,
}

/// The full run and the early-stopped run on the configurations of `seed`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Comparison {
    /// Every trial to the end.
    pub full: Outcome,
    /// Asynchronous successive halving.
    pub early_stopped: Outcome,
}

/// Runs both on the configurations and noise of `seed`, with successive halving's `settings`.
pub fn compare(
    benchmark: Benchmark,
    settings: &[Setting],
    seed: u64,
) -> Result<Comparison, SettingsError> {
    let algorithm = SuccessiveHalving::from_settings(ASHA_NAME, settings)?;
    let curves = observed_curves(benchmark, seed);
    Ok(Comparison {
        full: full_run(&curves),
        early_stopped: early_stopped_run(benchmark, algorithm, &curves),
    })
}

/// The comparisons over several seeds, and the figures the README quotes.
#[derive(Debug, Clone, PartialEq)]
pub struct Summary {
    /// The deviation of the observations' noise.
    pub noise: f64,
    /// One comparison per seed, in seed order.
    pub comparisons: Vec<(u64, Comparison)>,
}

impl Summary {
    /// The largest share of the full run's epochs that the early-stopped run spent.
    pub fn largest_epoch_ratio(&self) -> f64 {
        self.comparisons
            .iter()
            .map(|(_, comparison)| epoch_ratio(comparison))
            .fold(0.0, f64::max)
    }

    /// Per seed, how far the early-stopped run's best final accuracy fell short of the full
    /// run's (negative when it was higher), sorted.
    pub fn gaps(&self) -> Vec<f64> {
        let mut gaps: Vec<f64> = self
            .comparisons
            .iter()
            .map(|(_, comparison)| comparison.full.best_final - comparison.early_stopped.best_final)
            .collect();
        gaps.sort_by(f64::total_cmp);
        gaps
    }

    /// The median of [`Summary::gaps`].
    pub fn median_gap(&self) -> f64 {
        let gaps = self.gaps();
        let middle = gaps.len() / 2;
        match gaps.len() {
            0 => 0.0,
            count if count % 2 == 1 => gaps[middle],
            _ => (gaps[middle - 1] + gaps[middle]) / 2.0,
        }
    }

    /// The largest of [`Summary::gaps`].
    pub fn largest_gap(&self) -> f64 {
        self.gaps().last().copied().unwrap_or(0.0)
    }
}

impl std::fmt::Display for Summary {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for (seed, comparison) in &self.comparisons {
            writeln!(
                formatter,
                "seed {seed}: epochs {} of {} ({:.3}), trials to the end {} of {}, best final \
                 {:.4} vs {:.4} (gap {:.4})",
                comparison.early_stopped.epochs,
                comparison.full.epochs,
                epoch_ratio(comparison),
                comparison.early_stopped.completed,
                comparison.full.completed,
                comparison.early_stopped.best_final,
                comparison.full.best_final,
                comparison.full.best_final - comparison.early_stopped.best_final,
            )?;
        }
        write!(
            formatter,
            "largest epoch ratio {:.3}; best-final gap median {:.4}, largest {:.4} (noise \
             deviation {})",
            self.largest_epoch_ratio(),
            self.median_gap(),
            self.largest_gap(),
            self.noise
        )
    }
}

/// [`compare`] on each of `seeds`.
pub fn summarize(
    benchmark: Benchmark,
    settings: &[Setting],
    seeds: std::ops::Range<u64>,
) -> Result<Summary, SettingsError> {
    Ok(Summary {
        noise: benchmark.noise,
        comparisons: seeds
            .map(|seed| Ok((seed, compare(benchmark, settings, seed)?)))
            .collect::<Result<_, SettingsError>>()?,
    })
}

fn epoch_ratio(comparison: &Comparison) -> f64 {
    comparison.early_stopped.epochs as f64 / comparison.full.epochs as f64
}

/// Each configuration's observed accuracy after epochs 1, 2, ..., in the order trials start.
fn observed_curves(benchmark: Benchmark, seed: u64) -> Vec<Vec<f64>> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    (0..benchmark.trials)
        .map(|_| {
            let (x0, x1, x2): (f64, f64, f64) = (rng.random(), rng.random(), rng.random());
            let final_accuracy = 0.9 - 0.4 * (x0 - 0.3).powi(2) - 0.2 * (x1 - 0.6).powi(2);
            let tau = 1.0
                + 6.0
                    * match benchmark.speed {
                        Speed::Independent => x2,
                        Speed::TiedToQuality => x1,
                    };
            (1..=benchmark.epochs)
                .map(|epoch| {
                    final_accuracy * (1.0 - (-f64::from(epoch) / tau).exp())
                        + benchmark.noise * standard_normal(&mut rng)
                })
                .collect()
        })
        .collect()
}

fn full_run(curves: &[Vec<f64>]) -> Outcome {
    Outcome {
        epochs: curves.iter().map(|curve| curve.len() as u64).sum(),
        best_final: curves
            .iter()
            .filter_map(|curve| curve.last().copied())
            .fold(f64::NEG_INFINITY, f64::max),
        completed: curves.len(),
    }
}

fn early_stopped_run(
    benchmark: Benchmark,
    algorithm: SuccessiveHalving,
    curves: &[Vec<f64>],
) -> Outcome {
    struct Running {
        trial: usize,
        epochs_done: usize,
        tracker: RungTracker,
    }
    let objective = Objective::new(Direction::Maximize, "accuracy");
    let table = Arc::new(Mutex::new(RungTable::new(algorithm, objective)));
    let mut waiting = 0..curves.len();
    let mut running: Vec<Running> = Vec::new();
    let mut outcome = Outcome {
        epochs: 0,
        best_final: f64::NEG_INFINITY,
        completed: 0,
    };
    loop {
        while running.len() < benchmark.workers {
            let Some(trial) = waiting.next() else { break };
            running.push(Running {
                trial,
                epochs_done: 0,
                tracker: RungTracker::new(table.clone()),
            });
        }
        if running.is_empty() {
            return outcome;
        }
        // One tick: every running trial trains one epoch and reports it, in worker order.
        running.retain_mut(|run| {
            let curve = &curves[run.trial];
            let accuracy = curve[run.epochs_done];
            run.epochs_done += 1;
            outcome.epochs += 1;
            let stopped = run.tracker.report("accuracy", accuracy);
            if run.epochs_done == curve.len() {
                // Its last epoch is reported whether or not it lost at a rung there.
                outcome.completed += 1;
                outcome.best_final = outcome.best_final.max(accuracy);
                return false;
            }
            !stopped
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn without_a_reachable_rung_nothing_is_stopped() {
        let benchmark = Benchmark {
            trials: 10,
            epochs: 5,
            workers: 3,
            noise: 0.01,
            speed: Speed::Independent,
        };
        // The first rung is at epoch 6, past the last.
        let comparison = compare(benchmark, &[Setting::new("min_resource", "6")], 1).expect("ok");
        assert_eq!(comparison.early_stopped, comparison.full);
        assert_eq!(comparison.full.epochs, 50);
        assert_eq!(comparison.full.completed, 10);
    }
}
