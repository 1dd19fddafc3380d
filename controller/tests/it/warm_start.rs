//! Warm starts on this machine: enqueued points run first, in order, each exactly once, also
//! across an interrupted run and its resume; the trials of the experiments `fromExperiments`
//! names reach the algorithm ahead of the experiment's own, and count against none of its
//! budgets; a name the store does not hold is invalid input naming its index.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{Arc, Mutex};

use sextant_controller::cli::{self, RunArgs};
use sextant_controller::local::{LocalConfig, Progress, TrialSlots, run_experiment};
use sextant_experiment::api::common::ParameterAssignment;
use sextant_experiment::warm_start::ENQUEUED_INDEX_LABEL;
use sextant_experiment::{Experiment, load_experiments};
use sextant_pipeline::cli::ExitStatus;
use sextant_proto::api;
use sextant_proto::api::suggestion_server::{Suggestion, SuggestionServer};
use sextant_store::{Store, StoredTrial};
use tokio::net::TcpListener;
use tokio_stream::wrappers::TcpListenerStream;

/// An experiment over one double `x` in [0, 1] whose trials report `loss = x`, one at a time.
fn experiment(name: &str, algorithm: &str, max_trials: u32, warm_start: &str) -> String {
    format!(
        "apiVersion: kubeflow.org/v1beta1
kind: Experiment
metadata: {{name: {name}}}
spec:
  objective: {{type: minimize, objectiveMetricName: loss}}
  algorithm: {{algorithmName: {algorithm}}}
  parallelTrialCount: 1
  maxTrialCount: {max_trials}
  parameters:
    - {{name: x, parameterType: double, feasibleSpace: {{min: '0', max: '1'}}}}
  warmStart: {warm_start}
  trialTemplate:
    trialParameters: [{{name: x, reference: x}}]
    trialSpec:
      apiVersion: sextant.dev/v1beta1
      kind: Process
      spec: {{command: [echo, 'loss=${{trialParameters.x}}']}}
"
    )
}

fn loaded(text: &str) -> Experiment {
    load_experiments(text).expect("valid").remove(0)
}

fn config(directory: &Path, name: &str, suggestion_service: Option<String>) -> LocalConfig {
    LocalConfig {
        experiment_dir: directory.to_path_buf(),
        template_dir: directory.to_path_buf(),
        trials_dir: directory.join(".sextant").join(name),
        suggestion_service,
        trial_slots: TrialSlots::new(4),
        trial_env: Vec::new(),
    }
}

async fn store_in(directory: &Path) -> Store {
    Store::connect(&format!(
        "sqlite://{}",
        directory.join("sextant.db").display()
    ))
    .await
    .expect("the store")
}

fn x_of(trial: &StoredTrial) -> String {
    let pairs: Vec<ParameterAssignment> =
        serde_json::from_str(&trial.assignments).expect("assignments");
    pairs[0].value.clone()
}

fn enqueued_index(trial: &StoredTrial) -> Option<String> {
    let labels: BTreeMap<String, String> = serde_json::from_str(&trial.labels).expect("labels");
    labels.get(ENQUEUED_INDEX_LABEL).cloned()
}

#[tokio::test]
async fn enqueued_points_run_first_in_order_and_once_across_an_interrupted_run() {
    let directory = tempfile::tempdir().expect("a directory");
    let store = store_in(directory.path()).await;
    let spec = loaded(&experiment(
        "enqueued",
        "random",
        5,
        "{enqueue: [{x: 0.125}, {x: '0.5'}, {x: 0.125}]}",
    ));
    let config = config(directory.path(), "enqueued", None);

    // The first run is interrupted once two trials have succeeded (the third may be running:
    // it is then re-run by the resume, as the same trial).
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let mut stop = Some(stop);
    let first = run_experiment(
        &store,
        spec.clone(),
        &config,
        async {
            let _ = stopped.await;
        },
        |progress: &Progress| {
            if progress.status.trials_succeeded >= 2
                && let Some(stop) = stop.take()
            {
                let _ = stop.send(());
            }
        },
    )
    .await
    .expect("the first run");
    assert!(first.interrupted, "the first run was interrupted");
    let before = store.list_trials("enqueued").await.expect("trials");
    assert!(
        before.len() < 5,
        "{} trials before the resume",
        before.len()
    );

    let resumed = run_experiment(&store, spec, &config, std::future::pending(), |_| {})
        .await
        .expect("the resumed run");
    assert!(!resumed.interrupted);
    let status = resumed.experiment.status.expect("a status");
    assert_eq!((status.trials, status.trials_succeeded), (5, 5));

    let trials = store.list_trials("enqueued").await.expect("trials");
    let labelled: Vec<(Option<String>, String)> = trials
        .iter()
        .map(|trial| (enqueued_index(trial), x_of(trial)))
        .collect();
    assert_eq!(
        labelled[..3],
        [
            (Some("0".to_string()), "0.125".to_string()),
            (Some("1".to_string()), "0.5".to_string()),
            (Some("2".to_string()), "0.125".to_string()),
        ],
        "the enqueued points first, in order: {labelled:?}"
    );
    assert!(
        labelled[3..].iter().all(|(index, _)| index.is_none()),
        "then the algorithm's, each enqueued point once: {labelled:?}"
    );
}

/// A Suggestion service that records each request's trials and proposes `x = 0.75`.
#[derive(Clone, Default)]
struct Recording {
    histories: Arc<Mutex<Vec<Vec<api::Trial>>>>,
}

