//! `sextant collect`: run a training command and report what it prints to a DBManager.
//!
//! This is Katib's metrics-collector sidecar folded into a wrapper process: instead of a second
//! container tailing a log file, `sextant collect ... -- CMD ARGS...` starts CMD itself (argv
//! as given, no shell), passes its stdout and stderr through to its own unchanged, parses them
//! (or, with `--path`, follows the file CMD writes, leaving CMD's output untouched on the
//! terminal), pushes points while CMD runs, and exits with CMD's exit status (`128 + n` when CMD
//! was killed by signal `n`, as shells report it). A SIGTERM sent to the collector (Kubernetes
//! stopping the pod) is forwarded to CMD, so the collector outlives it and flushes.
//!
//! When the objective (the first metric name) never appeared, the value `unavailable` is reported
//! for it, as Katib's collector does, so the trial is seen as finished without metrics rather than
//! still waiting for them. Unlike Katib's collector it is reported whatever CMD's exit status, and
//! stamped with the time CMD ended rather than `0001-01-01T00:00:00Z`.

use std::path::PathBuf;
use std::process::{ExitStatus, Stdio};
use std::time::Duration;

use chrono::Utc;
use tokio::io::AsyncWrite;
use tokio::process::Command;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::parse::{LineFormat, MetricsParser, ParseStats, ParsedMetric, StreamParser};
use crate::push::{PushConfig, PushReport, Pusher};
use crate::source::{DEFAULT_FOLLOW_POLL_INTERVAL, FollowStart, collect_stream, follow_file};
use crate::{Error, Result};

/// The value Katib records for an objective that was never reported.
pub const UNAVAILABLE_VALUE: &str = "unavailable";

/// How long the command's output pipes may stay open after it exited (a background process it
/// started may hold them) before collection from them stops.
const PIPE_DRAIN_TIMEOUT: Duration = Duration::from_secs(5);

/// Command-line arguments of `sextant collect`.
#[derive(Clone, Debug, clap::Args)]
pub struct CollectArgs {
    /// The trial whose observation log receives the points (Katib sets KATIB_TRIAL_NAME in trial
    /// containers).
    #[arg(long, env = "KATIB_TRIAL_NAME")]
    pub trial_name: String,
    /// Metric names to collect, comma-separated; the first is the objective.
    #[arg(long, value_delimiter = ',', required = true)]
    pub metric_names: Vec<String>,
    /// How lines report metrics: `text` (name=value, found by regexes) or `json` (one object per
    /// line).
    #[arg(long, value_enum, ignore_case = true, default_value_t = LineFormat::Text)]
    pub format: LineFormat,
    /// Follow this file for metrics instead of parsing the command's stdout and stderr.
    #[arg(long)]
    pub path: Option<PathBuf>,
    /// A regex finding metrics in TEXT lines, group 1 the name and group 2 the value (Katib's
    /// metricsFormat); repeat for several; replaces the default `name=value` regex.
    #[arg(long = "metrics-format", value_name = "REGEX")]
    pub metrics_formats: Vec<String>,
    /// The DBManager to report to, as host:port or a URL.
    #[arg(long, value_name = "ADDR")]
    pub db_manager: String,
    /// Send a batch as soon as this many points wait.
    #[arg(long, default_value_t = 500)]
    pub batch_size: usize,
    /// Send a batch when its oldest point has waited this many milliseconds.
    #[arg(long, default_value_t = 1000)]
    pub batch_interval_ms: u64,
    /// Buffer at most this many points while the DBManager is unreachable; drop the oldest beyond.
    #[arg(long, default_value_t = 100_000)]
    pub buffer_limit: usize,
    /// After the command exits, keep trying to deliver buffered points for this many seconds.
    #[arg(long, default_value_t = 30)]
    pub flush_timeout_secs: u64,
    /// The command to run, and its arguments.
    #[arg(last = true, required = true, num_args = 1.., value_name = "CMD")]
    pub command: Vec<String>,
}

/// Everything [`run_collect`] needs, built from [`CollectArgs`] or by a caller directly.
#[derive(Clone, Debug)]
pub struct CollectConfig {
    /// The trial whose observation log receives the points.
    pub trial_name: String,
    /// Metric names to collect; the first is the objective.
    pub metric_names: Vec<String>,
    /// How lines report metrics.
    pub format: LineFormat,
    /// Custom TEXT regexes; empty means Katib's default.
    pub metrics_formats: Vec<String>,
    /// A file to follow instead of the command's output.
    pub path: Option<PathBuf>,
    /// The DBManager, as host:port or a URL.
    pub db_manager_address: String,
    /// The command and its arguments, run without a shell.
    pub command: Vec<String>,
    /// Batching, retrying and buffering.
    pub push: PushConfig,
}

