//! Keeps one remote in sync: opens the link, handshakes, runs the first round, then follows
//! live; after a dropped link it reconnects with exponential backoff and resumes from the
//! stored cursor. Failures the user must fix (a host key, a missing agent) end it at once.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use runicorn_protocol::wire::Hello;
use runicorn_store::RemoteId;

use crate::agent_install::open_client;
/// How to open a remote's link: part of each [`RemoteJob`].
pub use crate::open_link::OpenOptions;
use crate::remote_address::RemoteAddress;
use crate::store_thread::StoreHandle;
use crate::sync::{follow, record_sync, sync_round, RoundObserver, RoundStats, SyncError};

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
        let _ = store
            .call(move |s| {
                let _ = s.set_remote_connected(id, false);
                if let Some(e) = error_text {
                    let _ = s.record_sync(id, runicorn_cli::now(), Some(&e));
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
    store
        .call(move |s| {
            s.set_agent_info(
                id,
                hello.host.as_deref(),
                hello.root.as_deref(),
                &hello.software,
            )?;
            s.set_remote_connected(id, true)
        })
        .await
        .map_err(|e| SyncError::Store(e.to_string()))?
        .map_err(|e| SyncError::Store(e.to_string()))?;
    let started = Instant::now();
    let stats = sync_round(&client, store, id, events).await?;
    record_sync(store, id).await?;
    events.round_done(&job.name, &stats, started.elapsed(), true);
    if job.mode == Mode::Once {
        return Ok(());
    }
    follow(
        &client,
        store,
        id,
        job.safety_interval,
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
