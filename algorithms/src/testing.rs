//! Helpers for the algorithms' unit tests: asking for suggestions with the checks every test
//! wants (the count asked for, every point feasible), and running an algorithm sequentially
//! against a loss.

use crate::algorithm::{SearchAlgorithm, SuggestRequest};
use crate::history::{TrialCondition, TrialRecord};
use crate::objective::Objective;
use crate::space::{Assignment, SearchSpace};

/// `count` suggestions for `trials`, checked to be exactly `count` and all feasible.
pub(crate) fn suggest_feasible(
    algorithm: &dyn SearchAlgorithm,
    space: &SearchSpace,
    objective: &Objective,
    trials: &[TrialRecord],
    count: usize,
) -> Vec<Assignment> {
    let suggestions = algorithm
        .suggest(&SuggestRequest {
            space,
            objective,
            trials,
            count,
            cancel: crate::cancel::Cancellation::never(),
        })
        .expect("suggests");
    assert_eq!(suggestions.suggestions.len(), count);
    let assignments: Vec<Assignment> = suggestions
        .suggestions
        .into_iter()
        .map(|suggestion| suggestion.assignment)
        .collect();
    for assignment in &assignments {
        assert!(space.contains(assignment), "infeasible {assignment:?}");
    }
    assignments
}

/// The history of `count` trials the algorithm proposes one at a time, each scored by `loss`.
pub(crate) fn run_sequentially(
    algorithm: &dyn SearchAlgorithm,
    space: &SearchSpace,
    objective: &Objective,
    count: usize,
    loss: impl Fn(&Assignment) -> f64,
) -> Vec<TrialRecord> {
    let mut history: Vec<TrialRecord> = Vec::with_capacity(count);
    for index in 0..count {
        let assignment = suggest_feasible(algorithm, space, objective, &history, 1).remove(0);
        let value = loss(&assignment);
        let mut record = TrialRecord::new(
            format!("trial-{index}"),
            assignment,
            TrialCondition::Succeeded,
        );
        record.objective_value = Some(value);
        history.push(record);
    }
    history
}
