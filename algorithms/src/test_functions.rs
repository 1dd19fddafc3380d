//! Standard test functions for judging search quality, and a loop that runs an algorithm on one.
//!
//! The continuous functions and their optima follow Surjanovic & Bingham, "Virtual Library of
//! Simulation Experiments: Test Functions and Datasets" (Simon Fraser University,
//! sfu.ca/~ssurjano); the mixed-space and conditional-space functions are our own (see
//! [`TestFunction::Mixed`] and [`TestFunction::Conditional`]). All
//! are minimized; *simple regret* is the best value found minus the known optimum. Quality
//! tests, the quality runner example and the benches share this module, so every figure is
//! measured the same way.

use std::f64::consts::{E, PI};

use crate::SuggestError;
use crate::algorithm::{BuildContext, SuggestRequest};
use crate::history::{TrialCondition, TrialRecord};
use crate::objective::{Direction, Objective};
use crate::registry::build_algorithm;
use crate::settings::Setting;
use crate::space::{Assignment, Distribution, Domain, Parameter, SearchSpace, Value};

/// A standard function on a box.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TestFunction {
    /// Branin-Hoo, 2-D on `[-5, 10] x [0, 15]`; three global minima of 0.397887.
    Branin,
    /// Hartmann, 6-D on `[0, 1]^6`; minimum -3.32237.
    Hartmann6,
    /// Rosenbrock, 5-D on `[-2, 2]^5`; minimum 0 at `(1, ..., 1)`.
    Rosenbrock,
    /// Ackley, 5-D on `[-5, 10]^5`; minimum 0 at the origin.
    Ackley,
    /// Levy, 4-D on `[-10, 10]^4`; minimum 0 at `(1, ..., 1)`.
    Levy,
    /// Styblinski-Tang, 8-D on `[-5, 5]^8`; minimum -39.16617 per dimension.
    StyblinskiTang,
    /// Our own mixed space, shaped like a model's hyperparameters: `x0` a double on `[0, 1]`,
    /// `x1` a log-uniform double on `[1e-5, 1]` (a learning rate), `x2` an int on `[1, 64]`,
    /// `x3` an int on `[1, 8]` and `x4` a four-way categorical. Each choice adds its own
    /// offset and moves the best `x1`, so the choice interacts with the log-scaled parameter;
    /// `x0` and `x1` are correlated. Minimum 0 at `(0.3, 10^-2.5, 24, 3, choice 1)`. Not in
    /// [`TestFunction::ALL`]; [`TestFunction::from_name`] knows it as `mixed`.
    Mixed,
    /// Our own conditional space, shaped like choosing a model family: `x` a double on
    /// `[0, 1]` always active, and `model` a categorical root choosing among sub-spaces of
    /// one, two and four parameters: `a0` (for `a`), `b0` and a log-uniform `b1` (for `b`),
    /// `c0`, `c1`, `c2` doubles and `c3` an int on `[1, 16]` (for `c`). Branches `a` and `b`
    /// are easy basins with floors 0.3 and 0.15; the minimum, 0, is in the four-dimensional
    /// branch `c` at `x = 0.4, c = (0.3, 0.7, 0.2, 11)`, which a search must find and then
    /// refine. Not in [`TestFunction::ALL`]; [`TestFunction::from_name`] knows it as
    /// `conditional`.
    Conditional,
}

impl TestFunction {
    /// Every function, in the order of the published comparison table.
    pub const ALL: [TestFunction; 6] = [
        TestFunction::Branin,
        TestFunction::Hartmann6,
        TestFunction::Rosenbrock,
        TestFunction::Ackley,
        TestFunction::Levy,
        TestFunction::StyblinskiTang,
    ];

