//! Delivering points to a DBManager: batching, retrying, buffering, flushing.
//!
//! A [`Pusher`] owns a background task that receives points on a channel and calls
//! `DBManager.ReportObservationLog` with batches of them, time-stamped in RFC3339 with
//! nanoseconds. A batch goes out when [`PushConfig::batch_size`] points are waiting, or when the
//! oldest waiting point has waited [`PushConfig::batch_interval`]. One request is in flight at a
//! time, so points arrive in the order they were reported.
//!
//! When the DBManager is unreachable or answers with a transient error (`Unavailable`,
//! `DeadlineExceeded`, `Unknown`, `Internal`, `ResourceExhausted`, `Aborted`, `Cancelled`), the batch
//! goes back to the front of the buffer and is retried after an exponential backoff (doubling
//! from [`PushConfig::initial_backoff`] up to [`PushConfig::max_backoff`]). Meanwhile new points
//! are buffered, up to [`PushConfig::buffer_limit`] (plus the one batch in flight); beyond that
//! the oldest are dropped and counted, with a warning. Any other error means the DBManager will
//! never take that batch (a malformed request, an unknown method): it is dropped and counted as
//! rejected rather than blocking every later point.
//!
//! [`Pusher::finish`] flushes: everything buffered is sent, with the same retries, until
//! [`PushConfig::flush_timeout`] has passed; what is left then is counted as undelivered.
//!
//! Delivery is exactly-once against a DBManager that answers `GetObservationLog`: a point is
//! removed from the buffer only when its request was acknowledged, so it is never sent again
//! after an acknowledgment; and when a request failed, it may still have reached the DBManager
//! (the reply was lost to a timeout or a cut connection), so before its points are sent again
//! the pusher reads the trial's log over their time span and leaves out those already stored.
//! `ReportObservationLog` carries no request id with which the DBManager could recognize the
//! repetition itself. Against a DBManager without `GetObservationLog` it is at-least-once.

use std::collections::{HashSet, VecDeque};
use std::pin::Pin;
use std::time::Duration;

use chrono::SecondsFormat;
use sextant_proto::api::{
    GetObservationLogRequest, Metric, MetricLog, ObservationLog, ReportObservationLogRequest,
    db_manager_client::DbManagerClient,
};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tonic::transport::{Channel, Endpoint};

use crate::parse::ParsedMetric;
use crate::{Error, Result};

/// How many point messages may wait in the channel between sources and the pushing task; the task
/// always takes them promptly, so this only smooths bursts.
const CHANNEL_CAPACITY: usize = 1024;

/// How the [`Pusher`] batches, retries and buffers.
#[derive(Clone, Debug)]
pub struct PushConfig {
    /// A batch is sent as soon as this many points wait.
    pub batch_size: usize,
    /// A batch is sent when its oldest point has waited this long, however small it is.
    pub batch_interval: Duration,
    /// At most this many points are buffered (besides the batch in flight); older ones are
    /// dropped beyond it.
    pub buffer_limit: usize,
    /// The wait before the first retry of a failed request.
    pub initial_backoff: Duration,
    /// The longest wait between retries.
    pub max_backoff: Duration,
    /// How long one request may take before it counts as failed.
    pub request_timeout: Duration,
    /// How long [`Pusher::finish`] keeps trying to deliver what is buffered.
    pub flush_timeout: Duration,
}

impl Default for PushConfig {
    fn default() -> PushConfig {
        PushConfig {
            batch_size: 500,
            batch_interval: Duration::from_secs(1),
            buffer_limit: 100_000,
            initial_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(5),
            request_timeout: Duration::from_secs(10),
            flush_timeout: Duration::from_secs(30),
        }
    }
}

/// What happened to the points given to a [`Pusher`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PushReport {
    /// Points handed to the pusher.
    pub received: u64,
    /// Points in acknowledged requests (a point retried after a lost reply counts once).
    pub delivered: u64,
    /// Points dropped because the buffer was full.
    pub dropped: u64,
    /// Points in requests the DBManager refused with a permanent error.
    pub rejected: u64,
    /// Points still buffered or in flight when the flush timeout passed.
    pub undelivered: u64,
    /// Requests that failed with a transient error and were retried.
    pub failed_attempts: u64,
}

/// Sends points to a DBManager in the background; see the module documentation.
#[derive(Debug)]
pub struct Pusher {
    sender: mpsc::Sender<Vec<ParsedMetric>>,
    close: oneshot::Sender<()>,
    task: JoinHandle<PushReport>,
}

