//! The local driver: runs an experiment to the end on this machine, with the store as its
//! memory and trials as local processes or local pipeline runs ([`pipeline_trial`]).
//!
//! It carries out the engine's decisions: it observes (the experiment, its trials, the runs of
//! their processes), asks [`engine::plan`] what to do, applies each action
//! through the store and the [`runner`], and waits for the next event. Every change is written
//! to the store before it counts, so a run that is killed at any point resumes from the store:
//! `sextant run` on the same file and store continues the experiment.
//!
//! Resume rule: a trial that was still Created or Running when the previous driver died is
//! re-run with the same parameters, after its partial observation log is deleted; finished
//! trials are kept as they are. So an experiment always ends with exactly `maxTrialCount`
//! completed trials.
//!
//! A DBManager is served on a loopback port for the experiment's lifetime, so trials using the
//! Push collector (Katib's `report_metrics`) report into the same store; its address is in the
//! trial's environment as `KATIB_DB_MANAGER_ADDRESS` and `SEXTANT_DB_MANAGER_ADDRESS`.
//!
//! # Layout
//! - [`checkpoint`]: the checkpoint directories of `pbt` trials, copied from their parents.
//! - [`launch`](mod@launch): a trial's process from the template and the trial's values.
//! - [`runner`]: running one trial's process and collecting its metrics.
//! - [`pipeline_trial`]: running a `Pipeline` trial through the pipeline executor.
//! - `slots`: the trials one process runs at once, shared by the experiments it drives.
//! - [`tune_step`]: the `tune` pipeline step kind, an experiment inside a pipeline.
//! - [`warm_start`]: the trials of the experiments a warm start names, read from the store.

pub mod checkpoint;
pub mod launch;
pub mod pipeline_trial;
pub mod runner;
mod slots;
pub mod tune_step;
pub mod warm_start;

pub use slots::TrialSlots;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::Utc;
use sextant_algorithms::TrialCondition;
use sextant_algorithms::early_stopping::successive_halving::{RungTable, RungTracker};
use sextant_algorithms::early_stopping::{
    RuleTracker, Tracker, TrialObservations, build_early_stopping,
};
use sextant_metrics::LineFormat;
use sextant_store::{NewTrial, ObservationLogFilter, Store, TrialConditionUpdate};
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio_stream::wrappers::TcpListenerStream;

use crate::local::checkpoint::TrialCheckpoint;
use crate::local::launch::{LaunchError, active_template, launch, placeholder_values, template};
use crate::local::pipeline_trial::PipelineTrialTask;
use crate::local::runner::{Collection, MetricsSource, TrialEnded, TrialHandle, TrialTask};
use crate::local::slots::HeldSlots;
use crate::observation_log;
use crate::suggest;
use sextant_experiment::ValidationErrors;
use sextant_experiment::api::common::{
    CollectorKind, FileFormat, Observation, ParameterAssignment,
};
use sextant_experiment::api::experiment::{Experiment, ExperimentStatus};
use sextant_experiment::api::suggestion::TrialAssignment;
use sextant_experiment::api::template::RunKind;
use sextant_experiment::api::trial::TrialConditionType;
use sextant_experiment::domain;
use sextant_experiment::engine::{
    self, Action, Observed, ObservedSuggestion, ObservedTrial, RunState,
};

/// How often the driver re-plans when nothing happens (timeouts and clocks still move).
const IDLE_TICK: Duration = Duration::from_millis(500);

/// Where the driver works.
#[derive(Debug, Clone)]
pub struct LocalConfig {
    /// The experiment file's directory: trials run there unless their template says otherwise,
    /// and a configMap template path is relative to it.
    pub experiment_dir: PathBuf,
    /// The directory a configMap template path must resolve inside, so that a spec from
    /// elsewhere cannot read any file the runner can: the experiment file's directory unless
    /// the user names another.
    pub template_dir: PathBuf,
    /// Where trial scratch directories go (`<trials_dir>/<trial>`).
    pub trials_dir: PathBuf,
    /// A Katib-API Suggestion service (`host:port`) to ask instead of the in-process
    /// algorithms.
    pub suggestion_service: Option<String>,
    /// The trials running at once on this machine, whatever `parallelTrialCount` asks (the
    /// rest start as slots free); shared by every experiment one process drives. See
    /// [`default_max_parallel`].
    pub trial_slots: TrialSlots,
    /// Environment variables every trial gets besides its own (`sextant server` gives its
    /// URL as `SEXTANT_URL`, where the Python client reports metrics).
    pub trial_env: Vec<(String, String)>,
}

