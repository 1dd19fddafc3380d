//! The status of an experiment with several objectives and outcome constraints: the Pareto
//! front against a brute-force front, and no infeasible trial ever reported optimal.

use chrono::DateTime;
use proptest::prelude::*;

use super::*;
use crate::api::ObjectMeta;
use crate::api::common::{
    AlgorithmSpec, Metric, MetricStrategyType, ObjectiveMetricSpec, ObjectiveSpec, ObjectiveType,
};
use crate::api::experiment::{ConstraintSpec, ExperimentSpec};
use crate::defaults::apply_defaults;

/// Minimize `f1`, maximize `f2`, keep `cost` at most 0.5.
fn experiment() -> Experiment {
    let mut experiment = Experiment {
        api_version: "sextant.dev/v1beta1".into(),
        kind: "Experiment".into(),
        metadata: ObjectMeta {
            name: "front".into(),
            ..ObjectMeta::default()
        },
        spec: ExperimentSpec {
            objective: Some(ObjectiveSpec {
                objectives: vec![
                    ObjectiveMetricSpec {
                        metric_name: "f1".into(),
                        objective_type: Some(ObjectiveType::Minimize),
                    },
                    ObjectiveMetricSpec {
                        metric_name: "f2".into(),
                        objective_type: Some(ObjectiveType::Maximize),
                    },
                ],
                additional_metric_names: vec!["cost".into()],
                ..ObjectiveSpec::default()
            }),
            algorithm: Some(AlgorithmSpec {
                algorithm_name: "nsga2".into(),
                algorithm_settings: Vec::new(),
            }),
            constraints: vec![ConstraintSpec {
                metric_name: "cost".into(),
                max: Some(0.5),
                min: None,
            }],
            ..ExperimentSpec::default()
        },
        status: None,
    };
    apply_defaults(&mut experiment);
    experiment
}

fn metric(name: &str, value: f64) -> Metric {
    let text = value.to_string();
    Metric {
        name: name.into(),
        min: text.clone(),
        max: text.clone(),
        latest: text,
    }
}

fn succeeded(index: usize, metrics: Vec<Metric>) -> ObservedTrial {
    ObservedTrial {
        name: format!("front-{index}"),
        parameter_assignments: Vec::new(),
        condition: TrialConditionType::Succeeded,
        run: RunState::Succeeded,
        observation: Observation { metrics },
        stop_requested: false,
    }
}

fn status(trials: Vec<ObservedTrial>) -> ExperimentStatus {
    compute_status(&Observed {
        experiment: experiment(),
        trials,
        suggestion: ObservedSuggestion::default(),
        now: DateTime::from_timestamp(1_700_000_000, 0).expect("a time"),
    })
}

/// The front by definition, with the values as reported: the feasible points that no other
/// feasible point is at least as good as in both objectives and better in one.
fn brute_force_front(points: &[(f64, f64, f64)]) -> Vec<String> {
    let feasible = |p: &(f64, f64, f64)| p.2 <= 0.5;
    let dominates = |a: &(f64, f64, f64), b: &(f64, f64, f64)| {
        a.0 <= b.0 && a.1 >= b.1 && (a.0 < b.0 || a.1 > b.1)
    };
    points
        .iter()
        .enumerate()
        .filter(|(_, p)| feasible(p))
        .filter(|(_, p)| !points.iter().any(|q| feasible(q) && dominates(q, p)))
        .map(|(index, _)| format!("front-{index}"))
        .collect()
}

proptest! {
    #[test]
    fn the_front_is_the_brute_force_front_and_never_holds_an_infeasible_trial(
        // Values on a coarse grid, so ties and duplicates happen.
        points in prop::collection::vec((0u8..8, 0u8..8, 0u8..10), 1..40)
    ) {
        let points: Vec<(f64, f64, f64)> = points
            .into_iter()
            .map(|(f1, f2, cost)| (f64::from(f1), f64::from(f2), f64::from(cost) / 10.0))
            .collect();
        let trials = points
            .iter()
            .enumerate()
            .map(|(index, (f1, f2, cost))| {
                succeeded(index, vec![metric("f1", *f1), metric("f2", *f2), metric("cost", *cost)])
            })
            .collect();
        let status = status(trials);
        let front: Vec<String> = status
            .pareto_optimal_trials
            .iter()
            .map(|trial| trial.best_trial_name.clone())
            .collect();
        prop_assert_eq!(&front, &brute_force_front(&points));
        // The optimal trial is the feasible one best on the first objective, if any.
        let best = points
            .iter()
            .enumerate()
            .filter(|(_, p)| p.2 <= 0.5)
            .min_by(|(_, a), (_, b)| a.0.total_cmp(&b.0))
            .map(|(index, _)| format!("front-{index}"));
        prop_assert_eq!(
            Some(status.current_optimal_trial.best_trial_name.clone()).filter(|n| !n.is_empty()),
            best
        );
    }
}

#[test]
fn a_trial_without_a_constrained_metric_is_metrics_unavailable() {
    let mut trial = succeeded(0, vec![metric("f1", 1.0), metric("f2", 1.0)]);
    trial.condition = TrialConditionType::Running;
    let experiment = experiment();
    let required = required_metrics(
        experiment.spec.objective.as_ref(),
        &experiment.spec.constraints,
    );
    assert_eq!(required, ["f1", "f2", "cost"]);
    let (condition, reason, _) = next_condition(&trial, &required).expect("a change");
    assert_eq!(
        (condition, reason.as_str()),
        (TrialConditionType::MetricsUnavailable, "MetricsUnavailable")
    );
    trial.observation.metrics.push(metric("cost", 0.9));
    let (condition, _, _) = next_condition(&trial, &required).expect("a change");
    assert_eq!(condition, TrialConditionType::Succeeded);
}

#[test]
fn defaulting_makes_the_first_objective_katibs_single_one_with_its_own_strategies() {
    let experiment = experiment();
    let objective = experiment.spec.objective.expect("an objective");
    assert_eq!(objective.objective_metric_name, "f1");
    assert_eq!(objective.objective_type, Some(ObjectiveType::Minimize));
    assert_eq!(objective.strategy_for("f1"), MetricStrategyType::Min);
    assert_eq!(objective.strategy_for("f2"), MetricStrategyType::Max);
    assert_eq!(
        objective.metric_names().collect::<Vec<_>>(),
        ["f1", "f2", "cost"]
    );
}
