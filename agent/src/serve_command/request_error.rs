//! Why one request failed: typed, with the wire error code the hub acts on. A failed request
//! is answered with an `error` frame carrying its id; the session goes on.

use runicorn_protocol::wire::{ErrorBody, ErrorCode};

use crate::run_index::IndexError;

/// A request the agent could not answer.
#[derive(Debug, thiserror::Error)]
pub enum RequestError {
    #[error("run directory {dir:?} is refused: {reason}; the agent only serves paths inside its storage root")]
    OutsideRoot { dir: String, reason: String },
    #[error(
        "no run directory {dir:?} is known under the storage root {root}; ask for `changes` first"
    )]
    NotFound { dir: String, root: String },
    #[error("a {kind} message is not a request this agent answers")]
    NotARequest { kind: &'static str },
    #[error("the answer cannot fit in a frame of {limit} bytes: {what}")]
    TooLarge { limit: u32, what: String },
    #[error("the agent's index failed: {0}")]
    Index(#[from] IndexError),
}

impl RequestError {
    /// The wire code of this failure.
    pub fn code(&self) -> ErrorCode {
        match self {
            RequestError::OutsideRoot { .. } => ErrorCode::OutsideRoot,
            RequestError::NotFound { .. } => ErrorCode::NotFound,
            RequestError::NotARequest { .. } => ErrorCode::BadRequest,
            RequestError::TooLarge { .. } => ErrorCode::TooLarge,
            RequestError::Index(_) => ErrorCode::Internal,
        }
    }

    /// The error body sent to the hub.
    pub fn to_body(&self) -> ErrorBody {
        ErrorBody {
            code: self.code(),
            message: self.to_string(),
        }
    }
}
