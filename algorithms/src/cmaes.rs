//! CMA-ES: the covariance matrix adaptation evolution strategy (Hansen, "The CMA Evolution
//! Strategy: A Tutorial", arXiv:1604.00772), with IPOP (Auger & Hansen, CEC 2005) and BIPOP
//! (Hansen, GECCO 2009 workshop) restarts, searching the unit cube of the parameters' scales.
//!
//! # Search scale
//!
//! Every int, double and discrete parameter is one coordinate of the unit cube through
//! [`Parameter::to_unit`] (logarithmic for logUniform and logNormal, linear otherwise; a
//! discrete parameter's list index spread over `[0, 1]`). A sample is mapped back with
//! [`Parameter::from_unit`], which rounds int values to their step, snaps stepped doubles to
//! their lattice and discrete values to the nearest list entry, so every suggestion is feasible.
//! Samples outside the cube are drawn again, up to [`MAX_RESAMPLING`] times, then clipped into
//! it. A space with fewer than two int or double parameters is rejected when the algorithm is
//! built (Katib's rule). The first run starts from the centre of the cube.
//!
//! Categorical parameters have no order, so they are not coordinates: each suggestion draws
//! them independently and uniformly, beside the CMA-ES over the other parameters, as Optuna's
//! `CmaEsSampler` (Katib's `cmaes`) leaves them to its independent `RandomSampler`. They are
//! drawn from a stream keyed by `random_state` and the history, and replay ignores them.
//!
//! In a conditional space (see [`crate::space`]) CMA-ES searches the int, double and discrete
//! parameters that are always active; a conditional parameter is drawn independently from its
//! prior like a categorical one (Optuna's `CmaEsSampler` leaves parameters outside its
//! intersection search space to the independent sampler the same way), since a coordinate
//! that exists in some trials only has no place in one covariance matrix. The rule of two
//! int or double parameters counts the always-active ones.
//!
//! # `sigma`
//!
//! The initial step size is on the unit scale of the cube. Katib hands its `sigma` to Optuna
//! as `CmaEsSampler(sigma0=...)`, and Optuna maps every int and float parameter onto `[0, 1]`
//! too (`_SearchSpaceTransform(transform_0_1=True)`), so the same number means the same step
//! in both. Any `sigma >= 0` is accepted, as Katib's validation does; values above 1 start
//! wider than the cube, whose samples are then drawn again or clipped. `0` means the default,
//! 1/6, Optuna's own default (a sixth of the narrowest range, in a cube of side 1): Optuna
//! would start a run from a point (its `sigma0` floor of 1e-10), a fault not kept.
//!
//! # Replay: state rebuilt from the history
//!
//! The service is stateless, so every call rebuilds the optimizer from the request alone:
//! 1. The trials, in history order, fill generations of the current run's population size λ:
//!    trials `0..λ` are generation 0 of run 0, the next λ generation 1, and so on; after a
//!    restart the next run's generations follow with that run's λ.
//! 2. A generation's candidates are drawn from a random stream keyed by `random_state`, the run
//!    index and the generation index (never the history), so replay draws them again exactly.
//!    The trial in slot `j` of a generation is matched with candidate `j`: when its assignment
//!    is that candidate's feasible rounding, the update uses the continuous candidate (plain
//!    CMA-ES); otherwise (a trial from another source, or a sample proposed while the
//!    generation's distribution was unknown) its own point is used as an injected solution,
//!    its step clipped in Mahalanobis norm (Hansen, "Injecting External Solutions Into CMA-ES",
//!    INRIA RR-7748, 2011).
//! 3. A full generation whose trials have all finished updates the mean, step size, paths and
//!    covariance (the tutorial's defaults, positive recombination weights). Finished trials
//!    without a usable objective value (failed, killed, non-finite) rank after every trial with
//!    one; a generation with no value at all leaves the distribution as it was.
//! 4. After each update the run stops when its distribution has converged or degenerated (see
//!    [`TerminationReason`]); the next run starts from a uniformly random mean with the
//!    strategy's population size and step size.
//!
//! Replay stops at the first generation that is not complete or still has pending trials.
//! New suggestions are that generation's candidates for its empty slots; once every slot is
//! taken while results are still pending, they are fresh samples from the current distribution
//! (drawn from a stream keyed by the history, so they differ between calls) that fill the next
//! generation's slots and enter its update as injected solutions.
//!
//! # Restart strategies
//!
//! - `none`: a run that stops is followed by a plain restart with the default population size
//!   and `sigma`, since a converged distribution would only propose the same point again.
//! - `ipop`: run `k` has population size `λ_default · 2^k` and step size `sigma`.
//! - `bipop`: two regimes share the budget. The first run and every later large run double the
//!   population size (IPOP); a small run has `λ = ⌊λ_default · (λ_large / (2 λ_default))^(u²)⌋`
//!   (at least 4) and step size `sigma · 10^(-2 u')` for uniform `u, u'`, where `λ_large` is the
//!   population size of the latest large run. The regime that has evaluated fewer trials so far
//!   runs next.
//!
//! # Budget
//!
//! Hyperparameter searches run tens to hundreds of trials, where the tutorial's defaults
//! (tuned for thousands of evaluations) spend the budget on too few generations. Two
//! constants differ, each measured by the median simple regret on the six functions of
//! `test_functions` (feature `test-functions`) over 100 seeds:
//!
//! - Population size. When the experiment sets `maxTrialCount`, the default population size
//!   `4 + ⌊3 ln n⌋` is lowered until the budget holds 16 generations, but not below 6 (the
//!   default for two parameters), so 100 trials give λ = 6 in every dimension; without a
//!   budget, and from 300 trials in 6-D, the tutorial's size stands. Hansen's tutorial treats
//!   λ as the main setting to trade robustness on multimodal functions for speed; 4 measured
//!   worse on Levy and 5 no better overall, and at 300 trials λ = 6 lost on Styblinski-Tang.
//!   Raising `maxTrialCount` during a run can raise λ; replay then cuts the history into the
//!   new generations, and trials that no longer match their slot's candidate enter the
//!   updates as injected solutions (see "Replay"): the state is rebuilt from the same trials
//!   and the search goes on.
//! - Rank-one learning rate. `c_1` uses `α = 4` instead of the tutorial's `α_cov = 2`: with so
//!   few generations the evolution path, not the rank-μ update, is what learns a valley's
//!   direction, and doubling its rate helped at 100 and at 300 trials alike.
//!
//! Both together, after 100 trials (before in brackets): Branin 0.0021 (0.0079), Hartmann6
//! 0.204 (0.279), Rosenbrock 4.91 (5.68), Ackley 2.79 (3.31), Levy 0.105 (0.164),
//! Styblinski-Tang 87 (102). Doubling `c_μ` as well changed nothing beyond the noise.

