//! `runicorn-agent daemon`: the resident agent of one storage root (issue 15, item 1). It keeps
//! the index and the change feed warm the whole time (the scanner of `serve_command`, subscribed
//! from the start: file watcher and a full scan every `--poll`), and serves every hub session
//! that `serve --stdio` relays to it over a Unix socket in the root, each exactly as an
//! in-process session would be served. Wire details: docs/protocol.md, "The resident agent".
//!
//! | module | owns |
//! |---|---|
//! | `paths` | `<root>/.runicorn-agent/daemon.{lock,sock,log}`, the folder's safety checks, the socket address (and the 107-byte limit) |
//! | `lock` | one daemon per root: the `flock` and what it says of its holder |
//! | `listener` | binding the socket (0600, stale ones replaced), accepting, one session thread per connection |
//! | `lifecycle` | ending on signals and after `--idle-exit`, the socket removed; keeping the log bounded |
//! | `log_file` | `--log FILE`: stderr into a file rotated at 1 MiB |
//! | `attach` | the `serve --stdio` side: connect, greeting, relaying bytes, the fallback |
//! | `start` | `serve --stdio --start-daemon`: a detached daemon started and waited for |
//! | `first_index` | a fresh index built by a child process (`--index-only`), so the first scan's working set never lives in the daemon's heap |
//! | `run_telemetry` | `system.jsonl` samples of the running runs it did not start (the SDK's, the Rust writer's) |

pub mod attach;
mod first_index;
mod lifecycle;
mod listener;
mod lock;
mod log_file;
mod paths;
mod run_telemetry;
mod start;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;

use crate::root_args::RootArgs;
use crate::run_index::RunIndex;
use crate::serve_command::{absolute_root, positive_seconds, start_background, Warm};
use crate::telemetry::settings::TelemetryArgs;
use lifecycle::IdleWatch;
use listener::Sessions;
use lock::{DaemonLock, Holder};
use paths::DaemonPaths;

/// The first line the daemon sends on each connection, before any frame (then ` pid=N
/// version=V`, V its `runicorn-agent` version).
pub const GREETING: &str = "runicorn-agent-daemon 1";

/// The daemon's SQLite page cache (its idle memory budget is 20 MB with 10,000 runs).
const INDEX_PAGE_CACHE_KIB: u32 = 512;

/// This build's version, which a relay and its daemon must share.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

#[derive(clap::Args, Debug)]
pub struct DaemonArgs {
    #[command(flatten)]
    pub root: RootArgs,
    /// Seconds between full scans of the root: the safety net for what file events miss
    /// (network file systems, writers on other hosts). The file watcher reports writes at once,
    /// and running runs are checked every 2 s (a writer that died, a run that stopped stepping)
    #[arg(long, value_name = "SECS", default_value_t = 60.0, value_parser = positive_seconds)]
    pub poll: f64,
    /// Exit after this many seconds with no hub session attached and no running run in the
    /// root (0: never)
    #[arg(long, value_name = "SECS", default_value_t = 0)]
    pub idle_exit: u64,
    /// Do not pack artifacts in the background (see `serve --no-pack`)
    #[arg(long)]
    pub no_pack: bool,
    /// Also write diagnostics to FILE (appended, mode 0600, rotated to FILE.1 past 1 MiB);
    /// `serve --start-daemon` passes <root>/.runicorn-agent/daemon.log
    #[arg(long, value_name = "FILE")]
    pub log: Option<PathBuf>,
    /// Telemetry of the runs of this host that `runicorn-agent run` did not start (a plain
    /// `python train.py` with the SDK): sampled into their system.jsonl while their writer lives
    #[command(flatten)]
    pub telemetry: TelemetryArgs,
    /// Build the root's index (one full scan) and exit: what a daemon starting on a fresh
    /// index runs in a child process
    #[arg(long, hide = true)]
    pub index_only: bool,
}

