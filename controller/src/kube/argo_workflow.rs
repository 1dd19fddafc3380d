//! What the PipelineRun controller reads of an Argo Workflow, and the run's status it implies.
//!
//! A Workflow compiled by [`sextant_pipeline::compile_argo`] has one DAG template (the
//! entrypoint) with a task per step, in the pipeline's topological order, each naming the step's
//! container template. Argo records each task's execution as a node of `.status.nodes`, whose
//! `templateName` is that template: a `Pod` node for a plain step, a `Retry` node (its children
//! the attempts, `Pod` nodes of the same template) for a step with a retry strategy, a `Skipped`
//! node for a step whose `when` was false or whose dependencies did not succeed, and one of
//! these per item of a fanned-out step (display name `step(INDEX:ITEM)`) under a `TaskGroup`.
//!
//! The steps are read from the Workflow's own DAG rather than from the pipeline that compiled
//! it: a run reports on what it runs, even if the `Pipeline` it referenced changed or went away
//! since.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Utc};
use serde::Deserialize;

use crate::kube::pipeline_resources::{
    PipelineRunPhase, PipelineRunStatus, StepStatus, set_condition,
};

/// An Argo Workflow, as much of it as the controller reads.
#[derive(Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Workflow {
    /// Its name, owners and labels.
    #[serde(default)]
    pub(crate) metadata: k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta,
    /// The templates, the DAG among them.
    #[serde(default)]
    pub(crate) spec: WorkflowSpec,
    /// What Argo's controller recorded; none before it saw the Workflow.
    #[serde(default)]
    pub(crate) status: Option<WorkflowStatus>,
}

/// The part of a Workflow's spec that names the steps.
#[derive(Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub(crate) struct WorkflowSpec {
    /// The template the Workflow starts with: the DAG.
    #[serde(default)]
    pub(crate) entrypoint: String,
    /// Every template.
    #[serde(default)]
    pub(crate) templates: Vec<Template>,
}

/// One template; only the DAG's matter here.
#[derive(Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Template {
    /// Its name.
    #[serde(default)]
    pub(crate) name: String,
    /// Its tasks, when it is a DAG.
    #[serde(default)]
    pub(crate) dag: Option<Dag>,
}

/// A DAG template's tasks.
#[derive(Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Dag {
    /// One per pipeline step, in the pipeline's order.
    #[serde(default)]
    pub(crate) tasks: Vec<DagTask>,
}

/// A DAG task: one pipeline step.
#[derive(Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub(crate) struct DagTask {
    /// The step's name.
    #[serde(default)]
    pub(crate) name: String,
    /// The step's container template, which its nodes name.
    #[serde(default)]
    pub(crate) template: String,
    /// Present when the step fans out.
    #[serde(default)]
    pub(crate) with_items: Option<Vec<serde_json::Value>>,
}

/// What Argo's controller recorded of a Workflow.
#[derive(Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub(crate) struct WorkflowStatus {
    /// Where the Workflow is; none (or empty) until Argo's controller took it.
    #[serde(default)]
    pub(crate) phase: Option<WorkflowPhase>,
    /// Why it is there.
    #[serde(default)]
    pub(crate) message: Option<String>,
    /// When it started.
    #[serde(default)]
    pub(crate) started_at: Option<DateTime<Utc>>,
    /// When it finished.
    #[serde(default)]
    pub(crate) finished_at: Option<DateTime<Utc>>,
    /// Every node, by id.
    #[serde(default)]
    pub(crate) nodes: BTreeMap<String, Node>,
}

/// A Workflow's phase, as Argo writes it.
#[derive(Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum WorkflowPhase {
    /// Accepted, not yet running.
    Pending,
    /// Running.
    Running,
    /// Every node succeeded or was skipped.
    Succeeded,
    /// A node failed.
    Failed,
    /// Argo could not run it.
    Error,
    /// The empty phase of a Workflow Argo has not looked at yet, or one this controller does
    /// not know: not started, as far as it can tell.
    #[serde(other)]
    Unknown,
}

/// One node of a Workflow.
#[derive(Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Node {
    /// The task's name, with `(INDEX:ITEM)` for an item of a fanned-out step.
    #[serde(default)]
    pub(crate) display_name: String,
    /// What the node is.
    #[serde(rename = "type", default)]
    pub(crate) type_: NodeType,
    /// The template it ran.
    #[serde(default)]
    pub(crate) template_name: Option<String>,
    /// Where it is: `Pending`, `Running`, `Succeeded`, `Skipped`, `Failed`, `Error`, `Omitted`.
    #[serde(default)]
    pub(crate) phase: Option<String>,
    /// Why it is there.
    #[serde(default)]
    pub(crate) message: Option<String>,
    /// When it started.
    #[serde(default)]
    pub(crate) started_at: Option<DateTime<Utc>>,
    /// When it finished.
    #[serde(default)]
    pub(crate) finished_at: Option<DateTime<Utc>>,
    /// Its children's ids: a retry node's attempts.
    #[serde(default)]
    pub(crate) children: Vec<String>,
    /// What it produced.
    #[serde(default)]
    pub(crate) outputs: Option<NodeOutputs>,
}

