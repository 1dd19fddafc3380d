//! `sextant run`, `sextant validate` and `sextant get`: experiments on this machine, as a library
//! the binary calls (as `sextant_pipeline::cli` is for pipelines): the clap arguments, the
//! commands, and their text, written to the writers the caller passes so that tests read it.
//! [`pipeline`] runs the pipeline commands with this crate's `tune` step kind added. What
//! `sextant get` shows is a [`Shown`], printed by [`Shown::render`] whether it was read from
//! the store here or (by the binary, with `--server`) from a server's API.
//!
//! Every command ends with a [`ExitStatus`]: success when the experiment succeeded (or the
//! files are valid, or the objects were shown), failure when it failed or was interrupted,
//! invalid input for a spec that breaks the rules or a name that is not in the store. An
//! invalid spec is reported with every problem by field path, and nothing is written to the
//! store.

use std::future::Future;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use chrono::{DateTime, Utc};
use clap::{Args, Subcommand};
use sextant_echo::{echo, echo_quoted};
use sextant_pipeline::StepKind;
use sextant_pipeline::cli::{ExitStatus, PipelineCommand};
use sextant_store::database_url::redact_password;
use sextant_store::{ExperimentRecord, Store, StoredTrial};

use crate::kube::ApiGroup;
use crate::kube::tune_argo::argo_forms;
use crate::local::tune_step::TuneStepKind;
use crate::local::{
    LocalConfig, LocalError, Progress, TrialSlots, default_max_parallel, default_trials_dir,
    run_experiment,
};
use sextant_experiment::api::common::{ObjectiveType, Observation, ParameterAssignment};
use sextant_experiment::api::experiment::{
    Experiment, ExperimentConditionType, ExperimentStatus, OptimalTrial,
};
use sextant_experiment::api::latest_true_condition;
use sextant_experiment::engine;
use sextant_experiment::{LoadError, ValidationErrors, load_experiments};

/// Options of `sextant run`.
#[derive(Debug, Args)]
pub struct RunArgs {
    /// The Experiment YAML (Katib's kubeflow.org/v1beta1 schema).
    pub file: PathBuf,
    /// The store: `sqlite://PATH`, `postgres://...` or `mysql://...`.
    #[arg(long, env = "SEXTANT_DB", default_value = sextant_store::DEFAULT_DATABASE_URL)]
    pub db: String,
    /// Print the final Experiment object, with Katib's status, as JSON on stdout.
    #[arg(long)]
    pub json: bool,
    /// Ask this Katib-API Suggestion service (`host:port`, e.g. a `sextant serve`) for
    /// assignments instead of the in-process algorithms.
    #[arg(long, value_name = "ADDR")]
    pub suggestion_service: Option<String>,
    /// The most trials running at once on this machine, whatever `parallelTrialCount` asks
    /// (default: four per core, at least 8).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    pub max_parallel: Option<u32>,
    /// The directory a `configMap` trial template's `templatePath` must stay inside (default:
    /// the experiment file's directory).
    #[arg(long, value_name = "DIR")]
    pub template_dir: Option<PathBuf>,
}

/// Options of `sextant validate`.
#[derive(Debug, Args)]
pub struct ValidateArgs {
    /// Experiment YAML files.
    #[arg(required = true)]
    pub files: Vec<PathBuf>,
}

/// Options of `sextant get`.
#[derive(Debug, Args)]
pub struct GetArgs {
    /// What to show.
    #[command(subcommand)]
    pub what: GetWhat,
    /// The store.
    #[arg(long, global = true, env = "SEXTANT_DB", default_value = sextant_store::DEFAULT_DATABASE_URL)]
    pub db: String,
    /// Output format.
    #[arg(
        short = 'o',
        long = "output",
        global = true,
        value_enum,
        default_value = "table"
    )]
    pub output: OutputFormat,
}

/// The objects `sextant get` shows.
#[derive(Debug, Subcommand)]
pub enum GetWhat {
    /// Every experiment in the store.
    Experiments,
    /// One experiment with its status.
    Experiment {
        /// Its name.
        name: String,
    },
    /// The trials of an experiment.
    Trials {
        /// The experiment's name.
        name: String,
    },
}

