//! The hub's cache of artifact contents held as chunks (issue 13, item 4): chunk files at
//! `files/chunks/<sha[:2]>/<sha>` ([`ChunkCache`], each written only after its bytes were seen
//! to hash to its name), the `content_chunks` rows that say which chunks make a content, in
//! order, and [`ContentReader`], which reads a cached content (whole or chunked) from any
//! offset, for `fetch artifact` and the download route's ranges. A reader opened with
//! [`ContentReader::open_held`] holds its content against `cache gc` (a whole file locked
//! shared, or the content's hold file `files/chunks/held/<content>` locked shared) and touches
//! its files, at most once a minute each.
//!
//! A content is recorded only once every chunk is on disk and the whole SHA-256 was checked, so
//! rows never name a content that cannot be read. A chunk is shared by every content that holds
//! it, whatever remote or version brought it: the hub never transfers it twice.

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};

use rusqlite::{params, OptionalExtension};
use sha2::{Digest, Sha256};

use crate::error::{SqliteContext, StoreError};
use crate::file_cache::{is_sha256_hex, FileCache};
use crate::store::Store;

/// The chunk folder inside the file cache (`files/chunks`).
pub const CHUNKS_DIR: &str = "chunks";

/// The chunk files of the cache (`files/chunks`). Cheap to clone; every method is blocking I/O.
#[derive(Debug, Clone)]
pub struct ChunkCache {
    root: PathBuf,
    tmp: PathBuf,
}

/// One chunk of a content: its place in the content and its hash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContentChunk {
    /// The chunk's SHA-256 (its file is `files/chunks/<sha[:2]>/<sha>`).
    pub chunk: String,
    pub offset: u64,
    pub size: u64,
}

/// How the cache holds a content, when it holds all of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CachedLayout {
    /// One file (`files/ab/cdef…`).
    Whole(PathBuf),
    /// Chunk files, in order.
    Chunks(Vec<(ContentChunk, PathBuf)>),
}

impl CachedLayout {
    /// The content's size: the whole file's length, or the sum of its chunks.
    pub fn size(&self) -> std::io::Result<u64> {
        match self {
            CachedLayout::Whole(path) => Ok(std::fs::metadata(path)?.len()),
            CachedLayout::Chunks(chunks) => Ok(chunks.iter().map(|(c, _)| c.size).sum()),
        }
    }
}

impl ChunkCache {
    /// The chunk folder of the file cache `files`.
    pub fn of(files: &FileCache) -> ChunkCache {
        ChunkCache {
            root: files.root().join(CHUNKS_DIR),
            tmp: files.root().join("tmp"),
        }
    }

    /// Where the chunk with this hash lives (whether or not it is there); `None` for anything
    /// but 64 lowercase hex digits.
    pub fn slot(&self, sha256: &str) -> Option<PathBuf> {
        if !is_sha256_hex(sha256) {
            return None;
        }
        Some(self.root.join(&sha256[..2]).join(sha256))
    }

    /// The chunk file with this hash, if it is there.
    pub fn path_of(&self, sha256: &str) -> Option<PathBuf> {
        self.slot(sha256).filter(|p| p.is_file())
    }

