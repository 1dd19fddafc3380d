//! Invalid specs are rejected with every problem listed at once, each naming its field path;
//! Sextant's own trial template kinds validate.

use anyhow::Result;
use sextant_experiment::api::experiment::ExperimentStatus;
use sextant_experiment::defaults::with_defaults;
use sextant_experiment::engine::{Observed, ObservedSuggestion, plan};
use sextant_experiment::parse::parse_experiment;
use sextant_experiment::validation::{validate, validate_update, validate_with_template};
use sextant_experiment::{LoadError, ValidationErrors, load_experiments};

const BAD: &str = r#"
apiVersion: kubeflow.org/v1beta1
kind: Experiment
metadata:
  name: bad
spec:
  parallelTrialCount: 5
  maxTrialCount: 3
  maxFailedTrialCount: -1
  objective:
    type: minimize
    objectiveMetricName: loss
  algorithm:
    algorithmName: simulated-annealing
  parameters:
    - name: lr
      parameterType: double
      feasibleSpace: {min: "0.01", max: "0.1"}
    - name: layers
      parameterType: int
      feasibleSpace: {min: "1", max: "4"}
    - name: momentum
      parameterType: double
      feasibleSpace: {min: "5", max: "1"}
  trialTemplate:
    trialParameters:
      - name: learningRate
        reference: lr
      - name: dropout
        reference: drop
    trialSpec:
      apiVersion: sextant.dev/v1beta1
      kind: Process
      spec:
        command: ["python3", "train.py"]
        args:
          - "--lr=${trialParameters.learningRate}"
          - "--dropout=${trialParameters.dropout}"
          - "--layers=${trialParameters.numLayers}"
"#;

fn errors_of(text: &str) -> ValidationErrors {
    let experiment = with_defaults(parse_experiment(text).expect("the spec parses"));
    validate(&experiment).expect_err("the spec is invalid")
}

#[test]
fn every_problem_is_listed_with_its_field_path() {
    let errors = errors_of(BAD);
    let listed: Vec<String> = errors.0.iter().map(ToString::to_string).collect();
    let expected = [
        "spec.maxFailedTrialCount: -1 must not be less than 0",
        "spec.parallelTrialCount: 5 must be less than or equal to spec.maxTrialCount (3)",
        "spec.parameters[2].feasibleSpace: min 5 > max 1",
        "spec.algorithm.algorithmName: unknown algorithm \"simulated-annealing\"",
        "spec.trialTemplate.trialParameters[1].reference: \"drop\" names no parameter of spec.parameters",
        "spec.trialTemplate.trialSpec.spec.args[2]: placeholder ${trialParameters.numLayers} names no entry of spec.trialTemplate.trialParameters",
    ];
    for wanted in expected {
        assert!(
            listed.iter().any(|line| line.starts_with(wanted)),
            "missing {wanted:?} in:\n{errors}"
        );
    }
    assert_eq!(
        listed.len(),
        expected.len(),
        "exactly these problems:\n{errors}"
    );
}

#[test]
fn load_reports_the_experiment_and_its_problems() {
    match load_experiments(BAD) {
        Err(LoadError::Invalid { name, errors }) => {
            assert_eq!(name, "bad");
            assert_eq!(errors.0.len(), 6);
        }
        other => panic!("expected an invalid experiment, got {other:?}"),
    }
}

const GOOD_PROCESS: &str = r#"
apiVersion: sextant.dev/v1beta1
kind: Experiment
metadata:
  name: branin
spec:
  maxTrialCount: 12
  objective: {type: minimize, objectiveMetricName: value, goal: 0.4}
  algorithm:
    algorithmName: random
    algorithmSettings: [{name: random_state, value: "7"}]
  parameters:
    - {name: x, parameterType: double, feasibleSpace: {min: "-5", max: "10"}}
    - {name: y, parameterType: double, feasibleSpace: {min: "0", max: "15"}}
  trialTemplate:
    trialParameters:
      - {name: x, reference: x}
      - {name: y, reference: y}
      - {name: trialName, reference: "${trialSpec.Name}"}
    trialSpec:
      apiVersion: sextant.dev/v1beta1
      kind: Process
      spec:
        command: ["python3", "branin.py", "--x=${trialParameters.x}", "--y=${trialParameters.y}"]
        env: [{name: TRIAL, value: "${trialParameters.trialName}"}]
"#;

