//! The DBManager gRPC service over loopback, with the client generated in sextant-proto.

use sextant_proto::api::db_manager_client::DbManagerClient;
use sextant_proto::api::{
    DeleteObservationLogRequest, GetObservationLogRequest, Metric, MetricLog, ObservationLog,
    ReportObservationLogRequest,
};
use sextant_store::{Backend, Store};
use tonic::Code;
use tonic::transport::Channel;

use crate::support::{TestDatabaseInfo, TestServer, run_on};

fn metric_log(time_stamp: &str, name: &str, value: &str) -> MetricLog {
    MetricLog {
        time_stamp: time_stamp.to_owned(),
        metric: Some(Metric {
            name: name.to_owned(),
            value: value.to_owned(),
        }),
    }
}

fn report(trial_name: &str, metric_logs: Vec<MetricLog>) -> ReportObservationLogRequest {
    ReportObservationLogRequest {
        trial_name: trial_name.to_owned(),
        observation_log: Some(ObservationLog { metric_logs }),
    }
}

fn get(
    trial_name: &str,
    metric_name: &str,
    start_time: &str,
    end_time: &str,
) -> GetObservationLogRequest {
    GetObservationLogRequest {
        trial_name: trial_name.to_owned(),
        metric_name: metric_name.to_owned(),
        start_time: start_time.to_owned(),
        end_time: end_time.to_owned(),
    }
}

async fn read(
    client: &mut DbManagerClient<Channel>,
    request: GetObservationLogRequest,
) -> anyhow::Result<Vec<(String, String, String)>> {
    let reply = client.get_observation_log(request).await?.into_inner();
    Ok(reply
        .observation_log
        .unwrap_or_default()
        .metric_logs
        .into_iter()
        .map(|log| {
            let metric = log.metric.unwrap_or_default();
            (log.time_stamp, metric.name, metric.value)
        })
        .collect())
}

fn triple(time_stamp: &str, name: &str, value: &str) -> (String, String, String) {
    (time_stamp.to_owned(), name.to_owned(), value.to_owned())
}

/// Katib's semantics end to end: what the SDK sends, the skipped entries, filters, deletion.
async fn katib_semantics(store: Store, _: TestDatabaseInfo) -> anyhow::Result<()> {
    let server = TestServer::start(store).await?;
    let mut client = DbManagerClient::connect(server.endpoint()).await?;

    client
        .report_observation_log(report(
            "trial-1",
            vec![
                // `kubeflow.katib.report_metrics` stamps whole seconds with a Z.
                metric_log("2024-06-01T10:00:00Z", "loss", "0.5"),
                // Entries without a time stamp are skipped, as Katib does.
                metric_log("", "loss", "99"),
                metric_log("2024-06-01T12:00:01.250+02:00", "accuracy", "0.75"),
                metric_log("2024-06-01T10:00:02.123456789Z", "loss", "unavailable"),
                metric_log("2024-06-01T10:00:03Z", "loss", "NaN"),
                metric_log("2024-06-01T10:00:04Z", "loss", "1e999"),
            ],
        ))
        .await?;

    assert_eq!(
        read(&mut client, get("trial-1", "", "", "")).await?,
        [
            triple("2024-06-01T10:00:00Z", "loss", "0.5"),
            triple("2024-06-01T10:00:01.25Z", "accuracy", "0.75"),
            triple("2024-06-01T10:00:02.123456Z", "loss", "unavailable"),
            triple("2024-06-01T10:00:03Z", "loss", "NaN"),
            triple("2024-06-01T10:00:04Z", "loss", "1e999"),
        ]
    );
    assert_eq!(
        read(
            &mut client,
            get(
                "trial-1",
                "loss",
                "2024-06-01T10:00:01.25Z",
                "2024-06-01T10:00:03Z"
            )
        )
        .await?,
        [
            triple("2024-06-01T10:00:02.123456Z", "loss", "unavailable"),
            triple("2024-06-01T10:00:03Z", "loss", "NaN"),
        ]
    );
    assert!(
        read(&mut client, get("no-such-trial", "", "", ""))
            .await?
            .is_empty()
    );

    client
        .delete_observation_log(DeleteObservationLogRequest {
            trial_name: "trial-1".to_owned(),
        })
        .await?;
    assert!(
        read(&mut client, get("trial-1", "", "", ""))
            .await?
            .is_empty()
    );

    server.shutdown().await
}

