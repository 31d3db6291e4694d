//! The index database's schema and its migrations. Migrations are only ever added, never
//! edited: `user_version` says how many have run.

use rusqlite::Connection;

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
];

/// Brings a database up to the current schema. A database from a newer agent is refused.
pub fn migrate(conn: &mut Connection) -> rusqlite::Result<()> {
    let version: usize = conn
        .query_row("PRAGMA user_version", [], |r| r.get::<_, i64>(0))?
        .try_into()
        .unwrap_or(0);
    if version > MIGRATIONS.len() {
        return Err(rusqlite::Error::InvalidParameterName(format!(
            "index schema version {version} is newer than this agent knows ({}); upgrade runicorn-agent",
            MIGRATIONS.len()
        )));
    }
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(version) {
        let tx = conn.transaction()?;
        tx.execute_batch(sql)?;
        tx.pragma_update(None, "user_version", (i + 1) as i64)?;
        tx.commit()?;
    }
    Ok(())
}
