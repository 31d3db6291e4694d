//! A run that stops stepping is `stalled` (issue 15): a run written by the Rust writer in this
//! process (alive and heartbeating, so never `crashed`) with `stall: {factor: 5, after_s: 1}`,
//! stepping every 0.2 s and then pausing, is listed `stalled` with its reason by the real
//! `runicorn-agent ls`, stored `stalled` by a real `runicorn-hub connect local:ROOT --once`, and
//! is `running` again (in both) once it steps again.

use std::path::Path;
use std::process::Output;
use std::time::{Duration, Instant};

use runicorn_store::{RunFilter, Store};
use runicorn_tests::hub::{hub, json_of, sync_local_once};
use runicorn_tests::sshd::ClientHome;
use runicorn_tests::stepper::Stepper;
use runicorn_tests::{agent, describe, output_within};
use serde_json::Value;

const LIMIT: Duration = Duration::from_secs(120);

/// `runicorn-agent ls --root ROOT --json` under a time limit: the one run.
fn listed(root: &Path) -> Value {
    let out: Output = output_within(
        agent().arg("ls").arg("--root").arg(root).arg("--json"),
        LIMIT,
    );
    assert!(out.status.success(), "{}", describe(&out));
    let runs: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(runs.as_array().unwrap().len(), 1, "{runs}");
    runs[0].clone()
}

/// Polls the agent's listing until the run has `status`, for at most `secs`; the last listing.
fn until_status(root: &Path, status: &str, secs: f64) -> (Value, Duration) {
    let started = Instant::now();
    loop {
        let run = listed(root);
        if run["status"] == status || started.elapsed() > Duration::from_secs_f64(secs) {
            return (run, started.elapsed());
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The run as the hub's store holds it: (status, reason).
fn stored(hub_dir: &Path) -> (String, Option<String>) {
    let store = Store::open_read_only(hub_dir).unwrap();
    let runs = store.list_runs(&RunFilter::default()).unwrap();
    assert_eq!(runs.len(), 1);
    (runs[0].status.clone(), runs[0].reason.clone())
}

#[test]
fn a_run_that_stops_stepping_is_stalled_and_a_new_step_makes_it_running() {
    let root = tempfile::tempdir().unwrap();
    let home = ClientHome::empty();
    let hub_dir = tempfile::tempdir().unwrap();
    let stepper = Stepper::start(root.path(), "stall/demo", 1.0);

    // Stepping: running (a dozen steps give a median interval).
    let (run, _) = until_status(root.path(), "running", 10.0);
    assert_eq!(run["status"], "running", "{run}");
    std::thread::sleep(Duration::from_millis(2400));
    let run = listed(root.path());
    assert_eq!(run["status"], "running", "{run}");
    assert!(run["last_step"].as_i64().unwrap() >= 8, "{run}");

    // Paused: stalled within 3 s, with the reason.
    stepper.set_stepping(false);
    let (run, waited) = until_status(root.path(), "stalled", 3.0);
    assert_eq!(run["status"], "stalled", "after {waited:?}: {run}");
    assert!(waited <= Duration::from_secs(3), "took {waited:?}");
    let reason = run["reason"].as_str().unwrap();
    assert!(reason.starts_with("no new step for "), "{reason}");
    assert!(
        reason.contains("5 × the median step interval 0.") && reason.ends_with(", floor 1s)"),
        "{reason}"
    );
    let only_stalled = output_within(
        agent()
            .args(["ls", "--status", "stalled", "--json", "--root"])
            .arg(root.path()),
        LIMIT,
    );
    let only_stalled: Value = serde_json::from_slice(&only_stalled.stdout).unwrap();
    assert_eq!(only_stalled.as_array().unwrap().len(), 1, "{only_stalled}");

    // The hub stores what the agent judged, reason included.
    sync_local_once(home.path(), hub_dir.path(), root.path(), "box");
    let (status, reason) = stored(hub_dir.path());
    assert_eq!(status, "stalled");
    assert!(
        reason
            .as_deref()
            .unwrap_or_default()
            .starts_with("no new step for "),
        "{reason:?}"
    );
    let listing =
        json_of(hub(home.path(), hub_dir.path()).args(["ls", "--json", "--status", "stalled"]));
    assert_eq!(listing.as_array().unwrap().len(), 1, "{listing}");
    assert_eq!(
        listing[0]["reason"].as_str(),
        reason.as_deref(),
        "`ls --json` says why: {listing}"
    );

    // Stepping again: running, on the agent and after the next sync on the hub.
    stepper.set_stepping(true);
    let (run, waited) = until_status(root.path(), "running", 3.0);
    assert_eq!(run["status"], "running", "after {waited:?}: {run}");
    assert_eq!(run["reason"], Value::Null, "{run}");
    sync_local_once(home.path(), hub_dir.path(), root.path(), "box");
    assert_eq!(stored(hub_dir.path()).0, "running");

    stepper.finish();
    assert_eq!(listed(root.path())["status"], "finished");
}
