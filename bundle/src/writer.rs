//! The bundle writer: walks run directories of one or more storage roots with plain `std::fs`,
//! skips symbolic links and anything not a regular file (and says so), and writes the manifest
//! first, then each distinct carried content once, to any `Write`. Every file's SHA-256 must be
//! known before the manifest, so small carried files are read once, hashed and compressed in the
//! same pass into an in-memory frame (the spool) written right after the manifest's; other files
//! are hashed first (or their hash is taken from the caller, [`KnownHash`]) and streamed last,
//! each checked against the hash the manifest gives it.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use sha2::{Digest, Sha256};

use crate::error::BundleError;
use crate::format::{
    content_entry_name, member_path, Annotation, ArtifactVersionRef, Manifest, ManifestMember,
    Source, FORMAT_VERSION, MANIFEST_NAME,
};
use crate::frames::TarFrame;
use crate::limits::Limits;
use crate::paths::check_relative;
use crate::reader::check_manifest;

/// One storage root to bundle: what the manifest says of it, where it is on disk, and which of
/// its files to list and carry.
#[derive(Debug, Clone, Default)]
pub struct SourceInput {
    /// The remote name to import under.
    pub name: String,
    pub host: String,
    /// The root as the manifest shows it.
    pub root_label: String,
    /// Where the root is on disk.
    pub dir: PathBuf,
    /// Run directories to bundle, root-relative (`runs/mnist/20261201_ab12cd`); every regular
    /// file inside is listed.
    pub runs: Vec<String>,
    pub artifact_versions: Vec<ArtifactVersionRef>,
    /// Root-relative files outside the runs to list too (artifact files under `artifacts/`).
    pub extra_paths: Vec<String>,
    /// Which listed files are omitted (listed with size and SHA-256, bytes not carried).
    pub omit: Omit,
    /// Files listed as omitted without any file on disk (a hub's uncached files).
    pub extra_omitted: Vec<OmittedFile>,
    pub annotations: Vec<Annotation>,
    /// Modification times to record for these root-relative paths instead of the files' own
    /// (a hub's export writes files again and gives each its server's time).
    pub mtimes: BTreeMap<String, f64>,
}

/// Which files of a source are listed but not carried.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum Omit {
    /// Carry every file.
    #[default]
    Nothing,
    /// Carry only the files of each run whose path relative to the run directory is in the set
    /// (`meta.json`, `events.jsonl`, ...); omit every other file of a run and every extra path.
    AllButRunFiles(BTreeSet<String>),
    /// Omit these root-relative files; carry the rest.
    Paths(BTreeSet<String>),
}

impl Omit {
    fn omits(&self, run: Option<&str>, root_path: &str) -> bool {
        match self {
            Omit::Nothing => false,
            Omit::AllButRunFiles(keep) => match run {
                Some(run) => !root_path
                    .strip_prefix(run)
                    .and_then(|r| r.strip_prefix('/'))
                    .is_some_and(|in_run| keep.contains(in_run)),
                None => true,
            },
            Omit::Paths(paths) => paths.contains(root_path),
        }
    }
}

/// A file listed as omitted with no file on disk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OmittedFile {
    /// Root-relative path.
    pub path: String,
    pub size: u64,
    pub sha256: String,
}

/// How hard to compress, and who writes.
#[derive(Debug, Clone)]
pub struct WriteOptions {
    /// zstd level (1..=19); 3 is zstd's default.
    pub zstd_level: i32,
    /// The manifest's `created_by` (`runicorn-agent 0.1.0`).
    pub created_by: String,
}

/// A file left out of the bundle, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Skipped {
    /// The source's index in the manifest.
    pub source: usize,
    /// Path relative to the root, `/`-separated.
    pub path: String,
    pub reason: &'static str,
}

/// What a written bundle holds.
#[derive(Debug, Clone)]
pub struct WriteReport {
    pub manifest: Manifest,
    pub skipped: Vec<Skipped>,
    /// Distinct contents written (members sharing bytes count once).
    pub contents: usize,
    /// Bytes of those contents, uncompressed.
    pub content_bytes: u64,
    /// Members listed as omitted, and their bytes.
    pub omitted: usize,
    pub omitted_bytes: u64,
}

/// The two phases of writing a bundle, for a progress display.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Reading every listed file to hash it (the manifest comes first).
    Hashing,
    /// Writing the carried contents.
    Writing,
}

/// Told how writing a bundle advances: `start` once per phase with the bytes it will process,
/// then `advance` with each piece.
pub trait Progress {
    fn start(&mut self, phase: Phase, total_bytes: u64);
    fn advance(&mut self, bytes: u64);
}

/// A [`Progress`] that shows nothing.
pub struct NoProgress;

impl Progress for NoProgress {
    fn start(&mut self, _: Phase, _: u64) {}
    fn advance(&mut self, _: u64) {}
}

