//! `runicorn-hub`, the laptop side. Its commands (connect, sync, ls, ui, demo) arrive with the
//! sync and dashboard issues; today it only explains that.

use clap::Parser;

/// Runicorn hub: mirrors the runs of your GPU servers onto this machine and serves the dashboard.
///
/// Not built yet. Until it is, run `runicorn-agent run -- <command>` on the machine that trains
/// and `runicorn-agent ls` to list its runs.
#[derive(Parser, Debug)]
#[command(name = "runicorn-hub", version)]
struct Cli {}

fn main() -> anyhow::Result<()> {
    let _cli = Cli::parse();
    anyhow::bail!(
        "runicorn-hub has no commands yet; use `runicorn-agent ls` on the training machine for now"
    )
}
