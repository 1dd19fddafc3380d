//! The HTTP API's speed over loopback, with a real SQLite store:
//! - `list_trials/10000`: one page of 10,000 trials (`pageSize=10000`);
//! - `ask_tell/tpe_100`: one ask and one tell of a `tpe` study with 100 to 120 told trials;
//! - `events/100_clients_300_trials`: an experiment of 300 `echo` trials run while 100 SSE
//!   clients listen; the time until every client has seen every trial finish and the
//!   experiment succeed (a lost event would hang the bench; `lagged` fails it). 300 divided by
//!   it is the trials per second the clients kept up with.

use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};
use futures::StreamExt;
use serde_json::{Value, json};
use sextant_server::{Server, ServerConfig};
use sextant_store::{NewTrial, Store, TrialConditionUpdate};

/// The allocator the `sextant` binary runs the server with, so the bench measures what users run.
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

const STUDY: &str = r#"
apiVersion: kubeflow.org/v1beta1
kind: Experiment
metadata: {name: NAME}
spec:
  objective: {type: minimize, objectiveMetricName: loss}
  algorithm: {algorithmName: ALGORITHM, algorithmSettings: [{name: random_state, value: "1"}]}
  parameters:
    - {name: x, parameterType: double, feasibleSpace: {min: "-5", max: "5"}}
    - {name: y, parameterType: double, feasibleSpace: {min: "-5", max: "5"}}
"#;

struct Bench {
    base: String,
    client: reqwest::Client,
    store: Store,
    _dir: tempfile::TempDir,
}

async fn start() -> Bench {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::connect(&format!(
        "sqlite://{}",
        dir.path().join("bench.db").display()
    ))
    .await
    .unwrap();
    let config = ServerConfig {
        data_dir: dir.path().join("data"),
        max_parallel_trials: 8,
        token: None,
        max_body_bytes: sextant_server::DEFAULT_MAX_BODY_BYTES,
        url: None,
        artifacts: None,
    };
    let server = Server::start(store.clone(), config).await.unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}/api/v1", listener.local_addr().unwrap());
    tokio::spawn(axum::serve(listener, server.router()).into_future());
    Bench {
        base,
        client: reqwest::Client::new(),
        store,
        _dir: dir,
    }
}

