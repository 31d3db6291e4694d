//! The index database's schema and its migrations. Migrations are only ever added, never
//! edited: `user_version` says how many have run.

use rusqlite::{Connection, TransactionBehavior};

/// Each entry upgrades the schema by one version.
const MIGRATIONS: &[&str] = &[
    // 1: cached records and event progress per run directory.
    "CREATE TABLE index_info(key TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID;
     CREATE TABLE run_cache(
        dir TEXT PRIMARY KEY,          -- run directory, relative to the storage root
        records_fp TEXT NOT NULL,      -- fingerprint of meta.json, status.json, .deleted
        meta TEXT,                     -- meta.json as read (JSON), NULL when absent
        status TEXT,                   -- status.json as read (JSON), NULL when absent
        deleted TEXT,                  -- .deleted as read (JSON), NULL when absent
        problem TEXT,                  -- why the records are unreadable, NULL when fine
        events_fp TEXT NOT NULL,       -- fingerprint of events.jsonl
        events_offset INTEGER NOT NULL,
        events_next_line INTEGER NOT NULL,
        points INTEGER NOT NULL,
        keys TEXT NOT NULL,            -- JSON array of metric names
        last_step INTEGER,
        last_event_at REAL,
        corrupt_lines INTEGER NOT NULL,
        pending_tail_bytes INTEGER NOT NULL
     ) WITHOUT ROWID;",
    // 2: the change feed of `serve`: a sequence value per run directory (tombstones for removed
    // ones), the state announced at that value, and each run's file manifest with cached hashes.
    "CREATE TABLE feed_run(
        dir TEXT PRIMARY KEY,          -- run directory, relative to the storage root
        seq INTEGER NOT NULL,          -- change sequence value of its last change
        removed INTEGER NOT NULL,      -- 1: the directory is gone (a tombstone)
        state_fp TEXT NOT NULL,        -- fingerprint of the announced state ('' for tombstones)
        head TEXT NOT NULL             -- the announced state (a wire RunChange without records or files), JSON
     ) WITHOUT ROWID;
     CREATE INDEX feed_run_by_seq ON feed_run(seq);
     CREATE TABLE feed_file(
        dir TEXT NOT NULL,
        path TEXT NOT NULL,            -- relative to the run directory, '/'-separated
        size INTEGER NOT NULL,
        mtime_ns INTEGER NOT NULL,     -- nanoseconds since the Unix epoch
        sha256 TEXT,                   -- lowercase hex; NULL for append-only or large files
        PRIMARY KEY (dir, path)
     ) WITHOUT ROWID;
     INSERT OR IGNORE INTO index_info(key, value) VALUES ('seq', '0');",
    // 3: the feed keeps each announced state whole (records and manifest in the row, so a
    // listing reads no files); the feed of version 2 is dropped and, since its sequence values
    // are gone with it, the index starts a new epoch.
    "DROP TABLE feed_file;
     DROP TABLE feed_run;
     CREATE TABLE feed_run(
        dir TEXT PRIMARY KEY,          -- run directory, relative to the storage root
        seq INTEGER NOT NULL,          -- change sequence value of its last change
        removed INTEGER NOT NULL,      -- 1: the directory is gone (a tombstone)
        state_fp TEXT NOT NULL,        -- fingerprint of the announced state ('' for tombstones)
        head TEXT NOT NULL,            -- the announced RunChange without records and files, JSON
        records TEXT NOT NULL,         -- {meta, status, summary, config, environment}, JSON
        files TEXT NOT NULL            -- [[path, size, mtime_ns, sha256 or null], ...], JSON
     );
     CREATE INDEX feed_run_by_seq ON feed_run(seq);
     DELETE FROM index_info WHERE key = 'epoch';
     INSERT OR REPLACE INTO index_info(key, value) VALUES ('seq', '0');",
    // 4: artifacts in the feed (`artifacts/<type>/<name>`, with sequence values from the same
    // counter as the runs, and tombstones), each announced state whole; and the records now
    // carry a run's `assets.json`: runs that have one are compared afresh by the next scan (an
    // empty manifest and fingerprint), so the hub gets their assets.
    "CREATE TABLE feed_artifact(
        dir TEXT PRIMARY KEY,          -- artifacts/<type>/<name>, relative to the storage root
        seq INTEGER NOT NULL,          -- change sequence value of its last change
        removed INTEGER NOT NULL,      -- 1: the artifact is gone (a tombstone)
        state_fp TEXT NOT NULL,        -- fingerprint of the announced state ('' for tombstones)
        state TEXT NOT NULL            -- the announced ArtifactChange (seq 0), JSON ('{}' for tombstones)
     );
     CREATE INDEX feed_artifact_by_seq ON feed_artifact(seq);
     UPDATE feed_run SET state_fp = '', files = '[]'
      WHERE removed = 0 AND files LIKE '%[\"assets.json\",%';",
];

