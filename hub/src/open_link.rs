//! Opens the link to a remote's agent, whatever its address: an SSH connection and an exec
//! channel, or a local child process. The SSH session is returned beside the link because the
//! link lives only as long as its connection.

use std::time::Duration;

use crate::link::{AgentLink, LinkDiagnostics};
use crate::local_transport::{local_agent_program, spawn_local_agent};
use crate::remote_address::RemoteAddress;
use crate::ssh;
use crate::sync::SyncError;

/// An open link and what keeps it alive.
pub struct OpenLink {
    pub link: AgentLink,
    /// The SSH connection under the link (none for a local agent).
    pub ssh: Option<ssh::SshSession>,
}

/// Options that apply to opening, not to the remembered address.
#[derive(Debug, Clone, Default)]
pub struct OpenOptions {
    /// Record an unknown host key in known_hosts instead of refusing it.
    pub accept_new_host_key: bool,
    /// Extra arguments for `runicorn-agent serve` (e.g. `--poll 0.5`).
    pub agent_args: Vec<String>,
    /// Install or upgrade the agent when it is missing or older (`connect --install-agent`).
    pub install_agent: Option<crate::agent_install::InstallAgent>,
}

/// Opens a link to `address`.
pub async fn open_link(
    address: &RemoteAddress,
    name: &str,
    opts: &OpenOptions,
) -> Result<OpenLink, SyncError> {
    let with_address_args;
    let opts = if address.resident() {
        let mut o = opts.clone();
        o.agent_args.extend(address.serve_args());
        with_address_args = o;
        &with_address_args
    } else {
        opts
    };
    match address {
        RemoteAddress::Offline { .. } => Err(SyncError::Transport {
            remote: name.to_owned(),
            message: format!(
                "{name} is known only from imported bundles; give it a link with \
                 `runicorn-hub connect USER@HOST --name {name}`, or import a newer bundle"
            ),
            transient: false,
        }),
        RemoteAddress::Local { dir, agent, .. } => {
            let program = local_agent_program(agent.as_deref());
            let link = spawn_local_agent(&program, dir, &opts.agent_args).map_err(|e| {
                SyncError::Transport {
                    remote: name.to_owned(),
                    message: e.to_string(),
                    transient: false,
                }
            })?;
            Ok(OpenLink { link, ssh: None })
        }
        RemoteAddress::Ssh {
            target,
            port,
            identity,
            jump,
            agent,
            root,
            ..
        } => {
            let connect_opts = ssh::ConnectOptions {
                port: *port,
                identity: identity.clone(),
                jump: jump.clone(),
                accept_new_host_key: opts.accept_new_host_key,
                ..ssh::ConnectOptions::default()
            };
            let transport_err = |e: ssh::SshError| SyncError::Transport {
                remote: name.to_owned(),
                transient: e.is_transient(),
                message: e.to_string(),
            };
            let resolved = ssh::resolve_target(target, &connect_opts).map_err(transport_err)?;
            let session = ssh::connect(&resolved, &connect_opts)
                .await
                .map_err(transport_err)?;
            let link =
                start_agent_over(&session, agent.as_deref(), root.as_deref(), name, opts).await?;
            Ok(OpenLink {
                link,
                ssh: Some(session),
            })
        }
    }
}

/// Starts `runicorn-agent serve --stdio` on an open SSH connection (the sync's, or the file
/// connection's when the hub asks for chunk lists).
pub(crate) async fn start_agent_over(
    session: &ssh::SshSession,
    agent: Option<&str>,
    root: Option<&str>,
    name: &str,
    opts: &OpenOptions,
) -> Result<AgentLink, SyncError> {
    let mut args = vec!["serve".to_owned(), "--stdio".to_owned()];
    if let Some(root) = root {
        args.push("--root".into());
        args.push(root.to_owned());
    }
    args.extend(opts.agent_args.iter().cloned());
    let channel = session
        .start_agent(agent, &args)
        .await
        .map_err(|e| SyncError::Transport {
            remote: name.to_owned(),
            transient: e.is_transient(),
            message: e.to_string(),
        })?;
    let (reader, writer, diagnostics) = channel.into_parts();
    Ok(AgentLink {
        reader: Box::new(reader),
        writer: Box::new(writer),
        diagnostics: Box::new(SshDiagnostics(diagnostics)),
        describe: name.to_owned(),
    })
}

struct SshDiagnostics(ssh::AgentMonitor);

impl LinkDiagnostics for SshDiagnostics {
    fn stderr_tail(&self) -> String {
        self.0.stderr_tail()
    }

    fn exit_status(
        &self,
        wait: Duration,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Option<u32>> + Send + '_>> {
        Box::pin(self.0.exit_status(wait))
    }
}
