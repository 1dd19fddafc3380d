//! Errors of the Suggestion service and the gRPC status each maps to.
//!
//! | error | gRPC code |
//! | --- | --- |
//! | invalid request, space, settings or history | `INVALID_ARGUMENT` |
//! | search space exhausted (grid) | `OUT_OF_RANGE`: iterating past the end of the space |
//! | the algorithm must wait for running trials (Hyperband) | `UNAVAILABLE`: retry later |
//! | the request was cancelled (client gone, deadline, shutdown) | `CANCELLED` |
//! | the algorithm task panicked | `INTERNAL` |

use sextant_algorithms::{SettingsError, SpaceError, SuggestError, TrialCondition};

/// A result with this crate's error.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Why a request could not be answered.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A required field is missing or has an impossible value.
    #[error("{field}: {rule}")]
    InvalidRequest {
        /// The field path in the request, e.g. `current_request_number`.
        field: String,
        /// The rule it breaks.
        rule: String,
    },
    /// The parameter specs are invalid; every problem is listed.
    #[error("experiment.spec.parameter_specs: {}", join(.0))]
    InvalidSpace(Vec<SpaceError>),
    /// The algorithm name or settings are invalid.
    #[error("experiment.spec.algorithm: {0}")]
    InvalidSettings(#[from] SettingsError),
    /// A trial of the history does not fit the space.
    #[error("trials[{index}] ({name:?}): {source}")]
    InvalidTrial {
        /// Position of the trial in the request.
        index: usize,
        /// The trial's name.
        name: String,
        /// Its latest condition: whether it has a result decides if it may be skipped.
        condition: TrialCondition,
        /// What is wrong with it.
        #[source]
        source: SpaceError,
    },
    /// The algorithm could not produce suggestions.
    #[error("{0}")]
    Suggest(#[from] SuggestError),
    /// The algorithm's worker task failed.
    #[error("algorithm task failed: {0}")]
    Worker(String),
}

fn join(errors: &[SpaceError]) -> String {
    errors
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}

impl From<Error> for tonic::Status {
    fn from(error: Error) -> tonic::Status {
        let message = error.to_string();
        match error {
            Error::Suggest(SuggestError::Exhausted { .. }) => tonic::Status::out_of_range(message),
            Error::Suggest(SuggestError::NotReady { .. }) => tonic::Status::unavailable(message),
            // Only a request nobody waits for is cancelled; the code is for the logs.
            Error::Suggest(SuggestError::Cancelled) => tonic::Status::cancelled(message),
            Error::Worker(_) => tonic::Status::internal(message),
            _ => tonic::Status::invalid_argument(message),
        }
    }
}
