//! `sextant serve` answering Katib's Suggestion API and health probes over loopback, and
//! rejecting bad input with INVALID_ARGUMENT naming what is wrong, without falling over.

use std::process::Command;
use std::time::{Duration, Instant};

use sextant_proto::api;
use sextant_proto::api::suggestion_client::SuggestionClient;
use sextant_proto::health::HealthCheckRequest;
use sextant_proto::health::health_check_response::ServingStatus;
use sextant_proto::health::health_client::HealthClient;
use tonic::Code;
use tonic::transport::Channel;

use crate::support::Server;

fn double(name: &str, min: &str, max: &str, step: &str) -> api::ParameterSpec {
    api::ParameterSpec {
        name: name.into(),
        parameter_type: api::ParameterType::Double as i32,
        feasible_space: Some(api::FeasibleSpace {
            min: min.into(),
            max: max.into(),
            step: step.into(),
            ..Default::default()
        }),
    }
}

fn list(name: &str, parameter_type: api::ParameterType, values: &[&str]) -> api::ParameterSpec {
    api::ParameterSpec {
        name: name.into(),
        parameter_type: parameter_type as i32,
        feasible_space: Some(api::FeasibleSpace {
            list: values.iter().map(|v| v.to_string()).collect(),
            ..Default::default()
        }),
    }
}

fn experiment(algorithm: &str, parameters: Vec<api::ParameterSpec>) -> api::Experiment {
    api::Experiment {
        name: "e2e".into(),
        spec: Some(api::ExperimentSpec {
            parameter_specs: Some(api::experiment_spec::ParameterSpecs { parameters }),
            objective: Some(api::ObjectiveSpec {
                r#type: api::ObjectiveType::Minimize as i32,
                objective_metric_name: "loss".into(),
                ..Default::default()
            }),
            algorithm: Some(api::AlgorithmSpec {
                algorithm_name: algorithm.into(),
                algorithm_settings: vec![api::AlgorithmSetting {
                    name: "random_state".into(),
                    value: "1".into(),
                }],
            }),
            ..Default::default()
        }),
    }
}

fn request(experiment: api::Experiment, count: i32) -> api::GetSuggestionsRequest {
    api::GetSuggestionsRequest {
        experiment: Some(experiment),
        trials: Vec::new(),
        current_request_number: count,
        total_request_number: count,
    }
}

fn good_parameters() -> Vec<api::ParameterSpec> {
    vec![
        double("lr", "0.01", "0.05", "0.01"),
        list("opt", api::ParameterType::Categorical, &["sgd", "adam"]),
    ]
}

async fn client(server: &Server) -> SuggestionClient<Channel> {
    SuggestionClient::connect(server.endpoint())
        .await
        .expect("connect")
}

#[tokio::test]
async fn health_answers_for_katib_probe_names() {
    let server = Server::start(&[]).expect("server starts");
    let mut health = HealthClient::connect(server.endpoint())
        .await
        .expect("connect");
    for service in ["", "api.v1.beta1.Suggestion", "manager.v1beta1.Suggestion"] {
        let reply = health
            .check(HealthCheckRequest {
                service: service.into(),
            })
            .await
            .unwrap_or_else(|status| panic!("{service:?}: {status}"));
        assert_eq!(reply.into_inner().status, ServingStatus::Serving as i32);
    }
    let unknown = health
        .check(HealthCheckRequest {
            service: "no.such.Service".into(),
        })
        .await
        .expect_err("unknown service");
    assert_eq!(unknown.code(), Code::NotFound);
}

