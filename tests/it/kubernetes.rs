//! Kubernetes mode against a real API server: `kube-apiserver` and `kube-controller-manager`
//! v1.20.2 (built from Debian's source package by `scripts/k8s-testbed`) beside etcd, on
//! loopback. `sextant controller` and `sextant serve` run as real processes; observation logs
//! go to the PostgreSQL server at 127.0.0.1:5432 (MariaDB at 127.0.0.1:3306 for one test).
//!
//! The controller runs as the user `sextant-controller`, bound to nothing but the ClusterRole of
//! `deploy/rbac.yaml`, so these tests also prove that role is enough.
//!
//! No kubelet runs here, so no pod ever starts: the tests play the node's part, and the
//! training program's. They push a trial's metrics to `sextant serve`'s DBManager, as the
//! program would, and patch the Job's status to `Complete` or `Failed`, as the Job controller
//! would once its pod ended.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::future::Future;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use k8s_openapi::api::authentication::v1::{TokenRequest, TokenRequestSpec};
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{Namespace, ServiceAccount};
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding, RoleBinding};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{DeleteParams, DynamicObject, Patch, PatchParams, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::core::{ApiResource, GroupVersionKind};
use kube::{Api, Client, ResourceExt};
use serde_json::{Value, json};
use sextant_controller::kube::ApiGroup;
use sextant_controller::kube::{ExperimentResource, TrialResource};
use sextant_proto::api;
use sextant_proto::api::db_manager_client::DbManagerClient;

use crate::support::Server;
use sextant_test_support::{mysql_url, postgres_url, unique_name as unique};

pub(crate) const WAIT: Duration = Duration::from_secs(60);

/// The testbed's directory, started once per test run.
pub(crate) fn testbed() -> &'static PathBuf {
    static TESTBED: OnceLock<PathBuf> = OnceLock::new();
    TESTBED.get_or_init(|| {
        if let Some(dir) = std::env::var_os("SEXTANT_TEST_K8S_DIR") {
            return PathBuf::from(dir);
        }
        let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
        let dir = root.join("target").join("k8s-testbed");
        let status = Command::new(root.join("scripts").join("k8s-testbed"))
            .arg("start")
            .arg(&dir)
            .stdout(Stdio::null())
            .status()
            .expect("run scripts/k8s-testbed");
        assert!(status.success(), "scripts/k8s-testbed start failed");
        dir
    })
}

pub(crate) async fn client_for(kubeconfig: &str) -> Client {
    let path = testbed().join(kubeconfig);
    let config = kube::Config::from_custom_kubeconfig(
        Kubeconfig::read_from(&path).expect("read the kubeconfig"),
        &KubeConfigOptions::default(),
    )
    .await
    .expect("a client config");
    Client::try_from(config).expect("a client")
}

/// Server-side applies every document of a YAML file with the administrator's client.
pub(crate) async fn apply_file(client: &Client, path: &str) {
    apply_file_with(client, path, PatchParams::apply("sextant-tests").force()).await;
}

pub(crate) async fn apply_file_with(client: &Client, path: &str, params: PatchParams) {
    let text = std::fs::read_to_string(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(path))
        .unwrap_or_else(|error| panic!("read {path}: {error}"));
    for document in serde_yaml::Deserializer::from_str(&text) {
        let value: Value = serde::Deserialize::deserialize(document).expect("YAML");
        if value.is_null() {
            continue;
        }
        let object: DynamicObject = serde_json::from_value(value.clone()).expect("an object");
        let types = object.types.clone().expect("apiVersion and kind");
        let gvk = GroupVersionKind::try_from(&types).expect("a group version kind");
        let resource = ApiResource::from_gvk(&gvk);
        let api: Api<DynamicObject> = match object.namespace() {
            Some(namespace) => Api::namespaced_with(client.clone(), &namespace, &resource),
            None => Api::all_with(client.clone(), &resource),
        };
        api.patch(&object.name_any(), &params, &Patch::Apply(&value))
            .await
            .unwrap_or_else(|error| panic!("apply {path} {}: {error}", object.name_any()));
    }
}

/// One test's world: a namespace, `sextant serve`, and `sextant controller` watching the
/// namespace as the least-privileged user.
pub(crate) struct Harness {
    pub(crate) client: Client,
    /// The group the controller serves Experiments and Trials under.
    pub(crate) group: ApiGroup,
    pub(crate) namespace: String,
    pub(crate) serve: Server,
    pub(crate) controller: Option<Child>,
    pub(crate) controller_args: Vec<String>,
    /// Who the controller runs as: the least-privileged user of the testbed, unless a test
    /// says otherwise.
    pub(crate) controller_kubeconfig: PathBuf,
    pub(crate) db: String,
}

impl Harness {
    pub(crate) async fn new(name: &str) -> Harness {
        Harness::with_controller_args(name, &[]).await
    }

    /// A harness whose controller also gets `args`; `{serve}` in one stands for the address of
    /// the test's `sextant serve`.
    pub(crate) async fn with_controller_args(name: &str, args: &[&str]) -> Harness {
        Harness::with_store(name, &postgres_url(), args).await
    }

    /// A harness whose observation logs go to the database at `db`.
    pub(crate) async fn with_store(name: &str, db: &str, args: &[&str]) -> Harness {
        Harness::with_group_and_store(name, ApiGroup::Sextant, db, args).await
    }

    /// A harness whose controller serves Experiments and Trials in `group`, with the
    /// definitions and the role `deploy/` ships for it.
    pub(crate) async fn with_group(name: &str, group: ApiGroup) -> Harness {
        let args = ["--api-group", group.name()];
        Harness::with_group_and_store(name, group, &postgres_url(), &args).await
    }

    pub(crate) async fn with_group_and_store(
        name: &str,
        group: ApiGroup,
        db: &str,
        args: &[&str],
    ) -> Harness {
        let client = client_for("kubeconfig").await;
        install_crds_and_role(&client, group).await;
        let namespace = unique(name);
        let namespaces: Api<Namespace> = Api::all(client.clone());
        namespaces
            .create(
                &PostParams::default(),
                &serde_json::from_value(json!({"metadata": {"name": namespace}}))
                    .expect("a namespace"),
            )
            .await
            .expect("create the namespace");
        let serve = Server::start_with_db(db, &[]).expect("start sextant serve");
        let mut controller_args: Vec<String> = args
            .iter()
            .map(|arg| arg.replace("{serve}", &serve.address.to_string()))
            .collect();
        if !args.contains(&"--poll-interval") {
            controller_args.extend(["--poll-interval".into(), "0.3".into()]);
        }
        let mut harness = Harness {
            client,
            group,
            namespace,
            serve,
            controller: None,
            controller_args,
            controller_kubeconfig: testbed().join("kubeconfig-controller"),
            db: db.to_owned(),
        };
        harness.start_controller();
        harness
    }

    pub(crate) fn start_controller(&mut self) {
        let child = Command::new(env!("CARGO_BIN_EXE_sextant"))
            .args(["controller", "--db", &self.db, "--db-manager-address"])
            .arg(self.serve.address.to_string())
            .args(["--namespace", &self.namespace])
            .args(["--health-listen", "127.0.0.1:0"])
            .args(&self.controller_args)
            .env("KUBECONFIG", &self.controller_kubeconfig)
            .env("SEXTANT_LOG", "warn,kube_client=error")
            .stdout(Stdio::null())
            .spawn()
            .expect("start sextant controller");
        self.controller = Some(child);
    }

