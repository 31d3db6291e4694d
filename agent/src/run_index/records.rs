//! The records of a run as the feed stores them with each announced state: the JSON values of
//! `meta.json`, `status.json`, `summary.json`, the configuration (`assets.json`'s `config.args`
//! merged with `config.extra`), `environment.json` and `assets.json` whole. They are read when a run's state changes
//! (from the bytes the manifest just hashed when it can), so what the hub gets matches the
//! sequence value and the file hashes it comes with. Python's bare `NaN`/`Infinity` become
//! `null`; a record too large to read whole becomes `{"_runicorn_truncated": <bytes>}`; values
//! nested deeper than `record_depth::MAX_RECORD_DEPTH` are cut to a placeholder string, so
//! whatever is read here can be stored, framed and read back.

use std::path::Path;

use runicorn_protocol::run_format::json_file::{
    parse_record_value, read_json_in, RecordError, MAX_RECORD_BYTES,
};
use runicorn_protocol::run_format::safe_read::ReadError;
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

use super::manifest::Manifest;

/// The key of the stand-in for a value too large to send or read.
pub const TRUNCATED_KEY: &str = "_runicorn_truncated";

/// A run's record values (each `None` when the file is absent or unreadable).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct StoredRecords {
    pub meta: Option<Value>,
    pub status: Option<Value>,
    pub summary: Option<Value>,
    pub config: Option<Value>,
    pub environment: Option<Value>,
    /// `assets.json` whole (upstream's assets: code snapshot, datasets, pretrained models,
    /// outputs). Rows stored before it existed have none.
    #[serde(default)]
    pub assets: Option<Value>,
}

/// The stand-in for a value of `bytes` bytes that is not sent.
pub fn truncated(bytes: u64) -> Value {
    json!({ TRUNCATED_KEY: bytes })
}

/// Reads the records of the run in `dir`: only files the manifest lists as regular files, from
/// the bytes it captured when it has them.
pub fn read_records(dir: &Path, manifest: &Manifest) -> StoredRecords {
    let value = |name: &str| -> Option<Value> {
        let listed = manifest.files.iter().find(|f| f.path == name)?;
        if listed.size > MAX_RECORD_BYTES {
            return Some(truncated(listed.size));
        }
        let bytes = manifest
            .captured
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, b)| b);
        if let Some(v) = bytes.and_then(|b| parse_record_value(b).ok()) {
            return Some(v);
        }
        // Not captured (unchanged since it was hashed) or caught mid-write: read it, with the
        // reader's one retry (bounded while reading, a regular file only).
        match read_json_in::<Value>(&dir.join(name), dir) {
            Ok(v) => Some(v),
            Err(RecordError::Read(ReadError::TooLarge { .. })) => Some(truncated(listed.size)),
            Err(_) => None,
        }
    };
    let assets = value("assets.json");
    StoredRecords {
        meta: value("meta.json"),
        status: value("status.json"),
        summary: value("summary.json"),
        config: assets.clone().and_then(config_of),
        environment: value("environment.json"),
        assets,
    }
}

/// The run's configuration: `config.args` merged with `config.extra` (extra wins); `None` when
/// `assets.json` has no `config`.
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::run_index::manifest::walk;
    use std::fs;

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
    fn records_come_from_listed_files_and_nan_becomes_null() {
        let t = tempfile::tempdir().unwrap();
        fs::write(t.path().join("summary.json"), "{\"loss\": NaN}").unwrap();
        fs::write(t.path().join("meta.json"), "{\"id\": \"a\"}").unwrap();
        fs::write(t.path().join("environment.json"), "{\"broken\": ").unwrap();
        std::os::unix::fs::symlink("/etc/hostname", t.path().join("status.json")).unwrap();
        let mut m = walk(t.path(), &Manifest::default(), true).unwrap();
        assert_eq!(m.captured.len(), 3, "hashed records keep their bytes");
        let r = read_records(t.path(), &m);
        m.captured.clear();
        assert_eq!(r.summary, Some(json!({"loss": null})));
        assert_eq!(r.meta, Some(json!({"id": "a"})));
        assert_eq!(r.status, None, "a link is not followed");
        assert_eq!(r.environment, None, "malformed");
        assert_eq!(r.config, None);
        // Without captured bytes the files are read.
        let again = read_records(t.path(), &m);
        assert_eq!(again, r);
    }
}
