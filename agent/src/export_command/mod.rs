//! `runicorn-agent export`: packs runs of the storage root into one offline bundle
//! (`docs/run-format.md`, "Offline bundles (format)") written to a file or standard output, so
//! runs can be carried where no SSH reaches (`ssh login-node runicorn-agent export -o - >
//! runs.rbundle`). Selection ([`selection`]) is `runicorn-agent ls`'s, plus `--run` and
//! `--since` ([`since`]); `--with-artifacts` adds the artifact versions the runs touched
//! ([`artifacts`]); the file appears only once whole ([`output`]); progress and messages go to
//! stderr ([`progress`]), and `--json` prints the report ([`report`]).

mod artifacts;
mod output;
mod progress;
mod report;
mod selection;
mod since;

use std::collections::BTreeSet;
use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use runicorn_bundle::{
    write_bundle_generated, GeneratedFile, Omit, SourceInput, WriteOptions, METADATA_ONLY_FILES,
};
use runicorn_cli::{safe, warning_label};
use runicorn_protocol::run_format::process::local_hostname;
use runicorn_protocol::run_format::RunStatus;

use crate::root_args::RootArgs;
use output::{Counted, Output};
use report::{ExportReport, ExportSkipped};
use selection::{select_runs, Filters};

/// zstd level of exported bundles (zstd's default: fast, and events compress very well).
const ZSTD_LEVEL: i32 = 3;

#[derive(clap::Args, Debug)]
pub struct ExportArgs {
    #[command(flatten)]
    pub root: RootArgs,
    /// Only runs whose path is PREFIX or lies below it (`cv` matches `cv/yolo`, not `cvx`)
    #[arg(long, value_name = "PREFIX")]
    pub path: Option<String>,
    /// Only this run: its id, or its directory (relative to the root or absolute); repeat for
    /// more. Each must name exactly one run
    #[arg(long = "run", value_name = "REF")]
    pub runs: Vec<String>,
    /// Only runs created, ended or logging since TIME: an ISO date or date-time (local time
    /// unless it has an offset) or a span back from now (90m, 12h, 3d, 2w)
    #[arg(long, value_name = "TIME")]
    pub since: Option<String>,
    /// Only runs with this status
    #[arg(long, value_name = "S", value_parser = clap::builder::PossibleValuesParser::new(
        RunStatus::ALL.map(|s| s.as_str())))]
    pub status: Option<String>,
    /// Also export soft-deleted runs (those holding a .deleted marker; a run named by --run is
    /// always exported)
    #[arg(long)]
    pub all: bool,
    /// Carry only each run's records, events.jsonl and logs.txt; list every other file (media,
    /// checkpoints) by size and SHA-256 without its bytes
    #[arg(long)]
    pub metadata_only: bool,
    /// Also carry the artifact versions the runs produced or used (their files and pool
    /// contents)
    #[arg(long)]
    pub with_artifacts: bool,
    /// The remote name the runs are imported under [default: this host's name]
    #[arg(long, value_name = "NAME")]
    pub name: Option<String>,
    /// Where to write the bundle; `-` for standard output (nothing else is written there)
    #[arg(short = 'o', long = "output", value_name = "FILE|-")]
    pub output: PathBuf,
    /// Print a JSON report (file, runs, members, omitted, contents, content_bytes,
    /// bundle_bytes, skipped) instead of the summary line; on stderr with `-o -`
    #[arg(long)]
    pub json: bool,
}