#[tokio::test]
async fn bad_input_is_invalid_argument_naming_the_parameter_and_the_server_survives() {
    let server = Server::start(&[]).expect("server starts");
    let mut suggestion = client(&server).await;
    let unknown_type = api::ParameterSpec {
        name: "mystery".into(),
        parameter_type: 99,
        feasible_space: Some(api::FeasibleSpace::default()),
    };
    let cases: Vec<(&str, api::GetSuggestionsRequest, Vec<&str>)> = vec![
        (
            "min > max",
            request(experiment("random", vec![double("lr", "5", "1", "")]), 1),
            vec!["lr", "min 5 > max 1"],
        ),
        (
            "empty categorical",
            request(
                experiment(
                    "random",
                    vec![list("opt", api::ParameterType::Categorical, &[])],
                ),
                1,
            ),
            vec!["opt", "feasibleSpace.list"],
        ),
        (
            "unknown type",
            request(experiment("random", vec![unknown_type]), 1),
            vec!["mystery", "unknown parameter type"],
        ),
        (
            "non-numeric bound",
            request(experiment("random", vec![double("lr", "low", "1", "")]), 1),
            vec!["lr", "feasibleSpace.min", "not a finite number"],
        ),
        (
            "zero step",
            request(experiment("grid", vec![double("lr", "0", "1", "0")]), 1),
            vec!["lr", "feasibleSpace.step"],
        ),
        (
            "negative step",
            request(experiment("grid", vec![double("lr", "0", "1", "-0.1")]), 1),
            vec!["lr", "feasibleSpace.step"],
        ),
        (
            "count 0",
            request(experiment("random", good_parameters()), 0),
            vec!["current_request_number"],
        ),
        (
            "absurd count",
            request(experiment("random", good_parameters()), i32::MAX),
            vec!["current_request_number"],
        ),
        (
            "unknown algorithm",
            request(experiment("simulated-annealing", good_parameters()), 1),
            vec!["simulated-annealing", "random", "grid", "sobol"],
        ),
        (
            "a succeeded trial names an unknown parameter",
            api::GetSuggestionsRequest {
                trials: vec![api::Trial {
                    name: "old".into(),
                    spec: Some(api::TrialSpec {
                        parameter_assignments: Some(api::trial_spec::ParameterAssignments {
                            assignments: vec![
                                api::ParameterAssignment {
                                    name: "lr".into(),
                                    value: "0.01".into(),
                                },
                                api::ParameterAssignment {
                                    name: "momentum".into(),
                                    value: "0.9".into(),
                                },
                            ],
                        }),
                        ..Default::default()
                    }),
                    // A trial with a result must fit; one without would be skipped.
                    status: Some(api::TrialStatus {
                        condition: api::trial_status::TrialConditionType::Succeeded as i32,
                        ..Default::default()
                    }),
                }],
                ..request(experiment("random", good_parameters()), 1)
            },
            vec!["momentum", "trials[0]"],
        ),
    ];
    for (case, request, needles) in cases {
        let status = suggestion.get_suggestions(request).await.expect_err(case);
        assert_eq!(status.code(), Code::InvalidArgument, "{case}: {status}");
        for needle in needles {
            assert!(
                status.message().contains(needle),
                "{case}: {needle:?} not in {:?}",
                status.message()
            );
        }
    }
    let reply = suggestion
        .get_suggestions(request(experiment("random", good_parameters()), 3))
        .await
        .expect("still serving after bad input");
    assert_eq!(reply.into_inner().parameter_assignments.len(), 3);
}

#[tokio::test]
async fn grid_exhaustion_is_out_of_range() {
    let server = Server::start(&[]).expect("server starts");
    let mut suggestion = client(&server).await;
    let grid = experiment("grid", good_parameters());
    let reply = suggestion
        .get_suggestions(request(grid.clone(), 10))
        .await
        .expect("ten combinations exist")
        .into_inner();
    let trials: Vec<api::Trial> = reply
        .parameter_assignments
        .into_iter()
        .enumerate()
        .map(|(index, suggestion)| api::Trial {
            name: format!("t{index}"),
            spec: Some(api::TrialSpec {
                parameter_assignments: Some(api::trial_spec::ParameterAssignments {
                    assignments: suggestion.assignments,
                }),
                ..Default::default()
            }),
            status: None,
        })
        .collect();
    let status = suggestion
        .get_suggestions(api::GetSuggestionsRequest {
            trials,
            ..request(grid, 1)
        })
        .await
        .expect_err("every combination is taken");
    assert_eq!(status.code(), Code::OutOfRange, "{status}");
    assert!(status.message().contains("exhausted"), "{status}");
}

#[test]
fn sigterm_stops_the_server_gracefully() {
    let mut server = Server::start(&[]).expect("server starts");
    let pid = server.child.id().to_string();
    let status = Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .expect("kill");
    assert!(status.success());
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(exit) = server.child.try_wait().expect("wait") {
            assert!(exit.success(), "exit status {exit}");
            break;
        }
        assert!(Instant::now() < deadline, "server did not stop on SIGTERM");
        std::thread::sleep(Duration::from_millis(50));
    }
}
