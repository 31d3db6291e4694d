//! The [`Store`] facade and opening it: the folder, the SQLite file and its settings (the schema
//! brought up to date by `schema.rs`), the file cache beside it. The struct lives here; the
//! table modules (`remotes`, `runs`, `changes`, `points`, …) each add its methods in their own
//! `impl Store` block and import this module, never the other way round.
//!
//! One [`Store`] holds one connection. The hub keeps one writing store (on a dedicated thread or
//! in `spawn_blocking`) and opens read-only ones for readers: in WAL mode readers see the last
//! committed state and never wait for the writer.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use rusqlite::config::DbConfig;
use rusqlite::{
    Connection, OpenFlags, OptionalExtension, Savepoint, Transaction, TransactionBehavior,
};

use crate::error::{SqliteContext, StoreError};
use crate::file_cache::FileCache;
use crate::ids::RemoteId;
use crate::schema;

/// Name of the SQLite file inside the store folder.
pub const STORE_FILE: &str = "store.sqlite";
/// Name of the content-addressed file cache inside the store folder.
pub const FILES_DIR: &str = "files";
/// Environment variable naming the store folder.
pub const HUB_DIR_ENV: &str = "RUNICORN_HUB_DIR";

/// Page size of a new store. Bulk point inserts measured ~2.3 M rows/s with the default 4 KiB
/// pages, ~2.7 M with 16 KiB and ~3.1 M with 32 KiB (fewer B-tree splits); see
/// `docs/PERFORMANCE.md`.
const PAGE_SIZE: i64 = 32 * 1024;
/// Page cache per connection, in KiB (negative `cache_size` is KiB in SQLite).
const CACHE_KIB: i64 = 64 * 1024;
/// How long a statement waits for a lock held by another connection.
const BUSY_TIMEOUT: Duration = Duration::from_secs(10);
/// Prepared statements kept per connection (ingest alone uses about a dozen).
const STATEMENT_CACHE: usize = 64;

/// The store folder: `$RUNICORN_HUB_DIR` when set, else the platform's data directory
/// (`~/.local/share/runicorn-hub` on Linux, `~/Library/Application Support/runicorn-hub` on
/// macOS, `%APPDATA%\runicorn-hub` on Windows).
pub fn default_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os(HUB_DIR_ENV).filter(|d| !d.is_empty()) {
        return PathBuf::from(dir);
    }
    match directories::BaseDirs::new() {
        Some(base) => base.data_dir().join("runicorn-hub"),
        // No home directory at all (a bare container): the working directory is the only
        // place left that the user chose.
        None => PathBuf::from(".runicorn-hub"),
    }
}

/// One write step: its own transaction, or a savepoint inside an atomic step
/// ([`Store::begin_atomic`]). Either way it reads as the connection and ends with `commit`.
pub(crate) enum WriteTx<'c> {
    Own(Transaction<'c>),
    Nested(Savepoint<'c>),
}

/// [`Store::write_tx`] for code that holds the connection apart from the rest of the store.
pub(crate) fn write_tx(conn: &mut Connection) -> rusqlite::Result<WriteTx<'_>> {
    if conn.is_autocommit() {
        conn.transaction_with_behavior(TransactionBehavior::Immediate)
            .map(WriteTx::Own)
    } else {
        conn.savepoint().map(WriteTx::Nested)
    }
}

impl WriteTx<'_> {
    pub(crate) fn commit(self) -> rusqlite::Result<()> {
        match self {
            WriteTx::Own(tx) => tx.commit(),
            WriteTx::Nested(sp) => sp.commit(),
        }
    }
}

impl std::ops::Deref for WriteTx<'_> {
    type Target = Connection;
    fn deref(&self) -> &Connection {
        match self {
            WriteTx::Own(tx) => tx,
            WriteTx::Nested(sp) => sp,
        }
    }
}

/// The hub's store: SQLite for everything that is queried, a file cache beside it.
pub struct Store {
    pub(crate) conn: Connection,
    pub(crate) db_path: PathBuf,
    dir: PathBuf,
    pub(crate) cache: FileCache,
    /// Metric key name → `metric_keys.id`, for keys committed by this connection or read by it.
    pub(crate) key_ids: HashMap<String, i64>,
}

