//! `--with-artifacts` for the hub's exports: the artifact versions the exported runs produced or
//! used, written again from the store's rows into the source's temporary root in the layout an
//! agent reads (`docs/run-format.md`, "Artifacts"), so an import lists them exactly as a sync
//! of the server would:
//!
//! - `artifacts/<type>/<name>/versions.json`, cut down to the versions carried (aliases naming
//!   other versions dropped, `latest` the newest carried);
//! - `v<N>/manifest.json` (files and references) and `v<N>/metadata.json` of each version;
//! - the pool: each content the hub's cache holds (a whole file hard-linked, or its chunks put
//!   together) at `artifacts/.pool/<sha[:2]>/<sha>`, with `v<N>/files/<path>` linking to it as
//!   the agent's writer does (the bundle stores each content once); a content the cache lacks,
//!   or every content with `metadata_only`, is listed by size and SHA-256 without its bytes.
//!
//! A version of another remote (a run of this remote used it across hosts) is not this root's
//! to carry: it is reported as skipped.

use std::collections::{BTreeMap, BTreeSet};
use std::fs::{self, File};
use std::io::{self, BufWriter, Write};
use std::path::Path;

use runicorn_artifact_store::layout;
use runicorn_bundle::{ArtifactVersionRef, OmittedFile};
use runicorn_protocol::run_format::artifacts::{
    ManifestFile, Reference, RunArtifacts, RunLink, VersionEntry, VersionIndex, VersionManifest,
    VersionMetadata, VersionRef as RunVersionRef, MANIFEST_FILE, METADATA_FILE, VERSIONS_FILE,
    VERSION_FILES_DIR,
};
use runicorn_store::{
    ArtifactId, ArtifactRow, ArtifactVersionRow, CachedLayout, ContentReader, FileCache,
    RunLinkRow, RunRow, Store, VersionRef,
};
use serde_json::Value;

use super::{checked_relative, link_or_copy, make_dir, write_file, CachedCopy, ExportError};

/// What the artifacts of one source added to its temporary root.
#[derive(Debug, Default)]
pub(super) struct ArtifactsWritten {
    pub versions: Vec<ArtifactVersionRef>,
    /// Root-relative files written, for the writer's `extra_paths`.
    pub paths: Vec<String>,
    /// Contents listed without their bytes.
    pub omitted: Vec<OmittedFile>,
    /// Contents carried from the cache, to check against the manifest once written.
    pub from_cache: Vec<CachedCopy>,
    /// Versions not carried (root-relative name), and why.
    pub skipped: Vec<(String, String)>,
}

/// Writes the artifact versions that `rows` (runs of remote `remote`, source `source`)
/// produced or used into `root`.
pub(super) fn write_artifacts(
    store: &Store,
    cache: &FileCache,
    root: &Path,
    source: usize,
    remote: &str,
    rows: &[RunRow],
    metadata_only: bool,
) -> Result<ArtifactsWritten, ExportError> {
    let mut out = ArtifactsWritten::default();
    let mut wanted: BTreeMap<ArtifactId, BTreeSet<u32>> = BTreeMap::new();
    for row in rows {
        let linked = store.run_artifacts(row.key)?;
        for v in linked.produced.iter().chain(&linked.used) {
            if v.remote == remote {
                wanted.entry(v.artifact).or_default().insert(v.version);
            } else {
                out.skipped.push((
                    format!("{}/{}:v{}", v.kind, v.name, v.version),
                    format!(
                        "run {remote}/{} names this version of remote {}; export a run of {} \
                         that produced or used it to carry it",
                        row.dir, v.remote, v.remote
                    ),
                ));
            }
        }
    }
    // Each content once per root, whichever versions share it.
    let mut contents: BTreeMap<String, (u64, String)> = BTreeMap::new();
    for (id, versions) in wanted {
        let Some(artifact) = store.artifact(id)? else {
            continue; // removed meanwhile: the snapshot makes this unreachable in practice
        };
        if !layout::is_valid_name(&artifact.kind) || !layout::is_valid_name(&artifact.name) {
            out.skipped.push((
                artifact.dir.clone(),
                "its type or name cannot be a folder name; it is not carried".to_owned(),
            ));
            continue;
        }
        let dir_rel = layout::artifact_rel(&artifact.kind, &artifact.name);
        let owner = format!("artifact {remote} {}/{}", artifact.kind, artifact.name);
        let mut entries = Vec::new();
        for row in artifact
            .versions
            .iter()
            .filter(|v| versions.contains(&v.version))
        {
            let files = store.artifact_version_files(id, row.version, u64::MAX)?;
            let version_rel = format!("{dir_rel}/{}", layout::version_dir_name(row.version.into()));
            write_version(root, &artifact, row, &files, &version_rel, &mut out)?;
            for f in &files {
                contents
                    .entry(f.sha256.clone())
                    .or_insert_with(|| (f.size, owner.clone()));
            }
            out.versions.push(ArtifactVersionRef {
                dir: dir_rel.clone(),
                version: row.version.into(),
            });
            entries.push(version_entry(row));
        }
        if entries.is_empty() {
            continue;
        }
        entries.sort_by_key(|e| e.version);
        let index = cut_down_index(&artifact, entries);
        let versions_rel = format!("{dir_rel}/{VERSIONS_FILE}");
        write_json(root, &versions_rel, &index, &mut out)?;
    }
    for (sha, (size, owner)) in contents {
        let pool_rel = layout::pool_rel(&sha);
        let held = if metadata_only {
            None
        } else if size == 0 {
            Some(None) // the empty content: nothing to hold
        } else {
            store.cached_layout(&sha)?.map(Some)
        };
        match held {
            Some(held) => {
                write_content(cache, root, &pool_rel, held.as_ref(), size, &sha)?;
                out.paths.push(pool_rel.clone());
                out.from_cache.push(CachedCopy {
                    source,
                    root_rel: pool_rel.clone(),
                    path: pool_rel,
                    sha256: sha,
                    owner,
                });
            }
            None => out.omitted.push(OmittedFile {
                path: pool_rel,
                size,
                sha256: sha,
            }),
        }
    }
    link_version_files(root, &mut out)?;
    out.paths.sort();
    out.paths.dedup();
    Ok(out)
}

