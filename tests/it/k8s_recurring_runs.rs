//! RecurringRuns against the real API server testbed (see `kubernetes.rs`): `sextant
//! controller` runs as the least-privileged user, bound to nothing but `deploy/rbac.yaml`, with
//! the definitions of `deploy/crds/` installed, on per-second schedules.
//!
//! No PipelineRun controller runs the runs here (nor an Argo controller their Workflows): the
//! tests play that part by patching a PipelineRun's `status.phase` to `Succeeded` when they
//! want a run to end.

use std::time::Duration;

use chrono::{DateTime, Utc};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{ListParams, Patch, PatchParams, PostParams};
use kube::{Api, ResourceExt};
use serde_json::{Value, json};
use sextant_controller::kube::ApiGroup;
use sextant_controller::kube::pipeline_resources::{PipelineRun, RecurringRun};
use sextant_controller::kube::recurring_runs::{
    RECURRING_RUN_LABEL, SCHEDULED_TIME_ANNOTATION, label_value,
};

use crate::kubernetes::{
    Harness, apply_file, client_for, install_crds_and_role, install_workflow_crd, wait_established,
    wait_until,
};

/// One of a recurring run's PipelineRuns, as the tests read it.
#[derive(Debug, Clone)]
struct Run {
    name: String,
    scheduled: DateTime<Utc>,
    created: DateTime<Utc>,
}

/// A harness whose controller may reconcile RecurringRuns: the pipeline definitions and
/// Argo's Workflow kind are installed, and the controller's rights to them in force, before it
/// starts.
async fn harness(name: &str) -> Harness {
    let admin = client_for("kubeconfig").await;
    install_crds_and_role(&admin, ApiGroup::Sextant).await;
    let crds: Api<CustomResourceDefinition> = Api::all(admin.clone());
    for plural in ["pipelines", "pipelineruns", "recurringruns"] {
        let crd = format!("{plural}.sextant.dev");
        apply_file(&admin, &format!("deploy/crds/{crd}.yaml")).await;
        wait_established(&crds, &crd).await;
    }
    // A PipelineRun controller, where one runs beside this one, turns the runs into Workflows.
    install_workflow_crd(&admin).await;
    let controller = client_for("kubeconfig-controller").await;
    wait_until(
        "the controller's rights to recurring and pipeline runs",
        || async {
            Api::<RecurringRun>::all(controller.clone())
                .list(&ListParams::default())
                .await
                .is_ok()
                && Api::<PipelineRun>::all(controller.clone())
                    .list(&ListParams::default())
                    .await
                    .is_ok()
        },
    )
    .await;
    Harness::new(name).await
}

fn recurring_runs(harness: &Harness) -> Api<RecurringRun> {
    Api::namespaced(harness.client.clone(), &harness.namespace)
}

fn pipeline_runs(harness: &Harness) -> Api<PipelineRun> {
    Api::namespaced(harness.client.clone(), &harness.namespace)
}

/// Creates the recurring run `name` of a one-step pipeline with `extra_spec` merged into its
/// spec (`schedule` among them).
async fn create_recurring_run(harness: &Harness, name: &str, extra_spec: Value) {
    let mut spec = json!({
        "runTemplate": {"pipelineSpec": {"steps": [
            {"name": "tick", "image": "busybox:1.36", "command": ["true"]},
        ]}},
    });
    for (key, value) in extra_spec.as_object().expect("an object") {
        spec[key] = value.clone();
    }
    let resource: RecurringRun = serde_json::from_value(json!({
        "apiVersion": "sextant.dev/v1beta1",
        "kind": "RecurringRun",
        "metadata": {"name": name, "namespace": harness.namespace},
        "spec": spec,
    }))
    .expect("a RecurringRun");
    recurring_runs(harness)
        .create(&PostParams::default(), &resource)
        .await
        .expect("create the recurring run");
}

