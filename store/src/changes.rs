//! Applying the agent's change feed: one [`ChangeBatch`] is one transaction that upserts every
//! listed run with its whole state and file manifest, marks removed run directories, and stores
//! the new cursor, so a sync that dies half-way resumes exactly where the store says.
//!
//! Full listings (`reset`): the first batch opens a listing for the cursor's epoch (persisted
//! with the cursor); every run listed while it is open is marked seen in that epoch; the batch
//! with `more == false` closes it and marks the remote's runs not seen as removed. A listing cut
//! short by a dropped connection resumes with incremental batches from the stored cursor (same
//! epoch) and closes the same way. Removed runs keep all their data: the user keeps the runs of
//! a server that is gone.
//!
//! Nothing here trusts the peer: every path is checked before it is written. One bad item is
//! the run's problem, not the remote's: a run whose directory breaks the path rule is left out
//! and recorded as skipped with the reason, a file entry that breaks it is left out of its
//! run's manifest and counted; the rest of the batch is stored and the cursor moves on. The
//! agent's own `skipped` lists (runs and files it could not name) are stored the same way
//! (`skipped.rs`). A record nested deeper than [`MAX_RECORD_DEPTH`] is stored as a placeholder.

use std::borrow::Cow;
use std::collections::{HashMap, HashSet};

use rusqlite::{params, Connection, OptionalExtension};

use runicorn_protocol::wire::{check_wire_path, ChangeBatch, FileEntry, RunChange, SkippedEntry};

use crate::artifacts;
use crate::error::{SqliteContext, StoreError};
use crate::file_cache::is_sha256_hex;
use crate::ids::{RemoteId, RunKey};
use crate::run_values::{RunValueRows, SOURCE_CONFIG, SOURCE_SUMMARY};
use crate::skipped::{self, bounded, SkippedFiles, KIND_RUN, MAX_FILES_LISTED};
use crate::sql::{to_sql_int, unix_now};
use crate::store::Store;

/// What one change batch did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ChangeOutcome {
    /// Runs inserted or updated.
    pub runs: u64,
    /// Runs newly marked removed (listed in `removed`, or not seen by a completed listing).
    pub removed: u64,
    /// This batch began a full listing.
    pub reset_started: bool,
    /// This batch completed a full listing.
    pub reset_finished: bool,
    /// Runs of the batch the store refused (their directory breaks the path rule).
    pub refused_runs: u64,
    /// File entries the store refused (left out of their run's manifest).
    pub refused_files: u64,
    /// Runs left out because the user deleted them for good from the hub's recycle bin.
    pub purged: u64,
    /// Artifacts inserted or updated.
    pub artifacts: u64,
    /// Artifacts newly marked removed (listed in `removed_artifacts`, or not seen by a
    /// completed listing).
    pub removed_artifacts: u64,
    /// Alerts stored for the first time by this batch and raised within the last day (their ids
    /// in the `alerts` table): the ones to notify about. An alert that arrives again is never
    /// here twice.
    pub new_alerts: Vec<i64>,
}

/// Deepest nesting of a record value the store keeps: the same limit agents cut records to when
/// they read them (`record_depth` in the protocol). A deeper one that arrives anyway (an older
/// or foreign agent) is stored as a placeholder string, and the run with it.
pub use runicorn_protocol::run_format::record_depth::MAX_RECORD_DEPTH;

/// What the store refuses of one change batch, item by item: the rest is stored.
#[derive(Default)]
struct Screened {
    /// Runs (by index in `batch.runs`) whose directory breaks the path rule, with the reason.
    runs: HashMap<usize, String>,
    /// Per run index: the files (by index in its `files`) refused, with the reasons.
    files: HashMap<usize, Vec<(usize, String)>>,
    /// `removed` entries (by index) that break the path rule.
    removed: HashSet<usize>,
}

/// Checks every path and hash of a batch: a path that could name a place outside the remote's
/// root, or a hash that could name one outside the file cache, refuses its item only.
fn screen(batch: &ChangeBatch) -> Screened {
    let mut out = Screened::default();
    for (i, dir) in batch.removed.iter().enumerate() {
        if check_wire_path(dir).is_err() {
            out.removed.insert(i);
        }
    }
    for (i, run) in batch.runs.iter().enumerate() {
        if let Err(reason) = check_wire_path(&run.dir) {
            out.runs
                .insert(i, format!("refused by the hub: run directory {reason}"));
            continue;
        }
        for (j, file) in run.files.iter().enumerate() {
            let refused = match (check_wire_path(&file.path), &file.sha256) {
                (Err(reason), _) => format!("refused by the hub: {reason}"),
                (Ok(()), Some(sha)) if !is_sha256_hex(sha) => {
                    format!("refused by the hub: malformed sha256 {:?}", bounded(sha))
                }
                _ => continue,
            };
            out.files.entry(i).or_default().push((j, refused));
        }
    }
    out
}

