//! The scanner thread: a full scan when the session starts, which the first `changes` answer
//! waits for. Until the hub subscribes, nothing else runs but the full scans a `changes`
//! request asks for (a hub that only lists and reads, `sync --once`, costs one scan). Once it
//! subscribed: a full scan every `--poll` seconds (what makes the feed correct: missed events,
//! network file systems, writers that died), and quick scans of just the runs the file watcher
//! saw written (what makes it fast); a write below `artifacts/` reads the artifacts again (full
//! scans always do), and so does the packer after each content it packed (`packer`), which
//! each full scan and artifact scan of a subscribed session nudges. After each scan that moved the change counter
//! a notice goes to a subscribed hub.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender};
use std::sync::Arc;
use std::time::{Duration, Instant};

use runicorn_protocol::run_format::LivenessContext;

use super::packer::PackNudge;
use super::warm::Warm;
use super::watcher::spawn_watcher;
use crate::run_index::feed::{Feed, ScanScope};

/// How long writes are gathered after the first one before the scan of their runs.
const GATHER: Duration = Duration::from_millis(50);

/// Why the scanner should look.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Trigger {
    /// Something was written at these paths (relative to the root).
    Paths(Vec<PathBuf>),
    /// Events were lost: look at everything.
    Rescan,
    /// The packer turned a whole pool file into chunks: read the artifacts again.
    Packed,
    /// A resident agent's `changes` waits until everything queued before this was scanned.
    Barrier,
}

/// Resident agent: how often the live runs are scanned between full scans (their status can
/// change without a file changing: a writer that died, a run that stopped stepping).
const LIVE_SCAN_EVERY: Duration = Duration::from_secs(2);

/// Resident agent: a scan that gave this many runs new states is followed by a compaction of
/// the feed's memory (`Feed::compact`).
const COMPACT_AFTER_BUMPED: usize = 500;

/// How long writes are gathered when a barrier came first (file events already on their way).
const BARRIER_GATHER: Duration = Duration::from_millis(5);

/// Starts the scanner thread.
/// `watcher` is the sender the file watcher gets: it is started once the hub subscribed, so
/// that setting it up (a walk of the whole tree) does not slow a sync down (`None`: no
/// watcher, polling only).
pub fn spawn_scanner(
    shared: Arc<Warm>,
    poll: Duration,
    triggers: Receiver<Trigger>,
    watcher: Option<Sender<Trigger>>,
    packer: Option<PackNudge>,
) -> std::io::Result<()> {
    std::thread::Builder::new()
        .name("scanner".into())
        .spawn(move || Scanner::new(shared, packer).run(poll, &triggers, watcher))
        .map(|_| ())
}

struct Scanner {
    shared: Arc<Warm>,
    feed: Feed,
    last_error: Option<String>,
    /// Told after each full scan once the hub subscribed (`None`: `--no-pack`).
    packer: Option<PackNudge>,
}

impl Scanner {
    fn new(shared: Arc<Warm>, packer: Option<PackNudge>) -> Scanner {
        let feed = Feed::new(&shared.root);
        Scanner {
            shared,
            feed,
            last_error: None,
            packer,
        }
    }

    /// Lets the packer look at the pool (after a full scan of a subscribed session).
    fn nudge_packer(&self) {
        if let Some(packer) = &self.packer {
            packer.nudge();
        }
    }