    /// Keeps `bytes` as the chunk `sha256` after checking they hash to it; a mismatch keeps
    /// nothing and is [`ChunkRefused`] (the caller names the remote and content).
    pub fn put(
        &self,
        sha256: &str,
        bytes: &[u8],
    ) -> Result<Result<PathBuf, ChunkRefused>, StoreError> {
        let Some(slot) = self.slot(sha256) else {
            return Ok(Err(ChunkRefused {
                expected: sha256.to_owned(),
                actual: "(not a SHA-256)".into(),
            }));
        };
        let actual = hex(&Sha256::digest(bytes));
        if actual != sha256 {
            return Ok(Err(ChunkRefused {
                expected: sha256.to_owned(),
                actual,
            }));
        }
        if slot.is_file() {
            return Ok(Ok(slot));
        }
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        std::fs::create_dir_all(&self.tmp).map_err(|e| StoreError::io(&self.tmp, e))?;
        let tmp = self.tmp.join(format!(
            "chunk-{}-{}.part",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        ));
        let written = (|| -> io::Result<()> {
            let mut f = File::options().write(true).create_new(true).open(&tmp)?;
            f.write_all(bytes)?;
            f.sync_all()
        })();
        if let Err(e) = written {
            let _ = std::fs::remove_file(&tmp);
            return Err(StoreError::io(&tmp, e));
        }
        if let Some(dir) = slot.parent() {
            std::fs::create_dir_all(dir).map_err(|e| StoreError::io(dir, e))?;
        }
        std::fs::rename(&tmp, &slot).map_err(|e| {
            let _ = std::fs::remove_file(&tmp);
            StoreError::io(&slot, e)
        })?;
        Ok(Ok(slot))
    }
}

/// Bytes that do not hash to the chunk they were sent as; nothing was kept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChunkRefused {
    pub expected: String,
    pub actual: String,
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

impl Store {
    /// The chunk folder of this store's file cache.
    pub fn chunk_cache(&self) -> ChunkCache {
        ChunkCache::of(&self.cache)
    }

    /// The chunks recorded for `content`, in order (empty when none are).
    pub fn content_chunks(&self, content: &str) -> Result<Vec<ContentChunk>, StoreError> {
        let mut stmt = self
            .conn
            .prepare_cached(
                "SELECT chunk, offset, size FROM content_chunks WHERE content = ?1 ORDER BY idx",
            )
            .at(&self.db_path)?;
        let rows = stmt
            .query_map(params![content], |r| {
                Ok(ContentChunk {
                    chunk: r.get(0)?,
                    offset: u64::try_from(r.get::<_, i64>(1)?).unwrap_or(0),
                    size: u64::try_from(r.get::<_, i64>(2)?).unwrap_or(0),
                })
            })
            .at(&self.db_path)?;
        rows.collect::<Result<_, _>>().at(&self.db_path)
    }

    /// Records the chunks of `content` (replacing what was recorded). Call only once every
    /// chunk is in the cache and the whole content was checked against its SHA-256.
    pub fn record_content_chunks(
        &mut self,
        content: &str,
        chunks: &[ContentChunk],
    ) -> Result<(), StoreError> {
        let tx = self.conn.transaction().at(&self.db_path)?;
        tx.execute(
            "DELETE FROM content_chunks WHERE content = ?1",
            params![content],
        )
        .at(&self.db_path)?;
        {
            let mut stmt = tx
                .prepare_cached(
                    "INSERT INTO content_chunks(content, idx, chunk, offset, size)
                     VALUES (?1, ?2, ?3, ?4, ?5)",
                )
                .at(&self.db_path)?;
            for (idx, c) in chunks.iter().enumerate() {
                stmt.execute(params![
                    content,
                    idx as i64,
                    c.chunk,
                    i64::try_from(c.offset).unwrap_or(i64::MAX),
                    i64::try_from(c.size).unwrap_or(i64::MAX),
                ])
                .at(&self.db_path)?;
            }
        }
        // Checked inside the transaction: a `cache gc` removes a chunk file before it forgets
        // the contents holding it, so a chunk removed before this check refuses the record, and
        // one removed after it is forgotten by that gc once this commits. Either way no content
        // stays recorded with a chunk missing.
        let cache = ChunkCache::of(&self.cache);
        for c in chunks {
            if cache.path_of(&c.chunk).is_none() {
                let path = cache.slot(&c.chunk).unwrap_or_else(|| cache.root.clone());
                return Err(StoreError::io(
                    &path,
                    io::Error::new(
                        io::ErrorKind::NotFound,
                        format!(
                            "chunk {} of content {content} is not in the cache (removed by a clean-up?); fetch the content again",
                            c.chunk
                        ),
                    ),
                ));
            }
        }
        tx.commit().at(&self.db_path)
    }

