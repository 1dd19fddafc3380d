//! The PipelineRun controller: a run becomes an Argo Workflow, and the run's status follows it.
//!
//! Each reconcile looks up the run's Workflow (named after the run, owned by it) and decides
//! with the pure [`plan`]:
//! - no Workflow yet: the run's pipeline (inline in `spec.pipelineSpec`, or the `Pipeline`
//!   resource `spec.pipelineRef.name` names in the run's namespace) is loaded by
//!   `sextant_pipeline`'s spec loader, the run's params are checked against it, and it is
//!   compiled with [`super::tune_argo::compile_for_cluster`] (so `tune` steps become resource templates). Every problem, with its field path on the
//!   run (`spec.pipelineSpec.steps[1].command`, `spec.params[0].name`, or `Pipeline "x":
//!   spec.steps[1].image` for a referenced one), fails the run (`Valid=False`) and nothing is
//!   created. A missing Pipeline is the one problem that is waited out: the run stays `Pending`
//!   with `Valid=False` (`PipelineNotFound`), and Pipelines are watched, so it proceeds when
//!   the Pipeline appears;
//! - its Workflow: the status is [`status_from_workflow`]'s;
//! - a Workflow of its name owned by something else (a deleted run's, not yet collected): the
//!   run waits, saying so in its `WorkflowCreated` condition;
//! - no Workflow, though the run had one: it was deleted under the run, which fails.
//!
//! A run in a terminal phase (`Succeeded`, `Failed`, `Error`) is never looked at again, so
//! nothing re-creates its Workflow and whoever counts active runs by phase (a RecurringRun) can
//! rely on it.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use futures::StreamExt;
use kube::api::{DynamicObject, GroupVersionKind, PostParams};
use kube::core::ApiResource;
use kube::runtime::controller::{Action, Controller};
use kube::runtime::events::{Event, EventType};
use kube::runtime::reflector::ObjectRef;
use kube::runtime::watcher;
use kube::{Api, Resource, ResourceExt};
use serde_json::{Value, json};

use crate::kube::argo_workflow::{Workflow, status_from_workflow};
use crate::kube::pipeline_resources::{
    Pipeline, PipelineRun, PipelineRunPhase, PipelineRunSpec, PipelineRunStatus, PipelineSpec,
    condition, set_condition,
};
use crate::kube::{
    Context, ReconcileError, WatchBackoff, is_conflict, patch_status, scoped_api, scoped_api_with,
};
use sextant_pipeline::spec::{ParamError, SpecIssue};
use sextant_pipeline::{ArgoCompileError, SpecError};

use crate::kube::ApiGroup;
use crate::kube::tune_argo::compile_for_cluster;

/// The label on a PipelineRun's Workflow naming the run (the Workflows the controller watches).
pub const PIPELINE_RUN_LABEL: &str = "sextant.dev/pipeline-run";

/// The longest name a run may have: it is the value of a label on its Workflow.
const MAX_RUN_NAME: usize = 63;

/// How soon a run waiting for its Workflow's name (held by another owner, or created by a
/// reconcile whose status write has not arrived yet) is looked at again.
const NAME_TAKEN_RETRY: Duration = Duration::from_secs(2);

/// Argo's Workflow kind.
pub(crate) fn workflow_kind() -> ApiResource {
    ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("argoproj.io", "v1alpha1", "Workflow"),
        "workflows",
    )
}

/// Runs the PipelineRun controller until `shutdown`, if the cluster serves PipelineRuns and
/// Argo's Workflows; else says once which is missing and returns, leaving the Experiment and
/// Trial controllers alone. The kinds are looked for when the controller starts: install the
/// definitions, then restart it.
pub(crate) async fn run(
    context: Arc<Context>,
    shutdown: impl std::future::Future<Output = ()> + Send + Sync + 'static,
) {
    let run_kind = ApiResource::erase::<PipelineRun>(&());
    for kind in [&run_kind, &workflow_kind()] {
        let gvk = GroupVersionKind::gvk(&kind.group, &kind.version, &kind.kind);
        if let Err(error) = kube::discovery::pinned_kind(&context.client, &gvk).await {
            tracing::warn!(
                %error,
                "the cluster serves no {} in {}: pipeline runs are not reconciled (install deploy/crds and Argo's Workflow definition, then restart the controller)",
                kind.kind,
                kind.api_version
            );
            return;
        }
    }
    let client = context.client.clone();
    let namespace = context.config.namespace.as_deref();
    let runs: Api<PipelineRun> = scoped_api(client.clone(), namespace);
    let pipelines: Api<Pipeline> = scoped_api(client.clone(), namespace);
    let workflows: Api<DynamicObject> = scoped_api_with(client, namespace, &workflow_kind());
    let controller = Controller::new(runs, watcher::Config::default());
    let cached_runs = controller.store();
    controller
        // Only the Workflows of runs, not every Workflow in the cluster (trials' included).
        .owns_with(
            workflows,
            workflow_kind(),
            watcher::Config::default().labels(PIPELINE_RUN_LABEL),
        )
        .watches(pipelines, watcher::Config::default(), move |pipeline| {
            runs_waiting_for(&cached_runs.state(), &pipeline)
        })
        .trigger_backoff(WatchBackoff::default())
        .graceful_shutdown_on(shutdown)
        .run(reconcile, error_policy, context)
        .for_each(|result| async move {
            if let Err(error) = result {
                tracing::debug!(%error, "pipeline run reconcile");
            }
        })
        .await;
}

