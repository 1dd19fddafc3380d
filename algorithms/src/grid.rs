//! Grid search: every combination of the parameters' values, each exactly once.
//!
//! Combinations are enumerated in mixed-radix order (the last parameter varies fastest), and
//! any combination already present in the history, whatever its trial's condition, is skipped,
//! so the grid never proposes a duplicate even when called statelessly. Double parameters need
//! a `step`; int parameters use theirs (default 1); lists use every entry. When fewer untried
//! combinations remain than are requested, the answer is [`SuggestError::Exhausted`].
//!
//! In a conditional space the grid enumerates the tree: a combination whose inactive
//! parameters are not at their first value is skipped, so each point appears once whatever
//! values its inactive parameters could have taken, and the count of combinations is the
//! tree's (`optimizer` in {sgd, adam} with five momenta for sgd is six points, not ten).

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
    /// The number of distinct points (the tree's, in a conditional space).
    points: u128,
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
    let points = tree_points(context.space, &radices);
    Ok(Box::new(GridSearch { radices, points }))
}

/// The number of distinct points of the space: the product over always-active parameters of
/// their subtree counts, where a parameter's count sums, over its values, the product of the
/// counts of the children that value activates (a leaf counts its values). Saturates at
/// `u128::MAX`.
fn tree_points(space: &SearchSpace, radices: &[u64]) -> u128 {
    let mut children = vec![Vec::new(); space.len()];
    for child in 0..space.len() {
        if let Some(condition) = space.condition(child) {
            children[condition.parent].push(child);
        }
    }
    // The recursion follows the condition tree, which validation keeps acyclic.
    fn subtree(
        index: usize,
        space: &SearchSpace,
        radices: &[u64],
        children: &[Vec<usize>],
    ) -> u128 {
        if children[index].is_empty() {
            return u128::from(radices[index]);
        }
        (0..radices[index] as usize).fold(0u128, |sum, value| {
            let product = children[index]
                .iter()
                .filter(|child| {
                    space
                        .condition(**child)
                        .is_some_and(|condition| condition.values.binary_search(&value).is_ok())
                })
                .fold(1u128, |product, child| {
                    product.saturating_mul(subtree(*child, space, radices, children))
                });
            sum.saturating_add(product)
        })
    }
    (0..space.len())
        .filter(|index| space.condition(*index).is_none())
        .fold(1u128, |product, root| {
            product.saturating_mul(subtree(root, space, radices, &children))
        })
}

impl GridSearch {
    /// The number of distinct points, saturating at `u128::MAX`.
    pub fn combinations(&self) -> u128 {
        self.points
    }

    /// The number of combinations of every parameter's values, inactive ones included: what
    /// the mixed-radix enumeration walks through.
    fn product(&self) -> u128 {
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
        let product = self.product();
        while assignments.len() < request.count && index < product {
            request.cancel.check()?;
            let assignment = self.combination(space, index);
            // Of the combinations that differ only in inactive values, the canonical one
            // stands for the point.
            if space.canonical(&assignment) == assignment
                && !tried.contains(&space.assignment_key(&assignment))
            {
                assignments.push(assignment);
            }
            index += 1;
        }
        Ok(Suggestions::from_assignments(assignments))
    }
}
