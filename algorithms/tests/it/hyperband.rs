//! Hyperband's protocol: the state travels in the settings each reply returns, bracket and rung
//! sizes follow Li et al. (2018) for `R = 81, eta = 3`, promotion keeps the best of each rung,
//! and the end of the outer loop is an `Exhausted` error, not an empty reply.

use std::collections::BTreeMap;

use sextant_algorithms::algorithm::{BuildContext, SuggestRequest, Suggestions};
use sextant_algorithms::hyperband::{BRACKET_LABEL, RUNG_LABEL};
use sextant_algorithms::registry::build_algorithm;
use sextant_algorithms::{
    Direction, Domain, Objective, Parameter, SearchSpace, Setting, SuggestError, TrialCondition,
    TrialRecord, Value,
};

fn space() -> SearchSpace {
    SearchSpace::new(vec![
        Parameter {
            name: "lr".into(),
            domain: Domain::Double {
                min: 0.0,
                max: 1.0,
                step: None,
                distribution: Default::default(),
            },
        },
        Parameter {
            name: "epochs".into(),
            domain: Domain::Int {
                min: 1,
                max: 81,
                step: 1,
                distribution: Default::default(),
            },
        },
    ])
    .expect("space")
}

fn suggest(
    settings: &[Setting],
    space: &SearchSpace,
    objective: &Objective,
    trials: &[TrialRecord],
    count: usize,
) -> Result<Suggestions, SuggestError> {
    let algorithm = build_algorithm(
        "hyperband",
        settings,
        &BuildContext {
            space,
            objective,
            max_trial_count: None,
            parallel_trial_count: None,
        },
    )
    .expect("settings are valid");
    algorithm.suggest(&SuggestRequest {
        space,
        objective,
        trials,
        count,
        cancel: sextant_algorithms::cancel::Cancellation::never(),
    })
}

fn setting(settings: &[Setting], name: &str) -> String {
    settings
        .iter()
        .find(|setting| setting.name == name)
        .map(|setting| setting.value.clone())
        .unwrap_or_else(|| panic!("setting {name} missing from {settings:?}"))
}

fn loss(assignment: &[Value]) -> f64 {
    match (assignment[0], assignment[1]) {
        (Value::Double(lr), Value::Int(epochs)) => (lr - 0.3).powi(2) + 1.0 / epochs as f64,
        other => panic!("unexpected values {other:?}"),
    }
}

