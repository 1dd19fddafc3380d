//! `kind: tune` steps on Argo Workflows, on the API server testbed: a tune-then-train pipeline
//! compiles to a Workflow whose tune node is a resource template; its Experiment runs to the end
//! through `sextant controller`, and the template's conditions and outputs, evaluated as Argo
//! evaluates them, give the best trial's values to the train step.
//!
//! No Argo controller or executor runs here, so the tests play their part, as Argo's source
//! does it: the controller substitutes the task's arguments into the template's inputs and the
//! inputs into the manifest, and adds the Workflow as the manifest's owner
//! (`setOwnerReference`); the executor creates the manifest (`kubectl create`), evaluates
//! `failureCondition` then `successCondition` (label selectors whose keys are GJSON paths on the
//! object, `workflow/executor/resource.go`) and reads each output with `kubectl get -o
//! jsonpath`. The kubelet and the training program are played as in `kubernetes.rs`.

use std::collections::{BTreeMap, HashSet};

use kube::Api;
use kube::api::{DeleteParams, DynamicObject, PostParams};
use serde_json::{Value, json};
use sextant_controller::kube::ApiGroup;
use sextant_controller::kube::tune_argo::compile_for_cluster;
use sextant_pipeline::Pipeline;

use crate::kubernetes::{
    Harness, argo_schema_errors, experiment, install_workflow_crd, loss_for, play_until_done,
    wait_until, workflows,
};
use crate::support::{Scratch, explain};

/// The image the tune step's trials run, given as a pipeline parameter so that the manifest
/// has an input to substitute.
const TRAINER_IMAGE: &str = "ghcr.io/example/trainer:1.0";

/// Tune `lr` with Job trials (the template of `kubernetes.rs`, whose trials `play_until_done`
/// plays), then train with the best value and the objective.
fn tune_then_train(extra_spec: Value) -> Value {
    let mut spec = experiment("unused", extra_spec)["spec"].clone();
    spec["trialTemplate"]["trialSpec"]["spec"]["template"]["spec"]["containers"][0]["image"] =
        json!("{{params.trainer_image}}");
    json!({
        "apiVersion": "sextant.dev/v1beta1",
        "kind": "Pipeline",
        "metadata": {"name": "tune-then-train"},
        "spec": {
            "params": [{"name": "trainer_image", "default": TRAINER_IMAGE}],
            "steps": [
                {"name": "tune", "kind": "tune", "spec": spec, "outputs": {"params": [
                    {"name": "lr", "path": "lr.txt"},
                    {"name": "objective", "path": "objective.txt"},
                ]}},
                {"name": "train", "image": "trainer:1", "command": [
                    "python3", "train.py",
                    "--lr", "{{steps.tune.outputs.params.lr}}",
                    "--expected-loss", "{{steps.tune.outputs.params.objective}}",
                ]},
            ],
        },
    })
}

fn compile(pipeline: &Value) -> Value {
    let pipeline = Pipeline::from_yaml(&pipeline.to_string()).expect("a valid pipeline");
    let workflow = compile_for_cluster(&pipeline, ApiGroup::Sextant).expect("compiles");
    let errors = argo_schema_errors(&workflow);
    assert!(errors.is_empty(), "schema errors: {errors:#?}");
    workflow
}

fn template<'a>(workflow: &'a Value, name: &str) -> &'a Value {
    workflow["spec"]["templates"]
        .as_array()
        .and_then(|templates| templates.iter().find(|template| template["name"] == name))
        .unwrap_or_else(|| panic!("no template {name}"))
}

fn task<'a>(workflow: &'a Value, name: &str) -> &'a Value {
    workflow["spec"]["templates"][0]["dag"]["tasks"]
        .as_array()
        .and_then(|tasks| tasks.iter().find(|task| task["name"] == name))
        .unwrap_or_else(|| panic!("no task {name}"))
}

/// Argo's simple replacement: each `{{tag}}` of `values` by its value; others are left as
/// they are.
fn substitute(text: &str, values: &BTreeMap<String, String>) -> String {
    values.iter().fold(text.to_owned(), |text, (tag, value)| {
        text.replace(&format!("{{{{{tag}}}}}"), value)
    })
}

