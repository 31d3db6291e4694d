//! `runicorn-hub fetch assets RUN [-o DIR] [--json]`: copies a run's upstream assets (written by
//! upstream runicorn 0.7: the code snapshot, saved datasets and pretrained models, archived
//! outputs) out of its server's `archive/`, verified, into DIR:
//! `code/code_snapshot.zip`, `datasets/<name>/…`, `pretrained/<name>/…`, `outputs/<key>`.
//!
//! Where each asset's bytes are comes from `runicorn_store::asset_entries` (never from the
//! absolute `archive_path` upstream wrote): a blob (`archive/blobs/…`) goes through the hub's
//! content fetch by its SHA-256 (cached, only the chunks the cache lacks cross the link, checked
//! whole); a directory with a manifest (`archive/manifests/…`) is rebuilt file by file from the
//! manifest's blobs; a rolling copy (`archive/outputs/rolling/…`) is copied as it is, checked
//! against its SHA-256 when upstream recorded one. Assets upstream did not save are listed as
//! skipped. One bar shows bytes and rate; the summary says what was copied and verified.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use anyhow::Context;
use runicorn_cli::human::bytes;
use runicorn_cli::{error_label, safe, safe_lines};
use runicorn_hub::file_fetch::{ContentWanted, MovedCounter, RemoteFiles, TransferProgress, BLOB};
use runicorn_hub::store_thread::StoreHandle;
use runicorn_store::{
    asset_entries, manifest_entries, AssetCategory, AssetEntry, AssetKind, RemoteId, RunRef, RunRow,
};
use serde_json::json;

/// The largest directory manifest read (upstream's are a few KiB per thousand files).
const MAX_MANIFEST_BYTES: u64 = 64 << 20;

/// Rolling directory copies carry this marker file; it is not one of the directory's files.
const COMPLETE_MARKER: &str = ".complete";

#[derive(clap::Args, Debug)]
pub struct FetchAssetsArgs {
    /// The run: its key, its run id, or REMOTE/RUN_ID (as `runicorn-hub ls` shows them)
    #[arg(value_name = "RUN", value_parser = super::list::parse_run_ref)]
    pub run: RunRef,
    /// Directory to write the assets into [default: ./RUN_ID-assets]
    #[arg(short, long, value_name = "DIR")]
    pub output: Option<PathBuf>,
    /// Print each asset, where it went and whether it verified, as JSON on stdout
    #[arg(long)]
    pub json: bool,
}

pub fn run(hub_dir: Option<PathBuf>, args: FetchAssetsArgs) -> anyhow::Result<u8> {
    let (store, _dir) = super::open_store(hub_dir)?;
    let rt = super::runtime()?;
    rt.block_on(fetch(store, args))
}

/// What became of one asset.
#[derive(Debug, Default)]
struct Outcome {
    /// Where it was written, relative to DIR.
    written: Option<String>,
    files: u64,
    bytes: u64,
    /// Every byte was checked against a SHA-256 (false: upstream recorded none for it).
    verified: bool,
}

/// Where an asset goes below DIR.
fn destination_of(entry: &AssetEntry) -> anyhow::Result<PathBuf> {
    let file_name = |entry: &AssetEntry| {
        entry
            .uri
            .as_deref()
            .and_then(|u| u.rsplit(['/', '\\']).find(|p| !p.is_empty()))
            .filter(|n| runicorn_store::safe_relative(n))
            .unwrap_or(&entry.name)
            .to_owned()
    };
    let rel = match (entry.category, entry.kind) {
        (AssetCategory::Code, _) => format!("code/{}", runicorn_store::CODE_SNAPSHOT_NAME),
        (AssetCategory::Output, _) => {
            let key = entry.detail.as_deref().unwrap_or(&entry.name);
            format!("outputs/{}", key.trim_start_matches("./"))
        }
        (category, AssetKind::File) => {
            format!(
                "{}/{}/{}",
                category.manifest_dir(),
                entry.name,
                file_name(entry)
            )
        }
        (category, AssetKind::Dir) => format!("{}/{}", category.manifest_dir(), entry.name),
    };
    super::fetch::relative(&rel)
}

