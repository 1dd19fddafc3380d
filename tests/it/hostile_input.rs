//! Hostile and careless input to the `sextant` binary (issue 18): each is refused with an error
//! naming the field, or bounded, never a crash, a leak or a hang.

use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use crate::support::{Scratch, explain};

/// A `when` of the given shape, far past every limit.
fn deep_expressions() -> Vec<(&'static str, String)> {
    vec![
        ("20k `!`", format!("{}true", "!".repeat(20_000))),
        (
            "200k parentheses",
            format!("{}true{}", "(".repeat(100_000), ")".repeat(100_000)),
        ),
        ("a 200k `&&` chain", vec!["true"; 40_000].join(" && ")),
    ]
}

fn pipeline_with_when(when: &str) -> String {
    format!(
        r#"apiVersion: sextant.dev/v1beta1
kind: Pipeline
metadata: {{name: deep}}
spec:
  steps:
    - name: first
      image: busybox
      command: ["true"]
    - name: guarded
      image: busybox
      dependsOn: [first]
      when: '{when}'
      command: ["true"]
"#
    )
}

/// A one-trial `random` Experiment over `x` in [0, 1] whose `trialTemplate` goes on with
/// `template` (YAML lines indented under it, after `trialParameters`).
fn one_trial_experiment(name: &str, template: &str) -> String {
    format!(
        r#"apiVersion: kubeflow.org/v1beta1
kind: Experiment
metadata:
  name: {name}
spec:
  objective: {{type: minimize, objectiveMetricName: loss}}
  algorithm: {{algorithmName: random}}
  parallelTrialCount: 1
  maxTrialCount: 1
  parameters:
    - {{name: x, parameterType: double, feasibleSpace: {{min: "0", max: "1"}}}}
  trialTemplate:
    trialParameters: [{{name: x, reference: x}}]
{template}"#
    )
}

fn experiment_with_when(when: &str) -> String {
    one_trial_experiment(
        "deep-when",
        &format!(
            r#"    trialSpec:
      apiVersion: sextant.dev/v1beta1
      kind: Pipeline
      spec:
        steps:
          - name: train
            when: '{when}'
            command: [echo, "loss=${{trialParameters.x}}"]
"#
        ),
    )
}

/// An invalid-input exit (2) with a short message holding every `needle`; never a signal.
fn assert_refused(output: &Output, what: &str, needles: &[&str]) {
    assert_eq!(output.status.code(), Some(2), "{what}: {}", explain(output));
    let stderr = String::from_utf8_lossy(&output.stderr);
    for needle in needles {
        assert!(stderr.contains(needle), "{what}: no {needle:?} in {stderr}");
    }
    assert!(
        stderr.len() < 4_000,
        "{what}: {} bytes of error text",
        stderr.len()
    );
}

#[test]
fn deep_when_expressions_are_errors_in_pipeline_run_compile_validate_and_run() {
    let scratch = Scratch::new();
    for (shape, when) in deep_expressions() {
        let pipeline = scratch.write("deep.yaml", &pipeline_with_when(&when));
        let pipeline = pipeline.display().to_string();
        let run = scratch.output(&["pipeline", "run", &pipeline, "--runs-dir", "runs"]);
        assert_refused(
            &run,
            &format!("pipeline run, {shape}"),
            &["spec.steps[1].when", "limit"],
        );
        let compile = scratch.output(&["pipeline", "compile", &pipeline, "--target", "argo"]);
        assert_refused(
            &compile,
            &format!("pipeline compile, {shape}"),
            &["spec.steps[1].when", "limit"],
        );

        let experiment = scratch.write("deep-experiment.yaml", &experiment_with_when(&when));
        let experiment = experiment.display().to_string();
        let field = "spec.trialTemplate.trialSpec.spec.steps[0].when";
        let validate = scratch.output(&["validate", &experiment]);
        assert_refused(
            &validate,
            &format!("validate, {shape}"),
            &[field, "step \"train\"", "limit"],
        );
        let db = scratch.db();
        let run = scratch.output(&["run", &experiment, "--db", &db]);
        assert_refused(&run, &format!("run, {shape}"), &[field, "limit"]);
    }
}

