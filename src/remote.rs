//! The commands that talk to a `sextant server`: `submit`, `stop`, `logs` and `schedule`, and
//! `get` and `pipeline run` with `--server URL` (and `--token-file` when the server needs a
//! token). Exit codes as everywhere: 0 success, 1 failure (or a refusal), 2 invalid input.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;
use chrono::{DateTime, Utc};
use clap::{Args, Subcommand};
use sextant_controller::cli::{self, GetWhat, Shown};
use sextant_experiment::api::experiment::ExperimentConditionType;
use sextant_experiment::api::latest_true_condition;
use sextant_pipeline::cli::{ExitStatus, parse_param};
use sextant_pipeline::run_store::RunPhase;
use sextant_server::client::{Client, ClientError};
use sextant_server::{CreateRecurringRun, CreateRun, CronSchedule};

/// How often a waiting command looks at what it waits for.
const POLL: Duration = Duration::from_millis(500);

/// Where the server is.
#[derive(Debug, Clone, Args)]
pub struct ServerOptions {
    /// The server's URL, e.g. `http://127.0.0.1:8080`.
    #[arg(long, env = "SEXTANT_URL")]
    pub server: String,
    #[command(flatten)]
    pub token: TokenFile,
}

/// The server's bearer token, when it needs one.
#[derive(Debug, Clone, Args)]
pub struct TokenFile {
    /// A file holding the server's bearer token.
    #[arg(long, global = true, env = "SEXTANT_TOKEN_FILE")]
    pub token_file: Option<PathBuf>,
}

impl ServerOptions {
    fn client(&self) -> anyhow::Result<Client> {
        self.token.client(&self.server)
    }
}

impl TokenFile {
    /// A client of the server at `url`, sending the token when a file is given.
    fn client(&self, url: &str) -> anyhow::Result<Client> {
        let token = match &self.token_file {
            Some(path) => Some(
                std::fs::read_to_string(path)
                    .with_context(|| format!("cannot read --token-file {}", path.display()))?
                    .trim()
                    .to_string(),
            ),
            None => None,
        };
        Ok(Client::new(url, token))
    }
}

/// Options of `sextant submit`.
#[derive(Debug, Clone, Args)]
pub struct SubmitArgs {
    /// The Experiment file (YAML or JSON).
    pub file: PathBuf,
    /// Wait until the experiment succeeds or fails; exit 0 only if it succeeded.
    #[arg(long)]
    pub wait: bool,
    #[command(flatten)]
    pub server: ServerOptions,
}

/// Options of `sextant stop`.
#[derive(Debug, Clone, Args)]
pub struct StopArgs {
    /// The experiment.
    pub name: String,
    #[command(flatten)]
    pub server: ServerOptions,
}

/// Options of `sextant logs`.
#[derive(Debug, Clone, Args)]
pub struct LogsArgs {
    /// The trial.
    pub trial: String,
    /// Only the last this many lines.
    #[arg(long)]
    pub tail: Option<usize>,
    /// Keep printing what the trial prints until it ends.
    #[arg(long, short)]
    pub follow: bool,
    #[command(flatten)]
    pub server: ServerOptions,
}

/// Options of `sextant get`: the store's objects, or a server's with `--server`.
#[derive(Debug, Args)]
#[group(skip)]
pub struct GetArgs {
    #[command(flatten)]
    pub local: cli::GetArgs,
    /// Read from the `sextant server` at this URL instead of the store.
    #[arg(long, global = true, value_name = "URL", conflicts_with = "db")]
    pub server: Option<String>,
    #[command(flatten)]
    pub token: TokenFile,
}

/// The remote side of `sextant pipeline run`: with `--server`, the run is sent to a server.
#[derive(Debug, Clone, Args)]
pub struct RemoteRunArgs {
    /// Run on the `sextant server` at this URL instead of this machine; the run is printed as
    /// JSON.
    #[arg(
        long,
        value_name = "URL",
        conflicts_with_all = ["runs_dir", "db", "parallelism", "kill_grace_seconds"]
    )]
    pub server: Option<String>,
    /// With `--server`: wait until the run ends; exit 0 only if it succeeded.
    #[arg(long, requires = "server")]
    pub wait: bool,
    #[command(flatten)]
    pub token: TokenFile,
}

/// `sextant schedule ...`: recurring runs on a server (Kubeflow Pipelines' RecurringRun).
#[derive(Debug, Subcommand)]
pub enum ScheduleCommand {
    /// Create a recurring run: a pipeline run on a cron schedule.
    Create(ScheduleCreateArgs),
    /// List the recurring runs.
    List {
        #[command(flatten)]
        server: ServerOptions,
    },
    /// Show a recurring run with its last and next firings and its runs.
    Get(ScheduleNameArgs),
    /// Enable a recurring run: it fires from now on (firings missed while disabled are
    /// skipped).
    Enable(ScheduleNameArgs),
    /// Disable a recurring run: it fires no more until enabled; its runs go on.
    Disable(ScheduleNameArgs),
    /// Delete a recurring run; the runs it started stay.
    Delete(ScheduleNameArgs),
}

