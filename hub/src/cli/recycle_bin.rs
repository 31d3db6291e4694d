//! `runicorn-hub recycle-bin`: the hub's recycle bin from the terminal, the same one the
//! dashboard's Delete fills. List it, put runs in, take them out, and delete them for good
//! (`purge`, `empty`), which asks first. Nothing on a run's server is ever touched: a purged run
//! stays on its server, and the sync leaves it out from then on.

use std::io::{BufRead, IsTerminal, Write};
use std::path::PathBuf;

use anyhow::{bail, Context};
use runicorn_cli::color_stdout;
use runicorn_cli::human::figure;
use runicorn_cli::safe;
use runicorn_cli::table::{Align, Cell, Table};
use runicorn_cli::time::{local_minute, now};
use runicorn_store::{
    PurgeRefusal, PurgeReport, RunFilter, RunKey, RunRef, RunRow, Store, TrashView,
};

use super::list::{describe_run as describe, parse_run_ref, run_json};

#[derive(clap::Args, Debug)]
#[command(args_conflicts_with_subcommands = true)]
pub struct RecycleBinArgs {
    #[command(subcommand)]
    pub action: Option<RecycleBinAction>,
    /// Print a JSON array of the runs in the recycle bin instead of a table
    #[arg(long)]
    pub json: bool,
}

#[derive(clap::Subcommand, Debug)]
pub enum RecycleBinAction {
    /// Move runs into the recycle bin (the dashboard's Delete): they leave the lists, keep all
    /// their data and can be restored.
    ///
    /// Example: runicorn-hub recycle-bin put 42 gpu1/20261204_101500_a1b2c3
    Put(RunsArg),
    /// Take runs out of the recycle bin.
    Restore(RunsArg),
    /// Delete runs of the recycle bin for good from the hub's store (after asking).
    ///
    /// Their points, logs, records and cached files leave this machine; the runs stay on their
    /// servers, and later syncs leave them out. Only runs in the recycle bin can be purged.
    ///
    /// Example: runicorn-hub recycle-bin purge 42 --yes
    Purge(PurgeArgs),
    /// Delete every run of the recycle bin for good (after asking), like `purge` on each.
    Empty(ConfirmArg),
}

#[derive(clap::Args, Debug)]
pub struct RunsArg {
    /// Runs: each a key (42), a run id (20261202_150537_a4f9e9) or REMOTE/RUN_ID
    #[arg(value_name = "RUN", required = true, value_parser = parse_run_ref)]
    pub runs: Vec<RunRef>,
}

#[derive(clap::Args, Debug)]
pub struct PurgeArgs {
    #[command(flatten)]
    pub runs: RunsArg,
    #[command(flatten)]
    pub confirm: ConfirmArg,
}

#[derive(clap::Args, Debug)]
pub struct ConfirmArg {
    /// Do not ask for confirmation (needed when stdin is not a terminal)
    #[arg(long, short = 'y')]
    pub yes: bool,
}

pub fn run(hub_dir: Option<PathBuf>, args: RecycleBinArgs) -> anyhow::Result<u8> {
    let (store, _dir) = super::open_store(hub_dir)?;
    let rt = super::runtime()?;
    let mut out = std::io::stdout().lock();
    match args.action {
        None => {
            let runs = rt.block_on(store.call(|s| s.list_runs(&in_recycle_bin())))??;
            if args.json {
                let rows: Vec<_> = runs.iter().map(run_json).collect();
                serde_json::to_writer_pretty(&mut out, &rows)?;
                writeln!(out)?;
            } else if runs.is_empty() {
                writeln!(out, "the recycle bin is empty")?;
            } else {
                print_table(&mut out, &runs)?;
            }
        }
        Some(RecycleBinAction::Put(RunsArg { runs })) => {
            let at = now();
            let moved = rt.block_on(
                store.call(move |s| edit_each(s, &runs, |s, key| Ok(s.trash_run(key, at)?))),
            )??;
            for r in &moved {
                writeln!(out, "in the recycle bin: {}", describe(r))?;
            }
        }
        Some(RecycleBinAction::Restore(RunsArg { runs })) => {
            let restored = rt.block_on(
                store.call(move |s| edit_each(s, &runs, |s, key| Ok(s.restore_run(key)?))),
            )??;
            for r in &restored {
                writeln!(out, "restored: {}", describe(r))?;
            }
        }
        Some(RecycleBinAction::Purge(PurgeArgs { runs, confirm })) => {
            let refs = runs.runs;
            // Resolved and checked first, so nothing is deleted when one of them cannot be.
            let chosen = rt.block_on(store.call(move |s| {
                let mut chosen: Vec<RunRow> = Vec::new();
                for reference in &refs {
                    let row = resolved(s, reference)?;
                    if row.trashed_at.is_none() {
                        bail!(
                            "run {} is not in the recycle bin: only a run there can be deleted \
                             for good; put it there first with `runicorn-hub recycle-bin put {}`",
                            describe(&row),
                            row.key.0
                        );
                    }
                    if !chosen.iter().any(|c| c.key == row.key) {
                        chosen.push(row);
                    }
                }
                Ok(chosen)
            }))??;
            confirm_or_refuse(&chosen, confirm.yes)?;
            let keys: Vec<RunKey> = chosen.iter().map(|r| r.key).collect();
            let report = rt.block_on(store.call(move |s| {
                let mut total = PurgeReport::default();
                for key in keys {
                    match s.purge_run(key)? {
                        Ok(r) => {
                            total.runs += r.runs;
                            total.cached_files_removed += r.cached_files_removed;
                        }
                        // Restored or purged by someone else since: nothing to do for it.
                        Err(PurgeRefusal::NoRun | PurgeRefusal::NotInRecycleBin) => {}
                    }
                }
                Ok::<_, anyhow::Error>(total)
            }))??;
            write_report(&mut out, &report)?;
        }
        Some(RecycleBinAction::Empty(confirm)) => {
            let chosen = rt.block_on(store.call(|s| s.list_runs(&in_recycle_bin())))??;
            if chosen.is_empty() {
                writeln!(out, "the recycle bin is empty")?;
                return Ok(0);
            }
            confirm_or_refuse(&chosen, confirm.yes)?;
            let report = rt
                .block_on(store.call(|s| s.empty_recycle_bin()))?
                .context("cannot empty the recycle bin")?;
            write_report(&mut out, &report)?;
        }
    }
    out.flush()?;
    Ok(0)
}

