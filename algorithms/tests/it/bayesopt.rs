//! Quality of `bayesianoptimization` on fixed seeds: after a short run its median simple regret
//! must be far below random search's over the same seeds, so a regression in the model, the
//! acquisition or its optimizer fails CI. When written, the margins were about 1000x (Branin,
//! 30 trials) and 4000x (Hartmann6, 60 trials); the tests ask for 50x and 10x (Hartmann6 has a
//! local optimum at regret 0.12 that some seeds stay in for a while). On Styblinski-Tang the
//! model must also carry what it learns about one parameter across the others (the additive
//! kernel component), which a regression in the kernel or its fit loses first.
//!
//! With several objectives and constraints: the exact expected hypervolume improvement against
//! brute-force Monte Carlo, the probability of feasibility, determinism, and quality against
//! random search on ZDT1, DTLZ2 and the constrained Branin, and batches with pending trials
//! and before any feasible trial.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use sextant_algorithms::algorithm::{BuildContext, SuggestRequest};
use sextant_algorithms::bayesopt::acquisition::{
    HypervolumeImprovement, log_probability_of_feasibility,
};
use sextant_algorithms::cancel::Cancellation;
use sextant_algorithms::hypervolume::hypervolume;
use sextant_algorithms::stats::{normal_cdf, normal_quantile};
use sextant_algorithms::test_functions::{TestFunction, median, regret_curve};
use sextant_algorithms::test_problems::{TestProblem, problem_trajectory};
use sextant_algorithms::{
    Assignment, Constraint, Setting, TrialCondition, TrialRecord, Value, build_algorithm, pareto,
};

const SEEDS: u64 = 5;

fn median_final_regret(algorithm: &str, function: TestFunction, trials: usize) -> f64 {
    let mut finals: Vec<f64> = (0..SEEDS)
        .map(|seed| {
            let settings = [Setting::new("random_state", seed.to_string())];
            let curve = regret_curve(algorithm, &settings, function, trials).expect("runs");
            curve[trials - 1]
        })
        .collect();
    median(&mut finals)
}

fn assert_far_better_than_random(function: TestFunction, trials: usize, factor: f64) {
    let gp = median_final_regret("bayesianoptimization", function, trials);
    let random = median_final_regret("random", function, trials);
    println!("{}: gp {gp:.3e}, random {random:.3e}", function.name());
    assert!(gp.is_finite() && gp >= 0.0);
    assert!(
        gp * factor < random,
        "{}: median regret {gp} is not below 1/{factor} of random search's {random}",
        function.name()
    );
}

#[test]
fn gp_beats_random_search_on_branin() {
    assert_far_better_than_random(TestFunction::Branin, 30, 50.0);
}

#[test]
fn gp_beats_random_search_on_hartmann6() {
    assert_far_better_than_random(TestFunction::Hartmann6, 60, 10.0);
}

#[test]
fn gp_puts_most_coordinates_of_styblinski_tang_in_the_better_basin() {
    // Each coordinate left in the worse of its two basins costs 14.1, so the bound asks for
    // none in the median run. Measured: median regret 1.7 after 100 trials (43 without the
    // additive kernel component, random search 109).
    let gp = median_final_regret("bayesianoptimization", TestFunction::StyblinskiTang, 100);
    println!("styblinski-tang: gp {gp:.3e}");
    assert!(gp.is_finite() && gp >= 0.0);
    assert!(gp < 10.0, "median regret {gp} after 100 trials (bound 10)");
}

// === Several objectives and constraints ===

