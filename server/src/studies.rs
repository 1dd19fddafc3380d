//! `/api/v1/studies`: ask and tell, so a notebook drives the search algorithms itself, as
//! Optuna's and Vizier's users do.
//!
//! A study is an experiment without a trial template: its client runs each trial and reports
//! it. `ask` creates a Running trial with the algorithm's next assignments; `tell` records
//! its values (or its failure) as an observation log and a final condition, and the study's
//! Katib status is computed by the same engine as an experiment's. A study is listed, read and
//! deleted through `/experiments`.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use chrono::Utc;
use sextant_controller::local::load_trial;
use sextant_controller::observation_log::observation;
use sextant_controller::suggest::{self, Outcome, Suggester};
use sextant_experiment::Experiment;
use sextant_experiment::api::trial::TrialConditionType;
use sextant_experiment::engine::{self, Observed, ObservedSuggestion, ObservedTrial};
use sextant_store::{MetricPoint, NewTrial, TrialConditionUpdate};

use crate::AppState;
use crate::body::{JsonBody, SpecText};
use crate::error::ApiError;
use crate::events::{Event, ExperimentEvent, TrialEvent};
use crate::experiments::{SpecKind, fetch, load_spec, store_new, warm_history};
use crate::openapi::KatibExperiment;
use crate::supervisor::{is_finished, is_study};
use crate::views::{ErrorBody, TellRequest, TellState, TrialView};

/// Each study's algorithm state (Hyperband's bracket, say), and one ask or tell at a time per
/// study, so two clients never get the same trial name or a stale history.
#[derive(Clone, Default)]
pub(crate) struct Studies {
    open: Arc<Mutex<HashMap<String, Arc<tokio::sync::Mutex<OpenStudy>>>>>,
}

/// What the server keeps of a study between asks.
#[derive(Debug)]
struct OpenStudy {
    suggester: Suggester,
    /// The trials `spec.warmStart.fromExperiments` lends, read at the first ask after the
    /// study opened, as a driver reads them when it starts.
    warm_history: Option<Vec<ObservedTrial>>,
}

impl Studies {
    fn of(&self, name: &str) -> Arc<tokio::sync::Mutex<OpenStudy>> {
        let mut open = self
            .open
            .lock()
            .unwrap_or_else(|poison| poison.into_inner());
        open.entry(name.to_string())
            .or_insert_with(|| {
                Arc::new(tokio::sync::Mutex::new(OpenStudy {
                    suggester: Suggester::new(None),
                    warm_history: None,
                }))
            })
            .clone()
    }

    /// Forgets a deleted study's state.
    pub(crate) fn forget(&self, name: &str) {
        let mut open = self
            .open
            .lock()
            .unwrap_or_else(|poison| poison.into_inner());
        open.remove(name);
    }
}

pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route("/studies", post(create))
        .route("/studies/{name}/ask", post(ask))
        .route("/studies/{name}/tell", post(tell))
}

/// Create a study: an Experiment spec (YAML or JSON) without a trial template.
#[utoipa::path(
    operation_id = "createStudy",
    post,
    path = "/api/v1/studies",
    request_body(content(
        (KatibExperiment = "application/yaml"),
        (KatibExperiment = "application/json"),
    )),
    responses(
        (status = 201, description = "stored", body = KatibExperiment),
        (status = 400, description = "the body is not UTF-8 YAML or JSON", body = ErrorBody),
        (status = 409, description = "an experiment of that name exists", body = ErrorBody),
        (status = 413, description = "the body is too large", body = ErrorBody),
        (status = 415, description = "not YAML or JSON", body = ErrorBody),
        (status = 422, description = "invalid; every problem by field path, nothing stored", body = ErrorBody),
    ),
    tag = "studies"
)]
pub(crate) async fn create(
    State(state): State<AppState>,
    SpecText(text): SpecText,
) -> Result<Response, ApiError> {
    let experiment = load_spec(&text, SpecKind::Study)?;
    warm_history(&state, &experiment).await?;
    store_new(&state, &experiment).await?;
    state.studies.forget(&experiment.metadata.name);
    Ok((StatusCode::CREATED, axum::Json(experiment)).into_response())
}

/// A study, its trials and their labels, as stored.
struct Loaded {
    experiment: Experiment,
    trials: Vec<ObservedTrial>,
    labels: HashMap<String, BTreeMap<String, String>>,
}

async fn load(state: &AppState, name: &str) -> Result<Loaded, ApiError> {
    // Both reads at once: an ask or tell waits for one round trip to the store, not two.
    let ((experiment, _), records) = tokio::try_join!(fetch(state, name), async {
        Ok::<_, ApiError>(state.store.list_trials(name).await?)
    })?;
    if !is_study(&experiment) {
        return Err(ApiError::Conflict(format!(
            "{} is an experiment that runs its own trials; ask and tell are for studies (created through /api/v1/studies)",
            sextant_echo::echo_quoted(name)
        )));
    }
    let mut trials = Vec::new();
    let mut labels = HashMap::new();
    for record in records {
        let loaded = load_trial(record).map_err(|error| ApiError::Internal(error.to_string()))?;
        labels.insert(loaded.trial.name.clone(), loaded.labels);
        trials.push(loaded.trial);
    }
    Ok(Loaded {
        experiment,
        trials,
        labels,
    })
}