/// The values of a template's inputs, as Argo's controller resolves them: each argument of the
/// DAG task, substituted with `globals` (`workflow.parameters.x`, `tasks.t.outputs...`), under
/// `inputs.parameters.<name>`.
fn inputs_of(task: &Value, globals: &BTreeMap<String, String>) -> BTreeMap<String, String> {
    task["arguments"]["parameters"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|argument| {
            let name = argument["name"].as_str().expect("an argument name");
            let value = argument["value"].as_str().expect("an argument value");
            (
                format!("inputs.parameters.{name}"),
                substitute(value, globals),
            )
        })
        .collect()
}

/// The workflow's parameters with their defaults, as `workflow.parameters.<name>`.
fn workflow_parameters(workflow: &Value) -> BTreeMap<String, String> {
    workflow["spec"]["arguments"]["parameters"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|parameter| {
            (
                format!(
                    "workflow.parameters.{}",
                    parameter["name"].as_str().expect("a name")
                ),
                parameter["value"].as_str().expect("a default").to_owned(),
            )
        })
        .collect()
}

// === Argo's executor: label selectors over GJSON paths, kubectl's JSONPath ===

/// One requirement of a label selector, as apimachinery's `labels.Parse` reads it.
#[derive(Debug)]
enum Requirement {
    Exists(String),
    DoesNotExist(String),
    Equals(String, String),
    NotEquals(String, String),
    In(String, Vec<String>),
    NotIn(String, Vec<String>),
    GreaterThan(String, i64),
    LessThan(String, i64),
}

/// A label key as `NewRequirement` checks it: `[prefix/]name`, the name at most 63 letters,
/// digits, `-`, `_` and `.`, starting and ending with a letter or digit.
fn is_label_key(key: &str) -> bool {
    let name = match key.split_once('/') {
        Some((prefix, name)) => {
            let prefix_ok = !prefix.is_empty()
                && prefix.len() <= 253
                && prefix
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '.');
            if !prefix_ok {
                return false;
            }
            name
        }
        None => key,
    };
    !name.is_empty() && is_label_value(name)
}

