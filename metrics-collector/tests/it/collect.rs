//! `run_collect` end to end: a real command, real pipes, a real gRPC DBManager.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::time::Duration;

use clap::Parser;
use sextant_metrics::{
    CollectArgs, CollectConfig, Error, LineFormat, PushConfig, run_collect, run_collect_with_output,
};

use crate::db_manager::{RecordingDbManager, rebind, unused_address};
use crate::support::CapturedOutput;
use sextant_metrics::parse::FormatError;

fn fast_push_config() -> PushConfig {
    PushConfig {
        batch_size: 20,
        batch_interval: Duration::from_millis(50),
        buffer_limit: 100_000,
        initial_backoff: Duration::from_millis(20),
        max_backoff: Duration::from_millis(200),
        request_timeout: Duration::from_secs(2),
        flush_timeout: Duration::from_secs(10),
    }
}

fn config(address: SocketAddr, command: &[&str]) -> CollectConfig {
    CollectConfig {
        trial_name: "trial-1".to_string(),
        metric_names: vec!["loss".to_string(), "accuracy".to_string()],
        format: LineFormat::Text,
        metrics_formats: Vec::new(),
        path: None,
        db_manager_address: address.to_string(),
        command: command.iter().map(|item| item.to_string()).collect(),
        push: fast_push_config(),
    }
}

