//! A client of a Katib-API Suggestion service (Sextant's own `sextant serve`, or Katib's
//! suggestion images), for drivers that ask a remote service instead of the in-process
//! algorithms.
//!
//! It connects on first use with bounded waits (Katib's controller gives a suggestion call
//! 60 s) and turns the service's answers into the policy's [`Outcome`]: exhausted
//! (`OUT_OF_RANGE`), not ready yet (`UNAVAILABLE` from a connected service: Hyperband waiting
//! for running trials), unreachable, or failed. The gRPC codes carry no counts, so neither
//! outcome says how many remain.

use std::time::Duration;

use sextant_proto::api;
use sextant_proto::api::suggestion_client::SuggestionClient;
use tonic::transport::{Channel, Endpoint};

use crate::policy::Outcome;

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
    pub async fn get_suggestions(&mut self, request: api::GetSuggestionsRequest) -> Outcome {
        let requested = usize::try_from(request.current_request_number).unwrap_or_default();
        let connected = self.client.is_some();
        let client = match &mut self.client {
            Some(client) => client,
            None => {
                let channel = match Endpoint::from_shared(self.endpoint.clone()) {
                    Ok(endpoint) => {
                        endpoint
                            .connect_timeout(CONNECT_TIMEOUT)
                            .timeout(CALL_TIMEOUT)
                            .connect()
                            .await
                    }
                    Err(error) => Err(error),
                };
                match channel {
                    Ok(channel) => self.client.insert(
                        SuggestionClient::new(channel)
                            .max_decoding_message_size(sextant_proto::MAX_MESSAGE_BYTES),
                    ),
                    Err(error) => {
                        return Outcome::Unreachable(format!(
                            "cannot reach the suggestion service {}: {error}",
                            self.endpoint
                        ));
                    }
                }
            }
        };
        let reply = match client.get_suggestions(request).await {
            Ok(reply) => reply.into_inner(),
            Err(status) if status.code() == tonic::Code::OutOfRange => {
                return Outcome::Exhausted { remaining: None };
            }
            Err(status) if status.code() == tonic::Code::Unavailable && connected => {
                return Outcome::NotReady { available: None };
            }
            Err(status) => {
                return Outcome::Failed(format!(
                    "suggestion service {}: {}: {}",
                    self.endpoint,
                    status.code(),
                    status.message()
                ));
            }
        };
        if reply.parameter_assignments.len() != requested {
            return Outcome::Failed(format!(
                "suggestion service {}: returned {} assignments for {requested} requested",
                self.endpoint,
                reply.parameter_assignments.len()
            ));
        }
        Outcome::Assignments(reply)
    }
}
