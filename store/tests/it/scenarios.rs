//! Round trips through the store's API, each run on SQLite, PostgreSQL and MariaDB.

use anyhow::ensure;
use chrono::{DateTime, Duration, TimeZone, Utc};
use sextant_store::{
    ArtifactOwner, Error, MetricPoint, MirroredTrial, NewTrial, ObservationLogFilter, StepArtifact,
    Store, StoredArtifact, TrialConditionUpdate,
};

use crate::support::TestDatabaseInfo;

/// Defines one `#[tokio::test]` per backend for each scenario function.
macro_rules! on_every_backend {
    ($($scenario:ident),* $(,)?) => {
        mod sqlite {
            $(#[tokio::test]
            async fn $scenario() -> anyhow::Result<()> {
                crate::support::run_on(sextant_store::Backend::Sqlite, super::$scenario).await
            })*
        }
        mod postgres {
            $(#[tokio::test]
            async fn $scenario() -> anyhow::Result<()> {
                crate::support::run_on(sextant_store::Backend::Postgres, super::$scenario).await
            })*
        }
        mod mysql {
            $(#[tokio::test]
            async fn $scenario() -> anyhow::Result<()> {
                crate::support::run_on(sextant_store::Backend::MySql, super::$scenario).await
            })*
        }
    };
}

on_every_backend!(
    observation_log_round_trip,
    values_are_kept_as_reported,
    large_report_keeps_arrival_order,
    time_edges_round_trip,
    experiments_round_trip,
    trials_round_trip,
    mirrored_rows_round_trip,
    invalid_reports_store_nothing,
    artifacts_round_trip,
);

pub fn time(text: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(text)
        .expect("test time")
        .with_timezone(&Utc)
}

pub fn point(trial: &str, metric: &str, value: &str, timestamp: &str) -> MetricPoint {
    MetricPoint {
        trial_name: trial.to_owned(),
        metric_name: metric.to_owned(),
        value: value.to_owned(),
        timestamp: time(timestamp),
    }
}

fn values(points: &[MetricPoint]) -> Vec<&str> {
    points.iter().map(|point| point.value.as_str()).collect()
}

async fn observation_log_round_trip(store: Store, _: TestDatabaseInfo) -> anyhow::Result<()> {
    let trial = "trial-a";
    store
        .report_observation_log(
            trial,
            &[
                point(trial, "loss", "0.9", "2024-01-01T00:00:02Z"),
                point(trial, "accuracy", "0.5", "2024-01-01T00:00:02Z"),
                // Reported out of time order: reads come back by time.
                point(trial, "loss", "1.2", "2024-01-01T00:00:01Z"),
                point(trial, "Loss", "7", "2024-01-01T00:00:03Z"),
            ],
        )
        .await?;
    // A second report with a time equal to an earlier one sorts after it (arrival order).
    store
        .report_observation_log(
            trial,
            &[point(trial, "loss", "0.8", "2024-01-01T00:00:02Z")],
        )
        .await?;
    store
        .report_observation_log(
            "trial-b",
            &[point("trial-b", "loss", "5", "2024-01-01T00:00:00Z")],
        )
        .await?;

    let all = store
        .get_observation_log(&ObservationLogFilter::trial(trial))
        .await?;
    assert_eq!(values(&all), ["1.2", "0.9", "0.5", "0.8", "7"]);
    assert!(all.iter().all(|point| point.trial_name == trial));
    assert_eq!(all[0].timestamp, time("2024-01-01T00:00:01Z"));

    let loss = store
        .get_observation_log(&ObservationLogFilter {
            metric_name: Some("loss".to_owned()),
            ..ObservationLogFilter::trial(trial)
        })
        .await?;
    // `Loss` is another metric: names compare case-sensitively on every backend.
    assert_eq!(values(&loss), ["1.2", "0.9", "0.8"]);

    let window = store
        .get_observation_log(&ObservationLogFilter {
            start_time: Some(time("2024-01-01T00:00:02Z")),
            end_time: Some(time("2024-01-01T00:00:03Z")),
            ..ObservationLogFilter::trial(trial)
        })
        .await?;
    assert_eq!(
        values(&window),
        ["0.9", "0.5", "0.8", "7"],
        "bounds are inclusive"
    );

    let after = store
        .get_observation_log(&ObservationLogFilter {
            start_time: Some(time("2024-01-01T00:00:02.000001Z")),
            ..ObservationLogFilter::trial(trial)
        })
        .await?;
    assert_eq!(values(&after), ["7"]);

    assert_eq!(store.delete_observation_log(trial).await?, 5);
    assert!(
        store
            .get_observation_log(&ObservationLogFilter::trial(trial))
            .await?
            .is_empty()
    );
    assert_eq!(store.delete_observation_log(trial).await?, 0);
    let other = store
        .get_observation_log(&ObservationLogFilter::trial("trial-b"))
        .await?;
    assert_eq!(
        values(&other),
        ["5"],
        "deleting one trial's log keeps the others"
    );
    Ok(())
}

