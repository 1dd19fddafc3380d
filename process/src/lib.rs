//! Process groups: the one place that starts a command in a group of its own, records the group
//! beside its work, signals it, ends it for good and ends what a dead runner left behind.
//!
//! Trials (the controller's local runner) and pipeline steps (the pipeline's command kind) both
//! run their commands through this crate, so they follow one set of rules:
//! - a command leads a new process group, so a signal reaches every process it started;
//! - the group's id is written to [`RECORD_FILE`] in the work's directory before anything else
//!   happens, so a runner started after a crash finds it; a group that cannot be recorded is
//!   ended and the start fails, since nobody could end it after a crash;
//! - signalling a group that is gone already is not an error (`ESRCH`), any other failure is
//!   logged;
//! - work ends only once every process of its group is gone, not when the signal is sent:
//!   [`ProcessGroup::end`] waits for that, then removes the record;
//! - a recorded group is ended by a later runner only when one of its live processes proves it
//!   is the group recorded ([`Owner`]), since group ids are reused once a group is gone.
//!
//! Membership is read from `/proc`: this crate is for Linux. It depends on nothing of ours and
//! must not: the pipeline and the controller both depend on it.

use std::io;
use std::path::{Path, PathBuf};
use std::process::ExitStatus;
use std::time::Duration;

pub use nix::sys::signal::Signal;
use nix::sys::signal::killpg;
use nix::unistd::Pid;
use tokio::process::{Child, Command};

/// The file in a trial's or a step's directory naming the process group of its running command.
pub const RECORD_FILE: &str = ".sextant-process-group";

/// How long [`ProcessGroup::end`] waits for a SIGKILLed group to disappear. A killed process
/// dies as soon as it is scheduled, which on a loaded machine can take a while; one in
/// uninterruptible sleep (a hung NFS read) only when the kernel lets it.
const END_WAIT: Duration = Duration::from_secs(10);

/// Why a command could not be started in a group of its own.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The operating system refused to start the command.
    #[error("cannot start the command: {0}")]
    Spawn(io::Error),
    /// The group could not be recorded; it was ended.
    #[error("cannot record the command's process group in {}", path.display())]
    Record {
        /// The record file.
        path: PathBuf,
        /// What the operating system said.
        #[source]
        source: io::Error,
    },
}

/// The result type of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// A process group this process started and recorded.
#[derive(Debug)]
pub struct ProcessGroup {
    /// The group's id: its leader's pid.
    id: Pid,
    /// The record naming the group, removed once the group is gone.
    record: PathBuf,
}

/// What a live process of a recorded group must show to prove the group is the one recorded
/// and not a later one that got the same id.
#[derive(Debug, Clone, Copy)]
pub enum Owner<'a> {
    /// It works in this directory or below (a pipeline step works in its own directory).
    WorkingUnder(&'a Path),
    /// Its environment holds this variable with this value (a trial's processes work in the
    /// experiment's directory, shared by all trials, but carry the trial's name).
    Environment {
        /// The variable's name.
        name: &'a str,
        /// Its value.
        value: &'a str,
    },
}

/// Starts `command` as the leader of a new process group and records the group in
/// `record_dir`'s [`RECORD_FILE`].
pub async fn spawn(command: &mut Command, record_dir: &Path) -> Result<(Child, ProcessGroup)> {
    let mut child = command.process_group(0).spawn().map_err(Error::Spawn)?;
    let record = record_dir.join(RECORD_FILE);
    // `id()` is `None` only once the child was reaped, which nothing here has done.
    let Some(id) = child.id().and_then(pid) else {
        let _ = child.start_kill();
        return Err(Error::Spawn(io::Error::other(
            "the started command has no pid",
        )));
    };
    let group = ProcessGroup { id, record };
    if let Err(source) = std::fs::write(&group.record, group.id.to_string()) {
        let path = group.record.clone();
        group.end().await;
        let _ = child.wait().await;
        return Err(Error::Record { path, source });
    }
    Ok((child, group))
}

