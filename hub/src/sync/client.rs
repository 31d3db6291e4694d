//! The hub's end of the agent protocol: the handshake, then requests with ids answered in any
//! order, several in flight at once (pipelining hides the round-trip time of a slow link), and
//! the agent's unasked change notices delivered on a channel.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use runicorn_protocol::wire::{
    self, frame::async_io, Body, ChangeBatch, ChangesRequest, Cursor, Envelope, ErrorCode, Hello,
    LogBatch, LogRequest, LogWanted, Notice, PointBatch, PointsRequest, PointsWanted,
    DEFAULT_MAX_FRAME_BYTES, PROTOCOL_NAME, PROTOCOL_VERSION,
};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::{mpsc, oneshot};

use super::error::SyncError;
use super::validate;
use crate::link::{AgentLink, LinkDiagnostics};

/// How long the agent may take to answer the handshake.
pub const HELLO_TIMEOUT: Duration = Duration::from_secs(30);
/// How long one request may wait for its answer before the link is declared dead.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(120);

type Pending = Arc<Mutex<HashMap<u64, oneshot::Sender<Result<Body, SyncError>>>>>;

/// A connected, handshaken agent.
pub struct AgentClient {
    remote: String,
    writer: tokio::sync::Mutex<Box<dyn AsyncWrite + Send + Unpin>>,
    pending: Pending,
    next_id: AtomicU64,
    peer: Hello,
    peer_max_frame: u32,
    bytes_received: Arc<AtomicU64>,
    requests_sent: AtomicU64,
    notices: tokio::sync::Mutex<mpsc::UnboundedReceiver<Notice>>,
    diagnostics: Arc<dyn LinkDiagnostics>,
    reader_task: tokio::task::JoinHandle<()>,
}

impl Drop for AgentClient {
    fn drop(&mut self) {
        self.reader_task.abort();
    }
}

fn our_hello() -> Hello {
    Hello {
        protocol: PROTOCOL_NAME.to_owned(),
        versions: vec![PROTOCOL_VERSION],
        capabilities: wire::CAPABILITIES.iter().map(|c| (*c).to_owned()).collect(),
        software: format!("runicorn-hub/{}", env!("CARGO_PKG_VERSION")),
        max_frame_bytes: DEFAULT_MAX_FRAME_BYTES,
        root: None,
        host: None,
        epoch: None,
    }
}

impl AgentClient {
    /// Performs the handshake over `link` and starts reading answers.
    pub async fn handshake(link: AgentLink) -> Result<AgentClient, SyncError> {
        let AgentLink {
            mut reader,
            mut writer,
            diagnostics,
            describe: remote,
        } = link;
        let diagnostics: Arc<dyn LinkDiagnostics> = Arc::from(diagnostics);
        let hello = Envelope {
            id: 1,
            body: Body::Hello(our_hello()),
        };
        if let Err(e) = async_io::write_frame(&mut writer, &hello, DEFAULT_MAX_FRAME_BYTES).await {
            return Err(dead_link_error(&remote, &*diagnostics, e.to_string()).await);
        }
        let first = tokio::time::timeout(
            HELLO_TIMEOUT,
            async_io::read_frame(&mut reader, DEFAULT_MAX_FRAME_BYTES),
        )
        .await;
        let first = match first {
            Err(_) => {
                return Err(SyncError::Timeout {
                    remote,
                    what: "the handshake",
                    seconds: HELLO_TIMEOUT.as_secs(),
                })
            }
            Ok(Err(e @ (wire::FrameError::Closed | wire::FrameError::Truncated { .. }))) => {
                return Err(dead_link_error(&remote, &*diagnostics, e.to_string()).await)
            }
            Ok(Err(e)) => return Err(SyncError::from_frame(&remote, e, diagnostics.stderr_tail())),
            Ok(Ok(frame)) => frame,
        };
        let peer = match first.body {
            Body::Hello(h) => h,
            Body::Error(e) => {
                if let Some((agent, agent_versions)) = refused_versions(&e.message) {
                    return Err(SyncError::ProtocolMismatch {
                        advice: upgrade_advice(&remote, &agent_versions),
                        remote,
                        agent,
                        agent_versions,
                    });
                }
                return Err(SyncError::Incompatible {
                    remote,
                    message: format!("{} ({})", e.message, e.code),
                });
            }
            other => {
                return Err(SyncError::BrokenAgent {
                    remote,
                    detail: format!("its first message was {:?}, not hello", other.kind()),
                    stderr: diagnostics.stderr_tail(),
                })
            }
        };
        if peer.protocol == PROTOCOL_NAME && !peer.versions.contains(&PROTOCOL_VERSION) {
            return Err(SyncError::ProtocolMismatch {
                advice: upgrade_advice(&remote, &peer.versions),
                remote,
                agent: peer.software,
                agent_versions: peer.versions,
            });
        }
        if peer.protocol != PROTOCOL_NAME {
            return Err(SyncError::Incompatible {
                remote,
                message: format!(
                    "it speaks {} versions {:?}, this hub speaks {PROTOCOL_NAME} version {PROTOCOL_VERSION}; install the same Runicorn version on both sides",
                    peer.protocol, peer.versions
                ),
            });
        }
        let peer_max_frame = peer.max_frame_bytes.max(wire::MIN_MAX_FRAME_BYTES);
        let pending: Pending = Arc::default();
        let bytes_received = Arc::new(AtomicU64::new(0));
        let (notice_tx, notice_rx) = mpsc::unbounded_channel();
        let reader_task = tokio::spawn(read_answers(
            reader,
            remote.clone(),
            Arc::clone(&pending),
            notice_tx,
            Arc::clone(&bytes_received),
            Arc::clone(&diagnostics),
        ));
        Ok(AgentClient {
            remote,
            writer: tokio::sync::Mutex::new(writer),
            pending,
            next_id: AtomicU64::new(2),
            peer,
            peer_max_frame,
            bytes_received,
            requests_sent: AtomicU64::new(1),
            notices: tokio::sync::Mutex::new(notice_rx),
            diagnostics,
            reader_task,
        })
    }

