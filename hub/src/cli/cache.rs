//! `runicorn-hub cache`: what the file cache holds (in all and per remote), and `cache gc`,
//! which trims it to a size, least recently used first, keeping files in use.

use std::io::Write;
use std::path::PathBuf;

use anyhow::Context;
use runicorn_cli::color::BOLD;
use runicorn_cli::human::{bytes, parse_bytes};
use runicorn_cli::table::{Align, Cell, Table};
use runicorn_cli::{color_stdout, paint, safe};
use runicorn_store::{CacheGcReport, CacheUsage};
use serde_json::json;

#[derive(clap::Args, Debug)]
#[command(args_conflicts_with_subcommands = true)]
pub struct CacheArgs {
    #[command(subcommand)]
    pub action: Option<CacheAction>,
    /// Print a JSON object instead of text
    #[arg(long)]
    pub json: bool,
}

#[derive(clap::Subcommand, Debug)]
pub enum CacheAction {
    /// Remove cached files, least recently used first, until the cache holds at most
    /// --max-size.
    ///
    /// A file is "used" when the dashboard serves it or a fetch brings or copies it. Files in
    /// use right now (being served or copied) are kept. Removed files are fetched again from
    /// their remote when next asked for (so a removed file of a server that is gone is gone).
    ///
    /// Example: runicorn-hub cache gc --max-size 20G --dry-run
    Gc(GcArgs),
}

#[derive(clap::Args, Debug)]
pub struct GcArgs {
    /// Largest size the cache may keep: bytes, or a number with K, M, G or T (powers of 1024),
    /// e.g. 500M, 20G
    #[arg(long, value_name = "SIZE", value_parser = parse_bytes)]
    pub max_size: u64,
    /// Only say what would be removed
    #[arg(long)]
    pub dry_run: bool,
    /// Print a JSON object instead of text
    #[arg(long)]
    pub json: bool,
}

pub fn run(hub_dir: Option<PathBuf>, args: CacheArgs) -> anyhow::Result<u8> {
    let (store, _dir) = super::open_store(hub_dir)?;
    let rt = super::runtime()?;
    let mut out = std::io::stdout().lock();
    match args.action {
        None => {
            let usage = rt
                .block_on(store.call(|s| s.cache_usage()))?
                .context("cannot read the file cache")?;
            if args.json {
                serde_json::to_writer_pretty(&mut out, &usage_json(&usage))?;
                writeln!(out)?;
            } else {
                write_usage(&mut out, &usage)?;
            }
        }
        Some(CacheAction::Gc(gc)) => {
            let (max, dry_run) = (gc.max_size, gc.dry_run);
            let report = rt
                .block_on(store.call(move |s| s.cache_gc(max, dry_run)))?
                .context("cannot trim the file cache")?;
            if gc.json {
                serde_json::to_writer_pretty(&mut out, &gc_json(&report, max))?;
                writeln!(out)?;
            } else {
                write_gc(&mut out, &report, max)?;
            }
        }
    }
    Ok(0)
}

fn usage_json(u: &CacheUsage) -> serde_json::Value {
    json!({
        "dir": u.dir,
        "files": u.files,
        "bytes": u.bytes,
        "remotes": u.remotes.iter().map(|r| json!({
            "remote": r.remote, "files": r.files, "bytes": r.bytes,
        })).collect::<Vec<_>>(),
        "unreferenced_files": u.unreferenced_files,
        "unreferenced_bytes": u.unreferenced_bytes,
        "chunk_files": u.chunk_files,
        "chunk_bytes": u.chunk_bytes,
    })
}

fn write_usage(out: &mut impl Write, u: &CacheUsage) -> std::io::Result<()> {
    let color = color_stdout();
    writeln!(
        out,
        "{} {} in {} files ({})",
        paint(color, BOLD, "file cache:"),
        bytes(u.bytes),
        u.files,
        safe(&u.dir.display().to_string())
    )?;
    if u.chunk_files > 0 {
        writeln!(
            out,
            "{} {} in {} chunks (each stored once, whatever artifact, version or remote brought it)",
            paint(color, BOLD, "artifact chunks:"),
            bytes(u.chunk_bytes),
            u.chunk_files
        )?;
    }
    if u.files == 0 {
        writeln!(
            out,
            "empty: files come in when the dashboard shows them or `runicorn-hub fetch RUN` asks"
        )?;
        return Ok(());
    }
    let mut table = Table::new(&[
        ("REMOTE", Align::Left),
        ("FILES", Align::Right),
        ("SIZE", Align::Right),
    ]);
    for r in &u.remotes {
        table.push([
            Cell::from(safe(&r.remote).into_owned()),
            Cell::from(r.files.to_string()),
            Cell::from(bytes(r.bytes)),
        ]);
    }
    if u.unreferenced_files > 0 {
        table.push([
            Cell::from("(no run lists it)"),
            Cell::from(u.unreferenced_files.to_string()),
            Cell::from(bytes(u.unreferenced_bytes)),
        ]);
    }
    table.write(out, color)?;
    if u.remotes.len() > 1 {
        writeln!(
            out,
            "the same bytes in runs of two remotes are stored once and counted under both"
        )?;
    }
    Ok(())
}

fn gc_json(r: &CacheGcReport, max: u64) -> serde_json::Value {
    let list = |items: &[runicorn_store::CacheEntry]| {
        items
            .iter()
            .map(|c| json!({"sha256": c.sha256, "bytes": c.size, "last_used": c.last_used}))
            .collect::<Vec<_>>()
    };
    json!({
        "dry_run": r.dry_run,
        "max_bytes": max,
        "bytes_before": r.bytes_before,
        "bytes_after": r.bytes_after,
        "removed": list(&r.removed),
        "kept_in_use": list(&r.kept_in_use),
    })
}

fn write_gc(out: &mut impl Write, r: &CacheGcReport, max: u64) -> std::io::Result<()> {
    let freed = r.bytes_before - r.bytes_after;
    let verb = if r.dry_run { "would remove" } else { "removed" };
    if r.removed.is_empty() && r.kept_in_use.is_empty() {
        writeln!(
            out,
            "the cache holds {}, within {}: nothing to remove",
            bytes(r.bytes_before),
            bytes(max)
        )?;
        return Ok(());
    }
    writeln!(
        out,
        "{verb} {} files ({}), least recently used first: the cache {} {} → {}",
        r.removed.len(),
        bytes(freed),
        if r.dry_run { "would go" } else { "went" },
        bytes(r.bytes_before),
        bytes(r.bytes_after)
    )?;
    if !r.kept_in_use.is_empty() {
        writeln!(
            out,
            "kept {} files in use right now ({}); run gc again once they are no longer served",
            r.kept_in_use.len(),
            bytes(r.kept_in_use.iter().map(|c| c.size).sum())
        )?;
    }
    if r.bytes_after > max {
        writeln!(
            out,
            "the cache still holds more than {}: what is left is in use",
            bytes(max)
        )?;
    }
    Ok(())
}
