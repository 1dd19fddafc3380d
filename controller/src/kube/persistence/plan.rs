//! What to write so the store holds what the cluster holds: a pure function of the rows a
//! cluster object should have ([`super::rows`]) and the rows stored now, so every decision is
//! tested without a cluster or a database.
//!
//! A row is written only when it differs from the stored one, so a second pass over the same
//! cluster state writes nothing. What goes when the cluster object goes:
//! - an Experiment's rows (the experiment and its trials) go with it: the controller deletes its
//!   trials' observation logs with them, so a kept row would have lost its metrics;
//! - a Trial's row goes with the Trial;
//! - a finished PipelineRun's rows are kept (Succeeded or Failed: a run is history, as Kubeflow
//!   Pipelines keeps a run after its Workflow is garbage-collected); an unfinished one's go, since
//!   nothing would ever end it in the store.

use chrono::{DateTime, Utc};
use sextant_pipeline::run_store::{RunRecord, StepRecord, StoredRun};
use sextant_store::time::truncate_to_microseconds;
use sextant_store::{ExperimentRecord, MirroredTrial, StoredTrial};

use super::rows::{ExperimentRows, RunRows};

/// One write to the store.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Write {
    /// Create or replace an experiment's row.
    Experiment {
        /// `<namespace>.<name>`.
        name: String,
        /// The Experiment, JSON text.
        spec: String,
        /// Its status, JSON text.
        status: String,
        /// Its creation time.
        created_at: DateTime<Utc>,
    },
    /// Create or replace a trial's row (after its experiment's).
    Trial(MirroredTrial),
    /// Delete a trial's row.
    DeleteTrial(String),
    /// Delete an experiment's row and its trials'.
    DeleteExperiment(String),
    /// Create or replace a run's record (before its steps').
    Run(RunRecord),
    /// Create or replace one step instance's record.
    Step {
        /// The run's id.
        run_id: String,
        /// The instance.
        step: StepRecord,
    },
    /// Delete a run's record and its steps'.
    DeleteRun(String),
}

/// An experiment's rows as stored.
#[derive(Debug, Clone)]
pub(crate) struct StoredExperiment {
    /// Its row.
    pub(crate) record: ExperimentRecord,
    /// Its trials' rows.
    pub(crate) trials: Vec<StoredTrial>,
}

/// The writes that bring an experiment's stored rows to `desired` (`None`: the Experiment is
/// gone from the cluster).
pub(crate) fn plan_experiment(
    desired: Option<&ExperimentRows>,
    stored: Option<&StoredExperiment>,
) -> Vec<Write> {
    let Some(desired) = desired else {
        return stored
            .map(|stored| Write::DeleteExperiment(stored.record.name.clone()))
            .into_iter()
            .collect();
    };
    let mut writes = Vec::new();
    let same_experiment = stored.is_some_and(|stored| {
        stored.record.spec == desired.spec
            && stored.record.status == desired.status
            && stored.record.created_at == truncate_to_microseconds(desired.created_at)
    });
    if !same_experiment {
        writes.push(Write::Experiment {
            name: desired.name.clone(),
            spec: desired.spec.clone(),
            status: desired.status.clone(),
            created_at: desired.created_at,
        });
    }
    let stored_trials = stored.map_or(&[][..], |stored| &stored.trials[..]);
    for trial in &desired.trials {
        let current = stored_trials
            .iter()
            .find(|stored| stored.name == trial.trial.name);
        if !current.is_some_and(|current| same_trial(current, trial)) {
            writes.push(Write::Trial(trial.clone()));
        }
    }
    for stored in stored_trials {
        if !desired
            .trials
            .iter()
            .any(|trial| trial.trial.name == stored.name)
        {
            writes.push(Write::DeleteTrial(stored.name.clone()));
        }
    }
    writes
}

/// Whether the stored trial holds what `mirrored` would write (times as the store keeps
/// them, to the microsecond).
fn same_trial(stored: &StoredTrial, mirrored: &MirroredTrial) -> bool {
    let micros = |time: Option<DateTime<Utc>>| time.map(truncate_to_microseconds);
    let (trial, condition) = (&mirrored.trial, &mirrored.condition);
    stored.name == trial.name
        && stored.experiment_name == trial.experiment_name
        && stored.spec == trial.spec
        && stored.assignments == trial.assignments
        && stored.labels == trial.labels
        && stored.condition_type == condition.condition_type
        && stored.reason == condition.reason
        && stored.message == condition.message
        && stored.observation == mirrored.observation
        && stored.created_at == truncate_to_microseconds(mirrored.created_at)
        && stored.start_time == micros(condition.start_time)
        && stored.completion_time == micros(condition.completion_time)
}

