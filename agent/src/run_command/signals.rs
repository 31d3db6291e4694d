//! Passing signals on to the wrapped command.
//!
//! The command runs in the agent's own process group, so a Ctrl-C typed at the terminal already
//! reaches it (and `pdb` or `input()` in the script keep working). Signals that another process
//! sent to the agent alone (`kill`, `timeout`, a batch scheduler) are passed on to the command;
//! the agent itself never dies from them while the command runs.

use std::sync::atomic::{AtomicI32, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;

use signal_hook::consts::{SIGHUP, SIGINT, SIGQUIT, SIGTERM, SIGUSR1, SIGUSR2};
use signal_hook::iterator::exfiltrator::WithOrigin;
use signal_hook::iterator::{Handle, SignalsInfo};
use signal_hook::low_level::siginfo::Cause;

/// Signals the agent catches while a command runs.
const HANDLED: [i32; 6] = [SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2];

/// Forwards signals to a child until stopped, remembering the last stopping signal it received.
pub struct SignalForwarder {
    handle: Handle,
    thread: Option<JoinHandle<()>>,
    last_stop_signal: Arc<AtomicI32>,
}

impl SignalForwarder {
    /// Starts catching signals before the child exists, so none is missed or fatal.
    pub fn install() -> std::io::Result<(SignalForwarder, ChildSlot)> {
        let mut signals = SignalsInfo::<WithOrigin>::new(HANDLED)?;
        let handle = signals.handle();
        let last_stop_signal = Arc::new(AtomicI32::new(0));
        let child = ChildSlot(Arc::new(AtomicI32::new(0)));
        let (stop_seen, target) = (last_stop_signal.clone(), child.0.clone());
        let thread = std::thread::Builder::new()
            .name("signal-forwarder".into())
            .spawn(move || {
                for origin in signals.forever() {
                    if matches!(origin.signal, SIGINT | SIGTERM | SIGHUP | SIGQUIT) {
                        stop_seen.store(origin.signal, Ordering::SeqCst);
                    }
                    let pid = target.load(Ordering::SeqCst);
                    // A signal the kernel generated (terminal Ctrl-C, hang-up) reached the whole
                    // process group, the child included: sending it again would deliver it twice.
                    let from_kernel = matches!(origin.cause, Cause::Kernel);
                    let from_child = origin.process.as_ref().is_some_and(|p| p.pid == pid);
                    if pid > 0 && !from_kernel && !from_child {
                        // SAFETY: kill() only sends a signal; the pid is our own child's.
                        unsafe {
                            libc::kill(pid, origin.signal);
                        }
                    }
                }
            })?;
        Ok((
            SignalForwarder {
                handle,
                thread: Some(thread),
                last_stop_signal,
            },
            child,
        ))
    }

    /// The last SIGINT/SIGTERM/SIGHUP/SIGQUIT the agent received, if any.
    pub fn stop_signal_received(&self) -> Option<i32> {
        Some(self.last_stop_signal.load(Ordering::SeqCst)).filter(|s| *s != 0)
    }

    /// Stops forwarding (after the child has exited).
    pub fn stop(mut self) {
        self.handle.close();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Where the forwarder learns the child's pid once it is spawned.
pub struct ChildSlot(Arc<AtomicI32>);

impl ChildSlot {
    pub fn set(&self, pid: u32) {
        self.0
            .store(i32::try_from(pid).unwrap_or(0), Ordering::SeqCst);
    }
}

/// A signal's name (`SIGTERM`), for messages.
pub fn signal_name(sig: i32) -> String {
    let known = [
        (libc::SIGHUP, "SIGHUP"),
        (libc::SIGINT, "SIGINT"),
        (libc::SIGQUIT, "SIGQUIT"),
        (libc::SIGILL, "SIGILL"),
        (libc::SIGABRT, "SIGABRT"),
        (libc::SIGBUS, "SIGBUS"),
        (libc::SIGFPE, "SIGFPE"),
        (libc::SIGKILL, "SIGKILL"),
        (libc::SIGUSR1, "SIGUSR1"),
        (libc::SIGSEGV, "SIGSEGV"),
        (libc::SIGUSR2, "SIGUSR2"),
        (libc::SIGPIPE, "SIGPIPE"),
        (libc::SIGALRM, "SIGALRM"),
        (libc::SIGTERM, "SIGTERM"),
        (libc::SIGXCPU, "SIGXCPU"),
        (libc::SIGXFSZ, "SIGXFSZ"),
    ];
    known
        .iter()
        .find(|(n, _)| *n == sig)
        .map_or_else(|| format!("signal {sig}"), |(_, name)| (*name).to_owned())
}
