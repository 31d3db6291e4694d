//! The fleet view (issue 15): a real `runicorn-agent run -- <sleeping child>` on the "server",
//! the stand-in `nvidia-smi` of the agent's tests on the PATH of the agent the hub starts
//! (over a real sshd, or as a local child), its CSV listing the child's pid on GPU 3 of the
//! 8-GPU host; after a real sync, `GET /api/fleet` and `runicorn-hub fleet --json` show GPU 3
//! held by that run and the other seven free. An agent whose nvidia-smi hangs reports the error
//! while the hub follows it without holding up the sync; a one-off `sync` waits at most a second
//! for the host sample (a 5 s nvidia-smi: the runs synced, the last sample kept), and an agent
//! from before the `host` capability syncs as before.

use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use runicorn_tests::dashboard::ServedDashboard;
use runicorn_tests::hub::{agent_path, connect_local, connect_ssh_once, hub, json_of, show};
use runicorn_tests::sshd::Sshd;
use runicorn_tests::{agent_run, ls_json, output_within, wait_until, workspace_root};
use serde_json::Value;

/// GPU 3's uuid in the 8-GPU fixture.
const GPU_3: &str = "GPU-25b2116a-ae6c-4f55-8e0c-3f08e12656f1";

fn fixtures() -> PathBuf {
    workspace_root().join("agent/tests/fixtures/nvidia-smi")
}

/// A directory holding the stand-in `nvidia-smi` answering as the 8-GPU host, where `pid` is
/// the one compute process (on GPU 3, 93 % busy) and every other GPU idle (utilisation 0, or
/// GPU 6's `[Not Supported]` kept).
fn stand_in_with_gpu_3_used_by(pid: u32) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(
        fixtures().join("stand-in.sh"),
        dir.path().join("nvidia-smi"),
    )
    .unwrap();
    let recorded = std::fs::read_to_string(fixtures().join("host-8gpu/query-gpu.csv")).unwrap();
    let gpus: Vec<String> = recorded
        .lines()
        .map(|line| {
            let mut fields: Vec<&str> = line.split(", ").collect();
            if fields[3] != "[Not Supported]" {
                fields[3] = if fields[0] == "3" { "93" } else { "0" };
            }
            fields.join(", ")
        })
        .collect();
    std::fs::write(dir.path().join("query-gpu.csv"), gpus.join("\n") + "\n").unwrap();
    std::fs::write(
        dir.path().join("query-compute-apps.csv"),
        format!("{pid}, {GPU_3}, 20480\n"),
    )
    .unwrap();
    dir
}

/// `runicorn-agent run --path fleet/demo -- sh -c 'echo $$ > PIDFILE; exec sleep 300'`: a real
/// run whose command is a sleeping child of the wrapper; killed whole when dropped.
struct SleepingRun {
    wrapper: Child,
    child_pid: u32,
    run_id: String,
}

impl SleepingRun {
    fn start(root: &Path, scratch: &Path) -> SleepingRun {
        let pidfile = scratch.join("child.pid");
        let script = format!("echo $$ > {}; exec sleep 300", pidfile.display());
        let wrapper = agent_run(root, &["--path", "fleet/demo"], &["sh", "-c", &script])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("runicorn-agent run starts");
        let mut run = SleepingRun {
            wrapper,
            child_pid: 0,
            run_id: String::new(),
        };
        let started = wait_until(30.0, || {
            let pid = std::fs::read_to_string(&pidfile).ok();
            run.child_pid = pid.and_then(|p| p.trim().parse().ok()).unwrap_or(0);
            let runs = ls_json(root, &[]);
            let running = runs.iter().find(|r| r["status"] == "running");
            if let Some(r) = running {
                run.run_id = r["run_id"].as_str().unwrap_or_default().to_owned();
            }
            run.child_pid != 0 && !run.run_id.is_empty()
        });
        assert!(started, "the run did not start: {:?}", ls_json(root, &[]));
        run
    }
}

impl Drop for SleepingRun {
    fn drop(&mut self) {
        // SAFETY: kill has no memory preconditions; both processes are this test's.
        unsafe {
            libc::kill(self.child_pid as i32, libc::SIGKILL);
            libc::kill(self.wrapper.id() as i32, libc::SIGKILL);
        }
        let _ = self.wrapper.wait();
    }
}

/// The remote named `name` in a fleet answer.
fn remote<'a>(fleet: &'a Value, name: &str) -> &'a Value {
    fleet["remotes"]
        .as_array()
        .and_then(|r| r.iter().find(|r| r["name"] == name))
        .unwrap_or_else(|| panic!("no remote {name} in {fleet:#}"))
}

fn fleet_json(home: &Path, hub_dir: &Path) -> Value {
    json_of(hub(home, hub_dir).args(["fleet", "--json"]))
}

