//! Offline means offline: after each sync round that brought something, the files a run page
//! shows (small media and the System tab's `system.jsonl`, by default) are fetched into the cache in the background, so a server that
//! disappears leaves its runs' pages complete. Big files stay on demand.
//!
//! [`PrefetchPolicy`] says which files (mode, a size threshold, a per-run budget);
//! [`Prefetcher`] queues remotes as their rounds end and works through each remote's candidates
//! ([`runicorn_store::Store::prefetch_candidates`]) one file at a time, newest run first, so the
//! dashboard's own requests and the sync always find a transfer slot. A remote that went offline
//! ends its pass; the next round queues it again.

use std::collections::{HashSet, VecDeque};
use std::sync::{Arc, Mutex};

use runicorn_store::{RemoteId, RunKey};
use tokio::sync::{watch, Notify};

use crate::file_fetch::RemoteFiles;
use crate::store_thread::StoreHandle;

/// Which files a prefetch brings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum PrefetchMode {
    /// Nothing: every file is fetched when it is asked for.
    None,
    /// Media a run page shows (images, audio, video) and the System tab's `system.jsonl`, each
    /// under the size threshold, within the per-run budget.
    #[default]
    Media,
    /// Every file of every run, whatever its size.
    All,
}

/// Default largest file a `media` prefetch brings.
pub const DEFAULT_MAX_FILE_BYTES: u64 = 10 * 1024 * 1024;
/// Default most bytes a `media` prefetch keeps per run (what is cached already counts).
pub const DEFAULT_RUN_BUDGET_BYTES: u64 = 100 * 1024 * 1024;

/// Which files to bring before anyone asks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PrefetchPolicy {
    pub mode: PrefetchMode,
    pub max_file_bytes: u64,
    pub run_budget_bytes: u64,
}

impl Default for PrefetchPolicy {
    fn default() -> Self {
        PrefetchPolicy {
            mode: PrefetchMode::Media,
            max_file_bytes: DEFAULT_MAX_FILE_BYTES,
            run_budget_bytes: DEFAULT_RUN_BUDGET_BYTES,
        }
    }
}

impl PrefetchPolicy {
    /// True when this policy brings `path` of `size` bytes.
    pub fn wants(&self, path: &str, size: u64) -> bool {
        match self.mode {
            PrefetchMode::None => false,
            PrefetchMode::All => true,
            PrefetchMode::Media => {
                size <= self.max_file_bytes && (is_media(path) || path == SYSTEM_TELEMETRY)
            }
        }
    }

    /// The per-run budget, if this policy has one.
    pub fn run_budget(&self) -> Option<u64> {
        (self.mode == PrefetchMode::Media).then_some(self.run_budget_bytes)
    }
}

/// The run file of the agent's telemetry samples, which the run page's System tab draws: a
/// running run's copy grows, and each sync that lists a new size brings it again.
pub const SYSTEM_TELEMETRY: &str = "system.jsonl";

/// Images, audio and video by extension: what a run page shows inline.
pub fn is_media(path: &str) -> bool {
    let file = path.rsplit('/').next().unwrap_or(path);
    let Some((_, ext)) = file.rsplit_once('.') else {
        return false;
    };
    matches!(
        ext.to_ascii_lowercase().as_str(),
        "png"
            | "jpg"
            | "jpeg"
            | "gif"
            | "webp"
            | "bmp"
            | "svg"
            | "ico"
            | "wav"
            | "mp3"
            | "ogg"
            | "flac"
            | "mp4"
            | "webm"
    )
}

/// What a pass over one remote did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PassStats {
    pub fetched: u64,
    pub bytes: u64,
    pub failed: u64,
    /// The remote went offline during the pass, which stopped there.
    pub offline: bool,
}

/// Queues remotes after their rounds and prefetches their files on one background task.
#[derive(Clone)]
pub struct Prefetcher {
    inner: Arc<Inner>,
}

struct Inner {
    store: StoreHandle,
    files: RemoteFiles,
    policy: PrefetchPolicy,
    /// Remotes waiting for a pass, in order, each once.
    queue: Mutex<VecDeque<RemoteId>>,
    wake: Notify,
    /// Remotes queued or in a pass; `idle` turns true when it empties.
    busy: Mutex<HashSet<RemoteId>>,
    idle: watch::Sender<bool>,
}

impl Prefetcher {
    /// Starts the background task (on the current tokio runtime). With mode `none` nothing is
    /// ever queued.
    pub fn start(store: StoreHandle, files: RemoteFiles, policy: PrefetchPolicy) -> Prefetcher {
        let (idle, _) = watch::channel(true);
        let inner = Arc::new(Inner {
            store,
            files,
            policy,
            queue: Mutex::new(VecDeque::new()),
            wake: Notify::new(),
            busy: Mutex::new(HashSet::new()),
            idle,
        });
        let worker = Arc::clone(&inner);
        tokio::spawn(async move { worker.work().await });
        Prefetcher { inner }
    }