/// The runs of the recurring run `name`, by scheduled time.
async fn runs_of(harness: &Harness, name: &str) -> Vec<Run> {
    let selector = format!("{RECURRING_RUN_LABEL}={}", label_value(name));
    let mut runs: Vec<Run> = pipeline_runs(harness)
        .list(&ListParams::default().labels(&selector))
        .await
        .expect("list the pipeline runs")
        .items
        .iter()
        .map(|run| Run {
            name: run.name_any(),
            scheduled: DateTime::parse_from_rfc3339(&run.annotations()[SCHEDULED_TIME_ANNOTATION])
                .expect("an RFC 3339 scheduled time")
                .with_timezone(&Utc),
            created: DateTime::from_timestamp(
                run.creation_timestamp().expect("created").0.as_second(),
                0,
            )
            .expect("a time"),
        })
        .collect();
    runs.sort_by_key(|run| run.scheduled);
    runs
}

async fn wait_for_runs(harness: &Harness, name: &str, count: usize) -> Vec<Run> {
    wait_until(&format!("{count} runs of {name}"), || async {
        runs_of(harness, name).await.len() >= count
    })
    .await;
    runs_of(harness, name).await
}

/// Ends every run of `name`, as the PipelineRun controller does when its Workflow succeeded.
async fn end_runs(harness: &Harness, name: &str) {
    let patch = json!({"status": {"phase": "Succeeded"}});
    for run in runs_of(harness, name).await {
        pipeline_runs(harness)
            .patch_status(&run.name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
            .expect("end the run");
    }
}

/// Asserts the runs' scheduled times are consecutive seconds: none twice, none missing.
fn assert_consecutive(runs: &[Run]) {
    for pair in runs.windows(2) {
        assert_eq!(
            pair[1].scheduled - pair[0].scheduled,
            chrono::Duration::seconds(1),
            "not consecutive firings: {runs:#?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runs_fire_on_time_and_wait_while_max_concurrency_runs_are_active() {
    let harness = harness("rr-limit").await;
    create_recurring_run(
        &harness,
        "every-second",
        json!({"schedule": {"cron": "* * * * * *"}, "maxConcurrency": 2}),
    )
    .await;
    let first = wait_for_runs(&harness, "every-second", 2).await;
    assert_consecutive(&first);
    for run in &first {
        assert_eq!(
            run.name,
            format!("every-second-{}", run.scheduled.timestamp())
        );
        let late = run.created - run.scheduled;
        assert!(
            late >= chrono::Duration::zero() && late <= chrono::Duration::seconds(1),
            "created on time (to the second): {run:?}"
        );
    }

    // Both are active: the firings of the next seconds wait.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert_eq!(runs_of(&harness, "every-second").await.len(), 2);
    let status = recurring_runs(&harness)
        .get("every-second")
        .await
        .expect("the recurring run")
        .status
        .expect("a status");
    let names: Vec<String> = first.iter().map(|run| run.name.clone()).collect();
    assert_eq!(status.active, names);
    assert!(
        status
            .conditions
            .iter()
            .any(|condition| condition.type_ == "Valid" && condition.status == "True")
    );

    // Both end: the waiting firings start, oldest first, two at a time.
    end_runs(&harness, "every-second").await;
    let all = wait_for_runs(&harness, "every-second", 4).await;
    assert_eq!(all.len(), 4, "{all:#?}");
    assert_consecutive(&all);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(
        runs_of(&harness, "every-second").await.len(),
        4,
        "the limit holds again"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_catchup_starts_one_run_for_the_firings_missed_while_the_controller_was_down() {
    let mut harness = harness("rr-no-catchup").await;
    create_recurring_run(
        &harness,
        "skipping",
        json!({"schedule": {"cron": "* * * * * *"}, "noCatchup": true}),
    )
    .await;
    wait_for_runs(&harness, "skipping", 2).await;
    harness.kill_controller();
    let before = runs_of(&harness, "skipping").await;
    let last = before.last().expect("runs").scheduled;
    end_runs(&harness, "skipping").await;
    tokio::time::sleep(Duration::from_secs(4)).await;
    let restarted = Utc::now();
    harness.start_controller();

    let after: Vec<Run> = wait_for_runs(&harness, "skipping", before.len() + 3)
        .await
        .into_iter()
        .filter(|run| run.scheduled > last)
        .collect();
    let catch_up = &after[0];
    assert!(
        catch_up.scheduled - last >= chrono::Duration::seconds(4),
        "the firings missed in the pause are skipped: {after:#?} after {last}"
    );
    assert!(
        catch_up.scheduled >= restarted - chrono::Duration::seconds(1),
        "the one run for the pause is its latest firing: {catch_up:?}, restarted at {restarted}"
    );
    assert_consecutive(&after);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sigkilled_controller_starts_every_missed_firing_and_none_twice() {
    let mut harness = harness("rr-sigkill").await;
    create_recurring_run(
        &harness,
        "catching-up",
        json!({"schedule": {"cron": "* * * * * *"}}),
    )
    .await;
    let mut count = 0;
    for _ in 0..3 {
        // Killed the moment a new run shows, often between its create and the status write.
        wait_for_runs(&harness, "catching-up", count + 2).await;
        harness.kill_controller();
        // Free the slots, so that what follows is catching up, not waiting for a slot.
        end_runs(&harness, "catching-up").await;
        tokio::time::sleep(Duration::from_millis(1500)).await;
        count = runs_of(&harness, "catching-up").await.len();
        harness.start_controller();
    }
    wait_for_runs(&harness, "catching-up", count + 3).await;
    harness.kill_controller();
    let runs = runs_of(&harness, "catching-up").await;
    assert_consecutive(&runs);
    for run in &runs {
        assert_eq!(
            run.name,
            format!("catching-up-{}", run.scheduled.timestamp())
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invalid_schedule_is_a_condition_naming_its_field_and_fires_nothing() {
    let harness = harness("rr-invalid").await;
    let cases = [
        (
            "bad-cron",
            json!({"schedule": {"cron": "61 * * * * *"}}),
            "spec.schedule.cron: ",
        ),
        (
            "bad-zone",
            json!({"schedule": {"cron": "* * * * * *", "timeZone": "Mars/Olympus_Mons"}}),
            "spec.schedule.timeZone: \"Mars/Olympus_Mons\" is not an IANA time zone name",
        ),
        (
            "bad-window",
            json!({"schedule": {
                "cron": "* * * * * *",
                "startTime": "2030-01-02T00:00:00Z",
                "endTime": "2030-01-01T00:00:00Z",
            }}),
            "spec.schedule.endTime: endTime 2030-01-01 00:00:00 UTC is not after startTime",
        ),
        (
            "too-many",
            json!({"schedule": {"cron": "* * * * * *"}, "maxConcurrency": 11}),
            "spec.maxConcurrency: 11 is not in 1..=10",
        ),
    ];
    for (name, spec, _) in &cases {
        create_recurring_run(&harness, name, spec.clone()).await;
    }
    for (name, _, message) in &cases {
        wait_until(&format!("{name} invalid"), || async {
            let resource = recurring_runs(&harness).get(name).await.expect("get it");
            resource.status.is_some_and(|status| {
                status.conditions.iter().any(|condition| {
                    condition.type_ == "Valid"
                        && condition.status == "False"
                        && condition
                            .message
                            .as_deref()
                            .is_some_and(|text| text.starts_with(message))
                })
            })
        })
        .await;
    }
    // A valid schedule would have fired by now.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let runs = pipeline_runs(&harness)
        .list(&ListParams::default())
        .await
        .expect("list the pipeline runs");
    assert!(runs.items.is_empty(), "no run: {:?}", runs.items);
}