/// A brute-force Monte Carlo estimate of the expected hypervolume improvement of an outcome
/// with independent Gaussian coordinates `N(means, sds^2)` over `front`, and its standard
/// error.
fn monte_carlo_improvement(
    front: &[Vec<f64>],
    reference: &[f64],
    means: &[f64],
    sds: &[f64],
    samples: usize,
) -> (f64, f64) {
    let mut rng = ChaCha8Rng::seed_from_u64(7);
    let base = hypervolume(front, reference);
    let mut points = front.to_vec();
    points.push(vec![0.0; means.len()]);
    let (mut sum, mut sum_of_squares) = (0.0, 0.0);
    for _ in 0..samples {
        for (m, value) in points.last_mut().expect("pushed").iter_mut().enumerate() {
            *value = means[m] + sds[m] * normal_quantile(rng.random_range(1e-12..1.0 - 1e-12));
        }
        let improvement = hypervolume(&points, reference) - base;
        sum += improvement;
        sum_of_squares += improvement * improvement;
    }
    let mean = sum / samples as f64;
    let variance = sum_of_squares / samples as f64 - mean * mean;
    (mean, (variance / samples as f64).sqrt())
}

fn expected_improvement(front: &[Vec<f64>], reference: &[f64], means: &[f64], sds: &[f64]) -> f64 {
    let improvement = HypervolumeImprovement::new(front, reference);
    let (mut d_means, mut d_sds) = (vec![0.0; means.len()], vec![0.0; means.len()]);
    improvement
        .log_expected(means, sds, &mut d_means, &mut d_sds)
        .exp()
}

#[test]
fn expected_hypervolume_improvement_matches_monte_carlo_in_two_and_three_objectives() {
    let front2 = vec![vec![0.1, 0.9], vec![0.4, 0.5], vec![0.8, 0.2]];
    let front3 = vec![
        vec![0.1, 0.6, 0.8],
        vec![0.5, 0.2, 0.6],
        vec![0.7, 0.7, 0.1],
        vec![0.3, 0.3, 0.5],
    ];
    // Each case: the front, the reference point, the posterior means and standard deviations.
    type Case<'a> = (&'a [Vec<f64>], Vec<f64>, Vec<f64>, Vec<f64>);
    let cases: [Case<'_>; 5] = [
        (&front2, vec![1.0, 1.0], vec![0.3, 0.4], vec![0.2, 0.3]),
        (&front2, vec![1.0, 1.0], vec![0.9, 0.9], vec![0.1, 0.05]),
        (&front2, vec![1.2, 1.5], vec![0.0, 0.0], vec![0.5, 0.5]),
        (
            &front3,
            vec![1.0, 1.0, 1.0],
            vec![0.3, 0.4, 0.3],
            vec![0.2, 0.1, 0.3],
        ),
        (
            &front3,
            vec![1.1, 1.1, 1.1],
            vec![0.6, 0.6, 0.6],
            vec![0.3, 0.3, 0.3],
        ),
    ];
    for (front, reference, means, sds) in cases {
        let exact = expected_improvement(front, &reference, &means, &sds);
        let (estimate, error) = monte_carlo_improvement(front, &reference, &means, &sds, 100_000);
        assert!(
            (exact - estimate).abs() < 4.0 * error + 1e-9,
            "{means:?} {sds:?}: exact {exact}, Monte Carlo {estimate} +- {error}"
        );
    }
}

#[test]
fn expected_hypervolume_improvement_without_variance_is_the_improvement_itself() {
    let front = vec![vec![0.1, 0.9], vec![0.4, 0.5], vec![0.8, 0.2]];
    let reference = [1.0, 1.0];
    // A dominated outcome improves nothing.
    let dominated = expected_improvement(&front, &reference, &[0.5, 0.6], &[1e-9, 1e-9]);
    assert_eq!(dominated, 0.0);
    // A non-dominated one improves by what it adds.
    let point = vec![0.3, 0.3];
    let mut with_point = front.clone();
    with_point.push(point.clone());
    let added = hypervolume(&with_point, &reference) - hypervolume(&front, &reference);
    let expected = expected_improvement(&front, &reference, &point, &[1e-9, 1e-9]);
    assert!((expected - added).abs() < 1e-6, "{expected} {added}");
}

