//! Landing bundles: what the user named (a file, or `-` for standard input) is recognised by
//! its first bytes and read by the bundle crate's checking reader into a fresh directory, then
//! described as sources to apply (`apply::SourcePlan`). Nothing here touches the store.

use std::collections::{BTreeMap, BTreeSet};
use std::fs::File;
use std::io::{self, BufReader, Read, Seek};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

use runicorn_bundle::upstream::{
    read_upstream_archive, read_upstream_tar_gz, sniff_stream, ArchiveKind, UpstreamKind,
    UpstreamRead,
};
use runicorn_bundle::{read_bundle, BundleError, Limits, ReadBundle};
use runicorn_store::BundleAnnotations;
use runicorn_web::bundle_reports::BundleKind;
use sha2::{Digest, Sha256};

use super::apply::{CarriedFile, ListedFile, SourcePlan};
use super::error::ImportError;
use super::ImportObserver;

/// Where a bundle comes from.
#[derive(Debug, Clone)]
pub enum ImportInput {
    File(PathBuf),
    Stdin,
}

impl ImportInput {
    /// What to call it in reports and messages.
    pub fn name(&self) -> String {
        match self {
            ImportInput::File(p) => p.display().to_string(),
            ImportInput::Stdin => "-".to_owned(),
        }
    }
}

/// A landed bundle.
pub(crate) struct Landed {
    pub file: String,
    pub kind: BundleKind,
    pub created_at: Option<f64>,
    pub sources: Vec<SourcePlan>,
}

/// Landed directories older than this are left over from a killed import: removed.
const STALE_WORK: Duration = Duration::from_secs(24 * 3600);

/// A fresh directory for this import's landed bundles, under `<store>/tmp/imports/` (the
/// store's file system, so carried files move into the cache by rename).
pub(crate) fn work_dir(store_dir: &Path) -> Result<PathBuf, ImportError> {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let base = store_dir.join("tmp").join("imports");
    std::fs::create_dir_all(&base).map_err(|cause| ImportError::Temp {
        path: base.clone(),
        cause,
    })?;
    if let Ok(entries) = std::fs::read_dir(&base) {
        for entry in entries.flatten() {
            let stale = entry
                .metadata()
                .and_then(|m| m.modified())
                .ok()
                .and_then(|t| SystemTime::now().duration_since(t).ok())
                .is_some_and(|age| age > STALE_WORK);
            if stale {
                let _ = std::fs::remove_dir_all(entry.path());
            }
        }
    }
    let dir = base.join(format!(
        "{}-{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    ));
    std::fs::create_dir(&dir).map_err(|cause| ImportError::Temp {
        path: dir.clone(),
        cause,
    })?;
    Ok(dir)
}

/// Removes a work directory (in the background of the runtime's blocking pool).
pub(crate) async fn remove_dir(dir: &Path) {
    let dir = dir.to_owned();
    let _ = tokio::task::spawn_blocking(move || std::fs::remove_dir_all(dir)).await;
}

/// Reads `input` into the empty directory `dest` (created here) and describes its sources.
pub(crate) async fn land(
    input: ImportInput,
    dest: &Path,
    as_remote: Option<&str>,
    observer: &dyn ImportObserver,
) -> Result<Landed, ImportError> {
    let dest = dest.to_owned();
    let as_remote = as_remote.map(str::to_owned);
    // Progress crosses into the blocking reader through a counter polled here.
    let read = std::sync::Arc::new(AtomicU64::new(0));
    let counter = std::sync::Arc::clone(&read);
    let task = tokio::task::spawn_blocking(move || {
        land_blocking(input, &dest, as_remote.as_deref(), &counter)
    });
    tokio::pin!(task);
    loop {
        tokio::select! {
            done = &mut task => {
                observer.bytes_read(read.load(Ordering::Relaxed));
                return done.map_err(|e| ImportError::Store(format!("the import task failed: {e}")))?;
            }
            _ = tokio::time::sleep(Duration::from_millis(100)) => {
                observer.bytes_read(read.load(Ordering::Relaxed));
            }
        }
    }
}

/// Counts the bytes read through it.
struct Counting<R> {
    inner: R,
    read: std::sync::Arc<AtomicU64>,
}

impl<R: Read> Read for Counting<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.read.fetch_add(n as u64, Ordering::Relaxed);
        Ok(n)
    }
}