/// [`write_bundle_with_progress`] without progress.
pub fn write_bundle<W: Write>(
    sources: &[SourceInput],
    options: &WriteOptions,
    out: W,
) -> Result<(W, WriteReport), BundleError> {
    write_bundle_with_progress(sources, options, out, &mut NoProgress)
}

/// A file made by the caller (not read from disk), carried at `path` of source `source`
/// (replacing a file of that path found on disk): e.g. an artifact's `versions.json` cut down
/// to the versions a bundle carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GeneratedFile {
    /// The index of its source in the `sources` given to the writer.
    pub source: usize,
    /// Root-relative path.
    pub path: String,
    pub bytes: Vec<u8>,
}

/// A SHA-256 the caller already knows for a file (the agent's index caches one per file), valid
/// while the file keeps this size and modification time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KnownHash {
    pub size: u64,
    /// Modification time in nanoseconds since the Unix epoch, as `stat` gives it.
    pub mtime_ns: i64,
    /// Lowercase hex.
    pub sha256: String,
}

/// Known hashes of one source's files, by root-relative path (`runs/p/a/meta.json`).
pub type KnownHashes = HashMap<String, KnownHash>;

/// Carried files at most this large are read once, before the manifest: hashed and compressed
/// in the same pass into the spool (compressed contents held in memory until the manifest is
/// written). Larger ones are hashed first (unless their hash is known) and streamed after it.
const SPOOL_FILE_MAX_BYTES: u64 = 8 * 1024 * 1024;
/// The spool takes files while its compressed bytes stay under this; later files are hashed
/// first and streamed after the manifest, as larger ones are.
const SPOOL_MAX_BYTES: usize = 64 * 1024 * 1024;

/// How much of a bundle's contents is compressed in memory before its manifest.
#[derive(Debug, Clone, Copy)]
struct SpoolLimits {
    file_max: u64,
    total_max: usize,
}

const SPOOL_LIMITS: SpoolLimits = SpoolLimits {
    file_max: SPOOL_FILE_MAX_BYTES,
    total_max: SPOOL_MAX_BYTES,
};

/// Where a listed file's bytes are.
enum Bytes<'a> {
    Disk(PathBuf),
    Memory(&'a [u8]),
    /// Already compressed into the spool (read once, before the manifest).
    Spooled,
    /// Listed only ([`SourceInput::extra_omitted`]).
    Nowhere,
}

/// A listed file.
struct Listed<'a> {
    bytes: Bytes<'a>,
    size: u64,
    sha256: String,
    /// The hash is the caller's ([`KnownHash`]), not read here: checked while streaming.
    known: bool,
    omitted: bool,
    mtime: Option<f64>,
}

impl Listed<'_> {
    fn carried(&self) -> bool {
        !self.omitted && !matches!(self.bytes, Bytes::Nowhere)
    }
}

/// A regular file found on disk by the walk.
struct Found {
    file: PathBuf,
    size: u64,
    mtime_ns: i64,
    omitted: bool,
}

/// Writes a bundle of `sources` to `out` and returns `out` (flushed) with a report. Symbolic
/// links and non-regular files inside the runs are skipped and listed; a run directory or extra
/// path that is missing, a symbolic link, of the wrong kind or outside what the format allows is
/// an error. Small carried files are read once (hashed and compressed together, before the
/// manifest is written); a file read twice (hashed, then streamed) that changes in between is
/// an error, except that a file that only grew is bundled as it was when hashed. The manifest
/// is checked with the reader's own rules before anything is written.
pub fn write_bundle_with_progress<W: Write>(
    sources: &[SourceInput],
    options: &WriteOptions,
    out: W,
    progress: &mut dyn Progress,
) -> Result<(W, WriteReport), BundleError> {
    write_bundle_generated(sources, &[], options, out, progress)
}

/// [`write_bundle_with_progress`] with files the caller made, carried as they are.
pub fn write_bundle_generated<W: Write>(
    sources: &[SourceInput],
    generated: &[GeneratedFile],
    options: &WriteOptions,
    out: W,
    progress: &mut dyn Progress,
) -> Result<(W, WriteReport), BundleError> {
    write_bundle_known(sources, generated, &[], options, out, progress)
}

/// [`write_bundle_generated`] taking the hashes the caller knows (`known[i]` for source `i`;
/// missing sources know none): a file whose size and modification time match its known hash
/// is not hashed before the manifest but streamed after it, its bytes checked against that hash
/// as they go. A known hash that turns out stale (the content changed, size and time did not)
/// fails with [`BundleError::StaleKnownHash`] after part of the bundle was written: write again
/// without known hashes. Files the spool takes are read once anyway; their hash is never taken
/// on trust, nor is that of an omitted file or of one whose content another member carries.
pub fn write_bundle_known<W: Write>(
    sources: &[SourceInput],
    generated: &[GeneratedFile],
    known: &[KnownHashes],
    options: &WriteOptions,
    out: W,
    progress: &mut dyn Progress,
) -> Result<(W, WriteReport), BundleError> {
    write_with_limits(
        sources,
        generated,
        known,
        options,
        out,
        progress,
        SPOOL_LIMITS,
    )
}

