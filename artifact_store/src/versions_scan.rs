//! Every version folder of every artifact under a root, with its manifest or why it has none:
//! what gc's live set and packing's link removal are built from. Folders that are not
//! `v<N>` (a version being removed is renamed `.removed-...` first) are not versions.

use std::fs;
use std::path::{Path, PathBuf};

use runicorn_protocol::run_format::artifacts::{VersionManifest, MANIFEST_FILE};
use runicorn_protocol::run_format::json_file::read_json_in;

use crate::layout;

/// One `artifacts/<type>/<name>/v<N>` folder.
#[derive(Debug)]
pub struct ScannedVersion {
    /// `artifacts/<type>/<name>/v<N>`, relative to the root.
    pub rel: String,
    pub dir: PathBuf,
    /// The manifest, or why it could not be read.
    pub manifest: Result<VersionManifest, String>,
}

/// Every version folder under `root`, whatever the names of its type and artifact folders
/// (gc must see them all), in a stable order.
pub fn scan_versions(root: &Path) -> Vec<ScannedVersion> {
    let mut found = Vec::new();
    let base = layout::artifacts_dir(root);
    for kind in plain_dirs(&base) {
        for name in plain_dirs(&base.join(&kind)) {
            let adir = base.join(&kind).join(&name);
            for entry in plain_dirs(&adir) {
                if layout::parse_version_dir(&entry).is_none() {
                    continue;
                }
                let dir = adir.join(&entry);
                let manifest = read_json_in::<VersionManifest>(&dir.join(MANIFEST_FILE), root)
                    .map_err(|error| {
                        if error.is_not_found() {
                            "it has no manifest.json".to_owned()
                        } else {
                            error.to_string()
                        }
                    });
                found.push(ScannedVersion {
                    rel: format!("artifacts/{kind}/{name}/{entry}"),
                    dir,
                    manifest,
                });
            }
        }
    }
    found
}

/// Sub-folders of `dir` not starting with `.`, sorted (links are not followed).
fn plain_dirs(dir: &Path) -> Vec<String> {
    let Ok(entries) = fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut names: Vec<String> = entries
        .filter_map(Result::ok)
        .filter(|e| e.file_type().map(|t| t.is_dir()).unwrap_or(false))
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| !n.starts_with('.'))
        .collect();
    names.sort();
    names
}

/// The files directly in `dir`'s two-hex-digit fan-out folders: `(sub/name, path)`.
pub(crate) fn fanout_files(dir: &Path) -> Vec<(String, PathBuf)> {
    let mut found = Vec::new();
    let Ok(prefixes) = fs::read_dir(dir) else {
        return found;
    };
    for prefix in prefixes.filter_map(Result::ok) {
        let prefix_name = prefix.file_name().to_string_lossy().into_owned();
        if prefix_name.len() != 2 || !prefix.file_type().map(|t| t.is_dir()).unwrap_or(false) {
            continue;
        }
        let Ok(entries) = fs::read_dir(prefix.path()) else {
            continue;
        };
        for entry in entries.filter_map(Result::ok) {
            if entry.file_type().map(|t| t.is_file()).unwrap_or(false) {
                found.push((
                    entry.file_name().to_string_lossy().into_owned(),
                    entry.path(),
                ));
            }
        }
    }
    found.sort();
    found
}
