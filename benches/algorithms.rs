//! Time of one suggestion of each model-based algorithm (model fit, or state replay, plus the
//! search for the next point) with 10, 100 and 1000 finished trials in the history, in 2-D
//! (Branin) and 6-D (Hartmann6).
//!
//! The history is the algorithm's own sequential trajectory, so TPE's good group and CMA-ES's
//! generations look as in a real run; for the Gaussian process it is random search's, since
//! building its own 1000-trial trajectory would take minutes per bench run.

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use sextant_algorithms::algorithm::{BuildContext, SuggestRequest};
use sextant_algorithms::test_functions::{TestFunction, trajectory};
use sextant_algorithms::{Direction, Objective, Setting, build_algorithm};

/// Each algorithm with the algorithm whose trajectory serves as its history.
const ALGORITHMS: [(&str, &str); 4] = [
    ("bayesianoptimization", "random"),
    ("tpe", "tpe"),
    ("multivariate-tpe", "multivariate-tpe"),
    ("cmaes", "cmaes"),
];

fn one_suggestion(c: &mut Criterion) {
    let objective = Objective::new(Direction::Minimize, "value");
    let settings = [Setting::new("random_state", "1")];
    for (name, history_from) in ALGORITHMS {
        for function in [TestFunction::Branin, TestFunction::Hartmann6] {
            let space = function.space();
            let algorithm = build_algorithm(
                name,
                &settings,
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
                if trials == 1000 {
                    group.sample_size(10);
                }
                let past = trajectory(history_from, &settings, function, trials).expect("history");
                group.bench_with_input(BenchmarkId::from_parameter(trials), &past, |b, past| {
                    b.iter(|| {
                        algorithm
                            .suggest(&SuggestRequest {
                                space: &space,
                                objective: &objective,
                                trials: past,
                                count: 1,
                                cancel: sextant_algorithms::cancel::Cancellation::never(),
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
