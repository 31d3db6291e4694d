//! The agent's persistent index of the runs under a storage root.
//!
//! It lives in `<root>/.runicorn-agent/index.sqlite` and remembers, per run directory, the
//! fingerprints of its files, its records as last read, and how far `events.jsonl` was read
//! with the totals up to there (and the timing of the recent new steps, for the `stalled`
//! verdict). A listing then stats each run's files and reads only what
//! changed: a finished run costs four `stat` calls, a live run only its new event lines.
//! Liveness and stalls are never cached (they depend on now). The index is a cache: a damaged one is
//! rebuilt, and a root the agent may not write to is read without one.
//!
//! `feed` adds the change feed of `serve` on top of the same cache: a sequence value per run,
//! tombstones, and each announced state (its records from `records`, its file manifest with
//! cached hashes from `manifest`), stored by `feed::store`; `feed::artifacts` puts the artifact
//! directories (`artifacts/<type>/<name>`) in the same feed, with values from the same counter.

mod alerts;
pub mod cached_hashes;
pub mod feed;
mod fingerprint;
pub mod manifest;
pub mod records;
mod schema;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use runicorn_protocol::parallel::{io_workers, map_in_order};
use runicorn_protocol::run_format::{
    build_overview, continue_event_totals, read_run_records, DeletedMarker, EventProgress,
    LivenessContext, Meta, MetricTotals, NonFiniteSeen, RunFiles, RunLocation, RunOverview,
    RunRecords, RunStatus, StatusRecord, StepTiming,
};
use rusqlite::{params, Connection, OptionalExtension};

use fingerprint::{file_fingerprint, records_fingerprint};

/// Folder under the storage root that holds the agent's own files.
pub const AGENT_DIR: &str = ".runicorn-agent";
/// The index's file in [`AGENT_DIR`].
pub const INDEX_FILE: &str = "index.sqlite";

/// Why the index could not be used.
#[derive(Debug, thiserror::Error)]
pub enum IndexError {
    #[error("index {path}: {cause}")]
    Sqlite {
        path: PathBuf,
        cause: rusqlite::Error,
    },
    #[error("index folder {path}: {cause}")]
    Io {
        path: PathBuf,
        cause: std::io::Error,
    },
    #[error("index {path}: {cause}")]
    Schema {
        path: PathBuf,
        cause: schema::MigrateError,
    },
}

/// One run's cached state.
#[derive(Debug, Clone)]
struct CachedRun {
    records_fp: String,
    records: RunRecords,
    events_fp: String,
    progress: EventProgress,
    /// The alerts raised about the run, and the evidence kept for them.
    alerts: alerts::RunAlerts,
}

/// The open index of one storage root.
pub struct RunIndex {
    conn: Connection,
    root: PathBuf,
    path: PathBuf,
}

impl RunIndex {
    /// Opens (creating if needed) the index of `root`. A file that is not a usable index is
    /// replaced: it only ever holds what can be read again from the runs.
    pub fn open(root: &Path) -> Result<RunIndex, IndexError> {
        let dir = root.join(AGENT_DIR);
        std::fs::create_dir_all(&dir).map_err(|cause| IndexError::Io {
            path: dir.clone(),
            cause,
        })?;
        let path = dir.join(INDEX_FILE);
        match Self::open_file(&path) {
            Ok(conn) => Ok(RunIndex {
                conn,
                root: root.to_owned(),
                path,
            }),
            Err(IndexError::Sqlite { cause, .. }) if is_damaged(&cause) => {
                for suffix in ["", "-wal", "-shm"] {
                    let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
                }
                let conn = Self::open_file(&path)?;
                Ok(RunIndex {
                    conn,
                    root: root.to_owned(),
                    path,
                })
            }
            Err(e) => Err(e),
        }
    }

