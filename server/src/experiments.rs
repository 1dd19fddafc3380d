//! `/api/v1/experiments`: submit, list, get, stop, resume and delete experiments.
//!
//! A submitted spec goes through the same parsing, defaulting and validation as `sextant run`;
//! an invalid one is refused with 422 naming every field path, and nothing is stored. A valid
//! one is stored, then its driver starts (see `supervisor`).

use axum::Router;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::Deserialize;
use sextant_controller::local::LocalError;
use sextant_experiment::api::experiment::ExperimentConditionType;
use sextant_experiment::api::{ConditionStatus, latest_true_condition, set_condition};
use sextant_experiment::engine::ObservedTrial;
use sextant_experiment::{Experiment, defaults, parse, validation};
use utoipa::IntoParams;

use crate::AppState;
use crate::body::{ApiQuery, JsonBody, SpecText};
use crate::error::ApiError;
use crate::events::{DeletedEvent, Event, ExperimentEvent};
use crate::openapi::KatibExperiment;
use crate::pagination::PageQuery;
use crate::supervisor::{
    STOPPED_ANNOTATION, experiment_dir, is_finished, is_stopped, is_study, read_experiment,
};
use crate::views::{ErrorBody, ExperimentList, ResumeRequest};

pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route("/experiments", post(create).get(list))
        .route("/experiments/{name}", get(read).delete(delete))
        .route("/experiments/{name}/stop", post(stop))
        .route("/experiments/{name}/resume", post(resume))
}

/// How a spec is checked before it is stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SpecKind {
    /// An experiment: the server runs its trials from its template.
    Experiment,
    /// A study: its client runs the trials (ask and tell), so it has no template.
    Study,
}

/// Parses, defaults and validates one Experiment from a YAML or JSON text; every problem is a
/// 422 naming its field path.
pub(crate) fn load_spec(text: &str, kind: SpecKind) -> Result<Experiment, ApiError> {
    let mut experiments = parse::parse_experiments(text).map_err(|error| match error {
        parse::ParseError::UnsupportedApiVersion { .. } => {
            ApiError::invalid_field("apiVersion", error.to_string())
        }
        parse::ParseError::NoExperiment => ApiError::invalid_field(
            "kind",
            "the body holds no document of kind Experiment".to_string(),
        ),
        parse::ParseError::Yaml { source, .. } => ApiError::Invalid {
            message: format!("the body does not fit the Experiment schema: {source}"),
            fields: vec![crate::FieldProblem {
                path: yaml_error_path(&source),
                rule: source.to_string(),
            }],
        },
    })?;
    if experiments.len() != 1 {
        return Err(ApiError::invalid_field(
            "(body)",
            format!("holds {} experiments; send exactly one", experiments.len()),
        ));
    }
    let mut experiment = experiments.remove(0);
    defaults::apply_defaults(&mut experiment);
    let checked = match kind {
        SpecKind::Experiment => validation::validate(&experiment),
        SpecKind::Study => validation::validate_study(&experiment),
    };
    checked.map_err(|errors| ApiError::invalid("the experiment", &errors))?;
    if experiment.status.is_some() {
        return Err(ApiError::invalid_field(
            "status",
            "is written by the server; a submitted experiment has none",
        ));
    }
    Ok(experiment)
}

/// The earlier experiments' trials the experiment's warm start gives its algorithm, read from
/// the server's store; a source the store does not hold, or one that does not fit, is a 422
/// naming `spec.warmStart.fromExperiments[i]`.
pub(crate) async fn warm_history(
    state: &AppState,
    experiment: &Experiment,
) -> Result<Vec<ObservedTrial>, ApiError> {
    sextant_controller::local::warm_start::history_from_store(&state.store, experiment)
        .await
        .map_err(|error| match error {
            LocalError::Invalid(errors) => ApiError::invalid("the experiment", &errors),
            LocalError::Store(error) => error.into(),
            other => ApiError::Internal(other.to_string()),
        })
}

/// The field path serde_yaml names in its message (`spec.parameters[0].name: ...`), or the
/// whole body when it names none.
fn yaml_error_path(error: &serde_yaml::Error) -> String {
    let message = error.to_string();
    match message.split_once(": ") {
        Some((path, _)) if !path.contains(' ') && !path.is_empty() => path.to_string(),
        _ => "(body)".to_string(),
    }
}

