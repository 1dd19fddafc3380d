//! Compilation to Argo Workflows, validated against Argo's official JSON schema.

use std::sync::{Arc, OnceLock};

use serde_json::{Value, json};
use sextant_pipeline::spec::SpecIssue;
use sextant_pipeline::{
    ArgoForms, ArgoStep, ArgoStepForm, Pipeline, compile_argo, compile_argo_with,
};

use crate::header;

fn validator() -> &'static jsonschema::Validator {
    static VALIDATOR: OnceLock<jsonschema::Validator> = OnceLock::new();
    VALIDATOR.get_or_init(|| {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/data/argo-workflows-schema.json"
        );
        let text = std::fs::read_to_string(path).expect("the Argo Workflows schema");
        let schema: Value = serde_json::from_str(&text).expect("schema json");
        jsonschema::validator_for(&schema).expect("a usable schema")
    })
}

fn assert_valid(workflow: &Value) {
    let errors: Vec<String> = validator()
        .iter_errors(workflow)
        .map(|error| format!("{} at {}", error, error.instance_path()))
        .collect();
    assert!(
        errors.is_empty(),
        "schema errors: {errors:#?}\n{workflow:#}"
    );
}

fn full_pipeline() -> Pipeline {
    Pipeline::from_yaml(&format!(
        "{}spec:
  params: [{{name: rows, default: '100'}}, {{name: mode}}]
  steps:
    - name: prepare
      image: python:3.12
      command: [python3, prepare.py, --rows, '{{{{params.rows}}}}']
      env: {{MODE: '{{{{params.mode}}}}'}}
      outputs:
        params: [{{name: count, path: count.txt}}]
        artifacts: [{{name: data, path: data.csv}}]
    - name: train
      image: python:3.12
      command: [python3, train.py, --data, '{{{{steps.prepare.outputs.artifacts.data}}}}']
      when: '{{{{steps.prepare.outputs.params.count}}}} > 0 && {{{{params.mode}}}} != dry'
      retry: {{limit: 2, backoffSeconds: 1, maxBackoffSeconds: 10}}
      timeoutSeconds: 600
      outputs: {{params: [{{name: score, path: score.txt}}]}}
    - name: sweep
      image: alpine:3
      dependsOn: [train]
      withItems: [{{lr: '0.1'}}, {{lr: '0.01'}}]
      command: [echo, '{{{{item.lr}}}}', '{{{{item}}}}']
      outputs: {{params: [{{name: result, path: result.txt}}]}}
    - name: collect
      image: alpine:3
      command: [echo, '{{{{steps.sweep.outputs.params.result}}}}']
",
        header("full")
    ))
    .unwrap()
}

