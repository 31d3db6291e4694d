//! The resident agent for tests and benchmarks: `runicorn-agent daemon` started on a root with
//! its stderr in a file, waited for until its socket answers, stopped (or killed) by its own
//! pid; and what a root's daemon files say (`daemon.lock`, `daemon.sock`).

use std::fs::File;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// `<root>/.runicorn-agent/daemon.sock`.
pub fn socket_of(root: &Path) -> PathBuf {
    root.join(".runicorn-agent/daemon.sock")
}

/// The pid the root's `daemon.lock` names, if any.
pub fn lock_pid(root: &Path) -> Option<u32> {
    let text = std::fs::read_to_string(root.join(".runicorn-agent/daemon.lock")).ok()?;
    let v: serde_json::Value = serde_json::from_str(&text).ok()?;
    v["pid"].as_u64().map(|p| p as u32)
}

/// Whether a process with this pid exists (and is not a zombie of ours).
pub fn alive(pid: u32) -> bool {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // The state follows the command name in parentheses.
    stat.rsplit(')')
        .next()
        .and_then(|rest| rest.split_whitespace().next())
        .is_some_and(|state| state != "Z" && state != "X")
}

/// Whether something accepts connections on the root's socket and greets.
pub fn answers(root: &Path) -> bool {
    use std::io::Read;
    let Ok(mut s) = UnixStream::connect(socket_of(root)) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
    let mut first = [0u8; 8];
    s.read_exact(&mut first).is_ok() && first.starts_with(b"runicorn")
}

/// A running `runicorn-agent daemon`, killed when dropped.
pub struct Daemon {
    pub child: Child,
    root: PathBuf,
    log: PathBuf,
    _log_dir: tempfile::TempDir,
}

impl Daemon {
    /// Starts a daemon on `root` with `extra` options, without waiting.
    pub fn spawn(root: &Path, extra: &[&str]) -> Daemon {
        Daemon::spawn_command(crate::agent(), root, extra)
    }

    /// Like [`Daemon::spawn`] with the agent's command given (a benchmark's own copy).
    pub fn spawn_command(mut agent: std::process::Command, root: &Path, extra: &[&str]) -> Daemon {
        let log_dir = tempfile::tempdir().expect("tempdir");
        let log = log_dir.path().join("daemon.stderr");
        let child = agent
            .args(["daemon", "--root"])
            .arg(root)
            .args(extra)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(File::create(&log).expect("log file"))
            .spawn()
            .expect("the daemon starts");
        Daemon {
            child,
            root: root.to_owned(),
            log,
            _log_dir: log_dir,
        }
    }

    /// Starts a daemon and waits until its socket answers.
    pub fn start(root: &Path, extra: &[&str]) -> Daemon {
        Daemon::spawn(root, extra).wait_answering()
    }

    /// Waits until the daemon's socket answers (panics if it exits or takes 30 s).
    pub fn wait_answering(mut self) -> Daemon {
        let root = self.root.clone();
        let deadline = Instant::now() + Duration::from_secs(30);
        while !answers(&root) {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("the daemon exited ({status}):\n{}", self.log());
            }
            assert!(
                Instant::now() < deadline,
                "the daemon did not answer:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        self
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// What the daemon wrote on stderr so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Sends a signal.
    pub fn signal(&self, signal: i32) {
        // SAFETY: kill() only sends a signal, to our own child.
        unsafe { libc::kill(self.child.id() as i32, signal) };
    }

    /// Waits for the daemon to exit.
    pub fn wait_exit(&mut self, limit: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + limit;
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Stops a daemon this test did not start itself (one `--start-daemon` started) by the pid
/// its lock names, when dropped.
pub struct StartedDaemon(pub PathBuf);

impl Drop for StartedDaemon {
    fn drop(&mut self) {
        if let Some(pid) = lock_pid(&self.0) {
            let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
            let ours = String::from_utf8_lossy(&cmdline).contains("runicorn-agent");
            if alive(pid) && ours {
                // SAFETY: kill() only sends a signal.
                unsafe { libc::kill(pid as i32, libc::SIGTERM) };
            }
        }
    }
}
