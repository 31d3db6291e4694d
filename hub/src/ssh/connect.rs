//! Opening an authenticated connection: DNS and TCP (or a `direct-tcpip` channel through each
//! ProxyJump host), the SSH handshake with host key verification, authentication; the
//! transport settings (nodelay, a large window, keepalives); and `SshSession` with `exec`.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use russh::client::{self, DisconnectReason, Handle};
use russh::keys::PublicKeyOrCertificate;
use russh::{ChannelMsg, Disconnect};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;

use super::auth;
use super::error::SshError;
use super::known_hosts::{self, HostKeyPolicy};
use super::target::{resolve_jump, ConnectOptions, SshTarget};

/// Receive window per channel. A channel moves at most one window per round trip, so this
/// bounds bulk throughput at window / RTT (16 MiB at 50 ms: >300 MB/s).
const WINDOW_SIZE: u32 = 16 * 1024 * 1024;
/// Keepalive probes left unanswered before the connection is declared dead.
const KEEPALIVE_MAX: usize = 3;

/// State shared between a connection's handler (inside russh's event loop) and its session.
#[derive(Debug, Default)]
pub(crate) struct Shared {
    /// Why the connection ended, once it has.
    disconnect_reason: Mutex<Option<String>>,
}

impl Shared {
    fn set_reason(&self, reason: String) {
        if let Ok(mut slot) = self.disconnect_reason.lock() {
            slot.get_or_insert(reason);
        }
    }

    pub(crate) fn reason(&self) -> Option<String> {
        self.disconnect_reason.lock().ok().and_then(|r| r.clone())
    }
}

/// The russh event handler of one connection: verifies the host key, records why the
/// connection ended, logs banners.
pub(crate) struct ClientHandler {
    policy: HostKeyPolicy,
    shared: Arc<Shared>,
}

/// The handler's error: russh's own, or a host key verdict to report as it is.
#[derive(Debug)]
pub(crate) enum HandlerError {
    Russh(russh::Error),
    HostKey(Box<SshError>),
}

impl From<russh::Error> for HandlerError {
    fn from(e: russh::Error) -> Self {
        HandlerError::Russh(e)
    }
}

impl client::Handler for ClientHandler {
    type Error = HandlerError;

    async fn check_server_key(
        &mut self,
        server_key: &PublicKeyOrCertificate,
    ) -> Result<bool, Self::Error> {
        let key = match server_key {
            PublicKeyOrCertificate::PublicKey { key, .. } => key,
            // Only offered when certificate algorithms are configured, which they are not.
            PublicKeyOrCertificate::Certificate(_) => {
                return Err(HandlerError::HostKey(Box::new(SshError::Handshake {
                    target: self.policy.target.clone(),
                    message: "the server presented a host certificate, which the hub does not \
                              verify"
                        .into(),
                })))
            }
        };
        match known_hosts::verify(&self.policy, key) {
            Ok(()) => Ok(true),
            Err(e) => Err(HandlerError::HostKey(Box::new(e))),
        }
    }

    async fn auth_banner(
        &mut self,
        banner: &str,
        _session: &mut client::Session,
    ) -> Result<(), Self::Error> {
        tracing::info!("{}: {}", self.policy.target, banner.trim_end());
        Ok(())
    }

    async fn disconnected(
        &mut self,
        reason: DisconnectReason<Self::Error>,
    ) -> Result<(), Self::Error> {
        match reason {
            DisconnectReason::ReceivedDisconnect(info) => {
                self.shared.set_reason(format!(
                    "the server disconnected ({:?}{}{})",
                    info.reason_code,
                    if info.message.is_empty() { "" } else { ": " },
                    info.message
                ));
                Ok(())
            }
            DisconnectReason::Error(e) => {
                self.shared.set_reason(describe_handler_error(&e));
                Err(e)
            }
        }
    }
}

/// `KILL`, `TERM`, … as OpenSSH names signals.
pub(crate) fn signal_text(signal: &russh::Sig) -> String {
    match signal {
        russh::Sig::Custom(name) => name.clone(),
        other => format!("{other:?}"),
    }
}

