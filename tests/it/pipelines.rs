//! Pipelines in experiments, end to end: `Pipeline` trial templates, the `tune` step of
//! `sextant pipeline run`, and the median-stop, asha, pipeline-trial and tune-then-train
//! examples.

use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::support::{Scratch, explain};

fn examples() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("examples")
}

fn succeeded(experiment: &Value) -> bool {
    experiment["status"]["conditions"]
        .as_array()
        .is_some_and(|conditions| {
            conditions
                .iter()
                .any(|condition| condition["type"] == "Succeeded" && condition["status"] == "True")
        })
}

/// A trial's `name` metric value under `field` (min, max or latest).
fn metric(trial: &Value, name: &str, field: &str) -> f64 {
    trial["observation"]["metrics"]
        .as_array()
        .and_then(|metrics| metrics.iter().find(|metric| metric["name"] == name))
        .and_then(|metric| metric[field].as_str())
        .and_then(|value| value.parse().ok())
        .unwrap_or_else(|| panic!("trial without {name} {field}: {trial:#}"))
}

#[test]
fn the_pipeline_trial_example_collects_metrics_from_its_train_step() {
    let scratch = Scratch::new();
    scratch.copy_example("pipeline-trial");
    let (output, experiment) = scratch.run("experiment.yaml");
    assert_eq!(output.status.code(), Some(0), "{}", explain(&output));
    assert!(succeeded(&experiment), "{experiment:#}");
    let trials = scratch.trials("pipeline-trial");
    assert_eq!(trials.len(), 6);
    for trial in &trials {
        assert_eq!(trial["condition"], "Succeeded", "{trial:#}");
        // The last line the train step printed is the trial's latest loss.
        let name = trial["name"].as_str().expect("trial name");
        let trial_dir = scratch.path().join(".sextant/pipeline-trial").join(name);
        let run_dir = std::fs::read_dir(&trial_dir)
            .expect("trial directory")
            .map(|entry| entry.expect("entry").path())
            .find(|path| path.is_dir())
            .expect("the trial's run directory");
        let log = std::fs::read_to_string(run_dir.join("train/stdout.log")).expect("train log");
        let last = log.lines().last().expect("a line");
        assert!(last.starts_with("epoch=20 loss="), "{last}");
        let printed: f64 = last["epoch=20 loss=".len()..].parse().expect("a loss");
        assert_eq!(metric(trial, "loss", "latest"), printed, "{trial:#}");
    }
}

/// An experiment whose trial is a pipeline: `prepare` prints a decoy `loss=-1000`, `train`
/// prints `loss=<lr>` and exits with `exit_code`; when `train` is the metrics step (no `primary`),
/// it checks that it got the trial's environment.
fn decoy_pipeline_experiment(name: &str, primary: &str, exit_code: u8) -> String {
    let check_env = primary.is_empty();
    format!(
        r#"apiVersion: kubeflow.org/v1beta1
kind: Experiment
metadata:
  name: {name}
spec:
  objective: {{type: minimize, objectiveMetricName: loss}}
  algorithm: {{algorithmName: grid}}
  parallelTrialCount: 2
  maxTrialCount: 2
  maxFailedTrialCount: 0
  parameters:
    - {{name: lr, parameterType: discrete, feasibleSpace: {{list: ["0.5", "0.25"]}}}}
  trialTemplate:
    primaryContainerName: "{primary}"
    trialParameters: [{{name: lr, reference: lr}}]
    trialSpec:
      apiVersion: sextant.dev/v1beta1
      kind: Pipeline
      spec:
        params: [{{name: experimentDir}}, {{name: trialName}}]
        steps:
          - name: prepare
            command: [python3, -c, "print('loss=-1000')"]
          - name: train
            dependsOn: [prepare]
            command:
              - python3
              - "{{{{params.experimentDir}}}}/train.py"
              - "${{trialParameters.lr}}"
              - "{{{{params.trialName}}}}"
              - "{exit_code}"
              - "{check_env}"
"#
    )
}

const DECOY_TRAIN: &str = r#"import os, sys
lr, trial, code, check_env = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
if check_env == "true":
    assert os.environ["KATIB_TRIAL_NAME"] == trial, "the metrics step has the trial environment"
print(f"loss={lr}", flush=True)
sys.exit(code)
"#;

