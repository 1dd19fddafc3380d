//! NSGA-III through the public API: Das and Dennis's reference points, the normalisation by
//! ideal and extreme points with its fallback, niching, its settings' errors, determinism,
//! constraint domination in the choice of parents, and its hypervolume on DTLZ2 against
//! random search.

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use sextant_algorithms::algorithm::{BuildContext, SuggestRequest};
use sextant_algorithms::nsga3::{
    Association, Normalization, das_dennis_points, default_divisions, niche_select,
    reference_point_count,
};
use sextant_algorithms::test_functions::median;
use sextant_algorithms::test_problems::{TestProblem, problem_trajectory};
use sextant_algorithms::{
    Assignment, Bound, Constraint, Direction, Distribution, Domain, Objective, ObjectiveMetric,
    Parameter, SearchSpace, Setting, TrialCondition, TrialRecord, Value, build_algorithm,
};

/// `C(n, k)` by Pascal's triangle, independent of the crate's product formula.
fn binomial(n: usize, k: usize) -> usize {
    let mut row = vec![1usize];
    for _ in 0..n {
        let mut next = vec![1usize; row.len() + 1];
        for i in 1..row.len() {
            next[i] = row[i - 1] + row[i];
        }
        row = next;
    }
    row[k]
}

#[test]
fn das_dennis_points_are_counted_by_the_binomial_and_lie_on_the_simplex() {
    for (objectives, divisions) in [
        (2, 1),
        (2, 12),
        (3, 1),
        (3, 6),
        (3, 12),
        (4, 3),
        (5, 2),
        (8, 3),
    ] {
        let points = das_dennis_points(objectives, divisions);
        let expected = binomial(divisions + objectives - 1, objectives - 1);
        assert_eq!(points.len(), expected, "M = {objectives}, H = {divisions}");
        assert_eq!(reference_point_count(objectives, divisions), Some(expected));
        for point in &points {
            assert_eq!(point.len(), objectives);
            assert!((point.iter().sum::<f64>() - 1.0).abs() < 1e-12, "{point:?}");
            for coordinate in point {
                let steps = coordinate * divisions as f64;
                assert!(*coordinate >= 0.0 && (steps - steps.round()).abs() < 1e-9);
            }
        }
        let mut distinct = points.clone();
        distinct.sort_by(|a, b| a.partial_cmp(b).expect("finite"));
        distinct.dedup();
        assert_eq!(distinct.len(), points.len(), "no point twice");
    }
    // Deb and Jain's 91 points for three objectives and 12 divisions.
    assert_eq!(das_dennis_points(3, 12).len(), 91);
    // The default divisions give at most a population's worth of points.
    assert_eq!(default_divisions(3, 30), 6);
    assert_eq!(default_divisions(4, 30), 3);
    assert_eq!(default_divisions(5, 30), 2);
    assert_eq!(default_divisions(3, 92), 12);
    assert_eq!(default_divisions(40, 30), 1);
    assert_eq!(default_divisions(1, 30), 1);
}

#[test]
fn normalisation_divides_by_the_intercepts_of_the_extreme_points() {
    // Ideal point (1, 1, 1); the extreme points (3, 1, 1), (1, 5, 1), (1, 1, 9) span the plane
    // x / 2 + y / 4 + z / 8 = 1 of the translated losses.
    let losses = vec![
        vec![3.0, 1.0, 1.0],
        vec![1.0, 5.0, 1.0],
        vec![1.0, 1.0, 9.0],
        vec![2.0, 3.0, 1.0],
        vec![1.5, 2.0, 3.0],
    ];
    let normalization = Normalization::of(&losses, &[0, 1, 2, 3, 4]);
    assert_eq!(normalization.ideal, vec![1.0, 1.0, 1.0]);
    for (intercept, expected) in normalization.intercepts.iter().zip([2.0, 4.0, 8.0]) {
        assert!((intercept - expected).abs() < 1e-9, "{normalization:?}");
    }
    let close = |a: &[f64], b: &[f64]| a.iter().zip(b).all(|(x, y)| (x - y).abs() < 1e-9);
    assert!(close(&normalization.apply(&losses[3]), &[0.5, 0.5, 0.0]));
    assert!(close(&normalization.apply(&losses[4]), &[0.25, 0.25, 0.25]));
    assert!(close(&normalization.apply(&losses[2]), &[0.0, 0.0, 1.0]));
}

