//! Grid search: every combination of the parameters' values, each exactly once.
//!
//! Combinations are enumerated in mixed-radix order (the last parameter varies fastest), and
//! any combination already present in the history, whatever its trial's condition, is skipped,
//! so the grid never proposes a duplicate even when called statelessly. Double parameters need
//! a `step`; int parameters use theirs (default 1); lists use every entry. When fewer untried
//! combinations remain than are requested, the answer is [`SuggestError::Exhausted`].

use std::collections::HashSet;

use crate::SuggestError;
use crate::algorithm::{BuildContext, SearchAlgorithm, SuggestRequest, Suggestions};
use crate::settings::{Setting, SettingsError, SettingsReader};
use crate::space::{Assignment, Domain, SearchSpace};

/// Katib's name of the algorithm.
pub const NAME: &str = "grid";

/// Grid search. It accepts Katib's `random_state` for compatibility; the order of the grid does
/// not depend on it.
#[derive(Debug, Clone, PartialEq)]
pub struct GridSearch {
    radices: Vec<u64>,
}

/// Builds grid search, checking that every parameter has finitely many values.
pub fn build(
    settings: &[Setting],
    context: &BuildContext<'_>,
) -> Result<Box<dyn SearchAlgorithm>, SettingsError> {
    let mut reader = SettingsReader::new(NAME, settings);
    reader.random_state()?;
    reader.finish()?;
    let radices = context
        .space
        .parameters()
        .iter()
        .map(|parameter| match (&parameter.domain, parameter.cardinality()) {
            (_, Some(count)) => Ok(count),
            (Domain::Double { .. }, None) | (_, None) => Err(SettingsError::UnsupportedSpace {
                algorithm: NAME.into(),
                reason: format!(
                    "parameter {:?} is a double without feasibleSpace.step; grid search needs a step for every double parameter",
                    parameter.name
                ),
            }),
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Box::new(GridSearch { radices }))
}

impl GridSearch {
    /// The number of combinations, saturating at `u128::MAX`.
    pub fn combinations(&self) -> u128 {
        self.radices.iter().fold(1u128, |product, radix| {
            product.saturating_mul(u128::from(*radix))
        })
    }

    fn combination(&self, space: &SearchSpace, mut index: u128) -> Assignment {
        let mut values = Vec::with_capacity(self.radices.len());
        for (parameter, radix) in space.parameters().iter().zip(&self.radices).rev() {
            let radix = u128::from(*radix);
            values.push(parameter.nth_value((index % radix) as u64));
            index /= radix;
        }
        values.reverse();
        Assignment { values }
    }
}

impl SearchAlgorithm for GridSearch {
    fn name(&self) -> &'static str {
        NAME
    }

    fn suggest(&self, request: &SuggestRequest<'_>) -> Result<Suggestions, SuggestError> {
        let space = request.space;
        let tried: HashSet<String> = request
            .trials
            .iter()
            .filter(|trial| space.contains(&trial.assignment))
            .map(|trial| space.assignment_key(&trial.assignment))
            .collect();
        let total = self.combinations();
        let remaining = total.saturating_sub(tried.len() as u128);
        if remaining < request.count as u128 {
            return Err(SuggestError::Exhausted {
                remaining,
                total,
                requested: request.count,
            });
        }
        let mut assignments = Vec::with_capacity(request.count);
        let mut index = 0u128;
        while assignments.len() < request.count && index < total {
            request.cancel.check()?;
            let assignment = self.combination(space, index);
            if !tried.contains(&space.assignment_key(&assignment)) {
                assignments.push(assignment);
            }
            index += 1;
        }
        Ok(Suggestions::from_assignments(assignments))
    }
}
