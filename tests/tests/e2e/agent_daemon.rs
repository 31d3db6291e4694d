//! The resident agent (`runicorn-agent daemon`) as users meet it: `serve --stdio` attaching to it
//! (the hello says `resident`, the daemon counts the session), the hub syncing through it over a
//! real sshd, falling back when it is killed (the stale socket replaced by the next daemon), a
//! second daemon refused naming the first, `--idle-exit`, and `--start-daemon` (the hub's
//! `--resident-agent`) starting one that the next session reuses.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::Duration;

use runicorn_protocol::run_format::{RunOutcome, RunSpec, RunWriter};
use runicorn_protocol::wire::RESIDENT_CAPABILITY;
use runicorn_tests::agent_pipe::AgentPipe;
use runicorn_tests::daemon::{alive, answers, lock_pid, socket_of, Daemon, StartedDaemon};
use runicorn_tests::hub::{agent_path, append_steps, connect_ssh, hub, json_of, show, write_runs};
use runicorn_tests::sshd::Sshd;
use runicorn_tests::{output_within, wait_until};

fn resident(pipe: &AgentPipe) -> bool {
    pipe.hello
        .as_ref()
        .expect("handshake done")
        .capabilities
        .iter()
        .any(|c| c == RESIDENT_CAPABILITY)
}

/// Sessions the daemon's log says were attached, and ended (the test's own probe that the
/// socket answers counts as one).
fn sessions(daemon: &Daemon) -> (usize, usize) {
    let log = daemon.log();
    (
        log.matches(" attached (").count(),
        log.matches(" ended (code").count(),
    )
}

fn run_dirs(batches: &[runicorn_protocol::wire::ChangeBatch]) -> Vec<String> {
    let mut dirs: Vec<String> = batches
        .iter()
        .flat_map(|b| b.runs.iter().map(|r| r.dir.clone()))
        .collect();
    dirs.sort();
    dirs
}

#[test]
fn serve_attaches_to_the_running_daemon_and_answers_from_its_warm_feed() {
    let root = tempfile::tempdir().unwrap();
    write_runs(root.path(), 3, |_| 5);
    let daemon = Daemon::start(root.path(), &["--poll", "30"]);
    // `start` probed the socket: wait until the daemon logged those sessions as ended.
    assert!(wait_until(5.0, || {
        let (attached, ended) = sessions(&daemon);
        attached >= 1 && attached == ended
    }));
    let (probes, _) = sessions(&daemon);
    let socket = socket_of(root.path());
    let mode = std::fs::metadata(&socket).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600, "the socket is owner-only");

    let mut pipe = AgentPipe::start(root.path(), &[], &[]);
    assert!(resident(&pipe), "{:?}", pipe.hello);
    let batches = pipe.changes_all(None, 1000);
    assert_eq!(run_dirs(&batches).len(), 3, "{batches:?}");
    let cursor = batches.last().unwrap().cursor.clone();
    assert!(
        wait_until(5.0, || sessions(&daemon).0 == probes + 1),
        "{}",
        daemon.log()
    );

    // A run written now is in the next `changes` at once: the watcher's events are scanned
    // before the answer (the full scan is 30 s away).
    write_runs_at(root.path(), "late");
    let next = pipe.changes_all(Some(cursor), 1000);
    assert_eq!(run_dirs(&next), ["runs/exp/late"], "{next:?}");

    // The same answers as an in-process session, which does not say `resident`.
    let mut own = AgentPipe::start(root.path(), &["--no-daemon"], &[]);
    assert!(!resident(&own));
    assert_eq!(run_dirs(&own.changes_all(None, 1000)).len(), 4);
    own.close_stdin();
    assert_eq!(
        own.wait_exit(Duration::from_secs(10)).unwrap().code(),
        Some(0)
    );

    // A second session of the same daemon; the relay ends with code 0 when the hub closes.
    let mut second = AgentPipe::start(root.path(), &[], &[]);
    assert!(resident(&second));
    assert!(wait_until(5.0, || sessions(&daemon).0 == probes + 2));
    let (_, ended) = sessions(&daemon);
    second.close_stdin();
    assert_eq!(
        second.wait_exit(Duration::from_secs(10)).unwrap().code(),
        Some(0),
        "{}",
        second.stderr()
    );
    assert!(
        wait_until(5.0, || sessions(&daemon).1 == ended + 1),
        "{}",
        daemon.log()
    );
    pipe.close_stdin();
    assert_eq!(
        pipe.wait_exit(Duration::from_secs(10)).unwrap().code(),
        Some(0)
    );
}

