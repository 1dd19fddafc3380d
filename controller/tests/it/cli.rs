//! The experiment commands as the binary calls them: their exit statuses and their text.

use std::path::Path;

use clap::Parser;
use sextant_controller::cli::{self, CliError, GetArgs, RunArgs, ValidateArgs};
use sextant_pipeline::cli::ExitStatus;
use sextant_store::Store;

#[derive(Parser)]
enum Command {
    Run(RunArgs),
    Validate(ValidateArgs),
    Get(GetArgs),
}

fn parse(arguments: &[&str]) -> Command {
    Command::try_parse_from(std::iter::once("sextant").chain(arguments.iter().copied()))
        .expect("arguments parse")
}

/// An experiment of three trials, one at a time, whose loss is the value of `x` a trial got.
fn experiment(name: &str, objective_type: &str) -> String {
    format!(
        "apiVersion: kubeflow.org/v1beta1
kind: Experiment
metadata: {{name: {name}}}
spec:
  objective: {{type: {objective_type}, objectiveMetricName: loss}}
  algorithm: {{algorithmName: grid}}
  parallelTrialCount: 1
  maxTrialCount: 3
  parameters:
    - {{name: x, parameterType: discrete, feasibleSpace: {{list: ['0.5', '0.25', '0.75']}}}}
  trialTemplate:
    primaryContainerName: main
    trialParameters: [{{name: x, reference: x}}]
    trialSpec:
      apiVersion: sextant.dev/v1beta1
      kind: Process
      spec: {{command: [echo, 'loss=${{trialParameters.x}}']}}
"
    )
}

fn text(bytes: Vec<u8>) -> String {
    String::from_utf8(bytes).expect("UTF-8")
}

fn db_url(directory: &Path) -> String {
    format!("sqlite://{}", directory.join("sextant.db").display())
}

async fn run_file(file: &Path, db: &str) -> (ExitStatus, String, String) {
    let Command::Run(args) = parse(&["run", file.to_str().expect("a path"), "--db", db]) else {
        unreachable!("parsed as run")
    };
    let (mut out, mut err) = (Vec::new(), Vec::new());
    let status = cli::run(&args, std::future::pending(), &mut out, &mut err)
        .await
        .expect("the run");
    (status, text(out), text(err))
}

async fn get(arguments: &[&str]) -> (Result<ExitStatus, CliError>, String, String) {
    let Command::Get(args) = parse(arguments) else {
        unreachable!("parsed as get")
    };
    let (mut out, mut err) = (Vec::new(), Vec::new());
    let status = cli::get(&args, &mut out, &mut err).await;
    (status, text(out), text(err))
}

#[test]
fn validate_names_each_problem_and_ends_as_invalid_input() {
    let directory = tempfile::tempdir().expect("a directory");
    let valid = directory.path().join("valid.yaml");
    std::fs::write(&valid, experiment("fine", "minimize")).expect("write");
    let invalid = directory.path().join("invalid.yaml");
    std::fs::write(
        &invalid,
        experiment("broken", "minimize")
            .replace("parallelTrialCount: 1", "parallelTrialCount: -1")
            .replace("algorithmName: grid", "algorithmName: nosuch"),
    )
    .expect("write");

    let Command::Validate(args) = parse(&["validate", valid.to_str().expect("a path")]) else {
        unreachable!("parsed as validate")
    };
    let (mut out, mut err) = (Vec::new(), Vec::new());
    assert_eq!(
        cli::validate(&args, &mut out, &mut err),
        ExitStatus::Success
    );
    assert!(text(out).contains("experiment \"fine\" is valid"));

    let Command::Validate(args) = parse(&[
        "validate",
        valid.to_str().expect("a path"),
        invalid.to_str().expect("a path"),
    ]) else {
        unreachable!("parsed as validate")
    };
    let (mut out, mut err) = (Vec::new(), Vec::new());
    assert_eq!(
        cli::validate(&args, &mut out, &mut err),
        ExitStatus::InvalidInput
    );
    let err = text(err);
    assert!(err.contains("spec.parallelTrialCount"), "{err}");
    assert!(err.contains("spec.algorithm.algorithmName"), "{err}");
    assert!(text(out).contains("\"fine\" is valid"));
}

