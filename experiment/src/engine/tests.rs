//! Table-driven tests of the engine over observed states.

use chrono::{DateTime, Utc};

use super::*;
use crate::api::common::{
    AlgorithmSpec, Metric, MetricStrategy, MetricStrategyType, ObjectiveSpec, ObjectiveType,
};
use crate::api::experiment::{
    ExperimentConditionType, ExperimentSpec, KEEP_RUNNING_TRIALS_ANNOTATION, ResumePolicy,
};
use crate::api::{ConditionStatus, ObjectMeta, has_true_condition};

fn at(seconds: i64) -> DateTime<Utc> {
    DateTime::from_timestamp(1_700_000_000 + seconds, 0).expect("a valid timestamp")
}

fn experiment(parallel: i32, max_trials: Option<i32>, max_failed: Option<i32>) -> Experiment {
    Experiment {
        api_version: "kubeflow.org/v1beta1".into(),
        kind: "Experiment".into(),
        metadata: ObjectMeta {
            name: "exp".into(),
            ..ObjectMeta::default()
        },
        spec: ExperimentSpec {
            objective: Some(ObjectiveSpec {
                objective_type: Some(ObjectiveType::Minimize),
                goal: Some(0.1),
                objective_metric_name: "loss".into(),
                metric_strategies: vec![MetricStrategy {
                    name: "loss".into(),
                    value: MetricStrategyType::Min,
                }],
                ..ObjectiveSpec::default()
            }),
            algorithm: Some(AlgorithmSpec {
                algorithm_name: "random".into(),
                algorithm_settings: Vec::new(),
            }),
            parallel_trial_count: Some(parallel),
            max_trial_count: max_trials,
            max_failed_trial_count: max_failed,
            resume_policy: Some(ResumePolicy::Never),
            ..ExperimentSpec::default()
        },
        status: None,
    }
}

fn loss(min: &str, latest: &str) -> Observation {
    Observation {
        metrics: vec![Metric {
            name: "loss".into(),
            min: min.into(),
            max: latest.into(),
            latest: latest.into(),
        }],
    }
}

fn trial(
    name: &str,
    condition: TrialConditionType,
    run: RunState,
    observation: Observation,
) -> ObservedTrial {
    ObservedTrial {
        name: name.into(),
        parameter_assignments: vec![ParameterAssignment {
            name: "x".into(),
            value: name.into(),
        }],
        condition,
        run,
        observation,
        stop_requested: false,
    }
}

fn succeeded(name: &str, value: &str) -> ObservedTrial {
    trial(
        name,
        TrialConditionType::Succeeded,
        RunState::Succeeded,
        loss(value, value),
    )
}

fn running(name: &str) -> ObservedTrial {
    trial(
        name,
        TrialConditionType::Running,
        RunState::Running,
        Observation::default(),
    )
}

fn failed(name: &str) -> ObservedTrial {
    trial(
        name,
        TrialConditionType::Failed,
        RunState::Failed {
            reason: String::new(),
            message: String::new(),
        },
        Observation::default(),
    )
}

fn assignment(name: &str) -> TrialAssignment {
    TrialAssignment {
        name: name.into(),
        ..TrialAssignment::default()
    }
}

fn observed(experiment: Experiment, trials: Vec<ObservedTrial>) -> Observed {
    Observed {
        experiment,
        trials,
        suggestion: ObservedSuggestion::default(),
        now: at(100),
    }
}

/// The `Succeeded`/`Failed` condition's reason, or `Running` while running.
fn outcome(plan: &Plan) -> &str {
    let status = &plan.status;
    for condition_type in [
        ExperimentConditionType::Succeeded,
        ExperimentConditionType::Failed,
    ] {
        if let Some(condition) = status
            .conditions
            .iter()
            .find(|c| c.condition_type == condition_type && c.status == ConditionStatus::True)
        {
            return &condition.reason;
        }
    }
    assert!(has_true_condition(
        &status.conditions,
        &ExperimentConditionType::Running
    ));
    "Running"
}

fn requested(plan: &Plan) -> usize {
    plan.actions
        .iter()
        .map(|action| match action {
            Action::RequestSuggestions { count } => *count,
            _ => 0,
        })
        .sum()
}