#[test]
fn gpu_3_held_by_a_real_run_and_seven_free_over_sshd() {
    let root = tempfile::tempdir().unwrap();
    let scratch = tempfile::tempdir().unwrap();
    let run = SleepingRun::start(root.path(), scratch.path());
    let smi = stand_in_with_gpu_3_used_by(run.child_pid);
    let sshd = Sshd::builder()
        .remote_path(&format!("{}:/usr/bin:/bin", smi.path().display()))
        .start();
    let home = sshd.client_home();
    home.trust(&sshd);
    let hub_dir = tempfile::tempdir().unwrap();
    connect_ssh_once(&home, hub_dir.path(), &sshd, root.path(), &[]);

    let cli = fleet_json(home.path(), hub_dir.path());
    let gpu = remote(&cli, "gpu");
    assert_eq!(gpu["sampled"], true, "{cli:#}");
    assert_eq!(gpu["gpu_error"], Value::Null);
    let gpus = gpu["gpus"].as_array().unwrap();
    assert_eq!(gpus.len(), 8);
    let three = &gpus[3];
    assert_eq!(three["index"], 3);
    assert_eq!(three["free"], false);
    assert_eq!(three["util_percent"], 93.0);
    assert_eq!(three["processes"][0]["pid"], run.child_pid);
    assert_eq!(three["processes"][0]["used_mib"], 20480.0);
    let holder = &three["runs"][0];
    assert_eq!(holder["run_id"], run.run_id.as_str(), "{three:#}");
    assert_eq!(holder["path"], "fleet/demo");
    assert_eq!(holder["ref"], format!("gpu/{}", run.run_id));
    assert!(holder["key"].is_i64(), "the run is synced: {holder}");
    let free: Vec<u64> = gpus
        .iter()
        .filter(|g| g["free"] == true)
        .map(|g| g["index"].as_u64().unwrap())
        .collect();
    assert_eq!(free, vec![0, 1, 2, 4, 5, 6, 7]);
    assert_eq!(gpu["free_gpus"], 7);
    assert_eq!(cli["totals"]["gpus"], 8);
    assert_eq!(cli["totals"]["free_gpus"], 7);
    assert_eq!(cli["totals"]["gpus_with_runs"], 1);
    assert!(gpu["cpu_count"].as_u64().is_some_and(|n| n >= 1));

    // The API answers the same, and the holder's key opens its run.
    let dashboard = ServedDashboard::start(hub_dir.path(), None);
    let api = dashboard.json("/api/fleet");
    assert_eq!(remote(&api, "gpu")["gpus"], gpu["gpus"]);
    assert_eq!(api["totals"], cli["totals"]);
    let key = holder["key"].as_i64().unwrap();
    let detail = dashboard.json(&format!("/api/runs/{key}"));
    assert_eq!(detail["run_id"], run.run_id.as_str(), "{detail:#}");

    // The table says the same for people.
    let out = hub(home.path(), hub_dir.path())
        .arg("fleet")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", show(&out));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("7 of 8 GPUs free"), "{text}");
    assert!(text.contains(&format!("gpu/{}", run.run_id)), "{text}");
}

/// `runicorn-hub connect local:ROOT --once` with `agent` and `PATH` for the agent it starts.
fn sync_local(home: &Path, hub_dir: &Path, root: &Path, agent: &Path, env: &[(&str, &str)]) {
    let mut cmd = connect_local(home, hub_dir, root, agent);
    cmd.args(["--once", "--no-ui", "--name", "box", "--prefetch", "none"])
        .envs(env.iter().copied());
    let out = output_within(&mut cmd, Duration::from_secs(120));
    assert!(out.status.success(), "{}", show(&out));
}

fn path_with(dir: &Path) -> String {
    format!("{}:/usr/bin:/bin", dir.display())
}

