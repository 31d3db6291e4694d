//! Upgrading stores of every earlier schema version. Each old store is built in a real SQLite
//! file from fixtures: the migration SQL each version ran, exactly as it was then
//! (`fixtures/schema_vN.sql`, recovered from the history of `schema.rs`), and rows such a hub
//! wrote (`fixtures/data_vN.sql`: remotes, runs with records and tags, points across keys with
//! non-finite values, logs, files, annotations, skipped items). Opening it must migrate it and
//! answer every listing exactly as a store of the current schema filled with the same data
//! through the normal API. A store of the current version has nothing to migrate: its fixture
//! gets its derived tables from that API-filled store, so the day a new version comes, its
//! fixture already upgrades like the others.

// The helpers below are test code too (clippy only counts `#[test]` functions as tests): a
// step that fails is the test failing.
#![allow(clippy::unwrap_used)]

use std::path::Path;

use runicorn_protocol::run_format::artifacts::{Reference, RunLink};
use runicorn_protocol::wire::{
    ArtifactChange, ArtifactFileState, ArtifactVersionState, ChangeBatch, Cursor, EventsState,
    FileEntry, HostStatus, LogBatch, LogChunk, PointBatch, RunChange, RunPoints, Series,
    SkippedEntry, StoredAs, WireCorruptLine,
};
use runicorn_store::{
    RemoteId, RemoteSpec, RunAnnotation, RunFilter, RunKey, RunOrder, RunSort, SeriesAxis,
    SeriesQuery, Store, TrashView, KIND_POINTS, STORE_FILE,
};
use rusqlite::Connection;
use serde_json::json;

/// The schema version of today's store (what `PRAGMA user_version` reads after opening).
const CURRENT: u32 = 8;

const SCHEMAS: [&str; 8] = [
    include_str!("fixtures/schema_v1.sql"),
    include_str!("fixtures/schema_v2.sql"),
    include_str!("fixtures/schema_v3.sql"),
    include_str!("fixtures/schema_v4.sql"),
    include_str!("fixtures/schema_v5.sql"),
    include_str!("fixtures/schema_v6.sql"),
    include_str!("fixtures/schema_v7.sql"),
    include_str!("fixtures/schema_v8.sql"),
];
const DATA: [&str; 8] = [
    include_str!("fixtures/data_v1.sql"),
    include_str!("fixtures/data_v2.sql"),
    include_str!("fixtures/data_v3.sql"),
    include_str!("fixtures/data_v4.sql"),
    include_str!("fixtures/data_v5.sql"),
    include_str!("fixtures/data_v6.sql"),
    include_str!("fixtures/data_v7.sql"),
    include_str!("fixtures/data_v8.sql"),
];

const SHA: &str = "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824";
const DIR_A: &str = "cv/resnet/20261201_100000_aaaaaa";
const DIR_B: &str = "nlp/bert/20261202_110000_bbbbbb";
/// Steps of run A's `loss`: more than 4096, so the series is read from tiles.
const A_STEPS: i64 = 5000;

/// A store of schema `version` as that version's hub left it, in `dir`. A store of the current
/// version holds derived tables as today's code keeps them: they are copied from the store in
/// `current_derived` (the same data, written through the API).
fn old_store(dir: &Path, version: u32, current_derived: &Path) {
    std::fs::create_dir_all(dir).unwrap();
    let conn = Connection::open(dir.join(STORE_FILE)).unwrap();
    let version_index = version as usize;
    for sql in SCHEMAS[..version_index]
        .iter()
        .chain(&DATA[..version_index])
    {
        conn.execute_batch(sql).unwrap();
    }
    if version == CURRENT {
        conn.execute(
            "ATTACH ?1 AS current",
            [current_derived.join(STORE_FILE).to_str().unwrap()],
        )
        .unwrap();
        conn.execute_batch(
            "DELETE FROM run_values;
             INSERT INTO run_values SELECT * FROM current.run_values;
             DELETE FROM point_tiles;
             INSERT INTO point_tiles SELECT * FROM current.point_tiles;
             DETACH current;",
        )
        .unwrap();
    }
    conn.pragma_update(None, "user_version", version).unwrap();
}