    /// An index that lives in memory only (for a root the agent may not write to): it starts
    /// empty, with a fresh epoch, and is gone when the process ends.
    pub fn open_in_memory(root: &Path) -> Result<RunIndex, IndexError> {
        let path = PathBuf::from(":memory:");
        let err = |cause| IndexError::Sqlite {
            path: path.clone(),
            cause,
        };
        let conn = Connection::open_in_memory().map_err(err)?;
        let conn = Self::prepare(conn, &path)?;
        Ok(RunIndex {
            conn,
            root: root.to_owned(),
            path,
        })
    }

    fn open_file(path: &Path) -> Result<Connection, IndexError> {
        let err = |cause| IndexError::Sqlite {
            path: path.to_owned(),
            cause,
        };
        let conn = Connection::open(path).map_err(err)?;
        conn.busy_timeout(Duration::from_secs(5)).map_err(err)?;
        conn.pragma_update(None, "journal_mode", "WAL")
            .map_err(err)?;
        conn.pragma_update(None, "synchronous", "NORMAL")
            .map_err(err)?;
        Self::prepare(conn, path)
    }

    /// Caps SQLite's page cache of this connection at `kib` KiB (SQLite's default is 2 MiB):
    /// a long-lived process that reads the index now and then keeps less, and the system's
    /// file cache still holds the pages.
    pub fn limit_page_cache(&self, kib: u32) -> Result<(), IndexError> {
        self.conn
            .pragma_update(None, "cache_size", -i64::from(kib))
            .map_err(|cause| IndexError::Sqlite {
                path: self.path.clone(),
                cause,
            })
    }

    /// Migrates the schema and makes sure an epoch exists.
    fn prepare(mut conn: Connection, path: &Path) -> Result<Connection, IndexError> {
        let err = |cause| IndexError::Sqlite {
            path: path.to_owned(),
            cause,
        };
        schema::migrate(&mut conn).map_err(|cause| match cause {
            schema::MigrateError::Sqlite(cause) => IndexError::Sqlite {
                path: path.to_owned(),
                cause,
            },
            newer => IndexError::Schema {
                path: path.to_owned(),
                cause: newer,
            },
        })?;
        let epoch: Option<String> = conn
            .query_row(
                "SELECT value FROM index_info WHERE key = 'epoch'",
                [],
                |r| r.get(0),
            )
            .optional()
            .map_err(err)?;
        if epoch.is_none() {
            // A new epoch tells a peer that remembered the old index to compare afresh.
            let value = format!("{:016x}", fastrand::u64(..));
            conn.execute(
                "INSERT OR IGNORE INTO index_info(key, value) VALUES ('epoch', ?1)",
                [value],
            )
            .map_err(err)?;
        }
        Ok(conn)
    }

    /// The epoch of this index: a new one after the index was deleted or rebuilt.
    pub fn epoch(&self) -> Result<String, IndexError> {
        self.conn
            .query_row(
                "SELECT value FROM index_info WHERE key = 'epoch'",
                [],
                |r| r.get(0),
            )
            .map_err(|cause| IndexError::Sqlite {
                path: self.path.clone(),
                cause,
            })
    }

    /// Brings every listed run up to date and returns their overviews (in the given order).
    /// Runs that vanished from disk are dropped from the index.
    /// `on_each` is called once per run read (for a progress bar).
    pub fn refresh(
        &mut self,
        locations: &[RunLocation],
        ctx: &LivenessContext,
        on_each: &(dyn Fn() + Sync),
    ) -> Result<Vec<RunOverview>, IndexError> {
        let cached = self.load().map_err(|cause| IndexError::Sqlite {
            path: self.path.clone(),
            cause,
        })?;
        let keys: Vec<String> = locations
            .iter()
            .map(|l| self.relative_key(&l.dir))
            .collect();
        let results = map_in_order(locations, io_workers(), |i, loc| {
            let (fresh, changed) = update_one(loc, cached.get(&keys[i]));
            on_each();
            (
                build_overview(loc, &fresh.records, &fresh.progress, ctx),
                changed.then_some(fresh),
            )
        });
        let live: std::collections::HashSet<&String> = keys.iter().collect();
        let gone: Vec<&String> = cached.keys().filter(|k| !live.contains(k)).collect();
        self.store(
            results
                .iter()
                .zip(&keys)
                .filter_map(|((_, c), k)| c.as_ref().map(|c| (k, c))),
            &gone,
        )
        .map_err(|cause| IndexError::Sqlite {
            path: self.path.clone(),
            cause,
        })?;
        Ok(results.into_iter().map(|(o, _)| o).collect())
    }

