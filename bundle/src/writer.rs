//! The bundle writer: walks run directories of a storage root with plain `std::fs`, skips
//! symbolic links and anything not a regular file (and says so), hashes every file, then writes
//! the manifest first and each distinct content once to any `Write`.

use std::collections::{BTreeMap, BTreeSet};
use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use sha2::{Digest, Sha256};

use crate::error::BundleError;
use crate::format::{
    content_entry_name, ArtifactVersionRef, Manifest, ManifestMember, Source, FORMAT_VERSION,
    MANIFEST_NAME, RUNS_DIR,
};
use crate::paths::check_relative;

/// What the manifest says about the bundle's origin, and how hard to compress.
#[derive(Debug, Clone)]
pub struct WriteOptions {
    pub source: Source,
    pub artifact_versions: Vec<ArtifactVersionRef>,
    /// zstd level (1..=19); 3 is zstd's default.
    pub zstd_level: i32,
}

/// A file left out of the bundle, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Skipped {
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
}

/// Writes a bundle of the run directories `runs` (relative to `root`, `/`-separated) to `out`
/// and returns `out` (flushed) with a report. Symbolic links and non-regular files inside the
/// runs are skipped and listed; a run directory that is missing, a symbolic link or not a
/// directory is an error. A file that changes between hashing and writing is an error, except
/// that a file that only grew is bundled as it was when hashed.
pub fn write_bundle<W: Write>(
    root: &Path,
    runs: &[String],
    options: &WriteOptions,
    out: W,
) -> Result<(W, WriteReport), BundleError> {
    let mut skipped = Vec::new();
    // member path → (file on disk, size, sha)
    let mut members: BTreeMap<String, (PathBuf, u64, String)> = BTreeMap::new();
    let mut run_list = BTreeSet::new();
    for run in runs {
        let run = run.trim_end_matches('/');
        check_relative(run).map_err(|problem| BundleError::InvalidRunDir {
            run: run.to_owned(),
            reason: format!("{problem:?}: run directories are relative to the root"),
        })?;
        let dir = root.join(run);
        let meta = fs::symlink_metadata(&dir).map_err(|e| BundleError::InvalidRunDir {
            run: run.to_owned(),
            reason: e.to_string(),
        })?;
        if !meta.is_dir() {
            return Err(BundleError::InvalidRunDir {
                run: run.to_owned(),
                reason: "not a directory (symbolic links are not followed)".to_owned(),
            });
        }
        if !run_list.insert(run.to_owned()) {
            continue;
        }
        walk(&dir, run, &mut members, &mut skipped)?;
    }

    let mut by_content: BTreeMap<&str, (&Path, u64)> = BTreeMap::new();
    for (file, size, sha) in members.values() {
        by_content.entry(sha.as_str()).or_insert((file, *size));
    }
    let manifest = Manifest {
        format_version: FORMAT_VERSION,
        source: options.source.clone(),
        created_at: SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs_f64())
            .unwrap_or(0.0),
        runs: run_list.into_iter().collect(),
        artifact_versions: options.artifact_versions.clone(),
        members: members
            .iter()
            .map(|(path, (_, size, sha))| ManifestMember {
                path: path.clone(),
                size: *size,
                sha256: sha.clone(),
            })
            .collect(),
    };

    let manifest_bytes = serde_json::to_vec_pretty(&manifest)
        .map_err(|e| BundleError::WriteBundle(io::Error::other(e)))?;
    let mut encoder =
        zstd::Encoder::new(out, options.zstd_level).map_err(BundleError::WriteBundle)?;
    encoder
        .include_checksum(true)
        .map_err(BundleError::WriteBundle)?;
    let mut tar = tar::Builder::new(encoder);
    tar.append(
        &header(MANIFEST_NAME, manifest_bytes.len() as u64)?,
        &manifest_bytes[..],
    )
    .map_err(BundleError::WriteBundle)?;
    let mut content_bytes = 0;
    for (sha, (file, size)) in &by_content {
        let reader = File::open(file).map_err(|source| BundleError::ReadFile {
            path: file.to_path_buf(),
            source,
        })?;
        let mut checked = CheckedPrefix {
            inner: reader.take(*size),
            hasher: Sha256::new(),
            read: 0,
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
        },
    ))
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
/// regular file as `runs/<rel>/<name>` with its size and SHA-256.
fn walk(
    dir: &Path,
    rel: &str,
    members: &mut BTreeMap<String, (PathBuf, u64, String)>,
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
                path: format!("{rel}/{}", entry.file_name().to_string_lossy()),
                reason: "name is not UTF-8",
            });
            continue;
        };
        let child = format!("{rel}/{name}");
        if name.contains('\\') {
            skipped.push(Skipped {
                path: child,
                reason: "name contains a backslash",
            });
            continue;
        }
        let meta = fs::symlink_metadata(&path).map_err(read_error(&path))?;
        let kind = meta.file_type();
        if kind.is_symlink() {
            skipped.push(Skipped {
                path: child,
                reason: "symbolic link",
            });
        } else if kind.is_dir() {
            walk(&path, &child, members, skipped)?;
        } else if kind.is_file() {
            let (size, sha) = hash_file(&path)?;
            members.insert(format!("{RUNS_DIR}/{child}"), (path, size, sha));
        } else {
            skipped.push(Skipped {
                path: child,
                reason: "not a regular file (device, FIFO or socket)",
            });
        }
    }
    Ok(())
}

/// The size and SHA-256 of a file, read once.
fn hash_file(path: &Path) -> Result<(u64, String), BundleError> {
    let error = |source| BundleError::ReadFile {
        path: path.to_path_buf(),
        source,
    };
    let mut file = File::open(path).map_err(error)?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 64 * 1024];
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
    }
    Ok((size, hex(&hasher.finalize())))
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

/// A reader that hashes and counts what passes through it.
struct CheckedPrefix<R> {
    inner: R,
    hasher: Sha256,
    read: u64,
}

impl<R: Read> Read for CheckedPrefix<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        self.read += n as u64;
        Ok(n)
    }
}