/// One finished run `runs/exp/<id>`.
fn write_runs_at(root: &Path, id: &str) {
    let mut spec = RunSpec::new(root, "runicorn-tests");
    spec.path = Some("exp".into());
    spec.run_id = Some(id.into());
    let mut w = RunWriter::create(&spec).unwrap();
    w.log_metrics(&[("loss", 1.0)], None, None).unwrap();
    w.finish(RunOutcome::finished()).unwrap();
}

#[test]
fn a_second_daemon_on_the_root_refuses_and_names_the_first() {
    let root = tempfile::tempdir().unwrap();
    let first = Daemon::start(root.path(), &[]);
    let out = output_within(
        runicorn_tests::agent()
            .args(["daemon", "--root"])
            .arg(root.path()),
        Duration::from_secs(30),
    );
    assert!(!out.status.success(), "{}", show(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!("pid {}", first.pid())) && err.contains("daemon.sock"),
        "{err}"
    );
    assert!(err.contains("running since"), "{err}");
    // The first still serves.
    assert!(answers(root.path()));
    // A root that does not exist is a clear error too.
    let missing = root.path().join("nope");
    let out = output_within(
        runicorn_tests::agent()
            .args(["daemon", "--root"])
            .arg(&missing),
        Duration::from_secs(30),
    );
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("does not exist"),
        "{}",
        show(&out)
    );
}

#[test]
fn sigterm_and_idle_exit_end_the_daemon_and_remove_its_socket() {
    let root = tempfile::tempdir().unwrap();
    write_runs(root.path(), 1, |_| 3);
    let mut d = Daemon::start(root.path(), &[]);
    d.signal(libc::SIGTERM);
    let status = d
        .wait_exit(Duration::from_secs(10))
        .expect("exits on SIGTERM");
    assert_eq!(status.code(), Some(0), "{}", d.log());
    assert!(!socket_of(root.path()).exists(), "{}", d.log());

    // A running run keeps an idle daemon alive; once it finished the daemon exits.
    let mut spec = RunSpec::new(root.path(), "runicorn-tests");
    spec.path = Some("live".into());
    let mut writer = RunWriter::create(&spec).unwrap();
    writer.log_metrics(&[("loss", 1.0)], None, None).unwrap();
    let mut d = Daemon::start(root.path(), &["--idle-exit", "1", "--poll", "0.5"]);
    std::thread::sleep(Duration::from_secs(3));
    assert!(
        d.child.try_wait().unwrap().is_none(),
        "a live run keeps it: {}",
        d.log()
    );
    writer.finish(RunOutcome::finished()).unwrap();
    let status = d
        .wait_exit(Duration::from_secs(20))
        .unwrap_or_else(|| panic!("idle exit: {}", d.log()));
    assert_eq!(status.code(), Some(0));
    assert!(d.log().contains("--idle-exit"), "{}", d.log());
    assert!(!socket_of(root.path()).exists());

    // An attached session keeps it too.
    let mut d = Daemon::start(root.path(), &["--idle-exit", "1"]);
    let mut pipe = AgentPipe::start(root.path(), &[], &[]);
    assert!(resident(&pipe));
    std::thread::sleep(Duration::from_secs(3));
    assert!(d.child.try_wait().unwrap().is_none(), "{}", d.log());
    pipe.close_stdin();
    assert!(pipe.wait_exit(Duration::from_secs(10)).is_some());
    assert!(
        d.wait_exit(Duration::from_secs(20)).is_some(),
        "{}",
        d.log()
    );
}

/// Syncs remote `gpu` once over the sshd (with `extra` options); returns the JSON of `remotes`.
fn sync_over_ssh(home: &Path, hub_dir: &Path, sshd: &Sshd, root: &Path, extra: &[&str]) {
    let out = output_within(
        connect_ssh(home, hub_dir, sshd, root, &agent_path())
            .args(["--once", "--no-ui", "--name", "gpu", "--prefetch", "none"])
            .args(extra),
        Duration::from_secs(120),
    );
    assert!(out.status.success(), "{}", show(&out));
}

fn remote_json(home: &Path, hub_dir: &Path) -> serde_json::Value {
    json_of(hub(home, hub_dir).args(["remotes", "--json"]))[0].clone()
}

fn stored_runs(home: &Path, hub_dir: &Path) -> usize {
    json_of(hub(home, hub_dir).args(["ls", "--json"]))
        .as_array()
        .map_or(0, Vec::len)
}

