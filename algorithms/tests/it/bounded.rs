//! What one request may cost: every algorithm stops when its request is cancelled, and a large
//! batch from a model-based algorithm is modelled only up to `MODEL_BATCH_LIMIT` points, the
//! rest filled quasi-randomly and labelled so.

use std::collections::HashSet;

use sextant_algorithms::algorithm::{
    BuildContext, MODEL_BATCH_LIMIT, QUASI_RANDOM, SOURCE_LABEL, SuggestRequest, Suggestions,
};
use sextant_algorithms::cancel::Cancellation;
use sextant_algorithms::registry::{build_algorithm, known_algorithms};
use sextant_algorithms::{
    Direction, Domain, Objective, Parameter, SearchSpace, Setting, SuggestError, TrialCondition,
    TrialRecord,
};

/// A space every algorithm can search: a stepped double (grid needs steps) and an int resource
/// (Hyperband needs one).
fn space() -> SearchSpace {
    SearchSpace::new(vec![
        Parameter {
            name: "lr".into(),
            domain: Domain::Double {
                min: 0.0,
                max: 1.0,
                step: Some(0.001),
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

fn settings(algorithm: &str) -> Vec<Setting> {
    let mut settings = vec![Setting::new("random_state", "3")];
    if algorithm == "hyperband" {
        settings.push(Setting::new("r_l", "81"));
        settings.push(Setting::new("resource_name", "epochs"));
    }
    if algorithm == "pbt" {
        settings.push(Setting::new("suggestion_trial_dir", "/checkpoints"));
        settings.push(Setting::new("n_population", "20"));
        settings.push(Setting::new("truncation_threshold", "0.2"));
    }
    settings
}

/// `count` finished trials spread over the space, with a smooth loss.
fn history(space: &SearchSpace, count: usize) -> Vec<TrialRecord> {
    (0..count)
        .map(|index| {
            let quantiles = [
                ((index + 1) as f64 * 0.618_034).fract(),
                ((index + 1) as f64 * 0.414_214).fract(),
            ];
            let assignment = space.from_quantiles(&quantiles);
            let mut trial =
                TrialRecord::new(format!("t{index}"), assignment, TrialCondition::Succeeded);
            trial.objective_value = Some((quantiles[0] - 0.3).powi(2) + quantiles[1]);
            trial
        })
        .collect()
}

fn suggest(
    algorithm: &str,
    trials: &[TrialRecord],
    count: usize,
    cancel: &Cancellation,
) -> Result<Suggestions, SuggestError> {
    let space = space();
    let objective = Objective::new(Direction::Minimize, "loss");
    let built = build_algorithm(
        algorithm,
        &settings(algorithm),
        &BuildContext {
            space: &space,
            objective: &objective,
            max_trial_count: None,
            parallel_trial_count: None,
        },
    )
    .expect("builds");
    built.suggest(&SuggestRequest {
        space: &space,
        objective: &objective,
        trials,
        count,
        cancel,
    })
}

#[test]
fn every_algorithm_stops_when_cancelled() {
    let trials = history(&space(), 30);
    let cancel = Cancellation::new();
    cancel.cancel();
    for algorithm in known_algorithms() {
        // Hyperband reads its own bracket from the settings and pbt its population from the
        // trials' labels, so they start without history.
        let trials = if algorithm == "hyperband" || algorithm == "pbt" {
            &[][..]
        } else {
            &trials[..]
        };
        let result = suggest(algorithm, trials, 1000, &cancel);
        assert_eq!(result, Err(SuggestError::Cancelled), "{algorithm}");
        // The same request without cancellation is answered.
        let answered = suggest(algorithm, trials, 20, Cancellation::never())
            .unwrap_or_else(|error| panic!("{algorithm}: {error}"));
        assert_eq!(answered.suggestions.len(), 20, "{algorithm}");
    }
}

#[test]
fn model_based_batches_are_modelled_up_to_the_limit_then_filled_and_labelled() {
    let space = space();
    let trials = history(&space, 30);
    let count = MODEL_BATCH_LIMIT + 200;
    for algorithm in ["bayesianoptimization", "tpe", "multivariate-tpe"] {
        let batch = suggest(algorithm, &trials, count, Cancellation::never())
            .unwrap_or_else(|error| panic!("{algorithm}: {error}"));
        assert_eq!(batch.suggestions.len(), count, "{algorithm}");
        for (index, suggestion) in batch.suggestions.iter().enumerate() {
            let label = suggestion.labels.get(SOURCE_LABEL).map(String::as_str);
            let expected = (index >= MODEL_BATCH_LIMIT).then_some(QUASI_RANDOM);
            assert_eq!(label, expected, "{algorithm}: suggestion {index}");
        }
        let mut keys: HashSet<String> = trials
            .iter()
            .map(|trial| space.assignment_key(&trial.assignment))
            .collect();
        for suggestion in &batch.suggestions {
            assert!(
                keys.insert(space.assignment_key(&suggestion.assignment)),
                "{algorithm}: repeated {:?}",
                suggestion.assignment
            );
        }
    }
}