/// The runs `pipeline` may unblock: those of its namespace that reference it and have not
/// ended.
fn runs_waiting_for(runs: &[Arc<PipelineRun>], pipeline: &Pipeline) -> Vec<ObjectRef<PipelineRun>> {
    runs.iter()
        .filter(|run| {
            run.namespace() == pipeline.namespace()
                && run
                    .spec
                    .pipeline_ref
                    .as_ref()
                    .is_some_and(|reference| reference.name == pipeline.name_any())
                && !is_terminal(run)
        })
        .map(|run| ObjectRef::from_obj(run.as_ref()))
        .collect()
}

/// Whether the run has ended: its status is then final.
pub(crate) fn is_terminal(run: &PipelineRun) -> bool {
    matches!(
        run.status.as_ref().and_then(|status| status.phase),
        Some(PipelineRunPhase::Succeeded | PipelineRunPhase::Failed | PipelineRunPhase::Error)
    )
}

/// Why a run cannot become a Workflow.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Invalid {
    /// The Pipeline it references does not exist (yet); the run waits for it.
    PipelineNotFound(String),
    /// Its spec, its pipeline or its params break rules: each problem with its field path.
    Spec(Vec<String>),
    /// The API server refused the Workflow.
    Rejected(String),
}

/// Where a run's pipeline is.
#[derive(Debug, PartialEq)]
pub(crate) enum PipelineSource<'a> {
    /// `spec.pipelineSpec`.
    Inline(&'a PipelineSpec),
    /// The `Pipeline` of this name in the run's namespace.
    Reference(&'a str),
}

/// The run's pipeline source: exactly one of `spec.pipelineSpec` and `spec.pipelineRef`.
pub(crate) fn pipeline_source(spec: &PipelineRunSpec) -> Result<PipelineSource<'_>, Invalid> {
    match (&spec.pipeline_spec, &spec.pipeline_ref) {
        (Some(inline), None) => Ok(PipelineSource::Inline(inline)),
        (None, Some(reference)) => Ok(PipelineSource::Reference(&reference.name)),
        (Some(_), Some(_)) => Err(Invalid::Spec(vec![
            "spec: give one of pipelineSpec and pipelineRef, not both".into(),
        ])),
        (None, None) => Err(Invalid::Spec(vec![
            "spec: give the pipeline, inline as pipelineSpec or as pipelineRef.name".into(),
        ])),
    }
}

