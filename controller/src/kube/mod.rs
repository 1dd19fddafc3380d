//! The Kubernetes driver: Experiments and Trials as `sextant.dev/v1beta1` custom resources (or,
//! as an option, Katib's own `kubeflow.org/v1beta1`: [`ApiGroup`]), reconciled with
//! kube-runtime through the same pure engine as the local driver.
//!
//! Three controllers run in one process:
//! - the experiment controller (`experiments.rs`) observes an Experiment and its Trials (from a
//!   watch cache), asks [`sextant_experiment::engine::plan`] what to do, and carries it out: creates Trials
//!   (owned by the Experiment, named `<experiment>-<ordinal>` so that a stale cache or a restart
//!   can never create a trial twice: the second create is refused as `AlreadyExists`), asks the
//!   search algorithm for assignments, marks trials to stop, and writes the Experiment's status
//!   through the status subresource;
//! - the trial controller (`trials.rs`) creates each Trial's run object (a Job, an Argo Workflow,
//!   a Kubeflow training job, any kind) with the dynamic API, owned by the Trial, judges it with
//!   the trial's GJSON-style success and failure conditions (`sextant-conditions`), reads the
//!   trial's observation log from the store, and writes the Trial's status. A finalizer deletes
//!   the observation log with the Trial; the run object goes with it by garbage collection;
//! - the pipeline run controller (`pipeline_runs.rs`) compiles each PipelineRun
//!   ([`pipeline_resources`]) to an Argo Workflow it owns and keeps the run's status in step
//!   with the Workflow's nodes (`argo_workflow.rs`). It runs only when the cluster serves the
//!   PipelineRun and Workflow kinds when the controller starts; otherwise one warning says so
//!   and Experiments and Trials are reconciled as ever.
//! - the RecurringRun controller ([`recurring_runs`]) creates PipelineRuns from a template on a
//!   cron schedule, each named after its scheduled time so that no firing happens twice.
//!
//! Pipelines compile for the cluster through [`tune_argo::compile_for_cluster`], which also
//! turns `tune` steps into Argo resource templates that create Experiments.
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

mod argo_workflow;
mod convert;
pub mod crd;
mod experiments;
#[cfg(test)]
mod fixtures;
mod group;
pub mod persistence;
pub mod pipeline_resources;
mod pipeline_runs;
pub mod recurring_runs;
mod run_object;
mod trials;
pub mod tune_argo;

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
pub use pipeline_runs::PIPELINE_RUN_LABEL;

use crate::suggest::Suggester;
use pipeline_resources::{PipelineRun, RecurringRun};
use sextant_experiment::api::experiment::{ExperimentSpec, ExperimentStatus};
use sextant_experiment::api::trial::{TrialSpec, TrialStatus};

/// An Experiment custom resource in a cluster: the spec and status typed, the API group given
/// at run time ([`ApiGroup`]), so one type serves `sextant.dev` and `kubeflow.org` alike.
pub type ExperimentResource = kube::core::Object<ExperimentSpec, ExperimentStatus>;

/// A Trial custom resource in a cluster, in the API group of its Experiment ([`ApiGroup`]).
pub type TrialResource = kube::core::Object<TrialSpec, TrialStatus>;

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
    /// Per observation log key of a finished trial, its objective values: a finished log does
    /// not change, so early-stopping rules for new trials read each one once.
    finished_objectives: Mutex<HashMap<String, Vec<f64>>>,
    recorder: Recorder,
    /// Per object, the failures in a row, for the backoff.
    failures: Mutex<HashMap<String, u32>>,
    /// API resources of run-object kinds, by `apiVersion` and `kind`, as discovered.
    kinds: tokio::sync::Mutex<HashMap<(String, String), Option<run_object::Kind>>>,
}

/// The longest wait before the next try of anything the API server refused as forbidden: a
/// watch, or a reconcile that got HTTP 403. RBAC comes into force when an operator binds a
/// role, an event no watch reports, so the controller only notices by trying again; a forbidden
/// answer costs the API server next to nothing, and one replica retrying a few requests every
/// few seconds is cheap, where minutes of backoff leave every experiment waiting after the fix.
const FORBIDDEN_RETRY_CAP: Duration = Duration::from_secs(4);

/// How often every Experiment is reconciled without any event, as controller-runtime's
/// `SyncPeriod` does: a safety net for whatever a watch misses (an Experiment costs one plan;
/// Trials are reconciled on their own events and polls).
const RESYNC_INTERVAL: Duration = Duration::from_secs(120);

/// A tick every [`RESYNC_INTERVAL`], the first one interval from now.
fn resync_ticks() -> impl futures::Stream<Item = ()> + Send {
    let mut ticks = tokio::time::interval_at(
        tokio::time::Instant::now() + RESYNC_INTERVAL,
        RESYNC_INTERVAL,
    );
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tokio_stream::wrappers::IntervalStream::new(ticks).map(|_| ())
}