/// Makes the stand-in in `dir` an `nvidia-smi` that sleeps `seconds` and prints nothing.
fn make_nvidia_smi_sleep(dir: &Path, seconds: u32) {
    use std::os::unix::fs::PermissionsExt;
    let script = dir.join("nvidia-smi");
    // A new file renamed over the old one: never a half-written script.
    let fresh = dir.join("nvidia-smi.new");
    std::fs::write(&fresh, format!("#!/bin/sh\nexec sleep {seconds}\n")).unwrap();
    std::fs::set_permissions(&fresh, std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::rename(&fresh, &script).unwrap();
}

/// A finished run `id` under `root` (path `fleet/later`).
fn write_finished_run(root: &Path, id: &str) {
    use runicorn_protocol::run_format::{RunOutcome, RunSpec, RunWriter};
    let mut spec = RunSpec::new(root, "runicorn-tests");
    spec.path = Some("fleet/later".into());
    spec.run_id = Some(id.into());
    let mut w = RunWriter::create(&spec).unwrap();
    w.log_metrics(&[("loss", 1.0)], None, None).unwrap();
    w.finish(RunOutcome::finished()).unwrap();
}

#[test]
fn a_one_off_sync_does_not_wait_for_a_slow_nvidia_smi_and_keeps_the_last_sample() {
    let root = tempfile::tempdir().unwrap();
    let scratch = tempfile::tempdir().unwrap();
    let run = SleepingRun::start(root.path(), scratch.path());
    let smi = stand_in_with_gpu_3_used_by(run.child_pid);
    let (home, hub_dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let path = path_with(smi.path());
    // A prompt nvidia-smi: the one-off sync stores the host's sample.
    sync_local(
        home.path(),
        hub_dir.path(),
        root.path(),
        &agent_path(),
        &[("PATH", &path)],
    );
    let fleet = fleet_json(home.path(), hub_dir.path());
    let sampled_at = remote(&fleet, "box")["sampled_at"].as_f64();
    assert!(sampled_at.is_some(), "{fleet:#}");
    assert_eq!(
        remote(&fleet, "box")["gpus"].as_array().map(Vec::len),
        Some(8)
    );

    // Now it takes 5 s (a wedged driver) and a new run waits to be synced.
    make_nvidia_smi_sleep(smi.path(), 5);
    write_finished_run(root.path(), "later");
    let started = Instant::now();
    let out = output_within(
        hub(home.path(), hub_dir.path())
            .args(["sync", "--json"])
            .env("PATH", &path),
        Duration::from_secs(120),
    );
    let took = started.elapsed();
    assert!(out.status.success(), "{}", show(&out));
    eprintln!("one-off sync with a 5 s nvidia-smi took {took:?}");
    assert!(
        took < Duration::from_millis(3500),
        "the sync waited for nvidia-smi: {took:?}\n{}",
        show(&out)
    );
    let rows: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(rows[0]["ok"], true, "{rows:#}");
    let runs = json_of(hub(home.path(), hub_dir.path()).args(["ls", "--json"]));
    let ids: Vec<&str> = runs
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|r| r["run_id"].as_str())
        .collect();
    assert!(ids.contains(&"later"), "the new run is synced: {ids:?}");

    // The sample given up leaves the last one in place.
    let fleet = fleet_json(home.path(), hub_dir.path());
    let box_remote = remote(&fleet, "box");
    assert_eq!(box_remote["sampled_at"].as_f64(), sampled_at, "{fleet:#}");
    assert_eq!(box_remote["gpus"].as_array().map(Vec::len), Some(8));
    assert_eq!(box_remote["gpu_error"], Value::Null, "{fleet:#}");
}

#[test]
fn a_hanging_nvidia_smi_is_reported_while_following_and_the_sync_goes_on() {
    let root = tempfile::tempdir().unwrap();
    let scratch = tempfile::tempdir().unwrap();
    let _run = SleepingRun::start(root.path(), scratch.path());
    let smi = tempfile::tempdir().unwrap();
    make_nvidia_smi_sleep(smi.path(), 60);
    let (home, hub_dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let path = path_with(smi.path());
    let mut follower = hub(home.path(), hub_dir.path())
        .arg("connect")
        .arg(format!("local:{}", root.path().display()))
        .arg("--agent")
        .arg(agent_path())
        .args(["--no-ui", "--name", "box", "--prefetch", "none"])
        .env("PATH", &path)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // The agent kills nvidia-smi after 2 s and answers with the error.
    let mut fleet = Value::Null;
    let reported = wait_until(30.0, || {
        fleet = fleet_json(home.path(), hub_dir.path());
        fleet["remotes"]
            .as_array()
            .and_then(|r| r.iter().find(|r| r["name"] == "box"))
            .is_some_and(|r| r["gpu_error"].is_string())
    });
    let runs = json_of(hub(home.path(), hub_dir.path()).args(["ls", "--json"]));
    let _ = follower.kill();
    let _ = follower.wait();
    assert!(reported, "no GPU error reported: {fleet:#}");
    let remote = remote(&fleet, "box");
    assert_eq!(remote["sampled"], true, "{fleet:#}");
    assert_eq!(remote["gpus"], Value::Array(vec![]));
    let error = remote["gpu_error"].as_str().expect("the error is reported");
    assert!(error.contains("did not answer within"), "{error}");
    assert_eq!(runs.as_array().map(Vec::len), Some(1), "the run is synced");
}

#[test]
fn an_agent_without_the_host_capability_syncs_as_before() {
    let root = tempfile::tempdir().unwrap();
    let scratch = tempfile::tempdir().unwrap();
    let run = SleepingRun::start(root.path(), scratch.path());
    let smi = stand_in_with_gpu_3_used_by(run.child_pid);
    let (home, hub_dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let real = agent_path();
    let path = path_with(smi.path());
    sync_local(
        home.path(),
        hub_dir.path(),
        root.path(),
        &workspace_root().join("tests/support/old_agent.py"),
        &[("PATH", &path), ("OLD_AGENT_REAL", real.to_str().unwrap())],
    );
    let runs = json_of(hub(home.path(), hub_dir.path()).args(["ls", "--json"]));
    assert_eq!(runs[0]["run_id"], run.run_id.as_str());
    let fleet = fleet_json(home.path(), hub_dir.path());
    let remote = remote(&fleet, "box");
    assert_eq!(remote["sampled"], false, "never asked: {fleet:#}");
    assert_eq!(fleet["totals"]["gpus"], 0);

    // The same root through the agent of today: now its GPUs show.
    sync_local(
        home.path(),
        hub_dir.path(),
        root.path(),
        &real,
        &[("PATH", &path)],
    );
    let fleet = fleet_json(home.path(), hub_dir.path());
    assert_eq!(fleet["totals"]["gpus"], 8, "{fleet:#}");
}
