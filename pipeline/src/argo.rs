//! Compilation of a [`Pipeline`] to an Argo Workflow (`argoproj.io/v1alpha1`).
//!
//! The workflow has one DAG template (`sextant-dag`, the entrypoint) with a task per step, and a
//! container template per step (`step-<name>`). Each distinct reference a step makes becomes an
//! input of its template, fed by the task's arguments:
//!
//! | our reference | template input | task argument |
//! | --- | --- | --- |
//! | `{{params.x}}` | parameter `params-x` | `{{workflow.parameters.x}}` |
//! | `{{steps.s.outputs.params.p}}` | parameter `steps-s-params-p` | `{{tasks.s.outputs.parameters.p}}` (a JSON list when `s` fans out, as Argo aggregates) |
//! | `{{steps.s.outputs.artifacts.a}}` | artifact `steps-s-artifacts-a` at `/sextant/inputs/s/a` | `from: {{tasks.s.outputs.artifacts.a}}` |
//! | `{{item}}`, `{{item.f}}` | parameter `item`, `item-f` | `{{item}}`, `{{item.f}}` |
//!
//! Steps run in `/sextant/work`, where output parameters (`valueFrom.path`) and artifacts are
//! read. Dependencies become `depends: "a.Succeeded && b.Succeeded"`, which skips dependents of
//! a skipped or failed step as the local executor does. `retry` becomes `retryStrategy`
//! (`retryPolicy: Always`, `backoff.duration`, `factor: 2`, `cap`), `timeoutSeconds` becomes
//! `activeDeadlineSeconds`, `when` is rewritten in Argo's expression syntax. Argo cannot express
//! everything: every step needs an `image`, plug-in kinds have no container, and the artifacts of
//! a fanned-out step cannot be collected; each of these is reported per step.

use std::collections::BTreeSet;

use serde_json::{Value, json};

use crate::condition::{Condition, Operand};
use crate::spec::{COMMAND_KIND, Item, Pipeline, SpecIssue, SpecIssues, Step};
use crate::template::{Reference, Segment, Template};

/// Where steps run and write their outputs inside the container.
pub const WORK_DIR: &str = "/sextant/work";
/// Where input artifacts are placed inside the container.
pub const INPUTS_DIR: &str = "/sextant/inputs";
/// The name of the DAG template (the workflow's entrypoint).
pub const DAG_TEMPLATE: &str = "sextant-dag";

/// Why a pipeline cannot be compiled for Argo.
#[derive(Debug, thiserror::Error)]
#[error("cannot compile the pipeline for argo workflows:\n{0}")]
pub struct ArgoCompileError(pub SpecIssues);

/// Compiles `pipeline` into an Argo Workflow object.
pub fn compile_argo(pipeline: &Pipeline) -> Result<Value, ArgoCompileError> {
    let mut issues = Vec::new();
    for (index, step) in pipeline.steps.iter().enumerate() {
        check_step(pipeline, index, step, &mut issues);
    }
    if !issues.is_empty() {
        return Err(ArgoCompileError(SpecIssues(issues)));
    }
    let parameters: Vec<Value> = pipeline
        .params
        .iter()
        .map(|param| match &param.default {
            Some(default) => json!({"name": param.name, "value": default}),
            None => json!({"name": param.name}),
        })
        .collect();
    let tasks: Vec<Value> = pipeline
        .topological_order
        .iter()
        .map(|index| task(pipeline, &pipeline.steps[*index]))
        .collect();
    let mut templates = vec![json!({"name": DAG_TEMPLATE, "dag": {"tasks": tasks}})];
    templates.extend(pipeline.steps.iter().map(container_template));
    Ok(json!({
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "Workflow",
        "metadata": {
            "generateName": format!("{}-", pipeline.name),
            "labels": {"sextant.dev/pipeline": pipeline.name},
        },
        "spec": {
            "entrypoint": DAG_TEMPLATE,
            "arguments": {"parameters": parameters},
            "templates": templates,
        },
    }))
}

