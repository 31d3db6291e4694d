//! The read side's types and per-run reads: a run as listed ([`RunRow`]), the filters and sorts
//! of listings (their SQL is in `listing.rs`), one run by key, its records, metric keys, plain
//! series in step order, file manifest and corrupt lines, and the writers' lookup of a run's key
//! ([`run_id_of`]). Nothing here writes. Ids are in `ids.rs`.

use rusqlite::{params, Connection, OptionalExtension, Row};
use serde_json::Value;

use runicorn_protocol::wire::{EventsState, WireCorruptLine};

use crate::error::{SqliteContext, StoreError};
use crate::ids::{RemoteId, RunKey};
use crate::run_query::RunQuery;
use crate::sql::from_sql_int;
use crate::store::Store;

/// One run as listed.
#[derive(Debug, Clone, PartialEq)]
pub struct RunRow {
    pub key: RunKey,
    pub remote_id: RemoteId,
    /// The remote's name.
    pub remote: String,
    /// Run directory relative to the agent's root: the run's key on its remote.
    pub dir: String,
    /// The run id (`20261126_...`).
    pub id: String,
    pub path: String,
    pub layout: String,
    /// The effective alias: the hub's annotation when set, else the run's own.
    pub alias: Option<String>,
    /// The effective tags: the hub's annotation when set, else the run's own.
    pub tags: Vec<String>,
    /// The run's own alias, as its remote reports it.
    pub remote_alias: Option<String>,
    /// The run's own tags, as its remote reports them.
    pub remote_tags: Vec<String>,
    /// The hub's notes on the run.
    pub notes: Option<String>,
    /// In the hub's recycle bin since (Unix seconds); `None`: not trashed.
    pub trashed_at: Option<f64>,
    /// Effective status as judged on the remote (`running`, `finished`, `crashed`, …).
    pub status: String,
    pub reason: Option<String>,
    pub created_at: Option<f64>,
    pub ended_at: Option<f64>,
    pub hostname: Option<String>,
    /// Upstream's soft-delete marker is present.
    pub deleted: bool,
    /// Gone from the remote; the hub keeps its data.
    pub removed: bool,
    pub removed_at: Option<f64>,
    /// When this hub first saw the run.
    pub first_seen_at: f64,
    pub summary: Option<Value>,
    pub config: Option<Value>,
    /// `events.jsonl` as the agent last reported it.
    pub remote_events: EventsState,
    /// Size of `logs.txt` on the remote.
    pub log_bytes: u64,
    /// Metric points stored (distinct (key, step) pairs).
    pub points: u64,
    /// Largest step stored.
    pub last_step: Option<i64>,
    /// Metric keys stored, by name: the first [`ROW_KEYS`] of them (see `key_count`).
    pub keys: Vec<String>,
    /// How many metric keys are stored.
    pub key_count: u64,
    /// Bytes of `events.jsonl` the store holds.
    pub synced_bytes: u64,
    /// Byte range of `logs.txt` the store holds; `None` before the first fetch.
    pub log_synced: Option<(u64, u64)>,
    /// Its remote was removed by the user (the hub kept the run).
    pub remote_removed: bool,
    /// Its remote is paused.
    pub remote_paused: bool,
    /// Its remote's follower holds a connection.
    pub remote_connected: bool,
    /// Its remote's follow-lease heartbeat, holder pid and host (see `remotes.rs`).
    pub remote_follower_beat: Option<f64>,
    pub remote_follower_pid: Option<i64>,
    pub remote_follower_host: Option<String>,
    /// The last time the hub heard from its remote.
    pub remote_heard_at: Option<f64>,
    /// The last heartbeat its `status.json` recorded (a number there, else `None`): when a run
    /// that ended without saying so (crashed, killed) was last alive.
    pub heartbeat_at: Option<f64>,
    /// Its remote is known only from imported bundles (see [`crate::is_imported_address`]).
    pub remote_imported: bool,
}

impl RunRow {
    /// Its remote's state at `now` (see [`crate::RemoteState::of`]).
    pub fn remote_state(&self, now: f64) -> crate::RemoteState {
        let lease = crate::Lease {
            beat: self.remote_follower_beat,
            pid: self.remote_follower_pid,
            host: self.remote_follower_host.as_deref(),
        };
        crate::RemoteState::of(
            self.remote_removed,
            self.remote_paused,
            self.remote_connected,
            lease.is_alive(now),
            self.remote_imported,
        )
    }

    /// True while the store lacks points the remote has.
    pub fn points_pending(&self) -> bool {
        !self.removed && self.synced_bytes != self.remote_events.bytes
    }
}

