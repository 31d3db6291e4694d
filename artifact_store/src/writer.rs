//! The Rust writer's artifact API, the Python SDK's call shapes: [`Artifact`] (`add_file`,
//! `add_dir`, `add_reference`), [`log_artifact`] (the next version, with aliases and the
//! producing run), [`use_artifact`] (`name:latest`, `name:v3`, `name:<alias>`, recording the
//! using run) returning a [`LoggedVersion`] with [`LoggedVersion::path`] and
//! [`LoggedVersion::download`], and each run's `artifacts.json`.
//!
//! Logging holds the pool lock shared from the first pooled byte until `versions.json` names
//! the version, so packing and gc never see a half-logged version.

use std::collections::BTreeMap;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use runicorn_protocol::run_format::artifacts::{
    ManifestFile, Reference, RunArtifacts, RunLink, VersionEntry, VersionIndex, VersionManifest,
    VersionMetadata, VersionRef, ARTIFACTS_DIR, MANIFEST_FILE, METADATA_FILE, POOL_DIR,
    RUN_ARTIFACTS_FILE, VERSIONS_FILE, VERSION_FILES_DIR,
};
use runicorn_protocol::run_format::json_file::{read_json_in, write_json_atomic};
use serde_json::{Map, Value};

use crate::error::{IoContext, StoreError};
use crate::{layout, locks, pool};

/// Files and references to be logged as the next version of `name`.
#[derive(Debug, Clone)]
pub struct Artifact {
    pub name: String,
    pub kind: String,
    pub description: Option<String>,
    pub metadata: Map<String, Value>,
    files: BTreeMap<String, PathBuf>,
    references: Vec<Reference>,
}

/// How [`log_artifact_with`] stores bytes.
#[derive(Debug, Clone, Default)]
pub struct LogOptions {
    /// Files of at least `CHUNKED_MIN_FILE_BYTES` go straight into the chunk store (a recipe,
    /// no whole copy and no `files/` link) instead of whole into the pool. Off by default:
    /// writing whole runs about three times faster (docs/PERFORMANCE.md, "Artifacts"), and the
    /// agent packs whole files into chunks later, as it does for the Python SDK's.
    pub chunk_large_files: bool,
}

fn check_name(what: &str, value: &str) -> Result<(), StoreError> {
    if layout::is_valid_name(value) {
        Ok(())
    } else {
        Err(StoreError::Invalid(format!(
            "artifact {what} {value:?}: use 1-128 letters, digits, '-', '_' or '.'"
        )))
    }
}

/// A file's path inside a version: relative, `/`-separated, without `.`, `..` or empty parts.
fn check_member(name: &str) -> Result<String, StoreError> {
    let joined = name.replace('\\', "/");
    let parts: Vec<&str> = joined.split('/').collect();
    if name.is_empty()
        || joined.starts_with('/')
        || parts.iter().any(|p| matches!(*p, "" | "." | ".."))
    {
        return Err(StoreError::Invalid(format!(
            "artifact file name {name:?} must be a relative path without '..'"
        )));
    }
    Ok(parts.join("/"))
}

impl Artifact {
    /// A new artifact; `kind` is its type (`model`, `dataset`, `code`, ...).
    pub fn new(name: &str, kind: &str) -> Result<Artifact, StoreError> {
        check_name("name", name)?;
        check_name("type", kind)?;
        Ok(Artifact {
            name: name.to_owned(),
            kind: kind.to_owned(),
            description: None,
            metadata: Map::new(),
            files: BTreeMap::new(),
            references: Vec::new(),
        })
    }

    pub fn with_description(mut self, description: &str) -> Artifact {
        self.description = Some(description.to_owned());
        self
    }

    pub fn with_metadata(mut self, metadata: Map<String, Value>) -> Artifact {
        self.metadata = metadata;
        self
    }