/// Stores a new experiment or study (refusing an existing name) and returns it as stored.
pub(crate) async fn store_new(state: &AppState, experiment: &Experiment) -> Result<(), ApiError> {
    let spec =
        serde_json::to_string(experiment).map_err(|error| ApiError::Internal(error.to_string()))?;
    state
        .store
        .upsert_experiment(&experiment.metadata.name, &spec, "null", Some(0))
        .await
        .map_err(|error| match error {
            sextant_store::Error::Conflict { .. } => name_taken(&experiment.metadata.name),
            other => other.into(),
        })?;
    Ok(())
}

/// The refusal of a name an experiment has already.
fn name_taken(name: &str) -> ApiError {
    ApiError::Conflict(format!(
        "experiment {} exists already; delete it first or choose another name",
        sextant_echo::echo_quoted(name)
    ))
}

/// Reads a stored experiment, or 404.
pub(crate) async fn fetch(state: &AppState, name: &str) -> Result<(Experiment, i64), ApiError> {
    let record = state
        .store
        .get_experiment(name)
        .await?
        .ok_or_else(|| ApiError::NotFound {
            kind: "experiment",
            name: name.to_string(),
        })?;
    Ok((read_experiment(&record)?, record.resource_version))
}

/// Reads a stored experiment this server may act on: 404 when it is not stored, 409 when it
/// mirrors a cluster's (the persistence agent writes it; the cluster's controller runs it).
async fn fetch_own(state: &AppState, name: &str) -> Result<(Experiment, i64), ApiError> {
    let (experiment, version) = fetch(state, name).await?;
    if let Some(namespace) = experiment.cluster_namespace() {
        return Err(ApiError::managed_by_cluster("experiment", name, namespace));
    }
    Ok((experiment, version))
}

fn json(experiment: &Experiment, status: StatusCode) -> Response {
    (status, axum::Json(experiment)).into_response()
}

/// How a submission is carried out.
#[derive(Debug, Clone, Default, Deserialize, IntoParams)]
#[serde(rename_all = "camelCase")]
#[into_params(parameter_in = Query)]
pub(crate) struct CreateQuery {
    /// Check the spec as a submission would (parsing, defaulting, validation, the template,
    /// the name being free) and answer with the defaulted experiment, storing and starting
    /// nothing: what the web UI's form asks before it submits.
    pub dry_run: Option<bool>,
}

/// Submit an experiment.
///
/// The body is a Katib Experiment (`kubeflow.org/v1beta1` or `sextant.dev/v1beta1`), as YAML
/// or JSON. Its trials run on the server's machine as local processes.
#[utoipa::path(
    operation_id = "createExperiment",
    post,
    path = "/api/v1/experiments",
    params(CreateQuery),
    request_body(content(
        (KatibExperiment = "application/yaml"),
        (KatibExperiment = "application/json"),
    )),
    responses(
        (status = 200, description = "with `dryRun=true`: valid, as it would be stored; nothing stored", body = KatibExperiment),
        (status = 201, description = "stored and started", body = KatibExperiment),
        (status = 400, description = "the body is not UTF-8 YAML or JSON", body = ErrorBody),
        (status = 409, description = "an experiment of that name exists", body = ErrorBody),
        (status = 413, description = "the body is too large", body = ErrorBody),
        (status = 415, description = "not YAML or JSON", body = ErrorBody),
        (status = 422, description = "invalid; every problem by field path, nothing stored", body = ErrorBody),
    ),
    tag = "experiments"
)]
pub(crate) async fn create(
    State(state): State<AppState>,
    ApiQuery(query): ApiQuery<CreateQuery>,
    SpecText(text): SpecText,
) -> Result<Response, ApiError> {
    let experiment = load_spec(&text, SpecKind::Experiment)?;
    // A template that cannot run on this machine (a configMap outside the experiment's
    // directory, a kind with no local runner) is refused before anything is stored.
    let dir = experiment_dir(&state.config, &experiment.metadata.name);
    sextant_controller::local::launch::template(&experiment, &dir, &dir)
        .map_err(|error| ApiError::invalid_field("spec.trialTemplate", error.to_string()))?;
    warm_history(&state, &experiment).await?;
    if query.dry_run.unwrap_or(false) {
        if state
            .store
            .get_experiment(&experiment.metadata.name)
            .await?
            .is_some()
        {
            return Err(name_taken(&experiment.metadata.name));
        }
        return Ok(json(&experiment, StatusCode::OK));
    }
    store_new(&state, &experiment).await?;
    state.supervisor.start(experiment.clone());
    state.events.publish(Event::Experiment(ExperimentEvent::of(
        &experiment.metadata.name,
        &Default::default(),
        false,
    )));
    Ok(json(&experiment, StatusCode::CREATED))
}

