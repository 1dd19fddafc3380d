//! What changes, as it happens: experiment progress, trial conditions, deletions, published
//! to one hub and streamed to each client as Server-Sent Events (`GET /api/v1/events`).
//!
//! Every event carries a sequence number as its SSE `id`. A client too slow to keep up with
//! the hub's buffer is told how many events it missed (`event: lagged`) instead of silently
//! losing them, and can read the current state from the API.

use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::routing::get;
use futures::Stream;
use serde::{Deserialize, Serialize};
use sextant_experiment::api::experiment::ExperimentStatus;
use sextant_experiment::api::latest_true_condition;
use tokio::sync::broadcast;
use tokio_stream::StreamExt;
use tokio_stream::wrappers::BroadcastStream;
use tokio_stream::wrappers::errors::BroadcastStreamRecvError;
use utoipa::{IntoParams, ToSchema};

use crate::AppState;
use crate::body::ApiQuery;

/// Events buffered for slow clients before they are told they lagged: an experiment running a
/// hundred trials a second publishes a few hundred events a second.
const BUFFER: usize = 1 << 16;

/// Something that changed.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
#[serde(tag = "type", rename_all = "camelCase")]
pub enum Event {
    /// An experiment's condition or counts changed.
    Experiment(ExperimentEvent),
    /// A trial's condition changed (or it was created).
    Trial(TrialEvent),
    /// An experiment was deleted.
    ExperimentDeleted(DeletedEvent),
    /// A pipeline run or one of its steps changed.
    Run(RunEventView),
}

/// A pipeline run's progress.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RunEventView {
    /// The run.
    pub run_id: String,
    /// `runStarted`, `stepStarted`, `stepRetrying`, `stepFinished` or `runFinished`.
    pub change: String,
    /// The step, for step changes.
    pub step: Option<String>,
    /// The `withItems` index of a fanned-out step.
    pub item_index: Option<usize>,
    /// The run's phase (`runFinished`) or the step's (`stepFinished`).
    pub phase: Option<String>,
    /// The attempt, for `stepStarted` and `stepRetrying`.
    pub attempt: Option<u32>,
    /// Why, for failures, skips and retries.
    pub message: Option<String>,
}

impl RunEventView {
    /// The view of `event` of run `run_id`.
    pub(crate) fn of(run_id: &str, event: &sextant_pipeline::RunEvent) -> RunEventView {
        use sextant_pipeline::RunEvent;
        let mut view = RunEventView {
            run_id: run_id.to_string(),
            change: String::new(),
            step: None,
            item_index: None,
            phase: None,
            attempt: None,
            message: None,
        };
        match event {
            RunEvent::RunStarted { .. } => view.change = "runStarted".into(),
            RunEvent::StepStarted {
                step,
                item_index,
                attempt,
            } => {
                view.change = "stepStarted".into();
                view.step = Some(step.clone());
                view.item_index = *item_index;
                view.attempt = Some(*attempt);
            }
            RunEvent::StepRetrying {
                step,
                item_index,
                attempt,
                message,
                ..
            } => {
                view.change = "stepRetrying".into();
                view.step = Some(step.clone());
                view.item_index = *item_index;
                view.attempt = Some(*attempt);
                view.message = Some(message.clone());
            }
            RunEvent::StepFinished {
                step,
                item_index,
                phase,
                message,
            } => {
                view.change = "stepFinished".into();
                view.step = Some(step.clone());
                view.item_index = *item_index;
                view.phase = Some(phase.to_string());
                view.message = message.clone();
            }
            RunEvent::RunFinished { phase, .. } => {
                view.change = "runFinished".into();
                view.phase = Some(phase.to_string());
            }
        }
        view
    }
}

/// An experiment's state.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ExperimentEvent {
    /// The experiment.
    pub name: String,
    /// Its latest true condition (`Created`, `Running`, `Restarting`, `Succeeded`, `Failed`),
    /// if any.
    pub condition: Option<String>,
    /// Trials so far.
    pub trials: i32,
    /// Running trials.
    pub trials_running: i32,
    /// Succeeded trials.
    pub trials_succeeded: i32,
    /// Failed trials.
    pub trials_failed: i32,
    /// Early-stopped trials.
    pub trials_early_stopped: i32,
    /// The best trial so far, if any.
    pub best_trial: Option<String>,
    /// Whether it was stopped on request (and not resumed since).
    pub stopped: bool,
}

impl ExperimentEvent {
    /// The event for an experiment with this status.
    pub(crate) fn of(name: &str, status: &ExperimentStatus, stopped: bool) -> ExperimentEvent {
        ExperimentEvent {
            name: name.to_string(),
            condition: latest_true_condition(&status.conditions)
                .map(|condition| condition.condition_type.name().to_string()),
            trials: status.trials,
            trials_running: status.trials_running,
            trials_succeeded: status.trials_succeeded,
            trials_failed: status.trials_failed,
            trials_early_stopped: status.trials_early_stopped,
            best_trial: (!status.current_optimal_trial.best_trial_name.is_empty())
                .then(|| status.current_optimal_trial.best_trial_name.clone()),
            stopped,
        }
    }
}