#[test]
fn a_degenerate_hyperplane_falls_back_to_the_worst_of_the_first_front() {
    // The third point is the extreme point of both the first and the second objective, so the
    // extreme points do not span a plane: the intercepts are the first front's worst losses.
    let losses = vec![
        vec![0.0, 0.0, 5.0],
        vec![5.0, 5.0, 0.0],
        vec![2.0, 3.0, 1.0],
        vec![6.0, 7.0, 8.0],
    ];
    let normalization = Normalization::of(&losses, &[0, 1, 2]);
    assert_eq!(normalization.ideal, vec![0.0, 0.0, 0.0]);
    assert_eq!(normalization.intercepts, vec![5.0, 5.0, 5.0]);
    // An objective in which the whole first front ties takes the worst of all members.
    let losses = vec![
        vec![0.0, 1.0, 1.0],
        vec![1.0, 1.0, 0.0],
        vec![2.0, 4.0, 2.0],
    ];
    let normalization = Normalization::of(&losses, &[0, 1]);
    assert_eq!(normalization.intercepts, vec![1.0, 3.0, 1.0]);
}

#[test]
fn niching_fills_the_least_crowded_niches_first() {
    let at = |reference: usize, distance: f64| Association {
        reference,
        distance,
    };
    // Three members already taken crowd reference point 0; the last front (positions 3 to 7)
    // has a member there, two at reference point 3 and one at 5.
    let associations = [
        at(0, 0.1),
        at(0, 0.2),
        at(0, 0.3),
        at(0, 0.0),
        at(3, 0.2),
        at(3, 0.1),
        at(5, 0.4),
        at(0, 0.05),
    ];
    for seed in 0..20 {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let mut picked = niche_select(&associations, 3, 2, 6, &mut rng);
        picked.sort_unstable();
        // The empty niches 3 and 5 each take their nearest member, never one at 0.
        assert_eq!(picked, vec![5, 6], "seed {seed}");
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let mut picked = niche_select(&associations, 3, 3, 6, &mut rng);
        picked.sort_unstable();
        // Then niche 3 (one member) before niche 0 (three).
        assert_eq!(picked, vec![4, 5, 6], "seed {seed}");
    }
    // More room than members: every last-front member, nothing else.
    let mut rng = ChaCha8Rng::seed_from_u64(0);
    let mut picked = niche_select(&associations, 3, 9, 6, &mut rng);
    picked.sort_unstable();
    assert_eq!(picked, vec![3, 4, 5, 6, 7]);
}

fn context<'a>(space: &'a SearchSpace, objective: &'a Objective) -> BuildContext<'a> {
    BuildContext {
        space,
        objective,
        max_trial_count: None,
        parallel_trial_count: None,
    }
}

#[test]
fn bad_settings_are_named() {
    let problem = TestProblem::Dtlz2;
    let (space, objective) = (problem.space(), problem.objective());
    let error_of = |settings: &[Setting]| {
        build_algorithm("nsga3", settings, &context(&space, &objective))
            .expect_err("invalid")
            .to_string()
    };
    for (name, value) in [
        ("divisions", "0"),
        ("divisions", "2.5"),
        ("divisions", "200"),
        ("population_size", "1"),
        ("crossover_probability", "1.5"),
        ("mutation_eta", "0"),
    ] {
        let message = error_of(&[Setting::new(name, value)]);
        assert!(
            message.starts_with(&format!("setting {name}: value \"{value}\"")),
            "{message}"
        );
    }
    // 200 divisions give C(202, 2) = 20301 points for three objectives.
    assert!(
        error_of(&[Setting::new("divisions", "200")])
            .contains("at most 10000 reference points for 3 objectives")
    );
    let message = error_of(&[Setting::new("division", "4")]);
    assert!(message.contains("unknown setting \"division\"") && message.contains("divisions"));
    build_algorithm(
        "nsga3",
        &[
            Setting::new("divisions", "12"),
            Setting::new("population_size", "92"),
        ],
        &context(&space, &objective),
    )
    .expect("valid settings");
}

