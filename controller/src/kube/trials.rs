//! The trial controller's reconcile: create the Trial's run object, judge it by the trial's
//! success and failure conditions, read the observation log, record the Trial's condition.
//!
//! A trial's condition moves by the engine's rule
//! ([`sextant_experiment::engine::next_condition`]), so a run that succeeded without a value for
//! each objective and constrained metric is `MetricsUnavailable` at once, as locally. A
//! run object that cannot be made fails the trial with the reason: an unknown kind
//! (`UnknownKind`), one the controller may not create (`Forbidden`, RBAC), a template that does
//! not fit its metrics collector (`InvalidRunSpec`), a condition that does not parse
//! (`InvalidCondition`). A running trial whose early-stopping rules are all met by what it
//! reported has its run object deleted and ends `EarlyStopped`. A trial asked to stop has its
//! run object deleted and ends `Killed`.
//! When a trial ends, its run object is deleted unless the template says `retain`; when the
//! Trial is deleted, the finalizer deletes its observation log and garbage collection its run
//! object.

use crate::kube::patch_status;
use std::sync::Arc;

use chrono::Utc;
use kube::api::{DeleteParams, DynamicObject, GroupVersionKind, Patch, PatchParams, PostParams};
use kube::runtime::controller::Action as ControllerAction;
use kube::runtime::finalizer::{Event as FinalizerEvent, finalizer};
use kube::{Api, ResourceExt};
use serde_json::{Value, json};
use sextant_algorithms::early_stopping::should_stop;
use sextant_store::MetricPoint;
use sextant_store::ObservationLogFilter;
use sextant_store::observation_log::numeric_value;

use crate::kube::TrialResource;
use crate::kube::convert::{current_condition, log_key, observed_trial, stop_reason};
use crate::kube::run_object::{self, Kind};
use crate::kube::{Context, OBSERVATION_LOG_FINALIZER, ReconcileError, is_conflict, object_key};
use crate::observation_log;
use sextant_conditions::{Condition, default_conditions};
use sextant_experiment::api::common::ObjectiveSpec;
use sextant_experiment::api::trial::TrialConditionType;
use sextant_experiment::api::{ConditionStatus, set_condition};
use sextant_experiment::domain;
use sextant_experiment::engine::{ObservedTrial, RunState, next_condition, required_metrics};

pub(super) async fn reconcile(
    trial: Arc<TrialResource>,
    context: Arc<Context>,
) -> Result<ControllerAction, ReconcileError> {
    let key = object_key(trial.as_ref(), &context.trial_kind);
    let namespace = trial.namespace().unwrap_or_default();
    let trials: Api<TrialResource> =
        Api::namespaced_with(context.client.clone(), &namespace, &context.trial_kind);
    let action = finalizer(&trials, OBSERVATION_LOG_FINALIZER, trial, |event| async {
        match event {
            FinalizerEvent::Apply(trial) => apply(&trial, &trials, &context).await,
            FinalizerEvent::Cleanup(trial) => {
                context
                    .store
                    .delete_observation_log(&log_key(&trial))
                    .await?;
                Ok(ControllerAction::await_change())
            }
        }
    })
    .await
    .map_err(|error| ReconcileError::Finalizer(Box::new(error)))?;
    context.succeeded(&key);
    Ok(action)
}

pub(super) fn error_policy(
    trial: Arc<TrialResource>,
    error: &ReconcileError,
    context: Arc<Context>,
) -> ControllerAction {
    let key = object_key(trial.as_ref(), &context.trial_kind);
    if is_conflict(error) {
        tracing::debug!(trial = %key, %error, "write conflict; retrying on the fresh object");
    } else {
        tracing::warn!(trial = %key, %error, "reconcile failed; retrying");
    }
    ControllerAction::requeue(context.retry_delay(key, error))
}

/// Marks a trial whose run object was deleted after it ended.
const RUN_DELETED_ANNOTATION: &str = "sextant.dev/run-deleted";

/// What became of the attempt to get the trial's run object.
enum RunObject {
    Found(Value),
    /// The run cannot be made; the trial fails with this reason and message.
    Impossible(String, String),
}

