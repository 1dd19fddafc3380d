//! The experiments the server runs: one local driver each (`sextant-controller`'s, the one
//! `sextant run` uses), started on submission or resume, stopped on request or deletion,
//! and resumed from the store when the server starts again.
//!
//! A driver writes everything it decides to the store before it counts, so a server killed at
//! any point resumes each experiment as `sextant run` does: finished trials are kept, trials
//! that were running are re-run. An experiment stopped on request carries the annotation
//! [`STOPPED_ANNOTATION`] in its stored spec, so a restart leaves it stopped.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use chrono::Utc;
use sextant_controller::local::runner::OUTPUT_LOG;
use sextant_controller::local::{LocalConfig, Progress, TrialSlots, run_experiment};
use sextant_experiment::Experiment;
use sextant_experiment::api::ConditionStatus;
use sextant_experiment::api::experiment::{ExperimentConditionType, ExperimentStatus};
use sextant_experiment::api::set_condition;
use sextant_experiment::engine;
use sextant_store::{ArtifactOwner, Store};
use tokio::task::{JoinHandle, JoinSet};
use tokio_util::sync::CancellationToken;

use crate::ServerConfig;
use crate::artifacts::ArtifactStore;
use crate::error::ApiError;
use crate::events::{Event, EventHub, ExperimentEvent, TrialEvent};

/// Marks an experiment stopped on request (its value: when), so it is not resumed.
pub(crate) const STOPPED_ANNOTATION: &str = "sextant.dev/stopped";

/// Whether `experiment` was stopped on request.
pub(crate) fn is_stopped(experiment: &Experiment) -> bool {
    experiment
        .metadata
        .annotations
        .contains_key(STOPPED_ANNOTATION)
}

/// Whether `experiment` is a study: its client runs the trials (ask and tell), so no driver
/// runs it.
pub(crate) fn is_study(experiment: &Experiment) -> bool {
    experiment.spec.trial_template.is_none()
}

/// Whether the experiment is done for good: completed, and not restarting for a raised
/// budget.
pub(crate) fn is_finished(experiment: &Experiment) -> bool {
    experiment.status.as_ref().is_some_and(|status| {
        engine::is_completed(status) && !engine::will_restart(&experiment.spec, status)
    })
}

/// An experiment's working directory.
pub(crate) fn experiment_dir(config: &ServerConfig, name: &str) -> PathBuf {
    config.data_dir.join("experiments").join(name)
}

/// A trial's scratch directory (its `output.log` is there).
pub(crate) fn trial_dir(config: &ServerConfig, experiment: &str, trial: &str) -> PathBuf {
    experiment_dir(config, experiment)
        .join("trials")
        .join(trial)
}

/// Reads a stored experiment back, with its status.
pub(crate) fn read_experiment(
    record: &sextant_store::ExperimentRecord,
) -> Result<Experiment, ApiError> {
    let corrupt = |what: &str, error: serde_json::Error| {
        ApiError::Internal(format!(
            "stored {what} of experiment {:?} is unreadable: {error}",
            record.name
        ))
    };
    let mut experiment: Experiment =
        serde_json::from_str(&record.spec).map_err(|error| corrupt("spec", error))?;
    experiment.status = serde_json::from_str::<Option<ExperimentStatus>>(&record.status)
        .map_err(|error| corrupt("status", error))?;
    Ok(experiment)
}

struct Running {
    generation: u64,
    cancel: CancellationToken,
    task: JoinHandle<()>,
}

#[derive(Default)]
struct Drivers {
    next_generation: u64,
    running: HashMap<String, Running>,
}

/// Starts, stops and resumes the drivers of experiments.
#[derive(Clone)]
pub(crate) struct Supervisor {
    store: Store,
    config: Arc<ServerConfig>,
    events: EventHub,
    artifacts: Arc<ArtifactStore>,
    /// The server's trial slots, shared by every experiment's driver.
    trial_slots: TrialSlots,
    drivers: Arc<Mutex<Drivers>>,
}

