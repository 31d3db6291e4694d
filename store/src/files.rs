//! A run's files as the store serves them: putting content into the file cache (see
//! `file_cache.rs`), recording which manifest entries the cache holds, and listing a run's
//! manifest a page at a time ([`Store::files_page`]).

use std::io::Read;
use std::path::PathBuf;

use rusqlite::{params, OptionalExtension};

use crate::error::{SqliteContext, StoreError};
use crate::file_cache::{is_sha256_hex, FileCache};
use crate::ids::RunKey;
use crate::runs::FileRow;
use crate::sql::{from_sql_int, to_sql_int};
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

    /// The file cache (for transfers written outside the store thread).
    pub fn file_cache(&self) -> FileCache {
        self.cache.clone()
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

/// The least string greater than every string that starts with `prefix` (its last character
/// that has a successor, incremented, the rest dropped), or `None` when there is none (an empty
/// prefix, or one of `char::MAX` only). SQLite compares text as UTF-8 bytes, which orders as
/// code points do, so `path >= prefix AND path < end` is exactly "starts with `prefix`" and is a
/// range of the `files` primary key `(run, path)`.
fn prefix_end(prefix: &str) -> Option<String> {
    let mut chars: Vec<char> = prefix.chars().collect();
    while let Some(last) = chars.pop() {
        let next = (u32::from(last) + 1..=u32::from(char::MAX)).find_map(char::from_u32);
        if let Some(next) = next {
            chars.push(next);
            return Some(chars.into_iter().collect());
        }
    }
    None
}

impl Store {
    /// One file of a run's manifest, by its path (a lookup of the primary key).
    pub fn file(&self, run: RunKey, path: &str) -> Result<Option<FileRow>, StoreError> {
        let p = &self.db_path;
        self.conn
            .prepare_cached(
                "SELECT path, size, mtime, sha256, cached_sha256 FROM files
                 WHERE run = ?1 AND path = ?2",
            )
            .at(p)?
            .query_row(params![run.0, path], |r| {
                Ok(FileRow {
                    path: r.get(0)?,
                    size: from_sql_int(r.get(1)?),
                    mtime: r.get(2)?,
                    sha256: r.get(3)?,
                    cached_sha256: r.get(4)?,
                })
            })
            .optional()
            .at(p)
    }

    /// One page of a run's manifest: the files whose path starts with `prefix` (a plain string
    /// prefix: `ckpt/` is that folder, `ckpt` also matches `ckpt.txt`; empty is every file),
    /// sorted by path, `offset` skipped, at most `limit`; and how many files match in all.
    /// Both are ranges of the `(run, path)` primary key, so a page of a run with 100,000 files
    /// reads only the rows it counts and returns.
    pub fn files_page(
        &self,
        run: RunKey,
        prefix: &str,
        limit: u64,
        offset: u64,
    ) -> Result<(Vec<FileRow>, u64), StoreError> {
        let p = &self.db_path;
        let end = prefix_end(prefix);
        // Without an end the upper bound is left out rather than written as `?3 IS NULL OR …`,
        // which SQLite could not use as a range.
        let upper = if end.is_some() {
            "AND path < ?3"
        } else {
            "AND ?3 IS NULL"
        };
        let total: i64 = self
            .conn
            .prepare_cached(&format!(
                "SELECT count(*) FROM files WHERE run = ?1 AND path >= ?2 {upper}"
            ))
            .at(p)?
            .query_row(params![run.0, prefix, end], |r| r.get(0))
            .at(p)?;
        let mut stmt = self
            .conn
            .prepare_cached(&format!(
                "SELECT path, size, mtime, sha256, cached_sha256 FROM files
                 WHERE run = ?1 AND path >= ?2 {upper} ORDER BY path LIMIT ?4 OFFSET ?5"
            ))
            .at(p)?;
        let rows = stmt
            .query_map(
                params![run.0, prefix, end, to_sql_int(limit), to_sql_int(offset)],
                |r| {
                    Ok(FileRow {
                        path: r.get(0)?,
                        size: from_sql_int(r.get(1)?),
                        mtime: r.get(2)?,
                        sha256: r.get(3)?,
                        cached_sha256: r.get(4)?,
                    })
                },
            )
            .at(p)?;
        let files = rows.collect::<Result<Vec<_>, _>>().at(p)?;
        Ok((files, from_sql_int(total)))
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
    fn the_cache_of_a_store_dir_is_the_stores_cache() {
        let (_tmp, store) = fresh_store();
        assert_eq!(
            FileCache::of_store_dir(store.dir()).root(),
            store.file_cache().root()
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

    #[test]
    fn prefix_ends_bound_exactly_the_strings_that_start_with_them() {
        assert_eq!(prefix_end(""), None);
        assert_eq!(prefix_end("ckpt/").as_deref(), Some("ckpt0"));
        assert_eq!(prefix_end("a\u{10FFFF}").as_deref(), Some("b"));
        assert_eq!(prefix_end("\u{10FFFF}"), None);
        assert_eq!(prefix_end("a\u{D7FF}").as_deref(), Some("a\u{E000}"));
    }

    #[test]
    fn a_run_manifest_is_paged_by_path_within_a_prefix() {
        let (_tmp, mut store) = fresh_store();
        let r = add_remote(&mut store, "gpu");
        let mut change = run_change("runs/p/a", 1, 0);
        let mut other = run_change("runs/p/b", 2, 0);
        change.files = [
            "ckpt/3.pt",
            "ckpt/1.pt",
            "ckpt/2.pt",
            "ckpt.txt",
            "ckpt0",
            "ckpts/x",
            "logs.txt",
            "meta.json",
        ]
        .iter()
        .enumerate()
        .map(|(i, p)| file_entry(p, i as u64 * 10, Some(SHA_A)))
        .collect();
        other.files = vec![file_entry("ckpt/9.pt", 1, None)];
        store
            .apply_change_batch(r, &change_batch(true, vec![change, other], "e", 2, false))
            .unwrap();
        let key = store.run(r, "runs/p/a").unwrap().unwrap().key;
        assert!(store.record_cached_file(key, "ckpt/2.pt", SHA_A).unwrap());
        let page = |prefix: &str, limit: u64, offset: u64| {
            let (files, total) = store.files_page(key, prefix, limit, offset).unwrap();
            let paths: Vec<String> = files.iter().map(|f| f.path.clone()).collect();
            (paths, total)
        };
        let (all, total) = page("", 100, 0);
        assert_eq!(total, 8);
        assert_eq!(
            all,
            [
                "ckpt.txt",
                "ckpt/1.pt",
                "ckpt/2.pt",
                "ckpt/3.pt",
                "ckpt0",
                "ckpts/x",
                "logs.txt",
                "meta.json"
            ]
        );
        assert_eq!(
            page("", 3, 2),
            (
                vec!["ckpt/2.pt".into(), "ckpt/3.pt".into(), "ckpt0".into()],
                8
            )
        );
        assert_eq!(page("", 3, 8), (vec![], 8));
        assert_eq!(
            page("ckpt/", 2, 0),
            (vec!["ckpt/1.pt".into(), "ckpt/2.pt".into()], 3)
        );
        assert_eq!(page("ckpt/", 2, 2), (vec!["ckpt/3.pt".into()], 3));
        assert_eq!(page("ckpt", 100, 0).1, 6);
        assert_eq!(page("nothing", 100, 0), (vec![], 0));
        let (files, _) = store.files_page(key, "ckpt/", 100, 0).unwrap();
        assert_eq!(files[1].size, 20);
        assert_eq!(files[1].sha256.as_deref(), Some(SHA_A));
        assert_eq!(files[1].cached_sha256.as_deref(), Some(SHA_A));
        assert_eq!(files[0].cached_sha256, None);
        assert_eq!(
            store.file(key, "ckpt/2.pt").unwrap().as_ref(),
            Some(&files[1])
        );
        assert_eq!(store.file(key, "ckpt/9.pt").unwrap(), None);
    }

    #[test]
    fn a_page_of_a_large_manifest_is_a_range_of_the_primary_key() {
        let (_tmp, store) = fresh_store();
        let plan: Vec<String> = store
            .conn
            .prepare(
                "EXPLAIN QUERY PLAN SELECT path FROM files
                 WHERE run = 1 AND path >= 'a/' AND path < 'a0' ORDER BY path LIMIT 10 OFFSET 5",
            )
            .unwrap()
            .query_map([], |r| r.get::<_, String>(3))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        let plan = plan.join("; ");
        assert!(
            plan.contains("SEARCH files USING PRIMARY KEY (run=? AND path>? AND path<?)"),
            "{plan}"
        );
        assert!(!plan.contains("TEMP B-TREE"), "{plan}");
    }
}
