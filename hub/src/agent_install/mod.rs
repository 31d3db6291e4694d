//! `connect --install-agent`: putting this hub's agent on a server that has none, or one that
//! speaks an older protocol version, then going on with the sync. Without the flag, the same
//! cases end with an error that gives the exact command to run.
//!
//! The agent to upload ships BESIDE the hub (`runicorn-agent-<arch>-linux` in the same directory,
//! as the laptop wheel installs it), not embedded in it: embedding would make every `cargo build`
//! of the hub depend on the agent's zig cross-build, and a file beside the hub can be replaced
//! or named with `--agent-binary` for a platform this hub was not shipped with.
//!
//! | module | owns |
//! |---|---|
//! | `binary` | which local file to upload for the server's OS and architecture, and its ELF check |
//! | `remote` | the server side: the probe, the SFTP upload, the SHA-256 check, chmod and rename |
//! | `local_hash` | SHA-256 of a local file, hex |
//! | `advice` | the exact `runicorn-hub connect … --install-agent` command for a remote |
//! | `error` | `InstallError` |

mod advice;
mod binary;
mod error;
mod local_hash;
mod remote;

use std::path::PathBuf;
use std::sync::Arc;

pub use advice::install_command;
pub use binary::Platform;
pub use error::InstallError;

use crate::open_link::{open_link, OpenOptions};
use crate::remote_address::RemoteAddress;
use crate::ssh::SshSession;
use crate::sync::{agent_is_older, AgentClient, SyncError};

/// Where progress lines of an install go (the CLI prints them unless `--quiet`).
pub type InstallReport = Arc<dyn Fn(&str) + Send + Sync>;

/// What `--install-agent` asks for.
#[derive(Clone, Default)]
pub struct InstallAgent {
    /// The agent file to upload (`--agent-binary`, `RUNICORN_AGENT_BINARY`); found beside the
    /// hub when `None`.
    pub agent_binary: Option<PathBuf>,
    /// Told what is being installed where.
    pub report: Option<InstallReport>,
}

impl std::fmt::Debug for InstallAgent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InstallAgent")
            .field("agent_binary", &self.agent_binary)
            .finish_non_exhaustive()
    }
}

/// Why the agent on the server must be (re)installed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Need {
    /// Not found (exit 127).
    Missing,
    /// Found but not executable here (exit 126: another platform, no execute bit).
    Unusable,
    /// Speaks only older protocol versions than this hub.
    Older,
}

impl Need {
    fn of(error: &SyncError) -> Option<Need> {
        match error {
            SyncError::AgentMissing { .. } => Some(Need::Missing),
            SyncError::AgentExited {
                status: Some(126), ..
            } => Some(Need::Unusable),
            SyncError::ProtocolMismatch { agent_versions, .. }
                if agent_is_older(agent_versions) =>
            {
                Some(Need::Older)
            }
            _ => None,
        }
    }

    fn verb(self) -> &'static str {
        match self {
            Need::Missing => "installing",
            Need::Unusable | Need::Older => "replacing",
        }
    }
}

/// Opens the link to `address` and handshakes, installing the agent first when `opts` ask for
/// it and the server has none, an unusable one or an older one. Returns the client and the SSH
/// session it lives on.
pub async fn open_client(
    address: &RemoteAddress,
    name: &str,
    opts: &OpenOptions,
) -> Result<(AgentClient, Option<SshSession>), SyncError> {
    if opts.install_agent.is_some() {
        check_address(address, name)?;
    }
    let opened = open_link(address, name, opts).await?;
    let error = match AgentClient::handshake(opened.link).await {
        Ok(client) => return Ok((client, opened.ssh)),
        Err(e) => e,
    };
    let Some(need) = Need::of(&error) else {
        return Err(error);
    };
    let (Some(install), Some(session)) = (&opts.install_agent, opened.ssh.as_ref()) else {
        return Err(advice::with_install_command(error, address, name));
    };
    let facts = install_agent(session, name, install, need).await?;
    drop(opened.ssh);
    let reopened = open_link(address, name, opts).await?;
    match AgentClient::handshake(reopened.link).await {
        Ok(client) => Ok((client, reopened.ssh)),
        Err(e) => match (Need::of(&e), facts.shadowing_agent()) {
            (Some(_), Some(shadowing)) => Err(InstallError::Shadowed {
                remote: name.to_owned(),
                installed: facts.install_path(),
                shadowing: shadowing.to_owned(),
            }
            .into()),
            _ => Err(e),
        },
    }
}

/// `--install-agent` needs an SSH address whose agent is looked for in the default places.
fn check_address(address: &RemoteAddress, name: &str) -> Result<(), InstallError> {
    match address {
        RemoteAddress::Local { .. } | RemoteAddress::Offline { .. } => Err(InstallError::NotSsh {
            remote: name.to_owned(),
        }),
        RemoteAddress::Ssh {
            agent: Some(agent), ..
        } => Err(InstallError::ExplicitAgentPath {
            remote: name.to_owned(),
            agent: agent.clone(),
        }),
        RemoteAddress::Ssh { .. } => Ok(()),
    }
}

/// Probes the server, chooses the local agent for it, uploads and verifies it.
async fn install_agent(
    session: &SshSession,
    remote: &str,
    install: &InstallAgent,
    need: Need,
) -> Result<remote::RemoteFacts, InstallError> {
    let facts = remote::probe(session, remote).await?;
    let hub_exe = std::env::current_exe().map_err(|source| InstallError::LocalRead {
        path: PathBuf::from("/proc/self/exe"),
        source,
    })?;
    // Stats, a header and a hash of a local file: off the async threads.
    let explicit = install.agent_binary.clone();
    let platform = facts.platform.clone();
    let remote_name = remote.to_owned();
    let chosen = tokio::task::spawn_blocking(move || {
        let path = binary::choose(explicit.as_deref(), &hub_exe, &platform, &remote_name)?;
        let (size, sha256) =
            local_hash::size_and_sha256(&path).map_err(|source| InstallError::LocalRead {
                path: path.clone(),
                source,
            })?;
        Ok::<_, InstallError>((path, size, sha256))
    })
    .await
    .map_err(|e| InstallError::LocalRead {
        path: PathBuf::from("the agent to install"),
        source: std::io::Error::other(e.to_string()),
    })?;
    let (local, size, sha256) = chosen?;
    if let Some(report) = &install.report {
        report(&format!(
            "{remote}: {} runicorn-agent in {} ({} {}; {} from {}, SHA-256 {})",
            need.verb(),
            facts.install_path(),
            facts.platform.os,
            facts.platform.arch,
            runicorn_cli::human::bytes(size),
            local.display(),
            sha256.get(..12).unwrap_or(&sha256),
        ));
    }
    let started = std::time::Instant::now();
    remote::install(session, remote, &facts, &local, &sha256).await?;
    if let Some(report) = &install.report {
        report(&format!(
            "{remote}: runicorn-agent installed and verified in {:.1} s (SHA-256 matches); \
             to wrap training commands with `runicorn-agent run` there, put it on your PATH: \
             ln -sf ~/.runicorn/bin/runicorn-agent ~/.local/bin/",
            started.elapsed().as_secs_f64()
        ));
    }
    Ok(facts)
}
