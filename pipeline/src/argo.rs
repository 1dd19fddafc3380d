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
//! everything: every command step needs an `image`, and the artifacts of a fanned-out step cannot
//! be collected; each of these is reported per step.
//!
//! # Plug-in kinds
//!
//! A step of a plug-in kind (`kind: tune`) has no container. Its kind may give it an Argo form
//! instead: an [`ArgoStepForm`], registered in the [`ArgoForms`] passed to [`compile_argo_with`]
//! (the controller crate registers the `tune` form this way, as this crate cannot depend on it).
//! The compiler keeps what every step shares (the DAG task, its arguments, the template's name
//! and inputs, `retryStrategy`, `activeDeadlineSeconds`) and hands the form the step's `spec`
//! with each reference already replaced by the template input Argo substitutes, as in the table
//! above; the form returns the rest of the template (a `resource`, its `outputs`). Artifacts
//! reach containers only, so a plug-in step may not reference one. A plug-in step whose kind
//! has no form is reported.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use serde_json::{Value, json};

use crate::condition::{Condition, Operand};
use crate::spec::{
    COMMAND_KIND, Item, Pipeline, SpecIssue, SpecIssues, Step, render_json_templates,
};
use crate::template::{Reference, Segment, Template, TemplateError};

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

/// What a step of a plug-in kind becomes in an Argo Workflow.
pub trait ArgoStepForm: Send + Sync {
    /// The kind's name, as steps write it in `kind:`.
    fn kind(&self) -> &str;

    /// The step's template without its `name` and `inputs`, which the compiler sets: a JSON
    /// object such as `{"resource": {...}, "outputs": {...}}`. Problems are reported with their
    /// field paths (under [`ArgoStep::path`]).
    fn template(&self, step: &ArgoStep<'_>) -> Result<Value, Vec<SpecIssue>>;
}

/// A plug-in step, as the compiler hands it to its kind's [`ArgoStepForm`].
#[derive(Debug)]
pub struct ArgoStep<'a> {
    /// The pipeline the step belongs to.
    pub pipeline: &'a Pipeline,
    /// The step as loaded: its `kind_spec` still holds its `{{...}}` references.
    pub step: &'a Step,
    /// The step's field path, `spec.steps[i]`.
    pub path: String,
    /// The step's `spec` with every reference replaced by the template input Argo substitutes
    /// (`{{inputs.parameters.params-x}}`); `null` when the step has none.
    pub spec: Value,
}

/// The Argo forms of plug-in step kinds, by kind name; empty by default.
#[derive(Clone, Default)]
pub struct ArgoForms {
    forms: BTreeMap<String, Arc<dyn ArgoStepForm>>,
}

// === impl ArgoForms ===

impl ArgoForms {
    /// Adds `form` under its kind's name, replacing any form of the same name.
    pub fn register(&mut self, form: Arc<dyn ArgoStepForm>) {
        self.forms.insert(form.kind().to_owned(), form);
    }

    /// The form of the kind `name`.
    pub fn get(&self, name: &str) -> Option<&Arc<dyn ArgoStepForm>> {
        self.forms.get(name)
    }
}

impl std::fmt::Debug for ArgoForms {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.debug_list().entries(self.forms.keys()).finish()
    }
}

/// Compiles `pipeline` into an Argo Workflow object; a step of a plug-in kind is refused (see
/// [`compile_argo_with`]).
pub fn compile_argo(pipeline: &Pipeline) -> Result<Value, ArgoCompileError> {
    compile_argo_with(pipeline, &ArgoForms::default())
}

/// Compiles `pipeline` into an Argo Workflow object, plug-in steps through their kinds' `forms`.
pub fn compile_argo_with(
    pipeline: &Pipeline,
    forms: &ArgoForms,
) -> Result<Value, ArgoCompileError> {
    let mut issues = Vec::new();
    for (index, step) in pipeline.steps.iter().enumerate() {
        check_step(pipeline, index, step, forms, &mut issues);
    }
    let mut templates = vec![];
    for (index, step) in pipeline.steps.iter().enumerate() {
        match plug_in_template(pipeline, index, step, forms) {
            Some(Ok(template)) => templates.push(template),
            Some(Err(step_issues)) => issues.extend(step_issues),
            None => templates.push(container_template(step)),
        }
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
    templates.insert(0, json!({"name": DAG_TEMPLATE, "dag": {"tasks": tasks}}));
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

fn check_step(
    pipeline: &Pipeline,
    index: usize,
    step: &Step,
    forms: &ArgoForms,
    issues: &mut Vec<SpecIssue>,
) {
    let path = format!("spec.steps[{index}]");
    if step.kind != COMMAND_KIND {
        if forms.get(&step.kind).is_none() {
            issues.push(SpecIssue {
                path: format!("{path}.kind"),
                message: format!(
                    "step `{}` has kind `{}`, which has no container form for argo",
                    step.name, step.kind
                ),
            });
        }
        for (field, reference) in step.references() {
            if let Reference::StepArtifact { .. } = reference {
                issues.push(SpecIssue {
                    path: format!("{path}.{field}"),
                    message: format!(
                        "`{{{{{reference}}}}}`: argo hands artifacts to containers only, and a `{}` step has none",
                        step.kind
                    ),
                });
            }
        }
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

/// The template of a plug-in step, from its kind's form; `None` for a command step. A kind
/// without a form was reported by [`check_step`] and gets no template.
fn plug_in_template(
    pipeline: &Pipeline,
    index: usize,
    step: &Step,
    forms: &ArgoForms,
) -> Option<Result<Value, Vec<SpecIssue>>> {
    if step.kind == COMMAND_KIND {
        return None;
    }
    let form = forms.get(&step.kind)?;
    let argo_step = ArgoStep {
        pipeline,
        step,
        path: format!("spec.steps[{index}]"),
        // The loader parsed every string of the spec, so rendering cannot fail.
        spec: step.kind_spec.as_ref().map_or(Value::Null, |spec| {
            render_json_templates(spec, &|template| {
                Ok::<_, TemplateError>(render(template, template_expression))
            })
            .unwrap_or_else(|_| spec.clone())
        }),
    };
    let body = match form.template(&argo_step) {
        Ok(body) => body,
        Err(issues) => return Some(Err(issues)),
    };
    let mut template = json!({"name": template_name(step)});
    let input_parameters = input_parameters(step);
    if !input_parameters.is_empty() {
        template["inputs"] = json!({"parameters": input_parameters});
    }
    if let (Some(fields), Value::Object(body)) = (template.as_object_mut(), body) {
        fields.extend(body);
    }
    add_retry_and_deadline(step, &mut template);
    Some(Ok(template))
}

/// The template's input parameters: one per distinct reference other than an artifact.
fn input_parameters(step: &Step) -> Vec<Value> {
    inputs(step)
        .iter()
        .filter(|reference| !matches!(reference, Reference::StepArtifact { .. }))
        .map(|reference| json!({"name": input_name(reference)}))
        .collect()
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
    let input_parameters = input_parameters(step);
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
    add_retry_and_deadline(step, &mut template);
    template
}

/// `retry` as `retryStrategy` and `timeoutSeconds` as `activeDeadlineSeconds`, for any step.
fn add_retry_and_deadline(step: &Step, template: &mut Value) {
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
