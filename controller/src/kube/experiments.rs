//! The experiment controller's reconcile: observe an Experiment and its Trials, plan with the
//! engine, carry the plan out through the API server.
//!
//! Each reconcile re-derives everything from the cluster's state: the Experiment (defaulted and
//! validated here, so an invalid one fails with every field path in its condition message, no
//! webhook needed), its Trials from the watch cache, and the algorithm's answer for the trials
//! still wanted. Assignments become Trials in the same reconcile; a trial's name is
//! `<experiment>-<ordinal>`, the next ordinal after the highest seen, so a cache that lags behind
//! a create (or a controller restarted mid-experiment) can only try to create an existing name,
//! which the API server refuses: no trial is ever duplicated.

use crate::kube::patch_status;
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use futures::FutureExt;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Patch, PatchParams, PostParams};
use kube::runtime::controller::Action as ControllerAction;
use kube::runtime::events::{Event, EventType};
use kube::{Api, Resource, ResourceExt};
use serde_json::{Value, json};
use sextant_algorithms::early_stopping::{TrialObservations, build_early_stopping};

use crate::kube::TrialResource;
use crate::kube::convert::{self, belongs_to, ordinal, trial_name};
use crate::kube::run_object;
use crate::kube::{
    Context, ExperimentResource, OBSERVATION_LOG_FINALIZER, ReconcileError, STOP_ANNOTATION,
    is_conflict, object_key,
};
use crate::local::launch::{active_template, placeholder_values};
use crate::observation_log;
use crate::suggest::{self, Outcome, Suggester};
use sextant_experiment::api::common::EarlyStoppingRule;
use sextant_experiment::api::experiment::{
    Experiment, ExperimentConditionType, ExperimentStatus, TrialTemplate,
};
use sextant_experiment::api::suggestion::TrialAssignment;
use sextant_experiment::api::template::RunKind;
use sextant_experiment::api::trial::{EXPERIMENT_LABEL, TrialSpec};
use sextant_experiment::api::{ConditionStatus, set_condition};
use sextant_experiment::engine::{
    self, Action, Observed, ObservedSuggestion, ObservedTrial, is_completed, will_restart,
};
use sextant_experiment::placeholders::substitute;
use sextant_experiment::{FieldError, ValidationErrors, defaults, domain, validation, warm_start};

/// The annotation holding the settings the algorithm handed back last (Hyperband's bracket),
/// as a JSON list of `[name, value]` pairs: Katib keeps them in its Suggestion resource; here
/// they ride on the Experiment, so a restarted controller carries on with the same bracket.
pub const ALGORITHM_STATE_ANNOTATION: &str = "sextant.dev/algorithm-state";

/// The algorithm state saved on the experiment; none when absent or unreadable.
fn saved_algorithm_state(resource: &ExperimentResource) -> Vec<(String, String)> {
    resource
        .annotations()
        .get(ALGORITHM_STATE_ANNOTATION)
        .and_then(|text| serde_json::from_str(text).ok())
        .unwrap_or_default()
}

/// The reason of the `Failed` condition of an Experiment whose spec is invalid.
pub const REASON_INVALID_SPEC: &str = "ExperimentSpecInvalid";

/// How soon to ask again when the algorithm must wait for running trials (Hyperband).
const NOT_READY_RETRY: Duration = Duration::from_secs(2);

/// How soon an Experiment is looked at again when it came before the first list of Trials.
const TRIALS_NOT_LISTED_RETRY: Duration = Duration::from_millis(250);

pub(super) async fn reconcile(
    resource: Arc<ExperimentResource>,
    context: Arc<Context>,
) -> Result<ControllerAction, ReconcileError> {
    if resource.metadata.deletion_timestamp.is_some() {
        return Ok(ControllerAction::await_change());
    }
    // Until the first list of Trials is in, the cache would say there are none: come back
    // shortly. Not by awaiting `Store::wait_until_ready`: in kube-runtime 5 that future keeps
    // only the waker of the task that polled it last (a futures oneshot receiver), so of the
    // reconciles waiting at once all but one would never wake, and as the controller runs one
    // reconcile per object at a time, their Experiments would never be reconciled again.
    if context.trials.wait_until_ready().now_or_never().is_none() {
        return Ok(ControllerAction::requeue(TRIALS_NOT_LISTED_RETRY));
    }
    let action = reconcile_experiment(&resource, &context).await?;
    context.succeeded(&object_key(resource.as_ref(), &context.experiment_kind));
    Ok(action)
}

