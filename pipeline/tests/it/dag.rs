//! DAG order and parallelism, from timestamps the steps write themselves.

use crate::{Harness, header, phase, work_dir};
use sextant_pipeline::{RunPhase, StepPhase};

/// A step that records its start and end time around a sleep.
fn timed_step(name: &str, depends_on: &[&str], seconds: f64) -> String {
    format!(
        "    - name: {name}\n      dependsOn: [{}]\n      command: [sh, -c, 'date +%s.%N > start; sleep {seconds}; date +%s.%N > end']\n",
        depends_on.join(", ")
    )
}

fn times(report: &sextant_pipeline::RunReport, step: &str) -> (f64, f64) {
    let read = |file: &str| -> f64 {
        std::fs::read_to_string(work_dir(report, step).join(file))
            .unwrap()
            .trim()
            .parse()
            .unwrap()
    };
    (read("start"), read("end"))
}

#[tokio::test]
async fn steps_wait_for_dependencies_and_independent_ones_overlap() {
    let harness = Harness::new(4);
    let yaml = format!(
        "{}spec:\n  steps:\n{}{}{}{}{}",
        header("diamond"),
        timed_step("a", &[], 0.2),
        timed_step("b", &["a"], 0.6),
        timed_step("c", &["a"], 0.6),
        timed_step("d", &["a"], 0.6),
        timed_step("e", &["b", "c", "d"], 0.1),
    );
    let (report, _) = harness.run(&yaml, "r1", &[], false).await;
    assert_eq!(report.phase, RunPhase::Succeeded, "{report:#?}");
    let (a_start, a_end) = times(&report, "a");
    assert!(a_start < a_end);
    let middle: Vec<(f64, f64)> = ["b", "c", "d"]
        .iter()
        .map(|step| times(&report, step))
        .collect();
    for (start, _) in &middle {
        assert!(*start >= a_end, "a middle step started before a ended");
    }
    let latest_start = middle
        .iter()
        .map(|(start, _)| *start)
        .fold(f64::MIN, f64::max);
    let earliest_end = middle.iter().map(|(_, end)| *end).fold(f64::MAX, f64::min);
    assert!(
        latest_start < earliest_end,
        "b, c and d did not run at the same time: {middle:?}"
    );
    let (e_start, _) = times(&report, "e");
    let latest_end = middle.iter().map(|(_, end)| *end).fold(f64::MIN, f64::max);
    assert!(
        e_start >= latest_end,
        "e started before all of b, c, d ended"
    );
    for step in ["a", "b", "c", "d", "e"] {
        assert_eq!(phase(&report, step), StepPhase::Succeeded);
        assert!(work_dir(&report, step).join("stdout.log").exists());
        assert!(work_dir(&report, step).join("stderr.log").exists());
    }
}

#[tokio::test]
async fn the_parallelism_limit_caps_concurrent_steps() {
    let harness = Harness::new(2);
    let yaml = format!(
        "{}spec:\n  steps:\n{}{}{}{}",
        header("wide"),
        timed_step("s1", &[], 0.4),
        timed_step("s2", &[], 0.4),
        timed_step("s3", &[], 0.4),
        timed_step("s4", &[], 0.4),
    );
    let (report, _) = harness.run(&yaml, "r1", &[], false).await;
    assert_eq!(report.phase, RunPhase::Succeeded);
    let intervals: Vec<(f64, f64)> = ["s1", "s2", "s3", "s4"]
        .iter()
        .map(|step| times(&report, step))
        .collect();
    // The most intervals covering any one start instant.
    let most_at_once = intervals
        .iter()
        .map(|(instant, _)| {
            intervals
                .iter()
                .filter(|(start, end)| start <= instant && instant < end)
                .count()
        })
        .max()
        .unwrap();
    assert_eq!(most_at_once, 2, "{intervals:?}");
}
