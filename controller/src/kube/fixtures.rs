//! A mocked API server for the reconcilers' unit tests: a [`Context`] whose client talks to a
//! `tower_test` mock, and an [`ApiServerVerifier`] that plays one [`Scenario`] on the other
//! end, checking each request the reconcile makes, in order, and answering it.
//!
//! A scenario lists every call it expects, so a call too many (a duplicate create, a status
//! write after a refused create) fails the test: it either meets the wrong expectation or, once
//! the scenario is over, a closed connection that fails the reconcile.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use http::{Method, Request, Response, StatusCode};
use kube::Client;
use kube::client::Body;
use kube::runtime::events::{Recorder, Reporter};
use kube::runtime::reflector;
use serde_json::{Value, json};
use sextant_store::Store;
use tokio::task::JoinHandle;

use crate::kube::ExperimentResource;
use crate::kube::TrialResource;
use crate::kube::run_object::Kind;
use crate::kube::{ApiGroup, Context, ControllerConfig, OBSERVATION_LOG_FINALIZER};
use sextant_experiment::api::trial::TrialSpec;

/// The namespace of every object here.
pub(super) const NAMESPACE: &str = "tests";

/// The name of the experiment of [`experiment`].
pub(super) const EXPERIMENT: &str = "exp";

/// The name of the trial of [`trial`], the first of [`EXPERIMENT`].
pub(super) const TRIAL: &str = "exp-0";

/// How long a test waits for the mocked exchange to end; it ends in milliseconds unless a
/// reconcile hangs on a call the scenario never answers.
const EXCHANGE_LIMIT: Duration = Duration::from_secs(10);

/// What the API server answers, call by call.
pub(super) enum Scenario {
    /// An experiment's first reconcile: its first trial is created, its status written, and an
    /// event recorded.
    ExperimentStarts,
    /// An experiment whose trial is in the cache: nothing is created, the status is written
    /// and an event recorded.
    ExperimentRunsItsTrial,
    /// The trial is created, but the status write is refused: another writer changed the
    /// experiment since the cache saw it (409 Conflict).
    StatusConflict,
    /// The trial create is refused because the trial exists already: the cache has not seen
    /// an earlier create yet (409 AlreadyExists). The status is still written.
    TrialAlreadyExists,
    /// The trial create is refused by RBAC (403 Forbidden): the controller's role is not in
    /// force yet.
    TrialCreateForbidden,
    /// The trial's Job is not there, and its create is refused by a ResourceQuota (403 with
    /// "exceeded quota").
    JobOverQuota,
    /// The trial's Job is not there and is created; the trial's status is written.
    JobCreated,
}

/// The API server's end of the mocked connection.
pub(super) struct ApiServerVerifier(tower_test::mock::Handle<Request<Body>, Response<Body>>);

/// Waits for the verifier to have played its scenario; it is handed back for the next one.
pub(super) async fn finished(verifier: JoinHandle<ApiServerVerifier>) -> ApiServerVerifier {
    tokio::time::timeout(EXCHANGE_LIMIT, verifier)
        .await
        .expect("the scenario ended in time")
        .expect("the scenario ran without a failed check")
}

/// A context whose client talks to the returned verifier, whose trial cache holds `trials`,
/// whose store is an empty in-memory database, and which knows the Job kind without asking
/// for discovery.
pub(super) async fn context(trials: Vec<TrialResource>) -> (Arc<Context>, ApiServerVerifier) {
    let (context, verifier, mut writer) = context_before_trials_listed().await;
    writer.apply_watcher_event(&kube::runtime::watcher::Event::Init);
    for trial in trials {
        writer.apply_watcher_event(&kube::runtime::watcher::Event::InitApply(trial));
    }
    writer.apply_watcher_event(&kube::runtime::watcher::Event::InitDone);
    (context, verifier)
}

