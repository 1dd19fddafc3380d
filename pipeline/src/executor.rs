//! The local executor: runs a [`Pipeline`]'s DAG on this machine with tokio.
//!
//! The scheduler keeps, per step, how many dependencies are still unfinished; a step whose count
//! reaches zero is started at once. Starting a step decides, in order: skip it (a dependency did
//! not succeed), expand `withItems` into instances, and per instance evaluate `when` (false:
//! skipped), substitute references, look up the cache, or hand the instance to a task that runs
//! it under the parallelism limit (a semaphore) with retries. Every state change goes to the
//! [`RunStore`] first and then to the progress channel.
//!
//! Rules the executor applies (also in the crate docs):
//! - a step runs when every dependency succeeded (or was served from the cache); a dependency that
//!   failed, was skipped or was cancelled makes it skipped, and a failed step fails the run;
//!   independent branches still run;
//! - a fanned-out step succeeds when none of its instances failed and at least one ran; its
//!   outputs, read from later steps, are JSON lists over its successful instances in item order;
//! - on cancellation no new step starts, running steps get SIGTERM then SIGKILL after the grace
//!   period, and the run ends `Cancelled`, resumable;
//! - resuming keeps every instance that succeeded or was served from the cache, and decides the
//!   rest again.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::fmt;
use std::panic::AssertUnwindSafe;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;
use futures::FutureExt;
use tokio::sync::{Semaphore, mpsc};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::cache;
use crate::kind::{StepContext, StepFailure, StepKind, StepKindRegistry, StepOutputs};
use crate::run_store::{RunPhase, RunRecord, RunStore, RunStoreError, StepPhase, StepRecord};
use crate::spec::{
    Item, OutputDeclaration, ParamError, Pipeline, RetryPolicy, SpecError, Step,
    render_json_templates,
};
use crate::template::{Reference, Template, TemplateError};

/// Settings of an executor.
#[derive(Debug, Clone, Copy)]
pub struct ExecutorConfig {
    /// The most step instances running at once (at least 1).
    pub parallelism: usize,
    /// How long a step may take to stop after SIGTERM before SIGKILL.
    pub kill_grace: Duration,
}

/// What to run: identity, place and inputs of a new run.
#[derive(Debug, Clone)]
pub struct RunRequest {
    /// The run's id (see [`new_run_id`]).
    pub run_id: String,
    /// The run's directory; created, and must not hold another run.
    pub run_dir: PathBuf,
    /// Parameter values overriding the defaults.
    pub params: BTreeMap<String, String>,
    /// Reuse cached results (steps can still opt out with `cache: false`).
    pub cache: bool,
    /// The trial the run belongs to, when a trial's template is this pipeline.
    pub trial: Option<String>,
}

/// Runs pipelines, recording them in a [`RunStore`].
#[derive(Clone)]
pub struct Executor {
    kinds: StepKindRegistry,
    store: Arc<dyn RunStore>,
    config: ExecutorConfig,
}

/// Progress of a run, sent as it happens.
#[derive(Debug, Clone, PartialEq)]
pub enum RunEvent {
    /// The run began (or resumed).
    RunStarted {
        /// The run's id.
        run_id: String,
        /// The run's directory.
        run_dir: PathBuf,
        /// It continues an interrupted run.
        resumed: bool,
    },
    /// An attempt of a step instance started.
    StepStarted {
        /// The step.
        step: String,
        /// The item index of a fanned-out step.
        item_index: Option<usize>,
        /// 1 for the first attempt.
        attempt: u32,
    },
    /// An attempt failed and another will follow after `delay`.
    StepRetrying {
        /// The step.
        step: String,
        /// The item index of a fanned-out step.
        item_index: Option<usize>,
        /// The attempt that failed.
        attempt: u32,
        /// The wait before the next attempt.
        delay: Duration,
        /// Why the attempt failed.
        message: String,
    },
    /// A step instance reached a final phase.
    StepFinished {
        /// The step.
        step: String,
        /// The item index of a fanned-out step.
        item_index: Option<usize>,
        /// Succeeded, Cached, Failed, Skipped or Cancelled.
        phase: StepPhase,
        /// Why, for failures and skips.
        message: Option<String>,
    },
    /// The run ended.
    RunFinished {
        /// The run's id.
        run_id: String,
        /// How it ended.
        phase: RunPhase,
    },
}

/// How a run ended.
#[derive(Debug, Clone, PartialEq)]
pub struct RunReport {
    /// The run's id.
    pub run_id: String,
    /// The run's directory.
    pub run_dir: PathBuf,
    /// How it ended.
    pub phase: RunPhase,
    /// Why it failed, when it did.
    pub message: Option<String>,
    /// The final state of every step instance that got one.
    pub steps: Vec<StepRecord>,
}

/// Why a run could not be carried out (a failing step is not an error: see [`RunReport`]).
#[derive(Debug, thiserror::Error)]
pub enum ExecutorError {
    /// A step names a kind no plug-in registered.
    #[error("spec.steps[{index}].kind: no step kind `{kind}` is registered (known: {known})")]
    UnknownKind {
        /// The step's position.
        index: usize,
        /// The kind asked for.
        kind: String,
        /// The registered kinds.
        known: String,
    },
    /// The parameters do not fit the pipeline.
    #[error(transparent)]
    Params(#[from] ParamError),
    /// The run directory cannot be created or used.
    #[error("cannot use the run directory {}: {source}", path.display())]
    RunDirectory {
        /// The directory.
        path: PathBuf,
        /// The operating system's reason.
        #[source]
        source: std::io::Error,
    },
    /// A run id that cannot name a directory under the runs directory.
    #[error(
        "run id `{}`: must be 1 to {MAX_RUN_ID_LENGTH} letters, digits, `-` or `_` (it names the run's directory)",
        sextant_echo::echo(.0)
    )]
    InvalidRunId(String),
    /// A run with this id already exists.
    #[error("run `{0}` already exists; resume it or pick another id")]
    RunExists(String),
    /// Recording the run failed.
    #[error(transparent)]
    Store(#[from] RunStoreError),
    /// The run to resume is not in the store.
    #[error("no run `{0}` in the store")]
    RunNotFound(String),
    /// The run to resume mirrors a cluster's PipelineRun: Argo runs it there.
    #[error("run `{run_id}` is managed by the cluster namespace `{namespace}`; use kubectl")]
    ClusterRun {
        /// The run.
        run_id: String,
        /// The namespace of its PipelineRun.
        namespace: String,
    },
    /// The stored spec of the run to resume no longer loads.
    #[error("run `{run_id}` cannot be resumed: {source}")]
    StoredSpec {
        /// The run.
        run_id: String,
        /// Why the spec is rejected.
        #[source]
        source: SpecError,
    },
}

