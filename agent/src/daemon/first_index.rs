//! A daemon that starts on a fresh index has the root's first full scan done by a short-lived
//! child process (`runicorn-agent daemon --index-only`). That scan holds every run's whole state
//! at once (about 20 KB a run); in the daemon's own heap, what the daemon keeps afterwards would
//! lie scattered between its freed buffers and keep their pages from going back to the system.
//! The child's memory goes back whole when it exits; the daemon then takes the runs over from
//! the index as it does after a restart.

use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Mutex;

use anyhow::Context;
use runicorn_protocol::run_format::LivenessContext;

use crate::run_index::feed::{Feed, ScanScope};
use crate::run_index::RunIndex;

/// Whether the index under `root` has never announced a run (no counter yet).
pub fn is_fresh(root: &Path) -> anyhow::Result<bool> {
    let index = RunIndex::open(root).context("opening the index")?;
    Ok(index.feed_counter()? == 0)
}

/// Builds the index in a child process and waits for it. A child that cannot be started or
/// fails is reported, and the daemon's own first scan does the work instead.
pub fn build_in_child(root: &Path) {
    let status = std::env::current_exe().and_then(|exe| {
        Command::new(exe)
            .arg("daemon")
            .arg("--index-only")
            .arg("--root")
            .arg(root)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .status()
    });
    match status {
        Ok(s) if s.success() => {}
        Ok(s) => eprintln!(
            "runicorn-agent daemon: building the first index in a child process failed ({s}); \
             the daemon scans the root itself"
        ),
        Err(e) => eprintln!(
            "runicorn-agent daemon: cannot start a child process to build the first index ({e}); \
             the daemon scans the root itself"
        ),
    }
}

/// `daemon --index-only`: one full scan of the root into its index, then exit.
pub fn index_only(root: &Path) -> anyhow::Result<u8> {
    let index = Mutex::new(RunIndex::open(root).context("opening the index")?);
    let report = Feed::new(root)
        .scan(&index, ScanScope::All, &LivenessContext::here_and_now())
        .with_context(|| format!("indexing {}", root.display()))?;
    for p in &report.new_problems {
        eprintln!("runicorn-agent daemon: {}: {}", p.path.display(), p.reason);
    }
    Ok(0)
}