#[test]
fn a_seed_gives_the_same_run_and_another_seed_another() {
    let run = |seed: &str| {
        problem_trajectory(
            "nsga3",
            &[Setting::new("random_state", seed)],
            TestProblem::Dtlz2,
            100,
        )
        .expect("runs")
        .into_iter()
        .map(|trial| trial.assignment)
        .collect::<Vec<Assignment>>()
    };
    let first = run("7");
    assert_eq!(first, run("7"));
    assert_ne!(first, run("8"));
}

/// Two int parameters: copied parents come back exactly.
fn int_space() -> SearchSpace {
    let int = |name: &str| Parameter {
        name: name.into(),
        domain: Domain::Int {
            min: 0,
            max: 100,
            step: 1,
            distribution: Distribution::Uniform,
        },
    };
    SearchSpace::new(vec![int("a"), int("b")]).expect("valid space")
}

#[test]
fn parents_are_chosen_by_constraint_domination() {
    let space = int_space();
    let mut objective = Objective::several(
        ObjectiveMetric::new(Direction::Minimize, "f1"),
        vec![
            ObjectiveMetric::new(Direction::Minimize, "f2"),
            ObjectiveMetric::new(Direction::Minimize, "f3"),
        ],
    );
    objective.constraints.push(Constraint {
        metric_name: "c".into(),
        bound: Bound::Max(0.0),
    });
    // Eight finished trials (two generations of four): two feasible with poor losses, six
    // infeasible with far better losses and violations 1 to 6.
    let trials: Vec<TrialRecord> = (0..8)
        .map(|index| {
            let feasible = index < 2;
            let loss = if feasible { 10.0 } else { 0.0 };
            let violation = if feasible { 0.0 } else { (index - 1) as f64 };
            let mut trial = TrialRecord::new(
                format!("t{index}"),
                Assignment {
                    values: vec![Value::Int(10 * index), Value::Int(90 - 10 * index)],
                },
                TrialCondition::Succeeded,
            );
            trial.objective_value = Some(loss + index as f64);
            trial.metrics = vec![
                ("f1".into(), (loss + index as f64).to_string()),
                ("f2".into(), (loss + 8.0 - index as f64).to_string()),
                ("f3".into(), loss.to_string()),
                ("c".into(), violation.to_string()),
            ];
            trial
        })
        .collect();
    // Without crossover or mutation every child copies a parent.
    let settings = [
        Setting::new("population_size", "4"),
        Setting::new("crossover_probability", "0"),
        Setting::new("mutation_probability", "0"),
    ];
    let algorithm =
        build_algorithm("nsga3", &settings, &context(&space, &objective)).expect("builds");
    let children = algorithm
        .suggest(&SuggestRequest {
            space: &space,
            objective: &objective,
            trials: &trials,
            count: 4,
            cancel: sextant_algorithms::cancel::Cancellation::never(),
        })
        .expect("suggests");
    // The parents are the two feasible trials and the two least violating (t2, t3), whatever
    // the losses of the others.
    let parents: Vec<&Assignment> = trials[..4].iter().map(|trial| &trial.assignment).collect();
    for child in &children.suggestions {
        assert!(
            parents.contains(&&child.assignment),
            "{:?} is not a parent",
            child.assignment
        );
    }
}

#[test]
fn nsga3_finds_larger_hypervolumes_than_random_search_on_dtlz2() {
    let problem = TestProblem::Dtlz2;
    let median_over_seeds = |algorithm: &str| {
        let mut volumes: Vec<f64> = (0..5)
            .map(|seed| {
                let settings = [Setting::new("random_state", seed.to_string())];
                let history = problem_trajectory(algorithm, &settings, problem, 200).expect("runs");
                problem.hypervolume(&history)
            })
            .collect();
        median(&mut volumes)
    };
    let nsga3 = median_over_seeds("nsga3");
    let random = median_over_seeds("random");
    assert!(nsga3 > random, "nsga3 {nsga3} random {random}");
}
