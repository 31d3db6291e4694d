//! `runicorn-agent ls` over real run directories: upstream's files, damaged files, both layouts.

use std::fs;
use std::path::Path;

use runicorn_tests::{agent, describe, fixture_copy, ls_json};
use serde_json::{json, Value};

fn write_run(root: &Path, rel: &str, meta: Value, status: Value, events: &str) {
    let dir = root.join(rel);
    fs::create_dir_all(&dir).unwrap();
    fs::write(dir.join("meta.json"), meta.to_string()).unwrap();
    fs::write(dir.join("status.json"), status.to_string()).unwrap();
    fs::write(dir.join("events.jsonl"), events).unwrap();
}

fn by_id<'a>(runs: &'a [Value], id: &str) -> &'a Value {
    runs.iter()
        .find(|r| r["run_id"] == id)
        .unwrap_or_else(|| panic!("run {id} not listed: {runs:?}"))
}

#[test]
fn reads_runs_written_by_upstream_0_7_and_0_4() {
    let upstream = fixture_copy("upstream-0.7.2");
    let runs = ls_json(upstream.path(), &[]);
    assert_eq!(runs.len(), 1);
    let r = &runs[0];
    assert_eq!(r["run_id"], "20261126_122856_0e66f9");
    assert_eq!(r["path"], "cv/resnet");
    assert_eq!(r["alias"], "first");
    assert_eq!(r["status"], "finished");
    // Five steps of loss+acc (the string "name" is not a point) and one of loss at step 10.
    assert_eq!(r["points"], 11);
    assert_eq!(r["keys"], json!(["acc", "loss"]));
    assert_eq!(r["last_step"], 10);
    assert!(r["created_at"].as_f64().unwrap() < r["ended_at"].as_f64().unwrap());

    let legacy_root = fixture_copy("upstream-0.4.1");
    let legacy = ls_json(legacy_root.path(), &[]);
    assert_eq!(legacy.len(), 1);
    assert_eq!(legacy[0]["path"], "proj/exp1");
    assert_eq!(
        (
            legacy[0]["points"].as_u64(),
            legacy[0]["last_step"].as_i64()
        ),
        (Some(3), Some(3))
    );
}

#[test]
fn one_bad_run_never_hides_the_others() {
    let root = tempfile::tempdir().unwrap();
    let good = "{\"ts\": 1, \"type\": \"metrics\", \"data\": {\"loss\": 1, \"global_step\": 1, \"time\": 1}}\n";
    write_run(
        root.path(),
        "runs/a/good",
        json!({"id": "good", "created_at": 1.0}),
        json!({"status": "finished"}),
        good,
    );
    let bad = root.path().join("runs/a/bad");
    fs::create_dir_all(&bad).unwrap();
    fs::write(bad.join("meta.json"), "{\"id\": \"bad\", ").unwrap();
    let out = agent()
        .args(["ls", "--root"])
        .arg(root.path())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", describe(&out));
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(
        table.contains("good") && table.contains("unreadable"),
        "{table}"
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("meta.json") && err.contains("malformed"),
        "the reason names the file: {err}"
    );

    let runs = ls_json(root.path(), &[]);
    assert_eq!(by_id(&runs, "good")["status"], "finished");
    let bad = by_id(&runs, "bad");
    assert_eq!(bad["status"], "unreadable");
    assert!(bad["reason"].as_str().unwrap().contains("meta.json"));
}

#[test]
fn torn_last_line_and_corrupt_middle_line() {
    let root = tempfile::tempdir().unwrap();
    let events = concat!(
        "{\"ts\": 1, \"type\": \"metrics\", \"data\": {\"loss\": 1, \"global_step\": 1, \"time\": 1}}\n",
        "{\"ts\": 2, \"type\": \"metr\n",
        "{\"ts\": 3, \"type\": \"metrics\", \"data\": {\"loss\": NaN, \"global_step\": 3, \"time\": 3}}\n",
        "{\"ts\": 4, \"type\": \"metrics\", \"data\": {\"loss\": 0.5, \"glo"
    );
    write_run(
        root.path(),
        "runs/x/r1",
        json!({"id": "r1"}),
        json!({"status": "finished"}),
        events,
    );
    let r = &ls_json(root.path(), &[])[0];
    assert_eq!(
        r["points"], 2,
        "the torn last line is not counted yet; NaN counts: {r}"
    );
    assert_eq!(r["last_step"], 3);
    assert_eq!(r["corrupt_lines"], 1);
}

