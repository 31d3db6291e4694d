//! `runicorn-agent serve --stdio` driven as the hub drives it: the real binary, frames on its
//! pipes, real run directories (written by the Rust writer, by hand, and by upstream).

use std::fs;
use std::io::Write;
use std::path::Path;
use std::time::{Duration, Instant};

use runicorn_protocol::run_format::{RunOutcome, RunSpec, RunWriter};
use runicorn_protocol::wire::{
    Body, ChangeBatch, Cursor, Envelope, ErrorCode, LogWanted, PointsWanted, RunChange,
    PROTOCOL_VERSION,
};
use runicorn_tests::agent_pipe::{hub_hello, AgentPipe};
use runicorn_tests::fixture_copy;
use serde_json::json;

fn write_run(root: &Path, rel: &str, status: &str, events: &str) {
    let dir = root.join(rel);
    fs::create_dir_all(&dir).unwrap();
    let id = rel.rsplit('/').next().unwrap();
    fs::write(
        dir.join("meta.json"),
        json!({"id": id, "created_at": 1.0}).to_string(),
    )
    .unwrap();
    fs::write(
        dir.join("status.json"),
        json!({"status": status}).to_string(),
    )
    .unwrap();
    fs::write(dir.join("events.jsonl"), events).unwrap();
}

fn append(path: &Path, text: &str) {
    let mut f = fs::OpenOptions::new().append(true).open(path).unwrap();
    f.write_all(text.as_bytes()).unwrap();
}

fn metrics_line(step: u64, loss: f64) -> String {
    format!("{{\"ts\": {step}.5, \"type\": \"metrics\", \"data\": {{\"loss\": {loss}, \"global_step\": {step}, \"time\": {step}.5}}}}\n")
}

fn error_of(body: Body) -> (ErrorCode, String) {
    match body {
        Body::Error(e) => (e.code, e.message),
        other => panic!("expected an error, got {other:?}"),
    }
}

fn run_named<'a>(batch: &'a ChangeBatch, dir: &str) -> &'a RunChange {
    batch
        .runs
        .iter()
        .find(|r| r.dir == dir)
        .unwrap_or_else(|| panic!("{dir} not listed: {:?}", batch.runs))
}

