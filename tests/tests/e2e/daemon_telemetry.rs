//! The resident agent sampling runs it did not start (issue 15, item 2): a real daemon on a
//! root, a plain `python` process using the SDK (not under `runicorn-agent run`) that burns CPU
//! gets `system.jsonl` lines with its CPU % and memory at the daemon's interval, and none once
//! it has exited; a run under `runicorn-agent run` keeps exactly one writer, its wrapper.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use runicorn_tests::daemon::Daemon;
use runicorn_tests::{agent_run, describe, output_within, wait_until, workspace_root};
use serde_json::Value;

/// An SDK run in its own process: `init()`, then a busy loop logging a step every 0.1 s until
/// the file `stop` exists, then `finish()`.
const BUSY_RUN: &str = r#"
import os, sys, time
import runicorn as rn
root, stop = sys.argv[1], sys.argv[2]
run = rn.init(path="dtel/sdk", storage=root)
step, x = 0, 0
last = time.time()
while not os.path.exists(stop):
    x = (x * 31 + 7) % 1000003
    if time.time() - last >= 0.1:
        last = time.time()
        step += 1
        run.log({"loss": 1.0 / step}, step=step)
run.finish()
"#;

/// The SDK run's process, killed when dropped (a failing test leaves nothing behind).
struct SdkRun(Child);

impl SdkRun {
    fn start(root: &Path, stop: &Path) -> SdkRun {
        let python = std::env::var_os("RUNICORN_TEST_PYTHON")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from("python3"));
        let child = Command::new(python)
            .args(["-c", BUSY_RUN])
            .arg(root)
            .arg(stop)
            .env("PYTHONPATH", workspace_root().join("sdk/python/src"))
            .env_remove("RUNICORN_DIR")
            .env_remove("RUNICORN_RUN_DIR")
            .env("RUNICORN_ON", "1")
            .stdin(Stdio::null())
            .spawn()
            .expect("python starts");
        SdkRun(child)
    }
}

impl Drop for SdkRun {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The lines of `system.jsonl` as `(ts, data)`; none when there is no file.
fn samples(run_dir: &Path) -> Vec<(f64, serde_json::Map<String, Value>)> {
    let text = std::fs::read_to_string(run_dir.join("system.jsonl")).unwrap_or_default();
    text.lines()
        .map(|line| {
            let v: Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}"));
            assert_eq!(v["type"], "system", "{line}");
            (
                v["ts"].as_f64().expect("ts"),
                v["data"].as_object().cloned().expect("data"),
            )
        })
        .collect()
}

/// The one run directory under `runs/<run_path>`, once it exists.
fn run_dir_of(root: &Path, run_path: &str) -> PathBuf {
    let parent = root.join("runs").join(run_path);
    assert!(
        wait_until(30.0, || std::fs::read_dir(&parent)
            .is_ok_and(|mut d| d.next().is_some())),
        "no run under {}",
        parent.display()
    );
    runicorn_tests::only_run_dir(root, run_path)
}

#[test]
fn the_daemon_samples_a_busy_sdk_run_and_stops_when_it_ends() {
    let root = tempfile::tempdir().unwrap();
    let scratch = tempfile::tempdir().unwrap();
    let daemon = Daemon::start(root.path(), &["--telemetry-interval", "1"]);
    let stop = scratch.path().join("stop");
    let mut run = SdkRun::start(root.path(), &stop);
    let dir = run_dir_of(root.path(), "dtel/sdk");

    assert!(
        wait_until(40.0, || samples(&dir).len() >= 3),
        "no three samples in 40 s; daemon log:\n{}",
        daemon.log()
    );
    let lines = samples(&dir);
    for (_, data) in &lines {
        assert!(
            data["sys/rss_mib"].as_f64().is_some_and(|m| m > 1.0),
            "{data:?}"
        );
        assert!(data["sys/cpu_percent"].as_f64().is_some(), "{data:?}");
    }
    let busiest = lines
        .iter()
        .filter_map(|(_, d)| d["sys/cpu_percent"].as_f64())
        .fold(0.0, f64::max);
    assert!(busiest > 30.0, "a busy loop shows its CPU: {lines:?}");
    for pair in lines.windows(2) {
        let gap = pair[1].0 - pair[0].0;
        assert!(
            (0.5..3.0).contains(&gap),
            "about 1 s apart: {gap} in {lines:?}"
        );
    }

    std::fs::write(&stop, "").unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(status) = run.0.try_wait().unwrap() {
            break status;
        }
        assert!(Instant::now() < deadline, "the SDK run did not end");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(status.success(), "{status}");
    // A sample under way when it ended may still land; after that, nothing.
    std::thread::sleep(Duration::from_millis(1500));
    let after_end = samples(&dir).len();
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(
        samples(&dir).len(),
        after_end,
        "no samples once the writer has exited"
    );
    let log = daemon.log();
    assert!(
        !log.contains("another writer") && !log.contains("cannot append"),
        "the daemon was the run's one writer and wrote every line:\n{log}"
    );
}

#[test]
fn a_run_under_agent_run_has_one_writer_while_the_daemon_samples() {
    let root = tempfile::tempdir().unwrap();
    let daemon = Daemon::start(root.path(), &["--telemetry-interval", "0.5"]);
    let mut cmd = agent_run(
        root.path(),
        &["--path", "dtel/wrapped", "--telemetry-interval", "2"],
        &[
            "sh",
            "-c",
            "end=$(($(date +%s) + 9)); while [ $(date +%s) -lt $end ]; do :; done",
        ],
    );
    let out = output_within(&mut cmd, Duration::from_secs(60));
    assert!(out.status.success(), "{}", describe(&out));
    let dir = runicorn_tests::only_run_dir(root.path(), "dtel/wrapped");
    let lines = samples(&dir);
    assert!(
        (3..=5).contains(&lines.len()),
        "one line per 2 s over ~9 s: {lines:?}"
    );
    for pair in lines.windows(2) {
        let gap = pair[1].0 - pair[0].0;
        assert!(
            gap > 1.5,
            "the wrapper's interval, not a second writer's: {lines:?}"
        );
    }
    // The daemon left it alone from the start: it never noticed a second writer.
    let log = daemon.log();
    assert!(!log.contains("another writer"), "{log}");
}
