//! How much space the pool takes on disk (whole files, recipes, chunks), how much the
//! versions' files add up to, and what one artifact occupies after dedup at chunk level, for
//! `runicorn-agent artifacts`' "stored after dedup" figures and `ArtifactChange::stored_bytes`.

use std::collections::{HashMap, HashSet};
use std::fs;
use std::path::Path;

use runicorn_protocol::wire::artifacts::ArtifactChange;

use runicorn_protocol::wire::artifacts::StoredAs;

use crate::layout;
use crate::pool::read_recipe;
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

/// Bytes `change`'s contents occupy under `root`: each distinct whole pool file once, and each
/// distinct chunk of its chunked contents once (so successive checkpoints sharing most chunks
/// count them once). Contents missing on the server, or whose recipe cannot be read, add
/// nothing.
pub fn stored_bytes(root: &Path, change: &ArtifactChange) -> u64 {
    let mut contents = HashSet::new();
    let mut chunks: HashMap<String, u64> = HashMap::new();
    let mut whole = 0;
    for file in change.versions.iter().flat_map(|v| &v.files) {
        if !contents.insert(file.sha256.as_str()) {
            continue;
        }
        match file.stored {
            StoredAs::Whole => {
                whole += fs::metadata(layout::pool_file(root, &file.sha256))
                    .map(|m| m.len())
                    .unwrap_or(0);
            }
            StoredAs::Chunked => {
                if let Ok(Some(recipe)) = read_recipe(root, &file.sha256) {
                    for chunk in recipe.chunks {
                        chunks.insert(chunk.sha256, u64::from(chunk.size));
                    }
                }
            }
            StoredAs::Missing | StoredAs::Unknown => {}
        }
    }
    whole + chunks.values().sum::<u64>()
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::listing::read_artifact;
    use crate::testing::{write_version, Fixture};
    use crate::writer::{log_artifact_with, Artifact, LogOptions};

    #[test]
    fn whole_contents_count_once_per_artifact() {
        let fx = Fixture::new();
        write_version(
            fx.root(),
            "model",
            "m",
            1,
            &[("a.bin", b"same"), ("b", b"xy")],
        );
        write_version(fx.root(), "model", "m", 2, &[("a.bin", b"same")]);
        let change = read_artifact(fx.root(), "model", "m");
        assert_eq!(logical_and_distinct(&change), (10, 6));
        assert_eq!(stored_bytes(fx.root(), &change), 6);
    }

    #[test]
    fn chunked_versions_share_their_common_chunks() {
        let fx = Fixture::new();
        let size = 6 * 1024 * 1024;
        let mut bytes: Vec<u8> = (0..size).map(|_| fastrand::u8(..)).collect();
        let source = fx.root().join("weights.bin");
        let log = |bytes: &[u8]| {
            std::fs::write(&source, bytes).unwrap();
            let mut art = Artifact::new("m", "model").unwrap();
            art.add_file(&source, None).unwrap();
            let chunked = LogOptions {
                chunk_large_files: true,
            };
            log_artifact_with(fx.root(), &art, &[], None, &chunked).unwrap();
        };
        log(&bytes);
        // Change 256 KiB in the middle: the versions share most chunks.
        for b in &mut bytes[3 * 1024 * 1024..3 * 1024 * 1024 + 256 * 1024] {
            *b = fastrand::u8(..);
        }
        log(&bytes);
        std::fs::remove_file(&source).unwrap();
        let change = read_artifact(fx.root(), "model", "m");
        assert!(change
            .versions
            .iter()
            .all(|v| v.files[0].stored == StoredAs::Chunked));
        let stored = stored_bytes(fx.root(), &change);
        assert!(stored >= size as u64, "at least one full copy: {stored}");
        assert!(
            stored < size as u64 + 1024 * 1024,
            "the second version adds only its changed chunks: {stored}"
        );
        assert_eq!(stored, pool_usage(fx.root()).chunk_bytes);
    }
}
