//! How the daemon ends: on SIGTERM, SIGINT or SIGHUP, and (`--idle-exit`) after a time with no
//! hub session and no live run in the root; either way its socket is removed first, so the
//! next `serve --stdio` falls back at once (the lock goes with the process). The same watch
//! keeps the log file bounded.

use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
use signal_hook::iterator::Signals;

use super::listener::Sessions;
use super::log_file::BoundedLog;
use crate::serve_command::Warm;

/// How often the idle watch looks.
const TICK: Duration = Duration::from_millis(500);
/// How often the log's size is checked.
const LOG_CHECK_EVERY: Duration = Duration::from_secs(10);
/// How often freed heap memory is handed back to the system.
const TRIM_EVERY: Duration = Duration::from_secs(5);

/// Removes the socket and ends the process.
fn exit_removing(socket: &PathBuf, why: &str) -> ! {
    eprintln!(
        "runicorn-agent daemon: {why}; removing {} and exiting",
        socket.display()
    );
    let _ = std::fs::remove_file(socket);
    std::process::exit(0)
}

/// Ends the daemon cleanly on SIGTERM, SIGINT and SIGHUP.
pub fn exit_on_signals(socket: PathBuf) -> std::io::Result<()> {
    let mut signals = Signals::new([SIGTERM, SIGINT, SIGHUP])?;
    std::thread::Builder::new()
        .name("signals".into())
        .spawn(move || {
            if let Some(signal) = signals.forever().next() {
                let name = match signal {
                    SIGTERM => "SIGTERM",
                    SIGINT => "SIGINT",
                    _ => "SIGHUP",
                };
                exit_removing(&socket, &format!("stopping on {name}"));
            }
        })
        .map(|_| ())
}

/// What the idle watch looks at.
pub struct IdleWatch {
    pub warm: Arc<Warm>,
    pub sessions: Arc<Sessions>,
    /// `--idle-exit`; `None`: never.
    pub idle_exit: Option<Duration>,
    pub log: Option<BoundedLog>,
    pub socket: PathBuf,
}

impl IdleWatch {
    pub fn spawn(self) -> std::io::Result<()> {
        std::thread::Builder::new()
            .name("idle-watch".into())
            .spawn(move || self.run())
            .map(|_| ())
    }

    fn run(self) {
        let mut idle_since: Option<Instant> = None;
        let mut last_log_check = Instant::now();
        let mut last_trim = Instant::now();
        loop {
            std::thread::sleep(TICK);
            if last_trim.elapsed() >= TRIM_EVERY {
                last_trim = Instant::now();
                crate::heap::trim();
            }
            if let Some(log) = &self.log {
                if last_log_check.elapsed() >= LOG_CHECK_EVERY {
                    last_log_check = Instant::now();
                    if let Err(e) = log.rotate_if_large() {
                        eprintln!("runicorn-agent daemon: cannot rotate the log: {e}");
                    }
                }
            }
            let Some(limit) = self.idle_exit else {
                continue;
            };
            // Until the first full scan is in, whether runs are live is not known yet.
            let busy = !self.warm.scanned()
                || self.sessions.open.load(Ordering::SeqCst) > 0
                || self.warm.live_runs() > 0;
            if busy {
                idle_since = None;
                continue;
            }
            let since = *idle_since.get_or_insert_with(Instant::now);
            if since.elapsed() >= limit {
                exit_removing(
                    &self.socket,
                    &format!(
                        "no hub session and no running run for {} s (--idle-exit)",
                        limit.as_secs()
                    ),
                );
            }
        }
    }
}