/// The kinds of node that stand for a step (or one item of it); the rest do not.
#[derive(Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) enum NodeType {
    /// A step that ran once, or one attempt of a retried step.
    Pod,
    /// A step with a retry strategy; its children are the attempts.
    Retry,
    /// A step that did not run.
    Skipped,
    /// A DAG, a task group, or anything else that is no step.
    #[default]
    #[serde(other)]
    Other,
}

/// A node's outputs.
#[derive(Deserialize, Clone, Debug, Default, PartialEq)]
pub(crate) struct NodeOutputs {
    /// Output parameters.
    #[serde(default)]
    pub(crate) parameters: Vec<NodeParameter>,
}

/// An output parameter.
#[derive(Deserialize, Clone, Debug, Default, PartialEq)]
pub(crate) struct NodeParameter {
    /// Its name.
    pub(crate) name: String,
    /// Its value, once read.
    #[serde(default)]
    pub(crate) value: Option<String>,
}

/// Node phases that mean the step did not succeed.
const FAILED_NODE_PHASES: [&str; 2] = ["Failed", "Error"];

/// The run's status as its Workflow says: phase, times, message and steps, with `Succeeded` or
/// `Failed` set once the Workflow ended; the rest of `previous` (its `Valid` condition, the
/// Workflow's name) is kept. A failed Workflow's message is its first failed step's (`step
/// train: ...`), which says more than Argo's own ("child ... failed").
pub(crate) fn status_from_workflow(
    previous: &PipelineRunStatus,
    workflow: &Workflow,
    now: DateTime<Utc>,
) -> PipelineRunStatus {
    let argo = workflow.status.clone().unwrap_or_default();
    let phase = match argo.phase {
        None | Some(WorkflowPhase::Pending) | Some(WorkflowPhase::Unknown) => {
            PipelineRunPhase::Pending
        }
        Some(WorkflowPhase::Running) => PipelineRunPhase::Running,
        Some(WorkflowPhase::Succeeded) => PipelineRunPhase::Succeeded,
        Some(WorkflowPhase::Failed) => PipelineRunPhase::Failed,
        Some(WorkflowPhase::Error) => PipelineRunPhase::Error,
    };
    let steps = steps(workflow, &argo.nodes);
    let failed_step = steps
        .iter()
        .find(|step| FAILED_NODE_PHASES.contains(&step.phase.as_str()))
        .map(|step| {
            format!(
                "step {}: {}",
                step_label(step),
                step.message.as_deref().unwrap_or(&step.phase)
            )
        });
    let step_failed = failed_step.is_some();
    let message = failed_step.or_else(|| non_empty(argo.message));
    let mut status = PipelineRunStatus {
        phase: Some(phase),
        message,
        started_at: argo.started_at,
        finished_at: argo.finished_at,
        steps,
        ..previous.clone()
    };
    match phase {
        PipelineRunPhase::Succeeded => set_condition(
            &mut status.conditions,
            "Succeeded",
            true,
            "WorkflowSucceeded",
            "every step succeeded or was skipped",
            now,
        ),
        PipelineRunPhase::Failed | PipelineRunPhase::Error => {
            let reason = match (step_failed, phase) {
                (true, _) => "StepFailed",
                (false, PipelineRunPhase::Error) => "WorkflowError",
                (false, _) => "WorkflowFailed",
            };
            let message = status.message.clone().unwrap_or_else(|| reason.to_owned());
            set_condition(
                &mut status.conditions,
                "Failed",
                true,
                reason,
                &message,
                now,
            );
        }
        PipelineRunPhase::Pending | PipelineRunPhase::Running => {}
    }
    status
}