/// A fresh run id: the pipeline's name and the current UTC time to the millisecond.
pub fn new_run_id(pipeline_name: &str) -> String {
    format!("{pipeline_name}-{}", Utc::now().format("%Y%m%d-%H%M%S-%3f"))
}

/// The longest run id accepted.
pub const MAX_RUN_ID_LENGTH: usize = 255;

/// A run id names a directory under the runs directory, so it is a name like a step's: no
/// separator, no `..`, nothing that could leave that directory.
pub fn is_run_id(run_id: &str) -> bool {
    !run_id.is_empty()
        && run_id.len() <= MAX_RUN_ID_LENGTH
        && run_id
            .chars()
            .all(|character| character.is_ascii_alphanumeric() || matches!(character, '-' | '_'))
}

// === impl ExecutorConfig ===

impl Default for ExecutorConfig {
    /// As many parallel steps as there are cores, and five seconds of grace.
    fn default() -> Self {
        Self {
            parallelism: std::thread::available_parallelism().map_or(2, |cores| cores.get()),
            kill_grace: Duration::from_secs(5),
        }
    }
}

// === impl Executor ===

impl Executor {
    /// An executor recording into `store`, running the kinds in `kinds`.
    pub fn new(store: Arc<dyn RunStore>, kinds: StepKindRegistry, config: ExecutorConfig) -> Self {
        Self {
            kinds,
            store,
            config,
        }
    }

    /// The store runs are recorded in.
    pub fn store(&self) -> &Arc<dyn RunStore> {
        &self.store
    }

    /// Runs `pipeline` to its end, or until `shutdown` fires.
    pub async fn run(
        &self,
        pipeline: &Pipeline,
        request: RunRequest,
        events: Option<mpsc::UnboundedSender<RunEvent>>,
        shutdown: CancellationToken,
    ) -> Result<RunReport, ExecutorError> {
        self.check_kinds(pipeline)?;
        if !is_run_id(&request.run_id) {
            return Err(ExecutorError::InvalidRunId(request.run_id));
        }
        let params = pipeline.resolve_params(&request.params)?;
        if self.store.load_run(&request.run_id).await?.is_some() {
            return Err(ExecutorError::RunExists(request.run_id));
        }
        let run_dir = prepare_run_dir(&request.run_dir)?;
        let run = RunRecord {
            run_id: request.run_id,
            pipeline_name: pipeline.name.clone(),
            source: pipeline.source.clone(),
            params,
            run_dir,
            cache_enabled: request.cache,
            phase: RunPhase::Pending,
            created_at: Utc::now(),
            started_at: None,
            finished_at: None,
            message: None,
            trial: request.trial,
            cluster_namespace: None,
        };
        self.store.save_run(&run).await?;
        self.execute(pipeline, run, Vec::new(), false, events, shutdown)
            .await
    }

    /// Continues the stored run `run_id`: instances that succeeded (or were served from the
    /// cache) are kept, the rest is decided and run again.
    pub async fn resume(
        &self,
        run_id: &str,
        events: Option<mpsc::UnboundedSender<RunEvent>>,
        shutdown: CancellationToken,
    ) -> Result<RunReport, ExecutorError> {
        let stored = self
            .store
            .load_run(run_id)
            .await?
            .ok_or_else(|| ExecutorError::RunNotFound(run_id.to_owned()))?;
        if let Some(namespace) = stored.run.cluster_namespace {
            return Err(ExecutorError::ClusterRun {
                run_id: run_id.to_owned(),
                namespace,
            });
        }
        let pipeline = Pipeline::from_yaml(&stored.run.source).map_err(|source| {
            ExecutorError::StoredSpec {
                run_id: run_id.to_owned(),
                source,
            }
        })?;
        self.check_kinds(&pipeline)?;
        let run_dir = prepare_run_dir(&stored.run.run_dir)?;
        let run = RunRecord {
            run_dir,
            ..stored.run
        };
        let kept = stored
            .steps
            .into_iter()
            .filter(|record| record.phase.is_successful())
            .collect();
        self.execute(&pipeline, run, kept, true, events, shutdown)
            .await
    }

    fn check_kinds(&self, pipeline: &Pipeline) -> Result<(), ExecutorError> {
        for (index, step) in pipeline.steps.iter().enumerate() {
            if self.kinds.get(&step.kind).is_none() {
                return Err(ExecutorError::UnknownKind {
                    index,
                    kind: step.kind.clone(),
                    known: self.kinds.names().collect::<Vec<_>>().join(", "),
                });
            }
        }
        Ok(())
    }