pub(super) fn error_policy(
    resource: Arc<ExperimentResource>,
    error: &ReconcileError,
    context: Arc<Context>,
) -> ControllerAction {
    let key = object_key(resource.as_ref(), &context.experiment_kind);
    if is_conflict(error) {
        tracing::debug!(experiment = %key, %error, "write conflict; retrying on the fresh object");
    } else {
        tracing::warn!(experiment = %key, %error, "reconcile failed; retrying");
    }
    ControllerAction::requeue(context.retry_delay(key, error))
}

async fn reconcile_experiment(
    resource: &ExperimentResource,
    context: &Context,
) -> Result<ControllerAction, ReconcileError> {
    let namespace = resource.namespace().unwrap_or_default();
    let experiments: Api<ExperimentResource> =
        Api::namespaced_with(context.client.clone(), &namespace, &context.experiment_kind);
    let name = resource.name_any();
    let mut experiment = convert::experiment_of(resource, &context.experiment_kind);
    defaults::apply_defaults(&mut experiment);

    // A completed experiment only stops what still runs: its template and rules are not
    // looked at again, so a ConfigMap deleted afterwards cannot turn a success into a failure.
    let settled = experiment
        .status
        .as_ref()
        .is_some_and(|status| is_completed(status) && !will_restart(&experiment.spec, status));
    let invalid = experiment.status.as_ref().is_some_and(|status| {
        status.conditions.iter().any(|condition| {
            condition.condition_type == ExperimentConditionType::Failed
                && condition.reason == REASON_INVALID_SPEC
        })
    });
    if settled && invalid {
        // Refused before the engine ever ran: there is nothing to plan or stop.
        return Ok(ControllerAction::await_change());
    }
    let template = if settled {
        Ok(None)
    } else {
        trial_template(context, &experiment.spec.trial_template, &namespace).await
    };
    let template = match template {
        Ok(template) => template,
        Err(TemplateError::Invalid(message)) => {
            fail_invalid(context, resource, &experiments, message).await?;
            return Ok(ControllerAction::await_change());
        }
        Err(TemplateError::Kube(error)) => return Err(error.into()),
    };
    let config_map_template = template.as_ref().filter(|_| {
        experiment
            .spec
            .trial_template
            .as_ref()
            .is_some_and(|template| template.trial_spec.is_none())
    });
    if let (Some(run_object), Some(trial_template)) =
        (config_map_template, experiment.spec.trial_template.as_mut())
    {
        defaults::apply_template_defaults(trial_template, run_object);
    }
    if !settled
        && let Err(errors) = validation::validate_with_template(&experiment, config_map_template)
    {
        fail_invalid(context, resource, &experiments, errors.to_string()).await?;
        return Ok(ControllerAction::await_change());
    }
    let template = template.unwrap_or(Value::Null);

    let in_namespace: Vec<Arc<TrialResource>> = context
        .trials
        .state()
        .into_iter()
        .filter(|trial| trial.metadata.namespace.as_deref() == Some(namespace.as_str()))
        .collect();
    // Past every name of the pattern in the namespace, a leftover of a deleted experiment of
    // the same name (still terminating) included, so a create never hits one.
    let next_ordinal = in_namespace
        .iter()
        .filter_map(|trial| ordinal(&name, &trial.name_any()))
        .max()
        .map_or(0, |highest| highest + 1);
    let mut trials: Vec<Arc<TrialResource>> = in_namespace
        .into_iter()
        .filter(|trial| belongs_to(trial, resource))
        .collect();
    trials.sort_by_key(|trial| ordinal(&name, &trial.name_any()).unwrap_or(u64::MAX));
    let labels: HashMap<String, BTreeMap<String, String>> = trials
        .iter()
        .map(|trial| (trial.name_any(), trial.spec.labels.clone()))
        .collect();
    let mut observed = Observed {
        experiment: experiment.clone(),
        trials: trials
            .iter()
            .map(|trial| convert::observed_trial(trial))
            .collect(),
        suggestion: ObservedSuggestion::default(),
        now: Utc::now(),
    };

    let mut plan = engine::plan(&observed);
    let mut retry_after = None;
    let mut algorithm_state = None;
    let wanted = plan.actions.iter().find_map(|action| match action {
        Action::RequestSuggestions { count } => Some(*count),
        _ => None,
    });
    if let Some(count) = wanted {
        let warm_history = match warm_history(context, &experiment, &experiments).await? {
            Ok(history) => history,
            Err(errors) => {
                fail_invalid(context, resource, &experiments, errors.to_string()).await?;
                return Ok(ControllerAction::await_change());
            }
        };
        let uid = resource.uid().unwrap_or_default();
        let mut suggester = context
            .suggesters
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&uid)
            .unwrap_or_else(|| {
                let mut suggester = Suggester::new(context.config.suggestion_service.as_deref());
                suggester.restore_returned_settings(&saved_algorithm_state(resource));
                suggester
            });
        let outcome = suggest::suggest_with_warm_start(
            &mut suggester,
            &experiment,
            &warm_history,
            &observed.trials,
            &labels,
            &[],
            count,
        )
        .await;
        algorithm_state = Some(suggester.returned_settings());
        context
            .suggesters
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(uid, suggester);
        match outcome {
            Outcome::Assignments(reply) => {
                let rules = early_stopping_rules(context, &experiment, &trials).await?;
                observed.suggestion.unused_assignments = suggest::suggested_trials(reply)
                    .into_iter()
                    .zip(next_ordinal..)
                    .map(|(suggested, ordinal)| TrialAssignment {
                        name: trial_name(&name, ordinal),
                        parameter_assignments: suggested.parameter_assignments,
                        early_stopping_rules: rules.clone(),
                        labels: suggested.labels,
                    })
                    .collect();
            }
            Outcome::Exhausted { .. } => observed.suggestion.exhausted = true,
            Outcome::NotReady { .. } => retry_after = Some(NOT_READY_RETRY),
            Outcome::Unreachable(reason) => {
                return Err(ReconcileError::SuggestionUnreachable(reason));
            }
            Outcome::Failed(reason) => observed.suggestion.failure = Some(reason),
        }
        plan = engine::plan(&observed);
    }

    let trials_api: Api<TrialResource> =
        Api::namespaced_with(context.client.clone(), &namespace, &context.trial_kind);
    for action in &plan.actions {
        match action {
            Action::CreateTrial(assignment) => {
                let trial = match new_trial(context, resource, &template, assignment, &observed) {
                    Ok(trial) => trial,
                    Err(message) => {
                        fail_invalid(context, resource, &experiments, message).await?;
                        return Ok(ControllerAction::await_change());
                    }
                };
                match trials_api.create(&PostParams::default(), &trial).await {
                    Ok(_) => {}
                    // The cache lags behind an earlier create of the same trial: nothing to do.
                    Err(kube::Error::Api(status)) if status.code == 409 => {
                        retry_after = Some(Duration::from_secs(1));
                    }
                    Err(error) => return Err(error.into()),
                }
            }
            Action::StopTrial { trial_name, reason } => {
                let patch = json!({"metadata": {"annotations": {STOP_ANNOTATION: reason}}});
                trials_api
                    .patch(trial_name, &PatchParams::default(), &Patch::Merge(&patch))
                    .await?;
            }
            // The trial controller records every change of a run as the trial's condition, and
            // the engine sees runs through those conditions, so it never asks for one here.
            Action::SetTrialCondition { .. } => {}
            Action::RequestSuggestions { .. } => {}
            Action::SetExperimentStatus(status) => {
                write_status(context, resource, &experiments, status).await?;
            }
        }
    }
    // After the trials it led to exist: they are the history the state goes with.
    if let Some(state) = algorithm_state
        && state != saved_algorithm_state(resource)
    {
        let text = serde_json::to_string(&state).map_err(|source| ReconcileError::Json {
            what: "the algorithm's state".into(),
            source,
        })?;
        let patch = json!({"metadata": {"annotations": {ALGORITHM_STATE_ANNOTATION: text}}});
        experiments
            .patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
            .await?;
    }
    if plan.finished {
        context
            .suggesters
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&resource.uid().unwrap_or_default());
        let mut finished = context
            .finished_objectives
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        for trial in &trials {
            finished.remove(&convert::log_key(trial));
        }
    }
    Ok(match retry_after {
        Some(delay) => ControllerAction::requeue(delay),
        None if plan.finished => ControllerAction::await_change(),
        None => ControllerAction::requeue(context.config.poll_interval * 6),
    })
}

