//! The EarlyStopping service over loopback gRPC: rules computed from observation logs that an
//! in-test DBManager serves, settings validation errors, and SetTrialStatus recording.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;

use sextant_proto::api;
use sextant_proto::api::db_manager_server::{DbManager, DbManagerServer};
use sextant_proto::api::early_stopping_client::EarlyStoppingClient;
use sextant_suggestion::EarlyStoppingService;
use sextant_suggestion::early_stopping::{DbManagerObservations, InMemoryTrialStatuses};
use tokio::net::TcpListener;
use tokio_stream::wrappers::TcpListenerStream;
use tonic::transport::{Channel, Server};
use tonic::{Code, Request, Response, Status};

/// A DBManager holding fixed observation logs in memory.
#[derive(Debug, Default)]
struct InMemoryDbManager {
    logs: BTreeMap<String, Vec<(String, String)>>,
}

#[tonic::async_trait]
impl DbManager for InMemoryDbManager {
    async fn report_observation_log(
        &self,
        _request: Request<api::ReportObservationLogRequest>,
    ) -> Result<Response<api::ReportObservationLogReply>, Status> {
        Err(Status::unimplemented("read-only test DBManager"))
    }

    async fn get_observation_log(
        &self,
        request: Request<api::GetObservationLogRequest>,
    ) -> Result<Response<api::GetObservationLogReply>, Status> {
        let request = request.into_inner();
        let metric_logs = self
            .logs
            .get(&request.trial_name)
            .into_iter()
            .flatten()
            .filter(|(name, _)| request.metric_name.is_empty() || *name == request.metric_name)
            .enumerate()
            .map(|(index, (name, value))| api::MetricLog {
                time_stamp: format!("2026-01-01T00:00:{index:02}Z"),
                metric: Some(api::Metric {
                    name: name.clone(),
                    value: value.clone(),
                }),
            })
            .collect();
        Ok(Response::new(api::GetObservationLogReply {
            observation_log: Some(api::ObservationLog { metric_logs }),
        }))
    }

    async fn delete_observation_log(
        &self,
        _request: Request<api::DeleteObservationLogRequest>,
    ) -> Result<Response<api::DeleteObservationLogReply>, Status> {
        Err(Status::unimplemented("read-only test DBManager"))
    }
}

async fn bind() -> (TcpListenerStream, SocketAddr) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let address = listener.local_addr().expect("address");
    (TcpListenerStream::new(listener), address)
}

async fn start_db_manager(logs: BTreeMap<String, Vec<(String, String)>>) -> SocketAddr {
    let (incoming, address) = bind().await;
    tokio::spawn(
        Server::builder()
            .add_service(DbManagerServer::new(InMemoryDbManager { logs }))
            .serve_with_incoming(incoming),
    );
    address
}

async fn start_early_stopping(
    statuses: Arc<InMemoryTrialStatuses>,
) -> EarlyStoppingClient<Channel> {
    let (incoming, address) = bind().await;
    let service = EarlyStoppingService::new(Arc::new(DbManagerObservations), statuses);
    tokio::spawn(
        Server::builder()
            .add_service(service.into_server())
            .serve_with_incoming(incoming),
    );
    EarlyStoppingClient::connect(format!("http://{address}"))
        .await
        .expect("connect")
}

fn experiment(direction: api::ObjectiveType, settings: &[(&str, &str)]) -> api::Experiment {
    api::Experiment {
        name: "median".into(),
        spec: Some(api::ExperimentSpec {
            objective: Some(api::ObjectiveSpec {
                r#type: direction as i32,
                goal: 0.0,
                objective_metric_name: "accuracy".into(),
                additional_metric_names: vec!["loss".into()],
                ..Default::default()
            }),
            early_stopping: Some(early_stopping_spec("medianstop", settings)),
            ..Default::default()
        }),
    }
}

fn early_stopping_spec(name: &str, settings: &[(&str, &str)]) -> api::EarlyStoppingSpec {
    api::EarlyStoppingSpec {
        algorithm_name: name.into(),
        algorithm_settings: settings
            .iter()
            .map(|(name, value)| api::EarlyStoppingSetting {
                name: (*name).into(),
                value: (*value).into(),
            })
            .collect(),
    }
}

fn trial(name: &str, condition: api::trial_status::TrialConditionType) -> api::Trial {
    api::Trial {
        name: name.into(),
        spec: None,
        status: Some(api::TrialStatus {
            condition: condition as i32,
            ..Default::default()
        }),
    }
}

fn log(values: &[&str]) -> Vec<(String, String)> {
    values
        .iter()
        .flat_map(|value| {
            [
                ("loss".to_string(), "9".to_string()),
                ("accuracy".to_string(), value.to_string()),
            ]
        })
        .collect()
}