/// [`write_bundle_known`] with no spool: every file hashed first, then streamed (the writer's
/// two-pass path, for tests of what happens between the passes).
#[cfg(test)]
pub(crate) fn write_bundle_unspooled<W: Write>(
    sources: &[SourceInput],
    known: &[KnownHashes],
    out: W,
    progress: &mut dyn Progress,
) -> Result<(W, WriteReport), BundleError> {
    let options = WriteOptions {
        zstd_level: 3,
        created_by: "runicorn-bundle tests".to_owned(),
    };
    let none = SpoolLimits {
        file_max: 0,
        total_max: 0,
    };
    write_with_limits(sources, &[], known, &options, out, progress, none)
}

fn write_with_limits<W: Write>(
    sources: &[SourceInput],
    generated: &[GeneratedFile],
    known: &[KnownHashes],
    options: &WriteOptions,
    out: W,
    progress: &mut dyn Progress,
    limits: SpoolLimits,
) -> Result<(W, WriteReport), BundleError> {
    let mut skipped = Vec::new();
    let mut found: Vec<BTreeMap<String, Found>> = Vec::new();
    let mut manifest_sources = Vec::new();
    for (index, input) in sources.iter().enumerate() {
        let mut files = BTreeMap::new();
        let mut run_list = BTreeSet::new();
        for run in &input.runs {
            let run = run.trim_end_matches('/');
            let dir = checked_dir(&input.dir, run)?;
            if !run_list.insert(run.to_owned()) {
                continue;
            }
            let mut in_run = BTreeMap::new();
            walk(&dir, run, index, &mut in_run, &mut skipped)?;
            for (path, mut file) in in_run {
                file.omitted = input.omit.omits(Some(run), &path);
                files.insert(path, file);
            }
        }
        for extra in &input.extra_paths {
            if files.contains_key(extra) {
                continue;
            }
            let mut file = checked_file(&input.dir, extra)?;
            file.omitted = input.omit.omits(None, extra);
            files.insert(extra.clone(), file);
        }
        found.push(files);
        manifest_sources.push(Source {
            name: input.name.clone(),
            host: input.host.clone(),
            root: input.root_label.clone(),
            runs: run_list.into_iter().collect(),
            artifact_versions: input.artifact_versions.clone(),
            annotations: input.annotations.clone(),
        });
    }

    let mut listed: BTreeMap<String, Listed> = BTreeMap::new();
    for file in generated {
        listed.insert(
            member_path(file.source, &file.path),
            Listed {
                bytes: Bytes::Memory(&file.bytes),
                size: file.bytes.len() as u64,
                sha256: hex(&Sha256::digest(&file.bytes)),
                known: false,
                omitted: false,
                mtime: None,
            },
        );
    }
    // Which files are read before the manifest: the spool's, and those hashed first.
    let mut spool_candidates = Vec::new();
    let mut to_hash = Vec::new();
    let mut read_first = 0u64;
    for (index, (input, files)) in sources.iter().zip(found).enumerate() {
        for (path, file) in files {
            let member = member_path(index, &path);
            if listed.contains_key(&member) {
                continue;
            }
            let mtime = input.mtimes.get(&path).copied();
            let known = known
                .get(index)
                .and_then(|k| k.get(&path))
                .filter(|k| !file.omitted && k.size == file.size && k.mtime_ns == file.mtime_ns);
            if !file.omitted && file.size <= limits.file_max {
                read_first += file.size;
                spool_candidates.push((member, file, mtime));
            } else if let Some(known) = known {
                listed.insert(
                    member,
                    Listed {
                        bytes: Bytes::Disk(file.file),
                        size: file.size,
                        sha256: known.sha256.clone(),
                        known: true,
                        omitted: false,
                        mtime: mtime.or_else(|| ns_to_secs(file.mtime_ns)),
                    },
                );
            } else {
                read_first += file.size;
                to_hash.push((member, file.file, file.omitted, mtime));
            }
        }
    }
    progress.start(Phase::Hashing, read_first);

    // The spool: small carried files read once, hashed, and compressed (each content once) into
    // a frame held in memory, while the rest waits for the manifest.
    let mut spool = TarFrame::new(Vec::new(), options.zstd_level)?;
    let mut spooled: HashSet<String> = HashSet::new();
    let mut spooled_bytes = 0u64;
    let mut bytes = Vec::new();
    for (member, file, mtime) in spool_candidates {
        if spool.output().len() >= limits.total_max {
            to_hash.push((member, file.file, false, mtime));
            continue;
        }
        let file_mtime = read_whole(&file.file, file.size, &mut bytes)?;
        progress.advance(bytes.len() as u64);
        let sha256 = hex(&Sha256::digest(&bytes));
        if spooled.insert(sha256.clone()) {
            spool.append_bytes(&content_entry_name(&sha256), &bytes)?;
            spooled_bytes += bytes.len() as u64;
        }
        listed.insert(
            member,
            Listed {
                bytes: Bytes::Spooled,
                size: bytes.len() as u64,
                sha256,
                known: false,
                omitted: false,
                mtime: mtime.or(file_mtime),
            },
        );
    }
    let spool = spool.finish()?;

    // Every other file read first is hashed on all cores.
    list_hashed(&mut listed, to_hash, progress)?;
    // A known hash is checked while its file is streamed, which happens only when no other
    // member carries the same content (a content is written once): files whose known hash
    // another carried member shares are hashed after all (rare).
    let mut carriers: HashMap<&str, usize> = HashMap::new();
    for entry in listed.values().filter(|e| e.carried()) {
        *carriers.entry(entry.sha256.as_str()).or_default() += 1;
    }
    let unchecked: Vec<String> = listed
        .iter()
        .filter(|(_, e)| {
            e.known && (spooled.contains(&e.sha256) || carriers.get(e.sha256.as_str()) != Some(&1))
        })
        .map(|(member, _)| member.clone())
        .collect();
    let mut rehash = Vec::new();
    for member in unchecked {
        if let Some(Listed {
            bytes: Bytes::Disk(file),
            mtime,
            ..
        }) = listed.remove(&member)
        {
            rehash.push((member, file, false, mtime));
        }
    }
    list_hashed(&mut listed, rehash, progress)?;
    for (index, input) in sources.iter().enumerate() {
        for extra in &input.extra_omitted {
            listed
                .entry(member_path(index, &extra.path))
                .or_insert_with(|| Listed {
                    bytes: Bytes::Nowhere,
                    size: extra.size,
                    sha256: extra.sha256.clone(),
                    known: false,
                    omitted: true,
                    mtime: input.mtimes.get(&extra.path).copied(),
                });
        }
    }

    // The contents still to write after the manifest, each once (a content the spool holds is
    // not written again).
    let mut by_content: BTreeMap<&str, &Listed> = BTreeMap::new();
    let (mut omitted, mut omitted_bytes) = (0, 0);
    for entry in listed.values() {
        if !entry.carried() {
            omitted += 1;
            omitted_bytes += entry.size;
        } else if !spooled.contains(&entry.sha256) {
            by_content.entry(entry.sha256.as_str()).or_insert(entry);
        }
    }
    let manifest = Manifest {
        format_version: FORMAT_VERSION,
        created_at: SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs_f64())
            .unwrap_or(0.0),
        created_by: options.created_by.clone(),
        sources: manifest_sources,
        members: listed
            .iter()
            .map(|(path, entry)| ManifestMember {
                path: path.clone(),
                size: entry.size,
                sha256: entry.sha256.clone(),
                omitted: !entry.carried(),
                mtime: entry.mtime,
            })
            .collect(),
    };
    // the reader's rules, bar its size limit (a reader raises it for a bundle this large)
    let unbounded = Limits {
        max_total_bytes: u64::MAX,
        ..Limits::default()
    };
    check_manifest(&manifest, &unbounded)?;

    // The manifest's frame, the spool's, then one with the rest that ends the tar.
    let manifest_bytes = serde_json::to_vec_pretty(&manifest)
        .map_err(|e| BundleError::WriteBundle(io::Error::other(e)))?;
    let mut first = TarFrame::new(out, options.zstd_level)?;
    first.append_bytes(MANIFEST_NAME, &manifest_bytes)?;
    let mut out = first.finish()?;
    out.write_all(&spool).map_err(BundleError::WriteBundle)?;
    drop(spool);
    progress.start(
        Phase::Writing,
        by_content.values().map(|entry| entry.size).sum(),
    );
    let mut last = TarFrame::new(out, options.zstd_level)?;
    let mut content_bytes = spooled_bytes;
    for (sha, entry) in &by_content {
        let name = content_entry_name(sha);
        let file = match &entry.bytes {
            Bytes::Disk(file) => file,
            Bytes::Memory(bytes) => {
                last.append_bytes(&name, bytes)?;
                progress.advance(entry.size);
                content_bytes += entry.size;
                continue;
            }
            // only carried entries not in the spool are here
            Bytes::Spooled | Bytes::Nowhere => continue,
        };
        let reader = File::open(file).map_err(|source| BundleError::ReadFile {
            path: file.to_path_buf(),
            source,
        })?;
        let mut checked = CheckedPrefix {
            inner: reader,
            hasher: Sha256::new(),
            read_error: None,
            progress: &mut *progress,
        };
        let copied = last.append_reader(&name, entry.size, &mut checked);
        if let Some(source) = checked.read_error.take() {
            return Err(BundleError::ReadFile {
                path: file.to_path_buf(),
                source,
            });
        }
        let copied = copied?;
        // a file that shrank leaves a short entry: the bundle is refused below anyway
        if copied != entry.size || hex(&checked.hasher.finalize()) != **sha {
            return Err(match entry.known {
                true => BundleError::StaleKnownHash {
                    path: file.to_path_buf(),
                },
                false => BundleError::FileChanged {
                    path: file.to_path_buf(),
                },
            });
        }
        content_bytes += entry.size;
    }
    let contents = spooled.len() + by_content.len();
    let mut out = last.finish_archive()?;
    out.flush().map_err(BundleError::WriteBundle)?;
    Ok((
        out,
        WriteReport {
            manifest,
            skipped,
            contents,
            content_bytes,
            omitted,
            omitted_bytes,
        },
    ))
}

