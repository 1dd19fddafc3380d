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
    let (_, builder) = REGISTRY
        .iter()
        .find(|(known, _)| *known == name)
        .ok_or_else(|| SettingsError::UnknownAlgorithm {
            name: name.into(),
            known: known_algorithms().iter().map(|n| n.to_string()).collect(),
        })?;
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
