//! Warm starts: an experiment whose history begins with an earlier experiment's trials
//! (`spec.warmStart.fromExperiments`) reaches the earlier one's best value in under half the
//! trials the earlier one needed, over ten seeds.

use sextant_algorithms::test_functions::{TestFunction, median, warm_start_run};

/// The median over seeds 0 to 9 of the trials the warm-started run needs to reach the first
/// run's best (a run that never does counts as one past the budget), and of those the first
/// needed.
fn medians(algorithm: &str, function: TestFunction, trials: usize) -> (f64, f64) {
    let mut first = Vec::new();
    let mut second = Vec::new();
    for seed in 0..10 {
        let run = warm_start_run(algorithm, function, trials, seed).expect("runs");
        first.push(run.first_trials_to_best as f64);
        second.push(run.second_trials_to_best.unwrap_or(trials + 1) as f64);
    }
    (median(&mut first), median(&mut second))
}

#[test]
fn tpe_warm_started_reaches_the_first_best_in_under_half_the_trials() {
    let (first, second) = medians("tpe", TestFunction::Branin, 100);
    assert!(
        second < first / 2.0,
        "warm started: {second} trials, the first: {first}"
    );
}

#[test]
fn bayesianoptimization_warm_started_reaches_the_first_best_in_under_half_the_trials() {
    let (first, second) = medians("bayesianoptimization", TestFunction::Branin, 30);
    assert!(
        second < first / 2.0,
        "warm started: {second} trials, the first: {first}"
    );
}

#[test]
fn a_history_of_no_earlier_trials_changes_nothing() {
    use sextant_algorithms::test_functions::{trajectory, warm_started_run};
    use sextant_algorithms::{Direction, Objective, Setting};
    let settings = [Setting::new("random_state", "3")];
    let function = TestFunction::Branin;
    let plain = trajectory("tpe", &settings, function, 20).expect("runs");
    let warm = warm_started_run(
        "tpe",
        &settings,
        &function.space(),
        &Objective::new(Direction::Minimize, "value"),
        &[],
        20,
        |assignment| {
            let value = function.evaluate_assignment(assignment);
            (value, vec![("value".into(), value)])
        },
    )
    .expect("runs");
    assert_eq!(plain, warm);
}
