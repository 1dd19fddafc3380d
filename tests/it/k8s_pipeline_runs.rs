//! PipelineRuns on the real API server testbed (see `kubernetes.rs`): each becomes an Argo
//! Workflow owned by the run, and the run's status follows the Workflow's nodes.
//!
//! The controller runs as the least-privileged user, bound to the ClusterRole of
//! `deploy/rbac.yaml` only. No Argo controller runs here: the tests play its part by patching
//! the Workflows' status (phase and nodes, as Argo's controller writes them), and say so where
//! they do.

use std::time::Duration;

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{DeleteParams, Patch, PatchParams, PostParams};
use kube::{Api, ResourceExt};
use serde_json::{Value, json};
use sextant_controller::kube::PIPELINE_RUN_LABEL;
use sextant_controller::kube::pipeline_resources::{
    Pipeline, PipelineRun, PipelineRunPhase, ResourceCondition, condition,
};

use crate::kubernetes::{
    Harness, apply_file, client_for, created_workflow_schema_errors, install_workflow_crd,
    wait_established, wait_until, workflows,
};

/// Installs the pipeline kinds from `deploy/crds` and Argo's Workflow kind, then starts a
/// harness, whose controller finds them all when it starts.
async fn pipeline_harness(name: &str) -> Harness {
    let client = client_for("kubeconfig").await;
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    for name in [
        "pipelines.sextant.dev",
        "pipelineruns.sextant.dev",
        "recurringruns.sextant.dev",
    ] {
        apply_file(&client, &format!("deploy/crds/{name}.yaml")).await;
        wait_established(&crds, name).await;
    }
    install_workflow_crd(&client).await;
    Harness::new(name).await
}

fn runs(harness: &Harness) -> Api<PipelineRun> {
    Api::namespaced(harness.client.clone(), &harness.namespace)
}

/// A pipeline: `prepare` (an output param), `train` (retried, reading `lr` and `prepare`'s
/// output), `report` (two items).
fn pipeline_spec() -> Value {
    json!({
        "params": [{"name": "lr"}, {"name": "epochs", "default": "3"}],
        "steps": [
            {"name": "prepare", "image": "busybox:1", "command": ["sh", "-c", "echo 7 > n.txt"],
             "outputs": {"params": [{"name": "n", "path": "n.txt"}]}},
            {"name": "train", "image": "trainer:1", "retry": {"limit": 2},
             "command": ["train", "--lr", "{{params.lr}}", "--epochs", "{{params.epochs}}",
                         "--n", "{{steps.prepare.outputs.params.n}}"]},
            {"name": "report", "image": "busybox:1", "dependsOn": ["train"], "withItems": ["a", "b"],
             "command": ["echo", "{{item}}"]},
        ],
    })
}

async fn create_run(harness: &Harness, name: &str, spec: Value) -> PipelineRun {
    let run: PipelineRun = serde_json::from_value(json!({
        "apiVersion": "sextant.dev/v1beta1",
        "kind": "PipelineRun",
        "metadata": {"name": name},
        "spec": spec,
    }))
    .expect("a PipelineRun");
    runs(harness)
        .create(&PostParams::default(), &run)
        .await
        .expect("create the run")
}

async fn wait_for_run(
    harness: &Harness,
    name: &str,
    what: &str,
    check: impl Fn(&PipelineRun) -> bool,
) -> PipelineRun {
    wait_until(&format!("run {name}: {what}"), || async {
        runs(harness)
            .get(name)
            .await
            .ok()
            .is_some_and(|run| check(&run))
    })
    .await;
    runs(harness).get(name).await.expect("the run")
}

fn phase(run: &PipelineRun) -> Option<PipelineRunPhase> {
    run.status.as_ref().and_then(|status| status.phase)
}

fn run_condition(run: &PipelineRun, type_: &str) -> Option<ResourceCondition> {
    condition(&run.status.as_ref()?.conditions, type_).cloned()
}

/// Plays Argo's controller: merges `status` into the Workflow's (Argo's Workflow kind has no
/// status subresource; its controller writes the status with the object).
async fn play_argo(harness: &Harness, name: &str, status: Value) {
    workflows(harness)
        .patch(
            name,
            &PatchParams::default(),
            &Patch::Merge(&json!({"status": status})),
        )
        .await
        .expect("patch the workflow's status");
}