/// Most metric keys a [`RunRow`] lists (`keys`; `key_count` says how many there are), and
/// most of the agent's reported keys it keeps (`remote_events.keys`): a row stays small for a
/// run with hundreds of thousands of keys.
pub const ROW_KEYS: usize = 100;

/// The records of a run that listings leave out (they can be large).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct RunRecords {
    pub meta: Option<Value>,
    pub status_record: Option<Value>,
    pub environment: Option<Value>,
}

/// One metric key of a run with its stored totals.
#[derive(Debug, Clone, PartialEq)]
pub struct MetricKey {
    pub name: String,
    pub points: u64,
    pub first_step: i64,
    pub last_step: i64,
}

/// A run's progress as a live reader polls it ([`Store::run_progress`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunProgress {
    /// Metric points stored (the sum of the keys' `points`).
    pub points: u64,
    /// Largest step stored.
    pub last_step: Option<i64>,
    /// Changes exactly when the status, alias, summary, notes or tags change.
    pub shown: String,
}

/// One file of a run's manifest.
#[derive(Debug, Clone, PartialEq)]
pub struct FileRow {
    /// Relative to the run directory.
    pub path: String,
    pub size: u64,
    pub mtime: f64,
    /// As the agent reported it.
    pub sha256: Option<String>,
    /// The content in the hub's file cache (see `Store::file_path`), for this size and mtime.
    pub cached_sha256: Option<String>,
}

/// What a run listing sorts by.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum RunOrder {
    #[default]
    CreatedAt,
    EndedAt,
    Path,
    Alias,
    Status,
    Remote,
    LastStep,
    Points,
    /// The run's hostname.
    Host,
    /// The run's own id.
    RunId,
    /// A top-level key of `summary.json` (numbers before text; runs without it last).
    Summary(String),
    /// A flattened config key, dotted for nested objects (`optim.lr`); as for `Summary`.
    Config(String),
}

/// Which runs a listing shows with respect to the hub's recycle bin.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TrashView {
    /// Runs not in the recycle bin.
    #[default]
    Hide,
    /// Only runs in the recycle bin.
    Only,
    /// Both.
    Include,
}

/// Distinct summary and flattened config keys across runs, and metric keys, each sorted.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ColumnKeys {
    pub summary: Vec<String>,
    pub config: Vec<String>,
    /// Metric keys the store holds points of (for `metric.<key>.last|min|max`).
    pub metrics: Vec<String>,
}

/// Sort order of a run listing; ties are broken by the store's run order, so pages are stable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunSort {
    pub by: RunOrder,
    pub descending: bool,
}

impl Default for RunSort {
    /// Newest first.
    fn default() -> Self {
        RunSort {
            by: RunOrder::CreatedAt,
            descending: true,
        }
    }
}

/// Which runs to list. The default lists every present, not soft-deleted run, newest first.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct RunFilter {
    /// Remote name.
    pub remote: Option<String>,
    /// Run path or a parent of it, by whole segments (`cv` matches `cv/resnet`, not `cvx`).
    pub path_prefix: Option<String>,
    /// Any of these statuses.
    pub status: Option<Vec<String>>,
    /// Runs carrying this tag.
    pub tag: Option<String>,
    /// Case-insensitive substring of the path, (effective) alias, run id, hostname, (effective)
    /// tags or notes.
    pub text: Option<String>,
    /// An expression of the filter language (`crate::run_query`), and-ed with the rest.
    pub query: Option<RunQuery>,
    /// Also runs gone from their remote.
    pub include_removed: bool,
    /// Also runs carrying upstream's soft-delete marker.
    pub include_deleted: bool,
    /// The hub's recycle bin: hidden, only, or both.
    pub trash: TrashView,
    /// At most this many rows (all when `None`).
    pub limit: Option<u32>,
    pub offset: u32,
    pub sort: RunSort,
}

pub(crate) const RUN_COLUMNS: &str = concat!(
    "r.id, r.remote, m.name, r.dir, r.run_id, r.path, r.layout,
    coalesce(r.user_alias, r.alias), coalesce(r.user_tags, r.tags), r.status, r.reason, r.created_at, r.ended_at, r.hostname, r.deleted, r.removed,
    r.removed_at, r.first_seen_at, r.summary, r.config, r.events_bytes, r.events_lines,
    r.events_points, r.events_keys, r.events_last_step, r.events_last_event_at,
    r.events_corrupt_lines, r.log_bytes, r.stored_points, r.stored_last_step,
    (SELECT json_group_array(name) FROM (SELECT k.name FROM run_keys rk
        JOIN metric_keys k ON k.id = rk.key WHERE rk.run = r.id ORDER BY k.name LIMIT 100)),
    r.copy_offset, r.log_start, r.log_end, r.alias, r.tags, r.notes, r.trashed_at,
    (SELECT count(*) FROM run_keys rk WHERE rk.run = r.id),
    m.removed_at IS NOT NULL, m.paused, m.connected, m.follower_beat, m.heard_at,
    m.follower_pid, m.follower_host,
    CASE WHEN json_valid(r.status_record)
          AND json_type(r.status_record, '$.heartbeat_at') IN ('integer', 'real')
         THEN json_extract(r.status_record, '$.heartbeat_at') END, ",
    crate::remotes::address_kind_sql!("m")
);