    pub(crate) fn kill_controller(&mut self) {
        if let Some(mut child) = self.controller.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    pub(crate) fn experiments(&self) -> Api<ExperimentResource> {
        Api::namespaced_with(
            self.client.clone(),
            &self.namespace,
            &self.group.experiments(),
        )
    }

    pub(crate) fn trials_api(&self) -> Api<TrialResource> {
        Api::namespaced_with(self.client.clone(), &self.namespace, &self.group.trials())
    }

    pub(crate) fn jobs(&self) -> Api<Job> {
        Api::namespaced(self.client.clone(), &self.namespace)
    }

    pub(crate) async fn create_experiment(&self, experiment: Value) -> ExperimentResource {
        let experiment: ExperimentResource =
            serde_json::from_value(experiment).expect("an Experiment");
        self.experiments()
            .create(&PostParams::default(), &experiment)
            .await
            .expect("create the experiment")
    }

    /// Creates an experiment of the tests' template with `extra_spec` merged into its spec;
    /// returns its name.
    pub(crate) async fn start_experiment(&self, extra_spec: Value) -> String {
        let name = unique("exp");
        self.create_experiment(experiment(&name, extra_spec)).await;
        name
    }

    pub(crate) async fn experiment(&self, name: &str) -> ExperimentResource {
        self.experiments()
            .get(name)
            .await
            .expect("get the experiment")
    }

    pub(crate) async fn trials(&self) -> Vec<TrialResource> {
        let mut trials = self
            .trials_api()
            .list(&Default::default())
            .await
            .expect("list trials")
            .items;
        trials.sort_by_key(|trial| trial.creation_timestamp().map(|time| time.0));
        trials
    }

    pub(crate) async fn job_count(&self) -> usize {
        self.jobs()
            .list(&Default::default())
            .await
            .map(|jobs| jobs.items.len())
            .unwrap_or(0)
    }

    pub(crate) async fn wait_for_jobs(&self, count: usize) {
        wait_until(&format!("{count} jobs"), || async {
            self.job_count().await == count
        })
        .await;
    }

    pub(crate) async fn wait_for_job(&self, name: &str) {
        wait_until(&format!("job {name}"), || async {
            self.jobs().get_opt(name).await.ok().flatten().is_some()
        })
        .await;
    }

    /// Waits until the Job is deleted or being deleted (garbage collection finishes it).
    pub(crate) async fn wait_for_job_gone(&self, name: &str) {
        wait_until(&format!("job {name} to go"), || async {
            self.jobs()
                .get_opt(name)
                .await
                .map(|job| job.is_none_or(|job| job.metadata.deletion_timestamp.is_some()))
                .unwrap_or(false)
        })
        .await;
    }

    pub(crate) async fn wait_for_trial_condition(&self, name: &str, condition: &str) {
        wait_until(&format!("trial {name} {condition}"), || async {
            self.trials_api()
                .get(name)
                .await
                .ok()
                .is_some_and(|trial| condition_of(&trial).as_deref() == Some(condition))
        })
        .await;
    }

    pub(crate) async fn wait_for_experiment_condition(&self, name: &str, condition: &str) {
        wait_until(&format!("experiment {name} {condition}"), || async {
            experiment_condition(&self.experiment(name).await)
                .is_some_and(|(current, _, _)| current == condition)
        })
        .await;
    }

    /// The name a trial's metrics are stored under (what the controller gives the trial as
    /// `KATIB_TRIAL_NAME`).
    pub(crate) fn log_key(&self, trial: &str) -> String {
        sextant_controller::kube::observation_log_key(&self.namespace, trial)
    }

    /// Pushes `loss` for a trial to the DBManager, as its training program would.
    pub(crate) async fn report_loss(&self, trial: &str, loss: f64) {
        self.report_metrics(trial, &[("loss", loss)]).await;
    }

    /// Pushes `metrics` for `trial` to the DBManager, as the training program would.
    pub(crate) async fn report_metrics(&self, trial: &str, metrics: &[(&str, f64)]) {
        let mut db = DbManagerClient::connect(self.serve.endpoint())
            .await
            .expect("connect to the DBManager");
        db.report_observation_log(api::ReportObservationLogRequest {
            trial_name: self.log_key(trial),
            observation_log: Some(api::ObservationLog {
                metric_logs: metrics
                    .iter()
                    .map(|(name, value)| api::MetricLog {
                        time_stamp: "2026-01-01T00:00:00Z".into(),
                        metric: Some(api::Metric {
                            name: (*name).into(),
                            value: value.to_string(),
                        }),
                    })
                    .collect(),
            }),
        })
        .await
        .expect("report metrics");
    }

    /// Sets a Job's condition, as the Job controller does when its pod ends.
    pub(crate) async fn end_job(&self, name: &str, condition: &str, reason: &str) {
        assert!(
            self.end_job_unless_deleted(name, condition, reason).await,
            "the job {name} is gone"
        );
    }

    /// [`Harness::end_job`] for a Job the controller may delete at any moment (it stops the
    /// trials still running when an experiment completes): false when it is gone.
    pub(crate) async fn end_job_unless_deleted(
        &self,
        name: &str,
        condition: &str,
        reason: &str,
    ) -> bool {
        let patch = json!({"status": {"conditions": [{
            "type": condition, "status": "True", "reason": reason,
            "message": format!("set by the test ({reason})"),
        }]}});
        match self
            .jobs()
            .patch_status(name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
        {
            Ok(_) => true,
            Err(kube::Error::Api(response)) if response.code == 404 => false,
            Err(error) => panic!("patch the status of job {name}: {error}"),
        }
    }
}

impl Drop for Harness {
    fn drop(&mut self) {
        self.kill_controller();
    }
}

/// Where `deploy/` keeps the definitions and the extra role of `group`.
pub(crate) fn deploy_dir_of(group: ApiGroup) -> &'static str {
    match group {
        ApiGroup::Sextant => "deploy",
        ApiGroup::Katib => "deploy/katib",
    }
}

/// Installs the definitions of `group` and binds the controller's user to the ClusterRole of
/// `deploy/rbac.yaml` (and, for Katib's group, that of `deploy/katib/rbac.yaml`) and nothing
/// else.
pub(crate) async fn install_crds_and_role(client: &Client, group: ApiGroup) {
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    for kind in [group.experiments(), group.trials()] {
        let name = format!("{}.{}", kind.plural, kind.group);
        apply_file(
            client,
            &format!("{}/crds/{name}.yaml", deploy_dir_of(group)),
        )
        .await;
        wait_established(&crds, &name).await;
    }
    let mut role_files = vec!["deploy/rbac.yaml".to_owned()];
    if group == ApiGroup::Katib {
        role_files.push(format!("{}/rbac.yaml", deploy_dir_of(group)));
    }
    for file in role_files {
        bind_cluster_role_to_controller(client, &file).await;
    }
    // The API server learns of a new binding asynchronously: wait until the controller's user
    // may list what it watches, so a test does not start it before its rights exist.
    let controller = client_for("kubeconfig-controller").await;
    wait_until("the controller's rights", || async {
        Api::<ExperimentResource>::all_with(controller.clone(), &group.experiments())
            .list(&Default::default())
            .await
            .is_ok()
            && Api::<TrialResource>::all_with(controller.clone(), &group.trials())
                .list(&Default::default())
                .await
                .is_ok()
    })
    .await;
}

/// Applies the ClusterRole of `file` and binds it to the test controller's user.
pub(crate) async fn bind_cluster_role_to_controller(client: &Client, file: &str) {
    let text = std::fs::read_to_string(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(file))
        .unwrap_or_else(|error| panic!("read {file}: {error}"));
    let role: ClusterRole = serde_yaml::Deserializer::from_str(&text)
        .filter_map(|document| {
            let value: Value = serde::Deserialize::deserialize(document).ok()?;
            (value["kind"] == "ClusterRole").then(|| serde_json::from_value(value).ok())?
        })
        .next()
        .unwrap_or_else(|| panic!("{file} has a ClusterRole"));
    let role_name = role.name_any();
    let params = PatchParams::apply("sextant-tests").force();
    Api::<ClusterRole>::all(client.clone())
        .patch(&role_name, &params, &Patch::Apply(&role))
        .await
        .expect("apply the ClusterRole");
    let binding_name = format!("{role_name}-tests");
    let binding = json!({
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "ClusterRoleBinding",
        "metadata": {"name": binding_name},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": role_name},
        "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": "sextant-controller"}],
    });
    Api::<ClusterRoleBinding>::all(client.clone())
        .patch(&binding_name, &params, &Patch::Apply(&binding))
        .await
        .expect("bind the ClusterRole");
}

/// Writes to `path` a kubeconfig of the testbed that authenticates as the service account
/// `account` of `accounts` (with a token from a TokenRequest), so a process started with it has
/// that account's rights and no other.
pub(crate) async fn write_service_account_kubeconfig(
    accounts: &Api<ServiceAccount>,
    account: &str,
    path: &std::path::Path,
) {
    let token = accounts
        .create_token_request(
            account,
            &PostParams::default(),
            &TokenRequest {
                spec: TokenRequestSpec {
                    expiration_seconds: Some(3600),
                    ..TokenRequestSpec::default()
                },
                ..TokenRequest::default()
            },
        )
        .await
        .expect("a token")
        .status
        .expect("a token status")
        .token;
    let text = std::fs::read_to_string(testbed().join("kubeconfig-controller"))
        .expect("the testbed's kubeconfig");
    let mut kubeconfig: Value = serde_yaml::from_str(&text).expect("YAML");
    kubeconfig["users"][0]["user"] = json!({"token": token});
    std::fs::write(path, serde_yaml::to_string(&kubeconfig).expect("YAML"))
        .expect("write the kubeconfig");
}

pub(crate) async fn wait_established(crds: &Api<CustomResourceDefinition>, name: &str) {
    wait_until(&format!("{name} established"), || async {
        crds.get(name).await.ok().is_some_and(|crd| {
            crd.status
                .and_then(|status| status.conditions)
                .unwrap_or_default()
                .iter()
                .any(|condition| condition.type_ == "Established" && condition.status == "True")
        })
    })
    .await;
}