impl From<CollectArgs> for CollectConfig {
    fn from(args: CollectArgs) -> CollectConfig {
        CollectConfig {
            trial_name: args.trial_name,
            // `--metric-names "loss, accuracy"` means `accuracy`, not ` accuracy`.
            metric_names: args
                .metric_names
                .iter()
                .map(|name| name.trim().to_string())
                .collect(),
            format: args.format,
            metrics_formats: args.metrics_formats,
            path: args.path,
            db_manager_address: args.db_manager,
            command: args.command,
            push: PushConfig {
                batch_size: args.batch_size,
                batch_interval: Duration::from_millis(args.batch_interval_ms),
                buffer_limit: args.buffer_limit,
                flush_timeout: Duration::from_secs(args.flush_timeout_secs),
                ..PushConfig::default()
            },
        }
    }
}

/// What a collection did, for callers that want more than the exit code.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CollectOutcome {
    /// The command's exit status as a shell reports it (`128 + n` for signal `n`).
    pub exit_code: i32,
    /// What the parsers saw, over all streams.
    pub parse_stats: ParseStats,
    /// Whether the objective never appeared and `unavailable` was reported for it.
    pub reported_unavailable: bool,
    /// What happened to the points.
    pub push_report: PushReport,
}

/// Runs `sextant collect`, passing the command's output through to this process's stdout and
/// stderr, and returns the command's exit code.
///
/// Errors are setup failures only (bad names or regexes, a bad address, a command that cannot
/// start); an unreachable DBManager is retried and reported in the logs, never an error.
pub async fn run_collect(config: CollectConfig) -> Result<i32> {
    let outcome = run_collect_with_output(config, tokio::io::stdout(), tokio::io::stderr()).await?;
    Ok(outcome.exit_code)
}

/// [`run_collect`] with the pass-through writers chosen by the caller (tests capture them).
///
/// With [`CollectConfig::path`] set, the command's output is not read at all: it goes straight to
/// this process's stdout and stderr, and the writers are unused.
pub async fn run_collect_with_output<O, E>(
    config: CollectConfig,
    stdout: O,
    stderr: E,
) -> Result<CollectOutcome>
where
    O: AsyncWrite + Unpin + Send + 'static,
    E: AsyncWrite + Unpin + Send + 'static,
{
    let Some(program) = config.command.first().cloned() else {
        return Err(Error::NoCommand);
    };
    let parser = MetricsParser::new(config.format, &config.metric_names, &config.metrics_formats)?;
    let pusher = Pusher::start(
        &config.db_manager_address,
        config.trial_name.clone(),
        config.push.clone(),
    )?;

    let mut command = Command::new(&program);
    command.args(&config.command[1..]).stdin(Stdio::inherit());
    if config.path.is_some() {
        command.stdout(Stdio::inherit()).stderr(Stdio::inherit());
    } else {
        command.stdout(Stdio::piped()).stderr(Stdio::piped());
    }
    let mut child = command.spawn().map_err(|source| Error::Spawn {
        program: program.clone(),
        source,
    })?;

    let sources = match &config.path {
        Some(path) => {
            let (stop, stop_receiver) = oneshot::channel::<()>();
            let path = path.clone();
            let mut stream_parser = StreamParser::new(parser);
            let sender = pusher.sender();
            let task = tokio::spawn(async move {
                let stop = async {
                    // A dropped sender means stop as well.
                    let _ = stop_receiver.await;
                };
                let result = follow_file(
                    &path,
                    FollowStart::BEGINNING,
                    &mut stream_parser,
                    &sender,
                    stop,
                    DEFAULT_FOLLOW_POLL_INTERVAL,
                )
                .await;
                (stream_parser, result)
            });
            Sources::File { stop, task }
        }
        None => {
            let mut tasks = Vec::with_capacity(2);
            if let Some(reader) = child.stdout.take() {
                tasks.push(spawn_stream(
                    reader,
                    stdout,
                    "stdout",
                    parser.clone(),
                    &pusher,
                ));
            }
            if let Some(reader) = child.stderr.take() {
                tasks.push(spawn_stream(reader, stderr, "stderr", parser, &pusher));
            }
            Sources::Streams(tasks)
        }
    };

    let status = wait_forwarding_sigterm(&mut child, &program).await?;
    let parsers = sources.finish().await;

    let mut parse_stats = ParseStats::default();
    for parser in &parsers {
        parse_stats.add(parser.stats());
    }
    let objective = &config.metric_names[0];
    let reported_unavailable = !parsers.iter().any(|parser| parser.metric_seen(objective));
    if reported_unavailable {
        tracing::warn!(metric = %objective, "the objective metric never appeared; reporting it as unavailable");
        pusher
            .push(vec![ParsedMetric {
                name: objective.clone(),
                value: UNAVAILABLE_VALUE.to_string(),
                timestamp: Utc::now(),
            }])
            .await;
    }
    let push_report = pusher.finish().await;
    let exit_code = exit_code(status);
    tracing::info!(
        exit_code,
        lines = parse_stats.lines,
        points = parse_stats.points,
        skipped_lines = parse_stats.skipped,
        oversized_lines = parse_stats.oversized,
        delivered = push_report.delivered,
        dropped = push_report.dropped,
        rejected = push_report.rejected,
        undelivered = push_report.undelivered,
        "metrics collection finished"
    );
    Ok(CollectOutcome {
        exit_code,
        parse_stats,
        reported_unavailable,
        push_report,
    })
}