    /// The policy this prefetcher follows.
    pub fn policy(&self) -> PrefetchPolicy {
        self.inner.policy
    }

    /// A round of `remote` ended: queue a pass over it (once, however often it is called
    /// before the pass starts).
    pub fn remote_synced(&self, remote: RemoteId) {
        if self.inner.policy.mode == PrefetchMode::None {
            return;
        }
        let Ok(mut busy) = self.inner.busy.lock() else {
            return;
        };
        let Ok(mut queue) = self.inner.queue.lock() else {
            return;
        };
        if !queue.contains(&remote) {
            queue.push_back(remote);
        }
        busy.insert(remote);
        self.inner.idle.send_replace(false);
        self.inner.wake.notify_one();
    }

    /// Waits until no pass is queued or running (for `--once`: leave with the cache filled).
    pub async fn wait_idle(&self) {
        let mut idle = self.inner.idle.subscribe();
        let _ = idle.wait_for(|i| *i).await;
    }
}

impl Inner {
    async fn work(self: Arc<Self>) {
        loop {
            let next = self.queue.lock().ok().and_then(|mut q| q.pop_front());
            let Some(remote) = next else {
                self.wake.notified().await;
                continue;
            };
            let stats = self.pass(remote).await;
            if stats.fetched > 0 || stats.failed > 0 {
                tracing::info!(
                    remote = remote.0,
                    fetched = stats.fetched,
                    bytes = stats.bytes,
                    failed = stats.failed,
                    offline = stats.offline,
                    "prefetch pass done"
                );
            }
            if let (Ok(mut busy), Ok(queue)) = (self.busy.lock(), self.queue.lock()) {
                if !queue.contains(&remote) {
                    busy.remove(&remote);
                }
                if busy.is_empty() {
                    self.idle.send_replace(true);
                }
            }
        }
    }

    /// Fetches `remote`'s candidates one by one; stops when the remote is offline.
    async fn pass(&self, remote: RemoteId) -> PassStats {
        let policy = self.policy;
        let listed = self
            .store
            .call(move |s| {
                s.prefetch_candidates(remote, &|p, n| policy.wants(p, n), policy.run_budget())
            })
            .await;
        let candidates = match listed {
            Ok(Ok(c)) => c,
            Ok(Err(e)) => {
                tracing::warn!(remote = remote.0, "prefetch: cannot list files: {e}");
                return PassStats::default();
            }
            Err(_) => return PassStats::default(),
        };
        let mut stats = PassStats::default();
        for candidate in candidates {
            let key: RunKey = candidate.run;
            let run = match self.store.call(move |s| s.run_by_key(key)).await {
                Ok(Ok(Some(run))) => run,
                _ => continue,
            };
            match self
                .files
                .ensure_cached(run, candidate.path.clone(), None)
                .await
            {
                Ok(_) => {
                    stats.fetched += 1;
                    stats.bytes += candidate.size;
                }
                Err(e) if e.is_offline() => {
                    stats.offline = true;
                    break;
                }
                Err(e) => {
                    stats.failed += 1;
                    tracing::warn!(
                        run = key.0,
                        path = %candidate.path,
                        "prefetch: {e}"
                    );
                }
            }
        }
        stats
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn media_policy_takes_small_media_only() {
        let policy = PrefetchPolicy::default();
        assert!(policy.wants("media/a.PNG", 1000));
        assert!(policy.wants("clip.mp4", DEFAULT_MAX_FILE_BYTES));
        assert!(!policy.wants("clip.mp4", DEFAULT_MAX_FILE_BYTES + 1));
        assert!(!policy.wants("ckpt/model.pt", 10));
        assert!(!policy.wants("png", 10));
        assert_eq!(policy.run_budget(), Some(DEFAULT_RUN_BUDGET_BYTES));
        assert!(
            policy.wants("system.jsonl", 1000),
            "the System tab works offline"
        );
        assert!(!policy.wants("system.jsonl", DEFAULT_MAX_FILE_BYTES + 1));
        assert!(
            !policy.wants("sub/system.jsonl", 10),
            "the run's own file only"
        );
        assert!(!policy.wants("events.jsonl", 10));
        let all = PrefetchPolicy {
            mode: PrefetchMode::All,
            ..policy
        };
        assert!(all.wants("ckpt/model.pt", u64::MAX));
        assert_eq!(all.run_budget(), None);
        let none = PrefetchPolicy {
            mode: PrefetchMode::None,
            ..policy
        };
        assert!(!none.wants("a.png", 1));
    }
}