/// The Workflow that runs `run` with `pipeline` (from `source`), ready to create: named after
/// the run, owned by it, labelled with it, with every param's value; or every problem found.
pub(crate) fn compile_run(
    run: &PipelineRun,
    pipeline: &PipelineSpec,
    source: &PipelineSource<'_>,
    group: ApiGroup,
) -> Result<Value, Invalid> {
    let run_name = run.name_any();
    let (pipeline_name, prefix) = match source {
        PipelineSource::Inline(_) => (run_name.clone(), None),
        PipelineSource::Reference(name) => (
            name.to_string(),
            Some(format!("Pipeline {}: ", quoted(name))),
        ),
    };
    // On the run, an inline pipeline's fields are under spec.pipelineSpec; a referenced one's
    // are the Pipeline's own, named with it.
    let on_run = |issue: &SpecIssue| match &prefix {
        Some(prefix) => format!("{prefix}{}: {}", issue.path, issue.message),
        None => {
            let path = match issue.path.strip_prefix("spec") {
                Some(rest) => format!("spec.pipelineSpec{rest}"),
                None => issue.path.clone(),
            };
            format!("{path}: {}", issue.message)
        }
    };
    let mut problems = Vec::new();
    if run_name.len() > MAX_RUN_NAME {
        problems.push(format!(
            "metadata.name: {} characters; a run's name is a label value on its Workflow, at most {MAX_RUN_NAME}",
            run_name.len()
        ));
    }
    let declared: Vec<&str> = pipeline
        .params
        .iter()
        .map(|param| param.name.as_str())
        .collect();
    for (index, param) in run.spec.params.iter().enumerate() {
        let path = format!("spec.params[{index}].name");
        if run.spec.params[..index]
            .iter()
            .any(|earlier| earlier.name == param.name)
        {
            problems.push(format!("{path}: {} is given twice", quoted(&param.name)));
        } else if !declared.contains(&param.name.as_str()) {
            problems.push(format!(
                "{path}: the pipeline declares no parameter {} (it declares: {})",
                quoted(&param.name),
                if declared.is_empty() {
                    "none".to_owned()
                } else {
                    declared.join(", ")
                }
            ));
        }
    }
    // JSON is YAML: the local document shape, read by the one spec loader.
    let document = pipeline.document(&pipeline_name).to_string();
    let loaded = match sextant_pipeline::Pipeline::from_yaml(&document) {
        Ok(loaded) => Some(loaded),
        Err(SpecError::Invalid(issues)) => {
            problems.extend(issues.0.iter().map(on_run));
            None
        }
        Err(error @ SpecError::Yaml(_)) => {
            problems.push(error.to_string());
            None
        }
    };
    let Some(loaded) = loaded else {
        return Err(Invalid::Spec(problems));
    };
    // Names the pipeline does not declare are reported above, with their index.
    let given = run
        .spec
        .params
        .iter()
        .filter(|param| declared.contains(&param.name.as_str()))
        .map(|param| (param.name.clone(), param.value.clone()))
        .collect();
    let values = match loaded.resolve_params(&given) {
        Ok(values) => Some(values),
        Err(ParamError::Missing(name)) => {
            problems.push(format!(
                "spec.params: the pipeline's parameter {} has no default and is not given",
                quoted(&name)
            ));
            None
        }
        Err(error @ ParamError::Unknown(_)) => {
            problems.push(format!("spec.params: {error}"));
            None
        }
    };
    let mut workflow = match compile_for_cluster(&loaded, group) {
        Ok(workflow) => workflow,
        Err(ArgoCompileError(issues)) => {
            problems.extend(issues.0.iter().map(on_run));
            return Err(Invalid::Spec(problems));
        }
    };
    let (Some(values), true) = (values, problems.is_empty()) else {
        return Err(Invalid::Spec(problems));
    };
    // Blocking the run's deletion until the Workflow is gone (foreground deletion) needs the
    // owner's `finalizers` right, which the controller's role grants.
    let owner = run.controller_owner_ref(&()).map(|mut owner| {
        owner.block_owner_deletion = Some(true);
        owner
    });
    workflow["metadata"] = json!({
        "name": run_name,
        "namespace": run.namespace(),
        "labels": {
            "sextant.dev/pipeline": pipeline_name,
            PIPELINE_RUN_LABEL: run_name,
        },
        "ownerReferences": [owner],
    });
    // Every value set, in the pipeline's order, so the Workflow says what the run ran with.
    workflow["spec"]["arguments"]["parameters"] = loaded
        .params
        .iter()
        .map(|param| json!({"name": param.name, "value": values.get(&param.name)}))
        .collect();
    if let Some(account) = &run.spec.service_account_name {
        workflow["spec"]["serviceAccountName"] = json!(account);
    }
    Ok(workflow)
}

/// What the controller found of a run's Workflow.
#[derive(Debug)]
pub(crate) enum Observed {
    /// Its Workflow.
    Workflow(Box<Workflow>),
    /// A Workflow of its name that something else owns.
    ForeignWorkflow,
    /// None, though the run had one.
    WorkflowDeleted,
    /// None yet: the Workflow the run should have, or why it cannot.
    NoWorkflow(Result<Box<Value>, Invalid>),
}

/// What to do about a run.
#[derive(Debug, PartialEq)]
pub(crate) struct Plan {
    /// The Workflow to create, if any; [`Plan::status`] holds once it is created.
    pub(crate) create: Option<Value>,
    /// The run's status.
    pub(crate) status: PipelineRunStatus,
    /// When to look again without an event.
    pub(crate) requeue: Option<Duration>,
}

