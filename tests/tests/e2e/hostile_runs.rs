//! One bad run never stops a remote: a storage root holding hostile runs (FIFOs and devices in
//! place of run files, links out of the root, names the wire cannot carry, a summary nested
//! 126 levels deep, missing and unknown statuses) next to good ones. `runicorn-agent ls`
//! finishes and reports each bad run with its reason; `runicorn-hub connect` over `local:` and
//! over a real sshd stores the good runs point for point and the bad ones with their reason;
//! `serve --stdio` never puts a forbidden name on the wire, reports the run folder it cannot
//! name in `skipped` and odd files in `skipped_files`, and fits a run too large for the
//! smallest frame.
//! The agent runs under a 1 GiB address-space limit and every command under a deadline, so an
//! unbounded read or a hang fails the test.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

use runicorn_store::{RunFilter, Store};
use runicorn_tests::hostile::{limited_agent, readable_source_points, write_hostile_runs, Hostile};
use runicorn_tests::hub::{connect_local, connect_ssh, count, show, store_points, write_runs};
use runicorn_tests::sshd::{ClientHome, Sshd};
use runicorn_tests::{agent, describe, output_within};
use serde_json::Value;

/// Longest any one command may take here (a hang fails the test).
const DEADLINE: Duration = Duration::from_secs(90);

/// A root with 6 good runs (`runs/exp/...`) and the hostile runs (`runs/bad/...`).
fn hostile_root() -> (tempfile::TempDir, Vec<Hostile>) {
    let root = tempfile::tempdir().unwrap();
    write_runs(root.path(), 6, |i| 20 + i * 3);
    let hostile = write_hostile_runs(root.path());
    (root, hostile)
}