fn version_of(dir: &Path) -> u32 {
    Connection::open(dir.join(STORE_FILE))
        .unwrap()
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .unwrap()
}

fn run(dir: &str, seq: u64, id: &str, path: &str) -> RunChange {
    RunChange {
        dir: dir.into(),
        seq,
        id: id.into(),
        path: path.into(),
        layout: "current".into(),
        status: "finished".into(),
        ..RunChange::default()
    }
}

fn batch(runs: Vec<RunChange>, removed: Vec<String>, epoch: &str, seq: u64) -> ChangeBatch {
    ChangeBatch {
        reset: false,
        runs,
        removed,
        cursor: Cursor {
            epoch: epoch.into(),
            seq,
        },
        more: false,
        skipped: vec![],
        skipped_listed: false,
        artifacts: vec![],
        removed_artifacts: vec![],
    }
}

/// The host sample of `data_v7.sql`: GPU 0 held by run A, GPU 1 free.
fn host_sample() -> HostStatus {
    serde_json::from_value(json!({
        "hostname": "gpu-box", "sampled_at": 4199.5, "cpu_count": 8,
        "gpus": [
            {"index": 0, "uuid": "GPU-a", "name": "A100", "util_percent": 90.0,
             "processes": [{"pid": 7, "used_mib": 100.0,
                            "run": {"dir": "cv/resnet/20261201_100000_aaaaaa", "path": "cv/resnet",
                                    "run_id": "20261201_100000_aaaaaa"}}]},
            {"index": 1, "uuid": "GPU-b", "name": "A100", "util_percent": 0.0}
        ]
    }))
    .unwrap()
}

/// The artifact of `data_v6.sql`: two versions, the first produced by run A and used by run
/// B, aliases, a reference and metadata.
fn model_artifact() -> ArtifactChange {
    let link = |id: &str, dir: &str| RunLink {
        run_id: id.into(),
        dir: dir.into(),
        host: Some("gpu-box".into()),
    };
    let file = |path: &str, size: u64, stored: StoredAs| ArtifactFileState {
        path: path.into(),
        size,
        sha256: SHA.into(),
        stored,
    };
    ArtifactChange {
        dir: "artifacts/model/m".into(),
        seq: 2,
        kind: "model".into(),
        name: "m".into(),
        aliases: [("latest".to_string(), 2), ("best".to_string(), 1)].into(),
        versions: vec![
            ArtifactVersionState {
                version: 1,
                created_at: Some(1500.0),
                description: Some("first".into()),
                metadata: Some(json!({"acc": 0.5})),
                produced_by: Some(link("20261201_100000_aaaaaa", DIR_A)),
                used_by: vec![link("20261202_110000_bbbbbb", DIR_B)],
                files: vec![file("w.bin", 5, StoredAs::Whole)],
                references: vec![],
            },
            ArtifactVersionState {
                version: 2,
                created_at: Some(1600.0),
                files: vec![
                    file("a/w.bin", 5, StoredAs::Chunked),
                    file("b.txt", 7, StoredAs::Missing),
                ],
                references: vec![Reference {
                    uri: "s3://bucket/data".into(),
                    checksum: None,
                    size: Some(10),
                }],
                ..ArtifactVersionState::default()
            },
        ],
        problem: None,
        stored_bytes: Some(5),
    }
}

fn skipped(name: &str, reason: &str) -> SkippedEntry {
    SkippedEntry {
        name: name.into(),
        reason: reason.into(),
    }
}

