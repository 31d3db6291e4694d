//! A read-only look at the SHA-256 the feed caches per file (`feed_run.files`: path, size,
//! mtime, hash), for `runicorn-agent export`: it opens the index without creating, migrating
//! or locking it for writing, and a missing or unreadable index simply gives no hashes.

use std::collections::{HashMap, HashSet};
use std::path::Path;

use rusqlite::{Connection, OpenFlags};

use super::{AGENT_DIR, INDEX_FILE};

/// A file's cached hash, valid while its size and mtime are these.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CachedHash {
    pub size: u64,
    /// Nanoseconds since the Unix epoch.
    pub mtime_ns: i64,
    /// Lowercase hex SHA-256.
    pub sha256: String,
}

/// The hashes the index of `root` caches for files of the run directories `runs` (relative to
/// the root, `/`-separated), by root-relative path (`runs/p/a/meta.json`). Empty when the index
/// is absent, unreadable, or has no feed yet (only `serve` fills it).
pub fn cached_file_hashes(root: &Path, runs: &HashSet<&str>) -> HashMap<String, CachedHash> {
    read(root, runs).unwrap_or_default()
}

fn read(root: &Path, runs: &HashSet<&str>) -> Option<HashMap<String, CachedHash>> {
    let path = root.join(AGENT_DIR).join(INDEX_FILE);
    if !path.is_file() {
        return None;
    }
    let conn = Connection::open_with_flags(
        &path,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .ok()?;
    conn.busy_timeout(std::time::Duration::from_secs(2)).ok()?;
    let mut stmt = conn
        .prepare("SELECT dir, files FROM feed_run WHERE removed = 0")
        .ok()?;
    let rows = stmt
        .query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))
        .ok()?;
    let mut out = HashMap::new();
    for row in rows {
        let Ok((dir, files)) = row else { continue };
        if !runs.contains(dir.as_str()) {
            continue;
        }
        // A row this agent cannot parse only costs hashing that run's files.
        let Ok(files) = super::feed::parse_stored_files(&files) else {
            continue;
        };
        for file in files {
            let mtime_ns = file.mtime_ns();
            if let Some(sha256) = file.sha256 {
                out.insert(
                    format!("{dir}/{}", file.path),
                    CachedHash {
                        size: file.size,
                        mtime_ns,
                        sha256,
                    },
                );
            }
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::run_index::feed::{Feed, ScanScope};
    use crate::run_index::RunIndex;
    use runicorn_protocol::run_format::LivenessContext;
    use sha2::{Digest, Sha256};
    use std::sync::Mutex;

    #[test]
    fn gives_the_feeds_hashes_of_the_runs_asked_for_and_nothing_without_an_index() {
        let t = tempfile::tempdir().unwrap();
        let root = t.path();
        for id in ["a", "b"] {
            let dir = root.join("runs/p").join(id);
            std::fs::create_dir_all(&dir).unwrap();
            std::fs::write(dir.join("meta.json"), format!("{{\"id\":\"{id}\"}}")).unwrap();
            std::fs::write(dir.join("events.jsonl"), "{}\n").unwrap();
        }
        let runs: HashSet<&str> = ["runs/p/a"].into_iter().collect();
        assert!(cached_file_hashes(root, &runs).is_empty(), "no index yet");
        let index = Mutex::new(RunIndex::open(root).unwrap());
        assert!(cached_file_hashes(root, &runs).is_empty(), "no feed yet");
        Feed::new(root)
            .scan(&index, ScanScope::All, &LivenessContext::here_and_now())
            .unwrap();
        let hashes = cached_file_hashes(root, &runs);
        let keys: Vec<&str> = hashes.keys().map(String::as_str).collect();
        assert_eq!(
            keys,
            ["runs/p/a/meta.json"],
            "append-only files have no hash"
        );
        let meta = &hashes["runs/p/a/meta.json"];
        assert_eq!(meta.size, 10);
        assert_eq!(
            meta.sha256,
            crate::run_index::manifest::hex(&Sha256::digest(b"{\"id\":\"a\"}"))
        );
        // A damaged index gives no hashes rather than an error.
        drop(index);
        let file = root.join(AGENT_DIR).join(INDEX_FILE);
        for suffix in ["-wal", "-shm"] {
            let _ = std::fs::remove_file(format!("{}{suffix}", file.display()));
        }
        std::fs::write(&file, b"not a database at all, just some bytes here").unwrap();
        assert!(cached_file_hashes(root, &runs).is_empty());
    }
}