fn ls_json_limited(root: &Path, scratch: &Path, extra: &[&str]) -> Vec<Value> {
    let mut cmd = std::process::Command::new(limited_agent(scratch));
    cmd.env("NO_COLOR", "1")
        .arg("ls")
        .arg("--root")
        .arg(root)
        .arg("--json")
        .args(extra);
    let out = output_within(&mut cmd, DEADLINE);
    assert!(out.status.success(), "{}", describe(&out));
    serde_json::from_slice::<Value>(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", describe(&out)))
        .as_array()
        .cloned()
        .unwrap()
}

/// ls --json rows by run directory relative to the root.
fn by_dir(rows: &[Value], root: &Path) -> BTreeMap<String, Value> {
    rows.iter()
        .map(|r| {
            let dir = Path::new(r["dir"].as_str().unwrap());
            let rel = dir
                .strip_prefix(root)
                .unwrap()
                .to_string_lossy()
                .into_owned();
            (rel, r.clone())
        })
        .collect()
}

fn check_listing(rows: &BTreeMap<String, Value>, root: &Path, hostile: &[Hostile]) {
    let source = readable_source_points(root);
    for dir in source.keys().filter(|d| d.starts_with("runs/exp/")) {
        let row = &rows[dir];
        assert_eq!(row["status"], "finished", "{dir}: {row}");
        let points: usize = source[dir].values().map(BTreeMap::len).sum();
        // A run's points: every value logged (a step may repeat a key in `val` rows).
        assert!(row["points"].as_u64().unwrap() as usize >= points, "{row}");
    }
    for h in hostile {
        let row = rows
            .get(&h.dir)
            .unwrap_or_else(|| panic!("{} is not listed: {rows:#?}", h.dir));
        assert_eq!(row["status"], h.status, "{}: {row}", h.dir);
        let reason = row["reason"].as_str().unwrap_or("");
        assert!(reason.contains(h.reason), "{}: reason {reason:?}", h.dir);
        if h.status == "unreadable" {
            assert!(!reason.is_empty(), "{}: an unreadable run says why", h.dir);
        }
    }
}

#[test]
fn ls_lists_good_runs_and_each_hostile_one_with_its_reason_without_hanging() {
    let (root, hostile) = hostile_root();
    let scratch = tempfile::tempdir().unwrap();
    // Through the index, twice (the second from its cache), and without it.
    for extra in [&[][..], &[][..], &["--no-index"][..]] {
        let rows = ls_json_limited(root.path(), scratch.path(), extra);
        assert_eq!(rows.len(), 6 + hostile.len(), "{rows:#?}");
        check_listing(&by_dir(&rows, root.path()), root.path(), &hostile);
    }
    // The table finishes too, and its warnings name the unreadable runs.
    let mut cmd = agent();
    cmd.arg("ls").arg("--root").arg(root.path());
    let out = output_within(&mut cmd, DEADLINE);
    assert!(out.status.success(), "{}", describe(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("meta.json is a FIFO"), "{stderr}");
}

/// What the store holds of one remote, by run directory.
fn stored_runs(hub_dir: &Path, remote: &str) -> BTreeMap<String, runicorn_store::RunRow> {
    let store = Store::open_read_only(hub_dir).unwrap();
    store
        .list_runs(&RunFilter {
            remote: Some(remote.to_owned()),
            include_deleted: true,
            ..RunFilter::default()
        })
        .unwrap()
        .into_iter()
        .map(|r| (r.dir.clone(), r))
        .collect()
}

/// The store after a sync of the hostile root: good runs point for point, hostile ones with
/// their status and reason, the run folder the wire cannot name left out.
fn check_store(root: &Path, hub_dir: &Path, remote: &str, hostile: &[Hostile]) {
    let runs = stored_runs(hub_dir, remote);
    let source = readable_source_points(root);
    let stored = store_points(hub_dir, remote);
    for dir in source.keys().filter(|d| d.starts_with("runs/exp/")) {
        assert_eq!(
            stored.get(dir),
            Some(&source[dir]),
            "points of {dir} differ"
        );
        assert_eq!(runs[dir].status, "finished");
    }
    assert!(count(&stored) > 0);
    for h in hostile {
        if h.dir.contains('\\') {
            assert!(
                !runs.contains_key(&h.dir),
                "a name the wire forbids was sent"
            );
            continue;
        }
        let run = runs
            .get(&h.dir)
            .unwrap_or_else(|| panic!("{} is not stored: {:?}", h.dir, runs.keys()));
        assert_eq!(run.status, h.status, "{}", h.dir);
        let reason = run.reason.as_deref().unwrap_or("");
        assert!(reason.contains(h.reason), "{}: reason {reason:?}", h.dir);
    }
    // Readable odd runs arrive whole: the deep summary cut, the odd files left out.
    let deep = &runs["runs/bad/deep-summary"];
    let summary = serde_json::to_string(deep.summary.as_ref().unwrap()).unwrap();
    assert!(
        summary.contains("<cut: nested deeper than 64 levels>"),
        "{summary}"
    );
    assert_eq!(
        stored["runs/bad/deep-summary"],
        source["runs/bad/deep-summary"]
    );
    assert_eq!(stored["runs/bad/odd-names"], source["runs/bad/odd-names"]);
    let store = Store::open_read_only(hub_dir).unwrap();
    let files: Vec<String> = store
        .files(runs["runs/bad/odd-names"].key)
        .unwrap()
        .into_iter()
        .map(|f| f.path)
        .collect();
    assert_eq!(files, ["events.jsonl", "meta.json", "status.json"]);
}

#[test]
fn a_local_sync_stores_the_good_runs_whole_and_the_hostile_ones_with_their_reason() {
    let (root, hostile) = hostile_root();
    let scratch = tempfile::tempdir().unwrap();
    let home = ClientHome::empty();
    let hub_dir = tempfile::tempdir().unwrap();
    let mut cmd = connect_local(
        home.path(),
        hub_dir.path(),
        root.path(),
        &limited_agent(scratch.path()),
    );
    cmd.args(["--once", "--no-ui", "--name", "here"]);
    let out = output_within(&mut cmd, DEADLINE);
    assert!(out.status.success(), "{}", show(&out));
    check_store(root.path(), hub_dir.path(), "here", &hostile);
}

#[test]
fn a_sync_over_sshd_stores_the_good_runs_whole_and_the_hostile_ones_with_their_reason() {
    let (root, hostile) = hostile_root();
    let scratch = tempfile::tempdir().unwrap();
    let sshd = Sshd::start();
    let home = sshd.client_home();
    home.trust(&sshd);
    let hub_dir = tempfile::tempdir().unwrap();
    let mut cmd = connect_ssh(
        home.path(),
        hub_dir.path(),
        &sshd,
        root.path(),
        &limited_agent(scratch.path()),
    );
    cmd.args(["--once", "--no-ui", "--name", "gpu"]);
    let out = output_within(&mut cmd, DEADLINE);
    assert!(out.status.success(), "{}", show(&out));
    check_store(root.path(), hub_dir.path(), "gpu", &hostile);
}

#[test]
fn links_to_dev_zero_for_meta_and_events_are_refused_within_the_memory_limit() {
    let scratch = tempfile::tempdir().unwrap();
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("runs/p/r1");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("status.json"), "{\"status\":\"finished\"}").unwrap();
    std::os::unix::fs::symlink("/dev/zero", dir.join("meta.json")).unwrap();
    std::os::unix::fs::symlink("/dev/zero", dir.join("events.jsonl")).unwrap();
    let rows = ls_json_limited(root.path(), scratch.path(), &["--no-index"]);
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0]["status"], "unreadable", "{}", rows[0]);
}