/// The early-stopping rules a trial created now carries, from the objective values of the
/// trials the algorithm reads (Katib computes them when the trial is created: the succeeded
/// ones for `medianstop`, every one for successive halving); none without early stopping.
async fn early_stopping_rules(
    context: &Context,
    experiment: &Experiment,
    trials: &[Arc<TrialResource>],
) -> Result<Vec<EarlyStoppingRule>, ReconcileError> {
    let Some(spec) = &experiment.spec.early_stopping else {
        return Ok(Vec::new());
    };
    let Some(objective) = experiment
        .spec
        .objective
        .as_ref()
        .and_then(domain::objective)
    else {
        return Ok(Vec::new());
    };
    // Validation has built it once already; a failure here cannot happen for a valid spec.
    let Ok(algorithm) = build_early_stopping(
        &spec.algorithm_name,
        &domain::settings(&spec.algorithm_settings),
    ) else {
        return Ok(Vec::new());
    };
    let mut observations = Vec::new();
    for trial in trials.iter() {
        let condition = convert::current_condition(trial).0;
        if !algorithm.reads(domain::trial_condition(condition)) {
            continue;
        }
        let key = convert::log_key(trial);
        // A finished trial's log does not change, so it is read once; a running one's is read
        // each time.
        if !condition.is_terminal() {
            observations.push(TrialObservations {
                trial_name: trial.name_any(),
                condition: domain::trial_condition(condition),
                objective_values: observation_log::numeric_values(
                    &context.store,
                    &key,
                    &objective.metric_name,
                )
                .await?,
            });
            continue;
        }
        let known = context
            .finished_objectives
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&key)
            .cloned();
        let objective_values = match known {
            Some(values) => values,
            None => {
                let values =
                    observation_log::numeric_values(&context.store, &key, &objective.metric_name)
                        .await?;
                context
                    .finished_objectives
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .insert(key, values.clone());
                values
            }
        };
        observations.push(TrialObservations {
            trial_name: trial.name_any(),
            condition: domain::trial_condition(condition),
            objective_values,
        });
    }
    Ok(algorithm
        .rules(&objective, &observations)
        .iter()
        .map(domain::trial_rule)
        .collect())
}

