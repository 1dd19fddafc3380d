//! The one error type of the store, and its translation into gRPC statuses.
//!
//! URLs inside errors are always redacted (see [`crate::database_url::redact_password`]).

use crate::database_url::Backend;

/// Everything that can go wrong in the store.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The URL's scheme names no backend we support.
    #[error(
        "unsupported database url `{url}`: expected sqlite://PATH, postgres://HOST/DB or mysql://HOST/DB"
    )]
    UnsupportedUrl {
        /// The redacted URL.
        url: String,
    },
    /// The driver could not make sense of the URL.
    #[error("invalid {backend} database url `{url}`")]
    InvalidUrl {
        /// The backend the scheme named.
        backend: Backend,
        /// The redacted URL.
        url: String,
        /// The driver's complaint.
        #[source]
        source: sqlx::Error,
    },
    /// The directory that should hold a new SQLite file could not be created.
    #[error("cannot create directory `{path}` for the sqlite database")]
    CreateDirectory {
        /// The directory.
        path: String,
        /// Why not.
        #[source]
        source: std::io::Error,
    },
    /// The database server could not be reached or refused the connection.
    #[error("cannot connect to {backend} database `{url}`")]
    Connect {
        /// The backend the scheme named.
        backend: Backend,
        /// The redacted URL.
        url: String,
        /// The driver's error (refused, unknown host, authentication, timeout...).
        #[source]
        source: sqlx::Error,
    },
    /// Applying the schema migrations failed.
    #[error("cannot migrate {backend} database `{url}` to the current schema")]
    Migrate {
        /// The backend the scheme named.
        backend: Backend,
        /// The redacted URL.
        url: String,
        /// The migrator's error.
        #[source]
        source: sqlx::migrate::MigrateError,
    },
    /// A query failed after the store was connected.
    #[error("{backend} query failed while trying to {operation}")]
    Query {
        /// The backend that failed.
        backend: Backend,
        /// What the store was doing, as a verb phrase.
        operation: &'static str,
        /// The driver's error.
        #[source]
        source: sqlx::Error,
    },
    /// The caller passed something the store refuses to keep.
    #[error("invalid {field}: {reason}")]
    InvalidInput {
        /// Which argument or field was wrong.
        field: String,
        /// What was wrong with it.
        reason: String,
    },
    /// No experiment has that name.
    #[error("experiment `{name}` not found")]
    ExperimentNotFound {
        /// The experiment name asked for.
        name: String,
    },
    /// No trial has that name.
    #[error("trial `{name}` not found")]
    TrialNotFound {
        /// The trial name asked for.
        name: String,
    },
    /// A trial of that name exists already.
    #[error("trial `{name}` already exists")]
    TrialAlreadyExists {
        /// The trial name.
        name: String,
    },
    /// Someone else changed the experiment since the caller read it.
    #[error(
        "experiment `{name}` was changed concurrently: expected resource version {expected}, found {found}"
    )]
    Conflict {
        /// The experiment name.
        name: String,
        /// The resource version the caller based its change on.
        expected: i64,
        /// The resource version in the database.
        found: i64,
    },
    /// What the database holds cannot be read back.
    #[error("{what} as stored cannot be read: {reason}")]
    Corrupt {
        /// What was read.
        what: String,
        /// Why it does not read.
        reason: String,
    },
}

/// The store's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub(crate) fn invalid_input(field: impl Into<String>, reason: impl Into<String>) -> Error {
        Error::InvalidInput {
            field: field.into(),
            reason: reason.into(),
        }
    }
}

/// Writes the error with all its sources, `outer: inner: innermost`, as gRPC messages need one line.
pub fn error_chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

impl From<Error> for tonic::Status {
    fn from(error: Error) -> tonic::Status {
        let message = error_chain(&error);
        match error {
            Error::InvalidInput { .. } => tonic::Status::invalid_argument(message),
            Error::ExperimentNotFound { .. } | Error::TrialNotFound { .. } => {
                tonic::Status::not_found(message)
            }
            Error::TrialAlreadyExists { .. } => tonic::Status::already_exists(message),
            Error::Conflict { .. } => tonic::Status::aborted(message),
            // A database that cannot be reached now may be back soon: clients such as the
            // metrics collector retry on UNAVAILABLE, so only transport-level failures say so.
            Error::Connect { .. } => tonic::Status::unavailable(message),
            Error::Query { source, .. } => match source {
                sqlx::Error::Database(_)
                | sqlx::Error::Decode(_)
                | sqlx::Error::ColumnDecode { .. }
                | sqlx::Error::ColumnNotFound(_)
                | sqlx::Error::TypeNotFound { .. }
                | sqlx::Error::Encode(_) => tonic::Status::internal(message),
                _ => tonic::Status::unavailable(message),
            },
            Error::UnsupportedUrl { .. }
            | Error::InvalidUrl { .. }
            | Error::CreateDirectory { .. }
            | Error::Migrate { .. }
            | Error::Corrupt { .. } => tonic::Status::internal(message),
        }
    }
}
