//! `runicorn-hub connect --install-agent` against a real sshd whose sessions get a private
//! `HOME` (so parallel tests never share an install directory): an account with no agent gets
//! one, uploaded, verified and synced; an older agent is replaced, a newer one is not (the hub
//! is named instead), and so is one that cannot run there (exit 126); without the flag the
//! error gives the exact command; a file for another architecture, or a server platform with
//! no agent, is refused before anything is sent; an older agent earlier on the PATH, which the
//! install cannot displace, is named. Without `sha256sum` on the server the upload is read back.
//!
//! The agent uploaded is the portable one when `RUNICORN_PORTABLE_AGENT` names it, else the
//! debug build. An "old" or "new" agent is that debug build speaking another protocol version
//! through its debug-only `RUNICORN_AGENT_TEST_PROTOCOL_VERSION`, in a wrapper script.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::Duration;

use runicorn_protocol::wire::PROTOCOL_VERSION;
use runicorn_store::{RunFilter, Store};
use runicorn_tests::hub::{agent_path, hub, show, write_runs};
use runicorn_tests::output_within;
use runicorn_tests::sshd::{ClientHome, Sshd};

/// How long one `connect --once` (with an upload of up to ~60 MB) may take.
const CONNECT_LIMIT: Duration = Duration::from_secs(120);

/// The agent the tests upload.
fn upload_source() -> PathBuf {
    match std::env::var_os("RUNICORN_PORTABLE_AGENT") {
        Some(path) => PathBuf::from(path),
        None => agent_path(),
    }
}

/// A server account with an empty private HOME, and a storage root with `runs` runs.
struct Server {
    sshd: Sshd,
    home: ClientHome,
    remote_home: tempfile::TempDir,
    root: tempfile::TempDir,
    hub_dir: tempfile::TempDir,
}

impl Server {
    fn start(runs: usize, remote_path: &str) -> Server {
        let remote_home = tempfile::tempdir().unwrap();
        let sshd = Sshd::builder()
            .remote_home(remote_home.path())
            .remote_path(remote_path)
            .start();
        let home = sshd.client_home();
        home.trust(&sshd);
        let root = tempfile::tempdir().unwrap();
        write_runs(root.path(), runs, |_| 4);
        Server {
            sshd,
            home,
            remote_home,
            root,
            hub_dir: tempfile::tempdir().unwrap(),
        }
    }

    fn bin_dir(&self) -> PathBuf {
        self.remote_home.path().join(".runicorn/bin")
    }

    fn installed(&self) -> PathBuf {
        self.bin_dir().join("runicorn-agent")
    }

    /// `runicorn-hub connect SPEC --root ROOT --once --no-ui EXTRA…`, without
    /// `RUNICORN_AGENT_BINARY` unless a test sets it.
    fn connect(&self, extra: &[&str], env: &[(&str, &Path)]) -> Output {
        let mut cmd = hub(self.home.path(), self.hub_dir.path());
        cmd.env_remove("RUNICORN_AGENT_BINARY")
            .arg("connect")
            .arg(self.sshd.spec())
            .arg("--root")
            .arg(self.root.path())
            .args(["--once", "--no-ui"])
            .args(extra);
        for (key, value) in env {
            cmd.env(key, value);
        }
        output_within(&mut cmd, CONNECT_LIMIT)
    }

    fn runs_in_store(&self) -> usize {
        Store::open_read_only(self.hub_dir.path())
            .map(|s| s.list_runs(&RunFilter::default()).unwrap().len())
            .unwrap_or(0)
    }

    /// Installs a wrapper as `~/.runicorn/bin/runicorn-agent`: the debug agent speaking
    /// protocol `version`.
    fn install_wrapper(&self, version: u32) -> String {
        std::fs::create_dir_all(self.bin_dir()).unwrap();
        let script = format!(
            "#!/bin/sh\nRUNICORN_AGENT_TEST_PROTOCOL_VERSION={version} exec '{}' \"$@\"\n",
            agent_path().display()
        );
        write_executable(&self.installed(), &script);
        script
    }

