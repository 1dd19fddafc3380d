//! A client of a Katib-API Suggestion service (Sextant's own `sextant serve`, or Katib's
//! suggestion images), for drivers that ask a remote service instead of the in-process
//! algorithms.
//!
//! It connects on first use with bounded waits (Katib's controller gives a suggestion call
//! 60 s) and turns the service's answers into typed outcomes: exhausted (`OUT_OF_RANGE`), not
//! ready yet (`UNAVAILABLE` from a connected service: Hyperband waiting for running trials),
//! or failed.

use std::time::Duration;

use sextant_proto::api;
use sextant_proto::api::suggestion_client::SuggestionClient;
use tonic::transport::{Channel, Endpoint};

/// How long connecting to a service may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long one GetSuggestions call may take, as Katib's controller allows.
const CALL_TIMEOUT: Duration = Duration::from_secs(60);

/// A Katib address (`host:port`) as the URI tonic needs; URLs pass through.
pub fn endpoint_uri(address: &str) -> String {
    if address.contains("://") {
        address.to_string()
    } else {
        format!("http://{address}")
    }
}

/// Why a remote service gave no assignments.
#[derive(Debug, thiserror::Error)]
pub enum RemoteError {
    /// The service cannot be reached.
    #[error("cannot reach the suggestion service {endpoint}: {message}")]
    Unreachable {
        /// The service's URI.
        endpoint: String,
        /// The transport's error.
        message: String,
    },
    /// The search space has no untried point left.
    #[error("the search space is exhausted: {0}")]
    Exhausted(String),
    /// Nothing can be proposed until running trials finish; ask again later.
    #[error("the suggestion service must wait: {0}")]
    NotReady(String),
    /// The service refused the request or answered wrongly.
    #[error("suggestion service {endpoint}: {message}")]
    Failed {
        /// The service's URI.
        endpoint: String,
        /// What went wrong, with the gRPC code when there is one.
        message: String,
    },
}

/// A connection-on-first-use client of one Suggestion service.
#[derive(Debug, Clone)]
pub struct RemoteSuggestionClient {
    endpoint: String,
    client: Option<SuggestionClient<Channel>>,
}

impl RemoteSuggestionClient {
    /// A client of the service at `address` (`host:port` or a URL).
    pub fn new(address: &str) -> RemoteSuggestionClient {
        RemoteSuggestionClient {
            endpoint: endpoint_uri(address),
            client: None,
        }
    }

    /// Sends the request; a reply always holds exactly `current_request_number` assignments.
    pub async fn get_suggestions(
        &mut self,
        request: api::GetSuggestionsRequest,
    ) -> Result<api::GetSuggestionsReply, RemoteError> {
        let requested = usize::try_from(request.current_request_number).unwrap_or_default();
        let connected = self.client.is_some();
        let client = match &mut self.client {
            Some(client) => client,
            None => {
                let unreachable = |error: tonic::transport::Error| RemoteError::Unreachable {
                    endpoint: self.endpoint.clone(),
                    message: error.to_string(),
                };
                let channel = Endpoint::from_shared(self.endpoint.clone())
                    .map_err(unreachable)?
                    .connect_timeout(CONNECT_TIMEOUT)
                    .timeout(CALL_TIMEOUT)
                    .connect()
                    .await
                    .map_err(unreachable)?;
                self.client.insert(
                    SuggestionClient::new(channel)
                        .max_decoding_message_size(sextant_proto::MAX_MESSAGE_BYTES),
                )
            }
        };
        let reply = match client.get_suggestions(request).await {
            Ok(reply) => reply.into_inner(),
            Err(status) if status.code() == tonic::Code::OutOfRange => {
                return Err(RemoteError::Exhausted(status.message().to_string()));
            }
            Err(status) if status.code() == tonic::Code::Unavailable && connected => {
                return Err(RemoteError::NotReady(status.message().to_string()));
            }
            Err(status) => {
                return Err(RemoteError::Failed {
                    endpoint: self.endpoint.clone(),
                    message: format!("{}: {}", status.code(), status.message()),
                });
            }
        };
        if reply.parameter_assignments.len() != requested {
            return Err(RemoteError::Failed {
                endpoint: self.endpoint.clone(),
                message: format!(
                    "returned {} assignments for {requested} requested",
                    reply.parameter_assignments.len()
                ),
            });
        }
        Ok(reply)
    }
}
