//! `pbt` over loopback gRPC with Katib's wire shape: Katib's own unit test of its PBT service
//! (`test_pbt_service.py`: settings validated, `resample_probability` inside and outside
//! `[0, 1]`), and GetSuggestions answering assignments with Katib's generation and parent
//! labels, the next generation made from the labels the caller sends back.

use std::collections::HashMap;

use sextant_proto::api;
use sextant_proto::api::suggestion_client::SuggestionClient;
use sextant_suggestion::SuggestionService;
use tonic::Code;
use tonic::transport::Channel;

use crate::policy::serve;

const GENERATION: &str = "pbt.suggestion.katib.kubeflow.org/generation";
const PARENT: &str = "pbt.suggestion.katib.kubeflow.org/parent";

fn setting(name: &str, value: &str) -> api::AlgorithmSetting {
    api::AlgorithmSetting {
        name: name.into(),
        value: value.into(),
    }
}

async fn client() -> SuggestionClient<Channel> {
    let address = serve(SuggestionService::default().into_server()).await;
    SuggestionClient::connect(format!("http://{address}"))
        .await
        .expect("connect")
}

/// Katib's `TestPbt._spec`: the algorithm and its settings, nothing else.
fn katib_spec(resample_probability: Option<&str>) -> api::ExperimentSpec {
    let mut settings = vec![
        setting("suggestion_trial_dir", "/tmp"),
        setting("n_population", "10"),
        setting("truncation_threshold", "0.2"),
    ];
    if let Some(value) = resample_probability {
        settings.push(setting("resample_probability", value));
    }
    api::ExperimentSpec {
        algorithm: Some(api::AlgorithmSpec {
            algorithm_name: "pbt".into(),
            algorithm_settings: settings,
        }),
        ..Default::default()
    }
}

async fn validate(
    client: &mut SuggestionClient<Channel>,
    spec: api::ExperimentSpec,
) -> Result<(), tonic::Status> {
    client
        .validate_algorithm_settings(api::ValidateAlgorithmSettingsRequest {
            experiment: Some(api::Experiment {
                name: "test".into(),
                spec: Some(spec),
            }),
        })
        .await
        .map(|_| ())
}

#[tokio::test]
async fn katibs_pbt_unit_test_passes() {
    let mut client = client().await;
    validate(&mut client, katib_spec(None))
        .await
        .expect("valid without the optional resample_probability");
    validate(&mut client, katib_spec(Some("0.5")))
        .await
        .expect("valid with resample_probability inside [0, 1]");
    let status = validate(&mut client, katib_spec(Some("1.5")))
        .await
        .expect_err("resample_probability outside [0, 1]");
    assert_eq!(status.code(), Code::InvalidArgument);
    assert!(
        status.message().contains("resample_probability"),
        "{}",
        status.message()
    );
    let mut missing = katib_spec(None);
    if let Some(algorithm) = missing.algorithm.as_mut() {
        algorithm.algorithm_settings.remove(0);
    }
    let status = validate(&mut client, missing)
        .await
        .expect_err("suggestion_trial_dir missing");
    assert_eq!(status.code(), Code::InvalidArgument);
    assert!(
        status.message().contains("missing: suggestion_trial_dir"),
        "{}",
        status.message()
    );
}

/// Katib's simple-pbt experiment: maximize `Validation-accuracy` over `lr`.
fn request(trials: Vec<api::Trial>, count: i32) -> api::GetSuggestionsRequest {
    let mut spec = katib_spec(None);
    spec.objective = Some(api::ObjectiveSpec {
        r#type: api::ObjectiveType::Maximize as i32,
        objective_metric_name: "Validation-accuracy".into(),
        ..Default::default()
    });
    spec.parameter_specs = Some(api::experiment_spec::ParameterSpecs {
        parameters: vec![api::ParameterSpec {
            name: "lr".into(),
            parameter_type: api::ParameterType::Double as i32,
            feasible_space: Some(api::FeasibleSpace {
                min: "0.0001".into(),
                max: "0.02".into(),
                step: "0.0001".into(),
                ..Default::default()
            }),
            condition: None,
        }],
    });
    if let Some(algorithm) = spec.algorithm.as_mut() {
        algorithm
            .algorithm_settings
            .push(setting("random_state", "3"));
    }
    api::GetSuggestionsRequest {
        experiment: Some(api::Experiment {
            name: "simple-pbt".into(),
            spec: Some(spec),
        }),
        total_request_number: i32::try_from(trials.len()).expect("few") + count,
        trials,
        current_request_number: count,
    }
}