fn check_step(pipeline: &Pipeline, index: usize, step: &Step, issues: &mut Vec<SpecIssue>) {
    let path = format!("spec.steps[{index}]");
    if step.kind != COMMAND_KIND {
        issues.push(SpecIssue {
            path: format!("{path}.kind"),
            message: format!(
                "step `{}` has kind `{}`, which has no container form for argo",
                step.name, step.kind
            ),
        });
        return;
    }
    if step.image.as_deref().is_none_or(str::is_empty) {
        issues.push(SpecIssue {
            path: format!("{path}.image"),
            message: format!(
                "step `{}` has no image: argo runs every step in a container, so set `image`",
                step.name
            ),
        });
    }
    for (field, reference) in step.references() {
        let Reference::StepArtifact { step: producer, .. } = &reference else {
            continue;
        };
        if pipeline.step(producer).is_some_and(Step::is_fanned_out) {
            issues.push(SpecIssue {
                path: format!("{path}.{field}"),
                message: format!(
                    "`{{{{{reference}}}}}`: argo cannot collect the artifacts of fanned-out step `{producer}`"
                ),
            });
        }
    }
}

/// The distinct references of a step, in a stable order.
fn inputs(step: &Step) -> BTreeSet<Reference> {
    step.references()
        .into_iter()
        .map(|(_, reference)| reference)
        .collect()
}

fn input_name(reference: &Reference) -> String {
    match reference {
        Reference::Param(name) => format!("params-{name}"),
        Reference::StepParam { step, output } => format!("steps-{step}-params-{output}"),
        Reference::StepArtifact { step, output } => format!("steps-{step}-artifacts-{output}"),
        Reference::Item => "item".to_owned(),
        Reference::ItemField(field) => format!("item-{field}"),
    }
}

/// The reference as the DAG task sees it.
fn task_expression(reference: &Reference) -> String {
    match reference {
        Reference::Param(name) => format!("{{{{workflow.parameters.{name}}}}}"),
        Reference::StepParam { step, output } => {
            format!("{{{{tasks.{step}.outputs.parameters.{output}}}}}")
        }
        Reference::StepArtifact { step, output } => {
            format!("{{{{tasks.{step}.outputs.artifacts.{output}}}}}")
        }
        Reference::Item => "{{item}}".to_owned(),
        Reference::ItemField(field) => format!("{{{{item.{field}}}}}"),
    }
}

/// The reference as the container template sees it.
fn template_expression(reference: &Reference) -> String {
    match reference {
        Reference::StepArtifact { step, output } => format!("{INPUTS_DIR}/{step}/{output}"),
        other => format!("{{{{inputs.parameters.{}}}}}", input_name(other)),
    }
}

fn render(template: &Template, expression: impl Fn(&Reference) -> String) -> String {
    template
        .segments
        .iter()
        .map(|segment| match segment {
            Segment::Literal(text) => text.clone(),
            Segment::Reference(reference) => expression(reference),
        })
        .collect()
}

fn task(pipeline: &Pipeline, step: &Step) -> Value {
    let mut task = json!({"name": step.name, "template": template_name(step)});
    let references = inputs(step);
    let parameters: Vec<Value> = references
        .iter()
        .filter(|reference| !matches!(reference, Reference::StepArtifact { .. }))
        .map(
            |reference| json!({"name": input_name(reference), "value": task_expression(reference)}),
        )
        .collect();
    let artifacts: Vec<Value> = references
        .iter()
        .filter(|reference| matches!(reference, Reference::StepArtifact { .. }))
        .map(|reference| json!({"name": input_name(reference), "from": task_expression(reference)}))
        .collect();
    if !parameters.is_empty() || !artifacts.is_empty() {
        task["arguments"] = json!({"parameters": parameters, "artifacts": artifacts});
    }
    if !step.dependencies.is_empty() {
        let depends: Vec<String> = step
            .dependencies
            .iter()
            .map(|dependency| format!("{}.Succeeded", pipeline.steps[*dependency].name))
            .collect();
        task["depends"] = Value::String(depends.join(" && "));
    }
    if let Some(condition) = &step.when {
        task["when"] = Value::String(argo_condition(condition));
    }
    if let Some(items) = &step.items {
        task["withItems"] = Value::Array(
            items
                .iter()
                .map(|item| match item {
                    Item::Text(text) => Value::String(text.clone()),
                    Item::Map(map) => json!(map),
                })
                .collect(),
        );
    }
    task
}

fn template_name(step: &Step) -> String {
    format!("step-{}", step.name)
}

