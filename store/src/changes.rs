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
//! Nothing here trusts the peer: every path is checked before the transaction begins, and one
//! bad path refuses the whole batch.

use std::collections::{HashMap, HashSet};

use rusqlite::{params, OptionalExtension, Transaction};

use runicorn_protocol::wire::{check_wire_path, ChangeBatch, FileEntry, RunChange};

use crate::error::{SqliteContext, StoreError};
use crate::files::is_sha256_hex;
use crate::remotes::RemoteId;
use crate::run_values::{RunValueRows, SOURCE_CONFIG, SOURCE_SUMMARY};
use crate::runs::RunKey;
use crate::store::{to_sql_int, unix_now, Store};

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
}

/// Refuses a batch holding a path that could name a place outside the remote's root, or a
/// hash that could name one outside the file cache.
fn check_batch(remote: &str, batch: &ChangeBatch) -> Result<(), StoreError> {
    let bad_path = |path: &str, reason: String| StoreError::BadPath {
        remote: remote.to_owned(),
        path: path.to_owned(),
        reason,
    };
    for dir in &batch.removed {
        check_wire_path(dir).map_err(|reason| bad_path(dir, reason))?;
    }
    for run in &batch.runs {
        check_wire_path(&run.dir).map_err(|reason| bad_path(&run.dir, reason))?;
        for file in &run.files {
            check_wire_path(&file.path)
                .map_err(|reason| bad_path(&format!("{}/{}", run.dir, file.path), reason))?;
            if let Some(sha) = &file.sha256 {
                if !is_sha256_hex(sha) {
                    return Err(StoreError::BadBatch {
                        remote: remote.to_owned(),
                        dir: run.dir.clone(),
                        reason: format!("file {:?} has a malformed sha256 {sha:?}", file.path),
                    });
                }
            }
        }
    }
    Ok(())
}

fn json_text(v: &Option<serde_json::Value>) -> Option<String> {
    v.as_ref().map(|v| v.to_string())
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
        check_batch(&name, batch)?;
        let p = self.db_path.clone();
        let now = unix_now();
        let tx = self
            .conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
            .at(&p)?;
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
        }
        let open = batch.reset || reset_open;
        let listing_epoch = if batch.reset {
            Some(epoch.as_str())
        } else {
            reset_epoch.as_deref()
        };
        let seen = if open { listing_epoch } else { None };

        for dir in &batch.removed {
            out.removed += tx
                .execute(
                    "UPDATE runs SET removed = 1, removed_at = coalesce(removed_at, ?3)
                     WHERE remote = ?1 AND dir = ?2 AND removed = 0",
                    params![remote.0, dir, now],
                )
                .at(&p)? as u64;
        }
        // A run listed in the same batch as removed is present: its state is the newer news.
        let mut values = RunValueRows::default();
        for run in &batch.runs {
            let records = SortedRecords::of(run);
            let before = sorted_records_of(&tx, remote, &run.dir).at(&p)?;
            let id = upsert_run(&tx, remote, run, &records, seen, now).at(&p)?;
            records.changes(&mut values, id, before.as_ref());
            sync_manifest(&tx, id, &run.files).at(&p)?;
            out.runs += 1;
        }
        values.write(&tx).at(&p)?;

        let still_open = open && batch.more;
        if open && !batch.more {
            out.removed += tx
                .execute(
                    "UPDATE runs SET removed = 1, removed_at = coalesce(removed_at, ?2)
                     WHERE remote = ?1 AND removed = 0 AND seen_epoch IS NOT ?3",
                    params![remote.0, now, listing_epoch],
                )
                .at(&p)? as u64;
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

impl Store {
    /// Deletes everything the store holds of one run (the user's choice; the remote is not
    /// touched). A run still on its remote comes back with its next change, from scratch.
    /// Returns whether the run existed.
    pub fn forget_run(&mut self, run: RunKey) -> Result<bool, StoreError> {
        let p = self.db_path.clone();
        let tx = self.conn.transaction().at(&p)?;
        // `points` has no foreign key (see schema.rs): delete them explicitly.
        tx.execute("DELETE FROM points WHERE run = ?1", [run.0])
            .at(&p)?;
        crate::tiles::drop_run(&tx, run.0).at(&p)?;
        let n = tx
            .execute("DELETE FROM runs WHERE id = ?1", [run.0])
            .at(&p)?;
        tx.commit().at(&p)?;
        Ok(n > 0)
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
            summary: json_text(&run.summary),
            config: json_text(&run.config),
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
    tx: &Transaction,
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
    tx: &Transaction,
    remote: RemoteId,
    run: &RunChange,
    records: &SortedRecords,
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
            seen_epoch, first_seen_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18,
            ?19, ?20, ?21, ?22, ?23, ?24, ?25, ?26, ?27, ?28, ?29)
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
            seen_epoch = coalesce(excluded.seen_epoch, runs.seen_epoch)
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
            json_text(&run.meta),
            json_text(&run.status_record),
            records.summary,
            records.config,
            json_text(&run.environment),
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
        ],
        |r| r.get(0),
    )
}

/// Makes the run's stored manifest equal to `files`, writing only rows that changed (a live
/// run is listed again at every flush; its thousand media files should cost nothing).
fn sync_manifest(tx: &Transaction, run: i64, files: &[FileEntry]) -> rusqlite::Result<()> {
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

/// The id of a run, if the store knows it.
pub(crate) fn run_id_of(
    tx: &Transaction,
    remote: RemoteId,
    dir: &str,
) -> rusqlite::Result<Option<i64>> {
    tx.prepare_cached("SELECT id FROM runs WHERE remote = ?1 AND dir = ?2")?
        .query_row(params![remote.0, dir], |r| r.get(0))
        .optional()
}

#[cfg(test)]
mod tests {
    use crate::testkit::*;
    use crate::*;

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
    fn a_bad_path_refuses_the_whole_batch_and_writes_nothing() {
        let (_tmp, mut store) = fresh_store();
        let r = add_remote(&mut store, "gpu");
        store
            .apply_change_batch(
                r,
                &change_batch(true, vec![run_change("runs/a/1", 1, 0)], "e1", 1, false),
            )
            .unwrap();
        let before = dump(&store);
        let mut evil_file = run_change("runs/b/1", 2, 0);
        evil_file
            .files
            .push(file_entry("../../../.ssh/authorized_keys", 1, None));
        let mut bad_hash = run_change("runs/b/1", 2, 0);
        bad_hash.files.push(file_entry("x", 1, Some("../../etc")));
        let mut bad_removed =
            change_batch(false, vec![run_change("runs/c/1", 3, 0)], "e1", 3, false);
        bad_removed.removed.push("/etc".into());
        for batch in [
            change_batch(
                false,
                vec![run_change("runs/ok/1", 2, 0), run_change("runs/../x", 3, 0)],
                "e1",
                3,
                false,
            ),
            change_batch(false, vec![evil_file], "e1", 2, false),
            change_batch(false, vec![bad_hash], "e1", 2, false),
            bad_removed,
        ] {
            let err = store.apply_change_batch(r, &batch).unwrap_err();
            assert!(err.is_bad_input(), "{err}");
            assert!(err.to_string().contains("gpu"), "{err}");
            assert_eq!(dump(&store), before);
        }
        let err = store
            .apply_change_batch(
                r,
                &change_batch(false, vec![run_change("runs/../x", 3, 0)], "e1", 3, false),
            )
            .unwrap_err();
        assert!(err.to_string().contains("runs/../x"), "{err}");
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
