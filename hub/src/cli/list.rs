//! `runicorn-hub ls`: the runs in the store, from every remote, as a table or JSON; all of them
//! under the filters, or the runs named by run references (`runicorn_store::RunRef`).

use std::io::Write;
use std::path::PathBuf;

use std::collections::HashMap;

use anyhow::Context;
use runicorn_cli::safe;
use runicorn_hub::store_thread::StoreHandle;
use runicorn_protocol::run_format::RunStatus;
use runicorn_store::{RunFilter, RunKey, RunOrder, RunRef, RunRow, RunSort, Store, TrashView};
use serde_json::json;

use runicorn_cli::color::status_sgr;
use runicorn_cli::table::{Align, Cell, Table};
use runicorn_cli::{color_stdout, human::figure};

#[derive(clap::Args, Debug)]
pub struct LsArgs {
    /// Only these runs, whatever their state: each a key (42), a run id
    /// (20261202_150537_a4f9e9) or REMOTE/RUN_ID
    #[arg(value_name = "RUN", value_parser = parse_run_ref,
          conflicts_with_all = ["remote", "path", "status"])]
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
    /// Include every run: those in the hub's recycle bin (the dashboard's delete), those
    /// soft-deleted on the server, and those gone from their server
    #[arg(long)]
    pub all: bool,
    /// Print a JSON array of objects instead of a table
    #[arg(long)]
    pub json: bool,
}

pub fn run(hub_dir: Option<PathBuf>, args: LsArgs) -> anyhow::Result<u8> {
    let (store, _dir) = super::open_store(hub_dir)?;
    let rt = super::runtime()?;
    rt.block_on(print(&store, &args))?;
    Ok(0)
}

/// A run reference as clap reads it (the store's one parser).
pub fn parse_run_ref(text: &str) -> Result<RunRef, String> {
    RunRef::parse(text).map_err(|e| e.to_string())
}

/// The runs `refs` name, in their order, each once. A reference that names no run, or several,
/// is an error saying so (with the candidates).
fn named_runs(s: &Store, refs: &[RunRef]) -> anyhow::Result<Vec<RunRow>> {
    let mut keys: Vec<RunKey> = Vec::with_capacity(refs.len());
    for reference in refs {
        let key = s.resolve_run(reference)?;
        if !keys.contains(&key) {
            keys.push(key);
        }
    }
    let mut runs = Vec::with_capacity(keys.len());
    for key in keys {
        // Resolved a moment ago in this same connection: only a concurrent removal loses it.
        let run = s
            .run_by_key(key)?
            .with_context(|| format!("run {} left the store while being listed", key.0))?;
        runs.push(run);
    }
    Ok(runs)
}

/// Prints the runs `args` selects.
pub async fn print(store: &StoreHandle, args: &LsArgs) -> anyhow::Result<()> {
    let refs = args.runs.clone();
    let filter = RunFilter {
        remote: args.remote.clone(),
        path_prefix: args.path.clone(),
        status: (!args.status.is_empty()).then(|| args.status.clone()),
        include_deleted: args.all,
        include_removed: args.all,
        trash: if args.all {
            TrashView::Include
        } else {
            TrashView::Hide
        },
        // Oldest first, as `runicorn-agent ls`: the newest runs end up next to the prompt.
        sort: RunSort {
            by: RunOrder::CreatedAt,
            descending: false,
        },
        ..RunFilter::default()
    };
    let (runs, skipped, in_store) = store
        .call(move |s| {
            let runs = if refs.is_empty() {
                s.list_runs(&filter)?
            } else {
                named_runs(s, &refs)?
            };
            let skipped: HashMap<RunKey, u64> = s.runs_with_skipped_files()?.into_iter().collect();
            // Only wanted to tell "nothing matches" from "nothing at all".
            let in_store = if runs.is_empty() {
                s.count_runs(&RunFilter {
                    include_deleted: true,
                    include_removed: true,
                    trash: TrashView::Include,
                    ..RunFilter::default()
                })?
            } else {
                0
            };
            Ok::<_, anyhow::Error>((runs, skipped, in_store))
        })
        .await??;
    let mut out = std::io::stdout().lock();
    let skipped_files = |r: &RunRow| skipped.get(&r.key).copied().unwrap_or(0);
    if args.json {
        let rows: Vec<_> = runs
            .iter()
            .map(|r| {
                let mut v = run_json(r);
                v["skipped_files"] = skipped_files(r).into();
                v
            })
            .collect();
        serde_json::to_writer_pretty(&mut out, &rows)?;
        writeln!(out)?;
    } else if runs.is_empty() {
        writeln!(out, "{}", empty_listing(args, in_store))?;
    } else {
        print_table(&mut out, &runs, skipped_files)?;
    }
    out.flush()?;
    Ok(())
}

