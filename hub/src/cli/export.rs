//! `runicorn-hub export`: runs of the store as one offline bundle file (or standard output),
//! selected as `runicorn-hub ls` selects them (run references, `--remote`, `--path`,
//! `--status`, `--where`, `--all`) plus `--since`; the work is `runicorn_hub::bundle_export`.
//! A progress bar on stderr while reading runs, hashing and writing; `--json` prints the
//! `ExportReport`. A file is written as `FILE.partial` and renamed when complete, so a failed
//! export leaves nothing at `FILE`.

use std::io::{BufWriter, IsTerminal, Write};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use chrono::{DateTime, Local, NaiveDate, NaiveDateTime, TimeZone};
use indicatif::{ProgressBar, ProgressDrawTarget};
use runicorn_bundle::{Phase, Progress};
use runicorn_cli::human::bytes as human_bytes;
use runicorn_cli::{progress, safe};
use runicorn_hub::bundle_export::{export_runs_to_file, export_runs_with_progress, ExportProgress};
use runicorn_protocol::run_format::RunStatus;
use runicorn_store::{RunKey, RunQuery, RunRef, RunRow, Store};
use runicorn_web::bundle_reports::{ExportContents, ExportReport};

use super::list::{parse_run_ref, where_error};

#[derive(clap::Args, Debug)]
pub struct ExportArgs {
    /// Only these runs, whatever their state: each a key (42), a run id
    /// (20261202_150537_a4f9e9) or REMOTE/RUN_ID
    #[arg(value_name = "RUN", value_parser = parse_run_ref,
          conflicts_with_all = ["remote", "path", "status", "filter", "all"])]
    pub runs: Vec<RunRef>,
    /// Only runs of this remote
    #[arg(long, value_name = "NAME")]
    pub remote: Option<String>,
    /// Only runs under this path (whole segments: `cv` matches cv/resnet, not cvx)
    #[arg(long, value_name = "PATH")]
    pub path: Option<String>,
    /// Only runs with these statuses (comma-separated)
    #[arg(long, value_delimiter = ',', value_parser = clap::builder::PossibleValuesParser::new(
        RunStatus::ALL.map(|s| s.as_str())))]
    pub status: Vec<String>,
    /// Only runs matching this expression of the filter language, as `runicorn-hub ls --where`
    #[arg(long = "where", value_name = "EXPR")]
    pub filter: Option<String>,
    /// Only runs created or updated since TIME: a date (2026-12-01), a local date and time
    /// (2026-12-01T14:30), RFC 3339 (2026-12-01T14:30:00Z), or a span back from now (30m, 12h,
    /// 3d, 2w)
    #[arg(long, value_name = "TIME", value_parser = parse_since)]
    pub since: Option<f64>,
    /// Carry only each run's records, events.jsonl and logs.txt; list every other file (name,
    /// size, SHA-256) without its bytes
    #[arg(long)]
    pub metadata_only: bool,
    /// Also carry the artifact versions the runs produced or used: each version's manifest and
    /// metadata, and the contents the hub's cache holds (the others listed without bytes; fetch
    /// them first with `runicorn-hub fetch artifact NAME:vN` to carry them)
    #[arg(long)]
    pub with_artifacts: bool,
    /// Also runs in the hub's recycle bin, soft-deleted on their server, or gone from it
    #[arg(long)]
    pub all: bool,
    /// The bundle file to write, or `-` for standard output
    #[arg(short = 'o', long = "output", value_name = "FILE")]
    pub output: PathBuf,
    /// Print what was exported as JSON on stdout (not with `-o -`)
    #[arg(long)]
    pub json: bool,
}

