//! Ingesting metric points: one [`PointBatch`] is one transaction. Each [`RunPoints`] covers the
//! bytes `from..to` of a run's `events.jsonl`; the run's copy offset says how far the store
//! holds it, which makes ingest idempotent:
//!
//! - `from == offset`: the next range, stored and the offset moved to `to`;
//! - `to <= offset` (and `from != offset`): already stored, skipped;
//! - `from < offset < to`: overlaps; rows are upserted by (run, key, step), later value wins;
//! - `from > offset`: a gap the store cannot fill, skipped (the run stays pending from its offset);
//! - `truncated`: the file was replaced; the run's points are dropped first;
//! - `missing`: the run directory is gone; nothing changes (the change feed says so).
//!
//! This is the hub's hottest path (goal ≥ 2 M points/s, `bench/src/bin/hub_ingest.rs`, for
//! both few long runs and many short ones): a batch looks up all its runs' copies and per-key
//! totals with one query each, its rows (across every run and key) go into the `WITHOUT ROWID`
//! table keyed by integer (run, key, step) through 1,000-row `INSERT` statements, and the
//! totals are computed in memory (without reading the table back when steps only grow) and
//! written once per batch.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::OnceLock;

use rusqlite::{params, Connection, OptionalExtension, Statement};

use runicorn_protocol::wire::{check_wire_path, PointBatch, RunPoints, Series};

use crate::error::{SqliteContext, StoreError};
use crate::ids::RemoteId;
use crate::sql::{from_sql_int, multi_row_sql, to_sql_int};
use crate::store::Store;
use crate::tiles::{self, TileBuffer};

/// What one point batch did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IngestStats {
    /// Point values written (inserted or replaced).
    pub points: u64,
    /// Runs whose copy moved on.
    pub runs: u64,
    /// Runs not applied: already stored, unknown to the store, or a gap after the copy.
    pub skipped: u64,
    /// Runs whose stored points were dropped because their file was replaced.
    pub truncated: u64,
}

/// Rows per multi-row `INSERT INTO points`: 1,000 rows bind 5,000 parameters (SQLite allows
/// 32,766). A batch's rows, across all its runs and keys, go out in statements of this size
/// (one cached statement) and one statement for the remainder. Fewer, larger statements also
/// copy the last leaf page into the statement journal less often.
const CHUNK_ROWS: usize = 1000;
/// Rows per multi-row upsert of `run_keys` totals (5 parameters each).
const TOTALS_CHUNK: usize = 200;
/// Corrupt lines kept per run (the agent reports the first 100 of each range).
const MAX_CORRUPT_LINES: i64 = 1000;
/// Longest metric key accepted.
const MAX_KEY_BYTES: usize = 1024;

const INSERT_POINTS: &str = "INSERT OR REPLACE INTO points(run, key, step, time, value) VALUES ";
const UPSERT_TOTALS: &str =
    "INSERT OR REPLACE INTO run_keys(run, key, points, first_step, last_step) VALUES ";

/// `head` followed by `rows` groups of five anonymous parameters.
fn values_sql(head: &str, rows: usize) -> String {
    multi_row_sql(head, rows, 5)
}

/// The full-size statements, built once per process.
fn full_insert_sql() -> &'static str {
    static SQL: OnceLock<String> = OnceLock::new();
    SQL.get_or_init(|| values_sql(INSERT_POINTS, CHUNK_ROWS))
}

fn full_totals_sql() -> &'static str {
    static SQL: OnceLock<String> = OnceLock::new();
    SQL.get_or_init(|| values_sql(UPSERT_TOTALS, TOTALS_CHUNK))
}

/// Refuses a `RunPoints` whose parts do not fit together, before anything is written. (One
/// whose directory breaks the path rule is not refused here: it names no stored run, and is
/// left out alone.)
fn check_run_points(remote: &str, rp: &RunPoints) -> Result<(), StoreError> {
    let bad = |reason: String| StoreError::BadBatch {
        remote: remote.to_owned(),
        dir: rp.dir.clone(),
        reason,
    };
    if rp.missing {
        return Ok(());
    }
    if rp.from > rp.to {
        return Err(bad(format!(
            "range {}..{} ends before it begins",
            rp.from, rp.to
        )));
    }
    if rp.steps.len() != rp.times.len() {
        return Err(bad(format!(
            "{} steps but {} times",
            rp.steps.len(),
            rp.times.len()
        )));
    }
    let rows = rp.steps.len();
    for s in &rp.series {
        if s.key.is_empty() || s.key.len() > MAX_KEY_BYTES {
            return Err(bad(format!("a metric key of {} bytes", s.key.len())));
        }
        match &s.rows {
            None if s.values.len() != rows => {
                return Err(bad(format!(
                    "series {:?} has {} values for {rows} rows",
                    s.key,
                    s.values.len()
                )))
            }
            Some(idx) if idx.len() != s.values.len() => {
                return Err(bad(format!(
                    "series {:?} has {} values but {} row indexes",
                    s.key,
                    s.values.len(),
                    idx.len()
                )))
            }
            Some(idx) if idx.iter().any(|&i| i as usize >= rows) => {
                return Err(bad(format!("series {:?} names a row beyond {rows}", s.key)))
            }
            _ => {}
        }
    }
    Ok(())
}