    /// The function's name as the quality runner spells it.
    pub fn name(self) -> &'static str {
        match self {
            TestFunction::Branin => "branin",
            TestFunction::Hartmann6 => "hartmann6",
            TestFunction::Rosenbrock => "rosenbrock",
            TestFunction::Ackley => "ackley",
            TestFunction::Levy => "levy",
            TestFunction::StyblinskiTang => "styblinski-tang",
            TestFunction::Mixed => "mixed",
            TestFunction::Conditional => "conditional",
        }
    }

    /// Looks a function up by [`TestFunction::name`], the mixed-space and conditional ones
    /// included.
    pub fn from_name(name: &str) -> Option<TestFunction> {
        TestFunction::ALL
            .into_iter()
            .chain([TestFunction::Mixed, TestFunction::Conditional])
            .find(|f| f.name() == name)
    }

    /// The bounds of each dimension (for [`TestFunction::Mixed`] and
    /// [`TestFunction::Conditional`], a categorical's as its choice indices).
    pub fn bounds(self) -> Vec<(f64, f64)> {
        match self {
            TestFunction::Branin => vec![(-5.0, 10.0), (0.0, 15.0)],
            TestFunction::Hartmann6 => vec![(0.0, 1.0); 6],
            TestFunction::Rosenbrock => vec![(-2.0, 2.0); 5],
            TestFunction::Ackley => vec![(-5.0, 10.0); 5],
            TestFunction::Levy => vec![(-10.0, 10.0); 4],
            TestFunction::StyblinskiTang => vec![(-5.0, 5.0); 8],
            TestFunction::Mixed => vec![
                (0.0, 1.0),
                (1e-5, 1.0),
                (1.0, 64.0),
                (1.0, 8.0),
                (0.0, (MIXED_CHOICES.len() - 1) as f64),
            ],
            TestFunction::Conditional => vec![
                (0.0, 1.0),
                (0.0, 2.0),
                (0.0, 1.0),
                (0.0, 1.0),
                (1e-4, 1.0),
                (0.0, 1.0),
                (0.0, 1.0),
                (0.0, 1.0),
                (1.0, 16.0),
            ],
        }
    }

    /// The global minimum.
    pub fn optimum(self) -> f64 {
        match self {
            TestFunction::Branin => 0.397_887_357_729_738_2,
            TestFunction::Hartmann6 => -3.322_368_011_415_51,
            TestFunction::Rosenbrock
            | TestFunction::Ackley
            | TestFunction::Levy
            | TestFunction::Mixed
            | TestFunction::Conditional => 0.0,
            TestFunction::StyblinskiTang => -39.166_165_703_771_41 * 8.0,
        }
    }

    /// A search space of double parameters `x0, x1, ...` over the bounds (for
    /// [`TestFunction::Mixed`], the mixed parameters it describes).
    pub fn space(self) -> SearchSpace {
        match self {
            TestFunction::Mixed => return mixed_space(),
            TestFunction::Conditional => return conditional_space(),
            _ => {}
        }
        let parameters = self
            .bounds()
            .into_iter()
            .enumerate()
            .map(|(index, (min, max))| Parameter {
                name: format!("x{index}"),
                domain: Domain::Double {
                    min,
                    max,
                    step: None,
                    distribution: Distribution::Uniform,
                },
            })
            .collect();
        SearchSpace::new(parameters).expect("names x0.. are unique and non-empty")
    }

    /// The function's value at `x`.
    pub fn evaluate(self, x: &[f64]) -> f64 {
        match self {
            TestFunction::Branin => branin(x),
            TestFunction::Hartmann6 => hartmann6(x),
            TestFunction::Rosenbrock => x
                .windows(2)
                .map(|w| 100.0 * (w[1] - w[0] * w[0]).powi(2) + (1.0 - w[0]).powi(2))
                .sum(),
            TestFunction::Ackley => {
                let d = x.len() as f64;
                let squares = x.iter().map(|v| v * v).sum::<f64>() / d;
                let cosines = x.iter().map(|v| (2.0 * PI * v).cos()).sum::<f64>() / d;
                -20.0 * (-0.2 * squares.sqrt()).exp() - cosines.exp() + 20.0 + E
            }
            TestFunction::Levy => levy(x),
            TestFunction::Mixed => mixed(x),
            TestFunction::Conditional => conditional(x),
            TestFunction::StyblinskiTang => {
                0.5 * x
                    .iter()
                    .map(|v| v.powi(4) - 16.0 * v * v + 5.0 * v)
                    .sum::<f64>()
            }
        }
    }

    /// The function's value at an assignment of [`TestFunction::space`].
    pub fn evaluate_assignment(self, assignment: &Assignment) -> f64 {
        let x: Vec<f64> = assignment
            .values
            .iter()
            .map(|value| match value {
                Value::Double(v) => *v,
                Value::Int(v) => *v as f64,
                Value::Choice(index) => *index as f64,
            })
            .collect();
        self.evaluate(&x)
    }
}

