//! `serve --stdio --start-daemon`: starting a detached resident agent (a new session by
//! `setsid`, no terminal, stdin and stdout on /dev/null, stderr appended to
//! `<root>/.runicorn-agent/daemon.log`) and waiting until it greets on its socket. When two
//! sessions start one at once, the lock lets one daemon run and both attach to it.

use std::fs::OpenOptions;
use std::os::unix::fs::OpenOptionsExt;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::Context;

use super::attach::{connect, Attached};
use super::paths::DaemonPaths;

/// How long a new daemon has to answer on its socket.
const START_TIMEOUT: Duration = Duration::from_secs(10);

/// Starts a daemon for `root` that exits after `idle_exit` idle seconds, and attaches to it.
pub fn start_detached(
    root: &Path,
    paths: &DaemonPaths,
    idle_exit: u64,
) -> anyhow::Result<Attached> {
    paths.prepare_dir()?;
    let log = OpenOptions::new()
        .append(true)
        .create(true)
        .mode(0o600)
        .open(&paths.log)
        .with_context(|| format!("opening {}", paths.log.display()))?;
    let exe = std::env::current_exe().context("finding this program to start it as a daemon")?;
    let mut command = Command::new(&exe);
    command
        .arg("daemon")
        .arg("--root")
        .arg(root)
        .arg("--idle-exit")
        .arg(idle_exit.to_string())
        .arg("--log")
        .arg(&paths.log)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::from(log));
    // SAFETY: setsid is async-signal-safe and touches no memory of the parent.
    unsafe {
        command.pre_exec(|| {
            if libc::setsid() < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let mut child = command
        .spawn()
        .with_context(|| format!("starting {} daemon", exe.display()))?;
    let deadline = Instant::now() + START_TIMEOUT;
    loop {
        if let Ok(attached) = connect(&paths.socket) {
            // The daemon lives on after this process; its exit status is collected meanwhile.
            std::thread::spawn(move || child.wait());
            return Ok(attached);
        }
        if let Some(status) = child.try_wait().context("waiting for the daemon")? {
            // Another session may have started one first: this daemon refused, that one serves.
            if let Ok(attached) = connect(&paths.socket) {
                return Ok(attached);
            }
            anyhow::bail!(
                "the daemon exited at once ({status}); its reason is in {}",
                paths.log.display()
            );
        }
        if Instant::now() >= deadline {
            anyhow::bail!(
                "the daemon did not answer within {} s; see {}",
                START_TIMEOUT.as_secs(),
                paths.log.display()
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}
