//! The `tune` step on Argo Workflows: an Argo `resource` template that creates the step's
//! Experiment, waits for it to complete, and reads the best trial's values from its status.
//!
//! ```yaml
//! - name: step-tune
//!   resource:
//!     action: create
//!     setOwnerReference: true          # the Workflow owns the Experiment; deleting it deletes both
//!     manifest: |                      # JSON, the step's spec with references as template inputs
//!       {"apiVersion": "sextant.dev/v1beta1", "kind": "Experiment",
//!        "metadata": {"generateName": "<pipeline>-tune-"}, "spec": {...}}
//!     successCondition: status.completionTime,status.completionTime!=
//!     failureCondition: status.conditions.0.type == Failed,...,status.conditions.4.type == Failed
//!   outputs:
//!     parameters:
//!       - name: x1
//!         valueFrom: {jsonPath: '{.status.currentOptimalTrial.parameterAssignments[?(@.name=="x1")].value}'}
//!       - name: objective
//!         valueFrom: {jsonPath: '{.status.currentOptimalTrial.observation.metrics[?(@.name=="loss")].min}'}
//! ```
//!
//! - Outputs are those of the local kind ([`crate::local::tune_step`]): one per search parameter,
//!   named as it, holding the best trial's value, and `objective`, the best trial's value of the
//!   objective metric under its strategy (`min`, `max`, else `latest`, the field
//!   [`objective_value`](sextant_experiment::engine::objective_value) reads). Each must be
//!   declared in `outputs.params`, as locally; a declared output that is neither is refused.
//!   Later steps read them as `{{steps.tune.outputs.params.x1}}`, which the compiler passes as
//!   `{{tasks.tune.outputs.parameters.x1}}`, as for any step.
//! - The Experiment is named by the local kind's rule from the pipeline's name and the step's
//!   (`generateName`, leaving room for the API server's five random characters within Katib's 40):
//!   the Workflow's own name is not known when `sextant pipeline compile` prints a Workflow with a
//!   `generateName`, and a fresh name per attempt lets `retry` and `withItems` create one
//!   Experiment each. Its owner reference names the Workflow.
//! - The spec is checked when the pipeline is compiled with the loader `sextant run` uses
//!   (parsed and defaulted always; validated too when it has no `{{...}}` reference, since a
//!   reference's value is only known when Argo runs the step), each problem at its field path
//!   (`spec.steps[0].spec.algorithm.algorithmName`). A `Process` trial template is refused, as
//!   the experiment controller refuses it in a cluster. A tune step has no files on Argo, so it
//!   declares no output artifacts and references none.
//!
//! # What Argo evaluates, and why these expressions
//!
//! Read in argo-workflows' `workflow/executor/resource.go` (`WaitResource`, `matchConditions`,
//! `SaveResourceParameters`; main at f016ad8, August 2026) and k8s.io/apimachinery's
//! `pkg/labels/selector.go` (v0.35.4, the version Argo's `go.mod` pins):
//! - `successCondition` and `failureCondition` are parsed by `labels.Parse`, a label selector:
//!   comma-separated requirements (`key`, `!key`, `key == v`, `key != v`, `key in (a, b)`,
//!   `key > 1`). `NewRequirement` validates every key as a label key (`[prefix/]name`, the name
//!   of letters, digits, `-`, `_`, `.`, at most 63) and every value as a label value. Each key is
//!   then looked up as a GJSON path in the object's JSON. So a GJSON query such as
//!   `status.conditions.#(type=="Succeeded").status` (what Katib writes for its trials'
//!   conditions, which Katib evaluates itself) is refused as a key: only dotted paths with array
//!   indices can be used, and no condition can be found by its type.
//! - The step fails when any one failure requirement matches, and succeeds when every success
//!   requirement matches; failure is checked first, on the same snapshot of the object, at every
//!   poll.
//! - Neither Katib's nor Sextant's Experiment status has a `phase`. Katib's examples put
//!   Experiments in pipelines through KFP's launcher, which polls from Python, not through an
//!   Argo resource template. What both controllers do give: `completionTime` is set in the same
//!   status write as the `Succeeded` or `Failed` condition, and a status holds each of the five
//!   condition types at most once, so a `Failed` condition sits at one of the indices 0 to 4.
//!   Hence failure is "the type at index i is `Failed`" for each i (any one matches), and
//!   success is "`completionTime` is set" (checked after failure, so a completed experiment with
//!   no `Failed` condition, that is a succeeded one). Katib's controller writes a zero
//!   `completionTime` (JSON `null`, which GJSON finds, as an empty string) when it creates an
//!   experiment (`experiment_controller.go`), so the condition also asks for a value that is not
//!   empty: `status.completionTime,status.completionTime!=`.
//! - Output parameters with `valueFrom.jsonPath` are read with `kubectl get -o jsonpath=...`,
//!   kubectl's JSONPath dialect: `{.a.b[?(@.name=="x")].value}`.
//! - `setOwnerReference: true` makes Argo's controller add the Workflow as the manifest's
//!   controlling owner before the step runs (`workflow/controller/operator.go`,
//!   `executeResource`).
//!
//! An experiment that succeeds without any trial reporting the objective has no best trial; its
//! outputs are then empty on Argo, where the local kind fails the step.

