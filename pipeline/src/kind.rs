//! Step kinds: what running one step means, behind a trait so other crates can add kinds.
//!
//! The executor resolves a step's references, prepares its working directory and then hands a
//! [`StepContext`] to the [`StepKind`] registered under the step's `kind`. The built-in kind,
//! [`CommandStepKind`] (`kind: command`, the default), runs the argv as a process in its own
//! process group. Crates above this one (the experiment crate's `tune` step) implement
//! [`StepKind`] and register it in a [`StepKindRegistry`] passed to the executor, so this crate
//! never depends on them.
//!
//! A plug-in kind reads its settings from `ctx.kind_spec` (the step's `spec` mapping with
//! references already substituted), works in `ctx.work_dir`, and returns the output parameters
//! it computed in [`StepOutputs`]; declared outputs it leaves out are read from files in the
//! working directory, exactly as for a command step. Retries, caching and recording are the
//! executor's: a kind runs one attempt, within the timeout and cancellation it is given.

use std::collections::BTreeMap;
use std::fs::OpenOptions;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use nix::sys::signal::Signal;
use tokio_util::sync::CancellationToken;

use crate::spec::COMMAND_KIND;

/// Runs steps of one kind.
///
/// A kind must end promptly when `ctx.cancellation` fires (returning [`StepFailure::Cancelled`])
/// and when `ctx.timeout` passes (returning [`StepFailure::TimedOut`]), and must leave no process
/// or task of its own behind either way.
pub trait StepKind: Send + Sync {
    /// The name steps use in `kind:`.
    fn kind(&self) -> &str;

    /// Runs one attempt of one step instance. Declared outputs the kind does not return are read
    /// by the executor from the step's working directory afterwards.
    fn run(&self, ctx: StepContext) -> BoxFuture<'_, Result<StepOutputs, StepFailure>>;
}

/// Everything a kind needs to run one attempt, with references already substituted.
#[derive(Debug, Clone)]
pub struct StepContext {
    /// The run this attempt belongs to.
    pub run_id: String,
    /// The step's name.
    pub step: String,
    /// The `withItems` index, for fanned-out steps.
    pub item_index: Option<usize>,
    /// 1 for the first attempt.
    pub attempt: u32,
    /// The step instance's own directory: `<run_dir>/<step>[/<item-index>]`, absolute, existing.
    pub work_dir: PathBuf,
    /// Where the step's standard output goes (appended across attempts).
    pub stdout_path: PathBuf,
    /// Where the step's standard error goes (appended across attempts).
    pub stderr_path: PathBuf,
    /// The substituted argv (empty for kinds that take none).
    pub argv: Vec<String>,
    /// The substituted extra environment.
    pub env: Vec<(String, String)>,
    /// The substituted free-form `spec` of plug-in kinds.
    pub kind_spec: Option<serde_json::Value>,
    /// The longest this attempt may run.
    pub timeout: Option<Duration>,
    /// Fires when the run is being stopped (Ctrl-C).
    pub cancellation: CancellationToken,
    /// How long to wait after a polite stop (SIGTERM) before forcing (SIGKILL).
    pub kill_grace: Duration,
}

/// What a step produced.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct StepOutputs {
    /// Output parameter values by name.
    #[serde(default)]
    pub params: BTreeMap<String, String>,
    /// Output artifacts by name, as absolute paths.
    #[serde(default)]
    pub artifacts: BTreeMap<String, PathBuf>,
}

/// Why one attempt of a step failed.
#[derive(Debug, thiserror::Error)]
pub enum StepFailure {
    /// The argv is empty.
    #[error("the command is empty")]
    EmptyCommand,
    /// The program could not be started.
    #[error("cannot start `{program}`: {source}")]
    Spawn {
        /// The program (the first argv item).
        program: String,
        /// The operating system's reason.
        #[source]
        source: std::io::Error,
    },
    /// The program ended unsuccessfully.
    #[error("`{program}` {status}{stderr_tail}")]
    Exit {
        /// The program (the first argv item).
        program: String,
        /// How it ended, in words.
        status: String,
        /// The end of its standard error, prefixed for display, or empty.
        stderr_tail: String,
    },
    /// The attempt ran past `timeoutSeconds`; its process group was killed.
    #[error("timed out after {0:?}; the step's process group was killed")]
    TimedOut(Duration),
    /// The run is being stopped.
    #[error("cancelled")]
    Cancelled,
    /// A declared output file that the step never wrote.
    #[error("the step did not write its output {what} `{name}`: {} does not exist", path.display())]
    MissingOutput {
        /// `parameter` or `artifact`.
        what: &'static str,
        /// The output's name.
        name: String,
        /// The absolute path that was expected.
        path: PathBuf,
    },
    /// A declared output that is, or holds, a symbolic link to a file outside the step's
    /// directory: following it would hand another file's content to later steps and the cache.
    #[error(
        "the step's output {what} `{name}` leaves the step's directory: {} is a symbolic link to {}",
        link.display(),
        target.display()
    )]
    OutputOutsideStep {
        /// `parameter` or `artifact`.
        what: &'static str,
        /// The output's name.
        name: String,
        /// The link.
        link: PathBuf,
        /// Where it leads.
        target: PathBuf,
    },
    /// Reading or preparing files around the step failed.
    #[error("{action} {}: {source}", path.display())]
    Io {
        /// What was being done, e.g. `cannot read output parameter file`.
        action: &'static str,
        /// The file concerned.
        path: PathBuf,
        /// The operating system's reason.
        #[source]
        source: std::io::Error,
    },
    /// A plug-in kind's own failure, in its words.
    #[error("{0}")]
    Kind(String),
}