    fn run(
        mut self,
        poll: Duration,
        triggers: &Receiver<Trigger>,
        watcher: Option<Sender<Trigger>>,
    ) {
        self.scan(ScanScope::All);
        // Even a failed first scan must not leave `changes` waiting forever.
        self.shared.mark_ready();
        while self.shared.wait_scan_wanted() {
            self.scan(ScanScope::All);
            self.shared.mark_ready();
        }
        if let Some(sender) = watcher {
            let root = self.shared.root.clone();
            let ready = self
                .shared
                .resident
                .then(|| self.shared.watcher_ready_flag());
            if let Err(e) = spawn_watcher(root, sender, poll.as_secs_f64(), ready) {
                eprintln!(
                    "runicorn-agent serve: cannot start the file watcher ({e}); polling only"
                );
            }
        }
        self.nudge_packer();
        let mut next_full = Instant::now() + poll;
        let live_every = self.shared.resident.then_some(LIVE_SCAN_EVERY);
        let mut next_live = Instant::now() + LIVE_SCAN_EVERY;
        let mut watching = true;
        loop {
            let now = Instant::now();
            if now >= next_full {
                self.scan(ScanScope::All);
                self.nudge_packer();
                next_full = Instant::now() + poll;
                continue;
            }
            if let Some(every) = live_every {
                if now >= next_live {
                    let live = self.feed.live_dirs();
                    if !live.is_empty() {
                        self.scan(ScanScope::Dirs(live));
                    }
                    next_live = Instant::now() + every;
                    continue;
                }
            }
            let wake = match live_every {
                Some(_) => next_full.min(next_live),
                None => next_full,
            };
            if !watching {
                std::thread::sleep(wake - now);
                continue;
            }
            let first = match triggers.recv_timeout(wake - now) {
                Ok(t) => t,
                Err(RecvTimeoutError::Timeout) => continue,
                Err(RecvTimeoutError::Disconnected) => {
                    watching = false;
                    continue;
                }
            };
            let gather = if first == Trigger::Barrier {
                BARRIER_GATHER
            } else {
                GATHER
            };
            let mut burst = vec![first];
            let until = Instant::now() + gather;
            while let Ok(t) = triggers.recv_timeout(until.saturating_duration_since(Instant::now()))
            {
                burst.push(t);
            }
            let artifacts = touches_artifacts(&burst);
            let barriers = burst.iter().filter(|t| **t == Trigger::Barrier).count() as u64;
            let mut scope = scope_for(&self.feed, burst);
            // Until the watcher reports every write, a resident agent's `changes` at the counter
            // gets a full scan, as an in-process session's does.
            if barriers > 0 && !self.shared.watcher_ready() {
                scope = Some(ScanScope::All);
            }
            match scope {
                Some(ScanScope::All) => {
                    // A full scan reads the artifacts too.
                    self.scan(ScanScope::All);
                    self.nudge_packer();
                    next_full = Instant::now() + poll;
                }
                Some(scope) => {
                    self.scan(scope);
                    if artifacts {
                        self.scan_artifacts();
                        self.nudge_packer();
                    }
                }
                None if artifacts => {
                    self.scan_artifacts();
                    self.nudge_packer();
                }
                None => {}
            }
            self.shared.barriers_passed(barriers);
        }
    }

    /// Reads the artifacts again (the watcher saw a write under `artifacts/`).
    fn scan_artifacts(&mut self) {
        match self.feed.scan_artifacts(self.shared.index_mutex()) {
            Ok((_, counter)) => self.notify(counter),
            Err(e) => {
                let text = e.to_string();
                if self.last_error.as_deref() != Some(text.as_str()) {
                    eprintln!("runicorn-agent serve: scanning the artifacts failed: {text}; retrying at the next scan");
                    self.last_error = Some(text);
                }
            }
        }
    }

    /// Tells the subscribed sessions that the counter moved.
    fn notify(&self, counter: u64) {
        self.shared.notify_sessions(counter);
    }

    fn scan(&mut self, scope: ScanScope) {
        let full = scope == ScanScope::All;
        let ctx = LivenessContext::here_and_now();
        match self.feed.scan(self.shared.index_mutex(), scope, &ctx) {
            Ok(report) => {
                self.last_error = None;
                if let Some(skipped) = report.skipped_runs {
                    self.shared.set_skipped_runs(skipped);
                }
                if self.shared.resident {
                    // The resident agent lives long: only live runs keep their records and
                    // manifests in memory (the others are read back from the index when they
                    // change); after a scan that read many runs what it keeps is packed
                    // together, and after that or a full scan the scan's freed buffers go back
                    // to the system at once.
                    self.feed.shed_idle_runs();
                    let many = report.bumped >= COMPACT_AFTER_BUMPED;
                    if many {
                        self.feed.compact();
                    }
                    if full || many {
                        crate::heap::trim();
                    }
                    self.shared.set_live_runs(self.feed.live_dirs().len());
                }
                for p in &report.new_problems {
                    eprintln!("runicorn-agent serve: {}: {}", p.path.display(), p.reason);
                }
                self.notify(report.counter);
            }
            Err(e) => {
                let text = e.to_string();
                if self.last_error.as_deref() != Some(text.as_str()) {
                    eprintln!("runicorn-agent serve: scanning the runs failed: {text}; retrying at the next scan");
                    self.last_error = Some(text);
                }
            }
        }
    }
}

