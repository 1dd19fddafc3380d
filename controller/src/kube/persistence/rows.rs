//! The store rows a cluster object is mirrored as: a pure function of the object (and, for a
//! PipelineRun that references a Pipeline, of that Pipeline), so an agent that ran throughout
//! and one that caught up after downtime write the same rows.
//!
//! Rows are named `<namespace>.<name>` ([`mirror_name`]), the form of a cluster trial's
//! observation log key, so a mirrored trial's row lines up with the log its trial pushed; a
//! namespace has no dot and the server's own names (experiments, run ids) have none either, so
//! a mirror never takes a local name. Trial names inside an experiment's status are renamed
//! the same way, so the best trial a status names is the mirrored row.

use std::collections::BTreeMap;
use std::path::PathBuf;

use chrono::{DateTime, Utc};
use kube::core::ApiResource;
use serde::Serialize;
use sextant_experiment::api::experiment::{CLUSTER_NAMESPACE_ANNOTATION, ExperimentStatus};
use sextant_pipeline::StepOutputs;
use sextant_pipeline::run_store::{RunPhase, RunRecord, StepPhase, StepRecord};
use sextant_store::{MirroredTrial, NewTrial, TrialConditionUpdate};

use crate::kube::convert::{belongs_to, chrono_time, current_condition, experiment_of};
use crate::kube::pipeline_resources::{
    Pipeline, PipelineRun, PipelineRunPhase, PipelineSpec, StepStatus,
};
use crate::kube::{ExperimentResource, TrialResource, observation_log_key};

/// The name a cluster object's rows have in the store: `<namespace>.<name>`, the same form as
/// [`observation_log_key`], so an experiment, its trials and their logs line up.
pub(crate) fn mirror_name(namespace: &str, name: &str) -> String {
    observation_log_key(namespace, name)
}

/// An object that lacks what every object the API server hands out has.
#[derive(Debug, thiserror::Error)]
#[error("{kind} {name:?} has no {field}")]
pub struct IncompleteObject {
    /// Its kind.
    pub kind: &'static str,
    /// Its name, as far as known.
    pub name: String,
    /// The missing field's path.
    pub field: &'static str,
}

/// What the store holds for one cluster Experiment: its row and its trials' rows.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct ExperimentRows {
    /// `<namespace>.<name>`.
    pub(crate) name: String,
    /// The Experiment (status left out) as the server reads it, JSON text.
    pub(crate) spec: String,
    /// Its status, JSON text (`null` before the controller wrote one).
    pub(crate) status: String,
    /// Its `metadata.creationTimestamp`.
    pub(crate) created_at: DateTime<Utc>,
    /// Its trials, by name.
    pub(crate) trials: Vec<MirroredTrial>,
}

/// What the store holds for one PipelineRun: the run and its step instances, in the order of
/// the run's status.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct RunRows {
    /// The run's record.
    pub(crate) run: RunRecord,
    /// Its step instances.
    pub(crate) steps: Vec<StepRecord>,
}

/// The namespace, name and creation time every stored object has.
fn identity(
    kind: &'static str,
    meta: &kube::api::ObjectMeta,
) -> Result<(String, String, DateTime<Utc>), IncompleteObject> {
    let name = meta.name.clone().unwrap_or_default();
    let missing = |field| IncompleteObject {
        kind,
        name: name.clone(),
        field,
    };
    if name.is_empty() {
        return Err(missing("metadata.name"));
    }
    let namespace = meta
        .namespace
        .clone()
        .ok_or_else(|| missing("metadata.namespace"))?;
    let created_at = meta
        .creation_timestamp
        .as_ref()
        .and_then(|time| chrono_time(time.0))
        .ok_or_else(|| missing("metadata.creationTimestamp"))?;
    Ok((namespace, name, created_at))
}

