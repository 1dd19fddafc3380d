//! `sextant run` end to end: real processes as trials, a real SQLite store, Katib's status.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::support::{Scratch, Server, explain, katib_python};

/// An experiment running `command` (a YAML flow list) for each trial.
fn experiment(name: &str, body: &str, command: &str) -> String {
    format!(
        r#"apiVersion: kubeflow.org/v1beta1
kind: Experiment
metadata:
  name: {name}
spec:
{body}
  trialTemplate:
    primaryContainerName: training-container
    trialParameters:
      - name: x
        reference: x
    trialSpec:
      apiVersion: sextant.dev/v1beta1
      kind: Process
      spec:
        command: {command}
"#
    )
}

fn reason(experiment: &Value) -> (String, String) {
    let conditions = experiment["status"]["conditions"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let last = conditions
        .iter()
        .rev()
        .find(|condition| condition["status"] == "True")
        .cloned()
        .unwrap_or(Value::Null);
    (
        last["type"].as_str().unwrap_or_default().to_string(),
        last["reason"].as_str().unwrap_or_default().to_string(),
    )
}

#[test]
fn every_branin_example_runs_to_succeeded() {
    let examples = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/branin");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&examples)
        .expect("examples/branin")
        .map(|entry| entry.expect("entry").path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "yaml"))
        .collect();
    files.sort();
    assert!(files.len() >= 3, "{files:?}");
    let script = std::fs::read_to_string(examples.join("branin.py")).expect("branin.py");
    for file in files {
        // Each example runs from a copy, so trial directories never land in the source tree.
        let scratch = Scratch::new();
        scratch.write("branin.py", &script);
        let name = file
            .file_name()
            .expect("file name")
            .to_string_lossy()
            .to_string();
        let copy = scratch.write(&name, &std::fs::read_to_string(&file).expect("example"));
        let (output, experiment) = scratch.run(&copy);
        assert_eq!(
            output.status.code(),
            Some(0),
            "{name}: {}",
            explain(&output)
        );
        let (condition, _) = reason(&experiment);
        assert_eq!(condition, "Succeeded", "{name}");
        let best: f64 =
            experiment["status"]["currentOptimalTrial"]["observation"]["metrics"][0]["latest"]
                .as_str()
                .and_then(|value| value.parse().ok())
                .expect("an optimal trial with a loss");
        assert!(best < 60.0, "{name}: best loss {best}");
    }
}

#[test]
fn the_goal_stops_the_experiment_early() {
    let scratch = Scratch::new();
    let file = scratch.write(
        "goal.yaml",
        &experiment(
            "goal",
            r#"  objective: {type: minimize, goal: 0.5, objectiveMetricName: loss}
  algorithm: {algorithmName: random}
  parallelTrialCount: 1
  maxTrialCount: 20
  parameters:
    - {name: x, parameterType: double, feasibleSpace: {min: "0", max: "1"}}"#,
            r#"[python3, -c, "print('loss=0.1')", "${trialParameters.x}"]"#,
        ),
    );
    let (output, experiment) = scratch.run(&file);
    assert_eq!(output.status.code(), Some(0), "{}", explain(&output));
    assert_eq!(
        reason(&experiment),
        ("Succeeded".into(), "ExperimentGoalReached".into())
    );
    assert_eq!(experiment["status"]["trialsSucceeded"], 1);
}

#[test]
fn max_failed_trial_count_fails_the_experiment() {
    let scratch = Scratch::new();
    let file = scratch.write(
        "failing.yaml",
        &experiment(
            "failing",
            r#"  objective: {type: minimize, objectiveMetricName: loss}
  algorithm: {algorithmName: random}
  parallelTrialCount: 2
  maxTrialCount: 10
  maxFailedTrialCount: 3
  parameters:
    - {name: x, parameterType: double, feasibleSpace: {min: "0", max: "1"}}"#,
            r#"[python3, -c, "import sys; sys.exit(3)", "${trialParameters.x}"]"#,
        ),
    );
    let (output, experiment) = scratch.run(&file);
    assert_eq!(output.status.code(), Some(1), "{}", explain(&output));
    assert_eq!(reason(&experiment).0, "Failed");
    let failed = experiment["status"]["trialsFailed"].as_i64().unwrap_or(0);
    assert!((3..=4).contains(&failed), "{failed} failed trials");
}

