//! The command line against a real `sextant server` process: `get --server` prints what `get`
//! prints from the same store, `pipeline run --server [--wait]` ends with the run's outcome as
//! its exit code, and `schedule` creates a recurring run that fires, lists, disables and
//! deletes it.

use std::path::Path;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::support::{ServerProcess, explain};

/// `sextant ARGS...` in `dir`.
fn sextant(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_sextant"))
        .args(args)
        .current_dir(dir)
        .env("SEXTANT_LOG", "warn")
        .env_remove("SEXTANT_URL")
        .env_remove("SEXTANT_DB")
        .env_remove("SEXTANT_TOKEN_FILE")
        .output()
        .expect("run sextant")
}

/// The JSON a GET of `url` answers.
fn get_json(url: &str) -> Value {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async { reqwest::get(url).await.unwrap().json().await.unwrap() })
}

fn json(output: &Output) -> Value {
    serde_json::from_slice(&output.stdout)
        .unwrap_or_else(|error| panic!("stdout is not JSON ({error}): {}", explain(output)))
}

const EXPERIMENT: &str = r#"
apiVersion: kubeflow.org/v1beta1
kind: Experiment
metadata: {name: shown}
spec:
  objective: {type: minimize, objectiveMetricName: loss, additionalMetricNames: [accuracy]}
  algorithm: {algorithmName: grid}
  parallelTrialCount: 2
  maxTrialCount: 4
  parameters:
    - {name: x, parameterType: int, feasibleSpace: {min: "1", max: "4"}}
  trialTemplate:
    trialParameters: [{name: x, reference: x}]
    trialSpec:
      apiVersion: sextant.dev/v1beta1
      kind: Process
      spec:
        command: [python3, -c, "import sys; x = int(sys.argv[1]); print(f'loss={(x - 3) ** 2}'); print(f'accuracy={x / 10}')", "${trialParameters.x}"]
"#;

#[test]
fn get_through_a_server_prints_what_get_prints_from_its_store() {
    let dir = tempfile::tempdir().unwrap();
    let server = ServerProcess::start(dir.path()).expect("sextant server starts");
    let url = format!("http://{}", server.address);
    let db = format!("sqlite://{}", dir.path().join("sextant.db").display());
    std::fs::write(dir.path().join("shown.yaml"), EXPERIMENT).unwrap();
    let submitted = sextant(
        dir.path(),
        &["submit", "shown.yaml", "--wait", "--server", &url],
    );
    assert_eq!(submitted.status.code(), Some(0), "{}", explain(&submitted));

    for what in [
        &["experiments"][..],
        &["experiment", "shown"],
        &["trials", "shown"],
    ] {
        for format in ["table", "json"] {
            let args = |source: &[&str]| {
                let mut args = vec!["get"];
                args.extend(what);
                args.extend(["-o", format]);
                args.extend(source);
                sextant(dir.path(), &args)
            };
            let local = args(&["--db", &db]);
            let remote = args(&["--server", &url]);
            assert_eq!(local.status.code(), Some(0), "{}", explain(&local));
            assert_eq!(remote.status.code(), Some(0), "{}", explain(&remote));
            assert_eq!(
                String::from_utf8_lossy(&remote.stdout),
                String::from_utf8_lossy(&local.stdout),
                "get {what:?} -o {format}"
            );
        }
    }
    // The output is the real thing, not two empty answers: the best trial leads the table.
    let trials = sextant(dir.path(), &["get", "trials", "shown", "--server", &url]);
    let table = String::from_utf8_lossy(&trials.stdout);
    let rows: Vec<&str> = table.lines().collect();
    assert_eq!(rows.len(), 5, "{table}");
    assert!(
        rows[1].contains("Succeeded") && rows[1].ends_with("x=3"),
        "{table}"
    );

    // One source at a time; a name the server does not have is its refusal.
    let both = sextant(
        dir.path(),
        &["get", "experiments", "--server", &url, "--db", &db],
    );
    assert_eq!(both.status.code(), Some(2), "{}", explain(&both));
    assert!(
        String::from_utf8_lossy(&both.stderr).contains("cannot be used with"),
        "{}",
        explain(&both)
    );
    let missing = sextant(dir.path(), &["get", "experiment", "nope", "--server", &url]);
    assert_eq!(missing.status.code(), Some(1), "{}", explain(&missing));
    assert!(String::from_utf8_lossy(&missing.stderr).contains("404"));
}

/// A pipeline whose `prepare` step writes `count.txt` from `rows` and whose `train` step exits
/// with `code`.
fn pipeline(name: &str, code: u8) -> String {
    format!(
        r#"apiVersion: sextant.dev/v1beta1
kind: Pipeline
metadata: {{name: {name}}}
spec:
  params: [{{name: rows, default: "1"}}]
  steps:
    - name: prepare
      command: [python3, -c, "import sys; open('count.txt', 'w').write(sys.argv[1])", "{{{{params.rows}}}}"]
      outputs: {{params: [{{name: count, path: count.txt}}]}}
    - name: train
      command: [python3, -c, "import sys; print('rows', sys.argv[1]); sys.exit({code})", "{{{{steps.prepare.outputs.params.count}}}}"]
"#
    )
}