impl Pusher {
    /// Starts pushing to the DBManager at `db_manager_address` (`host:port` or a URL) for
    /// `trial_name`.
    ///
    /// The connection is made lazily, so an unreachable DBManager is not an error here: points
    /// are buffered and retried. Only an address that is not a valid URI is. Must be called within
    /// a tokio runtime.
    pub fn start(
        db_manager_address: &str,
        trial_name: impl Into<String>,
        config: PushConfig,
    ) -> Result<Pusher> {
        let uri = if db_manager_address.contains("://") {
            db_manager_address.to_string()
        } else {
            format!("http://{db_manager_address}")
        };
        let endpoint =
            Endpoint::from_shared(uri).map_err(|source| Error::InvalidDbManagerAddress {
                address: db_manager_address.to_string(),
                source,
            })?;
        let channel = endpoint
            .connect_timeout(config.request_timeout)
            .timeout(config.request_timeout)
            .connect_lazy();
        let (sender, receiver) = mpsc::channel(CHANNEL_CAPACITY);
        let (close, close_receiver) = oneshot::channel();
        let push_loop = PushLoop {
            client: DbManagerClient::new(channel),
            trial_name: trial_name.into(),
            backoff: config.initial_backoff,
            config,
            receiver,
            buffer: VecDeque::new(),
            oldest_waiting_since: None,
            retry_at: None,
            unconfirmed: 0,
            overflowing: false,
            report: PushReport::default(),
        };
        let task = tokio::spawn(push_loop.run(close_receiver));
        Ok(Pusher {
            sender,
            close,
            task,
        })
    }

    /// A sender for sources to hand points to this pusher.
    pub fn sender(&self) -> mpsc::Sender<Vec<ParsedMetric>> {
        self.sender.clone()
    }

    /// Hands `points` to this pusher.
    pub async fn push(&self, points: Vec<ParsedMetric>) {
        if self.sender.send(points).await.is_err() {
            tracing::warn!("the pushing task has stopped; points discarded");
        }
    }

    /// Stops taking points (senders still held elsewhere start failing), delivers what is
    /// buffered until the flush timeout, and reports.
    pub async fn finish(self) -> PushReport {
        // The task may only be gone if it panicked, which the join below reports.
        let _ = self.close.send(());
        drop(self.sender);
        match self.task.await {
            Ok(report) => report,
            Err(error) => {
                tracing::error!(%error, "the pushing task failed");
                PushReport::default()
            }
        }
    }
}

// === impl PushLoop ===

/// A request in flight: the batch travels with it so a failure can put it back.
type InFlight =
    Pin<Box<dyn Future<Output = (Vec<ParsedMetric>, Result<(), tonic::Status>)> + Send>>;

/// The state of the background task.
struct PushLoop {
    client: DbManagerClient<Channel>,
    trial_name: String,
    config: PushConfig,
    receiver: mpsc::Receiver<Vec<ParsedMetric>>,
    buffer: VecDeque<ParsedMetric>,
    /// When the buffer last went from empty to non-empty: the start of the batch interval.
    oldest_waiting_since: Option<Instant>,
    /// No request before this instant: the backoff after a failure.
    retry_at: Option<Instant>,
    /// The next backoff.
    backoff: Duration,
    /// How many points at the front of the buffer were in a failed request, so may be stored
    /// already.
    unconfirmed: usize,
    /// Points are being dropped; warn once per episode, not once per point.
    overflowing: bool,
    report: PushReport,
}

impl PushLoop {
    async fn run(mut self, mut close: oneshot::Receiver<()>) -> PushReport {
        let mut in_flight: Option<InFlight> = None;
        let mut in_flight_points = 0;
        let mut input_open = true;
        let mut flush_deadline: Option<Instant> = None;
        loop {
            if in_flight.is_none()
                && let Some(batch) = self.take_due_batch(flush_deadline.is_some())
            {
                in_flight_points = batch.len() as u64;
                let unconfirmed = self.unconfirmed.min(batch.len());
                self.unconfirmed -= unconfirmed;
                in_flight = Some(self.send(batch, unconfirmed));
            }
            if !input_open && in_flight.is_none() && self.buffer.is_empty() {
                break;
            }
            let wake_at = if in_flight.is_none() {
                self.next_wake(flush_deadline.is_some())
            } else {
                None
            };
            tokio::select! {
                received = self.receiver.recv(), if input_open => match received {
                    Some(points) => self.enqueue(points),
                    None => input_open = false,
                },
                // A dropped `Pusher` closes as `finish` does.
                _ = &mut close, if flush_deadline.is_none() => {
                    // Messages already in the channel still arrive, then `recv` yields `None`.
                    self.receiver.close();
                    flush_deadline = Some(Instant::now() + self.config.flush_timeout);
                }
                (batch, result) = wait_in_flight(&mut in_flight) => {
                    in_flight = None;
                    self.settle(batch, result);
                }
                () = sleep_until_some(wake_at) => {}
                () = sleep_until_some(flush_deadline) => {
                    let abandoned = if in_flight.is_some() { in_flight_points } else { 0 };
                    self.give_up(abandoned);
                    break;
                }
            }
        }
        self.report
    }

