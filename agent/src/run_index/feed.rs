//! The change feed that `runicorn-agent serve` hands the hub, kept in the index.
//!
//! Every run directory has a *sequence value*: the value of a global counter (`index_info.seq`)
//! taken when its state last changed. A run's state is what the hub mirrors: its records'
//! fingerprints, the complete-line size and totals of `events.jsonl`, the size of `logs.txt`, its
//! file manifest, and its *derived* status (a writer that died makes a run `crashed` without any
//! file changing). A scan computes each run's state and a fingerprint of it; a run whose
//! fingerprint differs from the one stored gets the next sequence value. A run directory that
//! disappears keeps a tombstone row with a new sequence value. A listing is then "rows with a
//! sequence value above the hub's cursor".
//!
//! Several agents may serve one root at once: sequence values are taken in write-locked
//! transactions, a run is bumped only when its stored fingerprint differs from the new one, and
//! a process that sees the counter moved by another process compares every run it scans with
//! what is stored.
//!
//! [`Feed`] is one process's memory between scans (cached records, manifests, fingerprints), so
//! that re-scanning an unchanged root costs a `stat` per file and no reads.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use runicorn_protocol::parallel::{io_workers, map_in_order};
use runicorn_protocol::run_format::{
    build_overview, discover_runs, Layout, LivenessContext, RunLocation,
};
use runicorn_protocol::run_format::discovery::DiscoveryProblem;
use runicorn_protocol::wire::{EventsState, FileEntry, RunChange};
use rusqlite::{params, OptionalExtension, Transaction, TransactionBehavior};
use sha2::{Digest, Sha256};

use super::manifest::{self, is_append_only, Manifest, ManifestFile};
use super::{update_with, upsert_cached, CachedRun, IndexError, RunIndex, UPSERT_CACHED_SQL};

/// What a scan looks at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ScanScope {
    /// Discover every run under the root (finds new runs and removed ones).
    All,
    /// Only these known run directories (relative keys), e.g. where the file watcher saw writes.
    Dirs(Vec<String>),
}

/// What a scan did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ScanReport {
    /// Runs looked at.
    pub scanned: usize,
    /// Runs that got a new sequence value (tombstones included).
    pub bumped: usize,
    /// The counter after the scan (it may also have been moved by another process).
    pub counter: u64,
    /// Discovery problems not reported by an earlier scan of this process.
    pub new_problems: Vec<DiscoveryProblem>,
}

/// One entry of a listing.
#[derive(Debug, Clone, PartialEq)]
pub struct FeedEntry {
    pub seq: u64,
    pub dir: String,
    /// The state announced at `seq` (records' JSON values not filled in), or `None` for a
    /// tombstone.
    pub state: Option<RunChange>,
}

/// Rows of the feed after a cursor, and the counter, read in one transaction.
#[derive(Debug, Clone, PartialEq)]
pub struct FeedPage {
    pub entries: Vec<FeedEntry>,
    pub counter: u64,
}

/// Whether the feed knows a run directory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Presence {
    Live,
    Removed,
}

/// One run as this process last saw it.
#[derive(Debug, Clone)]
struct KnownRun {
    location: RunLocation,
    cache: CachedRun,
    manifest: Manifest,
    state_fp: String,
    /// The derived status last computed, and whether it can change without a file changing
    /// (the written status is `running`).
    status: String,
    may_crash: bool,
}

/// The index's view, loaded once before the first full scan.
#[derive(Debug, Default)]
struct Prior {
    caches: HashMap<String, CachedRun>,
    /// Live rows: fingerprint and manifest.
    live: HashMap<String, (String, Manifest)>,
}

/// The manifest of a run never seen.
static NO_MANIFEST: Manifest = Manifest {
    files: Vec::new(),
    dirs: Vec::new(),
};

/// Seconds between scans that list every folder again instead of trusting unchanged folder
/// mtimes (a safety net for file systems with coarse or skewed times).
const DEEP_SCAN_EVERY: Duration = Duration::from_secs(60);

/// One process's memory of the feed between scans.
pub struct Feed {
    root: PathBuf,
    runs: HashMap<String, KnownRun>,
    /// Consumed by the first full scan.
    prior: Option<Prior>,
    loaded: bool,
    /// The counter as this process last left it.
    counter_seen: u64,
    reported_problems: HashSet<String>,
    last_deep_scan: Option<Instant>,
}

/// What one scan found of one run.
enum Outcome {
    /// Same files, same derived status: nothing to do.
    Unchanged,
    Scanned(Box<Scanned>),
    /// The directory is gone.
    Gone,
}

