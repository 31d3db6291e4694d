//! `runicorn-hub connect` as a user types it, against real sshd servers: host keys (unknown,
//! accepted, changed), a wrong key, a missing agent, ProxyJump, a `~/.ssh/config` alias; and
//! against deliberately broken agents (frames that are not the protocol), which are refused
//! with nothing stored.

use std::path::Path;
use std::process::Output;

use runicorn_store::{RunFilter, Store};
use runicorn_tests::hub::{agent_path, connect_local, hub, show, write_runs};
use runicorn_tests::sshd::{ClientHome, ClientKey, Sshd};
use runicorn_tests::workspace_root;

fn connect(home: &ClientHome, hub_dir: &Path, target: &str, root: &Path, extra: &[&str]) -> Output {
    hub(home.path(), hub_dir)
        .arg("connect")
        .arg(target)
        .arg("--agent")
        .arg(agent_path())
        .arg("--root")
        .arg(root)
        .args(["--once", "--no-ui"])
        .args(extra)
        .output()
        .unwrap()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn runs_in_store(hub_dir: &Path) -> usize {
    match Store::open_read_only(hub_dir) {
        Ok(s) => s
            .list_runs(&RunFilter {
                include_removed: true,
                include_deleted: true,
                ..RunFilter::default()
            })
            .unwrap()
            .len(),
        Err(_) => 0,
    }
}

#[test]
fn an_unknown_host_key_is_refused_with_its_fingerprint_until_accepted() {
    let sshd = Sshd::start();
    let home = sshd.client_home();
    let root = tempfile::tempdir().unwrap();
    write_runs(root.path(), 3, |_| 5);
    let hub_dir = tempfile::tempdir().unwrap();

    let out = connect(&home, hub_dir.path(), &sshd.spec(), root.path(), &[]);
    assert_eq!(out.status.code(), Some(2), "{}", show(&out));
    let err = stderr(&out);
    assert!(err.contains(&sshd.host_fingerprint()), "{err}");
    assert!(err.contains("--accept-new-host-key"), "{err}");
    assert_eq!(runs_in_store(hub_dir.path()), 0);

    let out = connect(
        &home,
        hub_dir.path(),
        &sshd.spec(),
        root.path(),
        &["--accept-new-host-key"],
    );
    assert!(out.status.success(), "{}", show(&out));
    let known = std::fs::read_to_string(home.known_hosts()).unwrap();
    assert!(
        known.contains(&format!("[127.0.0.1]:{}", sshd.port())),
        "{known}"
    );
    assert_eq!(runs_in_store(hub_dir.path()), 3);

    // Recorded: the next connection needs no flag.
    let out = connect(&home, hub_dir.path(), &sshd.spec(), root.path(), &[]);
    assert!(out.status.success(), "{}", show(&out));
}

#[test]
fn a_changed_host_key_is_always_refused() {
    let sshd = Sshd::start();
    let home = sshd.client_home();
    // Another server's key recorded for this address: a man in the middle, as far as we know.
    let other = Sshd::start();
    home.trust_as(
        &format!("[127.0.0.1]:{}", sshd.port()),
        other.host_public_key(),
    );
    let before = std::fs::read_to_string(home.known_hosts()).unwrap();
    let root = tempfile::tempdir().unwrap();
    let hub_dir = tempfile::tempdir().unwrap();
    for extra in [&[][..], &["--accept-new-host-key"][..]] {
        let out = connect(&home, hub_dir.path(), &sshd.spec(), root.path(), extra);
        assert_eq!(out.status.code(), Some(2), "{}", show(&out));
        let err = stderr(&out).to_lowercase();
        assert!(err.contains("changed"), "{err}");
        assert!(err.contains("known_hosts"), "{err}");
    }
    assert_eq!(std::fs::read_to_string(home.known_hosts()).unwrap(), before);
}

#[test]
fn a_wrong_key_is_an_authentication_error() {
    let sshd = Sshd::start();
    let home = ClientHome::empty();
    home.add_key("id_ed25519", &ClientKey::generate());
    home.trust(&sshd);
    let root = tempfile::tempdir().unwrap();
    let hub_dir = tempfile::tempdir().unwrap();
    let out = connect(&home, hub_dir.path(), &sshd.spec(), root.path(), &[]);
    assert_eq!(out.status.code(), Some(2), "{}", show(&out));
    let err = stderr(&out);
    assert!(err.contains("id_ed25519"), "names the key it tried: {err}");
    assert!(
        !err.contains("reconnecting"),
        "a wrong key is not retried: {err}"
    );
}

#[test]
fn a_missing_agent_says_how_to_install_it() {
    let remote_home = tempfile::tempdir().unwrap();
    let sshd = Sshd::builder()
        .remote_home(remote_home.path())
        .remote_path("/usr/bin:/bin")
        .start();
    let home = sshd.client_home();
    home.trust(&sshd);
    let hub_dir = tempfile::tempdir().unwrap();
    let out = hub(home.path(), hub_dir.path())
        .args(["connect", &sshd.spec(), "--once", "--no-ui"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", show(&out));
    let err = stderr(&out);
    assert!(err.contains("runicorn-agent"), "{err}");
    assert!(err.contains(".runicorn/bin"), "{err}");
    assert!(err.contains("--agent"), "{err}");

    // Installed where the message says: found without --agent.
    let bin = remote_home.path().join(".runicorn/bin");
    std::fs::create_dir_all(&bin).unwrap();
    std::fs::copy(agent_path(), bin.join("runicorn-agent")).unwrap();
    let root = tempfile::tempdir().unwrap();
    write_runs(root.path(), 2, |_| 3);
    let out = hub(home.path(), hub_dir.path())
        .args(["connect", &sshd.spec(), "--once", "--no-ui", "--root"])
        .arg(root.path())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", show(&out));
    assert_eq!(runs_in_store(hub_dir.path()), 2);
}

#[test]
fn proxy_jump_and_config_aliases_reach_the_server() {
    let jump = Sshd::builder().allow_tcp_forwarding(true).start();
    let target = Sshd::builder()
        .client_key(jump.client_key().clone())
        .start();
    let home = jump.client_home();
    home.trust(&jump);
    home.trust(&target);
    let root = tempfile::tempdir().unwrap();
    write_runs(root.path(), 4, |_| 6);
    let hub_dir = tempfile::tempdir().unwrap();

    let out = connect(
        &home,
        hub_dir.path(),
        &target.spec(),
        root.path(),
        &["-J", &jump.spec(), "--name", "via-jump"],
    );
    assert!(out.status.success(), "{}", show(&out));
    assert_eq!(runs_in_store(hub_dir.path()), 4);

    home.write_config(&format!(
        "Host gpu-box\n  HostName 127.0.0.1\n  Port {}\n  User {}\n  ProxyJump bastion\nHost bastion\n  HostName 127.0.0.1\n  Port {}\n",
        target.port(),
        runicorn_tests::sshd::current_user(),
        jump.port()
    ));
    let out = connect(&home, hub_dir.path(), "gpu-box", root.path(), &[]);
    assert!(out.status.success(), "{}", show(&out));
    let remotes =
        runicorn_tests::hub::json_of(hub(home.path(), hub_dir.path()).args(["remotes", "--json"]));
    let names: Vec<_> = remotes
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["name"].as_str().unwrap().to_owned())
        .collect();
    assert!(names.contains(&"gpu-box".to_owned()), "{names:?}");
    // `sync` reaches both again through what it remembered.
    let synced =
        runicorn_tests::hub::json_of(hub(home.path(), hub_dir.path()).args(["sync", "--json"]));
    assert!(
        synced.as_array().unwrap().iter().all(|r| r["ok"] == true),
        "{synced}"
    );
}

/// Connects to a deliberately broken local agent and returns the outcome.
fn broken(mode: &str, hub_dir: &Path) -> Output {
    let home = ClientHome::empty();
    let root = tempfile::tempdir().unwrap();
    connect_local(
        home.path(),
        hub_dir,
        root.path(),
        &workspace_root().join("tests/support/broken_agent.py"),
    )
    .args(["--name", "broken", "--once", "--no-ui"])
    .env("BROKEN_AGENT_MODE", mode)
    .output()
    .unwrap()
}

#[test]
fn broken_agents_are_refused_with_a_clear_error_and_nothing_stored() {
    // A good remote first, so there is something that must stay untouched.
    let hub_dir = tempfile::tempdir().unwrap();
    let root = tempfile::tempdir().unwrap();
    write_runs(root.path(), 5, |_| 8);
    let home = ClientHome::empty();
    let out = connect_local(home.path(), hub_dir.path(), root.path(), &agent_path())
        .args(["--name", "good", "--once"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", show(&out));
    let store_file = hub_dir.path().join("store.sqlite");
    let dump = || {
        let s = Store::open_read_only(hub_dir.path()).unwrap();
        let runs = s
            .list_runs(&RunFilter {
                include_removed: true,
                include_deleted: true,
                ..RunFilter::default()
            })
            .unwrap();
        let points: u64 = runs.iter().map(|r| r.points).sum();
        (runs.len(), points)
    };
    let before = dump();
    assert!(store_file.exists());

    for (mode, expected) in [
        ("oversized", "larger than the limit"),
        ("invalid", "not a valid message"),
        // `dotdot` and `abs-file` (one bad run directory, one bad file path) are no longer
        // refused whole: the bad item is left out alone (`hub_tolerance`).
        ("wrong-type", "subscribed"),
        ("greeting", "Welcome to gpu-01"),
        ("old-version", "not compatible"),
    ] {
        let out = broken(mode, hub_dir.path());
        assert_eq!(out.status.code(), Some(2), "{mode}: {}", show(&out));
        let err = stderr(&out);
        assert!(
            err.contains(expected),
            "{mode}: expected {expected:?} in:\n{err}"
        );
        assert!(
            !err.contains("reconnecting"),
            "{mode}: a broken agent is not retried:\n{err}"
        );
        assert_eq!(dump(), before, "{mode}: the store changed");
    }
}

#[test]
fn a_server_that_never_answers_is_reported_not_retried_forever() {
    // A port nothing listens on: following live must still end with the reason.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let home = ClientHome::empty();
    let hub_dir = tempfile::tempdir().unwrap();
    let started = std::time::Instant::now();
    let out = hub(home.path(), hub_dir.path())
        .args(["connect", &format!("me@127.0.0.1:{port}"), "--no-ui"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", show(&out));
    let err = stderr(&out);
    assert!(err.contains(&port.to_string()), "names the address: {err}");
    assert!(
        err.contains("reconnecting"),
        "a network failure is retried a few times: {err}"
    );
    assert!(started.elapsed() < std::time::Duration::from_secs(30));
}
