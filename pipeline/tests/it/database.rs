//! Runs recorded in Sextant's database on every backend: SQLite, PostgreSQL and MariaDB.
//!
//! PostgreSQL tests get a schema of their own in the `test` database (through `search_path`),
//! MariaDB tests a database of their own; both are dropped at the end. The server URLs can be
//! overridden with SEXTANT_TEST_POSTGRES_URL and SEXTANT_TEST_MYSQL_URL. A server that cannot be
//! reached fails the test: CI starts both servers.

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use sextant_pipeline::{
    CancellationToken, Executor, ExecutorConfig, Pipeline, RunPhase, RunRequest, RunStore,
    StepKindRegistry, StepPhase,
};
use sextant_store::Store;
use sqlx::Connection as _;

use crate::header;

const DEFAULT_POSTGRES_URL: &str = "postgres://postgres@127.0.0.1:5432/test";
const DEFAULT_MYSQL_URL: &str = "mysql://root@127.0.0.1:3306/test";

fn unique_name() -> String {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|elapsed| elapsed.as_nanos())
        .unwrap_or_default();
    format!(
        "sextant_pipeline_test_{}_{}",
        std::process::id(),
        nanos % 1_000_000_000_000
    )
}

/// Runs `body` against a fresh database for `backend` and removes the database afterwards.
async fn with_database(backend: &str, body: impl AsyncFnOnce(Store, &std::path::Path)) {
    let directory = tempfile::tempdir().unwrap();
    match backend {
        "sqlite" => {
            let store =
                Store::connect(&format!("sqlite://{}/store.db", directory.path().display()))
                    .await
                    .unwrap();
            body(store, directory.path()).await;
        }
        "postgres" => {
            let base_url = std::env::var("SEXTANT_TEST_POSTGRES_URL")
                .unwrap_or_else(|_| DEFAULT_POSTGRES_URL.to_owned());
            let schema = unique_name();
            let mut connection =
                sqlx::PgConnection::connect(&base_url)
                    .await
                    .unwrap_or_else(|error| {
                        panic!("PostgreSQL at {base_url} must be running for this test: {error}")
                    });
            sqlx::query(&format!("CREATE SCHEMA {schema}"))
                .execute(&mut connection)
                .await
                .unwrap();
            let store = Store::connect(&format!("{base_url}?options=-c%20search_path%3D{schema}"))
                .await
                .unwrap();
            body(store.clone(), directory.path()).await;
            store.close().await;
            sqlx::query(&format!("DROP SCHEMA {schema} CASCADE"))
                .execute(&mut connection)
                .await
                .unwrap();
        }
        "mysql" => {
            let base_url = std::env::var("SEXTANT_TEST_MYSQL_URL")
                .unwrap_or_else(|_| DEFAULT_MYSQL_URL.to_owned());
            let database = unique_name();
            let mut connection = sqlx::MySqlConnection::connect(&base_url)
                .await
                .unwrap_or_else(|error| {
                    panic!("MariaDB at {base_url} must be running for this test: {error}")
                });
            sqlx::raw_sql(&format!("CREATE DATABASE {database}"))
                .execute(&mut connection)
                .await
                .unwrap();
            let (prefix, _) = base_url.rsplit_once('/').unwrap();
            let store = Store::connect(&format!("{prefix}/{database}"))
                .await
                .unwrap();
            body(store.clone(), directory.path()).await;
            store.close().await;
            sqlx::raw_sql(&format!("DROP DATABASE {database}"))
                .execute(&mut connection)
                .await
                .unwrap();
        }
        other => panic!("unknown backend {other}"),
    }
}

fn pipeline() -> Pipeline {
    Pipeline::from_yaml(&format!(
        "{}spec:
  params: [{{name: word, default: 'hi there'}}]
  steps:
    - name: say
      command: [sh, -c, 'printf %s \"$1\" > said.txt', sh, '{{{{params.word}}}}']
      outputs: {{params: [{{name: said, path: said.txt}}], artifacts: [{{name: file, path: said.txt}}]}}
    - name: fan
      withItems: [a, b]
      command: [cat, '{{{{steps.say.outputs.artifacts.file}}}}']
    - name: never
      when: '{{{{steps.say.outputs.params.said}}}} == nope'
      command: ['true']
",
        header("in-database")
    ))
    .unwrap()
}

async fn runs_are_recorded_cached_and_loaded(store: Store, directory: &std::path::Path) {
    let executor = Executor::new(
        Arc::new(store.clone()),
        StepKindRegistry::default(),
        ExecutorConfig::default(),
    );
    let pipeline = pipeline();
    let request = |run_id: &str| RunRequest {
        run_id: run_id.to_owned(),
        run_dir: directory.join(run_id),
        params: Default::default(),
        cache: true,
    };
    let first = executor
        .run(&pipeline, request("first"), None, CancellationToken::new())
        .await
        .unwrap();
    assert_eq!(first.phase, RunPhase::Succeeded, "{first:#?}");
    let second = executor
        .run(&pipeline, request("second"), None, CancellationToken::new())
        .await
        .unwrap();
    assert_eq!(second.phase, RunPhase::Succeeded);
    assert!(
        second
            .steps
            .iter()
            .filter(|step| step.step != "never")
            .all(|step| step.phase == StepPhase::Cached),
        "{:#?}",
        second.steps
    );

    let stored = store.load_run("first").await.unwrap().unwrap();
    assert_eq!(stored.run.phase, RunPhase::Succeeded);
    assert_eq!(stored.run.params["word"], "hi there");
    let names: Vec<(String, Option<usize>, StepPhase)> = stored
        .steps
        .iter()
        .map(|step| (step.step.clone(), step.item_index, step.phase))
        .collect();
    assert_eq!(names[0], ("say".to_owned(), None, StepPhase::Succeeded));
    assert_eq!(names.len(), 4, "{names:?}");
    assert!(names.contains(&("fan".to_owned(), Some(1), StepPhase::Succeeded)));
    assert!(names.contains(&("never".to_owned(), None, StepPhase::Skipped)));
    assert_eq!(stored.steps[0].outputs.params["said"], "hi there");
    assert!(store.load_run("missing").await.unwrap().is_none());
    assert!(store.find_cached("no-such-key").await.unwrap().is_none());
}

#[tokio::test]
async fn sqlite_records_runs() {
    with_database("sqlite", runs_are_recorded_cached_and_loaded).await;
}

#[tokio::test]
async fn postgres_records_runs() {
    with_database("postgres", runs_are_recorded_cached_and_loaded).await;
}

#[tokio::test]
async fn mysql_records_runs() {
    with_database("mysql", runs_are_recorded_cached_and_loaded).await;
}