fn branin(x: &[f64]) -> f64 {
    let (x1, x2) = (x[0], x[1]);
    let b = 5.1 / (4.0 * PI * PI);
    let c = 5.0 / PI;
    let t = 1.0 / (8.0 * PI);
    (x2 - b * x1 * x1 + c * x1 - 6.0).powi(2) + 10.0 * (1.0 - t) * x1.cos() + 10.0
}

fn hartmann6(x: &[f64]) -> f64 {
    const ALPHA: [f64; 4] = [1.0, 1.2, 3.0, 3.2];
    const A: [[f64; 6]; 4] = [
        [10.0, 3.0, 17.0, 3.5, 1.7, 8.0],
        [0.05, 10.0, 17.0, 0.1, 8.0, 14.0],
        [3.0, 3.5, 1.7, 10.0, 17.0, 8.0],
        [17.0, 8.0, 0.05, 10.0, 0.1, 14.0],
    ];
    const P: [[f64; 6]; 4] = [
        [1312.0, 1696.0, 5569.0, 124.0, 8283.0, 5886.0],
        [2329.0, 4135.0, 8307.0, 3736.0, 1004.0, 9991.0],
        [2348.0, 1451.0, 3522.0, 2883.0, 3047.0, 6650.0],
        [4047.0, 8828.0, 8732.0, 5743.0, 1091.0, 381.0],
    ];
    -(0..4)
        .map(|i| {
            let inner: f64 = (0..6)
                .map(|j| A[i][j] * (x[j] - P[i][j] * 1e-4).powi(2))
                .sum();
            ALPHA[i] * (-inner).exp()
        })
        .sum::<f64>()
}

/// The choices of [`TestFunction::Mixed`]'s categorical, each with the loss it adds and the
/// best `log10(x1)` under it.
const MIXED_CHOICES: [(&str, f64, f64); 4] = [
    ("sgd", 0.25, -1.5),
    ("adam", 0.0, -2.5),
    ("rmsprop", 0.1, -2.0),
    ("adagrad", 0.4, -3.0),
];

/// A double parameter on `[min, max]`.
fn double(name: &str, min: f64, max: f64, distribution: Distribution) -> Parameter {
    Parameter {
        name: name.into(),
        domain: Domain::Double {
            min,
            max,
            step: None,
            distribution,
        },
    }
}

/// A uniform int parameter on `[min, max]`, step 1.
fn int(name: &str, min: i64, max: i64) -> Parameter {
    Parameter {
        name: name.into(),
        domain: Domain::Int {
            min,
            max,
            step: 1,
            distribution: Distribution::Uniform,
        },
    }
}

fn mixed_space() -> SearchSpace {
    let parameters = vec![
        double("x0", 0.0, 1.0, Distribution::Uniform),
        double("x1", 1e-5, 1.0, Distribution::LogUniform),
        int("x2", 1, 64),
        int("x3", 1, 8),
        Parameter {
            name: "x4".into(),
            domain: Domain::Categorical {
                choices: MIXED_CHOICES
                    .iter()
                    .map(|(name, _, _)| name.to_string())
                    .collect(),
            },
        },
    ];
    SearchSpace::new(parameters).expect("names x0..x4 are unique and non-empty")
}