/// The default local cap on trials running at once: four per core, at least eight. A
/// `parallelTrialCount` of a cluster's size must not fork a machine's worth of processes.
pub fn default_max_parallel() -> usize {
    let cores = std::thread::available_parallelism().map_or(1, |cores| cores.get());
    (4 * cores).max(8)
}

/// A snapshot for progress displays and event streams.
#[derive(Debug, Clone, PartialEq)]
pub struct Progress {
    /// The experiment's status after the last plan.
    pub status: ExperimentStatus,
    /// The trials whose condition changed since the previous snapshot, in the order the
    /// changes were stored (a trial may appear more than once).
    pub trial_changes: Vec<TrialChange>,
}

/// A trial's condition, stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrialChange {
    /// The trial.
    pub trial_name: String,
    /// Its condition now.
    pub condition: TrialConditionType,
}

/// How a run ended.
#[derive(Debug, Clone)]
pub struct Outcome {
    /// The experiment with its final status.
    pub experiment: Experiment,
    /// The run was interrupted by the shutdown signal before the experiment completed.
    pub interrupted: bool,
}

/// Why the driver could not run the experiment.
#[derive(Debug, thiserror::Error)]
pub enum LocalError {
    /// The store failed.
    #[error(transparent)]
    Store(#[from] sextant_store::Error),
    /// The trial template cannot run locally.
    #[error(transparent)]
    Launch(#[from] LaunchError),
    /// The stored experiment or a trial cannot be read back.
    #[error("stored {what} is unreadable: {reason}")]
    Corrupt {
        /// What was read.
        what: String,
        /// Why it failed.
        reason: String,
    },
    /// The experiment breaks a rule only the store can check: its warm start names an
    /// experiment the store does not hold, or one whose trials cannot inform it.
    #[error("{0}")]
    Invalid(ValidationErrors),
    /// A local resource (a port, a directory) is unavailable.
    #[error("{what}: {source}")]
    Io {
        /// What was attempted.
        what: String,
        /// The error.
        #[source]
        source: std::io::Error,
    },
}

/// Runs `experiment` (defaulted and validated) to completion or until `shutdown` resolves.
pub async fn run_experiment(
    store: &Store,
    experiment: Experiment,
    config: &LocalConfig,
    shutdown: impl Future<Output = ()>,
    mut progress: impl FnMut(&Progress),
) -> Result<Outcome, LocalError> {
    let mut driver = Driver::open(store.clone(), experiment, config.clone()).await?;
    tokio::pin!(shutdown);
    let result = drive(&mut driver, &mut shutdown, &mut progress).await;
    // Whatever ended the loop (completion, a signal, a store error), no trial outlives it.
    driver.stop_all("the runner stopped").await;
    driver.db_manager.abort();
    result.map(|interrupted| Outcome {
        experiment: driver.experiment,
        interrupted,
    })
}

/// Plans and waits until the experiment is done (`false`) or `shutdown` fires (`true`).
async fn drive(
    driver: &mut Driver,
    shutdown: &mut std::pin::Pin<&mut impl Future<Output = ()>>,
    progress: &mut impl FnMut(&Progress),
) -> Result<bool, LocalError> {
    loop {
        let finished = tokio::select! {
            finished = driver.step() => finished?,
            _ = &mut *shutdown => return Ok(true),
        };
        progress(&Progress {
            status: driver.status(),
            trial_changes: std::mem::take(&mut driver.trial_changes),
        });
        if finished {
            return Ok(false);
        }
        tokio::select! {
            event = driver.events.recv() => {
                if let Some(event) = event {
                    driver.handle(event).await?;
                }
                while let Ok(event) = driver.events.try_recv() {
                    driver.handle(event).await?;
                }
            }
            () = driver.slots.released() => {}
            _ = tokio::time::sleep(IDLE_TICK) => {}
            _ = &mut *shutdown => return Ok(true),
        }
    }
}

struct Driver {
    store: Store,
    experiment: Experiment,
    config: LocalConfig,
    template: serde_json::Value,
    trials: Vec<ObservedTrial>,
    /// The earlier experiments' trials a warm start puts ahead of `trials` in the algorithm's
    /// history; read once, when the driver starts.
    warm_history: Vec<ObservedTrial>,
    labels: HashMap<String, BTreeMap<String, String>>,
    suggestion: ObservedSuggestion,
    suggester: suggest::Suggester,
    handles: HashMap<String, TrialHandle>,
    finished_objectives: HashMap<String, Vec<f64>>,
    /// Successive halving's rung values, shared by the experiment's running trials; built when
    /// the first trial starts.
    rung_table: Option<Arc<Mutex<RungTable>>>,
    events: mpsc::UnboundedReceiver<TrialEnded>,
    events_sender: mpsc::UnboundedSender<TrialEnded>,
    db_manager_address: String,
    db_manager: tokio::task::JoinHandle<()>,
    next_trial_number: usize,
    /// Every trial name in use (stored trials and unused assignments), so naming a new trial
    /// costs O(1) however many there are.
    trial_names: HashSet<String>,
    /// Conditions stored since the last progress snapshot.
    trial_changes: Vec<TrialChange>,
    /// One slot of the process's pool per active trial.
    slots: HeldSlots,
}

impl Driver {
    async fn open(
        store: Store,
        mut experiment: Experiment,
        config: LocalConfig,
    ) -> Result<Driver, LocalError> {
        let name = experiment.metadata.name.clone();
        let template = template(&experiment, &config.experiment_dir, &config.template_dir)?;
        // Before anything is stored: a warm start the store cannot honour is invalid input.
        let warm_history = warm_start::history_from_store(&store, &experiment).await?;
        if let Some(stored) = store.get_experiment(&name).await? {
            experiment.status = serde_json::from_str::<Option<ExperimentStatus>>(&stored.status)
                .map_err(|error| LocalError::Corrupt {
                    what: format!("status of experiment {name:?}"),
                    reason: error.to_string(),
                })?;
        }
        store
            .upsert_experiment(
                &name,
                &to_json(&strip_status(&experiment)),
                &to_json(&experiment.status),
                None,
            )
            .await?;

        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .map_err(|source| LocalError::Io {
                what: "cannot bind a loopback port for the DBManager".into(),
                source,
            })?;
        let address = listener.local_addr().map_err(|source| LocalError::Io {
            what: "the DBManager's listener has no address".into(),
            source,
        })?;
        let db_manager = tokio::spawn({
            let service = sextant_store::db_manager_service(store.clone());
            async move {
                if let Err(error) = tonic::transport::Server::builder()
                    .add_service(service)
                    .serve_with_incoming(TcpListenerStream::new(listener))
                    .await
                {
                    tracing::error!(%error, "the experiment's DBManager stopped");
                }
            }
        });
        let (events_sender, events) = mpsc::unbounded_channel();
        let suggester = suggest::Suggester::new(config.suggestion_service.as_deref());
        let slots = HeldSlots::new(config.trial_slots.clone());
        let mut driver = Driver {
            store,
            experiment,
            config,
            template,
            trials: Vec::new(),
            warm_history,
            labels: HashMap::new(),
            suggestion: ObservedSuggestion::default(),
            suggester,
            handles: HashMap::new(),
            finished_objectives: HashMap::new(),
            rung_table: None,
            events,
            events_sender,
            db_manager_address: address.to_string(),
            db_manager,
            next_trial_number: 0,
            trial_names: HashSet::new(),
            trial_changes: Vec::new(),
            slots,
        };
        driver.load_trials().await?;
        Ok(driver)
    }

    fn status(&self) -> ExperimentStatus {
        self.experiment.status.clone().unwrap_or_default()
    }

    /// Loads the stored trials; re-runs those a previous driver left unfinished.
    async fn load_trials(&mut self) -> Result<(), LocalError> {
        let records = self
            .store
            .list_trials(&self.experiment.metadata.name)
            .await?;
        self.next_trial_number = records.len();
        let mut interrupted = Vec::new();
        for record in records {
            let loaded = load_trial(record)?;
            if !loaded.trial.condition.is_terminal() {
                interrupted.push(loaded.trial.name.clone());
            }
            self.labels.insert(loaded.trial.name.clone(), loaded.labels);
            self.trial_names.insert(loaded.trial.name.clone());
            self.trials.push(loaded.trial);
        }
        for name in interrupted {
            if self.is_completed() {
                // The experiment completed before the crash; its leftovers are stopped instead.
                runner::end_leftover(&self.config.trials_dir.join(&name), &name).await;
                self.set_run(
                    &name,
                    RunState::Killed {
                        message: "the runner was interrupted after the experiment completed".into(),
                    },
                );
                continue;
            }
            tracing::info!(trial = %name, "re-running a trial interrupted by a previous run");
            runner::end_leftover(&self.config.trials_dir.join(&name), &name).await;
            self.store.delete_observation_log(&name).await?;
            self.start_trial(&name).await?;
        }
        Ok(())
    }

    fn is_completed(&self) -> bool {
        let status = self.status();
        engine::is_completed(&status) && !engine::will_restart(&self.experiment.spec, &status)
    }

    /// Plans once and applies the actions; true when the experiment is done.
    async fn step(&mut self) -> Result<bool, LocalError> {
        // Suggestions arrive within the same step, so plan again until the plan is stable.
        for _ in 0..8 {
            let mut experiment = self.experiment.clone();
            // The engine plans for at most the slots this driver holds; the algorithms still
            // see the experiment's own count (Hyperband sizes its brackets by it).
            let parallel = experiment
                .spec
                .parallel_trial_count
                .unwrap_or(sextant_experiment::defaults::DEFAULT_PARALLEL_TRIAL_COUNT);
            let held = self
                .slots
                .take_up_to(usize::try_from(parallel).unwrap_or(0));
            experiment.spec.parallel_trial_count =
                Some(parallel.min(i32::try_from(held).unwrap_or(i32::MAX)));
            let observed = Observed {
                experiment,
                trials: self.trials.clone(),
                suggestion: self.suggestion.clone(),
                now: Utc::now(),
            };
            let plan = engine::plan(&observed);
            let before = self.suggestion_state();
            for action in plan.actions {
                self.apply(action).await?;
                // Let the shutdown branch of `drive` run between actions.
                tokio::task::yield_now().await;
            }
            let active = self
                .trials
                .iter()
                .filter(|trial| !trial.condition.is_terminal())
                .count();
            self.slots.keep(active);
            if plan.finished {
                return Ok(true);
            }
            // New trials or a new answer from the algorithm change the next plan; an algorithm
            // that must wait for running trials does not, until one of them ends.
            if self.suggestion_state() == before {
                break;
            }
        }
        Ok(false)
    }

    /// What the engine's suggestion-related decisions depend on.
    fn suggestion_state(&self) -> (usize, usize, bool, bool) {
        (
            self.trials.len(),
            self.suggestion.unused_assignments.len(),
            self.suggestion.exhausted,
            self.suggestion.failure.is_some(),
        )
    }

    async fn apply(&mut self, action: Action) -> Result<(), LocalError> {
        match action {
            Action::SetTrialCondition {
                trial_name,
                condition,
                reason,
                message,
            } => {
                self.set_trial_condition(&trial_name, condition, reason, message)
                    .await
            }
            Action::StopTrial { trial_name, reason } => {
                if let Some(trial) = self.trials.iter_mut().find(|t| t.name == trial_name) {
                    trial.stop_requested = true;
                }
                match self.handles.get(&trial_name) {
                    Some(handle) => handle.stop(reason),
                    None => self.set_run(&trial_name, RunState::Killed { message: reason }),
                }
                Ok(())
            }
            Action::CreateTrial(assignment) => self.create_trial(assignment).await,
            Action::RequestSuggestions { count } => {
                self.request_suggestions(count).await;
                Ok(())
            }
            Action::SetExperimentStatus(status) => {
                self.experiment.status = Some(*status);
                self.store
                    .update_experiment_status(
                        &self.experiment.metadata.name,
                        &to_json(&self.experiment.status),
                        None,
                    )
                    .await?;
                Ok(())
            }
        }
    }

    async fn set_trial_condition(
        &mut self,
        trial_name: &str,
        condition: TrialConditionType,
        reason: String,
        message: String,
    ) -> Result<(), LocalError> {
        let now = Utc::now();
        let update = TrialConditionUpdate {
            condition_type: condition.name().to_string(),
            reason,
            message,
            start_time: (condition == TrialConditionType::Running).then_some(now),
            completion_time: condition.is_terminal().then_some(now),
        };
        let Some(trial) = self.trials.iter_mut().find(|t| t.name == trial_name) else {
            return Ok(());
        };
        // The observation goes first: a crash between the two writes then leaves a trial that
        // is still running (and is re-run), never a finished one without its observation.
        if condition.is_terminal() {
            self.store
                .update_trial_observation(trial_name, Some(&to_json(&trial.observation)))
                .await?;
        }
        self.store
            .update_trial_condition(trial_name, &update)
            .await?;
        trial.condition = condition;
        self.trial_changes.push(TrialChange {
            trial_name: trial_name.to_string(),
            condition,
        });
        Ok(())
    }

    async fn request_suggestions(&mut self, count: usize) {
        let outcome = suggest::suggest_with_warm_start(
            &mut self.suggester,
            &self.experiment,
            &self.warm_history,
            &self.trials,
            &self.labels,
            &self.suggestion.unused_assignments,
            count,
        )
        .await;
        match outcome {
            suggest::Outcome::Assignments(reply) => {
                for suggested in suggest::suggested_trials(reply) {
                    let name = self.new_trial_name();
                    self.suggestion.unused_assignments.push(TrialAssignment {
                        name,
                        parameter_assignments: suggested.parameter_assignments,
                        early_stopping_rules: Vec::new(),
                        labels: suggested.labels,
                    });
                }
            }
            suggest::Outcome::Exhausted { .. } => self.suggestion.exhausted = true,
            suggest::Outcome::NotReady { .. } => {}
            suggest::Outcome::Unreachable(reason) | suggest::Outcome::Failed(reason) => {
                self.suggestion.failure = Some(reason);
            }
        }
    }

    fn new_trial_name(&mut self) -> String {
        loop {
            let name = format!(
                "{}-{:05}",
                self.experiment.metadata.name, self.next_trial_number
            );
            self.next_trial_number += 1;
            if self.trial_names.insert(name.clone()) {
                return name;
            }
        }
    }

    async fn create_trial(&mut self, assignment: TrialAssignment) -> Result<(), LocalError> {
        self.suggestion
            .unused_assignments
            .retain(|unused| unused.name != assignment.name);
        let new_trial = NewTrial {
            name: assignment.name.clone(),
            experiment_name: self.experiment.metadata.name.clone(),
            spec: to_json(&self.template),
            assignments: to_json(&assignment.parameter_assignments),
            labels: to_json(&assignment.labels),
        };
        self.store.insert_trial(&new_trial).await?;
        self.trial_changes.push(TrialChange {
            trial_name: assignment.name.clone(),
            condition: TrialConditionType::Created,
        });
        self.labels
            .insert(assignment.name.clone(), assignment.labels.clone());
        self.trials.push(ObservedTrial {
            name: assignment.name.clone(),
            parameter_assignments: assignment.parameter_assignments,
            condition: TrialConditionType::Created,
            run: RunState::NotStarted,
            observation: Observation::default(),
            stop_requested: false,
        });
        self.start_trial(&assignment.name).await
    }

    async fn start_trial(&mut self, trial_name: &str) -> Result<(), LocalError> {
        let Some(trial) = self.trials.iter().find(|t| t.name == trial_name) else {
            return Ok(());
        };
        let labels = self.labels.get(trial_name).cloned().unwrap_or_default();
        let values = placeholder_values(
            &self.experiment,
            &self.template,
            trial_name,
            &trial.parameter_assignments,
            &labels,
        );
        let template = active_template(
            &self.experiment,
            &self.template,
            &trial.parameter_assignments,
        );
        let trial_dir = self.config.trials_dir.join(trial_name);
        let checkpoint = TrialCheckpoint::of_trial(
            &self.experiment,
            &self.config.trials_dir,
            trial_name,
            &labels,
        );
        let trial_env = vec![
            ("KATIB_TRIAL_NAME".to_string(), trial_name.to_string()),
            (
                "SEXTANT_TRIAL_DIR".to_string(),
                trial_dir.display().to_string(),
            ),
            (
                "KATIB_DB_MANAGER_ADDRESS".to_string(),
                self.db_manager_address.clone(),
            ),
            (
                "SEXTANT_DB_MANAGER_ADDRESS".to_string(),
                self.db_manager_address.clone(),
            ),
        ]
        .into_iter()
        .chain(self.config.trial_env.iter().cloned())
        .chain(checkpoint.iter().flat_map(TrialCheckpoint::env))
        .collect::<Vec<_>>();
        // A template that cannot become a process for this trial fails the trial, not the
        // run: the trial is already stored, and a resume must not trip over it again.
        let rules = self.rules_for_new_trial().await?;
        let prepared = match checkpoint.clone() {
            Some(checkpoint) => tokio::task::spawn_blocking(move || checkpoint.prepare())
                .await
                .map_err(|error| error.to_string())
                .and_then(|copied| copied.map_err(|error| error.to_string()))
                .map_err(|error| format!("preparing its checkpoint directory: {error}")),
            None => Ok(()),
        };
        let started: Result<TrialHandle, String> = if let Err(error) = prepared {
            Err(error)
        } else if RunKind::of_template(&self.template) == Some(RunKind::Pipeline) {
            match pipeline_trial::prepare(
                &self.experiment,
                &template,
                &values,
                trial_name,
                &trial_dir,
                &self.config.experiment_dir,
                &trial_env,
            ) {
                Ok(launch) => pipeline_trial::start(PipelineTrialTask {
                    trial_name: trial_name.to_string(),
                    launch,
                    trial_dir,
                    collection: self.collection(),
                    rules,
                    store: self.store.clone(),
                    events: self.events_sender.clone(),
                })
                .map_err(|error| error.to_string()),
                Err(error) => Err(error.to_string()),
            }
        } else {
            match launch(
                &self.experiment,
                &template,
                &values,
                &self.config.experiment_dir,
            ) {
                Ok(mut process) => {
                    process.env.extend(trial_env);
                    if let Some(checkpoint) = &checkpoint {
                        checkpoint.mount(&mut process);
                    }
                    runner::start(TrialTask {
                        trial_name: trial_name.to_string(),
                        launch: process,
                        trial_dir,
                        collection: self.collection(),
                        rules,
                        store: self.store.clone(),
                        events: self.events_sender.clone(),
                    })
                    .await
                    .map_err(|error| error.to_string())
                }
                Err(error) => Err(error.to_string()),
            }
        };
        match started {
            Ok(handle) => {
                self.handles.insert(trial_name.to_string(), handle);
                self.set_run(trial_name, RunState::Running);
            }
            Err(error) => self.set_run(
                trial_name,
                RunState::Failed {
                    reason: "StartFailed".into(),
                    message: format!("cannot start the trial: {error}"),
                },
            ),
        }
        Ok(())
    }

    fn collection(&self) -> Collection {
        let objective = self.experiment.spec.objective.clone().unwrap_or_default();
        let metric_names = objective.metric_names().map(str::to_string).collect();
        let spec = self
            .experiment
            .spec
            .metrics_collector_spec
            .clone()
            .unwrap_or_default();
        let source = spec.source.clone().unwrap_or_default();
        let metrics_formats = source
            .filter
            .map(|filter| filter.metrics_format)
            .unwrap_or_default();
        let source = match spec.kind() {
            CollectorKind::Push => MetricsSource::Push,
            CollectorKind::File => {
                let path = source.file_system_path.unwrap_or_default();
                MetricsSource::File {
                    path: PathBuf::from(path.path),
                    format: match path.format {
                        Some(FileFormat::Json) => LineFormat::Json,
                        _ => LineFormat::Text,
                    },
                }
            }
            _ => MetricsSource::StdOut,
        };
        Collection {
            source,
            metric_names,
            metrics_formats,
        }
    }

    /// How the early stopping of a trial starting now is enforced: Katib's rules, computed
    /// now from the objective values of the finished trials the algorithm reads (Katib computes
    /// them when the trial is created), or, for successive halving, the experiment's live rung
    /// table, which judges the trial when it reaches each rung.
    async fn rules_for_new_trial(&mut self) -> Result<Option<Tracker>, LocalError> {
        let Some(spec) = self.experiment.spec.early_stopping.clone() else {
            return Ok(None);
        };
        let Some(objective) = self
            .experiment
            .spec
            .objective
            .as_ref()
            .and_then(domain::objective)
        else {
            return Ok(None);
        };
        let Ok(algorithm) = build_early_stopping(
            &spec.algorithm_name,
            &domain::settings(&spec.algorithm_settings),
        ) else {
            return Ok(None);
        };
        if let Some(successive_halving) = algorithm.as_successive_halving() {
            let table = match &self.rung_table {
                Some(table) => table.clone(),
                None => {
                    // Built once, from the trials that finished before this driver started
                    // (a resumed experiment's); trials started since record into it as they
                    // report, and a trial still running when the driver started is re-run
                    // from scratch.
                    let finished = self
                        .finished_observations(&objective.metric_name, |_| true)
                        .await?;
                    let table = Arc::new(Mutex::new(RungTable::from_trials(
                        successive_halving.clone(),
                        objective,
                        &finished,
                    )));
                    self.rung_table = Some(table.clone());
                    table
                }
            };
            return Ok(Some(Tracker::Rungs(RungTracker::new(table))));
        }
        let observations = self
            .finished_observations(&objective.metric_name, |condition| {
                algorithm.reads(condition)
            })
            .await?;
        let rules = algorithm.rules(&objective, &observations);
        Ok((!rules.is_empty()).then(|| Tracker::Rules(RuleTracker::new(rules, &objective))))
    }

    /// The values of `metric_name` that the finished trials whose condition `include` takes
    /// reported, read from the store once per trial (a finished trial's log does not change).
    async fn finished_observations(
        &mut self,
        metric_name: &str,
        include: impl Fn(TrialCondition) -> bool,
    ) -> Result<Vec<TrialObservations>, LocalError> {
        let mut observations = Vec::new();
        for trial in self.trials.iter().filter(|trial| {
            trial.condition.is_terminal() && include(domain::trial_condition(trial.condition))
        }) {
            if !self.finished_objectives.contains_key(&trial.name) {
                let values =
                    observation_log::numeric_values(&self.store, &trial.name, metric_name).await?;
                self.finished_objectives.insert(trial.name.clone(), values);
            }
            observations.push(TrialObservations {
                trial_name: trial.name.clone(),
                condition: domain::trial_condition(trial.condition),
                objective_values: self.finished_objectives[&trial.name].clone(),
            });
        }
        Ok(observations)
    }

    fn set_run(&mut self, trial_name: &str, run: RunState) {
        if let Some(trial) = self.trials.iter_mut().find(|t| t.name == trial_name) {
            trial.run = run;
        }
    }

    async fn handle(&mut self, ended: TrialEnded) -> Result<(), LocalError> {
        self.handles.remove(&ended.trial_name);
        let observation = self.observation_of(&ended.trial_name).await?;
        if let Some(trial) = self.trials.iter_mut().find(|t| t.name == ended.trial_name) {
            trial.observation = observation;
            trial.run = ended.state;
        }
        Ok(())
    }

    /// A trial's observation from its stored log.
    async fn observation_of(&self, trial_name: &str) -> Result<Observation, LocalError> {
        let points = self
            .store
            .get_observation_log(&ObservationLogFilter::trial(trial_name.to_string()))
            .await?;
        let objective = self.experiment.spec.objective.clone().unwrap_or_default();
        Ok(observation_log::observation(&objective, &points))
    }

    async fn stop_all(&mut self, reason: &str) {
        for handle in self.handles.values() {
            handle.stop(reason.to_string());
        }
        // Wait for every process group to be gone, so none outlives the runner.
        while !self.handles.is_empty() {
            match tokio::time::timeout(Duration::from_secs(10), self.events.recv()).await {
                Ok(Some(TrialEnded { trial_name, .. })) => {
                    self.handles.remove(&trial_name);
                }
                Ok(None) | Err(_) => break,
            }
        }
    }
}

/// A stored trial as the engine observes it, with its labels.
#[derive(Debug, Clone, PartialEq)]
pub struct LoadedTrial {
    /// The trial; a trial that is not finished has not started ([`RunState::NotStarted`]).
    pub trial: ObservedTrial,
    /// Its labels.
    pub labels: BTreeMap<String, String>,
}

/// Reads a stored trial back for the engine.
pub fn load_trial(record: sextant_store::StoredTrial) -> Result<LoadedTrial, LocalError> {
    let corrupt = |reason: String| LocalError::Corrupt {
        what: format!("trial {:?}", record.name),
        reason,
    };
    let parameter_assignments: Vec<ParameterAssignment> =
        serde_json::from_str(&record.assignments).map_err(|e| corrupt(e.to_string()))?;
    let labels: BTreeMap<String, String> =
        serde_json::from_str(&record.labels).map_err(|e| corrupt(e.to_string()))?;
    let condition: TrialConditionType =
        serde_json::from_value(serde_json::Value::String(record.condition_type.clone()))
            .map_err(|e| corrupt(e.to_string()))?;
    let observation: Observation = record
        .observation
        .as_deref()
        .map(serde_json::from_str)
        .transpose()
        .map_err(|e| corrupt(e.to_string()))?
        .unwrap_or_default();
    let run = if condition.is_terminal() {
        terminal_run_state(condition, &record.reason, &record.message)
    } else {
        RunState::NotStarted
    };
    Ok(LoadedTrial {
        trial: ObservedTrial {
            name: record.name,
            parameter_assignments,
            condition,
            run,
            observation,
            stop_requested: false,
        },
        labels,
    })
}

fn terminal_run_state(condition: TrialConditionType, reason: &str, message: &str) -> RunState {
    match condition {
        TrialConditionType::Failed => RunState::Failed {
            reason: reason.to_string(),
            message: message.to_string(),
        },
        TrialConditionType::Killed => RunState::Killed {
            message: message.to_string(),
        },
        TrialConditionType::EarlyStopped => RunState::EarlyStopped,
        _ => RunState::Succeeded,
    }
}

fn strip_status(experiment: &Experiment) -> Experiment {
    Experiment {
        status: None,
        ..experiment.clone()
    }
}

fn to_json<T: serde::Serialize>(value: &T) -> String {
    // The API types are plain data; serializing them cannot fail.
    serde_json::to_string(value).unwrap_or_default()
}

/// The default directory for trial scratch directories of an experiment file.
pub fn default_trials_dir(experiment_dir: &Path, experiment_name: &str) -> PathBuf {
    experiment_dir.join(".sextant").join(experiment_name)
}
