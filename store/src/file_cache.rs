//! The content-addressed file cache: `files/ab/cdef…` holds the bytes whose SHA-256 is
//! `abcdef…`. A file is written to `files/tmp/`, synced, and renamed into place, so a cached
//! path always holds complete, verified content; the same content is stored once. Paths are
//! only ever built from a validated hash, never from anything a peer sent. Knows nothing of
//! SQLite: `files.rs` ties cached content to runs' manifests.

use std::fs::File;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

use sha2::{Digest, Sha256};

use crate::error::StoreError;

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
