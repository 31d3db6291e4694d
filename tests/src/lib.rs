//! Helpers for the end-to-end tests: find (or build) the real binaries, run them in a fresh
//! storage root, and read what they print. No mocks: every test drives the programs a user runs.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use serde_json::Value;

/// The workspace's root directory.
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_owned)
        .unwrap_or_default()
}

/// The directory cargo puts this profile's binaries in.
fn target_profile_dir() -> PathBuf {
    // Test executables live in target/<profile>/deps/.
    let exe = std::env::current_exe().expect("the test binary knows its path");
    exe.parent()
        .and_then(Path::parent)
        .map(Path::to_owned)
        .expect("tests run from target/<profile>/deps")
}

/// Path to a workspace binary, brought up to date once per test process (`cargo test -p
/// runicorn-tests` alone would not rebuild another package's binary).
pub fn binary(name: &str) -> PathBuf {
    static BUILT: OnceLock<()> = OnceLock::new();
    BUILT.get_or_init(|| {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let mut cmd = Command::new(cargo);
        cmd.args(["build", "--quiet", "--bins"])
            .current_dir(workspace_root());
        if target_profile_dir().ends_with("release") {
            cmd.arg("--release");
        }
        let status = cmd.status().expect("cargo runs");
        assert!(status.success(), "building the binaries failed");
    });
    let path = target_profile_dir().join(name);
    assert!(path.exists(), "{} was not built", path.display());
    path
}

/// The agent binary.
pub fn agent() -> Command {
    let mut cmd = Command::new(binary("runicorn-agent"));
    cmd.env_remove("RUNICORN_DIR")
        .env_remove("RUNICORN_RUN_DIR")
        .env("NO_COLOR", "1");
    cmd
}

/// `runicorn-agent ls --root ROOT --json [extra…]`, parsed.
pub fn ls_json(root: &Path, extra: &[&str]) -> Vec<Value> {
    let out = agent()
        .arg("ls")
        .arg("--root")
        .arg(root)
        .arg("--json")
        .args(extra)
        .output()
        .expect("agent runs");
    assert!(
        out.status.success(),
        "ls failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_slice(&out.stdout).expect("ls --json prints JSON");
    v.as_array().cloned().expect("ls --json prints an array")
}

/// Text of a command's stdout and stderr, for assertion messages.
pub fn describe(out: &Output) -> String {
    format!(
        "exit {:?}\n--- stdout\n{}\n--- stderr\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// The one run directory under `root/runs/<path>/`.
pub fn only_run_dir(root: &Path, run_path: &str) -> PathBuf {
    let parent = root.join("runs").join(run_path);
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(&parent)
        .unwrap_or_else(|e| panic!("{}: {e}", parent.display()))
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.is_dir())
        .collect();
    assert_eq!(
        dirs.len(),
        1,
        "expected one run in {}: {dirs:?}",
        parent.display()
    );
    dirs.remove(0)
}

/// The SHA-256 of a file (lowercase hex), by coreutils' `sha256sum`: an implementation the
/// hub's own hashing is checked against.
pub fn sha256sum(file: &Path) -> String {
    let out = Command::new("sha256sum")
        .arg(file)
        .output()
        .expect("sha256sum runs");
    assert!(out.status.success(), "sha256sum {}", file.display());
    String::from_utf8(out.stdout).expect("hex digits")[..64].to_owned()
}

/// Reads a JSON file.
pub fn read_json(path: &Path) -> Value {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Waits until `cond` holds, polling, for at most `secs` seconds.
pub fn wait_until(secs: f64, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs_f64(secs);
    while std::time::Instant::now() < deadline {
        if cond() {
            return true;
        }
        std::thread::sleep(std::time::Duration::from_millis(25));
    }
    cond()
}

/// A private copy of a fixture root from `tests/fixtures/NAME` (listing a root writes its index).
pub fn fixture_copy(name: &str) -> tempfile::TempDir {
    let dest = tempfile::tempdir().expect("temp dir");
    copy_tree(
        &workspace_root().join("tests/fixtures").join(name),
        dest.path(),
    );
    dest
}

fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("create dir");
    for entry in std::fs::read_dir(from)
        .unwrap_or_else(|e| panic!("{}: {e}", from.display()))
        .flatten()
    {
        let target = to.join(entry.file_name());
        if entry.file_type().expect("file type").is_dir() {
            copy_tree(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).expect("copy");
        }
    }
}

/// `runicorn-agent run --root ROOT [options…] -- COMMAND…`, ready to be spawned or run.
pub fn agent_run(root: &Path, options: &[&str], command: &[&str]) -> Command {
    let mut cmd = agent();
    cmd.arg("run")
        .arg("--root")
        .arg(root)
        .args(options)
        .arg("--")
        .args(command);
    cmd
}

pub mod agent_pipe;
pub mod daemon;
pub mod dashboard;
pub mod hostile;
pub mod http;
pub mod hub;
pub mod relay;
pub mod serving_hub;
pub mod ssh_hub;
pub mod sshd;
pub mod stepper;

/// Ctrl-C (SIGINT) to a started child, then its exit and output (what it piped).
pub fn interrupt(child: std::process::Child) -> Output {
    // SAFETY: kill(2) on our own child's pid; no memory is involved.
    unsafe {
        libc::kill(child.id() as libc::pid_t, libc::SIGINT);
    }
    child.wait_with_output().expect("wait for the child")
}

/// Runs `cmd` to its end, failing the test if it takes longer than `limit` (it is killed).
pub fn output_within(cmd: &mut Command, limit: Duration) -> Output {
    output_within_from(cmd, Stdio::null(), limit)
}

/// [`output_within`] with `stdin` as the command's standard input (another process's output).
pub fn output_within_from(cmd: &mut Command, stdin: Stdio, limit: Duration) -> Output {
    let mut child = cmd
        .stdin(stdin)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("command starts");
    let mut stdout = child.stdout.take().expect("piped stdout");
    let mut stderr = child.stderr.take().expect("piped stderr");
    let out_reader = std::thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = stdout.read_to_end(&mut buf);
        buf
    });
    let err_reader = std::thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = stderr.read_to_end(&mut buf);
        buf
    });
    let deadline = Instant::now() + limit;
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break status;
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            let err = err_reader.join().unwrap_or_default();
            panic!(
                "{cmd:?} did not finish within {limit:?}\n--- stderr\n{}",
                String::from_utf8_lossy(&err)
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    Output {
        status,
        stdout: out_reader.join().unwrap_or_default(),
        stderr: err_reader.join().unwrap_or_default(),
    }
}

/// Checks every case of a table-driven test, then fails once, naming each case that failed
/// (by its `Debug` form) with what went wrong, so one broken case does not hide the others.
pub fn check_cases<C: std::fmt::Debug>(cases: &[C], check: impl Fn(&C) -> Result<(), String>) {
    let failures: Vec<String> = cases
        .iter()
        .filter_map(|case| check(case).err().map(|why| format!("{case:?}: {why}")))
        .collect();
    assert!(
        failures.is_empty(),
        "{} of {} cases failed:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
}

/// Bytes that differ from seed to seed and do not compress (xorshift).
pub fn noise(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}