#[test]
fn brackets_and_rungs_follow_the_paper_and_the_loop_ends_exhausted() {
    let space = space();
    let objective = Objective::new(Direction::Minimize, "loss");
    let mut settings = vec![
        Setting::new("r_l", "81"),
        Setting::new("resource_name", "epochs"),
        Setting::new("random_state", "11"),
    ];
    let mut history: Vec<TrialRecord> = Vec::new();
    // (bracket, rung) -> (trials, resource) as observed.
    let mut rungs: BTreeMap<(i64, u32), (usize, i64)> = BTreeMap::new();
    let mut rung_losses: BTreeMap<(i64, u32), Vec<(f64, f64)>> = BTreeMap::new();
    let mut calls = 0;
    loop {
        calls += 1;
        assert!(calls < 100, "the outer loop never ends");
        // Ask for what the state says the rung still needs (one on the first call and once
        // the state says the loop is done).
        let count = if settings.iter().any(|setting| setting.name == "n") {
            let n: usize = setting(&settings, "n").parse().expect("n");
            let proposed: usize = setting(&settings, "evaluating_trials")
                .parse()
                .expect("count");
            (n - proposed).max(1)
        } else {
            1
        };
        let reply = match suggest(&settings, &space, &objective, &history, count) {
            Ok(reply) => reply,
            Err(SuggestError::Exhausted {
                remaining, total, ..
            }) => {
                assert_eq!(remaining, 0);
                assert_eq!(total as usize, history.len());
                break;
            }
            Err(error) => panic!("unexpected error {error}"),
        };
        assert_eq!(reply.suggestions.len(), count);
        for suggestion in reply.suggestions {
            assert!(space.contains(&suggestion.assignment));
            let bracket: i64 = suggestion.labels[BRACKET_LABEL].parse().expect("bracket");
            let rung: u32 = suggestion.labels[RUNG_LABEL].parse().expect("rung");
            let Value::Int(epochs) = suggestion.assignment.values[1] else {
                panic!("epochs is an int");
            };
            let entry = rungs.entry((bracket, rung)).or_insert((0, epochs));
            entry.0 += 1;
            assert_eq!(entry.1, epochs, "one resource per rung");
            let value = loss(&suggestion.assignment.values);
            let Value::Double(lr) = suggestion.assignment.values[0] else {
                panic!("lr is a double");
            };
            rung_losses
                .entry((bracket, rung))
                .or_default()
                .push((lr, value));
            let mut record = TrialRecord::new(
                format!("trial-{}", history.len()),
                suggestion.assignment,
                TrialCondition::Succeeded,
            );
            record.objective_value = Some(value);
            record.labels = suggestion.labels;
            history.push(record);
        }
        settings = reply.settings.expect("hyperband returns its state");
        assert_eq!(setting(&settings, "s_max"), "4");
        assert_eq!(setting(&settings, "resource_name"), "epochs");
    }
    let expected: BTreeMap<(i64, u32), (usize, i64)> = [
        ((4, 0), (81, 1)),
        ((4, 1), (27, 3)),
        ((4, 2), (9, 9)),
        ((4, 3), (3, 27)),
        ((4, 4), (1, 81)),
        ((3, 0), (34, 3)),
        ((3, 1), (11, 9)),
        ((3, 2), (3, 27)),
        ((3, 3), (1, 81)),
        ((2, 0), (15, 9)),
        ((2, 1), (5, 27)),
        ((2, 2), (1, 81)),
        ((1, 0), (8, 27)),
        ((1, 1), (2, 81)),
        ((0, 0), (5, 81)),
    ]
    .into_iter()
    .collect();
    assert_eq!(rungs, expected);
    assert_eq!(setting(&settings, "current_s"), "-1");
    // Each promoted rung holds the configurations that were best in the rung before.
    for ((bracket, rung), members) in &rung_losses {
        if *rung == 0 {
            continue;
        }
        let mut previous = rung_losses[&(*bracket, rung - 1)].clone();
        previous.sort_by(|a, b| a.1.total_cmp(&b.1));
        let best: Vec<f64> = previous.iter().take(members.len()).map(|m| m.0).collect();
        let promoted: Vec<f64> = members.iter().map(|m| m.0).collect();
        assert_eq!(promoted, best, "bracket {bracket} rung {rung}");
    }
}

