//! What the file cache holds and trimming it: [`Store::cache_usage`] sums the cached files on
//! disk (each content once) and per remote (content counted under every remote whose runs list
//! it), [`Store::cache_gc`] removes least recently used content until the cache fits a size.
//!
//! "Used" is the file's modification time: the hub sets it to now each time it fetches or serves
//! a cached file. A file someone holds open with a shared lock (the dashboard streaming it, a
//! fetch copying it out) cannot be locked exclusively and is kept; a removed file is forgotten by
//! every manifest entry that pointed at it, so it is fetched again when next asked for.
//! Temporary files (`files/tmp/`, transfers under way) are never touched.
//!
//! Artifact chunks (`files/chunks/`) count too, each chunk file once: `cache gc` removes them
//! by the same least-recently-used order, and a content that lost a chunk is no longer recorded
//! as held (its other chunks stay; a later fetch brings only the missing ones). A chunk file is
//! unlinked BEFORE the contents holding it are forgotten, and recording a content checks its
//! chunks are on disk inside its transaction, so no content stays recorded with a chunk gone. A
//! download holds its content through a hold file (`files/chunks/held/<content>`, locked
//! shared by `ContentReader::open_held`: one descriptor however many chunks); before removing a
//! chunk, gc locks exclusively the hold files of every content recorded with it and keeps the
//! chunk when one is held, so a download streams to its end whatever gc does meanwhile.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fs::{File, TryLockError};
use std::path::{Path, PathBuf};
use std::time::UNIX_EPOCH;

use rusqlite::params;

use crate::content_chunks::{lock_holds_exclusively, CHUNKS_DIR, HELD_DIR};
use crate::error::{SqliteContext, StoreError};
use crate::file_cache::is_sha256_hex;
use crate::store::{Store, FILES_DIR};

/// One content in the cache.
#[derive(Debug, Clone, PartialEq)]
pub struct CacheEntry {
    pub sha256: String,
    pub size: u64,
    /// Last fetched or served (the file's modification time), seconds since the epoch.
    pub last_used: f64,
}

/// What the cache of one remote's runs holds.
#[derive(Debug, Clone, PartialEq)]
pub struct RemoteCacheUsage {
    pub remote: String,
    pub files: u64,
    pub bytes: u64,
}

/// What the file cache holds.
#[derive(Debug, Clone, PartialEq)]
pub struct CacheUsage {
    /// The cache folder.
    pub dir: PathBuf,
    /// Distinct contents (the same bytes in two runs count once).
    pub files: u64,
    pub bytes: u64,
    /// By remote, sorted by name; content shared by two remotes counts in both.
    pub remotes: Vec<RemoteCacheUsage>,
    /// Contents no manifest entry points at any more (a run removed, a file changed).
    pub unreferenced_files: u64,
    pub unreferenced_bytes: u64,
    /// Artifact chunk files (`files/chunks/`), each once, not in `files`/`bytes`.
    pub chunk_files: u64,
    pub chunk_bytes: u64,
}

/// What [`Store::cache_gc`] did (or, on a dry run, would do).
#[derive(Debug, Clone, PartialEq)]
pub struct CacheGcReport {
    pub bytes_before: u64,
    pub bytes_after: u64,
    /// Oldest first.
    pub removed: Vec<CacheEntry>,
    /// Contents that would have gone but were in use (locked by a reader), kept.
    pub kept_in_use: Vec<CacheEntry>,
    pub dry_run: bool,
}

impl Store {
    fn cache_dir(&self) -> PathBuf {
        self.dir().join(FILES_DIR)
    }

    /// Every content in the cache folder, by hash.
    fn cached_contents(&self) -> Result<Vec<CacheEntry>, StoreError> {
        entries_in_shards(&self.cache_dir(), false)
    }

    /// Every artifact chunk in the cache (`files/chunks/<sha[:2]>/<sha>`), by hash.
    fn cached_chunks(&self) -> Result<Vec<CacheEntry>, StoreError> {
        entries_in_shards(&self.cache_dir().join(CHUNKS_DIR), true)
    }