async fn apply(
    trial: &TrialResource,
    trials: &Api<TrialResource>,
    context: &Context,
) -> Result<ControllerAction, ReconcileError> {
    let (condition, _, _) = current_condition(trial);
    if condition.is_terminal() {
        if must_delete_run(trial, condition) {
            delete_run_object(trial, trials, context).await?;
        }
        return Ok(ControllerAction::await_change());
    }
    let mut observed = observed_trial(trial);
    if let Some(reason) = stop_reason(trial) {
        observed.run = RunState::Killed {
            message: reason.to_owned(),
        };
    } else {
        observed.run = match run_object(trial, condition, context).await? {
            RunObject::Impossible(reason, message) => RunState::Failed { reason, message },
            RunObject::Found(object) => judge(trial, &object),
        };
    }
    let points = context
        .store
        .get_observation_log(&ObservationLogFilter::trial(log_key(trial)))
        .await?;
    let objective = trial.spec.objective.clone().unwrap_or_default();
    if observed.run == RunState::Running && early_stopped(trial, &objective, &points) {
        observed.run = RunState::EarlyStopped;
    }
    observed.observation = observation_log::observation(&objective, &points);
    // The status is written before the run object is deleted: a reconcile that the deletion
    // triggers then finds the trial ended, and never makes the run again.
    match record(trial, trials, &observed).await? {
        Some(ended) => {
            if must_delete_run(trial, ended) {
                delete_run_object(trial, trials, context).await?;
            }
            Ok(ControllerAction::await_change())
        }
        None => Ok(ControllerAction::requeue(context.config.poll_interval)),
    }
}

/// Whether an ended trial's run object goes: always when it was stopped (it may still run),
/// else unless the template says `retain`.
fn must_delete_run(trial: &TrialResource, condition: TrialConditionType) -> bool {
    matches!(
        condition,
        TrialConditionType::Killed | TrialConditionType::EarlyStopped
    ) || !trial.spec.retain_run
}

/// Whether the trial's early-stopping rules are all met by what it reported, by Katib's rule
/// ([`should_stop`]).
fn early_stopped(trial: &TrialResource, objective: &ObjectiveSpec, points: &[MetricPoint]) -> bool {
    let Some(objective) = domain::objective(objective) else {
        return false;
    };
    let rules: Vec<_> = trial
        .spec
        .early_stopping_rules
        .iter()
        .filter_map(domain::enforced_rule)
        .collect();
    let reports = points.iter().filter_map(|point| {
        numeric_value(&point.value).map(|value| (point.metric_name.as_str(), value))
    });
    should_stop(&rules, &objective, reports)
}

/// The run's state by the trial's conditions, or Katib's defaults for its kind.
fn judge(trial: &TrialResource, object: &Value) -> RunState {
    let (api_version, kind) = run_object::type_of(object).unwrap_or_default();
    let defaults = default_conditions(&api_version, &kind);
    let pick = |given: &str, default: Option<&'static str>| {
        if given.is_empty() {
            default.map(str::to_owned)
        } else {
            Some(given.to_owned())
        }
    };
    let success = pick(
        &trial.spec.success_condition,
        defaults.map(|(success, _)| success),
    );
    let failure = pick(
        &trial.spec.failure_condition,
        defaults.map(|(_, failure)| failure),
    );
    let parse = |text: Option<String>, field: &str| match text {
        None => Err(format!(
            "spec.{field}: {api_version} {kind} has no default; the trial template must give one"
        )),
        Some(text) => Condition::parse(&text).map_err(|error| format!("spec.{field}: {error}")),
    };
    let conditions = parse(success, "successCondition")
        .and_then(|success| Ok((success, parse(failure, "failureCondition")?)));
    match conditions {
        Err(message) => RunState::Failed {
            reason: "InvalidCondition".into(),
            message,
        },
        Ok((_, failure)) if failure.is_met(object) => {
            let (reason, message) = failure_details(&failure, object);
            RunState::Failed { reason, message }
        }
        Ok((success, _)) if success.is_met(object) => RunState::Succeeded,
        Ok(_) => RunState::Running,
    }
}

/// The reason and message a failed run object gives: those of the element the failure
/// condition matched (a Job's `Failed` condition), as Katib reads them, else the object's
/// `status.message`.
fn failure_details(failure: &Condition, object: &Value) -> (String, String) {
    let text = |value: Option<&Value>| value.and_then(Value::as_str).unwrap_or_default().to_owned();
    let matched = failure.first_match(object).unwrap_or(Value::Null);
    let (reason, message) = (text(matched.get("reason")), text(matched.get("message")));
    if reason.is_empty() && message.is_empty() {
        (String::new(), text(object.pointer("/status/message")))
    } else {
        (reason, message)
    }
}