/// How deeply `value` nests (a scalar is 0, `[]` and `{}` are 1), counting no further than
/// `limit + 1`; without recursion, so no value can exhaust the stack.
fn depth_beyond(value: &serde_json::Value, limit: usize) -> bool {
    let mut stack: Vec<(&serde_json::Value, usize)> = vec![(value, 0)];
    while let Some((v, depth)) = stack.pop() {
        let children: Box<dyn Iterator<Item = &serde_json::Value>> = match v {
            serde_json::Value::Array(items) => Box::new(items.iter()),
            serde_json::Value::Object(map) => Box::new(map.values()),
            _ => continue,
        };
        if depth + 1 > limit {
            return true;
        }
        stack.extend(children.map(|c| (c, depth + 1)));
    }
    false
}

/// A record as stored: its JSON text, or a placeholder string when it nests deeper than
/// [`MAX_RECORD_DEPTH`].
fn record_text(v: &Option<serde_json::Value>, what: &str) -> Option<String> {
    v.as_ref().map(|v| {
        if depth_beyond(v, MAX_RECORD_DEPTH) {
            serde_json::Value::String(format!(
                "<runicorn: {what} not stored: nested deeper than {MAX_RECORD_DEPTH} levels>"
            ))
            .to_string()
        } else {
            v.to_string()
        }
    })
}

/// The files of a run the store keeps, and the ones left out (the agent's and the hub's).
fn kept_files<'r>(
    run: &'r RunChange,
    refused: Option<&Vec<(usize, String)>>,
) -> (Cow<'r, [FileEntry]>, SkippedFiles) {
    let mut skipped = SkippedFiles {
        total: run.skipped_files_total.max(run.skipped_files.len() as u64),
        listed: run
            .skipped_files
            .iter()
            .take(MAX_FILES_LISTED)
            .map(|e| SkippedEntry {
                name: bounded(&e.name).to_owned(),
                reason: bounded(&e.reason).to_owned(),
            })
            .collect(),
    };
    let Some(refused) = refused else {
        return (Cow::Borrowed(&run.files), skipped);
    };
    let out: HashSet<usize> = refused.iter().map(|(j, _)| *j).collect();
    for (j, reason) in refused {
        skipped.total += 1;
        if skipped.listed.len() < MAX_FILES_LISTED {
            skipped.listed.push(SkippedEntry {
                name: bounded(&run.files[*j].path).to_owned(),
                reason: reason.clone(),
            });
        }
    }
    let files = run
        .files
        .iter()
        .enumerate()
        .filter(|(j, _)| !out.contains(j))
        .map(|(_, f)| f.clone())
        .collect();
    (Cow::Owned(files), skipped)
}