/// What to scan for a burst of triggers: the known runs written to, or everything when a path
/// may belong to a run not known yet (or events were lost). `None`: nothing of interest.
fn scope_for(feed: &Feed, burst: Vec<Trigger>) -> Option<ScanScope> {
    let mut dirs = BTreeSet::new();
    for trigger in burst {
        match trigger {
            Trigger::Rescan => return Some(ScanScope::All),
            Trigger::Packed | Trigger::Barrier => {}
            Trigger::Paths(paths) => {
                for p in paths {
                    match feed.run_holding(&p) {
                        Some(dir) => {
                            dirs.insert(dir);
                        }
                        None if could_hold_runs(&p) => return Some(ScanScope::All),
                        None => {}
                    }
                }
            }
        }
    }
    (!dirs.is_empty()).then(|| ScanScope::Dirs(dirs.into_iter().collect()))
}

/// Whether a burst wrote below `artifacts/` (a new version, a moved alias, a deleted version;
/// the watcher does not report the hidden pool, which the periodic scan covers), or lost
/// events.
fn touches_artifacts(burst: &[Trigger]) -> bool {
    burst.iter().any(|t| match t {
        Trigger::Rescan | Trigger::Packed => true,
        Trigger::Barrier => false,
        Trigger::Paths(paths) => paths.iter().any(|p| {
            p.components().next().is_some_and(|c| {
                c.as_os_str() == runicorn_protocol::run_format::artifacts::ARTIFACTS_DIR
            })
        }),
    })
}

/// Whether a path (relative to the root) lies where a new run can appear: below `runs/` (current
/// layout) or `<project>/<name>/runs/` (legacy).
fn could_hold_runs(rel: &Path) -> bool {
    let parts: Vec<_> = rel.components().collect();
    let is = |i: usize, name: &str| parts.get(i).is_some_and(|c| c.as_os_str() == name);
    (is(0, "runs") && parts.len() >= 2) || (parts.len() >= 4 && is(2, "runs"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_that_may_hold_new_runs() {
        for yes in ["runs/p/id", "runs/id/meta.json", "proj/exp/runs/id"] {
            assert!(could_hold_runs(Path::new(yes)), "{yes}");
        }
        for no in [
            "runs",
            "runicorn.db",
            "index/x",
            "proj/exp",
            "proj/exp/runs",
            "archive/a",
        ] {
            assert!(!could_hold_runs(Path::new(no)), "{no}");
        }
    }

    #[test]
    fn writes_below_artifacts_ask_for_an_artifact_scan() {
        let paths = |p: &str| vec![Trigger::Paths(vec![PathBuf::from(p)])];
        assert!(touches_artifacts(&paths("artifacts/model/m/versions.json")));
        assert!(touches_artifacts(&[Trigger::Rescan]));
        assert!(touches_artifacts(&[Trigger::Packed]));
        assert!(!touches_artifacts(&paths("runs/p/id/events.jsonl")));
        assert!(!touches_artifacts(&paths("archive/blobs/ab/x")));
    }

    #[test]
    fn bursts_become_targeted_or_full_scans() {
        let feed = Feed::new(Path::new("/nowhere"));
        assert_eq!(
            scope_for(&feed, vec![Trigger::Paths(vec!["runicorn.db".into()])]),
            None
        );
        assert_eq!(
            scope_for(
                &feed,
                vec![Trigger::Paths(vec!["runs/p/new/meta.json".into()])]
            ),
            Some(ScanScope::All)
        );
        assert_eq!(
            scope_for(&feed, vec![Trigger::Rescan]),
            Some(ScanScope::All)
        );
    }
}
