//! Pipeline trials: a `sextant.dev/v1beta1` `Pipeline` trial template run through the pipeline
//! executor (`sextant-pipeline`), recorded in the experiment's store.
//!
//! The template's strings get the trial's `${trialParameters.x}` values first, as for the other
//! kinds; its `spec` is then loaded as a pipeline spec (a substituted value containing `{{` would
//! be read as a pipeline reference). Rules:
//! - metrics come from one step, the *metrics step*: the step `trialTemplate.primaryContainerName`
//!   names, else the last sink, that is the step declared last in `spec.steps` among those no
//!   other step depends on (a pipeline's final result). It must not use `withItems`. Its
//!   `stdout.log` and `stderr.log` (StdOut collector) or the File collector's path (relative to
//!   the step's working directory) are parsed as the run goes, with the same collector as process
//!   trials, and the points are stored under the trial's name; early-stopping rules apply to them.
//! - the metrics step is never served from the cache (its output must be produced to be
//!   collected), and gets the trial environment of process trials (`KATIB_TRIAL_NAME`,
//!   `SEXTANT_TRIAL_DIR`, the DBManager address), so the Push collector works from it; other
//!   steps keep their cacheability.
//! - the driver sets the pipeline parameters `experimentDir` (the experiment file's directory,
//!   absolute), `trialName` and `trialDir` when the pipeline declares them: steps run in their own
//!   directories, so scripts beside the experiment file are reached as
//!   `{{params.experimentDir}}/train.py`.
//! - the run goes in `<trial dir>/<run id>`; a failed pipeline fails the trial
//!   (`PipelineFailed`); stopping the trial (early stopping, completion, Ctrl-C) cancels the run,
//!   which ends every step's process group.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use futures::future::join_all;
use serde_json::Value;
use sextant_algorithms::early_stopping::Tracker;
use sextant_metrics::source::FollowStart;
use sextant_pipeline::{
    CancellationToken, Executor, ExecutorConfig, Pipeline, RunPhase, RunRequest, StepKindRegistry,
    new_run_id,
};
use sextant_store::Store;
use tokio::sync::{mpsc, watch};

use crate::local::TrialSlots;
use crate::local::launch::LaunchError;
use crate::local::runner::{
    Collection, MetricsSource, PointSink, STOP_GRACE, Stop, StopRequest, TrialEnded, TrialHandle,
    WAITING_BATCHES, follow, metrics_parser, supervise,
};
use crate::local::tune_step::TuneStepKind;
use sextant_experiment::api::experiment::Experiment;
use sextant_experiment::engine::RunState;
use sextant_experiment::placeholders::substitute;

/// The pipeline parameter the driver sets to the experiment file's directory.
pub const EXPERIMENT_DIR_PARAM: &str = "experimentDir";
/// The pipeline parameter the driver sets to the trial's name.
pub const TRIAL_NAME_PARAM: &str = "trialName";
/// The pipeline parameter the driver sets to the trial's scratch directory.
pub const TRIAL_DIR_PARAM: &str = "trialDir";

/// A trial's pipeline, ready to run.
#[derive(Debug, Clone)]
pub struct PipelineLaunch {
    /// The loaded pipeline, with the metrics step adjusted (no cache, trial environment).
    pub pipeline: Pipeline,
    /// The parameter values the driver sets.
    pub params: BTreeMap<String, String>,
    /// The step whose output holds the metrics.
    pub metrics_step: String,
    /// The experiment file's directory, where `tune` steps inside the pipeline run their trials.
    pub experiment_dir: PathBuf,
}

/// Everything one pipeline trial's task needs.
pub struct PipelineTrialTask {
    /// The trial.
    pub trial_name: String,
    /// What to run.
    pub launch: PipelineLaunch,
    /// Its scratch directory; the run's directory goes inside.
    pub trial_dir: PathBuf,
    /// What to collect.
    pub collection: Collection,
    /// How its early stopping is enforced (its rules, or the live rung table), if it has any.
    pub rules: Option<Tracker>,
    /// Where points and the run's records go.
    pub store: Store,
    /// Where the task reports.
    pub events: mpsc::UnboundedSender<TrialEnded>,
}