async fn values_are_kept_as_reported(
    store: Store,
    database: TestDatabaseInfo,
) -> anyhow::Result<()> {
    let trial = "trial-values";
    let reported = [
        "0.25",
        " 3 ",
        "-7.53e-05",
        "1E0",
        ".98",
        "unavailable",
        "NaN",
        "inf",
        "-Infinity",
        "1e999",
        "-1e400",
        "1e-400",
        "12345678901234567890123456789",
        "état 😀",
        "",
    ];
    let points: Vec<MetricPoint> = reported
        .iter()
        .enumerate()
        .map(|(index, value)| MetricPoint {
            trial_name: trial.to_owned(),
            metric_name: "métrique".to_owned(),
            value: (*value).to_owned(),
            timestamp: time("2024-01-01T00:00:00Z") + Duration::seconds(index as i64),
        })
        .collect();
    store.report_observation_log(trial, &points).await?;
    let read = store
        .get_observation_log(&ObservationLogFilter::trial(trial))
        .await?;
    assert_eq!(read, points);

    let stored = database.stored_values().await?;
    let numeric: Vec<Option<f64>> = stored.iter().map(|(_, numeric)| *numeric).collect();
    assert_eq!(
        numeric,
        [
            Some(0.25),
            Some(3.0),
            Some(-7.53e-05),
            Some(1.0),
            Some(0.98),
            None,
            None,
            None,
            None,
            None,
            None,
            // Underflow to zero is still a finite number.
            Some(0.0),
            Some(1.2345678901234568e28),
            None,
            None,
        ]
    );
    Ok(())
}

async fn large_report_keeps_arrival_order(store: Store, _: TestDatabaseInfo) -> anyhow::Result<()> {
    // More rows than one INSERT statement takes, all at one time: order must be arrival order.
    let trial = "trial-large";
    let count = sextant_store::observation_log::ROWS_PER_INSERT * 2 + 345;
    let timestamp = time("2024-03-01T12:00:00.123456Z");
    let points: Vec<MetricPoint> = (0..count)
        .map(|index| MetricPoint {
            trial_name: trial.to_owned(),
            metric_name: if index % 2 == 0 { "loss" } else { "accuracy" }.to_owned(),
            value: index.to_string(),
            timestamp,
        })
        .collect();
    store.report_observation_log(trial, &points).await?;
    let read = store
        .get_observation_log(&ObservationLogFilter::trial(trial))
        .await?;
    ensure!(
        read == points,
        "read {} points, not the {} reported in order",
        read.len(),
        count
    );
    Ok(())
}

