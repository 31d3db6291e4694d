//! Alerts end to end (issue 15) over a real OpenSSH sshd: a run that stops stepping (its writer
//! alive, `stall: {after_s: 2}`) is marked stalled and its alert reaches the hub and an
//! `--on-alert` command exactly once while the run keeps changing and later syncs run; a NaN in a
//! watched metric raises one alert; a killed writer (`runicorn-agent run` killed with SIGKILL)
//! raises `crashed`; `runicorn-hub alerts` lists them; acknowledging works through the CLI and
//! through the API (with the dashboard's token), and the event stream announces a new alert.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use runicorn_protocol::run_format::{AlertConfig, RunOutcome, RunSpec, RunWriter};
use runicorn_tests::dashboard::ServedDashboard;
use runicorn_tests::http::{EventStream, Request};
use runicorn_tests::hub::{agent_path, connect_local, hub, json_of, show, sync_local_once};
use runicorn_tests::ssh_hub::SshHub;
use runicorn_tests::sshd::ClientHome;
use runicorn_tests::stepper::Stepper;
use runicorn_tests::{agent_run, interrupt, output_within, read_json, wait_until};
use serde_json::Value;

/// A finished run whose watched `acc` logs NaN at step 3 (its unwatched `loss` logs NaN too).
fn write_nan_run(root: &Path, id: &str) {
    let mut spec = RunSpec::new(root, "runicorn-tests");
    spec.path = Some("alerts/nan".into());
    spec.run_id = Some(id.into());
    spec.alerts = AlertConfig {
        watch: Some(vec!["acc".into()]),
        gpu_idle_after_s: None,
    };
    let mut w = RunWriter::create(&spec).unwrap();
    for (acc, loss) in [
        (0.1, 1.0),
        (0.2, f64::NAN),
        (f64::NAN, 0.5),
        (f64::NAN, 0.4),
    ] {
        w.log_metrics(&[("acc", acc), ("loss", loss)], None, None)
            .unwrap();
    }
    w.finish(RunOutcome::finished()).unwrap();
}

/// `runicorn-agent run --watch acc -- sleep 3`, killed with SIGKILL once its run is running:
/// the run's writer is dead without having said how the run ended.
fn crash_a_wrapped_run(root: &Path) {
    let mut wrapper = agent_run(
        root,
        &[
            "--path",
            "alerts/crash",
            "--run-id",
            "crasher",
            "--watch",
            "acc",
            "--quiet",
        ],
        &["sleep", "3"],
    )
    .stdout(Stdio::null())
    .stderr(Stdio::null())
    .spawn()
    .unwrap();
    let status = root.join("runs/alerts/crash/crasher/status.json");
    assert!(
        wait_until(30.0, || status.exists()),
        "the wrapped run did not start"
    );
    wrapper.kill().unwrap();
    wrapper.wait().unwrap();
    let meta = read_json(&root.join("runs/alerts/crash/crasher/meta.json"));
    assert_eq!(
        meta["alerts"],
        serde_json::json!({"watch": ["acc"]}),
        "{meta}"
    );
}

/// The alerts `--on-alert` wrote to `file` (one JSON object per line).
fn hooked(file: &Path) -> Vec<Value> {
    std::fs::read_to_string(file)
        .unwrap_or_default()
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect()
}

/// How often each `(run_id, alert_id)` appears.
fn counted(alerts: &[Value]) -> BTreeMap<(String, String), usize> {
    let mut out = BTreeMap::new();
    for a in alerts {
        let key = (
            a["run_id"].as_str().unwrap().to_owned(),
            a["alert_id"].as_str().unwrap().to_owned(),
        );
        *out.entry(key).or_insert(0) += 1;
    }
    out
}

fn has(alerts: &[Value], run_id: &str, kind: &str) -> bool {
    alerts
        .iter()
        .any(|a| a["run_id"] == run_id && a["kind"] == kind)
}

/// `runicorn-hub alerts --json EXTRA…`.
fn alerts(s: &SshHub, extra: &[&str]) -> Vec<Value> {
    json_of(s.hub().arg("alerts").arg("--json").args(extra))
        .as_array()
        .unwrap()
        .clone()
}

/// Stops a follower with Ctrl-C: its stderr.
fn stop(child: Child) -> String {
    String::from_utf8_lossy(&interrupt(child).stderr).into_owned()
}

