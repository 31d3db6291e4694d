//! Exporting runs of the hub's store as an offline bundle (`docs/run-format.md`, "Offline
//! bundles"): what `runicorn-hub export` and the dashboard's export call ([`export_runs`] to
//! any `Write`, [`export_runs_to_file`] through `FILE.partial`, never leaving a partial file).
//! Blocking: call it on a thread of its own (or the blocking pool), never on an async task.
//!
//! The store keeps a run's records, points and log, not its directory, so each run is written
//! again into a temporary storage root under the store folder (`<store>/tmp/export-…`), one
//! per remote, then bundled with one source per remote (its name, and the agent's host and
//! root as the store knows them) and the hub's annotations of each run:
//!
//! - a manifest file whose bytes the file cache holds is carried exactly (hard-linked from the
//!   cache, so nothing is copied; its SHA-256 is checked against the bundle's afterwards);
//! - otherwise `meta.json`, `status.json`, `summary.json`, `environment.json` and
//!   `assets.json` are the records as stored, `events.jsonl` is rebuilt from the stored points
//!   (with an `image` event per image file, from its name: the store keeps no image events, so
//!   the stages, captions and non-numeric values of a run whose file was never fetched are not
//!   carried) and `logs.txt` is the stored log bytes;
//! - every other file is listed as omitted (size and SHA-256 from the manifest) — or, when the
//!   agent reported no SHA-256 for it (files over 64 MiB), left out and reported as skipped.
//!
//! With `metadata_only`, only the records, `.deleted`, `artifacts.json`, `events.jsonl` and
//! `logs.txt` are carried; every other file is listed as omitted. With `with_artifacts`, the
//! artifact versions the runs produced or used come too ([`artifacts`]). A run's
//! `artifacts.json` the cache lacks is written again from the store's lineage rows.

mod artifacts;

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use runicorn_bundle::{
    write_bundle_with_progress, Annotation, BundleError, CountingWriter, NoProgress, OmittedFile,
    Progress, SourceInput, WriteOptions, METADATA_ONLY_FILES,
};
use runicorn_protocol::run_format::artifacts::RUN_ARTIFACTS_FILE;
use runicorn_protocol::run_format::names::media_image_key;
use runicorn_store::{FileCache, RemoteId, RunKey, RunRow, Store, StoreError};
use runicorn_web::bundle_reports::{BundleFailure, ExportContents, ExportReport, ExportSkipped};

/// zstd level of the hub's bundles (zstd's default).
const ZSTD_LEVEL: i32 = 3;

/// Why an export failed. Nothing usable was written (the caller removes its partial file).
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("run {0} is not in the hub's store (it may have been purged); list runs with `runicorn-hub ls`")]
    NoSuchRun(i64),
    #[error("nothing to export: no run was selected")]
    NoRuns,
    #[error("remote {0} of a selected run is not in the hub's store")]
    NoSuchRemote(i64),
    #[error(
        "run {run}: the path {path:?} cannot be written into a storage root (not a plain relative path)"
    )]
    BadPath { run: String, path: String },
    #[error("cannot write the temporary copy {path}: {source}; check the space and permissions of the store folder")]
    Temp {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error(
        "the hub's cached copy of {path} ({owner}) does not match its SHA-256 {expected}; \
         the cache is damaged: remove it with `runicorn-hub cache gc --max-size 0`, fetch the \
         file again and export again"
    )]
    DamagedCache {
        /// `run REMOTE/DIR` or `artifact REMOTE TYPE/NAME`.
        owner: String,
        path: String,
        expected: String,
    },
    #[error("cannot write the bundle {path}: {source}")]
    Output {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error(transparent)]
    Bundle(#[from] BundleError),
}

impl ExportError {
    /// The failure as the dashboard shows it.
    pub fn failure(&self) -> BundleFailure {
        BundleFailure {
            message: self.to_string(),
            member: match self {
                ExportError::BadPath { path, .. } => Some(path.clone()),
                ExportError::DamagedCache { path, .. } => Some(path.clone()),
                _ => None,
            },
        }
    }
}

