//! The PBT toy problem (feature `test-functions`): Katib's `simple-pbt` example, after Ray
//! Tune's `pbt_example.py`, simulated in process so that `pbt` can be measured against random
//! search on the same budget.
//!
//! A member trains a model whose accuracy (0 to 100) rises fastest when its learning rate
//! follows a triangle wave of the accuracy itself: the best rate grows from 0.001 to 0.01 as
//! accuracy reaches 50 and falls back to 0.001 at 100. Each epoch adds `U / q` to the accuracy
//! when the rate is within a factor `q < 3` of the best, takes `(q - 3) U` off when it is more
//! than three times too large, and adds Gaussian noise of deviation 2 (`U` uniform on
//! `[0, 1)`). A fixed rate cannot follow the wave, so a schedule found by PBT should beat any
//! one rate drawn at random.
//!
//! Budget: `n_population` members for `generations` generations of `epochs` epochs each.
//! `pbt` continues each trial from its parent's checkpoint (accuracy and step); random search
//! draws `n_population` rates with the `random` algorithm and trains each for all
//! `generations * epochs` epochs, the paper's baseline of the same workers with fixed
//! hyperparameters. The score is the best final accuracy of the population.

use std::collections::HashMap;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::SuggestError;
use crate::algorithm::{BuildContext, SuggestRequest, Suggestions};
use crate::history::{TrialCondition, TrialRecord};
use crate::objective::{Direction, Objective};
use crate::registry::build_algorithm;
use crate::settings::Setting;
use crate::space::{Distribution, Domain, Parameter, SearchSpace, Value};

/// The budget and population of one run.
#[derive(Debug, Clone, Copy)]
pub struct Budget {
    /// Members of the population (and random configurations).
    pub n_population: usize,
    /// Generations, each one trial per member.
    pub generations: usize,
    /// Epochs per trial.
    pub epochs: usize,
}

/// A model's training state: what a checkpoint holds.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Checkpoint {
    /// Accuracy, 0 to 100.
    pub accuracy: f64,
    /// Epochs trained.
    pub step: u64,
}

/// The learning-rate parameter of Katib's `simple-pbt` example.
pub fn space() -> SearchSpace {
    SearchSpace::new(vec![Parameter {
        name: "lr".into(),
        domain: Domain::Double {
            min: 0.0001,
            max: 0.02,
            step: Some(0.0001),
            distribution: Distribution::Uniform,
        },
    }])
    // One parameter with a valid domain: construction cannot fail.
    .expect("a space of one valid parameter")
}

/// Trains `checkpoint` for `epochs` epochs at learning rate `lr`, drawing from `rng`.
pub fn train(checkpoint: Checkpoint, lr: f64, epochs: usize, rng: &mut impl Rng) -> Checkpoint {
    const MIDPOINT: f64 = 50.0;
    const TOLERANCE: f64 = 3.0;
    const NOISE: f64 = 2.0;
    let mut state = checkpoint;
    for _ in 0..epochs {
        let best = if state.accuracy < MIDPOINT {
            0.01 * state.accuracy / MIDPOINT
        } else {
            0.01 - 0.01 * (state.accuracy - MIDPOINT) / MIDPOINT
        }
        .clamp(0.001, 0.01);
        let q = lr.max(best) / (lr.min(best) + f64::EPSILON);
        if q < TOLERANCE {
            state.accuracy += rng.random::<f64>() / q;
        } else if lr > best {
            state.accuracy -= (q - TOLERANCE) * rng.random::<f64>();
        }
        state.accuracy += NOISE * standard_normal(rng);
        state.accuracy = state.accuracy.clamp(0.0, 100.0);
        state.step += 1;
    }
    state
}

/// Runs `pbt` with `settings` (the required ones besides `n_population` are filled in) on the
/// toy problem; returns the best final accuracy.
pub fn pbt_score(
    budget: Budget,
    truncation_threshold: f64,
    seed: u64,
) -> Result<f64, SuggestError> {
    let space = space();
    let objective = Objective::new(Direction::Maximize, "accuracy");
    let settings = [
        Setting::new("suggestion_trial_dir", "/checkpoints"),
        Setting::new("n_population", budget.n_population.to_string()),
        Setting::new("truncation_threshold", truncation_threshold.to_string()),
        Setting::new("random_state", seed.to_string()),
    ];
    let context = BuildContext {
        space: &space,
        objective: &objective,
        max_trial_count: None,
        parallel_trial_count: None,
    };
    let algorithm = build_algorithm("pbt", &settings, &context)
        .map_err(|error| SuggestError::Unsupported(error.to_string()))?;
    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0x5eed);
    let mut checkpoints: HashMap<String, Checkpoint> = HashMap::new();
    let mut history: Vec<TrialRecord> = Vec::new();
    let mut last = Vec::new();
    for _ in 0..budget.generations {
        let Suggestions { suggestions, .. } = algorithm.suggest(&SuggestRequest {
            space: &space,
            objective: &objective,
            trials: &history,
            count: budget.n_population,
            cancel: crate::cancel::Cancellation::never(),
        })?;
        last.clear();
        for suggestion in suggestions {
            let name = format!("trial-{}", history.len());
            let start = suggestion
                .labels
                .get(crate::pbt::PARENT_LABEL)
                .and_then(|parent| checkpoints.get(parent))
                .copied()
                .unwrap_or_default();
            let end = train(
                start,
                lr_of(&suggestion.assignment.values),
                budget.epochs,
                &mut rng,
            );
            checkpoints.insert(name.clone(), end);
            let mut trial =
                TrialRecord::new(name, suggestion.assignment, TrialCondition::Succeeded);
            trial.objective_value = Some(end.accuracy);
            trial.labels = suggestion.labels;
            history.push(trial);
            last.push(end.accuracy);
        }
    }
    Ok(last.into_iter().fold(f64::NEG_INFINITY, f64::max))
}

/// Random search on the same budget: `n_population` rates drawn by `random`, each trained for
/// every epoch of the budget; returns the best final accuracy.
pub fn random_score(budget: Budget, seed: u64) -> Result<f64, SuggestError> {
    let space = space();
    let objective = Objective::new(Direction::Maximize, "accuracy");
    let settings = [Setting::new("random_state", seed.to_string())];
    let context = BuildContext {
        space: &space,
        objective: &objective,
        max_trial_count: None,
        parallel_trial_count: None,
    };
    let algorithm = build_algorithm("random", &settings, &context)
        .map_err(|error| SuggestError::Unsupported(error.to_string()))?;
    let Suggestions { suggestions, .. } = algorithm.suggest(&SuggestRequest {
        space: &space,
        objective: &objective,
        trials: &[],
        count: budget.n_population,
        cancel: crate::cancel::Cancellation::never(),
    })?;
    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0x5eed);
    Ok(suggestions
        .iter()
        .map(|suggestion| {
            let lr = lr_of(&suggestion.assignment.values);
            train(
                Checkpoint::default(),
                lr,
                budget.generations * budget.epochs,
                &mut rng,
            )
            .accuracy
        })
        .fold(f64::NEG_INFINITY, f64::max))
}

fn lr_of(values: &[Value]) -> f64 {
    match values.first() {
        Some(Value::Double(lr)) => *lr,
        _ => 0.0,
    }
}

/// A standard normal draw (Box-Muller).
pub(crate) fn standard_normal(rng: &mut impl Rng) -> f64 {
    let u1: f64 = 1.0 - rng.random::<f64>();
    let u2: f64 = rng.random::<f64>();
    (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()
}