impl Supervisor {
    pub(crate) fn new(
        store: Store,
        config: Arc<ServerConfig>,
        events: EventHub,
        artifacts: Arc<ArtifactStore>,
        trial_slots: TrialSlots,
    ) -> Supervisor {
        Supervisor {
            store,
            config,
            events,
            artifacts,
            trial_slots,
            drivers: Arc::default(),
        }
    }

    fn drivers(&self) -> std::sync::MutexGuard<'_, Drivers> {
        self.drivers
            .lock()
            .unwrap_or_else(|poison| poison.into_inner())
    }

    /// Whether a driver runs `name` now.
    pub(crate) fn is_running(&self, name: &str) -> bool {
        self.drivers().running.contains_key(name)
    }

    /// Resumes every stored experiment that is not a study, not finished, not stopped and not
    /// a cluster's (mirrored by the persistence agent).
    pub(crate) async fn resume_unfinished(&self) -> Result<(), ApiError> {
        for record in self.store.list_experiments().await? {
            let experiment = match read_experiment(&record) {
                Ok(experiment) => experiment,
                Err(error) => {
                    tracing::error!(%error, "not resuming an unreadable experiment");
                    continue;
                }
            };
            // A mirror of a cluster's experiment is run by the cluster's controller.
            if !is_study(&experiment)
                && !is_stopped(&experiment)
                && !is_finished(&experiment)
                && experiment.cluster_namespace().is_none()
            {
                tracing::info!(experiment = %record.name, "resuming");
                self.start(experiment);
            }
        }
        Ok(())
    }

    /// Runs `experiment` (stored, defaulted and validated) in the background.
    pub(crate) fn start(&self, experiment: Experiment) {
        let name = experiment.metadata.name.clone();
        let cancel = CancellationToken::new();
        let mut drivers = self.drivers();
        drivers.next_generation += 1;
        let generation = drivers.next_generation;
        let task = tokio::spawn({
            let supervisor = self.clone();
            let cancel = cancel.clone();
            let name = name.clone();
            async move {
                supervisor.drive(experiment, cancel).await;
                let mut drivers = supervisor.drivers();
                if drivers
                    .running
                    .get(&name)
                    .is_some_and(|running| running.generation == generation)
                {
                    drivers.running.remove(&name);
                }
            }
        });
        drivers.running.insert(
            name,
            Running {
                generation,
                cancel,
                task,
            },
        );
    }

    async fn drive(&self, experiment: Experiment, cancel: CancellationToken) {
        let name = experiment.metadata.name.clone();
        let dir = experiment_dir(&self.config, &name);
        let config = LocalConfig {
            trials_dir: dir.join("trials"),
            template_dir: dir.clone(),
            experiment_dir: dir.clone(),
            suggestion_service: None,
            trial_slots: self.trial_slots.clone(),
            trial_env: self
                .config
                .url
                .iter()
                .map(|url| ("SEXTANT_URL".to_string(), url.clone()))
                .collect(),
        };
        if let Err(error) = tokio::fs::create_dir_all(&dir).await {
            self.fail(
                &experiment,
                &format!("cannot create {}: {error}", dir.display()),
            )
            .await;
            return;
        }
        let events = self.events.clone();
        let mut last = None;
        // A trial's output log is kept when the trial ends; the driver's task waits for the
        // uploads, so stopping or deleting the experiment never races them.
        let mut uploads = JoinSet::new();
        let publish = |progress: &Progress| {
            for change in &progress.trial_changes {
                events.publish(Event::Trial(TrialEvent {
                    experiment: name.clone(),
                    name: change.trial_name.clone(),
                    condition: change.condition.name().to_string(),
                }));
                if change.condition.is_terminal() {
                    let supervisor = self.clone();
                    let (experiment, trial) = (name.clone(), change.trial_name.clone());
                    uploads.spawn(async move { supervisor.keep_log(&experiment, &trial).await });
                }
            }
            let event = ExperimentEvent::of(&name, &progress.status, false);
            if last.as_ref() != Some(&event) {
                events.publish(Event::Experiment(event.clone()));
                last = Some(event);
            }
        };
        let outcome = run_experiment(
            &self.store,
            experiment.clone(),
            &config,
            cancel.cancelled_owned(),
            publish,
        )
        .await;
        uploads.join_all().await;
        self.keep_logs(&name).await;
        match outcome {
            Ok(outcome) if !outcome.interrupted => {
                tracing::info!(experiment = %name, "experiment completed");
            }
            Ok(_) => tracing::info!(experiment = %name, "experiment's driver stopped"),
            Err(error) => {
                self.fail(
                    &experiment,
                    &format!("the experiment's driver failed: {error}"),
                )
                .await;
            }
        }
    }

    /// Keeps a finished trial's output log in object storage (a trial that printed nothing
    /// has none); a failure is logged, and retried at the driver's end or the next start.
    async fn keep_log(&self, experiment: &str, trial: &str) {
        let path = trial_dir(&self.config, experiment, trial).join(OUTPUT_LOG);
        if !tokio::fs::try_exists(&path).await.unwrap_or(false) {
            return;
        }
        let owner = ArtifactOwner::Trial {
            experiment_name: experiment,
            trial_name: trial,
        };
        if let Err(error) = self
            .artifacts
            .keep(&self.store, owner, OUTPUT_LOG, &path)
            .await
        {
            tracing::warn!(experiment, trial, %error, "cannot keep the trial's output log");
        }
    }

    /// Keeps the output logs of an experiment's finished trials that are not kept yet.
    pub(crate) async fn keep_logs(&self, experiment: &str) {
        let (trials, kept) = match tokio::try_join!(
            self.store.list_trials(experiment),
            self.store.trials_with_artifacts(experiment)
        ) {
            Ok(found) => found,
            Err(error) => {
                tracing::warn!(experiment, %error, "cannot list the trials' output logs");
                return;
            }
        };
        let kept: std::collections::HashSet<String> = kept.into_iter().collect();
        for trial in trials {
            if trial.completion_time.is_some() && !kept.contains(&trial.name) {
                self.keep_log(experiment, &trial.name).await;
            }
        }
    }

    /// Keeps the output logs of every experiment's finished trials not kept yet: what ended
    /// while no server was watching.
    pub(crate) async fn keep_every_log(&self) {
        match self.store.list_experiments().await {
            Ok(records) => {
                for record in records {
                    if !self.is_running(&record.name) {
                        self.keep_logs(&record.name).await;
                    }
                }
            }
            Err(error) => tracing::warn!(%error, "cannot list experiments to keep their logs"),
        }
    }

    /// Marks an experiment whose driver cannot go on Failed, so a restart does not retry it
    /// forever; the reason is in the condition's message.
    async fn fail(&self, experiment: &Experiment, message: &str) {
        let name = &experiment.metadata.name;
        tracing::error!(experiment = %name, message, "experiment failed");
        let mut status = match self.store.get_experiment(name).await {
            Ok(Some(record)) => read_experiment(&record)
                .ok()
                .and_then(|experiment| experiment.status)
                .unwrap_or_default(),
            _ => ExperimentStatus::default(),
        };
        let now = Utc::now();
        set_condition(
            &mut status.conditions,
            ExperimentConditionType::Failed,
            ConditionStatus::True,
            "ExperimentDriverFailed",
            message,
            now,
        );
        status.completion_time = Some(now);
        let text = serde_json::to_string(&Some(&status)).unwrap_or_default();
        if let Err(error) = self.store.update_experiment_status(name, &text, None).await {
            tracing::error!(experiment = %name, %error, "cannot record the failure");
        }
        self.events
            .publish(Event::Experiment(ExperimentEvent::of(name, &status, false)));
    }

    /// Stops `name`'s driver, if one runs, and waits until its trials' process groups are gone.
    pub(crate) async fn stop(&self, name: &str) {
        let running = self.drivers().running.remove(name);
        let Some(running) = running else {
            return;
        };
        running.cancel.cancel();
        if let Err(error) = running.task.await {
            tracing::error!(experiment = %name, %error, "the experiment's driver panicked");
        }
    }

    /// Stops every driver.
    pub(crate) async fn shutdown(&self) {
        let names: Vec<String> = self.drivers().running.keys().cloned().collect();
        for name in names {
            self.stop(&name).await;
        }
    }
}
