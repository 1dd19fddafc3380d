//! Several objectives and outcome constraints over the wire: Sextant's `ObjectiveSpec` fields
//! reach the algorithms through both transports, and an algorithm for one objective refuses
//! them, saying which can.

use sextant_proto::api;
use sextant_suggestion::{Outcome, Suggester, SuggestionService};

use crate::policy::{request_over_x, serve, trial_at};

fn metric(name: &str, value: f64) -> api::Metric {
    api::Metric {
        name: name.into(),
        value: value.to_string(),
    }
}

/// Minimize `loss`, maximize `accuracy`, keep `memory` at most 100: `algorithm` over `x` in
/// [0, 1], with 12 succeeded trials whose objectives pull against each other and half of which
/// break the constraint.
fn request(algorithm: &str) -> api::GetSuggestionsRequest {
    let trials = (0..12)
        .map(|index| {
            let x = f64::from(index) / 11.0;
            trial_at(
                format!("front-{index}"),
                x.to_string(),
                api::trial_status::TrialConditionType::Succeeded,
                vec![
                    metric("loss", x),
                    metric("accuracy", x * x),
                    metric("memory", if index % 2 == 0 { 50.0 } else { 150.0 }),
                ],
            )
        })
        .collect();
    request_over_x(
        "front",
        api::ParameterSpec {
            name: "x".into(),
            parameter_type: api::ParameterType::Double as i32,
            feasible_space: Some(api::FeasibleSpace {
                min: "0".into(),
                max: "1".into(),
                ..Default::default()
            }),
            condition: None,
        },
        api::ObjectiveSpec {
            r#type: api::ObjectiveType::Minimize as i32,
            objective_metric_name: "loss".into(),
            additional_metric_names: vec!["memory".into()],
            objectives: vec![
                api::ObjectiveMetric {
                    metric_name: "loss".into(),
                    r#type: api::ObjectiveType::Minimize as i32,
                },
                api::ObjectiveMetric {
                    metric_name: "accuracy".into(),
                    r#type: api::ObjectiveType::Maximize as i32,
                },
            ],
            constraints: vec![api::OutcomeConstraint {
                metric_name: "memory".into(),
                max: Some(100.0),
                min: None,
            }],
            ..Default::default()
        },
        api::AlgorithmSpec {
            algorithm_name: algorithm.into(),
            algorithm_settings: vec![api::AlgorithmSetting {
                name: "random_state".into(),
                value: "7".into(),
            }],
        },
        trials,
        2,
    )
}

#[tokio::test]
async fn multi_objective_algorithms_answer_over_both_transports() {
    let address = serve(SuggestionService::default().into_server()).await;
    for algorithm in ["nsga2", "tpe", "random"] {
        for mut suggester in [
            Suggester::new(None),
            Suggester::new(Some(&address.to_string())),
        ] {
            match suggester.suggest(request(algorithm)).await {
                Outcome::Assignments(reply) => {
                    assert_eq!(reply.parameter_assignments.len(), 2, "{algorithm}")
                }
                other => panic!("{algorithm} over {suggester:?}: {other:?}"),
            }
        }
    }
}

#[tokio::test]
async fn an_algorithm_for_one_objective_refuses_several_over_both_transports() {
    let address = serve(SuggestionService::default().into_server()).await;
    for mut suggester in [
        Suggester::new(None),
        Suggester::new(Some(&address.to_string())),
    ] {
        match suggester.suggest(request("cmaes")).await {
            Outcome::Failed(why) => {
                assert!(why.contains("cmaes") && why.contains("nsga2"), "{why}");
            }
            other => panic!("cmaes over {suggester:?}: {other:?}"),
        }
    }
}
