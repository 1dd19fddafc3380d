//! Time of one `tpe` and one `multivariate-tpe` suggestion with 10, 100 and 1000 finished
//! trials in 2-D (Branin) and 6-D (Hartmann6). The history is the algorithm's own trajectory,
//! so the good group is as concentrated as in a real run.

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use sextant_algorithms::algorithm::{BuildContext, SuggestRequest};
use sextant_algorithms::test_functions::TestFunction;
use sextant_algorithms::{
    Direction, Objective, SearchAlgorithm, SearchSpace, Setting, TrialCondition, TrialRecord,
    build_algorithm,
};

/// `count` finished trials proposed one at a time by `algorithm` on `function`.
fn trajectory(
    algorithm: &dyn SearchAlgorithm,
    function: TestFunction,
    space: &SearchSpace,
    objective: &Objective,
    count: usize,
) -> Vec<TrialRecord> {
    let mut history: Vec<TrialRecord> = Vec::with_capacity(count);
    for index in 0..count {
        let suggestions = algorithm
            .suggest(&SuggestRequest {
                space,
                objective,
                trials: &history,
                count: 1,
            })
            .expect("suggests");
        let assignment = suggestions.suggestions[0].assignment.clone();
        let value = function.evaluate_assignment(&assignment);
        let mut trial = TrialRecord::new(
            format!("trial-{index}"),
            assignment,
            TrialCondition::Succeeded,
        );
        trial.objective_value = Some(value);
        history.push(trial);
    }
    history
}

fn one_suggestion(c: &mut Criterion) {
    let objective = Objective::new(Direction::Minimize, "value");
    for name in ["tpe", "multivariate-tpe"] {
        for function in [TestFunction::Branin, TestFunction::Hartmann6] {
            let space = function.space();
            let algorithm = build_algorithm(
                name,
                &[Setting::new("random_state", "1")],
                &BuildContext {
                    space: &space,
                    objective: &objective,
                    max_trial_count: None,
                    parallel_trial_count: None,
                },
            )
            .expect("builds");
            let mut group = c.benchmark_group(format!("{name}/{}-d", space.len()));
            for trials in [10, 100, 1000] {
                let past = trajectory(algorithm.as_ref(), function, &space, &objective, trials);
                group.bench_with_input(BenchmarkId::from_parameter(trials), &past, |b, past| {
                    b.iter(|| {
                        algorithm
                            .suggest(&SuggestRequest {
                                space: &space,
                                objective: &objective,
                                trials: past,
                                count: 1,
                            })
                            .expect("suggests")
                    });
                });
            }
            group.finish();
        }
    }
}

criterion_group!(benches, one_suggestion);
criterion_main!(benches);
