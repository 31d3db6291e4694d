//! `runicorn-hub fetch artifact NAME:REF [--remote R] [--type T] [-o DIR] [--json]`: resolves
//! the reference through the synced artifact tables, brings each file's content into the cache
//! (only the chunks the cache lacks cross the link, whatever remote or version brought the
//! others; each chunk and each whole file verified), then writes the files into DIR under their
//! paths in the version. One bar shows bytes, rate and ETA; the summary says what moved.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use anyhow::Context;
use futures::StreamExt;
use runicorn_cli::human::bytes;
use runicorn_cli::{error_label, safe, safe_lines};
use runicorn_hub::file_fetch::{ContentWanted, MovedCounter, RemoteFiles, TransferProgress};
use runicorn_hub::store_thread::StoreHandle;
use runicorn_store::{ArtifactFileRow, CachedLayout, ContentReader, ResolvedVersion};
use serde_json::json;

/// Files fetched at once (transfers are bounded again by the fetcher).
const PARALLEL_FILES: usize = 4;

#[derive(clap::Args, Debug)]
pub struct FetchArtifactArgs {
    /// The artifact version: NAME:REF, REF being latest, vN or an alias (NAME alone: latest)
    #[arg(value_name = "NAME:REF")]
    pub reference: String,
    /// Only the artifact of this remote (when several remotes have one of that name)
    #[arg(long, value_name = "REMOTE")]
    pub remote: Option<String>,
    /// Only the artifact of this type (model, dataset, …)
    #[arg(long = "type", value_name = "TYPE")]
    pub kind: Option<String>,
    /// Directory to write the files into, keeping their paths [default: ./NAME-vN]
    #[arg(short, long, value_name = "DIR")]
    pub output: Option<PathBuf>,
    /// Print what was fetched and what crossed the link as JSON on stdout
    #[arg(long)]
    pub json: bool,
}

pub fn run(hub_dir: Option<PathBuf>, args: FetchArtifactArgs) -> anyhow::Result<u8> {
    let (store, _dir) = super::open_store(hub_dir)?;
    let rt = super::runtime()?;
    rt.block_on(fetch(store, args))
}

async fn fetch(store: StoreHandle, args: FetchArtifactArgs) -> anyhow::Result<u8> {
    let (reference, remote, kind) = (
        args.reference.clone(),
        args.remote.clone(),
        args.kind.clone(),
    );
    let version: ResolvedVersion = store
        .call(move |s| s.resolve_artifact(&reference, remote.as_deref(), kind.as_deref()))
        .await??;
    let shown = format!("{}:v{}", version.name, version.version);
    if version.files.is_empty() {
        anyhow::bail!(
            "artifact {} on {} has no files (only references, or an empty version)",
            safe(&shown),
            safe(&version.remote)
        );
    }
    let out_dir = args
        .output
        .clone()
        .unwrap_or_else(|| PathBuf::from(format!("{}-v{}", version.name, version.version)));
    std::fs::create_dir_all(&out_dir)
        .with_context(|| format!("cannot create {}", out_dir.display()))?;
    let total_bytes: u64 = version.files.iter().map(|f| f.size).sum();
    let bar = super::fetch::transfer_bar(total_bytes, &shown);
    let fetcher = RemoteFiles::new(store.clone());
    let moved = Arc::new(MovedCounter::default());
    let started = Instant::now();
    let results: Vec<(ArtifactFileRow, anyhow::Result<()>)> =
        futures::stream::iter(version.files.clone())
            .map(|file| {
                let (fetcher, bar, out_dir, moved, version) = (
                    &fetcher,
                    bar.clone(),
                    &out_dir,
                    Arc::clone(&moved),
                    &version,
                );
                async move {
                    let result = fetch_one(fetcher, version, &file, &bar, out_dir, moved).await;
                    (file, result)
                }
            })
            .buffer_unordered(PARALLEL_FILES)
            .collect()
            .await;
    bar.finish_and_clear();
    let failed = results.iter().filter(|(_, r)| r.is_err()).count();
    for (file, result) in &results {
        if let Err(e) = result {
            eprintln!(
                "{}: {}: {}",
                error_label(),
                safe(&file.path),
                safe_lines(&format!("{e:#}"))
            );
        }
    }
    let moved_bytes = moved.bytes_moved.load(Ordering::Relaxed);
    let chunks_moved = moved.chunks_moved.load(Ordering::Relaxed);
    let chunks_total = moved.chunks_total.load(Ordering::Relaxed);
    let secs = started.elapsed().as_secs_f64().max(0.001);
    if args.json {
        let files: Vec<_> = results
            .iter()
            .map(|(f, r)| {
                json!({
                    "path": f.path, "size": f.size, "sha256": f.sha256,
                    "ok": r.is_ok(),
                    "error": r.as_ref().err().map(|e| format!("{e:#}")),
                })
            })
            .collect();
        let out = json!({
            "remote": version.remote, "type": version.kind, "name": version.name,
            "version": version.version, "dir": out_dir.display().to_string(),
            "files": files, "bytes_total": total_bytes, "bytes_moved": moved_bytes,
            "chunks_total": chunks_total, "chunks_moved": chunks_moved,
            "contents_cached": moved.contents_cached.load(Ordering::Relaxed),
        });
        let mut stdout = std::io::stdout().lock();
        serde_json::to_writer_pretty(&mut stdout, &out)?;
        writeln!(stdout)?;
    }
    let mut err = std::io::stderr().lock();
    writeln!(
        err,
        "fetched {} of {} files ({}) of artifact {} ({}) from {} into {}; {} crossed the link ({} of {} chunks, {}/s), the rest came from the cache",
        results.len() - failed,
        results.len(),
        bytes(total_bytes),
        safe(&shown),
        safe(&version.kind),
        safe(&version.remote),
        safe(&out_dir.display().to_string()),
        bytes(moved_bytes),
        chunks_moved,
        chunks_total,
        bytes((moved_bytes as f64 / secs) as u64)
    )?;
    Ok(if failed == 0 { 0 } else { 2 })
}

