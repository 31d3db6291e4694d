//! `runicorn-agent ls`: one row per run under the storage root, as a table or as JSON.
//!
//! Runs are read through the root's index (`run_index`), which rereads only files that changed,
//! on one worker per core. A bad run is listed as `unreadable`, never fatal. The alerts the
//! index holds for a run (`list_alerts`) show in an ALERTS column and in `--json`.

use std::collections::HashMap;
use std::io::Write;
use std::path::Path;

use anyhow::Context;
use runicorn_cli::progress::DelayedProgress;
use runicorn_cli::table::{Align, Cell, Table};
use runicorn_cli::{color_stdout, safe, time, warning_label};
use runicorn_protocol::run_format::{
    discover_runs, read_run_overview, LivenessContext, RunLocation, RunOverview, RunStatus,
};
use serde_json::{json, Value};

use crate::list_alerts::raised_alerts;
use crate::root_args::RootArgs;
use crate::run_index::{IndexError, RunIndex};
use runicorn_protocol::parallel::{io_workers, map_in_order};
use runicorn_protocol::wire::RunAlert;

#[derive(clap::Args, Debug)]
pub struct LsArgs {
    #[command(flatten)]
    pub root: RootArgs,
    /// Only runs whose path is PREFIX or lies below it (`cv` matches `cv/yolo`, not `cvx`)
    #[arg(long, value_name = "PREFIX")]
    pub path: Option<String>,
    /// Only runs with this status
    #[arg(long, value_name = "S", value_parser = clap::builder::PossibleValuesParser::new(
        RunStatus::ALL.map(|s| s.as_str())))]
    pub status: Option<String>,
    /// Also list soft-deleted runs (those holding a .deleted marker)
    #[arg(long)]
    pub all: bool,
    /// Print a JSON array of objects (run_id, path, alias, status, created_at, ended_at, points,
    /// keys, last_step, alerts, …) instead of a table
    #[arg(long)]
    pub json: bool,
    /// Read every run from scratch instead of through the index in <root>/.runicorn-agent
    #[arg(long)]
    pub no_index: bool,
}

pub fn list_runs(args: LsArgs) -> anyhow::Result<()> {
    let root = args.root.resolve();
    let discovery = discover_runs(&root);
    for problem in &discovery.problems {
        eprintln!(
            "{}: {}: {}",
            warning_label(),
            safe(&problem.path.to_string_lossy()),
            safe(&problem.reason)
        );
    }
    let prefix = args.path.as_deref().map(|p| p.trim_matches('/').to_owned());
    let locations: Vec<RunLocation> = discovery
        .runs
        .into_iter()
        .filter(|loc| {
            prefix
                .as_deref()
                .is_none_or(|p| path_is_under(&loc.run_path, p))
        })
        .collect();
    let ctx = LivenessContext::here_and_now();
    let mut runs: Vec<RunOverview> = read_overviews(&root, &locations, &ctx, !args.no_index)
        .into_iter()
        .filter(|r| args.all || !r.deleted)
        .filter(|r| {
            args.status
                .as_deref()
                .is_none_or(|s| r.status == RunStatus::parse(s))
        })
        .collect();
    runs.sort_by(|a, b| {
        a.created_at
            .unwrap_or(f64::INFINITY)
            .total_cmp(&b.created_at.unwrap_or(f64::INFINITY))
            .then_with(|| a.id.cmp(&b.id))
    });

    // The alerts the scans of `serve --stdio` and the resident agent raised (kept in the index).
    let alerts = if args.no_index {
        HashMap::new()
    } else {
        raised_alerts(&root).unwrap_or_else(|e| {
            eprintln!(
                "{}: {}; listing without alerts",
                warning_label(),
                safe(&e.to_string())
            );
            HashMap::new()
        })
    };
    let alerts_of = |r: &RunOverview| -> &[RunAlert] {
        let key = r
            .dir
            .strip_prefix(&root)
            .unwrap_or(&r.dir)
            .to_string_lossy();
        alerts.get(key.as_ref()).map_or(&[], Vec::as_slice)
    };

    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    if args.json {
        let rows: Vec<Value> = runs
            .iter()
            .map(|r| overview_json(r, alerts_of(r)))
            .collect();
        serde_json::to_writer_pretty(&mut out, &rows).context("writing the listing")?;
        writeln!(out)?;
    } else {
        write_table(&mut out, &runs, &root, &alerts_of)?;
        for run in runs.iter().filter(|r| r.status == RunStatus::Unreadable) {
            eprintln!(
                "{}: run {} ({}): {}",
                warning_label(),
                safe(&run.id),
                safe(&run.dir.to_string_lossy()),
                safe(run.reason.as_deref().unwrap_or("unreadable"))
            );
        }
    }
    out.flush().context("writing the listing")?;
    Ok(())
}

/// Whether `path` is `prefix` itself or a path below it, segment-wise.
pub(crate) fn path_is_under(path: &str, prefix: &str) -> bool {
    prefix.is_empty()
        || path == prefix
        || path
            .strip_prefix(prefix)
            .is_some_and(|rest| rest.starts_with('/'))
}