/// Options of `sextant schedule create`: the fields of `POST /api/v1/recurringruns`.
#[derive(Debug, Clone, Args)]
pub struct ScheduleCreateArgs {
    /// Its name: 1 to 200 letters, digits, `-` or `_` (its runs are `NAME-YYYYMMDDhhmmss`).
    pub name: String,
    /// The pipeline each firing runs (YAML).
    #[arg(long, value_name = "FILE")]
    pub pipeline: PathBuf,
    /// When it fires: a cron expression of five fields (minute hour day-of-month month
    /// day-of-week) or six (seconds first), read in `--time-zone`.
    #[arg(long, value_name = "EXPR")]
    pub cron: String,
    /// The IANA time zone the cron expression is read in, e.g. `Europe/Paris` (default UTC).
    #[arg(long, value_name = "ZONE")]
    pub time_zone: Option<String>,
    /// A parameter value for every run, `NAME=VALUE`; repeat for more.
    #[arg(long = "param", value_name = "NAME=VALUE", value_parser = parse_param)]
    pub params: Vec<(String, String)>,
    /// The most of its runs active at once, 1 to 10 (default 10).
    #[arg(long, value_name = "N")]
    pub max_concurrency: Option<u64>,
    /// When firings were missed, start only the latest (default: each, oldest first).
    #[arg(long)]
    pub no_catchup: bool,
    /// No firing before this time (RFC 3339, e.g. `2030-01-01T00:00:00Z`).
    #[arg(long, value_name = "TIME")]
    pub start_time: Option<DateTime<Utc>>,
    /// No firing after this time (RFC 3339).
    #[arg(long, value_name = "TIME")]
    pub end_time: Option<DateTime<Utc>>,
    /// Create it disabled: it fires once enabled.
    #[arg(long)]
    pub disabled: bool,
    #[command(flatten)]
    pub server: ServerOptions,
}

/// A recurring run, by name.
#[derive(Debug, Clone, Args)]
pub struct ScheduleNameArgs {
    /// The recurring run.
    pub name: String,
    #[command(flatten)]
    pub server: ServerOptions,
}

fn refused(error: ClientError, err: &mut dyn Write) -> anyhow::Result<ExitStatus> {
    writeln!(err, "error: {error}")?;
    Ok(if error.is_invalid_input() {
        ExitStatus::InvalidInput
    } else {
        ExitStatus::Failure
    })
}

/// Prints `value` as pretty JSON.
fn print_json(value: &impl serde::Serialize, out: &mut dyn Write) -> anyhow::Result<()> {
    writeln!(out, "{}", serde_json::to_string_pretty(value)?)?;
    Ok(())
}

