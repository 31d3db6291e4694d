//! The hub's recycle bin emptied for good: `POST /api/runs/{run}/purge` and
//! `POST /api/recycle-bin/empty` through the real dashboard, `runicorn-hub recycle-bin` through
//! the real binary (it refuses without a confirmation), cached files of purged runs removed, and
//! a purged run kept out of the next sync although its server still has it.

use std::path::Path;
use std::process::Output;
use std::time::Duration;

use runicorn_tests::dashboard::ServedDashboard;
use runicorn_tests::hub::{hub, json_of, show, sync_local_once, write_runs};
use runicorn_tests::output_within;
use runicorn_tests::sshd::ClientHome;
use serde_json::Value;

const LIMIT: Duration = Duration::from_secs(120);

fn hub_cmd(home: &ClientHome, hub_dir: &Path, args: &[&str]) -> Output {
    output_within(hub(home.path(), hub_dir).args(args), LIMIT)
}

/// (run id, in the recycle bin) of every run `ls --all` lists, sorted.
fn all_runs(home: &ClientHome, hub_dir: &Path) -> Vec<(String, bool)> {
    let listing = json_of(hub(home.path(), hub_dir).args(["ls", "--all", "--json"]));
    let mut runs: Vec<(String, bool)> = listing
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["run_id"].as_str().unwrap().to_owned(),
                r["in_recycle_bin"] == true,
            )
        })
        .collect();
    runs.sort();
    runs
}

fn cached_files(home: &ClientHome, hub_dir: &Path) -> u64 {
    json_of(hub(home.path(), hub_dir).args(["cache", "--json"]))["files"]
        .as_u64()
        .unwrap()
}

#[test]
fn purged_runs_leave_the_store_and_stay_out_of_later_syncs() {
    let home = ClientHome::empty();
    let hub_dir = tempfile::tempdir().unwrap();
    let hub_dir = hub_dir.path();
    let root = tempfile::tempdir().unwrap();
    write_runs(root.path(), 5, |i| 20 + i);
    sync_local_once(home.path(), hub_dir, root.path(), "box");
    // Run 1's files come into the cache (so purging it has something to remove there).
    let out_dir = tempfile::tempdir().unwrap();
    let out = hub_cmd(
        &home,
        hub_dir,
        &[
            "fetch",
            "run00001",
            "-o",
            &out_dir.path().display().to_string(),
        ],
    );
    assert!(out.status.success(), "{}", show(&out));
    let cached_before = cached_files(&home, hub_dir);
    assert!(cached_before > 0);

    // Through the API: only a run in the recycle bin can be purged.
    let served = ServedDashboard::start(hub_dir, None);
    let r = served.write("POST", "/api/runs/run00001/purge", None);
    assert_eq!(r.status, 409, "{}", r.text());
    assert!(r.text().contains("not in the recycle bin"), "{}", r.text());
    let r = served.write("DELETE", "/api/runs/run00001", None);
    assert_eq!(r.status, 200, "{}", r.text());
    let r = served.write("POST", "/api/runs/run00001/purge", None);
    assert_eq!(r.status, 200, "{}", r.text());
    let purged: Value = r.json();
    assert_eq!(purged["purged"], 1);
    assert!(
        purged["cached_files_removed"].as_u64().unwrap() > 0,
        "{purged}"
    );
    assert!(cached_files(&home, hub_dir) < cached_before);
    let r = served.get("/api/runs/run00001");
    assert_eq!(r.status, 404, "{}", r.text());
    // Without the token, nothing happens.
    let r = served.get("/api/recycle-bin/empty");
    assert_eq!(r.status, 405, "{}", r.text());
    served.stop(Duration::from_secs(10));

    // Through the CLI: put two runs in, and the purge asks first.
    let out = hub_cmd(
        &home,
        hub_dir,
        &["recycle-bin", "put", "run00002", "box/run00003"],
    );
    assert!(out.status.success(), "{}", show(&out));
    let bin = json_of(hub(home.path(), hub_dir).args(["recycle-bin", "--json"]));
    assert_eq!(bin.as_array().unwrap().len(), 2, "{bin}");
    let out = hub_cmd(&home, hub_dir, &["recycle-bin", "empty"]);
    assert_eq!(out.status.code(), Some(2), "{}", show(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("--yes"),
        "{}",
        show(&out)
    );
    let out = hub_cmd(
        &home,
        hub_dir,
        &["recycle-bin", "purge", "run00004", "--yes"],
    );
    assert_eq!(out.status.code(), Some(2), "{}", show(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("not in the recycle bin"),
        "{}",
        show(&out)
    );
    let out = hub_cmd(&home, hub_dir, &["recycle-bin", "restore", "run00003"]);
    assert!(out.status.success(), "{}", show(&out));
    assert_eq!(
        all_runs(&home, hub_dir),
        [
            ("run00000".to_owned(), false),
            ("run00002".to_owned(), true),
            ("run00003".to_owned(), false),
            ("run00004".to_owned(), false),
        ]
    );
    let out = hub_cmd(&home, hub_dir, &["recycle-bin", "empty", "--yes"]);
    assert!(out.status.success(), "{}", show(&out));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("deleted 1 run for good"),
        "{}",
        show(&out)
    );

    // The server still has every run, and they all change: the next sync brings the others up
    // to date and leaves the purged ones out.
    runicorn_tests::hub::append_steps(&root.path().join("runs/exp/g1/run00001"), 1000, 5);
    runicorn_tests::hub::append_steps(&root.path().join("runs/exp/g0/run00000"), 1000, 5);
    sync_local_once(home.path(), hub_dir, root.path(), "box");
    assert_eq!(
        all_runs(&home, hub_dir),
        [
            ("run00000".to_owned(), false),
            ("run00003".to_owned(), false),
            ("run00004".to_owned(), false),
        ]
    );
    assert!(root
        .path()
        .join("runs/exp/g1/run00001/events.jsonl")
        .exists());
    let out = hub_cmd(&home, hub_dir, &["recycle-bin"]);
    assert!(String::from_utf8_lossy(&out.stdout).contains("the recycle bin is empty"));
}
