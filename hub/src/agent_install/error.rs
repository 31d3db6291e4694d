//! `InstallError`: what can go wrong while putting the agent on a server, each message naming
//! the server, the file or the step, and what to do.

use std::path::PathBuf;

/// A failure of `connect --install-agent`.
#[derive(Debug, thiserror::Error)]
pub enum InstallError {
    #[error("--install-agent works over SSH; {remote} is a local root, whose agent is the one beside runicorn-hub (or --agent PATH)")]
    NotSsh { remote: String },
    #[error("--install-agent installs into ~/.runicorn/bin/runicorn-agent on {remote}, but --agent names another path ({agent}): drop --agent, or install that file yourself")]
    ExplicitAgentPath { remote: String, agent: String },
    #[error("this hub has no runicorn-agent for {os} {arch}, the system of {remote} (looked for {}). Build the agent for that platform and pass it with --agent-binary PATH (or RUNICORN_AGENT_BINARY)", looked_text(.looked))]
    NoAgentFor {
        remote: String,
        os: String,
        arch: String,
        looked: Vec<PathBuf>,
    },
    #[error("{} cannot be installed on {remote} ({os} {arch}): {reason}. Pass --agent-binary with a runicorn-agent built for {arch} Linux", .path.display())]
    WrongBinary {
        remote: String,
        path: PathBuf,
        os: String,
        arch: String,
        reason: String,
    },
    #[error("cannot read the agent to install, {}: {source}. Check the path given to --agent-binary (or RUNICORN_AGENT_BINARY)", .path.display())]
    LocalRead {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("installing runicorn-agent on {remote}: {step} failed: {detail}")]
    Remote {
        remote: String,
        step: &'static str,
        detail: String,
    },
    #[error("installing runicorn-agent on {remote}: the uploaded file {path} has SHA-256 {found}, not {expected} (the bytes of {}); it was removed and nothing was replaced. Try again; if it persists, check the disk on {remote}", .local.display())]
    HashMismatch {
        remote: String,
        path: String,
        local: PathBuf,
        expected: String,
        found: String,
    },
    #[error("runicorn-agent was installed into {installed} on {remote}, but the older agent at {shadowing} comes first on the PATH of non-interactive shells there and is still the one that runs: upgrade or remove it (e.g. `pip install -U` in its environment), or pass --agent {installed}")]
    Shadowed {
        remote: String,
        installed: String,
        shadowing: String,
    },
}

fn looked_text(looked: &[PathBuf]) -> String {
    if looked.is_empty() {
        return "nothing: no agent is made for that platform".to_owned();
    }
    looked
        .iter()
        .map(|p| p.display().to_string())
        .collect::<Vec<_>>()
        .join(", ")
}
