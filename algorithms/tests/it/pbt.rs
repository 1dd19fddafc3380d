//! Population-based training: settings validated as Katib's service validates them, generation
//! 0 from the priors, exploit from the top fraction with the top trial as parent, explore by
//! Katib's factors or by resampling, Katib's labels, failed members proposed again, and the
//! population rebuilt from the labels alone.

use std::collections::BTreeMap;

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use sextant_algorithms::algorithm::{BuildContext, SuggestRequest, Suggestions};
use sextant_algorithms::pbt::{GENERATION_LABEL, MEMBER_LABEL, PARENT_LABEL, perturb};
use sextant_algorithms::registry::build_algorithm;
use sextant_algorithms::{
    Direction, Distribution, Domain, Objective, Parameter, SearchSpace, Setting, SettingsError,
    SuggestError, TrialCondition, TrialRecord, Value,
};

fn space() -> SearchSpace {
    SearchSpace::new(vec![
        Parameter {
            name: "lr".into(),
            domain: Domain::Double {
                min: 0.0001,
                max: 0.02,
                step: None,
                distribution: Distribution::Uniform,
            },
        },
        Parameter {
            name: "batch".into(),
            domain: Domain::Int {
                min: 1,
                max: 512,
                step: 1,
                distribution: Distribution::Uniform,
            },
        },
        Parameter {
            name: "optimizer".into(),
            domain: Domain::Categorical {
                choices: vec!["sgd".into(), "adam".into(), "ftrl".into()],
            },
        },
    ])
    .expect("space")
}

fn settings(extra: &[(&str, &str)]) -> Vec<Setting> {
    let mut settings = vec![
        Setting::new("suggestion_trial_dir", "/var/log/katib/checkpoints/"),
        Setting::new("n_population", "10"),
        Setting::new("truncation_threshold", "0.2"),
    ];
    for (name, value) in extra {
        settings.retain(|setting| setting.name != *name);
        settings.push(Setting::new(*name, *value));
    }
    settings
}

fn build_error(settings: &[Setting]) -> SettingsError {
    let space = space();
    let objective = Objective::new(Direction::Maximize, "accuracy");
    build_algorithm(
        "pbt",
        settings,
        &BuildContext {
            space: &space,
            objective: &objective,
            max_trial_count: None,
            parallel_trial_count: None,
        },
    )
    .expect_err("invalid settings")
}

fn suggest(
    settings: &[Setting],
    trials: &[TrialRecord],
    count: usize,
) -> Result<Suggestions, SuggestError> {
    let space = space();
    let objective = Objective::new(Direction::Maximize, "accuracy");
    let context = BuildContext {
        space: &space,
        objective: &objective,
        max_trial_count: None,
        parallel_trial_count: None,
    };
    let algorithm = build_algorithm("pbt", settings, &context).expect("valid settings");
    algorithm.suggest(&SuggestRequest {
        space: &space,
        objective: &objective,
        trials,
        count,
        cancel: sextant_algorithms::cancel::Cancellation::never(),
    })
}

/// Turns suggestions into trials of the history, named `trial-<n>`, all `condition`.
fn record(history: &mut Vec<TrialRecord>, reply: Suggestions, condition: TrialCondition) {
    for suggestion in reply.suggestions {
        let mut trial = TrialRecord::new(
            format!("trial-{}", history.len()),
            suggestion.assignment,
            condition,
        );
        trial.labels = suggestion.labels;
        history.push(trial);
    }
}

/// Finishes the pending trials with the objective `accuracy(trial)`.
/// Generation 0 of ten members, all running.
fn generation_zero(settings: &[Setting]) -> Vec<TrialRecord> {
    let mut history = Vec::new();
    record(
        &mut history,
        suggest(settings, &[], 10).expect("generation 0"),
        TrialCondition::Running,
    );
    history
}

fn finish(history: &mut [TrialRecord], accuracy: impl Fn(&TrialRecord) -> f64) {
    for trial in history
        .iter_mut()
        .filter(|trial| trial.condition.is_pending())
    {
        trial.condition = TrialCondition::Succeeded;
        trial.objective_value = Some(accuracy(trial));
    }
}

fn member(trial: &TrialRecord) -> usize {
    trial.labels[MEMBER_LABEL].parse().expect("member label")
}

fn lr(values: &[Value]) -> f64 {
    match values[0] {
        Value::Double(lr) => lr,
        other => panic!("lr is a double, got {other:?}"),
    }
}

