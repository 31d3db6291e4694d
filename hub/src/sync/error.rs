//! What can go wrong while syncing with an agent, each case worded for the user: what happened,
//! to which remote, and what to do.

use runicorn_protocol::wire::{ErrorCode, FrameError};

/// A sync failure.
#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    #[error("{message}")]
    AgentMissing { remote: String, message: String },
    #[error("the agent on {remote} exited{} before it answered{}", status_text(*.status), stderr_text(.stderr))]
    AgentExited {
        remote: String,
        status: Option<u32>,
        stderr: String,
    },
    #[error("the agent on {remote} is not compatible with this hub: {message}")]
    Incompatible { remote: String, message: String },
    #[error("the agent on {remote} ({agent}) is not compatible with this hub: it speaks protocol versions {agent_versions:?}, this hub speaks version {}; {advice}", runicorn_protocol::wire::PROTOCOL_VERSION)]
    ProtocolMismatch {
        remote: String,
        /// The agent's `software` (`runicorn-agent/0.3.0`).
        agent: String,
        agent_versions: Vec<u32>,
        /// Which side to upgrade, and how.
        advice: String,
    },
    /// Installing or upgrading the agent on the server failed (`connect --install-agent`).
    #[error(transparent)]
    Install(#[from] crate::agent_install::InstallError),
    #[error("the agent on {remote} sent a message this hub refuses: {detail}. Nothing from that message was stored; upgrade or reinstall runicorn-agent on {remote}{}", stderr_text(.stderr))]
    BrokenAgent {
        remote: String,
        detail: String,
        stderr: String,
    },
    #[error("the agent on {remote} refused a request ({code}): {message}")]
    Refused {
        remote: String,
        code: ErrorCode,
        message: String,
    },
    #[error("the connection to {remote} was lost: {cause}")]
    ConnectionLost { remote: String, cause: String },
    #[error("{remote} did not answer {what} within {seconds} s")]
    Timeout {
        remote: String,
        what: &'static str,
        seconds: u64,
    },
    #[error("cannot connect to {remote}: {message}")]
    Transport {
        remote: String,
        message: String,
        /// A network failure worth retrying, not one the user must fix (keys, config).
        transient: bool,
    },
    #[error("the hub's store: {0}")]
    Store(String),
}

impl SyncError {
    /// True when trying again later may succeed (a dropped link), false when the user must act
    /// (a host key, a missing agent, an incompatible or broken peer).
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            SyncError::ConnectionLost { .. }
                | SyncError::Timeout { .. }
                | SyncError::AgentExited { .. }
                | SyncError::Transport {
                    transient: true,
                    ..
                }
        )
    }

    /// Builds the error for a frame that could not be read from `remote`.
    pub fn from_frame(remote: &str, err: FrameError, stderr: String) -> SyncError {
        match err {
            FrameError::Closed | FrameError::Truncated { .. } | FrameError::Io(_) => {
                SyncError::ConnectionLost {
                    remote: remote.to_owned(),
                    cause: err.to_string(),
                }
            }
            FrameError::Oversized { .. } | FrameError::Invalid { .. } | FrameError::Encode(_) => {
                SyncError::BrokenAgent {
                    remote: remote.to_owned(),
                    detail: err.to_string(),
                    stderr,
                }
            }
        }
    }
}

fn status_text(status: Option<u32>) -> String {
    match status {
        Some(code) => format!(" with code {code}"),
        None => String::new(),
    }
}

fn stderr_text(stderr: &str) -> String {
    let trimmed = stderr.trim();
    if trimmed.is_empty() {
        String::new()
    } else {
        format!("; it said:\n{trimmed}")
    }
}