/// Reads at most `size` bytes of `path` into `bytes` (a file that grew since the walk is taken
/// as it was) and gives the file's modification time after reading.
fn read_whole(path: &Path, size: u64, bytes: &mut Vec<u8>) -> Result<Option<f64>, BundleError> {
    let error = |source| BundleError::ReadFile {
        path: path.to_path_buf(),
        source,
    };
    let file = File::open(path).map_err(error)?;
    bytes.clear();
    // the walk's size of a file no larger than the spool's per-file limit fits in memory
    bytes.reserve(usize::try_from(size).unwrap_or(0));
    (&file).take(size).read_to_end(bytes).map_err(error)?;
    let mtime = file
        .metadata()
        .and_then(|m| m.modified())
        .ok()
        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .map(|d| d.as_secs_f64());
    Ok(mtime)
}

/// Nanoseconds since the epoch as seconds, as [`modified_secs`] gives them.
fn ns_to_secs(ns: i64) -> Option<f64> {
    let ns = u64::try_from(ns).ok()?;
    Some(std::time::Duration::from_nanos(ns).as_secs_f64())
}

/// The run directory `run` of `root`: relative, a real directory (not a symbolic link).
fn checked_dir(root: &Path, run: &str) -> Result<PathBuf, BundleError> {
    let invalid = |reason: String| BundleError::InvalidRunDir {
        run: run.to_owned(),
        reason,
    };
    check_relative(run).map_err(|problem| {
        invalid(format!(
            "{problem:?}: run directories are relative to the root"
        ))
    })?;
    let dir = native(root, run);
    let meta = fs::symlink_metadata(&dir).map_err(|e| invalid(e.to_string()))?;
    if !meta.is_dir() {
        return Err(invalid(
            "not a directory (symbolic links are not followed)".to_owned(),
        ));
    }
    Ok(dir)
}