/// Decides what a (non-terminal) run needs, from what was observed.
pub(crate) fn plan(run: &PipelineRun, observed: Observed, now: DateTime<Utc>) -> Plan {
    let previous = run.status.clone().unwrap_or_default();
    let mut plan = Plan {
        create: None,
        status: previous.clone(),
        requeue: None,
    };
    match observed {
        Observed::Workflow(workflow) => {
            plan.status = status_from_workflow(&previous, &workflow, now);
        }
        Observed::ForeignWorkflow => {
            let message = format!(
                "Workflow {} exists and is not owned by this run; waiting for it to go",
                quoted(&run.name_any())
            );
            plan.status.phase = Some(PipelineRunPhase::Pending);
            set_condition(
                &mut plan.status.conditions,
                "WorkflowCreated",
                false,
                "WorkflowNameTaken",
                &message,
                now,
            );
            plan.status.message = Some(message);
            plan.requeue = Some(NAME_TAKEN_RETRY);
        }
        Observed::WorkflowDeleted => {
            let message = format!(
                "Workflow {} was deleted while the run was {}",
                quoted(&run.name_any()),
                phase_name(previous.phase)
            );
            plan.status.phase = Some(PipelineRunPhase::Failed);
            plan.status.finished_at = Some(now);
            set_condition(
                &mut plan.status.conditions,
                "Failed",
                true,
                "WorkflowDeleted",
                &message,
                now,
            );
            plan.status.message = Some(message);
        }
        Observed::NoWorkflow(Err(invalid)) => plan.status = invalid_status(run, &invalid, now),
        Observed::NoWorkflow(Ok(workflow)) => {
            let name = run.name_any();
            plan.status.phase = Some(PipelineRunPhase::Pending);
            plan.status.message = None;
            plan.status.workflow_name = Some(name.clone());
            set_condition(
                &mut plan.status.conditions,
                "Valid",
                true,
                "Compiled",
                "the pipeline and params are valid",
                now,
            );
            set_condition(
                &mut plan.status.conditions,
                "WorkflowCreated",
                true,
                "Created",
                &format!("Workflow {}", quoted(&name)),
                now,
            );
            plan.create = Some(*workflow);
        }
    }
    plan.status.observed_generation = run.metadata.generation;
    plan
}

/// The status of a run that cannot become a Workflow: `Valid=False` naming every problem;
/// `Failed`, unless it only waits for its Pipeline.
pub(crate) fn invalid_status(
    run: &PipelineRun,
    invalid: &Invalid,
    now: DateTime<Utc>,
) -> PipelineRunStatus {
    let mut status = run.status.clone().unwrap_or_default();
    let (reason, message) = match invalid {
        Invalid::PipelineNotFound(message) => ("PipelineNotFound", message.clone()),
        Invalid::Spec(problems) => ("InvalidSpec", problems.join("\n")),
        Invalid::Rejected(message) => ("WorkflowRejected", message.clone()),
    };
    set_condition(
        &mut status.conditions,
        "Valid",
        false,
        reason,
        &message,
        now,
    );
    if matches!(invalid, Invalid::PipelineNotFound(_)) {
        status.phase = Some(PipelineRunPhase::Pending);
    } else {
        status.phase = Some(PipelineRunPhase::Failed);
        status.finished_at = Some(now);
        set_condition(
            &mut status.conditions,
            "Failed",
            true,
            reason,
            &message,
            now,
        );
    }
    status.message = Some(message);
    status.observed_generation = run.metadata.generation;
    status
}

/// The event a status change is worth, if any: a new phase, or a new reason for it.
fn event_of(previous: &PipelineRunStatus, next: &PipelineRunStatus) -> Option<Event> {
    if previous.phase == next.phase && previous.message == next.message {
        return None;
    }
    let invalid = condition(&next.conditions, "Valid").filter(|valid| valid.status == "False");
    let failed = matches!(
        next.phase,
        Some(PipelineRunPhase::Failed | PipelineRunPhase::Error)
    );
    let reason = match invalid {
        Some(valid) => valid.reason.clone().unwrap_or_default(),
        None => phase_name(next.phase).to_owned(),
    };
    Some(Event {
        type_: if invalid.is_some() || failed {
            EventType::Warning
        } else {
            EventType::Normal
        },
        reason,
        note: next
            .message
            .as_ref()
            .map(|message| message.chars().take(1024).collect()),
        action: "Reconcile".into(),
        secondary: None,
    })
}

