//! Reading the artifact store for listing and sync: which artifacts exist under a root, and one
//! artifact's whole state ([`ArtifactChange`]) from its `versions.json`, each version's
//! `metadata.json` and `manifest.json`, and how the pool holds each file. Tolerant: whatever is
//! damaged is named in `problem` and everything else is still read.

use std::fs;
use std::path::Path;

use runicorn_protocol::run_format::artifacts::{
    VersionIndex, VersionManifest, VersionMetadata, MANIFEST_FILE, METADATA_FILE, VERSIONS_FILE,
};
use runicorn_protocol::run_format::json_file::{read_json_in, RecordError};
use runicorn_protocol::wire::artifacts::{
    ArtifactChange, ArtifactFileState, ArtifactVersionState, StoredAs,
};
use serde_json::Value;

use crate::layout;

/// A version's metadata larger than this (as JSON) is replaced by a note saying so.
pub const MAX_METADATA_BYTES: usize = 64 * 1024;

/// Every artifact under `root` as `(type, name)`, sorted. Folders that are not valid names
/// (`.pool`, `.chunks`, stray files) are skipped; no `artifacts/` folder means none.
pub fn artifact_dirs(root: &Path) -> Vec<(String, String)> {
    let mut found = Vec::new();
    for kind in sub_dirs(&layout::artifacts_dir(root)) {
        let kind_dir = layout::artifacts_dir(root).join(&kind);
        for name in sub_dirs(&kind_dir) {
            found.push((kind.clone(), name));
        }
    }
    found.sort();
    found
}

/// Valid-named sub-folders of `dir` (not following links).
fn sub_dirs(dir: &Path) -> Vec<String> {
    let Ok(entries) = fs::read_dir(dir) else {
        return Vec::new();
    };
    entries
        .filter_map(Result::ok)
        .filter(|e| e.file_type().map(|t| t.is_dir()).unwrap_or(false))
        .filter_map(|e| e.file_name().into_string().ok())
        .filter(|n| !n.starts_with('.') && layout::is_valid_name(n))
        .collect()
}

/// How the pool holds a content: chunked (a recipe), whole, or missing.
pub fn stored_as(root: &Path, sha256: &str) -> StoredAs {
    if layout::recipe_file(root, sha256).is_file() {
        StoredAs::Chunked
    } else if layout::pool_file(root, sha256).is_file() {
        StoredAs::Whole
    } else {
        StoredAs::Missing
    }
}

/// The whole state of `artifacts/<kind>/<name>` under `root` (`seq` 0: the caller numbers it).
/// Versions come from `versions.json`; when it is unreadable, from the `v<N>` folders that have
/// a metadata file. Every unreadable part is named in `problem`.
pub fn read_artifact(root: &Path, kind: &str, name: &str) -> ArtifactChange {
    let dir = layout::artifact_dir(root, kind, name);
    let mut problems = Vec::new();
    let mut change = ArtifactChange {
        dir: layout::artifact_rel(kind, name),
        seq: 0,
        kind: kind.to_owned(),
        name: name.to_owned(),
        ..ArtifactChange::default()
    };
    let index = match read_json_in::<VersionIndex>(&dir.join(VERSIONS_FILE), root) {
        Ok(index) => Some(index),
        Err(error) if error.is_not_found() => None,
        Err(error) => {
            problems.push(format!(
                "{}: {}",
                rel(root, &dir.join(VERSIONS_FILE)),
                short(&error)
            ));
            None
        }
    };
    match index {
        Some(index) => {
            change.aliases = index.aliases;
            for entry in index.versions {
                let mut state = read_version(root, &dir, entry.version, &mut problems);
                state.created_at = entry.created_at.or(state.created_at);
                if entry.produced_by.is_some() {
                    state.produced_by = entry.produced_by;
                }
                state.used_by = entry.used_by;
                change.versions.push(state);
            }
        }
        None => {
            // No index (a writer's first version in progress, or a damaged file): what the
            // version folders say, for the versions whose metadata was written.
            let mut numbers: Vec<u64> = fs::read_dir(&dir)
                .into_iter()
                .flatten()
                .filter_map(Result::ok)
                .filter_map(|e| e.file_name().to_str().and_then(layout::parse_version_dir))
                .filter(|n| {
                    dir.join(layout::version_dir_name(*n))
                        .join(METADATA_FILE)
                        .is_file()
                })
                .collect();
            numbers.sort_unstable();
            for number in numbers {
                change
                    .versions
                    .push(read_version(root, &dir, number, &mut problems));
            }
        }
    }
    change.versions.sort_by_key(|v| v.version);
    change.stored_bytes = Some(crate::usage::stored_bytes(root, &change));
    if !problems.is_empty() {
        change.problem = Some(problems.join("; "));
    }
    change
}

