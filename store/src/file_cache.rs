//! The content-addressed file cache: `files/ab/cdef…` holds the bytes whose SHA-256 is
//! `abcdef…`. A file is written to `files/tmp/`, synced, and renamed into place, so a cached
//! path always holds complete, verified content; the same content is stored once. Paths are
//! only ever built from a validated hash, never from anything a peer sent. Knows nothing of
//! SQLite: `files.rs` ties cached content to runs' manifests.
//!
//! A transfer from a remote writes a [`Partial`]: `files/tmp/<hash of the source>.partial`,
//! locked (flock) while written, hashed as it grows. A cut transfer leaves it behind, and the
//! next attempt for the same source resumes from its length; a verified one is moved into place
//! by [`Partial::commit`]. Cached files are touched (mtime = now) when served or fetched, so
//! their mtime orders them for a least-recently-used clean-up, which skips files it cannot lock
//! exclusively (a reader holds a shared lock while it streams one).

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

/// The cache folder (`<store>/files`). Cheap to clone; every method is blocking file I/O.
#[derive(Debug, Clone)]
pub struct FileCache {
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

    /// The cache of the store in `store_dir` (`<store_dir>/files`), without creating anything.
    pub fn of_store_dir(store_dir: &Path) -> FileCache {
        FileCache {
            // `store::FILES_DIR`, written out: this plain module imports no layer above it
            // (`files.rs` checks the two agree).
            root: store_dir.join("files"),
        }
    }