pub(crate) async fn wait_until<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = Instant::now() + WAIT;
    while Instant::now() < deadline {
        if check().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    panic!("timed out waiting for {what}");
}

pub(crate) fn experiment(name: &str, extra_spec: Value) -> Value {
    let mut experiment = json!({
        "apiVersion": "sextant.dev/v1beta1",
        "kind": "Experiment",
        "metadata": {"name": name},
        "spec": {
            "objective": {"type": "minimize", "objectiveMetricName": "loss"},
            "algorithm": {"algorithmName": "random", "algorithmSettings": [{"name": "random_state", "value": "11"}]},
            "parallelTrialCount": 2,
            "maxTrialCount": 4,
            "maxFailedTrialCount": 3,
            "parameters": [
                {"name": "lr", "parameterType": "double", "feasibleSpace": {"min": "0.01", "max": "0.1"}},
            ],
            "metricsCollectorSpec": {"collector": {"kind": "Push"}},
            "trialTemplate": {
                "primaryContainerName": "training",
                "trialParameters": [{"name": "learningRate", "reference": "lr"}],
                "trialSpec": {
                    "apiVersion": "batch/v1",
                    "kind": "Job",
                    "spec": {"backoffLimit": 0, "template": {"spec": {
                        "restartPolicy": "Never",
                        "containers": [{
                            "name": "training",
                            "image": "ghcr.io/example/trainer:1.0",
                            "command": ["python3", "train.py", "--lr=${trialParameters.learningRate}"],
                        }],
                    }}},
                },
            },
        },
    });
    if let (Some(spec), Value::Object(extra)) = (experiment["spec"].as_object_mut(), extra_spec) {
        spec.extend(extra);
    }
    experiment
}

/// A run object of any kind with a pod template holding the primary container.
pub(crate) fn run_object(api_version: &str, kind: &str) -> Value {
    json!({
        "apiVersion": api_version,
        "kind": kind,
        "metadata": {"annotations": {"lr": "${trialParameters.learningRate}"}},
        "spec": {"template": {"spec": {"containers": [{"name": "training", "image": "trainer"}]}}},
    })
}

pub(crate) fn condition_of(trial: &TrialResource) -> Option<String> {
    trial.status.as_ref().and_then(|status| {
        status
            .conditions
            .iter()
            .rev()
            .find(|condition| condition.status == sextant_experiment::api::ConditionStatus::True)
            .map(|condition| format!("{:?}", condition.condition_type))
    })
}

pub(crate) fn experiment_condition(
    experiment: &ExperimentResource,
) -> Option<(String, String, String)> {
    experiment.status.as_ref().and_then(|status| {
        status.conditions.last().map(|condition| {
            (
                format!("{:?}", condition.condition_type),
                condition.reason.clone(),
                condition.message.clone(),
            )
        })
    })
}

pub(crate) fn lr_of(trial: &TrialResource) -> f64 {
    trial
        .spec
        .parameter_assignments
        .iter()
        .find(|assignment| assignment.name == "lr")
        .and_then(|assignment| assignment.value.parse().ok())
        .expect("an lr value")
}

pub(crate) fn loss_for(lr: f64) -> f64 {
    (lr - 0.042).powi(2)
}

