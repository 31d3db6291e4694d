//! The change feed that `runicorn-agent serve` hands the hub, kept in the index.
//!
//! Every run directory has a *sequence value*: the value of a global counter (`index_info.seq`)
//! taken when its state last changed. A run's state is what the hub mirrors: its records'
//! fingerprints, the complete-line size and totals of `events.jsonl`, the size of `logs.txt`, its
//! file manifest, and its *derived* status (a writer that died makes a run `crashed`, and a run
//! that makes no new steps `stalled`, without any file changing). A scan computes each run's state and a fingerprint of it; a run whose
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

use std::borrow::Cow;
use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use runicorn_protocol::parallel::{io_workers, map_in_order};
use runicorn_protocol::run_format::discovery::DiscoveryProblem;
use runicorn_protocol::run_format::names::{escaped_name, wire_name_problem};
use runicorn_protocol::run_format::{
    build_overview, discover_runs, Layout, LivenessContext, RunLocation, RunStatus,
};
use runicorn_protocol::wire::{ArtifactChange, EventsState, RunChange, SkippedEntry};
use sha2::{Digest, Sha256};

mod artifacts;
mod run_key;
mod running;
mod store;

use run_key::RunKey;
pub use running::RunningRun;

pub(super) use store::parse_files as parse_stored_files;

use super::fingerprint::file_fingerprint;
use super::manifest::{self, is_append_only, ListedDir, Manifest, ManifestFile};
use super::records::{read_records, StoredRecords};
use super::{alerts, update_with, CachedRun, IndexError, RunIndex};

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
    /// After a full scan: every entry under the root that looks like a run but is not in the
    /// feed, because its directory cannot be named on the wire or walked (sorted by name).
    pub skipped_runs: Option<Vec<SkippedEntry>>,
}

/// One entry of a listing: a run, or an artifact (`artifact` set).
#[derive(Debug, Clone, PartialEq)]
pub struct FeedEntry {
    pub seq: u64,
    pub dir: String,
    /// A run's state announced at `seq`, or `None` for a run's tombstone (and for artifacts).
    pub state: Option<RunChange>,
    /// Set when the entry is an artifact directory rather than a run.
    pub artifact: Option<ArtifactEntry>,
}

/// An artifact's entry in a listing.
#[derive(Debug, Clone, PartialEq)]
pub enum ArtifactEntry {
    /// Its whole state announced at the entry's sequence value.
    Present(Box<ArtifactChange>),
    /// A tombstone: the artifact directory is gone.
    Removed,
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

/// One run as this process last saw it. A run that is not live keeps nothing on the heap in a
/// long-lived process (see [`Feed::shed_idle_runs`]): the map holds it whole.
#[derive(Debug, Clone)]
struct KnownRun {
    /// Where the run is, with its key: [`RunLocation::from_key`].
    layout: Layout,
    /// Cached records and event progress; loaded from the index when first needed (runs taken
    /// over from the index's rows at start have none yet).
    /// Boxed: most runs have none in a long-lived process, and the map holds its values
    /// inline.
    cache: Option<Box<CachedRun>>,
    manifest: RememberedManifest,
    /// [`state_fingerprint`] as bytes.
    state_fp: [u8; 16],
    /// The derived status last announced (`None`: a stored name this agent does not know).
    status: Option<RunStatus>,
}

impl KnownRun {
    /// Whether the run's status can change without a file changing (its writer may die, or
    /// stop stepping).
    fn may_crash(&self) -> bool {
        self.status.as_ref().is_some_and(|s| s.is_live())
    }
}

/// What the feed keeps of a run's manifest.
#[derive(Debug, Clone)]
enum RememberedManifest {
    /// Whole: a walk reuses its hashes and (for settled folders) its listings.
    Whole(Box<Manifest>),
    /// Only [`Manifest::listing_digest`] (a long-lived process's idle runs): a walk that
    /// `stat`s every file and gives the same digest means nothing changed; any other outcome
    /// reads the whole manifest back from the index.
    Digest([u8; 16]),
}

/// The manifest of a run never seen.
static NO_MANIFEST: Manifest = Manifest::EMPTY;

/// A state fingerprint (hex, as stored) as the bytes the feed keeps; text that is not one
/// (from another version) gives bytes no state has, so the run counts as changed.
fn fp_bytes(hex_text: &str) -> [u8; 16] {
    let mut out = [0xff; 16];
    let digits = hex_text.as_bytes();
    if digits.len() != 32 {
        return out;
    }
    let value = |c: u8| char::from(c).to_digit(16);
    for (i, pair) in digits.chunks(2).enumerate() {
        match (value(pair[0]), value(pair[1])) {
            // Two hex digits make one byte.
            (Some(hi), Some(lo)) => out[i] = (hi * 16 + lo) as u8,
            _ => return [0xff; 16],
        }
    }
    out
}

/// Seconds between scans that list every folder again instead of trusting unchanged folder
/// mtimes (a safety net for file systems with coarse or skewed times).
const DEEP_SCAN_EVERY: Duration = Duration::from_secs(60);

/// Above this many runs to load, the whole `run_cache` table is read at once.
const LOAD_ALL_ABOVE: usize = 2000;

/// One process's memory of the feed between scans.
pub struct Feed {
    root: PathBuf,
    runs: HashMap<RunKey, KnownRun>,
    loaded: bool,
    /// Whether a full scan ran (until then, runs known from the index may be gone).
    scanned_all: bool,
    /// The counter as this process last left it.
    counter_seen: u64,
    reported_problems: HashSet<String>,
    last_deep_scan: Option<Instant>,
}

/// What one scan found of one run.
enum Outcome {
    /// Same files, same derived status: nothing to do but remember the folder listings when
    /// some folder was listed again (`Some`).
    Unchanged(Option<Vec<ListedDir>>),
    /// Something changed: its state must be computed, with its cached records.
    NeedsCache(Box<Manifest>),
    /// Remembered by digest only, and not found unchanged: its stored manifest must be read
    /// back and the run scanned again with it.
    NeedsManifest,
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
    /// Read only when the state differs from the one remembered (it will be stored).
    records: Option<StoredRecords>,
    state_fp: String,
}

impl Feed {
    /// A feed of the runs under `root` (the root the index belongs to).
    pub fn new(root: &Path) -> Feed {
        Feed {
            root: root.to_owned(),
            runs: HashMap::new(),
            loaded: false,
            scanned_all: false,
            counter_seen: 0,
            reported_problems: HashSet::new(),
            last_deep_scan: None,
        }
    }