#[test]
fn a_full_pipeline_compiles_to_a_schema_valid_workflow() {
    let workflow = compile_argo(&full_pipeline()).unwrap();
    assert_valid(&workflow);
    assert_eq!(workflow["kind"], "Workflow");
    assert_eq!(workflow["metadata"]["generateName"], "full-");
    let spec = &workflow["spec"];
    assert_eq!(spec["entrypoint"], "sextant-dag");
    assert_eq!(
        spec["arguments"]["parameters"],
        json!([{"name": "rows", "value": "100"}, {"name": "mode"}])
    );
    let tasks = spec["templates"][0]["dag"]["tasks"].as_array().unwrap();
    let task = |name: &str| {
        tasks
            .iter()
            .find(|task| task["name"] == name)
            .unwrap()
            .clone()
    };
    let train = task("train");
    assert_eq!(train["depends"], "prepare.Succeeded");
    assert_eq!(
        train["when"],
        "({{tasks.prepare.outputs.parameters.count}} > 0 && '{{workflow.parameters.mode}}' != 'dry')"
    );
    assert_eq!(
        train["arguments"]["artifacts"],
        json!([{"name": "steps-prepare-artifacts-data", "from": "{{tasks.prepare.outputs.artifacts.data}}"}])
    );
    let sweep = task("sweep");
    assert_eq!(sweep["withItems"], json!([{"lr": "0.1"}, {"lr": "0.01"}]));
    assert_eq!(sweep["depends"], "train.Succeeded");
    let collect = task("collect");
    assert_eq!(
        collect["arguments"]["parameters"],
        json!([{"name": "steps-sweep-params-result", "value": "{{tasks.sweep.outputs.parameters.result}}"}])
    );
    let templates = spec["templates"].as_array().unwrap();
    let template = |name: &str| {
        templates
            .iter()
            .find(|template| template["name"] == name)
            .unwrap()
            .clone()
    };
    let train_template = template("step-train");
    assert_eq!(
        train_template["container"]["command"],
        json!([
            "python3",
            "train.py",
            "--data",
            "/sextant/inputs/prepare/data"
        ])
    );
    assert_eq!(
        train_template["retryStrategy"],
        json!({"limit": "2", "retryPolicy": "Always", "backoff": {"duration": "1s", "factor": "2", "cap": "10s"}})
    );
    assert_eq!(train_template["activeDeadlineSeconds"], "600");
    let prepare_template = template("step-prepare");
    assert_eq!(
        prepare_template["container"]["command"],
        json!([
            "python3",
            "prepare.py",
            "--rows",
            "{{inputs.parameters.params-rows}}"
        ])
    );
    assert_eq!(
        prepare_template["container"]["env"],
        json!([{"name": "MODE", "value": "{{inputs.parameters.params-mode}}"}])
    );
    assert_eq!(
        prepare_template["outputs"]["parameters"],
        json!([{"name": "count", "valueFrom": {"path": "/sextant/work/count.txt"}}])
    );
    assert_eq!(
        template("step-sweep")["container"]["command"],
        json!([
            "echo",
            "{{inputs.parameters.item-lr}}",
            "{{inputs.parameters.item}}"
        ])
    );
}

#[test]
fn the_schema_check_catches_a_broken_workflow() {
    let mut workflow = compile_argo(&full_pipeline()).unwrap();
    workflow["spec"]["entrypoint"] = json!(5);
    assert!(!validator().is_valid(&workflow));
    let mut workflow = compile_argo(&full_pipeline()).unwrap();
    workflow["spec"]["templates"][1]["container"]
        .as_object_mut()
        .unwrap()
        .remove("image");
    assert!(
        !validator().is_valid(&workflow),
        "a container without an image must be invalid"
    );
}

#[test]
fn steps_without_an_image_are_each_named() {
    let pipeline = Pipeline::from_yaml(&format!(
        "{}spec:
  steps:
    - {{name: a, command: ['true']}}
    - {{name: b, image: alpine, command: ['true']}}
    - {{name: c, command: ['true']}}
",
        header("imageless")
    ))
    .unwrap();
    let message = compile_argo(&pipeline).unwrap_err().to_string();
    assert!(
        message.contains("spec.steps[0].image: step `a` has no image"),
        "{message}"
    );
    assert!(
        message.contains("spec.steps[2].image: step `c` has no image"),
        "{message}"
    );
    assert!(!message.contains("step `b`"), "{message}");
}

#[test]
fn what_argo_cannot_express_is_reported_per_step() {
    let pipeline = Pipeline::from_yaml(&format!(
        "{}spec:
  steps:
    - name: fan
      image: alpine
      withItems: [a, b]
      command: ['true']
      outputs: {{artifacts: [{{name: out, path: out}}]}}
    - name: gather
      image: alpine
      command: [cat, '{{{{steps.fan.outputs.artifacts.out}}}}']
    - name: tune
      kind: tune
      spec: {{objective: x}}
",
        header("unsupported")
    ))
    .unwrap();
    let message = compile_argo(&pipeline).unwrap_err().to_string();
    assert!(
        message.contains("spec.steps[1].command[1]") && message.contains("fanned-out step `fan`"),
        "{message}"
    );
    assert!(
        message.contains("spec.steps[2].kind: step `tune` has kind `tune`"),
        "{message}"
    );
}

