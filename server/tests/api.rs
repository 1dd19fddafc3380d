//! The HTTP API over real HTTP on loopback, with a real SQLite store and trials as real
//! processes (`python3`).

use std::path::{Path, PathBuf};
use std::time::Duration;

use futures::StreamExt;
use reqwest::StatusCode;
use serde_json::{Value, json};
use sextant_server::{Server, ServerConfig, Token};
use sextant_store::Store;

/// Branin, printed in Katib's TEXT format; sleeps `SLEEP` seconds first when set.
const BRANIN: &str = r#"
import math, os, sys, time
args = dict(a.lstrip("-").split("=", 1) for a in sys.argv[1:])
time.sleep(float(os.environ.get("SLEEP", "0")))
x1, x2 = float(args["x1"]), float(args["x2"])
b, c, t = 5.1 / (4 * math.pi ** 2), 5 / math.pi, 1 / (8 * math.pi)
print("loss=%r" % ((x2 - b * x1 ** 2 + c * x1 - 6) ** 2 + 10 * (1 - t) * math.cos(x1) + 10))
"#;

struct TestServer {
    base: String,
    server: Server,
    client: reqwest::Client,
    dir: tempfile::TempDir,
    token: Option<String>,
}

impl TestServer {
    async fn start(token: Option<&str>) -> TestServer {
        TestServer::start_with(token, 8).await
    }

    /// A server whose `--max-parallel-trials` is `max_parallel_trials`.
    async fn start_with(token: Option<&str>, max_parallel_trials: usize) -> TestServer {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::connect(&format!(
            "sqlite://{}",
            dir.path().join("sextant.db").display()
        ))
        .await
        .unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let config = ServerConfig {
            data_dir: dir.path().join("data"),
            max_parallel_trials,
            token: token.map(|token| Token::parse(token).unwrap()),
            max_body_bytes: 64 * 1024,
            url: Some(url.clone()),
            artifacts: None,
        };
        let server = Server::start(store, config).await.unwrap();
        let base = format!("{url}/api/v1");
        tokio::spawn(axum::serve(listener, server.router()).into_future());
        std::fs::write(dir.path().join("branin.py"), BRANIN).unwrap();
        TestServer {
            base,
            server,
            client: reqwest::Client::new(),
            dir,
            token: token.map(str::to_string),
        }
    }

    fn script(&self) -> PathBuf {
        self.dir.path().join("branin.py")
    }

    fn request(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        let request = self.client.request(method, format!("{}{path}", self.base));
        match &self.token {
            Some(token) => request.bearer_auth(token),
            None => request,
        }
    }