/// Longest wait for the file watcher before the first session is served.
const WATCHER_SETTLE_LIMIT: Duration = Duration::from_secs(5);

/// Waits until the first scan is in the index and the file watcher watches every folder (at
/// most [`WATCHER_SETTLE_LIMIT`]) before sessions are served: what those keep for the daemon's
/// life is then allocated before any session's large, short-lived buffers, not scattered
/// between them (where each would keep a page of freed memory from going back). A hub that
/// attaches meanwhile waits in the socket's queue.
fn settle_before_sessions(warm: &Warm) {
    warm.wait_ready();
    let since = std::time::Instant::now();
    while !warm.watcher_ready() && since.elapsed() < WATCHER_SETTLE_LIMIT {
        std::thread::sleep(Duration::from_millis(20));
    }
    crate::heap::trim();
}

/// Runs the daemon until a signal or the idle exit ends it; an error (another daemon holds the
/// root, the socket cannot be made) ends it at once with a non-zero code.
pub fn run_daemon(args: DaemonArgs) -> anyhow::Result<u8> {
    let root = absolute_root(&args.root.resolve());
    if !root.is_dir() {
        anyhow::bail!(
            "the storage root {} does not exist; create it, or pass --root DIR",
            root.display()
        );
    }
    let paths = DaemonPaths::of(&root);
    paths.prepare_dir()?;
    if args.index_only {
        return first_index::index_only(&root);
    }
    let log = match &args.log {
        Some(file) => Some(
            log_file::BoundedLog::redirect_stderr(file)
                .with_context(|| format!("logging to {}", file.display()))?,
        ),
        None => None,
    };
    crate::heap::limit_arenas();
    let mut lock = DaemonLock::acquire(&paths.lock)?;
    // Before the socket exists: until the index is built, `serve --stdio` works in-process.
    if first_index::is_fresh(&root)? {
        first_index::build_in_child(&root);
    }
    let listener = listener::bind_socket(&paths.socket)
        .with_context(|| format!("listening on {}", paths.socket.display()))?;
    lock.record(&Holder {
        pid: std::process::id(),
        started_at: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        socket: paths.socket.clone(),
    })?;
    lifecycle::exit_on_signals(paths.socket.clone()).context("catching signals")?;
    let index = RunIndex::open(&root).context("opening the index")?;
    index
        .limit_page_cache(INDEX_PAGE_CACHE_KIB)
        .context("setting up the index")?;
    let epoch = index.epoch().context("reading the index epoch")?;
    let poll = Duration::from_secs_f64(args.poll);
    let warm = Arc::new(Warm::new(root.clone(), epoch, index, poll, true));
    start_background(&warm, args.no_pack)?;
    let telemetry = args.telemetry.settings();
    if let Some(period) = telemetry.interval {
        run_telemetry::spawn(Arc::clone(&warm), period, telemetry.nvidia_smi)
            .context("starting the telemetry thread")?;
    }
    let sessions = Arc::new(Sessions::default());
    IdleWatch {
        warm: Arc::clone(&warm),
        sessions: Arc::clone(&sessions),
        idle_exit: (args.idle_exit > 0).then(|| Duration::from_secs(args.idle_exit)),
        log,
        socket: paths.socket.clone(),
    }
    .spawn()
    .context("starting the idle watch")?;
    eprintln!(
        "runicorn-agent daemon: serving {} on {} (pid {}, full scan every {} s, idle exit {}, \
         telemetry {})",
        root.display(),
        paths.socket.display(),
        std::process::id(),
        args.poll,
        match args.idle_exit {
            0 => "never".to_owned(),
            s => format!("after {s} s"),
        },
        match telemetry.interval {
            Some(period) => format!("every {} s", period.as_secs_f64()),
            None => "off".to_owned(),
        }
    );
    settle_before_sessions(&warm);
    listener::accept_loop(&listener, &warm, &sessions);
    // `incoming()` never ends; kept for completeness.
    drop(lock);
    Ok(2)
}