/// Why the trial template cannot be had.
enum TemplateError {
    /// The spec is wrong: the experiment fails with this message.
    Invalid(String),
    /// The API server did not answer; try again later.
    Kube(kube::Error),
}

/// The trial template as JSON: the inline `trialSpec`, or the ConfigMap's entry. A ConfigMap is
/// read only from the experiment's own namespace, so the controller's rights never show a user
/// another namespace's data. A `Process` template runs only on one machine.
async fn trial_template(
    context: &Context,
    template: &Option<TrialTemplate>,
    namespace: &str,
) -> Result<Option<Value>, TemplateError> {
    let Some(template) = template else {
        return Ok(None);
    };
    let run_object = match (&template.trial_spec, &template.config_map) {
        (Some(spec), _) => spec.clone(),
        (None, None) => return Ok(None),
        (None, Some(source)) => {
            let path = "spec.trialTemplate.configMap";
            if !source.config_map_namespace.is_empty() && source.config_map_namespace != namespace {
                return Err(TemplateError::Invalid(format!(
                    "{path}.configMapNamespace: {:?} is not the experiment's namespace {namespace:?}; in a cluster the template must live beside the experiment",
                    source.config_map_namespace
                )));
            }
            let config_maps: Api<ConfigMap> = Api::namespaced(context.client.clone(), namespace);
            let config_map = config_maps
                .get_opt(&source.config_map_name)
                .await
                .map_err(TemplateError::Kube)?
                .ok_or_else(|| {
                    TemplateError::Invalid(format!(
                        "{path}.configMapName: ConfigMap {namespace}/{} does not exist",
                        source.config_map_name
                    ))
                })?;
            let text = config_map
                .data
                .as_ref()
                .and_then(|data| data.get(&source.template_path))
                .ok_or_else(|| {
                    TemplateError::Invalid(format!(
                        "{path}.templatePath: ConfigMap {namespace}/{} has no key {:?}",
                        source.config_map_name, source.template_path
                    ))
                })?;
            serde_yaml::from_str(text).map_err(|error| {
                TemplateError::Invalid(format!("{path}.templatePath: not a YAML object: {error}"))
            })?
        }
    };
    refuse_local_template(&run_object)
        .map_err(|error| TemplateError::Invalid(error.to_string()))?;
    Ok(Some(run_object))
}

