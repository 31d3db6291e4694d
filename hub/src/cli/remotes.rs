//! `runicorn-hub remotes`: the remembered remotes, as a table or JSON, with whether a hub
//! process follows each one; and managing them: `rm` (runs kept, or forgotten with
//! `--forget-runs`), `rename`, `pause`, `resume`. A running `ui` notices within seconds.

use std::io::Write;
use std::path::PathBuf;

use runicorn_cli::{safe, safe_lines};
use runicorn_hub::remote_address::RemoteAddress;
use runicorn_hub::sync::RESIDENT_SUFFIX;
use runicorn_store::{RemoteRow, RemoteState, RenameOutcome};
use serde_json::json;

use runicorn_cli::color::BOLD;
use runicorn_cli::labels::{label, Label};
use runicorn_cli::{color_stdout, human::figure, paint, time};

/// Skipped items listed per remote in the table (`--json` lists what the store returns).
const SKIPPED_LINES: usize = 10;

#[derive(clap::Args, Debug)]
#[command(args_conflicts_with_subcommands = true)]
pub struct RemotesArgs {
    /// Print a JSON array of objects instead of a table
    #[arg(long)]
    pub json: bool,
    #[command(subcommand)]
    pub action: Option<RemotesAction>,
}

#[derive(clap::Subcommand, Debug)]
pub enum RemotesAction {
    /// Remove a remote: nobody syncs it any more. Its runs stay in the store (shown as from a
    /// removed remote) unless --forget-runs deletes them. `connect` brings it back.
    Rm {
        name: String,
        /// Also delete everything the hub holds of its runs (metrics, logs, annotations)
        #[arg(long)]
        forget_runs: bool,
        /// Do not ask for confirmation (--forget-runs asks otherwise)
        #[arg(short, long)]
        yes: bool,
    },
    /// Rename a remote (its runs follow; run references become NEW/RUN_ID).
    Rename { old: String, new: String },
    /// Stop syncing a remote until `resume` (a running `ui` or `connect` lets it go).
    Pause { name: String },
    /// Sync a paused remote again (a running `ui` picks it up within seconds).
    Resume { name: String },
}

/// Whether the remote asks for a resident agent (`--resident-agent`) and whether its last
/// session was served by one.
fn resident_agent(r: &RemoteRow) -> serde_json::Value {
    let requested =
        serde_json::from_value::<RemoteAddress>(r.transport.clone()).is_ok_and(|a| a.resident());
    let attached = r
        .agent_software
        .as_deref()
        .is_some_and(|s| s.ends_with(RESIDENT_SUFFIX));
    json!({ "requested": requested, "last_session_attached": attached })
}

/// The listing's line about the resident agent, when it has anything to say.
fn resident_line(r: &RemoteRow) -> Option<String> {
    let v = resident_agent(r);
    let (requested, attached) = (
        v["requested"].as_bool() == Some(true),
        v["last_session_attached"].as_bool() == Some(true),
    );
    match (requested, attached) {
        (_, true) => Some(format!(
            "resident agent: the last session was served by it{}",
            if requested {
                " (started on demand: --resident-agent)"
            } else {
                ""
            }
        )),
        (true, false) => Some(
            "resident agent: asked for (--resident-agent); the last session was served without one"
                .to_owned(),
        ),
        (false, false) => None,
    }
}

fn when(t: Option<f64>) -> String {
    time::local_second(t).unwrap_or_else(|| "never".into())
}

pub fn run(hub_dir: Option<PathBuf>, args: RemotesArgs) -> anyhow::Result<u8> {
    let (store, dir) = super::open_store(hub_dir)?;
    let rt = super::runtime()?;
    if let Some(action) = args.action {
        return rt.block_on(manage(&store, &dir, action));
    }
    let remotes = rt.block_on(store.call(|s| s.remotes()))??;
    let now = runicorn_cli::now();
    let mut out = std::io::stdout().lock();
    if args.json {
        let rows: Vec<_> = remotes
            .iter()
            .map(|r| {
                json!({
                    "name": r.name,
                    "address": r.address,
                    "state": r.state(now).as_str(),
                    "connected": r.connected,
                    "follower": r.live_follower(now),
                    "paused": r.paused,
                    "removed_at": r.removed_at,
                    "heard_at": r.heard_at,
                    "last_sync": r.last_sync_at,
                    "last_error": r.last_error,
                    "runs": r.runs,
                    "points": r.points,
                    "agent_host": r.agent_host,
                    "agent_root": r.agent_root,
                    "agent_software": r.agent_software,
                    "resident_agent": resident_agent(r),
                    "warning": r.skipped_warning(),
                    "skipped_items": r.skipped_items,
                    "skipped_files": r.skipped_files,
                    "skipped": r.skipped,
                })
            })
            .collect();
        serde_json::to_writer_pretty(&mut out, &rows)?;
        writeln!(out)?;
        return Ok(0);
    }
    if remotes.is_empty() {
        writeln!(
            out,
            "no remotes yet; add one with `runicorn-hub connect HOST`"
        )?;
        return Ok(0);
    }
    let color = color_stdout();
    writeln!(
        out,
        "{}",
        paint(
            color,
            BOLD,
            &format!(
                "{:<16}  {:<32}  {:<12}  {:<19}  {:>7}  {:>8}",
                "NAME", "ADDRESS", "STATE", "LAST SYNC", "RUNS", "POINTS"
            )
        )
    )?;
    for r in &remotes {
        // Names, addresses and errors are made terminal-safe (see runicorn_cli).
        writeln!(
            out,
            "{:<16}  {:<32}  {:<12}  {:<19}  {:>7}  {:>8}",
            safe(&r.name),
            safe(&r.address),
            r.state(now).as_str(),
            when(r.last_sync_at),
            r.runs + r.removed_runs,
            figure(r.points)
        )?;
        if let Some(by) = r.live_follower(now) {
            writeln!(out, "  followed by {}", safe(by))?;
        }
        if r.state(now) == RemoteState::Imported {
            writeln!(
                out,
                "  known from imported bundles (the newest made {}); `runicorn-hub connect USER@HOST --name {}` follows it live",
                when(r.heard_at),
                safe(&r.name)
            )?;
        }
        if let Some(line) = resident_line(r) {
            writeln!(out, "  {line}")?;
        }
        if let Some(e) = &r.last_error {
            writeln!(out, "  last error: {}", safe_lines(e))?;
        }
        write_skipped(&mut out, color, r)?;
    }
    Ok(0)
}

