//! The registry: every search algorithm by Katib's name, the ones Katib has and Sextant leaves
//! out on purpose, and building one from its name and settings.
//!
//! Building validates: settings are parsed into the algorithm's typed struct and checked
//! against the search space, so `ValidateAlgorithmSettings` is exactly "can it be built".

use crate::algorithm::{BuildContext, SearchAlgorithm};
use crate::settings::{Setting, SettingsError};
use crate::{grid, random, sobol};

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
    (crate::nsga3::NAME, crate::nsga3::build),
    (crate::pbt::NAME, crate::pbt::build),
];

/// The algorithms that optimize several objectives; the others refuse an experiment with more
/// than one. The model-free ones need nothing of the objectives.
pub const MULTI_OBJECTIVE_ALGORITHMS: &[&str] = &[
    random::NAME,
    grid::NAME,
    sobol::NAME,
    crate::nsga2::NAME,
    crate::nsga3::NAME,
    crate::tpe::NAME,
    crate::tpe::MULTIVARIATE_NAME,
    crate::bayesopt::NAME,
];

/// The algorithms that learn from finished trials, so an experiment using one can start from
/// what earlier experiments learned (Sextant's `spec.warmStart.fromExperiments`: their trials
/// come first in the history). `random`, `grid` and `sobol` only avoid the points a history
/// holds (a foreign history would make `grid` skip points and shift `sobol`'s sequence for
/// nothing), and `hyperband` and `pbt` rebuild their brackets and generations from their own
/// trials' labels.
pub const WARM_START_ALGORITHMS: &[&str] = &[
    crate::tpe::NAME,
    crate::tpe::MULTIVARIATE_NAME,
    crate::bayesopt::NAME,
    crate::cmaes::NAME,
    crate::nsga2::NAME,
    crate::nsga3::NAME,
];

/// The algorithms whose history must hold only the trials they proposed: they rebuild their
/// state (brackets and rungs, generations and parents) from their own labels, so a trial they
/// did not propose (an enqueued point of `spec.warmStart.enqueue`) would break it.
pub const OWN_TRIALS_ONLY_ALGORITHMS: &[&str] = &[crate::hyperband::NAME, crate::pbt::NAME];

/// The algorithms that search a conditional space (see [`crate::space`]) correctly; the others
/// refuse one. `nsga2` and `nsga3` recombine parents in which different parameters were
/// active and `pbt` perturbs a parent choice in place, so a parameter a child activates would
/// take a value nobody drew for it.
pub const CONDITIONAL_ALGORITHMS: &[&str] = &[
    random::NAME,
    grid::NAME,
    sobol::NAME,
    crate::cmaes::NAME,
    crate::hyperband::NAME,
    crate::tpe::NAME,
    crate::tpe::MULTIVARIATE_NAME,
    crate::bayesopt::NAME,
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
/// algorithm not in [`MULTI_OBJECTIVE_ALGORITHMS`] refuses several objectives, and one not in
/// [`CONDITIONAL_ALGORITHMS`] a conditional space.
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
    if context.space.is_conditional() && !CONDITIONAL_ALGORITHMS.contains(&name) {
        return Err(SettingsError::UnsupportedSpace {
            algorithm: name.into(),
            reason: format!(
                "conditional parameters (parameters[].condition) are not supported by {name}; \
                 algorithms that support them: {}",
                CONDITIONAL_ALGORITHMS.join(", ")
            ),
        });
    }
    builder(settings, context)
}