    fn relative_key(&self, dir: &Path) -> String {
        dir.strip_prefix(&self.root)
            .unwrap_or(dir)
            .to_string_lossy()
            .into_owned()
    }

    fn load(&self) -> rusqlite::Result<HashMap<String, CachedRun>> {
        let mut stmt = self
            .conn
            .prepare(&format!("SELECT {CACHED_COLUMNS} FROM run_cache"))?;
        let rows = stmt.query_map([], cached_from_row)?;
        rows.collect()
    }

    /// The cached state of some runs (those the index has).
    fn load_some(&self, dirs: &[&str]) -> rusqlite::Result<HashMap<String, CachedRun>> {
        let mut stmt = self.conn.prepare_cached(&format!(
            "SELECT {CACHED_COLUMNS} FROM run_cache WHERE dir = ?1"
        ))?;
        let mut out = HashMap::new();
        for dir in dirs {
            if let Some((key, cached)) = stmt.query_row([dir], cached_from_row).optional()? {
                out.insert(key, cached);
            }
        }
        Ok(out)
    }

    fn store<'a>(
        &mut self,
        changed: impl Iterator<Item = (&'a String, &'a CachedRun)>,
        gone: &[&String],
    ) -> rusqlite::Result<()> {
        let tx = self.conn.transaction()?;
        {
            let mut upsert = tx.prepare(UPSERT_CACHED_SQL)?;
            for (dir, c) in changed {
                upsert_cached(&mut upsert, dir, c)?;
            }
            let mut delete = tx.prepare("DELETE FROM run_cache WHERE dir = ?1")?;
            for dir in gone {
                delete.execute([dir])?;
            }
        }
        tx.commit()
    }
}

/// The columns [`cached_from_row`] reads, in its order.
const CACHED_COLUMNS: &str =
    "dir, records_fp, meta, status, deleted, problem, events_fp, events_offset, \
    events_next_line, points, keys, last_step, last_event_at, corrupt_lines, pending_tail_bytes, \
    events_problem, step_timing, alerts";

/// One `run_cache` row (selected as [`CACHED_COLUMNS`]).
fn cached_from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<(String, CachedRun)> {
    let json_of = |i: usize| -> rusqlite::Result<Option<String>> { r.get(i) };
    let records = RunRecords {
        meta: json_of(2)?.and_then(|t| serde_json::from_str::<Meta>(&t).ok()),
        status: json_of(3)?.and_then(|t| serde_json::from_str::<StatusRecord>(&t).ok()),
        deleted: json_of(4)?.and_then(|t| serde_json::from_str::<DeletedMarker>(&t).ok()),
        problem: r.get(5)?,
    };
    let keys: String = r.get(10)?;
    // A row without the step timing or the alerts' evidence (older than the column, or
    // replaced by an older agent) has its events read again from the start, so that both are
    // complete.
    let steps: Option<StepTiming> = r
        .get::<_, Option<String>>(16)?
        .and_then(|t| serde_json::from_str(&t).ok());
    let stored_alerts: Option<StoredAlerts> = r
        .get::<_, Option<String>>(17)?
        .and_then(|t| serde_json::from_str(&t).ok());
    let (Some(steps), Some(stored_alerts)) = (steps, stored_alerts.clone()) else {
        let cached = CachedRun {
            records_fp: r.get(1)?,
            records,
            events_fp: String::new(),
            progress: EventProgress::default(),
            alerts: stored_alerts.map(|a| a.alerts).unwrap_or_default(),
        };
        return Ok((r.get::<_, String>(0)?, cached));
    };
    let progress = EventProgress {
        offset: r.get::<_, i64>(7)?.try_into().unwrap_or(0),
        next_line: r.get::<_, i64>(8)?.try_into().unwrap_or(1),
        totals: MetricTotals {
            points: r.get::<_, i64>(9)?.try_into().unwrap_or(0),
            keys: serde_json::from_str(&keys).unwrap_or_default(),
            last_step: r.get(11)?,
            events: 0,
            last_event_at: r.get(12)?,
        },
        steps,
        nonfinite: stored_alerts.nonfinite,
        corrupt_lines: r.get::<_, i64>(13)?.try_into().unwrap_or(0),
        pending_tail_bytes: r.get::<_, i64>(14)?.try_into().unwrap_or(0),
        problem: r.get(15)?,
    };
    let cached = CachedRun {
        records_fp: r.get(1)?,
        records,
        events_fp: r.get(6)?,
        progress,
        alerts: stored_alerts.alerts,
    };
    Ok((r.get::<_, String>(0)?, cached))
}

