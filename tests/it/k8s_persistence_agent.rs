//! `sextant persistence-agent` on the Kubernetes testbed: what runs in the cluster reaches the
//! store `sextant server` reads, idempotently, and after downtime from the current state.
//!
//! The agent runs as a ServiceAccount bound, in the test's namespace, to nothing but the
//! ClusterRole of `deploy/persistence-agent.yaml`, so these tests also prove that role is
//! enough. Experiments run through the real `sextant controller` (the tests play the Jobs'
//! pods, as `kubernetes.rs` does). No PipelineRun controller and no Argo controller run for
//! these tests: they play both by patching a PipelineRun's status, with the controller stopped
//! first so that nothing else writes it. The stores are PostgreSQL schemas of their own, and one
//! MariaDB database.

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::ServiceAccount;
use k8s_openapi::api::rbac::v1::{ClusterRole, RoleBinding};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{DeleteParams, Patch, PatchParams, PostParams};
use kube::{Api, Client, ResourceExt};
use reqwest::StatusCode;
use serde_json::{Value, json};
use sextant_controller::kube::pipeline_resources::PipelineRun;
use sextant_pipeline::run_store::RunStore;
use sextant_store::Store;
use sextant_test_support::{Backend, TestDatabase};
use sqlx::Connection;

use crate::kubernetes::{
    Harness, WAIT, client_for, install_workflow_crd, loss_for, lr_of, play_until_done,
    wait_established, wait_until, write_service_account_kubeconfig,
};
use crate::support::ServerProcess;

/// The ClusterRole the agent runs with.
const AGENT_ROLE_FILE: &str = "deploy/persistence-agent.yaml";

/// A harness (namespace, `sextant serve`, `sextant controller`) with the pipeline kinds
/// installed and an identity for the agent.
struct World {
    harness: Harness,
    agent_kubeconfig: PathBuf,
    _scratch: tempfile::TempDir,
}

/// A running agent, killed when dropped.
struct Agent {
    child: Child,
    caught_up: mpsc::Receiver<()>,
}

impl World {
    /// The controller's observation logs go to `db`.
    async fn new(name: &str, db: &str) -> World {
        let harness = Harness::with_store(name, db, &[]).await;
        let client = harness.client.clone();
        install_pipeline_crds(&client).await;
        install_workflow_crd(&client).await;
        let scratch = tempfile::tempdir().expect("a scratch directory");
        let agent_kubeconfig = scratch.path().join("kubeconfig");
        bind_agent(&client, &harness.namespace, &agent_kubeconfig).await;
        World {
            harness,
            agent_kubeconfig,
            _scratch: scratch,
        }
    }

    fn namespace(&self) -> &str {
        &self.harness.namespace
    }

    /// `<namespace>.<name>`: what the agent names the rows of the object `name`.
    fn id(&self, name: &str) -> String {
        format!("{}.{name}", self.namespace())
    }

    /// Starts `sextant persistence-agent` writing to `db`, watching the test's namespace.
    fn start_agent(&self, db: &str) -> Agent {
        let mut child = Command::new(env!("CARGO_BIN_EXE_sextant"))
            .args(["persistence-agent", "--db", db, "--namespace"])
            .arg(self.namespace())
            .args(["--health-listen", "127.0.0.1:0"])
            .env("KUBECONFIG", &self.agent_kubeconfig)
            .env("SEXTANT_LOG", "info,kube_client=error")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start sextant persistence-agent");
        let stderr = child.stderr.take().expect("the agent's stderr");
        let (sender, caught_up) = mpsc::channel();
        std::thread::spawn(move || {
            use std::io::BufRead;
            for line in std::io::BufReader::new(stderr)
                .lines()
                .map_while(Result::ok)
            {
                if line.contains("caught up with the cluster") {
                    let _ = sender.send(());
                }
                if line.contains("WARN") || line.contains("ERROR") {
                    eprintln!("persistence-agent: {line}");
                }
            }
        });
        Agent { child, caught_up }
    }

    fn runs(&self) -> Api<PipelineRun> {
        Api::namespaced(self.harness.client.clone(), self.namespace())
    }