#[test]
fn a_process_experiment_validates_and_plans() -> Result<()> {
    let experiments = load_experiments(GOOD_PROCESS)?;
    let experiment = experiments.into_iter().next().expect("one experiment");
    assert_eq!(experiment.spec.parallel_trial_count, Some(3));
    let plan = plan(&Observed {
        experiment,
        trials: Vec::new(),
        suggestion: ObservedSuggestion::default(),
        now: chrono::DateTime::from_timestamp(1_700_000_000, 0).expect("a valid time"),
    });
    assert!(
        plan.actions
            .contains(&sextant_experiment::Action::RequestSuggestions { count: 3 })
    );
    Ok(())
}

#[test]
fn settings_and_templates_are_checked_in_depth() {
    let text = GOOD_PROCESS
        .replace(
            "name: random_state, value: \"7\"",
            "name: random_state, value: \"-7\"",
        )
        .replace("command: [\"python3\", ", "command: []\n        args: [")
        .replace(
            "reference: \"${trialSpec.Name}\"",
            "reference: \"${trialSpec.Uid}\"",
        );
    let errors = errors_of(&text);
    for path in [
        "spec.algorithm.algorithmSettings[0].value",
        "spec.trialTemplate.trialSpec.spec.command",
        "spec.trialTemplate.trialParameters[2].reference",
    ] {
        assert!(errors.has_path(path), "missing {path} in:\n{errors}");
    }
}

#[test]
fn out_of_scope_collectors_and_unknown_values_are_named() {
    let text = GOOD_PROCESS.replace(
        "  maxTrialCount: 12\n",
        "  maxTrialCount: 12\n  resumePolicy: Sometimes\n  metricsCollectorSpec:\n    collector: {kind: PrometheusMetric}\n",
    );
    let errors = errors_of(&text);
    let listed = errors.to_string();
    assert!(
        listed.contains("spec.resumePolicy: invalid resume policy \"Sometimes\""),
        "{listed}"
    );
    assert!(
        listed.contains("spec.metricsCollectorSpec.collector.kind: not supported"),
        "{listed}"
    );
}

#[test]
fn config_map_templates_are_checked_once_read() -> Result<()> {
    let text = GOOD_PROCESS.replace(
        "    trialSpec:\n",
        "    configMap: {templatePath: trial.yaml}\n    unusedSpec:\n",
    );
    // The placeholder-free remainder is not part of the schema: parse only the part we keep.
    let text = text
        .split("    unusedSpec:\n")
        .next()
        .expect("a prefix")
        .to_owned();
    let experiment = with_defaults(parse_experiment(&text)?);
    // Without the template's text, only what the spec itself says is checked; a configMap
    // source still needs Katib's success and failure conditions and a primary container.
    let errors = validate(&experiment).expect_err("conditions are missing");
    assert!(
        errors.has_path("spec.trialTemplate.primaryContainerName"),
        "{errors}"
    );
    let template = serde_json::json!({
        "apiVersion": "sextant.dev/v1beta1",
        "kind": "Process",
        "spec": {"command": ["run", "${trialParameters.x}", "${trialParameters.z}"]}
    });
    let errors = validate_with_template(&experiment, Some(&template)).expect_err("z is unknown");
    assert!(
        errors.has_path("spec.trialTemplate.configMap(trial.yaml).spec.command[2]"),
        "{errors}"
    );
    assert!(
        errors.has_path("spec.trialTemplate.trialParameters[1].name"),
        "{errors}"
    );
    Ok(())
}

#[test]
fn updates_follow_katib_rules() -> Result<()> {
    let old = load_experiments(GOOD_PROCESS)?.remove(0);
    let mut raised = old.clone();
    raised.spec.max_trial_count = Some(20);
    assert_eq!(validate_update(&old, &raised), Ok(()));

    let mut changed = raised.clone();
    changed.spec.algorithm = None;
    assert!(
        validate_update(&old, &changed)
            .expect_err("algorithm changed")
            .has_path("spec")
    );

    let mut completed = old.clone();
    completed.status = Some(ExperimentStatus {
        trials: 12,
        ..plan(&Observed {
            experiment: old.clone(),
            trials: Vec::new(),
            suggestion: ObservedSuggestion {
                exhausted: true,
                ..ObservedSuggestion::default()
            },
            now: chrono::DateTime::from_timestamp(1_700_000_000, 0).expect("a valid time"),
        })
        .status
    });
    let errors = validate_update(&completed, &raised).expect_err("not restartable");
    assert!(errors.has_path("spec.resumePolicy"), "{errors}");
    let mut lowered = old.clone();
    lowered.spec.max_trial_count = Some(10);
    let errors = validate_update(&completed, &lowered).expect_err("below status.trials");
    assert!(errors.has_path("spec.maxTrialCount"), "{errors}");
    Ok(())
}

