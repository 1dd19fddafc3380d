//! Reading requests: a spec as YAML or JSON (by its content type), small JSON requests whose
//! unknown fields are refused, and query strings. Every failure is an [`ApiError`] with the
//! server's JSON error body, never axum's plain-text rejection.

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Query, Request};
use axum::http::StatusCode;
use axum::http::header::CONTENT_TYPE;
use axum::http::request::Parts;
use serde::de::DeserializeOwned;

use crate::AppState;
use crate::error::ApiError;

/// What a spec may be sent as.
const SPEC_TYPES: &str = "application/yaml, application/x-yaml, text/yaml or application/json";

/// A spec's text, from a YAML or JSON body (JSON is read as YAML, of which it is a subset).
pub(crate) struct SpecText(pub String);

/// A JSON body read into `T` (whose unknown fields are refused); an empty body is `T`'s
/// default.
pub(crate) struct JsonBody<T>(pub T);

fn media_type(request: &Request) -> Option<String> {
    let value = request.headers().get(CONTENT_TYPE)?.to_str().ok()?;
    let essence = value.split(';').next().unwrap_or_default().trim();
    Some(essence.to_ascii_lowercase())
}

async fn bytes(request: Request, state: &AppState) -> Result<Bytes, ApiError> {
    Bytes::from_request(request, state)
        .await
        .map_err(|rejection| match rejection.status() {
            StatusCode::PAYLOAD_TOO_LARGE => ApiError::PayloadTooLarge {
                limit: state.config.max_body_bytes,
            },
            _ => ApiError::BadRequest(format!(
                "cannot read the request body: {}",
                rejection.body_text()
            )),
        })
}

fn utf8(bytes: Bytes) -> Result<String, ApiError> {
    String::from_utf8(bytes.to_vec())
        .map_err(|error| ApiError::BadRequest(format!("the request body is not UTF-8: {error}")))
}

impl FromRequest<AppState> for SpecText {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &AppState) -> Result<SpecText, ApiError> {
        match media_type(&request).as_deref() {
            Some("application/yaml" | "application/x-yaml" | "text/yaml" | "application/json") => {}
            given => {
                return Err(ApiError::UnsupportedMediaType {
                    given: given.unwrap_or("(none)").to_string(),
                    expected: SPEC_TYPES,
                });
            }
        }
        let text = utf8(bytes(request, state).await?)?;
        if text.trim().is_empty() {
            return Err(ApiError::BadRequest(
                "the request body is empty; send a spec".into(),
            ));
        }
        Ok(SpecText(text))
    }
}

impl<T: DeserializeOwned + Default> FromRequest<AppState> for JsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &AppState) -> Result<JsonBody<T>, ApiError> {
        let media_type = media_type(&request);
        let bytes = bytes(request, state).await?;
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Ok(JsonBody(T::default()));
        }
        if media_type.as_deref() != Some("application/json") {
            return Err(ApiError::UnsupportedMediaType {
                given: media_type.unwrap_or_else(|| "(none)".into()),
                expected: "application/json",
            });
        }
        let mut deserializer = serde_json::Deserializer::from_slice(&bytes);
        let value = T::deserialize(&mut deserializer)
            .and_then(|value| deserializer.end().map(|()| value))
            .map_err(|error| ApiError::invalid_field("(body)", error.to_string()))?;
        Ok(JsonBody(value))
    }
}

/// A query string read into `T`; one that does not fit is a 422 naming the parameter.
pub(crate) struct ApiQuery<T>(pub T);

impl<T: DeserializeOwned + Send, S: Send + Sync> FromRequestParts<S> for ApiQuery<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<ApiQuery<T>, ApiError> {
        let Query(value) =
            Query::<T>::from_request_parts(parts, state)
                .await
                .map_err(|rejection| {
                    let message = rejection.body_text();
                    let message = message
                        .strip_prefix("Failed to deserialize query string: ")
                        .unwrap_or(&message)
                        .to_string();
                    let path = match message.split_once(": ") {
                        Some((parameter, _)) if !parameter.contains(' ') => parameter.to_string(),
                        _ => "(query)".to_string(),
                    };
                    ApiError::invalid_field(path, message)
                })?;
        Ok(ApiQuery(value))
    }
}
