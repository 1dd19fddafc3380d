//! Suggestion latency: one GetSuggestions call (one assignment) for the model-free algorithms,
//! answered in process and over loopback gRPC, with 0, 100 and 1000 past trials in the request.

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use sextant_proto::api;
use sextant_proto::api::suggestion_client::SuggestionClient;
use sextant_suggestion::SuggestionService;
use tokio::net::TcpListener;
use tokio_stream::wrappers::TcpListenerStream;

fn parameters() -> Vec<api::ParameterSpec> {
    let spec = |name: &str, parameter_type: api::ParameterType, feasible: api::FeasibleSpace| {
        api::ParameterSpec {
            name: name.into(),
            parameter_type: parameter_type as i32,
            feasible_space: Some(feasible),
            condition: None,
        }
    };
    vec![
        spec(
            "lr",
            api::ParameterType::Double,
            api::FeasibleSpace {
                min: "0.0001".into(),
                max: "0.1".into(),
                step: "0.0001".into(),
                ..Default::default()
            },
        ),
        spec(
            "layers",
            api::ParameterType::Int,
            api::FeasibleSpace {
                min: "1".into(),
                max: "64".into(),
                ..Default::default()
            },
        ),
        spec(
            "optimizer",
            api::ParameterType::Categorical,
            api::FeasibleSpace {
                list: vec!["sgd".into(), "adam".into(), "ftrl".into()],
                ..Default::default()
            },
        ),
    ]
}

fn experiment(algorithm: &str) -> api::Experiment {
    api::Experiment {
        name: "bench".into(),
        spec: Some(api::ExperimentSpec {
            parameter_specs: Some(api::experiment_spec::ParameterSpecs {
                parameters: parameters(),
            }),
            objective: Some(api::ObjectiveSpec {
                r#type: api::ObjectiveType::Minimize as i32,
                objective_metric_name: "loss".into(),
                ..Default::default()
            }),
            algorithm: Some(api::AlgorithmSpec {
                algorithm_name: algorithm.into(),
                algorithm_settings: vec![api::AlgorithmSetting {
                    name: "random_state".into(),
                    value: "7".into(),
                }],
            }),
            ..Default::default()
        }),
    }
}

/// A request carrying `past` succeeded trials, proposed by the same algorithm.
fn request_with_history(algorithm: &str, past: usize) -> api::GetSuggestionsRequest {
    let mut request = api::GetSuggestionsRequest {
        experiment: Some(experiment(algorithm)),
        trials: Vec::new(),
        current_request_number: past.max(1) as i32,
        total_request_number: past as i32,
    };
    let trials = if past == 0 {
        Vec::new()
    } else {
        let reply = SuggestionService::suggest(&request).expect("history suggestions");
        reply
            .parameter_assignments
            .into_iter()
            .enumerate()
            .map(|(index, suggestion)| api::Trial {
                name: format!("trial-{index}"),
                spec: Some(api::TrialSpec {
                    parameter_assignments: Some(api::trial_spec::ParameterAssignments {
                        assignments: suggestion.assignments,
                    }),
                    ..Default::default()
                }),
                status: Some(api::TrialStatus {
                    condition: api::trial_status::TrialConditionType::Succeeded as i32,
                    observation: Some(api::Observation {
                        metrics: vec![api::Metric {
                            name: "loss".into(),
                            value: format!("{}", (index % 17) as f64 / 17.0),
                        }],
                    }),
                    ..Default::default()
                }),
            })
            .collect()
    };
    request.trials = trials;
    request.current_request_number = 1;
    request
}

fn suggestion_latency(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let (address, _server) = runtime.block_on(async {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let address = listener.local_addr().expect("address");
        let server = tokio::spawn(
            tonic::transport::Server::builder()
                .initial_stream_window_size(sextant_proto::STREAM_WINDOW_BYTES)
                .initial_connection_window_size(sextant_proto::CONNECTION_WINDOW_BYTES)
                .add_service(SuggestionService::default().into_server())
                .serve_with_incoming(TcpListenerStream::new(listener)),
        );
        (address, server)
    });
    let mut client = runtime.block_on(async {
        SuggestionClient::connect(format!("http://{address}"))
            .await
            .expect("connect")
    });

    let mut group = c.benchmark_group("get_suggestions");
    for algorithm in ["random", "grid", "sobol"] {
        for past in [0usize, 100, 1000] {
            let request = request_with_history(algorithm, past);
            group.bench_with_input(
                BenchmarkId::new(format!("{algorithm}/in_process"), past),
                &request,
                |b, request| b.iter(|| SuggestionService::suggest(request).expect("suggests")),
            );
            group.bench_with_input(
                BenchmarkId::new(format!("{algorithm}/loopback_grpc"), past),
                &request,
                |b, request| {
                    b.iter(|| {
                        runtime
                            .block_on(client.get_suggestions(request.clone()))
                            .expect("suggests")
                    })
                },
            );
        }
    }
    group.finish();
}

criterion_group!(benches, suggestion_latency);
criterion_main!(benches);
