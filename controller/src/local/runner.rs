//! Running one trial as a local process: start it in its own process group, keep its output in
//! the trial's directory, collect its metrics into the store as they appear, enforce its
//! early-stopping rules, and report how it ended.
//!
//! Metric points are written to the store before the driver hears that the process ended, so a
//! finished trial's observation is always complete, and a crash of the driver loses no point
//! the store acknowledged.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use chrono::Utc;
use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use sextant_algorithms::early_stopping::RuleTracker;
use sextant_metrics::{LineFormat, MetricsParser, StreamParser};
use sextant_pipeline::kind::{PROCESS_GROUP_FILE, kill_noted_process_group};
use sextant_store::observation_log::numeric_value;
use sextant_store::{MetricPoint, Store};
use tokio::io::{AsyncReadExt, AsyncSeekExt, AsyncWriteExt};
use tokio::process::Command;
use tokio::sync::{mpsc, watch};

use crate::engine::RunState;
use crate::local::launch::Launch;

/// How long a stopped trial gets between SIGTERM and SIGKILL.
pub(crate) const STOP_GRACE: Duration = Duration::from_secs(5);
/// How often a metrics file is checked for new lines.
pub(crate) const FILE_POLL: Duration = Duration::from_millis(100);
/// How long output pipes are drained after the process exits (a child it left behind may
/// still hold them).
const DRAIN_TIMEOUT: Duration = Duration::from_secs(2);

/// Where a trial's metrics come from.
#[derive(Debug, Clone)]
pub enum MetricsSource {
    /// Its standard output and error, as TEXT.
    StdOut,
    /// A file it writes; a relative path is inside the trial's own directory
    /// (`$SEXTANT_TRIAL_DIR`), as Katib's sidecar sees its own pod's file, so concurrent trials
    /// never share one.
    File {
        /// The file.
        path: PathBuf,
        /// Its format.
        format: LineFormat,
    },
    /// It pushes to the DBManager itself; nothing to parse.
    Push,
}

/// What to collect from a trial.
#[derive(Debug, Clone)]
pub struct Collection {
    /// The source.
    pub source: MetricsSource,
    /// The metrics asked for, objective first.
    pub metric_names: Vec<String>,
    /// Custom TEXT regexes (`metricsFormat`); empty for Katib's default.
    pub metrics_formats: Vec<String>,
}

/// Why a trial is being stopped from outside.
#[derive(Debug, Clone, PartialEq)]
pub enum StopRequest {
    /// Keep going.
    None,
    /// Stop it: the experiment completed or the driver is shutting down.
    Kill(String),
}

/// What a trial's task tells the driver: its process ended, and every point it reported is
/// stored.
#[derive(Debug)]
pub struct TrialEnded {
    /// The trial.
    pub trial_name: String,
    /// How it ended.
    pub state: RunState,
}

/// The driver's handle on a running trial.
#[derive(Debug)]
pub struct TrialHandle {
    stop: watch::Sender<StopRequest>,
}

impl TrialHandle {
    /// A handle and the receiving end its trial's task watches.
    pub(crate) fn new() -> (TrialHandle, watch::Receiver<StopRequest>) {
        let (stop, stop_requests) = watch::channel(StopRequest::None);
        (TrialHandle { stop }, stop_requests)
    }

    /// Asks the trial to stop: SIGTERM to its process group, SIGKILL after a grace period.
    pub fn stop(&self, reason: String) {
        self.stop.send_replace(StopRequest::Kill(reason));
    }
}

/// Everything one trial's task needs.
pub struct TrialTask {
    /// The trial.
    pub trial_name: String,
    /// What to run.
    pub launch: Launch,
    /// Its scratch directory (created), where its output is kept.
    pub trial_dir: PathBuf,
    /// What to collect.
    pub collection: Collection,
    /// Its early-stopping rules, if any.
    pub rules: Option<RuleTracker>,
    /// Where points go.
    pub store: Store,
    /// Where the task reports.
    pub events: mpsc::UnboundedSender<TrialEnded>,
}