    /// Copies what is remembered of every run into fresh allocations and frees the old ones.
    /// After a scan that read many runs, what it keeps lies scattered between the freed
    /// buffers of that scan, and the allocator cannot give those pages back; copied after the
    /// scan, it is packed together (a long-lived process's memory).
    pub fn compact(&mut self) {
        let fresh: HashMap<RunKey, KnownRun> = self
            .runs
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        self.runs = fresh;
    }

    /// Forgets the cached records of runs that are not live, and keeps only a digest of their
    /// manifests (a long-lived process's memory): a run that changes later has both read back
    /// from the index, as at start.
    pub fn shed_idle_runs(&mut self) {
        for run in self.runs.values_mut() {
            if run.may_crash() {
                continue;
            }
            run.cache = None;
            if let RememberedManifest::Whole(m) = &run.manifest {
                // A file not hashed yet is hashed by the next walk handed the whole manifest.
                if m.fully_hashed() {
                    run.manifest = RememberedManifest::Digest(m.listing_digest());
                }
            }
        }
    }

    /// The directories of the runs whose derived status, as last announced, is live (running or
    /// stalled): those whose status can change without a file changing.
    pub fn live_dirs(&self) -> Vec<String> {
        self.runs
            .iter()
            .filter(|(_, r)| r.may_crash())
            .map(|(dir, _)| dir.as_str().to_owned())
            .collect()
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
        // Another process moved the counter: compare every run scanned with what is stored.
        let reconcile = {
            let idx = index.lock().unwrap_or_else(PoisonError::into_inner);
            if !self.loaded {
                self.runs = idx.load_known().map_err(|cause| idx.sqlite_err(cause))?;
                self.counter_seen = idx.feed_counter()?;
                self.loaded = true;
            }
            idx.feed_counter()? != self.counter_seen
        };
        let scope = if self.scanned_all {
            scope
        } else {
            ScanScope::All
        };
        let mut report = ScanReport::default();
        // The first scan of a process trusts the listings stored with each manifest as later
        // scans trust their own (a session that lasts lists every folder after a while).
        let deep = scope == ScanScope::All
            && self
                .last_deep_scan
                .get_or_insert_with(Instant::now)
                .elapsed()
                >= DEEP_SCAN_EVERY;
        if deep {
            self.last_deep_scan = Some(Instant::now());
        }
        let (locations, mut gone) = self.targets(&scope, &mut report);
        // Borrowed from the locations (a full scan holds one per run).
        let keys: Vec<Cow<'_, str>> = locations
            .iter()
            .map(|l| {
                l.dir
                    .strip_prefix(&self.root)
                    .unwrap_or(&l.dir)
                    .to_string_lossy()
            })
            .collect();
        let scan_at = |runs: &HashMap<RunKey, KnownRun>, i: usize| {
            scan_one(
                &keys[i],
                &locations[i],
                runs.get(&*keys[i]),
                reconcile,
                !deep,
                ctx,
            )
        };
        let mut outcomes: Vec<Outcome> =
            map_in_order(&locations, io_workers(), |i, _| scan_at(&self.runs, i));
        // Runs remembered by digest that may have changed: scanned again with their manifests.
        let wanting: Vec<usize> = (0..outcomes.len())
            .filter(|&i| matches!(outcomes[i], Outcome::NeedsManifest))
            .collect();
        if !wanting.is_empty() {
            let mut stored = {
                let idx = index.lock().unwrap_or_else(PoisonError::into_inner);
                let wanted: Vec<&str> = wanting.iter().map(|&i| &*keys[i]).collect();
                idx.load_manifests(&wanted)
                    .map_err(|cause| idx.sqlite_err(cause))?
            };
            for &i in &wanting {
                if let Some(run) = self.runs.get_mut(&*keys[i]) {
                    // A manifest the index lacks only costs hashing the run's files again.
                    let whole = stored.remove(&*keys[i]).unwrap_or_default();
                    run.manifest = RememberedManifest::Whole(Box::new(whole));
                }
            }
            let again = map_in_order(&wanting, io_workers(), |_, &i| scan_at(&self.runs, i));
            for (i, outcome) in wanting.into_iter().zip(again) {
                outcomes[i] = outcome;
            }
        }
        let remembered = |key: &str| self.runs.get(key).map(|k| k.state_fp);
        report.scanned = outcomes.len();
        let mut found = Vec::new();
        let mut pending = Vec::new();
        let mut relisted = Vec::new();
        for (i, outcome) in outcomes.into_iter().enumerate() {
            match outcome {
                Outcome::Unchanged(None) => {}
                Outcome::Unchanged(Some(dirs)) => relisted.push((keys[i].to_string(), dirs)),
                Outcome::Scanned(s) => found.push(*s),
                Outcome::NeedsCache(m) => pending.push((i, *m)),
                Outcome::Gone => gone.push(keys[i].to_string()),
                // Scanned again above with its manifest, which never asks for it.
                Outcome::NeedsManifest => {}
            }
        }
        if !pending.is_empty() {
            let caches = {
                let idx = index.lock().unwrap_or_else(PoisonError::into_inner);
                let wanted: Vec<&str> = pending.iter().map(|(i, _)| &*keys[*i]).collect();
                if wanted.len() > LOAD_ALL_ABOVE {
                    idx.load()
                } else {
                    idx.load_some(&wanted)
                }
                .map_err(|cause| idx.sqlite_err(cause))?
            };
            found.extend(map_in_order(&pending, io_workers(), |_, (i, manifest)| {
                let key: &str = &keys[*i];
                let previous_fp = remembered(key).filter(|_| !reconcile);
                let cache = self
                    .runs
                    .get(key)
                    .and_then(|k| k.cache.as_deref())
                    .or_else(|| caches.get(key));
                finish(key, &locations[*i], manifest, cache, previous_fp, ctx)
            }));
        }
        let changed: Vec<bool> = found
            .iter()
            .map(|s| remembered(&s.key) != Some(fp_bytes(&s.state_fp)))
            .collect();
        let any_cache_change = found.iter().any(|s| s.cache_changed);
        let any_gone = gone.iter().any(|k| self.runs.contains_key(k.as_str()));
        let relisted: Vec<(String, Manifest)> = relisted
            .into_iter()
            .filter_map(|(key, dirs)| {
                let run = self.runs.get_mut(key.as_str())?;
                // Only a whole manifest gives a new listing (see `scan_one`).
                let RememberedManifest::Whole(manifest) = &mut run.manifest else {
                    return None;
                };
                manifest.dirs = dirs;
                Some((key, (**manifest).clone()))
            })
            .collect();

        {
            let mut idx = index.lock().unwrap_or_else(PoisonError::into_inner);
            let counter_now = idx.feed_counter()?;
            let reconcile = reconcile || counter_now != self.counter_seen;
            if reconcile || any_cache_change || any_gone || changed.contains(&true) {
                let (counter, bumped) = idx
                    .write_scan(&found, &changed, &gone, reconcile, self.counter_seen)
                    .map_err(|cause| idx.sqlite_err(cause))?;
                report.counter = counter;
                report.bumped = bumped;
            } else {
                report.counter = counter_now;
            }
            if !relisted.is_empty() {
                idx.write_listings(&relisted)
                    .map_err(|cause| idx.sqlite_err(cause))?;
            }
        }
        self.counter_seen = report.counter;
        for key in &gone {
            self.runs.remove(key.as_str());
        }
        for s in found {
            let mut manifest = s.manifest;
            // The record bytes the walk captured were for this scan; kept, they would hold
            // every run's records in memory for the life of the process.
            manifest.captured = Vec::new();
            self.runs.insert(
                RunKey::from(s.key.as_str()),
                KnownRun {
                    layout: s.location.layout,
                    cache: Some(Box::new(s.cache)),
                    manifest: RememberedManifest::Whole(Box::new(manifest)),
                    state_fp: fp_bytes(&s.state_fp),
                    status: RunStatus::from_name(&s.head.status),
                },
            );
        }
        if scope == ScanScope::All {
            self.scanned_all = true;
            let (bumped, counter) = self.scan_artifacts(index)?;
            report.bumped += bumped;
            report.counter = report.counter.max(counter);
        }
        Ok(report)
    }