/// A run's `artifacts.json` as the store's rows of remote `remote` name it (what the run
/// produced and used), for a run whose file the cache does not hold.
pub(super) fn run_artifacts_json(
    store: &Store,
    remote: &str,
    row: &RunRow,
) -> Result<Vec<u8>, ExportError> {
    let linked = store.run_artifacts(row.key)?;
    let refs = |list: &[VersionRef]| -> Vec<RunVersionRef> {
        list.iter()
            .filter(|v| v.remote == remote)
            .map(|v| RunVersionRef {
                name: v.name.clone(),
                kind: v.kind.clone(),
                version: v.version.into(),
            })
            .collect()
    };
    let record = RunArtifacts {
        produced: refs(&linked.produced),
        used: refs(&linked.used),
        extra: Default::default(),
    };
    Ok(pretty(&record))
}

/// `v<N>/manifest.json` and `v<N>/metadata.json` of one version.
fn write_version(
    root: &Path,
    artifact: &ArtifactRow,
    row: &ArtifactVersionRow,
    files: &[runicorn_store::ArtifactFileRow],
    version_rel: &str,
    out: &mut ArtifactsWritten,
) -> Result<(), ExportError> {
    let manifest = VersionManifest {
        files: files
            .iter()
            .map(|f| ManifestFile {
                path: f.path.clone(),
                size: f.size,
                sha256: f.sha256.clone(),
            })
            .collect(),
        // References were stored as the agent sent them; a row the store could not keep as a
        // list carries none.
        references: serde_json::from_value::<Vec<Reference>>(row.references.clone())
            .unwrap_or_default(),
        extra: Default::default(),
    };
    write_json(
        root,
        &format!("{version_rel}/{MANIFEST_FILE}"),
        &manifest,
        out,
    )?;
    let metadata = VersionMetadata {
        name: artifact.name.clone(),
        kind: artifact.kind.clone(),
        version: row.version.into(),
        description: row.description.clone(),
        metadata: row
            .metadata
            .clone()
            .unwrap_or_else(|| Value::Object(Default::default())),
        created_at: row.created_at,
        produced_by: row.produced_by.as_ref().map(run_link),
        extra: Default::default(),
    };
    write_json(
        root,
        &format!("{version_rel}/{METADATA_FILE}"),
        &metadata,
        out,
    )
}

/// Links `v<N>/files/<path>` to each carried pool file, as the agent's writer does.
fn link_version_files(root: &Path, out: &mut ArtifactsWritten) -> Result<(), ExportError> {
    let carried: BTreeSet<&str> = out.from_cache.iter().map(|c| c.sha256.as_str()).collect();
    let mut links = Vec::new();
    for version in &out.versions {
        let version_rel = format!(
            "{}/{}",
            version.dir,
            layout::version_dir_name(version.version)
        );
        let manifest_path = root.join(&version_rel).join(MANIFEST_FILE);
        let Ok(text) = fs::read(&manifest_path) else {
            continue;
        };
        let Ok(manifest) = serde_json::from_slice::<VersionManifest>(&text) else {
            continue;
        };
        for file in manifest
            .files
            .iter()
            .filter(|f| carried.contains(f.sha256.as_str()))
        {
            // A path that cannot be a plain relative one gets no link (the pool holds it).
            if checked_relative(&file.path).is_none() {
                continue;
            }
            let rel = format!("{version_rel}/{VERSION_FILES_DIR}/{}", file.path);
            let target = root.join(&rel);
            if let Some(parent) = target.parent() {
                make_dir(parent)?;
            }
            link_or_copy(&root.join(layout::pool_rel(&file.sha256)), &target)?;
            links.push(rel);
        }
    }
    out.paths.extend(links);
    Ok(())
}

