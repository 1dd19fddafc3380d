//! Properties every model-free algorithm must keep for any valid space: exactly the requested
//! count, only feasible values (bounds, steps, whole numbers, list members), the same answer
//! for the same seed and history, and a grid that yields each combination once, then stops.

use std::collections::HashSet;

use proptest::prelude::*;
use sextant_algorithms::algorithm::{BuildContext, SuggestRequest};
use sextant_algorithms::{
    Direction, Distribution, Objective, ParameterType, RawParameter, SearchSpace, Setting,
    SuggestError, TrialCondition, TrialRecord, build_algorithm,
};

pub(crate) fn raw_parameter() -> impl Strategy<Value = RawParameter> {
    let distribution = prop_oneof![
        Just(None),
        Just(Some(Distribution::Uniform)),
        Just(Some(Distribution::LogUniform)),
        Just(Some(Distribution::Normal)),
        Just(Some(Distribution::LogNormal)),
    ];
    prop_oneof![
        (
            0.001f64..50.0,
            0.0f64..100.0,
            proptest::option::of(0.01f64..10.0),
            distribution.clone()
        )
            .prop_map(|(min, width, step, distribution)| RawParameter {
                parameter_type: Some(ParameterType::Double),
                min: min.to_string(),
                max: (min + width).to_string(),
                step: step.map(|s| s.to_string()).unwrap_or_default(),
                distribution,
                ..RawParameter::default()
            }),
        (
            1i64..50,
            0i64..200,
            proptest::option::of(1i64..7),
            distribution
        )
            .prop_map(|(min, width, step, distribution)| RawParameter {
                parameter_type: Some(ParameterType::Int),
                min: min.to_string(),
                max: (min + width).to_string(),
                step: step.map(|s| s.to_string()).unwrap_or_default(),
                distribution,
                ..RawParameter::default()
            }),
        proptest::collection::btree_set(-1000i32..1000, 1..6).prop_map(|values| RawParameter {
            parameter_type: Some(ParameterType::Discrete),
            list: values
                .iter()
                .map(|v| (f64::from(*v) / 4.0).to_string())
                .collect(),
            ..RawParameter::default()
        }),
        proptest::collection::btree_set("[a-z]{1,6}", 1..5).prop_map(|choices| RawParameter {
            parameter_type: Some(ParameterType::Categorical),
            list: choices.into_iter().collect(),
            ..RawParameter::default()
        }),
    ]
}

pub(crate) fn space() -> impl Strategy<Value = SearchSpace> {
    proptest::collection::vec(raw_parameter(), 1..5).prop_map(|mut raw| {
        for (index, parameter) in raw.iter_mut().enumerate() {
            parameter.name = format!("p{index}");
        }
        SearchSpace::parse(&raw).expect("generated specs are valid")
    })
}

pub(crate) fn suggest(
    algorithm: &str,
    seed: u64,
    space: &SearchSpace,
    trials: &[TrialRecord],
    count: usize,
) -> Result<Vec<sextant_algorithms::Assignment>, SuggestError> {
    let objective = Objective::new(Direction::Minimize, "loss");
    let settings = [Setting::new("random_state", seed.to_string())];
    let built = build_algorithm(
        algorithm,
        &settings,
        &BuildContext {
            space,
            objective: &objective,
            max_trial_count: None,
            parallel_trial_count: None,
        },
    )
    .map_err(|error| SuggestError::Unsupported(error.to_string()))?;
    let suggestions = built.suggest(&SuggestRequest {
        space,
        objective: &objective,
        trials,
        count,
        cancel: sextant_algorithms::cancel::Cancellation::never(),
    })?;
    Ok(suggestions
        .suggestions
        .into_iter()
        .map(|suggestion| suggestion.assignment)
        .collect())
}

fn as_history(assignments: &[sextant_algorithms::Assignment]) -> Vec<TrialRecord> {
    assignments
        .iter()
        .enumerate()
        .map(|(index, assignment)| {
            TrialRecord::new(
                format!("t{index}"),
                assignment.clone(),
                TrialCondition::Succeeded,
            )
        })
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn random_and_sobol_give_feasible_reproducible_assignments(space in space(), seed in 0u64..1000, count in 1usize..20) {
        for algorithm in ["random", "sobol"] {
            let first = suggest(algorithm, seed, &space, &[], count).expect("suggests");
            prop_assert_eq!(first.len(), count);
            for assignment in &first {
                prop_assert!(space.contains(assignment), "{algorithm}: {:?} not feasible", space.format_assignment(assignment));
                // What goes on the wire parses back to the same feasible values.
                let text = space.format_assignment(assignment);
                let parsed = space.parse_assignment(text.iter().map(|(n, v)| (n.as_str(), v.as_str()))).expect("round trip");
                prop_assert!(space.contains(&parsed));
            }
            prop_assert_eq!(&first, &suggest(algorithm, seed, &space, &[], count).expect("suggests"));
            let history = as_history(&first);
            let next = suggest(algorithm, seed, &space, &history, count).expect("suggests");
            prop_assert_eq!(&next, &suggest(algorithm, seed, &space, &history, count).expect("suggests"));
        }
    }

    #[test]
    fn grid_yields_every_combination_once_then_exhausts(space in space()) {
        let total = match suggest("grid", 0, &space, &[], 1) {
            Err(SuggestError::Unsupported(reason)) => {
                prop_assert!(reason.contains("step"), "{reason}");
                return Ok(());
            }
            Err(other) => return Err(TestCaseError::fail(format!("{other}"))),
            Ok(_) => space.parameters().iter().map(|p| p.cardinality().expect("finite") as usize).product::<usize>(),
        };
        prop_assume!(total <= 3000);
        let mut history = Vec::new();
        let mut seen = HashSet::new();
        while history.len() < total {
            let batch = (total - history.len()).min(7);
            for assignment in suggest("grid", 0, &space, &as_history(&history), batch).expect("not yet exhausted") {
                prop_assert!(space.contains(&assignment));
                prop_assert!(seen.insert(space.assignment_key(&assignment)), "duplicate");
                history.push(assignment);
            }
        }
        match suggest("grid", 0, &space, &as_history(&history), 1) {
            Err(SuggestError::Exhausted { remaining: 0, requested: 1, .. }) => {}
            other => return Err(TestCaseError::fail(format!("expected exhaustion, got {other:?}"))),
        }
    }
}

#[test]
fn grid_reports_partial_exhaustion_without_duplicates() {
    let raw = [RawParameter {
        name: "n".into(),
        parameter_type: Some(ParameterType::Int),
        min: "1".into(),
        max: "3".into(),
        ..RawParameter::default()
    }];
    let space = SearchSpace::parse(&raw).expect("valid");
    let first = suggest("grid", 0, &space, &[], 2).expect("two of three");
    assert_eq!(
        suggest("grid", 0, &space, &as_history(&first), 2),
        Err(SuggestError::Exhausted {
            remaining: 1,
            total: 3,
            requested: 2
        })
    );
}