/// The rows of `experiment` (of the kind `kind`) and of those of `trials` that belong to it.
pub(crate) fn experiment_rows<'a>(
    experiment: &ExperimentResource,
    trials: impl IntoIterator<Item = &'a TrialResource>,
    kind: &ApiResource,
) -> Result<ExperimentRows, IncompleteObject> {
    let (namespace, name, created_at) = identity("Experiment", &experiment.metadata)?;
    let mirrored = mirror_name(&namespace, &name);
    let mut document = experiment_of(experiment, kind);
    document.metadata.name = mirrored.clone();
    // The cluster's concurrency token changes with every write, the status's included; the
    // store keeps its own.
    document.metadata.resource_version = None;
    document
        .metadata
        .annotations
        .insert(CLUSTER_NAMESPACE_ANNOTATION.into(), namespace.clone());
    let status = document
        .status
        .take()
        .map(|status| renamed_trials(status, &namespace));
    let mut trial_rows = trials
        .into_iter()
        .filter(|trial| belongs_to(trial, experiment))
        .map(|trial| trial_row(trial, &mirrored))
        .collect::<Result<Vec<_>, _>>()?;
    trial_rows.sort_by(|a, b| a.trial.name.cmp(&b.trial.name));
    Ok(ExperimentRows {
        name: mirrored,
        spec: json(&document),
        status: json(&status),
        created_at,
        trials: trial_rows,
    })
}

/// The status with every trial name it holds in the mirrored form.
fn renamed_trials(mut status: ExperimentStatus, namespace: &str) -> ExperimentStatus {
    let rename = |name: &mut String| {
        if !name.is_empty() {
            *name = mirror_name(namespace, name);
        }
    };
    rename(&mut status.current_optimal_trial.best_trial_name);
    for trial in &mut status.pareto_optimal_trials {
        rename(&mut trial.best_trial_name);
    }
    for list in [
        &mut status.running_trial_list,
        &mut status.pending_trial_list,
        &mut status.failed_trial_list,
        &mut status.succeeded_trial_list,
        &mut status.killed_trial_list,
        &mut status.early_stopped_trial_list,
        &mut status.metrics_unavailable_trial_list,
    ] {
        list.iter_mut().for_each(rename);
    }
    status
}

/// A trial's row, in the experiment stored as `experiment_name`.
fn trial_row(
    trial: &TrialResource,
    experiment_name: &str,
) -> Result<MirroredTrial, IncompleteObject> {
    let (namespace, name, created_at) = identity("Trial", &trial.metadata)?;
    let (condition, reason, message) = current_condition(trial);
    let status = trial.status.clone().unwrap_or_default();
    Ok(MirroredTrial {
        trial: NewTrial {
            name: mirror_name(&namespace, &name),
            experiment_name: experiment_name.to_owned(),
            spec: json(&trial.spec),
            assignments: json(&trial.spec.parameter_assignments),
            labels: json(&trial.spec.labels),
        },
        condition: TrialConditionUpdate {
            condition_type: condition.name().to_owned(),
            reason,
            message,
            start_time: status.start_time,
            completion_time: status.completion_time,
        },
        observation: status.observation.as_ref().map(json),
        created_at,
    })
}

/// The rows of `run`; `pipeline` is the Pipeline it references, when it references one that
/// exists, and `stored_source` the pipeline already stored for it (a run outlives the Pipeline
/// it ran, as a local run keeps the spec it ran).
pub(crate) fn run_rows(
    run: &PipelineRun,
    pipeline: Option<&Pipeline>,
    stored_source: Option<&str>,
) -> Result<RunRows, IncompleteObject> {
    let (namespace, name, created_at) = identity("PipelineRun", &run.metadata)?;
    let (pipeline_name, spec) = match (&run.spec.pipeline_ref, &run.spec.pipeline_spec) {
        (Some(reference), _) => (
            reference.name.clone(),
            pipeline.map(|pipeline| &pipeline.spec),
        ),
        (None, inline) => (name.clone(), inline.as_ref()),
    };
    let source = match spec {
        Some(spec) => pipeline_document(&pipeline_name, spec),
        None => stored_source.unwrap_or_default().to_owned(),
    };
    let mut params: BTreeMap<String, String> = spec
        .into_iter()
        .flat_map(|spec| &spec.params)
        .filter_map(|param| Some((param.name.clone(), param.default.clone()?)))
        .collect();
    params.extend(
        run.spec
            .params
            .iter()
            .map(|param| (param.name.clone(), param.value.clone())),
    );
    let status = run.status.clone().unwrap_or_default();
    let phase = match status.phase {
        None | Some(PipelineRunPhase::Pending) => RunPhase::Pending,
        Some(PipelineRunPhase::Running) => RunPhase::Running,
        Some(PipelineRunPhase::Succeeded) => RunPhase::Succeeded,
        Some(PipelineRunPhase::Failed | PipelineRunPhase::Error) => RunPhase::Failed,
    };
    Ok(RunRows {
        run: RunRecord {
            run_id: mirror_name(&namespace, &name),
            pipeline_name,
            source,
            params,
            // Nothing of a cluster run is on the server's disk.
            run_dir: PathBuf::new(),
            // Argo runs every step; Sextant's step cache is the local executor's.
            cache_enabled: false,
            phase,
            created_at,
            started_at: status.started_at,
            finished_at: status.finished_at,
            message: status.message.clone(),
            trial: None,
            cluster_namespace: Some(namespace),
        },
        steps: status.steps.iter().map(step_record).collect(),
    })
}