    /// Brings the artifacts of the feed up to date (every artifact is read again; a changed
    /// one gets a new sequence value, a gone one a tombstone). Returns how many were bumped
    /// and the counter after.
    pub fn scan_artifacts(&mut self, index: &Mutex<RunIndex>) -> Result<(usize, u64), IndexError> {
        let found = artifacts::read_all(&self.root);
        let mut idx = index.lock().unwrap_or_else(PoisonError::into_inner);
        let written = idx
            .write_artifacts(&found)
            .map_err(|cause| idx.sqlite_err(cause))?;
        // Only this process moved the counter since it last looked: it still knows every run
        // state stored. Otherwise the next run scan compares with what is stored.
        if written.counter_before == self.counter_seen {
            self.counter_seen = written.counter;
        }
        Ok((written.bumped, written.counter))
    }

    /// The locations to scan, and the known keys that are no longer runs.
    fn targets(
        &mut self,
        scope: &ScanScope,
        report: &mut ScanReport,
    ) -> (Vec<RunLocation>, Vec<String>) {
        match scope {
            ScanScope::All => {
                let mut discovery = discover_runs(&self.root);
                let mut skipped = Vec::new();
                for p in discovery.problems {
                    skipped.push(SkippedEntry {
                        name: escaped_name(
                            p.path
                                .strip_prefix(&self.root)
                                .unwrap_or(&p.path)
                                .as_os_str(),
                        ),
                        reason: p.reason.clone(),
                    });
                    let text = format!("{}: {}", p.path.display(), p.reason);
                    if self.reported_problems.insert(text) {
                        report.new_problems.push(p);
                    }
                }
                // A run whose directory cannot be named on the wire is never sent: the hub
                // would refuse it. It is reported instead.
                discovery.runs.retain(|l| {
                    let key = self.key_of(&l.dir);
                    match wire_name_problem(&key) {
                        None => true,
                        Some(problem) => {
                            skipped.push(SkippedEntry {
                                name: escaped_name(key.as_ref()),
                                reason: format!(
                                    "the run directory's name cannot be sent to the hub ({problem}); rename the directory"
                                ),
                            });
                            false
                        }
                    }
                });
                skipped.sort_by(|a, b| a.name.cmp(&b.name));
                report.skipped_runs = Some(skipped);
                let found: HashSet<&Path> = discovery
                    .runs
                    .iter()
                    .map(|l| l.dir.strip_prefix(&self.root).unwrap_or(&l.dir))
                    .collect();
                let mut gone: Vec<String> = self
                    .runs
                    .keys()
                    .filter(|k| !found.contains(Path::new(k.as_str())))
                    .map(|k| k.as_str().to_owned())
                    .collect();
                drop(found);
                gone.sort();
                (discovery.runs, gone)
            }
            ScanScope::Dirs(dirs) => {
                let mut locations = Vec::new();
                let mut gone = Vec::new();
                let unique: HashSet<&String> = dirs.iter().collect();
                for key in unique {
                    let Some(run) = self.runs.get(key.as_str()) else {
                        continue;
                    };
                    match RunLocation::from_key(&self.root, key, run.layout) {
                        Some(location) if is_run_dir(&location.dir) => locations.push(location),
                        _ => gone.push(key.clone()),
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
}

/// Whether a directory (not a link) still holds a run's records.
fn is_run_dir(dir: &Path) -> bool {
    std::fs::symlink_metadata(dir).is_ok_and(|m| m.is_dir())
        && ["meta.json", "status.json"]
            .iter()
            .any(|f| std::fs::symlink_metadata(dir.join(f)).is_ok())
}

/// Scans one run: its manifest (a `stat` per file); when nothing changed, that is all. With
/// `reconcile`, the state is computed in any case.
fn scan_one(
    key: &str,
    loc: &RunLocation,
    known: Option<&KnownRun>,
    reconcile: bool,
    reuse_listings: bool,
    ctx: &LivenessContext,
) -> Outcome {
    let previous: &Manifest = match known.map(|k| &k.manifest) {
        None => &NO_MANIFEST,
        Some(RememberedManifest::Whole(m)) => m,
        Some(RememberedManifest::Digest(digest)) => {
            return scan_by_digest(loc, known, digest, reconcile, ctx)
        }
    };
    let manifest = match manifest::walk(&loc.dir, previous, reuse_listings) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Outcome::Gone,
        // An unlistable run is still a run: its records will say why it cannot be read.
        Err(_) => Manifest::default(),
    };
    let cache = known.and_then(|k| k.cache.as_deref());
    if let Some(k) = known.filter(|_| {
        !reconcile
            && previous.files == manifest.files
            && previous.skipped == manifest.skipped
            && previous.skipped_total == manifest.skipped_total
    }) {
        // The common case of a rescan: no file changed. Only a running or stalled run can
        // change (its writer may have died, or stopped stepping), and only its liveness and
        // stall are judged again.
        let unchanged =
            || Outcome::Unchanged((manifest.dirs != previous.dirs).then(|| manifest.dirs.clone()));
        match cache {
            _ if !k.may_crash() => return unchanged(),
            Some(c) if Some(derived_status(loc, c, ctx)) == k.status => return unchanged(),
            _ => {}
        }
    }
    match cache {
        Some(c) => {
            let previous_fp = known.map(|k| k.state_fp).filter(|_| !reconcile);
            Outcome::Scanned(Box::new(finish(
                key,
                loc,
                &manifest,
                Some(c),
                previous_fp,
                ctx,
            )))
        }
        None => Outcome::NeedsCache(Box::new(manifest)),
    }
}

/// Scans a run remembered by its manifest's digest alone: a walk that only `stat`s. The same
/// digest (and, for a live run, the same derived status) means unchanged; anything else needs
/// the whole manifest, read back from the index.
fn scan_by_digest(
    loc: &RunLocation,
    known: Option<&KnownRun>,
    digest: &[u8; 16],
    reconcile: bool,
    ctx: &LivenessContext,
) -> Outcome {
    let manifest = match manifest::walk_unhashed(&loc.dir) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Outcome::Gone,
        Err(_) => return Outcome::NeedsManifest,
    };
    if reconcile || manifest.listing_digest() != *digest {
        return Outcome::NeedsManifest;
    }
    match known {
        Some(k) if !k.may_crash() => Outcome::Unchanged(None),
        Some(k) => match k.cache.as_deref() {
            Some(c) if Some(derived_status(loc, c, ctx)) == k.status => Outcome::Unchanged(None),
            _ => Outcome::NeedsManifest,
        },
        None => Outcome::NeedsManifest,
    }
}

/// Computes a run's state from its manifest and cached records (reading what changed), and
/// its records' values when the state differs from `previous_fp`.
fn finish(
    key: &str,
    loc: &RunLocation,
    manifest: &Manifest,
    cache: Option<&CachedRun>,
    previous_fp: Option<[u8; 16]>,
    ctx: &LivenessContext,
) -> Scanned {
    let files = &manifest.files;
    // Files the manifest lists are regular; any other (absent, a link, a FIFO) is told apart by
    // a `stat` of its own, so that it turning into or out of a regular file is a change.
    let fp = |name: &str| {
        files
            .binary_search_by(|f| f.path.as_str().cmp(name))
            .map_or_else(
                |_| file_fingerprint(&loc.dir.join(name)),
                |i| files[i].fingerprint(),
            )
    };
    let records_fp = format!(
        "m={} s={} d={}",
        fp("meta.json"),
        fp("status.json"),
        fp(".deleted")
    );
    let events_fp = fp("events.jsonl");
    let (mut cache, mut cache_changed) = update_with(loc, cache, records_fp, events_fp);
    let mut head = head_of(key, loc, &cache, files, ctx);
    head.skipped_files = manifest.skipped.clone();
    head.skipped_files_total = manifest.skipped_total;
    cache_changed |= alerts::raise(loc, &mut cache, &head, ctx.now);
    head.alerts = cache.alerts.raised.clone();
    let state_fp = state_fingerprint(&head, files);
    let records =
        (previous_fp != Some(fp_bytes(&state_fp))).then(|| read_records(&loc.dir, manifest));
    Scanned {
        key: key.to_owned(),
        location: loc.clone(),
        cache,
        cache_changed,
        manifest: Manifest {
            files: manifest.files.clone(),
            dirs: manifest.dirs.clone(),
            captured: Vec::new(),
            skipped: manifest.skipped.clone(),
            skipped_total: manifest.skipped_total,
        },
        head,
        state_fp,
        records,
    }
}

/// A run's derived status now, from its cached records.
fn derived_status(loc: &RunLocation, cache: &CachedRun, ctx: &LivenessContext) -> RunStatus {
    build_overview(loc, &cache.records, &cache.progress, ctx).status
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
        assets: None,
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
        skipped_files: vec![],
        skipped_files_total: 0,
        alerts: Vec::new(),
    }
}

/// A fingerprint of everything the hub mirrors of a run. The append-only files count through
/// the head (complete-line size of `events.jsonl`, size of `logs.txt`), so a torn tail does not
/// make a change. A crash or stall reason is left out: "no heartbeat for 35s" and "no new step
/// for 14m 3s" change with every look.
fn state_fingerprint(head: &RunChange, files: &[ManifestFile]) -> String {
    let mut hasher = Sha256::new();
    let mut stable = head.clone();
    if stable.status == RunStatus::Crashed.as_str() || stable.status == RunStatus::Stalled.as_str()
    {
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

#[cfg(test)]
mod tests {
    use super::*;
    use runicorn_protocol::run_format::{RunOutcome, RunSpec, RunWriter};
    use std::fs;
    use std::os::unix::ffi::OsStrExt;

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
                .scan(
                    &self.index,
                    ScanScope::All,
                    &LivenessContext::here_and_now(),
                )
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

    /// Writes `artifacts/model/<name>` with versions `1..=n` (one file each, pooled whole).
    fn write_artifact(root: &Path, name: &str, n: u64, aliases: &[(&str, u64)]) {
        let dir = root.join("artifacts/model").join(name);
        let mut versions = Vec::new();
        for v in 1..=n {
            let bytes = format!("weights {v}");
            let sha = format!("{:x}", Sha256::digest(bytes.as_bytes()));
            let pooled = root.join("artifacts/.pool").join(&sha[..2]).join(&sha);
            fs::create_dir_all(pooled.parent().unwrap()).unwrap();
            fs::write(&pooled, &bytes).unwrap();
            let vdir = dir.join(format!("v{v}"));
            fs::create_dir_all(&vdir).unwrap();
            let manifest = serde_json::json!({"files": [{"path": "w.bin", "size": bytes.len(), "sha256": sha}]});
            fs::write(vdir.join("manifest.json"), manifest.to_string()).unwrap();
            versions.push(serde_json::json!({"version": v, "size": bytes.len(), "files": 1}));
        }
        let aliases: serde_json::Map<String, serde_json::Value> = aliases
            .iter()
            .map(|(a, v)| ((*a).to_owned(), (*v).into()))
            .collect();
        let index = serde_json::json!({"name": name, "type": "model", "versions": versions, "aliases": aliases});
        fs::write(dir.join("versions.json"), index.to_string()).unwrap();
    }

    fn artifacts_of(page: &FeedPage) -> Vec<(&str, Option<usize>)> {
        page.entries
            .iter()
            .filter_map(|e| {
                let a = e.artifact.as_ref()?;
                Some((
                    e.dir.as_str(),
                    match a {
                        ArtifactEntry::Present(a) => Some(a.versions.len()),
                        ArtifactEntry::Removed => None,
                    },
                ))
            })
            .collect()
    }

    #[test]
    fn artifacts_share_the_counter_bump_on_change_and_leave_tombstones() {
        let mut f = Fixture::new();
        f.write_run("a", "finished");
        write_artifact(f.root(), "m", 1, &[("latest", 1)]);
        let first = f.scan();
        assert_eq!((first.bumped, first.counter), (2, 2));
        let page = f.page(0, true);
        assert_eq!(artifacts_of(&page), [("artifacts/model/m", Some(1))]);
        let Some(ArtifactEntry::Present(m)) = &page.entries[1].artifact else {
            panic!("{page:?}");
        };
        assert_eq!((m.seq, m.kind.as_str(), m.name.as_str()), (2, "model", "m"));
        assert_eq!(m.aliases.get("latest"), Some(&1));
        assert_eq!(f.scan().bumped, 0, "an unchanged artifact keeps its value");

        write_artifact(f.root(), "m", 2, &[("latest", 2), ("best", 1)]);
        assert_eq!(f.scan().bumped, 1, "a new version bumps");
        assert_eq!(
            artifacts_of(&f.page(2, true)),
            [("artifacts/model/m", Some(2))]
        );
        write_artifact(f.root(), "m", 2, &[("latest", 2), ("best", 2)]);
        assert_eq!(
            f.feed.scan_artifacts(&f.index).unwrap().0,
            1,
            "a moved alias bumps"
        );

        fs::remove_dir_all(f.root().join("artifacts/model/m")).unwrap();
        assert_eq!(f.scan().bumped, 1);
        assert_eq!(
            artifacts_of(&f.page(4, true)),
            [("artifacts/model/m", None)]
        );
        assert_eq!(
            artifacts_of(&f.page(0, false)),
            [],
            "a listing leaves tombstones out"
        );
        assert_eq!(f.scan().bumped, 0, "a tombstone is written once");
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
        assert_eq!(
            (a.seq, a.id.as_str(), a.status.as_str()),
            (1, "a", "finished")
        );
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
    fn shed_records_and_a_compacted_feed_still_see_every_change() {
        let mut f = Fixture::new();
        let dir = f.write_run("a", "finished");
        f.write_run("b", "running");
        f.scan();
        assert_eq!(f.feed.live_dirs(), ["runs/p/b"]);
        f.feed.shed_idle_runs();
        f.feed.compact();
        assert!(f.feed.runs["runs/p/a"].cache.is_none());
        assert!(
            f.feed.runs["runs/p/b"].cache.is_some(),
            "live runs keep theirs"
        );
        assert!(matches!(
            f.feed.runs["runs/p/a"].manifest,
            RememberedManifest::Digest(_)
        ));
        assert!(matches!(
            f.feed.runs["runs/p/b"].manifest,
            RememberedManifest::Whole(_)
        ));
        assert_eq!(f.scan().bumped, 0, "nothing changed");
        let line = "{\"type\":\"metrics\",\"data\":{\"loss\":1,\"global_step\":1}}\n";
        fs::write(dir.join("events.jsonl"), line).unwrap();
        assert_eq!(f.scan_dirs(&["runs/p/a"]).bumped, 1);
        let state = f.page(2, true).entries[0].state.clone().unwrap();
        assert_eq!(
            state.events.points, 1,
            "the records were read back from the index"
        );
    }

    #[test]
    fn a_run_remembered_by_digest_is_read_back_only_when_it_changes() {
        let mut f = Fixture::new();
        let dir = f.write_run("a", "finished");
        let gone = f.write_run("b", "finished");
        f.scan();
        f.feed.shed_idle_runs();
        let digest = |f: &Fixture| match &f.feed.runs["runs/p/a"].manifest {
            RememberedManifest::Digest(d) => Some(*d),
            RememberedManifest::Whole(_) => None,
        };
        let before = digest(&f).expect("an idle run keeps a digest");
        // Unchanged: the walk only stats, and the stored manifest is not read back.
        assert_eq!(f.scan().bumped, 0);
        assert_eq!(digest(&f), Some(before));
        // A replaced record: read back, scanned with its stored hashes, announced with the new
        // content's hash.
        std::thread::sleep(Duration::from_millis(10));
        fs::write(dir.join("summary.json"), "{\"acc\":0.9}").unwrap();
        fs::remove_dir_all(&gone).unwrap();
        assert_eq!(f.scan().bumped, 2, "one changed run, one tombstone");
        assert!(digest(&f).is_none(), "the whole manifest is back");
        let state = f.page(2, false).entries[0].state.clone().unwrap();
        let summary = state
            .files
            .iter()
            .find(|x| x.path == "summary.json")
            .unwrap();
        let want = manifest::hex(&Sha256::digest(b"{\"acc\":0.9}"));
        assert_eq!(summary.sha256.as_deref(), Some(want.as_str()));
        assert_eq!(
            state.summary,
            Some(serde_json::json!({"acc": 0.9})),
            "its records were read again"
        );
        assert_eq!(dirs(&f.page(0, true)).len(), 2);
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
        assert_eq!(
            f.page(0, true).entries[0].state.as_ref().unwrap().status,
            "running"
        );
        assert_eq!(f.scan().bumped, 0);
        child.kill().unwrap();
        child.wait().unwrap();
        assert_eq!(f.scan().bumped, 1, "no file changed, but the run crashed");
        let state = f.page(1, true).entries[0].state.clone().unwrap();
        assert_eq!(state.status, "crashed");
        assert!(state.reason.unwrap().contains("gone"));
    }

    #[test]
    fn a_run_that_stops_stepping_is_stalled_once_and_running_again_after_a_new_step() {
        let mut f = Fixture::new();
        let mut child = std::process::Command::new("sleep")
            .arg("30")
            .spawn()
            .unwrap();
        let dir = f.root().join("runs/p/slow");
        fs::create_dir_all(&dir).unwrap();
        let host = LivenessContext::here_and_now().hostname;
        fs::write(
            dir.join("meta.json"),
            r#"{"id":"slow","stall":{"factor":5,"after_s":1}}"#,
        )
        .unwrap();
        fs::write(
            dir.join("status.json"),
            format!(
                "{{\"status\":\"running\",\"pid\":{},\"host\":\"{host}\"}}",
                child.id()
            ),
        )
        .unwrap();
        let append_steps = |from: i64, count: i64| {
            let now = runicorn_protocol::run_format::unix_now();
            let text: String = (0..count)
                .map(|i| {
                    let ts = now - (count - 1 - i) as f64 * 0.1;
                    format!(
                        "{{\"ts\":{ts},\"type\":\"metrics\",\"data\":{{\"global_step\":{}}}}}\n",
                        from + i
                    )
                })
                .collect();
            let mut file = fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(dir.join("events.jsonl"))
                .unwrap();
            std::io::Write::write_all(&mut file, text.as_bytes()).unwrap();
        };
        append_steps(1, 5);
        f.scan();
        let status = |f: &Fixture| {
            let page = f.page(0, true);
            let state = page.entries.last().unwrap().state.clone().unwrap();
            (state.status, state.reason)
        };
        assert_eq!(status(&f).0, "running");
        std::thread::sleep(Duration::from_millis(1300));
        assert_eq!(f.scan().bumped, 1, "no file changed, but the run stalled");
        let (st, reason) = status(&f);
        assert_eq!(st, "stalled");
        assert!(reason.unwrap().starts_with("no new step for "));
        std::thread::sleep(Duration::from_millis(100));
        assert_eq!(f.scan().bumped, 0, "a reason that counts up is no change");
        append_steps(6, 1);
        assert_eq!(f.scan().bumped, 1);
        assert_eq!(status(&f).0, "running");
        std::thread::sleep(Duration::from_millis(1300));
        f.scan();
        assert_eq!(status(&f).0, "stalled");
        // A stalled run whose writer dies is crashed.
        child.kill().unwrap();
        child.wait().unwrap();
        assert_eq!(f.scan().bumped, 1);
        assert_eq!(status(&f).0, "crashed");
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
        assert_eq!(
            (state.events.points, state.status.as_str()),
            (2, "finished")
        );
        fs::remove_dir_all(f.root().join(key)).unwrap();
        assert_eq!(f.scan_dirs(&[key]).bumped, 1);
        assert!(f
            .page(0, true)
            .entries
            .iter()
            .any(|e| e.dir == key && e.state.is_none()));
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

    fn mkfifo(path: &Path) {
        let c = std::ffi::CString::new(path.as_os_str().as_encoded_bytes()).unwrap();
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o644) }, 0);
    }

    #[test]
    fn files_and_runs_that_cannot_be_named_are_skipped_with_a_reason() {
        let mut f = Fixture::new();
        let dir = f.write_run("a", "finished");
        fs::write(dir.join("a\\b.txt"), "x").unwrap();
        fs::write(dir.join("bell\u{7}.txt"), "x").unwrap();
        fs::write(dir.join(std::ffi::OsStr::from_bytes(b"bad\xff.txt")), "x").unwrap();
        mkfifo(&dir.join("pipe"));
        let bad_run = f.write_run("x\\y", "finished");
        let report = f.scan();
        let skipped_runs = report.skipped_runs.unwrap();
        assert_eq!(skipped_runs.len(), 1, "{skipped_runs:?}");
        assert_eq!(skipped_runs[0].name, "runs/p/x\\\\y");
        assert!(skipped_runs[0].reason.contains("backslash"));
        let page = f.page(0, true);
        assert_eq!(
            dirs(&page),
            [("runs/p/a", true)],
            "the bad run is not in the feed"
        );
        let a = page.entries[0].state.clone().unwrap();
        assert_eq!(a.status, "finished");
        assert_eq!(a.skipped_files_total, 4);
        let names: Vec<&str> = a.skipped_files.iter().map(|e| e.name.as_str()).collect();
        assert_eq!(
            names,
            ["a\\\\b.txt", "bad\u{fffd}.txt", "bell\\u{7}.txt", "pipe"]
        );
        assert!(a.skipped_files[3].reason.contains("a FIFO"));
        for file in &a.files {
            assert!(runicorn_protocol::wire::check_wire_path(&file.path).is_ok());
        }
        assert_eq!(a.files.len(), 2, "meta.json and status.json");
        assert_eq!(f.scan().bumped, 0, "skipped entries are stable");
        // Removing the odd files is a change.
        fs::remove_file(dir.join("pipe")).unwrap();
        assert_eq!(f.scan().bumped, 1);
        let a = f.page(1, true).entries[0].state.clone().unwrap();
        assert_eq!(a.skipped_files_total, 3);
        fs::remove_dir_all(bad_run).unwrap();
        assert_eq!(f.scan().skipped_runs.unwrap(), vec![]);
    }

    #[test]
    fn a_fifo_meta_is_unreadable_and_a_fixed_one_readable_again() {
        let mut f = Fixture::new();
        let dir = f.write_run("a", "finished");
        fs::remove_file(dir.join("meta.json")).unwrap();
        mkfifo(&dir.join("meta.json"));
        f.scan();
        let a = f.page(0, true).entries[0].state.clone().unwrap();
        assert_eq!(a.status, "unreadable");
        assert!(a.reason.unwrap().contains("meta.json is a FIFO"));
        fs::remove_file(dir.join("meta.json")).unwrap();
        fs::write(dir.join("meta.json"), "{\"id\":\"a\"}").unwrap();
        assert_eq!(f.scan().bumped, 1);
        let a = f.page(1, true).entries[0].state.clone().unwrap();
        assert_eq!((a.status.as_str(), a.reason), ("finished", None));
    }

    #[test]
    fn deep_records_are_stored_and_read_back_and_fit_a_frame() {
        let mut f = Fixture::new();
        let dir = f.write_run("a", "finished");
        let deep = format!("{}1{}", "[".repeat(126), "]".repeat(126));
        fs::write(dir.join("summary.json"), format!("{{\"x\":{deep}}}")).unwrap();
        f.scan();
        // A new process reads the stored state back.
        let a = f.page(0, true).entries[0].state.clone().unwrap();
        let summary = serde_json::to_string(a.summary.as_ref().unwrap()).unwrap();
        assert!(summary.contains("<cut: nested deeper than 64 levels>"));
        let envelope = runicorn_protocol::wire::Envelope {
            id: 1,
            body: runicorn_protocol::wire::Body::ChangeBatch(
                runicorn_protocol::wire::ChangeBatch {
                    reset: true,
                    runs: vec![a],
                    removed: vec![],
                    cursor: runicorn_protocol::wire::Cursor {
                        epoch: "e".into(),
                        seq: 1,
                    },
                    more: false,
                    skipped: vec![],
                    skipped_listed: false,
                    artifacts: vec![],
                    removed_artifacts: vec![],
                },
            ),
        };
        let text = serde_json::to_string(&envelope).unwrap();
        let back: runicorn_protocol::wire::Envelope = serde_json::from_str(&text).unwrap();
        assert_eq!(back, envelope);
    }
}