#[test]
fn grid_exhaustion_ends_the_experiment() {
    let scratch = Scratch::new();
    let file = scratch.write(
        "grid.yaml",
        &experiment(
            "grid",
            r#"  objective: {type: minimize, objectiveMetricName: loss}
  algorithm: {algorithmName: grid}
  parallelTrialCount: 3
  maxTrialCount: 10
  parameters:
    - {name: x, parameterType: int, feasibleSpace: {min: "1", max: "4"}}"#,
            r#"[python3, -c, "import sys; print('loss=' + sys.argv[1])", "${trialParameters.x}"]"#,
        ),
    );
    let (output, experiment) = scratch.run(&file);
    assert_eq!(output.status.code(), Some(0), "{}", explain(&output));
    assert_eq!(
        reason(&experiment),
        ("Succeeded".into(), "ExperimentSuggestionEndReached".into())
    );
    let trials = scratch.trials("grid");
    let mut values: Vec<String> = trials
        .iter()
        .map(|trial| {
            trial["parameterAssignments"][0]["value"]
                .as_str()
                .unwrap_or_default()
                .to_string()
        })
        .collect();
    values.sort();
    assert_eq!(values, ["1", "2", "3", "4"]);
    assert_eq!(
        experiment["status"]["currentOptimalTrial"]["parameterAssignments"][0]["value"],
        "1"
    );
}

#[test]
fn median_stopping_stops_a_bad_trial() {
    let scratch = Scratch::new();
    scratch.write(
        "train.py",
        r#"import sys, time
quality = float(sys.argv[1])
for epoch in range(1, 21):
    print(f"epoch={epoch} accuracy={quality * epoch / 20}", flush=True)
    time.sleep(0.05)
"#,
    );
    let file = scratch.write(
        "median.yaml",
        &experiment(
            "median",
            r#"  objective: {type: maximize, objectiveMetricName: accuracy}
  algorithm: {algorithmName: grid}
  earlyStopping:
    algorithmName: medianstop
    algorithmSettings:
      - {name: min_trials_required, value: "2"}
      - {name: start_step, value: "3"}
  parallelTrialCount: 1
  maxTrialCount: 4
  parameters:
    - {name: x, parameterType: discrete, feasibleSpace: {list: ["0.9", "0.8", "0.1", "0.85"]}}"#,
            r#"[python3, train.py, "${trialParameters.x}"]"#,
        ),
    );
    let (output, experiment) = scratch.run(&file);
    assert_eq!(output.status.code(), Some(0), "{}", explain(&output));
    let trials = scratch.trials("median");
    let condition_of = |value: &str| {
        trials
            .iter()
            .find(|trial| trial["parameterAssignments"][0]["value"] == value)
            .map(|trial| trial["condition"].as_str().unwrap_or_default().to_string())
            .unwrap_or_default()
    };
    assert_eq!(condition_of("0.9"), "Succeeded");
    assert_eq!(condition_of("0.8"), "Succeeded");
    assert_eq!(condition_of("0.1"), "EarlyStopped", "{trials:#?}");
    assert_eq!(condition_of("0.85"), "Succeeded");
    assert_eq!(experiment["status"]["trialsEarlyStopped"], 1);
}

#[test]
fn asha_stops_a_trial_that_loses_at_a_rung_and_ends_its_process_group() {
    let scratch = Scratch::new();
    // Each trial keeps a helper process in its group while it trains, and ends it when it
    // finishes; a stopped trial's helper must go with it.
    scratch.write(
        "train.py",
        r#"import subprocess, sys, time
quality = float(sys.argv[1])
helper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(300)"])
for epoch in range(1, 10):
    print(f"epoch={epoch} accuracy={quality * epoch / 9}", flush=True)
    time.sleep(0.3)
helper.kill()
helper.wait()
"#,
    );
    // Rungs at reports 2, 4 and 8; the grid runs 0.5, 0.1, 0.9 in turn, one at a time.
    let file = scratch.write(
        "asha.yaml",
        &experiment(
            "asha",
            r#"  objective: {type: maximize, objectiveMetricName: accuracy}
  algorithm: {algorithmName: grid}
  earlyStopping:
    algorithmName: asha
    algorithmSettings:
      - {name: min_resource, value: "2"}
      - {name: reduction_factor, value: "2"}
  parallelTrialCount: 1
  maxTrialCount: 3
  parameters:
    - {name: x, parameterType: discrete, feasibleSpace: {list: ["0.5", "0.1", "0.9"]}}"#,
            r#"[python3, train.py, "${trialParameters.x}"]"#,
        ),
    );
    let (output, experiment) = scratch.run(&file);
    assert_eq!(output.status.code(), Some(0), "{}", explain(&output));
    let trials = scratch.trials("asha");
    let trial_with = |value: &str| {
        trials
            .iter()
            .find(|trial| trial["parameterAssignments"][0]["value"] == value)
            .cloned()
            .unwrap_or_default()
    };
    // Alone at every rung, 0.5 goes on; 0.1 loses to it at the first rung; 0.9 beats both
    // there and 0.5 at the later rungs.
    assert_eq!(trial_with("0.5")["condition"], "Succeeded", "{trials:#?}");
    let stopped = trial_with("0.1");
    assert_eq!(stopped["condition"], "EarlyStopped", "{trials:#?}");
    assert_eq!(trial_with("0.9")["condition"], "Succeeded", "{trials:#?}");
    assert_eq!(experiment["status"]["trialsEarlyStopped"], 1);
    assert_eq!(
        experiment["status"]["currentOptimalTrial"]["parameterAssignments"][0]["value"],
        "0.9"
    );
    let stopped_name = stopped["name"].as_str().expect("a name");
    assert_eq!(
        processes_of_trial(stopped_name),
        Vec::<u32>::new(),
        "the stopped trial's process group is gone"
    );
    // It was stopped at its second report, not run to its ninth: the runner kills it well
    // within the 2.1 s its remaining reports would take.
    let reports = metric_reports(&scratch, "asha", stopped_name);
    assert!(reports < 9, "{reports} reports");
}

