//! `sextant server` as a process: Katib's gRPC beside the HTTP API on one port, the bind
//! policy, and a SIGKILL mid-experiment after which a restarted server ends the experiment with
//! exactly `maxTrialCount` completed trials.

use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::Value;
use sextant_proto::health::HealthCheckRequest;
use sextant_proto::health::health_check_response::ServingStatus;
use sextant_proto::health::health_client::HealthClient;

use crate::support::ServerProcess;

async fn get(client: &reqwest::Client, url: &str) -> Value {
    client.get(url).send().await.unwrap().json().await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpc_and_http_share_one_port() {
    let dir = tempfile::tempdir().unwrap();
    let server = ServerProcess::start(dir.path()).expect("sextant server starts");
    let mut health = HealthClient::connect(format!("http://{}", server.address))
        .await
        .expect("gRPC connects");
    let reply = health
        .check(HealthCheckRequest {
            service: "api.v1.beta1.Suggestion".into(),
        })
        .await
        .expect("the health service answers")
        .into_inner();
    assert_eq!(reply.status, ServingStatus::Serving as i32);
    let listed = get(&reqwest::Client::new(), &server.url("/experiments")).await;
    assert_eq!(listed["experiments"], serde_json::json!([]));
}

#[test]
fn a_non_loopback_address_needs_a_token() {
    let dir = tempfile::tempdir().unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_sextant"))
        .args(["server", "--listen", "0.0.0.0:0"])
        .arg("--db")
        .arg(format!(
            "sqlite://{}",
            dir.path().join("sextant.db").display()
        ))
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("without a token") && stderr.contains("--token-file"),
        "{stderr}"
    );
    assert!(
        !dir.path().join("sextant.db").exists(),
        "nothing was opened"
    );
    let short = dir.path().join("token");
    std::fs::write(&short, "abc\n").unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_sextant"))
        .args(["server", "--listen", "0.0.0.0:0", "--token-file"])
        .arg(&short)
        .output()
        .unwrap();
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("at least 16"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_killed_mid_experiment_ends_it_with_exactly_max_trial_count_after_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let client = reqwest::Client::new();
    let spec = r#"
apiVersion: kubeflow.org/v1beta1
kind: Experiment
metadata: {name: survivor}
spec:
  objective: {type: minimize, objectiveMetricName: loss}
  algorithm: {algorithmName: random, algorithmSettings: [{name: random_state, value: "3"}]}
  parallelTrialCount: 3
  maxTrialCount: 12
  parameters:
    - {name: x, parameterType: double, feasibleSpace: {min: "0", max: "1"}}
  trialTemplate:
    trialParameters: [{name: x, reference: x}]
    trialSpec:
      apiVersion: sextant.dev/v1beta1
      kind: Process
      spec:
        command: [python3, -c, "import sys, time; time.sleep(0.3); print('loss=' + sys.argv[1])", "${trialParameters.x}"]
"#;
    let mut server = ServerProcess::start(dir.path()).expect("sextant server starts");
    let response = client
        .post(server.url("/experiments"))
        .header("content-type", "application/yaml")
        .body(spec)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), reqwest::StatusCode::CREATED);
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let experiment = get(&client, &server.url("/experiments/survivor")).await;
        if experiment["status"]["trialsSucceeded"]
            .as_i64()
            .unwrap_or(0)
            >= 4
        {
            break;
        }
        assert!(Instant::now() < deadline, "no progress before the kill");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    server.child.kill().expect("SIGKILL the server");
    server.child.wait().unwrap();

    let server = ServerProcess::start(dir.path()).expect("sextant server starts");
    let deadline = Instant::now() + Duration::from_secs(120);
    let experiment = loop {
        let experiment = get(&client, &server.url("/experiments/survivor")).await;
        let succeeded = experiment["status"]["conditions"]
            .as_array()
            .is_some_and(|conditions| {
                conditions.iter().any(|condition| {
                    condition["type"] == "Succeeded" && condition["status"] == "True"
                })
            });
        if succeeded {
            break experiment;
        }
        assert!(
            Instant::now() < deadline,
            "not resumed to the end: {experiment}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(experiment["status"]["trialsSucceeded"], 12, "{experiment}");
    let trials = get(&client, &server.url("/experiments/survivor/trials")).await;
    assert_eq!(trials["total"], 12, "{trials}");
    assert!(
        trials["trials"]
            .as_array()
            .unwrap()
            .iter()
            .all(|trial| trial["condition"] == "Succeeded"),
        "{trials}"
    );
}

#[test]
fn the_command_line_submits_waits_reads_logs_and_stops_through_a_server() {
    let dir = tempfile::tempdir().unwrap();
    let server = ServerProcess::start(dir.path()).expect("sextant server starts");
    let url = format!("http://{}", server.address);
    let file = dir.path().join("remote.yaml");
    let spec = r#"
apiVersion: kubeflow.org/v1beta1
kind: Experiment
metadata: {name: remote}
spec:
  objective: {type: maximize, objectiveMetricName: score}
  algorithm: {algorithmName: grid}
  parallelTrialCount: 2
  maxTrialCount: 3
  parameters:
    - {name: x, parameterType: int, feasibleSpace: {min: "1", max: "3"}}
  trialTemplate:
    trialParameters: [{name: x, reference: x}]
    trialSpec:
      apiVersion: sextant.dev/v1beta1
      kind: Process
      spec:
        command: [python3, -c, "import sys; print('step'); print('score=' + sys.argv[1])", "${trialParameters.x}"]
"#;
    std::fs::write(&file, spec).unwrap();
    let sextant = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_sextant"))
            .args(args)
            .args(["--server", &url])
            .output()
            .unwrap()
    };
    let submitted = sextant(&["submit", file.to_str().unwrap(), "--wait"]);
    assert_eq!(
        submitted.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&submitted.stderr)
    );
    let experiment: Value = serde_json::from_slice(&submitted.stdout).unwrap();
    let best = &experiment["status"]["currentOptimalTrial"];
    assert_eq!(
        best["parameterAssignments"][0]["value"], "3",
        "{experiment}"
    );

    let trial = best["bestTrialName"].as_str().unwrap();
    let logs = sextant(&["logs", trial, "--tail", "1"]);
    assert_eq!(logs.status.code(), Some(0));
    assert_eq!(String::from_utf8_lossy(&logs.stdout).trim(), "score=3");
    let followed = sextant(&["logs", trial, "--follow"]);
    assert_eq!(String::from_utf8_lossy(&followed.stdout), "step\nscore=3\n");

    // Refusals keep the server's message and map to exit codes: a second submission of the
    // same name conflicts (1), an invalid spec is invalid input (2), stopping a finished
    // experiment conflicts (1).
    let again = sextant(&["submit", file.to_str().unwrap()]);
    assert_eq!(again.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&again.stderr).contains("exists already"));
    std::fs::write(
        &file,
        spec.replace("maxTrialCount: 3", "maxTrialCount: -3")
            .replace("name: remote", "name: other"),
    )
    .unwrap();
    let invalid = sextant(&["submit", file.to_str().unwrap()]);
    assert_eq!(invalid.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&invalid.stderr).contains("spec.maxTrialCount"),
        "{}",
        String::from_utf8_lossy(&invalid.stderr)
    );
    let stop = sextant(&["stop", "remote"]);
    assert_eq!(stop.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&stop.stderr).contains("409"));
}