#[test]
fn early_stopping_is_checked_by_its_algorithm() {
    let with_early_stopping = |block: &str| {
        GOOD_PROCESS.replace(
            "  maxTrialCount: 12\n",
            &format!("  maxTrialCount: 12\n{block}"),
        )
    };
    let errors = errors_of(&with_early_stopping(
        "  earlyStopping:\n    algorithmName: medianstop\n    algorithmSettings:\n      - {name: start_step, value: \"2\"}\n      - {name: min_trials_required, value: \"0\"}\n",
    ));
    assert!(
        errors.has_path("spec.earlyStopping.algorithmSettings[1].value"),
        "{errors}"
    );
    let errors = errors_of(&with_early_stopping(
        "  earlyStopping:\n    algorithmName: hyperstop\n",
    ));
    assert!(
        errors.has_path("spec.earlyStopping.algorithmName"),
        "{errors}"
    );
    let valid = with_early_stopping(
        "  earlyStopping:\n    algorithmName: medianstop\n    algorithmSettings: [{name: start_step, value: \"2\"}]\n",
    );
    assert!(load_experiments(&valid).is_ok());
}

#[test]
fn successive_halving_settings_out_of_range_name_the_setting() {
    let with_early_stopping = |algorithm: &str, settings: &str| {
        GOOD_PROCESS.replace(
            "  maxTrialCount: 12\n",
            &format!(
                "  maxTrialCount: 12\n  earlyStopping:\n    algorithmName: {algorithm}\n    algorithmSettings:\n{settings}"
            ),
        )
    };
    let cases = [
        (
            "min_resource",
            "0",
            "must be an integer from 1 to 2147483647",
        ),
        ("reduction_factor", "1", "must be an integer >= 2"),
        ("min_early_stopping_rate", "-1", "must be an integer >= 0"),
        ("min_early_stopping_rate", "31", "exceed 2147483647 reports"),
    ];
    for algorithm in ["asha", "successivehalving"] {
        for (setting, value, rule) in cases {
            // Another, valid, setting first, so the bad one's index is 1.
            let valid_first = if setting == "min_resource" {
                "reduction_factor"
            } else {
                "min_resource"
            };
            let errors = errors_of(&with_early_stopping(
                algorithm,
                &format!(
                    "      - {{name: {valid_first}, value: \"2\"}}\n      - {{name: {setting}, value: \"{value}\"}}\n"
                ),
            ));
            let message = errors.to_string();
            assert!(
                errors.has_path("spec.earlyStopping.algorithmSettings[1].value"),
                "{algorithm} {setting}={value}: {message}"
            );
            assert!(message.contains(setting), "{message}");
            assert!(message.contains(rule), "{message}");
        }
        let errors = errors_of(&with_early_stopping(
            algorithm,
            "      - {name: bootstrap_count, value: \"2\"}\n",
        ));
        assert!(
            errors.has_path("spec.earlyStopping.algorithmSettings[0].name"),
            "{errors}"
        );
        let valid = with_early_stopping(
            algorithm,
            "      - {name: min_resource, value: \"3\"}\n      - {name: reduction_factor, value: \"3\"}\n      - {name: min_early_stopping_rate, value: \"0\"}\n",
        );
        assert!(load_experiments(&valid).is_ok(), "{algorithm}");
    }
}

/// An experiment with several objectives and a constraint; `objective` and `extra` are spliced
/// into its spec.
fn several_objectives(objective: &str, algorithm: &str, extra: &str) -> String {
    format!(
        r#"
apiVersion: sextant.dev/v1beta1
kind: Experiment
metadata: {{name: front}}
spec:
  objective:
{objective}
  algorithm: {{algorithmName: {algorithm}}}
  maxTrialCount: 10
  parameters:
    - {{name: x, parameterType: double, feasibleSpace: {{min: "0", max: "1"}}}}
  trialTemplate:
    trialParameters: [{{name: x, reference: x}}]
    trialSpec:
      apiVersion: sextant.dev/v1beta1
      kind: Process
      spec: {{command: [echo, "${{trialParameters.x}}"]}}
{extra}
"#
    )
}