fn created(plan: &Plan) -> Vec<&str> {
    plan.actions
        .iter()
        .filter_map(|action| match action {
            Action::CreateTrial(assignment) => Some(assignment.name.as_str()),
            _ => None,
        })
        .collect()
}

fn stopped(plan: &Plan) -> Vec<&str> {
    plan.actions
        .iter()
        .filter_map(|action| match action {
            Action::StopTrial { trial_name, .. } => Some(trial_name.as_str()),
            _ => None,
        })
        .collect()
}

#[test]
fn counting_and_completion_rules() {
    struct Case {
        name: &'static str,
        parallel: i32,
        max_trials: Option<i32>,
        max_failed: Option<i32>,
        trials: Vec<ObservedTrial>,
        exhausted: bool,
        outcome: &'static str,
        requested: usize,
        stopped: Vec<&'static str>,
    }
    let cases = vec![
        Case {
            name: "a new experiment asks for parallelTrialCount trials",
            parallel: 3,
            max_trials: Some(10),
            max_failed: None,
            trials: vec![],
            exhausted: false,
            outcome: "Running",
            requested: 3,
            stopped: vec![],
        },
        Case {
            name: "no more than maxTrialCount minus completed",
            parallel: 3,
            max_trials: Some(4),
            max_failed: None,
            trials: vec![succeeded("a", "1"), succeeded("b", "2"), running("c")],
            exhausted: false,
            outcome: "Running",
            requested: 1,
            stopped: vec![],
        },
        Case {
            name: "active trials fill the parallel slots",
            parallel: 2,
            max_trials: Some(10),
            max_failed: None,
            trials: vec![running("a"), running("b")],
            exhausted: false,
            outcome: "Running",
            requested: 0,
            stopped: vec![],
        },
        Case {
            name: "unlimited budget keeps asking",
            parallel: 2,
            max_trials: None,
            max_failed: None,
            trials: vec![succeeded("a", "1"), running("b")],
            exhausted: false,
            outcome: "Running",
            requested: 1,
            stopped: vec![],
        },
        Case {
            name: "maxTrialCount completed trials succeed",
            parallel: 2,
            max_trials: Some(3),
            max_failed: None,
            trials: vec![succeeded("a", "1"), failed("b"), succeeded("c", "3")],
            exhausted: false,
            outcome: "ExperimentMaxTrialsReached",
            requested: 0,
            stopped: vec![],
        },
        Case {
            name: "the goal succeeds at once and stops the running trials",
            parallel: 3,
            max_trials: Some(10),
            max_failed: None,
            trials: vec![succeeded("a", "0.05"), running("b"), running("c")],
            exhausted: false,
            outcome: "ExperimentGoalReached",
            requested: 0,
            stopped: vec!["b", "c"],
        },
        Case {
            name: "maxFailedTrialCount fails it, metrics-unavailable trials counted",
            parallel: 3,
            max_trials: Some(10),
            max_failed: Some(2),
            trials: vec![
                failed("a"),
                trial(
                    "b",
                    TrialConditionType::Running,
                    RunState::Succeeded,
                    Observation::default(),
                ),
                running("c"),
            ],
            exhausted: false,
            outcome: "ExperimentFailed",
            requested: 0,
            stopped: vec!["c"],
        },
        Case {
            name: "maxFailedTrialCount 0 fails on the first failure, not before",
            parallel: 1,
            max_trials: Some(10),
            max_failed: Some(0),
            trials: vec![succeeded("a", "1")],
            exhausted: false,
            outcome: "Running",
            requested: 1,
            stopped: vec![],
        },
        Case {
            name: "an exhausted space waits for the running trials",
            parallel: 3,
            max_trials: Some(10),
            max_failed: None,
            trials: vec![succeeded("a", "1"), running("b")],
            exhausted: true,
            outcome: "Running",
            requested: 0,
            stopped: vec![],
        },
        Case {
            name: "an exhausted space ends the experiment once they finish",
            parallel: 3,
            max_trials: Some(10),
            max_failed: None,
            trials: vec![succeeded("a", "1"), succeeded("b", "2")],
            exhausted: true,
            outcome: "ExperimentSuggestionEndReached",
            requested: 0,
            stopped: vec![],
        },
        Case {
            name: "metrics-unavailable trials count as completed for capacity",
            parallel: 3,
            max_trials: Some(3),
            max_failed: None,
            trials: vec![
                succeeded("a", "1"),
                trial(
                    "b",
                    TrialConditionType::MetricsUnavailable,
                    RunState::Succeeded,
                    Observation::default(),
                ),
                running("c"),
            ],
            exhausted: false,
            outcome: "Running",
            requested: 0,
            stopped: vec![],
        },
        Case {
            name: "lowering parallelTrialCount lets the surplus finish",
            parallel: 1,
            max_trials: Some(10),
            max_failed: None,
            trials: vec![running("a"), running("b"), running("c")],
            exhausted: false,
            outcome: "Running",
            requested: 0,
            stopped: vec![],
        },
    ];
    for case in cases {
        let mut observed = observed(
            experiment(case.parallel, case.max_trials, case.max_failed),
            case.trials,
        );
        observed.suggestion.exhausted = case.exhausted;
        let plan = plan(&observed);
        assert_eq!(outcome(&plan), case.outcome, "{}", case.name);
        assert_eq!(requested(&plan), case.requested, "{}", case.name);
        assert_eq!(stopped(&plan), case.stopped, "{}", case.name);
        assert_eq!(
            plan.finished,
            case.outcome != "Running" && case.stopped.is_empty(),
            "{}",
            case.name
        );
    }
}

