//! The domain model of hyperparameter search and the search algorithms that work on it.
//!
//! This crate owns what a search *is*: a [`SearchSpace`] of typed parameters, the [`Objective`],
//! the history of [`TrialRecord`]s, and every algorithm that turns them into new
//! [`Assignment`]s. It is pure: no tokio, no tonic, no sqlx, no file or network I/O, and every
//! algorithm is deterministic for a given seed (`random_state`) and history. The gRPC services
//! (`sextant-suggestion`) and the experiment controller call into it; it depends on nothing of
//! ours.
//!
//! # Layout
//! - [`space`]: parameters, feasible spaces, distributions, conditions (which parameters are
//!   active under which parent values), values and assignments; parsing and validating Katib's
//!   string-typed parameter specs once into typed values.
//! - [`objective`]: what is optimized (one or several objectives, outcome constraints), and the
//!   conversion of metric values into losses and violations.
//! - [`history`]: the trials observed so far.
//! - [`pareto`]: dominance, the non-dominated sort, crowding and the Pareto front.
//! - [`hypervolume`]: the exact hypervolume of a set of loss vectors, and the boxes of the
//!   region they leave.
//! - [`importance`]: parameter importance by fANOVA on a random forest.
//! - [`settings`]: typed parsing of Katib's `algorithmSettings` name/value pairs.
//! - [`algorithm`]: the [`SearchAlgorithm`] trait, what building and asking one take and give.
//! - [`registry`]: every algorithm by Katib's name, the ones left out, and building one.
//! - [`cancel`]: the token that stops a suggestion nobody waits for any more.
//! - [`random`], [`grid`], [`sobol`]: the model-free algorithms.
//! - [`genetic`]: the generations, tournament and variation operators NSGA-II and NSGA-III
//!   share.
//! - [`nsga2`]: NSGA-II for several objectives and constraints.
//! - [`nsga3`]: NSGA-III, reference-point selection for three or more objectives.
//! - [`bayesopt`]: Gaussian-process Bayesian optimization (`bayesianoptimization`), for one
//!   or several objectives and constraints.
//! - [`cmaes`]: CMA-ES with IPOP/BIPOP restarts, its state replayed from the history.
//! - [`hyperband`]: Hyperband, its state carried in the settings it returns.
//! - [`pbt`]: population-based training, its population rebuilt from the trials' labels.
//! - [`early_stopping`]: early-stopping rules (`medianstop`, `successivehalving` / `asha`) and
//!   their evaluation, by rules or live.
//! - [`tpe`]: tree-structured Parzen estimators, univariate (`tpe`) and multivariate.
//! - [`seed`]: deriving reproducible random streams from `random_state` and the history.
//! - [`stats`]: the normal distribution functions the samplers need.
//! - `test_functions` (feature `test-functions`): standard functions (Branin, Hartmann6, ...),
//!   our mixed and conditional spaces, and the regret loop that quality tests, the quality runner and the benches share.
//! - `pbt_benchmark` (feature `test-functions`): the PBT toy problem (Katib's `simple-pbt`),
//!   simulated, and `pbt` against random search on the same budget.
//! - `asha_benchmark` (feature `test-functions`): synthetic learning curves, and asynchronous
//!   successive halving against running every trial to the end.
//! - `test_problems` (feature `test-functions`): multi-objective (ZDT, DTLZ2) and constrained
//!   test problems and their loop, measured by hypervolume.

pub mod algorithm;
#[cfg(feature = "test-functions")]
pub mod asha_benchmark;
pub mod bayesopt;
pub mod cancel;
pub mod cmaes;
pub mod early_stopping;
pub mod genetic;
pub mod grid;
pub mod history;
pub mod hyperband;
pub mod hypervolume;
pub mod importance;
pub mod nsga2;
pub mod nsga3;
pub mod objective;
pub mod pareto;
pub mod pbt;
#[cfg(feature = "test-functions")]
pub mod pbt_benchmark;
pub mod random;
pub mod registry;
pub mod seed;
pub mod settings;
pub mod sobol;
pub mod space;
pub mod stats;
#[cfg(feature = "test-functions")]
pub mod test_functions;
#[cfg(feature = "test-functions")]
pub mod test_problems;
#[cfg(test)]
mod testing;
pub mod tpe;

pub use algorithm::{SearchAlgorithm, Suggestions};
pub use history::{TrialCondition, TrialRecord};
pub use objective::{Bound, Constraint, Direction, Objective, ObjectiveMetric, Outcome};
pub use registry::{build_algorithm, known_algorithms};
pub use settings::{Setting, SettingsError};
pub use space::{
    Assignment, Condition, Distribution, Domain, Parameter, ParameterType, RawCondition,
    RawParameter, SearchSpace, SpaceError, Value,
};

/// Why an algorithm could not produce the suggestions asked for.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SuggestError {
    /// Every point of a finite search space has been tried; nothing new can be proposed.
    #[error(
        "search space exhausted: {remaining} untried of {total} combinations, {requested} requested"
    )]
    Exhausted {
        /// Combinations not yet tried.
        remaining: u128,
        /// Combinations in the whole space.
        total: u128,
        /// Assignments asked for.
        requested: usize,
    },
    /// The request itself is not acceptable for this algorithm, e.g. a parameter kind it cannot
    /// search.
    #[error("{0}")]
    Unsupported(String),
    /// The trial history is inconsistent with the search space or the algorithm's state.
    #[error("invalid history: {0}")]
    InvalidHistory(String),
    /// Fewer assignments than requested can be proposed until running trials finish
    /// (Hyperband promotes from a rung only once all of it is done); ask for `available` now,
    /// or again later.
    #[error("{reason}")]
    NotReady {
        /// How many assignments can be proposed now.
        available: usize,
        /// Why no more can.
        reason: String,
    },
    /// The caller cancelled the request (its client went away or its deadline passed) before
    /// the algorithm finished.
    #[error("suggestion cancelled")]
    Cancelled,
}