/// One version's metadata and files; what cannot be read goes to `problems`.
fn read_version(
    root: &Path,
    artifact_dir: &Path,
    version: u64,
    problems: &mut Vec<String>,
) -> ArtifactVersionState {
    let vdir = artifact_dir.join(layout::version_dir_name(version));
    let mut state = ArtifactVersionState {
        version,
        ..ArtifactVersionState::default()
    };
    match read_json_in::<VersionMetadata>(&vdir.join(METADATA_FILE), root) {
        Ok(meta) => {
            state.created_at = meta.created_at;
            state.description = meta.description;
            state.metadata = bounded_metadata(meta.metadata);
            state.produced_by = meta.produced_by;
        }
        Err(error) => problems.push(format!(
            "{}: {}",
            rel(root, &vdir.join(METADATA_FILE)),
            short(&error)
        )),
    }
    match read_json_in::<VersionManifest>(&vdir.join(MANIFEST_FILE), root) {
        Ok(manifest) => {
            state.references = manifest.references;
            state.files = manifest
                .files
                .into_iter()
                .map(|file| ArtifactFileState {
                    stored: if runicorn_protocol::run_format::artifacts::is_sha256_hex(&file.sha256)
                    {
                        stored_as(root, &file.sha256)
                    } else {
                        StoredAs::Missing
                    },
                    path: file.path,
                    size: file.size,
                    sha256: file.sha256,
                })
                .collect();
        }
        Err(error) => problems.push(format!(
            "{}: {}",
            rel(root, &vdir.join(MANIFEST_FILE)),
            short(&error)
        )),
    }
    state
}

/// `null` stays absent; a value too large is replaced by a note.
fn bounded_metadata(value: Value) -> Option<Value> {
    if value.is_null() {
        return None;
    }
    let size = serde_json::to_vec(&value).map(|b| b.len()).unwrap_or(0);
    if size > MAX_METADATA_BYTES {
        return Some(serde_json::json!({
            "_cut": format!("metadata of {size} bytes is larger than {MAX_METADATA_BYTES}; read metadata.json on the server")
        }));
    }
    Some(value)
}

fn rel(root: &Path, path: &Path) -> String {
    path.strip_prefix(root)
        .unwrap_or(path)
        .to_string_lossy()
        .into_owned()
}

/// The error without the path the message already starts with.
fn short(error: &RecordError) -> String {
    if error.is_not_found() {
        return "missing".to_owned();
    }
    match error {
        RecordError::Malformed { cause, .. } => format!("malformed JSON ({cause})"),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{write_version, Fixture};

    #[test]
    fn lists_artifacts_and_skips_the_pool() {
        let fx = Fixture::new();
        write_version(fx.root(), "model", "m", 1, &[("a.bin", b"one")]);
        write_version(fx.root(), "dataset", "d", 1, &[("x", b"x")]);
        fs::create_dir_all(fx.root().join("artifacts/.chunks/ab")).unwrap();
        assert_eq!(
            artifact_dirs(fx.root()),
            vec![
                ("dataset".to_owned(), "d".to_owned()),
                ("model".to_owned(), "m".to_owned())
            ]
        );
        assert!(artifact_dirs(&fx.root().join("nothing")).is_empty());
    }

    #[test]
    fn reads_versions_files_and_how_they_are_stored() {
        let fx = Fixture::new();
        write_version(fx.root(), "model", "m", 1, &[("a.bin", b"one")]);
        let sha2 = write_version(fx.root(), "model", "m", 2, &[("a.bin", b"two")])[0].clone();
        fs::remove_file(layout::pool_file(fx.root(), &sha2)).unwrap();
        let change = read_artifact(fx.root(), "model", "m");
        assert_eq!(change.dir, "artifacts/model/m");
        assert_eq!(change.problem, None);
        assert_eq!(change.aliases["latest"], 2);
        assert_eq!(change.versions.len(), 2);
        let v1 = &change.versions[0];
        assert_eq!(v1.files[0].path, "a.bin");
        assert_eq!(v1.files[0].stored, StoredAs::Whole);
        assert_eq!(v1.description.as_deref(), Some("version 1"));
        assert_eq!(v1.produced_by.as_ref().unwrap().run_id, "run1");
        assert_eq!(change.versions[1].files[0].stored, StoredAs::Missing);
        fs::write(layout::recipe_file(fx.root(), &sha2), "{}").unwrap();
        let change = read_artifact(fx.root(), "model", "m");
        assert_eq!(change.versions[1].files[0].stored, StoredAs::Chunked);
    }

    #[test]
    fn a_damaged_index_still_lists_the_versions_on_disk() {
        let fx = Fixture::new();
        write_version(fx.root(), "model", "m", 1, &[("a.bin", b"one")]);
        write_version(fx.root(), "model", "m", 2, &[("a.bin", b"two")]);
        fs::write(fx.root().join("artifacts/model/m/versions.json"), "{broken").unwrap();
        let change = read_artifact(fx.root(), "model", "m");
        let problem = change.problem.unwrap();
        assert!(
            problem.contains("artifacts/model/m/versions.json"),
            "{problem}"
        );
        assert_eq!(change.versions.len(), 2);
        assert_eq!(change.versions[1].files.len(), 1);
    }

    #[test]
    fn a_damaged_manifest_is_named_and_the_rest_is_read() {
        let fx = Fixture::new();
        write_version(fx.root(), "model", "m", 1, &[("a.bin", b"one")]);
        write_version(fx.root(), "model", "m", 2, &[("a.bin", b"two")]);
        fs::write(fx.root().join("artifacts/model/m/v1/manifest.json"), "[").unwrap();
        let change = read_artifact(fx.root(), "model", "m");
        let problem = change.problem.unwrap();
        assert!(
            problem.contains("artifacts/model/m/v1/manifest.json"),
            "{problem}"
        );
        assert!(change.versions[0].files.is_empty());
        assert_eq!(change.versions[1].files.len(), 1);
    }
}
