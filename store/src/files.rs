//! A run's files as the store serves them: putting content into the file cache (see
//! `file_cache.rs`) and recording which manifest entries the cache holds.

use std::io::Read;
use std::path::PathBuf;

use rusqlite::params;

use crate::error::{SqliteContext, StoreError};
use crate::file_cache::is_sha256_hex;
use crate::ids::RunKey;
use crate::store::Store;

/// Largest file the cache takes through [`Store::put_file_bytes`] (bytes in memory).
pub const MAX_BYTES_IN_MEMORY: u64 = 256 * 1024 * 1024;
impl Store {
    /// Stores bytes in the file cache; returns their SHA-256 (lowercase hex).
    pub fn put_file_bytes(&self, bytes: &[u8]) -> Result<String, StoreError> {
        if bytes.len() as u64 > MAX_BYTES_IN_MEMORY {
            return Err(StoreError::FileTooLarge {
                size: bytes.len() as u64,
                limit: MAX_BYTES_IN_MEMORY,
            });
        }
        Ok(self.cache.put(bytes, MAX_BYTES_IN_MEMORY)?.0)
    }

    /// Copies a stream of at most `limit` bytes into the file cache (more is refused and
    /// nothing is kept); returns the SHA-256 and the size.
    pub fn put_file(&self, reader: impl Read, limit: u64) -> Result<(String, u64), StoreError> {
        self.cache.put(reader, limit)
    }

    /// The cached file with this SHA-256, if it is there. Anything but 64 lowercase hex digits
    /// is `None`.
    pub fn file_path(&self, sha256: &str) -> Option<PathBuf> {
        self.cache.path_of(sha256)
    }

    /// Records that the cache holds the content of a run's file (as listed now). Returns false
    /// when the run has no such file.
    pub fn record_cached_file(
        &mut self,
        run: RunKey,
        path: &str,
        sha256: &str,
    ) -> Result<bool, StoreError> {
        if !is_sha256_hex(sha256) {
            return Ok(false);
        }
        let n = self
            .conn
            .execute(
                "UPDATE files SET cached_sha256 = ?3 WHERE run = ?1 AND path = ?2",
                params![run.0, path, sha256],
            )
            .at(&self.db_path)?;
        Ok(n > 0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testkit::*;

    #[test]
    fn content_is_stored_once_under_its_hash() {
        let (_tmp, store) = fresh_store();
        let sha = store.put_file_bytes(b"hello").unwrap();
        assert_eq!(
            sha,
            "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824"
        );
        let path = store.file_path(&sha).unwrap();
        assert!(path
            .ends_with("files/2c/f24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824"));
        assert_eq!(std::fs::read(&path).unwrap(), b"hello");
        let (again, size) = store.put_file(&b"hello"[..], 10).unwrap();
        assert_eq!((again.as_str(), size), (sha.as_str(), 5));
        assert_eq!(
            std::fs::read_dir(store.dir().join("files/tmp"))
                .unwrap()
                .count(),
            0
        );
    }

    #[test]
    fn oversized_streams_are_refused_and_leave_nothing() {
        let (_tmp, store) = fresh_store();
        let err = store.put_file(&[7u8; 100][..], 99).unwrap_err();
        assert!(
            matches!(err, StoreError::FileTooLarge { limit: 99, .. }),
            "{err}"
        );
        assert_eq!(
            std::fs::read_dir(store.dir().join("files/tmp"))
                .unwrap()
                .count(),
            0
        );
        assert_eq!(
            std::fs::read_dir(store.dir().join("files"))
                .unwrap()
                .count(),
            1
        );
    }

    #[test]
    fn only_well_formed_hashes_become_paths() {
        let (_tmp, store) = fresh_store();
        for bad in [
            "",
            "../../etc/passwd",
            &"A".repeat(64),
            &"a".repeat(63),
            &format!("{}/", "a".repeat(63)),
        ] {
            assert_eq!(store.file_path(bad), None, "{bad}");
        }
        assert_eq!(store.file_path(&"a".repeat(64)), None, "absent");
    }
}
