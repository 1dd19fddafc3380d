//! Running one trial as a local process: start it in its own process group, keep its output in
//! the trial's directory, collect its metrics into the store as they appear, enforce its
//! early-stopping rules, and report how it ended.
//!
//! The pieces are other crates': `sextant-process` starts, records and ends the process group,
//! and `sextant-metrics`' sources read the output pipes and the metrics file and send each
//! chunk's points on a channel. This module stores those points as they come ([`supervise`],
//! shared with [pipeline trials](crate::local::pipeline_trial)), applies the rules, and decides
//! when the process must stop.
//!
//! Metric points are written to the store before the driver hears that the process ended, so a
//! finished trial's observation is always complete, and a crash of the driver loses no point
//! the store acknowledged. A trial ends only once every process of its group is gone.

use std::fs::OpenOptions;
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::time::Duration;

use sextant_algorithms::early_stopping::Tracker;
use sextant_metrics::source::{
    DEFAULT_FOLLOW_POLL_INTERVAL, FollowStart, collect_stream, follow_file,
};
use sextant_metrics::{LineFormat, MetricsParser, StreamParser};
use sextant_process::{Owner, ProcessGroup, Signal};
use sextant_store::observation_log::numeric_value;
use sextant_store::{MetricPoint, Store};
use tokio::io::AsyncRead;
use tokio::process::{Child, ChildStderr, ChildStdout, Command};
use tokio::sync::{mpsc, watch};

use crate::local::launch::Launch;
use sextant_experiment::engine::RunState;

/// The file a trial's output (standard output and error) is kept in, in its scratch
/// directory.
pub const OUTPUT_LOG: &str = "output.log";
/// How long a stopped trial gets between SIGTERM and SIGKILL.
pub(crate) const STOP_GRACE: Duration = Duration::from_secs(5);
/// How long output pipes are still read after the trial's process group is gone (a process that
/// left the group may still hold them).
const DRAIN_TIMEOUT: Duration = Duration::from_secs(2);
/// How many batches of points may wait to be stored; a full queue holds the sources back, and
/// with them the trial's writes, rather than buffering without bound.
pub(crate) const WAITING_BATCHES: usize = 64;

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
    /// How its early stopping is enforced (its rules, or the live rung table), if it has any.
    pub rules: Option<Tracker>,
    /// Where points go.
    pub store: Store,
    /// Where the task reports.
    pub events: mpsc::UnboundedSender<TrialEnded>,
}

/// Starts the trial's process and the task that watches it.
pub async fn start(task: TrialTask) -> std::io::Result<TrialHandle> {
    std::fs::create_dir_all(&task.trial_dir)?;
    let (handle, stop_requests) = TrialHandle::new();
    let parser = match metrics_parser(&task.collection) {
        Ok(parser) => parser,
        Err(message) => {
            // Nothing it reports could be read: it is not started.
            let _ = task.events.send(TrialEnded {
                trial_name: task.trial_name,
                state: Stop::CollectionFailed(message).run_state(),
            });
            return Ok(handle);
        }
    };
    let mut command = Command::new(&task.launch.argv[0]);
    command
        .args(&task.launch.argv[1..])
        .envs(task.launch.env.iter().map(|(k, v)| (k, v)))
        .current_dir(&task.launch.working_dir)
        .stdin(Stdio::null());
    let (stdout_log, stderr_log) = output_log(&task.trial_dir)?;
    let parse_output = matches!(task.collection.source, MetricsSource::StdOut);
    let mut logs = None;
    if parse_output {
        command.stdout(Stdio::piped()).stderr(Stdio::piped());
        logs = Some((stdout_log, stderr_log));
    } else {
        // Nothing to parse in the output: it goes straight to the log.
        command.stdout(stdout_log).stderr(stderr_log);
    }
    let file = match &task.collection.source {
        MetricsSource::File { path, .. } if path.is_relative() => {
            // The trial's own file; one left by an interrupted earlier run of this trial is not
            // this run's.
            let path = task.trial_dir.join(path);
            match std::fs::remove_file(&path) {
                Err(error) if error.kind() != std::io::ErrorKind::NotFound => return Err(error),
                _ => {}
            }
            Some((path, FollowStart::BEGINNING))
        }
        MetricsSource::File { path, .. } => {
            // A file outside the trial's directory may hold earlier trials' lines, which are
            // not this trial's; marked before the trial starts, so none of its own are skipped.
            Some((path.clone(), FollowStart::end_of(path)))
        }
        _ => None,
    };
    // A runner killed outright leaves this group running; the next runner finds its record and
    // ends it before re-running the trial (see `end_leftover`).
    let (mut child, group) = sextant_process::spawn(&mut command, &task.trial_dir)
        .await
        .map_err(std::io::Error::other)?;
    let (stdout, stderr) = match logs {
        Some((stdout_log, stderr_log)) => (
            child.stdout.take().map(|pipe| (pipe, stdout_log)),
            child.stderr.take().map(|pipe| (pipe, stderr_log)),
        ),
        None => (None, None),
    };
    let sources = Sources {
        parser,
        stdout,
        stderr,
        file,
    };
    tokio::spawn(watch_trial(task, child, group, sources, stop_requests));
    Ok(handle)
}