/// How many `accuracy=` lines a trial printed, from its kept output.
fn metric_reports(scratch: &Scratch, experiment: &str, trial: &str) -> usize {
    std::fs::read_to_string(
        scratch
            .path()
            .join(".sextant")
            .join(experiment)
            .join(trial)
            .join("output.log"),
    )
    .expect("the trial's output")
    .matches("accuracy=")
    .count()
}

#[test]
fn katib_sdk_push_trial_is_counted() {
    let python = katib_python().expect("virtualenv with kubeflow-katib");
    let scratch = Scratch::new();
    scratch.write(
        "push.py",
        r#"import os, sys
from kubeflow.katib import report_metrics
from kubeflow.katib.utils import utils
# Katib's SDK reads the pod namespace file, which only exists inside a pod.
utils.get_current_k8s_namespace = lambda: "default"
x = float(sys.argv[1])
report_metrics({"loss": (x - 0.3) ** 2}, db_manager_address=os.environ["KATIB_DB_MANAGER_ADDRESS"])
"#,
    );
    let file = scratch.write(
        "push.yaml",
        &experiment(
            "push",
            r#"  objective: {type: minimize, objectiveMetricName: loss}
  algorithm: {algorithmName: random}
  metricsCollectorSpec: {collector: {kind: Push}}
  parallelTrialCount: 2
  maxTrialCount: 4
  parameters:
    - {name: x, parameterType: double, feasibleSpace: {min: "0", max: "1"}}"#,
            &format!(
                r#"[{}, push.py, "${{trialParameters.x}}"]"#,
                python.display()
            ),
        ),
    );
    let (output, experiment) = scratch.run(&file);
    assert_eq!(output.status.code(), Some(0), "{}", explain(&output));
    assert_eq!(experiment["status"]["trialsSucceeded"], 4, "{experiment:#}");
}

#[test]
fn parameter_values_with_shell_metacharacters_reach_argv_intact() {
    let scratch = Scratch::new();
    scratch.write(
        "echo_argv.py",
        r#"import json, os, sys
with open(os.path.join(os.environ["SEXTANT_TRIAL_DIR"], "argv.json"), "w") as f:
    json.dump(sys.argv[1:], f)
print("loss=1")
"#,
    );
    let values = [
        "two words",
        "it's \"quoted\"",
        "a;rm -rf nothing",
        "$(echo pwned)",
        "`id` && || | > <",
        "line1\nline2",
    ];
    let list = values
        .iter()
        .map(|value| serde_json::to_string(value).expect("json"))
        .collect::<Vec<_>>()
        .join(", ");
    let file = scratch.write(
        "shell.yaml",
        &experiment(
            "shell",
            &format!(
                r#"  objective: {{type: minimize, objectiveMetricName: loss}}
  algorithm: {{algorithmName: grid}}
  parallelTrialCount: 2
  maxTrialCount: {}
  parameters:
    - {{name: x, parameterType: categorical, feasibleSpace: {{list: [{list}]}}}}"#,
                values.len()
            ),
            r#"[python3, echo_argv.py, "${trialParameters.x}", "--flag=${trialParameters.x}"]"#,
        ),
    );
    let (output, _) = scratch.run(&file);
    assert_eq!(output.status.code(), Some(0), "{}", explain(&output));
    let mut seen = Vec::new();
    for trial in scratch.trials("shell") {
        let name = trial["name"].as_str().expect("name");
        let argv: Vec<String> = serde_json::from_str(
            &std::fs::read_to_string(
                scratch
                    .path()
                    .join(".sextant/shell")
                    .join(name)
                    .join("argv.json"),
            )
            .expect("argv.json"),
        )
        .expect("argv json");
        assert_eq!(argv.len(), 2, "{argv:?}");
        assert_eq!(argv[1], format!("--flag={}", argv[0]));
        seen.push(argv[0].clone());
    }
    seen.sort();
    let mut expected: Vec<String> = values.iter().map(|v| v.to_string()).collect();
    expected.sort();
    assert_eq!(seen, expected);
}

