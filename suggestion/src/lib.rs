//! Katib's `api.v1.beta1` Suggestion service, served over the pure algorithms of
//! `sextant-algorithms`.
//!
//! This crate translates between the wire (Katib's string-typed messages) and the typed domain
//! model, once per request, runs the algorithm off the async reactor, and maps every failure to
//! a gRPC status whose message names the field at fault. It must not depend on the store or the
//! controller: the request carries the whole history, so the service is stateless and any
//! number of replicas can answer. It also holds the drivers' one suggestion policy ([`policy`]),
//! over this service's code in process or a remote service through [`client`].
//!
//! # Layout
//! - [`client`]: a client of a remote Katib-API Suggestion service.
//! - [`convert`]: wire messages to typed values and back.
//! - [`early_stopping`]: the `EarlyStopping` service (`medianstop`, `successivehalving`,
//!   `asha`), reading observation logs from a DBManager.
//! - [`error`]: the crate's error type and its mapping to gRPC status codes.
//! - [`policy`]: what a driver asks for and what it makes of the answer, in process or remote.
//! - [`service`]: the `Suggestion` service implementation.

pub mod client;
pub mod convert;
pub mod early_stopping;
pub mod error;
pub mod policy;
pub mod service;

pub use early_stopping::{
    EarlyStoppingService, ObservationSource, TrialStatusError, TrialStatusSink,
};
pub use error::{Error, Result};
pub use policy::{Outcome, Suggester};
pub use service::{MAX_REQUEST_NUMBER, SuggestionService};
