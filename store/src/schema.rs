//! The store's schema and its migrations. Migrations are only ever added, never edited:
//! `user_version` says how many have run. Every migration is plain SQL that never calls the
//! crate's Rust code, so a later change to a table module cannot change what upgrading an old
//! store does. Tables that are purely derived from others (`run_values`, `point_tiles`) are
//! filled by one named step, [`rebuild_derived`], after the last migration: today's code on
//! today's schema. All pending migrations and that rebuild run in one immediate (write-locked)
//! transaction that re-reads the version first, so two hubs opening one old store never apply a
//! step twice, and a crash leaves the store at its old version, untouched.
//!
//! To change how a derived table is computed, add a migration (if need be one that only empties
//! the table): any migration that runs triggers the rebuild.
//!
//! Conventions the other modules rely on:
//! - ids: `remotes.id`, `runs.id` and `metric_keys.id` are integers, so the large `points`
//!   table is keyed by three integers (compact, fast to compare);
//! - floats: SQLite turns a bound NaN into NULL, so in `points.value` and `points.time` NULL
//!   *means* NaN (values are never absent on the wire); ±Infinity are stored as REAL as is
//!   (and -0.0 reads back as 0.0);
//! - JSON documents (`meta`, `config`, …) are TEXT holding JSON; NULL when the agent sent none;
//! - `points` and `point_tiles` have no foreign key (it would cost a lookup per row on the
//!   hottest path): whoever deletes a run deletes its points and tiles first.

use std::path::Path;

use rusqlite::{Connection, TransactionBehavior};

use crate::error::{SqliteContext, StoreError};