    /// (remote name, content hash) for every manifest entry the cache holds, once per pair.
    fn cached_by_remote(&self) -> Result<Vec<(String, String)>, StoreError> {
        let p = &self.db_path;
        let mut stmt = self
            .conn
            .prepare(
                "SELECT DISTINCT m.name, f.cached_sha256 FROM files f
                 JOIN runs r ON r.id = f.run JOIN remotes m ON m.id = r.remote
                 WHERE f.cached_sha256 IS NOT NULL",
            )
            .at(p)?;
        let rows = stmt
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .at(p)?
            .collect::<Result<Vec<(String, String)>, _>>()
            .at(p)?;
        Ok(rows)
    }

    /// How much the file cache holds, in all and per remote.
    pub fn cache_usage(&self) -> Result<CacheUsage, StoreError> {
        let contents = self.cached_contents()?;
        let sizes: HashMap<&str, u64> = contents
            .iter()
            .map(|c| (c.sha256.as_str(), c.size))
            .collect();
        let mut per_remote: BTreeMap<String, RemoteCacheUsage> = BTreeMap::new();
        let mut referenced = HashSet::new();
        for (remote, sha) in self.cached_by_remote()? {
            // A manifest entry whose content was removed by hand is not in the cache.
            let Some(&size) = sizes.get(sha.as_str()) else {
                continue;
            };
            let usage = per_remote
                .entry(remote.clone())
                .or_insert_with(|| RemoteCacheUsage {
                    remote,
                    files: 0,
                    bytes: 0,
                });
            usage.files += 1;
            usage.bytes += size;
            referenced.insert(sha);
        }
        let unreferenced: Vec<&CacheEntry> = contents
            .iter()
            .filter(|c| !referenced.contains(&c.sha256))
            .collect();
        let chunks = self.cached_chunks()?;
        Ok(CacheUsage {
            chunk_files: chunks.len() as u64,
            chunk_bytes: chunks.iter().map(|c| c.size).sum(),
            dir: self.cache_dir(),
            files: contents.len() as u64,
            bytes: contents.iter().map(|c| c.size).sum(),
            remotes: per_remote.into_values().collect(),
            unreferenced_files: unreferenced.len() as u64,
            unreferenced_bytes: unreferenced.iter().map(|c| c.size).sum(),
        })
    }

    /// Removes least recently used contents until the cache holds at most `max_bytes`; a
    /// content in use is kept (and reported). With `dry_run`, only says what it would remove.
    pub fn cache_gc(&mut self, max_bytes: u64, dry_run: bool) -> Result<CacheGcReport, StoreError> {
        let root = self.cache_dir();
        let chunk_root = root.join(CHUNKS_DIR);
        let mut contents: Vec<(CacheEntry, bool)> = self
            .cached_contents()?
            .into_iter()
            .map(|c| (c, false))
            .chain(self.cached_chunks()?.into_iter().map(|c| (c, true)))
            .collect();
        contents.sort_by(|(a, _), (b, _)| {
            a.last_used
                .total_cmp(&b.last_used)
                .then_with(|| a.sha256.cmp(&b.sha256))
        });
        let bytes_before: u64 = contents.iter().map(|(c, _)| c.size).sum();
        let mut bytes_after = bytes_before;
        let mut removed = Vec::new();
        let mut removed_chunks = Vec::new();
        let mut kept_in_use = Vec::new();
        for (content, is_chunk) in contents {
            if bytes_after <= max_bytes {
                break;
            }
            let path = if is_chunk {
                chunk_root.join(&content.sha256[..2]).join(&content.sha256)
            } else {
                content_path(&root, &content.sha256)
            };
            // A chunk of a content a download holds stays (its hold file is locked shared);
            // the holds stay locked exclusively until the chunk is gone.
            let holds = if is_chunk {
                let contents = self.contents_with_chunk(&content.sha256)?;
                match lock_holds_exclusively(&chunk_root.join(HELD_DIR), &contents) {
                    Ok(Some(locked)) => Some(locked),
                    Ok(None) => {
                        kept_in_use.push(content);
                        continue;
                    }
                    Err(e) => return Err(StoreError::io(&chunk_root.join(HELD_DIR), e)),
                }
            } else {
                None
            };
            let outcome = remove_unless_in_use(&path, dry_run);
            drop(holds);
            match outcome {
                Ok(true) => {
                    bytes_after -= content.size;
                    if is_chunk {
                        removed_chunks.push(content.sha256.clone());
                    }
                    removed.push(content);
                }
                Ok(false) => kept_in_use.push(content),
                Err(e) => return Err(StoreError::io(&path, e)),
            }
        }
        if !dry_run && !removed.is_empty() {
            self.forget_cached(&removed)?;
            self.forget_chunked(&removed_chunks)?;
        }
        Ok(CacheGcReport {
            bytes_before,
            bytes_after,
            removed,
            kept_in_use,
            dry_run,
        })
    }