/// The same data as `fixtures/data_v1..=version`, written through the API into a new store.
fn fresh_store(dir: &Path, version: u32) -> Store {
    let mut s = Store::open(dir).unwrap();
    let gpu = s
        .upsert_remote(&RemoteSpec {
            name: "gpu".into(),
            address: "me@gpu".into(),
            transport: json!({"port": 22}),
        })
        .unwrap();
    let lab = s
        .upsert_remote(&RemoteSpec {
            name: "lab".into(),
            address: "lab".into(),
            transport: json!({}),
        })
        .unwrap();
    assert_eq!((gpu, lab), (RemoteId(1), RemoteId(2)));

    let mut a = RunChange {
        alias: Some("first".into()),
        tags: vec!["base".into(), "cv".into()],
        created_at: Some(1000.0),
        ended_at: Some(2000.0),
        hostname: Some("gpu1".into()),
        meta: Some(json!({"run_id": "20261201_100000_aaaaaa"})),
        status_record: Some(json!({"status": "finished"})),
        summary: Some(json!({"acc": 0.9, "loss": 0.1})),
        config: Some(json!({"optim": {"lr": 0.1, "name": "sgd"}, "seed": 1})),
        environment: Some(json!({"python": "3.12"})),
        events: EventsState {
            bytes: 50_000,
            lines: 5000,
            points: 5005,
            keys: vec!["loss".into(), "acc".into()],
            last_step: Some(A_STEPS - 1),
            last_event_at: Some(1e9 + 4999.0),
            corrupt_lines: 0,
        },
        log_bytes: 12,
        files: vec![
            FileEntry {
                path: "meta.json".into(),
                size: 100,
                mtime: 1_700_000_000.5,
                sha256: None,
            },
            FileEntry {
                path: "model.pt".into(),
                size: 2048,
                mtime: 1_700_000_001.0,
                sha256: Some(SHA.into()),
            },
        ],
        ..run(DIR_A, 1, "20261201_100000_aaaaaa", "cv/resnet")
    };
    let mut b = RunChange {
        tags: vec!["nlp".into()],
        status: "crashed".into(),
        reason: Some("oom".into()),
        created_at: Some(1100.0),
        ended_at: Some(1500.0),
        hostname: Some("gpu2".into()),
        summary: Some(json!({"acc": 0.7, "note": "text"})),
        config: Some(json!({"optim": {"lr": 0.01}, "seed": 2})),
        events: EventsState {
            bytes: 300,
            lines: 4,
            points: 3,
            keys: vec!["loss".into()],
            last_step: Some(2),
            last_event_at: None,
            corrupt_lines: 1,
        },
        log_bytes: 5,
        ..run(DIR_B, 2, "20261202_110000_bbbbbb", "nlp/bert")
    };
    if version >= 3 {
        b.skipped_files = vec![skipped("huge.bin", "larger than the limit")];
        b.skipped_files_total = 3;
    }
    if version >= 6 {
        a.assets = Some(json!({"code": {"snapshot": "code_snapshot.zip"}, "datasets": []}));
    }
    let mut gpu_batch = batch(vec![a, b], vec![], "ep1", 2);
    if version >= 3 {
        gpu_batch.skipped = vec![skipped("bad dir", "not a run directory name")];
    }
    s.apply_change_batch(gpu, &gpu_batch).unwrap();
    if version >= 6 {
        let mut artifacts = batch(vec![], vec![], "ep1", 2);
        artifacts.artifacts = vec![model_artifact()];
        s.apply_change_batch(gpu, &artifacts).unwrap();
    }

    let c = RunChange {
        status: "running".into(),
        created_at: Some(1200.0),
        ..run("runs/c", 3, "c", "misc")
    };
    let d = RunChange {
        deleted: true,
        created_at: Some(900.0),
        summary: Some(json!({"acc": 0.5})),
        config: Some(json!({"optim": {"lr": "auto"}})),
        // Not fetched yet (old stores held a lossy copy that migration 3 dropped).
        log_bytes: 4,
        ..run("runs/d", 4, "d", "misc")
    };
    s.apply_change_batch(lab, &batch(vec![c, d], vec![], "ep2", 5))
        .unwrap();
    s.apply_change_batch(lab, &batch(vec![], vec!["runs/c".into()], "ep2", 6))
        .unwrap();

    let steps: Vec<i64> = (0..A_STEPS).collect();
    let mut times: Vec<f64> = steps.iter().map(|&s| 1e9 + s as f64).collect();
    times[3] = f64::NAN;
    let points = PointBatch {
        runs: vec![
            RunPoints {
                dir: DIR_A.into(),
                from: 0,
                to: 50_000,
                next_line: 5001,
                eof: true,
                series: vec![
                    Series {
                        key: "loss".into(),
                        rows: None,
                        values: steps.iter().map(|&s| ((s * 7919) % 1000) as f64).collect(),
                    },
                    Series {
                        key: "acc".into(),
                        rows: Some(vec![0, 1, 2, 3, 4]),
                        values: vec![0.1, f64::NAN, f64::INFINITY, f64::NEG_INFINITY, 0.5],
                    },
                ],
                steps,
                times,
                ..RunPoints::default()
            },
            RunPoints {
                dir: DIR_B.into(),
                from: 0,
                to: 300,
                next_line: 5,
                eof: true,
                steps: vec![0, 1, 2],
                times: vec![1e9, 1e9 + 1.0, 1e9 + 2.0],
                series: vec![Series {
                    key: "loss".into(),
                    rows: None,
                    values: vec![3.0, 2.0, 1.0],
                }],
                corrupt: vec![WireCorruptLine {
                    line: 2,
                    offset: 40,
                    reason: "not JSON".into(),
                }],
                ..RunPoints::default()
            },
        ],
    };
    s.ingest_points(gpu, &points).unwrap();
    let chunk = |dir: &str, text: &str| LogChunk {
        dir: dir.into(),
        from: 0,
        to: text.len() as u64,
        bytes: text.as_bytes().to_vec(),
        truncated: false,
        eof: true,
    };
    s.ingest_logs(
        gpu,
        &LogBatch {
            runs: vec![chunk(DIR_A, "hello\nworld\n"), chunk(DIR_B, "oops\n")],
        },
    )
    .unwrap();
    assert!(s.record_cached_file(RunKey(1), "model.pt", SHA).unwrap());
    s.set_agent_info(
        gpu,
        Some("gpu-box"),
        Some("/data/runs"),
        "runicorn-agent 0.1",
    )
    .unwrap();
    s.record_sync(gpu, 4000.0, None).unwrap();
    s.record_sync(lab, 4100.0, Some("connection refused"))
        .unwrap();

    if version >= 2 {
        s.annotate_run(
            RunKey(1),
            &RunAnnotation {
                alias: Some(Some("mine".into())),
                tags: Some(Some(vec!["x".into()])),
                notes: Some(Some("good run".into())),
            },
        )
        .unwrap()
        .unwrap();
        s.trash_run(RunKey(2), 3000.0).unwrap().unwrap();
    }
    if version >= 3 {
        s.record_refusals(gpu, KIND_POINTS, &[skipped("x/y", "too many keys")])
            .unwrap();
    }
    if version >= 5 {
        assert!(s.set_remote_paused("lab", true).unwrap());
    }
    if version >= 7 {
        s.put_host_snapshot(gpu, 4200.0, &host_sample()).unwrap();
    }
    s
}

