//! Deleting one version (`runicorn-agent artifacts rm NAME:vN`): under the artifact's lock its
//! `v<N>` folder is renamed aside (so gc never sees half of it), its entry and the aliases naming
//! it leave `versions.json`, `latest` moves to the newest left, and the folder is deleted. An
//! artifact left without versions is removed whole. The pool is never touched: gc reclaims.

use std::fs;
use std::path::Path;

use runicorn_protocol::run_format::artifacts::{VersionIndex, VERSIONS_FILE};
use runicorn_protocol::run_format::json_file::{read_json_in, write_json_atomic};

use crate::error::{IoContext, StoreError};
use crate::{layout, locks, writer};

/// What [`remove_version`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemovedVersion {
    pub kind: String,
    pub name: String,
    pub version: u64,
    /// Aliases that named it (gone now; `latest` moved when it was one of them).
    pub aliases_dropped: Vec<String>,
    /// The new `latest`, if any version is left.
    pub latest: Option<u64>,
    /// True when it was the last version and the artifact's folder went too.
    pub artifact_removed: bool,
}

/// Removes `name:v<N>` (of `kind` when given) under `root`.
pub fn remove_version(
    root: &Path,
    reference: &str,
    kind: Option<&str>,
) -> Result<RemovedVersion, StoreError> {
    let (name, which) = writer::split_reference(reference);
    let Some(version) = layout::parse_version_dir(which).filter(|_| reference.contains(':')) else {
        return Err(StoreError::Invalid(format!(
            "{reference:?}: give the version to delete as NAME:vN (an alias or latest may move, so it is not accepted)"
        )));
    };
    let candidates: Vec<(String, String)> = crate::listing::artifact_dirs(root)
        .into_iter()
        .filter(|(k, n)| n == name && kind.is_none_or(|want| want == k))
        .collect();
    let kind = match candidates.as_slice() {
        [] => {
            return Err(StoreError::NotFound(format!(
                "no artifact {name:?}{} under {}",
                kind.map(|k| format!(" of type {k}")).unwrap_or_default(),
                layout::artifacts_dir(root).display()
            )))
        }
        [(k, _)] => k.clone(),
        many => {
            let kinds: Vec<&str> = many.iter().map(|(k, _)| k.as_str()).collect();
            return Err(StoreError::Invalid(format!(
                "artifact {name:?} exists with several types ({}): give --type",
                kinds.join(", ")
            )));
        }
    };
    let dir = layout::artifact_dir(root, &kind, name);
    let _lock = locks::artifact_exclusive(&dir)?;
    let index_path = dir.join(VERSIONS_FILE);
    let mut index: VersionIndex = match read_json_in(&index_path, root) {
        Ok(index) => index,
        Err(error) if error.is_not_found() => VersionIndex {
            name: name.to_owned(),
            kind: kind.clone(),
            ..VersionIndex::default()
        },
        Err(error) => {
            return Err(StoreError::Damaged(format!(
                "{error}; fix versions.json before deleting versions of {kind}/{name}"
            )))
        }
    };
    let vdir = dir.join(layout::version_dir_name(version));
    let listed = index.versions.iter().any(|v| v.version == version);
    if !listed && !vdir.is_dir() {
        let known: Vec<String> = index
            .versions
            .iter()
            .map(|v| format!("v{}", v.version))
            .collect();
        return Err(StoreError::NotFound(format!(
            "artifact {kind}/{name} has no version v{version} (it has {})",
            if known.is_empty() {
                "none".to_owned()
            } else {
                known.join(", ")
            }
        )));
    }
    // Aside first: a half-deleted version folder must never look like a version to gc.
    let aside = dir.join(format!(
        ".removed-v{version}-{}-{:08x}",
        std::process::id(),
        fastrand::u32(..)
    ));
    if vdir.is_dir() {
        fs::rename(&vdir, &aside).at(&vdir)?;
    }
    index.versions.retain(|v| v.version != version);
    let mut aliases_dropped: Vec<String> = index
        .aliases
        .iter()
        .filter(|(_, v)| **v == version)
        .map(|(a, _)| a.clone())
        .collect();
    aliases_dropped.retain(|a| a != "latest");
    index.aliases.retain(|_, v| *v != version);
    let latest = index.versions.iter().map(|v| v.version).max();
    match latest {
        Some(latest) => {
            index.aliases.insert("latest".to_owned(), latest);
        }
        None => {
            index.aliases.remove("latest");
        }
    }
    let others_on_disk = fs::read_dir(&dir)
        .at(&dir)?
        .filter_map(Result::ok)
        .any(|e| {
            e.file_name()
                .to_str()
                .and_then(layout::parse_version_dir)
                .is_some()
        });
    let artifact_removed = latest.is_none() && !others_on_disk;
    if !artifact_removed {
        write_json_atomic(&index_path, &index).at(&index_path)?;
    }
    if aside.exists() {
        make_writable(&aside);
        fs::remove_dir_all(&aside).at(&aside)?;
    }
    if artifact_removed {
        fs::remove_dir_all(&dir).at(&dir)?;
        // The type folder goes too when it is empty now (fails harmlessly otherwise).
        if let Some(type_dir) = dir.parent() {
            let _ = fs::remove_dir(type_dir);
        }
    }
    Ok(RemovedVersion {
        kind,
        name: name.to_owned(),
        version,
        aliases_dropped,
        latest,
        artifact_removed,
    })
}