/// Starts the trial's process and the task that watches it.
pub fn start(task: TrialTask) -> std::io::Result<TrialHandle> {
    std::fs::create_dir_all(&task.trial_dir)?;
    let mut command = Command::new(&task.launch.argv[0]);
    command
        .args(&task.launch.argv[1..])
        .envs(task.launch.env.iter().map(|(k, v)| (k, v)))
        .current_dir(&task.launch.working_dir)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0);
    let followed = match &task.collection.source {
        MetricsSource::File { path, .. } if path.is_relative() => {
            // The trial's own file; one left by an interrupted earlier run of this trial is not
            // this run's.
            let path = task.trial_dir.join(path);
            match std::fs::remove_file(&path) {
                Err(error) if error.kind() != std::io::ErrorKind::NotFound => return Err(error),
                _ => {}
            }
            Some((path, FilePosition::default()))
        }
        MetricsSource::File { path, .. } => {
            // A file outside the trial's directory may hold earlier trials' lines, which are
            // not this trial's; measured before the trial starts, so none of its own are skipped.
            let position = FilePosition::at_end_of(path);
            Some((path.clone(), position))
        }
        _ => None,
    };
    let child = command.spawn()?;
    if let Some(pid) = child.id() {
        // A runner killed outright leaves this group running; the next runner reads the file
        // and ends it before re-running the trial (see `kill_leftover`).
        if let Err(error) = std::fs::write(task.trial_dir.join(PROCESS_GROUP_FILE), pid.to_string())
        {
            // Nobody would watch the process: it goes, and the trial fails to start.
            signal_group(Some(pid), Signal::SIGKILL);
            return Err(error);
        }
    }
    let (handle, stop_requests) = TrialHandle::new();
    tokio::spawn(watch_trial(task, child, followed, stop_requests));
    Ok(handle)
}

/// Ends the process group a previous runner started for `trial_name` in `trial_dir`, if it is
/// still there: a member must carry the trial's `KATIB_TRIAL_NAME`, since the trial's processes
/// work in the experiment's directory, not the trial's.
pub fn kill_leftover(trial_dir: &Path, trial_name: &str) {
    let marker = format!("KATIB_TRIAL_NAME={trial_name}");
    kill_noted_process_group(trial_dir, |pid| {
        std::fs::read(format!("/proc/{pid}/environ")).is_ok_and(|environ| {
            environ
                .split(|byte| *byte == 0)
                .any(|entry| entry == marker.as_bytes())
        })
    });
}

fn signal_group(pid: Option<u32>, signal: Signal) {
    if let Some(pid) = pid {
        // The group may be gone already; that is the point of the signal.
        let _ = killpg(Pid::from_raw(pid as i32), signal);
    }
}

async fn watch_trial(
    task: TrialTask,
    mut child: tokio::process::Child,
    followed: Option<(PathBuf, FilePosition)>,
    mut stop_requests: watch::Receiver<StopRequest>,
) {
    let pid = child.id();
    let trial_name = task.trial_name.clone();
    let state = match collect_until_exit(&task, &mut child, followed, &mut stop_requests).await {
        Ok(state) => state,
        Err(message) => {
            signal_group(pid, Signal::SIGKILL);
            let _ = child.wait().await;
            RunState::Failed {
                reason: "CollectionFailed".into(),
                message,
            }
        }
    };
    // Whatever the trial left behind in its group goes with it.
    signal_group(pid, Signal::SIGKILL);
    let _ = task.events.send(TrialEnded { trial_name, state });
}

struct Collector {
    parsers: Vec<StreamParser>,
    points: Vec<sextant_metrics::MetricPoint>,
}