/// A label value: empty, or at most 63 characters as a key's name.
fn is_label_value(value: &str) -> bool {
    let alphanumeric = |c: Option<char>| c.is_some_and(|c| c.is_ascii_alphanumeric());
    value.is_empty()
        || (value.len() <= 63
            && alphanumeric(value.chars().next())
            && alphanumeric(value.chars().last())
            && value
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')))
}

/// Parses a selector as Argo does before waiting (`labels.Parse`); panics where Argo would fail
/// the step with "failed to parse".
fn parse_selector(selector: &str) -> Vec<Requirement> {
    let mut parts = Vec::new();
    let mut depth = 0;
    let mut current = String::new();
    for character in selector.chars() {
        match character {
            '(' => depth += 1,
            ')' => depth -= 1,
            ',' if depth == 0 => {
                parts.push(std::mem::take(&mut current));
                continue;
            }
            _ => {}
        }
        current.push(character);
    }
    parts.push(current);
    parts
        .iter()
        .map(|part| {
            let part = part.trim();
            let values = |list: &str| -> Vec<String> {
                let list = list.trim();
                assert!(list.starts_with('(') && list.ends_with(')'), "{part}");
                list[1..list.len() - 1]
                    .split(',')
                    .map(|value| value.trim().to_owned())
                    .collect()
            };
            let requirement = if let Some(key) = part.strip_prefix('!') {
                Requirement::DoesNotExist(key.trim().to_owned())
            } else if let Some((key, list)) = part.split_once(" notin ") {
                Requirement::NotIn(key.trim().to_owned(), values(list))
            } else if let Some((key, list)) = part.split_once(" in ") {
                Requirement::In(key.trim().to_owned(), values(list))
            } else if let Some((key, value)) = part.split_once("!=") {
                Requirement::NotEquals(key.trim().to_owned(), value.trim().to_owned())
            } else if let Some((key, value)) =
                part.split_once("==").or_else(|| part.split_once('='))
            {
                Requirement::Equals(key.trim().to_owned(), value.trim().to_owned())
            } else if let Some((key, value)) = part.split_once('>') {
                let value = value.trim().parse().expect("an integer for >");
                Requirement::GreaterThan(key.trim().to_owned(), value)
            } else if let Some((key, value)) = part.split_once('<') {
                let value = value.trim().parse().expect("an integer for <");
                Requirement::LessThan(key.trim().to_owned(), value)
            } else {
                Requirement::Exists(part.to_owned())
            };
            let (key, values): (&str, Vec<&str>) = match &requirement {
                Requirement::Exists(key) | Requirement::DoesNotExist(key) => (key, vec![]),
                Requirement::Equals(key, value) | Requirement::NotEquals(key, value) => {
                    (key, vec![value.as_str()])
                }
                Requirement::In(key, values) | Requirement::NotIn(key, values) => {
                    (key, values.iter().map(String::as_str).collect())
                }
                Requirement::GreaterThan(key, _) | Requirement::LessThan(key, _) => (key, vec![]),
            };
            assert!(
                is_label_key(key),
                "argo refuses {selector:?}: {key:?} is not a label key"
            );
            for value in values {
                assert!(
                    is_label_value(value),
                    "argo refuses {selector:?}: {value:?} is not a label value"
                );
            }
            requirement
        })
        .collect()
}

/// Whether a requirement matches the object, its keys looked up as GJSON paths
/// (`gjsonLabels`) with apimachinery's `Requirement.Matches`.
fn matches(requirement: &Requirement, object: &str) -> bool {
    let lookup = |key: &str| {
        let value = gjson::get(object, key);
        value.exists().then(|| value.str().to_owned())
    };
    match requirement {
        Requirement::Exists(key) => lookup(key).is_some(),
        Requirement::DoesNotExist(key) => lookup(key).is_none(),
        Requirement::Equals(key, value) => lookup(key).is_some_and(|found| &found == value),
        Requirement::NotEquals(key, value) => lookup(key).is_none_or(|found| &found != value),
        Requirement::In(key, values) => lookup(key).is_some_and(|found| values.contains(&found)),
        Requirement::NotIn(key, values) => lookup(key).is_none_or(|found| !values.contains(&found)),
        Requirement::GreaterThan(key, bound) => lookup(key)
            .and_then(|found| found.parse::<i64>().ok())
            .is_some_and(|found| found > *bound),
        Requirement::LessThan(key, bound) => lookup(key)
            .and_then(|found| found.parse::<i64>().ok())
            .is_some_and(|found| found < *bound),
    }
}

/// What Argo's executor concludes from one look at the object (`matchConditions`): failed when
/// any failure requirement matches, else succeeded when every success requirement does, else
/// still waiting.
#[derive(Debug, PartialEq)]
enum Verdict {
    Failed,
    Succeeded,
    Waiting,
}

fn verdict(resource: &Value, object: &Value) -> Verdict {
    let object = object.to_string();
    let selector = |field: &str| parse_selector(resource[field].as_str().expect(field));
    if selector("failureCondition")
        .iter()
        .any(|requirement| matches(requirement, &object))
    {
        Verdict::Failed
    } else if selector("successCondition")
        .iter()
        .all(|requirement| matches(requirement, &object))
    {
        Verdict::Succeeded
    } else {
        Verdict::Waiting
    }
}

/// `kubectl get -o jsonpath=PATH`: kubectl's `{.a.b}` template turned into `$.a.b` (as
/// kube-client does for kubeconfig exec credentials), its results printed space-separated, a
/// string without quotes.
fn kubectl_jsonpath(object: &Value, path: &str) -> String {
    use jsonpath_rust::JsonPath;
    let inner = path
        .strip_prefix('{')
        .and_then(|path| path.strip_suffix('}'))
        .expect("a kubectl template {...}");
    object
        .query(&format!("${inner}"))
        .unwrap_or_else(|error| panic!("{path}: {error}"))
        .into_iter()
        .map(|value| match value {
            Value::String(text) => text.clone(),
            other => other.to_string(),
        })
        .collect::<Vec<_>>()
        .join(" ")
}

// === the tests ===

/// Creates the Workflow (so that its uid can own the Experiment) and then the tune step's
/// Experiment from the resource template, as Argo's controller and executor would; returns the
/// Experiment's generated name.
async fn run_tune_node(
    harness: &Harness,
    workflow: &Value,
    workflows: &Api<DynamicObject>,
) -> (String, DynamicObject) {
    let created = workflows
        .create(
            &PostParams::default(),
            &serde_json::from_value(workflow.clone()).expect("a Workflow"),
        )
        .await
        .expect("create the Workflow");
    let inputs = inputs_of(task(workflow, "tune"), &workflow_parameters(workflow));
    assert_eq!(
        inputs
            .get("inputs.parameters.params-trainer_image")
            .map(String::as_str),
        Some(TRAINER_IMAGE)
    );
    let resource = &template(workflow, "step-tune")["resource"];
    assert_eq!(resource["action"], "create");
    assert_eq!(resource["setOwnerReference"], true);
    let manifest = substitute(resource["manifest"].as_str().expect("a manifest"), &inputs);
    let mut manifest: Value = serde_json::from_str(&manifest).expect("the manifest is JSON");
    manifest["metadata"]["ownerReferences"] = json!([{
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "Workflow",
        "name": created.metadata.name,
        "uid": created.metadata.uid,
        "controller": true,
        "blockOwnerDeletion": true,
    }]);
    let experiment = experiments(harness)
        .create(
            &PostParams::default(),
            &serde_json::from_value(manifest).expect("an Experiment"),
        )
        .await
        .expect("the manifest creates a valid Experiment");
    let name = experiment.metadata.name.clone().expect("a generated name");
    assert!(
        name.starts_with("tune-then-train-tune-") && name.len() <= 40,
        "{name}"
    );
    (name, created)
}

fn experiments(harness: &Harness) -> Api<DynamicObject> {
    Api::namespaced_with(
        harness.client.clone(),
        &harness.namespace,
        &harness.group.experiments(),
    )
}

async fn experiment_json(harness: &Harness, name: &str) -> Value {
    serde_json::to_value(
        experiments(harness)
            .get(name)
            .await
            .expect("the Experiment"),
    )
    .expect("JSON")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tune_step_on_argo_runs_its_experiment_and_hands_the_best_trial_to_the_next_step() {
    let harness = Harness::new("tune-step").await;
    install_workflow_crd(&harness.client).await;
    let workflow = compile(&tune_then_train(
        json!({"maxTrialCount": 3, "parallelTrialCount": 2}),
    ));
    let resource = template(&workflow, "step-tune")["resource"].clone();
    let workflows = workflows(&harness);
    let (name, created) = run_tune_node(&harness, &workflow, &workflows).await;
    let mut new = experiment_json(&harness, &name).await;
    assert_eq!(
        verdict(&resource, &new),
        Verdict::Waiting,
        "a new experiment is neither succeeded nor failed"
    );
    // Katib's controller writes a zero completion time (null) when it creates an experiment.
    new["status"] = json!({"completionTime": null, "conditions": [
        {"type": "Created", "status": "True", "reason": "ExperimentCreated"},
    ]});
    assert_eq!(verdict(&resource, &new), Verdict::Waiting);

    play_until_done(&harness, &name, 2, HashSet::new()).await;
    let done = experiment_json(&harness, &name).await;
    assert_eq!(verdict(&resource, &done), Verdict::Succeeded, "{done:#}");

    // The outputs, read as `kubectl get -o jsonpath` reads them, are the best trial's.
    let outputs: BTreeMap<String, String> =
        template(&workflow, "step-tune")["outputs"]["parameters"]
            .as_array()
            .expect("output parameters")
            .iter()
            .map(|output| {
                let path = output["valueFrom"]["jsonPath"]
                    .as_str()
                    .expect("a jsonPath");
                (
                    output["name"].as_str().expect("a name").to_owned(),
                    kubectl_jsonpath(&done, path),
                )
            })
            .collect();
    let trials = harness.trials().await;
    assert_eq!(trials.len(), 3);
    let lr = |trial: &sextant_controller::kube::TrialResource| {
        trial.spec.parameter_assignments[0].value.clone()
    };
    let best = trials
        .iter()
        .min_by(|a, b| {
            loss_for(lr(a).parse().expect("lr")).total_cmp(&loss_for(lr(b).parse().expect("lr")))
        })
        .expect("trials");
    let best_lr = lr(best);
    assert_eq!(outputs["lr"], best_lr, "{done:#}");
    let objective: f64 = outputs["objective"].parse().expect("a number");
    assert_eq!(
        objective,
        loss_for(best_lr.parse().expect("lr")),
        "{done:#}"
    );
    assert_eq!(
        done["status"]["currentOptimalTrial"]["bestTrialName"],
        json!(kube::ResourceExt::name_any(best))
    );

    // The train step's command receives them, substituted as Argo substitutes them.
    let globals: BTreeMap<String, String> = outputs
        .iter()
        .map(|(output, value)| {
            (
                format!("tasks.tune.outputs.parameters.{output}"),
                value.clone(),
            )
        })
        .collect();
    let inputs = inputs_of(task(&workflow, "train"), &globals);
    let command: Vec<String> = template(&workflow, "step-train")["container"]["command"]
        .as_array()
        .expect("a command")
        .iter()
        .map(|argument| substitute(argument.as_str().expect("text"), &inputs))
        .collect();
    assert_eq!(
        command,
        [
            "python3",
            "train.py",
            "--lr",
            &best_lr,
            "--expected-loss",
            &outputs["objective"]
        ]
    );

    // The Workflow owns the Experiment: deleting it deletes the Experiment.
    workflows
        .delete(
            created.metadata.name.as_deref().expect("a name"),
            &DeleteParams::foreground(),
        )
        .await
        .expect("delete the Workflow");
    wait_until("the Experiment to go with its Workflow", || async {
        experiments(&harness)
            .get_opt(&name)
            .await
            .is_ok_and(|found| found.is_none())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tune_step_on_argo_fails_when_its_experiment_fails() {
    let harness = Harness::new("tune-fail").await;
    install_workflow_crd(&harness.client).await;
    let workflow = compile(&tune_then_train(json!({
        "maxTrialCount": 2, "parallelTrialCount": 1, "maxFailedTrialCount": 1,
    })));
    let resource = template(&workflow, "step-tune")["resource"].clone();
    let (name, _) = run_tune_node(&harness, &workflow, &workflows(&harness)).await;
    // The kubelet's part: the first trial's Job fails.
    wait_until("the first trial's Job", || async {
        harness.job_count().await == 1
    })
    .await;
    let trial = harness.trials().await[0].clone();
    harness
        .end_job(
            &kube::ResourceExt::name_any(&trial),
            "Failed",
            "BackoffLimitExceeded",
        )
        .await;
    harness.wait_for_experiment_condition(&name, "Failed").await;
    let failed = experiment_json(&harness, &name).await;
    assert_eq!(verdict(&resource, &failed), Verdict::Failed, "{failed:#}");
}

#[test]
fn sextant_pipeline_compile_prints_the_tune_step_as_a_resource_template() {
    let scratch = Scratch::new();
    let pipeline = tune_then_train(json!({}));
    let file = scratch.write(
        "tune-then-train.yaml",
        &serde_yaml::to_string(&pipeline).expect("YAML"),
    );
    let file = file.display().to_string();
    // The printed Workflow and its tune step's Experiment manifest.
    let compiled = |options: &[&str]| {
        let output = scratch.output(&[&["pipeline", "compile", file.as_str()], options].concat());
        assert_eq!(output.status.code(), Some(0), "{}", explain(&output));
        let printed: Value = serde_yaml::from_slice(&output.stdout).expect("a YAML Workflow");
        let manifest: Value = serde_json::from_str(
            template(&printed, "step-tune")["resource"]["manifest"]
                .as_str()
                .expect("a manifest"),
        )
        .expect("JSON");
        (printed, manifest)
    };
    let (printed, manifest) = compiled(&["--target", "argo"]);
    assert_eq!(printed, compile(&pipeline));
    assert_eq!(manifest["apiVersion"], "sextant.dev/v1beta1");

    // For a cluster whose controller reconciles Katib's kinds.
    let (_, manifest) = compiled(&["--api-group", "kubeflow.org"]);
    assert_eq!(manifest["apiVersion"], "kubeflow.org/v1beta1");
    let output = scratch.output(&["pipeline", "compile", &file, "--api-group", "example.com"]);
    assert_eq!(output.status.code(), Some(2), "{}", explain(&output));
}