/// A run's state as one scan found it.
struct Scanned {
    key: String,
    location: RunLocation,
    cache: CachedRun,
    cache_changed: bool,
    manifest: Manifest,
    head: RunChange,
    state_fp: String,
}

impl Feed {
    /// A feed of the runs under `root` (the root the index belongs to).
    pub fn new(root: &Path) -> Feed {
        Feed {
            root: root.to_owned(),
            runs: HashMap::new(),
            prior: None,
            loaded: false,
            counter_seen: 0,
            reported_problems: HashSet::new(),
            last_deep_scan: None,
        }
    }

    /// The known run directory that holds `rel` (a path relative to the root), if any.
    pub fn run_holding(&self, rel: &Path) -> Option<String> {
        let mut candidate = Some(rel);
        while let Some(p) = candidate {
            if let Some(key) = p.to_str() {
                if self.runs.contains_key(key) {
                    return Some(key.to_owned());
                }
            }
            candidate = p.parent().filter(|p| !p.as_os_str().is_empty());
        }
        None
    }

    /// Brings the feed up to date for `scope`, giving changed runs new sequence values.
    pub fn scan(
        &mut self,
        index: &Mutex<RunIndex>,
        scope: ScanScope,
        ctx: &LivenessContext,
    ) -> Result<ScanReport, IndexError> {
        if !self.loaded {
            let idx = index.lock().unwrap_or_else(PoisonError::into_inner);
            let prior = idx.load_prior().map_err(|cause| idx.sqlite_err(cause))?;
            self.counter_seen = idx.feed_counter()?;
            self.prior = Some(prior);
            self.loaded = true;
        }
        let scope = if self.prior.is_some() {
            ScanScope::All
        } else {
            scope
        };
        let mut report = ScanReport::default();
        // Another process moved the counter: compare every run scanned with what is stored.
        let reconcile = {
            let idx = index.lock().unwrap_or_else(PoisonError::into_inner);
            idx.feed_counter()? != self.counter_seen
        };
        let deep = scope == ScanScope::All
            && self
                .last_deep_scan
                .is_none_or(|t| t.elapsed() >= DEEP_SCAN_EVERY);
        if deep {
            self.last_deep_scan = Some(Instant::now());
        }
        let t0 = Instant::now(); // TIMING
        let (locations, mut gone) = self.targets(&scope, &mut report);
        eprintln!("TIMING targets {:?}", t0.elapsed()); // TIMING
        let keys: Vec<String> = locations.iter().map(|l| self.key_of(&l.dir)).collect();
        let outcomes: Vec<Outcome> = map_in_order(&locations, io_workers(), |i, loc| {
            let known = self.runs.get(&keys[i]).filter(|_| !reconcile);
            let (cache, manifest) = self.previous(&keys[i]);
            scan_one(&keys[i], loc, known, cache, manifest, !deep, ctx)
        });
        report.scanned = outcomes.len();
        eprintln!("TIMING scanned {:?}", t0.elapsed()); // TIMING
        let mut found = Vec::new();
        for (key, outcome) in keys.into_iter().zip(outcomes) {
            match outcome {
                Outcome::Unchanged => {}
                Outcome::Scanned(s) => found.push(*s),
                Outcome::Gone => gone.push(key),
            }
        }
        let changed: Vec<bool> = found
            .iter()
            .map(|s| self.previous_fp(&s.key) != Some(s.state_fp.as_str()))
            .collect();
        let any_cache_change = found.iter().any(|s| s.cache_changed);
        let any_gone = gone.iter().any(|k| self.is_live(k));

        {
            let mut idx = index.lock().unwrap_or_else(PoisonError::into_inner);
            let counter_now = idx.feed_counter()?;
            let reconcile = reconcile || counter_now != self.counter_seen;
            if reconcile || any_cache_change || any_gone || changed.contains(&true) {
                let (counter, bumped) = idx
                    .write_scan(&found, &changed, &gone, reconcile)
                    .map_err(|cause| idx.sqlite_err(cause))?;
                report.counter = counter;
                report.bumped = bumped;
            } else {
                report.counter = counter_now;
            }
        }
        self.counter_seen = report.counter;
        for key in &gone {
            self.runs.remove(key);
        }
        for s in found {
            let may_crash = s.head.status == "running";
            self.runs.insert(
                s.key,
                KnownRun {
                    location: s.location,
                    cache: s.cache,
                    manifest: s.manifest,
                    state_fp: s.state_fp,
                    status: s.head.status,
                    may_crash,
                },
            );
        }
        if scope == ScanScope::All {
            self.prior = None;
        }
        Ok(report)
    }