pub(crate) const RUN_FROM: &str = "FROM runs r JOIN remotes m ON m.id = r.remote";

fn json_opt(text: Option<String>) -> Option<Value> {
    text.and_then(|t| serde_json::from_str(&t).ok())
}

fn strings(text: &str) -> Vec<String> {
    serde_json::from_str(text).unwrap_or_default()
}

/// The first `n` strings of a JSON array (the rest skipped unbuilt); empty when unreadable.
fn first_strings(text: &str, n: usize) -> Vec<String> {
    use serde::de::{Deserializer, IgnoredAny, SeqAccess, Visitor};
    struct First(usize);
    impl<'de> Visitor<'de> for First {
        type Value = Vec<String>;
        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("an array of strings")
        }
        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Vec<String>, A::Error> {
            let mut out = Vec::new();
            while out.len() < self.0 {
                match seq.next_element::<String>()? {
                    Some(s) => out.push(s),
                    None => return Ok(out),
                }
            }
            while seq.next_element::<IgnoredAny>()?.is_some() {}
            Ok(out)
        }
    }
    serde_json::Deserializer::from_str(text)
        .deserialize_seq(First(n))
        .unwrap_or_default()
}

pub(crate) fn run_row(row: &Row) -> rusqlite::Result<RunRow> {
    let log_start: Option<i64> = row.get(32)?;
    let log_end: Option<i64> = row.get(33)?;
    Ok(RunRow {
        key: RunKey(row.get(0)?),
        remote_id: RemoteId(row.get(1)?),
        remote: row.get(2)?,
        dir: row.get(3)?,
        id: row.get(4)?,
        path: row.get(5)?,
        layout: row.get(6)?,
        alias: row.get(7)?,
        tags: strings(&row.get::<_, String>(8)?),
        status: row.get(9)?,
        reason: row.get(10)?,
        created_at: row.get(11)?,
        ended_at: row.get(12)?,
        hostname: row.get(13)?,
        deleted: row.get(14)?,
        removed: row.get(15)?,
        removed_at: row.get(16)?,
        first_seen_at: row.get(17)?,
        summary: json_opt(row.get(18)?),
        config: json_opt(row.get(19)?),
        remote_events: EventsState {
            bytes: from_sql_int(row.get(20)?),
            lines: from_sql_int(row.get(21)?),
            points: from_sql_int(row.get(22)?),
            keys: first_strings(&row.get::<_, String>(23)?, ROW_KEYS),
            last_step: row.get(24)?,
            last_event_at: row.get(25)?,
            corrupt_lines: from_sql_int(row.get(26)?),
        },
        log_bytes: from_sql_int(row.get(27)?),
        points: from_sql_int(row.get(28)?),
        last_step: row.get(29)?,
        keys: strings(&row.get::<_, String>(30)?),
        synced_bytes: from_sql_int(row.get(31)?),
        log_synced: log_start
            .zip(log_end)
            .map(|(s, e)| (from_sql_int(s), from_sql_int(e))),
        remote_alias: row.get(34)?,
        remote_tags: strings(&row.get::<_, String>(35)?),
        notes: row.get(36)?,
        trashed_at: row.get(37)?,
        key_count: from_sql_int(row.get(38)?),
        remote_removed: row.get(39)?,
        remote_paused: row.get(40)?,
        remote_connected: row.get(41)?,
        remote_follower_beat: row.get(42)?,
        remote_heard_at: row.get(43)?,
        remote_follower_pid: row.get(44)?,
        remote_follower_host: row.get(45)?,
        heartbeat_at: row.get(46)?,
        remote_imported: crate::remotes::is_imported_address(
            row.get::<_, Option<String>>(47)?.as_deref(),
        ),
    })
}

impl Store {
    /// One run by its remote and directory, removed or not.
    pub fn run(&self, remote: RemoteId, dir: &str) -> Result<Option<RunRow>, StoreError> {
        self.conn
            .prepare_cached(&format!(
                "SELECT {RUN_COLUMNS} {RUN_FROM} WHERE r.remote = ?1 AND r.dir = ?2"
            ))
            .and_then(|mut s| s.query_row(params![remote.0, dir], run_row).optional())
            .at(&self.db_path)
    }