/// Ends the process group a previous runner started for `trial_name` in `trial_dir`, if it is
/// still there: a member must carry the trial's `KATIB_TRIAL_NAME`, since the trial's processes
/// work in the experiment's directory, not the trial's.
pub async fn end_leftover(trial_dir: &Path, trial_name: &str) {
    let owner = Owner::Environment {
        name: "KATIB_TRIAL_NAME",
        value: trial_name,
    };
    sextant_process::end_stale(trial_dir, owner).await;
}

/// Why a trial's work was stopped before it ended by itself.
#[derive(Debug, Clone)]
pub(crate) enum Stop {
    /// Its points cannot be stored: it fails, whatever else stopped it.
    CollectionFailed(String),
    /// Its early-stopping rules stopped it.
    EarlyStopped,
    /// The driver stopped it.
    Killed(String),
}

impl Stop {
    /// How a trial stopped for this reason ended.
    pub(crate) fn run_state(self) -> RunState {
        match self {
            Stop::CollectionFailed(message) => RunState::Failed {
                reason: "CollectionFailed".into(),
                message,
            },
            Stop::EarlyStopped => RunState::EarlyStopped,
            Stop::Killed(message) => RunState::Killed { message },
        }
    }
}

/// Runs a trial's `work` (its process, its pipeline) while storing the points its sources send
/// on `points`, until the work is done and every source has closed the channel; returns why the
/// work was stopped, if it was, and what it returned.
///
/// The work learns that it must stop through `stop`: the first reason wins, except that a
/// collection failure overrides the others (the trial fails).
pub(crate) async fn supervise<T>(
    sink: PointSink<'_>,
    mut rules: Option<Tracker>,
    mut points: mpsc::Receiver<Vec<sextant_metrics::ParsedMetric>>,
    mut stop_requests: watch::Receiver<StopRequest>,
    stop: &watch::Sender<Option<Stop>>,
    work: impl Future<Output = T>,
) -> (Option<Stop>, T) {
    let first = |reason: Stop| {
        stop.send_if_modified(|current| {
            let unset = current.is_none();
            if unset {
                *current = Some(reason);
            }
            unset
        });
    };
    let requests = async {
        let reason = loop {
            if stop_requests.changed().await.is_err() {
                // A dropped handle means the driver is gone: nobody will collect this trial.
                break "the driver went away".to_string();
            }
            if let StopRequest::Kill(reason) = &*stop_requests.borrow_and_update() {
                break reason.clone();
            }
        };
        first(Stop::Killed(reason));
    };
    let run = async {
        tokio::pin!(work);
        tokio::select! {
            output = &mut work => return output,
            () = requests => {}
        }
        work.await
    };
    let record = async {
        while let Some(batch) = points.recv().await {
            // After a failure the rest is read, so no source blocks, but not stored.
            if matches!(*stop.borrow(), Some(Stop::CollectionFailed(_))) {
                continue;
            }
            match store_points(&sink, &batch, rules.as_mut()).await {
                Ok(true) => first(Stop::EarlyStopped),
                Ok(false) => {}
                Err(message) => {
                    stop.send_replace(Some(Stop::CollectionFailed(message)));
                }
            }
        }
    };
    let (output, ()) = tokio::join!(run, record);
    let stopped = stop.borrow().clone();
    (stopped, output)
}