fn land_blocking(
    input: ImportInput,
    dest: &Path,
    as_remote: Option<&str>,
    counter: &std::sync::Arc<AtomicU64>,
) -> Result<Landed, ImportError> {
    let file = input.name();
    std::fs::create_dir_all(dest).map_err(|cause| ImportError::Temp {
        path: dest.to_owned(),
        cause,
    })?;
    let open_err = |cause| ImportError::Open {
        file: file.clone(),
        cause,
    };
    let reader: Box<dyn Read + Send> = match &input {
        ImportInput::File(p) => Box::new(File::open(p).map_err(open_err)?),
        ImportInput::Stdin => Box::new(io::stdin()),
    };
    let counted = Counting {
        inner: reader,
        read: std::sync::Arc::clone(counter),
    };
    let (kind, reader) = sniff_stream(counted).map_err(open_err)?;
    let reader = BufReader::with_capacity(256 * 1024, reader);
    let refused = |e: BundleError| ImportError::Refused {
        file: file.clone(),
        member: e.member().map(str::to_owned),
        cause: e.to_string(),
    };
    let limits = Limits::default();
    match kind {
        Some(ArchiveKind::Bundle) => {
            let read = read_bundle(reader, dest, &limits).map_err(refused)?;
            plan_runicorn(&file, dest, read, as_remote)
        }
        Some(ArchiveKind::Upstream(UpstreamKind::TarGz)) => {
            let read = read_upstream_tar_gz(reader, dest, &limits).map_err(refused)?;
            plan_upstream(&file, BundleKind::UpstreamTar, dest, read, as_remote)
        }
        Some(ArchiveKind::Upstream(UpstreamKind::Zip)) => {
            // A zip is read from its end: a stream is spooled to a file beside the landing.
            let spooled = match &input {
                ImportInput::File(p) => File::open(p).map_err(open_err)?,
                ImportInput::Stdin => spool(reader, dest).map_err(open_err)?,
            };
            let landing = dest.join("root");
            std::fs::create_dir(&landing).map_err(|cause| ImportError::Temp {
                path: landing.clone(),
                cause,
            })?;
            let read = read_upstream_archive(spooled, UpstreamKind::Zip, &landing, &limits)
                .map_err(refused)?;
            plan_upstream(&file, BundleKind::UpstreamZip, &landing, read, as_remote)
        }
        None => Err(ImportError::UnknownKind { file }),
    }
}

/// Copies the rest of `reader` to a file in `dir` and opens it for reading.
fn spool(mut reader: impl Read, dir: &Path) -> io::Result<File> {
    let path = dir.join("upload.zip");
    let mut out = File::create(&path)?;
    io::copy(&mut reader, &mut out)?;
    drop(out);
    let mut file = File::open(&path)?;
    file.rewind()?;
    Ok(file)
}

/// The sources of one of our bundles.
fn plan_runicorn(
    file: &str,
    dest: &Path,
    read: ReadBundle,
    as_remote: Option<&str>,
) -> Result<Landed, ImportError> {
    let manifest = &read.manifest;
    if as_remote.is_some() && manifest.sources.len() > 1 {
        return Err(ImportError::AsWithManySources {
            file: file.to_owned(),
            sources: manifest.sources.len(),
        });
    }
    let mut sources = Vec::new();
    for (i, source) in manifest.sources.iter().enumerate() {
        let mut carried = Vec::new();
        let mut listed = Vec::new();
        let mut omitted_contents = BTreeSet::new();
        for m in read.members.iter().filter(|m| m.source == i) {
            let Some((run_dir, path)) = split_run(&source.runs, &m.root_path) else {
                // Artifact files: the agent reads them from the root. A pool content listed
                // without its bytes was not carried (it is not lost on its server).
                if m.location.is_none() {
                    omitted_contents.insert(m.sha256.clone());
                }
                continue;
            };
            match &m.location {
                Some(location) => carried.push(CarriedFile {
                    run_dir,
                    path,
                    size: m.size,
                    sha256: m.sha256.clone(),
                    location: location.clone(),
                }),
                None => listed.push(ListedFile {
                    run_dir,
                    path,
                    size: m.size,
                    sha256: m.sha256.clone(),
                    mtime: m.mtime.unwrap_or(0.0),
                }),
            }
        }
        let annotations = source
            .annotations
            .iter()
            .map(|a| {
                (
                    a.run.clone(),
                    BundleAnnotations {
                        alias: a.alias.clone(),
                        tags: a.tags.clone(),
                        notes: a.notes.clone(),
                        deleted: a.deleted,
                    },
                )
            })
            .collect();
        sources.push(SourcePlan {
            remote: as_remote.map_or_else(|| source.name.clone(), str::to_owned),
            host: Some(source.host.clone()),
            root: Some(source.root.clone()),
            root_dir: ReadBundle::source_root(dest, i),
            carried,
            listed,
            omitted_contents,
            annotations,
            written_at: Some(manifest.created_at),
        });
    }
    Ok(Landed {
        file: file.to_owned(),
        kind: BundleKind::Runicorn,
        created_at: Some(manifest.created_at),
        sources,
    })
}