/// A succeeded trial of the reply's `suggestion`, with its labels sent back in
/// `Trial.spec.labels` and the accuracy `accuracy`.
fn succeeded(
    name: String,
    suggestion: &api::get_suggestions_reply::ParameterAssignments,
    accuracy: f64,
) -> api::Trial {
    api::Trial {
        name,
        spec: Some(api::TrialSpec {
            parameter_assignments: Some(api::trial_spec::ParameterAssignments {
                assignments: suggestion.assignments.clone(),
            }),
            labels: suggestion.labels.clone(),
            ..Default::default()
        }),
        status: Some(api::TrialStatus {
            condition: api::trial_status::TrialConditionType::Succeeded as i32,
            observation: Some(api::Observation {
                metrics: vec![api::Metric {
                    name: "Validation-accuracy".into(),
                    value: accuracy.to_string(),
                }],
            }),
            ..Default::default()
        }),
    }
}

#[tokio::test]
async fn generations_come_with_katibs_labels_over_the_wire() {
    let mut client = client().await;
    let first = client
        .get_suggestions(request(Vec::new(), 10))
        .await
        .expect("generation 0")
        .into_inner();
    assert_eq!(first.parameter_assignments.len(), 10);
    for suggestion in &first.parameter_assignments {
        assert_eq!(suggestion.assignments.len(), 1);
        assert_eq!(suggestion.assignments[0].name, "lr");
        assert_eq!(suggestion.labels[GENERATION], "0");
        assert!(!suggestion.labels.contains_key(PARENT));
    }
    // Member i reaches accuracy i / 10: members 8 and 9 are the top fifth.
    let trials: Vec<api::Trial> = first
        .parameter_assignments
        .iter()
        .enumerate()
        .map(|(index, suggestion)| {
            succeeded(
                format!("simple-pbt-{index}"),
                suggestion,
                index as f64 / 10.0,
            )
        })
        .collect();
    let values: HashMap<String, String> = trials
        .iter()
        .map(|trial| {
            let value = trial
                .spec
                .as_ref()
                .and_then(|spec| spec.parameter_assignments.as_ref())
                .map(|assignments| assignments.assignments[0].value.clone())
                .unwrap_or_default();
            (trial.name.clone(), value)
        })
        .collect();
    let next = client
        .get_suggestions(request(trials, 10))
        .await
        .expect("generation 1")
        .into_inner();
    assert_eq!(next.parameter_assignments.len(), 10);
    for (index, suggestion) in next.parameter_assignments.iter().enumerate() {
        assert_eq!(suggestion.labels[GENERATION], "1");
        let parent = &suggestion.labels[PARENT];
        if index < 2 {
            assert!(
                parent == "simple-pbt-8" || parent == "simple-pbt-9",
                "member {index} exploits the top: {parent}"
            );
        } else {
            assert_eq!(parent, &format!("simple-pbt-{index}"));
            assert_eq!(suggestion.assignments[0].value, values[parent]);
        }
    }

    // Without the labels (Katib's controller does not send them back) the history is refused.
    let mut unlabelled = request(Vec::new(), 1);
    unlabelled.trials = vec![succeeded(
        "simple-pbt-0".into(),
        &api::get_suggestions_reply::ParameterAssignments {
            assignments: first.parameter_assignments[0].assignments.clone(),
            ..Default::default()
        },
        0.5,
    )];
    let status = client
        .get_suggestions(unlabelled)
        .await
        .expect_err("labels missing");
    assert_eq!(status.code(), Code::InvalidArgument);
    assert!(
        status.message().contains(GENERATION),
        "{}",
        status.message()
    );
}
