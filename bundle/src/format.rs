//! The bundle format: the manifest's serde types and the names of a bundle's tar entries.
//!
//! A bundle is a tar stream compressed with zstd. Its first entry is [`MANIFEST_NAME`]
//! (`bundle.json`, a [`Manifest`]); every other entry is one content, stored once under
//! [`content_entry_name`] (`contents/<sha[:2]>/<sha>`) however many members share it.

use serde::{Deserialize, Serialize};

/// The only format version this crate writes and reads.
pub const FORMAT_VERSION: u32 = 1;
/// The name of the manifest entry, always the first entry of the tar.
pub const MANIFEST_NAME: &str = "bundle.json";
/// The directory of contents inside the tar.
pub const CONTENTS_DIR: &str = "contents";
/// Every member path starts with this directory (`runs/<run dir>/<file>`).
pub const RUNS_DIR: &str = "runs";

/// `bundle.json`: what a bundle holds. Unknown fields are ignored (a version 1 writer may add
/// optional fields); an incompatible change bumps [`FORMAT_VERSION`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    /// [`FORMAT_VERSION`].
    pub format_version: u32,
    /// Where the runs came from.
    pub source: Source,
    /// Creation time, seconds since the Unix epoch.
    pub created_at: f64,
    /// The run directories inside, relative to the source root (`/`-separated).
    pub runs: Vec<String>,
    /// Artifact versions the bundle refers to (may be empty).
    #[serde(default)]
    pub artifact_versions: Vec<ArtifactVersionRef>,
    /// Every member (a file of a run directory).
    pub members: Vec<ManifestMember>,
}

/// The host and storage root a bundle was written from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Source {
    pub host: String,
    pub root: String,
}

/// One artifact version named by a bundle (`artifacts/<type>/<name>`, version N).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ArtifactVersionRef {
    pub dir: String,
    pub version: u64,
}

/// One member: a file at `path` (`runs/<run dir>/<file>`), its size and SHA-256 (lowercase hex),
/// whose bytes are the tar entry `contents/<sha[:2]>/<sha>`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ManifestMember {
    pub path: String,
    pub size: u64,
    pub sha256: String,
}

/// The tar entry name of the content with this SH-256 (lowercase hex).
pub fn content_entry_name(sha256: &str) -> String {
    let fanout = sha256.get(..2).unwrap_or(sha256);
    format!("{CONTENTS_DIR}/{fanout}/{sha256}")
}

/// Whether `s` is a SHA-256 in lowercase hex.
pub fn is_sha256_hex(s: &str) -> bool {
    s.len() == 64
        && s.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// The SHA-256 of the content a tar entry name holds, if the name is `contents/<sha[:2]>/<sha>`.
pub fn content_sha_of_entry(name: &str) -> Option<&str> {
    let rest = name.strip_prefix(CONTENTS_DIR)?.strip_prefix('/')?;
    let (fanout, sha) = rest.split_once('/')?;
    (is_sha256_hex(sha) && sha.get(..2) == Some(fanout)).then_some(sha)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_names_round_trip() {
        let sha = "ab".repeat(32);
        let name = content_entry_name(&sha);
        assert_eq!(name, format!("contents/ab/{sha}"));
        assert_eq!(content_sha_of_entry(&name), Some(sha.as_str()));
        assert_eq!(content_sha_of_entry(&format!("contents/cd/{sha}")), None);
        assert_eq!(content_sha_of_entry("contents/ab/xyz"), None);
        assert_eq!(content_sha_of_entry(&format!("runs/ab/{sha}")), None);
    }
}