/// The run directory (one of `runs`) holding a root-relative path, and the path inside it.
fn split_run(runs: &[String], root_path: &str) -> Option<(String, String)> {
    runs.iter().find_map(|run| {
        let rest = root_path.strip_prefix(run.as_str())?.strip_prefix('/')?;
        Some((run.clone(), rest.to_owned()))
    })
}

/// The one source of an upstream archive: every landed file of its runs is carried (hashed
/// here, since upstream archives hold no hashes).
fn plan_upstream(
    file: &str,
    kind: BundleKind,
    root: &Path,
    read: UpstreamRead,
    as_remote: Option<&str>,
) -> Result<Landed, ImportError> {
    let name = match as_remote {
        Some(n) => n.to_owned(),
        None => read
            .host
            .clone()
            .filter(|h| runicorn_store::valid_remote_name(h))
            .unwrap_or_else(|| remote_name_of_file(file)),
    };
    let mut carried = Vec::new();
    for run in &read.runs {
        let dir = root.join(run);
        let mut files = Vec::new();
        walk_files(&dir, "", &mut files).map_err(|cause| ImportError::Temp {
            path: dir.clone(),
            cause,
        })?;
        for (path, location) in files {
            let (size, sha256) = hash_file(&location).map_err(|cause| ImportError::Temp {
                path: location.clone(),
                cause,
            })?;
            carried.push(CarriedFile {
                run_dir: run.clone(),
                path,
                size,
                sha256,
                location,
            });
        }
    }
    Ok(Landed {
        file: file.to_owned(),
        kind,
        created_at: None,
        sources: vec![SourcePlan {
            remote: name,
            host: read.host,
            root: read.root,
            root_dir: root.to_owned(),
            carried,
            listed: Vec::new(),
            omitted_contents: BTreeSet::new(),
            annotations: BTreeMap::new(),
            written_at: None,
        }],
    })
}

/// A remote name from an archive's file name (`runs-2026.tar.gz` → `runs-2026`).
fn remote_name_of_file(file: &str) -> String {
    let stem = Path::new(file)
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or("imported");
    let stem = stem
        .trim_end_matches(".gz")
        .trim_end_matches(".tar")
        .trim_end_matches(".tgz")
        .trim_end_matches(".zip");
    let cleaned: String = stem
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.') {
                c
            } else {
                '-'
            }
        })
        .take(64)
        .collect();
    if runicorn_store::valid_remote_name(&cleaned) {
        cleaned
    } else {
        "imported".to_owned()
    }
}

/// Every regular file below `dir` as (path relative to it, location).
fn walk_files(dir: &Path, rel: &str, out: &mut Vec<(String, PathBuf)>) -> io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let Some(name) = entry.file_name().to_str().map(str::to_owned) else {
            continue;
        };
        let child = if rel.is_empty() {
            name
        } else {
            format!("{rel}/{name}")
        };
        let kind = entry.file_type()?;
        if kind.is_dir() {
            walk_files(&entry.path(), &child, out)?;
        } else if kind.is_file() {
            out.push((child, entry.path()));
        }
    }
    Ok(())
}

fn hash_file(path: &Path) -> io::Result<(u64, String)> {
    let mut file = File::open(path)?;
    let mut hasher = Sha256::new();
    let size = io::copy(&mut file, &mut hasher)?;
    Ok((size, hex(&hasher.finalize())))
}

fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    bytes.iter().fold(String::with_capacity(64), |mut s, b| {
        // writing to a String cannot fail
        let _ = write!(s, "{b:02x}");
        s
    })
}