/// Prints the server's answer as JSON, or reports its refusal.
fn answer(
    result: Result<impl serde::Serialize, ClientError>,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> anyhow::Result<ExitStatus> {
    match result {
        Ok(value) => {
            print_json(&value, out)?;
            Ok(ExitStatus::Success)
        }
        Err(error) => refused(error, err),
    }
}

fn read(file: &Path) -> anyhow::Result<String> {
    std::fs::read_to_string(file).with_context(|| format!("cannot read {}", file.display()))
}

/// `sextant submit FILE --server URL [--wait]`: prints the stored (or, with `--wait`, the
/// finished) Experiment as JSON.
pub async fn submit(
    args: &SubmitArgs,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> anyhow::Result<ExitStatus> {
    let spec = read(&args.file)?;
    let client = args.server.client()?;
    let mut experiment = match client.submit(spec).await {
        Ok(experiment) => experiment,
        Err(error) => return refused(error, err),
    };
    let mut status = ExitStatus::Success;
    if args.wait {
        experiment = match client.wait(&experiment.metadata.name, POLL).await {
            Ok(experiment) => experiment,
            Err(error) => return refused(error, err),
        };
        let succeeded = experiment
            .status
            .as_ref()
            .and_then(|status| latest_true_condition(&status.conditions))
            .is_some_and(|condition| {
                condition.condition_type == ExperimentConditionType::Succeeded
            });
        if !succeeded {
            status = ExitStatus::Failure;
        }
    }
    print_json(&experiment, out)?;
    Ok(status)
}

/// `sextant stop NAME --server URL`: prints the stopped Experiment as JSON.
pub async fn stop(
    args: &StopArgs,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> anyhow::Result<ExitStatus> {
    answer(args.server.client()?.stop(&args.name).await, out, err)
}

/// `sextant logs TRIAL --server URL [--tail N] [--follow]`.
pub async fn logs(
    args: &LogsArgs,
    out: &mut (dyn Write + Send),
    err: &mut dyn Write,
) -> anyhow::Result<ExitStatus> {
    match args
        .server
        .client()?
        .logs(&args.trial, args.tail, args.follow, out)
        .await
    {
        Ok(()) => Ok(ExitStatus::Success),
        Err(error) => refused(error, err),
    }
}

/// `sextant get ...`: from the store, or with `--server` from the server's API, printed by
/// the same [`Shown::render`].
pub async fn get(
    args: &GetArgs,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> anyhow::Result<ExitStatus> {
    let Some(server) = &args.server else {
        return Ok(cli::get(&args.local, out, err).await?);
    };
    let client = args.token.client(server)?;
    let shown = match read_shown(&client, &args.local.what).await {
        Ok(shown) => shown,
        Err(error) => return refused(error, err),
    };
    out.write_all(shown.render(args.local.output)?.as_bytes())?;
    Ok(ExitStatus::Success)
}

async fn read_shown(client: &Client, what: &GetWhat) -> Result<Shown, ClientError> {
    let trials = |name| async move {
        let trials = client.trials(name).await?;
        Ok::<_, ClientError>(trials.into_iter().map(Into::into).collect())
    };
    Ok(match what {
        GetWhat::Experiments => Shown::Experiments(client.experiments().await?),
        GetWhat::Experiment { name } => Shown::Experiment {
            experiment: client.experiment(name).await?,
            trials: trials(name).await?,
        },
        GetWhat::Trials { name } => Shown::Trials {
            experiment: client.experiment(name).await?,
            trials: trials(name).await?,
        },
    })
}

/// `sextant pipeline run FILE --server URL [--param NAME=VALUE]... [--wait]`: starts the run
/// on the server and prints it as JSON (with `--wait`, once it has ended: exit 0 only if it
/// succeeded).
pub async fn pipeline_run(
    local: &sextant_pipeline::cli::RunArgs,
    remote: &RemoteRunArgs,
    server: &str,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> anyhow::Result<ExitStatus> {
    let request = CreateRun {
        pipeline: serde_json::Value::String(read(&local.file)?),
        params: local.params.iter().cloned().collect(),
        run_id: local.run_id.clone(),
        cache: local.no_cache.then_some(false),
    };
    let client = remote.token.client(server)?;
    let mut run = match client.create_run(&request).await {
        Ok(run) => run,
        Err(error) => return refused(error, err),
    };
    let mut status = ExitStatus::Success;
    if remote.wait {
        run = match client.wait_run(&run.run_id, POLL).await {
            Ok(run) => run,
            Err(error) => return refused(error, err),
        };
        if run.phase != RunPhase::Succeeded {
            status = ExitStatus::Failure;
        }
    }
    print_json(&run, out)?;
    Ok(status)
}

/// `sextant schedule ...`: prints the recurring run (or, for `list`, every one) as JSON;
/// `delete` prints nothing.
pub async fn schedule(
    command: &ScheduleCommand,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> anyhow::Result<ExitStatus> {
    match command {
        ScheduleCommand::Create(args) => {
            let request = CreateRecurringRun {
                name: args.name.clone(),
                pipeline: serde_json::Value::String(read(&args.pipeline)?),
                params: args.params.iter().cloned().collect(),
                schedule: CronSchedule {
                    cron: args.cron.clone(),
                    time_zone: args.time_zone.clone(),
                    start_time: args.start_time,
                    end_time: args.end_time,
                },
                max_concurrency: args.max_concurrency,
                no_catchup: args.no_catchup,
                enabled: args.disabled.then_some(false),
            };
            let client = args.server.client()?;
            answer(client.create_recurring_run(&request).await, out, err)
        }
        ScheduleCommand::List { server } => {
            answer(server.client()?.recurring_runs().await, out, err)
        }
        ScheduleCommand::Get(args) => {
            let client = args.server.client()?;
            answer(client.recurring_run(&args.name).await, out, err)
        }
        ScheduleCommand::Enable(args) | ScheduleCommand::Disable(args) => {
            let enabled = matches!(command, ScheduleCommand::Enable(_));
            let client = args.server.client()?;
            let view = client.set_recurring_run_enabled(&args.name, enabled).await;
            answer(view, out, err)
        }
        ScheduleCommand::Delete(args) => {
            match args.server.client()?.delete_recurring_run(&args.name).await {
                Ok(()) => Ok(ExitStatus::Success),
                Err(error) => refused(error, err),
            }
        }
    }
}
