//! The Kubernetes driver: Experiments and Trials as `sextant.dev/v1beta1` custom resources (or,
//! as an option, Katib's own `kubeflow.org/v1beta1`: [`ApiGroup`]), reconciled with
//! kube-runtime through the same pure engine as the local driver.
//!
//! Two controllers run in one process:
//! - the experiment controller (`experiments.rs`) observes an Experiment and its Trials (from a
//!   watch cache), asks [`crate::engine::plan`] what to do, and carries it out: creates Trials
//!   (owned by the Experiment, named `<experiment>-<ordinal>` so that a stale cache or a restart
//!   can never create a trial twice: the second create is refused as `AlreadyExists`), asks the
//!   search algorithm for assignments, marks trials to stop, and writes the Experiment's status
//!   through the status subresource;
//! - the trial controller (`trials.rs`) creates each Trial's run object (a Job, an Argo Workflow,
//!   a Kubeflow training job, any kind) with the dynamic API, owned by the Trial, judges it with
//!   the trial's GJSON-style success and failure conditions ([`crate::conditions`]), reads the
//!   trial's observation log from the store, and writes the Trial's status. A finalizer deletes
//!   the observation log with the Trial; the run object goes with it by garbage collection.
//!
//! Katib's pains are avoided on purpose: an invalid Experiment gets a `Failed` condition naming
//! every field path (no admission webhook needed); metrics arrive by push (the trial calls the
//! DBManager of `sextant serve`) or by `sextant collect` wrapping the primary container's
//! command, never by a sidecar; an exhausted search space ends the experiment; running trials
//! are stopped when it completes; the Experiment's status keeps counts, not the names of every
//! finished trial, so it stays small however many trials run.
//!
//! Single replica: no leader election. Two controllers reconciling the same Experiment would
//! never duplicate a trial (names are deterministic, and status writes are conditional on the
//! version read), but would ask the algorithm twice and fight over who writes; the Deployment
//! in `deploy/` therefore runs one replica with the `Recreate` strategy.

mod convert;
pub mod crd;
mod experiments;
mod group;
mod run_object;
mod trials;

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::{FutureExt, StreamExt};
use k8s_openapi::api::batch::v1::Job;
use kube::core::ApiResource;
use kube::runtime::controller::Controller;
use kube::runtime::events::{Recorder, Reporter};
use kube::runtime::reflector::{self, ObjectRef};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client, Resource};
use sextant_store::Store;

pub use crd::{CrdError, crds};
pub use group::{ApiGroup, UnknownApiGroup};

use crate::api::experiment::ExperimentResource;
use crate::api::trial::TrialResource;
use crate::suggest::Suggester;

/// The finalizer that deletes a trial's observation log before the Trial goes.
pub const OBSERVATION_LOG_FINALIZER: &str = "sextant.dev/observation-log";

/// The annotation by which the experiment controller asks for a trial to be stopped; its value
/// is the reason.
pub const STOP_ANNOTATION: &str = "sextant.dev/stop-reason";

/// The label naming a run object's trial.
pub const TRIAL_LABEL: &str = "katib.kubeflow.org/trial";

/// The name a trial's metrics are stored under: `<namespace>.<trial>`. A namespace name has no
/// dot, so the key is unique in the cluster and same-named experiments in two namespaces never
/// share an observation log. Trials get it as `KATIB_TRIAL_NAME`, which Katib's
/// `report_metrics` and `sextant collect` report under.
pub fn observation_log_key(namespace: &str, trial_name: &str) -> String {
    format!("{namespace}.{trial_name}")
}