/// Writes a bundle of `runs` to the file `target`: to `target.partial` first, renamed to
/// `target` once complete and synced, and removed on any error, so a failed export leaves no
/// file. The report's `file` is `target`.
pub fn export_runs_to_file(
    store_dir: &Path,
    runs: &[RunKey],
    contents: ExportContents,
    target: &Path,
    progress: &mut dyn ExportProgress,
) -> Result<ExportReport, ExportError> {
    let mut partial = target.as_os_str().to_owned();
    partial.push(".partial");
    let partial = PathBuf::from(partial);
    let output = |source| ExportError::Output {
        path: partial.clone(),
        source,
    };
    let file = File::create(&partial).map_err(output)?;
    let mut out = BufWriter::new(file);
    let written = export_runs_with_progress(store_dir, runs, contents, &mut out, progress)
        .and_then(|report| {
            let file = out.into_inner().map_err(|e| output(e.into_error()))?;
            file.sync_all().map_err(output)?;
            fs::rename(&partial, target).map_err(|source| ExportError::Output {
                path: target.to_owned(),
                source,
            })?;
            Ok(ExportReport {
                file: target.display().to_string(),
                ..report
            })
        });
    if written.is_err() {
        let _ = fs::remove_file(&partial);
    }
    written
}

/// [`export_runs_to_file`] on tokio's blocking pool, failing as the dashboard shows failures:
/// the body of the hub's `BundleService::export`.
pub async fn export_for_dashboard(
    store_dir: PathBuf,
    runs: Vec<RunKey>,
    contents: ExportContents,
    out: PathBuf,
) -> Result<ExportReport, BundleFailure> {
    tokio::task::spawn_blocking(move || {
        export_runs_to_file(&store_dir, &runs, contents, &out, &mut NoProgress)
            .map_err(|e| e.failure())
    })
    .await
    .unwrap_or_else(|e| {
        Err(BundleFailure {
            message: format!("the export stopped unexpectedly ({e}); try again"),
            member: None,
        })
    })
}

/// Told how an export advances: the runs written from the store into the temporary root, then
/// the bundle writer's phases ([`Progress`]).
pub trait ExportProgress: Progress {
    /// `done` of `total` runs are written from the store.
    fn runs_prepared(&mut self, done: u64, total: u64);
}

impl ExportProgress for NoProgress {
    fn runs_prepared(&mut self, _: u64, _: u64) {}
}

/// Temporary roots older than this are left over from an export that was killed: removed.
const STALE_TEMP: Duration = Duration::from_secs(24 * 3600);

/// Writes a bundle of `runs` (keys of the store in `store_dir`, with their hub annotations) to
/// `out`. The report's `file` is left empty for the caller to fill.
pub fn export_runs(
    store_dir: &Path,
    runs: &[RunKey],
    contents: ExportContents,
    out: &mut impl Write,
) -> Result<ExportReport, ExportError> {
    export_runs_with_progress(store_dir, runs, contents, out, &mut NoProgress)
}