pub fn run(hub_dir: Option<PathBuf>, args: ExportArgs) -> anyhow::Result<u8> {
    let to_stdout = args.output.as_os_str() == "-";
    if to_stdout && args.json {
        bail!("--json prints on stdout, which carries the bundle with `-o -`; write the bundle to a file instead (-o FILE)");
    }
    if to_stdout && std::io::stdout().is_terminal() {
        bail!("refusing to write a binary bundle to the terminal; redirect standard output (`-o - > runs.rbundle`) or give -o FILE");
    }
    let query = match args.filter.as_deref().map(RunQuery::parse) {
        None => None,
        Some(Ok(query)) => query,
        Some(Err(e)) => {
            eprint!("{}", where_error(args.filter.as_deref().unwrap_or(""), &e));
            return Ok(2);
        }
    };
    let dir = super::store_dir(hub_dir);
    let runs = select(&dir, &args, query)?;
    if runs.is_empty() {
        bail!("no run matches the selection; nothing was exported (see `runicorn-hub ls` for what the store holds)");
    }
    let keys: Vec<RunKey> = runs.iter().map(|r| r.key).collect();
    let contents = ExportContents {
        metadata_only: args.metadata_only,
        with_artifacts: args.with_artifacts,
    };
    let mut bar = BundleBar::new();
    let report = if to_stdout {
        let stdout = std::io::stdout();
        let mut out = BufWriter::new(stdout.lock());
        let report = export_runs_with_progress(&dir, &keys, contents, &mut out, &mut bar)
            .context("export failed")?;
        out.flush()
            .context("cannot write the bundle to standard output")?;
        ExportReport {
            file: "-".to_owned(),
            ..report
        }
    } else {
        export_runs_to_file(&dir, &keys, contents, &args.output, &mut bar)
            .context("export failed")?
    };
    bar.finish();
    if args.json {
        let mut out = std::io::stdout().lock();
        serde_json::to_writer_pretty(&mut out, &report)?;
        writeln!(out)?;
    } else {
        eprintln!("{}", summary(&report));
    }
    for s in &report.skipped {
        eprintln!(
            "{} left out {}: {}",
            runicorn_cli::labels::warning_label(),
            safe(&s.path),
            safe(&s.reason)
        );
    }
    Ok(0)
}

/// The runs the arguments select, each once.
fn select(dir: &Path, args: &ExportArgs, query: Option<RunQuery>) -> anyhow::Result<Vec<RunRow>> {
    let store = Store::open_read_only(dir)
        .with_context(|| format!("cannot open the hub's store in {}", dir.display()))?;
    let mut runs = Vec::new();
    if args.runs.is_empty() {
        let filter = super::list::selection_filter(
            query,
            args.remote.clone(),
            args.path.clone(),
            &args.status,
            args.all,
        );
        runs = store.list_runs(&filter)?;
    } else {
        for reference in &args.runs {
            let key = store.resolve_run(reference)?;
            if runs.iter().any(|r: &RunRow| r.key == key) {
                continue;
            }
            // Resolved a moment ago: only a concurrent purge loses it.
            let run = store
                .run_by_key(key)?
                .with_context(|| format!("run {} left the store while being exported", key.0))?;
            runs.push(run);
        }
    }
    if let Some(since) = args.since {
        runs.retain(|r| last_activity(r).is_some_and(|t| t >= since));
    }
    Ok(runs)
}

/// When a run was last created, written to or ended, as far as the store knows.
fn last_activity(r: &RunRow) -> Option<f64> {
    [
        r.created_at,
        r.ended_at,
        r.remote_events.last_event_at,
        r.heartbeat_at,
    ]
    .into_iter()
    .flatten()
    .filter(|t| t.is_finite())
    .reduce(f64::max)
}

/// `--since`: a date, a local date and time, RFC 3339, or a span back from now (`30m`, `12h`,
/// `3d`, `2w`), as Unix seconds.
pub fn parse_since(text: &str) -> Result<f64, String> {
    parse_since_at(text, runicorn_cli::time::now())
}

fn parse_since_at(text: &str, now: f64) -> Result<f64, String> {
    let text = text.trim();
    let bad = || {
        format!(
            "{text:?} is not a time: give a date (2026-12-01), a local date and time \
             (2026-12-01T14:30), RFC 3339 (2026-12-01T14:30:00Z) or a span back from now \
             (30m, 12h, 3d, 2w)"
        )
    };
    if let Some(unit) = text.chars().last().filter(|c| "smhdw".contains(*c)) {
        if let Ok(n) = text[..text.len() - 1].parse::<u32>() {
            let seconds = match unit {
                's' => 1.0,
                'm' => 60.0,
                'h' => 3600.0,
                'd' => 86_400.0,
                _ => 604_800.0,
            };
            return Ok(now - f64::from(n) * seconds);
        }
    }
    if let Ok(t) = DateTime::parse_from_rfc3339(text) {
        return Ok(t.timestamp_millis() as f64 / 1000.0);
    }
    let local = |naive: NaiveDateTime| {
        Local
            .from_local_datetime(&naive)
            .earliest()
            .map(|t| t.timestamp_millis() as f64 / 1000.0)
    };
    for format in [
        "%Y-%m-%dT%H:%M:%S",
        "%Y-%m-%dT%H:%M",
        "%Y-%m-%d %H:%M:%S",
        "%Y-%m-%d %H:%M",
    ] {
        if let Ok(naive) = NaiveDateTime::parse_from_str(text, format) {
            return local(naive).ok_or_else(bad);
        }
    }
    if let Ok(date) = NaiveDate::parse_from_str(text, "%Y-%m-%d") {
        return date.and_hms_opt(0, 0, 0).and_then(local).ok_or_else(bad);
    }
    Err(bad())
}

