//! Test helpers: a temporary storage root and versions written by hand the way the Python SDK
//! writes them (whole pool files, hard links, `versions.json`), independent of the Rust writer.

use std::fs;
use std::path::Path;

use runicorn_protocol::run_format::artifacts::{
    ManifestFile, RunLink, VersionEntry, VersionIndex, VersionManifest, VersionMetadata,
};
use runicorn_protocol::run_format::json_file::write_json_atomic;

use crate::chunking::sha256_hex;
use crate::layout;

pub struct Fixture {
    dir: tempfile::TempDir,
}

impl Fixture {
    pub fn new() -> Self {
        Fixture {
            dir: tempfile::tempdir().unwrap(),
        }
    }

    pub fn root(&self) -> &Path {
        self.dir.path()
    }
}

/// Writes version `version` of `kind/name` with `files`; returns their SHA-256s in order.
pub fn write_version(
    root: &Path,
    kind: &str,
    name: &str,
    version: u64,
    files: &[(&str, &[u8])],
) -> Vec<String> {
    let dir = layout::artifact_dir(root, kind, name);
    let vdir = dir.join(layout::version_dir_name(version));
    let mut manifest = VersionManifest::default();
    let mut shas = Vec::new();
    for (path, bytes) in files {
        let sha = sha256_hex(bytes);
        let pooled = layout::pool_file(root, &sha);
        fs::create_dir_all(pooled.parent().unwrap()).unwrap();
        if !pooled.exists() {
            fs::write(&pooled, bytes).unwrap();
        }
        let linked = vdir.join("files").join(path);
        fs::create_dir_all(linked.parent().unwrap()).unwrap();
        fs::hard_link(&pooled, &linked).unwrap();
        manifest.files.push(ManifestFile {
            path: (*path).to_owned(),
            size: bytes.len() as u64,
            sha256: sha.clone(),
        });
        shas.push(sha);
    }
    fs::create_dir_all(&vdir).unwrap();
    write_json_atomic(&vdir.join("manifest.json"), &manifest).unwrap();
    let run = RunLink {
        run_id: format!("run{version}"),
        dir: format!("runs/p/run{version}"),
        host: Some("gpu1".to_owned()),
    };
    write_json_atomic(
        &vdir.join("metadata.json"),
        &VersionMetadata {
            name: name.to_owned(),
            kind: kind.to_owned(),
            version,
            description: Some(format!("version {version}")),
            metadata: serde_json::json!({"epoch": version}),
            created_at: Some(1000.0 + version as f64),
            produced_by: Some(run.clone()),
            ..VersionMetadata::default()
        },
    )
    .unwrap();
    let index_path = dir.join("versions.json");
    let mut index: VersionIndex = fs::read(&index_path)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or_else(|| VersionIndex {
            name: name.to_owned(),
            kind: kind.to_owned(),
            ..VersionIndex::default()
        });
    index.versions.push(VersionEntry {
        version,
        created_at: Some(1000.0 + version as f64),
        size: files.iter().map(|(_, b)| b.len() as u64).sum(),
        files: files.len() as u64,
        produced_by: Some(run),
        ..VersionEntry::default()
    });
    index.aliases.insert("latest".to_owned(), version);
    write_json_atomic(&index_path, &index).unwrap();
    shas
}