/// A quadratic bowl on the unit scales of the numeric parameters (`x1` on its log scale), the
/// pair `x0, x1` correlated, plus the choice's offset. An int off by one costs 1.3e-4 (`x2`)
/// or 0.01 (`x3`); the second-best choice costs 0.1.
fn mixed(x: &[f64]) -> f64 {
    let choice = (x[4].round().max(0.0) as usize).min(MIXED_CHOICES.len() - 1);
    let (_, offset, best_log_rate) = MIXED_CHOICES[choice];
    let u = x[0] - 0.3;
    let v = (x[1].max(1e-300).log10() - best_log_rate) / 5.0;
    let p = (x[2] - 24.0) / 63.0;
    let q = (x[3] - 3.0) / 7.0;
    offset + u * u + 1.5 * v * v + 0.8 * u * v + 0.5 * p * p + 0.5 * q * q
}

/// The branches of [`TestFunction::Conditional`]'s `model`.
pub const CONDITIONAL_MODELS: [&str; 3] = ["a", "b", "c"];

fn conditional_space() -> SearchSpace {
    let unit = |name: &str| double(name, 0.0, 1.0, Distribution::Uniform);
    let parameters = vec![
        unit("x"),
        Parameter {
            name: "model".into(),
            domain: Domain::Categorical {
                choices: CONDITIONAL_MODELS.iter().map(|m| m.to_string()).collect(),
            },
        },
        unit("a0"),
        unit("b0"),
        double("b1", 1e-4, 1.0, Distribution::LogUniform),
        unit("c0"),
        unit("c1"),
        unit("c2"),
        int("c3", 1, 16),
    ];
    let when = |model: usize| crate::space::Condition {
        parent: 1,
        values: vec![model],
    };
    SearchSpace::new(parameters)
        .and_then(|space| {
            space.with_conditions(vec![
                (2, when(0)),
                (3, when(1)),
                (4, when(1)),
                (5, when(2)),
                (6, when(2)),
                (7, when(2)),
                (8, when(2)),
            ])
        })
        .expect("the conditions name the categorical `model` and its choices")
}

/// The shared bowl in `x` plus the chosen branch's: a floor and a bowl in its own parameters
/// (`b1` on its log scale). The values of the branches not chosen are ignored.
fn conditional(x: &[f64]) -> f64 {
    let shared = (x[0] - 0.4).powi(2);
    let branch = match x[1].round() as i64 {
        0 => 0.3 + (x[2] - 0.25).powi(2),
        1 => 0.15 + (x[3] - 0.6).powi(2) + ((x[4].max(1e-300).log10() + 2.0) / 4.0).powi(2),
        _ => {
            (x[5] - 0.3).powi(2)
                + (x[6] - 0.7).powi(2)
                + (x[7] - 0.2).powi(2)
                + ((x[8] - 11.0) / 15.0).powi(2)
        }
    };
    shared + branch
}

fn levy(x: &[f64]) -> f64 {
    let w: Vec<f64> = x.iter().map(|v| 1.0 + (v - 1.0) / 4.0).collect();
    let last = w[w.len() - 1];
    let middle: f64 = w[..w.len() - 1]
        .iter()
        .map(|wi| (wi - 1.0).powi(2) * (1.0 + 10.0 * (PI * wi + 1.0).sin().powi(2)))
        .sum();
    (PI * w[0]).sin().powi(2)
        + middle
        + (last - 1.0).powi(2) * (1.0 + (2.0 * PI * last).sin().powi(2))
}

/// Runs `algorithm` for `trials` sequential trials (one suggestion per call, the full history
/// each time, as a Katib controller with `parallelTrialCount: 1` would) and returns the simple
/// regret after each trial.
pub fn regret_curve(
    algorithm: &str,
    settings: &[Setting],
    function: TestFunction,
    trials: usize,
) -> Result<Vec<f64>, SuggestError> {
    let history = trajectory(algorithm, settings, function, trials)?;
    let mut best = f64::INFINITY;
    Ok(history
        .iter()
        .map(|trial| {
            best = best.min(trial.objective_value.unwrap_or(f64::INFINITY));
            best - function.optimum()
        })
        .collect())
}