/// Gets the trial's run object, creating it when the trial was just created. One that exists
/// but is not the trial's (left by a deleted trial of the same name) is waited out; one that
/// went away after it started fails the trial (`RunObjectLost`), so a deleted run is never
/// started again behind the user's back.
async fn run_object(
    trial: &TrialResource,
    condition: TrialConditionType,
    context: &Context,
) -> Result<RunObject, ReconcileError> {
    let name = trial.name_any();
    let Some(run_spec) = &trial.spec.run_spec else {
        return Ok(RunObject::Impossible(
            "InvalidRunSpec".into(),
            run_object::RunObjectError::Missing.to_string(),
        ));
    };
    let (api_version, kind) = match run_object::type_of(run_spec) {
        Ok(pair) => pair,
        Err(error) => {
            return Ok(RunObject::Impossible(
                "InvalidRunSpec".into(),
                error.to_string(),
            ));
        }
    };
    let Some(found) = kind_of(context, &api_version, &kind).await? else {
        return Ok(RunObject::Impossible(
            "UnknownKind".into(),
            format!("the cluster serves no kind {kind} in {api_version}"),
        ));
    };
    if !found.namespaced {
        return Ok(RunObject::Impossible(
            "InvalidRunSpec".into(),
            format!("{kind} is cluster-scoped; a trial's run object must live in its namespace"),
        ));
    }
    let namespace = trial.namespace().unwrap_or_default();
    let api: Api<DynamicObject> =
        Api::namespaced_with(context.client.clone(), &namespace, &found.resource);
    let to_value = |object: &DynamicObject| {
        serde_json::to_value(object).map_err(|source| ReconcileError::Json {
            what: format!("run object {name}"),
            source,
        })
    };
    match api.get_opt(&name).await {
        Ok(Some(object)) => {
            let owned = object
                .owner_references()
                .iter()
                .any(|owner| Some(owner.uid.as_str()) == trial.metadata.uid.as_deref());
            if !owned {
                return Err(ReconcileError::RunObjectNotOwned { kind, name });
            }
            return Ok(RunObject::Found(to_value(&object)?));
        }
        Ok(None) if condition != TrialConditionType::Created => {
            return Ok(RunObject::Impossible(
                "RunObjectLost".into(),
                format!("{kind} {name} was deleted while the trial ran"),
            ));
        }
        Ok(None) => {}
        Err(kube::Error::Api(status)) if status.code == 403 => {
            return Ok(RunObject::Impossible("Forbidden".into(), status.message));
        }
        Err(error) => return Err(error.into()),
    }
    let built = match run_object::build(
        trial,
        &context.trial_kind,
        &context.config.db_manager_address,
    ) {
        Ok(built) => built,
        Err(error) => {
            return Ok(RunObject::Impossible(
                "InvalidRunSpec".into(),
                error.to_string(),
            ));
        }
    };
    let object: DynamicObject =
        serde_json::from_value(built).map_err(|source| ReconcileError::Json {
            what: format!("run object {name}"),
            source,
        })?;
    match api.create(&PostParams::default(), &object).await {
        Ok(created) => Ok(RunObject::Found(to_value(&created)?)),
        // A ResourceQuota refuses with 403 too, but only for now.
        Err(kube::Error::Api(status))
            if status.code == 403 && status.message.contains("exceeded quota") =>
        {
            Err(ReconcileError::QuotaExceeded(status.message))
        }
        Err(kube::Error::Api(status)) if status.code == 403 => {
            Ok(RunObject::Impossible("Forbidden".into(), status.message))
        }
        // Invalid for the API server (422) or refused by an admission plugin (400).
        Err(kube::Error::Api(status)) if status.code == 422 || status.code == 400 => Ok(
            RunObject::Impossible("InvalidRunSpec".into(), status.message),
        ),
        Err(error) => Err(error.into()),
    }
}