use rand::Rng;
use rand_chacha::ChaCha8Rng;

use crate::SuggestError;
use crate::algorithm::{BuildContext, SearchAlgorithm, SuggestRequest, Suggestions};
use crate::history::TrialRecord;
use crate::objective::Objective;
use crate::seed::rng_for;
use crate::settings::{Setting, SettingsError, SettingsReader};
use crate::space::{Assignment, Domain, SearchSpace, Value};

/// Katib's name of the algorithm.
pub const NAME: &str = "cmaes";

/// The initial step size on the unit scale when `sigma` is not set.
pub const DEFAULT_SIGMA: f64 = 1.0 / 6.0;

/// How many times a sample outside the unit cube is drawn again before it is clipped.
pub const MAX_RESAMPLING: usize = 100;

/// Generations a run should get within the trial budget: the population size is lowered
/// (down to [`MIN_BUDGET_POPULATION_SIZE`]) until the budget holds this many.
const BUDGET_GENERATIONS: u32 = 16;

/// The smallest population size the trial budget may impose.
const MIN_BUDGET_POPULATION_SIZE: usize = 6;

/// The numerator of the rank-one learning rate `c_1 = α / ((n + 1.3)² + μ_eff)` (the
/// tutorial's `α_cov`, 2; see the module docs, "Budget").
const RANK_ONE_ALPHA: f64 = 4.0;

/// The largest population size a restart may reach; beyond it a run would never finish one
/// generation in any realistic budget.
const MAX_POPULATION_SIZE: usize = 1 << 16;

/// What happens when a run stops.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RestartStrategy {
    /// Restart with the same population size.
    None,
    /// Double the population size at every restart.
    Ipop,
    /// Alternate large (doubling) and small runs by their budgets.
    Bipop,
}

/// CMA-ES with its settings.
#[derive(Debug, Clone, PartialEq)]
pub struct CmaEs {
    /// What a run that stops is followed by.
    pub restart_strategy: RestartStrategy,
    /// The initial step size on the unit scale.
    pub sigma: f64,
    /// Seed of every random stream (see the module docs for how the streams are keyed).
    pub random_state: Option<u64>,
    /// The experiment's trial budget (`maxTrialCount`), which bounds the population size.
    pub budget: Option<u32>,
}

/// Why a run stops (Hansen's tutorial, appendix B.3, and a rule for rounded spaces).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TerminationReason {
    /// Every trial of the last generation had the same assignment: the distribution is
    /// narrower than the rounding of the int or discrete parameters.
    SinglePoint,
    /// The step size times every axis is below `1e-11` on the unit scale (TolX).
    TolX,
    /// The best values of recent generations and all values of the last lie within `1e-12`
    /// (TolFun).
    TolFun,
    /// The covariance matrix's condition number exceeds `1e14` (ConditionCov).
    ConditionCov,
    /// Adding a fifth of a standard deviation no longer changes some coordinate of the mean
    /// (NoEffectCoord).
    NoEffectCoord,
    /// A number became non-finite.
    NumericalError,
}

/// Builds CMA-ES from Katib's settings (`restart_strategy`, `sigma`, `random_state`).
pub fn build(
    settings: &[Setting],
    context: &BuildContext<'_>,
) -> Result<Box<dyn SearchAlgorithm>, SettingsError> {
    let mut reader = SettingsReader::new(NAME, settings);
    let restart_strategy = match reader.raw("restart_strategy") {
        None => RestartStrategy::None,
        Some(text) => match text.trim().to_ascii_lowercase().as_str() {
            "none" => RestartStrategy::None,
            "ipop" => RestartStrategy::Ipop,
            "bipop" => RestartStrategy::Bipop,
            _ => {
                return Err(SettingsError::InvalidValue {
                    setting: "restart_strategy".into(),
                    value: text.into(),
                    rule: "must be none, ipop or bipop".into(),
                });
            }
        },
    };
    let sigma = reader
        .parse::<f64>(
            "sigma",
            "must be a number >= 0: the initial step size on the unit scale of the parameters \
             (Optuna's sigma0), 0 for the default 1/6",
            |sigma| sigma.is_finite() && *sigma >= 0.0,
        )?
        .filter(|sigma| *sigma > 0.0)
        .unwrap_or(DEFAULT_SIGMA);
    let random_state = reader.random_state()?;
    reader.finish()?;
    check_space(context.space)?;
    Ok(Box::new(CmaEs {
        restart_strategy,
        sigma,
        random_state,
        budget: context.max_trial_count,
    }))
}

/// The first run's population size: the tutorial's `4 + ⌊3 ln n⌋`, lowered so that a known
/// trial budget holds [`BUDGET_GENERATIONS`] generations, but not below
/// [`MIN_BUDGET_POPULATION_SIZE`].
fn default_population_size(dimension: usize, budget: Option<u32>) -> usize {
    let standard = 4 + (3.0 * (dimension as f64).ln()).floor() as usize;
    match budget {
        Some(budget) => {
            let affordable = (budget / BUDGET_GENERATIONS) as usize;
            standard.min(affordable.max(MIN_BUDGET_POPULATION_SIZE))
        }
        None => standard,
    }
}

