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
use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
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
        // A group of its own, so a timeout or Ctrl-C reaches every process the step started.
        .process_group(0)
        .kill_on_drop(true);
    let mut child = command.spawn().map_err(|source| StepFailure::Spawn {
        program: program.clone(),
        source,
    })?;
    // The group id is the leader's pid; `id()` is only `None` after the child was reaped.
    let process_group = child.id();
    // Noted in the working directory so that a resumed run can end the group if this runner
    // dies (SIGKILL) before it does; removed once the group is gone.
    let group_file = ctx.work_dir.join(PROCESS_GROUP_FILE);
    let noted = process_group.map(|id| std::fs::write(&group_file, id.to_string()));
    if let Some(Err(error)) = noted {
        tracing::warn!(path = %group_file.display(), %error, "cannot note a step's process group");
    }
    let timeout = async {
        match ctx.timeout {
            Some(timeout) => tokio::time::sleep(timeout).await,
            None => std::future::pending().await,
        }
    };
    let outcome = tokio::select! {
        status = child.wait() => Ok(status),
        () = timeout => {
            signal_group(process_group, Signal::SIGKILL);
            Err(StepFailure::TimedOut(ctx.timeout.unwrap_or_default()))
        }
        () = ctx.cancellation.cancelled() => {
            signal_group(process_group, Signal::SIGTERM);
            if tokio::time::timeout(ctx.kill_grace, child.wait()).await.is_err() {
                signal_group(process_group, Signal::SIGKILL);
            }
            Err(StepFailure::Cancelled)
        }
    };
    // Whatever the leader did, nothing it started may outlive the step: the step ends only
    // once its whole group is gone, not when the signal is sent.
    end_group(process_group).await;
    let _ = std::fs::remove_file(&group_file);
    let status = match outcome {
        Ok(status) => status.map_err(|source| StepFailure::Io {
            action: "cannot wait for the step's process",
            path: ctx.work_dir.clone(),
            source,
        })?,
        Err(failure) => {
            // Reap the leader so no zombie is left; it was killed above.
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

/// The file in a step's (or a trial's) directory naming the process group of its running
/// attempt, so a runner started after a crash can end what the dead one left running.
pub const PROCESS_GROUP_FILE: &str = ".sextant-process-group";

/// Ends the process group noted in `dir`'s [`PROCESS_GROUP_FILE`], if a live member of it
/// passes `belongs`: a process group id is not reused while any member lives, so such a member
/// proves the group is the one noted, not an unrelated one that got the same number later.
pub fn kill_noted_process_group(dir: &Path, belongs: impl Fn(u32) -> bool) {
    let Ok(text) = std::fs::read_to_string(dir.join(PROCESS_GROUP_FILE)) else {
        return;
    };
    let Ok(process_group) = text.trim().parse::<u32>() else {
        return;
    };
    if live_group_members(process_group).into_iter().any(belongs) {
        tracing::info!(process_group, dir = %dir.display(), "killing a process group left running by an earlier runner");
        signal_group(Some(process_group), Signal::SIGKILL);
    }
}

/// Ends the process group a dead runner left running in a step's `work_dir`, if one of its
/// processes still works inside it.
pub(crate) fn kill_stale_process_group(work_dir: &Path) {
    // `/proc/PID/cwd` is absolute, and the runs directory may have been given relative.
    let absolute = std::fs::canonicalize(work_dir).unwrap_or_else(|_| work_dir.to_path_buf());
    kill_noted_process_group(work_dir, |pid| {
        std::fs::read_link(format!("/proc/{pid}/cwd")).is_ok_and(|cwd| cwd.starts_with(&absolute))
    });
}

/// Live (not zombie) processes in `process_group`, read from /proc.
fn live_group_members(process_group: u32) -> Vec<u32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|entry| entry.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
                return false;
            };
            // After the parenthesized command name: state, parent pid, process group, ...
            let Some(fields) = stat.rfind(')').and_then(|end| stat.get(end + 2..)) else {
                return false;
            };
            let mut fields = fields.split_whitespace();
            let state = fields.next();
            let group = fields.nth(1);
            state != Some("Z") && group == Some(process_group.to_string().as_str())
        })
        .collect()
}

/// How long [`end_group`] waits for a SIGKILLed group to disappear. A killed process dies as
/// soon as it is scheduled, which on a loaded machine can take a while; one in uninterruptible
/// sleep (a hung NFS read) only when the kernel lets it.
const GROUP_END_WAIT: Duration = Duration::from_secs(10);

/// SIGKILLs a whole process group and waits until none of its members is alive (zombies,
/// which hold nothing but a process table slot, count as gone). `killpg` only queues the
/// signal, so without the wait a caller could report the step ended while its processes run.
pub(crate) async fn end_group(process_group: Option<u32>) {
    let Some(group) = process_group else {
        return;
    };
    signal_group(process_group, Signal::SIGKILL);
    let deadline = tokio::time::Instant::now() + GROUP_END_WAIT;
    let mut pause = Duration::from_millis(1);
    loop {
        let members = live_group_members(group);
        if members.is_empty() {
            return;
        }
        if tokio::time::Instant::now() >= deadline {
            tracing::warn!(
                process_group = group,
                ?members,
                "processes of a killed group are still alive"
            );
            return;
        }
        // A member may have been forked after the first signal reached the group.
        signal_group(process_group, Signal::SIGKILL);
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(Duration::from_millis(50));
    }
}

/// Sends `signal` to a whole process group; a group already gone is not an error.
pub(crate) fn signal_group(process_group: Option<u32>, signal: Signal) {
    let Some(process_group) = process_group.and_then(|id| i32::try_from(id).ok()) else {
        return;
    };
    match killpg(Pid::from_raw(process_group), signal) {
        Ok(()) | Err(nix::errno::Errno::ESRCH) => {}
        Err(error) => {
            tracing::warn!(process_group, %signal, %error, "cannot signal a step's process group");
        }
    }
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