    /// The contents recorded as holding `chunk`.
    fn contents_with_chunk(&self, chunk: &str) -> Result<Vec<String>, StoreError> {
        let p = &self.db_path;
        let mut stmt = self
            .conn
            .prepare_cached("SELECT DISTINCT content FROM content_chunks WHERE chunk = ?1")
            .at(p)?;
        let rows = stmt
            .query_map(params![chunk], |r| r.get(0))
            .at(p)?
            .collect::<Result<Vec<String>, _>>()
            .at(p)?;
        Ok(rows)
    }

    /// Contents that lost one of these chunks are no longer recorded as held (and their hold
    /// files go, unless a reader has one open).
    fn forget_chunked(&mut self, chunks: &[String]) -> Result<(), StoreError> {
        if chunks.is_empty() {
            return Ok(());
        }
        let mut forgotten = HashSet::new();
        for chunk in chunks {
            forgotten.extend(self.contents_with_chunk(chunk)?);
        }
        let held = self.cache_dir().join(CHUNKS_DIR).join(HELD_DIR);
        for content in &forgotten {
            let _ = remove_unless_in_use(&held.join(content), false);
        }
        let p = self.db_path.clone();
        let tx = self.conn.transaction().at(&p)?;
        {
            let mut stmt = tx
                .prepare(
                    "DELETE FROM content_chunks WHERE content IN
                        (SELECT content FROM content_chunks WHERE chunk = ?1)",
                )
                .at(&p)?;
            for chunk in chunks {
                stmt.execute(params![chunk]).at(&p)?;
            }
        }
        tx.commit().at(&p)
    }

    /// Removes those of `contents` (hashes) that no manifest entry names any more, unless in
    /// use; how many were removed.
    pub(crate) fn drop_unreferenced_contents(
        &mut self,
        contents: &[String],
    ) -> Result<u64, StoreError> {
        let root = self.cache_dir();
        // One pass over the manifests (there is no index by content) for all of them; a
        // content an artifact version names is kept too.
        let named: HashSet<String> = self
            .conn
            .prepare(
                "SELECT cached_sha256 FROM files
                 WHERE cached_sha256 IN (SELECT value FROM json_each(?1))
                 UNION
                 SELECT sha256 FROM artifact_files
                 WHERE sha256 IN (SELECT value FROM json_each(?1))",
            )
            .and_then(|mut s| {
                s.query_map(
                    [serde_json::Value::from(contents.to_vec()).to_string()],
                    |r| r.get(0),
                )?
                .collect()
            })
            .at(&self.db_path)?;
        let mut removed = 0;
        for sha256 in contents {
            if !is_sha256_hex(sha256) || named.contains(sha256) {
                continue;
            }
            let path = content_path(&root, sha256);
            let gone = remove_unless_in_use(&path, false).map_err(|e| StoreError::io(&path, e))?;
            if gone {
                removed += 1;
            }
        }
        Ok(removed)
    }

    /// Manifest entries that pointed at removed contents no longer claim to be cached.
    fn forget_cached(&mut self, removed: &[CacheEntry]) -> Result<(), StoreError> {
        let p = self.db_path.clone();
        let tx = self.conn.transaction().at(&p)?;
        {
            let mut stmt = tx
                .prepare("UPDATE files SET cached_sha256 = NULL WHERE cached_sha256 = ?1")
                .at(&p)?;
            for content in removed {
                stmt.execute(params![content.sha256]).at(&p)?;
            }
        }
        tx.commit().at(&p)
    }
}