/// Processes (not zombies) whose environment holds `marker`, read from /proc.
fn processes_with_environment(marker: &str) -> Vec<u32> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").expect("/proc").flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        let zombie = stat
            .rfind(')')
            .and_then(|end| stat.get(end + 2..end + 3))
            .is_some_and(|state| state == "Z");
        let environ = std::fs::read(format!("/proc/{pid}/environ")).unwrap_or_default();
        if !zombie
            && environ
                .split(|byte| *byte == 0)
                .any(|entry| entry.starts_with(marker.as_bytes()))
        {
            found.push(pid);
        }
    }
    found
}

fn started_trials(trials_dir: &Path) -> usize {
    std::fs::read_dir(trials_dir)
        .map(|entries| {
            entries
                .flatten()
                .filter(|entry| entry.path().join("started").exists())
                .count()
        })
        .unwrap_or(0)
}

#[test]
fn a_million_parallel_trials_start_within_the_local_cap_and_ctrl_c_ends_them_all() {
    let scratch = Scratch::new();
    let file = scratch.write(
        "million.yaml",
        r#"apiVersion: kubeflow.org/v1beta1
kind: Experiment
metadata:
  name: million
spec:
  objective: {type: minimize, objectiveMetricName: loss}
  algorithm: {algorithmName: random}
  parallelTrialCount: 1000000
  maxTrialCount: 1000000
  parameters:
    - {name: x, parameterType: double, feasibleSpace: {min: "0", max: "1"}}
  trialTemplate:
    trialParameters: [{name: x, reference: x}]
    trialSpec:
      apiVersion: sextant.dev/v1beta1
      kind: Process
      spec:
        command: [sh, -c, 'touch "$SEXTANT_TRIAL_DIR/started"; exec sleep 300', sh, "${trialParameters.x}"]
"#,
    );
    let mut child = scratch
        .command(&[
            "run",
            &file.display().to_string(),
            "--db",
            &scratch.db(),
            "--max-parallel",
            "4",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn sextant run");
    let trials_dir = scratch.path().join(".sextant/million");
    let started = Instant::now();
    while started_trials(&trials_dir) < 4 && started.elapsed() < Duration::from_secs(60) {
        std::thread::sleep(Duration::from_millis(50));
    }
    let running = started_trials(&trials_dir);
    eprintln!(
        "{running} trials running {:?} after the start",
        started.elapsed()
    );
    assert_eq!(running, 4, "the capped trials did not all start");

    let interrupted = Instant::now();
    let signal = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .expect("kill");
    assert!(signal.success());
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break status;
        }
        if interrupted.elapsed() > Duration::from_secs(60) {
            let _ = child.kill();
            panic!("sextant run ignored Ctrl-C for a minute");
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    eprintln!("sextant run ended {:?} after Ctrl-C", interrupted.elapsed());
    assert_eq!(status.code(), Some(1), "an interrupted run exits 1");
    assert!(
        started_trials(&trials_dir) <= 4,
        "more trials than the cap started"
    );
    let marker = format!("SEXTANT_TRIAL_DIR={}", trials_dir.display());
    let left = processes_with_environment(&marker);
    assert!(
        left.is_empty(),
        "trial processes outlived the runner: {left:?}"
    );
}

#[test]
fn database_passwords_never_appear_in_any_output() {
    const PASSWORD: &str = "Sup3rSecretPassw0rd";
    let scratch = Scratch::new();
    // Trust authentication: the server accepts the connection whatever the password.
    let reachable = format!("postgres://postgres:{PASSWORD}@127.0.0.1:5432/test");
    let unreachable = format!("postgres://postgres:{PASSWORD}@127.0.0.1:1/test?connect_timeout=1");
    let invalid = scratch.write(
        "invalid.yaml",
        "apiVersion: kubeflow.org/v1beta1\nkind: Experiment\nmetadata: {name: Bad_Name}\nspec: {}\n",
    );
    let invalid = invalid.display().to_string();
    let mut commands: Vec<Vec<&str>> = vec![
        vec![
            "get",
            "experiment",
            "no-such-experiment-x",
            "--db",
            &reachable,
        ],
        vec!["get", "trials", "no-such-experiment-x", "--db", &reachable],
        vec!["get", "experiments", "--db", &reachable],
        vec!["run", &invalid, "--db", &reachable],
        vec!["pipeline", "get", "no-such-run", "--db", &reachable],
        vec!["pipeline", "resume", "no-such-run", "--db", &reachable],
    ];
    // Each waits for the store's connect timeout, so only one per program.
    commands.push(vec!["get", "experiment", "x", "--db", &unreachable]);
    commands.push(vec!["pipeline", "get", "x", "--db", &unreachable]);
    let mut outputs = Vec::new();
    for args in commands {
        let output = scratch
            .command(&args)
            .env("SEXTANT_LOG", "debug")
            .output()
            .expect("run sextant");
        outputs.push((args.join(" "), output));
    }
    for (command, output) in &outputs {
        for text in [&output.stdout, &output.stderr] {
            assert!(
                !String::from_utf8_lossy(text).contains(PASSWORD),
                "`sextant {command}` printed the password:\n{}",
                explain(output)
            );
        }
    }
    // The runs did say which database they meant, without its password.
    let (_, missing) = &outputs[0];
    let stderr = String::from_utf8_lossy(&missing.stderr);
    assert!(
        stderr.contains("postgres://postgres:***@127.0.0.1:5432/test"),
        "{}",
        explain(missing)
    );
}

#[test]
fn concurrent_trials_each_keep_all_their_file_metrics() {
    let scratch = Scratch::new();
    // Each trial rewrites its metrics file (`>`) several times, as a training script that
    // saves its latest numbers does; concurrent trials with a relative path must not share it.
    let file = scratch.write(
        "file-metrics.yaml",
        r#"apiVersion: kubeflow.org/v1beta1
kind: Experiment
metadata:
  name: file-metrics
spec:
  objective: {type: minimize, objectiveMetricName: loss}
  algorithm: {algorithmName: grid}
  parallelTrialCount: 4
  maxTrialCount: 8
  parameters:
    - {name: x, parameterType: discrete, feasibleSpace: {list: ["1", "22", "333", "4444", "5", "66", "777", "8888"]}}
  metricsCollectorSpec:
    collector: {kind: File}
    source: {fileSystemPath: {path: metrics.log, kind: File, format: TEXT}}
  trialTemplate:
    trialParameters: [{name: x, reference: x}]
    trialSpec:
      apiVersion: sextant.dev/v1beta1
      kind: Process
      spec:
        command:
          - sh
          - -c
          - 'for step in 1 2 3; do printf "epoch=%s\nloss=%s\n" "$step" "$1" > "$SEXTANT_TRIAL_DIR/metrics.log"; sleep 0.2; done'
          - sh
          - "${trialParameters.x}"
"#,
    );
    let (output, experiment) = scratch.run(&file);
    assert_eq!(output.status.code(), Some(0), "{}", explain(&output));
    assert_eq!(experiment["status"]["trialsSucceeded"], 8, "{experiment:#}");
    for trial in scratch.trials("file-metrics") {
        assert_eq!(trial["condition"], "Succeeded", "{trial:#}");
        let x = trial["parameterAssignments"][0]["value"]
            .as_str()
            .expect("x")
            .to_string();
        let metrics = trial["observation"]["metrics"].as_array().expect("metrics");
        let loss = metrics
            .iter()
            .find(|metric| metric["name"] == "loss")
            .expect("loss");
        assert_eq!(loss["latest"], x.as_str(), "{trial:#}");
        assert_eq!(loss["min"], x.as_str(), "{trial:#}");
    }
}

#[test]
fn a_config_map_template_outside_the_experiment_directory_is_refused() {
    let scratch = Scratch::new();
    let experiment_dir = scratch.path().join("experiment");
    let outside = scratch.path().join("outside");
    std::fs::create_dir_all(&experiment_dir).unwrap();
    std::fs::create_dir_all(&outside).unwrap();
    let template = "apiVersion: sextant.dev/v1beta1\nkind: Process\nspec:\n  command: [echo, \"loss=${trialParameters.x}\"]\n";
    std::fs::write(outside.join("template.yaml"), template).unwrap();
    std::fs::write(experiment_dir.join("template.yaml"), template).unwrap();
    std::os::unix::fs::symlink(
        outside.join("template.yaml"),
        experiment_dir.join("linked.yaml"),
    )
    .unwrap();
    let experiment_named = |name: &str, path: &str| {
        one_trial_experiment(
            name,
            &format!(
                r#"    configMap: {{configMapName: templates, templatePath: "{path}"}}
    primaryContainerName: training-container
    successCondition: status.done
    failureCondition: status.failed
"#
            ),
        )
    };
    let experiment = |path: &str| experiment_named("config-map", path);
    for path in ["../outside/template.yaml", "/etc/passwd", "linked.yaml"] {
        let file = experiment_dir.join("experiment.yaml");
        std::fs::write(&file, experiment(path)).unwrap();
        let (output, _) = scratch.run(&file);
        assert_refused(
            &output,
            path,
            &[
                "spec.trialTemplate.configMap",
                "the experiment file's directory",
            ],
        );
    }
    let file = experiment_dir.join("experiment.yaml");
    std::fs::write(&file, experiment("template.yaml")).unwrap();
    let (output, _) = scratch.run(&file);
    assert_eq!(output.status.code(), Some(0), "{}", explain(&output));
    // A directory the user names widens the confinement to it, and only to it.
    let widened = scratch.path().display().to_string();
    std::fs::write(
        &file,
        experiment_named("config-map-widened", "../outside/template.yaml"),
    )
    .unwrap();
    let (output, _) = scratch.run_with(&file, &["--template-dir", &widened]);
    assert_eq!(output.status.code(), Some(0), "{}", explain(&output));
    std::fs::write(
        &file,
        experiment_named("config-map-widened-2", "/etc/passwd"),
    )
    .unwrap();
    let (output, _) = scratch.run_with(&file, &["--template-dir", &widened]);
    assert_refused(&output, "/etc/passwd", &["--template-dir"]);
}

#[test]
fn pipeline_run_ids_cannot_leave_the_runs_directory() {
    let scratch = Scratch::new();
    let pipeline = scratch.write(
        "p.yaml",
        "apiVersion: sextant.dev/v1beta1\nkind: Pipeline\nmetadata: {name: p}\nspec:\n  steps: [{name: s, command: ['true']}]\n",
    );
    std::fs::create_dir_all(scratch.path().join("a/b/runs")).unwrap();
    let output = scratch.output(&[
        "pipeline",
        "run",
        &pipeline.display().to_string(),
        "--runs-dir",
        "a/b/runs",
        "--run-id",
        "../../x",
    ]);
    assert_refused(&output, "--run-id ../../x", &["run id `../../x`"]);
    assert!(!scratch.path().join("a/x").exists());
}

#[test]
fn huge_names_and_values_are_echoed_cut_with_a_marker() {
    let scratch = Scratch::new();
    let name = "n".repeat(1 << 20);
    let file = scratch.write(
        "huge-name.yaml",
        &format!(
            "apiVersion: kubeflow.org/v1beta1\nkind: Experiment\nmetadata: {{name: {name}}}\nspec: {{}}\n"
        ),
    );
    let output = scratch.output(&["validate", &file.display().to_string()]);
    assert_refused(&output, "a 1 MB name", &["metadata.name", "bytes in all"]);

    // A categorical value as long as one argv item may be (128 KiB) is still printed short.
    let value = "v".repeat(100_000);
    let file = scratch.write(
        "huge-value.yaml",
        &format!(
            r#"apiVersion: kubeflow.org/v1beta1
kind: Experiment
metadata:
  name: huge-value
spec:
  objective: {{type: minimize, objectiveMetricName: loss}}
  algorithm: {{algorithmName: grid}}
  parallelTrialCount: 1
  maxTrialCount: 1
  parameters:
    - {{name: c, parameterType: categorical, feasibleSpace: {{list: ["{value}"]}}}}
  trialTemplate:
    trialParameters: [{{name: c, reference: c}}]
    trialSpec:
      apiVersion: sextant.dev/v1beta1
      kind: Process
      spec:
        command: [sh, -c, 'echo loss=1', sh, "${{trialParameters.c}}"]
"#
        ),
    );
    let output = scratch.output(&["run", &file.display().to_string(), "--db", &scratch.db()]);
    assert_eq!(output.status.code(), Some(0), "{}", explain(&output));
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(stdout.contains("bytes in all"), "{stdout}");
    assert!(
        stdout.len() + output.stderr.len() < 10_000,
        "{} bytes printed",
        stdout.len() + output.stderr.len()
    );
}