/// Writes the content `sha` as the cache holds it (`None`: the empty content) to `root/rel`.
fn write_content(
    cache: &FileCache,
    root: &Path,
    rel: &str,
    held: Option<&CachedLayout>,
    size: u64,
    sha: &str,
) -> Result<(), ExportError> {
    let target = root.join(rel);
    if let Some(parent) = target.parent() {
        make_dir(parent)?;
    }
    let temp = |source| ExportError::Temp {
        path: target.clone(),
        source,
    };
    let Some(held) = held else {
        return write_file(&target, b"");
    };
    match held {
        CachedLayout::Whole(path) => {
            // Looked up again: the layout may name a file a clean-up removed since.
            let path = cache.path_of(sha).unwrap_or_else(|| path.clone());
            link_or_copy(&path, &target)
        }
        CachedLayout::Chunks(_) => {
            let mut reader = ContentReader::open_held(held, size, sha).map_err(temp)?;
            let mut file = BufWriter::new(File::create(&target).map_err(temp)?);
            io::copy(&mut reader, &mut file).map_err(temp)?;
            file.flush().map_err(temp)
        }
    }
}

fn version_entry(row: &ArtifactVersionRow) -> VersionEntry {
    VersionEntry {
        version: row.version.into(),
        created_at: row.created_at,
        size: row.size,
        files: row.file_count,
        produced_by: row.produced_by.as_ref().map(run_link),
        used_by: row.used_by.iter().map(run_link).collect(),
        extra: Default::default(),
    }
}

/// The artifact's index with only `entries` (sorted), its aliases naming them, and `latest` the
/// newest of them.
fn cut_down_index(artifact: &ArtifactRow, entries: Vec<VersionEntry>) -> VersionIndex {
    let carried: BTreeSet<u64> = entries.iter().map(|e| e.version).collect();
    let mut aliases: BTreeMap<String, u64> = BTreeMap::new();
    for row in &artifact.versions {
        let version = u64::from(row.version);
        if carried.contains(&version) {
            for alias in row.aliases.iter().filter(|a| a.as_str() != "latest") {
                aliases.insert(alias.clone(), version);
            }
        }
    }
    if let Some(&newest) = carried.last() {
        aliases.insert("latest".to_owned(), newest);
    }
    VersionIndex {
        name: artifact.name.clone(),
        kind: artifact.kind.clone(),
        versions: entries,
        aliases,
        extra: Default::default(),
    }
}

fn run_link(link: &RunLinkRow) -> RunLink {
    RunLink {
        run_id: link.run_id.clone(),
        dir: link.dir.clone(),
        host: link.host.clone(),
    }
}

fn pretty(value: &impl serde::Serialize) -> Vec<u8> {
    // Serialising these plain structs (strings, numbers, JSON values) cannot fail.
    let mut bytes = serde_json::to_vec_pretty(value).unwrap_or_default();
    bytes.push(b'\n');
    bytes
}

fn write_json(
    root: &Path,
    rel: &str,
    value: &impl serde::Serialize,
    out: &mut ArtifactsWritten,
) -> Result<(), ExportError> {
    let path = root.join(rel);
    if let Some(parent) = path.parent() {
        make_dir(parent)?;
    }
    write_file(&path, &pretty(value))?;
    out.paths.push(rel.to_owned());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn version(v: u32, aliases: &[&str]) -> ArtifactVersionRow {
        ArtifactVersionRow {
            version: v,
            created_at: Some(f64::from(v)),
            description: None,
            metadata: None,
            size: 10,
            file_count: 1,
            aliases: aliases.iter().map(|a| (*a).to_owned()).collect(),
            references: Value::Array(Vec::new()),
            produced_by: None,
            used_by: Vec::new(),
        }
    }

    #[test]
    fn the_index_keeps_only_carried_versions_and_their_aliases() {
        let artifact = ArtifactRow {
            id: ArtifactId(1),
            remote: "gpu".into(),
            host: None,
            dir: "artifacts/model/resnet".into(),
            kind: "model".into(),
            name: "resnet".into(),
            problem: None,
            removed: false,
            versions: vec![
                version(3, &["latest", "prod"]),
                version(2, &["best"]),
                version(1, &["old"]),
            ],
            total_bytes: 30,
            stored_bytes: 30,
            server_bytes: None,
        };
        let entries = [1, 2].map(|v| version_entry(&version(v, &[]))).to_vec();
        let index = cut_down_index(&artifact, entries);
        assert_eq!(
            index.versions.iter().map(|e| e.version).collect::<Vec<_>>(),
            [1, 2]
        );
        let aliases: Vec<(&str, u64)> = index
            .aliases
            .iter()
            .map(|(a, v)| (a.as_str(), *v))
            .collect();
        // `prod` and the old `latest` named v3, which is not carried.
        assert_eq!(aliases, [("best", 2), ("latest", 2), ("old", 1)]);
    }
}