/// The writes that bring a run's stored records to `desired` (`None`: the PipelineRun is gone
/// from the cluster).
///
/// The store keeps step instances in the order first written; when the stored ones are not
/// the run's first instances in its status's order (the status reordered them, or dropped
/// one), the run is written again whole, so its order is the status's whatever was seen
/// before.
pub(crate) fn plan_run(desired: Option<&RunRows>, stored: Option<&StoredRun>) -> Vec<Write> {
    let Some(desired) = desired else {
        return stored
            .filter(|stored| stored.run.phase.is_active())
            .map(|stored| Write::DeleteRun(stored.run.run_id.clone()))
            .into_iter()
            .collect();
    };
    let run_id = &desired.run.run_id;
    let all = || {
        std::iter::once(Write::Run(desired.run.clone()))
            .chain(desired.steps.iter().map(|step| Write::Step {
                run_id: run_id.clone(),
                step: step.clone(),
            }))
            .collect::<Vec<_>>()
    };
    let Some(stored) = stored else {
        return all();
    };
    let in_order = stored.steps.len() <= desired.steps.len()
        && stored
            .steps
            .iter()
            .zip(&desired.steps)
            .all(|(stored, desired)| {
                (&stored.step, stored.item_index) == (&desired.step, desired.item_index)
            });
    if !in_order {
        let mut writes = vec![Write::DeleteRun(run_id.clone())];
        writes.extend(all());
        return writes;
    }
    let mut writes = Vec::new();
    if stored.run != desired.run {
        writes.push(Write::Run(desired.run.clone()));
    }
    for (index, step) in desired.steps.iter().enumerate() {
        if stored.steps.get(index) != Some(step) {
            writes.push(Write::Step {
                run_id: run_id.clone(),
                step: step.clone(),
            });
        }
    }
    writes
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::path::PathBuf;

    use chrono::TimeZone;
    use sextant_pipeline::StepOutputs;
    use sextant_pipeline::run_store::{RunPhase, StepPhase};
    use sextant_store::{NewTrial, TrialConditionUpdate};

    use super::*;

    fn time(second: u32) -> DateTime<Utc> {
        // Nanoseconds the store cuts to microseconds: compared as stored, they are equal.
        Utc.with_ymd_and_hms(2026, 1, 2, 3, 4, second).unwrap() + chrono::Duration::nanoseconds(7)
    }

    fn mirrored_trial(name: &str, condition: &str) -> MirroredTrial {
        MirroredTrial {
            trial: NewTrial {
                name: name.into(),
                experiment_name: "ns.exp".into(),
                spec: "{}".into(),
                assignments: r#"[{"name":"lr","value":"0.1"}]"#.into(),
                labels: "{}".into(),
            },
            condition: TrialConditionUpdate {
                condition_type: condition.into(),
                reason: String::new(),
                message: String::new(),
                start_time: Some(time(1)),
                completion_time: None,
            },
            observation: None,
            created_at: time(0),
        }
    }

    /// The row the store holds after writing `trial`.
    fn stored_trial(trial: &MirroredTrial) -> StoredTrial {
        StoredTrial {
            name: trial.trial.name.clone(),
            experiment_name: trial.trial.experiment_name.clone(),
            spec: trial.trial.spec.clone(),
            assignments: trial.trial.assignments.clone(),
            labels: trial.trial.labels.clone(),
            condition_type: trial.condition.condition_type.clone(),
            reason: trial.condition.reason.clone(),
            message: trial.condition.message.clone(),
            observation: trial.observation.clone(),
            created_at: truncate_to_microseconds(trial.created_at),
            start_time: trial.condition.start_time.map(truncate_to_microseconds),
            completion_time: trial
                .condition
                .completion_time
                .map(truncate_to_microseconds),
            updated_at: time(30),
        }
    }

    fn experiment_rows(trials: Vec<MirroredTrial>) -> ExperimentRows {
        ExperimentRows {
            name: "ns.exp".into(),
            spec: r#"{"spec":1}"#.into(),
            status: r#"{"trials":1}"#.into(),
            created_at: time(0),
            trials,
        }
    }

    fn stored_experiment(rows: &ExperimentRows) -> StoredExperiment {
        StoredExperiment {
            record: ExperimentRecord {
                name: rows.name.clone(),
                spec: rows.spec.clone(),
                status: rows.status.clone(),
                resource_version: 3,
                created_at: truncate_to_microseconds(rows.created_at),
                updated_at: time(30),
            },
            trials: rows.trials.iter().map(stored_trial).collect(),
        }
    }

    #[test]
    fn an_experiment_is_written_before_its_trials_and_not_again_once_stored() {
        let rows = experiment_rows(vec![
            mirrored_trial("ns.exp-1", "Running"),
            mirrored_trial("ns.exp-2", "Created"),
        ]);
        let writes = plan_experiment(Some(&rows), None);
        assert!(matches!(&writes[0], Write::Experiment { name, .. } if name == "ns.exp"));
        assert_eq!(
            writes[1..],
            [
                Write::Trial(rows.trials[0].clone()),
                Write::Trial(rows.trials[1].clone())
            ]
        );
        assert_eq!(
            plan_experiment(Some(&rows), Some(&stored_experiment(&rows))),
            []
        );
    }

    #[test]
    fn only_what_changed_is_written_and_what_went_is_deleted() {
        let before = experiment_rows(vec![
            mirrored_trial("ns.exp-1", "Running"),
            mirrored_trial("ns.exp-2", "Running"),
        ]);
        let stored = stored_experiment(&before);
        let mut after = before.clone();
        after.trials[0].condition.condition_type = "Succeeded".into();
        after.trials[0].condition.completion_time = Some(time(9));
        after.trials.remove(1);
        assert_eq!(
            plan_experiment(Some(&after), Some(&stored)),
            [
                Write::Trial(after.trials[0].clone()),
                Write::DeleteTrial("ns.exp-2".into())
            ]
        );
        after.status = r#"{"trials":2}"#.into();
        assert!(matches!(
            plan_experiment(Some(&after), Some(&stored))[0],
            Write::Experiment { .. }
        ));
        assert_eq!(
            plan_experiment(None, Some(&stored)),
            [Write::DeleteExperiment("ns.exp".into())]
        );
        assert_eq!(plan_experiment(None, None), []);
    }

    fn step(name: &str, phase: StepPhase) -> StepRecord {
        StepRecord {
            step: name.into(),
            item_index: None,
            phase,
            attempt: 1,
            cache_key: None,
            outputs: StepOutputs::default(),
            message: None,
            started_at: Some(time(2)),
            finished_at: None,
        }
    }

    fn run_rows(phase: RunPhase, steps: Vec<StepRecord>) -> RunRows {
        RunRows {
            run: RunRecord {
                run_id: "ns.run".into(),
                pipeline_name: "p".into(),
                source: "spec".into(),
                params: BTreeMap::new(),
                run_dir: PathBuf::new(),
                cache_enabled: false,
                phase,
                created_at: time(0),
                started_at: Some(time(1)),
                finished_at: None,
                message: None,
                trial: None,
                cluster_namespace: Some("ns".into()),
            },
            steps,
        }
    }

    fn stored_run(rows: &RunRows) -> StoredRun {
        StoredRun {
            run: rows.run.clone(),
            steps: rows.steps.clone(),
        }
    }

    #[test]
    fn a_run_is_written_once_then_only_its_changed_and_new_steps() {
        let first = run_rows(RunPhase::Running, vec![step("a", StepPhase::Running)]);
        let writes = plan_run(Some(&first), None);
        assert_eq!(writes.len(), 2);
        assert!(matches!(&writes[0], Write::Run(run) if run.run_id == "ns.run"));
        let stored = stored_run(&first);
        assert_eq!(plan_run(Some(&first), Some(&stored)), []);
        let second = run_rows(
            RunPhase::Running,
            vec![
                step("a", StepPhase::Succeeded),
                step("b", StepPhase::Running),
            ],
        );
        assert_eq!(
            plan_run(Some(&second), Some(&stored)),
            second
                .steps
                .iter()
                .map(|step| Write::Step {
                    run_id: "ns.run".into(),
                    step: step.clone()
                })
                .collect::<Vec<_>>()
        );
    }

    #[test]
    fn steps_stored_out_of_the_status_order_are_written_again_whole() {
        let seen = run_rows(RunPhase::Running, vec![step("b", StepPhase::Running)]);
        let now = run_rows(
            RunPhase::Running,
            vec![step("a", StepPhase::Running), step("b", StepPhase::Running)],
        );
        let writes = plan_run(Some(&now), Some(&stored_run(&seen)));
        assert_eq!(writes[0], Write::DeleteRun("ns.run".into()));
        assert_eq!(writes.len(), 4, "the run and both steps again: {writes:?}");
    }

    #[test]
    fn a_finished_run_outlives_its_pipeline_run_and_an_unfinished_one_does_not() {
        let finished = run_rows(RunPhase::Succeeded, vec![step("a", StepPhase::Succeeded)]);
        assert_eq!(plan_run(None, Some(&stored_run(&finished))), []);
        let running = run_rows(RunPhase::Running, vec![step("a", StepPhase::Running)]);
        assert_eq!(
            plan_run(None, Some(&stored_run(&running))),
            [Write::DeleteRun("ns.run".into())]
        );
    }
}