    /// Creates a PipelineRun of a two-step inline pipeline; `prepare` writes `count`, which
    /// `train` reads.
    async fn create_run(&self, name: &str) {
        let run = json!({
            "apiVersion": "sextant.dev/v1beta1",
            "kind": "PipelineRun",
            "metadata": {"name": name},
            "spec": {
                "pipelineSpec": {
                    "params": [{"name": "rows", "default": "10"}, {"name": "seed", "default": "1"}],
                    "steps": [
                        {
                            "name": "prepare",
                            "image": "python:3.12",
                            "command": ["python3", "prepare.py", "{{params.rows}}"],
                            "outputs": {"params": [{"name": "count", "path": "count.txt"}]},
                        },
                        {
                            "name": "train",
                            "image": "python:3.12",
                            "command": ["python3", "train.py", "{{steps.prepare.outputs.params.count}}"],
                        },
                    ],
                },
                "params": [{"name": "rows", "value": "20"}],
            },
        });
        self.runs()
            .create(
                &PostParams::default(),
                &serde_json::from_value(run).expect("a PipelineRun"),
            )
            .await
            .expect("create the PipelineRun");
    }

    /// Sets a PipelineRun's status, as its controller does from its Workflow's nodes (and Argo
    /// from the pods): the test plays both.
    async fn set_run_status(&self, name: &str, status: Value) {
        self.runs()
            .patch_status(
                name,
                &PatchParams::default(),
                &Patch::Merge(&json!({ "status": status })),
            )
            .await
            .expect("patch the PipelineRun's status");
    }

    async fn delete_run(&self, name: &str) {
        self.runs()
            .delete(name, &DeleteParams::default())
            .await
            .expect("delete the PipelineRun");
    }
}

impl Agent {
    /// Waits until the agent has reconciled the store with everything its watches listed.
    async fn caught_up(&self) {
        let deadline = Instant::now() + WAIT;
        while self.caught_up.try_recv().is_err() {
            assert!(Instant::now() < deadline, "the agent did not catch up");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The definitions of Pipeline, PipelineRun and RecurringRun, as `sextant crd` writes them.
async fn install_pipeline_crds(client: &Client) {
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    for crd in sextant_controller::kube::crd::pipeline_crds().expect("the pipeline definitions") {
        let name = crd.name_any();
        crds.patch(
            &name,
            &PatchParams::apply("sextant-tests").force(),
            &Patch::Apply(&crd),
        )
        .await
        .unwrap_or_else(|error| panic!("apply the definition {name}: {error}"));
        wait_established(&crds, &name).await;
    }
}

/// Creates the agent's ServiceAccount in `namespace`, binds it there to the ClusterRole of
/// `deploy/persistence-agent.yaml` and to nothing else, and writes a kubeconfig with its token.
async fn bind_agent(client: &Client, namespace: &str, kubeconfig_path: &Path) {
    let text = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join(AGENT_ROLE_FILE))
        .expect("the agent's manifests");
    let role: ClusterRole = serde_yaml::Deserializer::from_str(&text)
        .filter_map(|document| {
            let value: Value = serde::Deserialize::deserialize(document).ok()?;
            (value["kind"] == "ClusterRole").then(|| serde_json::from_value(value).ok())?
        })
        .next()
        .expect("the agent's ClusterRole");
    Api::<ClusterRole>::all(client.clone())
        .patch(
            &role.name_any(),
            &PatchParams::apply("sextant-tests").force(),
            &Patch::Apply(&role),
        )
        .await
        .expect("apply the agent's ClusterRole");
    let account = "persistence-agent";
    let accounts: Api<ServiceAccount> = Api::namespaced(client.clone(), namespace);
    accounts
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({"metadata": {"name": account}})).expect("an account"),
        )
        .await
        .expect("create the agent's service account");
    let binding = json!({
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "RoleBinding",
        "metadata": {"name": account, "namespace": namespace},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": role.name_any()},
        "subjects": [{"kind": "ServiceAccount", "name": account, "namespace": namespace}],
    });
    Api::<RoleBinding>::namespaced(client.clone(), namespace)
        .create(
            &PostParams::default(),
            &serde_json::from_value(binding).expect("a binding"),
        )
        .await
        .expect("bind the agent's role");
    write_service_account_kubeconfig(&accounts, account, kubeconfig_path).await;
    // The API server learns of a new binding asynchronously.
    let agent = client_for_path(kubeconfig_path).await;
    wait_until("the agent's rights", || async {
        Api::<PipelineRun>::namespaced(agent.clone(), namespace)
            .list(&Default::default())
            .await
            .is_ok()
    })
    .await;
    // And it has no more than them: it cannot write what it reads.
    let forbidden = Api::<PipelineRun>::namespaced(agent, namespace)
        .delete_collection(&DeleteParams::default(), &Default::default())
        .await;
    assert!(
        matches!(forbidden, Err(kube::Error::Api(ref status)) if status.code == 403),
        "the agent may not delete: {forbidden:?}"
    );
}

