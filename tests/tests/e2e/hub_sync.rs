//! `runicorn-hub` syncing a storage root over a real OpenSSH server: the first sync equals the
//! source point for point, a second one moves nothing, a changed run moves alone, live follow,
//! a connection cut mid-sync, and a deleted agent index.

use std::path::Path;
use std::process::Child;
use std::time::{Duration, Instant};

use runicorn_protocol::run_format::{RunSpec, RunWriter};
use runicorn_store::{RunFilter, Store};
use runicorn_tests::hub::{
    agent_path, append_steps, assert_same_points, count, hub, json_of, show, source_points,
    store_points, write_runs,
};
use runicorn_tests::ssh_hub::SshHub;
use runicorn_tests::sshd::ClientHome;
use runicorn_tests::{interrupt, wait_until};

/// Stops a follower with Ctrl-C: its stderr.
fn stop(child: Child) -> String {
    String::from_utf8_lossy(&interrupt(child).stderr).into_owned()
}

fn stored_total(hub_dir: &Path) -> usize {
    match Store::open_read_only(hub_dir) {
        Ok(_) => count(&store_points(hub_dir, "gpu")),
        Err(_) => 0,
    }
}

#[test]
fn first_sync_equals_the_source_and_a_second_sync_moves_nothing() {
    let s = SshHub::start();
    write_runs(s.root(), 300, |i| 20 + i % 50);
    // Small pages, so the listing spans many and overlaps the point fetching.
    let out = s
        .connect(&["--once"])
        .env("RUNICORN_SYNC_PAGE_RUNS", "32")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", show(&out));
    assert_same_points(s.root(), s.hub_dir(), "gpu");

    let listed = json_of(s.hub().args(["ls", "--json"]));
    let listed = listed.as_array().unwrap();
    assert_eq!(listed.len(), 300);
    for field in [
        "remote",
        "key",
        "run_id",
        "path",
        "alias",
        "status",
        "points",
        "last_step",
    ] {
        assert!(listed[0].get(field).is_some(), "ls --json lacks {field}");
    }
    assert!(listed
        .iter()
        .all(|r| r["remote"] == "gpu" && r["status"] == "finished"));
    let g3 = json_of(s.hub().args(["ls", "--json", "--path", "exp/g3"]));
    assert_eq!(
        g3.as_array().unwrap().len(),
        300 / 7 + usize::from(300 % 7 > 3)
    );

    let again = s.sync();
    assert_eq!(again["ok"], true, "{again}");
    assert_eq!(again["runs"], 0, "{again}");
    assert_eq!(again["points"], 0, "{again}");
    assert_eq!(again["log_bytes"], 0, "{again}");

    let remotes = json_of(s.hub().args(["remotes", "--json"]));
    let gpu = &remotes[0];
    assert_eq!(gpu["name"], "gpu");
    assert_eq!(gpu["runs"], 300);
    assert_eq!(gpu["connected"], false);
    assert!(gpu["last_sync"].as_f64().is_some(), "{gpu}");
    assert!(
        gpu["address"].as_str().unwrap().contains("127.0.0.1"),
        "{gpu}"
    );
}

#[test]
fn only_a_changed_run_moves() {
    let s = SshHub::start();
    write_runs(s.root(), 50, |_| 30);
    s.connect_once(&[]);
    let run_dir = s.root().join("runs/exp/g2/run00009");
    append_steps(&run_dir, 1000, 25);
    let moved = s.sync();
    assert_eq!(moved["runs"], 1, "{moved}");
    assert_eq!(moved["points"], 25, "{moved}");
    assert!(moved["requests"].as_u64().unwrap() <= 4, "{moved}");
    assert_same_points(s.root(), s.hub_dir(), "gpu");
}

#[test]
fn a_point_logged_during_live_follow_is_stored_within_a_second() {
    let s = SshHub::start();
    write_runs(s.root(), 5, |_| 10);
    let mut spec = RunSpec::new(s.root(), "runicorn-tests");
    spec.path = Some("live".into());
    spec.run_id = Some("live-run".into());
    let mut writer = RunWriter::create(&spec).unwrap();
    writer.log_metrics(&[("loss", 1.0)], Some(1), None).unwrap();
    writer.flush().unwrap();
    let child = s.follow(&["--poll", "0.5"]);
    assert!(
        wait_until(20.0, || stored_total(s.hub_dir())
            == count(&source_points(s.root()))),
        "the first sync did not finish"
    );
    let mut worst = Duration::ZERO;
    for step in 2..=6 {
        writer
            .log_metrics(&[("loss", 1.0 / step as f64)], Some(step), None)
            .unwrap();
        writer.flush().unwrap();
        let logged = Instant::now();
        let arrived = wait_until(5.0, || {
            let store = Store::open_read_only(s.hub_dir()).unwrap();
            let run = store
                .list_runs(&RunFilter {
                    path_prefix: Some("live".into()),
                    ..RunFilter::default()
                })
                .unwrap();
            run.first()
                .map(|r| {
                    store
                        .points(r.key, "loss")
                        .unwrap()
                        .iter()
                        .any(|p| p.0 == step)
                })
                .unwrap_or(false)
        });
        assert!(arrived, "step {step} never arrived");
        worst = worst.max(logged.elapsed());
    }
    let stderr = stop(child);
    assert!(
        worst < Duration::from_secs(1),
        "slowest point took {worst:?}\n{stderr}"
    );
}