impl Store {
    /// Applies one batch of `remote`'s change feed in one transaction (see the module doc).
    /// Applying the same batch twice leaves the same rows.
    pub fn apply_change_batch(
        &mut self,
        remote: RemoteId,
        batch: &ChangeBatch,
    ) -> Result<ChangeOutcome, StoreError> {
        let name = self.remote_name(remote)?;
        let screened = screen(batch);
        let p = self.db_path.clone();
        let now = unix_now();
        let tx = self.write_tx().at(&p)?;
        let (reset_epoch, reset_open): (Option<String>, bool) = tx
            .query_row(
                "SELECT reset_epoch, reset_open FROM remotes WHERE id = ?1",
                [remote.0],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .at(&p)?;
        let epoch = &batch.cursor.epoch;
        let mut out = ChangeOutcome::default();

        // A listing already open for this epoch continues (the agent began it again, or this
        // batch is applied a second time); any other reset starts afresh.
        let continues = reset_open && reset_epoch.as_deref() == Some(epoch.as_str());
        if batch.reset && !continues {
            tx.execute(
                "UPDATE runs SET seen_epoch = NULL WHERE remote = ?1 AND seen_epoch IS NOT NULL",
                [remote.0],
            )
            .at(&p)?;
            out.reset_started = true;
            skipped::clear(&tx, remote, KIND_RUN, None).at(&p)?;
            skipped::clear(&tx, remote, skipped::KIND_ARTIFACT, None).at(&p)?;
            artifacts::begin_listing(&tx, remote).at(&p)?;
        }
        // The agent lists what it could not send whenever that set changes: the new set
        // replaces the old (an empty one too, when the agent says it is its whole list).
        if batch.skipped_listed || !batch.skipped.is_empty() {
            skipped::clear(&tx, remote, KIND_RUN, Some(false)).at(&p)?;
            skipped::record(&tx, remote, KIND_RUN, &batch.skipped, false, now).at(&p)?;
        }
        let open = batch.reset || reset_open;
        let listing_epoch = if batch.reset {
            Some(epoch.as_str())
        } else {
            reset_epoch.as_deref()
        };
        let seen = if open { listing_epoch } else { None };

        for (i, dir) in batch.removed.iter().enumerate() {
            if screened.removed.contains(&i) {
                // A directory that cannot be named was never stored: at most a skipped entry
                // of it goes.
                tx.execute(
                    "DELETE FROM skipped WHERE remote = ?1 AND kind = ?2 AND name = ?3",
                    params![remote.0, KIND_RUN, bounded(dir)],
                )
                .at(&p)?;
                continue;
            }
            out.removed += tx
                .execute(
                    "UPDATE runs SET removed = 1, removed_at = coalesce(removed_at, ?3)
                     WHERE remote = ?1 AND dir = ?2 AND removed = 0",
                    params![remote.0, dir, now],
                )
                .at(&p)? as u64;
        }
        // A run listed in the same batch as removed is present: its state is the newer news.
        let all = vec![true; batch.runs.len()];
        store_runs(
            &tx, remote, &name, batch, &all, &screened, seen, now, &mut out,
        )
        .at(&p)?;
        let applied =
            artifacts::apply(&tx, remote, &batch.artifacts, &batch.removed_artifacts).at(&p)?;
        out.artifacts = applied.artifacts;
        out.removed_artifacts = applied.removed;

        let still_open = open && batch.more;
        if open && !batch.more {
            out.removed += tx
                .execute(
                    "UPDATE runs SET removed = 1, removed_at = coalesce(removed_at, ?2)
                     WHERE remote = ?1 AND removed = 0 AND seen_epoch IS NOT ?3",
                    params![remote.0, now, listing_epoch],
                )
                .at(&p)? as u64;
            out.removed_artifacts += artifacts::end_listing(&tx, remote).at(&p)?;
            out.reset_finished = true;
        }
        tx.execute(
            "UPDATE remotes SET cursor_epoch = ?2, cursor_seq = ?3, reset_epoch = ?4,
                reset_open = ?5 WHERE id = ?1",
            params![
                remote.0,
                epoch,
                to_sql_int(batch.cursor.seq),
                listing_epoch,
                still_open
            ],
        )
        .at(&p)?;
        tx.commit().at(&p)?;
        Ok(out)
    }
}

/// Stores the runs of `batch` whose `take` flag is set, and its artifacts, as a merge: no
/// cursor, no full-listing bookkeeping, nothing marked removed, the remote's lists of what it
/// could not send left alone (an import, `imports.rs`). One write step.
pub(crate) fn apply_merge(
    store: &mut Store,
    remote: RemoteId,
    batch: &ChangeBatch,
    take: &[bool],
) -> Result<ChangeOutcome, StoreError> {
    let name = store.remote_name(remote)?;
    let screened = screen(batch);
    let p = store.db_path.clone();
    let now = unix_now();
    let tx = store.write_tx().at(&p)?;
    let mut out = ChangeOutcome::default();
    store_runs(
        &tx, remote, &name, batch, take, &screened, None, now, &mut out,
    )
    .at(&p)?;
    out.artifacts = artifacts::apply_merged(&tx, remote, &batch.artifacts).at(&p)?;
    tx.commit().at(&p)?;
    Ok(out)
}

/// Upserts the runs of `batch` whose `take` flag is set, with their manifests and derived
/// values; refused runs are recorded as skipped. Counts into `out`.
#[allow(clippy::too_many_arguments)] // the pieces of one batch being stored
fn store_runs(
    tx: &Connection,
    remote: RemoteId,
    name: &str,
    batch: &ChangeBatch,
    take: &[bool],
    screened: &Screened,
    seen: Option<&str>,
    now: f64,
    out: &mut ChangeOutcome,
) -> rusqlite::Result<()> {
    let mut values = RunValueRows::default();
    let mut refused_runs = Vec::new();
    for (i, run) in batch.runs.iter().enumerate() {
        if !take.get(i).copied().unwrap_or(false) {
            continue;
        }
        if let Some(reason) = screened.runs.get(&i) {
            tracing::warn!(
                remote = name,
                dir = run.dir,
                reason,
                "run refused; the rest is stored"
            );
            refused_runs.push(SkippedEntry {
                name: run.dir.clone(),
                reason: reason.clone(),
            });
            continue;
        }
        if crate::purge::is_purged(tx, remote.0, &run.dir)? {
            // Deleted for good from the hub's recycle bin: its server's copy stays there.
            out.purged += 1;
            continue;
        }
        let refused_files = screened.files.get(&i);
        out.refused_files += refused_files.map_or(0, |r| r.len() as u64);
        let (files, skipped_files) = kept_files(run, refused_files);
        let records = SortedRecords::of(run);
        let before = sorted_records_of(tx, remote, &run.dir)?;
        let id = upsert_run(tx, remote, run, &records, &skipped_files, seen, now)?;
        records.changes(&mut values, id, before.as_ref());
        sync_manifest(tx, id, &files)?;
        out.new_alerts
            .extend(crate::alerts::insert_new(tx, remote, id, &run.alerts, now)?);
        out.runs += 1;
    }
    out.refused_runs = refused_runs.len() as u64;
    skipped::record(tx, remote, KIND_RUN, &refused_runs, true, now)?;
    values.write(tx)
}

impl Store {
    /// Deletes everything the store holds of one run (the user's choice; the remote is not
    /// touched). A run still on its remote comes back with its next change, from scratch.
    /// Returns whether the run existed.
    pub fn forget_run(&mut self, run: RunKey) -> Result<bool, StoreError> {
        let p = self.db_path.clone();
        let tx = self.write_tx().at(&p)?;
        let existed = crate::purge::delete_run_rows(&tx, run.0).at(&p)?;
        tx.commit().at(&p)?;
        Ok(existed)
    }
}

/// A run's summary and config as stored (JSON text): what `run_values` is derived from.
#[derive(PartialEq)]
struct SortedRecords {
    summary: Option<String>,
    config: Option<String>,
}

impl SortedRecords {
    fn of(run: &RunChange) -> SortedRecords {
        SortedRecords {
            summary: record_text(&run.summary, "summary"),
            config: record_text(&run.config, "config"),
        }
    }