/// [`export_runs`], telling `progress` how hashing and writing advance.
pub fn export_runs_with_progress(
    store_dir: &Path,
    runs: &[RunKey],
    contents: ExportContents,
    out: &mut impl Write,
    progress: &mut dyn ExportProgress,
) -> Result<ExportReport, ExportError> {
    if runs.is_empty() {
        return Err(ExportError::NoRuns);
    }
    let store = Store::open_read_only(store_dir)?;
    let tmp_parent = store_dir.join("tmp");
    fs::create_dir_all(&tmp_parent).map_err(|source| ExportError::Temp {
        path: tmp_parent.clone(),
        source,
    })?;
    remove_stale_temps(&tmp_parent);
    let temp = tempfile::Builder::new()
        .prefix("export-")
        .tempdir_in(&tmp_parent)
        .map_err(|source| ExportError::Temp {
            path: tmp_parent.clone(),
            source,
        })?;

    // One read transaction for every run: the bundle is the store at one moment.
    let prepared_sources = store.with_snapshot(|store| {
        // Runs by remote, each once, in the order of the remotes' names.
        let mut by_remote: BTreeMap<RemoteId, Vec<RunRow>> = BTreeMap::new();
        for &key in runs {
            let row = store
                .run_by_key(key)?
                .ok_or(ExportError::NoSuchRun(key.0))?;
            let list = by_remote.entry(row.remote_id).or_default();
            if !list.iter().any(|r| r.key == key) {
                list.push(row);
            }
        }
        let mut remotes: Vec<_> = by_remote.into_iter().collect();
        remotes.sort_by_cached_key(|(id, rows)| (rows.first().map(|r| r.remote.clone()), id.0));
        prepare_sources(store, remotes, temp.path(), contents, progress)
    })?;
    drop(store);
    let Prepared {
        sources,
        remote_names,
        mut skipped,
        from_cache,
    } = prepared_sources;

    let options = WriteOptions {
        zstd_level: ZSTD_LEVEL,
        created_by: format!("runicorn-hub {}", env!("CARGO_PKG_VERSION")),
    };
    let mut counted = CountingWriter::new(out);
    let (counted_out, report) =
        write_bundle_with_progress(&sources, &options, &mut counted, progress)?;
    let bundle_bytes = counted_out.bytes;

    // What came from the cache must be what the manifest promised.
    let shas: BTreeMap<&str, &str> = report
        .manifest
        .members
        .iter()
        .map(|m| (m.path.as_str(), m.sha256.as_str()))
        .collect();
    for copy in from_cache {
        let member = runicorn_bundle::format::member_path(copy.source, &copy.root_rel);
        if shas.get(member.as_str()) != Some(&copy.sha256.as_str()) {
            return Err(ExportError::DamagedCache {
                owner: copy.owner,
                path: copy.path,
                expected: copy.sha256,
            });
        }
    }
    for s in &report.skipped {
        skipped.push(ExportSkipped {
            path: format!(
                "{}/{}",
                remote_names.get(s.source).map_or("?", String::as_str),
                s.path
            ),
            reason: s.reason.to_owned(),
        });
    }
    Ok(ExportReport {
        file: String::new(),
        runs: report
            .manifest
            .sources
            .iter()
            .map(|s| s.runs.len() as u64)
            .sum(),
        members: report.manifest.members.len() as u64,
        omitted: report.omitted as u64,
        contents: report.contents as u64,
        content_bytes: report.content_bytes,
        bundle_bytes,
        artifact_versions: report
            .manifest
            .sources
            .iter()
            .map(|s| s.artifact_versions.len() as u64)
            .sum(),
        skipped,
    })
}

/// The runs written into temporary roots, one per remote, and what the writer needs of them.
struct Prepared {
    sources: Vec<SourceInput>,
    remote_names: Vec<String>,
    skipped: Vec<ExportSkipped>,
    from_cache: Vec<CachedCopy>,
}

/// A file carried from the hub's cache, checked against the bundle's manifest once written.
#[derive(Debug)]
struct CachedCopy {
    source: usize,
    /// Its path under the source's root.
    root_rel: String,
    /// Its path as the error names it (in its run, or in the pool).
    path: String,
    sha256: String,
    /// What it belongs to: `run REMOTE/DIR` or `artifact REMOTE TYPE/NAME`.
    owner: String,
}

