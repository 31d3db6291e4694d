//! `runicorn-hub remotes`: the remembered remotes, as a table or JSON.

use std::io::Write;
use std::path::PathBuf;

use runicorn_cli::{safe, safe_lines};
use runicorn_store::RemoteRow;
use serde_json::json;

use runicorn_cli::color::BOLD;
use runicorn_cli::labels::{label, Label};
use runicorn_cli::{color_stdout, human::figure, paint, time};

/// Skipped items listed per remote in the table (`--json` lists what the store returns).
const SKIPPED_LINES: usize = 10;

#[derive(clap::Args, Debug)]
pub struct RemotesArgs {
    /// Print a JSON array of objects instead of a table
    #[arg(long)]
    pub json: bool,
}

fn when(t: Option<f64>) -> String {
    time::local_second(t).unwrap_or_else(|| "never".into())
}

pub fn run(hub_dir: Option<PathBuf>, args: RemotesArgs) -> anyhow::Result<u8> {
    let (store, _dir) = super::open_store(hub_dir)?;
    let rt = super::runtime()?;
    let remotes = rt.block_on(store.call(|s| s.remotes()))??;
    let mut out = std::io::stdout().lock();
    if args.json {
        let rows: Vec<_> = remotes
            .iter()
            .map(|r| {
                json!({
                    "name": r.name,
                    "address": r.address,
                    "connected": r.connected,
                    "last_sync": r.last_sync_at,
                    "last_error": r.last_error,
                    "runs": r.runs,
                    "points": r.points,
                    "agent_host": r.agent_host,
                    "agent_root": r.agent_root,
                    "warning": r.skipped_warning(),
                    "skipped_items": r.skipped_items,
                    "skipped_files": r.skipped_files,
                    "skipped": r.skipped,
                })
            })
            .collect();
        serde_json::to_writer_pretty(&mut out, &rows)?;
        writeln!(out)?;
        return Ok(0);
    }
    if remotes.is_empty() {
        writeln!(
            out,
            "no remotes yet; add one with `runicorn-hub connect HOST`"
        )?;
        return Ok(0);
    }
    let color = color_stdout();
    writeln!(
        out,
        "{}",
        paint(
            color,
            BOLD,
            &format!(
                "{:<16}  {:<32}  {:<9}  {:<19}  {:>7}  {:>8}",
                "NAME", "ADDRESS", "CONNECTED", "LAST SYNC", "RUNS", "POINTS"
            )
        )
    )?;
    for r in &remotes {
        // Names, addresses and errors are made terminal-safe (see runicorn_cli).
        writeln!(
            out,
            "{:<16}  {:<32}  {:<9}  {:<19}  {:>7}  {:>8}",
            safe(&r.name),
            safe(&r.address),
            if r.connected { "yes" } else { "no" },
            when(r.last_sync_at),
            r.runs,
            figure(r.points)
        )?;
        if let Some(e) = &r.last_error {
            writeln!(out, "  last error: {}", safe_lines(e))?;
        }
        write_skipped(&mut out, color, r)?;
    }
    Ok(0)
}

/// The warning of a remote whose sync left items out, and a line per item (capped).
fn write_skipped(out: &mut impl Write, color: bool, r: &RemoteRow) -> std::io::Result<()> {
    let Some(warning) = r.skipped_warning() else {
        return Ok(());
    };
    writeln!(out, "  {}: {warning}", label(color, Label::Warning))?;
    for item in r.skipped.iter().take(SKIPPED_LINES) {
        let who = if item.by_hub { "hub" } else { "agent" };
        writeln!(
            out,
            "    {} {} ({who}): {}",
            item.kind,
            safe(&item.name),
            safe(&item.reason)
        )?;
    }
    let listed = r.skipped.len().min(SKIPPED_LINES) as u64;
    if r.skipped_items > listed {
        writeln!(out, "    … and {} more", r.skipped_items - listed)?;
    }
    if r.skipped_files > 0 {
        writeln!(
            out,
            "    {} files left out of run manifests (`runicorn-hub ls` shows which runs)",
            figure(r.skipped_files)
        )?;
    }
    Ok(())
}
