//! The interface every search algorithm implements, and the registry that builds one from
//! Katib's algorithm name and settings.
//!
//! Building validates: settings are parsed into the algorithm's typed struct and checked
//! against the search space, so `ValidateAlgorithmSettings` is exactly "can it be built".
//! A built algorithm is immutable and stateless between calls; any state an algorithm must
//! carry across calls (Hyperband's bracket) travels in the settings it returns, as Katib's
//! protocol has it.

use std::collections::BTreeMap;
use std::fmt::Debug;

use crate::SuggestError;
use crate::cancel::Cancellation;
use crate::history::TrialRecord;
use crate::objective::Objective;
use crate::settings::{Setting, SettingsError};
use crate::space::{Assignment, SearchSpace};
use crate::{grid, random, sobol};

/// What an algorithm is built for: the space, the objective and the experiment's budget.
#[derive(Debug, Clone, Copy)]
pub struct BuildContext<'a> {
    /// The space to search.
    pub space: &'a SearchSpace,
    /// What is optimized.
    pub objective: &'a Objective,
    /// `maxTrialCount`, when the experiment sets it.
    pub max_trial_count: Option<u32>,
    /// `parallelTrialCount`, when the experiment sets it.
    pub parallel_trial_count: Option<u32>,
}

/// One call for new assignments.
#[derive(Debug, Clone, Copy)]
pub struct SuggestRequest<'a> {
    /// The space to search.
    pub space: &'a SearchSpace,
    /// What is optimized.
    pub objective: &'a Objective,
    /// Every trial so far, pending ones included, so their points are not proposed again.
    pub trials: &'a [TrialRecord],
    /// How many assignments to return; exactly this many, or an error.
    pub count: usize,
    /// Checked in the algorithm's loops; once set, the algorithm stops with
    /// [`SuggestError::Cancelled`].
    pub cancel: &'a Cancellation,
}

/// The most suggestions of one batch a model-based algorithm (`bayesianoptimization`, `tpe`,
/// `multivariate-tpe`) chooses with its model. Each model-based point of a batch conditions the
/// next, so a batch costs more than linearly in its size; beyond this many, the batch is filled
/// with the algorithm's quasi-random start-up sequence, each such suggestion carrying
/// [`SOURCE_LABEL`] = [`QUASI_RANDOM`], so a 10,000-trial request costs about as much as one of
/// this size plus 10,000 Sobol points.
pub const MODEL_BATCH_LIMIT: usize = 64;

/// The trial label that says where a suggestion came from when it is not the model's choice.
pub const SOURCE_LABEL: &str = "sextant.dev/suggestion-source";

/// The value of [`SOURCE_LABEL`] on points that filled a batch past [`MODEL_BATCH_LIMIT`].
pub const QUASI_RANDOM: &str = "quasi-random";

/// A suggestion that fills a batch past [`MODEL_BATCH_LIMIT`], labelled as such.
pub fn quasi_random_fill(assignment: Assignment) -> Suggestion {
    Suggestion {
        assignment,
        labels: BTreeMap::from([(SOURCE_LABEL.to_string(), QUASI_RANDOM.to_string())]),
    }
}

/// One proposed trial.
#[derive(Debug, Clone, PartialEq)]
pub struct Suggestion {
    /// The values to try.
    pub assignment: Assignment,
    /// Labels to put on the trial (algorithm bookkeeping); usually empty.
    pub labels: BTreeMap<String, String>,
}

/// The answer to a [`SuggestRequest`].
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Suggestions {
    /// Exactly as many suggestions as requested.
    pub suggestions: Vec<Suggestion>,
    /// Settings to hand back to the caller, who sends them with the next request; `None`
    /// when the algorithm keeps no state.
    pub settings: Option<Vec<Setting>>,
}

impl Suggestions {
    /// Suggestions without labels or state.
    pub fn from_assignments(assignments: Vec<Assignment>) -> Suggestions {
        Suggestions {
            suggestions: assignments
                .into_iter()
                .map(|assignment| Suggestion {
                    assignment,
                    labels: BTreeMap::new(),
                })
                .collect(),
            settings: None,
        }
    }
}

/// A search algorithm, built and validated for one experiment.
pub trait SearchAlgorithm: Debug + Send + Sync {
    /// Katib's name of the algorithm.
    fn name(&self) -> &'static str;

