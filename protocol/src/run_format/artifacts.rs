//! The artifact store's files as serde types (`docs/run-format.md`, "Artifacts"): the version
//! index `versions.json`, a version's `manifest.json` and `metadata.json`, a large file's chunk
//! recipe in the pool, and a run's `artifacts.json`. Unknown fields are kept, so a reader that
//! rewrites a file written by a newer writer loses nothing.
//!
//! Behaviour (pooling, chunking, packing, garbage collection) lives in the
//! `runicorn-artifact-store` crate; this module only says what the files hold and where they are.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// The artifact store's folder under the storage root.
pub const ARTIFACTS_DIR: &str = "artifacts";
/// The content pool under [`ARTIFACTS_DIR`]: `.pool/<sha[:2]>/<sha>` (a whole file) or
/// `.pool/<sha[:2]>/<sha>`[`RECIPE_SUFFIX`] (a file kept as chunks).
pub const POOL_DIR: &str = ".pool";
/// Chunks of large files under [`ARTIFACTS_DIR`]: `.chunks/<sha[:2]>/<sha>`.
pub const CHUNKS_DIR: &str = ".chunks";
/// The pool's lock file under [`ARTIFACTS_DIR`]: writers hold it shared while they add to the
/// pool and link versions; packing and garbage collection hold it exclusively.
pub const POOL_LOCK: &str = ".pool/.lock";
/// Appended to a content's pool path for its chunk recipe.
pub const RECIPE_SUFFIX: &str = ".chunks.json";
/// An artifact's version index, in `artifacts/<type>/<name>/`.
pub const VERSIONS_FILE: &str = "versions.json";
/// The lock writers take to rewrite [`VERSIONS_FILE`], in `artifacts/<type>/<name>/`.
pub const ARTIFACT_LOCK: &str = ".lock";
/// A version's file list, in `v<N>/`.
pub const MANIFEST_FILE: &str = "manifest.json";
/// A version's description, metadata and producing run, in `v<N>/`.
pub const METADATA_FILE: &str = "metadata.json";
/// A version's files (links into the pool), in `v<N>/`.
pub const VERSION_FILES_DIR: &str = "files";
/// What a run produced and used, in the run directory.
pub const RUN_ARTIFACTS_FILE: &str = "artifacts.json";
/// Files at least this large are kept as chunks once packed (smaller ones stay whole).
pub const CHUNKED_MIN_FILE_BYTES: u64 = 4 * 1024 * 1024;

/// How files are cut into chunks. Every writer uses [`ChunkerParams::CURRENT`], so the same
/// bytes make the same chunks on every host; a recipe records the parameters it was cut with.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChunkerParams {
    /// `fastcdc-2020` (the `fastcdc` crate's `v2020` module).
    pub name: String,
    pub min: u32,
    pub avg: u32,
    pub max: u32,
}

impl ChunkerParams {
    pub const NAME: &'static str = "fastcdc-2020";
    pub const MIN: u32 = 16 * 1024;
    pub const AVG: u32 = 64 * 1024;
    pub const MAX: u32 = 256 * 1024;

    /// The parameters every writer cuts with today.
    pub fn current() -> Self {
        ChunkerParams {
            name: Self::NAME.to_owned(),
            min: Self::MIN,
            avg: Self::AVG,
            max: Self::MAX,
        }
    }
}

/// A run named in lineage: `produced_by` and `used_by`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunLink {
    pub run_id: String,
    /// The run directory relative to the storage root.
    pub dir: String,
    #[serde(default)]
    pub host: Option<String>,
}

/// `artifacts/<type>/<name>/versions.json`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct VersionIndex {
    pub name: String,
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default)]
    pub versions: Vec<VersionEntry>,
    /// `latest` and the user's aliases, each naming a version number.
    #[serde(default)]
    pub aliases: BTreeMap<String, u64>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// One version in [`VersionIndex`].
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct VersionEntry {
    pub version: u64,
    #[serde(default)]
    pub created_at: Option<f64>,
    /// Bytes of all its files.
    #[serde(default)]
    pub size: u64,
    /// Number of files.
    #[serde(default)]
    pub files: u64,
    #[serde(default)]
    pub produced_by: Option<RunLink>,
    #[serde(default)]
    pub used_by: Vec<RunLink>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// `v<N>/manifest.json`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct VersionManifest {
    #[serde(default)]
    pub files: Vec<ManifestFile>,
    #[serde(default)]
    pub references: Vec<Reference>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// One file of a version: its path inside the version (relative, `/`-separated, no `..`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ManifestFile {
    pub path: String,
    pub size: u64,
    /// Lowercase hex SHA-256 of the whole file: its name in the pool.
    pub sha256: String,
}

/// Something a version points at without holding its bytes (`s3://…`, a path on a share).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reference {
    pub uri: String,
    #[serde(default)]
    pub checksum: Option<String>,
    #[serde(default)]
    pub size: Option<u64>,
}

/// `v<N>/metadata.json`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct VersionMetadata {
    pub name: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub version: u64,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub metadata: Value,
    #[serde(default)]
    pub created_at: Option<f64>,
    #[serde(default)]
    pub produced_by: Option<RunLink>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// `.pool/<sha[:2]>/<sha>.chunks.json`: a large file kept as chunks, in order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChunkRecipe {
    /// 1.
    pub format: u32,
    /// The whole file's SHA-256.
    pub sha256: String,
    pub size: u64,
    pub chunker: ChunkerParams,
    pub chunks: Vec<ChunkRef>,
}

/// One chunk of a [`ChunkRecipe`]; its offset is the sum of the sizes before it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChunkRef {
    pub sha256: String,
    pub size: u32,
}

/// A run's `artifacts.json`: the versions it produced and used.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RunArtifacts {
    #[serde(default)]
    pub produced: Vec<VersionRef>,
    #[serde(default)]
    pub used: Vec<VersionRef>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// One version named from a run's `artifacts.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VersionRef {
    pub name: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub version: u64,
}

/// `<sha[:2]>/<sha>`: where a content lives inside the pool, the chunk store, the hub's cache.
pub fn fanout_path(sha256: &str) -> String {
    let prefix = sha256.get(..2).unwrap_or(sha256);
    format!("{prefix}/{sha256}")
}

/// True for a lowercase hex SHA-256 (64 characters), the only names the pool holds.
pub fn is_sha256_hex(text: &str) -> bool {
    text.len() == 64 && text.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn python_sdk_files_read_and_keep_unknown_fields() {
        let index: VersionIndex = serde_json::from_str(
            r#"{"name":"m","type":"model","versions":[{"version":1,"created_at":1.5,"size":3,
            "files":1,"produced_by":{"run_id":"r1","dir":"runs/a/r1","host":"gpu1"},"used_by":[],
            "note":"x"}],"aliases":{"latest":1,"best":1},"future":true}"#,
        )
        .unwrap();
        assert_eq!(index.kind, "model");
        assert_eq!(index.aliases["best"], 1);
        assert_eq!(index.versions[0].extra["note"], "x");
        let back = serde_json::to_value(&index).unwrap();
        assert_eq!(back["future"], true);
        assert_eq!(back["type"], "model");
    }

    #[test]
    fn fanout_and_hex_checks() {
        let sha = "ab".repeat(32);
        assert!(is_sha256_hex(&sha));
        assert!(!is_sha256_hex("AB"));
        assert_eq!(fanout_path(&sha), format!("ab/{sha}"));
    }
}
