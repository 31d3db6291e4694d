//! `runicorn-hub`, the laptop side. The binary is glue: it parses the command line, opens the
//! store and hands each command to its module under `cli/`. Errors get their context here and
//! become a message and exit code 2.

mod cli;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Runicorn hub: mirrors the runs of your GPU servers onto this machine, live, over the SSH you
/// already use.
///
/// `connect` pulls every run of a server (run metadata eagerly, metric points and log tails as
/// they grow) into a local store and keeps following it; `sync` brings remembered servers up to
/// date again; `ui` serves the dashboard and follows them all; `ls`, `metrics` and `remotes`
/// show what the store holds, also when the servers are gone.
/// The store lives in --hub-dir, else $RUNICORN_HUB_DIR, else ~/.local/share/runicorn-hub.
#[derive(Parser, Debug)]
#[command(name = "runicorn-hub", version, propagate_version = true)]
struct Cli {
    /// Directory of the hub's store [default: $RUNICORN_HUB_DIR, else the platform's data
    /// directory, ~/.local/share/runicorn-hub on Linux]
    #[arg(long, global = true, value_name = "DIR")]
    hub_dir: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Connect to a server over SSH (or a local root), sync all its runs, then follow live.
    ///
    /// TARGET is [user@]host[:port], a Host alias from ~/.ssh/config, or local:DIR for a storage
    /// root on this machine. The server needs `runicorn-agent` on its PATH, in
    /// ~/.runicorn/bin, or at --agent PATH. Host keys are checked against ~/.ssh/known_hosts;
    /// authentication uses ssh-agent, then key files. The remote is remembered under --name (by
    /// default the host name) for `runicorn-hub sync`. Ctrl-C stops following.
    ///
    /// Example: runicorn-hub connect me@gpu-01 --root /data/runicorn
    Connect(cli::connect::ConnectArgs),
    /// Sync remembered remotes once (all of them, or the ones named) and exit.
    ///
    /// Exits with 2 when any remote failed; the others are still synced.
    Sync(cli::sync_command::SyncArgs),
    /// List the runs in the store, from every remote (oldest first).
    Ls(cli::list::LsArgs),
    /// A run's metrics from the store: a table of its keys (points, last, min, max), or every
    /// point with --csv or --json.
    ///
    /// Works offline: the store holds every point synced. RUN is a key, a run id or
    /// REMOTE/RUN_ID, as `runicorn-hub ls` shows them.
    ///
    /// Example: runicorn-hub metrics gpu-01/20261204_101500_a1b2c3 --keys 'val/*' --csv > val.csv
    Metrics(cli::metrics::MetricsArgs),
    /// Show every remote's host and its GPUs: use, memory, temperature, power, the run holding
    /// each, and which are free (no compute process, utilisation below 10 %).
    ///
    /// Works offline: a remote that is not live shows its last sample. Samples come with the
    /// sync (`sync`, `ui`, `connect`) from agents that report their host.
    ///
    /// Example: runicorn-hub fleet --json
    Fleet(cli::fleet::FleetArgs),
    /// List the remembered remotes (state, who follows each, last sync, runs), or manage them:
    /// `rm`, `rename`, `pause`, `resume`.
    ///
    /// Example: runicorn-hub remotes rm gpu-typo
    Remotes(cli::remotes::RemotesArgs),
    /// Serve the dashboard on http://127.0.0.1:23300/ and keep every remembered remote syncing
    /// live.
    ///
    /// The dashboard reads the local store, so every run stays on show when servers are
    /// disconnected or gone. It listens on 127.0.0.1 only, unless --bind says otherwise.
    ///
    /// Example: runicorn-hub ui --open
    Ui(cli::ui::UiArgs),
    /// Copy a run's files (all, or those --files matches) into a directory, fetching from the
    /// run's server what the cache does not hold yet.
    ///
    /// Each file is verified against the SHA-256 the agent reported and kept in the cache (the
    /// same bytes once, whatever run or server they come from), so a second fetch is local; a
    /// cut transfer resumes where it stopped. RUN is a key, a run id or REMOTE/RUN_ID, as
    /// `runicorn-hub ls` shows them.
    ///
    /// Example: runicorn-hub fetch gpu-01/20261204_101500_a1b2c3 --files 'ckpt/*.pt' -o ./ckpt
    Fetch(cli::fetch::FetchArgs),
    /// List the artifacts in the store, from every remote: one line per version (type, name,
    /// aliases, size, files, producing run, remote and host), and the bytes dedup saves.
    ///
    /// Works offline: the store holds what the last sync brought.
    ///
    /// Example: runicorn-hub artifacts --type model --json
    Artifacts(cli::artifacts::ArtifactsArgs),
    /// Show what the file cache holds (in all and per remote), or trim it with `cache gc`.
    ///
    /// Run files (images, checkpoints, …) come into the cache when the dashboard shows them, a
    /// prefetch brings them, or `runicorn-hub fetch` asks; the same bytes are stored once.
    ///
    /// Example: runicorn-hub cache gc --max-size 20G
    Cache(cli::cache::CacheArgs),
    /// The hub's recycle bin (what the dashboard's Delete fills): list it, put runs in, restore
    /// them, or delete them for good with `purge` and `empty`.
    ///
    /// Deleting for good removes a run's data from this machine only; its server keeps it and
    /// later syncs leave it out. It asks first (--yes skips the question).
    ///
    /// Example: runicorn-hub recycle-bin empty
    RecycleBin(cli::recycle_bin::RecycleBinArgs),
    /// List the alerts agents raised about runs (stalled, crashed, failed, a NaN or infinite
    /// watched metric, idle GPUs), or acknowledge them.
    ///
    /// Lists the alerts not acknowledged yet, newest first (--all: every alert). Alerts arrive
    /// with the sync; `ui --on-alert CMD` and `connect --on-alert CMD` run a command for each
    /// new one.
    ///
    /// Example: runicorn-hub alerts --json; runicorn-hub alerts --ack 12
    Alerts(cli::alerts::AlertsArgs),
    /// Import offline bundles: runs carried by hand from servers no SSH reaches.
    ///
    /// Each FILE is checked whole (every member's size and SHA-256, paths, links, bombs) before
    /// anything changes, then all are stored in one step, exactly as a sync would store them,
    /// under the remote each bundle names (or --as). Importing a bundle twice changes nothing;
    /// a newer bundle of the same runs brings their new points; a copy here that is further
    /// along is kept. Reads bundles of `runicorn-agent export` and `runicorn-hub export`, and
    /// upstream runicorn's `runicorn export` .tar.gz and viewer .zip.
    ///
    /// Example: ssh login-node runicorn-agent export -o - | runicorn-hub import -
    Import(cli::import::ImportArgs),
    /// Write sample runs (one of them still training) and artifacts (a dataset, a model of three
    /// versions) into a temporary root, start a local agent on it, sync it into a temporary
    /// store, serve the dashboard and follow it live.
    Demo(cli::demo::DemoArgs),
    /// Write runs of the store (with their hub annotations) into one offline bundle file, to
    /// carry them to another hub (`runicorn-hub import`).
    ///
    /// Runs are selected as `runicorn-hub ls` selects them. Each run's records, points and log
    /// come from the store, and its other files from the file cache; a file the cache lacks is
    /// listed (name, size, SHA-256) without its bytes. `-o -` writes to standard output.
    ///
    /// Example: runicorn-hub export --remote gpu-01 --since 3d -o gpu-01.rbundle
    Export(cli::export::ExportArgs),
    /// The command `demo` runs under `runicorn-agent run` (not for direct use).
    #[command(hide = true)]
    DemoWorker(cli::demo_wrapped::DemoWorkerArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    cli::logging::init();
    let hub_dir = cli.hub_dir.clone();
    let result = match cli.command {
        Command::Connect(args) => cli::connect::run(hub_dir, args),
        Command::Sync(args) => cli::sync_command::run(hub_dir, args),
        Command::Ls(args) => cli::list::run(hub_dir, args),
        Command::Metrics(args) => cli::metrics::run(hub_dir, args),
        Command::Remotes(args) => cli::remotes::run(hub_dir, args),
        Command::Fleet(args) => cli::fleet::run(hub_dir, args),
        Command::Ui(args) => cli::ui::run(hub_dir, args),
        Command::Demo(args) => cli::demo::run(hub_dir, args),
        Command::DemoWorker(args) => cli::demo_wrapped::run_worker(args),
        Command::Export(args) => cli::export::run(hub_dir, args),
        Command::Fetch(args) => cli::fetch::run(hub_dir, args),
        Command::Artifacts(args) => cli::artifacts::run(hub_dir, args),
        Command::Cache(args) => cli::cache::run(hub_dir, args),
        Command::RecycleBin(args) => cli::recycle_bin::run(hub_dir, args),
        Command::Alerts(args) => cli::alerts::run(hub_dir, args),
        Command::Import(args) => cli::import::run(hub_dir, args),
    };
    match result {
        Ok(code) => ExitCode::from(code),
        Err(err) if runicorn_cli::is_broken_pipe(&err) => ExitCode::SUCCESS,
        Err(err) => {
            // An error may quote a run path or an agent's stderr: control characters made visible.
            eprintln!(
                "{}: {}",
                runicorn_cli::error_label(),
                runicorn_cli::safe_lines(&format!("{err:#}"))
            );
            ExitCode::from(2)
        }
    }
}