/// The store's copy of one run's `events.jsonl`, as this batch has left it so far.
#[derive(Clone, Copy)]
struct Copy {
    run: i64,
    offset: u64,
}

/// Totals of one (run, key) as kept in `run_keys`.
#[derive(Clone, Copy)]
struct KeyTotals {
    points: i64,
    first_step: i64,
    last_step: i64,
}

/// One row of `points`.
#[derive(Clone, Copy)]
struct Row {
    run: i64,
    key: i64,
    step: i64,
    time: f64,
    value: f64,
}

/// What one batch writes besides the points: the totals of every (run, key) of its runs
/// (read once, kept in memory, written back once) and where each applied run's copy ends.
#[derive(Default)]
struct Pending {
    /// Rows not yet inserted (fewer than `CHUNK_ROWS`).
    rows: Vec<Row>,
    /// `run_keys` of every run of the batch, as the batch has changed them.
    totals: BTreeMap<(i64, i64), KeyTotals>,
    /// The (run, key) totals this batch changed.
    dirty: BTreeSet<(i64, i64)>,
    /// Applied runs: run → (copy offset, next line).
    copies: BTreeMap<i64, (u64, u64)>,
    /// Point tiles this batch changed.
    tiles: TileBuffer,
}

impl Pending {
    fn push(&mut self, tx: &Connection, row: Row) -> rusqlite::Result<()> {
        self.rows.push(row);
        if self.rows.len() >= CHUNK_ROWS {
            self.flush(tx)?;
        }
        Ok(())
    }

    /// Inserts every buffered row.
    fn flush(&mut self, tx: &Connection) -> rusqlite::Result<()> {
        for chunk in self.rows.chunks(CHUNK_ROWS) {
            if chunk.len() == CHUNK_ROWS {
                insert_rows(&mut *tx.prepare_cached(full_insert_sql())?, chunk)?;
            } else {
                insert_rows(
                    &mut tx.prepare(&values_sql(INSERT_POINTS, chunk.len()))?,
                    chunk,
                )?;
            }
        }
        self.rows.clear();
        Ok(())
    }

    /// Sum of points and last step over every key of `run`.
    fn run_totals(&self, run: i64) -> (i64, Option<i64>) {
        self.totals.range((run, i64::MIN)..=(run, i64::MAX)).fold(
            (0, None),
            |(points, last), (_, t)| {
                (
                    points + t.points,
                    Some(last.map_or(t.last_step, |l: i64| l.max(t.last_step))),
                )
            },
        )
    }

    /// Forgets the totals of a run whose points were dropped.
    fn forget_run(&mut self, run: i64) {
        let range = (run, i64::MIN)..=(run, i64::MAX);
        let keys: Vec<(i64, i64)> = self.totals.range(range.clone()).map(|(k, _)| *k).collect();
        for k in keys {
            self.totals.remove(&k);
        }
        let dirty: Vec<(i64, i64)> = self.dirty.range(range).copied().collect();
        for k in dirty {
            self.dirty.remove(&k);
        }
        self.tiles.forget_run(run);
    }
}

fn insert_rows(stmt: &mut Statement<'_>, rows: &[Row]) -> rusqlite::Result<()> {
    for (j, r) in rows.iter().enumerate() {
        let b = 1 + 5 * j;
        stmt.raw_bind_parameter(b, r.run)?;
        stmt.raw_bind_parameter(b + 1, r.key)?;
        stmt.raw_bind_parameter(b + 2, r.step)?;
        // A NaN binds as NULL, which the schema reads back as NaN.
        stmt.raw_bind_parameter(b + 3, r.time)?;
        stmt.raw_bind_parameter(b + 4, r.value)?;
    }
    stmt.raw_execute()?;
    Ok(())
}

fn upsert_totals(
    stmt: &mut Statement<'_>,
    rows: &[((i64, i64), KeyTotals)],
) -> rusqlite::Result<()> {
    for (j, ((run, key), t)) in rows.iter().enumerate() {
        let b = 1 + 5 * j;
        stmt.raw_bind_parameter(b, *run)?;
        stmt.raw_bind_parameter(b + 1, *key)?;
        stmt.raw_bind_parameter(b + 2, t.points)?;
        stmt.raw_bind_parameter(b + 3, t.first_step)?;
        stmt.raw_bind_parameter(b + 4, t.last_step)?;
    }
    stmt.raw_execute()?;
    Ok(())
}

