//! The `sextant pipeline ...` commands: clap arguments and the async functions behind them.
//!
//! The binary only parses [`PipelineCommand`] and calls [`execute`] (or [`execute_with_kinds`], to
//! register step kinds of crates above this one, such as the controller's `tune`, and their Argo
//! forms for `compile`) with a shutdown future (Ctrl-C) and a writer for progress and results;
//! everything else lives here so it is tested as a library.
//! Run directories (the steps' working directories and logs) are created under `--runs-dir`
//! (default `.sextant/pipeline-runs`); runs, step states and the cache index are recorded in
//! Sextant's database (`--db URL`, default a SQLite file `runs.db` in the runs directory), so
//! `get` and `resume` find them after the fact.

use std::collections::BTreeMap;
use std::future::Future;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use sextant_store::Store;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::argo::{ArgoCompileError, ArgoForms, compile_argo_with};
use crate::executor::{
    Executor, ExecutorConfig, ExecutorError, RunEvent, RunReport, RunRequest, instance_name,
    new_run_id,
};
use crate::kind::{StepKind, StepKindRegistry};
use crate::run_store::{RunPhase, RunStore, RunStoreError, StoredRun};
use crate::spec::{Pipeline, SpecError};

/// `sextant pipeline <command>`.
#[derive(Debug, Clone, clap::Subcommand)]
pub enum PipelineCommand {
    /// Run a pipeline locally, printing progress.
    Run(RunArgs),
    /// Continue an interrupted run without redoing finished steps.
    Resume(ResumeArgs),
    /// Show a run and its step states.
    Get(GetArgs),
    /// Compile a pipeline for another engine.
    Compile(CompileArgs),
}

/// `sextant pipeline run FILE [--param k=v]...`
#[derive(Debug, Clone, clap::Args)]
pub struct RunArgs {
    /// The pipeline spec (YAML).
    pub file: PathBuf,
    /// A parameter value, `NAME=VALUE`; repeat for more.
    #[arg(long = "param", value_name = "NAME=VALUE", value_parser = parse_param)]
    pub params: Vec<(String, String)>,
    /// Where runs are kept.
    #[command(flatten)]
    pub store: StoreArgs,
    /// The run's id (default: the pipeline's name and the time).
    #[arg(long)]
    pub run_id: Option<String>,
    /// Do not reuse cached step results.
    #[arg(long)]
    pub no_cache: bool,
    /// How to run steps.
    #[command(flatten)]
    pub execution: ExecutionArgs,
}

/// `sextant pipeline resume RUN`
#[derive(Debug, Clone, clap::Args)]
pub struct ResumeArgs {
    /// The run's id.
    pub run_id: String,
    /// Where runs are kept.
    #[command(flatten)]
    pub store: StoreArgs,
    /// How to run steps.
    #[command(flatten)]
    pub execution: ExecutionArgs,
}

/// Where runs are kept: shared by `run`, `resume` and `get`.
#[derive(Debug, Clone, clap::Args)]
pub struct StoreArgs {
    /// Where run directories (the steps' working directories and logs) are created.
    #[arg(
        long,
        env = "SEXTANT_PIPELINE_RUNS_DIR",
        default_value = ".sextant/pipeline-runs"
    )]
    pub runs_dir: PathBuf,
    /// The database runs are recorded in: sqlite://PATH, postgres://... or mysql://...
    /// (default: sqlite://RUNS_DIR/runs.db).
    #[arg(long, value_name = "URL")]
    pub db: Option<String>,
}

/// Settings shared by `run` and `resume`.
#[derive(Debug, Clone, clap::Args)]
pub struct ExecutionArgs {
    /// The most steps running at once (0: one per core).
    #[arg(long, default_value_t = 0)]
    pub parallelism: usize,
    /// Seconds a stopped step gets between SIGTERM and SIGKILL.
    #[arg(long, default_value_t = 5.0)]
    pub kill_grace_seconds: f64,
}