#[test]
fn pipeline_trials_take_metrics_from_the_named_or_last_step_and_fail_with_their_pipeline() {
    let scratch = Scratch::new();
    scratch.write("train.py", DECOY_TRAIN);

    scratch.write("last.yaml", &decoy_pipeline_experiment("last-step", "", 0));
    let (output, experiment) = scratch.run("last.yaml");
    assert_eq!(output.status.code(), Some(0), "{}", explain(&output));
    for trial in scratch.trials("last-step") {
        assert_eq!(trial["condition"], "Succeeded", "{trial:#}");
        let lr: f64 = trial["parameterAssignments"][0]["value"]
            .as_str()
            .and_then(|value| value.parse().ok())
            .expect("lr");
        assert_eq!(metric(&trial, "loss", "min"), lr, "{trial:#}");
        assert_eq!(metric(&trial, "loss", "max"), lr, "{trial:#}");
    }
    assert_eq!(
        experiment["status"]["currentOptimalTrial"]["parameterAssignments"][0]["value"],
        "0.25"
    );

    scratch.write(
        "named.yaml",
        &decoy_pipeline_experiment("named-step", "prepare", 0),
    );
    let (output, _) = scratch.run("named.yaml");
    assert_eq!(output.status.code(), Some(0), "{}", explain(&output));
    for trial in scratch.trials("named-step") {
        assert_eq!(metric(&trial, "loss", "latest"), -1000.0, "{trial:#}");
    }

    scratch.write("failing.yaml", &decoy_pipeline_experiment("failing", "", 3));
    let (output, experiment) = scratch.run("failing.yaml");
    assert_eq!(output.status.code(), Some(1), "{}", explain(&output));
    assert!(!succeeded(&experiment), "{experiment:#}");
    let trials = scratch.trials("failing");
    assert!(
        trials.iter().any(|trial| trial["condition"] == "Failed"
            && trial["reason"]
                .as_str()
                .is_some_and(|reason| reason.ends_with("PipelineFailed"))),
        "{trials:#?}"
    );
}

#[test]
fn the_tune_then_train_pipeline_trains_with_the_best_parameters() {
    let scratch = Scratch::new();
    let dir = examples().join("tune-then-train");
    let output = scratch.output(&[
        "pipeline",
        "run",
        &dir.join("pipeline.yaml").display().to_string(),
        "--param",
        &format!("dir={}", dir.display()),
        "--db",
        &scratch.db(),
        "--runs-dir",
        &scratch.path().join("runs").display().to_string(),
        "--run-id",
        "ttt",
    ]);
    assert_eq!(output.status.code(), Some(0), "{}", explain(&output));

    // The tune step's experiment is in the same store; its best trial is the lowest loss.
    let trials = scratch.trials("ttt-tune");
    assert_eq!(trials.len(), 12);
    let best = trials
        .iter()
        .filter(|trial| trial["condition"] == "Succeeded")
        .min_by(|a, b| metric(a, "loss", "latest").total_cmp(&metric(b, "loss", "latest")))
        .expect("a succeeded trial");
    let best_value = |name: &str| -> f64 {
        best["parameterAssignments"]
            .as_array()
            .and_then(|assignments| assignments.iter().find(|a| a["name"] == name))
            .and_then(|assignment| assignment["value"].as_str())
            .and_then(|value| value.parse().ok())
            .expect("an assignment")
    };

    let result: Value = serde_json::from_str(
        &std::fs::read_to_string(scratch.path().join("runs/ttt/train/result.json"))
            .expect("the train step's result"),
    )
    .expect("result json");
    assert_eq!(result["x1"].as_f64(), Some(best_value("x1")), "{result}");
    assert_eq!(result["x2"].as_f64(), Some(best_value("x2")), "{result}");
    let loss = result["loss"].as_f64().expect("loss");
    assert!(
        (loss - metric(best, "loss", "latest")).abs() < 1e-9,
        "{result}"
    );

    let run = scratch.output(&["pipeline", "get", "ttt", "--db", &scratch.db(), "--json"]);
    assert!(run.status.success(), "{}", explain(&run));
    let run: Value = serde_json::from_slice(&run.stdout).expect("run json");
    let tune = run["steps"]
        .as_array()
        .and_then(|steps| steps.iter().find(|step| step["step"] == "tune"))
        .expect("the tune step");
    let objective: f64 = tune["outputs"]["params"]["objective"]
        .as_str()
        .and_then(|value| value.parse().ok())
        .expect("the objective output");
    assert!((objective - loss).abs() < 1e-9, "{tune:#}");
}

