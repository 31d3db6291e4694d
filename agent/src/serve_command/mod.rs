//! `runicorn-agent serve --stdio`: the agent's side of the sync protocol (`docs/protocol.md`).
//!
//! The hub starts this over an SSH exec channel (or as a local child) and talks to it in frames
//! on stdin/stdout; stdout carries frames only, every diagnostic goes to stderr. The module is
//! glue over its parts:
//!
//! | module | owns |
//! |---|---|
//! | `handshake` | the `hello` exchange and version choice |
//! | `input` | the reader thread: frames from stdin, broken frames, the end of the stream |
//! | `output` | the one writer of stdout (whole frames, the hub's limit) |
//! | `warm` | the feed kept warm: the index, scans and readiness, the sessions told of changes (one in-process session, or every session of the resident agent) |
//! | `shared` | what one session's threads share: its writer, notices, the warm feed |
//! | `session` | the worker: one answer per request, in order |
//! | `scanner`, `watcher` | keeping the feed current: periodic full scans, file events |
//! | `packer` | packing large whole pool files into chunks in the background (`--no-pack`: off) |
//! | `changes`, `records` | `changes` answers: feed pages with each run's records |
//! | `points`, `logs` | `points` and `log` answers |
//! | `chunks` | `chunks` answers: where a pooled content's chunks are, for the hub to read only those it lacks |
//! | `targets` | checking run directories named by the hub |
//! | `host` | `host` answers (on a thread of their own): GPUs, their processes' runs, load |
//! | `request_error`, `sizing` | typed request failures; JSON sizes for packing |

mod changes;
mod chunks;
mod handshake;
mod host;
mod input;
mod logs;
mod output;
mod packer;
mod points;
mod records;
mod request_error;
mod scanner;
mod session;
mod shared;
mod sizing;
mod targets;
mod warm;
mod watcher;

use std::io::{BufReader, Read};
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use runicorn_protocol::run_format::process::local_hostname;
use runicorn_protocol::wire::{
    Body, Envelope, ErrorCode, DEFAULT_MAX_FRAME_BYTES, MIN_MAX_FRAME_BYTES,
};

use crate::root_args::RootArgs;
use crate::run_index::RunIndex;
use handshake::{negotiate, AgentIdentity};
use input::{read_one, spawn_reader, Incoming};
pub use output::FrameWriter;
use output::SendError;
use shared::Shared;
pub use warm::Warm;

#[derive(clap::Args, Debug)]
pub struct ServeArgs {
    /// Speak the protocol on stdin/stdout (the only transport for now; the hub runs
    /// `runicorn-agent serve --stdio` over SSH or as a local child process)
    #[arg(long)]
    pub stdio: bool,
    #[command(flatten)]
    pub root: RootArgs,
    /// Seconds between full scans of the root once the hub subscribed (they find what file
    /// events miss: network file systems, writers on other hosts, runs whose writer died);
    /// before that, how old a scan a `changes` request accepts
    #[arg(long, value_name = "SECS", default_value_t = 2.0, value_parser = positive_seconds)]
    pub poll: f64,
    /// Largest frame accepted from the hub, in bytes (at least 1 MiB)
    #[arg(long, value_name = "BYTES", default_value_t = DEFAULT_MAX_FRAME_BYTES,
          value_parser = clap::value_parser!(u32).range(i64::from(MIN_MAX_FRAME_BYTES)..))]
    pub max_frame_bytes: u32,
    /// Do not pack artifacts in the background. By default, once the hub subscribed, whole pool
    /// files of at least 4 MiB (older than a few seconds, and only while no writer holds the
    /// pool lock) become chunks one at a time, like `runicorn-agent artifacts pack`
    #[arg(long)]
    pub no_pack: bool,
    /// When no resident agent (`runicorn-agent daemon`) serves the root, start one (detached,
    /// logging to <root>/.runicorn-agent/daemon.log) and attach to it. Without this flag a
    /// running daemon is still used when it answers, and the session is served in this process
    /// otherwise. An attached session uses the daemon's --poll and packing
    #[arg(long, conflicts_with = "no_daemon")]
    pub start_daemon: bool,
    /// --idle-exit of a daemon that --start-daemon starts: it exits after this many seconds
    /// with no hub session and no running run (0: never)
    #[arg(
        long,
        value_name = "SECS",
        default_value_t = 600,
        requires = "start_daemon"
    )]
    pub daemon_idle_exit: u64,
    /// Serve in this process even when a resident agent runs for the root
    #[arg(long)]
    pub no_daemon: bool,
}