async fn time_edges_round_trip(store: Store, _: TestDatabaseInfo) -> anyhow::Result<()> {
    let trial = "trial-times";
    let points = [
        // Katib's collectors report this when a line carries no time stamp.
        point(trial, "m", "1", "0001-01-01T00:00:00Z"),
        point(trial, "m", "2", "1969-12-31T23:59:59.999999Z"),
        point(trial, "m", "3", "2038-01-19T03:14:08.000001Z"),
        point(trial, "m", "4", "9999-12-31T23:59:59.999999Z"),
    ];
    store.report_observation_log(trial, &points).await?;
    // Nanoseconds are cut to microseconds.
    let nanos = point(trial, "n", "5", "2024-01-01T00:00:00.123456789Z");
    store
        .report_observation_log(trial, std::slice::from_ref(&nanos))
        .await?;

    let read = store
        .get_observation_log(&ObservationLogFilter::trial(trial))
        .await?;
    let times: Vec<DateTime<Utc>> = read.iter().map(|point| point.timestamp).collect();
    assert_eq!(
        times,
        [
            points[0].timestamp,
            points[1].timestamp,
            Utc.with_ymd_and_hms(2024, 1, 1, 0, 0, 0).unwrap() + Duration::microseconds(123_456),
            points[2].timestamp,
            points[3].timestamp,
        ]
    );
    Ok(())
}

async fn invalid_reports_store_nothing(
    store: Store,
    database: TestDatabaseInfo,
) -> anyhow::Result<()> {
    let trial = "trial-invalid";
    let good = point(trial, "loss", "1", "2024-01-01T00:00:00Z");
    let cases = [
        vec![
            good.clone(),
            point("other-trial", "loss", "1", "2024-01-01T00:00:00Z"),
        ],
        vec![good.clone(), point(trial, "", "1", "2024-01-01T00:00:00Z")],
        vec![
            good.clone(),
            point(trial, &"m".repeat(256), "1", "2024-01-01T00:00:00Z"),
        ],
        vec![
            good.clone(),
            point(trial, "loss", "a\0b", "2024-01-01T00:00:00Z"),
        ],
        vec![
            good.clone(),
            point(trial, "loss", &"9".repeat(65_536), "2024-01-01T00:00:00Z"),
        ],
    ];
    for points in cases {
        let error = store
            .report_observation_log(trial, &points)
            .await
            .unwrap_err();
        assert!(matches!(error, Error::InvalidInput { .. }), "{error}");
    }
    let error = store.report_observation_log("", &[]).await.unwrap_err();
    assert_eq!(error.to_string(), "invalid trial_name: must not be empty");
    assert!(database.stored_values().await?.is_empty());
    // The longest allowed name and value are stored on every backend.
    let longest = point(
        trial,
        &"é".repeat(255),
        &"9".repeat(65_535),
        "2024-01-01T00:00:00Z",
    );
    store
        .report_observation_log(trial, std::slice::from_ref(&longest))
        .await?;
    assert_eq!(
        store
            .get_observation_log(&ObservationLogFilter::trial(trial))
            .await?,
        [longest]
    );
    Ok(())
}