    /// One run by its key.
    pub fn run_by_key(&self, run: RunKey) -> Result<Option<RunRow>, StoreError> {
        self.conn
            .prepare_cached(&format!("SELECT {RUN_COLUMNS} {RUN_FROM} WHERE r.id = ?1"))
            .and_then(|mut s| s.query_row([run.0], run_row).optional())
            .at(&self.db_path)
    }

    /// `meta.json`, `status.json` and `environment.json` of a run, as last reported.
    pub fn run_records(&self, run: RunKey) -> Result<Option<RunRecords>, StoreError> {
        self.conn
            .query_row(
                "SELECT meta, status_record, environment FROM runs WHERE id = ?1",
                [run.0],
                |r| {
                    Ok(RunRecords {
                        meta: json_opt(r.get(0)?),
                        status_record: json_opt(r.get(1)?),
                        environment: json_opt(r.get(2)?),
                    })
                },
            )
            .optional()
            .at(&self.db_path)
    }

    /// The metric keys stored for a run, by name.
    pub fn metric_keys(&self, run: RunKey) -> Result<Vec<MetricKey>, StoreError> {
        self.metric_keys_page(run, 0, None)
    }

    /// The metric keys of a run by name, from the `offset`-th, at most `limit` of them.
    pub fn metric_keys_page(
        &self,
        run: RunKey,
        offset: u64,
        limit: Option<u64>,
    ) -> Result<Vec<MetricKey>, StoreError> {
        let p = &self.db_path;
        let mut stmt = self
            .conn
            .prepare_cached(
                "SELECT k.name, rk.points, rk.first_step, rk.last_step FROM run_keys rk
                 JOIN metric_keys k ON k.id = rk.key WHERE rk.run = ?1 ORDER BY k.name
                 LIMIT ?2 OFFSET ?3",
            )
            .at(p)?;
        let limit = limit.map_or(-1, |l| i64::try_from(l).unwrap_or(i64::MAX));
        let offset = i64::try_from(offset).unwrap_or(i64::MAX);
        let rows = stmt
            .query_map(params![run.0, limit, offset], |r| {
                Ok(MetricKey {
                    name: r.get(0)?,
                    points: from_sql_int(r.get(1)?),
                    first_step: r.get(2)?,
                    last_step: r.get(3)?,
                })
            })
            .at(p)?;
        rows.collect::<Result<Vec<_>, _>>().at(p)
    }

    /// The metric keys every one of `runs` has, by name, at most `limit`. One statement: the
    /// keys of the run with the fewest are looked up in the others (index seeks), so the cost
    /// is that run's key count, never a product of key counts.
    pub fn shared_metric_keys(
        &self,
        runs: &[RunKey],
        limit: usize,
    ) -> Result<Vec<String>, StoreError> {
        let p = &self.db_path;
        let Some(first) = runs.first() else {
            return Ok(Vec::new());
        };
        let mut smallest = (*first, u64::MAX);
        for run in runs {
            let n: i64 = self
                .conn
                .prepare_cached("SELECT count(*) FROM run_keys WHERE run = ?1")
                .and_then(|mut s| s.query_row([run.0], |r| r.get(0)))
                .at(p)?;
            if from_sql_int(n) < smallest.1 {
                smallest = (*run, from_sql_int(n));
            }
        }
        let others: Vec<i64> = runs
            .iter()
            .filter(|r| **r != smallest.0)
            .map(|r| r.0)
            .collect();
        let others = serde_json::Value::from(others).to_string();
        let mut stmt = self
            .conn
            .prepare_cached(
                "SELECT k.name FROM run_keys rk JOIN metric_keys k ON k.id = rk.key
                 WHERE rk.run = ?1 AND NOT EXISTS (
                    SELECT 1 FROM json_each(?2) o WHERE NOT EXISTS (
                        SELECT 1 FROM run_keys x WHERE x.run = o.value AND x.key = rk.key))
                 ORDER BY k.name LIMIT ?3",
            )
            .at(p)?;
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let rows = stmt
            .query_map(params![smallest.0 .0, others, limit], |r| r.get(0))
            .at(p)?;
        rows.collect::<Result<Vec<_>, _>>().at(p)
    }

