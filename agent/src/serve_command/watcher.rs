//! The file watcher: a latency shortcut, never the source of truth. `notify` watches the root's
//! visible folders recursively (links not followed; the agent's own index folder is left out)
//! and every write under them is handed to the scanner as a path relative to the root, so a point appended to `events.jsonl` is announced in well under a
//! second. Reads (our own scans open files too) and hidden files (temp files of atomic writes,
//! the agent's own index) are ignored. When the watcher cannot be set up (inotify limits, a
//! missing root) one line goes to stderr and the periodic scan does all the work.

use std::path::{Component, Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Sender};
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
/// dropping `triggers`, which tells the scanner to rely on polling. `ready` (the resident
/// agent's): set once every folder is watched, followed by a `Rescan` trigger, so a write made
/// while the watches were being added is found at once.
pub fn spawn_watcher(
    root: PathBuf,
    triggers: Sender<Trigger>,
    poll_secs: f64,
    ready: Option<Arc<AtomicBool>>,
) -> std::io::Result<()> {
    std::thread::Builder::new()
        .name("file-watcher".into())
        .spawn(move || watch(&root, triggers, poll_secs, ready))
        .map(|_| ())
}

/// Watches the root itself (not recursively) and each of its visible folders recursively, so
/// the agent's own index folder is never watched (its writes would wake the watcher for
/// nothing). A folder created at the top later is added when its creation is seen.
fn watch(root: &Path, triggers: Sender<Trigger>, poll_secs: f64, ready: Option<Arc<AtomicBool>>) {
    let (new_folders, added) = mpsc::channel::<PathBuf>();
    let ready_trigger = triggers.clone();
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
            if matches!(event.kind, EventKind::Create(_)) {
                for p in &event.paths {
                    if is_top_folder(&handler_root, p) {
                        let _ = new_folders.send(p.clone());
                    }
                }
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
    let unavailable = |what: String| {
        eprintln!(
            "runicorn-agent serve: cannot watch {what}; changes are found by the scan every {poll_secs}s (raising fs.inotify.max_user_watches makes updates faster)"
        );
    };
    let config = Config::default().with_follow_symlinks(false);
    let mut watcher = match RecommendedWatcher::new(handler, config) {
        Ok(w) => w,
        Err(e) => return unavailable(format!("files ({e})")),
    };
    if let Err(e) = watcher.watch(root, RecursiveMode::NonRecursive) {
        return unavailable(format!("{} ({e})", root.display()));
    }
    let folders: Vec<PathBuf> = std::fs::read_dir(root)
        .map(|entries| {
            entries
                .flatten()
                .map(|e| e.path())
                .filter(|p| is_top_folder(root, p))
                .collect()
        })
        .unwrap_or_default();
    for folder in folders {
        if let Err(e) = add_folder(&mut watcher, &folder) {
            return unavailable(format!("{} ({e})", folder.display()));
        }
    }
    if let Some(ready) = ready {
        ready.store(true, Ordering::SeqCst);
        let _ = ready_trigger.send(Trigger::Rescan);
    }
    drop(ready_trigger);
    // Keeps the watcher alive; its handler holds the sender, so this waits forever.
    while let Ok(folder) = added.recv() {
        if let Err(e) = add_folder(&mut watcher, &folder) {
            return unavailable(format!("{} ({e})", folder.display()));
        }
    }
}

/// Watches a top folder recursively. A folder that vanished meanwhile is no error; running out
/// of inotify watches is.
fn add_folder(watcher: &mut RecommendedWatcher, folder: &Path) -> Result<(), notify::Error> {
    match watcher.watch(folder, RecursiveMode::Recursive) {
        Err(e) if matches!(e.kind, notify::ErrorKind::PathNotFound) => Ok(()),
        Err(e) if matches!(&e.kind, notify::ErrorKind::Io(io) if io.kind() == std::io::ErrorKind::NotFound) => {
            Ok(())
        }
        other => other,
    }
}

/// A visible folder (not a link) directly under the root.
fn is_top_folder(root: &Path, path: &Path) -> bool {
    path.parent() == Some(root)
        && path
            .file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| !n.starts_with('.'))
        && std::fs::symlink_metadata(path).is_ok_and(|m| m.is_dir())
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
        assert_eq!(
            rel("/r/runs/a/1/.deleted"),
            Some(PathBuf::from("runs/a/1/.deleted"))
        );
        assert_eq!(rel("/r/.runicorn-agent/index.sqlite-wal"), None);
        assert_eq!(rel("/r/runs/a/1/.status.json.tmp-1-2"), None);
        assert_eq!(rel("/elsewhere/x"), None);
        assert_eq!(rel("/r"), None);
        assert!(!is_write(&EventKind::Access(AccessKind::Open(
            notify::event::AccessMode::Any
        ))));
        assert!(is_write(&EventKind::Access(AccessKind::Close(
            AccessMode::Write
        ))));
        assert!(is_write(&EventKind::Modify(notify::event::ModifyKind::Any)));
    }
}
