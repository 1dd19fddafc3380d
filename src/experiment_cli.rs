//! `sextant run`, `sextant validate` and `sextant get`: experiments on this machine.
//!
//! Exit codes follow DESIGN.md: 0 when the experiment succeeded, 1 when it failed (or was
//! interrupted), 2 for invalid input. An invalid spec is reported with every problem by field
//! path, and nothing is written to the store.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use clap::{Args, Subcommand};
use sextant_controller::api::ConditionStatus;
use sextant_controller::api::common::{ObjectiveType, Observation, ParameterAssignment};
use sextant_controller::api::experiment::{Experiment, ExperimentStatus};
use sextant_controller::engine;
use sextant_controller::local::{
    LocalConfig, LocalError, Progress, default_max_parallel, default_trials_dir, run_experiment,
};
use sextant_controller::{LoadError, load_experiments};
use sextant_store::Store;
use sextant_store::database_url::redact_password;
use sextant_store::echo::{echo, echo_quoted};

/// Options of `sextant run`.
#[derive(Debug, Args)]
pub struct RunArgs {
    /// The Experiment YAML (Katib's kubeflow.org/v1beta1 schema).
    pub file: PathBuf,
    /// The store: `sqlite://PATH`, `postgres://...` or `mysql://...`.
    #[arg(long, env = "SEXTANT_DB", default_value = crate::DEFAULT_DB_URL)]
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
    #[arg(long, global = true, env = "SEXTANT_DB", default_value = crate::DEFAULT_DB_URL)]
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

fn load(file: &Path) -> Result<Vec<Experiment>, String> {
    let text = std::fs::read_to_string(file)
        .map_err(|error| format!("{}: cannot read: {error}", file.display()))?;
    load_experiments(&text).map_err(|error| match error {
        LoadError::Invalid { name, errors } => format!(
            "{}: experiment {} is invalid:\n{}",
            file.display(),
            echo_quoted(&name),
            errors
                .0
                .iter()
                .map(|error| format!("  {error}"))
                .collect::<Vec<_>>()
                .join("\n")
        ),
        other => format!("{}: {other}", file.display()),
    })
}

/// `sextant validate FILE...`.
pub fn validate(args: &ValidateArgs) -> ExitCode {
    let mut valid = true;
    for file in &args.files {
        match load(file) {
            Ok(experiments) => {
                for experiment in experiments {
                    println!(
                        "{}: experiment {:?} is valid",
                        file.display(),
                        experiment.metadata.name
                    );
                }
            }
            Err(message) => {
                valid = false;
                eprintln!("{message}");
            }
        }
    }
    if valid {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(2)
    }
}

/// `sextant run FILE`.
pub async fn run(
    args: &RunArgs,
    shutdown: impl std::future::Future<Output = ()>,
) -> anyhow::Result<ExitCode> {
    let experiment = match load(&args.file) {
        Ok(mut experiments) if experiments.len() == 1 => experiments.remove(0),
        Ok(experiments) => {
            eprintln!(
                "{}: holds {} experiments; `sextant run` runs exactly one",
                args.file.display(),
                experiments.len()
            );
            return Ok(ExitCode::from(2));
        }
        Err(message) => {
            eprintln!("{message}");
            return Ok(ExitCode::from(2));
        }
    };
    let experiment_dir = args
        .file
        .canonicalize()
        .with_context(|| format!("cannot resolve {}", args.file.display()))?
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."));
    let template_dir = match &args.template_dir {
        Some(dir) => dir
            .canonicalize()
            .with_context(|| format!("--template-dir: cannot resolve {}", dir.display()))?,
        None => experiment_dir.clone(),
    };
    let store = Store::connect(&args.db).await?;
    let config = LocalConfig {
        trials_dir: default_trials_dir(&experiment_dir, &experiment.metadata.name),
        experiment_dir,
        template_dir,
        suggestion_service: args.suggestion_service.clone(),
        max_parallel: args
            .max_parallel
            .map_or_else(default_max_parallel, |cap| cap as usize),
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
                eprintln!("{line}");
                last_line = line;
            }
        },
    )
    .await;
    let outcome = match outcome {
        Ok(outcome) => outcome,
        // A template that cannot run here (a missing configMap file) is invalid input.
        Err(LocalError::Launch(error)) => {
            eprintln!("{}: {error}", args.file.display());
            return Ok(ExitCode::from(2));
        }
        Err(error) => return Err(error.into()),
    };
    let status = outcome.experiment.status.clone().unwrap_or_default();
    if args.json {
        println!("{}", serde_json::to_string_pretty(&outcome.experiment)?);
    } else {
        let trials = store.list_trials(&name).await?;
        print_summary(&outcome.experiment, &status, &trials);
    }
    store.close().await;
    if outcome.interrupted {
        eprintln!(
            "interrupted: run `sextant run {}` again to resume",
            args.file.display()
        );
        return Ok(ExitCode::FAILURE);
    }
    Ok(if succeeded(&status) {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

fn succeeded(status: &ExperimentStatus) -> bool {
    current_condition(status).is_some_and(|(kind, _)| kind == "Succeeded")
}

/// The type and reason of the newest condition that holds (Katib appends them in order).
fn current_condition(status: &ExperimentStatus) -> Option<(String, String)> {
    let condition = status
        .conditions
        .iter()
        .rfind(|condition| condition.status == ConditionStatus::True)?;
    let kind = serde_json::to_value(&condition.condition_type)
        .ok()?
        .as_str()?
        .to_string();
    Some((kind, condition.reason.clone()))
}

fn progress_line(name: &str, status: &ExperimentStatus) -> String {
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

fn print_summary(
    experiment: &Experiment,
    status: &ExperimentStatus,
    trials: &[sextant_store::TrialRecord],
) {
    let condition = current_condition(status)
        .map(|(kind, reason)| format!("{kind} ({reason})"))
        .unwrap_or_else(|| "unknown".into());
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    let _ = writeln!(
        out,
        "experiment {}: {condition}",
        echo(&experiment.metadata.name)
    );
    let optimal = &status.current_optimal_trial;
    if !optimal.best_trial_name.is_empty() {
        let _ = writeln!(out, "best trial: {}", optimal.best_trial_name);
        for assignment in &optimal.parameter_assignments {
            let _ = writeln!(
                out,
                "  {} = {}",
                echo(&assignment.name),
                echo(&assignment.value)
            );
        }
        for metric in &optimal.observation.metrics {
            let _ = writeln!(
                out,
                "  {}: latest {} (min {}, max {})",
                metric.name, metric.latest, metric.min, metric.max
            );
        }
    }
    let _ = writeln!(out);
    print_trials(&mut out, experiment, trials, 10);
}

/// A trial's objective value under the objective's metric strategy, as the optimal trial is
/// chosen.
fn objective_value(experiment: &Experiment, trial: &sextant_store::TrialRecord) -> Option<f64> {
    let objective = experiment.spec.objective.as_ref()?;
    let observation: Observation = serde_json::from_str(trial.observation.as_deref()?).ok()?;
    let metric = observation.metric(&objective.objective_metric_name)?;
    engine::objective_value(
        metric,
        &objective.strategy_for(&objective.objective_metric_name),
    )
}

/// Prints trials best first (by the objective under its strategy), at most `limit` (0 = all).
fn print_trials(
    out: &mut impl Write,
    experiment: &Experiment,
    trials: &[sextant_store::TrialRecord],
    limit: usize,
) {
    let maximize = experiment
        .spec
        .objective
        .as_ref()
        .is_some_and(|objective| objective.objective_type == Some(ObjectiveType::Maximize));
    let mut rows: Vec<(&sextant_store::TrialRecord, Option<f64>)> = trials
        .iter()
        .map(|trial| (trial, objective_value(experiment, trial)))
        .collect();
    rows.sort_by(|(_, a), (_, b)| match (a, b) {
        (Some(a), Some(b)) if maximize => b.total_cmp(a),
        (Some(a), Some(b)) => a.total_cmp(b),
        (Some(_), None) => std::cmp::Ordering::Less,
        (None, Some(_)) => std::cmp::Ordering::Greater,
        (None, None) => std::cmp::Ordering::Equal,
    });
    let shown = if limit == 0 {
        rows.len()
    } else {
        limit.min(rows.len())
    };
    let name_width = rows
        .iter()
        .take(shown)
        .map(|(trial, _)| trial.name.len())
        .max()
        .unwrap_or(0)
        .max("TRIAL".len());
    let _ = writeln!(
        out,
        "{:<name_width$} {:<18} {:>14}  PARAMETERS",
        "TRIAL", "CONDITION", "OBJECTIVE"
    );
    for (trial, objective) in rows.into_iter().take(shown) {
        let parameters: Vec<ParameterAssignment> =
            serde_json::from_str(&trial.assignments).unwrap_or_default();
        let parameters = parameters
            .iter()
            .map(|pair| format!("{}={}", echo(&pair.name), echo(&pair.value)))
            .collect::<Vec<_>>()
            .join(" ");
        let objective = objective
            .map(|v| format!("{v:.6}"))
            .unwrap_or_else(|| "-".into());
        let _ = writeln!(
            out,
            "{:<name_width$} {:<18} {:>14}  {parameters}",
            trial.name, trial.condition_type, objective
        );
    }
    if shown < trials.len() {
        let _ = writeln!(
            out,
            "... {} more (sextant get trials {})",
            trials.len() - shown,
            experiment.metadata.name
        );
    }
}

/// `sextant get ...`.
pub async fn get(args: &GetArgs) -> anyhow::Result<ExitCode> {
    let store = Store::connect(&args.db).await?;
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    let stored = |record: &sextant_store::ExperimentRecord| -> anyhow::Result<Experiment> {
        let mut experiment: Experiment = serde_json::from_str(&record.spec)
            .with_context(|| format!("stored experiment {:?} is unreadable", record.name))?;
        experiment.status = serde_json::from_str(&record.status).unwrap_or_default();
        Ok(experiment)
    };
    match &args.what {
        GetWhat::Experiments => {
            let records = store.list_experiments().await?;
            let experiments = records
                .iter()
                .map(stored)
                .collect::<anyhow::Result<Vec<_>>>()?;
            match args.output {
                OutputFormat::Json => {
                    writeln!(out, "{}", serde_json::to_string_pretty(&experiments)?)?
                }
                OutputFormat::Table => {
                    writeln!(
                        out,
                        "{:<32} {:<12} {:>9} {:>9} {:>7}",
                        "NAME", "STATUS", "SUCCEEDED", "FAILED", "TRIALS"
                    )?;
                    for experiment in &experiments {
                        let status = experiment.status.clone().unwrap_or_default();
                        writeln!(
                            out,
                            "{:<32} {:<12} {:>9} {:>9} {:>7}",
                            experiment.metadata.name,
                            phase(&status),
                            status.trials_succeeded,
                            status.trials_failed,
                            status.trials
                        )?;
                    }
                }
            }
        }
        GetWhat::Experiment { name } => {
            let Some(record) = store.get_experiment(name).await? else {
                eprintln!(
                    "no experiment {} in {}",
                    echo_quoted(name),
                    redact_password(&args.db)
                );
                return Ok(ExitCode::from(2));
            };
            let experiment = stored(&record)?;
            match args.output {
                OutputFormat::Json => {
                    writeln!(out, "{}", serde_json::to_string_pretty(&experiment)?)?
                }
                OutputFormat::Table => {
                    let status = experiment.status.clone().unwrap_or_default();
                    let trials = store.list_trials(name).await?;
                    drop(out);
                    print_summary(&experiment, &status, &trials);
                }
            }
        }
        GetWhat::Trials { name } => {
            let Some(record) = store.get_experiment(name).await? else {
                eprintln!(
                    "no experiment {} in {}",
                    echo_quoted(name),
                    redact_password(&args.db)
                );
                return Ok(ExitCode::from(2));
            };
            let experiment = stored(&record)?;
            let trials = store.list_trials(name).await?;
            match args.output {
                OutputFormat::Json => {
                    let rows: Vec<serde_json::Value> = trials
                        .iter()
                        .map(|trial| {
                            serde_json::json!({
                                "name": trial.name,
                                "condition": trial.condition_type,
                                "reason": trial.reason,
                                "message": trial.message,
                                "parameterAssignments": serde_json::from_str::<serde_json::Value>(&trial.assignments).unwrap_or_default(),
                                "observation": trial.observation.as_deref().and_then(|o| serde_json::from_str::<serde_json::Value>(o).ok()),
                                "startTime": trial.start_time,
                                "completionTime": trial.completion_time,
                            })
                        })
                        .collect();
                    writeln!(out, "{}", serde_json::to_string_pretty(&rows)?)?;
                }
                OutputFormat::Table => print_trials(&mut out, &experiment, &trials, 0),
            }
        }
    }
    store.close().await;
    Ok(ExitCode::SUCCESS)
}

fn phase(status: &ExperimentStatus) -> String {
    status
        .conditions
        .iter()
        .filter_map(|condition| serde_json::to_value(condition).ok())
        .filter(|value| value.get("status").and_then(|s| s.as_str()) == Some("True"))
        .filter_map(|value| {
            value
                .get("type")
                .and_then(|t| t.as_str())
                .map(str::to_string)
        })
        .next_back()
        .unwrap_or_else(|| "Unknown".into())
}