    async fn execute(
        &self,
        pipeline: &Pipeline,
        mut run: RunRecord,
        kept: Vec<StepRecord>,
        resumed: bool,
        events: Option<mpsc::UnboundedSender<RunEvent>>,
        shutdown: CancellationToken,
    ) -> Result<RunReport, ExecutorError> {
        run.phase = RunPhase::Running;
        run.started_at = Some(Utc::now());
        run.finished_at = None;
        run.message = None;
        self.store.save_run(&run).await?;
        let shared = Arc::new(Shared {
            store: Arc::clone(&self.store),
            run_id: run.run_id.clone(),
            events,
            cancellation: shutdown.child_token(),
            semaphore: Semaphore::new(self.config.parallelism.max(1)),
            kill_grace: self.config.kill_grace,
        });
        shared.emit(RunEvent::RunStarted {
            run_id: run.run_id.clone(),
            run_dir: run.run_dir.clone(),
            resumed,
        });
        let running = run.clone();
        let mut scheduler = Scheduler::new(self, pipeline, &running, kept, Arc::clone(&shared));
        let outcome = scheduler.drive().await;
        let (phase, message) = match &outcome {
            Err(error) => (RunPhase::Failed, Some(error.to_string())),
            Ok(()) if shared.cancellation.is_cancelled() => {
                (RunPhase::Cancelled, Some("stopped by the user".to_owned()))
            }
            Ok(()) => match scheduler.first_failure.clone() {
                Some(message) => (RunPhase::Failed, Some(message)),
                None => (RunPhase::Succeeded, None),
            },
        };
        run.phase = phase;
        run.finished_at = Some(Utc::now());
        run.message = message.clone();
        let saved = self.store.save_run(&run).await;
        outcome?;
        saved?;
        shared.emit(RunEvent::RunFinished {
            run_id: run.run_id.clone(),
            phase,
        });
        Ok(RunReport {
            run_id: run.run_id,
            run_dir: run.run_dir,
            phase,
            message,
            steps: scheduler.final_records(),
        })
    }
}

impl fmt::Debug for Executor {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter
            .debug_struct("Executor")
            .field("kinds", &self.kinds)
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

fn prepare_run_dir(path: &Path) -> Result<PathBuf, ExecutorError> {
    let error = |source| ExecutorError::RunDirectory {
        path: path.to_owned(),
        source,
    };
    std::fs::create_dir_all(path).map_err(error)?;
    let absolute = std::fs::canonicalize(path).map_err(error)?;
    // Creating and removing a probe file finds a read-only directory before any step runs.
    let probe = absolute.join(".sextant-write-probe");
    std::fs::write(&probe, b"").map_err(error)?;
    std::fs::remove_file(&probe).map_err(error)?;
    Ok(absolute)
}

// === impl RunEvent ===

impl fmt::Display for RunEvent {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::RunStarted {
                run_id,
                run_dir,
                resumed,
            } => write!(
                formatter,
                "run {run_id} {} in {}",
                if *resumed { "resumed" } else { "started" },
                run_dir.display()
            ),
            Self::StepStarted {
                step,
                item_index,
                attempt,
            } => {
                write!(
                    formatter,
                    "step {} started",
                    instance_name(step, *item_index)
                )?;
                if *attempt > 1 {
                    write!(formatter, " (attempt {attempt})")?;
                }
                Ok(())
            }
            Self::StepRetrying {
                step,
                item_index,
                attempt,
                delay,
                message,
            } => write!(
                formatter,
                "step {} attempt {attempt} failed, retrying in {:.1}s: {message}",
                instance_name(step, *item_index),
                delay.as_secs_f64()
            ),
            Self::StepFinished {
                step,
                item_index,
                phase,
                message,
            } => {
                write!(
                    formatter,
                    "step {} {}",
                    instance_name(step, *item_index),
                    phase.to_string().to_lowercase()
                )?;
                if let Some(message) = message {
                    write!(formatter, ": {message}")?;
                }
                Ok(())
            }
            Self::RunFinished { run_id, phase } => {
                write!(
                    formatter,
                    "run {run_id} {}",
                    phase.to_string().to_lowercase()
                )
            }
        }
    }
}

/// The file a step instance's standard output is kept in, in its directory.
pub const STDOUT_LOG: &str = "stdout.log";
/// The file a step instance's standard error is kept in, in its directory.
pub const STDERR_LOG: &str = "stderr.log";

/// `step` or `step[3]`.
pub fn instance_name(step: &str, item_index: Option<usize>) -> String {
    match item_index {
        Some(index) => format!("{step}[{index}]"),
        None => step.to_owned(),
    }
}

// === the scheduler ===

struct Shared {
    store: Arc<dyn RunStore>,
    run_id: String,
    events: Option<mpsc::UnboundedSender<RunEvent>>,
    cancellation: CancellationToken,
    semaphore: Semaphore,
    kill_grace: Duration,
}

