//! Conversions between the custom resources and what the engine observes, and the shape of
//! status writes: JSON merge patches that also clear what went away, and the bounded
//! Experiment status.

use chrono::{DateTime, Utc};
use kube::api::ObjectMeta as KubeMeta;
use kube::core::ApiResource;
use serde_json::{Map, Value};

use crate::kube::ExperimentResource;
use crate::kube::STOP_ANNOTATION;
use crate::kube::TrialResource;
use sextant_experiment::api::experiment::{Experiment, ExperimentStatus};
use sextant_experiment::api::trial::{EXPERIMENT_LABEL, TrialConditionType};
use sextant_experiment::api::{ObjectMeta, latest_true_condition};
use sextant_experiment::engine::{ObservedTrial, RunState};

/// The engine's view of an Experiment resource of the kind `kind` (not yet defaulted).
pub(crate) fn experiment_of(resource: &ExperimentResource, kind: &ApiResource) -> Experiment {
    Experiment {
        api_version: kind.api_version.clone(),
        kind: sextant_experiment::api::experiment::EXPERIMENT_KIND.into(),
        metadata: meta_of(&resource.metadata),
        spec: resource.spec.clone(),
        status: resource.status.clone(),
    }
}

fn meta_of(meta: &KubeMeta) -> ObjectMeta {
    ObjectMeta {
        name: meta.name.clone().unwrap_or_default(),
        namespace: meta.namespace.clone(),
        labels: meta.labels.clone().unwrap_or_default(),
        annotations: meta.annotations.clone().unwrap_or_default(),
        uid: meta.uid.clone(),
        resource_version: meta.resource_version.clone(),
        generation: meta.generation,
        creation_timestamp: meta
            .creation_timestamp
            .as_ref()
            .and_then(|time| chrono_time(time.0)),
    }
}

/// A Kubernetes time as chrono's. Before 1970 jiff counts the fraction of a second down from
/// the whole second (negative), chrono up from the second before.
pub(crate) fn chrono_time(time: k8s_openapi::jiff::Timestamp) -> Option<DateTime<Utc>> {
    let (mut seconds, mut nanoseconds) = (time.as_second(), time.subsec_nanosecond());
    if nanoseconds < 0 {
        seconds -= 1;
        nanoseconds += 1_000_000_000;
    }
    DateTime::from_timestamp(seconds, u32::try_from(nanoseconds).ok()?)
}

/// The trial's latest condition that is `True`, with its reason and message; `Created` when it
/// has none yet.
pub(crate) fn current_condition(trial: &TrialResource) -> (TrialConditionType, String, String) {
    trial
        .status
        .as_ref()
        .and_then(|status| latest_true_condition(&status.conditions))
        .map(|condition| {
            (
                condition.condition_type,
                condition.reason.clone(),
                condition.message.clone(),
            )
        })
        .unwrap_or((TrialConditionType::Created, String::new(), String::new()))
}

/// The engine's view of a Trial: its run state is what its recorded condition says, since the
/// trial controller records every change of the run as a condition.
pub(crate) fn observed_trial(trial: &TrialResource) -> ObservedTrial {
    let (condition, reason, message) = current_condition(trial);
    let run = match condition {
        TrialConditionType::Created => RunState::NotStarted,
        TrialConditionType::Running => RunState::Running,
        TrialConditionType::Succeeded | TrialConditionType::MetricsUnavailable => {
            RunState::Succeeded
        }
        TrialConditionType::Failed => RunState::Failed { reason, message },
        TrialConditionType::EarlyStopped => RunState::EarlyStopped,
        TrialConditionType::Killed => RunState::Killed { message },
    };
    ObservedTrial {
        name: trial.metadata.name.clone().unwrap_or_default(),
        parameter_assignments: trial.spec.parameter_assignments.clone(),
        condition,
        run,
        observation: trial
            .status
            .as_ref()
            .and_then(|status| status.observation.clone())
            .unwrap_or_default(),
        stop_requested: stop_reason(trial).is_some(),
    }
}