#[test]
fn pipeline_run_through_a_server_exits_with_the_runs_outcome() {
    let dir = tempfile::tempdir().unwrap();
    let server = ServerProcess::start(dir.path()).expect("sextant server starts");
    let url = format!("http://{}", server.address);
    std::fs::write(dir.path().join("good.yaml"), pipeline("good", 0)).unwrap();
    std::fs::write(dir.path().join("bad.yaml"), pipeline("bad", 3)).unwrap();
    std::fs::write(
        dir.path().join("invalid.yaml"),
        pipeline("invalid", 0).replace(
            "command: [python3, -c, \"import sys; open",
            "command: []\n      args: [\"import sys; open",
        ),
    )
    .unwrap();

    let run = |args: &[&str]| {
        let mut all = vec!["pipeline", "run"];
        all.extend(args);
        all.extend(["--server", &url]);
        sextant(dir.path(), &all)
    };
    let succeeded = run(&[
        "good.yaml",
        "--param",
        "rows=7",
        "--run-id",
        "good-1",
        "--wait",
    ]);
    assert_eq!(succeeded.status.code(), Some(0), "{}", explain(&succeeded));
    let shown = json(&succeeded);
    assert_eq!(shown["runId"], "good-1");
    assert_eq!(shown["phase"], "Succeeded", "{shown:#}");
    assert_eq!(shown["params"]["rows"], "7");
    let steps = shown["steps"].as_array().unwrap();
    assert!(
        steps.iter().all(|step| step["phase"] == "Succeeded"),
        "{shown:#}"
    );
    assert_eq!(steps[0]["outputParams"]["count"], "7", "{shown:#}");

    // Without --wait the command prints the run as it started and exits 0 whatever comes.
    let started = run(&["bad.yaml", "--run-id", "bad-1"]);
    assert_eq!(started.status.code(), Some(0), "{}", explain(&started));
    assert_eq!(json(&started)["runId"], "bad-1");
    let failed = run(&["bad.yaml", "--wait"]);
    assert_eq!(failed.status.code(), Some(1), "{}", explain(&failed));
    let shown = json(&failed);
    assert_eq!(shown["phase"], "Failed", "{shown:#}");
    assert_eq!(shown["steps"][1]["step"], "train");
    assert_eq!(shown["steps"][1]["phase"], "Failed", "{shown:#}");

    // Invalid input: the spec's problems by field path, an unknown parameter, a local-only
    // option with --server; nothing is run.
    let invalid = run(&["invalid.yaml", "--wait"]);
    assert_eq!(invalid.status.code(), Some(2), "{}", explain(&invalid));
    let stderr = String::from_utf8_lossy(&invalid.stderr);
    assert!(
        stderr.contains("pipeline.spec.steps[0].command")
            && stderr.contains("pipeline.spec.steps[0].args"),
        "{stderr}"
    );
    let unknown = run(&["good.yaml", "--param", "nope=1"]);
    assert_eq!(unknown.status.code(), Some(2), "{}", explain(&unknown));
    assert!(String::from_utf8_lossy(&unknown.stderr).contains("params.nope"));
    let local_only = run(&["good.yaml", "--runs-dir", "runs"]);
    assert_eq!(
        local_only.status.code(),
        Some(2),
        "{}",
        explain(&local_only)
    );
    let wait_here = sextant(dir.path(), &["pipeline", "run", "good.yaml", "--wait"]);
    assert_eq!(wait_here.status.code(), Some(2), "{}", explain(&wait_here));
    let runs = get_json(&server.url("/runs"));
    let ids: Vec<&str> = runs["runs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|run| run["runId"].as_str().unwrap())
        .collect();
    assert_eq!(ids.len(), 3, "{runs:#}");
}

#[test]
fn schedule_creates_a_recurring_run_that_fires_and_lists_disables_and_deletes_it() {
    let dir = tempfile::tempdir().unwrap();
    let server = ServerProcess::start(dir.path()).expect("sextant server starts");
    let url = format!("http://{}", server.address);
    std::fs::write(
        dir.path().join("tick.yaml"),
        r#"apiVersion: sextant.dev/v1beta1
kind: Pipeline
metadata: {name: tick}
spec:
  params: [{name: label}]
  steps:
    - name: work
      cache: false
      command: [python3, -c, "import sys; print('tick', sys.argv[1])", "{{params.label}}"]
"#,
    )
    .unwrap();
    let schedule = |args: &[&str]| {
        let mut all = vec!["schedule"];
        all.extend(args);
        all.extend(["--server", &url]);
        sextant(dir.path(), &all)
    };

    for (args, field) in [
        (
            &["--param", "label=x", "--cron", "61 * * * *"][..],
            "schedule.cron",
        ),
        (&["--cron", "* * * * *"], "params.label"),
        (
            &[
                "--param",
                "label=x",
                "--cron",
                "* * * * *",
                "--max-concurrency",
                "11",
            ],
            "maxConcurrency",
        ),
    ] {
        let mut all = vec!["create", "bad", "--pipeline", "tick.yaml"];
        all.extend(args);
        let refused = schedule(&all);
        assert_eq!(refused.status.code(), Some(2), "{}", explain(&refused));
        assert!(
            String::from_utf8_lossy(&refused.stderr).contains(field),
            "{field}: {}",
            explain(&refused)
        );
    }

    let created = schedule(&[
        "create",
        "ticker",
        "--pipeline",
        "tick.yaml",
        "--cron",
        "*/1 * * * * *",
        "--param",
        "label=every-second",
        "--max-concurrency",
        "1",
        "--no-catchup",
    ]);
    assert_eq!(created.status.code(), Some(0), "{}", explain(&created));
    let shown = json(&created);
    assert_eq!(shown["name"], "ticker");
    assert_eq!(shown["pipelineName"], "tick");
    assert_eq!(shown["schedule"]["cron"], "*/1 * * * * *");
    assert_eq!(shown["params"]["label"], "every-second");
    assert_eq!(shown["maxConcurrency"], 1);
    assert_eq!(shown["noCatchup"], true);
    assert_eq!(shown["enabled"], true);

    // It fires, and its runs run the pipeline with its parameters.
    let deadline = Instant::now() + Duration::from_secs(30);
    let run_id = loop {
        let got = schedule(&["get", "ticker"]);
        assert_eq!(got.status.code(), Some(0), "{}", explain(&got));
        let shown = json(&got);
        if let Some(run) = shown["runs"].as_array().and_then(|runs| runs.first()) {
            break run.as_str().unwrap().to_string();
        }
        assert!(Instant::now() < deadline, "never fired: {shown:#}");
        std::thread::sleep(Duration::from_millis(200));
    };
    assert!(run_id.starts_with("ticker-"), "{run_id}");
    let run = loop {
        let run = get_json(&server.url(&format!("/runs/{run_id}")));
        if run["phase"] != "Pending" && run["phase"] != "Running" {
            break run;
        }
        assert!(Instant::now() < deadline, "the run did not end: {run:#}");
        std::thread::sleep(Duration::from_millis(200));
    };
    assert_eq!(run["phase"], "Succeeded", "{run:#}");
    assert_eq!(run["params"]["label"], "every-second", "{run:#}");

    let listed = schedule(&["list"]);
    assert_eq!(listed.status.code(), Some(0), "{}", explain(&listed));
    let names: Vec<Value> = json(&listed)
        .as_array()
        .unwrap()
        .iter()
        .map(|view| view["name"].clone())
        .collect();
    assert_eq!(names, ["ticker"]);

    let disabled = schedule(&["disable", "ticker"]);
    assert_eq!(disabled.status.code(), Some(0), "{}", explain(&disabled));
    let shown = json(&disabled);
    assert_eq!(shown["enabled"], false);
    assert!(shown["nextFiring"].is_null(), "{shown:#}");
    let enabled = schedule(&["enable", "ticker"]);
    assert_eq!(json(&enabled)["enabled"], true, "{}", explain(&enabled));

    // Created disabled, with a window: the fields reach the server as given.
    let later = schedule(&[
        "create",
        "later",
        "--pipeline",
        "tick.yaml",
        "--cron",
        "0 0 * * *",
        "--param",
        "label=later",
        "--start-time",
        "2099-01-01T00:00:00Z",
        "--end-time",
        "2100-01-01T00:00:00Z",
        "--disabled",
    ]);
    assert_eq!(later.status.code(), Some(0), "{}", explain(&later));
    let shown = json(&later);
    assert_eq!(shown["enabled"], false);
    assert_eq!(shown["maxConcurrency"], 10);
    assert_eq!(shown["noCatchup"], false);
    assert_eq!(shown["schedule"]["startTime"], "2099-01-01T00:00:00Z");
    assert_eq!(shown["schedule"]["endTime"], "2100-01-01T00:00:00Z");

    for name in ["ticker", "later"] {
        let deleted = schedule(&["delete", name]);
        assert_eq!(deleted.status.code(), Some(0), "{}", explain(&deleted));
        assert!(deleted.stdout.is_empty());
    }
    let gone = schedule(&["get", "ticker"]);
    assert_eq!(gone.status.code(), Some(1), "{}", explain(&gone));
    assert!(String::from_utf8_lossy(&gone.stderr).contains("404"));
    assert_eq!(json(&schedule(&["list"])), serde_json::json!([]));
}