#[test]
fn an_inactive_parameter_never_reaches_a_trial() {
    let scratch = Scratch::new();
    scratch.write(
        "echo_argv.py",
        r#"import json, os, sys
with open(os.path.join(os.environ["SEXTANT_TRIAL_DIR"], "argv.json"), "w") as f:
    json.dump(sys.argv[1:], f)
args = dict(arg[2:].split("=", 1) for arg in sys.argv[1:])
loss = float(args["lr"]) + (1 - float(args.get("momentum", "0.5"))) * (args["optimizer"] == "sgd")
print(f"loss={loss}")
"#,
    );
    // `momentum` exists for sgd only and `beta` for adam only; `beta`'s trial parameter has a
    // default, so sgd trials get `--beta=none`, while adam trials lose `--momentum=...`.
    let file = scratch.write(
        "conditional.yaml",
        r#"apiVersion: kubeflow.org/v1beta1
kind: Experiment
metadata:
  name: conditional
spec:
  objective: {type: minimize, objectiveMetricName: loss}
  algorithm:
    algorithmName: tpe
    algorithmSettings: [{name: n_startup_trials, value: "6"}, {name: random_state, value: "3"}]
  parallelTrialCount: 2
  maxTrialCount: 14
  parameters:
    - {name: lr, parameterType: double, feasibleSpace: {min: "0.001", max: "0.1"}}
    - {name: optimizer, parameterType: categorical, feasibleSpace: {list: [sgd, adam]}}
    - name: momentum
      parameterType: double
      feasibleSpace: {min: "0.5", max: "0.99"}
      condition: {parameter: optimizer, values: [sgd]}
    - name: beta
      parameterType: double
      feasibleSpace: {min: "0.8", max: "0.999"}
      condition: {parameter: optimizer, values: [adam]}
  trialTemplate:
    trialParameters:
      - {name: lr, reference: lr}
      - {name: optimizer, reference: optimizer}
      - {name: momentum, reference: momentum}
      - {name: beta, reference: beta, default: none}
    trialSpec:
      apiVersion: sextant.dev/v1beta1
      kind: Process
      spec:
        command:
          - python3
          - echo_argv.py
          - "--lr=${trialParameters.lr}"
          - "--optimizer=${trialParameters.optimizer}"
          - "--momentum=${trialParameters.momentum}"
          - "--beta=${trialParameters.beta}"
"#,
    );
    let (output, experiment) = scratch.run(&file);
    assert_eq!(output.status.code(), Some(0), "{}", explain(&output));
    assert_eq!(experiment["status"]["trialsSucceeded"], 14, "{experiment}");
    let mut optimizers = std::collections::BTreeSet::new();
    for trial in scratch.trials("conditional") {
        let name = trial["name"].as_str().expect("name");
        let argv: Vec<String> = serde_json::from_str(
            &std::fs::read_to_string(
                scratch
                    .path()
                    .join(".sextant/conditional")
                    .join(name)
                    .join("argv.json"),
            )
            .expect("argv.json"),
        )
        .expect("argv json");
        let assigned: Vec<&str> = trial["parameterAssignments"]
            .as_array()
            .unwrap_or_else(|| panic!("assignments of {trial:#}"))
            .iter()
            .map(|assignment| assignment["name"].as_str().expect("name"))
            .collect();
        let flags: Vec<&str> = argv
            .iter()
            .map(|arg| arg.split_once('=').expect("--name=value").0)
            .collect();
        let beta = argv
            .iter()
            .find_map(|arg| arg.strip_prefix("--beta="))
            .expect("--beta is always given");
        if argv.contains(&"--optimizer=sgd".to_string()) {
            assert_eq!(assigned, ["lr", "optimizer", "momentum"], "{name}");
            assert_eq!(
                flags,
                ["--lr", "--optimizer", "--momentum", "--beta"],
                "{name}"
            );
            assert_eq!(beta, "none", "{name}: the default stands in");
            optimizers.insert("sgd");
        } else {
            assert!(argv.contains(&"--optimizer=adam".to_string()), "{argv:?}");
            assert_eq!(assigned, ["lr", "optimizer", "beta"], "{name}");
            assert_eq!(
                flags,
                ["--lr", "--optimizer", "--beta"],
                "{name}: no momentum"
            );
            assert!(
                beta.parse::<f64>()
                    .is_ok_and(|b| (0.8..=0.999).contains(&b)),
                "{beta}"
            );
            optimizers.insert("adam");
        }
    }
    assert_eq!(optimizers.len(), 2, "both branches ran");
}

