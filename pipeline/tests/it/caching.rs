//! Cache hits and misses across runs, artifacts copied on a hit, and the ways to turn caching off.

use crate::{Harness, header, phase, record};
use sextant_pipeline::{RunPhase, StepPhase};

fn pipeline(step_cache: &str) -> String {
    format!(
        "{}spec:
  params: [{{name: log}}, {{name: rows, default: '3'}}]
  steps:
    - name: produce
      command: [sh, -c, 'echo produce >> \"$0\"; seq \"$1\" > data.csv; echo \"$1\" > count.txt', '{{{{params.log}}}}', '{{{{params.rows}}}}']
      outputs:
        params: [{{name: count, path: count.txt}}]
        artifacts: [{{name: data, path: data.csv}}]
    - name: consume
      command: [sh, -c, 'echo consume >> \"$0\"; wc -l < \"$1\" > lines.txt', '{{{{params.log}}}}', '{{{{steps.produce.outputs.artifacts.data}}}}']
      outputs:
        params: [{{name: lines, path: lines.txt}}]
    - name: uncached
      cache: {step_cache}
      command: [sh, -c, 'echo uncached >> \"$0\"', '{{{{params.log}}}}']
",
        header("cached")
    )
}

fn log_lines(harness: &Harness) -> Vec<String> {
    std::fs::read_to_string(harness.path().join("executions.log"))
        .unwrap_or_default()
        .lines()
        .map(str::to_owned)
        .collect()
}

#[tokio::test]
async fn identical_steps_reuse_outputs_and_changed_inputs_run_again() {
    let harness = Harness::new(4);
    let log = harness.path().join("executions.log");
    let log = log.to_str().unwrap();
    let yaml = pipeline("false");

    let (first, _) = harness.run(&yaml, "first", &[("log", log)], true).await;
    assert_eq!(first.phase, RunPhase::Succeeded, "{first:#?}");
    assert_eq!(phase(&first, "produce"), StepPhase::Succeeded);
    assert_eq!(record(&first, "consume", None).outputs.params["lines"], "3");
    assert_eq!(log_lines(&harness).len(), 3);

    let (second, _) = harness.run(&yaml, "second", &[("log", log)], true).await;
    assert_eq!(phase(&second, "produce"), StepPhase::Cached);
    assert_eq!(phase(&second, "consume"), StepPhase::Cached);
    assert_eq!(
        phase(&second, "uncached"),
        StepPhase::Succeeded,
        "cache: false must always run"
    );
    let mut lines = log_lines(&harness);
    lines.sort();
    assert_eq!(lines, vec!["consume", "produce", "uncached", "uncached"]);
    // The cached artifact was copied into the new run, and the cached parameter reused.
    let produce = record(&second, "produce", None);
    let data = &produce.outputs.artifacts["data"];
    assert!(data.starts_with(&second.run_dir), "{data:?}");
    assert_eq!(std::fs::read_to_string(data).unwrap(), "1\n2\n3\n");
    assert_eq!(produce.outputs.params["count"], "3");
    assert_eq!(produce.cache_key, record(&first, "produce", None).cache_key);

    // A different parameter value is a different key: both steps run again.
    let (third, _) = harness
        .run(&yaml, "third", &[("log", log), ("rows", "5")], true)
        .await;
    assert_eq!(phase(&third, "produce"), StepPhase::Succeeded);
    assert_eq!(phase(&third, "consume"), StepPhase::Succeeded);
    assert_eq!(record(&third, "consume", None).outputs.params["lines"], "5");

    // Caching off for the run: everything runs.
    let (fourth, _) = harness.run(&yaml, "fourth", &[("log", log)], false).await;
    assert_eq!(phase(&fourth, "produce"), StepPhase::Succeeded);
    assert_eq!(phase(&fourth, "consume"), StepPhase::Succeeded);
    assert!(record(&fourth, "produce", None).cache_key.is_none());
}

#[tokio::test]
async fn the_key_follows_input_artifact_content_not_its_path() {
    let harness = Harness::new(4);
    let log = harness.path().join("executions.log");
    let log = log.to_str().unwrap();
    let content = harness.path().join("content.txt");
    // `produce` never caches and copies whatever content.txt holds, so only the artifact's
    // content decides whether `consume` may reuse its result.
    let yaml = format!(
        "{}spec:
  params: [{{name: log}}, {{name: source}}]
  steps:
    - name: produce
      cache: false
      command: [cp, '{{{{params.source}}}}', data.txt]
      outputs: {{artifacts: [{{name: data, path: data.txt}}]}}
    - name: consume
      command: [sh, -c, 'echo consume >> \"$0\"', '{{{{params.log}}}}', '{{{{steps.produce.outputs.artifacts.data}}}}']
",
        header("by-content")
    );
    let params = [("log", log), ("source", content.to_str().unwrap())];
    std::fs::write(&content, "one").unwrap();
    let (first, _) = harness.run(&yaml, "first", &params, true).await;
    assert_eq!(phase(&first, "consume"), StepPhase::Succeeded);
    let (second, _) = harness.run(&yaml, "second", &params, true).await;
    assert_eq!(
        phase(&second, "consume"),
        StepPhase::Cached,
        "same content at another path must hit"
    );
    std::fs::write(&content, "two").unwrap();
    let (third, _) = harness.run(&yaml, "third", &params, true).await;
    assert_eq!(
        phase(&third, "consume"),
        StepPhase::Succeeded,
        "changed content must miss"
    );
    assert_eq!(log_lines(&harness), vec!["consume", "consume"]);
}