const TWO_OBJECTIVES: &str = "    objectives: [{metricName: loss, type: minimize}, {metricName: latency, type: minimize}]\n    additionalMetricNames: [memory]";

fn rules(errors: &ValidationErrors) -> Vec<(String, String)> {
    errors
        .0
        .iter()
        .map(|error| (error.path.clone(), error.rule.clone()))
        .collect()
}

#[test]
fn several_objectives_and_constraints_validate_and_default() -> Result<()> {
    let text = several_objectives(
        TWO_OBJECTIVES,
        "nsga2",
        "  constraints: [{metricName: memory, max: 512}, {metricName: latency, min: 0, max: 9}]",
    );
    let experiment = load_experiments(&text)?.remove(0);
    let objective = experiment.spec.objective.expect("an objective");
    assert_eq!(objective.objective_metric_name, "loss");
    assert!(objective.is_multi_objective());
    assert_eq!(experiment.spec.constraints.len(), 2);
    Ok(())
}

#[test]
fn bad_objectives_and_constraints_are_named_by_their_paths() {
    let errors = errors_of(&several_objectives(
        "    type: maximize\n    goal: 0.9\n    objectiveMetricName: accuracy\n    objectives: [{metricName: loss, type: minimize}, {metricName: loss}, {metricName: '', type: sideways}]",
        "nsga2",
        "  constraints: [{metricName: memory, max: 1}, {metricName: loss}, {metricName: loss, min: 2, max: 1}]",
    ));
    let rules = rules(&errors);
    let has = |path: &str, words: &str| {
        rules
            .iter()
            .any(|(p, rule)| p == path && rule.contains(words))
    };
    assert!(
        has("spec.objective.objectives[1].metricName", "named twice"),
        "{errors}"
    );
    assert!(
        has("spec.objective.objectives[1].type", "is required"),
        "{errors}"
    );
    assert!(
        has("spec.objective.objectives[2].metricName", "is required"),
        "{errors}"
    );
    assert!(
        has("spec.objective.objectives[2].type", "minimize or maximize"),
        "{errors}"
    );
    assert!(
        has(
            "spec.objective.objectiveMetricName",
            "must be the first of spec.objective.objectives"
        ),
        "{errors}"
    );
    assert!(
        has("spec.objective.type", "must be the type of the first"),
        "{errors}"
    );
    assert!(has("spec.objective.goal", "several objectives"), "{errors}");
    assert!(
        has("spec.constraints[0].metricName", "is not collected"),
        "{errors}"
    );
    assert!(
        has("spec.constraints[1]", "needs max, min or both"),
        "{errors}"
    );
    assert!(has("spec.constraints[2].min", "above max"), "{errors}");
}

#[test]
fn an_algorithm_for_one_objective_refuses_several_and_names_those_that_can() {
    let errors = errors_of(&several_objectives(TWO_OBJECTIVES, "cmaes", ""));
    let rules = rules(&errors);
    let (path, rule) = rules
        .iter()
        .find(|(path, _)| path == "spec.algorithm.algorithmName")
        .unwrap_or_else(|| panic!("no algorithm error in {errors}"));
    assert_eq!(path, "spec.algorithm.algorithmName");
    assert!(
        rule.contains("cmaes")
            && rule.contains("nsga2")
            && rule.contains("nsga3")
            && rule.contains("bayesianoptimization"),
        "{rule}"
    );
}

/// An experiment over `optimizer` with `momentum` for sgd only, its extra parameters, template
/// arguments and trial parameters spliced in.
fn conditional(parameters: &str, args: &str, trial_parameters: &str) -> String {
    format!(
        r#"
apiVersion: kubeflow.org/v1beta1
kind: Experiment
metadata:
  name: conditional
spec:
  maxTrialCount: 4
  parallelTrialCount: 1
  objective:
    type: minimize
    objectiveMetricName: loss
  algorithm:
    algorithmName: random
  parameters:
    - name: lr
      parameterType: double
      feasibleSpace: {{min: "0.01", max: "0.1"}}
    - name: optimizer
      parameterType: categorical
      feasibleSpace: {{list: [sgd, adam]}}
    - name: momentum
      parameterType: double
      feasibleSpace: {{min: "0", max: "0.99"}}
      condition: {{parameter: optimizer, values: [sgd]}}
{parameters}
  trialTemplate:
    trialParameters:
      - name: optimizer
        reference: optimizer
      - name: momentum
        reference: momentum
{trial_parameters}
    trialSpec:
      apiVersion: sextant.dev/v1beta1
      kind: Process
      spec:
        command: ["python3", "train.py"]
        args:
          - "--optimizer=${{trialParameters.optimizer}}"
{args}
"#
    )
}