impl Bench {
    async fn create_study(&self, name: &str, algorithm: &str) {
        let response = self
            .client
            .post(format!("{}/studies", self.base))
            .header("content-type", "application/yaml")
            .body(STUDY.replace("NAME", name).replace("ALGORITHM", algorithm))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 201);
    }

    async fn post(&self, path: &str, body: Value) -> Value {
        let response = self
            .client
            .post(format!("{}{path}", self.base))
            .json(&body)
            .send()
            .await
            .unwrap();
        assert!(
            response.status().is_success(),
            "{path}: {}",
            response.status()
        );
        response.json().await.unwrap()
    }

    async fn ask_tell(&self, study: &str) {
        let trial = self.post(&format!("/studies/{study}/ask"), json!({})).await;
        let x: f64 = trial["parameterAssignments"][0]["value"]
            .as_str()
            .unwrap()
            .parse()
            .unwrap();
        let y: f64 = trial["parameterAssignments"][1]["value"]
            .as_str()
            .unwrap()
            .parse()
            .unwrap();
        self.post(
            &format!("/studies/{study}/tell"),
            json!({"trial": trial["name"], "values": {"loss": x * x + y * y}}),
        )
        .await;
    }

    /// Stores `count` succeeded trials straight into the store (the bench measures reading).
    async fn fill(&self, study: &str, count: usize) {
        for index in 0..count {
            let name = format!("{study}-{index:05}");
            self.store
                .insert_trial(&NewTrial {
                    name: name.clone(),
                    experiment_name: study.into(),
                    spec: "{}".into(),
                    assignments: format!(
                        r#"[{{"name":"x","value":"{}"}},{{"name":"y","value":"0.5"}}]"#,
                        index as f64 / count as f64
                    ),
                    labels: "{}".into(),
                })
                .await
                .unwrap();
            self.store
                .update_trial_observation(
                    &name,
                    Some(&format!(r#"{{"metrics":[{{"name":"loss","min":"{index}","max":"{index}","latest":"{index}"}}]}}"#)),
                )
                .await
                .unwrap();
            self.store
                .update_trial_condition(
                    &name,
                    &TrialConditionUpdate {
                        condition_type: "Succeeded".into(),
                        reason: "TrialSucceeded".into(),
                        message: "Trial has succeeded".into(),
                        start_time: Some(chrono::Utc::now()),
                        completion_time: Some(chrono::Utc::now()),
                    },
                )
                .await
                .unwrap();
        }
    }
}

fn benches(criterion: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let bench = runtime.block_on(start());

    runtime.block_on(async {
        bench.create_study("listed", "random").await;
        bench.fill("listed", 10_000).await;
    });
    criterion.bench_function("list_trials/10000", |b| {
        b.to_async(&runtime).iter(|| async {
            let response = bench
                .client
                .get(format!(
                    "{}/experiments/listed/trials?pageSize=10000",
                    bench.base
                ))
                .send()
                .await
                .unwrap();
            let body = response.bytes().await.unwrap();
            assert!(body.len() > 10_000 * 100);
        })
    });

    // Each study serves 20 timed round trips after 100 trials are stored into it untimed, so
    // the figure is for 100 to 120 past trials.
    let mut group = criterion.benchmark_group("ask_tell");
    group.sample_size(30);
    let studies = std::sync::atomic::AtomicU64::new(0);
    group.bench_function("tpe_100", |b| {
        b.to_async(&runtime).iter_custom(|iterations| {
            let (bench, studies) = (&bench, &studies);
            async move {
                let mut total = Duration::ZERO;
                let mut left = iterations;
                while left > 0 {
                    let study = format!(
                        "asked-{}",
                        studies.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
                    );
                    bench.create_study(&study, "tpe").await;
                    bench.fill(&study, 100).await;
                    let batch = left.min(20);
                    let started = Instant::now();
                    for _ in 0..batch {
                        bench.ask_tell(&study).await;
                    }
                    total += started.elapsed();
                    left -= batch;
                }
                total
            }
        })
    });
    group.finish();

    let mut group = criterion.benchmark_group("events");
    group
        .sample_size(10)
        .measurement_time(Duration::from_secs(30));
    let rounds = std::sync::atomic::AtomicU64::new(0);
    group.bench_function("100_clients_300_trials", |b| {
        b.to_async(&runtime).iter_custom(|iterations| {
            let (bench, rounds) = (&bench, &rounds);
            async move {
                let mut total = Duration::ZERO;
                for _ in 0..iterations {
                    let round = rounds.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    total += broadcast_round(bench, round).await;
                }
                total
            }
        })
    });
    group.finish();
}

/// An experiment of 300 trials that only print their loss (`echo`, eight at a time), followed by 100 SSE clients
/// from before it starts; the time until every client has seen every trial succeed and the
/// experiment succeed.
async fn broadcast_round(bench: &Bench, round: u64) -> Duration {
    let trials = 300;
    let name = format!("broadcast-{round}");
    let spec = format!(
        r#"
apiVersion: kubeflow.org/v1beta1
kind: Experiment
metadata: {{name: {name}}}
spec:
  objective: {{type: minimize, objectiveMetricName: loss}}
  algorithm: {{algorithmName: random}}
  parallelTrialCount: 8
  maxTrialCount: {trials}
  parameters:
    - {{name: x, parameterType: double, feasibleSpace: {{min: "0", max: "1"}}}}
  trialTemplate:
    trialParameters: [{{name: x, reference: x}}]
    trialSpec:
      apiVersion: sextant.dev/v1beta1
      kind: Process
      spec: {{command: [echo, "loss=${{trialParameters.x}}"]}}
"#
    );
    let mut clients = Vec::new();
    for _ in 0..100 {
        let response = bench
            .client
            .get(format!("{}/events?experiment={name}", bench.base))
            .send()
            .await
            .unwrap();
        clients.push(response.bytes_stream());
    }
    let started = Instant::now();
    let readers: Vec<_> = clients
        .into_iter()
        .map(|mut stream| {
            tokio::spawn(async move {
                let (mut finished_trials, mut done, mut buffer) = (0usize, false, String::new());
                while !(done && finished_trials == trials) {
                    let chunk = stream.next().await.expect("the stream ended").unwrap();
                    buffer.push_str(&String::from_utf8_lossy(&chunk));
                    while let Some(end) = buffer.find("\n\n") {
                        let block: String = buffer.drain(..end + 2).collect();
                        assert!(!block.contains("event: lagged"), "a client lagged");
                        if block.contains("event: trial")
                            && !block.contains("\"condition\":\"Created\"")
                            && !block.contains("\"condition\":\"Running\"")
                        {
                            finished_trials += 1;
                        }
                        if block.contains("event: experiment")
                            && block.contains("\"condition\":\"Succeeded\"")
                        {
                            done = true;
                        }
                    }
                }
            })
        })
        .collect();
    let response = bench
        .client
        .post(format!("{}/experiments", bench.base))
        .header("content-type", "application/yaml")
        .body(spec)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
    for reader in readers {
        reader.await.unwrap();
    }
    started.elapsed()
}

criterion_group!(api, benches);
criterion_main!(api);
