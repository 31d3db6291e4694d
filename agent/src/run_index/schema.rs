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
            return Ok(());
        };
        tx.execute_batch(sql)?;
        tx.pragma_update(None, "user_version", (version + 1) as i64)?;
        tx.commit()?;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
