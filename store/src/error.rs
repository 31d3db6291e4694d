//! The store's one error type. Every message names the store file (or the remote, run and path
//! that was refused) and says what to do; SQLite's and the OS's codes are sorted into the cases
//! a user can act on (a full disk, a damaged file, a lock held elsewhere, a newer schema).

use std::path::{Path, PathBuf};

use rusqlite::ErrorCode;

/// Why the store could not do what was asked.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("hub store {path}: the disk is full; free some space, then sync again")]
    DiskFull { path: PathBuf },

    #[error(
        "hub store {path} is damaged ({detail}); move it away (with its -wal and -shm files) and \
         start runicorn-hub again: it creates a new store and syncs the remotes afresh"
    )]
    Corrupt { path: PathBuf, detail: String },

    #[error(
        "hub store {path} is locked by another process (another runicorn-hub?); stop it or wait, \
         then try again"
    )]
    Busy { path: PathBuf },

    #[error(
        "hub store {path} was written by a newer runicorn-hub (schema {found}; this one knows \
         {known}); upgrade runicorn-hub"
    )]
    NewerSchema {
        path: PathBuf,
        found: u32,
        known: u32,
    },

    #[error(
        "hub store {path} has schema {found} but this runicorn-hub needs {known}; open it once \
         for writing (start runicorn-hub) so it is upgraded"
    )]
    OlderSchema {
        path: PathBuf,
        found: u32,
        known: u32,
    },

    #[error("hub store {path} does not exist; start runicorn-hub once to create it")]
    Missing { path: PathBuf },

    #[error("hub store {path}: {source}")]
    Sqlite {
        path: PathBuf,
        #[source]
        source: rusqlite::Error,
    },

    #[error("hub store folder {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    #[error(
        "remote {remote} sent an unusable path {path:?} ({reason}); the whole batch was refused \
         and nothing was stored: check or upgrade runicorn-agent on that server"
    )]
    BadPath {
        remote: String,
        path: String,
        reason: String,
    },

    #[error(
        "remote {remote} sent an inconsistent batch for run {dir}: {reason}; the whole batch was \
         refused and nothing was stored: check or upgrade runicorn-agent on that server"
    )]
    BadBatch {
        remote: String,
        dir: String,
        reason: String,
    },

    #[error("hub store {path}: no remote with id {id} (was it removed meanwhile?)")]
    UnknownRemote { path: PathBuf, id: i64 },

    #[error(
        "series {key:?} has {total} points in the range, more than the {limit} a raw read may \
         return; narrow the range or ask for a downsampled series"
    )]
    RawTooLarge { key: String, total: u64, limit: u64 },

    #[error("file of {size} bytes exceeds the cache's limit of {limit} bytes; it was not stored")]
    FileTooLarge { size: u64, limit: u64 },
}

impl StoreError {
    /// Sorts a SQLite error on the store file `path` into the case a user can act on.
    pub(crate) fn sqlite(path: &Path, source: rusqlite::Error) -> StoreError {
        let path = path.to_owned();
        match source.sqlite_error_code() {
            Some(ErrorCode::DiskFull) => StoreError::DiskFull { path },
            Some(ErrorCode::DatabaseCorrupt | ErrorCode::NotADatabase) => StoreError::Corrupt {
                path,
                detail: source.to_string(),
            },
            Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked) => StoreError::Busy { path },
            _ => StoreError::Sqlite { path, source },
        }
    }

    /// Sorts an I/O error on `path` (in the store folder), recognising a full disk.
    pub(crate) fn io(path: &Path, source: std::io::Error) -> StoreError {
        let path = path.to_owned();
        let full = source.kind() == std::io::ErrorKind::StorageFull
            || source.kind() == std::io::ErrorKind::QuotaExceeded;
        if full {
            StoreError::DiskFull { path }
        } else {
            StoreError::Io { path, source }
        }
    }

    /// True when the disk is full (the sync can retry once space is freed).
    pub fn is_disk_full(&self) -> bool {
        matches!(self, StoreError::DiskFull { .. })
    }

    /// True when the peer sent something the store refused (the connection's fault, not the
    /// store's): the hub reports it against the remote and keeps the store as it was.
    pub fn is_bad_input(&self) -> bool {
        matches!(
            self,
            StoreError::BadPath { .. } | StoreError::BadBatch { .. }
        )
    }
}

/// Attaches the store file's path to a SQLite result.
pub(crate) trait SqliteContext<T> {
    fn at(self, path: &Path) -> Result<T, StoreError>;
}

impl<T> SqliteContext<T> for Result<T, rusqlite::Error> {
    fn at(self, path: &Path) -> Result<T, StoreError> {
        self.map_err(|e| StoreError::sqlite(path, e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_name_the_file_and_what_to_do() {
        let p = Path::new("/x/store.sqlite");
        let full = StoreError::sqlite(
            p,
            rusqlite::Error::SqliteFailure(rusqlite::ffi::Error::new(13), None),
        );
        assert!(full.is_disk_full());
        assert!(full.to_string().contains("/x/store.sqlite"));
        assert!(full.to_string().contains("disk is full"));
        let corrupt = StoreError::sqlite(
            p,
            rusqlite::Error::SqliteFailure(rusqlite::ffi::Error::new(26), None),
        );
        assert!(corrupt.to_string().contains("move it away"), "{corrupt}");
        let io = StoreError::io(p, std::io::Error::from(std::io::ErrorKind::StorageFull));
        assert!(io.is_disk_full());
        let newer = StoreError::NewerSchema {
            path: p.into(),
            found: 9,
            known: 1,
        };
        assert!(newer.to_string().contains("upgrade runicorn-hub"));
    }
}