impl Store {
    /// Opens (creating if needed) the store in `dir`: the folder, `store.sqlite` in WAL mode
    /// brought up to the current schema, and `files/`.
    pub fn open(dir: &Path) -> Result<Store, StoreError> {
        std::fs::create_dir_all(dir).map_err(|e| StoreError::io(dir, e))?;
        let db_path = dir.join(STORE_FILE);
        let p = db_path.as_path();
        let mut conn = Connection::open(p).at(p)?;
        conn.busy_timeout(BUSY_TIMEOUT).at(p)?;
        // Only takes effect while the file is new (before WAL is switched on).
        conn.pragma_update(None, "page_size", PAGE_SIZE).at(p)?;
        let mode: String = conn
            .query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))
            .at(p)?;
        if !mode.eq_ignore_ascii_case("wal") {
            tracing::warn!(store = %p.display(), mode, "the store's file system refused WAL mode; readers will wait for the writer");
        }
        conn.pragma_update(None, "synchronous", "NORMAL").at(p)?;
        conn.pragma_update(None, "journal_size_limit", 64 * 1024 * 1024)
            .at(p)?;
        Self::tune(&conn, p)?;
        schema::migrate(&mut conn, p)?;
        let cache = FileCache::open(&dir.join(FILES_DIR), true)?;
        Ok(Store {
            conn,
            db_path,
            dir: dir.to_owned(),
            cache,
            key_ids: HashMap::new(),
        })
    }

    /// Opens an existing store for reading only (the dashboard's connections). It never
    /// migrates: a store of another schema version is refused with a typed error.
    pub fn open_read_only(dir: &Path) -> Result<Store, StoreError> {
        let db_path = dir.join(STORE_FILE);
        let p = db_path.as_path();
        if !p.exists() {
            return Err(StoreError::Missing {
                path: db_path.clone(),
            });
        }
        let flags = OpenFlags::SQLITE_OPEN_READ_ONLY
            | OpenFlags::SQLITE_OPEN_NO_MUTEX
            | OpenFlags::SQLITE_OPEN_URI;
        let conn = Connection::open_with_flags(p, flags).at(p)?;
        conn.busy_timeout(BUSY_TIMEOUT).at(p)?;
        Self::tune(&conn, p)?;
        schema::check_current(&conn, p)?;
        let cache = FileCache::open(&dir.join(FILES_DIR), false)?;
        Ok(Store {
            conn,
            db_path,
            dir: dir.to_owned(),
            cache,
            key_ids: HashMap::new(),
        })
    }

    fn tune(conn: &Connection, p: &Path) -> Result<(), StoreError> {
        // Plans never depend on bound values. Without this, SQLite (3.54) marks parameters
        // such as `key = ?` or `LIMIT ?` "re-plan when rebound", and since the statement cache
        // clears the bindings of every statement it takes back, each cached statement was
        // parsed and planned again at every use: a third of the time of a downsampled series.
        conn.set_db_config(DbConfig::SQLITE_DBCONFIG_ENABLE_QPSG, true)
            .at(p)?;
        conn.pragma_update(None, "foreign_keys", "ON").at(p)?;
        conn.pragma_update(None, "cache_size", -CACHE_KIB).at(p)?;
        conn.pragma_update(None, "temp_store", "MEMORY").at(p)?;
        conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
        Ok(())
    }

    /// The store folder.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The SQLite file.
    pub fn db_path(&self) -> &Path {
        &self.db_path
    }

    /// Begins a write: a transaction (`BEGIN IMMEDIATE`) when none is open, else a savepoint
    /// inside the one [`Store::begin_atomic`] opened, so every write method composes into one
    /// all-or-nothing step.
    pub(crate) fn write_tx(&mut self) -> rusqlite::Result<WriteTx<'_>> {
        write_tx(&mut self.conn)
    }

    /// Opens one write transaction that every later write of this `Store` joins, until
    /// [`Store::commit_atomic`] or [`Store::rollback_atomic`]: many batches become one step that
    /// lands whole or not at all (an import). Other writers wait for it (their busy timeout).
    /// The in-memory caches may then hold rows of a rolled-back step: a `Store` that rolled
    /// back is dropped, not reused.
    pub fn begin_atomic(&mut self) -> Result<(), StoreError> {
        self.conn.execute_batch("BEGIN IMMEDIATE").at(&self.db_path)
    }

    /// Commits what [`Store::begin_atomic`] opened.
    pub fn commit_atomic(&mut self) -> Result<(), StoreError> {
        self.conn.execute_batch("COMMIT").at(&self.db_path)
    }

    /// Undoes everything since [`Store::begin_atomic`] and forgets the in-memory caches.
    pub fn rollback_atomic(&mut self) -> Result<(), StoreError> {
        self.key_ids.clear();
        if self.conn.is_autocommit() {
            return Ok(());
        }
        self.conn.execute_batch("ROLLBACK").at(&self.db_path)
    }

    /// Name of a remote, for error messages; refuses an unknown id.
    pub(crate) fn remote_name(&self, remote: RemoteId) -> Result<String, StoreError> {
        self.conn
            .query_row("SELECT name FROM remotes WHERE id = ?1", [remote.0], |r| {
                r.get(0)
            })
            .optional()
            .at(&self.db_path)?
            .ok_or(StoreError::UnknownRemote {
                path: self.db_path.clone(),
                id: remote.0,
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn store_is_send() {
        fn is_send<T: Send>() {}
        is_send::<Store>();
    }

    #[test]
    fn open_creates_the_folder_in_wal_mode_and_reopens() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("hub");
        {
            let s = Store::open(&dir).unwrap();
            let mode: String = s
                .conn
                .query_row("PRAGMA journal_mode", [], |r| r.get(0))
                .unwrap();
            assert_eq!(mode, "wal");
            let page: i64 = s
                .conn
                .query_row("PRAGMA page_size", [], |r| r.get(0))
                .unwrap();
            assert_eq!(page, PAGE_SIZE);
            assert!(dir.join(FILES_DIR).is_dir());
        }
        Store::open(&dir).unwrap();
        Store::open_read_only(&dir).unwrap();
    }

    #[test]
    fn read_only_open_of_a_missing_store_says_so() {
        let tmp = tempfile::tempdir().unwrap();
        let err = Store::open_read_only(tmp.path()).err().unwrap();
        assert!(matches!(err, StoreError::Missing { .. }), "{err}");
    }

    #[test]
    fn a_newer_store_is_refused_with_its_file_named() {
        let tmp = tempfile::tempdir().unwrap();
        drop(Store::open(tmp.path()).unwrap());
        let conn = Connection::open(tmp.path().join(STORE_FILE)).unwrap();
        conn.pragma_update(None, "user_version", 1000).unwrap();
        drop(conn);
        for err in [
            Store::open(tmp.path()).err().unwrap(),
            Store::open_read_only(tmp.path()).err().unwrap(),
        ] {
            assert!(matches!(err, StoreError::NewerSchema { .. }), "{err}");
            let text = err.to_string();
            assert!(text.contains(STORE_FILE) && text.contains("upgrade runicorn-hub"));
        }
    }

    #[test]
    fn a_file_that_is_not_a_database_is_reported_as_damaged() {
        let tmp = tempfile::tempdir().unwrap();
        std::fs::write(tmp.path().join(STORE_FILE), vec![b'x'; 8192]).unwrap();
        let err = Store::open(tmp.path()).err().unwrap();
        assert!(matches!(err, StoreError::Corrupt { .. }), "{err}");
        assert!(err.to_string().contains("move it away"));
    }

    #[test]
    fn default_dir_follows_the_environment() {
        // The only test touching this variable; others use explicit folders.
        std::env::set_var(HUB_DIR_ENV, "/some/where");
        assert_eq!(default_dir(), PathBuf::from("/some/where"));
        std::env::remove_var(HUB_DIR_ENV);
        let d = default_dir();
        assert!(d.ends_with("runicorn-hub") || d.ends_with(".runicorn-hub"));
    }
}
