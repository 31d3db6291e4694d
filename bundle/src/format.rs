//! The bundle format: the manifest's serde types and the names of a bundle's tar entries.
//!
//! A bundle is a tar stream compressed with zstd. Its first entry is [`MANIFEST_NAME`]
//! (`bundle.json`, a [`Manifest`]); every other entry is one content, stored once under
//! [`content_entry_name`] (`contents/<sha[:2]>/<sha>`) however many members share it.

use serde::{Deserialize, Serialize};

/// The only format version this crate writes and reads.
pub const FORMAT_VERSION: u32 = 1;
/// The files of a run a metadata-only bundle carries (paths relative to the run directory):
/// its records, `events.jsonl`, `logs.txt` and the agent's telemetry `system.jsonl`; every
/// other file is listed only.
pub const METADATA_ONLY_FILES: [&str; 10] = [
    "meta.json",
    "status.json",
    "summary.json",
    "environment.json",
    "assets.json",
    "artifacts.json",
    ".deleted",
    "events.jsonl",
    "logs.txt",
    "system.jsonl",
];

/// The name of the manifest entry, always the first entry of the tar.
pub const MANIFEST_NAME: &str = "bundle.json";
/// The directory of contents inside the tar.
pub const CONTENTS_DIR: &str = "contents";
/// The directory of a storage root holding artifacts; members may lie below it when their
/// source lists artifact versions.
pub const ARTIFACTS_DIR: &str = "artifacts";

/// `bundle.json`: what a bundle holds. Unknown fields are ignored (a version 1 writer may add
/// optional fields); an incompatible change bumps [`FORMAT_VERSION`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    /// [`FORMAT_VERSION`].
    pub format_version: u32,
    /// Creation time, seconds since the Unix epoch.
    pub created_at: f64,
    /// The program that wrote the bundle (`runicorn-agent 0.1.0`).
    #[serde(default)]
    pub created_by: String,
    /// The storage roots the runs came from; a member path starts with its source's index.
    pub sources: Vec<Source>,
    /// Every file listed (carried or omitted).
    pub members: Vec<ManifestMember>,
}

/// One storage root of a bundle: where it came from, and the runs and artifact versions of it
/// the bundle holds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Source {
    /// The remote name to import the runs under (an agent's export: its hostname).
    pub name: String,
    pub host: String,
    /// The storage root as its host knows it.
    pub root: String,
    /// Run directories, relative to the root (`/`-separated).
    pub runs: Vec<String>,
    /// Artifact versions carried (may be empty); members may then lie under `artifacts/`.
    #[serde(default)]
    pub artifact_versions: Vec<ArtifactVersionRef>,
    /// The hub's annotations of the runs (hub exports only; may be empty).
    #[serde(default)]
    pub annotations: Vec<Annotation>,
}

/// One artifact version named by a bundle (`artifacts/<type>/<name>`, version N).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct ArtifactVersionRef {
    pub dir: String,
    pub version: u64,
}

/// What a hub knows of a run beyond its files: alias, tags, notes, and whether it sits in the
/// recycle bin.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Annotation {
    /// The run directory (one of its source's `runs`).
    pub run: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alias: Option<String>,
    #[serde(default)]
    pub tags: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notes: Option<String>,
    #[serde(default)]
    pub deleted: bool,
}

/// One member: the file at `path` (`<source index>/<root-relative path>`), its size and SHA-256
/// (lowercase hex). Its bytes are the tar entry `contents/<sha[:2]>/<sha>`, unless `omitted`:
/// then the file is only listed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ManifestMember {
    pub path: String,
    pub size: u64,
    pub sha256: String,
    #[serde(default, skip_serializing_if = "is_false")]
    pub omitted: bool,
    /// The file's modification time on its host (seconds since the Unix epoch), when known:
    /// the reader gives the landed file this time, so an imported manifest matches a synced one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mtime: Option<f64>,
}

fn is_false(b: &bool) -> bool {
    !*b
}

/// The member path of the root-relative `path` of source `source`.
pub fn member_path(source: usize, path: &str) -> String {
    format!("{source}/{path}")
}

/// Splits a member path into its source index and root-relative path, when it has the form
/// `<decimal index>/<path>` (no sign, no leading zero).
pub fn split_member_path(path: &str) -> Option<(usize, &str)> {
    let (index, rest) = path.split_once('/')?;
    let canonical = !index.is_empty()
        && index.bytes().all(|b| b.is_ascii_digit())
        && (index == "0" || !index.starts_with('0'));
    if !canonical || rest.is_empty() {
        return None;
    }
    Some((index.parse().ok()?, rest))
}

/// The tar entry name of the content with this SHA-256 (lowercase hex).
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

    #[test]
    fn member_paths_split_into_source_and_root_path() {
        assert_eq!(member_path(3, "runs/a/b"), "3/runs/a/b");
        assert_eq!(split_member_path("0/runs/a"), Some((0, "runs/a")));
        assert_eq!(split_member_path("12/x"), Some((12, "x")));
        for bad in [
            "runs/a",
            "01/x",
            "-1/x",
            "+1/x",
            "0/",
            "0",
            "/x",
            "99999999999999999999999/x",
        ] {
            assert_eq!(split_member_path(bad), None, "{bad}");
        }
    }

    #[test]
    fn omitted_is_written_only_when_true() {
        let mut member = ManifestMember {
            path: "0/runs/a/f".to_owned(),
            size: 1,
            sha256: "ab".repeat(32),
            omitted: false,
            mtime: None,
        };
        assert!(!serde_json::to_string(&member).unwrap().contains("omitted"));
        member.omitted = true;
        assert!(serde_json::to_string(&member)
            .unwrap()
            .contains("\"omitted\":true"));
    }
}