/// The extra file `path` of `root`: relative, a regular file reached through no symbolic link.
fn checked_file(root: &Path, path: &str) -> Result<Found, BundleError> {
    let invalid = |reason: String| BundleError::InvalidExtraPath {
        path: path.to_owned(),
        reason,
    };
    check_relative(path)
        .map_err(|problem| invalid(format!("{problem:?}: extra paths are relative to the root")))?;
    let mut at = root.to_path_buf();
    let components: Vec<&str> = path.split('/').collect();
    for (i, component) in components.iter().enumerate() {
        at.push(component);
        let meta = fs::symlink_metadata(&at).map_err(|e| invalid(e.to_string()))?;
        let last = i + 1 == components.len();
        if meta.file_type().is_symlink() {
            return Err(invalid("reached through a symbolic link".to_owned()));
        }
        if last && !meta.is_file() {
            return Err(invalid("not a regular file".to_owned()));
        }
        if last {
            return Ok(found(at, &meta));
        }
    }
    Err(invalid("empty path".to_owned()))
}

/// `rel` (`/`-separated) below `base`.
fn native(base: &Path, rel: &str) -> PathBuf {
    rel.split('/').fold(base.to_path_buf(), |p, c| p.join(c))
}

/// Walks `dir` (the run directory or one below it, `rel` its root-relative path) adding every
/// regular file by its root-relative path with its size and time.
fn walk(
    dir: &Path,
    rel: &str,
    source: usize,
    files: &mut BTreeMap<String, Found>,
    skipped: &mut Vec<Skipped>,
) -> Result<(), BundleError> {
    let read_error = |path: &Path| {
        let path = path.to_path_buf();
        move |source| BundleError::ReadFile { path, source }
    };
    let mut entries = fs::read_dir(dir)
        .map_err(read_error(dir))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(read_error(dir))?;
    entries.sort_by_key(|e| e.file_name());
    for entry in entries {
        let path = entry.path();
        let Some(name) = entry.file_name().to_str().map(str::to_owned) else {
            skipped.push(Skipped {
                source,
                path: format!("{rel}/{}", entry.file_name().to_string_lossy()),
                reason: "name is not UTF-8",
            });
            continue;
        };
        let child = format!("{rel}/{name}");
        if name.contains('\\') {
            skipped.push(Skipped {
                source,
                path: child,
                reason: "name contains a backslash",
            });
            continue;
        }
        let meta = fs::symlink_metadata(&path).map_err(read_error(&path))?;
        let kind = meta.file_type();
        if kind.is_symlink() {
            skipped.push(Skipped {
                source,
                path: child,
                reason: "symbolic link",
            });
        } else if kind.is_dir() {
            walk(&path, &child, source, files, skipped)?;
        } else if kind.is_file() {
            files.insert(child, found(path, &meta));
        } else {
            skipped.push(Skipped {
                source,
                path: child,
                reason: "not a regular file (device, FIFO or socket)",
            });
        }
    }
    Ok(())
}

