//! The records of a run as JSON values for a `RunChange`: `meta.json`, `status.json`,
//! `summary.json`, the configuration (`assets.json`'s `config.args` merged with `config.extra`)
//! and `environment.json`. They are read when a `changes` answer is built (only files the
//! manifest lists as regular files), and when one run alone would not fit in a frame its
//! largest values are replaced by `{"_runicorn_truncated": <bytes>}`.

use std::path::Path;

use runicorn_protocol::run_format::json_file::{read_json, RecordError};
use runicorn_protocol::wire::RunChange;
use serde_json::{json, Map, Value};

use super::sizing::json_len;

/// The key of the stand-in for a value too large to send.
pub const TRUNCATED_KEY: &str = "_runicorn_truncated";

/// Fills in the JSON values of `run` from its directory under `root`.
pub fn fill_records(root: &Path, run: &mut RunChange) {
    let dir = root.join(&run.dir);
    let listed = |name: &str| run.files.iter().any(|f| f.path == name);
    let read = |name: &str| listed(name).then(|| read_value(&dir.join(name))).flatten();
    run.meta = read("meta.json");
    run.status_record = read("status.json");
    run.summary = read("summary.json");
    run.config = read("assets.json").and_then(config_of);
    run.environment = read("environment.json");
}

fn read_value(path: &Path) -> Option<Value> {
    match read_json::<Value>(path) {
        Ok(v) => Some(v),
        Err(RecordError::TooLarge { .. }) => {
            let size = std::fs::symlink_metadata(path).map_or(0, |m| m.len());
            Some(truncated(size as usize))
        }
        // Absent since the scan, or malformed (the run's status then says why).
        Err(_) => None,
    }
}

fn truncated(bytes: usize) -> Value {
    json!({ TRUNCATED_KEY: bytes })
}

/// The run's configuration: `config.args` merged with `config.extra` (extra wins).
pub fn config_of(assets: Value) -> Option<Value> {
    if assets.get(TRUNCATED_KEY).is_some() {
        return Some(assets);
    }
    let Value::Object(mut assets) = assets else {
        return None;
    };
    let Some(Value::Object(config)) = assets.remove("config") else {
        return None;
    };
    let mut merged = Map::new();
    for part in ["args", "extra"] {
        if let Some(Value::Object(values)) = config.get(part) {
            merged.extend(values.clone());
        }
    }
    Some(Value::Object(merged))
}

/// Makes one run's JSON fit in `budget` bytes: its largest record values are replaced by
/// truncation markers, then (a run with a huge number of files) its file list is cut. Returns
/// what had to be done, for a message on stderr.
pub fn shrink_to_fit(run: &mut RunChange, budget: usize) -> Vec<String> {
    let mut done = Vec::new();
    while json_len(run) > budget {
        let slots: [(&str, &mut Option<Value>); 5] = [
            ("meta", &mut run.meta),
            ("status", &mut run.status_record),
            ("summary", &mut run.summary),
            ("config", &mut run.config),
            ("environment", &mut run.environment),
        ];
        let largest = slots
            .into_iter()
            .filter_map(|(name, slot)| {
                let len = slot.as_ref().map(json_len)?;
                (len > json_len(&truncated(len))).then_some((len, name, slot))
            })
            .max_by_key(|(len, _, _)| *len);
        match largest {
            Some((len, name, slot)) => {
                *slot = Some(truncated(len));
                done.push(format!("{name} ({len} bytes) truncated"));
            }
            None => break,
        }
    }
    let mut cut = 0;
    while json_len(run) > budget && !run.files.is_empty() {
        let drop = (run.files.len() / 2).max(1);
        run.files.truncate(run.files.len() - drop);
        cut += drop;
    }
    if cut > 0 {
        done.push(format!("{cut} entries of its file list left out"));
    }
    done
}

#[cfg(test)]
mod tests {
    use super::*;
    use runicorn_protocol::wire::{EventsState, FileEntry};

    fn run() -> RunChange {
        RunChange {
            dir: "runs/p/a".into(),
            seq: 1,
            id: "a".into(),
            path: "p".into(),
            layout: "current".into(),
            alias: None,
            tags: vec![],
            status: "finished".into(),
            reason: None,
            created_at: None,
            ended_at: None,
            hostname: None,
            deleted: false,
            meta: None,
            status_record: None,
            summary: None,
            config: None,
            environment: None,
            events: EventsState::default(),
            log_bytes: 0,
            files: vec![],
        }
    }

    #[test]
    fn config_merges_args_and_extra() {
        let assets = json!({"config": {"args": {"lr": 0.1, "bs": 8}, "extra": {"bs": 16, "opt": "adam"}, "config_files": []}});
        assert_eq!(
            config_of(assets),
            Some(json!({"lr": 0.1, "bs": 16, "opt": "adam"}))
        );
        assert_eq!(config_of(json!({"code": {}})), None);
    }

    #[test]
    fn records_are_read_only_when_listed_and_nan_becomes_null() {
        let t = tempfile::tempdir().unwrap();
        let dir = t.path().join("runs/p/a");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("summary.json"), "{\"loss\": NaN}").unwrap();
        std::fs::write(dir.join("meta.json"), "{\"id\": \"a\"}").unwrap();
        let mut r = run();
        r.files = vec![FileEntry {
            path: "summary.json".into(),
            size: 1,
            mtime: 0.0,
            sha256: None,
        }];
        fill_records(t.path(), &mut r);
        assert_eq!(r.summary, Some(json!({"loss": null})));
        assert_eq!(r.meta, None, "not in the manifest, not read");
    }

    #[test]
    fn the_largest_values_give_way_first() {
        let mut r = run();
        r.environment = Some(json!({"pip": "x".repeat(50_000)}));
        r.summary = Some(json!({"loss": 1}));
        r.files = (0..10)
            .map(|i| FileEntry {
                path: format!("media/{i}.png"),
                size: 1,
                mtime: 0.0,
                sha256: None,
            })
            .collect();
        let done = shrink_to_fit(&mut r, 5_000);
        assert_eq!(r.environment, Some(json!({TRUNCATED_KEY: 50_010})));
        assert_eq!(r.summary, Some(json!({"loss": 1})));
        assert_eq!(r.files.len(), 10);
        assert_eq!(done.len(), 1);
        assert!(json_len(&r) <= 5_000);
        shrink_to_fit(&mut r, 600);
        assert!(json_len(&r) <= 600 && r.files.len() < 10);
    }
}