/// The key the trial's observation log is stored under.
pub(crate) fn log_key(trial: &TrialResource) -> String {
    crate::kube::observation_log_key(
        trial.metadata.namespace.as_deref().unwrap_or_default(),
        trial.metadata.name.as_deref().unwrap_or_default(),
    )
}

/// Why the experiment controller asked for this trial to stop, if it did.
pub(crate) fn stop_reason(trial: &TrialResource) -> Option<&str> {
    trial
        .metadata
        .annotations
        .as_ref()
        .and_then(|annotations| annotations.get(STOP_ANNOTATION))
        .map(String::as_str)
}

/// Whether `trial` belongs to the experiment with this name and uid.
pub(crate) fn belongs_to(trial: &TrialResource, experiment: &ExperimentResource) -> bool {
    let owner_uid = experiment.metadata.uid.as_deref();
    trial.metadata.namespace == experiment.metadata.namespace
        && trial
            .metadata
            .labels
            .as_ref()
            .and_then(|labels| labels.get(EXPERIMENT_LABEL))
            == experiment.metadata.name.as_ref()
        && trial
            .metadata
            .owner_references
            .as_ref()
            .is_some_and(|owners| {
                owners
                    .iter()
                    .any(|owner| Some(owner.uid.as_str()) == owner_uid)
            })
}

/// The ordinal of a trial named `<experiment>-<ordinal>`.
pub(crate) fn ordinal(experiment_name: &str, trial_name: &str) -> Option<u64> {
    trial_name
        .strip_prefix(experiment_name)?
        .strip_prefix('-')?
        .parse()
        .ok()
}

/// The name of an experiment's trial with this ordinal.
pub(crate) fn trial_name(experiment_name: &str, ordinal: u64) -> String {
    format!("{experiment_name}-{ordinal}")
}

/// The status as written to the cluster: the names of finished trials are left out (their
/// counts stay), so an Experiment with ten thousand trials stays as small as one with ten.
/// The running and pending lists are kept: `parallelTrialCount` bounds them.
pub(crate) fn bounded(status: &ExperimentStatus) -> ExperimentStatus {
    ExperimentStatus {
        succeeded_trial_list: Vec::new(),
        failed_trial_list: Vec::new(),
        killed_trial_list: Vec::new(),
        early_stopped_trial_list: Vec::new(),
        metrics_unavailable_trial_list: Vec::new(),
        ..status.clone()
    }
}

/// Whether two statuses differ in more than their `lastReconcileTime`.
pub(crate) fn differs(previous: Option<&ExperimentStatus>, next: &ExperimentStatus) -> bool {
    let Some(previous) = previous else {
        return true;
    };
    let mut previous = bounded(previous);
    let mut next = bounded(next);
    previous.last_reconcile_time = None;
    next.last_reconcile_time = None;
    previous != next
}

