//! `runicorn-agent artifacts pack [--dry-run] [--json]`: large pooled files into chunks, with a
//! byte progress bar on a terminal once it has run a second.

use std::time::Instant;

use anyhow::Context;
use runicorn_artifact_store::pack::{pack as pack_pool, pack_total};
use runicorn_cli::human::bytes;
use runicorn_cli::progress::{bar_style, stderr_is_terminal};
use runicorn_cli::{safe, warning_label};

use super::Common;

#[derive(clap::Args, Debug)]
pub struct PackArgs {
    /// Only say what would be packed
    #[arg(long)]
    pub dry_run: bool,
}

pub fn pack(args: PackArgs, common: &Common) -> anyhow::Result<u8> {
    let root = common.root.clone();
    let total = if args.dry_run { 0 } else { pack_total(&root) };
    let bar = indicatif::ProgressBar::hidden();
    bar.set_length(total);
    if let Some(style) = bar_style("packing [{bar:30}] {bytes}/{total_bytes} ({eta})") {
        bar.set_style(style);
    }
    let started = Instant::now();
    let mut shown = false;
    let report = pack_pool(&root, args.dry_run, &mut |n| {
        bar.inc(n);
        if !shown && stderr_is_terminal() && started.elapsed().as_secs() >= 1 {
            shown = true;
            bar.set_draw_target(indicatif::ProgressDrawTarget::stderr());
        }
    })
    .with_context(|| format!("cannot pack the artifact pool under {}", root.display()))?;
    bar.finish_and_clear();
    if common.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else if args.dry_run {
        println!(
            "would pack {} file{} ({})",
            report.contents,
            if report.contents == 1 { "" } else { "s" },
            bytes(report.bytes)
        );
    } else {
        println!(
            "packed {} file{} ({}): {} new chunks ({}), {} already held; {} version file copies removed",
            report.contents,
            if report.contents == 1 { "" } else { "s" },
            bytes(report.bytes),
            report.new_chunks,
            bytes(report.new_chunk_bytes),
            report.reused_chunks,
            report.links_removed
        );
    }
    for note in &report.notes {
        eprintln!("{}: {}", warning_label(), safe(note));
    }
    Ok(0)
}