#[test]
fn a_conditional_parameter_validates_and_its_argv_item_may_be_dropped() {
    let text = conditional(
        "",
        "          - \"--momentum=${trialParameters.momentum}\"",
        "",
    );
    let experiment = with_defaults(parse_experiment(&text).expect("parses"));
    validate(&experiment).expect("momentum only in an argv item is valid");
    // The condition survives serialization, so a stored experiment keeps it.
    let again = serde_json::to_value(&experiment.spec.parameters[2]).expect("serializes");
    assert_eq!(
        again["condition"],
        serde_json::json!({"parameter": "optimizer", "values": ["sgd"]})
    );
}

#[test]
fn bad_conditions_are_named_by_their_paths() {
    let parameters = r#"    - name: beta
      parameterType: double
      feasibleSpace: {min: "0", max: "1"}
      condition: {parameter: lr, values: ["0.05"]}
    - name: gamma
      parameterType: double
      feasibleSpace: {min: "0", max: "1"}
      condition: {parameter: optimizer, values: [sgd, rmsprop]}
    - name: delta
      parameterType: double
      feasibleSpace: {min: "0", max: "1"}
      condition: {parameter: nothing, values: [x]}
    - name: left
      parameterType: categorical
      feasibleSpace: {list: [x, y]}
      condition: {parameter: right, values: [x]}
    - name: right
      parameterType: categorical
      feasibleSpace: {list: [x, y]}
      condition: {parameter: left, values: [y]}"#;
    let errors = errors_of(&conditional(
        parameters,
        "          - \"--momentum=${trialParameters.momentum}\"",
        "",
    ));
    assert_eq!(
        rules(&errors),
        [
            (
                "spec.parameters[3].condition.parameter".to_string(),
                "parent \"lr\" is a double parameter; a condition's parent must be categorical or discrete".to_string()
            ),
            (
                "spec.parameters[4].condition.values[1]".to_string(),
                "\"rmsprop\" is not in the list of parent \"optimizer\" (sgd, adam)".to_string()
            ),
            (
                "spec.parameters[5].condition.parameter".to_string(),
                "\"nothing\" names no parameter of the space".to_string()
            ),
            (
                "spec.parameters[6].condition.parameter".to_string(),
                "conditions form a cycle: left -> right -> left (each conditioned on the next)"
                    .to_string()
            ),
        ]
    );
}

#[test]
fn an_inactive_placeholder_outside_an_argv_item_needs_a_default() {
    // In an environment variable the placeholder cannot be dropped with its item.
    let in_env = conditional(
        "",
        "        env:\n          - {name: MOMENTUM, value: \"${trialParameters.momentum}\"}",
        "",
    );
    assert_eq!(
        rules(&errors_of(&in_env)),
        [(
            "spec.trialTemplate.trialSpec.spec.env[0].value".to_string(),
            "placeholder ${trialParameters.momentum} stands for the conditional parameter \"momentum\", which a trial may leave out: use it only inside an array item such as an argv item (dropped when the parameter is inactive), or give the trial parameter a default".to_string()
        )]
    );
    // With a default it may go anywhere.
    let with_default = in_env.replace(
        "        reference: momentum\n",
        "        reference: momentum\n        default: \"0\"\n",
    );
    let experiment = with_defaults(parse_experiment(&with_default).expect("parses"));
    validate(&experiment).expect("a default stands in for the inactive value");
    // A default on a parameter that always has a value is a mistake.
    let needless = conditional(
        "",
        "          - \"--momentum=${trialParameters.momentum}\"",
        "      - name: rate\n        reference: lr\n        default: \"0.1\"",
    )
    .replace(
        "          - \"--optimizer=${trialParameters.optimizer}\"",
        "          - \"--optimizer=${trialParameters.optimizer}\"\n          - \"--lr=${trialParameters.rate}\"",
    );
    assert_eq!(
        rules(&errors_of(&needless)),
        [(
            "spec.trialTemplate.trialParameters[2].default".to_string(),
            "applies only to a conditional parameter; \"lr\" has a value in every trial"
                .to_string()
        )]
    );
}
