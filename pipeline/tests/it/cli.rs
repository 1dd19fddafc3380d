//! The `sextant pipeline` entry points the binary calls.

use std::path::Path;

use clap::Parser;
use sextant_pipeline::cli::{ExitStatus, PipelineCommand, execute};

use crate::header;

#[derive(clap::Parser)]
struct Cli {
    #[command(subcommand)]
    command: PipelineCommand,
}

async fn run_cli(
    arguments: &[&str],
) -> (Result<ExitStatus, sextant_pipeline::cli::CliError>, String) {
    let cli =
        Cli::try_parse_from(std::iter::once("pipeline").chain(arguments.iter().copied())).unwrap();
    let mut output = Vec::new();
    let result = execute(&cli.command, std::future::pending(), &mut output).await;
    (result, String::from_utf8(output).unwrap())
}

fn write_spec(directory: &Path) -> String {
    let path = directory.join("demo.yaml");
    std::fs::write(
        &path,
        format!(
            "{}spec:
  params: [{{name: greeting, default: hello}}]
  steps:
    - name: say
      image: alpine:3
      command: [sh, -c, 'printf %s \"$1\" > said.txt', sh, '{{{{params.greeting}}}}']
      outputs: {{params: [{{name: said, path: said.txt}}]}}
    - name: fan
      image: alpine:3
      withItems: [a, b]
      command: [echo, '{{{{item}}}}', '{{{{steps.say.outputs.params.said}}}}']
",
            header("demo")
        ),
    )
    .unwrap();
    path.to_str().unwrap().to_owned()
}

#[tokio::test]
async fn run_prints_progress_then_get_shows_the_stored_run() {
    let directory = tempfile::tempdir().unwrap();
    let spec = write_spec(directory.path());
    let runs = directory.path().join("runs");
    let runs = runs.to_str().unwrap();
    let (result, output) = run_cli(&[
        "run",
        &spec,
        "--param",
        "greeting=hi there",
        "--runs-dir",
        runs,
        "--run-id",
        "demo-1",
    ])
    .await;
    assert_eq!(result.unwrap(), ExitStatus::Success, "{output}");
    assert!(output.contains("run demo-1 started in"), "{output}");
    assert!(output.contains("step say started"), "{output}");
    assert!(output.contains("step fan[1] succeeded"), "{output}");
    assert!(
        output.trim_end().ends_with("run demo-1 succeeded"),
        "{output}"
    );
    let said = std::fs::read_to_string(directory.path().join("runs/demo-1/say/said.txt")).unwrap();
    assert_eq!(said, "hi there");

    let (result, table) = run_cli(&["get", "demo-1", "--runs-dir", runs]).await;
    assert_eq!(result.unwrap(), ExitStatus::Success);
    assert!(
        table.starts_with("run demo-1 (pipeline demo): Succeeded"),
        "{table}"
    );
    assert!(
        table.contains("fan[0]") && table.contains("Succeeded"),
        "{table}"
    );

    let (result, json) = run_cli(&["get", "demo-1", "--runs-dir", runs, "--json"]).await;
    assert_eq!(result.unwrap(), ExitStatus::Success);
    let stored: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(stored["run"]["params"]["greeting"], "hi there");
    assert_eq!(stored["steps"].as_array().unwrap().len(), 3);

    let (result, _) = run_cli(&["get", "nope", "--runs-dir", runs]).await;
    let error = result.unwrap_err();
    assert!(
        error.to_string().starts_with("no run `nope` in sqlite://"),
        "{error}"
    );
    assert_eq!(error.exit_status(), ExitStatus::InvalidInput);
}

#[tokio::test]
async fn a_failing_run_exits_one_and_a_bad_spec_is_an_error() {
    let directory = tempfile::tempdir().unwrap();
    let failing = directory.path().join("failing.yaml");
    std::fs::write(
        &failing,
        format!(
            "{}spec:\n  steps: [{{name: s, command: ['false']}}]\n",
            header("failing")
        ),
    )
    .unwrap();
    let runs = directory.path().join("runs");
    let (result, output) = run_cli(&[
        "run",
        failing.to_str().unwrap(),
        "--runs-dir",
        runs.to_str().unwrap(),
    ])
    .await;
    assert_eq!(result.unwrap(), ExitStatus::Failure, "{output}");
    assert!(
        output.contains("step s failed: `false` exited with status 1"),
        "{output}"
    );

    let broken = directory.path().join("broken.yaml");
    std::fs::write(
        &broken,
        format!("{}spec:\n  steps: [{{name: s}}]\n", header("broken")),
    )
    .unwrap();
    let (result, _) = run_cli(&[
        "run",
        broken.to_str().unwrap(),
        "--runs-dir",
        runs.to_str().unwrap(),
    ])
    .await;
    let message = result.unwrap_err().to_string();
    assert!(
        message.contains("broken.yaml: invalid pipeline spec:"),
        "{message}"
    );
    assert!(
        message.contains("spec.steps[0].command: missing command"),
        "{message}"
    );
}

#[tokio::test]
async fn compile_writes_argo_yaml_to_stdout_or_a_file() {
    let directory = tempfile::tempdir().unwrap();
    let spec = write_spec(directory.path());
    let (result, yaml) = run_cli(&["compile", &spec, "--target", "argo"]).await;
    assert_eq!(result.unwrap(), ExitStatus::Success);
    let workflow: serde_json::Value = serde_yaml::from_str(&yaml).unwrap();
    assert_eq!(workflow["apiVersion"], "argoproj.io/v1alpha1");
    let output = directory.path().join("workflow.yaml");
    let (result, printed) =
        run_cli(&["compile", &spec, "--output", output.to_str().unwrap()]).await;
    assert_eq!(result.unwrap(), ExitStatus::Success);
    assert!(printed.is_empty());
    assert_eq!(std::fs::read_to_string(&output).unwrap(), yaml);
}