/// The API resource serving `kind` in `api_version`, discovered once; `None` when the cluster
/// has no such kind (yet: a miss is not remembered, so installing the CRD later works).
async fn kind_of(
    context: &Context,
    api_version: &str,
    kind: &str,
) -> Result<Option<Kind>, ReconcileError> {
    let key = (api_version.to_owned(), kind.to_owned());
    if let Some(found) = context.kinds.lock().await.get(&key) {
        return Ok(found.clone());
    }
    let (group, version) = match api_version.split_once('/') {
        Some((group, version)) => (group, version),
        None => ("", api_version),
    };
    let gvk = GroupVersionKind::gvk(group, version, kind);
    let found = match kube::discovery::pinned_kind(&context.client, &gvk).await {
        Ok((resource, capabilities)) => Some(Kind {
            resource,
            namespaced: capabilities.scope == kube::discovery::Scope::Namespaced,
        }),
        Err(kube::Error::Api(status)) if status.code == 404 => None,
        Err(kube::Error::Discovery(_)) => None,
        Err(error) => return Err(error.into()),
    };
    if found.is_some() {
        context.kinds.lock().await.insert(key, found.clone());
    }
    Ok(found)
}

/// Deletes an ended trial's run object once: the trial is then marked with
/// [`RUN_DELETED_ANNOTATION`], so a restarted controller does not call the API server again for
/// every finished trial it has.
async fn delete_run_object(
    trial: &TrialResource,
    trials: &Api<TrialResource>,
    context: &Context,
) -> Result<(), ReconcileError> {
    if trial.annotations().contains_key(RUN_DELETED_ANNOTATION) {
        return Ok(());
    }
    delete_run(trial, context).await?;
    let patch = json!({"metadata": {"annotations": {RUN_DELETED_ANNOTATION: "true"}}});
    trials
        .patch(
            &trial.name_any(),
            &PatchParams::default(),
            &Patch::Merge(&patch),
        )
        .await?;
    Ok(())
}

async fn delete_run(trial: &TrialResource, context: &Context) -> Result<(), ReconcileError> {
    let Some(run_spec) = &trial.spec.run_spec else {
        return Ok(());
    };
    let Ok((api_version, kind)) = run_object::type_of(run_spec) else {
        return Ok(());
    };
    let Some(found) = kind_of(context, &api_version, &kind).await? else {
        return Ok(());
    };
    if !found.namespaced {
        return Ok(());
    }
    let api: Api<DynamicObject> = Api::namespaced_with(
        context.client.clone(),
        &trial.namespace().unwrap_or_default(),
        &found.resource,
    );
    match api
        .delete(&trial.name_any(), &DeleteParams::background())
        .await
    {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(status)) if status.code == 404 => Ok(()),
        // A kind the controller may not touch was never created by it either.
        Err(kube::Error::Api(status)) if status.code == 403 => Ok(()),
        Err(error) => Err(error.into()),
    }
}

