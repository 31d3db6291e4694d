//! An open byte stream to an agent, whatever carries it (an SSH exec channel, a child process's
//! pipes), plus what the carrier can tell when the stream dies: the agent's stderr and exit code.

use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite};

/// What the carrier of a link knows about the far end's process.
pub trait LinkDiagnostics: Send + Sync {
    /// The last lines the agent wrote to stderr.
    fn stderr_tail(&self) -> String;
    /// The agent's exit code, waiting at most `wait` for it.
    fn exit_status(
        &self,
        wait: Duration,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Option<u32>> + Send + '_>>;
}

/// A byte stream to a `runicorn-agent serve --stdio`.
pub struct AgentLink {
    /// The agent's stdout.
    pub reader: Box<dyn AsyncRead + Send + Unpin>,
    /// The agent's stdin.
    pub writer: Box<dyn AsyncWrite + Send + Unpin>,
    pub diagnostics: Box<dyn LinkDiagnostics>,
    /// Where the link goes, for messages (`gpu-01`, `local:/data/runs`).
    pub describe: String,
}
