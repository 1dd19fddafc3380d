//! Failure propagation, retries with backoff, timeouts that kill the whole process group.

use std::time::{Duration, Instant};

use crate::{Harness, header, is_live, live_processes_in_group, phase, read_pid, record, work_dir};
use sextant_pipeline::{RunEvent, RunPhase, StepPhase};

#[tokio::test]
async fn a_failed_step_skips_its_dependents_and_fails_the_run() {
    let harness = Harness::new(4);
    let yaml = format!(
        "{}spec:
  steps:
    - {{name: broken, command: [sh, -c, 'echo oops >&2; exit 3']}}
    - {{name: after, command: ['true'], dependsOn: [broken]}}
    - {{name: after-after, command: ['true'], dependsOn: [after]}}
    - {{name: independent, command: ['true']}}
",
        header("failing")
    );
    let (report, _) = harness.run(&yaml, "r1", &[], false).await;
    assert_eq!(report.phase, RunPhase::Failed);
    let broken = record(&report, "broken", None);
    assert_eq!(broken.phase, StepPhase::Failed);
    let message = broken.message.as_deref().unwrap();
    assert!(
        message.contains("exited with status 3") && message.contains("oops"),
        "{message}"
    );
    assert!(
        report
            .message
            .as_deref()
            .unwrap()
            .contains("step `broken` failed")
    );
    assert_eq!(phase(&report, "after"), StepPhase::Skipped);
    assert!(
        record(&report, "after", None)
            .message
            .as_deref()
            .unwrap()
            .contains("step `broken` failed")
    );
    assert_eq!(phase(&report, "after-after"), StepPhase::Skipped);
    assert!(
        record(&report, "after-after", None)
            .message
            .as_deref()
            .unwrap()
            .contains("step `after` was skipped")
    );
    assert_eq!(phase(&report, "independent"), StepPhase::Succeeded);
}

#[tokio::test]
async fn retries_back_off_exponentially_until_success_or_the_limit() {
    let harness = Harness::new(4);
    let yaml = format!(
        "{}spec:
  steps:
    - name: flaky
      command: [sh, -c, 'echo x >> ../flaky.attempts; [ $(wc -l < ../flaky.attempts) -ge 3 ]']
      retry: {{limit: 3, backoffSeconds: 0.2}}
    - name: hopeless
      command: ['false']
      retry: {{limit: 1, backoffSeconds: 0.05}}
",
        header("retrying")
    );
    let started = Instant::now();
    let (report, events) = harness.run(&yaml, "r1", &[], false).await;
    let elapsed = started.elapsed();
    let flaky = record(&report, "flaky", None);
    assert_eq!(flaky.phase, StepPhase::Succeeded);
    assert_eq!(flaky.attempt, 3);
    let delays: Vec<Duration> = events
        .iter()
        .filter_map(|event| match event {
            RunEvent::StepRetrying { step, delay, .. } if step == "flaky" => Some(*delay),
            _ => None,
        })
        .collect();
    assert_eq!(
        delays,
        vec![Duration::from_millis(200), Duration::from_millis(400)]
    );
    assert!(elapsed >= Duration::from_millis(600), "{elapsed:?}");
    let hopeless = record(&report, "hopeless", None);
    assert_eq!(hopeless.phase, StepPhase::Failed);
    assert_eq!(hopeless.attempt, 2);
    assert!(
        hopeless
            .message
            .as_deref()
            .unwrap()
            .ends_with("(after 2 attempts)")
    );
    assert_eq!(report.phase, RunPhase::Failed);
}

#[tokio::test]
async fn a_timeout_kills_the_step_and_everything_it_started() {
    let harness = Harness::new(4);
    let yaml = format!(
        "{}spec:
  steps:
    - name: slow
      command: [sh, -c, 'echo $$ > leader.pid; sleep 30 & echo $! > child.pid; wait']
      timeoutSeconds: 0.5
",
        header("timing-out")
    );
    let started = Instant::now();
    let (report, _) = harness.run(&yaml, "r1", &[], false).await;
    assert!(started.elapsed() < Duration::from_secs(10));
    let slow = record(&report, "slow", None);
    assert_eq!(slow.phase, StepPhase::Failed);
    assert!(
        slow.message.as_deref().unwrap().contains("timed out"),
        "{slow:?}"
    );
    let leader = read_pid(&work_dir(&report, "slow").join("leader.pid"));
    let child = read_pid(&work_dir(&report, "slow").join("child.pid"));
    // The leader started the group, so the group id is its pid.
    assert_eq!(live_processes_in_group(leader), Vec::<i32>::new());
    assert!(
        !is_live(child),
        "the step's background child {child} survived the timeout"
    );
}

#[tokio::test]
async fn processes_left_behind_by_a_finished_step_are_killed() {
    let harness = Harness::new(4);
    let yaml = format!(
        "{}spec:
  steps:
    - name: daemonizing
      command: [sh, -c, 'echo $$ > leader.pid; sleep 30 > /dev/null 2>&1 & exit 0']
",
        header("leaving")
    );
    let (report, _) = harness.run(&yaml, "r1", &[], false).await;
    assert_eq!(phase(&report, "daemonizing"), StepPhase::Succeeded);
    let leader = read_pid(&work_dir(&report, "daemonizing").join("leader.pid"));
    assert_eq!(live_processes_in_group(leader), Vec::<i32>::new());
}
