//! The pipeline kinds in a cluster, group `sextant.dev/v1beta1`: `Pipeline` (a stored spec),
//! `PipelineRun` (one run of a pipeline on Argo Workflows) and `RecurringRun` (PipelineRuns on a
//! cron schedule), with Kubeflow Pipelines' meanings (its Pipeline, Run and RecurringRun /
//! ScheduledWorkflow) and the field names of Sextant's local pipeline documents.
//!
//! A `Pipeline` resource is the same document `sextant pipeline run` reads: `kubectl apply -f
//! pipeline.yaml` stores it as is. The spec is typed here for the definition's schema (so the
//! API server rejects a malformed shape at once); its rules (references, cycles, conditions)
//! stay in `sextant_pipeline::spec`, which the controllers call and whose issues they report as
//! status conditions naming the field path.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// A stored pipeline: the `spec` of a local pipeline document.
#[derive(kube::CustomResource, Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[kube(
    group = "sextant.dev",
    version = "v1beta1",
    kind = "Pipeline",
    namespaced,
    shortname = "pl",
    category = "sextant",
    doc = "A stored pipeline: parameters and a DAG of steps, run by PipelineRuns that reference it."
)]
#[serde(rename_all = "camelCase")]
pub struct PipelineSpec {
    /// The pipeline's parameters, each with an optional default.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub params: Vec<PipelineParam>,
    /// The steps of the DAG.
    pub steps: Vec<PipelineStep>,
}

impl PipelineSpec {
    /// The local pipeline document of this spec named `name`, as `sextant pipeline run` reads
    /// one (JSON is YAML): what the one spec loader checks, and what a stored run keeps.
    pub fn document(&self, name: &str) -> serde_json::Value {
        serde_json::json!({
            "apiVersion": sextant_pipeline::spec::API_VERSION,
            "kind": sextant_pipeline::spec::KIND,
            "metadata": {"name": name},
            "spec": self,
        })
    }
}

/// A declared pipeline parameter.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PipelineParam {
    /// The name used in `{{params.NAME}}`.
    pub name: String,
    /// The value when a run does not set one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default: Option<String>,
    /// What the parameter is for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

/// One step of a pipeline, as in a local pipeline document.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PipelineStep {
    /// Unique within the pipeline.
    pub name: String,
    /// `command` (the default) or a plug-in kind such as `tune`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    /// The argv, each item a template.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command: Option<Vec<String>>,
    /// Added to the container's environment.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub env: Option<BTreeMap<String, String>>,
    /// The container image (needed to run on Argo).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    /// Declared output parameters and artifacts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outputs: Option<StepOutputsDeclaration>,
    /// A condition; false skips the step.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub when: Option<String>,
    /// Steps this one runs after, beyond those its references imply.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub depends_on: Option<Vec<String>>,
    /// Fan-out: one instance per item (a string, or a mapping read as `{{item.field}}`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "free_form_list")]
    pub with_items: Option<Vec<serde_json::Value>>,
    /// Retries after the first attempt.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry: Option<StepRetry>,
    /// Bounds each attempt.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_seconds: Option<u64>,
    /// Whether a local run may reuse an earlier identical execution.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache: Option<bool>,
    /// A plug-in kind's own spec (for `tune`: an Experiment's spec).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "free_form_object")]
    pub spec: Option<serde_json::Value>,
}

/// A step's declared outputs.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct StepOutputsDeclaration {
    /// Output parameters: the text of a file the step writes.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub params: Vec<NamedPath>,
    /// Output artifacts: a file or directory the step writes.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub artifacts: Vec<NamedPath>,
}

/// An output and the path it is read from, relative to the step's working directory.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct NamedPath {
    /// The output's name.
    pub name: String,
    /// Where the step writes it.
    pub path: String,
}

/// A step's retry policy.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct StepRetry {
    /// Retries after the first attempt.
    pub limit: u32,
    /// The first wait, doubled each time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backoff_seconds: Option<u64>,
    /// The longest wait.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_backoff_seconds: Option<u64>,
}

