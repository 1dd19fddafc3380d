//! Bad input gives clear errors, never a panic.

use crate::{Harness, header, record};
use sextant_pipeline::{ExecutorError, Pipeline, RunPhase, SpecError, StepPhase};
use tokio_util::sync::CancellationToken;

fn invalid(yaml: &str) -> String {
    match Pipeline::from_yaml(yaml) {
        Err(error @ SpecError::Invalid(_)) => error.to_string(),
        other => panic!("expected an invalid spec, got {other:?}"),
    }
}

#[test]
fn malformed_yaml_names_the_position() {
    let error = Pipeline::from_yaml("spec:\n  steps: [\n    - name: a\n").unwrap_err();
    let message = error.to_string();
    assert!(message.starts_with("malformed pipeline yaml:"), "{message}");
    assert!(message.contains("line"), "{message}");
}

#[test]
fn a_missing_command_and_other_problems_are_listed_together() {
    let message = invalid(&format!(
        "{}spec:
  steps:
    - name: ok
      command: [echo, hi]
    - name: no-command
      outputs: {{params: [{{name: p, path: p.txt}}]}}
    - name: shell-string
      command: 'echo hi; rm -rf /'
    - name: bad-retry
      command: ['true']
      retry: {{limit: -1}}
      timeoutSeconds: 0
",
        header("bad")
    ));
    for expected in [
        "spec.steps[1].command: missing command",
        "spec.steps[2].command: expected a list of argv items (no shell), found string",
        "spec.steps[3].retry.limit: expected a whole number",
        "spec.steps[3].timeoutSeconds: must be greater than zero",
    ] {
        assert!(
            message.contains(expected),
            "missing `{expected}` in:\n{message}"
        );
    }
}

#[test]
fn cycles_and_self_references_are_named() {
    let message = invalid(&format!(
        "{}spec:
  steps:
    - name: loop
      command: [echo, '{{{{steps.loop.outputs.params.p}}}}']
      outputs: {{params: [{{name: p, path: p.txt}}]}}
",
        header("cyclic")
    ));
    assert!(
        message.contains("dependency cycle: loop -> loop"),
        "{message}"
    );
}

#[tokio::test]
async fn an_output_the_step_never_wrote_fails_it_naming_the_file() {
    let harness = Harness::new(2);
    let yaml = format!(
        "{}spec:
  steps:
    - name: forgetful
      command: ['true']
      outputs: {{params: [{{name: count, path: out/count.txt}}]}}
    - name: also-forgetful
      command: ['true']
      outputs: {{artifacts: [{{name: model, path: model.bin}}]}}
",
        header("forgetful")
    );
    let (report, _) = harness.run(&yaml, "r1", &[], false).await;
    assert_eq!(report.phase, RunPhase::Failed);
    let forgetful = record(&report, "forgetful", None);
    assert_eq!(forgetful.phase, StepPhase::Failed);
    let message = forgetful.message.as_deref().unwrap();
    let expected_path = report.run_dir.join("forgetful/out/count.txt");
    assert!(
        message.contains("did not write its output parameter `count`"),
        "{message}"
    );
    assert!(
        message.contains(&expected_path.display().to_string()),
        "{message}"
    );
    let message = record(&report, "also-forgetful", None)
        .message
        .clone()
        .unwrap();
    assert!(
        message.contains("output artifact `model`") && message.contains("model.bin"),
        "{message}"
    );
}

#[tokio::test]
async fn a_program_that_does_not_exist_is_a_step_failure() {
    let harness = Harness::new(2);
    let yaml = format!(
        "{}spec:\n  steps: [{{name: ghost, command: [no-such-program-xyz, --flag]}}]\n",
        header("ghost")
    );
    let (report, _) = harness.run(&yaml, "r1", &[], false).await;
    let ghost = record(&report, "ghost", None);
    assert_eq!(ghost.phase, StepPhase::Failed);
    assert!(
        ghost
            .message
            .as_deref()
            .unwrap()
            .starts_with("cannot start `no-such-program-xyz`"),
        "{ghost:?}"
    );
}

#[tokio::test]
async fn an_unusable_run_directory_is_an_error_before_anything_runs() {
    let harness = Harness::new(2);
    let blocker = harness.path().join("a-file");
    std::fs::write(&blocker, "not a directory").unwrap();
    let pipeline = Pipeline::from_yaml(&format!(
        "{}spec:\n  steps: [{{name: s, command: ['true']}}]\n",
        header("p")
    ))
    .unwrap();
    let mut request = harness.request("r1", &[], false);
    request.run_dir = blocker.join("run");
    let error = harness
        .executor
        .run(&pipeline, request, None, CancellationToken::new())
        .await
        .unwrap_err();
    assert!(
        matches!(error, ExecutorError::RunDirectory { .. }),
        "{error:?}"
    );
    let message = error.to_string();
    assert!(
        message.contains("cannot use the run directory") && message.contains("a-file/run"),
        "{message}"
    );
}