use serde_json::{Value, json};

use sextant_experiment::api::common::MetricStrategyType;
use sextant_experiment::api::experiment::{EXPERIMENT_KIND, ExperimentConditionType};
use sextant_experiment::{Experiment, FieldError, LoadError};
use sextant_pipeline::spec::SpecIssue;
use sextant_pipeline::{
    ArgoCompileError, ArgoForms, ArgoStep, ArgoStepForm, Pipeline, compile_argo_with,
};

use crate::kube::ApiGroup;
use crate::kube::experiments::refuse_local_template;
use crate::local::tune_step::{
    OBJECTIVE_OUTPUT, TUNE_KIND, experiment_generate_name, objective_output_clash,
};

/// Compiles `pipeline` into an Argo Workflow for a cluster whose controller serves Experiments
/// in `group`: command steps as [`sextant_pipeline::compile_argo`] does, `tune` steps as
/// resource templates creating their Experiments. Every caller that compiles a pipeline for a
/// cluster goes through here, so a pipeline compiles the same wherever it runs.
pub fn compile_for_cluster(
    pipeline: &Pipeline,
    group: ApiGroup,
) -> Result<Value, ArgoCompileError> {
    compile_argo_with(pipeline, &argo_forms(group))
}

/// The Argo forms of this crate's plug-in step kinds, for experiments served in `group`.
pub(crate) fn argo_forms(group: ApiGroup) -> ArgoForms {
    let mut forms = ArgoForms::default();
    forms.register(std::sync::Arc::new(TuneArgoForm { group }));
    forms
}

/// The success condition: the experiment completed, its `completionTime` present and not empty
/// (see the module docs).
const SUCCESS_CONDITION: &str = "status.completionTime,status.completionTime!=";

/// The `tune` kind's Argo form.
struct TuneArgoForm {
    /// The group whose Experiment kind the step creates.
    group: ApiGroup,
}

// === impl TuneArgoForm ===

impl ArgoStepForm for TuneArgoForm {
    fn kind(&self) -> &str {
        TUNE_KIND
    }

