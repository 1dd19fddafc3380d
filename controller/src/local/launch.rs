//! What a trial runs on this machine: the trial template with the trial's values substituted,
//! turned into an argv, an environment and a working directory.
//!
//! Values reach the process as argv items and environment values, never through a shell.
//! Templates:
//! - `batch/v1` Job: the primary container's (`primaryContainerName`, else the first)
//!   `command` + `args`, `env` and `workingDir` run as a process on this host; the image is
//!   ignored, as there is no container runtime locally.
//! - `sextant.dev/v1beta1` Process: `spec.command` + `spec.args`, `spec.env`,
//!   `spec.workingDir`.
//! - `sextant.dev/v1beta1` Pipeline: not a single process; see
//!   [`pipeline_trial`](crate::local::pipeline_trial).
//! - a `configMap` source is read from a file: `templatePath` relative to the experiment file's
//!   directory, and confined to it (symlinks and `..` resolved).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use serde_json::Value;

use sextant_experiment::api::common::ParameterAssignment;
use sextant_experiment::api::experiment::Experiment;
use sextant_experiment::api::template::RunKind;
use sextant_experiment::placeholders::{MetadataReference, drop_items_naming, substitute};

/// A process to start for a trial.
#[derive(Debug, Clone, PartialEq)]
pub struct Launch {
    /// Program and arguments.
    pub argv: Vec<String>,
    /// Environment variables added to the driver's own.
    pub env: Vec<(String, String)>,
    /// Where it runs.
    pub working_dir: PathBuf,
}

