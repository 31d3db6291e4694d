//! The wheels of `scripts/build-wheels.sh`, installed as a user installs them: each into a fresh
//! Python venv with `pip install WHEEL` (no index, no build), then its binaries run from the
//! venv's bin/ — the agent wheel's `runicorn-agent` found on PATH for `run -- true`, `ls` and a
//! `serve --stdio` handshake; the hub wheel's `runicorn-hub` running `demo --once` with the
//! portable agent installed beside it (and no other agent anywhere), serving its embedded
//! dashboard, both binaries within glibc 2.17.
//!
//! The wheels' folder is named by `RUNICORN_WHEELS_DIR` (`scripts/test-all.sh` builds them and
//! sets it). Without it the tests are skipped with a note, except in CI (`CI` set), where missing
//! wheels are a failure.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use runicorn_protocol::wire::PROTOCOL_VERSION;
use runicorn_tests::agent_pipe::AgentPipe;
use runicorn_tests::http::get;
use runicorn_tests::{describe, output_within, workspace_root};
use serde_json::Value;

/// How long creating a venv or installing a wheel into it may take.
const PIP_LIMIT: Duration = Duration::from_secs(180);

/// How long one short command of an installed binary may take.
const COMMAND_LIMIT: Duration = Duration::from_secs(60);

/// The folder named by `RUNICORN_WHEELS_DIR`, or `None` (with a note) outside CI.
fn wheels_dir() -> Option<PathBuf> {
    let Some(dir) = std::env::var_os("RUNICORN_WHEELS_DIR").map(PathBuf::from) else {
        assert!(
            std::env::var_os("CI").is_none(),
            "RUNICORN_WHEELS_DIR is not set: build the wheels with scripts/build-wheels.sh and \
             set RUNICORN_WHEELS_DIR to their folder (target/wheels)"
        );
        eprintln!(
            "skipped: RUNICORN_WHEELS_DIR not set (scripts/build-wheels.sh builds the wheels)"
        );
        return None;
    };
    assert!(
        dir.is_dir(),
        "RUNICORN_WHEELS_DIR={} is not a folder: build the wheels with scripts/build-wheels.sh",
        dir.display()
    );
    Some(dir)
}

/// The one wheel of the distribution `dist` (`runicorn_agent`, `runicorn_hub`) for x86_64 Linux
/// in `dir`; zero or several are a failure naming what was found.
fn only_wheel(dir: &Path, dist: &str) -> PathBuf {
    let found: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("reading {}: {e}", dir.display()))
        .map(|entry| entry.expect("a folder entry").path())
        .filter(|p| {
            let name = p.file_name().unwrap_or_default().to_string_lossy();
            name.starts_with(&format!("{dist}-"))
                && name.ends_with(".whl")
                && name.contains("manylinux2014_x86_64")
        })
        .collect();
    assert_eq!(
        found.len(),
        1,
        "expected one {dist} manylinux2014 x86_64 wheel in {}, found {found:?}: rerun \
         scripts/build-wheels.sh",
        dir.display()
    );
    found.into_iter().next().unwrap_or_default()
}

/// A fresh venv (made by the `python3` on PATH) with `wheel` installed by its own pip, offline.
struct Venv {
    dir: tempfile::TempDir,
}

impl Venv {
    fn with_wheel(wheel: &Path) -> Venv {
        let dir = tempfile::tempdir().expect("temp dir");
        let made = output_within(
            Command::new("python3").args(["-m", "venv"]).arg(dir.path()),
            PIP_LIMIT,
        );
        assert!(
            made.status.success(),
            "python3 -m venv failed (Debian: apt-get install python3-venv)\n{}",
            describe(&made)
        );
        let venv = Venv { dir };
        let installed = output_within(
            Command::new(venv.bin().join("pip"))
                .args(["install", "--no-index", "--disable-pip-version-check", "-q"])
                .arg(wheel),
            PIP_LIMIT,
        );
        assert!(
            installed.status.success(),
            "pip install {} failed\n{}",
            wheel.display(),
            describe(&installed)
        );
        venv
    }

    fn bin(&self) -> PathBuf {
        self.dir.path().join("bin")
    }