#[tokio::test]
async fn run_then_get_show_the_best_trial_first_under_the_objective() {
    let directory = tempfile::tempdir().expect("a directory");
    let db = db_url(directory.path());
    for (name, objective, best) in [
        ("lowest", "minimize", "0.25"),
        ("highest", "maximize", "0.75"),
    ] {
        let file = directory.path().join(format!("{name}.yaml"));
        std::fs::write(&file, experiment(name, objective)).expect("write");
        let (status, out, err) = run_file(&file, &db).await;
        assert_eq!(status, ExitStatus::Success, "{out}{err}");
        assert!(
            out.starts_with(&format!("experiment {name}: Succeeded (")),
            "{out}"
        );
        assert!(out.contains(&format!("  x = {best}")), "{out}");
        assert!(
            err.contains(&format!("{name}: 3 succeeded, 0 running")),
            "{err}"
        );

        let (status, table, _) = get(&["get", "trials", name, "--db", &db]).await;
        assert_eq!(status.expect("get trials"), ExitStatus::Success);
        let rows: Vec<&str> = table.lines().skip(1).collect();
        assert_eq!(rows.len(), 3, "{table}");
        assert!(rows[0].ends_with(&format!("x={best}")), "{table}");
    }

    let (status, table, _) = get(&["get", "experiments", "--db", &db]).await;
    assert_eq!(status.expect("get experiments"), ExitStatus::Success);
    assert!(
        table
            .lines()
            .any(|line| line.starts_with("lowest") && line.contains("Succeeded"))
    );

    let (status, _, err) = get(&["get", "experiment", "missing", "--db", &db]).await;
    assert_eq!(status.expect("get experiment"), ExitStatus::InvalidInput);
    assert!(err.contains("no experiment \"missing\""), "{err}");
}

#[tokio::test]
async fn a_stored_row_that_does_not_parse_is_an_error_naming_it() {
    let directory = tempfile::tempdir().expect("a directory");
    let db = db_url(directory.path());
    let store = Store::connect(&db).await.expect("the store");
    let spec = sextant_experiment::load_experiments(&experiment("damaged", "minimize"))
        .expect("valid")
        .remove(0);
    let spec = serde_json::to_string(&spec).expect("JSON");
    store
        .upsert_experiment("damaged", &spec, "{not json", None)
        .await
        .expect("stored");
    store.close().await;
    let (status, _, _) = get(&["get", "experiments", "--db", &db]).await;
    let error = status.expect_err("the row does not parse");
    assert!(
        matches!(&error, CliError::Stored { what: "experiment status", name, .. } if name == "damaged"),
        "{error}"
    );
}

/// A trial whose command cannot be started (here: it does not exist; a process limit gives
/// EAGAIN on the same path) fails alone with `StartFailed`; the run goes on to its end.
#[tokio::test]
async fn a_trial_that_cannot_start_fails_alone_and_the_run_ends() {
    let directory = tempfile::tempdir().expect("a directory");
    let db = db_url(directory.path());
    let file = directory.path().join("unstartable.yaml");
    std::fs::write(
        &file,
        experiment("unstartable", "minimize")
            .replace("command: [echo,", "command: [/nonexistent/trainer,")
            .replace(
                "parallelTrialCount: 1",
                "parallelTrialCount: 1\n  maxFailedTrialCount: 3",
            ),
    )
    .expect("write");
    let (status, out, err) = run_file(&file, &db).await;
    assert_eq!(status, ExitStatus::Failure, "{out}{err}");
    let (status, trials, _) =
        get(&["get", "trials", "unstartable", "--db", &db, "-o", "json"]).await;
    assert_eq!(status.expect("get trials"), ExitStatus::Success);
    let trials: Vec<serde_json::Value> = serde_json::from_str(&trials).expect("JSON");
    assert_eq!(trials.len(), 3, "{trials:#?}");
    for trial in &trials {
        assert_eq!(trial["condition"], "Failed", "{trial:#}");
        let reason = trial["reason"].as_str().expect("a reason");
        assert!(reason.ends_with("StartFailed"), "{trial:#}");
        let message = trial["message"].as_str().expect("a message");
        assert!(message.contains("No such file or directory"), "{trial:#}");
    }
}