async fn collect_until_exit(
    task: &TrialTask,
    child: &mut tokio::process::Child,
    mut file: Option<(PathBuf, FilePosition)>,
    stop_requests: &mut watch::Receiver<StopRequest>,
) -> Result<RunState, String> {
    let pid = child.id();
    let mut stdout = child.stdout.take().ok_or("no stdout pipe")?;
    let mut stderr = child.stderr.take().ok_or("no stderr pipe")?;
    let mut output = tokio::fs::File::create(task.trial_dir.join("output.log"))
        .await
        .map_err(|error| format!("cannot create the trial's output log: {error}"))?;
    let parser = metrics_parser(&task.collection)?;
    // One parser per stream, so a line split across reads of one stream is joined correctly.
    let mut collector = Collector {
        parsers: vec![StreamParser::new(parser.clone()), StreamParser::new(parser)],
        points: Vec::new(),
    };
    let parse_output = matches!(task.collection.source, MetricsSource::StdOut);
    let mut rules = task.rules.clone();
    let mut early_stopped = false;
    let mut killed: Option<String> = None;
    let mut stdout_buffer = vec![0u8; 64 * 1024];
    let mut stderr_buffer = vec![0u8; 64 * 1024];
    let (mut stdout_open, mut stderr_open) = (true, true);
    let mut poll = tokio::time::interval(FILE_POLL);
    let mut kill_deadline: Option<tokio::time::Instant> = None;
    let exit = loop {
        tokio::select! {
            read = stdout.read(&mut stdout_buffer), if stdout_open => {
                let count = read.unwrap_or(0);
                if count == 0 { stdout_open = false; continue; }
                let _ = output.write_all(&stdout_buffer[..count]).await;
                if parse_output {
                    collector.parsers[0].feed(&stdout_buffer[..count], Utc::now(), &mut collector.points);
                }
            }
            read = stderr.read(&mut stderr_buffer), if stderr_open => {
                let count = read.unwrap_or(0);
                if count == 0 { stderr_open = false; continue; }
                let _ = output.write_all(&stderr_buffer[..count]).await;
                if parse_output {
                    collector.parsers[1].feed(&stderr_buffer[..count], Utc::now(), &mut collector.points);
                }
            }
            _ = poll.tick(), if file.is_some() => {
                if let Some((path, offset)) = file.as_mut() {
                    read_appended(path, offset, &mut collector.parsers[0], &mut collector.points).await;
                }
            }
            changed = stop_requests.changed(), if killed.is_none() => {
                // A dropped handle means the driver is gone: nobody will collect this trial.
                let request = match changed {
                    Ok(()) => stop_requests.borrow().clone(),
                    Err(_) => StopRequest::Kill("the driver went away".into()),
                };
                if let StopRequest::Kill(reason) = request {
                    killed = Some(reason);
                    signal_group(pid, Signal::SIGTERM);
                    kill_deadline = Some(tokio::time::Instant::now() + STOP_GRACE);
                }
            }
            _ = sleep_until(kill_deadline) => {
                signal_group(pid, Signal::SIGKILL);
                kill_deadline = None;
            }
            status = child.wait() => {
                break status.map_err(|error| format!("cannot wait for the trial process: {error}"))?;
            }
        }
        if !collector.points.is_empty() {
            let stop = store_points(&task.sink(), &mut collector.points, rules.as_mut()).await?;
            if stop && !early_stopped && killed.is_none() {
                early_stopped = true;
                signal_group(pid, Signal::SIGTERM);
                kill_deadline = Some(tokio::time::Instant::now() + STOP_GRACE);
            }
        }
    };
    // The trial is over once its main process is; anything it left running goes now, which
    // also closes the pipes those leftovers held, so draining them cannot stall.
    signal_group(pid, Signal::SIGKILL);
    drain(
        &mut stdout,
        &mut stderr,
        &mut output,
        parse_output,
        &mut collector,
    )
    .await;
    if let Some((path, offset)) = file.as_mut() {
        read_appended(
            path,
            offset,
            &mut collector.parsers[0],
            &mut collector.points,
        )
        .await;
    }
    let now = Utc::now();
    for parser in &mut collector.parsers {
        parser.finish(now, &mut collector.points);
    }
    let _ = output.flush().await;
    if !collector.points.is_empty() {
        store_points(&task.sink(), &mut collector.points, rules.as_mut()).await?;
    }
    Ok(if early_stopped {
        RunState::EarlyStopped
    } else if let Some(message) = killed {
        RunState::Killed { message }
    } else if exit.success() {
        RunState::Succeeded
    } else {
        use std::os::unix::process::ExitStatusExt;
        match (exit.code(), exit.signal()) {
            (Some(code), _) => RunState::Failed {
                reason: format!("ExitCode{code}"),
                message: format!("the trial's process exited with status {code}"),
            },
            (None, Some(signal)) => RunState::Failed {
                reason: "Signaled".into(),
                message: format!("the trial's process was killed by signal {signal}"),
            },
            (None, None) => RunState::Failed {
                reason: "Unknown".into(),
                message: "the trial's process ended without a status".into(),
            },
        }
    })
}

async fn sleep_until(deadline: Option<tokio::time::Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}