    /// The `runicorn*` files the wheel put into bin/, sorted.
    fn runicorn_files(&self) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(self.bin())
            .expect("the venv has bin/")
            .map(|entry| entry.expect("a bin/ entry").file_name())
            .map(|name| name.to_string_lossy().into_owned())
            .filter(|name| name.starts_with("runicorn"))
            .collect();
        names.sort();
        names
    }

    /// PATH as an activated venv has it, on top of the system's basic folders only (so no
    /// runicorn binary of the build tree or of the user can be found instead).
    fn path_env(&self) -> String {
        format!("{}:/usr/bin:/bin", self.bin().display())
    }

    /// `name` found through PATH, as a user typing it after `source bin/activate`, in a scratch
    /// HOME with no runicorn variables.
    fn command(&self, name: &str, home: &Path) -> Command {
        let mut cmd = Command::new(name);
        cmd.env("PATH", self.path_env())
            .env("HOME", home)
            .env("NO_COLOR", "1")
            .env_remove("RUNICORN_DIR")
            .env_remove("RUNICORN_RUN_DIR")
            .env_remove("RUNICORN_HUB_DIR")
            .env_remove("RUNICORN_AGENT_BINARY")
            .env_remove("SSH_AUTH_SOCK");
        cmd
    }
}

/// Fails unless `file` is executable by its owner, group and others (pip keeps the wheel's mode).
fn assert_executable(file: &Path) {
    let mode = std::fs::metadata(file)
        .unwrap_or_else(|e| panic!("{}: {e}", file.display()))
        .permissions()
        .mode();
    assert_eq!(
        mode & 0o111,
        0o111,
        "{} is not executable (mode {mode:o})",
        file.display()
    );
}

/// Fails unless `binary` needs at most glibc 2.17 (`scripts/check-glibc.sh`, readelf).
fn assert_glibc_2_17(binary: &Path) {
    let out = output_within(
        Command::new("bash")
            .arg(workspace_root().join("scripts/check-glibc.sh"))
            .arg(binary)
            .arg("2.17"),
        COMMAND_LIMIT,
    );
    assert!(out.status.success(), "{}", describe(&out));
}

#[test]
fn the_agent_wheel_puts_runicorn_agent_on_path_and_it_records_lists_and_serves() {
    let Some(dir) = wheels_dir() else {
        return;
    };
    let venv = Venv::with_wheel(&only_wheel(&dir, "runicorn_agent"));
    assert_eq!(venv.runicorn_files(), ["runicorn-agent"]);
    let agent = venv.bin().join("runicorn-agent");
    assert_executable(&agent);
    assert_glibc_2_17(&agent);

    let home = tempfile::tempdir().expect("temp dir");
    let version = output_within(
        venv.command("runicorn-agent", home.path()).arg("--version"),
        COMMAND_LIMIT,
    );
    assert!(version.status.success(), "{}", describe(&version));
    assert_eq!(
        String::from_utf8_lossy(&version.stdout).trim(),
        format!("runicorn-agent {}", env!("CARGO_PKG_VERSION"))
    );

    // The README's next step on a server: wrap a command in a run.
    let root = tempfile::tempdir().expect("temp dir");
    let run = output_within(
        venv.command("runicorn-agent", home.path())
            .arg("run")
            .arg("--root")
            .arg(root.path())
            .args(["--path", "wheel/check", "--", "true"]),
        COMMAND_LIMIT,
    );
    assert!(run.status.success(), "{}", describe(&run));
    let ls = output_within(
        venv.command("runicorn-agent", home.path())
            .arg("ls")
            .arg("--root")
            .arg(root.path())
            .arg("--json"),
        COMMAND_LIMIT,
    );
    assert!(ls.status.success(), "{}", describe(&ls));
    let runs: Value = serde_json::from_slice(&ls.stdout).expect("ls --json prints JSON");
    let runs = runs.as_array().expect("ls --json prints an array");
    assert_eq!(runs.len(), 1, "{runs:?}");
    assert_eq!(runs[0]["path"], "wheel/check");
    assert_eq!(runs[0]["status"], "finished");
    let run_id = runs[0]["run_id"].as_str().expect("a run id").to_owned();

    // What the hub starts over SSH.
    let mut pipe = AgentPipe::handshake(AgentPipe::spawn_command(
        venv.command("runicorn-agent", home.path()),
        root.path(),
        &[],
        &[],
    ));
    let hello = pipe.hello.clone().expect("handshake done");
    assert_eq!(hello.versions, vec![PROTOCOL_VERSION]);
    let batch = pipe.changes(None, 100);
    assert_eq!(batch.runs.len(), 1, "{:?}", batch.runs);
    assert_eq!(batch.runs[0].id, run_id);
    pipe.close_stdin();
    let status = pipe
        .wait_exit(Duration::from_secs(10))
        .unwrap_or_else(|| panic!("the agent did not exit on EOF\n{}", pipe.stderr()));
    assert!(status.success(), "{status:?}\n{}", pipe.stderr());
}