/// The JSON object of one run (`--json`): `key` is the hub's key of the run (as the API's),
/// `run_id` the run's own id.
pub fn run_json(r: &RunRow) -> serde_json::Value {
    json!({
        "key": r.key.0,
        "remote": r.remote,
        "run_id": r.id,
        "path": r.path,
        "alias": r.alias,
        "status": r.status,
        "points": r.points,
        "last_step": r.last_step,
        "keys": r.keys,
        "key_count": r.key_count,
        "tags": r.tags,
        "host": r.hostname,
        "created_at": r.created_at,
        "ended_at": r.ended_at,
        "dir": r.dir,
        "deleted": r.deleted,
        "removed": r.removed,
        "in_recycle_bin": r.trashed_at.is_some(),
        "summary": r.summary,
    })
}

/// What an empty table says: an empty store, or filters that match none of the runs it holds.
fn empty_listing(args: &LsArgs, in_store: u64) -> String {
    if in_store == 0 {
        return "no runs in the store; add a server with `runicorn-hub connect HOST`".to_owned();
    }
    let mut asked = Vec::new();
    if let Some(remote) = &args.remote {
        asked.push(format!("--remote {}", safe(remote)));
    }
    if let Some(path) = &args.path {
        asked.push(format!("--path {}", safe(path)));
    }
    if !args.status.is_empty() {
        asked.push(format!("--status {}", args.status.join(",")));
    }
    let what = if asked.is_empty() {
        "no run to show".to_owned()
    } else {
        format!("no run matches {}", asked.join(" "))
    };
    if args.all {
        format!("{what} (the store holds {in_store} runs)")
    } else {
        format!(
            "{what} (the store holds {in_store} runs; --all also lists those in the recycle bin, deleted or gone)"
        )
    }
}

fn print_table(
    out: &mut impl Write,
    runs: &[RunRow],
    skipped_files: impl Fn(&RunRow) -> u64,
) -> anyhow::Result<()> {
    let mut table = Table::new(&[
        ("KEY", Align::Left),
        ("REMOTE", Align::Left),
        ("PATH", Align::Left),
        ("RUN ID", Align::Left),
        ("ALIAS", Align::Left),
        ("STATUS", Align::Left),
        ("POINTS", Align::Left),
        ("LAST STEP", Align::Left),
    ]);
    for r in runs {
        // Every cell from a remote is made terminal-safe (see runicorn_cli).
        let mut status = safe(&r.status).into_owned();
        if r.removed {
            status.push_str(" (gone)");
        } else if r.deleted {
            status.push_str(" (deleted)");
        }
        if r.trashed_at.is_some() {
            status.push_str(" (recycle bin)");
        }
        match skipped_files(r) {
            0 => {}
            1 => status.push_str(" (1 file skipped)"),
            n => status.push_str(&format!(" ({} files skipped)", figure(n))),
        }
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
            Cell::painted(status, status_sgr(&r.status)),
            figure(r.points).into(),
            r.last_step
                .map(|s| s.to_string())
                .unwrap_or_default()
                .into(),
        ]);
    }
    table.write(out, color_stdout())?;
    Ok(())
}