impl Store {
    /// Stores the points of one batch in one transaction (see the module doc for which ranges
    /// are applied). The same batch twice leaves the same rows.
    pub fn ingest_points(
        &mut self,
        remote: RemoteId,
        batch: &PointBatch,
    ) -> Result<IngestStats, StoreError> {
        let name = self.remote_name(remote)?;
        for rp in batch
            .runs
            .iter()
            .filter(|rp| check_wire_path(&rp.dir).is_ok())
        {
            check_run_points(&name, rp)?;
        }
        let Store {
            conn,
            db_path,
            key_ids,
            ..
        } = self;
        let p = db_path.as_path();
        let tx = crate::store::write_tx(conn).at(p)?;
        let mut copies = copies_of(&tx, remote, batch).at(p)?;
        let mut pending = Pending {
            totals: totals_of(&tx, copies.values().map(|c| c.run)).at(p)?,
            ..Pending::default()
        };
        let mut new_keys: HashMap<String, i64> = HashMap::new();
        let mut stats = IngestStats::default();
        for rp in &batch.runs {
            if rp.missing {
                continue;
            }
            if let Err(reason) = check_wire_path(&rp.dir) {
                tracing::warn!(
                    remote = name,
                    reason,
                    "points of a run directory that breaks the path rule; skipped"
                );
                stats.skipped += 1;
                continue;
            }
            let Some(copy) = copies.get_mut(rp.dir.as_str()) else {
                tracing::warn!(
                    remote = name,
                    dir = rp.dir,
                    "points for a run the store does not know; skipped"
                );
                stats.skipped += 1;
                continue;
            };
            if rp.truncated {
                // Rows of this run buffered earlier in the batch are inserted, then dropped.
                pending.flush(&tx).at(p)?;
                drop_points(&tx, copy.run).at(p)?;
                pending.forget_run(copy.run);
                copy.offset = 0;
                stats.truncated += 1;
            } else if rp.from != copy.offset {
                if rp.to <= copy.offset {
                    stats.skipped += 1;
                    continue;
                }
                if rp.from > copy.offset {
                    tracing::warn!(remote = name, dir = rp.dir, from = rp.from, offset = copy.offset,
                        "points begin after the stored copy ends; skipped, asked again from the copy");
                    stats.skipped += 1;
                    continue;
                }
            }
            let run = copy.run;
            copy.offset = rp.to;
            for series in &rp.series {
                let key = intern_key(&tx, key_ids, &mut new_keys, &series.key).at(p)?;
                stats.points += write_series(&tx, &mut pending, run, key, rp, series).at(p)?;
            }
            store_corrupt_lines(&tx, run, rp).at(p)?;
            pending.copies.insert(run, (rp.to, rp.next_line));
            stats.runs += 1;
        }
        pending.flush(&tx).at(p)?;
        write_totals(&tx, &pending).at(p)?;
        pending.tiles.write(&tx).at(p)?;
        tx.commit().at(p)?;
        // Only ids that were committed may be remembered.
        key_ids.extend(new_keys);
        Ok(stats)
    }
}

/// The copies of every run the batch names (missing runs aside), by directory, in one query.
fn copies_of<'b>(
    tx: &Connection,
    remote: RemoteId,
    batch: &'b PointBatch,
) -> rusqlite::Result<HashMap<&'b str, Copy>> {
    let dirs: Vec<&str> = batch
        .runs
        .iter()
        .filter(|rp| !rp.missing)
        .map(|rp| rp.dir.as_str())
        .collect();
    let mut out = HashMap::with_capacity(dirs.len());
    if dirs.is_empty() {
        return Ok(out);
    }
    let json = serde_json::to_string(&dirs)
        .map_err(|e| rusqlite::Error::ToSqlConversionFailure(Box::new(e)))?;
    let mut stmt = tx.prepare_cached(
        "SELECT dir, id, copy_offset FROM runs
         WHERE remote = ?1 AND dir IN (SELECT value FROM json_each(?2))",
    )?;
    let mut rows = stmt.query(params![remote.0, json])?;
    while let Some(r) = rows.next()? {
        let dir: String = r.get(0)?;
        let copy = Copy {
            run: r.get(1)?,
            offset: from_sql_int(r.get(2)?),
        };
        // The batch names this directory, so one of its strings can be borrowed.
        if let Some(rp) = batch.runs.iter().find(|rp| rp.dir == dir) {
            out.insert(rp.dir.as_str(), copy);
        }
    }
    Ok(out)
}

