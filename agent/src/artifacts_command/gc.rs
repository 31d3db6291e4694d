//! `runicorn-agent artifacts gc [--dry-run] [--json]`: reclaims pool space no version uses.

use anyhow::Context;
use runicorn_artifact_store::gc::collect_garbage;
use runicorn_cli::human::bytes;
use runicorn_cli::progress::{spinner, stderr_is_terminal};
use runicorn_cli::{safe, warning_label};

use super::Common;

#[derive(clap::Args, Debug)]
pub struct GcArgs {
    /// Only say what would be deleted
    #[arg(long)]
    pub dry_run: bool,
}

pub fn gc(args: GcArgs, common: &Common) -> anyhow::Result<u8> {
    let root = common.root.clone();
    let spin = stderr_is_terminal().then(|| spinner("{spinner} collecting garbage ({elapsed})"));
    let result = collect_garbage(&root, args.dry_run);
    if let Some(spin) = spin {
        spin.finish_and_clear();
    }
    let report = result.with_context(|| format!("artifact gc under {}", root.display()))?;
    if common.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        let verb = if args.dry_run {
            "would delete"
        } else {
            "deleted"
        };
        println!(
            "{verb} {} whole file{} ({}), {} recipe{}, {} chunk{} ({}), {} temp file{} ({}): {} in all; {} content{} in use by {} version{}",
            report.whole_files,
            plural(report.whole_files),
            bytes(report.whole_bytes),
            report.recipes,
            plural(report.recipes),
            report.chunks,
            plural(report.chunks),
            bytes(report.chunk_bytes),
            report.temp_files,
            plural(report.temp_files),
            bytes(report.temp_bytes),
            bytes(report.total_bytes()),
            report.live_contents,
            plural(report.live_contents),
            report.versions,
            plural(report.versions),
        );
    }
    if report.interrupted_removals > 0 && !common.json {
        println!(
            "and {} version folder{} an interrupted `rm` left",
            report.interrupted_removals,
            plural(report.interrupted_removals)
        );
    }
    for note in &report.notes {
        eprintln!("{}: {}", warning_label(), safe(note));
    }
    Ok(0)
}

fn plural(n: usize) -> &'static str {
    if n == 1 {
        ""
    } else {
        "s"
    }
}