    /// The locations to scan, and the known keys that are no longer runs.
    fn targets(
        &mut self,
        scope: &ScanScope,
        report: &mut ScanReport,
    ) -> (Vec<RunLocation>, Vec<String>) {
        match scope {
            ScanScope::All => {
                let discovery = discover_runs(&self.root);
                for p in discovery.problems {
                    let text = format!("{}: {}", p.path.display(), p.reason);
                    if self.reported_problems.insert(text) {
                        report.new_problems.push(p);
                    }
                }
                let found: HashSet<String> =
                    discovery.runs.iter().map(|l| self.key_of(&l.dir)).collect();
                let mut gone: Vec<String> = self
                    .runs
                    .keys()
                    .chain(self.prior.iter().flat_map(|p| p.live.keys()))
                    .filter(|k| !found.contains(*k))
                    .cloned()
                    .collect();
                gone.sort();
                gone.dedup();
                (discovery.runs, gone)
            }
            ScanScope::Dirs(dirs) => {
                let mut locations = Vec::new();
                let mut gone = Vec::new();
                let unique: HashSet<&String> = dirs.iter().collect();
                for key in unique {
                    let Some(run) = self.runs.get(key) else {
                        continue;
                    };
                    if is_run_dir(&run.location.dir) {
                        locations.push(run.location.clone());
                    } else {
                        gone.push(key.clone());
                    }
                }
                (locations, gone)
            }
        }
    }

    fn key_of(&self, dir: &Path) -> String {
        dir.strip_prefix(&self.root)
            .unwrap_or(dir)
            .to_string_lossy()
            .into_owned()
    }

    fn previous(&self, key: &str) -> (Option<&CachedRun>, &Manifest) {
        if let Some(run) = self.runs.get(key) {
            return (Some(&run.cache), &run.manifest);
        }
        match &self.prior {
            Some(p) => (
                p.caches.get(key),
                p.live.get(key).map_or(&NO_MANIFEST, |(_, m)| m),
            ),
            None => (None, &NO_MANIFEST),
        }
    }

    fn previous_fp(&self, key: &str) -> Option<&str> {
        if let Some(run) = self.runs.get(key) {
            return Some(&run.state_fp);
        }
        self.prior
            .as_ref()
            .and_then(|p| p.live.get(key))
            .map(|(fp, _)| fp.as_str())
    }

    fn is_live(&self, key: &str) -> bool {
        self.runs.contains_key(key)
            || self
                .prior
                .as_ref()
                .is_some_and(|p| p.live.contains_key(key))
    }
}

/// Whether a directory (not a link) still holds a run's records.
fn is_run_dir(dir: &Path) -> bool {
    std::fs::symlink_metadata(dir).is_ok_and(|m| m.is_dir())
        && ["meta.json", "status.json"]
            .iter()
            .any(|f| std::fs::symlink_metadata(dir.join(f)).is_ok())
}

/// Scans one run: its manifest (a `stat` per file), then whatever changed. `None` when the
/// directory is gone.
fn scan_one(
    key: &str,
    loc: &RunLocation,
    known: Option<&KnownRun>,
    cache: Option<&CachedRun>,
    previous: &Manifest,
    reuse_listings: bool,
    ctx: &LivenessContext,
) -> Outcome {
    let manifest = match manifest::walk(&loc.dir, previous, reuse_listings) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Outcome::Gone,
        // An unlistable run is still a run: its records will say why it cannot be read.
        Err(_) => Manifest::default(),
    };
    let files = &manifest.files;
    if let Some(k) = known.filter(|k| k.manifest.files == *files) {
        // The common case of a rescan: no file changed. Only a running run can change (its
        // writer may have died), and only its liveness is judged again.
        if !k.may_crash || derived_status(&k.location, &k.cache, ctx) == k.status {
            return Outcome::Unchanged;
        }
    }
    let fp = |name: &str| {
        files
            .binary_search_by(|f| f.path.as_str().cmp(name))
            .map_or_else(|_| "absent".to_owned(), |i| files[i].fingerprint())
    };
    let records_fp = format!(
        "m={} s={} d={}",
        fp("meta.json"),
        fp("status.json"),
        fp(".deleted")
    );
    let events_fp = fp("events.jsonl");
    let (cache, cache_changed) = update_with(loc, cache, records_fp, events_fp);
    let head = head_of(key, loc, &cache, files, ctx);
    let state_fp = state_fingerprint(&head, files);
    Outcome::Scanned(Box::new(Scanned {
        key: key.to_owned(),
        location: loc.clone(),
        cache,
        cache_changed,
        manifest,
        head,
        state_fp,
    }))
}