/// `sextant pipeline get RUN`
#[derive(Debug, Clone, clap::Args)]
pub struct GetArgs {
    /// The run's id.
    pub run_id: String,
    /// Where runs are kept.
    #[command(flatten)]
    pub store: StoreArgs,
    /// Print the stored run as JSON.
    #[arg(long)]
    pub json: bool,
}

/// `sextant pipeline compile FILE --target argo`
#[derive(Debug, Clone, clap::Args)]
pub struct CompileArgs {
    /// The pipeline spec (YAML).
    pub file: PathBuf,
    /// The engine to compile for.
    #[arg(long, value_enum, default_value_t = CompileTarget::Argo)]
    pub target: CompileTarget,
    /// Write here instead of standard output.
    #[arg(long, short)]
    pub output: Option<PathBuf>,
}

/// Engines a pipeline compiles to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum CompileTarget {
    /// An Argo Workflow (`argoproj.io/v1alpha1`), as YAML.
    Argo,
}

/// Why a pipeline command failed (a run that fails is not an error: see [`execute`]).
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// The spec file cannot be read.
    #[error("cannot read {}: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The operating system's reason.
        #[source]
        source: std::io::Error,
    },
    /// The spec is invalid.
    #[error("{}: {source}", path.display())]
    Spec {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        #[source]
        source: SpecError,
    },
    /// The pipeline cannot be compiled.
    #[error("{}: {source}", path.display())]
    Compile {
        /// The file.
        path: PathBuf,
        /// What argo cannot express.
        #[source]
        source: ArgoCompileError,
    },
    /// The run could not be carried out.
    #[error(transparent)]
    Executor(#[from] ExecutorError),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] RunStoreError),
    /// The database cannot be opened.
    #[error("cannot open the run database: {0}")]
    Database(#[source] sextant_store::Error),
    /// The run asked for does not exist.
    #[error("no run `{run_id}` in {database}")]
    RunNotFound {
        /// The run.
        run_id: String,
        /// The database looked in, its URL without password.
        database: String,
    },
    /// Writing the output failed.
    #[error("cannot write output: {0}")]
    Output(#[source] std::io::Error),
    /// An option has an unusable value.
    #[error("{0}")]
    Usage(String),
}

impl CliError {
    /// How the process ends after this error: as for invalid input, as `sextant run` does.
    pub fn exit_status(&self) -> ExitStatus {
        ExitStatus::InvalidInput
    }
}

/// How a `sextant` command ends, the same for every command: the binary turns it into the
/// process's exit code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExitStatus {
    /// The command did what was asked, and the run or experiment it drove succeeded (0).
    Success,
    /// The run or experiment failed, was cancelled or was interrupted (1).
    Failure,
    /// The input was invalid or named something that is not there; nothing was changed (2).
    InvalidInput,
}

impl ExitStatus {
    /// The process exit code.
    pub fn code(self) -> u8 {
        match self {
            ExitStatus::Success => 0,
            ExitStatus::Failure => 1,
            ExitStatus::InvalidInput => 2,
        }
    }
}

/// Builds step kinds beyond the built-in ones for the executor of a command, from the store the
/// command opened (the binary passes the experiment crate's `tune` kind this way, as this crate
/// cannot depend on it).
pub type ExtraKinds = dyn Fn(&Store) -> Vec<Arc<dyn StepKind>> + Send + Sync;

/// Runs one pipeline command, writing progress and results to `out`.
///
/// Returns [`ExitStatus::Success`] when the command (and the run, for `run`/`resume`)
/// succeeded, [`ExitStatus::Failure`] when the run failed or was cancelled.
pub async fn execute(
    command: &PipelineCommand,
    shutdown: impl Future<Output = ()> + Send,
    out: &mut (dyn Write + Send),
) -> Result<ExitStatus, CliError> {
    execute_with_kinds(
        command,
        &|_: &Store| Vec::new(),
        &ArgoForms::default(),
        shutdown,
        out,
    )
    .await
}

/// [`execute`], with the step kinds `extra_kinds` builds registered beside the built-in ones,
/// and `argo_forms` for `compile`.
pub async fn execute_with_kinds(
    command: &PipelineCommand,
    extra_kinds: &ExtraKinds,
    argo_forms: &ArgoForms,
    shutdown: impl Future<Output = ()> + Send,
    out: &mut (dyn Write + Send),
) -> Result<ExitStatus, CliError> {
    match command {
        PipelineCommand::Run(args) => {
            let report = run_with_kinds(args, extra_kinds, shutdown, |event| {
                // Progress lines are best effort: a closed terminal must not stop the run.
                let _ = writeln!(out, "{event}");
            })
            .await?;
            Ok(report_exit_status(&report))
        }
        PipelineCommand::Resume(args) => {
            let report = resume_with_kinds(args, extra_kinds, shutdown, |event| {
                let _ = writeln!(out, "{event}");
            })
            .await?;
            Ok(report_exit_status(&report))
        }
        PipelineCommand::Get(args) => {
            let text = get_command(args).await?;
            out.write_all(text.as_bytes()).map_err(CliError::Output)?;
            Ok(ExitStatus::Success)
        }
        PipelineCommand::Compile(args) => {
            let text = compile_command(args, argo_forms)?;
            match &args.output {
                Some(path) => std::fs::write(path, text).map_err(CliError::Output)?,
                None => out.write_all(text.as_bytes()).map_err(CliError::Output)?,
            }
            Ok(ExitStatus::Success)
        }
    }
}

/// `sextant pipeline run`: runs the pipeline, calling `progress` for every event.
pub async fn run_command(
    args: &RunArgs,
    shutdown: impl Future<Output = ()> + Send,
    progress: impl FnMut(&RunEvent) + Send,
) -> Result<RunReport, CliError> {
    run_with_kinds(args, &|_: &Store| Vec::new(), shutdown, progress).await
}

async fn run_with_kinds(
    args: &RunArgs,
    extra_kinds: &ExtraKinds,
    shutdown: impl Future<Output = ()> + Send,
    progress: impl FnMut(&RunEvent) + Send,
) -> Result<RunReport, CliError> {
    let pipeline = load_pipeline(&args.file)?;
    let executor = open_executor(&args.store, &args.execution, extra_kinds).await?;
    let run_id = args
        .run_id
        .clone()
        .unwrap_or_else(|| new_run_id(&pipeline.name));
    let request = RunRequest {
        run_dir: args.store.runs_dir.join(&run_id),
        run_id,
        params: args.params.iter().cloned().collect::<BTreeMap<_, _>>(),
        cache: !args.no_cache,
        trial: None,
    };
    with_progress(shutdown, progress, |events, token| async move {
        executor.run(&pipeline, request, Some(events), token).await
    })
    .await
}

/// `sextant pipeline resume`: continues a stored run, calling `progress` for every event.
pub async fn resume_command(
    args: &ResumeArgs,
    shutdown: impl Future<Output = ()> + Send,
    progress: impl FnMut(&RunEvent) + Send,
) -> Result<RunReport, CliError> {
    resume_with_kinds(args, &|_: &Store| Vec::new(), shutdown, progress).await
}

async fn resume_with_kinds(
    args: &ResumeArgs,
    extra_kinds: &ExtraKinds,
    shutdown: impl Future<Output = ()> + Send,
    progress: impl FnMut(&RunEvent) + Send,
) -> Result<RunReport, CliError> {
    let executor = open_executor(&args.store, &args.execution, extra_kinds).await?;
    let run_id = args.run_id.clone();
    with_progress(shutdown, progress, |events, token| async move {
        executor.resume(&run_id, Some(events), token).await
    })
    .await
}

/// `sextant pipeline get`: the run and its step states, as a table or JSON.
pub async fn get_command(args: &GetArgs) -> Result<String, CliError> {
    let store = args.store.open().await?;
    let stored = store.load_run(&args.run_id).await?;
    store.close().await;
    let stored = stored.ok_or_else(|| CliError::RunNotFound {
        run_id: args.run_id.clone(),
        database: sextant_store::database_url::redact_password(&args.store.database_url()),
    })?;
    if args.json {
        // Serializing plain records to JSON cannot fail.
        let mut text = serde_json::to_string_pretty(&stored).unwrap_or_default();
        text.push('\n');
        return Ok(text);
    }
    Ok(render_run(&stored))
}

/// `sextant pipeline compile`: the compiled pipeline as YAML, plug-in steps through the kinds'
/// `argo_forms`.
pub fn compile_command(args: &CompileArgs, argo_forms: &ArgoForms) -> Result<String, CliError> {
    let pipeline = load_pipeline(&args.file)?;
    match args.target {
        CompileTarget::Argo => {
            let workflow =
                compile_argo_with(&pipeline, argo_forms).map_err(|source| CliError::Compile {
                    path: args.file.clone(),
                    source,
                })?;
            // A JSON value always has a YAML form.
            Ok(serde_yaml::to_string(&workflow).unwrap_or_default())
        }
    }
}

/// Reads and validates a pipeline file.
pub fn load_pipeline(path: &Path) -> Result<Pipeline, CliError> {
    let text = std::fs::read_to_string(path).map_err(|source| CliError::Read {
        path: path.to_owned(),
        source,
    })?;
    Pipeline::from_yaml(&text).map_err(|source| CliError::Spec {
        path: path.to_owned(),
        source,
    })
}

/// Renders a stored run as a human-readable table.
pub fn render_run(stored: &StoredRun) -> String {
    let run = &stored.run;
    let mut text = format!(
        "run {} (pipeline {}): {}\n  directory: {}\n  created: {}\n",
        run.run_id,
        run.pipeline_name,
        run.phase,
        run.run_dir.display(),
        run.created_at.to_rfc3339()
    );
    if let Some(finished_at) = run.finished_at {
        text.push_str(&format!("  finished: {}\n", finished_at.to_rfc3339()));
    }
    if let Some(message) = &run.message {
        text.push_str(&format!("  message: {message}\n"));
    }
    let rows: Vec<(String, String, String, String)> = stored
        .steps
        .iter()
        .map(|step| {
            let duration = match (step.started_at, step.finished_at) {
                (Some(started), Some(finished)) => {
                    format!(
                        "{:.2}s",
                        (finished - started).num_milliseconds() as f64 / 1000.0
                    )
                }
                _ => String::new(),
            };
            (
                instance_name(&step.step, step.item_index),
                step.phase.to_string(),
                format!("{} {duration}", step.attempt),
                step.message.clone().unwrap_or_default(),
            )
        })
        .collect();
    let width = rows.iter().map(|row| row.0.len()).max().unwrap_or(4).max(4);
    text.push_str(&format!(
        "{:width$}  {:9}  {:14}  MESSAGE\n",
        "STEP", "PHASE", "ATTEMPTS TIME"
    ));
    for (name, phase, attempts, message) in rows {
        text.push_str(&format!(
            "{name:width$}  {phase:9}  {attempts:14}  {message}\n"
        ));
    }
    text
}

fn report_exit_status(report: &RunReport) -> ExitStatus {
    if report.phase == RunPhase::Succeeded {
        ExitStatus::Success
    } else {
        ExitStatus::Failure
    }
}

// === impl StoreArgs ===

impl StoreArgs {
    /// The database URL: `--db`, or the SQLite file `runs.db` in the runs directory.
    pub fn database_url(&self) -> String {
        match &self.db {
            Some(url) => url.clone(),
            None => format!("sqlite://{}", self.runs_dir.join("runs.db").display()),
        }
    }

    /// Connects to (and migrates) the run database.
    pub async fn open(&self) -> Result<Store, CliError> {
        Store::connect(&self.database_url())
            .await
            .map_err(CliError::Database)
    }
}

async fn open_executor(
    store: &StoreArgs,
    execution: &ExecutionArgs,
    extra_kinds: &ExtraKinds,
) -> Result<Executor, CliError> {
    if !execution.kill_grace_seconds.is_finite() || execution.kill_grace_seconds < 0.0 {
        return Err(CliError::Usage(format!(
            "--kill-grace-seconds must be a non-negative number, got {}",
            execution.kill_grace_seconds
        )));
    }
    let mut config = ExecutorConfig {
        kill_grace: Duration::from_secs_f64(execution.kill_grace_seconds),
        ..ExecutorConfig::default()
    };
    if execution.parallelism > 0 {
        config.parallelism = execution.parallelism;
    }
    let store = store.open().await?;
    let mut kinds = StepKindRegistry::default();
    for kind in extra_kinds(&store) {
        kinds.register(kind);
    }
    Ok(Executor::new(Arc::new(store), kinds, config))
}

/// Drives `start` while forwarding its events to `progress` and turning `shutdown` into
/// cancellation.
async fn with_progress<Start, Running>(
    shutdown: impl Future<Output = ()> + Send,
    mut progress: impl FnMut(&RunEvent) + Send,
    start: Start,
) -> Result<RunReport, CliError>
where
    Start: FnOnce(mpsc::UnboundedSender<RunEvent>, CancellationToken) -> Running,
    Running: Future<Output = Result<RunReport, ExecutorError>>,
{
    let (sender, mut receiver) = mpsc::unbounded_channel();
    let token = CancellationToken::new();
    let running = start(sender, token.clone());
    tokio::pin!(running);
    tokio::pin!(shutdown);
    let mut shutdown_seen = false;
    let mut events_open = true;
    loop {
        tokio::select! {
            biased;
            event = receiver.recv(), if events_open => match event {
                Some(event) => progress(&event),
                None => events_open = false,
            },
            () = &mut shutdown, if !shutdown_seen => {
                shutdown_seen = true;
                token.cancel();
            }
            result = &mut running => {
                while let Ok(event) = receiver.try_recv() {
                    progress(&event);
                }
                return Ok(result?);
            }
        }
    }
}

/// Parses a `--param NAME=VALUE` (split at the first `=`; the name must not be empty).
pub fn parse_param(text: &str) -> Result<(String, String), String> {
    match text.split_once('=') {
        Some((name, value)) if !name.is_empty() => Ok((name.to_owned(), value.to_owned())),
        _ => Err(format!("expected NAME=VALUE, got `{text}`")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn params_split_at_the_first_equals_sign() {
        assert_eq!(parse_param("a=b=c"), Ok(("a".into(), "b=c".into())));
        assert_eq!(parse_param("a="), Ok(("a".into(), String::new())));
        assert!(parse_param("=x").is_err());
        assert!(parse_param("x").is_err());
    }

    #[test]
    fn the_command_parses_as_a_clap_subcommand() {
        use clap::Parser;
        #[derive(clap::Parser)]
        struct Cli {
            #[command(subcommand)]
            command: PipelineCommand,
        }
        let cli = Cli::try_parse_from([
            "sextant",
            "run",
            "p.yaml",
            "--param",
            "a=1",
            "--param",
            "b=x y",
            "--no-cache",
        ])
        .unwrap();
        let PipelineCommand::Run(args) = cli.command else {
            panic!("expected run");
        };
        assert_eq!(
            args.params,
            vec![("a".into(), "1".into()), ("b".into(), "x y".into())]
        );
        assert!(args.no_cache);
        let cli =
            Cli::try_parse_from(["sextant", "compile", "p.yaml", "--target", "argo"]).unwrap();
        assert!(matches!(
            cli.command,
            PipelineCommand::Compile(CompileArgs {
                target: CompileTarget::Argo,
                ..
            })
        ));
    }
}