    /// Adds the file at `path`, named `name` inside the version (default: its file name).
    pub fn add_file(&mut self, path: &Path, name: Option<&str>) -> Result<&mut Self, StoreError> {
        if !path.is_file() {
            return Err(StoreError::NotFound(format!(
                "artifact {}: no file at {}",
                self.name,
                path.display()
            )));
        }
        let default = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let member = check_member(name.unwrap_or(&default))?;
        self.files.insert(member, path.to_owned());
        Ok(self)
    }

    /// Adds every file under `path` (under `name/` inside the version when given), except those
    /// whose relative path or file name matches a glob of `exclude` (`*`, `?`).
    pub fn add_dir(
        &mut self,
        path: &Path,
        name: Option<&str>,
        exclude: &[&str],
    ) -> Result<&mut Self, StoreError> {
        if !path.is_dir() {
            return Err(StoreError::NotFound(format!(
                "artifact {}: no directory at {}",
                self.name,
                path.display()
            )));
        }
        let prefix = name
            .map(|n| format!("{}/", n.trim_matches('/')))
            .unwrap_or_default();
        let mut pending = vec![path.to_owned()];
        while let Some(dir) = pending.pop() {
            let mut entries: Vec<_> = fs::read_dir(&dir)
                .at(&dir)?
                .filter_map(Result::ok)
                .collect();
            entries.sort_by_key(|e| e.file_name());
            for entry in entries {
                let full = entry.path();
                let file_type = entry.file_type().at(&full)?;
                if file_type.is_dir() {
                    pending.push(full);
                    continue;
                }
                let rel = full
                    .strip_prefix(path)
                    .unwrap_or(&full)
                    .to_string_lossy()
                    .replace('\\', "/");
                let file_name = entry.file_name().to_string_lossy().into_owned();
                if exclude
                    .iter()
                    .any(|p| glob_match(p, &rel) || glob_match(p, &file_name))
                {
                    continue;
                }
                if full.is_file() {
                    let member = check_member(&format!("{prefix}{rel}"))?;
                    self.files.insert(member, full);
                }
            }
        }
        Ok(self)
    }

    /// Adds a reference to bytes the store does not hold (`s3://...`, a share).
    pub fn add_reference(
        &mut self,
        uri: &str,
        checksum: Option<&str>,
        size: Option<u64>,
    ) -> &mut Self {
        self.references.push(Reference {
            uri: uri.to_owned(),
            checksum: checksum.map(str::to_owned),
            size,
        });
        self
    }

    /// The files to log: path inside the version → source.
    pub fn files(&self) -> &BTreeMap<String, PathBuf> {
        &self.files
    }
}