#[test]
fn trial_conditions_follow_their_runs() {
    let no_metrics = Observation::default();
    let cases = vec![
        (
            TrialConditionType::Created,
            RunState::NotStarted,
            loss("1", "1"),
            None,
        ),
        (
            TrialConditionType::Created,
            RunState::Running,
            no_metrics.clone(),
            Some((TrialConditionType::Running, "TrialRunning")),
        ),
        (
            TrialConditionType::Running,
            RunState::Running,
            no_metrics.clone(),
            None,
        ),
        (
            TrialConditionType::Running,
            RunState::Succeeded,
            loss("1", "2"),
            Some((TrialConditionType::Succeeded, "TrialSucceeded")),
        ),
        (
            TrialConditionType::Running,
            RunState::Succeeded,
            no_metrics.clone(),
            Some((TrialConditionType::MetricsUnavailable, "MetricsUnavailable")),
        ),
        (
            TrialConditionType::Running,
            RunState::Succeeded,
            loss("unavailable", "unavailable"),
            Some((TrialConditionType::MetricsUnavailable, "MetricsUnavailable")),
        ),
        (
            TrialConditionType::Running,
            RunState::Failed {
                reason: "ExitCode2".into(),
                message: "exit status 2".into(),
            },
            no_metrics.clone(),
            Some((
                TrialConditionType::Failed,
                "TrialFailed. Job reason: ExitCode2",
            )),
        ),
        (
            TrialConditionType::Running,
            RunState::EarlyStopped,
            loss("3", "4"),
            Some((TrialConditionType::EarlyStopped, "TrialEarlyStopped")),
        ),
        (
            TrialConditionType::Running,
            RunState::Killed {
                message: "x".into(),
            },
            no_metrics.clone(),
            Some((TrialConditionType::Killed, "TrialKilled")),
        ),
        (
            TrialConditionType::EarlyStopped,
            RunState::Succeeded,
            loss("3", "4"),
            None,
        ),
        (
            TrialConditionType::Succeeded,
            RunState::Failed {
                reason: String::new(),
                message: String::new(),
            },
            loss("3", "4"),
            None,
        ),
    ];
    for (index, (condition, run, observation, expected)) in cases.into_iter().enumerate() {
        let observed = observed(
            experiment(1, Some(10), None),
            vec![trial("t", condition, run, observation)],
        );
        let plan = plan(&observed);
        let transition = plan.actions.iter().find_map(|action| match action {
            Action::SetTrialCondition {
                condition, reason, ..
            } => Some((*condition, reason.as_str())),
            _ => None,
        });
        assert_eq!(transition, expected, "case {index}");
    }
}