impl Shared {
    fn emit(&self, event: RunEvent) {
        if let Some(events) = &self.events {
            // A receiver that went away only means nobody watches the progress.
            let _ = events.send(event);
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum StepState {
    Waiting,
    Running { outstanding: usize },
    Done(StepPhase),
}

/// Everything an instance task needs; built by the scheduler.
struct InstancePlan {
    step_index: usize,
    step: String,
    item_index: Option<usize>,
    work_dir: PathBuf,
    argv: Vec<String>,
    env: Vec<(String, String)>,
    kind_spec: Option<serde_json::Value>,
    timeout: Option<Duration>,
    retry: RetryPolicy,
    cache_key: Option<String>,
    output_params: Vec<OutputDeclaration>,
    output_artifacts: Vec<OutputDeclaration>,
    kind: Arc<dyn StepKind>,
}

struct InstanceResult {
    step_index: usize,
    item_index: Option<usize>,
    record: StepRecord,
    store_error: Option<RunStoreError>,
}

struct Scheduler<'a> {
    executor: &'a Executor,
    pipeline: &'a Pipeline,
    run: &'a RunRecord,
    shared: Arc<Shared>,
    states: Vec<StepState>,
    /// Per step, per instance (one for steps without items): the final record, once known.
    instances: Vec<Vec<Option<StepRecord>>>,
    remaining_dependencies: Vec<usize>,
    dependents: Vec<Vec<usize>>,
    ready: VecDeque<usize>,
    tasks: JoinSet<InstanceResult>,
    first_failure: Option<String>,
}

impl<'a> Scheduler<'a> {
    fn new(
        executor: &'a Executor,
        pipeline: &'a Pipeline,
        run: &'a RunRecord,
        kept: Vec<StepRecord>,
        shared: Arc<Shared>,
    ) -> Self {
        let step_count = pipeline.steps.len();
        let mut instances: Vec<Vec<Option<StepRecord>>> = pipeline
            .steps
            .iter()
            .map(|step| vec![None; step.items.as_ref().map_or(1, Vec::len)])
            .collect();
        let index_by_name: HashMap<&str, usize> = pipeline
            .steps
            .iter()
            .enumerate()
            .map(|(index, step)| (step.name.as_str(), index))
            .collect();
        for record in kept {
            let Some(step_index) = index_by_name.get(record.step.as_str()) else {
                continue;
            };
            let slot = match (
                pipeline.steps[*step_index].is_fanned_out(),
                record.item_index,
            ) {
                (true, Some(item_index)) => instances[*step_index].get_mut(item_index),
                (false, None) => instances[*step_index].get_mut(0),
                _ => None,
            };
            if let Some(slot) = slot {
                *slot = Some(record);
            }
        }
        let mut dependents = vec![Vec::new(); step_count];
        for (index, step) in pipeline.steps.iter().enumerate() {
            for dependency in &step.dependencies {
                dependents[*dependency].push(index);
            }
        }
        let remaining_dependencies: Vec<usize> = pipeline
            .steps
            .iter()
            .map(|step| step.dependencies.len())
            .collect();
        let ready = pipeline
            .topological_order
            .iter()
            .copied()
            .filter(|index| remaining_dependencies[*index] == 0)
            .collect();
        Self {
            executor,
            pipeline,
            run,
            shared,
            states: vec![StepState::Waiting; step_count],
            instances,
            remaining_dependencies,
            dependents,
            ready,
            tasks: JoinSet::new(),
            first_failure: None,
        }
    }

    async fn drive(&mut self) -> Result<(), ExecutorError> {
        loop {
            while let Some(step_index) = self.ready.pop_front() {
                if self.shared.cancellation.is_cancelled() {
                    self.ready.clear();
                    break;
                }
                if let Err(error) = self.start_step(step_index).await {
                    self.shared.cancellation.cancel();
                    self.drain().await;
                    return Err(error);
                }
            }
            let Some(joined) = self.tasks.join_next().await else {
                return Ok(());
            };
            // Instance tasks catch their own panics, so a join error means the task was aborted,
            // which this scheduler never does.
            let Ok(result) = joined else {
                continue;
            };
            if let Some(error) = result.store_error {
                self.shared.cancellation.cancel();
                self.drain().await;
                return Err(error.into());
            }
            self.instance_done(result.step_index, result.item_index, result.record);
        }
    }

    async fn drain(&mut self) {
        while self.tasks.join_next().await.is_some() {}
    }

    /// The step's dependencies are done: skip it, serve it, or start its instances.
    async fn start_step(&mut self, step_index: usize) -> Result<(), ExecutorError> {
        let step = &self.pipeline.steps[step_index];
        let blocking_dependency =
            step.dependencies
                .iter()
                .find_map(|dependency| match self.states[*dependency] {
                    StepState::Done(phase) if phase.is_successful() => None,
                    StepState::Done(phase) => Some((*dependency, phase)),
                    StepState::Waiting | StepState::Running { .. } => {
                        Some((*dependency, StepPhase::Pending))
                    }
                });
        if let Some((dependency, phase)) = blocking_dependency {
            let name = &self.pipeline.steps[dependency].name;
            let reason = match phase {
                StepPhase::Failed => format!("step `{name}` failed"),
                StepPhase::Skipped => format!("step `{name}` was skipped"),
                _ => format!("step `{name}` did not finish"),
            };
            let record = self.record_now(
                step,
                None,
                StepPhase::Skipped,
                format!("skipped because {reason}"),
            );
            self.shared
                .store
                .record_step(&self.run.run_id, &record)
                .await?;
            self.emit_finished(&record);
            // One record stands for the whole step, fanned out or not: no item was considered.
            if let Some(slot) = self.instances[step_index].first_mut() {
                *slot = Some(record);
            }
            self.finish_step(step_index, StepPhase::Skipped);
            return Ok(());
        }
        let instance_count = self.instances[step_index].len();
        let mut outstanding = 0;
        for instance in 0..instance_count {
            if self.instances[step_index][instance].is_some() {
                continue;
            }
            let item_index = step.items.as_ref().map(|_| instance);
            let item = step.items.as_ref().map(|items| &items[instance]);
            match self.prepare_instance(step_index, item_index, item).await? {
                Prepared::Final(record) => {
                    self.shared
                        .store
                        .record_step(&self.run.run_id, &record)
                        .await?;
                    self.emit_finished(&record);
                    self.note_failure(&record);
                    self.instances[step_index][instance] = Some(record);
                }
                Prepared::Run(plan) => {
                    outstanding += 1;
                    let shared = Arc::clone(&self.shared);
                    self.tasks.spawn(run_instance(shared, *plan));
                }
            }
        }
        if outstanding == 0 {
            let phase = self.step_phase(step_index);
            self.finish_step(step_index, phase);
        } else {
            self.states[step_index] = StepState::Running { outstanding };
        }
        Ok(())
    }

    async fn prepare_instance(
        &self,
        step_index: usize,
        item_index: Option<usize>,
        item: Option<&Item>,
    ) -> Result<Prepared, ExecutorError> {
        let step = &self.pipeline.steps[step_index];
        let resolver = Resolver {
            params: &self.run.params,
            steps: &self.pipeline.steps,
            instances: &self.instances,
            item,
            artifact_digests: None,
        };
        if let Some(condition) = &step.when {
            let mut render =
                |template: &Template| template.render(|reference| resolver.resolve(reference));
            match condition.evaluate(&mut render) {
                Ok(Ok(true)) => {}
                Ok(Ok(false)) => {
                    return Ok(Prepared::Final(self.record_now(
                        step,
                        item_index,
                        StepPhase::Skipped,
                        format!("skipped because its condition `{condition}` is false"),
                    )));
                }
                Ok(Err(error)) => {
                    return Ok(Prepared::Final(self.record_now(
                        step,
                        item_index,
                        StepPhase::Failed,
                        format!("cannot evaluate its condition `{condition}`: {error}"),
                    )));
                }
                Err(error) => {
                    return Ok(Prepared::Final(self.record_now(
                        step,
                        item_index,
                        StepPhase::Failed,
                        error.to_string(),
                    )));
                }
            }
        }
        let rendered = match render_step(step, &resolver) {
            Ok(rendered) => rendered,
            Err(error) => {
                return Ok(Prepared::Final(self.record_now(
                    step,
                    item_index,
                    StepPhase::Failed,
                    error.to_string(),
                )));
            }
        };
        let mut work_dir = self.run.run_dir.join(&step.name);
        if let Some(index) = item_index {
            work_dir.push(index.to_string());
        }
        let caching = self.run.cache_enabled && step.cache;
        let cache_key = if caching {
            match self.cache_key(step, item).await {
                Ok(key) => Some(key),
                Err(error) => {
                    return Ok(Prepared::Final(self.record_now(
                        step,
                        item_index,
                        StepPhase::Failed,
                        error.to_string(),
                    )));
                }
            }
        } else {
            None
        };
        let cached = match &cache_key {
            Some(key) => self.shared.store.find_cached(key).await?,
            None => None,
        };
        let reused = match &cached {
            Some(cached) => reuse_cached(step, cached, &work_dir).await,
            None => None,
        };
        if let (Some(cached), Some(outputs)) = (cached, reused) {
            let mut record = self.record_now(
                step,
                item_index,
                StepPhase::Cached,
                format!(
                    "reused the outputs of step `{}` in an earlier execution",
                    cached.step
                ),
            );
            record.cache_key = cache_key;
            record.outputs = outputs;
            return Ok(Prepared::Final(record));
        }
        Ok(Prepared::Run(Box::new(InstancePlan {
            step_index,
            step: step.name.clone(),
            item_index,
            work_dir,
            argv: rendered.argv,
            env: rendered.env,
            kind_spec: rendered.kind_spec,
            timeout: step.timeout,
            retry: step.retry,
            cache_key,
            output_params: step.output_params.clone(),
            output_artifacts: step.output_artifacts.clone(),
            // Kinds were checked before the run started.
            kind: match self.executor.kinds.get(&step.kind) {
                Some(kind) => Arc::clone(kind),
                None => {
                    return Ok(Prepared::Final(self.record_now(
                        step,
                        item_index,
                        StepPhase::Failed,
                        format!("no step kind `{}` is registered", step.kind),
                    )));
                }
            },
        })))
    }

    /// The key: the substituted step with input artifacts replaced by their content digests.
    async fn cache_key(&self, step: &Step, item: Option<&Item>) -> Result<String, RenderError> {
        let mut paths = Vec::new();
        for (_, reference) in step.references() {
            if let Reference::StepArtifact {
                step: target,
                output,
            } = &reference
            {
                paths.extend(artifact_paths(
                    self.pipeline,
                    &self.instances,
                    target,
                    output,
                ));
            }
        }
        let digests = tokio::task::spawn_blocking(move || {
            paths
                .into_iter()
                .map(|path| match cache::digest_path(&path) {
                    Ok(digest) => Ok((path, digest)),
                    Err(source) => Err(RenderError::Digest { path, source }),
                })
                .collect::<Result<HashMap<PathBuf, String>, RenderError>>()
        })
        .await
        .map_err(RenderError::DigestTask)??;
        let resolver = Resolver {
            params: &self.run.params,
            steps: &self.pipeline.steps,
            instances: &self.instances,
            item,
            artifact_digests: Some(&digests),
        };
        let rendered = render_step(step, &resolver)?;
        let outputs = |declarations: &[OutputDeclaration]| -> Vec<(String, String)> {
            declarations
                .iter()
                .map(|declaration| (declaration.name.clone(), declaration.path.clone()))
                .collect()
        };
        let material = serde_json::json!({
            "version": 1,
            "kind": step.kind,
            "argv": rendered.argv,
            "env": rendered.env,
            "spec": rendered.kind_spec,
            "image": step.image,
            "outputParams": outputs(&step.output_params),
            "outputArtifacts": outputs(&step.output_artifacts),
        });
        Ok(cache::cache_key(&material))
    }

    fn instance_done(&mut self, step_index: usize, item_index: Option<usize>, record: StepRecord) {
        self.note_failure(&record);
        let slot = item_index.unwrap_or(0);
        if let Some(entry) = self.instances[step_index].get_mut(slot) {
            *entry = Some(record);
        }
        if let StepState::Running { outstanding } = &mut self.states[step_index] {
            *outstanding -= 1;
            if *outstanding == 0 {
                let phase = self.step_phase(step_index);
                self.finish_step(step_index, phase);
            }
        }
    }

    fn note_failure(&mut self, record: &StepRecord) {
        if record.phase == StepPhase::Failed && self.first_failure.is_none() {
            self.first_failure = Some(format!(
                "step `{}` failed: {}",
                instance_name(&record.step, record.item_index),
                record.message.as_deref().unwrap_or("no reason recorded")
            ));
        }
    }

    fn step_phase(&self, step_index: usize) -> StepPhase {
        let phases: Vec<StepPhase> = self.instances[step_index]
            .iter()
            .map(|record| {
                record
                    .as_ref()
                    .map_or(StepPhase::Pending, |record| record.phase)
            })
            .collect();
        if phases.contains(&StepPhase::Failed) {
            StepPhase::Failed
        } else if phases
            .iter()
            .any(|phase| matches!(phase, StepPhase::Cancelled | StepPhase::Pending))
        {
            StepPhase::Cancelled
        } else if phases.iter().any(|phase| phase.is_successful()) {
            StepPhase::Succeeded
        } else {
            StepPhase::Skipped
        }
    }

    fn finish_step(&mut self, step_index: usize, phase: StepPhase) {
        self.states[step_index] = StepState::Done(phase);
        for dependent in std::mem::take(&mut self.dependents[step_index]) {
            self.remaining_dependencies[dependent] -= 1;
            if self.remaining_dependencies[dependent] == 0 {
                self.ready.push_back(dependent);
            }
        }
    }

    fn record_now(
        &self,
        step: &Step,
        item_index: Option<usize>,
        phase: StepPhase,
        message: String,
    ) -> StepRecord {
        let now = Utc::now();
        StepRecord {
            step: step.name.clone(),
            item_index,
            phase,
            attempt: 0,
            cache_key: None,
            outputs: StepOutputs::default(),
            message: Some(message),
            started_at: Some(now),
            finished_at: Some(now),
        }
    }

    fn emit_finished(&self, record: &StepRecord) {
        self.shared.emit(RunEvent::StepFinished {
            step: record.step.clone(),
            item_index: record.item_index,
            phase: record.phase,
            message: record.message.clone(),
        });
    }

    fn final_records(&self) -> Vec<StepRecord> {
        self.instances.iter().flatten().flatten().cloned().collect()
    }
}

enum Prepared {
    /// Decided without running: skipped, failed before starting, or served from the cache.
    Final(StepRecord),
    /// To run in a task.
    Run(Box<InstancePlan>),
}

/// Copies a cached execution's artifacts into the new working directory; `None` when any is gone
/// (the instance then runs).
async fn reuse_cached(step: &Step, cached: &StepRecord, work_dir: &Path) -> Option<StepOutputs> {
    let mut copies = Vec::new();
    for declaration in &step.output_artifacts {
        let source = cached.outputs.artifacts.get(&declaration.name)?.clone();
        copies.push((
            declaration.name.clone(),
            source,
            work_dir.join(&declaration.path),
        ));
    }
    if step
        .output_params
        .iter()
        .any(|declaration| !cached.outputs.params.contains_key(&declaration.name))
    {
        return None;
    }
    let params = cached.outputs.params.clone();
    let work_dir = work_dir.to_owned();
    tokio::task::spawn_blocking(move || {
        if work_dir.exists() {
            std::fs::remove_dir_all(&work_dir).ok()?;
        }
        std::fs::create_dir_all(&work_dir).ok()?;
        let mut artifacts = BTreeMap::new();
        for (name, source, destination) in copies {
            cache::copy_artifact(&source, &destination).ok()?;
            artifacts.insert(name, destination);
        }
        Some(StepOutputs { params, artifacts })
    })
    .await
    .ok()
    .flatten()
}

// === reference resolution ===

struct Resolver<'a> {
    params: &'a BTreeMap<String, String>,
    steps: &'a [Step],
    instances: &'a [Vec<Option<StepRecord>>],
    item: Option<&'a Item>,
    /// When set, artifacts resolve to their content digests (for cache keys) instead of paths.
    artifact_digests: Option<&'a HashMap<PathBuf, String>>,
}

/// Why a step's command, environment or spec could not be filled in; the step fails with it.
#[derive(Debug, thiserror::Error)]
enum RenderError {
    #[error("parameter `{0}` has no value")]
    ParamWithoutValue(String),
    #[error("`{{{{item}}}}` used outside withItems")]
    ItemOutsideWithItems,
    #[error("the item has no field `{0}`")]
    NoItemField(String),
    #[error("`{{{{item.{0}}}}}` needs a mapping item")]
    ItemNotAMapping(String),
    #[error("unknown step `{0}`")]
    UnknownStep(String),
    #[error("step `{step}` has no value for output parameter `{output}`")]
    NoOutputParam { step: String, output: String },
    #[error("step `{step}` has no output artifact `{output}`")]
    NoOutputArtifact { step: String, output: String },
    #[error(transparent)]
    Template(#[from] TemplateError),
    #[error("cannot digest input artifact {}: {source}", path.display())]
    Digest {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("digest task failed: {0}")]
    DigestTask(#[source] tokio::task::JoinError),
}

struct RenderedStep {
    argv: Vec<String>,
    env: Vec<(String, String)>,
    kind_spec: Option<serde_json::Value>,
}

impl Resolver<'_> {
    fn resolve(&self, reference: &Reference) -> Result<String, RenderError> {
        match reference {
            Reference::Param(name) => self
                .params
                .get(name)
                .cloned()
                .ok_or_else(|| RenderError::ParamWithoutValue(name.clone())),
            Reference::Item => self
                .item
                .map(Item::as_text)
                .ok_or(RenderError::ItemOutsideWithItems),
            Reference::ItemField(field) => match self.item {
                Some(Item::Map(map)) => map
                    .get(field)
                    .cloned()
                    .ok_or_else(|| RenderError::NoItemField(field.clone())),
                _ => Err(RenderError::ItemNotAMapping(field.clone())),
            },
            Reference::StepParam { step, output } => {
                let (fanned_out, records) = self.successful_instances(step)?;
                let values = records
                    .iter()
                    .map(|record| {
                        record.outputs.params.get(output).cloned().ok_or_else(|| {
                            RenderError::NoOutputParam {
                                step: step.clone(),
                                output: output.clone(),
                            }
                        })
                    })
                    .collect::<Result<Vec<_>, _>>()?;
                Ok(join_values(fanned_out, values))
            }
            Reference::StepArtifact { step, output } => {
                let (fanned_out, records) = self.successful_instances(step)?;
                let values = records
                    .iter()
                    .map(|record| {
                        let path = record.outputs.artifacts.get(output).ok_or_else(|| {
                            RenderError::NoOutputArtifact {
                                step: step.clone(),
                                output: output.clone(),
                            }
                        })?;
                        Ok(match self.artifact_digests {
                            Some(digests) => digests.get(path).cloned().unwrap_or_default(),
                            None => path.to_string_lossy().into_owned(),
                        })
                    })
                    .collect::<Result<Vec<_>, RenderError>>()?;
                Ok(join_values(fanned_out, values))
            }
        }
    }

    fn successful_instances(&self, name: &str) -> Result<(bool, Vec<&StepRecord>), RenderError> {
        let index = self
            .steps
            .iter()
            .position(|step| step.name == name)
            .ok_or_else(|| RenderError::UnknownStep(name.to_owned()))?;
        let records = self.instances[index]
            .iter()
            .flatten()
            .filter(|record| record.phase.is_successful())
            .collect();
        Ok((self.steps[index].is_fanned_out(), records))
    }
}

/// One value as is; the values of a fanned-out step as a JSON list.
fn join_values(fanned_out: bool, values: Vec<String>) -> String {
    if fanned_out {
        serde_json::Value::from(values).to_string()
    } else {
        values.into_iter().next().unwrap_or_default()
    }
}

fn artifact_paths(
    pipeline: &Pipeline,
    instances: &[Vec<Option<StepRecord>>],
    step: &str,
    output: &str,
) -> Vec<PathBuf> {
    let Some(index) = pipeline
        .steps
        .iter()
        .position(|candidate| candidate.name == step)
    else {
        return Vec::new();
    };
    instances[index]
        .iter()
        .flatten()
        .filter(|record| record.phase.is_successful())
        .filter_map(|record| record.outputs.artifacts.get(output).cloned())
        .collect()
}

fn render_step(step: &Step, resolver: &Resolver<'_>) -> Result<RenderedStep, RenderError> {
    let render = |template: &Template| template.render(|reference| resolver.resolve(reference));
    let argv = step
        .command
        .iter()
        .map(render)
        .collect::<Result<Vec<_>, _>>()?;
    let env = step
        .env
        .iter()
        .map(|(name, value)| Ok((name.clone(), render(value)?)))
        .collect::<Result<Vec<_>, RenderError>>()?;
    let kind_spec = match &step.kind_spec {
        Some(value) => Some(render_json_templates(value, &render)?),
        None => None,
    };
    Ok(RenderedStep {
        argv,
        env,
        kind_spec,
    })
}

// === one instance, with retries ===

async fn run_instance(shared: Arc<Shared>, plan: InstancePlan) -> InstanceResult {
    let step_index = plan.step_index;
    let item_index = plan.item_index;
    let step = plan.step.clone();
    let outcome = AssertUnwindSafe(run_instance_attempts(&shared, plan))
        .catch_unwind()
        .await;
    match outcome {
        Ok(result) => result,
        Err(_) => {
            let now = Utc::now();
            let record = StepRecord {
                step,
                item_index,
                phase: StepPhase::Failed,
                attempt: 0,
                cache_key: None,
                outputs: StepOutputs::default(),
                message: Some("the step kind panicked".to_owned()),
                started_at: Some(now),
                finished_at: Some(now),
            };
            let store_error = shared
                .store
                .record_step(&shared.run_id, &record)
                .await
                .err();
            InstanceResult {
                step_index,
                item_index,
                record,
                store_error,
            }
        }
    }
}

async fn run_instance_attempts(shared: &Shared, plan: InstancePlan) -> InstanceResult {
    let mut record = StepRecord {
        step: plan.step.clone(),
        item_index: plan.item_index,
        phase: StepPhase::Pending,
        attempt: 0,
        cache_key: plan.cache_key.clone(),
        outputs: StepOutputs::default(),
        message: None,
        started_at: None,
        finished_at: None,
    };
    let finish = |mut record: StepRecord, phase: StepPhase, message: Option<String>| async move {
        record.phase = phase;
        record.message = message;
        record.finished_at = Some(Utc::now());
        let store_error = if phase == StepPhase::Cancelled && record.attempt == 0 {
            None
        } else {
            shared
                .store
                .record_step(&shared.run_id, &record)
                .await
                .err()
        };
        shared.emit(RunEvent::StepFinished {
            step: record.step.clone(),
            item_index: record.item_index,
            phase,
            message: record.message.clone(),
        });
        InstanceResult {
            step_index: plan.step_index,
            item_index: plan.item_index,
            record,
            store_error,
        }
    };
    let permit = tokio::select! {
        permit = shared.semaphore.acquire() => permit,
        () = shared.cancellation.cancelled() => {
            return finish(record, StepPhase::Cancelled, Some("stopped before it started".to_owned())).await;
        }
    };
    // The semaphore is never closed, so acquiring can only succeed.
    let Ok(_permit) = permit else {
        return finish(
            record,
            StepPhase::Cancelled,
            Some("stopped before it started".to_owned()),
        )
        .await;
    };
    if let Err(error) = reset_work_dir(&plan.work_dir).await {
        return finish(
            record,
            StepPhase::Failed,
            Some(format!(
                "cannot prepare its working directory {}: {error}",
                plan.work_dir.display()
            )),
        )
        .await;
    }
    record.started_at = Some(Utc::now());
    let started = Instant::now();
    loop {
        record.attempt += 1;
        record.phase = StepPhase::Running;
        if let Err(error) = shared.store.record_step(&shared.run_id, &record).await {
            return InstanceResult {
                step_index: plan.step_index,
                item_index: plan.item_index,
                record,
                store_error: Some(error),
            };
        }
        shared.emit(RunEvent::StepStarted {
            step: plan.step.clone(),
            item_index: plan.item_index,
            attempt: record.attempt,
        });
        let ctx = StepContext {
            run_id: shared.run_id.clone(),
            step: plan.step.clone(),
            item_index: plan.item_index,
            attempt: record.attempt,
            work_dir: plan.work_dir.clone(),
            stdout_path: plan.work_dir.join(STDOUT_LOG),
            stderr_path: plan.work_dir.join(STDERR_LOG),
            argv: plan.argv.clone(),
            env: plan.env.clone(),
            kind_spec: plan.kind_spec.clone(),
            timeout: plan.timeout,
            cancellation: shared.cancellation.clone(),
            kill_grace: shared.kill_grace,
        };
        let result = match plan.kind.run(ctx).await {
            Ok(outputs) => collect_outputs(&plan, outputs).await,
            Err(failure) => Err(failure),
        };
        let failure = match result {
            Ok(outputs) => {
                record.outputs = outputs;
                tracing::debug!(step = %plan.step, elapsed = ?started.elapsed(), "step succeeded");
                return finish(record, StepPhase::Succeeded, None).await;
            }
            Err(StepFailure::Cancelled) => {
                return finish(
                    record,
                    StepPhase::Cancelled,
                    Some("stopped by the user".to_owned()),
                )
                .await;
            }
            Err(failure) => failure,
        };
        let message = failure.to_string();
        if record.attempt > plan.retry.limit || shared.cancellation.is_cancelled() {
            let message = if plan.retry.limit > 0 {
                format!("{message} (after {} attempts)", record.attempt)
            } else {
                message
            };
            return finish(record, StepPhase::Failed, Some(message)).await;
        }
        let delay = plan.retry.delay_before_retry(record.attempt);
        shared.emit(RunEvent::StepRetrying {
            step: plan.step.clone(),
            item_index: plan.item_index,
            attempt: record.attempt,
            delay,
            message: message.clone(),
        });
        record.message = Some(message);
        tokio::select! {
            () = tokio::time::sleep(delay) => {}
            () = shared.cancellation.cancelled() => {
                return finish(record, StepPhase::Cancelled, Some("stopped by the user".to_owned())).await;
            }
        }
    }
}

async fn reset_work_dir(work_dir: &Path) -> std::io::Result<()> {
    // A runner that died left the step's processes running; they must not write into the
    // fresh directory.
    sextant_process::end_stale(work_dir, sextant_process::Owner::WorkingUnder(work_dir)).await;
    match tokio::fs::remove_dir_all(work_dir).await {
        Ok(()) => {}
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {}
        Err(error) => return Err(error),
    }
    tokio::fs::create_dir_all(work_dir).await
}

/// Fills in declared outputs the kind did not return, from the working directory.
async fn collect_outputs(
    plan: &InstancePlan,
    mut outputs: StepOutputs,
) -> Result<StepOutputs, StepFailure> {
    for declaration in &plan.output_params {
        if outputs.params.contains_key(&declaration.name) {
            continue;
        }
        let path = plan.work_dir.join(&declaration.path);
        confined(&plan.work_dir, &path, "parameter", &declaration.name)?;
        let text = match tokio::fs::read(&path).await {
            Ok(bytes) => String::from_utf8_lossy(&bytes).into_owned(),
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
                return Err(StepFailure::MissingOutput {
                    what: "parameter",
                    name: declaration.name.clone(),
                    path,
                });
            }
            Err(source) => {
                return Err(StepFailure::Io {
                    action: "cannot read output parameter file",
                    path,
                    source,
                });
            }
        };
        let value = text.trim_end_matches(['\n', '\r']).to_owned();
        outputs.params.insert(declaration.name.clone(), value);
    }
    for declaration in &plan.output_artifacts {
        if outputs.artifacts.contains_key(&declaration.name) {
            continue;
        }
        let path = plan.work_dir.join(&declaration.path);
        confined(&plan.work_dir, &path, "artifact", &declaration.name)?;
        match tokio::fs::metadata(&path).await {
            Ok(_) => {
                outputs.artifacts.insert(declaration.name.clone(), path);
            }
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
                return Err(StepFailure::MissingOutput {
                    what: "artifact",
                    name: declaration.name.clone(),
                    path,
                });
            }
            Err(source) => {
                return Err(StepFailure::Io {
                    action: "cannot read output artifact",
                    path,
                    source,
                });
            }
        }
    }
    Ok(outputs)
}

