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
//! | `shared` | what the threads share: the index, readiness, notices |
//! | `session` | the worker: one answer per request, in order |
//! | `scanner`, `watcher` | keeping the feed current: periodic full scans, file events |
//! | `packer` | packing large whole pool files into chunks in the background (`--no-pack`: off) |
//! | `changes`, `records` | `changes` answers: feed pages with each run's records |
//! | `points`, `logs` | `points` and `log` answers |
//! | `host` | `host` answers (on a thread of their own): GPUs, their processes' runs, load |
//! | `chunks` | `chunks` answers: where a pooled content's chunks are, for the hub to read only those it lacks |
//! | `targets` | checking run directories named by the hub |
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
mod watcher;

use std::io::BufReader;
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
use output::{FrameWriter, SendError};
use shared::Shared;

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
}

fn positive_seconds(text: &str) -> Result<f64, String> {
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
/// incompatible peer).
pub fn serve(args: ServeArgs) -> anyhow::Result<u8> {
    if !args.stdio {
        anyhow::bail!(
            "only the stdio transport is supported: run `runicorn-agent serve --stdio` (the hub starts it over SSH)"
        );
    }
    let root = absolute_root(&args.root.resolve());
    let index = open_index(&root)?;
    let epoch = index.epoch().context("reading the index epoch")?;
    let me = AgentIdentity {
        root: root.display().to_string(),
        host: local_hostname(),
        epoch: epoch.clone(),
        max_frame_bytes: args.max_frame_bytes,
    };
    let out = FrameWriter::new(Box::new(std::io::stdout()), DEFAULT_MAX_FRAME_BYTES);
    let mut stdin = BufReader::with_capacity(256 * 1024, std::io::stdin());

    match read_one(&mut stdin, args.max_frame_bytes) {
        Incoming::Closed => return Ok(0),
        Incoming::Broken { id, code, message } => {
            eprintln!("runicorn-agent serve: the first frame is broken: {message}");
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
                eprintln!("runicorn-agent serve: {}", refusal.message);
                return Ok(refuse(&out, id, refusal.code, refusal.message));
            }
        },
        Incoming::Request(other) => {
            let message = format!(
                "the first message must be hello, not {}; is the peer a runicorn hub?",
                other.body.kind()
            );
            eprintln!("runicorn-agent serve: {message}");
            return Ok(refuse(&out, other.id, ErrorCode::BadRequest, message));
        }
    }

    let poll = Duration::from_secs_f64(args.poll);
    let shared = Arc::new(Shared::new(root.clone(), epoch, index, out, poll));
    let (to_worker, incoming) = mpsc::channel();
    spawn_reader(stdin, args.max_frame_bytes, to_worker).context("starting the reader")?;
    let (triggers_tx, triggers_rx) = mpsc::channel();
    let packer = if args.no_pack {
        None
    } else {
        Some(
            packer::spawn_packer(root.clone(), triggers_tx.clone())
                .context("starting the packer")?,
        )
    };
    let watcher = (!watcher::disabled_by_env()).then_some(triggers_tx);
    scanner::spawn_scanner(Arc::clone(&shared), poll, triggers_rx, watcher, packer)
        .context("starting the scanner")?;
    let host = host::HostRequests::spawn(
        Arc::clone(&shared),
        crate::telemetry::nvidia_smi::NvidiaSmi::default(),
    )
    .context("starting the host sampler")?;
    Ok(session::serve_requests(&shared, &incoming, &host))
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
fn absolute_root(root: &Path) -> PathBuf {
    std::fs::canonicalize(root)
        .or_else(|_| std::path::absolute(root))
        .unwrap_or_else(|_| root.to_owned())
}

/// The root's index, or one in memory when the root cannot hold it (read-only, missing).
fn open_index(root: &Path) -> anyhow::Result<RunIndex> {
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