fn describe_handler_error(e: &HandlerError) -> String {
    match e {
        HandlerError::HostKey(e) => e.to_string(),
        HandlerError::Russh(russh::Error::KeepaliveTimeout) => {
            "no answer to keepalives (the network or the host is down)".to_string()
        }
        HandlerError::Russh(russh::Error::IO(io)) => format!("network error: {io}"),
        HandlerError::Russh(russh::Error::HUP | russh::Error::Disconnect) => {
            "the connection was closed".to_string()
        }
        HandlerError::Russh(e) => e.to_string(),
    }
}

/// The output of a remote command.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ExecOutput {
    /// The exit status; `None` when the command was killed by a signal (see `signal`).
    pub status: Option<u32>,
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
    /// The signal that ended the command, if one did (e.g. `KILL`).
    pub signal: Option<String>,
}

/// An authenticated connection to a server (through its jump hosts, if any).
pub struct SshSession {
    pub(crate) handle: Handle<ClientHandler>,
    /// Connections to the jump hosts, first hop first; kept open for the tunnel's life.
    jumps: Vec<Handle<ClientHandler>>,
    pub(crate) target: SshTarget,
    pub(crate) shared: Arc<Shared>,
    pub(crate) timeout: Duration,
}

impl std::fmt::Debug for SshSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SshSession")
            .field("target", &self.target.to_string())
            .field("jumps", &self.jumps.len())
            .finish()
    }
}

/// Connects and authenticates to `target`, through its jump hosts if it has any.
pub async fn connect(target: &SshTarget, opts: &ConnectOptions) -> Result<SshSession, SshError> {
    let mut jumps: Vec<Handle<ClientHandler>> = Vec::new();
    let mut previous: Option<SshTarget> = None;
    for spec in &target.proxy_jump {
        let jump_error = |jump: String, e: SshError| SshError::Jump {
            jump,
            target: target.to_string(),
            source: Box::new(e),
        };
        let hop = resolve_jump(spec, opts).map_err(|e| jump_error(spec.clone(), e))?;
        let (handle, _) = match (jumps.last(), &previous) {
            (Some(via), Some(via_target)) => connect_via(via, via_target, &hop, opts).await,
            _ => connect_direct(&hop, opts).await,
        }
        .map_err(|e| jump_error(hop.to_string(), e))?;
        jumps.push(handle);
        previous = Some(hop);
    }
    let (handle, shared) = match (jumps.last(), &previous) {
        (Some(via), Some(via_target)) => connect_via(via, via_target, target, opts).await?,
        _ => connect_direct(target, opts).await?,
    };
    Ok(SshSession {
        handle,
        jumps,
        target: target.clone(),
        shared,
        timeout: opts.connect_timeout,
    })
}

/// Ciphers in order of preference: AES-GCM first (AES-NI through aws-lc-rs is several times
/// faster than russh's ChaCha20-Poly1305, and file transfers are bound by it), then the rest
/// of russh's defaults.
const CIPHERS: &[russh::cipher::Name] = &[
    russh::cipher::AES_256_GCM,
    russh::cipher::AES_128_GCM,
    russh::cipher::CHACHA20_POLY1305,
    russh::cipher::AES_256_CTR,
    russh::cipher::AES_192_CTR,
    russh::cipher::AES_128_CTR,
];

/// The russh configuration for one connection.
fn transport_config(target: &SshTarget, opts: &ConnectOptions) -> client::Config {
    let preferred = russh::Preferred {
        key: known_hosts::preferred_host_key_algorithms(
            &opts.known_hosts_path(),
            target.known_hosts_host(),
            target.port,
        ),
        cipher: std::borrow::Cow::Borrowed(CIPHERS),
        ..russh::Preferred::default()
    };
    client::Config {
        window_size: WINDOW_SIZE,
        nodelay: true,
        keepalive_interval: (!opts.keepalive.is_zero()).then_some(opts.keepalive),
        keepalive_max: KEEPALIVE_MAX,
        preferred,
        ..client::Config::default()
    }
}