/// Follows a metrics file from `start` until `ended` says the trial's work is over, sending its
/// points on `points`.
pub(crate) async fn follow(
    path: &Path,
    start: FollowStart,
    parser: &MetricsParser,
    points: &mpsc::Sender<Vec<sextant_metrics::ParsedMetric>>,
    mut ended: watch::Receiver<bool>,
) {
    let mut parser = StreamParser::new(parser.clone());
    let stop = async move {
        let _ = ended.wait_for(|ended| *ended).await;
    };
    let followed = follow_file(
        path,
        start,
        &mut parser,
        points,
        stop,
        DEFAULT_FOLLOW_POLL_INTERVAL,
    )
    .await;
    if let Err(error) = followed {
        tracing::warn!(path = %path.display(), %error, "cannot follow a trial's metrics file");
    }
}

/// Where a trial's metrics are read from.
struct Sources {
    /// The parser each source gets a copy of.
    parser: MetricsParser,
    /// The output pipes and the log each is passed through to, when they are parsed.
    stdout: Option<(ChildStdout, std::fs::File)>,
    stderr: Option<(ChildStderr, std::fs::File)>,
    /// The metrics file and where to start reading it.
    file: Option<(PathBuf, FollowStart)>,
}

/// The trial's output log, created empty, as two handles appending to it (one per stream).
fn output_log(trial_dir: &Path) -> std::io::Result<(std::fs::File, std::fs::File)> {
    let path = trial_dir.join(OUTPUT_LOG);
    std::fs::File::create(&path)?;
    let open = || OpenOptions::new().append(true).open(&path);
    Ok((open()?, open()?))
}

async fn watch_trial(
    task: TrialTask,
    mut child: Child,
    group: ProcessGroup,
    sources: Sources,
    stop_requests: watch::Receiver<StopRequest>,
) {
    let (points_sender, points) = mpsc::channel(WAITING_BATCHES);
    let (ended, ended_receiver) = watch::channel(false);
    let (stop, mut stops) = watch::channel(None);
    let work = async {
        let status = tokio::select! {
            status = child.wait() => status,
            failed = collection_failed(&mut stops) => {
                if failed {
                    group.signal(Signal::SIGKILL);
                    child.wait().await
                } else {
                    group.stop(&mut child, STOP_GRACE).await
                }
            }
        };
        // The trial is over once its main process is; anything it left running goes now (which
        // also closes the pipes those leftovers held), and the trial has not ended until it is
        // gone.
        group.end().await;
        let _ = ended.send(true);
        status
    };
    let collect = collect(sources, points_sender, ended_receiver);
    let sink = PointSink {
        trial_name: &task.trial_name,
        store: &task.store,
    };
    let supervised = supervise(sink, task.rules.clone(), points, stop_requests, &stop, work);
    let ((stopped, status), ()) = tokio::join!(supervised, collect);
    let state = match (stopped, status) {
        (Some(stop), _) => stop.run_state(),
        (None, Ok(status)) => exit_state(status),
        (None, Err(error)) => {
            Stop::CollectionFailed(format!("cannot wait for the trial process: {error}"))
                .run_state()
        }
    };
    let _ = task.events.send(TrialEnded {
        trial_name: task.trial_name.clone(),
        state,
    });
}

/// Waits until the trial must stop; true when that is because its points cannot be stored.
async fn collection_failed(stops: &mut watch::Receiver<Option<Stop>>) -> bool {
    stops
        .wait_for(Option::is_some)
        .await
        .is_ok_and(|stop| matches!(*stop, Some(Stop::CollectionFailed(_))))
}

/// Reads every source until the trial's group is gone (`ended`), sending points on `points`.
async fn collect(
    sources: Sources,
    points: mpsc::Sender<Vec<sextant_metrics::ParsedMetric>>,
    ended: watch::Receiver<bool>,
) {
    let Sources {
        parser,
        stdout,
        stderr,
        file,
    } = sources;
    let file = async {
        if let Some((path, start)) = file {
            follow(&path, start, &parser, &points, ended.clone()).await;
        }
    };
    tokio::join!(
        read_stream(stdout, "stdout", &parser, &points, ended.clone()),
        read_stream(stderr, "stderr", &parser, &points, ended.clone()),
        file,
    );
}

