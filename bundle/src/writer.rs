//! The bundle writer: walks run directories of one or more storage roots with plain `std::fs`,
//! skips symbolic links and anything not a regular file (and says so), hashes every file, then
//! writes the manifest first and each distinct carried content once to any `Write`.

use std::collections::{BTreeMap, BTreeSet};
use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use sha2::{Digest, Sha256};

use crate::error::BundleError;
use crate::format::{
    content_entry_name, member_path, Annotation, ArtifactVersionRef, Manifest, ManifestMember,
    Source, FORMAT_VERSION, MANIFEST_NAME,
};
use crate::limits::Limits;
use crate::paths::check_relative;
use crate::reader::check_manifest;

/// One storage root to bundle: what the manifest says of it, where it is on disk, and which of
/// its files to list and carry.
#[derive(Debug, Clone)]
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

/// Where a listed file's bytes are.
enum Bytes<'a> {
    Disk(PathBuf),
    Memory(&'a [u8]),
    /// Listed only ([`SourceInput::extra_omitted`]).
    Nowhere,
}

/// A listed file.
struct Listed<'a> {
    bytes: Bytes<'a>,
    size: u64,
    sha256: String,
    omitted: bool,
    mtime: Option<f64>,
}

impl Listed<'_> {
    fn carried(&self) -> bool {
        !self.omitted && !matches!(self.bytes, Bytes::Nowhere)
    }
}

