//! The Trial kind: one run of the trial template with one parameter assignment (Katib's
//! `trials/v1beta1`).

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::api::common::{
    EarlyStoppingRule, MetricsCollectorSpec, ObjectiveSpec, Observation, ParameterAssignment,
};
use crate::api::experiment::ConstraintSpec;
use crate::api::{Condition, ObjectMeta};

/// The kind name of a Trial.
pub const TRIAL_KIND: &str = "Trial";

/// The label that ties a trial to its experiment.
pub const EXPERIMENT_LABEL: &str = "katib.kubeflow.org/experiment";

/// A Trial object.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Default, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Trial {
    /// `kubeflow.org/v1beta1` or `sextant.dev/v1beta1`.
    pub api_version: String,
    /// `Trial`.
    pub kind: String,
    /// Name (the suggestion's trial name), labels and annotations.
    #[serde(default)]
    pub metadata: ObjectMeta,
    /// What the trial runs.
    #[serde(default)]
    pub spec: TrialSpec,
    /// How it went.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<TrialStatus>,
}

/// The spec of a Trial, built by the engine's driver from the experiment and a suggestion.
///
/// In a cluster it is the spec of the Trial custom resource (`sextant-controller`'s
/// `TrialResource`).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Default, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TrialSpec {
    /// The experiment's objective.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub objective: Option<ObjectiveSpec>,
    /// The parameter values.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub parameter_assignments: Vec<ParameterAssignment>,
    /// Rules that stop the trial early.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub early_stopping_rules: Vec<EarlyStoppingRule>,
    /// The run object, placeholders substituted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "crate::api::free_form_object")]
    pub run_spec: Option<serde_json::Value>,
    /// Keep the run object after completion.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub retain_run: bool,
    /// How metrics are collected.
    #[serde(default)]
    pub metrics_collector: MetricsCollectorSpec,
    /// Which pods get the metrics collector.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub primary_pod_labels: BTreeMap<String, String>,
    /// The training container or step.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub primary_container_name: String,
    /// Success condition on the run object.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub success_condition: String,
    /// Failure condition on the run object.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub failure_condition: String,
    /// Labels the suggestion gave the trial.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    /// The experiment's outcome constraints (Sextant's): their metrics must be reported too.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub constraints: Vec<ConstraintSpec>,
}

/// Condition types of a Trial.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, schemars::JsonSchema)]
pub enum TrialConditionType {
    /// Created, its run not yet started.
    Created,
    /// Its run is going.
    Running,
    /// Its run succeeded and reported the objective metric.
    Succeeded,
    /// Stopped on request (the experiment completed, or an operator stopped it).
    Killed,
    /// Its run failed.
    Failed,
    /// Its run succeeded without reporting the objective metric.
    MetricsUnavailable,
    /// Stopped by an early-stopping rule; its metrics so far count.
    EarlyStopped,
}

impl TrialConditionType {
    /// Its name, as Katib writes it in `status.conditions[].type`.
    pub fn name(self) -> &'static str {
        match self {
            TrialConditionType::Created => "Created",
            TrialConditionType::Running => "Running",
            TrialConditionType::Succeeded => "Succeeded",
            TrialConditionType::Killed => "Killed",
            TrialConditionType::Failed => "Failed",
            TrialConditionType::MetricsUnavailable => "MetricsUnavailable",
            TrialConditionType::EarlyStopped => "EarlyStopped",
        }
    }

    /// Katib's `IsCompleted`: the trial will not change any more.
    pub fn is_terminal(self) -> bool {
        !matches!(
            self,
            TrialConditionType::Created | TrialConditionType::Running
        )
    }
}

/// A condition of a Trial.
pub type TrialCondition = Condition<TrialConditionType>;

/// How a Trial went.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Default, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TrialStatus {
    /// When the trial was created.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_time: Option<DateTime<Utc>>,
    /// When it completed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub completion_time: Option<DateTime<Utc>>,
    /// When its status last changed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_reconcile_time: Option<DateTime<Utc>>,
    /// Its conditions, the most recently changed last.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<TrialCondition>,
    /// Its metrics.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observation: Option<Observation>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::ConditionStatus;
    use crate::api::common::CollectorKind;

    #[test]
    fn condition_names_are_the_serialized_names() {
        use TrialConditionType::*;
        for condition in [
            Created,
            Running,
            Succeeded,
            Killed,
            Failed,
            MetricsUnavailable,
            EarlyStopped,
        ] {
            assert_eq!(
                serde_json::to_value(condition).unwrap(),
                serde_json::Value::String(condition.name().into())
            );
        }
    }

    /// A Trial as `kubectl get trial -o yaml` prints it from Katib.
    const KATIB_TRIAL: &str = r#"
apiVersion: kubeflow.org/v1beta1
kind: Trial
metadata:
  name: random-6d4hq7zn
  namespace: kubeflow
  labels: {katib.kubeflow.org/experiment: random}
  ownerReferences: [{apiVersion: kubeflow.org/v1beta1, kind: Experiment, name: random, uid: x}]
spec:
  metricsCollector:
    collector: {kind: StdOut}
  objective:
    type: minimize
    goal: 0.001
    objectiveMetricName: loss
    metricStrategies: [{name: loss, value: min}]
  parameterAssignments:
    - {name: lr, value: "0.0123"}
  primaryContainerName: training-container
  runSpec: {apiVersion: batch/v1, kind: Job, metadata: {name: random-6d4hq7zn}}
  successCondition: status.conditions.#(type=="Complete")#|#(status=="True")#
  failureCondition: status.conditions.#(type=="Failed")#|#(status=="True")#
status:
  startTime: "2024-05-01T10:00:00Z"
  completionTime: "2024-05-01T10:05:00Z"
  conditions:
    - {type: Created, status: "True", reason: TrialCreated, message: Trial is created, lastUpdateTime: "2024-05-01T10:00:00Z", lastTransitionTime: "2024-05-01T10:00:00Z"}
    - {type: Running, status: "False", reason: TrialRunning, message: Trial is running}
    - {type: Succeeded, status: "True", reason: "TrialSucceeded. Job reason: Completed", message: "Trial has succeeded. Job message: done"}
  observation:
    metrics: [{name: loss, min: "0.21", max: "0.9", latest: "0.25"}]
"#;

    #[test]
    fn katib_trials_are_read() {
        let trial: Trial = serde_yaml::from_str(KATIB_TRIAL).expect("parses");
        assert_eq!(trial.spec.parameter_assignments[0].value, "0.0123");
        assert_eq!(trial.spec.metrics_collector.kind(), CollectorKind::StdOut);
        let status = trial.status.expect("a status");
        let last = status.conditions.last().expect("conditions");
        assert_eq!(last.condition_type, TrialConditionType::Succeeded);
        assert_eq!(last.status, ConditionStatus::True);
        let observation = status.observation.expect("an observation");
        assert!(observation.is_available_for("loss"));
        assert!(!observation.is_available_for("accuracy"));
        assert!(TrialConditionType::MetricsUnavailable.is_terminal());
        assert!(!TrialConditionType::Running.is_terminal());
    }
}