/// How the controller runs.
#[derive(Clone, Debug)]
pub struct ControllerConfig {
    /// The group of the Experiment and Trial kinds served: Sextant's, or Katib's in a cluster
    /// without Katib.
    pub api_group: ApiGroup,
    /// Watch only this namespace; all namespaces when `None`.
    pub namespace: Option<String>,
    /// Where trials push metrics (the DBManager of `sextant serve`), as `host:port`; given to
    /// trials in their environment and to `sextant collect`.
    pub db_manager_address: String,
    /// A Katib-API Suggestion service to ask instead of the in-process algorithms.
    pub suggestion_service: Option<String>,
    /// How often an active trial is looked at again even when no watch event came (metrics
    /// arrive in the store, not in the API server).
    pub poll_interval: Duration,
    /// The name the controller's events carry.
    pub reporter: String,
    /// This replica's name in its events (the pod's name, from the downward API), if known.
    pub instance: Option<String>,
}

/// Why a reconcile did not complete; the object is looked at again after a backoff.
#[derive(Debug, thiserror::Error)]
pub enum ReconcileError {
    /// A call to the API server failed.
    #[error("Kubernetes API: {0}")]
    Kube(#[from] kube::Error),
    /// The store failed.
    #[error("store: {0}")]
    Store(#[from] sextant_store::Error),
    /// The Suggestion service cannot be reached now.
    #[error("{0}")]
    SuggestionUnreachable(String),
    /// A run object of the trial's name exists but belongs to something else (a deleted trial
    /// of the same name whose objects garbage collection has not removed yet).
    #[error("{kind} {name} exists but is not owned by this trial; waiting for it to go")]
    RunObjectNotOwned {
        /// Its kind.
        kind: String,
        /// Its name.
        name: String,
    },
    /// A trial's run object is above its quota; creating it is tried again later.
    #[error("{0}")]
    QuotaExceeded(String),
    /// Adding or removing the trial finalizer failed, or what ran under it.
    #[error("trial finalizer: {0}")]
    Finalizer(#[source] Box<kube::runtime::finalizer::Error<ReconcileError>>),
    /// An object could not be serialized or read back.
    #[error("{what}: {source}")]
    Json {
        /// What was being (de)serialized.
        what: String,
        /// Why it failed.
        source: serde_json::Error,
    },
}

/// Shared by the reconcilers.
pub(crate) struct Context {
    /// The API server.
    client: Client,
    /// Observation logs.
    store: Store,
    /// How the controller runs.
    config: ControllerConfig,
    /// The Experiment kind in the served group.
    experiment_kind: ApiResource,
    /// The Trial kind in the served group.
    trial_kind: ApiResource,
    /// Every Trial, from a watch: the experiment controller's view of its trials.
    trials: reflector::Store<TrialResource>,
    /// Per experiment uid, the suggester and the settings it carries between requests.
    suggesters: Mutex<HashMap<String, Suggester>>,
    /// Per observation log key of a succeeded trial, its objective values: a finished log does
    /// not change, so early-stopping rules for new trials read each one once.
    finished_objectives: Mutex<HashMap<String, Vec<f64>>>,
    recorder: Recorder,
    /// Per object, the failures in a row, for the backoff.
    failures: Mutex<HashMap<String, u32>>,
    /// API resources of run-object kinds, by `apiVersion` and `kind`, as discovered.
    kinds: tokio::sync::Mutex<HashMap<(String, String), Option<run_object::Kind>>>,
}

impl Context {
    /// The delay before the next try after another failure of `key`: 1 s, doubling up to
    /// 256 s.
    fn backoff(&self, key: String) -> Duration {
        let mut failures = self.failures.lock().unwrap_or_else(|e| e.into_inner());
        let count = failures.entry(key).or_insert(0);
        *count = count.saturating_add(1);
        Duration::from_secs(1u64 << (*count - 1).min(8)).min(Duration::from_secs(300))
    }

    /// When to try again after `error`: soon after a write conflict (the fresh object is
    /// already on its way), else after the backoff.
    fn retry_delay(&self, key: String, error: &ReconcileError) -> Duration {
        if is_conflict(error) {
            Duration::from_millis(200)
        } else {
            self.backoff(key)
        }
    }

    fn succeeded(&self, key: &str) {
        self.failures
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(key);
    }
}

/// Runs both controllers until `shutdown` resolves, then lets the reconciles in flight finish.
pub async fn run(
    client: Client,
    store: Store,
    config: ControllerConfig,
    shutdown: impl Future<Output = ()> + Send + 'static,
) {
    let experiment_kind = config.api_group.experiments();
    let trial_kind = config.api_group.trials();
    let (experiments_api, trials_api): (Api<ExperimentResource>, Api<TrialResource>) =
        match &config.namespace {
            Some(namespace) => (
                Api::namespaced_with(client.clone(), namespace, &experiment_kind),
                Api::namespaced_with(client.clone(), namespace, &trial_kind),
            ),
            None => (
                Api::all_with(client.clone(), &experiment_kind),
                Api::all_with(client.clone(), &trial_kind),
            ),
        };
    let jobs_api: Api<Job> = match &config.namespace {
        Some(namespace) => Api::namespaced(client.clone(), namespace),
        None => Api::all(client.clone()),
    };

    let trial_writer = reflector::store::Writer::new(trial_kind.clone());
    let trial_reader = trial_writer.as_reader();
    // The experiment controller's view of every Trial, without what it never reads: the
    // server's field-ownership records.
    let trial_events = reflector::reflector(
        trial_writer,
        watcher(trials_api.clone(), watcher::Config::default())
            .modify(|trial| kube::ResourceExt::managed_fields_mut(trial).clear()),
    )
    .default_backoff()
    .touched_objects();

    let recorder = Recorder::new(
        client.clone(),
        Reporter {
            controller: config.reporter.clone(),
            instance: config.instance.clone(),
        },
    );
    let context = Arc::new(Context {
        client,
        store,
        config,
        experiment_kind: experiment_kind.clone(),
        trial_kind: trial_kind.clone(),
        trials: trial_reader,
        suggesters: Mutex::new(HashMap::new()),
        finished_objectives: Mutex::new(HashMap::new()),
        recorder,
        failures: Mutex::new(HashMap::new()),
        kinds: tokio::sync::Mutex::new(HashMap::new()),
    });
    let shutdown = shutdown.shared();

    let experiment_controller =
        Controller::new_with(experiments_api, watcher::Config::default(), experiment_kind)
            .owns_stream_with(trial_events, trial_kind.clone())
            .graceful_shutdown_on(shutdown.clone())
            .run(
                experiments::reconcile,
                experiments::error_policy,
                context.clone(),
            )
            .for_each(|result| async move {
                if let Err(error) = result {
                    tracing::debug!(%error, "experiment reconcile");
                }
            });
    let trial_controller = Controller::new_with(trials_api, watcher::Config::default(), trial_kind)
        // Only the Jobs of trials, not every Job in the cluster.
        .owns(jobs_api, watcher::Config::default().labels(TRIAL_LABEL))
        .graceful_shutdown_on(shutdown)
        .run(trials::reconcile, trials::error_policy, context)
        .for_each(|result| async move {
            if let Err(error) = result {
                tracing::debug!(%error, "trial reconcile");
            }
        });
    futures::join!(experiment_controller, trial_controller);
}

/// Whether a reconcile failed only because it wrote from a stale view (HTTP 409), which is
/// expected under load and retried at once.
fn is_conflict(error: &ReconcileError) -> bool {
    let status = match error {
        ReconcileError::Kube(kube::Error::Api(status)) => status,
        ReconcileError::Finalizer(inner) => match inner.as_ref() {
            kube::runtime::finalizer::Error::ApplyFailed(ReconcileError::Kube(
                kube::Error::Api(status),
            ))
            | kube::runtime::finalizer::Error::CleanupFailed(ReconcileError::Kube(
                kube::Error::Api(status),
            )) => status,
            _ => return false,
        },
        _ => return false,
    };
    status.code == 409
}

/// The key of an object of the kind `resource` in the backoff table.
fn object_key<K: Resource<DynamicType = ApiResource>>(
    object: &K,
    resource: &ApiResource,
) -> String {
    ObjectRef::from_obj_with(object, resource.clone()).to_string()
}