/// `*` (any run of characters, `/` included, like Python's fnmatch) and `?` (one character).
fn glob_match(pattern: &str, text: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let t: Vec<char> = text.chars().collect();
    let (mut pi, mut ti) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == t[ti]) {
            pi += 1;
            ti += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some((pi, ti));
            pi += 1;
        } else if let Some((sp, st)) = star {
            pi = sp + 1;
            ti = st + 1;
            star = Some((sp, st + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|c| *c == '*')
}

/// One logged version, read-only.
#[derive(Debug, Clone)]
pub struct LoggedVersion {
    pub root: PathBuf,
    /// `<root>/artifacts/<type>/<name>/v<N>`.
    pub dir: PathBuf,
    pub name: String,
    pub kind: String,
    pub version: u64,
    pub manifest: VersionManifest,
}

impl LoggedVersion {
    /// `name:v<N>`.
    pub fn reference(&self) -> String {
        format!("{}:v{}", self.name, self.version)
    }

    /// The paths of its files inside the version.
    pub fn files(&self) -> Vec<&str> {
        self.manifest
            .files
            .iter()
            .map(|f| f.path.as_str())
            .collect()
    }

    fn entry(&self, name: &str) -> Result<&ManifestFile, StoreError> {
        let member = check_member(name)?;
        self.manifest
            .files
            .iter()
            .find(|f| f.path == member)
            .ok_or_else(|| {
                StoreError::NotFound(format!(
                    "{} has no file {name:?} (it has {})",
                    self.reference(),
                    self.files().join(", ")
                ))
            })
    }

    /// Where the file `name` of this version is on disk: its link in `files/`, or, for a
    /// content kept as chunks, a checked copy in the cache (see [`cache_dir`]), made once.
    pub fn path(&self, name: &str) -> Result<PathBuf, StoreError> {
        self.path_with_cache(name, &cache_dir())
    }

    /// [`path`](Self::path) with the cache at `cache`.
    pub fn path_with_cache(&self, name: &str, cache: &Path) -> Result<PathBuf, StoreError> {
        let entry = self.entry(name)?;
        let linked = self.dir.join(VERSION_FILES_DIR).join(&entry.path);
        if linked.is_file() {
            return Ok(linked);
        }
        let cached = cache.join(runicorn_protocol::run_format::artifacts::fanout_path(
            &entry.sha256,
        ));
        if cached.is_file() {
            return Ok(cached);
        }
        pool::materialise(&self.root, &entry.sha256, &cached)?;
        Ok(cached)
    }

    /// Copies every file of the version under `target` (each checked against its SHA-256);
    /// returns `target`.
    pub fn download(&self, target: &Path) -> Result<PathBuf, StoreError> {
        for entry in &self.manifest.files {
            let dest = target.join(&entry.path);
            pool::materialise(&self.root, &entry.sha256, &dest).map_err(|error| match error {
                StoreError::NotFound(message) | StoreError::Damaged(message) => {
                    StoreError::Damaged(format!("{} {}: {message}", self.reference(), entry.path))
                }
                other => other,
            })?;
        }
        Ok(target.to_owned())
    }
}

/// Where `path()` keeps checked copies of chunked contents: `$RUNICORN_CACHE_DIR`, else
/// `$XDG_CACHE_HOME/runicorn/artifacts`, else `~/.cache/runicorn/artifacts`.
pub fn cache_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("RUNICORN_CACHE_DIR").filter(|d| !d.is_empty()) {
        return PathBuf::from(dir);
    }
    let base = std::env::var_os("XDG_CACHE_HOME")
        .filter(|d| !d.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
        .unwrap_or_else(std::env::temp_dir);
    base.join("runicorn").join("artifacts")
}

fn now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

/// Reads an artifact's index; absent is empty, damaged is an error (never rewritten blind).
fn read_index(root: &Path, dir: &Path, name: &str, kind: &str) -> Result<VersionIndex, StoreError> {
    let path = dir.join(VERSIONS_FILE);
    match read_json_in::<VersionIndex>(&path, root) {
        Ok(index) => Ok(index),
        Err(error) if error.is_not_found() => Ok(VersionIndex {
            name: name.to_owned(),
            kind: kind.to_owned(),
            ..VersionIndex::default()
        }),
        Err(error) => Err(StoreError::Damaged(format!(
            "{error}; artifact {kind}/{name} cannot take new versions until versions.json is fixed"
        ))),
    }
}

/// Claims the next free version number by creating `v<N>` (atomic, whatever host).
fn claim_version(dir: &Path, index: &VersionIndex) -> Result<u64, StoreError> {
    let known = index.versions.iter().map(|v| v.version).max().unwrap_or(0);
    let on_disk = fs::read_dir(dir)
        .at(dir)?
        .filter_map(Result::ok)
        .filter_map(|e| e.file_name().to_str().and_then(layout::parse_version_dir))
        .max()
        .unwrap_or(0);
    let mut number = known.max(on_disk) + 1;
    loop {
        let vdir = dir.join(layout::version_dir_name(number));
        match fs::create_dir(&vdir) {
            Ok(()) => return Ok(number),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => number += 1,
            Err(e) => return Err(StoreError::io(&vdir, e)),
        }
    }
}

fn check_aliases(aliases: &[&str]) -> Result<(), StoreError> {
    for alias in aliases {
        check_name("alias", alias)?;
        if *alias == "latest" || layout::parse_version_dir(alias).is_some() {
            return Err(StoreError::Invalid(format!(
                "alias {alias:?}: 'latest' and 'v<N>' are given by the store; choose another"
            )));
        }
    }
    Ok(())
}

/// Logs `artifact` as its next version under `root` with `aliases`; `producing` is the run that
/// made it (its `artifacts.json` lists the version when its folder exists).
pub fn log_artifact(
    root: &Path,
    artifact: &Artifact,
    aliases: &[&str],
    producing: Option<RunLink>,
) -> Result<LoggedVersion, StoreError> {
    log_artifact_with(root, artifact, aliases, producing, &LogOptions::default())
}

/// [`log_artifact`] with [`LogOptions`].
pub fn log_artifact_with(
    root: &Path,
    artifact: &Artifact,
    aliases: &[&str],
    producing: Option<RunLink>,
    options: &LogOptions,
) -> Result<LoggedVersion, StoreError> {
    check_aliases(aliases)?;
    let dir = layout::artifact_dir(root, &artifact.kind, &artifact.name);
    fs::create_dir_all(&dir).at(&dir)?;
    let _pool_lock = locks::pool_shared(root)?;
    let mut files = Vec::with_capacity(artifact.files.len());
    for (member, source) in &artifact.files {
        let pooled = pool::put_file(root, source, options.chunk_large_files)?;
        files.push(ManifestFile {
            path: member.clone(),
            size: pooled.size,
            sha256: pooled.sha256,
        });
    }
    let _artifact_lock = locks::artifact_exclusive(&dir)?;
    let mut index = read_index(root, &dir, &artifact.name, &artifact.kind)?;
    let number = claim_version(&dir, &index)?;
    let vdir = dir.join(layout::version_dir_name(number));
    let result = (|| {
        for file in &files {
            let pooled = layout::pool_file(root, &file.sha256);
            if !pooled.is_file() {
                continue; // held as chunks: no link
            }
            let dest = vdir.join(VERSION_FILES_DIR).join(&file.path);
            if let Some(parent) = dest.parent() {
                fs::create_dir_all(parent).at(parent)?;
            }
            if fs::hard_link(&pooled, &dest).is_err() {
                fs::copy(&pooled, &dest).at(&dest)?;
            }
        }
        let manifest = VersionManifest {
            files: files.clone(),
            references: artifact.references.clone(),
            ..VersionManifest::default()
        };
        let created_at = now();
        write_json_atomic(&vdir.join(MANIFEST_FILE), &manifest).at(&vdir.join(MANIFEST_FILE))?;
        let metadata = VersionMetadata {
            name: artifact.name.clone(),
            kind: artifact.kind.clone(),
            version: number,
            description: artifact.description.clone(),
            metadata: Value::Object(artifact.metadata.clone()),
            created_at: Some(created_at),
            produced_by: producing.clone(),
            ..VersionMetadata::default()
        };
        write_json_atomic(&vdir.join(METADATA_FILE), &metadata).at(&vdir.join(METADATA_FILE))?;
        index.versions.push(VersionEntry {
            version: number,
            created_at: Some(created_at),
            size: files.iter().map(|f| f.size).sum(),
            files: files.len() as u64,
            produced_by: producing.clone(),
            ..VersionEntry::default()
        });
        index.versions.sort_by_key(|v| v.version);
        for alias in aliases {
            index.aliases.insert((*alias).to_owned(), number);
        }
        let latest = index
            .versions
            .iter()
            .map(|v| v.version)
            .max()
            .unwrap_or(number);
        index.aliases.insert("latest".to_owned(), latest);
        let path = dir.join(VERSIONS_FILE);
        write_json_atomic(&path, &index).at(&path)?;
        Ok(manifest)
    })();
    let manifest = match result {
        Ok(manifest) => manifest,
        Err(error) => {
            // Give the number back: a version folder without its manifest would stop gc.
            let _ = fs::remove_dir_all(&vdir);
            return Err(error);
        }
    };
    let version = LoggedVersion {
        root: root.to_owned(),
        dir: vdir,
        name: artifact.name.clone(),
        kind: artifact.kind.clone(),
        version: number,
        manifest,
    };
    if let Some(run) = &producing {
        record_in_run(root, run, RunRole::Produced, &version)?;
    }
    Ok(version)
}

/// Finds `artifacts/*/<name>` (of `kind` when given).
fn find_artifact(root: &Path, name: &str, kind: Option<&str>) -> Result<PathBuf, StoreError> {
    let base = layout::artifacts_dir(root);
    let mut found: Vec<String> = crate::listing::artifact_dirs(root)
        .into_iter()
        .filter(|(k, n)| n == name && kind.is_none_or(|want| want == k))
        .map(|(k, _)| k)
        .collect();
    found.sort();
    match found.as_slice() {
        [] => Err(StoreError::NotFound(format!(
            "no artifact {name:?}{} under {}",
            kind.map(|k| format!(" of type {k}")).unwrap_or_default(),
            base.display()
        ))),
        [one] => Ok(layout::artifact_dir(root, one, name)),
        many => Err(StoreError::Invalid(format!(
            "artifact {name:?} exists with several types ({}): give the type",
            many.join(", ")
        ))),
    }
}

/// Splits `name:ref` (no `:ref` means `latest`).
pub fn split_reference(reference: &str) -> (&str, &str) {
    match reference.split_once(':') {
        Some((name, which)) if !which.is_empty() => (name, which),
        Some((name, _)) => (name, "latest"),
        None => (reference, "latest"),
    }
}

/// The version number `which` (`v3`, `latest`, an alias) names in `index`.
pub fn resolve_version(index: &VersionIndex, which: &str) -> Result<u64, StoreError> {
    let number = match layout::parse_version_dir(which) {
        Some(n) => n,
        None => *index.aliases.get(which).ok_or_else(|| {
            let known: Vec<&str> = index.aliases.keys().map(String::as_str).collect();
            StoreError::NotFound(format!(
                "artifact {} has no version or alias {which:?} (aliases: {})",
                index.name,
                if known.is_empty() {
                    "none".to_owned()
                } else {
                    known.join(", ")
                }
            ))
        })?,
    };
    if index.versions.iter().any(|v| v.version == number) {
        Ok(number)
    } else {
        Err(StoreError::NotFound(format!(
            "artifact {} has no version v{number}",
            index.name
        )))
    }
}

/// Resolves `name:latest`, `name:v3` or `name:<alias>` (of `kind` when given) and records
/// `using` among the version's users (and in that run's `artifacts.json`).
pub fn use_artifact(
    root: &Path,
    reference: &str,
    kind: Option<&str>,
    using: Option<RunLink>,
) -> Result<LoggedVersion, StoreError> {
    let (name, which) = split_reference(reference);
    check_name("name", name)?;
    let dir = find_artifact(root, name, kind)?;
    let kind = dir
        .parent()
        .and_then(|p| p.file_name())
        .map(|k| k.to_string_lossy().into_owned())
        .unwrap_or_default();
    let number = {
        let _lock = locks::artifact_exclusive(&dir)?;
        let mut index = read_index(root, &dir, name, &kind)?;
        let number = resolve_version(&index, which)?;
        if let Some(run) = &using {
            if let Some(entry) = index.versions.iter_mut().find(|v| v.version == number) {
                if !entry.used_by.contains(run) {
                    entry.used_by.push(run.clone());
                    let path = dir.join(VERSIONS_FILE);
                    write_json_atomic(&path, &index).at(&path)?;
                }
            }
        }
        number
    };
    let vdir = dir.join(layout::version_dir_name(number));
    let manifest: VersionManifest = read_json_in(&vdir.join(MANIFEST_FILE), root)?;
    let version = LoggedVersion {
        root: root.to_owned(),
        dir: vdir,
        name: name.to_owned(),
        kind,
        version: number,
        manifest,
    };
    if let Some(run) = &using {
        record_in_run(root, run, RunRole::Used, &version)?;
    }
    Ok(version)
}

/// Which list of a run's `artifacts.json`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunRole {
    Produced,
    Used,
}