    fn template(&self, step: &ArgoStep<'_>) -> Result<Value, Vec<SpecIssue>> {
        let mut issues = Vec::new();
        let generate_name = experiment_generate_name(&step.pipeline.name, &step.step.name);
        let experiment = self.check_spec(step, &generate_name, &mut issues);
        if !step.step.output_artifacts.is_empty() {
            issues.push(issue(
                step,
                "outputs.artifacts",
                "a tune step has no files on argo: its outputs are parameters read from the Experiment's status",
            ));
        }
        let outputs = experiment
            .map(|experiment| output_parameters(step, &experiment, &mut issues))
            .unwrap_or_default();
        if !issues.is_empty() {
            return Err(issues);
        }
        let manifest = json!({
            "apiVersion": self.group.api_version(),
            "kind": EXPERIMENT_KIND,
            "metadata": {"generateName": generate_name},
            "spec": step.spec,
        });
        let mut template = json!({
            "resource": {
                "action": "create",
                "setOwnerReference": true,
                // JSON, not YAML: every substituted value lands inside a quoted string, so a
                // value such as `1` or `true` keeps the type the spec gave it.
                "manifest": serde_json::to_string_pretty(&manifest).unwrap_or_default(),
                "successCondition": SUCCESS_CONDITION,
                "failureCondition": failure_condition(),
            },
        });
        if !outputs.is_empty() {
            template["outputs"] = json!({"parameters": outputs});
        }
        Ok(template)
    }
}

impl TuneArgoForm {
    /// The step's experiment, parsed and defaulted, and validated when its spec has no
    /// reference; `None` with the problems in `issues` when it cannot be read.
    fn check_spec(
        &self,
        step: &ArgoStep<'_>,
        generate_name: &str,
        issues: &mut Vec<SpecIssue>,
    ) -> Option<Experiment> {
        let Some(spec) = step.step.kind_spec.as_ref() else {
            issues.push(issue(
                step,
                "spec",
                "a tune step needs a `spec`: the experiment's spec",
            ));
            return None;
        };
        let document = json!({
            "apiVersion": self.group.api_version(),
            "kind": EXPERIMENT_KIND,
            // A name of the shape the API server will generate, so the name is checked too.
            "metadata": {"name": format!("{generate_name}check")},
            "spec": spec,
        });
        let text = document.to_string();
        let resolved = !step
            .step
            .references()
            .iter()
            .any(|(field, _)| field.starts_with("spec"));
        let experiment = if resolved {
            sextant_experiment::load_experiments(&text)
        } else {
            sextant_experiment::parse::parse_experiments(&text)
                .map_err(LoadError::from)
                .map(|mut experiments| {
                    for experiment in &mut experiments {
                        sextant_experiment::defaults::apply_defaults(experiment);
                    }
                    experiments
                })
        };
        let experiment = match experiment {
            Ok(experiments) => experiments.into_iter().next(),
            Err(LoadError::Invalid { errors, .. }) => {
                issues.extend(errors.0.iter().map(|error| field_issue(step, error)));
                return None;
            }
            Err(error @ LoadError::Parse(_)) => {
                issues.push(issue(step, "spec", error.to_string()));
                return None;
            }
        }?;
        if let Some(clash) = objective_output_clash(&experiment) {
            issues.push(issue(step, "spec.parameters", clash));
        }
        if let Some(run_object) = experiment
            .spec
            .trial_template
            .as_ref()
            .and_then(|template| template.trial_spec.as_ref())
            && let Err(error) = refuse_local_template(run_object)
        {
            issues.push(field_issue(step, &error));
        }
        Some(experiment)
    }
}

/// One output parameter per declared output: a search parameter's value or the objective's.
fn output_parameters(
    step: &ArgoStep<'_>,
    experiment: &Experiment,
    issues: &mut Vec<SpecIssue>,
) -> Vec<Value> {
    let mut outputs = Vec::new();
    for (index, output) in step.step.output_params.iter().enumerate() {
        let json_path = if output.name == OBJECTIVE_OUTPUT {
            let objective = experiment.spec.objective.clone().unwrap_or_default();
            let metric = &objective.objective_metric_name;
            let field = match objective.strategy_for(metric) {
                MetricStrategyType::Min => "min",
                MetricStrategyType::Max => "max",
                // As `objective_value` reads any other strategy.
                _ => "latest",
            };
            format!(
                "{{.status.currentOptimalTrial.observation.metrics[?(@.name==\"{metric}\")].{field}}}"
            )
        } else if experiment
            .spec
            .parameters
            .iter()
            .any(|parameter| parameter.name == output.name)
        {
            format!(
                "{{.status.currentOptimalTrial.parameterAssignments[?(@.name==\"{}\")].value}}",
                output.name
            )
        } else {
            issues.push(issue(
                step,
                &format!("outputs.params[{index}].name"),
                format!(
                    "`{}` is neither a search parameter of the tune step's experiment nor `{OBJECTIVE_OUTPUT}`",
                    output.name
                ),
            ));
            continue;
        };
        outputs.push(json!({"name": output.name, "valueFrom": {"jsonPath": json_path}}));
    }
    outputs
}

