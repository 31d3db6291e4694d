//! Helpers for the store's unit tests: a fresh store in a temp folder, wire messages built
//! with little typing, and a full dump of every table to compare states.

use runicorn_protocol::wire::{
    ChangeBatch, Cursor, EventsState, FileEntry, PointBatch, RunChange, RunPoints, Series,
};
use rusqlite::types::ValueRef;

use crate::{RemoteId, RemoteSpec, Store};

pub const SHA_A: &str = "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824";

pub fn fresh_store() -> (tempfile::TempDir, Store) {
    let tmp = tempfile::tempdir().unwrap();
    let store = Store::open(&tmp.path().join("hub")).unwrap();
    (tmp, store)
}

pub fn add_remote(store: &mut Store, name: &str) -> RemoteId {
    store
        .upsert_remote(&RemoteSpec {
            name: name.into(),
            address: format!("me@{name}"),
            transport: serde_json::json!({}),
        })
        .unwrap()
}

/// A finished run at `dir` whose `events.jsonl` holds `events_bytes` bytes.
pub fn run_change(dir: &str, seq: u64, events_bytes: u64) -> RunChange {
    let id = dir.rsplit('/').next().unwrap_or("x").to_owned();
    let path = dir
        .strip_prefix("runs/")
        .and_then(|p| p.rsplit_once('/'))
        .map_or("default".to_owned(), |(p, _)| p.to_owned());
    RunChange {
        dir: dir.into(),
        seq,
        id,
        path,
        layout: "current".into(),
        alias: None,
        tags: vec!["t".into()],
        status: "finished".into(),
        reason: None,
        created_at: Some(1_000.0 + seq as f64),
        ended_at: None,
        hostname: Some("gpu".into()),
        deleted: false,
        meta: Some(serde_json::json!({"run_id": dir})),
        status_record: None,
        summary: Some(serde_json::json!({"acc": seq as f64 / 10.0})),
        config: Some(serde_json::json!({"lr": 0.1})),
        environment: None,
        assets: None,
        events: EventsState {
            bytes: events_bytes,
            lines: events_bytes / 10,
            points: events_bytes / 10,
            keys: vec!["k0".into(), "k1".into()],
            last_step: None,
            last_event_at: None,
            corrupt_lines: 0,
        },
        log_bytes: 0,
        files: vec![file_entry("meta.json", 100, None)],
        skipped_files: vec![],
        skipped_files_total: 0,
        alerts: Vec::new(),
    }
}

pub fn file_entry(path: &str, size: u64, sha256: Option<&str>) -> FileEntry {
    FileEntry {
        path: path.into(),
        size,
        mtime: 1_700_000_000.5,
        sha256: sha256.map(str::to_owned),
    }
}

pub fn change_batch(
    reset: bool,
    runs: Vec<RunChange>,
    epoch: &str,
    seq: u64,
    more: bool,
) -> ChangeBatch {
    ChangeBatch {
        reset,
        runs,
        removed: vec![],
        cursor: Cursor {
            epoch: epoch.into(),
            seq,
        },
        more,
        skipped: vec![],
        skipped_listed: false,
        artifacts: vec![],
        removed_artifacts: vec![],
    }
}

/// Bytes `from..to` of a run's events holding `steps`, with keys `k0` and `k1`.
pub fn point_batch(dir: &str, from: u64, to: u64, steps: std::ops::Range<i64>) -> PointBatch {
    let steps: Vec<i64> = steps.collect();
    PointBatch {
        runs: vec![RunPoints {
            dir: dir.into(),
            from,
            to,
            next_line: to / 10 + 1,
            eof: true,
            times: steps.iter().map(|&s| 1e9 + s as f64).collect(),
            series: (0..2)
                .map(|k| Series {
                    key: format!("k{k}"),
                    rows: None,
                    values: steps.iter().map(|&s| s as f64 + k as f64 * 0.5).collect(),
                })
                .collect(),
            steps,
            truncated: false,
            missing: false,
            corrupt: vec![],
        }],
    }
}

/// Every row of every table, in a canonical order, as text (NaN and NULL told apart by the
/// column's storage class).
pub fn dump(store: &Store) -> String {
    let conn = &store.conn;
    let mut tables: Vec<String> = conn
        .prepare("SELECT name FROM sqlite_schema WHERE type = 'table' ORDER BY name")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    tables.retain(|t| !t.starts_with("sqlite_"));
    let mut out = String::new();
    for t in tables {
        let mut stmt = conn.prepare(&format!("SELECT * FROM {t}")).unwrap();
        let cols = stmt.column_count();
        let mut rows: Vec<String> = stmt
            .query_map([], |r| {
                let mut line = String::new();
                for i in 0..cols {
                    let cell = match r.get_ref(i)? {
                        ValueRef::Null => "NULL".to_owned(),
                        ValueRef::Integer(v) => v.to_string(),
                        ValueRef::Real(v) => format!("{v:?}"),
                        ValueRef::Text(v) => format!("{:?}", String::from_utf8_lossy(v)),
                        ValueRef::Blob(v) => format!("{v:?}"),
                    };
                    line.push_str(&cell);
                    line.push('|');
                }
                Ok(line)
            })
            .unwrap()
            .map(Result::unwrap)
            .collect();
        rows.sort();
        out.push_str(&format!("== {t}\n{}\n", rows.join("\n")));
    }
    out
}
