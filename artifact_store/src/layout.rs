//! Where things are in the artifact store under a storage root: the pool, the chunk store, a
//! recipe, upstream's blob store, an artifact's folder and its versions. Both the absolute paths
//! (to open) and the root-relative `/`-separated ones (to send to the hub) come from here.

use std::path::{Path, PathBuf};

use runicorn_protocol::run_format::artifacts::{
    fanout_path, ARTIFACTS_DIR, CHUNKS_DIR, POOL_DIR, RECIPE_SUFFIX,
};

/// Upstream's (0.7) content-addressed blob store under the root: `archive/blobs/<sha[:2]>/<sha>`.
pub const UPSTREAM_BLOBS_DIR: &str = "archive/blobs";
/// Temp files of writers and packing, under the pool; gc leaves young ones alone.
pub const POOL_TMP_DIR: &str = "tmp";

/// `<root>/artifacts`.
pub fn artifacts_dir(root: &Path) -> PathBuf {
    root.join(ARTIFACTS_DIR)
}

/// `<root>/artifacts/.pool`.
pub fn pool_dir(root: &Path) -> PathBuf {
    artifacts_dir(root).join(POOL_DIR)
}

/// `<root>/artifacts/.chunks`.
pub fn chunks_dir(root: &Path) -> PathBuf {
    artifacts_dir(root).join(CHUNKS_DIR)
}

/// `<root>/artifacts/.pool/tmp`.
pub fn pool_tmp_dir(root: &Path) -> PathBuf {
    pool_dir(root).join(POOL_TMP_DIR)
}

/// `artifacts/.pool/<sha[:2]>/<sha>`, relative to the root.
pub fn pool_rel(sha256: &str) -> String {
    format!("{ARTIFACTS_DIR}/{POOL_DIR}/{}", fanout_path(sha256))
}

/// `artifacts/.pool/<sha[:2]>/<sha>.chunks.json`, relative to the root.
pub fn recipe_rel(sha256: &str) -> String {
    format!("{}{RECIPE_SUFFIX}", pool_rel(sha256))
}

/// `artifacts/.chunks/<sha[:2]>/<sha>`, relative to the root.
pub fn chunk_rel(sha256: &str) -> String {
    format!("{ARTIFACTS_DIR}/{CHUNKS_DIR}/{}", fanout_path(sha256))
}

/// `archive/blobs/<sha[:2]>/<sha>`, relative to the root.
pub fn blob_rel(sha256: &str) -> String {
    format!("{UPSTREAM_BLOBS_DIR}/{}", fanout_path(sha256))
}

/// A content kept whole in the pool.
pub fn pool_file(root: &Path, sha256: &str) -> PathBuf {
    root.join(pool_rel(sha256))
}

/// A content's chunk recipe in the pool.
pub fn recipe_file(root: &Path, sha256: &str) -> PathBuf {
    root.join(recipe_rel(sha256))
}

/// One chunk in the chunk store.
pub fn chunk_file(root: &Path, sha256: &str) -> PathBuf {
    root.join(chunk_rel(sha256))
}

/// `artifacts/<type>/<name>`, relative to the root: an artifact's key.
pub fn artifact_rel(kind: &str, name: &str) -> String {
    format!("{ARTIFACTS_DIR}/{kind}/{name}")
}

/// `<root>/artifacts/<type>/<name>`.
pub fn artifact_dir(root: &Path, kind: &str, name: &str) -> PathBuf {
    root.join(artifact_rel(kind, name))
}

/// `v<N>`.
pub fn version_dir_name(version: u64) -> String {
    format!("v{version}")
}

/// The number of a `v<N>` folder name (`v0`, `v01` and the like are not versions).
pub fn parse_version_dir(name: &str) -> Option<u64> {
    let digits = name.strip_prefix('v')?;
    if digits.is_empty() || digits.starts_with('0') || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// A valid artifact name, type or alias: 1-128 of letters, digits, `-`, `_`, `.`, not `.` or
/// `..` (the Python SDK's rule; the store's folders are named by them).
pub fn is_valid_name(text: &str) -> bool {
    !text.is_empty()
        && text.len() <= 128
        && text != "."
        && text != ".."
        && text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_dirs_and_names() {
        assert_eq!(parse_version_dir("v12"), Some(12));
        assert_eq!(parse_version_dir("v0"), None);
        assert_eq!(parse_version_dir("v01"), None);
        assert_eq!(parse_version_dir("v"), None);
        assert_eq!(parse_version_dir("x1"), None);
        assert!(is_valid_name("resnet-50_v1.2"));
        assert!(!is_valid_name(".."));
        assert!(!is_valid_name("a/b"));
        assert!(!is_valid_name(""));
        let sha = "ab".repeat(32);
        assert_eq!(chunk_rel(&sha), format!("artifacts/.chunks/ab/{sha}"));
        assert_eq!(
            recipe_rel(&sha),
            format!("artifacts/.pool/ab/{sha}.chunks.json")
        );
    }
}
