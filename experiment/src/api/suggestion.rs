//! The Suggestion kind: the experiment's requests for parameter assignments and the assignments
//! produced so far (Katib's `suggestions/v1beta1`).

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::api::common::{
    AlgorithmSetting, AlgorithmSpec, EarlyStoppingRule, EarlyStoppingSpec, ParameterAssignment,
};
use crate::api::experiment::ResumePolicy;
use crate::api::{Condition, ObjectMeta};

/// The kind name of a Suggestion.
pub const SUGGESTION_KIND: &str = "Suggestion";

/// A Suggestion object.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct Suggestion {
    /// `kubeflow.org/v1beta1` or `sextant.dev/v1beta1`.
    pub api_version: String,
    /// `Suggestion`.
    pub kind: String,
    /// Name and namespace, the experiment's.
    #[serde(default)]
    pub metadata: ObjectMeta,
    /// What is asked for.
    #[serde(default)]
    pub spec: SuggestionSpec,
    /// What was produced.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<SuggestionStatus>,
}

/// The spec of a Suggestion.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct SuggestionSpec {
    /// The experiment's algorithm.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub algorithm: Option<AlgorithmSpec>,
    /// The experiment's early stopping.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub early_stopping: Option<EarlyStoppingSpec>,
    /// How many assignments are wanted in total so far.
    #[serde(default)]
    pub requests: i32,
    /// The experiment's resume policy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resume_policy: Option<ResumePolicy>,
}

/// One produced assignment, before or after it became a trial.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct TrialAssignment {
    /// The trial name to use.
    pub name: String,
    /// The parameter values.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub parameter_assignments: Vec<ParameterAssignment>,
    /// Early-stopping rules for the trial.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub early_stopping_rules: Vec<EarlyStoppingRule>,
    /// Labels for the trial.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
}

/// Condition types of a Suggestion.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum SuggestionConditionType {
    /// Created.
    Created,
    /// The suggestion service is ready (cluster only).
    DeploymentReady,
    /// Producing assignments.
    Running,
    /// Done.
    Succeeded,
    /// The algorithm or its settings failed.
    Failed,
}

/// A condition of a Suggestion.
pub type SuggestionCondition = Condition<SuggestionConditionType>;

/// What a Suggestion produced.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct SuggestionStatus {
    /// Settings the algorithm handed back, merged by name, sent with the next request.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub algorithm_settings: Vec<AlgorithmSetting>,
    /// How many assignments were produced.
    #[serde(default)]
    pub suggestion_count: i32,
    /// Every assignment produced.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub suggestions: Vec<TrialAssignment>,
    /// When the suggestion was created.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_time: Option<DateTime<Utc>>,
    /// When it completed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub completion_time: Option<DateTime<Utc>>,
    /// When its status last changed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_reconcile_time: Option<DateTime<Utc>>,
    /// Its conditions.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<SuggestionCondition>,
}
