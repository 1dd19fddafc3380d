//! The commands that talk to a `sextant server`: `submit`, `stop` and `logs`, with
//! `--server URL` (and `--token-file` when the server needs a token). Exit codes as
//! everywhere: 0 success, 1 failure (or a refusal), 2 invalid input.

use std::io::Write;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use clap::Args;
use sextant_pipeline::cli::ExitStatus;
use sextant_server::client::{Client, ClientError};

/// Where the server is.
#[derive(Debug, Clone, Args)]
pub struct ServerOptions {
    /// The server's URL, e.g. `http://127.0.0.1:8080`.
    #[arg(long, env = "SEXTANT_URL")]
    pub server: String,
    /// A file holding the server's bearer token.
    #[arg(long, env = "SEXTANT_TOKEN_FILE")]
    pub token_file: Option<PathBuf>,
}

impl ServerOptions {
    fn client(&self) -> anyhow::Result<Client> {
        let token = match &self.token_file {
            Some(path) => Some(
                std::fs::read_to_string(path)
                    .with_context(|| format!("cannot read --token-file {}", path.display()))?
                    .trim()
                    .to_string(),
            ),
            None => None,
        };
        Ok(Client::new(&self.server, token))
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

fn refused(error: ClientError, err: &mut dyn Write) -> anyhow::Result<ExitStatus> {
    writeln!(err, "error: {error}")?;
    Ok(if error.is_invalid_input() {
        ExitStatus::InvalidInput
    } else {
        ExitStatus::Failure
    })
}

/// `sextant submit FILE --server URL [--wait]`: prints the stored (or, with `--wait`, the
/// finished) Experiment as JSON.
pub async fn submit(
    args: &SubmitArgs,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> anyhow::Result<ExitStatus> {
    let spec = std::fs::read_to_string(&args.file)
        .with_context(|| format!("cannot read {}", args.file.display()))?;
    let client = args.server.client()?;
    let mut experiment = match client.submit(spec).await {
        Ok(experiment) => experiment,
        Err(error) => return refused(error, err),
    };
    let mut status = ExitStatus::Success;
    if args.wait {
        let name = experiment["metadata"]["name"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        experiment = match client.wait(&name, Duration::from_millis(500)).await {
            Ok(experiment) => experiment,
            Err(error) => return refused(error, err),
        };
        let succeeded = experiment["status"]["conditions"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|condition| condition["type"] == "Succeeded" && condition["status"] == "True");
        if !succeeded {
            status = ExitStatus::Failure;
        }
    }
    writeln!(out, "{}", serde_json::to_string_pretty(&experiment)?)?;
    Ok(status)
}

/// `sextant stop NAME --server URL`: prints the stopped Experiment as JSON.
pub async fn stop(
    args: &StopArgs,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> anyhow::Result<ExitStatus> {
    match args.server.client()?.stop(&args.name).await {
        Ok(experiment) => {
            writeln!(out, "{}", serde_json::to_string_pretty(&experiment)?)?;
            Ok(ExitStatus::Success)
        }
        Err(error) => refused(error, err),
    }
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