/// Which experiments to list.
#[derive(Debug, Clone, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct ExperimentFilter {
    /// Only experiments whose latest true condition is this (`Created`, `Running`,
    /// `Restarting`, `Succeeded`, `Failed`).
    pub condition: Option<String>,
    /// Only experiments whose name contains this.
    pub name: Option<String>,
}

/// List experiments (and studies), oldest first.
#[utoipa::path(
    operation_id = "listExperiments",
    get,
    path = "/api/v1/experiments",
    params(ExperimentFilter, PageQuery),
    responses(
        (status = 200, description = "a page of experiments", body = ExperimentList),
        (status = 422, description = "a bad page size or token, or another query parameter that does not fit", body = ErrorBody),
    ),
    tag = "experiments"
)]
pub(crate) async fn list(
    State(state): State<AppState>,
    ApiQuery(filter): ApiQuery<ExperimentFilter>,
    ApiQuery(page): ApiQuery<PageQuery>,
) -> Result<axum::Json<ExperimentList>, ApiError> {
    let mut experiments = Vec::new();
    for record in state.store.list_experiments().await? {
        let experiment = read_experiment(&record)?;
        if let Some(wanted) = &filter.name
            && !experiment.metadata.name.contains(wanted.as_str())
        {
            continue;
        }
        if let Some(wanted) = &filter.condition {
            let condition = experiment
                .status
                .as_ref()
                .and_then(|status| latest_true_condition(&status.conditions))
                .map(|condition| condition.condition_type.name());
            if condition != Some(wanted.as_str()) {
                continue;
            }
        }
        experiments.push(experiment);
    }
    let (experiments, next_page_token) = page.page(experiments)?;
    Ok(axum::Json(ExperimentList {
        experiments,
        next_page_token,
    }))
}

/// Get an experiment with its Katib status.
#[utoipa::path(
    operation_id = "getExperiment",
    get,
    path = "/api/v1/experiments/{name}",
    params(("name" = String, Path, description = "the experiment")),
    responses(
        (status = 200, description = "the experiment", body = KatibExperiment),
        (status = 404, description = "no such experiment", body = ErrorBody),
    ),
    tag = "experiments"
)]
pub(crate) async fn read(
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> Result<Response, ApiError> {
    let (experiment, _) = fetch(&state, &name).await?;
    Ok(json(&experiment, StatusCode::OK))
}

/// Stop a running experiment: its running trials are killed (they re-run on resume), and it
/// stays stopped across server restarts until resumed.
#[utoipa::path(
    operation_id = "stopExperiment",
    post,
    path = "/api/v1/experiments/{name}/stop",
    params(("name" = String, Path, description = "the experiment")),
    responses(
        (status = 200, description = "stopped", body = KatibExperiment),
        (status = 404, description = "no such experiment", body = ErrorBody),
        (status = 409, description = "a study, already finished, or a cluster's", body = ErrorBody),
    ),
    tag = "experiments"
)]
pub(crate) async fn stop(
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> Result<Response, ApiError> {
    let (experiment, _) = fetch_own(&state, &name).await?;
    if is_study(&experiment) {
        return Err(ApiError::Conflict(format!(
            "{} is a study: its client runs its trials, so there is nothing to stop",
            sextant_echo::echo_quoted(&name)
        )));
    }
    state.supervisor.stop(&name).await;
    // Read again: the driver wrote its last status as it stopped. A stopped driver never
    // completes its experiment, so a completed one had finished by itself (perhaps while its
    // driver was still winding down): there was nothing to stop.
    let (mut experiment, _) = fetch(&state, &name).await?;
    if is_finished(&experiment) {
        return Err(ApiError::Conflict(format!(
            "experiment {} has completed; there is nothing to stop",
            sextant_echo::echo_quoted(&name)
        )));
    }
    if !is_stopped(&experiment) {
        let now = chrono::Utc::now();
        experiment.metadata.annotations.insert(
            STOPPED_ANNOTATION.to_string(),
            now.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        );
        // Katib's clients read the conditions: a stopped experiment is not Running. Its
        // killed trials keep their condition, so that a resume re-runs them.
        let status = experiment.status.get_or_insert_with(Default::default);
        set_condition(
            &mut status.conditions,
            ExperimentConditionType::Running,
            ConditionStatus::False,
            "ExperimentStopped",
            "Experiment is stopped on request; resume it to go on",
            now,
        );
        write_spec(&state, &experiment).await?;
    }
    publish_state(&state, &experiment);
    Ok(json(&experiment, StatusCode::OK))
}

/// Resume a stopped experiment (or a completed one whose `resumePolicy` allows it), with a new
/// `maxTrialCount` when given.
#[utoipa::path(
    operation_id = "resumeExperiment",
    post,
    path = "/api/v1/experiments/{name}/resume",
    params(("name" = String, Path, description = "the experiment")),
    request_body(content = ResumeRequest, content_type = "application/json"),
    responses(
        (status = 200, description = "running again", body = KatibExperiment),
        (status = 404, description = "no such experiment", body = ErrorBody),
        (status = 409, description = "running already, a study, completed and not restartable, or a cluster's", body = ErrorBody),
        (status = 422, description = "the new budget breaks a rule", body = ErrorBody),
    ),
    tag = "experiments"
)]
pub(crate) async fn resume(
    State(state): State<AppState>,
    Path(name): Path<String>,
    JsonBody(request): JsonBody<ResumeRequest>,
) -> Result<Response, ApiError> {
    let (old, _) = fetch_own(&state, &name).await?;
    if is_study(&old) {
        return Err(ApiError::Conflict(format!(
            "{} is a study: its client runs its trials",
            sextant_echo::echo_quoted(&name)
        )));
    }
    if state.supervisor.is_running(&name) {
        return Err(ApiError::Conflict(format!(
            "experiment {} is running; stop it before resuming it with a new budget",
            sextant_echo::echo_quoted(&name)
        )));
    }
    let mut experiment = old.clone();
    if let Some(max) = request.max_trial_count {
        experiment.spec.max_trial_count = Some(max);
    }
    validation::validate_update(&old, &experiment)
        .map_err(|errors| ApiError::invalid("the resumed experiment", &errors))?;
    if is_finished(&experiment) {
        return Err(ApiError::Conflict(format!(
            "experiment {} has completed and will not run again: raise maxTrialCount above its trials, with resumePolicy LongRunning or FromVolume",
            sextant_echo::echo_quoted(&name)
        )));
    }
    experiment.metadata.annotations.remove(STOPPED_ANNOTATION);
    write_spec(&state, &experiment).await?;
    state.supervisor.start(experiment.clone());
    publish_state(&state, &experiment);
    Ok(json(&experiment, StatusCode::OK))
}

