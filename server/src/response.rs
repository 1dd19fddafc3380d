//! Writing large JSON responses: [`SizedJson`] serializes into a buffer allocated once at
//! about its final size, where `axum::Json` starts at 128 bytes and doubles, reallocating
//! (and copying) a 5.5 MB page of trials about sixteen times on the way.

use axum::http::HeaderValue;
use axum::http::header::CONTENT_TYPE;
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use crate::error::ApiError;

/// A JSON response body of about `capacity` bytes.
pub(crate) struct SizedJson<T> {
    pub value: T,
    pub capacity: usize,
}

impl<T: Serialize> IntoResponse for SizedJson<T> {
    fn into_response(self) -> Response {
        let mut body = Vec::with_capacity(self.capacity);
        match serde_json::to_writer(&mut body, &self.value) {
            Ok(()) => (
                [(CONTENT_TYPE, HeaderValue::from_static("application/json"))],
                body,
            )
                .into_response(),
            // A value that cannot be serialized (a map with non-string keys, say): never one
            // of the views this serves.
            Err(error) => ApiError::Internal(format!("the response cannot be written: {error}"))
                .into_response(),
        }
    }
}
