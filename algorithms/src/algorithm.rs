//! The interface every search algorithm implements: what building one is given, what a request
//! for suggestions holds, and what comes back. The algorithms depend on this module; the
//! registry that names and builds them is [`crate::registry`], so the two do not import each
//! other.
//!
//! A built algorithm is immutable and stateless between calls; any state an algorithm must
//! carry across calls (Hyperband's bracket) travels in the settings it returns, as Katib's
//! protocol has it.

use std::collections::BTreeMap;
use std::fmt::Debug;

use crate::SuggestError;
use crate::cancel::Cancellation;
use crate::history::TrialRecord;
use crate::objective::Objective;
use crate::settings::Setting;
use crate::space::{Assignment, SearchSpace};

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
