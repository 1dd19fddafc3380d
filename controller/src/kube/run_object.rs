//! A Trial's run object, built from its `runSpec` without I/O: identity (name, namespace,
//! labels, the Trial as controlling owner) and the way metrics leave it.
//!
//! Metrics never need a sidecar or a webhook:
//! - `Push`: the primary container gets `KATIB_TRIAL_NAME` (the trial's
//!   [observation log key](crate::kube::observation_log_key)) and the DBManager address
//!   (`KATIB_DB_MANAGER_ADDRESS`, `SEXTANT_DB_MANAGER_ADDRESS`) in its environment, and reports
//!   itself (Katib's `report_metrics`, or any DBManager client);
//! - `StdOut` and `File`: the primary container's command becomes
//!   `sextant collect ... -- <command> <args>`, which runs the command, parses what it prints (or
//!   the file it writes) and pushes the metrics; its image must have `sextant` on its `PATH`
//!   (e.g. copied from Sextant's image in an init container), and the command must be given in
//!   the template, since the image's entrypoint is not known here.
//!
//! The primary container is the first container named `primaryContainerName` in any pod
//! template of the object, in document order (a Job's `spec.template`, a training job's first
//! replica spec that has it), so one copy of the training program reports; in an Argo Workflow,
//! the container of the template of that name (for a compiled pipeline, the step's template).

use kube::discovery::ApiResource;
use serde_json::{Map, Value, json};

use sextant_pipeline::Pipeline;

use crate::kube::tune_argo::compile_for_cluster;
use crate::kube::{ApiGroup, TrialResource};
use crate::kube::{TRIAL_LABEL, observation_log_key};
use crate::local::pipeline_trial::metrics_step_index;
use sextant_experiment::api::common::{CollectorKind, FileFormat};
use sextant_experiment::api::template::RunKind;
use sextant_experiment::api::trial::EXPERIMENT_LABEL;

/// A run object's kind as the API server serves it.
#[derive(Clone, Debug)]
pub(crate) struct Kind {
    /// Group, version, kind and plural.
    pub(crate) resource: ApiResource,
    /// Whether objects of the kind live in a namespace.
    pub(crate) namespaced: bool,
}

/// Why a trial's run object cannot be built; the trial fails with this reason.
#[derive(Debug, thiserror::Error, PartialEq)]
pub(crate) enum RunObjectError {
    /// The trial has no `runSpec`.
    #[error("spec.runSpec is missing")]
    Missing,
    /// The `runSpec` is not an object with `apiVersion` and `kind`.
    #[error("spec.runSpec must be an object with string apiVersion and kind")]
    Shape,
    /// No container carries the primary container's name.
    #[error(
        "spec.runSpec: no container named {name:?} (primaryContainerName) in any pod template; the {collector} metrics collector needs it"
    )]
    NoPrimaryContainer {
        /// The name looked for.
        name: String,
        /// The collector that needed it.
        collector: String,
    },
    /// The primary container has no command to wrap.
    #[error(
        "spec.runSpec: container {name:?} has no command; the {collector} metrics collector wraps the command, so the template must give it"
    )]
    NoCommand {
        /// The container.
        name: String,
        /// The collector.
        collector: String,
    },
    /// A collector that needs a sidecar.
    #[error(
        "metrics collector {0} is not supported in a cluster; use Push, StdOut or File (sextant collect)"
    )]
    UnsupportedCollector(String),
}