fn check_space(space: &SearchSpace) -> Result<(), SettingsError> {
    let continuous = searched_indices(space)
        .into_iter()
        .filter(|index| {
            matches!(
                space.parameters()[*index].domain,
                Domain::Int { .. } | Domain::Double { .. }
            )
        })
        .count();
    if continuous < 2 {
        let which = if space.is_conditional() {
            "always-active int or double parameters"
        } else {
            "int or double parameters"
        };
        return Err(SettingsError::UnsupportedSpace {
            algorithm: NAME.into(),
            reason: format!("CMA-ES needs at least two {which}; the space has {continuous}"),
        });
    }
    Ok(())
}

/// The parameters CMA-ES searches, by index in the space: the always-active ones that are not
/// categorical.
fn searched_indices(space: &SearchSpace) -> Vec<usize> {
    space
        .parameters()
        .iter()
        .enumerate()
        .filter(|(index, parameter)| {
            !matches!(parameter.domain, Domain::Categorical { .. })
                && space.condition(*index).is_none()
        })
        .map(|(index, _)| index)
        .collect()
}

impl SearchAlgorithm for CmaEs {
    fn name(&self) -> &'static str {
        NAME
    }

    fn suggest(&self, request: &SuggestRequest<'_>) -> Result<Suggestions, SuggestError> {
        let searched = searched_indices(request.space);
        let replayed = self.replay(request, &searched);
        let mut points: Vec<Vec<f64>> = Vec::with_capacity(request.count);
        let run = &replayed.run;
        if replayed.filled < run.population_size {
            let candidates = run.candidates(self.random_state);
            points.extend(
                candidates
                    .into_iter()
                    .skip(replayed.filled)
                    .take(request.count),
            );
        }
        if points.len() < request.count {
            let mut rng = rng_for(self.random_state, request.trials, "cmaes/extra");
            while points.len() < request.count {
                request.cancel.check()?;
                points.push(run.sample(&mut rng));
            }
        }
        let mut categorical_rng = rng_for(self.random_state, request.trials, "cmaes/categorical");
        let assignments = points
            .iter()
            .map(|point| {
                let mut assignment = point_to_assignment(request.space, &searched, point);
                draw_unsearched(
                    request.space,
                    &searched,
                    &mut assignment,
                    &mut categorical_rng,
                );
                request.space.canonical(&assignment)
            })
            .collect();
        Ok(Suggestions::from_assignments(assignments))
    }
}

/// Where replay stopped: the run in progress and how many slots of its current generation the
/// history already fills (`>= λ` when the generation waits for results).
#[derive(Debug)]
struct Replayed {
    run: Run,
    filled: usize,
}

/// Bookkeeping of the restarts across runs.
#[derive(Debug)]
struct Restarts {
    default_population_size: usize,
    runs_started: usize,
    large_runs: u32,
    large_population_size: usize,
    large_budget: usize,
    small_budget: usize,
}

impl CmaEs {
    fn replay(&self, request: &SuggestRequest<'_>, searched: &[usize]) -> Replayed {
        let space = request.space;
        let dimension = searched.len();
        let default_population_size = default_population_size(dimension, self.budget);
        let mut restarts = Restarts {
            default_population_size,
            runs_started: 1,
            large_runs: 0,
            large_population_size: default_population_size,
            large_budget: 0,
            small_budget: 0,
        };
        let mut run = Run::new(
            0,
            vec![0.5; dimension],
            self.sigma,
            default_population_size,
            true,
        );
        let trials = request.trials;
        let mut position = 0;
        loop {
            let population_size = run.population_size;
            let remaining = trials.len() - position;
            if remaining < population_size {
                return Replayed {
                    run,
                    filled: remaining,
                };
            }
            let block = &trials[position..position + population_size];
            if block.iter().any(|trial| trial.condition.is_pending()) {
                return Replayed {
                    run,
                    filled: remaining,
                };
            }
            let candidates = run.candidates(self.random_state);
            let members: Vec<Member> = block
                .iter()
                .zip(candidates)
                .map(|(trial, candidate)| {
                    run.member(space, searched, trial, candidate, request.objective)
                })
                .collect();
            let single_point = block.windows(2).all(|pair| {
                searched.iter().all(|&index| {
                    pair[0].assignment.values.get(index) == pair[1].assignment.values.get(index)
                })
            });
            run.update(&members);
            position += population_size;
            if run.large {
                restarts.large_budget += population_size;
            } else {
                restarts.small_budget += population_size;
            }
            let stop = if single_point {
                Some(TerminationReason::SinglePoint)
            } else {
                run.termination()
            };
            if stop.is_some() {
                run = self.restart(&mut restarts, dimension);
            }
        }
    }

    fn restart(&self, restarts: &mut Restarts, dimension: usize) -> Run {
        let index = restarts.runs_started;
        restarts.runs_started += 1;
        let mut rng = rng_for(self.random_state, &[], &format!("cmaes/run{index}/start"));
        let mean: Vec<f64> = (0..dimension).map(|_| rng.random::<f64>()).collect();
        let default = restarts.default_population_size;
        match self.restart_strategy {
            RestartStrategy::None => Run::new(index, mean, self.sigma, default, true),
            RestartStrategy::Ipop => {
                let factor = 1usize << index.min(16);
                let population_size = (default * factor).min(MAX_POPULATION_SIZE);
                Run::new(index, mean, self.sigma, population_size, true)
            }
            RestartStrategy::Bipop => {
                if restarts.small_budget < restarts.large_budget {
                    let u: f64 = rng.random();
                    let u_sigma: f64 = rng.random();
                    let ratio = restarts.large_population_size as f64 / (2.0 * default as f64);
                    let population_size =
                        ((default as f64 * ratio.powf(u * u)).floor() as usize).max(4);
                    let sigma = self.sigma * 10f64.powf(-2.0 * u_sigma);
                    Run::new(index, mean, sigma, population_size, false)
                } else {
                    restarts.large_runs += 1;
                    let factor = 1usize << restarts.large_runs.min(16);
                    restarts.large_population_size = (default * factor).min(MAX_POPULATION_SIZE);
                    Run::new(
                        index,
                        mean,
                        self.sigma,
                        restarts.large_population_size,
                        true,
                    )
                }
            }
        }
    }
}

