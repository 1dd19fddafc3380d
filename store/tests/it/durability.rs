//! Nothing acknowledged is lost: a server whose runtime is torn down mid-stream (every task
//! dropped wherever it stands, as close to a kill as one process allows) keeps every report it
//! acknowledged, and every report is stored whole or not at all.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context as _;
use sextant_proto::api::db_manager_client::DbManagerClient;
use sextant_proto::api::{Metric, MetricLog, ObservationLog, ReportObservationLogRequest};
use sextant_store::{Backend, MetricPoint, ObservationLogFilter, Store, db_manager_service};

use crate::support::{TestDatabaseInfo, run_on};

const CLIENTS: usize = 4;
const POINTS_PER_REPORT: usize = 25;

fn report(client: usize, sequence: usize) -> ReportObservationLogRequest {
    let metric_logs = (0..POINTS_PER_REPORT)
        .map(|index| MetricLog {
            time_stamp: format!("2024-01-01T00:00:{:02}.{sequence:06}Z", index % 60),
            metric: Some(Metric {
                name: "loss".to_owned(),
                value: format!("{sequence}.{index}"),
            }),
        })
        .collect();
    ReportObservationLogRequest {
        trial_name: format!("trial-{client}"),
        observation_log: Some(ObservationLog { metric_logs }),
    }
}

/// Serves DBManager for `url` on its own runtime and thread until `stop` fires, then drops the
/// whole runtime at once.
fn start_killable_server(
    url: String,
) -> anyhow::Result<(
    String,
    std::sync::mpsc::Sender<()>,
    std::thread::JoinHandle<()>,
)> {
    let (address_sender, address_receiver) = std::sync::mpsc::channel();
    let (stop_sender, stop_receiver) = std::sync::mpsc::channel::<()>();
    let thread = std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("server runtime");
        runtime.spawn(async move {
            let store = Store::connect(&url).await.expect("server store");
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
                .await
                .expect("bind");
            address_sender
                .send(listener.local_addr().expect("address"))
                .expect("send address");
            tonic::transport::Server::builder()
                .add_service(db_manager_service(store))
                .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener))
                .await
                .expect("serve");
        });
        let _ = stop_receiver.recv();
        runtime.shutdown_background();
    });
    let address = address_receiver
        .recv_timeout(Duration::from_secs(30))
        .context("the server did not start")?;
    Ok((format!("http://{address}"), stop_sender, thread))
}

async fn acknowledged_reports_survive_a_torn_down_server(
    store: Store,
    database: TestDatabaseInfo,
) -> anyhow::Result<()> {
    let (endpoint, stop, server_thread) = start_killable_server(database.url.clone())?;
    let acknowledged: Arc<Mutex<BTreeSet<(usize, usize)>>> = Arc::default();
    let mut clients = Vec::new();
    for client_index in 0..CLIENTS {
        let endpoint = endpoint.clone();
        let acknowledged = Arc::clone(&acknowledged);
        clients.push(tokio::spawn(async move {
            let Ok(mut client) = DbManagerClient::connect(endpoint).await else {
                return;
            };
            for sequence in 0.. {
                if client
                    .report_observation_log(report(client_index, sequence))
                    .await
                    .is_err()
                {
                    return;
                }
                acknowledged
                    .lock()
                    .expect("lock")
                    .insert((client_index, sequence));
            }
        }));
    }
    // Let a stream of reports build up, then tear the server down in the middle of it.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while acknowledged.lock().expect("lock").len() < 40 {
        anyhow::ensure!(
            tokio::time::Instant::now() < deadline,
            "the server acknowledged too few reports"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    stop.send(())?;
    server_thread
        .join()
        .map_err(|_| anyhow::anyhow!("server thread panicked"))?;
    for client in clients {
        client.await?;
    }

    let acknowledged = acknowledged.lock().expect("lock").clone();
    for client_index in 0..CLIENTS {
        let points = store
            .get_observation_log(&ObservationLogFilter::trial(format!(
                "trial-{client_index}"
            )))
            .await?;
        let mut points_per_report: BTreeMap<usize, Vec<&MetricPoint>> = BTreeMap::new();
        for point in &points {
            let sequence: usize = point.value.split('.').next().unwrap_or_default().parse()?;
            points_per_report.entry(sequence).or_default().push(point);
        }
        for (sequence, points) in &points_per_report {
            assert_eq!(
                points.len(),
                POINTS_PER_REPORT,
                "report {client_index}/{sequence} was stored in part"
            );
        }
        for (acknowledged_client, sequence) in &acknowledged {
            if *acknowledged_client == client_index {
                assert!(
                    points_per_report.contains_key(sequence),
                    "acknowledged report {client_index}/{sequence} was lost"
                );
            }
        }
    }
    Ok(())
}

#[tokio::test]
async fn sqlite_acknowledged_reports_survive_a_torn_down_server() -> anyhow::Result<()> {
    run_on(
        Backend::Sqlite,
        acknowledged_reports_survive_a_torn_down_server,
    )
    .await
}

#[tokio::test]
async fn postgres_acknowledged_reports_survive_a_torn_down_server() -> anyhow::Result<()> {
    run_on(
        Backend::Postgres,
        acknowledged_reports_survive_a_torn_down_server,
    )
    .await
}

#[tokio::test]
async fn mysql_acknowledged_reports_survive_a_torn_down_server() -> anyhow::Result<()> {
    run_on(
        Backend::MySql,
        acknowledged_reports_survive_a_torn_down_server,
    )
    .await
}

#[tokio::test]
async fn sqlite_file_survives_reopening_and_concurrent_stores() -> anyhow::Result<()> {
    let directory = tempfile::tempdir()?;
    // A directory that does not exist yet is created with the file.
    let url = format!(
        "sqlite://{}/nested/dir/sextant.db",
        directory.path().display()
    );
    let first = Store::connect(&url).await?;
    let second = Store::connect(&url).await?;
    let mut writers = Vec::new();
    for (writer_index, store) in [first.clone(), second.clone(), first.clone(), second.clone()]
        .into_iter()
        .enumerate()
    {
        writers.push(tokio::spawn(async move {
            let trial = format!("trial-{writer_index}");
            for sequence in 0..30 {
                let points: Vec<MetricPoint> = (0..10)
                    .map(|index| MetricPoint {
                        trial_name: trial.clone(),
                        metric_name: "loss".to_owned(),
                        value: format!("{sequence}.{index}"),
                        timestamp: chrono::Utc::now(),
                    })
                    .collect();
                store.report_observation_log(&trial, &points).await?;
            }
            anyhow::Ok(())
        }));
    }
    for writer in writers {
        writer.await??;
    }
    first.close().await;
    second.close().await;

    let reopened = Store::connect(&url).await?;
    for writer_index in 0..4 {
        let points = reopened
            .get_observation_log(&ObservationLogFilter::trial(format!(
                "trial-{writer_index}"
            )))
            .await?;
        assert_eq!(points.len(), 300);
    }
    reopened.ping().await?;
    reopened.close().await;
    Ok(())
}