/// The steps' states from the nodes, in the order of the DAG's tasks (a fanned-out step's items
/// in item order); a step Argo has not reached yet is left out.
fn steps(workflow: &Workflow, nodes: &BTreeMap<String, Node>) -> Vec<StepStatus> {
    let Some(dag) = workflow
        .spec
        .templates
        .iter()
        .find(|template| template.name == workflow.spec.entrypoint)
        .and_then(|template| template.dag.as_ref())
    else {
        return Vec::new();
    };
    // A retried step's attempts carry its template too; the retry node stands for the step.
    let attempts: BTreeSet<&str> = nodes
        .values()
        .filter(|node| node.type_ == NodeType::Retry)
        .flat_map(|node| node.children.iter().map(String::as_str))
        .collect();
    let mut steps = Vec::new();
    for task in &dag.tasks {
        let mut instances: Vec<StepStatus> = nodes
            .iter()
            .filter(|(id, node)| {
                node.type_ != NodeType::Other
                    && !attempts.contains(id.as_str())
                    && node.template_name.as_deref() == Some(task.template.as_str())
            })
            .map(|(_, node)| StepStatus {
                name: task.name.clone(),
                item_index: task
                    .with_items
                    .as_ref()
                    .and_then(|_| item_index(&task.name, &node.display_name)),
                phase: node.phase.clone().unwrap_or_else(|| "Pending".to_owned()),
                message: non_empty(node.message.clone()),
                started_at: node.started_at,
                finished_at: node.finished_at,
                outputs: node
                    .outputs
                    .iter()
                    .flat_map(|outputs| &outputs.parameters)
                    .filter_map(|parameter| {
                        Some((parameter.name.clone(), parameter.value.clone()?))
                    })
                    .collect(),
                retries: match node.type_ {
                    NodeType::Retry => {
                        u32::try_from(node.children.len().saturating_sub(1)).unwrap_or(u32::MAX)
                    }
                    _ => 0,
                },
            })
            .collect();
        instances.sort_by_key(|step| step.item_index);
        steps.extend(instances);
    }
    steps
}

/// The item index in a fanned-out task's node name, `task(INDEX:ITEM)`.
fn item_index(task: &str, display_name: &str) -> Option<usize> {
    let rest = display_name.strip_prefix(task)?.strip_prefix('(')?;
    let (index, _) = rest.split_once(':')?;
    index.parse().ok()
}

/// How a message names a step (instance): `train`, or `train[2]` for an item.
fn step_label(step: &StepStatus) -> String {
    match step.item_index {
        Some(index) => format!("{}[{index}]", step.name),
        None => step.name.clone(),
    }
}