async fn workflow_exists(harness: &Harness, name: &str) -> bool {
    workflows(harness)
        .get_opt(name)
        .await
        .expect("look for the workflow")
        .is_some()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pipeline_run_becomes_a_workflow_whose_nodes_drive_its_status() {
    let harness = pipeline_harness("prun").await;
    let run = create_run(
        &harness,
        "nightly",
        json!({
            "pipelineSpec": pipeline_spec(),
            "params": [{"name": "lr", "value": "0.05"}],
            "serviceAccountName": "trainer",
        }),
    )
    .await;
    let workflows = workflows(&harness);
    wait_until("the run's workflow", || async {
        workflow_exists(&harness, "nightly").await
    })
    .await;
    let workflow =
        serde_json::to_value(workflows.get("nightly").await.expect("the workflow")).expect("JSON");
    let errors = created_workflow_schema_errors(&workflow);
    assert!(errors.is_empty(), "schema errors: {errors:#?}");
    assert_eq!(
        workflow["spec"]["arguments"]["parameters"],
        json!([{"name": "lr", "value": "0.05"}, {"name": "epochs", "value": "3"}])
    );
    assert_eq!(workflow["spec"]["serviceAccountName"], "trainer");
    assert_eq!(
        workflow["metadata"]["labels"][PIPELINE_RUN_LABEL],
        "nightly"
    );
    let owner = &workflow["metadata"]["ownerReferences"][0];
    assert_eq!(owner["kind"], "PipelineRun");
    assert_eq!(owner["uid"], json!(run.metadata.uid));
    assert_eq!(
        (&owner["controller"], &owner["blockOwnerDeletion"]),
        (&json!(true), &json!(true))
    );
    let run = wait_for_run(&harness, "nightly", "valid and pending", |run| {
        run_condition(run, "Valid").is_some_and(|valid| valid.status == "True")
    })
    .await;
    assert_eq!(phase(&run), Some(PipelineRunPhase::Pending));
    let status = run.status.expect("a status");
    assert_eq!(status.workflow_name.as_deref(), Some("nightly"));

    // Play Argo's controller: the DAG runs, `prepare` succeeded, `train` is on its first try.
    play_argo(
        &harness,
        "nightly",
        json!({
            "phase": "Running",
            "startedAt": "2026-01-01T00:00:00Z",
            "nodes": {
                "nightly": {"id": "nightly", "name": "nightly", "displayName": "nightly", "type": "DAG",
                            "templateName": "sextant-dag", "phase": "Running"},
                "nightly-1": {"id": "nightly-1", "name": "nightly.prepare", "displayName": "prepare", "type": "Pod",
                              "templateName": "step-prepare", "phase": "Succeeded",
                              "outputs": {"parameters": [{"name": "n", "value": "7"}]}},
                "nightly-2": {"id": "nightly-2", "name": "nightly.train", "displayName": "train", "type": "Retry",
                              "templateName": "step-train", "phase": "Running", "children": ["nightly-3"]},
                "nightly-3": {"id": "nightly-3", "name": "nightly.train(0)", "displayName": "train(0)", "type": "Pod",
                              "templateName": "step-train", "phase": "Running"},
            },
        }),
    )
    .await;
    let run = wait_for_run(&harness, "nightly", "running two steps", |run| {
        phase(run) == Some(PipelineRunPhase::Running)
            && run
                .status
                .as_ref()
                .is_some_and(|status| status.steps.len() == 2)
    })
    .await;
    let status = run.status.expect("a status");
    assert_eq!(
        (
            status.steps[0].name.as_str(),
            status.steps[0].phase.as_str()
        ),
        ("prepare", "Succeeded")
    );
    assert_eq!(status.steps[0].outputs["n"], "7");
    assert_eq!(
        (
            status.steps[1].name.as_str(),
            status.steps[1].phase.as_str()
        ),
        ("train", "Running")
    );

    // Play Argo's controller: `train` failed once and succeeded on its retry, both items of
    // `report` succeeded, and the Workflow with them.
    play_argo(
        &harness,
        "nightly",
        json!({
            "phase": "Succeeded",
            "finishedAt": "2026-01-01T00:10:00Z",
            "nodes": {
                "nightly": {"phase": "Succeeded"},
                "nightly-2": {"phase": "Succeeded", "children": ["nightly-3", "nightly-4"]},
                "nightly-3": {"phase": "Failed", "message": "OOMKilled"},
                "nightly-4": {"id": "nightly-4", "name": "nightly.train(1)", "displayName": "train(1)", "type": "Pod",
                              "templateName": "step-train", "phase": "Succeeded"},
                "nightly-5": {"id": "nightly-5", "name": "nightly.report", "displayName": "report", "type": "TaskGroup",
                              "templateName": "step-report", "phase": "Succeeded"},
                "nightly-6": {"id": "nightly-6", "name": "nightly.report(1:b)", "displayName": "report(1:b)", "type": "Pod",
                              "templateName": "step-report", "phase": "Succeeded"},
                "nightly-7": {"id": "nightly-7", "name": "nightly.report(0:a)", "displayName": "report(0:a)", "type": "Pod",
                              "templateName": "step-report", "phase": "Succeeded"},
            },
        }),
    )
    .await;
    let run = wait_for_run(&harness, "nightly", "succeeded", |run| {
        phase(run) == Some(PipelineRunPhase::Succeeded)
    })
    .await;
    let status = run.status.clone().expect("a status");
    let steps: Vec<(&str, Option<usize>, &str, u32)> = status
        .steps
        .iter()
        .map(|step| {
            (
                step.name.as_str(),
                step.item_index,
                step.phase.as_str(),
                step.retries,
            )
        })
        .collect();
    assert_eq!(
        steps,
        [
            ("prepare", None, "Succeeded", 0),
            ("train", None, "Succeeded", 1),
            ("report", Some(0), "Succeeded", 0),
            ("report", Some(1), "Succeeded", 0),
        ]
    );
    assert_eq!(
        status.finished_at.map(|time| time.to_rfc3339()),
        Some("2026-01-01T00:10:00+00:00".to_owned())
    );
    assert!(run_condition(&run, "Succeeded").is_some_and(|succeeded| succeeded.status == "True"));

    // A run that ended is never changed again, whatever its Workflow does.
    play_argo(&harness, "nightly", json!({"phase": "Running"})).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let again = runs(&harness).get("nightly").await.expect("the run");
    assert_eq!(again.status, run.status, "a succeeded run stays as it was");

    // Deleting the run deletes its Workflow (kube-controller-manager's garbage collector).
    runs(&harness)
        .delete("nightly", &DeleteParams::default())
        .await
        .expect("delete the run");
    wait_until("the workflow to go with its run", || async {
        workflows
            .get_opt("nightly")
            .await
            .map(|workflow| {
                workflow.is_none_or(|workflow| workflow.metadata.deletion_timestamp.is_some())
            })
            .unwrap_or(false)
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_node_fails_the_run_with_its_message() {
    let harness = pipeline_harness("prun-fail").await;
    create_run(
        &harness,
        "doomed",
        json!({"pipelineSpec": pipeline_spec(), "params": [{"name": "lr", "value": "1"}]}),
    )
    .await;
    wait_until("the run's workflow", || async {
        workflow_exists(&harness, "doomed").await
    })
    .await;
    // Play Argo's controller: `train` fails for good (no retry left), the rest is omitted, and
    // the Workflow fails with Argo's own, vaguer message.
    play_argo(
        &harness,
        "doomed",
        json!({
            "phase": "Failed",
            "message": "child 'doomed-2' failed",
            "nodes": {
                "doomed-1": {"id": "doomed-1", "displayName": "prepare", "type": "Pod",
                             "templateName": "step-prepare", "phase": "Succeeded"},
                "doomed-2": {"id": "doomed-2", "displayName": "train", "type": "Retry",
                             "templateName": "step-train", "phase": "Failed", "message": "No more retries left",
                             "children": ["doomed-3"]},
                "doomed-3": {"id": "doomed-3", "displayName": "train(0)", "type": "Pod",
                             "templateName": "step-train", "phase": "Failed", "message": "Error (exit code 3)"},
                "doomed-4": {"id": "doomed-4", "displayName": "report", "type": "Skipped",
                             "templateName": "step-report", "phase": "Omitted"},
            },
        }),
    )
    .await;
    let run = wait_for_run(&harness, "doomed", "failed", |run| {
        phase(run) == Some(PipelineRunPhase::Failed)
    })
    .await;
    let status = run.status.clone().expect("a status");
    assert_eq!(
        status.message.as_deref(),
        Some("step train: No more retries left")
    );
    let failed = run_condition(&run, "Failed").expect("a Failed condition");
    assert_eq!(
        (failed.status.as_str(), failed.reason.as_deref()),
        ("True", Some("StepFailed"))
    );
    assert_eq!(
        status.steps.last().map(|step| step.phase.as_str()),
        Some("Omitted")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_is_a_condition_naming_the_field_and_no_workflow() {
    let harness = pipeline_harness("prun-bad").await;
    // A Pipeline that does not exist yet: the run waits for it.
    create_run(
        &harness,
        "by-reference",
        json!({"pipelineRef": {"name": "trainer"}, "params": [{"name": "lr", "value": "0.1"}]}),
    )
    .await;
    // A param the pipeline does not declare, and a step Argo cannot run.
    let mut spec = pipeline_spec();
    spec["steps"][2]
        .as_object_mut()
        .expect("a step")
        .remove("image");
    create_run(
        &harness,
        "undeclared",
        json!({
            "pipelineSpec": spec,
            "params": [{"name": "lr", "value": "0.1"}, {"name": "momentum", "value": "0.9"}],
        }),
    )
    .await;

    let waiting = wait_for_run(
        &harness,
        "by-reference",
        "waiting for its pipeline",
        |run| run_condition(run, "Valid").is_some_and(|valid| valid.status == "False"),
    )
    .await;
    let valid = run_condition(&waiting, "Valid").expect("Valid");
    assert_eq!(valid.reason.as_deref(), Some("PipelineNotFound"));
    assert_eq!(
        valid.message,
        Some(format!(
            "spec.pipelineRef.name: Pipeline \"trainer\" not found in namespace \"{}\"",
            harness.namespace
        ))
    );
    assert_eq!(phase(&waiting), Some(PipelineRunPhase::Pending));

    let invalid = wait_for_run(&harness, "undeclared", "failed", |run| {
        phase(run) == Some(PipelineRunPhase::Failed)
    })
    .await;
    let valid = run_condition(&invalid, "Valid").expect("Valid");
    assert_eq!(
        (valid.status.as_str(), valid.reason.as_deref()),
        ("False", Some("InvalidSpec"))
    );
    let message = valid.message.unwrap_or_default();
    let paths: Vec<&str> = message
        .lines()
        .filter_map(|line| line.split(": ").next())
        .collect();
    assert_eq!(
        paths,
        ["spec.params[1].name", "spec.pipelineSpec.steps[2].image"],
        "{message}"
    );
    assert!(!workflow_exists(&harness, "by-reference").await);
    assert!(!workflow_exists(&harness, "undeclared").await);

    // The Pipeline appears: the waiting run proceeds, with no other event to wake it.
    let pipeline: Pipeline = serde_json::from_value(json!({
        "apiVersion": "sextant.dev/v1beta1",
        "kind": "Pipeline",
        "metadata": {"name": "trainer"},
        "spec": pipeline_spec(),
    }))
    .expect("a Pipeline");
    Api::<Pipeline>::namespaced(harness.client.clone(), &harness.namespace)
        .create(&PostParams::default(), &pipeline)
        .await
        .expect("create the pipeline");
    wait_until("the referencing run's workflow", || async {
        workflow_exists(&harness, "by-reference").await
    })
    .await;
    let run = wait_for_run(&harness, "by-reference", "valid", |run| {
        run_condition(run, "Valid").is_some_and(|valid| valid.status == "True")
    })
    .await;
    assert_eq!(phase(&run), Some(PipelineRunPhase::Pending));
    let workflow = workflows(&harness)
        .get("by-reference")
        .await
        .expect("the workflow");
    assert_eq!(workflow.labels()["sextant.dev/pipeline"], "trainer");

    // The failed run stays failed, with no Workflow, now that a Pipeline exists too.
    let still = runs(&harness).get("undeclared").await.expect("the run");
    assert_eq!(still.status, invalid.status);
    assert!(!workflow_exists(&harness, "undeclared").await);
}

#[test]
fn the_committed_workflow_crd_is_the_one_the_script_writes() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let output = std::process::Command::new("python3")
        .arg(root.join("scripts/argo-workflow-crd"))
        .arg("--check")
        .output()
        .expect("run scripts/argo-workflow-crd");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
}
