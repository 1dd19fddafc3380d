//! What the web UI needs to draw pipelines beside the runs' own routes:
//! - `GET /api/v1/runs/{id}/graph`: the DAG of a run's pipeline, its steps and what each waits
//!   for, read from the pipeline spec the run was started with (the spec crate resolves the
//!   dependencies, from `dependsOn` and from references to other steps' outputs); the UI lays
//!   it out and colours its steps by their states from `GET /api/v1/runs/{id}`.
//! - `GET /api/v1/trials/{name}/runs`: the pipeline runs of a trial whose template is a
//!   Pipeline (the runs the local driver put in the trial's directory).

use axum::Router;
use axum::extract::{Path, State};
use axum::routing::get;
use serde::Serialize;
use sextant_pipeline::Pipeline;
use utoipa::ToSchema;

use crate::AppState;
use crate::error::ApiError;
use crate::runs::load;
use crate::trials::stored_trial;
use crate::views::ErrorBody;

pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route("/runs/{id}/graph", get(read))
        .route("/trials/{name}/runs", get(trial_runs))
}

/// The pipeline runs of a trial.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct TrialRuns {
    /// Their ids, oldest first; empty for a trial that is not a pipeline.
    pub run_ids: Vec<String>,
}

/// A run's pipeline as a graph.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RunGraph {
    /// The pipeline's `metadata.name`.
    pub pipeline_name: String,
    /// Its steps, in declaration order.
    pub steps: Vec<GraphStep>,
}

/// One step of the graph.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct GraphStep {
    /// The step.
    pub name: String,
    /// `command`, or a plug-in kind such as `tune`.
    pub kind: String,
    /// The steps it waits for.
    pub dependencies: Vec<String>,
    /// How many instances `withItems` fans it out to, when it does.
    pub item_count: Option<usize>,
    /// Retries after a failed first attempt.
    pub retry_limit: u32,
    /// Whether its results may come from the cache.
    pub cache: bool,
}

impl RunGraph {
    fn of(pipeline: &Pipeline) -> RunGraph {
        RunGraph {
            pipeline_name: pipeline.name.clone(),
            steps: pipeline
                .steps
                .iter()
                .map(|step| GraphStep {
                    name: step.name.clone(),
                    kind: step.kind.clone(),
                    dependencies: step
                        .dependencies
                        .iter()
                        .map(|index| pipeline.steps[*index].name.clone())
                        .collect(),
                    item_count: step.items.as_ref().map(Vec::len),
                    retry_limit: step.retry.limit,
                    cache: step.cache,
                })
                .collect(),
        }
    }
}

/// A run's pipeline graph.
#[utoipa::path(
    get,
    operation_id = "getRunGraph",
    path = "/api/v1/runs/{id}/graph",
    params(("id" = String, Path, description = "the run")),
    responses(
        (status = 200, description = "its steps and their dependencies", body = RunGraph),
        (status = 404, description = "no such run", body = ErrorBody),
    ),
    tag = "runs"
)]
pub(crate) async fn read(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<axum::Json<RunGraph>, ApiError> {
    let stored = load(&state, &id).await?;
    let pipeline = Pipeline::from_yaml(&stored.run.source).map_err(|error| {
        ApiError::Internal(format!(
            "the stored pipeline of run {id:?} is unreadable: {error}"
        ))
    })?;
    Ok(axum::Json(RunGraph::of(&pipeline)))
}

/// A trial's pipeline runs.
#[utoipa::path(
    get,
    operation_id = "getTrialRuns",
    path = "/api/v1/trials/{name}/runs",
    params(("name" = String, Path, description = "the trial")),
    responses(
        (status = 200, description = "the ids of its runs; none when its template is not a Pipeline", body = TrialRuns),
        (status = 404, description = "no such trial", body = ErrorBody),
    ),
    tag = "trials"
)]
pub(crate) async fn trial_runs(
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> Result<axum::Json<TrialRuns>, ApiError> {
    let trial = stored_trial(&state, &name).await?;
    let run_ids = sextant_pipeline::database_store::list_trial_runs(&state.store, &trial.name)
        .await
        .map_err(|error| ApiError::Internal(error.to_string()))?
        .into_iter()
        .map(|run| run.run_id)
        .collect();
    Ok(axum::Json(TrialRuns { run_ids }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dependencies_come_from_depends_on_and_references() {
        let pipeline = Pipeline::from_yaml(
            r#"
apiVersion: sextant.dev/v1beta1
kind: Pipeline
metadata: {name: p}
spec:
  steps:
    - name: prepare
      command: [echo, a]
      outputs: {params: [{name: rows, path: rows.txt}]}
    - name: train
      command: [echo, "{{steps.prepare.outputs.params.rows}}"]
      retry: {limit: 2}
    - name: report
      dependsOn: [train]
      command: [echo, done]
      withItems: [x, y]
"#,
        )
        .unwrap();
        let graph = RunGraph::of(&pipeline);
        let edges: Vec<(&str, Vec<&str>)> = graph
            .steps
            .iter()
            .map(|step| {
                (
                    step.name.as_str(),
                    step.dependencies.iter().map(String::as_str).collect(),
                )
            })
            .collect();
        assert_eq!(
            edges,
            [
                ("prepare", vec![]),
                ("train", vec!["prepare"]),
                ("report", vec!["train"]),
            ]
        );
        assert_eq!(graph.steps[1].retry_limit, 2);
        assert_eq!(graph.steps[2].item_count, Some(2));
    }
}
