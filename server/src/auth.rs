//! Who may talk to the server: it binds loopback unless told otherwise, and a non-loopback
//! address needs a bearer token (or an explicit `--insecure`), which every request must then
//! carry. The token is compared in constant time, so its bytes cannot be found by timing.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::header::AUTHORIZATION;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use subtle::ConstantTimeEq;

use crate::error::ApiError;

/// The shortest token accepted: a guessable secret is no secret.
pub const MIN_TOKEN_LENGTH: usize = 16;

/// A bearer token, as read from `--token-file` (surrounding whitespace removed).
#[derive(Clone)]
pub struct Token(Arc<str>);

impl std::fmt::Debug for Token {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str("Token(<redacted>)")
    }
}

/// Why the server will not listen where it was asked to.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum BindError {
    /// A non-loopback address without a token or `--insecure`.
    #[error(
        "refusing to listen on {0} without a token: anyone who can reach it could run commands as this user; give --token-file FILE (clients send `Authorization: Bearer <token>`), or --insecure if the network is trusted"
    )]
    TokenRequired(SocketAddr),
    /// The token is too short.
    #[error(
        "the token in --token-file is {0} characters long; at least {MIN_TOKEN_LENGTH} are required"
    )]
    TokenTooShort(usize),
    /// The token holds characters a header cannot carry.
    #[error("the token in --token-file must be printable ASCII without spaces")]
    TokenNotPrintable,
}

impl Token {
    /// A token from the text of a token file.
    pub fn parse(text: &str) -> Result<Token, BindError> {
        let token = text.trim();
        if !token.bytes().all(|byte| byte.is_ascii_graphic()) {
            return Err(BindError::TokenNotPrintable);
        }
        if token.len() < MIN_TOKEN_LENGTH {
            return Err(BindError::TokenTooShort(token.len()));
        }
        Ok(Token(token.into()))
    }

    /// Whether `offered` is this token; the time taken does not depend on where they differ.
    pub fn matches(&self, offered: &str) -> bool {
        self.0.as_bytes().ct_eq(offered.as_bytes()).into()
    }
}

/// Whether the server may listen on `address`: loopback always; anything else with a token,
/// or when the operator said `--insecure`.
pub fn check_bind(
    address: SocketAddr,
    token: Option<&Token>,
    insecure: bool,
) -> Result<(), BindError> {
    if address.ip().is_loopback() || token.is_some() || insecure {
        Ok(())
    } else {
        Err(BindError::TokenRequired(address))
    }
}

/// Middleware: the request carries `Authorization: Bearer <token>`, or it is refused with 401.
pub(crate) async fn require_token(
    State(token): State<Token>,
    request: Request,
    next: Next,
) -> Response {
    let offered = request
        .headers()
        .get(AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.strip_prefix("Bearer "));
    match offered {
        Some(offered) if token.matches(offered.trim()) => next.run(request).await,
        _ => ApiError::Unauthorized.into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_needs_no_token_and_other_addresses_do() {
        let token = Token::parse("0123456789abcdef").unwrap();
        let loopback: SocketAddr = "127.0.0.1:8080".parse().unwrap();
        let loopback6: SocketAddr = "[::1]:8080".parse().unwrap();
        let any: SocketAddr = "0.0.0.0:8080".parse().unwrap();
        assert_eq!(check_bind(loopback, None, false), Ok(()));
        assert_eq!(check_bind(loopback6, None, false), Ok(()));
        assert_eq!(
            check_bind(any, None, false),
            Err(BindError::TokenRequired(any))
        );
        assert_eq!(check_bind(any, Some(&token), false), Ok(()));
        assert_eq!(check_bind(any, None, true), Ok(()));
    }

    #[test]
    fn tokens_are_long_printable_and_matched_exactly() {
        assert_eq!(
            Token::parse("short").unwrap_err(),
            BindError::TokenTooShort(5)
        );
        assert_eq!(
            Token::parse("0123456789 abcdef").unwrap_err(),
            BindError::TokenNotPrintable
        );
        let token = Token::parse("  0123456789abcdef\n").unwrap();
        assert!(token.matches("0123456789abcdef"));
        assert!(!token.matches("0123456789abcdeF"));
        assert!(!token.matches("0123456789abcde"));
        assert!(!token.matches(""));
        assert_eq!(format!("{token:?}"), "Token(<redacted>)");
    }
}