/// Refuses a trial template that runs only on one machine (`Process`), naming the field.
pub(crate) fn refuse_local_template(run_object: &Value) -> Result<(), FieldError> {
    if RunKind::of_template(run_object) == Some(RunKind::Process) {
        return Err(FieldError {
            path: "spec.trialTemplate.trialSpec".into(),
            rule: "kind Process runs trials as local processes (sextant run); in a cluster use a Job or another Kubernetes kind".into(),
        });
    }
    Ok(())
}

fn new_trial(
    context: &Context,
    experiment: &ExperimentResource,
    template: &Value,
    assignment: &TrialAssignment,
    observed: &Observed,
) -> Result<TrialResource, String> {
    let values = placeholder_values(
        &observed.experiment,
        template,
        &assignment.name,
        &assignment.parameter_assignments,
        &assignment.labels,
    );
    let spec = &observed.experiment.spec;
    let trial_template = spec.trial_template.clone().unwrap_or_default();
    let (run_spec, primary_container_name) = run_object::for_cluster(
        substitute(
            &active_template(
                &observed.experiment,
                template,
                &assignment.parameter_assignments,
            ),
            &values,
        ),
        &assignment.name,
        &trial_template.primary_container_name,
        context.config.api_group,
    )?;
    let mut trial = TrialResource::new(
        &assignment.name,
        &context.trial_kind,
        TrialSpec {
            objective: spec.objective.clone(),
            parameter_assignments: assignment.parameter_assignments.clone(),
            early_stopping_rules: assignment.early_stopping_rules.clone(),
            run_spec: Some(run_spec),
            retain_run: trial_template.retain,
            metrics_collector: spec.metrics_collector_spec.clone().unwrap_or_default(),
            primary_pod_labels: trial_template.primary_pod_labels,
            primary_container_name,
            success_condition: trial_template.success_condition,
            failure_condition: trial_template.failure_condition,
            labels: assignment.labels.clone(),
            constraints: spec.constraints.clone(),
        },
    );
    // The suggestion's labels (pbt's generation and parent, hyperband's bracket and rung) go
    // on the Trial's metadata too, where Katib's controller puts them.
    let mut labels = experiment.labels().clone();
    labels.extend(assignment.labels.clone());
    labels.insert(EXPERIMENT_LABEL.into(), experiment.name_any());
    trial.metadata.namespace = experiment.namespace();
    trial.metadata.labels = Some(labels);
    trial.metadata.owner_references = experiment
        .controller_owner_ref(&context.experiment_kind)
        .map(|owner| vec![owner]);
    // Set at creation, so no trial ever exists without the finalizer that deletes its log.
    trial.metadata.finalizers = Some(vec![OBSERVATION_LOG_FINALIZER.into()]);
    Ok(trial)
}

/// Writes the Experiment's status when it changed in more than its reconcile time, with the
/// names of finished trials left out, and records an event when its last condition changed.
async fn write_status(
    context: &Context,
    resource: &ExperimentResource,
    experiments: &Api<ExperimentResource>,
    status: &ExperimentStatus,
) -> Result<(), ReconcileError> {
    if !convert::differs(resource.status.as_ref(), status) {
        return Ok(());
    }
    let bounded = convert::bounded(status);
    patch_status(
        experiments,
        resource,
        resource.status.as_ref(),
        &bounded,
        "the experiment's status",
    )
    .await?;
    let last = |status: Option<&ExperimentStatus>| {
        status
            .and_then(|status| status.conditions.last())
            .map(|condition| (condition.condition_type.clone(), condition.reason.clone()))
    };
    if let Some(condition) = bounded.conditions.last()
        && last(resource.status.as_ref()) != last(Some(&bounded))
    {
        let type_ = match condition.condition_type {
            ExperimentConditionType::Failed => EventType::Warning,
            _ => EventType::Normal,
        };
        publish(
            context,
            resource,
            type_,
            &condition.reason,
            &condition.message,
        )
        .await;
    }
    Ok(())
}