/// Computes and stores the study's status from its trials, and publishes it.
async fn refresh_status(state: &AppState, loaded: Loaded) -> Result<(), ApiError> {
    let name = loaded.experiment.metadata.name.clone();
    let status = engine::compute_status(&Observed {
        experiment: loaded.experiment,
        trials: loaded.trials,
        suggestion: ObservedSuggestion::default(),
        now: Utc::now(),
    });
    let text = serde_json::to_string(&Some(&status))
        .map_err(|error| ApiError::Internal(error.to_string()))?;
    state
        .store
        .update_experiment_status(&name, &text, None)
        .await?;
    state.events.publish(Event::Experiment(ExperimentEvent::of(
        &name, &status, false,
    )));
    Ok(())
}

/// Ask for a trial: the study's algorithm gives its next assignments, and a Running trial is
/// created with them.
#[utoipa::path(
    operation_id = "askStudy",
    post,
    path = "/api/v1/studies/{name}/ask",
    params(("name" = String, Path, description = "the study")),
    responses(
        (status = 201, description = "a new Running trial", body = TrialView),
        (status = 404, description = "no such study", body = ErrorBody),
        (status = 409, description = "not a study, completed, its budget is spent, or its search space is exhausted", body = ErrorBody),
        (status = 503, description = "the algorithm waits for running trials; ask again later", body = ErrorBody),
    ),
    tag = "studies"
)]
pub(crate) async fn ask(
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> Result<Response, ApiError> {
    let study = state.studies.of(&name);
    let mut study = study.lock().await;
    let mut loaded = load(&state, &name).await?;
    if is_finished(&loaded.experiment) {
        return Err(ApiError::Conflict(format!(
            "study {} has completed",
            sextant_echo::echo_quoted(&name)
        )));
    }
    if let Some(max) = loaded.experiment.spec.max_trial_count
        && loaded.trials.len() >= usize::try_from(max).unwrap_or(0)
    {
        return Err(ApiError::Conflict(format!(
            "study {} has asked for all of its maxTrialCount {max} trials",
            sextant_echo::echo_quoted(&name)
        )));
    }
    if study.warm_history.is_none() {
        study.warm_history = Some(warm_history(&state, &loaded.experiment).await?);
    }
    let OpenStudy {
        suggester,
        warm_history,
    } = &mut *study;
    let outcome = suggest::suggest_with_warm_start(
        suggester,
        &loaded.experiment,
        warm_history.as_deref().unwrap_or_default(),
        &loaded.trials,
        &loaded.labels,
        &[],
        1,
    )
    .await;
    let suggested = match outcome {
        Outcome::Assignments(reply) => suggest::suggested_trials(reply).into_iter().next(),
        Outcome::Exhausted { .. } => {
            return Err(ApiError::Conflict(format!(
                "the search space of study {} is exhausted",
                sextant_echo::echo_quoted(&name)
            )));
        }
        Outcome::NotReady { .. } => {
            return Err(ApiError::Unavailable(
                "the algorithm waits for running trials to be told; ask again later".into(),
            ));
        }
        Outcome::Unreachable(reason) | Outcome::Failed(reason) => {
            return Err(ApiError::Internal(format!(
                "the algorithm failed: {reason}"
            )));
        }
    };
    let suggested =
        suggested.ok_or_else(|| ApiError::Internal("the algorithm gave no assignment".into()))?;
    let trial_name = new_trial_name(&name, &loaded.trials);
    let new_trial = NewTrial {
        name: trial_name.clone(),
        experiment_name: name.clone(),
        spec: "{}".into(),
        assignments: serde_json::to_string(&suggested.parameter_assignments)
            .map_err(|error| ApiError::Internal(error.to_string()))?,
        labels: serde_json::to_string(&suggested.labels)
            .map_err(|error| ApiError::Internal(error.to_string()))?,
    };
    let record = state
        .store
        .insert_trial_in(
            &new_trial,
            &TrialConditionUpdate {
                condition_type: TrialConditionType::Running.name().into(),
                reason: "TrialRunning".into(),
                message: "Trial is running".into(),
                start_time: Some(Utc::now()),
                completion_time: None,
            },
        )
        .await?;
    state.events.publish(Event::Trial(TrialEvent {
        experiment: name.clone(),
        name: trial_name.clone(),
        condition: TrialConditionType::Running.name().into(),
    }));
    let view = TrialView::of(record.clone(), loaded.experiment.spec.objective.as_ref())?;
    loaded.trials.push(
        load_trial(record)
            .map_err(|error| ApiError::Internal(error.to_string()))?
            .trial,
    );
    refresh_status(&state, loaded).await?;
    Ok((StatusCode::CREATED, axum::Json(view)).into_response())
}

/// The first free `<study>-NNNNN` name.
fn new_trial_name(study: &str, trials: &[ObservedTrial]) -> String {
    let taken: std::collections::HashSet<&str> =
        trials.iter().map(|trial| trial.name.as_str()).collect();
    (trials.len()..)
        .map(|number| format!("{study}-{number:05}"))
        .find(|name| !taken.contains(name.as_str()))
        .unwrap_or_default()
}

/// Tell a trial's result: its final metric values, or its failure.
#[utoipa::path(
    operation_id = "tellStudy",
    post,
    path = "/api/v1/studies/{name}/tell",
    params(("name" = String, Path, description = "the study")),
    request_body(content = TellRequest, content_type = "application/json"),
    responses(
        (status = 200, description = "the finished trial", body = TrialView),
        (status = 404, description = "no such study or trial", body = ErrorBody),
        (status = 409, description = "not a study, or the trial was told already", body = ErrorBody),
        (status = 422, description = "a missing objective value, or a trial of another study", body = ErrorBody),
    ),
    tag = "studies"
)]
pub(crate) async fn tell(
    State(state): State<AppState>,
    Path(name): Path<String>,
    JsonBody(request): JsonBody<TellRequest>,
) -> Result<axum::Json<TrialView>, ApiError> {
    if request.trial.is_empty() {
        return Err(ApiError::invalid_field(
            "trial",
            "is required: the trial ask gave",
        ));
    }
    let study = state.studies.of(&name);
    let _one_at_a_time = study.lock().await;
    let mut loaded = load(&state, &name).await?;
    let Some(index) = loaded
        .trials
        .iter()
        .position(|trial| trial.name == request.trial)
    else {
        return Err(ApiError::NotFound {
            kind: "trial of this study",
            name: request.trial,
        });
    };
    if loaded.trials[index].condition.is_terminal() {
        return Err(ApiError::Conflict(format!(
            "trial {} was told already ({})",
            sextant_echo::echo_quoted(&request.trial),
            loaded.trials[index].condition.name()
        )));
    }
    let objective = loaded.experiment.spec.objective.clone().unwrap_or_default();
    if request.state == TellState::Succeeded {
        let missing: Vec<String> = objective
            .objective_metrics()
            .into_iter()
            .map(|(metric, _)| metric.to_string())
            .filter(|metric| !request.values.contains_key(metric))
            .collect();
        if !missing.is_empty() {
            return Err(ApiError::Invalid {
                message: format!(
                    "a succeeded trial needs a value of every objective metric; missing: {}",
                    missing.join(", ")
                ),
                fields: missing
                    .into_iter()
                    .map(|metric| crate::FieldProblem {
                        path: format!("values.{metric}"),
                        rule: "is required: an objective metric".into(),
                    })
                    .collect(),
            });
        }
    }
    let now = Utc::now();
    let points: Vec<MetricPoint> = request
        .values
        .iter()
        .map(|(metric, value)| MetricPoint {
            trial_name: request.trial.clone(),
            metric_name: metric.clone(),
            // Debug keeps exponents short (1e-7, 1e300) and round-trips every finite f64.
            value: format!("{value:?}"),
            timestamp: now,
        })
        .collect();
    if !points.is_empty() {
        state
            .store
            .report_observation_log(&request.trial, &points)
            .await?;
    }
    let observed = serde_json::to_string(&observation(&objective, &points))
        .map_err(|error| ApiError::Internal(error.to_string()))?;
    let (condition, reason, message) = match request.state {
        TellState::Succeeded => (
            TrialConditionType::Succeeded,
            "TrialSucceeded",
            "Trial has succeeded".to_string(),
        ),
        TellState::Failed => (
            TrialConditionType::Failed,
            "TrialFailed",
            request
                .message
                .clone()
                .unwrap_or_else(|| "Trial has failed".into()),
        ),
    };
    let record = state
        .store
        .update_trial_outcome(
            &request.trial,
            &observed,
            &TrialConditionUpdate {
                condition_type: condition.name().into(),
                reason: reason.into(),
                message,
                start_time: None,
                completion_time: Some(now),
            },
        )
        .await?;
    state.events.publish(Event::Trial(TrialEvent {
        experiment: name.clone(),
        name: request.trial.clone(),
        condition: condition.name().into(),
    }));
    let view = TrialView::of(record.clone(), Some(&objective))?;
    loaded.trials[index] = load_trial(record)
        .map_err(|error| ApiError::Internal(error.to_string()))?
        .trial;
    refresh_status(&state, loaded).await?;
    Ok(axum::Json(view))
}
