//! The SSH client of the hub (russh): how it reaches a GPU server the way `ssh` would.
//!
//! | module | owns |
//! |---|---|
//! | `target` | `ConnectOptions`, `[user@]host[:port]`, `~/.ssh/config` (aliases, HostName, User, Port, IdentityFile, ProxyJump) |
//! | `known_hosts` | host key verification: unknown keys refused (or recorded on request), changed keys always refused |
//! | `auth` | ssh-agent keys, then key files; passphrases on a terminal |
//! | `connect` | TCP or ProxyJump tunnels, the handshake, transport settings, `SshSession::exec` |
//! | `agent_channel` | `runicorn-agent` over an exec channel: streams, stderr tail, exit status, install hint |
//! | `sftp` | SFTP on a second channel of the same connection |
//! | `error` | `SshError`: every message names the host and what to do |
//!
//! Use: `resolve_target` → `connect` → `start_agent` / `exec` / `sftp` → `close`. There is no
//! reconnection here: a lost connection surfaces as an error (`SshError::Disconnected`, or a
//! failed read on the agent's stdout), and the caller reconnects.

mod agent_channel;
mod auth;
mod connect;
mod error;
mod known_hosts;
mod sftp;
mod target;

pub use agent_channel::{
    agent_command, missing_agent_message, shell_quote, AgentChannel, AgentMonitor, AgentStdin,
    AgentStdout, AGENT_HOME_PATH,
};
pub use connect::{connect, ExecOutput, SshSession};
pub use error::SshError;
pub use sftp::default_sftp_config;
pub use target::{resolve_target, ConnectOptions, SshTarget};

/// The SFTP client types `SshSession::sftp` returns.
pub use russh_sftp::client::SftpSession;