/// Reads one output pipe to its end, passing it through to its log; gives up [`DRAIN_TIMEOUT`]
/// after the group is gone.
async fn read_stream<R: AsyncRead + Unpin>(
    stream: Option<(R, std::fs::File)>,
    name: &'static str,
    parser: &MetricsParser,
    points: &mpsc::Sender<Vec<sextant_metrics::ParsedMetric>>,
    mut ended: watch::Receiver<bool>,
) {
    let Some((pipe, log)) = stream else {
        return;
    };
    let mut parser = StreamParser::new(parser.clone());
    let give_up = async move {
        let _ = ended.wait_for(|ended| *ended).await;
        tokio::time::sleep(DRAIN_TIMEOUT).await;
    };
    let log = tokio::fs::File::from_std(log);
    if let Err(error) = collect_stream(pipe, Some(log), name, &mut parser, points, give_up).await {
        tracing::warn!(stream = name, %error, "cannot read a trial's output");
    }
}

/// How a trial whose process ended by itself ended.
fn exit_state(exit: ExitStatus) -> RunState {
    use std::os::unix::process::ExitStatusExt;
    if exit.success() {
        return RunState::Succeeded;
    }
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

/// Where a trial's parsed points go: the store, under the trial's name.
pub(crate) struct PointSink<'a> {
    /// The trial the points belong to.
    pub(crate) trial_name: &'a str,
    /// The store.
    pub(crate) store: &'a Store,
}

/// Stores parsed points, feeds them to the rules, and says whether the rules now stop the trial.
async fn store_points(
    sink: &PointSink<'_>,
    points: &[sextant_metrics::ParsedMetric],
    rules: Option<&mut Tracker>,
) -> Result<bool, String> {
    let stored: Vec<MetricPoint> = points
        .iter()
        .map(|point| MetricPoint {
            trial_name: sink.trial_name.to_string(),
            metric_name: point.name.clone(),
            value: point.value.clone(),
            timestamp: point.timestamp,
        })
        .collect();
    // Handed over, not lent: the store would copy a borrowed slice once more.
    sink.store
        .append_observation_log(sink.trial_name, stored.into_iter().map(Ok))
        .await
        .map_err(|error| format!("cannot store metrics: {error}"))?;
    let mut stop = false;
    if let Some(rules) = rules {
        for point in points {
            if let Some(value) = numeric_value(&point.value) {
                stop |= rules.report(&point.name, value);
            }
        }
    }
    Ok(stop)
}

#[cfg(test)]
mod tests {
    use sextant_store::ObservationLogFilter;

    use super::*;

    #[tokio::test]
    async fn a_trial_ends_only_once_every_process_of_its_group_is_gone() -> anyhow::Result<()> {
        let dir = tempfile::tempdir()?;
        let store = Store::connect("sqlite::memory:").await?;
        let (events, mut ended) = mpsc::unbounded_channel();
        // The trial reports and exits, leaving a process behind that holds a lot of memory,
        // which takes the kernel a while to free once the process is killed, and that no
        // longer holds the output pipes, so nothing else waits for it.
        let script = r#"echo $$ > group
(python3 -c "import time; hold = b'x' * (256 << 20); open('ready', 'w').close(); time.sleep(60)" &) >/dev/null 2>&1
while [ ! -e ready ]; do sleep 0.01; done
echo loss=0.5"#;
        let trial_dir = dir.path().join("trial");
        // Kept: a dropped handle would stop the trial.
        let _handle = start(TrialTask {
            trial_name: "trial".into(),
            launch: Launch {
                argv: vec!["sh".into(), "-c".into(), script.into()],
                env: vec![("KATIB_TRIAL_NAME".into(), "trial".into())],
                working_dir: dir.path().to_path_buf(),
            },
            trial_dir: trial_dir.clone(),
            collection: Collection {
                source: MetricsSource::StdOut,
                metric_names: vec!["loss".into()],
                metrics_formats: Vec::new(),
            },
            rules: None,
            store: store.clone(),
            events,
        })
        .await?;
        let trial = ended.recv().await.expect("the trial ends");
        let group: u32 = std::fs::read_to_string(dir.path().join("group"))?
            .trim()
            .parse()?;
        assert_eq!(sextant_process::live_members(group), Vec::<u32>::new());
        assert!(matches!(trial.state, RunState::Succeeded), "{trial:?}");
        let points = store
            .get_observation_log(&ObservationLogFilter::trial("trial"))
            .await?;
        let values: Vec<&str> = points.iter().map(|point| point.value.as_str()).collect();
        assert_eq!(values, ["0.5"]);
        let log = std::fs::read_to_string(trial_dir.join(OUTPUT_LOG))?;
        assert_eq!(log, "loss=0.5\n");
        assert!(!trial_dir.join(sextant_process::RECORD_FILE).exists());
        Ok(())
    }
}