#[test]
fn optimal_trial_follows_metric_strategies() {
    // Strategy min reads `min`; a trial with an unavailable min falls back to latest; a
    // non-numeric value never wins; ties go to the earlier trial.
    let trials = vec![
        trial(
            "a",
            TrialConditionType::Succeeded,
            RunState::Succeeded,
            loss("0.5", "0.9"),
        ),
        trial(
            "b",
            TrialConditionType::Succeeded,
            RunState::Succeeded,
            loss("unavailable", "0.4"),
        ),
        trial(
            "c",
            TrialConditionType::Succeeded,
            RunState::Succeeded,
            loss("abc", "abc"),
        ),
        trial(
            "d",
            TrialConditionType::EarlyStopped,
            RunState::EarlyStopped,
            loss("0.4", "0.7"),
        ),
        trial(
            "e",
            TrialConditionType::Failed,
            RunState::Failed {
                reason: String::new(),
                message: String::new(),
            },
            loss("0.01", "0.01"),
        ),
    ];
    let plan = plan(&observed(experiment(1, Some(10), None), trials.clone()));
    assert_eq!(plan.status.current_optimal_trial.best_trial_name, "b");
    assert_eq!(
        plan.status.current_optimal_trial.parameter_assignments[0].value,
        "b"
    );

    let mut latest = experiment(1, Some(10), None);
    if let Some(objective) = &mut latest.spec.objective {
        objective.metric_strategies[0].value = MetricStrategyType::Latest;
    }
    let plan = super::plan(&observed(latest, trials.clone()));
    assert_eq!(plan.status.current_optimal_trial.best_trial_name, "b");

    let mut maximize = experiment(1, Some(10), None);
    if let Some(objective) = &mut maximize.spec.objective {
        objective.objective_type = Some(ObjectiveType::Maximize);
        objective.goal = None;
        objective.metric_strategies[0].value = MetricStrategyType::Latest;
    }
    let plan = super::plan(&observed(maximize, trials));
    assert_eq!(plan.status.current_optimal_trial.best_trial_name, "a");
}

#[test]
fn status_counts_trials_by_condition() {
    let trials = vec![
        trial(
            "p",
            TrialConditionType::Created,
            RunState::NotStarted,
            Observation::default(),
        ),
        running("r"),
        succeeded("s", "1"),
        failed("f"),
        trial(
            "k",
            TrialConditionType::Killed,
            RunState::Killed {
                message: String::new(),
            },
            Observation::default(),
        ),
        trial(
            "e",
            TrialConditionType::EarlyStopped,
            RunState::EarlyStopped,
            loss("2", "2"),
        ),
        trial(
            "m",
            TrialConditionType::MetricsUnavailable,
            RunState::Succeeded,
            Observation::default(),
        ),
    ];
    let status = compute_status(&observed(experiment(2, None, None), trials));
    assert_eq!(
        (
            status.trials,
            status.trials_pending,
            status.trials_running,
            status.trials_succeeded,
            status.trials_failed,
            status.trials_killed,
            status.trials_early_stopped,
            status.trial_metrics_unavailable
        ),
        (7, 1, 1, 1, 1, 1, 1, 1)
    );
    assert_eq!(status.pending_trial_list, ["p"]);
    assert_eq!(status.metrics_unavailable_trial_list, ["m"]);
    assert_eq!(status.start_time, Some(at(100)));
    assert!(has_true_condition(
        &status.conditions,
        &ExperimentConditionType::Created
    ));
    let json = serde_json::to_value(&status).expect("serializes");
    assert_eq!(json["trialMetricsUnavailable"], 1);
    assert_eq!(json["currentOptimalTrial"]["bestTrialName"], "s");
}

#[test]
fn unused_assignments_become_trials_before_more_are_requested() {
    let mut observed = observed(experiment(3, Some(10), None), vec![running("a")]);
    observed.suggestion.unused_assignments = vec![assignment("b")];
    let plan = plan(&observed);
    assert_eq!(created(&plan), ["b"]);
    assert_eq!(requested(&plan), 1);

    observed.suggestion.unused_assignments =
        vec![assignment("b"), assignment("c"), assignment("d")];
    let plan = super::plan(&observed);
    assert_eq!(created(&plan), ["b", "c"]);
    assert_eq!(requested(&plan), 0);
}

#[test]
fn a_failed_suggestion_fails_the_experiment() {
    let mut observed = observed(experiment(3, Some(10), None), vec![running("a")]);
    observed.suggestion.failure = Some("setting x rejected".into());
    let plan = plan(&observed);
    assert_eq!(outcome(&plan), "ExperimentFailed");
    assert_eq!(stopped(&plan), ["a"]);
    let failed = plan.status.conditions.last().expect("a condition");
    assert_eq!(failed.message, "Suggestion has failed: setting x rejected");
}

