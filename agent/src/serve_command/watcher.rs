//! The file watcher: a latency shortcut, never the source of truth. `notify` watches the root
//! recursively (links not followed) and every write under it is handed to the scanner as a
//! path relative to the root, so a point appended to `events.jsonl` is announced in well under a
//! second. Reads (our own scans open files too) and hidden files (temp files of atomic writes,
//! the agent's own index) are ignored. When the watcher cannot be set up (inotify limits, a
//! missing root) one line goes to stderr and the periodic scan does all the work.

use std::path::{Component, Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::Sender;
use std::sync::Arc;

use notify::event::{AccessKind, AccessMode};
use notify::{Config, Event, EventKind, RecommendedWatcher, RecursiveMode, Watcher};

use super::scanner::Trigger;

/// Environment variable that turns the watcher off (`1`): only the periodic scan runs.
pub const ENV_NO_WATCH: &str = "RUNICORN_AGENT_NO_WATCH";

/// Whether the environment asks for no watcher.
pub fn disabled_by_env() -> bool {
    std::env::var(ENV_NO_WATCH).is_ok_and(|v| v == "1")
}

/// Starts the watcher on its own thread (setting up a recursive watch walks the whole tree).
/// The thread keeps the watcher alive for the life of the process; when setup fails it ends,
/// dropping `triggers`, which tells the scanner to rely on polling.
pub fn spawn_watcher(root: PathBuf, triggers: Sender<Trigger>, poll_secs: f64) -> std::io::Result<()> {
    std::thread::Builder::new()
        .name("file-watcher".into())
        .spawn(move || {
            let Some(_watcher) = start(&root, triggers, poll_secs) else {
                return;
            };
            loop {
                std::thread::park();
            }
        })
        .map(|_| ())
}

fn start(root: &Path, triggers: Sender<Trigger>, poll_secs: f64) -> Option<RecommendedWatcher> {
    let handler_root = root.to_owned();
    let complained = Arc::new(AtomicBool::new(false));
    let handler = move |res: notify::Result<Event>| match res {
        Ok(event) => {
            if event.need_rescan() {
                let _ = triggers.send(Trigger::Rescan);
                return;
            }
            if !is_write(&event.kind) {
                return;
            }
            let paths: Vec<PathBuf> = event
                .paths
                .iter()
                .filter_map(|p| relevant_path(&handler_root, p))
                .collect();
            if !paths.is_empty() {
                let _ = triggers.send(Trigger::Paths(paths));
            }
        }
        Err(e) => {
            if !complained.swap(true, Ordering::Relaxed) {
                eprintln!(
                    "runicorn-agent serve: file watching is incomplete ({e}); the scan every {poll_secs}s still finds every change"
                );
            }
        }
    };
    let config = Config::default().with_follow_symlinks(false);
    let mut watcher = match RecommendedWatcher::new(handler, config) {
        Ok(w) => w,
        Err(e) => {
            eprintln!("runicorn-agent serve: cannot watch files ({e}); changes are found by the scan every {poll_secs}s");
            return None;
        }
    };
    if let Err(e) = watcher.watch(root, RecursiveMode::Recursive) {
        eprintln!(
            "runicorn-agent serve: cannot watch {} ({e}); changes are found by the scan every {poll_secs}s (raise fs.inotify.max_user_watches for faster updates)",
            root.display()
        );
        return None;
    }
    Some(watcher)
}

/// Whether an event may mean that something was written (opening or reading does not).
fn is_write(kind: &EventKind) -> bool {
    match kind {
        EventKind::Access(AccessKind::Close(AccessMode::Write)) => true,
        EventKind::Access(_) => false,
        _ => true,
    }
}

/// The event's path relative to the root, unless it lies in a hidden place (the agent's index,
/// temp files of atomic writes; the soft-delete marker `.deleted` is the exception).
pub fn relevant_path(root: &Path, path: &Path) -> Option<PathBuf> {
    let rel = path.strip_prefix(root).ok()?;
    let names: Vec<&str> = rel
        .components()
        .map(|c| match c {
            Component::Normal(n) => n.to_str(),
            _ => None,
        })
        .collect::<Option<_>>()?;
    let (last, parents) = names.split_last()?;
    if parents.iter().any(|n| n.starts_with('.')) || (last.starts_with('.') && *last != ".deleted")
    {
        return None;
    }
    Some(rel.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hidden_places_and_reads_are_ignored() {
        let root = Path::new("/r");
        let rel = |p: &str| relevant_path(root, Path::new(p));
        assert_eq!(
            rel("/r/runs/a/1/events.jsonl"),
            Some(PathBuf::from("runs/a/1/events.jsonl"))
        );
        assert_eq!(rel("/r/runs/a/1/.deleted"), Some(PathBuf::from("runs/a/1/.deleted")));
        assert_eq!(rel("/r/.runicorn-agent/index.sqlite-wal"), None);
        assert_eq!(rel("/r/runs/a/1/.status.json.tmp-1-2"), None);
        assert_eq!(rel("/elsewhere/x"), None);
        assert_eq!(rel("/r"), None);
        assert!(!is_write(&EventKind::Access(AccessKind::Open(
            notify::event::AccessMode::Any
        ))));
        assert!(is_write(&EventKind::Access(AccessKind::Close(AccessMode::Write))));
        assert!(is_write(&EventKind::Modify(notify::event::ModifyKind::Any)));
    }
}