#[test]
fn probability_of_feasibility_is_the_normal_cdf_even_far_in_its_tail() {
    for (mean, sd, threshold) in [(0.0, 1.0, 0.0), (1.0, 0.5, 0.2), (-2.0, 0.3, 1.0)] {
        let (log_probability, _, _) = log_probability_of_feasibility(mean, sd, threshold);
        let direct = normal_cdf((threshold - mean) / sd);
        assert!((log_probability.exp() - direct).abs() < 1e-7, "{mean} {sd}");
    }
    // Forty standard deviations infeasible: far below any float probability, still ordered.
    let far = log_probability_of_feasibility(40.0, 1.0, 0.0).0;
    let farther = log_probability_of_feasibility(50.0, 1.0, 0.0).0;
    assert!(far.is_finite() && farther < far && far < -700.0);
}

fn bayesopt_run(problem: TestProblem, seed: u64, trials: usize) -> Vec<TrialRecord> {
    let settings = [Setting::new("random_state", seed.to_string())];
    problem_trajectory("bayesianoptimization", &settings, problem, trials).expect("runs")
}

#[test]
fn several_objectives_and_constraints_are_deterministic_for_a_seed() {
    for problem in [TestProblem::Zdt1, TestProblem::ConstrainedBranin] {
        let first = bayesopt_run(problem, 4, 16);
        assert_eq!(first, bayesopt_run(problem, 4, 16), "{}", problem.name());
        assert_ne!(first, bayesopt_run(problem, 5, 16), "{}", problem.name());
    }
}

#[test]
fn gp_finds_larger_hypervolumes_than_random_search_in_few_trials() {
    // Measured when written, medians over seeds 0 to 4: ZDT1 after 40 trials GP 120.64,
    // random 102.5; DTLZ2 after 100 trials GP 0.598, random 0.322. A broken
    // acquisition scores candidates arbitrarily and lands near random search.
    for (problem, trials, margin) in [
        (TestProblem::Zdt1, 40, 10.0),
        (TestProblem::Dtlz2, 100, 0.1),
    ] {
        let mut gp: Vec<f64> = (0..5)
            .map(|seed| problem.hypervolume(&bayesopt_run(problem, seed, trials)))
            .collect();
        let mut random: Vec<f64> = (0..5)
            .map(|seed| {
                let settings = [Setting::new("random_state", seed.to_string())];
                let history =
                    problem_trajectory("random", &settings, problem, trials).expect("runs");
                problem.hypervolume(&history)
            })
            .collect();
        let (gp, random) = (median(&mut gp), median(&mut random));
        println!("{}: gp {gp}, random {random}", problem.name());
        assert!(
            gp > random + margin,
            "{}: gp {gp} random {random}",
            problem.name()
        );
    }
}

#[test]
fn constrained_gp_beats_random_search_tenfold_and_never_calls_an_infeasible_trial_optimal() {
    let problem = TestProblem::ConstrainedBranin;
    let regret =
        |history: &[TrialRecord]| problem.best_feasible(history) - TestFunction::Branin.optimum();
    let mut gp: Vec<f64> = (0..5)
        .map(|seed| regret(&bayesopt_run(problem, seed, 100)))
        .collect();
    let mut random: Vec<f64> = (0..5)
        .map(|seed| {
            let settings = [Setting::new("random_state", seed.to_string())];
            regret(&problem_trajectory("random", &settings, problem, 100).expect("runs"))
        })
        .collect();
    let (gp, random) = (median(&mut gp), median(&mut random));
    println!("constrained-branin: gp {gp:.3e}, random {random:.3e}");
    assert!(gp * 10.0 < random, "gp {gp} random {random}");

    let history = bayesopt_run(problem, 1, 60);
    let objective = problem.objective();
    let outcomes: Vec<_> = history
        .iter()
        .map(|trial| objective.outcome(trial).expect("every metric reported"))
        .collect();
    let front = pareto::pareto_front(&outcomes);
    assert!(front.iter().all(|&index| outcomes[index].is_feasible()));
}

