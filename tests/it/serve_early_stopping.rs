//! `sextant serve` answering Katib's EarlyStopping API, reading logs from its own DBManager.

use sextant_proto::api;
use sextant_proto::api::db_manager_client::DbManagerClient;
use sextant_proto::api::early_stopping_client::EarlyStoppingClient;
use tonic::Code;

use crate::support::Server;

fn experiment() -> api::Experiment {
    api::Experiment {
        name: "es".into(),
        spec: Some(api::ExperimentSpec {
            objective: Some(api::ObjectiveSpec {
                r#type: api::ObjectiveType::Maximize as i32,
                objective_metric_name: "accuracy".into(),
                ..Default::default()
            }),
            early_stopping: Some(api::EarlyStoppingSpec {
                algorithm_name: "medianstop".into(),
                algorithm_settings: vec![api::EarlyStoppingSetting {
                    name: "min_trials_required".into(),
                    value: "2".into(),
                }],
            }),
            ..Default::default()
        }),
    }
}

fn succeeded(name: &str) -> api::Trial {
    api::Trial {
        name: name.into(),
        spec: None,
        status: Some(api::TrialStatus {
            condition: api::trial_status::TrialConditionType::Succeeded as i32,
            ..Default::default()
        }),
    }
}

#[tokio::test]
async fn medianstop_rules_come_from_the_servers_own_observation_logs() {
    let server = Server::start(&[]).expect("server starts");
    let mut db = DbManagerClient::connect(server.endpoint())
        .await
        .expect("connect");
    for (trial, base) in [("good", 0.8), ("better", 0.9)] {
        let metric_logs = (0..6)
            .map(|step| api::MetricLog {
                time_stamp: format!("2026-01-01T00:00:0{step}Z"),
                metric: Some(api::Metric {
                    name: "accuracy".into(),
                    value: format!("{}", base + 0.01 * f64::from(step)),
                }),
            })
            .collect();
        db.report_observation_log(api::ReportObservationLogRequest {
            trial_name: trial.into(),
            observation_log: Some(api::ObservationLog { metric_logs }),
        })
        .await
        .expect("report");
    }
    let mut early_stopping = EarlyStoppingClient::connect(server.endpoint())
        .await
        .expect("connect");
    let rules = early_stopping
        .get_early_stopping_rules(api::GetEarlyStoppingRulesRequest {
            experiment: Some(experiment()),
            trials: vec![succeeded("good"), succeeded("better")],
            db_manager_address: server.address.to_string(),
        })
        .await
        .expect("rules")
        .into_inner()
        .early_stopping_rules;
    assert_eq!(rules.len(), 1, "{rules:?}");
    assert_eq!(rules[0].name, "accuracy");
    assert_eq!(rules[0].comparison, api::ComparisonType::Less as i32);
    let threshold: f64 = rules[0].value.parse().expect("a number");
    assert!(threshold > 0.8 && threshold < 0.95, "{threshold}");

    let invalid = early_stopping
        .validate_early_stopping_settings(api::ValidateEarlyStoppingSettingsRequest {
            early_stopping: Some(api::EarlyStoppingSpec {
                algorithm_name: "medianstop".into(),
                algorithm_settings: vec![api::EarlyStoppingSetting {
                    name: "start_step".into(),
                    value: "0".into(),
                }],
            }),
        })
        .await
        .expect_err("start_step 0 is invalid");
    assert_eq!(invalid.code(), Code::InvalidArgument);
    assert!(invalid.message().contains("start_step"), "{invalid}");

    // A trial the server's store does not hold cannot be stopped: NOT_FOUND, naming it.
    let unknown = early_stopping
        .set_trial_status(api::SetTrialStatusRequest {
            trial_name: "no-such-trial".into(),
        })
        .await
        .expect_err("an unknown trial");
    assert_eq!(unknown.code(), Code::NotFound, "{unknown}");
    assert!(unknown.message().contains("no-such-trial"), "{unknown}");
}