/// Refuses an output at `path` that resolves outside `work_dir` (through a symbolic link on its
/// way), or is a directory holding such a link; links that stay inside are fine. A missing path
/// passes: the caller reports it.
fn confined(
    work_dir: &Path,
    path: &Path,
    what: &'static str,
    name: &str,
) -> Result<(), StepFailure> {
    let Ok(root) = work_dir.canonicalize() else {
        return Ok(());
    };
    let leaves = |link: PathBuf| {
        // A dangling link is refused too: what it will point to when read is not known.
        let target = link
            .canonicalize()
            .or_else(|_| std::fs::read_link(&link))
            .unwrap_or_default();
        StepFailure::OutputOutsideStep {
            what,
            name: name.to_owned(),
            link,
            target,
        }
    };
    let mut pending = vec![path.to_path_buf()];
    while let Some(current) = pending.pop() {
        let Ok(metadata) = std::fs::symlink_metadata(&current) else {
            continue;
        };
        match current.canonicalize() {
            Ok(resolved) if resolved.starts_with(&root) => {}
            _ => return Err(leaves(current)),
        }
        if metadata.is_dir() {
            let entries = std::fs::read_dir(&current).map_err(|source| StepFailure::Io {
                action: "cannot list output artifact",
                path: current.clone(),
                source,
            })?;
            pending.extend(entries.filter_map(|entry| entry.ok().map(|entry| entry.path())));
        }
    }
    Ok(())
}
