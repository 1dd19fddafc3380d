//! The `api.v1.beta1.Suggestion` service.
//!
//! `GetSuggestions` parses the request, builds the named algorithm and asks it for exactly
//! `current_request_number` assignments on a blocking worker thread, so a slow model fit never
//! stalls other requests on the reactor. `ValidateAlgorithmSettings` succeeds exactly when the
//! algorithm can be built for the experiment (for its settings alone when no parameters come).
//!
//! The cost of a request is bounded: at most [`SuggestionLimits::concurrent_requests`] compute
//! at once (more are refused with `RESOURCE_EXHAUSTED`, which Katib's controller retries), each
//! for at most [`SuggestionLimits::request_timeout`] (`DEADLINE_EXCEEDED`), and the work stops
//! within one algorithm step when nobody waits for it: the client went away or its
//! `grpc-timeout` passed (tonic then drops the request's future), or the server is shutting
//! down (`UNAVAILABLE`). Model-based algorithms keep a large batch cheap themselves (see
//! `sextant_algorithms::algorithm::MODEL_BATCH_LIMIT`).

use std::sync::Arc;
use std::time::Duration;

use sextant_algorithms::algorithm::{BuildContext, SuggestRequest};
use sextant_algorithms::build_algorithm;
use sextant_algorithms::cancel::Cancellation;
use sextant_proto::api;
use sextant_proto::api::suggestion_server::{Suggestion, SuggestionServer};
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tonic::{Request, Response, Status};

use crate::convert::{
    Parameters, ParsedExperiment, parse_experiment, parse_trials, wire_assignment,
};
use crate::error::{Error, Result};

/// The most assignments one request may ask for; beyond it a request is a mistake, and
/// answering it would only tie up the server.
pub const MAX_REQUEST_NUMBER: i32 = 10_000;

/// What one server spends on suggestions at most.
#[derive(Debug, Clone, Copy)]
pub struct SuggestionLimits {
    /// Requests computing at once; each holds one blocking thread and one core.
    pub concurrent_requests: usize,
    /// The longest a request may compute, whatever deadline its client set.
    pub request_timeout: Duration,
}

impl Default for SuggestionLimits {
    /// One request per core, for at most five minutes.
    fn default() -> SuggestionLimits {
        SuggestionLimits {
            concurrent_requests: std::thread::available_parallelism()
                .map_or(1, |cores| cores.get()),
            request_timeout: Duration::from_secs(300),
        }
    }
}

/// The Suggestion service; its state is shared between clones.
#[derive(Debug, Clone)]
pub struct SuggestionService {
    limits: SuggestionLimits,
    /// One permit per request allowed to compute.
    permits: Arc<Semaphore>,
    /// Cancelled when the server shuts down, so running requests end instead of delaying it.
    shutdown: CancellationToken,
}

impl Default for SuggestionService {
    fn default() -> SuggestionService {
        SuggestionService::new(SuggestionLimits::default())
    }
}

impl SuggestionService {
    /// A service within `limits`.
    pub fn new(limits: SuggestionLimits) -> SuggestionService {
        SuggestionService {
            limits,
            permits: Arc::new(Semaphore::new(limits.concurrent_requests.max(1))),
            shutdown: CancellationToken::new(),
        }
    }

    /// The token that, once cancelled, ends every request in progress with `UNAVAILABLE`; the
    /// server cancels it when it starts shutting down.
    pub fn shutdown_token(&self) -> CancellationToken {
        self.shutdown.clone()
    }

    /// The service wrapped in its tonic server.
    pub fn into_server(self) -> SuggestionServer<SuggestionService> {
        SuggestionServer::new(self).max_decoding_message_size(sextant_proto::MAX_MESSAGE_BYTES)
    }

    /// Answers a GetSuggestions request synchronously; benches call it directly.
    pub fn suggest(request: &api::GetSuggestionsRequest) -> Result<api::GetSuggestionsReply> {
        SuggestionService::suggest_until_cancelled(request, Cancellation::never())
    }

    /// Answers a GetSuggestions request synchronously, stopping with
    /// `SuggestError::Cancelled` once `cancel` is set; the gRPC method runs this on a blocking
    /// thread.
    pub fn suggest_until_cancelled(
        request: &api::GetSuggestionsRequest,
        cancel: &Cancellation,
    ) -> Result<api::GetSuggestionsReply> {
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
            cancel,
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

/// Answers a GetSuggestions request on a blocking thread, stopping the algorithm at its next
/// check once the returned future is dropped. The gRPC method and the in-process transport of
/// [`crate::policy`] both answer through it.
pub(crate) async fn suggest_off_reactor(
    request: api::GetSuggestionsRequest,
) -> Result<api::GetSuggestionsReply> {
    let cancel = Cancellation::new();
    let _guard = CancelOnDrop(cancel.clone());
    off_reactor(move || SuggestionService::suggest_until_cancelled(&request, &cancel)).await
}

async fn off_reactor<T, F>(work: F) -> Result<T>
where
    F: FnOnce() -> Result<T> + Send + 'static,
    T: Send + 'static,
{
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|error| Error::Worker(error.to_string()))?
}

/// Sets the algorithm's token when the request's future ends for any reason, most importantly
/// when tonic drops it because the client went away or its `grpc-timeout` passed: the blocking
/// thread then stops at its next check instead of computing for nobody.
struct CancelOnDrop(Cancellation);

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        self.0.cancel();
    }
}

impl SuggestionService {
    /// Runs one GetSuggestions within the service's limits.
    async fn bounded_suggest(
        &self,
        request: api::GetSuggestionsRequest,
    ) -> Result<api::GetSuggestionsReply, Status> {
        let Ok(_permit) = self.permits.clone().try_acquire_owned() else {
            return Err(Status::resource_exhausted(format!(
                "{} suggestion requests are computing, the most this server runs at once \
                 (sextant serve --max-concurrent-suggestions); retry later",
                self.limits.concurrent_requests
            )));
        };
        tokio::select! {
            reply = suggest_off_reactor(request) => reply.map_err(Status::from),
            () = tokio::time::sleep(self.limits.request_timeout) => {
                Err(Status::deadline_exceeded(format!(
                    "suggestion took longer than {} s, the most this server spends on one \
                     request (sextant serve --suggestion-timeout); ask for fewer assignments",
                    self.limits.request_timeout.as_secs_f64()
                )))
            }
            () = self.shutdown.cancelled() => {
                Err(Status::unavailable("the server is shutting down; retry on another"))
            }
        }
    }
}

#[tonic::async_trait]
impl Suggestion for SuggestionService {
    async fn get_suggestions(
        &self,
        request: Request<api::GetSuggestionsRequest>,
    ) -> Result<Response<api::GetSuggestionsReply>, Status> {
        let request = request.into_inner();
        let reply = self
            .bounded_suggest(request)
            .await
            .inspect_err(|status| tracing::info!(code = ?status.code(), message = status.message(), "GetSuggestions rejected"))?;
        Ok(Response::new(reply))
    }

    async fn validate_algorithm_settings(
        &self,
        request: Request<api::ValidateAlgorithmSettingsRequest>,
    ) -> Result<Response<api::ValidateAlgorithmSettingsReply>, Status> {
        let request = request.into_inner();
        off_reactor(move || SuggestionService::validate(&request))
            .await
            .map_err(Status::from)?;
        Ok(Response::new(api::ValidateAlgorithmSettingsReply {}))
    }
}