#[test]
fn serve_never_sends_a_forbidden_name_reports_skipped_entries_and_fits_huge_runs_in_a_frame() {
    use runicorn_protocol::run_format::RunStatus;
    use runicorn_protocol::wire::{check_wire_path, Body, PointsWanted, MIN_MAX_FRAME_BYTES};
    use runicorn_tests::agent_pipe::{hub_hello, AgentPipe};

    let (root, hostile) = hostile_root();
    // A run whose records and head alone are larger than the smallest frame a hub may ask for.
    let big = root.path().join("runs/big/r1");
    std::fs::create_dir_all(&big).unwrap();
    let alias = "a".repeat(2 << 20);
    std::fs::write(
        big.join("meta.json"),
        serde_json::json!({"id": "r1", "alias": alias}).to_string(),
    )
    .unwrap();
    std::fs::write(big.join("status.json"), "{\"status\":\"finished\"}").unwrap();
    let summary: serde_json::Map<String, Value> = (0..150_000)
        .map(|i| (format!("k{i}"), Value::from(i)))
        .collect();
    std::fs::write(big.join("summary.json"), Value::Object(summary).to_string()).unwrap();

    let mut agent = AgentPipe::spawn(root.path(), &[], &[]);
    let mut hello = hub_hello(vec![runicorn_protocol::wire::PROTOCOL_VERSION]);
    hello.max_frame_bytes = MIN_MAX_FRAME_BYTES;
    match agent.request(Body::Hello(hello)) {
        Body::Hello(h) => agent.hello = Some(h),
        other => panic!("{other:?}"),
    }
    let batches = agent.changes_all(None, 1000);
    let first = &batches[0];
    assert!(first.reset);
    assert_eq!(first.skipped.len(), 1, "{:?}", first.skipped);
    assert_eq!(first.skipped[0].name, "runs/bad/x\\\\y");
    assert!(
        first.skipped[0].reason.contains("backslash"),
        "{:?}",
        first.skipped
    );
    assert!(batches[1..].iter().all(|b| b.skipped.is_empty()));
    let runs: BTreeMap<String, _> = batches
        .iter()
        .flat_map(|b| b.runs.iter())
        .map(|r| (r.dir.clone(), r.clone()))
        .collect();
    // The good runs, every hostile run but the one the wire cannot name, and the big one.
    assert_eq!(runs.len(), 6 + (hostile.len() - 1) + 1, "{:?}", runs.keys());
    for run in runs.values() {
        assert!(check_wire_path(&run.dir).is_ok(), "{}", run.dir);
        assert!(
            RunStatus::from_name(&run.status).is_some(),
            "{}",
            run.status
        );
        for f in &run.files {
            assert!(check_wire_path(&f.path).is_ok() && !f.path.chars().any(char::is_control));
        }
    }
    let odd = &runs["runs/bad/odd-names"];
    assert_eq!(odd.skipped_files_total, 4, "{:?}", odd.skipped_files);
    assert!(odd
        .skipped_files
        .iter()
        .any(|e| e.name == "esc\\u{1b}[31m.txt"));
    let big = &runs["runs/big/r1"];
    assert_eq!(big.status, "finished");
    assert!(big
        .summary
        .as_ref()
        .unwrap()
        .get("_runicorn_truncated")
        .is_some());
    assert!(big.alias.as_ref().unwrap().len() < 2048);

    assert!(first.skipped_listed);
    // Unchanged: the next answer does not repeat the skipped list.
    let cursor = batches.last().unwrap().cursor.clone();
    let next = agent.changes(Some(cursor.clone()), 10);
    assert!(next.skipped.is_empty() && !next.skipped_listed);
    // Points of a run whose events file is a FIFO: an answer, at once.
    let points = agent.point_batch(
        vec![PointsWanted {
            dir: "runs/bad/fifo-events".into(),
            offset: 0,
            next_line: 1,
        }],
        1 << 20,
    );
    assert_eq!(points.runs[0].steps.len(), 0);

    // Once the unnamable folder is renamed, the agent says its list is now empty.
    std::fs::rename(
        root.path().join("runs/bad/x\\y"),
        root.path().join("runs/bad/xy"),
    )
    .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut cursor = next.cursor;
    loop {
        let batch = agent.changes(Some(cursor.clone()), 100);
        if batch.skipped_listed {
            assert!(batch.skipped.is_empty(), "{:?}", batch.skipped);
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the emptied skipped list was never sent"
        );
        cursor = batch.cursor;
        std::thread::sleep(Duration::from_millis(200));
    }
}
