//! `spec.warmStart`: its store-free validation rules, each problem by field path; enqueued
//! points first, in order, each once; and which trials of an earlier experiment the algorithm
//! learns from.

use std::collections::BTreeMap;

use sextant_experiment::api::common::{Metric, Observation, ParameterAssignment};
use sextant_experiment::api::trial::TrialConditionType;
use sextant_experiment::defaults::with_defaults;
use sextant_experiment::engine::{ObservedTrial, RunState};
use sextant_experiment::parse::parse_experiment;
use sextant_experiment::validation::validate;
use sextant_experiment::warm_start::{ENQUEUED_INDEX_LABEL, next_enqueued, source_history};
use sextant_experiment::{Experiment, ValidationErrors};

/// An experiment `name` over `lr` (double in [0.01, 1]), `layers` (int 1..4) and `optimizer`
/// (sgd or adam), minimizing `loss`, with `algorithm` and `warm_start` as the YAML of
/// `spec.warmStart`.
fn experiment(name: &str, algorithm: &str, warm_start: &str) -> String {
    format!(
        r#"
apiVersion: kubeflow.org/v1beta1
kind: Experiment
metadata: {{name: {name}}}
spec:
  maxTrialCount: 4
  parallelTrialCount: 2
  objective: {{type: minimize, objectiveMetricName: loss}}
  algorithm: {{algorithmName: {algorithm}}}
  parameters:
    - {{name: lr, parameterType: double, feasibleSpace: {{min: "0.01", max: "1"}}}}
    - {{name: layers, parameterType: int, feasibleSpace: {{min: "1", max: "4"}}}}
    - {{name: optimizer, parameterType: categorical, feasibleSpace: {{list: [sgd, adam]}}}}
  warmStart:
{warm_start}
  trialTemplate:
    trialSpec:
      apiVersion: sextant.dev/v1beta1
      kind: Process
      spec: {{command: ["true"]}}
"#
    )
}

fn parsed(text: &str) -> Experiment {
    with_defaults(parse_experiment(text).expect("the spec parses"))
}

fn rules(errors: &ValidationErrors) -> Vec<String> {
    errors.0.iter().map(ToString::to_string).collect()
}

#[test]
fn enqueued_points_and_sources_that_fit_validate() {
    let spec = experiment(
        "second",
        "tpe",
        r#"    fromExperiments: [first, other-first]
    enqueue:
      - {lr: 0.1, layers: 2, optimizer: adam}
      - {lr: "0.5", layers: "4", optimizer: sgd}"#,
    );
    validate(&parsed(&spec)).expect("valid");
}

#[test]
fn bad_enqueued_points_are_named_by_entry_and_parameter() {
    let spec = experiment(
        "second",
        "tpe",
        r#"    enqueue:
      - {lr: 0.1, layers: 2, optimizer: adam}
      - {lr: 5, layers: 2.5, optimizer: rmsprop}
      - {lr: true, momentum: 0.9}
      - {lr: 0.001, layers: 0, optimizer: sgd}
      - {lr: 0.1, layers: 1, optimizer: sgd}"#,
    );
    let errors = validate(&parsed(&spec)).expect_err("invalid");
    assert_eq!(
        rules(&errors),
        [
            "spec.warmStart.enqueue: has 5 points but spec.maxTrialCount is 4: every enqueued \
             point is a trial of the experiment",
            "spec.warmStart.enqueue[1].lr: 5 is above max 1",
            "spec.warmStart.enqueue[1].layers: 2.5 is not a whole number",
            "spec.warmStart.enqueue[1].optimizer: rmsprop is not in the list",
            "spec.warmStart.enqueue[2].momentum: names no parameter of spec.parameters",
            "spec.warmStart.enqueue[2].lr: true must be a number or a string",
            "spec.warmStart.enqueue[2].layers: is required: an enqueued point gives every \
             active parameter a value",
            "spec.warmStart.enqueue[2].optimizer: is required: an enqueued point gives every \
             active parameter a value",
            "spec.warmStart.enqueue[3].lr: 0.001 is below min 0.01",
            "spec.warmStart.enqueue[3].layers: 0 is below min 1",
        ]
    );
}