pub fn export(args: ExportArgs) -> anyhow::Result<u8> {
    let root = args.root.resolve();
    if !root.is_dir() {
        bail!(
            "storage root {} is not a directory; give the root holding the runs with --root",
            root.display()
        );
    }
    let since = args
        .since
        .as_deref()
        .map(|text| since::parse_since(text, runicorn_cli::time::now()))
        .transpose()
        .map_err(anyhow::Error::msg)?;
    let filters = Filters {
        path: args.path.clone(),
        status: args.status.clone(),
        all: args.all,
        refs: args.runs.clone(),
        since,
    };
    let runs = select_runs(&root, &filters)?;
    if runs.is_empty() {
        eprintln!(
            "{}: no run under {} matches; the bundle holds no runs",
            warning_label(),
            safe(&root.to_string_lossy())
        );
    }

    let mut input = SourceInput {
        name: args.name.clone().unwrap_or_else(local_hostname),
        host: local_hostname(),
        root_label: std::fs::canonicalize(&root)
            .unwrap_or_else(|_| root.clone())
            .to_string_lossy()
            .into_owned(),
        dir: root.clone(),
        runs: runs.iter().map(|r| r.dir.clone()).collect(),
        artifact_versions: Vec::new(),
        extra_paths: Vec::new(),
        omit: if args.metadata_only {
            Omit::AllButRunFiles(
                METADATA_ONLY_FILES
                    .iter()
                    .map(|f| (*f).to_owned())
                    .collect(),
            )
        } else {
            Omit::Nothing
        },
        extra_omitted: Vec::new(),
        annotations: Vec::new(),
        mtimes: Default::default(),
    };
    if input.name.trim().is_empty() {
        bail!("--name is empty; give the remote name the runs are imported under");
    }

    // Packing and gc wait while the bundle is written, so no pool file it lists disappears.
    let mut generated = Vec::new();
    let _pool_lock = if args.with_artifacts {
        let found = artifacts::collect(&root, &runs);
        for problem in &found.problems {
            eprintln!("{}: {}", warning_label(), safe(problem));
        }
        input.artifact_versions = found.versions;
        input.extra_paths = found.paths;
        generated = found.indexes;
        if input.extra_paths.is_empty() {
            None
        } else {
            match runicorn_artifact_store::locks::pool_shared(&root) {
                Ok(lock) => Some(lock),
                Err(err) => {
                    eprintln!(
                        "{}: {err}; exporting without holding the pool lock",
                        warning_label()
                    );
                    None
                }
            }
        }
    } else {
        None
    };

    let report = write(&args.output, &input, &generated)?;
    let to_stdout = args.output == Path::new("-");
    if args.json {
        let text = serde_json::to_string_pretty(&report).context("writing the report")?;
        if to_stdout {
            eprintln!("{text}");
        } else {
            let mut out = std::io::stdout().lock();
            writeln!(out, "{text}").context("writing the report")?;
        }
    } else {
        eprintln!(
            "exported {} run{} ({} files, {} only listed; {} of contents) to {} ({})",
            report.runs,
            if report.runs == 1 { "" } else { "s" },
            report.members,
            report.omitted,
            runicorn_cli::human::bytes(report.content_bytes),
            safe(&report.file),
            runicorn_cli::human::bytes(report.bundle_bytes),
        );
    }
    Ok(0)
}

/// Writes the bundle of `input` to `target` (`-`: standard output) and reports it.
fn write(
    target: &Path,
    input: &SourceInput,
    generated: &[GeneratedFile],
) -> anyhow::Result<ExportReport> {
    let options = WriteOptions {
        zstd_level: ZSTD_LEVEL,
        created_by: format!("runicorn-agent {}", env!("CARGO_PKG_VERSION")),
    };
    let output = Output::open(target)?;
    let mut bar = progress::BundleProgress::new();
    let counted = Counted {
        inner: output,
        bytes: 0,
    };
    let written = write_bundle_generated(
        std::slice::from_ref(input),
        generated,
        &options,
        counted,
        &mut bar,
    );
    bar.finish();
    let (counted, written) = match written {
        Ok(done) => done,
        Err(err) => {
            // the writer consumed the output; a partial file is removed by name
            remove_partial(target);
            // the bundle error's text already carries its cause: no chain, no repeat
            return Err(anyhow::anyhow!("exporting to {}: {err}", target.display()));
        }
    };
    let bundle_bytes = counted.bytes;
    counted.inner.finish()?;
    for skipped in &written.skipped {
        eprintln!(
            "{}: {} left out: {}",
            warning_label(),
            safe(&skipped.path),
            skipped.reason
        );
    }
    let runs: BTreeSet<&str> = written
        .manifest
        .sources
        .iter()
        .flat_map(|s| s.runs.iter().map(String::as_str))
        .collect();
    Ok(ExportReport {
        file: target.to_string_lossy().into_owned(),
        runs: runs.len() as u64,
        members: written.manifest.members.len() as u64,
        omitted: written.omitted as u64,
        contents: written.contents as u64,
        content_bytes: written.content_bytes,
        bundle_bytes,
        skipped: written
            .skipped
            .iter()
            .map(|s| ExportSkipped {
                path: s.path.clone(),
                reason: s.reason.to_owned(),
            })
            .collect(),
    })
}

/// Removes `FILE.partial` after a failed export to `FILE`.
fn remove_partial(target: &Path) {
    if target != Path::new("-") {
        let mut name = target.as_os_str().to_owned();
        name.push(".partial");
        let _ = std::fs::remove_file(PathBuf::from(name));
    }
}
