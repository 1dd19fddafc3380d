//! Time of one `bayesianoptimization` suggestion (model fit plus acquisition search) with 10,
//! 100 and 1000 finished trials in the history, in 2-D (Branin) and 6-D (Hartmann6).

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use sextant_algorithms::algorithm::{BuildContext, SuggestRequest};
use sextant_algorithms::test_functions::TestFunction;
use sextant_algorithms::{
    Direction, Objective, Setting, TrialCondition, TrialRecord, build_algorithm,
};

/// `count` finished trials at pseudo-random points of the function's box.
fn history(function: TestFunction, count: usize) -> Vec<TrialRecord> {
    let space = function.space();
    let mut state = 0x9e37_79b9_7f4a_7c15_u64;
    (0..count)
        .map(|index| {
            let quantiles: Vec<f64> = (0..space.len())
                .map(|_| {
                    // SplitMix64: a fixed, dependency-free stream of points.
                    state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
                    let mut z = state;
                    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
                    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
                    ((z ^ (z >> 31)) >> 11) as f64 / (1u64 << 53) as f64
                })
                .collect();
            let assignment = space.from_quantiles(&quantiles);
            let value = function.evaluate_assignment(&assignment);
            let mut trial = TrialRecord::new(
                format!("trial-{index}"),
                assignment,
                TrialCondition::Succeeded,
            );
            trial.objective_value = Some(value);
            trial
        })
        .collect()
}

fn one_suggestion(c: &mut Criterion) {
    let objective = Objective::new(Direction::Minimize, "value");
    for function in [TestFunction::Branin, TestFunction::Hartmann6] {
        let space = function.space();
        let algorithm = build_algorithm(
            "bayesianoptimization",
            &[Setting::new("random_state", "1")],
            &BuildContext {
                space: &space,
                objective: &objective,
                max_trial_count: None,
                parallel_trial_count: None,
            },
        )
        .expect("builds");
        let mut group = c.benchmark_group(format!("bayesopt/{}-d", space.len()));
        for trials in [10, 100, 1000] {
            if trials == 1000 {
                group.sample_size(10);
            }
            let past = history(function, trials);
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

criterion_group!(benches, one_suggestion);
criterion_main!(benches);