    /// Adds points at the back, dropping the oldest beyond the limit.
    fn enqueue(&mut self, points: Vec<ParsedMetric>) {
        self.report.received += points.len() as u64;
        if self.buffer.is_empty() && !points.is_empty() {
            self.oldest_waiting_since = Some(Instant::now());
        }
        self.buffer.extend(points);
        self.enforce_limit();
    }

    fn enforce_limit(&mut self) {
        let excess = self.buffer.len().saturating_sub(self.config.buffer_limit);
        if excess == 0 {
            self.overflowing = false;
            return;
        }
        self.buffer.drain(..excess);
        self.unconfirmed = self.unconfirmed.saturating_sub(excess);
        self.report.dropped += excess as u64;
        if !self.overflowing {
            tracing::warn!(
                buffer_limit = self.config.buffer_limit,
                dropped_so_far = self.report.dropped,
                "DBManager is not keeping up; dropping the oldest buffered points"
            );
            self.overflowing = true;
        }
    }

    /// The next batch, if one should be sent now.
    fn take_due_batch(&mut self, flushing: bool) -> Option<Vec<ParsedMetric>> {
        let now = Instant::now();
        if self.buffer.is_empty() || self.retry_at.is_some_and(|retry_at| retry_at > now) {
            return None;
        }
        let interval_passed = self
            .oldest_waiting_since
            .is_some_and(|since| since + self.config.batch_interval <= now);
        if !(flushing || interval_passed || self.buffer.len() >= self.config.batch_size) {
            return None;
        }
        let length = self.buffer.len().min(self.config.batch_size.max(1));
        let batch: Vec<ParsedMetric> = self.buffer.drain(..length).collect();
        if self.buffer.is_empty() {
            self.oldest_waiting_since = None;
        }
        Some(batch)
    }

    /// When the loop must wake up to send without new input.
    fn next_wake(&self, flushing: bool) -> Option<Instant> {
        if self.buffer.is_empty() {
            return None;
        }
        let batch_due = if flushing {
            Some(Instant::now())
        } else {
            self.oldest_waiting_since
                .map(|since| since + self.config.batch_interval)
        };
        match (batch_due, self.retry_at) {
            (Some(due), Some(retry_at)) => Some(due.max(retry_at)),
            (due, None) => due,
            (None, retry_at) => retry_at,
        }
    }

    /// Sends `batch`, leaving out those of its first `unconfirmed` points that the DBManager
    /// already stored.
    fn send(&self, batch: Vec<ParsedMetric>, unconfirmed: usize) -> InFlight {
        let mut client = self.client.clone();
        let trial_name = self.trial_name.clone();
        Box::pin(async move {
            let stored = match already_stored(&mut client, &trial_name, &batch[..unconfirmed]).await
            {
                Ok(stored) => stored,
                Err(status) => return (batch, Err(status)),
            };
            let request = ReportObservationLogRequest {
                trial_name,
                observation_log: Some(ObservationLog {
                    metric_logs: batch
                        .iter()
                        .enumerate()
                        .filter(|(index, point)| {
                            *index >= unconfirmed || !stored.contains(&point_key(point))
                        })
                        .map(|(_, point)| metric_log(point))
                        .collect(),
                }),
            };
            let result = client.report_observation_log(request).await.map(|_| ());
            (batch, result)
        })
    }