/// A step instance's record. Output artifacts stay in Argo's artifact repository: the record
/// names none, so the server never reads a path a cluster object gave it.
fn step_record(step: &StepStatus) -> StepRecord {
    let phase = match step.phase.as_str() {
        "Running" => StepPhase::Running,
        "Succeeded" => StepPhase::Succeeded,
        "Skipped" | "Omitted" => StepPhase::Skipped,
        "Failed" | "Error" => StepPhase::Failed,
        // Argo's `Pending`, and any phase a later Argo adds: not started as far as we know.
        _ => StepPhase::Pending,
    };
    StepRecord {
        step: step.name.clone(),
        item_index: step.item_index,
        phase,
        attempt: match phase {
            StepPhase::Pending => 0,
            _ => step.retries.saturating_add(1),
        },
        cache_key: None,
        outputs: StepOutputs {
            params: step.outputs.clone(),
            artifacts: BTreeMap::new(),
        },
        message: step.message.clone(),
        started_at: step.started_at,
        finished_at: step.finished_at,
    }
}

/// A pipeline document of `spec`, as `sextant pipeline run` reads one (what the server's graph
/// of a run is drawn from).
fn pipeline_document(name: &str, spec: &PipelineSpec) -> String {
    // A JSON value of strings, numbers and maps always has a YAML form.
    serde_yaml::to_string(&spec.document(name)).unwrap_or_default()
}

