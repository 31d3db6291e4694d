//! `--with-artifacts`: the artifact versions the selected runs produced or used (their
//! `artifacts.json`), as root-relative files for the bundle: each version's directory, the
//! artifact's `versions.json` cut down to the versions carried (aliases naming others dropped,
//! `latest` the newest carried), and the pool's whole files, recipes and chunks its manifest
//! names (`docs/run-format.md`, "Artifacts"). A root read back from the bundle lists exactly
//! those versions, every file readable.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::Path;

use runicorn_artifact_store::layout;
use runicorn_bundle::{ArtifactVersionRef, GeneratedFile};
use runicorn_protocol::run_format::artifacts::{
    ChunkRecipe, RunArtifacts, VersionIndex, VersionManifest, MANIFEST_FILE, RUN_ARTIFACTS_FILE,
    VERSIONS_FILE,
};
use runicorn_protocol::run_format::json_file::{read_json_in, read_json_in_if_exists};

use super::selection::Selected;

/// What `--with-artifacts` adds to a bundle.
#[derive(Debug, Default)]
pub struct ArtifactFiles {
    pub versions: Vec<ArtifactVersionRef>,
    /// Root-relative files, sorted, each once.
    pub paths: Vec<String>,
    /// Each artifact's `versions.json`, cut down to the versions carried (source 0).
    pub indexes: Vec<GeneratedFile>,
    /// What could not be carried, for warnings (the export goes on without it).
    pub problems: Vec<String>,
}

/// Collects the artifact files of `runs` under `root`.
pub fn collect(root: &Path, runs: &[Selected]) -> ArtifactFiles {
    let mut out = ArtifactFiles::default();
    // (type, name) -> versions
    let mut wanted: BTreeMap<(String, String), BTreeSet<u64>> = BTreeMap::new();
    for run in runs {
        let file = native(root, &run.dir).join(RUN_ARTIFACTS_FILE);
        match read_json_in_if_exists::<RunArtifacts>(&file, root) {
            Ok(Some(record)) => {
                for version in record.produced.iter().chain(&record.used) {
                    if !layout::is_valid_name(&version.kind)
                        || !layout::is_valid_name(&version.name)
                    {
                        out.problems.push(format!(
                            "{}/{RUN_ARTIFACTS_FILE} names an artifact with an invalid type or name ({:?}, {:?}); skipped",
                            run.dir, version.kind, version.name
                        ));
                        continue;
                    }
                    wanted
                        .entry((version.kind.clone(), version.name.clone()))
                        .or_default()
                        .insert(version.version);
                }
            }
            Ok(None) => {}
            Err(err) => out
                .problems
                .push(format!("{err}; its artifacts are not carried")),
        }
    }
    let mut paths = BTreeSet::new();
    let mut contents = BTreeSet::new();
    for ((kind, name), versions) in wanted {
        let dir_rel = layout::artifact_rel(&kind, &name);
        let versions_rel = format!("{dir_rel}/{VERSIONS_FILE}");
        let index = match read_json_in::<VersionIndex>(&native(root, &versions_rel), root) {
            Ok(index) => index,
            Err(err) => {
                out.problems
                    .push(format!("{err}; artifact {kind}/{name} is not carried"));
                continue;
            }
        };
        let mut carried = BTreeSet::new();
        for version in versions {
            let version_rel = format!("{dir_rel}/{}", layout::version_dir_name(version));
            let version_dir = native(root, &version_rel);
            let manifest =
                match read_json_in::<VersionManifest>(&version_dir.join(MANIFEST_FILE), root) {
                    Ok(manifest) => manifest,
                    Err(err) => {
                        out.problems.push(format!(
                            "{name}:v{version} ({version_rel}) is not carried: {err}"
                        ));
                        continue;
                    }
                };
            if let Err(err) = files_below(&version_dir, &version_rel, &mut paths) {
                out.problems.push(format!(
                    "{name}:v{version} ({version_rel}) is not carried: {err}"
                ));
                continue;
            }
            contents.extend(manifest.files.into_iter().map(|f| f.sha256));
            out.versions.push(ArtifactVersionRef {
                dir: dir_rel.clone(),
                version,
            });
            carried.insert(version);
        }
        if !carried.is_empty() {
            match serde_json::to_vec_pretty(&cut_down(index, &carried)) {
                Ok(bytes) => out.indexes.push(GeneratedFile {
                    source: 0,
                    path: versions_rel,
                    bytes,
                }),
                Err(err) => out.problems.push(format!("{versions_rel}: {err}")),
            }
        }
    }
    for sha in contents {
        add_content(root, &sha, &mut paths, &mut out.problems);
    }
    out.paths = paths.into_iter().collect();
    out
}