fn container_template(step: &Step) -> Value {
    let references = inputs(step);
    let input_parameters: Vec<Value> = references
        .iter()
        .filter(|reference| !matches!(reference, Reference::StepArtifact { .. }))
        .map(|reference| json!({"name": input_name(reference)}))
        .collect();
    let input_artifacts: Vec<Value> = references
        .iter()
        .filter(|reference| matches!(reference, Reference::StepArtifact { .. }))
        .map(|reference| json!({"name": input_name(reference), "path": template_expression(reference)}))
        .collect();
    let command: Vec<String> = step
        .command
        .iter()
        .map(|argument| render(argument, template_expression))
        .collect();
    let mut container = json!({
        "image": step.image.clone().unwrap_or_default(),
        "command": command,
        "workingDir": WORK_DIR,
    });
    if !step.env.is_empty() {
        container["env"] = Value::Array(
            step.env
                .iter()
                .map(|(name, value)| json!({"name": name, "value": render(value, template_expression)}))
                .collect(),
        );
    }
    let mut template = json!({"name": template_name(step), "container": container});
    if !input_parameters.is_empty() || !input_artifacts.is_empty() {
        template["inputs"] = json!({"parameters": input_parameters, "artifacts": input_artifacts});
    }
    if !step.output_params.is_empty() || !step.output_artifacts.is_empty() {
        template["outputs"] = json!({
            "parameters": step.output_params.iter().map(|output| json!({
                "name": output.name,
                "valueFrom": {"path": format!("{WORK_DIR}/{}", output.path)},
            })).collect::<Vec<_>>(),
            "artifacts": step.output_artifacts.iter().map(|output| json!({
                "name": output.name,
                "path": format!("{WORK_DIR}/{}", output.path),
            })).collect::<Vec<_>>(),
        });
    }
    if step.retry.limit > 0 {
        let mut backoff = json!({
            "duration": seconds(step.retry.backoff.as_secs_f64()),
            "factor": "2",
        });
        if let Some(max_backoff) = step.retry.max_backoff {
            backoff["cap"] = Value::String(seconds(max_backoff.as_secs_f64()));
        }
        template["retryStrategy"] = json!({
            "limit": step.retry.limit.to_string(),
            "retryPolicy": "Always",
            "backoff": backoff,
        });
    }
    if let Some(timeout) = step.timeout {
        // The schema types IntOrString as a string; Argo reads whole seconds.
        template["activeDeadlineSeconds"] = Value::String(timeout.as_secs_f64().ceil().to_string());
    }
    template
}

/// A Go duration string (`1.5s`).
fn seconds(value: f64) -> String {
    format!("{value}s")
}

/// Rewrites a condition in Argo's `when` syntax (govaluate): strings in single quotes, numbers
/// bare, references as task-level `{{...}}` expressions.
fn argo_condition(condition: &Condition) -> String {
    match condition {
        Condition::Or(left, right) => {
            format!("({} || {})", argo_condition(left), argo_condition(right))
        }
        Condition::And(left, right) => {
            format!("({} && {})", argo_condition(left), argo_condition(right))
        }
        Condition::Not(inner) => format!("!({})", argo_condition(inner)),
        Condition::Compare {
            left,
            operator,
            right,
        } => {
            let numeric = !left.quoted && !right.quoted && (is_number(left) || is_number(right));
            format!(
                "{} {operator} {}",
                argo_operand(left, numeric),
                argo_operand(right, numeric)
            )
        }
        Condition::Truth(operand) => format!("{} == 'true'", argo_operand(operand, false)),
    }
}

fn is_number(operand: &Operand) -> bool {
    match operand.template.segments.as_slice() {
        [Segment::Literal(text)] => text.trim().parse::<f64>().is_ok(),
        _ => false,
    }
}

fn argo_operand(operand: &Operand, numeric: bool) -> String {
    let text = render(&operand.template, task_expression);
    if numeric {
        text
    } else {
        format!("'{}'", text.replace('\'', "\\'"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conditions_quote_strings_and_keep_numbers_bare() {
        let condition = Condition::parse(
            "{{steps.a.outputs.params.n}} > 0 && !({{item}} == b || {{params.flag}})",
        )
        .unwrap();
        assert_eq!(
            argo_condition(&condition),
            "({{tasks.a.outputs.parameters.n}} > 0 && !(('{{item}}' == 'b' || '{{workflow.parameters.flag}}' == 'true')))"
        );
    }
}
