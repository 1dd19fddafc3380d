//! The Experiment kind: a search space, an objective, an algorithm, a budget and a trial
//! template (Katib's `experiments/v1beta1`).

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::api::common::{
    AlgorithmSpec, EarlyStoppingSpec, MetricsCollectorSpec, ObjectiveSpec, Observation,
    ParameterAssignment,
};
use crate::api::{Condition, ObjectMeta, string_enum};

/// The kind name of an Experiment.
pub const EXPERIMENT_KIND: &str = "Experiment";

/// Annotation that keeps trials running after their experiment completes (`"true"`); by
/// default Sextant stops them, where Katib would let them run on unobserved.
pub const KEEP_RUNNING_TRIALS_ANNOTATION: &str = "sextant.dev/keep-running-trials";

/// Annotation the persistence agent puts on the experiments it mirrors from a cluster into a
/// store, naming the namespace of the Experiment: such an experiment is run by the cluster's
/// controller, and `sextant server` only shows it (it never resumes, stops or deletes it).
pub const CLUSTER_NAMESPACE_ANNOTATION: &str = "sextant.dev/cluster-namespace";

/// An Experiment object.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Default, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Experiment {
    /// `kubeflow.org/v1beta1` or `sextant.dev/v1beta1`.
    pub api_version: String,
    /// `Experiment`.
    pub kind: String,
    /// Name, namespace, labels and annotations.
    #[serde(default)]
    pub metadata: ObjectMeta,
    /// What to search and how.
    #[serde(default)]
    pub spec: ExperimentSpec,
    /// Where the search stands; absent until the engine first writes it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<ExperimentStatus>,
}

impl Experiment {
    /// The namespace of the cluster Experiment this one mirrors ([`CLUSTER_NAMESPACE_ANNOTATION`]),
    /// if it is a mirror.
    pub fn cluster_namespace(&self) -> Option<&str> {
        self.metadata
            .annotations
            .get(CLUSTER_NAMESPACE_ANNOTATION)
            .map(String::as_str)
    }
}

string_enum! {
    /// What happens to the suggestion state after the experiment completes, and whether it can
    /// be restarted by raising `maxTrialCount`.
    ResumePolicy {
        /// Not restartable.
        Never = "Never",
        /// Restartable; the suggestion service keeps running.
        LongRunning = "LongRunning",
        /// Restartable; the suggestion state is kept on a volume (locally: in the store).
        FromVolume = "FromVolume",
    }
}

string_enum! {
    /// Katib's parameter types.
    ParameterType {
        /// A real number in `[min, max]`.
        Double = "double",
        /// A whole number in `[min, max]`.
        Int = "int",
        /// One number from a list.
        Discrete = "discrete",
        /// One string from a list.
        Categorical = "categorical",
        /// Katib's explicit unknown type (rejected by validation).
        Unknown = "unknown",
    }
}

string_enum! {
    /// Katib's prior distributions.
    Distribution {
        /// Uniform.
        Uniform = "uniform",
        /// Uniform in the logarithm.
        LogUniform = "logUniform",
        /// Normal.
        Normal = "normal",
        /// Normal in the logarithm.
        LogNormal = "logNormal",
        /// Katib's explicit unknown distribution, read as uniform.
        Unknown = "unknown",
    }
}

/// The spec of an Experiment.
///
/// In a cluster it is the spec of the Experiment custom resource (`sextant-controller`'s
/// `ExperimentResource`).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Default, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ExperimentSpec {
    /// The search space.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub parameters: Vec<ParameterSpec>,
    /// What is optimized.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub objective: Option<ObjectiveSpec>,
    /// The search algorithm.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub algorithm: Option<AlgorithmSpec>,
    /// The early-stopping algorithm, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub early_stopping: Option<EarlyStoppingSpec>,
    /// How each trial's run is built.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trial_template: Option<TrialTemplate>,
    /// At most this many trials pending or running at once (default 3).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parallel_trial_count: Option<i32>,
    /// The experiment succeeds after this many completed trials; unlimited when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_trial_count: Option<i32>,
    /// The experiment fails after this many failed or metrics-unavailable trials.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_failed_trial_count: Option<i32>,
    /// How metrics are collected (default `StdOut`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metrics_collector_spec: Option<MetricsCollectorSpec>,
    /// Neural architecture search; parsed so that validation can say it is not supported.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nas_config: Option<NasConfig>,
    /// Whether the experiment can be restarted once completed (default `Never`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resume_policy: Option<ResumePolicy>,
    /// Sextant's outcome constraints: a trial that breaks one is infeasible, never optimal.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub constraints: Vec<ConstraintSpec>,
    /// Sextant's warm start: what earlier experiments learned, and points to try first.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub warm_start: Option<WarmStartSpec>,
}