    /// How the cache holds all of `content` now: a whole file, or every recorded chunk on
    /// disk; `None` when part of it is missing.
    pub fn cached_layout(&self, content: &str) -> Result<Option<CachedLayout>, StoreError> {
        if let Some(path) = self.cache.path_of(content) {
            return Ok(Some(CachedLayout::Whole(path)));
        }
        let chunks = self.content_chunks(content)?;
        if chunks.is_empty() {
            // The empty content has no chunks and no rows; it is held by nothing at all.
            return Ok(None);
        }
        Ok(layout_on_disk(&self.chunk_cache(), chunks))
    }

    /// True when `chunk` is recorded as part of any content.
    pub fn chunk_is_recorded(&self, chunk: &str) -> Result<bool, StoreError> {
        self.conn
            .query_row(
                "SELECT 1 FROM content_chunks WHERE chunk = ?1 LIMIT 1",
                params![chunk],
                |_| Ok(()),
            )
            .optional()
            .at(&self.db_path)
            .map(|found| found.is_some())
    }
}

/// The chunks with their files, when every one is on disk.
pub fn layout_on_disk(cache: &ChunkCache, chunks: Vec<ContentChunk>) -> Option<CachedLayout> {
    let mut with_paths = Vec::with_capacity(chunks.len());
    for c in chunks {
        let path = cache.path_of(&c.chunk)?;
        with_paths.push((c, path));
    }
    Some(CachedLayout::Chunks(with_paths))
}

/// Reads a cached content from any offset: a whole file, or its chunk files one after the
/// other. Blocking; use it on a blocking thread.
#[derive(Debug)]
pub struct ContentReader {
    parts: Vec<(u64, u64, PathBuf)>,
    size: u64,
    pos: u64,
    open: Option<(usize, File)>,
    /// What holds the content against `cache gc` ([`ContentReader::open_held`]): the whole
    /// file or the content's hold file, locked shared.
    hold: Option<File>,
}

/// A used file's mtime is set again only when older than this (reads touch at most once a
/// minute per file, not on every request).
pub const TOUCH_AFTER: std::time::Duration = std::time::Duration::from_secs(60);

impl ContentReader {
    /// A reader over `layout` (of `size` bytes in all).
    pub fn new(layout: &CachedLayout, size: u64) -> ContentReader {
        let parts = match layout {
            CachedLayout::Whole(path) => vec![(0, size, path.clone())],
            CachedLayout::Chunks(chunks) => chunks
                .iter()
                .map(|(c, p)| (c.offset, c.size, p.clone()))
                .collect(),
        };
        ContentReader {
            parts,
            size,
            pos: 0,
            open: None,
            hold: None,
        }
    }

