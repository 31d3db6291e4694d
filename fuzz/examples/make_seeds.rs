//! Writes the seed corpus of every fuzz target into `fuzz/corpus/<target>/seed-*`: real frames
//! from the protocol's own encoder, real event lines (NaN and infinities included), torn tails,
//! JSON nested 120 to 130 levels deep, and the upstream fixtures' files.
//!
//! Run from `fuzz/`: `cargo run --example make_seeds`, then minimise with `cargo fuzz cmin`
//! (docs/FUZZING.md). Seeds are small on purpose: the fuzzer grows them.

use std::fs;
use std::path::{Path, PathBuf};

use runicorn_protocol::wire::{
    encode_frame, Body, ChangeBatch, ChangesRequest, Cursor, Envelope, ErrorBody, ErrorCode,
    EventsState, FileEntry, Hello, LogBatch, LogChunk, LogRequest, LogWanted, Notice, PointBatch,
    PointsRequest, PointsWanted, RunChange, RunPoints, Series, SkippedEntry, WireCorruptLine,
    CAPABILITIES, DEFAULT_MAX_FRAME_BYTES, PROTOCOL_NAME,
};
use serde_json::{json, Value};

fn corpus(target: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("corpus")
        .join(target);
    fs::create_dir_all(&dir).expect("create the corpus folder");
    dir
}

fn put(target: &str, name: &str, bytes: &[u8]) {
    fs::write(corpus(target).join(format!("seed-{name}")), bytes).expect("write a seed");
}

fn nested(depth: usize, leaf: &str) -> String {
    format!("{}{leaf}{}", "[".repeat(depth), "]".repeat(depth))
}

fn nested_objects(depth: usize) -> String {
    format!("{}1{}", "{\"a\":".repeat(depth), "}".repeat(depth))
}

fn run_change() -> RunChange {
    RunChange {
        dir: "runs/cv/resnet/20261126_122856_0e66f9".into(),
        seq: 7,
        id: "20261126_122856_0e66f9".into(),
        path: "cv/resnet".into(),
        layout: "current".into(),
        alias: Some("first".into()),
        tags: vec!["a".into()],
        status: "finished".into(),
        reason: None,
        created_at: Some(1_795_696_136.3),
        ended_at: Some(1_795_696_137.0),
        hostname: Some("gpu-01".into()),
        deleted: false,
        meta: Some(json!({"id": "20261126_122856_0e66f9", "path": "cv/resnet"})),
        status_record: Some(json!({"status": "finished"})),
        summary: Some(json!({"loss": 0.1, "best": null})),
        config: None,
        environment: None,
        assets: None,
        events: EventsState {
            bytes: 1073,
            lines: 6,
            points: 11,
            keys: vec!["acc".into(), "loss".into()],
            last_step: Some(10),
            last_event_at: Some(1_795_696_136.5),
            corrupt_lines: 0,
        },
        log_bytes: 79,
        files: vec![FileEntry {
            path: "media/1795696136316_bef569_img.png".into(),
            size: 12,
            mtime: 1_795_696_136.0,
            sha256: Some("ab".repeat(32)),
        }],
        skipped_files: vec![SkippedEntry {
            name: "a\\\\b.txt".into(),
            reason: "a backslash".into(),
        }],
        skipped_files_total: 1,
        alerts: Vec::new(),
    }
}