/// Delete an experiment (or study): its driver is stopped, and its trials, observation logs,
/// output logs and working directory go with it.
#[utoipa::path(
    operation_id = "deleteExperiment",
    delete,
    path = "/api/v1/experiments/{name}",
    params(("name" = String, Path, description = "the experiment")),
    responses(
        (status = 204, description = "deleted"),
        (status = 404, description = "no such experiment", body = ErrorBody),
        (status = 409, description = "a cluster's experiment, mirrored by the persistence agent", body = ErrorBody),
    ),
    tag = "experiments"
)]
pub(crate) async fn delete(
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> Result<StatusCode, ApiError> {
    // The name must be stored (and so valid) before it becomes a path.
    fetch_own(&state, &name).await?;
    // Stopping waits for the driver's uploads, so no trial's log is kept after this forgets.
    state.supervisor.stop(&name).await;
    state.studies.forget(&name);
    state
        .artifacts
        .forget_experiment(&state.store, &name)
        .await?;
    state.store.delete_experiment(&name).await?;
    let dir = experiment_dir(&state.config, &name);
    match tokio::fs::remove_dir_all(&dir).await {
        Ok(()) => {}
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {}
        Err(error) => {
            return Err(ApiError::Internal(format!(
                "experiment {name:?} is deleted but its directory {} is not: {error}",
                dir.display()
            )));
        }
    }
    state
        .events
        .publish(Event::ExperimentDeleted(DeletedEvent { name }));
    Ok(StatusCode::NO_CONTENT)
}

/// Stores an experiment's spec (metadata included), keeping its status.
async fn write_spec(state: &AppState, experiment: &Experiment) -> Result<(), ApiError> {
    let spec = Experiment {
        status: None,
        ..experiment.clone()
    };
    let spec =
        serde_json::to_string(&spec).map_err(|error| ApiError::Internal(error.to_string()))?;
    let status = serde_json::to_string(&experiment.status)
        .map_err(|error| ApiError::Internal(error.to_string()))?;
    state
        .store
        .upsert_experiment(&experiment.metadata.name, &spec, &status, None)
        .await?;
    Ok(())
}

fn publish_state(state: &AppState, experiment: &Experiment) {
    state.events.publish(Event::Experiment(ExperimentEvent::of(
        &experiment.metadata.name,
        &experiment.status.clone().unwrap_or_default(),
        is_stopped(experiment),
    )));
}