#[test]
fn a_rung_waits_for_its_predecessor_and_too_large_requests_are_refused() {
    let space = space();
    let objective = Objective::new(Direction::Maximize, "accuracy");
    let settings = vec![
        Setting::new("r_l", "9"),
        Setting::new("resource_name", "epochs"),
        Setting::new("current_s", "1"),
    ];
    // Bracket 1 of R = 9: rung 0 has ceil(3 * 3 / 2) = 5 configurations at 3 epochs.
    let error = suggest(&settings, &space, &objective, &[], 6).expect_err("too many");
    assert!(
        error
            .to_string()
            .contains("can propose 5 trials now, 6 were requested")
    );
    let first = suggest(&settings, &space, &objective, &[], 2).expect("two");
    let state = first.settings.clone().expect("state");
    assert_eq!(setting(&state, "evaluating_trials"), "2");
    let mut history: Vec<TrialRecord> = first
        .suggestions
        .iter()
        .chain(
            suggest(&state, &space, &objective, &[], 3)
                .expect("three")
                .suggestions
                .iter(),
        )
        .enumerate()
        .map(|(index, suggestion)| {
            let mut record = TrialRecord::new(
                format!("t{index}"),
                suggestion.assignment.clone(),
                TrialCondition::Running,
            );
            record.labels = suggestion.labels.clone();
            record
        })
        .collect();
    // The same state asked twice gives the same configurations (the split is deterministic).
    let whole = suggest(&settings, &space, &objective, &[], 5).expect("five");
    let split: Vec<_> = history
        .iter()
        .map(|trial| trial.assignment.clone())
        .collect();
    let whole: Vec<_> = whole
        .suggestions
        .into_iter()
        .map(|s| s.assignment)
        .collect();
    assert_eq!(split, whole);

    let after_rung_zero = suggest(&state, &space, &objective, &[], 3)
        .expect("three")
        .settings
        .expect("state");
    assert_eq!(setting(&after_rung_zero, "current_i"), "1");
    assert_eq!(setting(&after_rung_zero, "n"), "1");
    let error = suggest(&after_rung_zero, &space, &objective, &history, 1).expect_err("pending");
    assert!(error.to_string().contains("have not finished"), "{error}");

    for (index, trial) in history.iter_mut().enumerate() {
        trial.condition = TrialCondition::Succeeded;
        trial.objective_value = Some(index as f64);
    }
    history[4].condition = TrialCondition::Failed;
    history[4].objective_value = None;
    let promoted = suggest(&after_rung_zero, &space, &objective, &history, 1).expect("promoted");
    // Maximizing: the best finished configuration is trial 3 (trial 4 failed).
    assert_eq!(
        promoted.suggestions[0].assignment.values[0],
        history[3].assignment.values[0]
    );
    assert_eq!(promoted.suggestions[0].assignment.values[1], Value::Int(9));
    let done = promoted.settings.expect("state");
    assert_eq!(setting(&done, "current_s"), "0");
}

#[test]
fn settings_are_validated() {
    let space = space();
    let objective = Objective::new(Direction::Minimize, "loss");
    let context = BuildContext {
        space: &space,
        objective: &objective,
        max_trial_count: None,
        parallel_trial_count: None,
    };
    let cases = [
        (vec![Setting::new("resource_name", "epochs")], "r_l"),
        (vec![Setting::new("r_l", "9")], "resource_name"),
        (
            vec![
                Setting::new("r_l", "-1"),
                Setting::new("resource_name", "epochs"),
            ],
            "must be a positive number",
        ),
        (
            vec![
                Setting::new("r_l", "9"),
                Setting::new("resource_name", "batch"),
            ],
            "must name a parameter of the search space",
        ),
        (
            vec![
                Setting::new("r_l", "9"),
                Setting::new("resource_name", "epochs"),
                Setting::new("eta", "1"),
            ],
            "must be an integer >= 2",
        ),
        (
            vec![
                Setting::new("r_l", "9"),
                Setting::new("resource_name", "epochs"),
                Setting::new("current_s", "7"),
            ],
            "current_s",
        ),
        (
            vec![
                Setting::new("r_l", "9"),
                Setting::new("resource_name", "epochs"),
                Setting::new("bracket", "1"),
            ],
            "unknown setting \"bracket\"",
        ),
    ];
    for (settings, expected) in cases {
        let error = build_algorithm("hyperband", &settings, &context).expect_err("invalid");
        assert!(
            error.to_string().contains(expected),
            "{error} lacks {expected}"
        );
    }
}

