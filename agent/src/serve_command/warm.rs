//! The feed kept warm for sessions: the index (behind a mutex, so one thread at a time uses its
//! connection), the full scans done and asked for, the runs the last full scan had to leave out,
//! and the sessions to tell when the change counter moves. A `serve --stdio` process has one for
//! its one session; the resident agent (`runicorn-agent daemon`) has one for every session it
//! serves, and keeps it current before any session asks (`resident`).

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc::Sender;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError, Weak};
use std::time::{Duration, Instant};

use runicorn_protocol::wire::SkippedEntry;

use super::output::SendError;
use super::scanner::Trigger;
use super::shared::Shared;
use crate::run_index::RunIndex;

/// Most skipped runs listed in one answer; more are summed up in one last entry.
pub const MAX_SKIPPED_RUNS_LISTED: usize = 100;

/// How long a `changes` request of a resident agent waits for the file events already seen to
/// be scanned.
const BARRIER_WAIT: Duration = Duration::from_secs(2);

/// Full scans: how many finished, when the last one did, and whether the worker waits for one.
/// Until the hub subscribes the scanner scans only when asked (a hub that only lists and reads
/// costs one scan); from then on it keeps the feed current on its own. A resident agent is
/// subscribed from the start.
struct Scans {
    done: u64,
    last: Option<Instant>,
    wanted: bool,
    subscribed: bool,
    /// Barriers the scanner passed (resident agent: every file event seen before was scanned).
    barriers_passed: u64,
    barriers_sent: u64,
}

/// The warm feed shared by the scanner and every session of the process.
pub struct Warm {
    /// The storage root (absolute).
    pub root: PathBuf,
    pub epoch: String,
    /// `--poll`: how old the last full scan may be before a listing asks for another.
    pub poll: Duration,
    /// Whether this is the resident agent (many sessions, scanning from the start).
    pub resident: bool,
    index: Mutex<RunIndex>,
    scans: Mutex<Scans>,
    scans_changed: Condvar,
    skipped_runs: Mutex<Vec<SkippedEntry>>,
    sessions: Mutex<Vec<Weak<Shared>>>,
    /// The scanner's trigger channel (resident agent: `changes` sends barriers through it).
    triggers: Mutex<Option<Sender<Trigger>>>,
    /// Runs whose last derived status was live (running, stalled), after the last full scan.
    live_runs: AtomicUsize,
    /// Resident agent: the file watcher watches every folder (writes are reported).
    watcher_ready: Arc<AtomicBool>,
}

impl Warm {
    pub fn new(
        root: PathBuf,
        epoch: String,
        index: RunIndex,
        poll: Duration,
        resident: bool,
    ) -> Warm {
        Warm {
            root,
            epoch,
            poll,
            resident,
            index: Mutex::new(index),
            scans: Mutex::new(Scans {
                done: 0,
                last: None,
                wanted: false,
                subscribed: resident,
                barriers_passed: 0,
                barriers_sent: 0,
            }),
            scans_changed: Condvar::new(),
            skipped_runs: Mutex::new(Vec::new()),
            sessions: Mutex::new(Vec::new()),
            triggers: Mutex::new(None),
            live_runs: AtomicUsize::new(0),
            watcher_ready: Arc::new(AtomicBool::new(false)),
        }
    }

    /// The flag the file watcher sets once it watches everything (resident agent).
    pub fn watcher_ready_flag(&self) -> Arc<AtomicBool> {
        Arc::clone(&self.watcher_ready)
    }

    /// Whether the file watcher reports every write by now.
    pub fn watcher_ready(&self) -> bool {
        self.watcher_ready.load(Ordering::SeqCst)
    }

    /// The index mutex (for the scanner, which locks it only to write).
    pub fn index_mutex(&self) -> &Mutex<RunIndex> {
        &self.index
    }

    /// The index, locked. A thread that panicked while holding it left no open transaction
    /// (rusqlite rolls back on drop), so a poisoned lock is used as it is.
    pub fn index(&self) -> MutexGuard<'_, RunIndex> {
        self.index.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Records the skipped runs a full scan found.
    pub fn set_skipped_runs(&self, mut runs: Vec<SkippedEntry>) {
        if runs.len() > MAX_SKIPPED_RUNS_LISTED {
            let more = runs.len() - (MAX_SKIPPED_RUNS_LISTED - 1);
            runs.truncate(MAX_SKIPPED_RUNS_LISTED - 1);
            runs.push(SkippedEntry {
                name: "…".into(),
                reason: format!("{more} more entries cannot be sent"),
            });
        }
        *self
            .skipped_runs
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = runs;
    }

