//! Generated hostile storage roots against the real `runicorn-agent ls --json`.
//!
//! Each case builds a small root: good runs written with the Rust writer, next to hostile entries
//! of every kind a shared cluster can hold (FIFOs and symlinks to `/dev/zero`, to outside the
//! root and in loops where files belong, directories where files are expected, random bytes and
//! deeply nested JSON in every record, run folders named with backslashes, control characters
//! and bytes that are not UTF-8). The agent runs under a 20 s deadline (killed on expiry) and a
//! 1 GiB address-space limit (`prlimit --as`), and its peak resident memory is measured.
//!
//! The properties: `ls` exits in time and successfully, within 256 MiB, prints valid JSON, and lists every good
//! run with its id, path, status and step and point counts as written; no hostile entry costs a
//! good run anything.

use std::ffi::OsStr;
use std::fs;
use std::io::Read;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::symlink;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use proptest::prelude::*;
use runicorn_protocol::run_format::{RunOutcome, RunSpec, RunWriter};
use runicorn_tests::binary;
use serde_json::Value;

const DEADLINE: Duration = Duration::from_secs(20);
const ADDRESS_SPACE_BYTES: u64 = 1 << 30;
/// Peak resident memory `ls` may use on these small roots. Under the address-space limit an
/// unbounded read fails cleanly ("out of memory") instead of growing, so memory is measured too.
const PEAK_RSS_BYTES: u64 = 256 << 20;

/// The files of a run an entry can replace.
const RUN_FILES: [&str; 6] = [
    "meta.json",
    "status.json",
    "events.jsonl",
    "summary.json",
    ".deleted",
    "logs.txt",
];

/// A good run: its path below `runs/good/`, and how many steps it logs.
#[derive(Debug, Clone)]
struct GoodRun {
    steps: u32,
    nan_at: Option<u32>,
}