async fn fetch(store: StoreHandle, args: FetchAssetsArgs) -> anyhow::Result<u8> {
    let reference = args.run.clone();
    let (run, assets): (RunRow, Option<serde_json::Value>) = store
        .call(move |s| -> anyhow::Result<_> {
            let key = s.resolve_run(&reference)?;
            let run = s
                .run_by_key(key)?
                .with_context(|| format!("run {} left the store", key.0))?;
            Ok((run, s.run_assets(key)?))
        })
        .await??;
    let run_name = format!("{}/{}", run.remote, run.id);
    let Some(assets) = assets else {
        anyhow::bail!(
            "run {} has no upstream assets (no assets.json was synced); its artifacts are fetched with `runicorn-hub fetch artifact NAME:REF`",
            safe(&run_name)
        );
    };
    let entries = asset_entries(&assets);
    let (saved, unsaved): (Vec<AssetEntry>, Vec<AssetEntry>) =
        entries.into_iter().partition(|e| e.saved);
    let out_dir = args
        .output
        .clone()
        .unwrap_or_else(|| PathBuf::from(format!("{}-assets", run.id)));
    std::fs::create_dir_all(&out_dir)
        .with_context(|| format!("cannot create {}", out_dir.display()))?;
    let known: u64 = saved.iter().filter_map(|e| e.size).sum();
    let bar = super::fetch::transfer_bar(known, &format!("assets of {run_name}"));
    let fetcher = RemoteFiles::new(store.clone());
    let moved = Arc::new(MovedCounter::default());
    let started = Instant::now();
    let mut results: Vec<(AssetEntry, anyhow::Result<Outcome>)> = Vec::new();
    for entry in saved {
        let result = fetch_asset(&fetcher, run.remote_id, &entry, &out_dir, &bar, &moved).await;
        if let Ok(o) = &result {
            // Sizes upstream did not record: the bar's total grows as they become known.
            if bar.position() > bar.length().unwrap_or(0) || o.bytes > 0 {
                bar.set_length(bar.length().unwrap_or(0).max(bar.position()));
            }
        }
        results.push((entry, result));
    }
    bar.finish_and_clear();
    let failed = results.iter().filter(|(_, r)| r.is_err()).count();
    for (entry, result) in &results {
        if let Err(e) = result {
            eprintln!(
                "{}: {} {}: {}",
                error_label(),
                entry.category.as_str(),
                safe(&entry.name),
                safe_lines(&format!("{e:#}"))
            );
        }
    }
    let copied: Vec<&Outcome> = results
        .iter()
        .filter_map(|(_, r)| r.as_ref().ok())
        .collect();
    let total_files: u64 = copied.iter().map(|o| o.files).sum();
    let total_bytes: u64 = copied.iter().map(|o| o.bytes).sum();
    let unverified = copied.iter().filter(|o| !o.verified).count();
    let moved_bytes = moved.bytes_moved.load(Ordering::Relaxed);
    if args.json {
        let row = |e: &AssetEntry| {
            json!({
                "category": e.category, "name": e.name, "kind": e.kind, "saved": e.saved,
                "sha256": e.sha256, "archive": e.archive,
            })
        };
        let mut assets_json: Vec<serde_json::Value> = results
            .iter()
            .map(|(e, r)| {
                let mut v = row(e);
                match r {
                    Ok(o) => {
                        v["ok"] = json!(true);
                        v["path"] = json!(o.written);
                        v["files"] = json!(o.files);
                        v["bytes"] = json!(o.bytes);
                        v["verified"] = json!(o.verified);
                    }
                    Err(err) => {
                        v["ok"] = json!(false);
                        v["error"] = json!(format!("{err:#}"));
                    }
                }
                v
            })
            .collect();
        assets_json.extend(unsaved.iter().map(|e| {
            let mut v = row(e);
            v["skipped"] = json!("not saved by upstream (only recorded)");
            v
        }));
        let out = json!({
            "remote": run.remote, "run": run.id, "dir": out_dir.display().to_string(),
            "assets": assets_json, "files": total_files, "bytes": total_bytes,
            "bytes_moved": moved_bytes,
            "contents_cached": moved.contents_cached.load(Ordering::Relaxed),
        });
        let mut stdout = std::io::stdout().lock();
        serde_json::to_writer_pretty(&mut stdout, &out)?;
        writeln!(stdout)?;
    }
    let secs = started.elapsed().as_secs_f64().max(0.001);
    let mut err = std::io::stderr().lock();
    writeln!(
        err,
        "fetched {} of {} saved assets ({} files, {}) of run {} into {}; {} crossed the link ({}/s){}{}",
        results.len() - failed,
        results.len(),
        total_files,
        bytes(total_bytes),
        safe(&run_name),
        safe(&out_dir.display().to_string()),
        bytes(moved_bytes),
        bytes((moved_bytes as f64 / secs) as u64),
        if unverified > 0 {
            format!("; {unverified} copied unverified (upstream recorded no SHA-256 for them)")
        } else {
            String::new()
        },
        if unsaved.is_empty() {
            String::new()
        } else {
            format!(
                "; {} not saved by upstream skipped ({})",
                unsaved.len(),
                unsaved
                    .iter()
                    .map(|e| format!("{} {}", e.category.as_str(), safe(&e.name)))
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        }
    )?;
    Ok(if failed == 0 { 0 } else { 2 })
}

/// A progress callback that adds to the bar what a transfer reports beyond its last report.
fn bar_progress(bar: &indicatif::ProgressBar) -> (TransferProgress, Arc<AtomicU64>) {
    let seen = Arc::new(AtomicU64::new(0));
    let (s, b) = (Arc::clone(&seen), bar.clone());
    let progress: TransferProgress = Arc::new(move |so_far: u64| {
        let before = s.swap(so_far, Ordering::Relaxed);
        b.inc(so_far.saturating_sub(before));
    });
    (progress, seen)
}

async fn fetch_asset(
    fetcher: &RemoteFiles,
    remote_id: RemoteId,
    entry: &AssetEntry,
    out_dir: &Path,
    bar: &indicatif::ProgressBar,
    moved: &Arc<MovedCounter>,
) -> anyhow::Result<Outcome> {
    let Some(archive) = entry.archive.clone() else {
        anyhow::bail!("its assets.json entry names no usable archive location; nothing to copy");
    };
    let rel = destination_of(entry)?;
    let destination = out_dir.join(&rel);
    let written = Some(rel.display().to_string());
    match entry.kind {
        AssetKind::File => {
            let (size, verified) =
                if archive.starts_with("archive/blobs/") && entry.sha256.is_some() {
                    let sha = entry.sha256.clone().unwrap_or_default();
                    let size = blob_to(
                        fetcher,
                        remote_id,
                        &sha,
                        &entry.name,
                        &destination,
                        bar,
                        moved,
                    )
                    .await?;
                    (size, true)
                } else {
                    let (progress, _) = bar_progress(bar);
                    let copy = fetcher
                        .copy_archive_file(
                            remote_id,
                            &archive,
                            entry.sha256.as_deref(),
                            &destination,
                            Some(progress),
                        )
                        .await?;
                    moved.bytes_moved.fetch_add(copy.size, Ordering::Relaxed);
                    (copy.size, entry.sha256.is_some())
                };
            Ok(Outcome {
                written,
                files: 1,
                bytes: size,
                verified,
            })
        }
        AssetKind::Dir => {
            let mut outcome = Outcome {
                written,
                verified: true,
                ..Outcome::default()
            };
            if let Some(manifest) = &entry.manifest {
                let raw = fetcher
                    .read_archive_file(remote_id, manifest, MAX_MANIFEST_BYTES)
                    .await?;
                let value: serde_json::Value = serde_json::from_slice(&raw)
                    .with_context(|| format!("its manifest {} is not JSON", safe(manifest)))?;
                let files = manifest_entries(&value);
                for f in files {
                    let dest = destination.join(super::fetch::relative(&f.path)?);
                    let label = format!("{}/{}", entry.name, f.path);
                    outcome.bytes +=
                        blob_to(fetcher, remote_id, &f.sha256, &label, &dest, bar, moved).await?;
                    outcome.files += 1;
                }
            } else {
                // A rolling copy: its files as they are (upstream hashed none of them).
                outcome.verified = false;
                for f in fetcher.list_archive_dir(remote_id, &archive).await? {
                    if f.path == COMPLETE_MARKER {
                        continue;
                    }
                    let dest = destination.join(super::fetch::relative(&f.path)?);
                    let (progress, _) = bar_progress(bar);
                    let copy = fetcher
                        .copy_archive_file(
                            remote_id,
                            &format!("{archive}/{}", f.path),
                            None,
                            &dest,
                            Some(progress),
                        )
                        .await?;
                    moved.bytes_moved.fetch_add(copy.size, Ordering::Relaxed);
                    outcome.bytes += copy.size;
                    outcome.files += 1;
                }
            }
            Ok(outcome)
        }
    }
}

/// Brings the blob `sha256` into the hub's cache (verified) and writes it to `destination`;
/// its size.
async fn blob_to(
    fetcher: &RemoteFiles,
    remote_id: RemoteId,
    sha256: &str,
    label: &str,
    destination: &Path,
    bar: &indicatif::ProgressBar,
    moved: &Arc<MovedCounter>,
) -> anyhow::Result<u64> {
    let (progress, _) = bar_progress(bar);
    let want = ContentWanted {
        sha256: sha256.to_owned(),
        size: 0,
        stored: BLOB.to_owned(),
        label: label.to_owned(),
    };
    let layout = fetcher
        .ensure_content(remote_id, want, Some(progress), Arc::clone(moved))
        .await?;
    let (destination, content) = (destination.to_owned(), sha256.to_owned());
    tokio::task::spawn_blocking(move || -> anyhow::Result<u64> {
        let size = layout
            .size()
            .context("cannot read the cached copy; run `runicorn-hub fetch assets` again")?;
        super::fetch_artifact::write_out(&layout, size, &content, &destination)?;
        Ok(size)
    })
    .await
    .context("the copy stopped")?
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture_entries() -> Vec<AssetEntry> {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../tests/fixtures/upstream-0.7.2-assets/runs/assets/compat/20261205_025340_694eef/assets.json"
        );
        asset_entries(&serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap())
    }

    #[test]
    fn assets_land_in_one_folder_per_category() {
        let places: Vec<String> = fixture_entries()
            .iter()
            .map(|e| destination_of(e).unwrap().display().to_string())
            .collect();
        assert_eq!(
            places,
            [
                "code/code_snapshot.zip",
                "datasets/cifar",
                "datasets/labels/labels.csv",
                "datasets/unsaved/cifar",
                "pretrained/backbone/backbone.pt",
                "pretrained/hub-model/model",
                "outputs/outputs/train.log",
                "outputs/outputs/ckpt_dir",
                "outputs/outputs/best.pt",
                "outputs/outputs_cas/final.pt",
            ]
        );
    }

    #[test]
    fn an_unsafe_name_is_refused() {
        let mut e = fixture_entries().remove(1);
        e.name = "../escape".into();
        assert!(destination_of(&e).is_err());
    }
}