/// Writes a bundle of `sources` to `out` and returns `out` (flushed) with a report. Symbolic
/// links and non-regular files inside the runs are skipped and listed; a run directory or extra
/// path that is missing, a symbolic link, of the wrong kind or outside what the format allows is
/// an error. A file that changes between hashing and writing is an error, except that a file
/// that only grew is bundled as it was when hashed. The manifest is checked with the reader's
/// own rules before anything is written.
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
    let mut skipped = Vec::new();
    // per source: root-relative path -> (file on disk, size, omitted, run it belongs to)
    let mut found: Vec<BTreeMap<String, (PathBuf, u64, bool)>> = Vec::new();
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
            for (path, (file, size)) in in_run {
                let omitted = input.omit.omits(Some(run), &path);
                files.insert(path, (file, size, omitted));
            }
        }
        for extra in &input.extra_paths {
            if files.contains_key(extra) {
                continue;
            }
            let (file, size) = checked_file(&input.dir, extra)?;
            let omitted = input.omit.omits(None, extra);
            files.insert(extra.clone(), (file, size, omitted));
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

    let total: u64 = found
        .iter()
        .flat_map(|f| f.values())
        .map(|(_, size, _)| size)
        .sum();
    progress.start(Phase::Hashing, total);
    let mut listed: BTreeMap<String, Listed> = BTreeMap::new();
    for file in generated {
        listed.insert(
            member_path(file.source, &file.path),
            Listed {
                bytes: Bytes::Memory(&file.bytes),
                size: file.bytes.len() as u64,
                sha256: hex(&Sha256::digest(&file.bytes)),
                omitted: false,
                mtime: None,
            },
        );
    }
    // Every file on disk is hashed, on all cores (the manifest must come first).
    let mut to_hash = Vec::new();
    for (index, (input, files)) in sources.iter().zip(found).enumerate() {
        for (path, (file, _, omitted)) in files {
            let member = member_path(index, &path);
            if listed.contains_key(&member) {
                continue;
            }
            let mtime = input.mtimes.get(&path).copied();
            to_hash.push((member, file, omitted, mtime));
        }
    }
    let hashed = hash_files(&to_hash, progress)?;
    for ((member, file, omitted, mtime), (size, sha256)) in to_hash.into_iter().zip(hashed) {
        let mtime = mtime.or_else(|| modified_secs(&file));
        listed.insert(
            member,
            Listed {
                bytes: Bytes::Disk(file),
                size,
                sha256,
                omitted,
                mtime,
            },
        );
    }
    for (index, input) in sources.iter().enumerate() {
        for extra in &input.extra_omitted {
            listed
                .entry(member_path(index, &extra.path))
                .or_insert_with(|| Listed {
                    bytes: Bytes::Nowhere,
                    size: extra.size,
                    sha256: extra.sha256.clone(),
                    omitted: true,
                    mtime: input.mtimes.get(&extra.path).copied(),
                });
        }
    }

    let mut by_content: BTreeMap<&str, (&Bytes, u64)> = BTreeMap::new();
    let (mut omitted, mut omitted_bytes) = (0, 0);
    for entry in listed.values() {
        match entry.carried() {
            true => {
                by_content
                    .entry(entry.sha256.as_str())
                    .or_insert((&entry.bytes, entry.size));
            }
            false => {
                omitted += 1;
                omitted_bytes += entry.size;
            }
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

    let manifest_bytes = serde_json::to_vec_pretty(&manifest)
        .map_err(|e| BundleError::WriteBundle(io::Error::other(e)))?;
    let mut encoder =
        zstd::Encoder::new(out, options.zstd_level).map_err(BundleError::WriteBundle)?;
    encoder
        .include_checksum(true)
        .map_err(BundleError::WriteBundle)?;
    // Compression on worker threads while this one reads the files and frames the tar.
    let workers = std::thread::available_parallelism().map_or(1, |n| n.get().min(4));
    encoder
        .multithread(workers as u32)
        .map_err(BundleError::WriteBundle)?;
    let mut tar = tar::Builder::new(encoder);
    tar.append(
        &header(MANIFEST_NAME, manifest_bytes.len() as u64)?,
        &manifest_bytes[..],
    )
    .map_err(BundleError::WriteBundle)?;
    progress.start(
        Phase::Writing,
        by_content.values().map(|(_, size)| size).sum(),
    );
    let mut content_bytes = 0;
    for (sha, (bytes, size)) in &by_content {
        let file = match bytes {
            Bytes::Disk(file) => file,
            Bytes::Memory(bytes) => {
                tar.append(&header(&content_entry_name(sha), *size)?, *bytes)
                    .map_err(BundleError::WriteBundle)?;
                progress.advance(*size);
                content_bytes += size;
                continue;
            }
            // only carried entries are here
            Bytes::Nowhere => continue,
        };
        let reader = File::open(file).map_err(|source| BundleError::ReadFile {
            path: file.to_path_buf(),
            source,
        })?;
        let mut checked = CheckedPrefix {
            inner: reader.take(*size),
            hasher: Sha256::new(),
            read: 0,
            progress: &mut *progress,
        };
        tar.append(&header(&content_entry_name(sha), *size)?, &mut checked)
            .map_err(BundleError::WriteBundle)?;
        // a file that shrank leaves a short entry: the bundle is refused below anyway
        if checked.read != *size || hex(&checked.hasher.finalize()) != *sha {
            return Err(BundleError::FileChanged {
                path: file.to_path_buf(),
            });
        }
        content_bytes += size;
    }
    let contents = by_content.len();
    let encoder = tar.into_inner().map_err(BundleError::WriteBundle)?;
    let mut out = encoder.finish().map_err(BundleError::WriteBundle)?;
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
fn checked_file(root: &Path, path: &str) -> Result<(PathBuf, u64), BundleError> {
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
            return Ok((at, meta.len()));
        }
    }
    Err(invalid("empty path".to_owned()))
}

/// `rel` (`/`-separated) below `base`.
fn native(base: &Path, rel: &str) -> PathBuf {
    rel.split('/').fold(base.to_path_buf(), |p, c| p.join(c))
}

/// A tar header for a read-only regular file `name` of `size` bytes (mtime 0: bundles of the
/// same files are byte-identical apart from the manifest's creation time).
fn header(name: &str, size: u64) -> Result<tar::Header, BundleError> {
    let mut header = tar::Header::new_gnu();
    header.set_path(name).map_err(BundleError::WriteBundle)?;
    header.set_size(size);
    header.set_mode(0o444);
    header.set_mtime(0);
    header.set_entry_type(tar::EntryType::Regular);
    header.set_cksum();
    Ok(header)
}

/// Walks `dir` (the run directory or one below it, `rel` its root-relative path) adding every
/// regular file by its root-relative path with its size.
fn walk(
    dir: &Path,
    rel: &str,
    source: usize,
    files: &mut BTreeMap<String, (PathBuf, u64)>,
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
            files.insert(child, (path, meta.len()));
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

/// The size and SHA-256 of a file, read once.
/// One file's size and SHA-256, or why it could not be read.
type Hashed = Result<(u64, String), BundleError>;

/// The size and SHA-256 of each file, hashed on every core (files are taken in turn from a
/// shared index), in the order given; progress is reported from this thread as bytes are read.
fn hash_files<T>(
    files: &[(T, PathBuf, bool, Option<f64>)],
    progress: &mut dyn Progress,
) -> Result<Vec<(u64, String)>, BundleError>
where
    T: Sync,
{
    use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
    use std::sync::Mutex;
    let workers = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .clamp(1, 8)
        .min(files.len().max(1));
    let next = AtomicUsize::new(0);
    let read = AtomicU64::new(0);
    let results: Mutex<Vec<Option<Hashed>>> = Mutex::new((0..files.len()).map(|_| None).collect());
    std::thread::scope(|scope| {
        let handles: Vec<_> = (0..workers)
            .map(|_| {
                scope.spawn(|| loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some((_, path, _, _)) = files.get(i) else {
                        return;
                    };
                    let mut counted = CountRead(&read);
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
                })
            })
            .collect();
        let mut reported = 0;
        while handles.iter().any(|h| !h.is_finished()) {
            std::thread::sleep(std::time::Duration::from_millis(50));
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

/// A reader that hashes, counts and reports what passes through it.
struct CheckedPrefix<'p, R> {
    inner: R,
    hasher: Sha256,
    read: u64,
    progress: &'p mut dyn Progress,
}

impl<R: Read> Read for CheckedPrefix<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        self.read += n as u64;
        self.progress.advance(n as u64);
        Ok(n)
    }
}