/// One hostile entry: a run folder under `runs/bad/` with one thing wrong.
#[derive(Debug, Clone)]
enum Hostile {
    Fifo(&'static str),
    LinkToDevZero(&'static str),
    LinkOutsideRoot(&'static str),
    LinkLoop(&'static str),
    DirectoryInstead(&'static str),
    RandomBytes(&'static str, Vec<u8>),
    DeepJson(&'static str, usize),
    /// A run folder whose name holds these bytes (a backslash, control characters, not UTF-8).
    BadFolderName(Vec<u8>),
    /// The run folder itself a symlink to outside the root, or to itself.
    LinkedRunFolder {
        to_itself: bool,
    },
}

fn run_file() -> impl Strategy<Value = &'static str> {
    prop::sample::select(RUN_FILES.to_vec())
}

fn hostile() -> impl Strategy<Value = Hostile> {
    prop_oneof![
        run_file().prop_map(Hostile::Fifo),
        run_file().prop_map(Hostile::LinkToDevZero),
        run_file().prop_map(Hostile::LinkOutsideRoot),
        run_file().prop_map(Hostile::LinkLoop),
        run_file().prop_map(Hostile::DirectoryInstead),
        (run_file(), prop::collection::vec(any::<u8>(), 0..300))
            .prop_map(|(f, b)| Hostile::RandomBytes(f, b)),
        (run_file(), 100usize..140).prop_map(|(f, d)| Hostile::DeepJson(f, d)),
        prop_oneof![
            Just(b"x\\y".to_vec()),
            Just(b"a\x1b]0;owned\x07b".to_vec()),
            Just(b"tab\there\nnewline".to_vec()),
            Just(b"caf\xe9-\xff\xfe".to_vec()),
            prop::collection::vec(1u8..=255, 1..20)
                .prop_filter("one path segment", |b| !b.contains(&b'/')
                    && b != b"."
                    && b != b".."),
        ]
        .prop_map(Hostile::BadFolderName),
        any::<bool>().prop_map(|to_itself| Hostile::LinkedRunFolder { to_itself }),
    ]
}

#[derive(Debug, Clone)]
struct Tree {
    good: Vec<GoodRun>,
    hostile: Vec<Hostile>,
    no_index: bool,
}

fn tree() -> impl Strategy<Value = Tree> {
    (
        prop::collection::vec(
            (0u32..8, any::<Option<u32>>()).prop_map(|(steps, nan)| GoodRun {
                steps,
                nan_at: nan.filter(|_| steps > 0).map(|n| 1 + n % steps.max(1)),
            }),
            1..4,
        ),
        prop::collection::vec(hostile(), 1..6),
        any::<bool>(),
    )
        .prop_map(|(good, hostile, no_index)| Tree {
            good,
            hostile,
            no_index,
        })
}

/// What `ls --json` must show for one good run.
struct Expected {
    id: String,
    path: String,
    steps: u32,
}

fn write_good_run(root: &Path, index: usize, run: &GoodRun) -> Expected {
    let mut spec = RunSpec::new(root, "hostile-tree-test");
    spec.path = Some(format!("good/g{index}"));
    spec.run_id = Some(format!("good_{index}"));
    let mut writer = RunWriter::create(&spec).expect("create a good run");
    for step in 1..=run.steps {
        let loss = if run.nan_at == Some(step) {
            f64::NAN
        } else {
            1.0 / f64::from(step)
        };
        writer
            .log_metrics(&[("loss", loss), ("acc", f64::from(step))], None, None)
            .expect("log metrics");
    }
    writer.log_text("hello").expect("log text");
    writer
        .finish(RunOutcome::finished())
        .expect("finish the run");
    Expected {
        id: format!("good_{index}"),
        path: format!("good/g{index}"),
        steps: run.steps,
    }
}

/// A complete, readable run folder (the hostile entry then spoils one thing in it).
fn write_plain_run(dir: &Path, id: &str) {
    fs::create_dir_all(dir).expect("create a run folder");
    let meta = serde_json::json!({"id": id, "path": "bad", "created_at": 1.0});
    fs::write(dir.join("meta.json"), meta.to_string()).expect("meta");
    fs::write(
        dir.join("status.json"),
        r#"{"status": "finished", "ended_at": 2.0}"#,
    )
    .expect("status");
    fs::write(
        dir.join("events.jsonl"),
        "{\"ts\": 1, \"type\": \"metrics\", \"data\": {\"loss\": 1, \"global_step\": 1}}\n",
    )
    .expect("events");
    fs::write(dir.join("summary.json"), r#"{"loss": 1}"#).expect("summary");
    fs::write(dir.join("logs.txt"), "hello\n").expect("logs");
}

fn mkfifo(path: &Path) {
    let c = std::ffi::CString::new(path.as_os_str().as_bytes()).expect("no NUL in a temp path");
    // SAFETY: `c` is a valid NUL-terminated path for the duration of the call.
    let rc = unsafe { libc::mkfifo(c.as_ptr(), 0o644) };
    assert_eq!(rc, 0, "mkfifo {}", path.display());
}

fn replace(path: &Path) {
    if path.is_dir() && !path.is_symlink() {
        fs::remove_dir_all(path).expect("remove a folder");
    } else if path.symlink_metadata().is_ok() {
        fs::remove_file(path).expect("remove a file");
    }
}

fn write_hostile(root: &Path, outside: &Path, index: usize, entry: &Hostile) {
    let bad = root.join("runs/bad");
    fs::create_dir_all(&bad).expect("runs/bad");
    let dir = bad.join(format!("h{index}"));
    let id = format!("h{index}");
    match entry {
        Hostile::BadFolderName(name) => {
            let mut bytes = name.clone();
            bytes.extend_from_slice(format!("-{index}").as_bytes());
            write_plain_run(&bad.join(OsStr::from_bytes(&bytes)), &id);
            return;
        }
        Hostile::LinkedRunFolder { to_itself } => {
            if *to_itself {
                symlink(&dir, &dir).expect("self link");
            } else {
                let target = outside.join(format!("run-{index}"));
                write_plain_run(&target, &id);
                symlink(&target, &dir).expect("link to outside");
            }
            return;
        }
        _ => {}
    }
    write_plain_run(&dir, &id);
    let file = |name: &str| {
        let p = dir.join(name);
        replace(&p);
        p
    };
    match entry {
        Hostile::Fifo(name) => mkfifo(&file(name)),
        Hostile::LinkToDevZero(name) => symlink("/dev/zero", file(name)).expect("link"),
        Hostile::LinkOutsideRoot(name) => {
            let target = outside.join(format!("{index}-{name}"));
            fs::write(&target, r#"{"id": "stolen", "status": "finished"}"#).expect("outside");
            symlink(&target, file(name)).expect("link")
        }
        Hostile::LinkLoop(name) => {
            let p = file(name);
            let other = dir.join(format!("{name}.loop"));
            symlink(&other, &p).expect("link");
            symlink(&p, &other).expect("link back");
        }
        Hostile::DirectoryInstead(name) => {
            let p = file(name);
            fs::create_dir_all(p.join("inner")).expect("dir");
        }
        Hostile::RandomBytes(name, bytes) => fs::write(file(name), bytes).expect("write"),
        Hostile::DeepJson(name, depth) => {
            let deep = format!("{}1{}", "[".repeat(*depth), "]".repeat(*depth));
            let text = if *name == "events.jsonl" {
                format!(
                    "{{\"type\": \"metrics\", \"data\": {{\"x\": {deep}, \"global_step\": 1}}}}\n"
                )
            } else {
                format!("{{\"deep\": {deep}}}")
            };
            fs::write(file(name), text).expect("write");
        }
        Hostile::BadFolderName(_) | Hostile::LinkedRunFolder { .. } => unreachable!(),
    }
}

/// How one bounded `ls` ended.
struct LsRun {
    success: bool,
    stdout: Vec<u8>,
    stderr: String,
    peak_rss_bytes: u64,
}

/// Runs `ls --json` under the deadline and the address-space limit, or says it was killed.
// The child is reaped by `wait4` below (which clippy does not see), or by `wait` after a kill.
#[allow(clippy::zombie_processes)]
fn ls_bounded(root: &Path, no_index: bool) -> Result<LsRun, String> {
    let mut cmd = Command::new("prlimit");
    cmd.arg(format!("--as={ADDRESS_SPACE_BYTES}"))
        .arg("--")
        .arg(binary("runicorn-agent"))
        .arg("ls")
        .arg("--root")
        .arg(root)
        .arg("--json")
        .env_remove("RUNICORN_DIR")
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    if no_index {
        cmd.arg("--no-index");
    }
    // prlimit execs the agent, so the child's pid is the agent's.
    let mut child = cmd.spawn().expect("prlimit runs the agent");
    let pid = child.id() as libc::pid_t;
    let mut stdout = child.stdout.take().expect("piped stdout");
    let mut stderr = child.stderr.take().expect("piped stderr");
    // Drained on threads so a large listing never blocks the agent on a full pipe.
    let out = std::thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = stdout.read_to_end(&mut buf);
        buf
    });
    let err = std::thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = stderr.read_to_end(&mut buf);
        buf
    });
    let started = Instant::now();
    // The agent's peak resident memory, sampled from its own /proc entry while it runs. Not
    // `ru_maxrss` from wait4: a child spawned by this (multi-threaded, posix_spawn) test process
    // inherits the test process's peak at exec, which other tests here (200 MiB transfers)
    // inflate far past the agent's own.
    let mut peak_rss_bytes = 0u64;
    let status = loop {
        peak_rss_bytes = peak_rss_bytes.max(vm_hwm_bytes(pid).unwrap_or(0));
        let mut status = 0;
        // SAFETY: all-zero bytes are a valid `rusage` (plain integers).
        let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
        // SAFETY: `status` and `usage` are valid for writes; `pid` is our own child.
        let done = unsafe { libc::wait4(pid, &mut status, libc::WNOHANG, &mut usage) };
        assert!(done >= 0, "wait4: {}", std::io::Error::last_os_error());
        if done == pid {
            break status;
        }
        if started.elapsed() > DEADLINE {
            let _ = child.kill();
            let _ = child.wait();
            let err = String::from_utf8_lossy(&err.join().unwrap_or_default()).into_owned();
            return Err(format!(
                "runicorn-agent ls did not finish within {DEADLINE:?}; killed (stderr: {err})"
            ));
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    Ok(LsRun {
        success: libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
        stdout: out.join().expect("stdout reader"),
        stderr: String::from_utf8_lossy(&err.join().expect("stderr reader")).into_owned(),
        peak_rss_bytes,
    })
}

/// `VmHWM` (peak resident set) of a running process, from `/proc/PID/status`; `None` once it
/// has exited (or before its exec, when the line is still the spawner's).
fn vm_hwm_bytes(pid: libc::pid_t) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

fn check_tree(tree: &Tree) -> Result<(), TestCaseError> {
    let root = tempfile::tempdir().expect("temp root");
    let outside = tempfile::tempdir().expect("temp folder outside the root");
    let expected: Vec<Expected> = tree
        .good
        .iter()
        .enumerate()
        .map(|(i, run)| write_good_run(root.path(), i, run))
        .collect();
    for (i, entry) in tree.hostile.iter().enumerate() {
        write_hostile(root.path(), outside.path(), i, entry);
    }
    let LsRun {
        success,
        stdout,
        stderr,
        peak_rss_bytes,
    } = ls_bounded(root.path(), tree.no_index).map_err(TestCaseError::fail)?;
    prop_assert!(success, "ls failed (stderr: {stderr})");
    prop_assert!(
        peak_rss_bytes <= PEAK_RSS_BYTES,
        "ls used {} MiB of memory (limit {} MiB): a reader is not bounded",
        peak_rss_bytes >> 20,
        PEAK_RSS_BYTES >> 20
    );
    let listing: Value = serde_json::from_slice(&stdout).map_err(|e| {
        TestCaseError::fail(format!(
            "ls --json printed invalid JSON ({e}): {}",
            String::from_utf8_lossy(&stdout)
        ))
    })?;
    let runs = listing
        .as_array()
        .ok_or_else(|| TestCaseError::fail("not an array"))?;
    for want in &expected {
        let got = runs
            .iter()
            .find(|r| r["run_id"] == want.id.as_str())
            .ok_or_else(|| {
                TestCaseError::fail(format!("good run {} not listed: {listing}", want.id))
            })?;
        prop_assert_eq!(got["path"].as_str(), Some(want.path.as_str()));
        prop_assert_eq!(got["status"].as_str(), Some("finished"), "{}", got);
        prop_assert_eq!(
            got["points"].as_u64(),
            Some(2 * u64::from(want.steps)),
            "{}",
            got
        );
        let last_step = (want.steps > 0).then_some(i64::from(want.steps));
        prop_assert_eq!(got["last_step"].as_i64(), last_step, "{}", got);
        prop_assert_eq!(got["corrupt_lines"].as_u64(), Some(0), "{}", got);
    }
    Ok(())
}

proptest! {
    // Modest: every case starts the agent. No shrinking: a hang costs the whole deadline per
    // attempt, and the failing case's tree is printed whole.
    #![proptest_config(ProptestConfig {
        cases: 16,
        max_shrink_iters: 0,
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn hostile_entries_never_cost_the_good_runs(tree in tree()) {
        check_tree(&tree)?;
    }
}
