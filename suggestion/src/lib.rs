//! Katib's `api.v1.beta1` Suggestion service, served over the pure algorithms of
//! `sextant-algorithms`.
//!
//! This crate translates between the wire (Katib's string-typed messages) and the typed domain
//! model, once per request, runs the algorithm off the async reactor, and maps every failure to
//! a gRPC status whose message names the field at fault. It must not depend on the store or the
//! controller: the request carries the whole history, so the service is stateless and any
//! number of replicas can answer.
//!
//! # Layout
//! - [`client`]: a client of a remote Katib-API Suggestion service.
//! - [`convert`]: wire messages to typed values and back.
//! - [`early_stopping`]: the `EarlyStopping` service (`medianstop`), reading observation logs
//!   from a DBManager.
//! - [`error`]: the crate's error type and its mapping to gRPC status codes.
//! - [`service`]: the `Suggestion` service implementation.

pub mod client;
pub mod convert;
pub mod early_stopping;
pub mod error;
pub mod service;

pub use early_stopping::{
    EarlyStoppingService, ObservationSource, TrialStatusError, TrialStatusSink,
};
pub use error::{Error, Result};
pub use service::{MAX_REQUEST_NUMBER, SuggestionService};