/// One run of a pipeline on Argo Workflows.
#[derive(kube::CustomResource, Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[kube(
    group = "sextant.dev",
    version = "v1beta1",
    kind = "PipelineRun",
    namespaced,
    status = "PipelineRunStatus",
    shortname = "prun",
    category = "sextant",
    doc = "One run of a pipeline (inline or a reference to a Pipeline) on Argo Workflows.",
    printcolumn = r#"{"name":"Phase","type":"string","jsonPath":".status.phase"}"#,
    printcolumn = r#"{"name":"Workflow","type":"string","jsonPath":".status.workflowName"}"#,
    printcolumn = r#"{"name":"Started","type":"date","jsonPath":".status.startedAt"}"#,
    printcolumn = r#"{"name":"Finished","type":"date","jsonPath":".status.finishedAt"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct PipelineRunSpec {
    /// The pipeline, inline; exactly one of this and `pipelineRef`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pipeline_spec: Option<PipelineSpec>,
    /// A `Pipeline` resource in the run's namespace; exactly one of this and `pipelineSpec`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pipeline_ref: Option<PipelineReference>,
    /// Values of the pipeline's parameters; each must be declared by the pipeline.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub params: Vec<ParamValue>,
    /// The service account the Workflow's pods run as.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_account_name: Option<String>,
}

/// A reference to a `Pipeline` resource.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PipelineReference {
    /// The Pipeline's name, in the run's namespace.
    pub name: String,
}

/// A parameter's value for one run.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ParamValue {
    /// The parameter's name.
    pub name: String,
    /// Its value.
    pub value: String,
}

/// Where a PipelineRun is: Argo's workflow phases, plus `Failed` for a run that could not
/// become a Workflow (its `Valid` condition says why).
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
pub enum PipelineRunPhase {
    /// Accepted; its Workflow not yet running.
    Pending,
    /// Its Workflow runs.
    Running,
    /// Every step succeeded or was skipped.
    Succeeded,
    /// A step failed, or the run was invalid.
    Failed,
    /// Argo could not run the Workflow.
    Error,
}

/// What a PipelineRun's controller observed.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PipelineRunStatus {
    /// Where the run is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<PipelineRunPhase>,
    /// Why it is there (the failed node's message, an invalid spec's issues).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// The Argo Workflow running it (owned by the run).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workflow_name: Option<String>,
    /// When its Workflow started.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_at: Option<DateTime<Utc>>,
    /// When its Workflow finished.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<DateTime<Utc>>,
    /// Each step's state, in the pipeline's order (a fanned-out step once per item).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub steps: Vec<StepStatus>,
    /// Conditions: `Valid` (the spec compiled, or why not), `WorkflowCreated` (or why not:
    /// another owner's Workflow holds the run's name), `Succeeded`, `Failed`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<ResourceCondition>,
    /// The generation of the spec this status is of.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
}

/// One step (instance) of a PipelineRun.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct StepStatus {
    /// The step's name.
    pub name: String,
    /// The `withItems` index of a fanned-out step's instance.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub item_index: Option<usize>,
    /// The Argo node's phase: `Pending`, `Running`, `Succeeded`, `Skipped`, `Failed`, `Error`,
    /// `Omitted`.
    pub phase: String,
    /// The node's message (why it failed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// When it started.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_at: Option<DateTime<Utc>>,
    /// When it finished.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<DateTime<Utc>>,
    /// Its output parameters.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub outputs: BTreeMap<String, String>,
    /// Attempts after the first (Argo's retry child nodes).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub retries: u32,
}

/// A condition on a pipeline resource, as Kubernetes' own (`metav1.Condition`'s fields).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ResourceCondition {
    /// `Valid`, `Succeeded`, `Failed`, `Scheduled`, ...
    #[serde(rename = "type")]
    pub type_: String,
    /// `True`, `False` or `Unknown`.
    pub status: String,
    /// A CamelCase reason.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// What a person needs to know, naming the field path when a field is at fault.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// When the status last changed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_transition_time: Option<DateTime<Utc>>,
}

