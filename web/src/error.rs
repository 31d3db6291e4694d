//! The dashboard's errors: [`WebError`] for the hub (binding, serving, opening the store) and
//! [`ApiError`], what a route answers when it cannot: a status and the JSON error body of
//! `docs/api.md` (`{"error": {"code": …, "message": …}}`, and `"candidates"` beside it when a run
//! reference is ambiguous), whose message names the thing.

use std::net::SocketAddr;

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use runicorn_store::{RunCandidate, RunRefError, StoreError};
use serde::Serialize;

/// Why the dashboard could not start or stopped.
#[derive(Debug, thiserror::Error)]
pub enum WebError {
    #[error(
        "cannot serve the dashboard on http://{addr}/: the port is in use (another runicorn-hub?); \
         stop the other program or choose another port with --port"
    )]
    PortInUse { addr: SocketAddr },

    #[error("cannot serve the dashboard on http://{addr}/: {source}")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },

    #[error("dashboard: {0}")]
    Store(#[from] StoreError),

    #[error("dashboard server on http://{addr}/ stopped: {source}")]
    Serve {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
}

/// The error codes of `docs/api.md`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorCode {
    BadRequest,
    Forbidden,
    NotFound,
    MethodNotAllowed,
    Conflict,
    PayloadTooLarge,
    Internal,
    Unavailable,
    /// A file is not cached and its remote cannot be reached (503).
    RemoteOffline,
    /// A malformed filter expression (`q=`, 400), with its position.
    BadFilter,
}

impl ErrorCode {
    pub fn status(self) -> StatusCode {
        match self {
            ErrorCode::BadRequest | ErrorCode::BadFilter => StatusCode::BAD_REQUEST,
            ErrorCode::Forbidden => StatusCode::FORBIDDEN,
            ErrorCode::NotFound => StatusCode::NOT_FOUND,
            ErrorCode::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            ErrorCode::Conflict => StatusCode::CONFLICT,
            ErrorCode::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            ErrorCode::Internal => StatusCode::INTERNAL_SERVER_ERROR,
            ErrorCode::Unavailable | ErrorCode::RemoteOffline => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::BadRequest => "bad_request",
            ErrorCode::Forbidden => "forbidden",
            ErrorCode::NotFound => "not_found",
            ErrorCode::MethodNotAllowed => "method_not_allowed",
            ErrorCode::Conflict => "conflict",
            ErrorCode::PayloadTooLarge => "payload_too_large",
            ErrorCode::Internal => "internal",
            ErrorCode::Unavailable => "unavailable",
            ErrorCode::RemoteOffline => "remote_offline",
            ErrorCode::BadFilter => "bad_filter",
        }
    }
}

/// A failed API request: answered as `{"error": {"code", "message"}}` with the code's status,
/// and `"candidates"` beside `"error"` when there are any.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    pub code: ErrorCode,
    pub message: String,
    /// The runs an ambiguous run reference may mean (empty otherwise).
    pub candidates: Vec<CandidateDto>,
    /// `bad_filter`: the offending token's character offset and length in the expression.
    pub filter_span: Option<(usize, usize)>,
}

/// One run an ambiguous reference may mean: `{"key", "remote", "run_id"}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(test, derive(ts_rs::TS), ts(rename = "RunCandidate"))]
pub struct CandidateDto {
    pub key: i64,
    pub remote: String,
    pub run_id: String,
}

impl From<&RunCandidate> for CandidateDto {
    fn from(c: &RunCandidate) -> CandidateDto {
        CandidateDto {
            key: c.key.0,
            remote: c.remote.clone(),
            run_id: c.run_id.clone(),
        }
    }
}

impl ApiError {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> ApiError {
        ApiError {
            code,
            message: message.into(),
            candidates: Vec::new(),
            filter_span: None,
        }
    }

    /// A malformed filter expression of parameter `name`: `400 bad_filter` with its place.
    pub fn bad_filter(name: &str, e: &runicorn_store::FilterError) -> ApiError {
        ApiError {
            filter_span: Some((e.position, e.length)),
            ..ApiError::new(ErrorCode::BadFilter, format!("parameter {name}: {e}"))
        }
    }

    pub fn bad_request(message: impl Into<String>) -> ApiError {
        ApiError::new(ErrorCode::BadRequest, message)
    }

    pub fn forbidden(message: impl Into<String>) -> ApiError {
        ApiError::new(ErrorCode::Forbidden, message)
    }

