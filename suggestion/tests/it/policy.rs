//! The drivers' suggestion policy over both transports: the algorithms in process and a
//! Suggestion service over loopback gRPC (Sextant's own, and a recording fake that answers as a
//! Katib service may).

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use sextant_proto::api;
use sextant_proto::api::suggestion_server::{Suggestion, SuggestionServer};
use sextant_suggestion::{MAX_REQUEST_NUMBER, Outcome, Suggester, SuggestionService};
use tokio::net::TcpListener;
use tokio_stream::wrappers::TcpListenerStream;
use tonic::transport::Server;
use tonic::{Request, Response, Status};

fn setting(name: &str, value: &str) -> api::AlgorithmSetting {
    api::AlgorithmSetting {
        name: name.into(),
        value: value.into(),
    }
}

/// A trial at `x = value`, in `condition`, that reported `metrics`.
pub fn trial_at(
    name: String,
    value: String,
    condition: api::trial_status::TrialConditionType,
    metrics: Vec<api::Metric>,
) -> api::Trial {
    api::Trial {
        name,
        spec: Some(api::TrialSpec {
            parameter_assignments: Some(api::trial_spec::ParameterAssignments {
                assignments: vec![api::ParameterAssignment {
                    name: "x".into(),
                    value,
                }],
            }),
            ..Default::default()
        }),
        status: Some(api::TrialStatus {
            condition: condition as i32,
            observation: Some(api::Observation { metrics }),
            ..Default::default()
        }),
    }
}

/// A request of the experiment `name` searching one parameter `x` with `algorithm`, given
/// `trials`, asking for `count` more.
pub fn request_over_x(
    name: &str,
    x: api::ParameterSpec,
    objective: api::ObjectiveSpec,
    algorithm: api::AlgorithmSpec,
    trials: Vec<api::Trial>,
    count: i32,
) -> api::GetSuggestionsRequest {
    api::GetSuggestionsRequest {
        experiment: Some(api::Experiment {
            name: name.into(),
            spec: Some(api::ExperimentSpec {
                parameter_specs: Some(api::experiment_spec::ParameterSpecs {
                    parameters: vec![x],
                }),
                objective: Some(objective),
                algorithm: Some(algorithm),
                ..Default::default()
            }),
        }),
        total_request_number: i32::try_from(trials.len()).expect("few") + count,
        trials,
        current_request_number: count,
    }
}

/// A grid over `x` in 1..=4 with the trials at `tried`, asking for `count`.
fn grid_request(tried: &[u32], count: i32) -> api::GetSuggestionsRequest {
    let trials = tried
        .iter()
        .map(|x| {
            trial_at(
                format!("grid-{x}"),
                x.to_string(),
                api::trial_status::TrialConditionType::Running,
                Vec::new(),
            )
        })
        .collect();
    request_over_x(
        "grid",
        api::ParameterSpec {
            name: "x".into(),
            parameter_type: api::ParameterType::Int as i32,
            feasible_space: Some(api::FeasibleSpace {
                min: "1".into(),
                max: "4".into(),
                ..Default::default()
            }),
            condition: None,
        },
        api::ObjectiveSpec {
            r#type: api::ObjectiveType::Minimize as i32,
            objective_metric_name: "loss".into(),
            ..Default::default()
        },
        api::AlgorithmSpec {
            algorithm_name: "grid".into(),
            algorithm_settings: vec![setting("random_state", "1")],
        },
        trials,
        count,
    )
}

pub async fn serve<S: Suggestion>(service: SuggestionServer<S>) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let address = listener.local_addr().expect("address");
    tokio::spawn(
        Server::builder()
            .add_service(service)
            .serve_with_incoming(TcpListenerStream::new(listener)),
    );
    address
}

fn values(outcome: &Outcome) -> Vec<String> {
    match outcome {
        Outcome::Assignments(reply) => reply
            .parameter_assignments
            .iter()
            .flat_map(|suggestion| suggestion.assignments.iter().map(|pair| pair.value.clone()))
            .collect(),
        other => panic!("expected assignments, got {other:?}"),
    }
}

fn assignment_count(outcome: &Outcome) -> usize {
    match outcome {
        Outcome::Assignments(reply) => reply.parameter_assignments.len(),
        other => panic!("expected assignments, got {other:?}"),
    }
}

#[tokio::test]
async fn both_transports_propose_the_last_points_then_report_exhaustion() {
    let address = serve(SuggestionService::default().into_server()).await;
    for mut suggester in [
        Suggester::new(None),
        Suggester::new(Some(&address.to_string())),
    ] {
        let last = suggester.suggest(grid_request(&[1, 2, 3], 2)).await;
        assert_eq!(values(&last), ["4"], "{suggester:?}");
        let none = suggester.suggest(grid_request(&[1, 2, 3, 4], 2)).await;
        assert!(
            matches!(none, Outcome::Exhausted { .. }),
            "{suggester:?}: {none:?}"
        );
    }
}