async fn experiments_round_trip(store: Store, _: TestDatabaseInfo) -> anyhow::Result<()> {
    assert!(store.get_experiment("exp").await?.is_none());
    let created = store
        .upsert_experiment("exp", r#"{"maxTrialCount":3}"#, "{}", Some(0))
        .await?;
    assert_eq!(created.resource_version, 1);
    assert_eq!(created.spec, r#"{"maxTrialCount":3}"#);
    assert_eq!(created.created_at, created.updated_at);
    assert_eq!(store.get_experiment("exp").await?.as_ref(), Some(&created));

    let running = store
        .update_experiment_status("exp", r#"{"phase":"Running"}"#, Some(1))
        .await?;
    assert_eq!(running.resource_version, 2);
    assert_eq!(running.spec, created.spec);
    assert_eq!(running.created_at, created.created_at);

    // A writer that read version 1 loses against the one that wrote version 2.
    match store.update_experiment_status("exp", "{}", Some(1)).await {
        Err(Error::Conflict {
            expected: 1,
            found: 2,
            ..
        }) => {}
        other => anyhow::bail!("expected a conflict, got {other:?}"),
    }
    match store.upsert_experiment("exp", "{}", "{}", Some(0)).await {
        Err(Error::Conflict {
            expected: 0,
            found: 2,
            ..
        }) => {}
        other => anyhow::bail!("expected a conflict on create, got {other:?}"),
    }
    match store.update_experiment_status("missing", "{}", None).await {
        Err(Error::ExperimentNotFound { name }) => assert_eq!(name, "missing"),
        other => anyhow::bail!("expected not found, got {other:?}"),
    }
    match store
        .upsert_experiment("missing", "{}", "{}", Some(4))
        .await
    {
        Err(Error::ExperimentNotFound { .. }) => {}
        other => anyhow::bail!("expected not found, got {other:?}"),
    }

    let replaced = store
        .upsert_experiment("exp", r#"{"maxTrialCount":5}"#, "{}", None)
        .await?;
    assert_eq!(replaced.resource_version, 3);
    assert_eq!(replaced.spec, r#"{"maxTrialCount":5}"#);

    store.upsert_experiment("exp-2", "{}", "{}", None).await?;
    let names: Vec<String> = store
        .list_experiments()
        .await?
        .into_iter()
        .map(|experiment| experiment.name)
        .collect();
    assert_eq!(names, ["exp", "exp-2"]);

    assert!(store.delete_experiment("exp-2").await?);
    assert!(!store.delete_experiment("exp-2").await?);
    assert_eq!(store.list_experiments().await?.len(), 1);
    Ok(())
}

/// The Running condition, started at `start`.
fn running_since(start: DateTime<Utc>) -> TrialConditionUpdate {
    TrialConditionUpdate {
        condition_type: "Running".to_owned(),
        reason: "TrialRunning".to_owned(),
        message: "Trial is running".to_owned(),
        start_time: Some(start),
        completion_time: None,
    }
}

fn new_trial(name: &str, experiment: &str) -> NewTrial {
    NewTrial {
        name: name.to_owned(),
        experiment_name: experiment.to_owned(),
        spec: r#"{"kind":"Job"}"#.to_owned(),
        assignments: format!(r#"[{{"name":"lr","value":"{name}"}}]"#),
        labels: r#"{"team":"a"}"#.to_owned(),
    }
}

/// The persistence agent's writes: every column given, the creation time included; a
/// replacement sets what it is given (a cleared time is cleared), and one trial goes alone.
async fn mirrored_rows_round_trip(store: Store, _: TestDatabaseInfo) -> anyhow::Result<()> {
    let created_at = time("2024-05-01T09:00:00.123456789Z");
    let experiment = store
        .mirror_experiment("ns.exp", "{}", "null", created_at)
        .await?;
    assert_eq!(experiment.created_at, time("2024-05-01T09:00:00.123456Z"));
    assert_eq!(experiment.resource_version, 1);
    let replaced = store
        .mirror_experiment("ns.exp", r#"{"a":1}"#, "{}", created_at)
        .await?;
    assert_eq!(
        (
            replaced.resource_version,
            replaced.created_at,
            replaced.spec.as_str()
        ),
        (2, experiment.created_at, r#"{"a":1}"#)
    );
    let started_at = time("2024-05-01T10:00:00.5Z");
    let mut mirrored = MirroredTrial {
        trial: new_trial("ns.exp-1", "ns.exp"),
        condition: running_since(started_at),
        observation: None,
        created_at,
    };
    let trial = store.mirror_trial(&mirrored).await?;
    assert_eq!(
        (
            trial.created_at,
            trial.start_time,
            trial.condition_type.as_str()
        ),
        (experiment.created_at, Some(started_at), "Running")
    );
    mirrored.condition.start_time = None;
    mirrored.condition.condition_type = "Succeeded".to_owned();
    mirrored.observation = Some(r#"{"metrics":[]}"#.to_owned());
    let trial = store.mirror_trial(&mirrored).await?;
    assert_eq!(
        (trial.start_time, trial.observation.as_deref()),
        (None, Some(r#"{"metrics":[]}"#)),
        "a mirrored trial holds what it is given"
    );
    assert_eq!(store.list_trials("ns.exp").await?, vec![trial]);
    let orphan = MirroredTrial {
        trial: new_trial("ns.lost-1", "ns.lost"),
        ..mirrored.clone()
    };
    match store.mirror_trial(&orphan).await {
        Err(Error::ExperimentNotFound { name }) => assert_eq!(name, "ns.lost"),
        other => anyhow::bail!("expected a missing experiment, got {other:?}"),
    }
    assert!(store.delete_trial("ns.exp-1").await?);
    assert!(!store.delete_trial("ns.exp-1").await?);
    assert!(store.list_trials("ns.exp").await?.is_empty());
    assert!(store.get_experiment("ns.exp").await?.is_some());
    Ok(())
}

async fn trials_round_trip(store: Store, _: TestDatabaseInfo) -> anyhow::Result<()> {
    store.upsert_experiment("exp", "{}", "{}", None).await?;
    store.upsert_experiment("other", "{}", "{}", None).await?;

    let first = store.insert_trial(&new_trial("exp-t1", "exp")).await?;
    assert_eq!(
        (
            first.condition_type.as_str(),
            first.reason.as_str(),
            first.message.as_str()
        ),
        sextant_store::experiments::CREATED_CONDITION
    );
    assert_eq!(first.assignments, r#"[{"name":"lr","value":"exp-t1"}]"#);
    assert!(
        first.start_time.is_none()
            && first.completion_time.is_none()
            && first.observation.is_none()
    );
    store.insert_trial(&new_trial("exp-t2", "exp")).await?;
    store.insert_trial(&new_trial("other-t1", "other")).await?;

    match store.insert_trial(&new_trial("exp-t1", "exp")).await {
        Err(Error::TrialAlreadyExists { name }) => assert_eq!(name, "exp-t1"),
        other => anyhow::bail!("expected a duplicate, got {other:?}"),
    }
    match store
        .insert_trial(&new_trial("lost-t1", "no-such-experiment"))
        .await
    {
        Err(Error::ExperimentNotFound { name }) => assert_eq!(name, "no-such-experiment"),
        other => anyhow::bail!("expected a missing experiment, got {other:?}"),
    }

    let started_at = time("2024-05-01T10:00:00.5Z");
    let running = store
        .update_trial_condition("exp-t1", &running_since(started_at))
        .await?;
    assert_eq!(running.condition_type, "Running");
    assert_eq!(running.start_time, Some(started_at));
    assert!(running.updated_at >= first.updated_at);

    let finished_at = time("2024-05-01T11:00:00Z");
    let succeeded = store
        .update_trial_condition(
            "exp-t1",
            &TrialConditionUpdate {
                condition_type: "Succeeded".to_owned(),
                reason: "TrialSucceeded".to_owned(),
                message: "Trial has succeeded".to_owned(),
                start_time: None,
                completion_time: Some(finished_at),
            },
        )
        .await?;
    assert_eq!(
        succeeded.start_time,
        Some(started_at),
        "an absent start time keeps the stored one"
    );
    assert_eq!(succeeded.completion_time, Some(finished_at));

    let observed = store
        .update_trial_observation(
            "exp-t1",
            Some(r#"{"metrics":[{"name":"loss","latest":"0.1"}]}"#),
        )
        .await?;
    assert_eq!(
        observed.observation.as_deref(),
        Some(r#"{"metrics":[{"name":"loss","latest":"0.1"}]}"#)
    );
    assert_eq!(store.get_trial("exp-t1").await?, Some(observed));

    match store.update_trial_observation("no-such-trial", None).await {
        Err(Error::TrialNotFound { name }) => assert_eq!(name, "no-such-trial"),
        other => anyhow::bail!("expected a missing trial, got {other:?}"),
    }

    // A trial stored straight in its first condition (a study's asked trial), then given its
    // observation and final condition in one write.
    let asked = store
        .insert_trial_in(&new_trial("exp-t3", "exp"), &running_since(started_at))
        .await?;
    assert_eq!(
        (asked.condition_type.as_str(), asked.start_time),
        ("Running", Some(started_at))
    );
    assert!(asked.completion_time.is_none() && asked.observation.is_none());
    let told = store
        .update_trial_outcome(
            "exp-t3",
            r#"{"metrics":[{"name":"loss","latest":"0.3"}]}"#,
            &TrialConditionUpdate {
                condition_type: "Failed".to_owned(),
                reason: "TrialFailed".to_owned(),
                message: "diverged".to_owned(),
                start_time: None,
                completion_time: Some(finished_at),
            },
        )
        .await?;
    assert_eq!(
        (
            told.condition_type.as_str(),
            told.message.as_str(),
            told.start_time,
            told.completion_time,
            told.observation.as_deref()
        ),
        (
            "Failed",
            "diverged",
            Some(started_at),
            Some(finished_at),
            Some(r#"{"metrics":[{"name":"loss","latest":"0.3"}]}"#)
        )
    );
    assert_eq!(store.get_trial("exp-t3").await?, Some(told));
    match store
        .insert_trial_in(
            &new_trial("exp-t4", "exp"),
            &running_since(time("9999-12-31T23:59:59Z") + chrono::Duration::days(400)),
        )
        .await
    {
        Err(Error::InvalidInput { .. }) => {}
        other => anyhow::bail!("expected an unstorable start time refused, got {other:?}"),
    }
    assert!(
        store.get_trial("exp-t4").await?.is_none(),
        "nothing half-written"
    );

    let names: Vec<String> = store
        .list_trials("exp")
        .await?
        .into_iter()
        .map(|trial| trial.name)
        .collect();
    assert_eq!(names, ["exp-t1", "exp-t2", "exp-t3"]);

    // A page at a time, in either direction and within one condition, is the list cut up.
    let listed = store.list_trials("exp").await?;
    for condition in [None, Some(listed[0].condition_type.as_str()), Some("Nope")] {
        for newest_first in [false, true] {
            let mut expected: Vec<&str> = listed
                .iter()
                .filter(|trial| condition.is_none_or(|wanted| trial.condition_type == wanted))
                .map(|trial| trial.name.as_str())
                .collect();
            if newest_first {
                expected.reverse();
            }
            let mut paged = Vec::new();
            for offset in (0..4).step_by(2) {
                let (page, total) = store
                    .page_trials("exp", condition, newest_first, offset, 2)
                    .await?;
                assert_eq!(total, expected.len(), "{condition:?} {newest_first}");
                assert!(page.len() <= 2);
                paged.extend(page.into_iter().map(|trial| trial.name));
            }
            assert_eq!(paged, expected, "{condition:?} newest first {newest_first}");
        }
    }

    // Deleting an experiment takes its trials and their observation logs, and nothing else.
    store
        .report_observation_log(
            "exp-t1",
            &[point("exp-t1", "loss", "0.1", "2024-05-01T10:30:00Z")],
        )
        .await?;
    store
        .report_observation_log(
            "other-t1",
            &[point("other-t1", "loss", "0.2", "2024-05-01T10:30:00Z")],
        )
        .await?;
    assert!(store.delete_experiment("exp").await?);
    assert!(store.list_trials("exp").await?.is_empty());
    assert!(store.get_trial("exp-t1").await?.is_none());
    assert!(
        store
            .get_observation_log(&ObservationLogFilter::trial("exp-t1"))
            .await?
            .is_empty()
    );
    assert_eq!(store.list_trials("other").await?.len(), 1);
    assert_eq!(
        store
            .get_observation_log(&ObservationLogFilter::trial("other-t1"))
            .await?
            .len(),
        1
    );
    Ok(())
}

fn artifact(name: &str, digest: char, size: u64) -> StoredArtifact {
    StoredArtifact {
        name: name.to_owned(),
        digest: digest.to_string().repeat(64),
        size,
        archive: false,
    }
}

/// Artifact names round-trip, and deleting names reports exactly the objects no name refers
/// to any more (shared objects stay until their last name goes).
async fn artifacts_round_trip(store: Store, _: TestDatabaseInfo) -> anyhow::Result<()> {
    let step = |step_name, item_index| ArtifactOwner::Step {
        run_id: "run-1",
        step_name,
        item_index,
    };
    let model = artifact("model", 'a', 10);
    let mut data = artifact("data", 'b', 20);
    data.archive = true;
    assert_eq!(store.put_artifact(step("train", None), &model).await?, None);
    assert_eq!(store.put_artifact(step("fan", Some(1)), &data).await?, None);
    // The same bytes under another run's step and a trial's log: one object, three names.
    let same_model = ArtifactOwner::Step {
        run_id: "run-2",
        step_name: "Train",
        item_index: None,
    };
    assert_eq!(store.put_artifact(same_model, &model).await?, None);
    let trial = |trial_name| ArtifactOwner::Trial {
        experiment_name: "exp",
        trial_name,
    };
    assert_eq!(
        store
            .put_artifact(trial("exp-t1"), &artifact("output.log", 'a', 10))
            .await?,
        None
    );
    assert_eq!(
        store
            .put_artifact(trial("exp-t2"), &artifact("output.log", 'c', 5))
            .await?,
        None
    );

    assert_eq!(
        store.list_run_artifacts("run-1").await?,
        vec![
            StepArtifact {
                step_name: "fan".into(),
                item_index: Some(1),
                artifact: data.clone()
            },
            StepArtifact {
                step_name: "train".into(),
                item_index: None,
                artifact: model.clone()
            },
        ]
    );
    assert_eq!(
        store.list_run_artifacts("Run-1").await?,
        vec![],
        "names are case-sensitive"
    );
    assert_eq!(
        store.list_trial_artifacts("exp-t2").await?,
        vec![artifact("output.log", 'c', 5)]
    );
    let mut trials = store.trials_with_artifacts("exp").await?;
    trials.sort();
    assert_eq!(trials, ["exp-t1", "exp-t2"]);

    // Replacing a name whose object nothing else names reports that object.
    assert_eq!(
        store
            .put_artifact(trial("exp-t2"), &artifact("output.log", 'd', 6))
            .await?,
        Some("c".repeat(64))
    );
    // Replacing with the same digest reports nothing.
    assert_eq!(
        store
            .put_artifact(trial("exp-t2"), &artifact("output.log", 'd', 6))
            .await?,
        None
    );

    // run-1 goes: its "data" object is no one's now; "model" is still run-2's and exp-t1's.
    assert_eq!(
        store.delete_run_artifacts("run-1").await?,
        vec!["b".repeat(64)]
    );
    assert_eq!(store.list_run_artifacts("run-1").await?, vec![]);
    assert_eq!(
        store.delete_run_artifacts("run-2").await?,
        Vec::<String>::new()
    );
    let mut orphaned = store.delete_experiment_artifacts("exp").await?;
    orphaned.sort();
    assert_eq!(orphaned, vec!["a".repeat(64), "d".repeat(64)]);
    assert_eq!(store.list_trial_artifacts("exp-t1").await?, vec![]);
    assert!(matches!(
        store
            .put_artifact(trial("exp-t1"), &artifact("", 'a', 1))
            .await,
        Err(Error::InvalidInput { .. })
    ));
    Ok(())
}