/// Writes every run of `remotes` into `<temp>/<source index>/` and describes the sources.
fn prepare_sources(
    store: &Store,
    remotes: Vec<(RemoteId, Vec<RunRow>)>,
    temp: &Path,
    contents: ExportContents,
    progress: &mut dyn ExportProgress,
) -> Result<Prepared, ExportError> {
    let mut sources = Vec::new();
    let mut remote_names = Vec::new();
    let mut skipped = Vec::new();
    let mut from_cache = Vec::new();
    let cache = store.file_cache();
    let total = remotes.iter().map(|(_, rows)| rows.len() as u64).sum();
    let mut prepared = 0;
    progress.runs_prepared(0, total);
    for (index, (remote_id, rows)) in remotes.into_iter().enumerate() {
        let remote = store
            .remote_by_id(remote_id)?
            .ok_or(ExportError::NoSuchRemote(remote_id.0))?;
        let root = temp.join(index.to_string());
        let mut input = SourceInput {
            name: remote.name.clone(),
            host: remote.agent_host.clone().unwrap_or_default(),
            root_label: remote.agent_root.clone().unwrap_or_default(),
            dir: root.clone(),
            runs: Vec::new(),
            ..Default::default()
        };
        for row in &rows {
            let copied = write_run(
                store,
                &cache,
                &root,
                row,
                contents.metadata_only,
                &mut input,
            )?;
            for (path, reason) in copied.skipped {
                skipped.push(ExportSkipped {
                    path: format!("{}/{path}", remote.name),
                    reason,
                });
            }
            from_cache.extend(
                copied
                    .from_cache
                    .into_iter()
                    .map(|(path, sha256)| CachedCopy {
                        source: index,
                        root_rel: format!("{}/{path}", row.dir),
                        path,
                        sha256,
                        owner: format!("run {}/{}", remote.name, row.dir),
                    }),
            );
            input.runs.push(row.dir.clone());
            prepared += 1;
            progress.runs_prepared(prepared, total);
            if let Some(notes) = store.hub_annotations(row.key)? {
                if !notes.is_empty() {
                    input.annotations.push(Annotation {
                        run: row.dir.clone(),
                        alias: notes.alias,
                        tags: notes.tags.unwrap_or_default(),
                        notes: notes.notes,
                        deleted: notes.in_recycle_bin,
                    });
                }
            }
        }
        if contents.with_artifacts {
            let found = artifacts::write_artifacts(
                store,
                &cache,
                &root,
                index,
                &remote.name,
                &rows,
                contents.metadata_only,
            )?;
            input.artifact_versions = found.versions;
            input.extra_paths = found.paths;
            input.extra_omitted.extend(found.omitted);
            from_cache.extend(found.from_cache);
            for (name, reason) in found.skipped {
                skipped.push(ExportSkipped {
                    path: format!("{}/{name}", remote.name),
                    reason,
                });
            }
        }
        remote_names.push(remote.name);
        sources.push(input);
    }
    Ok(Prepared {
        sources,
        remote_names,
        skipped,
        from_cache,
    })
}

/// Removes `export-*` folders under `tmp` older than [`STALE_TEMP`] (a killed export's).
fn remove_stale_temps(tmp: &Path) {
    let Ok(entries) = fs::read_dir(tmp) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let stale = entry
            .metadata()
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| SystemTime::now().duration_since(t).ok())
            .is_some_and(|age| age > STALE_TEMP);
        if stale && name.to_string_lossy().starts_with("export-") {
            let _ = fs::remove_dir_all(entry.path());
        }
    }
}

/// What writing one run into the temporary root did.
struct CopiedRun {
    /// Files carried from the cache (path in the run, SHA-256 expected).
    from_cache: Vec<(String, String)>,
    /// Files left out (path relative to the root), and why.
    skipped: Vec<(String, String)>,
}