#[tokio::test]
async fn rules_come_from_the_median_of_logged_running_averages() {
    use api::trial_status::TrialConditionType::{Running, Succeeded};
    let logs = BTreeMap::from([
        ("a".to_string(), log(&["0.2", "0.4", "0.9"])),
        ("b".to_string(), log(&["0.5", "0.7"])),
        ("c".to_string(), log(&["unavailable", "0.6", "0.8", "1.0"])),
        ("d".to_string(), log(&["0.0", "0.0"])),
    ]);
    let db_manager = start_db_manager(logs).await;
    let mut client = start_early_stopping(Arc::new(InMemoryTrialStatuses::default())).await;
    let request = |trials: Vec<api::Trial>, direction| api::GetEarlyStoppingRulesRequest {
        experiment: Some(experiment(direction, &[("start_step", "2")])),
        trials,
        db_manager_address: db_manager.to_string(),
    };

    // Two succeeded trials are below the default min_trials_required of 3: no rule yet.
    let reply = client
        .get_early_stopping_rules(request(
            vec![
                trial("a", Succeeded),
                trial("b", Succeeded),
                trial("d", Running),
            ],
            api::ObjectiveType::Maximize,
        ))
        .await
        .expect("rules")
        .into_inner();
    assert!(reply.early_stopping_rules.is_empty());

    // Averages of the first two numeric values: a 0.3, b 0.6, c 0.7; the median is 0.6.
    let trials = vec![
        trial("a", Succeeded),
        trial("b", Succeeded),
        trial("c", Succeeded),
        trial("d", Running),
    ];
    let reply = client
        .get_early_stopping_rules(request(trials.clone(), api::ObjectiveType::Maximize))
        .await
        .expect("rules")
        .into_inner();
    assert_eq!(
        reply.early_stopping_rules,
        vec![api::EarlyStoppingRule {
            name: "accuracy".into(),
            value: "0.6".into(),
            comparison: api::ComparisonType::Less as i32,
            start_step: 2,
        }]
    );
    let reply = client
        .get_early_stopping_rules(request(trials, api::ObjectiveType::Minimize))
        .await
        .expect("rules")
        .into_inner();
    assert_eq!(
        reply.early_stopping_rules[0].comparison,
        api::ComparisonType::Greater as i32
    );
}

#[tokio::test]
async fn an_unreachable_db_manager_and_bad_requests_are_reported() {
    use api::trial_status::TrialConditionType::Succeeded;
    let mut client = start_early_stopping(Arc::new(InMemoryTrialStatuses::default())).await;
    // A port nothing listens on: bind one and drop the listener.
    let closed = {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        listener.local_addr().expect("address")
    };
    let status = client
        .get_early_stopping_rules(api::GetEarlyStoppingRulesRequest {
            experiment: Some(experiment(api::ObjectiveType::Maximize, &[])),
            trials: vec![trial("a", Succeeded)],
            db_manager_address: closed.to_string(),
        })
        .await
        .expect_err("unreachable");
    assert_eq!(status.code(), Code::Unavailable);
    assert!(
        status.message().contains(&closed.to_string()),
        "{}",
        status.message()
    );

    let status = client
        .get_early_stopping_rules(api::GetEarlyStoppingRulesRequest {
            experiment: Some(experiment(api::ObjectiveType::Maximize, &[])),
            trials: vec![trial("a", Succeeded)],
            db_manager_address: String::new(),
        })
        .await
        .expect_err("no address");
    assert_eq!(status.code(), Code::InvalidArgument);
    assert!(status.message().contains("db_manager_address"));

    let mut unknown_direction = experiment(api::ObjectiveType::Maximize, &[]);
    if let Some(objective) = unknown_direction
        .spec
        .as_mut()
        .and_then(|spec| spec.objective.as_mut())
    {
        objective.r#type = api::ObjectiveType::Unknown as i32;
    }
    let status = client
        .get_early_stopping_rules(api::GetEarlyStoppingRulesRequest {
            experiment: Some(unknown_direction),
            trials: Vec::new(),
            db_manager_address: String::new(),
        })
        .await
        .expect_err("no direction");
    assert_eq!(status.code(), Code::InvalidArgument);
    assert!(status.message().contains("objective.type"));
}

#[tokio::test]
async fn settings_validation_names_the_setting() {
    let mut client = start_early_stopping(Arc::new(InMemoryTrialStatuses::default())).await;
    let validate =
        |name: &str, settings: &[(&str, &str)]| api::ValidateEarlyStoppingSettingsRequest {
            early_stopping: Some(early_stopping_spec(name, settings)),
        };
    client
        .validate_early_stopping_settings(validate(
            "medianstop",
            &[("min_trials_required", "5"), ("start_step", "1")],
        ))
        .await
        .expect("valid");
    type Case<'a> = (&'a str, &'a [(&'a str, &'a str)], &'a str);
    let cases: [Case<'_>; 5] = [
        (
            "medianstop",
            &[("min_trials_required", "0")],
            "min_trials_required: value \"0\" must be greater than zero (>0)",
        ),
        (
            "medianstop",
            &[("start_step", "0")],
            "start_step: value \"0\" must be greater or equal than one (>=1)",
        ),
        ("medianstop", &[("start_step", "four")], "start_step"),
        (
            "medianstop",
            &[("patience", "2")],
            "unknown setting \"patience\"",
        ),
        ("meanstop", &[], "unknown algorithm \"meanstop\""),
    ];
    for (name, settings, expected) in cases {
        let status = client
            .validate_early_stopping_settings(validate(name, settings))
            .await
            .expect_err("invalid");
        assert_eq!(status.code(), Code::InvalidArgument);
        assert!(
            status.message().contains(expected),
            "{:?} lacks {expected:?}",
            status.message()
        );
    }
    let status = client
        .validate_early_stopping_settings(api::ValidateEarlyStoppingSettingsRequest {
            early_stopping: None,
        })
        .await
        .expect_err("missing");
    assert_eq!(status.code(), Code::InvalidArgument);
}

#[tokio::test]
async fn set_trial_status_records_the_trial() {
    let statuses = Arc::new(InMemoryTrialStatuses::default());
    let mut client = start_early_stopping(statuses.clone()).await;
    client
        .set_trial_status(api::SetTrialStatusRequest {
            trial_name: "median-x7k2".into(),
        })
        .await
        .expect("recorded");
    assert!(statuses.is_early_stopped("median-x7k2"));
    assert_eq!(statuses.early_stopped(), vec!["median-x7k2".to_string()]);
    let status = client
        .set_trial_status(api::SetTrialStatusRequest {
            trial_name: String::new(),
        })
        .await
        .expect_err("no name");
    assert_eq!(status.code(), Code::InvalidArgument);
}