/// A JSON merge patch (RFC 7386) taking `old` to `new`: fields of `old` missing from `new`
/// become `null`, so that a list or field that emptied (and so is not serialized) is cleared.
pub(crate) fn merge_patch(old: &Value, new: &Value) -> Value {
    match (old, new) {
        (Value::Object(old_fields), Value::Object(new_fields)) => {
            let mut patch = Map::new();
            for (key, new_value) in new_fields {
                let value = match old_fields.get(key) {
                    Some(old_value) => merge_patch(old_value, new_value),
                    None => new_value.clone(),
                };
                patch.insert(key.clone(), value);
            }
            for key in old_fields.keys() {
                if !new_fields.contains_key(key) {
                    patch.insert(key.clone(), Value::Null);
                }
            }
            Value::Object(patch)
        }
        (_, new) => new.clone(),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn times_before_1970_keep_their_fraction_of_a_second() {
        let time: k8s_openapi::jiff::Timestamp = "1969-12-31T23:59:58.25Z".parse().expect("a time");
        let converted = chrono_time(time).expect("in range");
        assert_eq!(converted.to_rfc3339(), "1969-12-31T23:59:58.250+00:00");
        let time: k8s_openapi::jiff::Timestamp = "2024-06-01T10:00:00.5Z".parse().expect("a time");
        assert_eq!(
            chrono_time(time).expect("in range").to_rfc3339(),
            "2024-06-01T10:00:00.500+00:00"
        );
    }

    /// The scale rule of the issue: an Experiment with 10,000 finished trials, as written to
    /// the cluster, stays under 100 KiB (Katib's lists of trial names would take about 200 KiB
    /// at this count, and grow without bound).
    #[test]
    fn an_experiment_with_ten_thousand_trials_stays_small() {
        use sextant_experiment::api::common::{Metric, Observation, ParameterAssignment};
        use sextant_experiment::engine::{Observed, ObservedSuggestion, plan};

        let text = std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../examples/kubernetes/random-job.yaml"
        ))
        .expect("the example");
        let mut resource: ExperimentResource = serde_yaml::from_str(&text).expect("parses");
        resource.spec.max_trial_count = Some(10_000);
        let mut experiment =
            experiment_of(&resource, &crate::kube::ApiGroup::Sextant.experiments());
        sextant_experiment::defaults::apply_defaults(&mut experiment);
        let trials: Vec<ObservedTrial> = (0..10_000u32)
            .map(|index| ObservedTrial {
                name: trial_name("random-job", u64::from(index)),
                parameter_assignments: vec![
                    ParameterAssignment {
                        name: "lr".into(),
                        value: format!("0.0{index}"),
                    },
                    ParameterAssignment {
                        name: "layers".into(),
                        value: (index % 4 + 1).to_string(),
                    },
                ],
                condition: TrialConditionType::Succeeded,
                run: RunState::Succeeded,
                observation: Observation {
                    metrics: vec![Metric {
                        name: "loss".into(),
                        min: format!("{}", 1.0 / f64::from(index + 1)),
                        max: "1".into(),
                        latest: format!("{}", 1.0 / f64::from(index + 1)),
                    }],
                },
                stop_requested: false,
            })
            .collect();
        let status = plan(&Observed {
            experiment,
            trials,
            suggestion: ObservedSuggestion::default(),
            now: Utc::now(),
        })
        .status;
        assert_eq!(status.trials_succeeded, 10_000);
        let unbounded = serde_json::to_vec(&status).expect("JSON").len();
        resource.status = Some(bounded(&status));
        let written = serde_json::to_vec(&resource).expect("JSON").len();
        eprintln!(
            "experiment with 10,000 trials: {written} bytes as written ({unbounded} bytes of status with Katib's lists)"
        );
        assert!(written < 100 * 1024, "{written} bytes");
        assert!(unbounded > written, "the lists were not left out");
    }

    #[test]
    fn merge_patches_clear_what_went_away() {
        let old = json!({"a": 1, "list": ["x"], "nested": {"keep": 1, "gone": 2}});
        let new = json!({"a": 2, "nested": {"keep": 1}});
        assert_eq!(
            merge_patch(&old, &new),
            json!({"a": 2, "list": null, "nested": {"keep": 1, "gone": null}})
        );
        assert_eq!(merge_patch(&json!(null), &new), new);
    }

    #[test]
    fn ordinals_are_read_back_from_names() {
        assert_eq!(ordinal("mnist", &trial_name("mnist", 12)), Some(12));
        assert_eq!(ordinal("mnist", "mnist-x"), None);
        assert_eq!(ordinal("mnist", "mnist2-3"), None);
        assert_eq!(ordinal("mnist-a", "mnist-3"), None);
    }

    #[test]
    fn bounded_statuses_keep_counts_and_active_lists_only() {
        let status = ExperimentStatus {
            succeeded_trial_list: vec!["a".into(); 3],
            running_trial_list: vec!["b".into()],
            trials: 4,
            trials_succeeded: 3,
            ..Default::default()
        };
        let bounded = bounded(&status);
        assert!(bounded.succeeded_trial_list.is_empty());
        assert_eq!(bounded.running_trial_list, ["b"]);
        assert_eq!((bounded.trials, bounded.trials_succeeded), (4, 3));
        assert!(!differs(Some(&bounded), &status));
        let mut later = status.clone();
        later.last_reconcile_time = Some(Utc::now());
        assert!(!differs(Some(&status), &later));
        later.trials_succeeded = 4;
        assert!(differs(Some(&status), &later));
    }
}
