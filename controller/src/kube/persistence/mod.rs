//! The persistence agent (`sextant persistence-agent`): copies what runs in a cluster into the
//! store `sextant server` reads, as Kubeflow Pipelines' persistence agent copies Workflows into
//! its backend's database, so the server's API and web UI show cluster work beside local work.
//!
//! It watches PipelineRuns (and the Pipelines they reference, for the spec the server draws a
//! run's graph from), Experiments and Trials with kube-runtime reflectors, and mirrors them as
//! rows named `<namespace>.<name>` ([`rows`]), marked as the cluster's (an experiment by the
//! annotation `sextant.dev/cluster-namespace`, a run by its record's `cluster_namespace`), so
//! the server shows them and never resumes, stops or deletes them. Argo Workflows are not
//! watched: a PipelineRun's status carries each step's phase, times, message, retries and
//! output parameters, everything the store records of a step (artifacts stay in Argo's
//! repository).
//!
//! It is a process of its own, not a mode of the controller, with a role that only reads
//! (get, list, watch): a store written from what the API server says, by a process that cannot
//! change the cluster, as Kubeflow Pipelines deploys its agent.
//!
//! Every write is decided by [`plan`] from the rows the cluster object should have and the
//! rows stored, and made only when they differ: restarting the agent, or running two, writes
//! nothing twice. It catches up from the current state, not from missed events: nothing is
//! written until every watch has listed its kind, then every object and every stored row of
//! the cluster is reconciled (rows whose objects are gone are removed as [`plan`] says), again
//! after any watch lists anew, and every two minutes as a safety net.

mod plan;
mod rows;

use std::collections::BTreeSet;
use std::fmt;
use std::future::Future;
use std::time::Duration;

use futures::stream::BoxStream;
use futures::{FutureExt, StreamExt};
use kube::core::ApiResource;
use kube::runtime::WatchStreamExt;
use kube::runtime::reflector::{self, ObjectRef};
use kube::runtime::watcher::{self, Event};
use kube::{Api, Client, Resource, ResourceExt};
use serde::de::DeserializeOwned;
use sextant_experiment::api::experiment::Experiment;
use sextant_experiment::api::trial::EXPERIMENT_LABEL;
use sextant_pipeline::run_store::{RunStore, RunStoreError};
use sextant_store::Store;

pub use rows::IncompleteObject;

use crate::kube::pipeline_resources::{Pipeline, PipelineRun};
use crate::kube::{
    ApiGroup, ExperimentResource, RESYNC_INTERVAL, TrialResource, WatchBackoff, scoped_api,
    scoped_api_with,
};
use plan::{StoredExperiment, Write, plan_experiment, plan_run};
use rows::mirror_name;

/// How the agent runs.
#[derive(Clone, Debug)]
pub struct PersistenceAgentConfig {
    /// The group of the Experiment and Trial kinds to mirror (the controller's).
    pub api_group: ApiGroup,
    /// Mirror only this namespace (and touch only its rows); all namespaces when `None`.
    pub namespace: Option<String>,
}

/// Why one object could not be mirrored; it is tried again after [`RETRY_DELAY`].
#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    /// The store failed.
    #[error("store: {0}")]
    Store(#[from] sextant_store::Error),
    /// The store failed under a pipeline run's records.
    #[error("store: {0}")]
    RunStore(#[from] RunStoreError),
    /// The object lacks what the API server always sets.
    #[error(transparent)]
    Incomplete(#[from] IncompleteObject),
}

/// How long an object whose rows could not be written waits before it is tried again.
const RETRY_DELAY: Duration = Duration::from_secs(2);

/// The kinds the agent watches; it writes nothing until each has been listed once.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Experiments,
    Trials,
    PipelineRuns,
    Pipelines,
}

const KINDS: [Kind; 4] = [
    Kind::Experiments,
    Kind::Trials,
    Kind::PipelineRuns,
    Kind::Pipelines,
];

/// A cluster object whose rows are reconciled as one.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Key {
    /// An Experiment and its Trials.
    Experiment { namespace: String, name: String },
    /// A PipelineRun and its steps.
    Run { namespace: String, name: String },
}

impl fmt::Display for Key {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Key::Experiment { namespace, name } => {
                write!(formatter, "Experiment {namespace}/{name}")
            }
            Key::Run { namespace, name } => write!(formatter, "PipelineRun {namespace}/{name}"),
        }
    }
}

/// What a watch event asks of the agent.
enum Touch {
    /// Reconcile this object's rows.
    Key(Key),
    /// Reconcile the runs that reference this Pipeline.
    Pipeline { namespace: String, name: String },
    /// The watch of this kind has listed every object (first, or again after a lost watch).
    Listed(Kind),
}