async fn connect_direct(
    target: &SshTarget,
    opts: &ConnectOptions,
) -> Result<(Handle<ClientHandler>, Arc<Shared>), SshError> {
    let stream = tcp_connect(target, opts.connect_timeout).await?;
    handshake(target, opts, stream).await
}

/// Reaches `target` through a `direct-tcpip` channel of the jump host connection `via`.
async fn connect_via(
    via: &Handle<ClientHandler>,
    via_target: &SshTarget,
    target: &SshTarget,
    opts: &ConnectOptions,
) -> Result<(Handle<ClientHandler>, Arc<Shared>), SshError> {
    let open =
        via.channel_open_direct_tcpip(target.host.clone(), u32::from(target.port), "127.0.0.1", 0);
    let channel = match tokio::time::timeout(opts.connect_timeout, open).await {
        Err(_) => {
            return Err(SshError::Jump {
                jump: via_target.to_string(),
                target: target.to_string(),
                source: Box::new(SshError::Timeout {
                    target: via_target.to_string(),
                    stage: "opening a forwarding channel on the jump host",
                    after: opts.connect_timeout,
                }),
            })
        }
        Ok(Err(e)) => {
            let message = match e {
                russh::Error::ChannelOpenFailure(
                    russh::ChannelOpenFailure::AdministrativelyProhibited,
                ) => "the jump host does not allow TCP forwarding (AllowTcpForwarding in its \
                     sshd_config)"
                    .to_string(),
                russh::Error::ChannelOpenFailure(russh::ChannelOpenFailure::ConnectFailed) => {
                    format!(
                        "the jump host cannot reach {}:{} (wrong HostName/port, or the host is \
                         down)",
                        target.host, target.port
                    )
                }
                other => other.to_string(),
            };
            return Err(SshError::Jump {
                jump: via_target.to_string(),
                target: target.to_string(),
                source: Box::new(SshError::Channel {
                    target: via_target.to_string(),
                    what: format!("forwarding to {}:{}", target.host, target.port),
                    message,
                }),
            });
        }
        Ok(Ok(channel)) => channel,
    };
    handshake(target, opts, channel.into_stream()).await
}

/// Resolves and connects the TCP socket, under the connect timeout.
async fn tcp_connect(target: &SshTarget, timeout: Duration) -> Result<TcpStream, SshError> {
    let timed_out = |stage| SshError::Timeout {
        target: target.to_string(),
        stage,
        after: timeout,
    };
    let lookup = tokio::net::lookup_host((target.host.as_str(), target.port));
    let addrs: Vec<_> = match tokio::time::timeout(timeout, lookup).await {
        Err(_) => return Err(timed_out("resolving the host name")),
        Ok(Err(e)) => {
            return Err(SshError::Dns {
                target: target.to_string(),
                host: target.host.clone(),
                message: e.to_string(),
            })
        }
        Ok(Ok(addrs)) => addrs.collect(),
    };
    let mut last: Option<SshError> = None;
    for addr in addrs {
        match tokio::time::timeout(timeout, TcpStream::connect(addr)).await {
            Ok(Ok(stream)) => {
                if let Err(e) = stream.set_nodelay(true) {
                    tracing::debug!("set_nodelay: {e}");
                }
                return Ok(stream);
            }
            Ok(Err(e)) if e.kind() == std::io::ErrorKind::ConnectionRefused => {
                last = Some(SshError::ConnectionRefused {
                    target: target.to_string(),
                    port: target.port,
                });
            }
            Ok(Err(e)) => {
                last = Some(SshError::Connect {
                    target: target.to_string(),
                    message: format!("{addr}: {e}"),
                });
            }
            Err(_) => last = Some(timed_out("connecting")),
        }
    }
    Err(last.unwrap_or_else(|| SshError::Dns {
        target: target.to_string(),
        host: target.host.clone(),
        message: "the name has no addresses".into(),
    }))
}