/// JSON text of a value whose serialization cannot fail (plain data, string keys).
fn json(value: &impl Serialize) -> String {
    serde_json::to_string(value).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use serde_json::json;
    use sextant_experiment::api::experiment::Experiment;
    use sextant_experiment::api::trial::EXPERIMENT_LABEL;

    use super::*;
    use crate::kube::fixtures;
    use crate::kube::{ApiGroup, TrialResource};

    fn created(meta: &mut kube::api::ObjectMeta) {
        meta.creation_timestamp = serde_json::from_value(json!("2026-01-02T03:04:05Z")).ok();
    }

    /// A trial of the fixtures' experiment (or, with another owner uid, of a namesake).
    fn trial_of(name: &str, owner_uid: &str) -> TrialResource {
        let mut trial = fixtures::trial();
        trial.metadata.name = Some(name.into());
        created(&mut trial.metadata);
        trial.metadata.labels = Some([(EXPERIMENT_LABEL.to_owned(), "exp".to_owned())].into());
        trial.metadata.owner_references = serde_json::from_value(json!([{
            "apiVersion": "sextant.dev/v1beta1", "kind": "Experiment", "name": "exp",
            "uid": owner_uid, "controller": true,
        }]))
        .ok();
        trial
    }

    #[test]
    fn an_experiment_is_named_for_its_namespace_marked_as_the_clusters_with_its_own_trials() {
        let mut experiment = fixtures::experiment();
        created(&mut experiment.metadata);
        let mut status = ExperimentStatus::default();
        status.current_optimal_trial.best_trial_name = "exp-0".into();
        status.running_trial_list = vec!["exp-1".into()];
        experiment.status = Some(status);
        let trials = [
            trial_of("exp-1", "experiment-uid"),
            trial_of("exp-0", "experiment-uid"),
            trial_of("exp-9", "an-earlier-namesakes-uid"),
        ];
        let rows =
            experiment_rows(&experiment, &trials, &ApiGroup::Sextant.experiments()).expect("rows");
        assert_eq!(rows.name, "tests.exp");
        let spec: Experiment = serde_json::from_str(&rows.spec).expect("the stored spec");
        assert_eq!(spec.metadata.name, "tests.exp");
        assert_eq!(spec.cluster_namespace(), Some("tests"));
        assert_eq!((spec.metadata.resource_version, spec.status), (None, None));
        let status: ExperimentStatus = serde_json::from_str(&rows.status).expect("the status");
        assert_eq!(status.current_optimal_trial.best_trial_name, "tests.exp-0");
        assert_eq!(status.running_trial_list, ["tests.exp-1"]);
        let names: Vec<&str> = rows
            .trials
            .iter()
            .map(|trial| trial.trial.name.as_str())
            .collect();
        assert_eq!(names, ["tests.exp-0", "tests.exp-1"]);
        assert_eq!(rows.trials[0].trial.experiment_name, "tests.exp");
        assert_eq!(rows.trials[0].condition.condition_type, "Created");
        assert_eq!(rows.trials[0].created_at, rows.created_at);
    }

    #[test]
    fn an_object_without_a_creation_time_is_refused_naming_the_field() {
        let error = experiment_rows(
            &fixtures::experiment(),
            &[],
            &ApiGroup::Sextant.experiments(),
        )
        .expect_err("no creation time");
        assert_eq!(
            error.to_string(),
            "Experiment \"exp\" has no metadata.creationTimestamp"
        );
    }

    fn pipeline_run(spec: serde_json::Value, status: serde_json::Value) -> PipelineRun {
        serde_json::from_value(json!({
            "apiVersion": "sextant.dev/v1beta1", "kind": "PipelineRun",
            "metadata": {"name": "nightly", "namespace": "tests", "creationTimestamp": "2026-01-02T03:04:05Z"},
            "spec": spec,
            "status": status,
        }))
        .expect("a PipelineRun")
    }

    #[test]
    fn a_run_has_its_pipelines_defaults_under_its_params_and_argos_phases_as_the_stores() {
        let run = pipeline_run(
            json!({"pipelineSpec": {
                "params": [{"name": "rows", "default": "10"}, {"name": "seed", "default": "1"}],
                "steps": [{"name": "a", "image": "i", "command": ["a"]}, {"name": "b", "image": "i", "command": ["b"], "dependsOn": ["a"]}, {"name": "c", "image": "i", "command": ["c"]}],
            }, "params": [{"name": "rows", "value": "20"}]}),
            json!({"phase": "Error", "message": "the Workflow could not run", "steps": [
                {"name": "a", "phase": "Succeeded", "retries": 2, "outputs": {"n": "3"}},
                {"name": "b", "phase": "Omitted"},
                {"name": "c", "phase": "Pending"},
            ]}),
        );
        let rows = run_rows(&run, None, None).expect("rows");
        assert_eq!(rows.run.run_id, "tests.nightly");
        assert_eq!(rows.run.phase, RunPhase::Failed);
        assert_eq!(rows.run.cluster_namespace.as_deref(), Some("tests"));
        assert_eq!(
            rows.run.params,
            BTreeMap::from([("rows".into(), "20".into()), ("seed".into(), "1".into())])
        );
        let pipeline = sextant_pipeline::Pipeline::from_yaml(&rows.run.source).expect("a pipeline");
        assert_eq!(pipeline.name, "nightly");
        assert_eq!(pipeline.steps.len(), 3);
        let steps: Vec<(StepPhase, u32)> = rows
            .steps
            .iter()
            .map(|step| (step.phase, step.attempt))
            .collect();
        assert_eq!(
            steps,
            [
                (StepPhase::Succeeded, 3),
                (StepPhase::Skipped, 1),
                (StepPhase::Pending, 0)
            ]
        );
        assert_eq!(rows.steps[0].outputs.params["n"], "3");
        assert!(rows.steps[0].outputs.artifacts.is_empty());
    }

    #[test]
    fn a_run_of_a_pipeline_gone_keeps_the_spec_it_was_stored_with() {
        let run = pipeline_run(json!({"pipelineRef": {"name": "gone"}}), json!({}));
        let rows = run_rows(&run, None, Some("kept")).expect("rows");
        assert_eq!(
            (rows.run.pipeline_name.as_str(), rows.run.source.as_str()),
            ("gone", "kept")
        );
        assert_eq!(rows.run.phase, RunPhase::Pending);
    }
}
