//! Several objectives and constraints through the public API: NSGA-II's quality against
//! random search and MOTPE's against NSGA-II and Optuna's TPE on ZDT1, ZDT2 and DTLZ2,
//! constrained TPE against random search on the
//! constrained Branin, the refusal of single-objective algorithms, and NSGA-II's feasibility
//! and reproducibility on any space.

use proptest::prelude::*;
use sextant_algorithms::algorithm::{BuildContext, SuggestRequest};
use sextant_algorithms::test_functions::{TestFunction, median};
use sextant_algorithms::test_problems::{TestProblem, problem_trajectory};
use sextant_algorithms::{
    Assignment, Direction, Objective, ObjectiveMetric, SearchSpace, Setting, SettingsError,
    TrialCondition, TrialRecord, build_algorithm, pareto,
};

use crate::properties::space;

const SEEDS: u64 = 5;

/// The median over `SEEDS` seeds of `measure` after `trials` trials of `algorithm`.
fn median_over_seeds(
    algorithm: &str,
    problem: TestProblem,
    trials: usize,
    measure: impl Fn(&[TrialRecord]) -> f64,
) -> f64 {
    let mut values: Vec<f64> = (0..SEEDS)
        .map(|seed| {
            let settings = [Setting::new("random_state", seed.to_string())];
            let history = problem_trajectory(algorithm, &settings, problem, trials).expect("runs");
            measure(&history)
        })
        .collect();
    median(&mut values)
}

#[test]
fn nsga2_finds_larger_hypervolumes_than_random_search() {
    for problem in [TestProblem::Zdt1, TestProblem::Zdt2, TestProblem::Dtlz2] {
        let nsga2 = median_over_seeds("nsga2", problem, 200, |h| problem.hypervolume(h));
        let random = median_over_seeds("random", problem, 200, |h| problem.hypervolume(h));
        assert!(
            nsga2 > random,
            "{}: nsga2 {nsga2} random {random}",
            problem.name()
        );
    }
}

#[test]
fn motpe_beats_nsga2_and_optuna_tpe_anchors() {
    // Optuna 5.0's TPE hypervolume medians over 10 seeds of 200 trials, the peers' figures;
    // five seeds here.
    for (problem, optuna_tpe) in [
        (TestProblem::Zdt1, 115.43),
        (TestProblem::Zdt2, 108.40),
        (TestProblem::Dtlz2, 0.6763),
    ] {
        let tpe = median_over_seeds("tpe", problem, 200, |h| problem.hypervolume(h));
        let nsga2 = median_over_seeds("nsga2", problem, 200, |h| problem.hypervolume(h));
        assert!(
            tpe > nsga2 && tpe > optuna_tpe,
            "{}: tpe {tpe} nsga2 {nsga2} Optuna TPE {optuna_tpe}",
            problem.name()
        );
    }
}

#[test]
fn constrained_tpe_beats_random_search_tenfold_and_never_calls_an_infeasible_trial_optimal() {
    let problem = TestProblem::ConstrainedBranin;
    let regret =
        |history: &[TrialRecord]| problem.best_feasible(history) - TestFunction::Branin.optimum();
    let tpe = median_over_seeds("tpe", problem, 100, regret);
    let random = median_over_seeds("random", problem, 100, regret);
    assert!(tpe * 10.0 < random, "tpe {tpe} random {random}");

    let history = problem_trajectory("tpe", &[Setting::new("random_state", "1")], problem, 100)
        .expect("runs");
    let objective = problem.objective();
    let outcomes: Vec<_> = history
        .iter()
        .map(|trial| objective.outcome(trial).expect("every metric reported"))
        .collect();
    assert!(outcomes.iter().any(|outcome| !outcome.is_feasible()));
    let front = pareto::pareto_front(&outcomes);
    assert_eq!(front.len(), 1);
    assert!(front.iter().all(|&index| outcomes[index].is_feasible()));
}

#[test]
fn single_objective_algorithms_refuse_several_objectives() {
    let problem = TestProblem::Zdt1;
    let space = problem.space();
    let objective = problem.objective();
    let context = BuildContext {
        space: &space,
        objective: &objective,
        max_trial_count: Some(10),
        parallel_trial_count: Some(1),
    };
    for algorithm in ["cmaes", "hyperband"] {
        let error = build_algorithm(algorithm, &[], &context).expect_err(algorithm);
        assert!(
            matches!(
                error,
                SettingsError::SingleObjectiveOnly { objectives: 2, .. }
            ),
            "{algorithm}: {error}"
        );
        let message = error.to_string();
        assert!(message.starts_with(&format!(
            "algorithm {algorithm} optimizes a single objective"
        )));
        assert!(
            message.contains("nsga2")
                && message.contains("nsga3")
                && message.contains("bayesianoptimization"),
            "{message}"
        );
    }
    for algorithm in [
        "random",
        "sobol",
        "nsga2",
        "nsga3",
        "tpe",
        "multivariate-tpe",
        "bayesianoptimization",
    ] {
        build_algorithm(algorithm, &[], &context).expect(algorithm);
    }
}

fn nsga2_suggestions(
    space: &SearchSpace,
    objective: &Objective,
    trials: &[TrialRecord],
    count: usize,
) -> Vec<Assignment> {
    let context = BuildContext {
        space,
        objective,
        max_trial_count: None,
        parallel_trial_count: None,
    };
    let settings = [
        Setting::new("random_state", "3"),
        Setting::new("population_size", "4"),
    ];
    build_algorithm("nsga2", &settings, &context)
        .expect("builds")
        .suggest(&SuggestRequest {
            space,
            objective,
            trials,
            count,
            cancel: sextant_algorithms::cancel::Cancellation::never(),
        })
        .expect("suggests")
        .suggestions
        .into_iter()
        .map(|suggestion| suggestion.assignment)
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn nsga2_gives_feasible_reproducible_offspring_on_any_space(
        space in space(),
        count in 1usize..8,
        values in proptest::collection::vec((0.0f64..10.0, 0.0f64..10.0), 12),
    ) {
        let objective = Objective::several(
            ObjectiveMetric::new(Direction::Minimize, "a"),
            vec![ObjectiveMetric::new(Direction::Maximize, "b")],
        );
        // Twelve finished trials (three generations of four) drawn by NSGA-II itself, so
        // the offspring come from selection, crossover and mutation.
        let mut history: Vec<TrialRecord> = Vec::new();
        for (index, (a, b)) in values.iter().enumerate() {
            let assignment = nsga2_suggestions(&space, &objective, &history, 1).remove(0);
            prop_assert!(space.contains(&assignment));
            let mut trial = TrialRecord::new(format!("t{index}"), assignment, TrialCondition::Succeeded);
            trial.objective_value = Some(*a);
            trial.metrics = vec![("a".into(), a.to_string()), ("b".into(), b.to_string())];
            history.push(trial);
        }
        let batch = nsga2_suggestions(&space, &objective, &history, count);
        prop_assert_eq!(batch.len(), count);
        for assignment in &batch {
            prop_assert!(space.contains(assignment), "{:?}", space.format_assignment(assignment));
        }
        prop_assert_eq!(batch, nsga2_suggestions(&space, &objective, &history, count));
    }
}