/// The files of the two-hex-digit shards under `root`: named by the rest of their hash
/// (`files/ab/cdef…`) or, with `full_names`, by the whole hash (`files/chunks/ab/abcdef…`).
fn entries_in_shards(root: &Path, full_names: bool) -> Result<Vec<CacheEntry>, StoreError> {
    let mut found = Vec::new();
    let shards = match std::fs::read_dir(root) {
        Ok(s) => s,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(found),
        Err(e) => return Err(StoreError::io(root, e)),
    };
    for shard in shards {
        let shard = shard.map_err(|e| StoreError::io(root, e))?;
        let prefix = shard.file_name().to_string_lossy().into_owned();
        // `tmp/`, `chunks/` and anything else that is not a two-digit shard is not content.
        if prefix.len() != 2 || !shard.file_type().is_ok_and(|t| t.is_dir()) {
            continue;
        }
        let shard_path = shard.path();
        let entries = std::fs::read_dir(&shard_path).map_err(|e| StoreError::io(&shard_path, e))?;
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            let sha256 = if full_names {
                name
            } else {
                format!("{prefix}{name}")
            };
            if !is_sha256_hex(&sha256) || !sha256.starts_with(&prefix) {
                continue;
            }
            let Ok(meta) = entry.metadata() else { continue };
            if !meta.is_file() {
                continue;
            }
            let last_used = meta
                .modified()
                .ok()
                .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
                .map_or(0.0, |d| d.as_secs_f64());
            found.push(CacheEntry {
                sha256,
                size: meta.len(),
                last_used,
            });
        }
    }
    Ok(found)
}

fn content_path(root: &Path, sha256: &str) -> PathBuf {
    let (dir, rest) = sha256.split_at(2);
    root.join(dir).join(rest)
}