/// Why the agent's loop woke.
enum Wake {
    /// Watch events arrived.
    Touches(Vec<Touch>),
    /// The periodic full pass is due.
    Resync,
    /// Objects that failed, or a full pass that failed, are due again.
    Retry,
}

/// The cluster as the watches see it, and the store.
struct Agent {
    store: Store,
    config: PersistenceAgentConfig,
    experiment_kind: ApiResource,
    experiments: reflector::Store<ExperimentResource>,
    trials: reflector::Store<TrialResource>,
    runs: reflector::Store<PipelineRun>,
    pipelines: reflector::Store<Pipeline>,
}

/// Runs the agent until `shutdown` resolves.
pub async fn run(
    client: Client,
    store: Store,
    config: PersistenceAgentConfig,
    shutdown: impl Future<Output = ()> + Send + 'static,
) {
    let experiment_kind = config.api_group.experiments();
    let trial_kind = config.api_group.trials();
    let namespace = config.namespace.as_deref();
    let experiments_api: Api<ExperimentResource> =
        scoped_api_with(client.clone(), namespace, &experiment_kind);
    let trials_api: Api<TrialResource> = scoped_api_with(client.clone(), namespace, &trial_kind);
    let runs_api: Api<PipelineRun> = scoped_api(client.clone(), namespace);
    let pipelines_api: Api<Pipeline> = scoped_api(client, namespace);

    let experiment_writer = reflector::store::Writer::new(experiment_kind.clone());
    let trial_writer = reflector::store::Writer::new(trial_kind);
    let run_writer = reflector::store::Writer::default();
    let pipeline_writer = reflector::store::Writer::default();
    let agent = Agent {
        store,
        config,
        experiment_kind,
        experiments: experiment_writer.as_reader(),
        trials: trial_writer.as_reader(),
        runs: run_writer.as_reader(),
        pipelines: pipeline_writer.as_reader(),
    };
    let mut touches = futures::stream::select_all([
        watch(
            experiments_api,
            experiment_writer,
            Kind::Experiments,
            |experiment| {
                Some(Touch::Key(Key::Experiment {
                    namespace: experiment.namespace()?,
                    name: experiment.name_any(),
                }))
            },
        ),
        watch(trials_api, trial_writer, Kind::Trials, |trial| {
            Some(Touch::Key(Key::Experiment {
                namespace: trial.namespace()?,
                name: trial.labels().get(EXPERIMENT_LABEL)?.clone(),
            }))
        }),
        watch(runs_api, run_writer, Kind::PipelineRuns, |run| {
            Some(Touch::Key(Key::Run {
                namespace: run.namespace()?,
                name: run.name_any(),
            }))
        }),
        watch(
            pipelines_api,
            pipeline_writer,
            Kind::Pipelines,
            |pipeline| {
                Some(Touch::Pipeline {
                    namespace: pipeline.namespace()?,
                    name: pipeline.name_any(),
                })
            },
        ),
    ]);

    tracing::info!(namespace = ?agent.config.namespace, "persistence agent starting");
    let mut shutdown = std::pin::pin!(shutdown);
    let mut resync = tokio::time::interval_at(
        tokio::time::Instant::now() + RESYNC_INTERVAL,
        RESYNC_INTERVAL,
    );
    resync.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut listed: Vec<Kind> = Vec::new();
    let mut pending: BTreeSet<Key> = BTreeSet::new();
    let mut failed: BTreeSet<Key> = BTreeSet::new();
    let mut resync_due = false;
    let mut caught_up = false;
    // Armed when something failed: what failed, and a failed full pass, are tried again then.
    let retry = tokio::time::sleep(RETRY_DELAY);
    let mut retry = std::pin::pin!(retry);
    let mut retry_armed = false;
    loop {
        let wake = tokio::select! {
            () = &mut shutdown => break,
            touch = touches.next() => match touch {
                Some(touch) => {
                    // Whatever else has arrived is reconciled in the same pass, once per object.
                    let mut arrived = vec![touch];
                    while let Some(Some(touch)) = touches.next().now_or_never() {
                        arrived.push(touch);
                    }
                    Wake::Touches(arrived)
                }
                None => break,
            },
            _ = resync.tick() => Wake::Resync,
            () = &mut retry, if retry_armed => Wake::Retry,
        };
        match wake {
            Wake::Touches(arrived) => {
                for touch in arrived {
                    match touch {
                        Touch::Key(key) => {
                            pending.insert(key);
                        }
                        Touch::Pipeline { namespace, name } => {
                            pending.extend(agent.runs_of(&namespace, &name));
                        }
                        Touch::Listed(kind) => {
                            if !listed.contains(&kind) {
                                listed.push(kind);
                            }
                            // A watch that lists anew may have missed deletions.
                            resync_due = true;
                        }
                    }
                }
            }
            Wake::Resync => resync_due = true,
            Wake::Retry => {
                retry_armed = false;
                pending.append(&mut failed);
            }
        }
        if !KINDS.iter().all(|kind| listed.contains(kind)) {
            continue;
        }
        if resync_due {
            match agent.every_key().await {
                Ok(keys) => {
                    pending.extend(keys);
                    resync_due = false;
                }
                Err(error) => {
                    tracing::warn!(%error, "cannot list the store's mirrored rows; trying again");
                    if !retry_armed {
                        retry
                            .as_mut()
                            .reset(tokio::time::Instant::now() + RETRY_DELAY);
                        retry_armed = true;
                    }
                    continue;
                }
            }
        }
        let mut written = 0;
        for key in std::mem::take(&mut pending) {
            match agent.reconcile(&key).await {
                Ok(count) => written += count,
                Err(error) => {
                    tracing::warn!(object = %key, %error, "cannot mirror; trying again");
                    if !retry_armed {
                        retry
                            .as_mut()
                            .reset(tokio::time::Instant::now() + RETRY_DELAY);
                        retry_armed = true;
                    }
                    failed.insert(key);
                }
            }
        }
        if written > 0 {
            tracing::debug!(written, "rows written");
        }
        if !caught_up && failed.is_empty() {
            caught_up = true;
            tracing::info!(written, "caught up with the cluster");
        }
    }
    tracing::info!("persistence agent stopped");
}