/// Records the trial's observation and the condition its run leads to; the terminal condition
/// when the trial has ended.
async fn record(
    trial: &TrialResource,
    trials: &Api<TrialResource>,
    observed: &ObservedTrial,
) -> Result<Option<TrialConditionType>, ReconcileError> {
    let required = required_metrics(trial.spec.objective.as_ref(), &trial.spec.constraints);
    let now = Utc::now();
    let mut status = trial.status.clone().unwrap_or_default();
    if status.conditions.is_empty() {
        set_condition(
            &mut status.conditions,
            TrialConditionType::Created,
            ConditionStatus::True,
            "TrialCreated",
            "Trial is created",
            now,
        );
    }
    status.start_time.get_or_insert(now);
    let mut condition = observed.condition;
    if let Some((next, reason, message)) = next_condition(observed, &required) {
        if next.is_terminal() && condition == TrialConditionType::Running {
            set_condition(
                &mut status.conditions,
                TrialConditionType::Running,
                ConditionStatus::False,
                &reason,
                &message,
                now,
            );
        }
        set_condition(
            &mut status.conditions,
            next,
            ConditionStatus::True,
            &reason,
            &message,
            now,
        );
        if next.is_terminal() {
            status.completion_time = Some(now);
        }
        condition = next;
    }
    if !observed.observation.metrics.is_empty() || status.observation.is_some() {
        status.observation = Some(observed.observation.clone());
    }
    if trial.status.as_ref() != Some(&status) {
        let what = format!("the status of trial {}", trial.name_any());
        patch_status(trials, trial, trial.status.as_ref(), &status, &what).await?;
    }
    Ok(condition.is_terminal().then_some(condition))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use sextant_experiment::api::trial::TrialSpec;

    fn job_with(conditions: Value) -> Value {
        json!({"apiVersion": "batch/v1", "kind": "Job", "status": {"conditions": conditions}})
    }

    fn trial(success: &str, failure: &str) -> TrialResource {
        TrialResource::new(
            "t",
            &crate::kube::ApiGroup::Sextant.trials(),
            TrialSpec {
                success_condition: success.into(),
                failure_condition: failure.into(),
                ..Default::default()
            },
        )
    }

    #[tokio::test]
    async fn a_job_over_quota_leaves_the_trial_waiting_and_is_created_on_a_later_try() {
        use std::time::Duration;

        use crate::kube::fixtures::{self, Scenario};

        let (context, verifier) = fixtures::context(Vec::new()).await;
        let trial = Arc::new(fixtures::trial());
        // Refused by the quota: no status is written (the scenario expects none), and the
        // reconcile is tried again after the backoff.
        let exchange = verifier.run(Scenario::JobOverQuota);
        let error = reconcile(trial.clone(), context.clone())
            .await
            .expect_err("the quota refused the Job");
        let verifier = fixtures::finished(exchange).await;
        assert!(
            matches!(
                &error,
                ReconcileError::Finalizer(inner) if matches!(
                    inner.as_ref(),
                    kube::runtime::finalizer::Error::ApplyFailed(ReconcileError::QuotaExceeded(_))
                )
            ),
            "{error}"
        );
        assert_eq!(
            error_policy(trial.clone(), &error, context.clone()),
            ControllerAction::requeue(Duration::from_secs(1))
        );

        // The quota has room now: the Job is made and the trial records it.
        let exchange = verifier.run(Scenario::JobCreated);
        let action = reconcile(trial, context.clone())
            .await
            .expect("the Job is created");
        fixtures::finished(exchange).await;
        assert_eq!(
            action,
            ControllerAction::requeue(context.config.poll_interval)
        );
    }

    #[test]
    fn jobs_are_judged_by_katibs_default_conditions() {
        let trial = trial("", "");
        assert_eq!(judge(&trial, &job_with(json!([]))), RunState::Running);
        assert_eq!(
            judge(
                &trial,
                &job_with(json!([{"type": "Complete", "status": "True"}]))
            ),
            RunState::Succeeded
        );
        assert_eq!(
            judge(
                &trial,
                &job_with(json!([{"type": "Complete", "status": "False"}]))
            ),
            RunState::Running
        );
        assert_eq!(
            judge(
                &trial,
                &job_with(
                    json!([{"type": "Failed", "status": "True", "reason": "BackoffLimitExceeded", "message": "Job has reached the specified backoff limit"}])
                )
            ),
            RunState::Failed {
                reason: "BackoffLimitExceeded".into(),
                message: "Job has reached the specified backoff limit".into()
            }
        );
    }

    #[test]
    fn kinds_without_defaults_need_their_conditions() {
        let custom = json!({"apiVersion": "example.com/v1", "kind": "Training", "status": {"phase": "Succeeded"}});
        match judge(&trial("", ""), &custom) {
            RunState::Failed { reason, message } => {
                assert_eq!(reason, "InvalidCondition");
                assert!(message.contains("spec.successCondition"), "{message}");
            }
            other => panic!("expected a failure, got {other:?}"),
        }
        let given = trial(
            r#"status.[@this].#(phase=="Succeeded")#"#,
            r#"status.[@this].#(phase=="Failed")#"#,
        );
        assert_eq!(judge(&given, &custom), RunState::Succeeded);
        let workflow = json!({"apiVersion": "argoproj.io/v1alpha1", "kind": "Workflow", "status": {"phase": "Running"}});
        assert_eq!(judge(&trial("", ""), &workflow), RunState::Running);
        let failed = json!({"apiVersion": "argoproj.io/v1alpha1", "kind": "Workflow", "status": {"phase": "Failed", "message": "step train failed"}});
        assert_eq!(
            judge(&trial("", ""), &failed),
            RunState::Failed {
                reason: String::new(),
                message: "step train failed".into()
            }
        );
    }
}