#[test]
fn the_hub_wheel_runs_the_demo_with_the_agent_beside_it_and_serves_the_dashboard() {
    let Some(dir) = wheels_dir() else {
        return;
    };
    let venv = Venv::with_wheel(&only_wheel(&dir, "runicorn_hub"));
    // No `runicorn-agent`: only the portable agent under the name `connect --install-agent`
    // looks for, so a venv with both wheels has one `runicorn-agent`, the agent wheel's.
    assert_eq!(
        venv.runicorn_files(),
        ["runicorn-agent-x86_64-linux", "runicorn-hub"]
    );
    let hub = venv.bin().join("runicorn-hub");
    let agent = venv.bin().join("runicorn-agent-x86_64-linux");
    for binary in [&hub, &agent] {
        assert_executable(binary);
        assert_glibc_2_17(binary);
    }
    if let Some(portable) = std::env::var_os("RUNICORN_PORTABLE_AGENT") {
        let inside = std::fs::read(&agent).expect("read the wheel's agent");
        let built = std::fs::read(&portable).expect("read RUNICORN_PORTABLE_AGENT");
        assert!(
            inside == built,
            "the hub wheel's agent differs from {}: rerun scripts/build-wheels.sh",
            Path::new(&portable).display()
        );
    }
    let version = output_within(Command::new(&agent).arg("--version"), COMMAND_LIMIT);
    assert!(version.status.success(), "{}", describe(&version));

    // The README's main job, from the installed hub: it finds the agent beside itself (no
    // runicorn-agent is on PATH: the venv's bin/ and /usr/bin, /bin only).
    let home = tempfile::tempdir().expect("temp dir");
    let hub_dir = tempfile::tempdir().expect("temp dir");
    let demo = output_within(
        venv.command("runicorn-hub", home.path())
            .env("RUNICORN_HUB_DIR", hub_dir.path())
            .args(["demo", "--once", "--no-ui"]),
        COMMAND_LIMIT,
    );
    assert!(demo.status.success(), "{}", describe(&demo));
    let table = String::from_utf8_lossy(&demo.stdout);
    for expected in ["cv/resnet50", "nlp/bert-base", "running", "finished"] {
        assert!(table.contains(expected), "{expected} missing:\n{table}");
    }

    // The dashboard is inside the binary: the page and the API over the demo's store.
    let mut ui = venv
        .command("runicorn-hub", home.path())
        .env("RUNICORN_HUB_DIR", hub_dir.path())
        .args(["ui", "--offline", "--port", "0"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("runicorn-hub ui starts");
    let served = dashboard_address(&mut ui);
    let checked = served.map(|addr| (get(addr, "/"), get(addr, "/api/runs")));
    let _ = ui.kill();
    let _ = ui.wait();
    let (page, runs) = checked.unwrap_or_else(|stderr| panic!("no dashboard line:\n{stderr}"));
    assert_eq!(page.status, 200, "{}", page.text());
    assert!(
        page.header("content-type")
            .is_some_and(|t| t.starts_with("text/html")),
        "{:?}",
        page.headers
    );
    assert!(page.text().contains("<script"), "{}", page.text());
    assert_eq!(runs.status, 200, "{}", runs.text());
    assert_eq!(runs.json()["total"], 6, "{}", runs.text());
}

/// The address of the `dashboard: URL` line `child` prints on stderr, or its stderr so far
/// when the line does not come within a minute (or stderr ends first).
fn dashboard_address(child: &mut std::process::Child) -> Result<SocketAddr, String> {
    let pipe = child.stderr.take().expect("piped stderr");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut seen = String::new();
        // Read to the end, also after the line: a closed pipe would fail the hub's next write.
        for line in BufReader::new(pipe).lines() {
            let Ok(line) = line else { break };
            if let Some(url) = line.strip_prefix("dashboard: ") {
                let addr = url
                    .trim_start_matches("http://")
                    .trim_end_matches('/')
                    .parse::<SocketAddr>()
                    .map_err(|e| format!("{url}: {e}"));
                let _ = tx.send(addr);
            }
            seen.push_str(&line);
            seen.push('\n');
        }
        let _ = tx.send(Err(seen));
    });
    rx.recv_timeout(COMMAND_LIMIT)
        .unwrap_or_else(|_| Err("(nothing within a minute)".into()))
}