    /// The agent's `hello`.
    pub fn peer(&self) -> &Hello {
        &self.peer
    }

    /// Whether the agent answers `log` with exact bytes (older agents send lossy text).
    pub fn sends_exact_logs(&self) -> bool {
        self.peer
            .capabilities
            .iter()
            .any(|c| c == wire::LOG_BYTES_CAPABILITY)
    }

    /// Name of the remote, for messages.
    pub fn remote(&self) -> &str {
        &self.remote
    }

    /// Bytes of frames received so far.
    pub fn bytes_received(&self) -> u64 {
        self.bytes_received.load(Ordering::Relaxed)
    }

    /// Requests sent so far, the handshake included.
    pub fn requests_sent(&self) -> u64 {
        self.requests_sent.load(Ordering::Relaxed)
    }

    /// Sends a request and waits for its answer.
    pub async fn request(&self, body: Body) -> Result<Body, SyncError> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = oneshot::channel();
        if let Ok(mut p) = self.pending.lock() {
            p.insert(id, tx);
        }
        let kind = body.kind();
        let envelope = Envelope { id, body };
        {
            let mut w = self.writer.lock().await;
            self.requests_sent.fetch_add(1, Ordering::Relaxed);
            if let Err(e) = async_io::write_frame(&mut *w, &envelope, self.peer_max_frame).await {
                if let Ok(mut p) = self.pending.lock() {
                    p.remove(&id);
                }
                return Err(SyncError::ConnectionLost {
                    remote: self.remote.clone(),
                    cause: e.to_string(),
                });
            }
        }
        match tokio::time::timeout(REQUEST_TIMEOUT, rx).await {
            Err(_) => Err(SyncError::Timeout {
                remote: self.remote.clone(),
                what: kind,
                seconds: REQUEST_TIMEOUT.as_secs(),
            }),
            Ok(Err(_)) => Err(SyncError::ConnectionLost {
                remote: self.remote.clone(),
                cause: "the connection closed".into(),
            }),
            Ok(Ok(answer)) => answer,
        }
    }

    /// `changes`: runs changed since `since`.
    pub async fn changes(
        &self,
        since: Option<Cursor>,
        max_runs: u32,
    ) -> Result<ChangeBatch, SyncError> {
        match self
            .request(Body::Changes(ChangesRequest { since, max_runs }))
            .await?
        {
            Body::ChangeBatch(b) => {
                validate::change_batch(&b).map_err(|d| self.broken(d))?;
                Ok(b)
            }
            other => Err(self.unexpected("change_batch", &other)),
        }
    }

    /// `points`: metric points after the given offsets.
    pub async fn points(
        &self,
        runs: Vec<PointsWanted>,
        max_bytes: u64,
    ) -> Result<validate::Checked<PointBatch>, SyncError> {
        match self
            .request(Body::Points(PointsRequest { runs, max_bytes }))
            .await?
        {
            Body::PointBatch(b) => Ok(validate::point_batch(b)),
            other => Err(self.unexpected("point_batch", &other)),
        }
    }

    /// `log`: log bytes after the given offsets (or tails).
    pub async fn log(
        &self,
        runs: Vec<LogWanted>,
        max_bytes: u64,
    ) -> Result<validate::Checked<LogBatch>, SyncError> {
        match self
            .request(Body::Log(LogRequest {
                runs,
                max_bytes,
                exact: true,
            }))
            .await?
        {
            Body::LogBatch(b) => Ok(validate::log_batch_items(b, self.sends_exact_logs())),
            other => Err(self.unexpected("log_batch", &other)),
        }
    }

    /// Whether the agent answers `host` (older agents do not: the hub never asks them).
    pub fn answers_host(&self) -> bool {
        self.peer
            .capabilities
            .iter()
            .any(|c| c == wire::HOST_CAPABILITY)
    }

    /// `host`: the agent's host now (its GPUs, their processes' runs, its load), checked.
    pub async fn host(&self) -> Result<wire::HostStatus, SyncError> {
        match self.request(Body::Host(wire::HostRequest {})).await? {
            Body::HostStatus(status) => Ok(super::host::checked(status)),
            other => Err(self.unexpected("host_status", &other)),
        }
    }

    /// `subscribe`: from now on the agent pushes notices.
    pub async fn subscribe(&self) -> Result<(), SyncError> {
        match self.request(Body::Subscribe {}).await? {
            Body::Subscribed {} => Ok(()),
            other => Err(self.unexpected("subscribed", &other)),
        }
    }

    /// Waits for the next change notice; `None` when the link is gone.
    pub async fn next_notice(&self) -> Option<Notice> {
        self.notices.lock().await.recv().await
    }

    /// Takes every notice already waiting, without blocking.
    pub async fn drain_notices(&self) -> usize {
        let mut rx = self.notices.lock().await;
        let mut n = 0;
        while rx.try_recv().is_ok() {
            n += 1;
        }
        n
    }

    fn broken(&self, detail: String) -> SyncError {
        SyncError::BrokenAgent {
            remote: self.remote.clone(),
            detail,
            stderr: self.diagnostics.stderr_tail(),
        }
    }

    fn unexpected(&self, wanted: &str, got: &Body) -> SyncError {
        self.broken(format!(
            "it answered with {} where {wanted} was due",
            got.kind()
        ))
    }
}

