//! Managing remotes as a user does, with hub processes side by side on one store: a `ui` and a
//! `connect` following remotes of a real sshd and a local root (one process per remote, the
//! other taking over when it stops), a one-off `sync` beside the follower, `remotes rm`,
//! `rename`, `pause`, `resume` from the command line and the same (plus "sync now") through the
//! dashboard's API, and an outage (sshd stopped with its sessions) shown on the runs.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use runicorn_tests::http::Request;
use runicorn_tests::hub::{agent_path, hub, show, write_runs};
use runicorn_tests::output_within;
use runicorn_tests::serving_hub::ServingHub;
use runicorn_tests::sshd::Sshd;
use runicorn_tests::wait_until;
use serde_json::Value;

/// Longest a CLI command of these scenarios may take.
const COMMAND_LIMIT: Duration = Duration::from_secs(60);
/// How soon a change made by one process must show in another (followers look every 2 s).
const NOTICE_WITHIN: f64 = 20.0;

/// A hub process without a dashboard, interrupted (Ctrl-C) or killed when dropped.
struct Background {
    child: Child,
    stderr: tempfile::NamedTempFile,
}

impl Background {
    fn start(mut cmd: Command) -> Background {
        let stderr = tempfile::NamedTempFile::new().unwrap();
        let child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(stderr.reopen().unwrap())
            .spawn()
            .unwrap();
        Background { child, stderr }
    }

    fn stderr(&self) -> String {
        std::fs::read_to_string(self.stderr.path()).unwrap_or_default()
    }

    /// Ctrl-C; it must exit 0 within 20 s.
    fn interrupt(mut self) {
        // SAFETY: kill(2) on our own child's pid.
        unsafe {
            libc::kill(self.child.id() as libc::pid_t, libc::SIGINT);
        }
        let ended = wait_until(20.0, || self.child.try_wait().unwrap().is_some());
        assert!(ended, "Ctrl-C did not stop it:\n{}", self.stderr());
        let status = self.child.wait().unwrap();
        assert!(status.success(), "exit {status}:\n{}", self.stderr());
    }
}

