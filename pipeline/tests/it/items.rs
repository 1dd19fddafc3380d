//! Fan-out and fan-in, `when`, artifact passing, and argv values that a shell would mangle.

use crate::{Harness, header, phase, record, work_dir};
use sextant_pipeline::{RunPhase, StepPhase};

#[tokio::test]
async fn fan_out_runs_each_item_in_its_own_directory_and_fan_in_collects_a_json_list() {
    let harness = Harness::new(4);
    let yaml = format!(
        "{}spec:
  steps:
    - name: square
      withItems: [{{n: '1', tag: a}}, {{n: '2', tag: b}}, {{n: '3', tag: c}}]
      command: [sh, -c, 'echo $(($1 * $1)) > value.txt; printf %s \"$2\" > tag.txt', sh, '{{{{item.n}}}}', '{{{{item}}}}']
      outputs:
        params: [{{name: value, path: value.txt}}]
        artifacts: [{{name: tag, path: tag.txt}}]
    - name: gather
      command: [sh, -c, 'printf %s \"$1\" > all.txt; printf %s \"$2\" > paths.txt', sh, '{{{{steps.square.outputs.params.value}}}}', '{{{{steps.square.outputs.artifacts.tag}}}}']
      outputs:
        params: [{{name: all, path: all.txt}}, {{name: paths, path: paths.txt}}]
    - name: letters
      withItems: [x, y]
      command: [sh, -c, 'printf %s \"$1\" > letter.txt', sh, '{{{{item}}}}']
      outputs: {{params: [{{name: letter, path: letter.txt}}]}}
",
        header("fan")
    );
    let (report, _) = harness.run(&yaml, "r1", &[], false).await;
    assert_eq!(report.phase, RunPhase::Succeeded, "{report:#?}");
    for (index, expected) in ["1", "4", "9"].iter().enumerate() {
        let instance = record(&report, "square", Some(index));
        assert_eq!(instance.phase, StepPhase::Succeeded);
        assert_eq!(&instance.outputs.params["value"], expected);
        assert!(
            work_dir(&report, "square")
                .join(index.to_string())
                .join("value.txt")
                .exists()
        );
    }
    let gather = record(&report, "gather", None);
    assert_eq!(gather.outputs.params["all"], r#"["1","4","9"]"#);
    let paths: Vec<String> = serde_json::from_str(&gather.outputs.params["paths"]).unwrap();
    assert_eq!(paths.len(), 3);
    let tags: Vec<String> = paths
        .iter()
        .map(|path| std::fs::read_to_string(path).unwrap())
        .collect();
    assert_eq!(tags[0], r#"{"n":"1","tag":"a"}"#);
    assert_eq!(
        record(&report, "letters", Some(1)).outputs.params["letter"],
        "y"
    );
}

#[tokio::test]
async fn conditions_skip_steps_and_their_dependents_without_failing_the_run() {
    let harness = Harness::new(4);
    let yaml = format!(
        "{}spec:
  params: [{{name: mode, default: fast}}]
  steps:
    - name: count
      command: [sh, -c, 'echo 5 > count.txt']
      outputs: {{params: [{{name: n, path: count.txt}}]}}
    - name: enough
      when: '{{{{steps.count.outputs.params.n}}}} > 3 && {{{{params.mode}}}} == fast'
      command: ['true']
    - name: too-many
      when: '{{{{steps.count.outputs.params.n}}}} > 10 || !({{{{params.mode}}}} == fast)'
      command: ['true']
    - name: after-too-many
      dependsOn: [too-many]
      command: ['true']
    - name: per-item
      withItems: [a, b, c]
      when: '{{{{item}}}} != b'
      command: ['true']
    - name: bad-condition
      when: '{{{{params.mode}}}}'
      command: ['true']
",
        header("conditions")
    );
    let (report, _) = harness.run(&yaml, "r1", &[], false).await;
    assert_eq!(phase(&report, "enough"), StepPhase::Succeeded);
    assert_eq!(phase(&report, "too-many"), StepPhase::Skipped);
    assert!(
        record(&report, "too-many", None)
            .message
            .as_deref()
            .unwrap()
            .contains("is false")
    );
    assert_eq!(phase(&report, "after-too-many"), StepPhase::Skipped);
    assert_eq!(
        record(&report, "per-item", Some(0)).phase,
        StepPhase::Succeeded
    );
    assert_eq!(
        record(&report, "per-item", Some(1)).phase,
        StepPhase::Skipped
    );
    assert_eq!(
        record(&report, "per-item", Some(2)).phase,
        StepPhase::Succeeded
    );
    // A lone operand must be a boolean: `fast` is not, so that step fails and so does the run.
    assert_eq!(phase(&report, "bad-condition"), StepPhase::Failed);
    assert!(
        record(&report, "bad-condition", None)
            .message
            .as_deref()
            .unwrap()
            .contains("neither true nor false")
    );
    assert_eq!(report.phase, RunPhase::Failed);
}

#[tokio::test]
async fn artifacts_arrive_as_absolute_paths_to_files_and_directories() {
    let harness = Harness::new(4);
    let yaml = format!(
        "{}spec:
  steps:
    - name: write
      command: [sh, -c, 'mkdir -p model/sub; echo weights > model/sub/w.bin; echo hello > greeting.txt']
      outputs:
        artifacts: [{{name: model, path: model}}, {{name: greeting, path: greeting.txt}}]
    - name: read
      command: [sh, -c, 'cat \"$1\" \"$2/sub/w.bin\" > seen.txt; printf %s \"$1\" > path.txt', sh, '{{{{steps.write.outputs.artifacts.greeting}}}}', '{{{{steps.write.outputs.artifacts.model}}}}']
      outputs: {{params: [{{name: seen, path: seen.txt}}, {{name: path, path: path.txt}}]}}
",
        header("artifacts")
    );
    let (report, _) = harness.run(&yaml, "r1", &[], false).await;
    let read = record(&report, "read", None);
    assert_eq!(read.phase, StepPhase::Succeeded, "{report:#?}");
    assert_eq!(read.outputs.params["seen"], "hello\nweights");
    let path = std::path::PathBuf::from(&read.outputs.params["path"]);
    assert!(path.is_absolute());
    assert_eq!(path, work_dir(&report, "write").join("greeting.txt"));
}

#[tokio::test]
async fn parameter_values_reach_argv_intact_without_a_shell() {
    let harness = Harness::new(4);
    let marker = harness.path().join("pwned");
    let value = format!(
        "two  spaces \"double\" 'single' ; touch {0} && $(touch {0}) `touch {0}` $HOME\nsecond line\n",
        marker.display()
    );
    let yaml = format!(
        "{}spec:
  params: [{{name: value}}]
  steps:
    - name: echo
      command: [printf, '%s', '{{{{params.value}}}}']
      env: {{VALUE: '{{{{params.value}}}}'}}
    - name: env
      command: [sh, -c, 'printf %s \"$VALUE\" > env.txt']
      env: {{VALUE: '[{{{{params.value}}}}]'}}
",
        header("quoting")
    );
    let (report, _) = harness.run(&yaml, "r1", &[("value", &value)], false).await;
    assert_eq!(report.phase, RunPhase::Succeeded, "{report:#?}");
    let printed = std::fs::read_to_string(work_dir(&report, "echo").join("stdout.log")).unwrap();
    assert_eq!(printed, value);
    let from_env = std::fs::read_to_string(work_dir(&report, "env").join("env.txt")).unwrap();
    assert_eq!(from_env, format!("[{value}]"));
    assert!(!marker.exists(), "a command substitution ran");
}