/// The SSH handshake and authentication over an established stream.
async fn handshake<S>(
    target: &SshTarget,
    opts: &ConnectOptions,
    stream: S,
) -> Result<(Handle<ClientHandler>, Arc<Shared>), SshError>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let shared = Arc::new(Shared::default());
    let handler = ClientHandler {
        policy: HostKeyPolicy {
            target: target.to_string(),
            lookup_host: target.known_hosts_host().to_string(),
            port: target.port,
            known_hosts: opts.known_hosts_path(),
            accept_new: opts.accept_new_host_key,
        },
        shared: Arc::clone(&shared),
    };
    let config = Arc::new(transport_config(target, opts));
    let connecting = client::connect_stream(config, stream, handler);
    let mut handle = match tokio::time::timeout(opts.connect_timeout, connecting).await {
        Err(_) => {
            return Err(SshError::Timeout {
                target: target.to_string(),
                stage: "exchanging SSH keys (the server answers but not as an SSH server?)",
                after: opts.connect_timeout,
            })
        }
        Ok(Err(HandlerError::HostKey(e))) => return Err(*e),
        Ok(Err(HandlerError::Russh(e))) => {
            return Err(SshError::Handshake {
                target: target.to_string(),
                message: handshake_message(&e),
            })
        }
        Ok(Ok(handle)) => handle,
    };
    auth::authenticate(&mut handle, target, opts).await?;
    Ok((handle, shared))
}

fn handshake_message(e: &russh::Error) -> String {
    match e {
        russh::Error::Disconnect | russh::Error::HUP => {
            "the server closed the connection before the handshake finished (it may limit \
             unauthenticated connections — MaxStartups — or not be an SSH server)"
                .to_string()
        }
        russh::Error::IO(io) if io.kind() == std::io::ErrorKind::UnexpectedEof => {
            "the server closed the connection before the handshake finished (is it an SSH \
             server?)"
                .to_string()
        }
        russh::Error::Version => "the other end is not an SSH server".to_string(),
        russh::Error::NoCommonAlgo { kind, theirs, .. } => format!(
            "no {kind:?} algorithm in common with the server (it offers {}); the server is too \
             old or restricted for the hub",
            theirs.join(",")
        ),
        other => other.to_string(),
    }
}

impl SshSession {
    /// The destination this session is connected to.
    pub fn target(&self) -> &SshTarget {
        &self.target
    }

    /// True once the connection (or the tunnel it runs in) has ended.
    pub fn is_closed(&self) -> bool {
        self.handle.is_closed() || self.jumps.iter().any(Handle::is_closed)
    }

    /// Why the connection ended, if it has and the reason is known.
    pub fn disconnect_reason(&self) -> Option<String> {
        self.shared.reason()
    }

    /// The error to report for a failure on a channel: a lost connection if it is gone.
    pub(crate) fn channel_error(&self, what: &str, message: String) -> SshError {
        if self.is_closed() {
            SshError::Disconnected {
                target: self.target.to_string(),
                message: self
                    .shared
                    .reason()
                    .unwrap_or_else(|| "the connection was closed".to_string()),
            }
        } else {
            SshError::Channel {
                target: self.target.to_string(),
                what: what.to_string(),
                message,
            }
        }
    }

    /// Opens a session channel, under the connect timeout.
    pub(crate) async fn open_session(
        &self,
        what: &str,
    ) -> Result<russh::Channel<client::Msg>, SshError> {
        match tokio::time::timeout(self.timeout, self.handle.channel_open_session()).await {
            Err(_) => Err(SshError::Timeout {
                target: self.target.to_string(),
                stage: "opening a channel",
                after: self.timeout,
            }),
            Ok(Err(e)) => Err(self.channel_error(what, format!("cannot open a channel: {e}"))),
            Ok(Ok(channel)) => Ok(channel),
        }
    }

