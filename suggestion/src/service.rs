//! The `api.v1.beta1.Suggestion` service.
//!
//! `GetSuggestions` parses the request, builds the named algorithm and asks it for exactly
//! `current_request_number` assignments on a blocking worker thread, so a slow model fit never
//! stalls other requests on the reactor. `ValidateAlgorithmSettings` succeeds exactly when the
//! algorithm can be built for the experiment (for its settings alone when no parameters come).

use sextant_algorithms::algorithm::{BuildContext, SuggestRequest};
use sextant_algorithms::build_algorithm;
use sextant_proto::api;
use sextant_proto::api::suggestion_server::{Suggestion, SuggestionServer};
use tonic::{Request, Response, Status};

use crate::convert::{
    Parameters, ParsedExperiment, parse_experiment, parse_trials, wire_assignment,
};
use crate::error::{Error, Result};

/// The most assignments one request may ask for; beyond it a request is a mistake, and
/// answering it would only tie up the server.
pub const MAX_REQUEST_NUMBER: i32 = 10_000;

/// The Suggestion service; stateless, so cheap to clone.
#[derive(Debug, Clone, Default)]
pub struct SuggestionService;

impl SuggestionService {
    /// The service wrapped in its tonic server.
    pub fn into_server(self) -> SuggestionServer<SuggestionService> {
        SuggestionServer::new(self).max_decoding_message_size(sextant_proto::MAX_MESSAGE_BYTES)
    }

    /// Answers a GetSuggestions request synchronously; the gRPC method runs this on a
    /// blocking thread, and benches call it directly.
    pub fn suggest(request: &api::GetSuggestionsRequest) -> Result<api::GetSuggestionsReply> {
        let count = request.current_request_number;
        if count <= 0 || count > MAX_REQUEST_NUMBER {
            return Err(Error::InvalidRequest {
                field: "current_request_number".into(),
                rule: format!("{count} is not in 1..={MAX_REQUEST_NUMBER}"),
            });
        }
        let experiment = parse_experiment(request.experiment.as_ref(), Parameters::Required)?;
        let algorithm = build_algorithm(
            &experiment.algorithm_name,
            &experiment.settings,
            &build_context(&experiment),
        )?;
        let trials = parse_trials(&experiment.space, &experiment.objective, &request.trials)?;
        let suggestions = algorithm.suggest(&SuggestRequest {
            space: &experiment.space,
            objective: &experiment.objective,
            trials: &trials,
            count: count as usize,
        })?;
        if suggestions.suggestions.len() != count as usize {
            return Err(Error::Worker(format!(
                "algorithm {} returned {} assignments for {count} requested",
                experiment.algorithm_name,
                suggestions.suggestions.len()
            )));
        }
        let parameter_assignments = suggestions
            .suggestions
            .iter()
            .map(
                |suggestion| api::get_suggestions_reply::ParameterAssignments {
                    assignments: wire_assignment(&experiment.space, &suggestion.assignment),
                    trial_name: String::new(),
                    labels: suggestion.labels.clone().into_iter().collect(),
                },
            )
            .collect();
        let algorithm = suggestions.settings.map(|settings| api::AlgorithmSpec {
            algorithm_name: experiment.algorithm_name.clone(),
            algorithm_settings: settings
                .into_iter()
                .map(|setting| api::AlgorithmSetting {
                    name: setting.name,
                    value: setting.value,
                })
                .collect(),
        });
        Ok(api::GetSuggestionsReply {
            parameter_assignments,
            algorithm,
            early_stopping_rules: Vec::new(),
        })
    }

    /// Checks that the experiment's algorithm can be built with its settings and space; with
    /// no parameters, the settings alone.
    pub fn validate(request: &api::ValidateAlgorithmSettingsRequest) -> Result<()> {
        let experiment = parse_experiment(request.experiment.as_ref(), Parameters::Optional)?;
        build_algorithm(
            &experiment.algorithm_name,
            &experiment.settings,
            &build_context(&experiment),
        )?;
        Ok(())
    }
}

fn build_context(experiment: &ParsedExperiment) -> BuildContext<'_> {
    BuildContext {
        space: &experiment.space,
        objective: &experiment.objective,
        max_trial_count: experiment.max_trial_count,
        parallel_trial_count: experiment.parallel_trial_count,
    }
}

async fn off_reactor<T, F>(work: F) -> Result<T, Status>
where
    F: FnOnce() -> Result<T> + Send + 'static,
    T: Send + 'static,
{
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|error| Status::from(Error::Worker(error.to_string())))?
        .map_err(Status::from)
}

#[tonic::async_trait]
impl Suggestion for SuggestionService {
    async fn get_suggestions(
        &self,
        request: Request<api::GetSuggestionsRequest>,
    ) -> Result<Response<api::GetSuggestionsReply>, Status> {
        let request = request.into_inner();
        let reply = off_reactor(move || SuggestionService::suggest(&request))
            .await
            .inspect_err(|status| tracing::info!(code = ?status.code(), message = status.message(), "GetSuggestions rejected"))?;
        Ok(Response::new(reply))
    }

    async fn validate_algorithm_settings(
        &self,
        request: Request<api::ValidateAlgorithmSettingsRequest>,
    ) -> Result<Response<api::ValidateAlgorithmSettingsReply>, Status> {
        let request = request.into_inner();
        off_reactor(move || SuggestionService::validate(&request)).await?;
        Ok(Response::new(api::ValidateAlgorithmSettingsReply {}))
    }
}