    /// A reader over `layout`, the cached content `content`, held against `cache gc` until
    /// dropped:
    ///
    /// - a whole file is opened now under a shared lock (gc removes only what it can lock
    ///   exclusively);
    /// - chunks are held through the content's hold file `files/chunks/held/<content>`, locked
    ///   shared (one descriptor, whatever the number of chunks): gc locks the hold file of every
    ///   recorded content of a chunk exclusively while it removes that chunk, and keeps the
    ///   chunk when it cannot. Once the hold is taken, every chunk is checked to be on disk.
    ///
    /// Parts last used more than [`TOUCH_AFTER`] ago get their mtime set to now, so the
    /// cache's least-recently-used order sees this read. A part gone meanwhile (a clean-up
    /// between the lookup and here) is `NotFound`: look the content up again (or fetch it)
    /// and retry.
    pub fn open_held(layout: &CachedLayout, size: u64, content: &str) -> io::Result<ContentReader> {
        let mut reader = ContentReader::new(layout, size);
        let named = |path: &std::path::Path, e: io::Error| {
            io::Error::new(e.kind(), format!("{}: {e}", path.display()))
        };
        match layout {
            CachedLayout::Whole(path) => {
                let file = File::open(path).map_err(|e| named(path, e))?;
                file.lock_shared().map_err(|e| named(path, e))?;
                // Locked, but a clean-up may have unlinked it just before: then it is not held.
                if !path.exists() {
                    return Err(io::Error::new(
                        io::ErrorKind::NotFound,
                        format!("{} was removed by a cache clean-up", path.display()),
                    ));
                }
                touch_if_stale(&file);
                reader.open = Some((0, file.try_clone().map_err(|e| named(path, e))?));
                reader.hold = Some(file);
            }
            CachedLayout::Chunks(chunks) => {
                let Some((_, first)) = chunks.first() else {
                    return Ok(reader);
                };
                // files/chunks/<ab>/<sha> → files/chunks/held/<content>
                let Some(chunk_root) = first.parent().and_then(|p| p.parent()) else {
                    return Err(io::Error::other(format!(
                        "{} is not in a chunk cache",
                        first.display()
                    )));
                };
                reader.hold = Some(take_hold(&chunk_root.join(HELD_DIR), content)?);
                for (_, path) in chunks {
                    let meta = std::fs::metadata(path).map_err(|e| named(path, e))?;
                    let stale = meta
                        .modified()
                        .ok()
                        .and_then(|t| t.elapsed().ok())
                        .is_none_or(|age| age >= TOUCH_AFTER);
                    if stale {
                        if let Ok(f) = File::open(path) {
                            touch_if_stale(&f);
                        }
                    }
                }
            }
        }
        Ok(reader)
    }

    /// The content's size.
    pub fn size(&self) -> u64 {
        self.size
    }

    fn part_at(&self, pos: u64) -> Option<usize> {
        let i = self.parts.partition_point(|(off, _, _)| *off <= pos);
        let i = i.checked_sub(1)?;
        let (off, size, _) = &self.parts[i];
        (pos < off + size).then_some(i)
    }
}

impl Read for ContentReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.pos >= self.size || buf.is_empty() {
            return Ok(0);
        }
        let Some(i) = self.part_at(self.pos) else {
            return Err(io::Error::other(format!(
                "no cached chunk holds byte {} of the content",
                self.pos
            )));
        };
        let (off, size, path) = &self.parts[i];
        let within = self.pos - off;
        if self.open.as_ref().map(|(j, _)| *j) != Some(i) {
            let f = File::open(path)
                .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", path.display())))?;
            self.open = Some((i, f));
        }
        let Some((_, file)) = self.open.as_mut() else {
            return Ok(0);
        };
        file.seek(SeekFrom::Start(within))?;
        let left = usize::try_from(size - within).unwrap_or(usize::MAX);
        let want = buf.len().min(left);
        let n = file.read(&mut buf[..want])?;
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!("cached chunk {} is shorter than recorded", path.display()),
            ));
        }
        self.pos += n as u64;
        Ok(n)
    }
}

impl Seek for ContentReader {
    fn seek(&mut self, to: SeekFrom) -> io::Result<u64> {
        let target = match to {
            SeekFrom::Start(n) => Some(n),
            SeekFrom::End(d) => self.size.checked_add_signed(d),
            SeekFrom::Current(d) => self.pos.checked_add_signed(d),
        };
        let target =
            target.ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "seek before 0"))?;
        self.pos = target;
        Ok(target)
    }
}

/// The folder of the contents' hold files inside the chunk folder (`files/chunks/held`).
pub const HELD_DIR: &str = "held";