async fn client_for_path(path: &Path) -> Client {
    let config = kube::Config::from_custom_kubeconfig(
        kube::config::Kubeconfig::read_from(path).expect("read the kubeconfig"),
        &kube::config::KubeConfigOptions::default(),
    )
    .await
    .expect("a client config");
    Client::try_from(config).expect("a client")
}

/// The JSON of a GET, or `None` for anything but 200.
async fn get(url: &str) -> Option<Value> {
    let response = reqwest::get(url).await.expect("the server answers");
    if response.status() != StatusCode::OK {
        return None;
    }
    Some(response.json().await.expect("JSON"))
}

/// Sends `method` to `url` and expects the server's refusal to act on a cluster's object.
async fn assert_refused_as_the_clusters(method: reqwest::Method, url: &str, namespace: &str) {
    let client = reqwest::Client::new();
    let mut request = client.request(method.clone(), url);
    if method == reqwest::Method::POST {
        request = request.json(&json!({}));
    }
    let response = request.send().await.expect("the server answers");
    assert_eq!(response.status(), StatusCode::CONFLICT, "{method} {url}");
    let body: Value = response.json().await.expect("JSON");
    let message = body["error"]["message"].as_str().unwrap_or_default();
    assert!(
        message.contains(&format!(
            "is managed by the cluster namespace \"{namespace}\"; use kubectl"
        )),
        "{method} {url}: {message}"
    );
}

/// Every row the agent wrote for `namespace` into the store at `db`, as the store reads them
/// back (without what the store sets on its own: versions and the times of writes).
async fn mirrored_rows(db: &str, namespace: &str) -> Value {
    let store = Store::connect(db).await.expect("connect to the store");
    let prefix = format!("{namespace}.");
    let mut experiments = Vec::new();
    for record in store.list_experiments().await.expect("experiments") {
        if !record.name.starts_with(&prefix) {
            continue;
        }
        let trials: Vec<Value> = store
            .list_trials(&record.name)
            .await
            .expect("trials")
            .into_iter()
            .map(|trial| {
                json!({
                    "name": trial.name, "experiment": trial.experiment_name, "spec": trial.spec,
                    "assignments": trial.assignments, "labels": trial.labels,
                    "condition": [trial.condition_type, trial.reason, trial.message],
                    "observation": trial.observation, "createdAt": trial.created_at,
                    "startTime": trial.start_time, "completionTime": trial.completion_time,
                })
            })
            .collect();
        experiments.push(json!({
            "name": record.name, "spec": record.spec, "status": record.status,
            "createdAt": record.created_at, "trials": trials,
        }));
    }
    let mut runs = Vec::new();
    for run in sextant_pipeline::database_store::list_runs(&store)
        .await
        .expect("runs")
    {
        if run.run_id.starts_with(&prefix) {
            let stored = RunStore::load_run(&store, &run.run_id)
                .await
                .expect("a run")
                .expect("the run is stored");
            runs.push(serde_json::to_value(&stored).expect("JSON"));
        }
    }
    store.close().await;
    json!({ "experiments": experiments, "runs": runs })
}