    /// The skipped runs as the last full scan found them.
    pub fn skipped_runs(&self) -> Vec<SkippedEntry> {
        self.skipped_runs
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Remembers how many runs were live after a full scan.
    pub fn set_live_runs(&self, n: usize) {
        self.live_runs.store(n, Ordering::Relaxed);
    }

    /// Runs live (running or stalled) at the last full scan.
    pub fn live_runs(&self) -> usize {
        self.live_runs.load(Ordering::Relaxed)
    }

    /// Gives the scanner's trigger channel, for barriers.
    pub fn set_triggers(&self, triggers: Sender<Trigger>) {
        *self.triggers.lock().unwrap_or_else(PoisonError::into_inner) = Some(triggers);
    }

    fn scans(&self) -> MutexGuard<'_, Scans> {
        self.scans.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn wait_scans<'a>(&self, guard: MutexGuard<'a, Scans>) -> MutexGuard<'a, Scans> {
        self.scans_changed
            .wait(guard)
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Called by the scanner after a full scan (the first one, and those asked for before the
    /// hub subscribed) is in the index, failed or not.
    pub fn mark_ready(&self) {
        let mut scans = self.scans();
        scans.done += 1;
        scans.last = Some(Instant::now());
        scans.wanted = false;
        self.scans_changed.notify_all();
    }

    /// Whether the first full scan is in the index.
    pub fn scanned(&self) -> bool {
        self.scans().done > 0
    }

    /// Waits until the first full scan is in the index, so a listing is never partial.
    pub fn wait_ready(&self) {
        let mut scans = self.scans();
        while scans.done == 0 {
            scans = self.wait_scans(scans);
        }
    }

    /// Before the hub subscribed: when the last full scan is older than `--poll`, asks the
    /// scanner for one and waits until it is in the index (after subscribing the scanner keeps
    /// the feed current by itself). A resident agent instead waits until the file events seen
    /// so far are scanned (a barrier through the scanner's queue), at most `BARRIER_WAIT`.
    pub fn rescan_if_stale(&self) {
        if self.resident {
            self.pass_barrier();
            return;
        }
        let mut scans = self.scans();
        if scans.subscribed || scans.last.is_some_and(|t| t.elapsed() < self.poll) {
            return;
        }
        let target = scans.done + 1;
        scans.wanted = true;
        self.scans_changed.notify_all();
        while scans.done < target {
            scans = self.wait_scans(scans);
        }
    }

    fn pass_barrier(&self) {
        let Some(triggers) = self
            .triggers
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
        else {
            return;
        };
        let target = {
            let mut scans = self.scans();
            scans.barriers_sent += 1;
            scans.barriers_sent
        };
        if triggers.send(Trigger::Barrier).is_err() {
            return;
        }
        let deadline = Instant::now() + BARRIER_WAIT;
        let mut scans = self.scans();
        while scans.barriers_passed < target {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return;
            }
            scans = self
                .scans_changed
                .wait_timeout(scans, left)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
    }

    /// Called by the scanner once every trigger queued before `count` barriers was scanned.
    pub fn barriers_passed(&self, count: u64) {
        if count == 0 {
            return;
        }
        let mut scans = self.scans();
        scans.barriers_passed += count;
        self.scans_changed.notify_all();
    }

    /// For the scanner before the hub subscribed: waits until a full scan is asked for
    /// (`true`) or the hub subscribed (`false`).
    pub fn wait_scan_wanted(&self) -> bool {
        let mut scans = self.scans();
        loop {
            if scans.subscribed {
                return false;
            }
            if scans.wanted {
                return true;
            }
            scans = self.wait_scans(scans);
        }
    }

    /// A session subscribed: the scanner's periodic scans and file watcher start.
    pub fn subscribe(&self) {
        self.scans().subscribed = true;
        self.scans_changed.notify_all();
    }

    /// Adds a session to those told when the counter moves.
    pub fn attach(&self, session: &Arc<Shared>) {
        let mut sessions = self.sessions.lock().unwrap_or_else(PoisonError::into_inner);
        sessions.retain(|s| s.strong_count() > 0);
        sessions.push(Arc::downgrade(session));
    }

    /// Removes a session.
    pub fn detach(&self, session: &Arc<Shared>) {
        self.sessions
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .retain(|s| s.upgrade().is_some_and(|s| !Arc::ptr_eq(&s, session)));
    }

    /// Tells every subscribed session that the counter moved. A `serve --stdio` process ends
    /// when its hub is gone (exit 0; 2 when writing failed otherwise); the resident agent
    /// drops that session only.
    pub fn notify_sessions(&self, counter: u64) {
        let sessions: Vec<Arc<Shared>> = self
            .sessions
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .filter_map(Weak::upgrade)
            .collect();
        for session in sessions {
            match session.notify_if_moved(counter) {
                Ok(()) => {}
                Err(e) if self.resident => {
                    if !matches!(e, SendError::Closed) {
                        eprintln!("runicorn-agent daemon: {e}; dropping that session");
                    }
                    self.detach(&session);
                }
                Err(SendError::Closed) => std::process::exit(0),
                Err(e) => {
                    eprintln!("runicorn-agent serve: {e}; ending the session");
                    std::process::exit(2);
                }
            }
        }
    }
}