    pub fn not_found(message: impl Into<String>) -> ApiError {
        ApiError::new(ErrorCode::NotFound, message)
    }

    pub fn too_large(message: impl Into<String>) -> ApiError {
        ApiError::new(ErrorCode::PayloadTooLarge, message)
    }

    pub fn internal(message: impl Into<String>) -> ApiError {
        ApiError::new(ErrorCode::Internal, message)
    }

    pub fn unavailable(message: impl Into<String>) -> ApiError {
        ApiError::new(ErrorCode::Unavailable, message)
    }

    /// `run N does not exist`.
    pub fn no_run(id: i64) -> ApiError {
        ApiError::not_found(format!("run {id} does not exist"))
    }
}

#[derive(Serialize)]
#[cfg_attr(test, derive(ts_rs::TS), ts(rename = "ApiErrorBody"))]
pub(crate) struct ErrorBody<'a> {
    error: ErrorDetail<'a>,
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    #[cfg_attr(test, ts(as = "Option<Vec<CandidateDto>>", optional))]
    candidates: &'a [CandidateDto],
}

#[derive(Serialize)]
#[cfg_attr(test, derive(ts_rs::TS), ts(rename = "ApiErrorDetail"))]
pub(crate) struct ErrorDetail<'a> {
    code: &'a str,
    message: &'a str,
    /// `bad_filter`: 0-based character offset of the offending token in the expression.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[cfg_attr(test, ts(optional))]
    position: Option<usize>,
    /// `bad_filter`: the token's length in characters (0 at the end of the expression).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[cfg_attr(test, ts(optional))]
    length: Option<usize>,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ErrorBody {
            error: ErrorDetail {
                code: self.code.as_str(),
                message: &self.message,
                position: self.filter_span.map(|s| s.0),
                length: self.filter_span.map(|s| s.1),
            },
            candidates: &self.candidates,
        };
        (self.code.status(), Json(body)).into_response()
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> ApiError {
        match &e {
            StoreError::Busy { .. } => ApiError::unavailable(e.to_string()),
            StoreError::RawTooLarge { .. } => ApiError::too_large(e.to_string()),
            _ => {
                tracing::warn!(error = %e, "dashboard request failed in the store");
                ApiError::internal(e.to_string())
            }
        }
    }
}

/// Malformed: `400`; unknown: `404`; ambiguous: `409` with the candidates.
impl From<RunRefError> for ApiError {
    fn from(e: RunRefError) -> ApiError {
        match e {
            RunRefError::Malformed { .. } => ApiError::bad_request(e.to_string()),
            RunRefError::NotFound { .. } => ApiError::not_found(e.to_string()),
            RunRefError::Ambiguous { ref candidates, .. } => ApiError {
                code: ErrorCode::Conflict,
                message: e.to_string(),
                candidates: candidates.iter().map(CandidateDto::from).collect(),
                filter_span: None,
            },
            RunRefError::Store(e) => ApiError::from(e),
        }
    }
}

impl From<tokio::task::JoinError> for ApiError {
    fn from(e: tokio::task::JoinError) -> ApiError {
        ApiError::internal(format!("a store task failed: {e}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use runicorn_store::{RunKey, RunRef};

    #[tokio::test]
    async fn an_ambiguous_reference_is_a_409_listing_the_candidates() {
        let candidate = |key, remote: &str| RunCandidate {
            key: RunKey(key),
            remote: remote.into(),
            run_id: "r1".into(),
        };
        let e = ApiError::from(RunRefError::Ambiguous {
            reference: RunRef::parse("r1").unwrap(),
            candidates: vec![candidate(3, "gpu1"), candidate(9, "gpu2")],
        });
        let response = e.into_response();
        assert_eq!(response.status(), StatusCode::CONFLICT);
        let body = axum::body::to_bytes(response.into_body(), 1 << 16)
            .await
            .unwrap();
        let body: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(body["error"]["code"], "conflict");
        assert_eq!(
            body["candidates"],
            serde_json::json!([
                {"key": 3, "remote": "gpu1", "run_id": "r1"},
                {"key": 9, "remote": "gpu2", "run_id": "r1"}
            ])
        );
        let plain = ApiError::not_found("x").into_response();
        let body = axum::body::to_bytes(plain.into_body(), 1 << 16)
            .await
            .unwrap();
        let body: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert!(body.get("candidates").is_none(), "{body}");
    }
}
