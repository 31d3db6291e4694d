//! What one session's threads share: the warm feed it reads (`warm`: the index, scans, skipped
//! runs), its frame writer, the state of its change notices, what it was last told of skipped
//! runs, and the last chunk list sent in pages.

use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use runicorn_protocol::wire::{Body, Cursor, Envelope, Notice, SkippedEntry};

use super::output::{FrameWriter, SendError};
use super::warm::Warm;
use crate::run_index::RunIndex;

/// Notices closer together than this are held back, so a burst of writes makes one notice.
pub const NOTICE_SPACING: Duration = Duration::from_millis(50);

struct Notices {
    subscribed: bool,
    /// The highest sequence value the hub was told of (by a notice or a `changes` cursor).
    told: u64,
    last_sent: Option<Instant>,
}

/// State of one session, over the warm feed it reads.
pub struct Shared {
    /// The storage root (absolute).
    pub root: PathBuf,
    pub epoch: String,
    pub out: FrameWriter,
    warm: Arc<Warm>,
    notices: Mutex<Notices>,
    /// The skipped runs this session was last sent.
    skipped_sent: Mutex<Option<Vec<SkippedEntry>>>,
    /// The last chunk list answered in pages (`chunks`).
    pub paged_lists: super::chunks::PagedLists,
}

impl Shared {
    /// A session with a warm feed of its own (for tests of one answer).
    #[cfg(test)]
    pub fn new(
        root: PathBuf,
        epoch: String,
        index: RunIndex,
        out: FrameWriter,
        poll: Duration,
    ) -> Shared {
        let warm = Arc::new(Warm::new(root, epoch, index, poll, false));
        Shared::over(warm, out)
    }

    /// A session reading `warm` (shared with the scanner and, in the resident agent, with
    /// other sessions).
    pub fn over(warm: Arc<Warm>, out: FrameWriter) -> Shared {
        Shared {
            root: warm.root.clone(),
            epoch: warm.epoch.clone(),
            out,
            warm,
            notices: Mutex::new(Notices {
                subscribed: false,
                told: 0,
                last_sent: None,
            }),
            skipped_sent: Mutex::new(None),
            paged_lists: super::chunks::PagedLists::default(),
        }
    }

    /// The skipped runs to put in a `changes` answer: the whole set (possibly empty) in the
    /// first batch of a reset listing and whenever it differs from what was last sent; else
    /// `None` (nothing to say).
    pub fn skipped_runs_to_send(&self, reset: bool) -> Option<Vec<SkippedEntry>> {
        let current = self.warm.skipped_runs();
        let mut sent = self
            .skipped_sent
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if reset || sent.as_ref() != Some(&current) {
            *sent = Some(current.clone());
            return Some(current);
        }
        None
    }

    /// The index mutex (for scans, which lock it only to write).
    #[cfg(test)]
    pub fn index_mutex(&self) -> &Mutex<RunIndex> {
        self.warm.index_mutex()
    }

    /// The index, locked.
    pub fn index(&self) -> MutexGuard<'_, RunIndex> {
        self.warm.index()
    }

    /// A full scan is in the index (see [`Warm::mark_ready`]).
    #[cfg(test)]
    pub fn mark_ready(&self) {
        self.warm.mark_ready();
    }

    /// Waits until the first full scan is in the index, so a listing is never partial.
    pub fn wait_ready(&self) {
        self.warm.wait_ready();
    }

    /// See [`Warm::rescan_if_stale`].
    pub fn rescan_if_stale(&self) {
        self.warm.rescan_if_stale();
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
        self.warm.subscribe();
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