#[test]
fn an_invalid_spec_exits_2_listing_every_problem_and_writes_nothing() {
    let scratch = Scratch::new();
    let file = scratch.write(
        "invalid.yaml",
        r#"apiVersion: kubeflow.org/v1beta1
kind: Experiment
metadata:
  name: invalid
spec:
  objective: {type: minimize, objectiveMetricName: loss}
  algorithm: {algorithmName: simulated-annealing}
  parallelTrialCount: 0
  maxTrialCount: 5
  maxFailedTrialCount: 9
  parameters:
    - {name: lr, parameterType: double, feasibleSpace: {min: "5", max: "1"}}
  trialTemplate:
    trialParameters:
      - {name: rate, reference: learning_rate}
    trialSpec:
      apiVersion: sextant.dev/v1beta1
      kind: Process
      spec:
        command: [python3, train.py, "${trialParameters.rate}", "${trialParameters.momentum}"]
"#,
    );
    let (output, _) = scratch.run(&file);
    assert_eq!(output.status.code(), Some(2), "{}", explain(&output));
    let stderr = String::from_utf8_lossy(&output.stderr);
    for needle in [
        "spec.parameters[0].feasibleSpace: min 5 > max 1",
        "simulated-annealing",
        "spec.parallelTrialCount",
        "spec.maxFailedTrialCount",
        "learning_rate",
        "momentum",
    ] {
        assert!(stderr.contains(needle), "{needle:?} not in:\n{stderr}");
    }
    assert!(
        !scratch.path().join("store.db").exists(),
        "the store was written"
    );
}

#[test]
fn sigkill_and_resume_ends_with_exactly_max_trial_count() {
    let scratch = Scratch::new();
    let file = scratch.write(
        "resume.yaml",
        &experiment(
            "resume",
            r#"  objective: {type: minimize, objectiveMetricName: loss}
  algorithm: {algorithmName: random, algorithmSettings: [{name: random_state, value: "3"}]}
  parallelTrialCount: 3
  maxTrialCount: 12
  parameters:
    - {name: x, parameterType: double, feasibleSpace: {min: "0", max: "1"}}"#,
            r#"[python3, -c, "import sys, time; time.sleep(0.3); print('loss=' + sys.argv[1])", "${trialParameters.x}"]"#,
        ),
    );
    let mut runner = scratch
        .command(&["run", &file.display().to_string(), "--db", &scratch.db()])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("spawn");
    // Kill the runner once some trials finished and others are running.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        std::thread::sleep(Duration::from_millis(100));
        let output = scratch
            .command(&[
                "get",
                "trials",
                "resume",
                "--db",
                &scratch.db(),
                "-o",
                "json",
            ])
            .output()
            .expect("get");
        let trials: Vec<Value> = serde_json::from_slice(&output.stdout).unwrap_or_default();
        let done = trials
            .iter()
            .filter(|t| t["condition"] == "Succeeded")
            .count();
        if done >= 4 {
            break;
        }
        assert!(Instant::now() < deadline, "no progress before the kill");
    }
    runner.kill().expect("SIGKILL the runner");
    runner.wait().expect("wait");
    let (output, experiment) = scratch.run(&file);
    assert_eq!(output.status.code(), Some(0), "{}", explain(&output));
    assert_eq!(reason(&experiment).1, "ExperimentMaxTrialsReached");
    let trials = scratch.trials("resume");
    let succeeded = trials
        .iter()
        .filter(|t| t["condition"] == "Succeeded")
        .count();
    assert_eq!(trials.len(), 12, "{trials:#?}");
    assert_eq!(succeeded, 12);
    assert_eq!(experiment["status"]["trialsSucceeded"], 12);
}