/// The run spec as a cluster runs it, with the name of its primary container: a
/// `sextant.dev/v1beta1` `Pipeline` template compiles to the Argo Workflow that runs it, whose
/// primary container is the metrics step's (the step `primary` names, else the last sink, as
/// locally; its `tune` steps create Experiments in `group`); any other kind is created as it
/// is. An error says why the pipeline cannot run on Argo.
pub(crate) fn for_cluster(
    mut run_spec: Value,
    trial_name: &str,
    primary: &str,
    group: ApiGroup,
) -> Result<(Value, String), String> {
    if RunKind::of_template(&run_spec) != Some(RunKind::Pipeline) {
        return Ok((run_spec, primary.to_owned()));
    }
    if let Some(fields) = run_spec.as_object_mut() {
        let metadata = fields
            .entry("metadata")
            .or_insert_with(|| Value::Object(Map::new()));
        if let Some(metadata) = metadata.as_object_mut() {
            metadata.insert("name".into(), json!(trial_name));
        }
    }
    // JSON is YAML, and the spec loader reports problems with their field paths.
    let text = run_spec.to_string();
    let pipeline = Pipeline::from_yaml(&text)
        .map_err(|error| format!("spec.trialTemplate.trialSpec: {error}"))?;
    let metrics_step = metrics_step_index(&pipeline, primary).map_err(|error| error.to_string())?;
    let mut workflow = compile_for_cluster(&pipeline, group)
        .map_err(|error| format!("spec.trialTemplate.trialSpec: {error}"))?;
    if let Some(metadata) = workflow.get_mut("metadata").and_then(Value::as_object_mut) {
        // The trial names the workflow.
        metadata.remove("generateName");
        metadata.insert("name".into(), json!(trial_name));
    }
    Ok((workflow, pipeline.steps[metrics_step].name.clone()))
}

/// The `apiVersion` and `kind` of a run spec.
pub(crate) fn type_of(run_spec: &Value) -> Result<(String, String), RunObjectError> {
    let text = |field: &str| {
        run_spec
            .get(field)
            .and_then(Value::as_str)
            .filter(|text| !text.is_empty())
            .map(str::to_owned)
    };
    match (text("apiVersion"), text("kind")) {
        (Some(api_version), Some(kind)) => Ok((api_version, kind)),
        _ => Err(RunObjectError::Shape),
    }
}

/// The run object of `trial`, a Trial of the kind `trial_kind`, ready to create.
pub(crate) fn build(
    trial: &TrialResource,
    trial_kind: &ApiResource,
    db_manager_address: &str,
) -> Result<Value, RunObjectError> {
    let mut object = trial.spec.run_spec.clone().ok_or(RunObjectError::Missing)?;
    type_of(&object)?;
    let name = trial.metadata.name.clone().unwrap_or_default();
    let Some(fields) = object.as_object_mut() else {
        return Err(RunObjectError::Shape);
    };
    let metadata = fields
        .entry("metadata")
        .or_insert_with(|| Value::Object(Map::new()));
    if !metadata.is_object() {
        *metadata = Value::Object(Map::new());
    }
    metadata["name"] = json!(name);
    if let Some(namespace) = &trial.metadata.namespace {
        metadata["namespace"] = json!(namespace);
    }
    let labels = metadata
        .as_object_mut()
        .map(|metadata| {
            metadata
                .entry("labels")
                .or_insert_with(|| Value::Object(Map::new()))
        })
        .ok_or(RunObjectError::Shape)?;
    if !labels.is_object() {
        *labels = Value::Object(Map::new());
    }
    labels[TRIAL_LABEL] = json!(name);
    if let Some(experiment) = trial
        .metadata
        .labels
        .as_ref()
        .and_then(|labels| labels.get(EXPERIMENT_LABEL))
    {
        labels[EXPERIMENT_LABEL] = json!(experiment);
    }
    metadata["ownerReferences"] = json!([{
        "apiVersion": trial_kind.api_version,
        "kind": trial_kind.kind,
        "name": name,
        "uid": trial.metadata.uid.clone().unwrap_or_default(),
        "controller": true,
        "blockOwnerDeletion": true,
    }]);
    let log_key = observation_log_key(
        trial.metadata.namespace.as_deref().unwrap_or_default(),
        &name,
    );
    wire_metrics(trial, &log_key, db_manager_address, &mut object)?;
    Ok(object)
}