/// A plug-in kind whose Argo form creates a ConfigMap holding its spec's `text`.
struct NoteForm;

impl ArgoStepForm for NoteForm {
    fn kind(&self) -> &str {
        "note"
    }

    fn template(&self, step: &ArgoStep<'_>) -> Result<Value, Vec<SpecIssue>> {
        if step.spec["refuse"] == true {
            return Err(vec![SpecIssue {
                path: format!("{}.spec.refuse", step.path),
                message: format!(
                    "step `{}` of pipeline `{}` refused",
                    step.step.name, step.pipeline.name
                ),
            }]);
        }
        let manifest = json!({
            "apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"generateName": "note-"},
            "data": {"text": step.spec["text"]},
        });
        Ok(json!({"resource": {"action": "create", "manifest": manifest.to_string()}}))
    }
}

fn note_pipeline(note_spec: &str) -> Pipeline {
    Pipeline::from_yaml(&format!(
        "{}spec:
  params: [{{name: who, default: me}}]
  steps:
    - name: count
      image: alpine:3
      command: [sh, -c, 'echo 3 > n']
      outputs: {{params: [{{name: n, path: n}}], artifacts: [{{name: log, path: n}}]}}
    - name: note
      kind: note
      retry: {{limit: 1}}
      timeoutSeconds: 30
      spec: {note_spec}
",
        header("notes")
    ))
    .unwrap()
}

fn note_forms() -> ArgoForms {
    let mut forms = ArgoForms::default();
    forms.register(Arc::new(NoteForm));
    forms
}

#[test]
fn plug_in_steps_compile_through_their_kinds_argo_forms() {
    let pipeline =
        note_pipeline("{text: '{{params.who}} counted {{steps.count.outputs.params.n}}'}");
    let message = compile_argo(&pipeline).unwrap_err().to_string();
    assert!(
        message.contains(
            "spec.steps[1].kind: step `note` has kind `note`, which has no container form"
        ),
        "{message}"
    );
    let workflow = compile_argo_with(&pipeline, &note_forms()).unwrap();
    assert_valid(&workflow);
    let templates = workflow["spec"]["templates"].as_array().unwrap();
    let note = templates
        .iter()
        .find(|template| template["name"] == "step-note")
        .expect("the note step's template");
    assert_eq!(
        note["inputs"]["parameters"],
        json!([{"name": "params-who"}, {"name": "steps-count-params-n"}])
    );
    let manifest: Value =
        serde_json::from_str(note["resource"]["manifest"].as_str().unwrap()).unwrap();
    assert_eq!(
        manifest["data"]["text"],
        "{{inputs.parameters.params-who}} counted {{inputs.parameters.steps-count-params-n}}"
    );
    assert_eq!(note["retryStrategy"]["limit"], "1");
    assert_eq!(note["activeDeadlineSeconds"], "30");
    assert!(note.get("container").is_none());
    let task = workflow["spec"]["templates"][0]["dag"]["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|task| task["name"] == "note")
        .expect("the note task");
    assert_eq!(task["depends"], "count.Succeeded");
    assert_eq!(
        task["arguments"]["parameters"],
        json!([
            {"name": "params-who", "value": "{{workflow.parameters.who}}"},
            {"name": "steps-count-params-n", "value": "{{tasks.count.outputs.parameters.n}}"},
        ])
    );
}

#[test]
fn a_forms_refusal_and_artifact_references_are_reported_with_their_paths() {
    let pipeline = note_pipeline("{refuse: true, text: '{{steps.count.outputs.artifacts.log}}'}");
    let message = compile_argo_with(&pipeline, &note_forms())
        .unwrap_err()
        .to_string();
    assert!(
        message.contains("spec.steps[1].spec.refuse: step `note` of pipeline `notes` refused"),
        "{message}"
    );
    assert!(
        message.contains("spec.steps[1].spec.text: `{{steps.count.outputs.artifacts.log}}`: argo hands artifacts to containers only"),
        "{message}"
    );
}