/// Folders made writable so their entries can be removed (files may be read-only links).
fn make_writable(dir: &Path) {
    use std::os::unix::fs::PermissionsExt;
    let mut pending = vec![dir.to_owned()];
    while let Some(d) = pending.pop() {
        let _ = fs::set_permissions(&d, fs::Permissions::from_mode(0o755));
        if let Ok(entries) = fs::read_dir(&d) {
            for entry in entries.filter_map(Result::ok) {
                if entry.file_type().map(|t| t.is_dir()).unwrap_or(false) {
                    pending.push(entry.path());
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{write_version, Fixture};

    #[test]
    fn removing_versions_moves_aliases_and_latest() {
        let fx = Fixture::new();
        let root = fx.root();
        for v in 1..=3 {
            write_version(root, "model", "m", v, &[("w", format!("v{v}").as_bytes())]);
        }
        let path = root.join("artifacts/model/m/versions.json");
        let mut index: VersionIndex = serde_json::from_slice(&fs::read(&path).unwrap()).unwrap();
        index.aliases.insert("best".to_owned(), 3);
        index.aliases.insert("old".to_owned(), 1);
        fs::write(&path, serde_json::to_vec(&index).unwrap()).unwrap();

        let removed = remove_version(root, "m:v3", None).unwrap();
        assert_eq!(removed.aliases_dropped, vec!["best".to_owned()]);
        assert_eq!(removed.latest, Some(2));
        assert!(!root.join("artifacts/model/m/v3").exists());
        let change = crate::listing::read_artifact(root, "model", "m");
        assert_eq!(change.versions.len(), 2);
        assert_eq!(change.aliases.get("latest"), Some(&2));
        assert_eq!(change.aliases.get("best"), None);
        // The pool keeps v3's bytes until gc.
        assert_eq!(
            crate::versions_scan::fanout_files(&layout::pool_dir(root)).len(),
            3
        );

        assert!(remove_version(root, "m:v3", None)
            .unwrap_err()
            .to_string()
            .contains("has no version v3 (it has v1, v2)"));
        assert!(remove_version(root, "m:latest", None).is_err());
        assert!(remove_version(root, "nope:v1", None).is_err());
        remove_version(root, "m:v1", Some("model")).unwrap();
        let last = remove_version(root, "m:v2", None).unwrap();
        assert!(last.artifact_removed);
        assert!(!root.join("artifacts/model").exists());
    }
}
