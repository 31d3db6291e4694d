//! `runicorn-hub demo`: the README's main job. Sample runs are written, served by a local agent
//! (`local:DIR`), synced into the store and listed; the live run keeps arriving while followed.

use std::process::Stdio;

use runicorn_tests::hub::{hub, json_of, show};
use runicorn_tests::sshd::ClientHome;
use runicorn_tests::wait_until;

#[test]
fn the_demo_syncs_its_sample_runs_and_lists_them() {
    let home = ClientHome::empty();
    let hub_dir = tempfile::tempdir().unwrap();
    let out = hub(home.path(), hub_dir.path())
        .args(["demo", "--once", "--no-ui"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", show(&out));
    let table = String::from_utf8_lossy(&out.stdout);
    for expected in [
        "REMOTE",
        "cv/resnet50",
        "nlp/bert-base",
        "running",
        "failed",
        "finished",
    ] {
        assert!(table.contains(expected), "{expected} missing:\n{table}");
    }
    let runs = json_of(hub(home.path(), hub_dir.path()).args(["ls", "--json", "--remote", "demo"]));
    let runs = runs.as_array().unwrap();
    assert_eq!(runs.len(), 6, "{runs:?}");
    let finished: Vec<_> = runs.iter().filter(|r| r["status"] == "finished").collect();
    assert_eq!(finished.len(), 4);
    assert!(finished.iter().all(|r| r["points"].as_u64().unwrap() > 300));

    // The sample artifacts: a dataset the image runs used and a model of three versions whose
    // `best` moved to v2, with chunk-level dedup measured on the "server".
    let listing =
        json_of(hub(home.path(), hub_dir.path()).args(["artifacts", "--json", "--remote", "demo"]));
    let artifacts = listing["artifacts"].as_array().unwrap();
    let names: Vec<&str> = artifacts
        .iter()
        .map(|a| a["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["cifar10-sample", "resnet50"], "{listing}");
    let model = &artifacts[1];
    let versions: Vec<u64> = model["versions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["version"].as_u64().unwrap())
        .collect();
    assert_eq!(versions, [3, 2, 1]);
    assert_eq!(
        model["versions"][0]["aliases"],
        serde_json::json!(["latest"])
    );
    assert_eq!(model["versions"][1]["aliases"], serde_json::json!(["best"]));
    assert!(model["versions"][2]["produced_by"]["run_id"].is_string());
    assert_eq!(model["versions"][2]["used_by"].as_array().unwrap().len(), 1);
    assert_eq!(
        artifacts[0]["versions"][0]["used_by"]
            .as_array()
            .unwrap()
            .len(),
        3
    );
    // Three 5 MiB checkpoints, each changing about 10 % of the last: the server holds less than
    // two copies.
    let total = model["total_bytes"].as_u64().unwrap();
    let server = model["server_bytes"].as_u64().unwrap();
    assert!(total > 15 << 20, "{model}");
    assert!(
        server < 2 * (5 << 20),
        "chunk-level dedup: {server} of {total}"
    );
    assert_eq!(
        model["server_saved_bytes"].as_u64().unwrap(),
        total - server
    );
}

#[test]
fn the_demo_follows_its_live_run() {
    let home = ClientHome::empty();
    let hub_dir = tempfile::tempdir().unwrap();
    let child = hub(home.path(), hub_dir.path())
        .args(["demo", "--no-ui"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let live_points = || {
        let Ok(out) = hub(home.path(), hub_dir.path())
            .args(["ls", "--json", "--path", "cv/vit-small"])
            .output()
        else {
            return 0;
        };
        serde_json::from_slice::<serde_json::Value>(&out.stdout)
            .ok()
            .and_then(|v| v[0]["points"].as_u64())
            .unwrap_or(0)
    };
    assert!(
        wait_until(30.0, || live_points() > 0),
        "the live run never arrived"
    );
    let first = live_points();
    let grew = wait_until(10.0, || live_points() >= first + 4);
    unsafe {
        libc::kill(child.id() as i32, libc::SIGINT);
    }
    let out = child.wait_with_output().unwrap();
    assert!(
        grew,
        "the live run did not grow\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success(),
        "Ctrl-C ends the demo cleanly: {}",
        show(&out)
    );
}