#[test]
fn a_remote_suggestion_service_drives_the_experiment_to_exhaustion() {
    let server = Server::start(&[]).expect("sextant serve starts");
    let scratch = Scratch::new();
    let file = scratch.write(
        "remote.yaml",
        &experiment(
            "remote",
            r#"  objective: {type: maximize, objectiveMetricName: score}
  algorithm: {algorithmName: grid}
  parallelTrialCount: 2
  maxTrialCount: 10
  parameters:
    - {name: x, parameterType: int, feasibleSpace: {min: "1", max: "5"}}"#,
            r#"[python3, -c, "import sys; print('score=' + sys.argv[1])", "${trialParameters.x}"]"#,
        ),
    );
    let (output, experiment) = scratch.run_with(
        &file,
        &["--suggestion-service", &server.address.to_string()],
    );
    assert_eq!(output.status.code(), Some(0), "{}", explain(&output));
    assert_eq!(
        reason(&experiment),
        ("Succeeded".into(), "ExperimentSuggestionEndReached".into())
    );
    assert_eq!(experiment["status"]["trialsSucceeded"], 5);
    assert_eq!(
        experiment["status"]["currentOptimalTrial"]["parameterAssignments"][0]["value"],
        "5"
    );
}

#[test]
fn hyperband_promotes_trials_to_larger_budgets_in_local_runs() {
    let scratch = Scratch::new();
    let file = scratch.write(
        "hyperband.yaml",
        r#"apiVersion: kubeflow.org/v1beta1
kind: Experiment
metadata:
  name: hyperband
spec:
  parallelTrialCount: 3
  maxTrialCount: 20
  objective: {type: minimize, objectiveMetricName: loss}
  algorithm:
    algorithmName: hyperband
    algorithmSettings:
      - {name: resource_name, value: epochs}
      - {name: eta, value: "3"}
      - {name: r_l, value: "9"}
  parameters:
    - {name: lr, parameterType: double, feasibleSpace: {min: "0.01", max: "0.05"}}
    - {name: epochs, parameterType: int, feasibleSpace: {min: "1", max: "9"}}
  trialTemplate:
    trialParameters:
      - {name: lr, reference: lr}
      - {name: epochs, reference: epochs}
    trialSpec:
      apiVersion: sextant.dev/v1beta1
      kind: Process
      spec:
        command: [python3, -c, "import sys; print('loss=%f' % (float(sys.argv[1]) / float(sys.argv[2])))", "${trialParameters.lr}", "${trialParameters.epochs}"]
"#,
    );
    let (output, experiment) = scratch.run(&file);
    assert_eq!(output.status.code(), Some(0), "{}", explain(&output));
    assert_eq!(reason(&experiment).0, "Succeeded");
    let budgets: std::collections::BTreeSet<String> = scratch
        .trials("hyperband")
        .iter()
        .filter_map(|trial| {
            trial["parameterAssignments"]
                .as_array()?
                .iter()
                .find(|pair| pair["name"] == "epochs")
                .and_then(|pair| pair["value"].as_str().map(str::to_string))
        })
        .collect();
    assert_eq!(
        budgets,
        ["1", "3", "9"].iter().map(|b| b.to_string()).collect(),
        "rungs promote trials to larger budgets"
    );
}

#[test]
fn raising_max_trial_count_restarts_a_long_running_experiment() {
    let scratch = Scratch::new();
    let spec = |max: u32| {
        experiment(
            "restart",
            &format!(
                r#"  objective: {{type: minimize, objectiveMetricName: loss}}
  algorithm: {{algorithmName: random}}
  resumePolicy: LongRunning
  parallelTrialCount: 2
  maxTrialCount: {max}
  parameters:
    - {{name: x, parameterType: double, feasibleSpace: {{min: "0", max: "1"}}}}"#
            ),
            r#"[python3, -c, "import sys; print('loss=' + sys.argv[1])", "${trialParameters.x}"]"#,
        )
    };
    let file = scratch.write("restart.yaml", &spec(3));
    let (output, experiment) = scratch.run(&file);
    assert_eq!(output.status.code(), Some(0), "{}", explain(&output));
    assert_eq!(experiment["status"]["trialsSucceeded"], 3);

    scratch.write("restart.yaml", &spec(5));
    let (output, experiment) = scratch.run(&file);
    assert_eq!(output.status.code(), Some(0), "{}", explain(&output));
    assert_eq!(
        reason(&experiment),
        ("Succeeded".into(), "ExperimentMaxTrialsReached".into())
    );
    assert_eq!(experiment["status"]["trialsSucceeded"], 5);
    assert_eq!(scratch.trials("restart").len(), 5);
}

/// The pids of live processes whose environment names `trial` as theirs.
fn processes_of_trial(trial: &str) -> Vec<u32> {
    let marker = format!("KATIB_TRIAL_NAME={trial}");
    std::fs::read_dir("/proc")
        .expect("/proc")
        .filter_map(|entry| entry.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/environ")).is_ok_and(|environ| {
                environ
                    .split(|byte| *byte == 0)
                    .any(|entry| entry == marker.as_bytes())
            })
        })
        .collect()
}