/// The `trials` finished trials that `algorithm` proposes one at a time on `function`, each
/// with its value: the history a real sequential run builds, for regret curves and benches.
pub fn trajectory(
    algorithm: &str,
    settings: &[Setting],
    function: TestFunction,
    trials: usize,
) -> Result<Vec<TrialRecord>, SuggestError> {
    let objective = Objective::new(Direction::Minimize, "value");
    sequential_run(
        algorithm,
        settings,
        &function.space(),
        &objective,
        trials,
        |assignment| {
            let value = function.evaluate_assignment(assignment);
            (value, vec![("value".into(), value)])
        },
    )
}

/// The `trials` finished trials that `algorithm` proposes one at a time (the full history each
/// time, as a controller with `parallelTrialCount: 1` asks), each scored by `evaluate`: its
/// objective value and every metric it reports.
pub fn sequential_run(
    algorithm: &str,
    settings: &[Setting],
    space: &SearchSpace,
    objective: &Objective,
    trials: usize,
    evaluate: impl FnMut(&Assignment) -> (f64, Vec<(String, f64)>),
) -> Result<Vec<TrialRecord>, SuggestError> {
    warm_started_run(algorithm, settings, space, objective, &[], trials, evaluate)
}

/// As [`sequential_run`], with `earlier` (the finished trials of an earlier experiment) ahead
/// of the run's own trials in every request's history, as the drivers put a warm start's
/// trials (`spec.warmStart.fromExperiments`); returns the run's own `trials` trials only.
pub fn warm_started_run(
    algorithm: &str,
    settings: &[Setting],
    space: &SearchSpace,
    objective: &Objective,
    earlier: &[TrialRecord],
    trials: usize,
    mut evaluate: impl FnMut(&Assignment) -> (f64, Vec<(String, f64)>),
) -> Result<Vec<TrialRecord>, SuggestError> {
    let built = build_algorithm(
        algorithm,
        settings,
        &BuildContext {
            space,
            objective,
            max_trial_count: Some(trials as u32),
            parallel_trial_count: Some(1),
        },
    )
    .map_err(|error| SuggestError::Unsupported(error.to_string()))?;
    let mut history: Vec<TrialRecord> = Vec::with_capacity(earlier.len() + trials);
    history.extend_from_slice(earlier);
    for index in 0..trials {
        let suggestions = built.suggest(&SuggestRequest {
            space,
            objective,
            trials: &history,
            count: 1,
            cancel: crate::cancel::Cancellation::never(),
        })?;
        let assignment = suggestions
            .suggestions
            .into_iter()
            .next()
            .ok_or_else(|| SuggestError::Unsupported("no suggestion returned".into()))?
            .assignment;
        let (value, metrics) = evaluate(&assignment);
        let mut record = TrialRecord::new(
            format!("trial-{index}"),
            assignment,
            TrialCondition::Succeeded,
        );
        record.objective_value = Some(value);
        record.metrics = metrics
            .into_iter()
            .map(|(name, value)| (name, value.to_string()))
            .collect();
        history.push(record);
    }
    Ok(history.split_off(earlier.len()))
}

/// How a warm start pays off on `function`: a first run of `trials` trials with
/// `random_state = seed`, then a second with another seed that has the first's trials ahead of
/// its own, stopped once it reaches the first's best value.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct WarmStartRun {
    /// The first run's best value.
    pub first_best: f64,
    /// The trial (1-based) at which the first run reached its best value.
    pub first_trials_to_best: usize,
    /// The trials the warm-started run took to reach the first's best value; `None` when it
    /// did not within `trials`.
    pub second_trials_to_best: Option<usize>,
}

