//! What the agent's threads share during one session: the index (behind a mutex, so one
//! thread at a time uses its connection), the frame writer, the full scans done and asked
//! for, the state of change notices, and the last chunk list sent in pages.

use std::path::PathBuf;
use std::sync::{Condvar, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use runicorn_protocol::wire::{Body, Cursor, Envelope, Notice, SkippedEntry};

use super::output::{FrameWriter, SendError};
use crate::run_index::RunIndex;

/// Notices closer together than this are held back, so a burst of writes makes one notice.
pub const NOTICE_SPACING: Duration = Duration::from_millis(50);

struct Notices {
    subscribed: bool,
    /// The highest sequence value the hub was told of (by a notice or a `changes` cursor).
    told: u64,
    last_sent: Option<Instant>,
}

/// Full scans: how many finished, when the last one did, and whether the worker waits for one.
/// Until the hub subscribes the scanner scans only when asked (a hub that only lists and reads
/// costs one scan); from then on it keeps the feed current on its own.
struct Scans {
    done: u64,
    last: Option<Instant>,
    wanted: bool,
    subscribed: bool,
}

/// Most skipped runs listed in one answer; more are summed up in one last entry.
pub const MAX_SKIPPED_RUNS_LISTED: usize = 100;

/// The runs the feed leaves out (their directory cannot be named on the wire), as the last full
/// scan found them, and what the hub was last told.
#[derive(Default)]
struct SkippedRuns {
    current: Vec<SkippedEntry>,
    sent: Option<Vec<SkippedEntry>>,
}

/// State shared by the worker, the scanner and the notice sender.
pub struct Shared {
    /// The storage root (absolute).
    pub root: PathBuf,
    pub epoch: String,
    pub out: FrameWriter,
    /// `--poll`: how old the last full scan may be before a listing asks for another.
    pub poll: Duration,
    index: Mutex<RunIndex>,
    scans: Mutex<Scans>,
    scans_changed: Condvar,
    notices: Mutex<Notices>,
    skipped_runs: Mutex<SkippedRuns>,
    /// The last chunk list answered in pages (`chunks`).
    pub paged_lists: super::chunks::PagedLists,
}

impl Shared {
    pub fn new(
        root: PathBuf,
        epoch: String,
        index: RunIndex,
        out: FrameWriter,
        poll: Duration,
    ) -> Shared {
        Shared {
            root,
            epoch,
            out,
            poll,
            index: Mutex::new(index),
            scans: Mutex::new(Scans {
                done: 0,
                last: None,
                wanted: false,
                subscribed: false,
            }),
            scans_changed: Condvar::new(),
            notices: Mutex::new(Notices {
                subscribed: false,
                told: 0,
                last_sent: None,
            }),
            skipped_runs: Mutex::new(SkippedRuns::default()),
            paged_lists: super::chunks::PagedLists::default(),
        }
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
        self.skipped_runs
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .current = runs;
    }

    /// The skipped runs to put in a `changes` answer: the whole set (possibly empty) in the
    /// first batch of a reset listing and whenever it differs from what was last sent; else
    /// `None` (nothing to say).
    pub fn skipped_runs_to_send(&self, reset: bool) -> Option<Vec<SkippedEntry>> {
        let mut s = self
            .skipped_runs
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if reset || s.sent.as_ref() != Some(&s.current) {
            s.sent = Some(s.current.clone());
            return Some(s.current.clone());
        }
        None
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

    /// Waits until the first full scan is in the index, so a listing is never partial.
    pub fn wait_ready(&self) {
        let mut scans = self.scans();
        while scans.done == 0 {
            scans = self.wait_scans(scans);
        }
    }

    /// Before the hub subscribed: when the last full scan is older than `--poll`, asks the
    /// scanner for one and waits until it is in the index (after subscribing the scanner keeps
    /// the feed current by itself).
    pub fn rescan_if_stale(&self) {
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

    /// Remembers that a `changes` answer told the hub of everything up to `seq`.
    pub fn told(&self, seq: u64) {
        let mut n = self.notices.lock().unwrap_or_else(PoisonError::into_inner);
        n.told = n.told.max(seq);
    }

    /// Starts notices (after `subscribed` was sent), and the scanner's periodic scans and
    /// file watcher.
    pub fn subscribe(&self) {
        self.notices
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .subscribed = true;
        self.scans().subscribed = true;
        self.scans_changed.notify_all();
    }

    /// Sends a notice when subscribed and the counter moved past what the hub was told.
    pub fn notify_if_moved(&self, counter: u64) -> Result<(), SendError> {
        let mut n = self.notices.lock().unwrap_or_else(PoisonError::into_inner);
        if !n.subscribed || counter <= n.told {
            return Ok(());
        }
        if let Some(last) = n.last_sent {
            let since = last.elapsed();
            if since < NOTICE_SPACING {
                std::thread::sleep(NOTICE_SPACING - since);
            }
        }
        self.out.send(&Envelope {
            id: 0,
            body: Body::Notice(Notice {
                cursor: Cursor {
                    epoch: self.epoch.clone(),
                    seq: counter,
                },
            }),
        })?;
        n.told = counter;
        n.last_sent = Some(Instant::now());
        Ok(())
    }
}
