//! `runicorn-hub ls`: the runs in the store, from every remote, as a table, JSON or CSV; all of
//! them under the filters (`--where` takes the filter language of the dashboard's `q=`), or the
//! runs named by run references (`runicorn_store::RunRef`). `--columns` adds summary, config
//! and metric values (`list_columns`).

use std::io::Write;
use std::path::PathBuf;

use std::collections::HashMap;

use anyhow::Context;
use runicorn_cli::safe;
use runicorn_hub::store_thread::StoreHandle;
use runicorn_protocol::run_format::RunStatus;
use runicorn_store::{
    FilterError, RunFilter, RunKey, RunOrder, RunQuery, RunRef, RunRow, RunSort, Store, TrashView,
};

use super::list_columns::{column_values, write_csv, ColumnValues, ExtraColumn};
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
    /// Only runs matching this expression of the filter language, as the dashboard's filter
    /// box (`config.optimizer = "sgd" and summary.val_acc > 0.97 and tag:best`; see docs/api.md)
    #[arg(long = "where", value_name = "EXPR", conflicts_with = "runs")]
    pub filter: Option<String>,
    /// Extra columns, comma-separated: summary.KEY, config.KEY (dotted), metric.KEY.last|min|max
    #[arg(long, value_name = "COLUMNS", value_delimiter = ',', value_parser = parse_column)]
    pub columns: Vec<ExtraColumn>,
    /// Print a JSON array of objects instead of a table
    #[arg(long, conflicts_with = "csv")]
    pub json: bool,
    /// Print the table as CSV (RFC 4180), with full-precision numbers
    #[arg(long)]
    pub csv: bool,
}

pub fn run(hub_dir: Option<PathBuf>, args: LsArgs) -> anyhow::Result<u8> {
    let query = match args.filter.as_deref().map(RunQuery::parse) {
        None => None,
        Some(Ok(query)) => query,
        Some(Err(e)) => {
            eprint!("{}", where_error(args.filter.as_deref().unwrap_or(""), &e));
            return Ok(2);
        }
    };
    let (store, _dir) = super::open_store(hub_dir)?;
    let rt = super::runtime()?;
    rt.block_on(print(&store, &args, query))?;
    Ok(0)
}

/// A malformed `--where`: the message, the expression and a caret under the mistake.
pub fn where_error(expr: &str, e: &FilterError) -> String {
    let shown = safe(expr);
    // `safe` may widen characters before the mistake (escapes): measure its output.
    let before: String = expr.chars().take(e.position).collect();
    let pad = safe(&before).chars().count();
    let width = safe(
        &expr
            .chars()
            .skip(e.position)
            .take(e.length.max(1))
            .collect::<String>(),
    )
    .chars()
    .count()
    .max(1);
    format!(
        "{} malformed --where expression: {}\n  {shown}\n  {}{}\n",
        runicorn_cli::labels::error_label(),
        safe(&e.to_string()),
        " ".repeat(pad),
        "^".repeat(width)
    )
}

/// An extra column as clap reads it.
pub fn parse_column(text: &str) -> Result<ExtraColumn, String> {
    ExtraColumn::parse(text.trim())
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
pub async fn print(
    store: &StoreHandle,
    args: &LsArgs,
    query: Option<RunQuery>,
) -> anyhow::Result<()> {
    let refs = args.runs.clone();
    let columns = args.columns.clone();
    let filter = selection_filter(
        query,
        args.remote.clone(),
        args.path.clone(),
        &args.status,
        args.all,
    );
    let (runs, skipped, in_store, extra) = store
        .call(move |s| {
            let runs = if refs.is_empty() {
                s.list_runs(&filter)?
            } else {
                named_runs(s, &refs)?
            };
            let skipped: HashMap<RunKey, u64> = s.runs_with_skipped_files()?.into_iter().collect();
            let extra = column_values(s, &runs, &columns)?;
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
            Ok::<_, anyhow::Error>((runs, skipped, in_store, extra))
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
                if !args.columns.is_empty() {
                    v["columns"] = extra.json_of(r.key);
                }
                v
            })
            .collect();
        serde_json::to_writer_pretty(&mut out, &rows)?;
        writeln!(out)?;
    } else if args.csv {
        let terminal = std::io::IsTerminal::is_terminal(&std::io::stdout());
        write_csv(&mut out, &runs, &extra, terminal)?;
    } else if runs.is_empty() {
        writeln!(out, "{}", empty_listing(args, in_store))?;
    } else {
        print_table(&mut out, &runs, skipped_files, &extra)?;
    }
    out.flush()?;
    Ok(())
}

/// A run in one line for messages: `42 gpu1/20261204_101500_a1b2c3 (cv/resnet)`, terminal-safe.
pub fn describe_run(r: &RunRow) -> String {
    format!(
        "{} {}/{} ({})",
        r.key.0,
        safe(&r.remote),
        safe(&r.id),
        safe(&r.path)
    )
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
        "reason": r.reason,
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
    if let Some(expr) = &args.filter {
        asked.push(format!("--where {}", safe(expr)));
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
    extra: &ColumnValues,
) -> anyhow::Result<()> {
    let names: Vec<String> = extra
        .columns
        .iter()
        .map(|c| safe(&c.name).into_owned())
        .collect();
    let heads: Vec<(&str, Align)> = vec![
        ("KEY", Align::Left),
        ("REMOTE", Align::Left),
        ("PATH", Align::Left),
        ("RUN ID", Align::Left),
        ("ALIAS", Align::Left),
        ("STATUS", Align::Left),
        ("POINTS", Align::Left),
        ("LAST STEP", Align::Left),
    ];
    let mut table = Table::new(&heads);
    for name in names {
        table.add_column(name, Align::Left);
    }
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
        let mut row = vec![
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
        ];
        row.extend(
            extra
                .texts_of(r.key)
                .into_iter()
                .map(|t| Cell::from(safe(&t).into_owned())),
        );
        table.push(row);
    }
    table.write(out, color_stdout())?;
    Ok(())
}

/// The runs `ls` and `export` select by their shared options: a filter-language query, a
/// remote, a path prefix, statuses, and with `all` the soft-deleted, removed and recycled runs
/// too; oldest first, as `runicorn-agent ls` (the newest runs end up next to the prompt).
pub fn selection_filter(
    query: Option<RunQuery>,
    remote: Option<String>,
    path_prefix: Option<String>,
    status: &[String],
    all: bool,
) -> RunFilter {
    RunFilter {
        query,
        remote,
        path_prefix,
        status: (!status.is_empty()).then(|| status.to_vec()),
        include_deleted: all,
        include_removed: all,
        trash: if all {
            TrashView::Include
        } else {
            TrashView::Hide
        },
        sort: RunSort {
            by: RunOrder::CreatedAt,
            descending: false,
        },
        ..RunFilter::default()
    }
}