/// PostgreSQL's version (`xmin`) of every row the agent wrote for `namespace`: it changes with
/// every write of a row, even one that writes what the row held.
async fn row_versions(db: &str, namespace: &str) -> BTreeMap<String, String> {
    let mut connection = sqlx::PgConnection::connect(db)
        .await
        .expect("connect to PostgreSQL");
    let pattern = format!("{namespace}.%");
    let mut versions = BTreeMap::new();
    for (table, key, column) in [
        ("experiments", "name", "name"),
        ("trials", "name", "name"),
        ("pipeline_runs", "run_id", "run_id"),
        (
            "pipeline_steps",
            "run_id || '/' || step_name || '/' || item_index::text",
            "run_id",
        ),
    ] {
        let rows: Vec<(String, String)> = sqlx::query_as(&format!(
            "SELECT {key}, xmin::text FROM {table} WHERE {column} LIKE $1"
        ))
        .bind(&pattern)
        .fetch_all(&mut connection)
        .await
        .expect("row versions");
        versions.extend(
            rows.into_iter()
                .map(|(key, version)| (format!("{table}/{key}"), version)),
        );
    }
    versions
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pipeline_run_statuses_become_run_and_step_rows_the_server_shows_and_leaves_alone() {
    let database = TestDatabase::create(Backend::Postgres)
        .await
        .expect("a database");
    let mut world = World::new("agent-runs", &database.url).await;
    // Nothing but the test writes PipelineRun statuses here.
    world.harness.kill_controller();
    let agent = world.start_agent(&database.url);
    agent.caught_up().await;
    let scratch = tempfile::tempdir().expect("a scratch directory");
    let server = ServerProcess::start_on(scratch.path(), &database.url, &[], &[])
        .expect("start sextant server");
    let namespace = world.namespace().to_owned();
    let (train, doomed) = (world.id("train"), world.id("doomed"));

    world.create_run("train").await;
    world.create_run("doomed").await;
    let run_url = |server: &ServerProcess, id: &str| server.url(&format!("/runs/{id}"));
    wait_until("the runs' rows", || async {
        get(&run_url(&server, &train))
            .await
            .is_some_and(|run| run["phase"] == "Pending")
            && get(&run_url(&server, &doomed)).await.is_some()
    })
    .await;
    // The PipelineRun controller and Argo: the Workflow runs, its first node started.
    world
        .set_run_status(
            "train",
            json!({"phase": "Running", "workflowName": "train", "startedAt": "2026-01-01T00:00:01Z",
                   "steps": [{"name": "prepare", "phase": "Running", "startedAt": "2026-01-01T00:00:01Z"}]}),
        )
        .await;
    world
        .set_run_status("doomed", json!({"phase": "Running"}))
        .await;
    wait_until("the running step", || async {
        get(&run_url(&server, &train))
            .await
            .is_some_and(|run| run["phase"] == "Running" && run["steps"][0]["phase"] == "Running")
    })
    .await;
    // A server started now does not take the running run over.
    drop(server);
    let server = ServerProcess::start_on(scratch.path(), &database.url, &[], &[])
        .expect("start sextant server again");
    tokio::time::sleep(Duration::from_secs(1)).await;
    let running = get(&run_url(&server, &train)).await.expect("the run");
    assert_eq!(running["phase"], "Running", "{running}");
    assert!(!scratch.path().join("data/runs").join(&train).exists());
    world
        .set_run_status(
            "train",
            json!({"phase": "Succeeded", "startedAt": "2026-01-01T00:00:01Z", "finishedAt": "2026-01-01T00:00:09Z",
                   "steps": [
                       {"name": "prepare", "phase": "Succeeded", "startedAt": "2026-01-01T00:00:01Z",
                        "finishedAt": "2026-01-01T00:00:04Z", "outputs": {"count": "20"}},
                       {"name": "train", "phase": "Succeeded", "startedAt": "2026-01-01T00:00:04Z",
                        "finishedAt": "2026-01-01T00:00:09Z", "retries": 1},
                   ]}),
        )
        .await;
    wait_until("the finished run", || async {
        get(&run_url(&server, &train))
            .await
            .is_some_and(|run| run["phase"] == "Succeeded")
    })
    .await;
    let run = get(&run_url(&server, &train)).await.expect("the run");
    assert_eq!(run["pipelineName"], "train");
    assert_eq!(run["params"], json!({"rows": "20", "seed": "1"}));
    assert_eq!(run["startedAt"], "2026-01-01T00:00:01Z");
    assert_eq!(run["finishedAt"], "2026-01-01T00:00:09Z");
    let steps = run["steps"].as_array().expect("steps");
    assert_eq!(steps.len(), 2, "{run}");
    assert_eq!(
        (&steps[0]["step"], &steps[0]["phase"], &steps[0]["attempt"]),
        (&json!("prepare"), &json!("Succeeded"), &json!(1))
    );
    assert_eq!(steps[0]["outputParams"], json!({"count": "20"}));
    assert_eq!(steps[0]["outputArtifacts"], json!([]));
    assert_eq!(
        (&steps[1]["step"], &steps[1]["attempt"]),
        (&json!("train"), &json!(2))
    );
    let graph = get(&server.url(&format!("/runs/{train}/graph")))
        .await
        .expect("the run's graph");
    assert_eq!(graph["steps"][1]["dependencies"], json!(["prepare"]));
    for (method, path) in [
        (reqwest::Method::POST, format!("/runs/{train}/stop")),
        (reqwest::Method::POST, format!("/runs/{train}/retry")),
        (reqwest::Method::DELETE, format!("/runs/{train}")),
        (
            reqwest::Method::GET,
            format!("/runs/{train}/steps/prepare/log"),
        ),
    ] {
        assert_refused_as_the_clusters(method, &server.url(&path), &namespace).await;
    }

    // A failed node fails the run with its message.
    world.create_run("broken").await;
    world
        .set_run_status(
            "broken",
            json!({"phase": "Failed", "message": "step train failed: exit code 3",
                   "steps": [{"name": "prepare", "phase": "Succeeded"},
                             {"name": "train", "phase": "Failed", "message": "exit code 3"}]}),
        )
        .await;
    let broken = world.id("broken");
    wait_until("the failed run", || async {
        get(&run_url(&server, &broken)).await.is_some_and(|run| {
            run["phase"] == "Failed"
                && run["message"] == "step train failed: exit code 3"
                && run["steps"][1]["message"] == "exit code 3"
        })
    })
    .await;

    // Deleted from the cluster: a finished run stays, as history; an unfinished one goes.
    world.delete_run("train").await;
    world.delete_run("doomed").await;
    wait_until("the unfinished run's rows to go", || async {
        get(&run_url(&server, &doomed)).await.is_none()
    })
    .await;
    let kept = get(&run_url(&server, &train))
        .await
        .expect("the finished run is kept");
    assert_eq!(kept["phase"], "Succeeded");
    drop(agent);
    database.drop_database().await.expect("drop the database");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_experiment_appears_with_its_trials_and_their_logs_and_the_server_never_adopts_it() {
    let database = TestDatabase::create(Backend::Postgres)
        .await
        .expect("a database");
    let world = World::new("agent-exp", &database.url).await;
    let agent = world.start_agent(&database.url);
    agent.caught_up().await;
    let namespace = world.namespace().to_owned();
    let name = world.harness.start_experiment(json!({})).await;
    let id = world.id(&name);
    world.harness.wait_for_jobs(2).await;
    let scratch = tempfile::tempdir().expect("a scratch directory");
    let trials_url = |server: &ServerProcess| server.url(&format!("/experiments/{id}/trials"));
    let server = ServerProcess::start_on(scratch.path(), &database.url, &[], &[])
        .expect("start sextant server");
    wait_until("the running experiment's rows", || async {
        get(&trials_url(&server)).await.is_some_and(|list| {
            list["trials"]
                .as_array()
                .is_some_and(|trials| trials.len() == 2)
        })
    })
    .await;
    // A server started while it runs does not take it over: no driver, no local trial.
    drop(server);
    let server = ServerProcess::start_on(scratch.path(), &database.url, &[], &[])
        .expect("start sextant server again");
    for (method, path) in [
        (reqwest::Method::POST, format!("/experiments/{id}/stop")),
        (reqwest::Method::POST, format!("/experiments/{id}/resume")),
        (reqwest::Method::DELETE, format!("/experiments/{id}")),
    ] {
        assert_refused_as_the_clusters(method, &server.url(&path), &namespace).await;
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(
        !scratch.path().join("data/experiments").join(&id).exists(),
        "the server ran the cluster's experiment"
    );

    let finished = play_until_done(&world.harness, &name, 2, HashSet::new()).await;
    assert_eq!(finished.len(), 4);
    wait_until("the finished experiment's rows", || async {
        let Some(list) = get(&trials_url(&server)).await else {
            return false;
        };
        let experiment = get(&server.url(&format!("/experiments/{id}")))
            .await
            .unwrap_or_default();
        experiment["status"]["conditions"]
            .as_array()
            .and_then(|conditions| conditions.last())
            .is_some_and(|condition| condition["type"] == "Succeeded")
            && list["trials"].as_array().is_some_and(|trials| {
                trials.len() == 4
                    && trials.iter().all(|trial| {
                        trial["condition"] == "Succeeded" && trial["objectiveValue"].is_number()
                    })
            })
    })
    .await;
    let experiment = get(&server.url(&format!("/experiments/{id}")))
        .await
        .expect("the experiment");
    assert_eq!(experiment["metadata"]["name"], id.as_str());
    assert_eq!(
        experiment["metadata"]["annotations"]["sextant.dev/cluster-namespace"],
        namespace.as_str()
    );
    let best = experiment["status"]["currentOptimalTrial"]["bestTrialName"]
        .as_str()
        .expect("a best trial")
        .to_owned();
    assert!(best.starts_with(&format!("{namespace}.")), "{best}");
    for trial in world.harness.trials().await {
        let trial_id = world.id(&trial.name_any());
        let view = get(&server.url(&format!("/trials/{trial_id}")))
            .await
            .expect("the trial");
        assert_eq!(view["experimentName"], id.as_str());
        assert_eq!(
            view["parameterAssignments"][0]["value"],
            trial.spec.parameter_assignments[0].value.as_str()
        );
        let expected = loss_for(lr_of(&trial));
        assert_eq!(view["objectiveValue"].as_f64(), Some(expected), "{view}");
        // The log its trial pushed, under the same name.
        let log = get(&server.url(&format!("/trials/{trial_id}/observations")))
            .await
            .expect("the trial's observation log");
        assert_eq!(log["metricLogs"][0]["metric"]["name"], "loss", "{log}");
        assert_eq!(
            log["metricLogs"][0]["metric"]["value"].as_str(),
            Some(expected.to_string().as_str())
        );
    }
    assert!(!scratch.path().join("data/experiments").join(&id).exists());
    drop(agent);
    database.drop_database().await.expect("drop the database");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_back_from_downtime_writes_what_one_running_throughout_did_and_a_restart_writes_nothing()
 {
    let throughout_db = TestDatabase::create(Backend::Postgres)
        .await
        .expect("a database");
    let interrupted_db = TestDatabase::create(Backend::MySql)
        .await
        .expect("a database");
    let mut world = World::new("agent-catchup", &throughout_db.url).await;
    let namespace = world.namespace().to_owned();
    let throughout = world.start_agent(&throughout_db.url);
    let interrupted = world.start_agent(&interrupted_db.url);
    throughout.caught_up().await;
    interrupted.caught_up().await;
    let name = world.harness.start_experiment(json!({})).await;
    let doomed = world.harness.start_experiment(json!({})).await;
    world.harness.wait_for_jobs(4).await;
    wait_until(
        "both experiments' trials in the interrupted agent's store",
        || async {
            let rows = mirrored_rows(&interrupted_db.url, &namespace).await;
            rows["experiments"].as_array().is_some_and(|experiments| {
                experiments.len() == 2
                    && experiments.iter().all(|experiment| {
                        experiment["trials"]
                            .as_array()
                            .is_some_and(|trials| trials.len() == 2)
                    })
            })
        },
    )
    .await;

    // Down while one experiment is deleted, the other finishes, and a run starts and ends.
    drop(interrupted);
    world
        .harness
        .experiments()
        .delete(&doomed, &DeleteParams::default())
        .await
        .expect("delete an experiment");
    wait_until("the deleted experiment's trials to go", || async {
        world
            .harness
            .trials()
            .await
            .iter()
            .all(|trial| !trial.name_any().starts_with(&doomed))
    })
    .await;
    play_until_done(&world.harness, &name, 2, HashSet::new()).await;
    // From here on the test plays the PipelineRun controller and Argo.
    world.harness.kill_controller();
    world.create_run("nightly").await;
    world.create_run("abandoned").await;
    world
        .set_run_status(
            "nightly",
            json!({"phase": "Running", "steps": [{"name": "prepare", "phase": "Running"}]}),
        )
        .await;
    world
        .set_run_status("abandoned", json!({"phase": "Running"}))
        .await;
    let (nightly, abandoned) = (world.id("nightly"), world.id("abandoned"));
    let stored_phase = |id: String| {
        let db = throughout_db.url.clone();
        async move {
            let store = Store::connect(&db).await.expect("connect");
            let run = RunStore::load_run(&store, &id).await.expect("a run");
            store.close().await;
            run.map(|run| run.run.phase.to_string())
        }
    };
    wait_until("the running runs' rows", || async {
        stored_phase(nightly.clone()).await.as_deref() == Some("Running")
            && stored_phase(abandoned.clone()).await.is_some()
    })
    .await;
    world
        .set_run_status(
            "nightly",
            json!({"phase": "Succeeded", "finishedAt": "2026-01-01T01:00:00Z",
                   "steps": [{"name": "prepare", "phase": "Succeeded", "outputs": {"count": "7"}},
                             {"name": "train", "phase": "Succeeded"}]}),
        )
        .await;
    world.delete_run("abandoned").await;
    wait_until("the agent that ran throughout to see it all", || async {
        let rows = mirrored_rows(&throughout_db.url, &namespace).await;
        stored_phase(nightly.clone()).await.as_deref() == Some("Succeeded")
            && stored_phase(abandoned.clone()).await.is_none()
            && rows["experiments"].as_array().is_some_and(|experiments| {
                experiments.len() == 1
                    && experiments[0]["status"]
                        .as_str()
                        .is_some_and(|status| status.contains("\"Succeeded\""))
            })
    })
    .await;

    let back = world.start_agent(&interrupted_db.url);
    back.caught_up().await;
    let expected = mirrored_rows(&throughout_db.url, &namespace).await;
    assert_eq!(expected["experiments"].as_array().map(Vec::len), Some(1));
    assert_eq!(
        expected["experiments"][0]["trials"]
            .as_array()
            .map(Vec::len),
        Some(4)
    );
    assert_eq!(expected["runs"].as_array().map(Vec::len), Some(1));
    assert_eq!(
        mirrored_rows(&interrupted_db.url, &namespace).await,
        expected
    );

    // Restarted, and run twice at once: nothing is written again.
    let versions = row_versions(&throughout_db.url, &namespace).await;
    assert!(versions.len() >= 1 + 4 + 1 + 2, "{versions:?}");
    drop(throughout);
    let restarted = world.start_agent(&throughout_db.url);
    let second = world.start_agent(&throughout_db.url);
    restarted.caught_up().await;
    second.caught_up().await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(row_versions(&throughout_db.url, &namespace).await, versions);
    assert_eq!(
        mirrored_rows(&throughout_db.url, &namespace).await,
        expected
    );
    drop((restarted, second, back));
    throughout_db
        .drop_database()
        .await
        .expect("drop a database");
    interrupted_db
        .drop_database()
        .await
        .expect("drop a database");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_agents_deployment_is_accepted_by_the_api_server() {
    let client = client_for("kubeconfig").await;
    // The namespace for real, the rest as a server-side dry run: admission and validation
    // run, nothing is stored.
    crate::kubernetes::apply_file(&client, "deploy/namespace.yaml").await;
    crate::kubernetes::apply_file_with(
        &client,
        AGENT_ROLE_FILE,
        PatchParams::apply("sextant-tests").force().dry_run(),
    )
    .await;
}