/// How `sextant get` prints.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum OutputFormat {
    /// Aligned columns.
    Table,
    /// JSON.
    Json,
}

/// What `sextant get` shows, read from the store here or from a `sextant server`: one
/// [`Shown::render`] prints it either way.
#[derive(Debug, Clone)]
pub enum Shown {
    /// Every experiment, oldest first.
    Experiments(Vec<Experiment>),
    /// One experiment with its status, and its trials for the summary.
    Experiment {
        /// The experiment with its status.
        experiment: Experiment,
        /// Its trials, in creation order.
        trials: Vec<TrialRow>,
    },
    /// The trials of an experiment.
    Trials {
        /// The experiment (its objective orders the table).
        experiment: Experiment,
        /// Its trials, in creation order.
        trials: Vec<TrialRow>,
    },
}

/// A trial as `sextant get` shows it, whether from the store or a server's API.
#[derive(Debug, Clone, PartialEq)]
pub struct TrialRow {
    /// The trial's name.
    pub name: String,
    /// Katib's latest condition type (`Running`, `Succeeded`, ...).
    pub condition: String,
    /// Why.
    pub reason: String,
    /// Said for people.
    pub message: String,
    /// Its parameter values.
    pub parameter_assignments: Vec<ParameterAssignment>,
    /// The metrics observed, once computed.
    pub observation: Option<Observation>,
    /// When it started running.
    pub start_time: Option<DateTime<Utc>>,
    /// When it finished.
    pub completion_time: Option<DateTime<Utc>>,
}

