//! Closing the agent sessions kept for chunk lists once idle: each remote's session (opened on
//! demand by `content`) is dropped — its channel closed, the remote agent exiting — after
//! [`chunk_agent_idle`] without a request, and reopened by the next chunk list.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use runicorn_store::RemoteId;

use super::Inner;

/// How long a kept chunk-list session may sit unused before it is closed.
pub const CHUNK_AGENT_IDLE: Duration = Duration::from_secs(60);

/// Overrides [`CHUNK_AGENT_IDLE`] (whole seconds, at least 1): tests use a short one.
pub const CHUNK_AGENT_IDLE_ENV: &str = "RUNICORN_CHUNK_AGENT_IDLE_SECS";

/// The idle time in effect: [`CHUNK_AGENT_IDLE_ENV`] when it is a positive number of seconds.
pub fn chunk_agent_idle() -> Duration {
    std::env::var(CHUNK_AGENT_IDLE_ENV)
        .ok()
        .and_then(|v| v.trim().parse::<u64>().ok())
        .filter(|s| *s > 0)
        .map_or(CHUNK_AGENT_IDLE, Duration::from_secs)
}

/// When a session was last used, as milliseconds since it was opened.
pub(super) struct LastUse {
    opened: Instant,
    millis: AtomicU64,
}

impl LastUse {
    pub(super) fn new() -> LastUse {
        LastUse {
            opened: Instant::now(),
            millis: AtomicU64::new(0),
        }
    }

    /// Marks the session used now.
    pub(super) fn touch(&self) {
        let ms = u64::try_from(self.opened.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.millis.fetch_max(ms, Ordering::Relaxed);
    }

    /// How long since it was last used.
    pub(super) fn idle_for(&self) -> Duration {
        self.opened
            .elapsed()
            .saturating_sub(Duration::from_millis(self.millis.load(Ordering::Relaxed)))
    }
}

/// Watches the session `agent` of `remote` and removes it from the kept sessions once idle for
/// `idle` (the last reference dropped closes it). Ends when the session is gone or replaced, or
/// the fetcher itself is dropped.
pub(super) fn close_when_idle(
    inner: Weak<Inner>,
    remote: RemoteId,
    agent: Weak<super::content::ChunkAgent>,
    idle: Duration,
) {
    tokio::spawn(async move {
        let mut wait = idle;
        loop {
            tokio::time::sleep(wait).await;
            let (Some(inner), Some(kept)) = (inner.upgrade(), agent.upgrade()) else {
                return;
            };
            let idle_for = kept.last_use().idle_for();
            if idle_for < idle {
                wait = idle - idle_for;
                continue;
            }
            let mut agents = inner.agents.lock().await;
            // Only this session: a newer one for the remote has its own watcher.
            if agents.get(&remote).is_some_and(|a| Arc::ptr_eq(a, &kept)) {
                agents.remove(&remote);
                tracing::info!(
                    remote = remote.0,
                    idle_secs = idle.as_secs(),
                    "closed the idle agent session kept for chunk lists"
                );
            }
            return;
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn use_resets_the_idle_time() {
        let used = LastUse::new();
        std::thread::sleep(Duration::from_millis(30));
        assert!(used.idle_for() >= Duration::from_millis(30));
        used.touch();
        assert!(used.idle_for() < Duration::from_millis(30));
    }

    #[test]
    fn the_idle_time_defaults_to_a_minute() {
        if std::env::var_os(CHUNK_AGENT_IDLE_ENV).is_none() {
            assert_eq!(chunk_agent_idle(), CHUNK_AGENT_IDLE);
        }
    }
}