    /// Queues new `run_values` rows for whichever of summary and config differ from `before`
    /// (a live run is listed again at every flush, mostly unchanged).
    fn changes(&self, values: &mut RunValueRows, run: i64, before: Option<&SortedRecords>) {
        for (source, now, was) in [
            (SOURCE_SUMMARY, &self.summary, before.map(|b| &b.summary)),
            (SOURCE_CONFIG, &self.config, before.map(|b| &b.config)),
        ] {
            if was == Some(now) || (was.is_none() && now.is_none()) {
                continue;
            }
            let value = now
                .as_deref()
                .and_then(|t| serde_json::from_str::<serde_json::Value>(t).ok());
            values.replace(run, source, value.as_ref(), before.is_some());
        }
    }
}

/// The stored summary and config of a run, if the store knows it.
fn sorted_records_of(
    tx: &Connection,
    remote: RemoteId,
    dir: &str,
) -> rusqlite::Result<Option<SortedRecords>> {
    tx.prepare_cached("SELECT summary, config FROM runs WHERE remote = ?1 AND dir = ?2")?
        .query_row(params![remote.0, dir], |r| {
            Ok(SortedRecords {
                summary: r.get(0)?,
                config: r.get(1)?,
            })
        })
        .optional()
}

/// Inserts or updates one run with its whole reported state; returns its id. The hub's own
/// columns (annotations, recycle bin) are left as they are.
fn upsert_run(
    tx: &Connection,
    remote: RemoteId,
    run: &RunChange,
    records: &SortedRecords,
    skipped_files: &SkippedFiles,
    seen: Option<&str>,
    now: f64,
) -> rusqlite::Result<i64> {
    let ev = &run.events;
    let tags = serde_json::Value::from(run.tags.clone()).to_string();
    let keys = serde_json::Value::from(ev.keys.clone()).to_string();
    let mut stmt = tx.prepare_cached(
        "INSERT INTO runs(remote, dir, seq, run_id, path, layout, alias, tags, status, reason,
            created_at, ended_at, hostname, deleted, meta, status_record, summary, config,
            environment, events_bytes, events_lines, events_points, events_keys,
            events_last_step, events_last_event_at, events_corrupt_lines, log_bytes,
            seen_epoch, first_seen_at, skipped_files, skipped_files_list, assets)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18,
            ?19, ?20, ?21, ?22, ?23, ?24, ?25, ?26, ?27, ?28, ?29, ?30, ?31, ?32)
         ON CONFLICT(remote, dir) DO UPDATE SET seq = excluded.seq, run_id = excluded.run_id,
            path = excluded.path, layout = excluded.layout, alias = excluded.alias,
            tags = excluded.tags, status = excluded.status, reason = excluded.reason,
            created_at = excluded.created_at, ended_at = excluded.ended_at,
            hostname = excluded.hostname, deleted = excluded.deleted, meta = excluded.meta,
            status_record = excluded.status_record, summary = excluded.summary,
            config = excluded.config, environment = excluded.environment,
            events_bytes = excluded.events_bytes, events_lines = excluded.events_lines,
            events_points = excluded.events_points, events_keys = excluded.events_keys,
            events_last_step = excluded.events_last_step,
            events_last_event_at = excluded.events_last_event_at,
            events_corrupt_lines = excluded.events_corrupt_lines,
            log_bytes = excluded.log_bytes, removed = 0, removed_at = NULL,
            seen_epoch = coalesce(excluded.seen_epoch, runs.seen_epoch),
            skipped_files = excluded.skipped_files,
            skipped_files_list = excluded.skipped_files_list, assets = excluded.assets
         RETURNING id",
    )?;
    stmt.query_row(
        params![
            remote.0,
            run.dir,
            to_sql_int(run.seq),
            run.id,
            run.path,
            run.layout,
            run.alias,
            tags,
            run.status,
            run.reason,
            run.created_at,
            run.ended_at,
            run.hostname,
            run.deleted,
            record_text(&run.meta, "meta.json"),
            record_text(&run.status_record, "status.json"),
            records.summary,
            records.config,
            record_text(&run.environment, "environment.json"),
            to_sql_int(ev.bytes),
            to_sql_int(ev.lines),
            to_sql_int(ev.points),
            keys,
            ev.last_step,
            ev.last_event_at,
            to_sql_int(ev.corrupt_lines),
            to_sql_int(run.log_bytes),
            seen,
            now,
            to_sql_int(skipped_files.total),
            (!skipped_files.listed.is_empty())
                .then(|| serde_json::to_string(&skipped_files.listed).ok())
                .flatten(),
            record_text(&run.assets, "assets.json"),
        ],
        |r| r.get(0),
    )
}