#[test]
fn resume_ends_the_trial_processes_a_killed_runner_left_behind() {
    let scratch = Scratch::new();
    // The first attempt hangs; the re-run after resume reports at once.
    let file = scratch.write(
        "leftover.yaml",
        &experiment(
            "leftover",
            r#"  objective: {type: minimize, objectiveMetricName: loss}
  algorithm: {algorithmName: random}
  parallelTrialCount: 1
  maxTrialCount: 1
  parameters:
    - {name: x, parameterType: double, feasibleSpace: {min: "0", max: "1"}}"#,
            r#"[python3, -c, "import os, sys, time\nmark = os.path.join(os.environ['SEXTANT_TRIAL_DIR'], 'attempted')\nif not os.path.exists(mark):\n    open(mark, 'w').close()\n    time.sleep(120)\nprint('loss=' + sys.argv[1])", "${trialParameters.x}"]"#,
        ),
    );
    let trial = "leftover-00000";
    let mark = scratch
        .path()
        .join(".sextant/leftover")
        .join(trial)
        .join("attempted");
    let mut runner = scratch
        .command(&["run", &file.display().to_string(), "--db", &scratch.db()])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("spawn");
    let deadline = Instant::now() + Duration::from_secs(30);
    while !mark.exists() {
        assert!(Instant::now() < deadline, "the first attempt never started");
        std::thread::sleep(Duration::from_millis(50));
    }
    runner.kill().expect("SIGKILL the runner");
    runner.wait().expect("wait");
    assert!(
        !processes_of_trial(trial).is_empty(),
        "the killed runner's trial process should still be running"
    );

    let (output, experiment) = scratch.run(&file);
    assert_eq!(output.status.code(), Some(0), "{}", explain(&output));
    assert_eq!(experiment["status"]["trialsSucceeded"], 1);
    assert_eq!(
        processes_of_trial(trial),
        Vec::<u32>::new(),
        "the leftover process group is gone"
    );
}

/// A metric's latest value in a trial's (or an optimal trial's) JSON observation.
fn metric_of(trial: &Value, name: &str) -> Option<f64> {
    trial["observation"]["metrics"]
        .as_array()?
        .iter()
        .find(|metric| metric["name"] == name)?["latest"]
        .as_str()?
        .parse()
        .ok()
}

#[test]
fn the_multi_objective_example_ends_with_its_pareto_front_and_infeasible_trials_off_it() {
    let examples = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/multi-objective");
    let scratch = Scratch::new();
    scratch.write(
        "zdt1.py",
        &std::fs::read_to_string(examples.join("zdt1.py")).expect("zdt1.py"),
    );
    let file = scratch.write(
        "zdt1.yaml",
        &std::fs::read_to_string(examples.join("zdt1.yaml")).expect("zdt1.yaml"),
    );
    let (output, experiment) = scratch.run(&file);
    assert_eq!(output.status.code(), Some(0), "{}", explain(&output));
    assert_eq!(
        reason(&experiment),
        ("Succeeded".into(), "ExperimentMaxTrialsReached".into())
    );

    // The front is exactly the feasible trials no other feasible trial dominates (both
    // objectives minimized, cost at most 1.2), from the trials as `sextant get` lists them.
    let trials = scratch.trials("zdt1-nsga2");
    assert_eq!(trials.len(), 48);
    let points: Vec<(String, f64, f64, f64)> = trials
        .iter()
        .map(|trial| {
            (
                trial["name"].as_str().expect("a name").to_owned(),
                metric_of(trial, "f1").expect("f1"),
                metric_of(trial, "f2").expect("f2"),
                metric_of(trial, "cost").expect("cost"),
            )
        })
        .collect();
    let feasible = |point: &&(String, f64, f64, f64)| point.3 <= 1.2;
    let infeasible = points.iter().filter(|point| !feasible(point)).count();
    assert!(infeasible > 0, "no trial broke the constraint");
    let mut expected: Vec<&str> = points
        .iter()
        .filter(feasible)
        .filter(|p| {
            !points
                .iter()
                .filter(feasible)
                .any(|q| q.1 <= p.1 && q.2 <= p.2 && (q.1 < p.1 || q.2 < p.2))
        })
        .map(|point| point.0.as_str())
        .collect();
    expected.sort_unstable();
    let mut front: Vec<&str> = experiment["status"]["paretoOptimalTrials"]
        .as_array()
        .expect("a Pareto front")
        .iter()
        .map(|trial| trial["bestTrialName"].as_str().expect("a name"))
        .collect();
    front.sort_unstable();
    assert!(!front.is_empty());
    assert_eq!(front, expected);
    let best = experiment["status"]["currentOptimalTrial"]["bestTrialName"]
        .as_str()
        .expect("an optimal trial");
    assert!(
        points
            .iter()
            .any(|point| point.0 == best && feasible(&point)),
        "{best} is infeasible"
    );

    // The table shows the front and which trials are infeasible.
    let table = scratch.output(&["get", "experiment", "zdt1-nsga2", "--db", &scratch.db()]);
    let text = String::from_utf8_lossy(&table.stdout);
    assert!(text.contains("Pareto front:"), "{text}");
    assert!(
        text.contains("f1 (min)") && text.contains("FEASIBLE"),
        "{text}"
    );
    let trials_table = scratch.output(&["get", "trials", "zdt1-nsga2", "--db", &scratch.db()]);
    let rows = String::from_utf8_lossy(&trials_table.stdout);
    assert_eq!(
        rows.lines().filter(|line| line.contains(" no ")).count(),
        infeasible,
        "{rows}"
    );
}

