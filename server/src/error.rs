//! Every way a request can fail, each with its HTTP status and a JSON body that says what and
//! where: `{"error": {"code", "message", "fields": [{"path", "rule"}]}}`.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use sextant_experiment::ValidationErrors;

use crate::views::{ErrorBody, ErrorDetail, FieldProblem};

/// A request that cannot be answered as asked.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// No valid bearer token (401).
    #[error(
        "this server needs `Authorization: Bearer <token>`; the request carried none or another"
    )]
    Unauthorized,
    /// The named resource does not exist (404).
    #[error("{kind} {} not found", sextant_echo::echo_quoted(.name))]
    NotFound {
        /// What kind of resource.
        kind: &'static str,
        /// Its name.
        name: String,
    },
    /// The resource exists already, or is not in a state that allows the request (409).
    #[error("{0}")]
    Conflict(String),
    /// The body is not what the route reads: not YAML or JSON, or missing (400).
    #[error("{0}")]
    BadRequest(String),
    /// The body's content type is not one the route reads (415).
    #[error("content type {given} is not accepted here; send {expected}")]
    UnsupportedMediaType {
        /// The content type sent.
        given: String,
        /// What the route reads.
        expected: &'static str,
    },
    /// The body is larger than the server accepts (413).
    #[error("the request body is larger than the {limit} bytes this server accepts")]
    PayloadTooLarge {
        /// The limit, in bytes.
        limit: usize,
    },
    /// The body parses but breaks the schema or the rules; every problem by field path (422).
    #[error("{message}")]
    Invalid {
        /// A summary.
        message: String,
        /// Each problem.
        fields: Vec<FieldProblem>,
    },
    /// The search algorithm cannot answer now; ask again later (503).
    #[error("{0}")]
    Unavailable(String),
    /// The store failed (500, or the store's own conflict and not-found).
    #[error(transparent)]
    Store(#[from] sextant_store::Error),
    /// The artifact storage failed (502 when the object storage did, else 500).
    #[error(transparent)]
    Artifact(#[from] crate::artifacts::ArtifactError),
    /// Something on this side failed (500).
    #[error("{0}")]
    Internal(String),
}

impl ApiError {
    /// A 422 from validation errors.
    pub fn invalid(what: &str, errors: &ValidationErrors) -> ApiError {
        ApiError::Invalid {
            message: format!("{what} is invalid: {} problem(s)", errors.0.len()),
            fields: errors
                .0
                .iter()
                .map(|error| FieldProblem {
                    path: error.path.clone(),
                    rule: error.rule.clone(),
                })
                .collect(),
        }
    }

    /// A 422 for one field.
    pub fn invalid_field(path: impl Into<String>, rule: impl Into<String>) -> ApiError {
        let (path, rule) = (path.into(), rule.into());
        ApiError::Invalid {
            message: format!("{path}: {rule}"),
            fields: vec![FieldProblem { path, rule }],
        }
    }

    /// A 409 for a request to act on what the persistence agent mirrors from a cluster: the
    /// cluster's controller runs it, so it is changed there.
    pub fn managed_by_cluster(kind: &str, name: &str, namespace: &str) -> ApiError {
        ApiError::Conflict(format!(
            "{kind} {} is managed by the cluster namespace {}; use kubectl",
            sextant_echo::echo_quoted(name),
            sextant_echo::echo_quoted(namespace)
        ))
    }

    /// A file that could not be read: 404 naming `kind` and `name` when it is missing, 500
    /// naming the path otherwise.
    pub fn file(
        error: std::io::Error,
        path: &std::path::Path,
        kind: &'static str,
        name: &str,
    ) -> ApiError {
        if error.kind() == std::io::ErrorKind::NotFound {
            ApiError::NotFound {
                kind,
                name: name.to_string(),
            }
        } else {
            ApiError::Internal(format!("cannot read {}: {error}", path.display()))
        }
    }

    fn status_and_code(&self) -> (StatusCode, &'static str) {
        match self {
            ApiError::Unauthorized => (StatusCode::UNAUTHORIZED, "Unauthorized"),
            ApiError::NotFound { .. } => (StatusCode::NOT_FOUND, "NotFound"),
            ApiError::Conflict(_) => (StatusCode::CONFLICT, "Conflict"),
            ApiError::BadRequest(_) => (StatusCode::BAD_REQUEST, "BadRequest"),
            ApiError::UnsupportedMediaType { .. } => {
                (StatusCode::UNSUPPORTED_MEDIA_TYPE, "UnsupportedMediaType")
            }
            ApiError::PayloadTooLarge { .. } => (StatusCode::PAYLOAD_TOO_LARGE, "PayloadTooLarge"),
            ApiError::Invalid { .. } => (StatusCode::UNPROCESSABLE_ENTITY, "Invalid"),
            ApiError::Unavailable(_) => (StatusCode::SERVICE_UNAVAILABLE, "Unavailable"),
            ApiError::Store(error)
            | ApiError::Artifact(crate::artifacts::ArtifactError::Store(error)) => {
                store_status(error)
            }
            ApiError::Artifact(crate::artifacts::ArtifactError::Storage { .. }) => {
                (StatusCode::BAD_GATEWAY, "ArtifactStorage")
            }
            ApiError::Artifact(_) | ApiError::Internal(_) => {
                (StatusCode::INTERNAL_SERVER_ERROR, "Internal")
            }
        }
    }
}

fn store_status(error: &sextant_store::Error) -> (StatusCode, &'static str) {
    match error {
        sextant_store::Error::Conflict { .. } | sextant_store::Error::TrialAlreadyExists { .. } => {
            (StatusCode::CONFLICT, "Conflict")
        }
        sextant_store::Error::InvalidInput { .. } => (StatusCode::UNPROCESSABLE_ENTITY, "Invalid"),
        sextant_store::Error::ExperimentNotFound { .. }
        | sextant_store::Error::TrialNotFound { .. } => (StatusCode::NOT_FOUND, "NotFound"),
        _ => (StatusCode::INTERNAL_SERVER_ERROR, "Internal"),
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, code) = self.status_and_code();
        if status.is_server_error() {
            tracing::error!(error = %self, "request failed");
        }
        let fields = match &self {
            ApiError::Invalid { fields, .. } => fields.clone(),
            _ => Vec::new(),
        };
        let body = ErrorBody {
            error: ErrorDetail {
                code: code.to_string(),
                message: self.to_string(),
                fields,
            },
        };
        let mut response = (status, axum::Json(body)).into_response();
        if status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(
                axum::http::header::WWW_AUTHENTICATE,
                axum::http::HeaderValue::from_static("Bearer"),
            );
        }
        response
    }
}