/// Ends the process group recorded in `dir` by a runner that is gone, if one of its live
/// processes proves, as `owner` says, that it is the group recorded; then removes the record.
pub async fn end_stale(dir: &Path, owner: Owner<'_>) {
    let record = dir.join(RECORD_FILE);
    let Ok(text) = std::fs::read_to_string(&record) else {
        return;
    };
    let Some(id) = text.trim().parse::<u32>().ok().and_then(pid) else {
        let _ = std::fs::remove_file(&record);
        return;
    };
    if members(id).into_iter().any(owner.test()) {
        tracing::info!(process_group = %id, dir = %dir.display(), "ending a process group left running by an earlier runner");
        ProcessGroup { id, record }.end().await;
    } else {
        let _ = std::fs::remove_file(&record);
    }
}

/// The live (not zombie) processes of process group `group`.
pub fn live_members(group: u32) -> Vec<u32> {
    pid(group).map_or_else(Vec::new, |group| {
        members(group)
            .into_iter()
            .filter_map(|member| u32::try_from(member.as_raw()).ok())
            .collect()
    })
}

// === impl ProcessGroup ===

impl ProcessGroup {
    /// The group's id, its leader's pid.
    pub fn id(&self) -> u32 {
        // A pid is positive.
        self.id.as_raw().unsigned_abs()
    }

    /// Sends `signal` to every process of the group.
    pub fn signal(&self, signal: Signal) {
        match killpg(self.id, signal) {
            // Gone already: what the signal was for.
            Ok(()) | Err(nix::errno::Errno::ESRCH) => {}
            Err(error) => {
                tracing::warn!(process_group = %self.id, %signal, %error, "cannot signal a process group");
            }
        }
    }

    /// Asks the group to stop: SIGTERM, then SIGKILL if its leader `child` has not exited after
    /// `grace`; returns how the leader ended. Other members may still be alive: see
    /// [`ProcessGroup::end`].
    pub async fn stop(&self, child: &mut Child, grace: Duration) -> io::Result<ExitStatus> {
        self.signal(Signal::SIGTERM);
        match tokio::time::timeout(grace, child.wait()).await {
            Ok(status) => status,
            Err(_) => {
                self.signal(Signal::SIGKILL);
                child.wait().await
            }
        }
    }

    /// SIGKILLs the whole group and waits until none of its processes is alive (zombies, which
    /// hold nothing but a process table slot, count as gone), then removes its record. `killpg`
    /// only queues the signal, so without the wait a caller could report the work ended while
    /// its processes still run.
    pub async fn end(self) {
        self.signal(Signal::SIGKILL);
        let deadline = tokio::time::Instant::now() + END_WAIT;
        let mut pause = Duration::from_millis(1);
        loop {
            let members = members(self.id);
            if members.is_empty() {
                let _ = std::fs::remove_file(&self.record);
                return;
            }
            if tokio::time::Instant::now() >= deadline {
                // The record stays, so a later runner can still end them.
                tracing::warn!(process_group = %self.id, ?members, "processes of a killed group are still alive");
                return;
            }
            // A member may have been forked after the first signal reached the group.
            self.signal(Signal::SIGKILL);
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(Duration::from_millis(50));
        }
    }
}

// === impl Owner ===

impl Owner<'_> {
    /// The test a process must pass.
    fn test(self) -> impl Fn(Pid) -> bool {
        enum Test {
            WorkingUnder(PathBuf),
            Environment(Vec<u8>),
        }
        let test = match self {
            // `/proc/PID/cwd` is absolute and resolved; the directory may be given relative.
            Owner::WorkingUnder(dir) => {
                Test::WorkingUnder(std::fs::canonicalize(dir).unwrap_or_else(|_| dir.to_path_buf()))
            }
            Owner::Environment { name, value } => {
                Test::Environment(format!("{name}={value}").into_bytes())
            }
        };
        move |member| match &test {
            Test::WorkingUnder(dir) => std::fs::read_link(format!("/proc/{member}/cwd"))
                .is_ok_and(|cwd| cwd.starts_with(dir)),
            Test::Environment(entry) => std::fs::read(format!("/proc/{member}/environ"))
                .is_ok_and(|environ| environ.split(|byte| *byte == 0).any(|item| item == entry)),
        }
    }
}

/// The one conversion of a process id: pids are positive `pid_t`s.
fn pid(id: u32) -> Option<Pid> {
    i32::try_from(id)
        .ok()
        .filter(|id| *id > 0)
        .map(Pid::from_raw)
}