    /// Records the outcome of a request.
    fn settle(&mut self, batch: Vec<ParsedMetric>, result: Result<(), tonic::Status>) {
        match result {
            Ok(()) => {
                self.report.delivered += batch.len() as u64;
                self.retry_at = None;
                self.backoff = self.config.initial_backoff;
            }
            Err(status) if is_transient(status.code()) => {
                self.report.failed_attempts += 1;
                tracing::warn!(
                    code = ?status.code(),
                    message = status.message(),
                    retry_in_ms = self.backoff.as_millis() as u64,
                    buffered = self.buffer.len() + batch.len(),
                    "cannot report metrics to the DBManager; will retry"
                );
                if self.buffer.is_empty() {
                    self.oldest_waiting_since = Some(Instant::now());
                }
                self.unconfirmed += batch.len();
                for point in batch.into_iter().rev() {
                    self.buffer.push_front(point);
                }
                self.enforce_limit();
                self.retry_at = Some(Instant::now() + self.backoff);
                self.backoff = (self.backoff * 2).min(self.config.max_backoff);
            }
            Err(status) => {
                self.report.rejected += batch.len() as u64;
                tracing::warn!(
                    code = ?status.code(),
                    message = status.message(),
                    points = batch.len(),
                    "the DBManager refused a batch of metrics; dropping it"
                );
            }
        }
    }

    /// Counts what is left when the flush timeout passed.
    fn give_up(&mut self, in_flight_points: u64) {
        self.report.undelivered = self.buffer.len() as u64 + in_flight_points;
        if self.report.undelivered > 0 {
            tracing::warn!(
                undelivered = self.report.undelivered,
                flush_timeout_ms = self.config.flush_timeout.as_millis() as u64,
                "could not deliver every metric point before the flush timeout"
            );
        }
    }
}

/// Errors after which the same request may succeed.
fn is_transient(code: tonic::Code) -> bool {
    matches!(
        code,
        tonic::Code::Unavailable
            | tonic::Code::DeadlineExceeded
            | tonic::Code::Unknown
            | tonic::Code::Internal
            | tonic::Code::ResourceExhausted
            | tonic::Code::Aborted
            | tonic::Code::Cancelled
    )
}

/// What identifies a stored point: its metric, its value as reported and its time to the
/// microsecond (the precision DBManagers store).
type PointKey = (String, String, i64);

fn point_key(point: &ParsedMetric) -> PointKey {
    (
        point.name.clone(),
        point.value.clone(),
        point.timestamp.timestamp_micros(),
    )
}

/// The keys of those `points` the DBManager already holds for the trial; none when `points` is
/// empty or the DBManager cannot be asked (`UNIMPLEMENTED`).
async fn already_stored(
    client: &mut DbManagerClient<Channel>,
    trial_name: &str,
    points: &[ParsedMetric],
) -> Result<HashSet<PointKey>, tonic::Status> {
    let (Some(first), Some(last)) = (
        points.iter().map(|point| point.timestamp).min(),
        points.iter().map(|point| point.timestamp).max(),
    ) else {
        return Ok(HashSet::new());
    };
    // Widened by a millisecond, so truncation to the stored precision cannot exclude a point.
    let margin = chrono::Duration::milliseconds(1);
    let request = GetObservationLogRequest {
        trial_name: trial_name.to_string(),
        metric_name: String::new(),
        start_time: (first - margin).to_rfc3339_opts(SecondsFormat::AutoSi, true),
        end_time: (last + margin).to_rfc3339_opts(SecondsFormat::AutoSi, true),
    };
    let logs = match client.get_observation_log(request).await {
        Ok(reply) => {
            reply
                .into_inner()
                .observation_log
                .unwrap_or_default()
                .metric_logs
        }
        Err(status) if status.code() == tonic::Code::Unimplemented => return Ok(HashSet::new()),
        Err(status) => return Err(status),
    };
    Ok(logs
        .into_iter()
        .filter_map(|log| {
            let time = chrono::DateTime::parse_from_rfc3339(&log.time_stamp).ok()?;
            let metric = log.metric?;
            Some((metric.name, metric.value, time.timestamp_micros()))
        })
        .collect())
}

fn metric_log(point: &ParsedMetric) -> MetricLog {
    MetricLog {
        time_stamp: point.timestamp.to_rfc3339_opts(SecondsFormat::AutoSi, true),
        metric: Some(Metric {
            name: point.name.clone(),
            value: point.value.clone(),
        }),
    }
}

async fn wait_in_flight(
    in_flight: &mut Option<InFlight>,
) -> (Vec<ParsedMetric>, Result<(), tonic::Status>) {
    match in_flight {
        Some(request) => request.await,
        None => std::future::pending().await,
    }
}

async fn sleep_until_some(deadline: Option<Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}