#[tokio::test]
async fn missing_and_unknown_parameters_and_reused_run_ids_are_errors() {
    let harness = Harness::new(2);
    let pipeline = Pipeline::from_yaml(&format!(
        "{}spec:\n  params: [{{name: needed}}]\n  steps: [{{name: s, command: ['true']}}]\n",
        header("p")
    ))
    .unwrap();
    let error = harness
        .executor
        .run(
            &pipeline,
            harness.request("r1", &[], false),
            None,
            CancellationToken::new(),
        )
        .await
        .unwrap_err();
    assert_eq!(
        error.to_string(),
        "parameter `needed` has no default and was not given a value"
    );
    let error = harness
        .executor
        .run(
            &pipeline,
            harness.request("r1", &[("needed", "1"), ("other", "2")], false),
            None,
            CancellationToken::new(),
        )
        .await
        .unwrap_err();
    assert_eq!(
        error.to_string(),
        "unknown parameter `other` (not in spec.params)"
    );
    harness
        .executor
        .run(
            &pipeline,
            harness.request("r1", &[("needed", "1")], false),
            None,
            CancellationToken::new(),
        )
        .await
        .unwrap();
    let error = harness
        .executor
        .run(
            &pipeline,
            harness.request("r1", &[("needed", "1")], false),
            None,
            CancellationToken::new(),
        )
        .await
        .unwrap_err();
    assert!(matches!(error, ExecutorError::RunExists(_)), "{error:?}");
}

#[tokio::test]
async fn run_ids_that_would_leave_the_runs_directory_are_refused() {
    let harness = Harness::new(2);
    let pipeline = Pipeline::from_yaml(&format!(
        "{}spec:\n  steps: [{{name: s, command: ['true']}}]\n",
        header("p")
    ))
    .unwrap();
    for run_id in ["../../escape", "a/b", "..", "", "/tmp/abs"] {
        let request = harness.request(run_id, &[], false);
        let run_dir = request.run_dir.clone();
        let error = harness
            .executor
            .run(&pipeline, request, None, CancellationToken::new())
            .await
            .unwrap_err();
        assert!(
            matches!(error, ExecutorError::InvalidRunId(_)),
            "{run_id}: {error:?}"
        );
        assert!(
            error.to_string().contains("letters, digits, `-` or `_`"),
            "{error}"
        );
        if !run_id.is_empty() && run_id != ".." && run_id != "/tmp/abs" {
            assert!(!run_dir.exists(), "{run_id}: {}", run_dir.display());
        }
    }
}

#[tokio::test]
async fn outputs_that_are_symbolic_links_leaving_the_step_directory_fail_the_step() {
    let outside = tempfile::tempdir().unwrap();
    let secret = outside.path().join("secret.txt");
    std::fs::write(&secret, "not the step's").unwrap();
    let harness = Harness::new(2);
    let yaml = format!(
        "{}spec:
  steps:
    - name: param-link
      command: [ln, -s, '{secret}', value.txt]
      outputs: {{params: [{{name: value, path: value.txt}}]}}
    - name: nested-link
      command: [sh, -c, 'mkdir model && echo w > model/weights && ln -s {secret} model/extra']
      outputs: {{artifacts: [{{name: model, path: model}}]}}
    - name: inner-link
      command: [sh, -c, 'echo 7 > real.txt && ln -s real.txt value.txt']
      outputs: {{params: [{{name: value, path: value.txt}}]}}
",
        header("links"),
        secret = secret.display()
    );
    let (report, _) = harness.run(&yaml, "r1", &[], true).await;
    for step in ["param-link", "nested-link"] {
        let record = record(&report, step, None);
        assert_eq!(record.phase, StepPhase::Failed, "{record:?}");
        let message = record.message.as_deref().unwrap();
        assert!(
            message.contains("leaves the step's directory") && message.contains("secret.txt"),
            "{message}"
        );
    }
    let inner = record(&report, "inner-link", None);
    assert_eq!(inner.phase, StepPhase::Succeeded, "{inner:?}");
    assert_eq!(inner.outputs.params["value"], "7");
}