/// Brings one file's content into the cache (the bar follows it) and writes it out.
async fn fetch_one(
    fetcher: &RemoteFiles,
    version: &ResolvedVersion,
    file: &ArtifactFileRow,
    bar: &indicatif::ProgressBar,
    out_dir: &Path,
    moved: Arc<MovedCounter>,
) -> anyhow::Result<()> {
    let destination = out_dir.join(super::fetch::relative(&file.path)?);
    let seen = Arc::new(AtomicU64::new(0));
    let progress: TransferProgress = {
        let (seen, bar) = (Arc::clone(&seen), bar.clone());
        Arc::new(move |so_far: u64| {
            let before = seen.swap(so_far, Ordering::Relaxed);
            bar.inc(so_far.saturating_sub(before));
        })
    };
    let want = ContentWanted {
        sha256: file.sha256.clone(),
        size: file.size,
        stored: file.stored.clone(),
        label: format!("{}:v{}/{}", version.name, version.version, file.path),
    };
    let layout = fetcher
        .ensure_content(version.remote_id, want, Some(progress), moved)
        .await?;
    bar.inc(file.size.saturating_sub(seen.load(Ordering::Relaxed)));
    let (size, content) = (file.size, file.sha256.clone());
    tokio::task::spawn_blocking(move || write_out(&layout, size, &content, &destination))
        .await
        .context("the copy stopped")?
}

/// Writes the cached content `content` to `destination` through a temporary name, holding it
/// meanwhile so a `cache gc` keeps every part of it (`ContentReader::open_held`).
pub(super) fn write_out(
    layout: &CachedLayout,
    size: u64,
    content: &str,
    destination: &Path,
) -> anyhow::Result<()> {
    if let Some(parent) = destination.parent() {
        std::fs::create_dir_all(parent)
            .with_context(|| format!("cannot create {}", parent.display()))?;
    }
    let mut partial = destination.as_os_str().to_owned();
    partial.push(".part");
    let partial = PathBuf::from(partial);
    let mut reader = ContentReader::open_held(layout, size, content).with_context(|| {
        format!(
            "the hub's cache lost part of {} (a `cache gc` at the same moment?); fetch again",
            destination.display()
        )
    })?;
    let mut output = std::fs::File::create(&partial)
        .with_context(|| format!("cannot write {}", partial.display()))?;
    let copied = std::io::copy(&mut reader, &mut output)
        .and_then(|n| output.sync_all().map(|()| n))
        .with_context(|| format!("cannot write {}", partial.display()))?;
    if copied != size {
        let _ = std::fs::remove_file(&partial);
        anyhow::bail!(
            "the cached copy of {} holds {copied} bytes, not {size}; run `runicorn-hub cache gc` and fetch again",
            destination.display()
        );
    }
    std::fs::rename(&partial, destination)
        .with_context(|| format!("cannot write {}", destination.display()))?;
    Ok(())
}