/// Why a command could not do its work (invalid input is not an error: it is reported on the
/// error writer and ends with [`ExitStatus::InvalidInput`]).
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// The store failed.
    #[error(transparent)]
    Store(#[from] sextant_store::Error),
    /// The local driver failed.
    #[error(transparent)]
    Local(#[from] LocalError),
    /// A path could not be resolved.
    #[error("cannot resolve {path}: {source}")]
    Path {
        /// The path as given.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// A row of the store does not hold what this version wrote there.
    #[error("stored {what} of {name} is unreadable: {source}")]
    Stored {
        /// The column (`experiment spec`, `trial assignments`, ...).
        what: &'static str,
        /// The experiment or trial it belongs to.
        name: String,
        /// Why it does not parse.
        #[source]
        source: serde_json::Error,
    },
    /// What is printed as JSON could not be serialized.
    #[error("cannot print JSON: {0}")]
    Json(#[source] serde_json::Error),
    /// Writing to the output failed.
    #[error("cannot write output: {0}")]
    Output(#[from] std::io::Error),
}

/// `sextant validate FILE...`: each file's experiments, or every problem in it.
pub fn validate(args: &ValidateArgs, out: &mut dyn Write, err: &mut dyn Write) -> ExitStatus {
    let mut valid = true;
    for file in &args.files {
        match load(file) {
            Ok(experiments) => {
                for experiment in experiments {
                    // A closed stdout must not turn a valid file into a failure.
                    let _ = writeln!(
                        out,
                        "{}: experiment {:?} is valid",
                        file.display(),
                        experiment.metadata.name
                    );
                }
            }
            Err(message) => {
                valid = false;
                let _ = writeln!(err, "{message}");
            }
        }
    }
    if valid {
        ExitStatus::Success
    } else {
        ExitStatus::InvalidInput
    }
}

/// `sextant run FILE`: runs the experiment to the end (or until `shutdown`), with a progress
/// line on `err` whenever the counts change, then the summary (or the Experiment as JSON) on
/// `out`.
pub async fn run(
    args: &RunArgs,
    shutdown: impl Future<Output = ()>,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> Result<ExitStatus, CliError> {
    let experiment = match load(&args.file) {
        Ok(mut experiments) if experiments.len() == 1 => experiments.remove(0),
        Ok(experiments) => {
            writeln!(
                err,
                "{}: holds {} experiments; `sextant run` runs exactly one",
                args.file.display(),
                experiments.len()
            )?;
            return Ok(ExitStatus::InvalidInput);
        }
        Err(message) => {
            writeln!(err, "{message}")?;
            return Ok(ExitStatus::InvalidInput);
        }
    };
    let experiment_dir = canonical(&args.file)?
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."));
    let template_dir = match &args.template_dir {
        Some(dir) => canonical(dir)?,
        None => experiment_dir.clone(),
    };
    let store = Store::connect(&args.db).await?;
    let config = LocalConfig {
        trials_dir: default_trials_dir(&experiment_dir, &experiment.metadata.name),
        experiment_dir,
        template_dir,
        suggestion_service: args.suggestion_service.clone(),
        trial_slots: TrialSlots::new(
            args.max_parallel
                .map_or_else(default_max_parallel, |cap| cap as usize),
        ),
        trial_env: Vec::new(),
    };
    let name = experiment.metadata.name.clone();
    let mut last_line = String::new();
    let outcome = run_experiment(
        &store,
        experiment,
        &config,
        shutdown,
        |progress: &Progress| {
            let line = progress_line(&name, &progress.status);
            if line != last_line {
                // Progress is best effort: a closed terminal must not stop the run.
                let _ = writeln!(err, "{line}");
                last_line = line;
            }
        },
    )
    .await;
    let outcome = match outcome {
        Ok(outcome) => outcome,
        // A template that cannot run here (a missing configMap file) is invalid input.
        Err(LocalError::Launch(error)) => {
            writeln!(err, "{}: {error}", args.file.display())?;
            return Ok(ExitStatus::InvalidInput);
        }
        // A warm start the store cannot honour (an experiment it does not hold).
        Err(LocalError::Invalid(errors)) => {
            writeln!(err, "{}", invalid_message(&args.file, &name, &errors))?;
            return Ok(ExitStatus::InvalidInput);
        }
        Err(error) => return Err(error.into()),
    };
    let status = outcome.experiment.status.clone().unwrap_or_default();
    if args.json {
        writeln!(out, "{}", json(&outcome.experiment)?)?;
    } else {
        let trials = TrialRow::list(&store.list_trials(&name).await?)?;
        out.write_all(summary(&outcome.experiment, &status, &trials).as_bytes())?;
    }
    store.close().await;
    if outcome.interrupted {
        writeln!(
            err,
            "interrupted: run `sextant run {}` again to resume",
            args.file.display()
        )?;
        return Ok(ExitStatus::Failure);
    }
    Ok(
        if condition_type(&status) == Some(ExperimentConditionType::Succeeded) {
            ExitStatus::Success
        } else {
            ExitStatus::Failure
        },
    )
}

/// `sextant get ...`: what the store holds, as a table or JSON.
pub async fn get(
    args: &GetArgs,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> Result<ExitStatus, CliError> {
    let store = Store::connect(&args.db).await?;
    let shown = match &args.what {
        GetWhat::Experiments => Shown::Experiments(
            store
                .list_experiments()
                .await?
                .iter()
                .map(stored_experiment)
                .collect::<Result<Vec<_>, _>>()?,
        ),
        GetWhat::Experiment { name } | GetWhat::Trials { name } => {
            let Some(record) = store.get_experiment(name).await? else {
                writeln!(
                    err,
                    "no experiment {} in {}",
                    echo_quoted(name),
                    redact_password(&args.db)
                )?;
                return Ok(ExitStatus::InvalidInput);
            };
            let experiment = stored_experiment(&record)?;
            let trials = TrialRow::list(&store.list_trials(name).await?)?;
            if matches!(args.what, GetWhat::Experiment { .. }) {
                Shown::Experiment { experiment, trials }
            } else {
                Shown::Trials { experiment, trials }
            }
        }
    };
    out.write_all(shown.render(args.output)?.as_bytes())?;
    store.close().await;
    Ok(ExitStatus::Success)
}

/// `sextant pipeline ...`: the pipeline crate's commands, with the `tune` step kind (an
/// experiment as a step, which that crate cannot name) registered; `tune` steps run their
/// trials in `working_dir`, and `compile` turns them into resource templates creating
/// Experiments of `api_group` ([`crate::kube::tune_argo`]).
pub async fn pipeline(
    command: &PipelineCommand,
    api_group: ApiGroup,
    working_dir: PathBuf,
    shutdown: impl Future<Output = ()> + Send,
    out: &mut (dyn Write + Send),
) -> Result<ExitStatus, sextant_pipeline::cli::CliError> {
    let tune_kind = move |store: &Store| {
        vec![Arc::new(TuneStepKind::new(
            store.clone(),
            working_dir.clone(),
            TrialSlots::new(default_max_parallel()),
        )) as Arc<dyn StepKind>]
    };
    let argo_forms = argo_forms(api_group);
    sextant_pipeline::cli::execute_with_kinds(command, &tune_kind, &argo_forms, shutdown, out).await
}

// === rendering ===

/// One line of progress: the counts and the best value so far.
pub fn progress_line(name: &str, status: &ExperimentStatus) -> String {
    let best = status
        .current_optimal_trial
        .observation
        .metrics
        .first()
        .map(|metric| format!("{}={}", metric.name, metric.latest))
        .unwrap_or_else(|| "-".into());
    format!(
        "{name}: {} succeeded, {} running, {} failed, {} early stopped; best {best}",
        status.trials_succeeded,
        status.trials_running,
        status.trials_failed + status.trial_metrics_unavailable,
        status.trials_early_stopped,
    )
}

/// The experiment's state, its best trial, and its ten best trials.
pub fn summary(experiment: &Experiment, status: &ExperimentStatus, trials: &[TrialRow]) -> String {
    let condition = latest_true_condition(&status.conditions)
        .map(|condition| format!("{} ({})", condition.condition_type.name(), condition.reason))
        .unwrap_or_else(|| "unknown".into());
    let mut text = format!(
        "experiment {}: {condition}\n",
        echo(&experiment.metadata.name)
    );
    let optimal = &status.current_optimal_trial;
    if !optimal.best_trial_name.is_empty() {
        text += &format!("best trial: {}\n", optimal.best_trial_name);
        for assignment in &optimal.parameter_assignments {
            text += &format!(
                "  {} = {}\n",
                echo(&assignment.name),
                echo(&assignment.value)
            );
        }
        for metric in &optimal.observation.metrics {
            text += &format!(
                "  {}: latest {} (min {}, max {})\n",
                metric.name, metric.latest, metric.min, metric.max
            );
        }
    }
    if !status.pareto_optimal_trials.is_empty() {
        text += &pareto_table(experiment, &status.pareto_optimal_trials);
    }
    text += "\n";
    text += &trials_table(experiment, trials, 10);
    text
}

/// The Pareto front: each trial with its value of every objective and its parameters.
pub fn pareto_table(experiment: &Experiment, front: &[OptimalTrial]) -> String {
    let objective = experiment.spec.objective.clone().unwrap_or_default();
    let objectives = objective.objective_metrics();
    let name_width = front
        .iter()
        .map(|trial| trial.best_trial_name.len())
        .max()
        .unwrap_or(0)
        .max("TRIAL".len());
    let headers: Vec<String> = objectives
        .iter()
        .map(|(name, objective_type)| {
            let direction = match objective_type {
                Some(ObjectiveType::Maximize) => "max",
                _ => "min",
            };
            format!("{} ({direction})", echo(name))
        })
        .collect();
    let widths: Vec<usize> = headers.iter().map(|header| header.len().max(14)).collect();
    let mut text = format!(
        "Pareto front: {} trial(s), none dominated by another feasible trial\n",
        front.len()
    );
    text += &format!("{:<name_width$}", "TRIAL");
    for (header, width) in headers.iter().zip(&widths) {
        text += &format!(" {header:>width$}");
    }
    text += "  PARAMETERS\n";
    for trial in front {
        text += &format!("{:<name_width$}", trial.best_trial_name);
        for ((name, _), width) in objectives.iter().zip(&widths) {
            let value = trial
                .observation
                .metric(name)
                .and_then(|metric| engine::objective_value(metric, &objective.strategy_for(name)))
                .map_or_else(|| "-".to_owned(), |value| format!("{value:.6}"));
            text += &format!(" {value:>width$}");
        }
        let parameters = trial
            .parameter_assignments
            .iter()
            .map(|pair| format!("{}={}", echo(&pair.name), echo(&pair.value)))
            .collect::<Vec<_>>()
            .join(" ");
        text += &format!("  {parameters}\n");
    }
    text
}

/// Trials best first (by the first objective under its strategy; with outcome constraints,
/// the feasible ones first and a FEASIBLE column), at most `limit` (0 = all).
pub fn trials_table(experiment: &Experiment, trials: &[TrialRow], limit: usize) -> String {
    let maximize = experiment
        .spec
        .objective
        .as_ref()
        .is_some_and(|objective| objective.objective_type == Some(ObjectiveType::Maximize));
    let constrained = !experiment.spec.constraints.is_empty();
    let rule = engine::OutcomeRule::new(&experiment.spec);
    let mut rows = Vec::with_capacity(trials.len());
    for trial in trials {
        let observation = trial.observation.as_ref();
        let value = observation.and_then(|observation| {
            let objective = experiment.spec.objective.as_ref()?;
            observation
                .metric(&objective.objective_metric_name)
                .and_then(|metric| {
                    engine::objective_value(
                        metric,
                        &objective.strategy_for(&objective.objective_metric_name),
                    )
                })
        });
        let feasible = observation
            .zip(rule.as_ref())
            .and_then(|(observation, rule)| rule.outcome(observation))
            .map(|outcome| outcome.is_feasible());
        rows.push((trial, value, feasible));
    }
    rows.sort_by(|(_, a, a_feasible), (_, b, b_feasible)| {
        let infeasible = |feasible: &Option<bool>| *feasible == Some(false);
        infeasible(a_feasible)
            .cmp(&infeasible(b_feasible))
            .then_with(|| match (a, b) {
                (Some(a), Some(b)) if maximize => b.total_cmp(a),
                (Some(a), Some(b)) => a.total_cmp(b),
                (Some(_), None) => std::cmp::Ordering::Less,
                (None, Some(_)) => std::cmp::Ordering::Greater,
                (None, None) => std::cmp::Ordering::Equal,
            })
    });
    let shown = if limit == 0 {
        rows.len()
    } else {
        limit.min(rows.len())
    };
    let name_width = rows
        .iter()
        .take(shown)
        .map(|(trial, _, _)| trial.name.len())
        .max()
        .unwrap_or(0)
        .max("TRIAL".len());
    let feasible_header = if constrained { " FEASIBLE" } else { "" };
    let mut text = format!(
        "{:<name_width$} {:<18} {:>14}{feasible_header}  PARAMETERS\n",
        "TRIAL", "CONDITION", "OBJECTIVE"
    );
    for (trial, objective, feasible) in rows.into_iter().take(shown) {
        let parameters = trial
            .parameter_assignments
            .iter()
            .map(|pair| format!("{}={}", echo(&pair.name), echo(&pair.value)))
            .collect::<Vec<_>>()
            .join(" ");
        let objective = objective
            .map(|value| format!("{value:.6}"))
            .unwrap_or_else(|| "-".into());
        let feasible = match (constrained, feasible) {
            (false, _) => String::new(),
            (true, Some(true)) => format!(" {:<8}", "yes"),
            (true, Some(false)) => format!(" {:<8}", "no"),
            (true, None) => format!(" {:<8}", "-"),
        };
        text += &format!(
            "{:<name_width$} {:<18} {:>14}{feasible}  {parameters}\n",
            trial.name, trial.condition, objective
        );
    }
    if shown < trials.len() {
        text += &format!(
            "... {} more (sextant get trials {})\n",
            trials.len() - shown,
            experiment.metadata.name
        );
    }
    text
}

/// Every experiment, a line each.
pub fn experiments_table(experiments: &[Experiment]) -> String {
    let mut text = format!(
        "{:<32} {:<12} {:>9} {:>9} {:>7}\n",
        "NAME", "STATUS", "SUCCEEDED", "FAILED", "TRIALS"
    );
    for experiment in experiments {
        let status = experiment.status.clone().unwrap_or_default();
        text += &format!(
            "{:<32} {:<12} {:>9} {:>9} {:>7}\n",
            experiment.metadata.name,
            condition_type(&status).map_or("Unknown", |kind| kind.name()),
            status.trials_succeeded,
            status.trials_failed,
            status.trials
        );
    }
    text
}

/// Trials as `sextant get trials -o json` prints them.
fn trials_json(trials: &[TrialRow]) -> Vec<serde_json::Value> {
    trials
        .iter()
        .map(|trial| {
            serde_json::json!({
                "name": trial.name,
                "condition": trial.condition,
                "reason": trial.reason,
                "message": trial.message,
                "parameterAssignments": trial.parameter_assignments,
                "observation": trial.observation,
                "startTime": trial.start_time,
                "completionTime": trial.completion_time,
            })
        })
        .collect()
}

// === impl Shown ===

impl Shown {
    /// The text `sextant get` prints: a table or JSON.
    pub fn render(&self, format: OutputFormat) -> Result<String, CliError> {
        Ok(match (self, format) {
            (Shown::Experiments(experiments), OutputFormat::Table) => {
                experiments_table(experiments)
            }
            (Shown::Experiments(experiments), OutputFormat::Json) => {
                format!("{}\n", json(experiments)?)
            }
            (Shown::Experiment { experiment, trials }, OutputFormat::Table) => {
                let status = experiment.status.clone().unwrap_or_default();
                summary(experiment, &status, trials)
            }
            (Shown::Experiment { experiment, .. }, OutputFormat::Json) => {
                format!("{}\n", json(experiment)?)
            }
            (Shown::Trials { experiment, trials }, OutputFormat::Table) => {
                trials_table(experiment, trials, 0)
            }
            (Shown::Trials { trials, .. }, OutputFormat::Json) => {
                format!("{}\n", json(&trials_json(trials))?)
            }
        })
    }
}

// === impl TrialRow ===

impl TrialRow {
    /// The rows of stored trials, in their order.
    pub fn list(trials: &[StoredTrial]) -> Result<Vec<TrialRow>, CliError> {
        trials.iter().map(TrialRow::stored).collect()
    }

    /// The row of a stored trial: its assignments and observation parsed.
    fn stored(trial: &StoredTrial) -> Result<TrialRow, CliError> {
        Ok(TrialRow {
            name: trial.name.clone(),
            condition: trial.condition_type.clone(),
            reason: trial.reason.clone(),
            message: trial.message.clone(),
            parameter_assignments: parse_stored(
                &trial.assignments,
                "trial assignments",
                &trial.name,
            )?,
            observation: trial
                .observation
                .as_deref()
                .map(|text| parse_stored(text, "trial observation", &trial.name))
                .transpose()?,
            start_time: trial.start_time,
            completion_time: trial.completion_time,
        })
    }
}

// === helpers ===

/// The experiments of a file, or the message that says why there are none.
fn load(file: &Path) -> Result<Vec<Experiment>, String> {
    let text = std::fs::read_to_string(file)
        .map_err(|error| format!("{}: cannot read: {error}", file.display()))?;
    load_experiments(&text).map_err(|error| match error {
        LoadError::Invalid { name, errors } => invalid_message(file, &name, &errors),
        other => format!("{}: {other}", file.display()),
    })
}

/// Every problem of an invalid experiment, one per line under the file and the name.
fn invalid_message(file: &Path, name: &str, errors: &ValidationErrors) -> String {
    format!(
        "{}: experiment {} is invalid:\n{}",
        file.display(),
        echo_quoted(name),
        errors
            .0
            .iter()
            .map(|error| format!("  {error}"))
            .collect::<Vec<_>>()
            .join("\n")
    )
}

fn canonical(path: &Path) -> Result<PathBuf, CliError> {
    path.canonicalize().map_err(|source| CliError::Path {
        path: path.to_path_buf(),
        source,
    })
}

/// The type of the experiment's newest condition that holds.
fn condition_type(status: &ExperimentStatus) -> Option<ExperimentConditionType> {
    latest_true_condition(&status.conditions).map(|condition| condition.condition_type.clone())
}

/// An experiment as the store keeps it: its spec, with the status written beside it.
fn stored_experiment(record: &ExperimentRecord) -> Result<Experiment, CliError> {
    let mut experiment: Experiment = parse_stored(&record.spec, "experiment spec", &record.name)?;
    experiment.status = parse_stored(&record.status, "experiment status", &record.name)?;
    Ok(experiment)
}

fn parse_stored<T: serde::de::DeserializeOwned>(
    text: &str,
    what: &'static str,
    name: &str,
) -> Result<T, CliError> {
    serde_json::from_str(text).map_err(|source| CliError::Stored {
        what,
        name: name.to_owned(),
        source,
    })
}

fn json(value: &impl serde::Serialize) -> Result<String, CliError> {
    serde_json::to_string_pretty(value).map_err(CliError::Json)
}