/// The `run_keys` rows of `runs`, in one query.
fn totals_of(
    tx: &Connection,
    runs: impl Iterator<Item = i64>,
) -> rusqlite::Result<BTreeMap<(i64, i64), KeyTotals>> {
    let mut out = BTreeMap::new();
    let ids: Vec<i64> = runs.collect();
    if ids.is_empty() {
        return Ok(out);
    }
    let json = serde_json::to_string(&ids)
        .map_err(|e| rusqlite::Error::ToSqlConversionFailure(Box::new(e)))?;
    let mut stmt = tx.prepare_cached(
        "SELECT run, key, points, first_step, last_step FROM run_keys
         WHERE run IN (SELECT value FROM json_each(?1))",
    )?;
    let mut rows = stmt.query([json])?;
    while let Some(r) = rows.next()? {
        out.insert(
            (r.get(0)?, r.get(1)?),
            KeyTotals {
                points: r.get(2)?,
                first_step: r.get(3)?,
                last_step: r.get(4)?,
            },
        );
    }
    Ok(out)
}

/// Writes the changed (run, key) totals and moves every applied run's copy on.
fn write_totals(tx: &Connection, pending: &Pending) -> rusqlite::Result<()> {
    let changed: Vec<((i64, i64), KeyTotals)> = pending
        .dirty
        .iter()
        .filter_map(|k| pending.totals.get(k).map(|t| (*k, *t)))
        .collect();
    for chunk in changed.chunks(TOTALS_CHUNK) {
        if chunk.len() == TOTALS_CHUNK {
            upsert_totals(&mut *tx.prepare_cached(full_totals_sql())?, chunk)?;
        } else {
            upsert_totals(
                &mut tx.prepare(&values_sql(UPSERT_TOTALS, chunk.len()))?,
                chunk,
            )?;
        }
    }
    let mut stmt = tx.prepare_cached(
        "UPDATE runs SET copy_offset = ?2, copy_next_line = ?3, stored_points = ?4,
            stored_last_step = ?5
         WHERE id = ?1",
    )?;
    for (&run, &(offset, next_line)) in &pending.copies {
        let (points, last_step) = pending.run_totals(run);
        stmt.execute(params![
            run,
            to_sql_int(offset),
            to_sql_int(next_line),
            points,
            last_step
        ])?;
    }
    Ok(())
}

fn drop_points(tx: &Connection, run: i64) -> rusqlite::Result<()> {
    tx.execute("DELETE FROM points WHERE run = ?1", [run])?;
    tiles::drop_run(tx, run)?;
    tx.execute("DELETE FROM run_keys WHERE run = ?1", [run])?;
    tx.execute("DELETE FROM corrupt_lines WHERE run = ?1", [run])?;
    tx.execute(
        "UPDATE runs SET copy_offset = 0, copy_next_line = 1, stored_points = 0,
            stored_last_step = NULL WHERE id = ?1",
        [run],
    )?;
    Ok(())
}

/// The id of a metric key, interning it if new. `new` collects ids created in this
/// transaction; they join the connection's cache only once it commits.
fn intern_key(
    tx: &Connection,
    cache: &HashMap<String, i64>,
    new: &mut HashMap<String, i64>,
    name: &str,
) -> rusqlite::Result<i64> {
    if let Some(&id) = cache.get(name).or_else(|| new.get(name)) {
        return Ok(id);
    }
    let found: Option<i64> = tx
        .prepare_cached("SELECT id FROM metric_keys WHERE name = ?1")?
        .query_row([name], |r| r.get(0))
        .optional()?;
    let id = match found {
        Some(id) => id,
        None => tx
            .prepare_cached("INSERT INTO metric_keys(name) VALUES (?1) RETURNING id")?
            .query_row([name], |r| r.get(0))?,
    };
    new.insert(name.to_owned(), id);
    Ok(id)
}