#[test]
fn killing_the_daemon_falls_back_cleanly_over_ssh_and_a_new_one_replaces_its_socket() {
    let sshd = Sshd::start();
    let home = sshd.client_home();
    home.trust(&sshd);
    let root = tempfile::tempdir().unwrap();
    let hub_dir = tempfile::tempdir().unwrap();
    write_runs(root.path(), 4, |i| 10 + i);

    let mut d = Daemon::start(root.path(), &[]);
    sync_over_ssh(home.path(), hub_dir.path(), &sshd, root.path(), &[]);
    let remote = remote_json(home.path(), hub_dir.path());
    assert_eq!(
        remote["resident_agent"]["last_session_attached"], true,
        "{remote}"
    );
    assert_eq!(stored_runs(home.path(), hub_dir.path()), 4);
    let listing = output_within(
        hub(home.path(), hub_dir.path()).arg("remotes"),
        Duration::from_secs(30),
    );
    assert!(
        String::from_utf8_lossy(&listing.stdout).contains("resident agent"),
        "{}",
        show(&listing)
    );

    // A session attached when the daemon dies gets a clear error and exit code 2.
    let mut pipe = AgentPipe::start(root.path(), &[], &[]);
    assert!(resident(&pipe));
    d.signal(libc::SIGKILL);
    assert!(d.wait_exit(Duration::from_secs(10)).is_some());
    let status = pipe
        .wait_exit(Duration::from_secs(10))
        .expect("the relay ends");
    assert_eq!(status.code(), Some(2), "{}", pipe.stderr());
    assert!(
        pipe.stderr().contains("resident agent") && pipe.stderr().contains("ended the session"),
        "{}",
        pipe.stderr()
    );
    // Its socket is left behind, stale.
    assert!(socket_of(root.path()).exists());
    assert!(!answers(root.path()));

    // The next sync is served in-process and moves what changed.
    append_steps(&root.path().join("runs/exp/g1/run00001"), 11, 5);
    sync_over_ssh(home.path(), hub_dir.path(), &sshd, root.path(), &[]);
    let remote = remote_json(home.path(), hub_dir.path());
    assert_eq!(
        remote["resident_agent"]["last_session_attached"], false,
        "{remote}"
    );
    runicorn_tests::hub::assert_same_points(root.path(), hub_dir.path(), "gpu");

    // A new daemon takes over the stale socket; the next sync is attached again.
    let d2 = Daemon::start(root.path(), &[]);
    assert!(d2.log().contains("stale socket"), "{}", d2.log());
    append_steps(&root.path().join("runs/exp/g2/run00002"), 12, 5);
    sync_over_ssh(home.path(), hub_dir.path(), &sshd, root.path(), &[]);
    let remote = remote_json(home.path(), hub_dir.path());
    assert_eq!(remote["resident_agent"]["last_session_attached"], true);
    runicorn_tests::hub::assert_same_points(root.path(), hub_dir.path(), "gpu");
    assert!(sessions(&d2).0 >= 2, "{}", d2.log());
}

#[test]
fn start_daemon_starts_one_that_the_next_session_reuses() {
    let sshd = Sshd::start();
    let home = sshd.client_home();
    home.trust(&sshd);
    let root = tempfile::tempdir().unwrap();
    let hub_dir = tempfile::tempdir().unwrap();
    write_runs(root.path(), 3, |_| 4);
    let _cleanup = StartedDaemon(root.path().to_owned());

    sync_over_ssh(
        home.path(),
        hub_dir.path(),
        &sshd,
        root.path(),
        &["--resident-agent"],
    );
    let pid = lock_pid(root.path()).expect("a daemon was started");
    assert!(alive(pid));
    assert!(answers(root.path()));
    let remote = remote_json(home.path(), hub_dir.path());
    assert_eq!(remote["resident_agent"]["requested"], true, "{remote}");
    assert_eq!(remote["resident_agent"]["last_session_attached"], true);
    let log = root.path().join(".runicorn-agent/daemon.log");
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(text.contains("idle exit after 600 s"), "{text}");
    assert!(text.contains("session 1 attached"), "{text}");

    // `sync` remembers the flag: the same daemon serves the next session.
    append_steps(&root.path().join("runs/exp/g0/run00000"), 4, 3);
    let out = output_within(
        hub(home.path(), hub_dir.path()).args(["sync", "gpu", "--prefetch", "none"]),
        Duration::from_secs(120),
    );
    assert!(out.status.success(), "{}", show(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("(resident)"),
        "{}",
        show(&out)
    );
    assert_eq!(lock_pid(root.path()), Some(pid));
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(text.contains("session 2 attached"), "{text}");
    runicorn_tests::hub::assert_same_points(root.path(), hub_dir.path(), "gpu");
}