    /// Proposes exactly `request.count` assignments.
    fn suggest(&self, request: &SuggestRequest<'_>) -> Result<Suggestions, SuggestError>;
}

type Builder = fn(&[Setting], &BuildContext<'_>) -> Result<Box<dyn SearchAlgorithm>, SettingsError>;

/// Every algorithm by Katib's name.
const REGISTRY: &[(&str, Builder)] = &[
    (random::NAME, random::build),
    (grid::NAME, grid::build),
    (sobol::NAME, sobol::build),
    (crate::cmaes::NAME, crate::cmaes::build),
    (crate::hyperband::NAME, crate::hyperband::build),
    (crate::tpe::NAME, crate::tpe::build),
    (crate::bayesopt::NAME, crate::bayesopt::build),
    (
        crate::tpe::MULTIVARIATE_NAME,
        crate::tpe::build_multivariate,
    ),
    (crate::nsga2::NAME, crate::nsga2::build),
];

/// The algorithms that optimize several objectives; the others refuse an experiment with more
/// than one. The model-free ones need nothing of the objectives.
pub const MULTI_OBJECTIVE_ALGORITHMS: &[&str] = &[
    random::NAME,
    grid::NAME,
    sobol::NAME,
    crate::nsga2::NAME,
    crate::tpe::NAME,
    crate::tpe::MULTIVARIATE_NAME,
];

/// Katib's algorithms that Sextant does not implement, with the reason a request for one is
/// refused: named before anything else of the request is read, so the answer is the same
/// whatever the request holds (a NAS request comes with a `nas_config` and no parameters).
const UNSUPPORTED: &[(&str, &str)] = &[
    (
        "enas",
        "neural architecture search (NAS: enas, darts) is not supported; Sextant searches \
         hyperparameters only",
    ),
    (
        "darts",
        "neural architecture search (NAS: enas, darts) is not supported; Sextant searches \
         hyperparameters only",
    ),
    (
        "pbt",
        "population based training (pbt) is not supported; hyperband is the multi-fidelity \
         algorithm available",
    ),
];

/// Checks that `name` is an algorithm that can be built, before its settings or space are read.
pub fn check_algorithm_name(name: &str) -> Result<(), SettingsError> {
    if REGISTRY.iter().any(|(known, _)| *known == name) {
        Ok(())
    } else {
        Err(not_buildable(name))
    }
}

/// Why Sextant does not run `name`, when it is one of Katib's algorithms left out on purpose.
pub fn unsupported_reason(name: &str) -> Option<&'static str> {
    UNSUPPORTED
        .iter()
        .find(|(unsupported, _)| *unsupported == name)
        .map(|(_, reason)| *reason)
}

fn not_buildable(name: &str) -> SettingsError {
    match unsupported_reason(name) {
        Some(reason) => SettingsError::UnsupportedAlgorithm {
            name: name.into(),
            reason: reason.into(),
        },
        None => SettingsError::UnknownAlgorithm {
            name: name.into(),
            known: known_algorithms().iter().map(|n| n.to_string()).collect(),
        },
    }
}

/// The names of every algorithm, in registry order.
pub fn known_algorithms() -> Vec<&'static str> {
    REGISTRY.iter().map(|(name, _)| *name).collect()
}

/// Builds the algorithm `name` with `settings`, validating both against the context; an
/// algorithm not in [`MULTI_OBJECTIVE_ALGORITHMS`] refuses several objectives.
pub fn build_algorithm(
    name: &str,
    settings: &[Setting],
    context: &BuildContext<'_>,
) -> Result<Box<dyn SearchAlgorithm>, SettingsError> {
    let Some((_, builder)) = REGISTRY.iter().find(|(known, _)| *known == name) else {
        return Err(not_buildable(name));
    };
    if context.objective.is_multi_objective() && !MULTI_OBJECTIVE_ALGORITHMS.contains(&name) {
        return Err(SettingsError::SingleObjectiveOnly {
            algorithm: name.into(),
            objectives: context.objective.objective_count(),
            capable: MULTI_OBJECTIVE_ALGORITHMS
                .iter()
                .map(|known| known.to_string())
                .collect(),
        });
    }
    builder(settings, context)
}