/// The failure condition: a `Failed` condition at any index a condition can take.
fn failure_condition() -> String {
    (0..ExperimentConditionType::ALL.len())
        .map(|index| {
            format!(
                "status.conditions.{index}.type == {}",
                ExperimentConditionType::Failed.name()
            )
        })
        .collect::<Vec<_>>()
        .join(",")
}

/// A problem at `field` (relative to the step).
fn issue(step: &ArgoStep<'_>, field: &str, message: impl Into<String>) -> SpecIssue {
    SpecIssue {
        path: format!("{}.{field}", step.path),
        message: message.into(),
    }
}

/// A problem the experiment loader found, at its path under the step.
fn field_issue(step: &ArgoStep<'_>, error: &FieldError) -> SpecIssue {
    issue(step, &error.path, error.rule.clone())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pipeline(tune: Value, train_command: Value) -> Pipeline {
        let document = json!({
            "apiVersion": "sextant.dev/v1beta1",
            "kind": "Pipeline",
            "metadata": {"name": "ttt"},
            "spec": {
                "params": [{"name": "image", "default": "trainer:1"}],
                "steps": [
                    tune,
                    {"name": "train", "image": "trainer:1", "command": train_command},
                ],
            },
        });
        Pipeline::from_yaml(&document.to_string()).expect("a valid pipeline")
    }

    fn experiment_spec() -> Value {
        json!({
            "objective": {"type": "maximize", "objectiveMetricName": "accuracy"},
            "algorithm": {"algorithmName": "random"},
            "maxTrialCount": 4,
            "parameters": [
                {"name": "lr", "parameterType": "double", "feasibleSpace": {"min": "0.01", "max": "0.1"}},
                {"name": "layers", "parameterType": "int", "feasibleSpace": {"min": "1", "max": "3"}},
            ],
            "trialTemplate": {
                "primaryContainerName": "training",
                "trialParameters": [{"name": "lr", "reference": "lr"}],
                "trialSpec": {
                    "apiVersion": "batch/v1", "kind": "Job",
                    "spec": {"template": {"spec": {"restartPolicy": "Never", "containers": [
                        {"name": "training", "image": "{{params.image}}", "command": ["train", "--lr=${trialParameters.lr}"]},
                    ]}}},
                },
            },
        })
    }

    fn tune_step(spec: Value, outputs: Value) -> Value {
        json!({"name": "tune", "kind": "tune", "spec": spec, "outputs": {"params": outputs}})
    }

    fn template<'a>(workflow: &'a Value, name: &str) -> &'a Value {
        workflow["spec"]["templates"]
            .as_array()
            .and_then(|templates| templates.iter().find(|template| template["name"] == name))
            .unwrap_or_else(|| panic!("no template {name} in {workflow:#}"))
    }

    fn compile_error(tune: Value) -> String {
        compile_for_cluster(&pipeline(tune, json!(["true"])), ApiGroup::Sextant)
            .expect_err("refused")
            .to_string()
    }

    #[test]
    fn a_tune_step_creates_its_experiment_and_reads_the_best_trial_from_its_status() {
        let outputs = json!([
            {"name": "lr", "path": "lr.txt"},
            {"name": "objective", "path": "objective.txt"},
        ]);
        let pipeline = pipeline(
            tune_step(experiment_spec(), outputs),
            json!(["train", "--lr", "{{steps.tune.outputs.params.lr}}"]),
        );
        let workflow = compile_for_cluster(&pipeline, ApiGroup::Katib).expect("compiles");
        let tune = template(&workflow, "step-tune");
        assert_eq!(
            tune["inputs"]["parameters"],
            json!([{"name": "params-image"}])
        );
        let resource = &tune["resource"];
        assert_eq!(resource["action"], "create");
        assert_eq!(resource["setOwnerReference"], true);
        assert_eq!(
            resource["successCondition"],
            "status.completionTime,status.completionTime!="
        );
        let failure = resource["failureCondition"].as_str().expect("a condition");
        assert_eq!(failure.split(',').count(), 5, "{failure}");
        assert!(failure.starts_with("status.conditions.0.type == Failed,"));
        assert!(failure.ends_with("status.conditions.4.type == Failed"));
        let manifest: Value =
            serde_json::from_str(resource["manifest"].as_str().expect("a manifest")).expect("JSON");
        assert_eq!(manifest["apiVersion"], "kubeflow.org/v1beta1");
        assert_eq!(manifest["kind"], "Experiment");
        assert_eq!(manifest["metadata"]["generateName"], "ttt-tune-");
        assert_eq!(manifest["spec"]["maxTrialCount"], 4);
        let container = &manifest["spec"]["trialTemplate"]["trialSpec"]["spec"]["template"]["spec"]
            ["containers"][0];
        assert_eq!(container["image"], "{{inputs.parameters.params-image}}");
        assert_eq!(container["command"][1], "--lr=${trialParameters.lr}");
        assert_eq!(
            tune["outputs"]["parameters"],
            json!([
                {"name": "lr", "valueFrom": {"jsonPath":
                    "{.status.currentOptimalTrial.parameterAssignments[?(@.name==\"lr\")].value}"}},
                {"name": "objective", "valueFrom": {"jsonPath":
                    "{.status.currentOptimalTrial.observation.metrics[?(@.name==\"accuracy\")].max}"}},
            ])
        );
        let tasks = workflow["spec"]["templates"][0]["dag"]["tasks"]
            .as_array()
            .expect("tasks");
        let train = tasks
            .iter()
            .find(|task| task["name"] == "train")
            .expect("the train task");
        assert_eq!(train["depends"], "tune.Succeeded");
        assert_eq!(
            train["arguments"]["parameters"][0]["value"],
            "{{tasks.tune.outputs.parameters.lr}}"
        );
    }

    #[test]
    fn the_objective_output_reads_the_field_of_the_metrics_strategy() {
        let mut spec = experiment_spec();
        spec["objective"]["metricStrategies"] = json!([{"name": "accuracy", "value": "latest"}]);
        let pipeline = pipeline(
            tune_step(spec, json!([{"name": "objective", "path": "o"}])),
            json!(["true"]),
        );
        let workflow = compile_for_cluster(&pipeline, ApiGroup::Sextant).expect("compiles");
        let tune = template(&workflow, "step-tune");
        let path = tune["outputs"]["parameters"][0]["valueFrom"]["jsonPath"]
            .as_str()
            .expect("a path");
        assert!(
            path.ends_with("[?(@.name==\"accuracy\")].latest}"),
            "{path}"
        );
        let manifest = tune["resource"]["manifest"].as_str().expect("a manifest");
        assert!(manifest.contains("\"sextant.dev/v1beta1\""), "{manifest}");
    }

    #[test]
    fn conditions_are_label_selectors_argo_can_parse() {
        // Keys and values as apimachinery's `NewRequirement` checks them: label keys (at most
        // 63 characters of letters, digits, `-`, `_` and `.`) and label values (those, or
        // empty).
        let label = |text: &str| {
            text.len() <= 63
                && text
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        };
        let condition = format!("{SUCCESS_CONDITION},{}", failure_condition());
        for requirement in condition.split(',') {
            let (key, value) = requirement
                .split_once(" == ")
                .or_else(|| requirement.split_once("!="))
                .unwrap_or((requirement, ""));
            assert!(
                !key.is_empty() && label(key) && label(value),
                "{requirement}"
            );
        }
    }

    #[test]
    fn a_resolved_spec_is_validated_with_each_problem_at_its_path() {
        let mut spec = experiment_spec();
        spec["trialTemplate"]["trialSpec"]["spec"]["template"]["spec"]["containers"][0]["image"] =
            json!("trainer:1");
        spec["algorithm"]["algorithmName"] = json!("no-such-algorithm");
        spec["parameters"][0]["feasibleSpace"]["min"] = json!("5");
        let message = compile_error(tune_step(spec, json!([])));
        assert!(
            message.contains("spec.steps[0].spec.algorithm.algorithmName"),
            "{message}"
        );
        assert!(
            message.contains("spec.steps[0].spec.parameters[0].feasibleSpace"),
            "{message}"
        );
    }

    #[test]
    fn outputs_the_experiment_cannot_give_are_refused() {
        let message = compile_error(tune_step(
            experiment_spec(),
            json!([{"name": "lr", "path": "a"}, {"name": "momentum", "path": "b"}]),
        ));
        assert!(
            message.contains("spec.steps[0].outputs.params[1].name: `momentum` is neither"),
            "{message}"
        );
        assert!(!message.contains("params[0]"), "{message}");

        let mut tune = tune_step(experiment_spec(), json!([]));
        tune["outputs"]["artifacts"] = json!([{"name": "best", "path": "best.json"}]);
        let message = compile_error(tune);
        assert!(
            message.contains("spec.steps[0].outputs.artifacts: a tune step has no files"),
            "{message}"
        );

        let mut spec = experiment_spec();
        spec["parameters"][1]["name"] = json!("objective");
        let message = compile_error(tune_step(spec, json!([])));
        assert!(
            message.contains("spec.steps[0].spec.parameters: a tune step's parameter may not be called `objective`"),
            "{message}"
        );
    }

    #[test]
    fn local_templates_and_unreadable_specs_are_refused() {
        let mut spec = experiment_spec();
        spec["trialTemplate"]["trialSpec"] = json!({
            "apiVersion": "sextant.dev/v1beta1", "kind": "Process",
            "spec": {"command": ["train", "--lr=${trialParameters.lr}"]},
        });
        let message = compile_error(tune_step(spec, json!([])));
        assert!(
            message.contains("spec.steps[0].spec.trialTemplate.trialSpec: kind Process"),
            "{message}"
        );

        let mut spec = experiment_spec();
        spec["maxTrialCount"] = json!("{{params.image}}");
        let message = compile_error(tune_step(spec, json!([])));
        assert!(message.contains("spec.steps[0].spec: "), "{message}");
        assert!(message.contains("maxTrialCount"), "{message}");

        let message = compile_error(json!({"name": "tune", "kind": "tune"}));
        assert!(
            message.contains("spec.steps[0].spec: a tune step needs a `spec`"),
            "{message}"
        );
    }

    #[test]
    fn a_tune_step_may_not_reference_an_artifact() {
        let document = json!({
            "apiVersion": "sextant.dev/v1beta1",
            "kind": "Pipeline",
            "metadata": {"name": "ttt"},
            "spec": {"steps": [
                {"name": "prepare", "image": "busybox", "command": ["true"],
                 "outputs": {"artifacts": [{"name": "data", "path": "data.csv"}]}},
                tune_step(
                    {
                        let mut spec = experiment_spec();
                        spec["trialTemplate"]["trialSpec"]["spec"]["template"]["spec"]["containers"][0]["image"] =
                            json!("{{steps.prepare.outputs.artifacts.data}}");
                        spec
                    },
                    json!([]),
                ),
            ]},
        });
        let pipeline = Pipeline::from_yaml(&document.to_string()).expect("a valid pipeline");
        let message = compile_for_cluster(&pipeline, ApiGroup::Sextant)
            .expect_err("refused")
            .to_string();
        assert!(
            message.contains("spec.steps[1].spec.trialTemplate.trialSpec.spec.template.spec.containers[0].image: `{{steps.prepare.outputs.artifacts.data}}`: argo hands artifacts to containers only"),
            "{message}"
        );
    }
}