    async fn get(&self, path: &str) -> (StatusCode, Value) {
        let response = self
            .request(reqwest::Method::GET, path)
            .send()
            .await
            .unwrap();
        let status = response.status();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    async fn post_yaml(&self, path: &str, body: &str) -> (StatusCode, Value) {
        let response = self
            .request(reqwest::Method::POST, path)
            .header("content-type", "application/yaml")
            .body(body.to_string())
            .send()
            .await
            .unwrap();
        let status = response.status();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    async fn post_json(&self, path: &str, body: Value) -> (StatusCode, Value) {
        let response = self
            .request(reqwest::Method::POST, path)
            .json(&body)
            .send()
            .await
            .unwrap();
        let status = response.status();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    /// Waits until the experiment's latest true condition is `condition`.
    async fn wait_for(&self, name: &str, condition: &str) -> Value {
        for _ in 0..600 {
            let (_, experiment) = self.get(&format!("/experiments/{name}")).await;
            if latest_condition(&experiment).as_deref() == Some(condition) {
                return experiment;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("experiment {name} never became {condition}");
    }
}

fn latest_condition(experiment: &Value) -> Option<String> {
    experiment["status"]["conditions"]
        .as_array()?
        .iter()
        .rev()
        .find(|condition| condition["status"] == "True")
        .and_then(|condition| condition["type"].as_str())
        .map(str::to_string)
}

fn branin_experiment(
    name: &str,
    script: &Path,
    max_trials: u32,
    parallel: u32,
    sleep: f64,
) -> String {
    format!(
        r#"
apiVersion: kubeflow.org/v1beta1
kind: Experiment
metadata: {{name: {name}}}
spec:
  objective: {{type: minimize, objectiveMetricName: loss}}
  algorithm: {{algorithmName: random, algorithmSettings: [{{name: random_state, value: "3"}}]}}
  parallelTrialCount: {parallel}
  maxTrialCount: {max_trials}
  parameters:
    - {{name: x1, parameterType: double, feasibleSpace: {{min: "-5", max: "10"}}}}
    - {{name: x2, parameterType: double, feasibleSpace: {{min: "0", max: "15"}}}}
  trialTemplate:
    trialParameters:
      - {{name: x1, reference: x1}}
      - {{name: x2, reference: x2}}
    trialSpec:
      apiVersion: sextant.dev/v1beta1
      kind: Process
      spec:
        command: [python3, "{script}", "--x1=${{trialParameters.x1}}", "--x2=${{trialParameters.x2}}"]
        env: [{{name: SLEEP, value: "{sleep}"}}]
"#,
        script = script.display()
    )
}

/// Server-Sent Events as (event, data) pairs, read from a streaming response.
struct Events {
    stream: futures::stream::BoxStream<'static, reqwest::Result<axum::body::Bytes>>,
    buffer: String,
}

impl Events {
    async fn open(server: &TestServer, query: &str) -> Events {
        let response = server
            .request(reqwest::Method::GET, &format!("/events{query}"))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        assert!(
            response.headers()["content-type"]
                .to_str()
                .unwrap()
                .starts_with("text/event-stream")
        );
        Events {
            stream: response.bytes_stream().boxed(),
            buffer: String::new(),
        }
    }

    async fn next(&mut self) -> (String, Value) {
        loop {
            if let Some(end) = self.buffer.find("\n\n") {
                let block: String = self.buffer.drain(..end + 2).collect();
                let mut event = String::new();
                let mut data = String::new();
                for line in block.lines() {
                    if let Some(value) = line.strip_prefix("event:") {
                        event = value.trim().to_string();
                    } else if let Some(value) = line.strip_prefix("data:") {
                        data.push_str(value.trim());
                    }
                }
                if event.is_empty() {
                    continue; // a keep-alive comment
                }
                return (event, serde_json::from_str(&data).unwrap());
            }
            let chunk = tokio::time::timeout(Duration::from_secs(60), self.stream.next())
                .await
                .expect("no event within a minute")
                .expect("the event stream ended")
                .unwrap();
            self.buffer.push_str(&String::from_utf8_lossy(&chunk));
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_submitted_experiment_is_watched_to_success_with_its_optimal_trial() {
    let server = TestServer::start(None).await;
    let mut events = Events::open(&server, "?experiment=watched").await;
    let (status, created) = server
        .post_yaml(
            "/experiments",
            &branin_experiment("watched", &server.script(), 6, 3, 0.0),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    assert_eq!(created["metadata"]["name"], "watched");

    let mut trial_conditions: std::collections::BTreeMap<String, Vec<String>> = Default::default();
    loop {
        let (kind, data) = events.next().await;
        match kind.as_str() {
            "trial" => trial_conditions
                .entry(data["name"].as_str().unwrap().to_string())
                .or_default()
                .push(data["condition"].as_str().unwrap().to_string()),
            "experiment" if data["condition"] == "Succeeded" => {
                assert_eq!(data["trialsSucceeded"], 6);
                break;
            }
            "experiment" => assert_eq!(data["name"], "watched"),
            other => panic!("unexpected event {other}: {data}"),
        }
    }
    assert_eq!(trial_conditions.len(), 6);
    for (trial, conditions) in &trial_conditions {
        assert_eq!(
            conditions.first().map(String::as_str),
            Some("Created"),
            "{trial}"
        );
        assert_eq!(
            conditions.last().map(String::as_str),
            Some("Succeeded"),
            "{trial}"
        );
    }

    let experiment = server.wait_for("watched", "Succeeded").await;
    let (_, trials) = server
        .get("/experiments/watched/trials?orderBy=objective")
        .await;
    assert_eq!(trials["total"], 6);
    let best = &trials["trials"][0];
    let values: Vec<f64> = trials["trials"]
        .as_array()
        .unwrap()
        .iter()
        .map(|trial| trial["objectiveValue"].as_f64().unwrap())
        .collect();
    assert!(
        values.windows(2).all(|pair| pair[0] <= pair[1]),
        "{values:?}"
    );
    assert_eq!(
        experiment["status"]["currentOptimalTrial"]["bestTrialName"],
        best["name"]
    );

    // Pages cover the trials once, in creation order.
    let (_, first) = server.get("/experiments/watched/trials?pageSize=4").await;
    let token = first["nextPageToken"].as_str().unwrap();
    let (_, second) = server
        .get(&format!(
            "/experiments/watched/trials?pageSize=4&pageToken={token}"
        ))
        .await;
    assert_eq!(first["trials"].as_array().unwrap().len(), 4);
    assert_eq!(second["trials"].as_array().unwrap().len(), 2);
    assert!(second.get("nextPageToken").is_none());

    // Pages the store reads one at a time are the list cut from all trials (as a page too large
    // for the store to read alone is), either way and within a condition.
    for query in [
        "",
        "&descending=true",
        "&condition=Succeeded",
        "&condition=Failed&descending=true",
    ] {
        let (_, whole) = server
            .get(&format!("/experiments/watched/trials?pageSize=5000{query}"))
            .await;
        let mut paged = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let next = token
                .as_ref()
                .map(|token| format!("&pageToken={token}"))
                .unwrap_or_default();
            let (_, page) = server
                .get(&format!(
                    "/experiments/watched/trials?pageSize=4{query}{next}"
                ))
                .await;
            assert_eq!(page["total"], whole["total"], "{query}");
            paged.extend(page["trials"].as_array().unwrap().iter().cloned());
            match page.get("nextPageToken") {
                Some(next) => token = Some(next.as_str().unwrap().to_owned()),
                None => break,
            }
        }
        assert_eq!(Value::Array(paged), whole["trials"], "{query}");
    }

    // Any column the table shows orders the list, either way.
    let column = |trials: &Value, read: &dyn Fn(&Value) -> Value| -> Vec<Value> {
        trials["trials"]
            .as_array()
            .unwrap()
            .iter()
            .map(read)
            .collect()
    };
    let x1 = |trial: &Value| {
        let value = trial["parameterAssignments"]
            .as_array()
            .unwrap()
            .iter()
            .find(|assignment| assignment["name"] == "x1")
            .unwrap()["value"]
            .as_str()
            .unwrap()
            .parse::<f64>()
            .unwrap();
        json!(value)
    };
    let (status, by_x1) = server
        .get("/experiments/watched/trials?orderBy=parameter&parameter=x1&descending=true")
        .await;
    assert_eq!(status, StatusCode::OK, "{by_x1}");
    let values: Vec<f64> = column(&by_x1, &x1)
        .iter()
        .map(|value| value.as_f64().unwrap())
        .collect();
    assert_eq!(values.len(), 6);
    assert!(
        values.windows(2).all(|pair| pair[0] >= pair[1]),
        "{values:?}"
    );
    let (_, by_name) = server
        .get("/experiments/watched/trials?orderBy=name&descending=true")
        .await;
    let names = column(&by_name, &|trial| trial["name"].clone());
    let mut sorted = names.clone();
    sorted.sort_by(|a, b| b.as_str().cmp(&a.as_str()));
    assert_eq!(names, sorted);
    let (_, worst) = server
        .get("/experiments/watched/trials?orderBy=objective&descending=true")
        .await;
    assert_eq!(
        column(&worst, &|trial| trial["objectiveValue"].clone()).last(),
        Some(&best["objectiveValue"])
    );
    // Only what changed since a time: the last change seen, and nothing after the future.
    let newest = column(&by_name, &|trial| trial["updatedAt"].clone())
        .into_iter()
        .map(|time| {
            time.as_str()
                .unwrap()
                .parse::<chrono::DateTime<chrono::Utc>>()
                .unwrap()
        })
        .max()
        .unwrap();
    let since = |time: chrono::DateTime<chrono::Utc>| {
        format!(
            "/experiments/watched/trials?updatedSince={}",
            time.to_rfc3339_opts(chrono::SecondsFormat::Nanos, true)
                .replace('+', "%2B")
        )
    };
    let (_, changed) = server.get(&since(newest)).await;
    let changed = changed["trials"].as_array().unwrap();
    assert!(
        !changed.is_empty() && changed.len() < 6,
        "only the latest change: {changed:?}"
    );
    let (_, none) = server
        .get(&since(newest + chrono::Duration::seconds(1)))
        .await;
    assert_eq!(none["total"], 0, "{none}");
    for (query, field) in [
        ("updatedSince=yesterday", "updatedSince"),
        ("orderBy=parameter&parameter=nope", "parameter"),
        ("orderBy=parameter", "parameter"),
        ("orderBy=name&parameter=x1", "parameter"),
        ("orderBy=size", "orderBy"),
    ] {
        let (status, body) = server
            .get(&format!("/experiments/watched/trials?{query}"))
            .await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{query}: {body}");
        assert_eq!(body["error"]["fields"][0]["path"], field, "{query}: {body}");
    }

    // One trial, its metric series and its output.
    let name = best["name"].as_str().unwrap();
    let (status, trial) = server.get(&format!("/trials/{name}")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(trial["condition"], "Succeeded");
    let (_, log) = server.get(&format!("/trials/{name}/observations")).await;
    let reported = log["metricLogs"][0]["metric"]["value"]
        .as_str()
        .unwrap()
        .parse::<f64>()
        .unwrap();
    assert_eq!(Some(reported), best["objectiveValue"].as_f64());
    let output = server
        .request(reqwest::Method::GET, &format!("/trials/{name}/log?tail=1"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(output.starts_with("loss="), "{output:?}");

    let (_, listed) = server.get("/experiments?condition=Succeeded").await;
    assert_eq!(listed["experiments"][0]["metadata"]["name"], "watched");
    let (_, none) = server.get("/experiments?condition=Running").await;
    assert_eq!(none["experiments"], json!([]));
    server.server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invalid_spec_is_refused_with_every_field_path_and_nothing_is_stored() {
    let server = TestServer::start(None).await;
    let spec = branin_experiment("bad", &server.script(), 4, 2, 0.0)
        .replace(r#"min: "-5", max: "10""#, r#"min: "10", max: "-5""#)
        .replace("type: minimize", "type: sideways");
    let (status, body) = server.post_yaml("/experiments", &spec).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_eq!(body["error"]["code"], "Invalid");
    let paths: Vec<&str> = body["error"]["fields"]
        .as_array()
        .unwrap()
        .iter()
        .map(|field| field["path"].as_str().unwrap())
        .collect();
    assert!(paths.contains(&"spec.objective.type"), "{paths:?}");
    assert!(
        paths.contains(&"spec.parameters[0].feasibleSpace"),
        "{paths:?}"
    );
    let (status, _) = server.get("/experiments/bad").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (_, listed) = server.get("/experiments").await;
    assert_eq!(listed["experiments"], json!([]));
    assert!(!server.dir.path().join("data/experiments/bad").exists());

    // An unknown field is refused by name.
    let spec = branin_experiment("unknown", &server.script(), 4, 2, 0.0)
        .replace("maxTrialCount: 4", "maxTrialCount: 4\n  maxTrialCuont: 5");
    let (status, body) = server.post_yaml("/experiments", &spec).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("maxTrialCuont"),
        "{body}"
    );

    // Not YAML or JSON, too large, a wrong content type: each its own clear error.
    let (status, body) = server.post_yaml("/experiments", "{{{").await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    let response = server
        .request(reqwest::Method::POST, "/experiments")
        .header("content-type", "text/plain")
        .body("x")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["code"], "UnsupportedMediaType");
    let huge = format!("{}\n# {}", spec, "x".repeat(100 * 1024));
    let (status, body) = server.post_yaml("/experiments", &huge).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{body}");
    assert_eq!(body["error"]["code"], "PayloadTooLarge");
    // A request with an unknown field is refused before anything is looked up.
    let (status, body) = server
        .post_json(
            "/experiments/none/resume",
            json!({"maxTrialCount": 3, "extra": 1}),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("unknown field `extra`"),
        "{body}"
    );
    let (status, body) = server
        .post_json("/experiments/none/resume", json!({}))
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    let (_, listed) = server.get("/experiments").await;
    assert_eq!(listed["experiments"], json!([]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopped_experiment_resumes_with_a_raised_budget_and_deletion_removes_everything() {
    let server = TestServer::start(None).await;
    let (status, body) = server
        .post_yaml(
            "/experiments",
            &branin_experiment("budget", &server.script(), 4, 2, 0.3),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    // Stop once a trial has succeeded.
    loop {
        let (_, experiment) = server.get("/experiments/budget").await;
        if experiment["status"]["trialsSucceeded"]
            .as_i64()
            .unwrap_or(0)
            >= 1
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (status, stopped) = server
        .post_json("/experiments/budget/stop", json!({}))
        .await;
    assert_eq!(status, StatusCode::OK, "{stopped}");
    assert!(stopped["metadata"]["annotations"]["sextant.dev/stopped"].is_string());
    assert_ne!(
        latest_condition(&stopped).as_deref(),
        Some("Running"),
        "{stopped}"
    );
    let (_, listed) = server.get("/experiments?condition=Running").await;
    assert_eq!(
        listed["experiments"],
        json!([]),
        "a stopped experiment is not Running"
    );
    let (_, trials) = server.get("/experiments/budget/trials").await;
    let done_before = trials["trials"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|trial| trial["condition"] == "Succeeded")
        .count();
    tokio::time::sleep(Duration::from_millis(800)).await;
    let (_, trials) = server
        .get("/experiments/budget/trials?condition=Succeeded")
        .await;
    assert_eq!(
        trials["total"].as_u64().unwrap() as usize,
        done_before,
        "trials ran on after stop"
    );

    // Resuming below the trials so far breaks a rule; above it runs to the new budget.
    let (status, body) = server
        .post_json("/experiments/budget/resume", json!({"maxTrialCount": 0}))
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    let (status, body) = server
        .post_json("/experiments/budget/resume", json!({"maxTrialCount": 7}))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, _) = server
        .post_json("/experiments/budget/resume", json!({"maxTrialCount": 8}))
        .await;
    assert_eq!(
        status,
        StatusCode::CONFLICT,
        "resuming a running experiment"
    );
    let experiment = server.wait_for("budget", "Succeeded").await;
    assert_eq!(experiment["spec"]["maxTrialCount"], 7);
    assert_eq!(experiment["status"]["trialsSucceeded"], 7);
    assert!(
        experiment["metadata"]["annotations"]
            .get("sextant.dev/stopped")
            .is_none()
    );
    let (status, _) = server
        .post_json("/experiments/budget/stop", json!({}))
        .await;
    assert_eq!(
        status,
        StatusCode::CONFLICT,
        "stopping a completed experiment"
    );

    let trial = experiment["status"]["currentOptimalTrial"]["bestTrialName"]
        .as_str()
        .unwrap()
        .to_string();
    let dir = server.dir.path().join("data/experiments/budget");
    assert!(dir.join("trials").join(&trial).join("output.log").exists());
    let response = server
        .request(reqwest::Method::DELETE, "/experiments/budget")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    assert!(!dir.exists(), "the experiment's directory is gone");
    let (status, _) = server.get(&format!("/trials/{trial}")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = server.get("/experiments/budget").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ask_and_tell_drive_a_study_from_the_client() {
    let server = TestServer::start(None).await;
    let study = r#"
apiVersion: kubeflow.org/v1beta1
kind: Experiment
metadata: {name: notebook}
spec:
  objective: {type: minimize, objectiveMetricName: loss}
  algorithm: {algorithmName: tpe, algorithmSettings: [{name: random_state, value: "5"}]}
  maxTrialCount: 30
  parameters:
    - {name: x, parameterType: double, feasibleSpace: {min: "-4", max: "4"}}
"#;
    let (status, body) = server.post_yaml("/studies", study).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    // A study with a template is refused: its client runs the trials.
    let with_template = branin_experiment("templated", &server.script(), 3, 1, 0.0);
    let (status, body) = server.post_yaml("/studies", &with_template).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_eq!(body["error"]["fields"][0]["path"], "spec.trialTemplate");

    let mut best = f64::INFINITY;
    for round in 0..30 {
        let (status, trial) = server.post_json("/studies/notebook/ask", json!({})).await;
        assert_eq!(status, StatusCode::CREATED, "{trial}");
        assert_eq!(trial["condition"], "Running");
        let x: f64 = trial["parameterAssignments"][0]["value"]
            .as_str()
            .unwrap()
            .parse()
            .unwrap();
        let name = trial["name"].as_str().unwrap();
        if round == 3 {
            let (status, body) = server
                .post_json(
                    "/studies/notebook/tell",
                    json!({"trial": name, "values": {"other": 1.0}}),
                )
                .await;
            assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
            assert_eq!(body["error"]["fields"][0]["path"], "values.loss");
            let (status, told) = server
                .post_json(
                    "/studies/notebook/tell",
                    json!({"trial": name, "state": "Failed", "message": "diverged"}),
                )
                .await;
            assert_eq!(status, StatusCode::OK, "{told}");
            assert_eq!(told["condition"], "Failed");
            continue;
        }
        let loss = (x - 1.5).powi(2);
        best = best.min(loss);
        let (status, told) = server
            .post_json(
                "/studies/notebook/tell",
                json!({"trial": name, "values": {"loss": loss}}),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{told}");
        assert_eq!(told["objectiveValue"].as_f64(), Some(loss));
        let (status, _) = server
            .post_json(
                "/studies/notebook/tell",
                json!({"trial": name, "values": {"loss": loss}}),
            )
            .await;
        assert_eq!(status, StatusCode::CONFLICT, "told twice");
    }
    let (status, body) = server.post_json("/studies/notebook/ask", json!({})).await;
    assert_eq!(status, StatusCode::CONFLICT, "past the budget: {body}");
    assert!(best < 0.05, "tpe found {best}");
    let (_, study) = server.get("/experiments/notebook").await;
    assert_eq!(study["status"]["trialsSucceeded"], 29);
    assert_eq!(study["status"]["trialsFailed"], 1);
    let optimal = &study["status"]["currentOptimalTrial"]["observation"]["metrics"][0];
    assert_eq!(
        optimal["latest"].as_str().unwrap().parse::<f64>().unwrap(),
        best
    );

    // Ask and tell are for studies; stop and resume are for experiments.
    let (status, _) = server
        .post_json("/experiments/notebook/stop", json!({}))
        .await;
    assert_eq!(status, StatusCode::CONFLICT);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_warm_started_study_asks_its_enqueued_points_first_and_unknown_sources_are_refused() {
    let server = TestServer::start(None).await;
    let study = |name: &str, warm_start: &str| {
        format!(
            r#"
apiVersion: kubeflow.org/v1beta1
kind: Experiment
metadata: {{name: {name}}}
spec:
  objective: {{type: minimize, objectiveMetricName: loss}}
  algorithm: {{algorithmName: tpe}}
  maxTrialCount: 5
  parameters:
    - {{name: x, parameterType: double, feasibleSpace: {{min: "-4", max: "4"}}}}
  warmStart: {warm_start}
"#
        )
    };
    let (status, body) = server
        .post_yaml("/studies", &study("first", "{enqueue: [{x: 1}, {x: -2}]}"))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    for (index, expected) in ["1", "-2"].into_iter().enumerate() {
        let (status, trial) = server.post_json("/studies/first/ask", json!({})).await;
        assert_eq!(status, StatusCode::CREATED, "{trial}");
        assert_eq!(trial["parameterAssignments"][0]["value"], expected);
        assert_eq!(
            trial["labels"]["sextant.dev/enqueued-index"],
            index.to_string()
        );
        let (status, told) = server
            .post_json(
                "/studies/first/tell",
                json!({"trial": trial["name"], "values": {"loss": 0.5}}),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{told}");
    }
    let (status, trial) = server.post_json("/studies/first/ask", json!({})).await;
    assert_eq!(status, StatusCode::CREATED, "{trial}");
    assert!(
        trial["labels"].get("sextant.dev/enqueued-index").is_none(),
        "the algorithm's, once the points are trials: {trial}"
    );

    // A study warm started from the first: its budget is its own.
    let (status, body) = server
        .post_yaml("/studies", &study("second", "{fromExperiments: [first]}"))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let (status, trial) = server.post_json("/studies/second/ask", json!({})).await;
    assert_eq!(status, StatusCode::CREATED, "{trial}");
    let (_, second) = server.get("/experiments/second").await;
    assert_eq!(second["status"]["trials"], 1, "{second}");

    // A source without this space's parameters, and one the store does not hold: a 422
    // naming each, at a dry run and at submission.
    let spec = branin_experiment("third", &server.script(), 4, 2, 0.0)
        .replace("algorithmName: random,", "algorithmName: tpe,")
        + "  warmStart: {fromExperiments: [first, nosuch]}\n";
    for path in ["/experiments?dryRun=true", "/experiments"] {
        let (status, body) = server.post_yaml(path, &spec).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
        assert_eq!(
            body["error"]["fields"],
            json!([
                {
                    "path": "spec.warmStart.fromExperiments[0]",
                    "rule": "experiment \"first\" has no parameter \"x1\", so none of its \
                             trials has a value for it"
                },
                {
                    "path": "spec.warmStart.fromExperiments[1]",
                    "rule": "names no experiment in the store (\"nosuch\")"
                }
            ])
        );
    }
    let (status, _) = server.get("/experiments/third").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trials_are_told_the_servers_url() {
    let server = TestServer::start(None).await;
    let url = server.base.trim_end_matches("/api/v1").to_string();
    let spec = branin_experiment("told", &server.script(), 1, 1, 0.0).replace(
        r#"env: [{name: SLEEP, value: "0"}]"#,
        &format!(r#"env: [{{name: SLEEP, value: "0"}}, {{name: EXPECTED_URL, value: "{url}"}}]"#),
    );
    let script = server.dir.path().join("url.py");
    std::fs::write(
        &script,
        "import os\nprint('loss=%d' % (os.environ.get('SEXTANT_URL') == os.environ['EXPECTED_URL']))\n",
    )
    .unwrap();
    let spec = spec.replace(
        &server.script().display().to_string(),
        &script.display().to_string(),
    );
    let (status, body) = server.post_yaml("/experiments", &spec).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let experiment = server.wait_for("told", "Succeeded").await;
    let metric = &experiment["status"]["currentOptimalTrial"]["observation"]["metrics"][0];
    assert_eq!(
        metric["latest"], "1",
        "SEXTANT_URL is not the server's: {experiment}"
    );
}

/// Each trial marks itself running in `RUNNING_DIR` for a while and reports as its loss the
/// most trials it saw running at once, itself included.
const CONCURRENCY: &str = r#"
import os, time
running = os.environ["RUNNING_DIR"]
me = os.path.join(running, str(os.getpid()))
open(me, "w").close()
seen = 0
for _ in range(8):
    seen = max(seen, len(os.listdir(running)))
    time.sleep(0.05)
os.remove(me)
print("loss=%d" % seen)
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn max_parallel_trials_caps_every_experiment_together() {
    let server = TestServer::start_with(None, 2).await;
    let script = server.dir.path().join("concurrency.py");
    std::fs::write(&script, CONCURRENCY).unwrap();
    let running = server.dir.path().join("running");
    std::fs::create_dir(&running).unwrap();
    let spec = |name: &str| {
        branin_experiment(name, &server.script(), 6, 4, 0.0)
            .replace(
                &server.script().display().to_string(),
                &script.display().to_string(),
            )
            .replace(
                r#"env: [{name: SLEEP, value: "0"}]"#,
                &format!(
                    r#"env: [{{name: RUNNING_DIR, value: "{}"}}]"#,
                    running.display()
                ),
            )
    };
    for name in ["capped-a", "capped-b"] {
        let (status, body) = server.post_yaml("/experiments", &spec(name)).await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
    }
    let mut most = 0;
    for name in ["capped-a", "capped-b"] {
        server.wait_for(name, "Succeeded").await;
        let (_, list) = server.get(&format!("/experiments/{name}/trials")).await;
        let trials = list["trials"].as_array().unwrap();
        assert_eq!(trials.len(), 6, "{list}");
        for trial in trials {
            assert_eq!(trial["condition"], "Succeeded", "{trial}");
            most = most.max(trial["objectiveValue"].as_f64().unwrap() as u32);
        }
    }
    // Four trials each were asked for, eight in all: the server's two slots bound them together.
    assert_eq!(
        most, 2,
        "the most trials seen running at once over both experiments"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_is_required_on_every_route_when_set() {
    let server = TestServer::start(Some("0123456789abcdef0123")).await;
    let (status, _) = server.get("/experiments").await;
    assert_eq!(status, StatusCode::OK);
    for path in ["/experiments", "/openapi.json", "/events"] {
        let response = server
            .client
            .get(format!("{}{path}", server.base))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED, "{path}");
        assert_eq!(response.headers()["www-authenticate"], "Bearer");
        let response = server
            .client
            .get(format!("{}{path}", server.base))
            .bearer_auth("0123456789abcdef0124")
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED, "{path}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_openapi_document_describes_every_route() {
    let server = TestServer::start(None).await;
    let (status, document) = server.get("/openapi.json").await;
    assert_eq!(status, StatusCode::OK);
    assert!(document["openapi"].as_str().unwrap().starts_with("3.1"));
    for path in [
        "/api/v1/experiments",
        "/api/v1/experiments/{name}",
        "/api/v1/experiments/{name}/stop",
        "/api/v1/experiments/{name}/resume",
        "/api/v1/experiments/{name}/trials",
        "/api/v1/trials/{name}",
        "/api/v1/trials/{name}/observations",
        "/api/v1/trials/{name}/log",
        "/api/v1/trials/{name}/artifacts",
        "/api/v1/trials/{name}/artifacts/{artifact}",
        "/api/v1/studies",
        "/api/v1/studies/{name}/ask",
        "/api/v1/studies/{name}/tell",
        "/api/v1/runs",
        "/api/v1/runs/{id}",
        "/api/v1/runs/{id}/stop",
        "/api/v1/runs/{id}/retry",
        "/api/v1/runs/{id}/steps/{step}/log",
        "/api/v1/runs/{id}/artifacts",
        "/api/v1/runs/{id}/artifacts/{step}/{name}",
        "/api/v1/recurringruns",
        "/api/v1/recurringruns/{name}",
        "/api/v1/recurringruns/{name}/enable",
        "/api/v1/recurringruns/{name}/disable",
        "/api/v1/events",
    ] {
        assert!(
            document["paths"][path].is_object(),
            "{path} is not documented"
        );
    }
}

/// A pipeline whose `prepare` step counts its executions in `COUNTER` and writes an artifact,
/// and whose `train` step fails until the file `GATE` exists.
fn pipeline(dir: &Path) -> Value {
    let counter = dir.join("prepare-runs");
    let gate = dir.join("gate");
    json!({
        "apiVersion": "sextant.dev/v1beta1",
        "kind": "Pipeline",
        "metadata": {"name": "demo"},
        "spec": {
            "params": [{"name": "rows", "default": "3"}],
            "steps": [
                {
                    "name": "prepare",
                    "command": ["python3", "-c",
                        "import sys; open(sys.argv[1], 'a').write('x'); open('data.csv', 'w').write('a,b\\n' * int(sys.argv[2])); open('count.txt', 'w').write(sys.argv[2]); print('prepared')",
                        counter.display().to_string(), "{{params.rows}}"],
                    "outputs": {
                        "params": [{"name": "count", "path": "count.txt"}],
                        "artifacts": [{"name": "data", "path": "data.csv"}]
                    }
                },
                {
                    "name": "train",
                    "command": ["python3", "-c",
                        "import os, sys; print('rows', sys.argv[1]); sys.exit(0 if os.path.exists(sys.argv[2]) else 3)",
                        "{{steps.prepare.outputs.params.count}}", gate.display().to_string()]
                }
            ]
        }
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pipeline_run_fails_shows_its_steps_and_artifacts_and_is_retried_from_its_failed_step() {
    let server = TestServer::start(None).await;
    let mut events = Events::open(&server, "?run=first").await;
    let (status, run) = server
        .post_json(
            "/runs",
            json!({"pipeline": pipeline(server.dir.path()), "params": {"rows": "4"}, "runId": "first"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{run}");
    assert_eq!(run["runId"], "first");
    // The run's events arrive until it finishes, failed at `train`.
    let finished = loop {
        let (kind, data) = events.next().await;
        assert_eq!(kind, "run", "{data}");
        if data["change"] == "runFinished" {
            break data;
        }
    };
    assert_eq!(finished["phase"], "Failed");
    let (_, run) = server.get("/runs/first").await;
    assert_eq!(run["phase"], "Failed");
    let steps: std::collections::BTreeMap<&str, &Value> = run["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|step| (step["step"].as_str().unwrap(), step))
        .collect();
    assert_eq!(steps["prepare"]["phase"], "Succeeded");
    assert_eq!(steps["prepare"]["outputParams"]["count"], "4");
    assert_eq!(steps["train"]["phase"], "Failed");
    let log = server
        .request(reqwest::Method::GET, "/runs/first/steps/train/log")
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(log.trim(), "rows 4");
    let (_, artifacts) = server.get("/runs/first/artifacts").await;
    assert_eq!(artifacts["artifacts"][0]["name"], "data");
    assert_eq!(artifacts["artifacts"][0]["size"], 16);
    let data = server
        .request(reqwest::Method::GET, "/runs/first/artifacts/prepare/data")
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    assert_eq!(&data[..], "a,b\n".repeat(4).as_bytes());
    let (status, _) = server.get("/runs/first/artifacts/prepare/other").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = server.get("/runs/first/steps/..%2F..%2Fetc/log").await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    // Retry: `prepare` is kept (it ran once), `train` runs again and succeeds.
    std::fs::write(server.dir.path().join("gate"), "").unwrap();
    let (status, body) = server.post_json("/runs/first/retry", json!({})).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let run = loop {
        let (_, run) = server.get("/runs/first").await;
        if run["phase"] == "Succeeded" {
            break run;
        }
        assert_ne!(run["phase"], "Failed", "{run}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(
        run["steps"]
            .as_array()
            .unwrap()
            .iter()
            .all(|step| step["phase"] == "Succeeded")
    );
    let prepared = std::fs::read_to_string(server.dir.path().join("prepare-runs")).unwrap();
    assert_eq!(prepared, "x", "prepare ran again on retry");
    let (status, _) = server.post_json("/runs/first/retry", json!({})).await;
    assert_eq!(
        status,
        StatusCode::CONFLICT,
        "a succeeded run is not retried"
    );
    let (_, listed) = server.get("/runs?phase=Succeeded").await;
    assert_eq!(listed["runs"][0]["runId"], "first");

    // Bad input: each a 422 naming the field, nothing recorded.
    let mut bad = pipeline(server.dir.path());
    bad["spec"]["steps"][1]["command"] = json!([]);
    let (status, body) = server
        .post_json("/runs", json!({"pipeline": bad, "runId": "bad"}))
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert!(
        body["error"]["fields"][0]["path"]
            .as_str()
            .unwrap()
            .starts_with("pipeline.spec.steps[1]"),
        "{body}"
    );
    let (status, body) = server
        .post_json(
            "/runs",
            json!({"pipeline": pipeline(server.dir.path()), "params": {"nope": "1"}}),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_eq!(body["error"]["fields"][0]["path"], "params.nope");
    let (status, body) = server
        .post_json(
            "/runs",
            json!({"pipeline": pipeline(server.dir.path()), "runId": "../x"}),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    let (status, _) = server.get("/runs/bad").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (_, listed) = server.get("/runs").await;
    assert_eq!(listed["runs"].as_array().unwrap().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_recurring_run_fires_on_schedule_and_never_runs_more_than_max_concurrency_at_once() {
    let server = TestServer::start(None).await;
    let spans = server.dir.path().join("spans");
    let step = json!({
        "apiVersion": "sextant.dev/v1beta1",
        "kind": "Pipeline",
        "metadata": {"name": "tick"},
        "spec": {"steps": [{
            "name": "work",
            "cache": false,
            "command": ["python3", "-c",
                "import sys, time; s = time.time(); time.sleep(1.3); open(sys.argv[1], 'a').write('%f %f\\n' % (s, time.time()))",
                spans.display().to_string()]
        }]}
    });
    // Bad input first: nothing is stored.
    for (body, field) in [
        (
            json!({"name": "bad", "pipeline": step, "schedule": {"cron": "61 * * * *"}}),
            "schedule.cron",
        ),
        (
            json!({"name": "bad", "pipeline": step, "schedule": {"cron": "* * * * *"}, "maxConcurrency": 11}),
            "maxConcurrency",
        ),
        (
            json!({"name": "bad", "pipeline": step, "params": {"x": "1"}, "schedule": {"cron": "* * * * *"}}),
            "params.x",
        ),
        (
            json!({"name": "a/b", "pipeline": step, "schedule": {"cron": "* * * * *"}}),
            "name",
        ),
    ] {
        let (status, error) = server.post_json("/recurringruns", body).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{error}");
        assert_eq!(error["error"]["fields"][0]["path"], field, "{error}");
    }
    let (_, listed) = server.get("/recurringruns").await;
    assert_eq!(listed["recurringRuns"], json!([]));

    let (status, created) = server
        .post_json(
            "/recurringruns",
            json!({"name": "every-second", "pipeline": step, "schedule": {"cron": "* * * * * *"}, "maxConcurrency": 1}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    assert!(created["nextFiring"].is_string());
    tokio::time::sleep(Duration::from_millis(5500)).await;
    let (_, disabled) = server
        .post_json("/recurringruns/every-second/disable", json!({}))
        .await;
    assert_eq!(disabled["enabled"], false);
    assert!(disabled["nextFiring"].is_null());
    let fired = disabled["runs"].as_array().unwrap().len();
    assert!(fired >= 2, "fired {fired} times in 5.5 s: {disabled}");
    // Each run is named by its firing time, a whole second after the recurring run was made.
    let created_at =
        chrono::DateTime::parse_from_rfc3339(created["createdAt"].as_str().unwrap()).unwrap();
    for run in disabled["runs"].as_array().unwrap() {
        let stamp = run.as_str().unwrap().strip_prefix("every-second-").unwrap();
        let firing = chrono::NaiveDateTime::parse_from_str(stamp, "%Y%m%d%H%M%S")
            .unwrap()
            .and_utc();
        assert!(firing > created_at, "{firing} fired before {created_at}");
    }
    // Wait for the runs to end, then check that no two ever overlapped.
    loop {
        let (_, now) = server.get("/recurringruns/every-second").await;
        if now["activeRuns"] == 0 {
            assert_eq!(
                now["runs"].as_array().unwrap().len(),
                fired,
                "fired while disabled"
            );
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let mut intervals: Vec<(f64, f64)> = std::fs::read_to_string(&spans)
        .unwrap()
        .lines()
        .map(|line| {
            let (start, end) = line.split_once(' ').unwrap();
            (start.parse().unwrap(), end.parse().unwrap())
        })
        .collect();
    intervals.sort_by(|a, b| a.0.total_cmp(&b.0));
    assert_eq!(intervals.len(), fired);
    for pair in intervals.windows(2) {
        assert!(
            pair[1].0 >= pair[0].1,
            "two runs overlapped with maxConcurrency 1: {pair:?}"
        );
    }
    let (_, runs) = server.get("/runs?pipeline=tick&phase=Succeeded").await;
    assert_eq!(runs["runs"].as_array().unwrap().len(), fired);
    let response = server
        .request(reqwest::Method::DELETE, "/recurringruns/every-second")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    let (status, _) = server.get("/recurringruns/every-second").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}