impl Drop for Background {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The remote named `name` as `GET /api/remotes` lists it (`Null` when it is not listed).
fn remote(s: &ServingHub, name: &str) -> Value {
    s.json("/api/remotes")["remotes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["name"] == name)
        .cloned()
        .unwrap_or(Value::Null)
}

/// The `remote_state` of every run of `remote` listed by the dashboard.
fn run_states(s: &ServingHub, remote: &str) -> Vec<String> {
    s.json(&format!("/api/runs?remote={remote}&limit=100"))["runs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["remote_state"].as_str().unwrap().to_owned())
        .collect()
}

/// Waits until the remote `name` is in `state`, followed by a process whose name starts with
/// `follower` (`None`: by nobody).
fn wait_state(s: &ServingHub, name: &str, state: &str, follower: Option<&str>) {
    let ok = wait_until(NOTICE_WITHIN, || {
        let r = remote(s, name);
        r["state"] == state
            && match follower {
                Some(f) => r["follower"].as_str().is_some_and(|x| x.starts_with(f)),
                None => r["follower"].is_null(),
            }
    });
    assert!(
        ok,
        "{name} not {state} (follower {follower:?}): {}\n--- hub\n{}",
        remote(s, name),
        s.stderr()
    );
}

/// `runicorn-hub ARGS` in the scenario's HOME and store; must succeed. Returns stdout.
fn run_hub(home: &Path, hub_dir: &Path, args: &[&str]) -> String {
    let out = output_within(hub(home, hub_dir).args(args), COMMAND_LIMIT);
    assert!(out.status.success(), "{args:?}: {}", show(&out));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A state-changing request to the dashboard with its token, as the page sends it.
fn write(s: &ServingHub, method: &str, target: &str, body: Option<Value>) -> (u16, Value) {
    let html = s.get("/").text();
    let marker = r#"<meta name="runicorn-token" content=""#;
    let at = html.find(marker).unwrap() + marker.len();
    let token = &html[at..at + html[at..].find('"').unwrap()];
    let mut req = Request::new(method, target)
        .header("X-Runicorn-Token", token)
        .header("Origin", &format!("http://{}", s.addr));
    if let Some(body) = body {
        req = req.json(&body);
    }
    let r = req.send(s.addr);
    let json = serde_json::from_slice(&r.body).unwrap_or(Value::Null);
    (r.status, json)
}

#[test]
fn a_ui_and_a_connect_share_remotes_and_the_cli_manages_them() {
    let sshd = Sshd::start();
    let home = sshd.client_home();
    let hub_dir = tempfile::tempdir().unwrap();
    let ssh_root = tempfile::tempdir().unwrap();
    let local_root = tempfile::tempdir().unwrap();
    write_runs(ssh_root.path(), 2, |_| 5);
    write_runs(local_root.path(), 3, |_| 5);
    let agent = agent_path();
    let agent = agent.to_str().unwrap();

    // A dashboard with no remote yet.
    let mut cmd = hub(home.path(), hub_dir.path());
    cmd.args(["ui", "--port", "0"]);
    let ui = ServingHub::start(cmd);
    let ui_name = format!("ui pid {}", ui.pid());

    // `connect` follows gpu; the ui sees it but leaves it to connect.
    let mut cmd = hub(home.path(), hub_dir.path());
    cmd.args(["connect", &sshd.spec(), "--name", "gpu", "--no-ui"])
        .args(["--accept-new-host-key", "--agent", agent, "--root"])
        .arg(ssh_root.path());
    let connect = Background::start(cmd);
    let connect_name = format!("connect pid {}", connect.child.id());
    wait_state(&ui, "gpu", "live", Some(&connect_name));
    assert!(wait_until(NOTICE_WITHIN, || run_states(&ui, "gpu") == ["live", "live"]));

    // A one-off sync of gpu beside its follower succeeds and leaves it live.
    run_hub(home.path(), hub_dir.path(), &["sync", "gpu"]);
    let after = remote(&ui, "gpu");
    assert_eq!(after["state"], "live", "{after}");
    assert!(after["last_error"].is_null(), "{after}");
    std::thread::sleep(Duration::from_secs(3));
    wait_state(&ui, "gpu", "live", Some(&connect_name));

    // "Sync now" on the ui's dashboard reaches connect, which follows gpu: a round at once.
    let before = remote(&ui, "gpu")["last_sync_at"].as_f64().unwrap();
    let (status, answer) = write(&ui, "POST", "/api/remotes/gpu/sync", None);
    assert_eq!(status, 200, "{answer}");
    assert!(
        wait_until(NOTICE_WITHIN, || {
            let r = remote(&ui, "gpu");
            r["last_sync_at"].as_f64().unwrap() > before && r["sync_requested_at"].is_null()
        }),
        "connect did not sync on request: {}\n{}",
        remote(&ui, "gpu"),
        connect.stderr()
    );

    // A remote added by another command is picked up by the running ui.
    run_hub(
        home.path(),
        hub_dir.path(),
        &[
            "connect",
            &format!("local:{}", local_root.path().display()),
            "--name",
            "lab",
            "--once",
            "--no-ui",
            "--agent",
            agent,
        ],
    );
    wait_state(&ui, "lab", "live", Some(&ui_name));

    // A second follower of lab waits instead of following it too, and stops cleanly.
    let mut cmd = hub(home.path(), hub_dir.path());
    cmd.args(["connect", &format!("local:{}", local_root.path().display())])
        .args(["--name", "lab", "--no-ui", "--agent", agent]);
    let waiting = Background::start(cmd);
    assert!(
        wait_until(NOTICE_WITHIN, || waiting
            .stderr()
            .contains("followed by ui pid")),
        "{}",
        waiting.stderr()
    );
    std::thread::sleep(Duration::from_secs(3));
    wait_state(&ui, "lab", "live", Some(&ui_name));
    waiting.interrupt();
    wait_state(&ui, "lab", "live", Some(&ui_name));

    // connect crashes (SIGKILL: its lease is not given up): the ui takes gpu over within
    // seconds, as its process is gone.
    // SAFETY: kill(2) on our own child's pid.
    unsafe {
        libc::kill(connect.child.id() as libc::pid_t, libc::SIGKILL);
    }
    wait_state(&ui, "gpu", "live", Some(&ui_name));
    drop(connect);

    // Pause and resume.
    let out = run_hub(home.path(), hub_dir.path(), &["remotes", "pause", "lab"]);
    assert!(out.contains("paused remote lab"), "{out}");
    wait_state(&ui, "lab", "paused", None);
    assert!(run_states(&ui, "lab").iter().all(|s| s == "paused"));
    run_hub(home.path(), hub_dir.path(), &["remotes", "resume", "lab"]);
    wait_state(&ui, "lab", "live", Some(&ui_name));

    // Rename: the runs follow.
    run_hub(
        home.path(),
        hub_dir.path(),
        &["remotes", "rename", "lab", "lab2"],
    );
    assert!(remote(&ui, "lab").is_null());
    assert_eq!(run_states(&ui, "lab2").len(), 3);
    wait_state(&ui, "lab2", "live", Some(&ui_name));
    let out = output_within(
        hub(home.path(), hub_dir.path()).args(["remotes", "rename", "lab2", "gpu"]),
        COMMAND_LIMIT,
    );
    assert_eq!(out.status.code(), Some(2), "{}", show(&out));
    assert!(show(&out).contains("exists already"), "{}", show(&out));

    // rm keeps the runs, marked; the ui lets the remote go; `sync` leaves it out.
    let out = run_hub(home.path(), hub_dir.path(), &["remotes", "rm", "gpu"]);
    assert!(out.contains("stay in the store"), "{out}");
    wait_state(&ui, "gpu", "removed", None);
    assert_eq!(run_states(&ui, "gpu"), ["removed", "removed"]);
    let listed = run_hub(home.path(), hub_dir.path(), &["remotes"]);
    assert!(
        listed
            .lines()
            .any(|l| l.starts_with("gpu") && l.contains("removed")),
        "{listed}"
    );
    let out = output_within(
        hub(home.path(), hub_dir.path()).args(["sync", "gpu"]),
        COMMAND_LIMIT,
    );
    assert_eq!(out.status.code(), Some(2), "{}", show(&out));
    assert!(show(&out).contains("was removed"), "{}", show(&out));
    let synced = run_hub(home.path(), hub_dir.path(), &["sync", "--json"]);
    let synced: Value = serde_json::from_str(&synced).unwrap();
    assert_eq!(synced.as_array().unwrap().len(), 1, "{synced}");
    assert_eq!(synced[0]["remote"], "lab2");

    // --forget-runs asks first; without a terminal it needs --yes.
    let out = output_within(
        hub(home.path(), hub_dir.path()).args(["remotes", "rm", "lab2", "--forget-runs"]),
        COMMAND_LIMIT,
    );
    assert_eq!(out.status.code(), Some(2), "{}", show(&out));
    assert!(show(&out).contains("--yes"), "{}", show(&out));
    assert_eq!(run_states(&ui, "lab2").len(), 3);
    run_hub(
        home.path(),
        hub_dir.path(),
        &["remotes", "rm", "lab2", "--forget-runs", "--yes"],
    );
    assert!(run_states(&ui, "lab2").is_empty());
    assert!(remote(&ui, "lab2").is_null());
    ui.interrupt();
}

#[test]
fn the_dashboard_manages_remotes_and_sync_now_reaches_the_follower() {
    let home = tempfile::tempdir().unwrap();
    let hub_dir = tempfile::tempdir().unwrap();
    let root = tempfile::tempdir().unwrap();
    write_runs(root.path(), 2, |_| 5);
    let agent = agent_path();
    run_hub(
        home.path(),
        hub_dir.path(),
        &[
            "connect",
            &format!("local:{}", root.path().display()),
            "--name",
            "lab",
            "--once",
            "--no-ui",
            "--agent",
            agent.to_str().unwrap(),
        ],
    );
    let mut cmd = hub(home.path(), hub_dir.path());
    cmd.args(["ui", "--port", "0"]);
    let ui = ServingHub::start(cmd);
    let ui_name = format!("ui pid {}", ui.pid());
    wait_state(&ui, "lab", "live", Some(&ui_name));

    // Writes need the token.
    let refused = ui.get("/api/remotes/lab/pause");
    assert_eq!(refused.status, 405, "{}", refused.text());
    let refused = Request::new("POST", "/api/remotes/lab/pause").send(ui.addr);
    assert_eq!(refused.status, 403, "{}", refused.text());

    // Sync now: the follower runs a round at once (its safety interval is 30 s).
    std::thread::sleep(Duration::from_secs(2));
    let before = remote(&ui, "lab")["last_sync_at"].as_f64().unwrap();
    let (status, answer) = write(&ui, "POST", "/api/remotes/lab/sync", None);
    assert_eq!(status, 200, "{answer}");
    assert!(
        wait_until(NOTICE_WITHIN, || remote(&ui, "lab")["last_sync_at"]
            .as_f64()
            .unwrap()
            > before),
        "no round after sync now: {}",
        remote(&ui, "lab")
    );
    assert!(remote(&ui, "lab")["sync_requested_at"].is_null());

    // Pause, sync refused while paused, resume.
    let (status, answer) = write(&ui, "POST", "/api/remotes/lab/pause", None);
    assert_eq!(
        (status, &answer["paused"]),
        (200, &Value::Bool(true)),
        "{answer}"
    );
    wait_state(&ui, "lab", "paused", None);
    let (status, answer) = write(&ui, "POST", "/api/remotes/lab/sync", None);
    assert_eq!(status, 409, "{answer}");
    let (status, _) = write(&ui, "POST", "/api/remotes/lab/resume", None);
    assert_eq!(status, 200);
    wait_state(&ui, "lab", "live", Some(&ui_name));

    // Rename: a bad name is a 400, an unknown remote a 404.
    let (status, answer) = write(
        &ui,
        "POST",
        "/api/remotes/lab/rename",
        Some(serde_json::json!({"name": "no/slash"})),
    );
    assert_eq!(status, 400, "{answer}");
    let (status, _) = write(
        &ui,
        "POST",
        "/api/remotes/nope/rename",
        Some(serde_json::json!({"name": "x"})),
    );
    assert_eq!(status, 404);
    let (status, answer) = write(
        &ui,
        "POST",
        "/api/remotes/lab/rename",
        Some(serde_json::json!({"name": "lab-b"})),
    );
    assert_eq!(
        (status, answer["name"].as_str()),
        (200, Some("lab-b")),
        "{answer}"
    );

    // Remove (runs kept), then forget.
    let (status, answer) = write(&ui, "DELETE", "/api/remotes/lab-b", None);
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["remote"]["state"], "removed", "{answer}");
    wait_state(&ui, "lab-b", "removed", None);
    assert_eq!(run_states(&ui, "lab-b"), ["removed", "removed"]);
    let (status, answer) = write(&ui, "DELETE", "/api/remotes/lab-b?forget_runs=true", None);
    assert_eq!(
        (status, &answer["forgotten"]),
        (200, &Value::Bool(true)),
        "{answer}"
    );
    assert!(run_states(&ui, "lab-b").is_empty());
    let (status, _) = write(&ui, "DELETE", "/api/remotes/lab-b", None);
    assert_eq!(status, 404);
    ui.interrupt();
}

#[test]
fn an_outage_turns_the_runs_offline_and_says_when_the_hub_last_heard() {
    let sshd = Sshd::start();
    let home = sshd.client_home();
    home.trust(&sshd);
    let hub_dir = tempfile::tempdir().unwrap();
    let root = tempfile::tempdir().unwrap();
    write_runs(root.path(), 2, |_| 5);
    let agent = agent_path();
    run_hub(
        home.path(),
        hub_dir.path(),
        &[
            "connect",
            &sshd.spec(),
            "--name",
            "gpu",
            "--once",
            "--no-ui",
            "--agent",
            agent.to_str().unwrap(),
            "--root",
            root.path().to_str().unwrap(),
        ],
    );
    let mut cmd = hub(home.path(), hub_dir.path());
    cmd.args(["ui", "--port", "0"]);
    let ui = ServingHub::start(cmd);
    wait_state(&ui, "gpu", "live", Some("ui pid"));
    assert!(wait_until(NOTICE_WITHIN, || run_states(&ui, "gpu") == ["live", "live"]));

    // sshd stops, its sessions killed: every run of gpu turns offline within seconds.
    drop(sshd);
    assert!(
        wait_until(NOTICE_WITHIN, || run_states(&ui, "gpu")
            == ["offline", "offline"]),
        "{:?}\n{}",
        run_states(&ui, "gpu"),
        ui.stderr()
    );
    let run = &ui.json("/api/runs?remote=gpu")["runs"][0];
    let heard = run["remote_heard_at"].as_f64().unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    assert!(heard <= now && now - heard < 120.0, "{run}");
    ui.interrupt();
}

/// A remote known only from an imported bundle says so: `imported` in the API (the remote and its
/// runs) and in `remotes`, heard from when the bundle was made; a running `ui` leaves it alone and
/// "sync now" is refused with what to do. Once `connect` gives the name an address, the same `ui`
/// follows it and it is live, its runs merged, not doubled.
#[test]
fn an_imported_remote_says_so_until_connect_takes_its_name_over() {
    let home = tempfile::tempdir().unwrap();
    let hub_dir = tempfile::tempdir().unwrap();
    let root = tempfile::tempdir().unwrap();
    let carried = tempfile::tempdir().unwrap();
    write_runs(root.path(), 2, |i| 5 + i);
    let agent = agent_path();
    let agent = agent.to_str().unwrap();
    let bundle = carried.path().join("gpu.rbundle");
    let exported = output_within(
        Command::new(runicorn_tests::binary("runicorn-agent"))
            .arg("export")
            .arg("--root")
            .arg(root.path())
            .args(["--name", "gpu", "-o"])
            .arg(&bundle),
        COMMAND_LIMIT,
    );
    assert!(exported.status.success(), "{}", show(&exported));
    let report: Value = serde_json::from_str(&run_hub(
        home.path(),
        hub_dir.path(),
        &[
            "import",
            "--json",
            "--agent",
            agent,
            bundle.to_str().unwrap(),
        ],
    ))
    .unwrap();
    let made = report["bundles"][0]["created_at"].as_f64().unwrap();

    let mut cmd = hub(home.path(), hub_dir.path());
    cmd.args(["ui", "--port", "0"]);
    let ui = ServingHub::start(cmd);
    // Several of the ui's beats (2 s): it claims nothing, and nothing changes.
    std::thread::sleep(Duration::from_secs(5));
    let r = remote(&ui, "gpu");
    assert_eq!(r["state"], "imported", "{r}\n{}", ui.stderr());
    assert!(r["follower"].is_null(), "{r}");
    assert_eq!(r["heard_at"].as_f64(), Some(made), "{r}");
    assert_eq!(run_states(&ui, "gpu"), ["imported", "imported"]);
    let runs = ui.json("/api/runs?remote=gpu")["runs"].clone();
    for run in runs.as_array().unwrap() {
        assert_eq!(run["remote_heard_at"].as_f64(), Some(made), "{run}");
    }
    let (status, body) = write(&ui, "POST", "/api/remotes/gpu/sync", None);
    assert_eq!(status, 409, "{body}");
    assert!(
        body.to_string().contains("runicorn-hub connect"),
        "the refusal says what to do: {body}"
    );

    let table = run_hub(home.path(), hub_dir.path(), &["remotes"]);
    assert!(table.contains("imported"), "{table}");
    assert!(table.contains("known from imported bundles"), "{table}");
    let listed: Value = serde_json::from_str(&run_hub(
        home.path(),
        hub_dir.path(),
        &["remotes", "--json"],
    ))
    .unwrap();
    assert_eq!(listed[0]["state"], "imported", "{listed}");

    // `connect` of the same name: an address to follow; the running ui takes it up.
    run_hub(
        home.path(),
        hub_dir.path(),
        &[
            "connect",
            &format!("local:{}", root.path().display()),
            "--name",
            "gpu",
            "--agent",
            agent,
            "--once",
            "--no-ui",
            "--prefetch",
            "none",
        ],
    );
    wait_state(&ui, "gpu", "live", Some("ui pid"));
    assert!(
        wait_until(NOTICE_WITHIN, || run_states(&ui, "gpu") == ["live", "live"]),
        "{:?}\n{}",
        run_states(&ui, "gpu"),
        ui.stderr()
    );
    let table = run_hub(home.path(), hub_dir.path(), &["remotes"]);
    assert!(!table.contains("imported"), "{table}");
}