/// Writes run `row` into `root` at `row.dir` (cached files, records, events, log); lists what
/// it cannot carry in `input.extra_omitted`.
fn write_run(
    store: &Store,
    cache: &FileCache,
    root: &Path,
    row: &RunRow,
    metadata_only: bool,
    input: &mut SourceInput,
) -> Result<CopiedRun, ExportError> {
    let run_name = format!("{}/{}", row.remote, row.dir);
    let dir = root.join(
        checked_relative(&row.dir).ok_or_else(|| ExportError::BadPath {
            run: run_name.clone(),
            path: row.dir.clone(),
        })?,
    );
    make_dir(&dir)?;
    let mut copied = CopiedRun {
        from_cache: Vec::new(),
        skipped: Vec::new(),
    };
    let mut written: Vec<String> = Vec::new();
    let mut has_artifacts_record = false;
    // Images named in the manifest, for a rebuilt `events.jsonl`: (time, key, path).
    let mut images: Vec<(Option<f64>, String, String)> = Vec::new();
    for file in store.files(row.key)? {
        has_artifacts_record |= file.path == RUN_ARTIFACTS_FILE;
        if let Some((key, time)) = media_image_key(&file.path) {
            images.push((time, key, file.path.clone()));
        }
        // The server's time, not the time of writing the file again here.
        input
            .mtimes
            .insert(format!("{}/{}", row.dir, file.path), file.mtime);
        let carry = !metadata_only || METADATA_ONLY_FILES.contains(&file.path.as_str());
        let rel = checked_relative(&file.path).ok_or_else(|| ExportError::BadPath {
            run: run_name.clone(),
            path: file.path.clone(),
        })?;
        let cached = file
            .cached_sha256
            .as_deref()
            .and_then(|sha| cache.path_of(sha).map(|p| (sha.to_owned(), p)));
        match cached {
            Some((sha, cached_path)) if carry => {
                let target = dir.join(&rel);
                if let Some(parent) = target.parent() {
                    make_dir(parent)?;
                }
                link_or_copy(&cached_path, &target)?;
                copied.from_cache.push((file.path.clone(), sha));
                written.push(file.path.clone());
            }
            _ if carry && regenerated(&file.path) => {}
            _ => match &file.sha256 {
                Some(sha) => input.extra_omitted.push(OmittedFile {
                    path: format!("{}/{}", row.dir, file.path),
                    size: file.size,
                    sha256: sha.clone(),
                }),
                None => copied.skipped.push((
                    format!("{}/{}", row.dir, file.path),
                    "not in the hub's cache and its SHA-256 is unknown (the agent does not \
                     hash files over 64 MiB, nor files that grow while the run writes them, \
                     like system.jsonl); fetch it with `runicorn-hub fetch` to carry it"
                        .to_owned(),
                )),
            },
        }
    }
    let have = |name: &str| written.iter().any(|w| w == name);

    if let Some(records) = store.run_record_texts(row.key)? {
        for (name, text) in records.files() {
            if !have(name) {
                write_file(&dir.join(name), text.as_bytes())?;
            }
        }
    }
    if has_artifacts_record && !have(RUN_ARTIFACTS_FILE) {
        let bytes = artifacts::run_artifacts_json(store, &row.remote, row)?;
        write_file(&dir.join(RUN_ARTIFACTS_FILE), &bytes)?;
    }
    if row.deleted && !have(".deleted") {
        // The marker's own fields are not stored; an empty record still hides the run.
        write_file(&dir.join(".deleted"), b"{}")?;
    }
    if !have("events.jsonl") {
        let path = dir.join("events.jsonl");
        let file = File::create(&path).map_err(|source| ExportError::Temp {
            path: path.clone(),
            source,
        })?;
        let mut buffered = BufWriter::new(file);
        store.write_events_jsonl(row.key, &mut buffered, &path)?;
        write_image_events(&mut buffered, &images)
            .and_then(|()| buffered.flush())
            .map_err(|source| ExportError::Temp { path, source })?;
    }
    if !have("logs.txt") {
        match row.log_synced {
            Some((start, _end)) => write_log(store, row.key, start, &dir.join("logs.txt"))?,
            None if row.log_bytes > 0 => copied.skipped.push((
                format!("{}/logs.txt", row.dir),
                "the hub has not fetched this run's log yet; sync its remote, then export again"
                    .to_owned(),
            )),
            None => {}
        }
    }
    Ok(copied)
}

/// Appends an `image` event for each of the run's images to a rebuilt `events.jsonl`. The
/// store keeps points, not image events: each is written again from its file's name (key and
/// time, the step and caption unknown), which is what the dashboard shows of an image whose
/// event it cannot read, so the importing hub shows the images the exporting hub did.
fn write_image_events(
    out: &mut impl Write,
    images: &[(Option<f64>, String, String)],
) -> io::Result<()> {
    let mut images: Vec<_> = images.iter().collect();
    images.sort_by(|a, b| a.0.unwrap_or(0.0).total_cmp(&b.0.unwrap_or(0.0)));
    for (time, key, path) in images {
        let mut event = serde_json::json!({
            "type": "image",
            "data": {"key": key, "path": path, "step": null},
        });
        if let Some(time) = time {
            event["ts"] = (*time).into();
        }
        serde_json::to_writer(&mut *out, &event)?;
        out.write_all(b"\n")?;
    }
    Ok(())
}

/// Writes the stored bytes of a run's `logs.txt` (the copy starts at `start` of the remote
/// file: a log the hub holds only the tail of is carried as that tail) a few MiB at a time.
fn write_log(store: &Store, run: RunKey, start: u64, path: &Path) -> Result<(), ExportError> {
    const PAGE: u64 = 4 << 20;
    let temp = |source| ExportError::Temp {
        path: path.to_owned(),
        source,
    };
    let mut out = BufWriter::new(File::create(path).map_err(temp)?);
    let mut offset = start;
    loop {
        let chunks = store.log_chunks_since(run, offset, PAGE)?;
        let mut moved = false;
        for chunk in chunks {
            if chunk.to <= offset || chunk.from > offset {
                continue;
            }
            // A lossy copy of an old hub may be shorter than its range: never index past it.
            let skip = usize::try_from(offset - chunk.from).unwrap_or(usize::MAX);
            out.write_all(chunk.bytes.get(skip..).unwrap_or_default())
                .map_err(temp)?;
            offset = chunk.to;
            moved = true;
        }
        if !moved {
            break;
        }
    }
    out.flush().map_err(temp)
}