fn sorted_by(by: RunOrder, descending: bool) -> RunFilter {
    RunFilter {
        sort: RunSort { by, descending },
        trash: TrashView::Include,
        include_removed: true,
        include_deleted: true,
        ..RunFilter::default()
    }
}

/// Every answer the store gives about the data, one labelled line each, with the times the
/// hub takes from its own clock (first seen, removed, created, recorded) blanked.
fn answers(s: &Store) -> Vec<String> {
    let mut out = Vec::new();
    let mut say = |label: &str, value: String| out.push(format!("{label}: {value}"));
    let filters: Vec<(&str, RunFilter)> = vec![
        ("default", RunFilter::default()),
        ("everything", sorted_by(RunOrder::CreatedAt, false)),
        (
            "by lr",
            sorted_by(RunOrder::Config("optim.lr".into()), false),
        ),
        (
            "by lr desc",
            sorted_by(RunOrder::Config("optim.lr".into()), true),
        ),
        ("by acc", sorted_by(RunOrder::Summary("acc".into()), true)),
        (
            "by note",
            sorted_by(RunOrder::Summary("note".into()), false),
        ),
        ("by points", sorted_by(RunOrder::Points, true)),
        ("by last step", sorted_by(RunOrder::LastStep, false)),
        ("by alias", sorted_by(RunOrder::Alias, false)),
        ("by path", sorted_by(RunOrder::Path, true)),
        ("by status", sorted_by(RunOrder::Status, false)),
        (
            "lab",
            RunFilter {
                remote: Some("lab".into()),
                ..sorted_by(RunOrder::RunId, false)
            },
        ),
        (
            "finished",
            RunFilter {
                status: Some(vec!["finished".into()]),
                ..RunFilter::default()
            },
        ),
        (
            "tag x",
            RunFilter {
                tag: Some("x".into()),
                ..RunFilter::default()
            },
        ),
        (
            "tag cv",
            RunFilter {
                tag: Some("cv".into()),
                ..RunFilter::default()
            },
        ),
        (
            "text",
            RunFilter {
                text: Some("GOOD".into()),
                ..RunFilter::default()
            },
        ),
        (
            "under cv",
            RunFilter {
                path_prefix: Some("cv".into()),
                ..RunFilter::default()
            },
        ),
        (
            "trash",
            RunFilter {
                trash: TrashView::Only,
                ..RunFilter::default()
            },
        ),
        (
            "page",
            RunFilter {
                limit: Some(2),
                offset: 1,
                ..sorted_by(RunOrder::CreatedAt, true)
            },
        ),
    ];
    for (label, f) in &filters {
        let rows: Vec<_> = s
            .list_runs(f)
            .unwrap()
            .into_iter()
            .map(|mut r| {
                r.first_seen_at = 0.0;
                r.removed_at = r.removed_at.map(|_| 0.0);
                r
            })
            .collect();
        say(label, format!("{rows:?}"));
        say(label, format!("count {}", s.count_runs(f).unwrap()));
        say(label, format!("paths {:?}", s.path_counts(f).unwrap()));
    }
    say("columns", format!("{:?}", s.column_keys(50).unwrap()));
    for key in 1..=4 {
        let run = RunKey(key);
        let say_run = |out: &mut Vec<String>, what: &str, v: String| {
            out.push(format!("run {key} {what}: {v}"));
        };
        say_run(&mut out, "records", format!("{:?}", s.run_records(run)));
        let keys = s.metric_keys(run).unwrap();
        say_run(&mut out, "keys", format!("{keys:?}"));
        say_run(&mut out, "extents", format!("{:?}", s.key_extents(run)));
        for k in &keys {
            let name = &k.name;
            say_run(&mut out, name, format!("{:?}", s.points(run, name)));
            for (axis, max_points) in [(SeriesAxis::Step, 100), (SeriesAxis::Time, 50)] {
                let q = SeriesQuery {
                    axis,
                    max_points,
                    ..SeriesQuery::default()
                };
                say_run(&mut out, name, format!("{:?}", s.series(run, name, &q)));
            }
            let tail = s.series_after(run, name, 10, 20);
            say_run(&mut out, name, format!("after 10: {tail:?}"));
        }
        say_run(&mut out, "files", format!("{:?}", s.files(run)));
        say_run(&mut out, "corrupt", format!("{:?}", s.corrupt_lines(run)));
        say_run(&mut out, "log", format!("{:?}", s.log_text(run)));
        say_run(
            &mut out,
            "chunks",
            format!("{:?}", s.log_chunks_since(run, 0, 100)),
        );
        say_run(
            &mut out,
            "skipped files",
            format!("{:?}", s.skipped_files(run)),
        );
        let progress = s
            .run_progress(run)
            .unwrap()
            .map(|p| (p.points, p.last_step));
        say_run(&mut out, "progress", format!("{progress:?}"));
    }
    let mut remotes = s.remotes().unwrap();
    for r in &mut remotes {
        r.created_at = 0.0;
        for item in &mut r.skipped {
            item.at = 0.0;
        }
    }
    out.push(format!("remotes: {remotes:?}"));
    for id in [RemoteId(1), RemoteId(2)] {
        let mut items = s.skipped(id, 50).unwrap();
        for item in &mut items {
            item.at = 0.0;
        }
        out.push(format!("skipped {id:?}: {items:?}"));
        out.push(format!(
            "pending points {id:?}: {:?}",
            s.pending_points(id, 10)
        ));
        out.push(format!("pending logs {id:?}: {:?}", s.pending_logs(id, 10)));
        out.push(format!("cursor {id:?}: {:?}", s.cursor(id)));
    }
    out.push(format!("skipping runs: {:?}", s.runs_with_skipped_files()));
    out.push(format!("host samples: {:?}", s.host_snapshots()));
    out
}