/// `index` with only the `carried` versions: aliases naming another version dropped, `latest`
/// naming the newest carried one.
fn cut_down(mut index: VersionIndex, carried: &BTreeSet<u64>) -> VersionIndex {
    index.versions.retain(|v| carried.contains(&v.version));
    index.aliases.retain(|_, v| carried.contains(v));
    if let Some(newest) = carried.last() {
        index.aliases.insert("latest".to_owned(), *newest);
    }
    index
}

/// Adds the pool files holding content `sha`: its whole file and its recipe with the chunks
/// it names, whichever exist.
fn add_content(root: &Path, sha: &str, paths: &mut BTreeSet<String>, problems: &mut Vec<String>) {
    if !runicorn_protocol::run_format::artifacts::is_sha256_hex(sha) {
        problems.push(format!(
            "a manifest names content {sha:?}, not a SHA-256; skipped"
        ));
        return;
    }
    let whole = layout::pool_rel(sha);
    let has_whole = native(root, &whole).is_file();
    if has_whole {
        paths.insert(whole);
    }
    let recipe_rel = layout::recipe_rel(sha);
    match read_json_in_if_exists::<ChunkRecipe>(&native(root, &recipe_rel), root) {
        Ok(Some(recipe)) => {
            paths.insert(recipe_rel);
            for chunk in recipe.chunks {
                if runicorn_protocol::run_format::artifacts::is_sha256_hex(&chunk.sha256) {
                    paths.insert(layout::chunk_rel(&chunk.sha256));
                }
            }
        }
        Ok(None) if has_whole => {}
        Ok(None) => problems.push(format!(
            "content {sha} is neither whole nor chunked in the pool; the versions holding it will not read back"
        )),
        Err(err) if has_whole => problems.push(format!("{err}; the whole file is carried")),
        Err(err) => problems.push(format!("{err}; content {sha} is not carried")),
    }
}

/// Every regular file below `dir` (root-relative `rel`), not following links.
fn files_below(dir: &Path, rel: &str, out: &mut BTreeSet<String>) -> std::io::Result<()> {
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        let Some(name) = entry.file_name().to_str().map(str::to_owned) else {
            continue;
        };
        let kind = entry.file_type()?;
        let child = format!("{rel}/{name}");
        if kind.is_dir() {
            files_below(&entry.path(), &child, out)?;
        } else if kind.is_file() {
            out.insert(child);
        }
    }
    Ok(())
}

/// `rel` (`/`-separated) below `root`.
fn native(root: &Path, rel: &str) -> std::path::PathBuf {
    rel.split('/').fold(root.to_path_buf(), |p, c| p.join(c))
}

#[cfg(test)]
mod tests {
    use super::*;
    use runicorn_protocol::run_format::artifacts::VersionEntry;

    #[test]
    fn the_index_keeps_only_carried_versions() {
        let index = VersionIndex {
            name: "m".into(),
            kind: "model".into(),
            versions: (1..=3)
                .map(|version| VersionEntry {
                    version,
                    ..VersionEntry::default()
                })
                .collect(),
            aliases: [
                ("latest".to_owned(), 3),
                ("best".to_owned(), 2),
                ("old".to_owned(), 1),
            ]
            .into(),
            ..VersionIndex::default()
        };
        let cut = cut_down(index, &BTreeSet::from([1, 2]));
        assert_eq!(
            cut.versions.iter().map(|v| v.version).collect::<Vec<_>>(),
            [1, 2]
        );
        assert_eq!(
            cut.aliases,
            [
                ("best".to_owned(), 2),
                ("latest".to_owned(), 2),
                ("old".to_owned(), 1)
            ]
            .into()
        );
    }
}