/// A regular file as the walk found it (not omitted until the caller says).
fn found(file: PathBuf, meta: &fs::Metadata) -> Found {
    Found {
        file,
        size: meta.len(),
        mtime_ns: meta
            .mtime()
            .saturating_mul(1_000_000_000)
            .saturating_add(meta.mtime_nsec()),
        omitted: false,
    }
}

/// One file's size and SHA-256, or why it could not be read.
type Hashed = Result<(u64, String), BundleError>;

/// The size and SHA-256 of each file, hashed on every core (files are taken in turn from a
/// shared index), in the order given; progress is reported from this thread as bytes are read.
/// Hashes `files` (member, path, omitted, mtime) on all cores and lists each in `listed`, its
/// time the given one or else the file's.
fn list_hashed<'a>(
    listed: &mut BTreeMap<String, Listed<'a>>,
    files: Vec<(String, PathBuf, bool, Option<f64>)>,
    progress: &mut dyn Progress,
) -> Result<(), BundleError> {
    let hashed = hash_files(&files, progress)?;
    for ((member, file, omitted, mtime), (size, sha256)) in files.into_iter().zip(hashed) {
        let mtime = mtime.or_else(|| modified_secs(&file));
        listed.insert(
            member,
            Listed {
                bytes: Bytes::Disk(file),
                size,
                sha256,
                known: false,
                omitted,
                mtime,
            },
        );
    }
    Ok(())
}

fn hash_files<T>(
    files: &[(T, PathBuf, bool, Option<f64>)],
    progress: &mut dyn Progress,
) -> Result<Vec<(u64, String)>, BundleError>
where
    T: Sync,
{
    use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
    use std::sync::{mpsc, Mutex};
    if files.is_empty() {
        return Ok(Vec::new());
    }
    let workers = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .clamp(1, 8)
        .min(files.len().max(1));
    let next = AtomicUsize::new(0);
    let read = AtomicU64::new(0);
    let results: Mutex<Vec<Option<Hashed>>> = Mutex::new((0..files.len()).map(|_| None).collect());
    // Each worker holds a sender: the channel disconnects when the last one is done.
    let (done_tx, done_rx) = mpsc::channel::<()>();
    std::thread::scope(|scope| {
        let (next, read, results) = (&next, &read, &results);
        for _ in 0..workers {
            let done = done_tx.clone();
            scope.spawn(move || {
                let _done = done;
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some((_, path, _, _)) = files.get(i) else {
                        return;
                    };
                    let mut counted = CountRead(read);
                    let result = hash_file(path, &mut counted);
                    let failed = result.is_err();
                    if let Ok(mut slots) = results.lock() {
                        slots[i] = Some(result);
                    }
                    if failed {
                        // The others stop at their next file.
                        next.store(files.len(), Ordering::Relaxed);
                        return;
                    }
                }
            });
        }
        drop(done_tx);
        let mut reported = 0;
        while let Err(mpsc::RecvTimeoutError::Timeout) =
            done_rx.recv_timeout(std::time::Duration::from_millis(50))
        {
            let now = read.load(Ordering::Relaxed);
            progress.advance(now - reported);
            reported = now;
        }
        progress.advance(read.load(Ordering::Relaxed) - reported);
    });
    let slots = results.into_inner().unwrap_or_default();
    let mut out = Vec::with_capacity(files.len());
    for slot in slots {
        match slot {
            Some(result) => out.push(result?),
            // Only after another file failed, whose error came first.
            None => {
                return Err(BundleError::WriteBundle(io::Error::other(
                    "hashing stopped early",
                )))
            }
        }
    }
    Ok(out)
}

/// A [`Progress`] that adds the bytes read to a shared counter (a hashing thread's).
struct CountRead<'a>(&'a std::sync::atomic::AtomicU64);

impl Progress for CountRead<'_> {
    fn start(&mut self, _: Phase, _: u64) {}
    fn advance(&mut self, bytes: u64) {
        self.0
            .fetch_add(bytes, std::sync::atomic::Ordering::Relaxed);
    }
}

fn hash_file(path: &Path, progress: &mut dyn Progress) -> Result<(u64, String), BundleError> {
    let error = |source| BundleError::ReadFile {
        path: path.to_path_buf(),
        source,
    };
    let mut file = File::open(path).map_err(error)?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 256 * 1024];
    let mut size = 0u64;
    loop {
        let n = match file.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(error(e)),
        };
        hasher.update(&buf[..n]);
        size += n as u64;
        progress.advance(n as u64);
    }
    Ok((size, hex(&hasher.finalize())))
}

