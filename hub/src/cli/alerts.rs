//! `runicorn-hub alerts`: the alerts agents raised about runs (stalled, crashed, failed, a
//! non-finite watched metric, idle GPUs), as the sync stored them: the unacknowledged ones by
//! default, `--all` for every one; `--ack ID` and `--ack-all` acknowledge them (the
//! dashboard's Acknowledge does the same).

use std::io::Write;
use std::path::PathBuf;

use anyhow::bail;
use runicorn_cli::color_stdout;
use runicorn_cli::safe;
use runicorn_cli::table::{Align, Cell, Table};
use runicorn_cli::time::local_minute;
use runicorn_store::{AlertRow, AlertView};

use super::alert_hook::alert_json;

/// At most this many alerts are listed.
const MAX_LISTED: usize = 10_000;

#[derive(clap::Args, Debug)]
pub struct AlertsArgs {
    /// List every alert, acknowledged ones too (default: only those not acknowledged)
    #[arg(long)]
    pub all: bool,
    /// Print a JSON array of the alerts instead of a table
    #[arg(long)]
    pub json: bool,
    /// Acknowledge the alert with this ID (the first column of the listing)
    #[arg(long, value_name = "ID", conflicts_with_all = ["ack_all", "all", "json"])]
    pub ack: Option<i64>,
    /// Acknowledge every alert not acknowledged yet
    #[arg(long, conflicts_with_all = ["all", "json"])]
    pub ack_all: bool,
}

pub fn run(hub_dir: Option<PathBuf>, args: AlertsArgs) -> anyhow::Result<u8> {
    let (store, _dir) = super::open_store(hub_dir)?;
    let rt = super::runtime()?;
    let mut out = std::io::stdout().lock();
    if let Some(id) = args.ack {
        if !rt.block_on(store.call(move |s| s.ack_alert(id)))?? {
            bail!("no alert {id}: `runicorn-hub alerts --all` lists every alert with its ID");
        }
        writeln!(out, "acknowledged alert {id}")?;
        return Ok(0);
    }
    if args.ack_all {
        let n = rt.block_on(store.call(|s| s.ack_all_alerts()))??;
        writeln!(
            out,
            "acknowledged {n} alert{}",
            if n == 1 { "" } else { "s" }
        )?;
        return Ok(0);
    }
    let view = if args.all {
        AlertView::All
    } else {
        AlertView::Unacked
    };
    let rows = rt.block_on(store.call(move |s| s.alerts(view, None, MAX_LISTED)))??;
    if args.json {
        let rows: Vec<_> = rows.iter().map(|r| alert_json(r, None)).collect();
        serde_json::to_writer_pretty(&mut out, &rows)?;
        writeln!(out)?;
    } else if rows.is_empty() {
        writeln!(
            out,
            "{}",
            if args.all {
                "no alerts"
            } else {
                "no unacknowledged alerts (--all lists acknowledged ones too)"
            }
        )?;
    } else {
        print_table(&mut out, &rows, args.all)?;
    }
    Ok(0)
}

fn print_table(out: &mut impl Write, rows: &[AlertRow], all: bool) -> anyhow::Result<()> {
    let mut columns = vec![
        ("ID", Align::Right),
        ("KIND", Align::Left),
        ("RUN", Align::Left),
        ("RAISED", Align::Left),
    ];
    if all {
        columns.push(("ACKED", Align::Left));
    }
    columns.push(("MESSAGE", Align::Left));
    let mut table = Table::new(&columns);
    for r in rows {
        let run = match &r.alias {
            Some(alias) => format!("{} ({})", r.run_ref, alias),
            None => r.run_ref.clone(),
        };
        let mut cells: Vec<Cell> = vec![
            r.id.to_string().into(),
            Cell::painted(safe(&r.kind).into_owned(), "31"),
            safe(&run).into_owned().into(),
            local_minute(Some(r.raised_at)).unwrap_or_default().into(),
        ];
        if all {
            cells.push(
                local_minute(r.acked_at)
                    .unwrap_or_else(|| "-".into())
                    .into(),
            );
        }
        cells.push(safe(&r.message).into_owned().into());
        table.push(cells);
    }
    table.write(out, color_stdout())?;
    Ok(())
}
