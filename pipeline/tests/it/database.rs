//! Runs recorded in Sextant's database on every backend: SQLite, PostgreSQL and MariaDB.
//!
//! Each test gets an isolated database of `sextant-test-support`, dropped at the end.

use std::sync::Arc;

use sextant_pipeline::{
    CancellationToken, Executor, ExecutorConfig, Pipeline, RunPhase, RunRequest, RunStore,
    StepKindRegistry, StepPhase,
};
use sextant_store::{Backend, Store};
use sextant_test_support::TestDatabase;

use crate::header;

/// Runs `body` against a fresh database for `backend` and removes the database afterwards.
async fn with_database(backend: Backend, body: impl AsyncFnOnce(Store, &std::path::Path)) {
    let directory = tempfile::tempdir().unwrap();
    let database = TestDatabase::create(backend).await.unwrap();
    let store = Store::connect(&database.url).await.unwrap();
    body(store.clone(), directory.path()).await;
    store.close().await;
    database.drop_database().await.unwrap();
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
        trial: None,
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

    // A run the persistence agent mirrors from a cluster is never executed here.
    let mut mirrored = stored.run.clone();
    mirrored.run_id = "ns.nightly".into();
    mirrored.phase = RunPhase::Running;
    mirrored.cluster_namespace = Some("ns".into());
    store.save_run(&mirrored).await.unwrap();
    let refused = executor
        .resume("ns.nightly", None, CancellationToken::new())
        .await
        .expect_err("a cluster's run is not resumed");
    assert_eq!(
        refused.to_string(),
        "run `ns.nightly` is managed by the cluster namespace `ns`; use kubectl"
    );
}

#[tokio::test]
async fn sqlite_records_runs() {
    with_database(Backend::Sqlite, runs_are_recorded_cached_and_loaded).await;
}

#[tokio::test]
async fn postgres_records_runs() {
    with_database(Backend::Postgres, runs_are_recorded_cached_and_loaded).await;
}

#[tokio::test]
async fn mysql_records_runs() {
    with_database(Backend::MySql, runs_are_recorded_cached_and_loaded).await;
}
