//! `runicorn-hub fetch RUN [--files GLOB]… [-o DIR]`: brings a run's files (all, or those the
//! globs match) into the file cache, from the cache when they are there and from the run's remote
//! otherwise (resuming a cut transfer, verifying each file's SHA-256), then copies them into DIR
//! keeping their paths relative to the run directory. One bar shows bytes, rate and ETA.
//! `runicorn-hub fetch artifact NAME:REF` (an artifact version's files) is `fetch_artifact`;
//! `runicorn-hub fetch assets RUN` (a run's upstream assets) is `fetch_assets`.

use std::io::Write;
use std::path::{Component, Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use anyhow::Context;
use futures::StreamExt;
use globset::{GlobBuilder, GlobSet, GlobSetBuilder};
use indicatif::{ProgressBar, ProgressDrawTarget};
use runicorn_cli::human::bytes;
use runicorn_cli::{error_label, progress, safe, safe_lines};
use runicorn_hub::file_fetch::{RemoteFiles, TransferProgress};
use runicorn_hub::store_thread::StoreHandle;
use runicorn_store::{FileRow, RunRef, RunRow};

/// Files fetched at once (the transfers themselves are bounded again by the fetcher).
const PARALLEL_FILES: usize = 4;
/// Manifest rows read per query.
const PAGE: u64 = 10_000;

#[derive(clap::Args, Debug)]
#[command(args_conflicts_with_subcommands = true, subcommand_negates_reqs = true)]
pub struct FetchArgs {
    #[command(subcommand)]
    pub what: Option<FetchWhat>,
    /// The run: its key, its run id, or REMOTE/RUN_ID (as `runicorn-hub ls` shows them)
    #[arg(value_name = "RUN", value_parser = super::list::parse_run_ref, required = true)]
    pub run: Option<RunRef>,
    /// Only the files whose path in the run directory matches GLOB (repeat for more): `*`
    /// stays within a folder, `**` crosses folders, e.g. --files 'ckpt/*.pt' --files '**/*.png'
    #[arg(long = "files", value_name = "GLOB")]
    pub files: Vec<String>,
    /// Directory to copy the files into, keeping their relative paths [default: ./RUN_ID]
    #[arg(short, long, value_name = "DIR")]
    pub output: Option<PathBuf>,
}

/// What else `fetch` brings.
#[derive(clap::Subcommand, Debug)]
pub enum FetchWhat {
    /// The files of an artifact version, NAME:REF (REF: latest, vN or an alias), into DIR;
    /// only the chunks the hub's cache lacks cross the link.
    ///
    /// Example: runicorn-hub fetch artifact resnet:best --remote gpu-01 -o ./weights
    Artifact(super::fetch_artifact::FetchArtifactArgs),
    /// A run's upstream assets (code snapshot, saved datasets and pretrained models, archived
    /// outputs) out of its server's archive/, each verified by its SHA-256 where upstream
    /// recorded one, into DIR (code/, datasets/, pretrained/, outputs/).
    ///
    /// Example: runicorn-hub fetch assets gpu-01/20261205_025340_694eef -o ./assets
    Assets(super::fetch_assets::FetchAssetsArgs),
}

pub fn run(hub_dir: Option<PathBuf>, args: FetchArgs) -> anyhow::Result<u8> {
    match args.what {
        Some(FetchWhat::Artifact(artifact)) => {
            return super::fetch_artifact::run(hub_dir, artifact)
        }
        Some(FetchWhat::Assets(assets)) => return super::fetch_assets::run(hub_dir, assets),
        None => {}
    }
    let globs = glob_set(&args.files)?;
    let (store, _dir) = super::open_store(hub_dir)?;
    let rt = super::runtime()?;
    rt.block_on(fetch(store, args, globs))
}

fn glob_set(patterns: &[String]) -> anyhow::Result<Option<GlobSet>> {
    if patterns.is_empty() {
        return Ok(None);
    }
    let mut set = GlobSetBuilder::new();
    for p in patterns {
        let glob = GlobBuilder::new(p)
            .literal_separator(true)
            .build()
            .with_context(|| format!("--files {p:?} is not a glob"))?;
        set.add(glob);
    }
    Ok(Some(set.build()?))
}

/// The run and the files of its manifest that `globs` match, sorted by path.
async fn selected_files(
    store: &StoreHandle,
    reference: RunRef,
    globs: Option<GlobSet>,
) -> anyhow::Result<(RunRow, Vec<FileRow>, u64)> {
    store
        .call(move |s| -> anyhow::Result<(RunRow, Vec<FileRow>, u64)> {
            let key = s.resolve_run(&reference)?;
            let run = s
                .run_by_key(key)?
                .with_context(|| format!("run {} left the store", key.0))?;
            let mut files = Vec::new();
            let mut offset = 0;
            let total = loop {
                let (page, total) = s.files_page(key, "", PAGE, offset)?;
                offset += page.len() as u64;
                let done = page.is_empty() || offset >= total;
                files.extend(
                    page.into_iter()
                        .filter(|f| globs.as_ref().is_none_or(|g| g.is_match(&f.path))),
                );
                if done {
                    break total;
                }
            };
            Ok((run, files, total))
        })
        .await?
}

async fn fetch(store: StoreHandle, args: FetchArgs, globs: Option<GlobSet>) -> anyhow::Result<u8> {
    let reference = args
        .run
        .clone()
        .context("name the run to fetch (or `fetch artifact NAME:REF`)")?;
    let shown_ref = reference.to_string();
    let (run, files, total) = selected_files(&store, reference, globs).await?;
    let run_name = format!("{}/{}", run.remote, run.id);
    if files.is_empty() {
        if total == 0 {
            anyhow::bail!("run {} lists no files", safe(&run_name));
        }
        anyhow::bail!(
            "no file of run {} matches {}; it has {total} files (the dashboard's Files tab lists them)",
            safe(&run_name),
            args.files
                .iter()
                .map(|g| format!("--files {g:?}"))
                .collect::<Vec<_>>()
                .join(" ")
        );
    }
    let out_dir = args
        .output
        .clone()
        .unwrap_or_else(|| PathBuf::from(&run.id));
    std::fs::create_dir_all(&out_dir)
        .with_context(|| format!("cannot create {}", out_dir.display()))?;
    let total_bytes: u64 = files.iter().map(|f| f.size).sum();
    let bar = transfer_bar(total_bytes, &shown_ref);
    let fetcher = RemoteFiles::new(store.clone());
    let from_remote = AtomicU64::new(0);
    let started = Instant::now();
    let results: Vec<(String, anyhow::Result<()>)> = futures::stream::iter(files)
        .map(|file| {
            let (fetcher, run, bar, out_dir, from_remote) =
                (&fetcher, run.clone(), bar.clone(), &out_dir, &from_remote);
            async move {
                let path = file.path.clone();
                let result = fetch_one(fetcher, run, &file, &bar, out_dir, from_remote).await;
                (path, result)
            }
        })
        .buffer_unordered(PARALLEL_FILES)
        .collect()
        .await;
    bar.finish_and_clear();
    let failed: Vec<&(String, anyhow::Result<()>)> =
        results.iter().filter(|(_, r)| r.is_err()).collect();
    for (path, result) in &failed {
        if let Err(e) = result {
            eprintln!(
                "{}: {}: {}",
                error_label(),
                safe(path),
                safe_lines(&format!("{e:#}"))
            );
        }
    }
    let done = results.len() - failed.len();
    let remote_bytes = from_remote.load(Ordering::Relaxed);
    let secs = started.elapsed().as_secs_f64().max(0.001);
    let mut err = std::io::stderr().lock();
    writeln!(
        err,
        "fetched {done} of {} files ({}) of run {} into {}; {} from {} ({}/s), the rest from the cache",
        results.len(),
        bytes(total_bytes),
        safe(&run_name),
        safe(&out_dir.display().to_string()),
        bytes(remote_bytes),
        safe(&run.remote),
        bytes((remote_bytes as f64 / secs) as u64)
    )?;
    Ok(if failed.is_empty() { 0 } else { 2 })
}

/// Bytes, rate and ETA on stderr, drawn only on a terminal.
pub(super) fn transfer_bar(total: u64, what: &str) -> ProgressBar {
    let bar = ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::hidden());
    if let Some(style) =
        progress::bar_style("{msg} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} ETA {eta}")
    {
        bar.set_style(style);
    }
    bar.set_message(format!("fetching {}", safe(what)));
    if progress::stderr_is_terminal() {
        bar.set_draw_target(ProgressDrawTarget::stderr());
    }
    bar
}

