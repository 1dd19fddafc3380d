//! `sextant`: the command-line front of the Sextant tuning service.
//!
//! This binary only parses arguments, sets up logging and the runtime, and calls into the
//! library crates; each subcommand lives in its own module.

mod cluster;
mod experiment_cli;
mod health;
mod serve;
mod signal;

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use tracing_subscriber::EnvFilter;

/// Memory a finished request freed goes back to the system: under glibc's allocator, a server
/// that once held eight maximum-size reports at the same time kept their pages for good.
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// The embedded default store: a SQLite file in the working directory, created on first use.
pub const DEFAULT_DB_URL: &str = "sqlite://sextant.db";

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
    Run(experiment_cli::RunArgs),
    /// Check Experiment files; every problem is listed by field path.
    Validate(experiment_cli::ValidateArgs),
    /// Show experiments and trials from the store.
    Get(experiment_cli::GetArgs),
    /// Serve Katib's gRPC API (Suggestion, DBManager, health) on one port.
    Serve(serve::ServeArgs),
    /// Run a training command and push the metrics it prints to a DBManager.
    Collect(sextant_metrics::CollectArgs),
    /// Print the Experiment and Trial CustomResourceDefinitions (YAML).
    Crd(cluster::CrdArgs),
    /// Reconcile Experiment and Trial custom resources in a Kubernetes cluster.
    Controller(cluster::ControllerArgs),
    /// Run, inspect and compile pipelines.
    #[command(subcommand)]
    Pipeline(sextant_pipeline::cli::PipelineCommand),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(cli.log_format);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("error: cannot start the async runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    let result =
        runtime.block_on(async {
            match cli.command {
                Command::Run(args) => experiment_cli::run(&args, signal::shutdown()?).await,
                Command::Validate(args) => Ok(experiment_cli::validate(&args)),
                Command::Get(args) => experiment_cli::get(&args).await,
                Command::Serve(args) => serve::run(args, signal::shutdown()?)
                    .await
                    .map(|()| ExitCode::SUCCESS),
                Command::Crd(args) => cluster::crd(&args).map(|()| ExitCode::SUCCESS),
                Command::Controller(args) => cluster::controller(args, signal::shutdown()?)
                    .await
                    .map(|()| ExitCode::SUCCESS),
                Command::Collect(args) => {
                    let code = sextant_metrics::run_collect(args.into()).await?;
                    Ok(ExitCode::from(u8::try_from(code).unwrap_or(1)))
                }
                Command::Pipeline(command) => {
                    let mut stdout = std::io::stdout();
                    // `tune` steps run their trials where `sextant pipeline run` was started.
                    let working_dir = std::env::current_dir()?;
                    let tune_kind = move |store: &sextant_store::Store| {
                        let kind = sextant_controller::local::tune_step::TuneStepKind::new(
                            store.clone(),
                            working_dir.clone(),
                        );
                        vec![std::sync::Arc::new(kind)
                            as std::sync::Arc<dyn sextant_pipeline::StepKind>]
                    };
                    match sextant_pipeline::cli::execute_with_kinds(
                        &command,
                        &tune_kind,
                        signal::shutdown()?,
                        &mut stdout,
                    )
                    .await
                    {
                        Ok(code) => Ok(ExitCode::from(code)),
                        Err(error) => {
                            eprintln!("error: {error}");
                            Ok(ExitCode::from(error.exit_code()))
                        }
                    }
                }
            }
        });
    match result {
        Ok(code) => code,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
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