#[test]
fn stalls_nans_and_crashes_alert_once_at_the_hub_and_the_on_alert_command() {
    let s = SshHub::start();
    let file: PathBuf = s.scratch().join("alerts.jsonl");
    let stepper = Stepper::start(s.root(), "alerts/stall", 2.0);
    write_nan_run(s.root(), "nan");
    std::thread::sleep(Duration::from_millis(1500)); // a dozen steps give a median interval
    let on_alert = format!("cat >> '{}'", file.display());
    let follower = s.follow(&[
        "--poll",
        "0.5",
        "--prefetch",
        "none",
        "--on-alert",
        &on_alert,
    ]);

    // The NaN arrives with the first sync.
    assert!(
        wait_until(60.0, || has(&hooked(&file), "nan", "nonfinite")),
        "no nonfinite alert: {:?}",
        hooked(&file)
    );
    // The stepper stops: stalled within its 2 s floor (+ a scan and a sync).
    let stopped_at = Instant::now();
    stepper.set_stepping(false);
    assert!(
        wait_until(15.0, || has(&hooked(&file), "stepper", "stalled")),
        "no stalled alert: {:?}",
        hooked(&file)
    );
    let waited = stopped_at.elapsed();
    eprintln!("stalled alert at the --on-alert command {waited:?} after the last step");
    assert!(
        waited < Duration::from_secs(8),
        "stalled alert after {waited:?}"
    );
    // A killed writer: crashed.
    crash_a_wrapped_run(s.root());
    assert!(
        wait_until(30.0, || has(&hooked(&file), "crasher", "crashed")),
        "no crashed alert: {:?}",
        hooked(&file)
    );
    // The stepper steps again for a while: its state (alerts included) is sent again and again.
    stepper.set_stepping(true);
    std::thread::sleep(Duration::from_secs(3));
    let err = stop(follower);

    let seen = hooked(&file);
    let counts = counted(&seen);
    assert!(counts.values().all(|n| *n == 1), "{counts:?}\n{err}");
    let stall = seen.iter().find(|a| a["kind"] == "stalled").unwrap();
    assert!(
        stall["alert_id"].as_str().unwrap().starts_with("stalled@"),
        "{stall}"
    );
    assert!(
        stall["message"]
            .as_str()
            .unwrap()
            .starts_with("stalled: no new step for "),
        "{stall}"
    );
    assert_eq!(stall["remote"], "gpu");
    assert_eq!(stall["run_ref"], "gpu/stepper");
    assert_eq!(stall["path"], "alerts/stall");
    let nan: Vec<&Value> = seen.iter().filter(|a| a["run_id"] == "nan").collect();
    assert_eq!(
        nan.len(),
        1,
        "one alert for the watched metric only: {nan:?}"
    );
    assert_eq!(
        (
            &nan[0]["alert_id"],
            &nan[0]["key"],
            &nan[0]["step"],
            &nan[0]["value"]
        ),
        (
            &Value::from("nonfinite:acc"),
            &Value::from("acc"),
            &Value::from(3),
            &Value::from("NaN")
        )
    );

    // Several later syncs: nothing counts twice, at the hub either.
    for _ in 0..2 {
        s.sync();
    }
    let listed = alerts(&s, &[]);
    assert_eq!(counted(&listed), counts, "{listed:?}");
    stepper.finish();
    s.sync();
    assert_eq!(counted(&alerts(&s, &[])), counts);

    // Acknowledged through the CLI: gone from the default listing, kept with --all.
    let id = nan[0]["id"].as_i64().unwrap();
    let out = output_within(
        s.hub().args(["alerts", "--ack", &id.to_string()]),
        Duration::from_secs(60),
    );
    assert!(out.status.success(), "{}", show(&out));
    assert!(alerts(&s, &[]).iter().all(|a| a["id"] != id));
    let all = alerts(&s, &["--all"]);
    let acked = all.iter().find(|a| a["id"] == id).unwrap();
    assert!(acked["received_at"].as_f64().is_some(), "{acked}");
    let out = output_within(
        s.hub().args(["alerts", "--ack", "999999"]),
        Duration::from_secs(60),
    );
    assert!(!out.status.success(), "{}", show(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("no alert 999999"),
        "{}",
        show(&out)
    );
    let table = output_within(s.hub().arg("alerts"), Duration::from_secs(60));
    let table = String::from_utf8_lossy(&table.stdout);
    assert!(
        table.contains("stalled") && table.contains("gpu/stepper"),
        "{table}"
    );

    // Through the API: listing, a refused write without the token, ack, ack-all.
    let web = ServedDashboard::start(s.hub_dir(), None);
    let before = web.json("/api/alerts");
    assert_eq!(before["unacked"], 2, "{before}");
    let stall_id = stall["id"].as_i64().unwrap();
    let refused = Request::new("POST", &format!("/api/alerts/{stall_id}/ack")).send(web.addr);
    assert_eq!(refused.status, 403, "{}", refused.text());
    let acked = web.write("POST", &format!("/api/alerts/{stall_id}/ack"), None);
    assert_eq!(acked.status, 200, "{}", acked.text());
    assert_eq!(acked.json()["unacked"], 1);
    assert_eq!(
        web.write("POST", "/api/alerts/424242/ack", None).status,
        404
    );
    let run_alerts = web.json("/api/alerts?all&run=gpu/stepper");
    assert_eq!(
        run_alerts["alerts"].as_array().unwrap().len(),
        1,
        "{run_alerts}"
    );
    assert!(run_alerts["alerts"][0]["acked_at"].as_f64().is_some());

    // A new alert announced on the event stream while the dashboard is open.
    let mut events = EventStream::open(web.addr, "/api/events");
    write_nan_run(s.root(), "nan2");
    s.sync();
    let event = events
        .until(Duration::from_secs(30), |e| e.event == "alerts")
        .expect("an alerts event");
    let data = event.json();
    assert_eq!(data["unacked"], 2, "{data}");
    assert_eq!(data["new"].as_array().unwrap().len(), 1, "{data}");
    assert_eq!(data["new"][0]["run_id"], "nan2");

    let all = web.write("POST", "/api/alerts/ack-all", None);
    assert_eq!(all.status, 200, "{}", all.text());
    assert_eq!(all.json()["acked"], 2);
    assert!(alerts(&s, &[]).is_empty());
    assert_eq!(alerts(&s, &["--all"]).len(), counts.len() + 1);
}

#[test]
fn a_one_off_sync_runs_the_command_once_per_alert_and_reports_its_failure() {
    let root = tempfile::tempdir().unwrap();
    let home = ClientHome::empty();
    let hub_dir = tempfile::tempdir().unwrap();
    let scratch = tempfile::tempdir().unwrap();
    let file = scratch.path().join("alerts.jsonl");
    write_nan_run(root.path(), "nan");
    // A command that reads the alert and then fails: its output stays, the failure is reported,
    // the sync succeeds; a second sync of the same alert runs nothing.
    let command = format!("cat >> '{}'; exit 3", file.display());
    let once = || {
        output_within(
            connect_local(home.path(), hub_dir.path(), root.path(), &agent_path())
                .args(["--once", "--no-ui", "--name", "box", "--prefetch", "none"])
                .args(["--on-alert", &command]),
            Duration::from_secs(120),
        )
    };
    let first = once();
    assert!(first.status.success(), "{}", show(&first));
    let stderr = String::from_utf8_lossy(&first.stderr);
    assert!(
        stderr.contains("--on-alert command for alert")
            && stderr.contains("failed (exit status: 3)"),
        "{}",
        show(&first)
    );
    let seen = hooked(&file);
    assert_eq!(seen.len(), 1, "{seen:?}");
    assert_eq!(seen[0]["alert_id"], "nonfinite:acc");
    assert_eq!(seen[0]["run_ref"], "box/nan");
    assert_eq!(seen[0]["url"], Value::Null, "no dashboard is served");
    let second = once();
    assert!(second.status.success(), "{}", show(&second));
    assert_eq!(hooked(&file).len(), 1);
}

/// `system.jsonl`'s samples that list GPU 0: (first ts, last ts).
fn gpu_sample_span(run_dir: &Path) -> Option<(f64, f64)> {
    let text = std::fs::read_to_string(run_dir.join("system.jsonl")).ok()?;
    let times: Vec<f64> = text
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|v| v["data"]["sys/gpu.0/util_percent"].is_number())
        .filter_map(|v| v["ts"].as_f64())
        .collect();
    Some((*times.first()?, *times.last()?))
}