/// A run's derived status now, from its cached records.
fn derived_status(loc: &RunLocation, cache: &CachedRun, ctx: &LivenessContext) -> String {
    build_overview(loc, &cache.records, &cache.progress, ctx)
        .status
        .as_str()
        .to_owned()
}

/// The announced state of a run, without its records' JSON values and files.
fn head_of(
    key: &str,
    loc: &RunLocation,
    cache: &CachedRun,
    files: &[ManifestFile],
    ctx: &LivenessContext,
) -> RunChange {
    let ov = build_overview(loc, &cache.records, &cache.progress, ctx);
    let progress = &cache.progress;
    RunChange {
        dir: key.to_owned(),
        seq: 0,
        id: ov.id,
        path: ov.path,
        layout: match ov.layout {
            Layout::Current => "current",
            Layout::Legacy => "legacy",
        }
        .to_owned(),
        alias: ov.alias,
        tags: ov.tags,
        status: ov.status.as_str().to_owned(),
        reason: ov.reason,
        created_at: ov.created_at,
        ended_at: ov.ended_at,
        hostname: ov.hostname,
        deleted: ov.deleted,
        meta: None,
        status_record: None,
        summary: None,
        config: None,
        environment: None,
        events: EventsState {
            bytes: progress.offset,
            lines: progress.next_line.saturating_sub(1),
            points: progress.totals.points,
            keys: progress.totals.keys.iter().cloned().collect(),
            last_step: progress.totals.last_step,
            last_event_at: progress.totals.last_event_at,
            corrupt_lines: progress.corrupt_lines,
        },
        log_bytes: files
            .iter()
            .find(|f| f.path == "logs.txt")
            .map_or(0, |f| f.size),
        files: Vec::new(),
    }
}

/// A fingerprint of everything the hub mirrors of a run. The append-only files count through
/// the head (complete-line size of `events.jsonl`, size of `logs.txt`), so a torn tail does not
/// make a change. A crash reason is left out: "no heartbeat for 35s" changes with every look.
fn state_fingerprint(head: &RunChange, files: &[ManifestFile]) -> String {
    let mut hasher = Sha256::new();
    let mut stable = head.clone();
    if stable.status == "crashed" {
        stable.reason = None;
    }
    // Serialising plain data cannot fail; an empty text would only cost a spurious change.
    hasher.update(serde_json::to_vec(&stable).unwrap_or_default());
    for f in files.iter().filter(|f| !is_append_only(&f.path)) {
        hasher.update(
            format!(
                "\n{}\t{}\t{}\t{}",
                f.path,
                f.size,
                f.mtime_ns(),
                f.sha256.as_deref().unwrap_or("-")
            )
            .as_bytes(),
        );
    }
    manifest::hex(&hasher.finalize()[..16])
}

