//! Trial template kinds: recognizing the run object's kind, Katib's per-kind defaults, and
//! Sextant's own `Process` and `Pipeline` kinds.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::api::{ObjectMeta, SEXTANT_API_VERSION};

/// The kind name of Sextant's process template.
pub const PROCESS_KIND: &str = "Process";

/// The kind name of Sextant's pipeline template.
pub const PIPELINE_KIND: &str = "Pipeline";

pub use sextant_conditions::{
    JOB_FAILURE as JOB_FAILURE_CONDITION, JOB_SUCCESS as JOB_SUCCESS_CONDITION,
    TRAINING_JOB_SUCCESS as KUBEFLOW_JOB_SUCCESS_CONDITION,
};

/// What a trial template's run object is, by `apiVersion` and `kind`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RunKind {
    /// `batch/v1` Job: locally its primary container's command and args run as a process.
    Job,
    /// `sextant.dev/v1beta1` Process.
    Process,
    /// `sextant.dev/v1beta1` Pipeline.
    Pipeline,
    /// A Kubeflow training operator job (`kubeflow.org/v1` TFJob, PyTorchJob, XGBoostJob,
    /// MPIJob); cluster only.
    KubeflowJob(String),
    /// Kubeflow Trainer's `trainer.kubeflow.org/v1alpha1` TrainJob; cluster only.
    TrainJob,
    /// Any other kind (Argo Workflow, Tekton PipelineRun, ...); cluster only, and only with
    /// explicit success and failure conditions.
    Other {
        /// The run object's `apiVersion`.
        api_version: String,
        /// The run object's `kind`.
        kind: String,
    },
}

impl RunKind {
    /// Classifies a run object by its `apiVersion` and `kind`.
    pub fn of(api_version: &str, kind: &str) -> RunKind {
        match (api_version, kind) {
            ("batch/v1", "Job") => RunKind::Job,
            (SEXTANT_API_VERSION, PROCESS_KIND) => RunKind::Process,
            (SEXTANT_API_VERSION, PIPELINE_KIND) => RunKind::Pipeline,
            ("kubeflow.org/v1", "TFJob" | "PyTorchJob" | "XGBoostJob" | "MPIJob") => {
                RunKind::KubeflowJob(kind.to_owned())
            }
            (version, "TrainJob") if version.starts_with("trainer.kubeflow.org/") => {
                RunKind::TrainJob
            }
            _ => RunKind::Other {
                api_version: api_version.to_owned(),
                kind: kind.to_owned(),
            },
        }
    }

    /// Classifies a template object, `None` when it lacks a string `apiVersion` or `kind`.
    pub fn of_template(template: &serde_json::Value) -> Option<RunKind> {
        let api_version = template.get("apiVersion")?.as_str()?;
        let kind = template.get("kind")?.as_str()?;
        Some(RunKind::of(api_version, kind))
    }

    /// Whether Sextant itself knows when a run of this kind succeeded or failed, so that
    /// success and failure conditions are not needed.
    pub fn is_sextant_kind(&self) -> bool {
        matches!(self, RunKind::Process | RunKind::Pipeline)
    }

    /// Katib's default success and failure conditions for this kind, if it has them (see
    /// [`sextant_conditions::default_conditions`]; Argo and Tekton are left to the user here, as
    /// Katib's defaulting does).
    pub fn default_conditions(&self) -> Option<(&'static str, &'static str)> {
        let (api_version, kind) = match self {
            RunKind::Job => ("batch/v1", "Job"),
            RunKind::KubeflowJob(kind) => ("kubeflow.org/v1", kind.as_str()),
            RunKind::TrainJob => ("trainer.kubeflow.org/v1alpha1", "TrainJob"),
            _ => return None,
        };
        sextant_conditions::default_conditions(api_version, kind)
    }

    /// Katib's default primary pod labels for this kind.
    pub fn default_primary_pod_labels(&self) -> BTreeMap<String, String> {
        let pairs: &[(&str, &str)] = match self {
            RunKind::KubeflowJob(_) => &[("training.kubeflow.org/job-role", "master")],
            RunKind::TrainJob => &[
                ("jobset.sigs.k8s.io/replicatedjob-name", "node"),
                ("batch.kubernetes.io/job-completion-index", "0"),
            ],
            _ => &[],
        };
        pairs
            .iter()
            .map(|(key, value)| ((*key).to_owned(), (*value).to_owned()))
            .collect()
    }
}

/// One environment variable of a process.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct EnvVar {
    /// The variable's name.
    pub name: String,
    /// Its value; placeholders are substituted.
    #[serde(default)]
    pub value: String,
}

/// Sextant's `Process` trial template: a command run directly (never through a shell), with
/// placeholders substituted into argv items.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Default)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ProcessTemplate {
    /// `sextant.dev/v1beta1`.
    pub api_version: String,
    /// `Process`.
    pub kind: String,
    /// Optional labels and annotations (name and namespace are the trial's).
    #[serde(default)]
    pub metadata: ObjectMeta,
    /// What runs.
    pub spec: ProcessSpec,
}

/// What a `Process` runs.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Default)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ProcessSpec {
    /// The program and its first arguments; at least the program.
    #[serde(default)]
    pub command: Vec<String>,
    /// Further arguments.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub args: Vec<String>,
    /// Extra environment variables.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub env: Vec<EnvVar>,
    /// The working directory; the experiment file's directory when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub working_dir: Option<String>,
}

/// Sextant's `Pipeline` trial template; the pipeline spec itself belongs to the pipeline crate
/// and is kept here as JSON.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Default)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PipelineTemplate {
    /// `sextant.dev/v1beta1`.
    pub api_version: String,
    /// `Pipeline`.
    pub kind: String,
    /// Optional labels and annotations.
    #[serde(default)]
    pub metadata: ObjectMeta,
    /// The pipeline spec.
    pub spec: serde_json::Value,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_are_recognized() {
        assert_eq!(RunKind::of("batch/v1", "Job"), RunKind::Job);
        assert_eq!(
            RunKind::of("sextant.dev/v1beta1", "Process"),
            RunKind::Process
        );
        assert_eq!(
            RunKind::of("kubeflow.org/v1", "TFJob"),
            RunKind::KubeflowJob("TFJob".into())
        );
        assert_eq!(
            RunKind::of("trainer.kubeflow.org/v1alpha1", "TrainJob"),
            RunKind::TrainJob
        );
        assert!(matches!(
            RunKind::of("argoproj.io/v1alpha1", "Workflow"),
            RunKind::Other { .. }
        ));
        assert_eq!(
            RunKind::Job.default_conditions(),
            Some((JOB_SUCCESS_CONDITION, JOB_FAILURE_CONDITION))
        );
        assert_eq!(RunKind::Process.default_conditions(), None);
    }
}