/// Takes the shared hold on `content` (its hold file under `held`, created if needed). Retries
/// when a clean-up removed the file between its opening and its locking.
fn take_hold(held: &std::path::Path, content: &str) -> io::Result<File> {
    use std::os::unix::fs::MetadataExt;
    if !is_sha256_hex(content) {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{content:?} is not a SHA-256"),
        ));
    }
    std::fs::create_dir_all(held)?;
    let path = held.join(content);
    for _ in 0..8 {
        let file = File::options()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)?;
        file.lock_shared()?;
        let same = match std::fs::metadata(&path) {
            Ok(now) => {
                let mine = file.metadata()?;
                now.ino() == mine.ino() && now.dev() == mine.dev()
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => false,
            Err(e) => return Err(e),
        };
        if same {
            return Ok(file);
        }
    }
    Err(io::Error::other(format!(
        "{} keeps being removed; is a cache clean-up looping?",
        path.display()
    )))
}

/// Locks exclusively the hold files of `contents` that exist (under `held`), for as long as
/// the returned files are kept; `None` when one of them is held by a reader (a download).
pub(crate) fn lock_holds_exclusively(
    held: &std::path::Path,
    contents: &[String],
) -> io::Result<Option<Vec<File>>> {
    let mut locked = Vec::new();
    for content in contents {
        if !is_sha256_hex(content) {
            continue;
        }
        let file = match File::open(held.join(content)) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e),
        };
        match file.try_lock() {
            Ok(()) => locked.push(file),
            Err(std::fs::TryLockError::WouldBlock) => return Ok(None),
            Err(std::fs::TryLockError::Error(e)) => return Err(e),
        }
    }
    Ok(Some(locked))
}

/// Sets an open cache file's mtime to now when it is older than [`TOUCH_AFTER`] (the file's
/// owner may do so through a read-only handle; failures only leave the order as it was).
fn touch_if_stale(file: &File) {
    let stale = file
        .metadata()
        .and_then(|m| m.modified())
        .ok()
        .and_then(|t| t.elapsed().ok())
        .is_none_or(|age| age >= TOUCH_AFTER);
    if stale {
        let _ = file.set_modified(std::time::SystemTime::now());
    }
}