#[test]
fn an_enqueued_point_needs_no_value_for_an_inactive_conditional_parameter() {
    let spec = experiment(
        "second",
        "tpe",
        r#"    enqueue:
      - {lr: 0.1, layers: 2, optimizer: adam}
      - {lr: 0.1, layers: 2, optimizer: sgd}"#,
    )
    .replace(
        "  warmStart:",
        "    - {name: momentum, parameterType: double, feasibleSpace: {min: \"0\", max: \"1\"}, \
         condition: {parameter: optimizer, values: [sgd]}}\n  warmStart:",
    );
    let errors = validate(&parsed(&spec)).expect_err("sgd's momentum is missing");
    assert_eq!(
        rules(&errors),
        [
            "spec.warmStart.enqueue[1].momentum: is required: an enqueued point gives every \
          active parameter a value"
        ]
    );
    validate(&parsed(
        &spec.replace("optimizer: sgd}", "optimizer: sgd, momentum: 0.9}"),
    ))
    .expect("adam needs no momentum, sgd has one");
}

#[test]
fn bad_sources_are_named_by_index() {
    let spec = experiment(
        "second",
        "tpe",
        r#"    fromExperiments: [first, "", Bad_Name, second, first]"#,
    );
    let errors = validate(&parsed(&spec)).expect_err("invalid");
    assert_eq!(
        rules(&errors),
        [
            "spec.warmStart.fromExperiments[1]: must name an experiment",
            "spec.warmStart.fromExperiments[2]: \"Bad_Name\" is not an experiment name",
            "spec.warmStart.fromExperiments[3]: names this experiment: an experiment cannot \
             warm start from itself",
            "spec.warmStart.fromExperiments[4]: \"first\" is named twice (also at index 0)",
        ]
    );
}

#[test]
fn algorithms_that_do_not_learn_or_keep_their_own_state_refuse_what_they_cannot_use() {
    let grid = experiment("second", "random", "    fromExperiments: [first]");
    let errors = validate(&parsed(&grid)).expect_err("invalid");
    assert_eq!(
        rules(&errors),
        [
            "spec.warmStart.fromExperiments: algorithm random does not learn from earlier \
          trials; warm start from experiments works with tpe, multivariate-tpe, \
          bayesianoptimization, cmaes, nsga2, nsga3"
        ]
    );
    // Random search takes enqueued points: they are trials like any other.
    let random = experiment(
        "second",
        "random",
        "    enqueue: [{lr: 0.1, layers: 2, optimizer: adam}]",
    );
    validate(&parsed(&random)).expect("valid");
    let hyperband = parsed(&experiment(
        "second",
        "hyperband",
        "    enqueue: [{lr: 0.1, layers: 2, optimizer: adam}]",
    ));
    let errors = validate(&hyperband).expect_err("invalid");
    assert!(
        errors.has_path("spec.warmStart.enqueue"),
        "{}",
        rules(&errors).join("\n")
    );
}

#[test]
fn unknown_fields_of_the_warm_start_are_refused() {
    let spec = experiment("second", "tpe", "    fromExperiment: [first]");
    let error = parse_experiment(&spec).expect_err("unknown field");
    assert!(
        error
            .to_string()
            .contains("spec.warmStart: unknown field `fromExperiment`"),
        "{error}"
    );
}

#[test]
fn enqueued_points_come_in_order_each_once_and_in_the_space_s_own_writing() {
    let spec = parsed(&experiment(
        "second",
        "tpe",
        r#"    enqueue:
      - {optimizer: adam, lr: 1e-1, layers: 2}
      - {lr: 0.5, layers: 4, optimizer: sgd}
      - {lr: 0.5, layers: 4, optimizer: sgd}"#,
    ))
    .spec;
    let first_two = next_enqueued(&spec, [], 2);
    let indices: Vec<usize> = first_two.iter().map(|point| point.index).collect();
    assert_eq!(indices, [0, 1]);
    assert_eq!(
        first_two[0].parameter_assignments,
        [("lr", "0.1"), ("layers", "2"), ("optimizer", "adam")].map(|(name, value)| {
            ParameterAssignment {
                name: name.into(),
                value: value.into(),
            }
        })
    );
    assert_eq!(
        first_two[1].labels,
        BTreeMap::from([(ENQUEUED_INDEX_LABEL.to_string(), "1".to_string())])
    );
    // Entry 1 is a trial already and entry 0 an assignment about to become one: the equal
    // entry 2 is still due, and then none.
    let taken = [first_two[1].labels.clone(), first_two[0].labels.clone()];
    let rest = next_enqueued(&spec, &taken, 5);
    assert_eq!(rest.iter().map(|p| p.index).collect::<Vec<_>>(), [2]);
    let all = [taken[0].clone(), taken[1].clone(), rest[0].labels.clone()];
    assert!(next_enqueued(&spec, &all, 5).is_empty());
}