fn messages() -> Vec<(&'static str, Envelope)> {
    let cursor = Cursor {
        epoch: "e1".into(),
        seq: 9,
    };
    let body = |id, body| Envelope { id, body };
    vec![
        (
            "hello",
            body(
                1,
                Body::Hello(Hello {
                    protocol: PROTOCOL_NAME.into(),
                    versions: vec![1],
                    capabilities: CAPABILITIES.iter().map(|c| c.to_string()).collect(),
                    software: "runicorn-agent/0.1.0".into(),
                    max_frame_bytes: DEFAULT_MAX_FRAME_BYTES,
                    root: Some("/home/u/.runicorn".into()),
                    host: Some("gpu-01".into()),
                    epoch: Some("e1".into()),
                }),
            ),
        ),
        (
            "changes",
            body(
                2,
                Body::Changes(ChangesRequest {
                    since: Some(cursor.clone()),
                    max_runs: 100,
                }),
            ),
        ),
        (
            "change_batch",
            body(
                2,
                Body::ChangeBatch(ChangeBatch {
                    reset: true,
                    runs: vec![run_change()],
                    removed: vec!["runs/old/1".into()],
                    cursor: cursor.clone(),
                    more: false,
                    skipped: vec![SkippedEntry {
                        name: "runs/x\\\\y".into(),
                        reason: "cannot be named".into(),
                    }],
                    skipped_listed: true,
                    artifacts: vec![],
                    removed_artifacts: vec![],
                }),
            ),
        ),
        (
            "points",
            body(
                3,
                Body::Points(PointsRequest {
                    runs: vec![PointsWanted {
                        dir: "runs/a/1".into(),
                        offset: 0,
                        next_line: 1,
                    }],
                    max_bytes: 1 << 20,
                }),
            ),
        ),
        (
            "point_batch",
            body(
                3,
                Body::PointBatch(PointBatch {
                    runs: vec![RunPoints {
                        dir: "runs/a/1".into(),
                        from: 0,
                        to: 300,
                        next_line: 4,
                        truncated: false,
                        eof: true,
                        missing: false,
                        steps: vec![1, 2, 3],
                        times: vec![1.5, f64::NAN, 3.5],
                        series: vec![
                            Series {
                                key: "loss".into(),
                                rows: None,
                                values: vec![1.0, f64::NAN, f64::INFINITY],
                            },
                            Series {
                                key: "acc".into(),
                                rows: Some(vec![0, 2]),
                                values: vec![f64::NEG_INFINITY, 0.5],
                            },
                        ],
                        corrupt: vec![WireCorruptLine {
                            line: 2,
                            offset: 100,
                            reason: "expected value".into(),
                        }],
                    }],
                }),
            ),
        ),
        (
            "log",
            body(
                4,
                Body::Log(LogRequest {
                    runs: vec![LogWanted {
                        dir: "runs/a/1".into(),
                        offset: None,
                    }],
                    max_bytes: 65536,
                    exact: true,
                }),
            ),
        ),
        (
            "log_batch",
            body(
                4,
                Body::LogBatch(LogBatch {
                    runs: vec![LogChunk {
                        dir: "runs/a/1".into(),
                        from: 0,
                        to: 20,
                        bytes: b"12:00:00 | \x1b[31mhi\xff\n".to_vec(),
                        truncated: false,
                        eof: true,
                    }],
                }),
            ),
        ),
        ("subscribe", body(5, Body::Subscribe {})),
        ("subscribed", body(5, Body::Subscribed {})),
        ("notice", body(0, Body::Notice(Notice { cursor }))),
        (
            "error",
            body(
                6,
                Body::Error(ErrorBody {
                    code: ErrorCode::OutsideRoot,
                    message: "path \"../x\" climbs out".into(),
                }),
            ),
        ),
    ]
}

/// A change batch whose run carries a summary nested `depth` levels deep, as raw JSON text
/// (serde_json's own writer refuses nothing, but its reader stops at 128 levels).
fn deep_summary_payload(depth: usize) -> Vec<u8> {
    let mut run = serde_json::to_value(run_change()).expect("a run change is JSON");
    run["summary"] = json!("DEEP");
    let batch = json!({"id": 2, "body": {"change_batch": {
        "reset": true, "runs": [run], "removed": [],
        "cursor": {"epoch": "e1", "seq": 1}, "more": false}}});
    batch
        .to_string()
        .replace("\"DEEP\"", &nested(depth, "1"))
        .into_bytes()
}

fn frame(payload: &[u8]) -> Vec<u8> {
    let mut out = (payload.len() as u32).to_be_bytes().to_vec();
    out.extend_from_slice(payload);
    out
}

fn fixture_files() -> Vec<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures");
    let mut out = Vec::new();
    let mut pending = vec![root];
    while let Some(dir) = pending.pop() {
        for entry in fs::read_dir(&dir).expect("list fixtures").flatten() {
            let path = entry.path();
            if path.is_dir() {
                pending.push(path);
            } else {
                out.push(path);
            }
        }
    }
    out.sort();
    out
}

fn seed_frames_and_messages() {
    let mut stream = Vec::new();
    for (name, message) in messages() {
        let bytes = encode_frame(&message, DEFAULT_MAX_FRAME_BYTES).expect("encode a seed");
        // Control byte 3: the default limit, whole reads; 0x1f: small uneven pieces.
        put("frame_decode", name, &[&[3u8][..], &bytes].concat());
        put("message_roundtrip", name, &bytes[4..]);
        stream.extend_from_slice(&bytes);
    }
    put("frame_decode", "stream", &[&[0x1fu8][..], &stream].concat());
    let torn = &stream[..stream.len() - 5];
    put("frame_decode", "torn", &[&[0x0bu8][..], torn].concat());
    put(
        "frame_decode",
        "greeting",
        b"\x03Welcome to gpu-01! Last login: yesterday\n",
    );
    put("frame_decode", "oversized", b"\x01\x00\x01\x00\x00{}");
    put("frame_decode", "invalid", b"\x03\x00\x00\x00\x05{nope");
    for depth in [120, 124, 127, 130] {
        let payload = deep_summary_payload(depth);
        put(
            "frame_decode",
            &format!("deep-{depth}"),
            &[&[3u8][..], &frame(&payload)].concat(),
        );
        put("message_roundtrip", &format!("deep-{depth}"), &payload);
    }
}