/// A file's modification time in seconds since the Unix epoch, when the system says.
fn modified_secs(path: &Path) -> Option<f64> {
    fs::metadata(path)
        .and_then(|m| m.modified())
        .ok()
        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .map(|d| d.as_secs_f64())
}

/// Lowercase hex of bytes.
pub(crate) fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    bytes
        .iter()
        .fold(String::with_capacity(bytes.len() * 2), |mut s, b| {
            // writing to a String cannot fail
            let _ = write!(s, "{b:02x}");
            s
        })
}

/// A reader that hashes and reports what passes through it, and keeps its own read error (so
/// that it is told apart from the output's).
struct CheckedPrefix<'p, R> {
    inner: R,
    hasher: Sha256,
    read_error: Option<io::Error>,
    progress: &'p mut dyn Progress,
}

impl<R: Read> Read for CheckedPrefix<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = loop {
            match self.inner.read(buf) {
                Ok(n) => break n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    let passed_on = io::Error::new(e.kind(), e.to_string());
                    self.read_error = Some(e);
                    return Err(passed_on);
                }
            }
        };
        self.hasher.update(&buf[..n]);
        self.progress.advance(n as u64);
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reader::read_bundle;

    const RUN: &str = "runs/p/a";

    /// A root with one run: `meta.json`, `events.jsonl`, and `copy.json` holding `meta.json`'s
    /// bytes.
    fn root() -> tempfile::TempDir {
        let root = tempfile::tempdir().unwrap();
        let run = root.path().join(RUN);
        fs::create_dir_all(&run).unwrap();
        fs::write(run.join("meta.json"), b"{\"id\":\"a\",\"n\":1}").unwrap();
        fs::write(run.join("copy.json"), b"{\"id\":\"a\",\"n\":1}").unwrap();
        fs::write(run.join("events.jsonl"), b"{\"step\":1}\n").unwrap();
        root
    }

    fn source(root: &Path) -> SourceInput {
        SourceInput {
            name: "gpu".to_owned(),
            host: "gpu".to_owned(),
            root_label: "/data".to_owned(),
            dir: root.to_owned(),
            runs: vec![RUN.to_owned()],
            ..Default::default()
        }
    }

    /// What an index would have cached for the root-relative `path` as it is now.
    fn known_now(root: &Path, path: &str) -> (String, KnownHash) {
        let file = root.join(path);
        let meta = fs::metadata(&file).unwrap();
        let known = KnownHash {
            size: meta.len(),
            mtime_ns: meta.mtime() * 1_000_000_000 + meta.mtime_nsec(),
            sha256: hex(&Sha256::digest(fs::read(&file).unwrap())),
        };
        (path.to_owned(), known)
    }

    /// The root-relative path of the run's `meta.json` and the hashes an index would know
    /// now: that one file's.
    fn meta_known_now(root: &Path) -> (String, KnownHashes) {
        let meta = format!("{RUN}/meta.json");
        let known = [known_now(root, &meta)].into_iter().collect();
        (meta, known)
    }

    /// The bundle of the root's run written with no spool (every file hashed first unless
    /// `known` spares it), and its report.
    fn unspooled(
        root: &Path,
        known: &[KnownHashes],
        progress: &mut dyn Progress,
    ) -> Result<(Vec<u8>, WriteReport), BundleError> {
        write_bundle_unspooled(&[source(root)], known, Vec::new(), progress)
    }

    fn test_options() -> WriteOptions {
        WriteOptions {
            zstd_level: 3,
            created_by: "test".to_owned(),
        }
    }

    /// Rewrites a file with other bytes of the same length and puts its time back.
    fn rewrite_keeping_size_and_time(file: &Path) {
        let before = fs::metadata(file).unwrap().modified().unwrap();
        let mut bytes = fs::read(file).unwrap();
        bytes.reverse();
        fs::write(file, &bytes).unwrap();
        File::options()
            .write(true)
            .open(file)
            .unwrap()
            .set_modified(before)
            .unwrap();
    }

    /// Bytes hashed before the manifest, as the progress of the hashing phase says.
    #[derive(Default)]
    struct HashedBytes(u64, bool);
    impl Progress for HashedBytes {
        fn start(&mut self, phase: Phase, _: u64) {
            self.1 = phase == Phase::Hashing;
        }
        fn advance(&mut self, bytes: u64) {
            if self.1 {
                self.0 += bytes;
            }
        }
    }

    /// Reads a bundle back (every member checked against its SHA-256) and gives each landed
    /// file's bytes by root-relative path.
    fn landed(bytes: &[u8]) -> BTreeMap<String, Vec<u8>> {
        let dest = tempfile::tempdir().unwrap();
        let read = read_bundle(bytes, dest.path(), &Limits::default()).unwrap();
        read.members
            .iter()
            .map(|m| {
                let at = m.location.as_ref().unwrap();
                (m.root_path.clone(), fs::read(at).unwrap())
            })
            .collect()
    }

    #[test]
    fn a_known_hash_spares_hashing_the_file_first() {
        let root = root();
        let (meta, known) = meta_known_now(root.path());
        let size = |name: &str| {
            fs::metadata(root.path().join(RUN).join(name))
                .unwrap()
                .len()
        };
        let mut hashed = HashedBytes::default();
        let (bytes, report) =
            unspooled(root.path(), std::slice::from_ref(&known), &mut hashed).unwrap();
        // copy.json has meta.json's bytes, written once from copy.json: meta.json is hashed
        // after all, since its bytes would not be checked
        let all = size("events.jsonl") + size("copy.json") + size("meta.json");
        assert_eq!(hashed.0, all);
        assert_eq!(report.contents, 2);
        assert_eq!(landed(&bytes).len(), 3);
        fs::remove_file(root.path().join(RUN).join("copy.json")).unwrap();
        let mut hashed = HashedBytes::default();
        let (bytes, report) = unspooled(root.path(), &[known], &mut hashed).unwrap();
        assert_eq!(
            hashed.0,
            size("events.jsonl"),
            "meta.json was not hashed first"
        );
        assert_eq!(report.contents, 2);
        let files = landed(&bytes);
        assert_eq!(files[&meta], fs::read(root.path().join(&meta)).unwrap());
    }

    #[test]
    fn a_stale_known_hash_fails_the_export_and_none_is_taken_on_trust_by_the_spool() {
        let root = root();
        let (meta, known) = meta_known_now(root.path());
        let file = root.path().join(&meta);
        // With copy.json holding meta.json's old bytes, the stale hash names a content that
        // another member carries: meta.json is hashed, and the bundle is right.
        rewrite_keeping_size_and_time(&file);
        let (bytes, _) =
            unspooled(root.path(), std::slice::from_ref(&known), &mut NoProgress).unwrap();
        assert_eq!(landed(&bytes)[&meta], fs::read(&file).unwrap());
        assert_eq!(landed(&bytes)[&format!("{RUN}/copy.json")].len(), 16);
        // Alone, its stale hash is taken and the stream catches it.
        fs::remove_file(root.path().join(RUN).join("copy.json")).unwrap();
        let now = known_now(root.path(), &meta).1;
        assert_eq!(
            (now.size, now.mtime_ns),
            (known[&meta].size, known[&meta].mtime_ns)
        );
        assert_ne!(now.sha256, known[&meta].sha256, "the cached hash is stale");
        let err =
            unspooled(root.path(), std::slice::from_ref(&known), &mut NoProgress).unwrap_err();
        assert!(
            matches!(err, BundleError::StaleKnownHash { ref path } if path == &file),
            "{err}"
        );
        assert!(err.to_string().contains("export again"), "{err}");
        // Written again without known hashes, the bundle holds the file as it is.
        let (bytes, _) = unspooled(root.path(), &[], &mut NoProgress).unwrap();
        assert_eq!(landed(&bytes)[&meta], fs::read(&file).unwrap());
        // The spool reads small files once and hashes what it read: a stale hash is never used.
        let (bytes, _) = write_bundle_known(
            &[source(root.path())],
            &[],
            &[known],
            &test_options(),
            Vec::new(),
            &mut NoProgress,
        )
        .unwrap();
        assert_eq!(landed(&bytes)[&meta], fs::read(&file).unwrap());
    }

    #[test]
    fn a_known_hash_of_another_size_or_time_is_ignored() {
        let root = root();
        let meta = format!("{RUN}/meta.json");
        let (path, mut known) = known_now(root.path(), &meta);
        known.sha256 = "0".repeat(64);
        known.mtime_ns += 1;
        let known: KnownHashes = [(path, known)].into_iter().collect();
        let (bytes, _) = unspooled(root.path(), &[known], &mut NoProgress).unwrap();
        assert_eq!(landed(&bytes).len(), 3);
    }

    #[test]
    fn spooled_and_streamed_contents_make_one_bundle() {
        let root = root();
        let big = root.path().join(RUN).join("media/big.bin");
        fs::create_dir_all(big.parent().unwrap()).unwrap();
        let bytes: Vec<u8> = (0..300_000u32).map(|i| (i * 7 % 251) as u8).collect();
        fs::write(&big, &bytes).unwrap();
        let limits = SpoolLimits {
            file_max: 100_000,
            total_max: 1 << 20,
        };
        let (out, report) = write_with_limits(
            &[source(root.path())],
            &[],
            &[],
            &test_options(),
            Vec::new(),
            &mut NoProgress,
            limits,
        )
        .unwrap();
        assert_eq!(report.contents, 3);
        let files = landed(&out);
        assert_eq!(files[&format!("{RUN}/media/big.bin")], bytes);
        assert_eq!(files.len(), 4);
    }
}