#[test]
fn idle_gpus_of_a_running_run_raise_gpu_idle() {
    use std::os::unix::fs::PermissionsExt;
    let root = tempfile::tempdir().unwrap();
    let home = ClientHome::empty();
    let hub_dir = tempfile::tempdir().unwrap();
    // The stand-in nvidia-smi of the agent's tests with the 1-GPU host's recorded answer, its
    // utilisation set to 2 %, and the run's pid put into the compute apps by the command.
    let fixtures = runicorn_tests::workspace_root().join("agent/tests/fixtures/nvidia-smi");
    let smi = tempfile::tempdir().unwrap();
    let stand_in = smi.path().join("nvidia-smi");
    std::fs::copy(fixtures.join("stand-in.sh"), &stand_in).unwrap();
    std::fs::set_permissions(&stand_in, std::fs::Permissions::from_mode(0o755)).unwrap();
    let gpus = std::fs::read_to_string(fixtures.join("host-1gpu/query-gpu.csv")).unwrap();
    let idle = gpus.replace(", 76, ", ", 2, ");
    assert_ne!(
        idle, gpus,
        "the recorded answer has the utilisation this test replaces"
    );
    std::fs::write(smi.path().join("query-gpu.csv"), idle).unwrap();
    std::fs::write(smi.path().join("query-compute-apps.csv"), "").unwrap();
    std::fs::copy(
        fixtures.join("host-1gpu/query-compute-apps.csv"),
        smi.path().join("apps.template"),
    )
    .unwrap();
    let path = std::env::join_paths(std::iter::once(smi.path().to_owned()).chain(
        std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default()),
    ))
    .unwrap();
    let script = r#"sed -e "s/{RUN_PID}/$$/" "$SMI/apps.template" > "$SMI/apps.tmp"
