//! `sextant`: the command-line front of the Sextant tuning service.
//!
//! This binary only parses arguments, sets up logging and the runtime, and calls into the
//! library crates (`sextant_controller::cli` for the experiment commands,
//! `sextant_pipeline::cli` for pipelines); the server commands' wiring lives in its own
//! modules. Every command ends with a `sextant_pipeline::cli::ExitStatus`, turned into the exit
//! code in one place: 0 success, 1 failure or interruption, 2 invalid input (`collect` passes
//! its training command's code through).

mod agent;
mod cluster;
mod health;
mod pipeline;
mod remote;
mod serve;
mod server;
mod signal;

use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};
use sextant_controller::cli;
use sextant_pipeline::cli::ExitStatus;
use tracing_subscriber::EnvFilter;

/// Memory a finished request freed goes back to the system: under glibc's allocator, a server
/// that once held eight maximum-size reports at the same time kept their pages for good.
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// Hyperparameter tuning with Katib's API, on a laptop or a cluster.
#[derive(Debug, Parser)]
#[command(name = "sextant", version, about)]
struct Cli {
    /// Log format on stderr.
    #[arg(
        long,
        global = true,
        value_enum,
        default_value = "text",
        env = "SEXTANT_LOG_FORMAT"
    )]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run an experiment to the end on this machine (trials as local processes).
    Run(cli::RunArgs),
    /// Check Experiment files; every problem is listed by field path.
    Validate(cli::ValidateArgs),
    /// Show experiments and trials from the store, or from a `sextant server` (`--server URL`).
    Get(remote::GetArgs),
    /// Serve Katib's gRPC API (Suggestion, DBManager, health) on one port.
    Serve(serve::ServeArgs),
    /// Serve the HTTP API (experiments, trials, studies, events) and the gRPC services on one
    /// port, running submitted experiments on this machine.
    Server(server::ServerArgs),
    /// Submit an experiment to a `sextant server` (`--server URL`).
    Submit(remote::SubmitArgs),
    /// Stop an experiment on a `sextant server`.
    Stop(remote::StopArgs),
    /// Print a trial's output from a `sextant server`, optionally following it.
    Logs(remote::LogsArgs),
    /// Run pipelines on a cron schedule on a `sextant server` (recurring runs).
    #[command(subcommand)]
    Schedule(remote::ScheduleCommand),
    /// Run a training command and push the metrics it prints to a DBManager.
    Collect(sextant_metrics::CollectArgs),
    /// Print the Experiment and Trial CustomResourceDefinitions (YAML).
    Crd(cluster::CrdArgs),
    /// Reconcile Experiment and Trial custom resources in a Kubernetes cluster.
    Controller(cluster::ControllerArgs),
    /// Mirror a cluster's pipeline runs, experiments and trials into the store `sextant
    /// server` reads.
    PersistenceAgent(agent::PersistenceAgentArgs),
    /// Run, inspect and compile pipelines.
    #[command(subcommand)]
    Pipeline(pipeline::PipelineCommand),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(cli.log_format);
    match run(cli) {
        Ok(code) => code,
        Err(error) => {
            eprintln!("error: {error:#}");
            exit(ExitStatus::Failure)
        }
    }
}

/// Runs the command on a new runtime; an error is one the command did not report itself.
fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(async {
        let (mut stdout, mut stderr) = (std::io::stdout(), std::io::stderr());
        let status = match cli.command {
            Command::Run(args) => {
                cli::run(&args, signal::shutdown()?, &mut stdout, &mut stderr).await?
            }
            Command::Validate(args) => cli::validate(&args, &mut stdout, &mut stderr),
            Command::Get(args) => remote::get(&args, &mut stdout, &mut stderr).await?,
            Command::Serve(args) => {
                serve::run(args, signal::shutdown()?).await?;
                ExitStatus::Success
            }
            Command::Server(args) => {
                server::run(args, signal::shutdown()?).await?;
                ExitStatus::Success
            }
            Command::Submit(args) => remote::submit(&args, &mut stdout, &mut stderr).await?,
            Command::Stop(args) => remote::stop(&args, &mut stdout, &mut stderr).await?,
            Command::Logs(args) => remote::logs(&args, &mut stdout, &mut stderr).await?,
            Command::Schedule(command) => {
                remote::schedule(&command, &mut stdout, &mut stderr).await?
            }
            Command::Crd(args) => {
                cluster::crd(&args)?;
                ExitStatus::Success
            }
            Command::Controller(args) => {
                cluster::controller(args, signal::shutdown()?).await?;
                ExitStatus::Success
            }
            Command::PersistenceAgent(args) => {
                agent::persistence_agent(args, signal::shutdown()?).await?;
                ExitStatus::Success
            }
            Command::Collect(args) => {
                // The training command's own exit code passes through.
                let code = sextant_metrics::run_collect(args.into()).await?;
                return Ok(ExitCode::from(u8::try_from(code).unwrap_or(1)));
            }
            Command::Pipeline(command) => pipeline::run(command, &mut stdout, &mut stderr).await?,
        };
        Ok(exit(status))
    })
}

fn exit(status: ExitStatus) -> ExitCode {
    ExitCode::from(status.code())
}

fn init_logging(format: LogFormat) {
    let filter = EnvFilter::try_from_env("SEXTANT_LOG").unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}