/// A service that records every request, answers `OUT_OF_RANGE` to a request for more than
/// `most` assignments, and hands back `state` = the number of requests answered so far.
#[derive(Debug, Clone)]
struct Recording {
    most: i32,
    requests: Arc<Mutex<Vec<api::GetSuggestionsRequest>>>,
}

#[tonic::async_trait]
impl Suggestion for Recording {
    async fn get_suggestions(
        &self,
        request: Request<api::GetSuggestionsRequest>,
    ) -> Result<Response<api::GetSuggestionsReply>, Status> {
        let request = request.into_inner();
        let count = request.current_request_number;
        let answered = {
            let mut requests = self.requests.lock().expect("not poisoned");
            requests.push(request);
            requests.len()
        };
        if count > self.most {
            return Err(Status::out_of_range("fewer points remain"));
        }
        Ok(Response::new(api::GetSuggestionsReply {
            parameter_assignments: (0..count)
                .map(|_| api::get_suggestions_reply::ParameterAssignments::default())
                .collect(),
            algorithm: Some(api::AlgorithmSpec {
                algorithm_name: "grid".into(),
                algorithm_settings: vec![setting("state", &answered.to_string())],
            }),
            early_stopping_rules: Vec::new(),
        }))
    }

    async fn validate_algorithm_settings(
        &self,
        _request: Request<api::ValidateAlgorithmSettingsRequest>,
    ) -> Result<Response<api::ValidateAlgorithmSettingsReply>, Status> {
        Ok(Response::new(api::ValidateAlgorithmSettingsReply {}))
    }
}

async fn recording(most: i32) -> (Suggester, Arc<Mutex<Vec<api::GetSuggestionsRequest>>>) {
    let requests = Arc::new(Mutex::new(Vec::new()));
    let service = Recording {
        most,
        requests: requests.clone(),
    };
    let address = serve(SuggestionServer::new(service)).await;
    (Suggester::new(Some(&address.to_string())), requests)
}

fn settings(request: &api::GetSuggestionsRequest) -> Vec<api::AlgorithmSetting> {
    request
        .experiment
        .as_ref()
        .and_then(|experiment| experiment.spec.as_ref())
        .and_then(|spec| spec.algorithm.as_ref())
        .map(|algorithm| algorithm.algorithm_settings.clone())
        .unwrap_or_default()
}

#[tokio::test]
async fn remote_exhaustion_is_retried_one_at_a_time() {
    let (mut suggester, requests) = recording(1).await;
    let outcome = suggester.suggest(grid_request(&[1], 3)).await;
    assert_eq!(assignment_count(&outcome), 1);
    let requests = requests.lock().expect("not poisoned");
    let counts: Vec<(i32, i32)> = requests
        .iter()
        .map(|request| (request.current_request_number, request.total_request_number))
        .collect();
    assert_eq!(counts, [(3, 4), (1, 2)]);
}

#[tokio::test]
async fn handed_back_settings_override_the_specs_in_later_requests() {
    let (mut suggester, requests) = recording(10).await;
    let mut request = grid_request(&[], 1);
    if let Some(algorithm) = request
        .experiment
        .as_mut()
        .and_then(|experiment| experiment.spec.as_mut())
        .and_then(|spec| spec.algorithm.as_mut())
    {
        algorithm.algorithm_settings.push(setting("state", "spec"));
    }
    for _ in 0..2 {
        assert_eq!(
            assignment_count(&suggester.suggest(request.clone()).await),
            1
        );
    }
    assert_eq!(
        suggester.returned_settings(),
        [("state".to_string(), "2".to_string())]
    );
    let requests = requests.lock().expect("not poisoned");
    assert_eq!(
        settings(&requests[0]),
        [setting("random_state", "1"), setting("state", "spec")]
    );
    assert_eq!(
        settings(&requests[1]),
        [setting("random_state", "1"), setting("state", "1")]
    );
}

#[tokio::test]
async fn a_request_asks_for_at_most_the_services_limit() {
    let (mut suggester, requests) = recording(MAX_REQUEST_NUMBER).await;
    let outcome = suggester
        .suggest(grid_request(&[], MAX_REQUEST_NUMBER + 5))
        .await;
    assert_eq!(
        assignment_count(&outcome),
        usize::try_from(MAX_REQUEST_NUMBER).expect("positive")
    );
    let asked: Vec<i32> = requests
        .lock()
        .expect("not poisoned")
        .iter()
        .map(|request| request.current_request_number)
        .collect();
    assert_eq!(asked, [MAX_REQUEST_NUMBER]);
}