/// The touches of one kind's watch, keeping `writer`'s store current.
fn watch<K>(
    api: Api<K>,
    writer: reflector::store::Writer<K>,
    kind: Kind,
    touch: fn(&K) -> Option<Touch>,
) -> BoxStream<'static, Touch>
where
    K: Resource + Clone + DeserializeOwned + fmt::Debug + Send + Sync + 'static,
    K::DynamicType: Clone + Eq + std::hash::Hash + Send + Sync,
{
    let events = watcher::watcher(api, watcher::Config::default())
        // Field-ownership records are never read; the cache need not hold them.
        .modify(|object| object.managed_fields_mut().clear());
    reflector::reflector(writer, events)
        .backoff(WatchBackoff::default())
        .filter_map(move |event| {
            let touch = match event {
                Ok(Event::Apply(object) | Event::Delete(object) | Event::InitApply(object)) => {
                    touch(&object)
                }
                Ok(Event::InitDone) => Some(Touch::Listed(kind)),
                Ok(Event::Init) => None,
                Err(error) => {
                    tracing::warn!(?kind, %error, "watch failed; retrying");
                    None
                }
            };
            futures::future::ready(touch)
        })
        .boxed()
}

// === impl Agent ===

impl Agent {
    /// Whether rows of `namespace` are the agent's to write.
    fn in_scope(&self, namespace: &str) -> bool {
        self.config
            .namespace
            .as_deref()
            .is_none_or(|watched| watched == namespace)
    }

    /// The PipelineRuns of `namespace` that reference the Pipeline `name`.
    fn runs_of(&self, namespace: &str, name: &str) -> Vec<Key> {
        self.runs
            .state()
            .iter()
            .filter(|run| {
                run.namespace().as_deref() == Some(namespace)
                    && run
                        .spec
                        .pipeline_ref
                        .as_ref()
                        .is_some_and(|reference| reference.name == name)
            })
            .map(|run| Key::Run {
                namespace: namespace.to_owned(),
                name: run.name_any(),
            })
            .collect()
    }

    /// Every object of the cluster, and every one the store holds rows of (whether or not it
    /// still exists).
    async fn every_key(&self) -> Result<BTreeSet<Key>, AgentError> {
        let mut keys = BTreeSet::new();
        for experiment in self.experiments.state() {
            if let Some(namespace) = experiment.namespace() {
                keys.insert(Key::Experiment {
                    namespace,
                    name: experiment.name_any(),
                });
            }
        }
        for run in self.runs.state() {
            if let Some(namespace) = run.namespace() {
                keys.insert(Key::Run {
                    namespace,
                    name: run.name_any(),
                });
            }
        }
        for record in self.store.list_experiments().await? {
            let Some(namespace) = mirror_namespace(&record.spec) else {
                continue;
            };
            if let Some(name) = unmirrored_name(&record.name, &namespace)
                && self.in_scope(&namespace)
            {
                keys.insert(Key::Experiment { namespace, name });
            }
        }
        for run in sextant_pipeline::database_store::list_runs(&self.store).await? {
            if let Some(namespace) = run.cluster_namespace
                && let Some(name) = unmirrored_name(&run.run_id, &namespace)
                && self.in_scope(&namespace)
            {
                keys.insert(Key::Run { namespace, name });
            }
        }
        Ok(keys)
    }