/// Where an experiment's search starts (Katib issue 934; Optuna's `enqueue_trial`); see
/// [`crate::warm_start`] for the rules.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Default, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct WarmStartSpec {
    /// Earlier experiments (in the same store, or in a cluster the same namespace) whose
    /// succeeded trials the algorithm learns from before its own; they are not this
    /// experiment's trials and count against none of its budgets.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub from_experiments: Vec<String>,
    /// Points to try first, in order, each once: a value for every parameter, by name, as a
    /// number or a string. They are this experiment's first trials and count against
    /// `maxTrialCount`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(schema_with = "enqueue_schema")]
    pub enqueue: Vec<BTreeMap<String, serde_json::Value>>,
}

/// A list of objects whose values are numbers or strings; validation checks them against the
/// parameters, so the schema only keeps the API server from pruning them.
fn enqueue_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    schemars::json_schema!({
        "type": "array",
        "items": {
            "type": "object",
            "additionalProperties": {"x-kubernetes-preserve-unknown-fields": true},
        },
    })
}

/// An outcome constraint: a collected metric must stay within a bound (`max`, `min` or both;
/// the bound itself is allowed).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Default, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ConstraintSpec {
    /// The metric: an objective or an additional metric.
    #[serde(default)]
    pub metric_name: String,
    /// The largest value allowed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max: Option<f64>,
    /// The smallest value allowed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min: Option<f64>,
}

/// One search parameter, all values as strings (Katib's `ParameterSpec`).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Default, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ParameterSpec {
    /// The parameter's name.
    #[serde(default)]
    pub name: String,
    /// Its type.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parameter_type: Option<ParameterType>,
    /// Its feasible values.
    #[serde(default)]
    pub feasible_space: FeasibleSpace,
    /// Sextant's: when the parameter is active; absent for always. An inactive parameter is
    /// left out of the trial's assignments.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub condition: Option<ParameterCondition>,
}

/// The values of a categorical or discrete parent under which a parameter is active
/// (ConfigSpace's `InCondition`); conditions nest, since the parent may have one too.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Default, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ParameterCondition {
    /// The parent parameter's name.
    #[serde(default)]
    pub parameter: String,
    /// The parent's values, as written in its `feasibleSpace.list`, that activate the parameter.
    #[serde(default)]
    pub values: Vec<String>,
}

/// The feasible values of a parameter (Katib's `FeasibleSpace`).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Default, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct FeasibleSpace {
    /// Upper bound of an int or double parameter.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub max: String,
    /// Lower bound of an int or double parameter.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub min: String,
    /// The values of a discrete or categorical parameter.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub list: Vec<String>,
    /// Spacing of allowed int or double values.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub step: String,
    /// The prior (default `uniform`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub distribution: Option<Distribution>,
}

/// Neural architecture search configuration (Katib's `NasConfig`), out of Sextant's scope.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Default, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NasConfig {
    /// The network's shape.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub graph_config: Option<GraphConfig>,
    /// The operations to search over.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub operations: Vec<Operation>,
}

/// The shape of a searched network.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Default, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct GraphConfig {
    /// Layers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub num_layers: Option<i32>,
    /// Input sizes.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub input_sizes: Vec<i32>,
    /// Output sizes.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub output_sizes: Vec<i32>,
}

/// One operation of a NAS search space.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Default, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Operation {
    /// The operation's type, e.g. `convolution`.
    #[serde(default)]
    pub operation_type: String,
    /// Its parameters.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub parameters: Vec<ParameterSpec>,
}

/// A template stored elsewhere: in a cluster a ConfigMap key, locally a file.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Default, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ConfigMapSource {
    /// The ConfigMap (cluster only).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub config_map_name: String,
    /// Its namespace (cluster only).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub config_map_namespace: String,
    /// The key in the ConfigMap; locally, a file path relative to the experiment file.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub template_path: String,
}

/// A `${trialParameters.<name>}` placeholder and what fills it.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Default, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TrialParameterSpec {
    /// The placeholder's name.
    #[serde(default)]
    pub name: String,
    /// Free text.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub description: String,
    /// A search parameter's name, or a `${trialSpec.Name}`-style reference to trial metadata.
    #[serde(default)]
    pub reference: String,
    /// Sextant's: the value substituted when `reference` names a conditional parameter that is
    /// inactive in the trial. Without it, the argv items holding the placeholder are dropped.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default: Option<String>,
}