fn wire_metrics(
    trial: &TrialResource,
    log_key: &str,
    db_manager_address: &str,
    object: &mut Value,
) -> Result<(), RunObjectError> {
    let collector_spec = &trial.spec.metrics_collector;
    let collector = collector_spec.kind();
    let wraps = match &collector {
        CollectorKind::Push => false,
        CollectorKind::StdOut | CollectorKind::File => true,
        other => return Err(RunObjectError::UnsupportedCollector(other.to_string())),
    };
    let primary = trial.spec.primary_container_name.as_str();
    let container =
        find_container(object, primary).ok_or_else(|| RunObjectError::NoPrimaryContainer {
            name: primary.to_owned(),
            collector: collector.to_string(),
        })?;
    set_env(container, "KATIB_TRIAL_NAME", log_key);
    set_env(container, "KATIB_DB_MANAGER_ADDRESS", db_manager_address);
    set_env(container, "SEXTANT_DB_MANAGER_ADDRESS", db_manager_address);
    if !wraps {
        return Ok(());
    }
    let strings = |field: &str| -> Vec<String> {
        container
            .get(field)
            .and_then(Value::as_array)
            .map(|items| {
                items
                    .iter()
                    .map(|item| match item {
                        Value::String(text) => text.clone(),
                        other => other.to_string(),
                    })
                    .collect()
            })
            .unwrap_or_default()
    };
    let mut command = strings("command");
    if command.is_empty() {
        return Err(RunObjectError::NoCommand {
            name: primary.to_owned(),
            collector: collector.to_string(),
        });
    }
    command.extend(strings("args"));
    let objective = trial.spec.objective.clone().unwrap_or_default();
    let metric_names: Vec<&str> = objective.metric_names().collect();
    let mut wrapped: Vec<String> = [
        "sextant",
        "collect",
        "--trial-name",
        log_key,
        "--metric-names",
        &metric_names.join(","),
        "--db-manager",
        db_manager_address,
    ]
    .map(str::to_owned)
    .to_vec();
    let source = collector_spec.source.as_ref();
    if collector == CollectorKind::File
        && let Some(file) = source.and_then(|source| source.file_system_path.as_ref())
    {
        wrapped.extend(["--path".to_owned(), file.path.clone()]);
        let format = match file.format {
            Some(FileFormat::Json) => "json",
            _ => "text",
        };
        wrapped.extend(["--format".to_owned(), format.to_owned()]);
    }
    for regex in source
        .and_then(|source| source.filter.as_ref())
        .map(|filter| filter.metrics_format.as_slice())
        .unwrap_or_default()
    {
        wrapped.extend(["--metrics-format".to_owned(), regex.clone()]);
    }
    wrapped.push("--".to_owned());
    wrapped.extend(command);
    if let Some(fields) = container.as_object_mut() {
        fields.insert("command".into(), json!(wrapped));
        fields.remove("args");
    }
    Ok(())
}

/// The first container named `name` in a `containers` list anywhere in `value`.
fn find_container<'a>(value: &'a mut Value, name: &str) -> Option<&'a mut Value> {
    match value {
        Value::Object(fields) => {
            let position =
                fields
                    .get("containers")
                    .and_then(Value::as_array)
                    .and_then(|containers| {
                        containers.iter().position(|container| {
                            container.get("name").and_then(Value::as_str) == Some(name)
                        })
                    });
            if let Some(index) = position {
                return fields
                    .get_mut("containers")
                    .and_then(Value::as_array_mut)
                    .and_then(|containers| containers.get_mut(index));
            }
            // An Argo template (a compiled pipeline names a step's template `step-<step>`).
            let template_name = fields.get("name").and_then(Value::as_str);
            if fields.get("container").is_some_and(Value::is_object)
                && (template_name == Some(name)
                    || template_name == Some(format!("step-{name}").as_str()))
            {
                return fields.get_mut("container");
            }
            fields
                .values_mut()
                .find_map(|child| find_container(child, name))
        }
        Value::Array(items) => items
            .iter_mut()
            .find_map(|child| find_container(child, name)),
        _ => None,
    }
}

