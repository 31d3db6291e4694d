//! The commands that serve the dashboard, as a user runs them: `runicorn-hub ui` following every
//! remembered remote (a local root and a real sshd) while serving them, files fetched on demand
//! over SFTP and from a local root, `connect` serving the dashboard unless `--no-ui`, `demo`
//! serving its sample runs, and a taken port named in the error.

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use runicorn_protocol::run_format::{RunOutcome, RunSpec, RunWriter};
use runicorn_tests::http::{get, Request};
use runicorn_tests::hub::{agent_path, hub, show, write_runs};
use runicorn_tests::serving_hub::ServingHub;
use runicorn_tests::sshd::{ClientHome, Sshd};
use runicorn_tests::wait_until;
use serde_json::Value;

type Serving = ServingHub;

/// `total` of a listing answer.
fn total(s: &Serving, target: &str) -> u64 {
    s.json(target)["total"].as_u64().unwrap()
}

/// A run holding one PNG file in its manifest.
fn write_run_with_image(root: &Path, run_id: &str, png: &[u8]) {
    let mut spec = RunSpec::new(root, "runicorn-tests");
    spec.path = Some("vision/samples".into());
    spec.run_id = Some(run_id.into());
    let mut w = RunWriter::create(&spec).unwrap();
    w.log_metrics(&[("loss", 1.0)], Some(1), None).unwrap();
    w.log_image("pred", png, "png", Some(1), None).unwrap();
    w.finish(RunOutcome::finished()).unwrap();
}

const PNG: &[u8] = b"\x89PNG\r\n\x1a\nnot really an image, but bytes to compare";

/// The first file of a run's detail, fetched through its `url`.
fn fetch_first_file(s: &Serving, run: &Value) -> runicorn_tests::http::Response {
    let id = run["key"].as_i64().unwrap();
    let detail = s.json(&format!("/api/runs/{id}"));
    let file = detail["files"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["path"].as_str().unwrap().ends_with(".png"))
        .unwrap_or_else(|| panic!("no image in {detail}"))
        .clone();
    get(s.addr, file["url"].as_str().unwrap())
}

#[test]
fn ui_follows_every_remembered_remote_and_fetches_files_on_demand() {
    let sshd = Sshd::start();
    let home = sshd.client_home();
    let hub_dir = tempfile::tempdir().unwrap();
    let local_root = tempfile::tempdir().unwrap();
    let ssh_root = tempfile::tempdir().unwrap();
    write_runs(local_root.path(), 2, |_| 5);
    write_runs(ssh_root.path(), 3, |_| 5);
    let remember = |target: &str, root: Option<&Path>, extra: &[&str]| {
        let mut cmd = hub(home.path(), hub_dir.path());
        cmd.args(["connect", target, "--once", "--no-ui", "--agent"])
            .arg(agent_path());
        if let Some(root) = root {
            cmd.arg("--root").arg(root);
        }
        let out = cmd.args(extra).output().unwrap();
        assert!(out.status.success(), "{}", show(&out));
    };
    remember(
        &format!("local:{}", local_root.path().display()),
        None,
        &["--name", "laptop"],
    );
    remember(
        &sshd.spec(),
        Some(ssh_root.path()),
        &["--name", "gpu", "--accept-new-host-key"],
    );

    let mut cmd = hub(home.path(), hub_dir.path());
    cmd.args(["ui", "--port", "0"]);
    let s = Serving::start(cmd);
    assert_eq!(total(&s, "/api/runs"), 5);
    assert!(
        wait_until(30.0, || {
            let remotes = s.json("/api/remotes");
            let list = remotes["remotes"].as_array().unwrap();
            list.len() == 2 && list.iter().all(|r| r["connected"] == true)
        }),
        "both remotes followed: {}",
        s.json("/api/remotes")
    );

    // New runs on both servers show up while the dashboard is open.
    write_run_with_image(ssh_root.path(), "img00001", PNG);
    write_run_with_image(local_root.path(), "img00002", PNG);
    assert!(
        wait_until(30.0, || total(&s, "/api/runs?path=vision") == 2),
        "the new runs did not arrive: {}",
        s.json("/api/runs?path=vision")
    );

    // A sync may have caught a run between its creation and its image: wait for both finished.
    assert!(
        wait_until(30.0, || {
            let page = s.json("/api/runs?path=vision");
            page["runs"]
                .as_array()
                .unwrap()
                .iter()
                .all(|r| r["status"] == "finished")
        }),
        "the new runs did not finish: {}",
        s.json("/api/runs?path=vision")
    );
    // Their images come over SFTP (gpu) and from the local root (laptop), bytes intact.
    for remote in ["gpu", "laptop"] {
        let page = s.json(&format!("/api/runs?path=vision&remote={remote}"));
        let r = fetch_first_file(&s, &page["runs"][0]);
        assert_eq!(r.status, 200, "{remote}: {}", r.text());
        assert_eq!(r.body, PNG, "{remote}");
        assert_eq!(r.header("content-type"), Some("image/png"), "{remote}");
    }
    s.interrupt();
}