/// Brings one file into the cache (the bar follows its bytes) and copies it out.
async fn fetch_one(
    fetcher: &RemoteFiles,
    run: RunRow,
    file: &FileRow,
    bar: &ProgressBar,
    out_dir: &Path,
    from_remote: &AtomicU64,
) -> anyhow::Result<()> {
    let destination = out_dir.join(relative(&file.path)?);
    // Bytes held so far, and where this attempt started: a cached file reports its whole
    // size at once, a resumed transfer first the bytes it already had.
    let seen = Arc::new(AtomicU64::new(0));
    let first = Arc::new(AtomicU64::new(u64::MAX));
    let progress: TransferProgress = {
        let (seen, first, bar) = (Arc::clone(&seen), Arc::clone(&first), bar.clone());
        Arc::new(move |so_far: u64| {
            let _ = first.compare_exchange(u64::MAX, so_far, Ordering::Relaxed, Ordering::Relaxed);
            let before = seen.swap(so_far, Ordering::Relaxed);
            bar.inc(so_far.saturating_sub(before));
        })
    };
    let cached = fetcher
        .ensure_cached(run, file.path.clone(), Some(progress))
        .await?;
    // Whatever the progress calls said, the bar ends this file at its size.
    let counted = seen.load(Ordering::Relaxed);
    let started_at = first.load(Ordering::Relaxed).min(counted);
    from_remote.fetch_add(counted - started_at, Ordering::Relaxed);
    bar.inc(file.size.saturating_sub(counted));
    let source = cached.path.clone();
    tokio::task::spawn_blocking(move || copy_out(&source, &destination))
        .await
        .context("the copy stopped")?
}