/// Plays trials to the end as they come: metrics, then the Job's completion. Checks on the way
/// that no more than `parallel` are active and that each Job carries its trial's parameters.
pub(crate) async fn play_until_done(
    harness: &Harness,
    experiment: &str,
    parallel: usize,
    mut finished: HashSet<String>,
) -> HashSet<String> {
    let deadline = Instant::now() + WAIT;
    loop {
        assert!(Instant::now() < deadline, "the experiment did not finish");
        let current = harness.experiment(experiment).await;
        if experiment_condition(&current)
            .is_some_and(|(condition, _, _)| condition == "Succeeded" || condition == "Failed")
        {
            return finished;
        }
        let trials = harness.trials().await;
        let active: Vec<&TrialResource> = trials
            .iter()
            .filter(|trial| !finished.contains(&trial.name_any()))
            .collect();
        assert!(
            active.len() <= parallel,
            "{} trials active at once",
            active.len()
        );
        for trial in active {
            let name = trial.name_any();
            let Ok(job) = harness.jobs().get(&name).await else {
                continue;
            };
            let container = &job
                .spec
                .as_ref()
                .expect("a job spec")
                .template
                .spec
                .as_ref()
                .expect("a pod spec")
                .containers[0];
            let errors = crate::k8s_schema::validate(&serde_json::to_value(&job).expect("JSON"));
            assert!(errors.is_ok(), "the Job {name} is invalid: {errors:?}");
            let lr = lr_of(trial);
            let command = container.command.clone().unwrap_or_default();
            assert_eq!(
                command.last().map(String::as_str),
                Some(format!("--lr={}", trial.spec.parameter_assignments[0].value).as_str())
            );
            assert!(
                (0.01..=0.1).contains(&lr),
                "lr {lr} outside the search space"
            );
            let env = container.env.clone().unwrap_or_default();
            assert!(
                env.iter().any(|var| var.name == "KATIB_TRIAL_NAME"
                    && var.value.as_deref() == Some(harness.log_key(&name).as_str())),
                "the trial's log key is in its environment"
            );
            harness.report_loss(&name, loss_for(lr)).await;
            // The experiment may have completed meanwhile and its controller deleted the Job.
            if harness
                .end_job_unless_deleted(&name, "Complete", "Completed")
                .await
            {
                finished.insert(name);
            }
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_two_objective_experiment_ends_with_its_pareto_front_and_its_infeasible_trial_off_it() {
    let harness = Harness::new("pareto").await;
    let name = harness
        .start_experiment(json!({
            "objective": {
                "objectives": [
                    {"metricName": "loss", "type": "minimize"},
                    {"metricName": "latency", "type": "minimize"},
                ],
                "additionalMetricNames": ["memory"],
            },
            "constraints": [{"metricName": "memory", "max": 100}],
            "algorithm": {"algorithmName": "nsga2", "algorithmSettings": [{"name": "random_state", "value": "5"}]},
        }))
        .await;
    // Per trial ordinal, (loss, latency, memory): the first two trade off, the third is
    // better in both but breaks the memory constraint, the fourth is dominated.
    let reports = [
        (1.0, 4.0, 50.0),
        (2.0, 3.0, 50.0),
        (0.5, 0.5, 500.0),
        (3.0, 5.0, 50.0),
    ];
    let mut finished = HashSet::new();
    let deadline = Instant::now() + Duration::from_secs(120);
    while finished.len() < reports.len() {
        assert!(Instant::now() < deadline, "only {finished:?} finished");
        for trial in harness.trials().await {
            let trial_name = trial.name_any();
            let ordinal: usize = trial_name
                .rsplit('-')
                .next()
                .and_then(|ordinal| ordinal.parse().ok())
                .expect("an ordinal");
            if finished.contains(&ordinal)
                || harness
                    .jobs()
                    .get_opt(&trial_name)
                    .await
                    .ok()
                    .flatten()
                    .is_none()
            {
                continue;
            }
            let (loss, latency, memory) = reports[ordinal];
            harness
                .report_metrics(
                    &trial_name,
                    &[("loss", loss), ("latency", latency), ("memory", memory)],
                )
                .await;
            harness.end_job(&trial_name, "Complete", "Completed").await;
            harness
                .wait_for_trial_condition(&trial_name, "Succeeded")
                .await;
            finished.insert(ordinal);
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    harness
        .wait_for_experiment_condition(&name, "Succeeded")
        .await;
    let status = harness.experiment(&name).await.status.expect("a status");
    let front: BTreeSet<String> = status
        .pareto_optimal_trials
        .iter()
        .map(|trial| trial.best_trial_name.clone())
        .collect();
    assert_eq!(
        front,
        BTreeSet::from([format!("{name}-0"), format!("{name}-1")])
    );
    assert_eq!(
        status.current_optimal_trial.best_trial_name,
        format!("{name}-0")
    );
    assert_eq!(status.trials_succeeded, 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_experiment_of_jobs_with_pushed_metrics_succeeds_with_the_best_trial() {
    let harness = Harness::new("success").await;
    let name = harness.start_experiment(json!({})).await;
    let played = play_until_done(&harness, &name, 2, HashSet::new()).await;

    let done = harness.experiment(&name).await;
    let (condition, reason, _) = experiment_condition(&done).expect("a condition");
    assert_eq!(
        (condition.as_str(), reason.as_str()),
        ("Succeeded", "ExperimentMaxTrialsReached")
    );
    let status = done.status.expect("a status");
    assert_eq!(status.trials, 4);
    assert_eq!(status.trials_succeeded, 4);
    let trials = harness.trials().await;
    assert_eq!(trials.len(), 4);
    assert_eq!(played.len(), 4);
    let best = trials
        .iter()
        .min_by(|a, b| loss_for(lr_of(a)).total_cmp(&loss_for(lr_of(b))))
        .expect("trials");
    assert_eq!(
        status.current_optimal_trial.best_trial_name,
        best.name_any()
    );
    // Counts, not names: the status does not grow with the number of finished trials.
    assert!(status.succeeded_trial_list.is_empty());
    for trial in &trials {
        assert_eq!(
            condition_of(trial).as_deref(),
            Some("Succeeded"),
            "{}",
            trial.name_any()
        );
    }
    // Finished trials' Jobs are deleted (the template does not say retain).
    wait_until("the finished jobs to be deleted", || async {
        harness
            .jobs()
            .list(&Default::default())
            .await
            .map(|jobs| {
                jobs.items
                    .iter()
                    .all(|job| job.metadata.deletion_timestamp.is_some())
            })
            .unwrap_or(false)
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_jobs_fail_trials_and_the_experiment_at_max_failed_trial_count() {
    let harness = Harness::new("failure").await;
    let name = harness
        .start_experiment(json!({"maxFailedTrialCount": 2, "maxTrialCount": 5}))
        .await;
    let mut failed = HashSet::new();
    let deadline = Instant::now() + WAIT;
    while experiment_condition(&harness.experiment(&name).await)
        .is_none_or(|(condition, _, _)| condition != "Failed")
    {
        assert!(Instant::now() < deadline, "the experiment did not fail");
        for trial in harness.trials().await {
            let trial_name = trial.name_any();
            if failed.contains(&trial_name) {
                continue;
            }
            // A trial's Job may not exist yet, or be deleted by the controller once the
            // experiment has failed: neither is the test's business.
            if harness
                .end_job_unless_deleted(&trial_name, "Failed", "BackoffLimitExceeded")
                .await
            {
                failed.insert(trial_name);
            }
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let done = harness.experiment(&name).await;
    let (_, reason, message) = experiment_condition(&done).expect("a condition");
    assert_eq!(reason, "ExperimentFailed");
    assert!(message.contains("max failed count"), "{message}");
    let trials = harness.trials().await;
    let failed_trials: Vec<&TrialResource> = trials
        .iter()
        .filter(|trial| condition_of(trial).as_deref() == Some("Failed"))
        .collect();
    assert!(failed_trials.len() >= 2);
    let reason = &failed_trials[0]
        .status
        .as_ref()
        .expect("a status")
        .conditions
        .last()
        .expect("a condition")
        .reason;
    assert!(reason.contains("BackoffLimitExceeded"), "{reason}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invalid_experiment_fails_naming_each_field_path() {
    let harness = Harness::new("invalid").await;
    let name = harness
        .start_experiment(
            json!({
                "parameters": [{"name": "lr", "parameterType": "double", "feasibleSpace": {"min": "5", "max": "1"}}],
                "algorithm": {"algorithmName": "no-such-algorithm"},
            }),
        )
        .await;
    harness.wait_for_experiment_condition(&name, "Failed").await;
    let (_, reason, message) =
        experiment_condition(&harness.experiment(&name).await).expect("a condition");
    assert_eq!(reason, "ExperimentSpecInvalid");
    assert!(
        message.contains("spec.parameters[0].feasibleSpace"),
        "{message}"
    );
    assert!(
        message.contains("spec.algorithm.algorithmName"),
        "{message}"
    );
    assert!(
        harness.trials().await.is_empty(),
        "an invalid experiment made trials"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_warm_start_runs_its_enqueued_points_first_and_reads_its_sources_in_the_namespace() {
    let harness = Harness::new("warm").await;
    let first = harness
        .start_experiment(json!({"warmStart": {"enqueue": [{"lr": 0.05}, {"lr": "0.02"}]}}))
        .await;
    play_until_done(&harness, &first, 2, HashSet::new()).await;
    let ordinal = |trial: &TrialResource| -> u64 {
        let name = trial.name_any();
        name.rsplit('-')
            .next()
            .and_then(|ordinal| ordinal.parse().ok())
            .expect("an ordinal")
    };
    let mut trials = harness.trials().await;
    trials.sort_by_key(ordinal);
    let enqueued: Vec<(Option<&str>, f64)> = trials
        .iter()
        .map(|trial| {
            (
                trial
                    .spec
                    .labels
                    .get("sextant.dev/enqueued-index")
                    .map(String::as_str),
                lr_of(trial),
            )
        })
        .collect();
    assert_eq!(
        enqueued,
        [
            (Some("0"), 0.05),
            (Some("1"), 0.02),
            (None, lr_of(&trials[2])),
            (None, lr_of(&trials[3]))
        ],
        "the enqueued points first, each once"
    );

    // Warm started from the first: its own four trials, tpe learning from the first's.
    let second = harness
        .start_experiment(json!({
            "algorithm": {"algorithmName": "tpe"},
            "warmStart": {"fromExperiments": [first]},
        }))
        .await;
    let finished = trials.iter().map(|trial| trial.name_any()).collect();
    play_until_done(&harness, &second, 2, finished).await;
    let done = harness.experiment(&second).await;
    let (condition, reason, _) = experiment_condition(&done).expect("a condition");
    assert_eq!(
        (condition.as_str(), reason.as_str()),
        ("Succeeded", "ExperimentMaxTrialsReached")
    );
    assert_eq!(done.status.expect("a status").trials, 4);

    // A source the namespace does not hold fails the experiment, naming it.
    let third = harness
        .start_experiment(json!({
            "algorithm": {"algorithmName": "tpe"},
            "warmStart": {"fromExperiments": [first, "nosuch"]},
        }))
        .await;
    harness
        .wait_for_experiment_condition(&third, "Failed")
        .await;
    let (_, reason, message) =
        experiment_condition(&harness.experiment(&third).await).expect("a condition");
    assert_eq!(reason, "ExperimentSpecInvalid");
    assert_eq!(
        message,
        "spec.warmStart.fromExperiments[1]: names no experiment in the namespace (\"nosuch\")"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_objects_of_unknown_or_forbidden_kinds_fail_their_trials_with_the_reason() {
    let harness = Harness::new("kinds").await;
    let cases = [
        ("UnknownKind", run_object("example.com/v1", "Training")),
        // deploy/rbac.yaml does not let the controller create Deployments.
        ("Forbidden", run_object("apps/v1", "Deployment")),
    ];
    for (expected, trial_spec) in cases {
        let name = harness
            .start_experiment(json!({
                "maxTrialCount": 1, "parallelTrialCount": 1, "maxFailedTrialCount": 1,
                "trialTemplate": {
                    "primaryContainerName": "training",
                    "trialParameters": [{"name": "learningRate", "reference": "lr"}],
                    "successCondition": "status.conditions.#(type==\"Done\")#",
                    "failureCondition": "status.conditions.#(type==\"Broken\")#",
                    "trialSpec": trial_spec,
                },
            }))
            .await;
        wait_until(&format!("a trial failed with {expected}"), || async {
            harness.trials().await.iter().any(|trial| {
                trial.labels().get("katib.kubeflow.org/experiment") == Some(&name)
                    && trial
                        .status
                        .as_ref()
                        .and_then(|status| status.conditions.last())
                        .is_some_and(|condition| {
                            format!("{:?}", condition.condition_type) == "Failed"
                                && condition.reason.contains(expected)
                        })
            })
        })
        .await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleting_an_experiment_removes_its_trials_jobs_and_observation_logs() {
    let harness = Harness::new("deletion").await;
    let name = harness
        .start_experiment(
            json!({"maxTrialCount": 2, "parallelTrialCount": 2, "maxFailedTrialCount": 1}),
        )
        .await;
    harness.wait_for_jobs(2).await;
    let trial_names: Vec<String> = harness
        .trials()
        .await
        .iter()
        .map(ResourceExt::name_any)
        .collect();
    for trial in &trial_names {
        harness.report_loss(trial, 0.5).await;
    }
    let mut db = DbManagerClient::connect(harness.serve.endpoint())
        .await
        .expect("connect");
    let logged = |db: &mut DbManagerClient<tonic::transport::Channel>, trial: String| {
        let mut db = db.clone();
        let key = harness.log_key(&trial);
        async move {
            db.get_observation_log(api::GetObservationLogRequest {
                trial_name: key,
                ..Default::default()
            })
            .await
            .expect("get the log")
            .into_inner()
            .observation_log
            .map(|log| log.metric_logs.len())
            .unwrap_or(0)
        }
    };
    assert_eq!(logged(&mut db, trial_names[0].clone()).await, 1);

    harness
        .experiments()
        // kubectl's default: the Experiment goes at once, garbage collection takes the rest.
        .delete(&name, &DeleteParams::background())
        .await
        .expect("delete the experiment");
    wait_until("trials, jobs and the experiment to be gone", || async {
        harness.trials().await.is_empty()
            && harness
                .jobs()
                .list(&Default::default())
                .await
                .map(|jobs| jobs.items.is_empty())
                .unwrap_or(false)
            && harness
                .experiments()
                .get_opt(&name)
                .await
                .map(|found| found.is_none())
                .unwrap_or(false)
    })
    .await;
    for trial in trial_names {
        assert_eq!(
            logged(&mut db, trial.clone()).await,
            0,
            "the log of {trial} outlived it"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_controller_resumes_without_duplicate_trials() {
    let mut harness = Harness::new("restart").await;
    let name = harness.start_experiment(json!({})).await;
    wait_until("the first trials' jobs", || async {
        harness.trials().await.len() == 2
            && harness
                .jobs()
                .list(&Default::default())
                .await
                .map(|jobs| jobs.items.len() == 2)
                .unwrap_or(false)
    })
    .await;
    // Finish one trial while the controller is down: the new controller must see it.
    harness.kill_controller();
    let first_trial = harness.trials().await.remove(0);
    let first = first_trial.name_any();
    harness
        .report_loss(&first, loss_for(lr_of(&first_trial)))
        .await;
    harness.end_job(&first, "Complete", "Completed").await;
    harness.start_controller();

    play_until_done(&harness, &name, 2, HashSet::from([first])).await;
    let trials = harness.trials().await;
    let names: BTreeMap<String, usize> = trials.iter().map(|trial| (trial.name_any(), 1)).collect();
    assert_eq!(trials.len(), 4, "trials: {names:?}");
    let expected: Vec<String> = (0..4).map(|ordinal| format!("{name}-{ordinal}")).collect();
    assert_eq!(names.keys().cloned().collect::<Vec<_>>(), expected);
    let (condition, _, _) =
        experiment_condition(&harness.experiment(&name).await).expect("a condition");
    assert_eq!(condition, "Succeeded");
}

#[test]
fn the_committed_crds_are_the_generated_ones() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    for group in ApiGroup::ALL {
        let documents =
            sextant_controller::kube::crd::crd_documents(group).expect("render the CRDs");
        let expected = match group {
            ApiGroup::Sextant => 5,
            ApiGroup::Katib => 2,
        };
        assert_eq!(
            documents.len(),
            expected,
            "Experiment and Trial (and in sextant.dev Pipeline, PipelineRun, RecurringRun)"
        );
        for (name, yaml) in documents {
            let dir = format!("{}/crds", deploy_dir_of(group));
            let path = root.join(&dir).join(format!("{name}.yaml"));
            let committed = std::fs::read_to_string(&path).unwrap_or_default();
            assert!(
                committed == yaml,
                "{} differs from the generated definition; run `cargo run -- crd --api-group {group} --dir {dir}`",
                path.display()
            );
        }
    }
}

/// Argo's Workflow kind, from the definition `scripts/argo-workflow-crd` writes (Argo's minimal
/// one: no Argo controller runs here, so Workflows are created and their status patched).
pub(crate) async fn install_workflow_crd(client: &Client) {
    apply_file(client, "tests/data/k8s/argo-workflow-crd.yaml").await;
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    wait_established(&crds, "workflows.argoproj.io").await;
}

/// Argo Workflows in the harness's namespace.
pub(crate) fn workflows(harness: &Harness) -> Api<DynamicObject> {
    Api::namespaced_with(
        harness.client.clone(),
        &harness.namespace,
        &ApiResource::from_gvk(&GroupVersionKind::gvk(
            "argoproj.io",
            "v1alpha1",
            "Workflow",
        )),
    )
}

/// Where a Workflow as read back from the API server breaks Argo's schema, leaving out what
/// the API server added to what the controller made (`managedFields`) and the status.
pub(crate) fn created_workflow_schema_errors(workflow: &Value) -> Vec<String> {
    let mut created = workflow.clone();
    created.as_object_mut().expect("an object").remove("status");
    created["metadata"]
        .as_object_mut()
        .expect("metadata")
        .remove("managedFields");
    argo_schema_errors(&created)
}

pub(crate) fn argo_schema_errors(workflow: &Value) -> Vec<String> {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/pipeline/tests/data/argo-workflows-schema.json"
    );
    let schema: Value =
        serde_json::from_str(&std::fs::read_to_string(path).expect("the Argo schema"))
            .expect("schema JSON");
    let validator = jsonschema::validator_for(&schema).expect("a usable schema");
    validator
        .iter_errors(workflow)
        .map(|error| format!("{error} at {}", error.instance_path()))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pipeline_trials_run_as_argo_workflows_with_their_metrics_step_wrapped() {
    let harness = Harness::new("pipeline").await;
    install_workflow_crd(&harness.client).await;
    let name = harness
        .start_experiment(
            json!({
                "maxTrialCount": 1, "parallelTrialCount": 1, "maxFailedTrialCount": 1,
                "metricsCollectorSpec": {"collector": {"kind": "StdOut"}},
                "trialTemplate": {
                    "trialParameters": [{"name": "learningRate", "reference": "lr"}],
                    "trialSpec": {
                        "apiVersion": "sextant.dev/v1beta1",
                        "kind": "Pipeline",
                        "spec": {"steps": [
                            {"name": "prepare", "image": "busybox:1", "command": ["sh", "-c", "echo data > data.csv"],
                             "outputs": {"artifacts": [{"name": "data", "path": "data.csv"}]}},
                            {"name": "train", "image": "trainer:1",
                             "command": ["python3", "train.py", "--data", "{{steps.prepare.outputs.artifacts.data}}", "--lr", "${trialParameters.learningRate}"]},
                        ]},
                    },
                },
            }),
        )
        .await;
    let workflows = workflows(&harness);
    let trial_name = format!("{name}-0");
    wait_until("the trial's workflow", || async {
        workflows
            .get_opt(&trial_name)
            .await
            .ok()
            .flatten()
            .is_some()
    })
    .await;
    let workflow = serde_json::to_value(workflows.get(&trial_name).await.expect("the workflow"))
        .expect("JSON");
    let errors = created_workflow_schema_errors(&workflow);
    assert!(errors.is_empty(), "schema errors: {errors:#?}");
    let templates = workflow["spec"]["templates"].as_array().expect("templates");
    let train = templates
        .iter()
        .find(|template| template["name"] == "step-train")
        .expect("the train step's template");
    let command: Vec<&str> = train["container"]["command"]
        .as_array()
        .expect("a command")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert_eq!(command[..2], ["sextant", "collect"], "{command:?}");
    let trial = harness
        .trials_api()
        .get(&trial_name)
        .await
        .expect("the trial");
    let lr = trial.spec.parameter_assignments[0].value.clone();
    assert_eq!(command[command.len() - 2..], ["--lr", lr.as_str()]);

    // Play Argo's part: the metrics step's collector pushes, the workflow succeeds.
    harness.report_loss(&trial_name, 0.25).await;
    workflows
        .patch(
            &trial_name,
            &PatchParams::default(),
            &Patch::Merge(&json!({"status": {"phase": "Succeeded"}})),
        )
        .await
        .expect("patch the workflow");
    harness
        .wait_for_experiment_condition(&name, "Succeeded")
        .await;
    let trial = harness
        .trials_api()
        .get(&trial_name)
        .await
        .expect("the trial");
    assert_eq!(condition_of(&trial).as_deref(), Some("Succeeded"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reaching_the_goal_stops_the_running_trials_and_records_an_event() {
    let harness = Harness::new("goal").await;
    let name = harness
        .start_experiment(json!({
            "objective": {"type": "minimize", "objectiveMetricName": "loss", "goal": 0.1},
            "maxTrialCount": 10,
        }))
        .await;
    harness.wait_for_jobs(2).await;
    let trials = harness.trials().await;
    let (winner, other) = (trials[0].name_any(), trials[1].name_any());
    harness.report_loss(&winner, 0.01).await;
    harness.end_job(&winner, "Complete", "Completed").await;

    harness.wait_for_trial_condition(&other, "Killed").await;
    let (condition, reason, _) =
        experiment_condition(&harness.experiment(&name).await).expect("a condition");
    assert_eq!(
        (condition.as_str(), reason.as_str()),
        ("Succeeded", "ExperimentGoalReached")
    );
    harness.wait_for_job_gone(&other).await;
    assert_eq!(harness.trials().await.len(), 2, "no trial after the goal");
    let events: Api<DynamicObject> = Api::namespaced_with(
        harness.client.clone(),
        &harness.namespace,
        &ApiResource::from_gvk(&GroupVersionKind::gvk("events.k8s.io", "v1", "Event")),
    );
    wait_until("an event of the experiment's success", || async {
        events
            .list(&Default::default())
            .await
            .map(|list| {
                list.items
                    .iter()
                    .any(|event| event.data["reason"] == "ExperimentGoalReached")
            })
            .unwrap_or(false)
    })
    .await;
}

/// A process's state as `/proc` tells it (`S (sleeping)`, `Z (zombie)` once it has exited).
fn process_state(child: &Child) -> String {
    std::fs::read_to_string(format!("/proc/{}/status", child.id()))
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find_map(|line| line.strip_prefix("State:"))
                .map(|state| state.trim().to_owned())
        })
        .unwrap_or_else(|| "gone".into())
}

/// The controller's peak resident memory, from `/proc`.
fn peak_memory_kib(child: &Child) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{}/status", child.id()))
        .expect("the controller's /proc status");
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmHWM:"))
        .and_then(|value| value.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmHWM")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hundred_experiments_are_reconciled_in_bounded_memory() {
    // A slower poll, as a cluster of this size would run with: 200 active trials.
    let harness = Harness::with_controller_args("scale", &["--poll-interval", "2"]).await;
    let experiments = 100;
    for _ in 0..experiments {
        harness
            .create_experiment(experiment(&unique("exp"), json!({"maxTrialCount": 10})))
            .await;
    }
    // Every experiment at its parallelism: 200 Trials, each with its Job. What was seen last,
    // and whether the controller still runs, go into the failure message.
    let controller = harness.controller.as_ref().expect("a controller");
    // Alone this takes seconds; the budget is for a machine loaded by the rest of the suite.
    const BUDGET: Duration = Duration::from_secs(420);
    let deadline = Instant::now() + BUDGET;
    let (mut jobs, mut running) = (0, 0);
    while jobs != 2 * experiments || running != experiments {
        assert!(
            Instant::now() < deadline,
            "timed out after {BUDGET:?}: {jobs} of {} jobs, {running} of {experiments} experiments \
             with two running trials; the controller process is {}",
            2 * experiments,
            process_state(controller)
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
        jobs = harness
            .jobs()
            .list(&Default::default())
            .await
            .map(|jobs| jobs.items.len())
            .unwrap_or(0);
        running = harness
            .experiments()
            .list(&Default::default())
            .await
            .map(|list| {
                list.items
                    .iter()
                    .filter(|experiment| {
                        experiment
                            .status
                            .as_ref()
                            .is_some_and(|status| status.trials_running == 2)
                    })
                    .count()
            })
            .unwrap_or(0);
    }
    let peak = peak_memory_kib(harness.controller.as_ref().expect("a controller"));
    eprintln!(
        "controller peak memory reconciling {experiments} experiments: {:.1} MiB",
        peak as f64 / 1024.0
    );
    assert!(peak < 200 * 1024, "peak memory {peak} KiB");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trial_template_from_a_config_map_is_substituted_into_the_job() {
    // Suggestions from a Katib-API Suggestion service (the test's `sextant serve`) this time.
    let harness =
        Harness::with_controller_args("configmap", &["--suggestion-service", "{serve}"]).await;
    let template = serde_yaml::to_string(&json!({
        "apiVersion": "batch/v1",
        "kind": "Job",
        "spec": {"template": {"spec": {"restartPolicy": "Never", "containers": [{
            "name": "training", "image": "trainer:1",
            "command": ["python3", "train.py"], "args": ["--lr", "${trialParameters.learningRate}"],
        }]}}},
    }))
    .expect("YAML");
    let config_maps: Api<k8s_openapi::api::core::v1::ConfigMap> =
        Api::namespaced(harness.client.clone(), &harness.namespace);
    config_maps
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({
                "metadata": {"name": "trial-templates"},
                "data": {"train.yaml": template},
            }))
            .expect("a ConfigMap"),
        )
        .await
        .expect("create the ConfigMap");
    let name = harness
        .start_experiment(json!({
            "maxTrialCount": 1, "parallelTrialCount": 1, "maxFailedTrialCount": 1,
            "trialTemplate": {
                "primaryContainerName": "training",
                "trialParameters": [{"name": "learningRate", "reference": "lr"}],
                "configMap": {"configMapName": "trial-templates", "templatePath": "train.yaml"},
            },
        }))
        .await;
    let trial_name = format!("{name}-0");
    harness.wait_for_job(&trial_name).await;
    let job = harness.jobs().get(&trial_name).await.expect("the job");
    let trial = harness
        .trials_api()
        .get(&trial_name)
        .await
        .expect("the trial");
    let container = &job
        .spec
        .and_then(|spec| spec.template.spec)
        .expect("a pod spec")
        .containers[0];
    assert_eq!(
        container.args.clone().unwrap_or_default(),
        ["--lr", trial.spec.parameter_assignments[0].value.as_str()]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_conditional_parameter_is_left_out_of_the_jobs_that_do_not_use_it() {
    let harness = Harness::new("conditional").await;
    let name = harness
        .start_experiment(json!({
            "maxTrialCount": 6, "parallelTrialCount": 6, "maxFailedTrialCount": 1,
            "parameters": [
                {"name": "lr", "parameterType": "double", "feasibleSpace": {"min": "0.01", "max": "0.1"}},
                {"name": "optimizer", "parameterType": "categorical", "feasibleSpace": {"list": ["sgd", "adam"]}},
                {"name": "momentum", "parameterType": "double", "feasibleSpace": {"min": "0.5", "max": "0.99"},
                 "condition": {"parameter": "optimizer", "values": ["sgd"]}},
            ],
            "trialTemplate": {
                "primaryContainerName": "training",
                "trialParameters": [
                    {"name": "learningRate", "reference": "lr"},
                    {"name": "optimizer", "reference": "optimizer"},
                    {"name": "momentum", "reference": "momentum"},
                ],
                "trialSpec": {
                    "apiVersion": "batch/v1",
                    "kind": "Job",
                    "spec": {"backoffLimit": 0, "template": {"spec": {
                        "restartPolicy": "Never",
                        "containers": [{
                            "name": "training",
                            "image": "ghcr.io/example/trainer:1.0",
                            "command": [
                                "python3", "train.py",
                                "--lr=${trialParameters.learningRate}",
                                "--optimizer=${trialParameters.optimizer}",
                                "--momentum=${trialParameters.momentum}",
                            ],
                        }],
                    }}},
                },
            },
        }))
        .await;
    harness.wait_for_jobs(6).await;
    let mut optimizers = BTreeSet::new();
    for ordinal in 0..6 {
        let trial_name = format!("{name}-{ordinal}");
        let trial = harness
            .trials_api()
            .get(&trial_name)
            .await
            .expect("the trial");
        let assigned: BTreeMap<&str, &str> = trial
            .spec
            .parameter_assignments
            .iter()
            .map(|assignment| (assignment.name.as_str(), assignment.value.as_str()))
            .collect();
        let job = harness.jobs().get(&trial_name).await.expect("the job");
        let command = job
            .spec
            .and_then(|spec| spec.template.spec)
            .expect("a pod spec")
            .containers[0]
            .command
            .clone()
            .unwrap_or_default();
        let mut expected = vec![
            "python3".to_string(),
            "train.py".to_string(),
            format!("--lr={}", assigned["lr"]),
            format!("--optimizer={}", assigned["optimizer"]),
        ];
        optimizers.insert(assigned["optimizer"].to_string());
        match assigned["optimizer"] {
            "sgd" => expected.push(format!("--momentum={}", assigned["momentum"])),
            other => {
                assert_eq!(other, "adam");
                assert!(!assigned.contains_key("momentum"), "{assigned:?}");
            }
        }
        assert_eq!(command, expected, "{trial_name}");
    }
    assert_eq!(
        optimizers.len(),
        2,
        "both branches among the trials: {optimizers:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_controller_stops_gracefully_on_sigterm() {
    let mut harness = Harness::new("sigterm").await;
    // Signalled while it has work: its trials are running and polled.
    harness
        .create_experiment(experiment(&unique("exp"), json!({})))
        .await;
    harness.wait_for_jobs(2).await;
    let mut child = harness.controller.take().expect("a controller");
    let signalled = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("kill");
    assert!(signalled.success());
    let deadline = Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break status;
        }
        assert!(Instant::now() < deadline, "still running after SIGTERM");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(status.success(), "exit status {status}");
}

/// A controller started before its role is bound starts the experiment's trials within seconds
/// of the binding. It runs as a service account of the test's namespace, an identity no other
/// test binds, given the ClusterRole by a RoleBinding in that namespace only.
///
/// Before the fix the controller's watches, refused until then, shared kube-runtime's default
/// backoff: after the 20 s without rights here it slept up to a minute more, then often again
/// for a list sent just before the binding took effect, so the Jobs came a minute or two late.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_controller_started_before_its_role_starts_the_trials_once_it_is_bound() {
    const WITHOUT_RIGHTS: Duration = Duration::from_secs(20);
    // Twice the longest retry of a forbidden watch (4 s), and room for a loaded machine.
    const RECOVERY: Duration = Duration::from_secs(30);
    let mut harness = Harness::new("late-role").await;
    harness.kill_controller();
    let account = "late-controller";
    let accounts: Api<ServiceAccount> = Api::namespaced(harness.client.clone(), &harness.namespace);
    accounts
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({"metadata": {"name": account}})).expect("an account"),
        )
        .await
        .expect("create the service account");
    let scratch = tempfile::tempdir().expect("a scratch directory");
    harness.controller_kubeconfig = scratch.path().join("kubeconfig");
    write_service_account_kubeconfig(&accounts, account, &harness.controller_kubeconfig).await;
    harness.start_controller();
    harness.start_experiment(json!({})).await;

    tokio::time::sleep(WITHOUT_RIGHTS).await;
    assert_eq!(harness.job_count().await, 0, "no rights, no Jobs");
    let binding = json!({
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "RoleBinding",
        "metadata": {"name": account, "namespace": harness.namespace},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "sextant-controller"},
        "subjects": [{"kind": "ServiceAccount", "name": account, "namespace": harness.namespace}],
    });
    Api::<RoleBinding>::namespaced(harness.client.clone(), &harness.namespace)
        .create(
            &PostParams::default(),
            &serde_json::from_value(binding).expect("a binding"),
        )
        .await
        .expect("bind the role");
    let bound = Instant::now();
    while harness.job_count().await < 2 {
        assert!(
            bound.elapsed() < RECOVERY,
            "the trials' Jobs did not come within {RECOVERY:?} of the binding"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_kubernetes_example_is_accepted_and_starts_its_trials() {
    let harness = Harness::new("example").await;
    let text = std::fs::read_to_string(
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("examples/kubernetes/random-job.yaml"),
    )
    .expect("the example");
    let example: Value = serde_yaml::from_str(&text).expect("YAML");
    harness.create_experiment(example).await;
    harness.wait_for_jobs(2).await;
    let experiment = harness.experiment("random-job").await;
    let (condition, _, _) = experiment_condition(&experiment).expect("a condition");
    assert_eq!(condition, "Running");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn median_stopping_stops_a_trial_worse_than_the_finished_ones() {
    // Observation logs in MySQL (MariaDB) this time; the other tests use PostgreSQL.
    let harness = Harness::with_store("medianstop", &mysql_url(), &[]).await;
    let name = harness
        .start_experiment(json!({
            "parallelTrialCount": 1, "maxTrialCount": 3,
            "earlyStopping": {"algorithmName": "medianstop", "algorithmSettings": [
                {"name": "min_trials_required", "value": "1"},
                {"name": "start_step", "value": "2"},
            ]},
        }))
        .await;
    let first = format!("{name}-0");
    harness.wait_for_job(&first).await;
    let first_trial = harness.trials_api().get(&first).await.expect("the trial");
    assert!(
        first_trial.spec.early_stopping_rules.is_empty(),
        "no finished trial yet, so no rule"
    );
    for loss in [0.5, 0.3] {
        harness.report_loss(&first, loss).await;
    }
    harness.end_job(&first, "Complete", "Completed").await;

    let second = format!("{name}-1");
    harness.wait_for_job(&second).await;
    let rules = harness
        .trials_api()
        .get(&second)
        .await
        .expect("the trial")
        .spec
        .early_stopping_rules;
    assert_eq!(rules.len(), 1, "{rules:?}");
    assert_eq!(
        (rules[0].name.as_str(), rules[0].value.as_str()),
        ("loss", "0.4")
    );
    // Worse than the first trial's average of its first two reports, twice.
    for loss in [2.0, 1.5] {
        harness.report_loss(&second, loss).await;
    }
    harness
        .wait_for_trial_condition(&second, "EarlyStopped")
        .await;
    harness.wait_for_job_gone(&second).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn successive_halving_stops_a_trial_that_loses_at_the_first_rung() {
    let harness = Harness::new("asha").await;
    let name = harness
        .start_experiment(json!({
            "parallelTrialCount": 2, "maxTrialCount": 3,
            "earlyStopping": {"algorithmName": "asha", "algorithmSettings": [
                {"name": "min_resource", "value": "2"},
                {"name": "reduction_factor", "value": "2"},
            ]},
        }))
        .await;
    let (first, second, third) = (
        format!("{name}-0"),
        format!("{name}-1"),
        format!("{name}-2"),
    );
    harness.wait_for_job(&first).await;
    harness.wait_for_job(&second).await;
    for trial in [&first, &second] {
        let rules = harness
            .trials_api()
            .get(trial)
            .await
            .expect("the trial")
            .spec
            .early_stopping_rules;
        assert!(rules.is_empty(), "nobody reached the first rung: {rules:?}");
    }
    // The second trial reaches the first rung (report 2) with 0.2 and keeps running; the first
    // reaches it with 0.3 and completes.
    for loss in [0.4, 0.2] {
        harness.report_loss(&second, loss).await;
    }
    for loss in [0.5, 0.3] {
        harness.report_loss(&first, loss).await;
    }
    harness.end_job(&first, "Complete", "Completed").await;

    harness.wait_for_job(&third).await;
    let rules = harness
        .trials_api()
        .get(&third)
        .await
        .expect("the trial")
        .spec
        .early_stopping_rules;
    // With the third, three values compete at the first rung, so only the best goes on: the
    // running trial's 0.2 (medianstop would read the succeeded trial alone).
    assert_eq!(rules.len(), 1, "{rules:?}");
    assert_eq!(
        (
            rules[0].name.as_str(),
            rules[0].value.as_str(),
            rules[0].start_step
        ),
        ("loss", "0.2", 2)
    );
    for loss in [2.0, 1.5] {
        harness.report_loss(&third, loss).await;
    }
    harness
        .wait_for_trial_condition(&third, "EarlyStopped")
        .await;
    harness.wait_for_job_gone(&third).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_deploy_manifests_are_accepted_by_the_api_server() {
    let client = client_for("kubeconfig").await;
    install_crds_and_role(&client, ApiGroup::Sextant).await;
    // The namespace for real (the others are checked into it), the rest as a server-side dry
    // run: admission and validation run, nothing is stored.
    apply_file(&client, "deploy/namespace.yaml").await;
    for file in [
        "deploy/rbac.yaml",
        "deploy/serve.yaml",
        "deploy/controller.yaml",
    ] {
        apply_file_with(
            &client,
            file,
            PatchParams::apply("sextant-tests").force().dry_run(),
        )
        .await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hyperband_keeps_its_bracket_on_the_experiment_across_a_restart() {
    let mut harness = Harness::new("hyperband").await;
    let name = harness
        .start_experiment(
            json!({
                "parallelTrialCount": 3, "maxTrialCount": 20,
                "algorithm": {"algorithmName": "hyperband", "algorithmSettings": [
                    {"name": "resource_name", "value": "epochs"},
                    {"name": "eta", "value": "3"},
                    {"name": "r_l", "value": "9"},
                ]},
                "parameters": [
                    {"name": "lr", "parameterType": "double", "feasibleSpace": {"min": "0.01", "max": "0.05"}},
                    {"name": "epochs", "parameterType": "int", "feasibleSpace": {"min": "1", "max": "9"}},
                ],
                "trialTemplate": {
                    "primaryContainerName": "training",
                    "trialParameters": [
                        {"name": "learningRate", "reference": "lr"},
                        {"name": "epochs", "reference": "epochs"},
                    ],
                    "trialSpec": {
                        "apiVersion": "batch/v1",
                        "kind": "Job",
                        "spec": {"template": {"spec": {"restartPolicy": "Never", "containers": [{
                            "name": "training", "image": "trainer:1",
                            "command": ["python3", "train.py", "--epochs=${trialParameters.epochs}", "--lr=${trialParameters.learningRate}"],
                        }]}}},
                    },
                },
            }),
        )
        .await;
    harness.wait_for_jobs(3).await;
    let state = harness
        .experiment(&name)
        .await
        .annotations()
        .get("sextant.dev/algorithm-state")
        .cloned()
        .expect("the algorithm's state on the experiment");
    assert!(state.contains("current_s"), "{state}");
    harness.kill_controller();
    harness.start_controller();

    play_until_done(&harness, &name, 3, HashSet::new()).await;
    let (condition, _, _) =
        experiment_condition(&harness.experiment(&name).await).expect("a condition");
    assert_eq!(condition, "Succeeded");
    let trials = harness.trials().await;
    let names: HashSet<String> = trials.iter().map(ResourceExt::name_any).collect();
    assert_eq!(names.len(), trials.len(), "no trial twice");
    let budgets: std::collections::BTreeSet<String> = trials
        .iter()
        .filter_map(|trial| {
            trial
                .spec
                .parameter_assignments
                .iter()
                .find(|assignment| assignment.name == "epochs")
                .map(|assignment| assignment.value.clone())
        })
        .collect();
    assert_eq!(
        budgets,
        ["1", "3", "9"].map(String::from).into_iter().collect(),
        "rungs promote trials to larger budgets across the restart"
    );
}

/// The loss the tests report for a trial of Katib's `random` example: smallest at lr 0.03 and
/// momentum 0.7, and never below the example's goal (0.001), so every trial runs.
fn random_example_loss(parameters: &BTreeMap<String, f64>) -> f64 {
    0.01 + (parameters["lr"] - 0.03).powi(2) + (parameters["momentum"] - 0.7).powi(2)
}

fn assignment_values(trial: &TrialResource) -> BTreeMap<String, f64> {
    trial
        .spec
        .parameter_assignments
        .iter()
        .map(|assignment| {
            let value = assignment.value.parse().expect("a numeric value");
            (assignment.name.clone(), value)
        })
        .collect()
}

/// Katib's own Python SDK, unchanged, drives an experiment of Katib's own `random` example
/// against `sextant controller --api-group kubeflow.org`, while the test plays the node (metrics
/// pushed as `sextant collect` would, Jobs completed as the Job controller would).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn katibs_python_sdk_drives_an_experiment_in_katibs_api_group() {
    let python = crate::support::katib_python().expect("virtualenv with kubeflow-katib");
    let harness = Harness::with_group("katib-sdk", ApiGroup::Katib).await;
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let example =
        root.join("experiment/tests/data/katib-examples/examples/v1beta1/hp-tuning/random.yaml");
    let mut sdk = Command::new(python)
        .arg(root.join("tests/interop/katib_sdk_cluster.py"))
        .arg(&example)
        .arg(&harness.namespace)
        .env("KUBECONFIG", testbed().join("kubeconfig"))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run the SDK script");

    // The node's part, until the SDK has seen the experiment end and deleted it.
    let deadline = Instant::now() + Duration::from_secs(180);
    let mut finished: HashSet<String> = HashSet::new();
    let mut losses: BTreeMap<String, f64> = BTreeMap::new();
    while sdk.try_wait().expect("poll the SDK script").is_none() {
        assert!(Instant::now() < deadline, "the SDK script did not finish");
        for trial in harness.trials().await {
            let name = trial.name_any();
            if finished.contains(&name) {
                continue;
            }
            let Ok(job) = harness.jobs().get(&name).await else {
                continue;
            };
            let owner = &job.metadata.owner_references.clone().unwrap_or_default()[0];
            assert_eq!(
                (owner.api_version.as_str(), owner.kind.as_str()),
                ("kubeflow.org/v1beta1", "Trial"),
                "the Job is owned by a Katib-group Trial"
            );
            let errors = crate::k8s_schema::validate(&serde_json::to_value(&job).expect("JSON"));
            assert!(errors.is_ok(), "the Job {name} is invalid: {errors:?}");
            let loss = random_example_loss(&assignment_values(&trial));
            harness.report_loss(&name, loss).await;
            harness.end_job(&name, "Complete", "Completed").await;
            losses.insert(name.clone(), loss);
            finished.insert(name);
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let output = sdk.wait_with_output().expect("the SDK script's output");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "the SDK script failed\nstdout:\n{stdout}\nstderr:\n{stderr}"
    );
    let result: Value = stdout
        .lines()
        .find_map(|line| line.strip_prefix("RESULT "))
        .and_then(|json| serde_json::from_str(json).ok())
        .unwrap_or_else(|| panic!("no RESULT line in\n{stdout}"));

    // The example's budget (12 trials, 3 at a time), run to the end: its goal is out of reach.
    assert_eq!(result["name"], "random");
    assert_eq!(result["succeeded_reason"], "ExperimentMaxTrialsReached");
    assert_eq!(result["max_trial_count"], 12);
    assert_eq!(result["trials_succeeded"], 12);
    let trials = result["trials"].as_array().expect("the SDK's trials");
    assert_eq!(trials.len(), 12, "list_trials sees every trial");
    assert_eq!(losses.len(), 12, "the node ran every trial");
    for trial in trials {
        assert_eq!(trial["condition"], "Succeeded", "{trial}");
        let name = trial["name"].as_str().expect("a trial name");
        let reported: f64 = trial["metrics"]["loss"]
            .as_str()
            .and_then(|text| text.parse().ok())
            .expect("the trial's loss as the SDK reads it");
        assert!((reported - losses[name]).abs() < 1e-12, "{trial}");
    }

    // The optimal hyperparameters the SDK reads are those of the trial with the least loss.
    let (best_name, best_loss) = losses
        .iter()
        .min_by(|a, b| a.1.total_cmp(b.1))
        .expect("a best trial");
    let optimal = &result["optimal"];
    assert_eq!(optimal["best_trial_name"], best_name.as_str());
    let best_trial = trials
        .iter()
        .find(|trial| trial["name"] == best_name.as_str())
        .expect("the best trial among the SDK's trials");
    assert_eq!(optimal["parameters"], best_trial["parameters"]);
    let optimal_loss: f64 = optimal["metrics"]["loss"]
        .as_str()
        .and_then(|text| text.parse().ok())
        .expect("the optimal trial's loss");
    assert!((optimal_loss - best_loss).abs() < 1e-12);

    // `kubectl get experiments.kubeflow.org`'s table, as the server prints it.
    let columns: Vec<&str> = result["table_columns"]
        .as_array()
        .expect("columns")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    for column in ["Name", "Status", "Trials", "Succeeded", "Best trial", "Age"] {
        assert!(
            columns.contains(&column),
            "{column} missing from {columns:?}"
        );
    }
    let row = &result["table_rows"][0];
    let cell = |column: &str| {
        &row[columns
            .iter()
            .position(|name| *name == column)
            .expect("a column")]
    };
    assert_eq!(cell("Name"), "random");
    assert_eq!(cell("Status"), "Succeeded");
    assert_eq!(cell("Best trial"), best_name.as_str());

    // delete_experiment: the Trials (and their observation logs, by the finalizer) go with it.
    wait_until("the experiment's trials to go", || async {
        harness.trials().await.is_empty()
            && harness
                .experiments()
                .get_opt("random")
                .await
                .ok()
                .flatten()
                .is_none()
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pbt_trials_carry_katibs_generation_and_parent_labels() {
    let harness = Harness::new("pbt").await;
    let name = harness
        .start_experiment(json!({
            "parallelTrialCount": 5, "maxTrialCount": 10,
            "algorithm": {"algorithmName": "pbt", "algorithmSettings": [
                {"name": "suggestion_trial_dir", "value": "/var/log/katib/checkpoints"},
                {"name": "n_population", "value": "5"},
                {"name": "truncation_threshold", "value": "0.4"},
                {"name": "random_state", "value": "2"},
            ]},
        }))
        .await;
    play_until_done(&harness, &name, 5, HashSet::new()).await;
    let (condition, _, _) =
        experiment_condition(&harness.experiment(&name).await).expect("a condition");
    assert_eq!(condition, "Succeeded");
    let trials = harness.trials().await;
    assert_eq!(trials.len(), 10);
    let names: HashSet<String> = trials.iter().map(ResourceExt::name_any).collect();
    let mut generations = BTreeMap::<String, usize>::new();
    for trial in &trials {
        // On the Trial's metadata, where Katib's controller puts them, and in its spec, which
        // the controller sends back to the algorithm.
        let labels = trial.labels();
        let generation = labels
            .get("pbt.suggestion.katib.kubeflow.org/generation")
            .unwrap_or_else(|| panic!("{} has no generation label: {labels:?}", trial.name_any()));
        *generations.entry(generation.clone()).or_default() += 1;
        let parent = labels.get("pbt.suggestion.katib.kubeflow.org/parent");
        match generation.as_str() {
            "0" => assert_eq!(parent, None),
            _ => assert!(
                parent.is_some_and(|parent| names.contains(parent)),
                "{} has parent {parent:?}",
                trial.name_any()
            ),
        }
        for (key, value) in &trial.spec.labels {
            assert_eq!(
                labels.get(key),
                Some(value),
                "{key} on {}",
                trial.name_any()
            );
        }
    }
    assert_eq!(
        generations,
        BTreeMap::from([("0".to_string(), 5), ("1".to_string(), 5)])
    );
}