#[test]
fn the_median_stop_example_early_stops_a_trial() {
    let scratch = Scratch::new();
    scratch.copy_example("median-stop");
    let (output, experiment) = scratch.run("experiment.yaml");
    assert_eq!(output.status.code(), Some(0), "{}", explain(&output));
    assert!(succeeded(&experiment), "{experiment:#}");
    let trials = scratch.trials("median-stop");
    assert_eq!(trials.len(), 6);
    let early_stopped: Vec<&Value> = trials
        .iter()
        .filter(|trial| trial["condition"] == "EarlyStopped")
        .collect();
    assert!(!early_stopped.is_empty(), "{trials:#?}");
    for trial in early_stopped {
        // Stopped before its last (tenth) epoch.
        let name = trial["name"].as_str().expect("trial name");
        let log = std::fs::read_to_string(
            scratch
                .path()
                .join(".sextant/median-stop")
                .join(name)
                .join("output.log"),
        )
        .expect("the trial's output");
        assert!(!log.contains("epoch=10 "), "{name}: {log}");
    }
}

#[test]
fn the_asha_example_stops_trials_at_its_rungs() {
    let scratch = Scratch::new();
    scratch.copy_example("asha");
    let (output, experiment) = scratch.run("experiment.yaml");
    assert_eq!(output.status.code(), Some(0), "{}", explain(&output));
    assert!(succeeded(&experiment), "{experiment:#}");
    let trials = scratch.trials("asha");
    assert_eq!(trials.len(), 12);
    let early_stopped: Vec<&Value> = trials
        .iter()
        .filter(|trial| trial["condition"] == "EarlyStopped")
        .collect();
    assert!(!early_stopped.is_empty(), "{trials:#?}");
    for trial in early_stopped {
        // Stopped at a rung (epoch 3 or 9), well before its last (twentieth) epoch.
        let name = trial["name"].as_str().expect("trial name");
        let log = std::fs::read_to_string(
            scratch
                .path()
                .join(".sextant/asha")
                .join(name)
                .join("output.log"),
        )
        .expect("the trial's output");
        assert!(!log.contains("epoch=20 "), "{name}: {log}");
    }
}

const SLEEPER: &str = r#"import os, subprocess, sys, time
x, directory = sys.argv[1], sys.argv[2]
pids_path = os.path.join(directory, "pids")
if x == "0":
    # Reach the goal only once the other trial is running, so that it is the one killed.
    for _ in range(200):
        if os.path.exists(pids_path):
            break
        time.sleep(0.05)
    print("loss=0", flush=True)
    sys.exit(0)
child = subprocess.Popen(["sleep", "60"])
with open(pids_path + ".tmp", "w") as pids:
    pids.write(f"{os.getpid()} {child.pid}")
os.rename(pids_path + ".tmp", pids_path)
print("loss=1", flush=True)
time.sleep(60)
"#;

#[test]
fn a_killed_pipeline_trial_leaves_no_process_behind() {
    let scratch = Scratch::new();
    scratch.write("sleeper.py", SLEEPER);
    let file = scratch.write(
        "kill.yaml",
        r#"apiVersion: kubeflow.org/v1beta1
kind: Experiment
metadata:
  name: kill
spec:
  objective: {type: minimize, goal: 0.1, objectiveMetricName: loss}
  algorithm: {algorithmName: grid}
  parallelTrialCount: 2
  maxTrialCount: 2
  parameters:
    - {name: x, parameterType: discrete, feasibleSpace: {list: ["0", "1"]}}
  trialTemplate:
    trialParameters: [{name: x, reference: x}]
    trialSpec:
      apiVersion: sextant.dev/v1beta1
      kind: Pipeline
      spec:
        params: [{name: experimentDir}]
        steps:
          - name: train
            command:
              - python3
              - "{{params.experimentDir}}/sleeper.py"
              - "${trialParameters.x}"
              - "{{params.experimentDir}}"
"#,
    );
    let started = std::time::Instant::now();
    let (output, experiment) = scratch.run(&file);
    assert_eq!(output.status.code(), Some(0), "{}", explain(&output));
    assert!(succeeded(&experiment), "{experiment:#}");
    assert!(started.elapsed() < std::time::Duration::from_secs(30));
    let trials = scratch.trials("kill");
    assert!(
        trials.iter().any(|trial| trial["condition"] == "Killed"),
        "{trials:#?}"
    );
    let pids = std::fs::read_to_string(scratch.path().join("pids")).expect("the sleeper's pids");
    for pid in pids.split_whitespace() {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        // Gone, or at most a zombie waiting for a parent that is not ours.
        let alive = stat
            .rfind(')')
            .and_then(|end| stat.get(end + 2..end + 3))
            .is_some_and(|state| state != "Z");
        assert!(!alive, "process {pid} outlived its trial: {stat}");
    }
}