/// Every run in the recycle bin, whatever else is true of it, most recently put there last.
fn in_recycle_bin() -> RunFilter {
    RunFilter {
        trash: TrashView::Only,
        include_deleted: true,
        include_removed: true,
        limit: None,
        ..RunFilter::default()
    }
}

fn resolved(s: &Store, reference: &RunRef) -> anyhow::Result<RunRow> {
    let key = s.resolve_run(reference)?;
    // Resolved a moment ago on this same connection: only a concurrent removal loses it.
    s.run_by_key(key)?
        .with_context(|| format!("run {} left the store while being read", key.0))
}

/// Applies `edit` to each run `refs` names (each once), after resolving them all.
fn edit_each(
    s: &mut Store,
    refs: &[RunRef],
    edit: impl Fn(&mut Store, RunKey) -> anyhow::Result<Option<RunRow>>,
) -> anyhow::Result<Vec<RunRow>> {
    let mut keys: Vec<RunKey> = Vec::new();
    for reference in refs {
        let key = resolved(s, reference)?.key;
        if !keys.contains(&key) {
            keys.push(key);
        }
    }
    let mut done = Vec::new();
    for key in keys {
        if let Some(row) = edit(s, key)? {
            done.push(row);
        }
    }
    Ok(done)
}

/// Asks on the terminal before deleting for good; without a terminal, only `--yes` goes on.
fn confirm_or_refuse(runs: &[RunRow], yes: bool) -> anyhow::Result<()> {
    if yes {
        return Ok(());
    }
    let what = match runs {
        [one] => format!("run {}", describe(one)),
        many => format!("{} runs", figure(many.len() as u64)),
    };
    let stdin = std::io::stdin();
    if !stdin.is_terminal() {
        bail!(
            "not deleting {what} for good without a confirmation: run it at a terminal to be \
             asked, or pass --yes"
        );
    }
    let mut err = std::io::stderr().lock();
    if runs.len() > 1 {
        for r in runs.iter().take(20) {
            writeln!(err, "  {}", describe(r))?;
        }
        if runs.len() > 20 {
            writeln!(err, "  … and {} more", runs.len() - 20)?;
        }
    }
    write!(
        err,
        "Delete {what} for good from this hub (the servers keep their copies)? [y/N] "
    )?;
    err.flush()?;
    let mut answer = String::new();
    stdin.lock().read_line(&mut answer)?;
    if matches!(answer.trim(), "y" | "Y" | "yes" | "YES" | "Yes") {
        Ok(())
    } else {
        bail!("nothing deleted (answered {:?})", answer.trim())
    }
}

fn write_report(out: &mut impl Write, report: &PurgeReport) -> std::io::Result<()> {
    let runs = match report.runs {
        1 => "1 run".to_owned(),
        n => format!("{} runs", figure(n)),
    };
    writeln!(
        out,
        "deleted {runs} for good ({} cached files removed); their servers keep them, and syncs \
         leave them out",
        figure(report.cached_files_removed)
    )
}

fn print_table(out: &mut impl Write, runs: &[RunRow]) -> anyhow::Result<()> {
    let mut table = Table::new(&[
        ("KEY", Align::Left),
        ("REMOTE", Align::Left),
        ("PATH", Align::Left),
        ("RUN ID", Align::Left),
        ("ALIAS", Align::Left),
        ("STATUS", Align::Left),
        ("IN THE BIN SINCE", Align::Left),
    ]);
    for r in runs {
        table.push([
            Cell::from(r.key.0.to_string()),
            safe(&r.remote).into_owned().into(),
            safe(&r.path).into_owned().into(),
            safe(&r.id).into_owned().into(),
            r.alias
                .as_deref()
                .map(safe)
                .unwrap_or_default()
                .into_owned()
                .into(),
            safe(&r.status).into_owned().into(),
            local_minute(r.trashed_at).unwrap_or_default().into(),
        ]);
    }
    table.write(out, color_stdout())?;
    Ok(())
}