fn phase_name(phase: Option<PipelineRunPhase>) -> &'static str {
    match phase {
        None | Some(PipelineRunPhase::Pending) => "Pending",
        Some(PipelineRunPhase::Running) => "Running",
        Some(PipelineRunPhase::Succeeded) => "Succeeded",
        Some(PipelineRunPhase::Failed) => "Failed",
        Some(PipelineRunPhase::Error) => "Error",
    }
}

fn quoted(text: &str) -> String {
    sextant_echo::echo_quoted(text)
}

async fn reconcile(run: Arc<PipelineRun>, context: Arc<Context>) -> Result<Action, ReconcileError> {
    if run.metadata.deletion_timestamp.is_some() || is_terminal(&run) {
        return Ok(Action::await_change());
    }
    let action = reconcile_run(&run, &context).await?;
    context.succeeded(&ObjectRef::from_obj(run.as_ref()).to_string());
    Ok(action)
}

fn error_policy(run: Arc<PipelineRun>, error: &ReconcileError, context: Arc<Context>) -> Action {
    let key = ObjectRef::from_obj(run.as_ref()).to_string();
    if is_conflict(error) {
        tracing::debug!(run = %key, %error, "write conflict; retrying on the fresh object");
    } else {
        tracing::warn!(run = %key, %error, "reconcile failed; retrying");
    }
    Action::requeue(context.retry_delay(key, error))
}

async fn reconcile_run(run: &PipelineRun, context: &Context) -> Result<Action, ReconcileError> {
    let namespace = run.namespace().unwrap_or_default();
    let name = run.name_any();
    let workflows: Api<DynamicObject> =
        Api::namespaced_with(context.client.clone(), &namespace, &workflow_kind());
    let had_workflow = run
        .status
        .as_ref()
        .is_some_and(|status| status.workflow_name.is_some());
    let observed = match workflows.get_opt(&name).await? {
        Some(object) => {
            let owned = object
                .owner_references()
                .iter()
                .any(|owner| Some(owner.uid.as_str()) == run.metadata.uid.as_deref());
            if owned {
                let workflow = serde_json::to_value(&object)
                    .and_then(serde_json::from_value)
                    .map_err(|source| ReconcileError::Json {
                        what: format!("Workflow {name}"),
                        source,
                    })?;
                Observed::Workflow(Box::new(workflow))
            } else {
                Observed::ForeignWorkflow
            }
        }
        None if had_workflow => Observed::WorkflowDeleted,
        None => Observed::NoWorkflow(resolve(run, context, &namespace).await?.map(Box::new)),
    };
    let plan = plan(run, observed, Utc::now());
    let mut status = plan.status;
    if let Some(workflow) = plan.create {
        let object: DynamicObject =
            serde_json::from_value(workflow).map_err(|source| ReconcileError::Json {
                what: format!("Workflow {name}"),
                source,
            })?;
        match workflows.create(&PostParams::default(), &object).await {
            Ok(_) => {}
            // Created by an earlier reconcile whose status write is not in the cache yet, or
            // taken since the lookup: the next look tells which.
            Err(kube::Error::Api(response)) if response.code == 409 => {
                return Ok(Action::requeue(NAME_TAKEN_RETRY));
            }
            // Invalid for the API server (422) or refused by an admission plugin (400).
            Err(kube::Error::Api(response)) if response.code == 422 || response.code == 400 => {
                status = invalid_status(run, &Invalid::Rejected(response.message), Utc::now());
            }
            Err(error) => return Err(error.into()),
        }
    }
    write_status(run, context, &status).await?;
    Ok(plan
        .requeue
        .map_or_else(Action::await_change, Action::requeue))
}

/// The Workflow the run should have, compiled from its pipeline, or why it cannot.
async fn resolve(
    run: &PipelineRun,
    context: &Context,
    namespace: &str,
) -> Result<Result<Value, Invalid>, ReconcileError> {
    let source = match pipeline_source(&run.spec) {
        Ok(source) => source,
        Err(invalid) => return Ok(Err(invalid)),
    };
    Ok(match &source {
        PipelineSource::Inline(spec) => compile_run(run, spec, &source, context.config.api_group),
        PipelineSource::Reference(pipeline_name) => {
            let pipelines: Api<Pipeline> = Api::namespaced(context.client.clone(), namespace);
            match pipelines.get_opt(pipeline_name).await? {
                Some(pipeline) => {
                    compile_run(run, &pipeline.spec, &source, context.config.api_group)
                }
                None => Err(Invalid::PipelineNotFound(format!(
                    "spec.pipelineRef.name: Pipeline {} not found in namespace {}",
                    quoted(pipeline_name),
                    quoted(namespace)
                ))),
            }
        }
    })
}