#[test]
fn a_parameter_value_holding_pipeline_syntax_fails_its_trial_instead_of_becoming_a_reference() {
    let scratch = Scratch::new();
    scratch.write("train.py", DECOY_TRAIN);
    let text = decoy_pipeline_experiment("injection", "", 0)
        .replace("parameterType: discrete", "parameterType: categorical")
        .replace(
            r#"list: ["0.5", "0.25"]"#,
            r#"list: ["0.5", "{{params.experimentDir}}"]"#,
        )
        .replace("maxFailedTrialCount: 0", "maxFailedTrialCount: 1");
    scratch.write("injection.yaml", &text);
    let (output, _) = scratch.run("injection.yaml");
    assert_eq!(output.status.code(), Some(1), "{}", explain(&output));
    let trials = scratch.trials("injection");
    let injected = trials
        .iter()
        .find(|trial| trial["parameterAssignments"][0]["value"] == "{{params.experimentDir}}")
        .expect("the trial with the injected value");
    assert_eq!(injected["condition"], "Failed", "{injected:#}");
    assert!(
        injected["message"]
            .as_str()
            .is_some_and(|message| message.contains("reserve")),
        "{injected:#}"
    );
}

/// The pids of live (not zombie) processes in process group `group`.
fn processes_in_group(group: u32) -> Vec<u32> {
    std::fs::read_dir("/proc")
        .expect("/proc")
        .filter_map(|entry| entry.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            // After the parenthesised command name, `stat` holds the state, the parent and the
            // process group; a killed orphan stays a zombie until something reaps it.
            std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
                let fields: Vec<&str> = stat
                    .rsplit_once(')')
                    .map(|(_, rest)| rest.split_whitespace().collect())
                    .unwrap_or_default();
                fields.first() != Some(&"Z")
                    && fields.get(2).and_then(|field| field.parse::<u32>().ok()) == Some(group)
            })
        })
        .collect()
}

#[test]
fn a_killed_pipeline_runner_resumes_without_redoing_finished_steps() {
    let scratch = Scratch::new();
    let dir = scratch.path().display().to_string();
    scratch.write(
        "resumable.yaml",
        r#"apiVersion: sextant.dev/v1beta1
kind: Pipeline
metadata: {name: resumable}
spec:
  params: [{name: dir}]
  steps:
    - name: first
      command: [sh, -c, 'echo run >> "$0/first.count"; echo ready > out.txt', '{{params.dir}}']
      outputs: {params: [{name: out, path: out.txt}]}
    - name: second
      command: [sh, -c, 'echo run >> "$0/second.count"; if [ $(wc -l < "$0/second.count") -lt 2 ]; then echo $$ > "$0/second.pid"; sleep 60; fi', '{{params.dir}}', '{{steps.first.outputs.params.out}}']
    - name: third
      dependsOn: [second]
      command: [sh, -c, 'echo run >> "$0/third.count"', '{{params.dir}}']
"#,
    );
    let count = |step: &str| {
        std::fs::read_to_string(scratch.path().join(format!("{step}.count")))
            .map(|text| text.lines().count())
            .unwrap_or(0)
    };
    let param = format!("dir={dir}");
    let mut runner = scratch
        .command(&[
            "pipeline",
            "run",
            "resumable.yaml",
            "--param",
            &param,
            "--run-id",
            "resumable",
            "--no-cache",
        ])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("spawn the runner");
    let pid_file = scratch.path().join("second.pid");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while std::fs::read_to_string(&pid_file).map_or(true, |text| text.trim().is_empty()) {
        assert!(
            std::time::Instant::now() < deadline,
            "the runner never reached the second step"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    runner.kill().expect("SIGKILL the runner");
    runner.wait().expect("wait");
    // The runner died without stopping its step: the resumed run must end that group first.
    let stale_group: u32 = std::fs::read_to_string(&pid_file)
        .expect("pid file")
        .trim()
        .parse()
        .expect("a pid");
    assert!(!processes_in_group(stale_group).is_empty());
    assert_eq!((count("first"), count("second")), (1, 1));

    let resumed = scratch.output(&["pipeline", "resume", "resumable"]);
    assert_eq!(resumed.status.code(), Some(0), "{}", explain(&resumed));
    assert_eq!(count("first"), 1, "a finished step ran again");
    assert_eq!(count("second"), 2);
    assert_eq!(count("third"), 1);
    assert_eq!(processes_in_group(stale_group), Vec::<u32>::new());
    let stored = scratch.output(&["pipeline", "get", "resumable", "--json"]);
    assert!(stored.status.success(), "{}", explain(&stored));
    let stored: Value = serde_json::from_slice(&stored.stdout).expect("run json");
    let phases: Vec<&str> = stored["steps"]
        .as_array()
        .expect("steps")
        .iter()
        .filter_map(|step| step["phase"].as_str())
        .collect();
    assert_eq!(phases.len(), 3, "{stored:#}");
    assert!(
        phases
            .iter()
            .all(|phase| phase.eq_ignore_ascii_case("succeeded")),
        "{stored:#}"
    );
}