fn seed_events() {
    let line = |step: i64, loss: &str| {
        format!(
            "{{\"ts\": 1.5, \"type\": \"metrics\", \"data\": {{\"loss\": {loss}, \"global_step\": {step}, \"time\": 1.5, \"stage\": \"train\"}}}}\n"
        )
    };
    let good = [
        line(1, "1.0"),
        line(2, "NaN"),
        line(3, "Infinity"),
        line(4, "-Infinity"),
    ]
    .concat();
    // Two control bytes (budget, cut seed), then the file.
    let with = |budget: u8, seed: u8, body: &[u8]| [&[budget, seed][..], body].concat();
    put("events_reader", "nonfinite", &with(3, 7, good.as_bytes()));
    put(
        "events_reader",
        "torn",
        &with(1, 3, &good.as_bytes()[..good.len() - 9]),
    );
    put(
        "events_reader",
        "mixed",
        &with(
            5,
            11,
            concat!(
                "{\"type\":\"image\",\"data\":{\"key\":\"img\",\"path\":\"media/a.png\",\"step\":3}}\r\n",
                "{garbage\n\n   \n[1,2]\n",
                "{\"type\":\"metrics\",\"data\":{\"l\\u00f6ss\":2,\"step\":5,\"s\":\"NaN\",\"n\":null,\"t\":true}}\n",
                "{\"type\":\"metrics\",\"data\":{\"a\":NaN,\"s\":\"x NaN \\\" Infinity\"},\"ts\":Infinity}\n",
                "{\"type\":\"metrics\",\"data\":{\"big\":18446744073709551615,\"global_step\":1.0}}\n"
            )
            .as_bytes(),
        ),
    );
    for depth in [120, 127, 130] {
        let deep = format!(
            "{{\"type\":\"metrics\",\"data\":{{\"x\":{},\"global_step\":1}}}}\n",
            nested(depth, "1")
        );
        put(
            "events_reader",
            &format!("deep-{depth}"),
            &with(2, 1, deep.as_bytes()),
        );
    }
    for path in fixture_files()
        .iter()
        .filter(|p| p.ends_with("events.jsonl"))
    {
        let bytes = fs::read(path).expect("read a fixture");
        let name = path
            .parent()
            .and_then(Path::file_name)
            .expect("a run folder");
        put(
            "events_reader",
            &format!("fixture-{}", name.to_string_lossy()),
            &with(0, 2, &bytes),
        );
    }
}

fn seed_records() {
    for path in fixture_files()
        .iter()
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
    {
        let bytes = fs::read(path).expect("read a fixture");
        let run = path
            .parent()
            .and_then(Path::file_name)
            .expect("a run folder");
        let file = path.file_name().expect("a file name");
        put(
            "record_readers",
            &format!(
                "fixture-{}-{}",
                &run.to_string_lossy()[16..],
                file.to_string_lossy()
            ),
            &bytes,
        );
    }
    let records: [(&str, Value); 3] = [
        (
            "deleted",
            json!({"deleted_at": 1.5, "reason": "user", "original_status": "finished", "x": 1}),
        ),
        (
            "status",
            json!({"status": "running", "pid": 12, "proc_start_ticks": 99, "heartbeat_at": 1.0, "exit_code": -1, "signal": 9}),
        ),
        (
            "meta",
            json!({"id": "r1", "path": "a/b", "alias": null, "tags": ["t"], "created_at": 1, "extra": {"k": [1, 2]}}),
        ),
    ];
    for (name, value) in records {
        put("record_readers", name, value.to_string().as_bytes());
    }
    put(
        "record_readers",
        "nonfinite",
        b"{\"loss\": NaN, \"best\": -Infinity, \"s\": \"NaN\", \"list\": [Infinity, 1]}",
    );
    put(
        "record_readers",
        "nonfinite-key",
        b"{NaN: 1, \"a\\\"NaN\": Infinity}",
    );
    for depth in [120, 124, 127, 128, 130] {
        put(
            "record_readers",
            &format!("deep-array-{depth}"),
            nested(depth, "NaN").as_bytes(),
        );
        put(
            "record_readers",
            &format!("deep-object-{depth}"),
            nested_objects(depth).as_bytes(),
        );
    }
}

fn seed_names() {
    let names: [&[u8]; 18] = [
        b"runs/cv/resnet/20261126_122856_0e66f9",
        b"media/1795696136316_bef569_img.png",
        b"cv/yolo//a-b_c/",
        b"cv\\yolo",
        b"a\\b.txt",
        b"../../etc/passwd",
        b"runs/./x",
        b"/etc/passwd",
        b"C:evil",
        b"a\0b",
        b"x\x1b]0;owned\x07y",
        b"caf\xc3\xa9/\xff\xfe",
        b".deleted",
        b"..",
        b".",
        b"",
        b"20261126_122856_0e66f9",
        b"train/img 1",
    ];
    for (i, name) in names.iter().enumerate() {
        put("run_names", &format!("{i:02}"), name);
    }
    put("run_names", "long", "a/".repeat(2100).as_bytes());
}

fn main() {
    seed_frames_and_messages();
    seed_events();
    seed_records();
    seed_names();
    println!("seeds written under {}", corpus("").display());
}