/// How each trial's run object is built (Katib's `TrialTemplate`; `trialSpec` and `configMap`
/// are Katib's inline `TrialSource`).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Default, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TrialTemplate {
    /// Keep the run object after the trial completes.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub retain: bool,
    /// The run object: a `batch/v1` Job, a `sextant.dev/v1beta1` Process or Pipeline, or in
    /// a cluster any kind with success and failure conditions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "crate::api::free_form_object")]
    pub trial_spec: Option<serde_json::Value>,
    /// The run object stored elsewhere.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config_map: Option<ConfigMapSource>,
    /// The placeholders and what fills them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub trial_parameters: Vec<TrialParameterSpec>,
    /// Which pods get the metrics collector (cluster only).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub primary_pod_labels: BTreeMap<String, String>,
    /// The training container (Job) or step (Pipeline) whose output holds the metrics.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub primary_container_name: String,
    /// GJSON-style path on the run object that means success.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub success_condition: String,
    /// GJSON-style path on the run object that means failure.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub failure_condition: String,
}

/// Condition types of an Experiment.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, schemars::JsonSchema)]
pub enum ExperimentConditionType {
    /// Accepted and initialized.
    Created,
    /// Trials are being run.
    Running,
    /// A completed experiment is being resumed after `maxTrialCount` was raised.
    Restarting,
    /// Completed successfully: goal, budget or search space reached.
    Succeeded,
    /// Completed unsuccessfully: too many failed trials, or the suggestion failed.
    Failed,
}

impl ExperimentConditionType {
    /// Every type; a status holds each at most once, so it has at most this many conditions.
    pub const ALL: [ExperimentConditionType; 5] = [
        ExperimentConditionType::Created,
        ExperimentConditionType::Running,
        ExperimentConditionType::Restarting,
        ExperimentConditionType::Succeeded,
        ExperimentConditionType::Failed,
    ];

    /// Its name, as Katib writes it in `status.conditions[].type`.
    pub fn name(&self) -> &'static str {
        match self {
            ExperimentConditionType::Created => "Created",
            ExperimentConditionType::Running => "Running",
            ExperimentConditionType::Restarting => "Restarting",
            ExperimentConditionType::Succeeded => "Succeeded",
            ExperimentConditionType::Failed => "Failed",
        }
    }
}

/// A condition of an Experiment.
pub type ExperimentCondition = Condition<ExperimentConditionType>;

/// The best trial so far.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Default, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct OptimalTrial {
    /// Its name; empty when no trial has an objective value yet.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub best_trial_name: String,
    /// Its parameter values.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub parameter_assignments: Vec<ParameterAssignment>,
    /// Everything it reported.
    #[serde(default)]
    pub observation: Observation,
}

/// Where an experiment stands, in Katib's shape.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Default, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ExperimentStatus {
    /// When the experiment was created.
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
    pub conditions: Vec<ExperimentCondition>,
    /// The best trial so far (with several objectives, the best feasible one on the first).
    #[serde(default)]
    pub current_optimal_trial: OptimalTrial,
    /// With several objectives, the Pareto front: the succeeded trials that meet every
    /// constraint and that no other such trial dominates, in trial order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub pareto_optimal_trials: Vec<OptimalTrial>,
    /// Trials running.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub running_trial_list: Vec<String>,
    /// Trials created, not yet running.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub pending_trial_list: Vec<String>,
    /// Trials failed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub failed_trial_list: Vec<String>,
    /// Trials succeeded.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub succeeded_trial_list: Vec<String>,
    /// Trials killed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub killed_trial_list: Vec<String>,
    /// Trials early stopped.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub early_stopped_trial_list: Vec<String>,
    /// Trials that succeeded without reporting the objective metric.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub metrics_unavailable_trial_list: Vec<String>,
    /// All trials.
    #[serde(default)]
    pub trials: i32,
    /// Succeeded trials.
    #[serde(default)]
    pub trials_succeeded: i32,
    /// Failed trials.
    #[serde(default)]
    pub trials_failed: i32,
    /// Killed trials.
    #[serde(default)]
    pub trials_killed: i32,
    /// Pending trials.
    #[serde(default)]
    pub trials_pending: i32,
    /// Running trials.
    #[serde(default)]
    pub trials_running: i32,
    /// Early-stopped trials.
    #[serde(default)]
    pub trials_early_stopped: i32,
    /// Metrics-unavailable trials (Katib's JSON name has no `s`).
    #[serde(default)]
    pub trial_metrics_unavailable: i32,
}

impl Experiment {
    /// Whether the experiment asks to keep its trials running once it completes.
    pub fn keeps_running_trials(&self) -> bool {
        self.metadata
            .annotations
            .get(KEEP_RUNNING_TRIALS_ANNOTATION)
            .is_some_and(|value| value == "true")
    }
}
