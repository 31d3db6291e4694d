//! The SHA-256 the agent's index already holds for the runs being exported (cached by the
//! feed per file, by size and mtime), in the shape the bundle writer takes, so an export does
//! not hash those files again before its manifest.

use std::collections::HashSet;
use std::path::Path;

use runicorn_bundle::{KnownHash, KnownHashes};

use crate::run_index::cached_hashes::cached_file_hashes;

/// The index's hashes for files of `runs` (root-relative run directories); none when the root
/// has no readable index.
pub fn from_index(root: &Path, runs: &[String]) -> KnownHashes {
    let runs: HashSet<&str> = runs.iter().map(|r| r.trim_end_matches('/')).collect();
    cached_file_hashes(root, &runs)
        .into_iter()
        .map(|(path, cached)| {
            let known = KnownHash {
                size: cached.size,
                mtime_ns: cached.mtime_ns,
                sha256: cached.sha256,
            };
            (path, known)
        })
        .collect()
}