    /// What a live reader polls at every store change: the run's stored point count and a
    /// fingerprint of what a `run` event reports (status, alias, summary, notes, tags).
    /// `None` when the run is gone.
    pub fn run_progress(&self, run: RunKey) -> Result<Option<RunProgress>, StoreError> {
        self.conn
            .prepare_cached(
                "SELECT stored_points, stored_last_step, json_array(status,
                    coalesce(user_alias, alias), summary, notes, coalesce(user_tags, tags))
                 FROM runs WHERE id = ?1",
            )
            .and_then(|mut s| {
                s.query_row([run.0], |r| {
                    Ok(RunProgress {
                        points: from_sql_int(r.get(0)?),
                        last_step: r.get(1)?,
                        shown: r.get(2)?,
                    })
                })
                .optional()
            })
            .at(&self.db_path)
    }

    /// A run's series of one key as (step, time, value) in step order. NaN values and missing
    /// times come back as NaN.
    pub fn points(&self, run: RunKey, key: &str) -> Result<Vec<(i64, f64, f64)>, StoreError> {
        self.points_between(run, key, None, None)
    }

    /// Like [`Store::points`], for steps within `from..=to` (either end open): what a live
    /// chart appends, or a zoomed view reads.
    pub fn points_between(
        &self,
        run: RunKey,
        key: &str,
        from: Option<i64>,
        to: Option<i64>,
    ) -> Result<Vec<(i64, f64, f64)>, StoreError> {
        let p = &self.db_path;
        let mut stmt = self
            .conn
            .prepare_cached(
                "SELECT step, time, value FROM points
                 WHERE run = ?1 AND key = (SELECT id FROM metric_keys WHERE name = ?2)
                   AND step BETWEEN ?3 AND ?4
                 ORDER BY step",
            )
            .at(p)?;
        let rows = stmt
            .query_map(
                params![run.0, key, from.unwrap_or(i64::MIN), to.unwrap_or(i64::MAX)],
                |r| {
                    let time: Option<f64> = r.get(1)?;
                    let value: Option<f64> = r.get(2)?;
                    Ok((
                        r.get(0)?,
                        time.unwrap_or(f64::NAN),
                        value.unwrap_or(f64::NAN),
                    ))
                },
            )
            .at(p)?;
        rows.collect::<Result<Vec<_>, _>>().at(p)
    }

    /// The manifest of a run, by path.
    pub fn files(&self, run: RunKey) -> Result<Vec<FileRow>, StoreError> {
        let p = &self.db_path;
        let mut stmt = self
            .conn
            .prepare_cached(
                "SELECT path, size, mtime, sha256, cached_sha256 FROM files WHERE run = ?1
                 ORDER BY path",
            )
            .at(p)?;
        let rows = stmt
            .query_map([run.0], |r| {
                Ok(FileRow {
                    path: r.get(0)?,
                    size: from_sql_int(r.get(1)?),
                    mtime: r.get(2)?,
                    sha256: r.get(3)?,
                    cached_sha256: r.get(4)?,
                })
            })
            .at(p)?;
        rows.collect::<Result<Vec<_>, _>>().at(p)
    }

    /// The corrupt lines of a run's `events.jsonl` met while fetching (at most the first 1000).
    pub fn corrupt_lines(&self, run: RunKey) -> Result<Vec<WireCorruptLine>, StoreError> {
        let p = &self.db_path;
        let mut stmt = self
            .conn
            .prepare_cached(
                "SELECT line, offset, reason FROM corrupt_lines WHERE run = ?1 ORDER BY line",
            )
            .at(p)?;
        let rows = stmt
            .query_map([run.0], |r| {
                Ok(WireCorruptLine {
                    line: from_sql_int(r.get(0)?),
                    offset: from_sql_int(r.get(1)?),
                    reason: r.get(2)?,
                })
            })
            .at(p)?;
        rows.collect::<Result<Vec<_>, _>>().at(p)
    }

    /// Metric points stored for a remote's runs.
    pub fn total_points(&self, remote: RemoteId) -> Result<u64, StoreError> {
        let n: i64 = self
            .conn
            .query_row(
                "SELECT coalesce(sum(stored_points), 0) FROM runs WHERE remote = ?1",
                [remote.0],
                |r| r.get(0),
            )
            .at(&self.db_path)?;
        Ok(from_sql_int(n))
    }

    /// Bytes of the present runs' `events.jsonl` on `remote` not stored yet (for progress).
    pub fn points_bytes_pending(&self, remote: RemoteId) -> Result<u64, StoreError> {
        let n: i64 = self
            .conn
            .query_row(
                "SELECT coalesce(sum(max(events_bytes - copy_offset, 0)), 0) FROM runs
                 WHERE remote = ?1 AND removed = 0",
                [remote.0],
                |r| r.get(0),
            )
            .at(&self.db_path)?;
        Ok(from_sql_int(n))
    }
}