/// Why the schema could not be brought up to date.
#[derive(Debug, thiserror::Error)]
pub enum MigrateError {
    #[error(transparent)]
    Sqlite(#[from] rusqlite::Error),
    #[error("it was written by a newer runicorn-agent (schema {found}; this one knows {known}); upgrade the agent")]
    Newer { found: usize, known: usize },
}

fn user_version(conn: &Connection) -> rusqlite::Result<usize> {
    let v: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    Ok(usize::try_from(v).unwrap_or(0))
}

/// Brings a database up to the current schema. Several agents may open a new index at once:
/// each step runs in an immediate (write-locked) transaction that re-reads the version, so a
/// step another process already applied is skipped rather than applied twice.
pub fn migrate(conn: &mut Connection) -> Result<(), MigrateError> {
    let known = MIGRATIONS.len();
    loop {
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let version = user_version(&tx)?;
        if version > known {
            return Err(MigrateError::Newer {
                found: version,
                known,
            });
        }
        let Some(sql) = MIGRATIONS.get(version) else {
            add_columns(&tx)?;
            tx.commit()?;
            return Ok(());
        };
        tx.execute_batch(sql)?;
        tx.pragma_update(None, "user_version", (version + 1) as i64)?;
        tx.commit()?;
    }
}

/// Columns added without a new schema version, so that older agents keep using the index:
/// they never name them, and a row they replace gets the column's default.
/// `feed_run.listed`: the folders of the run as listed by the walk that gave `files`
/// (`[[rel, mtime_s, mtime_nsec, settled], ...]`, JSON), so that the first scan of a session
/// trusts an unchanged folder as later scans do; `'[]'` (list every folder) when unknown.
/// `run_cache.events_problem`: why `events.jsonl` could not be read (NULL when it could); a row
/// an older agent replaced has none, and its run is read again when its files change.
/// `run_cache.step_timing`: when the run's recent new steps arrived (a `StepTiming`, JSON), for
/// the `stalled` verdict; a row without it (written before the column existed, or replaced by
/// an older agent) has its `events.jsonl` read again from the start.
/// `run_cache.alerts`: the alerts raised about the run and their evidence (raised alerts, the
/// GPU idle tracking of `system.jsonl`, the first non-finite value of each metric; JSON); a row
/// without it has its `events.jsonl` read again, and starts with no raised alerts.
fn add_columns(tx: &Connection) -> rusqlite::Result<()> {
    let has_events_problem: bool = tx.query_row(
        "SELECT count(*) > 0 FROM pragma_table_info('run_cache') WHERE name = 'events_problem'",
        [],
        |r| r.get(0),
    )?;
    if !has_events_problem {
        tx.execute_batch("ALTER TABLE run_cache ADD COLUMN events_problem TEXT")?;
    }
    let has_listed: bool = tx.query_row(
        "SELECT count(*) > 0 FROM pragma_table_info('feed_run') WHERE name = 'listed'",
        [],
        |r| r.get(0),
    )?;
    if !has_listed {
        tx.execute_batch("ALTER TABLE feed_run ADD COLUMN listed TEXT NOT NULL DEFAULT '[]'")?;
    }
    let has_step_timing: bool = tx.query_row(
        "SELECT count(*) > 0 FROM pragma_table_info('run_cache') WHERE name = 'step_timing'",
        [],
        |r| r.get(0),
    )?;
    if !has_step_timing {
        tx.execute_batch("ALTER TABLE run_cache ADD COLUMN step_timing TEXT")?;
    }
    let has_alerts: bool = tx.query_row(
        "SELECT count(*) > 0 FROM pragma_table_info('run_cache') WHERE name = 'alerts'",
        [],
        |r| r.get(0),
    )?;
    if !has_alerts {
        tx.execute_batch("ALTER TABLE run_cache ADD COLUMN alerts TEXT")?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_version_2_feed_is_replaced_and_its_epoch_dropped() {
        let mut conn = Connection::open_in_memory().unwrap();
        for (i, sql) in MIGRATIONS[..2].iter().enumerate() {
            conn.execute_batch(sql).unwrap();
            conn.pragma_update(None, "user_version", (i + 1) as i64)
                .unwrap();
        }
        conn.execute_batch(
            "INSERT INTO index_info VALUES ('epoch', 'old');
             INSERT INTO feed_run VALUES ('runs/a', 7, 0, 'fp', '{}');
             UPDATE index_info SET value = '7' WHERE key = 'seq';",
        )
        .unwrap();
        migrate(&mut conn).unwrap();
        let epoch: Option<String> = conn
            .query_row(
                "SELECT value FROM index_info WHERE key = 'epoch'",
                [],
                |r| r.get(0),
            )
            .ok();
        assert_eq!(epoch, None, "the opener makes a new epoch");
        let rows: i64 = conn
            .query_row("SELECT count(*) FROM feed_run", [], |r| r.get(0))
            .unwrap();
        assert_eq!(rows, 0);
    }

    #[test]
    fn version_4_reads_again_the_runs_that_have_an_assets_json() {
        let mut conn = Connection::open_in_memory().unwrap();
        for (i, sql) in MIGRATIONS[..3].iter().enumerate() {
            conn.execute_batch(sql).unwrap();
            conn.pragma_update(None, "user_version", (i + 1) as i64)
                .unwrap();
        }
        conn.execute_batch(
            r#"INSERT INTO feed_run VALUES ('runs/up', 1, 0, 'fp1', '{}', '{}',
                 '[["assets.json",10,1,null],["meta.json",5,1,null]]');
               INSERT INTO feed_run VALUES ('runs/plain', 2, 0, 'fp2', '{}', '{}',
                 '[["meta.json",5,1,null],["my_assets.json",3,1,null]]');"#,
        )
        .unwrap();
        migrate(&mut conn).unwrap();
        let rows: Vec<(String, String, String)> = conn
            .prepare("SELECT dir, state_fp, files FROM feed_run ORDER BY dir")
            .unwrap()
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
            .unwrap()
            .map(Result::unwrap)
            .collect();
        assert_eq!(rows[0].0, "runs/plain");
        assert_eq!(rows[0].1, "fp2", "a run without assets.json is left alone");
        assert_eq!((rows[1].1.as_str(), rows[1].2.as_str()), ("", "[]"));
        let artifacts: i64 = conn
            .query_row("SELECT count(*) FROM feed_artifact", [], |r| r.get(0))
            .unwrap();
        assert_eq!(artifacts, 0);
    }

    #[test]
    fn migrating_twice_is_a_no_op_and_newer_schemas_are_refused() {
        let mut conn = Connection::open_in_memory().unwrap();
        migrate(&mut conn).unwrap();
        migrate(&mut conn).unwrap();
        assert_eq!(user_version(&conn).unwrap(), MIGRATIONS.len());
        conn.pragma_update(None, "user_version", 99).unwrap();
        assert!(matches!(
            migrate(&mut conn),
            Err(MigrateError::Newer { found: 99, .. })
        ));
    }
}