/// Reads frames until the link dies, routing answers to their requests.
async fn read_answers(
    mut reader: Box<dyn AsyncRead + Send + Unpin>,
    remote: String,
    pending: Pending,
    notices: mpsc::UnboundedSender<Notice>,
    bytes_received: Arc<AtomicU64>,
    diagnostics: Arc<dyn LinkDiagnostics>,
) {
    let failure = loop {
        let payload = match async_io::read_frame_payload(&mut reader, DEFAULT_MAX_FRAME_BYTES).await
        {
            Ok(p) => p,
            Err(e @ (wire::FrameError::Closed | wire::FrameError::Truncated { .. })) => {
                break dead_link_error(&remote, &*diagnostics, e.to_string()).await
            }
            Err(e) => break SyncError::from_frame(&remote, e, diagnostics.stderr_tail()),
        };
        bytes_received.fetch_add(payload.len() as u64 + 4, Ordering::Relaxed);
        let frame = match wire::decode_payload(&payload) {
            Ok(f) => f,
            Err(e) => break SyncError::from_frame(&remote, e, diagnostics.stderr_tail()),
        };
        match (frame.id, frame.body) {
            (0, Body::Notice(n)) => {
                let _ = notices.send(n);
            }
            (0, Body::Error(e)) => {
                break SyncError::Refused {
                    remote: remote.clone(),
                    code: e.code,
                    message: e.message,
                }
            }
            (id, body) => {
                let waiter = pending.lock().ok().and_then(|mut p| p.remove(&id));
                let Some(waiter) = waiter else {
                    break SyncError::BrokenAgent {
                        remote: remote.clone(),
                        detail: format!("it answered request {id}, which was never sent"),
                        stderr: diagnostics.stderr_tail(),
                    };
                };
                let answer = match body {
                    Body::Error(e) => Err(refusal(&remote, e.code, e.message)),
                    other => Ok(other),
                };
                let _ = waiter.send(answer);
            }
        }
    };
    // Fail every request still waiting with the reason the link died.
    let waiters: Vec<_> = pending
        .lock()
        .map(|mut p| p.drain().map(|(_, w)| w).collect())
        .unwrap_or_default();
    let message = failure.to_string();
    for w in waiters {
        let err = match &failure {
            SyncError::BrokenAgent { detail, stderr, .. } => SyncError::BrokenAgent {
                remote: remote.clone(),
                detail: detail.clone(),
                stderr: stderr.clone(),
            },
            SyncError::Refused { code, message, .. } => refusal(&remote, *code, message.clone()),
            _ => SyncError::ConnectionLost {
                remote: remote.clone(),
                cause: message.clone(),
            },
        };
        let _ = w.send(Err(err));
    }
}