/// Files rebuilt from the store when the cache does not hold them.
const REGENERATED: [&str; 9] = [
    "meta.json",
    "status.json",
    "summary.json",
    "environment.json",
    "assets.json",
    RUN_ARTIFACTS_FILE,
    "events.jsonl",
    "logs.txt",
    ".deleted",
];

fn regenerated(path: &str) -> bool {
    REGENERATED.contains(&path)
}

/// `path` as a relative path of plain components only (the store checked it already; this
/// keeps the temporary root closed whatever a store holds).
fn checked_relative(path: &str) -> Option<PathBuf> {
    let plain = |segment: &str| {
        !segment.is_empty() && segment != "." && segment != ".." && !segment.contains(['\\', '\0'])
    };
    path.split('/').all(plain).then(|| PathBuf::from(path))
}

fn make_dir(dir: &Path) -> Result<(), ExportError> {
    fs::create_dir_all(dir).map_err(|source| ExportError::Temp {
        path: dir.to_owned(),
        source,
    })
}

fn write_file(path: &Path, bytes: &[u8]) -> Result<(), ExportError> {
    fs::write(path, bytes).map_err(|source| ExportError::Temp {
        path: path.to_owned(),
        source,
    })
}

/// A hard link to the cached file (same folder tree, nothing copied), else a copy.
fn link_or_copy(cached: &Path, target: &Path) -> Result<(), ExportError> {
    if fs::hard_link(cached, target).is_ok() {
        return Ok(());
    }
    fs::copy(cached, target)
        .map(|_| ())
        .map_err(|source| ExportError::Temp {
            path: target.to_owned(),
            source,
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_failed_dashboard_export_says_why_and_leaves_no_file() {
        let tmp = tempfile::tempdir().unwrap();
        let store_dir = tmp.path().join("hub");
        drop(Store::open(&store_dir).unwrap());
        let out = tmp.path().join("runs.rbundle");
        let failure = export_for_dashboard(
            store_dir.clone(),
            vec![RunKey(7)],
            ExportContents::default(),
            out.clone(),
        )
        .await
        .unwrap_err();
        assert!(
            failure.message.contains("run 7 is not in the hub's store"),
            "{failure:?}"
        );
        assert!(!out.exists());
        assert!(!tmp.path().join("runs.rbundle.partial").exists());
        let failure = export_for_dashboard(
            store_dir.clone(),
            Vec::new(),
            ExportContents {
                metadata_only: true,
                with_artifacts: false,
            },
            out.clone(),
        )
        .await
        .unwrap_err();
        assert!(
            failure.message.contains("no run was selected"),
            "{failure:?}"
        );
        assert!(!out.exists());
        // The temporary root is gone too.
        let left: Vec<_> = fs::read_dir(store_dir.join("tmp")).unwrap().collect();
        assert!(left.is_empty(), "{left:?}");
    }

    #[test]
    fn only_plain_relative_paths_are_written() {
        assert!(checked_relative("runs/cv/r1").is_some());
        assert!(checked_relative("media/a.png").is_some());
        for bad in [
            "",
            "/etc/passwd",
            "../x",
            "runs/../../x",
            "a/./b",
            "a//b",
            "a\\b",
            "a/",
        ] {
            assert!(checked_relative(bad).is_none(), "{bad}");
        }
    }

    #[test]
    fn every_regenerated_file_is_carried_by_metadata_only() {
        // A file the store can rebuild is never only listed in a metadata-only bundle.
        for name in REGENERATED {
            assert!(METADATA_ONLY_FILES.contains(&name), "{name}");
        }
        assert!(regenerated("events.jsonl") && !regenerated("ckpt.pt"));
    }
}