/// The rows of the derived tables and the schema itself, to show they were rebuilt the same.
fn derived_and_schema(dir: &Path) -> Vec<String> {
    let conn = Connection::open(dir.join(STORE_FILE)).unwrap();
    let mut out = Vec::new();
    for sql in [
        "SELECT type, name, tbl_name, sql FROM sqlite_master ORDER BY type, name",
        "SELECT run, source, key, quote(num), quote(text) FROM run_values ORDER BY 1, 2, 3",
        "SELECT run, key, level, tile, count, untimed, first_step, quote(first_time), last_step,
            quote(last_time), quote(min_value), min_step, quote(min_time), quote(max_value),
            max_step, quote(max_time) FROM point_tiles ORDER BY 1, 2, 3, 4",
        // Schema 6: rows only the sync writes yet (the read side lives elsewhere).
        "SELECT id, assets FROM runs ORDER BY id",
        "SELECT * FROM artifacts ORDER BY id",
        "SELECT * FROM artifact_versions ORDER BY 1, 2",
        "SELECT * FROM artifact_aliases ORDER BY 1, 2",
        "SELECT * FROM artifact_files ORDER BY 1, 2, 3",
        "SELECT * FROM artifact_usage ORDER BY 1, 2, 4",
    ] {
        let mut stmt = conn.prepare(sql).unwrap();
        let n = stmt.column_count();
        let rows = stmt
            .query_map([], |r| {
                (0..n)
                    .map(|i| {
                        r.get::<_, rusqlite::types::Value>(i)
                            .map(|v| format!("{v:?}"))
                    })
                    .collect::<Result<Vec<_>, _>>()
            })
            .unwrap();
        for row in rows {
            out.push(row.unwrap().join("|"));
        }
    }
    out
}