fn trial(
    name: &str,
    condition: TrialConditionType,
    values: &[(&str, &str)],
    loss: &str,
) -> ObservedTrial {
    ObservedTrial {
        name: name.into(),
        parameter_assignments: values
            .iter()
            .map(|(name, value)| ParameterAssignment {
                name: (*name).into(),
                value: (*value).into(),
            })
            .collect(),
        condition,
        run: RunState::Succeeded,
        observation: Observation {
            metrics: if loss.is_empty() {
                Vec::new()
            } else {
                vec![Metric {
                    name: "loss".into(),
                    min: loss.into(),
                    max: loss.into(),
                    latest: loss.into(),
                }]
            },
        },
        stop_requested: false,
    }
}

#[test]
fn a_source_gives_its_succeeded_trials_that_fit_projected_onto_this_space() {
    let this = parsed(&experiment("second", "tpe", "    fromExperiments: [first]"));
    // The earlier experiment has one more parameter, dropped from its trials.
    let source = parsed(
        &experiment("first", "random", "    enqueue: []").replace(
            "  parameters:\n",
            "  parameters:\n    - {name: momentum, parameterType: double, feasibleSpace: {min: \"0\", max: \"1\"}}\n",
        ),
    );
    fn full(lr: &str) -> [(&str, &str); 4] {
        [
            ("lr", lr),
            ("layers", "2"),
            ("optimizer", "sgd"),
            ("momentum", "0.5"),
        ]
    }
    let trials = [
        trial(
            "first-00000",
            TrialConditionType::Succeeded,
            &full("0.1"),
            "0.3",
        ),
        trial("first-00001", TrialConditionType::Failed, &full("0.2"), ""),
        trial(
            "first-00002",
            TrialConditionType::EarlyStopped,
            &full("0.3"),
            "0.9",
        ),
        trial(
            "first-00003",
            TrialConditionType::MetricsUnavailable,
            &full("0.4"),
            "",
        ),
        // Outside this space's bounds for lr.
        trial(
            "first-00004",
            TrialConditionType::Succeeded,
            &full("2"),
            "0.1",
        ),
        trial(
            "first-00005",
            TrialConditionType::Succeeded,
            &full("0.5"),
            "0.2",
        ),
    ];
    let history = source_history(&this.spec, &source, &trials).expect("fits");
    let names: Vec<&str> = history.iter().map(|trial| trial.name.as_str()).collect();
    assert_eq!(names, ["first-00000", "first-00005"]);
    assert_eq!(
        history[1]
            .parameter_assignments
            .iter()
            .map(|pair| pair.name.as_str())
            .collect::<Vec<_>>(),
        ["lr", "layers", "optimizer"]
    );
    assert_eq!(history[1].observation, trials[5].observation);
}

#[test]
fn a_source_with_another_objective_or_a_missing_parameter_is_refused_with_why() {
    let this = parsed(&experiment("second", "tpe", "    fromExperiments: [first]"));
    let other = |from: &str, to: &str| {
        parsed(&experiment("first", "random", "    enqueue: []").replace(from, to))
    };
    let maximizing = other("type: minimize", "type: maximize");
    assert_eq!(
        source_history(&this.spec, &maximizing, &[]).expect_err("refused"),
        "experiment \"first\" optimizes loss (maximize), this one loss (minimize): its values do \
         not compare"
    );
    let accuracy = other("objectiveMetricName: loss", "objectiveMetricName: accuracy");
    assert!(source_history(&this.spec, &accuracy, &[]).is_err());
    let without_layers = other(
        "    - {name: layers, parameterType: int, feasibleSpace: {min: \"1\", max: \"4\"}}\n",
        "",
    );
    assert_eq!(
        source_history(&this.spec, &without_layers, &[]).expect_err("refused"),
        "experiment \"first\" has no parameter \"layers\", so none of its trials has a value for it"
    );
    let double_layers = other(
        "{name: layers, parameterType: int,",
        "{name: layers, parameterType: double,",
    );
    assert_eq!(
        source_history(&this.spec, &double_layers, &[]).expect_err("refused"),
        "parameter \"layers\" is double in experiment \"first\" and int here"
    );
}
