//! How much space the pool takes on disk (whole files, recipes, chunks) and how much the
//! versions' files add up to, for `runicorn-agent artifacts`' "stored after dedup" figures.

use std::collections::HashMap;
use std::fs;
use std::path::Path;

use runicorn_protocol::wire::artifacts::ArtifactChange;

use crate::layout;
use crate::versions_scan::fanout_files;

/// The pool's files and bytes on disk.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct PoolUsage {
    pub whole_files: usize,
    pub whole_bytes: u64,
    pub recipes: usize,
    pub recipe_bytes: u64,
    pub chunks: usize,
    pub chunk_bytes: u64,
}

impl PoolUsage {
    pub fn total_bytes(&self) -> u64 {
        self.whole_bytes + self.recipe_bytes + self.chunk_bytes
    }
}

/// Measures the pool and chunk store under `root`.
pub fn pool_usage(root: &Path) -> PoolUsage {
    let mut usage = PoolUsage::default();
    for (name, path) in fanout_files(&layout::pool_dir(root)) {
        let size = fs::symlink_metadata(&path).map(|m| m.len()).unwrap_or(0);
        if name.ends_with(runicorn_protocol::run_format::artifacts::RECIPE_SUFFIX) {
            usage.recipes += 1;
            usage.recipe_bytes += size;
        } else {
            usage.whole_files += 1;
            usage.whole_bytes += size;
        }
    }
    for (_, path) in fanout_files(&layout::chunks_dir(root)) {
        usage.chunks += 1;
        usage.chunk_bytes += fs::symlink_metadata(&path).map(|m| m.len()).unwrap_or(0);
    }
    usage
}

/// An artifact's files: the sum of every version's file sizes, and of its distinct contents.
pub fn logical_and_distinct(change: &ArtifactChange) -> (u64, u64) {
    let mut distinct: HashMap<&str, u64> = HashMap::new();
    let mut logical = 0;
    for file in change.versions.iter().flat_map(|v| &v.files) {
        logical += file.size;
        distinct.insert(&file.sha256, file.size);
    }
    (logical, distinct.values().sum())
}
