//! Resuming a run whose runner was killed with SIGKILL: finished steps are not redone.
//!
//! The runner is this test executable itself, started again with `RUNNER_ENV` set so that
//! `runner_process_entry_point` runs the pipeline instead of returning at once.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use sextant_pipeline::{
    Executor, ExecutorConfig, FileRunStore, Pipeline, RunPhase, StepKindRegistry, StepPhase,
};
use tokio_util::sync::CancellationToken;

use crate::{Harness, header, live_processes_in_group, read_pid, record, wait_for_file};

const RUNNER_ENV: &str = "SEXTANT_PIPELINE_IT_RUNNER_ROOT";
const RUN_ID: &str = "resumable";

fn pipeline() -> String {
    format!(
        "{}spec:
  params: [{{name: dir}}]
  steps:
    - name: first
      command: [sh, -c, 'echo run >> \"$0/first.count\"; echo ready > out.txt', '{{{{params.dir}}}}']
      outputs: {{params: [{{name: out, path: out.txt}}]}}
    - name: second
      command: [sh, -c, 'echo run >> \"$0/second.count\"; if [ $(wc -l < \"$0/second.count\") -lt 2 ]; then echo $$ > \"$0/second.pid\"; sleep 60; fi', '{{{{params.dir}}}}', '{{{{steps.first.outputs.params.out}}}}']
    - name: third
      dependsOn: [second]
      command: [sh, -c, 'echo run >> \"$0/third.count\"', '{{{{params.dir}}}}']
",
        header("resumable")
    )
}

fn count(directory: &Path, step: &str) -> usize {
    std::fs::read_to_string(directory.join(format!("{step}.count")))
        .map(|text| text.lines().count())
        .unwrap_or(0)
}

/// Not a test of its own: the body of the runner process that `resume_after_sigkill` kills.
#[tokio::test]
async fn runner_process_entry_point() {
    let Ok(root) = std::env::var(RUNNER_ENV) else {
        return;
    };
    let root = std::path::PathBuf::from(root);
    let executor = Executor::new(
        Arc::new(FileRunStore::new(&root)),
        StepKindRegistry::default(),
        ExecutorConfig::default(),
    );
    let pipeline = Pipeline::from_yaml(&pipeline()).unwrap();
    let request = sextant_pipeline::RunRequest {
        run_id: RUN_ID.to_owned(),
        run_dir: root.join(RUN_ID),
        params: [("dir".to_owned(), root.to_string_lossy().into_owned())].into(),
        cache: false,
    };
    executor
        .run(&pipeline, request, None, CancellationToken::new())
        .await
        .unwrap();
}

#[tokio::test]
async fn resume_after_sigkill_keeps_finished_steps() {
    let harness = Harness::new(4);
    let root = harness.path().to_owned();
    let mut runner = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "resume::runner_process_entry_point",
            "--exact",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(RUNNER_ENV, &root)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let started = wait_for_file(&root.join("second.pid"), Duration::from_secs(60)).await;
    runner.kill().unwrap();
    runner.wait().unwrap();
    assert!(started, "the runner never reached the second step");
    // The runner died without stopping its step: its process group is still alive, and the
    // resumed run must end it before running the step again.
    let stale_group = read_pid(&root.join("second.pid"));
    assert!(!live_processes_in_group(stale_group).is_empty());
    assert_eq!(count(&root, "first"), 1);
    assert_eq!(count(&root, "second"), 1);

    let stored = harness
        .executor
        .store()
        .load_run(RUN_ID)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        stored.run.phase,
        RunPhase::Running,
        "a killed runner leaves the run marked running"
    );

    let report = harness
        .executor
        .resume(RUN_ID, None, CancellationToken::new())
        .await
        .unwrap();
    assert_eq!(report.phase, RunPhase::Succeeded, "{report:#?}");
    assert_eq!(count(&root, "first"), 1, "a finished step ran again");
    assert_eq!(count(&root, "second"), 2);
    assert_eq!(count(&root, "third"), 1);
    assert_eq!(
        record(&report, "first", None).outputs.params["out"],
        "ready"
    );
    assert_eq!(live_processes_in_group(stale_group), Vec::<i32>::new());
    let stored = harness
        .executor
        .store()
        .load_run(RUN_ID)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(stored.run.phase, RunPhase::Succeeded);
    assert!(
        stored
            .steps
            .iter()
            .all(|step| step.phase == StepPhase::Succeeded)
    );
}