/// A trial's new condition.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct TrialEvent {
    /// Its experiment.
    pub experiment: String,
    /// The trial.
    pub name: String,
    /// Its condition now.
    pub condition: String,
}

/// A deleted experiment.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct DeletedEvent {
    /// The experiment.
    pub name: String,
}

impl Event {
    fn kind(&self) -> &'static str {
        match self {
            Event::Experiment(_) => "experiment",
            Event::Trial(_) => "trial",
            Event::ExperimentDeleted(_) => "experimentDeleted",
            Event::Run(_) => "run",
        }
    }

    /// The experiment it is about, if any.
    fn experiment(&self) -> Option<&str> {
        match self {
            Event::Experiment(event) => Some(&event.name),
            Event::Trial(event) => Some(&event.experiment),
            Event::ExperimentDeleted(event) => Some(&event.name),
            Event::Run(_) => None,
        }
    }

    /// The pipeline run it is about, if any.
    fn run(&self) -> Option<&str> {
        match self {
            Event::Run(event) => Some(&event.run_id),
            _ => None,
        }
    }
}

/// An event with its place in the sequence.
#[derive(Debug)]
struct Numbered {
    id: u64,
    event: Event,
}

/// Where events are published and subscribed to.
#[derive(Clone)]
pub(crate) struct EventHub {
    sender: broadcast::Sender<Arc<Numbered>>,
    /// Numbering and sending happen under one lock, so ids arrive in order.
    next_id: Arc<Mutex<u64>>,
}

impl EventHub {
    pub(crate) fn new() -> EventHub {
        let (sender, _) = broadcast::channel(BUFFER);
        EventHub {
            sender,
            next_id: Arc::new(Mutex::new(1)),
        }
    }

    /// Publishes `event` to every subscriber.
    pub(crate) fn publish(&self, event: Event) {
        let mut next_id = self
            .next_id
            .lock()
            .unwrap_or_else(|poison| poison.into_inner());
        let id = *next_id;
        *next_id += 1;
        // No subscriber is not an error: nobody is watching.
        let _ = self.sender.send(Arc::new(Numbered { id, event }));
    }

    fn subscribe(&self) -> broadcast::Receiver<Arc<Numbered>> {
        self.sender.subscribe()
    }
}

/// Which events a client wants.
#[derive(Debug, Clone, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct EventQuery {
    /// Only the events of this experiment (or study).
    pub experiment: Option<String>,
    /// Only the events of this pipeline run.
    pub run: Option<String>,
}

pub(crate) fn routes() -> Router<AppState> {
    Router::new().route("/events", get(stream))
}

/// The event stream.
///
/// Server-Sent Events: `event:` is `experiment`, `trial`, `experimentDeleted`, `run` (data: the
/// JSON of [`Event`]) or `lagged` (data: `{"missed": N}`, when this client fell more than
/// 65,536 events behind); `id:` is the event's sequence number.
#[utoipa::path(
    operation_id = "streamEvents",
    get,
    path = "/api/v1/events",
    params(EventQuery),
    responses(
        (status = 200, description = "a stream of Server-Sent Events", content_type = "text/event-stream", body = String),
        (status = 401, description = "no valid token", body = crate::ErrorBody),
        (status = 422, description = "a query parameter that does not fit", body = crate::ErrorBody),
    ),
    tag = "events"
)]
pub(crate) async fn stream(
    State(state): State<AppState>,
    ApiQuery(query): ApiQuery<EventQuery>,
) -> Sse<impl Stream<Item = Result<SseEvent, Infallible>>> {
    let events =
        BroadcastStream::new(state.events.subscribe()).filter_map(move |received| match received {
            Ok(numbered) => {
                if let Some(wanted) = &query.experiment
                    && numbered.event.experiment() != Some(wanted.as_str())
                {
                    return None;
                }
                if let Some(wanted) = &query.run
                    && numbered.event.run() != Some(wanted.as_str())
                {
                    return None;
                }
                let data = serde_json::to_string(&numbered.event).unwrap_or_default();
                Some(Ok(SseEvent::default()
                    .id(numbered.id.to_string())
                    .event(numbered.event.kind())
                    .data(data)))
            }
            Err(BroadcastStreamRecvError::Lagged(missed)) => Some(Ok(SseEvent::default()
                .event("lagged")
                .data(format!("{{\"missed\":{missed}}}")))),
        });
    let events = futures::StreamExt::take_until(events, state.closing.clone().cancelled_owned());
    Sse::new(events).keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
}