#[test]
fn acquisitions_that_cannot_serve_several_objectives_or_constraints_are_refused() {
    let error = |problem: TestProblem, acquisition: &str| {
        let (space, objective) = (problem.space(), problem.objective());
        let context = BuildContext {
            space: &space,
            objective: &objective,
            max_trial_count: None,
            parallel_trial_count: None,
        };
        build_algorithm(
            "bayesianoptimization",
            &[Setting::new("acq_func", acquisition)],
            &context,
        )
        .err()
        .map(|error| error.to_string())
    };
    assert!(error(TestProblem::Zdt1, "PI").is_some_and(|e| e.contains("gp_hedge or EI")));
    assert!(error(TestProblem::Zdt1, "LCB").is_some_and(|e| e.contains("several objectives")));
    assert_eq!(error(TestProblem::Zdt1, "EI"), None);
    assert!(
        error(TestProblem::ConstrainedBranin, "LCB")
            .is_some_and(|e| e.contains("probability of feasibility"))
    );
    assert_eq!(error(TestProblem::ConstrainedBranin, "PI"), None);
}

#[test]
fn batches_with_pending_trials_and_no_feasible_trial_give_distinct_suggestions() {
    let problem = TestProblem::Zdt1;
    let space = problem.space();
    let mut objective = problem.objective();
    objective.constraints = Constraint::within("c", Some(0.5), None);
    let suggest = |trials: &[TrialRecord], count: usize| -> Vec<Assignment> {
        let context = BuildContext {
            space: &space,
            objective: &objective,
            max_trial_count: None,
            parallel_trial_count: None,
        };
        build_algorithm(
            "bayesianoptimization",
            &[Setting::new("random_state", "3")],
            &context,
        )
        .expect("builds")
        .suggest(&SuggestRequest {
            space: &space,
            objective: &objective,
            trials,
            count,
            cancel: Cancellation::never(),
        })
        .expect("suggests")
        .suggestions
        .into_iter()
        .map(|suggestion| suggestion.assignment)
        .collect()
    };
    let finished = |index: usize, assignment: Assignment, feasible: bool| {
        let x: Vec<f64> = assignment
            .values
            .iter()
            .map(|value| match value {
                Value::Double(v) => *v,
                other => panic!("double expected, got {other:?}"),
            })
            .collect();
        let mut metrics = problem.evaluate(&x);
        metrics.push(("c".into(), if feasible { 0.0 } else { 1.0 }));
        let mut trial =
            TrialRecord::new(format!("t{index}"), assignment, TrialCondition::Succeeded);
        trial.objective_value = Some(metrics[0].1);
        trial.metrics = metrics
            .into_iter()
            .map(|(name, value)| (name, value.to_string()))
            .collect();
        trial
    };
    let start = suggest(&[], 12);
    // Every trial infeasible: only the probability of feasibility guides the model.
    let mut history: Vec<TrialRecord> = start
        .iter()
        .enumerate()
        .map(|(index, assignment)| finished(index, assignment.clone(), false))
        .collect();
    let distinct = |history: &[TrialRecord], batch: &[Assignment]| {
        let mut keys: std::collections::HashSet<String> = history
            .iter()
            .map(|trial| space.assignment_key(&trial.assignment))
            .collect();
        batch.iter().all(|assignment| {
            space.contains(assignment) && keys.insert(space.assignment_key(assignment))
        })
    };
    let batch = suggest(&history, 4);
    assert!(distinct(&history, &batch), "{batch:?}");
    // Some feasible, some pending: a batch avoids the pending trials and itself.
    for (index, trial) in history.iter_mut().enumerate() {
        if index % 2 == 0 {
            *trial = finished(index, trial.assignment.clone(), true);
        }
    }
    for (index, assignment) in suggest(&history, 3).into_iter().enumerate() {
        history.push(TrialRecord::new(
            format!("pending-{index}"),
            assignment,
            TrialCondition::Running,
        ));
    }
    let batch = suggest(&history, 5);
    assert!(distinct(&history, &batch), "{batch:?}");
}