    /// Brings the rows of `key` to what the cluster holds; returns how many writes it made.
    async fn reconcile(&self, key: &Key) -> Result<usize, AgentError> {
        let writes = match key {
            Key::Experiment { namespace, name } => self.plan_experiment(namespace, name).await?,
            Key::Run { namespace, name } => self.plan_run(namespace, name).await?,
        };
        let count = writes.len();
        for write in writes {
            self.write(write).await?;
        }
        Ok(count)
    }

    async fn plan_experiment(&self, namespace: &str, name: &str) -> Result<Vec<Write>, AgentError> {
        let mirrored = mirror_name(namespace, name);
        let stored = match self.store.get_experiment(&mirrored).await? {
            Some(record) => {
                if mirror_namespace(&record.spec).as_deref() != Some(namespace) {
                    tracing::warn!(experiment = %mirrored, "a stored experiment of this name is not a mirror; leaving it alone");
                    return Ok(Vec::new());
                }
                let trials = self.store.list_trials(&mirrored).await?;
                Some(StoredExperiment { record, trials })
            }
            None => None,
        };
        let reference = ObjectRef::new_with(name, self.experiment_kind.clone()).within(namespace);
        let desired = match self.experiments.get(&reference) {
            Some(experiment) => {
                let trials = self.trials.state();
                Some(rows::experiment_rows(
                    &experiment,
                    trials.iter().map(AsRef::as_ref),
                    &self.experiment_kind,
                )?)
            }
            None => None,
        };
        Ok(plan_experiment(desired.as_ref(), stored.as_ref()))
    }

    async fn plan_run(&self, namespace: &str, name: &str) -> Result<Vec<Write>, AgentError> {
        let mirrored = mirror_name(namespace, name);
        let stored = RunStore::load_run(&self.store, &mirrored).await?;
        if let Some(stored) = &stored
            && stored.run.cluster_namespace.as_deref() != Some(namespace)
        {
            tracing::warn!(run = %mirrored, "a stored run of this id is not a mirror; leaving it alone");
            return Ok(Vec::new());
        }
        let desired = match self.runs.get(&ObjectRef::new(name).within(namespace)) {
            Some(run) => {
                let pipeline = run.spec.pipeline_ref.as_ref().and_then(|reference| {
                    self.pipelines
                        .get(&ObjectRef::new(&reference.name).within(namespace))
                });
                let stored_source = stored.as_ref().map(|stored| stored.run.source.as_str());
                Some(rows::run_rows(&run, pipeline.as_deref(), stored_source)?)
            }
            None => None,
        };
        Ok(plan_run(desired.as_ref(), stored.as_ref()))
    }

    async fn write(&self, write: Write) -> Result<(), AgentError> {
        match write {
            Write::Experiment {
                name,
                spec,
                status,
                created_at,
            } => {
                self.store
                    .mirror_experiment(&name, &spec, &status, created_at)
                    .await?;
            }
            Write::Trial(trial) => {
                self.store.mirror_trial(&trial).await?;
            }
            Write::DeleteTrial(name) => {
                self.store.delete_trial(&name).await?;
            }
            Write::DeleteExperiment(name) => {
                self.store.delete_experiment(&name).await?;
            }
            Write::Run(run) => RunStore::save_run(&self.store, &run).await?,
            Write::Step { run_id, step } => {
                RunStore::record_step(&self.store, &run_id, &step).await?;
            }
            Write::DeleteRun(run_id) => {
                self.store.delete_pipeline_run(&run_id).await?;
            }
        }
        Ok(())
    }
}

/// The namespace a stored experiment mirrors, when it is a mirror (an unreadable spec is not
/// one).
fn mirror_namespace(spec: &str) -> Option<String> {
    let experiment: Experiment = serde_json::from_str(spec).ok()?;
    experiment.cluster_namespace().map(str::to_owned)
}

/// The cluster name of the rows named `mirrored` in `namespace`.
fn unmirrored_name(mirrored: &str, namespace: &str) -> Option<String> {
    mirrored
        .strip_prefix(namespace)?
        .strip_prefix('.')
        .map(str::to_owned)
}