/// `rm`, `rename`, `pause`, `resume`: one change in the store, said in one line.
async fn manage(
    store: &runicorn_hub::store_thread::StoreHandle,
    dir: &std::path::Path,
    action: RemotesAction,
) -> anyhow::Result<u8> {
    let unknown = |name: &str| {
        anyhow::anyhow!(
            "no remote named {name:?} in {}; `runicorn-hub remotes` lists them",
            dir.display()
        )
    };
    match action {
        RemotesAction::Rm {
            name,
            forget_runs,
            yes,
        } => {
            let n = name.clone();
            let row = store
                .call(move |s| s.remote(&n))
                .await??
                .ok_or_else(|| unknown(&name))?;
            if forget_runs {
                let runs = row.runs + row.removed_runs;
                if !yes
                    && !confirm(&format!(
                        "Delete remote {} and everything the hub holds of its {runs} runs (metrics, logs, notes)? [y/N] ",
                        safe(&name)
                    ))?
                {
                    eprintln!("nothing deleted");
                    return Ok(1);
                }
                let n = name.clone();
                store.call(move |s| s.remove_remote(&n)).await??;
                println!("removed remote {} and its {runs} runs", safe(&name));
            } else {
                let n = name.clone();
                store
                    .call(move |s| s.retire_remote(&n, runicorn_cli::now()))
                    .await??;
                println!(
                    "removed remote {}; its {} runs stay in the store (`--forget-runs` deletes them; `runicorn-hub connect` brings the remote back)",
                    safe(&name),
                    row.runs + row.removed_runs
                );
            }
        }
        RemotesAction::Rename { old, new } => {
            if !runicorn_store::valid_remote_name(&new) {
                anyhow::bail!(
                    "remote name {new:?} must be 1-64 characters of letters, digits, '-', '_' or '.'"
                );
            }
            let (o, n) = (old.clone(), new.clone());
            match store.call(move |s| s.rename_remote(&o, &n)).await?? {
                RenameOutcome::Renamed => {
                    println!("renamed remote {} to {}", safe(&old), safe(&new))
                }
                RenameOutcome::Unknown => return Err(unknown(&old)),
                RenameOutcome::NameTaken => anyhow::bail!(
                    "a remote named {new:?} exists already; remove or rename it first"
                ),
            }
        }
        RemotesAction::Pause { name } => {
            let n = name.clone();
            if !store.call(move |s| s.set_remote_paused(&n, true)).await?? {
                return Err(unknown(&name));
            }
            println!(
                "paused remote {}; nothing syncs it until `runicorn-hub remotes resume {}`",
                safe(&name),
                safe(&name)
            );
        }
        RemotesAction::Resume { name } => {
            let n = name.clone();
            if !store
                .call(move |s| s.set_remote_paused(&n, false))
                .await??
            {
                return Err(unknown(&name));
            }
            println!(
                "resumed remote {}; a running `runicorn-hub ui` follows it again within seconds",
                safe(&name)
            );
        }
    }
    Ok(0)
}

/// Asks on the terminal; refuses (with what to do) when stdin is not one.
fn confirm(question: &str) -> anyhow::Result<bool> {
    use std::io::{BufRead, IsTerminal};
    if !std::io::stdin().is_terminal() {
        anyhow::bail!("not deleting without a confirmation: stdin is not a terminal; add --yes");
    }
    eprint!("{question}");
    let mut answer = String::new();
    std::io::stdin().lock().read_line(&mut answer)?;
    Ok(matches!(answer.trim(), "y" | "Y" | "yes"))
}

/// The warning of a remote whose sync left items out, and a line per item (capped).
fn write_skipped(out: &mut impl Write, color: bool, r: &RemoteRow) -> std::io::Result<()> {
    let Some(warning) = r.skipped_warning() else {
        return Ok(());
    };
    writeln!(out, "  {}: {warning}", label(color, Label::Warning))?;
    for item in r.skipped.iter().take(SKIPPED_LINES) {
        let who = if item.by_hub { "hub" } else { "agent" };
        writeln!(
            out,
            "    {} {} ({who}): {}",
            item.kind,
            safe(&item.name),
            safe(&item.reason)
        )?;
    }
    let listed = r.skipped.len().min(SKIPPED_LINES) as u64;
    if r.skipped_items > listed {
        writeln!(out, "    … and {} more", r.skipped_items - listed)?;
    }
    if r.skipped_files > 0 {
        writeln!(
            out,
            "    {} files left out of run manifests (`runicorn-hub ls` shows which runs)",
            figure(r.skipped_files)
        )?;
    }
    Ok(())
}
