//! Cancellation (Ctrl-C): every running step's process group is stopped, nothing is left behind.

use std::time::{Duration, Instant};

use crate::{Harness, header, live_processes_in_group, read_pid, wait_for_file};
use sextant_pipeline::{Pipeline, RunPhase, StepPhase};
use tokio_util::sync::CancellationToken;

#[tokio::test]
async fn cancelling_stops_running_steps_and_starts_nothing_new() {
    let harness = Harness::new(4);
    let yaml = format!(
        "{}spec:
  steps:
    - name: polite
      command: [sh, -c, 'echo $$ > pid; sleep 60 & wait']
    - name: stubborn
      command: [sh, -c, 'trap \"\" TERM; sleep 60 & echo $$ > pid; while true; do sleep 0.05; done']
    - name: later
      dependsOn: [polite]
      command: ['true']
",
        header("cancelled")
    );
    let pipeline = Pipeline::from_yaml(&yaml).unwrap();
    let token = CancellationToken::new();
    let run = {
        let token = token.clone();
        let executor = harness.executor.clone();
        let request = harness.request("r1", &[], false);
        tokio::spawn(async move { executor.run(&pipeline, request, None, token).await })
    };
    let run_dir = harness.path().join("r1");
    assert!(wait_for_file(&run_dir.join("polite/pid"), Duration::from_secs(20)).await);
    assert!(wait_for_file(&run_dir.join("stubborn/pid"), Duration::from_secs(20)).await);
    let groups = [
        read_pid(&run_dir.join("polite/pid")),
        read_pid(&run_dir.join("stubborn/pid")),
    ];
    let cancelled_at = Instant::now();
    token.cancel();
    let report = tokio::time::timeout(Duration::from_secs(20), run)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    // The stubborn step ignores SIGTERM, so it ends only by SIGKILL after the 0.5 s grace.
    assert!(cancelled_at.elapsed() >= Duration::from_millis(400));
    assert!(cancelled_at.elapsed() < Duration::from_secs(10));
    assert_eq!(report.phase, RunPhase::Cancelled);
    for group in groups {
        assert_eq!(
            live_processes_in_group(group),
            Vec::<i32>::new(),
            "group {group} survived"
        );
    }
    assert!(
        report
            .steps
            .iter()
            .all(|record| record.phase == StepPhase::Cancelled),
        "{:#?}",
        report.steps
    );
    assert!(
        !run_dir.join("later").exists(),
        "a step started after cancellation"
    );
}