const UPSERT_CACHED_SQL: &str = "INSERT OR REPLACE INTO run_cache(dir, records_fp, meta, status, deleted, problem, events_fp, events_offset,
    events_next_line, points, keys, last_step, last_event_at, corrupt_lines, pending_tail_bytes, events_problem,
    step_timing, alerts)
 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18)";

/// `run_cache.alerts` as stored: the raised alerts and their evidence, with the first
/// non-finite values read from `events.jsonl` (which belong to the event progress).
#[derive(Clone, serde::Serialize, serde::Deserialize)]
struct StoredAlerts {
    #[serde(flatten)]
    alerts: alerts::RunAlerts,
    #[serde(default)]
    nonfinite: NonFiniteSeen,
}

/// Writes one run's cached state with a statement prepared from [`UPSERT_CACHED_SQL`].
fn upsert_cached(
    upsert: &mut rusqlite::Statement<'_>,
    dir: &str,
    c: &CachedRun,
) -> rusqlite::Result<()> {
    let as_json = |v: Option<Result<String, serde_json::Error>>| v.and_then(Result::ok);
    let big = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
    upsert.execute(params![
        dir,
        c.records_fp,
        as_json(c.records.meta.as_ref().map(serde_json::to_string)),
        as_json(c.records.status.as_ref().map(serde_json::to_string)),
        as_json(c.records.deleted.as_ref().map(serde_json::to_string)),
        c.records.problem,
        c.events_fp,
        big(c.progress.offset),
        big(c.progress.next_line),
        big(c.progress.totals.points),
        serde_json::to_string(&c.progress.totals.keys).unwrap_or_else(|_| "[]".into()),
        c.progress.totals.last_step,
        c.progress.totals.last_event_at,
        big(c.progress.corrupt_lines),
        big(c.progress.pending_tail_bytes),
        c.progress.problem,
        serde_json::to_string(&c.progress.steps).ok(),
        serde_json::to_string(&StoredAlerts {
            alerts: c.alerts.clone(),
            nonfinite: c.progress.nonfinite.clone(),
        })
        .ok(),
    ])?;
    Ok(())
}

fn is_damaged(e: &rusqlite::Error) -> bool {
    matches!(
        e.sqlite_error_code(),
        Some(rusqlite::ErrorCode::NotADatabase | rusqlite::ErrorCode::DatabaseCorrupt)
    )
}

/// Brings one run's cached state up to date; says whether anything changed.
fn update_one(loc: &RunLocation, cached: Option<&CachedRun>) -> (CachedRun, bool) {
    let files = RunFiles::new(&loc.dir);
    let records_fp = records_fingerprint(&files);
    let events_fp = file_fingerprint(&files.events());
    update_with(loc, cached, records_fp, events_fp)
}

