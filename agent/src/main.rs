//! `runicorn-agent`, the program that lives on each GPU server.
//!
//! The binary is glue: it parses the command line and hands each command to its module
//! (`run_command` wraps a training command, `list_command` lists runs, `serve_command` answers
//! the hub, `artifacts_command` lists and manages the artifact store, `export_command` packs runs into an
//! offline bundle, `daemon` is the resident agent `serve` attaches to; `root_args` is the `--root` they share, `run_index` the index `ls` and `serve` read
//! through). Terminal helpers (colour, labels, tables, progress) come from `runicorn_cli`.
//! Errors get their context here, at the edge, and become a message and a non-zero exit.

mod artifacts_command;
mod daemon;
mod export_command;
mod heap;
mod list_alerts;
mod list_command;
mod root_args;
mod run_command;
mod run_index;
mod serve_command;
mod telemetry;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Runicorn agent: records and lists the training runs of this machine.
///
/// Runs live under a storage root: `--root`, else $RUNICORN_DIR, else ~/.runicorn. The agent
/// reads runs written by the Runicorn SDKs (ours and the upstream `runicorn` Python package, 0.4
/// to 0.7) and never writes outside the storage root.
#[derive(Parser, Debug)]
#[command(name = "runicorn-agent", version, propagate_version = true)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run a command as a tracked run: its output is teed to logs.txt, its environment recorded,
    /// and its exit recorded as finished, failed, interrupted or killed.
    ///
    /// The command gets RUNICORN_DIR and RUNICORN_RUN_DIR in its environment, so a script that
    /// uses the Runicorn SDK logs its metrics into this same run. Signals sent to the agent are
    /// passed on to the command, and the agent exits with the command's exit code (128 + signal
    /// number when it died from a signal).
    ///
    /// Example: runicorn-agent run --path cv/resnet -- python train.py --lr 0.1
    Run(run_command::RunArgs),
    /// List the runs under the storage root, one row per run (oldest first).
    ///
    /// A run whose status says running is shown as crashed when its process is gone from this
    /// host or its heartbeat stopped. A run whose files cannot be read is shown as unreadable
    /// with the reason; it never makes the listing fail.
    Ls(list_command::LsArgs),
    /// Serve the runs under the storage root to a Runicorn hub, speaking the sync protocol on
    /// stdin/stdout.
    ///
    /// The hub starts this itself, over SSH (`ssh gpu-01 runicorn-agent serve --stdio`) or as a
    /// local child process; it is not meant to be typed. Stdout carries protocol frames only;
    /// diagnostics go to stderr. The agent keeps a change feed in the index under
    /// <root>/.runicorn-agent (in memory when the root is read-only), watches the root for
    /// writes, and rescans it every --poll seconds. It reads runs and writes nothing but its
    /// index. Exit code 0 when the hub closes the connection, 2 for an incompatible or broken
    /// peer.
    Serve(serve_command::ServeArgs),
    /// List the artifacts under the storage root (versions, aliases, sizes, producing run and
    /// host, bytes stored after dedup), or manage them: `rm NAME:vN`, `pack`, `gc [--dry-run]`.
    ///
    /// Example: runicorn-agent artifacts rm resnet:v2 && runicorn-agent artifacts gc
    Artifacts(artifacts_command::ArtifactsArgs),
    /// Pack runs into one offline bundle file (tar + zstd, checksummed) for `runicorn-hub
    /// import`, when no SSH reaches this machine from the hub.
    ///
    /// Selects runs like `ls` (--path, --status, --all), plus --run and --since; writes FILE
    /// only once whole (FILE.partial meanwhile), or streams to stdout with `-o -`.
    ///
    /// Example: ssh login-node runicorn-agent export --since 3d -o - > runs.rbundle
    Export(export_command::ExportArgs),
    /// Keep this storage root's index and change feed warm and serve hub sessions from memory:
    /// the resident agent, one per root.
    ///
    /// `serve --stdio` attaches to it over <root>/.runicorn-agent/daemon.sock (mode 0600) when
    /// it answers, and serves in-process otherwise. A second daemon on the same root refuses
    /// to start and names the first. Ends cleanly on SIGTERM or SIGINT (removing its socket), or
    /// after --idle-exit seconds without a hub session or a running run. Start it by hand,
    /// from a systemd user unit (see the README), or let `serve --stdio --start-daemon` (the
    /// hub's --resident-agent) start it when needed.
    ///
    /// Example: runicorn-agent daemon --root /data/runicorn --idle-exit 3600
    Daemon(daemon::DaemonArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Run(args) => run_command::wrap_command(args),
        Command::Ls(args) => list_command::list_runs(args).map(|()| 0),
        Command::Serve(args) => serve_command::serve(args),
        Command::Artifacts(args) => artifacts_command::artifacts(args),
        Command::Export(args) => export_command::export(args),
        Command::Daemon(args) => daemon::run_daemon(args),
    };
    match result {
        Ok(code) => ExitCode::from(code),
        // A reader that went away (`runicorn-agent ls | head`) is not an error.
        Err(err) if runicorn_cli::is_broken_pipe(&err) => ExitCode::SUCCESS,
        Err(err) => {
            // An error may quote a run path: control characters made visible.
            eprintln!(
                "{}: {}",
                runicorn_cli::error_label(),
                runicorn_cli::safe_lines(&format!("{err:#}"))
            );
            ExitCode::from(2)
        }
    }
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    #[test]
    fn the_command_line_is_well_formed() {
        super::Cli::command().debug_assert();
    }
}
