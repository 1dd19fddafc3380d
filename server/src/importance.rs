//! `GET /api/v1/experiments/{name}/importance`: how much each parameter matters to the
//! objective, by fANOVA on a random forest fitted to the succeeded trials (the rule is
//! `sextant_algorithms::importance`'s; this module reads the trials into its coordinates).
//!
//! Each parameter is placed on its search scale (`to_unit`: log for log distributions) in
//! `[0, 1]`; a discrete or categorical one by its index `c` at `c + 0.5` in `[0, k)`, so each
//! of its values weighs the same.

use axum::Router;
use axum::extract::{Path, State};
use axum::routing::get;
use rand::SeedableRng;
use serde::Serialize;
use sextant_algorithms::importance::{self, Bounds, ForestConfig};
use sextant_algorithms::space::{Domain, Parameter, Value};
use sextant_experiment::domain::search_space;
use utoipa::ToSchema;

use crate::AppState;
use crate::error::ApiError;
use crate::experiments::fetch;
use crate::views::{ErrorBody, TrialView};

/// The forest's seed: one experiment's trials always give the same importances.
const SEED: u64 = 0x5e47_a4e7;

pub(crate) fn routes() -> Router<AppState> {
    Router::new().route("/experiments/{name}/importance", get(read))
}

/// Each parameter's importance to the objective.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ImportanceView {
    /// The metric whose variance is explained (the primary objective).
    pub objective_metric_name: String,
    /// The succeeded trials with an objective value the forest was fitted to.
    pub trial_count: usize,
    /// Every parameter, most important first.
    pub parameters: Vec<ParameterImportance>,
}

/// One parameter's importance.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ParameterImportance {
    /// The parameter.
    pub name: String,
    /// The share of the objective's variance it explains alone (its main effect), in
    /// `[0, 1]`; the parameters' shares sum to at most 1, interactions making up the rest.
    pub importance: f64,
}

/// Parameter importance (fANOVA).
#[utoipa::path(
    operation_id = "getParameterImportance",
    get,
    path = "/api/v1/experiments/{name}/importance",
    params(("name" = String, Path, description = "the experiment")),
    responses(
        (status = 200, description = "each parameter's share of the objective's variance; all zero before two trials differ", body = ImportanceView),
        (status = 404, description = "no such experiment", body = ErrorBody),
        (status = 409, description = "no succeeded trial with an objective value yet", body = ErrorBody),
    ),
    tag = "experiments"
)]
pub(crate) async fn read(
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> Result<axum::Json<ImportanceView>, ApiError> {
    let (experiment, _) = fetch(&state, &name).await?;
    let space = search_space(&experiment.spec.parameters).map_err(|errors| {
        ApiError::Internal(format!(
            "the stored experiment's parameters do not parse: {errors:?}"
        ))
    })?;
    let objective = experiment.spec.objective.as_ref();
    let bounds: Vec<Bounds> = space.parameters().iter().map(bounds_of).collect();
    let mut rows = Vec::new();
    let mut targets = Vec::new();
    for record in state.store.list_trials(&name).await? {
        if record.condition_type != "Succeeded" {
            continue;
        }
        let trial = TrialView::of(record, objective)?;
        let Some(target) = trial.objective_value.filter(|value| value.is_finite()) else {
            continue;
        };
        let pairs = trial
            .parameter_assignments
            .iter()
            .map(|assignment| (assignment.name.as_str(), assignment.value.as_str()));
        // A trial whose values no longer fit the space (it cannot happen to trials the
        // server made) tells nothing about it.
        let Ok(assignment) = space.parse_assignment(pairs) else {
            continue;
        };
        rows.push(
            space
                .parameters()
                .iter()
                .zip(assignment.values)
                .map(|(parameter, value)| coordinate(parameter, value))
                .collect::<Vec<f64>>(),
        );
        targets.push(target);
    }
    let trial_count = rows.len();
    let shares = tokio::task::spawn_blocking(move || {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(SEED);
        importance::fanova(&bounds, &rows, &targets, &ForestConfig::default(), &mut rng)
    })
    .await
    .map_err(|error| ApiError::Internal(error.to_string()))?
    .map_err(|error| match error {
        importance::Error::NoTrials => ApiError::Conflict(format!(
            "experiment {} has no succeeded trial with an objective value yet",
            sextant_echo::echo_quoted(&name)
        )),
        other => ApiError::Internal(other.to_string()),
    })?;
    let mut parameters: Vec<ParameterImportance> = space
        .parameters()
        .iter()
        .zip(shares)
        .map(|(parameter, importance)| ParameterImportance {
            name: parameter.name.clone(),
            importance,
        })
        .collect();
    parameters.sort_by(|a, b| b.importance.total_cmp(&a.importance));
    Ok(axum::Json(ImportanceView {
        objective_metric_name: objective
            .map(|objective| objective.objective_metric_name.clone())
            .unwrap_or_default(),
        trial_count,
        parameters,
    }))
}

/// The side of the box a parameter's coordinates lie in.
fn bounds_of(parameter: &Parameter) -> Bounds {
    let high = match &parameter.domain {
        Domain::Discrete { values, .. } => values.len() as f64,
        Domain::Categorical { choices } => choices.len() as f64,
        Domain::Double { .. } | Domain::Int { .. } => 1.0,
    };
    Bounds { low: 0.0, high }
}

/// A value's coordinate in [`bounds_of`] its parameter.
fn coordinate(parameter: &Parameter, value: Value) -> f64 {
    match value {
        Value::Choice(index) => index as f64 + 0.5,
        Value::Double(_) | Value::Int(_) => parameter.to_unit(value),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn choices_sit_in_the_middle_of_their_own_unit_and_numbers_on_their_scale() {
        let categorical = Parameter {
            name: "optimizer".into(),
            domain: Domain::Categorical {
                choices: vec!["sgd".into(), "adam".into(), "rmsprop".into()],
            },
        };
        assert_eq!(
            bounds_of(&categorical),
            Bounds {
                low: 0.0,
                high: 3.0
            }
        );
        assert_eq!(coordinate(&categorical, Value::Choice(2)), 2.5);
        let learning_rate = Parameter {
            name: "lr".into(),
            domain: Domain::Double {
                min: 0.001,
                max: 0.1,
                step: None,
                distribution: sextant_algorithms::space::Distribution::LogUniform,
            },
        };
        assert_eq!(
            bounds_of(&learning_rate),
            Bounds {
                low: 0.0,
                high: 1.0
            }
        );
        assert!((coordinate(&learning_rate, Value::Double(0.01)) - 0.5).abs() < 1e-12);
    }
}