/// Adds `version` to the run's `artifacts.json` (when the run's folder exists under `root`).
pub fn record_in_run(
    root: &Path,
    run: &RunLink,
    role: RunRole,
    version: &LoggedVersion,
) -> Result<(), StoreError> {
    let run_dir = root.join(&run.dir);
    let escapes = Path::new(&run.dir)
        .components()
        .any(|c| !matches!(c, std::path::Component::Normal(_)));
    if escapes
        || !run_dir.is_dir()
        || run.dir.starts_with(ARTIFACTS_DIR)
        || run.dir.contains(POOL_DIR)
    {
        return Ok(());
    }
    let path = run_dir.join(RUN_ARTIFACTS_FILE);
    let mut record: RunArtifacts = match read_json_in(&path, root) {
        Ok(record) => record,
        Err(error) if error.is_not_found() => RunArtifacts::default(),
        Err(error) => return Err(error.into()),
    };
    let item = VersionRef {
        name: version.name.clone(),
        kind: version.kind.clone(),
        version: version.version,
    };
    let list = match role {
        RunRole::Produced => &mut record.produced,
        RunRole::Used => &mut record.used,
    };
    if !list.contains(&item) {
        list.push(item);
        write_json_atomic(&path, &record).at(&path)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::Fixture;

    fn run(id: &str) -> RunLink {
        RunLink {
            run_id: id.to_owned(),
            dir: format!("runs/p/{id}"),
            host: Some("gpu1".to_owned()),
        }
    }

    #[test]
    fn three_versions_aliases_lineage_and_downloads() {
        let fx = Fixture::new();
        let root = fx.root();
        fs::create_dir_all(root.join("runs/p/r1")).unwrap();
        fs::create_dir_all(root.join("runs/p/r2")).unwrap();
        let src = root.join("src");
        fs::create_dir_all(&src).unwrap();
        for i in 1..=3u8 {
            fs::write(src.join("model.bin"), vec![i; 1000]).unwrap();
            let mut art = Artifact::new("m", "model")
                .unwrap()
                .with_description("weights");
            art.add_file(&src.join("model.bin"), None).unwrap();
            art.add_reference("s3://bucket/x", None, Some(3));
            let aliases: &[&str] = if i == 2 { &["best"] } else { &[] };
            let logged = log_artifact(root, &art, aliases, Some(run("r1"))).unwrap();
            assert_eq!(logged.version, u64::from(i));
        }
        let v1 = use_artifact(root, "m:v1", None, Some(run("r2"))).unwrap();
        let out = root.join("out");
        v1.download(&out).unwrap();
        assert_eq!(fs::read(out.join("model.bin")).unwrap(), vec![1u8; 1000]);
        assert_eq!(use_artifact(root, "m", None, None).unwrap().version, 3);
        assert_eq!(
            use_artifact(root, "m:best", Some("model"), None)
                .unwrap()
                .version,
            2
        );
        assert!(use_artifact(root, "m:nope", None, None)
            .unwrap_err()
            .to_string()
            .contains("best"));
        let change = crate::listing::read_artifact(root, "model", "m");
        assert_eq!(change.aliases["latest"], 3);
        assert_eq!(change.versions[0].used_by, vec![run("r2")]);
        assert_eq!(change.versions[2].produced_by, Some(run("r1")));
        let produced: RunArtifacts =
            serde_json::from_slice(&fs::read(root.join("runs/p/r1/artifacts.json")).unwrap())
                .unwrap();
        assert_eq!(produced.produced.len(), 3);
        let used: RunArtifacts =
            serde_json::from_slice(&fs::read(root.join("runs/p/r2/artifacts.json")).unwrap())
                .unwrap();
        assert_eq!(used.used[0].version, 1);
        // Same bytes pooled once, linked from the version.
        assert!(v1
            .path("model.bin")
            .unwrap()
            .ends_with("v1/files/model.bin"));
    }

    #[test]
    fn large_files_go_to_chunks_and_path_materialises_them() {
        let fx = Fixture::new();
        let root = fx.root();
        let cache = tempfile::tempdir().unwrap();
        let mut rng = fastrand::Rng::with_seed(4);
        let data: Vec<u8> = (0..(5 << 20)).map(|_| rng.u8(..)).collect();
        let src = root.join("big.bin");
        fs::write(&src, &data).unwrap();
        let mut art = Artifact::new("big", "model").unwrap();
        art.add_file(&src, Some("w/big.bin")).unwrap();
        let chunked = LogOptions {
            chunk_large_files: true,
        };
        let logged = log_artifact_with(root, &art, &["best"], None, &chunked).unwrap();
        assert!(!logged.dir.join("files/w/big.bin").exists());
        let sha = &logged.manifest.files[0].sha256;
        assert!(layout::recipe_file(root, sha).is_file());
        let path = logged.path_with_cache("w/big.bin", cache.path()).unwrap();
        assert!(path.starts_with(cache.path()));
        assert_eq!(fs::read(&path).unwrap(), data);
    }

    #[test]
    fn concurrent_writers_and_gc_lose_no_version() {
        let fx = Fixture::new();
        let root = fx.root().to_owned();
        let writers: Vec<_> = (0..3u8)
            .map(|w| {
                let root = root.clone();
                std::thread::spawn(move || {
                    let mut got = Vec::new();
                    for i in 0..8u8 {
                        let src = root.join(format!("src-{w}-{i}"));
                        fs::write(&src, [w, i, 7]).unwrap();
                        let mut art = Artifact::new("shared", "model").unwrap();
                        art.add_file(&src, Some("x")).unwrap();
                        got.push(log_artifact(&root, &art, &[], None).unwrap().version);
                    }
                    got
                })
            })
            .collect();
        let mut collections = 0;
        while !writers.iter().all(|w| w.is_finished()) {
            crate::gc::collect_garbage(&root, false).unwrap();
            collections += 1;
        }
        let mut all: Vec<u64> = writers
            .into_iter()
            .flat_map(|w| w.join().unwrap())
            .collect();
        all.sort_unstable();
        assert_eq!(
            all,
            (1..=24).collect::<Vec<_>>(),
            "after {collections} gc runs"
        );
        for v in 1..=24 {
            let version = use_artifact(&root, &format!("shared:v{v}"), None, None).unwrap();
            let out = fx.root().join(format!("out{v}"));
            version.download(&out).unwrap();
            assert_eq!(fs::read(out.join("x")).unwrap().len(), 3);
        }
    }

    #[test]
    fn bad_names_aliases_and_dirs() {
        let fx = Fixture::new();
        assert!(Artifact::new("a/b", "model").is_err());
        let mut art = Artifact::new("d", "dataset").unwrap();
        let dir = fx.root().join("data");
        fs::create_dir_all(dir.join("sub")).unwrap();
        fs::write(dir.join("a.txt"), "a").unwrap();
        fs::write(dir.join("sub/b.txt"), "b").unwrap();
        fs::write(dir.join("sub/skip.tmp"), "x").unwrap();
        art.add_dir(&dir, Some("data"), &["*.tmp"]).unwrap();
        assert_eq!(
            art.files().keys().cloned().collect::<Vec<_>>(),
            vec!["data/a.txt", "data/sub/b.txt"]
        );
        assert!(log_artifact(fx.root(), &art, &["latest"], None).is_err());
        assert!(log_artifact(fx.root(), &art, &["v2"], None).is_err());
        let logged = log_artifact(fx.root(), &art, &["prod"], None).unwrap();
        assert_eq!(logged.files(), vec!["data/a.txt", "data/sub/b.txt"]);
        assert!(glob_match("*.tmp", "sub/skip.tmp"));
        assert!(!glob_match("a?c", "abbc"));
    }
}
