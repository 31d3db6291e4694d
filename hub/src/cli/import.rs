//! `runicorn-hub import FILE…|- [--dry-run] [--as REMOTE] [--json] [--agent PATH]`: offline
//! bundles (ours, or upstream runicorn's `runicorn export` archives and viewer exports) into the
//! store, checked whole before anything changes and applied as one step (`bundle_import`). A
//! bar shows the bytes read, then the runs and points stored; the summary (or `--json`, the
//! `ImportReport` the dashboard gets too) says what was new, updated, unchanged or older.

use std::io::Write;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};

use indicatif::ProgressBar;
use runicorn_cli::human::{bytes, figure};
use runicorn_cli::progress::{spinner, stderr_is_terminal};
use runicorn_cli::safe;
use runicorn_hub::bundle_import::{import_bundles, ImportInput, ImportObserver, ImportOptions};
use runicorn_web::bundle_reports::{ImportReport, RunVerdict};

#[derive(clap::Args, Debug)]
pub struct ImportArgs {
    /// Bundle files to import (`-` reads one from standard input): bundles written by
    /// `runicorn-agent export` or `runicorn-hub export`, or upstream runicorn's `runicorn export`
    /// .tar.gz and its viewer's .zip exports
    #[arg(value_name = "FILE", required = true)]
    pub files: Vec<PathBuf>,
    /// Check the bundles and say what would change, changing nothing
    #[arg(long)]
    pub dry_run: bool,
    /// Store the runs under this remote instead of the one each bundle names
    #[arg(long = "as", value_name = "REMOTE")]
    pub as_remote: Option<String>,
    /// Print what was imported (or would be, with --dry-run) as JSON on stdout
    #[arg(long)]
    pub json: bool,
    /// The runicorn-agent that reads the landed bundles [default: the one beside this program,
    /// else on PATH]
    #[arg(long, value_name = "PATH")]
    pub agent: Option<PathBuf>,
}

pub fn run(hub_dir: Option<PathBuf>, args: ImportArgs) -> anyhow::Result<u8> {
    let stdin_uses = args.files.iter().filter(|f| f.as_os_str() == "-").count();
    if stdin_uses > 1 {
        anyhow::bail!("`-` (standard input) can be given once");
    }
    let inputs = args
        .files
        .iter()
        .map(|f| {
            if f.as_os_str() == "-" {
                ImportInput::Stdin
            } else {
                ImportInput::File(f.clone())
            }
        })
        .collect();
    let options = ImportOptions {
        store_dir: super::store_dir(hub_dir),
        as_remote: args.as_remote.clone(),
        dry_run: args.dry_run,
        agent_program: runicorn_hub::local_agent_program(args.agent.as_deref()),
    };
    let progress = Progress::new();
    let rt = super::runtime()?;
    let report = rt.block_on(import_bundles(inputs, &options, &progress));
    progress.finish();
    let report = report?;
    if args.json {
        let mut out = std::io::stdout().lock();
        serde_json::to_writer_pretty(&mut out, &report)?;
        writeln!(out)?;
    } else {
        print_summary(&report)?;
    }
    Ok(0)
}

/// The import's bar on stderr: a spinner with what is happening, on a terminal only.
struct Progress {
    bar: Option<ProgressBar>,
    listed: AtomicBool,
}

impl Progress {
    fn new() -> Progress {
        Progress {
            bar: stderr_is_terminal().then(|| spinner("{spinner} {msg} ({elapsed})")),
            listed: AtomicBool::new(false),
        }
    }

    fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}

impl ImportObserver for Progress {
    fn bytes_read(&self, n: u64) {
        if let Some(bar) = &self.bar {
            bar.set_message(format!("checking the bundle: {} read", bytes(n)));
        }
    }

    fn runs_listed(&self, runs: u64) {
        self.listed.store(true, Ordering::Relaxed);
        if let Some(bar) = &self.bar {
            bar.set_message(format!("storing runs: {} listed", figure(runs)));
        }
    }

    fn points_stored(&self, points: u64) {
        if let Some(bar) = &self.bar {
            bar.set_message(format!("storing points: {}", figure(points)));
        }
    }
}

fn print_summary(report: &ImportReport) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    let t = &report.totals;
    for bundle in &report.bundles {
        for source in &bundle.sources {
            let count = |v: RunVerdict| source.runs.iter().filter(|r| r.verdict == v).count();
            writeln!(
                out,
                "{}: {} runs into {}{} ({} new, {} updated, {} unchanged, {} older kept)",
                safe(&bundle.file),
                source.runs.len(),
                safe(&source.remote),
                if source.remote_created {
                    " (new remote)"
                } else {
                    ""
                },
                count(RunVerdict::New),
                count(RunVerdict::Updated),
                count(RunVerdict::Unchanged),
                count(RunVerdict::Older),
            )?;
        }
    }
    let verb = if report.dry_run {
        "would store"
    } else {
        "stored"
    };
    writeln!(
        out,
        "{verb} {} points, {} of logs, {} files ({}) into the cache{}",
        figure(t.points),
        bytes(t.log_bytes),
        figure(t.files),
        bytes(t.file_bytes),
        if report.dry_run {
            "; nothing was changed (--dry-run)"
        } else {
            ""
        }
    )?;
    Ok(())
}