/// One trial of a generation as the update sees it.
#[derive(Debug)]
struct Member {
    point: Vec<f64>,
    loss: Option<f64>,
    injected: bool,
}

/// The strategy parameters of the tutorial (Hansen 2016, table 1) for one population size.
#[derive(Debug)]
struct StrategyParameters {
    parents: usize,
    weights: Vec<f64>,
    effective_parents: f64,
    c_sigma: f64,
    d_sigma: f64,
    c_c: f64,
    c_1: f64,
    c_mu: f64,
    expected_norm: f64,
}

impl StrategyParameters {
    /// The default parameters with active covariance adaptation (negative weights for the
    /// worse half; Hansen 2016, equations 49-53, 55-58).
    fn new(dimension: usize, population_size: usize) -> StrategyParameters {
        let n = dimension as f64;
        let parents = (population_size / 2).max(1);
        let raw: Vec<f64> = (1..=population_size)
            .map(|rank| ((population_size as f64 + 1.0) / 2.0).ln() - (rank as f64).ln())
            .collect();
        let (positive, negative): (Vec<f64>, Vec<f64>) =
            raw.iter().partition(|weight| **weight >= 0.0);
        let positive_sum: f64 = positive.iter().sum();
        let effective_parents =
            positive_sum.powi(2) / positive.iter().map(|weight| weight * weight).sum::<f64>();
        let negative_sum: f64 = negative.iter().map(|weight| weight.abs()).sum();
        let negative_effective = if negative.is_empty() {
            0.0
        } else {
            negative_sum.powi(2) / negative.iter().map(|weight| weight * weight).sum::<f64>()
        };
        let c_sigma = (effective_parents + 2.0) / (n + effective_parents + 5.0);
        let d_sigma =
            1.0 + 2.0 * (((effective_parents - 1.0) / (n + 1.0)).sqrt() - 1.0).max(0.0) + c_sigma;
        let c_c = (4.0 + effective_parents / n) / (n + 4.0 + 2.0 * effective_parents / n);
        let c_1 = RANK_ONE_ALPHA / ((n + 1.3).powi(2) + effective_parents);
        let c_mu = (1.0 - c_1)
            .min(
                2.0 * (effective_parents - 2.0 + 1.0 / effective_parents)
                    / ((n + 2.0).powi(2) + effective_parents),
            )
            .max(0.0);
        let alpha_mu = 1.0 + c_1 / c_mu.max(f64::MIN_POSITIVE);
        let alpha_effective = 1.0 + 2.0 * negative_effective / (effective_parents + 2.0);
        let alpha_positive_definite = (1.0 - c_1 - c_mu) / (n * c_mu.max(f64::MIN_POSITIVE));
        let negative_scale = alpha_mu.min(alpha_effective).min(alpha_positive_definite);
        let weights = raw
            .iter()
            .map(|weight| {
                if *weight >= 0.0 {
                    weight / positive_sum
                } else if negative_sum > 0.0 {
                    weight * negative_scale / negative_sum
                } else {
                    0.0
                }
            })
            .collect();
        let expected_norm = n.sqrt() * (1.0 - 1.0 / (4.0 * n) + 1.0 / (21.0 * n * n));
        StrategyParameters {
            parents,
            weights,
            effective_parents,
            c_sigma,
            d_sigma,
            c_c,
            c_1,
            c_mu,
            expected_norm,
        }
    }
}

/// One run of CMA-ES: its distribution and evolution paths.
#[derive(Debug)]
struct Run {
    index: usize,
    population_size: usize,
    large: bool,
    generation: usize,
    dimension: usize,
    parameters: StrategyParameters,
    mean: Vec<f64>,
    sigma: f64,
    /// The covariance matrix, row-major.
    covariance: Vec<f64>,
    /// Its eigenvectors as columns, row-major.
    basis: Vec<f64>,
    /// The square roots of its eigenvalues.
    scales: Vec<f64>,
    path_sigma: Vec<f64>,
    path_c: Vec<f64>,
    recent_best: Vec<f64>,
    last_losses: Vec<f64>,
    numerical_error: bool,
}

impl Run {
    fn new(index: usize, mean: Vec<f64>, sigma: f64, population_size: usize, large: bool) -> Run {
        let dimension = mean.len();
        let mut identity = vec![0.0; dimension * dimension];
        for i in 0..dimension {
            identity[i * dimension + i] = 1.0;
        }
        Run {
            index,
            population_size,
            large,
            generation: 0,
            dimension,
            parameters: StrategyParameters::new(dimension, population_size),
            mean,
            sigma,
            covariance: identity.clone(),
            basis: identity,
            scales: vec![1.0; dimension],
            path_sigma: vec![0.0; dimension],
            path_c: vec![0.0; dimension],
            recent_best: Vec::new(),
            last_losses: Vec::new(),
            numerical_error: false,
        }
    }

    /// The current generation's candidates, drawn from the stream of (seed, run, generation).
    fn candidates(&self, random_state: Option<u64>) -> Vec<Vec<f64>> {
        let purpose = format!("cmaes/run{}/generation{}", self.index, self.generation);
        let mut rng = rng_for(random_state, &[], &purpose);
        (0..self.population_size)
            .map(|_| self.sample(&mut rng))
            .collect()
    }