#[test]
fn ui_on_a_taken_port_exits_2_naming_the_port() {
    let home = ClientHome::empty();
    let hub_dir = tempfile::tempdir().unwrap();
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port().to_string();
    let out = hub(home.path(), hub_dir.path())
        .args(["ui", "--offline", "--port", &port])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", show(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains(&port), "{err}");
    assert!(err.contains("--port"), "{err}");
}

#[test]
fn connect_serves_the_dashboard_unless_told_not_to() {
    let home = ClientHome::empty();
    let hub_dir = tempfile::tempdir().unwrap();
    let root = tempfile::tempdir().unwrap();
    write_runs(root.path(), 2, |_| 5);
    let target = format!("local:{}", root.path().display());

    let mut cmd = hub(home.path(), hub_dir.path());
    cmd.args(["connect", &target, "--ui-port", "0", "--agent"])
        .arg(agent_path());
    let s = Serving::start(cmd);
    let page = get(s.addr, "/");
    assert_eq!(page.status, 200);
    assert!(page.text().contains("runicorn-token"), "{}", page.text());
    assert!(wait_until(30.0, || total(&s, "/api/runs") == 2));
    s.interrupt();

    let mut child = hub(home.path(), hub_dir.path())
        .args(["connect", &target, "--no-ui", "--agent"])
        .arg(agent_path())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_secs(2));
    unsafe {
        libc::kill(child.id() as i32, libc::SIGINT);
    }
    let status = child.wait().unwrap();
    let mut err = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut err).unwrap();
    assert!(status.success(), "{err}");
    assert!(err.contains("following live"), "{err}");
    assert!(!err.contains("dashboard:"), "{err}");
}

#[test]
fn demo_serves_its_sample_runs_with_their_images() {
    let home = ClientHome::empty();
    let hub_dir = tempfile::tempdir().unwrap();
    let root = tempfile::tempdir().unwrap();
    let mut cmd = hub(home.path(), hub_dir.path());
    cmd.args(["demo", "--port", "0", "--dir"]).arg(root.path());
    let s = Serving::start(cmd);
    assert!(
        wait_until(60.0, || total(&s, "/api/runs") == 7),
        "{}",
        s.json("/api/runs")
    );
    // Two runs train: the SDK-written "live" one and a real command under `runicorn-agent run`.
    let running = s.json("/api/runs?status=running&sort=alias&order=asc");
    let aliases: Vec<&str> = running["runs"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|r| r["alias"].as_str())
        .collect();
    assert_eq!(aliases, ["live", "wrapped-command"], "{running}");
    // The wrapped command's telemetry (CPU and memory of a real process) reaches the System tab.
    let wrapped = running["runs"][1]["key"].as_i64().unwrap();
    let cpu_samples = || {
        let sys = s.json(&format!("/api/runs/{wrapped}/system"));
        sys["keys"]
            .as_array()
            .and_then(|ks| ks.iter().find(|k| k["key"] == "sys/cpu_percent"))
            .and_then(|k| k["values"].as_array().map(|v| v.len()))
            .unwrap_or(0)
    };
    assert!(
        wait_until(30.0, || cpu_samples() >= 2),
        "no telemetry of the wrapped run: {}",
        s.json(&format!("/api/runs/{wrapped}/system"))
    );
    let baseline = s.json("/api/runs?q=baseline");
    let r = fetch_first_file(&s, &baseline["runs"][0]);
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(r.body.starts_with(b"\x89PNG\r\n\x1a\n"));
    // The page carries its token and refuses a rebinding attempt.
    let evil = Request::get("/api/runs")
        .header("Host", "evil.example")
        .send(s.addr);
    assert_eq!(evil.status, 403);
    s.interrupt();
}