pub fn positive_seconds(text: &str) -> Result<f64, String> {
    let v: f64 = text
        .parse()
        .map_err(|_| format!("{text:?} is not a number of seconds"))?;
    if (0.01..=86_400.0).contains(&v) {
        Ok(v)
    } else {
        Err(format!("{text} is outside 0.01..=86400 seconds"))
    }
}

/// Runs a session; returns the exit code (0: the hub closed the stream; 2: a broken or
/// incompatible peer). The session goes to the root's resident agent when one answers on its
/// socket (this process then only relays bytes, `crate::daemon::attach`), else it is served
/// here.
pub fn serve(args: ServeArgs) -> anyhow::Result<u8> {
    if !args.stdio {
        anyhow::bail!(
            "only the stdio transport is supported: run `runicorn-agent serve --stdio` (the hub starts it over SSH)"
        );
    }
    let root = absolute_root(&args.root.resolve());
    if !args.no_daemon {
        let start = args.start_daemon.then_some(args.daemon_idle_exit);
        if let Some(code) = crate::daemon::attach::attach(&root, start) {
            return Ok(code);
        }
    }
    let index = open_index(&root)?;
    let epoch = index.epoch().context("reading the index epoch")?;
    let poll = Duration::from_secs_f64(args.poll);
    let warm = Arc::new(Warm::new(root, epoch, index, poll, false));
    let out = FrameWriter::new(Box::new(std::io::stdout()), DEFAULT_MAX_FRAME_BYTES);
    let stdin = BufReader::with_capacity(256 * 1024, std::io::stdin());
    let options = ConnectionOptions {
        max_frame_bytes: args.max_frame_bytes,
        exit_process_on_close: true,
        log_name: "serve",
    };
    serve_connection(&warm, stdin, out, &options, || {
        start_background(&warm, args.no_pack)
    })
}

/// How one connection is served.
pub struct ConnectionOptions {
    /// Largest frame accepted from the hub.
    pub max_frame_bytes: u32,
    /// The hub closing the stream ends the process (`serve --stdio`), or only the session.
    pub exit_process_on_close: bool,
    /// The command named in diagnostics (`serve`, `daemon`).
    pub log_name: &'static str,
}