/// A manifest path as a relative path with plain components only (the store checked it when it
/// came in; a file never lands outside DIR whatever it says).
pub(super) fn relative(path: &str) -> anyhow::Result<PathBuf> {
    let p = Path::new(path);
    if path.is_empty() || !p.components().all(|c| matches!(c, Component::Normal(_))) {
        anyhow::bail!("{path:?} is not a plain relative path; not copied");
    }
    Ok(p.to_owned())
}

/// Copies a cached file to `destination` through a temporary name, holding a shared lock so
/// `cache gc` keeps it meanwhile, and marks it used.
fn copy_out(source: &Path, destination: &Path) -> anyhow::Result<()> {
    let mut input = std::fs::File::open(source)
        .with_context(|| format!("cannot open the cached copy {}", source.display()))?;
    // Best effort: without locks gc may remove it, and the copy then fails with a clear error.
    let _ = input.try_lock_shared();
    let _ = std::fs::File::options()
        .write(true)
        .open(source)
        .and_then(|f| f.set_modified(std::time::SystemTime::now()));
    if let Some(parent) = destination.parent() {
        std::fs::create_dir_all(parent)
            .with_context(|| format!("cannot create {}", parent.display()))?;
    }
    let mut partial = destination.as_os_str().to_owned();
    partial.push(".part");
    let partial = PathBuf::from(partial);
    let mut output = std::fs::File::create(&partial)
        .with_context(|| format!("cannot write {}", partial.display()))?;
    std::io::copy(&mut input, &mut output)
        .and_then(|_| output.sync_all())
        .with_context(|| format!("cannot write {}", partial.display()))?;
    std::fs::rename(&partial, destination)
        .with_context(|| format!("cannot write {}", destination.display()))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs_stay_within_folders_unless_double_starred() {
        let set = glob_set(&["ckpt/*.pt".into(), "**/*.png".into()])
            .unwrap()
            .unwrap();
        assert!(set.is_match("ckpt/1.pt"));
        assert!(!set.is_match("ckpt/old/1.pt"));
        assert!(set.is_match("media/deep/x.png"));
        assert!(set.is_match("x.png"));
        assert!(!set.is_match("logs.txt"));
        assert!(glob_set(&["[".into()]).is_err());
    }

    #[test]
    fn only_plain_relative_paths_are_copied() {
        assert!(relative("a/b.txt").is_ok());
        for bad in ["", "/etc/passwd", "../x", "a/../../x", "./a"] {
            assert!(relative(bad).is_err(), "{bad}");
        }
    }
}