/// The trials of the experiments `spec.warmStart.fromExperiments` names, read from the
/// Experiment objects of the namespace and the Trial objects they own, as the local driver
/// reads them from its store ([`crate::local::warm_start`]); or every source that is missing or
/// does not fit, each naming its field path.
async fn warm_history(
    context: &Context,
    experiment: &Experiment,
    experiments: &Api<ExperimentResource>,
) -> Result<Result<Vec<ObservedTrial>, ValidationErrors>, ReconcileError> {
    let mut history = Vec::new();
    let mut errors = Vec::new();
    for (index, name) in warm_start::source_names(&experiment.spec)
        .iter()
        .enumerate()
    {
        let Some(source_resource) = experiments.get_opt(name).await? else {
            errors.push(FieldError {
                path: warm_start::source_path(index),
                rule: format!(
                    "names no experiment in the namespace ({})",
                    sextant_echo::echo_quoted(name)
                ),
            });
            continue;
        };
        let mut source = convert::experiment_of(&source_resource, &context.experiment_kind);
        defaults::apply_defaults(&mut source);
        let mut owned: Vec<Arc<TrialResource>> = context
            .trials
            .state()
            .into_iter()
            .filter(|trial| belongs_to(trial, &source_resource))
            .collect();
        owned.sort_by_key(|trial| ordinal(name, &trial.name_any()).unwrap_or(u64::MAX));
        let trials: Vec<ObservedTrial> = owned
            .iter()
            .map(|trial| convert::observed_trial(trial))
            .collect();
        match warm_start::source_history(&experiment.spec, &source, &trials) {
            Ok(mut projected) => history.append(&mut projected),
            Err(rule) => errors.push(FieldError {
                path: warm_start::source_path(index),
                rule,
            }),
        }
    }
    Ok(if errors.is_empty() {
        Ok(history)
    } else {
        Err(ValidationErrors(errors))
    })
}

/// Marks an experiment whose spec cannot be used `Failed`, with every problem in the message.
async fn fail_invalid(
    context: &Context,
    resource: &ExperimentResource,
    experiments: &Api<ExperimentResource>,
    message: String,
) -> Result<(), ReconcileError> {
    let mut status = resource.status.clone().unwrap_or_default();
    let now = Utc::now();
    status.start_time.get_or_insert(now);
    let changed = set_condition(
        &mut status.conditions,
        ExperimentConditionType::Failed,
        ConditionStatus::True,
        REASON_INVALID_SPEC,
        &message,
        now,
    );
    let message_changed = status
        .conditions
        .last()
        .is_some_and(|condition| condition.message != message);
    if changed || message_changed {
        if let Some(condition) = status.conditions.last_mut() {
            condition.message = message;
        }
        status.completion_time = Some(now);
        write_status(context, resource, experiments, &status).await?;
    }
    Ok(())
}