/// Removes the file unless someone holds a lock on it (true: removed, or removable on a dry
/// run). The exclusive lock is held while the file is unlinked, so no reader can take a shared
/// one in between. A file already gone counts as removed.
fn remove_unless_in_use(path: &Path, dry_run: bool) -> std::io::Result<bool> {
    let file = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(true),
        Err(e) => return Err(e),
    };
    match file.try_lock() {
        Ok(()) => {}
        Err(TryLockError::WouldBlock) => return Ok(false),
        Err(TryLockError::Error(e)) => return Err(e),
    }
    if !dry_run {
        match std::fs::remove_file(path) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
    }
    Ok(true)
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, SystemTime};

    use super::*;

    fn put(store: &Store, bytes: &[u8], age_secs: u64) -> String {
        let sha = store.put_file_bytes(bytes).unwrap();
        let path = store.file_path(&sha).unwrap();
        let when = SystemTime::now() - Duration::from_secs(age_secs);
        File::options()
            .write(true)
            .open(&path)
            .unwrap()
            .set_modified(when)
            .unwrap();
        sha
    }

    #[test]
    fn chunks_count_and_are_trimmed_and_their_contents_forgotten() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = Store::open(dir.path()).unwrap();
        let cache = store.chunk_cache();
        let sha = |b: &[u8]| {
            use sha2::Digest;
            sha2::Sha256::digest(b)
                .iter()
                .map(|x| format!("{x:02x}"))
                .collect::<String>()
        };
        let (a, b) = (vec![1u8; 300], vec![2u8; 200]);
        let old = cache.put(&sha(&a), &a).unwrap().unwrap();
        cache.put(&sha(&b), &b).unwrap().unwrap();
        File::options()
            .write(true)
            .open(&old)
            .unwrap()
            .set_modified(SystemTime::now() - Duration::from_secs(500))
            .unwrap();
        let whole = [a.clone(), b.clone()].concat();
        let rows = [
            crate::ContentChunk {
                chunk: sha(&a),
                offset: 0,
                size: 300,
            },
            crate::ContentChunk {
                chunk: sha(&b),
                offset: 300,
                size: 200,
            },
        ];
        store.record_content_chunks(&sha(&whole), &rows).unwrap();
        put(&store, b"whole file", 10);
        let usage = store.cache_usage().unwrap();
        assert_eq!((usage.chunk_files, usage.chunk_bytes), (2, 500));
        assert_eq!(usage.files, 1);
        assert!(store.cached_layout(&sha(&whole)).unwrap().is_some());
        // The oldest thing is chunk a: it goes first, and the content it was part of with it.
        let report = store.cache_gc(300, false).unwrap();
        assert_eq!(report.removed.len(), 1);
        assert_eq!(report.removed[0].sha256, sha(&a));
        assert!(!old.exists());
        assert!(store.content_chunks(&sha(&whole)).unwrap().is_empty());
        assert!(store.cached_layout(&sha(&whole)).unwrap().is_none());
    }

    #[test]
    fn usage_counts_each_content_once() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        put(&store, b"aaaa", 10);
        put(&store, b"aaaa", 10);
        put(&store, b"bb", 10);
        let usage = store.cache_usage().unwrap();
        assert_eq!((usage.files, usage.bytes), (2, 6));
        assert_eq!((usage.unreferenced_files, usage.unreferenced_bytes), (2, 6));
        assert!(usage.remotes.is_empty());
    }

    #[test]
    fn gc_removes_least_recently_used_first_and_keeps_what_is_locked() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = Store::open(dir.path()).unwrap();
        let oldest = put(&store, &[1u8; 100], 300);
        let locked = put(&store, &[2u8; 100], 200);
        let newer = put(&store, &[3u8; 100], 100);
        let newest = put(&store, &[4u8; 100], 0);
        let reader = File::open(store.file_path(&locked).unwrap()).unwrap();
        reader.try_lock_shared().unwrap();

        let dry = store.cache_gc(250, true).unwrap();
        assert!(dry.dry_run);
        assert_eq!(
            dry.removed.iter().map(|c| &c.sha256).collect::<Vec<_>>(),
            [&oldest, &newer]
        );
        assert!(
            store.file_path(&oldest).is_some(),
            "a dry run removes nothing"
        );

        let report = store.cache_gc(250, false).unwrap();
        assert_eq!(report.bytes_before, 400);
        assert_eq!(report.bytes_after, 200);
        assert_eq!(report.kept_in_use.len(), 1);
        assert!(store.file_path(&oldest).is_none());
        assert!(store.file_path(&newer).is_none());
        assert!(store.file_path(&locked).is_some());
        assert!(store.file_path(&newest).is_some());
        drop(reader);
        let again = store.cache_gc(150, false).unwrap();
        assert_eq!(again.removed.len(), 1, "unlocked, it goes");
        assert_eq!(again.bytes_after, 100);
    }

    #[test]
    fn usage_is_per_remote_and_gc_forgets_what_it_removed() {
        use crate::testkit::{add_remote, change_batch, file_entry, fresh_store, run_change};
        let (_tmp, mut store) = fresh_store();
        let a = add_remote(&mut store, "a-gpu");
        let b = add_remote(&mut store, "b-gpu");
        let shared = put(&store, &[7u8; 50], 100);
        let own = put(&store, &[8u8; 30], 0);
        for (remote, extra) in [(a, Some(&own)), (b, None)] {
            let mut run = run_change("runs/x/1", 1, 0);
            run.files = vec![file_entry("m.png", 50, Some(&shared))];
            if extra.is_some() {
                run.files.push(file_entry("n.png", 30, Some(&own)));
            }
            store
                .apply_change_batch(remote, &change_batch(true, vec![run], "e", 1, false))
                .unwrap();
            let key = store.run(remote, "runs/x/1").unwrap().unwrap().key;
            assert!(store.record_cached_file(key, "m.png", &shared).unwrap());
            if let Some(own) = extra {
                assert!(store.record_cached_file(key, "n.png", own).unwrap());
            }
        }
        let usage = store.cache_usage().unwrap();
        assert_eq!((usage.files, usage.bytes), (2, 80));
        let shown: Vec<(&str, u64, u64)> = usage
            .remotes
            .iter()
            .map(|r| (r.remote.as_str(), r.files, r.bytes))
            .collect();
        assert_eq!(shown, [("a-gpu", 2, 80), ("b-gpu", 1, 50)]);
        assert_eq!(usage.unreferenced_files, 0);

        let report = store.cache_gc(40, false).unwrap();
        assert_eq!(report.removed.len(), 1);
        assert_eq!(report.removed[0].sha256, shared);
        let key = store.run(b, "runs/x/1").unwrap().unwrap().key;
        let file = store.file(key, "m.png").unwrap().unwrap();
        assert_eq!(file.cached_sha256, None, "the manifest no longer claims it");
        let usage = store.cache_usage().unwrap();
        assert_eq!(usage.remotes.len(), 1);
    }

    #[test]
    fn gc_leaves_temporary_files_alone() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = Store::open(dir.path()).unwrap();
        let tmp = dir.path().join(FILES_DIR).join("tmp").join("transfer.part");
        std::fs::write(&tmp, [0u8; 1000]).unwrap();
        put(&store, b"x", 0);
        let report = store.cache_gc(0, false).unwrap();
        assert_eq!(report.removed.len(), 1);
        assert!(tmp.exists());
    }
}