/// The id of a run, if the store knows it (inside a writer's transaction).
pub(crate) fn run_id_of(
    tx: &Connection,
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

    /// Three remotes' worth of runs with different paths, statuses, tags and summaries.
    fn sample() -> (tempfile::TempDir, Store, RemoteId) {
        let (tmp, mut store) = fresh_store();
        let r = add_remote(&mut store, "gpu");
        let mut runs = Vec::new();
        for (i, (dir, status, acc)) in [
            ("runs/cv/resnet/1", "finished", serde_json::json!(0.9)),
            ("runs/cv/resnet/2", "running", serde_json::json!(0.7)),
            ("runs/cv/vit/1", "crashed", serde_json::json!(null)),
            ("runs/cvx/1", "finished", serde_json::json!(0.8)),
            ("runs/nlp/gpt/1", "finished", serde_json::json!("n/a")),
        ]
        .into_iter()
        .enumerate()
        {
            let mut run = run_change(dir, i as u64 + 1, 0);
            run.status = status.into();
            run.summary = Some(serde_json::json!({"val.acc": acc, "$x": i, "say \"hi\"": i}));
            if i == 1 {
                run.tags = vec!["best".into()];
                run.alias = Some("Baseline-ResNet".into());
            }
            if i == 4 {
                run.deleted = true;
            }
            runs.push(run);
        }
        store
            .apply_change_batch(r, &change_batch(true, runs, "e", 5, false))
            .unwrap();
        (tmp, store, r)
    }

    #[test]
    fn a_runs_last_heartbeat_lists_when_its_status_record_has_a_number() {
        let (_tmp, mut store) = fresh_store();
        let r = add_remote(&mut store, "gpu");
        let records = [
            Some(serde_json::json!({"status": "running", "heartbeat_at": 1795696146.5})),
            Some(serde_json::json!({"status": "running", "heartbeat_at": "soon"})),
            Some(serde_json::json!(["not", "an", "object"])),
            None,
        ];
        let runs = records
            .iter()
            .enumerate()
            .map(|(i, record)| {
                let mut run = run_change(&format!("runs/hb/{i}"), 1, 0);
                run.status = "crashed".into();
                run.status_record = record.clone();
                run
            })
            .collect();
        store
            .apply_change_batch(r, &change_batch(true, runs, "e", 1, false))
            .unwrap();
        let beats: Vec<Option<f64>> = (0..4)
            .map(|i| {
                store
                    .run(r, &format!("runs/hb/{i}"))
                    .unwrap()
                    .unwrap()
                    .heartbeat_at
            })
            .collect();
        assert_eq!(beats, [Some(1795696146.5), None, None, None]);
    }

    fn dirs(store: &Store, f: &RunFilter) -> Vec<String> {
        store
            .list_runs(f)
            .unwrap()
            .into_iter()
            .map(|r| r.dir)
            .collect()
    }

    #[test]
    fn filters_select_by_remote_path_segment_status_tag_and_text() {
        let (_tmp, store, _) = sample();
        let all = RunFilter::default();
        assert_eq!(
            dirs(&store, &all).len(),
            4,
            "soft-deleted runs are left out"
        );
        let with_deleted = RunFilter {
            include_deleted: true,
            ..all.clone()
        };
        assert_eq!(store.count_runs(&with_deleted).unwrap(), 5);
        let cv = RunFilter {
            path_prefix: Some("cv/".into()),
            ..all.clone()
        };
        assert_eq!(
            dirs(&store, &cv),
            ["runs/cv/vit/1", "runs/cv/resnet/2", "runs/cv/resnet/1"]
        );
        let resnet = RunFilter {
            path_prefix: Some("cv/resnet".into()),
            ..all.clone()
        };
        assert_eq!(store.count_runs(&resnet).unwrap(), 2);
        let status = RunFilter {
            status: Some(vec!["running".into(), "crashed".into()]),
            ..all.clone()
        };
        assert_eq!(dirs(&store, &status), ["runs/cv/vit/1", "runs/cv/resnet/2"]);
        let none = RunFilter {
            status: Some(vec![]),
            ..all.clone()
        };
        assert!(dirs(&store, &none).is_empty());
        let tag = RunFilter {
            tag: Some("best".into()),
            ..all.clone()
        };
        assert_eq!(dirs(&store, &tag), ["runs/cv/resnet/2"]);
        let text = RunFilter {
            text: Some("baseline".into()),
            ..all.clone()
        };
        assert_eq!(dirs(&store, &text), ["runs/cv/resnet/2"]);
        let other = RunFilter {
            remote: Some("elsewhere".into()),
            ..all.clone()
        };
        assert!(dirs(&store, &other).is_empty());
        let gpu = RunFilter {
            remote: Some("gpu".into()),
            ..all
        };
        assert_eq!(dirs(&store, &gpu).len(), 4);
    }

    #[test]
    fn sorting_and_paging_are_stable() {
        let (_tmp, store, _) = sample();
        let by_path = RunFilter {
            sort: RunSort {
                by: RunOrder::Path,
                descending: false,
            },
            ..RunFilter::default()
        };
        let all = dirs(&store, &by_path);
        assert_eq!(
            all,
            [
                "runs/cv/resnet/1",
                "runs/cv/resnet/2",
                "runs/cv/vit/1",
                "runs/cvx/1"
            ]
        );
        let mut paged = Vec::new();
        for page in 0..3 {
            paged.extend(dirs(
                &store,
                &RunFilter {
                    limit: Some(2),
                    offset: page * 2,
                    ..by_path.clone()
                },
            ));
        }
        assert_eq!(paged, all);
        // Numbers sort before text; absent values last either way.
        for (key, descending, want) in [
            (
                "val.acc",
                true,
                vec![
                    "runs/cv/resnet/1",
                    "runs/cvx/1",
                    "runs/cv/resnet/2",
                    "runs/cv/vit/1",
                ],
            ),
            (
                "val.acc",
                false,
                vec![
                    "runs/cv/resnet/2",
                    "runs/cvx/1",
                    "runs/cv/resnet/1",
                    "runs/cv/vit/1",
                ],
            ),
            (
                "$x",
                true,
                vec![
                    "runs/cvx/1",
                    "runs/cv/vit/1",
                    "runs/cv/resnet/2",
                    "runs/cv/resnet/1",
                ],
            ),
            (
                "say \"hi\"",
                false,
                vec![
                    "runs/cv/resnet/1",
                    "runs/cv/resnet/2",
                    "runs/cv/vit/1",
                    "runs/cvx/1",
                ],
            ),
        ] {
            let f = RunFilter {
                sort: RunSort {
                    by: RunOrder::Summary(key.into()),
                    descending,
                },
                ..RunFilter::default()
            };
            assert_eq!(dirs(&store, &f), want, "{key} {descending}");
        }
    }

    #[test]
    fn rows_carry_records_and_stored_totals() {
        let (_tmp, mut store, r) = sample();
        let row = store.run(r, "runs/cv/resnet/2").unwrap().unwrap();
        assert_eq!((row.id.as_str(), row.path.as_str()), ("2", "cv/resnet"));
        assert_eq!(row.alias.as_deref(), Some("Baseline-ResNet"));
        assert_eq!(row.tags, ["best"]);
        assert_eq!(row.remote, "gpu");
        assert_eq!(row.config.as_ref().unwrap()["lr"], 0.1);
        assert_eq!(row.summary.as_ref().unwrap()["val.acc"], 0.7);
        assert_eq!(row.points, 0);
        assert!(row.keys.is_empty());
        assert_eq!(store.run_by_key(row.key).unwrap().unwrap(), row);
        let records = store.run_records(row.key).unwrap().unwrap();
        assert_eq!(records.meta.unwrap()["run_id"], "runs/cv/resnet/2");

        let mut change = run_change("runs/cv/resnet/2", 9, 100);
        change.alias = row.alias.clone();
        store
            .apply_change_batch(r, &change_batch(false, vec![change], "e", 9, false))
            .unwrap();
        assert!(store
            .run(r, "runs/cv/resnet/2")
            .unwrap()
            .unwrap()
            .points_pending());
        store
            .ingest_points(r, &point_batch("runs/cv/resnet/2", 0, 100, 0..10))
            .unwrap();
        let row = store.run(r, "runs/cv/resnet/2").unwrap().unwrap();
        assert_eq!((row.points, row.last_step), (20, Some(9)));
        assert_eq!(row.keys, ["k0", "k1"]);
        assert!(!row.points_pending());
        assert_eq!(
            store
                .points_between(row.key, "k1", Some(3), Some(5))
                .unwrap()
                .len(),
            3
        );
        assert!(store.points(row.key, "nope").unwrap().is_empty());
        assert_eq!(store.total_points(r).unwrap(), 20);
        assert_eq!(store.remote("gpu").unwrap().unwrap().points, 20);
    }

    /// A batch of `steps` for `keys` keys named `m000000`, `m000001`, …
    fn wide_batch(
        dir: &str,
        from: u64,
        to: u64,
        steps: std::ops::Range<i64>,
        keys: usize,
    ) -> runicorn_protocol::wire::PointBatch {
        let mut batch = point_batch(dir, from, to, steps);
        let run = &mut batch.runs[0];
        let values: Vec<f64> = run.steps.iter().map(|&s| s as f64).collect();
        run.series = (0..keys)
            .map(|k| runicorn_protocol::wire::Series {
                key: format!("m{k:06}"),
                rows: None,
                values: values.clone(),
            })
            .collect();
        batch
    }

    #[test]
    fn many_keys_are_listed_capped_shared_and_read_live_in_one_statement() {
        let (_tmp, mut store) = fresh_store();
        let r = add_remote(&mut store, "gpu");
        let runs = vec![
            run_change("runs/a/1", 1, 3000),
            run_change("runs/a/2", 2, 3000),
        ];
        store
            .apply_change_batch(r, &change_batch(true, runs, "e", 2, false))
            .unwrap();
        store
            .ingest_points(r, &wide_batch("runs/a/1", 0, 1000, 0..2, 300))
            .unwrap();
        store
            .ingest_points(r, &wide_batch("runs/a/2", 0, 1000, 0..2, 250))
            .unwrap();
        let a = store.run(r, "runs/a/1").unwrap().unwrap();
        let b = store.run(r, "runs/a/2").unwrap().unwrap();
        assert_eq!((a.keys.len(), a.key_count), (ROW_KEYS, 300));
        assert_eq!(a.keys[0], "m000000");
        let page = store.metric_keys_page(a.key, 290, Some(20)).unwrap();
        assert_eq!(page.len(), 10);
        assert_eq!(page[0].name, "m000290");
        let shared = store.shared_metric_keys(&[a.key, b.key], 1000).unwrap();
        assert_eq!(shared.len(), 250);
        assert_eq!(shared[249], "m000249");
        assert_eq!(
            store.shared_metric_keys(&[a.key, b.key], 5).unwrap().len(),
            5
        );

        // Live: the extents say which keys grew; one statement reads their new points.
        let before = store.run_progress(a.key).unwrap().unwrap();
        let extents = store.key_extents(a.key).unwrap();
        assert_eq!(extents.len(), 300);
        assert!(extents.iter().all(|e| e.points == 2 && e.last_step == 1));
        store
            .ingest_points(r, &wide_batch("runs/a/1", 1000, 2000, 2..4, 3))
            .unwrap();
        let after = store.run_progress(a.key).unwrap().unwrap();
        assert_eq!(after.points, before.points + 6);
        assert_eq!(after.shown, before.shown);
        let grown: Vec<(i64, i64)> = store
            .key_extents(a.key)
            .unwrap()
            .iter()
            .filter(|e| e.last_step > 1)
            .map(|e| (e.key, 1))
            .collect();
        assert_eq!(grown.len(), 3);
        let got = store.points_after_keys(a.key, &grown).unwrap();
        assert_eq!(got.len(), 3);
        assert_eq!(got[0].1.key, "m000000");
        assert_eq!(got[0].1.steps, [2, 3]);
        let one = store.key_points_after(a.key, grown[0].0, 2, 10).unwrap();
        assert_eq!(one.steps, [3]);
        store
            .annotate_run(
                a.key,
                &crate::RunAnnotation {
                    alias: Some(Some("new".into())),
                    tags: None,
                    notes: None,
                },
            )
            .unwrap();
        assert_ne!(
            store.run_progress(a.key).unwrap().unwrap().shown,
            after.shown
        );
        assert!(store.run_progress(RunKey(999)).unwrap().is_none());
    }

    #[test]
    fn a_reader_reads_committed_state_while_the_writer_ingests() {
        let (_tmp, mut store) = fresh_store();
        let r = add_remote(&mut store, "gpu");
        let batches = 20;
        store
            .apply_change_batch(
                r,
                &change_batch(
                    true,
                    vec![run_change("runs/a/1", 1, batches * 1000)],
                    "e",
                    1,
                    false,
                ),
            )
            .unwrap();
        let key = store.run(r, "runs/a/1").unwrap().unwrap().key;
        let dir = store.dir().to_owned();
        let reader = std::thread::spawn(move || {
            let reader = Store::open_read_only(&dir).unwrap();
            let mut seen = Vec::new();
            loop {
                // One read transaction: the row and the series agree with each other.
                reader.conn.execute_batch("BEGIN").unwrap();
                let row = reader.run_by_key(key).unwrap().unwrap();
                let n = reader.points(key, "k0").unwrap().len() as u64;
                reader.conn.execute_batch("COMMIT").unwrap();
                assert_eq!(row.points, 2 * n, "a reader never sees half a batch");
                assert_eq!(n % 100, 0);
                seen.push(n);
                if n == batches * 100 {
                    return seen;
                }
            }
        });
        for b in 0..batches {
            let steps = (b * 100) as i64..((b + 1) * 100) as i64;
            store
                .ingest_points(r, &point_batch("runs/a/1", b * 1000, (b + 1) * 1000, steps))
                .unwrap();
        }
        let seen = reader.join().unwrap();
        assert!(seen.windows(2).all(|w| w[0] <= w[1]));
    }
}