/// Runs the whole outer loop of `r_l = 27, eta = 3`, asking each time for what the rung still
/// needs, and returns every reply. `labelled` keeps the suggestions' labels on the trials; without
/// them (as Katib's controller sends trials) the history is also listed newest first, as a
/// name-ordered listing may, with every start time in the same second.
fn walk(labelled: bool) -> Vec<Suggestions> {
    let space = space();
    let objective = Objective::new(Direction::Minimize, "loss");
    let mut settings = vec![
        Setting::new("r_l", "27"),
        Setting::new("resource_name", "epochs"),
        Setting::new("random_state", "4"),
    ];
    let mut history: Vec<TrialRecord> = Vec::new();
    let mut replies = Vec::new();
    for _ in 0..100 {
        let count = match (
            settings.iter().find(|setting| setting.name == "n"),
            settings
                .iter()
                .find(|setting| setting.name == "evaluating_trials"),
        ) {
            (Some(n), Some(proposed)) => {
                let n: usize = n.value.parse().expect("n");
                let proposed: usize = proposed.value.parse().expect("proposed");
                (n - proposed).max(1)
            }
            _ => 1,
        };
        let reply = match suggest(&settings, &space, &objective, &history, count) {
            Ok(reply) => reply,
            Err(SuggestError::Exhausted { .. }) => return replies,
            Err(error) => panic!("unexpected error {error}"),
        };
        for suggestion in &reply.suggestions {
            let mut record = TrialRecord::new(
                format!("trial-{}", history.len()),
                suggestion.assignment.clone(),
                TrialCondition::Succeeded,
            );
            record.objective_value = Some(loss(&suggestion.assignment.values));
            record.start_time = Some("2026-01-01T00:00:00Z".into());
            if labelled {
                record.labels = suggestion.labels.clone();
                history.push(record);
            } else {
                history.insert(0, record);
            }
        }
        settings = reply.settings.clone().expect("state");
        replies.push(reply);
    }
    panic!("the outer loop never ends");
}

#[test]
fn without_labels_the_previous_rung_is_found_from_resource_draw_and_start_time() {
    let labelled = walk(true);
    let unlabelled = walk(false);
    let trials: usize = labelled.iter().map(|reply| reply.suggestions.len()).sum();
    // s_max = 3: 27 + 9 + 3 + 1, 12 + 4 + 1, 6 + 2, 4 trials.
    assert_eq!(trials, 69);
    assert_eq!(labelled, unlabelled);
}

#[test]
fn without_labels_a_rung_waits_for_its_unfinished_trials() {
    let space = space();
    let objective = Objective::new(Direction::Minimize, "loss");
    let settings = vec![
        Setting::new("r_l", "9"),
        Setting::new("resource_name", "epochs"),
        Setting::new("current_s", "1"),
    ];
    let first = suggest(&settings, &space, &objective, &[], 5).expect("rung 0");
    let state = first.settings.expect("state");
    let mut history: Vec<TrialRecord> = first
        .suggestions
        .into_iter()
        .enumerate()
        .map(|(index, suggestion)| {
            let mut record = TrialRecord::new(
                format!("t{index}"),
                suggestion.assignment,
                TrialCondition::Running,
            );
            record.start_time = Some(format!("2026-01-01T00:00:0{index}Z"));
            record
        })
        .collect();
    let error = suggest(&state, &space, &objective, &history, 1).expect_err("pending");
    assert!(error.to_string().contains("5 of its 5 trials"), "{error}");
    // A trial with another resource value, or a configuration not drawn for the bracket, is
    // not a member.
    for (index, trial) in history.iter_mut().enumerate() {
        trial.condition = TrialCondition::Succeeded;
        trial.objective_value = Some(10.0 - index as f64);
    }
    let mut stranger = history[0].clone();
    stranger.assignment.values[0] = Value::Double(0.123_456);
    stranger.objective_value = Some(-1.0);
    stranger.condition = TrialCondition::Succeeded;
    history.push(stranger);
    let promoted = suggest(&state, &space, &objective, &history, 1).expect("promoted");
    assert_eq!(
        promoted.suggestions[0].assignment.values[0], history[4].assignment.values[0],
        "the best of the rung, not the stranger"
    );
    assert_eq!(promoted.suggestions[0].assignment.values[1], Value::Int(9));
}