/// Queues one series' rows and updates its (run, key) totals in `pending`; returns the values
/// written.
fn write_series(
    tx: &Connection,
    pending: &mut Pending,
    run: i64,
    key: i64,
    rp: &RunPoints,
    series: &Series,
) -> rusqlite::Result<u64> {
    let n = series.values.len();
    if n == 0 {
        return Ok(0);
    }
    let row_of = |i: usize| -> usize {
        match &series.rows {
            // Checked by `check_run_points`: every index is below the row count.
            Some(rows) => rows[i] as usize,
            None => i,
        }
    };
    // Steps in order and above everything stored: every value is a new point, so the totals
    // follow without reading the table (the usual case: a run's file read front to back).
    let mut increasing = true;
    let (mut lo, mut hi) = (i64::MAX, i64::MIN);
    let mut prev = None;
    for i in 0..n {
        let step = rp.steps[row_of(i)];
        increasing &= prev.is_none_or(|p| step > p);
        prev = Some(step);
        lo = lo.min(step);
        hi = hi.max(step);
    }
    let before = pending.totals.get(&(run, key)).copied();
    let appends = increasing && before.is_none_or(|b| lo > b.last_step);
    let count_range = |tx: &Connection| -> rusqlite::Result<i64> {
        tx.prepare_cached(
            "SELECT count(*) FROM points WHERE run = ?1 AND key = ?2 AND step BETWEEN ?3 AND ?4",
        )?
        .query_row([run, key, lo, hi], |r| r.get(0))
    };
    let held_before = if appends {
        0
    } else {
        // Counting needs the table to hold every row queued so far.
        pending.flush(tx)?;
        count_range(tx)?
    };
    for i in 0..n {
        let row = row_of(i);
        pending.push(
            tx,
            Row {
                run,
                key,
                step: rp.steps[row],
                time: rp.times[row],
                value: series.values[i],
            },
        )?;
    }
    let added = if appends {
        n as i64
    } else {
        pending.flush(tx)?;
        count_range(tx)? - held_before
    };
    let totals = match before {
        Some(b) => KeyTotals {
            points: b.points + added,
            first_step: b.first_step.min(lo),
            last_step: b.last_step.max(hi),
        },
        None => KeyTotals {
            points: added,
            first_step: lo,
            last_step: hi,
        },
    };
    pending.totals.insert((run, key), totals);
    pending.dirty.insert((run, key));
    let before = before.map(|b| (b.first_step, b.last_step));
    let after = (totals.first_step, totals.last_step);
    if appends {
        if TileBuffer::needs_points(true, before, after) {
            pending.flush(tx)?;
        }
        let points = (0..n).map(|i| {
            let row = row_of(i);
            (rp.steps[row], rp.times[row], series.values[i])
        });
        pending
            .tiles
            .append(tx, (run, key), before, after, points)?;
    } else {
        // Every row of the series is in the table (flushed above for the count).
        let steps: BTreeSet<i64> = (0..n).map(|i| rp.steps[row_of(i)]).collect();
        pending
            .tiles
            .recompute(tx, (run, key), before, after, &steps)?;
    }
    Ok(n as u64)
}