/// Writes the run's status when it changed, as a merge patch conditional on the version read
/// (a write from a stale view is refused and retried on the fresh object), and records an event
/// when its phase or message changed.
async fn write_status(
    run: &PipelineRun,
    context: &Context,
    status: &PipelineRunStatus,
) -> Result<(), ReconcileError> {
    let previous = run.status.clone().unwrap_or_default();
    if &previous == status {
        return Ok(());
    }
    let runs: Api<PipelineRun> =
        Api::namespaced(context.client.clone(), &run.namespace().unwrap_or_default());
    patch_status(
        &runs,
        run,
        run.status.as_ref(),
        status,
        "a pipeline run's status",
    )
    .await?;
    if let Some(event) = event_of(&previous, status)
        && let Err(error) = context.recorder.publish(&event, &run.object_ref(&())).await
    {
        tracing::debug!(%error, "cannot record an event");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kube::pipeline_resources::{ParamValue, PipelineReference};

    fn time(text: &str) -> DateTime<Utc> {
        text.parse().expect("a time")
    }

    fn pipeline_spec(value: Value) -> PipelineSpec {
        serde_json::from_value(value).expect("a pipeline spec")
    }

    /// A two-step pipeline with a param `lr` (no default) and `epochs` (default 3).
    fn two_steps() -> PipelineSpec {
        pipeline_spec(json!({
            "params": [{"name": "lr"}, {"name": "epochs", "default": "3"}],
            "steps": [
                {"name": "prepare", "image": "busybox:1", "command": ["sh", "-c", "echo 1 > n.txt"],
                 "outputs": {"params": [{"name": "n", "path": "n.txt"}]}},
                {"name": "train", "image": "trainer:1",
                 "command": ["train", "--lr", "{{params.lr}}", "--epochs", "{{params.epochs}}",
                             "--n", "{{steps.prepare.outputs.params.n}}"]},
            ],
        }))
    }

    fn run(spec: PipelineRunSpec) -> PipelineRun {
        let mut run = PipelineRun::new("nightly", spec);
        run.metadata.namespace = Some("ml".into());
        run.metadata.uid = Some("uid-1".into());
        run.metadata.generation = Some(1);
        run
    }

    fn inline(spec: PipelineSpec, params: &[(&str, &str)]) -> PipelineRun {
        run(PipelineRunSpec {
            pipeline_spec: Some(spec),
            pipeline_ref: None,
            params: params
                .iter()
                .map(|(name, value)| ParamValue {
                    name: (*name).into(),
                    value: (*value).into(),
                })
                .collect(),
            service_account_name: Some("runner".into()),
        })
    }

    fn compiled(run: &PipelineRun) -> Result<Value, Invalid> {
        let source = pipeline_source(&run.spec).expect("one source");
        let PipelineSource::Inline(spec) = source else {
            panic!("an inline run");
        };
        compile_run(run, spec, &source, ApiGroup::Sextant)
    }

    fn problems(result: Result<Value, Invalid>) -> Vec<String> {
        match result {
            Err(Invalid::Spec(problems)) => problems,
            other => panic!("expected spec problems, got {other:?}"),
        }
    }

    #[test]
    fn a_run_compiles_to_a_workflow_it_owns_with_its_param_values() {
        let run = inline(two_steps(), &[("lr", "0.1")]);
        let workflow = compiled(&run).expect("valid");
        let metadata = &workflow["metadata"];
        assert_eq!(metadata["name"], "nightly");
        assert_eq!(metadata["namespace"], "ml");
        assert_eq!(metadata["labels"][PIPELINE_RUN_LABEL], "nightly");
        assert_eq!(metadata.get("generateName"), None);
        let owner = &metadata["ownerReferences"][0];
        assert_eq!(
            (
                &owner["kind"],
                &owner["uid"],
                &owner["controller"],
                &owner["blockOwnerDeletion"]
            ),
            (
                &json!("PipelineRun"),
                &json!("uid-1"),
                &json!(true),
                &json!(true)
            )
        );
        assert_eq!(
            workflow["spec"]["arguments"]["parameters"],
            json!([{"name": "lr", "value": "0.1"}, {"name": "epochs", "value": "3"}])
        );
        assert_eq!(workflow["spec"]["serviceAccountName"], "runner");
        assert_eq!(workflow["spec"]["entrypoint"], "sextant-dag");
    }

    #[test]
    fn params_the_pipeline_does_not_declare_given_twice_or_missing_are_named() {
        let run = inline(
            two_steps(),
            &[("epochs", "5"), ("momentum", "0.9"), ("epochs", "6")],
        );
        assert_eq!(
            problems(compiled(&run)),
            [
                "spec.params[1].name: the pipeline declares no parameter \"momentum\" (it declares: lr, epochs)",
                "spec.params[2].name: \"epochs\" is given twice",
                "spec.params: the pipeline's parameter \"lr\" has no default and is not given",
            ]
        );
    }

    #[test]
    fn an_inline_pipelines_problems_are_named_under_spec_pipeline_spec() {
        let spec = pipeline_spec(json!({"steps": [
            {"name": "a", "image": "busybox:1", "command": ["true"]},
            {"name": "b", "command": ["echo", "{{steps.nope.outputs.params.x}}"]},
        ]}));
        let found = problems(compiled(&inline(spec, &[])));
        assert_eq!(found.len(), 1, "{found:?}");
        assert!(
            found[0].starts_with("spec.pipelineSpec.steps[1].command[1]: "),
            "{found:?}"
        );
    }

    #[test]
    fn what_argo_cannot_run_is_named_like_any_other_problem() {
        let spec = pipeline_spec(json!({"steps": [{"name": "a", "command": ["true"]}]}));
        let found = problems(compiled(&inline(spec.clone(), &[])));
        assert_eq!(found.len(), 1, "{found:?}");
        assert!(
            found[0].starts_with("spec.pipelineSpec.steps[0].image: step `a` has no image"),
            "{found:?}"
        );
        // A referenced pipeline's problems are the Pipeline's, named with it.
        let referencing = run(PipelineRunSpec {
            pipeline_spec: None,
            pipeline_ref: Some(PipelineReference {
                name: "train".into(),
            }),
            params: Vec::new(),
            service_account_name: None,
        });
        let source = pipeline_source(&referencing.spec).expect("one source");
        assert_eq!(source, PipelineSource::Reference("train"));
        let found = problems(compile_run(&referencing, &spec, &source, ApiGroup::Sextant));
        assert!(
            found[0].starts_with("Pipeline \"train\": spec.steps[0].image: "),
            "{found:?}"
        );
    }

    #[test]
    fn a_run_names_exactly_one_pipeline_and_a_name_that_fits_a_label() {
        let mut neither = inline(two_steps(), &[]);
        neither.spec.pipeline_spec = None;
        assert!(matches!(
            pipeline_source(&neither.spec),
            Err(Invalid::Spec(problems)) if problems[0].starts_with("spec: give the pipeline")
        ));
        let mut both = inline(two_steps(), &[]);
        both.spec.pipeline_ref = Some(PipelineReference { name: "p".into() });
        assert!(matches!(
            pipeline_source(&both.spec),
            Err(Invalid::Spec(problems)) if problems[0].contains("not both")
        ));
        let mut long = inline(two_steps(), &[("lr", "1")]);
        long.metadata.name = Some("r".repeat(64));
        assert_eq!(problems(compiled(&long)).len(), 1);
    }

    #[test]
    fn an_invalid_run_fails_with_no_workflow_and_a_missing_pipeline_waits() {
        let run = inline(two_steps(), &[]);
        let now = time("2026-01-01T00:00:00Z");
        let invalid = Invalid::Spec(vec!["spec.params: a".into(), "spec.params: b".into()]);
        let plan = plan(&run, Observed::NoWorkflow(Err(invalid)), now);
        assert_eq!(plan.create, None);
        assert_eq!(plan.status.phase, Some(PipelineRunPhase::Failed));
        let valid = condition(&plan.status.conditions, "Valid").expect("Valid");
        assert_eq!(
            (valid.status.as_str(), valid.reason.as_deref()),
            ("False", Some("InvalidSpec"))
        );
        assert_eq!(
            valid.message.as_deref(),
            Some("spec.params: a\nspec.params: b")
        );
        assert!(condition(&plan.status.conditions, "Failed").is_some());

        let missing = Invalid::PipelineNotFound("spec.pipelineRef.name: not found".into());
        let plan = super::plan(&run, Observed::NoWorkflow(Err(missing)), now);
        assert_eq!(plan.create, None);
        assert_eq!(plan.status.phase, Some(PipelineRunPhase::Pending));
        assert_eq!(condition(&plan.status.conditions, "Failed"), None);
        let waiting = PipelineRun {
            status: Some(plan.status),
            ..run
        };
        assert!(!is_terminal(&waiting), "a run waiting for its Pipeline");
    }

    #[test]
    fn a_valid_run_creates_its_workflow_and_becomes_valid_and_pending() {
        let mut run = inline(two_steps(), &[("lr", "0.1")]);
        let now = time("2026-01-01T00:00:00Z");
        // It waited for its Pipeline before.
        run.status = Some(invalid_status(
            &run,
            &Invalid::PipelineNotFound("spec.pipelineRef.name: not found".into()),
            now,
        ));
        let workflow = compiled(&run).expect("valid");
        let plan = plan(
            &run,
            Observed::NoWorkflow(Ok(Box::new(workflow.clone()))),
            now,
        );
        assert_eq!(plan.create, Some(workflow));
        assert_eq!(plan.status.phase, Some(PipelineRunPhase::Pending));
        assert_eq!(plan.status.message, None);
        assert_eq!(plan.status.workflow_name.as_deref(), Some("nightly"));
        let valid = condition(&plan.status.conditions, "Valid").expect("Valid");
        assert_eq!(valid.status, "True");
        assert_eq!(plan.status.observed_generation, Some(1));
    }

    #[test]
    fn a_foreign_workflow_is_waited_out_and_a_deleted_one_fails_the_run() {
        let run = inline(two_steps(), &[("lr", "0.1")]);
        let now = time("2026-01-01T00:00:00Z");
        let plan = plan(&run, Observed::ForeignWorkflow, now);
        assert_eq!((plan.create, plan.requeue), (None, Some(NAME_TAKEN_RETRY)));
        let created = condition(&plan.status.conditions, "WorkflowCreated").expect("a condition");
        assert_eq!(created.reason.as_deref(), Some("WorkflowNameTaken"));
        assert!(!is_terminal(&PipelineRun {
            status: Some(plan.status),
            ..run.clone()
        }));

        let plan = super::plan(&run, Observed::WorkflowDeleted, now);
        assert_eq!(plan.status.phase, Some(PipelineRunPhase::Failed));
        assert_eq!(
            plan.status.message.as_deref(),
            Some("Workflow \"nightly\" was deleted while the run was Pending")
        );
    }

    #[test]
    fn runs_that_ended_are_terminal() {
        let mut run = inline(two_steps(), &[]);
        for (phase, terminal) in [
            (None, false),
            (Some(PipelineRunPhase::Pending), false),
            (Some(PipelineRunPhase::Running), false),
            (Some(PipelineRunPhase::Succeeded), true),
            (Some(PipelineRunPhase::Failed), true),
            (Some(PipelineRunPhase::Error), true),
        ] {
            run.status = Some(PipelineRunStatus {
                phase,
                ..Default::default()
            });
            assert_eq!(is_terminal(&run), terminal, "{phase:?}");
        }
    }

    #[test]
    fn a_pipeline_wakes_the_unfinished_runs_of_its_namespace_that_reference_it() {
        let referencing = |name: &str, namespace: &str, pipeline: &str, phase| {
            let mut run = run(PipelineRunSpec {
                pipeline_spec: None,
                pipeline_ref: Some(PipelineReference {
                    name: pipeline.into(),
                }),
                params: Vec::new(),
                service_account_name: None,
            });
            run.metadata.name = Some(name.into());
            run.metadata.namespace = Some(namespace.into());
            run.status = Some(PipelineRunStatus {
                phase: Some(phase),
                ..Default::default()
            });
            Arc::new(run)
        };
        let runs = [
            referencing("waiting", "ml", "train", PipelineRunPhase::Pending),
            referencing("done", "ml", "train", PipelineRunPhase::Succeeded),
            referencing("elsewhere", "other", "train", PipelineRunPhase::Pending),
            referencing("another", "ml", "prepare", PipelineRunPhase::Pending),
        ];
        let mut pipeline = Pipeline::new("train", two_steps());
        pipeline.metadata.namespace = Some("ml".into());
        let woken: Vec<String> = runs_waiting_for(&runs, &pipeline)
            .into_iter()
            .map(|reference| reference.name)
            .collect();
        assert_eq!(woken, ["waiting"]);
    }

    #[test]
    fn events_say_what_changed_and_warn_of_failures() {
        let run = inline(two_steps(), &[]);
        let now = time("2026-01-01T00:00:00Z");
        let failed = invalid_status(&run, &Invalid::Rejected("no".into()), now);
        let event = event_of(&PipelineRunStatus::default(), &failed).expect("an event");
        assert_eq!(
            (event.type_, event.reason.as_str()),
            (EventType::Warning, "WorkflowRejected")
        );
        assert!(event_of(&failed, &failed).is_none());
    }
}
