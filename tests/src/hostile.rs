//! Hostile and odd run directories for the end-to-end tests: FIFOs and devices in place of run
//! files, links out of the root, names the wire cannot carry, records nested too deep, missing
//! or unknown statuses, each next to good runs. Also: running a command under a deadline and an
//! address-space limit, so that a hang or an unbounded read fails a test instead of stalling it.

use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use crate::binary;
use crate::hub::{source_points_read_with, Series};

/// Address space the agent may use in these tests (1 GiB): reading `/dev/zero` without bound
/// would cross it within a second.
pub const AGENT_ADDRESS_SPACE: u64 = 1 << 30;

/// One hostile run: where it is (relative to the root), and what a listing must say of it.
#[derive(Debug, Clone)]
pub struct Hostile {
    /// Run directory relative to the root (`runs/bad/<name>`).
    pub dir: String,
    /// The status `ls` and the hub must show.
    pub status: &'static str,
    /// Text the reason must contain (empty: no reason checked).
    pub reason: &'static str,
}

fn mkfifo(path: &Path) {
    let c = std::ffi::CString::new(path.as_os_str().as_bytes()).expect("no NUL in a temp path");
    // SAFETY: `c` is a valid NUL-terminated path for the duration of the call.
    let rc = unsafe { libc::mkfifo(c.as_ptr(), 0o644) };
    assert_eq!(rc, 0, "mkfifo {}", path.display());
}

fn write(path: &Path, text: &str) {
    std::fs::write(path, text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
}

/// A run with valid records and three metric points, to be spoiled.
fn plain_run(root: &Path, name: &str) -> PathBuf {
    let dir = root.join("runs/bad").join(name);
    std::fs::create_dir_all(&dir).expect("create run dir");
    write(&dir.join("meta.json"), &format!("{{\"id\":\"{name}\"}}"));
    write(&dir.join("status.json"), "{\"status\":\"finished\"}");
    let mut events = String::new();
    for step in 1..=3 {
        events.push_str(&format!(
            "{{\"ts\":1.0,\"type\":\"metrics\",\"data\":{{\"loss\":{step},\"global_step\":{step}}}}}\n"
        ));
    }
    write(&dir.join("events.jsonl"), &events);
    dir
}

fn replace_with_fifo(dir: &Path, file: &str) {
    let _ = std::fs::remove_file(dir.join(file));
    mkfifo(&dir.join(file));
}

fn replace_with_link(dir: &Path, file: &str, target: &str) {
    let _ = std::fs::remove_file(dir.join(file));
    std::os::unix::fs::symlink(target, dir.join(file)).expect("symlink");
}

/// Writes the hostile runs under `root/runs/bad/` and returns what each must list as. Runs that
/// are odd but readable (a deep summary, unsendable file names) list as `finished`.
pub fn write_hostile_runs(root: &Path) -> Vec<Hostile> {
    let mut out = Vec::new();
    let mut add = |name: &str, status, reason| {
        out.push(Hostile {
            dir: format!("runs/bad/{name}"),
            status,
            reason,
        })
    };
    for (name, file) in [
        ("fifo-meta", "meta.json"),
        ("fifo-status", "status.json"),
        ("fifo-deleted", ".deleted"),
        ("fifo-events", "events.jsonl"),
    ] {
        let dir = plain_run(root, name);
        replace_with_fifo(&dir, file);
        add(name, "unreadable", "is a FIFO, not a regular file");
    }
    for (name, target) in [
        ("zero-meta", "/dev/zero"),
        ("null-meta", "/dev/null"),
        ("urandom-meta", "/dev/urandom"),
        ("outside-meta", "/etc/hostname"),
    ] {
        let dir = plain_run(root, name);
        replace_with_link(&dir, "meta.json", target);
        add(name, "unreadable", "outside the storage root");
    }
    // Tests run as root in CI: permission bits cannot make a file unreadable, a folder can.
    let dir = plain_run(root, "dir-events");
    std::fs::remove_file(dir.join("events.jsonl")).expect("remove events");
    std::fs::create_dir(dir.join("events.jsonl")).expect("events as a folder");
    add("dir-events", "unreadable", "events.jsonl is a directory");

    let dir = plain_run(root, "no-status");
    std::fs::remove_file(dir.join("status.json")).expect("remove status");
    add("no-status", "unknown", "no status.json");

    let dir = plain_run(root, "odd-status");
    write(&dir.join("status.json"), "{\"status\":\"paused\"}");
    add("odd-status", "unknown", "\"paused\"");

    let dir = plain_run(root, "deep-summary");
    let deep = format!("{}1{}", "[".repeat(126), "]".repeat(126));
    write(&dir.join("summary.json"), &format!("{{\"x\":{deep}}}"));
    add("deep-summary", "finished", "");

    let dir = plain_run(root, "odd-names");
    write(&dir.join("a\\b.txt"), "backslash");
    write(&dir.join("esc\u{1b}[31m.txt"), "escape");
    std::fs::write(
        dir.join(std::ffi::OsStr::from_bytes(b"not-utf8-\xff.txt")),
        "bytes",
    )
    .expect("write a non-UTF-8 name");
    mkfifo(&dir.join("a-fifo"));
    add("odd-names", "finished", "");

    // A run folder whose own name the wire cannot carry.
    plain_run(root, "x\\y");
    out.push(Hostile {
        dir: "runs/bad/x\\y".into(),
        status: "unreadable",
        reason: "x\\\\y",
    });
    out
}

/// The agent binary, wrapped in a script that runs it under an address-space limit (for
/// `--agent`, so that the hub starts it limited too). The script lives in `dir`.
pub fn limited_agent(dir: &Path) -> PathBuf {
    let script = dir.join("limited-agent");
    write(
        &script,
        &format!(
            "#!/bin/sh\nexec prlimit --as={AGENT_ADDRESS_SPACE} -- '{}' \"$@\"\n",
            binary("runicorn-agent").display()
        ),
    );
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    script
}

/// Every metric point under `root` as `hub::source_points` gives them, reading only events
/// files that are regular files (the test must not hang on the FIFOs it made either).
pub fn readable_source_points(root: &Path) -> Series {
    source_points_read_with(root, |events| {
        let regular = std::fs::symlink_metadata(events).is_ok_and(|m| m.is_file());
        if regular {
            std::fs::read(events).unwrap_or_default()
        } else {
            Vec::new()
        }
    })
}