    /// One draw of `mean + sigma * B D z`, drawn again while outside the cube, then clipped.
    fn sample(&self, rng: &mut ChaCha8Rng) -> Vec<f64> {
        let n = self.dimension;
        let mut point = vec![0.0; n];
        let mut scaled = vec![0.0; n];
        for _ in 0..MAX_RESAMPLING {
            for (i, value) in scaled.iter_mut().enumerate() {
                *value = self.scales[i] * standard_normal(rng);
            }
            for (row, coordinate) in point.iter_mut().enumerate() {
                let step: f64 = (0..n)
                    .map(|column| self.basis[row * n + column] * scaled[column])
                    .sum();
                *coordinate = self.mean[row] + self.sigma * step;
            }
            if point.iter().all(|x| (0.0..=1.0).contains(x)) {
                return point;
            }
        }
        for coordinate in point.iter_mut() {
            *coordinate = if coordinate.is_finite() {
                coordinate.clamp(0.0, 1.0)
            } else {
                0.5
            };
        }
        point
    }

    fn member(
        &self,
        space: &SearchSpace,
        searched: &[usize],
        trial: &TrialRecord,
        candidate: Vec<f64>,
        objective: &Objective,
    ) -> Member {
        let loss = trial.loss(objective);
        let parameters = space.parameters();
        let is_candidate = searched.iter().zip(&candidate).all(|(&index, &unit)| {
            trial.assignment.values.get(index) == Some(&parameters[index].from_unit(unit))
        });
        if is_candidate {
            return Member {
                point: candidate,
                loss,
                injected: false,
            };
        }
        let point = searched
            .iter()
            .enumerate()
            .map(
                |(coordinate, &index)| match trial.assignment.values.get(index) {
                    Some(value) => parameters[index].to_unit(*value),
                    None => self.mean[coordinate],
                },
            )
            .collect();
        Member {
            point,
            loss,
            injected: true,
        }
    }

    /// `C^{-1/2} v = B D^{-1} B^T v`.
    fn whiten(&self, vector: &[f64]) -> Vec<f64> {
        let n = self.dimension;
        let projected: Vec<f64> = (0..n)
            .map(|column| {
                let dot: f64 = (0..n)
                    .map(|row| self.basis[row * n + column] * vector[row])
                    .sum();
                dot / self.scales[column]
            })
            .collect();
        (0..n)
            .map(|row| {
                (0..n)
                    .map(|column| self.basis[row * n + column] * projected[column])
                    .sum()
            })
            .collect()
    }

    fn update(&mut self, members: &[Member]) {
        let generation = self.generation;
        self.generation += 1;
        let mut order: Vec<usize> = (0..members.len())
            .filter(|index| members[*index].loss.is_some())
            .collect();
        if order.is_empty() {
            return;
        }
        order.sort_by(|a, b| {
            let (a_loss, b_loss) = (members[*a].loss, members[*b].loss);
            // Both are `Some`: the filter above keeps only members with a loss.
            a_loss
                .unwrap_or(f64::INFINITY)
                .total_cmp(&b_loss.unwrap_or(f64::INFINITY))
                .then(a.cmp(b))
        });
        let losses: Vec<f64> = order.iter().filter_map(|i| members[*i].loss).collect();
        order.extend((0..members.len()).filter(|index| members[*index].loss.is_none()));
        self.record_losses(&losses);

        let n = self.dimension;
        let params = &self.parameters;
        let clip_bound = (n as f64).sqrt() + 2.0 * n as f64 / (n as f64 + 2.0);
        let steps: Vec<Vec<f64>> = order
            .iter()
            .map(|index| {
                let member = &members[*index];
                let mut step: Vec<f64> = member
                    .point
                    .iter()
                    .zip(&self.mean)
                    .map(|(x, m)| (x - m) / self.sigma)
                    .collect();
                if member.injected {
                    let norm = norm(&self.whiten(&step));
                    if norm > clip_bound {
                        step.iter_mut()
                            .for_each(|value| *value *= clip_bound / norm);
                    }
                }
                step
            })
            .collect();
        let mut weighted_step = vec![0.0; n];
        for (weight, step) in params.weights.iter().zip(&steps).take(params.parents) {
            for (total, value) in weighted_step.iter_mut().zip(step) {
                *total += weight * value;
            }
        }
        for (mean, step) in self.mean.iter_mut().zip(&weighted_step) {
            *mean += self.sigma * step;
        }

        let whitened = self.whiten(&weighted_step);
        let sigma_factor =
            (params.c_sigma * (2.0 - params.c_sigma) * params.effective_parents).sqrt();
        for (path, value) in self.path_sigma.iter_mut().zip(&whitened) {
            *path = (1.0 - params.c_sigma) * *path + sigma_factor * value;
        }
        let path_sigma_norm = norm(&self.path_sigma);
        let exponent =
            (params.c_sigma / params.d_sigma) * (path_sigma_norm / params.expected_norm - 1.0);
        // The tutorial caps the change per generation; a step larger than the cube is useless.
        self.sigma = (self.sigma * exponent.min(1.0).exp()).min(1e3);

        let correction = 1.0 - (1.0 - params.c_sigma).powi(2 * (generation as i32 + 1));
        let stalled = path_sigma_norm / correction.sqrt()
            < (1.4 + 2.0 / (n as f64 + 1.0)) * params.expected_norm;
        let h_sigma = if stalled { 1.0 } else { 0.0 };
        let c_factor = (params.c_c * (2.0 - params.c_c) * params.effective_parents).sqrt();
        for (path, value) in self.path_c.iter_mut().zip(&weighted_step) {
            *path = (1.0 - params.c_c) * *path + h_sigma * c_factor * value;
        }
        let delta = (1.0 - h_sigma) * params.c_c * (2.0 - params.c_c);
        let weight_sum: f64 = params.weights.iter().sum();
        let keep = 1.0 + params.c_1 * delta - params.c_1 - params.c_mu * weight_sum;
        // Negative weights act on steps rescaled to the expected length of a sample, so a far
        // bad point cannot make the matrix indefinite (Hansen 2016, equation 46).
        let covariance_weights: Vec<f64> = params
            .weights
            .iter()
            .zip(&steps)
            .map(|(weight, step)| {
                if *weight >= 0.0 {
                    *weight
                } else {
                    let length = norm(&self.whiten(step)).powi(2);
                    if length > 0.0 {
                        weight * n as f64 / length
                    } else {
                        0.0
                    }
                }
            })
            .collect();
        for row in 0..n {
            for column in 0..=row {
                let rank_one = self.path_c[row] * self.path_c[column];
                let rank_mu: f64 = covariance_weights
                    .iter()
                    .zip(&steps)
                    .map(|(weight, step)| weight * step[row] * step[column])
                    .sum();
                let value = keep * self.covariance[row * n + column]
                    + params.c_1 * rank_one
                    + params.c_mu * rank_mu;
                self.covariance[row * n + column] = value;
                self.covariance[column * n + row] = value;
            }
        }
        let (eigenvalues, eigenvectors) = symmetric_eigen(&self.covariance, n);
        self.basis = eigenvectors;
        self.scales = eigenvalues
            .iter()
            .map(|value| value.max(1e-30).sqrt())
            .collect();
        self.numerical_error = !(self.sigma.is_finite()
            && self.mean.iter().all(|x| x.is_finite())
            && self.covariance.iter().all(|x| x.is_finite()));
    }