/// A context as [`context`] makes it, but whose trial cache has not had its first list yet:
/// the returned writer plays the trials' watch.
pub(super) async fn context_before_trials_listed() -> (
    Arc<Context>,
    ApiServerVerifier,
    reflector::store::Writer<TrialResource>,
) {
    let (service, handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
    let client = Client::new(service, NAMESPACE);
    let group = ApiGroup::Sextant;
    let writer = reflector::store::Writer::new(group.trials());
    let job = Kind {
        resource: kube::core::ApiResource::erase::<k8s_openapi::api::batch::v1::Job>(&()),
        namespaced: true,
    };
    let context = Context {
        client: client.clone(),
        store: Store::connect("sqlite::memory:")
            .await
            .expect("an in-memory store"),
        config: ControllerConfig {
            api_group: group,
            namespace: Some(NAMESPACE.into()),
            db_manager_address: "127.0.0.1:6789".into(),
            suggestion_service: None,
            poll_interval: Duration::from_secs(1),
            reporter: "sextant-tests".into(),
            instance: None,
        },
        experiment_kind: group.experiments(),
        trial_kind: group.trials(),
        trials: writer.as_reader(),
        suggesters: Mutex::new(HashMap::new()),
        finished_objectives: Mutex::new(HashMap::new()),
        recorder: Recorder::new(
            client,
            Reporter {
                controller: "sextant-tests".into(),
                instance: None,
            },
        ),
        failures: Mutex::new(HashMap::new()),
        kinds: tokio::sync::Mutex::new(HashMap::from([(
            ("batch/v1".to_owned(), "Job".to_owned()),
            Some(job),
        )])),
    };
    (Arc::new(context), ApiServerVerifier(handle), writer)
}

/// A new experiment of one Job trial at a time, as the API server hands it out.
pub(super) fn experiment() -> ExperimentResource {
    serde_json::from_value(json!({
        "apiVersion": "sextant.dev/v1beta1",
        "kind": "Experiment",
        "metadata": {
            "name": EXPERIMENT, "namespace": NAMESPACE, "uid": "experiment-uid",
            "resourceVersion": "1",
        },
        "spec": {
            "objective": {"type": "minimize", "objectiveMetricName": "loss"},
            "algorithm": {"algorithmName": "random"},
            "parallelTrialCount": 1,
            "maxTrialCount": 2,
            "parameters": [
                {"name": "lr", "parameterType": "double", "feasibleSpace": {"min": "0.01", "max": "0.1"}},
            ],
            "metricsCollectorSpec": {"collector": {"kind": "Push"}},
            "trialTemplate": {
                "primaryContainerName": "training",
                "trialParameters": [{"name": "learningRate", "reference": "lr"}],
                "trialSpec": job(),
            },
        },
    }))
    .expect("an Experiment")
}

/// A Job running the training container.
fn job() -> Value {
    json!({
        "apiVersion": "batch/v1",
        "kind": "Job",
        "spec": {"template": {"spec": {
            "restartPolicy": "Never",
            "containers": [{
                "name": "training", "image": "trainer",
                "command": ["train", "--lr=${trialParameters.learningRate}"],
            }],
        }}},
    })
}

/// The experiment's first trial, just created: it carries the finalizer and no status.
pub(super) fn trial() -> TrialResource {
    let mut trial = TrialResource::new(
        TRIAL,
        &ApiGroup::Sextant.trials(),
        TrialSpec {
            run_spec: Some(job()),
            primary_container_name: "training".into(),
            ..TrialSpec::default()
        },
    );
    trial.metadata.namespace = Some(NAMESPACE.into());
    trial.metadata.uid = Some("trial-uid".into());
    trial.metadata.resource_version = Some("1".into());
    trial.metadata.finalizers = Some(vec![OBSERVATION_LOG_FINALIZER.into()]);
    trial
}

impl ApiServerVerifier {
    /// Plays `scenario` in a task; [`finished`] waits for it.
    pub(super) fn run(self, scenario: Scenario) -> JoinHandle<ApiServerVerifier> {
        tokio::spawn(async move {
            match scenario {
                Scenario::ExperimentStarts => {
                    self.trial_created()
                        .await
                        .status_written()
                        .await
                        .event_recorded()
                        .await
                }
                Scenario::ExperimentRunsItsTrial => {
                    self.status_written().await.event_recorded().await
                }
                Scenario::StatusConflict => self.trial_created().await.status_refused().await,
                Scenario::TrialAlreadyExists => {
                    self.trial_exists()
                        .await
                        .status_written()
                        .await
                        .event_recorded()
                        .await
                }
                Scenario::TrialCreateForbidden => self.trial_forbidden().await,
                Scenario::JobOverQuota => self.job_absent().await.job_over_quota().await,
                Scenario::JobCreated => {
                    self.job_absent()
                        .await
                        .job_created()
                        .await
                        .trial_status_written()
                        .await
                }
            }
        })
    }

    /// Takes the next request, checks its method and path, and hands back its body as JSON
    /// (null when empty) with the means to answer.
    async fn expect(
        &mut self,
        method: Method,
        path: &str,
    ) -> (Value, tower_test::mock::SendResponse<Response<Body>>) {
        let (request, send) = self
            .0
            .next_request()
            .await
            .unwrap_or_else(|| panic!("expected {method} {path}, but the client went away"));
        assert_eq!(
            (request.method(), request.uri().path()),
            (&method, path),
            "an unexpected call"
        );
        let bytes = request
            .into_body()
            .collect_bytes()
            .await
            .expect("a request body");
        let body = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes).expect("a JSON request body")
        };
        (body, send)
    }

    async fn trial_created(mut self) -> Self {
        let (body, send) = self.expect(Method::POST, &trials_path()).await;
        assert_eq!(body["metadata"]["name"], TRIAL);
        send.send_response(answer(StatusCode::CREATED, body));
        self
    }

    async fn trial_exists(mut self) -> Self {
        let (body, send) = self.expect(Method::POST, &trials_path()).await;
        assert_eq!(body["metadata"]["name"], TRIAL);
        send.send_response(refusal(
            StatusCode::CONFLICT,
            "AlreadyExists",
            &format!("trials.sextant.dev \"{TRIAL}\" already exists"),
        ));
        self
    }

    async fn trial_forbidden(mut self) -> Self {
        let (_, send) = self.expect(Method::POST, &trials_path()).await;
        send.send_response(refusal(
            StatusCode::FORBIDDEN,
            "Forbidden",
            "trials.sextant.dev is forbidden: User \"sextant-controller\" cannot create resource \"trials\"",
        ));
        self
    }

    async fn status_written(mut self) -> Self {
        let path = format!("{}/{EXPERIMENT}/status", experiments_path());
        let (body, send) = self.expect(Method::PATCH, &path).await;
        // Conditional on the version read.
        assert_eq!(body["metadata"]["resourceVersion"], "1");
        let conditions = body["status"]["conditions"].as_array().cloned();
        assert!(
            !conditions
                .unwrap_or_default()
                .iter()
                .any(|condition| condition["type"] == "Failed"),
            "the experiment failed: {}",
            body["status"]
        );
        let mut experiment = serde_json::to_value(experiment()).expect("JSON");
        experiment["status"] = body["status"].clone();
        send.send_response(answer(StatusCode::OK, experiment));
        self
    }

    async fn status_refused(mut self) -> Self {
        let path = format!("{}/{EXPERIMENT}/status", experiments_path());
        let (_, send) = self.expect(Method::PATCH, &path).await;
        send.send_response(refusal(
            StatusCode::CONFLICT,
            "Conflict",
            "the object has been modified; please apply your changes to the latest version and try again",
        ));
        self
    }

    async fn event_recorded(mut self) -> Self {
        let path = format!("/apis/events.k8s.io/v1/namespaces/{NAMESPACE}/events");
        let (body, send) = self.expect(Method::POST, &path).await;
        send.send_response(answer(StatusCode::CREATED, body));
        self
    }

    async fn job_absent(mut self) -> Self {
        let (_, send) = self.expect(Method::GET, &job_path()).await;
        send.send_response(refusal(
            StatusCode::NOT_FOUND,
            "NotFound",
            &format!("jobs.batch \"{TRIAL}\" not found"),
        ));
        self
    }

    async fn job_over_quota(mut self) -> Self {
        let (_, send) = self.expect(Method::POST, &jobs_path()).await;
        send.send_response(refusal(
            StatusCode::FORBIDDEN,
            "Forbidden",
            &format!(
                "jobs.batch \"{TRIAL}\" is forbidden: exceeded quota: jobs, requested: count/jobs.batch=1, used: count/jobs.batch=4, limited: count/jobs.batch=4"
            ),
        ));
        self
    }

    async fn job_created(mut self) -> Self {
        let (body, send) = self.expect(Method::POST, &jobs_path()).await;
        assert_eq!(body["metadata"]["name"], TRIAL);
        assert_eq!(
            body["metadata"]["ownerReferences"][0]["uid"], "trial-uid",
            "the Job is the trial's"
        );
        send.send_response(answer(StatusCode::CREATED, body));
        self
    }

    async fn trial_status_written(mut self) -> Self {
        let path = format!("{}/{TRIAL}/status", trials_path());
        let (body, send) = self.expect(Method::PATCH, &path).await;
        let mut trial = serde_json::to_value(trial()).expect("JSON");
        trial["status"] = body["status"].clone();
        send.send_response(answer(StatusCode::OK, trial));
        self
    }
}

fn experiments_path() -> String {
    format!("/apis/sextant.dev/v1beta1/namespaces/{NAMESPACE}/experiments")
}

fn trials_path() -> String {
    format!("/apis/sextant.dev/v1beta1/namespaces/{NAMESPACE}/trials")
}

fn jobs_path() -> String {
    format!("/apis/batch/v1/namespaces/{NAMESPACE}/jobs")
}

fn job_path() -> String {
    format!("{}/{TRIAL}", jobs_path())
}

fn answer(status: StatusCode, body: Value) -> Response<Body> {
    Response::builder()
        .status(status)
        .body(Body::from(serde_json::to_vec(&body).expect("JSON")))
        .expect("a response")
}

/// The API server's refusal: a `Status` object with `code`, `reason` and `message`.
fn refusal(code: StatusCode, reason: &str, message: &str) -> Response<Body> {
    answer(
        code,
        json!({
            "apiVersion": "v1", "kind": "Status", "status": "Failure",
            "code": code.as_u16(), "reason": reason, "message": message,
        }),
    )
}