/// The step kinds an executor knows, by name.
#[derive(Clone)]
pub struct StepKindRegistry {
    kinds: BTreeMap<String, Arc<dyn StepKind>>,
}

/// The built-in kind: runs argv as a process (never through a shell) in its own process group.
#[derive(Debug, Clone, Copy, Default)]
pub struct CommandStepKind;

// === impl StepKindRegistry ===

impl Default for StepKindRegistry {
    /// A registry with the built-in `command` kind.
    fn default() -> Self {
        let mut registry = Self {
            kinds: BTreeMap::new(),
        };
        registry.register(Arc::new(CommandStepKind));
        registry
    }
}

impl StepKindRegistry {
    /// Adds `kind` under its name, replacing any kind of the same name.
    pub fn register(&mut self, kind: Arc<dyn StepKind>) {
        self.kinds.insert(kind.kind().to_owned(), kind);
    }

    /// The kind registered as `name`.
    pub fn get(&self, name: &str) -> Option<&Arc<dyn StepKind>> {
        self.kinds.get(name)
    }

    /// The registered names, sorted.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.kinds.keys().map(String::as_str)
    }
}

impl std::fmt::Debug for StepKindRegistry {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.debug_list().entries(self.kinds.keys()).finish()
    }
}

// === impl CommandStepKind ===

impl StepKind for CommandStepKind {
    fn kind(&self) -> &str {
        COMMAND_KIND
    }

    fn run(&self, ctx: StepContext) -> BoxFuture<'_, Result<StepOutputs, StepFailure>> {
        Box::pin(run_command(ctx))
    }
}

async fn run_command(ctx: StepContext) -> Result<StepOutputs, StepFailure> {
    let Some((program, arguments)) = ctx.argv.split_first() else {
        return Err(StepFailure::EmptyCommand);
    };
    let stdout = open_log(&ctx.stdout_path)?;
    let stderr = open_log(&ctx.stderr_path)?;
    let stderr_start = stderr
        .metadata()
        .map(|metadata| metadata.len())
        .unwrap_or(0);
    let mut command = tokio::process::Command::new(program);
    command
        .args(arguments)
        .envs(ctx.env.iter().map(|(name, value)| (name, value)))
        .current_dir(&ctx.work_dir)
        .stdin(Stdio::null())
        .stdout(stdout)
        .stderr(stderr)
        .kill_on_drop(true);
    // Recorded in the working directory so that a resumed run can end the group if this runner
    // dies (SIGKILL) before it does.
    let (mut child, group) = sextant_process::spawn(&mut command, &ctx.work_dir)
        .await
        .map_err(|error| match error {
            sextant_process::Error::Spawn(source) => StepFailure::Spawn {
                program: program.clone(),
                source,
            },
            sextant_process::Error::Record { path, source } => StepFailure::Io {
                action: "cannot write the process group record",
                path,
                source,
            },
        })?;
    let timeout = async {
        match ctx.timeout {
            Some(timeout) => tokio::time::sleep(timeout).await,
            None => std::future::pending().await,
        }
    };
    let outcome = tokio::select! {
        status = child.wait() => Ok(status),
        () = timeout => Err(StepFailure::TimedOut(ctx.timeout.unwrap_or_default())),
        () = ctx.cancellation.cancelled() => {
            let _ = group.stop(&mut child, ctx.kill_grace).await;
            Err(StepFailure::Cancelled)
        }
    };
    // Whatever the leader did, nothing it started may outlive the step.
    group.end().await;
    let status = match outcome {
        Ok(status) => status.map_err(|source| StepFailure::Io {
            action: "cannot wait for the step's process",
            path: ctx.work_dir.clone(),
            source,
        })?,
        Err(failure) => {
            // Reap the leader so no zombie is left; it was killed with its group.
            let _ = child.wait().await;
            return Err(failure);
        }
    };
    if status.success() {
        return Ok(StepOutputs::default());
    }
    Err(StepFailure::Exit {
        program: program.clone(),
        status: describe_status(status),
        stderr_tail: stderr_tail(&ctx.stderr_path, stderr_start),
    })
}

fn open_log(path: &Path) -> Result<std::fs::File, StepFailure> {
    OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(|source| StepFailure::Io {
            action: "cannot open log file",
            path: path.to_owned(),
            source,
        })
}

fn describe_status(status: ExitStatus) -> String {
    use std::os::unix::process::ExitStatusExt;
    match (status.code(), status.signal()) {
        (Some(code), _) => format!("exited with status {code}"),
        (None, Some(signal)) => match Signal::try_from(signal) {
            Ok(signal) => format!("was killed by {signal}"),
            Err(_) => format!("was killed by signal {signal}"),
        },
        (None, None) => "ended abnormally".to_owned(),
    }
}

/// The last few hundred bytes this attempt wrote to stderr, for the failure message.
fn stderr_tail(path: &Path, start: u64) -> String {
    const TAIL_BYTES: u64 = 400;
    let Ok(mut file) = std::fs::File::open(path) else {
        return String::new();
    };
    let Ok(length) = file.metadata().map(|metadata| metadata.len()) else {
        return String::new();
    };
    let from = start.max(length.saturating_sub(TAIL_BYTES));
    let mut bytes = Vec::new();
    if file.seek(SeekFrom::Start(from)).is_err() || file.read_to_end(&mut bytes).is_err() {
        return String::new();
    }
    let text = String::from_utf8_lossy(&bytes);
    let text = text.trim();
    if text.is_empty() {
        String::new()
    } else {
        format!("; stderr ends with: {text}")
    }
}
