//! `runicorn-hub artifacts`: the artifacts the store holds, from every remote: one line per
//! version (type, name, version, aliases, size, files, when, producing run, remote and host),
//! then what they take in all and what whole-file dedup saves. `--json` prints the same
//! shapes as `GET /api/artifacts` (docs/api.md). Works offline: it reads the store only.

use std::io::Write;
use std::path::PathBuf;

use runicorn_cli::color_stdout;
use runicorn_cli::human::{bytes, figure};
use runicorn_cli::safe;
use runicorn_cli::table::{Align, Cell, Table};
use runicorn_cli::time::local_minute;
use runicorn_store::{ArtifactFilter, ArtifactListing, ArtifactRow, RunLinkRow};
use serde_json::{json, Value};

#[derive(clap::Args, Debug)]
pub struct ArtifactsArgs {
    /// Only artifacts of this type (model, dataset, …)
    #[arg(long = "type", value_name = "TYPE")]
    pub kind: Option<String>,
    /// Only artifacts of this remote
    #[arg(long, value_name = "REMOTE")]
    pub remote: Option<String>,
    /// Also artifacts gone from their servers (marked)
    #[arg(long)]
    pub all: bool,
    /// Print JSON (the shapes of GET /api/artifacts) instead of a table
    #[arg(long)]
    pub json: bool,
}

pub fn run(hub_dir: Option<PathBuf>, args: ArtifactsArgs) -> anyhow::Result<u8> {
    let (store, _dir) = super::open_store(hub_dir)?;
    let rt = super::runtime()?;
    let filter = ArtifactFilter {
        kind: args.kind.clone(),
        remote: args.remote.clone(),
        include_removed: args.all,
    };
    let listing = rt.block_on(store.call(move |s| s.list_artifacts(&filter)))??;
    let mut out = std::io::stdout().lock();
    if args.json {
        serde_json::to_writer_pretty(&mut out, &listing_json(&listing))?;
        writeln!(out)?;
        return Ok(0);
    }
    if listing.artifacts.is_empty() {
        let mut what = String::from("no artifacts");
        if let Some(kind) = &args.kind {
            what.push_str(&format!(" of type {}", safe(kind)));
        }
        if let Some(remote) = &args.remote {
            what.push_str(&format!(" on remote {}", safe(remote)));
        }
        writeln!(
            out,
            "{what} in the hub's store; artifacts logged with run.log_artifact arrive with \
             `runicorn-hub sync`"
        )?;
        return Ok(0);
    }
    print_table(&mut out, &listing)?;
    let versions: usize = listing.artifacts.iter().map(|a| a.versions.len()).sum();
    writeln!(
        out,
        "{} artifacts, {} versions: {} in all, {} of distinct contents ({} saved by dedup)",
        figure(listing.artifacts.len() as u64),
        figure(versions as u64),
        bytes(listing.total_bytes),
        bytes(listing.stored_bytes),
        bytes(listing.total_bytes.saturating_sub(listing.stored_bytes)),
    )?;
    if let Some(server) = listing.server_bytes {
        writeln!(
            out,
            "on the servers after chunk-level dedup: {} ({} saved, counted per artifact)",
            bytes(server),
            bytes(listing.server_measured_bytes.saturating_sub(server)),
        )?;
    }
    Ok(0)
}

