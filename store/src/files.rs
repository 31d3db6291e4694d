//! The content-addressed file cache: `files/ab/cdef…` holds the bytes whose SHA-256 is
//! `abcdef…`. A file is written to `files/tmp/`, synced, and renamed into place, so a cached
//! path always holds complete, verified content; the same content is stored once. Paths are
//! only ever built from a validated hash, never from anything a peer sent.

use std::fs::File;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

use rusqlite::params;
use sha2::{Digest, Sha256};

use crate::error::{SqliteContext, StoreError};
use crate::runs::RunKey;
use crate::store::Store;

/// Largest file the cache takes through [`Store::put_file_bytes`] (bytes in memory).
pub const MAX_BYTES_IN_MEMORY: u64 = 256 * 1024 * 1024;
/// Temporary files older than this are left-overs of a crash, removed at open.
const STALE_TEMP: Duration = Duration::from_secs(24 * 3600);

/// True for 64 lowercase hex digits: the only hash the cache turns into a path.
pub fn is_sha256_hex(s: &str) -> bool {
    s.len() == 64
        && s.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// The cache folder.
pub(crate) struct FileCache {
    root: PathBuf,
}

fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(char::from(DIGITS[usize::from(b >> 4)]));
        s.push(char::from(DIGITS[usize::from(b & 15)]));
    }
    s
}

impl FileCache {
    /// Opens the cache at `root`, creating it (and clearing stale temporary files) when
    /// `writable`.
    pub(crate) fn open(root: &Path, writable: bool) -> Result<FileCache, StoreError> {
        let cache = FileCache {
            root: root.to_owned(),
        };
        if writable {
            let tmp = cache.tmp_dir();
            std::fs::create_dir_all(&tmp).map_err(|e| StoreError::io(&tmp, e))?;
            cache.clear_stale_temps();
        }
        Ok(cache)
    }

    fn tmp_dir(&self) -> PathBuf {
        self.root.join("tmp")
    }

    fn clear_stale_temps(&self) {
        let Ok(entries) = std::fs::read_dir(self.tmp_dir()) else {
            return;
        };
        for entry in entries.flatten() {
            let old = entry
                .metadata()
                .and_then(|m| m.modified())
                .ok()
                .and_then(|t| SystemTime::now().duration_since(t).ok())
                .is_some_and(|age| age > STALE_TEMP);
            if old {
                let _ = std::fs::remove_file(entry.path());
            }
        }
    }

    /// Where content with this hash lives (whether or not it is there).
    fn slot(&self, sha256: &str) -> Option<PathBuf> {
        if !is_sha256_hex(sha256) {
            return None;
        }
        let (dir, rest) = sha256.split_at(2);
        Some(self.root.join(dir).join(rest))
    }

    pub(crate) fn path_of(&self, sha256: &str) -> Option<PathBuf> {
        self.slot(sha256).filter(|p| p.is_file())
    }

    /// Copies at most `limit` bytes from `reader` into the cache; returns the hash and size.
    pub(crate) fn put(
        &self,
        mut reader: impl Read,
        limit: u64,
    ) -> Result<(String, u64), StoreError> {
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let nanos = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        let tmp = self.tmp_dir().join(format!(
            "{}-{}-{nanos}.part",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        ));
        let result = self
            .write_temp(&tmp, &mut reader, limit)
            .and_then(|(sha, size)| {
                self.move_into_place(&tmp, &sha)?;
                Ok((sha, size))
            });
        if result.is_err() {
            let _ = std::fs::remove_file(&tmp);
        }
        result
    }

    fn write_temp(
        &self,
        tmp: &Path,
        reader: &mut impl Read,
        limit: u64,
    ) -> Result<(String, u64), StoreError> {
        let io = |e| StoreError::io(tmp, e);
        let mut file = File::options()
            .write(true)
            .create_new(true)
            .open(tmp)
            .map_err(io)?;
        let mut hasher = Sha256::new();
        let mut size: u64 = 0;
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let n = match reader.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(io(e)),
            };
            size += n as u64;
            if size > limit {
                return Err(StoreError::FileTooLarge { size, limit });
            }
            let chunk = &buf[..n];
            hasher.update(chunk);
            file.write_all(chunk).map_err(io)?;
        }
        file.sync_all().map_err(io)?;
        Ok((hex(&hasher.finalize()), size))
    }

    fn move_into_place(&self, tmp: &Path, sha: &str) -> Result<(), StoreError> {
        let Some(dest) = self.slot(sha) else {
            // `sha` comes from our own hasher as 64 lowercase hex digits.
            return Err(StoreError::io(
                tmp,
                std::io::Error::other("internal: bad hash"),
            ));
        };
        if dest.is_file() {
            // Same hash, same bytes: nothing to add.
            let _ = std::fs::remove_file(tmp);
            return Ok(());
        }
        let dir = dest.parent().unwrap_or(&self.root);
        std::fs::create_dir_all(dir).map_err(|e| StoreError::io(dir, e))?;
        std::fs::rename(tmp, &dest).map_err(|e| StoreError::io(&dest, e))?;
        // Make the rename itself durable.
        if let Ok(d) = File::open(dir) {
            let _ = d.sync_all();
        }
        Ok(())
    }
}

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
