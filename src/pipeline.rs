//! `sextant pipeline ...`: the pipeline crate's commands, run through the controller crate
//! (which adds the `tune` step kind), with `run --server URL` sending the run to a
//! `sextant server` instead of running it here.

use std::io::Write;

use clap::{Args, Subcommand};
use sextant_controller::cli;
use sextant_controller::kube::ApiGroup;
use sextant_pipeline::cli::{self as pipeline_cli, ExitStatus};

use crate::remote::{self, RemoteRunArgs};
use crate::signal;

/// `sextant pipeline <command>`: the pipeline crate's [`pipeline_cli::PipelineCommand`], its
/// `run` with the remote options added.
#[derive(Debug, Subcommand)]
pub enum PipelineCommand {
    /// Run a pipeline locally, printing progress, or on a `sextant server` with `--server`.
    Run(RunArgs),
    /// Continue an interrupted run without redoing finished steps.
    Resume(pipeline_cli::ResumeArgs),
    /// Show a run and its step states.
    Get(pipeline_cli::GetArgs),
    /// Compile a pipeline for another engine.
    Compile(CompileArgs),
}

/// Options of `sextant pipeline compile`.
#[derive(Debug, Args)]
#[group(skip)]
pub struct CompileArgs {
    #[command(flatten)]
    pub compile: pipeline_cli::CompileArgs,
    /// The API group of the Experiments a `tune` step creates: sextant.dev, or kubeflow.org
    /// for a cluster whose controller reconciles Katib's kinds.
    #[arg(long, default_value = "sextant.dev")]
    pub api_group: ApiGroup,
}

/// Options of `sextant pipeline run`.
#[derive(Debug, Args)]
#[group(skip)]
pub struct RunArgs {
    #[command(flatten)]
    pub local: pipeline_cli::RunArgs,
    #[command(flatten)]
    pub remote: RemoteRunArgs,
}

/// Runs the command: on the server `--server` names, or on this machine.
pub async fn run(
    command: PipelineCommand,
    out: &mut (dyn Write + Send),
    err: &mut dyn Write,
) -> anyhow::Result<ExitStatus> {
    let mut api_group = ApiGroup::Sextant;
    let command = match command {
        PipelineCommand::Run(RunArgs { local, remote }) => match &remote.server {
            Some(server) => {
                return remote::pipeline_run(&local, &remote, server, out, err).await;
            }
            None => pipeline_cli::PipelineCommand::Run(local),
        },
        PipelineCommand::Resume(args) => pipeline_cli::PipelineCommand::Resume(args),
        PipelineCommand::Get(args) => pipeline_cli::PipelineCommand::Get(args),
        PipelineCommand::Compile(CompileArgs {
            compile,
            api_group: group,
        }) => {
            api_group = group;
            pipeline_cli::PipelineCommand::Compile(compile)
        }
    };
    let working_dir = std::env::current_dir()?;
    match cli::pipeline(&command, api_group, working_dir, signal::shutdown()?, out).await {
        Ok(status) => Ok(status),
        Err(error) => {
            writeln!(err, "error: {error}")?;
            Ok(error.exit_status())
        }
    }
}