fn to_i64(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

fn to_u64(v: i64) -> u64 {
    u64::try_from(v).unwrap_or(0)
}

fn read_counter(tx: &rusqlite::Connection) -> rusqlite::Result<u64> {
    let text: Option<String> = tx
        .query_row("SELECT value FROM index_info WHERE key = 'seq'", [], |r| {
            r.get(0)
        })
        .optional()?;
    Ok(text.and_then(|t| t.parse().ok()).unwrap_or(0))
}

impl RunIndex {
    fn sqlite_err(&self, cause: rusqlite::Error) -> IndexError {
        IndexError::Sqlite {
            path: self.path.clone(),
            cause,
        }
    }

    /// The feed's counter: the largest sequence value given out.
    pub fn feed_counter(&self) -> Result<u64, IndexError> {
        read_counter(&self.conn).map_err(|cause| self.sqlite_err(cause))
    }

    /// Whether the feed knows `dir` (a relative run directory), live or removed.
    pub fn feed_presence(&self, dir: &str) -> Result<Option<Presence>, IndexError> {
        self.conn
            .query_row(
                "SELECT removed FROM feed_run WHERE dir = ?1",
                [dir],
                |r| r.get::<_, i64>(0),
            )
            .optional()
            .map(|row| {
                row.map(|removed| {
                    if removed != 0 {
                        Presence::Removed
                    } else {
                        Presence::Live
                    }
                })
            })
            .map_err(|cause| self.sqlite_err(cause))
    }

    /// Up to `limit` rows with a sequence value above `after`, in sequence order (tombstones
    /// only when `with_removed`), and the counter, as of one moment.
    pub fn feed_page(
        &mut self,
        after: u64,
        limit: usize,
        with_removed: bool,
    ) -> Result<FeedPage, IndexError> {
        let path = self.path.clone();
        let err = |cause| IndexError::Sqlite {
            path: path.clone(),
            cause,
        };
        let tx = self.conn.transaction().map_err(err)?;
        let counter = read_counter(&tx).map_err(err)?;
        let mut entries = Vec::new();
        {
            let mut rows = tx
                .prepare_cached(
                    "SELECT dir, seq, removed, head FROM feed_run
                     WHERE seq > ?1 AND (?2 OR removed = 0) ORDER BY seq LIMIT ?3",
                )
                .map_err(err)?;
            let mut files = tx
                .prepare_cached(
                    "SELECT path, size, mtime_ns, sha256 FROM feed_file WHERE dir = ?1 ORDER BY path",
                )
                .map_err(err)?;
            let raw: Vec<(String, i64, i64, String)> = rows
                .query_map(
                    params![to_i64(after), with_removed, to_i64(limit as u64)],
                    |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
                )
                .map_err(err)?
                .collect::<rusqlite::Result<_>>()
                .map_err(err)?;
            for (dir, seq, removed, head) in raw {
                let seq = to_u64(seq);
                if removed != 0 {
                    entries.push(FeedEntry {
                        seq,
                        dir,
                        state: None,
                    });
                    continue;
                }
                let mut state: RunChange = serde_json::from_str(&head).map_err(|e| {
                    err(rusqlite::Error::FromSqlConversionFailure(
                        3,
                        rusqlite::types::Type::Text,
                        Box::new(e),
                    ))
                })?;
                state.seq = seq;
                state.files = files
                    .query_map([&dir], |r| {
                        let (s, ns) = ManifestFile::split_mtime_ns(r.get(2)?);
                        Ok(FileEntry {
                            path: r.get(0)?,
                            size: to_u64(r.get(1)?),
                            mtime: s as f64 + ns as f64 / 1e9,
                            sha256: r.get(3)?,
                        })
                    })
                    .map_err(err)?
                    .collect::<rusqlite::Result<_>>()
                    .map_err(err)?;
                entries.push(FeedEntry {
                    seq,
                    dir,
                    state: Some(state),
                });
            }
        }
        tx.commit().map_err(err)?;
        Ok(FeedPage { entries, counter })
    }

    /// What the index holds for the feed, to start a process's memory from.
    fn load_prior(&self) -> rusqlite::Result<Prior> {
        let caches = self.load()?;
        let mut live: HashMap<String, (String, Manifest)> = HashMap::new();
        {
            let mut stmt = self
                .conn
                .prepare("SELECT dir, state_fp FROM feed_run WHERE removed = 0")?;
            let rows = stmt.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get(1)?)))?;
            for row in rows {
                let (dir, fp) = row?;
                live.insert(dir, (fp, Manifest::default()));
            }
        }
        let mut stmt = self
            .conn
            .prepare("SELECT dir, path, size, mtime_ns, sha256 FROM feed_file ORDER BY dir, path")?;
        let rows = stmt.query_map([], |r| {
            let (mtime_s, mtime_nsec) = ManifestFile::split_mtime_ns(r.get(3)?);
            Ok((
                r.get::<_, String>(0)?,
                ManifestFile {
                    path: r.get(1)?,
                    size: to_u64(r.get(2)?),
                    mtime_s,
                    mtime_nsec,
                    sha256: r.get(4)?,
                },
            ))
        })?;
        for row in rows {
            let (dir, file) = row?;
            if let Some((_, manifest)) = live.get_mut(&dir) {
                manifest.files.push(file);
            }
        }
        Ok(Prior { caches, live })
    }

    /// Writes one scan's results in one write-locked transaction; returns the counter and how
    /// many runs got a new sequence value.
    fn write_scan(
        &mut self,
        found: &[Scanned],
        changed: &[bool],
        gone: &[String],
        reconcile: bool,
    ) -> rusqlite::Result<(u64, usize)> {
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        let mut counter = read_counter(&tx)?;
        let mut bumped = 0;
        {
            let mut stored = tx.prepare_cached(
                "SELECT state_fp, removed FROM feed_run WHERE dir = ?1",
            )?;
            let mut upsert_run = tx.prepare_cached(
                "INSERT OR REPLACE INTO feed_run(dir, seq, removed, state_fp, head) VALUES (?1, ?2, 0, ?3, ?4)",
            )?;
            let mut upsert_cache = tx.prepare_cached(UPSERT_CACHED_SQL)?;
            for (s, &changed) in found.iter().zip(changed) {
                if s.cache_changed {
                    upsert_cached(&mut upsert_cache, &s.key, &s.cache)?;
                }
                if !changed && !reconcile {
                    continue;
                }
                let row: Option<(String, i64)> = stored
                    .query_row([&s.key], |r| Ok((r.get(0)?, r.get(1)?)))
                    .optional()?;
                if matches!(&row, Some((fp, 0)) if *fp == s.state_fp) {
                    // Already announced (by another agent serving this root).
                    continue;
                }
                counter += 1;
                bumped += 1;
                let head = serde_json::to_string(&s.head)
                    .map_err(|e| rusqlite::Error::ToSqlConversionFailure(Box::new(e)))?;
                upsert_run.execute(params![s.key, to_i64(counter), s.state_fp, head])?;
                replace_files(&tx, &s.key, &s.manifest.files)?;
            }
            let mut tombstone = tx.prepare_cached(
                "UPDATE feed_run SET removed = 1, seq = ?2, state_fp = '' WHERE dir = ?1 AND removed = 0",
            )?;
            let mut forget_cache = tx.prepare_cached("DELETE FROM run_cache WHERE dir = ?1")?;
            for key in gone {
                if tombstone.execute(params![key, to_i64(counter + 1)])? > 0 {
                    counter += 1;
                    bumped += 1;
                    replace_files(&tx, key, &[])?;
                }
                forget_cache.execute([key])?;
            }
        }
        tx.execute(
            "INSERT OR REPLACE INTO index_info(key, value) VALUES ('seq', ?1)",
            [counter.to_string()],
        )?;
        tx.commit()?;
        Ok((counter, bumped))
    }
}