fn print_table(out: &mut impl Write, listing: &ArtifactListing) -> anyhow::Result<()> {
    let mut table = Table::new(&[
        ("TYPE", Align::Left),
        ("NAME", Align::Left),
        ("VERSION", Align::Left),
        ("ALIASES", Align::Left),
        ("SIZE", Align::Right),
        ("FILES", Align::Right),
        ("CREATED", Align::Left),
        ("PRODUCED BY", Align::Left),
        ("REMOTE", Align::Left),
        ("HOST", Align::Left),
    ]);
    for a in &listing.artifacts {
        let name = if a.removed {
            format!("{} (removed)", safe(&a.name))
        } else {
            safe(&a.name).into_owned()
        };
        if a.versions.is_empty() {
            table.push([
                Cell::from(safe(&a.kind).into_owned()),
                name.clone().into(),
                "-".into(),
                a.problem
                    .as_deref()
                    .map(|p| format!("problem: {}", safe(p)))
                    .unwrap_or_default()
                    .into(),
                "".into(),
                "".into(),
                "".into(),
                "".into(),
                safe(&a.remote).into_owned().into(),
                host(a).into(),
            ]);
        }
        for v in &a.versions {
            table.push([
                Cell::from(safe(&a.kind).into_owned()),
                name.clone().into(),
                format!("v{}", v.version).into(),
                safe(&v.aliases.join(",")).into_owned().into(),
                bytes(v.size).into(),
                figure(v.file_count).into(),
                local_minute(v.created_at).unwrap_or_default().into(),
                v.produced_by
                    .as_ref()
                    .map(describe_link)
                    .unwrap_or_default()
                    .into(),
                safe(&a.remote).into_owned().into(),
                host(a).into(),
            ]);
        }
    }
    table.write(out, color_stdout())?;
    for a in listing.artifacts.iter().filter(|a| a.problem.is_some()) {
        eprintln!(
            "{} artifact {}/{} on {}: {}",
            runicorn_cli::warning_label(),
            safe(&a.kind),
            safe(&a.name),
            safe(&a.remote),
            safe(a.problem.as_deref().unwrap_or_default())
        );
    }
    Ok(())
}

fn host(a: &ArtifactRow) -> String {
    a.host.as_deref().map(safe).unwrap_or_default().into_owned()
}

/// `RUN_ID (key N)`, or `RUN_ID (not in the hub)`.
fn describe_link(l: &RunLinkRow) -> String {
    match l.key {
        Some(key) => format!("{} (key {})", safe(&l.run_id), key.0),
        None => format!("{} (not in the hub)", safe(&l.run_id)),
    }
}

fn link_json(l: &RunLinkRow) -> Value {
    json!({"run_id": l.run_id, "dir": l.dir, "host": l.host, "key": l.key.map(|k| k.0)})
}

fn artifact_json(a: &ArtifactRow) -> Value {
    let versions: Vec<Value> = a
        .versions
        .iter()
        .map(|v| {
            json!({
                "version": v.version,
                "created_at": v.created_at,
                "description": v.description,
                "metadata": v.metadata,
                "size": v.size,
                "file_count": v.file_count,
                "aliases": v.aliases,
                "references": v.references,
                "produced_by": v.produced_by.as_ref().map(link_json),
                "used_by": v.used_by.iter().map(link_json).collect::<Vec<_>>(),
            })
        })
        .collect();
    json!({
        "remote": a.remote,
        "host": a.host,
        "dir": a.dir,
        "type": a.kind,
        "name": a.name,
        "problem": a.problem,
        "removed": a.removed,
        "total_bytes": a.total_bytes,
        "stored_bytes": a.stored_bytes,
        "saved_bytes": a.total_bytes.saturating_sub(a.stored_bytes),
        "server_bytes": a.server_bytes,
        "server_saved_bytes": a.server_bytes.map(|b| a.total_bytes.saturating_sub(b)),
        "versions": versions,
    })
}

fn listing_json(l: &ArtifactListing) -> Value {
    let mut types: Vec<&str> = l.artifacts.iter().map(|a| a.kind.as_str()).collect();
    types.sort_unstable();
    types.dedup();
    json!({
        "artifacts": l.artifacts.iter().map(artifact_json).collect::<Vec<_>>(),
        "types": types,
        "total_bytes": l.total_bytes,
        "stored_bytes": l.stored_bytes,
        "saved_bytes": l.total_bytes.saturating_sub(l.stored_bytes),
        "server_bytes": l.server_bytes,
        "server_measured_bytes": l.server_measured_bytes,
        "server_saved_bytes": l.server_bytes.map(|b| l.server_measured_bytes.saturating_sub(b)),
    })
}