/// A running source task: the parser comes back with the result so its counts survive an error.
type SourceTask = JoinHandle<(StreamParser, Result<()>)>;

/// The tasks reading metrics while the command runs.
enum Sources {
    /// One task per output pipe.
    Streams(Vec<SourceTask>),
    /// One task following a file, stopped through `stop`.
    File {
        stop: oneshot::Sender<()>,
        task: SourceTask,
    },
}

impl Sources {
    /// Ends every source once the command has exited, and returns their parsers.
    async fn finish(self) -> Vec<StreamParser> {
        let tasks = match self {
            Sources::Streams(tasks) => {
                let mut finished = Vec::with_capacity(tasks.len());
                let deadline = tokio::time::Instant::now() + PIPE_DRAIN_TIMEOUT;
                for mut task in tasks {
                    match tokio::time::timeout_at(deadline, &mut task).await {
                        Ok(joined) => finished.push(joined),
                        Err(_) => {
                            tracing::warn!(
                                timeout_secs = PIPE_DRAIN_TIMEOUT.as_secs(),
                                "the command exited but its output stays open (a background \
                                 process?); no longer collecting from it"
                            );
                            task.abort();
                        }
                    }
                }
                finished
            }
            Sources::File { stop, task } => {
                // The task may have ended already (an error), which the join reports.
                let _ = stop.send(());
                vec![task.await]
            }
        };
        let mut parsers = Vec::with_capacity(tasks.len());
        for joined in tasks {
            match joined {
                Ok((parser, result)) => {
                    if let Err(error) = result {
                        tracing::warn!(error = %error_chain(&error), "metrics source failed");
                    }
                    parsers.push(parser);
                }
                Err(error) => tracing::error!(%error, "metrics source task failed"),
            }
        }
        parsers
    }
}

fn spawn_stream<R, W>(
    reader: R,
    writer: W,
    stream: &'static str,
    parser: MetricsParser,
    pusher: &Pusher,
) -> SourceTask
where
    R: tokio::io::AsyncRead + Unpin + Send + 'static,
    W: AsyncWrite + Unpin + Send + 'static,
{
    let sender = pusher.sender();
    let mut stream_parser = StreamParser::new(parser);
    tokio::spawn(async move {
        let result = collect_stream(
            reader,
            Some(writer),
            stream,
            &mut stream_parser,
            &sender,
            // Given up on from outside, by `Sources::finish`.
            std::future::pending(),
        )
        .await;
        (stream_parser, result)
    })
}

/// Waits for the command, forwarding SIGTERM to it so it can shut down while we keep collecting.
async fn wait_forwarding_sigterm(
    child: &mut tokio::process::Child,
    program: &str,
) -> Result<ExitStatus> {
    let wait_error = |source| Error::Wait {
        program: program.to_string(),
        source,
    };
    let mut terminate =
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(terminate) => terminate,
            Err(error) => {
                tracing::warn!(%error, "cannot listen for SIGTERM; it will not be forwarded");
                return child.wait().await.map_err(wait_error);
            }
        };
    loop {
        tokio::select! {
            status = child.wait() => return status.map_err(wait_error),
            Some(()) = terminate.recv() => {
                let Some(pid) = child.id() else { continue };
                let pid = nix::unistd::Pid::from_raw(pid as i32);
                if let Err(error) = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM) {
                    tracing::warn!(%error, "cannot forward SIGTERM to the command");
                }
            }
        }
    }
}

/// The exit status as a shell reports it.
fn exit_code(status: ExitStatus) -> i32 {
    use std::os::unix::process::ExitStatusExt;
    match (status.code(), status.signal()) {
        (Some(code), _) => code,
        (None, Some(signal)) => 128 + signal,
        // Neither an exit code nor a signal cannot happen for a process that ended; 1 is
        // the conventional generic failure.
        (None, None) => 1,
    }
}

/// An error and its sources, for a log line.
fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}