/// The line printed after an export.
fn summary(r: &ExportReport) -> String {
    let only_listed = if r.omitted > 0 {
        format!(", {} listed without their bytes", r.omitted)
    } else {
        String::new()
    };
    let versions = match r.artifact_versions {
        0 => String::new(),
        1 => " and 1 artifact version".to_owned(),
        n => format!(" and {n} artifact versions"),
    };
    format!(
        "exported {} run{}{versions} to {} ({} files{only_listed}; {} of contents in {})",
        r.runs,
        if r.runs == 1 { "" } else { "s" },
        if r.file == "-" {
            "standard output".to_owned()
        } else {
            safe(&r.file).into_owned()
        },
        r.members,
        human_bytes(r.content_bytes),
        human_bytes(r.bundle_bytes),
    )
}

/// The bundle writer's progress as a bar on stderr (hidden when stderr is not a terminal).
struct BundleBar {
    bar: ProgressBar,
}

impl BundleBar {
    fn new() -> Self {
        let bar = if progress::stderr_is_terminal() {
            ProgressBar::with_draw_target(Some(0), ProgressDrawTarget::stderr())
        } else {
            ProgressBar::hidden()
        };
        if let Some(style) = progress::bar_style("{msg} [{bar:30}] {bytes}/{total_bytes} ({eta})") {
            bar.set_style(style);
        }
        BundleBar { bar }
    }

    fn finish(&self) {
        self.bar.finish_and_clear();
    }
}

impl ExportProgress for BundleBar {
    fn runs_prepared(&mut self, done: u64, total: u64) {
        if done == 0 {
            if let Some(style) = progress::bar_style("{msg} [{bar:30}] {pos}/{len} ({eta})") {
                self.bar.set_style(style);
            }
            self.bar.set_message("reading runs from the store");
            self.bar.set_length(total);
        }
        self.bar.set_position(done);
    }
}

impl Progress for BundleBar {
    fn start(&mut self, phase: Phase, total_bytes: u64) {
        if let Some(style) = progress::bar_style("{msg} [{bar:30}] {bytes}/{total_bytes} ({eta})") {
            self.bar.set_style(style);
        }
        self.bar.set_message(match phase {
            Phase::Hashing => "hashing",
            Phase::Writing => "writing",
        });
        self.bar.set_length(total_bytes);
        self.bar.set_position(0);
    }

    fn advance(&mut self, bytes: u64) {
        self.bar.inc(bytes);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn since_takes_spans_dates_and_rfc3339() {
        let now = 1_800_000_000.0;
        assert_eq!(parse_since_at("3d", now), Ok(now - 3.0 * 86_400.0));
        assert_eq!(parse_since_at("12h", now), Ok(now - 12.0 * 3600.0));
        assert_eq!(parse_since_at("30m", now), Ok(now - 1800.0));
        assert_eq!(parse_since_at("2w", now), Ok(now - 2.0 * 604_800.0));
        assert_eq!(
            parse_since_at("2026-12-01T10:00:00Z", now),
            Ok(1_796_119_200.0)
        );
        assert_eq!(
            parse_since_at("2026-12-01T11:00:00+01:00", now),
            Ok(1_796_119_200.0)
        );
        let day = parse_since_at("2026-12-01", now).unwrap();
        let minute = parse_since_at("2026-12-01T00:01", now).unwrap();
        assert_eq!(minute - day, 60.0);
        for bad in ["", "yesterday", "3y", "d", "2026-13-01", "-3d"] {
            let e = parse_since_at(bad, now).unwrap_err();
            assert!(e.contains("is not a time"), "{bad}: {e}");
        }
    }
}
