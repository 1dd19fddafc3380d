//! A metric point the DBManager acknowledged survives SIGKILL of `sextant serve`.
//!
//! A client streams reports while the server is killed with SIGKILL mid-stream; a new server
//! on the same SQLite file must return every point whose report was acknowledged, once.

use std::collections::HashSet;
use std::time::Duration;

use sextant_proto::api;
use sextant_proto::api::db_manager_client::DbManagerClient;

use crate::support::Server;

fn report(trial: &str, batch: usize) -> api::ReportObservationLogRequest {
    api::ReportObservationLogRequest {
        trial_name: trial.into(),
        observation_log: Some(api::ObservationLog {
            metric_logs: (0..10)
                .map(|index| api::MetricLog {
                    time_stamp: format!(
                        "2026-01-01T00:{:02}:{:02}.{:06}Z",
                        batch / 60 % 60,
                        batch % 60,
                        index
                    ),
                    metric: Some(api::Metric {
                        name: "loss".into(),
                        value: format!("{batch}.{index}"),
                    }),
                })
                .collect(),
        }),
    }
}

#[tokio::test]
async fn sigkill_loses_no_acknowledged_point() {
    let scratch = tempfile::tempdir().expect("tempdir");
    let db = format!("sqlite://{}", scratch.path().join("sextant.db").display());
    let mut server = Server::start_with_db(&db, &[]).expect("server starts");
    let mut client = DbManagerClient::connect(server.endpoint())
        .await
        .expect("connect");

    let killer = {
        let pid = server.child.id();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(400)).await;
            std::process::Command::new("kill")
                .args(["-KILL", &pid.to_string()])
                .status()
                .expect("kill -KILL");
        })
    };
    let mut acknowledged = HashSet::new();
    for batch in 0..100_000 {
        match client
            .report_observation_log(report("durable", batch))
            .await
        {
            Ok(_) => {
                for index in 0..10 {
                    acknowledged.insert(format!("{batch}.{index}"));
                }
            }
            Err(_) => break,
        }
    }
    killer.await.expect("killer");
    let _ = server.child.wait();
    assert!(
        acknowledged.len() >= 10,
        "the server was killed before any report was acknowledged"
    );

    let restarted = Server::start_with_db(&db, &[]).expect("server restarts");
    let mut client = DbManagerClient::connect(restarted.endpoint())
        .await
        .expect("connect");
    let logs = client
        .get_observation_log(api::GetObservationLogRequest {
            trial_name: "durable".into(),
            ..Default::default()
        })
        .await
        .expect("read back")
        .into_inner()
        .observation_log
        .expect("log")
        .metric_logs;
    let stored: Vec<String> = logs
        .iter()
        .map(|log| log.metric.as_ref().expect("metric").value.clone())
        .collect();
    let unique: HashSet<&String> = stored.iter().collect();
    assert_eq!(unique.len(), stored.len(), "a point was stored twice");
    for value in &acknowledged {
        assert!(
            unique.contains(value),
            "acknowledged point {value} lost ({} acknowledged, {} stored)",
            acknowledged.len(),
            stored.len()
        );
    }
}