/// Builds a trial's pipeline from the template, the trial's placeholder values and the trial
/// environment `env` (given to the metrics step).
pub fn prepare(
    experiment: &Experiment,
    template: &Value,
    values: &BTreeMap<String, String>,
    trial_name: &str,
    trial_dir: &Path,
    experiment_dir: &Path,
    env: &[(String, String)],
) -> Result<PipelineLaunch, LaunchError> {
    // Values are substituted into the pipeline's text before it is parsed, so one holding the
    // pipeline's own `{{...}}` syntax would become a live reference (to a param, another
    // step's output); such a trial fails instead.
    if let Some((name, value)) = values
        .iter()
        .find(|(_, value)| value.contains("{{") || value.contains("}}"))
    {
        return Err(LaunchError::Template {
            path: format!("spec.trialTemplate.trialParameters[{name}]"),
            rule: format!(
                "value {value:?} contains `{{{{` or `}}}}`, which pipeline templates reserve for references"
            ),
        });
    }
    let mut resolved = substitute(template, values);
    // Validation keeps the template's metadata free of a name: the run is named after the trial.
    if let Some(object) = resolved.as_object_mut() {
        let metadata = object
            .entry("metadata")
            .or_insert_with(|| Value::Object(serde_json::Map::new()));
        if let Some(metadata) = metadata.as_object_mut() {
            metadata.insert("name".into(), Value::String(pipeline_name(trial_name)));
        }
    }
    // JSON is YAML, and the spec loader reports problems with their field paths.
    let text = serde_json::to_string(&resolved).unwrap_or_default();
    let mut pipeline = Pipeline::from_yaml(&text).map_err(|error| LaunchError::Template {
        path: "spec.trialTemplate.trialSpec".into(),
        rule: error.to_string(),
    })?;
    let primary = experiment
        .spec
        .trial_template
        .as_ref()
        .map(|template| template.primary_container_name.as_str())
        .unwrap_or_default();
    let index = metrics_step_index(&pipeline, primary)?;
    let step = &mut pipeline.steps[index];
    if step.is_fanned_out() {
        return Err(LaunchError::Template {
            path: "spec.trialTemplate.trialSpec.spec.steps".into(),
            rule: format!(
                "the metrics step `{}` uses withItems; metrics must come from a single step",
                step.name
            ),
        });
    }
    step.cache = false;
    for (name, value) in env {
        step.env.retain(|(existing, _)| existing != name);
        step.env.push((name.clone(), literal(value)));
    }
    let metrics_step = step.name.clone();
    let offered = [
        (EXPERIMENT_DIR_PARAM, experiment_dir.display().to_string()),
        (TRIAL_NAME_PARAM, trial_name.to_string()),
        (TRIAL_DIR_PARAM, trial_dir.display().to_string()),
    ];
    let params = offered
        .into_iter()
        .filter(|(name, _)| pipeline.params.iter().any(|param| param.name == *name))
        .map(|(name, value)| (name.to_string(), value))
        .collect();
    Ok(PipelineLaunch {
        pipeline,
        params,
        metrics_step,
        experiment_dir: experiment_dir.to_path_buf(),
    })
}

