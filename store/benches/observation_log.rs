//! Ingest throughput of the observation log: reports of 1, 100 and 10,000 points into SQLite
//! (a temporary file in WAL mode) and PostgreSQL, through the store and through the DBManager
//! gRPC service over loopback. Throughput is in points per second.
//!
//! PostgreSQL runs in a fresh schema of the `test` database at SEXTANT_TEST_POSTGRES_URL
//! (default `postgres://postgres@127.0.0.1:5432/test`), dropped at the end.

use std::hint::black_box;

use chrono::{Duration, Utc};
use criterion::{BatchSize, BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use sextant_proto::api::db_manager_client::DbManagerClient;
use sextant_proto::api::{Metric, MetricLog, ObservationLog, ReportObservationLogRequest};
use sextant_store::{MetricPoint, Store, db_manager_service};
use sqlx::Connection as _;

const BATCH_SIZES: [usize; 3] = [1, 100, 10_000];

fn points(trial_name: &str, count: usize) -> Vec<MetricPoint> {
    let start = Utc::now();
    (0..count)
        .map(|index| MetricPoint {
            trial_name: trial_name.to_owned(),
            metric_name: if index % 2 == 0 { "loss" } else { "accuracy" }.to_owned(),
            value: format!("0.{:06}", index * 7919 % 1_000_000),
            timestamp: start + Duration::microseconds(index as i64),
        })
        .collect()
}

fn request(points: &[MetricPoint]) -> ReportObservationLogRequest {
    ReportObservationLogRequest {
        trial_name: points[0].trial_name.clone(),
        observation_log: Some(ObservationLog {
            metric_logs: points
                .iter()
                .map(|point| MetricLog {
                    time_stamp: point.timestamp.to_rfc3339(),
                    metric: Some(Metric {
                        name: point.metric_name.clone(),
                        value: point.value.clone(),
                    }),
                })
                .collect(),
        }),
    }
}

fn report_observation_log(criterion: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    let directory = tempfile::tempdir().expect("temporary directory");
    let sqlite_url = format!("sqlite://{}/bench.db", directory.path().display());
    let postgres_base_url = std::env::var("SEXTANT_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_owned());
    let schema = format!("sextant_bench_{}", std::process::id());
    let postgres_url = format!("{postgres_base_url}?options=-c%20search_path%3D{schema}");
    runtime.block_on(async {
        let mut connection = sqlx::PgConnection::connect(&postgres_base_url)
            .await
            .expect("PostgreSQL must be running");
        sqlx::query(&format!("CREATE SCHEMA {schema}"))
            .execute(&mut connection)
            .await
            .expect("create schema");
    });

    let mut group = criterion.benchmark_group("report_observation_log");
    for (backend, url) in [("sqlite", &sqlite_url), ("postgres", &postgres_url)] {
        let store = runtime
            .block_on(Store::connect(url))
            .expect("connect the store");
        let (endpoint, shutdown) = runtime.block_on(async {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
                .await
                .expect("bind");
            let address = listener.local_addr().expect("address");
            let (sender, receiver) = tokio::sync::oneshot::channel::<()>();
            tokio::spawn(
                tonic::transport::Server::builder()
                    .add_service(db_manager_service(store.clone()))
                    .serve_with_incoming_shutdown(
                        tokio_stream::wrappers::TcpListenerStream::new(listener),
                        async {
                            let _ = receiver.await;
                        },
                    ),
            );
            (format!("http://{address}"), sender)
        });
        let client = runtime
            .block_on(DbManagerClient::connect(endpoint))
            .expect("connect the client")
            .max_decoding_message_size(64 << 20);
        for batch_size in BATCH_SIZES {
            group.throughput(Throughput::Elements(batch_size as u64));
            // Each report carries fresh, later time stamps, as a running trial's would; making
            // them is setup, outside the measured time.
            let store_trial = format!("store-{batch_size}");
            group.bench_function(
                BenchmarkId::new(format!("{backend}/store"), batch_size),
                |bencher| {
                    bencher.to_async(&runtime).iter_batched(
                        || points(&store_trial, batch_size),
                        |points| {
                            let store = store.clone();
                            async move {
                                store
                                    .report_observation_log(
                                        &points[0].trial_name,
                                        black_box(&points),
                                    )
                                    .await
                                    .expect("report");
                            }
                        },
                        BatchSize::PerIteration,
                    );
                },
            );
            let grpc_trial = format!("grpc-{batch_size}");
            group.bench_function(
                BenchmarkId::new(format!("{backend}/grpc"), batch_size),
                |bencher| {
                    bencher.to_async(&runtime).iter_batched(
                        || (client.clone(), request(&points(&grpc_trial, batch_size))),
                        |(mut client, grpc_request)| async move {
                            client
                                .report_observation_log(black_box(grpc_request))
                                .await
                                .expect("report");
                        },
                        BatchSize::PerIteration,
                    );
                },
            );
        }
        let _ = shutdown.send(());
        runtime.block_on(store.close());
    }
    group.finish();

    runtime.block_on(async {
        let mut connection = sqlx::PgConnection::connect(&postgres_base_url)
            .await
            .expect("PostgreSQL");
        sqlx::query(&format!("DROP SCHEMA {schema} CASCADE"))
            .execute(&mut connection)
            .await
            .expect("drop schema");
    });
}

criterion_group!(benches, report_observation_log);
criterion_main!(benches);