#[test]
fn stale_heartbeat_from_another_host_is_crashed_and_filters_work() {
    let root = tempfile::tempdir().unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    let hb = |age: f64| json!({"status": "running", "host": "gpu-far-away", "pid": 1, "heartbeat_at": now - age, "heartbeat_interval": 10.0});
    write_run(
        root.path(),
        "runs/exp/stale",
        json!({"id": "stale", "created_at": 1.0}),
        hb(45.0),
        "",
    );
    write_run(
        root.path(),
        "runs/exp/fresh",
        json!({"id": "fresh", "created_at": 2.0}),
        hb(2.0),
        "",
    );
    write_run(
        root.path(),
        "runs/expx/other",
        json!({"id": "other", "created_at": 3.0}),
        json!({"status": "failed"}),
        "",
    );
    write_run(
        root.path(),
        "runs/exp/gone",
        json!({"id": "gone", "created_at": 4.0}),
        json!({"status": "finished"}),
        "",
    );
    fs::write(
        root.path().join("runs/exp/gone/.deleted"),
        r#"{"deleted_at": 5, "reason": "user_deleted"}"#,
    )
    .unwrap();

    let runs = ls_json(root.path(), &[]);
    let ids: Vec<&str> = runs.iter().map(|r| r["run_id"].as_str().unwrap()).collect();
    assert_eq!(
        ids,
        ["stale", "fresh", "other"],
        "oldest first, deleted hidden"
    );
    assert_eq!(by_id(&runs, "stale")["status"], "crashed");
    assert!(by_id(&runs, "stale")["reason"]
        .as_str()
        .unwrap()
        .contains("heartbeat"));
    assert_eq!(by_id(&runs, "fresh")["status"], "running");

    let under_exp: Vec<Value> = ls_json(root.path(), &["--path", "exp"]);
    assert_eq!(
        under_exp.len(),
        2,
        "--path matches whole segments: {under_exp:?}"
    );
    assert_eq!(ls_json(root.path(), &["--status", "failed"]).len(), 1);
    let all = ls_json(root.path(), &["--all"]);
    assert_eq!(by_id(&all, "gone")["deleted"], true);
}

#[test]
fn empty_or_missing_root_is_not_an_error() {
    let root = tempfile::tempdir().unwrap();
    assert!(ls_json(&root.path().join("nothing-here"), &[]).is_empty());
    let out = agent()
        .args(["ls", "--root"])
        .arg(root.path())
        .output()
        .unwrap();
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("no runs under"));
}

#[test]
fn root_comes_from_runicorn_dir_and_no_color_is_respected() {
    let fixtures = fixture_copy("upstream-0.7.2");
    let out = agent()
        .arg("ls")
        .env("RUNICORN_DIR", fixtures.path())
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("20261126_122856_0e66f9"), "{text}");
    assert!(
        !text.contains('\x1b'),
        "NO_COLOR and a pipe mean no escapes"
    );
}

#[test]
fn listing_through_the_index_follows_changes_and_survives_a_damaged_index() {
    let root = tempfile::tempdir().unwrap();
    let line = |s: u32| {
        format!("{{\"ts\": {s}, \"type\": \"metrics\", \"data\": {{\"loss\": 1, \"global_step\": {s}, \"time\": {s}}}}}\n")
    };
    write_run(
        root.path(),
        "runs/p/r1",
        json!({"id": "r1"}),
        json!({"status": "running", "host": "elsewhere"}),
        &line(1),
    );
    assert_eq!(ls_json(root.path(), &[])[0]["points"], 1);
    assert!(
        root.path().join(".runicorn-agent/index.sqlite").exists(),
        "the first listing builds the index"
    );
    let events = root.path().join("runs/p/r1/events.jsonl");
    fs::write(&events, format!("{}{}{}", line(1), line(2), line(3))).unwrap();
    fs::write(
        root.path().join("runs/p/r1/status.json"),
        r#"{"status": "finished"}"#,
    )
    .unwrap();
    let r = &ls_json(root.path(), &[])[0];
    assert_eq!(
        (
            r["points"].as_u64(),
            r["last_step"].as_i64(),
            r["status"].as_str()
        ),
        (Some(3), Some(3), Some("finished"))
    );
    // The index is only a cache: garbage in its place is replaced, and the listing is unchanged.
    for f in ["index.sqlite-wal", "index.sqlite-shm"] {
        let _ = fs::remove_file(root.path().join(".runicorn-agent").join(f));
    }
    fs::write(
        root.path().join(".runicorn-agent/index.sqlite"),
        vec![b'x'; 4096],
    )
    .unwrap();
    let again = ls_json(root.path(), &[]);
    assert_eq!(again[0]["points"], 3);
    assert_eq!(ls_json(root.path(), &["--no-index"]), again);
}

#[test]
fn read_only_root_is_listed_without_an_index() {
    let root = fixture_copy("upstream-0.7.2");
    let mut perms = fs::metadata(root.path()).unwrap().permissions();
    std::os::unix::fs::PermissionsExt::set_mode(&mut perms, 0o555);
    fs::set_permissions(root.path(), perms).unwrap();
    let is_root_user = fs::write(root.path().join("probe"), "").is_ok();
    let out = agent()
        .args(["ls", "--json", "--root"])
        .arg(root.path())
        .output()
        .unwrap();
    let mut perms = fs::metadata(root.path()).unwrap().permissions();
    std::os::unix::fs::PermissionsExt::set_mode(&mut perms, 0o755);
    fs::set_permissions(root.path(), perms).unwrap();
    assert!(out.status.success(), "{}", describe(&out));
    let runs: Vec<Value> = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(runs.len(), 1);
    if !is_root_user {
        assert!(
            out.stderr.is_empty(),
            "no noise for a read-only root: {}",
            describe(&out)
        );
    }
}