/// Serves one session over a connection: the `hello` exchange, then `after_hello` (the
/// in-process agent starts its scanner there, so a refused peer costs no scan), then requests
/// until the hub closes the stream. Returns the exit code of the session.
pub fn serve_connection(
    warm: &Arc<Warm>,
    mut reader: impl Read + Send + 'static,
    out: FrameWriter,
    options: &ConnectionOptions,
    after_hello: impl FnOnce() -> anyhow::Result<()>,
) -> anyhow::Result<u8> {
    let name = options.log_name;
    let me = AgentIdentity {
        root: warm.root.display().to_string(),
        host: local_hostname(),
        epoch: warm.epoch.clone(),
        max_frame_bytes: options.max_frame_bytes,
        resident: warm.resident,
    };
    match read_one(&mut reader, options.max_frame_bytes) {
        Incoming::Closed => return Ok(0),
        Incoming::Broken { id, code, message } => {
            eprintln!("runicorn-agent {name}: the first frame is broken: {message}");
            return Ok(refuse(&out, id, code, message));
        }
        Incoming::Request(Envelope {
            id,
            body: Body::Hello(hello),
        }) => match negotiate(&hello, &me) {
            Ok(agreement) => {
                out.set_limit(agreement.hub_max_frame_bytes);
                let sent = out.send(&Envelope {
                    id,
                    body: Body::Hello(agreement.answer),
                });
                if let Err(e) = sent {
                    return Ok(ended(e));
                }
            }
            Err(refusal) => {
                eprintln!("runicorn-agent {name}: {}", refusal.message);
                return Ok(refuse(&out, id, refusal.code, refusal.message));
            }
        },
        Incoming::Request(other) => {
            let message = format!(
                "the first message must be hello, not {}; is the peer a runicorn hub?",
                other.body.kind()
            );
            eprintln!("runicorn-agent {name}: {message}");
            return Ok(refuse(&out, other.id, ErrorCode::BadRequest, message));
        }
    }
    after_hello()?;
    let shared = Arc::new(Shared::over(Arc::clone(warm), out));
    warm.attach(&shared);
    let (to_worker, incoming) = mpsc::channel();
    spawn_reader(
        reader,
        options.max_frame_bytes,
        to_worker,
        options.exit_process_on_close,
    )
    .context("starting the reader")?;
    let host = host::HostRequests::spawn(
        Arc::clone(&shared),
        crate::telemetry::nvidia_smi::NvidiaSmi::default(),
    )
    .context("starting the host sampler")?;
    let code = session::serve_requests(&shared, &incoming, &host);
    warm.detach(&shared);
    Ok(code)
}

/// Starts what keeps `warm` current: the scanner (full scans, then, once subscribed, the file
/// watcher and periodic scans) and, unless `no_pack`, the packer.
pub fn start_background(warm: &Arc<Warm>, no_pack: bool) -> anyhow::Result<()> {
    let (triggers_tx, triggers_rx) = mpsc::channel();
    let packer = if no_pack {
        None
    } else {
        Some(
            packer::spawn_packer(warm.root.clone(), triggers_tx.clone())
                .context("starting the packer")?,
        )
    };
    if warm.resident {
        warm.set_triggers(triggers_tx.clone());
    }
    let watcher = (!watcher::disabled_by_env()).then_some(triggers_tx);
    scanner::spawn_scanner(Arc::clone(warm), warm.poll, triggers_rx, watcher, packer)
        .context("starting the scanner")
}

/// Sends a refusal and gives the exit code for it.
fn refuse(out: &FrameWriter, id: u64, code: ErrorCode, message: String) -> u8 {
    match out.send_error(id, code, message) {
        Err(SendError::Closed) => 0,
        _ => 2,
    }
}

/// The exit code when the hello answer could not be sent.
fn ended(e: SendError) -> u8 {
    match e {
        SendError::Closed => 0,
        other => {
            eprintln!("runicorn-agent serve: {other}");
            2
        }
    }
}

/// The root as an absolute path (links resolved when it exists).
pub fn absolute_root(root: &Path) -> PathBuf {
    std::fs::canonicalize(root)
        .or_else(|_| std::path::absolute(root))
        .unwrap_or_else(|_| root.to_owned())
}

/// The root's index, or one in memory when the root cannot hold it (read-only, missing).
pub fn open_index(root: &Path) -> anyhow::Result<RunIndex> {
    if !root.is_dir() {
        eprintln!(
            "runicorn-agent serve: the storage root {} does not exist (yet); its runs are indexed in memory until the agent restarts",
            root.display()
        );
        return RunIndex::open_in_memory(root).context("creating an in-memory index");
    }
    match RunIndex::open(root) {
        Ok(index) => Ok(index),
        Err(e) => {
            eprintln!(
                "runicorn-agent serve: cannot use the index ({e}); keeping it in memory for this session (a new epoch: the hub lists everything once)"
            );
            RunIndex::open_in_memory(root).context("creating an in-memory index")
        }
    }
}