/// A `pbt` checkpoint as `examples/pbt/pbt_toy.py` writes it.
#[derive(Debug, serde::Deserialize)]
struct ToyCheckpoint {
    step: u64,
    lineage: Vec<String>,
}

#[test]
fn pbt_trials_continue_from_their_parents_checkpoints() {
    let examples = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/pbt");
    let scratch = Scratch::new();
    scratch.write(
        "pbt_toy.py",
        &std::fs::read_to_string(examples.join("pbt_toy.py")).expect("pbt_toy.py"),
    );
    let spec = std::fs::read_to_string(examples.join("simple-pbt.yaml")).expect("example");
    let file = scratch.write("simple-pbt.yaml", &spec);
    let (output, experiment) = scratch.run(&file);
    assert_eq!(output.status.code(), Some(0), "{}", explain(&output));
    assert_eq!(
        reason(&experiment),
        ("Succeeded".into(), "ExperimentMaxTrialsReached".into())
    );
    assert_eq!(experiment["status"]["trialsSucceeded"], 20);

    // Every trial wrote its checkpoint into its own directory, after training 20 epochs on
    // top of exactly the checkpoint its parent left.
    let trials_dir = scratch.path().join(".sextant/simple-pbt");
    let mut checkpoints = std::collections::BTreeMap::new();
    for entry in std::fs::read_dir(&trials_dir).expect("trial directories") {
        let trial_dir = entry.expect("entry").path();
        let name = trial_dir
            .file_name()
            .expect("name")
            .to_string_lossy()
            .to_string();
        let text = std::fs::read_to_string(trial_dir.join("checkpoint/training.json"))
            .unwrap_or_else(|error| panic!("{name} wrote no checkpoint: {error}"));
        let checkpoint: ToyCheckpoint = serde_json::from_str(&text).expect("checkpoint");
        checkpoints.insert(name, checkpoint);
    }
    assert_eq!(checkpoints.len(), 20);
    let mut per_generation = [0; 4];
    let mut children: std::collections::BTreeMap<&str, usize> = Default::default();
    for (name, checkpoint) in &checkpoints {
        assert_eq!(checkpoint.lineage.last(), Some(name));
        let generation = checkpoint.lineage.len() - 1;
        per_generation[generation] += 1;
        assert_eq!(checkpoint.step, 20 * (generation as u64 + 1), "{name}");
        if let [.., parent, _] = checkpoint.lineage.as_slice() {
            assert_eq!(
                checkpoints[parent].lineage[..],
                checkpoint.lineage[..generation],
                "{name} continued from {parent}'s checkpoint"
            );
            *children.entry(parent.as_str()).or_default() += 1;
        }
    }
    assert_eq!(per_generation, [5, 5, 5, 5], "four generations of 5");
    // With 2 of 5 replaced each generation, a top member is the parent of its own
    // continuation and of a copy.
    assert!(
        children.values().any(|count| *count >= 2),
        "no member was exploited: {children:?}"
    );

    // Without the checkpoint directory, the spec is refused naming the setting.
    let without = spec.replace(
        "      - name: suggestion_trial_dir\n        value: /var/log/katib/checkpoints/\n",
        "",
    );
    assert_ne!(without, spec);
    let file = scratch.write("no-checkpoint-dir.yaml", &without);
    let output = scratch
        .command(&["validate", &file.display().to_string()])
        .output()
        .expect("sextant validate");
    assert_eq!(output.status.code(), Some(2), "{}", explain(&output));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("spec.algorithm.algorithmSettings")
            && stderr.contains("missing: suggestion_trial_dir"),
        "{stderr}"
    );
}