    fn record_losses(&mut self, sorted_losses: &[f64]) {
        let window =
            10 + (30.0 * self.dimension as f64 / self.population_size as f64).ceil() as usize;
        self.recent_best.push(sorted_losses[0]);
        if self.recent_best.len() > window {
            self.recent_best.remove(0);
        }
        self.last_losses = sorted_losses.to_vec();
    }

    fn termination(&self) -> Option<TerminationReason> {
        let n = self.dimension;
        if self.numerical_error {
            return Some(TerminationReason::NumericalError);
        }
        let widest = (0..n)
            .map(|i| {
                self.covariance[i * n + i]
                    .max(0.0)
                    .sqrt()
                    .max(self.path_c[i].abs())
            })
            .fold(0.0, f64::max);
        if self.sigma * widest < 1e-11 {
            return Some(TerminationReason::TolX);
        }
        let window = 10 + (30.0 * n as f64 / self.population_size as f64).ceil() as usize;
        if self.recent_best.len() >= window && !self.last_losses.is_empty() {
            let range = |values: &[f64]| {
                let (low, high) = values
                    .iter()
                    .fold((f64::INFINITY, f64::NEG_INFINITY), |(low, high), v| {
                        (low.min(*v), high.max(*v))
                    });
                high - low
            };
            if range(&self.recent_best).max(range(&self.last_losses)) < 1e-12 {
                return Some(TerminationReason::TolFun);
            }
        }
        let (smallest, largest) = self
            .scales
            .iter()
            .fold((f64::INFINITY, 0.0f64), |(low, high), scale| {
                (low.min(*scale), high.max(*scale))
            });
        if (largest / smallest).powi(2) > 1e14 {
            return Some(TerminationReason::ConditionCov);
        }
        let no_effect = (0..n).any(|i| {
            let step = 0.2 * self.sigma * self.covariance[i * n + i].max(0.0).sqrt();
            self.mean[i] == self.mean[i] + step
        });
        if no_effect {
            return Some(TerminationReason::NoEffectCoord);
        }
        None
    }
}

/// The assignment of a point of the cube; the parameters not searched get their inactive
/// value, to be replaced by [`draw_unsearched`].
fn point_to_assignment(space: &SearchSpace, searched: &[usize], point: &[f64]) -> Assignment {
    let mut values: Vec<Value> = space
        .parameters()
        .iter()
        .map(|parameter| parameter.inactive_value())
        .collect();
    for (&index, &unit) in searched.iter().zip(point) {
        values[index] = space.parameters()[index].from_unit(unit);
    }
    Assignment { values }
}

/// Draws every parameter CMA-ES does not search (categorical and conditional ones) from its
/// prior, independently; categorical choices are uniform.
fn draw_unsearched(
    space: &SearchSpace,
    searched: &[usize],
    assignment: &mut Assignment,
    rng: &mut ChaCha8Rng,
) {
    for (index, (parameter, value)) in space
        .parameters()
        .iter()
        .zip(assignment.values.iter_mut())
        .enumerate()
    {
        if !searched.contains(&index) {
            *value = parameter.from_quantile(rng.random::<f64>());
        }
    }
}

fn norm(vector: &[f64]) -> f64 {
    vector.iter().map(|value| value * value).sum::<f64>().sqrt()
}

/// A standard normal draw by the Box-Muller transform.
fn standard_normal(rng: &mut ChaCha8Rng) -> f64 {
    // `1 - u` lies in (0, 1], so the logarithm is finite.
    let radius = (-2.0 * (1.0 - rng.random::<f64>()).ln()).sqrt();
    let angle = 2.0 * std::f64::consts::PI * rng.random::<f64>();
    radius * angle.cos()
}