/// The metrics step: the one `primary` names, else the last declared sink.
pub(crate) fn metrics_step_index(pipeline: &Pipeline, primary: &str) -> Result<usize, LaunchError> {
    if !primary.is_empty() {
        return pipeline
            .steps
            .iter()
            .position(|step| step.name == primary)
            .ok_or_else(|| LaunchError::Template {
                path: "spec.trialTemplate.primaryContainerName".into(),
                rule: format!(
                    "{primary:?} names no step of the pipeline (steps: {})",
                    pipeline
                        .steps
                        .iter()
                        .map(|step| step.name.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            });
    }
    let is_dependency = |index: usize| {
        pipeline
            .steps
            .iter()
            .any(|step| step.dependencies.contains(&index))
    };
    // A valid pipeline is acyclic and has a step, so it has a sink; the fallback is unreachable.
    Ok((0..pipeline.steps.len())
        .rev()
        .find(|index| !is_dependency(*index))
        .unwrap_or(0))
}

/// A pipeline name from a trial name (pipeline names allow letters, digits, `-` and `_`).
fn pipeline_name(trial_name: &str) -> String {
    trial_name
        .chars()
        .map(|character| {
            if character.is_ascii_alphanumeric() || character == '-' || character == '_' {
                character
            } else {
                '-'
            }
        })
        .collect()
}

fn literal(text: &str) -> sextant_pipeline::template::Template {
    sextant_pipeline::template::Template {
        segments: vec![sextant_pipeline::template::Segment::Literal(
            text.to_string(),
        )],
    }
}

/// Starts the trial's pipeline run and the task that watches it.
pub fn start(task: PipelineTrialTask) -> std::io::Result<TrialHandle> {
    std::fs::create_dir_all(&task.trial_dir)?;
    let (handle, stop_requests) = TrialHandle::new();
    tokio::spawn(watch_pipeline(task, stop_requests));
    Ok(handle)
}

async fn watch_pipeline(task: PipelineTrialTask, stop_requests: watch::Receiver<StopRequest>) {
    let run_id = new_run_id(&task.launch.pipeline.name);
    let run_dir = task.trial_dir.join(&run_id);
    let step_dir = run_dir.join(&task.launch.metrics_step);
    let (parser, followed) = match metrics_parser(&task.collection) {
        Ok(parser) => (parser, followed_files(&task.collection, &step_dir)),
        Err(message) => {
            let _ = task.events.send(TrialEnded {
                trial_name: task.trial_name.clone(),
                state: Stop::CollectionFailed(message).run_state(),
            });
            return;
        }
    };
    let mut kinds = StepKindRegistry::default();
    // A nested experiment gets its own slots: its trials waiting on slots its parent trial
    // holds could never start.
    kinds.register(Arc::new(TuneStepKind::new(
        task.store.clone(),
        task.launch.experiment_dir.clone(),
        TrialSlots::new(super::default_max_parallel()),
    )));
    let executor = Executor::new(
        Arc::new(task.store.clone()),
        kinds,
        ExecutorConfig {
            kill_grace: STOP_GRACE,
            ..ExecutorConfig::default()
        },
    );
    let request = RunRequest {
        run_id,
        run_dir,
        params: task.launch.params.clone(),
        cache: true,
        trial: Some(task.trial_name.clone()),
    };
    let (points_sender, points) = mpsc::channel(WAITING_BATCHES);
    let (ended, ended_receiver) = watch::channel(false);
    let (stop, mut stops) = watch::channel(None);
    let work = async {
        let cancellation = CancellationToken::new();
        let run = executor.run(&task.launch.pipeline, request, None, cancellation.clone());
        tokio::pin!(run);
        let report = tokio::select! {
            report = &mut run => report,
            () = async { let _ = stops.wait_for(Option::is_some).await; } => {
                // Cancelling ends every step's process group before the run returns.
                cancellation.cancel();
                run.await
            }
        };
        let _ = ended.send(true);
        report
    };
    let collect =
        async {
            let points = points_sender;
            join_all(followed.iter().map(|(path, start)| {
                follow(path, *start, &parser, &points, ended_receiver.clone())
            }))
            .await;
        };
    let sink = PointSink {
        trial_name: &task.trial_name,
        store: &task.store,
    };
    let supervised = supervise(sink, task.rules.clone(), points, stop_requests, &stop, work);
    let ((stopped, report), ()) = tokio::join!(supervised, collect);
    let state = match (stopped, report) {
        (Some(stop), _) => stop.run_state(),
        (None, Ok(report)) if report.phase == RunPhase::Succeeded => RunState::Succeeded,
        (None, Ok(report)) => RunState::Failed {
            reason: "PipelineFailed".into(),
            message: format!(
                "pipeline run {} ended {:?}: {}",
                report.run_id,
                report.phase,
                report.message.unwrap_or_default()
            ),
        },
        (None, Err(error)) => RunState::Failed {
            reason: "PipelineError".into(),
            message: format!("the trial's pipeline cannot run: {error}"),
        },
    };
    let _ = task.events.send(TrialEnded {
        trial_name: task.trial_name.clone(),
        state,
    });
}

/// The files the collector reads, inside the metrics step's working directory, and where each
/// is read from.
fn followed_files(collection: &Collection, step_dir: &Path) -> Vec<(PathBuf, FollowStart)> {
    // A file outside the step's directory may hold earlier trials' lines: only what is
    // appended from now on is this trial's.
    let follow = |name: PathBuf| {
        let start = if name.is_absolute() {
            FollowStart::end_of(&name)
        } else {
            FollowStart::BEGINNING
        };
        (step_dir.join(name), start)
    };
    match &collection.source {
        MetricsSource::StdOut => vec![
            follow(PathBuf::from(sextant_pipeline::executor::STDOUT_LOG)),
            follow(PathBuf::from(sextant_pipeline::executor::STDERR_LOG)),
        ],
        MetricsSource::File { path, .. } => vec![follow(path.clone())],
        MetricsSource::Push => Vec::new(),
    }
}