/// Why a trial's process cannot be built.
#[derive(Debug, thiserror::Error)]
pub enum LaunchError {
    /// The experiment has no trial template.
    #[error("spec.trialTemplate is missing")]
    NoTemplate,
    /// The configMap template file cannot be read or parsed.
    #[error("spec.trialTemplate.configMap: cannot read {path}: {reason}")]
    ConfigMap {
        /// The file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// The template has no runnable command.
    #[error("{path}: {rule}")]
    Template {
        /// The field path in the template.
        path: String,
        /// What is wrong.
        rule: String,
    },
}

/// Reads the trial template as JSON: the inline `trialSpec`, or the configMap file, whose
/// `templatePath` is relative to `experiment_dir` and must resolve inside `template_dir`.
pub fn template(
    experiment: &Experiment,
    experiment_dir: &Path,
    template_dir: &Path,
) -> Result<Value, LaunchError> {
    let template = experiment
        .spec
        .trial_template
        .as_ref()
        .ok_or(LaunchError::NoTemplate)?;
    if let Some(spec) = &template.trial_spec {
        return Ok(spec.clone());
    }
    let source = template
        .config_map
        .as_ref()
        .ok_or(LaunchError::NoTemplate)?;
    let path = experiment_dir.join(&source.template_path);
    let unreadable = |reason: String| LaunchError::ConfigMap {
        path: path.clone(),
        reason,
    };
    // The file must be the experiment's own: a spec from elsewhere must not make the runner
    // read any file it can (`/etc/shadow`, `../other/secret`) into trials and error texts.
    // Both sides are resolved (symlinks, `..`), so neither trick leaves the directory.
    let directory = template_dir
        .canonicalize()
        .map_err(|error| unreadable(error.to_string()))?;
    let resolved = path
        .canonicalize()
        .map_err(|error| unreadable(error.to_string()))?;
    if !resolved.starts_with(&directory) {
        return Err(unreadable(format!(
            "templatePath must name a file inside {} (the experiment file's directory unless \
             `sextant run --template-dir` names another)",
            directory.display()
        )));
    }
    let text = std::fs::read_to_string(&resolved).map_err(|error| unreadable(error.to_string()))?;
    serde_yaml::from_str(&text).map_err(|error| LaunchError::ConfigMap {
        path,
        reason: error.to_string(),
    })
}

/// The values of the template's `${trialParameters.x}` placeholders for one trial.
pub fn placeholder_values(
    experiment: &Experiment,
    template: &Value,
    trial_name: &str,
    assignments: &[ParameterAssignment],
    labels: &BTreeMap<String, String>,
) -> BTreeMap<String, String> {
    let mut values = BTreeMap::new();
    let Some(trial_template) = &experiment.spec.trial_template else {
        return values;
    };
    let text_field = |field: &str| {
        template
            .get(field)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string()
    };
    for parameter in &trial_template.trial_parameters {
        let value = match MetadataReference::parse(&parameter.reference) {
            Some(Ok(MetadataReference::Name)) => Some(trial_name.to_string()),
            Some(Ok(MetadataReference::Namespace)) => Some(
                experiment
                    .metadata
                    .namespace
                    .clone()
                    .filter(|namespace| !namespace.is_empty())
                    .unwrap_or_else(|| "default".into()),
            ),
            Some(Ok(MetadataReference::Kind)) => Some(text_field("kind")),
            Some(Ok(MetadataReference::ApiVersion)) => Some(text_field("apiVersion")),
            Some(Ok(MetadataReference::Label(key))) => labels.get(&key).cloned(),
            Some(Ok(MetadataReference::Annotation(_))) => Some(String::new()),
            Some(Err(_)) => None,
            // A conditional parameter inactive in this trial has no assignment; its default
            // stands in, or `left_out_placeholders` drops the argv items that name it.
            None => assignments
                .iter()
                .find(|assignment| assignment.name == parameter.reference)
                .map(|assignment| assignment.value.clone())
                .or_else(|| parameter.default.clone()),
        };
        if let Some(value) = value {
            values.insert(parameter.name.clone(), value);
        }
    }
    values
}

/// The trial parameters that stand for a search parameter the trial leaves out (inactive under
/// its condition) and have no `default`: the argv items naming them are dropped (see
/// [`sextant_experiment::placeholders::drop_items_naming`]).
pub fn left_out_placeholders(
    experiment: &Experiment,
    assignments: &[ParameterAssignment],
) -> BTreeSet<String> {
    let Some(trial_template) = &experiment.spec.trial_template else {
        return BTreeSet::new();
    };
    trial_template
        .trial_parameters
        .iter()
        .filter(|parameter| {
            parameter.default.is_none()
                && experiment
                    .spec
                    .parameters
                    .iter()
                    .any(|search| search.name == parameter.reference)
                && !assignments
                    .iter()
                    .any(|assignment| assignment.name == parameter.reference)
        })
        .map(|parameter| parameter.name.clone())
        .collect()
}

/// The template a trial runs: without the argv items of its left-out parameters.
pub fn active_template(
    experiment: &Experiment,
    template: &Value,
    assignments: &[ParameterAssignment],
) -> Value {
    drop_items_naming(template, &left_out_placeholders(experiment, assignments))
}

/// Builds the process of a trial from the substituted template.
pub fn launch(
    experiment: &Experiment,
    template: &Value,
    values: &BTreeMap<String, String>,
    experiment_dir: &Path,
) -> Result<Launch, LaunchError> {
    let resolved = substitute(template, values);
    let kind = RunKind::of_template(&resolved);
    let (container, path) = match kind {
        Some(RunKind::Process) => (
            resolved.get("spec").cloned(),
            "spec.trialTemplate.trialSpec.spec".to_string(),
        ),
        Some(RunKind::Job) => {
            let containers = resolved
                .pointer("/spec/template/spec/containers")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default();
            let primary = experiment
                .spec
                .trial_template
                .as_ref()
                .map(|template| template.primary_container_name.as_str())
                .unwrap_or_default();
            let index = containers
                .iter()
                .position(|container| {
                    container.get("name").and_then(Value::as_str) == Some(primary)
                })
                .unwrap_or(0);
            (
                containers.get(index).cloned(),
                format!("spec.trialTemplate.trialSpec.spec.template.spec.containers[{index}]"),
            )
        }
        _ => {
            return Err(LaunchError::Template {
                path: "spec.trialTemplate.trialSpec".into(),
                rule: format!(
                    "kind {}/{} cannot run as a local process; use batch/v1 Job, or sextant.dev/v1beta1 Process or Pipeline",
                    resolved
                        .get("apiVersion")
                        .and_then(Value::as_str)
                        .unwrap_or("?"),
                    resolved.get("kind").and_then(Value::as_str).unwrap_or("?"),
                ),
            });
        }
    };
    let container = container.unwrap_or(Value::Null);
    let strings = |field: &str| -> Result<Vec<String>, LaunchError> {
        match container.get(field) {
            None | Some(Value::Null) => Ok(Vec::new()),
            Some(Value::Array(items)) => items
                .iter()
                .enumerate()
                .map(|(index, item)| match item {
                    Value::String(text) => Ok(text.clone()),
                    Value::Number(number) => Ok(number.to_string()),
                    Value::Bool(flag) => Ok(flag.to_string()),
                    _ => Err(LaunchError::Template {
                        path: format!("{path}.{field}[{index}]"),
                        rule: "must be a string".into(),
                    }),
                })
                .collect(),
            Some(_) => Err(LaunchError::Template {
                path: format!("{path}.{field}"),
                rule: "must be a list of strings".into(),
            }),
        }
    };
    let mut argv = strings("command")?;
    argv.extend(strings("args")?);
    if argv.is_empty() {
        return Err(LaunchError::Template {
            path: format!("{path}.command"),
            rule: "a local trial needs a command (the image's entrypoint is not known here)".into(),
        });
    }
    let env = container
        .get("env")
        .and_then(Value::as_array)
        .map(|items| {
            items
                .iter()
                .filter_map(|item| {
                    let name = item.get("name")?.as_str()?.to_string();
                    let value = item
                        .get("value")
                        .and_then(Value::as_str)
                        .unwrap_or_default()
                        .to_string();
                    Some((name, value))
                })
                .collect()
        })
        .unwrap_or_default();
    let working_dir = container
        .get("workingDir")
        .and_then(Value::as_str)
        .filter(|dir| !dir.is_empty())
        .map(|dir| experiment_dir.join(dir))
        .unwrap_or_else(|| experiment_dir.to_path_buf());
    Ok(Launch {
        argv,
        env,
        working_dir,
    })
}