#[tonic::async_trait]
impl Suggestion for Recording {
    async fn get_suggestions(
        &self,
        request: tonic::Request<api::GetSuggestionsRequest>,
    ) -> Result<tonic::Response<api::GetSuggestionsReply>, tonic::Status> {
        let request = request.into_inner();
        self.histories
            .lock()
            .expect("not poisoned")
            .push(request.trials);
        let count = usize::try_from(request.current_request_number).unwrap_or(0);
        Ok(tonic::Response::new(api::GetSuggestionsReply {
            parameter_assignments: vec![
                api::get_suggestions_reply::ParameterAssignments {
                    assignments: vec![api::ParameterAssignment {
                        name: "x".into(),
                        value: "0.75".into(),
                    }],
                    ..Default::default()
                };
                count
            ],
            ..Default::default()
        }))
    }

    async fn validate_algorithm_settings(
        &self,
        _: tonic::Request<api::ValidateAlgorithmSettingsRequest>,
    ) -> Result<tonic::Response<api::ValidateAlgorithmSettingsReply>, tonic::Status> {
        Ok(tonic::Response::new(api::ValidateAlgorithmSettingsReply {}))
    }
}

#[tokio::test]
async fn the_algorithm_learns_from_the_first_experiment_s_trials_ahead_of_its_own() {
    let directory = tempfile::tempdir().expect("a directory");
    let store = store_in(directory.path()).await;
    // The first experiment: three enqueued trials, one of which breaks the second's space.
    let first = loaded(&experiment(
        "first",
        "random",
        3,
        "{enqueue: [{x: 0.25}, {x: 0.5}, {x: 0.875}]}",
    ));
    let outcome = run_experiment(
        &store,
        first,
        &config(directory.path(), "first", None),
        std::future::pending(),
        |_| {},
    )
    .await
    .expect("the first run");
    assert_eq!(
        outcome
            .experiment
            .status
            .expect("a status")
            .trials_succeeded,
        3
    );

    let listener = TcpListener::bind("127.0.0.1:0").await.expect("a port");
    let address = listener.local_addr().expect("an address");
    let recording = Recording::default();
    let server = tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(SuggestionServer::new(recording.clone()))
            .serve_with_incoming(TcpListenerStream::new(listener)),
    );
    // The second's space ends below the first's last value: that trial is left out.
    let second = loaded(
        &experiment("second", "tpe", 2, "{fromExperiments: [first]}")
            .replace("max: '1'", "max: '0.8'"),
    );
    let outcome = run_experiment(
        &store,
        second,
        &config(directory.path(), "second", Some(address.to_string())),
        std::future::pending(),
        |_| {},
    )
    .await
    .expect("the second run");
    server.abort();

    let status = outcome.experiment.status.expect("a status");
    assert_eq!(
        (status.trials, status.trials_succeeded),
        (2, 2),
        "the earlier trials count against no budget"
    );
    assert_eq!(
        store.list_trials("second").await.expect("trials").len(),
        2,
        "nor are they stored as the second's"
    );
    let histories = recording.histories.lock().expect("not poisoned").clone();
    let summary = |trials: &[api::Trial]| -> Vec<(String, String, i32)> {
        trials
            .iter()
            .map(|trial| {
                let spec = trial.spec.clone().unwrap_or_default();
                let x = spec
                    .parameter_assignments
                    .unwrap_or_default()
                    .assignments
                    .first()
                    .map(|pair| pair.value.clone())
                    .unwrap_or_default();
                let status = trial.status.clone().unwrap_or_default();
                (trial.name.clone(), x, status.condition)
            })
            .collect()
    };
    let succeeded = api::trial_status::TrialConditionType::Succeeded as i32;
    let first_history = summary(&histories[0]);
    assert_eq!(
        first_history,
        [
            ("first-00000".to_string(), "0.25".to_string(), succeeded),
            ("first-00001".to_string(), "0.5".to_string(), succeeded),
        ],
        "the first request holds the first experiment's trials that fit"
    );
    let observation = histories[0][1]
        .status
        .clone()
        .unwrap_or_default()
        .observation
        .unwrap_or_default();
    assert_eq!(
        observation.metrics,
        [api::Metric {
            name: "loss".into(),
            value: "0.5".into()
        }]
    );
    let last_history = summary(histories.last().expect("requests"));
    assert_eq!(last_history.len(), 3, "{last_history:?}");
    assert_eq!(
        last_history[..2],
        first_history[..],
        "ahead of the second's own trials"
    );
    assert_eq!(last_history[2].0, "second-00000");
}

#[tokio::test]
async fn a_source_the_store_does_not_hold_is_invalid_input_and_nothing_is_stored() {
    let directory = tempfile::tempdir().expect("a directory");
    let file = directory.path().join("second.yaml");
    std::fs::write(
        &file,
        experiment("second", "tpe", 2, "{fromExperiments: [nosuch]}"),
    )
    .expect("write");
    let db = format!("sqlite://{}", directory.path().join("sextant.db").display());
    let args = <RunArgsParser as clap::Parser>::parse_from([
        "run",
        file.to_str().expect("a path"),
        "--db",
        &db,
    ])
    .args;
    let (mut out, mut err) = (Vec::new(), Vec::new());
    let status = cli::run(&args, std::future::pending(), &mut out, &mut err)
        .await
        .expect("the run");
    let err = String::from_utf8(err).expect("UTF-8");
    assert_eq!(status, ExitStatus::InvalidInput, "{err}");
    assert!(
        err.contains(
            "experiment \"second\" is invalid:\n  spec.warmStart.fromExperiments[0]: names no \
             experiment in the store (\"nosuch\")"
        ),
        "{err}"
    );
    let store = store_in(directory.path()).await;
    assert!(
        store
            .get_experiment("second")
            .await
            .expect("read")
            .is_none(),
        "nothing is stored"
    );
}

#[derive(clap::Parser)]
struct RunArgsParser {
    #[command(flatten)]
    args: RunArgs,
}