/// Replaces the stored manifest of one run.
fn replace_files(tx: &Transaction<'_>, dir: &str, files: &[ManifestFile]) -> rusqlite::Result<()> {
    tx.prepare_cached("DELETE FROM feed_file WHERE dir = ?1")?
        .execute([dir])?;
    let mut insert = tx.prepare_cached(
        "INSERT INTO feed_file(dir, path, size, mtime_ns, sha256) VALUES (?1, ?2, ?3, ?4, ?5)",
    )?;
    for f in files {
        insert.execute(params![dir, f.path, to_i64(f.size), f.mtime_ns(), f.sha256])?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use runicorn_protocol::run_format::{RunOutcome, RunSpec, RunWriter};
    use std::fs;

    struct Fixture {
        dir: tempfile::TempDir,
        index: Mutex<RunIndex>,
        feed: Feed,
    }

    impl Fixture {
        fn new() -> Fixture {
            let dir = tempfile::tempdir().unwrap();
            let index = Mutex::new(RunIndex::open(dir.path()).unwrap());
            let feed = Feed::new(dir.path());
            Fixture { dir, index, feed }
        }
        fn root(&self) -> &Path {
            self.dir.path()
        }
        fn scan(&mut self) -> ScanReport {
            self.feed
                .scan(&self.index, ScanScope::All, &LivenessContext::here_and_now())
                .unwrap()
        }
        fn scan_dirs(&mut self, dirs: &[&str]) -> ScanReport {
            let dirs = dirs.iter().map(|d| d.to_string()).collect();
            self.feed
                .scan(
                    &self.index,
                    ScanScope::Dirs(dirs),
                    &LivenessContext::here_and_now(),
                )
                .unwrap()
        }
        fn page(&self, after: u64, with_removed: bool) -> FeedPage {
            self.index
                .lock()
                .unwrap()
                .feed_page(after, 10_000, with_removed)
                .unwrap()
        }
        fn write_run(&self, id: &str, status: &str) -> PathBuf {
            let dir = self.root().join("runs/p").join(id);
            fs::create_dir_all(&dir).unwrap();
            fs::write(dir.join("meta.json"), format!("{{\"id\":\"{id}\"}}")).unwrap();
            fs::write(
                dir.join("status.json"),
                format!("{{\"status\":\"{status}\"}}"),
            )
            .unwrap();
            dir
        }
    }

    fn dirs(page: &FeedPage) -> Vec<(&str, bool)> {
        page.entries
            .iter()
            .map(|e| (e.dir.as_str(), e.state.is_some()))
            .collect()
    }

    #[test]
    fn runs_get_sequence_values_in_change_order_and_unchanged_runs_keep_theirs() {
        let mut f = Fixture::new();
        f.write_run("a", "finished");
        f.write_run("b", "finished");
        let first = f.scan();
        assert_eq!((first.bumped, first.counter), (2, 2));
        assert_eq!(f.scan().bumped, 0, "an unchanged root bumps nothing");
        let page = f.page(0, true);
        assert_eq!(dirs(&page), [("runs/p/a", true), ("runs/p/b", true)]);
        assert_eq!(page.counter, 2);
        let a = page.entries[0].state.as_ref().unwrap();
        assert_eq!((a.seq, a.id.as_str(), a.status.as_str()), (1, "a", "finished"));
        assert_eq!(a.files.len(), 2);
        assert!(a.files.iter().all(|f| f.sha256.is_some()));

        // Changing `a` moves it after `b`.
        std::thread::sleep(std::time::Duration::from_millis(10));
        fs::write(f.root().join("runs/p/a/summary.json"), "{\"x\":1}").unwrap();
        assert_eq!(f.scan().bumped, 1);
        let page = f.page(2, true);
        assert_eq!(dirs(&page), [("runs/p/a", true)]);
        assert_eq!(page.entries[0].seq, 3);
        assert_eq!(f.page(0, true).entries[1].dir, "runs/p/a");
    }

    #[test]
    fn events_bump_on_complete_lines_only_and_logs_on_size() {
        let mut f = Fixture::new();
        let dir = f.write_run("a", "finished");
        f.scan();
        let line = "{\"type\":\"metrics\",\"data\":{\"loss\":1,\"global_step\":1}}\n";
        fs::write(dir.join("events.jsonl"), &line[..20]).unwrap();
        assert_eq!(f.scan().bumped, 0, "a torn line is no change");
        fs::write(dir.join("events.jsonl"), line).unwrap();
        assert_eq!(f.scan().bumped, 1);
        let state = f.page(1, true).entries[0].state.clone().unwrap();
        assert_eq!(
            (state.events.bytes, state.events.lines, state.events.points),
            (line.len() as u64, 1, 1)
        );
        fs::write(dir.join("logs.txt"), "hello\n").unwrap();
        assert_eq!(f.scan().bumped, 1);
        let state = f.page(2, true).entries[0].state.clone().unwrap();
        assert_eq!(state.log_bytes, 6);
    }

    #[test]
    fn removed_runs_leave_tombstones_and_come_back_with_new_values() {
        let mut f = Fixture::new();
        let dir = f.write_run("a", "finished");
        f.write_run("b", "finished");
        f.scan();
        fs::remove_dir_all(&dir).unwrap();
        assert_eq!(f.scan().bumped, 1);
        let page = f.page(2, true);
        assert_eq!(dirs(&page), [("runs/p/a", false)]);
        assert_eq!(page.entries[0].seq, 3);
        assert_eq!(dirs(&f.page(0, false)), [("runs/p/b", true)]);
        assert_eq!(
            f.index.lock().unwrap().feed_presence("runs/p/a").unwrap(),
            Some(Presence::Removed)
        );
        assert_eq!(f.scan().bumped, 0, "a tombstone is written once");
        f.write_run("a", "running");
        assert_eq!(f.scan().bumped, 1);
        assert_eq!(
            f.index.lock().unwrap().feed_presence("runs/p/a").unwrap(),
            Some(Presence::Live)
        );
    }

    #[test]
    fn a_writer_that_died_changes_the_derived_status() {
        let mut f = Fixture::new();
        let mut child = std::process::Command::new("sleep")
            .arg("30")
            .spawn()
            .unwrap();
        let dir = f.root().join("runs/p/live");
        fs::create_dir_all(&dir).unwrap();
        let host = LivenessContext::here_and_now().hostname;
        fs::write(
            dir.join("status.json"),
            format!(
                "{{\"status\":\"running\",\"pid\":{},\"host\":\"{host}\"}}",
                child.id()
            ),
        )
        .unwrap();
        f.scan();
        assert_eq!(f.page(0, true).entries[0].state.as_ref().unwrap().status, "running");
        assert_eq!(f.scan().bumped, 0);
        child.kill().unwrap();
        child.wait().unwrap();
        assert_eq!(f.scan().bumped, 1, "no file changed, but the run crashed");
        let state = f.page(1, true).entries[0].state.clone().unwrap();
        assert_eq!(state.status, "crashed");
        assert!(state.reason.unwrap().contains("gone"));
    }

    #[test]
    fn targeted_scans_see_writes_and_removals_of_known_runs() {
        let mut f = Fixture::new();
        let mut spec = RunSpec::new(f.root(), "test");
        spec.path = Some("p".into());
        spec.run_id = Some("w".into());
        let mut w = RunWriter::create(&spec).unwrap();
        w.log_metrics(&[("loss", 1.0)], None, None).unwrap();
        w.flush().unwrap();
        f.scan();
        let key = "runs/p/w";
        assert_eq!(
            f.feed.run_holding(Path::new("runs/p/w/events.jsonl")),
            Some(key.to_owned())
        );
        assert_eq!(f.feed.run_holding(Path::new("runs/p/other/x")), None);
        w.log_metrics(&[("loss", 0.5)], None, None).unwrap();
        w.finish(RunOutcome::finished()).unwrap();
        let before = f.feed.counter_seen;
        assert_eq!(f.scan_dirs(&[key]).bumped, 1);
        let state = f.page(before, true).entries[0].state.clone().unwrap();
        assert_eq!((state.events.points, state.status.as_str()), (2, "finished"));
        fs::remove_dir_all(f.root().join(key)).unwrap();
        assert_eq!(f.scan_dirs(&[key]).bumped, 1);
        assert!(f.page(0, true).entries.iter().any(|e| e.dir == key && e.state.is_none()));
    }

    #[test]
    fn a_second_process_does_not_bump_what_the_first_announced_and_a_new_index_starts_afresh() {
        let mut f = Fixture::new();
        f.write_run("a", "finished");
        f.scan();
        let mut other = Feed::new(f.root());
        let second = Mutex::new(RunIndex::open(f.root()).unwrap());
        let r = other
            .scan(&second, ScanScope::All, &LivenessContext::here_and_now())
            .unwrap();
        assert_eq!((r.bumped, r.counter), (0, 1));
        // The second one sees a change first; the first one, scanning after, agrees.
        fs::write(f.root().join("runs/p/a/summary.json"), "{}").unwrap();
        let r = other
            .scan(&second, ScanScope::All, &LivenessContext::here_and_now())
            .unwrap();
        assert_eq!((r.bumped, r.counter), (1, 2));
        let r = f.scan();
        assert_eq!((r.bumped, r.counter), (0, 2));
        // A deleted index is a new epoch with a new feed.
        let epoch = f.index.lock().unwrap().epoch().unwrap();
        drop(second);
        drop(f.index);
        fs::remove_dir_all(f.dir.path().join(super::super::AGENT_DIR)).unwrap();
        let index = Mutex::new(RunIndex::open(f.dir.path()).unwrap());
        assert_ne!(index.lock().unwrap().epoch().unwrap(), epoch);
        let mut fresh = Feed::new(f.dir.path());
        let r = fresh
            .scan(&index, ScanScope::All, &LivenessContext::here_and_now())
            .unwrap();
        assert_eq!((r.bumped, r.counter), (1, 1));
    }

    #[test]
    fn a_restarted_process_reuses_hashes_and_bumps_nothing() {
        let mut f = Fixture::new();
        f.write_run("a", "finished");
        f.scan();
        let mut again = Feed::new(f.root());
        let r = again
            .scan(&f.index, ScanScope::All, &LivenessContext::here_and_now())
            .unwrap();
        assert_eq!(r.bumped, 0);
        // Removed while no agent ran: the restarted one writes the tombstone.
        fs::remove_dir_all(f.root().join("runs/p/a")).unwrap();
        let mut third = Feed::new(f.root());
        let r = third
            .scan(&f.index, ScanScope::All, &LivenessContext::here_and_now())
            .unwrap();
        assert_eq!((r.bumped, r.counter), (1, 2));
    }

    #[test]
    fn in_memory_index_serves_a_feed() {
        let t = tempfile::tempdir().unwrap();
        fs::create_dir_all(t.path().join("runs/x")).unwrap();
        fs::write(t.path().join("runs/x/meta.json"), "{}").unwrap();
        let index = Mutex::new(RunIndex::open_in_memory(t.path()).unwrap());
        let mut feed = Feed::new(t.path());
        let r = feed
            .scan(&index, ScanScope::All, &LivenessContext::here_and_now())
            .unwrap();
        assert_eq!(r.bumped, 1);
        assert!(!t.path().join(super::super::AGENT_DIR).exists());
        assert_eq!(index.lock().unwrap().path, Path::new(":memory:"));
    }
}