/// Prints `loss=1` .. `loss=COUNT`, one line every 10 ms or so.
fn counting_script(count: u32) -> String {
    format!(r#"i=1; while [ $i -le {count} ]; do echo "loss=$i"; i=$((i+1)); sleep 0.01; done"#)
}

fn numbers(count: u32) -> BTreeSet<String> {
    (1..=count).map(|number| number.to_string()).collect()
}

#[tokio::test]
async fn points_arrive_output_passes_through_and_exit_status_is_kept() -> anyhow::Result<()> {
    let db = RecordingDbManager::default();
    let (_server, address) = db.serve_anywhere();
    let script = r#"echo loss=0.5; echo hello >&2; sleep 0.2; echo "loss=0.3 accuracy=0.9"; printf 'x\377\376 accuracy=.98'; exit 3"#;
    let stdout = CapturedOutput::default();
    let stderr = CapturedOutput::default();
    let outcome = run_collect_with_output(
        config(address, &["sh", "-c", script]),
        stdout.clone(),
        stderr.clone(),
    )
    .await?;
    assert_eq!(outcome.exit_code, 3);
    assert_eq!(
        stdout.bytes(),
        b"loss=0.5\nloss=0.3 accuracy=0.9\nx\xff\xfe accuracy=.98"
    );
    assert_eq!(stderr.bytes(), b"hello\n");
    assert_eq!(db.values_of("loss"), ["0.5", "0.3"]);
    assert_eq!(db.values_of("accuracy"), ["0.9", ".98"]);
    assert!(
        db.points()
            .iter()
            .all(|point| point.trial_name == "trial-1")
    );
    assert!(!outcome.reported_unavailable);
    assert_eq!(outcome.parse_stats.points, 4);
    assert_eq!(outcome.parse_stats.skipped, 1, "`hello` is not a metric");
    assert_eq!(outcome.push_report.delivered, 4);
    Ok(())
}

#[tokio::test]
async fn a_command_killed_by_a_signal_exits_128_plus_n_and_reports_unavailable()
-> anyhow::Result<()> {
    let db = RecordingDbManager::default();
    let (_server, address) = db.serve_anywhere();
    let outcome = run_collect_with_output(
        config(address, &["sh", "-c", "echo accuracy=0.5; kill -9 $$"]),
        CapturedOutput::default(),
        CapturedOutput::default(),
    )
    .await?;
    assert_eq!(outcome.exit_code, 128 + 9);
    assert!(outcome.reported_unavailable);
    assert_eq!(db.values_of("loss"), ["unavailable"]);
    assert_eq!(db.values_of("accuracy"), ["0.5"]);
    Ok(())
}

#[tokio::test]
async fn run_collect_returns_the_exit_code() -> anyhow::Result<()> {
    let db = RecordingDbManager::default();
    let (_server, address) = db.serve_anywhere();
    let exit_code = run_collect(config(address, &["sh", "-c", "exit 42"])).await?;
    assert_eq!(exit_code, 42);
    assert_eq!(db.values_of("loss"), ["unavailable"]);
    Ok(())
}

#[tokio::test]
async fn json_lines_from_a_followed_file_that_appears_later() -> anyhow::Result<()> {
    let db = RecordingDbManager::default();
    let (_server, address) = db.serve_anywhere();
    let directory = tempfile::tempdir()?;
    let path = directory.path().join("metrics.jsonl");
    let script = r#"sleep 0.3
echo '{"loss": 0.5}' >> "$1"
echo '{"loss": "0.25", "accuracy": 1, "timestamp": 1700000000}' >> "$1"
echo 'not json' >> "$1"
printf '{"loss": NaN}' >> "$1""#;
    let mut config = config(address, &["sh", "-c", script, "sh", path.to_str().unwrap()]);
    config.format = LineFormat::Json;
    config.path = Some(path);
    let outcome =
        run_collect_with_output(config, CapturedOutput::default(), CapturedOutput::default())
            .await?;
    assert_eq!(outcome.exit_code, 0);
    assert_eq!(db.values_of("loss"), ["0.5", "0.25", "NaN"]);
    let stamped: Vec<String> = db
        .points()
        .into_iter()
        .filter(|point| point.value == "0.25" || point.value == "1")
        .map(|point| point.time_stamp)
        .collect();
    assert_eq!(stamped, ["2023-11-14T22:13:20Z", "2023-11-14T22:13:20Z"]);
    assert_eq!(outcome.parse_stats.lines, 4);
    assert_eq!(outcome.parse_stats.skipped, 1);
    Ok(())
}

#[tokio::test]
async fn custom_metrics_formats_apply_to_the_output() -> anyhow::Result<()> {
    let db = RecordingDbManager::default();
    let (_server, address) = db.serve_anywhere();
    let mut config = config(
        address,
        &["echo", "{metricName: loss, metricValue: 0.125} loss=9"],
    );
    config.metrics_formats =
        vec![r"{metricName: ([\w|-]+), metricValue: ((-?\d+)(\.\d+)?)}".to_string()];
    run_collect_with_output(config, CapturedOutput::default(), CapturedOutput::default()).await?;
    assert_eq!(db.values_of("loss"), ["0.125"]);
    Ok(())
}

#[tokio::test]
async fn a_bad_metrics_format_fails_before_the_command_runs() -> anyhow::Result<()> {
    let directory = tempfile::tempdir()?;
    let marker = directory.path().join("ran");
    let mut config = config(unused_address(), &["touch", marker.to_str().unwrap()]);
    config.metrics_formats = vec![r"(\w+)=".to_string()];
    let error = run_collect(config).await.unwrap_err();
    assert!(
        matches!(&error, Error::Format(FormatError::MetricsFormatNeedsTwoGroups { regex, groups: 1 }) if regex == r"(\w+)="),
        "{error}"
    );
    assert!(!marker.exists());
    Ok(())
}

#[tokio::test]
async fn a_command_that_cannot_start_is_a_spawn_error() {
    let error = run_collect(config(
        unused_address(),
        &["/nonexistent/trainer", "--lr=0.1"],
    ))
    .await
    .unwrap_err();
    assert!(
        matches!(&error, Error::Spawn { program, .. } if program == "/nonexistent/trainer"),
        "{error}"
    );
    let mut no_command = config(unused_address(), &[]);
    no_command.command.clear();
    assert!(matches!(
        run_collect(no_command).await,
        Err(Error::NoCommand)
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_db_manager_that_comes_up_late_gets_every_point() -> anyhow::Result<()> {
    let db = RecordingDbManager::default();
    let address = unused_address();
    let script = counting_script(100);
    let collect = tokio::spawn(run_collect_with_output(
        config(address, &["sh", "-c", &script]),
        CapturedOutput::default(),
        CapturedOutput::default(),
    ));
    tokio::time::sleep(Duration::from_millis(500)).await;
    let _server = db.serve(rebind(address).await);
    let outcome = collect.await??;
    assert_eq!(outcome.exit_code, 0);
    let stored: BTreeSet<String> = db.values_of("loss").into_iter().collect();
    assert_eq!(stored, numbers(100));
    assert!(outcome.push_report.failed_attempts > 0);
    assert_eq!(outcome.push_report.dropped, 0);
    assert_eq!(outcome.push_report.undelivered, 0);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_db_manager_that_restarts_mid_way_gets_every_point() -> anyhow::Result<()> {
    let db = RecordingDbManager::default();
    let (server, address) = db.serve_anywhere();
    let script = counting_script(150);
    let collect = tokio::spawn(run_collect_with_output(
        config(address, &["sh", "-c", &script]),
        CapturedOutput::default(),
        CapturedOutput::default(),
    ));
    assert!(crate::support::eventually(Duration::from_secs(10), || !db.points().is_empty()).await);
    server.kill();
    tokio::time::sleep(Duration::from_millis(400)).await;
    let stored_before_restart = db.points().len();
    let _server = db.serve(rebind(address).await);
    let outcome = collect.await??;
    assert_eq!(outcome.exit_code, 0);
    assert!(stored_before_restart < 150, "the restart happened mid-way");
    let stored = db.values_of("loss");
    let distinct: BTreeSet<String> = stored.iter().cloned().collect();
    assert_eq!(distinct, numbers(150), "no point is lost");
    // A duplicate is only possible for a batch whose reply was cut by the kill.
    assert!(
        stored.len() - distinct.len() <= 20,
        "{} duplicates",
        stored.len() - 150
    );
    assert!(outcome.push_report.failed_attempts > 0);
    assert_eq!(
        outcome.push_report.dropped + outcome.push_report.undelivered,
        0
    );
    Ok(())
}

#[derive(Debug, Parser)]
struct Cli {
    #[command(flatten)]
    collect: CollectArgs,
}

#[test]
fn collect_args_parse_into_a_config() {
    let cli = Cli::try_parse_from([
        "sextant",
        "--trial-name",
        "t-1",
        "--metric-names",
        "loss, accuracy",
        "--format",
        "JSON",
        "--path",
        "/tmp/m.log",
        "--db-manager",
        "127.0.0.1:6789",
        "--batch-size",
        "7",
        "--",
        "python",
        "train.py",
        "--lr=0.1",
    ])
    .unwrap();
    let config = CollectConfig::from(cli.collect);
    assert_eq!(config.trial_name, "t-1");
    assert_eq!(config.metric_names, ["loss", "accuracy"]);
    assert_eq!(config.format, LineFormat::Json);
    assert_eq!(
        config.path.as_deref(),
        Some(std::path::Path::new("/tmp/m.log"))
    );
    assert_eq!(config.db_manager_address, "127.0.0.1:6789");
    assert_eq!(config.command, ["python", "train.py", "--lr=0.1"]);
    assert_eq!(config.push.batch_size, 7);
    assert_eq!(config.push.batch_interval, Duration::from_secs(1));
    assert_eq!(config.push.buffer_limit, 100_000);

    let cli = Cli::try_parse_from([
        "sextant",
        "--trial-name=t",
        "--metric-names=loss",
        "--metrics-format",
        r"(\w+)=(\S+)",
        "--metrics-format",
        r"(\w+): (\S+)",
        "--db-manager=h:1",
        "--",
        "sh",
    ])
    .unwrap();
    assert_eq!(cli.collect.format, LineFormat::Text);
    assert_eq!(
        cli.collect.metrics_formats,
        [r"(\w+)=(\S+)", r"(\w+): (\S+)"]
    );

    let missing_command = Cli::try_parse_from([
        "sextant",
        "--trial-name=t",
        "--metric-names=loss",
        "--db-manager=h:1",
    ]);
    assert!(missing_command.is_err());
}
