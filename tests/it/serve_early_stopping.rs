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
    trial(name, api::trial_status::TrialConditionType::Succeeded)
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

/// Stores `values` of `accuracy` for `trial` in the server's DBManager, in order.
async fn report_accuracy(
    db: &mut DbManagerClient<tonic::transport::Channel>,
    trial: &str,
    values: &[f64],
) {
    let metric_logs = values
        .iter()
        .enumerate()
        .map(|(step, value)| api::MetricLog {
            time_stamp: format!("2026-01-01T00:00:{step:02}Z"),
            metric: Some(api::Metric {
                name: "accuracy".into(),
                value: value.to_string(),
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

#[tokio::test]
async fn asha_rules_are_the_first_rungs_cutoff_among_every_trial_that_reached_it() {
    use api::trial_status::TrialConditionType as Condition;
    let server = Server::start(&[]).expect("server starts");
    let mut db = DbManagerClient::connect(server.endpoint())
        .await
        .expect("connect");
    // Values at the first rung (report 2, the best so far): 0.9, 0.3 and 0.7.
    report_accuracy(&mut db, "running", &[0.5, 0.9]).await;
    report_accuracy(&mut db, "stopped", &[0.3, 0.2]).await;
    report_accuracy(&mut db, "done", &[0.6, 0.7, 0.8]).await;
    report_accuracy(&mut db, "early", &[0.1]).await;
    let mut spec = experiment();
    if let Some(spec) = spec.spec.as_mut() {
        spec.early_stopping = Some(api::EarlyStoppingSpec {
            algorithm_name: "asha".into(),
            algorithm_settings: [("min_resource", "2"), ("reduction_factor", "2")]
                .into_iter()
                .map(|(name, value)| api::EarlyStoppingSetting {
                    name: name.into(),
                    value: value.into(),
                })
                .collect(),
        });
    }
    let mut early_stopping = EarlyStoppingClient::connect(server.endpoint())
        .await
        .expect("connect");
    let rules = early_stopping
        .get_early_stopping_rules(api::GetEarlyStoppingRulesRequest {
            experiment: Some(spec),
            trials: vec![
                trial("running", Condition::Running),
                trial("stopped", Condition::Earlystopped),
                succeeded("done"),
                trial("early", Condition::Running),
                trial("new", Condition::Created),
            ],
            db_manager_address: server.address.to_string(),
        })
        .await
        .expect("rules")
        .into_inner()
        .early_stopping_rules;
    // With a new trial, four values compete: the best two go on, so it must reach 0.7.
    assert_eq!(
        rules,
        [api::EarlyStoppingRule {
            name: "accuracy".into(),
            value: "0.7".into(),
            comparison: api::ComparisonType::Less as i32,
            start_step: 2,
        }]
    );

    let invalid = early_stopping
        .validate_early_stopping_settings(api::ValidateEarlyStoppingSettingsRequest {
            early_stopping: Some(api::EarlyStoppingSpec {
                algorithm_name: "successivehalving".into(),
                algorithm_settings: vec![api::EarlyStoppingSetting {
                    name: "reduction_factor".into(),
                    value: "1".into(),
                }],
            }),
        })
        .await
        .expect_err("reduction_factor 1 is invalid");
    assert_eq!(invalid.code(), Code::InvalidArgument);
    assert!(
        invalid
            .message()
            .contains("reduction_factor: value \"1\" must be an integer >= 2"),
        "{invalid}"
    );
}