/// The parser of a trial's metrics, per its collector.
pub(crate) fn metrics_parser(collection: &Collection) -> Result<MetricsParser, String> {
    let format = match &collection.source {
        MetricsSource::File { format, .. } => *format,
        _ => LineFormat::Text,
    };
    MetricsParser::new(
        format,
        &collection.metric_names,
        &collection.metrics_formats,
    )
    .map_err(|error| format!("metrics collector: {error}"))
}

/// Where a trial's parsed points go: the store, then a note to the driver.
pub(crate) struct PointSink<'a> {
    /// The trial the points belong to.
    pub(crate) trial_name: &'a str,
    /// The store.
    pub(crate) store: &'a Store,
}

impl TrialTask {
    fn sink(&self) -> PointSink<'_> {
        PointSink {
            trial_name: &self.trial_name,
            store: &self.store,
        }
    }
}

/// Stores parsed points, feeds them to the rules, and says whether the rules now stop the trial.
pub(crate) async fn store_points(
    task: &PointSink<'_>,
    points: &mut Vec<sextant_metrics::MetricPoint>,
    rules: Option<&mut RuleTracker>,
) -> Result<bool, String> {
    let stored: Vec<MetricPoint> = points
        .iter()
        .map(|point| MetricPoint {
            trial_name: task.trial_name.to_string(),
            metric_name: point.name.clone(),
            value: point.value.clone(),
            timestamp: point.timestamp,
        })
        .collect();
    task.store
        .report_observation_log(task.trial_name, &stored)
        .await
        .map_err(|error| format!("cannot store metrics: {error}"))?;
    let mut stop = false;
    if let Some(rules) = rules {
        for point in points.iter() {
            if let Some(value) = numeric_value(&point.value) {
                stop |= rules.report(&point.name, value);
            }
        }
    }
    points.clear();
    Ok(stop)
}

/// How far a followed metrics file has been read, and which file that was.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct FilePosition {
    /// Bytes read so far.
    offset: u64,
    /// The file's device and inode when last read; `None` before the first read.
    identity: Option<(u64, u64)>,
}

impl FilePosition {
    /// The end of the file at `path` now (the start when there is none).
    pub(crate) fn at_end_of(path: &Path) -> FilePosition {
        match std::fs::metadata(path) {
            Ok(metadata) => FilePosition {
                offset: metadata.len(),
                identity: Some((metadata.dev(), metadata.ino())),
            },
            Err(_) => FilePosition::default(),
        }
    }
}

/// Feeds what was appended to `path` since `position` to `parser`, advancing `position`.
///
/// A file that is not the one read before (replaced: deleted and created again, renamed over)
/// or shorter than what was read (truncated, `open(path, "w")`) is read from its start.
pub(crate) async fn read_appended(
    path: &Path,
    position: &mut FilePosition,
    parser: &mut StreamParser,
    points: &mut Vec<sextant_metrics::MetricPoint>,
) {
    let Ok(mut file) = tokio::fs::File::open(path).await else {
        return;
    };
    let Ok(metadata) = file.metadata().await else {
        return;
    };
    let identity = (metadata.dev(), metadata.ino());
    let replaced = position.identity.is_some_and(|read| read != identity);
    if replaced || metadata.len() < position.offset {
        position.offset = 0;
        parser.reset_line();
    }
    position.identity = Some(identity);
    if file
        .seek(std::io::SeekFrom::Start(position.offset))
        .await
        .is_err()
    {
        return;
    }
    let mut appended = Vec::new();
    if let Ok(count) = file.read_to_end(&mut appended).await {
        position.offset += count as u64;
        parser.feed(&appended, Utc::now(), points);
    }
}

async fn drain(
    stdout: &mut tokio::process::ChildStdout,
    stderr: &mut tokio::process::ChildStderr,
    output: &mut tokio::fs::File,
    parse_output: bool,
    collector: &mut Collector,
) {
    // What was read before a timeout is kept: those are the trial's last lines.
    let mut rest = Vec::new();
    let _ = tokio::time::timeout(DRAIN_TIMEOUT, stdout.read_to_end(&mut rest)).await;
    let _ = output.write_all(&rest).await;
    if parse_output {
        collector.parsers[0].feed(&rest, Utc::now(), &mut collector.points);
    }
    rest.clear();
    let _ = tokio::time::timeout(DRAIN_TIMEOUT, stderr.read_to_end(&mut rest)).await;
    let _ = output.write_all(&rest).await;
    if parse_output {
        collector.parsers[1].feed(&rest, Utc::now(), &mut collector.points);
    }
}
