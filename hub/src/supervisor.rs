//! Keeps one remote in sync: opens the link, handshakes, runs the first round, then follows
//! live; after a dropped link it reconnects with exponential backoff and resumes from the
//! stored cursor. Failures the user must fix (a host key, a missing agent) end it at once.
//!
//! Only the holder of a remote's follow lease (see `followers.rs` and the store's `remotes.rs`)
//! writes whether it is connected; a one-off sync (no lease) leaves that alone, and records a
//! failure only when no live process follows the remote (whose own state it would misreport).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::Notify;

use runicorn_protocol::wire::Hello;
use runicorn_store::RemoteId;

use crate::agent_install::open_client;
/// How to open a remote's link: part of each [`RemoteJob`].
pub use crate::open_link::OpenOptions;
use crate::remote_address::RemoteAddress;
use crate::store_thread::StoreHandle;
use crate::sync::{
    follow, record_sync, sync_round, HostPoller, RoundObserver, RoundStats, SyncError,
    ONE_OFF_HOST_WAIT,
};

/// Whether to stop after the first round or keep following.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Once,
    Follow,
}

/// Attempts a `Once` sync makes when the link drops mid-round.
pub const ONCE_ATTEMPTS: u32 = 3;
/// Longest wait between reconnection attempts.
pub const MAX_BACKOFF: Duration = Duration::from_secs(30);

/// What the supervisor tells whoever shows progress.
pub trait SessionEvents: RoundObserver {
    fn connected(&self, remote: &str, agent: &Hello);
    fn round_done(&self, remote: &str, stats: &RoundStats, elapsed: Duration, first: bool);
    fn reconnecting(&self, remote: &str, error: &SyncError, delay: Duration);
    /// A follower started following `remote` (it holds the lease now).
    fn following(&self, _remote: &str, _id: RemoteId) {}
}

/// One remote to keep in sync.
pub struct RemoteJob {
    pub name: String,
    pub id: RemoteId,
    pub address: RemoteAddress,
    pub open: OpenOptions,
    pub mode: Mode,
    /// Seconds between rounds when no notice came (a safety net under the notices).
    pub safety_interval: Duration,
    /// The follower holding the remote's lease (`Follow` jobs of `followers.rs`): only then is
    /// its connection state written. `None`: a one-off sync.
    pub lease: Option<String>,
    /// Notified for a "sync now": a round at once, or a reconnection without waiting.
    pub wake: Arc<Notify>,
}

impl RemoteJob {
    /// A job with the default link options, a 30 s safety interval and no lease.
    pub fn new(name: &str, id: RemoteId, address: RemoteAddress, mode: Mode) -> RemoteJob {
        RemoteJob {
            name: name.to_owned(),
            id,
            address,
            open: OpenOptions::default(),
            mode,
            safety_interval: Duration::from_secs(30),
            lease: None,
            wake: Arc::new(Notify::new()),
        }
    }
}

/// Runs `job` until it is done (`Once`), `stop` resolves, or an error the user must fix.
pub async fn run_remote(
    job: &RemoteJob,
    store: &StoreHandle,
    events: &dyn SessionEvents,
    stop: impl std::future::Future<Output = ()>,
) -> Result<(), SyncError> {
    tokio::pin!(stop);
    let mut delay = Duration::from_secs(1);
    let mut attempts = 0u32;
    let connected_once = AtomicBool::new(false);
    loop {
        attempts += 1;
        let attempt = tokio::select! {
            r = session(job, store, events, &connected_once) => r,
            _ = &mut stop => Ok(()),
        };
        let id = job.id;
        let error_text = attempt.as_ref().err().map(ToString::to_string);
        let lease = job.lease.clone();
        let _ = store
            .call(move |s| {
                let now = runicorn_cli::now();
                let ours = match &lease {
                    Some(me) => {
                        let _ = s.set_follower_connected(id, me, false);
                        true
                    }
                    // A one-off sync does not overwrite what a live follower reports.
                    None => !matches!(
                        s.remote_by_id(id),
                        Ok(Some(r)) if r.live_follower(now).is_some()
                    ),
                };
                if let Some(e) = error_text.filter(|_| ours) {
                    let _ = s.record_sync(id, now, Some(&e));
                }
            })
            .await;
        let err = match attempt {
            Ok(()) => return Ok(()),
            Err(e) => e,
        };
        // Follow mode retries forever once the remote has answered; a remote that never did
        // (a wrong port, a host that is down) gets the same few attempts as `--once`, so a
        // mistake is reported instead of retried in silence.
        let following = job.mode == Mode::Follow && connected_once.load(Ordering::Relaxed);
        let retry = err.is_transient() && (following || attempts < ONCE_ATTEMPTS);
        if !retry {
            return Err(err);
        }
        events.reconnecting(&job.name, &err, delay);
        tokio::select! {
            _ = tokio::time::sleep(delay) => {}
            // "Retry now": reconnect at once, from a short delay again.
            _ = job.wake.notified() => delay = Duration::from_secs(1),
            _ = &mut stop => return Ok(()),
        }
        delay = (delay * 2).min(MAX_BACKOFF);
    }
}

/// One connection's life: open, handshake, first round, then follow (or return).
async fn session(
    job: &RemoteJob,
    store: &StoreHandle,
    events: &dyn SessionEvents,
    connected_once: &AtomicBool,
) -> Result<(), SyncError> {
    let (client, _ssh) = open_client(&job.address, &job.name, &job.open).await?;
    let client = Arc::new(client);
    connected_once.store(true, Ordering::Relaxed);
    events.connected(&job.name, client.peer());
    let id = job.id;
    let hello = client.peer().clone();
    let lease = job.lease.clone();
    store
        .call(move |s| {
            s.set_agent_info(
                id,
                hello.host.as_deref(),
                hello.root.as_deref(),
                &crate::sync::agent_software_label(&hello),
            )?;
            match &lease {
                Some(me) => s.set_follower_connected(id, me, true),
                None => Ok(()),
            }
        })
        .await
        .map_err(|e| SyncError::Store(e.to_string()))?
        .map_err(|e| SyncError::Store(e.to_string()))?;
    let started = Instant::now();
    // Host samples (the fleet view) beside the rounds, never holding them up.
    let host = HostPoller::start(&client, store, id, job.mode != Mode::Once);
    let stats = sync_round(&client, store, id, events).await?;
    record_sync(store, id).await?;
    events.round_done(&job.name, &stats, started.elapsed(), true);
    if job.mode == Mode::Once {
        if let Some(host) = host {
            host.finish(ONE_OFF_HOST_WAIT).await;
        }
        return Ok(());
    }
    follow(
        &client,
        store,
        id,
        job.safety_interval,
        &job.wake,
        events,
        |stats, elapsed| {
            if stats.runs > 0 || stats.points > 0 || stats.log_bytes > 0 {
                events.round_done(&job.name, stats, elapsed, false);
            }
        },
        std::future::pending(),
    )
    .await
}