async fn publish(
    context: &Context,
    resource: &ExperimentResource,
    type_: EventType,
    reason: &str,
    note: &str,
) {
    let event = Event {
        type_,
        reason: reason.into(),
        note: Some(note.chars().take(1024).collect()),
        action: "Reconcile".into(),
        secondary: None,
    };
    if let Err(error) = context
        .recorder
        .publish(&event, &resource.object_ref(&context.experiment_kind))
        .await
    {
        tracing::debug!(%error, "cannot record an event");
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::kube::fixtures::{self, ApiServerVerifier, Scenario};

    /// What a reconcile of the fixtures' experiment against `scenario` returned, or, when it
    /// failed, what the error policy made of the error; and the verifier, for the next one.
    async fn reconcile_with(
        context: &Arc<Context>,
        verifier: ApiServerVerifier,
        scenario: Scenario,
    ) -> (
        Result<ControllerAction, ControllerAction>,
        ApiServerVerifier,
    ) {
        let experiment = Arc::new(fixtures::experiment());
        let exchange = verifier.run(scenario);
        let result = reconcile(experiment.clone(), context.clone()).await;
        let verifier = fixtures::finished(exchange).await;
        let result = result.map_err(|error| error_policy(experiment, &error, context.clone()));
        (result, verifier)
    }

    fn no_failures_counted(context: &Context) -> bool {
        context
            .failures
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .is_empty()
    }

    /// The delay the poll interval of the fixtures (1 s) gives a running experiment.
    const POLL: Duration = Duration::from_secs(6);

    #[tokio::test]
    async fn a_new_experiment_gets_its_first_trial_and_status() {
        let (context, verifier) = fixtures::context(Vec::new()).await;
        let (result, _) = reconcile_with(&context, verifier, Scenario::ExperimentStarts).await;
        assert_eq!(result, Ok(ControllerAction::requeue(POLL)));
    }

    #[tokio::test]
    async fn experiments_that_come_before_the_first_list_of_trials_are_all_looked_at_again() {
        // Many reconciles start before the trials' watch has listed anything, as when a
        // controller starts on a cluster full of Experiments. Each must come back on its own,
        // without a call to the API server (the verifier answers none), however long the list
        // takes: a reconcile left waiting would keep its Experiment from ever being reconciled.
        let (context, verifier, mut writer) = fixtures::context_before_trials_listed().await;
        let waiting: Vec<_> = (0..3)
            .map(|_| tokio::spawn(reconcile(Arc::new(fixtures::experiment()), context.clone())))
            .collect();
        for reconcile in waiting {
            let result = tokio::time::timeout(Duration::from_secs(10), reconcile)
                .await
                .expect("the reconcile came back while the trials were not listed")
                .expect("the reconcile did not panic");
            assert_eq!(
                result.expect("not a failure"),
                ControllerAction::requeue(TRIALS_NOT_LISTED_RETRY)
            );
        }
        assert!(no_failures_counted(&context));

        // The list arrives: the next reconcile starts the experiment.
        writer.apply_watcher_event(&kube::runtime::watcher::Event::Init);
        writer.apply_watcher_event(&kube::runtime::watcher::Event::InitDone);
        let (result, _) = reconcile_with(&context, verifier, Scenario::ExperimentStarts).await;
        assert_eq!(result, Ok(ControllerAction::requeue(POLL)));
    }

    #[tokio::test]
    async fn a_conflicting_status_write_is_retried_at_once_however_often_it_happens() {
        let (context, mut verifier) = fixtures::context(Vec::new()).await;
        for _ in 0..3 {
            let (result, next) = reconcile_with(&context, verifier, Scenario::StatusConflict).await;
            verifier = next;
            assert_eq!(
                result,
                Err(ControllerAction::requeue(Duration::from_millis(200)))
            );
            // Not counted as a failure: the backoff of other errors does not grow.
            assert!(no_failures_counted(&context));
        }
    }

    #[tokio::test]
    async fn a_trial_the_stale_cache_missed_is_not_created_again_under_another_name() {
        // The cache has no trial, but `exp-0` exists: its create is refused, no `exp-1`
        // follows (the scenario expects one create only), and the reconcile comes back soon,
        // when the cache has caught up.
        let (context, verifier) = fixtures::context(Vec::new()).await;
        let (result, _) = reconcile_with(&context, verifier, Scenario::TrialAlreadyExists).await;
        assert_eq!(
            result,
            Ok(ControllerAction::requeue(Duration::from_secs(1)))
        );
    }

    #[tokio::test]
    async fn a_cached_trial_is_counted_and_not_created_again() {
        let mut trial = fixtures::trial();
        trial.metadata.labels = Some(BTreeMap::from([(
            sextant_experiment::api::trial::EXPERIMENT_LABEL.to_owned(),
            fixtures::EXPERIMENT.to_owned(),
        )]));
        trial.metadata.owner_references = fixtures::experiment()
            .controller_owner_ref(&crate::kube::ApiGroup::Sextant.experiments())
            .map(|owner| vec![owner]);
        let (context, verifier) = fixtures::context(vec![trial]).await;
        let (result, _) =
            reconcile_with(&context, verifier, Scenario::ExperimentRunsItsTrial).await;
        assert_eq!(result, Ok(ControllerAction::requeue(POLL)));
    }

    #[tokio::test]
    async fn a_forbidden_create_is_retried_within_seconds_and_recovers_once_rbac_is_in_force() {
        let (context, verifier) = fixtures::context(Vec::new()).await;
        let mut verifier = verifier;
        let mut delays = Vec::new();
        for _ in 0..10 {
            let (result, next) =
                reconcile_with(&context, verifier, Scenario::TrialCreateForbidden).await;
            verifier = next;
            delays.push(result.expect_err("the create was refused"));
        }
        // However long RBAC takes, the retries never wait more than a few seconds, where
        // other failures back off to minutes.
        let seconds = |secs| ControllerAction::requeue(Duration::from_secs(secs));
        assert_eq!(delays, [1, 2, 4, 4, 4, 4, 4, 4, 4, 4].map(seconds).to_vec());

        // The role is bound: the next try creates the trial, and the backoff starts over.
        let (result, _) = reconcile_with(&context, verifier, Scenario::ExperimentStarts).await;
        assert_eq!(result, Ok(ControllerAction::requeue(POLL)));
        assert!(no_failures_counted(&context));
    }
}