/// Makes the run's stored manifest equal to `files`, writing only rows that changed (a live
/// run is listed again at every flush; its thousand media files should cost nothing).
fn sync_manifest(tx: &Connection, run: i64, files: &[FileEntry]) -> rusqlite::Result<()> {
    type Known = (i64, f64, Option<String>);
    let mut known: HashMap<String, Known> = HashMap::new();
    {
        let mut stmt =
            tx.prepare_cached("SELECT path, size, mtime, sha256 FROM files WHERE run = ?1")?;
        let rows = stmt.query_map([run], |r| {
            Ok((r.get(0)?, (r.get(1)?, r.get(2)?, r.get(3)?)))
        })?;
        for row in rows {
            let (path, k): (String, Known) = row?;
            known.insert(path, k);
        }
    }
    let mut listed: HashSet<&str> = HashSet::with_capacity(files.len());
    let mut upsert = tx.prepare_cached(
        "INSERT INTO files(run, path, size, mtime, sha256) VALUES (?1, ?2, ?3, ?4, ?5)
         ON CONFLICT(run, path) DO UPDATE SET size = excluded.size, mtime = excluded.mtime,
            sha256 = excluded.sha256,
            cached_sha256 = CASE WHEN files.size = excluded.size AND files.mtime = excluded.mtime
                AND (excluded.sha256 IS NULL OR excluded.sha256 IS files.cached_sha256)
                THEN files.cached_sha256 END",
    )?;
    for f in files {
        listed.insert(&f.path);
        let size = to_sql_int(f.size);
        let same = known.get(&f.path).is_some_and(|(s, m, h)| {
            *s == size && m.to_bits() == f.mtime.to_bits() && *h == f.sha256
        });
        if !same {
            upsert.execute(params![run, f.path, size, f.mtime, f.sha256])?;
        }
    }
    let mut delete = tx.prepare_cached("DELETE FROM files WHERE run = ?1 AND path = ?2")?;
    for path in known.keys() {
        if !listed.contains(path.as_str()) {
            delete.execute(params![run, path])?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use crate::testkit::*;
    use crate::*;
    use runicorn_protocol::wire::SkippedEntry;

    fn present(store: &Store) -> Vec<(String, bool)> {
        let mut runs: Vec<_> = store
            .list_runs(&RunFilter {
                include_removed: true,
                ..RunFilter::default()
            })
            .unwrap()
            .into_iter()
            .map(|r| (r.dir, r.removed))
            .collect();
        runs.sort();
        runs
    }

    #[test]
    fn the_same_change_batch_twice_leaves_the_same_rows() {
        let (_tmp, mut store) = fresh_store();
        let r = add_remote(&mut store, "gpu");
        let mut a = run_change("runs/a/1", 1, 100);
        a.files.push(file_entry("media/x.png", 10, Some(SHA_A)));
        let b = run_change("runs/b/1", 2, 0);
        store
            .apply_change_batch(r, &change_batch(true, vec![a.clone(), b], "e1", 2, false))
            .unwrap();
        let batch = change_batch(false, vec![run_change("runs/c/1", 3, 5), a], "e1", 4, false);
        let mut batch = batch;
        batch.removed.push("runs/b/1".into());
        store.apply_change_batch(r, &batch).unwrap();
        let once = dump(&store);
        let outcome = store.apply_change_batch(r, &batch).unwrap();
        assert_eq!(outcome.removed, 0);
        assert_eq!(dump(&store), once);
        assert_eq!(
            present(&store),
            [
                ("runs/a/1".into(), false),
                ("runs/b/1".into(), true),
                ("runs/c/1".into(), false)
            ]
        );
        assert_eq!(store.cursor(r).unwrap().unwrap().seq, 4);
    }

    #[test]
    fn a_single_batch_reset_applied_twice_leaves_the_same_rows() {
        let (_tmp, mut store) = fresh_store();
        let r = add_remote(&mut store, "gpu");
        store
            .apply_change_batch(
                r,
                &change_batch(true, vec![run_change("runs/old/1", 1, 0)], "e1", 1, false),
            )
            .unwrap();
        let batch = change_batch(true, vec![run_change("runs/a/1", 1, 10)], "e2", 1, false);
        store.apply_change_batch(r, &batch).unwrap();
        let once = dump(&store);
        store.apply_change_batch(r, &batch).unwrap();
        assert_eq!(dump(&store), once);
    }

    #[test]
    fn a_reset_marks_runs_not_listed_as_removed_and_keeps_their_data() {
        let (_tmp, mut store) = fresh_store();
        let r = add_remote(&mut store, "gpu");
        let runs = vec![run_change("runs/a/1", 1, 60), run_change("runs/b/1", 2, 60)];
        store
            .apply_change_batch(r, &change_batch(true, runs, "e1", 2, false))
            .unwrap();
        store
            .ingest_points(r, &point_batch("runs/b/1", 0, 60, 0..6))
            .unwrap();

        // The agent's index was rebuilt: a new epoch lists every run, over two batches.
        let first = change_batch(true, vec![run_change("runs/a/1", 1, 60)], "e2", 1, true);
        let outcome = store.apply_change_batch(r, &first).unwrap();
        assert!(outcome.reset_started && !outcome.reset_finished);
        assert!(store.remote("gpu").unwrap().unwrap().reset_in_progress);
        // Nothing is removed before the listing is complete.
        assert_eq!(
            present(&store),
            [("runs/a/1".into(), false), ("runs/b/1".into(), false)]
        );
        let last = change_batch(false, vec![run_change("runs/c/1", 2, 0)], "e2", 2, false);
        let outcome = store.apply_change_batch(r, &last).unwrap();
        assert!(outcome.reset_finished);
        assert_eq!(outcome.removed, 1);
        assert_eq!(
            present(&store),
            [
                ("runs/a/1".into(), false),
                ("runs/b/1".into(), true),
                ("runs/c/1".into(), false)
            ]
        );
        assert!(!store.remote("gpu").unwrap().unwrap().reset_in_progress);
        // The removed run keeps its points, and is listed only on request.
        let b = store.run(r, "runs/b/1").unwrap().unwrap();
        assert!(b.removed && b.removed_at.is_some());
        assert_eq!(store.points(b.key, "k0").unwrap().len(), 6);
        assert_eq!(store.list_runs(&RunFilter::default()).unwrap().len(), 2);
        // Nothing of a removed run is pending.
        assert!(store
            .pending_points(r, 10)
            .unwrap()
            .iter()
            .all(|w| w.dir != "runs/b/1"));
        // A later listing that names it again brings it back.
        let back = change_batch(false, vec![run_change("runs/b/1", 3, 60)], "e2", 3, false);
        store.apply_change_batch(r, &back).unwrap();
        assert!(!store.run(r, "runs/b/1").unwrap().unwrap().removed);
    }

    #[test]
    fn an_interrupted_reset_resumes_incrementally_and_still_ends_correctly() {
        let (_tmp, mut store) = fresh_store();
        let r = add_remote(&mut store, "gpu");
        let all: Vec<_> = (0..4)
            .map(|i| run_change(&format!("runs/r/{i}"), i, 0))
            .collect();
        store
            .apply_change_batch(r, &change_batch(true, all, "e1", 4, false))
            .unwrap();

        // New epoch; the first batch arrives, then the connection drops.
        store
            .apply_change_batch(
                r,
                &change_batch(true, vec![run_change("runs/r/0", 1, 0)], "e2", 1, true),
            )
            .unwrap();
        // The store is reopened as after a restart of the hub.
        let dir = store.dir().to_owned();
        drop(store);
        let mut store = Store::open(&dir).unwrap();
        let cursor = store.cursor(r).unwrap().unwrap();
        assert_eq!((cursor.epoch.as_str(), cursor.seq), ("e2", 1));
        // The agent continues the same epoch's feed incrementally from the cursor.
        store
            .apply_change_batch(
                r,
                &change_batch(false, vec![run_change("runs/r/1", 2, 0)], "e2", 2, true),
            )
            .unwrap();
        let outcome = store
            .apply_change_batch(
                r,
                &change_batch(false, vec![run_change("runs/r/2", 3, 0)], "e2", 3, false),
            )
            .unwrap();
        assert!(outcome.reset_finished);
        assert_eq!(outcome.removed, 1);
        let removed: Vec<_> = present(&store)
            .into_iter()
            .filter(|(_, gone)| *gone)
            .collect();
        assert_eq!(removed, [("runs/r/3".into(), true)]);

        // Later incremental batches in the same epoch remove nothing by absence.
        let outcome = store
            .apply_change_batch(
                r,
                &change_batch(false, vec![run_change("runs/r/0", 4, 0)], "e2", 4, false),
            )
            .unwrap();
        assert_eq!(
            outcome,
            ChangeOutcome {
                runs: 1,
                ..ChangeOutcome::default()
            }
        );
    }

    #[test]
    fn a_new_reset_during_an_open_one_starts_afresh() {
        let (_tmp, mut store) = fresh_store();
        let r = add_remote(&mut store, "gpu");
        let two = vec![run_change("runs/a/1", 1, 0), run_change("runs/b/1", 2, 0)];
        store
            .apply_change_batch(r, &change_batch(true, two, "e1", 2, true))
            .unwrap();
        // The agent's epoch changed again before the listing ended: b was seen in e1 only.
        store
            .apply_change_batch(
                r,
                &change_batch(true, vec![run_change("runs/a/1", 1, 0)], "e2", 1, false),
            )
            .unwrap();
        assert_eq!(
            present(&store),
            [("runs/a/1".into(), false), ("runs/b/1".into(), true)]
        );
    }

    #[test]
    fn a_bad_path_refuses_only_its_item_and_the_rest_is_stored() {
        let (_tmp, mut store) = fresh_store();
        let r = add_remote(&mut store, "gpu");
        store
            .apply_change_batch(
                r,
                &change_batch(true, vec![run_change("runs/a/1", 1, 0)], "e1", 1, false),
            )
            .unwrap();
        let mut files = run_change("runs/b/1", 2, 0);
        files
            .files
            .push(file_entry("../../../.ssh/authorized_keys", 1, None));
        files.files.push(file_entry("a\\b.txt", 1, None));
        files.files.push(file_entry("x", 1, Some("../../etc")));
        files.files.push(file_entry("ok.txt", 1, None));
        let mut batch = change_batch(
            false,
            vec![
                run_change("runs/ok/1", 2, 0),
                run_change("runs/../x", 3, 0),
                run_change("runs/x\\y/1", 4, 0),
                files,
            ],
            "e1",
            5,
            false,
        );
        batch.removed.push("/etc".into());
        let outcome = store.apply_change_batch(r, &batch).unwrap();
        assert_eq!(
            (outcome.runs, outcome.refused_runs, outcome.refused_files),
            (2, 2, 3)
        );
        assert_eq!(
            store.cursor(r).unwrap().unwrap().seq,
            5,
            "the cursor moves on"
        );
        assert_eq!(
            present(&store),
            [
                ("runs/a/1".into(), false),
                ("runs/b/1".into(), false),
                ("runs/ok/1".into(), false)
            ]
        );
        let b = store.run(r, "runs/b/1").unwrap().unwrap();
        let kept: Vec<_> = store
            .files(b.key)
            .unwrap()
            .into_iter()
            .map(|f| f.path)
            .collect();
        assert_eq!(kept, ["meta.json", "ok.txt"]);
        let skipped = store.skipped_files(b.key).unwrap();
        assert_eq!(skipped.total, 3);
        assert!(skipped
            .listed
            .iter()
            .any(|e| e.name == "a\\b.txt" && e.reason.contains("backslash")));
        let remote = store.remote("gpu").unwrap().unwrap();
        assert_eq!((remote.skipped_items, remote.skipped_files), (2, 3));
        assert!(remote.skipped.iter().all(|s| s.by_hub && s.kind == "run"));
        assert!(remote
            .skipped
            .iter()
            .any(|s| s.name == "runs/../x" && s.reason.contains("..")));
        assert!(remote
            .skipped_warning()
            .unwrap()
            .contains("2 items and 3 files"));
        // The same batch twice leaves the same rows.
        let once = dump(&store);
        store.apply_change_batch(r, &batch).unwrap();
        assert_eq!(dump(&store), once);
        // A later state of the run without bad files clears its count.
        store
            .apply_change_batch(
                r,
                &change_batch(false, vec![run_change("runs/b/1", 6, 0)], "e1", 6, false),
            )
            .unwrap();
        assert_eq!(store.skipped_files(b.key).unwrap(), SkippedFiles::default());
    }

    #[test]
    fn the_agents_skipped_lists_are_stored_and_replaced() {
        let (_tmp, mut store) = fresh_store();
        let r = add_remote(&mut store, "gpu");
        let entry = |name: &str| SkippedEntry {
            name: name.into(),
            reason: "cannot be named on the wire".into(),
        };
        let mut run = run_change("runs/a/1", 1, 0);
        run.skipped_files = vec![entry("bad\\name.png")];
        run.skipped_files_total = 250;
        let mut batch = change_batch(true, vec![run], "e1", 1, false);
        batch.skipped = vec![entry("runs/x\\y"), entry("runs/\\x1b]0;t")];
        store.apply_change_batch(r, &batch).unwrap();
        let row = store.remote("gpu").unwrap().unwrap();
        assert_eq!((row.skipped_items, row.skipped_files), (2, 250));
        assert!(row.skipped.iter().all(|s| !s.by_hub));
        let key = store.run(r, "runs/a/1").unwrap().unwrap().key;
        assert_eq!(store.runs_with_skipped_files().unwrap(), [(key, 250)]);
        // A changed set replaces the old one; a new full listing starts from nothing.
        let mut next = change_batch(false, vec![], "e1", 2, false);
        next.skipped = vec![entry("runs/z\\z")];
        store.apply_change_batch(r, &next).unwrap();
        let row = store.remote("gpu").unwrap().unwrap();
        assert_eq!(row.skipped.len(), 1);
        assert_eq!(row.skipped[0].name, "runs/z\\z");
        // An empty batch without news keeps the list; an empty whole list clears it.
        store
            .apply_change_batch(r, &change_batch(false, vec![], "e1", 3, false))
            .unwrap();
        assert_eq!(store.remote("gpu").unwrap().unwrap().skipped.len(), 1);
        let mut cleared = change_batch(false, vec![], "e1", 4, false);
        cleared.skipped_listed = true;
        store.apply_change_batch(r, &cleared).unwrap();
        assert!(store.remote("gpu").unwrap().unwrap().skipped.is_empty());
        let mut again = change_batch(false, vec![], "e1", 5, false);
        again.skipped = vec![entry("runs/z\\z")];
        store.apply_change_batch(r, &again).unwrap();
        store
            .apply_change_batch(r, &change_batch(true, vec![], "e2", 1, false))
            .unwrap();
        assert_eq!(store.remote("gpu").unwrap().unwrap().skipped_items, 0);
    }

    #[test]
    fn very_large_records_are_stored_whole() {
        let (_tmp, mut store) = fresh_store();
        let r = add_remote(&mut store, "gpu");
        let mut run = run_change("runs/big/1", 1, 0);
        let keys: serde_json::Map<String, serde_json::Value> = (0..100_000)
            .map(|i| (format!("k{i:06}"), serde_json::json!(i)))
            .collect();
        run.summary = Some(serde_json::Value::Object(keys));
        run.config = Some(serde_json::json!({ "blob": "x".repeat(8 << 20), "lr": 0.1 }));
        run.environment = Some(serde_json::json!(vec![0u8; 1 << 20]));
        let started = std::time::Instant::now();
        let outcome = store
            .apply_change_batch(r, &change_batch(true, vec![run], "e", 1, false))
            .unwrap();
        let took = started.elapsed();
        assert_eq!(outcome.runs, 1);
        let row = store.run(r, "runs/big/1").unwrap().unwrap();
        assert_eq!(row.summary.unwrap().as_object().unwrap().len(), 100_000);
        assert_eq!(row.config.unwrap()["blob"].as_str().unwrap().len(), 8 << 20);
        eprintln!("a run with 100,000 summary keys and an 8 MiB config stored in {took:?}");
    }

    #[test]
    fn records_nested_past_the_limit_are_stored_as_a_placeholder() {
        let (_tmp, mut store) = fresh_store();
        let r = add_remote(&mut store, "gpu");
        let nested = |depth: usize| {
            let mut v = serde_json::json!(1);
            for _ in 0..depth {
                v = serde_json::json!({ "a": v });
            }
            v
        };
        let mut runs = Vec::new();
        for (i, depth) in [60usize, 64, 65, 100, 127].into_iter().enumerate() {
            let mut run = run_change(&format!("runs/d/{depth}"), i as u64 + 1, 0);
            run.summary = Some(nested(depth));
            run.config = Some(nested(depth));
            run.meta = Some(serde_json::json!([nested(depth)]));
            runs.push(run);
        }
        store
            .apply_change_batch(r, &change_batch(true, runs, "e", 5, false))
            .unwrap();
        for depth in [60usize, 64, 65, 100, 127] {
            let row = store.run(r, &format!("runs/d/{depth}")).unwrap().unwrap();
            let rec = store.run_records(row.key).unwrap().unwrap();
            let summary = row.summary.unwrap();
            if depth <= MAX_RECORD_DEPTH {
                assert_eq!(summary, nested(depth), "{depth}");
            } else {
                let text = summary.as_str().unwrap().to_owned();
                assert!(text.contains("deeper than 64 levels"), "{depth}: {text}");
                assert!(rec.meta.unwrap().as_str().unwrap().contains("meta.json"));
            }
        }
        assert!(!super::depth_beyond(&nested(64), 64));
        assert!(super::depth_beyond(&nested(65), 64));
        assert!(!super::depth_beyond(&serde_json::json!(3), 0));
    }

    #[test]
    fn forgetting_a_run_deletes_all_of_it() {
        let (_tmp, mut store) = fresh_store();
        let r = add_remote(&mut store, "gpu");
        let runs = vec![run_change("runs/a/1", 1, 30), run_change("runs/b/1", 2, 30)];
        store
            .apply_change_batch(r, &change_batch(true, runs, "e", 2, false))
            .unwrap();
        for dir in ["runs/a/1", "runs/b/1"] {
            store
                .ingest_points(r, &point_batch(dir, 0, 30, 0..3))
                .unwrap();
        }
        let key = store.run(r, "runs/a/1").unwrap().unwrap().key;
        assert!(store.forget_run(key).unwrap());
        assert!(!store.forget_run(key).unwrap());
        assert!(store.run(r, "runs/a/1").unwrap().is_none());
        assert!(store.points(key, "k0").unwrap().is_empty());
        assert!(store.files(key).unwrap().is_empty());
        assert_eq!(store.total_points(r).unwrap(), 6);
    }

    #[test]
    fn manifests_follow_the_listing_and_keep_cache_links_while_unchanged() {
        let (_tmp, mut store) = fresh_store();
        let r = add_remote(&mut store, "gpu");
        let mut run = run_change("runs/a/1", 1, 0);
        run.files = vec![
            file_entry("meta.json", 10, None),
            file_entry("media/a.png", 20, None),
        ];
        store
            .apply_change_batch(r, &change_batch(true, vec![run.clone()], "e", 1, false))
            .unwrap();
        let key = store.run(r, "runs/a/1").unwrap().unwrap().key;
        let sha = store.put_file_bytes(b"png bytes").unwrap();
        store.record_cached_file(key, "media/a.png", &sha).unwrap();
        // Listed again unchanged plus a new file: the cache link stays.
        run.files.push(file_entry("logs.txt", 5, None));
        store
            .apply_change_batch(r, &change_batch(false, vec![run.clone()], "e", 2, false))
            .unwrap();
        let files = store.files(key).unwrap();
        assert_eq!(files.len(), 3);
        let png = files.iter().find(|f| f.path == "media/a.png").unwrap();
        assert_eq!(png.cached_sha256.as_deref(), Some(sha.as_str()));
        // The file changed: the link is dropped; a file gone from the listing is gone.
        run.files = vec![file_entry("media/a.png", 21, None)];
        store
            .apply_change_batch(r, &change_batch(false, vec![run], "e", 3, false))
            .unwrap();
        let files = store.files(key).unwrap();
        assert_eq!(files.len(), 1);
        assert_eq!(files[0].cached_sha256, None);
        assert_eq!(files[0].size, 21);
    }
}