    /// Names in `~/.runicorn/bin` (none when it does not exist).
    fn bin_entries(&self) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(self.bin_dir())
            .map(|d| {
                d.flatten()
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default();
        names.sort();
        names
    }
}

fn write_executable(path: &Path, text: &str) {
    std::fs::write(path, text).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// The installed agent is byte-identical to the uploaded one, executable, alone in its folder.
fn assert_installed(server: &Server, source: &Path) {
    let installed = std::fs::read(server.installed()).expect("the agent was installed");
    assert!(
        installed == std::fs::read(source).unwrap(),
        "~/.runicorn/bin/runicorn-agent differs from {}",
        source.display()
    );
    let mode = std::fs::metadata(server.installed())
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o755, "mode {mode:o}");
    assert_eq!(
        server.bin_entries(),
        vec!["runicorn-agent".to_owned()],
        "no temporary file is left"
    );
}

#[test]
fn an_account_without_an_agent_gets_one_verified_then_synced() {
    let server = Server::start(3, "/usr/bin:/bin");
    let source = upload_source();

    let mut args = vec!["--install-agent", "--agent-binary"];
    let source_text = source.to_str().unwrap().to_owned();
    args.push(&source_text);
    let out = server.connect(&args, &[]);
    assert!(out.status.success(), "{}", show(&out));
    let err = stderr(&out);
    assert!(err.contains("installing runicorn-agent in"), "{err}");
    assert!(err.contains("installed and verified"), "{err}");
    assert_installed(&server, &source);
    assert_eq!(server.runs_in_store(), 3);
    // The figure for docs/PERFORMANCE.md (seen with --nocapture).
    eprintln!("{}", err.trim());

    // Installed where the agent command looks: the next connection needs no flag, and the flag
    // on a current agent uploads nothing.
    let before = std::fs::metadata(server.installed())
        .unwrap()
        .modified()
        .unwrap();
    let out = server.connect(&[], &[]);
    assert!(out.status.success(), "{}", show(&out));
    let out = server.connect(&["--install-agent"], &[("RUNICORN_AGENT_BINARY", &source)]);
    assert!(out.status.success(), "{}", show(&out));
    assert!(!stderr(&out).contains("installing"), "{}", show(&out));
    let after = std::fs::metadata(server.installed())
        .unwrap()
        .modified()
        .unwrap();
    assert_eq!(before, after, "a current agent is left alone");
}

#[test]
fn without_sha256sum_on_the_server_the_upload_is_read_back_and_verified() {
    // A PATH with only what the install needs besides sha256sum.
    let tools = tempfile::tempdir().unwrap();
    for tool in ["sh", "uname", "mkdir", "mv"] {
        let found = ["/usr/bin", "/bin"]
            .iter()
            .map(|d| Path::new(d).join(tool))
            .find(|p| p.exists())
            .unwrap_or_else(|| panic!("{tool} is installed"));
        std::os::unix::fs::symlink(found, tools.path().join(tool)).unwrap();
    }
    let server = Server::start(2, tools.path().to_str().unwrap());
    let source = upload_source();
    let out = server.connect(&["--install-agent"], &[("RUNICORN_AGENT_BINARY", &source)]);
    assert!(out.status.success(), "{}", show(&out));
    assert!(
        stderr(&out).contains("installed and verified"),
        "{}",
        show(&out)
    );
    assert_installed(&server, &source);
    assert_eq!(server.runs_in_store(), 2);
}

#[test]
fn without_the_flag_the_error_gives_the_exact_command() {
    let server = Server::start(1, "/usr/bin:/bin");
    let command = format!(
        "runicorn-hub connect {} --root {} --install-agent",
        server.sshd.spec(),
        server.root.path().display()
    );

    let out = server.connect(&[], &[]);
    assert_eq!(out.status.code(), Some(2), "{}", show(&out));
    assert!(stderr(&out).contains(&command), "{}", show(&out));
    assert!(server.bin_entries().is_empty());

    // An older agent: the same command, nothing replaced.
    let script = server.install_wrapper(PROTOCOL_VERSION - 1);
    let out = server.connect(&[], &[]);
    assert_eq!(out.status.code(), Some(2), "{}", show(&out));
    let err = stderr(&out);
    assert!(err.contains("upgrade the agent"), "{err}");
    assert!(err.contains(&command), "{err}");
    assert_eq!(std::fs::read_to_string(server.installed()).unwrap(), script);
    assert_eq!(server.runs_in_store(), 0);
}

#[test]
fn an_older_agent_is_upgraded_and_a_newer_one_names_the_hub() {
    let server = Server::start(2, "/usr/bin:/bin");
    let source = upload_source();

    // Newer than the hub: not replaced; the hub is the side to upgrade.
    let script = server.install_wrapper(PROTOCOL_VERSION + 1);
    let out = server.connect(&["--install-agent"], &[("RUNICORN_AGENT_BINARY", &source)]);
    assert_eq!(out.status.code(), Some(2), "{}", show(&out));
    assert!(
        stderr(&out).contains("upgrade runicorn-hub"),
        "{}",
        show(&out)
    );
    assert_eq!(std::fs::read_to_string(server.installed()).unwrap(), script);

    // Older: replaced, verified, synced.
    server.install_wrapper(PROTOCOL_VERSION - 1);
    let out = server.connect(&["--install-agent"], &[("RUNICORN_AGENT_BINARY", &source)]);
    assert!(out.status.success(), "{}", show(&out));
    assert!(
        stderr(&out).contains("replacing runicorn-agent"),
        "{}",
        show(&out)
    );
    assert_installed(&server, &source);
    assert_eq!(server.runs_in_store(), 2);
}

#[test]
fn a_file_for_another_architecture_is_refused_before_upload() {
    let server = Server::start(1, "/usr/bin:/bin");
    // The real agent with its ELF machine changed to aarch64.
    let mut bytes = std::fs::read(agent_path()).unwrap();
    bytes[18..20].copy_from_slice(&183u16.to_le_bytes());
    let dir = tempfile::tempdir().unwrap();
    let arm = dir.path().join("runicorn-agent-aarch64");
    std::fs::write(&arm, bytes).unwrap();

    let out = server.connect(&["--install-agent"], &[("RUNICORN_AGENT_BINARY", &arm)]);
    assert_eq!(out.status.code(), Some(2), "{}", show(&out));
    let err = stderr(&out);
    assert!(err.contains("built for aarch64"), "{err}");
    assert!(err.contains("x86_64"), "{err}");
    assert!(err.contains(arm.to_str().unwrap()), "{err}");
    assert!(server.bin_entries().is_empty(), "nothing was sent");

    // A script is not an agent either.
    let script = dir.path().join("agent.sh");
    write_executable(&script, "#!/bin/sh\nexit 0\n");
    let out = server.connect(&["--install-agent"], &[("RUNICORN_AGENT_BINARY", &script)]);
    assert_eq!(out.status.code(), Some(2), "{}", show(&out));
    assert!(stderr(&out).contains("a script"), "{}", show(&out));
    assert!(server.bin_entries().is_empty());
}

#[test]
fn a_server_platform_with_no_agent_is_named() {
    // The server says it is a riscv64 Linux: this hub ships no agent for it.
    let tools = tempfile::tempdir().unwrap();
    write_executable(
        &tools.path().join("uname"),
        "#!/bin/sh\ncase \"$1\" in -s) echo Linux;; -m) echo riscv64;; *) echo Linux;; esac\n",
    );
    let path = format!("{}:/usr/bin:/bin", tools.path().display());
    let server = Server::start(1, &path);
    let out = server.connect(&["--install-agent"], &[]);
    assert_eq!(out.status.code(), Some(2), "{}", show(&out));
    let err = stderr(&out);
    assert!(err.contains("no runicorn-agent for Linux riscv64"), "{err}");
    assert!(err.contains("--agent-binary"), "{err}");
    assert!(server.bin_entries().is_empty());
}

#[test]
fn an_agent_that_cannot_run_here_is_named_then_replaced() {
    let server = Server::start(2, "/usr/bin:/bin");
    let source = upload_source();
    // An agent built for another machine: the server's shell answers exit 126.
    let mut bytes = std::fs::read(agent_path()).unwrap();
    bytes[18..20].copy_from_slice(&183u16.to_le_bytes());
    std::fs::create_dir_all(server.bin_dir()).unwrap();
    std::fs::write(server.installed(), bytes).unwrap();
    std::fs::set_permissions(server.installed(), std::fs::Permissions::from_mode(0o755)).unwrap();

    let out = server.connect(&[], &[]);
    assert_eq!(out.status.code(), Some(2), "{}", show(&out));
    let err = stderr(&out);
    assert!(err.contains("cannot be executed"), "{err}");
    assert!(err.contains("--install-agent"), "{err}");
    assert!(!err.contains("reconnecting"), "not retried: {err}");

    let out = server.connect(&["--install-agent"], &[("RUNICORN_AGENT_BINARY", &source)]);
    assert!(out.status.success(), "{}", show(&out));
    assert_installed(&server, &source);
    assert_eq!(server.runs_in_store(), 2);
}

#[test]
fn an_older_agent_first_on_the_path_is_named_after_the_install() {
    let on_path = tempfile::tempdir().unwrap();
    let old = on_path.path().join("runicorn-agent");
    write_executable(
        &old,
        &format!(
            "#!/bin/sh\nRUNICORN_AGENT_TEST_PROTOCOL_VERSION={} exec '{}' \"$@\"\n",
            PROTOCOL_VERSION - 1,
            agent_path().display()
        ),
    );
    let path = format!("{}:/usr/bin:/bin", on_path.path().display());
    let server = Server::start(1, &path);
    let source = upload_source();
    let out = server.connect(&["--install-agent"], &[("RUNICORN_AGENT_BINARY", &source)]);
    assert_eq!(out.status.code(), Some(2), "{}", show(&out));
    let err = stderr(&out);
    assert!(
        err.contains(old.to_str().unwrap()),
        "names the old agent: {err}"
    );
    assert!(err.contains("comes first on the PATH"), "{err}");
    assert_installed(&server, &source);
}

/// Links (or copies) `from` to `to`.
fn link_or_copy(from: &Path, to: &Path) {
    if std::fs::hard_link(from, to).is_err() {
        std::fs::copy(from, to).unwrap();
    }
}

#[test]
fn the_agent_beside_the_hub_is_found_as_the_laptop_wheel_places_it() {
    // A venv-like bin/: runicorn-hub with runicorn-agent-x86_64-linux beside it (in target/,
    // so the 180 MB debug hub is hard-linked rather than copied).
    let venv = tempfile::tempdir_in(runicorn_tests::workspace_root().join("target")).unwrap();
    let bin = venv.path().join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    let hub_exe = bin.join("runicorn-hub");
    link_or_copy(&runicorn_tests::binary("runicorn-hub"), &hub_exe);
    let source = upload_source();
    link_or_copy(&source, &bin.join("runicorn-agent-x86_64-linux"));

    let server = Server::start(2, "/usr/bin:/bin");
    // The environment `hub()` gives, on the linked executable.
    let mut cmd = std::process::Command::new(&hub_exe);
    for (key, value) in hub(server.home.path(), server.hub_dir.path()).get_envs() {
        match value {
            Some(v) => cmd.env(key, v),
            None => cmd.env_remove(key),
        };
    }
    cmd.env_remove("RUNICORN_AGENT_BINARY")
        .arg("connect")
        .arg(server.sshd.spec())
        .arg("--root")
        .arg(server.root.path())
        .args(["--once", "--no-ui", "--install-agent"]);
    let out = output_within(&mut cmd, CONNECT_LIMIT);
    assert!(out.status.success(), "{}", show(&out));
    assert!(
        stderr(&out).contains("runicorn-agent-x86_64-linux"),
        "{}",
        show(&out)
    );
    assert_installed(&server, &source);
    assert_eq!(server.runs_in_store(), 2);
}
