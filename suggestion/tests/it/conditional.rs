//! Conditional parameters over the wire: Sextant's `ParameterSpec.condition` reaches the
//! algorithms through both transports, a history whose trials lack their inactive parameters
//! is read, and no suggestion names a parameter its condition leaves out.

use sextant_proto::api;
use sextant_suggestion::{Outcome, Suggester, SuggestionService};

use crate::policy::serve;

fn spec(name: &str, kind: api::ParameterType, space: api::FeasibleSpace) -> api::ParameterSpec {
    api::ParameterSpec {
        name: name.into(),
        parameter_type: kind as i32,
        feasible_space: Some(space),
        condition: None,
    }
}

/// `lr`, `optimizer` in {sgd, adam} and `momentum` for sgd only, with twelve finished trials
/// that carry only their active parameters, as a Katib controller stores them.
fn request(algorithm: &str) -> api::GetSuggestionsRequest {
    let unit = |min: &str, max: &str| api::FeasibleSpace {
        min: min.into(),
        max: max.into(),
        ..Default::default()
    };
    let momentum = api::ParameterSpec {
        condition: Some(api::ParameterCondition {
            parameter: "optimizer".into(),
            values: vec!["sgd".into()],
        }),
        ..spec("momentum", api::ParameterType::Double, unit("0", "0.99"))
    };
    let parameters = vec![
        spec("lr", api::ParameterType::Double, unit("0.001", "0.1")),
        spec(
            "optimizer",
            api::ParameterType::Categorical,
            api::FeasibleSpace {
                list: vec!["sgd".into(), "adam".into()],
                ..Default::default()
            },
        ),
        momentum,
    ];
    let trials: Vec<api::Trial> = (0..12)
        .map(|index| {
            let lr = 0.001 + 0.008 * f64::from(index);
            let mut assignments = vec![api::ParameterAssignment {
                name: "lr".into(),
                value: lr.to_string(),
            }];
            if index % 2 == 0 {
                assignments.push(api::ParameterAssignment {
                    name: "optimizer".into(),
                    value: "sgd".into(),
                });
                assignments.push(api::ParameterAssignment {
                    name: "momentum".into(),
                    value: "0.9".into(),
                });
            } else {
                assignments.push(api::ParameterAssignment {
                    name: "optimizer".into(),
                    value: "adam".into(),
                });
            }
            api::Trial {
                name: format!("trial-{index}"),
                spec: Some(api::TrialSpec {
                    parameter_assignments: Some(api::trial_spec::ParameterAssignments {
                        assignments,
                    }),
                    ..Default::default()
                }),
                status: Some(api::TrialStatus {
                    condition: api::trial_status::TrialConditionType::Succeeded as i32,
                    observation: Some(api::Observation {
                        metrics: vec![api::Metric {
                            name: "loss".into(),
                            value: (lr * if index % 2 == 0 { 1.0 } else { 2.0 }).to_string(),
                        }],
                    }),
                    ..Default::default()
                }),
            }
        })
        .collect();
    api::GetSuggestionsRequest {
        experiment: Some(api::Experiment {
            name: "conditional".into(),
            spec: Some(api::ExperimentSpec {
                parameter_specs: Some(api::experiment_spec::ParameterSpecs { parameters }),
                objective: Some(api::ObjectiveSpec {
                    r#type: api::ObjectiveType::Minimize as i32,
                    objective_metric_name: "loss".into(),
                    ..Default::default()
                }),
                algorithm: Some(api::AlgorithmSpec {
                    algorithm_name: algorithm.into(),
                    algorithm_settings: Vec::new(),
                }),
                ..Default::default()
            }),
        }),
        total_request_number: 18,
        trials,
        current_request_number: 6,
    }
}

#[tokio::test]
async fn suggestions_name_only_active_parameters_over_both_transports() {
    let address = serve(SuggestionService::default().into_server()).await;
    for algorithm in ["random", "tpe", "multivariate-tpe", "bayesianoptimization"] {
        for mut suggester in [
            Suggester::new(None),
            Suggester::new(Some(&address.to_string())),
        ] {
            let reply = match suggester.suggest(request(algorithm)).await {
                Outcome::Assignments(reply) => reply,
                other => panic!("{algorithm} over {suggester:?}: {other:?}"),
            };
            assert_eq!(reply.parameter_assignments.len(), 6, "{algorithm}");
            for suggestion in &reply.parameter_assignments {
                let names: Vec<&str> = suggestion
                    .assignments
                    .iter()
                    .map(|assignment| assignment.name.as_str())
                    .collect();
                let optimizer = suggestion
                    .assignments
                    .iter()
                    .find(|assignment| assignment.name == "optimizer")
                    .map(|assignment| assignment.value.as_str());
                match optimizer {
                    Some("sgd") => assert_eq!(names, ["lr", "optimizer", "momentum"]),
                    Some("adam") => assert_eq!(names, ["lr", "optimizer"]),
                    other => panic!("{algorithm}: optimizer {other:?}"),
                }
            }
        }
    }
}

#[tokio::test]
async fn a_condition_on_a_value_outside_the_parents_list_is_invalid_argument() {
    let address = serve(SuggestionService::default().into_server()).await;
    let mut bad = request("random");
    if let Some(spec) = bad
        .experiment
        .as_mut()
        .and_then(|experiment| experiment.spec.as_mut())
        .and_then(|spec| spec.parameter_specs.as_mut())
    {
        spec.parameters[2].condition = Some(api::ParameterCondition {
            parameter: "optimizer".into(),
            values: vec!["rmsprop".into()],
        });
    }
    let mut suggester = Suggester::new(Some(&address.to_string()));
    match suggester.suggest(bad).await {
        Outcome::Failed(why) => assert!(
            why.contains("parameters[2].condition.values[0]") && why.contains("rmsprop"),
            "{why}"
        ),
        other => panic!("{other:?}"),
    }
}