mv "$SMI/apps.tmp" "$SMI/query-compute-apps.csv"
sleep 8"#;
    let mut wrapper = agent_run(
        root.path(),
        &[
            "--path",
            "alerts/gpu",
            "--run-id",
            "idle",
            "--gpu-idle-after",
            "1.5",
            "--telemetry-interval",
            "0.3",
            "--quiet",
        ],
        &["sh", "-c", script],
    )
    .env("SMI", smi.path())
    .env("PATH", &path)
    .stdout(Stdio::null())
    .stderr(Stdio::piped())
    .spawn()
    .unwrap();
    let run_dir = root.path().join("runs/alerts/gpu/idle");
    assert!(
        wait_until(30.0, || gpu_sample_span(&run_dir)
            .is_some_and(|(first, last)| last - first >= 2.0)),
        "no GPU samples spanning 2 s: {:?}",
        std::fs::read_to_string(run_dir.join("system.jsonl"))
    );
    // Synced while the run runs: the alert arrives.
    sync_local_once(home.path(), hub_dir.path(), root.path(), "box");
    let listed = json_of(hub(home.path(), hub_dir.path()).args(["alerts", "--json"]));
    let alerts = listed.as_array().unwrap();
    assert_eq!(alerts.len(), 1, "{listed}");
    assert_eq!(alerts[0]["kind"], "gpu_idle");
    assert!(
        alerts[0]["alert_id"]
            .as_str()
            .unwrap()
            .starts_with("gpu_idle@"),
        "{listed}"
    );
    assert!(
        alerts[0]["message"]
            .as_str()
            .unwrap()
            .contains("under 5 % utilisation"),
        "{listed}"
    );
    let status = wrapper.wait().unwrap();
    assert!(status.success(), "{status}");
}

#[test]
fn sync_on_alert_runs_the_command_once_per_new_alert_over_sshd() {
    let s = SshHub::start();
    let file = s.scratch().join("alerts.jsonl");
    // The remote is remembered before the run exists, so the alert is new to `sync`.
    s.connect_once(&["--prefetch", "none"]);
    write_nan_run(s.root(), "nan");
    let sync = || {
        output_within(
            s.hub()
                .args(["sync", "--on-alert"])
                .arg(format!("cat >> '{}'", file.display())),
            Duration::from_secs(120),
        )
    };
    let first = sync();
    assert!(first.status.success(), "{}", show(&first));
    // The command ran before `sync` exited: the file is complete now.
    let seen = hooked(&file);
    assert_eq!(seen.len(), 1, "{seen:?}");
    assert_eq!(seen[0]["alert_id"], "nonfinite:acc");
    assert_eq!(seen[0]["kind"], "nonfinite");
    assert_eq!(seen[0]["run_ref"], "gpu/nan");
    let second = sync();
    assert!(second.status.success(), "{}", show(&second));
    assert_eq!(
        hooked(&file).len(),
        1,
        "the same alert runs no command again"
    );

    // A failing command is reported and does not fail the sync.
    write_nan_run(s.root(), "nan2");
    let failing = output_within(
        s.hub()
            .args(["sync", "--on-alert", "cat > /dev/null; exit 4"]),
        Duration::from_secs(120),
    );
    assert!(failing.status.success(), "{}", show(&failing));
    let stderr = String::from_utf8_lossy(&failing.stderr);
    assert!(
        stderr.contains("--on-alert command for alert") && stderr.contains("exit status: 4"),
        "{}",
        show(&failing)
    );
}
