//! `runicorn-hub remotes`: the remembered remotes, as a table or JSON.

use std::io::Write;
use std::path::PathBuf;

use serde_json::json;

use super::terminal::{color_stdout, figure, paint};

#[derive(clap::Args, Debug)]
pub struct RemotesArgs {
    /// Print a JSON array of objects instead of a table
    #[arg(long)]
    pub json: bool,
}

fn when(t: Option<f64>) -> String {
    t.and_then(|t| chrono::DateTime::from_timestamp(t as i64, 0))
        .map(|d| {
            d.with_timezone(&chrono::Local)
                .format("%Y-%m-%d %H:%M:%S")
                .to_string()
        })
        .unwrap_or_else(|| "never".into())
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
            "1",
            &format!(
                "{:<16}  {:<32}  {:<9}  {:<19}  {:>7}  {:>8}",
                "NAME", "ADDRESS", "CONNECTED", "LAST SYNC", "RUNS", "POINTS"
            )
        )
    )?;
    for r in &remotes {
        writeln!(
            out,
            "{:<16}  {:<32}  {:<9}  {:<19}  {:>7}  {:>8}",
            r.name,
            r.address,
            if r.connected { "yes" } else { "no" },
            when(r.last_sync_at),
            r.runs,
            figure(r.points)
        )?;
        if let Some(e) = &r.last_error {
            writeln!(out, "  last error: {e}")?;
        }
    }
    Ok(0)
}