/// The agent's software and protocol versions, read from its refusal of our `hello` (`no common
/// protocol version: this is runicorn-agent/0.3.0 (protocol runicorn-sync, versions [1]), …`, the
/// form docs/protocol.md fixes); `None` for any other refusal.
pub fn refused_versions(message: &str) -> Option<(String, Vec<u32>)> {
    let rest = message
        .strip_prefix("no common protocol version: this is ")?
        .trim_start();
    let (software, rest) = rest.split_once(" (protocol ")?;
    let list = rest.split_once("versions [")?.1.split_once(']')?.0;
    let versions = list
        .split(',')
        .map(|v| v.trim().parse::<u32>().ok())
        .collect::<Option<Vec<u32>>>()?;
    Some((software.to_owned(), versions))
}

/// What to do when the agent on `remote` speaks `agent_versions` and this hub does not: which
/// side to upgrade. The supervisor replaces it with the exact command when it knows the target.
pub fn upgrade_advice(remote: &str, agent_versions: &[u32]) -> String {
    if agent_is_older(agent_versions) {
        format!(
            "upgrade the agent: `runicorn-hub connect {remote} --install-agent` installs this hub's"
        )
    } else {
        format!(
            "upgrade runicorn-hub on this machine to the agent's release (runicorn-hub/{} is older)",
            env!("CARGO_PKG_VERSION")
        )
    }
}

/// True when every protocol version the agent speaks is older than this hub's.
pub fn agent_is_older(agent_versions: &[u32]) -> bool {
    !agent_versions.is_empty() && agent_versions.iter().all(|&v| v < PROTOCOL_VERSION)
}

fn refusal(remote: &str, code: ErrorCode, message: String) -> SyncError {
    SyncError::Refused {
        remote: remote.to_owned(),
        code,
        message,
    }
}

/// The error for a link that closed: a missing agent, an agent that died, or a dropped link.
async fn dead_link_error(
    remote: &str,
    diagnostics: &dyn LinkDiagnostics,
    cause: String,
) -> SyncError {
    let status = diagnostics.exit_status(Duration::from_secs(2)).await;
    let stderr = diagnostics.stderr_tail();
    if status == Some(127) {
        return SyncError::AgentMissing {
            remote: remote.to_owned(),
            message: format!(
                "runicorn-agent was not found on {remote} (looked on PATH and in ~/.runicorn/bin). Install it with `runicorn-hub connect {remote} --install-agent`, or copy the portable agent to ~/.runicorn/bin/runicorn-agent there, or pass --agent PATH{}",
                if stderr.trim().is_empty() { String::new() } else { format!(". It said: {}", stderr.trim()) }
            ),
        };
    }
    if status.is_some() || !stderr.trim().is_empty() {
        return SyncError::AgentExited {
            remote: remote.to_owned(),
            status,
            stderr,
        };
    }
    SyncError::ConnectionLost {
        remote: remote.to_owned(),
        cause,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_agents_refusal_names_its_versions() {
        let message = "no common protocol version: this is runicorn-agent/0.3.0 (protocol runicorn-sync, versions [0, 2]), the hub is runicorn-hub/0.4.0 (protocol runicorn-sync, versions [1]); upgrade runicorn-hub";
        assert_eq!(
            refused_versions(message),
            Some(("runicorn-agent/0.3.0".to_owned(), vec![0, 2]))
        );
        assert_eq!(refused_versions("the peer speaks another protocol"), None);
        assert_eq!(
            refused_versions("no common protocol version: this is x (protocol p, versions [a])"),
            None
        );
    }

    #[test]
    fn the_advice_names_the_side_to_upgrade() {
        let older = upgrade_advice("gpu", &[PROTOCOL_VERSION - 1]);
        assert!(older.contains("--install-agent"), "{older}");
        let newer = upgrade_advice("gpu", &[PROTOCOL_VERSION + 1]);
        assert!(newer.contains("upgrade runicorn-hub"), "{newer}");
        assert!(!agent_is_older(&[]));
        assert!(!agent_is_older(&[
            PROTOCOL_VERSION - 1,
            PROTOCOL_VERSION + 1
        ]));
    }
}