/// Malformed requests are refused with INVALID_ARGUMENT naming the field, and store nothing.
async fn bad_requests(store: Store, _: TestDatabaseInfo) -> anyhow::Result<()> {
    let server = TestServer::start(store).await?;
    let mut client = DbManagerClient::connect(server.endpoint()).await?;

    let cases = [
        (
            report(
                "trial-1",
                vec![
                    metric_log("2024-06-01T10:00:00Z", "loss", "1"),
                    metric_log("yesterday", "loss", "2"),
                ],
            ),
            "metric_logs[1].time_stamp",
        ),
        (
            report(
                "trial-1",
                vec![metric_log("2024-06-01 10:00:00", "loss", "1")],
            ),
            "time_stamp",
        ),
        (
            report("trial-1", vec![metric_log("1714979289", "loss", "1")]),
            "time_stamp",
        ),
        (
            report("", vec![metric_log("2024-06-01T10:00:00Z", "loss", "1")]),
            "trial_name",
        ),
        (
            report("trial-1", vec![metric_log("2024-06-01T10:00:00Z", "", "1")]),
            "metric.name",
        ),
        (
            report(
                "trial-1",
                vec![MetricLog {
                    time_stamp: "2024-06-01T10:00:00Z".to_owned(),
                    metric: None,
                }],
            ),
            "metric_logs[0].metric",
        ),
        (
            report(
                "trial-1",
                vec![metric_log("2024-06-01T10:00:00Z", "loss", "a\0b")],
            ),
            "value",
        ),
        (
            report(
                "trial-1",
                vec![metric_log("2024-06-01T10:00:00Z", &"m".repeat(300), "1")],
            ),
            "metric_name",
        ),
        (
            // Several insert statements' worth of good points before the bad one: the
            // statements already run are rolled back with it.
            report("trial-1", {
                let mut logs = vec![
                    metric_log("2024-06-01T10:00:00Z", "loss", "1");
                    3 * sextant_store::observation_log::ROWS_PER_INSERT
                ];
                logs.push(metric_log("not-a-time", "loss", "1"));
                logs
            }),
            "metric_logs[3000].time_stamp",
        ),
    ];
    for (request, field) in cases {
        let status = client.report_observation_log(request).await.unwrap_err();
        assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
        assert!(
            status.message().contains(field),
            "{:?} does not name {field}",
            status.message()
        );
    }
    assert!(
        read(&mut client, get("trial-1", "", "", ""))
            .await?
            .is_empty(),
        "a refused report stores nothing"
    );

    for request in [
        get("", "", "", ""),
        get("trial-1", "", "not-a-time", ""),
        get("trial-1", "", "", "2024-13-01T00:00:00Z"),
    ] {
        let status = client.get_observation_log(request).await.unwrap_err();
        assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
    }
    let status = client
        .delete_observation_log(DeleteObservationLogRequest {
            trial_name: String::new(),
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);

    // A report without an observation log, or with only stamp-less entries, is a no-op.
    client
        .report_observation_log(ReportObservationLogRequest {
            trial_name: "trial-1".to_owned(),
            observation_log: None,
        })
        .await?;
    client
        .report_observation_log(report("trial-1", vec![metric_log("", "loss", "1")]))
        .await?;
    assert!(
        read(&mut client, get("trial-1", "", "", ""))
            .await?
            .is_empty()
    );

    server.shutdown().await
}

macro_rules! service_on_every_backend {
    ($($scenario:ident),*) => {
        mod sqlite {
            $(#[tokio::test]
            async fn $scenario() -> anyhow::Result<()> {
                super::run_on(super::Backend::Sqlite, super::$scenario).await
            })*
        }
        mod postgres {
            $(#[tokio::test]
            async fn $scenario() -> anyhow::Result<()> {
                super::run_on(super::Backend::Postgres, super::$scenario).await
            })*
        }
        mod mysql {
            $(#[tokio::test]
            async fn $scenario() -> anyhow::Result<()> {
                super::run_on(super::Backend::MySql, super::$scenario).await
            })*
        }
    };
}

service_on_every_backend!(katib_semantics, bad_requests);