/// Reads the runs through the root's index, or directly when the index cannot be used (a
/// read-only root): the listing is the same, only slower.
pub(crate) fn read_overviews(
    root: &Path,
    locations: &[RunLocation],
    ctx: &LivenessContext,
    use_index: bool,
) -> Vec<RunOverview> {
    // Shown only on a terminal, and only after a second: small listings stay quiet.
    let bar = DelayedProgress::new(locations.len(), "reading runs");
    let started = std::time::Instant::now();
    let tick = || {
        bar.inc(1);
        if started.elapsed().as_secs() >= 1 {
            bar.show();
        }
    };
    if use_index && root.is_dir() {
        match RunIndex::open(root).and_then(|mut index| index.refresh(locations, ctx, &tick)) {
            Ok(overviews) => {
                bar.finish_and_clear();
                return overviews;
            }
            Err(err) => {
                if !is_permission_problem(&err) {
                    eprintln!(
                        "{}: {}; listing without the index",
                        warning_label(),
                        safe(&err.to_string())
                    );
                }
            }
        }
    }
    bar.reset();
    let overviews = map_in_order(locations, io_workers(), |_, loc| {
        let overview = read_run_overview(loc, ctx);
        tick();
        overview
    });
    bar.finish_and_clear();
    overviews
}

fn is_permission_problem(err: &IndexError) -> bool {
    match err {
        IndexError::Io { cause, .. } => matches!(
            cause.kind(),
            std::io::ErrorKind::PermissionDenied | std::io::ErrorKind::ReadOnlyFilesystem
        ),
        IndexError::Sqlite { cause, .. } => matches!(
            cause.sqlite_error_code(),
            Some(
                rusqlite::ErrorCode::ReadOnly
                    | rusqlite::ErrorCode::CannotOpen
                    | rusqlite::ErrorCode::PermissionDenied
            )
        ),
        IndexError::Schema { .. } => false,
    }
}

fn overview_json(r: &RunOverview, alerts: &[RunAlert]) -> Value {
    let mut v = json!({
        "run_id": r.id,
        "path": r.path,
        "alias": r.alias,
        "status": r.status.as_str(),
        "created_at": r.created_at,
        "ended_at": r.ended_at,
        "points": r.points,
        "keys": r.keys,
        "last_step": r.last_step,
        "tags": r.tags,
        "host": r.hostname,
        "dir": r.dir.to_string_lossy(),
        "deleted": r.deleted,
        "corrupt_lines": r.corrupt_lines,
        "alerts": alerts,
    });
    if let (Some(reason), Some(obj)) = (&r.reason, v.as_object_mut()) {
        obj.insert("reason".into(), Value::String(reason.clone()));
    }
    v
}

fn status_color(status: &RunStatus) -> &'static str {
    runicorn_cli::color::status_sgr(status.as_str())
}

/// The ALERTS cell: `!` and the kinds of the run's raised alerts (each kind once), `-` for none.
fn alerts_cell(alerts: &[RunAlert]) -> Cell {
    if alerts.is_empty() {
        return "-".into();
    }
    let mut kinds: Vec<&str> = Vec::new();
    for alert in alerts {
        if !kinds.contains(&alert.kind.as_str()) {
            kinds.push(&alert.kind);
        }
    }
    Cell::painted(
        safe(&format!("!{}", kinds.join(","))),
        runicorn_cli::color::BOLD_RED,
    )
}

fn write_table<'a>(
    out: &mut impl Write,
    runs: &'a [RunOverview],
    root: &Path,
    alerts_of: &dyn Fn(&'a RunOverview) -> &'a [RunAlert],
) -> anyhow::Result<()> {
    if runs.is_empty() {
        writeln!(out, "no runs under {}", safe(&root.to_string_lossy()))?;
        return Ok(());
    }
    let mut table = Table::new(&[
        ("RUN ID", Align::Left),
        ("PATH", Align::Left),
        ("ALIAS", Align::Left),
        ("STATUS", Align::Left),
        ("STEP", Align::Right),
        ("POINTS", Align::Right),
        ("CREATED", Align::Left),
        ("ALERTS", Align::Left),
    ]);
    for r in runs {
        // Every cell from the run directory is made terminal-safe (see runicorn_cli).
        table.push([
            safe(&r.id).into_owned().into(),
            if r.path.is_empty() {
                "/".into()
            } else {
                safe(&r.path).into_owned().into()
            },
            r.alias
                .as_deref()
                .map_or_else(|| "-".into(), |a| safe(a).into_owned().into()),
            Cell::painted(safe(r.status.as_str()), status_color(&r.status)),
            r.last_step
                .map_or_else(|| "-".into(), |s| s.to_string().into()),
            r.points.to_string().into(),
            time::local_minute(r.created_at)
                .unwrap_or_else(|| "-".to_owned())
                .into(),
            alerts_cell(alerts_of(r)),
        ]);
    }
    table.write(out, color_stdout())?;
    let unreadable = runs
        .iter()
        .filter(|r| r.status == RunStatus::Unreadable)
        .count();
    let crashed = runs
        .iter()
        .filter(|r| r.status == RunStatus::Crashed)
        .count();
    let stalled = runs
        .iter()
        .filter(|r| r.status == RunStatus::Stalled)
        .count();
    let mut footer = format!(
        "{} run{}",
        runs.len(),
        if runs.len() == 1 { "" } else { "s" }
    );
    if stalled > 0 {
        footer.push_str(&format!(", {stalled} stalled"));
    }
    if crashed > 0 {
        footer.push_str(&format!(", {crashed} crashed"));
    }
    let alerted = runs.iter().filter(|r| !alerts_of(r).is_empty()).count();
    if alerted > 0 {
        footer.push_str(&format!(", {alerted} with alerts (`--json` has them)"));
    }
    if unreadable > 0 {
        footer.push_str(&format!(", {unreadable} unreadable (reasons on stderr)"));
    }
    writeln!(out, "{footer} under {}", safe(&root.to_string_lossy()))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefix_matching_is_by_segment() {
        assert!(path_is_under("cv/yolo", "cv"));
        assert!(path_is_under("cv", "cv"));
        assert!(!path_is_under("cvx", "cv"));
        assert!(path_is_under("anything", ""));
    }
}