    /// Waits for the answer to a request sent with `want_reply`; returns the other messages
    /// that arrived meanwhile, in order, for the caller to handle.
    pub(crate) async fn await_reply(
        &self,
        channel: &mut russh::Channel<client::Msg>,
        what: &str,
        refused: &str,
    ) -> Result<Vec<ChannelMsg>, SshError> {
        let wait = async {
            let mut pending = Vec::new();
            loop {
                match channel.wait().await {
                    Some(ChannelMsg::Success) => return Ok(pending),
                    Some(ChannelMsg::Failure) => return Err(refused.to_string()),
                    Some(ChannelMsg::Close) | None => {
                        return Err("the channel closed before the server answered".to_string())
                    }
                    Some(other) => pending.push(other),
                }
            }
        };
        match tokio::time::timeout(self.timeout, wait).await {
            Err(_) => Err(SshError::Timeout {
                target: self.target.to_string(),
                stage: "waiting for the server to start a command",
                after: self.timeout,
            }),
            Ok(Err(message)) => Err(self.channel_error(what, message)),
            Ok(Ok(pending)) => Ok(pending),
        }
    }

    /// Runs `command` (through the remote user's shell) and collects its output and status.
    pub async fn exec(&self, command: &str) -> Result<ExecOutput, SshError> {
        let what = format!("running `{command}`");
        let mut channel = self.open_session(&what).await?;
        if let Err(e) = channel.exec(true, command).await {
            return Err(self.channel_error(&what, e.to_string()));
        }
        let pending = self
            .await_reply(&mut channel, &what, "the server refused to run the command")
            .await?;
        let mut out = ExecOutput::default();
        let mut closed = false;
        let mut pending = pending.into_iter();
        loop {
            let msg = match pending.next() {
                Some(msg) => msg,
                None => match channel.wait().await {
                    Some(msg) => msg,
                    None => break,
                },
            };
            match msg {
                ChannelMsg::Data { data } => out.stdout.extend_from_slice(&data),
                ChannelMsg::ExtendedData { data, ext: 1 } => out.stderr.extend_from_slice(&data),
                ChannelMsg::ExitStatus { exit_status } => out.status = Some(exit_status),
                ChannelMsg::ExitSignal { signal_name, .. } => {
                    out.signal = Some(signal_text(&signal_name));
                }
                ChannelMsg::Close => {
                    closed = true;
                    break;
                }
                _ => {}
            }
        }
        if !closed && out.status.is_none() && out.signal.is_none() {
            return Err(self.channel_error(&what, "the connection ended mid-command".into()));
        }
        Ok(out)
    }

    /// Closes the connection and those to the jump hosts.
    pub async fn close(self) {
        let _ = self
            .handle
            .disconnect(Disconnect::ByApplication, "", "en")
            .await;
        for jump in self.jumps.iter().rev() {
            let _ = jump.disconnect(Disconnect::ByApplication, "", "en").await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn assert_send_sync<T: Send + Sync>() {}

    #[test]
    fn sessions_can_be_shared_between_tasks() {
        assert_send_sync::<SshSession>();
    }

    #[tokio::test]
    async fn refused_and_unresolvable_hosts_are_typed_errors() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        drop(listener);
        let home = tempfile::tempdir().unwrap();
        let opts = ConnectOptions {
            ssh_dir: Some(home.path().join(".ssh")),
            agent_socket: Some(home.path().join("none")),
            ..ConnectOptions::default()
        };
        let target = super::super::resolve_target(&format!("u@127.0.0.1:{port}"), &opts).unwrap();
        let err = connect(&target, &opts).await.unwrap_err();
        assert!(matches!(err, SshError::ConnectionRefused { .. }), "{err}");
        assert!(
            err.to_string().contains(&format!("u@127.0.0.1:{port}")),
            "{err}"
        );

        let target = super::super::resolve_target("no-such-host.invalid", &opts).unwrap();
        let err = connect(&target, &opts).await.unwrap_err();
        assert!(
            matches!(err, SshError::Dns { .. } | SshError::Timeout { .. }),
            "{err}"
        );
    }
}