/// The API server of Kubernetes 1.20 reads an empty string in a custom resource as null, so an
/// empty message is none.
fn non_empty(text: Option<String>) -> Option<String> {
    text.filter(|text| !text.is_empty())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn time(text: &str) -> DateTime<Utc> {
        text.parse().expect("a time")
    }

    /// A Workflow as `compile_argo` makes it for `prepare -> train (retried) -> report (two
    /// items)`, with `status`.
    fn workflow(status: serde_json::Value) -> Workflow {
        serde_json::from_value(json!({
            "metadata": {"name": "run"},
            "spec": {
                "entrypoint": "sextant-dag",
                "templates": [
                    {"name": "sextant-dag", "dag": {"tasks": [
                        {"name": "prepare", "template": "step-prepare"},
                        {"name": "train", "template": "step-train", "depends": "prepare.Succeeded"},
                        {"name": "report", "template": "step-report", "withItems": ["a", "b"]},
                    ]}},
                    {"name": "step-prepare", "container": {"image": "busybox"}},
                ],
            },
            "status": status,
        }))
        .expect("a workflow")
    }

    #[test]
    fn a_workflow_argo_has_not_seen_is_a_pending_run_without_steps() {
        let status = status_from_workflow(
            &PipelineRunStatus::default(),
            &workflow(json!(null)),
            time("2026-01-01T00:00:00Z"),
        );
        assert_eq!(status.phase, Some(PipelineRunPhase::Pending));
        assert!(status.steps.is_empty() && status.conditions.is_empty());
    }

    #[test]
    fn nodes_become_steps_in_the_dags_order_with_retries_items_and_outputs() {
        let argo = json!({
            "phase": "Running",
            "startedAt": "2026-01-01T00:00:00Z",
            "nodes": {
                "run": {"displayName": "run", "type": "DAG", "templateName": "sextant-dag", "phase": "Running"},
                "run-3": {"displayName": "report", "type": "TaskGroup", "templateName": "step-report", "phase": "Running"},
                "run-5": {"displayName": "report(1:b)", "type": "Pod", "templateName": "step-report", "phase": "Running"},
                "run-4": {"displayName": "report(0:a)", "type": "Pod", "templateName": "step-report", "phase": "Succeeded"},
                "run-2": {"displayName": "train", "type": "Retry", "templateName": "step-train", "phase": "Succeeded",
                          "children": ["run-6", "run-7"],
                          "outputs": {"parameters": [{"name": "loss", "value": "0.25"}]}},
                "run-6": {"displayName": "train(0)", "type": "Pod", "templateName": "step-train", "phase": "Failed", "message": "OOMKilled"},
                "run-7": {"displayName": "train(1)", "type": "Pod", "templateName": "step-train", "phase": "Succeeded"},
                "run-1": {"displayName": "prepare", "type": "Pod", "templateName": "step-prepare", "phase": "Succeeded",
                          "startedAt": "2026-01-01T00:00:01Z", "finishedAt": "2026-01-01T00:00:05Z"},
            },
        });
        let status = status_from_workflow(
            &PipelineRunStatus::default(),
            &workflow(argo),
            time("2026-01-01T00:01:00Z"),
        );
        assert_eq!(status.phase, Some(PipelineRunPhase::Running));
        assert_eq!(status.started_at, Some(time("2026-01-01T00:00:00Z")));
        let summary: Vec<(&str, Option<usize>, &str, u32)> = status
            .steps
            .iter()
            .map(|step| {
                (
                    step.name.as_str(),
                    step.item_index,
                    step.phase.as_str(),
                    step.retries,
                )
            })
            .collect();
        assert_eq!(
            summary,
            [
                ("prepare", None, "Succeeded", 0),
                ("train", None, "Succeeded", 1),
                ("report", Some(0), "Succeeded", 0),
                ("report", Some(1), "Running", 0),
            ]
        );
        assert_eq!(status.steps[1].outputs["loss"], "0.25");
        assert_eq!(
            status.steps[0].finished_at,
            Some(time("2026-01-01T00:00:05Z"))
        );
        assert_eq!(
            status.message, None,
            "a failed attempt that was retried fails nothing"
        );
    }

    #[test]
    fn a_failed_workflow_fails_the_run_with_its_failed_steps_message() {
        let argo = json!({
            "phase": "Failed",
            "message": "child 'run-2' failed",
            "finishedAt": "2026-01-01T00:02:00Z",
            "nodes": {
                "run-1": {"displayName": "prepare", "type": "Pod", "templateName": "step-prepare", "phase": "Succeeded"},
                "run-2": {"displayName": "train", "type": "Pod", "templateName": "step-train", "phase": "Failed",
                          "message": "Error (exit code 1)"},
                "run-3": {"displayName": "report", "type": "Skipped", "templateName": "step-report", "phase": "Omitted"},
            },
        });
        let now = time("2026-01-01T00:03:00Z");
        let status = status_from_workflow(&PipelineRunStatus::default(), &workflow(argo), now);
        assert_eq!(status.phase, Some(PipelineRunPhase::Failed));
        assert_eq!(
            status.message.as_deref(),
            Some("step train: Error (exit code 1)")
        );
        assert_eq!(status.steps[2].phase, "Omitted");
        let failed = &status.conditions[0];
        assert_eq!(
            (failed.type_.as_str(), failed.status.as_str()),
            ("Failed", "True")
        );
        assert_eq!(failed.reason.as_deref(), Some("StepFailed"));
        assert_eq!(failed.last_transition_time, Some(now));
    }

    #[test]
    fn a_workflow_argo_could_not_run_is_an_error_with_argos_message() {
        let argo = json!({"phase": "Error", "message": "invalid spec: templates.step-x not found"});
        let status = status_from_workflow(
            &PipelineRunStatus::default(),
            &workflow(argo),
            time("2026-01-01T00:00:00Z"),
        );
        assert_eq!(status.phase, Some(PipelineRunPhase::Error));
        assert_eq!(
            status.conditions[0].reason.as_deref(),
            Some("WorkflowError")
        );
        assert_eq!(
            status.conditions[0].message.as_deref(),
            Some("invalid spec: templates.step-x not found")
        );
    }

    #[test]
    fn a_succeeded_workflow_keeps_the_runs_other_conditions() {
        let mut previous = PipelineRunStatus {
            workflow_name: Some("run".into()),
            ..Default::default()
        };
        let then = time("2026-01-01T00:00:00Z");
        set_condition(
            &mut previous.conditions,
            "Valid",
            true,
            "Compiled",
            "compiled to Workflow run",
            then,
        );
        let argo = json!({"phase": "Succeeded", "nodes": {
            "run-1": {"displayName": "prepare", "type": "Pod", "templateName": "step-prepare", "phase": "Succeeded"},
        }});
        let status = status_from_workflow(&previous, &workflow(argo), time("2026-01-01T00:05:00Z"));
        assert_eq!(status.workflow_name.as_deref(), Some("run"));
        let types: Vec<&str> = status
            .conditions
            .iter()
            .map(|condition| condition.type_.as_str())
            .collect();
        assert_eq!(types, ["Valid", "Succeeded"]);
        assert_eq!(status.conditions[0].last_transition_time, Some(then));
    }

    #[test]
    fn item_indices_are_read_from_the_node_name() {
        assert_eq!(
            item_index("report", "report(12:{\"a\":\"(1:2)\"})"),
            Some(12)
        );
        assert_eq!(item_index("report", "report"), None);
        assert_eq!(item_index("report", "reporter(1:a)"), None);
    }
}