/// `count` finished runs with no events under `runs/<group>/`.
fn write_finished_runs(root: &Path, group: &str, count: usize) {
    for i in 0..count {
        let id = format!("run{i:04}");
        write_run(
            root,
            &format!("runs/{group}/{id}"),
            json!({"id": id}),
            json!({"status": "finished"}),
            "",
        );
    }
}

/// `runicorn-agent ls --json --root ROOT`, started with its output piped.
fn spawn_ls_json(root: &Path) -> std::process::Child {
    agent()
        .args(["ls", "--json", "--root"])
        .arg(root)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap()
}

#[test]
fn a_reader_that_goes_away_is_not_an_error() {
    let root = tempfile::tempdir().unwrap();
    write_finished_runs(root.path(), "many", 400);
    let mut child = spawn_ls_json(root.path());
    let mut first = [0u8; 1];
    std::io::Read::read_exact(child.stdout.as_mut().unwrap(), &mut first).unwrap();
    drop(child.stdout.take());
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "like `ls | head`: {}", describe(&out));
    assert!(out.stderr.is_empty(), "{}", describe(&out));
}

#[test]
fn concurrent_listings_of_a_fresh_root_all_succeed_quietly() {
    let root = tempfile::tempdir().unwrap();
    write_finished_runs(root.path(), "p", 50);
    let children: Vec<_> = (0..6).map(|_| spawn_ls_json(root.path())).collect();
    for child in children {
        let out = child.wait_with_output().unwrap();
        assert!(out.status.success(), "{}", describe(&out));
        assert!(
            out.stderr.is_empty(),
            "no index warnings when listings race: {}",
            describe(&out)
        );
        let runs: Vec<Value> = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(runs.len(), 50);
    }
}

/// A finished run whose watched `acc` logs NaN at step 1, and a clean run beside it.
fn write_nan_and_clean_runs(root: &Path) {
    use runicorn_protocol::run_format::{AlertConfig, RunOutcome, RunSpec, RunWriter};
    for (id, acc) in [("nan", f64::NAN), ("clean", 0.5)] {
        let mut spec = RunSpec::new(root, "runicorn-tests");
        spec.path = Some("ls/alerts".into());
        spec.run_id = Some(id.into());
        spec.alerts = AlertConfig {
            watch: Some(vec!["acc".into()]),
            gpu_idle_after_s: None,
        };
        let mut w = RunWriter::create(&spec).unwrap();
        w.log_metrics(&[("acc", 0.1)], None, None).unwrap();
        w.log_metrics(&[("acc", acc)], None, None).unwrap();
        w.finish(RunOutcome::finished()).unwrap();
    }
}

#[test]
fn ls_shows_the_alerts_the_resident_agent_raised() {
    let root = tempfile::tempdir().unwrap();
    write_nan_and_clean_runs(root.path());
    let before = ls_json(root.path(), &[]);
    assert_eq!(
        by_id(&before, "nan")["alerts"],
        json!([]),
        "none raised yet"
    );

    // The resident agent scans the root and raises the NaN alert; `ls` shows it.
    let _daemon = runicorn_tests::daemon::Daemon::start(root.path(), &[]);
    let mut runs = Vec::new();
    let raised = runicorn_tests::wait_until(30.0, || {
        runs = ls_json(root.path(), &[]);
        by_id(&runs, "nan")["alerts"]
            .as_array()
            .is_some_and(|a| !a.is_empty())
    });
    assert!(raised, "no alert listed: {runs:#?}");
    let alerts = by_id(&runs, "nan")["alerts"].as_array().unwrap().clone();
    assert_eq!(alerts.len(), 1, "{alerts:?}");
    assert_eq!(alerts[0]["id"], "nonfinite:acc");
    assert_eq!(alerts[0]["kind"], "nonfinite");
    assert_eq!(alerts[0]["key"], "acc");
    assert_eq!(alerts[0]["value"], "NaN");
    assert!(alerts[0]["raised_at"].as_f64().is_some());
    assert_eq!(by_id(&runs, "clean")["alerts"], json!([]));

    let out = agent()
        .arg("ls")
        .arg("--root")
        .arg(root.path())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", describe(&out));
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(table.contains("ALERTS"), "{table}");
    let row = |id: &str| {
        table
            .lines()
            .find(|l| l.starts_with(id))
            .unwrap_or_else(|| panic!("no row {id}: {table}"))
            .to_owned()
    };
    assert!(row("nan").trim_end().ends_with("!nonfinite"), "{table}");
    assert!(row("clean").trim_end().ends_with('-'), "{table}");
    assert!(table.contains("2 runs, 1 with alerts"), "{table}");
}