fn assert_same(got: &[String], want: &[String], what: &str) {
    for (g, w) in got.iter().zip(want) {
        assert_eq!(g, w, "{what}");
    }
    assert_eq!(got.len(), want.len(), "{what}: number of answers");
}

#[test]
fn a_populated_store_of_every_schema_version_opens_migrates_and_answers_the_same() {
    let tmp = tempfile::tempdir().unwrap();
    for version in 1..=CURRENT {
        let fresh_dir = tmp.path().join(format!("fresh{version}"));
        let fresh = fresh_store(&fresh_dir, version);
        let want = answers(&fresh);
        drop(fresh);
        let old_dir = tmp.path().join(format!("v{version}"));
        old_store(&old_dir, version, &fresh_dir);
        let upgraded = Store::open(&old_dir).unwrap();
        assert_eq!(version_of(&old_dir), CURRENT);
        assert_same(
            &answers(&upgraded),
            &want,
            &format!("a store of schema {version}, upgraded"),
        );
        drop(upgraded);
        // What the migrations built equals what a new store holds: the fixtures are the real
        // history of the schema, and the derived tables were rebuilt.
        assert_same(
            &derived_and_schema(&old_dir),
            &derived_and_schema(&fresh_dir),
            &format!("schema and derived tables of store {version}"),
        );
        // Reopening (nothing left to migrate) and reading only answer the same.
        assert_same(
            &answers(&Store::open(&old_dir).unwrap()),
            &want,
            &format!("store {version} reopened"),
        );
        assert_same(
            &answers(&Store::open_read_only(&old_dir).unwrap()),
            &want,
            &format!("store {version} read only"),
        );
    }
}

#[test]
fn the_fixtures_cover_every_schema_version_this_build_knows() {
    let tmp = tempfile::tempdir().unwrap();
    drop(Store::open(tmp.path()).unwrap());
    assert_eq!(
        version_of(tmp.path()),
        CURRENT,
        "a new schema version needs fixtures/schema_v{}.sql and data_v{}.sql and CURRENT raised",
        CURRENT + 1,
        CURRENT + 1
    );
    assert_eq!(SCHEMAS.len() as u32, CURRENT);
}