/// Eigenvalues and eigenvectors (as the columns of a row-major matrix) of a symmetric matrix,
/// by cyclic Jacobi rotations (Golub & Van Loan, *Matrix Computations*, §8.5): exact enough
/// for the small matrices of hyperparameter search, and never produces NaN from finite input.
fn symmetric_eigen(matrix: &[f64], n: usize) -> (Vec<f64>, Vec<f64>) {
    let mut a = matrix.to_vec();
    let mut vectors = vec![0.0; n * n];
    for i in 0..n {
        vectors[i * n + i] = 1.0;
    }
    for _sweep in 0..100 {
        let mut off_diagonal = 0.0;
        let mut diagonal = 0.0;
        for p in 0..n {
            diagonal += a[p * n + p] * a[p * n + p];
            for q in p + 1..n {
                off_diagonal += a[p * n + q] * a[p * n + q];
            }
        }
        if off_diagonal <= 1e-30 * diagonal || off_diagonal == 0.0 {
            break;
        }
        for p in 0..n {
            for q in p + 1..n {
                let apq = a[p * n + q];
                if apq == 0.0 {
                    continue;
                }
                let theta = (a[q * n + q] - a[p * n + p]) / (2.0 * apq);
                let t = theta.signum() / (theta.abs() + (theta * theta + 1.0).sqrt());
                let t = if theta == 0.0 { 1.0 } else { t };
                let c = 1.0 / (t * t + 1.0).sqrt();
                let s = t * c;
                for k in 0..n {
                    let (akp, akq) = (a[k * n + p], a[k * n + q]);
                    a[k * n + p] = c * akp - s * akq;
                    a[k * n + q] = s * akp + c * akq;
                }
                for k in 0..n {
                    let (apk, aqk) = (a[p * n + k], a[q * n + k]);
                    a[p * n + k] = c * apk - s * aqk;
                    a[q * n + k] = s * apk + c * aqk;
                }
                for k in 0..n {
                    let (vkp, vkq) = (vectors[k * n + p], vectors[k * n + q]);
                    vectors[k * n + p] = c * vkp - s * vkq;
                    vectors[k * n + q] = s * vkp + c * vkq;
                }
            }
        }
    }
    let values = (0..n).map(|i| a[i * n + i]).collect();
    (values, vectors)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::history::TrialCondition;
    use crate::objective::Direction;
    use crate::space::{Distribution, Parameter};

    fn double(name: &str) -> Parameter {
        Parameter {
            name: name.into(),
            domain: Domain::Double {
                min: -1.0,
                max: 1.0,
                step: None,
                distribution: Distribution::Uniform,
            },
        }
    }

    fn context<'a>(space: &'a SearchSpace, objective: &'a Objective) -> BuildContext<'a> {
        BuildContext {
            space,
            objective,
            max_trial_count: None,
            parallel_trial_count: None,
        }
    }

    fn sphere(assignment: &Assignment) -> f64 {
        assignment
            .values
            .iter()
            .map(|value| match value {
                Value::Double(x) => (x - 0.3) * (x - 0.3),
                Value::Int(x) => (*x as f64 - 3.0).powi(2),
                Value::Choice(index) => *index as f64,
            })
            .sum()
    }

    fn run_sequentially(
        algorithm: &dyn SearchAlgorithm,
        space: &SearchSpace,
        objective: &Objective,
        trials: usize,
    ) -> Vec<TrialRecord> {
        crate::testing::run_sequentially(algorithm, space, objective, trials, sphere)
    }

    #[test]
    fn a_short_trial_budget_lowers_the_population_size_to_six() {
        // The tutorial's 4 + floor(3 ln n): 9 in 6-D, 12 in 20-D, 6 in 2-D.
        assert_eq!(default_population_size(6, None), 9);
        assert_eq!(default_population_size(20, None), 12);
        assert_eq!(default_population_size(6, Some(100)), 6);
        assert_eq!(default_population_size(6, Some(10)), 6);
        assert_eq!(default_population_size(20, Some(160)), 10);
        assert_eq!(default_population_size(6, Some(300)), 9);
        assert_eq!(default_population_size(2, Some(50)), 6);
    }

    #[test]
    fn eigen_decomposition_reconstructs_the_matrix() {
        let matrix = [4.0, 1.0, 0.5, 1.0, 3.0, 0.2, 0.5, 0.2, 2.0];
        let (values, vectors) = symmetric_eigen(&matrix, 3);
        for row in 0..3 {
            for column in 0..3 {
                let rebuilt: f64 = (0..3)
                    .map(|k| vectors[row * 3 + k] * values[k] * vectors[column * 3 + k])
                    .sum();
                assert!((rebuilt - matrix[row * 3 + column]).abs() < 1e-10);
            }
        }
    }

    #[test]
    fn settings_are_validated_with_the_reason() {
        let space = SearchSpace::new(vec![double("a"), double("b")]).expect("space");
        let objective = Objective::new(Direction::Minimize, "loss");
        let error = build(
            &[Setting::new("sigma", "-10")],
            &context(&space, &objective),
        )
        .expect_err("sigma -10");
        assert!(error.to_string().contains("setting sigma"));
        assert!(error.to_string().contains("must be a number >= 0"));
        let error = build(
            &[Setting::new("restart_strategy", "sometimes")],
            &context(&space, &objective),
        )
        .expect_err("bad strategy");
        assert!(error.to_string().contains("must be none, ipop or bipop"));

        let one = SearchSpace::new(vec![double("a")]).expect("space");
        let error = build(&[], &context(&one, &objective)).expect_err("one dimension");
        assert!(
            error
                .to_string()
                .contains("CMA-ES needs at least two int or double parameters")
        );
    }

    #[test]
    fn sigma_is_katibs_any_number_from_zero_and_zero_means_the_default() {
        let space = SearchSpace::new(vec![double("a"), double("b")]).expect("space");
        let objective = Objective::new(Direction::Minimize, "loss");
        for (text, expected) in [("0", DEFAULT_SIGMA), ("2", 2.0), ("0.5", 0.5)] {
            let algorithm = build(&[Setting::new("sigma", text)], &context(&space, &objective))
                .expect("valid sigma");
            let cmaes = format!("{algorithm:?}");
            assert!(cmaes.contains(&format!("sigma: {expected:?}")), "{cmaes}");
            let history = run_sequentially(algorithm.as_ref(), &space, &objective, 30);
            assert!(
                history
                    .iter()
                    .all(|trial| space.contains(&trial.assignment))
            );
        }
    }

    #[test]
    fn categorical_parameters_are_drawn_beside_the_search_and_ignored_by_replay() {
        let optimizer = Parameter {
            name: "optimizer".into(),
            domain: Domain::Categorical {
                choices: vec!["sgd".into(), "adam".into(), "ftrl".into()],
            },
        };
        let mixed = SearchSpace::new(vec![double("a"), optimizer, double("b")]).expect("space");
        let numeric = SearchSpace::new(vec![double("a"), double("b")]).expect("space");
        let objective = Objective::new(Direction::Minimize, "loss");
        let settings = [Setting::new("random_state", "5")];
        let with_categorical = build(&settings, &context(&mixed, &objective)).expect("build");
        let without = build(&settings, &context(&numeric, &objective)).expect("build");
        let mixed_history = run_sequentially(with_categorical.as_ref(), &mixed, &objective, 60);
        let numeric_history = run_sequentially(without.as_ref(), &numeric, &objective, 60);
        // The sphere scores a choice by its index, so the categorical value changes the losses
        // but never the numeric search: the same points in the same order as without it.
        let mut choices: Vec<Value> = Vec::new();
        for trial in &mixed_history {
            if !choices.contains(&trial.assignment.values[1]) {
                choices.push(trial.assignment.values[1]);
            }
        }
        assert_eq!(choices.len(), 3, "every choice is drawn: {choices:?}");
        let mixed_numeric: Vec<[Value; 2]> = mixed_history
            .iter()
            .take(6)
            .map(|trial| [trial.assignment.values[0], trial.assignment.values[2]])
            .collect();
        let plain: Vec<[Value; 2]> = numeric_history
            .iter()
            .take(6)
            .map(|trial| [trial.assignment.values[0], trial.assignment.values[1]])
            .collect();
        assert_eq!(
            mixed_numeric, plain,
            "the first generation is the same candidates"
        );
        assert!(
            mixed_history
                .iter()
                .all(|trial| mixed.contains(&trial.assignment))
        );
        let again = run_sequentially(with_categorical.as_ref(), &mixed, &objective, 60);
        assert_eq!(mixed_history, again, "deterministic for a seed");
    }

    #[test]
    fn converges_on_a_sphere_and_replays_deterministically() {
        let space = SearchSpace::new(vec![double("a"), double("b"), double("c")]).expect("space");
        let objective = Objective::new(Direction::Minimize, "loss");
        let algorithm = build(
            &[Setting::new("random_state", "3")],
            &context(&space, &objective),
        )
        .expect("build");
        let history = run_sequentially(algorithm.as_ref(), &space, &objective, 200);
        let best = history
            .iter()
            .filter_map(|trial| trial.objective_value)
            .fold(f64::INFINITY, f64::min);
        assert!(best < 1e-3, "best {best}");
        let again = run_sequentially(algorithm.as_ref(), &space, &objective, 200);
        assert_eq!(history, again);
    }

    #[test]
    fn pending_generation_gets_fresh_samples_and_a_batch_fills_every_slot() {
        let space = SearchSpace::new(vec![double("a"), double("b")]).expect("space");
        let objective = Objective::new(Direction::Maximize, "accuracy");
        let algorithm = build(&[], &context(&space, &objective)).expect("build");
        let request = |trials: &[TrialRecord], count: usize| {
            algorithm
                .suggest(&SuggestRequest {
                    space: &space,
                    objective: &objective,
                    trials,
                    count,
                    cancel: crate::cancel::Cancellation::never(),
                })
                .expect("suggests")
        };
        // Six is the default population size in two dimensions; ask for nine at once.
        let first = request(&[], 9);
        assert_eq!(first.suggestions.len(), 9);
        let pending: Vec<TrialRecord> = first
            .suggestions
            .iter()
            .enumerate()
            .map(|(index, suggestion)| {
                TrialRecord::new(
                    format!("t{index}"),
                    suggestion.assignment.clone(),
                    TrialCondition::Running,
                )
            })
            .collect();
        let more = request(&pending, 3);
        assert_eq!(more.suggestions.len(), 3);
        for suggestion in &more.suggestions {
            assert!(space.contains(&suggestion.assignment));
            assert!(
                pending
                    .iter()
                    .all(|trial| trial.assignment != suggestion.assignment)
            );
        }
    }

    #[test]
    fn degenerate_histories_never_panic() {
        let space = SearchSpace::new(vec![
            double("a"),
            Parameter {
                name: "layers".into(),
                domain: Domain::Int {
                    min: 2,
                    max: 3,
                    step: 1,
                    distribution: Distribution::Uniform,
                },
            },
            Parameter {
                name: "width".into(),
                domain: Domain::Discrete {
                    values: vec![8.0],
                    labels: vec!["8".into()],
                },
            },
        ])
        .expect("space");
        let objective = Objective::new(Direction::Minimize, "loss");
        for strategy in ["none", "ipop", "bipop"] {
            let algorithm = build(
                &[Setting::new("restart_strategy", strategy)],
                &context(&space, &objective),
            )
            .expect("build");
            let mut history: Vec<TrialRecord> = Vec::new();
            for index in 0..300 {
                let suggestions = algorithm
                    .suggest(&SuggestRequest {
                        space: &space,
                        objective: &objective,
                        trials: &history,
                        count: 1,
                        cancel: crate::cancel::Cancellation::never(),
                    })
                    .expect("suggests");
                let assignment = suggestions.suggestions[0].assignment.clone();
                assert!(space.contains(&assignment));
                let (condition, value) = match index % 3 {
                    0 => (TrialCondition::Failed, None),
                    1 => (TrialCondition::Succeeded, Some(f64::NAN)),
                    _ => (TrialCondition::Succeeded, Some(1.0)),
                };
                let mut record = TrialRecord::new(format!("t{index}"), assignment, condition);
                record.objective_value = value;
                history.push(record);
            }
        }
    }
}