/// The live (not zombie) processes of `group`, read from /proc.
fn members(group: Pid) -> Vec<Pid> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    let group = group.to_string();
    entries
        .flatten()
        .filter_map(|entry| {
            entry
                .file_name()
                .to_str()?
                .parse::<u32>()
                .ok()
                .and_then(pid)
        })
        .filter(|process| {
            let Ok(stat) = std::fs::read_to_string(format!("/proc/{process}/stat")) else {
                return false;
            };
            // After the parenthesized command name: state, parent pid, process group, ...
            let Some(fields) = stat.rfind(')').and_then(|end| stat.get(end + 2..)) else {
                return false;
            };
            let mut fields = fields.split_whitespace();
            let state = fields.next();
            let process_group = fields.nth(1);
            state != Some("Z") && process_group == Some(group.as_str())
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use std::process::Stdio;

    use super::*;

    /// A shell command in a new group, recorded in `dir`.
    async fn start(script: &str, dir: &Path) -> (Child, ProcessGroup) {
        let mut command = Command::new("sh");
        command
            .args(["-c", script])
            .current_dir(dir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        spawn(&mut command, dir).await.expect("spawn")
    }

    #[tokio::test]
    async fn a_started_group_is_recorded_and_its_record_goes_with_it() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (mut child, group) = start("sleep 30", dir.path()).await;
        let recorded = std::fs::read_to_string(dir.path().join(RECORD_FILE)).expect("record");
        assert_eq!(recorded, group.id().to_string());
        assert_eq!(Some(group.id()), child.id());
        group.end().await;
        let _ = child.wait().await;
        assert!(!dir.path().join(RECORD_FILE).exists());
    }

    #[tokio::test]
    async fn ending_a_group_waits_for_every_process_it_started() {
        let dir = tempfile::tempdir().expect("tempdir");
        // A leader gone at once, and background processes that ignore SIGTERM.
        let (mut child, group) = start(
            "trap '' TERM; sleep 30 & sleep 30 & (trap '' TERM; sleep 30) & exit 0",
            dir.path(),
        )
        .await;
        let id = group.id();
        let _ = child.wait().await;
        group.signal(Signal::SIGTERM);
        group.end().await;
        assert_eq!(live_members(id), Vec::<u32>::new());
    }

    #[tokio::test]
    async fn stopping_kills_a_leader_that_ignores_sigterm_after_the_grace() {
        use std::os::unix::process::ExitStatusExt;
        let dir = tempfile::tempdir().expect("tempdir");
        let (mut child, group) =
            start("trap '' TERM; : > ready; sleep 30; exit 3", dir.path()).await;
        // A SIGTERM sent before the trap is set would end the shell at once.
        while !dir.path().join("ready").exists() {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let status = group
            .stop(&mut child, Duration::from_millis(100))
            .await
            .expect("status");
        assert_eq!(status.signal(), Some(Signal::SIGKILL as i32));
        group.end().await;
    }

    #[tokio::test]
    async fn a_stale_group_is_ended_only_when_a_process_proves_it_is_the_one_recorded() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut command = Command::new("sleep");
        command
            .arg("30")
            .env("SEXTANT_TEST_OWNER", "mine")
            .stdin(Stdio::null());
        let (mut child, group) = spawn(&mut command, dir.path()).await.expect("spawn");
        let id = group.id();
        // The runner that started it is gone: only the record is left.
        drop(group);
        // Another owner's record of the same id: the group is not theirs, and stays.
        end_stale(
            dir.path(),
            Owner::Environment {
                name: "SEXTANT_TEST_OWNER",
                value: "theirs",
            },
        )
        .await;
        assert_eq!(live_members(id), vec![id]);
        std::fs::write(dir.path().join(RECORD_FILE), id.to_string()).expect("record");
        end_stale(
            dir.path(),
            Owner::Environment {
                name: "SEXTANT_TEST_OWNER",
                value: "mine",
            },
        )
        .await;
        assert_eq!(live_members(id), Vec::<u32>::new());
        assert!(!dir.path().join(RECORD_FILE).exists());
        let _ = child.wait().await;
    }

    #[tokio::test]
    async fn a_stale_group_working_in_the_directory_is_ended() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (mut child, group) = start("sleep 30 & sleep 30", dir.path()).await;
        let id = group.id();
        // The runner that started it is gone: only the record is left.
        drop(group);
        end_stale(dir.path(), Owner::WorkingUnder(dir.path())).await;
        assert_eq!(live_members(id), Vec::<u32>::new());
        let _ = child.wait().await;
    }
}