#[test]
fn a_connection_cut_mid_sync_resumes_with_no_duplicate_and_no_missing_point() {
    let s = SshHub::start();
    write_runs(s.root(), 120, |_| 3000);
    let total = count(&source_points(s.root()));
    let child = s.follow(&["--poll", "0.5"]);
    // Cut the session as soon as some, but not all, points are stored.
    assert!(
        wait_until(60.0, || stored_total(s.hub_dir()) > 0),
        "no point arrived"
    );
    let before_cut = stored_total(s.hub_dir());
    let killed = s.sshd.kill_connections();
    assert!(killed > 0, "no sshd session to kill");
    let converged = wait_until(90.0, || stored_total(s.hub_dir()) == total);
    let stderr = stop(child);
    assert!(
        converged,
        "the store never caught up after the cut\n{stderr}"
    );
    assert!(
        before_cut < total,
        "the sync finished before the cut; make the source bigger"
    );
    assert!(stderr.contains("reconnecting"), "{stderr}");
    assert_same_points(s.root(), s.hub_dir(), "gpu");
}

#[test]
fn a_deleted_agent_index_converges_without_downloading_points_again() {
    let s = SshHub::start();
    write_runs(s.root(), 40, |_| 25);
    s.connect_once(&[]);
    std::fs::remove_dir_all(s.root().join(".runicorn-agent")).unwrap();
    // A run vanishes while the index is gone: the full listing must notice.
    std::fs::remove_dir_all(s.root().join("runs/exp/g0/run00007")).unwrap();
    let again = s.sync();
    assert_eq!(again["ok"], true, "{again}");
    assert_eq!(again["points"], 0, "{again}");
    assert_eq!(
        again["runs"], 39,
        "a new epoch lists every run again: {again}"
    );
    let visible = json_of(s.hub().args(["ls", "--json"]));
    assert_eq!(visible.as_array().unwrap().len(), 39);
    let all = json_of(s.hub().args(["ls", "--json", "--all"]));
    let gone: Vec<_> = all
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["removed"] == true)
        .collect();
    assert_eq!(gone.len(), 1, "the vanished run is kept and marked gone");
    assert!(
        gone[0]["points"].as_u64().unwrap() > 0,
        "its points are kept"
    );
}

#[test]
fn a_log_line_still_being_written_neither_stalls_the_sync_nor_is_lost() {
    let home = ClientHome::empty();
    let root = tempfile::tempdir().unwrap();
    let hub_dir = tempfile::tempdir().unwrap();
    write_runs(root.path(), 2, |_| 5);
    let run_dir = root.path().join("runs/exp/g1/run00001");
    let log = run_dir.join("logs.txt");
    let append = |text: &str| {
        use std::io::Write;
        let mut f = std::fs::OpenOptions::new().append(true).open(&log).unwrap();
        f.write_all(text.as_bytes()).unwrap();
    };
    append("epoch 3: still wri");
    let sync = || {
        let out = hub(home.path(), hub_dir.path())
            .arg("connect")
            .arg(format!("local:{}", root.path().display()))
            .arg("--agent")
            .arg(agent_path())
            .args(["--once", "--name", "here"])
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", show(&out));
    };
    sync();
    append("ting\n");
    sync();
    let store = Store::open_read_only(hub_dir.path()).unwrap();
    let runs = store
        .list_runs(&RunFilter {
            path_prefix: Some("exp/g1".into()),
            ..RunFilter::default()
        })
        .unwrap();
    let run = runs.iter().find(|r| r.id == "run00001").unwrap();
    let (_, bytes) = store.log_text(run.key).unwrap().unwrap();
    let text = String::from_utf8_lossy(&bytes);
    assert!(text.ends_with("epoch 3: still writing\n"), "{text:?}");
}