/// PipelineRuns created on a cron schedule (Kubeflow Pipelines' RecurringRun, Argo's
/// CronWorkflow semantics).
#[derive(kube::CustomResource, Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[kube(
    group = "sextant.dev",
    version = "v1beta1",
    kind = "RecurringRun",
    namespaced,
    status = "RecurringRunStatus",
    shortname = "rrun",
    category = "sextant",
    doc = "PipelineRuns created from a template on a cron schedule.",
    printcolumn = r#"{"name":"Schedule","type":"string","jsonPath":".spec.schedule.cron"}"#,
    printcolumn = r#"{"name":"Enabled","type":"boolean","jsonPath":".spec.enabled"}"#,
    printcolumn = r#"{"name":"Last","type":"date","jsonPath":".status.lastFiringTime"}"#,
    printcolumn = r#"{"name":"Next","type":"date","jsonPath":".status.nextFiringTime"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct RecurringRunSpec {
    /// What each firing creates.
    pub run_template: PipelineRunSpec,
    /// When it fires.
    pub schedule: CronSchedule,
    /// The most of its runs active at once, 1 to 10 (default 10, as Kubeflow Pipelines);
    /// firings beyond wait.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_concurrency: Option<u32>,
    /// Start only the latest of several missed firings.
    #[serde(default)]
    pub no_catchup: bool,
    /// A disabled recurring run fires nothing (default true).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,
}

/// A cron schedule.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CronSchedule {
    /// Five fields (minute precision) or six (seconds first).
    pub cron: String,
    /// The IANA time zone the expression is read in (default UTC).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time_zone: Option<String>,
    /// No firing before this time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_time: Option<DateTime<Utc>>,
    /// No firing after this time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end_time: Option<DateTime<Utc>>,
}

/// What a RecurringRun's controller observed and did.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RecurringRunStatus {
    /// The scheduled time of the last firing started.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_firing_time: Option<DateTime<Utc>>,
    /// The next scheduled time, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_firing_time: Option<DateTime<Utc>>,
    /// Its PipelineRuns still pending or running.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub active: Vec<String>,
    /// Conditions: `Valid` (the schedule and template, or why not).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<ResourceCondition>,
    /// The generation of the spec this status is of.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
}

/// Sets the condition `type_` of `conditions` (added at the end when new): `True` or `False`,
/// with its reason and message. Its `lastTransitionTime` moves only when its status changes, so
/// setting the same condition again writes nothing new.
pub fn set_condition(
    conditions: &mut Vec<ResourceCondition>,
    type_: &str,
    status: bool,
    reason: &str,
    message: &str,
    now: DateTime<Utc>,
) {
    let status = if status { "True" } else { "False" }.to_owned();
    let index = match conditions
        .iter()
        .position(|condition| condition.type_ == type_)
    {
        Some(index) => index,
        None => {
            conditions.push(ResourceCondition {
                type_: type_.to_owned(),
                status: String::new(),
                reason: None,
                message: None,
                last_transition_time: None,
            });
            conditions.len() - 1
        }
    };
    let condition = &mut conditions[index];
    if condition.status != status {
        condition.status = status;
        condition.last_transition_time = Some(now);
    }
    // Kubernetes 1.20 reads an empty string in a custom resource as null: none is written.
    condition.reason = Some(reason.to_owned()).filter(|text| !text.is_empty());
    condition.message = Some(message.to_owned()).filter(|text| !text.is_empty());
}

/// The condition `type_` of `conditions`, if set.
pub fn condition<'a>(
    conditions: &'a [ResourceCondition],
    type_: &str,
) -> Option<&'a ResourceCondition> {
    conditions.iter().find(|condition| condition.type_ == type_)
}

fn is_zero(value: &u32) -> bool {
    *value == 0
}

/// Any JSON object, kept as written (a plug-in step's spec).
fn free_form_object(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    schemars::json_schema!({
        "type": "object",
        "x-kubernetes-preserve-unknown-fields": true,
    })
}

/// A list of strings or objects (`withItems`).
fn free_form_list(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    schemars::json_schema!({
        "type": "array",
        "items": {"x-kubernetes-preserve-unknown-fields": true},
    })
}