/// [`update_one`] with the fingerprints already known (the feed takes them from its manifest).
fn update_with(
    loc: &RunLocation,
    cached: Option<&CachedRun>,
    records_fp: String,
    events_fp: String,
) -> (CachedRun, bool) {
    if let Some(c) = cached {
        if c.records_fp == records_fp && c.events_fp == events_fp {
            return (c.clone(), false);
        }
    }
    let records = match cached {
        Some(c) if c.records_fp == records_fp => c.records.clone(),
        _ => read_run_records(loc),
    };
    let mut progress = match cached {
        Some(c) if c.events_fp == events_fp => c.progress.clone(),
        // Appended-to files continue from the saved offset; a shrunk one is re-read whole.
        Some(c) => continue_event_totals(loc, c.progress.clone()),
        None => continue_event_totals(loc, EventProgress::default()),
    };
    // Only a run that says running can stall: an ended run's step intervals are not kept, in
    // memory or in the index (a run that runs again collects new ones).
    let ended = records
        .status
        .as_ref()
        .is_some_and(|s| RunStatus::parse(&s.status) != RunStatus::Running);
    if ended {
        progress.steps.intervals = Default::default();
    }
    (
        CachedRun {
            records_fp,
            records,
            events_fp,
            progress,
            alerts: cached.map(|c| c.alerts.clone()).unwrap_or_default(),
        },
        true,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use runicorn_protocol::run_format::{
        discover_runs, read_run_overview, RunOutcome, RunSpec, RunWriter,
    };

    fn overviews(root: &Path) -> Vec<RunOverview> {
        let locs = discover_runs(root).runs;
        RunIndex::open(root)
            .unwrap()
            .refresh(&locs, &LivenessContext::here_and_now(), &|| {})
            .unwrap()
    }

    fn scratch(root: &Path) -> Vec<RunOverview> {
        let ctx = LivenessContext::here_and_now();
        discover_runs(root)
            .runs
            .iter()
            .map(|l| read_run_overview(l, &ctx))
            .collect()
    }

    #[test]
    fn cached_listing_equals_a_fresh_read_through_changes() {
        let t = tempfile::tempdir().unwrap();
        let mut spec = RunSpec::new(t.path(), "test");
        spec.run_id = Some("a".into());
        let mut a = RunWriter::create(&spec).unwrap();
        a.log_metrics(&[("loss", 1.0)], None, None).unwrap();
        a.flush().unwrap();
        assert_eq!(overviews(t.path()), scratch(t.path()));
        // Appends, a new run, a status change: the index follows.
        a.log_metrics(&[("loss", 0.5), ("acc", 0.1)], None, None)
            .unwrap();
        a.finish(RunOutcome::finished()).unwrap();
        spec.run_id = Some("b".into());
        let mut b = RunWriter::create(&spec).unwrap();
        b.log_metrics(&[("x", 1.0)], Some(7), None).unwrap();
        b.flush().unwrap();
        let listed = overviews(t.path());
        assert_eq!(listed, scratch(t.path()));
        assert_eq!(listed.iter().map(|o| o.points).sum::<u64>(), 4);
        // A run that vanished leaves the index.
        std::fs::remove_dir_all(b.dir()).unwrap();
        assert_eq!(overviews(t.path()).len(), 1);
        let rows: i64 = RunIndex::open(t.path())
            .unwrap()
            .conn
            .query_row("SELECT count(*) FROM run_cache", [], |r| r.get(0))
            .unwrap();
        assert_eq!(rows, 1);
    }

    #[test]
    fn damaged_index_is_rebuilt_with_a_new_epoch() {
        let t = tempfile::tempdir().unwrap();
        let first = RunIndex::open(t.path()).unwrap().epoch().unwrap();
        assert_eq!(
            RunIndex::open(t.path()).unwrap().epoch().unwrap(),
            first,
            "the epoch persists"
        );
        let file = t.path().join(AGENT_DIR).join(INDEX_FILE);
        for suffix in ["-wal", "-shm"] {
            let _ = std::fs::remove_file(format!("{}{suffix}", file.display()));
        }
        std::fs::write(
            &file,
            b"this is not a database, it is a torn file ..................",
        )
        .unwrap();
        let again = RunIndex::open(t.path()).unwrap();
        assert_ne!(again.epoch().unwrap(), first);
    }

    #[test]
    fn an_unreadable_events_file_stays_unreadable_through_the_cache() {
        let t = tempfile::tempdir().unwrap();
        let dir = t.path().join("runs/p/a");
        std::fs::create_dir_all(dir.join("events.jsonl")).unwrap();
        std::fs::write(dir.join("meta.json"), r#"{"id":"a"}"#).unwrap();
        std::fs::write(dir.join("status.json"), r#"{"status":"finished"}"#).unwrap();
        for _ in 0..2 {
            // The second listing comes from the index's cache, in a new process's index.
            let listed = overviews(t.path());
            assert_eq!(listed[0].status.as_str(), "unreadable");
            assert!(listed[0]
                .reason
                .as_deref()
                .unwrap()
                .contains("events.jsonl is a directory"));
        }
        assert_eq!(overviews(t.path()), scratch(t.path()));
        std::fs::remove_dir(dir.join("events.jsonl")).unwrap();
        assert_eq!(overviews(t.path())[0].status.as_str(), "finished");
    }

    #[test]
    fn step_timing_is_kept_in_the_index_and_an_old_row_is_read_again() {
        let t = tempfile::tempdir().unwrap();
        let mut spec = RunSpec::new(t.path(), "test");
        spec.run_id = Some("a".into());
        spec.stall = runicorn_protocol::run_format::StallConfig::new(Some(5.0), Some(1.0));
        // Steps half a second apart, a hundred seconds ago: stalled now.
        spec.clock_offset = -100.0;
        let mut a = RunWriter::create(&spec).unwrap();
        for _ in 0..6 {
            a.log_metrics(&[("loss", 1.0)], None, None).unwrap();
            a.advance_clock(0.5);
        }
        a.flush().unwrap();
        let listed = overviews(t.path());
        assert_eq!(
            listed[0].status.as_str(),
            "stalled",
            "{:?}",
            listed[0].reason
        );
        assert!(listed[0]
            .reason
            .as_deref()
            .unwrap()
            .contains("5 × the median step interval 0.5s, floor 1s"));
        let stored = |index: &RunIndex| -> Option<String> {
            index
                .conn
                .query_row("SELECT step_timing FROM run_cache", [], |r| r.get(0))
                .unwrap()
        };
        let timing: StepTiming =
            serde_json::from_str(&stored(&RunIndex::open(t.path()).unwrap()).unwrap()).unwrap();
        assert_eq!(timing.step, Some(6));
        assert_eq!(timing.intervals.len(), 5);
        // A row an older agent wrote has no timing: the events are read again, whole.
        RunIndex::open(t.path())
            .unwrap()
            .conn
            .execute("UPDATE run_cache SET step_timing = NULL", [])
            .unwrap();
        // (Reasons left out: "no new step for 1m 38s" counts up between the two reads.)
        let without_reason = |v: Vec<RunOverview>| {
            v.into_iter()
                .map(|o| RunOverview { reason: None, ..o })
                .collect::<Vec<_>>()
        };
        assert_eq!(
            without_reason(overviews(t.path())),
            without_reason(scratch(t.path()))
        );
        assert_eq!(overviews(t.path())[0].status.as_str(), "stalled");
        assert!(stored(&RunIndex::open(t.path()).unwrap()).is_some());
        // A new step (read incrementally from the saved offset) makes it running again.
        a.advance_clock(97.0);
        a.log_metrics(&[("loss", 0.5)], None, None).unwrap();
        a.flush().unwrap();
        let listed = overviews(t.path());
        assert_eq!(
            listed[0].status.as_str(),
            "running",
            "{:?}",
            listed[0].reason
        );
        assert_eq!(listed, scratch(t.path()));
        // An ended run keeps no intervals.
        a.finish(RunOutcome::finished()).unwrap();
        assert_eq!(overviews(t.path())[0].status.as_str(), "finished");
        let timing: StepTiming =
            serde_json::from_str(&stored(&RunIndex::open(t.path()).unwrap()).unwrap()).unwrap();
        assert_eq!((timing.step, timing.intervals.len()), (Some(7), 0));
    }
}