#[test]
fn settings_are_validated_naming_the_setting() {
    let error = build_error(&[Setting::new("n_population", "10")]);
    assert_eq!(
        error.to_string(),
        "algorithm pbt requires the settings suggestion_trial_dir, n_population, \
         truncation_threshold; missing: suggestion_trial_dir, truncation_threshold"
    );
    let error = build_error(&settings(&[("n_population", "4")]));
    assert_eq!(
        error.to_string(),
        r#"setting n_population: value "4" must be an integer >= 5"#
    );
    let error = build_error(&settings(&[("truncation_threshold", "1.5")]));
    assert!(
        error
            .to_string()
            .starts_with("setting truncation_threshold:"),
        "{error}"
    );
    let error = build_error(&settings(&[("resample_probability", "1.5")]));
    assert_eq!(
        error.to_string(),
        r#"setting resample_probability: value "1.5" must be a number between 0 and 1, inclusive"#
    );
    let error = build_error(&settings(&[("suggestion_trial_dir", "checkpoints")]));
    assert!(
        error.to_string().starts_with(
            r#"setting suggestion_trial_dir: value "checkpoints" must be an absolute path"#
        ),
        "{error}"
    );
    let error = build_error(&settings(&[("n_populaton", "10")]));
    assert!(
        error
            .to_string()
            .contains("unknown setting \"n_populaton\""),
        "{error}"
    );
}

#[test]
fn generation_zero_draws_the_population_with_katibs_labels() {
    let reply = suggest(&settings(&[]), &[], 10).expect("generation 0");
    assert_eq!(reply.suggestions.len(), 10);
    for (index, suggestion) in reply.suggestions.iter().enumerate() {
        assert!(space().contains(&suggestion.assignment));
        assert_eq!(suggestion.labels[GENERATION_LABEL], "0");
        assert_eq!(suggestion.labels[MEMBER_LABEL], index.to_string());
        assert!(!suggestion.labels.contains_key(PARENT_LABEL));
    }
    // More than the population cannot be proposed before generation 0 has finished.
    match suggest(&settings(&[]), &[], 11) {
        Err(SuggestError::NotReady { available: 10, .. }) => {}
        other => panic!("expected NotReady with 10 available, got {other:?}"),
    }
}

#[test]
fn bottom_members_exploit_a_top_member_and_explore_by_katibs_factors() {
    let settings = settings(&[("random_state", "3")]);
    let mut history = generation_zero(&settings);
    // Member i scores i: members 8 and 9 are the top fifth, 0 and 1 the bottom fifth.
    finish(&mut history, |trial| member(trial) as f64);
    let generation_zero = history.clone();
    let reply = suggest(&settings, &history, 10).expect("generation 1");
    let mut exploited = 0;
    for (index, suggestion) in reply.suggestions.iter().enumerate() {
        assert_eq!(suggestion.labels[GENERATION_LABEL], "1");
        assert_eq!(suggestion.labels[MEMBER_LABEL], index.to_string());
        let parent = &suggestion.labels[PARENT_LABEL];
        let parent = generation_zero
            .iter()
            .find(|trial| &trial.name == parent)
            .expect("the parent is a trial of generation 0");
        if index < 2 {
            exploited += 1;
            assert!(
                member(parent) >= 8,
                "member {index} copies the top: {parent:?}"
            );
            let (child, source) = (
                lr(&suggestion.assignment.values),
                lr(&parent.assignment.values),
            );
            let scaled = |factor: f64| (source * factor).clamp(0.0001, 0.02);
            assert!(
                (child - scaled(0.8)).abs() < 1e-12 || (child - scaled(1.2)).abs() < 1e-12,
                "lr {source} perturbed by 0.8 or 1.2 within the bounds, got {child}"
            );
            assert_ne!(suggestion.assignment, parent.assignment);
        } else {
            assert_eq!(member(parent), index, "member {index} continues itself");
            assert_eq!(suggestion.assignment, parent.assignment);
        }
    }
    assert_eq!(exploited, 2);
}

#[test]
fn resampling_replaces_values_with_the_probability_given() {
    let run = |probability: &str| {
        let settings = settings(&[("resample_probability", probability), ("random_state", "5")]);
        let mut history = generation_zero(&settings);
        finish(&mut history, |trial| member(trial) as f64);
        let reply = suggest(&settings, &history, 10).expect("generation 1");
        reply.suggestions[..2]
            .iter()
            .map(|suggestion| {
                let parent = history
                    .iter()
                    .find(|trial| trial.name == suggestion.labels[PARENT_LABEL])
                    .expect("parent");
                (parent.assignment.clone(), suggestion.assignment.clone())
            })
            .collect::<Vec<_>>()
    };
    for (parent, child) in run("0") {
        assert_eq!(parent, child, "nothing is resampled at probability 0");
    }
    for (parent, child) in run("1") {
        assert!(space().contains(&child));
        assert_ne!(
            lr(&parent.values),
            lr(&child.values),
            "a double is redrawn at probability 1"
        );
    }
}