/// The backoff of the controllers' watches: 250 ms, doubling up to [`FORBIDDEN_RETRY_CAP`],
/// back to the start on any event.
///
/// kube-runtime's default (800 ms doubling to 30 s, with jitter that may double a delay, and
/// reset only after two quiet minutes) is shared by every watch of a controller, so while RBAC
/// is not in force each forbidden list of the experiments, the trials and the jobs grows it,
/// and once the role is bound the controller sleeps out up to a minute, then often once more
/// for a list sent just before the binding took effect. That left experiments without trials
/// for a minute or two after a controller started before its role.
#[derive(Debug, Default)]
struct WatchBackoff {
    /// Failures since the last event.
    failures: u32,
}

impl Iterator for WatchBackoff {
    type Item = Duration;

    fn next(&mut self) -> Option<Duration> {
        let delay = Duration::from_millis(250u64 << self.failures.min(4)).min(FORBIDDEN_RETRY_CAP);
        self.failures = self.failures.saturating_add(1);
        Some(delay)
    }
}

impl kube::runtime::utils::Backoff for WatchBackoff {
    fn reset(&mut self) {
        self.failures = 0;
    }
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
    /// already on its way); after the backoff, but never longer than [`FORBIDDEN_RETRY_CAP`],
    /// when RBAC refused (the role may be bound any moment); else after the backoff.
    fn retry_delay(&self, key: String, error: &ReconcileError) -> Duration {
        if is_conflict(error) {
            Duration::from_millis(200)
        } else if api_status_code(error) == Some(403) {
            self.backoff(key).min(FORBIDDEN_RETRY_CAP)
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

/// Runs the controllers until `shutdown` resolves, then lets the reconciles in flight finish.
pub async fn run(
    client: Client,
    store: Store,
    config: ControllerConfig,
    shutdown: impl Future<Output = ()> + Send + 'static,
) {
    let experiment_kind = config.api_group.experiments();
    let trial_kind = config.api_group.trials();
    let namespace = config.namespace.as_deref();
    let experiments_api: Api<ExperimentResource> =
        scoped_api_with(client.clone(), namespace, &experiment_kind);
    let trials_api: Api<TrialResource> = scoped_api_with(client.clone(), namespace, &trial_kind);
    let jobs_api: Api<Job> = scoped_api(client.clone(), namespace);
    let recurring_runs_api: Api<RecurringRun> = scoped_api(client.clone(), namespace);
    let pipeline_runs_api: Api<PipelineRun> = scoped_api(client.clone(), namespace);

    let trial_writer = reflector::store::Writer::new(trial_kind.clone());
    let trial_reader = trial_writer.as_reader();
    // The experiment controller's view of every Trial, without what it never reads: the
    // server's field-ownership records.
    let trial_events = reflector::reflector(
        trial_writer,
        watcher(trials_api.clone(), watcher::Config::default())
            .modify(|trial| kube::ResourceExt::managed_fields_mut(trial).clear()),
    )
    .backoff(WatchBackoff::default())
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
            .trigger_backoff(WatchBackoff::default())
            .reconcile_all_on(resync_ticks())
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
        .trigger_backoff(WatchBackoff::default())
        .graceful_shutdown_on(shutdown.clone())
        .run(trials::reconcile, trials::error_policy, context.clone())
        .for_each(|result| async move {
            if let Err(error) = result {
                tracing::debug!(%error, "trial reconcile");
            }
        });
    let pipeline_run_controller = pipeline_runs::run(context.clone(), shutdown.clone());
    let recurring_run_controller = Controller::new(recurring_runs_api, watcher::Config::default())
        // Only the runs of recurring runs wake one, when they end.
        .owns(
            pipeline_runs_api,
            watcher::Config::default().labels(recurring_runs::RECURRING_RUN_LABEL),
        );
    let never_listed = stop_if_never_listed(shutdown.clone(), recurring_run_controller.store());
    let recurring_run_controller = recurring_run_controller
        .trigger_backoff(WatchBackoff::default())
        .graceful_shutdown_on(shutdown)
        .run(
            recurring_runs::reconcile,
            recurring_runs::error_policy,
            context,
        )
        .take_until(never_listed)
        .for_each(|result| async move {
            if let Err(error) = result {
                tracing::debug!(%error, "recurring run reconcile");
            }
        });
    futures::join!(
        experiment_controller,
        trial_controller,
        pipeline_run_controller,
        recurring_run_controller
    );
}

/// Writes `new` as `resource`'s status through the status subresource: a JSON merge patch from
/// `old` (the status read), conditional on the resource version read, so a write from a stale
/// view is refused (409) and the reconcile retried on the fresh object instead of undoing a
/// newer status. `what` names the status in an error.
pub(crate) async fn patch_status<K, S>(
    api: &Api<K>,
    resource: &K,
    old: Option<&S>,
    new: &S,
    what: &str,
) -> Result<(), ReconcileError>
where
    K: Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
    S: serde::Serialize,
{
    let to_json = |status: &S| {
        serde_json::to_value(status).map_err(|source| ReconcileError::Json {
            what: what.to_owned(),
            source,
        })
    };
    let old = match old {
        Some(old) => to_json(old)?,
        None => serde_json::Value::Null,
    };
    let patch = serde_json::json!({
        "metadata": {"resourceVersion": kube::ResourceExt::resource_version(resource)},
        "status": convert::merge_patch(&old, &to_json(new)?),
    });
    api.patch_status(
        &kube::ResourceExt::name_any(resource),
        &kube::api::PatchParams::default(),
        &kube::api::Patch::Merge(&patch),
    )
    .await?;
    Ok(())
}

/// The API of a namespaced kind over what is watched: one namespace, or all of them.
pub(crate) fn scoped_api<K>(client: Client, namespace: Option<&str>) -> Api<K>
where
    K: Resource<Scope = kube::core::NamespaceResourceScope>,
    K::DynamicType: Default,
{
    match namespace {
        Some(namespace) => Api::namespaced(client, namespace),
        None => Api::all(client),
    }
}

/// [`scoped_api`] for a kind known at run time (Experiments and Trials in either group, Argo's
/// Workflows).
pub(crate) fn scoped_api_with<K>(
    client: Client,
    namespace: Option<&str>,
    kind: &K::DynamicType,
) -> Api<K>
where
    K: Resource<Scope = kube::core::DynamicResourceScope>,
{
    match namespace {
        Some(namespace) => Api::namespaced_with(client, namespace, kind),
        None => Api::all_with(client, kind),
    }
}

/// Resolves on `shutdown` if the controller whose cache is `store` has not yet listed its kind
/// (its definition is not installed, or RBAC forbids the list); never otherwise, leaving the
/// controller to its graceful shutdown.
///
/// kube-runtime holds a controller's reconciles until the first list is in, and its graceful
/// shutdown waits for that list too: without this, a controller of a kind the cluster does not
/// serve (the pipeline kinds are optional) would keep the process from ever stopping. Before
/// the first list no reconcile has started, so there is nothing to finish.
async fn stop_if_never_listed<K>(shutdown: impl Future<Output = ()>, store: reflector::Store<K>)
where
    K: kube::Resource + Clone + 'static,
    K::DynamicType: std::hash::Hash + Eq + Clone,
{
    shutdown.await;
    if store.wait_until_ready().now_or_never().is_some() {
        futures::future::pending::<()>().await;
    }
}

/// Whether a reconcile failed only because it wrote from a stale view (HTTP 409), which is
/// expected under load and retried at once.
fn is_conflict(error: &ReconcileError) -> bool {
    api_status_code(error) == Some(409)
}

/// The HTTP status the API server refused a reconcile's call with, under the finalizer too.
fn api_status_code(error: &ReconcileError) -> Option<u16> {
    let status = match error {
        ReconcileError::Kube(kube::Error::Api(status)) => status,
        ReconcileError::Finalizer(inner) => match inner.as_ref() {
            kube::runtime::finalizer::Error::ApplyFailed(ReconcileError::Kube(
                kube::Error::Api(status),
            ))
            | kube::runtime::finalizer::Error::CleanupFailed(ReconcileError::Kube(
                kube::Error::Api(status),
            )) => status,
            _ => return None,
        },
        _ => return None,
    };
    Some(status.code)
}

/// The key of an object of the kind `resource` in the backoff table.
fn object_key<K: Resource<DynamicType = ApiResource>>(
    object: &K,
    resource: &ApiResource,
) -> String {
    ObjectRef::from_obj_with(object, resource.clone()).to_string()
}

#[cfg(test)]
mod tests {
    use kube::runtime::utils::Backoff;

    use super::*;

    fn seconds(delays: impl Iterator<Item = Duration>) -> Vec<f64> {
        delays.map(|delay| delay.as_secs_f64()).collect()
    }

    #[test]
    fn watches_retry_within_seconds_and_start_over_after_an_event() {
        let mut backoff = WatchBackoff::default();
        assert_eq!(
            seconds(backoff.by_ref().take(7)),
            [0.25, 0.5, 1.0, 2.0, 4.0, 4.0, 4.0]
        );
        backoff.reset();
        assert_eq!(seconds(backoff.take(2)), [0.25, 0.5]);
    }

    #[tokio::test]
    async fn failures_other_than_conflicts_and_rbac_back_off_to_minutes() {
        let (context, _verifier) = fixtures::context(Vec::new()).await;
        let unavailable = ReconcileError::Kube(kube::Error::Api(Box::new(
            kube::core::Status::failure("etcd is down", "ServiceUnavailable").with_code(503),
        )));
        let delays = (0..10).map(|_| context.retry_delay("exp".into(), &unavailable));
        assert_eq!(
            seconds(delays),
            [1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 256.0]
        );
    }
}