/// Each entry upgrades the schema by one version: SQL scripts run in order.
const MIGRATIONS: &[&[&str]] = &[
    // 1: remotes, runs, metric points, logs, manifests, cursors.
    &["CREATE TABLE remotes(
        id INTEGER PRIMARY KEY,
        name TEXT NOT NULL UNIQUE,
        address TEXT NOT NULL,
        transport TEXT NOT NULL,        -- JSON, the hub's business
        connected INTEGER NOT NULL DEFAULT 0,
        last_sync_at REAL,              -- last sync that succeeded
        last_attempt_at REAL,           -- last sync, successful or not
        last_error TEXT,                -- NULL after a success
        agent_host TEXT,
        agent_root TEXT,
        agent_software TEXT,
        cursor_epoch TEXT,              -- where the change feed resumes; NULL: from scratch
        cursor_seq INTEGER,
        reset_epoch TEXT,               -- agent epoch of the last full listing (reset)
        reset_open INTEGER NOT NULL DEFAULT 0, -- 1 while that listing is not complete
        created_at REAL NOT NULL
     );
     CREATE TABLE runs(
        id INTEGER PRIMARY KEY,
        remote INTEGER NOT NULL REFERENCES remotes(id) ON DELETE CASCADE,
        dir TEXT NOT NULL,              -- run directory relative to the agent's root
        seq INTEGER NOT NULL,           -- change sequence number of the state below
        run_id TEXT NOT NULL,
        path TEXT NOT NULL,
        layout TEXT NOT NULL,
        alias TEXT,
        tags TEXT NOT NULL,             -- JSON array of strings
        status TEXT NOT NULL,
        reason TEXT,
        created_at REAL,
        ended_at REAL,
        hostname TEXT,
        deleted INTEGER NOT NULL,       -- upstream's soft-delete marker
        meta TEXT,
        status_record TEXT,
        summary TEXT,
        config TEXT,
        environment TEXT,
        -- events.jsonl as the agent last reported it
        events_bytes INTEGER NOT NULL,
        events_lines INTEGER NOT NULL,
        events_points INTEGER NOT NULL,
        events_keys TEXT NOT NULL,      -- JSON array
        events_last_step INTEGER,
        events_last_event_at REAL,
        events_corrupt_lines INTEGER NOT NULL,
        log_bytes INTEGER NOT NULL,     -- size of logs.txt as reported
        -- presence on the remote
        removed INTEGER NOT NULL DEFAULT 0, -- gone from the server; its data is kept
        removed_at REAL,
        seen_epoch TEXT,                -- listed during the full listing of this agent epoch
        first_seen_at REAL NOT NULL,
        -- the hub's copy of events.jsonl
        copy_offset INTEGER NOT NULL DEFAULT 0,
        copy_next_line INTEGER NOT NULL DEFAULT 1,
        stored_points INTEGER NOT NULL DEFAULT 0,
        stored_last_step INTEGER,
        -- the hub's copy of logs.txt: bytes log_start..log_end; NULL: nothing fetched yet
        log_start INTEGER,
        log_end INTEGER,
        UNIQUE(remote, dir)
     );
     CREATE INDEX runs_by_created ON runs(created_at);
     CREATE INDEX runs_by_path ON runs(path);
     CREATE INDEX runs_points_pending ON runs(remote)
        WHERE removed = 0 AND events_bytes != copy_offset;
     CREATE INDEX runs_log_pending ON runs(remote)
        WHERE removed = 0 AND log_bytes IS NOT log_end AND (log_end IS NOT NULL OR log_bytes > 0);
     CREATE TABLE metric_keys(
        id INTEGER PRIMARY KEY,
        name TEXT NOT NULL UNIQUE
     );
     CREATE TABLE run_keys(
        run INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
        key INTEGER NOT NULL REFERENCES metric_keys(id),
        points INTEGER NOT NULL,        -- distinct steps stored
        first_step INTEGER NOT NULL,
        last_step INTEGER NOT NULL,
        PRIMARY KEY(run, key)
     ) WITHOUT ROWID;
     CREATE TABLE points(
        run INTEGER NOT NULL,           -- runs.id (no foreign key: see the module doc)
        key INTEGER NOT NULL,           -- metric_keys.id
        step INTEGER NOT NULL,
        time REAL,                      -- NULL: NaN (the event had no time)
        value REAL,                     -- NULL: NaN
        PRIMARY KEY(run, key, step)
     ) WITHOUT ROWID;
     CREATE TABLE corrupt_lines(
        run INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
        line INTEGER NOT NULL,
        offset INTEGER NOT NULL,
        reason TEXT NOT NULL,
        PRIMARY KEY(run, line)
     ) WITHOUT ROWID;
     CREATE TABLE log_chunks(
        run INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
        start INTEGER NOT NULL,         -- byte range of logs.txt
        end INTEGER NOT NULL,
        text TEXT NOT NULL,
        PRIMARY KEY(run, start)
     ) WITHOUT ROWID;
     CREATE TABLE files(
        run INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
        path TEXT NOT NULL,             -- relative to the run directory
        size INTEGER NOT NULL,
        mtime REAL NOT NULL,
        sha256 TEXT,                    -- as the agent reported it
        cached_sha256 TEXT,             -- content in the file cache, for this size and mtime
        PRIMARY KEY(run, path)
     ) WITHOUT ROWID;"],
    // 2: the dashboard: the hub's annotations and recycle bin, sortable summary and config
    // values, and the point tiles that downsampled series are read from. `run_values` and
    // `point_tiles` are derived: `rebuild_derived` fills them.
    &[
        "ALTER TABLE runs ADD COLUMN user_alias TEXT;   -- NULL: the run's own alias shows
     ALTER TABLE runs ADD COLUMN user_tags TEXT;    -- JSON array; NULL: the run's own tags
     ALTER TABLE runs ADD COLUMN notes TEXT;
     ALTER TABLE runs ADD COLUMN trashed_at REAL;   -- in the hub's recycle bin since; NULL: not
     -- Covers every listing filter but text and tags, and the sorts by columns a sync rarely
     -- changes: counts, path trees and those sorts read no run row (rows hold JSON records).
     CREATE INDEX runs_listing ON runs(path, remote, status, removed, deleted, trashed_at,
        created_at, ended_at, hostname, run_id, alias, user_alias);
     -- The per-remote totals of `remotes()` (runs present, gone, points) from the index alone:
     -- without it they read every run row (0.8 s at 100,000 runs; 25 ms with it). `removed`
     -- comes last so the sync's pending queries keep their partial indexes.
     CREATE INDEX runs_by_remote ON runs(remote, stored_points, removed);
     -- One row per summary key (source 0) and flattened config key (source 1) of a run.
     CREATE TABLE run_values(
        run INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
        source INTEGER NOT NULL,
        key TEXT NOT NULL,
        num REAL,                       -- numbers
        text TEXT,                      -- strings as is, bools, arrays and objects as JSON
        PRIMARY KEY(run, source, key)
     ) WITHOUT ROWID;
     -- Sorted walks by key (the primary key's `run` is appended: ties in run order).
     CREATE INDEX run_values_sorted ON run_values(source, key, num, text);
     -- Downsampling pyramid (see tiles.rs): tile `tile` of level `level` covers the steps
     -- whose `step >> shift(level)` is `tile`. NULL min/max: every value in it is NaN.
     CREATE TABLE point_tiles(
        run INTEGER NOT NULL,           -- runs.id (no foreign key, like points)
        key INTEGER NOT NULL,
        level INTEGER NOT NULL,
        tile INTEGER NOT NULL,
        count INTEGER NOT NULL,
        untimed INTEGER NOT NULL,       -- points without a time
        first_step INTEGER NOT NULL,
        first_time REAL,
        last_step INTEGER NOT NULL,
        last_time REAL,
        min_value REAL,
        min_step INTEGER,
        min_time REAL,
        max_value REAL,
        max_step INTEGER,
        max_time REAL,
        PRIMARY KEY(run, key, level, tile)
     ) WITHOUT ROWID;",
    ],
    // 3: what could not be synced, and why: run directories the agent could not name and items
    // of its answers the hub refused (per remote), and the files left out of each run's
    // manifest. Shown by `runicorn-hub remotes`, `ls` and the dashboard (see skipped.rs). Logs
    // also became exact bytes: copies older hubs stored lossily are dropped.
    &[
        "CREATE TABLE skipped(
        remote INTEGER NOT NULL REFERENCES remotes(id) ON DELETE CASCADE,
        kind TEXT NOT NULL,             -- 'run' (change feed), 'points' or 'log' (answers)
        name TEXT NOT NULL,             -- for people only: never a path to act on
        reason TEXT NOT NULL,
        by_hub INTEGER NOT NULL,        -- 1: the hub refused it; 0: the agent left it out
        at REAL NOT NULL,
        PRIMARY KEY(remote, kind, name)
     ) WITHOUT ROWID;
     ALTER TABLE runs ADD COLUMN skipped_files INTEGER NOT NULL DEFAULT 0; -- left out of files
     ALTER TABLE runs ADD COLUMN skipped_files_list TEXT; -- JSON [{name, reason}], at most 100
     -- The per-remote count of skipped files reads only the runs that have some.
     CREATE INDEX runs_skipping ON runs(remote, removed, skipped_files) WHERE skipped_files > 0;",
        DROP_INEXACT_LOG_COPIES,
    ],
    // 4: runs deleted for good from the hub's recycle bin, remembered so a later sync of their
    // (untouched) server does not bring them back; and read-only views of the store for
    // analysis outside the hub (`pandas.read_sql`, `sqlite3`), documented in docs/sql-views.md.
    // Their columns use the API's words: a run is `key`, a metric's name is `key` and its run
    // `run`.
    &["CREATE TABLE purged_runs(
        remote INTEGER NOT NULL REFERENCES remotes(id) ON DELETE CASCADE,
        dir TEXT NOT NULL,              -- run directory relative to the agent's root
        run_id TEXT NOT NULL,
        path TEXT NOT NULL,
        purged_at REAL NOT NULL,
        PRIMARY KEY(remote, dir)
     ) WITHOUT ROWID;
     CREATE VIEW v_runs AS
        SELECT r.id AS key, r.run_id, m.name AS remote, r.path,
               coalesce(r.user_alias, r.alias) AS alias,
               coalesce(r.user_tags, r.tags) AS tags,
               r.status, r.reason, r.hostname AS host, r.created_at, r.ended_at,
               r.events_last_step AS last_step, r.stored_points AS points,
               r.summary, r.config, r.notes,
               r.deleted, r.removed, r.trashed_at IS NOT NULL AS in_recycle_bin, r.trashed_at
          FROM runs r JOIN remotes m ON m.id = r.remote;
     CREATE VIEW v_metrics AS
        SELECT p.run, r.run_id, m.name AS remote, k.name AS key, p.step, p.time, p.value
          FROM points p JOIN runs r ON r.id = p.run JOIN remotes m ON m.id = r.remote
          JOIN metric_keys k ON k.id = p.key;
     CREATE VIEW v_metric_summary AS
        SELECT rk.run, r.run_id, m.name AS remote, k.name AS key, rk.points,
               rk.first_step, rk.last_step,
               (SELECT p.value FROM points p
                 WHERE p.run = rk.run AND p.key = rk.key AND p.step = rk.last_step) AS last,
               (SELECT min(p.value) FROM points p WHERE p.run = rk.run AND p.key = rk.key) AS min,
               (SELECT max(p.value) FROM points p WHERE p.run = rk.run AND p.key = rk.key) AS max
          FROM run_keys rk JOIN runs r ON r.id = rk.run JOIN remotes m ON m.id = r.remote
          JOIN metric_keys k ON k.id = rk.key;
     CREATE VIEW v_summary AS
        SELECT v.run, v.key, coalesce(v.num, v.text) AS value FROM run_values v
         WHERE v.source = 0;
     CREATE VIEW v_config AS
        SELECT v.run, v.key, coalesce(v.num, v.text) AS value FROM run_values v
         WHERE v.source = 1;
     CREATE VIEW v_remotes AS
        SELECT m.name, m.address, m.agent_host, m.agent_root, m.last_sync_at, m.last_error,
               (SELECT count(*) FROM runs r WHERE r.remote = m.id) AS runs
          FROM remotes m;"],
    // 5: managing remotes (see remotes.rs): a remote the user removed while keeping its runs,
    // a paused one, the lease of the process that follows it (whoever holds a fresh heartbeat
    // owns its connection state), the last time the hub heard from it, and a "sync now" request
    // its follower picks up.
    &["ALTER TABLE remotes ADD COLUMN removed_at REAL;    -- removed by the user, runs kept; NULL: not
     ALTER TABLE remotes ADD COLUMN paused INTEGER NOT NULL DEFAULT 0; -- 1: nobody follows it
     ALTER TABLE remotes ADD COLUMN follower TEXT;       -- the following process, `ui pid 12 on host`
     ALTER TABLE remotes ADD COLUMN follower_beat REAL;  -- its last heartbeat; stale: nobody follows
     ALTER TABLE remotes ADD COLUMN follower_pid INTEGER; -- its pid and host: on this host, a dead
     ALTER TABLE remotes ADD COLUMN follower_host TEXT;  -- pid frees the lease at once
     ALTER TABLE remotes ADD COLUMN heard_at REAL;       -- last answer from the remote's agent
     ALTER TABLE remotes ADD COLUMN sync_requested_at REAL; -- sync now asked; the follower clears it
     UPDATE remotes SET heard_at = last_sync_at;"],
    // 6: artifacts (issue 13): each artifact of a remote's root with its versions, aliases,
    // files (how the server holds each content) and lineage (the run that produced a version,
    // the runs that used it), written by the sync from the agent's change feed (artifacts.rs);
    // the hub's cache of contents held as chunks; and each run's upstream `assets.json`.
    &["ALTER TABLE runs ADD COLUMN assets TEXT;   -- the run's assets.json (upstream 0.6/0.7 assets), JSON; NULL when absent
CREATE TABLE artifacts(
    id INTEGER PRIMARY KEY,
    remote INTEGER NOT NULL REFERENCES remotes(id) ON DELETE CASCADE,
    dir TEXT NOT NULL,                  -- artifacts/<type>/<name>, relative to the agent's root
    seq INTEGER NOT NULL,
    type TEXT NOT NULL,
    name TEXT NOT NULL,
    problem TEXT,                       -- what the agent could not read
    removed INTEGER NOT NULL DEFAULT 0, -- gone from its server; kept, like runs
    stored_bytes INTEGER,               -- bytes on the server after dedup (chunk level); NULL: not measured
    UNIQUE(remote, dir)
);
CREATE TABLE artifact_versions(
    artifact INTEGER NOT NULL REFERENCES artifacts(id) ON DELETE CASCADE,
    version INTEGER NOT NULL,
    created_at REAL,
    description TEXT,
    metadata TEXT,                      -- JSON
    size INTEGER NOT NULL,              -- bytes of its files
    produced_run_id TEXT,
    produced_dir TEXT,                  -- the producing run's directory on the same remote
    produced_host TEXT,
    refs TEXT NOT NULL DEFAULT '[]',    -- JSON array of references
    PRIMARY KEY(artifact, version)
) WITHOUT ROWID;
CREATE TABLE artifact_aliases(
    artifact INTEGER NOT NULL REFERENCES artifacts(id) ON DELETE CASCADE,
    alias TEXT NOT NULL,
    version INTEGER NOT NULL,
    PRIMARY KEY(artifact, alias)
) WITHOUT ROWID;
CREATE TABLE artifact_files(
    artifact INTEGER NOT NULL REFERENCES artifacts(id) ON DELETE CASCADE,
    version INTEGER NOT NULL,
    path TEXT NOT NULL,
    size INTEGER NOT NULL,
    sha256 TEXT NOT NULL,
    stored TEXT NOT NULL,               -- whole, chunked or missing (on the server)
    PRIMARY KEY(artifact, version, path)
) WITHOUT ROWID;
CREATE INDEX artifact_files_sha ON artifact_files(sha256);
CREATE TABLE artifact_usage(            -- lineage: runs that used a version
    artifact INTEGER NOT NULL REFERENCES artifacts(id) ON DELETE CASCADE,
    version INTEGER NOT NULL,
    run_id TEXT NOT NULL,
    dir TEXT NOT NULL,
    host TEXT,
    PRIMARY KEY(artifact, version, dir)
) WITHOUT ROWID;
CREATE TABLE content_chunks(            -- the hub's cache of contents held as chunks
    content TEXT NOT NULL,              -- the whole file's sha256
    idx INTEGER NOT NULL,
    chunk TEXT NOT NULL,                -- the chunk's sha256: files/chunks/<sha[:2]>/<sha>
    offset INTEGER NOT NULL,
    size INTEGER NOT NULL,
    PRIMARY KEY(content, idx)
) WITHOUT ROWID;
CREATE INDEX content_chunks_chunk ON content_chunks(chunk);"],
    // 7: the latest sample of each remote's host (issue 15's fleet view): its GPUs, who uses
    // them and its load, as the agent's `host_status` answer. Kept when the remote goes offline.
    &["CREATE TABLE host_snapshots(
        remote INTEGER PRIMARY KEY REFERENCES remotes(id) ON DELETE CASCADE,
        received_at REAL NOT NULL,      -- when the hub received it (the hub's clock)
        status TEXT NOT NULL            -- the agent's host_status answer, JSON
     );"],
    // 8: alerts (issue 15): what agents raised about runs (stalled, crashed, failed, a
    // non-finite watched metric, idle GPUs), each stored once per run and agent alert id, with
    // when this hub received it and when the user acknowledged it (alerts.rs).
    &["CREATE TABLE alerts(
    id INTEGER PRIMARY KEY,             -- the hub's number of the alert (ack ID, /api/alerts/{id})
    remote INTEGER NOT NULL REFERENCES remotes(id) ON DELETE CASCADE,
    run INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
    alert_id TEXT NOT NULL,             -- the agent's id, deterministic per occurrence
    kind TEXT NOT NULL,                 -- stalled, crashed, failed, nonfinite, gpu_idle
    message TEXT NOT NULL,
    key TEXT,                           -- the metric of a nonfinite alert
    step INTEGER,
    value TEXT,                         -- NaN, Infinity or -Infinity
    raised_at REAL NOT NULL,            -- on the agent's clock
    received_at REAL NOT NULL,          -- when this hub first stored it
    acked_at REAL,                      -- NULL: not acknowledged
    UNIQUE(run, alert_id)
);
CREATE INDEX alerts_unacked ON alerts(acked_at);"],
];

/// Part of migration 3 (logs became exact bytes): drops every run's log copy that holds a chunk
/// whose stored length differs from its byte range (the lossy text older hubs stored), so the
/// next sync fetches those logs again, exactly.
pub(crate) const DROP_INEXACT_LOG_COPIES: &str = "
    UPDATE runs SET log_start = NULL, log_end = NULL
     WHERE id IN (SELECT run FROM log_chunks WHERE length(CAST(text AS BLOB)) != end - start);
    DELETE FROM log_chunks WHERE run IN (SELECT id FROM runs WHERE log_start IS NULL);";

/// Rebuilds every table that is purely derived from others, from scratch, with today's code:
/// `run_values` (from the runs' summary and config) and `point_tiles` (from `points` and
/// `run_keys`). Runs after the last migration, in its transaction. `run_keys` is not among
/// them: the sync keeps it with the points it counts, and every schema has had it.
pub(crate) fn rebuild_derived(tx: &Connection) -> rusqlite::Result<()> {
    crate::run_values::rebuild_all(tx)?;
    crate::tiles::rebuild_all(tx)?;
    Ok(())
}

/// The schema version this build writes.
pub(crate) fn current_version() -> u32 {
    MIGRATIONS.len() as u32
}

pub(crate) fn user_version(conn: &Connection) -> rusqlite::Result<u32> {
    let v: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    Ok(u32::try_from(v).unwrap_or(u32::MAX))
}

/// Brings the store at `path` up to the current schema: every pending migration, then
/// [`rebuild_derived`], in one transaction.
pub(crate) fn migrate(conn: &mut Connection, path: &Path) -> Result<(), StoreError> {
    let known = current_version();
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .at(path)?;
    let found = user_version(&tx).at(path)?;
    if found > known {
        return Err(StoreError::NewerSchema {
            path: path.to_owned(),
            found,
            known,
        });
    }
    if found == known {
        return Ok(());
    }
    for scripts in &MIGRATIONS[found as usize..] {
        for sql in *scripts {
            tx.execute_batch(sql).at(path)?;
        }
    }
    rebuild_derived(&tx).at(path)?;
    tx.pragma_update(None, "user_version", i64::from(known))
        .at(path)?;
    tx.commit().at(path)?;
    tracing::info!(store = %path.display(), from = found, to = known, "store schema migrated");
    Ok(())
}

/// For a read-only connection: the schema must be exactly the current one.
pub(crate) fn check_current(conn: &Connection, path: &Path) -> Result<(), StoreError> {
    let known = current_version();
    let found = user_version(conn).at(path)?;
    if found > known {
        return Err(StoreError::NewerSchema {
            path: path.to_owned(),
            found,
            known,
        });
    }
    if found < known {
        return Err(StoreError::OlderSchema {
            path: path.to_owned(),
            found,
            known,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn migrating_twice_is_a_no_op_and_newer_schemas_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("store.sqlite");
        let mut conn = Connection::open(&path).unwrap();
        migrate(&mut conn, &path).unwrap();
        migrate(&mut conn, &path).unwrap();
        assert_eq!(user_version(&conn).unwrap(), current_version());
        check_current(&conn, &path).unwrap();
        conn.pragma_update(None, "user_version", 99).unwrap();
        let err = migrate(&mut conn, &path).unwrap_err();
        assert!(
            matches!(err, StoreError::NewerSchema { found: 99, .. }),
            "{err}"
        );
        assert!(err.to_string().contains("store.sqlite"), "{err}");
        assert!(err.to_string().contains("upgrade runicorn-hub"), "{err}");
        assert!(matches!(
            check_current(&conn, &path),
            Err(StoreError::NewerSchema { .. })
        ));
    }

    #[test]
    fn a_store_of_schema_1_is_upgraded_with_its_values_and_tiles_filled() {
        use crate::{RunFilter, RunKey, RunOrder, RunSort, SeriesQuery, Store};
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(crate::STORE_FILE);
        {
            // A store as the previous release left it: schema 1, one run with 10,000 points.
            let conn = Connection::open(&path).unwrap();
            conn.execute_batch(MIGRATIONS[0][0]).unwrap();
            conn.execute_batch(
                "PRAGMA user_version = 1;
                 INSERT INTO remotes(id, name, address, transport, created_at)
                    VALUES (1, 'gpu', 'me@gpu', '{}', 0);
                 INSERT INTO runs(id, remote, dir, seq, run_id, path, layout, tags, status,
                    deleted, summary, config, events_bytes, events_lines, events_points,
                    events_keys, events_corrupt_lines, log_bytes, first_seen_at,
                    stored_points, stored_last_step)
                 VALUES (7, 1, 'runs/a/1', 1, '1', 'a', 'current', '[]', 'finished', 0,
                    '{\"acc\": 0.5}', '{\"optim\": {\"lr\": 0.1}}', 0, 0, 0, '[]', 0, 0, 0,
                    10000, 9999);
                 INSERT INTO metric_keys(id, name) VALUES (3, 'loss');
                 INSERT INTO run_keys(run, key, points, first_step, last_step)
                    VALUES (7, 3, 10000, 0, 9999);
                 WITH RECURSIVE s(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM s WHERE i < 9999)
                 INSERT INTO points(run, key, step, time, value)
                    SELECT 7, 3, i, i * 1.0, (i * 7919) % 1000 FROM s;",
            )
            .unwrap();
        }
        let store = Store::open(dir.path()).unwrap();
        assert_eq!(user_version(&store.conn).unwrap(), current_version());
        let f = RunFilter {
            sort: RunSort {
                by: RunOrder::Config("optim.lr".into()),
                descending: true,
            },
            ..RunFilter::default()
        };
        let rows = store.list_runs(&f).unwrap();
        assert_eq!(rows[0].key, RunKey(7));
        assert_eq!(store.column_keys(10).unwrap().summary, ["acc"]);
        let got = store
            .series(
                RunKey(7),
                "loss",
                &SeriesQuery {
                    max_points: 100,
                    ..SeriesQuery::default()
                },
            )
            .unwrap()
            .unwrap();
        assert!(got.downsampled);
        assert_eq!(got.total, 10_000);
        let tiles: i64 = store
            .conn
            .query_row("SELECT count(*) FROM point_tiles", [], |r| r.get(0))
            .unwrap();
        assert!(tiles > 300, "{tiles}");
        // The values cycle through 0..1000: the extremes of the whole run are among the points.
        assert!(got.values.contains(&0.0) && got.values.contains(&999.0));
        assert!(got.steps.len() <= 100);
    }

    #[test]
    fn a_failed_upgrade_leaves_the_store_at_its_old_version() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("store.sqlite");
        let mut conn = Connection::open(&path).unwrap();
        conn.execute_batch(MIGRATIONS[0][0]).unwrap();
        conn.pragma_update(None, "user_version", 1).unwrap();
        // Migration 3 cannot create its table: migration 2, run before it in the same
        // transaction, must be undone too.
        conn.execute_batch("CREATE TABLE skipped(x)").unwrap();
        let err = migrate(&mut conn, &path).unwrap_err();
        assert!(err.to_string().contains("store.sqlite"), "{err}");
        assert_eq!(user_version(&conn).unwrap(), 1);
        let tables: i64 = conn
            .query_row(
                "SELECT count(*) FROM sqlite_master WHERE name IN ('run_values', 'point_tiles')",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(tables, 0);
    }

    #[test]
    fn the_pending_indexes_are_used() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("store.sqlite");
        let mut conn = Connection::open(&path).unwrap();
        migrate(&mut conn, &path).unwrap();
        let plan: String = conn
            .query_row(
                &format!(
                    "EXPLAIN QUERY PLAN SELECT id FROM runs WHERE remote = 1 AND {}",
                    crate::pending::POINTS_PENDING
                ),
                [],
                |r| r.get(3),
            )
            .unwrap();
        assert!(plan.contains("runs_points_pending"), "{plan}");
        let plan: String = conn
            .query_row(
                &format!(
                    "EXPLAIN QUERY PLAN SELECT id FROM runs WHERE remote = 1 AND {}",
                    crate::pending::LOG_PENDING
                ),
                [],
                |r| r.get(3),
            )
            .unwrap();
        assert!(plan.contains("runs_log_pending"), "{plan}");
        // The per-remote count of skipped files reads the partial index, not every run.
        let plan: String = conn
            .query_row(
                "EXPLAIN QUERY PLAN SELECT coalesce(sum(skipped_files), 0) FROM runs
                 WHERE remote = 1 AND removed = 0 AND skipped_files > 0",
                [],
                |r| r.get(3),
            )
            .unwrap();
        assert!(plan.contains("runs_skipping"), "{plan}");
    }
}