#[test]
fn perturbing_keeps_values_feasible_and_moves_small_ints_and_list_values() {
    let space = space();
    let mut rng = ChaCha8Rng::seed_from_u64(1);
    let [lr_parameter, batch, optimizer] = space.parameters() else {
        panic!("three parameters");
    };
    for _ in 0..50 {
        let Value::Double(x) = perturb(lr_parameter, Value::Double(0.02), &mut rng) else {
            panic!("a double");
        };
        assert!(
            x == 0.02 || (x - 0.016).abs() < 1e-12,
            "clamped to max: {x}"
        );
        let Value::Int(small) = perturb(batch, Value::Int(2), &mut rng) else {
            panic!("an int");
        };
        assert!(
            small == 1 || small == 3,
            "a small int moves one step: {small}"
        );
        let Value::Choice(index) = perturb(optimizer, Value::Choice(2), &mut rng) else {
            panic!("a choice");
        };
        assert!(index == 1 || index == 0, "a neighbour, wrapping: {index}");
    }
}

#[test]
fn the_next_generation_waits_for_every_member_and_failed_members_are_proposed_again() {
    let settings = settings(&[]);
    let mut history = generation_zero(&settings);
    finish(&mut history[..9], |trial| member(trial) as f64);
    match suggest(&settings, &history, 1) {
        Err(SuggestError::NotReady { available: 0, .. }) => {}
        other => panic!("expected NotReady while member 9 runs, got {other:?}"),
    }
    history[9].condition = TrialCondition::Failed;
    let again = suggest(&settings, &history, 1).expect("member 9 again");
    assert_eq!(again.suggestions[0].assignment, history[9].assignment);
    assert_eq!(again.suggestions[0].labels, history[9].labels);
}

#[test]
fn the_population_is_rebuilt_from_labels_and_is_deterministic() {
    let settings = settings(&[("random_state", "7")]);
    let mut history = generation_zero(&settings);
    finish(&mut history, |trial| lr(&trial.assignment.values));
    let at_once = suggest(&settings, &history, 10).expect("generation 1");
    // Asked for in two requests, with the first three trials pending in between, the
    // generation is the same.
    let first = suggest(&settings, &history, 3).expect("3 of generation 1");
    let mut grown = history.clone();
    record(&mut grown, first.clone(), TrialCondition::Running);
    let rest = suggest(&settings, &grown, 7).expect("7 of generation 1");
    let in_two: Vec<_> = first
        .suggestions
        .into_iter()
        .chain(rest.suggestions)
        .collect();
    assert_eq!(in_two, at_once.suggestions);
    // The history order does not matter; the seed does.
    let mut reversed = history.clone();
    reversed.reverse();
    assert_eq!(
        suggest(&settings, &reversed, 10)
            .expect("generation 1")
            .suggestions,
        at_once.suggestions
    );
    let other_seed = suggest(&self::settings(&[("random_state", "8")]), &[], 10).expect("seed 8");
    let seven = suggest(&settings, &[], 10).expect("seed 7");
    assert_ne!(other_seed.suggestions, seven.suggestions);
}

#[test]
fn a_trial_without_the_labels_is_an_invalid_history() {
    let mut history = Vec::new();
    record(
        &mut history,
        suggest(&settings(&[]), &[], 10).expect("generation 0"),
        TrialCondition::Succeeded,
    );
    history[4].labels = BTreeMap::new();
    match suggest(&settings(&[]), &history, 1) {
        Err(SuggestError::InvalidHistory(message)) => {
            assert!(message.contains(GENERATION_LABEL), "{message}");
            assert!(message.contains("trial-4"), "{message}");
        }
        other => panic!("expected an invalid history, got {other:?}"),
    }
}

/// PBT against random search on Katib's toy problem (the learning rate must follow a triangle
/// wave of the accuracy), the same budget of 10 members for 10 generations of 20 epochs, over
/// seeds 0 to 9. Run with `--nocapture` to see the figures.
#[test]
fn pbt_beats_random_search_on_the_toy_problem() {
    use sextant_algorithms::pbt_benchmark::{Budget, pbt_score, random_score};
    let budget = Budget {
        n_population: 10,
        generations: 10,
        epochs: 20,
    };
    let mut pbt = Vec::new();
    let mut random = Vec::new();
    for seed in 0..10 {
        pbt.push(pbt_score(budget, 0.2, seed).expect("pbt"));
        random.push(random_score(budget, seed).expect("random"));
    }
    let wins = pbt.iter().zip(&random).filter(|(p, r)| p > r).count();
    eprintln!("pbt best final accuracy per seed:    {pbt:.1?}");
    eprintln!("random best final accuracy per seed: {random:.1?}");
    pbt.sort_by(f64::total_cmp);
    random.sort_by(f64::total_cmp);
    let median = |values: &[f64]| (values[4] + values[5]) / 2.0;
    let (pbt_median, random_median) = (median(&pbt), median(&random));
    eprintln!(
        "median [quartiles]: pbt {pbt_median:.1} [{:.1}, {:.1}], random {random_median:.1} \
         [{:.1}, {:.1}]; pbt ahead on {wins} seeds of 10",
        pbt[2], pbt[7], random[2], random[7]
    );
    // Most of PBT's runs beat random search's median one.
    assert!(
        pbt[2] > random_median,
        "pbt lower quartile {} vs random median {random_median}",
        pbt[2]
    );
}