/// Asks for changes after `since` until some arrive (the watcher or the poll picks them up).
fn changes_after(agent: &mut AgentPipe, since: &Cursor, secs: f64) -> ChangeBatch {
    let deadline = Instant::now() + Duration::from_secs_f64(secs);
    loop {
        let batch = agent.changes(Some(since.clone()), 100);
        if !batch.runs.is_empty() || !batch.removed.is_empty() || Instant::now() > deadline {
            return batch;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn handshake_names_the_agent_and_refuses_what_it_cannot_speak() {
    let root = tempfile::tempdir().unwrap();
    let agent = AgentPipe::start(root.path(), &[], &[]);
    let hello = agent.hello.clone().unwrap();
    assert_eq!(hello.versions, vec![PROTOCOL_VERSION]);
    assert!(hello.software.starts_with("runicorn-agent/"));
    assert!(hello.capabilities.iter().any(|c| c == "points"));
    let canonical = fs::canonicalize(root.path()).unwrap();
    assert_eq!(hello.root.as_deref(), Some(canonical.to_str().unwrap()));
    assert!(hello.host.is_some_and(|h| !h.is_empty()));
    assert!(!agent.epoch().is_empty());
    drop(agent);

    // A hub that only speaks newer versions.
    let mut newer = AgentPipe::spawn(root.path(), &[], &[]);
    let (code, message) = error_of(newer.request(Body::Hello(hub_hello(vec![99, 100]))));
    assert_eq!(code, ErrorCode::Incompatible);
    assert!(
        message.contains("[99, 100]") && message.contains("[1]"),
        "both sides' versions: {message}"
    );
    assert!(message.contains("upgrade runicorn-agent"), "{message}");
    assert_eq!(
        newer.wait_exit(Duration::from_secs(5)).unwrap().code(),
        Some(2)
    );
    assert!(newer.stderr().contains("upgrade"), "{}", newer.stderr());

    // Anything but hello first.
    let mut rude = AgentPipe::spawn(root.path(), &[], &[]);
    let (code, message) = error_of(rude.request(Body::Subscribe {}));
    assert_eq!(code, ErrorCode::BadRequest);
    assert!(message.contains("hello"), "{message}");
    assert_eq!(
        rude.wait_exit(Duration::from_secs(5)).unwrap().code(),
        Some(2)
    );
}

#[test]
fn serve_without_stdio_says_only_stdio_is_supported() {
    let root = tempfile::tempdir().unwrap();
    let out = runicorn_tests::agent()
        .args(["serve", "--root"])
        .arg(root.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(out.stdout.is_empty());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--stdio"));
}

#[test]
fn a_full_listing_pages_by_max_runs_and_an_incremental_one_lists_only_changes() {
    let root = tempfile::tempdir().unwrap();
    for i in 0..300 {
        write_run(
            root.path(),
            &format!("runs/sweep/r{i:03}"),
            "finished",
            &metrics_line(1, 0.5),
        );
    }
    let mut agent = AgentPipe::start(root.path(), &[], &[]);
    let batches = agent.changes_all(None, 64);
    assert_eq!(batches.len(), 5);
    assert!(batches[0].reset, "no cursor: a reset listing");
    assert!(batches[1..].iter().all(|b| !b.reset));
    assert_eq!(
        batches.iter().map(|b| b.more).collect::<Vec<_>>(),
        [true, true, true, true, false]
    );
    let mut dirs: Vec<&str> = Vec::new();
    let mut last_seq = 0;
    for b in &batches {
        assert!(b.runs.len() <= 64);
        assert!(b.removed.is_empty());
        for r in &b.runs {
            assert!(r.seq > last_seq, "change order");
            last_seq = r.seq;
            dirs.push(&r.dir);
        }
        if b.more {
            assert_eq!(b.cursor.seq, b.runs.last().unwrap().seq);
        }
    }
    dirs.sort();
    dirs.dedup();
    assert_eq!(dirs.len(), 300);
    let cursor = batches.last().unwrap().cursor.clone();
    assert_eq!(cursor.seq, 300);
    let r = run_named(&batches[0], "runs/sweep/r000");
    assert_eq!((r.id.as_str(), r.path.as_str()), ("r000", "sweep"));
    assert_eq!(
        (r.layout.as_str(), r.status.as_str()),
        ("current", "finished")
    );
    assert_eq!(r.events.points, 1);

    // Nothing changed: nothing listed, and the cursor stays.
    let quiet = agent.changes(Some(cursor.clone()), 64);
    assert!(quiet.runs.is_empty() && !quiet.more && !quiet.reset);
    assert_eq!(quiet.cursor, cursor);

    let events = root.path().join("runs/sweep/r123/events.jsonl");
    append(&events, &metrics_line(2, 0.25));
    let batch = changes_after(&mut agent, &cursor, 10.0);
    assert_eq!(batch.runs.len(), 1, "{:?}", batch.runs);
    let r = &batch.runs[0];
    assert_eq!(r.dir, "runs/sweep/r123");
    assert_eq!((r.events.points, r.events.lines), (2, 2));
    assert_eq!(r.events.bytes, fs::metadata(&events).unwrap().len());
    assert_eq!(r.seq, 301);
    assert_eq!(batch.cursor.seq, 301);
}

#[test]
fn a_run_change_carries_records_config_files_and_hashes() {
    let root = fixture_copy("upstream-0.7.2");
    let dir = "runs/cv/resnet/20261126_122856_0e66f9";
    fs::write(
        root.path().join(dir).join("assets.json"),
        json!({"config": {"args": {"lr": 0.1, "bs": 8}, "extra": {"bs": 16}}}).to_string(),
    )
    .unwrap();
    let mut agent = AgentPipe::start(root.path(), &[], &[]);
    let batch = agent.changes(None, 10);
    let r = run_named(&batch, dir);
    assert_eq!(
        (r.id.as_str(), r.path.as_str(), r.alias.as_deref()),
        ("20261126_122856_0e66f9", "cv/resnet", Some("first"))
    );
    assert_eq!(r.status, "finished");
    assert_eq!((r.events.points, r.events.last_step), (11, Some(10)));
    assert_eq!(r.events.keys, vec!["acc", "loss"]);
    assert_eq!(r.meta.as_ref().unwrap()["alias"], "first");
    assert_eq!(r.status_record.as_ref().unwrap()["status"], "finished");
    assert_eq!(r.config, Some(json!({"lr": 0.1, "bs": 16})));
    let meta = r.files.iter().find(|f| f.path == "meta.json").unwrap();
    assert_eq!(meta.sha256.as_ref().map(String::len), Some(64));
    let events = r.files.iter().find(|f| f.path == "events.jsonl").unwrap();
    assert!(events.sha256.is_none(), "append-only files are not hashed");
    for f in &r.files {
        let on_disk = fs::metadata(root.path().join(dir).join(&f.path)).unwrap();
        assert_eq!(f.size, on_disk.len(), "{}", f.path);
    }
}

const EVENTS: &str = concat!(
    "{\"ts\": 1.5, \"type\": \"metrics\", \"data\": {\"loss\": 1.0, \"acc\": NaN, \"global_step\": 1, \"time\": 1.5}}\n",
    "{\"ts\": 2.5, \"type\": \"metrics\", \"data\": {\"loss\": Infinity, \"global_step\": 2}}\n",
    "{\"ts\": 3.5, \"type\": \"image\", \"data\": {\"key\": \"img\", \"path\": \"media/x.png\", \"step\": 3}}\n",
    "garbage\n",
    "{\"type\": \"metrics\", \"data\": {\"lr\": 0.1, \"loss\": -Infinity, \"global_step\": 7}}\n",
);
const TORN: &str =
    "{\"ts\": 9, \"type\": \"metrics\", \"data\": {\"loss\": 0.25, \"global_step\": 9";

/// One row of points: step, time, and each key's value.
type Row<K> = (i64, f64, Vec<(K, f64)>);

/// The rows of a point batch, flattened.
fn rows_of(batch: &runicorn_protocol::wire::PointBatch) -> Vec<Row<String>> {
    let mut rows = Vec::new();
    for run in &batch.runs {
        let mut these: Vec<Row<String>> = run
            .steps
            .iter()
            .zip(&run.times)
            .map(|(s, t)| (*s, *t, Vec::new()))
            .collect();
        for series in &run.series {
            for (i, v) in series.values.iter().enumerate() {
                let row = series.rows.as_ref().map_or(i, |r| r[i] as usize);
                these[row].2.push((series.key.clone(), *v));
            }
        }
        rows.extend(these);
    }
    rows
}

fn same_float(a: f64, b: f64) -> bool {
    (a.is_nan() && b.is_nan()) || a == b
}

#[test]
fn points_equal_the_file_point_for_point_and_a_torn_tail_waits() {
    let root = tempfile::tempdir().unwrap();
    let dir = "runs/p/pts";
    write_run(root.path(), dir, "running", &format!("{EVENTS}{TORN}"));
    let mut agent = AgentPipe::start(root.path(), &[], &[]);
    agent.changes(None, 10);
    let want = |offset, next_line| PointsWanted {
        dir: dir.into(),
        offset,
        next_line,
    };
    let whole = agent.point_batch(vec![want(0, 1)], 1 << 20);
    let run = &whole.runs[0];
    assert_eq!(
        (run.from, run.to),
        (0, EVENTS.len() as u64),
        "the torn line is not consumed"
    );
    assert_eq!(
        (run.next_line, run.eof, run.truncated, run.missing),
        (6, true, false, false)
    );
    assert_eq!(run.steps, vec![1, 2, 7]);
    assert_eq!(run.corrupt.len(), 1);
    assert_eq!(run.corrupt[0].line, 4);
    let loss = run.series.iter().find(|s| s.key == "loss").unwrap();
    assert!(loss.rows.is_none(), "loss is in every row");
    let acc = run.series.iter().find(|s| s.key == "acc").unwrap();
    assert_eq!(acc.rows, Some(vec![0]), "a sparse key names its rows");
    let expected: Vec<Row<&str>> = vec![
        (1, 1.5, vec![("loss", 1.0), ("acc", f64::NAN)]),
        (2, 2.5, vec![("loss", f64::INFINITY)]),
        (7, f64::NAN, vec![("loss", f64::NEG_INFINITY), ("lr", 0.1)]),
    ];
    let got = rows_of(&whole);
    assert_eq!(got.len(), expected.len());
    for ((s, t, vals), (es, et, evals)) in got.iter().zip(&expected) {
        assert_eq!(s, es);
        assert!(same_float(*t, *et), "{t} vs {et}");
        let mut vals = vals.clone();
        vals.sort_by(|a, b| a.0.cmp(&b.0));
        let mut evals = evals.clone();
        evals.sort_by(|a, b| a.0.cmp(b.0));
        assert_eq!(vals.len(), evals.len());
        for ((k, v), (ek, ev)) in vals.iter().zip(&evals) {
            assert_eq!(k, ek);
            assert!(same_float(*v, *ev), "{k}: {v} vs {ev}");
        }
    }

    // A budget of one byte still reads one line per request; together they are the whole.
    let (mut offset, mut next_line, mut paged) = (0, 1, Vec::new());
    for _ in 0..10 {
        let b = agent.point_batch(vec![want(offset, next_line)], 1);
        let r = &b.runs[0];
        assert!(r.to > r.from || r.eof);
        paged.extend(rows_of(&b));
        (offset, next_line) = (r.to, r.next_line);
        if r.eof {
            break;
        }
    }
    assert_eq!(offset, EVENTS.len() as u64);
    assert_eq!(paged.len(), got.len());

    // The torn line, once completed, is read from where reading stopped.
    append(&root.path().join(dir).join("events.jsonl"), "}}\n");
    let more = agent.point_batch(vec![want(offset, next_line)], 1 << 20);
    assert_eq!(more.runs[0].steps, vec![9]);
    assert_eq!(more.runs[0].series[0].values, vec![0.25]);
    assert_eq!(more.runs[0].next_line, 7);

    // An offset beyond the file: it was replaced; reading starts again.
    let again = agent.point_batch(vec![want(1 << 20, 99)], 1 << 20);
    assert!(again.runs[0].truncated);
    assert_eq!(again.runs[0].steps.len(), 4);
}

#[test]
fn logs_come_as_whole_lines_from_offsets_or_as_a_tail() {
    let root = tempfile::tempdir().unwrap();
    let dir = "runs/p/logged";
    write_run(root.path(), dir, "running", "");
    let lines: String = (0..20_000)
        .map(|i| format!("[12:00:00] step {i}\n"))
        .collect();
    fs::write(
        root.path().join(dir).join("logs.txt"),
        format!("{lines}[12:00:01] half"),
    )
    .unwrap();
    let mut agent = AgentPipe::start(root.path(), &[], &[]);
    let batch = agent.changes(None, 10);
    assert_eq!(batch.runs[0].log_bytes, lines.len() as u64 + 15);
    let want = |offset| LogWanted {
        dir: dir.into(),
        offset,
    };
    let tail = match agent.log(vec![want(None)], 1 << 20) {
        Body::LogBatch(b) => b.runs.into_iter().next().unwrap(),
        other => panic!("{other:?}"),
    };
    let tail_text = String::from_utf8(tail.bytes).unwrap();
    assert!(tail_text.ends_with("step 19999\n") && tail_text.starts_with("[12:00:00]"));
    assert!(tail_text.len() <= 64 * 1024);
    assert_eq!(tail.to, lines.len() as u64);
    let mut offset = 0;
    let mut text = String::new();
    loop {
        let b = agent.log_batch(vec![want(Some(offset))], 100_000);
        let c = &b.runs[0];
        assert_eq!(c.from, offset);
        text.push_str(std::str::from_utf8(&c.bytes).unwrap());
        offset = c.to;
        if c.eof {
            break;
        }
    }
    assert_eq!(text, lines, "whole lines; the unfinished last line waits");
    let shrunk = agent.log_batch(vec![want(Some(1 << 30))], 100);
    assert!(shrunk.runs[0].truncated);
}

#[test]
fn a_subscriber_hears_of_an_appended_point_within_a_second() {
    let root = tempfile::tempdir().unwrap();
    let mut spec = RunSpec::new(root.path(), "tests");
    spec.path = Some("live".into());
    let mut writer = RunWriter::create(&spec).unwrap();
    writer.log_metrics(&[("loss", 1.0)], None, None).unwrap();
    writer.flush().unwrap();
    let mut agent = AgentPipe::start(root.path(), &[], &[]);
    let cursor = agent.changes(None, 10).cursor;
    assert!(matches!(
        agent.request(Body::Subscribe {}),
        Body::Subscribed {}
    ));
    // Heartbeats may announce the run again; drain what is already there.
    while agent.wait_notice(Duration::from_millis(300)).is_some() {}
    let started = Instant::now();
    writer.log_metrics(&[("loss", 0.5)], None, None).unwrap();
    writer.flush().unwrap();
    let notice = agent
        .wait_notice(Duration::from_secs(3))
        .unwrap_or_else(|| panic!("no notice\n{}", agent.stderr()));
    let waited = started.elapsed();
    assert!(waited < Duration::from_secs(1), "notice after {waited:?}");
    assert_eq!(notice.epoch, cursor.epoch);
    assert!(notice.seq > cursor.seq);
    let batch = agent.changes(Some(cursor), 10);
    assert_eq!(batch.runs[0].events.points, 2);
    writer.finish(RunOutcome::finished()).unwrap();
}

#[test]
fn without_the_watcher_the_periodic_scan_still_sends_notices() {
    let root = tempfile::tempdir().unwrap();
    let dir = "runs/p/polled";
    write_run(root.path(), dir, "finished", &metrics_line(1, 1.0));
    let mut agent = AgentPipe::start(
        root.path(),
        &["--poll", "0.2"],
        &[("RUNICORN_AGENT_NO_WATCH", "1")],
    );
    let cursor = agent.changes(None, 10).cursor;
    assert!(matches!(
        agent.request(Body::Subscribe {}),
        Body::Subscribed {}
    ));
    append(
        &root.path().join(dir).join("events.jsonl"),
        &metrics_line(2, 0.5),
    );
    let notice = agent
        .wait_notice(Duration::from_secs(3))
        .unwrap_or_else(|| panic!("no notice\n{}", agent.stderr()));
    assert!(notice.seq > cursor.seq);
    let batch = agent.changes(Some(cursor), 10);
    assert_eq!(batch.runs[0].events.points, 2);
}

#[test]
fn a_deleted_index_means_a_new_epoch_and_a_reset_listing() {
    let root = tempfile::tempdir().unwrap();
    write_run(root.path(), "runs/p/a", "finished", "");
    write_run(root.path(), "runs/p/b", "finished", "");
    let mut agent = AgentPipe::start(root.path(), &[], &[]);
    let cursor = agent.changes(None, 10).cursor;
    drop(agent);

    // Restarted with its index: same epoch, nothing new.
    let mut agent = AgentPipe::start(root.path(), &[], &[]);
    assert_eq!(agent.epoch(), cursor.epoch);
    let same = agent.changes(Some(cursor.clone()), 10);
    assert!(!same.reset && same.runs.is_empty(), "{same:?}");
    drop(agent);

    fs::remove_dir_all(root.path().join(".runicorn-agent")).unwrap();
    let mut agent = AgentPipe::start(root.path(), &[], &[]);
    assert_ne!(agent.epoch(), cursor.epoch);
    let fresh = agent.changes(Some(cursor), 10);
    assert!(fresh.reset);
    assert_eq!(fresh.runs.len(), 2);
    assert_eq!(fresh.cursor.epoch, agent.epoch());
}

#[test]
fn a_removed_run_is_listed_as_removed_and_its_points_as_missing() {
    let root = tempfile::tempdir().unwrap();
    write_run(root.path(), "runs/p/keep", "finished", "");
    write_run(
        root.path(),
        "runs/p/gone",
        "finished",
        &metrics_line(1, 1.0),
    );
    let mut agent = AgentPipe::start(root.path(), &[], &[]);
    let cursor = agent.changes(None, 10).cursor;
    fs::remove_dir_all(root.path().join("runs/p/gone")).unwrap();
    let batch = changes_after(&mut agent, &cursor, 10.0);
    assert_eq!(batch.removed, vec!["runs/p/gone"]);
    assert!(batch.runs.is_empty());
    let points = agent.point_batch(
        vec![PointsWanted {
            dir: "runs/p/gone".into(),
            offset: 10,
            next_line: 2,
        }],
        1000,
    );
    assert!(points.runs[0].missing);
    // A reset listing leaves tombstones out.
    let reset = agent.changes(None, 10);
    assert!(reset.removed.is_empty());
    assert_eq!(reset.runs.len(), 1);
}

#[test]
fn paths_outside_the_root_are_refused_and_serving_goes_on() {
    let root = tempfile::tempdir().unwrap();
    write_run(root.path(), "runs/p/a", "finished", "");
    let mut agent = AgentPipe::start(root.path(), &[], &[]);
    agent.changes(None, 10);
    let points = |dir: &str| PointsWanted {
        dir: dir.into(),
        offset: 0,
        next_line: 1,
    };
    for bad in ["../etc", "runs/../../etc", "/etc/passwd"] {
        let (code, message) = error_of(agent.points(vec![points("runs/p/a"), points(bad)], 100));
        assert_eq!(code, ErrorCode::OutsideRoot, "{bad}: {message}");
        let (code, _) = error_of(agent.log(
            vec![LogWanted {
                dir: bad.into(),
                offset: None,
            }],
            100,
        ));
        assert_eq!(code, ErrorCode::OutsideRoot);
    }
    let (code, message) = error_of(agent.points(vec![points("runs/p/nope")], 100));
    assert_eq!(code, ErrorCode::NotFound, "{message}");
    // A link inside the root to somewhere else is no run either.
    std::os::unix::fs::symlink("/etc", root.path().join("runs/p/link")).unwrap();
    let (code, _) = error_of(agent.points(vec![points("runs/p/link")], 100));
    assert_eq!(code, ErrorCode::NotFound);
    // Still serving.
    assert_eq!(agent.changes(None, 10).runs.len(), 1);
    assert!(agent.child.try_wait().unwrap().is_none());
}

#[test]
fn an_oversized_or_broken_frame_from_the_hub_ends_the_session_with_exit_2() {
    let root = tempfile::tempdir().unwrap();
    let mut agent = AgentPipe::start(root.path(), &[], &[]);
    agent.send_raw(&(64u32 << 20).to_be_bytes());
    let answer = agent
        .recv(Duration::from_secs(10))
        .expect("an error answer");
    assert_eq!(answer.id, 0);
    assert_eq!(error_of(answer.body).0, ErrorCode::TooLarge);
    assert_eq!(
        agent.wait_exit(Duration::from_secs(5)).unwrap().code(),
        Some(2)
    );

    let mut agent = AgentPipe::start(root.path(), &[], &[]);
    let unknown = br#"{"id":41,"body":{"teleport":{}}}"#;
    let mut frame = (unknown.len() as u32).to_be_bytes().to_vec();
    frame.extend_from_slice(unknown);
    agent.send_raw(&frame);
    let answer = agent
        .recv(Duration::from_secs(10))
        .expect("an error answer");
    assert_eq!(
        answer.id, 41,
        "the id of an unknown message is still answered"
    );
    assert_eq!(error_of(answer.body).0, ErrorCode::BadRequest);
    assert_eq!(
        agent.wait_exit(Duration::from_secs(5)).unwrap().code(),
        Some(2)
    );
    // The stream carried frames only.
    assert!(agent.recv(Duration::from_millis(100)).is_none());
}

#[test]
fn closing_stdin_ends_the_agent_promptly_with_exit_0() {
    let root = tempfile::tempdir().unwrap();
    for i in 0..50 {
        write_run(root.path(), &format!("runs/p/r{i}"), "finished", "");
    }
    let mut agent = AgentPipe::start(root.path(), &["--poll", "0.1"], &[]);
    agent.changes(None, 10);
    let started = Instant::now();
    agent.close_stdin();
    let status = agent.wait_exit(Duration::from_secs(5)).expect("exits");
    assert_eq!(status.code(), Some(0), "{}", agent.stderr());
    assert!(
        started.elapsed() < Duration::from_millis(1500),
        "{:?}",
        started.elapsed()
    );

    let mut idle = AgentPipe::spawn(root.path(), &[], &[]);
    idle.close_stdin();
    assert_eq!(
        idle.wait_exit(Duration::from_secs(5)).unwrap().code(),
        Some(0)
    );
}

#[test]
fn a_root_that_cannot_hold_the_index_is_served_from_memory() {
    let root = tempfile::tempdir().unwrap();
    write_run(root.path(), "runs/p/a", "finished", "");
    // A file where the index folder belongs: the index cannot be created, whoever we are.
    fs::write(root.path().join(".runicorn-agent"), "not a folder").unwrap();
    let mut first = AgentPipe::start(root.path(), &[], &[]);
    assert_eq!(first.changes(None, 10).runs.len(), 1);
    assert!(first.stderr().contains("memory"), "{}", first.stderr());
    let epoch = first.epoch();
    drop(first);
    let second = AgentPipe::start(root.path(), &[], &[]);
    assert_ne!(
        second.epoch(),
        epoch,
        "an index in memory is a new epoch each time"
    );
    drop(second);
    assert_eq!(
        fs::read_to_string(root.path().join(".runicorn-agent")).unwrap(),
        "not a folder"
    );

    // A read-only root (only testable when permissions apply to us).
    let ro = tempfile::tempdir().unwrap();
    write_run(ro.path(), "runs/p/a", "finished", "");
    let mut perms = fs::metadata(ro.path()).unwrap().permissions();
    std::os::unix::fs::PermissionsExt::set_mode(&mut perms, 0o555);
    fs::set_permissions(ro.path(), perms.clone()).unwrap();
    let is_root_user = fs::write(ro.path().join("probe"), "").is_ok();
    if !is_root_user {
        let mut agent = AgentPipe::start(ro.path(), &[], &[]);
        assert_eq!(agent.changes(None, 10).runs.len(), 1);
        assert!(agent.stderr().contains("memory"), "{}", agent.stderr());
        assert!(!ro.path().join(".runicorn-agent").exists());
    }
    std::os::unix::fs::PermissionsExt::set_mode(&mut perms, 0o755);
    fs::set_permissions(ro.path(), perms).unwrap();
}

#[test]
fn requests_keep_their_ids_and_frames_never_mix() {
    let root = tempfile::tempdir().unwrap();
    write_run(root.path(), "runs/p/a", "finished", &metrics_line(1, 1.0));
    let mut agent = AgentPipe::start(root.path(), &[], &[]);
    agent.changes(None, 10);
    let ids: Vec<u64> = (0..20)
        .map(|_| {
            agent.send(Body::Points(runicorn_protocol::wire::PointsRequest {
                runs: vec![PointsWanted {
                    dir: "runs/p/a".into(),
                    offset: 0,
                    next_line: 1,
                }],
                max_bytes: 1000,
            }))
        })
        .collect();
    let mut got = Vec::new();
    while got.len() < ids.len() {
        let Envelope { id, body } = agent.recv(Duration::from_secs(10)).expect("answers");
        if let Body::PointBatch(b) = body {
            assert_eq!(b.runs[0].steps, vec![1]);
            got.push(id);
        }
    }
    assert_eq!(got, ids, "answered in order, each with its id");
}

/// Writes version `v` of `artifacts/<kind>/<name>` as the Python SDK does (the bytes whole in
/// the pool, hard-linked into `v<N>/files/`, manifest and metadata, then `versions.json` with
/// every version up to `v` and `aliases`).
fn write_artifact_version(root: &Path, kind: &str, name: &str, v: u64, aliases: &[(&str, u64)]) {
    use runicorn_protocol::run_format::artifacts::fanout_path;
    let dir = root.join("artifacts").join(kind).join(name);
    let bytes = format!("{name} version {v}\n").repeat(100);
    let tmp = root.join("artifacts/.pool/tmp/incoming");
    fs::create_dir_all(tmp.parent().unwrap()).unwrap();
    fs::write(&tmp, &bytes).unwrap();
    let sha = runicorn_tests::sha256sum(&tmp);
    let pooled = root.join("artifacts/.pool").join(fanout_path(&sha));
    fs::create_dir_all(pooled.parent().unwrap()).unwrap();
    fs::rename(&tmp, &pooled).unwrap();
    let vdir = dir.join(format!("v{v}"));
    fs::create_dir_all(vdir.join("files")).unwrap();
    fs::hard_link(&pooled, vdir.join("files/w.bin")).unwrap();
    fs::write(
        vdir.join("manifest.json"),
        json!({"files": [{"path": "w.bin", "size": bytes.len(), "sha256": sha}], "references": []})
            .to_string(),
    )
    .unwrap();
    fs::write(
        vdir.join("metadata.json"),
        json!({"name": name, "type": kind, "version": v, "metadata": {"v": v}, "created_at": 1.0})
            .to_string(),
    )
    .unwrap();
    let versions: Vec<_> = (1..=v)
        .map(|n| json!({"version": n, "created_at": 1.0, "size": bytes.len(), "files": 1}))
        .collect();
    let aliases: serde_json::Map<String, serde_json::Value> = aliases
        .iter()
        .map(|(a, n)| ((*a).to_owned(), json!(n)))
        .collect();
    let index = json!({"name": name, "type": kind, "versions": versions, "aliases": aliases});
    let tmp = dir.join(".versions.json.tmp");
    fs::write(&tmp, index.to_string()).unwrap();
    fs::rename(tmp, dir.join("versions.json")).unwrap();
}

/// Asks for changes after `since` until an artifact change arrives.
fn artifact_changes_after(agent: &mut AgentPipe, since: &Cursor, secs: f64) -> ChangeBatch {
    let deadline = Instant::now() + Duration::from_secs_f64(secs);
    loop {
        let batch = agent.changes(Some(since.clone()), 100);
        if !batch.artifacts.is_empty() || !batch.removed_artifacts.is_empty() {
            return batch;
        }
        assert!(
            Instant::now() < deadline,
            "no artifact change within {secs}s\n{}",
            agent.stderr()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn artifacts_are_listed_bumped_by_a_new_version_or_a_lost_file_and_removed_with_a_tombstone() {
    let root = tempfile::tempdir().unwrap();
    write_run(root.path(), "runs/p/a", "finished", "");
    write_artifact_version(root.path(), "model", "m", 1, &[("latest", 1)]);
    write_artifact_version(root.path(), "model", "m", 2, &[("latest", 2), ("best", 1)]);
    write_artifact_version(root.path(), "dataset", "d", 1, &[("latest", 1)]);
    let mut agent = AgentPipe::start(root.path(), &["--poll", "0.3"], &[]);
    let hello = agent.hello.clone().unwrap();
    assert!(hello.capabilities.iter().any(|c| c == "artifacts"));

    // The reset listing, one entry per page, holds the run and both artifacts.
    let pages = agent.changes_all(None, 1);
    assert!(pages[0].reset);
    let listed: Vec<_> = pages.iter().flat_map(|b| b.artifacts.clone()).collect();
    let mut dirs: Vec<&str> = listed.iter().map(|a| a.dir.as_str()).collect();
    dirs.sort();
    assert_eq!(dirs, ["artifacts/dataset/d", "artifacts/model/m"]);
    assert_eq!(pages.iter().map(|b| b.runs.len()).sum::<usize>(), 1);
    let m = listed.iter().find(|a| a.name == "m").unwrap();
    assert_eq!((m.kind.as_str(), m.versions.len()), ("model", 2));
    assert_eq!(m.aliases.get("best"), Some(&1));
    assert_eq!(
        m.versions[1].files[0].stored,
        runicorn_protocol::wire::StoredAs::Whole
    );
    assert_eq!(m.versions[1].metadata, Some(json!({"v": 2})));
    let cursor = pages.last().unwrap().cursor.clone();
    assert!(!pages.last().unwrap().more);
    assert_eq!(cursor.seq, 3, "runs and artifacts share one counter");
    assert!(matches!(
        agent.request(Body::Subscribe {}),
        Body::Subscribed {}
    ));

    // A new version: m alone comes again, whole.
    write_artifact_version(root.path(), "model", "m", 3, &[("latest", 3), ("best", 3)]);
    let batch = artifact_changes_after(&mut agent, &cursor, 5.0);
    assert!(batch.runs.is_empty() && batch.removed_artifacts.is_empty());
    assert_eq!(batch.artifacts.len(), 1);
    let m = &batch.artifacts[0];
    assert_eq!((m.dir.as_str(), m.versions.len()), ("artifacts/model/m", 3));
    assert_eq!(m.aliases.get("best"), Some(&3));
    assert!(m.seq > cursor.seq);
    let cursor = batch.cursor;

    // Its pool loses v1's bytes (the hidden pool is seen by the periodic scan).
    let sha = m.versions[0].files[0].sha256.clone();
    fs::remove_file(
        root.path()
            .join("artifacts/.pool")
            .join(runicorn_protocol::run_format::artifacts::fanout_path(&sha)),
    )
    .unwrap();
    let batch = artifact_changes_after(&mut agent, &cursor, 5.0);
    assert_eq!(
        batch.artifacts[0].versions[0].files[0].stored,
        runicorn_protocol::wire::StoredAs::Missing
    );
    let cursor = batch.cursor;

    // The dataset's directory goes: a tombstone, and a new listing leaves it out.
    fs::remove_dir_all(root.path().join("artifacts/dataset/d")).unwrap();
    let batch = artifact_changes_after(&mut agent, &cursor, 5.0);
    assert_eq!(batch.removed_artifacts, ["artifacts/dataset/d"]);
    assert!(batch.artifacts.is_empty());
    let again = agent.changes_all(None, 100);
    let dirs: Vec<String> = again
        .iter()
        .flat_map(|b| b.artifacts.iter().map(|a| a.dir.clone()))
        .collect();
    assert_eq!(dirs, ["artifacts/model/m"]);
    assert!(again.iter().all(|b| b.removed_artifacts.is_empty()));
}

#[test]
fn the_watcher_announces_a_new_artifact_version_without_waiting_for_the_poll() {
    let root = tempfile::tempdir().unwrap();
    write_artifact_version(root.path(), "model", "m", 1, &[("latest", 1)]);
    let mut agent = AgentPipe::start(root.path(), &["--poll", "600"], &[]);
    let cursor = agent.changes_all(None, 100).pop().unwrap().cursor;
    assert!(matches!(
        agent.request(Body::Subscribe {}),
        Body::Subscribed {}
    ));
    // The watcher is set up after `subscribe`; give it a moment, then drain early notices.
    while agent.wait_notice(Duration::from_millis(500)).is_some() {}
    let started = Instant::now();
    write_artifact_version(root.path(), "model", "m", 2, &[("latest", 2)]);
    let notice = agent
        .wait_notice(Duration::from_secs(5))
        .unwrap_or_else(|| panic!("no notice\n{}", agent.stderr()));
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    assert!(notice.seq > cursor.seq);
    let batch = agent.changes(Some(cursor), 100);
    assert_eq!(batch.artifacts.len(), 1);
    assert_eq!(batch.artifacts[0].versions.len(), 2);
}

/// Logs `COUNT` versions of model `m` with the Python SDK, `$PAUSE` seconds apart (default 1),
/// each holding `big.bin` (`BYTES` of seeded noise with a region of its own) and `small.txt`;
/// prints `version sha256-of-big.bin` for each.
const LOG_BIG_VERSIONS: &str = r#"
import hashlib, os, random, sys, time
import runicorn as rn
count, size = int(sys.argv[1]), int(sys.argv[2])
root = os.environ["RUNICORN_DIR"]
rng = random.Random(11)
base = bytearray(rng.randbytes(size))
run = rn.init(path="train/packing")
work = os.path.join(root, "work")
os.makedirs(work, exist_ok=True)
for i in range(1, count + 1):
    at = rng.randrange(0, size - 4096)
    base[at:at + 4096] = rng.randbytes(4096)
    with open(os.path.join(work, "big.bin"), "wb") as f:
        f.write(base)
    with open(os.path.join(work, "small.txt"), "w") as f:
        f.write("version %d\n" % i)
    art = rn.Artifact("m", type="model")
    art.add_file(os.path.join(work, "big.bin"))
    art.add_file(os.path.join(work, "small.txt"))
    v = run.log_artifact(art)
    assert v is not None, "log_artifact failed"
    print(v.version, hashlib.sha256(bytes(base)).hexdigest(), flush=True)
    time.sleep(float(os.environ.get("PAUSE", "1.0")))
run.finish()
"#;

/// Downloads `m:vN` for each version with the Python SDK and prints `N sha256-of-big.bin
/// sha256-of-path(big.bin)`.
const DOWNLOAD_VERSIONS: &str = r#"
import hashlib, os, sys
import runicorn as rn
run = rn.init(path="eval/packing")
for n in sys.argv[1:]:
    v = run.use_artifact("m:v" + n)
    target = v.download(os.path.join(os.environ["OUT"], "v" + n))
    def sha(p):
        with open(str(p), "rb") as f:
            return hashlib.sha256(f.read()).hexdigest()
    print(n, sha(os.path.join(str(target), "big.bin")), sha(v.path("big.bin")), flush=True)
run.finish()
"#;

fn python_sdk(script: &str, root: &Path, args: &[String]) -> std::process::Command {
    let python = std::env::var_os("RUNICORN_TEST_PYTHON").unwrap_or_else(|| "python3".into());
    let mut cmd = std::process::Command::new(python);
    cmd.arg("-c")
        .arg(script)
        .args(args)
        .env(
            "PYTHONPATH",
            runicorn_tests::workspace_root().join("sdk/python/src"),
        )
        .env("RUNICORN_DIR", root)
        .env("RUNICORN_CACHE_DIR", root.join("../sdk-cache"))
        .env_remove("RUNICORN_RUN_DIR");
    cmd
}

/// `(version, sha256)` per line of the writer's output.
fn logged_versions(stdout: &[u8]) -> Vec<(u64, String)> {
    String::from_utf8_lossy(stdout)
        .lines()
        .map(|l| {
            let (v, sha) = l.trim().split_once(' ').unwrap();
            (v.parse().unwrap(), sha.to_owned())
        })
        .collect()
}

#[test]
fn the_agent_packs_large_files_while_serving_and_the_hub_hears_they_are_chunked() {
    use runicorn_protocol::run_format::artifacts::fanout_path;
    use runicorn_protocol::wire::StoredAs;
    const COUNT: u64 = 5;
    let top = tempfile::tempdir().unwrap();
    let root = top.path().join("root");
    fs::create_dir_all(&root).unwrap();
    // A long poll: the hub must hear of packing from the packer, not from a periodic scan.
    let mut agent = AgentPipe::start(&root, &["--poll", "1"], &[]);
    let cursor = agent.changes_all(None, 100).pop().unwrap().cursor;
    assert!(matches!(
        agent.request(Body::Subscribe {}),
        Body::Subscribed {}
    ));

    // The writer logs 8 MiB versions a second apart while the agent packs the older ones.
    let mut writer = python_sdk(
        LOG_BIG_VERSIONS,
        &root,
        &[COUNT.to_string(), (8 << 20).to_string()],
    )
    .env("PAUSE", "1.5")
    .stdout(std::process::Stdio::piped())
    .stderr(std::process::Stdio::piped())
    .spawn()
    .unwrap();
    let any_recipe = |root: &Path| {
        fs::read_dir(root.join("artifacts/.pool"))
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|d| fs::read_dir(d.path()).ok())
            .flatten()
            .flatten()
            .any(|f| f.file_name().to_string_lossy().ends_with(".chunks.json"))
    };
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut packed_while_writing = false;
    while writer.try_wait().unwrap().is_none() {
        assert!(Instant::now() < deadline, "the writer did not finish");
        packed_while_writing |= any_recipe(&root);
        std::thread::sleep(Duration::from_millis(100));
    }
    let out = writer.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "python writer: {}",
        runicorn_tests::describe(&out)
    );
    assert!(
        packed_while_writing,
        "nothing was packed while the writer logged\n{}",
        agent.stderr()
    );
    let logged = logged_versions(&out.stdout);
    assert_eq!(
        logged.iter().map(|(v, _)| *v).collect::<Vec<_>>(),
        (1..=COUNT).collect::<Vec<_>>(),
        "the writer lost or doubled a version"
    );

    // Soon every big file is a recipe and chunks: no whole pool file, no files/ link.
    let pool = |sha: &str| root.join("artifacts/.pool").join(fanout_path(sha));
    let packed = |sha: &str, v: u64| {
        let whole = pool(sha);
        let recipe = whole.with_file_name(format!("{sha}.chunks.json"));
        recipe.is_file()
            && !whole.exists()
            && !root
                .join(format!("artifacts/model/m/v{v}/files/big.bin"))
                .exists()
    };
    assert!(
        runicorn_tests::wait_until(60.0, || logged.iter().all(|(v, sha)| packed(sha, *v))),
        "not packed within 60 s\n{}",
        agent.stderr()
    );
    assert!(root.join("artifacts/model/m/v1/files/small.txt").is_file());

    // The hub hears it: the artifact's latest state has every big.bin chunked.
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut since = cursor;
    let mut state = None;
    loop {
        let batch = agent.changes(Some(since.clone()), 100);
        if let Some(m) = batch.artifacts.iter().find(|a| a.name == "m") {
            state = Some(m.clone());
        }
        since = batch.cursor.clone();
        let done = state.as_ref().is_some_and(|m| {
            m.versions.len() == COUNT as usize
                && m.versions.iter().all(|v| {
                    v.files
                        .iter()
                        .all(|f| f.path != "big.bin" || f.stored == StoredAs::Chunked)
                })
        });
        if done {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the feed never said chunked: {state:?}\n{}",
            agent.stderr()
        );
        std::thread::sleep(Duration::from_millis(100));
    }

    // The SDK still reads every version, bytes checked, from the chunks.
    let out_dir = top.path().join("downloads");
    let versions: Vec<String> = (1..=COUNT).map(|v| v.to_string()).collect();
    let out = runicorn_tests::output_within(
        python_sdk(DOWNLOAD_VERSIONS, &root, &versions).env("OUT", &out_dir),
        Duration::from_secs(120),
    );
    assert!(
        out.status.success(),
        "python reader: {}",
        runicorn_tests::describe(&out)
    );
    let read: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_owned)
        .collect();
    let expected: Vec<String> = logged
        .iter()
        .map(|(v, sha)| format!("{v} {sha} {sha}"))
        .collect();
    assert_eq!(read, expected);
}

#[test]
fn with_no_pack_the_agent_leaves_the_pool_whole() {
    use runicorn_protocol::run_format::artifacts::fanout_path;
    let top = tempfile::tempdir().unwrap();
    let root = top.path().join("root");
    fs::create_dir_all(&root).unwrap();
    let mut agent = AgentPipe::start(&root, &["--poll", "0.3", "--no-pack"], &[]);
    agent.changes_all(None, 100);
    assert!(matches!(
        agent.request(Body::Subscribe {}),
        Body::Subscribed {}
    ));
    let out = runicorn_tests::output_within(
        &mut python_sdk(
            LOG_BIG_VERSIONS,
            &root,
            &["1".into(), (5 << 20).to_string()],
        ),
        Duration::from_secs(120),
    );
    assert!(out.status.success(), "{}", runicorn_tests::describe(&out));
    let (_, sha) = logged_versions(&out.stdout).remove(0);
    // Well past the packer's age limit and several full scans.
    std::thread::sleep(Duration::from_secs(4));
    let whole = root.join("artifacts/.pool").join(fanout_path(&sha));
    assert!(whole.is_file());
    assert!(!whole.with_file_name(format!("{sha}.chunks.json")).exists());
    assert!(root.join("artifacts/model/m/v1/files/big.bin").is_file());
}

#[test]
fn a_packed_content_is_announced_at_once_not_at_the_next_full_scan() {
    use runicorn_artifact_store::writer::{log_artifact_with, Artifact, LogOptions};
    use runicorn_protocol::wire::StoredAs;
    let top = tempfile::tempdir().unwrap();
    let root = top.path().join("root");
    fs::create_dir_all(&root).unwrap();
    let big = top.path().join("big.bin");
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    let bytes: Vec<u8> = (0..5 << 20)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect();
    fs::write(&big, &bytes).unwrap();
    let mut art = Artifact::new("m", "model").unwrap();
    art.add_file(&big, None).unwrap();
    let whole = LogOptions {
        chunk_large_files: false,
    };
    log_artifact_with(&root, &art, &[], None, &whole).unwrap();
    // Older than the packer's age limit before the agent starts.
    std::thread::sleep(Duration::from_millis(2200));

    // No full scan for ten minutes and no watcher: only the packer can announce the change.
    let mut agent = AgentPipe::start(
        &root,
        &["--poll", "600"],
        &[("RUNICORN_AGENT_NO_WATCH", "1")],
    );
    let pages = agent.changes_all(None, 100);
    let listed = pages
        .iter()
        .flat_map(|b| b.artifacts.clone())
        .next()
        .unwrap();
    assert_eq!(listed.versions[0].files[0].stored, StoredAs::Whole);
    let cursor = pages.last().unwrap().cursor.clone();
    assert!(matches!(
        agent.request(Body::Subscribe {}),
        Body::Subscribed {}
    ));
    let notice = agent
        .wait_notice(Duration::from_secs(30))
        .unwrap_or_else(|| panic!("no notice of the packing\n{}", agent.stderr()));
    assert!(notice.seq > cursor.seq);
    let batch = artifact_changes_after(&mut agent, &cursor, 5.0);
    assert_eq!(
        batch.artifacts[0].versions[0].files[0].stored,
        StoredAs::Chunked
    );
    assert!(!root.join("artifacts/model/m/v1/files/big.bin").exists());
}