/// Runs the first and the warm-started second experiment of [`WarmStartRun`] with `algorithm`
/// on `function`; the second's seed is `seed + 1000`, so it does not replay the first's draws.
pub fn warm_start_run(
    algorithm: &str,
    function: TestFunction,
    trials: usize,
    seed: u64,
) -> Result<WarmStartRun, SuggestError> {
    let settings = |seed: u64| vec![Setting::new("random_state", seed.to_string())];
    let first = trajectory(algorithm, &settings(seed), function, trials)?;
    let values: Vec<f64> = first
        .iter()
        .map(|trial| trial.objective_value.unwrap_or(f64::INFINITY))
        .collect();
    let first_best = values.iter().copied().fold(f64::INFINITY, f64::min);
    let first_trials_to_best = values
        .iter()
        .position(|value| *value <= first_best)
        .map_or(trials, |index| index + 1);
    // The earlier experiment's trials keep their own names, as the drivers pass them.
    let earlier: Vec<TrialRecord> = first
        .into_iter()
        .map(|mut trial| {
            trial.name = format!("earlier-{}", trial.name);
            trial
        })
        .collect();
    let objective = Objective::new(Direction::Minimize, "value");
    let mut reached = None;
    let mut count = 0;
    warm_started_run(
        algorithm,
        &settings(seed + 1000),
        &function.space(),
        &objective,
        &earlier,
        trials,
        |assignment| {
            count += 1;
            let value = function.evaluate_assignment(assignment);
            if value <= first_best && reached.is_none() {
                reached = Some(count);
            }
            (value, vec![("value".into(), value)])
        },
    )?;
    Ok(WarmStartRun {
        first_best,
        first_trials_to_best,
        second_trials_to_best: reached,
    })
}

/// The median of `values` (which must not be empty).
pub fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    let middle = values.len() / 2;
    if values.len() % 2 == 1 {
        values[middle]
    } else {
        (values[middle - 1] + values[middle]) / 2.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn optima_are_attained_at_known_minimizers() {
        let close = |a: f64, b: f64| (a - b).abs() < 1e-5;
        assert!(close(
            TestFunction::Branin.evaluate(&[PI, 2.275]),
            0.397_887
        ));
        assert!(close(
            TestFunction::Hartmann6
                .evaluate(&[0.20169, 0.150011, 0.476874, 0.275332, 0.311652, 0.6573]),
            -3.32237
        ));
        assert!(close(TestFunction::Rosenbrock.evaluate(&[1.0; 5]), 0.0));
        assert!(close(TestFunction::Ackley.evaluate(&[0.0; 5]), 0.0));
        assert!(close(TestFunction::Levy.evaluate(&[1.0; 4]), 0.0));
        assert!(close(
            TestFunction::Mixed.evaluate(&[0.3, 10f64.powf(-2.5), 24.0, 3.0, 1.0]),
            0.0
        ));
        let space = TestFunction::Conditional.space();
        let best = space
            .parse_assignment([
                ("x", "0.4"),
                ("model", "c"),
                ("c0", "0.3"),
                ("c1", "0.7"),
                ("c2", "0.2"),
                ("c3", "11"),
            ])
            .expect("the optimum's branch needs no other value");
        assert!(close(
            TestFunction::Conditional.evaluate_assignment(&best),
            0.0
        ));
        assert!(
            (TestFunction::StyblinskiTang.evaluate(&[-2.903534; 8])
                - TestFunction::StyblinskiTang.optimum())
            .abs()
                < 1e-3
        );
    }

    #[test]
    fn random_search_regret_shrinks_and_is_reproducible() {
        let settings = [Setting::new("random_state", "7")];
        let curve = regret_curve("random", &settings, TestFunction::Branin, 50).expect("runs");
        assert_eq!(curve.len(), 50);
        assert!(curve.windows(2).all(|w| w[1] <= w[0]));
        assert!(curve[49] >= 0.0);
        let again = regret_curve("random", &settings, TestFunction::Branin, 50).expect("runs");
        assert_eq!(curve, again);
    }
}
