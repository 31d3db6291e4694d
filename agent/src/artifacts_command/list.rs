//! `runicorn-agent artifacts [--json] [--type T]`: every artifact with its versions (aliases,
//! sizes, producing run and host), each artifact's bytes after dedup, and the pool's size on
//! disk. A damaged artifact is listed with its problem, never fatal.

use std::io::Write;
use std::time::Instant;

use anyhow::Context;
use runicorn_artifact_store::listing::{artifact_dirs, read_artifact};
use runicorn_artifact_store::usage::{logical_and_distinct, pool_usage};
use runicorn_cli::human::bytes;
use runicorn_cli::progress::DelayedProgress;
use runicorn_cli::table::{Align, Table};
use runicorn_cli::{color_stdout, safe, time, warning_label};
use runicorn_protocol::wire::artifacts::{ArtifactChange, StoredAs};
use serde_json::{json, Value};

use super::Common;

#[derive(clap::Args, Debug)]
pub struct ListArgs {
    /// Only artifacts of this type (model, dataset, ...)
    #[arg(long = "type", value_name = "T")]
    pub kind: Option<String>,
}

pub fn list(args: ListArgs, common: &Common) -> anyhow::Result<u8> {
    let root = common.root.clone();
    let found: Vec<(String, String)> = artifact_dirs(&root)
        .into_iter()
        .filter(|(kind, _)| args.kind.as_deref().is_none_or(|k| k == kind))
        .collect();
    // Shown only on a terminal, and only after a second: small stores stay quiet.
    let bar = DelayedProgress::new(found.len(), "reading artifacts");
    let started = Instant::now();
    let artifacts: Vec<ArtifactChange> = found
        .iter()
        .map(|(kind, name)| {
            let artifact = read_artifact(&root, kind, name);
            bar.inc(1);
            if started.elapsed().as_secs() >= 1 {
                bar.show();
            }
            artifact
        })
        .collect();
    bar.finish_and_clear();
    let usage = pool_usage(&root);
    let logical: u64 = artifacts.iter().map(|a| logical_and_distinct(a).0).sum();
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    if common.json {
        let listing = json!({
            "root": root.to_string_lossy(),
            "artifacts": artifacts.iter().map(artifact_json).collect::<Vec<_>>(),
            "files_bytes": logical,
            "pool": usage,
            "stored_bytes": usage.total_bytes(),
        });
        serde_json::to_writer_pretty(&mut out, &listing).context("writing the listing")?;
        writeln!(out)?;
    } else if artifacts.is_empty() {
        writeln!(out, "no artifacts under {}", safe(&root.to_string_lossy()))?;
    } else {
        write_text(&mut out, &artifacts)?;
        writeln!(
            out,
            "\n{} in versions' files, {} stored on disk after dedup ({} whole files, {} chunks)",
            bytes(logical),
            bytes(usage.total_bytes()),
            usage.whole_files,
            usage.chunks
        )?;
    }
    out.flush().context("writing the listing")?;
    for artifact in &artifacts {
        if let Some(problem) = &artifact.problem {
            eprintln!(
                "{}: artifact {}/{}: {}",
                warning_label(),
                safe(&artifact.kind),
                safe(&artifact.name),
                safe(problem)
            );
        }
    }
    Ok(0)
}

fn artifact_json(a: &ArtifactChange) -> Value {
    let (files_bytes, distinct_bytes) = logical_and_distinct(a);
    let versions: Vec<Value> = a
        .versions
        .iter()
        .map(|v| {
            let aliases: Vec<&String> = a
                .aliases
                .iter()
                .filter(|(_, n)| **n == v.version)
                .map(|(alias, _)| alias)
                .collect();
            json!({
                "version": v.version,
                "aliases": aliases,
                "created_at": v.created_at,
                "description": v.description,
                "metadata": v.metadata,
                "size": v.files.iter().map(|f| f.size).sum::<u64>(),
                "files": v.files,
                "references": v.references,
                "produced_by": v.produced_by,
                "host": v.produced_by.as_ref().and_then(|r| r.host.clone()),
                "used_by": v.used_by,
            })
        })
        .collect();
    json!({
        "type": a.kind,
        "name": a.name,
        "dir": a.dir,
        "aliases": a.aliases,
        "versions": versions,
        "files_bytes": files_bytes,
        "distinct_bytes": distinct_bytes,
        "problem": a.problem,
    })
}

fn write_text(out: &mut impl Write, artifacts: &[ArtifactChange]) -> anyhow::Result<()> {
    let color = color_stdout();
    for (i, a) in artifacts.iter().enumerate() {
        if i > 0 {
            writeln!(out)?;
        }
        let (files_bytes, distinct_bytes) = logical_and_distinct(a);
        writeln!(
            out,
            "{}/{}: {} version{}, {} in files, {} distinct",
            safe(&a.kind),
            safe(&a.name),
            a.versions.len(),
            if a.versions.len() == 1 { "" } else { "s" },
            bytes(files_bytes),
            bytes(distinct_bytes)
        )?;
        let mut table = Table::new(&[
            ("VERSION", Align::Left),
            ("ALIASES", Align::Left),
            ("CREATED", Align::Left),
            ("FILES", Align::Right),
            ("SIZE", Align::Right),
            ("STORED", Align::Left),
            ("PRODUCED BY", Align::Left),
            ("HOST", Align::Left),
        ]);
        for v in &a.versions {
            let aliases: Vec<&str> = a
                .aliases
                .iter()
                .filter(|(_, n)| **n == v.version)
                .map(|(alias, _)| alias.as_str())
                .collect();
            let stored = stored_summary(v.files.iter().map(|f| f.stored));
            table.push([
                format!("v{}", v.version).into(),
                safe(&aliases.join(",")).to_string().into(),
                time::local_minute(v.created_at).unwrap_or_default().into(),
                v.files.len().to_string().into(),
                bytes(v.files.iter().map(|f| f.size).sum()).into(),
                stored.into(),
                safe(
                    &v.produced_by
                        .as_ref()
                        .map(|r| format!("{} ({})", r.run_id, r.dir))
                        .unwrap_or_default(),
                )
                .to_string()
                .into(),
                safe(
                    v.produced_by
                        .as_ref()
                        .and_then(|r| r.host.as_deref())
                        .unwrap_or(""),
                )
                .to_string()
                .into(),
            ]);
        }
        table.write(out, color)?;
    }
    Ok(())
}

/// `whole`, `chunked`, `whole+chunked`, with `MISSING` when any file lost its bytes.
fn stored_summary(kinds: impl Iterator<Item = StoredAs>) -> String {
    let (mut whole, mut chunked, mut missing) = (false, false, false);
    for kind in kinds {
        match kind {
            StoredAs::Whole => whole = true,
            StoredAs::Chunked => chunked = true,
            StoredAs::Missing | StoredAs::Unknown => missing = true,
        }
    }
    let mut parts = Vec::new();
    if whole {
        parts.push("whole");
    }
    if chunked {
        parts.push("chunked");
    }
    if missing {
        parts.push("MISSING");
    }
    parts.join("+")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stored_summaries() {
        assert_eq!(
            stored_summary([StoredAs::Whole, StoredAs::Chunked].into_iter()),
            "whole+chunked"
        );
        assert_eq!(stored_summary([StoredAs::Missing].into_iter()), "MISSING");
        assert_eq!(stored_summary([].into_iter()), "");
    }
}