fn store_corrupt_lines(tx: &Connection, run: i64, rp: &RunPoints) -> rusqlite::Result<()> {
    if rp.corrupt.is_empty() {
        return Ok(());
    }
    let mut stmt = tx.prepare_cached(
        "INSERT OR IGNORE INTO corrupt_lines(run, line, offset, reason)
         SELECT ?1, ?2, ?3, ?4 WHERE (SELECT count(*) FROM corrupt_lines WHERE run = ?1) < ?5",
    )?;
    for c in &rp.corrupt {
        let reason: String = c.reason.chars().take(500).collect();
        stmt.execute(params![
            run,
            to_sql_int(c.line),
            to_sql_int(c.offset),
            reason,
            MAX_CORRUPT_LINES
        ])?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use runicorn_protocol::wire::{PointBatch, RunPoints, Series, WireCorruptLine};

    use crate::testkit::*;
    use crate::*;

    fn one_run(store: &mut Store, events_bytes: u64) -> (RemoteId, RunKey) {
        let r = add_remote(store, "gpu");
        store
            .apply_change_batch(
                r,
                &change_batch(
                    true,
                    vec![run_change("runs/a/1", 1, events_bytes)],
                    "e",
                    1,
                    false,
                ),
            )
            .unwrap();
        let key = store.run(r, "runs/a/1").unwrap().unwrap().key;
        (r, key)
    }

    #[test]
    fn the_same_point_batch_twice_leaves_the_same_rows() {
        let (_tmp, mut store) = fresh_store();
        let (r, key) = one_run(&mut store, 200);
        let first = point_batch("runs/a/1", 0, 100, 0..10);
        let second = point_batch("runs/a/1", 100, 200, 10..20);
        let stats = store.ingest_points(r, &first).unwrap();
        assert_eq!(
            stats,
            IngestStats {
                points: 20,
                runs: 1,
                ..IngestStats::default()
            }
        );
        store.ingest_points(r, &second).unwrap();
        let once = dump(&store);
        for batch in [&first, &second, &second] {
            let stats = store.ingest_points(r, batch).unwrap();
            assert_eq!(stats.skipped, 1);
        }
        assert_eq!(dump(&store), once);
        let row = store.run(r, "runs/a/1").unwrap().unwrap();
        assert_eq!(
            (row.points, row.last_step, row.synced_bytes),
            (40, Some(19), 200)
        );
        assert_eq!(store.points(key, "k1").unwrap().len(), 20);
        assert!(store.pending_points(r, 10).unwrap().is_empty());
    }

    #[test]
    fn overlapping_ranges_are_upserted_and_later_values_win() {
        let (_tmp, mut store) = fresh_store();
        let (r, key) = one_run(&mut store, 300);
        store
            .ingest_points(r, &point_batch("runs/a/1", 0, 100, 0..10))
            .unwrap();
        // An overlapping answer (from < offset < to) re-sends steps 5..10 with new values.
        let mut overlap = point_batch("runs/a/1", 50, 150, 5..15);
        for s in &mut overlap.runs[0].series {
            for v in &mut s.values {
                *v += 1000.0;
            }
        }
        store.ingest_points(r, &overlap).unwrap();
        let pts = store.points(key, "k0").unwrap();
        assert_eq!(pts.len(), 15);
        assert_eq!(pts[4].2, 4.0);
        assert_eq!(pts[5].2, 1005.0);
        let keys = store.metric_keys(key).unwrap();
        assert_eq!(
            (keys[0].points, keys[0].first_step, keys[0].last_step),
            (15, 0, 14)
        );
        assert_eq!(store.run(r, "runs/a/1").unwrap().unwrap().points, 30);
    }

    #[test]
    fn repeated_steps_in_one_range_are_counted_once() {
        let (_tmp, mut store) = fresh_store();
        let (r, key) = one_run(&mut store, 100);
        // A resumed training run logs steps 0..5 and then 3..8 again in the same file.
        let steps: Vec<i64> = (0..5).chain(3..8).collect();
        let batch = PointBatch {
            runs: vec![RunPoints {
                dir: "runs/a/1".into(),
                from: 0,
                to: 100,
                next_line: 11,
                eof: true,
                times: vec![1.0; steps.len()],
                series: vec![Series {
                    key: "loss".into(),
                    rows: None,
                    values: (0..steps.len()).map(|i| i as f64).collect(),
                }],
                steps,
                ..RunPoints::default()
            }],
        };
        store.ingest_points(r, &batch).unwrap();
        let pts = store.points(key, "loss").unwrap();
        assert_eq!(
            pts.iter().map(|p| p.0).collect::<Vec<_>>(),
            (0..8).collect::<Vec<_>>()
        );
        assert_eq!(pts[3].2, 5.0, "the later value of step 3 wins");
        assert_eq!(store.metric_keys(key).unwrap()[0].points, 8);
    }

    #[test]
    fn sparse_series_use_their_row_indexes() {
        let (_tmp, mut store) = fresh_store();
        let (r, key) = one_run(&mut store, 100);
        let batch = PointBatch {
            runs: vec![RunPoints {
                dir: "runs/a/1".into(),
                from: 0,
                to: 100,
                next_line: 5,
                steps: vec![10, 20, 30, 40],
                times: vec![1.0, 2.0, 3.0, 4.0],
                series: vec![Series {
                    key: "val_acc".into(),
                    rows: Some(vec![1, 3]),
                    values: vec![0.5, 0.75],
                }],
                ..RunPoints::default()
            }],
        };
        store.ingest_points(r, &batch).unwrap();
        assert_eq!(
            store.points(key, "val_acc").unwrap(),
            [(20, 2.0, 0.5), (40, 4.0, 0.75)]
        );
    }

    #[test]
    fn non_finite_values_and_missing_times_survive() {
        let (_tmp, mut store) = fresh_store();
        let (r, key) = one_run(&mut store, 100);
        let values = vec![
            f64::NAN,
            f64::INFINITY,
            f64::NEG_INFINITY,
            -0.0,
            1e-300,
            f64::MAX,
        ];
        let batch = PointBatch {
            runs: vec![RunPoints {
                dir: "runs/a/1".into(),
                from: 0,
                to: 100,
                next_line: 7,
                steps: (1..=6).collect(),
                times: vec![f64::NAN, 1.0, 2.0, 3.0, 4.0, 5.0],
                series: vec![Series {
                    key: "loss".into(),
                    rows: None,
                    values: values.clone(),
                }],
                ..RunPoints::default()
            }],
        };
        store.ingest_points(r, &batch).unwrap();
        // Also through a fresh read-only connection, as the dashboard reads.
        let reader = Store::open_read_only(store.dir()).unwrap();
        for s in [&store, &reader] {
            let pts = s.points(key, "loss").unwrap();
            assert!(pts[0].1.is_nan() && pts[0].2.is_nan());
            for (p, v) in pts.iter().zip(&values).skip(1) {
                // Bit for bit, except that SQLite reads -0.0 back as 0.0.
                assert!(
                    p.2 == *v && (p.2.to_bits() == v.to_bits() || *v == 0.0),
                    "{v}"
                );
            }
        }
    }

    #[test]
    fn a_truncated_file_replaces_the_stored_points() {
        let (_tmp, mut store) = fresh_store();
        let (r, key) = one_run(&mut store, 200);
        let mut first = point_batch("runs/a/1", 0, 200, 0..20);
        first.runs[0].corrupt.push(WireCorruptLine {
            line: 3,
            offset: 30,
            reason: "bad".into(),
        });
        store.ingest_points(r, &first).unwrap();
        assert_eq!(store.corrupt_lines(key).unwrap().len(), 1);
        // The file was rewritten shorter; the agent read again from 0.
        store
            .apply_change_batch(
                r,
                &change_batch(false, vec![run_change("runs/a/1", 2, 50)], "e", 2, false),
            )
            .unwrap();
        let wanted = store.pending_points(r, 10).unwrap();
        assert_eq!((wanted[0].offset, wanted[0].next_line), (200, 21));
        let mut again = point_batch("runs/a/1", 0, 50, 100..105);
        again.runs[0].truncated = true;
        let stats = store.ingest_points(r, &again).unwrap();
        assert_eq!(stats.truncated, 1);
        let steps: Vec<i64> = store
            .points(key, "k0")
            .unwrap()
            .iter()
            .map(|p| p.0)
            .collect();
        assert_eq!(steps, (100..105).collect::<Vec<_>>());
        let row = store.run(r, "runs/a/1").unwrap().unwrap();
        assert_eq!(
            (row.points, row.last_step, row.synced_bytes),
            (10, Some(104), 50)
        );
        assert!(store.corrupt_lines(key).unwrap().is_empty());
        // Replaying the truncated answer drops and rewrites the same rows.
        let once = dump(&store);
        store.ingest_points(r, &again).unwrap();
        assert_eq!(dump(&store), once);
    }

    #[test]
    fn one_batch_naming_a_run_several_times_equals_one_batch_each() {
        let parts = |truncate_last: bool| {
            let mut runs: Vec<RunPoints> = [(0, 100, 0..10), (100, 200, 10..20), (50, 200, 5..20)]
                .into_iter()
                .map(|(from, to, steps)| point_batch("runs/a/1", from, to, steps).runs.remove(0))
                .collect();
            // 700 rows per key: the batch's rows cross a full-size INSERT.
            runs.push(point_batch("runs/a/1", 200, 300, 20..720).runs.remove(0));
            if truncate_last {
                let mut again = point_batch("runs/a/1", 0, 100, 100..105).runs.remove(0);
                again.truncated = true;
                runs.push(again);
            }
            runs
        };
        for truncate_last in [false, true] {
            let (_t1, mut one) = fresh_store();
            let (r1, _) = one_run(&mut one, 300);
            let stats = one
                .ingest_points(
                    r1,
                    &PointBatch {
                        runs: parts(truncate_last),
                    },
                )
                .unwrap();
            assert_eq!(stats.runs, 3 + u64::from(truncate_last));
            let (_t2, mut each) = fresh_store();
            let (r2, _) = one_run(&mut each, 300);
            for rp in parts(truncate_last) {
                each.ingest_points(r2, &PointBatch { runs: vec![rp] })
                    .unwrap();
            }
            // Every table but those holding the wall-clock time each store was filled at.
            let tables = |store: &Store| {
                dump(store)
                    .split("== ")
                    .filter(|t| !t.starts_with("remotes") && !t.starts_with("runs"))
                    .map(str::to_owned)
                    .collect::<Vec<_>>()
            };
            assert_eq!(tables(&one), tables(&each));
            let copy = |store: &Store, r| {
                let row = store.run(r, "runs/a/1").unwrap().unwrap();
                (row.points, row.last_step, row.synced_bytes)
            };
            assert_eq!(copy(&one, r1), copy(&each, r2));
        }
    }

    #[test]
    fn gaps_unknown_runs_and_missing_runs_change_nothing() {
        let (_tmp, mut store) = fresh_store();
        let (r, _) = one_run(&mut store, 300);
        let before = dump(&store);
        let mut missing = point_batch("runs/a/1", 0, 100, 0..10);
        missing.runs[0].missing = true;
        for batch in [
            point_batch("runs/a/1", 100, 200, 10..20),
            point_batch("runs/zzz/1", 0, 100, 0..10),
            missing,
        ] {
            store.ingest_points(r, &batch).unwrap();
            assert_eq!(dump(&store), before);
        }
    }

    #[test]
    fn inconsistent_batches_are_refused_whole() {
        let (_tmp, mut store) = fresh_store();
        let (r, _) = one_run(&mut store, 300);
        let before = dump(&store);
        let good = point_batch("runs/a/1", 0, 100, 0..10).runs.remove(0);
        let mut short = good.clone();
        short.series[0].values.pop();
        let mut beyond = good.clone();
        beyond.series[0].rows = Some(vec![99; 10]);
        let mut backwards = good.clone();
        backwards.from = 500;
        for bad in [short, beyond, backwards] {
            let err = store
                .ingest_points(
                    r,
                    &PointBatch {
                        runs: vec![good.clone(), bad],
                    },
                )
                .unwrap_err();
            assert!(err.is_bad_input(), "{err}");
            assert_eq!(dump(&store), before);
        }
    }

    #[test]
    fn a_run_directory_that_breaks_the_path_rule_is_left_out_alone() {
        let (_tmp, mut store) = fresh_store();
        let (r, key) = one_run(&mut store, 300);
        let good = point_batch("runs/a/1", 0, 100, 0..10).runs.remove(0);
        let mut bad_dir = good.clone();
        bad_dir.dir = "runs/../../etc".into();
        let stats = store
            .ingest_points(
                r,
                &PointBatch {
                    runs: vec![bad_dir, good],
                },
            )
            .unwrap();
        assert_eq!((stats.runs, stats.skipped), (1, 1));
        assert_eq!(store.points(key, "k0").unwrap().len(), 10);
    }

    /// Points of one run as the agent would send them for `range` of its lines, one line per
    /// step, 10 bytes per line; key "b" is logged every other step.
    fn answer(values: &[(i64, f64)], lines: std::ops::Range<usize>) -> RunPoints {
        let rows = &values[lines.clone()];
        let sparse: Vec<u32> = (0..rows.len() as u32)
            .filter(|i| (lines.start as u32 + i).is_multiple_of(2))
            .collect();
        RunPoints {
            dir: "runs/a/1".into(),
            from: lines.start as u64 * 10,
            to: lines.end as u64 * 10,
            next_line: lines.end as u64 + 1,
            eof: lines.end == values.len(),
            steps: rows.iter().map(|r| r.0).collect(),
            times: rows.iter().map(|r| r.1).collect(),
            series: vec![
                Series {
                    key: "a".into(),
                    rows: None,
                    values: rows.iter().map(|r| r.1 * 2.0).collect(),
                },
                Series {
                    key: "b".into(),
                    values: sparse.iter().map(|&i| rows[i as usize].1).collect(),
                    rows: Some(sparse),
                },
            ],
            ..RunPoints::default()
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

        /// However a run's lines are split into answers, and whichever answers arrive twice,
        /// the stored series are those of one answer holding every line.
        #[test]
        fn any_split_and_replay_gives_the_same_series(
            steps in proptest::collection::vec(0i64..40, 1..120),
            cuts in proptest::collection::vec(0usize..120, 0..8),
            replays in proptest::collection::vec(0usize..16, 0..6),
        ) {
            let values: Vec<(i64, f64)> = steps.iter().enumerate().map(|(i, &s)| (s, i as f64)).collect();
            let n = values.len();
            let mut bounds: Vec<usize> = cuts.into_iter().map(|c| c % (n + 1)).collect();
            bounds.extend([0, n]);
            bounds.sort_unstable();
            bounds.dedup();
            let answers: Vec<RunPoints> = bounds.windows(2).map(|w| answer(&values, w[0]..w[1])).collect();

            let (_t1, mut whole) = fresh_store();
            let (r1, k1) = one_run(&mut whole, n as u64 * 10);
            whole.ingest_points(r1, &PointBatch { runs: vec![answer(&values, 0..n)] }).unwrap();

            let (_t2, mut split) = fresh_store();
            let (r2, k2) = one_run(&mut split, n as u64 * 10);
            for (i, a) in answers.iter().enumerate() {
                split.ingest_points(r2, &PointBatch { runs: vec![a.clone()] }).unwrap();
                for &j in &replays {
                    if j <= i {
                        split.ingest_points(r2, &PointBatch { runs: vec![answers[j].clone()] }).unwrap();
                    }
                }
            }
            for key in ["a", "b"] {
                let w = whole.points(k1, key).unwrap();
                let s = split.points(k2, key).unwrap();
                prop_assert_eq!(format!("{w:?}"), format!("{s:?}"));
            }
            prop_assert_eq!(format!("{:?}", whole.metric_keys(k1).unwrap()), format!("{:?}", split.metric_keys(k2).unwrap()));
            let (a, b) = (whole.run(r1, "runs/a/1").unwrap().unwrap(), split.run(r2, "runs/a/1").unwrap().unwrap());
            prop_assert_eq!((a.points, a.last_step, a.synced_bytes), (b.points, b.last_step, b.synced_bytes));
        }
    }
}