    /// The cache folder.
    pub fn root(&self) -> &Path {
        &self.root
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

    /// The cached file with this hash, if it is there.
    pub fn path_of(&self, sha256: &str) -> Option<PathBuf> {
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

    /// Where the partial transfer of the source named `source` (any string that identifies the
    /// remote file and its version) is kept.
    pub fn partial_path(&self, source: &str) -> PathBuf {
        let name = hex(&Sha256::digest(source.as_bytes()));
        self.tmp_dir().join(format!("{name}.partial"))
    }

    /// Opens (or creates) the partial transfer of `source`, waiting for the exclusive lock when
    /// another transfer (in this process or another) holds it. Bytes already there are hashed
    /// again so the transfer can go on from its end; a partial longer than `expected_size` is
    /// emptied.
    pub fn open_partial(&self, source: &str, expected_size: u64) -> Result<Partial, StoreError> {
        let tmp = self.tmp_dir();
        std::fs::create_dir_all(&tmp).map_err(|e| StoreError::io(&tmp, e))?;
        let path = self.partial_path(source);
        let io = |e| StoreError::io(&path, e);
        let mut file = File::options()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(io)?;
        file.lock().map_err(io)?;
        let mut partial = Partial {
            file: None,
            path: path.clone(),
            hasher: Sha256::new(),
            len: 0,
        };
        let on_disk = file.metadata().map_err(io)?.len();
        if on_disk > expected_size {
            file.set_len(0).map_err(io)?;
        } else if on_disk > 0 {
            let mut buf = vec![0u8; 256 * 1024];
            loop {
                let n = match file.read(&mut buf) {
                    Ok(0) => break,
                    Ok(n) => n,
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                    Err(e) => return Err(io(e)),
                };
                partial.hasher.update(&buf[..n]);
                partial.len += n as u64;
            }
        }
        use std::io::Seek;
        file.seek(std::io::SeekFrom::Start(partial.len))
            .map_err(io)?;
        partial.file = Some(file);
        Ok(partial)
    }

    /// Moves `file`, whose bytes the caller has already checked to hash to `sha256` (an import's
    /// landed member), into the cache under that hash: a rename when it is on the cache's file
    /// system, else a copy. Returns whether the cache gained it (false: it was there already,
    /// and `file` is left alone).
    pub fn adopt_checked(&self, file: &Path, sha256: &str) -> Result<bool, StoreError> {
        let Some(dest) = self.slot(sha256) else {
            return Err(StoreError::io(
                file,
                std::io::Error::other(format!("{sha256:?} is not a SHA-256")),
            ));
        };
        if dest.is_file() {
            return Ok(false);
        }
        let dir = dest.parent().unwrap_or(&self.root);
        std::fs::create_dir_all(dir).map_err(|e| StoreError::io(dir, e))?;
        if std::fs::rename(file, &dest).is_err() {
            // Another file system: copy through a temporary file, then rename into place.
            let tmp_dir = self.tmp_dir();
            std::fs::create_dir_all(&tmp_dir).map_err(|e| StoreError::io(&tmp_dir, e))?;
            let tmp = tmp_dir.join(format!("{sha256}.adopt-{}", std::process::id()));
            std::fs::copy(file, &tmp).map_err(|e| StoreError::io(&tmp, e))?;
            if let Err(e) = std::fs::rename(&tmp, &dest) {
                let _ = std::fs::remove_file(&tmp);
                return Err(StoreError::io(&dest, e));
            }
        }
        Ok(true)
    }

    /// Sets a cached file's mtime to now: it was just used (the LRU order of a clean-up).
    pub fn touch(path: &Path) {
        if let Ok(f) = File::options().write(true).open(path) {
            let _ = f.set_modified(SystemTime::now());
        }
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

/// A transfer into the cache, not verified yet: a locked file in `files/tmp/` and the SHA-256
/// of what it holds so far. Dropped without [`Partial::commit`] or [`Partial::discard`], it
/// stays on disk (unlocked) for the next attempt to resume.
#[derive(Debug)]
pub struct Partial {
    /// `None` only once committed or discarded.
    file: Option<File>,
    path: PathBuf,
    hasher: Sha256,
    len: u64,
}

/// What a committed transfer became: content in the cache.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CachedContent {
    pub sha256: String,
    pub size: u64,
    /// The cached file (`files/ab/cdef…`).
    pub path: PathBuf,
}

impl Partial {
    /// Bytes held so far (where the transfer goes on from).
    pub fn len(&self) -> u64 {
        self.len
    }

    /// True when nothing is held yet.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The file being written.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Appends the next bytes of the source.
    pub fn append(&mut self, bytes: &[u8]) -> Result<(), StoreError> {
        let Some(file) = self.file.as_mut() else {
            return Err(StoreError::io(
                &self.path,
                std::io::Error::other("internal: the partial transfer was already closed"),
            ));
        };
        file.write_all(bytes)
            .map_err(|e| StoreError::io(&self.path, e))?;
        self.hasher.update(bytes);
        self.len += bytes.len() as u64;
        Ok(())
    }

    /// Empties it, to start the transfer again from the first byte.
    pub fn restart(&mut self) -> Result<(), StoreError> {
        use std::io::Seek;
        if let Some(file) = self.file.as_mut() {
            let io = |e| StoreError::io(&self.path, e);
            file.set_len(0).map_err(io)?;
            file.seek(std::io::SeekFrom::Start(0)).map_err(io)?;
        }
        self.hasher = Sha256::new();
        self.len = 0;
        Ok(())
    }

    /// The SHA-256 of what it holds (lowercase hex).
    pub fn sha256(&self) -> String {
        hex(&self.hasher.clone().finalize())
    }

    /// Moves the content into the cache under its hash (or drops it when the cache holds
    /// those bytes already) and touches the cached file. Call only once the content is
    /// verified.
    pub fn commit(mut self, cache: &FileCache) -> Result<CachedContent, StoreError> {
        let sha256 = self.sha256();
        let io = |e| StoreError::io(&self.path, e);
        if let Some(file) = self.file.as_ref() {
            file.sync_all().map_err(io)?;
        }
        cache.move_into_place(&self.path, &sha256)?;
        // Unlocks only after the rename: a waiting transfer then finds the content in place.
        self.file = None;
        let path = cache.slot(&sha256).ok_or_else(|| {
            StoreError::io(&self.path, std::io::Error::other("internal: bad hash"))
        })?;
        FileCache::touch(&path);
        Ok(CachedContent {
            sha256,
            size: self.len,
            path,
        })
    }

    /// Removes it (its bytes are not what was expected).
    pub fn discard(mut self) {
        let _ = std::fs::remove_file(&self.path);
        self.file = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cache() -> (tempfile::TempDir, FileCache) {
        let dir = tempfile::tempdir().unwrap();
        let cache = FileCache::open(&dir.path().join("files"), true).unwrap();
        (dir, cache)
    }

    #[test]
    fn a_partial_resumes_from_its_length_and_commits_under_its_hash() {
        let (_dir, cache) = cache();
        let mut first = cache.open_partial("gpu:/r/a.bin@11", 11).unwrap();
        assert_eq!(first.len(), 0);
        first.append(b"hello ").unwrap();
        drop(first); // cut
        let mut again = cache.open_partial("gpu:/r/a.bin@11", 11).unwrap();
        assert_eq!(again.len(), 6);
        again.append(b"world").unwrap();
        let sha = again.sha256();
        assert_eq!(sha, hex(&Sha256::digest(b"hello world")));
        let partial = again.path().to_owned();
        let done = again.commit(&cache).unwrap();
        assert_eq!(done.size, 11);
        assert_eq!(std::fs::read(&done.path).unwrap(), b"hello world");
        assert_eq!(cache.path_of(&sha), Some(done.path));
        assert!(!partial.exists());
    }

    #[test]
    fn a_partial_longer_than_its_source_starts_again_and_discard_removes_it() {
        let (_dir, cache) = cache();
        let mut p = cache.open_partial("x", 100).unwrap();
        p.append(&[1; 50]).unwrap();
        drop(p);
        let p = cache.open_partial("x", 10).unwrap();
        assert_eq!(p.len(), 0);
        let path = p.path().to_owned();
        p.discard();
        assert!(!path.exists());
    }

    #[test]
    fn the_same_bytes_twice_are_stored_once() {
        let (_dir, cache) = cache();
        let mut a = cache.open_partial("a", 3).unwrap();
        a.append(b"abc").unwrap();
        let first = a.commit(&cache).unwrap();
        let mut b = cache.open_partial("b", 3).unwrap();
        b.append(b"abc").unwrap();
        let b_path = b.path().to_owned();
        let second = b.commit(&cache).unwrap();
        assert_eq!(first, second);
        assert!(!b_path.exists());
    }

    #[test]
    fn a_partial_in_use_is_locked() {
        let (_dir, cache) = cache();
        let p = cache.open_partial("busy", 5).unwrap();
        let other = File::options().read(true).open(p.path()).unwrap();
        assert!(
            other.try_lock().is_err(),
            "the partial must be locked while written"
        );
        drop(p);
        assert!(other.try_lock().is_ok());
    }
}