/// Hashes a whole content through a reader; returns its SHA-256 and size.
pub fn hash_content(reader: &mut impl Read) -> io::Result<(String, u64)> {
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 256 * 1024];
    let mut size = 0u64;
    loop {
        let n = reader.read(&mut buf)?;
        if n == 0 {
            break;
        }
        size += n as u64;
        hasher.update(&buf[..n]);
    }
    Ok((hex(&hasher.finalize()), size))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store() -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        (dir, store)
    }

    fn sha(bytes: &[u8]) -> String {
        hex(&Sha256::digest(bytes))
    }

    #[test]
    fn chunks_are_kept_only_under_their_own_hash() {
        let (_d, store) = store();
        let cache = store.chunk_cache();
        let good = b"chunk bytes";
        let path = cache.put(&sha(good), good).unwrap().unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), good);
        assert_eq!(cache.path_of(&sha(good)), Some(path));
        let refused = cache.put(&sha(b"other"), good).unwrap().unwrap_err();
        assert_eq!(refused.actual, sha(good));
        assert!(cache.path_of(&sha(b"other")).is_none());
        assert!(cache.put("../../x", good).unwrap().is_err());
    }

    #[test]
    fn a_chunked_content_reads_back_from_any_offset() {
        let (_d, mut store) = store();
        let cache = store.chunk_cache();
        let data: Vec<u8> = (0..1000u32).map(|i| (i * 7 % 251) as u8).collect();
        let mut chunks = Vec::new();
        for (off, part) in [(0usize, 300usize), (300, 450), (750, 250)] {
            let bytes = &data[off..off + part];
            cache.put(&sha(bytes), bytes).unwrap().unwrap();
            chunks.push(ContentChunk {
                chunk: sha(bytes),
                offset: off as u64,
                size: part as u64,
            });
        }
        let content = sha(&data);
        assert_eq!(store.cached_layout(&content).unwrap(), None);
        store.record_content_chunks(&content, &chunks).unwrap();
        let layout = store.cached_layout(&content).unwrap().unwrap();
        let mut reader = ContentReader::new(&layout, 1000);
        assert_eq!(hash_content(&mut reader).unwrap(), (content.clone(), 1000));
        reader.seek(SeekFrom::Start(290)).unwrap();
        let mut buf = vec![0u8; 500];
        reader.read_exact(&mut buf).unwrap();
        assert_eq!(buf, &data[290..790]);
        assert!(store.chunk_is_recorded(&chunks[1].chunk).unwrap());
        // A chunk gone from disk: the content is no longer held.
        std::fs::remove_file(cache.path_of(&chunks[2].chunk).unwrap()).unwrap();
        assert_eq!(store.cached_layout(&content).unwrap(), None);
    }

    fn chunked(store: &mut Store, data: &[u8], cut: usize) -> (String, Vec<ContentChunk>) {
        let cache = store.chunk_cache();
        let mut chunks = Vec::new();
        for (i, part) in data.chunks(cut).enumerate() {
            cache.put(&sha(part), part).unwrap().unwrap();
            chunks.push(ContentChunk {
                chunk: sha(part),
                offset: (i * cut) as u64,
                size: part.len() as u64,
            });
        }
        let content = sha(data);
        store.record_content_chunks(&content, &chunks).unwrap();
        (content, chunks)
    }

    #[test]
    fn a_held_content_survives_a_cache_gc_and_is_touched() {
        let (_d, mut store) = store();
        let data: Vec<u8> = (0..3000u32).map(|i| (i * 13 % 251) as u8).collect();
        let (content, chunks) = chunked(&mut store, &data, 1000);
        let old = std::time::SystemTime::now() - std::time::Duration::from_secs(3600);
        for c in &chunks {
            let path = store.chunk_cache().path_of(&c.chunk).unwrap();
            File::options()
                .write(true)
                .open(&path)
                .unwrap()
                .set_modified(old)
                .unwrap();
        }
        let layout = store.cached_layout(&content).unwrap().unwrap();
        let mut reader = ContentReader::open_held(&layout, 3000, &content).unwrap();
        for c in &chunks {
            let path = store.chunk_cache().path_of(&c.chunk).unwrap();
            let age = std::fs::metadata(&path)
                .unwrap()
                .modified()
                .unwrap()
                .elapsed()
                .unwrap();
            assert!(age < TOUCH_AFTER, "opening touches the chunk");
        }
        let report = store.cache_gc(0, false).unwrap();
        assert!(report.removed.is_empty(), "{report:?}");
        assert_eq!(report.kept_in_use.len(), 3);
        assert_eq!(hash_content(&mut reader).unwrap(), (content.clone(), 3000));
        assert!(store.cached_layout(&content).unwrap().is_some());
        drop(reader);
        let report = store.cache_gc(0, false).unwrap();
        assert_eq!(report.removed.len(), 3);
        assert!(store.content_chunks(&content).unwrap().is_empty());
        let hold = store.chunk_cache().root.join(HELD_DIR).join(&content);
        assert!(!hold.exists(), "the hold file of a forgotten content stays");
        assert_eq!(
            ContentReader::open_held(&layout, 3000, &content)
                .unwrap_err()
                .kind(),
            io::ErrorKind::NotFound
        );
    }

    #[test]
    fn a_content_is_not_recorded_when_a_chunk_went_missing() {
        let (_d, mut store) = store();
        let data = vec![7u8; 2000];
        let (content, chunks) = chunked(&mut store, &data[..1500], 700);
        let path = store.chunk_cache().path_of(&chunks[1].chunk).unwrap();
        std::fs::remove_file(path).unwrap();
        let err = store.record_content_chunks(&content, &chunks).unwrap_err();
        assert!(err.to_string().contains("fetch the content again"), "{err}");
        // The rows recorded before stay; the content is not held, though.
        assert_eq!(store.cached_layout(&content).unwrap(), None);
    }
}