fn set_env(container: &mut Value, name: &str, value: &str) {
    let Some(fields) = container.as_object_mut() else {
        return;
    };
    let env = fields
        .entry("env")
        .or_insert_with(|| Value::Array(Vec::new()));
    if !env.is_array() {
        *env = Value::Array(Vec::new());
    }
    if let Some(items) = env.as_array_mut() {
        items.retain(|item| item.get("name").and_then(Value::as_str) != Some(name));
        items.push(json!({"name": name, "value": value}));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kube::ApiGroup;
    use sextant_experiment::api::common::{CollectorSpec, MetricsCollectorSpec, ObjectiveSpec};
    use sextant_experiment::api::trial::TrialSpec;

    fn trial(collector: CollectorKind, run_spec: Value) -> TrialResource {
        let mut trial = TrialResource::new(
            "exp-3",
            &ApiGroup::Sextant.trials(),
            TrialSpec {
                objective: Some(ObjectiveSpec {
                    objective_metric_name: "loss".into(),
                    additional_metric_names: vec!["accuracy".into()],
                    ..Default::default()
                }),
                run_spec: Some(run_spec),
                metrics_collector: MetricsCollectorSpec {
                    collector: Some(CollectorSpec {
                        kind: collector,
                        custom_collector: None,
                    }),
                    source: None,
                },
                primary_container_name: "training".into(),
                ..Default::default()
            },
        );
        trial.metadata.namespace = Some("team".into());
        trial.metadata.uid = Some("uid-1".into());
        trial.metadata.labels = Some([(EXPERIMENT_LABEL.to_owned(), "exp".to_owned())].into());
        trial
    }

    /// The run object of a `sextant.dev` trial.
    fn build(trial: &TrialResource, db_manager_address: &str) -> Result<Value, RunObjectError> {
        super::build(trial, &ApiGroup::Sextant.trials(), db_manager_address)
    }

    fn job() -> Value {
        json!({
            "apiVersion": "batch/v1",
            "kind": "Job",
            "spec": {"template": {"spec": {
                "restartPolicy": "Never",
                "containers": [
                    {"name": "side", "image": "busybox", "command": ["sleep", "1"]},
                    {"name": "training", "image": "trainer", "command": ["python3", "train.py"], "args": ["--lr=0.1"]}
                ]
            }}}
        })
    }

    #[test]
    fn the_run_object_is_owned_by_its_trial_and_labelled() {
        let object = build(&trial(CollectorKind::Push, job()), "db:6789").expect("builds");
        assert_eq!(object["metadata"]["name"], "exp-3");
        assert_eq!(object["metadata"]["namespace"], "team");
        assert_eq!(object["metadata"]["labels"][TRIAL_LABEL], "exp-3");
        assert_eq!(object["metadata"]["labels"][EXPERIMENT_LABEL], "exp");
        let owner = &object["metadata"]["ownerReferences"][0];
        assert_eq!(owner["apiVersion"], "sextant.dev/v1beta1");
        assert_eq!(owner["kind"], "Trial");
        assert_eq!(owner["uid"], "uid-1");
        assert_eq!(owner["controller"], true);
    }

    #[test]
    fn a_katib_group_trial_owns_its_run_object_under_katibs_api_version() {
        let object = super::build(
            &trial(CollectorKind::Push, job()),
            &ApiGroup::Katib.trials(),
            "db:6789",
        )
        .expect("builds");
        let owner = &object["metadata"]["ownerReferences"][0];
        assert_eq!(owner["apiVersion"], "kubeflow.org/v1beta1");
        assert_eq!(owner["kind"], "Trial");
    }

    #[test]
    fn push_trials_get_the_db_manager_in_their_environment_only() {
        let object = build(&trial(CollectorKind::Push, job()), "db:6789").expect("builds");
        let container = &object["spec"]["template"]["spec"]["containers"][1];
        assert_eq!(container["command"], json!(["python3", "train.py"]));
        let env = container["env"].as_array().expect("env");
        assert!(env.contains(&json!({"name": "KATIB_TRIAL_NAME", "value": "team.exp-3"})));
        assert!(env.contains(&json!({"name": "KATIB_DB_MANAGER_ADDRESS", "value": "db:6789"})));
        assert!(object["spec"]["template"]["spec"]["containers"][0]["env"].is_null());
    }

    #[test]
    fn stdout_trials_run_under_sextant_collect() {
        let object = build(&trial(CollectorKind::StdOut, job()), "db:6789").expect("builds");
        let container = &object["spec"]["template"]["spec"]["containers"][1];
        assert_eq!(
            container["command"],
            json!([
                "sextant",
                "collect",
                "--trial-name",
                "team.exp-3",
                "--metric-names",
                "loss,accuracy",
                "--db-manager",
                "db:6789",
                "--",
                "python3",
                "train.py",
                "--lr=0.1"
            ])
        );
        assert!(container.get("args").is_none());
    }

    #[test]
    fn pipelines_compile_to_workflows_whose_metrics_step_reports() {
        let pipeline = json!({
            "apiVersion": "sextant.dev/v1beta1",
            "kind": "Pipeline",
            "spec": {
                "steps": [
                    {"name": "prepare", "image": "busybox", "command": ["sh", "-c", "echo ok"]},
                    {"name": "training", "image": "trainer", "command": ["python3", "train.py", "--lr=0.1"], "dependsOn": ["prepare"]},
                ],
            },
        });
        let (workflow, primary) =
            for_cluster(pipeline, "exp-3", "", ApiGroup::Sextant).expect("compiles");
        assert_eq!(primary, "training", "the last sink reports");
        assert_eq!(workflow["kind"], "Workflow");
        assert_eq!(workflow["metadata"]["name"], "exp-3");
        assert!(workflow["metadata"].get("generateName").is_none());
        let object = build(&trial(CollectorKind::StdOut, workflow), "db:6789").expect("builds");
        let templates = object["spec"]["templates"].as_array().expect("templates");
        let training = templates
            .iter()
            .find(|template| template["name"] == "step-training")
            .expect("the training step's template");
        let command = training["container"]["command"]
            .as_array()
            .expect("a command");
        assert_eq!(command[..2], [json!("sextant"), json!("collect")]);
        assert_eq!(command.last(), Some(&json!("--lr=0.1")));
        let prepare = templates
            .iter()
            .find(|template| template["name"] == "step-prepare")
            .expect("the prepare step's template");
        assert_eq!(prepare["container"]["command"][0], "sh");
        let broken = json!({"apiVersion": "sextant.dev/v1beta1", "kind": "Pipeline", "spec": {"steps": "x"}});
        let error = for_cluster(broken, "exp-3", "", ApiGroup::Sextant)
            .expect_err("a pipeline without a step list");
        assert!(error.starts_with("spec.trialTemplate.trialSpec"), "{error}");
    }

    #[test]
    fn unusable_templates_are_refused_with_the_reason() {
        let mut no_command = job();
        no_command["spec"]["template"]["spec"]["containers"][1]
            .as_object_mut()
            .expect("object")
            .remove("command");
        assert!(matches!(
            build(&trial(CollectorKind::StdOut, no_command), "db"),
            Err(RunObjectError::NoCommand { .. })
        ));
        let mut renamed = job();
        renamed["spec"]["template"]["spec"]["containers"][1]["name"] = json!("other");
        let error = build(&trial(CollectorKind::Push, renamed), "db").expect_err("refused");
        assert!(error.to_string().contains("\"training\""), "{error}");
        assert_eq!(
            build(&trial(CollectorKind::PrometheusMetric, job()), "db"),
            Err(RunObjectError::UnsupportedCollector(
                "PrometheusMetric".into()
            ))
        );
        assert_eq!(
            build(&trial(CollectorKind::Push, json!({"kind": "Job"})), "db"),
            Err(RunObjectError::Shape)
        );
    }
}