#[test]
fn completion_stops_trials_once_and_can_keep_them() {
    let trials = vec![succeeded("a", "0.01"), running("b")];
    let mut observed = observed(experiment(2, Some(10), None), trials);
    let first = plan(&observed);
    assert_eq!(stopped(&first), ["b"]);
    assert!(!first.finished);
    let Action::StopTrial { reason, .. } = first
        .actions
        .iter()
        .find(|action| matches!(action, Action::StopTrial { .. }))
        .expect("a stop")
    else {
        unreachable!("found a StopTrial above")
    };
    assert_eq!(reason, "experiment completed: ExperimentGoalReached");

    // The driver stopped it: no second stop; once killed, the experiment is finished and its
    // completion is kept (conditions are not re-evaluated).
    observed.experiment.status = Some(first.status.clone());
    observed.trials[1].stop_requested = true;
    observed.now = at(200);
    let second = plan(&observed);
    assert!(stopped(&second).is_empty());
    assert!(second.actions.is_empty(), "{:?}", second.actions);
    observed.trials[1].run = RunState::Killed {
        message: "experiment completed".into(),
    };
    let third = plan(&observed);
    assert!(third.finished);
    assert_eq!(third.status.trials_killed, 1);
    assert_eq!(third.status.completion_time, Some(at(100)));
    assert_eq!(outcome(&third), "ExperimentGoalReached");

    let mut keeping = experiment(2, Some(10), None);
    keeping
        .metadata
        .annotations
        .insert(KEEP_RUNNING_TRIALS_ANNOTATION.into(), "true".into());
    let plan = super::plan(&super::tests::observed(
        keeping,
        vec![succeeded("a", "0.01"), running("b")],
    ));
    assert!(stopped(&plan).is_empty());
    assert!(!plan.finished);
}

#[test]
fn plans_are_stable_when_nothing_changes() {
    let mut observed = observed(
        experiment(2, Some(10), None),
        vec![running("a"), running("b")],
    );
    let first = plan(&observed);
    assert!(
        first
            .actions
            .iter()
            .any(|a| matches!(a, Action::SetExperimentStatus(_)))
    );
    observed.experiment.status = Some(first.status.clone());
    observed.now = at(500);
    let second = plan(&observed);
    assert!(second.actions.is_empty(), "{:?}", second.actions);
    assert_eq!(second.status, first.status);
}

#[test]
fn raising_max_trials_restarts_a_long_running_experiment() {
    let trials = vec![succeeded("a", "1"), succeeded("b", "2")];
    for (policy, restarts) in [
        (ResumePolicy::LongRunning, true),
        (ResumePolicy::FromVolume, true),
        (ResumePolicy::Never, false),
    ] {
        let mut experiment = experiment(1, Some(2), None);
        experiment.spec.resume_policy = Some(policy.clone());
        let mut observed = observed(experiment, trials.clone());
        let done = plan(&observed);
        assert_eq!(outcome(&done), "ExperimentMaxTrialsReached");
        assert_eq!(done.status.completion_time, Some(at(100)));

        observed.experiment.status = Some(done.status);
        observed.experiment.spec.max_trial_count = Some(4);
        observed.now = at(300);
        let again = plan(&observed);
        let restarting = has_true_condition(
            &again.status.conditions,
            &ExperimentConditionType::Restarting,
        );
        assert_eq!(restarting, restarts, "{policy}");
        if restarts {
            assert_eq!(outcome(&again), "Running", "{policy}");
            assert_eq!(requested(&again), 1, "{policy}");
            assert_eq!(again.status.completion_time, None);
            // Finishing again turns Restarting and Running false.
            observed.experiment.status = Some(again.status);
            observed.trials.push(succeeded("c", "3"));
            observed.trials.push(succeeded("d", "4"));
            let final_plan = plan(&observed);
            assert_eq!(outcome(&final_plan), "ExperimentMaxTrialsReached");
            assert!(!has_true_condition(
                &final_plan.status.conditions,
                &ExperimentConditionType::Restarting
            ));
            assert!(!has_true_condition(
                &final_plan.status.conditions,
                &ExperimentConditionType::Running
            ));
        } else {
            assert_eq!(outcome(&again), "ExperimentMaxTrialsReached", "{policy}");
            assert_eq!(requested(&again), 0);
        }
    }
}
