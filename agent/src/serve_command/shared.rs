//! What the agent's threads share during one session: the index (behind a mutex, so one
//! thread at a time uses its connection), the frame writer, whether the first full scan is
//! done, and the state of change notices.

use std::path::PathBuf;
use std::sync::{Condvar, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use runicorn_protocol::wire::{Body, Cursor, Envelope, Notice};

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

/// State shared by the worker, the scanner and the notice sender.
pub struct Shared {
    /// The storage root (absolute).
    pub root: PathBuf,
    pub epoch: String,
    pub out: FrameWriter,
    index: Mutex<RunIndex>,
    ready: Mutex<bool>,
    ready_changed: Condvar,
    notices: Mutex<Notices>,
}

impl Shared {
    pub fn new(root: PathBuf, epoch: String, index: RunIndex, out: FrameWriter) -> Shared {
        Shared {
            root,
            epoch,
            out,
            index: Mutex::new(index),
            ready: Mutex::new(false),
            ready_changed: Condvar::new(),
            notices: Mutex::new(Notices {
                subscribed: false,
                told: 0,
                last_sent: None,
            }),
        }
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

    /// Called by the scanner once the first full scan is in the index.
    pub fn mark_ready(&self) {
        *self.ready.lock().unwrap_or_else(PoisonError::into_inner) = true;
        self.ready_changed.notify_all();
    }

    /// Waits until the first full scan is in the index, so a listing is never partial.
    pub fn wait_ready(&self) {
        let mut ready = self.ready.lock().unwrap_or_else(PoisonError::into_inner);
        while !*ready {
            ready = self
                .ready_changed
                .wait(ready)
                .unwrap_or_else(PoisonError::into_inner);
        }
    }

    /// Remembers that a `changes` answer told the hub of everything up to `seq`.
    pub fn told(&self, seq: u64) {
        let mut n = self.notices.lock().unwrap_or_else(PoisonError::into_inner);
        n.told = n.told.max(seq);
    }

    /// Starts notices (after `subscribed` was sent).
    pub fn subscribe(&self) {
        self.notices
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .subscribed = true;
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
